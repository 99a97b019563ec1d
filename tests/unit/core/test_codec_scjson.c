/* tests/unit/core/test_codec_scjson.c - SC-JSON codec: golden vectors, every
 * type both ways, aliases and cycles, malformed input, limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/testlib.h"

#include "core/codec.h"
#include "core/json.h"
#include "core/value_int.h"

/* ---- helpers -------------------------------------------------------------- */

/* Encodes v; returns a malloc'd NUL-terminated text (test fails on error). */
static char *enc(const lmz_value *v) {
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  int rc = lmz_scjson_encode(v, &b, &err);
  if (rc != 0)
    fail_msg("encode failed: %d %s", rc, err.msg);
  lmz_buf_putc(&b, 0);
  size_t n;
  return (char *)lmz_buf_detach(&b, &n);
}

static lmz_value *dec(lmz_arena *a, const char *text) {
  lmz_value *v = NULL;
  struct lmz_codec_error err;
  int rc = lmz_scjson_decode(a, text, strlen(text), NULL, &v, &err);
  if (rc != 0)
    fail_msg("decode of %s failed: %d at %zu: %s", text, rc, err.offset,
             err.msg);
  return v;
}

/* decode(text) then encode must give `expect`. */
static void assert_reencodes(const char *text, const char *expect) {
  lmz_arena *a = lmz_arena_new();
  char *out = enc(dec(a, text));
  if (strcmp(out, expect) != 0)
    fail_msg("\n input:  %s\n got:    %s\n expect: %s", text, out, expect);
  free(out);
  lmz_arena_free(a);
}

static void assert_encodes(const lmz_value *v, const char *expect) {
  char *out = enc(v);
  if (strcmp(out, expect) != 0)
    fail_msg("\n got:    %s\n expect: %s", out, expect);
  free(out);
}

static void assert_decode_err(const char *text, int code, long offset,
                              const char *msg_part) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = (lmz_value *)0x1;
  struct lmz_codec_error err;
  int rc = lmz_scjson_decode(a, text, strlen(text), NULL, &v, &err);
  if (rc != code)
    fail_msg("%s: expected %s, got %d (%s)", text, lmz_err_name(code), rc,
             err.msg);
  assert_int_equal(err.code, code);
  assert_ptr_equal(v, (lmz_value *)0x1); /* untouched on error */
  if (offset >= 0 && err.offset != (size_t)offset)
    fail_msg("%s: offset %zu, expected %ld (%s)", text, err.offset, offset,
             err.msg);
  if (msg_part && !strstr(err.msg, msg_part))
    fail_msg("%s: message \"%s\" lacks \"%s\"", text, err.msg, msg_part);
  lmz_arena_free(a);
}

static char *vectors_text(size_t *len) {
  const char *root = getenv("LMZ_SOURCE_DIR");
  char path[1024];
  if (root) {
    snprintf(path, sizeof(path), "%s/tests/vectors/scjson.json", root);
  } else { /* __FILE__ is <root>/tests/unit/core/test_codec_scjson.c */
    snprintf(path, sizeof(path), "%s", __FILE__);
    char *p = strstr(path, "tests/unit/core/");
    assert_non_null(p);
    snprintf(p, sizeof(path) - (size_t)(p - path), "tests/vectors/scjson.json");
  }
  char *text = tl_read_file(path, len);
  if (!text)
    fail_msg("cannot read %s", path);
  return text;
}

static const lmz_json *vectors_list(lmz_arena *a, const char *key) {
  size_t len;
  char *text = vectors_text(&len);
  lmz_json *doc;
  struct lmz_codec_error err;
  assert_int_equal(lmz_json_parse(a, text, len, NULL, &doc, &err), 0);
  free(text);
  const lmz_json *list = lmz_json_get(doc, key);
  assert_non_null(list);
  assert_int_equal(list->type, LMZ_JSON_ARRAY);
  return list;
}

/* ---- golden vectors ------------------------------------------------------- */

static void test_vectors(void **state) {
  (void)state;
  lmz_arena *va = lmz_arena_new();
  const lmz_json *list = vectors_list(va, "vectors");
  assert_true(list->n >= 80);
  for (uint32_t i = 0; i < list->n; i++) {
    const lmz_json *name = lmz_json_get(list->u.items[i], "name");
    const lmz_json *sc = lmz_json_get(list->u.items[i], "scjson");
    assert_non_null(name);
    assert_non_null(sc);
    const char *text = sc->u.str.p;
    lmz_arena *a = lmz_arena_new();
    lmz_value *v = NULL;
    struct lmz_codec_error err;
    int rc = lmz_scjson_decode(a, text, sc->u.str.len, NULL, &v, &err);
    if (rc)
      fail_msg("vector %s: decode %d at %zu: %s", name->u.str.p, rc,
               err.offset, err.msg);
    char *out = enc(v);
    if (strcmp(out, text) != 0)
      fail_msg("vector %s:\n got:    %s\n expect: %s", name->u.str.p, out,
               text);
    /* through the binary codec and back */
    lmz_buf bin = LMZ_BUF_INIT;
    assert_int_equal(lmz_bin_encode(v, &bin, NULL), 0);
    lmz_value *w = NULL;
    rc = lmz_bin_decode(a, bin.data, bin.len, NULL, &w, &err);
    if (rc)
      fail_msg("vector %s: bin decode %d: %s", name->u.str.p, rc, err.msg);
    if (!lmz_value_equal(v, w))
      fail_msg("vector %s: binary round trip differs", name->u.str.p);
    char *out2 = enc(w);
    if (strcmp(out2, text) != 0)
      fail_msg("vector %s via binary:\n got:    %s\n expect: %s",
               name->u.str.p, out2, text);
    free(out);
    free(out2);
    lmz_buf_free(&bin);
    lmz_arena_free(a);
  }
  lmz_arena_free(va);
}

