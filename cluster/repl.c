/* cluster/repl.c - replication streams, owner side: records, gate tokens,
 * flush, lag checks and PAIR_OUT (DESIGN.md 4.1, cluster/repl.h).
 *
 * Happy path: lmz_repl_ship() serializes the turn's batch (only the keys of
 * the actor's range: node-level keys such as the alarm index stay local),
 * gives it a gate token waiting for every listed backup, and queues one
 * record (sharing the bytes) on each backup's and each filling node's
 * stream. lmz_repl_flush() sends the queued records of each stream as
 * ReplAppend frames. A ReplAck frees the records up to its sequence and
 * marks their tokens' waits; acked_through moves over every token whose
 * waits are all done, in token order.
 *
 * Failure modes:
 *  1. ops.send says LMZ_EOVERLOAD: the records stay unsent; the next flush
 *     retries. Any other send error closes the stream (as a link down).
 *  2. The oldest unacknowledged record is older than max_lag_ms, or the
 *     unacknowledged bytes exceed max_lag_bytes, the link goes down, the
 *     backup refuses (negative ReplAck) or acknowledges what was never sent:
 *     the stream is CLOSED. Its records are dropped; PAIR_OUT(self, node)
 *     is proposed, again on every tick until committed (a minority owner
 *     never gets it committed). The tokens that waited for the node stay
 *     waiting until the directory no longer lists it for their actor
 *     (checked on every directory change): the gate never opens without a
 *     listed backup's acknowledgement.
 *  3. A ship to a listed backup whose stream is CLOSED queues nothing but
 *     still waits (resolved by the PAIR_OUT). One to a backup listed again
 *     after its PAIR_OUT (stream IDLE) opens a new generation at seq 1.
 *  4. Acks for another generation, or for a closed stream, are ignored.
 *  5. Out of memory in ship: LMZ_ENOMEM, nothing queued (the turn fails).
 *  6. The replicator is freed while proposals or store commits are pending:
 *     their callbacks find r == NULL (disarmed) and only free their state.
 *
 * A token of an actor this node no longer owns at the epoch it was shipped
 * with (a failover or move behind its back), with a wait no acknowledgement
 * satisfied, is LOST (repl.h LOST TOKENS): acked_through moves past it, and
 * lmz_repl_token_state() reports it lost until the gate asked. */
#include "cluster/repl_int.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

lmz_log_ns lmz__repl_log = LMZ_LOG_NS("lmz.cluster.repl");

/* ---- small helpers ------------------------------------------------------- */

static uint64_t now_ms(const lmz_repl_t *r) {
  return r->o.ops.now_ms(r->o.ops.ctx);
}

void lmz__repl_data_unref(struct rdata *d) {
  if (d && --d->refs == 0)
    free(d);
}

struct rrec *lmz__repl_rec_new(const char *name, size_t blen, size_t ilen,
                               uint32_t kind, uint64_t epoch,
                               struct rdata *data) {
  struct rrec *rec = calloc(1, sizeof *rec + blen + ilen);
  if (!rec)
    return NULL;
  memcpy(rec->name, name, blen + ilen);
  rec->blen = blen;
  rec->ilen = ilen;
  rec->kind = kind;
  rec->epoch = epoch;
  rec->ready = true;
  rec->data = data;
  if (data)
    data->refs++;
  return rec;
}

void lmz__repl_rec_free(struct rrec *rec) {
  if (!rec)
    return;
  lmz__repl_data_unref(rec->data);
  free(rec);
}

size_t lmz__repl_rec_bytes(const struct rrec *rec) {
  return (rec->data ? rec->data->len : 0) + rec->blen + rec->ilen + 32;
}

struct rpending *lmz__repl_pending_new(lmz_repl_t *r, enum pkind kind) {
  struct rpending *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->r = r;
  p->kind = kind;
  p->next = r->pending.next;
  p->prev = &r->pending;
  r->pending.next->prev = p;
  r->pending.next = p;
  return p;
}

void lmz__repl_pending_done(struct rpending *p) {
  if (p->r) {
    p->prev->next = p->next;
    p->next->prev = p->prev;
  }
  free(p);
}

/* ---- lifecycle ----------------------------------------------------------- */

static bool options_ok(const struct lmz_repl_options *o) {
  return o && o->node_id && o->dir && o->store && o->ops.now_ms &&
         o->ops.send && o->ops.propose && o->factor >= 1 &&
         o->factor <= LMZ_DIR_MAX_BACKUPS + 1;
}

