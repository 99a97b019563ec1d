/* core/civil.c - proleptic Gregorian calendar (see civil.h). The 400-year
 * era shift makes every division below work on non-negative numbers; eras
 * themselves are floor-divided so negative days work too. */
#include "core/civil.h"

struct lmz_civil lmz__civil_from_days(int64_t z) {
  z += 719468; /* shift the epoch to 0000-03-01 */
  int64_t era = lmz__floor_div(z, 146097);
  int64_t doe = z - era * 146097; /* [0, 146096] */
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100); /* [0, 365] */
  int64_t mp = (5 * doy + 2) / 153;                      /* [0, 11] */
  struct lmz_civil c;
  c.d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
  c.m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
  c.y = yoe + era * 400 + (c.m <= 2);
  return c;
}

int64_t lmz__days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = lmz__floor_div(y, 400);
  int64_t yoe = y - era * 400;                                   /* [0, 399] */
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* [0, 365] */
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

unsigned lmz__weekday_from_days(int64_t days) {
  int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday (4) */
  return (unsigned)(wd < 0 ? wd + 7 : wd);
}

bool lmz__is_leap_year(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned lmz__days_in_month(int64_t y, unsigned m) {
  static const unsigned char dim[13] = {0,  31, 28, 31, 30, 31, 30,
                                        31, 31, 30, 31, 30, 31};
  return (m == 2 && lmz__is_leap_year(y)) ? 29 : dim[m];
}
