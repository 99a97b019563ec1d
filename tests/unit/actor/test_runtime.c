/* Runtime black-box cases (lumenize-behaviour.md 7.1, node side) through the
 * test kit: call context, access control, target validation, call()
 * handlers, continuations, turn atomicity, output gate, alarms. */
#include "lib/testlib.h"

#include <string.h>

#include "core/err.h"
#include "lmz/testing.h"
#include "examples/counter/counter.c"

/* ---- a test application -------------------------------------------------- */

static int start_calls;

static int t_add(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += lmz_typeof(a[i]) == LMZ_T_NUMBER ? lmz_get_number(a[i]) : 0;
  *r = lmz_number(lmz_turn_arena(ctx), s);
  return 0;
}

/* writes, then throws: nothing may be committed */
static int t_write_then_fail(lmz_ctx *ctx, lmz_value *const *a, size_t n,
                             lmz_value **r) {
  (void)a, (void)n, (void)r;
  lmz_kv_put(ctx, "x", lmz_cstring(lmz_turn_arena(ctx), "should not persist"));
  lmz_kv_put(ctx, "y", lmz_number(lmz_turn_arena(ctx), 1));
  return lmz_throwf(ctx, "Error", "boom after writing");
}

static int t_kv(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  /* put(k, v) then read back through the overlay */
  if (n < 2 || lmz_typeof(a[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "kv(key, value)");
  int rv = lmz_kv_put(ctx, lmz_get_str(a[0], NULL), a[1]);
  if (rv)
    return rv;
  *r = lmz_kv_get(ctx, lmz_get_str(a[0], NULL));
  return 0;
}

static int t_list(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  struct lmz_kv_list_opts o = {0};
  if (n > 0 && lmz_typeof(a[0]) == LMZ_T_STRING)
    o.prefix = lmz_get_str(a[0], NULL);
  if (n > 1 && lmz_typeof(a[1]) == LMZ_T_NUMBER)
    o.limit = (size_t)lmz_get_number(a[1]);
  if (n > 2 && lmz_typeof(a[2]) == LMZ_T_BOOL)
    o.reverse = lmz_get_bool(a[2]);
  return lmz_kv_list(ctx, &o, r);
}

static int t_del(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  return n ? lmz_kv_delete(ctx, lmz_get_str(a[0], NULL)) : 0;
}

static int t_profile(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_value *o = lmz_object(ar), *inner = lmz_object(ar);
  lmz_object_setc(inner, "name", lmz_cstring(ar, "ada"));
  lmz_object_setc(o, "user", inner);
  *r = o;
  return 0;
}

/* calls COUNTER_DO with handler variants; args: instance, mode */
static int t_call_with(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  lmz_arena *ar = lmz_turn_arena(ctx);
  const char *mode = n > 1 ? lmz_get_str(a[1], NULL) : "result";
  lmz_ctn *remote = !strcmp(mode, "fail") || !strcmp(mode, "erronly-fail")
                        ? lmz_ctn_call(lmz_ctn_new(ctx), "fail", 1, lmz_cstring(ar, "nope"))
                        : lmz_ctn_call(lmz_ctn_new(ctx), "whoami", 0);
  lmz_ctn *handler;
  if (!strcmp(mode, "append")) /* last-argument convention */
    handler = lmz_ctn_call(lmz_ctn_new(ctx), "record", 1, lmz_cstring(ar, "tag"));
  else
    handler = lmz_ctn_call(lmz_ctn_new(ctx), "record", 2, lmz_ctn_result(ctx),
                           lmz_cstring(ar, "tag"));
  lmz_value *st = lmz_object(ar);
  lmz_object_setc(st, "fromCaller", lmz_cstring(ar, "yes"));
  lmz_object_setc(lmz_state(ctx), "captured", lmz_cstring(ar, "at-call"));
  struct lmz_call_opts o = {.state = st,
                            .on_error_only = !strncmp(mode, "erronly", 7),
                            .new_chain = !strcmp(mode, "newchain")};
  int rv = lmz_call(ctx, "COUNTER_DO", lmz_get_str(a[0], NULL), remote, handler, &o);
  *r = lmz_cstring(ar, "sent");
  return rv;
}

static int t_record(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_value *arr = lmz_array(ar, n);
  for (size_t i = 0; i < n; i++)
    lmz_array_push(arr, a[i]);
  lmz_value *o = lmz_object(ar);
  lmz_object_setc(o, "args", arr);
  lmz_object_setc(o, "ctx", lmz_call_context_value(ctx));
  return lmz_kv_put(ctx, "recorded", o);
}

static int t_bad_target(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  const char *b = lmz_get_str(a[0], NULL);
  const char *inst = n > 1 && lmz_typeof(a[1]) == LMZ_T_STRING ? lmz_get_str(a[1], NULL) : NULL;
  return lmz_call(ctx, b, inst, lmz_ctn_call(lmz_ctn_new(ctx), "echo", 0), NULL, NULL);
}

static int before_call_hits;
static int t_before_call(lmz_ctx *ctx) {
  before_call_hits++;
  lmz_value *deny = lmz_object_getc(lmz_state(ctx), "deny");
  if (deny && lmz_typeof(deny) == LMZ_T_BOOL && lmz_get_bool(deny)) {
    lmz_value *e = lmz_error(lmz_turn_arena(ctx), "AccessError", "denied by onBeforeCall");
    lmz_error_set_prop(e, "status", 6, lmz_number(lmz_turn_arena(ctx), 403));
    return lmz_throw(ctx, e);
  }
  lmz_object_setc(lmz_state(ctx), "seenByHook", lmz_bool(true));
  return 0;
}

static int t_state(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  *r = lmz_state(ctx);
  return 0;
}

static const lmz_method test_methods[] = {
    LMZ_MESH("add", t_add, NULL),
    LMZ_MESH("writeThenFail", t_write_then_fail, NULL),
    LMZ_MESH("kv", t_kv, NULL),
    LMZ_MESH("list", t_list, NULL),
    LMZ_MESH("del", t_del, NULL),
    LMZ_MESH("profile", t_profile, NULL),
    LMZ_MESH("callWith", t_call_with, NULL),
    LMZ_LOCAL("record", t_record),
    LMZ_MESH("badTarget", t_bad_target, NULL),
    LMZ_MESH("state", t_state, NULL),
    LMZ_MESH("admin.reset", t_add, NULL),
    LMZ_END,
};

static int fail_start(lmz_ctx *ctx) {
  start_calls++;
  return lmz_throwf(ctx, "StartError", "cannot start");
}

static const lmz_method broken_methods[] = {LMZ_MESH("add", t_add, NULL), LMZ_END};

static int test_init(lmz_registry *r) {
  static const struct lmz_class_opts opts = {.on_before_call = t_before_call};
  static const struct lmz_class_opts broken = {.on_start = fail_start};
  int rv = lmz_register_do(r, "TestDO", test_methods, &opts);
  if (!rv)
    rv = lmz_register_do(r, "BrokenDO", broken_methods, &broken);
  return rv;
}

/* ---- fixture ------------------------------------------------------------- */

static int setup(void **state) {
  char err[256];
  lmz_testenv *env = lmz_testenv_new(NULL, err);
  if (!env) {
    print_error("testenv: %s\n", err);
    return -1;
  }
  assert_int_equal(lmz_testenv_register(env, "counter", lmz_module_init), 0);
  assert_int_equal(lmz_testenv_register(env, "test", test_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "COUNTER_DO", "CounterDO", LMZ_NODE_DO), 0);
  assert_int_equal(lmz_testenv_bind(env, "ECHO_WORKER", "EchoWorker", LMZ_NODE_WORKER), 0);
  assert_int_equal(lmz_testenv_bind(env, "TEST_DO", "TestDO", LMZ_NODE_DO), 0);
  assert_int_equal(lmz_testenv_bind(env, "BROKEN_DO", "BrokenDO", LMZ_NODE_DO), 0);
  *state = env;
  return 0;
}

static int teardown(void **state) {
  lmz_testenv_free(*state);
  return 0;
}

#define ENV ((lmz_testenv *)*state)
#define A(env) lmz_testenv_arena(env)

static lmz_value *call_ok(lmz_testenv *env, const char *b, const char *i,
                          const char *m, size_t n, lmz_value *const *args) {
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_call(env, b, i, NULL, m, n, args, &r, &threw), 0);
  if (threw)
    fail_msg("%s.%s threw: %s", b, m,
             lmz_typeof(r) == LMZ_T_ERROR ? lmz_error_message(r) : "(non-error)");
  return r;
}

static lmz_value *call_err(lmz_testenv *env, const struct lmz_test_caller *c,
                           const char *b, const char *i, const char *m,
                           size_t n, lmz_value *const *args) {
  lmz_value *r = NULL;
  bool threw = false;
  assert_int_equal(lmz_testenv_call(env, b, i, c, m, n, args, &r, &threw), 0);
  assert_true(threw);
  assert_int_equal(lmz_typeof(r), LMZ_T_ERROR);
  return r;
}

static double num(const lmz_value *v) {
  assert_int_equal(lmz_typeof(v), LMZ_T_NUMBER);
  return lmz_get_number(v);
}

static const char *str(const lmz_value *v) {
  assert_int_equal(lmz_typeof(v), LMZ_T_STRING);
  return lmz_get_str(v, NULL);
}

/* ---- tests --------------------------------------------------------------- */

static void increment_persists(void **state) {
  lmz_value *five = lmz_number(A(ENV), 5);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "a", "increment", 1, &five)) == 5);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "a", "increment", 1, &five)) == 10);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "b", "get", 0, NULL)) == 0);
  assert_true(num(lmz_testenv_kv_get(ENV, "COUNTER_DO", "a", "total")) == 10);
}

