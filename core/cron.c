/* core/cron.c - cron expression parser and next-firing-time search.
 *
 * Happy path (parse): check the length bound, expand a leading '@' macro to
 * its 5-field text, count the fields, then parse each field left to right
 * into a bit set (items separated by ',', each '*' | value | a-b, with an
 * optional /step). The result is written to *out only when every field is
 * valid.
 *
 * Happy path (next): round `after_ms` up to the next whole minute, convert
 * its day to (year, month, day, weekday) once, then walk forward: skip a
 * whole month when the month bit is clear, a whole day when the day does not
 * match, and inside a matching day pick the first allowed hour/minute with a
 * find-first-set on the masked bit sets. At most LMZ_CRON_HORIZON_DAYS days
 * are visited, each in O(1).
 *
 * Failure modes:
 * 1. Input longer than LMZ_CRON_MAX_LEN, NULL or empty: LMZ_EINVAL; the scan
 *    never reads past LMZ_CRON_MAX_LEN + 1 bytes.
 * 2. Wrong field count, bad character, value/step out of range, reversed
 *    range, empty list item, unknown name or macro: LMZ_EINVAL with a message
 *    naming the field (1-based) and the offending text (non-printable bytes
 *    shown as 0xNN). Numbers saturate while being read, so any digit string
 *    is safe and reported as out of range.
 * 3. next() on a cron with an empty field, or a time so large that the
 *    horizon would overflow int64 ms: -1 (never UB).
 * 4. No match within the horizon (Feb 30, or Feb 29 in a century gap): -1. */
#include "core/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/civil.h"
#include "core/err.h"

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, N_FIELDS };

struct field_spec {
  const char *name;
  int min, max; /* accepted values (dow accepts 7 = Sunday) */
  int star_max; /* upper end of '*' (dow: 6, so 7 is not a second Sunday) */
  const char *const *names; /* 3-letter names for values min.., or NULL */
};

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY",
                                          "JUN", "JUL", "AUG", "SEP", "OCT",
                                          "NOV", "DEC", NULL};
static const char *const dow_names[] = {"SUN", "MON", "TUE", "WED",
                                        "THU", "FRI", "SAT", NULL};

static const struct field_spec specs[N_FIELDS] = {
    {"minute", 0, 59, 59, NULL},         {"hour", 0, 23, 23, NULL},
    {"day-of-month", 1, 31, 31, NULL},   {"month", 1, 12, 12, month_names},
    {"day-of-week", 0, 7, 6, dow_names},
};

static const struct {
  const char *name, *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Numbers saturate here while being read: above every field maximum, and far
 * below INT_MAX, so "99999999999999999999" cannot overflow. */
#define NUM_SATURATE 100000

/* One field being parsed: its token [s, s+len) and where we are in it. */
struct field_ctx {
  const struct field_spec *spec;
  int idx; /* 0-based field number */
  const char *s;
  size_t len, pos;
  char *errmsg;
};

static bool is_blank(char ch) { return ch == ' ' || ch == '\t'; }
static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }
static bool is_alpha(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}
static char to_upper(char ch) {
  return (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
}

/* "cron field N (name): <detail>". */
__attribute__((format(printf, 2, 3))) static int
field_err(const struct field_ctx *f, const char *fmt, ...) {
  if (f->errmsg == NULL)
    return LMZ_EINVAL;
  int n = snprintf(f->errmsg, LMZ_ERRMSG_LEN,
                   "cron field %d (%s): ", f->idx + 1, f->spec->name);
  if (n > 0 && n < LMZ_ERRMSG_LEN) { /* always true: the prefix is short */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->errmsg + n, (size_t)(LMZ_ERRMSG_LEN - n), fmt, ap);
    va_end(ap);
  }
  return LMZ_EINVAL;
}

/* Describes the byte at the cursor for an error: 'x', byte 0x0a, or
 * "end of field". */
static const char *describe_here(const struct field_ctx *f, char buf[24]) {
  if (f->pos >= f->len)
    return "end of field";
  unsigned char ch = (unsigned char)f->s[f->pos];
  if (ch > 0x20 && ch < 0x7f)
    snprintf(buf, 24, "'%c'", ch);
  else
    snprintf(buf, 24, "byte 0x%02x", ch);
  return buf;
}

