/* core/codec_bin.c - the binary encoding of lmz_value (node-to-node messages,
 * storage, alarms).
 *
 * LAYOUT (version 1). A message is a two-byte header then exactly one value:
 *
 *   +------+---------+=========+
 *   | 0xB7 | version |  value  |      version = 0x01
 *   +------+---------+=========+
 *
 * A value is one tag byte and a payload. varint = unsigned LEB128 (at most 10
 * bytes, 64 bits); bytes(n) = a varint length n then n raw bytes; f64 = an
 * IEEE-754 double, 8 bytes little-endian; u8 = one byte.
 *
 *   tag        type          payload
 *   0x00       undefined     -
 *   0x01       null          -
 *   0x02/0x03  false/true    -
 *   0x04       hole          -  (only as an array item)
 *   0x05       number        varint zigzag(i): an integer |i| <= 2^53, not -0
 *   0x06       number        f64 (anything else: -0, NaN, +-Inf, fractions)
 *   0x07       bigint        bytes: ASCII decimal, normalized (-?[1-9][0-9]*|0)
 *   0x08       string        bytes (UTF-8/WTF-8, not validated)
 *   0x09       back-ref      varint id of an earlier identity value (below)
 *   0x0A   *   Date          f64 milliseconds (NaN = invalid Date)
 *   0x0B   *   RegExp        bytes source, bytes flags
 *   0x0C   *   URL           bytes href
 *   0x0D   *   Headers       varint n, n x (bytes name, bytes value)
 *   0x0E   *   ArrayBuffer   bytes
 *   0x0F   *   view          u8 lmz_view_kind, varint byte offset, varint
 *                            length (elements), value: the ArrayBuffer
 *                            (0x0E or a back-ref to one)
 *   0x10   *   boxed         u8 lmz_boxed_kind, value: the primitive
 *   0x11   *   Array         varint n, n values (holes allowed)
 *   0x12   *   Object        varint n, n x (bytes key, value)
 *   0x13   *   Map           varint n, n x (value key, value)
 *   0x14   *   Set           varint n, n values
 *   0x15   *   Error         bytes name, bytes message, u8 has (bit 0: stack,
 *                            bit 1: cause), [bytes stack], [value cause],
 *                            varint n, n x (bytes key, value)  (custom props)
 *   0x16-0x3F  reserved (rejected)
 *   0x40-0x7F  number        the integer tag - 0x40 (0..63), no payload
 *   0x80-0xBF  string        of tag - 0x80 bytes (0..63), the bytes follow
 *   0xC0-0xFF  reserved (rejected)
 *
 * IDENTITY (*). Every identity-bearing value gets the next id (0, 1, 2, ...)
 * when its tag is written for the first time, BEFORE its children, so a child
 * may refer back to a container still being written: that is a cycle. Any
 * later occurrence of the same node is written as 0x09 + its id. Primitives
 * carry no identity and are written in full each time.
 * Example: a = [1]; a.push(a) encodes as B7 01 11 02 41 09 00.
 *
 * Encoder: one pass; the "already written" check uses the mark_epoch/mark_id
 * scratch fields of the nodes (a fresh epoch per encode, so nothing needs
 * clearing). It recurses once per nesting level and refuses graphs nested
 * deeper than LMZ_BIN_MAX_DEPTH containers (view and boxed count) with
 * LMZ_ETOODEEP. Failure modes of the encoder:
 *  1. Out of memory or out->max reached -> LMZ_ENOMEM / LMZ_ETOOBIG.
 *  2. Nested too deep -> LMZ_ETOODEEP.
 *  3. A node the model forbids (a hole outside an array, a view of a
 *     non-ArrayBuffer, a malformed bigint, NULL child) -> LMZ_EINVAL.
 *  On error `out` is truncated back to its length at entry.
 *
 * Decoder: the input is hostile. Failure modes, each with an error code, a
 * message and the exact byte offset (struct lmz_codec_error):
 *  1. Bad magic (offset 0) -> LMZ_EBADMSG; unknown version (offset 1) ->
 *     LMZ_EBADVERSION naming the version.
 *  2. Truncation: a missing tag, varint or fixed field -> LMZ_EBADMSG at the
 *     offset where it should start; a length or count larger than the bytes
 *     left (a count is bounded by the bytes left divided by the smallest
 *     encoding of one element, so allocation is bounded by input size) ->
 *     LMZ_EBADMSG at the offset of the length varint, before allocating.
 *  3. Unknown tag, hole outside an array, back-reference to an id not yet
 *     assigned, a view range outside its buffer or misaligned, a boxed kind
 *     that does not match its value, an unnormalized bigint, duplicate keys
 *     (objects, errors) or entries (Map, Set, by SameValueZero), bad flag
 *     bits, a varint over 64 bits, an integer beyond 2^53, bytes after the
 *     value -> LMZ_EBADMSG at the offset of the offending tag or field.
 *  4. Limits (struct lmz_codec_limits): input longer than max_input ->
 *     LMZ_ETOOBIG at offset max_input; more than max_depth nested containers
 *     -> LMZ_ETOODEEP at the tag of the first one too deep (recursion is
 *     bounded by max_depth, itself capped at LMZ_BIN_DEPTH_CAP); more than
 *     max_nodes values -> LMZ_ETOOBIG; arena growth beyond max_memory ->
 *     LMZ_ETOOBIG (enforced through the arena's limit, restored on return).
 *  5. The arena cannot allocate (its own limit, or malloc) -> LMZ_ENOMEM.
 *  On error *out is untouched; partial nodes stay in the arena. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/value_int.h"

#define BIN_MAGIC 0xB7u
#define BIN_VERSION 1u
#define LMZ_BIN_MAX_DEPTH 512   /* encoder nesting limit (= default limits) */
#define LMZ_BIN_DEPTH_CAP 2048  /* decoder recursion never goes deeper */
#define BIN_MEM_FACTOR 64       /* default max_memory = 64 x input + 1 MiB */

