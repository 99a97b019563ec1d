/* actor/router.c - routing calls by the placement directory (see router.h).
 *
 * Happy path for a durable-object call: lmz__deliver -> lmz__router_route:
 *   owner == us and our lease valid       -> local mailbox
 *   owner == another node that is not DOWN -> Call frame to it (fwd table,
 *                                            keyed by call id) -> its Result
 *                                            becomes the message's reply
 *   unknown                               -> claim through the leader
 *                                            (batched), park the message,
 *                                            route it again once applied
 * Directory requests (claims, node registration, lease renewals) go to
 * lmz_raftnode_* on the leader, or as DirRequest frames to the leader from
 * other nodes; both end in one callback shape (dir_done_fn).
 * Failure modes:
 *  1. no leader yet / claim in flight / our lease not yet valid: the call is
 *     parked and retried every tick until park_timeout_ms, then fails with
 *     ActorUnavailableError (retryable);
 *  2. owner DOWN: ActorUnavailableError naming the owner, at once;
 *  3. MOVED from the peer: parked and routed again, at most MAX_HOPS times;
 *  4. the connection to the owner drops with calls in flight: they fail
 *     with ActorUnavailableError (the call may or may not have run: at most
 *     once, never twice);
 *  5. the peer's queue is full: OverloadError (retryable). */
#include "actor/router.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "actor/actor_int.h"
#include "cluster/directory.h"
#include "cluster/lease.h"
#include "cluster/raftbridge.h"
#include "core/codec.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.router");

#define TICK_MS 20
#define MAX_HOPS 8
#define DIR_REQ_TIMEOUT_MS 1500
#define FWD_TIMEOUT_MS 15000

enum { DIR_CLAIM = 1, DIR_PROPOSE = 2, DIR_IMPORT = 3 };

typedef void (*dir_done_fn)(lmz_router *r, int status,
                            const struct lmz_dir_item *item, void *ctx);

struct dir_req { /* a request we sent to the leader, or made locally */
  uint64_t id;
  lmz_router *r;
  dir_done_fn done;
  void *ctx;
  uint64_t sent_ms;
  lmz_raftnode_claim_t claim;     /* local claims */
  lmz_raftnode_propose_t propose; /* local proposals */
};

struct fwd { /* a call forwarded to its owner, waiting for the Result */
  uint64_t call_id;
  uint64_t peer;
  lmz_msg *m;
  uint64_t sent_ms;
};

struct claim_flight { /* at most one claim in flight per actor */
  uint64_t started_ms;
  size_t klen;
  char key[];
};

struct lmz_router {
  lmz_node *node;
  lmz_transport_t *t;
  lmz_raftnode_t rn;
  struct lmz_router_opts o;
  char *node_addr, *raft_addr;
  struct lmz_lease_config lease_cfg;
  struct lmz_lease_holder lease;
  uint64_t lease_t_req;
  uv_timer_t tick;
  uv_check_t retry; /* one retry pass per loop iteration, however many
                       claims completed in it (no O(claims x parked)) */
  bool retry_armed;
  lmz_msg *parked_head, *parked_tail;
  lmz_hmap claims;   /* actor key -> struct claim_flight */
  lmz_hmap fwds;     /* call id -> struct fwd */
  lmz_hmap dir_reqs; /* request id -> struct dir_req (remote ones) */
  uint64_t next_id;
  bool registered, upsert_flight, renew_flight, closing;
  lmz_hmap moving;           /* actor key -> drain: being moved away */
  struct lmz_drain *drain;   /* the drain in progress, or NULL */
  bool member_busy;          /* a membership change is in flight */
  lmz_raftbridge *bridge;    /* Raft over the node transport, or NULL */
  lmz_router_close_cb close_cb;
  void *close_arg;
  struct lmz_router_stats st;
};

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000u; }

/* ---- failing messages ---------------------------------------------------- */

static lmz_value *unavailable(lmz_arena *a, const char *binding,
                              const char *instance, uint64_t owner,
                              const char *why) {
  lmz_value *e = lmz__error_value(a, "ActorUnavailableError",
                                  "actor %s/%s is unavailable: %s", binding,
                                  instance ? instance : "-", why);
  if (e) {
    lmz_error_set_prop(e, "retryable", 9, lmz_bool(true));
    if (owner)
      lmz_error_set_prop(e, "owner", 5, lmz_number(a, (double)owner));
  }
  return e;
}

static void fail_msg(lmz_router *r, lmz_msg *m, uint64_t owner, const char *why) {
  r->st.unavailable++;
  lmz_value *e = unavailable(m->arena, m->binding ? m->binding->name : "?",
                             m->instance, owner, why);
  lmz__msg_fail(r->node, m, e);
}

static void park(lmz_router *r, lmz_msg *m) {
  if (!m->route_deadline_ms)
    m->route_deadline_ms = mono_ms() + r->o.park_timeout_ms;
  m->next = NULL;
  if (r->parked_tail)
    r->parked_tail->next = m;
  else
    r->parked_head = m;
  r->parked_tail = m;
  r->st.parked_now++;
}

/* ---- directory requests: local on the leader, DirRequest frames otherwise */

static struct dir_req *dir_req_new(lmz_router *r, dir_done_fn done, void *ctx) {
  struct dir_req *q = calloc(1, sizeof *q);
  if (q)
    *q = (struct dir_req){.id = ++r->next_id, .r = r, .done = done, .ctx = ctx,
                          .sent_ms = mono_ms()};
  return q;
}

static void local_claim_cb(lmz_raftnode_claim_t *req, int status,
                           const struct lmz_dir_item *item) {
  struct dir_req *q = req->data;
  q->done(q->r, status, item, q->ctx);
  free(q);
}

static void local_propose_cb(lmz_raftnode_propose_t *req, int status,
                             const struct lmz_dir_result *res) {
  struct dir_req *q = req->data;
  const struct lmz_dir_item *item = res && res->n ? &res->items[0] : NULL;
  if (!status && item && item->status < 0)
    status = item->status;
  q->done(q->r, status, item, q->ctx);
  free(q);
}

static lmz_conn_t *peer_conn(lmz_router *r, uint64_t id) {
  lmz_conn_t *c = lmz_transport_peer(r->t, id);
  if (c)
    return c;
  const struct lmz_dir_node *dn = lmz_dir_node_get(r->rn.dir, id);
  const char *addr = dn && dn->address[0] ? dn->address : NULL;
  for (size_t i = 0; !addr && i < r->o.n_voters; i++)
    if (r->o.voters[i].id == id)
      addr = r->o.voters[i].node_address;
  if (addr && lmz_transport_connect(r->t, id, addr, &c) && !c)
    return NULL;
  return c;
}

