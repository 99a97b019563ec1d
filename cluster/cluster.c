/* cluster/cluster.c - one node's cluster side (see cluster.h).
 *
 * Happy path: init copies the options, starts Raft (bridge over the node
 * transport unless raft_tcp), dials the initial voters and starts the tick.
 * Every TICK_MS the tick expires directory requests, runs the member loop
 * (registration, lease renewal, the leader's lease watch) and dials the
 * nodes the directory knows. Raft's role changes and lease grants wake the
 * router (parked calls route again).
 *
 * Failure modes:
 *  1. Raft cannot be created (directory, options): init fails, nothing on
 *     the loop;
 *  2. no leader: requests fail LMZ_ENOTLEADER (dirclient.h) and the member
 *     loop retries on the next tick;
 *  3. close: the tick stops, waiting requests are cancelled, Raft closes
 *     (its queued requests fail LMZ_ECANCELED), then the close callback. */
#include "cluster/cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster");

#define TICK_MS 20

static uint64_t hrtime_ms(void *ctx) {
  (void)ctx;
  return uv_hrtime() / 1000000u;
}

uint64_t lmz_cluster_now_ms(const lmz_cluster_t *c) {
  return c->o.now_ms(c->o.clock_ctx);
}

uint64_t lmz_cluster_node_id(const lmz_cluster_t *c) { return c->o.node_id; }

const lmz_dir_t *lmz_cluster_dir(const lmz_cluster_t *c) { return c->dir; }

bool lmz_cluster_lease_valid(const lmz_cluster_t *c, uint64_t now_ms) {
  return lmz_member_lease_valid(&c->mb, now_ms);
}

bool lmz_cluster_had_lease(const lmz_cluster_t *c) {
  return lmz_member_had_lease(&c->mb);
}

uint64_t lmz_cluster_next_id(lmz_cluster_t *c) {
  return lmz_dirclient_next_id(&c->dc);
}

void lmz_cluster_set_hooks(lmz_cluster_t *c, lmz_cluster_wake_cb wake,
                           lmz_cluster_tick_cb tick, void *arg) {
  c->wake = wake;
  c->tick_hook = tick;
  c->wake_arg = arg;
}

static void wake(lmz_cluster_t *c) {
  if (c->wake && !c->closing)
    c->wake(c, c->wake_arg);
}

/* ---- peers ----------------------------------------------------------------- */

lmz_conn_t *lmz_cluster_peer_conn(lmz_cluster_t *c, uint64_t id) {
  if (!c->t)
    return NULL;
  lmz_conn_t *conn = lmz_transport_peer(c->t, id);
  if (conn)
    return conn;
  const struct lmz_dir_node *dn = lmz_dir_node_get(c->dir, id);
  const char *addr = dn && dn->address[0] ? dn->address : NULL;
  for (size_t i = 0; !addr && i < c->o.n_voters; i++)
    if (c->voters[i].id == id)
      addr = c->voters[i].node_address;
  if (addr && lmz_transport_connect(c->t, id, addr, &conn) && !conn)
    return NULL;
  return conn;
}

int lmz_cluster_send(lmz_cluster_t *c, uint64_t id, const Lmz__Frame *f) {
  if (!c->t) /* simulated */
    return c->dc.o.ops.send(c->dc.o.ops_ctx, id, f);
  lmz_conn_t *conn = lmz_cluster_peer_conn(c, id);
  if (!conn || !lmz_conn_is_up(conn))
    return LMZ_EUNAVAILABLE;
  return lmz_conn_send(conn, f);
}

static bool is_connected(void *ctx, uint64_t id) {
  lmz_cluster_t *c = ctx;
  if (!c->t)
    return c->sim_connected && c->sim_connected(c->dc.o.ops_ctx, id);
  lmz_conn_t *conn = c->t ? lmz_transport_peer(c->t, id) : NULL;
  return conn && lmz_conn_is_up(conn);
}

size_t lmz__cluster_candidates(lmz_cluster_t *c, uint64_t now,
                               bool include_self, uint64_t *out, size_t cap) {
  struct lmz_placement_view v = {c->dir, c->o.node_id, now, is_connected, c};
  return lmz_placement_candidates(&v, include_self, out, cap);
}

static size_t candidates(void *ctx, uint64_t now, uint64_t *out, size_t cap) {
  return lmz__cluster_candidates(ctx, now, true, out, cap);
}

