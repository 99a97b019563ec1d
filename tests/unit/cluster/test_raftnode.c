/* tests/unit/cluster/test_raftnode.c - raftnode with the real libuv backend:
 * three (and four) raft_uv instances in one loop, temp data dirs, Raft
 * riding each node's authenticated node transport (cluster/raftbridge.h)
 * bound to port 0 (no port is chosen by the test; raft addresses are mere
 * identifiers). Batched claims (and their rate), failover to a serving leader,
 * membership add/remove with catch-up by snapshot, and the error paths (not
 * leader, close with requests queued). The lease watch lives in
 * cluster/member.c now (tests/unit/cluster/test_member.c, fake time). Times
 * are printed, never asserted against the wall clock (bench/ measures
 * them). Every test closes every handle: uv_loop_close() == 0. */
#include "lib/testlib.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/raftbridge.h"
#include "cluster/raftnode.h"
#include "cluster/transport.h"

#define MAXN 4

struct node {
  lmz_raftnode_t rn;
  lmz_transport_t t;
  lmz_raftbridge_t bridge_mem;
  lmz_raftbridge_t *bridge; /* &bridge_mem while raft runs */
  bool t_open, t_closed;
  char *dir;
  char addr[32];
  bool open;
  bool closed;
};

struct cl {
  uv_loop_t loop;
  struct node n[MAXN];
  unsigned count;
  struct lmz_lease_config lease;
  unsigned snapshot_threshold;
};

static const uint8_t cluster_key[32] = {42};

static void t_frame(lmz_conn_t *conn, const Lmz__Frame *f, void *data) {
  struct node *n = data;
  if (n->bridge)
    lmz_raftbridge_on_frame(n->bridge, conn, f);
}

static void t_state(lmz_conn_t *conn, int state, int status, void *data) {
  struct node *n = data;
  (void)status;
  if (n->bridge)
    lmz_raftbridge_on_conn_state(n->bridge, conn, state);
}

/* Node i's transport on port 0, dialing every node that exists already. */
static void transport_open(struct cl *c, unsigned i) {
  struct node *n = &c->n[i];
  char name[16];
  snprintf(name, sizeof name, "n%u", i + 1);
  struct lmz_transport_options o = {.key = cluster_key, .node_id = i + 1,
                                    .name = name, .listen = "127.0.0.1:0",
                                    .on_frame = t_frame, .on_conn_state = t_state,
                                    .data = n};
  assert_int_equal(lmz_transport_init(&c->loop, &n->t, &o), 0);
  n->t_open = true;
  for (unsigned j = 0; j < i; j++) {
    char peer[32];
    snprintf(peer, sizeof peer, "127.0.0.1:%d", lmz_transport_port(&c->n[j].t));
    lmz_conn_t *conn;
    assert_int_equal(lmz_transport_connect(&n->t, j + 1, peer, &conn), 0);
  }
}

static unsigned role_calls, serving_calls;
static unsigned replication; /* R of the nodes opened next (0 = none) */

static void on_role(lmz_raftnode_t *rn, int role, bool is_serving,
                    uint64_t leader_id) {
  (void)rn;
  (void)leader_id;
  role_calls++;
  if (is_serving) {
    assert_int_equal(role, RAFT_LEADER);
    serving_calls++;
  }
}

