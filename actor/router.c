/* actor/router.c - routing calls by the placement directory (see router.h).
 *
 * Happy path for a durable-object call: lmz__deliver -> lmz__router_route:
 *   owner == us and our lease valid       -> local mailbox
 *   owner == another node that is not DOWN -> Call frame to it (fwd table,
 *                                            keyed by call id) -> its Result
 *                                            becomes the message's reply
 *   owner == us, placement not activated  -> activation mark first (park)
 *   unknown                               -> claim through the leader
 *                                            (cluster: batched), park the
 *                                            message, route it again once
 *                                            the claim completed
 * Failure modes:
 *  1. no leader yet / claim in flight / our lease not yet valid: the call is
 *     parked and retried every cluster tick (the cluster's clock drives the
 *     router: lmz_cluster_set_hooks) until park_timeout_ms, then fails with
 *     ActorUnavailableError (retryable);
 *  2. owner DOWN: ActorUnavailableError naming the owner, at once;
 *  3. MOVED from the peer: parked and routed again, at most MAX_HOPS times;
 *  4. the connection to the owner drops with calls in flight: they fail
 *     with ActorUnavailableError (the call may or may not have run: at most
 *     once, never twice);
 *  5. the peer's queue is full: MeshOverloadedError (retryable);
 *  6. the owner never answers: the call fails after FWD_TIMEOUT_MS;
 *  7. the call does not fit in one node-port frame (LMZ_FRAME_MAX_DEFAULT):
 *     Error("Message is too large ...") at once, not retryable.
 * An HTTP request for on_request (LMZ_MSG_HTTP) takes the same path: it is
 * a Call frame of kind 1 carrying the request (http.c encodes it), its
 * Result value is the response; the gateway's request limits were applied
 * on the entry node before it got here. */
#include "actor/router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/broadcast_int.h"
#include "actor/router_int.h"
#include "core/codec.h"
#include "proto/frame.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.router");

#define MAX_HOPS 8
#define FWD_TIMEOUT_MS 15000

struct lmz__router_fwd { /* a call forwarded to its owner, waiting for the
                            Result */
  uint64_t call_id;
  uint64_t peer;
  lmz_msg *m;
  uint64_t sent_ms;
  struct lmz__router_fwd *prev, *next; /* the FIFO by sent_ms (= by deadline) */
};

struct claim_flight { /* at most one claim in flight per actor */
  lmz_dirclient_req_t req;
  lmz_router_t *r;
  size_t klen;
  char key[];
};

struct relay_claim { /* claim_local: a relay actor follows its socket */
  lmz_dirclient_req_t req;
  lmz_router_t *r; /* NULL once the router closed (the claim completes later) */
  struct relay_claim *prev, *next; /* r->relays */
  bool retry;        /* a first placement: proposed again when it fails */
  bool waiting;      /* failed: proposed again at retry_at (tick) */
  uint32_t tries;
  uint64_t retry_at;
  size_t blen;       /* key = binding NUL instance NUL */
  char key[];
};

static uint64_t now_ms(const lmz_router_t *r) {
  return lmz_cluster_now_ms(r->c);
}

static uint64_t self_id(const lmz_router_t *r) {
  return lmz_cluster_node_id(r->c);
}

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

static void fail_msg(lmz_router_t *r, lmz_msg *m, uint64_t owner,
                     const char *why) {
  r->st.unavailable++;
  /* debug: the caller gets the error; `why` may be a peer's text (the log
   * escapes control bytes) */
  LMZ_LOG_DEBUG(&log_ns, "call to %s/%s unavailable (owner %llu): %s"
                LMZ__TRACE_FMT, m->binding ? m->binding->name : "?",
                m->instance ? m->instance : "-", (unsigned long long)owner, why,
                LMZ__TRACE_ARGS(&m->cctx));
  lmz_value *e = unavailable(m->arena, m->binding ? m->binding->name : "?",
                             m->instance, owner, why);
  lmz__msg_fail(r->node, m, e);
}

/* A forwarded call could not be queued: a full queue is a retryable
 * MeshOverloadedError, a call over the frame cap an Error naming the sizes
 * (retrying cannot help), anything else the owner being unreachable. */
static void fail_send(lmz_router_t *r, lmz_msg *m, uint64_t owner, int rv,
                      size_t frame_len) {
  lmz_value *e;
  if (rv == LMZ_EOVERLOAD) {
    e = lmz__overloaded_error(m->arena, "actor %s/%s: its owner's queue is full",
                              m->binding->name, m->instance);
  } else if (rv == LMZ_ETOOBIG) {
    e = lmz__error_value(m->arena, "Error",
                         "Message is too large: the call to %s/%s is %zu bytes, "
                         "the limit between nodes is %u bytes",
                         m->binding->name, m->instance, frame_len,
                         (unsigned)LMZ_FRAME_MAX_DEFAULT);
  } else {
    fail_msg(r, m, owner, "cannot reach its owner");
    return;
  }
  lmz__msg_fail(r->node, m, e);
}

