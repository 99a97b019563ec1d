/* Unit tests for core/cron: parsing of every syntax form, error messages,
 * exact next-firing times, and a randomized property test whose oracle uses
 * the C library's gmtime_r() calendar (independent of cron.c's own). */
#ifndef _POSIX_C_SOURCE /* gmtime_r; the build usually defines it */
#define _POSIX_C_SOURCE 200809L
#endif
#include "lib/testlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/cron.h"
#include "core/err.h"

#define ALL_MINUTES ((UINT64_C(1) << 60) - 1)
#define ALL_HOURS 0xffffffu
#define ALL_DOM 0xfffffffeu
#define ALL_MONTHS 0x1ffeu
#define ALL_DOW 0x7fu

static uint64_t bits(const int *v, int n) {
  uint64_t b = 0;
  for (int i = 0; i < n; i++)
    b |= UINT64_C(1) << v[i];
  return b;
}
#define BITS(...)                                                              \
  bits((const int[]){__VA_ARGS__},                                             \
       (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int)))

static lmz_cron parse_ok(const char *expr) {
  lmz_cron c;
  char err[LMZ_ERRMSG_LEN] = "";
  int rc = lmz_cron_parse(expr, &c, err);
  if (rc != 0)
    fail_msg("parse \"%s\" failed: %s", expr, err);
  return c;
}

static void assert_cron_equal(const lmz_cron *a, const lmz_cron *b) {
  assert_int_equal(a->minutes, b->minutes);
  assert_int_equal(a->hours, b->hours);
  assert_int_equal(a->dom, b->dom);
  assert_int_equal(a->months, b->months);
  assert_int_equal(a->dow, b->dow);
  assert_int_equal(a->dom_restricted, b->dom_restricted);
  assert_int_equal(a->dow_restricted, b->dow_restricted);
}

/* ---- parsing ------------------------------------------------------------ */

static void parse_all_stars(void **state) {
  (void)state;
  lmz_cron c = parse_ok("* * * * *");
  assert_int_equal(c.minutes, ALL_MINUTES);
  assert_int_equal(c.hours, ALL_HOURS);
  assert_int_equal(c.dom, ALL_DOM);
  assert_int_equal(c.months, ALL_MONTHS);
  assert_int_equal(c.dow, ALL_DOW);
  assert_false(c.dom_restricted);
  assert_false(c.dow_restricted);
}

static void parse_numbers_lists_ranges(void **state) {
  (void)state;
  lmz_cron c = parse_ok("0,30,59 9-11,23 1,15,31 2-3 1-5");
  assert_int_equal(c.minutes, BITS(0, 30, 59));
  assert_int_equal(c.hours, BITS(9, 10, 11, 23));
  assert_int_equal(c.dom, BITS(1, 15, 31));
  assert_int_equal(c.months, BITS(2, 3));
  assert_int_equal(c.dow, BITS(1, 2, 3, 4, 5));
  assert_true(c.dom_restricted);
  assert_true(c.dow_restricted);
  /* single-value range and leading zeros */
  c = parse_ok("07 5-5 09 012 0");
  assert_int_equal(c.minutes, BITS(7));
  assert_int_equal(c.hours, BITS(5));
  assert_int_equal(c.dom, BITS(9));
  assert_int_equal(c.months, BITS(12));
  assert_int_equal(c.dow, BITS(0));
}

static void parse_steps(void **state) {
  (void)state;
  lmz_cron c = parse_ok("*/15 */6 */10 */4 */2");
  assert_int_equal(c.minutes, BITS(0, 15, 30, 45));
  assert_int_equal(c.hours, BITS(0, 6, 12, 18));
  assert_int_equal(c.dom, BITS(1, 11, 21, 31));
  assert_int_equal(c.months, BITS(1, 5, 9));
  assert_int_equal(c.dow, BITS(0, 2, 4, 6));
  c = parse_ok("10-50/10 1-23/11 2-30/14 3-12/3 1-7/3");
  assert_int_equal(c.minutes, BITS(10, 20, 30, 40, 50));
  assert_int_equal(c.hours, BITS(1, 12, 23));
  assert_int_equal(c.dom, BITS(2, 16, 30));
  assert_int_equal(c.months, BITS(3, 6, 9, 12));
  assert_int_equal(c.dow, BITS(1, 4, 0)); /* 7 = Sunday */
  /* steps larger than the range keep only the start; max step allowed */
  c = parse_ok("*/59 */23 */31 */12 */7");
  assert_int_equal(c.minutes, BITS(0, 59));
  assert_int_equal(c.hours, BITS(0, 23));
  assert_int_equal(c.dom, BITS(1));
  assert_int_equal(c.months, BITS(1));
  assert_int_equal(c.dow, BITS(0));
  /* a step inside a list */
  c = parse_ok("5,*/20,59 * * * *");
  assert_int_equal(c.minutes, BITS(0, 5, 20, 40, 59));
}