int lmz_repl_new(lmz_repl_t **out, const struct lmz_repl_options *o) {
  if (!out || !options_ok(o))
    return LMZ_EINVAL;
  lmz_repl_t *r = calloc(1, sizeof *r);
  if (!r)
    return LMZ_ENOMEM;
  r->o = *o;
  r->fresh_since = UINT64_MAX; /* no FRESH drops until told */
  r->max_lag_ms = o->max_lag_ms ? o->max_lag_ms : LMZ_REPL_DEFAULT_MAX_LAG_MS;
  r->max_lag_bytes =
      o->max_lag_bytes ? o->max_lag_bytes : LMZ_REPL_DEFAULT_MAX_LAG_BYTES;
  r->retention_bytes = o->retention_bytes ? o->retention_bytes
                                          : LMZ_REPL_DEFAULT_RETENTION_BYTES;
  r->first_token = r->next_token = 1;
  r->next_fill_id = 1;
  r->pending.next = r->pending.prev = &r->pending;
  lmz_hmap_init(&r->fill_by_actor);
  lmz_hmap_init(&r->imports);
  lmz_buf_init(&r->scratch);
  r->refill_dirty = true;
  *out = r;
  return 0;
}

void lmz__repl_out_free_records(struct ostream *s) {
  while (s->head) {
    struct rrec *rec = s->head;
    s->head = rec->next;
    lmz__repl_rec_free(rec);
  }
  s->tail = s->unsent = NULL;
  s->n_unacked = s->unacked_bytes = 0;
}

void lmz_repl_free(lmz_repl_t *r) {
  if (!r)
    return;
  for (struct rpending *p = r->pending.next; p != &r->pending;) {
    struct rpending *next = p->next;
    p->r = NULL; /* disarmed: the callback only frees it */
    p = next;
  }
  for (size_t i = 0; i < r->n_out; i++) {
    lmz__repl_resume_clear(r->out[i]);
    lmz__repl_out_free_records(r->out[i]);
    free(r->out[i]);
  }
  free(r->out);
  for (size_t i = 0; i < r->tok_n; i++)
    free(r->tok[(r->tok_head + i) % r->tok_cap]);
  free(r->tok);
  free(r->lost);
  lmz__repl_fills_free(r);
  lmz__repl_in_free(r);
  lmz_buf_free(&r->scratch);
  free(r->frec);
  free(r->fptr);
  free(r);
}

/* ---- outgoing streams ---------------------------------------------------- */

struct ostream *lmz__repl_out_get(lmz_repl_t *r, uint64_t node, bool create) {
  for (size_t i = 0; i < r->n_out; i++)
    if (r->out[i]->node == node)
      return r->out[i];
  if (!create)
    return NULL;
  if (r->n_out == r->cap_out) {
    size_t cap = r->cap_out ? 2 * r->cap_out : 4;
    struct ostream **a = realloc(r->out, cap * sizeof *a);
    if (!a)
      return NULL;
    r->out = a;
    r->cap_out = cap;
  }
  struct ostream *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->node = node;
  r->out[r->n_out++] = s;
  return s;
}

/* A generation nobody used before, so a backup can tell a restarted stream
 * (ours after a restart too) from the old one: random, never 0. */
static uint64_t fresh_generation(lmz_repl_t *r) {
  uint64_t g = 0;
  while (g == 0) {
    randombytes_buf(&g, sizeof g);
    g ^= ++r->gen_counter;
  }
  return g;
}

void lmz__repl_out_open(lmz_repl_t *r, struct ostream *s) {
  LMZ_ASSERT(s->state == OS_IDLE);
  s->state = OS_OPEN;
  s->gen = fresh_generation(r);
  s->next_seq = 1;
  s->sent_seq = s->acked_seq = 0;
}

void lmz__repl_out_push(struct ostream *s, struct rrec *rec, uint64_t now) {
  LMZ_ASSERT(s->state == OS_OPEN || s->retained);
  rec->seq = s->next_seq++;
  rec->t_ms = now;
  rec->next = NULL;
  if (s->tail)
    s->tail->next = rec;
  else
    s->head = rec;
  s->tail = rec;
  if (!s->unsent)
    s->unsent = rec;
  s->n_unacked++;
  s->unacked_bytes += lmz__repl_rec_bytes(rec);
}