static char peek(const struct field_ctx *f) {
  return f->pos < f->len ? f->s[f->pos] : '\0';
}

/* Reads a run of digits into *out (saturating); returns its start/length for
 * messages. The caller checked that the cursor is on a digit. */
static int read_number(struct field_ctx *f, size_t *start, size_t *n) {
  int v = 0;
  *start = f->pos;
  while (f->pos < f->len && is_digit(f->s[f->pos])) {
    if (v < NUM_SATURATE)
      v = v * 10 + (f->s[f->pos] - '0');
    f->pos++;
  }
  *n = f->pos - *start;
  return v;
}

/* A name: a run of letters that must be exactly one of the field's names. */
static int read_name(struct field_ctx *f, int *out) {
  size_t start = f->pos;
  while (f->pos < f->len && is_alpha(f->s[f->pos]))
    f->pos++;
  size_t n = f->pos - start;
  const char *what = f->idx == F_MONTH ? "month" : "weekday";
  if (n == 3) {
    for (int i = 0; f->spec->names[i] != NULL; i++) {
      const char *nm = f->spec->names[i];
      if (to_upper(f->s[start]) == nm[0] &&
          to_upper(f->s[start + 1]) == nm[1] &&
          to_upper(f->s[start + 2]) == nm[2]) {
        *out = f->spec->min + i;
        return 0;
      }
    }
  }
  return field_err(f, "unknown %s name \"%.*s\" (use 3 letters, e.g. %s)", what,
                   (int)(n > 16 ? 16 : n), f->s + start, f->spec->names[1]);
}

/* value := number | name (in month and day-of-week). */
static int read_value(struct field_ctx *f, int *out) {
  char ch = peek(f);
  char buf[24];
  if (is_alpha(ch) && f->spec->names != NULL)
    return read_name(f, out);
  if (!is_digit(ch))
    return field_err(f, "expected a value, found %s", describe_here(f, buf));
  size_t start, n;
  int v = read_number(f, &start, &n);
  if (v < f->spec->min || v > f->spec->max)
    return field_err(f, "value %.*s out of range %d-%d", (int)(n > 24 ? 24 : n),
                     f->s + start, f->spec->min, f->spec->max);
  *out = v;
  return 0;
}

/* "/n" after '*' or a range. */
static int read_step(struct field_ctx *f, bool stepable, int *step) {
  char buf[24];
  if (!stepable)
    return field_err(f, "a step needs '*' or a range before '/' "
                        "(e.g. */10 or 5-59/10)");
  f->pos++; /* '/' */
  if (!is_digit(peek(f)))
    return field_err(f, "expected a step number after '/', found %s",
                     describe_here(f, buf));
  size_t start, n;
  int v = read_number(f, &start, &n);
  if (v < 1 || v > f->spec->max)
    return field_err(f, "step %.*s out of range 1-%d", (int)(n > 24 ? 24 : n),
                     f->s + start, f->spec->max);
  *step = v;
  return 0;
}

/* item := ('*' | value ['-' value]) ['/' step]; sets its bits in *bits. */
static int parse_item(struct field_ctx *f, uint64_t *bits) {
  int lo, hi, step = 1, rc;
  bool stepable = true;
  if (peek(f) == '*') {
    f->pos++;
    lo = f->spec->min;
    hi = f->spec->star_max;
  } else {
    if ((rc = read_value(f, &lo)) != 0)
      return rc;
    hi = lo;
    stepable = false;
    if (peek(f) == '-') {
      f->pos++;
      if ((rc = read_value(f, &hi)) != 0)
        return rc;
      stepable = true;
      /* "FRI-SUN": Sunday at the end of a weekday range means 7. */
      if (f->idx == F_DOW && hi == 0 && lo > 0)
        hi = 7;
      if (lo > hi)
        return field_err(f, "range %d-%d is reversed", lo, hi);
    }
  }
  if (peek(f) == '/' && (rc = read_step(f, stepable, &step)) != 0)
    return rc;
  for (int v = lo; v <= hi; v += step)
    *bits |= (uint64_t)1 << (f->idx == F_DOW ? v % 7 : v);
  return 0;
}