enum {
  T_UNDEFINED = 0x00,
  T_NULL = 0x01,
  T_FALSE = 0x02,
  T_TRUE = 0x03,
  T_HOLE = 0x04,
  T_INT = 0x05,
  T_DOUBLE = 0x06,
  T_BIGINT = 0x07,
  T_STRING = 0x08,
  T_BACKREF = 0x09,
  T_DATE = 0x0A,
  T_REGEXP = 0x0B,
  T_URL = 0x0C,
  T_HEADERS = 0x0D,
  T_ARRAYBUFFER = 0x0E,
  T_VIEW = 0x0F,
  T_BOXED = 0x10,
  T_ARRAY = 0x11,
  T_OBJECT = 0x12,
  T_MAP = 0x13,
  T_SET = 0x14,
  T_ERROR = 0x15,
  T_FIXINT = 0x40, /* 0x40..0x7F */
  T_FIXSTR = 0x80, /* 0x80..0xBF */
  T_RESERVED = 0xC0,
};
#define FIX_MAX 63

#define MAX_SAFE_INT 9007199254740992.0 /* 2^53 */

_Static_assert(sizeof(double) == 8, "IEEE-754 binary64 expected");

/* ---- byte helpers --------------------------------------------------------------- */

static inline uint64_t f64_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, 8);
  return u;
}

static inline void put_u64le(uint8_t *p, uint64_t u) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &u, 8);
#else
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(u >> (8 * i));
#endif
}

static inline double get_f64le(const uint8_t *p) {
  uint64_t u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(&u, p, 8);
#else
  u = 0;
  for (int i = 0; i < 8; i++)
    u |= (uint64_t)p[i] << (8 * i);
#endif
  double d;
  memcpy(&d, &u, 8);
  return d;
}

static inline uint8_t *put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* ====================================================================== encoder */

struct enc {
  lmz_buf *out;
  uint32_t epoch;
  uint32_t next_id;
  const char *why; /* message for LMZ_EINVAL / LMZ_ETOODEEP */
};

/* Room for n more bytes; returns the write position or NULL. */
static inline uint8_t *room(struct enc *e, size_t n, int *rv) {
  lmz_buf *b = e->out;
  if (b->cap - b->len < n && (*rv = lmz_buf_reserve(b, n)) != 0)
    return NULL;
  return b->data + b->len;
}

static inline void commit(struct enc *e, uint8_t *p) {
  e->out->len = (size_t)(p - e->out->data);
}

/* bytes(n): varint length then the bytes. */
static int put_bytes(struct enc *e, const void *s, size_t n) {
  int rv = 0;
  uint8_t *p = room(e, n + 10, &rv);
  if (!p)
    return rv;
  p = put_varint(p, n);
  if (n)
    memcpy(p, s, n);
  commit(e, p + n);
  return 0;
}

static int put_tag_bytes(struct enc *e, uint8_t tag, const void *s, size_t n) {
  int rv = 0;
  uint8_t *p = room(e, n + 11, &rv);
  if (!p)
    return rv;
  if (tag == T_STRING && n <= FIX_MAX) {
    *p++ = (uint8_t)(T_FIXSTR + n);
  } else {
    *p++ = tag;
    p = put_varint(p, n);
  }
  if (n)
    memcpy(p, s, n);
  commit(e, p + n);
  return 0;
}

/* Writes a number at p (room for 10 bytes): the smallest exact form. */
static uint8_t *put_number(uint8_t *p, double d) {
  if (d >= -MAX_SAFE_INT && d <= MAX_SAFE_INT) { /* false for NaN */
    int64_t i = (int64_t)d;
    if ((double)i == d && !(i == 0 && signbit(d))) {
      if (i >= 0 && i <= FIX_MAX) {
        *p++ = (uint8_t)(T_FIXINT + i);
        return p;
      }
      uint64_t z = i < 0 ? ((~(uint64_t)i) << 1) | 1 : (uint64_t)i << 1;
      *p++ = T_INT;
      return put_varint(p, z);
    }
  }
  if (d != d)
    d = NAN; /* canonical NaN payload */
  *p++ = T_DOUBLE;
  put_u64le(p, f64_bits(d));
  return p + 8;
}

static int bad(struct enc *e, int code, const char *why) {
  e->why = why;
  return code;
}

