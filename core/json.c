/* core/json.c - JSON DOM parser (RFC 8259, optional JSONC) and writers.
 *
 * Happy path (parse): one pass over the text with an explicit stack of open
 * containers (no recursion at all). Children of an open container collect on
 * a scratch stack (heap, reused for the whole parse) and are copied into an
 * exactly sized arena array when the container closes, so the DOM costs one
 * arena allocation per node plus one per container. Strings without escapes
 * are found with an 8-bytes-at-a-time scan and copied once; integers and
 * short decimals are converted without strtod (Clinger's exact fast path).
 *
 * Failure modes (parse), all returning an error code plus err->offset/msg:
 *   1. text longer than max_len: LMZ_ETOOBIG at offset max_len.
 *   2. syntax error: LMZ_ESYNTAX at the offending byte, the message says what
 *      was expected and what was found ("found 'x'" / "found end of input").
 *      An unterminated string or block comment is reported at its start.
 *   3. more than max_depth open containers: LMZ_ETOODEEP at the bracket.
 *   4. arena (or scratch malloc) exhausted: LMZ_ENOMEM at the current byte.
 *   Whatever was allocated in the arena before the error stays there.
 *
 * Writers append to an lmz_buf and return its errors (ENOMEM / ETOOBIG).
 * lmz_json_write_string follows JSON.stringify (ECMA-262 QuoteJSONString):
 * runs of plain ASCII are copied whole; WTF-8 surrogates are escaped, or
 * joined when a high one precedes a low one; ill-formed UTF-8 becomes U+FFFD
 * per maximal subpart (the WHATWG decoder's count).
 * lmz_json_format_number follows Number::toString (ECMA-262 6.1.6.1.20).
 * Shortest digits: integers and short decimals (d = t / 10^k, t < 10^15)
 * are exact without printf; otherwise one "%.16e" gives 17 correctly rounded
 * digits, their 15- and 16-digit roundings are checked for read-back with
 * exact arithmetic where possible, strtod where not. Checked against
 * Node.js (String(x), JSON.stringify) by the ctest core.json_numfmt_node on
 * a million seeded doubles (random bits, powers of two, subnormals,
 * neighbours of short decimals, the exponent-form switches):
 * tests/unit/core/numfmt/. */
#include "core/json.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/utf8.h"

#define JSON_DEFAULT_DEPTH 512u
#define JSON_DEFAULT_MAX_LEN ((size_t)64 << 20)
#define SCRATCH_INLINE 64

/* ---- parser state -------------------------------------------------------- */

struct frame {
  lmz_json *node; /* the open container */
  size_t base;    /* its first child on the items / members scratch stack */
};

struct parser {
  lmz_arena *a;
  const char *text, *p, *end;
  bool jsonc;
  uint32_t max_depth;
  struct lmz_codec_error *err;
  /* scratch stacks; start in the inline arrays, move to the heap if needed */
  lmz_json **items;
  size_t n_items, cap_items;
  struct lmz_json_member *mem;
  size_t n_mem, cap_mem;
  struct frame *frames;
  size_t depth, cap_frames;
  char *sbuf; /* unescape buffer for strings with escapes (heap) */
  size_t scap;
  lmz_json *items_inline[SCRATCH_INLINE];
  struct lmz_json_member mem_inline[SCRATCH_INLINE];
  struct frame frames_inline[SCRATCH_INLINE];
};

/* Describes the byte at p for "found ..." in messages. */
static void describe(const struct parser *ps, const char *p, char *out,
                     size_t n) {
  if (p >= ps->end)
    snprintf(out, n, "end of input");
  else if ((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f)
    snprintf(out, n, "'%c'", *p);
  else
    snprintf(out, n, "byte 0x%02x", (unsigned char)*p);
}

static int fail(struct parser *ps, int code, const char *at, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));
static int fail(struct parser *ps, int code, const char *at, const char *fmt,
                ...) {
  va_list ap;
  va_start(ap, fmt);
  ps->err->code = code;
  ps->err->offset = (size_t)(at - ps->text);
  vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
  va_end(ap);
  return code;
}

/* "expected <what>, found <byte at p>" */
static int fail_expected(struct parser *ps, const char *p, const char *what) {
  char found[24];
  describe(ps, p, found, sizeof found);
  return fail(ps, LMZ_ESYNTAX, p, "expected %s, found %s", what, found);
}

/* Doubles a scratch stack (inline first, then heap). Returns the new array,
 * or NULL (the old one stays valid) on out of memory. */
static void *grow(void *arr, size_t *cap, size_t elem, const void *inline_arr) {
  size_t ncap = *cap * 2;
  void *p;
  if (arr == inline_arr) {
    p = malloc(ncap * elem);
    if (p)
      memcpy(p, arr, *cap * elem);
  } else {
    p = realloc(arr, ncap * elem);
  }
  if (p)
    *cap = ncap;
  return p;
}

/* ---- whitespace and comments --------------------------------------------- */