static void parse_names_and_sunday(void **state) {
  (void)state;
  lmz_cron c = parse_ok("0 0 * jan-MAR,Dec sun,Mon-fri");
  assert_int_equal(c.months, BITS(1, 2, 3, 12));
  assert_int_equal(c.dow, BITS(0, 1, 2, 3, 4, 5));
  c = parse_ok("0 0 * JAN,FEB,MAR,APR,MAY,JUN,JUL,AUG,SEP,OCT,NOV,DEC "
               "SUN,MON,TUE,WED,THU,FRI,SAT");
  assert_int_equal(c.months, ALL_MONTHS);
  assert_int_equal(c.dow, ALL_DOW);
  assert_true(c.dow_restricted);
  c = parse_ok("0 0 * jan-dec/2 mon-sat/2");
  assert_int_equal(c.months, BITS(1, 3, 5, 7, 9, 11));
  assert_int_equal(c.dow, BITS(1, 3, 5));
  assert_int_equal(parse_ok("0 0 * * 7").dow, BITS(0));
  assert_int_equal(parse_ok("0 0 * * 0,7").dow, BITS(0));
  assert_int_equal(parse_ok("0 0 * * 5-7").dow, BITS(5, 6, 0));
  assert_int_equal(parse_ok("0 0 * * 0-7").dow, ALL_DOW);
  /* a weekday range ending on Sunday wraps to 7 */
  assert_int_equal(parse_ok("0 0 * * SAT-SUN").dow, BITS(6, 0));
  assert_int_equal(parse_ok("0 0 * * fri-sun").dow, BITS(5, 6, 0));
}

static void parse_macros(void **state) {
  (void)state;
  static const char *const pairs[][2] = {
      {"@yearly", "0 0 1 1 *"},   {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},  {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},   {"  @HOURLY\t ", "0 * * * *"},
      {"@Weekly", "0 0 * * sun"},
  };
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
    lmz_cron a = parse_ok(pairs[i][0]), b = parse_ok(pairs[i][1]);
    assert_cron_equal(&a, &b);
  }
  lmz_cron w = parse_ok("@weekly");
  assert_false(w.dom_restricted);
  assert_true(w.dow_restricted);
}

static void parse_whitespace_and_restriction(void **state) {
  (void)state;
  lmz_cron a = parse_ok(" \t 1  2\t\t3 \t4   5 \t");
  lmz_cron b = parse_ok("1 2 3 4 5");
  assert_cron_equal(&a, &b);
  /* Vixie: "restricted" means the field text does not start with '*'. */
  lmz_cron c = parse_ok("0 0 */2 * MON");
  assert_false(c.dom_restricted);
  assert_true(c.dow_restricted);
  c = parse_ok("0 0 1-31 * */1");
  assert_true(c.dom_restricted);
  assert_false(c.dow_restricted);
  assert_int_equal(c.dom, ALL_DOM);
}

static void parse_length_bound(void **state) {
  (void)state;
  char buf[LMZ_CRON_MAX_LEN + 2];
  /* exactly 256 bytes: valid (padding spaces) */
  memset(buf, ' ', sizeof buf);
  memcpy(buf, "1 2 3 4 5", 9);
  buf[LMZ_CRON_MAX_LEN] = '\0';
  lmz_cron c = parse_ok(buf);
  assert_int_equal(c.minutes, BITS(1));
  /* 257 bytes: rejected without looking at the content */
  buf[LMZ_CRON_MAX_LEN] = ' ';
  buf[LMZ_CRON_MAX_LEN + 1] = '\0';
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_cron_parse(buf, &c, err), LMZ_EINVAL);
  assert_string_equal(err, "cron expression longer than 256 bytes");
}