/* field := item (',' item)* over the whole token. */
static int parse_field(struct field_ctx *f, uint64_t *bits) {
  char buf[24];
  *bits = 0;
  for (;;) {
    if (peek(f) == ',' || f->pos >= f->len)
      return field_err(f, "empty list item");
    int rc = parse_item(f, bits);
    if (rc != 0)
      return rc;
    if (f->pos >= f->len)
      return 0;
    if (peek(f) != ',')
      return field_err(f, "unexpected %s", describe_here(f, buf));
    f->pos++;
  }
}

/* Splits [s, end) at blanks into at most N_FIELDS + 1 tokens; returns the
 * token count (capped at N_FIELDS + 1: enough to say "too many"). */
static int split_fields(const char *s, const char *end, const char **tok,
                        size_t *tok_len) {
  int n = 0;
  while (s < end) {
    while (s < end && is_blank(*s))
      s++;
    if (s == end)
      break;
    const char *t = s;
    while (s < end && !is_blank(*s))
      s++;
    if (n < N_FIELDS) {
      tok[n] = t;
      tok_len[n] = (size_t)(s - t);
    }
    n++;
  }
  return n;
}

static int parse_fields(const char *s, size_t len, lmz_cron *out,
                        char *errmsg) {
  const char *tok[N_FIELDS];
  size_t tok_len[N_FIELDS];
  int n = split_fields(s, s + len, tok, tok_len);
  if (n == 0) {
    lmz__errmsg_printf(errmsg, "cron expression is empty");
    return LMZ_EINVAL;
  }
  if (n != N_FIELDS) {
    lmz__errmsg_printf(errmsg,
                       "cron expression has %d fields, expected 5 (minute hour "
                       "day-of-month month day-of-week) or a macro like @daily",
                       n);
    return LMZ_EINVAL;
  }
  uint64_t bits[N_FIELDS];
  for (int i = 0; i < N_FIELDS; i++) {
    struct field_ctx f = {&specs[i], i, tok[i], tok_len[i], 0, errmsg};
    int rc = parse_field(&f, &bits[i]);
    if (rc != 0)
      return rc;
  }
  out->minutes = bits[F_MINUTE];
  out->hours = (uint32_t)bits[F_HOUR];
  out->dom = (uint32_t)bits[F_DOM];
  out->months = (uint16_t)bits[F_MONTH];
  out->dow = (uint8_t)bits[F_DOW];
  out->dom_restricted = tok[F_DOM][0] != '*';
  out->dow_restricted = tok[F_DOW][0] != '*';
  return 0;
}

static bool name_equal_ci(const char *a, size_t n, const char *b) {
  if (strlen(b) != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (to_upper(a[i]) != to_upper(b[i]))
      return false;
  return true;
}

/* s points at '@' (after leading blanks); [s, end) is the rest. */
static int parse_macro(const char *s, const char *end, lmz_cron *out,
                       char *errmsg) {
  const char *t = s;
  while (t < end && !is_blank(*t))
    t++;
  size_t n = (size_t)(t - s);
  const char *rest = t;
  while (rest < end && is_blank(*rest))
    rest++;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(macros); i++) {
    if (!name_equal_ci(s, n, macros[i].name))
      continue;
    if (rest != end) {
      lmz__errmsg_printf(errmsg, "cron macro %s takes no other fields",
                         macros[i].name);
      return LMZ_EINVAL;
    }
    const char *x = macros[i].expansion;
    return parse_fields(x, strlen(x), out, errmsg);
  }
  lmz__errmsg_printf(errmsg,
                     "unknown cron macro \"%.*s\" (known: @yearly @annually "
                     "@monthly @weekly @daily @midnight @hourly)",
                     (int)(n > 32 ? 32 : n), s);
  return LMZ_EINVAL;
}

int lmz_cron_parse(const char *expr, lmz_cron *out, char *errmsg) {
  if (expr == NULL || out == NULL) {
    lmz__errmsg_printf(errmsg, "cron expression is NULL");
    return LMZ_EINVAL;
  }
  size_t len = 0;
  while (len <= LMZ_CRON_MAX_LEN && expr[len] != '\0')
    len++;
  if (len > LMZ_CRON_MAX_LEN) {
    lmz__errmsg_printf(errmsg, "cron expression longer than %d bytes",
                       LMZ_CRON_MAX_LEN);
    return LMZ_EINVAL;
  }
  const char *s = expr, *end = expr + len;
  while (s < end && is_blank(*s))
    s++;
  lmz_cron tmp;
  int rc = (s < end && *s == '@')
               ? parse_macro(s, end, &tmp, errmsg)
               : parse_fields(s, (size_t)(end - s), &tmp, errmsg);
  if (rc == 0)
    *out = tmp;
  return rc;
}

