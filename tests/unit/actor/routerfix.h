/* tests/unit/actor/routerfix.h - the fixture of the router's fake-time
 * tests (test_router.c, test_release.c): a real node (temp RocksDB, the
 * counter example) routing through a cluster on fake time
 * (cluster/cluster.h lmz_cluster_init_sim over tests/unit/cluster/simdir.h:
 * simulated transport, real directory replicas, fake Raft). The router's
 * node is node 2; node 1 leads the directory. Include it once, after
 * simdir.h, actor/router.h, lmz/testing.h and the counter example. */
#ifndef LMZ_TESTS_ROUTERFIX_H
#define LMZ_TESTS_ROUTERFIX_H

#define RL 900u

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  struct sim *s;
  lmz_cluster_t c;
  lmz_router_t r_mem, *r; /* r = &r_mem once initialized */
  double wall_ms; /* the node's fake wall clock (eviction) */
};

static inline double wall(void *data) { return ((struct fx *)data)->wall_ms; }

struct reply {
  bool done;
  int status;
  bool ok;
  double number;
  char error[256];
  uint64_t at_ms;
  struct fx *x;
};

static inline void reply_cb(void *arg, int status, bool ok, const lmz_value *v) {
  struct reply *rp = arg;
  rp->done = true;
  rp->status = status;
  rp->ok = ok;
  rp->at_ms = rp->x->s->net.now_ms;
  if (ok && v && lmz_typeof(v) == LMZ_T_NUMBER)
    rp->number = lmz_get_number(v);
  if (!ok && v && lmz_typeof(v) == LMZ_T_ERROR) {
    const char *m = lmz_error_message(v);
    snprintf(rp->error, sizeof rp->error, "%s", m ? m : "");
  }
}

static inline void call(struct fx *x, const char *instance, const char *method,
                 struct reply *rp) {
  memset(rp, 0, sizeof *rp);
  rp->x = x;
  lmz_arena *a = lmz_node_arena_get(x->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, method));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", lmz_array(a, 0));
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call c = {.binding = "COUNTER_DO", .instance = instance,
                            .chain = chain, .call_chain = &cli,
                            .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(x->node, &c, reply_cb, rp, err), 0);
}

/* Fake time stands still while the node works (a turn, a storage commit
 * on the thread pool): the loop runs until the node is quiet (bounded in
 * real time), then one fake millisecond passes on the directory side
 * (frames, ticks: the router's retries and deadlines included). */
static inline void step(struct fx *x) {
  uv_run(&x->loop, UV_RUN_NOWAIT);
  uint64_t real_end = tl_now_ms() + 5000;
  while (!lmz_node_is_quiet(x->node) && tl_now_ms() < real_end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(lmz_node_is_quiet(x->node));
  sim_run(x->s, x->s->net.now_ms + 1);
  uv_run(&x->loop, UV_RUN_NOWAIT);
}

/* Steps until the reply came or `ms` fake milliseconds passed. */
static inline void run_for(struct fx *x, struct reply *rp, uint64_t ms) {
  uint64_t end = x->s->net.now_ms + ms;
  while (!rp->done && x->s->net.now_ms < end)
    step(x);
}

/* An instance name the rendezvous hash over {1, 2} gives to `node`. */
static inline void instance_on(uint64_t node, const char *prefix, char *out, size_t cap) {
  uint64_t nodes[2] = {1, 2};
  for (int i = 0;; i++) {
    snprintf(out, cap, "%s%d", prefix, i);
    uint64_t got = 0;
    assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, nodes, 2, 0,
                                          "COUNTER_DO", 10, out, strlen(out),
                                          &got),
                     0);
    if (got == node)
      return;
  }
}

/* evict_ms: the node's idle eviction on the fake wall clock x->wall_ms
 * (0: the default eviction on the real clock). registered: every simulated node registered UP. */
static inline void setup_ex(struct fx *x, bool registered, uint32_t evict_ms) {
  memset(x, 0, sizeof *x);
  assert_int_equal(uv_loop_init(&x->loop), 0);
  x->dir = tl_mkdtemp("lmz-router");
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts no = {.node_id = "n2", .data_dir = x->dir,
                            .idle_evict_ms = evict_ms,
                            .clock = evict_ms ? wall : NULL, .clock_data = x};
  assert_int_equal(lmz_node_init(x->node = &x->node_mem, &x->loop, &no, err),
                   0);
  assert_int_equal(lmz_node_register_module(x->node, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(x->node, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  assert_int_equal(lmz_node_start(x->node), 0);
  x->s = sim_new(2, RL);
  sim_attach_cluster(x->s, 1, &x->c, RL);
  struct lmz_router_opts ro = {.park_timeout_ms = 3000};
  x->r = &x->r_mem;
  assert_int_equal(lmz_router_init(x->r, x->node, &x->c, &ro, err), 0);
  if (registered)
    sim_register_all(x->s);
}

static inline void node_closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static inline void router_closed(lmz_router_t *r, void *arg) {
  (void)r;
  *(bool *)arg = true;
}

static inline void teardown(struct fx *x) {
  bool rclosed = false, nclosed = false;
  lmz_router_close(x->r, router_closed, &rclosed);
  uint64_t end = tl_now_ms() + 5000;
  while (!rclosed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(rclosed);
  sim_free(x->s); /* the cluster's requests are cancelled here */
  lmz_node_close(x->node, node_closed, &nclosed);
  end = tl_now_ms() + 5000;
  while (!nclosed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(nclosed);
  assert_int_equal(uv_loop_close(&x->loop), 0);
  lmz_router_release(x->r);
  lmz_node_release(x->node);
  tl_rmtree(x->dir);
  free(x->dir);
}

static inline void setup(struct fx *x, bool registered) {
  setup_ex(x, registered, 0);
}

#endif