static void echo_returns_rich_values_unchanged(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *m = lmz_map(a), *o = lmz_object(a);
  lmz_map_set(m, o, lmz_date(a, 1234));
  lmz_object_setc(o, "self", o); /* a cycle */
  lmz_object_setc(o, "m", m);
  lmz_value *r = call_ok(ENV, "COUNTER_DO", "a", "echo", 1, &o);
  assert_true(lmz_value_equal(r, o));
  assert_true(lmz_object_getc(r, "self") == r); /* identity survived */
}

static void non_mesh_method_is_refused(void **state) {
  lmz_value *e = call_err(ENV, NULL, "COUNTER_DO", "a", "secret", 0, NULL);
  assert_string_equal(lmz_error_message(e),
                      "Method 'secret' is not mesh-callable. Add the @mesh "
                      "decorator to allow remote calls.");
  e = call_err(ENV, NULL, "COUNTER_DO", "a", "doesNotExist", 0, NULL);
  assert_non_null(strstr(lmz_error_message(e), "is not mesh-callable"));
}

static void chain_without_apply_does_not_bypass(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *chain = lmz_array(a, 1), *get = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, "secret"));
  lmz_array_push(chain, get);
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call_chain(ENV, "COUNTER_DO", "a", NULL, chain, &r, &threw), 0);
  assert_true(threw);
  assert_non_null(strstr(lmz_error_message(r), "not mesh-callable"));
}