/* Sends a DirRequest to the leader; the reply arrives as DirResponse. */
static int dir_remote(lmz_router *r, struct dir_req *q, uint32_t kind,
                      const char *binding, const char *instance,
                      const lmz_buf *cmd) {
  uint64_t leader = lmz_raftnode_leader(&r->rn, NULL);
  lmz_conn_t *c = leader && leader != r->o.node_id ? peer_conn(r, leader) : NULL;
  if (!c)
    return LMZ_ENOTLEADER;
  Lmz__DirRequest d = LMZ__DIR_REQUEST__INIT;
  d.request_id = q->id;
  d.kind = kind;
  d.binding = (char *)(binding ? binding : "");
  d.instance = (char *)(instance ? instance : "");
  d.from_node = r->o.node_id;
  if (cmd) {
    d.command.data = cmd->data;
    d.command.len = cmd->len;
  }
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_DIR_REQUEST;
  f.dir_request = &d;
  int rv = lmz_conn_send(c, &f);
  if (!rv)
    rv = lmz_hmap_put(&r->dir_reqs, &q->id, sizeof q->id, q, NULL);
  return rv;
}

/* The leader places new actors by rendezvous hash over the nodes it hears
 * from (directory: UP with a live lease) AND is connected to right now: a
 * node that just crashed keeps a live lease for up to L, and an actor placed
 * there would be unavailable until it returns. 0 = let raftnode choose. */
static uint64_t choose_node(lmz_router *r, const char *binding,
                            const char *instance, bool include_self) {
  uint64_t live[LMZ_DIR_MAX_NODES], cand[LMZ_DIR_MAX_NODES], out = 0;
  size_t n = lmz_dir_live_nodes(r->rn.dir, mono_ms(), live, LMZ_DIR_MAX_NODES), k = 0;
  for (size_t i = 0; i < n && i < LMZ_DIR_MAX_NODES; i++) {
    bool self = live[i] == r->o.node_id;
    lmz_conn_t *c = self ? NULL : lmz_transport_peer(r->t, live[i]);
    if ((self && include_self) || (c && lmz_conn_is_up(c)))
      cand[k++] = live[i];
  }
  if (!k || lmz_placement_choose(LMZ_PLACEMENT_HASH, cand, k, 0, binding,
                                 strlen(binding), instance, strlen(instance),
                                 &out))
    return 0;
  return out;
}

static int dir_claim(lmz_router *r, const char *binding, const char *instance,
                     dir_done_fn done, void *ctx) {
  struct dir_req *q = dir_req_new(r, done, ctx);
  if (!q)
    return LMZ_ENOMEM;
  int rv;
  if (lmz_raftnode_is_serving(&r->rn)) {
    q->claim.data = q;
    uint64_t target = choose_node(r, binding, instance, true);
    rv = lmz_raftnode_claim(&r->rn, &q->claim, binding, strlen(binding),
                            instance, strlen(instance),
                            target ? LMZ_PLACEMENT_LOCAL : LMZ_PLACEMENT_HASH,
                            target, 0, local_claim_cb);
  } else {
    rv = dir_remote(r, q, DIR_CLAIM, binding, instance, NULL);
    r->st.claims_remote += rv == 0;
  }
  if (rv)
    free(q);
  r->st.claims += rv == 0;
  return rv;
}

static int dir_propose(lmz_router *r, const lmz_buf *cmd, dir_done_fn done,
                       void *ctx) {
  struct dir_req *q = dir_req_new(r, done, ctx);
  if (!q)
    return LMZ_ENOMEM;
  int rv;
  if (lmz_raftnode_is_serving(&r->rn)) {
    q->propose.data = q;
    rv = lmz_raftnode_propose(&r->rn, &q->propose, cmd->data, cmd->len,
                              local_propose_cb);
  } else {
    rv = dir_remote(r, q, DIR_PROPOSE, NULL, NULL, cmd);
  }
  if (rv)
    free(q);
  return rv;
}

/* ---- routing ------------------------------------------------------------- */

static void key_of(const lmz_msg *m, char *buf, size_t cap, size_t *len) {
  size_t bl = m->binding->name_len, il = strlen(m->instance);
  *len = bl + 1 + il < cap ? bl + 1 + il : 0;
  if (*len) {
    memcpy(buf, m->binding->name, bl + 1);
    memcpy(buf + bl + 1, m->instance, il);
  }
}

static void retry_parked(lmz_router *r);

static void retry_check_cb(uv_check_t *h) {
  lmz_router *r = h->data;
  uv_check_stop(h);
  r->retry_armed = false;
  if (!r->closing)
    retry_parked(r);
}

/* Routes the parked calls again at the end of this loop iteration. */
static void retry_soon(lmz_router *r) {
  if (r->retry_armed || !r->parked_head)
    return;
  r->retry_armed = true;
  uv_check_start(&r->retry, retry_check_cb);
}

static void claim_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                       void *ctx) {
  struct claim_flight *cf = ctx;
  (void)item;
  lmz_hmap_del(&r->claims, cf->key, cf->klen);
  free(cf);
  if (status < 0) /* the tick retries the parked calls (bounded) */
    LMZ_LOG_DEBUG(&log_ns, "claim failed: %s", lmz_strerror(status));
  else if (!r->closing)
    retry_soon(r);
}

static void start_claim(lmz_router *r, const lmz_msg *m) {
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  size_t kl;
  key_of(m, key, sizeof key, &kl);
  /* One claim per actor in flight. Every claim ends in claim_done: a local
   * one when Raft commits it or leadership is lost, a remote one when the
   * leader answers or the request times out (expire_dir_reqs) - so a lost
   * claim is retried by the next call after that, never freed under it. */
  struct claim_flight *cf = lmz_hmap_get(&r->claims, key, kl);
  if (cf)
    return;
  if (!(cf = malloc(sizeof *cf + kl)))
    return;
  cf->started_ms = mono_ms();
  cf->klen = kl;
  memcpy(cf->key, key, kl);
  if (lmz_hmap_put(&r->claims, cf->key, kl, cf, NULL) ||
      dir_claim(r, m->binding->name, m->instance, claim_done, cf)) {
    lmz_hmap_del(&r->claims, cf->key, kl);
    free(cf);
  }
}

