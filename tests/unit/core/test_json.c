/* tests/unit/core/test_json.c - JSON DOM parser and writers (core/json.c).
 *
 * Expected outputs of the writers were produced with Node.js (JSON.stringify
 * and String(number)) and are compared byte for byte. */
#include "lib/testlib.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"

static lmz_arena *arena;

static int setup(void **state) {
  (void)state;
  arena = lmz_arena_new();
  return arena ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  lmz_arena_free(arena);
  arena = NULL;
  return 0;
}

static lmz_json *parse_opts(const char *text, size_t len,
                            const struct lmz_json_opts *o) {
  struct lmz_codec_error err = {0};
  lmz_json *root = NULL;
  int rv = lmz_json_parse(arena, text, len, o, &root, &err);
  if (rv)
    fail_msg("parse of '%s' failed: %d at %zu: %s", text, rv, err.offset,
             err.msg);
  assert_non_null(root);
  return root;
}

static lmz_json *parse(const char *text) {
  return parse_opts(text, strlen(text), NULL);
}

static lmz_json *parse_jsonc(const char *text) {
  struct lmz_json_opts o = {.jsonc = true};
  return parse_opts(text, strlen(text), &o);
}

/* Parses text expecting the error `code` at `offset` with exactly `msg`
 * (msg NULL: any message, but it must be non-empty). */
static void expect_err_opts(const char *text, size_t len,
                            const struct lmz_json_opts *o, int code,
                            size_t offset, const char *msg) {
  struct lmz_codec_error err = {0};
  lmz_json *root = NULL;
  int rv = lmz_json_parse(arena, text, len, o, &root, &err);
  if (rv != code || err.offset != offset)
    fail_msg("'%s': got %d at %zu (%s), want %d at %zu", text, rv, err.offset,
             err.msg, code, offset);
  assert_int_equal(err.code, code);
  assert_null(root);
  if (msg)
    assert_string_equal(err.msg, msg);
  else
    assert_true(strlen(err.msg) > 0);
}

static void expect_err(const char *text, int code, size_t offset,
                       const char *msg) {
  expect_err_opts(text, strlen(text), NULL, code, offset, msg);
}

/* Writes a DOM back; returns a NUL-terminated malloc'd copy. */
static char *write_dom(const lmz_json *j) {
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_json_write(&b, j), 0);
  assert_int_equal(lmz_buf_putc(&b, 0), 0);
  return (char *)lmz_buf_detach(&b, NULL);
}

static void assert_roundtrip(const char *in, const char *want) {
  char *out = write_dom(parse_jsonc(in));
  assert_string_equal(out, want);
  free(out);
}

/* ---- values -------------------------------------------------------------- */

static void all_value_types(void **state) {
  (void)state;
  const char *t = "{\"n\":null,\"t\":true,\"f\":false,\"num\":-1.5e2,"
                  "\"s\":\"hi\",\"a\":[1,\"x\"],\"o\":{\"k\":{}}}";
  lmz_json *r = parse(t);
  assert_int_equal(r->type, LMZ_JSON_OBJECT);
  assert_int_equal(r->n, 7);
  assert_int_equal(r->offset, 0);
  assert_int_equal(lmz_json_get(r, "n")->type, LMZ_JSON_NULL);
  assert_int_equal(lmz_json_get(r, "t")->type, LMZ_JSON_TRUE);
  assert_int_equal(lmz_json_get(r, "f")->type, LMZ_JSON_FALSE);
  lmz_json *num = lmz_json_get(r, "num");
  assert_int_equal(num->type, LMZ_JSON_NUMBER);
  assert_true(num->u.num == -150.0);
  assert_int_equal(num->offset, strchr(t, '-') - t);
  lmz_json *s = lmz_json_get(r, "s");
  assert_int_equal(s->type, LMZ_JSON_STRING);
  assert_string_equal(s->u.str.p, "hi");
  assert_int_equal(s->u.str.len, 2);
  lmz_json *a = lmz_json_get(r, "a");
  assert_int_equal(a->type, LMZ_JSON_ARRAY);
  assert_int_equal(a->n, 2);
  assert_true(a->u.items[0]->u.num == 1.0);
  assert_string_equal(a->u.items[1]->u.str.p, "x");
  assert_int_equal(a->u.items[1]->offset, strstr(t, "\"x\"") - t);
  lmz_json *o = lmz_json_get(r, "o");
  assert_int_equal(o->type, LMZ_JSON_OBJECT);
  assert_int_equal(lmz_json_get(o, "k")->n, 0);
  assert_string_equal(r->u.members[6].key, "o");
  assert_int_equal(r->u.members[6].klen, 1);
  /* scalars at the root, surrounded by whitespace */
  assert_int_equal(parse(" \t\r\n42 \n")->u.num, 42);
  assert_int_equal(parse(" 42")->offset, 1);
  assert_int_equal(parse("null")->type, LMZ_JSON_NULL);
  assert_string_equal(parse("\"\"")->u.str.p, "");
  assert_int_equal(parse("[]")->n, 0);
  assert_int_equal(parse("{}")->n, 0);
}

