/* core/codec_scjson_dec.c - SC-JSON decoder (format: core/codec_scjson.c).
 *
 * Happy path: lmz_json_parse (strict JSON) builds a DOM in a scratch arena;
 * the DOM is converted in three passes like the original:
 *   1. every meta.aliases entry gets its node: an empty container (array,
 *      object, Map, Set, Error with name/message/stack) or, for atomic
 *      values, the finished value; views that name a "buffer" are built in a
 *      sub-pass after the ArrayBuffers they point to;
 *   2. the containers are filled (refs resolve to the nodes of pass 1, so
 *      cycles between aliases just work);
 *   3. "json" is decoded.
 * {"$ref":n} is a reference only when "$ref" is its only key. Keys starting
 * with "$$" lose one '$'. Unknown "$type" tags decode to plain objects that
 * keep their "$type" key; "function" decodes to a plain object {name}.
 * Header names are lower-cased, as the Headers class does. Strings are made
 * well-formed WTF-8 as a browser would see the text (TextDecoder, then
 * JSON.parse): bytes that are not UTF-8 become U+FFFD (one per maximal
 * ill-formed subpart, as TextDecoder counts) and a high surrogate
 * followed by a low one becomes their code point; so encoding what was
 * decoded always reproduces the value.
 *
 * Leniency follows the original where it is lenient: a missing "meta", an
 * unknown typed array subtype (read as Uint8Array, as the original does),
 * typed array elements converted like a JavaScript typed array constructor
 * (ToNumber - numbers, null, booleans and numeric strings such as "NaN",
 * "-0", "0x1f" - then the element type's wrap-around or clamping;
 * BigInt64/BigUint64 elements are integer strings reduced mod 2^64), dates
 * in any form of ECMAScript's date-time string format (a date-time without
 * an offset is read as UTC, not local time; anything unparsable is an
 * invalid Date, as new Date(s) would give). Duplicate keys: the last value
 * wins at the first key's position (JSON.parse + property assignment).
 *
 * Failure modes (code, err->offset = byte offset of the offending DOM node):
 *   LMZ_ESYNTAX   not JSON (from the parser)
 *   LMZ_EBADMSG   a value of the wrong shape: root without "json", a field of
 *                 the wrong type ("map entry must be a [key, value] array"),
 *                 a $ref to a missing alias, an alias body that is itself a
 *                 $ref (so ref chains cannot exist, let alone loop), a hole
 *                 outside an array, a view range outside its buffer
 *   LMZ_ETOODEEP  values nested deeper than limits.max_depth
 *   LMZ_ETOOBIG   input over max_input, more than max_nodes values, or the
 *                 decode would add more than max_memory bytes to the arena
 *   LMZ_ENOMEM    allocation failure
 * On error *out is untouched; what was allocated stays in the arena. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/civil.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/utf8.h"
#include "core/value_int.h"

enum tag {
  TAG_NONE = 0, /* no "$type": a plain object */
  TAG_UNKNOWN,  /* "$type" we do not know: a plain object keeping it */
  TAG_UNDEFINED,
  TAG_NUMSPECIAL,
  TAG_BIGINT,
  TAG_DATE,
  TAG_REGEXP,
  TAG_URL,
  TAG_HEADERS,
  TAG_ARRAYBUFFER,
  TAG_MAP,
  TAG_SET,
  TAG_ERROR,
  TAG_FUNCTION,
  TAG_BOOLOBJ,
  TAG_NUMOBJ,
  TAG_STROBJ,
  TAG_BIGOBJ,
  TAG_HOLE,
};

static const struct {
  const char *name;
  uint8_t len, tag;
} tag_table[] = {
    {"undefined", 9, TAG_UNDEFINED},       {"number-special", 14, TAG_NUMSPECIAL},
    {"bigint", 6, TAG_BIGINT},             {"date", 4, TAG_DATE},
    {"regexp", 6, TAG_REGEXP},             {"url", 3, TAG_URL},
    {"headers", 7, TAG_HEADERS},           {"arraybuffer", 11, TAG_ARRAYBUFFER},
    {"map", 3, TAG_MAP},                   {"set", 3, TAG_SET},
    {"error", 5, TAG_ERROR},               {"function", 8, TAG_FUNCTION},
    {"boolean-object", 14, TAG_BOOLOBJ},   {"number-object", 13, TAG_NUMOBJ},
    {"string-object", 13, TAG_STROBJ},     {"bigint-object", 13, TAG_BIGOBJ},
    {"hole", 4, TAG_HOLE},
};

/* Tags decoded as containers: a node first, its contents later. */
static bool tag_is_container(int tag) {
  return tag == TAG_NONE || tag == TAG_UNKNOWN || tag == TAG_MAP ||
         tag == TAG_SET || tag == TAG_ERROR || tag == TAG_FUNCTION;
}

struct alias {
  uint32_t id;
  uint32_t idx; /* member index: the last duplicate id wins */
  const lmz_json *body;
  lmz_value *v; /* NULL until built */
  uint8_t tag;
  uint8_t state; /* AL_* */
};
enum { AL_DONE = 0, AL_SHELL, AL_VIEW };

struct dec {
  lmz_arena *a;
  struct lmz_codec_error *err;
  uint32_t max_depth;
  size_t max_nodes, nodes;
  size_t limit;  /* arena limit set for this decode (0 = none) */
  size_t budget; /* max_memory, for messages */
  struct alias *al;
  size_t n_al;
  bool dense; /* al[i].id == i */
};

__attribute__((format(printf, 4, 5))) static int
fail(struct dec *d, int code, const lmz_json *at, const char *fmt, ...) {
  d->err->code = code;
  d->err->offset = at ? at->offset : 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->err->msg, sizeof(d->err->msg), fmt, ap);
  va_end(ap);
  return code;
}

static int nomem(struct dec *d, const lmz_json *at) {
  size_t used = lmz_arena_used(d->a);
  if (d->limit && (used >= d->limit || d->limit - used < ((size_t)1 << 20)))
    return fail(d, LMZ_ETOOBIG, at,
                "decoded value exceeds the memory limit (%zu bytes)", d->budget);
  return fail(d, LMZ_ENOMEM, at, "out of memory");
}

static int count_node(struct dec *d, const lmz_json *at) {
  if (++d->nodes > d->max_nodes)
    return fail(d, LMZ_ETOOBIG, at, "more than %zu values", d->max_nodes);
  return 0;
}

/* ---- strings: well-formed WTF-8 ------------------------------------------- */

/* Makes *s / *n well-formed WTF-8, as a browser's TextDecoder and JSON.parse
 * would see the text: each maximal ill-formed subpart becomes one U+FFFD
 * (core/utf8.h), and a high surrogate followed by a low one becomes the code
 * point of the pair. Clean strings (nearly all) are left in place; others
 * are rewritten into the arena. */
