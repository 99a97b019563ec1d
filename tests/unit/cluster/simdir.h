/* tests/unit/cluster/simdir.h - an in-process cluster on fake time for the
 * directory client and membership tests: N nodes on the simulated
 * transport (cluster/transport_sim.h), each with its own directory replica
 * (the real FSM, cluster/directory.c), its directory client and its member
 * loop, and a fake Raft: the leader's local requests commit `commit_ms`
 * after they were made, applied to every replica at once; when leadership
 * moves, the old leader's uncommitted requests fail LMZ_ENOTLEADER, as
 * raftnode.c does. Deterministic: nothing reads a real clock. */
#ifndef LMZ_TESTS_SIMDIR_H
#define LMZ_TESTS_SIMDIR_H

#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/dirclient.h"
#include "cluster/member.h"
#include "cluster/placement.h"
#include "cluster/transport_sim.h"

#define SIM_MAXN 5
#define SIM_TICK_MS 20
#define SIM_LATENCY_MS 1
#define SIM_COMMIT_MS 5

struct sim;

struct snode {
  uint64_t id;
  struct sim *s;
  lmz_dir_t dir_mem, *dir; /* dir = &dir_mem once initialized */
  lmz_dirclient_t dc;
  lmz_member_t mb;
  lmz_dirclient_t *dcp; /* &dc, or a cluster's (test_router.c) */
  lmz_member_t *mbp;
  lmz_cluster_t *cl; /* attached cluster: its tick runs instead */
  bool member_on;
  uint64_t known_leader;
};

struct spend { /* a local request on the leader, not committed yet */
  struct spend *next;
  struct snode *on;
  lmz_dirclient_req_t *req;
  uint64_t at_ms;
  bool claim;
  lmz_buf cmd;
};

struct slag { /* a committed command a lagging replica applies later */
  struct slag *next;
  uint64_t at_ms;
  lmz_buf cmd;
};

struct sim {
  lmz_simnet_t net;
  struct snode n[SIM_MAXN];
  size_t count;
  uint64_t leader;
  struct spend *pend;
  /* apply_lag_ms[i]: node i+1's replica applies commits this much later
   * (a follower learns a commit with the next append); 0 = at once */
  uint64_t apply_lag_ms[SIM_MAXN];
  struct slag *lag[SIM_MAXN];
  /* frames other than directory ones, to the test (may be NULL) */
  void (*frame_hook)(struct snode *n, uint64_t from, const Lmz__Frame *f);
  void *hook_data;
  struct lmz_lease_config lease;
  uint64_t commits;
};

static uint64_t sim_now(void *ctx) { return ((struct sim *)ctx)->net.now_ms; }

static bool ops_is_serving(void *ctx) {
  struct snode *n = ctx;
  return n->s->leader == n->id;
}

static uint64_t ops_leader(void *ctx) { return ((struct snode *)ctx)->known_leader; }

static bool sim_connected(void *ctx, uint64_t id) {
  struct snode *n = ctx;
  return lmz_simnet_is_up(&n->s->net, n->id, id);
}

static void spend_push(struct sim *s, struct spend *p) {
  struct spend **pp = &s->pend;
  while (*pp)
    pp = &(*pp)->next;
  *pp = p;
}

static int ops_claim(void *ctx, lmz_dirclient_req_t *req, const char *binding,
                     const char *instance, enum lmz_placement_policy policy,
                     uint64_t local_node, uint32_t flags) {
  struct snode *n = ctx;
  uint64_t cand[SIM_MAXN], owner = 0;
  struct lmz_placement_view v = {n->dir, n->id, n->s->net.now_ms, sim_connected,
                                 n};
  size_t k = lmz_placement_candidates(&v, true, cand, SIM_MAXN);
  int rv = lmz_placement_choose(policy, cand, k, local_node, binding,
                                strlen(binding), instance, strlen(instance),
                                &owner);
  if (rv)
    return rv;
  struct spend *p = calloc(1, sizeof *p);
  struct lmz_dir_claim cl = {binding, strlen(binding), instance,
                             strlen(instance), owner, req->id, flags, 0, NULL};
  assert_int_equal(lmz_dir_encode_claims(&p->cmd, &cl, 1), 0);
  *p = (struct spend){NULL, n, req, n->s->net.now_ms + SIM_COMMIT_MS, true,
                      p->cmd};
  spend_push(n->s, p);
  return 0;
}