static void numbers_parse_exactly(void **state) {
  (void)state;
  static const char *const cases[] = {"0",
                                      "1",
                                      "-1",
                                      "0.5",
                                      "0.1",
                                      "3.14159",
                                      "1e2",
                                      "1E2",
                                      "1e+2",
                                      "1e-2",
                                      "123456789012345678",
                                      "9007199254740993",
                                      "9007199254740992",
                                      "123456789012345678901234567890",
                                      "1.7976931348623157e308",
                                      "4.9e-324",
                                      "2.2250738585072011e-308",
                                      "0.30000000000000004",
                                      "1.23e-18",
                                      "1e22",
                                      "1e23",
                                      "123.456e-10",
                                      "0.000001",
                                      "-0.0",
                                      "100000000000000000000000000000001e-30",
                                      "0.0000000000000000000000000000001",
                                      "1e-400"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    lmz_json *j = parse(cases[i]);
    assert_int_equal(j->type, LMZ_JSON_NUMBER);
    double want = strtod(cases[i], NULL);
    if (memcmp(&j->u.num, &want, sizeof want) != 0)
      fail_msg("%s parsed as %.17g, want %.17g", cases[i], j->u.num, want);
  }
  lmz_json *mz = parse("-0");
  assert_true(mz->u.num == 0 && signbit(mz->u.num));
  assert_true(isinf(parse("1e400")->u.num)); /* JSON.parse: Infinity */
  assert_true(isinf(parse("-1e400")->u.num) && parse("-1e400")->u.num < 0);
  /* a long run of digits (slow path buffer on the heap) */
  char big[400];
  memset(big, '7', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_true(parse(big)->u.num == strtod(big, NULL));
}

static void nesting_and_large_containers(void **state) {
  (void)state;
  /* children of nested containers interleave on the scratch stacks, and
   * grow them past their inline size */
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_buf_append_str(&b, "["), 0);
  for (int i = 0; i < 300; i++) {
    assert_int_equal(lmz_buf_printf(&b, "%s[%d,{\"k%d\":[%d,%d]}", i ? "," : "",
                                    i, i, i, -i),
                     0);
    for (int k = 0; k < i % 5; k++)
      assert_int_equal(lmz_buf_printf(&b, ",{\"a\":%d,\"b\":[]}", k), 0);
    assert_int_equal(lmz_buf_append_str(&b, "]"), 0);
  }
  assert_int_equal(lmz_buf_append_str(&b, "]"), 0);
  assert_int_equal(lmz_buf_putc(&b, 0), 0);
  const char *text = (const char *)b.data;
  lmz_json *r = parse(text);
  assert_int_equal(r->n, 300);
  lmz_json *e = r->u.items[123];
  assert_int_equal(e->n, 2 + 123 % 5);
  assert_true(e->u.items[0]->u.num == 123);
  lmz_json *k = lmz_json_get(e->u.items[1], "k123");
  assert_non_null(k);
  assert_true(k->u.items[1]->u.num == -123);
  char *out = write_dom(r);
  assert_string_equal(out, text); /* compact input writes back unchanged */
  free(out);
  lmz_buf_free(&b);

  /* 10000 members in one object */
  lmz_buf o = LMZ_BUF_INIT;
  assert_int_equal(lmz_buf_putc(&o, '{'), 0);
  for (int i = 0; i < 10000; i++)
    assert_int_equal(lmz_buf_printf(&o, "%s\"m%d\":%d", i ? "," : "", i, i), 0);
  assert_int_equal(lmz_buf_append(&o, "}", 2), 0);
  r = parse((const char *)o.data);
  assert_int_equal(r->n, 10000);
  assert_true(lmz_json_get(r, "m9999")->u.num == 9999);
  assert_string_equal(r->u.members[5000].key, "m5000");
  lmz_buf_free(&o);
}

