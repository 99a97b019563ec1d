/* Unit tests of the binary codec (core/codec_bin.c): exact bytes of small
 * values, round trips of every type and of random graphs, hostile input with
 * exact error codes and offsets, limits, and the encoder's depth bound.
 *
 * With LMZ_WRITE_CORPUS=1 in the environment, seeds_decode also (re)writes
 * the fuzz seed corpus tests/fuzz/corpus/bin/ from gen_value. */
#include "lib/testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/codec.h"
#include "core/value_int.h"
#include "lib/gen_value.h"

static int setup(void **state) {
  *state = lmz_arena_new();
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  lmz_arena_free(*state);
  return 0;
}

#define A ((lmz_arena *)*state)

/* Encodes v; returns the malloc'd bytes (free()) and their length. */
static uint8_t *enc(const lmz_value *v, size_t *len) {
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  int rv = lmz_bin_encode(v, &b, &err);
  if (rv)
    fail_msg("encode: %s", err.msg);
  return lmz_buf_detach(&b, len);
}

static lmz_value *dec_ok(lmz_arena *a, const void *p, size_t n) {
  lmz_value *out = NULL;
  struct lmz_codec_error err;
  int rv = lmz_bin_decode(a, p, n, NULL, &out, &err);
  if (rv)
    fail_msg("decode: %s (%s at %zu)", err.msg, lmz_err_name(rv), err.offset);
  return out;
}

static lmz_value *round_trip(lmz_arena *a, const lmz_value *v) {
  size_t n;
  uint8_t *p = enc(v, &n);
  lmz_value *w = dec_ok(a, p, n);
  free(p);
  return w;
}

/* Decoding `p` must fail with `code` at `offset`; returns the message. */
static const char *dec_fail(lmz_arena *a, const void *p, size_t n,
                            const struct lmz_codec_limits *l, int code,
                            size_t offset) {
  static struct lmz_codec_error err;
  lmz_value *out = (lmz_value *)&err; /* must stay untouched */
  memset(&err, 0, sizeof err);
  int rv = lmz_bin_decode(a, p, n, l, &out, &err);
  if (rv != code || err.code != code || err.offset != offset)
    fail_msg("want %s at %zu, got %s at %zu: %s", lmz_err_name(code), offset,
             lmz_err_name(rv), err.offset, err.msg);
  assert_ptr_equal(out, (lmz_value *)&err);
  assert_true(strlen(err.msg) > 0);
  return err.msg;
}

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static void expect_bytes(const lmz_value *v, const uint8_t *want, size_t n) {
  size_t len;
  uint8_t *got = enc(v, &len);
  assert_int_equal(len, n);
  assert_memory_equal(got, want, n);
  free(got);
}

/* ---- exact encodings ------------------------------------------------------------------ */

static void golden_bytes(void **state) {
  lmz_arena *a = A;
  expect_bytes(lmz_undefined(), BYTES(0xB7, 0x01, 0x00));
  expect_bytes(lmz_bool(true), BYTES(0xB7, 0x01, 0x03));
  expect_bytes(lmz_number(a, 5), BYTES(0xB7, 0x01, 0x45));
  expect_bytes(lmz_number(a, 64), BYTES(0xB7, 0x01, 0x05, 0x80, 0x01));
  expect_bytes(lmz_number(a, -1), BYTES(0xB7, 0x01, 0x05, 0x01));
  expect_bytes(lmz_number(a, -0.0),
               BYTES(0xB7, 0x01, 0x06, 0, 0, 0, 0, 0, 0, 0, 0x80));
  expect_bytes(lmz_number(a, 1.5),
               BYTES(0xB7, 0x01, 0x06, 0, 0, 0, 0, 0, 0, 0xF8, 0x3F));
  expect_bytes(lmz_number(a, -NAN), /* NaN payload canonicalized */
               BYTES(0xB7, 0x01, 0x06, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F));
  expect_bytes(lmz_cstring(a, "hi"), BYTES(0xB7, 0x01, 0x82, 'h', 'i'));
  expect_bytes(lmz_bigint(a, "-12", 3), BYTES(0xB7, 0x01, 0x07, 3, '-', '1', '2'));
  /* a = [1]; a.push(a) */
  lmz_value *cyc = lmz_array(a, 0);
  lmz_array_push(cyc, lmz_number(a, 1));
  lmz_array_push(cyc, cyc);
  expect_bytes(cyc, BYTES(0xB7, 0x01, 0x11, 0x02, 0x41, 0x09, 0x00));
  /* [o, o, hole] with o = {a: "x"} */
  lmz_value *o = lmz_object(a), *arr = lmz_array(a, 0);
  lmz_object_setc(o, "a", lmz_cstring(a, "x"));
  lmz_array_push(arr, o);
  lmz_array_push(arr, o);
  lmz_array_push(arr, lmz_hole());
  expect_bytes(arr, BYTES(0xB7, 0x01, 0x11, 0x03, 0x12, 0x01, 0x01, 'a', 0x81,
                          'x', 0x09, 0x01, 0x04));
  /* Uint16Array(buffer, 2, 1) over a 4-byte buffer */
  lmz_value *ab = lmz_arraybuffer(a, "\x01\x02\x03\x04", 4);
  expect_bytes(lmz_view(a, LMZ_VIEW_UINT16, ab, 2, 1),
               BYTES(0xB7, 0x01, 0x0F, 0x04, 0x02, 0x01, 0x0E, 0x04, 1, 2, 3, 4));
  /* Error("m") named E with cause = itself */
  lmz_value *e = lmz_error(a, "E", "m");
  lmz_error_set_cause(e, e);
  expect_bytes(e, BYTES(0xB7, 0x01, 0x15, 0x01, 'E', 0x01, 'm', 0x02, 0x09,
                        0x00, 0x00));
  /* a 64-byte string leaves the short form */
  char s64[64];
  memset(s64, 'z', 64);
  size_t len;
  uint8_t *p = enc(lmz_string(a, s64, 64), &len);
  assert_int_equal(len, 2 + 2 + 64);
  assert_int_equal(p[2], 0x08);
  assert_int_equal(p[3], 64);
  free(p);
}