static int ops_propose(void *ctx, lmz_dirclient_req_t *req, const void *cmd,
                       size_t len) {
  struct snode *n = ctx;
  struct spend *p = calloc(1, sizeof *p);
  *p = (struct spend){NULL, n, req, n->s->net.now_ms + SIM_COMMIT_MS, false,
                      LMZ_BUF_INIT};
  assert_int_equal(lmz_buf_append(&p->cmd, cmd, len), 0);
  spend_push(n->s, p);
  return 0;
}

static int ops_send(void *ctx, uint64_t peer, const Lmz__Frame *f) {
  struct snode *n = ctx;
  return lmz_simnet_send(&n->s->net, n->id, peer, f);
}

static uint64_t ops_now(void *ctx) { return ((struct snode *)ctx)->s->net.now_ms; }

/* Node i's replica will apply `cmd` lag ms from now (in order). */
static void sim_lag_push(struct sim *s, size_t i, const lmz_buf *cmd) {
  struct slag *l = calloc(1, sizeof *l), **pp = &s->lag[i];
  assert_non_null(l);
  l->at_ms = s->net.now_ms + s->apply_lag_ms[i];
  assert_int_equal(lmz_buf_append(&l->cmd, cmd->data, cmd->len), 0);
  while (*pp)
    pp = &(*pp)->next;
  *pp = l;
}

/* Applies what a lagging replica has due (all of it when `all`). */
static void sim_lag_apply(struct sim *s, size_t i, uint64_t now, bool all) {
  while (s->lag[i] && (all || s->lag[i]->at_ms <= now)) {
    struct slag *l = s->lag[i];
    s->lag[i] = l->next;
    const struct lmz_dir_result *r;
    assert_int_equal(lmz_dir_apply(s->n[i].dir, l->cmd.data, l->cmd.len, &r), 0);
    lmz_buf_free(&l->cmd);
    free(l);
  }
}

/* Commits the leader's due requests: every replica applies them (a lagging
 * one later, and never the leader's own). */
static void sim_commit(struct sim *s, uint64_t now) {
  while (s->pend && s->pend->at_ms <= now) {
    struct spend *p = s->pend;
    s->pend = p->next;
    const struct lmz_dir_result *res = NULL;
    for (size_t i = 0; i < s->count; i++) {
      const struct lmz_dir_result *r;
      if (s->apply_lag_ms[i] && s->n[i].id != s->leader) {
        sim_lag_push(s, i, &p->cmd);
        continue;
      }
      assert_int_equal(lmz_dir_apply(s->n[i].dir, p->cmd.data, p->cmd.len, &r), 0);
      if (&s->n[i] == p->on)
        res = r;
    }
    s->commits++;
    const struct lmz_dir_item *item = res && res->n ? &res->items[0] : NULL;
    int status = item ? item->status : res->status;
    lmz_buf_free(&p->cmd);
    lmz_dirclient_local_done(p->req, status, item);
    free(p);
  }
}

static void on_tick(void *ctx, uint64_t now) {
  struct snode *n = ctx;
  sim_lag_apply(n->s, (size_t)(n - n->s->n), now, false);
  if (n->s->leader == n->id)
    sim_commit(n->s, now);
  if (n->cl && n->member_on) {
    lmz_cluster_tick(n->cl, now);
    return;
  }
  lmz_dirclient_tick(n->dcp, now);
  if (n->member_on)
    lmz_member_tick(n->mbp, now);
}

static void on_frame(void *ctx, uint64_t from, const Lmz__Frame *f) {
  struct snode *n = ctx;
  if (f->body_case == LMZ__FRAME__BODY_DIR_REQUEST)
    lmz_dirclient_on_request(n->dcp, f->dir_request);
  else if (f->body_case == LMZ__FRAME__BODY_DIR_RESPONSE)
    lmz_dirclient_on_response(n->dcp, f->dir_response);
  else if (n->s->frame_hook)
    n->s->frame_hook(n, from, f);
}

static void on_down(void *ctx, uint64_t peer) {
  struct snode *n = ctx;
  lmz_dirclient_peer_down(n->dcp, peer);
}