static void test_decode_only_vectors(void **state) {
  (void)state;
  lmz_arena *va = lmz_arena_new();
  const lmz_json *list = vectors_list(va, "decode_only");
  assert_true(list->n >= 10);
  for (uint32_t i = 0; i < list->n; i++) {
    const lmz_json *sc = lmz_json_get(list->u.items[i], "scjson");
    const lmz_json *ex = lmz_json_get(list->u.items[i], "expect");
    assert_non_null(sc);
    assert_non_null(ex);
    assert_reencodes(sc->u.str.p, ex->u.str.p);
    /* the expected text is itself stable */
    assert_reencodes(ex->u.str.p, ex->u.str.p);
  }
  lmz_arena_free(va);
}

/* ---- encoding of values built through the API ----------------------------- */

#define J(x) "{\"json\":" x ",\"meta\":{}}"

static void test_encode_primitives(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  assert_encodes(lmz_undefined(), J("{\"$type\":\"undefined\"}"));
  assert_encodes(lmz_null(), J("null"));
  assert_encodes(lmz_bool(true), J("true"));
  assert_encodes(lmz_number(a, 42), J("42"));
  assert_encodes(lmz_number(a, -0.0),
                 J("{\"$type\":\"number-special\",\"value\":\"-0\"}"));
  assert_encodes(lmz_number(a, NAN),
                 J("{\"$type\":\"number-special\",\"value\":\"NaN\"}"));
  assert_encodes(lmz_number(a, -INFINITY),
                 J("{\"$type\":\"number-special\",\"value\":\"-Infinity\"}"));
  assert_encodes(lmz_number(a, 1e21), J("1e+21"));
  assert_encodes(lmz_number(a, 9007199254740993.0), J("9007199254740992"));
  assert_encodes(lmz_number(a, -1.25e-7), J("-1.25e-7"));
  assert_encodes(lmz_bigint(a, "-00123", 6),
                 J("{\"$type\":\"bigint\",\"value\":\"-123\"}"));
  assert_encodes(lmz_cstring(a, "a\"\n\x01"), J("\"a\\\"\\n\\u0001\""));
  lmz_arena_free(a);
}

static void test_encode_dates(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  static const struct {
    double ms;
    const char *iso;
  } cases[] = {
      {0, "1970-01-01T00:00:00.000Z"},
      {1705314600000.0, "2024-01-15T10:30:00.000Z"},
      {-1, "1969-12-31T23:59:59.999Z"},
      {951782400000.0, "2000-02-29T00:00:00.000Z"},
      {-62167219200000.0, "0000-01-01T00:00:00.000Z"},
      {-62167219200001.0, "-000001-12-31T23:59:59.999Z"},
      {253402300800000.0, "+010000-01-01T00:00:00.000Z"},
      {8.64e15, "+275760-09-13T00:00:00.000Z"},
      {-8.64e15, "-271821-04-20T00:00:00.000Z"},
      {8.64e15 + 1, "Invalid Date"},
      {NAN, "Invalid Date"},
      {1.9, "1970-01-01T00:00:00.001Z"}, /* TimeClip truncates */
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    char expect[128];
    snprintf(expect, sizeof(expect),
             J("{\"$type\":\"date\",\"iso\":\"%s\"}"), cases[i].iso);
    assert_encodes(lmz_date(a, cases[i].ms), expect);
  }
  /* and back */
  for (size_t i = 0; i < 9; i++) {
    char text[128];
    snprintf(text, sizeof(text), J("{\"$type\":\"date\",\"iso\":\"%s\"}"),
             cases[i].iso);
    lmz_value *v = dec(a, text);
    assert_int_equal(lmz_typeof(v), LMZ_T_DATE);
    assert_true(lmz_get_number(v) == cases[i].ms);
  }
  assert_true(isnan(lmz_get_number(
      dec(a, J("{\"$type\":\"date\",\"iso\":\"Invalid Date\"}")))));
  assert_true(lmz_get_number(dec(
                  a, J("{\"$type\":\"date\",\"iso\":\"2024-01-15T12:30+02:00\"}"))) ==
              1705314600000.0);
  lmz_arena_free(a);
}