static void guard_refuses_and_allows(void **state) {
  lmz_value *e = call_err(ENV, NULL, "COUNTER_DO", "a", "guarded", 0, NULL);
  assert_string_equal(lmz_error_message(e), "Guard: valid token required");
  lmz_value *st = lmz_object(A(ENV));
  lmz_object_setc(st, "token", lmz_cstring(A(ENV), "letmein"));
  lmz_identity id = {LMZ_NODE_CLI, "lmz-test", NULL};
  struct lmz_test_caller c = {&id, 1, NULL, st};
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call(ENV, "COUNTER_DO", "a", &c, "guarded", 0, NULL, &r, &threw), 0);
  assert_false(threw);
  assert_string_equal(str(r), "ok");
}

static void errors_keep_name_props_and_cause(void **state) {
  lmz_value *msg = lmz_cstring(A(ENV), "bad thing");
  lmz_value *e = call_err(ENV, NULL, "COUNTER_DO", "a", "fail", 1, &msg);
  assert_string_equal(lmz_error_name(e), "CounterError");
  assert_string_equal(lmz_error_message(e), "bad thing");
  assert_string_equal(str(lmz_error_prop(e, "code")), "E_COUNTER");
  lmz_value *cause = lmz_error_cause(e);
  assert_non_null(cause);
  assert_string_equal(lmz_error_message(cause), "root cause");
}