static struct sim *sim_new(size_t count, uint32_t lease_ms) {
  struct sim *s = calloc(1, sizeof *s);
  s->count = count;
  s->lease = (struct lmz_lease_config){lease_ms, lease_ms / 10};
  lmz_simnet_init(&s->net, SIM_LATENCY_MS, SIM_TICK_MS);
  s->leader = 1;
  for (size_t i = 0; i < count; i++) {
    struct snode *n = &s->n[i];
    n->id = i + 1;
    n->s = s;
    n->known_leader = 1;
    n->dcp = &n->dc;
    n->mbp = &n->mb;
    assert_int_equal(lmz_dir_init(n->dir = &n->dir_mem), 0);
    lmz_dir_set_clock(n->dir, sim_now, s);
    struct lmz_dirclient_options o = {
        .node_id = n->id,
        .ops = {ops_is_serving, ops_leader, ops_claim, ops_propose, ops_send,
                ops_now},
        .ops_ctx = n};
    lmz_dirclient_init(&n->dc, &o);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%zu", 7100 + i);
    struct lmz_member_options mo = {.node_id = n->id, .node_address = addr,
                                    .raft_address = addr, .lease = s->lease,
                                    .dc = &n->dc, .dir = n->dir};
    assert_int_equal(lmz_member_init(&n->mb, &mo), 0);
    struct lmz_simnet_node sn = {n->id, on_frame, on_down, on_tick, n, false};
    assert_int_equal(lmz_simnet_add(&s->net, &sn), 0);
  }
  return s;
}

/* Leadership moves to `id` (0 = none): the old leader's uncommitted
 * requests fail LMZ_ENOTLEADER, every node learns the new leader. */
static void sim_set_leader(struct sim *s, uint64_t id) {
  struct spend *p = s->pend;
  s->pend = NULL;
  s->leader = id;
  while (p) {
    struct spend *next = p->next;
    lmz_buf_free(&p->cmd);
    lmz_dirclient_local_done(p->req, LMZ_ENOTLEADER, NULL);
    free(p);
    p = next;
  }
  for (size_t i = 0; i < s->count; i++) {
    s->n[i].known_leader = id;
    lmz_dirclient_leader_changed(s->n[i].dcp, id);
  }
}

/* Node i's directory client and member become cluster c's (initialized
 * here on the sim: test_router.c). */
static inline void sim_attach_cluster(struct sim *s, size_t i, lmz_cluster_t *c,
                                      uint32_t lease_ms) {
  struct snode *n = &s->n[i];
  lmz_member_close(&n->mb);
  lmz_dirclient_close(&n->dc);
  struct lmz_cluster_sim cs = {.node_id = n->id, .now_ms = sim_now,
                               .clock_ctx = s, .dir = n->dir,
                               .ops = n->dc.o.ops, .ops_ctx = n,
                               .lease_ms = lease_ms, .connected = sim_connected};
  assert_int_equal(lmz_cluster_init_sim(c, &cs), 0);
  n->dcp = &c->dc;
  n->mbp = &c->mb;
  n->cl = c;
}

static void sim_run(struct sim *s, uint64_t until) {
  lmz_simnet_run_until(&s->net, until);
}

static void sim_free(struct sim *s) {
  for (size_t i = 0; i < s->count; i++) {
    if (s->n[i].cl) { /* an attached cluster: its release queue too */
      lmz_cluster_close_sim(s->n[i].cl);
      continue;
    }
    lmz_member_close(s->n[i].mbp);
    lmz_dirclient_close(s->n[i].dcp);
  }
  sim_set_leader(s, 0); /* fails what the leader still holds */
  for (size_t i = 0; i < s->count; i++) {
    sim_lag_apply(s, i, 0, true);
    lmz_dir_close(s->n[i].dir);
  }
  lmz_simnet_close(&s->net);
  free(s);
}

/* ---- a request's outcome ------------------------------------------------- */

struct outcome {
  lmz_dirclient_req_t req;
  bool done;
  int status;
  uint64_t at_ms, node, epoch;
  struct sim *s;
};

static inline void outcome_cb(lmz_dirclient_req_t *req, int status,
                       const struct lmz_dir_item *item) {
  struct outcome *o = req->data;
  o->done = true;
  o->status = status;
  o->at_ms = o->s->net.now_ms;
  if (item) {
    o->node = item->node_id;
    o->epoch = item->epoch;
  }
}

static inline void outcome_init(struct outcome *o, struct sim *s) {
  memset(o, 0, sizeof *o);
  o->req.data = o;
  o->s = s;
}

/* Registers every node UP with a lease (through the leader, committed). */
static void sim_register_all(struct sim *s) {
  for (size_t i = 0; i < s->count; i++)
    s->n[i].member_on = true;
  uint64_t end = s->net.now_ms + 2000;
  for (;;) {
    bool all = true;
    for (size_t i = 0; i < s->count; i++)
      all = all && lmz_member_lease_valid(s->n[i].mbp, s->net.now_ms);
    if (all)
      return;
    assert_true(s->net.now_ms < end);
    sim_run(s, s->net.now_ms + SIM_TICK_MS);
  }
}

#endif
