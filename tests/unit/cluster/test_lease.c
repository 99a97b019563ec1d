/* tests/unit/cluster/test_lease.c - lease arithmetic with injected times,
 * including a randomized check of the safety argument in lease.h. */
#include "lib/testlib.h"

#include <stdlib.h>

#include "cluster/lease.h"
#include "core/err.h"

static const struct lmz_lease_config cfg = {3000, 300};

static void test_config(void **state) {
  (void)state;
  assert_int_equal(lmz_lease_config_check(&cfg), 0);
  struct lmz_lease_config c = {3000, 0};
  assert_int_equal(lmz_lease_config_check(&c), LMZ_EINVAL);
  c = (struct lmz_lease_config){3000, 1500};
  assert_int_equal(lmz_lease_config_check(&c), LMZ_EINVAL);
  c = (struct lmz_lease_config){LMZ_LEASE_MIN_MS - 1, 10};
  assert_int_equal(lmz_lease_config_check(&c), LMZ_EINVAL);
  c = (struct lmz_lease_config){LMZ_LEASE_MAX_MS + 1, 10};
  assert_int_equal(lmz_lease_config_check(&c), LMZ_EINVAL);
  assert_int_equal(lmz_lease_config_check(NULL), LMZ_EINVAL);
}

static void test_holder(void **state) {
  (void)state;
  struct lmz_lease_holder h;
  lmz_lease_holder_init(&h);
  assert_false(lmz_lease_holder_is_valid(&h, 0));
  assert_true(lmz_lease_holder_should_renew(&h, &cfg, 0));
  uint64_t t1 = lmz_lease_holder_begin(&h, 1000);
  assert_int_equal(t1, 1000);
  assert_false(lmz_lease_holder_should_renew(&h, &cfg, 1500));
  /* the reply arrives late; the lease still counts from t_req */
  lmz_lease_holder_granted(&h, &cfg, t1, 1);
  assert_true(lmz_lease_holder_is_valid(&h, 3699));
  assert_false(lmz_lease_holder_is_valid(&h, 3700)); /* 1000 + 3000 - 300 */
  assert_int_equal(lmz_lease_holder_remaining_ms(&h, 3000), 700);
  assert_int_equal(lmz_lease_holder_remaining_ms(&h, 5000), 0);
  assert_false(lmz_lease_holder_should_renew(&h, &cfg, 1999));
  assert_true(lmz_lease_holder_should_renew(&h, &cfg, 2000)); /* L/3 */
  uint64_t t2 = lmz_lease_holder_begin(&h, 2000);
  uint64_t t3 = lmz_lease_holder_begin(&h, 3000); /* t2 seemed lost */
  lmz_lease_holder_granted(&h, &cfg, t3, 3);
  assert_int_equal(h.valid_until_ms, 5700);
  /* the late grant of t2 must not shorten the lease */
  lmz_lease_holder_granted(&h, &cfg, t2, 2);
  assert_int_equal(h.valid_until_ms, 5700);
  assert_int_equal(h.granted_seq, 3);
  /* a failure of the newest request allows an immediate retry */
  uint64_t t4 = lmz_lease_holder_begin(&h, 3100);
  assert_false(lmz_lease_holder_should_renew(&h, &cfg, 3200));
  lmz_lease_holder_failed(&h, t4);
  assert_true(lmz_lease_holder_should_renew(&h, &cfg, 3200));
  /* fenced: the lease ends at once */
  lmz_lease_holder_revoke(&h);
  assert_false(lmz_lease_holder_is_valid(&h, 3200));
  assert_true(lmz_lease_holder_should_renew(&h, &cfg, 3200));
  /* saturation: a t_req near the end of time never wraps */
  lmz_lease_holder_granted(&h, &cfg, UINT64_MAX - 5, 4);
  assert_int_equal(h.valid_until_ms, UINT64_MAX);
}

static void test_grantor(void **state) {
  (void)state;
  assert_int_equal(lmz_lease_expiry_ms(1000, 3000, 300), 4300);
  assert_false(lmz_lease_is_surely_expired(1000, 3000, 300, 4299));
  assert_true(lmz_lease_is_surely_expired(1000, 3000, 300, 4300));
  assert_true(lmz_lease_is_live(1000, 3000, 3999));
  assert_false(lmz_lease_is_live(1000, 3000, 4000));
  /* renewals current: heard within L/3 + L/6 = L/2 */
  assert_true(lmz_lease_is_current(1000, 3000, 2499));
  assert_false(lmz_lease_is_current(1000, 3000, 2500));
  assert_true(lmz_lease_is_current(UINT64_MAX - 10, 3000, UINT64_MAX - 1));
  assert_int_equal(lmz_lease_expiry_ms(UINT64_MAX - 10, 3000, 300),
                   UINT64_MAX);
  assert_false(
      lmz_lease_is_surely_expired(UINT64_MAX - 10, 3000, 300, UINT64_MAX));
}

/* The safety argument of lease.h, checked numerically: with clock rates
 * within rho <= margin / L of real time and the leader applying the renewal
 * no earlier than the holder sent it, the holder's last valid instant is
 * before the leader's first "surely expired" instant (in real time). */
static void test_safety_randomized(void **state) {
  (void)state;
  srand(12345);
  double rho = (double)cfg.margin_ms / cfg.duration_ms;
  for (int i = 0; i < 100000; i++) {
    double rh = 1 - rho + 2 * rho * rand() / RAND_MAX; /* holder rate */
    double rl = 1 - rho + 2 * rho * rand() / RAND_MAX; /* leader rate */
    double r_req = rand() % 100000;                   /* real ms */
    double r_apply = r_req + rand() % 5000;           /* >= r_req */
    /* holder clock at t_req, leader clock at apply (arbitrary offsets) */
    uint64_t h0 = (uint64_t)(rand() % 1000000), l0 = (uint64_t)(rand() % 1000000);
    struct lmz_lease_holder h;
    lmz_lease_holder_init(&h);
    lmz_lease_holder_granted(&h, &cfg, h0, 1);
    double r_stop = r_req + (double)(h.valid_until_ms - h0) / rh;
    uint64_t exp = lmz_lease_expiry_ms(l0, cfg.duration_ms, cfg.margin_ms);
    double r_take = r_apply + (double)(exp - l0) / rl;
    assert_true(r_stop <= r_take + 1e-6);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config),
      cmocka_unit_test(test_holder),
      cmocka_unit_test(test_grantor),
      cmocka_unit_test(test_safety_randomized),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