static void on_before_call_runs_first_and_can_refuse(void **state) {
  lmz_arena *a = A(ENV);
  int before = before_call_hits;
  lmz_value *one = lmz_number(a, 1);
  call_ok(ENV, "TEST_DO", "t", "add", 1, &one);
  assert_int_equal(before_call_hits, before + 1);
  /* the hook's state change is visible to the method */
  lmz_value *st = call_ok(ENV, "TEST_DO", "t", "state", 0, NULL);
  assert_true(lmz_get_bool(lmz_object_getc(st, "seenByHook")));
  /* the hook refuses before the exposure check: even a local method name */
  lmz_value *deny = lmz_object(a);
  lmz_object_setc(deny, "deny", lmz_bool(true));
  lmz_identity id = {LMZ_NODE_CLI, "lmz-test", NULL};
  struct lmz_test_caller c = {&id, 1, NULL, deny};
  lmz_value *e = call_err(ENV, &c, "TEST_DO", "t", "record", 0, NULL);
  assert_string_equal(lmz_error_name(e), "AccessError");
  assert_true(num(lmz_error_prop(e, "status")) == 403);
}

static void call_context_is_what_the_caller_sent(void **state) {
  lmz_arena *a = A(ENV);
  lmz_identity chain[2] = {{LMZ_NODE_CLIENT, "LUMENIZE_CLIENT_GATEWAY", "alice.tab1"},
                           {LMZ_NODE_DO, "DOCUMENT_DO", "doc-1"}};
  lmz_value *auth = lmz_object(a), *st = lmz_object(a);
  lmz_object_setc(auth, "sub", lmz_cstring(a, "alice"));
  lmz_object_setc(st, "k", lmz_number(a, 1));
  struct lmz_test_caller c = {chain, 2, auth, st};
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call(ENV, "COUNTER_DO", "a", &c, "whoami", 0, NULL, &r, &threw), 0);
  assert_false(threw);
  lmz_value *cc = lmz_object_getc(r, "callChain");
  assert_int_equal(lmz_len(cc), 2);
  lmz_value *last = lmz_array_get(cc, 1);
  assert_string_equal(str(lmz_object_getc(last, "type")), "LumenizeDO");
  assert_string_equal(str(lmz_object_getc(last, "instanceName")), "doc-1");
  assert_string_equal(str(lmz_object_getc(lmz_array_get(cc, 0), "type")), "LumenizeClient");
  assert_string_equal(str(lmz_object_getc(lmz_object_getc(r, "originAuth"), "sub")), "alice");
  assert_true(num(lmz_object_getc(lmz_object_getc(r, "state"), "k")) == 1);
}

static void handler_gets_result_at_placeholder_with_captured_context(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "callee"), lmz_cstring(a, "result")};
  call_ok(ENV, "TEST_DO", "h1", "callWith", 2, args);
  lmz_value *rec = lmz_testenv_kv_get(ENV, "TEST_DO", "h1", "recorded");
  assert_non_null(rec);
  lmz_value *got = lmz_object_getc(rec, "args");
  assert_int_equal(lmz_len(got), 2);
  assert_string_equal(str(lmz_array_get(got, 1)), "tag");
  /* the result is the callee's whoami: chain = [cli, TEST_DO/h1] */
  lmz_value *who = lmz_array_get(got, 0);
  lmz_value *cc = lmz_object_getc(who, "callChain");
  assert_int_equal(lmz_len(cc), 2);
  assert_string_equal(str(lmz_object_getc(lmz_array_get(cc, 1), "instanceName")), "h1");
  /* state: inherited (+ hook's flag) shallow-merged with the call's option */
  lmz_value *st = lmz_object_getc(who, "state");
  assert_string_equal(str(lmz_object_getc(st, "fromCaller")), "yes");
  assert_string_equal(str(lmz_object_getc(st, "captured")), "at-call");
  /* the handler ran under the caller's context captured at call time */
  lmz_value *hctx = lmz_object_getc(rec, "ctx");
  assert_int_equal(lmz_len(lmz_object_getc(hctx, "callChain")), 1);
  assert_string_equal(str(lmz_object_getc(lmz_object_getc(hctx, "state"), "captured")), "at-call");
}