static void depth_limit(void **state) {
  (void)state;
  struct lmz_json_opts o = {.max_depth = 3};
  lmz_json *r = parse_opts("[{\"a\":[]}]", 10, &o);
  assert_int_equal(r->u.items[0]->u.members[0].val->type, LMZ_JSON_ARRAY);
  expect_err_opts("[{\"a\":[[]]}]", 12, &o, LMZ_ETOODEEP, 7,
                  "nesting deeper than the limit of 3 containers");
  /* the default limit is 512 */
  char deep[1100];
  memset(deep, '[', 513);
  memset(deep + 513, ']', 513);
  deep[1026] = 0;
  expect_err(deep, LMZ_ETOODEEP, 512, NULL);
  deep[512] = ']'; /* 512 deep: accepted */
  deep[1025] = 0;
  r = parse_opts(deep + 0, 1024, NULL);
  assert_int_equal(r->n, 1);
  /* a hostile 1 MB of '[' fails cleanly (no recursion) */
  size_t n = 1 << 20;
  char *huge = malloc(n);
  assert_non_null(huge);
  memset(huge, '[', n);
  struct lmz_json_opts big = {.max_depth = 4000000};
  expect_err_opts(huge, n, &big, LMZ_ESYNTAX, n,
                  "expected a JSON value, found end of input");
  free(huge);
}

static void length_limit(void **state) {
  (void)state;
  struct lmz_json_opts o = {.max_len = 10};
  expect_err_opts("[1,2,3,4,5]", 11, &o, LMZ_ETOOBIG, 10,
                  "input of 11 bytes exceeds the limit of 10 bytes");
  assert_int_equal(parse_opts("[1,2,3,45]", 10, &o)->n, 4);
}

/* ---- strings ------------------------------------------------------------- */

static void escapes(void **state) {
  (void)state;
  lmz_json *s = parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC"
                      "\\ud83d\\ude00z\"");
  const char want[] =
      "a\"b\\c/d\b\f\n\r\tA\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
  assert_int_equal(s->u.str.len, sizeof want - 1);
  assert_memory_equal(s->u.str.p, want, sizeof want);
  /* NUL inside a string is kept, and the result stays NUL-terminated */
  s = parse("\"x\\u0000y\"");
  assert_int_equal(s->u.str.len, 3);
  assert_memory_equal(s->u.str.p, "x\0y", 4);
  /* raw UTF-8 and raw invalid bytes pass through as they are */
  s = parse("\"\xE2\x82\xAC\xFF\"");
  assert_int_equal(s->u.str.len, 4);
  assert_memory_equal(s->u.str.p, "\xE2\x82\xAC\xFF", 4);
  /* a long plain string, then escapes after the fast scan */
  char buf[300];
  memset(buf, 'q', sizeof buf);
  buf[0] = '"';
  memcpy(buf + 290, "\\n\\t\"", 6);
  s = parse(buf);
  assert_int_equal(s->u.str.len, 291);
  assert_memory_equal(s->u.str.p + 289, "\n\t", 3);
  /* object keys are unescaped too */
  lmz_json *o = parse("{\"k\\u0031\":1}");
  assert_string_equal(o->u.members[0].key, "k1");
  assert_non_null(lmz_json_get(o, "k1"));
}