static bool bigint_ok(const char *s, size_t n) {
  size_t i = n > 0 && s[0] == '-';
  if (i == n || (s[i] == '0' && (n - i > 1 || i == 1)))
    return false; /* "", "-", leading zero, "-0" */
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

static int enc_value(struct enc *e, const lmz_value *v, uint32_t depth);

static int enc_primitive(struct enc *e, const lmz_value *v) {
  int rv = 0;
  uint8_t *p;
  switch (v->type) {
  case LMZ_T_UNDEFINED:
  case LMZ_T_NULL:
  case LMZ_T_BOOL:
    if (!(p = room(e, 1, &rv)))
      return rv;
    *p = v->type == LMZ_T_UNDEFINED ? T_UNDEFINED
         : v->type == LMZ_T_NULL    ? T_NULL
         : v->u.b                   ? T_TRUE
                                    : T_FALSE;
    commit(e, p + 1);
    return 0;
  case LMZ_T_NUMBER:
    if (!(p = room(e, 10, &rv)))
      return rv;
    commit(e, put_number(p, v->u.num));
    return 0;
  case LMZ_T_BIGINT:
    if (!bigint_ok(v->u.str.p, v->u.str.len))
      return bad(e, LMZ_EINVAL, "malformed bigint");
    return put_tag_bytes(e, T_BIGINT, v->u.str.p, v->u.str.len);
  case LMZ_T_STRING:
    return put_tag_bytes(e, T_STRING, v->u.str.p, v->u.str.len);
  case LMZ_T_HOLE:
    return bad(e, LMZ_EINVAL, "hole outside an array");
  default:
    return bad(e, LMZ_EINVAL, "unknown value type");
  }
}

/* Tag + varint header (n = count or length). */
static int put_head(struct enc *e, uint8_t tag, uint64_t n) {
  int rv = 0;
  uint8_t *p = room(e, 11, &rv);
  if (!p)
    return rv;
  *p++ = tag;
  commit(e, put_varint(p, n));
  return 0;
}

static int put_u8(struct enc *e, uint8_t b) {
  int rv = 0;
  uint8_t *p = room(e, 1, &rv);
  if (!p)
    return rv;
  *p = b;
  commit(e, p + 1);
  return 0;
}

static int put_varint_only(struct enc *e, uint64_t n) {
  int rv = 0;
  uint8_t *p = room(e, 10, &rv);
  if (!p)
    return rv;
  commit(e, put_varint(p, n));
  return 0;
}

static int enc_props(struct enc *e, const struct lmz_prop *props, uint32_t n,
                     uint32_t depth) {
  for (uint32_t i = 0; i < n; i++) {
    int rv = put_bytes(e, props[i].key, props[i].klen);
    if (!rv)
      rv = enc_value(e, props[i].v, depth);
    if (rv)
      return rv;
  }
  return 0;
}

static int enc_items(struct enc *e, lmz_value *const *items, uint32_t n,
                     uint32_t depth, bool holes) {
  for (uint32_t i = 0; i < n; i++) {
    int rv;
    if (holes && items[i] && items[i]->type == LMZ_T_HOLE)
      rv = put_u8(e, T_HOLE);
    else
      rv = enc_value(e, items[i], depth);
    if (rv)
      return rv;
  }
  return 0;
}

static int enc_map(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv = put_head(e, T_MAP, v->n);
  for (uint32_t i = 0; i < v->n && !rv; i++) {
    rv = enc_value(e, v->u.ents[i].k, depth);
    if (!rv)
      rv = enc_value(e, v->u.ents[i].v, depth);
  }
  return rv;
}

static bool is_str(const lmz_value *s) {
  return s && s->type == LMZ_T_STRING;
}

static int enc_error(struct enc *e, const lmz_value *v, uint32_t depth) {
  const lmz_value *nm = v->u.err.name, *msg = v->u.err.message,
                  *st = v->u.err.stack;
  if (!is_str(nm) || !is_str(msg) || (st && !is_str(st)))
    return bad(e, LMZ_EINVAL, "malformed Error node");
  int rv = put_u8(e, T_ERROR);
  if (!rv)
    rv = put_bytes(e, nm->u.str.p, nm->u.str.len);
  if (!rv)
    rv = put_bytes(e, msg->u.str.p, msg->u.str.len);
  if (!rv)
    rv = put_u8(e, (uint8_t)((st ? 1 : 0) | (v->u.err.cause ? 2 : 0)));
  if (!rv && st)
    rv = put_bytes(e, st->u.str.p, st->u.str.len);
  if (!rv && v->u.err.cause)
    rv = enc_value(e, v->u.err.cause, depth);
  if (!rv)
    rv = put_varint_only(e, v->n);
  return rv ? rv : enc_props(e, v->u.err.props, v->n, depth);
}

static int enc_view(struct enc *e, const lmz_value *v, uint32_t depth) {
  const lmz_value *b = v->u.view.buffer;
  size_t esz = lmz_view_elem_size((lmz_view_kind)v->sub);
  if (!b || b->type != LMZ_T_ARRAYBUFFER || esz == 0 ||
      v->u.view.byte_offset % esz || v->u.view.byte_offset > b->u.ab.len ||
      v->u.view.length > (b->u.ab.len - v->u.view.byte_offset) / esz)
    return bad(e, LMZ_EINVAL, "view outside its ArrayBuffer");
  int rv = 0;
  uint8_t *p = room(e, 22, &rv);
  if (!p)
    return rv;
  *p++ = T_VIEW;
  *p++ = v->sub;
  p = put_varint(p, v->u.view.byte_offset);
  commit(e, put_varint(p, v->u.view.length));
  return enc_value(e, b, depth);
}

static int enc_boxed(struct enc *e, const lmz_value *v, uint32_t depth) {
  static const uint8_t want[] = {LMZ_T_BOOL, LMZ_T_NUMBER, LMZ_T_STRING,
                                 LMZ_T_BIGINT};
  const lmz_value *b = v->u.boxed;
  if (v->sub >= sizeof(want) || !b || b->type != want[v->sub])
    return bad(e, LMZ_EINVAL, "boxed kind does not match its value");
  int rv = put_u8(e, T_BOXED);
  if (!rv)
    rv = put_u8(e, v->sub);
  return rv ? rv : enc_value(e, b, depth);
}

static int enc_headers(struct enc *e, const lmz_value *v) {
  int rv = put_head(e, T_HEADERS, v->n);
  for (uint32_t i = 0; i < v->n && !rv; i++) {
    const lmz_value *s = v->u.props[i].v;
    if (!is_str(s))
      return bad(e, LMZ_EINVAL, "header value is not a string");
    rv = put_bytes(e, v->u.props[i].key, v->u.props[i].klen);
    if (!rv)
      rv = put_bytes(e, s->u.str.p, s->u.str.len);
  }
  return rv;
}

static int enc_date(struct enc *e, const lmz_value *v) {
  int rv = 0;
  uint8_t *p = room(e, 9, &rv);
  if (!p)
    return rv;
  *p = T_DATE;
  put_u64le(p + 1, f64_bits(v->u.num != v->u.num ? NAN : v->u.num));
  commit(e, p + 9);
  return 0;
}

static int enc_regexp(struct enc *e, const lmz_value *v) {
  int rv = put_u8(e, T_REGEXP);
  if (!rv)
    rv = put_bytes(e, v->u.re.src, v->u.re.src_len);
  return rv ? rv : put_bytes(e, v->u.re.flags, v->u.re.flags_len);
}

/* Containers: the only recursive cases, so nesting is bounded here. */
static int enc_container(struct enc *e, const lmz_value *v, uint32_t depth) {
  if (depth >= LMZ_BIN_MAX_DEPTH)
    return bad(e, LMZ_ETOODEEP, "value nested deeper than 512 containers");
  depth++;
  int rv;
  switch (v->type) {
  case LMZ_T_VIEW:
    return enc_view(e, v, depth);
  case LMZ_T_BOXED:
    return enc_boxed(e, v, depth);
  case LMZ_T_ARRAY:
    rv = put_head(e, T_ARRAY, v->n);
    return rv ? rv : enc_items(e, v->u.items, v->n, depth, true);
  case LMZ_T_OBJECT:
    rv = put_head(e, T_OBJECT, v->n);
    return rv ? rv : enc_props(e, v->u.props, v->n, depth);
  case LMZ_T_MAP:
    return enc_map(e, v, depth);
  case LMZ_T_SET:
    rv = put_head(e, T_SET, v->n);
    return rv ? rv : enc_items(e, v->u.items, v->n, depth, false);
  case LMZ_T_ERROR:
    return enc_error(e, v, depth);
  default:
    return bad(e, LMZ_EINVAL, "unknown value type");
  }
}

/* Identity-bearing node written for the first time. */
static int enc_object(struct enc *e, const lmz_value *v, uint32_t depth) {
  switch (v->type) {
  case LMZ_T_DATE:
    return enc_date(e, v);
  case LMZ_T_REGEXP:
    return enc_regexp(e, v);
  case LMZ_T_URL:
    return put_tag_bytes(e, T_URL, v->u.str.p, v->u.str.len);
  case LMZ_T_ARRAYBUFFER:
    return put_tag_bytes(e, T_ARRAYBUFFER, v->u.ab.bytes, v->u.ab.len);
  case LMZ_T_HEADERS:
    return enc_headers(e, v);
  default:
    return enc_container(e, v, depth);
  }
}

static int enc_value(struct enc *e, const lmz_value *v, uint32_t depth) {
  if (!v)
    return bad(e, LMZ_EINVAL, "NULL value in the graph");
  if (!lmz_type_has_identity((lmz_type)v->type))
    return enc_primitive(e, v);
  lmz_value *m = (lmz_value *)v; /* scratch marks only (see value.h) */
  if (m->mark_epoch == e->epoch)
    return put_head(e, T_BACKREF, m->mark_id);
  m->mark_epoch = e->epoch;
  m->mark_id = e->next_id++;
  return enc_object(e, v, depth);
}

int lmz_bin_encode(const lmz_value *v, lmz_buf *out,
                   struct lmz_codec_error *err) {
  if (!v || !out)
    return LMZ_EINVAL;
  struct enc e = {out, lmz__value_next_epoch(), 0, NULL};
  size_t start = out->len;
  int rv = 0;
  uint8_t *p = room(&e, 2, &rv);
  if (p) {
    p[0] = BIN_MAGIC;
    p[1] = BIN_VERSION;
    commit(&e, p + 2);
    rv = enc_value(&e, v, 0);
  }
  if (rv) {
    out->len = start;
    if (err) {
      err->code = rv;
      err->offset = 0;
      snprintf(err->msg, sizeof(err->msg), "binary encode: %s",
               e.why ? e.why : lmz_strerror(rv));
    }
  }
  return rv;
}

/* ====================================================================== decoder */

struct dec {
  const uint8_t *start, *p, *end;
  lmz_arena *a;
  lmz_value **ids; /* identity values by id: ids_inline, then malloc'd */
  size_t n_ids, cap_ids;
  lmz_value *ids_inline[32]; /* small messages need no malloc */
  size_t nodes, max_nodes;
  uint32_t max_depth;
  bool own_cap; /* the arena limit in force is max_memory, not the caller's */
  struct lmz_codec_error *err;
  int code;
};

static inline size_t off(const struct dec *d, const uint8_t *p) {
  return (size_t)(p - d->start);
}

static inline size_t left(const struct dec *d) {
  return (size_t)(d->end - d->p);
}

__attribute__((format(printf, 4, 5))) static void
fail(struct dec *d, int code, size_t at, const char *fmt, ...) {
  if (d->code)
    return; /* keep the first (innermost) error */
  d->code = code;
  if (!d->err)
    return;
  d->err->code = code;
  d->err->offset = at;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->err->msg, sizeof(d->err->msg), fmt, ap);
  va_end(ap);
}