/* ---- round trips -------------------------------------------------------------------------- */

/* One graph holding every type, with sharing and cycles. */
static lmz_value *every_type(lmz_arena *a) {
  lmz_value *root = lmz_array(a, 0);
  lmz_value *items[] = {
      lmz_undefined(), lmz_null(), lmz_bool(true), lmz_bool(false),
      lmz_number(a, -0.0), lmz_number(a, NAN), lmz_number(a, INFINITY),
      lmz_number(a, -INFINITY), lmz_number(a, 9007199254740992.0),
      lmz_number(a, -9007199254740992.0), lmz_number(a, 9007199254740994.0),
      lmz_number(a, 0.1), lmz_number(a, 5e-324), lmz_number(a, 63),
      lmz_number(a, -64), lmz_bigint(a, "-123456789012345678901234567890", 31),
      lmz_bigint(a, "0", 1), lmz_string(a, "", 0), lmz_string(a, "a\0b", 3),
      lmz_cstring(a, "\xed\xa0\x80 lone surrogate"), lmz_cstring(a, "$ref"),
      lmz_date(a, 1700000000123.0), lmz_date(a, NAN),
      lmz_regexp(a, "^a+$", 4, "gimsuy", 6), lmz_url(a, "https://e.x/?q#f", 16)};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(items); i++)
    lmz_array_push(root, items[i]);
  lmz_array_push(root, lmz_hole());
  lmz_value *h = lmz_headers(a);
  lmz_headers_append(h, "content-type", 12, "text/html", 9);
  lmz_headers_append(h, "set-cookie", 10, "", 0);
  lmz_array_push(root, h);
  lmz_value *ab = lmz_arraybuffer(a, "0123456789abcdef0123456789abcdef", 32);
  for (int k = 0; k < LMZ_VIEW__COUNT; k++) {
    size_t esz = lmz_view_elem_size((lmz_view_kind)k);
    lmz_array_push(root, lmz_view(a, (lmz_view_kind)k, ab, 8, 24 / esz - 1));
  }
  lmz_array_push(root, lmz_arraybuffer(a, NULL, 0));
  lmz_array_push(root, lmz_boxed(a, lmz_bool(false)));
  lmz_array_push(root, lmz_boxed(a, lmz_number(a, -0.0)));
  lmz_array_push(root, lmz_boxed(a, lmz_cstring(a, "boxed")));
  lmz_array_push(root, lmz_boxed(a, lmz_bigint(a, "7", 1)));
  lmz_value *o = lmz_object(a);
  lmz_object_setc(o, "$type", lmz_cstring(a, "not meta"));
  lmz_object_setc(o, "self", o);
  lmz_object_setc(o, "root", root);
  lmz_array_push(root, o);
  lmz_value *m = lmz_map(a);
  lmz_map_set(m, o, lmz_cstring(a, "object key"));
  lmz_map_set(m, lmz_number(a, NAN), o);
  lmz_map_set(m, m, m);
  lmz_array_push(root, m);
  lmz_value *s = lmz_set(a);
  lmz_set_add(s, o);
  lmz_set_add(s, s);
  lmz_set_add(s, lmz_cstring(a, "x"));
  lmz_array_push(root, s);
  lmz_value *agg = lmz_error(a, "AggregateError", "many");
  lmz_value *errs = lmz_array(a, 0);
  lmz_value *te = lmz_error(a, "TypeError", "t");
  lmz_error_set_stack(te, "TypeError: t\n    at x (y.js:1:1)", 31);
  lmz_error_set_cause(te, agg);
  lmz_array_push(errs, te);
  lmz_error_set_prop(agg, "errors", 6, errs);
  lmz_error_set_prop(agg, "code", 4, lmz_cstring(a, "E_AGG"));
  lmz_error_set_cause(agg, o);
  lmz_array_push(root, agg);
  lmz_array_push(root, lmz_hole()); /* trailing hole */
  return root;
}

