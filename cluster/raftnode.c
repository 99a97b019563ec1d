/* cluster/raftnode.c - Raft (0.15, raft_uv) around the placement directory
 * (see raftnode.h for the contract).
 *
 * Happy path: lmz_raftnode_claim() queues the claim (key bytes copied into
 * one buffer) and starts an idle handle so the loop does not block in poll.
 * The check hook (after poll, once per iteration) polls raft's role, and on
 * a serving leader turns everything queued into entries: proposals one
 * entry each, claims max_batch per entry with the placement chosen over the
 * live nodes once per flush. raft_apply's callback runs right after the FSM
 * applied the entry (0.15 calls it synchronously from apply), so the FSM's
 * result buffer is still the entry's; each claimer gets its item (checked by
 * request id).
 *
 * Failure modes:
 *  1. Not leader at claim/propose time -> LMZ_ENOTLEADER at once (forward).
 *  2. Leadership lost with requests queued -> they fail LMZ_ENOTLEADER;
 *     entries in flight fail through raft (LEADERSHIPLOST -> ENOTLEADER:
 *     outcome unknown, and claims are idempotent so a retry is safe).
 *  3. No live node to place on -> that claim fails LMZ_EUNAVAILABLE.
 *  4. raft_apply refuses (not leader, out of memory) -> the batch's claimers
 *     get the mapped error; the buffer is freed here (raft owns it only on
 *     success).
 *  5. FSM out of memory -> apply returns RAFT_NOMEM and raft retries the
 *     entry (directory.h DETERMINISM).
 *  6. Close: queued requests fail LMZ_ECANCELED; raft_close runs from the
 *     check hook (never from inside a raft callback), then the I/O memory
 *     and the handles are released; the close callback comes last. */
#include "cluster/raftnode.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.raft");

enum { CHG_ADD = 1, CHG_ASSIGN, CHG_REMOVE };

#define FLUSH_ENTRIES_PER_ITERATION 4

struct pend_claim {
  lmz_raftnode_claim_t *req;
  size_t off; /* binding then instance bytes in pend.keys */
  uint16_t blen, ilen;
  uint8_t policy;
  uint32_t flags;
  uint64_t local;
};

struct lmz_raftnode_pending {
  struct pend_claim *v;
  size_t head, n, cap;
  lmz_buf keys;
  lmz_buf enc;                 /* reused encode buffer */
  struct lmz_dir_claim *claims; /* reused, max_batch */
  uint64_t *backups;            /* reused, max_batch x MAX_BACKUPS */
  uint64_t *live;               /* reused, LMZ_DIR_MAX_NODES */
};

/* One claim entry in flight. */
struct batch {
  struct raft_apply apply;
  lmz_raftnode_t *rn;
  size_t n;
  lmz_raftnode_claim_t *reqs[];
};

int lmz_raftnode_err(int rv) {
  switch (rv) {
  case 0:
    return 0;
  case RAFT_NOMEM:
    return LMZ_ENOMEM;
  case RAFT_NOTLEADER:
  case RAFT_LEADERSHIPLOST:
    return LMZ_ENOTLEADER;
  case RAFT_SHUTDOWN:
  case RAFT_CANCELED:
    return LMZ_ECANCELED;
  case RAFT_CANTBOOTSTRAP:
    return LMZ_EEXIST;
  case RAFT_CANTCHANGE:
  case RAFT_BUSY:
    return LMZ_EBUSY;
  case RAFT_BADID:
  case RAFT_DUPLICATEID:
  case RAFT_DUPLICATEADDRESS:
  case RAFT_BADROLE:
  case RAFT_INVALID:
  case RAFT_NAMETOOLONG:
    return LMZ_EINVAL;
  case RAFT_NOTFOUND:
    return LMZ_ENOTFOUND;
  case RAFT_TOOBIG:
    return LMZ_ETOOBIG;
  default:
    return LMZ_EIO;
  }
}

/* ---- entry format and FSM glue -------------------------------------------- */

/* raft_uv 0.15 sends an AppendEntries payload as the entries' raw bytes but
 * its receiver advances over each entry rounded up to 8 bytes, so an entry
 * whose length is not a multiple of 8 shifts every later entry of the same
 * message (and reads past the buffer). Every entry is therefore
 *   [u32 LE command length][DirCommand bytes][0-7 zero bytes]
 * with a total length that is a multiple of 8. */
#define ENTRY_HDR 4

