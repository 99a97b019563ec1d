/* core/cron.h - cron expressions for repeating durable alarms (pure, no I/O).
 *
 * An alarm that repeats "by cron" stores its expression text; the actor
 * runtime parses it once with lmz_cron_parse() and asks lmz_cron_next() for
 * the next firing time each time the alarm fires. All times are UTC Unix
 * milliseconds; there is no time-zone or DST handling by design (alarms fire
 * on every node of the cluster the same way).
 *
 * Both functions are pure: no allocation, no global state, no locale or TZ,
 * so they may be called from any thread concurrently. */
#ifndef LMZ_CORE_CRON_H
#define LMZ_CORE_CRON_H

#include <stdbool.h>
#include <stdint.h>

/* Longest expression lmz_cron_parse() accepts, in bytes (without the NUL). */
#define LMZ_CRON_MAX_LEN 256
/* How far lmz_cron_next() searches: whole UTC days, counted from the day of
 * the first candidate minute (a little over 5 years). */
#define LMZ_CRON_HORIZON_DAYS 1830

/* A parsed expression: one bit per allowed value of each field. Plain data;
 * copy it freely. lmz_cron_next() ignores bits outside each field's range
 * (e.g. dom bit 0, minute bits 60..63), so a hand-built or corrupted value is
 * safe to pass. */
typedef struct lmz_cron {
  uint64_t minutes; /* bit i = minute i (0..59) */
  uint32_t hours;   /* bit i = hour i (0..23) */
  uint32_t dom;     /* bit d = day-of-month d (1..31) */
  uint16_t months;  /* bit m = month m (1..12) */
  uint8_t dow;      /* bit d = weekday d (0 = Sunday .. 6); 7 folds into 0 */
  /* Vixie cron's rule: a day field is "restricted" unless its text starts
   * with '*'. So "*" and "*\/2" are unrestricted, "1-31" is restricted. */
  bool dom_restricted, dow_restricted;
} lmz_cron;

/* Parses a standard 5-field cron expression
 *   minute hour day-of-month month day-of-week
 * Each field is a comma-separated list of items; an item is '*', a value, or
 * a range "a-b", optionally followed by a step "/n" ("*\/15", "10-50/10"; a
 * step after a single value, "5/10", is an error as in Vixie cron). Values:
 * minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN..DEC,
 * day-of-week 0-7 (0 and 7 are Sunday) or SUN..SAT. Names are exactly three
 * letters, case-insensitive, and may be used in ranges ("MON-FRI"). A
 * day-of-week range ending in Sunday wraps to 7 ("FRI-SUN" = 5,6,0); any
 * other range with a > b is an error. A step n must be 1..field maximum.
 * Macros (case-insensitive, alone on the line): @yearly = @annually =
 * "0 0 1 1 *", @monthly = "0 0 1 * *", @weekly = "0 0 * * 0",
 * @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *".
 * Fields are separated by one or more spaces/tabs; leading and trailing
 * spaces/tabs are ignored; any other byte outside the syntax is an error.
 *
 * expr:   NUL-terminated, borrowed for the call only. Hostile input is fine:
 *         at most LMZ_CRON_MAX_LEN bytes are read before it is rejected.
 * out:    written only on success.
 * errmsg: NULL or LMZ_ERRMSG_LEN bytes; on error receives a message naming
 *         the field and the problem, e.g.
 *         "cron field 2 (hour): value 24 out of range 0-23".
 * Returns 0, or LMZ_EINVAL (core/err.h) for any malformed expression
 * (including NULL, empty, longer than LMZ_CRON_MAX_LEN bytes).
 * Thread: any; no allocation. */
int lmz_cron_parse(const char *expr, lmz_cron *out, char *errmsg);

/* Returns the first whole-minute time (Unix ms, UTC, seconds = 0) strictly
 * after `after_ms` that matches `c`, or -1 if there is none within
 * LMZ_CRON_HORIZON_DAYS days (e.g. "0 0 30 2 *"), if `c` is NULL or has an
 * empty field, or if the search would leave the int64 range.
 * Day matching follows Vixie cron: when both dom_restricted and
 * dow_restricted are set, a day matches if EITHER its day-of-month or its
 * weekday matches; otherwise both bit sets must match (an unrestricted field
 * normally has all bits set, so only the restricted one matters).
 * Negative (pre-1970) inputs and results are valid; the calendar is the
 * proleptic Gregorian one, computed without timegm/mktime or TZ.
 * Cost: O(days and months skipped), at most a few thousand cheap steps.
 * c is borrowed for the call. Thread: any. */
int64_t lmz_cron_next(const lmz_cron *c, int64_t after_ms);

#endif