/* ---- next firing time ---------------------------------------------------
 * Calendar: proleptic Gregorian, days counted from 1970-01-01 (a Thursday),
 * core/civil.h. */

#define MS_PER_MIN INT64_C(60000)
#define MIN_PER_DAY 1440
#define MS_PER_DAY (MS_PER_MIN * MIN_PER_DAY)

struct civil {
  int64_t y;
  unsigned m, d; /* 1..12, 1..31 */
  unsigned wd;   /* 0 = Sunday */
};

static struct civil civil_from_days(int64_t z) {
  struct lmz_civil c = lmz__civil_from_days(z);
  return (struct civil){c.y, c.m, c.d, lmz__weekday_from_days(z)};
}

/* Moves `c` forward by `n` days within its month or to the 1st of the next
 * month (n <= days left in the month + 1). */
static void civil_advance(struct civil *c, unsigned n) {
  c->wd = (c->wd + n) % 7;
  c->d += n;
  if (c->d > lmz__days_in_month(c->y, c->m)) {
    c->d = 1;
    if (++c->m > 12) {
      c->m = 1;
      c->y++;
    }
  }
}

/* Field bit sets with out-of-range bits cleared. */
struct masks {
  uint64_t minutes;
  uint32_t hours, dom;
  uint16_t months;
  uint8_t dow;
  bool either; /* Vixie OR rule: both day fields restricted */
};

static bool day_matches(const struct masks *k, const struct civil *c) {
  bool dom = (k->dom >> c->d) & 1u;
  bool dow = (k->dow >> c->wd) & 1u;
  return k->either ? (dom || dow) : (dom && dow);
}

/* First allowed (hour, minute) >= (*h, *mi) within one day; false if none. */
static bool first_time_in_day(const struct masks *k, int *h, int *mi) {
  while (*h < 24) {
    uint32_t hs = k->hours & (UINT32_MAX << *h);
    if (hs == 0)
      return false;
    int nh = __builtin_ctz(hs);
    if (nh != *h) {
      *h = nh;
      *mi = 0;
    }
    uint64_t ms = k->minutes & (UINT64_MAX << *mi);
    if (ms != 0) {
      *mi = __builtin_ctzll(ms);
      return true;
    }
    (*h)++;
    *mi = 0;
  }
  return false;
}

int64_t lmz_cron_next(const lmz_cron *c, int64_t after_ms) {
  if (c == NULL)
    return -1;
  struct masks k = {
      .minutes = c->minutes & ((UINT64_C(1) << 60) - 1),
      .hours = c->hours & ((UINT32_C(1) << 24) - 1),
      .dom = c->dom & UINT32_C(0xfffffffe),
      .months = (uint16_t)(c->months & 0x1ffe),
      .dow = (uint8_t)(c->dow & 0x7f),
      .either = c->dom_restricted && c->dow_restricted,
  };
  if (!k.minutes || !k.hours || !k.dom || !k.months || !k.dow)
    return -1;
  /* Keep (first candidate + horizon) in int64 ms. */
  if (after_ms > INT64_MAX - (LMZ_CRON_HORIZON_DAYS + 2) * MS_PER_DAY)
    return -1;
  int64_t first = lmz__floor_div(after_ms, MS_PER_MIN) + 1; /* strictly after */
  int64_t day = lmz__floor_div(first, MIN_PER_DAY);
  int tod = (int)(first - day * MIN_PER_DAY);
  int h = tod / 60, mi = tod % 60;
  int64_t end_day = day + LMZ_CRON_HORIZON_DAYS;
  struct civil cv = civil_from_days(day);
  while (day < end_day) {
    unsigned step = 1;
    if (!((k.months >> cv.m) & 1u))
      step = lmz__days_in_month(cv.y, cv.m) - cv.d + 1; /* skip the month */
    else if (day_matches(&k, &cv) && first_time_in_day(&k, &h, &mi))
      return ((day * MIN_PER_DAY) + h * 60 + mi) * MS_PER_MIN;
    day += step;
    civil_advance(&cv, step);
    h = mi = 0;
  }
  return -1;
}
