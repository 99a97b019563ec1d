/* core/codec_scjson.c - SC-JSON encoder: the {"json":...,"meta":{...}} format
 * of the original @lumenize/structured-clone package ("W4"). The decoder is
 * in codec_scjson_dec.c; both follow the format described here.
 *
 * FORMAT (byte-for-byte the original's wherever the original defines it):
 *   {"json":<value>,"meta":{}}                         no shared objects
 *   {"json":<value>,"meta":{"aliases":{"0":<body>,"1":<body>...}}}
 * Plain values are native JSON: null, booleans, strings, finite numbers
 * (formatted like JavaScript's Number#toString), arrays, objects. Every other
 * value is an object tagged with "$type":
 *   undefined      {"$type":"undefined"}
 *   NaN, +-Inf     {"$type":"number-special","value":"NaN"|"Infinity"|"-Infinity"}
 *   bigint         {"$type":"bigint","value":"<decimal>"}
 *   Date           {"$type":"date","iso":"YYYY-MM-DDTHH:mm:ss.sssZ"} (years
 *                  outside 0..9999 as +-YYYYYY, like Date#toISOString)
 *   RegExp         {"$type":"regexp","source":"...","flags":"..."}
 *   URL            {"$type":"url","href":"..."}
 *   Headers        {"$type":"headers","entries":[["name","value"],...]}
 *                  (names lower-cased as the Headers class does; the order
 *                  of our value is kept)
 *   ArrayBuffer    {"$type":"arraybuffer","subtype":"ArrayBuffer","data":[bytes]}
 *   typed array    {"$type":"arraybuffer","subtype":"Float32Array","data":[elements]}
 *   DataView       {"$type":"arraybuffer","subtype":"DataView","data":[all bytes
 *                  of the underlying buffer],"byteOffset":o,"byteLength":n}
 *   boxed          {"$type":"boolean-object"|"number-object"|"string-object"|
 *                  "bigint-object","value":...} (number-object carries
 *                  "NaN"/"Infinity"/"-Infinity" as strings, bigint-object a
 *                  decimal string)
 *   Map            {"$type":"map","entries":[[key,value],...]}
 *   Set            {"$type":"set","values":[...]}
 *   Error          {"$type":"error","name":..,"message":..,"stack"?:..,
 *                  "cause"?:<value>, <custom props>...} in that order
 * Object keys and error custom property keys that start with '$' get one
 * more '$' on the wire ("$ref" -> "$$ref"), so "$type"/"$ref" stay
 * unambiguous.
 *
 * ALIASES. Every identity-bearing node (Date and later in lmz_type) reached
 * more than once, cycles included, is written once as meta.aliases["<id>"]
 * and every occurrence, the first included, becomes {"$ref":<id>}. Ids are
 * 0,1,2... in the order the original assigns them: first encounter during a
 * depth-first emission that writes an alias body as soon as it meets it.
 * JavaScript prints integer-like keys in ascending order, so "aliases" lists
 * its entries by id.
 *
 * EXTENSIONS (what the original cannot express; its decoder still reads
 * them, with the losses listed):
 *   -0             {"$type":"number-special","value":"-0"} (original: 0);
 *                  boxed -0 is {"$type":"number-object","value":"-0"}
 *   array hole     {"$type":"hole"} as the element (original: null)
 *   invalid Date   {"$type":"date","iso":"Invalid Date"} (original throws;
 *                  its decoder makes an invalid Date of it)
 *   BigInt64Array / BigUint64Array
 *                  subtype as named, data = decimal strings (original throws;
 *                  its decoder's typed array constructor converts them)
 *   Float32Array / Float64Array elements NaN, +-Infinity and -0 are written
 *                  as the strings "NaN", "Infinity", "-Infinity", "-0"
 *                  (JSON.stringify would write null; a typed array
 *                  constructor converts these strings to the right number)
 *   typed array whose view does not cover its whole buffer from offset 0, or
 *                  whose ArrayBuffer is also reached elsewhere in the graph:
 *                  "data" as usual, then "byteOffset":o,"buffer":<the
 *                  ArrayBuffer> (usually {"$ref":n}); a DataView whose buffer
 *                  is shared adds "buffer" the same way. Old decoders ignore
 *                  the extra keys and still get the right element values.
 *
 * ENCODER. Pass 1 walks the graph with an explicit stack (no recursion, so
 * deep but aliased graphs are fine), counting references in the nodes' mark
 * fields under a fresh epoch and numbering first visits; nodes met twice are
 * collected and sorted by first visit, which is exactly the first-encounter
 * order of the emission (same depth-first order, same child order). Pass 2
 * writes straight into the output buffer: the json value, then each alias
 * body in id order.
 *
 * Failure modes: LMZ_EINVAL (NULL value), LMZ_ETOODEEP (a value nested
 * deeper than 512 levels between aliases, the decoder's default limit),
 * LMZ_EUNSUPPORTED (an Error custom property named name, message, stack or
 * cause: in JavaScript that is the standard field, so it has no encoding),
 * LMZ_ENOMEM / LMZ_ETOOBIG from the buffer. On error `out` keeps what was
 * appended (a partial document); callers discard it. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/civil.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/value_int.h"

#define ENC_MAX_DEPTH 512u

struct enc {
  lmz_buf *out;
  struct lmz_codec_error *err;
  uint32_t epoch;
  lmz_value **aliases; /* nodes referenced more than once, in id order */
  size_t n_alias, cap_alias;
  lmz_value **stack; /* pass 1 work stack */
  size_t n_stack, cap_stack;
};

