/* cluster/member.c - registration, the lease holder loop, the leader's
 * lease watch and membership changes (see member.h; the protocol and its
 * safety argument are in lease.h).
 *
 * Happy path, every tick: not registered -> propose UP; registered and L/3
 * since the last renewal -> propose DirLeaseRenew with t_req = now; its
 * grant extends the lease to t_req + L - margin. On the serving leader,
 * every margin/2: the first node (not DOWN) whose lease surely expired is
 * fenced with DirMarkDown{expected lease sequence}.
 *
 * Failure modes:
 *  1. a renewal fails (no leader, timeout, leadership lost): the lease runs
 *     on, a retry is allowed at once (lmz_lease_holder_failed);
 *  2. a renewal is refused LMZ_EUNAVAILABLE / LMZ_ENOTFOUND (we were fenced
 *     or forgotten): the lease ends now and the node registers again;
 *  3. a MarkDown is refused (the node renewed in between): nothing
 *     happens, the next watch looks again;
 *  4. a membership change while another runs: LMZ_EBUSY. */
#include "cluster/member.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.member");

struct lmz_member_change {
  lmz_raftnode_change_t chg;
  lmz_member_t *m;
  lmz_member_change_cb cb;
  void *arg;
};

int lmz_member_init(lmz_member_t *m, const struct lmz_member_options *o) {
  void *data = m->data;
  memset(m, 0, sizeof *m);
  m->data = data;
  m->o = *o;
  size_t nl = strlen(o->node_address), rl = strlen(o->raft_address);
  if (nl > LMZ_DIR_ADDRESS_MAX || rl > LMZ_DIR_ADDRESS_MAX ||
      lmz_lease_config_check(&o->lease))
    return LMZ_EINVAL;
  memcpy(m->node_address, o->node_address, nl + 1);
  memcpy(m->raft_address, o->raft_address, rl + 1);
  m->o.node_address = m->node_address;
  m->o.raft_address = m->raft_address;
  lmz_lease_holder_init(&m->lease);
  m->upsert.data = m->renew.data = m->markdown.data = m;
  return 0;
}

void lmz_member_close(lmz_member_t *m) { m->closing = true; }

/* Valid only once our own replica applied the grant that began this
 * stretch of validity. The router decides "ours" from that replica: a node
 * back from a crash or a pause gets the leader's answer before its replica
 * caught up, and that replica may still name it the owner of actors that
 * failed over while it was away. Every placement change committed before
 * that grant is in the replica once the grant is; while the lease stays
 * valid, none of our placements moves unless we move it (drain). Later
 * renewals need not wait: the replica always lags the leader a little. */
bool lmz_member_lease_valid(const lmz_member_t *m, uint64_t now_ms) {
  if (!lmz_lease_holder_is_valid(&m->lease, now_ms))
    return false;
  const struct lmz_dir_node *self = lmz_dir_node_get(m->o.dir, m->o.node_id);
  return self && self->state != LMZ_DIR_DOWN &&
         self->lease_seq >= m->start_seq;
}

bool lmz_member_had_lease(const lmz_member_t *m) {
  return m->lease.valid_until_ms != 0;
}

uint64_t lmz_member_lease_remaining_ms(const lmz_member_t *m,
                                       uint64_t now_ms) {
  return lmz_lease_holder_remaining_ms(&m->lease, now_ms);
}

/* ---- registration and the holder loop ------------------------------------ */

static void upsert_done(lmz_dirclient_req_t *req, int status,
                        const struct lmz_dir_item *item) {
  lmz_member_t *m = req->data;
  m->upsert_flight = false;
  if (status >= 0 && !m->closing) {
    m->registered = true;
    if (m->o.lost_data && !m->lost_data_told && item && item->epoch)
      LMZ_LOG_WARN(&log_ns, "fresh store: %llu actor(s) this node owned failed "
                   "over to their backups", (unsigned long long)item->epoch);
    if (m->o.lost_data && !m->lost_data_told && m->o.on_lost_data_told)
      m->o.on_lost_data_told(m);
    m->lost_data_told = true;
    LMZ_LOG_INFO(&log_ns, "node %llu registered as UP",
                 (unsigned long long)m->o.node_id);
  }
}