static void handler_without_placeholder_gets_result_appended(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "callee"), lmz_cstring(a, "append")};
  call_ok(ENV, "TEST_DO", "h2", "callWith", 2, args);
  lmz_value *got = lmz_object_getc(lmz_testenv_kv_get(ENV, "TEST_DO", "h2", "recorded"), "args");
  assert_int_equal(lmz_len(got), 2);
  assert_string_equal(str(lmz_array_get(got, 0)), "tag");
  assert_int_equal(lmz_typeof(lmz_array_get(got, 1)), LMZ_T_OBJECT);
}

static void handler_receives_remote_error(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "callee"), lmz_cstring(a, "fail")};
  call_ok(ENV, "TEST_DO", "h3", "callWith", 2, args);
  lmz_value *got = lmz_object_getc(lmz_testenv_kv_get(ENV, "TEST_DO", "h3", "recorded"), "args");
  lmz_value *e = lmz_array_get(got, 0);
  assert_int_equal(lmz_typeof(e), LMZ_T_ERROR);
  assert_string_equal(lmz_error_name(e), "CounterError");
}

static void on_error_only_skips_success(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "callee"), lmz_cstring(a, "erronly")};
  call_ok(ENV, "TEST_DO", "h4", "callWith", 2, args);
  assert_null(lmz_testenv_kv_get(ENV, "TEST_DO", "h4", "recorded"));
  args[1] = lmz_cstring(a, "erronly-fail");
  call_ok(ENV, "TEST_DO", "h4", "callWith", 2, args);
  lmz_value *rec = lmz_testenv_kv_get(ENV, "TEST_DO", "h4", "recorded");
  assert_non_null(rec);
  assert_int_equal(lmz_typeof(lmz_array_get(lmz_object_getc(rec, "args"), 0)), LMZ_T_ERROR);
}

static void new_chain_makes_caller_the_origin(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "callee"), lmz_cstring(a, "newchain")};
  call_ok(ENV, "TEST_DO", "h5", "callWith", 2, args);
  lmz_value *who = lmz_array_get(lmz_object_getc(
      lmz_testenv_kv_get(ENV, "TEST_DO", "h5", "recorded"), "args"), 0);
  lmz_value *cc = lmz_object_getc(who, "callChain");
  assert_int_equal(lmz_len(cc), 1);
  assert_string_equal(str(lmz_object_getc(lmz_array_get(cc, 0), "bindingName")), "TEST_DO");
  lmz_value *st = lmz_object_getc(who, "state");
  assert_null(lmz_object_getc(st, "captured")); /* fresh state: only the option */
  assert_string_equal(str(lmz_object_getc(st, "fromCaller")), "yes");
}

static void call_other_records_result_through_handler(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "b"), lmz_number(a, 7)};
  assert_string_equal(str(call_ok(ENV, "COUNTER_DO", "a", "callOther", 2, args)), "sent");
  lmz_value *last = call_ok(ENV, "COUNTER_DO", "a", "lastOtherResult", 0, NULL);
  assert_string_equal(str(lmz_object_getc(last, "instance")), "b");
  assert_true(num(lmz_object_getc(last, "result")) == 7);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "b", "get", 0, NULL)) == 7);
}