uint64_t lmz_cluster_choose(lmz_cluster_t *c, const char *binding,
                            const char *instance, bool include_self) {
  uint64_t cand[LMZ_DIR_MAX_NODES], out = 0;
  size_t k = lmz__cluster_candidates(c, lmz_cluster_now_ms(c), include_self,
                                     cand, LMZ_DIR_MAX_NODES);
  if (!k || lmz_placement_choose(LMZ_PLACEMENT_HASH, cand, k, 0, binding,
                                 strlen(binding), instance, strlen(instance),
                                 &out))
    return 0;
  return out;
}

static void connect_peers(lmz_cluster_t *c) {
  if (!c->t)
    return;
  for (size_t i = 0; i < lmz_dir_n_nodes(c->dir); i++) {
    const struct lmz_dir_node *dn = lmz_dir_node_at(c->dir, i);
    if (dn->id != c->o.node_id && dn->state != LMZ_DIR_DOWN &&
        dn->address[0] && !lmz_transport_peer(c->t, dn->id)) {
      lmz_conn_t *conn;
      lmz_transport_connect(c->t, dn->id, dn->address, &conn);
    }
  }
}

/* ---- the directory client's way to Raft and to the leader ----------------- */

static bool ops_is_serving(void *ctx) {
  lmz_cluster_t *c = ctx;
  return lmz_raftnode_is_serving(&c->rn);
}

static uint64_t ops_leader(void *ctx) {
  lmz_cluster_t *c = ctx;
  return lmz_raftnode_leader(&c->rn, NULL);
}

static void local_claim_cb(lmz_raftnode_claim_t *rq, int status,
                           const struct lmz_dir_item *item) {
  lmz_dirclient_local_done(rq->data, status, item);
}

static int ops_claim(void *ctx, lmz_dirclient_req_t *req, const char *binding,
                     const char *instance, enum lmz_placement_policy policy,
                     uint64_t local_node, uint32_t flags) {
  lmz_cluster_t *c = ctx;
  req->claim.data = req;
  return lmz_raftnode_claim(&c->rn, &req->claim, binding, strlen(binding),
                            instance, strlen(instance), policy, local_node,
                            flags, local_claim_cb);
}

static void local_propose_cb(lmz_raftnode_propose_t *rq, int status,
                             const struct lmz_dir_result *res) {
  const struct lmz_dir_item *item = res && res->n ? &res->items[0] : NULL;
  if (!status && item && item->status < 0)
    status = item->status;
  lmz_dirclient_local_done(rq->data, status, item);
}

static int ops_propose(void *ctx, lmz_dirclient_req_t *req, const void *cmd,
                       size_t len) {
  lmz_cluster_t *c = ctx;
  req->propose.data = req;
  return lmz_raftnode_propose(&c->rn, &req->propose, cmd, len,
                              local_propose_cb);
}

static int ops_send(void *ctx, uint64_t peer, const Lmz__Frame *f) {
  lmz_cluster_t *c = ctx;
  lmz_conn_t *conn = lmz_cluster_peer_conn(c, peer);
  return conn ? lmz_conn_send(conn, f) : LMZ_EUNAVAILABLE;
}

static uint64_t ops_now(void *ctx) { return lmz_cluster_now_ms(ctx); }

int lmz_cluster_claim(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                      const char *binding, const char *instance,
                      lmz_dirclient_cb cb) {
  return lmz_dirclient_claim(&c->dc, req, binding, instance,
                             LMZ_PLACEMENT_HASH, 0, cb);
}

int lmz_cluster_propose(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                        const lmz_buf *cmd, lmz_dirclient_cb cb) {
  return lmz_dirclient_propose(&c->dc, req, cmd, cb);
}

int lmz_cluster_release(lmz_cluster_t *c, const char *binding,
                        const char *instance, uint64_t epoch) {
  return lmz_relq_add(&c->rq, binding, instance, epoch);
}

int lmz_cluster_release_cancel(lmz_cluster_t *c, const char *binding,
                               const char *instance, bool revive) {
  return lmz_relq_cancel(&c->rq, binding, instance, revive);
}

int lmz_cluster_set_state(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                          enum lmz_dir_node_state state, lmz_dirclient_cb cb) {
  return lmz_member_set_state(&c->mb, req, state, cb);
}