/* (Re)opens node i on its data dir and address. */
static void node_open(struct cl *c, unsigned i) {
  struct node *n = &c->n[i];
  struct lmz_raftnode_options o = {
      .id = i + 1,
      .address = n->addr,
      .data_dir = n->dir,
      /* sanitizer builds (tl_time_scale): all three nodes share this
       * thread, and a 4096-claim entry applied under TSan holds it past a
       * 200 ms election timeout: leadership would change every second */
      .election_timeout_ms = 200 * tl_time_scale(),
      .heartbeat_timeout_ms = 20 * tl_time_scale(),
      .snapshot_threshold = c->snapshot_threshold,
      .lease = c->lease,
      .on_role = on_role,
      .replication_factor = replication,
  };
  n->bridge = &n->bridge_mem;
  assert_int_equal(lmz_raftbridge_init(n->bridge, &c->loop, &n->t), 0);
  o.custom_transport = lmz_raftbridge_transport(n->bridge);
  o.transport_free = lmz_raftbridge_close;
  n->rn.data = n;
  n->closed = false;
  int rv = lmz_raftnode_init(&c->loop, &n->rn, &o);
  if (rv)
    fprintf(stderr, "init: %s\n", n->rn.errmsg);
  assert_int_equal(rv, 0);
  n->open = true;
}

static void node_init(struct cl *c, unsigned i) {
  struct node *n = &c->n[i];
  n->dir = tl_mkdtemp("lmz-raftnode");
  assert_non_null(n->dir);
  snprintf(n->addr, sizeof n->addr, "10.0.0.%u:1", i + 1); /* an id */
  transport_open(c, i);
  node_open(c, i);
}

static struct cl *cl_new(unsigned voters, struct lmz_lease_config lease,
                         unsigned threshold) {
  struct cl *c = calloc(1, sizeof *c);
  assert_int_equal(uv_loop_init(&c->loop), 0);
  c->lease = lease;
  c->snapshot_threshold = threshold;
  for (unsigned i = 0; i < voters; i++)
    node_init(c, i);
  struct lmz_raftnode_server srv[MAXN];
  for (unsigned i = 0; i < voters; i++)
    srv[i] = (struct lmz_raftnode_server){i + 1, c->n[i].addr, RAFT_VOTER};
  for (unsigned i = 0; i < voters; i++) {
    assert_int_equal(lmz_raftnode_bootstrap(&c->n[i].rn, srv, voters), 0);
    assert_int_equal(lmz_raftnode_start(&c->n[i].rn), 0);
  }
  c->count = voters;
  return c;
}

static void on_closed(lmz_raftnode_t *rn) {
  struct node *n = rn->data;
  n->closed = true;
}

static void node_close(struct node *n) {
  n->bridge = NULL; /* raft closes it while closing: feed it nothing more */
  if (n->open)
    lmz_raftnode_close(&n->rn, on_closed);
  n->open = false;
}

static void t_closed(lmz_transport_t *t) {
  struct node *n = t->data;
  n->t_closed = true;
}

static bool transports_closed(void *arg) {
  struct cl *c = arg;
  for (unsigned i = 0; i < c->count; i++)
    if (c->n[i].t_open && !c->n[i].t_closed)
      return false;
  return true;
}

static bool all_closed(void *arg) {
  struct cl *c = arg;
  for (unsigned i = 0; i < c->count; i++)
    if (c->n[i].dir && !c->n[i].closed)
      return false;
  return true;
}

static bool run_until(struct cl *c, bool (*pred)(void *), void *arg,
                      uint64_t timeout_ms) {
  uint64_t end = tl_now_ms() + timeout_ms * tl_time_scale(); /* a hang guard */
  while (!pred(arg)) {
    if (tl_now_ms() > end)
      return false;
    uv_run(&c->loop, UV_RUN_ONCE);
  }
  return true;
}

static void cl_free(struct cl *c) {
  for (unsigned i = 0; i < c->count; i++)
    node_close(&c->n[i]);
  assert_true(run_until(c, all_closed, c, 10000));
  for (unsigned i = 0; i < c->count; i++) {
    c->n[i].t.data = &c->n[i];
    if (c->n[i].t_open)
      lmz_transport_close(&c->n[i].t, t_closed);
  }
  assert_true(run_until(c, transports_closed, c, 10000));
  assert_int_equal(uv_loop_close(&c->loop), 0);
  for (unsigned i = 0; i < c->count; i++) {
    tl_rmtree(c->n[i].dir);
    free(c->n[i].dir);
  }
  free(c);
}