static int clean_str(struct dec *d, const lmz_json *at, const char **s,
                     size_t *n) {
  if (lmz__wtf8_is_wellformed(*s, *n))
    return 0;
  const unsigned char *p = (const unsigned char *)*s;
  size_t len = *n, w = 0;
  if (len > (SIZE_MAX - 1) / 3)
    return nomem(d, at);
  unsigned char *o = lmz_arena_alloc(d->a, 3 * len + 1);
  if (!o)
    return nomem(d, at);
  uint32_t hi = 0; /* pending high surrogate */
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t bad, sl = lmz__utf8_seq(p + i, len - i, &cp, &bad);
    if (sl == 0) {
      cp = 0xFFFD;
      sl = bad;
    }
    if (hi && lmz__utf16_is_low(cp)) {
      w -= 3; /* replace the high surrogate written just before */
      cp = lmz__utf16_join(hi, cp);
    }
    hi = lmz__utf16_is_high(cp) ? cp : 0;
    w += lmz__utf8_put(o + w, cp);
    i += sl;
  }
  o[w] = 0;
  *s = (const char *)o;
  *n = w;
  return 0;
}

/* ---- DOM helpers ---------------------------------------------------------- */

static bool key_is(const struct lmz_json_member *m, const char *k, size_t n) {
  return m->klen == n && memcmp(m->key, k, n) == 0;
}

/* Member by key, last duplicate winning (as JSON.parse); NULL if absent. */
static const lmz_json *member(const lmz_json *o, const char *k) {
  size_t n = strlen(k);
  for (uint32_t i = o->n; i-- > 0;)
    if (key_is(&o->u.members[i], k, n))
      return o->u.members[i].val;
  return NULL;
}

static bool is_ref(const lmz_json *o) {
  return o->n == 1 && key_is(&o->u.members[0], "$ref", 4);
}

static int tag_of(const lmz_json *o) {
  const lmz_json *t = NULL;
  for (uint32_t i = o->n; i-- > 0;) {
    const struct lmz_json_member *m = &o->u.members[i];
    if (m->klen == 5 && m->key[0] == '$' && memcmp(m->key, "$type", 5) == 0) {
      t = m->val;
      break;
    }
  }
  if (!t)
    return TAG_NONE;
  if (t->type != LMZ_JSON_STRING)
    return TAG_UNKNOWN;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(tag_table); i++)
    if (t->u.str.len == tag_table[i].len &&
        memcmp(t->u.str.p, tag_table[i].name, t->u.str.len) == 0)
      return tag_table[i].tag;
  return TAG_UNKNOWN;
}

static bool is_str(const lmz_json *j, const char *s) {
  size_t n = strlen(s);
  return j && j->type == LMZ_JSON_STRING && j->u.str.len == n &&
         memcmp(j->u.str.p, s, n) == 0;
}

/* A non-negative integer below 2^32 from a number or a canonical decimal
 * string; false otherwise. */
static bool json_u32(const lmz_json *j, uint32_t *out) {
  if (j->type == LMZ_JSON_NUMBER) {
    double x = j->u.num;
    if (!(x >= 0 && x <= 4294967295.0) || x != floor(x))
      return false;
    *out = (uint32_t)x;
    return true;
  }
  if (j->type != LMZ_JSON_STRING)
    return false;
  const char *s = j->u.str.p;
  size_t n = j->u.str.len;
  if (n == 0 || n > 10 || (n > 1 && s[0] == '0'))
    return false;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  if (v > UINT32_MAX)
    return false;
  *out = (uint32_t)v;
  return true;
}

/* A size_t from a JSON number that is a non-negative integer. */
static bool json_size(const lmz_json *j, size_t *out) {
  if (!j || j->type != LMZ_JSON_NUMBER)
    return false;
  double x = j->u.num;
  if (!(x >= 0 && x <= 9007199254740992.0) || x != floor(x))
    return false;
  *out = (size_t)x;
  return true;
}

/* ---- primitives ----------------------------------------------------------- */

static int num_node(struct dec *d, const lmz_json *at, double x,
                    lmz_value **out) {
  if (x >= 0 && x <= LMZ__SMALL_INT_MAX && x == floor(x) && !signbit(x)) {
    *out = lmz__small_int((unsigned)x);
    return 0;
  }
  *out = lmz_number(d->a, x);
  return *out ? 0 : nomem(d, at);
}

static int str_node(struct dec *d, const lmz_json *j, lmz_value **out) {
  int rv;
  if (j->u.str.len == 0) {
    *out = lmz__empty_string();
    return 0;
  }
  const char *p = j->u.str.p;
  size_t n = j->u.str.len;
  if ((rv = clean_str(d, j, &p, &n)) != 0)
    return rv;
  *out = lmz_string(d->a, p, n);
  return *out ? 0 : nomem(d, j);
}

static bool special_number(const lmz_json *j, double *x) {
  if (is_str(j, "NaN"))
    *x = NAN;
  else if (is_str(j, "Infinity"))
    *x = INFINITY;
  else if (is_str(j, "-Infinity"))
    *x = -INFINITY;
  else if (is_str(j, "-0"))
    *x = -0.0;
  else
    return false;
  return true;
}