static void member_done(lmz_member_t *m, int status, void *arg) {
  lmz_cluster_t *c = arg;
  (void)m;
  lmz_cluster_member_cb cb = c->member_cb;
  c->member_cb = NULL;
  cb(c, status, c->member_arg);
}

int lmz_cluster_member(lmz_cluster_t *c, bool add, uint64_t id,
                       const char *raft_address, bool standby,
                       lmz_cluster_member_cb cb, void *arg) {
  if (c->member_cb)
    return LMZ_EBUSY;
  int rv = lmz_member_change(&c->mb, add, id, raft_address, standby,
                             member_done, c);
  if (!rv) {
    c->member_cb = cb;
    c->member_arg = arg;
  }
  return rv;
}

/* ---- frames and events ------------------------------------------------------ */

void lmz_cluster_on_raft_data(lmz_cluster_t *c, lmz_conn_t *conn,
                              const Lmz__Frame *f) {
  if (c->bridge && !c->closing)
    lmz_raftbridge_on_frame(c->bridge, conn, f);
}

void lmz_cluster_on_dir_request(lmz_cluster_t *c, lmz_conn_t *conn,
                                const Lmz__Frame *f) {
  (void)conn;
  if (c->closing) /* Raft and dc are (being) closed: the peer retries */
    return;
  lmz_dirclient_on_request(&c->dc, f->dir_request);
}

void lmz_cluster_on_dir_response(lmz_cluster_t *c, lmz_conn_t *conn,
                                 const Lmz__Frame *f) {
  (void)conn;
  if (c->closing) /* dc cancelled its requests when it closed */
    return;
  lmz_dirclient_on_response(&c->dc, f->dir_response);
}

void lmz_cluster_on_conn_state(lmz_cluster_t *c, lmz_conn_t *conn, int state,
                               int status) {
  (void)status;
  if (c->closing) /* the bridge is closed while closing; dc is closed */
    return;
  if (c->bridge)
    lmz_raftbridge_on_conn_state(c->bridge, conn, state);
  if (state == LMZ_CONN_DOWN) /* requests waiting on it: retry elsewhere */
    lmz_dirclient_peer_down(&c->dc, lmz_conn_peer_id(conn));
  if (c->repl && lmz_conn_peer_id(conn))
    lmz_repl_on_link(c->repl, lmz_conn_peer_id(conn), state == LMZ_CONN_UP);
}

/* A new leader known (or serving here): requests waiting on the old one
 * fail now and parked calls route again, so the first claims after a
 * leader loss wait for the election, not for the request timeout. */
static void role_cb(lmz_raftnode_t *rn, int role, bool serving,
                    uint64_t leader_id) {
  lmz_cluster_t *c = rn->data;
  bool new_leader = leader_id != c->leader_id;
  c->role = role;
  c->leader_id = leader_id;
  LMZ_LOG_INFO(&log_ns, "raft role %d%s, leader %llu", role,
               serving ? " (serving)" : "", (unsigned long long)leader_id);
  if (c->closing)
    return;
  if (new_leader)
    lmz_dirclient_leader_changed(&c->dc, leader_id);
  if (serving || (new_leader && leader_id))
    wake(c);
}

static void on_lease_valid(lmz_member_t *m) { wake(m->data); }

/* The directory gave an actor a new owner (inside Raft's apply): when it
 * is us, remember it for the router's tick (its alarms need indexing). */
static void on_move(void *ctx, const char *binding, size_t blen,
                    const char *instance, size_t ilen, uint64_t new_owner,
                    uint64_t epoch) {
  lmz_cluster_t *c = ctx;
  (void)epoch;
  if (new_owner != c->o.node_id || c->closing)
    return;
  size_t at = c->acquired.len;
  if (lmz_buf_append(&c->acquired, binding, blen) ||
      lmz_buf_append(&c->acquired, "", 1) ||
      lmz_buf_append(&c->acquired, instance, ilen) ||
      lmz_buf_append(&c->acquired, "", 1)) {
    c->acquired.len = at;
    LMZ_LOG_ERROR(&log_ns, "out of memory noting an acquired actor: its "
                  "alarms wait for its next activation");
  }
}