static void fail_alloc(struct dec *d, size_t at) {
  if (d->own_cap)
    fail(d, LMZ_ETOOBIG, at, "decoded value exceeds max_memory");
  else
    fail(d, LMZ_ENOMEM, at, "out of memory decoding the value");
}

/* LEB128, at most 64 bits. */
static bool rd_varint(struct dec *d, uint64_t *out) {
  const uint8_t *p = d->p;
  if (p < d->end && *p < 0x80) { /* fast path: one byte */
    *out = *p;
    d->p = p + 1;
    return true;
  }
  uint64_t v = 0;
  for (unsigned shift = 0; p < d->end; shift += 7) {
    uint8_t b = *p++;
    if (shift == 63 && b > 1) {
      fail(d, LMZ_EBADMSG, off(d, d->p), "varint exceeds 64 bits");
      return false;
    }
    v |= (uint64_t)(b & 0x7f) << shift;
    if (b < 0x80) {
      *out = v;
      d->p = p;
      return true;
    }
  }
  fail(d, LMZ_EBADMSG, off(d, d->p), "truncated varint");
  return false;
}

/* A count of elements that take at least `unit` bytes each: bounded by the
 * input left, so what it makes us allocate is bounded by the input size. */
static bool rd_count(struct dec *d, size_t unit, size_t *out) {
  const uint8_t *at = d->p;
  uint64_t n;
  if (!rd_varint(d, &n))
    return false;
  if (n > left(d) / unit || n > UINT32_MAX) {
    fail(d, LMZ_EBADMSG, off(d, at),
         "count %llu exceeds what the %zu bytes left can hold",
         (unsigned long long)n, left(d));
    return false;
  }
  *out = (size_t)n;
  return true;
}

