/* tests/unit/core/test_trace.c - trace and call ids (core/trace.h): minted
 * ids are valid and distinct; validation refuses every malformed shape a
 * hostile peer or client could send; W3C traceparent parsing is strict. */
#include "lib/testlib.h"

#include <string.h>

#include "core/err.h"
#include "core/trace.h"

static void test_minted_ids_are_valid_and_distinct(void **state) {
  (void)state;
  char t1[LMZ_TRACE_ID_LEN + 1], t2[LMZ_TRACE_ID_LEN + 1];
  char c1[LMZ_CALL_ID_LEN + 1], c2[LMZ_CALL_ID_LEN + 1];
  lmz_trace_id_mint(t1);
  lmz_trace_id_mint(t2);
  assert_int_equal(strlen(t1), LMZ_TRACE_ID_LEN);
  assert_true(lmz_trace_id_valid(t1, strlen(t1)));
  assert_string_not_equal(t1, t2);
  lmz_call_id_mint(c1);
  for (int i = 0; i < 1000; i++) {
    lmz_call_id_mint(c2);
    assert_true(lmz_call_id_valid(c2, strlen(c2)));
    assert_string_not_equal(c1, c2);
  }
  /* one process: one random prefix, a counter below it */
  assert_memory_equal(c1, c2, 8);
}

static void test_validation(void **state) {
  (void)state;
  assert_true(lmz_trace_id_valid("4bf92f3577b34da6a3ce929d0e0e4736", 32));
  static const char *const bad[] = {
      "4BF92F3577B34DA6A3CE929D0E0E4736", /* upper case */
      "4bf92f3577b34da6a3ce929d0e0e473",  /* 31 */
      "4bf92f3577b34da6a3ce929d0e0e47361", /* 33 */
      "00000000000000000000000000000000", /* all zero */
      "4bf92f3577b34da6a3ce929d0e0e47 6", /* space */
      "4bf92f3577b34da6a3ce929d0e0e47\n6", /* newline: log forging */
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_false(lmz_trace_id_valid(bad[i], strlen(bad[i])));
  assert_false(lmz_trace_id_valid(NULL, 0));
  assert_true(lmz_call_id_valid("00f067aa0ba902b7", 16));
  assert_false(lmz_call_id_valid("0000000000000000", 16));
  assert_false(lmz_call_id_valid("00f067aa0ba902b", 15));
  assert_false(lmz_call_id_valid("00f067aa0ba902bZ", 16));
  char out[LMZ_TRACE_ID_LEN + 1];
  assert_true(lmz_trace_id_adopt("4bf92f3577b34da6a3ce929d0e0e4736", out));
  assert_string_equal(out, "4bf92f3577b34da6a3ce929d0e0e4736");
  assert_false(lmz_trace_id_adopt("4bf92f3577b34da6a3ce929d0e0e4736ff", out));
  assert_true(lmz_trace_id_valid(out, strlen(out)));
  assert_false(lmz_trace_id_adopt(NULL, out));
  assert_true(lmz_trace_id_valid(out, strlen(out)));
}

static void test_traceparent(void **state) {
  (void)state;
  char out[LMZ_TRACE_ID_LEN + 1] = "untouched";
  const char *ok = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  assert_int_equal(lmz_traceparent_parse(ok, strlen(ok), out), 0);
  assert_string_equal(out, "4bf92f3577b34da6a3ce929d0e0e4736");
  /* a later version may append fields after a '-' (W3C 3.2.4) */
  const char *v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-more";
  assert_int_equal(lmz_traceparent_parse(v1, strlen(v1), out), 0);
  static const char *const bad[] = {
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1x",
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
      "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00x",
      "",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    memcpy(out, "untouched", 10);
    assert_int_equal(lmz_traceparent_parse(bad[i], strlen(bad[i]), out), LMZ_EINVAL);
    assert_string_equal(out, "untouched");
  }
  assert_int_equal(lmz_traceparent_parse(NULL, 0, out), LMZ_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_minted_ids_are_valid_and_distinct),
      cmocka_unit_test(test_validation),
      cmocka_unit_test(test_traceparent),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