int lmz_raftnode_entry_encode(const void *cmd, size_t len,
                              struct raft_buffer *out) {
  if (len > LMZ_DIR_MAX_COMMAND)
    return LMZ_EINVAL;
  size_t total = (ENTRY_HDR + len + 7) & ~(size_t)7;
  uint8_t *p = raft_malloc(total);
  if (!p)
    return LMZ_ENOMEM;
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(len >> (8 * i));
  if (len)
    memcpy(p + ENTRY_HDR, cmd, len);
  memset(p + ENTRY_HDR + len, 0, total - ENTRY_HDR - len);
  out->base = p;
  out->len = total;
  return 0;
}

/* The command inside an entry, or false for a malformed entry. */
static bool entry_decode(const struct raft_buffer *buf, const uint8_t **cmd,
                         size_t *len) {
  const uint8_t *p = buf->base;
  if (buf->len < ENTRY_HDR || !p)
    return false;
  size_t n = (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
             (size_t)p[3] << 24;
  if (n > buf->len - ENTRY_HDR || buf->len - ENTRY_HDR - n >= 8)
    return false;
  *cmd = p + ENTRY_HDR;
  *len = n;
  return true;
}

static const struct lmz_dir_result bad_entry = {.status = LMZ_EBADMSG};

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf,
                     void **result) {
  const struct lmz_dir_result *r = &bad_entry;
  const uint8_t *cmd;
  size_t len;
  int rv = LMZ_EBADMSG;
  if (entry_decode(buf, &cmd, &len))
    rv = lmz_dir_apply(fsm->data, cmd, len, &r);
  if (rv == LMZ_ENOMEM)
    return RAFT_NOMEM; /* raft retries the entry; re-applying converges */
  if (rv)
    LMZ_LOG_WARN(&log_ns, "directory entry refused: %s", lmz_err_name(rv));
  *result = (void *)(uintptr_t)r;
  return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[],
                        unsigned *n_bufs) {
  struct raft_buffer *b = raft_malloc(sizeof *b);
  if (!b)
    return RAFT_NOMEM;
  if (lmz_dir_snapshot(fsm->data, raft_malloc, &b->base, &b->len)) {
    raft_free(b);
    return RAFT_NOMEM;
  }
  *bufs = b;
  *n_bufs = 1;
  return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf) {
  int rv = lmz_dir_restore(fsm->data, buf->base, buf->len);
  if (rv) {
    LMZ_LOG_ERROR(&log_ns, "snapshot refused: %s", lmz_err_name(rv));
    return rv == LMZ_ENOMEM ? RAFT_NOMEM : RAFT_CORRUPT; /* raft frees buf */
  }
  raft_free(buf->base); /* success: ours to free (guide 2.2) */
  return 0;
}

void lmz_raftnode_fsm_init(struct raft_fsm *fsm, lmz_dir_t *dir) {
  *fsm = (struct raft_fsm){.version = 2,
                           .data = dir,
                           .apply = fsm_apply,
                           .snapshot = fsm_snapshot,
                           .restore = fsm_restore,
                           .snapshot_finalize = NULL};
}

/* ---- helpers -------------------------------------------------------------- */

static uint64_t hrtime_ms(void *ctx) {
  (void)ctx;
  return uv_hrtime() / 1000000u;
}

static uint64_t now_ms(const lmz_raftnode_t *rn) {
  return rn->opts.now_ms(rn->opts.clock_ctx);
}

static bool has_work(const lmz_raftnode_t *rn) {
  return rn->pend->head < rn->pend->n || rn->props_head ||
         (rn->chg_head && !rn->chg_inflight);
}

static void idle_noop(uv_idle_t *h) { (void)h; }

/* Keeps poll from blocking while work is queued for the check hook. */
static void kick(lmz_raftnode_t *rn) {
  uv_idle_start(&rn->idle, idle_noop);
}

static void pend_reset(struct lmz_raftnode_pending *p) {
  p->head = p->n = 0;
  lmz_buf_reset(&p->keys);
}

/* Fails every queued (not yet proposed) request with err. Each request is
 * unlinked before its callback, which may queue new ones (they fail too if
 * we are closing, and are kept otherwise). */
static void fail_queued(lmz_raftnode_t *rn, int err) {
  struct lmz_raftnode_pending *p = rn->pend;
  size_t end = p->n;
  while (p->head < end) {
    lmz_raftnode_claim_t *req = p->v[p->head++].req;
    req->cb(req, err, NULL);
  }
  if (p->head == p->n)
    pend_reset(p);
  while (rn->props_head) {
    lmz_raftnode_propose_t *req = rn->props_head;
    rn->props_head = req->next;
    if (!rn->props_head)
      rn->props_tail = NULL;
    raft_free(req->buf.base);
    req->cb(req, err, NULL);
  }
  /* the change in flight (the head) completes through raft */
  lmz_raftnode_change_t *list;
  if (rn->chg_inflight) {
    list = rn->chg_head->next;
    rn->chg_head->next = NULL;
    rn->chg_tail = rn->chg_head;
  } else {
    list = rn->chg_head;
    rn->chg_head = rn->chg_tail = NULL;
  }
  while (list) {
    lmz_raftnode_change_t *req = list;
    list = req->next;
    req->cb(req, err);
  }
}