void lmz_cluster_take_acquired(lmz_cluster_t *c,
                               void (*fn)(void *arg, const char *binding,
                                          const char *instance),
                               void *arg) {
  size_t off = 0;
  while (off < c->acquired.len) {
    const char *b = (const char *)c->acquired.data + off;
    const char *i = b + strlen(b) + 1;
    off = (size_t)(i + strlen(i) + 1 - (const char *)c->acquired.data);
    fn(arg, b, i);
  }
  c->acquired.len = 0;
}

static void on_lost_data_told(lmz_member_t *m) {
  lmz_cluster_t *c = m->data;
  if (c->o.lost_data_told)
    c->o.lost_data_told(c->o.lost_data_arg);
}

static void start_raft_due(lmz_cluster_t *c, uint64_t now) {
  if (!c->raft_start_at || now < c->raft_start_at || c->closing)
    return;
  c->raft_start_at = 0;
  LMZ_LOG_INFO(&log_ns, "raft: starting on fresh state after the vote hold");
  if (lmz_raftnode_start(&c->rn))
    LMZ_LOG_ERROR(&log_ns, "raft start: %s", c->rn.errmsg);
}

void lmz_cluster_tick(lmz_cluster_t *c, uint64_t now) {
  start_raft_due(c, now);
  lmz_dirclient_tick(&c->dc, now);
  lmz_member_tick(&c->mb, now);
  lmz_relq_tick(&c->rq);
  lmz_act_tick(&c->act, now);
  lmz__cluster_repl_tick(c);
  connect_peers(c);
  if (c->tick_hook && !c->closing)
    c->tick_hook(c, now, c->wake_arg);
}

static void tick_cb(uv_timer_t *t) {
  lmz_cluster_t *c = t->data;
  lmz_cluster_tick(c, lmz_cluster_now_ms(c));
}

/* ---- setup and teardown ------------------------------------------------------ */

/* Copies src to *p and advances *p past it; returns the copy. */
static const char *put_str(char **p, const char *src) {
  size_t l = strlen(src) + 1;
  char *dst = memcpy(*p, src, l);
  *p += l;
  return dst;
}

static int copy_options(lmz_cluster_t *c, const struct lmz_cluster_options *o) {
  size_t len = strlen(o->node_address) + strlen(o->raft_address) +
               strlen(o->raft_dir) + 3;
  for (size_t i = 0; i < o->n_voters; i++)
    len += strlen(o->voters[i].node_address) +
           strlen(o->voters[i].raft_address) + 2;
  c->strings = malloc(len);
  c->voters = calloc(o->n_voters ? o->n_voters : 1, sizeof *c->voters);
  if (!c->strings || !c->voters)
    return LMZ_ENOMEM;
  char *p = c->strings;
  c->o.node_address = put_str(&p, o->node_address);
  c->o.raft_address = put_str(&p, o->raft_address);
  c->o.raft_dir = put_str(&p, o->raft_dir);
  for (size_t i = 0; i < o->n_voters; i++) {
    c->voters[i].id = o->voters[i].id;
    c->voters[i].node_address = put_str(&p, o->voters[i].node_address);
    c->voters[i].raft_address = put_str(&p, o->voters[i].raft_address);
  }
  c->o.voters = c->voters;
  return 0;
}

static struct lmz_lease_config lease_config(const struct lmz_cluster_options *o) {
  return (struct lmz_lease_config){
      o->lease_ms ? o->lease_ms : LMZ_LEASE_DEFAULT_MS,
      o->lease_ms ? o->lease_ms / 10 : LMZ_LEASE_DEFAULT_MARGIN_MS};
}

static int init_raft(lmz_cluster_t *c, char *errmsg) {
  if (mkdir(c->o.raft_dir, 0700) && errno != EEXIST) {
    lmz__errmsg_printf(errmsg, "cannot create %s: %s", c->o.raft_dir,
                       strerror(errno));
    return LMZ_EIO;
  }
  struct lmz_raftnode_options ro = {.id = c->o.node_id,
                                    .address = c->o.raft_address,
                                    .data_dir = c->o.raft_dir,
                                    .lease = lease_config(&c->o),
                                    .on_role = role_cb,
                                    .now_ms = c->o.now_ms,
                                    .clock_ctx = c->o.clock_ctx,
                                    .candidates = candidates,
                                    .candidates_ctx = c,
                                    .replication_factor =
                                        c->o.replication_factor};
  if (!c->o.raft_tcp) { /* no port of raft's own: it rides the node port */
    c->bridge = &c->bridge_mem;
    lmz_raftbridge_init(c->bridge, c->loop, c->t); /* cannot fail */
    ro.custom_transport = lmz_raftbridge_transport(c->bridge);
    ro.transport_free = lmz_raftbridge_close;
  }
  c->rn.data = c;
  int rv = lmz_raftnode_init(c->loop, &c->rn, &ro);
  c->dir = c->rn.dir;
  if (!rv)
    lmz_dir_set_move_hook(c->rn.dir, on_move, c);
  if (rv) {
    lmz__errmsg_printf(errmsg, "raft: %s", c->rn.errmsg);
    if (c->bridge)
      lmz_raftbridge_close(lmz_raftbridge_transport(c->bridge));
    c->bridge = NULL;
  }
  return rv;
}