static bool decimal_integer(const lmz_json *j) {
  if (!j || j->type != LMZ_JSON_STRING)
    return false;
  const char *s = j->u.str.p;
  size_t n = j->u.str.len, i = (n > 0 && s[0] == '-');
  if (i == n)
    return false;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static int bigint_node(struct dec *d, const lmz_json *j, const lmz_json *at,
                       lmz_value **out) {
  if (!decimal_integer(j))
    return fail(d, LMZ_EBADMSG, j ? j : at,
                "bigint value must be a decimal integer string");
  *out = lmz_bigint(d->a, j->u.str.p, j->u.str.len);
  return *out ? 0 : nomem(d, j);
}

/* ---- JavaScript conversions ----------------------------------------------- */

static bool js_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static double radix_int(const char *p, const char *end, int base) {
  double v = 0;
  if (p == end)
    return NAN;
  for (; p < end; p++) {
    int dgt = isdigit((unsigned char)*p) ? *p - '0'
              : isalpha((unsigned char)*p)
                  ? tolower((unsigned char)*p) - 'a' + 10
                  : 99;
    if (dgt >= base)
      return NAN;
    v = v * base + dgt;
  }
  return v;
}

/* ECMAScript StringToNumber (ASCII white space only). */
static double js_string_to_number(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  while (p < end && js_space(*p))
    p++;
  while (end > p && js_space(end[-1]))
    end--;
  size_t n = (size_t)(end - p);
  if (n == 0)
    return 0;
  if (n > 2 && p[0] == '0') {
    char r = (char)tolower((unsigned char)p[1]);
    if (r == 'x')
      return radix_int(p + 2, end, 16);
    if (r == 'o')
      return radix_int(p + 2, end, 8);
    if (r == 'b')
      return radix_int(p + 2, end, 2);
  }
  const char *q = p;
  bool neg = false;
  if (*q == '+' || *q == '-')
    neg = *q++ == '-';
  if ((size_t)(end - q) == 8 && memcmp(q, "Infinity", 8) == 0)
    return neg ? -INFINITY : INFINITY;
  /* StrDecimalLiteral: digits [. digits] | . digits, then [e[+-]digits] */
  size_t nd = 0;
  while (q < end && isdigit((unsigned char)*q))
    q++, nd++;
  if (q < end && *q == '.')
    for (q++; q < end && isdigit((unsigned char)*q); q++)
      nd++;
  if (nd == 0)
    return NAN;
  if (q < end && (*q == 'e' || *q == 'E')) {
    q++;
    if (q < end && (*q == '+' || *q == '-'))
      q++;
    if (q == end || !isdigit((unsigned char)*q))
      return NAN;
    while (q < end && isdigit((unsigned char)*q))
      q++;
  }
  if (q != end)
    return NAN;
  char tmp[128];
  if (n >= sizeof(tmp)) /* long literals: strtod on the (terminated) DOM */
    return strtod(p, NULL);
  memcpy(tmp, p, n);
  tmp[n] = 0;
  return strtod(tmp, NULL);
}

/* ToNumber of one typed array element. */
static int elem_number(struct dec *d, const lmz_json *x, double *out) {
  switch (x->type) {
  case LMZ_JSON_NUMBER: *out = x->u.num; return 0;
  case LMZ_JSON_NULL:
  case LMZ_JSON_FALSE: *out = 0; return 0;
  case LMZ_JSON_TRUE: *out = 1; return 0;
  case LMZ_JSON_STRING:
    *out = js_string_to_number(x->u.str.p, x->u.str.len);
    return 0;
  default:
    return fail(d, LMZ_EBADMSG, x, "typed array data must hold numbers");
  }
}

/* ToBigInt of a string element, reduced mod 2^64 (BigInt.asUintN(64)). */
static int elem_bigint(struct dec *d, const lmz_json *x, uint64_t *out) {
  if (x->type != LMZ_JSON_STRING)
    return fail(d, LMZ_EBADMSG, x,
                "BigInt64Array data must hold integer strings");
  const char *p = x->u.str.p, *end = p + x->u.str.len;
  while (p < end && js_space(*p))
    p++;
  while (end > p && js_space(end[-1]))
    end--;
  bool neg = false;
  if (p < end && (*p == '-' || *p == '+'))
    neg = *p++ == '-';
  uint64_t v = 0;
  for (const char *q = p; q < end; q++) {
    if (*q < '0' || *q > '9')
      return fail(d, LMZ_EBADMSG, x,
                  "BigInt64Array data must hold integer strings");
    v = v * 10 + (uint64_t)(*q - '0'); /* wraps mod 2^64, as intended */
  }
  *out = neg ? (uint64_t)0 - v : v;
  return 0;
}

/* ToUint8/16/32 (and the signed ones, same bits): modulo 2^bits. */
static uint64_t js_to_uint(double x, double mod) {
  if (!isfinite(x))
    return 0;
  x = fmod(trunc(x), mod);
  if (x < 0)
    x += mod;
  return (uint64_t)x;
}

static uint8_t js_to_uint8_clamp(double x) {
  if (!(x > 0))
    return 0;
  if (x >= 255)
    return 255;
  double f = floor(x), r = x - f;
  if (r > 0.5 || (r == 0.5 && fmod(f, 2) != 0))
    f += 1;
  return (uint8_t)f;
}

/* Converts one element and stores it at p (little-endian host layout). */
static int store_elem(struct dec *d, lmz_view_kind k, const lmz_json *x,
                      uint8_t *p) {
  int rv;
  double v = 0;   /* set by elem_number on success; 0 quiets gcc */
  uint64_t u = 0; /* likewise for elem_bigint */
  if (k == LMZ_VIEW_BIGINT64 || k == LMZ_VIEW_BIGUINT64) {
    if ((rv = elem_bigint(d, x, &u)) != 0)
      return rv;
    memcpy(p, &u, 8);
    return 0;
  }
  if ((rv = elem_number(d, x, &v)) != 0)
    return rv;
  switch (k) {
  case LMZ_VIEW_UINT8_CLAMPED: *p = js_to_uint8_clamp(v); return 0;
  case LMZ_VIEW_INT16:
  case LMZ_VIEW_UINT16: {
    uint16_t w = (uint16_t)js_to_uint(v, 65536.0);
    memcpy(p, &w, 2);
    return 0;
  }
  case LMZ_VIEW_INT32:
  case LMZ_VIEW_UINT32: {
    uint32_t w = (uint32_t)js_to_uint(v, 4294967296.0);
    memcpy(p, &w, 4);
    return 0;
  }
  case LMZ_VIEW_FLOAT32: {
    float f = (float)v;
    memcpy(p, &f, 4);
    return 0;
  }
  case LMZ_VIEW_FLOAT64: memcpy(p, &v, 8); return 0;
  default: *p = (uint8_t)js_to_uint(v, 256.0); return 0;
  }
}

/* ---- dates ---------------------------------------------------------------- */

static bool iso_digits(const char **pp, const char *end, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*pp)++) {
    if (*pp >= end || !isdigit((unsigned char)**pp))
      return false;
    v = v * 10 + (**pp - '0');
  }
  *out = v;
  return true;
}

static bool iso_time(const char **pp, const char *end, int64_t *ms_of_day,
                     int64_t *tz_ms) {
  const char *p = *pp;
  int h, mi, s = 0, ms = 0;
  if (!iso_digits(&p, end, 2, &h) || p >= end || *p++ != ':' ||
      !iso_digits(&p, end, 2, &mi))
    return false;
  if (p < end && *p == ':') {
    p++;
    if (!iso_digits(&p, end, 2, &s))
      return false;
    if (p < end && *p == '.') {
      int nd = 0;
      for (p++; p < end && isdigit((unsigned char)*p); p++, nd++)
        if (nd < 3)
          ms = ms * 10 + (*p - '0');
      if (nd == 0)
        return false;
      for (; nd < 3; nd++)
        ms *= 10;
    }
  }
  if (mi > 59 || s > 59 || h > 24 || (h == 24 && (mi || s || ms)))
    return false;
  *tz_ms = 0;
  if (p < end && *p == 'Z') {
    p++;
  } else if (p < end && (*p == '+' || *p == '-')) {
    int sign = *p++ == '-' ? -1 : 1, th, tm;
    if (!iso_digits(&p, end, 2, &th) || p >= end || *p++ != ':' ||
        !iso_digits(&p, end, 2, &tm) || th > 23 || tm > 59)
      return false;
    *tz_ms = sign * ((int64_t)th * 3600000 + (int64_t)tm * 60000);
  }
  *ms_of_day = (int64_t)h * 3600000 + (int64_t)mi * 60000 + s * 1000 + ms;
  *pp = p;
  return true;
}

