/* Storage error semantics (actor/turn.c failure mode 3, storage/commit.c
 * failure mode 1): after a group commit fails, no turn whose reads depend on
 * the lost writes may commit or answer with success.
 *
 * Scenario, with a real RocksDB and the store's write-failure hook: each
 * group holds one batch, the first group write fails.
 *   T1 increment(1) -> batch C1 (fails)
 *   T2 get()        -> reads 1 from the cache (C1's lost write), no batch
 *   T3 increment(1) -> reads 1, writes 2 -> batch C2, a LATER group that the
 *                      disk would accept
 * Expected: T1, T2 and T3 all answer StorageError; nothing is on disk (C2
 * must not be written: it was computed from the lost write); the next turn
 * reads the disk again and commits 1. */
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actor/actor_int.h"   /* n->store, for the storage test hooks */
#include "actor/node.h"
#include "core/err.h"
#include "examples/counter/counter.c"
#include "storage/store_int.h" /* pause, fail_writes, set_max_batch */

struct reply {
  int n; /* replies so far */
  bool ok[8];
  double num[8];
  char err[8][32];
};

static void reply_cb(void *arg, int status, bool ok, const lmz_value *v) {
  struct reply *r = arg;
  assert_true(r->n < 8);
  r->ok[r->n] = status == 0 && ok;
  r->num[r->n] = lmz_typeof(v) == LMZ_T_NUMBER ? lmz_get_number(v) : -1;
  if (lmz_typeof(v) == LMZ_T_ERROR)
    snprintf(r->err[r->n], sizeof r->err[0], "%s", lmz_error_name(v));
  r->n++;
}

static void call(lmz_node *n, const char *method, double arg, struct reply *r) {
  lmz_arena *a = lmz_node_arena_get(n);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 1);
  if (arg >= 0)
    lmz_array_push(args, lmz_number(a, arg));
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, method));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", args);
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call c = {.binding = "COUNTER_DO", .instance = "a",
                            .chain = chain, .call_chain = &cli,
                            .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(n, &c, reply_cb, r, err), 0);
}

/* Runs the loop until the node has no turn left to run (bounded: a turn
 * needs one idle pass; the store is paused, so nothing else happens). */
static void run_turns(uv_loop_t *loop, lmz_node *n) {
  for (int i = 0; i < 100 && n->rq_head; i++)
    uv_run(loop, UV_RUN_NOWAIT);
  assert_null(n->rq_head);
}

static void run_until_replies(uv_loop_t *loop, struct reply *r, int want) {
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r->n < want && tl_now_ms() < deadline)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(r->n, want);
}

static double stored_total(lmz_node *n) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = NULL;
  int rv = lmz_node_kv_peek(n, "COUNTER_DO", "a", "total", a, &v);
  double t = rv == LMZ_ENOTFOUND ? 0 : v ? lmz_get_number(v) : -1;
  assert_true(rv == 0 || rv == LMZ_ENOTFOUND);
  lmz_arena_free(a);
  return t;
}

static void closed(lmz_node *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void no_turn_commits_on_lost_writes(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-cfail");
  uv_loop_t loop;
  uv_loop_init(&loop);
  char err[LMZ_ERRMSG_LEN];
  lmz_node *n;
  struct lmz_node_opts o = {.node_id = "cfail", .data_dir = dir, .sync = true};
  assert_int_equal(lmz_node_new(&n, &loop, &o, err), 0);
  assert_int_equal(lmz_node_register_module(n, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(n, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  lmz_node_start(n);

  struct reply r = {0};
  lmz__store_pause(n->store, true);
  lmz__store_set_max_batch(n->store, 1); /* one batch per group */
  lmz__store_fail_writes(n->store, 1);   /* the first group write fails */
  call(n, "increment", 1, &r);           /* T1 -> C1 */
  run_turns(&loop, n);
  call(n, "get", -1, &r);                /* T2: reads C1's write */
  run_turns(&loop, n);
  call(n, "increment", 1, &r);           /* T3 -> C2, its own group */
  run_turns(&loop, n);
  assert_int_equal(lmz_store_queued(n->store, NULL), 2);
  assert_int_equal(r.n, 0); /* all three wait behind the gate */
  lmz__store_pause(n->store, false);
  run_until_replies(&loop, &r, 3);
  for (int i = 0; i < 3; i++) {
    assert_false(r.ok[i]);
    assert_string_equal(r.err[i], "StorageError");
  }
  assert_true(stored_total(n) == 0); /* C2 (total 2) never reached the disk */

  /* the actor reads the disk again: the next turn commits 1 */
  call(n, "increment", 1, &r);
  run_until_replies(&loop, &r, 4);
  assert_true(r.ok[3]);
  assert_true(r.num[3] == 1);
  assert_true(stored_total(n) == 1);

  bool done = false;
  lmz_node_close(n, closed, &done);
  while (!done)
    uv_run(&loop, UV_RUN_ONCE);
  lmz_node_free(n);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  tl_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_turn_commits_on_lost_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