static int encode_call(lmz_router *r, const lmz_msg *m, uint64_t call_id,
                       uint64_t epoch, lmz_buf bufs[3], Lmz__Frame *f,
                       Lmz__Call *call, Lmz__CallContext *ctx,
                       Lmz__Identity *callee, Lmz__Identity **ids,
                       Lmz__Identity *idv) {
  (void)r;
  if (m->cctx.n > LMZ_MAX_CALL_CHAIN ||
      lmz_bin_encode(m->chain, &bufs[0], NULL) ||
      (m->cctx.state && lmz_bin_encode(m->cctx.state, &bufs[1], NULL)) ||
      (m->cctx.origin_auth && lmz_bin_encode(m->cctx.origin_auth, &bufs[2], NULL)))
    return LMZ_ENOMEM;
  for (size_t i = 0; i < m->cctx.n; i++) {
    lmz__identity__init(&idv[i]);
    idv[i].type = m->cctx.chain[i].type;
    idv[i].binding = (char *)m->cctx.chain[i].binding;
    idv[i].instance = (char *)(m->cctx.chain[i].instance ? m->cctx.chain[i].instance : "");
    idv[i].has_instance = m->cctx.chain[i].instance != NULL;
    ids[i] = &idv[i];
  }
  ctx->n_call_chain = m->cctx.n;
  ctx->call_chain = ids;
  ctx->state = (ProtobufCBinaryData){bufs[1].len, bufs[1].data};
  ctx->origin_auth = (ProtobufCBinaryData){bufs[2].len, bufs[2].data};
  callee->type = LMZ_NODE_DO;
  callee->binding = (char *)m->binding->name;
  callee->instance = m->instance;
  callee->has_instance = true;
  call->call_id = call_id;
  call->version = 1;
  call->callee = callee;
  call->chain = (ProtobufCBinaryData){bufs[0].len, bufs[0].data};
  call->ctx = ctx;
  call->epoch = epoch;
  call->hops = m->hops;
  f->body_case = LMZ__FRAME__BODY_CALL;
  f->call = call;
  return 0;
}

static void forward(lmz_router *r, lmz_msg *m, uint64_t owner, uint64_t epoch) {
  lmz_conn_t *c = peer_conn(r, owner);
  if (!c) {
    fail_msg(r, m, owner, "no address for its owner node");
    return;
  }
  if (!lmz_conn_is_up(c)) {
    /* not connected (yet, or it crashed): wait, bounded, for the link or for
     * the directory to mark the owner DOWN once its lease surely expired */
    park(r, m);
    return;
  }
  struct fwd *fw = malloc(sizeof *fw);
  Lmz__Frame f = LMZ__FRAME__INIT;
  Lmz__Call call = LMZ__CALL__INIT;
  Lmz__CallContext ctx = LMZ__CALL_CONTEXT__INIT;
  Lmz__Identity callee = LMZ__IDENTITY__INIT;
  Lmz__Identity *ids[LMZ_MAX_CALL_CHAIN], idv[LMZ_MAX_CALL_CHAIN];
  lmz_buf bufs[3] = {LMZ_BUF_INIT, LMZ_BUF_INIT, LMZ_BUF_INIT};
  int rv = fw ? encode_call(r, m, ++r->next_id, epoch, bufs, &f, &call, &ctx,
                            &callee, ids, idv)
              : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_conn_send(c, &f);
  for (int i = 0; i < 3; i++)
    lmz_buf_free(&bufs[i]);
  if (!rv) {
    *fw = (struct fwd){call.call_id, owner, m, mono_ms()};
    rv = lmz_hmap_put(&r->fwds, &fw->call_id, sizeof fw->call_id, fw, NULL);
  }
  if (rv) {
    free(fw);
    fail_msg(r, m, owner, rv == LMZ_EOVERLOAD ? "its owner's queue is full"
                                              : "cannot reach its owner");
    return;
  }
  r->st.forwarded++;
}

/* The decision for one message (see the file comment). Returns 1 to deliver
 * locally, 0 when the router took the message. */
int lmz__router_route(lmz_router *r, lmz_msg *m) {
  uint64_t owner = 0, epoch = 0, now = mono_ms();
  if (r->closing) {
    fail_msg(r, m, 0, "the node is shutting down");
    return 0;
  }
  if (m->route_deadline_ms && now > m->route_deadline_ms) {
    fail_msg(r, m, 0, "the placement directory did not answer in time");
    return 0;
  }
  int rv = lmz_dir_lookup(r->rn.dir, m->binding->name, m->binding->name_len,
                          m->instance, strlen(m->instance), &owner, &epoch);
  if (rv == LMZ_ENOTFOUND) {
    start_claim(r, m);
    park(r, m);
    return 0;
  }
  if (rv) {
    fail_msg(r, m, 0, "invalid name");
    return 0;
  }
  const struct lmz_dir_node *dn = lmz_dir_node_get(r->rn.dir, owner);
  if (dn && dn->state == LMZ_DIR_DOWN) {
    fail_msg(r, m, owner, "its owner node is down");
    return 0;
  }
  if (owner != r->o.node_id && m->kind == LMZ_MSG_HTTP) {
    /* HTTP requests are not forwarded between nodes (yet): refuse rather
     * than activate a second copy here */
    char why[96];
    snprintf(why, sizeof why, "it lives on node %llu: send the request there",
             (unsigned long long)owner);
    fail_msg(r, m, owner, why);
    return 0;
  }
  if (owner != r->o.node_id) {
    forward(r, m, owner, epoch);
    return 0;
  }
  if (!lmz_lease_holder_is_valid(&r->lease, now)) {
    if (r->lease.valid_until_ms) { /* we had one: cut off from the majority? */
      fail_msg(r, m, r->o.node_id,
               "its owner (this node) holds no valid lease: it cannot reach the "
               "directory majority");
      return 0;
    }
    park(r, m); /* our first lease is being acquired */
    return 0;
  }
  if (r->moving.n) {
    char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
    size_t kl;
    key_of(m, key, sizeof key, &kl);
    if (lmz_hmap_get(&r->moving, key, kl)) {
      park(r, m); /* it is being moved: route it once the move settled */
      return 0;
    }
  }
  m->epoch = epoch;
  return 1;
}

/* Relay actors (the client gateway) live where their client's socket is:
 * placed with the LOCAL policy when the client connects (claim_local), never
 * claimed by a call. A call goes to the placed owner when that is another
 * live node, else it runs here (where "not connected" is the answer). */
int lmz__router_route_relay(lmz_router *r, lmz_msg *m) {
  uint64_t owner = 0, epoch = 0;
  if (r->closing || !m->instance ||
      lmz_dir_lookup(r->rn.dir, m->binding->name, m->binding->name_len,
                     m->instance, strlen(m->instance), &owner, &epoch) ||
      owner == r->o.node_id)
    return 1;
  const struct lmz_dir_node *dn = lmz_dir_node_get(r->rn.dir, owner);
  lmz_conn_t *c = dn && dn->state != LMZ_DIR_DOWN ? peer_conn(r, owner) : NULL;
  if (!c || !lmz_conn_is_up(c))
    return 1;
  forward(r, m, owner, epoch);
  return 0;
}

