/* cluster/repl_fill.c - refill of under-replicated actors (DESIGN.md 4.1,
 * cluster/repl.h REFILL).
 *
 * Happy path, per actor this node owns whose list is shorter than
 * want = min(R - 1, candidates):
 *  1. the next node of the rendezvous ranking (cluster/placement.h scores)
 *     that is neither owner, listed nor already being filled is chosen;
 *  2. a placeholder FILL record goes on that node's stream at once, so every
 *     later batch of the actor is queued behind it, and an empty barrier
 *     batch is committed to the local store;
 *  3. when the barrier is written, every batch shipped before step 2 is in
 *     RocksDB: the actor's dump (lmz_store_export_actor) becomes the FILL
 *     record's data and flush may send it. Batches written after the barrier
 *     may be both in the dump and behind it on the stream; replaying them is
 *     harmless because batches are blind writes applied in order;
 *  4. the FILL record is acknowledged: from now on the actor's batches also
 *     wait for that node (CATCHING); once every record of the actor queued
 *     so far is acknowledged, the node holds every write acknowledged so far,
 *     and BACKUPS_ADD(owner, epoch, node) is proposed;
 *  5. committed: the node is a listed backup; the fill is done.
 *
 * Failure modes:
 *  1. The stream closes (lag, refusal, link): the node's fills are dropped;
 *     the gate waits they added resolve at once (the node is not listed).
 *  2. The barrier fails or the export fails (disk, actor too big): the
 *     placeholder becomes a delete of the actor's range, another one follows
 *     the records queued behind it, and the fill is dropped (retried by a
 *     later scan) - the node never keeps a partial copy.
 *  3. BACKUPS_ADD not committed (no leader, minority): retried each tick.
 *     Refused (epoch moved on, list full, node not UP): the fill is dropped.
 *  4. BACKUPS_ADD committed after the fill was dropped: the node is listed
 *     without a live stream for its data, so its stream is closed (again)
 *     and PAIR_OUT takes it out.
 *  5. The placement changes under a fill (moved, failed over, released):
 *     the fill is dropped on the next directory change.
 * Work per tick is bounded: LMZ_REPL_MAX_FILLS fills and
 * LMZ_REPL_MAX_FILL_BYTES of dumps in flight. */
#include <stdlib.h>
#include <string.h>

#include "cluster/placement.h"
#include "cluster/repl_int.h"
#include "core/err.h"

/* ---- the fill table ------------------------------------------------------ */

struct rfill *lmz__repl_fills_of(lmz_repl_t *r, const uint8_t *prefix,
                                 size_t plen) {
  return lmz_hmap_get(&r->fill_by_actor, prefix, plen);
}

struct rfill *lmz__repl_fill_by_id(lmz_repl_t *r, uint64_t id) {
  for (size_t i = 0; i < r->n_fills; i++)
    if (r->fills[i]->id == id)
      return r->fills[i];
  return NULL;
}

static int fill_insert(lmz_repl_t *r, struct rfill *f) {
  if (r->n_fills == r->cap_fills) {
    size_t cap = r->cap_fills ? 2 * r->cap_fills : 16;
    struct rfill **a = realloc(r->fills, cap * sizeof *a);
    if (!a)
      return LMZ_ENOMEM;
    r->fills = a;
    r->cap_fills = cap;
  }
  f->next = lmz__repl_fills_of(r, f->prefix, f->plen);
  int rv = lmz_hmap_put(&r->fill_by_actor, f->prefix, f->plen, f, NULL);
  if (rv)
    return rv;
  r->fills[r->n_fills++] = f;
  return 0;
}

void lmz__repl_fill_remove(lmz_repl_t *r, struct rfill *f) {
  for (size_t i = 0; i < r->n_fills; i++)
    if (r->fills[i] == f) {
      r->fills[i] = r->fills[--r->n_fills];
      break;
    }
  struct rfill *first = lmz__repl_fills_of(r, f->prefix, f->plen);
  if (first == f) {
    if (f->next) /* the key now lives in f->next: same bytes */
      lmz_hmap_put(&r->fill_by_actor, f->next->prefix, f->plen, f->next, NULL);
    else
      lmz_hmap_del(&r->fill_by_actor, f->prefix, f->plen);
  } else {
    for (struct rfill *p = first; p; p = p->next)
      if (p->next == f) {
        p->next = f->next;
        break;
      }
  }
  if (f->state == FILL_SENT)
    r->fill_bytes_inflight -= f->dump_bytes;
  r->refill_dirty = true;
  free(f);
}