#define PUT_LIT(b, s) lmz_buf_append((b), (s), sizeof(s) - 1)

static int enc_fail(struct enc *e, int code, const char *msg) {
  if (e->err) {
    e->err->code = code;
    e->err->offset = e->out->len;
    snprintf(e->err->msg, sizeof(e->err->msg), "%s", msg);
  }
  return code;
}

/* ---- pass 1: reference counting ------------------------------------------ */

static int grow_ptrs(lmz_value ***arr, size_t *cap, size_t need) {
  if (need <= *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 64;
  while (ncap < need)
    ncap *= 2;
  lmz_value **p = realloc(*arr, ncap * sizeof(*p));
  if (!p)
    return LMZ_ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

static inline void push(struct enc *e, lmz_value *v) {
  if (v && lmz_type_has_identity((lmz_type)v->type))
    e->stack[e->n_stack++] = v;
}

/* Pushes the identity-bearing children of v in reverse emission order, so
 * that popping visits them in emission order. */
static int push_children(struct enc *e, lmz_value *v) {
  int rv;
  size_t n = v->n;
  switch ((lmz_type)v->type) {
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    if ((rv = grow_ptrs(&e->stack, &e->cap_stack, e->n_stack + n)) != 0)
      return rv;
    for (size_t i = n; i-- > 0;)
      push(e, v->u.items[i]);
    return 0;
  case LMZ_T_OBJECT:
    if ((rv = grow_ptrs(&e->stack, &e->cap_stack, e->n_stack + n)) != 0)
      return rv;
    for (size_t i = n; i-- > 0;)
      push(e, v->u.props[i].v);
    return 0;
  case LMZ_T_MAP:
    if ((rv = grow_ptrs(&e->stack, &e->cap_stack, e->n_stack + 2 * n)) != 0)
      return rv;
    for (size_t i = n; i-- > 0;) {
      push(e, v->u.ents[i].v);
      push(e, v->u.ents[i].k);
    }
    return 0;
  case LMZ_T_ERROR:
    if ((rv = grow_ptrs(&e->stack, &e->cap_stack, e->n_stack + n + 1)) != 0)
      return rv;
    for (size_t i = n; i-- > 0;)
      push(e, v->u.err.props[i].v);
    push(e, v->u.err.cause);
    return 0;
  case LMZ_T_VIEW:
    if ((rv = grow_ptrs(&e->stack, &e->cap_stack, e->n_stack + 1)) != 0)
      return rv;
    push(e, v->u.view.buffer);
    return 0;
  default:
    return 0; /* atomic: no identity-bearing children */
  }
}

static int cmp_first_visit(const void *a, const void *b) {
  const lmz_value *x = *(lmz_value *const *)a, *y = *(lmz_value *const *)b;
  return x->mark_id < y->mark_id ? -1 : x->mark_id > y->mark_id;
}

/* After this, for every node reached: mark = 1 (once) or 2 (aliased), and an
 * aliased node's mark_id is its alias id + 1. */
static int count_refs(struct enc *e, lmz_value *root) {
  int rv;
  uint32_t seq = 0;
  if ((rv = grow_ptrs(&e->stack, &e->cap_stack, 64)) != 0)
    return rv;
  push(e, root);
  while (e->n_stack > 0) {
    lmz_value *v = e->stack[--e->n_stack];
    if (v->mark_epoch == e->epoch) {
      if (v->mark == 1) { /* second reference: an alias */
        v->mark = 2;
        if ((rv = grow_ptrs(&e->aliases, &e->cap_alias, e->n_alias + 1)) != 0)
          return rv;
        e->aliases[e->n_alias++] = v;
      }
      continue;
    }
    v->mark_epoch = e->epoch;
    v->mark = 1;
    v->mark_id = seq++;
    if ((rv = push_children(e, v)) != 0)
      return rv;
  }
  if (e->n_alias > 1)
    qsort(e->aliases, e->n_alias, sizeof(*e->aliases), cmp_first_visit);
  for (size_t i = 0; i < e->n_alias; i++)
    e->aliases[i]->mark_id = (uint32_t)i + 1;
  return 0;
}

/* ---- scalar writers ------------------------------------------------------- */

static int put_u64(lmz_buf *b, uint64_t u, bool neg) {
  char tmp[24];
  char *p = tmp + sizeof(tmp);
  do {
    *--p = (char)('0' + u % 10);
    u /= 10;
  } while (u);
  if (neg)
    *--p = '-';
  return lmz_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

static int put_i64(lmz_buf *b, int64_t x) {
  return x < 0 ? put_u64(b, (uint64_t)0 - (uint64_t)x, true)
               : put_u64(b, (uint64_t)x, false);
}

/* "NaN", "Infinity", "-Infinity", "-0" or NULL for an ordinary number. */
static const char *special_name(double d) {
  if (isnan(d))
    return "NaN";
  if (isinf(d))
    return d > 0 ? "Infinity" : "-Infinity";
  if (d == 0 && signbit(d))
    return "-0";
  return NULL;
}

/* A finite number other than -0, as JavaScript prints it. */
static int put_plain_number(lmz_buf *b, double d) {
  if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == trunc(d))
    return put_i64(b, (int64_t)d); /* exact integers: the common case */
  return lmz_json_write_number(b, d);
}

static int put_str(lmz_buf *b, const char *s, size_t len) {
  return lmz_json_write_string(b, s, len);
}

/* A property key, with one extra '$' when it starts with '$'. */
static int put_key(lmz_buf *b, const char *k, size_t klen) {
  int rv;
  if (klen == 0 || k[0] != '$') {
    if ((rv = put_str(b, k, klen)) != 0)
      return rv;
    return lmz_buf_putc(b, ':');
  }
  size_t at = b->len;
  if ((rv = put_str(b, k, klen)) != 0)
    return rv;
  if ((rv = lmz_buf_append(b, "::", 2)) != 0) /* one byte of room for the '$' */
    return rv;
  /* shift everything after the opening quote right by one, put '$' there */
  memmove(b->data + at + 2, b->data + at + 1, b->len - at - 2);
  b->data[at + 1] = '$';
  return 0;
}

static int put_lower(lmz_buf *b, const char *s, size_t len) {
  int rv;
  size_t i = 0;
  while (i < len && !(s[i] >= 'A' && s[i] <= 'Z'))
    i++;
  if (i == len)
    return put_str(b, s, len);
  size_t at = b->len;
  if ((rv = put_str(b, s, len)) != 0)
    return rv;
  /* ASCII upper-case letters are never escaped, so fold them in place */
  for (size_t j = at + 1; j < b->len; j++)
    if (b->data[j] >= 'A' && b->data[j] <= 'Z')
      b->data[j] = (uint8_t)(b->data[j] + ('a' - 'A'));
  return 0;
}

/* ---- Date#toISOString ----------------------------------------------------- */

/* Writes the ISO string of a time value (ms since the epoch) into out (at
 * least 32 bytes); "Invalid Date" outside JavaScript's range. */
static size_t format_iso(double ms, char *out) {
  if (!(ms >= -8.64e15 && ms <= 8.64e15))
    return (size_t)snprintf(out, 32, "Invalid Date");
  int64_t t = (int64_t)trunc(ms); /* TimeClip: integral milliseconds */
  int64_t days = lmz__floor_div(t, 86400000), rem = t - days * 86400000;
  struct lmz_civil c = lmz__civil_from_days(days);
  int64_t y = c.y;
  unsigned mo = c.m, d = c.d;
  unsigned h = (unsigned)(rem / 3600000), mi = (unsigned)(rem / 60000 % 60),
           s = (unsigned)(rem / 1000 % 60), msec = (unsigned)(rem % 1000);
  int n;
  if (y >= 0 && y <= 9999)
    n = snprintf(out, 32, "%04d", (int)y);
  else
    n = snprintf(out, 32, "%c%06d", y < 0 ? '-' : '+', (int)(y < 0 ? -y : y));
  n += snprintf(out + n, (size_t)(32 - n), "-%02u-%02uT%02u:%02u:%02u.%03uZ",
                mo, d, h, mi, s, msec);
  return (size_t)n;
}

/* ---- pass 2: emission ----------------------------------------------------- */

static int emit(struct enc *e, const lmz_value *v, uint32_t depth);

static int emit_special(lmz_buf *b, const char *name) {
  int rv;
  if ((rv = PUT_LIT(b, "{\"$type\":\"number-special\",\"value\":\"")) != 0)
    return rv;
  if ((rv = lmz_buf_append_str(b, name)) != 0)
    return rv;
  return PUT_LIT(b, "\"}");
}

static int emit_items(struct enc *e, lmz_value *const *items, size_t n,
                      uint32_t depth) {
  int rv;
  if ((rv = lmz_buf_putc(e->out, '[')) != 0)
    return rv;
  for (size_t i = 0; i < n; i++) {
    if (i) {
      if ((rv = lmz_buf_putc(e->out, ',')) != 0)
        return rv;
    }
    if ((rv = emit(e, items[i], depth)) != 0)
      return rv;
  }
  return lmz_buf_putc(e->out, ']');
}

static int emit_object(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  if ((rv = lmz_buf_putc(e->out, '{')) != 0)
    return rv;
  for (uint32_t i = 0; i < v->n; i++) {
    if (i) {
      if ((rv = lmz_buf_putc(e->out, ',')) != 0)
        return rv;
    }
    if ((rv = put_key(e->out, v->u.props[i].key, v->u.props[i].klen)) != 0)
      return rv;
    if ((rv = emit(e, v->u.props[i].v, depth)) != 0)
      return rv;
  }
  return lmz_buf_putc(e->out, '}');
}

static int emit_map(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  if ((rv = PUT_LIT(e->out, "{\"$type\":\"map\",\"entries\":[")) != 0)
    return rv;
  for (uint32_t i = 0; i < v->n; i++) {
    if ((rv = i ? lmz_buf_append(e->out, ",[", 2)
                : lmz_buf_putc(e->out, '[')) != 0)
      return rv;
    if ((rv = emit(e, v->u.ents[i].k, depth)) != 0)
      return rv;
    if ((rv = lmz_buf_putc(e->out, ',')) != 0)
      return rv;
    if ((rv = emit(e, v->u.ents[i].v, depth)) != 0)
      return rv;
    if ((rv = lmz_buf_putc(e->out, ']')) != 0)
      return rv;
  }
  return PUT_LIT(e->out, "]}");
}

static bool error_std_key(const char *k, size_t n) {
  return (n == 4 && memcmp(k, "name", 4) == 0) ||
         (n == 7 && memcmp(k, "message", 7) == 0) ||
         (n == 5 && (memcmp(k, "stack", 5) == 0 || memcmp(k, "cause", 5) == 0));
}

static int emit_error(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  lmz_buf *b = e->out;
  const lmz_value *name = v->u.err.name, *msg = v->u.err.message;
  if ((rv = PUT_LIT(b, "{\"$type\":\"error\",\"name\":")) != 0)
    return rv;
  if ((rv = name ? put_str(b, name->u.str.p, name->u.str.len)
                 : PUT_LIT(b, "\"Error\"")) != 0)
    return rv;
  if ((rv = PUT_LIT(b, ",\"message\":")) != 0)
    return rv;
  if ((rv = msg ? put_str(b, msg->u.str.p, msg->u.str.len)
                : PUT_LIT(b, "\"\"")) != 0)
    return rv;
  if (v->u.err.stack) {
    if ((rv = PUT_LIT(b, ",\"stack\":")) != 0)
      return rv;
    const lmz_value *st = v->u.err.stack;
    if ((rv = put_str(b, st->u.str.p, st->u.str.len)) != 0)
      return rv;
  }
  if (v->u.err.cause) {
    if ((rv = PUT_LIT(b, ",\"cause\":")) != 0)
      return rv;
    if ((rv = emit(e, v->u.err.cause, depth)) != 0)
      return rv;
  }
  for (uint32_t i = 0; i < v->n; i++) {
    if (error_std_key(v->u.err.props[i].key, v->u.err.props[i].klen))
      return enc_fail(e, LMZ_EUNSUPPORTED,
                      "an Error custom property named name, message, stack "
                      "or cause has no SC-JSON form");
    if ((rv = lmz_buf_putc(b, ',')) != 0)
      return rv;
    if ((rv = put_key(b, v->u.err.props[i].key, v->u.err.props[i].klen)) != 0)
      return rv;
    if ((rv = emit(e, v->u.err.props[i].v, depth)) != 0)
      return rv;
  }
  return lmz_buf_putc(b, '}');
}

static int emit_headers(struct enc *e, const lmz_value *v) {
  int rv;
  lmz_buf *b = e->out;
  if ((rv = PUT_LIT(b, "{\"$type\":\"headers\",\"entries\":[")) != 0)
    return rv;
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_prop *p = &v->u.props[i];
    if ((rv = i ? lmz_buf_append(b, ",[", 2) : lmz_buf_putc(b, '[')) != 0)
      return rv;
    if ((rv = put_lower(b, p->key, p->klen)) != 0)
      return rv;
    if ((rv = lmz_buf_putc(b, ',')) != 0)
      return rv;
    if ((rv = put_str(b, p->v->u.str.p, p->v->u.str.len)) != 0)
      return rv;
    if ((rv = lmz_buf_putc(b, ']')) != 0)
      return rv;
  }
  return PUT_LIT(b, "]}");
}

/* Bytes as a JSON array of 0..255, written straight into reserved space. */
static int put_bytes(lmz_buf *b, const uint8_t *p, size_t n) {
  int rv;
  if (n > (SIZE_MAX - 2) / 4)
    return LMZ_ETOOBIG;
  if ((rv = lmz_buf_reserve(b, 4 * n + 2)) != 0)
    return rv;
  char *w = (char *)b->data + b->len;
  *w++ = '[';
  for (size_t i = 0; i < n; i++) {
    unsigned x = p[i];
    if (i)
      *w++ = ',';
    if (x >= 100) {
      *w++ = (char)('0' + x / 100);
      x %= 100;
      *w++ = (char)('0' + x / 10);
      *w++ = (char)('0' + x % 10);
    } else if (x >= 10) {
      *w++ = (char)('0' + x / 10);
      *w++ = (char)('0' + x % 10);
    } else {
      *w++ = (char)('0' + x);
    }
  }
  *w++ = ']';
  b->len = (size_t)(w - (char *)b->data);
  return 0;
}

static int put_float_elem(lmz_buf *b, double d) {
  int rv;
  const char *sp = special_name(d);
  if (!sp)
    return put_plain_number(b, d);
  if ((rv = lmz_buf_putc(b, '"')) != 0)
    return rv;
  if ((rv = lmz_buf_append_str(b, sp)) != 0)
    return rv;
  return lmz_buf_putc(b, '"');
}

/* One element of a typed array at p (little-endian host layout). */
static int put_elem(lmz_buf *b, lmz_view_kind k, const uint8_t *p) {
  int rv;
  union {
    int8_t i8;
    int16_t i16;
    uint16_t u16;
    int32_t i32;
    uint32_t u32;
    float f32;
    double f64;
    int64_t i64;
    uint64_t u64;
  } x;
  memcpy(&x, p, lmz_view_elem_size(k));
  switch (k) {
  case LMZ_VIEW_INT8: return put_i64(b, x.i8);
  case LMZ_VIEW_INT16: return put_i64(b, x.i16);
  case LMZ_VIEW_UINT16: return put_i64(b, x.u16);
  case LMZ_VIEW_INT32: return put_i64(b, x.i32);
  case LMZ_VIEW_UINT32: return put_i64(b, x.u32);
  case LMZ_VIEW_FLOAT32: return put_float_elem(b, (double)x.f32);
  case LMZ_VIEW_FLOAT64: return put_float_elem(b, x.f64);
  case LMZ_VIEW_BIGINT64:
    if ((rv = lmz_buf_putc(b, '"')) != 0)
      return rv;
    if ((rv = put_i64(b, x.i64)) != 0)
      return rv;
    return lmz_buf_putc(b, '"');
  case LMZ_VIEW_BIGUINT64:
    if ((rv = lmz_buf_putc(b, '"')) != 0)
      return rv;
    if ((rv = put_u64(b, x.u64, false)) != 0)
      return rv;
    return lmz_buf_putc(b, '"');
  default: return put_i64(b, *p); /* uint8, uint8 clamped, dataview */
  }
}

static int emit_view(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  lmz_buf *b = e->out;
  lmz_view_kind k = (lmz_view_kind)v->sub;
  const lmz_value *ab = v->u.view.buffer;
  size_t off = v->u.view.byte_offset, n = v->u.view.length;
  size_t esz = lmz_view_elem_size(k);
  bool shared = ab->mark_epoch == e->epoch && ab->mark > 1;
  if ((rv = PUT_LIT(b, "{\"$type\":\"arraybuffer\",\"subtype\":\"")) != 0)
    return rv;
  if ((rv = lmz_buf_append_str(b, lmz_view_kind_name(k))) != 0)
    return rv;
  if ((rv = PUT_LIT(b, "\",\"data\":")) != 0)
    return rv;
  if (k == LMZ_VIEW_DATAVIEW) {
    if ((rv = put_bytes(b, ab->u.ab.bytes, ab->u.ab.len)) != 0)
      return rv;
    if ((rv = PUT_LIT(b, ",\"byteOffset\":")) != 0)
      return rv;
    if ((rv = put_u64(b, off, false)) != 0)
      return rv;
    if ((rv = PUT_LIT(b, ",\"byteLength\":")) != 0)
      return rv;
    if ((rv = put_u64(b, n, false)) != 0)
      return rv;
  } else if (esz == 1 && k != LMZ_VIEW_INT8) {
    if ((rv = put_bytes(b, ab->u.ab.bytes + off, n)) != 0)
      return rv;
  } else {
    if ((rv = lmz_buf_putc(b, '[')) != 0)
      return rv;
    for (size_t i = 0; i < n; i++) {
      if (i) {
        if ((rv = lmz_buf_putc(b, ',')) != 0)
          return rv;
      }
      if ((rv = put_elem(b, k, ab->u.ab.bytes + off + i * esz)) != 0)
        return rv;
    }
    if ((rv = lmz_buf_putc(b, ']')) != 0)
      return rv;
  }
  bool partial = off != 0 || n * esz != ab->u.ab.len;
  if (shared || (partial && k != LMZ_VIEW_DATAVIEW)) {
    if (k != LMZ_VIEW_DATAVIEW) {
      if ((rv = PUT_LIT(b, ",\"byteOffset\":")) != 0)
        return rv;
      if ((rv = put_u64(b, off, false)) != 0)
        return rv;
    }
    if ((rv = PUT_LIT(b, ",\"buffer\":")) != 0)
      return rv;
    if ((rv = emit(e, ab, depth)) != 0)
      return rv;
  }
  return lmz_buf_putc(b, '}');
}

static int emit_tagged_str(lmz_buf *b, const char *head, size_t hlen,
                           const char *s, size_t len) {
  int rv;
  if ((rv = lmz_buf_append(b, head, hlen)) != 0)
    return rv;
  if ((rv = put_str(b, s, len)) != 0)
    return rv;
  return lmz_buf_putc(b, '}');
}
#define TAGGED_STR(b, head, s, len)                                            \
  emit_tagged_str((b), head, sizeof(head) - 1, (s), (len))

static int emit_boxed(lmz_buf *b, const lmz_value *v) {
  int rv;
  const lmz_value *p = v->u.boxed;
  switch ((lmz_boxed_kind)v->sub) {
  case LMZ_BOXED_BOOLEAN:
    return p->u.b ? PUT_LIT(b, "{\"$type\":\"boolean-object\",\"value\":true}")
                  : PUT_LIT(b, "{\"$type\":\"boolean-object\",\"value\":false}");
  case LMZ_BOXED_NUMBER: {
    const char *sp = special_name(p->u.num);
    if ((rv = PUT_LIT(b, "{\"$type\":\"number-object\",\"value\":")) != 0)
      return rv;
    if (sp) {
      if ((rv = lmz_buf_putc(b, '"')) != 0)
        return rv;
      if ((rv = lmz_buf_append_str(b, sp)) != 0)
        return rv;
      if ((rv = lmz_buf_putc(b, '"')) != 0)
        return rv;
    } else {
      if ((rv = put_plain_number(b, p->u.num)) != 0)
        return rv;
    }
    return lmz_buf_putc(b, '}');
  }
  case LMZ_BOXED_STRING:
    return TAGGED_STR(b, "{\"$type\":\"string-object\",\"value\":", p->u.str.p,
                      p->u.str.len);
  default:
    return TAGGED_STR(b, "{\"$type\":\"bigint-object\",\"value\":", p->u.str.p,
                      p->u.str.len);
  }
}

static int emit_atomic(struct enc *e, const lmz_value *v) {
  int rv;
  lmz_buf *b = e->out;
  char iso[32];
  switch ((lmz_type)v->type) {
  case LMZ_T_DATE:
    return TAGGED_STR(b, "{\"$type\":\"date\",\"iso\":", iso,
                      format_iso(v->u.num, iso));
  case LMZ_T_REGEXP:
    if ((rv = PUT_LIT(b, "{\"$type\":\"regexp\",\"source\":")) != 0)
      return rv;
    if ((rv = put_str(b, v->u.re.src, v->u.re.src_len)) != 0)
      return rv;
    if ((rv = PUT_LIT(b, ",\"flags\":")) != 0)
      return rv;
    if ((rv = put_str(b, v->u.re.flags, v->u.re.flags_len)) != 0)
      return rv;
    return lmz_buf_putc(b, '}');
  case LMZ_T_URL:
    return TAGGED_STR(b, "{\"$type\":\"url\",\"href\":", v->u.str.p,
                      v->u.str.len);
  case LMZ_T_HEADERS: return emit_headers(e, v);
  case LMZ_T_ARRAYBUFFER:
    if ((rv = PUT_LIT(b,
                      "{\"$type\":\"arraybuffer\",\"subtype\":\"ArrayBuffer\","
                      "\"data\":")) != 0)
      return rv;
    if ((rv = put_bytes(b, v->u.ab.bytes, v->u.ab.len)) != 0)
      return rv;
    return lmz_buf_putc(b, '}');
  case LMZ_T_BOXED: return emit_boxed(b, v);
  default: return enc_fail(e, LMZ_EINVAL, "corrupt value node");
  }
}

/* The body of an identity-bearing node (what an alias maps to). */
static int emit_body(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  switch ((lmz_type)v->type) {
  case LMZ_T_ARRAY: return emit_items(e, v->u.items, v->n, depth + 1);
  case LMZ_T_OBJECT: return emit_object(e, v, depth + 1);
  case LMZ_T_MAP: return emit_map(e, v, depth + 1);
  case LMZ_T_SET:
    if ((rv = PUT_LIT(e->out, "{\"$type\":\"set\",\"values\":")) != 0)
      return rv;
    if ((rv = emit_items(e, v->u.items, v->n, depth + 1)) != 0)
      return rv;
    return lmz_buf_putc(e->out, '}');
  case LMZ_T_ERROR: return emit_error(e, v, depth + 1);
  case LMZ_T_VIEW: return emit_view(e, v, depth + 1);
  default: return emit_atomic(e, v);
  }
}

/* depth: nesting level of v (the json root and alias bodies are at 1). Every
 * value written as a JSON object or array counts against ENC_MAX_DEPTH, as in
 * the decoder. */
static int emit(struct enc *e, const lmz_value *v, uint32_t depth) {
  int rv;
  lmz_buf *b = e->out;
  switch ((lmz_type)v->type) {
  case LMZ_T_NULL: return PUT_LIT(b, "null");
  case LMZ_T_BOOL: return v->u.b ? PUT_LIT(b, "true") : PUT_LIT(b, "false");
  case LMZ_T_STRING: return put_str(b, v->u.str.p, v->u.str.len);
  case LMZ_T_NUMBER:
    if (!special_name(v->u.num))
      return put_plain_number(b, v->u.num);
    break;
  default:
    break;
  }
  if (depth > ENC_MAX_DEPTH)
    return enc_fail(e, LMZ_ETOODEEP, "value nested deeper than 512 levels");
  switch ((lmz_type)v->type) {
  case LMZ_T_UNDEFINED: return PUT_LIT(b, "{\"$type\":\"undefined\"}");
  case LMZ_T_HOLE: return PUT_LIT(b, "{\"$type\":\"hole\"}");
  case LMZ_T_NUMBER: return emit_special(b, special_name(v->u.num));
  case LMZ_T_BIGINT:
    return TAGGED_STR(b, "{\"$type\":\"bigint\",\"value\":", v->u.str.p,
                      v->u.str.len);
  default:
    break;
  }
  if (v->type >= LMZ_T__COUNT)
    return enc_fail(e, LMZ_EINVAL, "corrupt value node");
  if (v->mark_epoch == e->epoch && v->mark > 1) {
    if ((rv = PUT_LIT(b, "{\"$ref\":")) != 0)
      return rv;
    if ((rv = put_u64(b, v->mark_id - 1, false)) != 0)
      return rv;
    return lmz_buf_putc(b, '}');
  }
  return emit_body(e, v, depth);
}

static int encode(struct enc *e, lmz_value *v) {
  int rv;
  lmz_buf *b = e->out;
  if ((rv = count_refs(e, v)) != 0)
    return rv;
  if ((rv = PUT_LIT(b, "{\"json\":")) != 0)
    return rv;
  if ((rv = emit(e, v, 1)) != 0)
    return rv;
  if (e->n_alias == 0)
    return PUT_LIT(b, ",\"meta\":{}}");
  if ((rv = PUT_LIT(b, ",\"meta\":{\"aliases\":{")) != 0)
    return rv;
  for (size_t i = 0; i < e->n_alias; i++) {
    if ((rv = i ? lmz_buf_append(b, ",\"", 2) : lmz_buf_putc(b, '"')) != 0)
      return rv;
    if ((rv = put_u64(b, i, false)) != 0)
      return rv;
    if ((rv = PUT_LIT(b, "\":")) != 0)
      return rv;
    if ((rv = emit_body(e, e->aliases[i], 1)) != 0)
      return rv;
  }
  return PUT_LIT(b, "}}}");
}

int lmz_scjson_encode(const lmz_value *v, lmz_buf *out,
                      struct lmz_codec_error *err) {
  struct enc e = {.out = out, .err = err};
  if (err) {
    err->code = 0;
    err->offset = 0;
    err->msg[0] = 0;
  }
  if (!v || !out)
    return enc_fail(&e, LMZ_EINVAL, "NULL value or buffer");
  e.epoch = lmz__value_next_epoch();
  /* the marks are scratch: a node of the graph is never written otherwise */
  int rc = encode(&e, (lmz_value *)(uintptr_t)v);
  free(e.aliases);
  free(e.stack);
  if (rc != 0 && err && err->code == 0)
    enc_fail(&e, rc, rc == LMZ_ENOMEM ? "out of memory" : lmz_strerror(rc));
  return rc;
}