/* A voter whose Raft state is fresh - a first start, or a disk wiped and
 * the node started again with the same id - may have voted in the current
 * term before the wipe and would vote again: two leaders in one term. It
 * stays out of elections until any term it could have voted in is over: a
 * candidate gives up its term within two election timeouts (raft picks its
 * timeout in [T, 2T]), plus a margin. One-voter clusters have no one to
 * confuse and start at once. */
static uint64_t fresh_vote_hold_ms(const lmz_cluster_t *c) {
  return (uint64_t)c->rn.opts.election_timeout_ms * 5 / 2;
}

static int start_raft(lmz_cluster_t *c, char *errmsg) {
  struct lmz_raftnode_server self = {c->o.node_id, c->o.raft_address,
                                     RAFT_VOTER};
  struct lmz_raftnode_server sv[64];
  size_t n = 0;
  for (size_t i = 0; i < c->o.n_voters && n < 64; i++)
    sv[n++] = (struct lmz_raftnode_server){c->voters[i].id,
                                           c->voters[i].raft_address,
                                           RAFT_VOTER};
  int rv = c->o.join ? 0
                     : lmz_raftnode_bootstrap(&c->rn, n ? sv : &self,
                                              n ? n : 1);
  if (rv && rv != LMZ_EEXIST) {
    lmz__errmsg_printf(errmsg, "raft bootstrap: %s", c->rn.errmsg);
    return rv;
  }
  /* join: fresh or not, holding costs a joiner nothing */
  if (c->o.join || (rv == 0 && n > 1)) {
    c->raft_start_at = lmz_cluster_now_ms(c) + fresh_vote_hold_ms(c);
    LMZ_LOG_INFO(&log_ns, "raft: fresh state; out of elections for %llu ms "
                 "(a wiped voter must not vote twice in a term)",
                 (unsigned long long)fresh_vote_hold_ms(c));
    return 0;
  }
  if ((rv = lmz_raftnode_start(&c->rn))) {
    lmz__errmsg_printf(errmsg, "raft start: %s", c->rn.errmsg);
    return rv;
  }
  return 0;
}

static void act_wake(void *ctx) { wake(ctx); }

static void act_init(lmz_cluster_t *c) {
  struct lmz_act_options ao = {.dc = &c->dc,
                               .dir = c->dir,
                               .node_id = c->o.node_id,
                               .lease = lease_config(&c->o),
                               .candidates = candidates,
                               .wake = act_wake,
                               .ctx = c};
  lmz_act_init(&c->act, &ao);
}

int lmz_cluster_activation_request(lmz_cluster_t *c, const char *binding,
                                   const char *instance, uint64_t epoch) {
  return lmz_act_request(&c->act, binding, instance, epoch);
}

bool lmz_cluster_activation_confirmed(lmz_cluster_t *c, const char *binding,
                                      const char *instance, uint64_t epoch) {
  return lmz_act_confirmed(&c->act, binding, instance, epoch);
}

static int init_parts(lmz_cluster_t *c) {
  struct lmz_dirclient_options dco = {
      .node_id = c->o.node_id,
      .ops = {ops_is_serving, ops_leader, ops_claim, ops_propose, ops_send,
              ops_now},
      .ops_ctx = c};
  lmz_dirclient_init(&c->dc, &dco);
  lmz_relq_init(&c->rq, &c->dc, c->o.node_id);
  act_init(c);
  struct lmz_member_options mo = {.node_id = c->o.node_id,
                                  .lost_data = c->o.lost_data,
                                  .on_lost_data_told = on_lost_data_told,
                                  .node_address = c->o.node_address,
                                  .raft_address = c->o.raft_address,
                                  .lease = lease_config(&c->o),
                                  .dc = &c->dc,
                                  .dir = c->dir,
                                  .rn = &c->rn,
                                  .on_lease_valid = on_lease_valid};
  c->mb.data = c;
  return lmz_member_init(&c->mb, &mo);
}