static void pair_out_done(void *arg, int status, int item_status);

/* Proposes PAIR_OUT(self, s->node) unless one is in flight. */
void lmz__repl_propose_pair_out(lmz_repl_t *r, struct ostream *s) {
  if (s->state != OS_CLOSED || s->pair_out_inflight)
    return;
  lmz_buf cmd = LMZ_BUF_INIT;
  struct rpending *p = lmz__repl_pending_new(r, PK_PAIR_OUT);
  int rv = p ? lmz_dir_encode_pair_out(&cmd, r->o.node_id, s->node, s->gen)
             : LMZ_ENOMEM;
  if (rv == 0) {
    p->node = s->node;
    p->gen = s->gen;
    rv = r->o.ops.propose(r->o.ops.ctx, &cmd, pair_out_done, p);
  }
  lmz_buf_free(&cmd);
  if (rv) {
    if (p)
      lmz__repl_pending_done(p);
    return; /* the next tick retries */
  }
  s->pair_out_inflight = true;
  r->st.pair_outs++;
}

static int listed_cb(const char *binding, size_t blen, const char *instance,
                     size_t ilen, const struct lmz_dir_placement *p,
                     void *arg) {
  (void)binding, (void)blen, (void)instance, (void)ilen;
  const uint64_t *node = arg;
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++)
    if (p->backups[i] == *node)
      return 1;
  return 0;
}

/* Whether the directory lists `node` as a backup of any actor we own.
 * O(our actors); only after a PAIR_OUT commits. */
static bool listed_anywhere(lmz_repl_t *r, uint64_t node) {
  return lmz_dir_foreach_placement(r->o.dir, r->o.node_id, listed_cb, &node) !=
         0;
}

static void pair_out_done(void *arg, int status, int item_status) {
  (void)item_status; /* PAIR_OUT always succeeds when it applies */
  struct rpending *p = arg;
  lmz_repl_t *r = p->r;
  uint64_t node = p->node, gen = p->gen;
  lmz__repl_pending_done(p);
  if (!r)
    return;
  struct ostream *s = lmz__repl_out_get(r, node, false);
  if (!s || s->state != OS_CLOSED || s->gen != gen)
    return;
  s->pair_out_inflight = false;
  if (status != 0) {
    LMZ_LOG_WARN(&lmz__repl_log,
                 "repl: PAIR_OUT %llu not committed (%s); retrying",
                 (unsigned long long)node, lmz_strerror(status));
    return;
  }
  if (listed_anywhere(r, node)) {
    /* A BACKUPS_ADD committed after this PAIR_OUT (a fill that was lost
     * meanwhile): the node is listed again without a live stream. */
    lmz__repl_propose_pair_out(r, s);
    return;
  }
  LMZ_LOG_INFO(&lmz__repl_log,
               "repl: node %llu left the in-sync sets of our actors",
               (unsigned long long)node);
  s->state = OS_IDLE; /* listed again later: a new generation */
  r->refill_dirty = true;
  lmz__repl_reevaluate(r);
}

static void out_close(lmz_repl_t *r, struct ostream *s, const char *why,
                      bool keep) {
  if (s->state != OS_OPEN)
    return;
  LMZ_LOG_WARN(&lmz__repl_log,
               "repl: stream to node %llu closed (%s): %llu records "
               "unacknowledged",
               (unsigned long long)s->node, why,
               (unsigned long long)s->n_unacked);
  if (!keep || !lmz__repl_retain(r, s))
    lmz__repl_out_free_records(s);
  r->stale_waits = true; /* its waits (and its fills') may resolve now */
  s->state = OS_CLOSED;
  s->closed_ms = now_ms(r);
  s->pair_out_inflight = false;
  lmz__repl_fills_abort_node(r, s->node);
  r->refill_dirty = true;
  lmz__repl_propose_pair_out(r, s);
  lmz__repl_reevaluate(r); /* fill waits resolve now */
}

void lmz__repl_out_close(lmz_repl_t *r, struct ostream *s, const char *why) {
  out_close(r, s, why, false);
}

void lmz__repl_out_lose(lmz_repl_t *r, struct ostream *s, const char *why) {
  out_close(r, s, why, true);
}

/* ---- gate tokens --------------------------------------------------------- */