static void claim_local_done(lmz_router *r, int status,
                             const struct lmz_dir_item *item, void *ctx) {
  (void)r, (void)item, (void)ctx;
  if (status < 0)
    LMZ_LOG_DEBUG(&log_ns, "claim_local failed: %s", lmz_strerror(status));
}

/* A relay actor follows its socket: claim it here, or move it here. */
void lmz__router_claim_local(lmz_router *r, const char *binding,
                             const char *instance) {
  uint64_t owner = 0, epoch = 0;
  int rv = lmz_dir_lookup(r->rn.dir, binding, strlen(binding), instance,
                          strlen(instance), &owner, &epoch);
  if (rv == 0 && owner == r->o.node_id)
    return;
  lmz_buf cmd = LMZ_BUF_INIT;
  if (rv == LMZ_ENOTFOUND) {
    struct lmz_dir_claim cl = {binding, strlen(binding), instance,
                               strlen(instance), r->o.node_id, ++r->next_id,
                               LMZ_DIR_CLAIM_REPLACE_DOWN};
    rv = lmz_dir_encode_claims(&cmd, &cl, 1);
  } else if (rv == 0) {
    struct lmz_dir_move mv = {binding, strlen(binding), instance, strlen(instance),
                              owner, r->o.node_id, epoch, ++r->next_id, true};
    rv = lmz_dir_encode_moves(&cmd, &mv, 1);
  }
  if (!rv)
    rv = dir_propose(r, &cmd, claim_local_done, NULL);
  lmz_buf_free(&cmd);
  if (rv)
    LMZ_LOG_DEBUG(&log_ns, "claim_local %s/%s: %s", binding, instance, lmz_strerror(rv));
}

static void retry_parked(lmz_router *r) {
  lmz_msg *m = r->parked_head;
  r->parked_head = r->parked_tail = NULL;
  r->st.parked_now = 0;
  while (m) {
    lmz_msg *next = m->next;
    m->next = NULL;
    int rv = lmz__router_route(r, m);
    if (rv == 1 && (rv = lmz__deliver_local(r->node, m)))
      lmz__msg_fail(r->node, m, lmz__error_value(m->arena, "OverloadError",
                                                 "%s", lmz_strerror(rv)));
    m = next;
  }
}

/* ---- frames from peers --------------------------------------------------- */

static void on_result(lmz_router *r, const Lmz__Result *res) {
  uint64_t id = res->call_id;
  struct fwd *fw = lmz_hmap_del(&r->fwds, &id, sizeof id);
  if (!fw)
    return;
  lmz_msg *m = fw->m;
  uint64_t peer = fw->peer;
  free(fw);
  if (res->code == LMZ_EMOVED || (res->code == LMZ_EUNAVAILABLE && !res->value.len)) {
    r->st.moved++;
    if (++m->hops > MAX_HOPS) {
      fail_msg(r, m, peer, "it keeps moving (directory not converging)");
      return;
    }
    park(r, m); /* our directory catches up, then we route again */
    return;
  }
  lmz_value *v = NULL;
  if (res->value.len &&
      lmz_bin_decode(m->arena, res->value.data, res->value.len, NULL, &v, NULL))
    v = NULL;
  if (res->code || !v) {
    fail_msg(r, m, peer, res->detail && *res->detail ? res->detail : "bad reply");
    return;
  }
  m->binding = NULL; /* it is a reply now */
  m->reply_ok = res->ok;
  m->reply_value = v;
  lmz__release_output(r->node, m);
}

static void send_dir_response(lmz_router *r, uint64_t to, uint64_t request_id,
                              int status, const struct lmz_dir_item *item) {
  lmz_conn_t *c = lmz_transport_peer(r->t, to);
  if (!c)
    return;
  Lmz__DirResponse d = LMZ__DIR_RESPONSE__INIT;
  d.request_id = request_id;
  d.status = status;
  if (item) {
    d.node_id = item->node_id;
    d.epoch = item->epoch;
    d.item_status = item->status;
  }
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_DIR_RESPONSE;
  f.dir_response = &d;
  lmz_conn_send(c, &f);
}

struct relay { /* a peer's DirRequest we serve */
  uint64_t from, request_id;
  lmz_router *r;
};

static void relay_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                       void *ctx) {
  struct relay *rl = ctx;
  send_dir_response(r, rl->from, rl->request_id, status, item);
  free(rl);
}

static void on_import(lmz_router *r, const Lmz__DirRequest *d);

static void on_dir_request(lmz_router *r, const Lmz__DirRequest *d) {
  if (d->kind == DIR_IMPORT) { /* to us as a drain target, leader or not */
    on_import(r, d);
    return;
  }
  struct relay *rl = malloc(sizeof *rl);
  int rv = rl ? 0 : LMZ_ENOMEM;
  if (rl)
    *rl = (struct relay){d->from_node, d->request_id, r};
  if (!rv && !lmz_raftnode_is_serving(&r->rn))
    rv = LMZ_ENOTLEADER;
  else if (!rv && d->kind == DIR_CLAIM)
    rv = dir_claim(r, d->binding, d->instance, relay_done, rl);
  else if (!rv && d->kind == DIR_PROPOSE)
    rv = dir_propose(r, &(lmz_buf){d->command.data, d->command.len, 0, 0},
                     relay_done, rl);
  else if (!rv)
    rv = LMZ_EINVAL;
  if (rv) {
    send_dir_response(r, d->from_node, d->request_id, rv, NULL);
    free(rl);
  }
}

static void on_dir_response(lmz_router *r, const Lmz__DirResponse *d) {
  uint64_t id = d->request_id;
  struct dir_req *q = lmz_hmap_del(&r->dir_reqs, &id, sizeof id);
  if (!q)
    return;
  struct lmz_dir_item item = {d->item_status, 0, d->node_id, d->epoch};
  int status = d->status ? d->status : d->item_status;
  q->done(r, status, d->status ? NULL : &item, q->ctx);
  free(q);
}

void lmz_router_on_frame(lmz_router *r, lmz_conn_t *conn, const Lmz__Frame *f) {
  switch (f->body_case) {
  case LMZ__FRAME__BODY_RAFT_DATA:
    if (r->bridge)
      lmz_raftbridge_on_frame(r->bridge, conn, f);
    break;
  case LMZ__FRAME__BODY_RESULT:
    on_result(r, f->result);
    break;
  case LMZ__FRAME__BODY_DIR_REQUEST:
    on_dir_request(r, f->dir_request);
    break;
  case LMZ__FRAME__BODY_DIR_RESPONSE:
    on_dir_response(r, f->dir_response);
    break;
  default:
    break;
  }
}