/* ECMAScript date-time string format -> time value; NaN if not parsable. */
static double parse_iso(const char *s, size_t len) {
  const char *p = s, *end = s + len;
  int y, mon = 1, day = 1;
  int64_t year, tod = 0, tz = 0;
  if (p < end && (*p == '+' || *p == '-')) {
    bool neg = *p++ == '-';
    if (!iso_digits(&p, end, 6, &y) || (neg && y == 0))
      return NAN;
    year = neg ? -y : y;
  } else {
    if (!iso_digits(&p, end, 4, &y))
      return NAN;
    year = y;
  }
  if (p < end && *p == '-') {
    p++;
    if (!iso_digits(&p, end, 2, &mon))
      return NAN;
    if (p < end && *p == '-') {
      p++;
      if (!iso_digits(&p, end, 2, &day))
        return NAN;
    }
  }
  if (p < end && *p == 'T') {
    p++;
    if (!iso_time(&p, end, &tod, &tz))
      return NAN;
  }
  if (p != end || mon < 1 || mon > 12 || day < 1 || day > 31)
    return NAN;
  int64_t days = lmz__days_from_civil(year, (unsigned)mon, (unsigned)day);
  double t = (double)days * 86400000.0 + (double)tod - (double)tz;
  return fabs(t) <= 8.64e15 ? t : NAN;
}

/* ---- values --------------------------------------------------------------- */

static int dec_value(struct dec *d, const lmz_json *j, uint32_t depth,
                     bool in_array, lmz_value **out);

static int dec_ref(struct dec *d, const lmz_json *j, lmz_value **out) {
  const lmz_json *r = j->u.members[0].val;
  uint32_t id;
  if (!json_u32(r, &id))
    return fail(d, LMZ_EBADMSG, r, "$ref must be a non-negative integer");
  struct alias *al = NULL;
  if (d->dense) {
    al = id < d->n_al ? &d->al[id] : NULL;
  } else {
    size_t lo = 0, hi = d->n_al;
    while (lo < hi) { /* first entry with id >= wanted */
      size_t mid = lo + (hi - lo) / 2;
      if (d->al[mid].id < id)
        lo = mid + 1;
      else
        hi = mid;
    }
    al = lo < d->n_al && d->al[lo].id == id ? &d->al[lo] : NULL;
  }
  if (!al)
    return fail(d, LMZ_EBADMSG, j, "$ref %u names no alias", id);
  if (!al->v)
    return fail(d, LMZ_EBADMSG, j, "$ref %u used before its alias is built",
                id);
  *out = al->v;
  return 0;
}

/* The name lower-cased (ASCII), as the Headers class stores it; the DOM
 * string itself when it has no upper-case letter. NULL on out of memory. */
static const char *lower_name(struct dec *d, const lmz_json *k) {
  const char *s = k->u.str.p;
  size_t n = k->u.str.len, i = 0;
  while (i < n && !(s[i] >= 'A' && s[i] <= 'Z'))
    i++;
  if (i == n)
    return s;
  char *low = lmz_arena_strndup(d->a, s, n);
  for (; low && i < n; i++)
    if (low[i] >= 'A' && low[i] <= 'Z')
      low[i] = (char)(low[i] + ('a' - 'A'));
  return low;
}

static int dec_headers(struct dec *d, const lmz_json *j, lmz_value **out) {
  int rv;
  const lmz_json *en = member(j, "entries");
  if (en && en->type != LMZ_JSON_ARRAY)
    return fail(d, LMZ_EBADMSG, en, "headers entries must be an array");
  lmz_value *h = lmz_headers(d->a);
  if (!h || (en && lmz__value_reserve(h, en->n)))
    return nomem(d, j);
  for (uint32_t i = 0; en && i < en->n; i++) {
    const lmz_json *e = en->u.items[i];
    if (e->type != LMZ_JSON_ARRAY || e->n != 2 ||
        e->u.items[0]->type != LMZ_JSON_STRING ||
        e->u.items[1]->type != LMZ_JSON_STRING)
      return fail(d, LMZ_EBADMSG, e,
                  "headers entry must be a [name, value] array of strings");
    const lmz_json *k = e->u.items[0], *v = e->u.items[1];
    const char *name = lower_name(d, k), *val = v->u.str.p;
    size_t nlen = k->u.str.len, vlen = v->u.str.len;
    if (!name)
      return nomem(d, e);
    if ((rv = clean_str(d, k, &name, &nlen)) != 0)
      return rv;
    if ((rv = clean_str(d, v, &val, &vlen)) != 0)
      return rv;
    if (lmz_headers_append(h, name, nlen, val, vlen))
      return nomem(d, e);
  }
  *out = h;
  return 0;
}

static int check_room(struct dec *d, const lmz_json *at, size_t bytes) {
  size_t used = lmz_arena_used(d->a);
  if (d->limit && (used > d->limit || bytes > d->limit - used))
    return fail(d, LMZ_ETOOBIG, at,
                "decoded value exceeds the memory limit (%zu bytes)", d->budget);
  return 0;
}

/* A new ArrayBuffer of n elements of kind k converted from data. */
static int new_buffer(struct dec *d, const lmz_json *data, lmz_view_kind k,
                      lmz_value **out) {
  int rv;
  size_t esz = lmz_view_elem_size(k), n = data->n;
  if ((rv = check_room(d, data, n * esz + 64)) != 0)
    return rv;
  lmz_value *ab = lmz_arraybuffer(d->a, NULL, n * esz);
  if (!ab)
    return nomem(d, data);
  uint8_t *p = lmz_arraybuffer_data(ab);
  for (size_t i = 0; i < n; i++) {
    if ((rv = store_elem(d, k, data->u.items[i], p + i * esz)) != 0)
      return rv;
  }
  *out = ab;
  return 0;
}

static int make_view(struct dec *d, const lmz_json *j, lmz_view_kind k,
                     lmz_value *ab, size_t off, size_t len, lmz_value **out) {
  size_t esz = lmz_view_elem_size(k), ablen = lmz_len(ab);
  if (off > ablen || len > (ablen - off) / esz || off % esz != 0)
    return fail(d, LMZ_EBADMSG, j, "%s range outside its buffer",
                lmz_view_kind_name(k));
  *out = lmz_view(d->a, k, ab, off, len);
  return *out ? 0 : nomem(d, j);
}