static struct rtoken *token_at(const lmz_repl_t *r, uint64_t id) {
  if (id < r->first_token || id >= r->next_token)
    return NULL;
  return r->tok[(r->tok_head + (size_t)(id - r->first_token)) % r->tok_cap];
}

static int token_reserve(lmz_repl_t *r) {
  if (r->tok_n < r->tok_cap)
    return 0;
  size_t cap = r->tok_cap ? 2 * r->tok_cap : 64;
  struct rtoken **a = malloc(cap * sizeof *a);
  if (!a)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < r->tok_n; i++)
    a[i] = r->tok[(r->tok_head + i) % r->tok_cap];
  free(r->tok);
  r->tok = a;
  r->tok_cap = cap;
  r->tok_head = 0;
  return 0;
}

/* Remembers a lost token's id (ascending: the ring pops in order). Returns
 * false at LMZ_REPL_MAX_LOST or out of memory: the token stays in the ring. */
static bool lost_keep(lmz_repl_t *r, uint64_t id) {
  if (r->n_lost == r->cap_lost) {
    if (r->cap_lost == LMZ_REPL_MAX_LOST)
      return false;
    size_t cap = r->cap_lost ? 2 * r->cap_lost : 16;
    if (cap > LMZ_REPL_MAX_LOST)
      cap = LMZ_REPL_MAX_LOST;
    uint64_t *a = realloc(r->lost, cap * sizeof *a);
    if (!a)
      return false;
    r->lost = a;
    r->cap_lost = cap;
  }
  r->lost[r->n_lost++] = id;
  r->st.tokens_lost++;
  return true;
}

/* Pops satisfied (and lost) tokens from the front. Returns true if any. */
static bool tokens_advance(lmz_repl_t *r) {
  bool moved = false;
  while (r->tok_n > 0 && r->tok[r->tok_head]->n_left == 0) {
    struct rtoken *t = r->tok[r->tok_head];
    if (t->lost && !lost_keep(r, t->id))
      break; /* the set is full: the gate's next question prunes it */
    free(t);
    r->tok_head = (r->tok_head + 1) % r->tok_cap;
    r->tok_n--;
    r->first_token++;
    moved = true;
  }
  return moved;
}

/* Forgets the lost ids below `token` (the gate asked about `token`). */
static void lost_prune(lmz_repl_t *r, uint64_t token) {
  size_t k = 0;
  while (k < r->n_lost && r->lost[k] < token)
    k++;
  if (k == 0)
    return;
  memmove(r->lost, r->lost + k, (r->n_lost - k) * sizeof *r->lost);
  r->n_lost -= k;
}

static bool lost_has(const lmz_repl_t *r, uint64_t token) {
  size_t lo = 0, hi = r->n_lost;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->lost[mid] < token)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < r->n_lost && r->lost[lo] == token;
}

int lmz_repl_token_state(lmz_repl_t *r, uint64_t token) {
  if (token == 0)
    return 1;
  lost_prune(r, token);
  if (r->n_lost < LMZ_REPL_MAX_LOST)
    tokens_advance(r); /* a full set held a lost token back */
  if (token < r->first_token)
    return lost_has(r, token) ? LMZ_EUNAVAILABLE : 1;
  struct rtoken *t = token_at(r, token);
  return t && t->lost ? LMZ_EUNAVAILABLE : 0;
}

void lmz__repl_token_acked(lmz_repl_t *r, uint64_t token, uint64_t node,
                           uint64_t gen) {
  struct rtoken *t = token_at(r, token);
  if (!t || t->n_left == 0)
    return;
  for (uint32_t i = 0; i < t->n_waits; i++) {
    struct rwait *w = &t->waits[i];
    if (!w->done && w->node == node && w->gen == gen) {
      w->done = true;
      t->n_left--;
    }
  }
}

static bool listed(const struct lmz_dir_placement *p, uint64_t node) {
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++)
    if (p->backups[i] == node)
      return true;
  return false;
}

static void token_lose(struct rtoken *t) {
  t->lost = true;
  t->n_left = 0;
}

/* A wait on a stream that is no longer open in its generation resolves once
 * the directory (we still own the actor at the token's epoch) no longer
 * lists the node; if the actor is no longer ours at that epoch, the token is
 * lost. While the generation is open only an acknowledgement resolves it.
 * Returns whether a wait on a generation that is not open remains. */
