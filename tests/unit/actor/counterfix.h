/* tests/unit/actor/counterfix.h - one real node (RocksDB in a temp dir)
 * running examples/counter's COUNTER_DO, driven call by call on the test's
 * own loop: for tests of the turn's storage path and its output gate. */
#ifndef LMZ_TESTS_COUNTERFIX_H
#define LMZ_TESTS_COUNTERFIX_H

#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actor/actor_int.h"
#include "actor/node.h"
#include "core/err.h"
#include "examples/counter/counter.c"
#include "storage/store.h"

#define CF_MAX_REPLIES 16

struct reply {
  int n; /* replies so far */
  bool ok[CF_MAX_REPLIES];
  double num[CF_MAX_REPLIES];
  char err[CF_MAX_REPLIES][32];
};

struct counterfix {
  char *dir;
  uv_loop_t loop;
  lmz_node_t n_mem, *n; /* n = &n_mem once initialized */
};

static inline void reply_cb(void *arg, int status, bool ok, const lmz_value *v) {
  struct reply *r = arg;
  assert_true(r->n < CF_MAX_REPLIES);
  r->ok[r->n] = status == 0 && ok;
  r->num[r->n] = lmz_typeof(v) == LMZ_T_NUMBER ? lmz_get_number(v) : -1;
  if (lmz_typeof(v) == LMZ_T_ERROR)
    snprintf(r->err[r->n], sizeof r->err[0], "%s", lmz_error_name(v));
  r->n++;
}

/* Calls COUNTER_DO "a" `method` (with one number argument when arg >= 0). */
static inline void call(lmz_node_t *n, const char *method, double arg,
                        struct reply *r) {
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
 * needs one idle pass). */
static inline void run_turns(uv_loop_t *loop, lmz_node_t *n) {
  for (int i = 0; i < 100 && n->rq_head; i++)
    uv_run(loop, UV_RUN_NOWAIT);
  assert_null(n->rq_head);
}

static inline void run_until_replies(uv_loop_t *loop, struct reply *r, int want) {
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r->n < want && tl_now_ms() < deadline)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(r->n, want);
}

/* Runs the loop until every commit the store holds has been reported. */
static inline void run_until_stored(uv_loop_t *loop, lmz_node_t *n) {
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (lmz_store_queued(n->store, NULL) && tl_now_ms() < deadline)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(lmz_store_queued(n->store, NULL), 0);
}

static inline double stored_total(lmz_node_t *n) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = NULL;
  int rv = lmz_node_kv_peek(n, "COUNTER_DO", "a", "total", a, &v);
  double t = rv == LMZ_ENOTFOUND ? 0 : v ? lmz_get_number(v) : -1;
  assert_true(rv == 0 || rv == LMZ_ENOTFOUND);
  lmz_arena_free(a);
  return t;
}

static inline void cf_start(struct counterfix *f, const char *name) {
  f->dir = tl_mkdtemp(name);
  uv_loop_init(&f->loop);
  char err[LMZ_ERRMSG_LEN];
  struct lmz_node_opts o = {.node_id = name, .data_dir = f->dir, .sync = true};
  assert_int_equal(lmz_node_init(f->n = &f->n_mem, &f->loop, &o, err), 0);
  assert_int_equal(lmz_node_register_module(f->n, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(f->n, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  lmz_node_start(f->n);
}

static inline void cf_closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static inline void cf_stop(struct counterfix *f) {
  bool done = false;
  lmz_node_close(f->n, cf_closed, &done);
  while (!done)
    uv_run(&f->loop, UV_RUN_ONCE);
  lmz_node_release(f->n);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tl_rmtree(f->dir);
  free(f->dir);
}

#endif