struct bad_case {
  const char *expr, *msg;
};

static const struct bad_case bad_cases[] = {
    {"", "cron expression is empty"},
    {" \t ", "cron expression is empty"},
    {"* * * *", "cron expression has 4 fields, expected 5 (minute hour "
                "day-of-month month day-of-week) or a macro like @daily"},
    {"* * * * * *", "cron expression has 6 fields, expected 5 (minute hour "
                    "day-of-month month day-of-week) or a macro like @daily"},
    {"60 * * * *", "cron field 1 (minute): value 60 out of range 0-59"},
    {"0 24 * * *", "cron field 2 (hour): value 24 out of range 0-23"},
    {"0 0 0 * *", "cron field 3 (day-of-month): value 0 out of range 1-31"},
    {"0 0 32 * *", "cron field 3 (day-of-month): value 32 out of range 1-31"},
    {"0 0 * 13 *", "cron field 4 (month): value 13 out of range 1-12"},
    {"0 0 * 0 *", "cron field 4 (month): value 0 out of range 1-12"},
    {"0 0 * * 8", "cron field 5 (day-of-week): value 8 out of range 0-7"},
    {"99999999999999999999999 * * * *",
     "cron field 1 (minute): value 99999999999999999999999 out of range 0-59"},
    {"*/0 * * * *", "cron field 1 (minute): step 0 out of range 1-59"},
    {"* */24 * * *", "cron field 2 (hour): step 24 out of range 1-23"},
    {"*/99999999999999999999 * * * *",
     "cron field 1 (minute): step 99999999999999999999 out of range 1-59"},
    {"5-1 * * * *", "cron field 1 (minute): range 5-1 is reversed"},
    {"0 0 * DEC-JAN *", "cron field 4 (month): range 12-1 is reversed"},
    {"5/10 * * * *", "cron field 1 (minute): a step needs '*' or a range "
                     "before '/' (e.g. */10 or 5-59/10)"},
    {"*/ * * * *",
     "cron field 1 (minute): expected a step number after '/', found end of "
     "field"},
    {"*/x * * * *",
     "cron field 1 (minute): expected a step number after '/', found 'x'"},
    {"1- * * * *",
     "cron field 1 (minute): expected a value, found end of field"},
    {"-1 * * * *", "cron field 1 (minute): expected a value, found '-'"},
    {"1,,2 * * * *", "cron field 1 (minute): empty list item"},
    {",1 * * * *", "cron field 1 (minute): empty list item"},
    {"1, * * * *", "cron field 1 (minute): empty list item"},
    {"** * * * *", "cron field 1 (minute): unexpected '*'"},
    {"1x * * * *", "cron field 1 (minute): unexpected 'x'"},
    {"? * * * *", "cron field 1 (minute): expected a value, found '?'"},
    {"mon * * * *", "cron field 1 (minute): expected a value, found 'm'"},
    {"0 0 * JANUARY *", "cron field 4 (month): unknown month name \"JANUARY\" "
                        "(use 3 letters, e.g. FEB)"},
    {"0 0 * * foo", "cron field 5 (day-of-week): unknown weekday name \"foo\" "
                    "(use 3 letters, e.g. MON)"},
    {"0 0 * * MON\n", "cron field 5 (day-of-week): unexpected byte 0x0a"},
    {"0 0 * * \xff", "cron field 5 (day-of-week): expected a value, found "
                     "byte 0xff"},
    {"@fortnightly", "unknown cron macro \"@fortnightly\" (known: @yearly "
                     "@annually @monthly @weekly @daily @midnight @hourly)"},
    {"@", "unknown cron macro \"@\" (known: @yearly @annually @monthly "
          "@weekly @daily @midnight @hourly)"},
    {"@daily 5", "cron macro @daily takes no other fields"},
    {"0 @daily * * *", "cron field 2 (hour): expected a value, found '@'"},
};

