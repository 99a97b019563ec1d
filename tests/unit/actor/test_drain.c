/* tests/unit/actor/test_drain.c - a drain (actor/drain.c) against a real
 * one-node cluster (raft over the node transport, temp dirs, port 0) and a
 * second node that is only a transport: it is UP, live and connected in the
 * directory, so it is the drain target, and it never answers the import.
 * The node shuts down while the drain waits for that answer (SIGTERM during
 * `lmz node drain`): everything closes and nothing of the drain is left on
 * the loop. Bounded waits only. */
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "actor/drain.h"
#include "actor/node.h"
#include "actor/router.h"
#include "cluster/cluster.h"

static const uint8_t key[32] = {7, 7, 7};

struct fix {
  uv_loop_t loop;
  char *dir;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  lmz_transport_t t1, t2;
  lmz_cluster_t c;
  lmz_router_t r_mem, *r; /* r = &r_mem once initialized */
  int imports_seen;
  int drain_cbs;
  bool router_closed, cluster_closed, node_closed;
  int transports_closed;
};

static void t1_frame(lmz_conn_t *conn, const Lmz__Frame *f, void *data) {
  struct fix *x = data;
  switch (f->body_case) { /* what lmzd's frame table does for a node */
  case LMZ__FRAME__BODY_RAFT_DATA:
    lmz_cluster_on_raft_data(&x->c, conn, f);
    break;
  case LMZ__FRAME__BODY_IMPORT_RESPONSE:
    lmz_drain_on_import_response(x->r, conn, f);
    break;
  default:
    break;
  }
}

static void t1_state(lmz_conn_t *conn, int state, int status, void *data) {
  struct fix *x = data;
  if (!x->cluster_closed)
    lmz_cluster_on_conn_state(&x->c, conn, state, status);
}

/* node 2: takes the import and never answers */
static void t2_frame(lmz_conn_t *conn, const Lmz__Frame *f, void *data) {
  (void)conn;
  struct fix *x = data;
  if (f->body_case == LMZ__FRAME__BODY_IMPORT_REQUEST)
    x->imports_seen++;
}

static void propose_cb(lmz_dirclient_req_t *req, int status,
                       const struct lmz_dir_item *item) {
  (void)item;
  *(int *)req->data = status >= 0 ? 1 : status;
}