/* on_lease_valid, once per change from not valid to valid. */
static void tell_valid(lmz_member_t *m, uint64_t now) {
  bool valid = lmz_member_lease_valid(m, now);
  if (valid && !m->told_valid && m->o.on_lease_valid)
    m->o.on_lease_valid(m);
  m->told_valid = valid;
}

static void renew_done(lmz_dirclient_req_t *req, int status,
                       const struct lmz_dir_item *item) {
  lmz_member_t *m = req->data;
  m->renew_flight = false;
  if (m->closing)
    return;
  uint64_t now = m->o.dc->o.ops.now_ms(m->o.dc->o.ops_ctx);
  if (status >= 0 && item) {
    if (!lmz_lease_holder_is_valid(&m->lease, now))
      m->start_seq = item->epoch; /* a new stretch of validity begins */
    lmz_lease_holder_granted(&m->lease, &m->o.lease, m->lease_t_req,
                             item->epoch);
    tell_valid(m, now); /* or from the tick, once our replica applied it */
  } else if (status == LMZ_EUNAVAILABLE || status == LMZ_ENOTFOUND) {
    /* fenced (marked DOWN) or unknown: stop serving, register again */
    LMZ_LOG_WARN(&log_ns, "lease refused (%s): re-registering",
                 lmz_strerror(status));
    lmz_lease_holder_revoke(&m->lease);
    m->registered = false;
  } else {
    lmz_lease_holder_failed(&m->lease, m->lease_t_req);
  }
}

void lmz_member_stop_serving(lmz_member_t *m) {
  m->stopped = true;
  lmz_lease_holder_revoke(&m->lease);
}

static void holder_step(lmz_member_t *m, uint64_t now) {
  lmz_buf cmd = LMZ_BUF_INIT;
  lmz_dirclient_t *dc = m->o.dc;
  if (m->stopped) /* lmz_member_stop_serving: the lease lapses for good */
    return;
  if (!m->registered && !m->upsert_flight) {
    /* until one registration after a start on a fresh store succeeded,
     * every one says so (the copies the directory counts here are gone) */
    if (!lmz_dir_encode_node_register(&cmd, m->o.node_id, LMZ_DIR_UP,
                                      m->node_address, m->raft_address,
                                      m->o.lost_data && !m->lost_data_told,
                                      lmz_dirclient_next_id(dc)))
      m->upsert_flight =
          lmz_dirclient_propose(dc, &m->upsert, &cmd, upsert_done) == 0;
  } else if (m->registered && !m->renew_flight &&
             lmz_lease_holder_should_renew(&m->lease, &m->o.lease, now)) {
    m->lease_t_req = lmz_lease_holder_begin(&m->lease, now);
    if (!lmz_dir_encode_lease_renew(&cmd, m->o.node_id,
                                    m->o.lease.duration_ms,
                                    lmz_dirclient_next_id(dc)))
      m->renew_flight =
          lmz_dirclient_propose(dc, &m->renew, &cmd, renew_done) == 0;
    if (!m->renew_flight)
      lmz_lease_holder_failed(&m->lease, m->lease_t_req);
  }
  lmz_buf_free(&cmd);
}

/* ---- the leader's lease watch ---------------------------------------------- */

static void markdown_done(lmz_dirclient_req_t *req, int status,
                          const struct lmz_dir_item *item) {
  lmz_member_t *m = req->data;
  m->markdown_flight = false;
  if (status >= 0 && item)
    LMZ_LOG_WARN(&log_ns, "node %llu marked DOWN: lease expired (last renewal "
                 "heard %llu ms before); %llu durable object(s) failed over "
                 "to their backups", (unsigned long long)item->node_id,
                 (unsigned long long)m->markdown_silent_ms,
                 (unsigned long long)item->epoch);
}

/* The nodes a dead node's actors may be promoted to: UP and renewing
 * currently as this leader hears them (a backup cut off together with its
 * owner must not inherit its actors only to be fenced next). Never empty:
 * the serving leader itself renews. */