void lmz_router_on_conn_state(lmz_router *r, lmz_conn_t *conn, int state,
                              int status) {
  (void)status;
  if (r->bridge)
    lmz_raftbridge_on_conn_state(r->bridge, conn, state);
  if (state != LMZ_CONN_DOWN)
    return;
  uint64_t peer = lmz_conn_peer_id(conn);
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&r->fwds, &it, &k, &kl, &v)) {
    struct fwd *fw = v;
    if (fw->peer != peer)
      continue;
    lmz_hmap_del(&r->fwds, k, kl);
    fail_msg(r, fw->m, peer, "the connection to its owner was lost");
    free(fw);
  }
}

int lmz_router_check_owner(lmz_router *r, const char *binding,
                           const char *instance, uint64_t epoch,
                           uint64_t *cur_epoch) {
  uint64_t owner = 0, cur = 0;
  *cur_epoch = 0;
  struct lmz_binding *b = lmz__binding_get(r->node, binding);
  int found = lmz_dir_lookup(r->rn.dir, binding, strlen(binding), instance,
                             strlen(instance), &owner, &cur);
  if (b && b->cls->raw) /* relay actors: ours unless placed elsewhere */
    return found == 0 && owner != r->o.node_id ? LMZ_EMOVED : 0;
  if (found)
    return LMZ_EMOVED;
  *cur_epoch = cur;
  if (owner != r->o.node_id || (epoch && epoch != cur))
    return LMZ_EMOVED;
  if (!lmz_lease_holder_is_valid(&r->lease, mono_ms()))
    return LMZ_EUNAVAILABLE;
  r->st.forwarded_in++;
  return 0;
}

/* ---- registration and the lease ------------------------------------------ */

static void upsert_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                        void *ctx) {
  (void)item, (void)ctx;
  r->upsert_flight = false;
  if (status >= 0) {
    r->registered = true;
    LMZ_LOG_INFO(&log_ns, "node %llu registered as UP", (unsigned long long)r->o.node_id);
  }
}

static void renew_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                       void *ctx) {
  (void)ctx;
  r->renew_flight = false;
  uint64_t now = mono_ms();
  if (status >= 0 && item) {
    bool was_valid = lmz_lease_holder_is_valid(&r->lease, now);
    lmz_lease_holder_granted(&r->lease, &r->lease_cfg, r->lease_t_req, item->epoch);
    if (!was_valid)
      retry_parked(r);
  } else if (status == LMZ_EUNAVAILABLE || status == LMZ_ENOTFOUND) {
    /* fenced (marked DOWN) or unknown: stop serving, register again */
    LMZ_LOG_WARN(&log_ns, "lease refused (%s): re-registering", lmz_strerror(status));
    lmz_lease_holder_revoke(&r->lease);
    r->registered = false;
  } else {
    lmz_lease_holder_failed(&r->lease, r->lease_t_req);
  }
}

static void lease_step(lmz_router *r, uint64_t now) {
  lmz_buf cmd = LMZ_BUF_INIT;
  if (!r->registered && !r->upsert_flight) {
    if (!lmz_dir_encode_node_upsert(&cmd, r->o.node_id, LMZ_DIR_UP, r->node_addr,
                                    r->raft_addr, ++r->next_id))
      r->upsert_flight = dir_propose(r, &cmd, upsert_done, NULL) == 0;
  } else if (r->registered && !r->renew_flight &&
             lmz_lease_holder_should_renew(&r->lease, &r->lease_cfg, now)) {
    r->lease_t_req = lmz_lease_holder_begin(&r->lease, now);
    if (!lmz_dir_encode_lease_renew(&cmd, r->o.node_id, r->lease_cfg.duration_ms,
                                    ++r->next_id))
      r->renew_flight = dir_propose(r, &cmd, renew_done, NULL) == 0;
    if (!r->renew_flight)
      lmz_lease_holder_failed(&r->lease, r->lease_t_req);
  }
  lmz_buf_free(&cmd);
}

/* Requests to the leader that got no answer (lost, leader changed) fail. */
static void expire_dir_reqs(lmz_router *r, uint64_t now) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&r->dir_reqs, &it, &k, &kl, &v)) {
    struct dir_req *q = v;
    if (now - q->sent_ms < DIR_REQ_TIMEOUT_MS)
      continue;
    lmz_hmap_del(&r->dir_reqs, k, kl);
    q->done(r, LMZ_ETIMEOUT, NULL, q->ctx);
    free(q);
  }
}

/* A forwarded call whose owner never answers (a half-open link the dead-peer
 * timer has not caught yet) fails after FWD_TIMEOUT_MS rather than hang. */
static void expire_fwds(lmz_router *r, uint64_t now) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&r->fwds, &it, &k, &kl, &v)) {
    struct fwd *fw = v;
    if (now - fw->sent_ms < FWD_TIMEOUT_MS)
      continue;
    lmz_hmap_del(&r->fwds, k, kl);
    fail_msg(r, fw->m, fw->peer, "its owner did not answer");
    free(fw);
  }
}

static void connect_peers(lmz_router *r) {
  for (size_t i = 0; i < lmz_dir_n_nodes(r->rn.dir); i++) {
    const struct lmz_dir_node *dn = lmz_dir_node_at(r->rn.dir, i);
    if (dn->id != r->o.node_id && dn->state != LMZ_DIR_DOWN && dn->address[0] &&
        !lmz_transport_peer(r->t, dn->id)) {
      lmz_conn_t *c;
      lmz_transport_connect(r->t, dn->id, dn->address, &c);
    }
  }
}

static void tick_cb(uv_timer_t *t) {
  lmz_router *r = t->data;
  uint64_t now = mono_ms();
  expire_dir_reqs(r, now);
  expire_fwds(r, now);
  lease_step(r, now);
  connect_peers(r);
  if (r->parked_head)
    retry_parked(r);
}

static void role_cb(lmz_raftnode_t *rn, int role, bool serving,
                    uint64_t leader_id) {
  lmz_router *r = rn->data;
  r->st.role = role;
  r->st.leader_id = leader_id;
  LMZ_LOG_INFO(&log_ns, "raft role %d%s, leader %llu", role,
               serving ? " (serving)" : "", (unsigned long long)leader_id);
  if (serving && r->parked_head)
    retry_parked(r);
}

/* ---- setup and teardown -------------------------------------------------- */

