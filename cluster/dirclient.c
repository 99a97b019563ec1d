/* cluster/dirclient.c - claims and proposals to the directory leader (see
 * dirclient.h).
 *
 * Happy path: lmz_dirclient_claim() on the serving leader hands the claim to
 * the local Raft node (ops.claim: batched into an entry); on any other node
 * it sends DirRequest{kind 1} to the leader and files the request by id and
 * in the deadline FIFO; the leader's DirResponse finds it by id and
 * completes it. The leader serves a peer's DirRequest the same way, locally,
 * and answers with DirResponse when Raft applied it.
 *
 * Failure modes:
 *  1. no leader known / no link to it: LMZ_ENOTLEADER at once (no callback;
 *     the caller retries later);
 *  2. the leader never answers (lost frame, dead or paused leader):
 *     LMZ_ETIMEOUT after LMZ_DIRCLIENT_TIMEOUT_MS;
 *  3. a DirRequest reaches a node that does not lead: it answers
 *     LMZ_ENOTLEADER, which completes the request with that status;
 *  4. a DirResponse for an unknown id (timed out already): ignored;
 *  5. close: waiting requests get LMZ_ECANCELED; served requests complete
 *     through the Raft node's close and their answers are not sent;
 *  6. the link to the leader drops, or another node becomes leader, while
 *     requests wait on it: they fail LMZ_ENOTLEADER at once (their outcome
 *     is unknown; claims are idempotent) so the caller retries on the new
 *     leader, instead of after the timeout (issue 15 item 4). */
#include "cluster/dirclient.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.dirclient");

enum { DIR_CLAIM = 1, DIR_PROPOSE = 2 };

struct served { /* a peer's DirRequest we serve as the leader */
  lmz_dirclient_req_t req;
  uint64_t from, request_id;
};

void lmz_dirclient_init(lmz_dirclient_t *dc,
                        const struct lmz_dirclient_options *o) {
  void *data = dc->data;
  memset(dc, 0, sizeof *dc);
  dc->data = data;
  dc->o = *o;
  lmz_hmap_init(&dc->remote);
}

uint64_t lmz_dirclient_next_id(lmz_dirclient_t *dc) { return ++dc->next_id; }

size_t lmz_dirclient_n_waiting(const lmz_dirclient_t *dc) {
  return dc->remote.n;
}

static uint64_t now_ms(lmz_dirclient_t *dc) {
  return dc->o.ops.now_ms(dc->o.ops_ctx);
}

static void req_setup(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                      lmz_dirclient_cb cb) {
  req->dc = dc;
  req->cb = cb;
  req->id = ++dc->next_id;
  req->sent_to = 0;
  req->deadline_ms = 0;
  req->prev = req->next = NULL;
}

/* ---- waiting remote requests ---------------------------------------------- */

static void fifo_push(lmz_dirclient_t *dc, lmz_dirclient_req_t *req) {
  req->next = NULL;
  req->prev = dc->tail;
  if (dc->tail)
    dc->tail->next = req;
  else
    dc->head = req;
  dc->tail = req;
}

static void fifo_unlink(lmz_dirclient_t *dc, lmz_dirclient_req_t *req) {
  if (req->prev)
    req->prev->next = req->next;
  else
    dc->head = req->next;
  if (req->next)
    req->next->prev = req->prev;
  else
    dc->tail = req->prev;
  req->prev = req->next = NULL;
}

/* Takes req out of the waiting set and completes it. */
static void finish(lmz_dirclient_t *dc, lmz_dirclient_req_t *req, int status,
                   const struct lmz_dir_item *item) {
  lmz_hmap_del(&dc->remote, &req->id, sizeof req->id);
  fifo_unlink(dc, req);
  req->cb(req, status, item);
}

void lmz_dirclient_local_done(lmz_dirclient_req_t *req, int status,
                              const struct lmz_dir_item *item) {
  req->cb(req, status, item);
}

