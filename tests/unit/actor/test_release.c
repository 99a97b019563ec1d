/* tests/unit/actor/test_release.c - placements of stateless actors are
 * released (issue 15 item 5): a real node (temp RocksDB, the counter
 * example) routing through a cluster on fake time (simdir.h, real directory
 * replicas, fake Raft), like test_router.c. Many short-lived stateless
 * durable-object activations, evicted, leave the directory at its starting
 * size; an actor with state (a KV key) keeps its placement and its data.
 * Eviction reads the node's fake wall clock. */
#include "unit/cluster/simdir.h"

#include "actor/router.h"
#include "lmz/testing.h"
#include "examples/counter/counter.c"

#define RL 900u
#define EVICT_MS 1000u
#define CHURN 10000

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_node *node;
  struct sim *s;
  lmz_cluster_t c;
  lmz_router *r;
  double wall_ms; /* the node's fake wall clock (eviction) */
};

static double wall(void *data) { return ((struct fx *)data)->wall_ms; }

struct reply {
  bool done;
  int status;
  bool ok;
  double number;
  char error[256];
  uint64_t at_ms;
  struct fx *x;
};

static void reply_cb(void *arg, int status, bool ok, const lmz_value *v) {
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

static void call(struct fx *x, const char *instance, const char *method,
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
static void step(struct fx *x) {
  uv_run(&x->loop, UV_RUN_NOWAIT);
  uint64_t real_end = tl_now_ms() + 5000;
  while (!lmz_node_is_quiet(x->node) && tl_now_ms() < real_end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(lmz_node_is_quiet(x->node));
  sim_run(x->s, x->s->net.now_ms + 1);
  uv_run(&x->loop, UV_RUN_NOWAIT);
}

/* Steps until the reply came or `ms` fake milliseconds passed. */
static void run_for(struct fx *x, struct reply *rp, uint64_t ms) {
  uint64_t end = x->s->net.now_ms + ms;
  while (!rp->done && x->s->net.now_ms < end)
    step(x);
}

/* An instance name the rendezvous hash over {1, 2} gives to `node`. */
static void instance_on(uint64_t node, const char *prefix, char *out, size_t cap) {
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

static void setup(struct fx *x, bool registered) {
  memset(x, 0, sizeof *x);
  assert_int_equal(uv_loop_init(&x->loop), 0);
  x->dir = tl_mkdtemp("lmz-router");
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts no = {.node_id = "n2", .data_dir = x->dir,
                            .idle_evict_ms = EVICT_MS, .clock = wall,
                            .clock_data = x};
  assert_int_equal(lmz_node_new(&x->node, &x->loop, &no, err), 0);
  assert_int_equal(lmz_node_register_module(x->node, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(x->node, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  assert_int_equal(lmz_node_start(x->node), 0);
  x->s = sim_new(2, RL);
  sim_attach_cluster(x->s, 1, &x->c, RL);
  struct lmz_router_opts ro = {.park_timeout_ms = 3000};
  assert_int_equal(lmz_router_init(&x->r, x->node, &x->c, &ro, err), 0);
  if (registered)
    sim_register_all(x->s);
}

static void node_closed(lmz_node *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void router_closed(lmz_router *r, void *arg) {
  (void)r;
  *(bool *)arg = true;
}

static void teardown(struct fx *x) {
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
  lmz_router_free(x->r);
  lmz_node_free(x->node);
  tl_rmtree(x->dir);
  free(x->dir);
}


/* Runs steps until every reply of rp[0..n) came (bounded in fake time). */
static void run_all(struct fx *x, struct reply *rp, size_t n, uint64_t ms) {
  uint64_t end = x->s->net.now_ms + ms;
  for (;;) {
    size_t done = 0;
    for (size_t i = 0; i < n; i++)
      done += rp[i].done;
    if (done == n || x->s->net.now_ms >= end)
      return;
    step(x);
  }
}

/* Evicts everything idle, then lets the releases reach the directory. */
static void evict_and_settle(struct fx *x) {
  x->wall_ms += 2 * EVICT_MS;
  lmz_node_evict_idle(x->node);
  uint64_t end = x->s->net.now_ms + 2000;
  struct lmz_cluster_stats st;
  do {
    step(x);
    lmz_cluster_get_stats(&x->c, &st);
  } while (st.releases_pending && x->s->net.now_ms < end);
  assert_int_equal(st.releases_pending, 0);
  sim_run(x->s, x->s->net.now_ms + 50); /* replicas applied */
}

static void test_churn_leaves_directory_at_start(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  x.wall_ms = 1e12;
  const lmz_dir *d = lmz_cluster_dir(&x.c);
  char keep[32];
  instance_on(2, "keep", keep, sizeof keep);
  struct reply one;
  call(&x, keep, "increment", &one); /* state: a KV key */
  run_for(&x, &one, 2000);
  assert_true(one.done && one.ok);
  uint64_t start = lmz_dir_n_actors(d);
  uint64_t keep_owner = 0, keep_epoch = 0;
  assert_int_equal(lmz_dir_lookup(d, "COUNTER_DO", 10, keep, strlen(keep),
                                  &keep_owner, &keep_epoch), 0);
  void *snap;
  size_t snap0, snap_peak, snap1;
  assert_int_equal(lmz_dir_snapshot(d, NULL, &snap, &snap0), 0);
  free(snap);
  enum { CHUNK = 500 };
  static struct reply rp[CHUNK];
  static char names[CHUNK][32];
  uint64_t peak = 0;
  for (int base = 0; base < CHURN; base += CHUNK) {
    for (int i = 0; i < CHUNK; i++) {
      char pre[24];
      snprintf(pre, sizeof pre, "tmp%d-", base + i);
      instance_on(2, pre, names[i], sizeof names[i]);
      call(&x, names[i], "whoami", &rp[i]); /* no state written */
    }
    run_all(&x, rp, CHUNK, 5000);
    for (int i = 0; i < CHUNK; i++)
      assert_true(rp[i].done && rp[i].ok);
    if (lmz_dir_n_actors(d) > peak)
      peak = lmz_dir_n_actors(d);
    if (base + CHUNK >= CHURN) {
      assert_int_equal(lmz_dir_snapshot(d, NULL, &snap, &snap_peak), 0);
      free(snap);
    }
    evict_and_settle(&x); /* short-lived: gone before the next wave */
  }
  assert_true(peak >= start + CHUNK);
  assert_int_equal(lmz_dir_n_actors(d), start);
  assert_int_equal(lmz_dir_snapshot(d, NULL, &snap, &snap1), 0);
  free(snap);
  printf("# directory actors: start %llu, peak %llu, after %d activations "
         "%llu; snapshot bytes %zu -> %zu (with %d live) -> %zu\n",
         (unsigned long long)start, (unsigned long long)peak, CHURN,
         (unsigned long long)lmz_dir_n_actors(d), snap0, snap_peak, CHUNK,
         snap1);
  assert_int_equal(snap1, snap0);
  /* the stateful actor kept its placement (same epoch) and its data */
  uint64_t owner = 0, epoch = 0;
  assert_int_equal(lmz_dir_lookup(d, "COUNTER_DO", 10, keep, strlen(keep),
                                  &owner, &epoch), 0);
  assert_int_equal(owner, keep_owner);
  assert_int_equal(epoch, keep_epoch);
  call(&x, keep, "increment", &one);
  run_for(&x, &one, 2000);
  assert_true(one.done && one.ok);
  assert_true(one.number == 2.0);
  /* a released name is claimed afresh by its next call, with a newer epoch */
  call(&x, names[0], "whoami", &rp[0]);
  run_for(&x, &rp[0], 2000);
  assert_true(rp[0].done && rp[0].ok);
  assert_int_equal(lmz_dir_lookup(d, "COUNTER_DO", 10, names[0],
                                  strlen(names[0]), &owner, &epoch), 0);
  assert_true(epoch > keep_epoch);
  teardown(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_churn_leaves_directory_at_start),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