static void park(lmz_router_t *r, lmz_msg *m) {
  if (!m->route_deadline_ms)
    m->route_deadline_ms = now_ms(r) + r->o.park_timeout_ms;
  m->next = NULL;
  if (r->parked_tail)
    r->parked_tail->next = m;
  else
    r->parked_head = m;
  r->parked_tail = m;
  r->st.parked_now++;
}

/* Forwarded calls wait in a hash by call id (for their Result) and in a
 * FIFO by send time, which is deadline order (one FWD_TIMEOUT_MS for all):
 * expiry looks at the head only. */
static int fwd_add(lmz_router_t *r, struct lmz__router_fwd *fw) {
  int rv = lmz_hmap_put(&r->fwds, &fw->call_id, sizeof fw->call_id, fw, NULL);
  if (rv)
    return rv;
  fw->next = NULL;
  fw->prev = r->fwd_tail;
  if (r->fwd_tail)
    r->fwd_tail->next = fw;
  else
    r->fwd_head = fw;
  r->fwd_tail = fw;
  return 0;
}

static void fwd_remove(lmz_router_t *r, struct lmz__router_fwd *fw) {
  lmz_hmap_del(&r->fwds, &fw->call_id, sizeof fw->call_id);
  if (fw->prev)
    fw->prev->next = fw->next;
  else
    r->fwd_head = fw->next;
  if (fw->next)
    fw->next->prev = fw->prev;
  else
    r->fwd_tail = fw->prev;
}

/* ---- claims ----------------------------------------------------------------- */

static void key_of(const lmz_msg *m, char *buf, size_t cap, size_t *len) {
  size_t bl = m->binding->name_len, il = strlen(m->instance);
  *len = bl + 1 + il < cap ? bl + 1 + il : 0;
  if (*len) {
    memcpy(buf, m->binding->name, bl + 1);
    memcpy(buf + bl + 1, m->instance, il);
  }
}

static void retry_parked(lmz_router_t *r);

static void retry_check_cb(uv_check_t *h) {
  lmz_router_t *r = h->data;
  uv_check_stop(h);
  r->retry_armed = false;
  if (!r->closing)
    retry_parked(r);
}

/* Routes the parked calls again at the end of this loop iteration. */
static void retry_soon(lmz_router_t *r) {
  if (r->retry_armed || !r->parked_head || r->closing)
    return;
  r->retry_armed = true;
  uv_check_start(&r->retry, retry_check_cb);
}

static void claim_done(lmz_dirclient_req_t *req, int status,
                       const struct lmz_dir_item *item) {
  struct claim_flight *cf = lmz_container_of(req, struct claim_flight, req);
  lmz_router_t *r = cf->r;
  (void)item;
  lmz_hmap_del(&r->claims, cf->key, cf->klen);
  free(cf);
  if (status < 0) /* the tick retries the parked calls (bounded) */
    LMZ_LOG_DEBUG(&log_ns, "claim failed: %s", lmz_strerror(status));
  else
    retry_soon(r);
}

static void start_claim(lmz_router_t *r, const lmz_msg *m) {
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  size_t kl;
  key_of(m, key, sizeof key, &kl);
  /* One claim per actor in flight. Every claim ends in claim_done: a local
   * one when Raft commits it or leadership is lost, a remote one when the
   * leader answers or the request fails (cluster/dirclient.h) - so a lost
   * claim is retried by the next call after that, never freed under it. */
  struct claim_flight *cf = lmz_hmap_get(&r->claims, key, kl);
  if (cf)
    return;
  if (!(cf = calloc(1, sizeof *cf + kl)))
    return;
  cf->r = r;
  cf->klen = kl;
  memcpy(cf->key, key, kl);
  if (lmz_hmap_put(&r->claims, cf->key, kl, cf, NULL))
    goto err_after_alloc;
  if (lmz_cluster_claim(r->c, &cf->req, m->binding->name, m->instance,
                        claim_done))
    goto err_after_put;
  return;
err_after_put:
  lmz_hmap_del(&r->claims, cf->key, kl);
err_after_alloc:
  free(cf);
}

/* ---- forwarding ------------------------------------------------------------- */