static void parse_errors_have_exact_messages(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    lmz_cron c;
    memset(&c, 0xab, sizeof c);
    char err[LMZ_ERRMSG_LEN] = "";
    int rc = lmz_cron_parse(bad_cases[i].expr, &c, err);
    if (rc != LMZ_EINVAL || strcmp(err, bad_cases[i].msg) != 0)
      fail_msg("case %zu \"%s\": rc %d, message \"%s\", want \"%s\"", i,
               bad_cases[i].expr, rc, err, bad_cases[i].msg);
    /* out is untouched on error */
    unsigned char *p = (unsigned char *)&c;
    for (size_t j = 0; j < sizeof c; j++)
      assert_int_equal(p[j], 0xab);
    /* NULL errmsg is allowed */
    assert_int_equal(lmz_cron_parse(bad_cases[i].expr, &c, NULL), LMZ_EINVAL);
  }
  lmz_cron c;
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_cron_parse(NULL, &c, err), LMZ_EINVAL);
  assert_string_equal(err, "cron expression is NULL");
}

/* ---- next: exact timestamps -------------------------------------------- */

struct next_case {
  const char *expr;
  int64_t after, want; /* Unix ms, UTC; want -1 = none */
};

static const struct next_case next_cases[] = {
    /* 2026-11-22T17:07:30Z -> 17:15Z; exactly on a match -> the next one */
    {"*/15 * * * *", 1795367250000, 1795367700000},
    {"*/15 * * * *", 1795367700000, 1795368600000}, /* 17:15 -> 17:30 */
    {"*/15 * * * *", 1795369500000, 1795370400000}, /* 17:45 -> 18:00 */
    {"@hourly", 1795367250000, 1795370400000},      /* 17:07:30 -> 18:00 */
    {"* * * * *", 1795367700000, 1795367760000},    /* +1 min, strictly */
    {"* * * * *", 1795367700001, 1795367760000},
    /* Sun 2026-11-22T10:00 -> Mon 11-23T09:00, then the following Monday */
    {"0 9 * * MON", 1795341600000, 1795424400000},
    {"0 9 * * MON", 1795424400000, 1796029200000},
    {"0 9 * * 1", 1795424400001, 1796029200000},
    /* Fri 2026-11-20T17:30 -> Mon 11-23T09:00 (weekend skipped) */
    {"0,30 9-17/2 * * MON-FRI", 1795195800000, 1795424400000},
    /* 2026-06-15T12:00 -> 2027-01-01T00:00 */
    {"0 0 1 1 *", 1781524800000, 1798761600000},
    {"@yearly", 1781524800000, 1798761600000},
    /* Feb 29: 2026-03-01 -> 2028-02-29 -> 2032-02-29; 2000 is a leap year,
     * 2100 is not (2100-02-28 -> 2104-02-29); from 2096-03-01 the next
     * (2104) is beyond the horizon */
    {"0 0 29 2 *", 1772323200000, 1835395200000},
    {"0 0 29 2 *", 1835395200000, 1961625600000},
    {"0 0 29 2 *", 920246400000, 951782400000},
    {"0 0 29 2 *", 4107456000000, 4233686400000},
    {"0 0 29 2 *", 3981398400000, -1},
    /* dom/dow OR: 2026-03-01 (Sun) -> Fri 03-06 -> Fri 03-13 -> Fri 03-20;
     * from Fri 2026-04-10 -> Mon 04-13 (the 13th) */
    {"0 0 13 * FRI", 1772323200000, 1772755200000},
    {"0 0 13 * FRI", 1772755200000, 1773360000000},
    {"0 0 13 * FRI", 1773360000000, 1773964800000},
    {"0 0 13 * FRI", 1775779200000, 1776038400000},
    /* Vixie star rule: "*\/1" is unrestricted (AND: Fridays only), "1-31" is
     * restricted (OR: every day). From Fri 2026-04-10. */
    {"0 0 */1 * FRI", 1775779200000, 1776384000000},
    {"0 0 1-31 * FRI", 1775779200000, 1775865600000},
    /* year end: 2026-12-31T23:58:59 -> 23:59; then a year later */
    {"59 23 31 12 *", 1798761539000, 1798761540000},
    {"59 23 31 12 *", 1798761540000, 1830297540000},
    /* impossible dates */
    {"0 0 30 2 *", 1795367250000, -1},
    {"0 0 31 4,6,9,11 *", 1795367250000, -1},
    /* month lengths: 2026-04-30T12:00 -> 05-31T12:00; 05-31 -> 07-31 */
    {"0 12 31 * *", 1777550400000, 1780228800000},
    {"0 0 31 * *", 1780185600000, 1785456000000},
    /* 29th: 2024-01-31 -> 2024-02-29 (leap); 2026-01-31 -> 2026-03-29 */
    {"0 0 29 * *", 1706659200000, 1709164800000},
    {"0 0 29 * *", 1769817600000, 1774742400000},
    /* before the epoch: 1969-12-31T23:59:59.999 -> 1970-01-01T00:00 */
    {"0 0 1 1 *", -1, 0},
    {"* * * * *", -60001, -60000},
    /* times too large for the horizon to fit in int64 */
    {"* * * * *", INT64_MAX, -1},
};