/* Extension: a view over an explicit "buffer" (an ArrayBuffer value). */
static int dec_view_ext(struct dec *d, const lmz_json *j, lmz_view_kind k,
                        const lmz_json *data, uint32_t depth,
                        lmz_value **out) {
  int rv;
  const lmz_json *bj = member(j, "buffer"), *oj = member(j, "byteOffset");
  lmz_value *ab;
  size_t off = 0, len = data->n;
  if ((rv = dec_value(d, bj, depth + 1, false, &ab)) != 0)
    return rv;
  if (lmz_typeof(ab) != LMZ_T_ARRAYBUFFER)
    return fail(d, LMZ_EBADMSG, bj, "view buffer must be an ArrayBuffer");
  if (oj && !json_size(oj, &off))
    return fail(d, LMZ_EBADMSG, oj, "byteOffset must be a non-negative integer");
  if (k == LMZ_VIEW_DATAVIEW) {
    const lmz_json *lj = member(j, "byteLength");
    len = lmz_len(ab) >= off ? lmz_len(ab) - off : 0;
    if (lj && !json_size(lj, &len))
      return fail(d, LMZ_EBADMSG, lj,
                  "byteLength must be a non-negative integer");
  }
  return make_view(d, j, k, ab, off, len, out);
}

static int dec_dataview(struct dec *d, const lmz_json *j, const lmz_json *data,
                        lmz_value **out) {
  int rv;
  const lmz_json *oj = member(j, "byteOffset"), *lj = member(j, "byteLength");
  lmz_value *ab;
  size_t off = 0, len;
  if ((rv = new_buffer(d, data, LMZ_VIEW_UINT8, &ab)) != 0)
    return rv;
  if (oj && !json_size(oj, &off))
    return fail(d, LMZ_EBADMSG, oj, "byteOffset must be a non-negative integer");
  len = data->n >= off ? data->n - off : 0;
  if (lj && !json_size(lj, &len))
    return fail(d, LMZ_EBADMSG, lj, "byteLength must be a non-negative integer");
  return make_view(d, j, LMZ_VIEW_DATAVIEW, ab, off, len, out);
}

/* {"$type":"arraybuffer","subtype":..,"data":[..]} and its extensions. */
static int dec_arraybuffer(struct dec *d, const lmz_json *j, uint32_t depth,
                           lmz_value **out) {
  int rv;
  const lmz_json *st = member(j, "subtype"), *data = member(j, "data");
  if (!data || data->type != LMZ_JSON_ARRAY)
    return fail(d, LMZ_EBADMSG, data ? data : j,
                "arraybuffer data is not an array");
  if (is_str(st, "ArrayBuffer"))
    return new_buffer(d, data, LMZ_VIEW_UINT8, out);
  int k = -1;
  if (st && st->type == LMZ_JSON_STRING)
    k = lmz_view_kind_from_name(st->u.str.p, st->u.str.len);
  if (k < 0)
    k = LMZ_VIEW_UINT8; /* the original's fallback for unknown subtypes */
  if (member(j, "buffer"))
    return dec_view_ext(d, j, (lmz_view_kind)k, data, depth, out);
  if (k == LMZ_VIEW_DATAVIEW)
    return dec_dataview(d, j, data, out);
  lmz_value *ab;
  if ((rv = new_buffer(d, data, (lmz_view_kind)k, &ab)) != 0)
    return rv;
  *out = lmz_view(d->a, (lmz_view_kind)k, ab, 0, data->n);
  return *out ? 0 : nomem(d, j);
}

static int dec_boxed(struct dec *d, const lmz_json *j, int tag,
                     lmz_value **out) {
  int rv;
  const lmz_json *v = member(j, "value");
  lmz_value *prim = NULL;
  double x;
  switch (tag) {
  case TAG_BOOLOBJ:
    if (!v || (v->type != LMZ_JSON_TRUE && v->type != LMZ_JSON_FALSE))
      return fail(d, LMZ_EBADMSG, v ? v : j,
                  "boolean-object value must be a boolean");
    prim = lmz_bool(v->type == LMZ_JSON_TRUE);
    break;
  case TAG_NUMOBJ:
    if (v && v->type == LMZ_JSON_NUMBER)
      x = v->u.num;
    else if (!special_number(v, &x))
      return fail(d, LMZ_EBADMSG, v ? v : j,
                  "number-object value must be a number");
    if ((rv = num_node(d, v, x, &prim)) != 0)
      return rv;
    break;
  case TAG_STROBJ:
    if (!v || v->type != LMZ_JSON_STRING)
      return fail(d, LMZ_EBADMSG, v ? v : j,
                  "string-object value must be a string");
    if ((rv = str_node(d, v, &prim)) != 0)
      return rv;
    break;
  default:
    if ((rv = bigint_node(d, v, j, &prim)) != 0)
      return rv;
    break;
  }
  *out = lmz_boxed(d->a, prim);
  return *out ? 0 : nomem(d, j);
}

static int dec_date(struct dec *d, const lmz_json *j, lmz_value **out) {
  const lmz_json *iso = member(j, "iso");
  double ms = NAN;
  if (iso && iso->type == LMZ_JSON_STRING)
    ms = parse_iso(iso->u.str.p, iso->u.str.len);
  else if (iso && iso->type == LMZ_JSON_NUMBER)
    ms = fabs(iso->u.num) <= 8.64e15 ? trunc(iso->u.num) + 0.0 : NAN;
  else if (iso && iso->type != LMZ_JSON_NULL)
    return fail(d, LMZ_EBADMSG, iso, "date iso must be a string");
  *out = lmz_date(d->a, ms);
  return *out ? 0 : nomem(d, j);
}

static const lmz_json *opt_str(struct dec *d, const lmz_json *j,
                               const char *key, int *rc) {
  const lmz_json *s = member(j, key);
  if (s && s->type != LMZ_JSON_STRING)
    *rc = fail(d, LMZ_EBADMSG, s, "%s must be a string", key);
  return s;
}

static int dec_regexp(struct dec *d, const lmz_json *j, const lmz_json *s,
                      const lmz_json *f, lmz_value **out) {
  int rv;
  const char *src = s ? s->u.str.p : "(?:)", *fl = f ? f->u.str.p : "";
  size_t slen = s ? s->u.str.len : 4, flen = f ? f->u.str.len : 0;
  if ((rv = clean_str(d, j, &src, &slen)) != 0)
    return rv;
  if ((rv = clean_str(d, j, &fl, &flen)) != 0)
    return rv;
  *out = lmz_regexp(d->a, src, slen, fl, flen);
  return *out ? 0 : nomem(d, j);
}

