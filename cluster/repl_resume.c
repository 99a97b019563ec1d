/* cluster/repl_resume.c - catch-up of a backup that returns (DESIGN.md 4.1,
 * cluster/repl.h CATCH-UP), owner side.
 *
 * Happy path: a stream closes for a link loss or lag; lmz__repl_retain()
 * keeps its unacknowledged records and notes the actors that list the node
 * (the RESUME set). PAIR_OUT delists the node as usual, so the gate never
 * waits for it, but ship keeps queueing those actors' batches on the
 * retained stream. When the node is reachable again (and the PAIR_OUT
 * committed), lmz__repl_resume_tick() reopens the same generation from the
 * last acknowledged sequence and gives each resume actor a CATCHING fill:
 * BACKUPS_ADD once the node acknowledged every record queued so far.
 *
 * Failure modes (each gives retention up: records and set freed, the refill
 * then sends each actor's range afresh):
 *  1. More than retention_bytes kept, more than LMZ_REPL_MAX_RESUME actors,
 *     a FILL placeholder not yet exported among the records, or out of
 *     memory while noting the set.
 *  2. At resumption, a kept record's actor is no longer ours at the epoch
 *     it was shipped with (moved, failed over, released): its record must
 *     not reach the node, whose copy may now come from the new owner. Or
 *     the node is no longer UP (DRAINING: it is to back up nothing).
 *  3. The backup lost its store (or its stream state): it refuses the
 *     resumed generation (a sequence gap); the stream closes for good.
 * A resume actor whose placement changed meanwhile simply gets no CATCHING
 * fill (the refill decides about it afresh). */
#include <stdlib.h>
#include <string.h>

#include "cluster/repl_int.h"
#include "core/err.h"

void lmz__repl_resume_clear(struct ostream *s) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&s->resume, &it, &k, &kl, &v)) {
    lmz_hmap_del(&s->resume, k, kl);
    free(v);
  }
  lmz_hmap_free(&s->resume);
  lmz_hmap_init(&s->resume);
  s->n_resume = 0;
}

void lmz__repl_retain_drop(lmz_repl_t *r, struct ostream *s) {
  if (!s->retained)
    return;
  LMZ_LOG_INFO(&lmz__repl_log,
               "repl: node %llu: retention given up (%llu records); its "
               "actors are refilled",
               (unsigned long long)s->node, (unsigned long long)s->n_unacked);
  lmz__repl_resume_clear(s);
  lmz__repl_out_free_records(s);
  s->retained = false;
  r->refill_dirty = true;
}

struct note {
  struct ostream *s;
  int rv;
};

static int note_cb(const char *binding, size_t blen, const char *instance,
                   size_t ilen, const struct lmz_dir_placement *p, void *arg) {
  struct note *n = arg;
  bool listed = false;
  for (uint32_t i = 0; i < p->n_backups && i < LMZ_DIR_MAX_BACKUPS; i++)
    listed |= p->backups[i] == n->s->node;
  if (!listed)
    return 0;
  if (n->s->n_resume == LMZ_REPL_MAX_RESUME)
    return n->rv = LMZ_ETOOBIG;
  struct rresume *a = calloc(1, sizeof *a + blen + ilen);
  int pl = a ? lmz_key_actor_prefix(a->prefix, binding, blen, instance, ilen)
             : LMZ_ENOMEM;
  if (pl < 0 || lmz_hmap_put(&n->s->resume, a->prefix, (size_t)pl, a, NULL)) {
    free(a);
    return n->rv = pl < 0 ? pl : LMZ_ENOMEM;
  }
  a->plen = (size_t)pl;
  a->epoch = p->epoch;
  a->blen = blen;
  a->ilen = ilen;
  memcpy(a->name, binding, blen);
  memcpy(a->name + blen, instance, ilen);
  n->s->n_resume++;
  return 0;
}