static void next_exact_times(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof next_cases / sizeof next_cases[0]; i++) {
    const struct next_case *k = &next_cases[i];
    lmz_cron c = parse_ok(k->expr);
    int64_t got = lmz_cron_next(&c, k->after);
    if (got != k->want)
      fail_msg("case %zu \"%s\" after %" PRId64 ": got %" PRId64
               ", want %" PRId64,
               i, k->expr, k->after, got, k->want);
  }
}

static void next_edge_inputs(void **state) {
  (void)state;
  lmz_cron c = parse_ok("* * * * *");
  assert_int_equal(lmz_cron_next(NULL, 0), -1);
  /* INT64_MIN: a valid (very negative) result, one minute on */
  int64_t n = lmz_cron_next(&c, INT64_MIN);
  assert_true(n > INT64_MIN);
  assert_int_equal(n % 60000, 0);
  assert_true(n - INT64_MIN <= 60000);
  /* an empty field never matches */
  lmz_cron e = c;
  e.hours = 0;
  assert_int_equal(lmz_cron_next(&e, 0), -1);
  /* out-of-range bits are ignored: only minute 60+ or dom 0 set = empty */
  e = c;
  e.minutes = UINT64_C(0xf) << 60;
  assert_int_equal(lmz_cron_next(&e, 0), -1);
  e = c;
  e.dom = 1;
  assert_int_equal(lmz_cron_next(&e, 0), -1);
  e = c;
  e.months = 0x1 | 0xe000;
  assert_int_equal(lmz_cron_next(&e, 0), -1);
}

/* ---- property test ------------------------------------------------------ */

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * UINT64_C(2685821657736338717);
}
static int rnd_in(int lo, int hi) {
  return lo + (int)(rnd() % (uint64_t)(hi - lo + 1));
}

static const char *const month_nm[] = {"jan", "FEB", "Mar", "apr",
                                       "MAY", "jun", "JUL", "aug",
                                       "Sep", "OCT", "nov", "DEC"};
static const char *const dow_nm[] = {"sun", "MON", "Tue", "wed",
                                     "THU", "fri", "SAT"};

static void gen_value(char *out, size_t cap, int field, int v) {
  if (field == 3 && rnd() % 3 == 0)
    snprintf(out, cap, "%s", month_nm[v - 1]);
  else if (field == 4 && v < 7 && rnd() % 3 == 0)
    snprintf(out, cap, "%s", dow_nm[v]);
  else
    snprintf(out, cap, "%d", v);
}

/* One random item of field `f` (0..4) into out. */
static void gen_item(char *out, size_t cap, int f) {
  static const int lo[] = {0, 0, 1, 1, 0}, hi[] = {59, 23, 31, 12, 7};
  char a[8], b[8];
  int kind = (int)(rnd() % 6);
  int x = rnd_in(lo[f], hi[f]), y = rnd_in(x, hi[f]);
  gen_value(a, sizeof a, f, x);
  gen_value(b, sizeof b, f, y);
  int step = rnd_in(1, hi[f] < 12 ? hi[f] : 12);
  switch (kind) {
  case 0:
    snprintf(out, cap, "*");
    break;
  case 1:
    snprintf(out, cap, "*/%d", step);
    break;
  case 2:
  case 3:
    snprintf(out, cap, "%s", a);
    break;
  case 4:
    snprintf(out, cap, "%s-%s", a, b);
    break;
  default:
    snprintf(out, cap, "%s-%s/%d", a, b, step);
    break;
  }
}