static int dec_url(struct dec *d, const lmz_json *j, lmz_value **out) {
  int rv;
  const lmz_json *s = member(j, "href");
  if (!s || s->type != LMZ_JSON_STRING)
    return fail(d, LMZ_EBADMSG, s ? s : j, "url href must be a string");
  const char *p = s->u.str.p;
  size_t n = s->u.str.len;
  if ((rv = clean_str(d, s, &p, &n)) != 0)
    return rv;
  *out = lmz_url(d->a, p, n);
  return *out ? 0 : nomem(d, j);
}

/* Values without containers inside (Date, RegExp, ..., views). */
static int dec_atomic(struct dec *d, const lmz_json *j, int tag,
                      uint32_t depth, bool in_array, lmz_value **out) {
  const lmz_json *s, *f;
  int rc = 0;
  double x;
  switch (tag) {
  case TAG_UNDEFINED: *out = lmz_undefined(); return 0;
  case TAG_HOLE:
    if (!in_array)
      return fail(d, LMZ_EBADMSG, j, "hole outside an array");
    *out = lmz_hole();
    return 0;
  case TAG_NUMSPECIAL:
    if (!special_number(member(j, "value"), &x))
      return fail(d, LMZ_EBADMSG, j,
                  "number-special value must be \"NaN\", \"Infinity\", "
                  "\"-Infinity\" or \"-0\"");
    return num_node(d, j, x, out);
  case TAG_BIGINT: return bigint_node(d, member(j, "value"), j, out);
  case TAG_DATE: return dec_date(d, j, out);
  case TAG_REGEXP:
    s = opt_str(d, j, "source", &rc);
    f = opt_str(d, j, "flags", &rc);
    if (rc)
      return rc;
    return dec_regexp(d, j, s, f, out);
  case TAG_URL: return dec_url(d, j, out);
  case TAG_HEADERS: return dec_headers(d, j, out);
  case TAG_ARRAYBUFFER: return dec_arraybuffer(d, j, depth, out);
  default: return dec_boxed(d, j, tag, out);
  }
}

/* ---- containers: node first (shell), contents later (fill) ---------------- */

static int shell_error(struct dec *d, const lmz_json *j, lmz_value **out) {
  int rv;
  int rc = 0;
  const lmz_json *name = opt_str(d, j, "name", &rc);
  const lmz_json *msg = opt_str(d, j, "message", &rc);
  const lmz_json *stack = opt_str(d, j, "stack", &rc);
  if (rc)
    return rc;
  const char *np = name ? name->u.str.p : "Error", *mp = msg ? msg->u.str.p : "";
  const char *sp = stack ? stack->u.str.p : NULL;
  size_t nl = name ? name->u.str.len : 5, ml = msg ? msg->u.str.len : 0;
  size_t sl = stack ? stack->u.str.len : 0;
  if ((rv = clean_str(d, j, &np, &nl)) != 0)
    return rv;
  if ((rv = clean_str(d, j, &mp, &ml)) != 0)
    return rv;
  if (sp) {
    if ((rv = clean_str(d, j, &sp, &sl)) != 0)
      return rv;
  }
  lmz_value *e = lmz_error_n(d->a, np, nl, mp, ml);
  if (!e || (sp && lmz_error_set_stack(e, sp, sl)))
    return nomem(d, j);
  *out = e;
  return 0;
}

static int shell_new(struct dec *d, const lmz_json *j, int tag,
                     lmz_value **out) {
  lmz_value *v;
  if (j->type == LMZ_JSON_ARRAY) {
    v = lmz_array(d->a, j->n);
  } else if (tag == TAG_MAP) {
    v = lmz_map(d->a);
  } else if (tag == TAG_SET) {
    v = lmz_set(d->a);
  } else if (tag == TAG_ERROR) {
    return shell_error(d, j, out);
  } else {
    v = lmz_object(d->a);
    if (v && tag != TAG_FUNCTION && lmz__value_reserve(v, j->n))
      v = NULL;
  }
  *out = v;
  return v ? 0 : nomem(d, j);
}

static const char *unescape_key(const char *k, size_t *klen) {
  if (*klen >= 2 && k[0] == '$' && k[1] == '$') {
    (*klen)--;
    return k + 1;
  }
  return k;
}

static int fill_array(struct dec *d, const lmz_json *j, lmz_value *arr,
                      uint32_t depth) {
  int rv;
  if (lmz__value_reserve(arr, j->n))
    return nomem(d, j);
  for (uint32_t i = 0; i < j->n; i++) {
    lmz_value *x;
    if ((rv = dec_value(d, j->u.items[i], depth + 1, true, &x)) != 0)
      return rv;
    arr->u.items[arr->n++] = x; /* room reserved above */
  }
  return 0;
}

static int fill_object(struct dec *d, const lmz_json *j, lmz_value *obj,
                       uint32_t depth) {
  int rv;
  for (uint32_t i = 0; i < j->n; i++) {
    const struct lmz_json_member *m = &j->u.members[i];
    size_t klen = m->klen;
    const char *k = unescape_key(m->key, &klen);
    lmz_value *x;
    if ((rv = dec_value(d, m->val, depth + 1, false, &x)) != 0)
      return rv;
    if ((rv = clean_str(d, m->val, &k, &klen)) != 0)
      return rv;
    if (lmz_object_set(obj, k, klen, x))
      return nomem(d, m->val);
  }
  return 0;
}

static int fill_map(struct dec *d, const lmz_json *j, lmz_value *map,
                    uint32_t depth) {
  int rv;
  const lmz_json *en = member(j, "entries");
  if (!en)
    return 0;
  if (en->type != LMZ_JSON_ARRAY)
    return fail(d, LMZ_EBADMSG, en, "map entries must be an array");
  if (lmz__value_reserve(map, en->n))
    return nomem(d, en);
  for (uint32_t i = 0; i < en->n; i++) {
    const lmz_json *e = en->u.items[i];
    lmz_value *k, *v;
    if (e->type != LMZ_JSON_ARRAY || e->n != 2)
      return fail(d, LMZ_EBADMSG, e, "map entry must be a [key, value] array");
    if ((rv = dec_value(d, e->u.items[0], depth + 1, false, &k)) != 0)
      return rv;
    if ((rv = dec_value(d, e->u.items[1], depth + 1, false, &v)) != 0)
      return rv;
    if (lmz_map_set(map, k, v))
      return nomem(d, e);
  }
  return 0;
}