static void every_type_round_trips(void **state) {
  lmz_arena *a = A;
  lmz_value *v = every_type(a);
  lmz_value *w = round_trip(a, v);
  assert_true(lmz_value_equal(v, w));
  /* spot checks beyond equality */
  assert_true(signbit(lmz_get_number(lmz_array_get(w, 4))));
  assert_true(isnan(lmz_get_number(lmz_array_get(w, 5))));
  size_t len;
  assert_memory_equal(lmz_get_str(lmz_array_get(w, 18), &len), "a\0b", 3);
  assert_int_equal(len, 3);
  lmz_value *v0 = lmz_array_get(w, 27), *v1 = lmz_array_get(w, 28);
  assert_int_equal(lmz_typeof(v0), LMZ_T_VIEW);
  assert_ptr_equal(lmz_view_buffer(v0), lmz_view_buffer(v1)); /* one buffer */
  assert_int_equal(lmz_view_byte_offset(v1), 8);
  lmz_value *last = lmz_array_get(w, lmz_len(w) - 1);
  assert_ptr_equal(last, lmz_hole());
  /* each element alone, too */
  for (size_t i = 0; i < lmz_len(v); i++) {
    lmz_value *x = lmz_array_get(v, i);
    if (lmz_typeof(x) == LMZ_T_HOLE)
      continue;
    assert_true(lmz_value_equal(x, round_trip(a, x)));
  }
}