static struct node *serving(struct cl *c) {
  for (unsigned i = 0; i < c->count; i++)
    if (c->n[i].open && lmz_raftnode_is_serving(&c->n[i].rn))
      return &c->n[i];
  return NULL;
}

static bool has_serving(void *arg) { return serving(arg) != NULL; }

static bool flag_closed(void *arg) { return ((struct node *)arg)->closed; }

/* ---- proposals ------------------------------------------------------------ */

struct pwait {
  lmz_raftnode_propose_t req;
  bool done;
  int status;
  struct lmz_dir_item item;
};

static void pwait_cb(lmz_raftnode_propose_t *req, int status,
                     const struct lmz_dir_result *res) {
  struct pwait *w = req->data;
  w->done = true;
  w->status = status;
  if (res && res->n)
    w->item = res->items[0];
}

static bool pwait_done(void *arg) { return ((struct pwait *)arg)->done; }

static struct lmz_dir_item propose(struct cl *c, struct node *l, lmz_buf *b) {
  struct pwait w = {0};
  w.req.data = &w;
  assert_int_equal(lmz_raftnode_propose(&l->rn, &w.req, b->data, b->len,
                                        pwait_cb),
                   0);
  lmz_buf_reset(b);
  assert_true(run_until(c, pwait_done, &w, 5000));
  assert_int_equal(w.status, 0);
  return w.item;
}

static void register_nodes(struct cl *c, struct node *l, unsigned n) {
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t id = 1; id <= n; id++) {
    assert_int_equal(lmz_dir_encode_node_upsert(&b, id, LMZ_DIR_UP,
                                                c->n[id - 1].addr, NULL, 0),
                     0);
    assert_int_equal(propose(c, l, &b).status, LMZ_DIR_PLACED);
    uint32_t lease = c->lease.duration_ms ? c->lease.duration_ms : 60000;
    assert_int_equal(lmz_dir_encode_lease_renew(&b, id, lease, 0), 0);
    assert_int_equal(propose(c, l, &b).status, LMZ_DIR_PLACED);
  }
  lmz_buf_free(&b);
}

/* ---- claims --------------------------------------------------------------- */

struct claims {
  lmz_raftnode_claim_t *reqs;
  struct lmz_dir_item *items;
  int *status;
  size_t n, done;
  struct cl *retry_in; /* retry LMZ_ENOTLEADER on the new leader */
  const char *prefix;
  size_t retries;
};

static void claim_one(struct node *l, struct claims *cs, size_t i);

static void claim_cb(lmz_raftnode_claim_t *req, int status,
                     const struct lmz_dir_item *item) {
  struct claims *cs = req->data;
  size_t i = (size_t)(req - cs->reqs);
  if (status == LMZ_ENOTLEADER && cs->retry_in) {
    /* outcome unknown; claims are idempotent: ask again (from the check
     * hook's point of view this is a brand new claim) */
    cs->status[i] = LMZ_ENOTLEADER;
    cs->retries++;
    return;
  }
  cs->status[i] = status;
  if (item)
    cs->items[i] = *item;
  cs->done++;
}

static bool claims_done(void *arg) {
  struct claims *cs = arg;
  return cs->done == cs->n;
}

static void claims_init(struct claims *cs, size_t n) {
  *cs = (struct claims){0};
  cs->reqs = calloc(n, sizeof *cs->reqs);
  cs->items = calloc(n, sizeof *cs->items);
  cs->status = calloc(n, sizeof *cs->status);
  cs->n = n;
  cs->done = 0;
  for (size_t i = 0; i < n; i++)
    cs->reqs[i].data = cs;
}

static void claims_free(struct claims *cs) {
  free(cs->reqs);
  free(cs->items);
  free(cs->status);
}