static int start_raft(lmz_router *r, char *errmsg) {
  if (mkdir(r->o.raft_dir, 0700) && errno != EEXIST) {
    lmz__errmsg_printf(errmsg, "cannot create %s: %s", r->o.raft_dir, strerror(errno));
    return LMZ_EIO;
  }
  struct lmz_raftnode_options ro = {.id = r->o.node_id,
                                    .address = r->raft_addr,
                                    .data_dir = r->o.raft_dir,
                                    .lease = r->lease_cfg,
                                    .on_role = role_cb};
  if (!r->o.raft_tcp) { /* no port of raft's own: it rides the secure channel */
    if (!(r->bridge = lmz_raftbridge_new(r->node->loop, r->t)))
      return LMZ_ENOMEM;
    ro.custom_transport = lmz_raftbridge_transport(r->bridge);
    ro.transport_free = lmz_raftbridge_free;
  }
  r->rn.data = r;
  int rv = lmz_raftnode_init(r->node->loop, &r->rn, &ro);
  if (rv) {
    lmz__errmsg_printf(errmsg, "raft: %s", r->rn.errmsg);
    if (r->bridge)
      lmz_raftbridge_free(lmz_raftbridge_transport(r->bridge));
    r->bridge = NULL;
    return rv;
  }
  r->rn.data = r;
  struct lmz_raftnode_server self = {r->o.node_id, r->raft_addr, RAFT_VOTER};
  struct lmz_raftnode_server sv[64];
  size_t n = 0;
  for (size_t i = 0; i < r->o.n_voters && n < 64; i++)
    sv[n++] = (struct lmz_raftnode_server){r->o.voters[i].id,
                                           r->o.voters[i].raft_address, RAFT_VOTER};
  rv = r->o.join ? 0 : lmz_raftnode_bootstrap(&r->rn, n ? sv : &self, n ? n : 1);
  if (rv && rv != LMZ_EEXIST) {
    lmz__errmsg_printf(errmsg, "raft bootstrap: %s", r->rn.errmsg);
    return rv;
  }
  if ((rv = lmz_raftnode_start(&r->rn))) {
    lmz__errmsg_printf(errmsg, "raft start: %s", r->rn.errmsg);
    return rv;
  }
  return 0;
}

int lmz_router_init(lmz_router **out, lmz_node *n, lmz_transport_t *t,
                    const struct lmz_router_opts *o, char *errmsg) {
  lmz_router *r = calloc(1, sizeof *r);
  if (!r)
    return LMZ_ENOMEM;
  r->node = n;
  r->t = t;
  r->o = *o;
  if (!r->o.park_timeout_ms)
    r->o.park_timeout_ms = 10000;
  r->node_addr = strdup(o->node_address);
  r->raft_addr = strdup(o->raft_address);
  r->lease_cfg = (struct lmz_lease_config){
      o->lease_ms ? o->lease_ms : LMZ_LEASE_DEFAULT_MS,
      o->lease_ms ? o->lease_ms / 10 : LMZ_LEASE_DEFAULT_MARGIN_MS};
  lmz_lease_holder_init(&r->lease);
  int rv = r->node_addr && r->raft_addr ? start_raft(r, errmsg) : LMZ_ENOMEM;
  if (rv) {
    free(r->node_addr);
    free(r->raft_addr);
    free(r);
    return rv;
  }
  for (size_t i = 0; i < o->n_voters; i++)
    if (o->voters[i].id != o->node_id) {
      lmz_conn_t *c;
      lmz_transport_connect(t, o->voters[i].id, o->voters[i].node_address, &c);
    }
  uv_timer_init(n->loop, &r->tick);
  r->tick.data = r;
  uv_check_init(n->loop, &r->retry);
  r->retry.data = r;
  uv_timer_start(&r->tick, tick_cb, TICK_MS, TICK_MS);
  lmz__node_set_router(n, r);
  *out = r;
  return 0;
}

lmz_raftnode_t *lmz_router_raft(lmz_router *r) { return &r->rn; }

void lmz_router_get_stats(lmz_router *r, struct lmz_router_stats *st) {
  *st = r->st;
  uint64_t now = mono_ms();
  st->lease_valid = lmz_lease_holder_is_valid(&r->lease, now);
  st->lease_remaining_ms = lmz_lease_holder_remaining_ms(&r->lease, now);
  st->leader_id = lmz_raftnode_leader(&r->rn, NULL);
  st->term = r->rn.raft.current_term;
  st->forwards_pending = r->fwds.n;
}

static void raft_closed(lmz_raftnode_t *rn) {
  lmz_router *r = rn->data;
  if (r->close_cb)
    r->close_cb(r, r->close_arg);
}

static void tick_closed(uv_handle_t *h) {
  lmz_router *r = h->data;
  if (!uv_is_closing((uv_handle_t *)&r->retry)) {
    uv_close((uv_handle_t *)&r->retry, tick_closed);
    return;
  }
  lmz_raftnode_close(&r->rn, raft_closed);
}

void lmz_router_close(lmz_router *r, lmz_router_close_cb cb, void *arg) {
  r->closing = true;
  r->close_cb = cb;
  r->close_arg = arg;
  lmz__node_set_router(r->node, NULL);
  retry_parked(r); /* fails them: closing */
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&r->fwds, &it, NULL, NULL, &v)) {
    struct fwd *fw = v;
    fail_msg(r, fw->m, fw->peer, "the node is shutting down");
    free(fw);
  }
  lmz_hmap_clear(&r->fwds);
  for (it = 0; lmz_hmap_next(&r->dir_reqs, &it, NULL, NULL, &v);) {
    struct dir_req *q = v;
    q->done(r, LMZ_ECANCELED, NULL, q->ctx);
    free(q);
  }
  lmz_hmap_clear(&r->dir_reqs);
  uv_close((uv_handle_t *)&r->tick, tick_closed);
}

void lmz_router_free(lmz_router *r) {
  if (!r)
    return;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&r->claims, &it, NULL, NULL, &v))
    free(v);
  lmz_hmap_free(&r->claims);
  lmz_hmap_free(&r->moving);
  lmz_hmap_free(&r->fwds);
  lmz_hmap_free(&r->dir_reqs);
  free(r->node_addr);
  free(r->raft_addr);
  free(r);
}

/* ---- operators' views ---------------------------------------------------- */

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