/* encode(decode(encode(v))) == encode(v): the encoding is canonical. */
static void random_graphs_round_trip(void **state) {
  struct gen_opts o;
  gen_opts_default(&o);
  lmz_arena *src = lmz_arena_new(), *dst = lmz_arena_new();
  size_t total = 0;
  for (uint64_t i = 0; i < 2000; i++) {
    uint64_t seed = 0x5eed0000 + i;
    o.cycles = i % 4 != 1;
    o.aliases = i % 4 != 2;
    lmz_value *v = gen_value(src, &seed, &o);
    assert_non_null(v);
    size_t n1, n2;
    uint8_t *b1 = enc(v, &n1);
    lmz_value *w = dec_ok(dst, b1, n1);
    if (!lmz_value_equal(v, w))
      fail_msg("seed %llu: decoded graph differs", (unsigned long long)(0x5eed0000 + i));
    uint8_t *b2 = enc(w, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    total += n1;
    free(b1);
    free(b2);
    lmz_arena_reset(src);
    lmz_arena_reset(dst);
  }
  assert_true(total > 100000); /* the graphs are not trivial */
  lmz_arena_free(src);
  lmz_arena_free(dst);
  (void)state;
}

static void sharing_is_compact(void **state) {
  lmz_arena *a = A;
  lmz_value *o = lmz_object(a), *arr = lmz_array(a, 0);
  lmz_object_setc(o, "payload", lmz_cstring(a, "0123456789012345678901234567890"));
  for (int i = 0; i < 1000; i++)
    lmz_array_push(arr, o);
  size_t n;
  uint8_t *p = enc(arr, &n);
  assert_true(n < 2 + 3 + 45 + 999 * 2 + 10); /* back-refs are 2 bytes */
  lmz_value *w = dec_ok(a, p, n);
  free(p);
  for (int i = 1; i < 1000; i++)
    assert_ptr_equal(lmz_array_get(w, (size_t)i), lmz_array_get(w, 0));
}

static void encode_appends_and_rejects_bad_graphs(void **state) {
  lmz_arena *a = A;
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append(&b, "xyz", 3);
  assert_int_equal(lmz_bin_encode(lmz_null(), &b, NULL), 0);
  assert_int_equal(b.len, 6);
  assert_memory_equal(b.data, "xyz\xB7\x01\x01", 6);
  struct lmz_codec_error err;
  assert_int_equal(lmz_bin_encode(lmz_hole(), &b, &err), LMZ_EINVAL);
  assert_int_equal(err.code, LMZ_EINVAL);
  assert_int_equal(b.len, 6); /* truncated back */
  lmz_value *o = lmz_object(a);
  lmz_object_setc(o, "a", lmz_null());
  o->u.props[0].v = lmz_hole(); /* hand-made, forbidden */
  assert_int_equal(lmz_bin_encode(o, &b, &err), LMZ_EINVAL);
  assert_non_null(strstr(err.msg, "hole"));
  assert_int_equal(b.len, 6);
  lmz_buf_free(&b);
}

static lmz_value *nest(lmz_arena *a, int depth) {
  lmz_value *v = lmz_array(a, 0);
  for (int i = 1; i < depth; i++) {
    lmz_value *arr = lmz_array(a, 1);
    lmz_array_push(arr, v);
    v = arr;
  }
  return v;
}

static void encoder_depth_bound(void **state) {
  lmz_arena *a = A;
  lmz_value *ok = nest(a, 512);
  assert_true(lmz_value_equal(ok, round_trip(a, ok)));
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  assert_int_equal(lmz_bin_encode(nest(a, 513), &b, &err), LMZ_ETOODEEP);
  assert_int_equal(err.code, LMZ_ETOODEEP);
  assert_int_equal(lmz_bin_encode(nest(a, 1000000), &b, NULL), LMZ_ETOODEEP);
  assert_int_equal(b.len, 0);
  /* boxed (like views) counts as a level: 511 arrays + boxed is fine */
  lmz_value *deep = nest(a, 511), *leaf = deep;
  while (lmz_len(leaf))
    leaf = lmz_array_get(leaf, 0);
  lmz_array_push(leaf, lmz_boxed(a, lmz_bool(true)));
  assert_int_equal(lmz_bin_encode(deep, &b, NULL), 0);
  b.len = 0;
  lmz_value *l2 = lmz_array(a, 0); /* 512 arrays + boxed is not */
  lmz_array_push(leaf, l2);
  lmz_array_push(l2, lmz_boxed(a, lmz_bool(true)));
  assert_int_equal(lmz_bin_encode(deep, &b, NULL), LMZ_ETOODEEP);
  lmz_buf_free(&b);
}

/* ---- hostile input ----------------------------------------------------------------------- */

static void header_errors(void **state) {
  lmz_arena *a = A;
  dec_fail(a, "", 0, NULL, LMZ_EBADMSG, 0);
  dec_fail(a, BYTES(0x7B, 0x01, 0x00), NULL, LMZ_EBADMSG, 0);
  dec_fail(a, BYTES(0xB7), NULL, LMZ_EBADMSG, 1);
  const char *m = dec_fail(a, BYTES(0xB7, 0x02, 0x00), NULL, LMZ_EBADVERSION, 1);
  assert_non_null(strstr(m, "version 2"));
  dec_fail(a, BYTES(0xB7, 0x00), NULL, LMZ_EBADVERSION, 1);
  dec_fail(a, BYTES(0xB7, 0x01), NULL, LMZ_EBADMSG, 2);          /* no value */
  dec_fail(a, BYTES(0xB7, 0x01, 0x00, 0x00), NULL, LMZ_EBADMSG, 3); /* trailing */
  assert_int_equal(lmz_bin_decode(a, NULL, 3, NULL, &(lmz_value *){NULL}, NULL),
                   LMZ_EINVAL);
}

static void bad_tags_and_fields(void **state) {
  lmz_arena *a = A;
  const char *m = dec_fail(a, BYTES(0xB7, 0x01, 0x16), NULL, LMZ_EBADMSG, 2);
  assert_non_null(strstr(m, "0x16"));
  dec_fail(a, BYTES(0xB7, 0x01, 0xC0), NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x11, 0x02, 0x00, 0xFF), NULL, LMZ_EBADMSG, 5);
  dec_fail(a, BYTES(0xB7, 0x01, 0x04), NULL, LMZ_EBADMSG, 2); /* bare hole */
  dec_fail(a, BYTES(0xB7, 0x01, 0x12, 0x01, 0x01, 'a', 0x04), NULL, LMZ_EBADMSG, 6);
  /* varints */
  dec_fail(a, BYTES(0xB7, 0x01, 0x08, 0x80), NULL, LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                    0xFF, 0xFF, 0x02),
           NULL, LMZ_EBADMSG, 3);
  /* lengths larger than the input */
  dec_fail(a, BYTES(0xB7, 0x01, 0x08, 0x05, 'a', 'b'), NULL, LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x85, 'a'), NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x0E, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F), NULL,
           LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x06, 0, 0, 0), NULL, LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0), NULL, LMZ_EBADMSG, 3);
  /* integers beyond 2^53: zigzag(2^53 + 1) = 2^54 + 2, zigzag(-2^53 - 1) */
  dec_fail(a, BYTES(0xB7, 0x01, 0x05, 0x82, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                    0x20),
           NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x05, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                    0x20),
           NULL, LMZ_EBADMSG, 2);
  lmz_value *max = dec_ok(a, BYTES(0xB7, 0x01, 0x05, 0x80, 0x80, 0x80, 0x80,
                                   0x80, 0x80, 0x80, 0x20));
  assert_true(lmz_get_number(max) == 9007199254740992.0);
  lmz_value *min = dec_ok(a, BYTES(0xB7, 0x01, 0x05, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0x1F));
  assert_true(lmz_get_number(min) == -9007199254740992.0);
  /* bigints must be normalized */
  dec_fail(a, BYTES(0xB7, 0x01, 0x07, 0x02, '0', '7'), NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x07, 0x02, '-', '0'), NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x07, 0x00), NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x07, 0x02, '1', 'a'), NULL, LMZ_EBADMSG, 2);
  /* error flags */
  dec_fail(a, BYTES(0xB7, 0x01, 0x15, 0x00, 0x00, 0x04, 0x00), NULL, LMZ_EBADMSG, 5);
  /* utf-8 is not validated */
  lmz_value *s = dec_ok(a, BYTES(0xB7, 0x01, 0x82, 0xFF, 0xC0));
  size_t len;
  assert_memory_equal(lmz_get_str(s, &len), "\xFF\xC0", 3);
  assert_int_equal(len, 2);
}