/* ---- claims --------------------------------------------------------------- */

static void batch_fail(struct batch *b, size_t from, int err) {
  for (size_t i = from; i < b->n; i++)
    b->reqs[i]->cb(b->reqs[i], err, NULL);
}

static void batch_cb(struct raft_apply *req, int status, void *result) {
  struct batch *b = lmz_container_of(req, struct batch, apply);
  lmz_raftnode_t *rn = b->rn;
  rn->inflight--;
  const struct lmz_dir_result *r = result;
  if (status != 0 || !r || r->status != 0) {
    batch_fail(b, 0, status ? lmz_raftnode_err(status)
                            : (r ? r->status : LMZ_EIO));
  } else {
    /* The result must be this entry's: raft 0.15 calls us right after the
     * FSM applied it (checked, because a raft that queued callbacks would
     * hand us a later entry's result). */
    LMZ_ASSERT(r->cmd == LMZ_DIR_CMD_CLAIMS && r->n == b->n);
    rn->n_claims += b->n;
    rn->n_entries++;
    for (size_t i = 0; i < b->n; i++) {
      struct lmz_dir_item it = r->items[i];
      LMZ_ASSERT(it.request_id == b->reqs[i]->request_id);
      b->reqs[i]->cb(b->reqs[i], it.status, &it);
    }
  }
  free(b);
  if (has_work(rn) && !rn->closing)
    kick(rn);
}

/* Chooses owners for `take` queued claims starting at head and fills
 * p->claims and b->reqs. n_live > 0, so every choice succeeds (LOCAL falls
 * back to HASH; policies were checked at claim time). With a replication
 * factor R > 1, a durable actor's claim also names its backups: the next
 * min(R-1, n_live-1) nodes of the owner's ranking (placement.h); stateless
 * ones (REPLACE_DOWN) get none. A durable claim with no backups starts
 * unactivated when another candidate exists (directory.h ACTIVATION). */
static void batch_fill(lmz_raftnode_t *rn, struct batch *b, size_t take,
                       size_t n_live) {
  struct lmz_raftnode_pending *p = rn->pend;
  for (size_t i = 0; i < take; i++) {
    struct pend_claim *pc = &p->v[p->head + i];
    const uint8_t *key = p->keys.data + pc->off;
    uint64_t node = 0;
    int rv = lmz_placement_choose(pc->policy, p->live, n_live, pc->local, key,
                                  pc->blen, key + pc->blen, pc->ilen, &node);
    LMZ_ASSERT(rv == 0);
    uint64_t *bk = &p->backups[i * LMZ_DIR_MAX_BACKUPS];
    size_t want = rn->opts.replication_factor > 1
                      ? rn->opts.replication_factor - 1 : 0;
    if (pc->flags & LMZ_DIR_CLAIM_REPLACE_DOWN)
      want = 0;
    size_t nb = lmz_placement_rank(p->live, n_live, node, key, pc->blen,
                                   key + pc->blen, pc->ilen, bk, want);
    p->claims[i] = (struct lmz_dir_claim){key,  pc->blen, key + pc->blen,
                                          pc->ilen, node, pc->req->request_id,
                                          pc->flags, (uint32_t)nb, bk};
    /* a durable actor with no copy elsewhere starts not activated, so the
     * leader may re-place it while it holds nothing should its owner fall
     * silent (directory.h ACTIVATION); not when no other node could take
     * it (one node: --dev pays no activation mark) */
    if (nb == 0 && n_live > 1 && !(pc->flags & LMZ_DIR_CLAIM_REPLACE_DOWN))
      p->claims[i].flags |= LMZ_DIR_CLAIM_UNACTIVATED;
    b->reqs[i] = pc->req;
  }
  b->n = take;
}

/* Encodes and proposes b's claims. On failure the claimers get the error. */
static void batch_propose(lmz_raftnode_t *rn, struct batch *b) {
  struct lmz_raftnode_pending *p = rn->pend;
  lmz_buf_reset(&p->enc);
  int rv = lmz_dir_encode_claims(&p->enc, p->claims, b->n);
  struct raft_buffer buf = {NULL, 0};
  if (!rv)
    rv = lmz_raftnode_entry_encode(p->enc.data, p->enc.len, &buf);
  if (!rv) {
    int r = raft_apply(&rn->raft, &b->apply, &buf, 1, batch_cb);
    if (r) {
      raft_free(buf.base);
      rv = lmz_raftnode_err(r);
    }
  }
  if (rv) {
    batch_fail(b, 0, rv);
    free(b);
    return;
  }
  rn->inflight++;
}

