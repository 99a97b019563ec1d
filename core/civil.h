/* core/civil.h - the proleptic Gregorian calendar, once for all of core
 * (Date#toISOString and Date.parse in the SC-JSON codecs, cron's next
 * firing time).
 *
 * Days are counted from 1970-01-01 (day 0, a Thursday); negative days are
 * before it. The conversions are Howard Hinnant's ("chrono-compatible
 * low-level date algorithms"): exact for every day count whose year fits
 * in int64_t, far beyond JavaScript's +-8.64e15 ms (+-100,000,000 days).
 *
 * Threading: pure functions, no state. */
#ifndef LMZ_CORE_CIVIL_H
#define LMZ_CORE_CIVIL_H

#include <stdbool.h>
#include <stdint.h>

/* a / b rounded toward minus infinity (b != 0): day and minute numbers of
 * times before the epoch. */
static inline int64_t lmz__floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

struct lmz_civil {
  int64_t y;
  unsigned m; /* 1..12 */
  unsigned d; /* 1..31 */
};

/* The date of day `days`. */
struct lmz_civil lmz__civil_from_days(int64_t days);
/* The day number of y-m-d. m must be 1..12; d may run past the month's
 * end (2024-02-31 is 2024-03-02), as JavaScript's Date.parse allows. */
int64_t lmz__days_from_civil(int64_t y, unsigned m, unsigned d);
/* 0 = Sunday .. 6 = Saturday. */
unsigned lmz__weekday_from_days(int64_t days);
bool lmz__is_leap_year(int64_t y);
/* 28..31; m must be 1..12. */
unsigned lmz__days_in_month(int64_t y, unsigned m);

#endif