int lmz_cluster_init_sim(lmz_cluster_t *c, const struct lmz_cluster_sim *s) {
  void *data = c->data;
  memset(c, 0, sizeof *c);
  c->data = data;
  c->o.node_id = s->node_id;
  c->o.now_ms = s->now_ms;
  c->o.clock_ctx = s->clock_ctx;
  c->o.lease_ms = s->lease_ms;
  c->dir = s->dir;
  c->sim_connected = s->connected;
  struct lmz_dirclient_options dco = {
      .node_id = s->node_id, .ops = s->ops, .ops_ctx = s->ops_ctx};
  lmz_dirclient_init(&c->dc, &dco);
  lmz_relq_init(&c->rq, &c->dc, c->o.node_id);
  act_init(c);
  char addr[32];
  snprintf(addr, sizeof addr, "sim:%llu", (unsigned long long)s->node_id);
  struct lmz_member_options mo = {.node_id = s->node_id,
                                  .node_address = addr,
                                  .raft_address = addr,
                                  .lease = lease_config(&c->o),
                                  .dc = &c->dc,
                                  .dir = c->dir,
                                  .on_lease_valid = on_lease_valid};
  c->mb.data = c;
  return lmz_member_init(&c->mb, &mo);
}

void lmz_cluster_close_sim(lmz_cluster_t *c) {
  c->closing = true;
  lmz_member_close(&c->mb);
  lmz_relq_close(&c->rq);
  lmz_act_close(&c->act);
  lmz_dirclient_close(&c->dc);
}

static void free_options(lmz_cluster_t *c) {
  free(c->strings);
  free(c->voters);
  c->strings = NULL;
  c->voters = NULL;
}

static void init_undo_closed(lmz_raftnode_t *rn) {
  lmz_cluster_t *c = rn->data;
  c->closing = false; /* tells close_now the handles are gone */
}

/* Raft was created, then a later step failed: close it before init returns
 * so that nothing of c stays on the loop (the caller may free c at once).
 * Closing is asynchronous, so the loop runs until it completed; init runs
 * at start-up, outside loop callbacks (cluster.h). */
static void close_raft_now(lmz_cluster_t *c) {
  c->closing = true;
  lmz_raftnode_close(&c->rn, init_undo_closed);
  while (c->closing)
    uv_run(c->loop, UV_RUN_ONCE);
  c->bridge = NULL; /* raft released it */
}

int lmz_cluster_init(uv_loop_t *loop, lmz_cluster_t *c, lmz_transport_t *t,
                     const struct lmz_cluster_options *o, char *errmsg) {
  void *data = c->data;
  memset(c, 0, sizeof *c);
  c->data = data;
  c->loop = loop;
  c->t = t;
  c->o = *o;
  if (!c->o.now_ms)
    c->o.now_ms = hrtime_ms;
  int rv = copy_options(c, o);
  if (rv) {
    lmz__errmsg_printf(errmsg, "cluster: out of memory");
    goto err_after_options;
  }
  if ((rv = init_raft(c, errmsg)))
    goto err_after_options;
  if ((rv = start_raft(c, errmsg)))
    goto err_after_raft;
  if ((rv = init_parts(c))) {
    lmz__errmsg_printf(errmsg, "cluster: invalid lease or addresses");
    goto err_after_raft;
  }
  for (size_t i = 0; i < c->o.n_voters; i++)
    if (c->voters[i].id != c->o.node_id) {
      lmz_conn_t *conn;
      lmz_transport_connect(t, c->voters[i].id, c->voters[i].node_address,
                            &conn);
    }
  uv_timer_init(loop, &c->tick);
  c->tick.data = c;
  uv_timer_start(&c->tick, tick_cb, TICK_MS, TICK_MS);
  return 0;
err_after_raft:
  close_raft_now(c);
err_after_options:
  free_options(c);
  return rv;
}

static void raft_closed(lmz_raftnode_t *rn) {
  lmz_cluster_t *c = rn->data;
  c->bridge = NULL; /* raft closed it: nothing may reach it from now on */
  free_options(c);
  lmz_buf_free(&c->acquired);
  if (c->close_cb)
    c->close_cb(c);
}