static void gen_expr(char *out, size_t cap) {
  static const char *const macros[] = {"@yearly", "@monthly", "@weekly",
                                       "@daily", "@hourly"};
  if (rnd() % 20 == 0) {
    snprintf(out, cap, "%s", macros[rnd() % 5]);
    return;
  }
  size_t n = 0;
  for (int f = 0; f < 5; f++) {
    /* day fields: mostly '*' so both the AND and OR rules get exercised
     * with expressions that fire often enough to check */
    int items = (f >= 2 && rnd() % 2 == 0) ? 0 : rnd_in(1, 3);
    if (items == 0)
      n += (size_t)snprintf(out + n, cap - n, "*");
    for (int i = 0; i < items; i++) {
      char item[32];
      gen_item(item, sizeof item, f);
      n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? "," : "", item);
    }
    n += (size_t)snprintf(out + n, cap - n, f < 4 ? " " : "");
  }
}

/* Oracle: does minute `t_ms` match c? Calendar from gmtime_r. */
static bool oracle_day(const lmz_cron *c, const struct tm *tm) {
  bool dom = (c->dom >> tm->tm_mday) & 1u;
  bool dow = (c->dow >> tm->tm_wday) & 1u;
  bool day =
      (c->dom_restricted && c->dow_restricted) ? (dom || dow) : (dom && dow);
  return day && ((c->months >> (tm->tm_mon + 1)) & 1u);
}

static bool oracle_match(const lmz_cron *c, int64_t t_ms, struct tm *tm) {
  time_t s = (time_t)(t_ms / 1000);
  assert_non_null(gmtime_r(&s, tm));
  return oracle_day(c, tm) && ((c->hours >> tm->tm_hour) & 1u) &&
         ((c->minutes >> tm->tm_min) & 1ull);
}

/* Oracle next: walks minute by minute from the first candidate, but jumps
 * to the next midnight when gmtime says the whole day cannot match. The
 * horizon is the header's: LMZ_CRON_HORIZON_DAYS days from the first
 * candidate's day. Times here are >= 0, so '/' is a floor. */
static int64_t oracle_next(const lmz_cron *c, int64_t after_ms) {
  const int64_t min_ms = 60000, day_ms = 86400000;
  int64_t t = (after_ms / min_ms + 1) * min_ms;
  int64_t end = (t / day_ms + LMZ_CRON_HORIZON_DAYS) * day_ms;
  struct tm tm;
  while (t < end) {
    if (oracle_match(c, t, &tm))
      return t;
    t = oracle_day(c, &tm) ? t + min_ms : (t / day_ms + 1) * day_ms;
  }
  return -1;
}

static void next_matches_oracle_on_random_input(void **state) {
  (void)state;
  uint64_t seed = UINT64_C(0x5eed0f0c0ffee);
  const char *env = getenv("LMZ_TEST_SEED");
  if (env != NULL)
    seed = strtoull(env, NULL, 0);
  rng_state = seed | 1;
  int n_cases = 3000, n_found = 0;
  for (int i = 0; i < n_cases; i++) {
    char expr[256];
    gen_expr(expr, sizeof expr);
    lmz_cron c = parse_ok(expr);
    /* 1970..2106, with sub-minute offsets */
    int64_t t = (int64_t)(rnd() % UINT64_C(4300000000000));
    int64_t got = lmz_cron_next(&c, t);
    int64_t want = oracle_next(&c, t);
    if (got != want)
      fail_msg("seed %#" PRIx64 " case %d \"%s\" after %" PRId64
               ": got %" PRId64 ", oracle %" PRId64,
               seed, i, expr, t, got, want);
    if (got == -1)
      continue;
    n_found++;
    struct tm tm;
    assert_true(got > t);
    assert_int_equal(got % 60000, 0);
    assert_true(oracle_match(&c, got, &tm));
    /* Chaining next() from a result must advance strictly. */
    int64_t again = lmz_cron_next(&c, got);
    assert_true(again == -1 || again > got);
  }
  /* the generator must mostly produce satisfiable expressions */
  assert_true(n_found > n_cases * 9 / 10);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(parse_all_stars),
      cmocka_unit_test(parse_numbers_lists_ranges),
      cmocka_unit_test(parse_steps),
      cmocka_unit_test(parse_names_and_sunday),
      cmocka_unit_test(parse_macros),
      cmocka_unit_test(parse_whitespace_and_restriction),
      cmocka_unit_test(parse_length_bound),
      cmocka_unit_test(parse_errors_have_exact_messages),
      cmocka_unit_test(next_exact_times),
      cmocka_unit_test(next_edge_inputs),
      cmocka_unit_test(next_matches_oracle_on_random_input),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
