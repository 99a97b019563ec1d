/* Unit tests for gateway/ratelimit.c: per-key token buckets on fake time
 * (every call passes the clock; no wall clock anywhere). Exact times: a
 * bucket of 60 a minute gives a token back every 1000 ms. */
#include "lib/testlib.h"

#include <string.h>

#include "core/err.h"
#include "gateway/ratelimit.h"

#define T0 1700000000000ull /* some wall-clock-like ms value */

static int take(lmz_rate *r, const char *key, uint64_t now, uint32_t *retry) {
  return lmz_rate_take(r, key, strlen(key), now, retry);
}

/* burst requests pass at once, the next is refused with Retry-After. */
static void test_burst_then_refuse(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 60, .burst = 3});
  for (int i = 0; i < 3; i++)
    assert_int_equal(take(&r, "alice", T0, NULL), 0);
  uint32_t retry = 0;
  assert_int_equal(take(&r, "alice", T0, &retry), LMZ_EOVERLOAD);
  assert_int_equal(retry, 1);
  /* another subject has its own bucket */
  assert_int_equal(take(&r, "bob", T0, NULL), 0);
  assert_int_equal(r.stats.allowed, 4);
  assert_int_equal(r.stats.limited, 1);
  assert_int_equal(r.stats.keys, 2);
  lmz_rate_free(&r);
}

/* 60 a minute: one token back at exactly +1000 ms, not at +999. */
static void test_refill_exact(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 60, .burst = 1});
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  uint32_t retry = 0;
  assert_int_equal(take(&r, "s", T0 + 999, &retry), LMZ_EOVERLOAD);
  assert_int_equal(retry, 1);
  assert_int_equal(take(&r, "s", T0 + 1000, NULL), 0);
  assert_int_equal(take(&r, "s", T0 + 1000, NULL), LMZ_EOVERLOAD);
  /* a long pause fills the bucket to burst, never more */
  assert_int_equal(take(&r, "s", T0 + 3600 * 1000, NULL), 0);
  assert_int_equal(take(&r, "s", T0 + 3600 * 1000, NULL), LMZ_EOVERLOAD);
  lmz_rate_free(&r);
}

/* Retry-After is the whole seconds until the next token: 6 a minute is one
 * every 10 s; after 2.5 s, 7.5 s are left -> 8. */
static void test_retry_after(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 6, .burst = 2});
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  uint32_t retry = 0;
  assert_int_equal(take(&r, "s", T0, &retry), LMZ_EOVERLOAD);
  assert_int_equal(retry, 10);
  assert_int_equal(take(&r, "s", T0 + 2500, &retry), LMZ_EOVERLOAD);
  assert_int_equal(retry, 8);
  assert_int_equal(take(&r, "s", T0 + 10000, NULL), 0);
  /* 1 a minute: 60 s */
  lmz_rate_free(&r);
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 1, .burst = 1});
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(take(&r, "s", T0, &retry), LMZ_EOVERLOAD);
  assert_int_equal(retry, 60);
  lmz_rate_free(&r);
}

/* A clock that goes back refills nothing (and does not underflow); huge
 * jumps do not overflow the refill. */
static void test_clock_edges(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = LMZ_RATE_MAX_PER_MINUTE,
                                            .burst = 2});
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(take(&r, "s", T0 - 5000, NULL), LMZ_EOVERLOAD);
  assert_int_equal(take(&r, "s", UINT64_MAX, NULL), 0);
  assert_int_equal(take(&r, "s", UINT64_MAX, NULL), 0);
  assert_int_equal(take(&r, "s", UINT64_MAX, NULL), LMZ_EOVERLOAD);
  lmz_rate_free(&r);
}

/* Off (per_minute 0): everything passes and nothing is stored. Burst 0
 * means a minute's worth. */
static void test_off_and_defaults(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){0});
  assert_false(lmz_rate_enabled(&r));
  for (int i = 0; i < 1000; i++)
    assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(r.stats.keys, 0);
  lmz_rate_free(&r);
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 5});
  for (int i = 0; i < 5; i++)
    assert_int_equal(take(&r, "s", T0, NULL), 0);
  assert_int_equal(take(&r, "s", T0, NULL), LMZ_EOVERLOAD);
  lmz_rate_free(&r);
}

/* A full table: full buckets are swept (once a second at most); buckets in
 * use are kept (their subjects stay limited); a new key that finds no room
 * passes unmetered and is counted. */
static void test_bounded_table(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 60, .burst = 1,
                                            .max_keys = 4});
  char k[16];
  for (int i = 0; i < 4; i++) {
    snprintf(k, sizeof k, "k%d", i);
    assert_int_equal(take(&r, k, T0, NULL), 0); /* each bucket now empty */
  }
  assert_int_equal(r.stats.keys, 4);
  /* all four in use: a fifth key is let through, not stored */
  assert_int_equal(take(&r, "new", T0, NULL), 0);
  assert_int_equal(take(&r, "new", T0, NULL), 0);
  assert_int_equal(r.stats.untracked, 2);
  assert_int_equal(r.stats.keys, 4);
  assert_int_equal(take(&r, "k0", T0, NULL), LMZ_EOVERLOAD); /* still limited */
  /* 1 s later every bucket is full again: the sweep frees them all */
  assert_int_equal(take(&r, "new", T0 + 1000, NULL), 0);
  assert_int_equal(r.stats.swept, 4);
  assert_int_equal(r.stats.keys, 1);
  assert_int_equal(take(&r, "new", T0 + 1000, NULL), LMZ_EOVERLOAD);
  lmz_rate_free(&r);
}

/* Keys longer than the cap share the bucket of their first cap bytes; many
 * distinct keys stay within max_keys. */
static void test_long_and_many_keys(void **state) {
  (void)state;
  lmz_rate r;
  lmz_rate_init(&r, &(struct lmz_rate_opts){.per_minute = 60, .burst = 1,
                                            .max_keys = 1000});
  char a[LMZ_RATE_MAX_KEY_LEN + 10], b[LMZ_RATE_MAX_KEY_LEN + 10];
  memset(a, 'x', sizeof a);
  memset(b, 'x', sizeof b);
  b[sizeof b - 1] = 'y';
  assert_int_equal(lmz_rate_take(&r, a, sizeof a, T0, NULL), 0);
  assert_int_equal(lmz_rate_take(&r, b, sizeof b, T0, NULL), LMZ_EOVERLOAD);
  char k[32];
  for (int i = 0; i < 100000; i++) {
    snprintf(k, sizeof k, "sub-%d", i);
    take(&r, k, T0 + (uint64_t)i, NULL);
  }
  assert_true(r.stats.keys <= 1000);
  lmz_rate_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_burst_then_refuse),
      cmocka_unit_test(test_refill_exact),
      cmocka_unit_test(test_retry_after),
      cmocka_unit_test(test_clock_edges),
      cmocka_unit_test(test_off_and_defaults),
      cmocka_unit_test(test_bounded_table),
      cmocka_unit_test(test_long_and_many_keys),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