static bool token_resolve(lmz_repl_t *r, struct rtoken *t) {
  struct lmz_dir_placement p;
  bool have = false, stale = false;
  for (uint32_t i = 0; i < t->n_waits && !t->lost; i++) {
    struct rwait *w = &t->waits[i];
    if (w->done)
      continue;
    struct ostream *s = lmz__repl_out_get(r, w->node, false);
    if (s && s->state == OS_OPEN && s->gen == w->gen)
      continue;
    if (!have) {
      int rv = lmz_dir_placement_get(r->o.dir, t->name, t->blen,
                                     t->name + t->blen, t->ilen, &p);
      if (rv != 0 && rv != LMZ_ENOTFOUND)
        return true; /* cannot decide: stays waiting */
      if (rv == LMZ_ENOTFOUND)
        p.node_id = 0; /* released: not ours */
      have = true;
    }
    if (p.node_id != r->o.node_id || p.epoch != t->epoch) {
      token_lose(t);
    } else if (!listed(&p, w->node)) {
      w->done = true;
      t->n_left--;
    } else {
      stale = true;
    }
  }
  return stale;
}

void lmz__repl_reevaluate(lmz_repl_t *r) {
  bool stale = false;
  for (size_t i = 0; r->stale_waits && i < r->tok_n; i++) {
    struct rtoken *t = r->tok[(r->tok_head + i) % r->tok_cap];
    if (t->n_left)
      stale |= token_resolve(r, t);
  }
  r->stale_waits = stale;
  if (tokens_advance(r) && r->o.on_progress)
    r->o.on_progress(r->o.progress_arg);
}

uint64_t lmz_repl_acked_through(const lmz_repl_t *r) {
  return r->first_token - 1;
}

/* ---- ship ---------------------------------------------------------------- */

/* Where one shipped batch goes. */
struct target {
  struct ostream *s;
  struct rfill *fill; /* NULL: a listed backup */
  bool queue;         /* a record goes on the stream */
  bool wait;          /* the token waits for the node */
};

struct plan {
  struct target t[LMZ__REPL_MAX_WAITS];
  size_t n, n_queue, n_wait;
};

/* Collects the listed backups and the nodes being filled for the actor. */
static int plan_targets(lmz_repl_t *r, const struct lmz_dir_placement *p,
                        const uint8_t *prefix, size_t plen, struct plan *pl) {
  memset(pl, 0, sizeof *pl);
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++) {
    struct ostream *s = lmz__repl_out_get(r, p->backups[i], true);
    if (!s)
      return LMZ_ENOMEM;
    /* CLOSED: PAIR_OUT will resolve it (retained: it may resume) */
    bool q =
        s->state != OS_CLOSED ||
        (s->retained && lmz__repl_retained_wants(s, prefix, plen, p->epoch));
    pl->t[pl->n++] = (struct target){s, NULL, q, true};
  }
  for (size_t i = 0; i < r->n_out && pl->n < LMZ__REPL_MAX_WAITS; i++) {
    struct ostream *s = r->out[i]; /* retained, unlisted: queue, no wait */
    if (s->retained && !listed(p, s->node) &&
        lmz__repl_retained_wants(s, prefix, plen, p->epoch))
      pl->t[pl->n++] = (struct target){s, NULL, true, false};
  }
  for (struct rfill *f = lmz__repl_fills_of(r, prefix, plen); f; f = f->next) {
    struct ostream *s = lmz__repl_out_get(r, f->node, false);
    if (listed(p, f->node) || pl->n == LMZ__REPL_MAX_WAITS || !s ||
        s->state != OS_OPEN || s->gen != f->gen)
      continue;
    bool gating = f->state >= FILL_CATCHING;
    pl->t[pl->n++] = (struct target){s, f, true, gating};
  }
  for (size_t i = 0; i < pl->n; i++) {
    pl->n_queue += pl->t[i].queue;
    pl->n_wait += pl->t[i].wait;
  }
  return 0;
}

/* Allocates the records (sharing `data`) and the token: all or nothing. */
static int ship_alloc(lmz_repl_t *r, const struct plan *pl, const char *name,
                      size_t blen, size_t ilen, uint32_t kind, uint64_t epoch,
                      struct rdata *data, struct rrec **recs,
                      struct rtoken **tok) {
  *tok = NULL;
  size_t k = 0;
  for (; k < pl->n_queue; k++)
    if (!(recs[k] = lmz__repl_rec_new(name, blen, ilen, kind, epoch, data)))
      goto nomem;
  if (pl->n_wait &&
      (token_reserve(r) || !(*tok = calloc(1, sizeof **tok + blen + ilen))))
    goto nomem;
  return 0;
nomem:
  while (k > 0)
    lmz__repl_rec_free(recs[--k]);
  return LMZ_ENOMEM;
}

