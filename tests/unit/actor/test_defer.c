/* tests/unit/actor/test_defer.c - deferred replies (lmz_defer) whose method
 * then throws: the call is answered with the error at once, the actor is
 * not pinned (it is evicted when idle), and resolving the handle later only
 * frees it (before the fix: n_deferred never came down, so the actor stayed
 * active forever, and the later resolve wrote a reply into a freed message).
 * The testing kit (include/lmz/testing.h) on its fake clock. */
#include "lib/testlib.h"

#include <string.h>

#include "lmz/testing.h"

static lmz_deferred *held;

static int defer_then_throw(lmz_ctx *ctx, lmz_value *const *a, size_t n,
                            lmz_value **r) {
  (void)a, (void)n, (void)r;
  held = lmz_defer(ctx);
  if (!held)
    return lmz_throwf(ctx, "Error", "out of memory");
  return lmz_throwf(ctx, "Error", "changed my mind");
}

static const lmz_method methods[] = {LMZ_MESH("deferThenThrow", defer_then_throw, NULL),
                                     LMZ_END};

static int app_init(lmz_registry *r) { return lmz_register_do(r, "DeferDO", methods, NULL); }

static lmz_testenv *env_new(void) {
  char err[256] = "";
  struct lmz_testenv_opts o = {.idle_evict_ms = 1000};
  lmz_testenv *env = lmz_testenv_new(&o, err);
  assert_non_null(env);
  assert_int_equal(lmz_testenv_register(env, "defer", app_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "DEFER_DO", "DeferDO", LMZ_NODE_DO), 0);
  return env;
}

static void test_throw_after_defer_answers_and_unpins(void **state) {
  (void)state;
  lmz_testenv *env = env_new();
  lmz_value *res = NULL;
  bool threw = false;
  held = NULL;
  assert_int_equal(lmz_testenv_call(env, "DEFER_DO", "d1", NULL, "deferThenThrow", 0,
                                    NULL, &res, &threw),
                   0);
  assert_non_null(held);
  assert_true(threw);
  assert_non_null(res);
  assert_string_equal(lmz_error_message(res), "changed my mind");

  struct lmz_testenv_stats st;
  lmz_testenv_advance(env, 5000); /* idle: evicted (not pinned by the handle) */
  lmz_testenv_stats(env, &st);
  assert_int_equal(st.evictions, 1);
  assert_int_equal(st.active_actors, 0);

  /* the handle is still the caller's to settle: it only frees it now */
  lmz_deferred_resolve(held, lmz_number(lmz_testenv_arena(env), 1));
  lmz_testenv_run(env);
  lmz_testenv_free(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_throw_after_defer_answers_and_unpins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