static int fill_set(struct dec *d, const lmz_json *j, lmz_value *set,
                    uint32_t depth) {
  int rv;
  const lmz_json *vals = member(j, "values");
  if (!vals)
    return 0;
  if (vals->type != LMZ_JSON_ARRAY)
    return fail(d, LMZ_EBADMSG, vals, "set values must be an array");
  if (lmz__value_reserve(set, vals->n))
    return nomem(d, vals);
  for (uint32_t i = 0; i < vals->n; i++) {
    lmz_value *x;
    if ((rv = dec_value(d, vals->u.items[i], depth + 1, false, &x)) != 0)
      return rv;
    if (lmz_set_add(set, x))
      return nomem(d, vals->u.items[i]);
  }
  return 0;
}

static bool error_std_key(const struct lmz_json_member *m) {
  return key_is(m, "$type", 5) || key_is(m, "name", 4) ||
         key_is(m, "message", 7) || key_is(m, "stack", 5) ||
         key_is(m, "cause", 5);
}

static int fill_error(struct dec *d, const lmz_json *j, lmz_value *err,
                      uint32_t depth) {
  int rv;
  const lmz_json *cause = member(j, "cause");
  if (cause) {
    lmz_value *c;
    if ((rv = dec_value(d, cause, depth + 1, false, &c)) != 0)
      return rv;
    if (lmz_error_set_cause(err, c))
      return nomem(d, cause);
  }
  for (uint32_t i = 0; i < j->n; i++) {
    const struct lmz_json_member *m = &j->u.members[i];
    if (error_std_key(m))
      continue;
    size_t klen = m->klen;
    const char *k = unescape_key(m->key, &klen);
    lmz_value *x;
    if ((rv = dec_value(d, m->val, depth + 1, false, &x)) != 0)
      return rv;
    if ((rv = clean_str(d, m->val, &k, &klen)) != 0)
      return rv;
    int rc = lmz_error_set_prop(err, k, klen, x);
    if (rc == LMZ_EINVAL)
      return fail(d, LMZ_EBADMSG, m->val, "invalid error property");
    if (rc)
      return nomem(d, m->val);
  }
  return 0;
}

static int shell_fill(struct dec *d, const lmz_json *j, int tag, lmz_value *v,
                      uint32_t depth) {
  int rv;
  if (j->type == LMZ_JSON_ARRAY)
    return fill_array(d, j, v, depth);
  switch (tag) {
  case TAG_MAP: return fill_map(d, j, v, depth);
  case TAG_SET: return fill_set(d, j, v, depth);
  case TAG_ERROR: return fill_error(d, j, v, depth);
  case TAG_FUNCTION: {
    const lmz_json *name = member(j, "name");
    lmz_value *x;
    if (!name)
      return 0;
    if ((rv = dec_value(d, name, depth + 1, false, &x)) != 0)
      return rv;
    return lmz_object_setc(v, "name", x) ? nomem(d, name) : 0;
  }
  default: return fill_object(d, j, v, depth);
  }
}

/* depth: nesting level of j as a value (json root and alias bodies: 1). */
static int dec_value(struct dec *d, const lmz_json *j, uint32_t depth,
                     bool in_array, lmz_value **out) {
  int rv;
  if ((rv = count_node(d, j)) != 0)
    return rv;
  switch (j->type) {
  case LMZ_JSON_NULL: *out = lmz_null(); return 0;
  case LMZ_JSON_FALSE: *out = lmz_bool(false); return 0;
  case LMZ_JSON_TRUE: *out = lmz_bool(true); return 0;
  case LMZ_JSON_NUMBER: return num_node(d, j, j->u.num, out);
  case LMZ_JSON_STRING: return str_node(d, j, out);
  default: break;
  }
  if (depth > d->max_depth)
    return fail(d, LMZ_ETOODEEP, j, "values nested deeper than %u levels",
                (unsigned)d->max_depth);
  int tag = TAG_NONE;
  if (j->type == LMZ_JSON_OBJECT) {
    if (is_ref(j)) {
      d->nodes--; /* a reference creates nothing */
      return dec_ref(d, j, out);
    }
    tag = tag_of(j);
    if (!tag_is_container(tag))
      return dec_atomic(d, j, tag, depth, in_array, out);
  }
  lmz_value *v;
  if ((rv = shell_new(d, j, tag, &v)) != 0)
    return rv;
  if ((rv = shell_fill(d, j, tag, v, depth)) != 0)
    return rv;
  *out = v;
  return 0;
}

/* ---- aliases -------------------------------------------------------------- */

