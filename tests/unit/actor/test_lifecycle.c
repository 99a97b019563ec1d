/* Actor lifecycle through the test kit: idle eviction (and what pins an
 * actor), deferred worker replies, alarms (cron, cancel, list, retries with
 * backoff, a failed alarm turn commits nothing). */
#include "lib/testlib.h"

#include <string.h>
#include <uv.h>

#include "core/err.h"
#include "lmz/testing.h"
#include "tests/unit/actor/lifecycle_app.h"

static int setup(void **state) {
  char err[256];
  struct lmz_testenv_opts o = {.idle_evict_ms = 10000};
  lmz_testenv *env = lmz_testenv_new(&o, err);
  assert_non_null(env);
  assert_int_equal(lmz_testenv_register(env, "life", lc_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "LIFE", "LifeDO", LMZ_NODE_DO), 0);
  assert_int_equal(lmz_testenv_bind(env, "LATER", "LaterWorker", LMZ_NODE_WORKER), 0);
  *state = env;
  return 0;
}

static int teardown(void **state) {
  lmz_testenv_free(*state);
  return 0;
}

#define ENV ((lmz_testenv *)*state)

static lmz_value *call(lmz_testenv *env, const char *inst, const char *m,
                       size_t n, lmz_value *const *args) {
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_call(env, "LIFE", inst, NULL, m, n, args, &r, &threw), 0);
  if (threw)
    fail_msg("%s threw %s", m, lmz_typeof(r) == LMZ_T_ERROR ? lmz_error_message(r) : "?");
  return r;
}

static double total(lmz_testenv *env, const char *inst) {
  return lmz_get_number(call(env, inst, "total", 0, NULL));
}

static void idle_actor_is_evicted_and_reactivated(void **state) {
  lmz_value *one = lmz_number(lmz_testenv_arena(ENV), 1);
  call(ENV, "e", "bump", 1, &one);
  const char *id1 = lmz_get_str(call(ENV, "e", "activation", 0, NULL), NULL);
  lmz_testenv_advance(ENV, 5000); /* not idle long enough */
  assert_string_equal(lmz_get_str(call(ENV, "e", "activation", 0, NULL), NULL), id1);
  struct lmz_testenv_stats st;
  lmz_testenv_advance(ENV, 10001);
  lmz_testenv_stats(ENV, &st);
  assert_int_equal(st.evictions, 1);
  assert_int_equal(st.active_actors, 0);
  /* a new activation, with its state intact */
  assert_string_not_equal(lmz_get_str(call(ENV, "e", "activation", 0, NULL), NULL), id1);
  assert_true(total(ENV, "e") == 1);
}

static void deferred_worker_reply_reaches_the_handler(void **state) {
  lmz_value *x = lmz_number(lmz_testenv_arena(ENV), 21);
  call(ENV, "d", "askLater", 1, &x);
  /* the handler ran after the worker's timer resolved: 0 + 42 */
  for (int i = 0; i < 1000 && total(ENV, "d") != 42; i++)
    uv_sleep(1); /* the worker's real 5 ms timer: bounded poll */
  assert_true(total(ENV, "d") == 42);
}

static void cron_alarm_repeats(void **state) {
  lmz_arena *a = lmz_testenv_arena(ENV);
  lmz_value *args[3] = {lmz_cstring(a, "cron"), lmz_cstring(a, "*/5 * * * *"),
                        lmz_cstring(a, "bump")};
  lmz_value *s = call(ENV, "c", "schedule", 3, args);
  assert_string_equal(lmz_get_str(lmz_object_getc(s, "type"), NULL), "cron");
  /* the fake clock starts at 00:00:00: fires at 00:05, 00:10, 00:15 */
  lmz_testenv_advance(ENV, 16 * 60 * 1000);
  assert_true(total(ENV, "c") == 3);
  lmz_value *list = call(ENV, "c", "alarms", 0, NULL);
  assert_int_equal(lmz_len(list), 1); /* still scheduled, at 00:20 */
  assert_true(lmz_get_number(lmz_object_getc(lmz_array_get(list, 0), "time")) ==
              lmz_testenv_now(ENV) + 4 * 60 * 1000);
}