/* Queues the records and registers the token (nothing can fail now). */
static uint64_t ship_commit(lmz_repl_t *r, struct plan *pl, struct rrec **recs,
                            struct rtoken *t, const char *name, size_t blen,
                            size_t ilen, uint64_t epoch) {
  uint64_t id = t ? r->next_token : 0, now = now_ms(r);
  size_t k = 0;
  for (size_t i = 0; i < pl->n; i++) {
    struct target *g = &pl->t[i];
    if (g->queue) {
      if (g->s->state == OS_IDLE && !g->s->retained)
        lmz__repl_out_open(r, g->s);
      recs[k]->token = id;
      lmz__repl_out_push(g->s, recs[k], now);
      if (g->fill)
        g->fill->last_seq = recs[k]->seq;
      k++;
    }
    if (t && g->wait) {
      t->waits[t->n_waits++] = (struct rwait){g->s->node, g->s->gen, false};
      r->stale_waits |= g->s->state != OS_OPEN; /* CLOSED: PAIR_OUT decides */
    }
  }
  if (!t)
    return 0;
  t->id = id;
  t->epoch = epoch;
  t->n_left = t->n_waits;
  t->blen = blen;
  t->ilen = ilen;
  memcpy(t->name, name, blen + ilen);
  r->tok[(r->tok_head + r->tok_n) % r->tok_cap] = t;
  r->tok_n++;
  r->next_token++;
  return id;
}

/* The batch's record bytes: its operations inside the actor's range. */
static int ship_data(lmz_repl_t *r, const lmz_batch *b, const uint8_t *prefix,
                     size_t plen, struct rdata **out) {
  lmz_key_range range;
  lmz_key_actor_range(&range, prefix, plen);
  lmz_buf_reset(&r->scratch);
  int rv = lmz_batch_serialize(b, &range, &r->scratch);
  if (rv)
    return rv;
  if (r->scratch.len > LMZ_REPL_MAX_RECORD_BYTES)
    return LMZ_ETOOBIG;
  struct rdata *d = malloc(sizeof *d + r->scratch.len);
  if (!d)
    return LMZ_ENOMEM;
  d->refs = 1; /* ours until the records hold it */
  d->len = r->scratch.len;
  memcpy(d->bytes, r->scratch.data, r->scratch.len);
  *out = d;
  return 0;
}

int lmz_repl_ship(lmz_repl_t *r, const char *binding, const char *instance,
                  const lmz_batch *b, bool fresh, uint64_t *token) {
  *token = 0;
  if (r->o.factor <= 1)
    return 0;
  size_t blen = strlen(binding), ilen = strlen(instance);
  struct lmz_dir_placement p;
  int rv = lmz_dir_placement_get(r->o.dir, binding, blen, instance, ilen, &p);
  if (rv)
    return rv == LMZ_ENOTFOUND ? LMZ_ESTALE : rv;
  if (p.node_id != r->o.node_id)
    return LMZ_ESTALE; /* not ours (any more) */
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int plen = lmz_key_actor_prefix(prefix, binding, blen, instance, ilen);
  if (plen < 0)
    return plen;
  struct plan pl;
  rv = plan_targets(r, &p, prefix, (size_t)plen, &pl);
  if (rv || pl.n == 0)
    return rv;
  char name[LMZ_KEY_BINDING_MAX + LMZ_KEY_INSTANCE_MAX];
  memcpy(name, binding, blen);
  memcpy(name + blen, instance, ilen);
  struct rdata *d;
  if ((rv = ship_data(r, b, prefix, (size_t)plen, &d)) != 0)
    return rv;
  struct rrec *recs[LMZ__REPL_MAX_WAITS];
  struct rtoken *t;
  rv = ship_alloc(r, &pl, name, blen, ilen,
                  fresh ? LMZ_REPL_KIND_OPS_FRESH : LMZ_REPL_KIND_OPS, p.epoch,
                  d, recs, &t);
  if (rv == 0)
    *token = ship_commit(r, &pl, recs, t, name, blen, ilen, p.epoch);
  lmz__repl_data_unref(d);
  if (rv)
    return rv;
  r->st.shipped++;
  for (size_t i = 0; i < pl.n; i++) {
    struct ostream *s = pl.t[i].s;
    if (s->state == OS_OPEN && s->unacked_bytes > r->max_lag_bytes)
      lmz__repl_out_lose(r, s, "lag in bytes"); /* bounds the memory now */
    else if (s->retained && s->unacked_bytes > r->retention_bytes)
      lmz__repl_retain_drop(r, s);
    if (s->state == OS_CLOSED)
      lmz__repl_propose_pair_out(r, s); /* listed again while closed: insist */
  }
  return 0;
}