static void claim_one(struct node *l, struct claims *cs, size_t i) {
  char inst[32];
  int len = snprintf(inst, sizeof inst, "%s%zu", cs->prefix, i);
  cs->status[i] = 1000; /* pending */
  int rv = lmz_raftnode_claim(&l->rn, &cs->reqs[i], "DOC", 3, inst,
                              (size_t)len, LMZ_PLACEMENT_HASH, 0, 0, claim_cb);
  if (rv == LMZ_ENOTLEADER && cs->retry_in) {
    cs->status[i] = LMZ_ENOTLEADER; /* stepped down meanwhile: later */
    return;
  }
  assert_int_equal(rv, 0);
}

static void claim_all(struct node *l, struct claims *cs, const char *prefix) {
  cs->prefix = prefix;
  for (size_t i = 0; i < cs->n; i++)
    claim_one(l, cs, i);
}

/* Waits for every claim, re-sending the ones that failed with
 * LMZ_ENOTLEADER to whoever serves next (the documented retry). */
static bool claims_settled(void *arg) {
  struct claims *cs = arg;
  struct node *l = serving(cs->retry_in);
  for (size_t i = 0; l && i < cs->n; i++)
    if (cs->status[i] == LMZ_ENOTLEADER)
      claim_one(l, cs, i);
  return cs->done == cs->n;
}

struct applied_arg {
  struct cl *c;
  uint64_t n;
};

static bool all_have(void *arg) {
  struct applied_arg *a = arg;
  for (unsigned i = 0; i < a->c->count; i++)
    if (a->c->n[i].open && lmz_dir_n_actors(a->c->n[i].rn.dir) != a->n)
      return false;
  return true;
}