static void target_validation_errors(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_cstring(a, "NOPE"), lmz_undefined()};
  lmz_value *e = call_err(ENV, NULL, "TEST_DO", "v", "badTarget", 1, args);
  assert_string_equal(lmz_error_message(e), "lmz.call: no binding named 'NOPE' in env.");
  args[0] = lmz_cstring(a, "ECHO_WORKER");
  args[1] = lmz_cstring(a, "i");
  e = call_err(ENV, NULL, "TEST_DO", "v", "badTarget", 2, args);
  assert_non_null(strstr(lmz_error_message(e), "is a Worker/service binding but an instance name ('i') was supplied"));
  args[0] = lmz_cstring(a, "COUNTER_DO");
  e = call_err(ENV, NULL, "TEST_DO", "v", "badTarget", 1, args);
  assert_non_null(strstr(lmz_error_message(e), "is a Durable Object namespace and requires an instance name"));
  /* from outside: same validation, as an error code */
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call(ENV, "COUNTER_DO", NULL, NULL, "get", 0, NULL, &r, &threw), LMZ_EINVAL);
  assert_non_null(strstr(lmz_testenv_errmsg(ENV), "requires an instance name"));
  assert_int_equal(lmz_testenv_call(ENV, "ECHO_WORKER", "x", NULL, "echo", 0, NULL, &r, &threw), LMZ_EINVAL);
}

static void worker_calls_work(void **state) {
  lmz_value *x = lmz_cstring(A(ENV), "hi");
  assert_string_equal(str(call_ok(ENV, "ECHO_WORKER", NULL, "echo", 1, &x)), "hi");
  assert_string_equal(str(call_ok(ENV, "ECHO_WORKER", NULL, "whereami", 0, NULL)), "test-node");
}

static lmz_value *op(lmz_arena *a, const char *type, const char *field, lmz_value *v) {
  lmz_value *o = lmz_object(a);
  lmz_object_setc(o, "type", lmz_cstring(a, type));
  lmz_object_setc(o, field, v);
  return o;
}

static lmz_value *call_chain(lmz_arena *a, const char *m, lmz_value *args) {
  lmz_value *c = lmz_array(a, 2);
  lmz_array_push(c, op(a, "get", "key", lmz_cstring(a, m)));
  lmz_array_push(c, op(a, "apply", "args", args));
  return c;
}

static lmz_value *marker(lmz_arena *a, lmz_value *chain) {
  lmz_value *m = lmz_object(a);
  lmz_object_setc(m, "__isNestedOperation", lmz_bool(true));
  lmz_object_setc(m, "__operationChain", chain);
  return m;
}

static void nested_continuations_evaluate_on_callee(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *a1 = lmz_array(a, 2), *a2 = lmz_array(a, 2), *outer = lmz_array(a, 2);
  lmz_array_push(a1, lmz_number(a, 1));
  lmz_array_push(a1, lmz_number(a, 10));
  lmz_array_push(a2, lmz_number(a, 100));
  lmz_array_push(a2, lmz_number(a, 1000));
  lmz_array_push(outer, marker(a, call_chain(a, "add", a1)));
  /* a marker inside an array argument is resolved too */
  lmz_value *inner_arr = lmz_array(a, 1);
  lmz_array_push(inner_arr, marker(a, call_chain(a, "add", a2)));
  lmz_array_push(outer, marker(a, call_chain(a, "add", lmz_array(a, 0))));
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "n", NULL,
                                          call_chain(a, "add", outer), &r, &threw), 0);
  assert_false(threw);
  assert_true(num(r) == 11);
  lmz_value *o2 = lmz_array(a, 2);
  lmz_array_push(o2, marker(a, call_chain(a, "add", a1)));
  lmz_array_push(o2, marker(a, call_chain(a, "add", a2)));
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "n", NULL,
                                          call_chain(a, "add", o2), &r, &threw), 0);
  assert_true(num(r) == 1111);
  /* a nested call to a non-mesh method is refused too */
  lmz_value *o3 = lmz_array(a, 1);
  lmz_array_push(o3, marker(a, call_chain(a, "record", lmz_array(a, 0))));
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "n", NULL,
                                          call_chain(a, "add", o3), &r, &threw), 0);
  assert_true(threw);
}

static void chain_validation_limits(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *deep = lmz_array(a, 51);
  for (int i = 0; i < 51; i++)
    lmz_array_push(deep, op(a, "get", "key", lmz_cstring(a, "x")));
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "v", NULL, deep, &r, &threw), 0);
  assert_true(threw);
  assert_string_equal(lmz_error_message(r), "Operation chain too deep: 51 > 50");
  lmz_value *many = lmz_array(a, 101);
  for (int i = 0; i < 101; i++)
    lmz_array_push(many, lmz_number(a, i));
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "v", NULL,
                                          call_chain(a, "add", many), &r, &threw), 0);
  assert_true(threw);
  assert_string_equal(lmz_error_message(r), "Too many arguments: 101 > 100");
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "v", NULL,
                                          lmz_cstring(a, "nope"), &r, &threw), 0);
  assert_true(threw);
  assert_string_equal(lmz_error_message(r),
                      "Invalid operation chain: operations must be an array");
}