/* ---- flush --------------------------------------------------------------- */

static int frame_reserve(lmz_repl_t *r, size_t n) {
  if (n <= r->fcap)
    return 0;
  size_t cap = r->fcap ? r->fcap : 64;
  while (cap < n)
    cap *= 2;
  Lmz__ReplRecord *a = malloc(cap * sizeof *a);
  Lmz__ReplRecord **p = malloc(cap * sizeof *p);
  if (!a || !p) {
    free(a);
    free(p);
    return LMZ_ENOMEM;
  }
  free(r->frec);
  free(r->fptr);
  r->frec = a;
  r->fptr = p;
  r->fcap = cap;
  return 0;
}

/* How many ready records from s->unsent fit one frame (at least one). */
static size_t frame_span(const struct ostream *s) {
  size_t n = 0, bytes = 0;
  for (const struct rrec *rec = s->unsent; rec && rec->ready; rec = rec->next) {
    size_t rb = lmz__repl_rec_bytes(rec);
    if (n == LMZ_REPL_MAX_RECORDS ||
        (n > 0 && bytes + rb > LMZ_REPL_MAX_FRAME_BYTES))
      break;
    bytes += rb;
    n++;
  }
  return n;
}

/* Sends the next frame of s. Returns records sent (> 0), 0 when nothing is
 * ready, or the send error. */
static long send_one(lmz_repl_t *r, struct ostream *s) {
  size_t n = frame_span(s);
  if (n == 0)
    return 0;
  if (frame_reserve(r, n))
    return LMZ_EOVERLOAD; /* out of memory: retry on the next flush */
  const struct rrec *rec = s->unsent;
  for (size_t i = 0; i < n; i++, rec = rec->next) {
    Lmz__ReplRecord *m = &r->frec[i];
    lmz__repl_record__init(m);
    m->binding = (ProtobufCBinaryData){rec->blen, (uint8_t *)rec->name};
    m->instance =
        (ProtobufCBinaryData){rec->ilen, (uint8_t *)rec->name + rec->blen};
    m->epoch = rec->epoch;
    m->kind = rec->kind;
    if (rec->data)
      m->data = (ProtobufCBinaryData){rec->data->len, rec->data->bytes};
    r->fptr[i] = m;
  }
  Lmz__ReplAppend a = LMZ__REPL_APPEND__INIT;
  a.generation = s->gen;
  a.first_seq = s->unsent->seq;
  a.n_records = n;
  a.records = r->fptr;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_REPL_APPEND;
  f.repl_append = &a;
  int rv = r->o.ops.send(r->o.ops.ctx, s->node, &f);
  return rv ? rv : (long)n;
}

static void flush_stream(lmz_repl_t *r, struct ostream *s) {
  while (s->state == OS_OPEN && s->unsent) {
    long n = send_one(r, s);
    if (n == 0 || n == LMZ_EOVERLOAD)
      return; /* a FILL not ready yet / the link is full: next flush */
    if (n < 0) {
      lmz__repl_out_lose(r, s, lmz_strerror((int)n));
      return;
    }
    for (long i = 0; i < n; i++) {
      s->sent_seq = s->unsent->seq;
      s->unsent = s->unsent->next;
    }
    s->sent_records += (uint64_t)n;
  }
}

void lmz_repl_flush(lmz_repl_t *r) {
  for (size_t i = 0; i < r->n_out; i++)
    flush_stream(r, r->out[i]);
  lmz__repl_in_flush(r);
}

/* ---- tick, acks, links, directory ---------------------------------------- */