void lmz__repl_fills_free(lmz_repl_t *r) {
  for (size_t i = 0; i < r->n_fills; i++)
    free(r->fills[i]);
  free(r->fills);
  lmz_hmap_free(&r->fill_by_actor);
}

/* ---- BACKUPS_ADD --------------------------------------------------------- */

static void add_cb(void *arg, int status, int item_status) {
  struct rpending *p = arg;
  lmz_repl_t *r = p->r;
  uint64_t id = p->id, node = p->node, gen = p->gen;
  lmz__repl_pending_done(p);
  if (r)
    lmz__repl_add_done(r, id, node, gen, status, item_status);
}

static void propose_add(lmz_repl_t *r, struct rfill *f) {
  struct lmz_dir_backup_add a = {f->name, f->blen,      f->name + f->blen,
                                 f->ilen, r->o.node_id, f->epoch,
                                 f->node, f->id};
  lmz_buf cmd = LMZ_BUF_INIT;
  struct rpending *p = lmz__repl_pending_new(r, PK_BACKUPS_ADD);
  int rv = p ? lmz_dir_encode_backups_add(&cmd, &a, 1) : LMZ_ENOMEM;
  if (rv == 0) {
    p->id = f->id;
    p->node = f->node;
    p->gen = f->gen;
    rv = r->o.ops.propose(r->o.ops.ctx, &cmd, add_cb, p);
  }
  lmz_buf_free(&cmd);
  if (rv) {
    if (p)
      lmz__repl_pending_done(p);
    f->propose_failed = true; /* the next tick retries */
    return;
  }
  f->state = FILL_PROPOSING;
  f->propose_failed = false;
}

/* The node got listed although its fill is gone (failure mode 4). A CLOSED
 * stream is left alone: its PAIR_OUT, when it commits, checks that the
 * directory lists the node nowhere before the stream may reopen. */
static void listed_without_stream(lmz_repl_t *r, uint64_t node, uint64_t gen) {
  struct ostream *s = lmz__repl_out_get(r, node, false);
  if (!s || (s->state == OS_OPEN && s->gen == gen) || s->state == OS_CLOSED)
    return;
  if (s->state == OS_OPEN) {
    lmz__repl_out_close(r, s, "listed after its fill was lost");
    return;
  }
  s->state = OS_CLOSED; /* IDLE after an earlier PAIR_OUT: once more */
  s->pair_out_inflight = false;
  lmz__repl_propose_pair_out(r, s);
}

void lmz__repl_add_done(lmz_repl_t *r, uint64_t fill_id, uint64_t node,
                        uint64_t gen, int status, int item_status) {
  struct rfill *f = lmz__repl_fill_by_id(r, fill_id);
  if (status == 0 && item_status >= 0) {
    if (f) {
      r->st.fills_done++;
      lmz__repl_fill_remove(r, f);
    } else {
      listed_without_stream(r, node, gen);
    }
    lmz__repl_reevaluate(r);
    return;
  }
  if (!f)
    return;
  if (status != 0) {
    f->state = FILL_CATCHING; /* not committed: retried on the next tick */
    f->propose_failed = true;
    return;
  }
  LMZ_LOG_WARN(&lmz__repl_log, "repl: BACKUPS_ADD of node %llu refused: %s",
               (unsigned long long)node, lmz_strerror(item_status));
  lmz__repl_fill_remove(r, f);
}

/* ---- progress of a fill -------------------------------------------------- */

void lmz__repl_fill_acked(lmz_repl_t *r, struct ostream *s,
                          const struct rrec *rec) {
  struct rfill *f = lmz__repl_fill_by_id(r, rec->fill_id);
  if (!f || f->gen != s->gen || f->state != FILL_SENT)
    return;
  r->fill_bytes_inflight -= f->dump_bytes;
  f->state = FILL_CATCHING; /* later batches wait for the node too */
}

void lmz__repl_fills_progress(lmz_repl_t *r, struct ostream *s) {
  for (size_t i = 0; i < r->n_fills; i++) {
    struct rfill *f = r->fills[i];
    if (f->node == s->node && f->gen == s->gen && f->state == FILL_CATCHING &&
        s->acked_seq >= f->last_seq)
      propose_add(r, f);
  }
}