static int cmp_alias(const void *a, const void *b) {
  const struct alias *x = a, *y = b;
  if (x->id != y->id)
    return x->id < y->id ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Reads meta.aliases into d->al, sorted by id, last duplicate kept. */
static int alias_table(struct dec *d, const lmz_json *aliases) {
  size_t n = aliases->n, w = 0;
  if (n == 0)
    return 0;
  d->al = calloc(n, sizeof(*d->al));
  if (!d->al)
    return fail(d, LMZ_ENOMEM, aliases, "out of memory");
  for (size_t i = 0; i < n; i++) {
    const struct lmz_json_member *m = &aliases->u.members[i];
    lmz_json key = {.type = LMZ_JSON_STRING};
    key.u.str.p = m->key;
    key.u.str.len = m->klen;
    if (!json_u32(&key, &d->al[i].id))
      return fail(d, LMZ_EBADMSG, m->val,
                  "alias id must be a decimal integer below 2^32");
    d->al[i].idx = (uint32_t)i;
    d->al[i].body = m->val;
  }
  qsort(d->al, n, sizeof(*d->al), cmp_alias);
  for (size_t i = 0; i < n; i++) /* keep the last of equal ids */
    if (i + 1 == n || d->al[i + 1].id != d->al[i].id)
      d->al[w++] = d->al[i];
  d->n_al = w;
  d->dense = d->al[w - 1].id == w - 1; /* sorted, unique: ids are 0..w-1 */
  return 0;
}

/* Pass 1 for one alias: a shell for containers, the value for the rest. */
static int alias_build(struct dec *d, struct alias *al) {
  int rv;
  const lmz_json *b = al->body;
  if ((rv = count_node(d, b)) != 0)
    return rv;
  if (b->type == LMZ_JSON_ARRAY) {
    al->state = AL_SHELL;
    return shell_new(d, b, TAG_NONE, &al->v);
  }
  if (b->type != LMZ_JSON_OBJECT) {
    d->nodes--; /* dec_value counts it */
    return dec_value(d, b, 1, false, &al->v);
  }
  if (is_ref(b))
    return fail(d, LMZ_EBADMSG, b, "an alias body cannot be a $ref");
  al->tag = (uint8_t)tag_of(b);
  if (tag_is_container(al->tag)) {
    al->state = AL_SHELL;
    return shell_new(d, b, al->tag, &al->v);
  }
  if (al->tag == TAG_ARRAYBUFFER && member(b, "buffer")) {
    al->state = AL_VIEW; /* after the ArrayBuffers it may point to */
    return 0;
  }
  return dec_atomic(d, b, al->tag, 1, false, &al->v);
}

static int decode_aliases(struct dec *d) {
  int rv;
  for (size_t i = 0; i < d->n_al; i++) {
    if ((rv = alias_build(d, &d->al[i])) != 0)
      return rv;
  }
  for (size_t i = 0; i < d->n_al; i++)
    if (d->al[i].state == AL_VIEW) {
      if ((rv = dec_arraybuffer(d, d->al[i].body, 1, &d->al[i].v)) != 0)
        return rv;
    }
  for (size_t i = 0; i < d->n_al; i++)
    if (d->al[i].state == AL_SHELL) {
      if ((rv = shell_fill(d, d->al[i].body, d->al[i].tag, d->al[i].v, 1)) != 0)
        return rv;
    }
  return 0;
}

static int decode_root(struct dec *d, const lmz_json *doc, lmz_value **out) {
  int rv;
  if (doc->type != LMZ_JSON_OBJECT)
    return fail(d, LMZ_EBADMSG, doc, "SC-JSON must be an object");
  const lmz_json *json = member(doc, "json"), *meta = member(doc, "meta");
  if (!json)
    return fail(d, LMZ_EBADMSG, doc, "SC-JSON object has no \"json\" member");
  if (meta && meta->type != LMZ_JSON_OBJECT)
    return fail(d, LMZ_EBADMSG, meta, "meta must be an object");
  const lmz_json *aliases = meta ? member(meta, "aliases") : NULL;
  if (aliases && aliases->type != LMZ_JSON_OBJECT)
    return fail(d, LMZ_EBADMSG, aliases, "meta.aliases must be an object");
  if (aliases) {
    if ((rv = alias_table(d, aliases)) != 0)
      return rv;
  }
  if ((rv = decode_aliases(d)) != 0)
    return rv;
  return dec_value(d, json, 1, false, out);
}

/* Rough byte size of the text a DOM came from: the offset of its last leaf
 * (found by following last children, O(depth)) plus the leaf's length. */
static size_t dom_extent(const lmz_json *j) {
  size_t start = j->offset;
  while ((j->type == LMZ_JSON_ARRAY || j->type == LMZ_JSON_OBJECT) && j->n)
    j = j->type == LMZ_JSON_ARRAY ? j->u.items[j->n - 1]
                                  : j->u.members[j->n - 1].val;
  size_t leaf = j->type == LMZ_JSON_STRING ? 2 * j->u.str.len + 2 : 32;
  return j->offset - start + leaf + 2;
}

static int decode_limited(lmz_arena *a, const lmz_json *doc, size_t input,
                          const struct lmz_codec_limits *limits,
                          lmz_value **out, struct lmz_codec_error *err) {
  struct lmz_codec_limits lim;
  if (limits)
    lim = *limits;
  else
    lmz_codec_limits_default(&lim);
  struct dec d = {.a = a, .err = err, .max_depth = lim.max_depth,
                  .max_nodes = lim.max_nodes};
  if (d.max_depth == 0)
    d.max_depth = 512;
  if (d.max_nodes == 0)
    d.max_nodes = (size_t)4 << 20;
  d.budget = lim.max_memory;
  if (d.budget == 0)
    d.budget = input > (SIZE_MAX - ((size_t)1 << 20)) / 16
                   ? SIZE_MAX
                   : 16 * input + ((size_t)1 << 20);
  size_t old = lmz__arena_limit(a), used = lmz_arena_used(a);
  d.limit = used > SIZE_MAX - d.budget ? 0 : used + d.budget;
  if (old && (d.limit == 0 || old < d.limit))
    d.limit = old;
  lmz_arena_set_limit(a, d.limit);
  lmz_value *v = NULL;
  int rc = decode_root(&d, doc, &v);
  lmz_arena_set_limit(a, old);
  free(d.al);
  if (rc == 0)
    *out = v;
  return rc;
}

static void err_clear(struct lmz_codec_error *err) {
  err->code = 0;
  err->offset = 0;
  err->msg[0] = 0;
}

int lmz_scjson_decode_dom(lmz_arena *a, const struct lmz_json *doc,
                          const struct lmz_codec_limits *limits,
                          lmz_value **out, struct lmz_codec_error *err) {
  struct lmz_codec_error dummy;
  if (!err)
    err = &dummy;
  err_clear(err);
  if (!a || !doc || !out) {
    err->code = LMZ_EINVAL;
    snprintf(err->msg, sizeof(err->msg), "NULL argument");
    return LMZ_EINVAL;
  }
  return decode_limited(a, doc, dom_extent(doc), limits, out, err);
}

int lmz_scjson_decode(lmz_arena *a, const char *text, size_t len,
                      const struct lmz_codec_limits *limits, lmz_value **out,
                      struct lmz_codec_error *err) {
  struct lmz_codec_error dummy;
  struct lmz_codec_limits lim;
  if (!err)
    err = &dummy;
  err_clear(err);
  if (!a || (!text && len) || !out) {
    err->code = LMZ_EINVAL;
    snprintf(err->msg, sizeof(err->msg), "NULL argument");
    return LMZ_EINVAL;
  }
  if (limits)
    lim = *limits;
  else
    lmz_codec_limits_default(&lim);
  if (lim.max_input && len > lim.max_input) {
    err->code = LMZ_ETOOBIG;
    err->offset = lim.max_input;
    snprintf(err->msg, sizeof(err->msg), "input of %zu bytes exceeds %zu",
             len, lim.max_input);
    return LMZ_ETOOBIG;
  }
  /* JSON nests deeper than values: a Map entry is two arrays deep, and the
   * document wraps the values in {"json"} / {"meta":{"aliases"}}. */
  uint32_t vd = lim.max_depth ? lim.max_depth : 512;
  struct lmz_json_opts opts = {
      .max_depth = vd > (UINT32_MAX - 8) / 3 ? UINT32_MAX : 3 * vd + 8,
      .max_len = lim.max_input ? lim.max_input : len + 1};
  lmz_arena *scratch = lmz_arena_new();
  if (!scratch) {
    err->code = LMZ_ENOMEM;
    snprintf(err->msg, sizeof(err->msg), "out of memory");
    return LMZ_ENOMEM;
  }
  lmz_json *doc;
  int rc = lmz_json_parse(scratch, text ? text : "", len, &opts, &doc, err);
  if (rc == 0)
    rc = decode_limited(a, doc, len, &lim, out, err);
  lmz_arena_free(scratch);
  return rc;
}