/* bytes(n): sets *s to the bytes in the input (not copied). */
static bool rd_bytes(struct dec *d, const uint8_t **s, size_t *n) {
  const uint8_t *at = d->p;
  uint64_t len;
  if (!rd_varint(d, &len))
    return false;
  if (len > left(d)) {
    fail(d, LMZ_EBADMSG, off(d, at), "length %llu exceeds the %zu bytes left",
         (unsigned long long)len, left(d));
    return false;
  }
  *s = d->p;
  *n = (size_t)len;
  d->p += len;
  return true;
}

static bool rd_u8(struct dec *d, uint8_t *b) {
  if (d->p == d->end) {
    fail(d, LMZ_EBADMSG, off(d, d->p), "truncated: 1 byte expected");
    return false;
  }
  *b = *d->p++;
  return true;
}

static bool rd_f64(struct dec *d, double *out) {
  if (left(d) < 8) {
    fail(d, LMZ_EBADMSG, off(d, d->p), "truncated: 8-byte number expected");
    return false;
  }
  *out = get_f64le(d->p);
  d->p += 8;
  return true;
}

/* A zeroed node of type t with `extra` bytes after it. */
static lmz_value *node(struct dec *d, uint8_t t, size_t extra, size_t at) {
  lmz_value *v = lmz_arena_alloc(d->a, sizeof(*v) + extra);
  if (!v) {
    fail_alloc(d, at);
    return NULL;
  }
  memset(v, 0, sizeof(*v));
  v->type = t;
  v->arena = d->a;
  return v;
}

/* Gives identity value v the next id (before its children are decoded, so
 * they can refer back to it). */
static bool reg(struct dec *d, lmz_value *v, size_t at) {
  if (d->n_ids == d->cap_ids) {
    size_t cap = d->cap_ids * 2;
    bool inl = d->ids == d->ids_inline;
    lmz_value **ids = realloc(inl ? NULL : d->ids, cap * sizeof(*ids));
    if (!ids) {
      fail(d, LMZ_ENOMEM, at, "out of memory decoding the value");
      return false;
    }
    if (inl)
      memcpy(ids, d->ids_inline, sizeof(d->ids_inline));
    d->ids = ids;
    d->cap_ids = cap;
  }
  d->ids[d->n_ids++] = v;
  return true;
}

static lmz_value *str_from(struct dec *d, uint8_t t, const uint8_t *s,
                           size_t n, size_t at) {
  if (n == 0 && t == LMZ_T_STRING)
    return lmz__empty_string();
  lmz_value *v = node(d, t, n + 1, at);
  if (!v)
    return NULL;
  v->u.str.p = (char *)(v + 1);
  memcpy(v->u.str.p, s, n);
  v->u.str.p[n] = 0;
  v->u.str.len = n;
  return v;
}

static lmz_value *dec_value(struct dec *d, uint32_t depth);

static lmz_value *dec_string(struct dec *d, uint8_t t, size_t at) {
  const uint8_t *s;
  size_t n;
  if (!rd_bytes(d, &s, &n))
    return NULL;
  return str_from(d, t, s, n, at);
}

static lmz_value *dec_bigint(struct dec *d, size_t at) {
  const uint8_t *s;
  size_t n;
  if (!rd_bytes(d, &s, &n))
    return NULL;
  if (!bigint_ok((const char *)s, n)) {
    fail(d, LMZ_EBADMSG, at, "malformed bigint");
    return NULL;
  }
  return str_from(d, LMZ_T_BIGINT, s, n, at);
}

static lmz_value *num_node(struct dec *d, double x, size_t at) {
  lmz_value *v = node(d, LMZ_T_NUMBER, 0, at);
  if (v)
    v->u.num = x;
  return v;
}

static lmz_value *dec_int(struct dec *d, size_t at) {
  uint64_t z;
  if (!rd_varint(d, &z))
    return NULL;
  if ((z >> 1) > (uint64_t)MAX_SAFE_INT - (z & 1)) { /* |i| <= 2^53 */
    fail(d, LMZ_EBADMSG, at, "integer beyond 2^53");
    return NULL;
  }
  double x = (z & 1) ? -(double)(z >> 1) - 1 : (double)(z >> 1);
  if (x >= 0 && x <= FIX_MAX)
    return lmz__small_int((unsigned)x);
  return num_node(d, x, at);
}

static lmz_value *dec_double(struct dec *d, uint8_t t, size_t at) {
  double x;
  if (!rd_f64(d, &x))
    return NULL;
  lmz_value *v = t == T_DATE ? node(d, LMZ_T_DATE, 0, at) : num_node(d, x, at);
  if (v && t == T_DATE) {
    v->u.num = x;
    if (!reg(d, v, at))
      return NULL;
  }
  return v;
}

static lmz_value *dec_backref(struct dec *d, size_t at) {
  uint64_t id;
  if (!rd_varint(d, &id))
    return NULL;
  if (id >= d->n_ids) {
    fail(d, LMZ_EBADMSG, at, "back-reference to id %llu; only %zu known",
         (unsigned long long)id, d->n_ids);
    return NULL;
  }
  return d->ids[id];
}