static int encode_call(lmz_router_t *r, lmz_msg *m, uint64_t call_id,
                       uint64_t epoch, lmz_buf bufs[3], Lmz__Frame *f,
                       Lmz__Call *call, Lmz__CallContext *ctx,
                       Lmz__Identity *callee, Lmz__Identity **ids,
                       Lmz__Identity *idv) {
  (void)r;
  bool http = m->kind == LMZ_MSG_HTTP; /* the request rides in `chain` */
  if (m->cctx.n > LMZ_MAX_CALL_CHAIN ||
      (http ? lmz__http_encode_request(m, &bufs[0])
            : lmz_bin_encode(m->chain, &bufs[0], NULL)) ||
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
  ctx->trace_id = m->cctx.trace_id; /* "" = the protobuf-c default */
  ctx->call_id = m->cctx.call_id;
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
  call->kind = http ? 1 : 0;
  f->body_case = LMZ__FRAME__BODY_CALL;
  f->call = call;
  return 0;
}

static void forward(lmz_router_t *r, lmz_msg *m, uint64_t owner,
                    uint64_t epoch) {
  /* tests with a send hook (lmz__router_set_send_hook) have no links */
  lmz_conn_t *c = r->send_hook ? NULL : lmz_cluster_peer_conn(r->c, owner);
  if (!c && !r->send_hook) {
    fail_msg(r, m, owner, "no address for its owner node");
    return;
  }
  if (c && !lmz_conn_is_up(c)) {
    /* not connected (yet, or it crashed): wait, bounded, for the link or for
     * the directory to mark the owner DOWN once its lease surely expired */
    park(r, m);
    return;
  }
  struct lmz__router_fwd *fw = malloc(sizeof *fw);
  Lmz__Frame f = LMZ__FRAME__INIT;
  Lmz__Call call = LMZ__CALL__INIT;
  Lmz__CallContext ctx = LMZ__CALL_CONTEXT__INIT;
  Lmz__Identity callee = LMZ__IDENTITY__INIT;
  Lmz__Identity *ids[LMZ_MAX_CALL_CHAIN], idv[LMZ_MAX_CALL_CHAIN];
  lmz_buf bufs[3] = {LMZ_BUF_INIT, LMZ_BUF_INIT, LMZ_BUF_INIT};
  int rv = fw ? encode_call(r, m, ++r->next_id, epoch, bufs, &f, &call, &ctx,
                            &callee, ids, idv)
              : LMZ_ENOMEM;
  size_t frame_len = 0;
  if (!rv) {
    frame_len = lmz_frame_encoded_len(&f) - LMZ_FRAME_HDR_LEN;
    rv = frame_len > LMZ_FRAME_MAX_DEFAULT ? LMZ_ETOOBIG
         : c                               ? lmz_conn_send(c, &f)
                                           : r->send_hook(r->send_arg, owner, &f);
  }
  for (int i = 0; i < 3; i++)
    lmz_buf_free(&bufs[i]);
  if (!rv) {
    *fw =
        (struct lmz__router_fwd){call.call_id, owner, m, now_ms(r), NULL, NULL};
    rv = fwd_add(r, fw);
  }
  if (rv) {
    free(fw);
    fail_send(r, m, owner, rv, frame_len);
    return;
  }
  r->st.forwarded++;
}

/* A placement of ours that is not activated (cluster/activation.h): no turn
 * of it may run before its activation mark is committed (shown by our
 * replica, or confirmed for that very item by the leader),
 * else the leader could re-place it (our owner renewals stopping) after we
 * acknowledged a write. The call parks (bounded by park_timeout_ms) and
 * routes again: to us once the mark is applied, to the new owner if the
 * placement moved first (we ran nothing of it: no call runs twice). */
static void gate_park(lmz_router_t *r, lmz_msg *m, uint64_t epoch) {
  int rv = lmz_cluster_activation_request(r->c, m->binding->name, m->instance,
                                          epoch);
  if (rv && rv != LMZ_EOVERLOAD) {
    fail_msg(r, m, self_id(r), "its activation could not be recorded");
    return;
  }
  r->st.gated++;
  park(r, m);
}

/* The decision for one message (see the file comment). Returns 1 to deliver
 * locally, 0 when the router took the message. */
int lmz__router_route(lmz_router_t *r, lmz_msg *m) {
  uint64_t owner = 0, epoch = 0, now = now_ms(r);
  if (r->closing) {
    fail_msg(r, m, 0, "the node is shutting down");
    return 0;
  }
  if (m->route_deadline_ms && now > m->route_deadline_ms) {
    fail_msg(r, m, 0, "the placement directory did not answer in time");
    return 0;
  }
  struct lmz_dir_placement pl = {0};
  int rv = lmz_dir_placement_get(lmz_cluster_dir(r->c), m->binding->name,
                                 m->binding->name_len, m->instance,
                                 strlen(m->instance), &pl);
  owner = pl.node_id, epoch = pl.epoch; /* meaningful when rv == 0 */
  if (rv == LMZ_ENOTFOUND) {
    start_claim(r, m);
    park(r, m);
    return 0;
  }
  if (rv) {
    fail_msg(r, m, 0, "invalid name");
    return 0;
  }
  const struct lmz_dir_node *dn = lmz_dir_node_get(lmz_cluster_dir(r->c), owner);
  if (dn && dn->state == LMZ_DIR_DOWN) {
    fail_msg(r, m, owner, "its owner node is down");
    return 0;
  }
  if (owner != self_id(r)) {
    forward(r, m, owner, epoch);
    return 0;
  }
  if (!lmz_cluster_lease_valid(r->c, now)) {
    if (lmz_cluster_had_lease(r->c)) { /* we had one: cut off from the majority? */
      fail_msg(r, m, self_id(r),
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
  if (!pl.activated &&
      !lmz_cluster_activation_confirmed(r->c, m->binding->name, m->instance,
                                        epoch)) {
    gate_park(r, m, epoch);
    return 0;
  }
  m->epoch = epoch;
  return 1;
}

int lmz__router_gate(lmz_router_t *r, lmz_msg *m) {
  struct lmz_dir_placement pl;
  if (r->closing || !m->instance ||
      lmz_dir_placement_get(lmz_cluster_dir(r->c), m->binding->name,
                            m->binding->name_len, m->instance,
                            strlen(m->instance), &pl) ||
      pl.node_id != self_id(r) || pl.activated ||
      lmz_cluster_activation_confirmed(r->c, m->binding->name, m->instance,
                                       pl.epoch))
    return 1;
  gate_park(r, m, pl.epoch);
  return 0;
}

/* Relay actors (the client gateway) live where their client's socket is:
 * placed with the LOCAL policy when the client connects (claim_local), never
 * claimed by a call. A call goes to the placed owner when that is another
 * live node, else it runs here (where "not connected" is the answer). */
int lmz__router_route_relay(lmz_router_t *r, lmz_msg *m) {
  uint64_t owner = 0, epoch = 0;
  if (r->closing || !m->instance ||
      lmz_dir_lookup(lmz_cluster_dir(r->c), m->binding->name, m->binding->name_len,
                     m->instance, strlen(m->instance), &owner, &epoch) ||
      owner == self_id(r))
    return 1;
  const struct lmz_dir_node *dn = lmz_dir_node_get(lmz_cluster_dir(r->c), owner);
  lmz_conn_t *c = dn && dn->state != LMZ_DIR_DOWN ? lmz_cluster_peer_conn(r->c, owner) : NULL;
  if (!c || !lmz_conn_is_up(c))
    return 1;
  forward(r, m, owner, epoch);
  return 0;
}

/* A relay claim is retried: the proposal goes to the directory leader and
 * fails when there is none or it changes (an election under load), and a
 * client whose placement is never made is unreachable from other nodes
 * for as long as it stays connected. Bounded: RELAY_TRIES proposals,
 * backing off from RELAY_BACKOFF_MS to RELAY_BACKOFF_MAX_MS. */
#define RELAY_TRIES 30
#define RELAY_BACKOFF_MS 50
#define RELAY_BACKOFF_MAX_MS 2000

static void relay_unlink(struct relay_claim *rc) {
  if (rc->prev)
    rc->prev->next = rc->next;
  else
    rc->r->relays = rc->next;
  if (rc->next)
    rc->next->prev = rc->prev;
  rc->prev = rc->next = NULL;
}

static void relay_free(struct relay_claim *rc) {
  if (rc->r)
    relay_unlink(rc);
  free(rc);
}

static void relay_failed(struct relay_claim *rc, int status) {
  lmz_router_t *r = rc->r;
  const char *inst = rc->key + rc->blen + 1;
  if (!r || r->closing || status == LMZ_ECANCELED || !rc->retry ||
      rc->tries >= RELAY_TRIES) {
    LMZ_LOG_DEBUG(&log_ns, "claim_local %s/%s failed: %s", rc->key, inst,
                  lmz_strerror(status));
    relay_free(rc);
    return;
  }
  uint64_t backoff = (uint64_t)RELAY_BACKOFF_MS << (rc->tries < 6 ? rc->tries : 6);
  rc->retry_at = now_ms(r) + (backoff < RELAY_BACKOFF_MAX_MS ? backoff : RELAY_BACKOFF_MAX_MS);
  rc->waiting = true;
}

static void claim_local_done(lmz_dirclient_req_t *req, int status,
                             const struct lmz_dir_item *item) {
  (void)item;
  struct relay_claim *rc = lmz_container_of(req, struct relay_claim, req);
  if (status < 0)
    relay_failed(rc, status);
  else
    relay_free(rc);
}

/* Proposes rc's claim (a first placement, REPLACE_DOWN) or move. */
static void relay_propose(struct relay_claim *rc, const struct lmz_dir_move *mv) {
  lmz_router_t *r = rc->r;
  const char *inst = rc->key + rc->blen + 1;
  size_t il = strlen(inst);
  lmz_buf cmd = LMZ_BUF_INIT;
  int rv;
  rc->tries++;
  if (mv) {
    rv = lmz_dir_encode_moves(&cmd, mv, 1);
  } else {
    struct lmz_dir_claim cl = {rc->key, rc->blen, inst, il, self_id(r),
                               lmz_cluster_next_id(r->c), LMZ_DIR_CLAIM_REPLACE_DOWN,
                               0, NULL};
    rv = lmz_dir_encode_claims(&cmd, &cl, 1);
  }
  if (!rv)
    rv = lmz_cluster_propose(r->c, &rc->req, &cmd, claim_local_done);
  lmz_buf_free(&cmd);
  r->relay_claims += !mv && rv == 0; /* counted as claims made */
  if (rv)
    relay_failed(rc, rv);
}

/* A relay actor follows its socket: claim it here, or move it here. */
void lmz__router_claim_local(lmz_router_t *r, const char *binding,
                             const char *instance) {
  uint64_t owner = 0, epoch = 0, self = self_id(r);
  size_t bl = strlen(binding), il = strlen(instance);
  int rv = lmz_dir_lookup(lmz_cluster_dir(r->c), binding, bl, instance, il, &owner,
                          &epoch);
  if ((rv == 0 && owner == self) || (rv && rv != LMZ_ENOTFOUND) || r->closing)
    return;
  struct relay_claim *rc = calloc(1, sizeof *rc + bl + il + 2);
  if (!rc) {
    LMZ_LOG_DEBUG(&log_ns, "claim_local %s/%s: out of memory", binding, instance);
    return;
  }
  rc->r = r;
  rc->blen = bl;
  memcpy(rc->key, binding, bl + 1);
  memcpy(rc->key + bl + 1, instance, il + 1);
  rc->next = r->relays;
  if (r->relays)
    r->relays->prev = rc;
  r->relays = rc;
  /* a move is not retried: the client may have gone on to another node */
  rc->retry = rv == LMZ_ENOTFOUND;
  struct lmz_dir_move mv = {binding, bl, instance, il, owner, self, epoch,
                            lmz_cluster_next_id(r->c), true};
  relay_propose(rc, rv == 0 ? &mv : NULL);
}

/* The tick: failed first placements due again are proposed again, unless
 * the directory has placed the actor meanwhile (anywhere: a client that
 * reconnected elsewhere is claimed there). */
static void relay_retry(lmz_router_t *r, uint64_t now) {
  struct relay_claim *next;
  for (struct relay_claim *rc = r->relays; rc; rc = next) {
    next = rc->next;
    if (!rc->waiting || now < rc->retry_at)
      continue;
    uint64_t owner = 0, epoch = 0;
    const char *inst = rc->key + rc->blen + 1;
    if (lmz_dir_lookup(lmz_cluster_dir(r->c), rc->key, rc->blen, inst, strlen(inst),
                       &owner, &epoch) != LMZ_ENOTFOUND) {
      relay_free(rc);
      continue;
    }
    rc->waiting = false;
    relay_propose(rc, NULL);
  }
}

/* Close: waiting claims are dropped; those in flight complete later, after
 * the router is freed, so they forget it. */
static void relay_close(lmz_router_t *r) {
  while (r->relays) {
    struct relay_claim *rc = r->relays;
    relay_unlink(rc);
    rc->r = NULL;
    if (rc->waiting)
      free(rc);
  }
}

static void retry_parked(lmz_router_t *r) {
  lmz_msg *m = r->parked_head;
  r->parked_head = r->parked_tail = NULL;
  r->st.parked_now = 0;
  while (m) {
    lmz_msg *next = m->next;
    m->next = NULL;
    int rv = lmz__router_route(r, m);
    if (rv == 1 && (rv = lmz__deliver_local(r->node, m)))
      lmz__msg_fail(r->node, m,
                    rv == LMZ_EOVERLOAD
                        ? lmz__overloaded_error(m->arena, "%s", lmz_strerror(rv))
                        : lmz__error_value(m->arena, "Error", "%s",
                                           lmz_strerror(rv)));
    m = next;
  }
}

/* ---- frames from peers --------------------------------------------------- */

void lmz_router_on_result(lmz_router_t *r, lmz_conn_t *conn,
                          const Lmz__Frame *f) {
  (void)conn;
  const Lmz__Result *res = f->result;
  uint64_t id = res->call_id;
  struct lmz__router_fwd *fw = lmz_hmap_get(&r->fwds, &id, sizeof id);
  if (!fw)
    return;
  fwd_remove(r, fw);
  lmz_msg *m = fw->m;
  uint64_t peer = fw->peer;
  free(fw);
  if (res->code == LMZ_EMOVED || (res->code == LMZ_EUNAVAILABLE && !res->value.len)) {
    r->st.moved++;
    LMZ_LOG_DEBUG(&log_ns, "call to %s/%s moved away from node %llu; rerouting"
                  LMZ__TRACE_FMT, m->binding->name, m->instance ? m->instance : "-",
                  (unsigned long long)peer, LMZ__TRACE_ARGS(&m->cctx));
    if (++m->hops > MAX_HOPS) {
      fail_msg(r, m, peer, "it keeps moving (directory not converging)");
      return;
    }
    park(r, m); /* our directory catches up, then we route again */
    return;
  }
  lmz_value *v = NULL;
  struct lmz_codec_limits lim;
  lmz_codec_limits_default(&lim);
  lim.max_input = LMZ_FRAME_MAX_DEFAULT; /* what the frame cap let through */
  if (res->value.len &&
      lmz_bin_decode(m->arena, res->value.data, res->value.len, &lim, &v, NULL))
    v = NULL;
  if (res->code || !v) {
    fail_msg(r, m, peer, res->detail && *res->detail ? res->detail : "bad reply");
    return;
  }
  if (!res->ok) /* the callee threw: its node logged it under the same trace */
    LMZ_LOG_DEBUG(&log_ns, "forwarded call to %s/%s: node %llu answered an error: %s"
                  LMZ__TRACE_FMT, m->binding->name, m->instance ? m->instance : "-",
                  (unsigned long long)peer,
                  lmz_typeof(v) == LMZ_T_ERROR ? lmz_error_message(v) : "(non-Error)",
                  LMZ__TRACE_ARGS(&m->cctx));
  m->binding = NULL; /* it is a reply now */
  m->reply_ok = res->ok;
  m->reply_value = v;
  lmz__release_output(r->node, m);
}

void lmz_router_on_conn_state(lmz_router_t *r, lmz_conn_t *conn, int state,
                              int status) {
  (void)status;
  if (state != LMZ_CONN_DOWN)
    return;
  uint64_t peer = lmz_conn_peer_id(conn);
  lmz__bcast_rt_peer_down(r->bc, peer);
  struct lmz__router_fwd *fw = r->fwd_head;
  while (fw) {
    struct lmz__router_fwd *next = fw->next;
    if (fw->peer == peer) {
      fwd_remove(r, fw);
      fail_msg(r, fw->m, peer, "the connection to its owner was lost");
      free(fw);
    }
    fw = next;
  }
}

/* A drain is moving (binding, instance) away (lmz__router_set_moving). */
static bool is_moving(lmz_router_t *r, const char *binding,
                      const char *instance) {
  if (!r->moving.n)
    return false;
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  size_t bl = strlen(binding), il = strlen(instance);
  if (bl > LMZ_DIR_BINDING_MAX || il > LMZ_DIR_INSTANCE_MAX)
    return false;
  memcpy(key, binding, bl + 1);
  memcpy(key + bl + 1, instance, il);
  return lmz_hmap_get(&r->moving, key, bl + 1 + il) != NULL;
}

int lmz_router_owns(lmz_router_t *r, const char *binding,
                    const char *instance) {
  uint64_t owner = 0, epoch = 0;
  if (lmz_dir_lookup(lmz_cluster_dir(r->c), binding, strlen(binding), instance,
                     strlen(instance), &owner, &epoch) || owner != self_id(r))
    return LMZ_EMOVED;
  if (is_moving(r, binding, instance))
    return LMZ_EUNAVAILABLE; /* a drain exported it: not now */
  return lmz_cluster_lease_valid(r->c, now_ms(r)) ? 0 : LMZ_EUNAVAILABLE;
}

uint64_t lmz__router_epoch(lmz_router_t *r, const char *binding,
                           const char *instance) {
  uint64_t owner = 0, epoch = 0;
  if (lmz_dir_lookup(lmz_cluster_dir(r->c), binding, strlen(binding), instance,
                     strlen(instance), &owner, &epoch) || owner != self_id(r))
    return 0;
  return epoch;
}

bool lmz__router_fresh(lmz_router_t *r, const char *binding,
                       const char *instance, uint64_t epoch,
                       bool *stale_backups) {
  const lmz_dir_t *dir = lmz_cluster_dir(r->c);
  struct lmz_dir_placement p;
  *stale_backups = false;
  if (lmz_dir_placement_get(dir, binding, strlen(binding), instance,
                            strlen(instance), &p) ||
      p.node_id != self_id(r) || p.epoch != epoch || !p.fresh)
    return false;
  for (uint32_t i = 0; i < p.n_backups; i++) {
    const struct lmz_dir_node *b = lmz_dir_node_get(dir, p.backups[i]);
    *stale_backups |= !b || b->stale_copies;
  }
  return true;
}

int lmz_router_check_owner(lmz_router_t *r, const char *binding,
                           const char *instance, uint64_t epoch,
                           uint64_t *cur_epoch) {
  uint64_t owner = 0, cur = 0;
  *cur_epoch = 0;
  struct lmz_binding *b = lmz__binding_get(r->node, binding);
  int found = lmz_dir_lookup(lmz_cluster_dir(r->c), binding, strlen(binding),
                             instance, strlen(instance), &owner, &cur);
  if (b && b->cls->raw) /* relay actors: ours unless placed elsewhere */
    return found == 0 && owner != self_id(r) ? LMZ_EMOVED : 0;
  if (found)
    return LMZ_EMOVED;
  *cur_epoch = cur;
  if (owner != self_id(r) || (epoch && epoch != cur))
    return LMZ_EMOVED;
  if (!lmz_cluster_lease_valid(r->c, now_ms(r)))
    return LMZ_EUNAVAILABLE;
  if (is_moving(r, binding, instance))
    return LMZ_EMOVED; /* a drain exported it: the sender routes again once
                          the move settled (a turn here would be lost) */
  r->st.forwarded_in++;
  return 0;
}

/* ---- the tick ----------------------------------------------------------- */

/* A forwarded call whose owner never answers (a half-open link the dead-peer
 * timer has not caught yet) fails after FWD_TIMEOUT_MS rather than hang. */
static void expire_fwds(lmz_router_t *r, uint64_t now) {
  while (r->fwd_head && now - r->fwd_head->sent_ms >= FWD_TIMEOUT_MS) {
    struct lmz__router_fwd *fw = r->fwd_head;
    fwd_remove(r, fw);
    fail_msg(r, fw->m, fw->peer, "its owner did not answer");
    free(fw);
  }
}

/* The cluster's tick (its clock, every TICK_MS). */
static void adopt(void *arg, const char *binding, const char *instance) {
  lmz_router_t *r = arg;
  lmz_node_adopt_actor(r->node, binding, instance);
}

static void tick_cb(lmz_cluster_t *c, uint64_t now, void *arg) {
  lmz_router_t *r = arg;
  lmz_cluster_take_acquired(c, adopt, r); /* failovers made them ours */
  lmz__fresh_tick(r, now);
  expire_fwds(r, now);
  lmz__bcast_rt_tick(r->bc, now);
  if (r->relays && !r->closing)
    relay_retry(r, now);
  if (r->parked_head && !r->closing)
    retry_parked(r);
}

/* The cluster says parked calls may get further now. */
static void wake_cb(lmz_cluster_t *c, void *arg) {
  (void)c;
  lmz_router_t *r = arg;
  if (r->parked_head && !r->closing)
    retry_parked(r);
}

/* ---- for the drain (router_int.h) ------------------------------------------ */

lmz_node_t *lmz__router_node(lmz_router_t *r) { return r->node; }
lmz_cluster_t *lmz_router_cluster(lmz_router_t *r) { return r->c; }
struct lmz_drain *lmz__router_drain(lmz_router_t *r) {
  return r->drain;
}
void lmz__router_set_drain(lmz_router_t *r, struct lmz_drain *d) {
  r->drain = d;
}
void lmz__router_retry_parked(lmz_router_t *r) { retry_parked(r); }

int lmz__router_set_moving(lmz_router_t *r, const char *key, size_t klen,
                           bool on) {
  if (!on) {
    lmz_hmap_del(&r->moving, key, klen);
    return 0;
  }
  return lmz_hmap_put(&r->moving, key, klen, r, NULL);
}

/* ---- for broadcasts (broadcast_int.h) ---------------------------------------- */

struct lmz__bcast_rt *lmz__router_bcast_rt(lmz_router_t *r) {
  return r->bc;
}
uint64_t lmz__router_now_ms(lmz_router_t *r) { return now_ms(r); }
bool lmz__router_closing(lmz_router_t *r) { return r->closing; }

void lmz__router_set_send_hook(lmz_router_t *r, lmz__router_send_fn fn,
                               void *arg) {
  r->send_hook = fn;
  r->send_arg = arg;
}

int lmz__router_send(lmz_router_t *r, uint64_t peer, const Lmz__Frame *f) {
  if (r->send_hook)
    return r->send_hook(r->send_arg, peer, f);
  return lmz_cluster_send(r->c, peer, f);
}

void lmz__router_flush(lmz_router_t *r, uint64_t peer) {
  lmz_conn_t *c = r->send_hook ? NULL : lmz_cluster_peer_conn(r->c, peer);
  if (c)
    lmz_conn_flush(c);
}

/* A target goes in a frame only when a single call to it would be
 * forwarded at once (forward(): a live owner with its link up); every other
 * case (ours, unplaced, parked, down) is the single call's business. */
int lmz__router_bcast_owner(lmz_router_t *r, const struct lmz_binding *b,
                            const char *instance, uint64_t *owner,
                            uint64_t *epoch) {
  if (r->closing || lmz_dir_lookup(lmz_cluster_dir(r->c), b->name, b->name_len,
                                   instance, strlen(instance), owner, epoch) ||
      *owner == self_id(r))
    return 0;
  const struct lmz_dir_node *dn = lmz_dir_node_get(lmz_cluster_dir(r->c), *owner);
  if (!dn || dn->state == LMZ_DIR_DOWN)
    return 0;
  if (r->send_hook)
    return 1;
  lmz_conn_t *c = lmz_cluster_peer_conn(r->c, *owner);
  return c && lmz_conn_is_up(c);
}

void lmz__router_moved(lmz_router_t *r, lmz_msg *m, uint64_t peer) {
  r->st.moved++;
  if (m->hops > MAX_HOPS) {
    fail_msg(r, m, peer, "it keeps moving (directory not converging)");
    return;
  }
  park(r, m); /* our directory catches up, then we route it again */
}

void lmz_router_on_broadcast(lmz_router_t *r, lmz_conn_t *conn,
                             const Lmz__Frame *f) {
  lmz__bcast_on_frame(r->bc, conn, lmz_conn_peer_id(conn), f->broadcast);
}

void lmz_router_on_broadcast_result(lmz_router_t *r, lmz_conn_t *conn,
                                    const Lmz__Frame *f) {
  lmz__bcast_on_result(r->bc, lmz_conn_peer_id(conn), f->broadcast_result);
}

/* ---- setup and teardown -------------------------------------------------- */

int lmz_router_init(lmz_router_t *r, lmz_node_t *n, lmz_cluster_t *c,
                    const struct lmz_router_opts *o, char *errmsg) {
  *r = (lmz_router_t){.node = n, .c = c, .o = *o, .fresh_since = UINT64_MAX};
  if (!r->o.park_timeout_ms)
    r->o.park_timeout_ms = 10000;
  if (lmz__bcast_rt_new(r, n->loop, &r->bc)) {
    lmz__errmsg_printf(errmsg, "router: out of memory");
    return LMZ_ENOMEM;
  }
  uv_check_init(n->loop, &r->retry);
  r->retry.data = r;
  lmz_cluster_set_hooks(c, wake_cb, tick_cb, r);
  lmz__node_set_router(n, r);
  return 0;
}

void lmz_router_get_stats(lmz_router_t *r, struct lmz_router_stats *st) {
  struct lmz_cluster_stats cs;
  lmz_cluster_get_stats(r->c, &cs);
  *st = r->st;
  st->claims = cs.claims + r->relay_claims;
  st->claims_remote = cs.claims_remote;
  st->lease_valid = cs.lease_valid;
  st->lease_remaining_ms = cs.lease_remaining_ms;
  st->leader_id = cs.leader_id;
  st->role = cs.role;
  st->term = cs.term;
  st->forwards_pending = r->fwds.n;
  lmz__bcast_rt_stats(r->bc, st);
  st->repl_under_replicated = cs.repl.under_replicated;
  st->repl_shipped = cs.repl.shipped;
  st->repl_pending = cs.repl.pending_tokens;
  st->repl_pair_outs = cs.repl.pair_outs;
  st->repl_fills = cs.repl.fills_done;
  st->repl_applied = cs.repl.applied_records;
  st->repl_refused = cs.repl.refused;
  st->repl_in_sync = cs.repl.streams_in_sync;
  st->repl_out_of_sync = cs.repl.streams_out_of_sync;
  st->repl_max_lag_ms = cs.repl.max_lag_ms;
  st->repl_lag_bytes = cs.repl.lag_bytes;
  st->repl_stale_dropped = cs.repl.stale_dropped;
}

int lmz_router_status_json(lmz_router_t *r, lmz_buf *out) {
  return lmz_cluster_status_json(r->c, out);
}

static void handle_closed(lmz_router_t *r) {
  if (--r->handles_open == 0 && r->close_cb)
    r->close_cb(r, r->close_arg);
}

static void retry_closed(uv_handle_t *h) { handle_closed(h->data); }

static void bcast_closed(void *arg) { handle_closed(arg); }

void lmz_router_close(lmz_router_t *r, lmz_router_close_cb cb, void *arg) {
  r->closing = true;
  r->close_cb = cb;
  r->close_arg = arg;
  lmz__node_set_router(r->node, NULL);
  lmz_cluster_set_hooks(r->c, NULL, NULL, NULL);
  if (r->drain) /* before the parked calls fail: it unmarks its actor */
    lmz__drain_cancel(r->drain);
  retry_parked(r); /* fails them: closing */
  relay_close(r);
  while (r->fwd_head) {
    struct lmz__router_fwd *fw = r->fwd_head;
    fwd_remove(r, fw);
    fail_msg(r, fw->m, fw->peer, "the node is shutting down");
    free(fw);
  }
  r->handles_open = 2;
  lmz__bcast_rt_close(r->bc, bcast_closed, r); /* its flights fail */
  uv_close((uv_handle_t *)&r->retry, retry_closed);
}

/* Claims still in flight complete (cancelled) when the cluster closes,
 * after the router's close: they are freed there (claim_done). */
void lmz_router_release(lmz_router_t *r) {
  if (!r)
    return;
  lmz_hmap_free(&r->claims);
  lmz_hmap_free(&r->moving);
  lmz_hmap_free(&r->fwds);
  lmz__bcast_rt_free(r->bc);
  r->bc = NULL; /* r itself is the caller's */
}