void lmz__repl_fills_abort_node(lmz_repl_t *r, uint64_t node) {
  for (size_t i = r->n_fills; i > 0; i--)
    if (r->fills[i - 1]->node == node)
      lmz__repl_fill_remove(r, r->fills[i - 1]);
}

static bool is_listed(const struct lmz_dir_placement *p, uint64_t node) {
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++)
    if (p->backups[i] == node)
      return true;
  return false;
}

void lmz__repl_fills_check(lmz_repl_t *r) {
  for (size_t i = r->n_fills; i > 0; i--) {
    struct rfill *f = r->fills[i - 1];
    struct lmz_dir_placement p;
    int rv = lmz_dir_placement_get(r->o.dir, f->name, f->blen,
                                   f->name + f->blen, f->ilen, &p);
    if (rv == 0 && p.node_id == r->o.node_id && p.epoch == f->epoch &&
        (f->state == FILL_PROPOSING || !is_listed(&p, f->node)))
      continue;
    lmz__repl_fill_remove(r, f);
  }
}

/* ---- the dump ------------------------------------------------------------ */

/* Record bytes deleting the actor's whole range (failure mode 2). */
static struct rdata *range_delete_data(const uint8_t *prefix, size_t plen) {
  lmz_key_range range;
  lmz_key_actor_range(&range, prefix, plen);
  lmz_batch *b = lmz_batch_new();
  lmz_buf out = LMZ_BUF_INIT;
  struct rdata *d = NULL;
  if (b &&
      lmz_batch_delete_range(b, range.lower, range.lower_len, range.upper,
                             range.upper_len) == 0 &&
      lmz_batch_serialize(b, NULL, &out) == 0 &&
      (d = malloc(sizeof *d + out.len)) != NULL) {
    d->refs = 0;
    d->len = out.len;
    memcpy(d->bytes, out.data, out.len);
  }
  lmz_batch_free(b);
  lmz_buf_free(&out);
  return d;
}

static struct rrec *find_fill_rec(struct ostream *s, uint64_t fill_id) {
  for (struct rrec *rec = s->unsent; rec; rec = rec->next)
    if (rec->kind == LMZ_REPL_KIND_FILL && rec->fill_id == fill_id)
      return rec;
  return NULL;
}

/* Failure mode 2: the placeholder and one more record at the tail delete the
 * actor's range on the node; if even that fails, the stream closes. `why`
 * NULL: cancelled over the budget (retried by a later scan), not logged. */
static void fill_fail(lmz_repl_t *r, struct rfill *f, struct ostream *s,
                      struct rrec *rec, const char *why) {
  if (why)
    LMZ_LOG_WARN(&lmz__repl_log, "repl: fill of node %llu failed: %s",
                 (unsigned long long)f->node, why);
  struct rdata *d = range_delete_data(f->prefix, f->plen);
  struct rrec *tail = d ? lmz__repl_rec_new(f->name, f->blen, f->ilen,
                                            LMZ_REPL_KIND_OPS, f->epoch, d)
                        : NULL;
  if (!tail) {
    free(d);
    lmz__repl_out_close(r, s, "fill failed");
    return;
  }
  rec->kind = LMZ_REPL_KIND_OPS;
  rec->fill_id = 0;
  rec->data = d;
  d->refs++;
  rec->ready = true;
  s->unacked_bytes += d->len;
  lmz__repl_out_push(s, tail, rec->t_ms);
  lmz__repl_fill_remove(r, f);
}

/* Step 3 for one fill whose barrier is written (status 0) or failed. */
static void fill_export(lmz_repl_t *r, struct rfill *f, int status) {
  struct ostream *s = lmz__repl_out_get(r, f->node, false);
  LMZ_ASSERT(s && s->state == OS_OPEN && s->gen == f->gen); /* else aborted */
  struct rrec *rec = find_fill_rec(s, f->id);
  LMZ_ASSERT(rec && !rec->ready); /* flush never passes a placeholder */
  if (status || r->fill_bytes_inflight >= LMZ_REPL_MAX_FILL_BYTES) {
    fill_fail(r, f, s, rec, status ? lmz_strerror(status) : NULL);
    return;
  }
  lmz_buf out = LMZ_BUF_INIT;
  out.max = LMZ_REPL_MAX_RECORD_BYTES;
  int rv = lmz_store_export_actor(r->o.store, f->name, f->blen,
                                  f->name + f->blen, f->ilen, &out);
  struct rdata *d = rv >= 0 ? malloc(sizeof *d + out.len) : NULL;
  if (!d) {
    lmz_buf_free(&out);
    fill_fail(r, f, s, rec, rv < 0 ? lmz_strerror(rv) : "out of memory");
    return;
  }
  d->refs = 1;
  d->len = out.len;
  memcpy(d->bytes, out.data, out.len);
  lmz_buf_free(&out);
  rec->data = d;
  rec->ready = true;
  s->unacked_bytes += d->len;
  f->state = FILL_SENT;
  f->dump_bytes = d->len;
  r->fill_bytes_inflight += d->len;
}

