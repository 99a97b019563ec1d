/* tests/unit/actor/test_trace.c - call tracing inside a node (issue 13 item
 * 6; README "Tracing a call"), through the test kit (real node, RocksDB in
 * a temp dir, fake clock). Checked:
 *   - a chain A -> B -> C of in-node calls keeps one trace id (the one
 *     minted when the call entered the node) and gives each call its own
 *     call id; a second external call gets another trace;
 *   - new_chain restarts the call chain, not the trace;
 *   - a handler continuation runs under its caller's trace and call id;
 *   - an alarm starts a trace of its own, which its calls carry;
 *   - a broadcast's targets share the trace, each with its own call id;
 *   - the call context value exposes traceId and callId (lmz additions to
 *     the original's {callChain, originAuth?, state}). */
#include "lib/testlib.h"

#include <stdio.h>
#include <string.h>

#include "core/trace.h"
#include "lmz/testing.h"

/* ---- a test application that records what each turn saw ----------------- */

#define MAXREC 32
struct rec {
  char what[16], inst[16];
  char trace[LMZ_TRACE_ID_LEN + 1], call[LMZ_CALL_ID_LEN + 1];
};
static struct rec R[MAXREC];
static size_t NR;

static void record(lmz_ctx *ctx, const char *what) {
  assert_true(NR < MAXREC);
  struct rec *r = &R[NR++];
  snprintf(r->what, sizeof r->what, "%s", what);
  snprintf(r->inst, sizeof r->inst, "%s", lmz_instance_name(ctx));
  snprintf(r->trace, sizeof r->trace, "%s", lmz_trace_id(ctx));
  snprintf(r->call, sizeof r->call, "%s", lmz_call_id(ctx));
}

static const struct rec *find(const char *what, const char *inst) {
  for (size_t i = 0; i < NR; i++)
    if (!strcmp(R[i].what, what) && !strcmp(R[i].inst, inst))
      return &R[i];
  fail_msg("no record %s on %s", what, inst);
  return NULL;
}

/* hop(n, newChain): record, then fire-and-forget hop(n-1) on instance+"x" */
static int t_hop(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  record(ctx, "hop");
  double left = n > 0 && lmz_typeof(a[0]) == LMZ_T_NUMBER ? lmz_get_number(a[0]) : 0;
  if (left <= 0)
    return 0;
  lmz_arena *ar = lmz_turn_arena(ctx);
  char next[16];
  snprintf(next, sizeof next, "%sx", lmz_instance_name(ctx));
  struct lmz_call_opts o = {.new_chain = n > 1 && lmz_typeof(a[1]) == LMZ_T_BOOL &&
                                         lmz_get_bool(a[1])};
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "hop", 2, lmz_number(ar, left - 1),
                            lmz_bool(o.new_chain));
  return lmz_call(ctx, "TRACE_DO", next, c, NULL, &o);
}

/* calls h.hop(0) with the handler onDone(result) */
static int t_with_handler(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  record(ctx, "withHandler");
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "hop", 1, lmz_number(ar, 0));
  lmz_ctn *h = lmz_ctn_call(lmz_ctn_new(ctx), "onDone", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, "TRACE_DO", "h", c, h, NULL);
}

static int t_on_done(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  record(ctx, "onDone");
  return 0;
}

static int t_schedule(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  record(ctx, "schedule");
  return lmz_alarm_after(ctx, 1000, lmz_ctn_call(lmz_ctn_new(ctx), "alarmed", 0),
                         NULL, NULL);
}

/* an alarm's turn: records, then calls al.hop(0) */
static int t_alarmed(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  record(ctx, "alarmed");
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "hop", 1, lmz_number(ar, 0));
  return lmz_call(ctx, "TRACE_DO", "al", c, NULL, NULL);
}

static int t_bcast(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  record(ctx, "bcast");
  static const char *const targets[] = {"b1", "b2"};
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "hop", 1,
                            lmz_number(lmz_turn_arena(ctx), 0));
  return lmz_broadcast(ctx, "TRACE_DO", targets, 2, c, NULL);
}

static int t_ctx_value(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  record(ctx, "ctxValue");
  *r = lmz_call_context_value(ctx);
  return 0;
}

static const lmz_method trace_methods[] = {
    LMZ_MESH("hop", t_hop, NULL),
    LMZ_MESH("withHandler", t_with_handler, NULL),
    LMZ_LOCAL("onDone", t_on_done),
    LMZ_MESH("schedule", t_schedule, NULL),
    LMZ_LOCAL("alarmed", t_alarmed),
    LMZ_MESH("bcast", t_bcast, NULL),
    LMZ_MESH("ctxValue", t_ctx_value, NULL),
    LMZ_END,
};

static int trace_init(lmz_registry *r) {
  return lmz_register_do(r, "TraceDO", trace_methods, NULL);
}

/* ---- fixture -------------------------------------------------------------- */