/* Fails every queued claim: nobody to place them on. */
static void fail_unplaceable(lmz_raftnode_t *rn) {
  struct lmz_raftnode_pending *p = rn->pend;
  size_t end = p->n;
  while (p->head < end && !rn->closing) {
    lmz_raftnode_claim_t *req = p->v[p->head++].req;
    req->cb(req, LMZ_EUNAVAILABLE, NULL);
  }
}

static void flush_claims(lmz_raftnode_t *rn) {
  struct lmz_raftnode_pending *p = rn->pend;
  if (p->head == p->n || !rn->serving || rn->closing)
    return;
  /* once per flush: the nodes the leader currently hears from */
  size_t n_live =
      rn->opts.candidates
          ? rn->opts.candidates(rn->opts.candidates_ctx, now_ms(rn), p->live,
                                LMZ_DIR_MAX_NODES)
          : lmz_dir_live_nodes(rn->dir, now_ms(rn), p->live, LMZ_DIR_MAX_NODES);
  if (n_live > LMZ_DIR_MAX_NODES)
    n_live = LMZ_DIR_MAX_NODES;
  if (n_live == 0) {
    /* no live node (yet): fail what is queued; callbacks may queue new
     * claims, which wait for the next flush rather than loop here */
    fail_unplaceable(rn);
    return;
  }
  /* A few entries per iteration at most: encoding thousands of claims
   * takes a while, and the loop must get back to raft's heartbeats. */
  unsigned budget = FLUSH_ENTRIES_PER_ITERATION;
  while (p->head < p->n && rn->inflight < rn->opts.max_inflight &&
         budget-- > 0 && rn->serving && !rn->closing) {
    size_t take = p->n - p->head;
    if (take > rn->opts.max_batch)
      take = rn->opts.max_batch;
    struct batch *b = malloc(sizeof *b + take * sizeof b->reqs[0]);
    if (!b)
      return; /* try again next iteration */
    b->rn = rn;
    b->apply.data = b;
    batch_fill(rn, b, take, n_live);
    p->head += take;
    batch_propose(rn, b);
  }
  if (p->head == p->n)
    pend_reset(p);
}

static int pend_push(struct lmz_raftnode_pending *p, const struct pend_claim *pc,
                     const void *b, const void *i) {
  if (p->n == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 256;
    struct pend_claim *nv = realloc(p->v, ncap * sizeof *nv);
    if (!nv)
      return LMZ_ENOMEM;
    p->v = nv;
    p->cap = ncap;
  }
  size_t off = p->keys.len;
  if (lmz_buf_append(&p->keys, b, pc->blen) ||
      (pc->ilen && lmz_buf_append(&p->keys, i, pc->ilen))) {
    p->keys.len = off;
    return LMZ_ENOMEM;
  }
  p->v[p->n] = *pc;
  p->v[p->n].off = off;
  p->n++;
  return 0;
}

int lmz_raftnode_claim(lmz_raftnode_t *rn, lmz_raftnode_claim_t *req,
                       const void *binding, size_t blen, const void *instance,
                       size_t ilen, enum lmz_placement_policy policy,
                       uint64_t local_node, uint32_t flags,
                       lmz_raftnode_claim_cb cb) {
  if (rn->closing)
    return LMZ_ECANCELED;
  if (!req || !cb || !binding || blen == 0 || blen > LMZ_DIR_BINDING_MAX ||
      ilen > LMZ_DIR_INSTANCE_MAX || (ilen && !instance) ||
      (policy != LMZ_PLACEMENT_HASH && policy != LMZ_PLACEMENT_LOCAL) ||
      (flags & ~LMZ_DIR_CLAIM_REPLACE_DOWN))
    return LMZ_EINVAL;
  if (raft_state(&rn->raft) != RAFT_LEADER)
    return LMZ_ENOTLEADER;
  struct pend_claim pc = {req, 0, (uint16_t)blen, (uint16_t)ilen,
                          (uint8_t)policy, flags, local_node};
  req->cb = cb;
  req->request_id = ++rn->next_request_id;
  int rv = pend_push(rn->pend, &pc, binding, instance);
  if (rv)
    return rv;
  kick(rn);
  return 0;
}

/* ---- proposals ------------------------------------------------------------ */

static void prop_cb(struct raft_apply *a, int status, void *result) {
  lmz_raftnode_propose_t *req = a->data;
  const struct lmz_dir_result *r = result;
  req->buf.base = NULL; /* raft owned and freed it */
  if (status != 0 || !r)
    req->cb(req, status ? lmz_raftnode_err(status) : LMZ_EIO, NULL);
  else
    req->cb(req, r->status, r);
}