static void surrogates(void **state) {
  (void)state;
  struct {
    const char *in;
    const char *want;
    size_t len;
  } cases[] = {
      {"\"\\ud800\"", "\xED\xA0\x80", 3},   /* lone high */
      {"\"\\udc00x\"", "\xED\xB0\x80x", 4}, /* lone low */
      {"\"\\ud800\\u0041\"",
       "\xED\xA0\x80"
       "A",
       4}, /* high, then BMP */
      {"\"\\ud800\\ud800\"", "\xED\xA0\x80\xED\xA0\x80", 6},
      {"\"\\udbff\\udfff\"", "\xF4\x8F\xBF\xBF", 4},         /* U+10FFFF */
      {"\"\\udc00\\ud800\"", "\xED\xB0\x80\xED\xA0\x80", 6}, /* wrong order */
      {"\"\\ud800\\n\"", "\xED\xA0\x80\n", 4},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    lmz_json *s = parse(cases[i].in);
    assert_int_equal(s->u.str.len, cases[i].len);
    assert_memory_equal(s->u.str.p, cases[i].want, cases[i].len);
  }
  /* a bad escape right after a high surrogate is still reported */
  expect_err("\"\\ud800\\uZ\"", LMZ_ESYNTAX, 9,
             "expected 4 hex digits after '\\u', found 'Z'");
}

/* ---- errors -------------------------------------------------------------- */

static void syntax_errors_have_exact_offsets(void **state) {
  (void)state;
  expect_err("", LMZ_ESYNTAX, 0, "expected a JSON value, found end of input");
  expect_err("  ", LMZ_ESYNTAX, 2, "expected a JSON value, found end of input");
  expect_err("\"abc", LMZ_ESYNTAX, 0,
             "unterminated string: expected '\"', found end of input");
  expect_err("[\"ab\\\"", LMZ_ESYNTAX, 1,
             "unterminated string: expected '\"', found end of input");
  expect_err("[\"a\\qb\"]", LMZ_ESYNTAX, 3,
             "invalid escape in string: expected one of \\\" \\\\ \\/ \\b \\f "
             "\\n \\r \\t \\u after '\\', found 'q'");
  expect_err("\"\\", LMZ_ESYNTAX, 1, NULL);
  expect_err("\"\\u12G4\"", LMZ_ESYNTAX, 5,
             "expected 4 hex digits after '\\u', found 'G'");
  expect_err("\"\\u12", LMZ_ESYNTAX, 5,
             "expected 4 hex digits after '\\u', found end of input");
  expect_err("\"a\nb\"", LMZ_ESYNTAX, 2,
             "control character 0x0a in string must be escaped");
  expect_err("\"a\\n\tb\"", LMZ_ESYNTAX, 4,
             "control character 0x09 in string must be escaped");
  expect_err("01", LMZ_ESYNTAX, 1,
             "expected '.', 'e' or end of number after leading '0', found "
             "'1' (leading zeros are not allowed)");
  expect_err("-01", LMZ_ESYNTAX, 2, NULL);
  expect_err("1.", LMZ_ESYNTAX, 2,
             "expected digit after '.' in number, found end of input");
  expect_err("1.e5", LMZ_ESYNTAX, 2,
             "expected digit after '.' in number, found 'e'");
  expect_err("-", LMZ_ESYNTAX, 1,
             "expected digit after '-', found end of input");
  expect_err("[-]", LMZ_ESYNTAX, 2, "expected digit after '-', found ']'");
  expect_err("1e", LMZ_ESYNTAX, 2,
             "expected digit in number exponent, found end of input");
  expect_err("1e+", LMZ_ESYNTAX, 3,
             "expected digit in number exponent, found end of input");
  expect_err("+1", LMZ_ESYNTAX, 0, "expected a JSON value, found '+'");
  expect_err(".5", LMZ_ESYNTAX, 0, "expected a JSON value, found '.'");
  expect_err("[1] x", LMZ_ESYNTAX, 4,
             "expected end of input after the JSON value, found 'x'");
  expect_err("1 2", LMZ_ESYNTAX, 2,
             "expected end of input after the JSON value, found '2'");
  expect_err("{\"a\" 1}", LMZ_ESYNTAX, 5,
             "expected ':' after object key, found '1'");
  expect_err("{\"a\":1 \"b\":2}", LMZ_ESYNTAX, 7,
             "expected ',' or '}' after object member, found '\"'");
  expect_err("{\"a\":1x", LMZ_ESYNTAX, 6,
             "expected ',' or '}' after object member, found 'x'");
  expect_err("{\"a\":1", LMZ_ESYNTAX, 6,
             "expected ',' or '}' after object member, found end of input");
  expect_err("[1 2]", LMZ_ESYNTAX, 3,
             "expected ',' or ']' after array element, found '2'");
  expect_err("[1,2", LMZ_ESYNTAX, 4,
             "expected ',' or ']' after array element, found end of input");
  expect_err("{1:2}", LMZ_ESYNTAX, 1,
             "expected a string key or '}', found '1'");
  expect_err("{\"a\":1,2}", LMZ_ESYNTAX, 7, "expected a string key, found '2'");
  expect_err("[", LMZ_ESYNTAX, 1, "expected a JSON value, found end of input");
  expect_err("[,1]", LMZ_ESYNTAX, 1, "expected a JSON value, found ','");
  expect_err("tru", LMZ_ESYNTAX, 3,
             "invalid literal: expected 'true', found end of input");
  expect_err("nul1", LMZ_ESYNTAX, 3,
             "invalid literal: expected 'null', found '1'");
  expect_err("[fals]", LMZ_ESYNTAX, 5,
             "invalid literal: expected 'false', found ']'");
  expect_err("True", LMZ_ESYNTAX, 0, "expected a JSON value, found 'T'");
  expect_err("{\"a\":\x01}", LMZ_ESYNTAX, 5,
             "expected a JSON value, found byte 0x01");
  expect_err_opts("[1,\0]", 5, NULL, LMZ_ESYNTAX, 3,
                  "expected a JSON value, found byte 0x00");
  expect_err("\xEF\xBB\xBF{}", LMZ_ESYNTAX, 0, NULL); /* no BOM in strict */
}