static void property_reads_after_call_and_dotted_methods(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *c = call_chain(a, "profile", lmz_array(a, 0));
  lmz_array_push(c, op(a, "get", "key", lmz_cstring(a, "user")));
  lmz_array_push(c, op(a, "get", "key", lmz_cstring(a, "name")));
  lmz_value *r;
  bool threw;
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "p", NULL, c, &r, &threw), 0);
  assert_false(threw);
  assert_string_equal(str(r), "ada");
  /* [get admin, get reset, apply [2,3]] reaches the dotted method */
  lmz_value *d = lmz_array(a, 3), *args = lmz_array(a, 2);
  lmz_array_push(args, lmz_number(a, 2));
  lmz_array_push(args, lmz_number(a, 3));
  lmz_array_push(d, op(a, "get", "key", lmz_cstring(a, "admin")));
  lmz_array_push(d, op(a, "get", "key", lmz_cstring(a, "reset")));
  lmz_array_push(d, op(a, "apply", "args", args));
  assert_int_equal(lmz_testenv_call_chain(ENV, "TEST_DO", "p", NULL, d, &r, &threw), 0);
  assert_false(threw);
  assert_true(num(r) == 5);
}

static void failed_turn_commits_nothing(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *kv[2] = {lmz_cstring(a, "keep"), lmz_number(a, 42)};
  call_ok(ENV, "TEST_DO", "atom", "kv", 2, kv);
  struct lmz_testenv_stats before, after;
  lmz_testenv_stats(ENV, &before);
  lmz_value *e = call_err(ENV, NULL, "TEST_DO", "atom", "writeThenFail", 0, NULL);
  assert_string_equal(lmz_error_message(e), "boom after writing");
  lmz_testenv_stats(ENV, &after);
  assert_int_equal(after.commits, before.commits); /* no batch at all */
  assert_null(lmz_testenv_kv_get(ENV, "TEST_DO", "atom", "x"));
  assert_null(lmz_testenv_kv_get(ENV, "TEST_DO", "atom", "y"));
  /* and the actor's cache did not keep the failed writes either */
  lmz_value *lk[1] = {lmz_cstring(a, "")};
  lmz_value *all = call_ok(ENV, "TEST_DO", "atom", "list", 1, lk);
  assert_int_equal(lmz_len(all), 1);
  assert_true(num(lmz_testenv_kv_get(ENV, "TEST_DO", "atom", "keep")) == 42);
}

static void list_prefix_limit_reverse_and_deletes(void **state) {
  lmz_arena *a = A(ENV);
  const char *keys[] = {"a:1", "a:2", "a:3", "b:1"};
  for (int i = 0; i < 4; i++) {
    lmz_value *kv[2] = {lmz_cstring(a, keys[i]), lmz_number(a, i)};
    call_ok(ENV, "TEST_DO", "l", "kv", 2, kv);
  }
  lmz_value *d = lmz_cstring(a, "a:2");
  call_ok(ENV, "TEST_DO", "l", "del", 1, &d);
  lmz_value *args[3] = {lmz_cstring(a, "a:"), lmz_number(a, 0), lmz_bool(false)};
  lmz_value *m = call_ok(ENV, "TEST_DO", "l", "list", 3, args);
  assert_int_equal(lmz_len(m), 2);
  assert_string_equal(str(lmz_map_key(m, 0)), "a:1");
  assert_string_equal(str(lmz_map_key(m, 1)), "a:3");
  args[1] = lmz_number(a, 1);
  args[2] = lmz_bool(true);
  m = call_ok(ENV, "TEST_DO", "l", "list", 3, args);
  assert_int_equal(lmz_len(m), 1);
  assert_string_equal(str(lmz_map_key(m, 0)), "a:3");
}

