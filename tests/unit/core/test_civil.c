/* tests/unit/core/test_civil.c - core/civil.h: the Gregorian calendar used
 * by Date#toISOString / Date.parse in the codecs and by cron. */
#include "lib/testlib.h"

#include "core/civil.h"

static void known_days(void **state) {
  (void)state;
  static const struct {
    int64_t y;
    unsigned m, d;
    int64_t days;
    unsigned wd;
  } k[] = {
      {1970, 1, 1, 0, 4},            {1969, 12, 31, -1, 3},
      {2000, 2, 29, 11016, 2},       {2000, 3, 1, 11017, 3},
      {2024, 1, 15, 19737, 1},       {1900, 3, 1, -25508, 4},
      {0, 3, 1, -719468, 3},         {-1, 12, 31, -719529, 5},
      {275760, 9, 13, 100000000, 6}, /* JavaScript's last and first days */
      {-271821, 4, 20, -100000000, 2},
  };
  for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
    assert_int_equal(lmz__days_from_civil(k[i].y, k[i].m, k[i].d), k[i].days);
    struct lmz_civil c = lmz__civil_from_days(k[i].days);
    assert_int_equal(c.y, k[i].y);
    assert_int_equal(c.m, k[i].m);
    assert_int_equal(c.d, k[i].d);
    assert_int_equal(lmz__weekday_from_days(k[i].days), k[i].wd);
  }
}

/* Every day of +-3000 years: the two conversions are inverse, days advance
 * one at a time through every month's length, weekdays cycle. */
static void round_trip_and_continuity(void **state) {
  (void)state;
  struct lmz_civil prev = lmz__civil_from_days(-1100000 - 1);
  for (int64_t z = -1100000; z <= 1100000; z++) {
    struct lmz_civil c = lmz__civil_from_days(z);
    assert_int_equal(lmz__days_from_civil(c.y, c.m, c.d), z);
    if (c.d == 1) {
      assert_int_equal(prev.d, lmz__days_in_month(prev.y, prev.m));
      assert_int_equal(c.m, prev.m == 12 ? 1 : prev.m + 1);
    } else {
      assert_int_equal(c.d, prev.d + 1);
      assert_int_equal(c.m, prev.m);
    }
    assert_int_equal(lmz__weekday_from_days(z),
                     (lmz__weekday_from_days(z - 1) + 1) % 7);
    prev = c;
  }
}

static void month_lengths_and_overflowing_days(void **state) {
  (void)state;
  assert_int_equal(lmz__days_in_month(1900, 2), 28);
  assert_int_equal(lmz__days_in_month(2000, 2), 29);
  assert_int_equal(lmz__days_in_month(2023, 2), 28);
  assert_int_equal(lmz__days_in_month(2024, 2), 29);
  assert_int_equal(lmz__days_in_month(2024, 4), 30);
  assert_int_equal(lmz__days_in_month(-4, 2), 29); /* 5 BC: leap */
  /* Date.parse("2024-02-31") is 2024-03-02 */
  assert_int_equal(lmz__days_from_civil(2024, 2, 31),
                   lmz__days_from_civil(2024, 3, 2));
  assert_int_equal(lmz__floor_div(-1, 60000), -1);
  assert_int_equal(lmz__floor_div(-60000, 60000), -1);
  assert_int_equal(lmz__floor_div(59999, 60000), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(known_days),
      cmocka_unit_test(round_trip_and_continuity),
      cmocka_unit_test(month_lengths_and_overflowing_days),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