static void tick_closed(uv_handle_t *h) {
  lmz_cluster_t *c = h->data;
  lmz_raftnode_close(&c->rn, raft_closed);
}

void lmz_cluster_close(lmz_cluster_t *c, lmz_cluster_close_cb cb) {
  if (c->closing)
    return;
  c->closing = true;
  c->close_cb = cb;
  lmz_member_close(&c->mb);
  lmz_relq_close(&c->rq);
  lmz_act_close(&c->act);
  lmz_dirclient_close(&c->dc);
  lmz__cluster_repl_close(c);
  uv_close((uv_handle_t *)&c->tick, tick_closed);
}

/* ---- operators' views -------------------------------------------------------- */

static uint32_t backups_wanted(lmz_cluster_t *c);

static void repl_stats(lmz_cluster_t *c, struct lmz_cluster_repl_stats *o) {
  struct lmz_repl_stats rs;
  if (!c->repl)
    return;
  lmz_repl_get_stats(c->repl, &rs);
  o->under_replicated =
      lmz_dir_count_under_replicated(c->dir, 0, backups_wanted(c));
  o->shipped = rs.shipped;
  o->pending_tokens = rs.pending_tokens;
  o->pair_outs = rs.pair_outs;
  o->fills_sent = rs.fills_sent;
  o->fills_done = rs.fills_done;
  o->applied_records = rs.applied_records;
  o->refused = rs.refused;
  o->stale_dropped = rs.stale_dropped;
  for (size_t i = 0; i < rs.n_pairs; i++) {
    struct lmz_repl_pair_stats p;
    lmz_repl_pair_at(c->repl, i, &p);
    if (!p.outgoing)
      continue;
    if (p.in_sync)
      o->streams_in_sync++;
    else
      o->streams_out_of_sync++;
    if (p.lag_ms > o->max_lag_ms)
      o->max_lag_ms = p.lag_ms;
    o->lag_bytes += p.lag_bytes;
  }
}

void lmz_cluster_get_stats(lmz_cluster_t *c, struct lmz_cluster_stats *st) {
  uint64_t now = lmz_cluster_now_ms(c);
  *st = (struct lmz_cluster_stats){
      .claims = c->dc.st.claims,
      .claims_remote = c->dc.st.claims_remote,
      .lease_valid = lmz_member_lease_valid(&c->mb, now),
      .lease_remaining_ms = lmz_member_lease_remaining_ms(&c->mb, now),
      .leader_id = c->dc.o.ops.leader(c->dc.o.ops_ctx),
      .role = c->role,
      .term = c->rn.raft.current_term,
      .releases_pending = lmz_relq_n_pending(&c->rq),
      .released = c->rq.st.released};
  repl_stats(c, &st->repl);
}

static const char *state_name(enum lmz_dir_node_state s) {
  switch (s) {
  case LMZ_DIR_JOINING:
    return "joining";
  case LMZ_DIR_UP:
    return "up";
  case LMZ_DIR_DRAINING:
    return "draining";
  case LMZ_DIR_DOWN:
    return "down";
  }
  return "?";
}

/* Copies an actor should have besides its owner: R - 1, capped by the
 * other members that hold or will hold copies (UP or DOWN: a DOWN node is
 * a missing copy until it returns or an operator removes it). */
static uint32_t backups_wanted(lmz_cluster_t *c) {
  uint32_t r = c->o.replication_factor ? c->o.replication_factor : 1;
  size_t members = 0;
  for (size_t i = 0; i < lmz_dir_n_nodes(c->dir); i++) {
    enum lmz_dir_node_state st = lmz_dir_node_at(c->dir, i)->state;
    members += st == LMZ_DIR_UP || st == LMZ_DIR_DOWN;
  }
  return members < r ? (members ? (uint32_t)members - 1 : 0) : r - 1;
}