/* The barrier of one scan is written: every fill it started is exported
 * while the byte budget lasts; the others are cancelled (a later scan
 * retries them), so dumps in memory stay within the budget plus one. */
void lmz__repl_barrier_done(lmz_repl_t *r, uint64_t barrier, int status) {
  for (;;) { /* fill_export may remove fills: look the next one up afresh */
    struct rfill *f = NULL;
    for (size_t i = 0; i < r->n_fills && !f; i++)
      if (r->fills[i]->barrier == barrier &&
          r->fills[i]->state == FILL_EXPORTING)
        f = r->fills[i];
    if (!f)
      return;
    fill_export(r, f, status);
  }
}

static void barrier_cb(lmz_store_t *st, int status, void *arg) {
  (void)st;
  struct rpending *p = arg;
  lmz_repl_t *r = p->r;
  uint64_t id = p->id;
  lmz__repl_pending_done(p);
  if (r)
    lmz__repl_barrier_done(r, id, status);
}

/* One barrier for every fill a scan started. */
static void barrier_commit(lmz_repl_t *r, uint64_t barrier) {
  struct rpending *p = lmz__repl_pending_new(r, PK_BARRIER);
  lmz_batch *b = p ? lmz_batch_new() : NULL;
  int rv = b ? 0 : LMZ_ENOMEM;
  if (rv == 0) {
    p->id = barrier;
    rv = lmz_store_commit(r->o.store, b, barrier_cb, p);
  }
  if (rv == 0)
    return;
  lmz_batch_free(b);
  if (p)
    lmz__repl_pending_done(p);
  lmz__repl_barrier_done(r, barrier, rv); /* their placeholders go */
}

/* ---- starting a fill ----------------------------------------------------- */

static struct rfill *fill_new(lmz_repl_t *r, const char *name, size_t blen,
                              size_t ilen, uint64_t epoch, uint64_t node) {
  struct rfill *f = calloc(1, sizeof *f + blen + ilen);
  if (!f)
    return NULL;
  int pl = lmz_key_actor_prefix(f->prefix, name, blen, name + blen, ilen);
  if (pl < 0) {
    free(f);
    return NULL;
  }
  f->plen = (size_t)pl;
  f->id = r->next_fill_id++;
  f->node = node;
  f->epoch = epoch;
  f->state = FILL_EXPORTING;
  f->blen = blen;
  f->ilen = ilen;
  memcpy(f->name, name, blen + ilen);
  return f;
}

/* Step 2 of the happy path (the scan commits the barrier). Returns 0 or
 * LMZ_ENOMEM (nothing done). */
static int fill_start(lmz_repl_t *r, struct ostream *s, const char *name,
                      size_t blen, size_t ilen, uint64_t epoch) {
  struct rfill *f = fill_new(r, name, blen, ilen, epoch, s->node);
  struct rrec *rec =
      f ? lmz__repl_rec_new(name, blen, ilen, LMZ_REPL_KIND_FILL, epoch, NULL)
        : NULL;
  int rv = rec ? fill_insert(r, f) : LMZ_ENOMEM;
  if (rv) {
    lmz__repl_rec_free(rec);
    free(f);
    return rv;
  }
  if (s->state == OS_IDLE)
    lmz__repl_out_open(r, s);
  f->barrier = r->scan_barrier;
  rec->ready = false;
  rec->fill_id = f->id;
  f->gen = s->gen;
  lmz__repl_out_push(s, rec, r->o.ops.now_ms(r->o.ops.ctx));
  f->fill_seq = f->last_seq = rec->seq;
  r->st.fills_sent++;
  return 0;
}

/* A resumed actor (cluster/repl.h CATCH-UP): the node got every record of
 * it on the reopened generation s->gen, so the fill starts CATCHING: its
 * BACKUPS_ADD follows the acknowledgement of every record queued so far. */