static void test_claims_rate_and_failover(void **state) {
  (void)state;
  struct cl *c = cl_new(3, (struct lmz_lease_config){0}, 0);
  assert_true(run_until(c, has_serving, c, 5000));
  struct node *l = serving(c);
  register_nodes(c, l, 3);

  enum { N = 100000 };
  struct claims cs;
  claims_init(&cs, N);
  cs.retry_in = c;
  uint64_t t0 = tl_now_ms();
  claim_all(l, &cs, "actor-");
  assert_true(run_until(c, claims_settled, &cs, 60000));
  uint64_t t1 = tl_now_ms();
  printf("# %d claims committed in %llu ms (%.0f claims/s), %llu entries, "
         "%zu retried after a leader change\n",
         N, (unsigned long long)(t1 - t0),
         N * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1),
         (unsigned long long)l->rn.n_entries, cs.retries);
  assert_true(run_until(c, has_serving, c, 5000));
  l = serving(c); /* normally unchanged */
  unsigned per_node[4] = {0};
  uint8_t *seen = calloc(N + 1, 1);
  for (size_t i = 0; i < N; i++) {
    /* EXISTING only for a retried claim whose first try had committed */
    assert_true(cs.status[i] == LMZ_DIR_PLACED ||
                (cs.retries && cs.status[i] == LMZ_DIR_EXISTING));
    assert_true(cs.items[i].epoch >= 1 && cs.items[i].epoch <= N);
    assert_int_equal(seen[cs.items[i].epoch]++, 0); /* epochs unique */
    assert_true(cs.items[i].node_id >= 1 && cs.items[i].node_id <= 3);
    per_node[cs.items[i].node_id]++;
  }
  free(seen);
  for (int i = 1; i <= 3; i++)
    assert_in_range(per_node[i], N / 3 - N / 30, N / 3 + N / 30);
  assert_int_equal(lmz_dir_epoch_seq(l->rn.dir), N);
  /* batching, whoever led: every claim committed went into an entry of
   * up to max_batch (4096) claims, and the entries stay few (a retried
   * claim adds to a later batch, it does not get an entry of its own) */
  uint64_t entries = 0, committed = 0;
  for (unsigned i = 0; i < 3; i++) {
    entries += c->n[i].rn.n_entries;
    committed += c->n[i].rn.n_claims;
  }
  assert_true(committed >= N);
  assert_true(entries >= N / 4096 && entries < N / 100);
  struct applied_arg aa = {c, N};
  assert_true(run_until(c, all_have, &aa, 10000));
  for (unsigned i = 0; i < 3; i++)
    assert_true(lmz_dir_equal(l->rn.dir, c->n[i].rn.dir));

  /* failover: the leader goes away; a new one serves within a bound */
  uint64_t tk = tl_now_ms();
  node_close(l);
  assert_true(run_until(c, has_serving, c, 5000));
  uint64_t tf = tl_now_ms();
  struct node *nl = serving(c);
  assert_ptr_not_equal(nl, l);
  printf("# failover: new leader serving after %llu ms\n",
         (unsigned long long)(tf - tk));
  /* re-claims return the existing placements; nothing was lost */
  struct claims again;
  claims_init(&again, 1000);
  claim_all(nl, &again, "actor-");
  assert_true(run_until(c, claims_done, &again, 10000));
  for (size_t i = 0; i < 1000; i++) {
    assert_int_equal(again.status[i], LMZ_DIR_EXISTING);
    assert_int_equal(again.items[i].epoch, cs.items[i].epoch);
    assert_int_equal(again.items[i].node_id, cs.items[i].node_id);
  }
  /* the old leader restarts on its data dir: bootstrap says "already
   * done", start reloads the log, and it catches up with the cluster */
  assert_true(run_until(c, flag_closed, l, 5000));
  unsigned li = (unsigned)(l - c->n);
  node_open(c, li);
  struct lmz_raftnode_server srv[3];
  for (unsigned i = 0; i < 3; i++)
    srv[i] = (struct lmz_raftnode_server){i + 1, c->n[i].addr, RAFT_VOTER};
  assert_int_equal(lmz_raftnode_bootstrap(&l->rn, srv, 3), LMZ_EEXIST);
  assert_int_equal(lmz_raftnode_start(&l->rn), 0);
  aa.n = N;
  assert_true(run_until(c, all_have, &aa, 10000));
  assert_true(lmz_dir_equal(nl->rn.dir, l->rn.dir));
  assert_true(serving_calls >= 2 && role_calls >= serving_calls);
  claims_free(&again);
  claims_free(&cs);
  cl_free(c);
}

/* With a replication factor, the leader names each durable actor's backups:
 * the owner's runners-up in the ranking over the live nodes (placement.h),
 * capped by how many there are; stateless claims (REPLACE_DOWN) get none.
 * Every replica records the same lists. */