static void back_references(void **state) {
  lmz_arena *a = A;
  dec_fail(a, BYTES(0xB7, 0x01, 0x09, 0x00), NULL, LMZ_EBADMSG, 2);
  /* ids: array 0, object 1; id 2 is unknown */
  const char *m = dec_fail(a, BYTES(0xB7, 0x01, 0x11, 0x02, 0x12, 0x00, 0x09, 0x02),
                           NULL, LMZ_EBADMSG, 6);
  assert_non_null(strstr(m, "id 2"));
  lmz_value *v = dec_ok(a, BYTES(0xB7, 0x01, 0x11, 0x02, 0x12, 0x00, 0x09, 0x01));
  assert_ptr_equal(lmz_array_get(v, 0), lmz_array_get(v, 1));
  /* a back-reference to a container under construction is a cycle */
  v = dec_ok(a, BYTES(0xB7, 0x01, 0x11, 0x01, 0x09, 0x00));
  assert_ptr_equal(lmz_array_get(v, 0), v);
  /* primitives get no id */
  dec_fail(a, BYTES(0xB7, 0x01, 0x11, 0x02, 0x81, 'x', 0x09, 0x01), NULL,
           LMZ_EBADMSG, 6);
}

static void views_and_boxed(void **state) {
  lmz_arena *a = A;
  /* unknown kind */
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x0C, 0x00, 0x00, 0x0E, 0x00), NULL,
           LMZ_EBADMSG, 3);
  /* Float64Array of 2 elements at 0 over 8 bytes */
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x08, 0x00, 0x02, 0x0E, 0x08, 0, 0, 0, 0,
                    0, 0, 0, 0),
           NULL, LMZ_EBADMSG, 2);
  /* misaligned Int32Array */
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x05, 0x02, 0x01, 0x0E, 0x08, 0, 0, 0, 0,
                    0, 0, 0, 0),
           NULL, LMZ_EBADMSG, 2);
  /* offset past the end, huge length (overflow) */
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x00, 0x09, 0x00, 0x0E, 0x08, 0, 0, 0, 0,
                    0, 0, 0, 0),
           NULL, LMZ_EBADMSG, 2);
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x0A, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                    0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x0E, 0x00),
           NULL, LMZ_EBADMSG, 2);
  /* not a buffer: an object, or the view itself */
  const char *m = dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x01, 0x00, 0x00, 0x12, 0x00),
                           NULL, LMZ_EBADMSG, 2);
  assert_non_null(strstr(m, "Object"));
  dec_fail(a, BYTES(0xB7, 0x01, 0x0F, 0x01, 0x00, 0x00, 0x09, 0x00), NULL,
           LMZ_EBADMSG, 2);
  /* two views sharing a buffer through a back-reference */
  lmz_value *v = dec_ok(a, BYTES(0xB7, 0x01, 0x11, 0x02, 0x0F, 0x0B, 0x01, 0x02,
                                 0x0E, 0x04, 1, 2, 3, 4, 0x0F, 0x03, 0x02, 0x01,
                                 0x09, 0x02));
  assert_ptr_equal(lmz_view_buffer(lmz_array_get(v, 0)),
                   lmz_view_buffer(lmz_array_get(v, 1)));
  assert_int_equal(lmz_view_get_kind(lmz_array_get(v, 0)), LMZ_VIEW_DATAVIEW);
  assert_int_equal(lmz_view_byte_length(lmz_array_get(v, 1)), 2);
  /* boxed: unknown kind, mismatched value, object value */
  dec_fail(a, BYTES(0xB7, 0x01, 0x10, 0x04, 0x02), NULL, LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x10, 0x00, 0x41), NULL, LMZ_EBADMSG, 4);
  dec_fail(a, BYTES(0xB7, 0x01, 0x10, 0x02, 0x09, 0x00), NULL, LMZ_EBADMSG, 4);
  v = dec_ok(a, BYTES(0xB7, 0x01, 0x10, 0x03, 0x07, 0x01, '9'));
  assert_string_equal(lmz_get_str(v, NULL), "9");
}