static lmz_value *dec_regexp(struct dec *d, size_t at) {
  const uint8_t *src, *flags;
  size_t sn, fn;
  if (!rd_bytes(d, &src, &sn) || !rd_bytes(d, &flags, &fn))
    return NULL;
  if (sn >= UINT32_MAX || fn >= UINT32_MAX) {
    fail(d, LMZ_ETOOBIG, at, "RegExp source over 4 GiB");
    return NULL;
  }
  lmz_value *v = node(d, LMZ_T_REGEXP, sn + fn + 2, at);
  if (!v || !reg(d, v, at))
    return NULL;
  v->u.re.src = (char *)(v + 1);
  v->u.re.flags = v->u.re.src + sn + 1;
  memcpy(v->u.re.src, src, sn);
  v->u.re.src[sn] = 0;
  memcpy(v->u.re.flags, flags, fn);
  v->u.re.flags[fn] = 0;
  v->u.re.src_len = (uint32_t)sn;
  v->u.re.flags_len = (uint32_t)fn;
  return v;
}

static lmz_value *dec_url(struct dec *d, size_t at) {
  lmz_value *v = dec_string(d, LMZ_T_URL, at);
  return v && reg(d, v, at) ? v : NULL;
}

static lmz_value *dec_arraybuffer(struct dec *d, size_t at) {
  const uint8_t *s;
  size_t n;
  if (!rd_bytes(d, &s, &n))
    return NULL;
  lmz_value *v = node(d, LMZ_T_ARRAYBUFFER, n, at);
  if (!v || !reg(d, v, at))
    return NULL;
  v->u.ab.bytes = (uint8_t *)(v + 1);
  v->u.ab.len = n;
  memcpy(v->u.ab.bytes, s, n);
  return v;
}

static lmz_value *dec_headers(struct dec *d, size_t at) {
  size_t n;
  if (!rd_count(d, 2, &n))
    return NULL;
  lmz_value *h = node(d, LMZ_T_HEADERS, 0, at);
  if (!h || !reg(d, h, at))
    return NULL;
  if (lmz__value_reserve(h, n)) {
    fail_alloc(d, at);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    const uint8_t *k, *s;
    size_t kn, sn;
    if (!rd_bytes(d, &k, &kn) || !rd_bytes(d, &s, &sn))
      return NULL;
    if (lmz_headers_append(h, (const char *)k, kn, (const char *)s, sn)) {
      fail_alloc(d, at);
      return NULL;
    }
  }
  return h;
}

static lmz_value *dec_view(struct dec *d, uint32_t depth, size_t at) {
  uint8_t kind;
  uint64_t boff, len;
  if (!rd_u8(d, &kind))
    return NULL;
  if (kind >= LMZ_VIEW__COUNT) {
    fail(d, LMZ_EBADMSG, off(d, d->p) - 1, "unknown view kind %u", kind);
    return NULL;
  }
  if (!rd_varint(d, &boff) || !rd_varint(d, &len))
    return NULL;
  lmz_value *v = node(d, LMZ_T_VIEW, 0, at);
  if (!v || !reg(d, v, at))
    return NULL;
  lmz_value *b = dec_value(d, depth);
  if (!b)
    return NULL;
  size_t esz = lmz_view_elem_size((lmz_view_kind)kind);
  if (b->type != LMZ_T_ARRAYBUFFER) {
    fail(d, LMZ_EBADMSG, at, "view of a %s, not an ArrayBuffer",
         lmz_type_name((lmz_type)b->type));
    return NULL;
  }
  if (boff % esz || boff > b->u.ab.len || len > (b->u.ab.len - boff) / esz) {
    fail(d, LMZ_EBADMSG, at,
         "%s at byte %llu, %llu elements: outside its %zu-byte buffer or "
         "misaligned",
         lmz_view_kind_name((lmz_view_kind)kind), (unsigned long long)boff,
         (unsigned long long)len, b->u.ab.len);
    return NULL;
  }
  v->sub = kind;
  v->u.view.buffer = b;
  v->u.view.byte_offset = (size_t)boff;
  v->u.view.length = (size_t)len;
  return v;
}

static lmz_value *dec_boxed(struct dec *d, uint32_t depth, size_t at) {
  static const uint8_t want[] = {LMZ_T_BOOL, LMZ_T_NUMBER, LMZ_T_STRING,
                                 LMZ_T_BIGINT};
  uint8_t kind;
  if (!rd_u8(d, &kind))
    return NULL;
  if (kind >= sizeof(want)) {
    fail(d, LMZ_EBADMSG, off(d, d->p) - 1, "unknown boxed kind %u", kind);
    return NULL;
  }
  lmz_value *v = node(d, LMZ_T_BOXED, 0, at);
  if (!v || !reg(d, v, at))
    return NULL;
  size_t pat = off(d, d->p);
  lmz_value *prim = dec_value(d, depth);
  if (!prim)
    return NULL;
  if (prim->type != want[kind]) {
    fail(d, LMZ_EBADMSG, pat, "boxed kind %u holds a %s", kind,
         lmz_type_name((lmz_type)prim->type));
    return NULL;
  }
  v->sub = kind;
  v->u.boxed = prim;
  return v;
}

/* A container node of type t with room for n entries, registered. */
static lmz_value *container(struct dec *d, uint8_t t, size_t n, size_t at) {
  lmz_value *v = node(d, t, 0, at);
  if (!v || !reg(d, v, at))
    return NULL;
  if (lmz__value_reserve(v, n)) {
    fail_alloc(d, at);
    return NULL;
  }
  return v;
}

static lmz_value *dec_array(struct dec *d, uint32_t depth, size_t at) {
  size_t n;
  if (!rd_count(d, 1, &n))
    return NULL;
  lmz_value *v = container(d, LMZ_T_ARRAY, n, at);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    lmz_value *it;
    if (d->p < d->end && *d->p == T_HOLE) {
      d->p++;
      it = lmz_hole();
    } else if (!(it = dec_value(d, depth))) {
      return NULL;
    }
    v->u.items[v->n++] = it; /* capacity reserved above */
  }
  return v;
}

