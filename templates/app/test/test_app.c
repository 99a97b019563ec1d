/* Unit test of @NAME@ on lmz's test kit (lmz/testing.h): the real runtime in
 * this process, a real store in a temporary directory, a fake clock. */
#include <stdio.h>
#include <string.h>

#include "lmz/testing.h"

static int failures;

static void check(bool ok, const char *what) {
  printf("%s - %s\n", ok ? "ok" : "not ok", what);
  failures += !ok;
}

/* Calls method(arg) and returns the result, or NULL if it threw or failed. */
static lmz_value *call(lmz_testenv *env, const char *binding, const char *instance,
                       const char *method, lmz_value *arg, bool *threw) {
  lmz_value *res = NULL;
  int rv = lmz_testenv_call(env, binding, instance, NULL, method, arg ? 1 : 0,
                            &arg, &res, threw);
  if (rv)
    fprintf(stderr, "%s.%s: %s\n", binding, method, lmz_testenv_errmsg(env));
  return rv || *threw ? NULL : res;
}

static bool is_number(const lmz_value *v, double want) {
  return v && lmz_typeof(v) == LMZ_T_NUMBER && lmz_get_number(v) == want;
}

int main(void) {
  char err[256] = "";
  lmz_testenv *env = lmz_testenv_new(NULL, err);
  if (!env) {
    fprintf(stderr, "lmz_testenv_new: %s\n", err);
    return 1;
  }
  if (lmz_testenv_register(env, "@NAME@", lmz_module_init) ||
      lmz_testenv_bind(env, "COUNTER_DO", "CounterDO", LMZ_NODE_DO) ||
      lmz_testenv_bind(env, "HELLO_WORKER", "HelloWorker", LMZ_NODE_WORKER) ||
      lmz_testenv_set_var(env, "GREETING", "Hello")) {
    fprintf(stderr, "setup: %s\n", lmz_testenv_errmsg(env));
    lmz_testenv_free(env);
    return 1;
  }
  lmz_arena *a = lmz_testenv_arena(env);
  bool threw = false;

  check(is_number(call(env, "COUNTER_DO", "a", "increment", lmz_number(a, 5), &threw), 5),
        "increment(5) on a new counter gives 5");
  check(is_number(call(env, "COUNTER_DO", "a", "increment", NULL, &threw), 6),
        "increment() adds 1");
  check(is_number(call(env, "COUNTER_DO", "b", "get", NULL, &threw), 0),
        "another instance has its own total");
  check(is_number(lmz_testenv_kv_get(env, "COUNTER_DO", "a", "total"), 6),
        "the total is in storage");
  check(!call(env, "COUNTER_DO", "a", "increment", lmz_cstring(a, "x"), &threw) && threw,
        "increment(\"x\") throws");

  lmz_value *greeting = call(env, "HELLO_WORKER", NULL, "hello", lmz_cstring(a, "Ada"), &threw);
  const char *s = greeting && lmz_typeof(greeting) == LMZ_T_STRING
                      ? lmz_get_str(greeting, NULL) : NULL;
  check(s && !strcmp(s, "Hello, Ada!"), "hello(\"Ada\") uses the GREETING var");

  lmz_testenv_free(env);
  printf("%s\n", failures ? "FAILED" : "all passed");
  return failures ? 1 : 0;
}