static inline bool is_ws(unsigned char c) {
  return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Skips one JSONC comment at ps->p (which is '/'). */
static int skip_comment(struct parser *ps) {
  const char *start = ps->p, *p = ps->p + 1;
  if (p < ps->end && *p == '/') {
    const char *nl = memchr(p, '\n', (size_t)(ps->end - p));
    ps->p = nl ? nl + 1 : ps->end;
    return 0;
  }
  if (p < ps->end && *p == '*') {
    for (p++; p + 1 < ps->end; p++) {
      p = memchr(p, '*', (size_t)(ps->end - 1 - p));
      if (!p)
        break;
      if (p[1] == '/') {
        ps->p = p + 2;
        return 0;
      }
    }
    return fail(ps, LMZ_ESYNTAX, start,
                "unterminated block comment: expected '*/', found end of "
                "input");
  }
  return fail_expected(ps, p, "'/' or '*' after '/' to start a comment");
}

/* Skips whitespace (and comments in JSONC mode). Strict mode leaves a '/' in
 * place; the caller then reports it as unexpected. */
static int skip_ws_slow(struct parser *ps) {
  for (;;) {
    while (ps->p < ps->end && is_ws((unsigned char)*ps->p))
      ps->p++;
    if (ps->p == ps->end || *ps->p != '/' || !ps->jsonc)
      return 0;
    int rv = skip_comment(ps);
    if (rv)
      return rv;
  }
}

/* Compact JSON mostly has no space between tokens: one compare for that. */
static inline __attribute__((always_inline)) int skip_ws(struct parser *ps) {
  if (ps->p < ps->end && (unsigned char)*ps->p > ' ' && *ps->p != '/')
    return 0;
  return skip_ws_slow(ps);
}

/* ---- strings ------------------------------------------------------------- */

/* Bytes that end a plain run inside a string: '"', '\\' and controls. */
static const unsigned char str_special[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, ['\\'] = 1};

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
/* Marks (high bit) bytes of w below n; the lowest mark is exact. */
static inline uint64_t has_less(uint64_t w, unsigned n) {
  return (w - ONES * n) & ~w & HIGHS;
}
static inline uint64_t has_byte(uint64_t w, unsigned c) {
  uint64_t x = w ^ (ONES * c);
  return (x - ONES) & ~x & HIGHS;
}

/* First byte in [p, end) that is '"', '\\' or < 0x20 (end if none). */
static inline const char *scan_plain(const char *p, const char *end) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (end - p >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    uint64_t t = has_byte(w, '"') | has_byte(w, '\\') | has_less(w, 0x20);
    if (t)
      return p + (__builtin_ctzll(t) >> 3);
    p += 8;
  }
#endif
  while (p < end && !str_special[(unsigned char)*p])
    p++;
  return p;
}

/* Value of 4 hex digits at p, or -1 - (index of the first bad byte). */
static long hex4(const char *p, const char *end) {
  long v = 0;
  for (int i = 0; i < 4; i++, p++) {
    unsigned c = p < end ? (unsigned char)*p : 0u, d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
      d = (c | 0x20) - 'a' + 10;
    else
      return -1 - i;
    v = v << 4 | (long)d;
  }
  return v;
}

/* Decodes the escape at *pp (a backslash) into out (room for 4 bytes);
 * advances *pp past it. A \uD800-\uDBFF followed by a \uDC00-\uDFFF escape
 * becomes one 4-byte character; any other surrogate becomes WTF-8. */