int lmz__repl_fill_resume(lmz_repl_t *r, struct ostream *s,
                          const struct rresume *a) {
  struct rfill *f = fill_new(r, a->name, a->blen, a->ilen, a->epoch, s->node);
  int rv = f ? fill_insert(r, f) : LMZ_ENOMEM;
  if (rv) {
    free(f);
    return rv;
  }
  f->gen = s->gen;
  f->state = FILL_CATCHING;
  f->last_seq = s->next_seq - 1;
  return 0;
}

/* ---- the scan ------------------------------------------------------------ */

/* A DRAINING node some of our actors list (DRAINING below). */
struct draining {
  uint64_t node;
  bool needed; /* an actor would be short of copies without it */
};

struct scan {
  lmz_repl_t *r;
  uint64_t *cand;
  size_t n_cand;
  uint32_t want;
  uint64_t under;    /* actors with too short a list */
  size_t n_started;  /* fills started (they share one barrier) */
  uint64_t n_actors; /* walked */
  struct draining drain[LMZ_DIR_MAX_NODES > 64 ? 64 : LMZ_DIR_MAX_NODES];
  size_t n_drain;
  bool drain_full; /* more draining nodes than fit: none leaves this scan */
  bool self_draining;
};

static bool node_draining(const lmz_repl_t *r, uint64_t node) {
  const struct lmz_dir_node *n = lmz_dir_node_get(r->o.dir, node);
  return n && n->state == LMZ_DIR_DRAINING;
}

/* Notes the DRAINING nodes of an actor's list; returns how many. A node is
 * needed while the actor's other backups are fewer than the scan wants. */
static uint32_t note_draining(struct scan *sc,
                              const struct lmz_dir_placement *p) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++)
    n += node_draining(sc->r, p->backups[i]);
  bool needed = p->n_backups - n < sc->want;
  for (uint32_t i = 0; n && i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++) {
    if (!node_draining(sc->r, p->backups[i]))
      continue;
    size_t k = 0;
    while (k < sc->n_drain && sc->drain[k].node != p->backups[i])
      k++;
    if (k == sc->n_drain) {
      if (k == sizeof sc->drain / sizeof sc->drain[0]) {
        sc->drain_full = true;
        continue;
      }
      sc->drain[sc->n_drain++] = (struct draining){p->backups[i], false};
    }
    sc->drain[k].needed |= needed;
  }
  return n;
}

static bool budget_left(const lmz_repl_t *r) {
  return r->n_fills < LMZ_REPL_MAX_FILLS &&
         r->fill_bytes_inflight < LMZ_REPL_MAX_FILL_BYTES;
}

/* May `node` be filled for this actor now? */
static bool eligible(lmz_repl_t *r, const struct lmz_dir_placement *p,
                     const struct rfill *fills, uint64_t node) {
  if (node == p->node_id || node == r->o.node_id || is_listed(p, node))
    return false;
  for (const struct rfill *f = fills; f; f = f->next)
    if (f->node == node)
      return false;
  struct ostream *s = lmz__repl_out_get(r, node, false);
  /* CLOSED: its PAIR_OUT comes first; retained: it catches up instead */
  return !s || (s->state != OS_CLOSED && !s->retained);
}

/* The best-ranked eligible candidate (rendezvous score, ties: lower id). */
static uint64_t next_ranked(struct scan *sc, const struct lmz_dir_placement *p,
                            const struct rfill *fills, uint64_t key_hash) {
  uint64_t best = 0, best_score = 0;
  for (size_t i = 0; i < sc->n_cand; i++) {
    uint64_t n = sc->cand[i];
    if (n == 0 || !eligible(sc->r, p, fills, n))
      continue;
    uint64_t score = lmz_placement_score(key_hash, n);
    if (best == 0 || score > best_score || (score == best_score && n < best))
      best = n, best_score = score;
  }
  return best;
}