static void test_claims_name_backups(void **state) {
  (void)state;
  replication = 5; /* more than the 3 nodes: capped at 2 backups */
  struct cl *c = cl_new(3, (struct lmz_lease_config){0}, 0);
  replication = 0;
  assert_true(run_until(c, has_serving, c, 5000));
  struct node *l = serving(c);
  register_nodes(c, l, 3);
  enum { N = 300, W = 30 };
  struct claims cs, ws;
  claims_init(&cs, N);
  claim_all(l, &cs, "b");
  claims_init(&ws, W);
  for (size_t i = 0; i < W; i++) {
    char inst[16];
    int len = snprintf(inst, sizeof inst, "w%zu", i);
    assert_int_equal(lmz_raftnode_claim(&l->rn, &ws.reqs[i], "DOC", 3, inst,
                                        (size_t)len, LMZ_PLACEMENT_HASH, 0,
                                        LMZ_DIR_CLAIM_REPLACE_DOWN, claim_cb),
                     0);
  }
  assert_true(run_until(c, claims_done, &cs, 10000));
  assert_true(run_until(c, claims_done, &ws, 10000));
  uint64_t live[3] = {1, 2, 3};
  for (size_t i = 0; i < N; i++) {
    char inst[16];
    int len = snprintf(inst, sizeof inst, "b%zu", i);
    assert_int_equal(cs.status[i], LMZ_DIR_PLACED);
    struct lmz_dir_placement p;
    assert_int_equal(lmz_dir_placement_get(l->rn.dir, "DOC", 3, inst,
                                           (size_t)len, &p),
                     0);
    assert_int_equal(p.node_id, cs.items[i].node_id);
    uint64_t want[2];
    assert_int_equal(lmz_placement_rank(live, 3, p.node_id, "DOC", 3, inst,
                                        (size_t)len, want, 2),
                     2);
    assert_int_equal(p.n_backups, 2);
    assert_int_equal(p.backups[0], want[0]);
    assert_int_equal(p.backups[1], want[1]);
  }
  for (size_t i = 0; i < W; i++) {
    char inst[16];
    int len = snprintf(inst, sizeof inst, "w%zu", i);
    assert_int_equal(ws.status[i], LMZ_DIR_PLACED);
    struct lmz_dir_placement p;
    assert_int_equal(lmz_dir_placement_get(l->rn.dir, "DOC", 3, inst,
                                           (size_t)len, &p),
                     0);
    assert_int_equal(p.n_backups, 0);
  }
  assert_int_equal(lmz_dir_count_under_replicated(l->rn.dir, 0, 2), W);
  struct applied_arg aa = {c, N + W};
  assert_true(run_until(c, all_have, &aa, 10000));
  for (unsigned i = 0; i < 3; i++)
    assert_true(lmz_dir_equal(l->rn.dir, c->n[i].rn.dir));
  claims_free(&cs);
  claims_free(&ws);
  cl_free(c);
}

/* ---- errors ---------------------------------------------------------------- */

static void test_not_leader_and_close_cancels(void **state) {
  (void)state;
  struct cl *c = cl_new(3, (struct lmz_lease_config){0}, 0);
  assert_true(run_until(c, has_serving, c, 5000));
  struct node *l = serving(c);
  struct node *f = &c->n[(unsigned)(l - c->n + 1) % 3];
  lmz_raftnode_claim_t req;
  assert_int_equal(lmz_raftnode_claim(&f->rn, &req, "DOC", 3, "x", 1,
                                      LMZ_PLACEMENT_HASH, 0, 0, claim_cb),
                   LMZ_ENOTLEADER);
  assert_int_equal(lmz_raftnode_claim(&l->rn, &req, "", 0, "x", 1,
                                      LMZ_PLACEMENT_HASH, 0, 0, claim_cb),
                   LMZ_EINVAL);
  assert_int_equal(lmz_raftnode_claim(&l->rn, &req, "DOC", 3, "x", 1,
                                      LMZ_PLACEMENT_HASH, 0, 0x4, claim_cb),
                   LMZ_EINVAL);
  uint64_t lid = lmz_raftnode_leader(&f->rn, NULL);
  assert_int_equal(lid, l->rn.opts.id);
  /* no node is registered yet: nothing to place on */
  struct claims cs;
  claims_init(&cs, 3);
  claim_all(l, &cs, "u");
  assert_true(run_until(c, claims_done, &cs, 5000));
  for (int i = 0; i < 3; i++)
    assert_int_equal(cs.status[i], LMZ_EUNAVAILABLE);
  /* queued claims fail with ECANCELED when the node closes */
  claims_free(&cs);
  claims_init(&cs, 5);
  claim_all(l, &cs, "c");
  node_close(l);
  assert_int_equal(cs.done, 5);
  for (int i = 0; i < 5; i++)
    assert_int_equal(cs.status[i], LMZ_ECANCELED);
  assert_int_equal(lmz_raftnode_claim(&l->rn, &req, "DOC", 3, "x", 1,
                                      LMZ_PLACEMENT_HASH, 0, 0, claim_cb),
                   LMZ_ECANCELED);
  claims_free(&cs);
  /* a node that never started closes cleanly too */
  node_init(c, 3);
  c->count = 4;
  node_close(&c->n[3]);
  assert_true(run_until(c, flag_closed, &c->n[3], 5000));
  /* bad options, missing data dir */
  lmz_raftnode_t bad;
  struct lmz_raftnode_options o = {.id = 9, .address = "127.0.0.1:1",
                                   .data_dir = "/nonexistent/lmz"};
  assert_int_equal(lmz_raftnode_init(&c->loop, &bad, &o), LMZ_ENOTFOUND);
  o.id = 0;
  assert_int_equal(lmz_raftnode_init(&c->loop, &bad, &o), LMZ_EINVAL);
  cl_free(c);
}

