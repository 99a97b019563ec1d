/* tests/unit/cluster/test_cluster.c - lmz_cluster_t's lifecycle with the
 * real Raft node (raft_uv on a temp dir) over a real node transport bound
 * to port 0: a one-node cluster registers itself and gets its lease, then
 * closes with nothing left on the loop; an init that fails after Raft was
 * created leaves nothing on the loop either; a connection going down after
 * the cluster closed (lmzd closes the transport after the cluster) does not
 * reach the freed Raft bridge; a voter on fresh Raft state (first start or
 * wiped disk) stays out of elections for the vote hold, on the injected
 * clock. Bounded waits only. */
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

static void on_frame(lmz_conn_t *c, const Lmz__Frame *f, void *data) {
  (void)c, (void)f, (void)data;
}

struct fix {
  uv_loop_t loop;
  lmz_transport_t t;
  char *dir;
  char raft_dir[512];
  char node_addr[64];
  bool closed;
  lmz_cluster_t *c; /* gets every conn event, as in lmzd, even once closed */
  unsigned downs;
};

static void on_conn_state(lmz_conn_t *conn, int state, int status,
                          void *data) {
  struct fix *x = data;
  if (state == LMZ_CONN_DOWN)
    x->downs++;
  if (x->c)
    lmz_cluster_on_conn_state(x->c, conn, state, status);
}

static void fix_init(struct fix *x) {
  memset(x, 0, sizeof *x);
  assert_int_equal(uv_loop_init(&x->loop), 0);
  uint8_t key[32] = {1, 2, 3};
  struct lmz_transport_options o = {.key = key, .node_id = 1, .name = "n1",
                                    .listen = "127.0.0.1:0",
                                    .on_frame = on_frame,
                                    .on_conn_state = on_conn_state,
                                    .data = x};
  assert_int_equal(lmz_transport_init(&x->loop, &x->t, &o), 0);
  snprintf(x->node_addr, sizeof x->node_addr, "127.0.0.1:%d",
           lmz_transport_port(&x->t));
  x->dir = tl_mkdtemp("lmz-cluster");
  snprintf(x->raft_dir, sizeof x->raft_dir, "%s/raft", x->dir);
}

static void transport_closed(lmz_transport_t *t) {
  struct fix *x = t->data;
  x->closed = true;
}

static void fix_free(struct fix *x) {
  x->closed = false;
  x->t.data = x;
  lmz_transport_close(&x->t, transport_closed);
  uint64_t end = tl_now_ms() + 5000;
  while (!x->closed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(x->closed);
  assert_int_equal(uv_loop_close(&x->loop), 0);
  tl_rmtree(x->dir);
  free(x->dir);
}

/* Raft is created, then its bootstrap fails (a voter listed twice): init
 * returns the error and nothing of the cluster stays on the loop, so the
 * caller may free its memory at once. */
static void test_init_failure_leaves_nothing(void **state) {
  (void)state;
  struct fix x;
  fix_init(&x);
  struct lmz_cluster_peer voters[2] = {{1, x.node_addr, "127.0.0.1:1"},
                                       {1, x.node_addr, "127.0.0.1:1"}};
  struct lmz_cluster_options o = {.node_id = 1,
                                  .node_address = x.node_addr,
                                  .raft_address = "127.0.0.1:1",
                                  .raft_dir = x.raft_dir,
                                  .voters = voters,
                                  .n_voters = 2};
  lmz_cluster_t *c = calloc(1, sizeof *c);
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_cluster_init(&x.loop, c, &x.t, &o, err), LMZ_EINVAL);
  assert_non_null(strstr(err, "bootstrap"));
  memset(c, 0xa5, sizeof *c); /* whatever is left would now run on garbage */
  free(c);
  uv_run(&x.loop, UV_RUN_NOWAIT);
  fix_free(&x); /* uv_loop_close() == 0: no handle of the cluster left */
}

static bool lease_valid(lmz_cluster_t *c) {
  return lmz_cluster_lease_valid(c, lmz_cluster_now_ms(c));
}

static void cluster_closed(lmz_cluster_t *c) { *(bool *)c->data = true; }

/* A one-node cluster: Raft over the node transport, registration, lease;
 * close cancels a request in flight and leaves nothing on the loop. */
static void test_one_node_lifecycle(void **state) {
  (void)state;
  struct fix x;
  fix_init(&x);
  struct lmz_cluster_options o = {.node_id = 1,
                                  .node_address = x.node_addr,
                                  .raft_address = "10.0.0.1:1",
                                  .raft_dir = x.raft_dir};
  lmz_cluster_t c;
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = lmz_cluster_init(&x.loop, &c, &x.t, &o, err);
  if (rv)
    fprintf(stderr, "%s\n", err);
  assert_int_equal(rv, 0);
  uint64_t end = tl_now_ms() + 10000;
  while (!lease_valid(&c) && tl_now_ms() < end)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(lease_valid(&c));
  assert_int_equal(lmz_cluster_choose(&c, "DOC", "a", true), 1);
  assert_int_equal(lmz_cluster_choose(&c, "DOC", "a", false), 0);
  lmz_buf out = LMZ_BUF_INIT;
  assert_int_equal(lmz_cluster_status_json(&c, &out), 0);
  assert_int_equal(lmz_buf_putc(&out, 0), 0);
  assert_non_null(strstr((char *)out.data, "\"state\":\"up\""));
  lmz_buf_free(&out);
  bool closed = false;
  c.data = &closed;
  lmz_cluster_close(&c, cluster_closed);
  end = tl_now_ms() + 5000;
  while (!closed && tl_now_ms() < end)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(closed);
  fix_free(&x);
}