static void flush_props(lmz_raftnode_t *rn) {
  while (rn->props_head && rn->serving && !rn->closing) {
    lmz_raftnode_propose_t *req = rn->props_head;
    rn->props_head = req->next;
    if (!rn->props_head)
      rn->props_tail = NULL;
    req->apply.data = req;
    int rv = raft_apply(&rn->raft, &req->apply, &req->buf, 1, prop_cb);
    if (rv) {
      raft_free(req->buf.base);
      req->buf.base = NULL;
      req->cb(req, lmz_raftnode_err(rv), NULL);
    }
  }
}

static int propose_queue(lmz_raftnode_t *rn, lmz_raftnode_propose_t *req,
                         const void *cmd, size_t len,
                         lmz_raftnode_propose_cb cb) {
  int rv = lmz_raftnode_entry_encode(cmd, len, &req->buf);
  if (rv)
    return rv;
  req->cb = cb;
  req->rn = rn;
  req->next = NULL;
  if (rn->props_tail)
    rn->props_tail->next = req;
  else
    rn->props_head = req;
  rn->props_tail = req;
  kick(rn);
  return 0;
}

int lmz_raftnode_propose(lmz_raftnode_t *rn, lmz_raftnode_propose_t *req,
                         const void *cmd, size_t len,
                         lmz_raftnode_propose_cb cb) {
  if (rn->closing)
    return LMZ_ECANCELED;
  if (!req || !cb || !cmd || len == 0 || len > LMZ_DIR_MAX_COMMAND)
    return LMZ_EINVAL;
  if (raft_state(&rn->raft) != RAFT_LEADER)
    return LMZ_ENOTLEADER;
  return propose_queue(rn, req, cmd, len, cb);
}

/* ---- membership ----------------------------------------------------------- */

static void chg_done(lmz_raftnode_t *rn, int err) {
  lmz_raftnode_change_t *req = rn->chg_head;
  rn->chg_head = req->next;
  if (!rn->chg_head)
    rn->chg_tail = NULL;
  rn->chg_inflight = false;
  req->cb(req, err);
  if (has_work(rn) && !rn->closing)
    kick(rn);
}

static void chg_final_cb(struct raft_change *c, int status) {
  lmz_raftnode_change_t *req = c->data;
  chg_done(req->rn, lmz_raftnode_err(status));
}

static void chg_added_cb(struct raft_change *c, int status) {
  lmz_raftnode_change_t *req = c->data;
  lmz_raftnode_t *rn = req->rn;
  if (status != 0 || req->role == RAFT_SPARE || rn->closing) {
    chg_done(rn, status ? lmz_raftnode_err(status) : 0);
    return;
  }
  /* raft_assign catches the new node up (snapshot + log) before it counts */
  int rv = raft_assign(&rn->raft, &req->change, req->id, req->role,
                       chg_final_cb);
  if (rv)
    chg_done(rn, lmz_raftnode_err(rv));
}

static void run_change(lmz_raftnode_t *rn) {
  if (!rn->chg_head || rn->chg_inflight || !rn->serving || rn->closing)
    return;
  lmz_raftnode_change_t *req = rn->chg_head;
  req->change.data = req;
  int rv;
  switch (req->kind) {
  case CHG_ADD:
    rv = raft_add(&rn->raft, &req->change, req->id, req->address,
                  chg_added_cb);
    break;
  case CHG_ASSIGN:
    rv = raft_assign(&rn->raft, &req->change, req->id, req->role,
                     chg_final_cb);
    break;
  default:
    rv = raft_remove(&rn->raft, &req->change, req->id, chg_final_cb);
    break;
  }
  rn->chg_inflight = true;
  if (rv)
    chg_done(rn, lmz_raftnode_err(rv));
}

static int change_queue(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                        int kind, uint64_t id, const char *address, int role,
                        lmz_raftnode_change_cb cb) {
  if (rn->closing)
    return LMZ_ECANCELED;
  if (!req || !cb || id == 0)
    return LMZ_EINVAL;
  if (kind != CHG_REMOVE && role != RAFT_VOTER && role != RAFT_STANDBY &&
      role != RAFT_SPARE)
    return LMZ_EINVAL;
  size_t al = address ? strlen(address) : 0;
  if ((kind == CHG_ADD && al == 0) || al > LMZ_DIR_ADDRESS_MAX)
    return LMZ_EINVAL;
  if (raft_state(&rn->raft) != RAFT_LEADER)
    return LMZ_ENOTLEADER;
  req->cb = cb;
  req->rn = rn;
  req->kind = kind;
  req->id = id;
  req->role = role;
  memcpy(req->address, address ? address : "", al + 1);
  req->next = NULL;
  if (rn->chg_tail)
    rn->chg_tail->next = req;
  else
    rn->chg_head = req;
  rn->chg_tail = req;
  kick(rn);
  return 0;
}

