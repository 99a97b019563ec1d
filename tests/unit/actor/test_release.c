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

#define EVICT_MS 1000u
#define CHURN 10000

#include "unit/actor/routerfix.h"

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
  setup_ex(&x, true, EVICT_MS);
  x.wall_ms = 1e12;
  const lmz_dir_t *d = lmz_cluster_dir(&x.c);
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