bool lmz__repl_retain(lmz_repl_t *r, struct ostream *s) {
  if (r->retention_bytes == UINT64_MAX || s->unacked_bytes > r->retention_bytes)
    return false;
  for (const struct rrec *rec = s->head; rec; rec = rec->next)
    if (!rec->ready)
      return false; /* a fill's dump not taken yet: it is aborted */
  s->retained = true;
  struct note n = {s, 0};
  lmz_dir_foreach_placement(r->o.dir, r->o.node_id, note_cb, &n);
  if (n.rv) {
    lmz__repl_resume_clear(s);
    s->retained = false;
    return false;
  }
  s->unsent = s->head; /* all of them again, from the last ack */
  s->sent_seq = s->acked_seq;
  LMZ_LOG_INFO(&lmz__repl_log,
               "repl: node %llu: %llu records and %zu actors kept for its "
               "return",
               (unsigned long long)s->node, (unsigned long long)s->n_unacked,
               s->n_resume);
  return true;
}

bool lmz__repl_retained_wants(const struct ostream *s, const uint8_t *prefix,
                              size_t plen, uint64_t epoch) {
  const struct rresume *a = lmz_hmap_get(&s->resume, prefix, plen);
  return a && a->epoch == epoch;
}

/* Failure mode 2: every kept record's actor still ours at its epoch. */
static bool records_still_ours(lmz_repl_t *r, const struct ostream *s) {
  for (const struct rrec *rec = s->head; rec; rec = rec->next) {
    struct lmz_dir_placement p;
    if (lmz_dir_placement_get(r->o.dir, rec->name, rec->blen,
                              rec->name + rec->blen, rec->ilen, &p) != 0 ||
        p.node_id != r->o.node_id || p.epoch != rec->epoch)
      return false;
  }
  return true;
}

/* Reopens the generation and starts the CATCHING fills. */
static void resume(lmz_repl_t *r, struct ostream *s) {
  const struct lmz_dir_node *n = lmz_dir_node_get(r->o.dir, s->node);
  if (!n || n->state != LMZ_DIR_UP || !records_still_ours(r, s)) {
    lmz__repl_retain_drop(r, s);
    return;
  }
  s->state = OS_OPEN;
  size_t it = 0, n_fills = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&s->resume, &it, &k, &kl, &v)) {
    const struct rresume *a = v;
    struct lmz_dir_placement p;
    bool listed = false;
    int rv = lmz_dir_placement_get(r->o.dir, a->name, a->blen,
                                   a->name + a->blen, a->ilen, &p);
    for (uint32_t i = 0; rv == 0 && i < p.n_backups; i++)
      listed |= p.backups[i] == s->node;
    if (rv == 0 && p.node_id == r->o.node_id && p.epoch == a->epoch &&
        !listed && p.n_backups + 1 < r->o.factor &&
        lmz__repl_fill_resume(r, s, a) == 0)
      n_fills++;
  }
  LMZ_LOG_INFO(&lmz__repl_log,
               "repl: node %llu is back: its stream resumes after seq %llu "
               "(%llu records again), %zu actors catching up",
               (unsigned long long)s->node, (unsigned long long)s->acked_seq,
               (unsigned long long)s->n_unacked, n_fills);
  lmz__repl_resume_clear(s);
  s->retained = false;
  r->refill_dirty = true;
}

/* Whether `node` is in the placement candidate set (UP, a current lease,
 * connected): a partitioned or paused node is not resumed (its CATCHING
 * fills would hold the gate of its actors until lag closed it again). */
static bool is_candidate(lmz_repl_t *r, uint64_t node) {
  if (!r->o.ops.candidates)
    return true;
  uint64_t *cand = malloc(LMZ_DIR_MAX_NODES * sizeof *cand);
  if (!cand)
    return false;
  size_t n = r->o.ops.candidates(r->o.ops.ctx, cand, LMZ_DIR_MAX_NODES);
  bool found = false;
  for (size_t i = 0; i < n && i < LMZ_DIR_MAX_NODES; i++)
    found |= cand[i] == node;
  free(cand);
  return found;
}

void lmz__repl_resume_tick(lmz_repl_t *r) {
  uint64_t now = r->o.ops.now_ms(r->o.ops.ctx);
  for (size_t i = 0; i < r->n_out; i++) {
    struct ostream *s = r->out[i];
    if (s->retained && s->state == OS_IDLE && !s->link_down &&
        now - s->closed_ms >= LMZ_REPL_RESUME_MIN_MS &&
        is_candidate(r, s->node))
      resume(r, s);
  }
}