static void duplicates_are_rejected(void **state) {
  lmz_arena *a = A;
  dec_fail(a, BYTES(0xB7, 0x01, 0x12, 0x02, 0x01, 'a', 0x40, 0x01, 'a', 0x41),
           NULL, LMZ_EBADMSG, 7);
  dec_fail(a, BYTES(0xB7, 0x01, 0x13, 0x02, 0x40, 0x40, 0x40, 0x41), NULL,
           LMZ_EBADMSG, 6);
  /* Set: NaN twice; +0 and -0 */
  dec_fail(a, BYTES(0xB7, 0x01, 0x14, 0x02, 0x06, 0, 0, 0, 0, 0, 0, 0xF8, 0x7F,
                    0x06, 1, 0, 0, 0, 0, 0, 0xF0, 0x7F),
           NULL, LMZ_EBADMSG, 13);
  dec_fail(a, BYTES(0xB7, 0x01, 0x14, 0x02, 0x40, 0x06, 0, 0, 0, 0, 0, 0, 0, 0x80),
           NULL, LMZ_EBADMSG, 5);
  /* the same object twice as a Map key */
  dec_fail(a, BYTES(0xB7, 0x01, 0x13, 0x02, 0x12, 0x00, 0x00, 0x09, 0x01, 0x00),
           NULL, LMZ_EBADMSG, 7);
  /* error props */
  dec_fail(a, BYTES(0xB7, 0x01, 0x15, 0x00, 0x00, 0x00, 0x02, 0x01, 'c', 0x40,
                    0x01, 'c', 0x40),
           NULL, LMZ_EBADMSG, 10);
  /* a big object (indexed path): 40 keys, the last repeats the first */
  uint8_t buf[2 + 2 + 40 * 4];
  size_t n = 0;
  buf[n++] = 0xB7, buf[n++] = 0x01, buf[n++] = 0x12, buf[n++] = 40;
  for (int i = 0; i < 40; i++) {
    buf[n++] = 0x02;
    buf[n++] = (uint8_t)('A' + (i == 39 ? 0 : i));
    buf[n++] = 'k';
    buf[n++] = 0x40;
  }
  dec_fail(a, buf, n, NULL, LMZ_EBADMSG, 4 + 39 * 4);
  buf[n - 3] = 'z';
  lmz_value *v = dec_ok(a, buf, n);
  assert_int_equal(lmz_len(v), 40);
  assert_non_null(lmz_object_getc(v, "zk"));
}

static void counts_are_bounded_by_input(void **state) {
  lmz_arena *a = A;
  size_t used = lmz_arena_used(a);
  /* 4G items declared, 0 present: rejected before allocating anything */
  dec_fail(a, BYTES(0xB7, 0x01, 0x11, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F), NULL,
           LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x12, 0x03, 0x00, 0x40, 0x00), NULL,
           LMZ_EBADMSG, 3); /* 3 props need >= 6 bytes, 3 left */
  dec_fail(a, BYTES(0xB7, 0x01, 0x0D, 0x02, 0x00, 0x00, 0x00), NULL,
           LMZ_EBADMSG, 3);
  dec_fail(a, BYTES(0xB7, 0x01, 0x14, 0x05, 0x40, 0x41), NULL, LMZ_EBADMSG, 3);
  assert_int_equal(lmz_arena_used(a), used);
  /* exactly enough bytes: accepted */
  lmz_value *v = dec_ok(a, BYTES(0xB7, 0x01, 0x11, 0x03, 0x40, 0x04, 0x04));
  assert_int_equal(lmz_len(v), 3);
  /* one item short: the count no longer fits */
  dec_fail(a, BYTES(0xB7, 0x01, 0x11, 0x03, 0x40, 0x41), NULL, LMZ_EBADMSG, 3);
}

