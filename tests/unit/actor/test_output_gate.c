/* The output gate (DESIGN.md section 3): a turn's reply leaves only after
 * its batch is durable. Every reply callback reads the store directly: the
 * value the reply acknowledges must already be there. Many calls to many
 * actors are in flight at once, so replies race real group commits (sync
 * on). Also: a reply from a turn that wrote nothing still waits for the
 * actor's earlier, not yet durable, writes it may have read. */
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actor/node.h"
#include "core/err.h"
#include "examples/counter/counter.c"

#define ACTORS 20
#define CALLS 400

struct gate {
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  int replies, violations, errors;
  lmz_arena *peek;
};

struct call_ctx {
  struct gate *g;
  char instance[16];
};

static void reply_cb(void *arg, int status, bool ok, const lmz_value *v) {
  struct call_ctx *c = arg;
  struct gate *g = c->g;
  g->replies++;
  if (status || !ok || lmz_typeof(v) != LMZ_T_NUMBER) {
    g->errors++;
    return;
  }
  lmz_value *stored = NULL;
  int rv = lmz_node_kv_peek(g->node, "COUNTER_DO", c->instance, "total", g->peek, &stored);
  if (rv || lmz_get_number(stored) < lmz_get_number(v))
    g->violations++;
  lmz_arena_reset(g->peek);
}

static void send_call(struct gate *g, struct call_ctx *c, const char *method) {
  lmz_arena *a = lmz_node_arena_get(g->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, method));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", lmz_array(a, 0));
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call call = {.binding = "COUNTER_DO", .instance = c->instance,
                               .chain = chain, .call_chain = &cli,
                               .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(g->node, &call, reply_cb, c, err), 0);
}

static void closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void replies_never_precede_their_durable_writes(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-gate");
  uv_loop_t loop;
  uv_loop_init(&loop);
  char err[LMZ_ERRMSG_LEN];
  struct gate g = {.peek = lmz_arena_new()};
  struct lmz_node_opts o = {.node_id = "gate", .data_dir = dir, .sync = true};
  assert_int_equal(lmz_node_init(g.node = &g.node_mem, &loop, &o, err), 0);
  assert_int_equal(lmz_node_register_module(g.node, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(g.node, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  lmz_node_start(g.node);
  static struct call_ctx calls[CALLS * 2];
  for (int i = 0; i < CALLS; i++) {
    calls[i].g = &g;
    snprintf(calls[i].instance, sizeof calls[i].instance, "c%d", i % ACTORS);
    send_call(&g, &calls[i], "increment");
    /* a read-only turn right behind the write: its reply (the new total,
     * read from the cache) must wait for the earlier write too */
    calls[CALLS + i] = calls[i];
    send_call(&g, &calls[CALLS + i], "get");
  }
  uint64_t deadline = tl_now_ms() + 30000;
  while (g.replies < 2 * CALLS && tl_now_ms() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(g.replies, 2 * CALLS);
  assert_int_equal(g.errors, 0);
  assert_int_equal(g.violations, 0);
  struct lmz_node_stats st;
  lmz_node_get_stats(g.node, &st);
  assert_int_equal(st.commits, CALLS); /* one batch per writing turn */
  bool done = false;
  lmz_node_close(g.node, closed, &done);
  while (!done)
    uv_run(&loop, UV_RUN_ONCE);
  lmz_node_release(g.node);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  lmz_arena_free(g.peek);
  tl_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replies_never_precede_their_durable_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