static void test_encode_objects_and_keys(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *o = lmz_object(a);
  lmz_object_setc(o, "$type", lmz_cstring(a, "x"));
  lmz_object_setc(o, "$ref", lmz_number(a, 1));
  lmz_object_setc(o, "$", lmz_null());
  lmz_object_setc(o, "a\"$", lmz_undefined());
  lmz_object_setc(o, "", lmz_number(a, 2));
  assert_encodes(o, J("{\"$$type\":\"x\",\"$$ref\":1,\"$$\":null,\"a\\\"$\":"
                      "{\"$type\":\"undefined\"},\"\":2}"));
  char *text = enc(o);
  lmz_value *back = dec(a, text);
  assert_true(lmz_value_equal(o, back));
  assert_non_null(lmz_object_getc(back, "$type"));
  assert_non_null(lmz_object_getc(back, "$"));
  free(text);

  lmz_value *arr = lmz_array(a, 0);
  lmz_array_set(arr, 3, lmz_number(a, 1)); /* 3 holes then 1 */
  lmz_array_push(arr, lmz_hole());
  assert_encodes(arr, J("[{\"$type\":\"hole\"},{\"$type\":\"hole\"},{\"$type\":"
                        "\"hole\"},1,{\"$type\":\"hole\"}]"));
  lmz_arena_free(a);
}

static void test_encode_web_types(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *h = lmz_headers(a);
  lmz_headers_append(h, "Content-Type", 12, "Text/Plain", 10);
  lmz_headers_append(h, "X-A", 3, "1", 1);
  assert_encodes(h, J("{\"$type\":\"headers\",\"entries\":[[\"content-type\","
                      "\"Text/Plain\"],[\"x-a\",\"1\"]]}"));
  assert_encodes(lmz_regexp(a, "a/b", 3, "gimsuy", 6),
                 J("{\"$type\":\"regexp\",\"source\":\"a/b\",\"flags\":\"gimsuy\"}"));
  assert_encodes(lmz_url(a, "https://x.com/", 14),
                 J("{\"$type\":\"url\",\"href\":\"https://x.com/\"}"));
  assert_encodes(lmz_boxed(a, lmz_bool(false)),
                 J("{\"$type\":\"boolean-object\",\"value\":false}"));
  assert_encodes(lmz_boxed(a, lmz_number(a, INFINITY)),
                 J("{\"$type\":\"number-object\",\"value\":\"Infinity\"}"));
  assert_encodes(lmz_boxed(a, lmz_number(a, 2.5)),
                 J("{\"$type\":\"number-object\",\"value\":2.5}"));
  assert_encodes(lmz_boxed(a, lmz_bigint(a, "-5", 2)),
                 J("{\"$type\":\"bigint-object\",\"value\":\"-5\"}"));
  lmz_arena_free(a);
}

