#include "lib/testlib.h"

#include <string.h>

#include "core/err.h"

static void own_codes_have_names_and_messages(void **state) {
  (void)state;
  assert_string_equal(lmz_err_name(LMZ_ENOTLEADER), "LMZ_ENOTLEADER");
  assert_string_equal(lmz_strerror(LMZ_ENOTLEADER),
                      "this node is not the directory leader");
  assert_int_equal(LMZ_ENOTFOUND, -9001);
}

static void libuv_codes_pass_through(void **state) {
  (void)state;
  assert_string_equal(lmz_err_name(LMZ_ENOMEM), "ENOMEM");
  assert_string_equal(lmz_strerror(UV_ECONNREFUSED), uv_strerror(UV_ECONNREFUSED));
  assert_string_equal(lmz_strerror(-12345678), "unknown error");
}

static void wrap_prefixes_context(void **state) {
  (void)state;
  char msg[LMZ_ERRMSG_LEN];
  lmz__errmsg_printf(msg, "disk %s", "full");
  lmz__errmsg_wrapf(msg, "open %s", "/x");
  assert_string_equal(msg, "open /x: disk full");
  char big[LMZ_ERRMSG_LEN * 2];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  lmz__errmsg_wrapf(msg, "%s", big); /* truncates, never overflows */
  assert_int_equal(strlen(msg), LMZ_ERRMSG_LEN - 1);
}

/* A NULL buffer means "no message wanted": nothing is written, no crash. */
static void null_buffer_is_ignored(void **state) {
  (void)state;
  lmz__errmsg_printf(NULL, "disk %s", "full");
  lmz__errmsg_wrapf(NULL, "open %s", "/x");
  char msg[LMZ_ERRMSG_LEN] = "kept";
  lmz__errmsg_printf(msg, "%s", "");
  assert_string_equal(msg, "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(own_codes_have_names_and_messages),
      cmocka_unit_test(libuv_codes_pass_through),
      cmocka_unit_test(wrap_prefixes_context),
      cmocka_unit_test(null_buffer_is_ignored),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