int lmz_router_status_json(lmz_router *r, lmz_buf *out) {
  struct lmz_router_stats st;
  lmz_router_get_stats(r, &st);
  uint64_t now = mono_ms();
  int rv = lmz_buf_printf(out,
                          "{\"node\":%llu,\"leader\":%llu,\"term\":%llu,\"role\":%d,"
                          "\"lease\":{\"valid\":%s,\"remaining_ms\":%llu},"
                          "\"actors\":%llu,\"nodes\":[",
                          (unsigned long long)r->o.node_id,
                          (unsigned long long)st.leader_id,
                          (unsigned long long)st.term, st.role,
                          st.lease_valid ? "true" : "false",
                          (unsigned long long)st.lease_remaining_ms,
                          (unsigned long long)lmz_dir_n_actors(r->rn.dir));
  for (size_t i = 0; !rv && i < lmz_dir_n_nodes(r->rn.dir); i++) {
    const struct lmz_dir_node *dn = lmz_dir_node_at(r->rn.dir, i);
    rv = lmz_buf_printf(out,
                        "%s{\"id\":%llu,\"state\":\"%s\",\"address\":\"%s\","
                        "\"raft\":\"%s\",\"actors\":%llu,\"lease_ms\":%u,"
                        "\"lease_age_ms\":%llu}",
                        i ? "," : "", (unsigned long long)dn->id,
                        state_name(dn->state), dn->address, dn->raft_address,
                        (unsigned long long)dn->n_actors, dn->lease_ms,
                        (unsigned long long)(now > dn->heard_ms ? now - dn->heard_ms : 0));
  }
  return rv ? rv : lmz_buf_append_str(out, "]}");
}

int lmz_router_locate_json(lmz_router *r, const char *binding,
                           const char *instance, lmz_buf *out) {
  uint64_t owner = 0, epoch = 0;
  int rv = lmz_dir_lookup(r->rn.dir, binding, strlen(binding), instance,
                          strlen(instance), &owner, &epoch);
  if (rv == LMZ_ENOTFOUND)
    return lmz_buf_printf(out, "{\"placed\":false}");
  if (rv)
    return rv;
  const struct lmz_dir_node *dn = lmz_dir_node_get(r->rn.dir, owner);
  return lmz_buf_printf(out,
                        "{\"placed\":true,\"node\":%llu,\"epoch\":%llu,"
                        "\"state\":\"%s\",\"address\":\"%s\"}",
                        (unsigned long long)owner, (unsigned long long)epoch,
                        dn ? state_name(dn->state) : "unknown",
                        dn ? dn->address : "");
}

/* ---- drain: move every actor of this node elsewhere, with its state ------ *
 *
 * For each actor this node owns, one at a time:
 *   1. mark it moving: new calls for it park here (route());
 *   2. wait until it is idle (no queued/running turn, no commit in flight,
 *      no pending handler or deferred reply), bounded;
 *   3. export its key range (storage/store.h dump) and send it to the target
 *      node (DirRequest kind IMPORT), which imports it in one batch and
 *      re-indexes its alarms;
 *   4. commit the move (epoch + 1, graceful) through the leader;
 *   5. delete the local range, drop the activation, unmark: the parked calls
 *      route to the new owner.
 * A step that fails leaves the actor here (unmarked) and counts it failed;
 * the node is DRAINING in the directory from the start, so nothing new is
 * placed on it. */

#define DRAIN_IDLE_TIMEOUT_MS 5000

struct drain_item {
  char *binding, *instance;
  uint64_t epoch;
};

struct lmz_drain {
  lmz_router *r;
  struct drain_item *items;
  size_t n, cap, next, moved, failed;
  uint64_t target, wait_since;
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  size_t klen;
  int phase; /* 0 idle-wait, 1 importing, 2 moving */
  lmz_router_drain_cb cb;
  void *arg;
  uv_timer_t timer;
};

static int collect_cb(const char *b, size_t bl, const char *i, size_t il,
                      uint64_t node, uint64_t epoch, void *arg) {
  (void)node;
  struct lmz_drain *d = arg;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    struct drain_item *p = realloc(d->items, cap * sizeof *p);
    if (!p)
      return LMZ_ENOMEM;
    d->items = p;
    d->cap = cap;
  }
  struct drain_item *it = &d->items[d->n];
  it->binding = strndup(b, bl);
  it->instance = strndup(i, il);
  it->epoch = epoch;
  if (!it->binding || !it->instance)
    return LMZ_ENOMEM;
  d->n++;
  return 0;
}

static void drain_next(struct lmz_drain *d);

static void drain_item_done(struct lmz_drain *d, bool ok, const char *why) {
  struct drain_item *it = &d->items[d->next];
  lmz_router *r = d->r;
  if (ok)
    d->moved++;
  else {
    d->failed++;
    LMZ_LOG_WARN(&log_ns, "drain: %s/%s stays here: %s", it->binding, it->instance, why);
  }
  lmz_hmap_del(&r->moving, d->key, d->klen);
  d->next++;
  retry_parked(r); /* its parked calls go to the new owner (or run here) */
  drain_next(d);
}

static void drain_timer_closed(uv_handle_t *h) {
  free(lmz_container_of((uv_timer_t *)h, struct lmz_drain, timer));
}

static void drain_finish(struct lmz_drain *d) {
  uv_timer_stop(&d->timer);
  LMZ_LOG_INFO(&log_ns, "drain done: %zu moved, %zu failed", d->moved, d->failed);
  d->cb(d->r, (int)d->moved, (int)d->failed, d->arg);
  for (size_t i = 0; i < d->n; i++) {
    free(d->items[i].binding);
    free(d->items[i].instance);
  }
  free(d->items);
  d->r->drain = NULL;
  uv_close((uv_handle_t *)&d->timer, drain_timer_closed);
}

static void move_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                      void *ctx) {
  (void)item;
  struct lmz_drain *d = ctx;
  struct drain_item *it = &d->items[d->next];
  if (status < 0) {
    drain_item_done(d, false, lmz_strerror(status));
    return;
  }
  /* the move is committed: our copy is dead weight now */
  lmz__node_drop_actor(r->node, it->binding, it->instance);
  drain_item_done(d, true, NULL);
}

static void import_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                        void *ctx) {
  (void)item;
  struct lmz_drain *d = ctx;
  struct drain_item *it = &d->items[d->next];
  if (status < 0) {
    drain_item_done(d, false, "the target could not import the state");
    return;
  }
  lmz_buf cmd = LMZ_BUF_INIT;
  struct lmz_dir_move mv = {it->binding, strlen(it->binding), it->instance,
                            strlen(it->instance), r->o.node_id, d->target,
                            it->epoch, ++r->next_id, true};
  int rv = lmz_dir_encode_moves(&cmd, &mv, 1);
  if (!rv)
    rv = dir_propose(r, &cmd, move_done, d);
  lmz_buf_free(&cmd);
  if (rv)
    drain_item_done(d, false, "cannot propose the move");
}