int lmz_raftnode_add(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                     uint64_t id, const char *address, int role,
                     lmz_raftnode_change_cb cb) {
  return change_queue(rn, req, CHG_ADD, id, address, role, cb);
}

int lmz_raftnode_assign(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                        uint64_t id, int role, lmz_raftnode_change_cb cb) {
  return change_queue(rn, req, CHG_ASSIGN, id, NULL, role, cb);
}

int lmz_raftnode_remove(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                        uint64_t id, lmz_raftnode_change_cb cb) {
  return change_queue(rn, req, CHG_REMOVE, id, NULL, RAFT_VOTER, cb);
}

/* ---- leadership polling and the barrier ----------------------------------- */

static void notify_role(lmz_raftnode_t *rn) {
  if (rn->opts.on_role)
    rn->opts.on_role(rn, rn->role, rn->serving, rn->leader_id);
}

static void barrier_cb(struct raft_barrier *req, int status) {
  lmz_raftnode_t *rn = req->data;
  rn->barrier_pending = false;
  if (status != 0 || rn->closing || raft_state(&rn->raft) != RAFT_LEADER ||
      rn->raft.current_term != rn->lead_term)
    return; /* the next poll decides again */
  rn->serving = true;
  LMZ_LOG_INFO(&log_ns, "node %llu leads term %llu; serving",
               (unsigned long long)rn->opts.id,
               (unsigned long long)rn->lead_term);
  notify_role(rn);
  kick(rn);
}

/* 0.15 has no state callback: called once per loop iteration. */
static void poll_role(lmz_raftnode_t *rn) {
  int st = raft_state(&rn->raft);
  raft_id lid = 0;
  const char *laddr = NULL;
  raft_leader(&rn->raft, &lid, &laddr);
  bool changed = st != rn->role || lid != rn->leader_id;
  rn->role = st;
  rn->leader_id = lid;
  if (st == RAFT_LEADER) {
    if (rn->lead_term != rn->raft.current_term) {
      rn->lead_term = rn->raft.current_term;
      rn->serving = false;
    }
    if (!rn->serving && !rn->barrier_pending) {
      rn->barrier.data = rn;
      if (raft_barrier(&rn->raft, &rn->barrier, barrier_cb) == 0)
        rn->barrier_pending = true;
    }
  } else if (rn->lead_term) {
    rn->lead_term = 0;
    rn->serving = false;
    changed = true;
    fail_queued(rn, LMZ_ENOTLEADER);
  }
  if (changed)
    notify_role(rn);
}

/* ---- the check hook and close ---------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  lmz_raftnode_t *rn = h->data;
  if (--rn->handles_open > 0)
    return;
  struct lmz_raftnode_pending *p = rn->pend;
  free(p->v);
  lmz_buf_free(&p->keys);
  lmz_buf_free(&p->enc);
  free(p->claims);
  free(p->backups);
  free(p->live);
  free(p);
  rn->pend = NULL;
  lmz_dir_close(rn->dir);
  rn->dir = NULL;
  if (rn->close_cb)
    rn->close_cb(rn);
}

static void transport_release(lmz_raftnode_t *rn) {
  if (rn->opts.custom_transport)
    rn->opts.transport_free(rn->opts.custom_transport);
  else
    raft_uv_tcp_close(&rn->transport);
}

static void raft_closed(struct raft *r) {
  lmz_raftnode_t *rn = r->data;
  raft_uv_close(&rn->io);
  transport_release(rn);
  uv_close((uv_handle_t *)&rn->check, handle_closed);
  uv_close((uv_handle_t *)&rn->idle, handle_closed);
}

/* raft 0.15 cancels the appends in flight inside raft_close, and their
 * callbacks release log entries already released: a NULL read in libraft
 * (seen under ASan as lmzd shut down). So close once every entry is on disk,
 * waiting at most CLOSE_WAIT_MS (a follower may keep receiving entries). */
#define CLOSE_WAIT_MS 1000

static bool appends_pending(lmz_raftnode_t *rn) {
  return rn->started && rn->raft.last_stored < raft_last_index(&rn->raft) &&
         uv_now(rn->check.loop) < rn->close_by;
}