void lmz_repl_tick(lmz_repl_t *r) {
  uint64_t now = now_ms(r);
  for (size_t i = 0; i < r->n_out; i++) {
    struct ostream *s = r->out[i];
    if (s->state == OS_OPEN && s->head && now > s->head->t_ms &&
        now - s->head->t_ms > r->max_lag_ms)
      lmz__repl_out_lose(r, s, "lag in time");
    else if (s->state == OS_OPEN && s->unacked_bytes > r->max_lag_bytes)
      lmz__repl_out_lose(r, s, "lag in bytes");
    if (s->state == OS_CLOSED)
      lmz__repl_propose_pair_out(r, s);
  }
  lmz__repl_resume_tick(r);
  lmz__repl_fill_tick(r);
}

void lmz_repl_on_ack(lmz_repl_t *r, uint64_t from_node, const Lmz__ReplAck *m) {
  struct ostream *s = lmz__repl_out_get(r, from_node, false);
  if (!s || s->state != OS_OPEN || m->generation != s->gen)
    return; /* an old generation's or a closed stream's: nothing waits */
  if (m->status < 0) {
    r->st.refused++;
    LMZ_LOG_WARN(&lmz__repl_log, "repl: node %llu refused our stream: %s (%s)",
                 (unsigned long long)from_node, lmz_strerror(m->status),
                 m->detail ? m->detail : "");
    lmz__repl_out_close(r, s, "refused by the backup");
    return;
  }
  if (m->seq <= s->acked_seq)
    return;
  if (m->seq > s->sent_seq) {
    lmz__repl_out_close(r, s, "acknowledged records never sent");
    return;
  }
  while (s->head && s->head->seq <= m->seq) {
    struct rrec *rec = s->head;
    s->head = rec->next;
    if (!s->head)
      s->tail = NULL;
    s->n_unacked--;
    s->unacked_bytes -= lmz__repl_rec_bytes(rec);
    if (rec->token)
      lmz__repl_token_acked(r, rec->token, s->node, s->gen);
    if (rec->kind == LMZ_REPL_KIND_FILL)
      lmz__repl_fill_acked(r, s, rec);
    lmz__repl_rec_free(rec);
  }
  s->acked_seq = m->seq;
  lmz__repl_fills_progress(r, s);
  if (tokens_advance(r) && r->o.on_progress)
    r->o.on_progress(r->o.progress_arg);
}

void lmz_repl_on_link(lmz_repl_t *r, uint64_t node_id, bool up) {
  r->refill_dirty = true;
  struct ostream *s = lmz__repl_out_get(r, node_id, false);
  if (s)
    s->link_down = !up;
  if (up)
    return;
  if (s)
    lmz__repl_out_lose(r, s, "link down");
  lmz__repl_in_forget(r, node_id);
}

void lmz_repl_dir_changed(lmz_repl_t *r) {
  r->refill_dirty = true;
  lmz__repl_fills_check(r);
  lmz__repl_reevaluate(r);
}

/* ---- stats --------------------------------------------------------------- */

void lmz_repl_get_stats(const lmz_repl_t *r, struct lmz_repl_stats *st) {
  *st = r->st;
  st->acked_through = lmz_repl_acked_through(r);
  st->pending_tokens = r->tok_n;
  st->n_pairs = r->n_out + r->n_in;
}

void lmz_repl_pair_at(const lmz_repl_t *r, size_t i,
                      struct lmz_repl_pair_stats *out) {
  memset(out, 0, sizeof *out);
  if (i < r->n_out) {
    const struct ostream *s = r->out[i];
    uint64_t now = now_ms(r);
    out->node_id = s->node;
    out->outgoing = true;
    out->in_sync = s->state == OS_OPEN;
    out->lag_records = s->n_unacked;
    out->lag_bytes = s->unacked_bytes;
    out->lag_ms = s->head && now > s->head->t_ms ? now - s->head->t_ms : 0;
    if (s->state == OS_CLOSED && now > s->closed_ms)
      out->lag_ms = now - s->closed_ms; /* out of sync since */
    out->sent_records = s->sent_records;
    out->acked_seq = s->acked_seq;
    return;
  }
  if (i - r->n_out >= r->n_in)
    return;
  const struct istream *in = r->in[i - r->n_out];
  out->node_id = in->node;
  out->in_sync = true;
  out->lag_records = in->next_seq - 1 - in->durable_seq;
  out->sent_records = in->applied_records;
  out->acked_seq = in->acked_seq;
}
