/* tests/unit/core/test_pct.c - core/pct.h: "%XX" decodes to its byte in
 * either case; anything short of exactly two hex digits is refused. */
#include "lib/testlib.h"

#include "core/pct.h"

static void decodes(void **state) {
  (void)state;
  assert_int_equal(lmz_pct_byte("%41", 3), 'A');
  assert_int_equal(lmz_pct_byte("%2f", 3), '/');
  assert_int_equal(lmz_pct_byte("%2F", 3), '/');
  assert_int_equal(lmz_pct_byte("%00", 3), 0);
  assert_int_equal(lmz_pct_byte("%ff", 3), 255);
  assert_int_equal(lmz_pct_byte("%FFx", 4), 255); /* only two digits read */
}

static void refuses(void **state) {
  (void)state;
  assert_int_equal(lmz_pct_byte("%4", 2), -1);   /* one digit */
  assert_int_equal(lmz_pct_byte("%41", 2), -1);  /* the 2nd beyond avail */
  assert_int_equal(lmz_pct_byte("%", 1), -1);
  assert_int_equal(lmz_pct_byte("%g1", 3), -1);
  assert_int_equal(lmz_pct_byte("%1G", 3), -1);
  assert_int_equal(lmz_pct_byte("% 1", 3), -1);
  assert_int_equal(lmz_pct_byte("%-1", 3), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(decodes),
      cmocka_unit_test(refuses),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