static void strict_rejects_jsonc(void **state) {
  (void)state;
  expect_err("[1,]", LMZ_ESYNTAX, 3,
             "expected a JSON value after ',', found ']' (trailing commas "
             "are allowed only in JSONC)");
  expect_err("{\"a\":1,}", LMZ_ESYNTAX, 7,
             "expected a string key after ',', found '}' (trailing commas "
             "are allowed only in JSONC)");
  expect_err("// c\n1", LMZ_ESYNTAX, 0,
             "expected a JSON value, found '/' (comments are allowed only in "
             "JSONC)");
  expect_err("[1/*c*/]", LMZ_ESYNTAX, 2,
             "expected ',' or ']' after array element, found '/'");
  expect_err("1 // c", LMZ_ESYNTAX, 2,
             "expected end of input after the JSON value, found '/'");
}

static void jsonc_comments_and_trailing_commas(void **state) {
  (void)state;
  const char *t = "\xEF\xBB\xBF// head\n"
                  "{ /* a */ \"a\" /* b */ : /* c */ [1, 2, /* d */ ], // e\n"
                  "  \"b\": {\"x\": 1,}, /* * / ** */ } // tail";
  lmz_json *r = parse_jsonc(t);
  assert_int_equal(r->n, 2);
  assert_int_equal(lmz_json_get(r, "a")->n, 2);
  assert_true(lmz_json_get(lmz_json_get(r, "b"), "x")->u.num == 1);
  assert_int_equal(r->offset, strchr(t, '{') - t);
  assert_int_equal(parse_jsonc("1//")->u.num, 1);
  assert_int_equal(parse_jsonc("/**/1/***/")->u.num, 1);
  assert_int_equal(parse_jsonc("[\"//not a comment\"]")->n, 1);
  struct lmz_json_opts o = {.jsonc = true};
  expect_err_opts("[1, /* open", 11, &o, LMZ_ESYNTAX, 4,
                  "unterminated block comment: expected '*/', found end of "
                  "input");
  expect_err_opts("/*/", 3, &o, LMZ_ESYNTAX, 0, NULL);
  expect_err_opts("1 /", 3, &o, LMZ_ESYNTAX, 3,
                  "expected '/' or '*' after '/' to start a comment, found "
                  "end of input");
  expect_err_opts("1 /x", 4, &o, LMZ_ESYNTAX, 3, NULL);
  expect_err_opts("[1,,]", 5, &o, LMZ_ESYNTAX, 3,
                  "expected a JSON value, found ','");
  expect_err_opts("{\"a\":1,,}", 9, &o, LMZ_ESYNTAX, 7,
                  "expected a string key or '}', found ','");
  expect_err_opts("[,]", 3, &o, LMZ_ESYNTAX, 1, NULL);
}