static int unescape(struct parser *ps, const char **pp, char *out, size_t *n) {
  const char *p = *pp + 1;
  static const char simple[256] = {
      ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
      ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t'};
  if (p < ps->end && simple[(unsigned char)*p]) {
    out[0] = simple[(unsigned char)*p];
    *n = 1;
    *pp = p + 1;
    return 0;
  }
  if (p >= ps->end || *p != 'u') {
    char found[24];
    describe(ps, p, found, sizeof found);
    return fail(ps, LMZ_ESYNTAX, *pp,
                "invalid escape in string: expected one of \\\" \\\\ \\/ \\b "
                "\\f \\n \\r \\t \\u after '\\', found %s",
                found);
  }
  long cu = hex4(p + 1, ps->end), lo;
  if (cu < 0)
    return fail_expected(ps, p + 1 + (-1 - cu), "4 hex digits after '\\u'");
  p += 5;
  if (cu >= 0xD800 && cu <= 0xDBFF && ps->end - p >= 6 && p[0] == '\\' &&
      p[1] == 'u' && (lo = hex4(p + 2, ps->end)) >= 0xDC00 && lo <= 0xDFFF) {
    cu = (long)lmz__utf16_join((uint32_t)cu, (uint32_t)lo);
    p += 6;
  }
  *n = lmz__utf8_put((unsigned char *)out, (uint32_t)cu);
  *pp = p;
  return 0;
}

/* Slow path for a string with escapes: unescapes into ps->sbuf, starting
 * with the plain prefix [s, q). q is at the first backslash. */
static int parse_string_slow(struct parser *ps, const char *s, const char *q,
                             const char **out, size_t *outlen) {
  size_t n = 0;
  const char *p = s;
  for (;;) {
    size_t run = (size_t)(q - p);
    if (ps->scap - n < run + 4) { /* +4: room for one decoded escape */
      size_t ncap = ps->scap ? ps->scap : 256;
      while (ncap - n < run + 4)
        ncap *= 2;
      char *nb = realloc(ps->sbuf, ncap);
      if (!nb)
        return fail(ps, LMZ_ENOMEM, q, "out of memory");
      ps->sbuf = nb;
      ps->scap = ncap;
    }
    memcpy(ps->sbuf + n, p, run);
    n += run;
    if (q == ps->end)
      return fail(ps, LMZ_ESYNTAX, s - 1,
                  "unterminated string: expected '\"', found end of input");
    if (*q == '"')
      break;
    if (*q != '\\')
      return fail(ps, LMZ_ESYNTAX, q,
                  "control character 0x%02x in string must be escaped",
                  (unsigned char)*q);
    size_t k = 0;
    int rv = unescape(ps, &q, ps->sbuf + n, &k);
    if (rv)
      return rv;
    n += k;
    p = q;
    q = scan_plain(q, ps->end);
  }
  char *str = lmz_arena_strndup(ps->a, ps->sbuf, n);
  if (!str)
    return fail(ps, LMZ_ENOMEM, q, "out of memory");
  *out = str;
  *outlen = n;
  ps->p = q + 1;
  return 0;
}

/* Parses the string at ps->p (a '"') into the arena. */
static inline int parse_string(struct parser *ps, const char **out,
                               size_t *outlen) {
  const char *s = ps->p + 1;
  const char *q = scan_plain(s, ps->end);
  if (q < ps->end && *q == '"') {
    char *str = lmz_arena_strndup(ps->a, s, (size_t)(q - s));
    if (!str)
      return fail(ps, LMZ_ENOMEM, ps->p, "out of memory");
    *out = str;
    *outlen = (size_t)(q - s);
    ps->p = q + 1;
    return 0;
  }
  return parse_string_slow(ps, s, q, out, outlen);
}

/* ---- numbers ------------------------------------------------------------- */

static const double pow10_exact[23] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline bool is_digit(const char *p, const char *end) {
  return p < end && (unsigned char)(*p - '0') < 10;
}

/* strtod on [s, e), which is not NUL-terminated. */
static int slow_strtod(struct parser *ps, const char *s, const char *e,
                       double *out) {
  size_t n = (size_t)(e - s);
  char local[64], *buf = local;
  if (n >= sizeof local) {
    buf = malloc(n + 1);
    if (!buf)
      return fail(ps, LMZ_ENOMEM, s, "out of memory");
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  *out = strtod(buf, NULL); /* C locale: we never call setlocale */
  if (buf != local)
    free(buf);
  return 0;
}

/* Number grammar (RFC 8259 section 6):
 *   -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
 * Up to 19 significant digits are gathered in m; when m <= 2^53 and the
 * decimal exponent is within +-22, m * 10^e (or m / 10^e) is exact, i.e.
 * correctly rounded with one operation (Clinger 1990). Else strtod. */
static int parse_number(struct parser *ps, double *out) {
  const char *s = ps->p, *p = s, *end = ps->end;
  bool neg = *p == '-';
  uint64_t m = 0;
  int exp10 = 0;
  bool slow = false;
  p += neg;
  if (!is_digit(p, end))
    return fail_expected(ps, p, "digit after '-'");
  if (*p == '0') {
    if (is_digit(++p, end))
      return fail(ps, LMZ_ESYNTAX, p,
                  "expected '.', 'e' or end of number after leading '0', "
                  "found '%c' (leading zeros are not allowed)",
                  *p);
  } else {
    for (; is_digit(p, end); p++) {
      if (m < UINT64_C(1000000000000000000))
        m = m * 10 + (unsigned)(*p - '0');
      else
        slow = true;
    }
  }
  if (p < end && *p == '.') {
    if (!is_digit(++p, end))
      return fail_expected(ps, p, "digit after '.' in number");
    for (; is_digit(p, end); p++) {
      if (m < UINT64_C(1000000000000000000)) {
        m = m * 10 + (unsigned)(*p - '0');
        exp10 -= exp10 > -1000000000; /* no wrap on absurd inputs */
      } else {
        slow = true;
      }
    }
  }
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool eneg = p < end && *p == '-';
    if (p < end && (*p == '-' || *p == '+'))
      p++;
    if (!is_digit(p, end))
      return fail_expected(ps, p, "digit in number exponent");
    int e = 0;
    for (; is_digit(p, end); p++)
      if (e < 100000)
        e = e * 10 + (*p - '0');
    exp10 += eneg ? -e : e;
  }
  ps->p = p;
  if (!slow && m <= (UINT64_C(1) << 53) && exp10 >= -22 && exp10 <= 22) {
    double d = (double)m;
    d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    *out = neg ? -d : d;
    return 0;
  }
  return slow_strtod(ps, s, p, out);
}

/* ---- values -------------------------------------------------------------- */

static inline lmz_json *new_node(struct parser *ps, uint8_t type,
                                 const char *at) {
  lmz_json *j = lmz_arena_alloc(ps->a, sizeof *j);
  if (j) {
    j->type = type;
    j->n = 0;
    j->offset = (size_t)(at - ps->text);
  }
  return j;
}

static int parse_literal(struct parser *ps, const char *word, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *p = ps->p + i;
    if (p >= ps->end || *p != word[i]) {
      char found[24];
      describe(ps, p, found, sizeof found);
      return fail(ps, LMZ_ESYNTAX, p,
                  "invalid literal: expected '%s', found %s", word, found);
    }
  }
  ps->p += n;
  return 0;
}