static void test_encode_views(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  uint8_t bytes[16];
  for (int i = 0; i < 16; i++)
    bytes[i] = (uint8_t)(i + 1);
  lmz_value *ab = lmz_arraybuffer(a, bytes, 16);
  /* a sub-view carries byteOffset + buffer (inline: only reached once) */
  lmz_value *v = lmz_view(a, LMZ_VIEW_UINT16, ab, 2, 2);
  assert_encodes(v, J("{\"$type\":\"arraybuffer\",\"subtype\":\"Uint16Array\","
                      "\"data\":[1027,1541],\"byteOffset\":2,\"buffer\":{\"$type\":"
                      "\"arraybuffer\",\"subtype\":\"ArrayBuffer\",\"data\":[1,2,3,"
                      "4,5,6,7,8,9,10,11,12,13,14,15,16]}}"));
  char *text = enc(v);
  lmz_value *back = dec(a, text);
  assert_true(lmz_value_equal(v, back));
  assert_int_equal(lmz_view_byte_offset(back), 2);
  assert_int_equal(lmz_len(lmz_view_buffer(back)), 16);
  free(text);
  /* a whole-buffer view does not */
  lmz_value *f = lmz_arraybuffer(a, NULL, 8);
  double one = 1;
  memcpy(lmz_arraybuffer_data(f), &one, 8);
  assert_encodes(lmz_view(a, LMZ_VIEW_FLOAT64, f, 0, 1),
                 J("{\"$type\":\"arraybuffer\",\"subtype\":\"Float64Array\","
                   "\"data\":[1]}"));
  /* Int8 and BigInt64 elements */
  uint8_t m[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  lmz_value *mb = lmz_arraybuffer(a, m, 8);
  assert_encodes(lmz_view(a, LMZ_VIEW_BIGINT64, mb, 0, 1),
                 J("{\"$type\":\"arraybuffer\",\"subtype\":\"BigInt64Array\","
                   "\"data\":[\"-1\"]}"));
  lmz_value *mb2 = lmz_arraybuffer(a, m, 2);
  assert_encodes(lmz_view(a, LMZ_VIEW_INT8, mb2, 0, 2),
                 J("{\"$type\":\"arraybuffer\",\"subtype\":\"Int8Array\","
                   "\"data\":[-1,-1]}"));
  lmz_arena_free(a);
}

/* ---- decoding: structure and identity ------------------------------------- */

static void test_decode_identity(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = dec(a, "{\"json\":{\"a\":{\"$ref\":0},\"b\":{\"$ref\":0}},"
                        "\"meta\":{\"aliases\":{\"0\":{\"n\":1}}}}");
  assert_ptr_equal(lmz_object_getc(v, "a"), lmz_object_getc(v, "b"));
  v = dec(a, "{\"json\":{\"$ref\":0},\"meta\":{\"aliases\":{\"0\":{\"name\":"
             "\"c\",\"self\":{\"$ref\":0}}}}}");
  assert_ptr_equal(lmz_object_getc(v, "self"), v);
  /* aliases referencing each other in a cycle, bodies in any order */
  v = dec(a, "{\"json\":{\"$ref\":1},\"meta\":{\"aliases\":{\"1\":{\"next\":"
             "{\"$ref\":0}},\"0\":{\"next\":{\"$ref\":1}}}}}");
  lmz_value *n = lmz_object_getc(v, "next");
  assert_ptr_equal(lmz_object_getc(n, "next"), v);
  /* map key identity */
  v = dec(a, "{\"json\":{\"m\":{\"$type\":\"map\",\"entries\":[[{\"$ref\":0},"
             "\"v\"]]},\"k\":{\"$ref\":0}},\"meta\":{\"aliases\":{\"0\":{}}}}");
  lmz_value *k = lmz_object_getc(v, "k");
  assert_ptr_equal(lmz_map_key(lmz_object_getc(v, "m"), 0), k);
  assert_non_null(lmz_map_get(lmz_object_getc(v, "m"), k));
  /* error cycle through cause */
  v = dec(a, "{\"json\":{\"$ref\":0},\"meta\":{\"aliases\":{\"0\":{\"$type\":"
             "\"error\",\"name\":\"E\",\"message\":\"m\",\"cause\":{\"$type\":"
             "\"error\",\"name\":\"Error\",\"message\":\"x\",\"cause\":{\"$ref\""
             ":0}}}}}}");
  assert_ptr_equal(lmz_error_cause(lmz_error_cause(v)), v);
  assert_string_equal(lmz_error_name(v), "E");
  assert_null(lmz_error_stack(v));
  /* shared buffer between an alias view and a json view */
  v = dec(a, "{\"json\":[{\"$ref\":1},{\"$type\":\"arraybuffer\",\"subtype\":"
             "\"Uint8Array\",\"data\":[2],\"byteOffset\":1,\"buffer\":{\"$ref\":0}}"
             "],\"meta\":{\"aliases\":{\"1\":{\"$type\":\"arraybuffer\",\"subtype\""
             ":\"DataView\",\"data\":[],\"byteOffset\":0,\"byteLength\":2,"
             "\"buffer\":{\"$ref\":0}},\"0\":{\"$type\":\"arraybuffer\",\"subtype\""
             ":\"ArrayBuffer\",\"data\":[1,2,3]}}}}");
  lmz_value *dv = lmz_array_get(v, 0), *u8 = lmz_array_get(v, 1);
  assert_int_equal(lmz_view_get_kind(dv), LMZ_VIEW_DATAVIEW);
  assert_ptr_equal(lmz_view_buffer(dv), lmz_view_buffer(u8));
  assert_int_equal(lmz_view_byte_length(dv), 2);
  assert_int_equal(lmz_arraybuffer_data(lmz_view_buffer(u8))[1], 2);
  lmz_arena_free(a);
}

static void test_decode_types(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = dec(a, J("{\"$type\":\"arraybuffer\",\"subtype\":\"DataView\","
                          "\"data\":[1,2,3,4],\"byteOffset\":1,\"byteLength\":2}"));
  assert_int_equal(lmz_view_get_kind(v), LMZ_VIEW_DATAVIEW);
  assert_int_equal(lmz_view_byte_offset(v), 1);
  assert_int_equal(lmz_view_byte_length(v), 2);
  assert_int_equal(lmz_len(lmz_view_buffer(v)), 4);
  v = dec(a, J("{\"$type\":\"error\",\"name\":\"TypeError\",\"message\":\"bad\","
               "\"stack\":\"S\",\"code\":\"E1\",\"$$weird\":1}"));
  assert_string_equal(lmz_error_name(v), "TypeError");
  assert_string_equal(lmz_error_message(v), "bad");
  assert_string_equal(lmz_error_stack(v), "S");
  assert_non_null(lmz_error_prop(v, "$weird"));
  assert_non_null(lmz_error_prop(v, "code"));
  assert_null(lmz_error_cause(v));
  v = dec(a, J("{\"$type\":\"error\"}")); /* lenient defaults */
  assert_string_equal(lmz_error_name(v), "Error");
  assert_string_equal(lmz_error_message(v), "");
  v = dec(a, J("{\"$type\":\"number-object\",\"value\":\"-0\"}"));
  assert_true(signbit(lmz_get_number(v)));
  v = dec(a, J("{\"$type\":\"function\",\"name\":\"f\"}"));
  assert_int_equal(lmz_typeof(v), LMZ_T_OBJECT);
  assert_int_equal(lmz_len(v), 1);
  v = dec(a, J("{\"$type\":\"arraybuffer\",\"subtype\":\"Int16Array\",\"data\":"
               "[65535,\"0x10\",\" 12 \",\"\",true,-32769,1e10]}"));
  int16_t e[7];
  memcpy(e, lmz_arraybuffer_data(lmz_view_buffer(v)), sizeof(e));
  assert_int_equal(e[0], -1);
  assert_int_equal(e[1], 16);
  assert_int_equal(e[2], 12);
  assert_int_equal(e[3], 0);
  assert_int_equal(e[4], 1);
  assert_int_equal(e[5], 32767);
  assert_int_equal(e[6], (int16_t)(uint16_t)(10000000000ULL % 65536));
  v = dec(a, J("{\"$type\":\"arraybuffer\",\"subtype\":\"BigUint64Array\","
               "\"data\":[\"-1\",\"18446744073709551617\"]}"));
  uint64_t u[2];
  memcpy(u, lmz_arraybuffer_data(lmz_view_buffer(v)), sizeof(u));
  assert_true(u[0] == UINT64_MAX);
  assert_true(u[1] == 1);
  v = dec(a, J("{\"$type\":\"arraybuffer\",\"subtype\":\"Float32Array\","
               "\"data\":[\"x\",1e300,\"-0\"]}"));
  float f[3];
  memcpy(f, lmz_arraybuffer_data(lmz_view_buffer(v)), sizeof(f));
  assert_true(isnan(f[0]));
  assert_true(isinf(f[1]));
  assert_true(f[2] == 0 && signbit(f[2]));
  lmz_arena_free(a);
}

static void test_decode_dom(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  const char *frame = "{\"type\":\"call\",\"payload\":{\"json\":[{\"$ref\":0},"
                      "{\"$ref\":0}],\"meta\":{\"aliases\":{\"0\":{\"$type\":"
                      "\"set\",\"values\":[1]}}}}}";
  lmz_json *doc;
  struct lmz_codec_error err;
  assert_int_equal(lmz_json_parse(a, frame, strlen(frame), NULL, &doc, &err), 0);
  lmz_value *v = NULL;
  assert_int_equal(
      lmz_scjson_decode_dom(a, lmz_json_get(doc, "payload"), NULL, &v, &err), 0);
  assert_int_equal(lmz_typeof(v), LMZ_T_ARRAY);
  assert_ptr_equal(lmz_array_get(v, 0), lmz_array_get(v, 1));
  assert_true(lmz_set_has(lmz_array_get(v, 0), lmz_number(a, 1)));
  /* errors carry the DOM's offsets (those of the whole frame) */
  const char *bad = "{\"payload\":{\"json\":{\"$ref\":3}}}";
  assert_int_equal(lmz_json_parse(a, bad, strlen(bad), NULL, &doc, &err), 0);
  assert_int_equal(
      lmz_scjson_decode_dom(a, lmz_json_get(doc, "payload"), NULL, &v, &err),
      LMZ_EBADMSG);
  assert_int_equal(err.offset, 19);
  lmz_arena_free(a);
}

/* Text that is not UTF-8 decodes as a browser would see it: each bad byte
 * becomes U+FFFD; raw surrogate halves of one pair join into one code point.
 * Re-encoding is then a fixed point. */
static void test_decode_bad_utf8(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  static const struct {
    const char *in, *out;
  } cases[] = {
      {J("\"a\xff" "b\""), J("\"a\xef\xbf\xbd" "b\"")},
      {J("\"\xc3\""), J("\"\xef\xbf\xbd\"")},            /* truncated */
      {J("\"\xc0\xaf\""), J("\"\xef\xbf\xbd\xef\xbf\xbd\"")}, /* overlong */
      /* a truncated sequence is ONE U+FFFD (maximal subpart, as TextDecoder
       * and lmz's own writer count), not one per byte */
      {J("\"\xe2\x82" "a\""), J("\"\xef\xbf\xbd" "a\"")},
      {J("\"\xf0\x9f\x98" "b\xf0\x9f\""), J("\"\xef\xbf\xbd" "b\xef\xbf\xbd\"")},
      {J("\"\xe0\x80\x80\""),                          /* E0 wants A0..BF */
       J("\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"")},
      {J("\"\xf4\x90\x80\x80\""),                          /* > U+10FFFF */
       J("\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"")},
      {J("\"\xed\xa0\x80\xed\xb0\x80\""), J("\"\xf0\x90\x80\x80\"")},
      {J("\"\xed\xa0\x80x\""), J("\"\\ud800x\"")},
      {J("{\"k\xfe\":1}"), J("{\"k\xef\xbf\xbd\":1}")},
      {J("{\"$type\":\"headers\",\"entries\":[[\"A\xff\",\"\xff\"]]}"),
       J("{\"$type\":\"headers\",\"entries\":[[\"a\xef\xbf\xbd\",\"\xef\xbf\xbd\"]]}")},
      {J("{\"$type\":\"error\",\"name\":\"\xff\",\"message\":\"\",\"\xff\":1}"),
       J("{\"$type\":\"error\",\"name\":\"\xef\xbf\xbd\",\"message\":\"\","
         "\"\xef\xbf\xbd\":1}")},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    assert_reencodes(cases[i].in, cases[i].out);
    assert_reencodes(cases[i].out, cases[i].out);
  }
  lmz_arena_free(a);
}

/* ---- malformed input ------------------------------------------------------ */

static void test_malformed(void **state) {
  (void)state;
  /* `at`: the expected error offset is where this substring first occurs in
   * the text ("" = offset 0; NULL = not checked) */
  static const struct {
    const char *text;
    int code;
    const char *at;
    const char *msg;
  } cases[] = {
      {"", LMZ_ESYNTAX, "", NULL},
      {"{\"json\":1,}", LMZ_ESYNTAX, "}", NULL},
      {"{\"json\":1}x", LMZ_ESYNTAX, "x", NULL},
      {"[1]", LMZ_EBADMSG, "", "must be an object"},
      {"{\"jsn\":1}", LMZ_EBADMSG, "", "\"json\""},
      {"{\"json\":1,\"meta\":[]}", LMZ_EBADMSG, "[", "meta"},
      {"{\"json\":1,\"meta\":{\"aliases\":[]}}", LMZ_EBADMSG, "[", "aliases"},
      {"{\"json\":{\"$ref\":0}}", LMZ_EBADMSG, "{\"$ref", "names no alias"},
      {"{\"json\":{\"$ref\":-1}}", LMZ_EBADMSG, "-1", "non-negative"},
      {"{\"json\":{\"$ref\":1.5}}", LMZ_EBADMSG, "1.5", "non-negative"},
      {"{\"json\":{\"$ref\":null}}", LMZ_EBADMSG, "null", "non-negative"},
      {"{\"json\":1,\"meta\":{\"aliases\":{\"x\":true}}}", LMZ_EBADMSG, "true",
       "alias id"},
      {"{\"json\":1,\"meta\":{\"aliases\":{\"01\":true}}}", LMZ_EBADMSG, "true",
       "alias id"},
      {"{\"json\":1,\"meta\":{\"aliases\":{\"4294967296\":true}}}", LMZ_EBADMSG,
       "true", "alias id"},
      {"{\"json\":1,\"meta\":{\"aliases\":{\"0\":{\"$ref\":0}}}}", LMZ_EBADMSG,
       "{\"$ref", "cannot be a $ref"},
      {"{\"json\":1,\"meta\":{\"aliases\":{\"0\":{\"$ref\":1},\"1\":{\"$ref\":0}}}}",
       LMZ_EBADMSG, "{\"$ref", "cannot be a $ref"},
      {"{\"json\":{\"$type\":\"map\",\"entries\":[[1]]}}", LMZ_EBADMSG, "[1]",
       "map entry must be a [key, value] array"},
      {"{\"json\":{\"$type\":\"map\",\"entries\":[[1,2,3]]}}", LMZ_EBADMSG,
       "[1,", "map entry must be a [key, value] array"},
      {"{\"json\":{\"$type\":\"map\",\"entries\":[7]}}", LMZ_EBADMSG, "7",
       "map entry"},
      {"{\"json\":{\"$type\":\"map\",\"entries\":{}}}", LMZ_EBADMSG, "{}",
       "entries must be an array"},
      {"{\"json\":{\"$type\":\"set\",\"values\":1}}", LMZ_EBADMSG, "1}",
       "values"},
      {"{\"json\":{\"$type\":\"headers\",\"entries\":[[\"a\",1]]}}", LMZ_EBADMSG,
       "[\"a\"", "headers entry"},
      {"{\"json\":{\"$type\":\"bigint\",\"value\":\"1x\"}}", LMZ_EBADMSG,
       "\"1x", "decimal integer"},
      {"{\"json\":{\"$type\":\"bigint\",\"value\":10}}", LMZ_EBADMSG, "10",
       "decimal integer"},
      {"{\"json\":{\"$type\":\"bigint\"}}", LMZ_EBADMSG, "{\"$type",
       "decimal integer"},
      {"{\"json\":{\"$type\":\"number-special\",\"value\":\"nan\"}}", LMZ_EBADMSG,
       "{\"$type", "number-special"},
      {"{\"json\":{\"$type\":\"url\",\"href\":1}}", LMZ_EBADMSG, "1}", "href"},
      {"{\"json\":{\"$type\":\"regexp\",\"source\":[]}}", LMZ_EBADMSG, "[]",
       "source"},
      {"{\"json\":{\"$type\":\"error\",\"name\":5}}", LMZ_EBADMSG, "5", "name"},
      {"{\"json\":{\"$type\":\"error\",\"stack\":{}}}", LMZ_EBADMSG, "{}",
       "stack"},
      {"{\"json\":{\"$type\":\"date\",\"iso\":[]}}", LMZ_EBADMSG, "[]", "iso"},
      {"{\"json\":{\"$type\":\"hole\"}}", LMZ_EBADMSG, "{\"$type",
       "hole outside"},
      {"{\"json\":{\"a\":{\"$type\":\"hole\"}}}", LMZ_EBADMSG, "{\"$type",
       "hole"},
      {"{\"json\":{\"$type\":\"boolean-object\",\"value\":1}}", LMZ_EBADMSG,
       "1}", "boolean"},
      {"{\"json\":{\"$type\":\"string-object\"}}", LMZ_EBADMSG, "{\"$type",
       "string"},
      {"{\"json\":{\"$type\":\"number-object\",\"value\":\"1\"}}", LMZ_EBADMSG,
       "\"1\"", "number"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"Float64Array\","
       "\"data\":1000000}}",
       LMZ_EBADMSG, "1000000", "data is not an array"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"ArrayBuffer\"}}",
       LMZ_EBADMSG, "{\"$type", "data is not an array"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"Uint8Array\","
       "\"data\":[[1]]}}",
       LMZ_EBADMSG, "[1]", "must hold numbers"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"BigInt64Array\","
       "\"data\":[1]}}",
       LMZ_EBADMSG, "1]", "integer strings"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"BigInt64Array\","
       "\"data\":[\"1.5\"]}}",
       LMZ_EBADMSG, "\"1.5", "integer strings"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"DataView\","
       "\"data\":[1,2],\"byteOffset\":1,\"byteLength\":2}}",
       LMZ_EBADMSG, "{\"$type", "range outside its buffer"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"DataView\","
       "\"data\":[1,2],\"byteOffset\":-1}}",
       LMZ_EBADMSG, "-1", "byteOffset"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"DataView\","
       "\"data\":[1,2],\"byteLength\":1e300}}",
       LMZ_EBADMSG, "1e300", "byteLength"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"Uint16Array\","
       "\"data\":[1],\"byteOffset\":1,\"buffer\":{\"$type\":\"arraybuffer\","
       "\"subtype\":\"ArrayBuffer\",\"data\":[1,2,3]}}}",
       LMZ_EBADMSG, "{\"$type", "range outside its buffer"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"Uint8Array\","
       "\"data\":[1,2,3],\"byteOffset\":0,\"buffer\":{\"$type\":\"arraybuffer\","
       "\"subtype\":\"ArrayBuffer\",\"data\":[1,2]}}}",
       LMZ_EBADMSG, "{\"$type", "range outside its buffer"},
      {"{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":\"Uint8Array\","
       "\"data\":[1],\"buffer\":{\"a\":1}}}",
       LMZ_EBADMSG, "{\"a\"", "must be an ArrayBuffer"},
      /* a view alias whose buffer is a view alias (built in the same sub-pass,
       * so never available): no loop, a clear error */
      {"{\"json\":1,\"meta\":{\"aliases\":{\"0\":{\"$type\":\"arraybuffer\","
       "\"subtype\":\"Uint8Array\",\"data\":[],\"buffer\":{\"$ref\":0}}}}}",
       LMZ_EBADMSG, "{\"$ref", "used before its alias is built"},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    long off = -1;
    if (cases[i].at) {
      const char *p = strstr(cases[i].text, cases[i].at);
      assert_non_null(p);
      off = p - cases[i].text;
    }
    assert_decode_err(cases[i].text, cases[i].code, off, cases[i].msg);
  }
}

/* ---- limits --------------------------------------------------------------- */

static char *nested_arrays(int depth) {
  size_t n = 32 + 2 * (size_t)depth;
  char *s = malloc(n + 1), *p = s;
  p += sprintf(p, "{\"json\":");
  for (int i = 0; i < depth; i++)
    *p++ = '[';
  for (int i = 0; i < depth; i++)
    *p++ = ']';
  sprintf(p, ",\"meta\":{}}");
  return s;
}

static void test_limits(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  struct lmz_codec_limits lim;
  struct lmz_codec_error err;
  lmz_value *v;
  /* depth: 512 nested arrays decode at the default limit, 513 do not */
  char *ok = nested_arrays(512), *deep = nested_arrays(513);
  assert_int_equal(lmz_scjson_decode(a, ok, strlen(ok), NULL, &v, &err), 0);
  char *re = enc(v);
  assert_string_equal(re, ok);
  free(re);
  assert_int_equal(lmz_scjson_decode(a, deep, strlen(deep), NULL, &v, &err),
                   LMZ_ETOODEEP);
  assert_int_equal(err.offset, 8 + 512);
  free(ok);
  free(deep);
  lmz_codec_limits_default(&lim);
  lim.max_depth = 3;
  const char *t4 = "{\"json\":[[[{}]]]}";
  assert_int_equal(lmz_scjson_decode(a, t4, strlen(t4), &lim, &v, &err),
                   LMZ_ETOODEEP);
  assert_int_equal(err.offset, 11);
  const char *m3 = "{\"json\":[{\"$type\":\"map\",\"entries\":[[1,[]]]}]}";
  assert_int_equal(lmz_scjson_decode(a, m3, strlen(m3), &lim, &v, &err), 0);
  /* input size */
  lmz_codec_limits_default(&lim);
  lim.max_input = 10;
  const char *t = "{\"json\":123}";
  assert_int_equal(lmz_scjson_decode(a, t, strlen(t), &lim, &v, &err),
                   LMZ_ETOOBIG);
  /* node count */
  lmz_codec_limits_default(&lim);
  lim.max_nodes = 4;
  const char *t5 = "{\"json\":[1,2,3,4]}";
  assert_int_equal(lmz_scjson_decode(a, t5, strlen(t5), &lim, &v, &err),
                   LMZ_ETOOBIG);
  assert_int_equal(err.offset, strstr(t5, "4") - t5);
  lim.max_nodes = 5;
  assert_int_equal(lmz_scjson_decode(a, t5, strlen(t5), &lim, &v, &err), 0);
  /* memory: a 100000-element Float64Array needs 800 KB */
  size_t cap = 1 << 20;
  char *big = malloc(cap), *p = big;
  p += sprintf(p, "{\"json\":{\"$type\":\"arraybuffer\",\"subtype\":"
                  "\"Float64Array\",\"data\":[0");
  for (int i = 1; i < 100000; i++)
    p += sprintf(p, ",1");
  p += sprintf(p, "]}}");
  lmz_codec_limits_default(&lim);
  lim.max_memory = 100000;
  size_t used = lmz_arena_used(a);
  assert_int_equal(lmz_scjson_decode(a, big, (size_t)(p - big), &lim, &v, &err),
                   LMZ_ETOOBIG);
  assert_true(lmz_arena_used(a) - used <= 100000);
  assert_non_null(strstr(err.msg, "memory limit"));
  lim.max_memory = 2000000;
  assert_int_equal(lmz_scjson_decode(a, big, (size_t)(p - big), &lim, &v, &err),
                   0);
  assert_int_equal(lmz_len(v), 100000);
  /* memory cap applies to many small nodes too, and the arena's own limit is
   * restored afterwards */
  lmz_arena_set_limit(a, 0);
  lim.max_memory = 4096;
  assert_int_equal(lmz_scjson_decode(a, big, (size_t)(p - big), &lim, &v, &err),
                   LMZ_ETOOBIG);
  const char *many = "{\"json\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                     "\"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\"]}";
  lim.max_memory = 64;
  assert_int_equal(lmz_scjson_decode(a, many, strlen(many), &lim, &v, &err),
                   LMZ_ETOOBIG);
  assert_non_null(lmz_arena_alloc(a, 1 << 20)); /* no leftover cap */
  free(big);
  lmz_arena_free(a);
}

/* ---- encoder: depth, deep aliased graphs ---------------------------------- */

static void test_encode_depth(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *root = lmz_array(a, 1), *cur = root;
  for (int i = 1; i < 513; i++) {
    lmz_value *next = lmz_array(a, 1);
    lmz_array_push(cur, next);
    cur = next;
  }
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  assert_int_equal(lmz_scjson_encode(root, &b, &err), LMZ_ETOODEEP);
  assert_int_equal(err.code, LMZ_ETOODEEP);
  lmz_buf_free(&b);
  assert_int_equal(lmz_scjson_encode(NULL, &b, &err), LMZ_EINVAL);
  lmz_value *e = lmz_error(a, "Error", "m");
  lmz_error_set_prop(e, "stack", 5, lmz_null());
  assert_int_equal(lmz_scjson_encode(e, &b, &err), LMZ_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "custom property"));
  lmz_buf_free(&b);

  /* a 100000-node cyclic chain, every node also listed: all aliases, so the
   * text stays shallow and the reference pass must not recurse */
  lmz_arena_reset(a);
  enum { N = 100000 };
  lmz_value *list = lmz_array(a, N);
  lmz_value *prev = NULL, *first = NULL;
  for (int i = 0; i < N; i++) {
    lmz_value *o = lmz_object(a);
    lmz_object_setc(o, "i", lmz_number(a, i));
    if (prev)
      lmz_object_setc(prev, "next", o);
    else
      first = o;
    lmz_array_push(list, o);
    prev = o;
  }
  lmz_object_setc(prev, "next", first);
  char *text = enc(list);
  assert_non_null(strstr(text, "\"99999\":{\"i\":99999,\"next\":{\"$ref\":0}}"));
  assert_true(strncmp(text, "{\"json\":[{\"$ref\":0},{\"$ref\":1},", 30) == 0);
  lmz_value *back = dec(a, text);
  assert_true(lmz_value_equal(list, back));
  free(text);
  lmz_arena_free(a);
}

/* Encoding the same graph twice gives the same text (marks are per epoch). */
static void test_encode_twice(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  lmz_value *s = lmz_object(a), *o = lmz_object(a);
  lmz_object_setc(o, "a", s);
  lmz_object_setc(o, "b", s);
  lmz_object_setc(s, "self", s);
  char *t1 = enc(o), *t2 = enc(o);
  assert_string_equal(t1, t2);
  assert_string_equal(t1, "{\"json\":{\"a\":{\"$ref\":0},\"b\":{\"$ref\":0}},"
                          "\"meta\":{\"aliases\":{\"0\":{\"self\":{\"$ref\":0}}}}}");
  /* a sub-graph encoded alone: s is then the root and still an alias */
  char *t3 = enc(s);
  assert_string_equal(t3, "{\"json\":{\"$ref\":0},\"meta\":{\"aliases\":{\"0\":"
                          "{\"self\":{\"$ref\":0}}}}}");
  free(t1);
  free(t2);
  free(t3);
  lmz_arena_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_decode_only_vectors),
      cmocka_unit_test(test_encode_primitives),
      cmocka_unit_test(test_encode_dates),
      cmocka_unit_test(test_encode_objects_and_keys),
      cmocka_unit_test(test_encode_web_types),
      cmocka_unit_test(test_encode_views),
      cmocka_unit_test(test_decode_identity),
      cmocka_unit_test(test_decode_types),
      cmocka_unit_test(test_decode_dom),
      cmocka_unit_test(test_decode_bad_utf8),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_limits),
      cmocka_unit_test(test_encode_depth),
      cmocka_unit_test(test_encode_twice),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