static void propose(struct fix *x, lmz_buf *cmd) {
  int done = 0;
  lmz_dirclient_req_t req = {.data = &done};
  assert_int_equal(lmz_cluster_propose(&x->c, &req, cmd, propose_cb), 0);
  uint64_t end = tl_now_ms() + 5000;
  while (!done && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_int_equal(done, 1);
  lmz_buf_reset(cmd);
}

static void setup(struct fix *x) {
  memset(x, 0, sizeof *x);
  assert_int_equal(uv_loop_init(&x->loop), 0);
  x->dir = tl_mkdtemp("lmz-drain");
  char err[LMZ_ERRMSG_LEN] = "", raft_dir[512], addr1[64], addr2[64];
  struct lmz_node_opts no = {.node_id = "n1", .data_dir = x->dir};
  assert_int_equal(lmz_node_init(x->node = &x->node_mem, &x->loop, &no, err),
                   0);
  struct lmz_transport_options o1 = {.key = key, .node_id = 1, .name = "n1",
                                     .listen = "127.0.0.1:0", .on_frame = t1_frame,
                                     .on_conn_state = t1_state, .data = x};
  struct lmz_transport_options o2 = {.key = key, .node_id = 2, .name = "n2",
                                     .listen = "127.0.0.1:0", .on_frame = t2_frame,
                                     .data = x};
  assert_int_equal(lmz_transport_init(&x->loop, &x->t1, &o1), 0);
  assert_int_equal(lmz_transport_init(&x->loop, &x->t2, &o2), 0);
  snprintf(addr1, sizeof addr1, "127.0.0.1:%d", lmz_transport_port(&x->t1));
  snprintf(addr2, sizeof addr2, "127.0.0.1:%d", lmz_transport_port(&x->t2));
  snprintf(raft_dir, sizeof raft_dir, "%s/raft", x->dir);
  struct lmz_cluster_options co = {.node_id = 1, .node_address = addr1,
                                   .raft_address = "10.0.0.1:1",
                                   .raft_dir = raft_dir};
  assert_int_equal(lmz_cluster_init(&x->loop, &x->c, &x->t1, &co, err), 0);
  struct lmz_router_opts ro = {0};
  x->r = &x->r_mem;
  assert_int_equal(lmz_router_init(x->r, x->node, &x->c, &ro, err), 0);
  uint64_t end = tl_now_ms() + 10000;
  while (!lmz_cluster_lease_valid(&x->c, lmz_cluster_now_ms(&x->c)) &&
         tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(lmz_cluster_lease_valid(&x->c, lmz_cluster_now_ms(&x->c)));
  /* node 2 joins the directory (UP, one lease) and an actor lives on 1 */
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_node_upsert(&cmd, 2, LMZ_DIR_UP, addr2, "", 90), 0);
  propose(x, &cmd);
  assert_int_equal(lmz_dir_encode_lease_renew(&cmd, 2, 3000, 91), 0);
  propose(x, &cmd);
  struct lmz_dir_claim cl = {"DOC", 3, "a", 1, 1, 92, 0, 0, NULL};
  assert_int_equal(lmz_dir_encode_claims(&cmd, &cl, 1), 0);
  propose(x, &cmd);
  lmz_buf_free(&cmd);
  lmz_conn_t *conn = lmz_cluster_peer_conn(&x->c, 2);
  assert_non_null(conn);
  end = tl_now_ms() + 5000;
  while (!lmz_conn_is_up(conn) && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(lmz_conn_is_up(conn));
}

static void drain_cb(lmz_router_t *r, int moved, int failed, void *arg) {
  (void)r, (void)moved, (void)failed;
  ((struct fix *)arg)->drain_cbs++;
}

static void node_closed(lmz_node_t *n, void *arg) {
  (void)n;
  ((struct fix *)arg)->node_closed = true;
}

static void transport_closed(lmz_transport_t *t) {
  struct fix *x = t->data;
  if (++x->transports_closed == 2)
    lmz_node_close(x->node, node_closed, x);
}

static void cluster_closed(lmz_cluster_t *c) {
  struct fix *x = c->data;
  x->cluster_closed = true;
  x->t1.data = x->t2.data = x;
  lmz_transport_close(&x->t1, transport_closed);
  lmz_transport_close(&x->t2, transport_closed);
}

static void router_closed(lmz_router_t *r, void *arg) {
  (void)r;
  struct fix *x = arg;
  x->router_closed = true;
  x->c.data = x;
  lmz_cluster_close(&x->c, cluster_closed);
}

static void test_close_during_drain(void **state) {
  (void)state;
  struct fix *x = calloc(1, sizeof *x);
  setup(x);
  assert_int_equal(lmz_drain_start(x->r, drain_cb, x), 0);
  assert_int_equal(lmz_drain_start(x->r, drain_cb, x), LMZ_EBUSY);
  uint64_t end = tl_now_ms() + 5000;
  while (!x->imports_seen && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_int_equal(x->imports_seen, 1); /* the drain waits for node 2 now */
  /* SIGTERM: router, then cluster, then transports, then the node */
  lmz_router_close(x->r, router_closed, x);
  end = tl_now_ms() + 5000;
  while (!x->node_closed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(x->node_closed);
  assert_int_equal(x->drain_cbs, 0); /* cancelled, not reported */
  /* nothing of the drain (its timer) is left on the loop */
  assert_int_equal(uv_loop_close(&x->loop), 0);
  lmz_router_release(x->r);
  lmz_node_release(x->node);
  tl_rmtree(x->dir);
  free(x->dir);
  free(x);
}

/* The node shuts down before the directory even marked it DRAINING: the
 * request comes back cancelled after the drain was, and frees it. */
static void test_close_before_draining(void **state) {
  (void)state;
  struct fix *x = calloc(1, sizeof *x);
  setup(x);
  assert_int_equal(lmz_drain_start(x->r, drain_cb, x), 0);
  lmz_router_close(x->r, router_closed, x);
  uint64_t end = tl_now_ms() + 5000;
  while (!x->node_closed && tl_now_ms() < end)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_true(x->node_closed);
  assert_int_equal(x->drain_cbs, 0);
  assert_int_equal(x->imports_seen, 0);
  assert_int_equal(uv_loop_close(&x->loop), 0);
  lmz_router_release(x->r);
  lmz_node_release(x->node);
  tl_rmtree(x->dir);
  free(x->dir);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_close_during_drain),
      cmocka_unit_test(test_close_before_draining),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
