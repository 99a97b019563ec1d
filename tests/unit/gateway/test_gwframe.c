/* Tests for the client-frame memory budget (gateway/frames.c,
 * lmz__gw_parse_frame), socketless: a frame is parsed into a scratch arena
 * the way lmz__gw_on_message does, and the arena's bytes are checked.
 * Issue 15's spirit ("no one can starve a node"): a hostile frame of tiny
 * array elements ([0,0,...], 2 bytes each, ~40 bytes of DOM each) must cost
 * at most LMZ_GATEWAY_FRAME_MEMORY_FACTOR x its size + MIN, and legitimate
 * large frames (a 31 MiB string, a 1 MiB array of numbers) still parse. */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "gateway/gateway.h"
#include "gateway/gw_int.h"

#define MIB ((size_t)1 << 20)

/* A frame `[x,x,...,x]` of exactly `len` bytes (len odd, x one digit). */
static char *dense_array(size_t len, char x) {
  char *f = malloc(len);
  assert_non_null(f);
  f[0] = '[';
  for (size_t i = 1; i + 1 < len; i += 2) {
    f[i] = x;
    f[i + 1] = ',';
  }
  f[len - 1] = ']';
  return f;
}

/* A call frame whose one argument is `s` (n bytes, no escapes needed). */
static char *call_with(const char *s, size_t n, size_t *len) {
  const char *pre = "{\"type\":\"call\",\"callId\":\"c1\",\"binding\":\"B\","
                    "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"f\"},"
                    "{\"type\":\"apply\",\"args\":[";
  const char *post = "]}],\"meta\":{}}}";
  size_t a = strlen(pre), b = strlen(post);
  char *f = malloc(a + n + b);
  assert_non_null(f);
  memcpy(f, pre, a);
  memcpy(f + a, s, n);
  memcpy(f + a + n, post, b);
  *len = a + n + b;
  return f;
}

/* A 4 MiB [0,0,...] frame (its DOM would be ~80 MiB, 20x) is refused with
 * LMZ_ETOOBIG while the scratch arena stays within the frame budget. */
static void test_dense_frame_refused(void **state) {
  (void)state;
  size_t len = 4 * MIB + 1;
  char *f = dense_array(len, '0');
  lmz_arena *a = lmz_arena_new();
  assert_non_null(a);
  lmz_json *msg = NULL;
  struct lmz_codec_error err = {0};
  int rc = lmz__gw_parse_frame(a, (const uint8_t *)f, len,
                               LMZ_GATEWAY_MAX_MESSAGE, &msg, &err);
  size_t used = lmz_arena_used(a);
  size_t budget = LMZ_GATEWAY_FRAME_MEMORY_FACTOR * len +
                  LMZ_GATEWAY_FRAME_MEMORY_MIN;
  printf("# dense 4 MiB frame: rc %d, scratch %zu bytes (%.1fx), budget %zu\n",
         rc, used, (double)used / (double)len, budget);
  assert_int_equal(rc, LMZ_ETOOBIG);
  assert_null(msg);
  assert_true(used > 0);
  assert_true(used <= budget);
  assert_true(used <= 12 * len); /* 8x + 16 MiB at 4 MiB: 12x */
  assert_non_null(strstr(err.msg, "memory"));
  /* the arena is usable for the next frame after a reset */
  lmz_arena_reset(a);
  rc = lmz__gw_parse_frame(a, (const uint8_t *)"{\"type\":\"x\"}", 12,
                           LMZ_GATEWAY_MAX_MESSAGE, &msg, &err);
  assert_int_equal(rc, 0);
  assert_non_null(lmz__gw_str(msg, "type", NULL));
  lmz_arena_free(a);
  free(f);
}

/* Legitimate large frames still parse: a 1 MiB [0,0,...] array (dense, but
 * within the 16 MiB floor), a call with 1 MiB of numbers as arguments, and a
 * call with a 31 MiB string argument. */
static void test_large_frames_accepted(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  assert_non_null(a);
  lmz_json *msg = NULL;
  struct lmz_codec_error err = {0};
  size_t len = MIB + 1;
  char *f = dense_array(len, '7');
  assert_int_equal(lmz__gw_parse_frame(a, (const uint8_t *)f, len,
                                       LMZ_GATEWAY_MAX_MESSAGE, &msg, &err), 0);
  assert_int_equal(msg->type, LMZ_JSON_ARRAY);
  assert_int_equal(msg->n, (MIB + 1) / 2);
  free(f);
  lmz_arena_reset(a);
  /* 1 MiB of numbers as call arguments */
  size_t nn = MIB / 8;
  char *nums = malloc(nn * 8);
  assert_non_null(nums);
  for (size_t i = 0; i < nn; i++)
    memcpy(nums + 8 * i, i + 1 < nn ? "1234.56," : "1234.567", 8);
  f = call_with(nums, nn * 8, &len);
  free(nums);
  assert_int_equal(lmz__gw_parse_frame(a, (const uint8_t *)f, len,
                                       LMZ_GATEWAY_MAX_MESSAGE, &msg, &err), 0);
  assert_string_equal(lmz__gw_str(msg, "type", NULL), "call");
  free(f);
  lmz_arena_reset(a);
  /* a 31 MiB string argument */
  size_t sn = 31 * MIB;
  char *s = malloc(sn);
  assert_non_null(s);
  memset(s, 'x', sn);
  s[0] = s[sn - 1] = '"';
  f = call_with(s, sn, &len);
  free(s);
  assert_true(len < LMZ_GATEWAY_MAX_MESSAGE);
  assert_int_equal(lmz__gw_parse_frame(a, (const uint8_t *)f, len,
                                       LMZ_GATEWAY_MAX_MESSAGE, &msg, &err), 0);
  const lmz_json *args = lmz_json_get(lmz_json_get(msg, "chain"), "json");
  assert_non_null(args);
  args = lmz_json_get(args->u.items[1], "args");
  assert_non_null(args);
  assert_int_equal(args->u.items[0]->u.str.len, sn - 2);
  printf("# 31 MiB string frame: scratch %zu bytes (%.2fx)\n", lmz_arena_used(a),
         (double)lmz_arena_used(a) / (double)len);
  free(f);
  lmz_arena_free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_frame_refused),
      cmocka_unit_test(test_large_frames_accepted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