static void on_start_error_fails_calls(void **state) {
  lmz_value *one = lmz_number(A(ENV), 1);
  lmz_value *e = call_err(ENV, NULL, "BROKEN_DO", "x", "add", 1, &one);
  assert_string_equal(lmz_error_name(e), "StartError");
  e = call_err(ENV, NULL, "BROKEN_DO", "x", "add", 1, &one);
  assert_string_equal(lmz_error_message(e), "cannot start");
  assert_int_equal(start_calls, 1); /* one activation, one on_start */
}

static void alarms_fire_on_the_fake_clock(void **state) {
  lmz_arena *a = A(ENV);
  lmz_value *args[2] = {lmz_number(a, 5000), lmz_number(a, 3)};
  lmz_value *id = call_ok(ENV, "COUNTER_DO", "al", "schedule", 2, args);
  assert_int_equal(lmz_typeof(id), LMZ_T_STRING);
  lmz_testenv_advance(ENV, 4999);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "al", "get", 0, NULL)) == 0);
  lmz_testenv_advance(ENV, 1);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "al", "get", 0, NULL)) == 3);
  lmz_testenv_advance(ENV, 100000); /* one-shot: does not fire again */
  assert_true(num(call_ok(ENV, "COUNTER_DO", "al", "get", 0, NULL)) == 3);
}

static void alarms_run_in_time_order(void **state) {
  lmz_arena *a = A(ENV);
  /* two alarms; the later-scheduled one is due first */
  lmz_value *a1[2] = {lmz_number(a, 2000), lmz_number(a, 10)};
  lmz_value *a2[2] = {lmz_number(a, 1000), lmz_number(a, 1)};
  call_ok(ENV, "COUNTER_DO", "ord", "schedule", 2, a1);
  call_ok(ENV, "COUNTER_DO", "ord", "schedule", 2, a2);
  lmz_testenv_advance(ENV, 1500);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "ord", "get", 0, NULL)) == 1);
  lmz_testenv_advance(ENV, 1000);
  assert_true(num(call_ok(ENV, "COUNTER_DO", "ord", "get", 0, NULL)) == 11);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(increment_persists, setup, teardown),
      cmocka_unit_test_setup_teardown(echo_returns_rich_values_unchanged, setup, teardown),
      cmocka_unit_test_setup_teardown(non_mesh_method_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(chain_without_apply_does_not_bypass, setup, teardown),
      cmocka_unit_test_setup_teardown(guard_refuses_and_allows, setup, teardown),
      cmocka_unit_test_setup_teardown(errors_keep_name_props_and_cause, setup, teardown),
      cmocka_unit_test_setup_teardown(on_before_call_runs_first_and_can_refuse, setup, teardown),
      cmocka_unit_test_setup_teardown(call_context_is_what_the_caller_sent, setup, teardown),
      cmocka_unit_test_setup_teardown(handler_gets_result_at_placeholder_with_captured_context, setup, teardown),
      cmocka_unit_test_setup_teardown(handler_without_placeholder_gets_result_appended, setup, teardown),
      cmocka_unit_test_setup_teardown(handler_receives_remote_error, setup, teardown),
      cmocka_unit_test_setup_teardown(on_error_only_skips_success, setup, teardown),
      cmocka_unit_test_setup_teardown(new_chain_makes_caller_the_origin, setup, teardown),
      cmocka_unit_test_setup_teardown(call_other_records_result_through_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(target_validation_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(worker_calls_work, setup, teardown),
      cmocka_unit_test_setup_teardown(nested_continuations_evaluate_on_callee, setup, teardown),
      cmocka_unit_test_setup_teardown(chain_validation_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(property_reads_after_call_and_dotted_methods, setup, teardown),
      cmocka_unit_test_setup_teardown(failed_turn_commits_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(list_prefix_limit_reverse_and_deletes, setup, teardown),
      cmocka_unit_test_setup_teardown(on_start_error_fails_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(alarms_fire_on_the_fake_clock, setup, teardown),
      cmocka_unit_test_setup_teardown(alarms_run_in_time_order, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
