/* @NAME@ - an lmz application: a shared object that lmzd loads (dlopen).
 *
 * COUNTER_DO (class CounterDO), a durable object: one instance per name,
 * one turn at a time, its storage committed with each turn.
 *   increment(by = 1) -> the new total (persisted)     get() -> the total
 * HELLO_WORKER (class HelloWorker), a stateless worker:
 *   hello(name) -> "<GREETING>, <name>!" (GREETING from app.jsonc's "vars")
 *
 * The lmz_* functions are provided by lmzd at load time (and by the
 * lmz-testing library in the unit test): the module links no lmz library. */
#include <stdio.h>

#include "lmz/lmz.h"

static double total_of(lmz_ctx *ctx) {
  lmz_value *t = lmz_kv_get(ctx, "total");
  return t && lmz_typeof(t) == LMZ_T_NUMBER ? lmz_get_number(t) : 0;
}

static int counter_increment(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                             lmz_value **result) {
  if (nargs > 0 && lmz_typeof(args[0]) != LMZ_T_NUMBER)
    return lmz_throwf(ctx, "TypeError", "increment(by): by must be a number");
  double by = nargs > 0 ? lmz_get_number(args[0]) : 1;
  lmz_value *total = lmz_number(lmz_turn_arena(ctx), total_of(ctx) + by);
  int rv = lmz_kv_put(ctx, "total", total); /* committed when the turn ends */
  if (rv)
    return rv;
  *result = total;
  return 0;
}

static int counter_get(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                       lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_number(lmz_turn_arena(ctx), total_of(ctx));
  return 0;
}

static int hello(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                 lmz_value **result) {
  if (nargs < 1 || lmz_typeof(args[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "hello(name): name must be a string");
  const char *greeting = lmz_var(ctx, "GREETING");
  char text[256];
  int n = snprintf(text, sizeof text, "%s, %s!", greeting ? greeting : "Hello",
                   lmz_get_str(args[0], NULL));
  if (n < 0 || (size_t)n >= sizeof text)
    return lmz_throwf(ctx, "RangeError", "hello(name): name too long");
  *result = lmz_cstring(lmz_turn_arena(ctx), text);
  return 0;
}

/* LMZ_MESH: callable by other actors, `lmz call` and browser clients. */
static const lmz_method counter_methods[] = {
    LMZ_MESH("increment", counter_increment, NULL),
    LMZ_MESH("get", counter_get, NULL),
    LMZ_END,
};

static const lmz_method hello_methods[] = {
    LMZ_MESH("hello", hello, NULL),
    LMZ_END,
};

LMZ_EXPORT int lmz_module_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "CounterDO", counter_methods, NULL);
  return rv ? rv : lmz_register_worker(r, "HelloWorker", hello_methods, NULL);
}