static void on_check(uv_check_t *h) {
  lmz_raftnode_t *rn = h->data;
  if (rn->closing && appends_pending(rn))
    return; /* the idle handle keeps us turning: check again */
  if (rn->closing) {
    uv_check_stop(&rn->check);
    uv_idle_stop(&rn->idle);
    rn->serving = false;
    raft_close(&rn->raft, raft_closed);
    return;
  }
  poll_role(rn);
  flush_props(rn);
  flush_claims(rn);
  run_change(rn);
  if (rn->closing) {
    kick(rn); /* a callback closed us: finish next iteration */
    return;
  }
  if (!rn->serving || !has_work(rn) ||
      rn->inflight >= rn->opts.max_inflight)
    uv_idle_stop(&rn->idle);
}

void lmz_raftnode_close(lmz_raftnode_t *rn, lmz_raftnode_close_cb cb) {
  if (rn->closing)
    return;
  rn->closing = true;
  rn->close_cb = cb;
  rn->close_by = uv_now(rn->check.loop) + CLOSE_WAIT_MS;
  fail_queued(rn, LMZ_ECANCELED);
  kick(rn); /* raft_close runs from the check hook */
}

/* ---- init / bootstrap / start ---------------------------------------------- */

static int opts_defaults(struct lmz_raftnode_options *o, char *errmsg) {
  if (!o->election_timeout_ms)
    o->election_timeout_ms = 200;
  if (!o->heartbeat_timeout_ms)
    o->heartbeat_timeout_ms = 20;
  if (!o->snapshot_threshold)
    o->snapshot_threshold = 8192;
  if (!o->snapshot_trailing)
    o->snapshot_trailing = o->snapshot_threshold / 8 ? o->snapshot_threshold / 8 : 1;
  if (!o->connect_retry_ms)
    o->connect_retry_ms = 200;
  if (!o->max_batch || o->max_batch > LMZ_DIR_MAX_BATCH)
    o->max_batch = 4096;
  if (o->replication_factor > LMZ_DIR_MAX_BACKUPS + 1)
    o->replication_factor = LMZ_DIR_MAX_BACKUPS + 1;
  if (!o->max_inflight)
    o->max_inflight = 32;
  if (!o->now_ms)
    o->now_ms = hrtime_ms;
  if (!o->lease.duration_ms)
    o->lease = (struct lmz_lease_config){LMZ_LEASE_DEFAULT_MS,
                                         LMZ_LEASE_DEFAULT_MARGIN_MS};
  if (o->id == 0 || !o->address || !o->data_dir ||
      strlen(o->address) > LMZ_DIR_ADDRESS_MAX ||
      o->heartbeat_timeout_ms >= o->election_timeout_ms ||
      lmz_lease_config_check(&o->lease)) {
    lmz__errmsg_printf(errmsg, "raftnode: invalid options");
    return LMZ_EINVAL;
  }
  return 0;
}

static int pend_new(lmz_raftnode_t *rn) {
  struct lmz_raftnode_pending *p = calloc(1, sizeof *p);
  if (!p)
    return LMZ_ENOMEM;
  p->claims = malloc(rn->opts.max_batch * sizeof *p->claims);
  p->backups = malloc(rn->opts.max_batch * LMZ_DIR_MAX_BACKUPS *
                      sizeof *p->backups);
  p->live = malloc(LMZ_DIR_MAX_NODES * sizeof *p->live);
  rn->pend = p;
  if (!p->claims || !p->backups || !p->live)
    return LMZ_ENOMEM;
  return 0;
}

static void init_undo(lmz_raftnode_t *rn) {
  if (rn->pend) {
    free(rn->pend->claims);
    free(rn->pend->backups);
    free(rn->pend->live);
    free(rn->pend);
    rn->pend = NULL;
  }
  lmz_dir_close(rn->dir);
  rn->dir = NULL;
}

/* raft_uv + transport + raft_init, in the order the guide requires. */
static int init_raft(lmz_raftnode_t *rn, uv_loop_t *loop, const char *bind,
                     const char *dir) {
  struct raft_uv_transport *tr = rn->opts.custom_transport;
  int rv = tr ? 0 : raft_uv_tcp_init(&rn->transport, loop);
  if (rv) {
    lmz__errmsg_printf(rn->errmsg, "raft_uv_tcp_init: %s", raft_strerror(rv));
    return lmz_raftnode_err(rv);
  }
  if (!tr)
    tr = &rn->transport;
  if (bind && !rn->opts.custom_transport &&
      (rv = raft_uv_tcp_set_bind_address(&rn->transport, bind))) {
    lmz__errmsg_printf(rn->errmsg, "bind address %s: %s", bind,
                       raft_strerror(rv));
    raft_uv_tcp_close(&rn->transport);
    return LMZ_EINVAL;
  }
  if ((rv = raft_uv_init(&rn->io, loop, dir, tr))) {
    lmz__errmsg_printf(rn->errmsg, "raft_uv_init %s: %s", dir,
                       rv == RAFT_NOTFOUND ? "directory does not exist"
                                           : raft_strerror(rv));
    if (!rn->opts.custom_transport)
      raft_uv_tcp_close(&rn->transport);
    return lmz_raftnode_err(rv);
  }
  raft_uv_set_connect_retry_delay(&rn->io, rn->opts.connect_retry_ms);
  lmz_raftnode_fsm_init(&rn->fsm, rn->dir);
  if ((rv = raft_init(&rn->raft, &rn->io, &rn->fsm, rn->opts.id,
                      rn->address))) {
    lmz__errmsg_printf(rn->errmsg, "raft_init: %s", raft_errmsg(&rn->raft));
    raft_uv_close(&rn->io);
    if (!rn->opts.custom_transport)
      raft_uv_tcp_close(&rn->transport);
    return lmz_raftnode_err(rv);
  }
  return 0;
}