static lmz_value *dec_set(struct dec *d, uint32_t depth, size_t at) {
  size_t n;
  if (!rd_count(d, 1, &n))
    return NULL;
  lmz_value *v = container(d, LMZ_T_SET, n, at);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t iat = off(d, d->p);
    lmz_value *it = dec_value(d, depth);
    if (!it)
      return NULL;
    int rv = lmz__set_add_new(v, it);
    if (rv == LMZ_EEXIST)
      fail(d, LMZ_EBADMSG, iat, "duplicate Set item");
    else if (rv)
      fail_alloc(d, iat);
    if (rv)
      return NULL;
  }
  return v;
}

static lmz_value *dec_map(struct dec *d, uint32_t depth, size_t at) {
  size_t n;
  if (!rd_count(d, 2, &n))
    return NULL;
  lmz_value *v = container(d, LMZ_T_MAP, n, at);
  if (!v)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    size_t kat = off(d, d->p);
    lmz_value *k = dec_value(d, depth), *val = k ? dec_value(d, depth) : NULL;
    if (!val)
      return NULL;
    int rv = lmz__map_add(v, k, val);
    if (rv == LMZ_EEXIST)
      fail(d, LMZ_EBADMSG, kat, "duplicate Map key");
    else if (rv)
      fail_alloc(d, kat);
    if (rv)
      return NULL;
  }
  return v;
}

static bool dup_key(struct dec *d, size_t kat, const uint8_t *k, size_t kn) {
  fail(d, LMZ_EBADMSG, kat, "duplicate key \"%.*s\"", (int)(kn > 40 ? 40 : kn),
       (const char *)k);
  return false;
}

/* Fast path of dec_props for up to 16 props (the common case): the
 * duplicate check is a scan of the keys so far, and props are written in
 * place (capacity reserved by the caller). */
static bool dec_props_small(struct dec *d, lmz_value *o, struct lmz_prop *props,
                            size_t n, uint32_t depth) {
  for (size_t i = 0; i < n; i++) {
    size_t kat = off(d, d->p);
    const uint8_t *k;
    size_t kn;
    if (!rd_bytes(d, &k, &kn))
      return false;
    if (kn >= UINT32_MAX) {
      fail(d, LMZ_ETOOBIG, kat, "key over 4 GiB");
      return false;
    }
    for (size_t j = 0; j < i; j++)
      if (props[j].klen == kn && memcmp(props[j].key, k, kn) == 0)
        return dup_key(d, kat, k, kn);
    char *key = lmz_arena_alloc(d->a, kn + 1);
    if (!key) {
      fail_alloc(d, kat);
      return false;
    }
    memcpy(key, k, kn);
    key[kn] = 0;
    lmz_value *val = dec_value(d, depth);
    if (!val)
      return false;
    props[i] = (struct lmz_prop){key, (uint32_t)kn, val};
    o->n++;
  }
  return true;
}

/* n x (bytes key, value) into an object or an error's custom props. */
static bool dec_props(struct dec *d, lmz_value *o, size_t n, uint32_t depth) {
  if (n <= 16)
    return dec_props_small(
        d, o, o->type == LMZ_T_ERROR ? o->u.err.props : o->u.props, n, depth);
  for (size_t i = 0; i < n; i++) {
    size_t kat = off(d, d->p);
    const uint8_t *k;
    size_t kn;
    if (!rd_bytes(d, &k, &kn))
      return false;
    lmz_value *val = dec_value(d, depth);
    if (!val)
      return false;
    int rv = lmz__object_add(o, (const char *)k, kn, val);
    if (rv == LMZ_EEXIST)
      return dup_key(d, kat, k, kn);
    if (rv) {
      fail_alloc(d, kat);
      return false;
    }
  }
  return true;
}

static lmz_value *dec_object(struct dec *d, uint32_t depth, size_t at) {
  size_t n;
  if (!rd_count(d, 2, &n))
    return NULL;
  lmz_value *v = container(d, LMZ_T_OBJECT, n, at);
  return v && dec_props(d, v, n, depth) ? v : NULL;
}

static lmz_value *dec_error(struct dec *d, uint32_t depth, size_t at) {
  lmz_value *v = node(d, LMZ_T_ERROR, 0, at);
  if (!v || !reg(d, v, at))
    return NULL;
  if (!(v->u.err.name = dec_string(d, LMZ_T_STRING, at)) ||
      !(v->u.err.message = dec_string(d, LMZ_T_STRING, at)))
    return NULL;
  uint8_t has;
  if (!rd_u8(d, &has))
    return NULL;
  if (has & ~3u) {
    fail(d, LMZ_EBADMSG, off(d, d->p) - 1, "bad Error flags 0x%02x", has);
    return NULL;
  }
  if ((has & 1) && !(v->u.err.stack = dec_string(d, LMZ_T_STRING, at)))
    return NULL;
  if ((has & 2) && !(v->u.err.cause = dec_value(d, depth)))
    return NULL;
  size_t n;
  if (!rd_count(d, 2, &n))
    return NULL;
  if (lmz__value_reserve(v, n)) {
    fail_alloc(d, at);
    return NULL;
  }
  return dec_props(d, v, n, depth) ? v : NULL;
}

/* Containers (the recursive cases): nesting is checked here. */
static lmz_value *dec_container(struct dec *d, uint8_t tag, uint32_t depth,
                                size_t at) {
  if (depth >= d->max_depth) {
    fail(d, LMZ_ETOODEEP, at, "nested deeper than %u containers",
         d->max_depth);
    return NULL;
  }
  depth++;
  switch (tag) {
  case T_VIEW:
    return dec_view(d, depth, at);
  case T_BOXED:
    return dec_boxed(d, depth, at);
  case T_ARRAY:
    return dec_array(d, depth, at);
  case T_OBJECT:
    return dec_object(d, depth, at);
  case T_MAP:
    return dec_map(d, depth, at);
  case T_SET:
    return dec_set(d, depth, at);
  default:
    return dec_error(d, depth, at);
  }
}