static void cancel_and_list(void **state) {
  lmz_arena *a = lmz_testenv_arena(ENV);
  lmz_value *a1[4] = {lmz_cstring(a, "after"), lmz_number(a, 2000), lmz_cstring(a, "bump"),
                      lmz_cstring(a, "second")};
  lmz_value *a2[4] = {lmz_cstring(a, "after"), lmz_number(a, 1000), lmz_cstring(a, "bump"),
                      lmz_cstring(a, "first")};
  call(ENV, "x", "schedule", 4, a1);
  call(ENV, "x", "schedule", 4, a2);
  lmz_value *list = call(ENV, "x", "alarms", 0, NULL);
  assert_int_equal(lmz_len(list), 2); /* ordered by time */
  assert_string_equal(lmz_get_str(lmz_object_getc(lmz_array_get(list, 0), "id"), NULL), "first");
  lmz_value *id = lmz_cstring(a, "first");
  assert_true(lmz_get_bool(call(ENV, "x", "cancel", 1, &id)));
  assert_false(lmz_get_bool(call(ENV, "x", "cancel", 1, &id)));
  lmz_testenv_advance(ENV, 5000);
  assert_true(total(ENV, "x") == 1); /* only "second" ran */
  assert_int_equal(lmz_len(call(ENV, "x", "alarms", 0, NULL)), 0);
}

static void failing_alarm_retries_with_backoff_then_succeeds(void **state) {
  lmz_arena *a = lmz_testenv_arena(ENV);
  lmz_value *args[3] = {lmz_cstring(a, "after"), lmz_number(a, 1000), lmz_cstring(a, "flaky")};
  lc_fail_left = 2;
  call(ENV, "f", "schedule", 3, args);
  lmz_testenv_advance(ENV, 1000); /* first run: fails */
  assert_int_equal(lc_fail_left, 1);
  assert_true(total(ENV, "f") == 0); /* the failed turn's write was dropped */
  lmz_testenv_advance(ENV, 999);  /* retry 1 due 1 s after the failure */
  assert_int_equal(lc_fail_left, 1);
  lmz_testenv_advance(ENV, 1);
  assert_int_equal(lc_fail_left, 0);
  lmz_testenv_advance(ENV, 2000); /* retry 2 after 2 s: succeeds */
  assert_true(total(ENV, "f") == 1);
  assert_int_equal(lmz_len(call(ENV, "f", "alarms", 0, NULL)), 0);
}

static void alarm_is_dropped_after_max_retries(void **state) {
  lmz_arena *a = lmz_testenv_arena(ENV);
  lmz_value *args[3] = {lmz_cstring(a, "after"), lmz_number(a, 10), lmz_cstring(a, "flaky")};
  lc_fail_left = 100;
  call(ENV, "g", "schedule", 3, args);
  lmz_testenv_advance(ENV, 3600 * 1000);
  assert_int_equal(lc_fail_left, 100 - 4); /* 1 run + max_retries 3 */
  assert_int_equal(lmz_len(call(ENV, "g", "alarms", 0, NULL)), 0);
  lc_fail_left = 0;
}

static void invalid_cron_throws(void **state) {
  lmz_arena *a = lmz_testenv_arena(ENV);
  lmz_value *args[3] = {lmz_cstring(a, "cron"), lmz_cstring(a, "61 * * * *"),
                        lmz_cstring(a, "bump")};
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call(ENV, "LIFE", "i", NULL, "schedule", 3, args, &r, &threw), 0);
  assert_true(threw);
  assert_non_null(strstr(lmz_error_message(r), "Invalid cron expression"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(idle_actor_is_evicted_and_reactivated, setup, teardown),
      cmocka_unit_test_setup_teardown(deferred_worker_reply_reaches_the_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(cron_alarm_repeats, setup, teardown),
      cmocka_unit_test_setup_teardown(cancel_and_list, setup, teardown),
      cmocka_unit_test_setup_teardown(failing_alarm_retries_with_backoff_then_succeeds, setup, teardown),
      cmocka_unit_test_setup_teardown(alarm_is_dropped_after_max_retries, setup, teardown),
      cmocka_unit_test_setup_teardown(invalid_cron_throws, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