static void depth_bomb(void **state) {
  lmz_arena *a = A;
  enum { N = 100000 };
  uint8_t *p = malloc(2 + 2 * N);
  p[0] = 0xB7, p[1] = 0x01;
  for (int i = 0; i < N; i++)
    p[2 + 2 * i] = 0x11, p[3 + 2 * i] = 0x01;
  dec_fail(a, p, 2 + 2 * N, NULL, LMZ_ETOODEEP, 2 + 2 * 512);
  /* 512 levels are fine (the innermost is empty) */
  p[3 + 2 * 511] = 0x00;
  lmz_value *v = dec_ok(a, p, 2 + 2 * 512);
  assert_int_equal(lmz_len(v), 1);
  /* a limit above the cap is clamped: no stack overflow */
  struct lmz_codec_limits l;
  lmz_codec_limits_default(&l);
  l.max_depth = 1000000;
  p[3 + 2 * 511] = 0x01;
  dec_fail(a, p, 2 + 2 * N, &l, LMZ_ETOODEEP, 2 + 2 * 2048);
  /* boxed counts as a level: 511 arrays + boxed(true) is ok, 512 + boxed not */
  p[2 + 2 * 511] = 0x10, p[3 + 2 * 511] = 0x00, p[4 + 2 * 511] = 0x03;
  assert_non_null(dec_ok(a, p, 2 + 2 * 511 + 3));
  p[2 + 2 * 511] = 0x11, p[3 + 2 * 511] = 0x01;
  p[2 + 2 * 512] = 0x10, p[3 + 2 * 512] = 0x00, p[4 + 2 * 512] = 0x03;
  dec_fail(a, p, 2 + 2 * 512 + 3, NULL, LMZ_ETOODEEP, 2 + 2 * 512);
  free(p);
}

static void truncated_prefixes_fail(void **state) {
  lmz_arena *a = A;
  struct gen_opts o;
  gen_opts_default(&o);
  lmz_value *graphs[8];
  graphs[0] = every_type(a);
  for (int i = 1; i < 8; i++) {
    uint64_t seed = 1000 + (uint64_t)i;
    do
      graphs[i] = gen_value(a, &seed, &o);
    while (lmz_typeof(graphs[i]) < LMZ_T_HEADERS);
  }
  lmz_arena *scratch = lmz_arena_new();
  for (int g = 0; g < 8; g++) {
    size_t n;
    uint8_t *p = enc(graphs[g], &n);
    for (size_t cut = 0; cut < n; cut++) {
      uint8_t *copy = malloc(cut ? cut : 1); /* ASan sees any overread */
      memcpy(copy, p, cut);
      lmz_value *out = NULL;
      struct lmz_codec_error err;
      int rv = lmz_bin_decode(scratch, copy, cut, NULL, &out, &err);
      if (rv != LMZ_EBADMSG || err.offset > cut || out)
        fail_msg("graph %d cut at %zu of %zu: %s at %zu", g, cut, n,
                 lmz_err_name(rv), err.offset);
      free(copy);
      lmz_arena_reset(scratch);
    }
    assert_true(lmz_value_equal(graphs[g], dec_ok(scratch, p, n)));
    free(p);
  }
  lmz_arena_free(scratch);
}

/* ---- limits ------------------------------------------------------------------------------- */

static void limits_are_enforced(void **state) {
  lmz_arena *a = A;
  struct lmz_codec_limits l;
  lmz_codec_limits_default(&l);
  assert_int_equal(l.max_depth, 512);
  assert_int_equal(l.max_input, 64u << 20);
  assert_int_equal(l.max_nodes, 4u << 20);
  assert_int_equal(l.max_memory, 0);
  lmz_value *out;
  /* depth */
  l.max_depth = 3;
  uint8_t three[] = {0xB7, 0x01, 0x11, 0x01, 0x11, 0x01, 0x11, 0x00};
  assert_int_equal(lmz_bin_decode(a, three, sizeof three, &l, &out, NULL), 0);
  l.max_depth = 2;
  dec_fail(a, three, sizeof three, &l, LMZ_ETOODEEP, 6);
  lmz_codec_limits_default(&l);
  /* nodes: an array of 10 numbers is 11 values */
  uint8_t ten[14] = {0xB7, 0x01, 0x11, 10};
  memset(ten + 4, 0x41, 10);
  l.max_nodes = 11;
  assert_int_equal(lmz_bin_decode(a, ten, sizeof ten, &l, &out, NULL), 0);
  l.max_nodes = 10;
  dec_fail(a, ten, sizeof ten, &l, LMZ_ETOOBIG, 13);
  lmz_codec_limits_default(&l);
  /* input size */
  l.max_input = 13;
  dec_fail(a, ten, sizeof ten, &l, LMZ_ETOOBIG, 13);
  lmz_codec_limits_default(&l);
  /* memory: a 5000-byte string under a 4096-byte budget */
  uint8_t *big = calloc(1, 5005);
  big[0] = 0xB7, big[1] = 0x01, big[2] = 0x08, big[3] = 0x88, big[4] = 0x27;
  l.max_memory = 4096;
  lmz_arena_set_limit(a, 0);
  dec_fail(a, big, 5005, &l, LMZ_ETOOBIG, 2);
  assert_int_equal(lmz__arena_limit(a), 0); /* restored */
  l.max_memory = 8192;
  assert_int_equal(lmz_bin_decode(a, big, 5005, &l, &out, NULL), 0);
  size_t slen;
  assert_non_null(lmz_get_str(out, &slen));
  assert_int_equal(slen, 5000);
  /* the caller's own tighter limit gives ENOMEM and is restored */
  lmz_arena_set_limit(a, lmz_arena_used(a) + 1000);
  size_t lim = lmz__arena_limit(a);
  dec_fail(a, big, 5005, NULL, LMZ_ENOMEM, 2);
  assert_int_equal(lmz__arena_limit(a), lim);
  assert_int_equal(lmz_bin_decode(a, BYTES(0xB7, 0x01, 0x41), NULL, &out, NULL), 0);
  assert_int_equal(lmz__arena_limit(a), lim);
  lmz_arena_set_limit(a, 0);
  free(big);
}