static void peer_closed(lmz_transport_t *t) { *(bool *)t->data = true; }

/* lmzd's order: the cluster closes (Raft frees its bridge), then the
 * transport, whose conns report DOWN to the cluster's conn-state entry.
 * Under ASan this read the freed bridge's stream table when the entry let
 * the event through. */
static void test_conn_down_after_close(void **state) {
  (void)state;
  struct fix x;
  fix_init(&x);
  uint8_t key[32] = {1, 2, 3}; /* fix_init's */
  lmz_transport_t peer;
  struct lmz_transport_options po = {.key = key, .node_id = 2, .name = "n2",
                                     .listen = "127.0.0.1:0",
                                     .on_frame = on_frame};
  assert_int_equal(lmz_transport_init(&x.loop, &peer, &po), 0);
  char peer_addr[64];
  snprintf(peer_addr, sizeof peer_addr, "127.0.0.1:%d",
           lmz_transport_port(&peer));
  struct lmz_cluster_options o = {.node_id = 1,
                                  .node_address = x.node_addr,
                                  .raft_address = "10.0.0.1:1",
                                  .raft_dir = x.raft_dir};
  lmz_cluster_t *c = calloc(1, sizeof *c);
  assert_non_null(c);
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_cluster_init(&x.loop, c, &x.t, &o, err), 0);
  x.c = c;
  lmz_conn_t *conn = NULL;
  assert_int_equal(lmz_transport_connect(&x.t, 2, peer_addr, &conn), 0);
  uint64_t end = tl_now_ms() + 10000;
  while (!lmz_conn_is_up(conn) && tl_now_ms() < end)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(lmz_conn_is_up(conn));
  bool closed = false;
  c->data = &closed;
  lmz_cluster_close(c, cluster_closed);
  end = tl_now_ms() + 5000;
  while (!closed && tl_now_ms() < end)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(closed);
  unsigned downs = x.downs;
  bool peer_done = false;
  peer.data = &peer_done;
  lmz_transport_close(&peer, peer_closed); /* node 2 goes away */
  end = tl_now_ms() + 5000;
  while ((!peer_done || x.downs == downs) && tl_now_ms() < end)
    uv_run(&x.loop, UV_RUN_ONCE);
  assert_true(peer_done);
  assert_int_equal(x.downs, downs + 1); /* the event did reach the entry */
  fix_free(&x);
  free(c);
}

static uint64_t fake_now(void *ctx) { return *(uint64_t *)ctx; }

static void close_cluster(struct fix *x, lmz_cluster_t *c) {
  bool closed = false;
  c->data = &closed;
  lmz_cluster_close(c, cluster_closed);
  uint64_t end = tl_now_ms() + 5000;
  while (!closed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(closed);
}

/* Issue 9: a voter whose disk was wiped comes back with the same id and no
 * record of its vote. Started at once it could vote a second time in the
 * term it voted in before the wipe (two leaders in one term). On fresh
 * state Raft starts only after 2.5 election timeouts (200 ms default) of the
 * cluster's clock; on existing state at once; a close during the hold
 * leaves nothing on the loop. */
static void test_fresh_voter_holds_its_vote(void **state) {
  (void)state;
  struct fix x;
  fix_init(&x);
  struct lmz_cluster_peer voters[3] = {{1, x.node_addr, "10.0.0.1:1"},
                                       {2, "127.0.0.1:1", "10.0.0.2:1"},
                                       {3, "127.0.0.1:1", "10.0.0.3:1"}};
  uint64_t now = 1000;
  struct lmz_cluster_options o = {.node_id = 1,
                                  .node_address = x.node_addr,
                                  .raft_address = "10.0.0.1:1",
                                  .raft_dir = x.raft_dir,
                                  .voters = voters,
                                  .n_voters = 3,
                                  .now_ms = fake_now,
                                  .clock_ctx = &now};
  lmz_cluster_t c;
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_cluster_init(&x.loop, &c, &x.t, &o, err), 0);
  assert_false(c.rn.started);
  now = 1499;
  lmz_cluster_tick(&c, now);
  assert_false(c.rn.started);
  now = 1500;
  lmz_cluster_tick(&c, now);
  assert_true(c.rn.started);
  close_cluster(&x, &c);

  /* the same directory again: its state is not fresh */
  assert_int_equal(lmz_cluster_init(&x.loop, &c, &x.t, &o, err), 0);
  assert_true(c.rn.started);
  close_cluster(&x, &c);

  /* fresh again (wiped), closed while holding */
  tl_rmtree(x.raft_dir);
  assert_int_equal(lmz_cluster_init(&x.loop, &c, &x.t, &o, err), 0);
  assert_false(c.rn.started);
  close_cluster(&x, &c);
  fix_free(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_init_failure_leaves_nothing),
      cmocka_unit_test(test_one_node_lifecycle),
      cmocka_unit_test(test_fresh_voter_holds_its_vote),
      cmocka_unit_test(test_conn_down_after_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