static void init_settings(lmz_raftnode_t *rn) {
  struct raft *r = &rn->raft;
  r->data = rn; /* raft_init leaves raft.data alone; io.data is raft's */
  /* setters go after raft_init, which resets them */
  raft_set_election_timeout(r, rn->opts.election_timeout_ms);
  raft_set_heartbeat_timeout(r, rn->opts.heartbeat_timeout_ms);
  raft_set_snapshot_threshold(r, rn->opts.snapshot_threshold);
  raft_set_snapshot_trailing(r, rn->opts.snapshot_trailing);
  raft_set_pre_vote(r, true);
}

static void init_handles(lmz_raftnode_t *rn, uv_loop_t *loop) {
  uv_check_init(loop, &rn->check);
  uv_idle_init(loop, &rn->idle);
  rn->check.data = rn->idle.data = rn;
  rn->handles_open = 2;
  uv_check_start(&rn->check, on_check);
}

int lmz_raftnode_init(uv_loop_t *loop, lmz_raftnode_t *rn,
                      const struct lmz_raftnode_options *opts) {
  void *data = rn->data;
  memset(rn, 0, sizeof *rn);
  rn->data = data;
  rn->loop = loop;
  rn->opts = *opts;
  int rv = opts_defaults(&rn->opts, rn->errmsg);
  if (rv)
    return rv;
  memcpy(rn->address, opts->address, strlen(opts->address) + 1);
  const char *bind = opts->bind_address, *dir = opts->data_dir;
  rn->opts.address = rn->opts.bind_address = rn->opts.data_dir = NULL;
  if ((rv = lmz_dir_init(&rn->dir_mem)) == 0)
    rn->dir = &rn->dir_mem;
  if (rv || (rv = pend_new(rn))) {
    lmz__errmsg_printf(rn->errmsg, "raftnode: out of memory");
    init_undo(rn);
    return rv;
  }
  lmz_dir_set_clock(rn->dir, rn->opts.now_ms, rn->opts.clock_ctx);
  if ((rv = init_raft(rn, loop, bind, dir))) {
    init_undo(rn);
    return rv;
  }
  init_settings(rn);
  init_handles(rn, loop);
  return 0;
}

int lmz_raftnode_bootstrap(lmz_raftnode_t *rn,
                           const struct lmz_raftnode_server *servers,
                           size_t n) {
  struct raft_configuration conf;
  raft_configuration_init(&conf);
  int rv = 0;
  for (size_t i = 0; i < n && !rv; i++)
    rv = raft_configuration_add(&conf, servers[i].id, servers[i].address,
                                servers[i].role);
  if (!rv)
    rv = raft_bootstrap(&rn->raft, &conf);
  raft_configuration_close(&conf);
  if (rv && rv != RAFT_CANTBOOTSTRAP)
    lmz__errmsg_printf(rn->errmsg, "raft_bootstrap: %s",
                       raft_errmsg(&rn->raft));
  return lmz_raftnode_err(rv);
}

int lmz_raftnode_start(lmz_raftnode_t *rn) {
  int rv = raft_start(&rn->raft);
  if (rv) {
    lmz__errmsg_printf(rn->errmsg, "raft_start: %s", raft_errmsg(&rn->raft));
    return lmz_raftnode_err(rv);
  }
  rn->started = true;
  return 0;
}

bool lmz_raftnode_is_serving(const lmz_raftnode_t *rn) {
  /* `serving` is refreshed once per iteration; raft may have stepped down
   * since, so ask it too. */
  return rn->serving && !rn->closing &&
         raft_state((struct raft *)(uintptr_t)&rn->raft) == RAFT_LEADER;
}

uint64_t lmz_raftnode_leader(lmz_raftnode_t *rn, const char **address) {
  raft_id id = 0;
  const char *a = NULL;
  raft_leader(&rn->raft, &id, &a);
  if (address)
    *address = a;
  return id;
}