static int scan_cb(const char *binding, size_t blen, const char *instance,
                   size_t ilen, const struct lmz_dir_placement *p, void *arg) {
  struct scan *sc = arg;
  lmz_repl_t *r = sc->r;
  sc->n_actors++;
  uint32_t listed = p->n_backups - note_draining(sc, p);
  if (listed >= sc->want)
    return 0;
  sc->under++;
  char name[LMZ_KEY_BINDING_MAX + LMZ_KEY_INSTANCE_MAX];
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, binding, blen, instance, ilen);
  if (pl < 0)
    return 0;
  memcpy(name, binding, blen);
  memcpy(name + blen, instance, ilen);
  uint64_t h = lmz_placement_key_hash(binding, blen, instance, ilen);
  uint32_t have = listed;
  for (struct rfill *f = lmz__repl_fills_of(r, prefix, (size_t)pl); f;
       f = f->next)
    have++;
  /* A DRAINING owner fills nothing: its actors are about to move, and a
   * FILL still on its way could land on the drain's target after the
   * actor's import there (an older copy over the moved state). */
  while (have < sc->want && budget_left(r) && !sc->self_draining) {
    struct rfill *fills = lmz__repl_fills_of(r, prefix, (size_t)pl);
    uint64_t node = next_ranked(sc, p, fills, h);
    struct ostream *s = node ? lmz__repl_out_get(r, node, true) : NULL;
    if (!s || fill_start(r, s, name, blen, ilen, p->epoch) != 0)
      break;
    have++;
    sc->n_started++;
  }
  return 0; /* keep walking: the count of under-replicated actors */
}

/* Every actor listing the DRAINING `node` has enough other copies: the
 * node leaves our lists (its stream closes, PAIR_OUT). */
static void drain_leave(lmz_repl_t *r, uint64_t node) {
  struct ostream *s = lmz__repl_out_get(r, node, true);
  if (!s || s->state == OS_CLOSED)
    return; /* out of memory: the next scan; CLOSED: PAIR_OUT under way */
  LMZ_LOG_INFO(&lmz__repl_log,
               "repl: node %llu is draining: it leaves our backup lists",
               (unsigned long long)node);
  lmz__repl_retain_drop(r, s);
  if (s->state == OS_OPEN) {
    lmz__repl_out_close(r, s, "draining");
    return;
  }
  s->state = OS_CLOSED; /* IDLE: listed without a stream yet */
  s->closed_ms = r->o.ops.now_ms(r->o.ops.ctx);
  s->pair_out_inflight = false;
  lmz__repl_propose_pair_out(r, s);
}

static void refill_scan(lmz_repl_t *r, uint64_t now) {
  uint64_t *cand = malloc(LMZ_DIR_MAX_NODES * sizeof *cand);
  if (!cand)
    return; /* the next tick tries again (dirty stays set) */
  size_t n = r->o.ops.candidates
                 ? r->o.ops.candidates(r->o.ops.ctx, cand, LMZ_DIR_MAX_NODES)
                 : 0;
  if (n > LMZ_DIR_MAX_NODES)
    n = LMZ_DIR_MAX_NODES;
  size_t others = 0;
  for (size_t i = 0; i < n; i++)
    others += cand[i] != r->o.node_id && cand[i] != 0;
  struct scan sc = {.r = r, .cand = cand, .n_cand = n, .want = r->o.factor - 1};
  sc.self_draining = node_draining(r, r->o.node_id);
  if (others < sc.want)
    sc.want = (uint32_t)others;
  r->scan_barrier = ++r->next_barrier_id;
  lmz_dir_foreach_placement(r->o.dir, r->o.node_id, scan_cb, &sc);
  free(cand);
  for (size_t i = 0; i < sc.n_drain && !sc.drain_full; i++)
    if (!sc.drain[i].needed)
      drain_leave(r, sc.drain[i].node);
  if (sc.n_started)
    barrier_commit(r, r->scan_barrier);
  r->st.under_replicated = sc.under;
  r->refill_dirty = false;
  r->last_refill_ms = now;
  r->last_scan_actors = sc.n_actors;
}

void lmz__repl_fill_tick(lmz_repl_t *r) {
  for (size_t i = 0; i < r->n_fills; i++) {
    struct rfill *f = r->fills[i];
    struct ostream *s = lmz__repl_out_get(r, f->node, false);
    if (f->state == FILL_CATCHING && s && s->acked_seq >= f->last_seq)
      propose_add(r, f); /* a failed proposal, retried */
  }
  if (r->o.factor <= 1)
    return;
  /* A scan walks every actor we own: at most one per `gap` (about 10 us
   * per actor walked last time, so ~2% of the loop at ~200 ns per actor),
   * and without a change only every LMZ_REPL_REFILL_PERIOD_MS. */
  uint64_t now = r->o.ops.now_ms(r->o.ops.ctx);
  uint64_t gap = LMZ_REPL_REFILL_MIN_MS + r->last_scan_actors / 100;
  uint64_t since = now - r->last_refill_ms;
  if (since >= gap && (r->refill_dirty || since >= LMZ_REPL_REFILL_PERIOD_MS))
    refill_scan(r, now);
}