static int setup(void **state) {
  char err[256];
  lmz_testenv *env = lmz_testenv_new(NULL, err);
  if (!env) {
    print_error("testenv: %s\n", err);
    return -1;
  }
  assert_int_equal(lmz_testenv_register(env, "trace", trace_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "TRACE_DO", "TraceDO", LMZ_NODE_DO), 0);
  memset(R, 0, sizeof R);
  NR = 0;
  *state = env;
  return 0;
}

static int teardown(void **state) {
  lmz_testenv_free(*state);
  return 0;
}

#define ENV ((lmz_testenv *)*state)

static lmz_value *call_ok(lmz_testenv *env, const char *inst, const char *m,
                          size_t n, lmz_value *const *args) {
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_call(env, "TRACE_DO", inst, NULL, m, n, args, &r, &threw), 0);
  assert_false(threw);
  lmz_testenv_run(env);
  return r;
}

static void assert_ids_valid(const struct rec *r) {
  assert_true(lmz_trace_id_valid(r->trace, strlen(r->trace)));
  assert_true(lmz_call_id_valid(r->call, strlen(r->call)));
}

/* ---- tests ---------------------------------------------------------------- */

static void test_chain_keeps_trace(void **state) {
  lmz_value *args[2] = {lmz_number(lmz_testenv_arena(ENV), 2), lmz_bool(false)};
  call_ok(ENV, "a", "hop", 2, args);
  assert_int_equal(NR, 3);
  const struct rec *a = find("hop", "a"), *b = find("hop", "ax"), *c = find("hop", "axx");
  assert_ids_valid(a), assert_ids_valid(b), assert_ids_valid(c);
  assert_string_equal(a->trace, b->trace);
  assert_string_equal(b->trace, c->trace);
  assert_string_not_equal(a->call, b->call);
  assert_string_not_equal(b->call, c->call);
  assert_string_not_equal(a->call, c->call);
  /* another call from outside starts another trace */
  args[0] = lmz_number(lmz_testenv_arena(ENV), 0);
  call_ok(ENV, "a", "hop", 2, args);
  assert_int_equal(NR, 4);
  assert_ids_valid(&R[3]);
  assert_string_not_equal(R[3].trace, a->trace);
  assert_string_not_equal(R[3].call, a->call);
}

/* new_chain makes the caller the new origin of the call chain; the call is
 * still caused by this turn, so the trace goes on. */
static void test_new_chain_keeps_trace(void **state) {
  lmz_value *args[2] = {lmz_number(lmz_testenv_arena(ENV), 1), lmz_bool(true)};
  call_ok(ENV, "n", "hop", 2, args);
  assert_int_equal(NR, 2);
  assert_string_equal(find("hop", "n")->trace, find("hop", "nx")->trace);
  assert_string_not_equal(find("hop", "n")->call, find("hop", "nx")->call);
}

static void test_handler_runs_under_caller_trace(void **state) {
  call_ok(ENV, "w", "withHandler", 0, NULL);
  assert_int_equal(NR, 3);
  const struct rec *w = find("withHandler", "w"), *h = find("hop", "h"),
                   *d = find("onDone", "w");
  assert_string_equal(w->trace, h->trace);
  assert_string_equal(w->trace, d->trace);
  assert_string_not_equal(w->call, h->call);
  assert_string_equal(w->call, d->call); /* the caller's context, captured */
}

static void test_alarm_starts_trace(void **state) {
  call_ok(ENV, "s", "schedule", 0, NULL);
  assert_int_equal(NR, 1);
  lmz_testenv_advance(ENV, 2000);
  lmz_testenv_run(ENV);
  assert_int_equal(NR, 3);
  const struct rec *s = find("schedule", "s"), *al = find("alarmed", "s"),
                   *hop = find("hop", "al");
  assert_ids_valid(al);
  assert_string_not_equal(al->trace, s->trace); /* a chain start */
  assert_string_equal(hop->trace, al->trace);   /* its calls carry it */
  assert_string_not_equal(hop->call, al->call);
}

static void test_broadcast_keeps_trace(void **state) {
  call_ok(ENV, "bc", "bcast", 0, NULL);
  assert_int_equal(NR, 3);
  const struct rec *bc = find("bcast", "bc"), *t1 = find("hop", "b1"),
                   *t2 = find("hop", "b2");
  assert_string_equal(t1->trace, bc->trace);
  assert_string_equal(t2->trace, bc->trace);
  assert_string_not_equal(t1->call, t2->call);
  assert_string_not_equal(t1->call, bc->call);
}

static void test_context_value_exposes_ids(void **state) {
  lmz_value *v = call_ok(ENV, "cv", "ctxValue", 0, NULL);
  assert_int_equal(NR, 1);
  lmz_value *t = lmz_object_getc(v, "traceId"), *c = lmz_object_getc(v, "callId");
  assert_non_null(t);
  assert_non_null(c);
  assert_string_equal(lmz_get_str(t, NULL), R[0].trace);
  assert_string_equal(lmz_get_str(c, NULL), R[0].call);
  assert_non_null(lmz_object_getc(v, "callChain")); /* the original's shape */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_chain_keeps_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_chain_keeps_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_handler_runs_under_caller_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_alarm_starts_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_broadcast_keeps_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_context_value_exposes_ids, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