/* Parses a non-container value at ps->p into *out. */
static int parse_scalar(struct parser *ps, lmz_json **out) {
  const char *at = ps->p;
  char c = at < ps->end ? *at : 0;
  lmz_json *j;
  int rv;
  if (c == '"') {
    const char *s;
    size_t len;
    if ((rv = parse_string(ps, &s, &len)))
      return rv;
    if (!(j = new_node(ps, LMZ_JSON_STRING, at)))
      goto nomem;
    j->u.str.p = s;
    j->u.str.len = len;
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    double d = 0;
    if ((rv = parse_number(ps, &d)))
      return rv;
    if (!(j = new_node(ps, LMZ_JSON_NUMBER, at)))
      goto nomem;
    j->u.num = d;
  } else if (c == 't' || c == 'f' || c == 'n') {
    static const char *const words[] = {"true", "false", "null"};
    static const uint8_t types[] = {LMZ_JSON_TRUE, LMZ_JSON_FALSE,
                                    LMZ_JSON_NULL};
    int w = c == 't' ? 0 : c == 'f' ? 1 : 2;
    if ((rv = parse_literal(ps, words[w], strlen(words[w]))))
      return rv;
    if (!(j = new_node(ps, types[w], at)))
      goto nomem;
  } else if (c == '/' && !ps->jsonc) {
    return fail(ps, LMZ_ESYNTAX, at,
                "expected a JSON value, found '/' (comments are allowed only "
                "in JSONC)");
  } else {
    return fail_expected(ps, at, "a JSON value");
  }
  *out = j;
  return 0;
nomem:
  return fail(ps, LMZ_ENOMEM, at, "out of memory");
}

/* Opens the container at ps->p ('[' or '{'): pushes a frame. */
static int open_container(struct parser *ps) {
  const char *at = ps->p;
  if (ps->depth >= ps->max_depth)
    return fail(ps, LMZ_ETOODEEP, at,
                "nesting deeper than the limit of %u containers",
                (unsigned)ps->max_depth);
  bool obj = *at == '{';
  lmz_json *j = new_node(ps, obj ? LMZ_JSON_OBJECT : LMZ_JSON_ARRAY, at);
  if (!j)
    return fail(ps, LMZ_ENOMEM, at, "out of memory");
  j->u.items = NULL;
  if (ps->depth == ps->cap_frames) {
    struct frame *nf =
        grow(ps->frames, &ps->cap_frames, sizeof *nf, ps->frames_inline);
    if (!nf)
      return fail(ps, LMZ_ENOMEM, at, "out of memory");
    ps->frames = nf;
  }
  ps->frames[ps->depth].node = j;
  ps->frames[ps->depth].base = obj ? ps->n_mem : ps->n_items;
  ps->depth++;
  ps->p++;
  return 0;
}

/* Closes the innermost container: copies its children from the scratch
 * stack into an exactly sized arena array. *out = the container. */
static int close_container(struct parser *ps, lmz_json **out) {
  struct frame *f = &ps->frames[--ps->depth];
  lmz_json *j = f->node;
  bool obj = j->type == LMZ_JSON_OBJECT;
  size_t n = (obj ? ps->n_mem : ps->n_items) - f->base;
  if (n > UINT32_MAX)
    return fail(ps, LMZ_ETOOBIG, ps->p, "more than 2^32-1 elements");
  if (n) {
    size_t sz = obj ? n * sizeof *ps->mem : n * sizeof *ps->items;
    void *dst = lmz_arena_alloc(ps->a, sz);
    if (!dst)
      return fail(ps, LMZ_ENOMEM, ps->p, "out of memory");
    if (obj) {
      memcpy(dst, ps->mem + f->base, sz);
      j->u.members = dst;
      ps->n_mem = f->base;
    } else {
      memcpy(dst, ps->items + f->base, sz);
      j->u.items = dst;
      ps->n_items = f->base;
    }
  }
  j->n = (uint32_t)n;
  ps->p++;
  *out = j;
  return 0;
}

/* Parses `"key" :` into a new member slot of the innermost object. */
static int parse_key(struct parser *ps) {
  const char *key;
  size_t klen;
  int rv = parse_string(ps, &key, &klen);
  if (rv)
    return rv;
  if ((rv = skip_ws(ps)))
    return rv;
  if (ps->p >= ps->end || *ps->p != ':')
    return fail_expected(ps, ps->p, "':' after object key");
  ps->p++;
  if (ps->n_mem == ps->cap_mem) {
    struct lmz_json_member *nm =
        grow(ps->mem, &ps->cap_mem, sizeof *nm, ps->mem_inline);
    if (!nm)
      return fail(ps, LMZ_ENOMEM, ps->p, "out of memory");
    ps->mem = nm;
  }
  ps->mem[ps->n_mem].key = key;
  ps->mem[ps->n_mem].klen = klen;
  ps->mem[ps->n_mem].val = NULL;
  ps->n_mem++;
  return 0;
}

/* After '{' or ',' in an object: a key, or '}' (after ',' only in JSONC). */
static int object_next(struct parser *ps, bool after_comma, bool *closed) {
  int rv = skip_ws(ps);
  if (rv)
    return rv;
  *closed = false;
  if (ps->p < ps->end && *ps->p == '"')
    return parse_key(ps);
  if (ps->p < ps->end && *ps->p == '}') {
    if (!after_comma || ps->jsonc) {
      *closed = true;
      return 0;
    }
    return fail(ps, LMZ_ESYNTAX, ps->p,
                "expected a string key after ',', found '}' (trailing "
                "commas are allowed only in JSONC)");
  }
  return fail_expected(ps, ps->p,
                       after_comma && !ps->jsonc ? "a string key"
                                                 : "a string key or '}'");
}