static size_t promotion_targets(lmz_member_t *m, uint64_t now, uint64_t *to) {
  size_t k = 0;
  for (size_t i = 0; i < lmz_dir_n_nodes(m->o.dir); i++) {
    const struct lmz_dir_node *n = lmz_dir_node_at(m->o.dir, i);
    if (n->state == LMZ_DIR_UP &&
        (n->id == m->o.node_id ||
         lmz_lease_is_current(n->heard_ms, n->lease_ms, now)))
      to[k++] = n->id;
  }
  return k;
}

/* Leader only: fences the first node whose lease surely expired. A node
 * that never renewed counts from its registration, with the configured L. */
static void lease_watch(lmz_member_t *m, uint64_t now) {
  lmz_dirclient_t *dc = m->o.dc;
  if (m->markdown_flight || m->o.no_auto_mark_down ||
      !dc->o.ops.is_serving(dc->o.ops_ctx))
    return;
  for (size_t i = 0; i < lmz_dir_n_nodes(m->o.dir); i++) {
    const struct lmz_dir_node *n = lmz_dir_node_at(m->o.dir, i);
    uint32_t l = n->lease_ms ? n->lease_ms : m->o.lease.duration_ms;
    if (n->state == LMZ_DIR_DOWN ||
        !lmz_lease_is_surely_expired(n->heard_ms, l, m->o.lease.margin_ms,
                                     now))
      continue;
    uint64_t to[LMZ_DIR_MAX_NODES];
    size_t n_to = promotion_targets(m, now, to);
    m->markdown_silent_ms = now - n->heard_ms;
    lmz_buf b = LMZ_BUF_INIT;
    int rv = lmz_dir_encode_mark_down_to(&b, n->id, n->lease_seq, to, n_to,
                                         lmz_dirclient_next_id(dc));
    if (!rv)
      rv = lmz_dirclient_propose(dc, &m->markdown, &b, markdown_done);
    lmz_buf_free(&b);
    m->markdown_flight = rv == 0;
    return;
  }
}

void lmz_member_tick(lmz_member_t *m, uint64_t now) {
  if (m->closing)
    return;
  holder_step(m, now);
  tell_valid(m, now);
  if (now >= m->next_watch_ms) {
    uint32_t every = m->o.lease.margin_ms / 2 ? m->o.lease.margin_ms / 2 : 1;
    m->next_watch_ms = now + every;
    lease_watch(m, now);
  }
}

int lmz_member_set_state(lmz_member_t *m, lmz_dirclient_req_t *req,
                         enum lmz_dir_node_state state, lmz_dirclient_cb cb) {
  lmz_buf cmd = LMZ_BUF_INIT;
  int rv = lmz_dir_encode_node_upsert(&cmd, m->o.node_id, state,
                                      m->node_address, m->raft_address,
                                      lmz_dirclient_next_id(m->o.dc));
  if (!rv)
    rv = lmz_dirclient_propose(m->o.dc, req, &cmd, cb);
  lmz_buf_free(&cmd);
  return rv;
}

/* ---- membership changes ------------------------------------------------------ */

static void change_done(lmz_raftnode_change_t *req, int status) {
  struct lmz_member_change *op = req->data;
  lmz_member_t *m = op->m;
  m->change = NULL;
  op->cb(m, status, op->arg);
  free(op);
}

int lmz_member_change(lmz_member_t *m, bool add, uint64_t id,
                      const char *raft_address, bool standby,
                      lmz_member_change_cb cb, void *arg) {
  lmz_raftnode_t *rn = m->o.rn;
  if (!rn || !lmz_raftnode_is_serving(rn))
    return LMZ_ENOTLEADER;
  if (m->change)
    return LMZ_EBUSY;
  struct lmz_member_change *op = calloc(1, sizeof *op);
  if (!op)
    return LMZ_ENOMEM;
  *op = (struct lmz_member_change){.m = m, .cb = cb, .arg = arg};
  op->chg.data = op;
  int rv = add ? lmz_raftnode_add(rn, &op->chg, id, raft_address,
                                  standby ? RAFT_STANDBY : RAFT_VOTER,
                                  change_done)
               : lmz_raftnode_remove(rn, &op->chg, id, change_done);
  if (rv) {
    free(op);
    return rv;
  }
  m->change = op;
  return 0;
}