/* The default memory budget (64 x input + 1 MiB) admits every graph our
 * encoder produces, even the densest: many tiny distinct values. */
static void default_memory_budget_fits_dense_input(void **state) {
  lmz_arena *a = A;
  lmz_value *arr = lmz_array(a, 0);
  for (int i = 0; i < 300000; i++) {
    switch (i % 4) {
    case 0:
      lmz_array_push(arr, lmz_string(a, "x", 1));
      break;
    case 1:
      lmz_array_push(arr, lmz_number(a, -(i % 60) - 1));
      break;
    case 2:
      lmz_array_push(arr, lmz_object(a));
      break;
    default:
      lmz_array_push(arr, lmz_array(a, 0));
    }
  }
  lmz_arena *dst = lmz_arena_new();
  lmz_value *w = round_trip(dst, arr);
  assert_true(lmz_value_equal(arr, w));
  lmz_arena_free(dst);
}

/* ---- fuzz seeds ------------------------------------------------------------------------- */

static void seeds_decode(void **state) {
  const char *src = getenv("LMZ_SOURCE_DIR");
  if (!src)
    src = ".";
  char dir[1024], path[1100];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/corpus/bin", src);
  struct gen_opts o;
  gen_opts_default(&o);
  o.max_depth = 3;
  o.max_breadth = 4;
  if (getenv("LMZ_WRITE_CORPUS")) {
    mkdir(dir, 0755);
    for (int i = 0; i < 12; i++) {
      uint64_t seed = 100 + (uint64_t)i;
      lmz_value *v = i == 0 ? every_type(A) : gen_value(A, &seed, &o);
      size_t n;
      uint8_t *p = enc(v, &n);
      while (n < 40 || n > 2000) { /* seeds worth mutating, kept small */
        free(p);
        p = enc(gen_value(A, &seed, &o), &n);
      }
      snprintf(path, sizeof path, "%s/seed-%02d.bin", dir, i);
      FILE *f = fopen(path, "wb");
      assert_non_null(f);
      assert_int_equal(fwrite(p, 1, n, f), n);
      fclose(f);
      free(p);
    }
  }
  int found = 0;
  for (int i = 0; i < 12; i++) {
    snprintf(path, sizeof path, "%s/seed-%02d.bin", dir, i);
    size_t n;
    char *p = tl_read_file(path, &n);
    if (!p)
      continue;
    lmz_value *v = dec_ok(A, p, n);
    assert_true(lmz_value_equal(v, round_trip(A, v)));
    free(p);
    found++;
  }
  assert_int_equal(found, 12);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(golden_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(every_type_round_trips, setup, teardown),
      cmocka_unit_test(random_graphs_round_trip),
      cmocka_unit_test_setup_teardown(sharing_is_compact, setup, teardown),
      cmocka_unit_test_setup_teardown(encode_appends_and_rejects_bad_graphs, setup, teardown),
      cmocka_unit_test_setup_teardown(encoder_depth_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(header_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(bad_tags_and_fields, setup, teardown),
      cmocka_unit_test_setup_teardown(back_references, setup, teardown),
      cmocka_unit_test_setup_teardown(views_and_boxed, setup, teardown),
      cmocka_unit_test_setup_teardown(duplicates_are_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(counts_are_bounded_by_input, setup, teardown),
      cmocka_unit_test_setup_teardown(depth_bomb, setup, teardown),
      cmocka_unit_test_setup_teardown(truncated_prefixes_fail, setup, teardown),
      cmocka_unit_test_setup_teardown(limits_are_enforced, setup, teardown),
      cmocka_unit_test_setup_teardown(default_memory_budget_fits_dense_input, setup, teardown),
      cmocka_unit_test_setup_teardown(seeds_decode, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