/* Sends a DirRequest to the leader; the reply arrives as DirResponse. */
static int send_remote(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                       uint32_t kind, const char *binding,
                       const char *instance, uint32_t policy,
                       const lmz_buf *cmd) {
  uint64_t leader = dc->o.ops.leader(dc->o.ops_ctx);
  if (!leader || leader == dc->o.node_id)
    return LMZ_ENOTLEADER;
  Lmz__DirRequest d = LMZ__DIR_REQUEST__INIT;
  d.request_id = req->id;
  d.kind = kind;
  d.binding = (char *)(binding ? binding : "");
  d.instance = (char *)(instance ? instance : "");
  d.policy = policy;
  d.from_node = dc->o.node_id;
  if (cmd) {
    d.command.data = cmd->data;
    d.command.len = cmd->len;
  }
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_DIR_REQUEST;
  f.dir_request = &d;
  if (dc->o.ops.send(dc->o.ops_ctx, leader, &f))
    return LMZ_ENOTLEADER;
  int rv = lmz_hmap_put(&dc->remote, &req->id, sizeof req->id, req, NULL);
  if (rv)
    return rv;
  req->sent_to = leader;
  req->deadline_ms = now_ms(dc) + LMZ_DIRCLIENT_TIMEOUT_MS;
  fifo_push(dc, req);
  return 0;
}

int lmz_dirclient_claim(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                        const char *binding, const char *instance,
                        enum lmz_placement_policy policy, uint64_t local_node,
                        lmz_dirclient_cb cb) {
  if (dc->closing)
    return LMZ_ECANCELED;
  req_setup(dc, req, cb);
  int rv;
  if (dc->o.ops.is_serving(dc->o.ops_ctx)) {
    rv = dc->o.ops.claim(dc->o.ops_ctx, req, binding, instance, policy,
                         local_node, 0);
  } else {
    rv = send_remote(dc, req, DIR_CLAIM, binding, instance, policy, NULL);
    dc->st.claims_remote += rv == 0;
  }
  dc->st.claims += rv == 0;
  return rv;
}

int lmz_dirclient_propose(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                          const lmz_buf *cmd, lmz_dirclient_cb cb) {
  if (dc->closing)
    return LMZ_ECANCELED;
  req_setup(dc, req, cb);
  int rv = dc->o.ops.is_serving(dc->o.ops_ctx)
               ? dc->o.ops.propose(dc->o.ops_ctx, req, cmd->data, cmd->len)
               : send_remote(dc, req, DIR_PROPOSE, NULL, NULL, 0, cmd);
  dc->st.proposals += rv == 0;
  return rv;
}

/* ---- serving peers (leader) ------------------------------------------------ */

static void send_response(lmz_dirclient_t *dc, uint64_t to, uint64_t id,
                          int status, const struct lmz_dir_item *item) {
  Lmz__DirResponse d = LMZ__DIR_RESPONSE__INIT;
  d.request_id = id;
  d.status = status;
  if (item) {
    d.node_id = item->node_id;
    d.epoch = item->epoch;
    d.item_status = item->status;
  }
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_DIR_RESPONSE;
  f.dir_response = &d;
  dc->o.ops.send(dc->o.ops_ctx, to, &f); /* lost: the peer times out */
}

static void served_done(lmz_dirclient_req_t *req, int status,
                        const struct lmz_dir_item *item) {
  struct served *sv = lmz_container_of(req, struct served, req);
  if (!req->dc->closing)
    send_response(req->dc, sv->from, sv->request_id, status, item);
  free(sv);
}