/* After '[' or ',' in an array: is the next byte a closing ']'? */
static int array_closes(struct parser *ps, bool after_comma, bool *closed) {
  int rv = skip_ws(ps);
  if (rv)
    return rv;
  *closed = ps->p < ps->end && *ps->p == ']';
  if (*closed && after_comma && !ps->jsonc)
    return fail(ps, LMZ_ESYNTAX, ps->p,
                "expected a JSON value after ',', found ']' (trailing commas "
                "are allowed only in JSONC)");
  return 0;
}

/* Attaches a finished value to the innermost container; then reads ',' (and
 * the next key in an object) or the closing bracket. *closed = the container
 * if it closed, else NULL (another value must follow). */
static int after_value(struct parser *ps, lmz_json *v, lmz_json **closed) {
  struct frame *f = &ps->frames[ps->depth - 1];
  bool obj = f->node->type == LMZ_JSON_OBJECT;
  int rv;
  *closed = NULL;
  if (obj) {
    ps->mem[ps->n_mem - 1].val = v;
  } else {
    if (ps->n_items == ps->cap_items) {
      lmz_json **ni =
          grow(ps->items, &ps->cap_items, sizeof *ni, ps->items_inline);
      if (!ni)
        return fail(ps, LMZ_ENOMEM, ps->p, "out of memory");
      ps->items = ni;
    }
    ps->items[ps->n_items++] = v;
  }
  if ((rv = skip_ws(ps)))
    return rv;
  char c = ps->p < ps->end ? *ps->p : 0;
  if (c == ',') {
    bool done;
    ps->p++;
    rv = obj ? object_next(ps, true, &done) : array_closes(ps, true, &done);
    if (rv)
      return rv;
    return done ? close_container(ps, closed) : 0;
  }
  if (c == (obj ? '}' : ']'))
    return close_container(ps, closed);
  return fail_expected(ps, ps->p,
                       obj ? "',' or '}' after object member"
                           : "',' or ']' after array element");
}

/* The main loop: values, containers opening and closing, until the root
 * value is complete. Iterative; depth lives in ps->frames. */
static int parse_root(struct parser *ps, lmz_json **root) {
  int rv;
  for (;;) {
    lmz_json *v = NULL;
    if ((rv = skip_ws(ps)))
      return rv;
    if (ps->p < ps->end && (*ps->p == '[' || *ps->p == '{')) {
      bool obj = *ps->p == '{', closed;
      if ((rv = open_container(ps)))
        return rv;
      rv = obj ? object_next(ps, false, &closed)
               : array_closes(ps, false, &closed);
      if (rv)
        return rv;
      if (!closed)
        continue; /* first child follows */
      if ((rv = close_container(ps, &v)))
        return rv;
    } else if ((rv = parse_scalar(ps, &v))) {
      return rv;
    }
    /* v is complete: hand it up until some container wants another value */
    for (;;) {
      if (ps->depth == 0) {
        *root = v;
        return 0;
      }
      lmz_json *closed;
      if ((rv = after_value(ps, v, &closed)))
        return rv;
      if (!closed)
        break;
      v = closed;
    }
  }
}

static void parser_free(struct parser *ps) {
  if (ps->items != ps->items_inline)
    free(ps->items);
  if (ps->mem != ps->mem_inline)
    free(ps->mem);
  if (ps->frames != ps->frames_inline)
    free(ps->frames);
  free(ps->sbuf);
}