static void duplicate_keys_last_wins(void **state) {
  (void)state;
  lmz_json *r = parse("{\"a\":1,\"b\":2,\"a\":3}");
  assert_int_equal(r->n, 3);
  assert_true(lmz_json_get(r, "a")->u.num == 3);
  assert_true(r->u.members[0].val->u.num == 1);
  assert_null(lmz_json_get(r, "c"));
  assert_null(lmz_json_get(r, "ab"));
  assert_null(lmz_json_get(parse("[1]"), "a"));
  assert_null(lmz_json_get(NULL, "a"));
  /* a key with an embedded NUL is not the shorter key */
  assert_null(lmz_json_get(parse("{\"a\\u0000\":1}"), "a"));
  char *out = write_dom(r);
  assert_string_equal(out, "{\"a\":1,\"b\":2,\"a\":3}");
  free(out);
}

static void out_of_memory_is_an_error(void **state) {
  (void)state;
  lmz_arena *small = lmz_arena_new();
  assert_non_null(small);
  lmz_arena_set_limit(small, 256);
  struct lmz_codec_error err;
  lmz_json *r = NULL;
  const char *t = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]";
  assert_int_equal(lmz_json_parse(small, t, strlen(t), NULL, &r, &err),
                   LMZ_ENOMEM);
  assert_null(r);
  assert_string_equal(err.msg, "out of memory");
  assert_true(err.offset > 0 && err.offset < strlen(t));
  lmz_arena_free(small);
  /* err may be NULL */
  assert_int_equal(lmz_json_parse(arena, "x", 1, NULL, &r, NULL), LMZ_ESYNTAX);
}

static void line_and_column(void **state) {
  (void)state;
  const char *t = "ab\ncd\n \xC3\xA9x";
  int line, col;
  lmz_json_line_col(t, strlen(t), 0, &line, &col);
  assert_true(line == 1 && col == 1);
  lmz_json_line_col(t, strlen(t), 1, &line, &col);
  assert_true(line == 1 && col == 2);
  lmz_json_line_col(t, strlen(t), 3, &line, &col);
  assert_true(line == 2 && col == 1);
  lmz_json_line_col(t, strlen(t), 9, &line, &col); /* 'x' after 2-byte char */
  assert_true(line == 3 && col == 3);
  lmz_json_line_col(t, strlen(t), 999, &line, &col); /* clamped to the end */
  assert_true(line == 3 && col == 4);
  lmz_json_line_col("\xEF\xBB\xBF{", 4, 3, &line, &col);
  assert_true(line == 1 && col == 1);
}

/* ---- writers ------------------------------------------------------------- */