void lmz_dirclient_on_request(lmz_dirclient_t *dc, const Lmz__DirRequest *d) {
  struct served *sv = NULL;
  int rv = LMZ_EINVAL;
  if (dc->closing || !dc->o.ops.is_serving(dc->o.ops_ctx))
    rv = LMZ_ENOTLEADER;
  else if (d->kind == DIR_CLAIM || d->kind == DIR_PROPOSE)
    rv = (sv = calloc(1, sizeof *sv)) ? 0 : LMZ_ENOMEM;
  if (!rv) {
    sv->from = d->from_node;
    sv->request_id = d->request_id;
    dc->st.served++;
    if (d->kind == DIR_CLAIM) {
      uint32_t pol = d->policy == LMZ_PLACEMENT_LOCAL ? LMZ_PLACEMENT_LOCAL
                                                      : LMZ_PLACEMENT_HASH;
      rv = lmz_dirclient_claim(dc, &sv->req, d->binding, d->instance, pol,
                               d->from_node, served_done);
    } else {
      lmz_buf cmd = {d->command.data, d->command.len, 0, 0};
      rv = lmz_dirclient_propose(dc, &sv->req, &cmd, served_done);
    }
  }
  if (rv) {
    send_response(dc, d->from_node, d->request_id, rv, NULL);
    free(sv);
  }
}

void lmz_dirclient_on_response(lmz_dirclient_t *dc,
                               const Lmz__DirResponse *d) {
  uint64_t id = d->request_id;
  lmz_dirclient_req_t *req = lmz_hmap_get(&dc->remote, &id, sizeof id);
  if (!req)
    return; /* timed out or cancelled already */
  struct lmz_dir_item item = {d->item_status, 0, d->node_id, d->epoch};
  int status = d->status ? d->status : d->item_status;
  finish(dc, req, status, d->status ? NULL : &item);
}

/* ---- time and close ----------------------------------------------------- */

/* Requests to the leader that got no answer (lost, leader changed) fail.
 * Every request waits LMZ_DIRCLIENT_TIMEOUT_MS from when it was sent, so
 * the FIFO is in deadline order: look at the head only (O(expired)). */
void lmz_dirclient_tick(lmz_dirclient_t *dc, uint64_t now) {
  while (dc->head) {
    lmz_dirclient_req_t *req = dc->head;
    dc->st.expiry_visits++;
    if (now < req->deadline_ms)
      break;
    dc->st.timeouts++;
    LMZ_LOG_DEBUG(&log_ns, "request %llu to node %llu timed out",
                  (unsigned long long)req->id,
                  (unsigned long long)req->sent_to);
    finish(dc, req, LMZ_ETIMEOUT, NULL);
  }
}

/* Fails (LMZ_ENOTLEADER) every waiting request sent to `peer` (when
 * `sent_to_peer`) or to anyone but `peer`. The matching ones leave the
 * waiting set first, so callbacks that send new requests cannot disturb
 * the walk. */
static void fail_sent(lmz_dirclient_t *dc, uint64_t peer, bool sent_to_peer) {
  lmz_dirclient_req_t *out = NULL, **tail = &out;
  for (lmz_dirclient_req_t *req = dc->head, *next; req; req = next) {
    next = req->next;
    if ((req->sent_to == peer) != sent_to_peer)
      continue;
    lmz_hmap_del(&dc->remote, &req->id, sizeof req->id);
    fifo_unlink(dc, req);
    *tail = req;
    tail = &req->next;
  }
  while (out) {
    lmz_dirclient_req_t *req = out;
    out = req->next;
    req->next = NULL;
    dc->st.retargeted++;
    req->cb(req, LMZ_ENOTLEADER, NULL);
  }
}

void lmz_dirclient_peer_down(lmz_dirclient_t *dc, uint64_t peer) {
  if (peer)
    fail_sent(dc, peer, true);
}

void lmz_dirclient_leader_changed(lmz_dirclient_t *dc, uint64_t leader) {
  fail_sent(dc, leader, false);
}

void lmz_dirclient_close(lmz_dirclient_t *dc) {
  dc->closing = true;
  while (dc->head)
    finish(dc, dc->head, LMZ_ECANCELED, NULL);
  lmz_hmap_free(&dc->remote);
}