static int send_import(struct lmz_drain *d, const struct drain_item *it) {
  lmz_router *r = d->r;
  lmz_buf dump = LMZ_BUF_INIT;
  int rv = lmz__node_export_actor(r->node, it->binding, it->instance, &dump);
  struct dir_req *q = rv < 0 ? NULL : dir_req_new(r, import_done, d);
  lmz_conn_t *c = q ? peer_conn(r, d->target) : NULL;
  if (!c || !lmz_conn_is_up(c)) {
    free(q);
    lmz_buf_free(&dump);
    return rv < 0 ? rv : LMZ_EUNAVAILABLE;
  }
  Lmz__DirRequest dr = LMZ__DIR_REQUEST__INIT;
  dr.request_id = q->id;
  dr.kind = DIR_IMPORT;
  dr.binding = it->binding;
  dr.instance = it->instance;
  dr.command = (ProtobufCBinaryData){dump.len, dump.data};
  dr.from_node = r->o.node_id;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_DIR_REQUEST;
  f.dir_request = &dr;
  rv = lmz_conn_send(c, &f);
  if (!rv)
    rv = lmz_hmap_put(&r->dir_reqs, &q->id, sizeof q->id, q, NULL);
  if (rv)
    free(q);
  lmz_buf_free(&dump);
  return rv;
}

static void drain_poll(uv_timer_t *t) {
  struct lmz_drain *d = t->data;
  struct drain_item *it = &d->items[d->next];
  if (!lmz__node_actor_idle(d->r->node, it->binding, it->instance)) {
    if (mono_ms() - d->wait_since > DRAIN_IDLE_TIMEOUT_MS)
      drain_item_done(d, false, "it did not become idle");
    return;
  }
  uv_timer_stop(t);
  int rv = send_import(d, it);
  if (rv)
    drain_item_done(d, false, lmz_strerror(rv));
}

static void drain_next(struct lmz_drain *d) {
  lmz_router *r = d->r;
  if (d->next >= d->n) {
    drain_finish(d);
    return;
  }
  struct drain_item *it = &d->items[d->next];
  if (!(d->target = choose_node(r, it->binding, it->instance, false))) {
    d->failed += d->n - d->next; /* nowhere to go: everything stays */
    d->next = d->n;
    drain_finish(d);
    return;
  }
  size_t bl = strlen(it->binding), il = strlen(it->instance);
  memcpy(d->key, it->binding, bl + 1);
  memcpy(d->key + bl + 1, it->instance, il);
  d->klen = bl + 1 + il;
  lmz_hmap_put(&r->moving, d->key, d->klen, d, NULL);
  d->wait_since = mono_ms();
  uv_timer_start(&d->timer, drain_poll, 0, 5);
}

static void draining_done(lmz_router *r, int status, const struct lmz_dir_item *item,
                          void *ctx) {
  (void)item;
  struct lmz_drain *d = ctx;
  if (status < 0) {
    d->failed = 0;
    d->n = 0;
    LMZ_LOG_WARN(&log_ns, "drain: cannot mark the node DRAINING: %s", lmz_strerror(status));
    drain_finish(d);
    return;
  }
  if (lmz_dir_foreach_actor(r->rn.dir, r->o.node_id, collect_cb, d))
    d->failed = 1;
  LMZ_LOG_INFO(&log_ns, "drain: moving %zu actors", d->n);
  drain_next(d);
}

int lmz_router_drain(lmz_router *r, lmz_router_drain_cb cb, void *arg) {
  if (r->drain)
    return LMZ_EBUSY;
  struct lmz_drain *d = calloc(1, sizeof *d);
  if (!d)
    return LMZ_ENOMEM;
  d->r = r;
  d->cb = cb;
  d->arg = arg;
  uv_timer_init(r->node->loop, &d->timer);
  d->timer.data = d;
  lmz_buf cmd = LMZ_BUF_INIT;
  int rv = lmz_dir_encode_node_upsert(&cmd, r->o.node_id, LMZ_DIR_DRAINING,
                                      r->node_addr, r->raft_addr, ++r->next_id);
  if (!rv)
    rv = dir_propose(r, &cmd, draining_done, d);
  lmz_buf_free(&cmd);
  if (rv) {
    uv_close((uv_handle_t *)&d->timer, drain_timer_closed);
    return rv;
  }
  r->drain = d;
  return 0;
}

/* The importing side: a peer sends us an actor's state (DIR_IMPORT). */
static void import_commit_cb(lmz_node *n, int status, void *arg) {
  struct relay *rl = arg;
  (void)n;
  send_dir_response(rl->r, rl->from, rl->request_id, status, NULL);
  free(rl);
}

static void on_import(lmz_router *r, const Lmz__DirRequest *d) {
  struct relay *rl = malloc(sizeof *rl);
  int rv = rl ? 0 : LMZ_ENOMEM;
  if (rl)
    *rl = (struct relay){d->from_node, d->request_id, r};
  if (!rv)
    rv = lmz__node_import_actor(r->node, d->binding, d->instance,
                                d->command.data, d->command.len,
                                import_commit_cb, rl);
  if (rv) {
    send_dir_response(r, d->from_node, d->request_id, rv, NULL);
    free(rl);
  }
}

/* ---- membership ----------------------------------------------------------- */

struct member_op {
  lmz_raftnode_change_t chg;
  lmz_router *r;
  lmz_router_member_cb cb;
  void *arg;
};

static void member_done(lmz_raftnode_change_t *req, int status) {
  struct member_op *op = req->data;
  op->r->member_busy = false;
  op->cb(op->r, status, op->arg);
  free(op);
}

int lmz_router_member(lmz_router *r, bool add, uint64_t id,
                      const char *raft_address, bool standby,
                      lmz_router_member_cb cb, void *arg) {
  if (!lmz_raftnode_is_serving(&r->rn))
    return LMZ_ENOTLEADER;
  if (r->member_busy)
    return LMZ_EBUSY;
  struct member_op *op = calloc(1, sizeof *op);
  if (!op)
    return LMZ_ENOMEM;
  *op = (struct member_op){.r = r, .cb = cb, .arg = arg};
  op->chg.data = op;
  int rv = add ? lmz_raftnode_add(&r->rn, &op->chg, id, raft_address,
                                  standby ? RAFT_STANDBY : RAFT_VOTER, member_done)
               : lmz_raftnode_remove(&r->rn, &op->chg, id, member_done);
  if (rv) {
    free(op);
    return rv;
  }
  r->member_busy = true;
  return 0;
}