static void write_string_like_json_stringify(void **state) {
  (void)state;
  static const struct {
    const char *in;
    size_t len;
    const char *want;
  } cases[] = {
      {"", 0, "\"\""},
      {"plain text", 10, "\"plain text\""},
      {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
      {"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
      {"\x00\x01\x1f\x7f", 4, "\"\\u0000\\u0001\\u001f\x7f\""},
      {"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 9,
       "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""},
      {"\xE2\x80\xA8", 3, "\"\xE2\x80\xA8\""}, /* U+2028 stays raw */
      {"\xED\xA0\x80", 3, "\"\\ud800\""},      /* lone surrogates */
      {"\xED\xBF\xBFz", 4, "\"\\udfffz\""},
      {"\xED\xB0\x80\xED\xA0\x80", 6, "\"\\udc00\\ud800\""},
      /* a WTF-8 pair written as two halves is one character in JS */
      {"\xED\xA0\xBD\xED\xB8\x80", 6, "\"\xF0\x9F\x98\x80\""},
      /* ill-formed UTF-8 -> U+FFFD, one per maximal subpart (WHATWG) */
      {"\xFF", 1, "\"\xEF\xBF\xBD\""},
      {"a\x80"
       "b",
       3,
       "\"a\xEF\xBF\xBD"
       "b\""},
      {"\xC0\xAF", 2, "\"\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"\xE2\x82", 2, "\"\xEF\xBF\xBD\""},
      {"\xE2\x82z", 3, "\"\xEF\xBF\xBDz\""},
      {"\xF0\x9F\x98", 3, "\"\xEF\xBF\xBD\""},
      {"\xF4\x90\x80\x80", 4,
       "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"\xE0\x80\x80", 3, "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""},
      {"\xED\xA0", 2, "\"\xEF\xBF\xBD\""},
      {"0123456789abcdef\"0123456789abcdef", 33,
       "\"0123456789abcdef\\\"0123456789abcdef\""},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    lmz_buf b = LMZ_BUF_INIT;
    assert_int_equal(lmz_json_write_string(&b, cases[i].in, cases[i].len), 0);
    size_t wl = strlen(cases[i].want);
    if (b.len != wl || memcmp(b.data, cases[i].want, wl) != 0)
      fail_msg("case %zu: got %.*s want %s", i, (int)b.len, b.data,
               cases[i].want);
    lmz_buf_free(&b);
  }
}

static void format_number_like_javascript(void **state) {
  (void)state;
  static const struct {
    double d;
    const char *want;
  } cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {-5, "-5"},
      {100, "100"},
      {0.1 + 0.2, "0.30000000000000004"},
      {0.1, "0.1"},
      {3.14, "3.14"},
      {-2.5, "-2.5"},
      {5e-324, "5e-324"},
      {-5e-324, "-5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {123e-20, "1.23e-18"},
      {1e21, "1e+21"},
      {1e20, "100000000000000000000"},
      {1.2345678901234568e20, "123456789012345680000"},
      {0.000001, "0.000001"},
      {0.0000015, "0.0000015"},
      {1e-7, "1e-7"},
      {1.5e-7, "1.5e-7"},
      {1.5e300, "1.5e+300"},
      {9007199254740992.0, "9007199254740992"},
      {9007199254740994.0, "9007199254740994"},
      {9223372036854775808.0, "9223372036854776000"},
      {18446744073709551616.0, "18446744073709552000"},
      {1e15, "1000000000000000"},
      {123456.789, "123456.789"},
      {2.2250738585072014e-308, "2.2250738585072014e-308"},
      {2.225073858507201e-308, "2.225073858507201e-308"},
      {1e23, "1e+23"},
      {5e-7, "5e-7"},
      {0.3, "0.3"},
      {2.0 / 3.0, "0.6666666666666666"},
      {1.0 / 3.0, "0.3333333333333333"},
      {4.35, "4.35"},
      {0.000123, "0.000123"},
      {1.1e-6, "0.0000011"},
      {5.0e-6 / 5.0, "0.0000010000000000000002"},
      {4294967296.5, "4294967296.5"},
      {8.41e21, "8.41e+21"},
      {-1.0000000000000002, "-1.0000000000000002"},
      {6.103515625e-05, "0.00006103515625"},
      {9.5367431640625e-07, "9.5367431640625e-7"},
      {1.4916681462400413e-154, "1.4916681462400413e-154"},
      /* powers of two whose shortest form lies above d, where the interval
       * is wider (the nearest 16-digit decimal does not read back) */
      {5.3169119831396635e+36, "5.316911983139664e+36"}, /* 2^122 */
      {5.6236422431789955e+160, "5.623642243178996e+160"},
      {5.0758836746312984e-116, "5.075883674631299e-116"},
      {0.12345678901234566, "0.12345678901234566"},
      {2.4e-322, "2.4e-322"}, /* subnormals */
      {1.23456789e-310, "1.23456789e-310"},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    char out[32];
    size_t n = lmz_json_format_number(cases[i].d, out);
    if (strcmp(out, cases[i].want) != 0)
      fail_msg("%.17g: got %s want %s", cases[i].d, out, cases[i].want);
    assert_int_equal(n, strlen(cases[i].want));
  }
  char out[32];
  assert_int_equal(lmz_json_format_number(NAN, out), 3);
  assert_string_equal(out, "NaN");
  lmz_json_format_number(-INFINITY, out);
  assert_string_equal(out, "-Infinity");
  /* the widest outputs fit in 32 bytes */
  assert_int_equal(lmz_json_format_number(-1.2345678901234567e-300, out), 24);
  assert_int_equal(lmz_json_format_number(-1.2345678901234567e-7, out), 22);
  assert_int_equal(lmz_json_format_number(-0.0000012345678901234567, out), 25);
  assert_string_equal(out, "-0.0000012345678901234567");
  /* the buffer writer: non-finite numbers become null, as JSON.stringify */
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_json_write_number(&b, INFINITY), 0);
  assert_int_equal(lmz_json_write_number(&b, 1e-7), 0);
  assert_int_equal(lmz_buf_putc(&b, 0), 0);
  assert_string_equal((char *)b.data, "null1e-7");
  lmz_buf_free(&b);
}

static void write_dom_is_compact_and_exact(void **state) {
  (void)state;
  assert_roundtrip(" { \"a\" : [ 1 , -2.50 , 1E21, 1e-7, 0.1e1, -0 ] ,\n"
                   "\"b\":null,\"c\":true,\"d\":false, \"e\": {}, \"f\": [],"
                   "\"g\": \"x\\u0001\\n\\u00e9\\ud800\\/\" }",
                   "{\"a\":[1,-2.5,1e+21,1e-7,1,0],\"b\":null,\"c\":true,"
                   "\"d\":false,\"e\":{},\"f\":[],\"g\":\"x\\u0001\\n\xC3\xA9"
                   "\\ud800/\"}");
  assert_roundtrip("[[[[]]],{\"\":{\"\":[{}]}}]",
                   "[[[[]]],{\"\":{\"\":[{}]}}]");
  assert_roundtrip("1e400", "null");
  assert_roundtrip("\"\\u007f\"", "\"\x7f\"");
  assert_roundtrip("{\"k\\n\":1}", "{\"k\\n\":1}");
  /* a hand-built DOM deeper than the writer's inline stack */
  enum { DEPTH = 1000 };
  lmz_json *nodes = lmz_arena_alloc(arena, DEPTH * sizeof *nodes);
  lmz_json **slots = lmz_arena_alloc(arena, DEPTH * sizeof *slots);
  assert_true(nodes && slots);
  for (int i = 0; i < DEPTH; i++) {
    nodes[i].type = LMZ_JSON_ARRAY;
    nodes[i].n = i + 1 < DEPTH;
    nodes[i].u.items = &slots[i];
    slots[i] = i + 1 < DEPTH ? &nodes[i + 1] : NULL;
  }
  char *out = write_dom(&nodes[0]);
  assert_int_equal(strlen(out), 2 * DEPTH);
  assert_true(out[DEPTH - 1] == '[' && out[DEPTH] == ']');
  free(out);
  /* the buffer cap is honoured */
  lmz_buf b = LMZ_BUF_INIT;
  b.max = 4;
  assert_int_equal(lmz_json_write(&b, parse("[1,2,3]")), LMZ_ETOOBIG);
  lmz_buf_free(&b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(all_value_types, setup, teardown),
      cmocka_unit_test_setup_teardown(numbers_parse_exactly, setup, teardown),
      cmocka_unit_test_setup_teardown(nesting_and_large_containers, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(depth_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(length_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(escapes, setup, teardown),
      cmocka_unit_test_setup_teardown(surrogates, setup, teardown),
      cmocka_unit_test_setup_teardown(syntax_errors_have_exact_offsets, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(strict_rejects_jsonc, setup, teardown),
      cmocka_unit_test_setup_teardown(jsonc_comments_and_trailing_commas, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(duplicate_keys_last_wins, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(out_of_memory_is_an_error, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(line_and_column, setup, teardown),
      cmocka_unit_test_setup_teardown(write_string_like_json_stringify, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(format_number_like_javascript, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(write_dom_is_compact_and_exact, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