/* The replicator's streams: per pair, direction, in sync, lag. */
static int pairs_json(lmz_cluster_t *c, lmz_buf *out) {
  struct lmz_repl_stats rs;
  int rv = 0;
  if (!c->repl)
    return 0;
  lmz_repl_get_stats(c->repl, &rs);
  for (size_t i = 0; !rv && i < rs.n_pairs; i++) {
    struct lmz_repl_pair_stats p;
    lmz_repl_pair_at(c->repl, i, &p);
    rv = lmz_buf_printf(
        out,
        "%s{\"node\":%llu,\"role\":\"%s\",\"in_sync\":%s,"
        "\"lag_records\":%llu,\"lag_bytes\":%llu,\"lag_ms\":%llu,"
        "\"records\":%llu,\"acked_seq\":%llu}",
        i ? "," : "", (unsigned long long)p.node_id,
        p.outgoing ? "backup" : "owner", p.in_sync ? "true" : "false",
        (unsigned long long)p.lag_records, (unsigned long long)p.lag_bytes,
        (unsigned long long)p.lag_ms, (unsigned long long)p.sent_records,
        (unsigned long long)p.acked_seq);
  }
  return rv;
}

/* Closes the nodes array and the object with the replication summary:
 * under_replicated counts the whole directory's actors; pairs are this
 * node's streams ("role" is the other end's). */
static int replication_json(lmz_cluster_t *c, lmz_buf *out) {
  uint32_t r = c->o.replication_factor ? c->o.replication_factor : 1;
  int rv = lmz_buf_printf(
      out, "],\"replication\":{\"factor\":%u,\"under_replicated\":%llu,"
      "\"pairs\":[", r,
      (unsigned long long)lmz_dir_count_under_replicated(c->dir, 0,
                                                         backups_wanted(c)));
  if (!rv)
    rv = pairs_json(c, out);
  return rv ? rv : lmz_buf_append_str(out, "]}}");
}

int lmz_cluster_status_json(lmz_cluster_t *c, lmz_buf *out) {
  struct lmz_cluster_stats st;
  lmz_cluster_get_stats(c, &st);
  uint64_t now = lmz_cluster_now_ms(c);
  const lmz_dir_t *dir = c->dir;
  int rv = lmz_buf_printf(
      out,
      "{\"node\":%llu,\"leader\":%llu,\"term\":%llu,\"role\":%d,"
      "\"lease\":{\"valid\":%s,\"remaining_ms\":%llu},"
      "\"actors\":%llu,\"nodes\":[",
      (unsigned long long)c->o.node_id, (unsigned long long)st.leader_id,
      (unsigned long long)st.term, st.role, st.lease_valid ? "true" : "false",
      (unsigned long long)st.lease_remaining_ms,
      (unsigned long long)lmz_dir_n_actors(dir));
  for (size_t i = 0; !rv && i < lmz_dir_n_nodes(dir); i++) {
    const struct lmz_dir_node *dn = lmz_dir_node_at(dir, i);
    rv = lmz_buf_printf(
        out,
        "%s{\"id\":%llu,\"state\":\"%s\",\"address\":\"%s\","
        "\"raft\":\"%s\",\"actors\":%llu,\"lease_ms\":%u,"
        "\"lease_age_ms\":%llu}",
        i ? "," : "", (unsigned long long)dn->id, state_name(dn->state),
        dn->address, dn->raft_address, (unsigned long long)dn->n_actors,
        dn->lease_ms,
        (unsigned long long)(now > dn->heard_ms ? now - dn->heard_ms : 0));
  }
  return rv ? rv : replication_json(c, out);
}

int lmz_cluster_locate_json(lmz_cluster_t *c, const char *binding,
                            const char *instance, lmz_buf *out) {
  struct lmz_dir_placement p;
  int rv = lmz_dir_placement_get(c->dir, binding, strlen(binding), instance,
                                 strlen(instance), &p);
  if (rv == LMZ_ENOTFOUND)
    return lmz_buf_printf(out, "{\"placed\":false}");
  if (rv)
    return rv;
  const struct lmz_dir_node *dn = lmz_dir_node_get(c->dir, p.node_id);
  rv = lmz_buf_printf(out,
                      "{\"placed\":true,\"node\":%llu,\"epoch\":%llu,"
                      "\"state\":\"%s\",\"address\":\"%s\",\"backups\":[",
                      (unsigned long long)p.node_id,
                      (unsigned long long)p.epoch,
                      dn ? state_name(dn->state) : "unknown",
                      dn ? dn->address : "");
  for (uint32_t i = 0; !rv && i < p.n_backups; i++)
    rv = lmz_buf_printf(out, "%s%llu", i ? "," : "",
                        (unsigned long long)p.backups[i]);
  return rv ? rv : lmz_buf_append_str(out, "]}");
}