/* Short string: the length is in the tag. */
static lmz_value *dec_fixstr(struct dec *d, size_t n, size_t at) {
  if (n > left(d)) {
    fail(d, LMZ_EBADMSG, at, "string of %zu bytes exceeds the %zu left", n,
         left(d));
    return NULL;
  }
  d->p += n;
  return str_from(d, LMZ_T_STRING, d->p - n, n, at);
}

static lmz_value *dec_value(struct dec *d, uint32_t depth) {
  size_t at = off(d, d->p);
  if (d->p == d->end) {
    fail(d, LMZ_EBADMSG, at, "truncated: value expected");
    return NULL;
  }
  if (++d->nodes > d->max_nodes) {
    fail(d, LMZ_ETOOBIG, at, "more than max_nodes (%zu) values",
         d->max_nodes);
    return NULL;
  }
  uint8_t tag = *d->p++;
  if (tag >= T_FIXINT && tag < T_FIXSTR)
    return lmz__small_int(tag - T_FIXINT);
  if (tag >= T_FIXSTR && tag < T_RESERVED)
    return dec_fixstr(d, tag - T_FIXSTR, at);
  switch (tag) {
  case T_UNDEFINED:
    return lmz_undefined();
  case T_NULL:
    return lmz_null();
  case T_FALSE:
    return lmz_bool(false);
  case T_TRUE:
    return lmz_bool(true);
  case T_INT:
    return dec_int(d, at);
  case T_DOUBLE:
  case T_DATE:
    return dec_double(d, tag, at);
  case T_BIGINT:
    return dec_bigint(d, at);
  case T_STRING:
    return dec_string(d, LMZ_T_STRING, at);
  case T_BACKREF:
    return dec_backref(d, at);
  case T_REGEXP:
    return dec_regexp(d, at);
  case T_URL:
    return dec_url(d, at);
  case T_HEADERS:
    return dec_headers(d, at);
  case T_ARRAYBUFFER:
    return dec_arraybuffer(d, at);
  case T_VIEW:
  case T_BOXED:
  case T_ARRAY:
  case T_OBJECT:
  case T_MAP:
  case T_SET:
  case T_ERROR:
    return dec_container(d, tag, depth, at);
  case T_HOLE:
    fail(d, LMZ_EBADMSG, at, "hole outside an array");
    return NULL;
  default:
    fail(d, LMZ_EBADMSG, at, "unknown tag 0x%02x", tag);
    return NULL;
  }
}

static bool check_header(struct dec *d, size_t len,
                         const struct lmz_codec_limits *l) {
  if (len > l->max_input) {
    fail(d, LMZ_ETOOBIG, l->max_input, "input of %zu bytes exceeds max_input %zu",
         len, l->max_input);
    return false;
  }
  if (len == 0 || d->start[0] != BIN_MAGIC) {
    fail(d, LMZ_EBADMSG, 0, "not an lmz binary value (magic 0x%02x expected)",
         BIN_MAGIC);
    return false;
  }
  if (len < 2) {
    fail(d, LMZ_EBADMSG, 1, "truncated: format version expected");
    return false;
  }
  if (d->start[1] != BIN_VERSION) {
    fail(d, LMZ_EBADVERSION, 1,
         "binary format version %u is not supported (this build reads %u)",
         d->start[1], BIN_VERSION);
    return false;
  }
  d->p = d->start + 2;
  return true;
}

/* The arena limit for this decode: max_memory above what the arena holds
 * now, or the caller's own limit if that is tighter. */
static void set_mem_cap(struct dec *d, const struct lmz_codec_limits *l,
                        size_t len, size_t caller_limit) {
  size_t mem = l->max_memory;
  if (!mem) {
    mem = len > (SIZE_MAX - (1u << 20)) / BIN_MEM_FACTOR
              ? SIZE_MAX
              : len * BIN_MEM_FACTOR + (1u << 20);
  }
  size_t used = lmz_arena_used(d->a);
  size_t cap = mem > SIZE_MAX - used ? SIZE_MAX : used + mem;
  d->own_cap = !caller_limit || cap < caller_limit;
  lmz_arena_set_limit(d->a, d->own_cap ? cap : caller_limit);
}

int lmz_bin_decode(lmz_arena *a, const void *data, size_t len,
                   const struct lmz_codec_limits *limits, lmz_value **out,
                   struct lmz_codec_error *err) {
  struct lmz_codec_limits dl;
  if (!limits) {
    lmz_codec_limits_default(&dl);
    limits = &dl;
  }
  struct dec d = {.a = a, .max_nodes = limits->max_nodes, .err = err};
  if (!a || (!data && len) || !out) {
    fail(&d, LMZ_EINVAL, 0, "invalid argument");
    return LMZ_EINVAL;
  }
  static const uint8_t empty[1];
  d.start = len ? data : empty; /* no arithmetic on a NULL pointer */
  d.end = d.start + len;
  d.max_depth = limits->max_depth < LMZ_BIN_DEPTH_CAP ? limits->max_depth
                                                      : LMZ_BIN_DEPTH_CAP;
  if (!check_header(&d, len, limits))
    return d.code;
  d.ids = d.ids_inline;
  d.cap_ids = LMZ_ARRAY_SIZE(d.ids_inline);
  size_t caller_limit = lmz__arena_limit(a);
  set_mem_cap(&d, limits, len, caller_limit);
  lmz_value *v = dec_value(&d, 0);
  if (v && d.p != d.end)
    fail(&d, LMZ_EBADMSG, off(&d, d.p), "%zu bytes after the value",
         left(&d));
  lmz_arena_set_limit(a, caller_limit);
  if (d.ids != d.ids_inline)
    free(d.ids);
  if (d.code)
    return d.code;
  *out = v;
  return 0;
}