/* ---- membership -------------------------------------------------------------- */

struct cwait {
  lmz_raftnode_change_t req;
  bool done;
  int status;
};

static void cwait_cb(lmz_raftnode_change_t *req, int status) {
  struct cwait *w = req->data;
  w->done = true;
  w->status = status;
}

static bool cwait_done(void *arg) { return ((struct cwait *)arg)->done; }

static void test_join_and_remove(void **state) {
  (void)state;
  struct cl *c = cl_new(3, (struct lmz_lease_config){0}, 64);
  assert_true(run_until(c, has_serving, c, 5000));
  struct node *l = serving(c);
  register_nodes(c, l, 3);
  /* enough entries for a few snapshots (threshold 64) */
  for (int round = 0; round < 200; round++) {
    struct claims cs;
    claims_init(&cs, 20);
    char prefix[16];
    snprintf(prefix, sizeof prefix, "r%d-", round);
    claim_all(l, &cs, prefix);
    assert_true(run_until(c, claims_done, &cs, 5000));
    claims_free(&cs);
  }
  /* node 4: empty dir, no bootstrap, started, then added as a voter */
  node_init(c, 3);
  c->count = 4;
  assert_int_equal(lmz_raftnode_start(&c->n[3].rn), 0);
  struct cwait w = {0}, w2 = {0};
  w.req.data = &w;
  w2.req.data = &w2;
  assert_int_equal(lmz_raftnode_add(&l->rn, &w.req, 4, c->n[3].addr,
                                    RAFT_VOTER, cwait_cb),
                   0);
  /* a second change queues behind the first */
  assert_int_equal(lmz_raftnode_assign(&l->rn, &w2.req, 4, RAFT_STANDBY,
                                       cwait_cb),
                   0);
  assert_true(run_until(c, cwait_done, &w, 10000));
  assert_int_equal(w.status, 0);
  assert_true(run_until(c, cwait_done, &w2, 10000));
  assert_int_equal(w2.status, 0);
  struct applied_arg aa = {c, 4000};
  assert_true(run_until(c, all_have, &aa, 10000));
  assert_true(lmz_dir_equal(l->rn.dir, c->n[3].rn.dir));
  /* the standby keeps receiving the directory */
  struct claims cs;
  claims_init(&cs, 10);
  claim_all(l, &cs, "late");
  assert_true(run_until(c, claims_done, &cs, 5000));
  aa.n = 4010;
  assert_true(run_until(c, all_have, &aa, 10000));
  claims_free(&cs);
  /* remove it again */
  w = (struct cwait){0};
  w.req.data = &w;
  assert_int_equal(lmz_raftnode_remove(&l->rn, &w.req, 4, cwait_cb), 0);
  assert_true(run_until(c, cwait_done, &w, 10000));
  assert_int_equal(w.status, 0);
  assert_int_equal(lmz_raftnode_add(&l->rn, &w.req, 0, "x", RAFT_VOTER,
                                    cwait_cb),
                   LMZ_EINVAL);
  cl_free(c);
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claims_rate_and_failover),
      cmocka_unit_test(test_claims_name_backups),
      cmocka_unit_test(test_not_leader_and_close_cancels),
      cmocka_unit_test(test_join_and_remove),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