int lmz_json_parse(lmz_arena *a, const char *text, size_t len,
                   const struct lmz_json_opts *opts, lmz_json **out,
                   struct lmz_codec_error *err) {
  struct lmz_codec_error dummy;
  struct parser ps;
  size_t max_len = opts && opts->max_len ? opts->max_len : JSON_DEFAULT_MAX_LEN;
  ps.a = a;
  ps.text = ps.p = text;
  ps.end = text + len;
  ps.jsonc = opts && opts->jsonc;
  ps.max_depth = opts && opts->max_depth ? opts->max_depth : JSON_DEFAULT_DEPTH;
  ps.err = err ? err : &dummy;
  ps.items = ps.items_inline;
  ps.mem = ps.mem_inline;
  ps.frames = ps.frames_inline;
  ps.n_items = ps.n_mem = ps.depth = 0;
  ps.cap_items = ps.cap_mem = ps.cap_frames = SCRATCH_INLINE;
  ps.sbuf = NULL;
  ps.scap = 0;
  if (len > max_len)
    return fail(&ps, LMZ_ETOOBIG, text + max_len,
                "input of %zu bytes exceeds the limit of %zu bytes", len,
                max_len);
  /* RFC 8259 section 8.1: parsers MAY ignore a byte order mark; JSONC
   * files written by editors sometimes carry one. */
  if (ps.jsonc && len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    ps.p += 3;
  lmz_json *root = NULL;
  int rv = parse_root(&ps, &root);
  if (!rv && !(rv = skip_ws(&ps)) && ps.p < ps.end)
    rv = fail_expected(&ps, ps.p, "end of input after the JSON value");
  parser_free(&ps);
  if (rv)
    return rv;
  *out = root;
  return 0;
}

/* ---- lookup and positions ------------------------------------------------ */

lmz_json *lmz_json_get(const lmz_json *obj, const char *key) {
  if (!obj || obj->type != LMZ_JSON_OBJECT)
    return NULL;
  size_t klen = strlen(key);
  for (uint32_t i = obj->n; i-- > 0;) {
    const struct lmz_json_member *m = &obj->u.members[i];
    if (m->klen == klen && memcmp(m->key, key, klen) == 0)
      return m->val;
  }
  return NULL;
}

void lmz_json_line_col(const char *text, size_t len, size_t offset, int *line,
                       int *col) {
  int l = 1, c = 1;
  size_t i = 0;
  if (offset > len)
    offset = len;
  if (offset >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
    i = 3; /* a BOM takes no column */
  for (; i < offset; i++) {
    unsigned char b = (unsigned char)text[i];
    if (b == '\n') {
      l++;
      c = 1;
    } else if ((b & 0xC0) != 0x80) { /* columns count characters */
      c++;
    }
  }
  *line = l;
  *col = c;
}

/* ---- string writer ------------------------------------------------------- */

/* Writes the escape for byte c (< 0x20, '"' or '\\'). */
static int write_escape(lmz_buf *b, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  char e[6] = {'\\', 0, 0, 0, 0, 0};
  static const char short_esc[32] = {
      ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
  if (c == '"' || c == '\\') {
    e[1] = (char)c;
    return lmz_buf_append(b, e, 2);
  }
  if (short_esc[c]) {
    e[1] = short_esc[c];
    return lmz_buf_append(b, e, 2);
  }
  memcpy(e + 1, "u00", 3);
  e[4] = hex[c >> 4];
  e[5] = hex[c & 15];
  return lmz_buf_append(b, e, 6);
}

/* Handles the non-ASCII sequence at s: copies it, joins a WTF-8 surrogate
 * pair into the real character, escapes a lone surrogate as \udXXX, or writes
 * U+FFFD for ill-formed bytes. Returns bytes consumed, or < 0 on error. */
static long write_non_ascii(lmz_buf *b, const unsigned char *s, size_t avail) {
  uint32_t cp, cp2;
  size_t bad, bad2;
  size_t n = lmz__utf8_seq(s, avail, &cp, &bad);
  int rv;
  if (!n) {
    rv = lmz_buf_append(b, "\xEF\xBF\xBD", 3);
    return rv ? rv : (long)bad;
  }
  if (!lmz__utf16_is_high(cp) && !lmz__utf16_is_low(cp)) {
    rv = lmz_buf_append(b, s, n);
    return rv ? rv : (long)n;
  }
  if (lmz__utf16_is_high(cp) && avail > 3 &&
      lmz__utf8_seq(s + 3, avail - 3, &cp2, &bad2) && lmz__utf16_is_low(cp2)) {
    unsigned char u[4];
    lmz__utf8_put(u, lmz__utf16_join(cp, cp2));
    rv = lmz_buf_append(b, u, 4);
    return rv ? rv : 6;
  }
  static const char hex[] = "0123456789abcdef";
  char e[6];
  e[0] = '\\', e[1] = 'u', e[2] = 'd';
  e[3] = hex[(cp >> 8) & 15], e[4] = hex[(cp >> 4) & 15],
  e[5] = hex[cp & 15];
  rv = lmz_buf_append(b, e, 6);
  return rv ? rv : 3;
}

/* Bytes that need care in the writer: controls, '"', '\\', non-ASCII. */
static inline size_t plain_ascii_run(const unsigned char *s, size_t len) {
  size_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (len - i >= 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    uint64_t t =
        has_byte(w, '"') | has_byte(w, '\\') | has_less(w, 0x20) | (w & HIGHS);
    if (t)
      return i + (__builtin_ctzll(t) >> 3);
    i += 8;
  }
#endif
  while (i < len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\')
    i++;
  return i;
}

int lmz_json_write_string(lmz_buf *b, const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = plain_ascii_run(s, len);
  int rv = lmz_buf_reserve(b, len + 2);
  if (rv)
    return rv;
  b->data[b->len++] = '"';
  if (i == len) { /* the common case: nothing to escape, one copy */
    if (len)
      memcpy(b->data + b->len, s, len);
    b->data[b->len + len] = '"';
    b->len += len + 1;
    return 0;
  }
  memcpy(b->data + b->len, s, i); /* i < len: s is not NULL */
  b->len += i;
  while (i < len) {
    size_t run = plain_ascii_run(s + i, len - i);
    if (run && (rv = lmz_buf_append(b, s + i, run)))
      return rv;
    i += run;
    if (i == len)
      break;
    if (s[i] < 0x80) {
      if ((rv = write_escape(b, s[i])))
        return rv;
      i++;
      continue;
    }
    long k = write_non_ascii(b, s + i, len - i);
    if (k < 0)
      return (int)k;
    i += (size_t)k;
  }
  return lmz_buf_putc(b, '"');
}

/* ---- number formatting --------------------------------------------------- */

static const char digit_pairs[] = "0001020304050607080910111213141516171819"
                                  "2021222324252627282930313233343536373839"
                                  "4041424344454647484950515253545556575859"
                                  "6061626364656667686970717273747576777879"
                                  "8081828384858687888990919293949596979899";

/* Decimal digits of v into out (no NUL); returns their count (1..20). */
static int u64_dec(uint64_t v, char *out) {
  char tmp[20];
  int i = 20;
  while (v >= 100) {
    i -= 2;
    memcpy(tmp + i, digit_pairs + 2 * (v % 100), 2);
    v /= 100;
  }
  if (v >= 10) {
    i -= 2;
    memcpy(tmp + i, digit_pairs + 2 * v, 2);
  } else {
    tmp[--i] = (char)('0' + v);
  }
  memcpy(out, tmp + i, (size_t)(20 - i));
  return 20 - i;
}

/* The digits of m x 10^e without trailing zeros; returns their count and
 * sets *point so that the value is 0.DIGITS x 10^point. */
static int emit_digits(uint64_t m, int e, char *digits, int *point) {
  char tmp[20];
  int len = u64_dec(m, tmp), n = len;
  while (n > 1 && tmp[n - 1] == '0')
    n--;
  memcpy(digits, tmp, (size_t)n);
  *point = len + e;
  return n;
}

/* Does the decimal m x 10^e read back (round to nearest) as d? When m <=
 * 2^53 and |e| <= 22 that is one exact operation, the same correctly
 * rounded value strtod computes (Clinger); otherwise ask strtod. */
static bool reads_back(uint64_t m, int e, double d) {
  if (m <= (UINT64_C(1) << 53) && e >= -22 && e <= 22) {
    double x = (double)m;
    return (e < 0 ? x / pow10_exact[-e] : x * pow10_exact[e]) == d;
  }
  char buf[48];
  snprintf(buf, sizeof buf, "%" PRIu64 "e%d", m, e);
  return strtod(buf, NULL) == d;
}

/* Fast path: d = t / 10^k with t an integer below 10^15. Then the digits of
 * t round-trip (t / 10^k is one correctly rounded division, the same value
 * strtod computes) and are the shortest: two different decimals of at most
 * 15 digits never map to the same normal double (DBL_DIG). Returns the digit
 * count, or 0 when d is not such a short decimal. */
static int short_decimal(double d, char *digits, int *point) {
  if (!(d < 1e15 && d >= 1e-22))
    return 0;
  for (int k = 0; k <= 22; k++) {
    double t = d * pow10_exact[k];
    if (t >= 1e15)
      return 0;
    if (t == (double)(int64_t)t && t / pow10_exact[k] == d)
      return emit_digits((uint64_t)t, -k, digits, point);
  }
  return 0;
}

/* Subnormals have fewer significant bits, so short representations are not
 * found by rounding to 15 digits: try every precision (rare, slow). */
static int subnormal_digits(double d, char *digits, int *point) {
  char buf[48];
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec - 1, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  if (prec == 17)
    snprintf(buf, sizeof buf, "%.16e", d);
  uint64_t m = 0;
  const char *e = strchr(buf, 'e');
  for (const char *p = buf; p < e; p++)
    if (*p != '.')
      m = m * 10 + (uint64_t)(*p - '0');
  return emit_digits(m, atoi(e + 1) - (prec - 1), digits, point);
}

/* The k-digit decimal closest to d, as m x 10^e; *up tells whether it lies
 * above d. d17/e17: d's correctly rounded 17 digits. Rounding those again
 * is exact unless the dropped tail is exactly "50..0" (the 17th digit was
 * itself rounded), then printf rounds d directly. */
static void nearest_k(double d, const char *d17, int e17, int k, uint64_t *m,
                      int *e, bool *up) {
  int cmp = 0; /* dropped tail vs half */
  for (int i = k; i < 17 && !cmp; i++)
    cmp = i == k ? d17[i] - '5' : d17[i] - '0';
  uint64_t v = 0;
  for (int i = 0; i < k; i++)
    v = v * 10 + (uint64_t)(d17[i] - '0');
  *e = e17 - (k - 1);
  if (cmp == 0) {
    char buf[48];
    snprintf(buf, sizeof buf, "%.*e", k - 1, d);
    const char *x = strchr(buf, 'e');
    v = 0;
    for (const char *p = buf; p < x; p++)
      if (*p != '.')
        v = v * 10 + (uint64_t)(*p - '0');
    *e = atoi(x + 1) - (k - 1);
    *m = v;
    *up = strtod(buf, NULL) > d;
    return;
  }
  *up = cmp > 0;
  *m = v + *up; /* 99..9 + 1 = 10^k: still the right value, one more digit */
}

/* Shortest round-trip digits of d > 0 (finite), as Number::toString wants
 * them: the fewest digits k that read back as d, the closest to d if there
 * are several. Returns k; *point is n with d = 0.DIGITS x 10^n. */
static int shortest_digits(double d, char *digits, int *point) {
  int n = short_decimal(d, digits, point);
  if (n)
    return n;
  if (d < DBL_MIN)
    return subnormal_digits(d, digits, point);
  /* "%.16e" is correctly rounded (glibc): 17 digits always read back. For a
   * normal double, a representation of <= 15 digits, if any, is the 15-digit
   * rounding of d (DBL_DIG), so only k = 15, 16, 17 need a look. */
  char buf[48], d17[17];
  snprintf(buf, sizeof buf, "%.16e", d); /* D.DDDDDDDDDDDDDDDDe+XX */
  d17[0] = buf[0];
  memcpy(d17 + 1, buf + 2, 16);
  int e17 = atoi(buf + 19);
  for (int k = 15; k <= 16; k++) {
    uint64_t m;
    int e;
    bool up;
    nearest_k(d, d17, e17, k, &m, &e, &up);
    if (reads_back(m, e, d))
      return emit_digits(m, e, digits, point);
    /* Near a power of two the rounding interval is wider above d than
     * below, so the 16-digit neighbour on the other side may read back even
     * though the nearest does not; it is then the answer. */
    uint64_t other = up ? m - 1 : m + 1;
    if (k == 16 && reads_back(other, e, d))
      return emit_digits(other, e, digits, point);
  }
  uint64_t m = 0;
  for (int i = 0; i < 17; i++)
    m = m * 10 + (uint64_t)(d17[i] - '0');
  return emit_digits(m, e17 - 16, digits, point);
}

size_t lmz_json_format_number(double d, char *out) {
  if (isnan(d))
    return (size_t)sprintf(out, "NaN");
  if (isinf(d))
    return (size_t)sprintf(out, d < 0 ? "-Infinity" : "Infinity");
  if (d == 0) {
    out[0] = '0';
    out[1] = 0;
    return 1;
  }
  char *o = out;
  if (d < 0) {
    *o++ = '-';
    d = -d;
  }
  if (d < 9007199254740992.0 && d == (double)(int64_t)d) { /* integer */
    o += u64_dec((uint64_t)d, o);
    *o = 0;
    return (size_t)(o - out);
  }
  char dig[24];
  int n, k = shortest_digits(d, dig, &n);
  if (k <= n && n <= 21) { /* integer: digits then zeros */
    memcpy(o, dig, (size_t)k);
    memset(o + k, '0', (size_t)(n - k));
    o += n;
  } else if (0 < n && n <= 21) { /* decimal point inside the digits */
    memcpy(o, dig, (size_t)n);
    o[n] = '.';
    memcpy(o + n + 1, dig + n, (size_t)(k - n));
    o += k + 1;
  } else if (-6 < n && n <= 0) { /* 0.000ddd */
    memcpy(o, "0.", 2);
    memset(o + 2, '0', (size_t)-n);
    memcpy(o + 2 - n, dig, (size_t)k);
    o += 2 - n + k;
  } else { /* exponent form: d[.ddd]e+-x */
    *o++ = dig[0];
    if (k > 1) {
      *o++ = '.';
      memcpy(o, dig + 1, (size_t)(k - 1));
      o += k - 1;
    }
    *o++ = 'e';
    *o++ = n - 1 < 0 ? '-' : '+';
    o += u64_dec((uint64_t)abs(n - 1), o);
  }
  *o = 0;
  return (size_t)(o - out);
}

int lmz_json_write_number(lmz_buf *b, double d) {
  if (!isfinite(d)) /* JSON.stringify writes NaN and Infinity as null */
    return lmz_buf_append(b, "null", 4);
  int rv = lmz_buf_reserve(b, 32);
  if (rv)
    return rv;
  b->len += lmz_json_format_number(d, (char *)b->data + b->len);
  return 0;
}

/* ---- DOM writer ---------------------------------------------------------- */

struct wframe {
  const lmz_json *node;
  uint32_t i; /* next child */
};

static int write_scalar(lmz_buf *b, const lmz_json *j) {
  switch (j->type) {
  case LMZ_JSON_NULL:
    return lmz_buf_append(b, "null", 4);
  case LMZ_JSON_FALSE:
    return lmz_buf_append(b, "false", 5);
  case LMZ_JSON_TRUE:
    return lmz_buf_append(b, "true", 4);
  case LMZ_JSON_NUMBER:
    return lmz_json_write_number(b, j->u.num);
  case LMZ_JSON_STRING:
    return lmz_json_write_string(b, j->u.str.p, j->u.str.len);
  default:
    return LMZ_EINVAL;
  }
}

/* Iterative (explicit stack), so a DOM of any depth is safe to write. */
int lmz_json_write(lmz_buf *b, const lmz_json *node) {
  struct wframe small[SCRATCH_INLINE], *st = small;
  size_t depth = 0, cap = SCRATCH_INLINE;
  int rv = 0;
  for (;;) {
    bool container =
        node->type == LMZ_JSON_ARRAY || node->type == LMZ_JSON_OBJECT;
    if (!container) {
      if ((rv = write_scalar(b, node)))
        break;
    } else {
      if ((rv = lmz_buf_putc(b, node->type == LMZ_JSON_ARRAY ? '[' : '{')))
        break;
      if (depth == cap) {
        struct wframe *ns = grow(st, &cap, sizeof *ns, small);
        if (!ns) {
          rv = LMZ_ENOMEM;
          break;
        }
        st = ns;
      }
      st[depth].node = node;
      st[depth++].i = 0;
    }
    /* find the next child to write, closing finished containers */
    node = NULL;
    while (depth > 0 && !node) {
      struct wframe *f = &st[depth - 1];
      bool obj = f->node->type == LMZ_JSON_OBJECT;
      if (f->i == f->node->n) {
        if ((rv = lmz_buf_putc(b, obj ? '}' : ']')))
          goto out;
        depth--;
        continue;
      }
      if (f->i > 0 && (rv = lmz_buf_putc(b, ',')))
        goto out;
      if (obj) {
        const struct lmz_json_member *m = &f->node->u.members[f->i];
        if ((rv = lmz_json_write_string(b, m->key, m->klen)) ||
            (rv = lmz_buf_putc(b, ':')))
          goto out;
        node = m->val;
      } else {
        node = f->node->u.items[f->i];
      }
      f->i++;
    }
    if (!node)
      break;
  }
out:
  if (st != small)
    free(st);
  return rv;
}
