/* cluster/activation.c - activation marks (owner) and the re-placement of
 * never-activated placements of silent nodes (leader); see activation.h.
 *
 * Happy path, owner: the router asks for a mark -> an entry QUEUED in the
 * hash -> the next tick proposes every queued entry as one DirActivated
 * command (FLIGHT) -> its answer makes them SENT -> a later tick finds the
 * placement activated in the local replica and drops the entry; the router
 * (woken, or on its own tick) routes the parked calls, which now run.
 * Happy path, leader: a node stops renewing -> after L/2 the watch finds
 * it not current with n_unactivated > 0 -> one DirReplace batch of its
 * unactivated placements to live candidates.
 *
 * Failure modes:
 *  1. the mark batch fails or is refused (no leader, timeout, a first item
 *     that lost to a re-placement): its entries are QUEUED again; an entry
 *     whose placement moved (or was activated) in the local replica is
 *     dropped by the next tick, whatever its state, except while FLIGHT;
 *  2. a mark answered but not applied here within LMZ_DIRCLIENT_TIMEOUT_MS
 *     (the answer came from another leader's log that lost it): proposed
 *     again;
 *  3. a re-placement batch fails or items are refused (the owner renewed,
 *     marked meanwhile, the target left): nothing moved for them; the next
 *     watch looks again from the directory;
 *  4. too many marks waiting (LMZ_ACT_MAX_PENDING): refused, the router
 *     keeps the call parked and asks again. */
#include "cluster/activation.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/placement.h"
#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.activation");

/* CONFIRMED: the leader answered success for this very item (a batch of
 * one): the mark is committed, so the placement cannot be re-placed at
 * that epoch any more; the router may run it before the replica shows it. */
enum mark_state { QUEUED, FLIGHT, SENT, CONFIRMED };

struct lmz_act_mark {
  uint64_t epoch;
  uint64_t sent_ms;
  enum mark_state state;
  size_t blen, klen; /* key = binding NUL instance */
  char key[];
};

void lmz_act_init(lmz_act *a, const struct lmz_act_options *o) {
  *a = (lmz_act){.o = *o};
  lmz_hmap_init(&a->marks);
  a->mark_req.data = a->replace_req.data = a;
}

static void marks_free(lmz_act *a) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&a->marks, &it, NULL, NULL, &v))
    free(v);
  lmz_hmap_free(&a->marks);
  lmz_hmap_init(&a->marks);
}

void lmz_act_close(lmz_act *a) {
  a->closing = true;
  marks_free(a);
}

static void marks_propose(lmz_act *a);

int lmz_act_request(lmz_act *a, const char *binding, const char *instance,
                    uint64_t epoch) {
  if (a->closing)
    return LMZ_ECANCELED;
  size_t bl = strlen(binding), il = strlen(instance);
  if (bl == 0 || bl > LMZ_DIR_BINDING_MAX || il > LMZ_DIR_INSTANCE_MAX)
    return LMZ_EINVAL;
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  memcpy(key, binding, bl + 1);
  memcpy(key + bl + 1, instance, il);
  size_t kl = bl + 1 + il;
  struct lmz_act_mark *m = lmz_hmap_get(&a->marks, key, kl);
  if (m) {
    if (m->state == QUEUED)
      m->epoch = epoch; /* the newest placement we were asked about */
    return 0;
  }
  if (a->marks.n >= LMZ_ACT_MAX_PENDING)
    return LMZ_EOVERLOAD;
  if (!(m = malloc(sizeof *m + kl)))
    return LMZ_ENOMEM;
  *m = (struct lmz_act_mark){epoch, 0, QUEUED, bl, kl};
  memcpy(m->key, key, kl);
  if (lmz_hmap_put(&a->marks, m->key, kl, m, NULL)) {
    free(m);
    return LMZ_ENOMEM;
  }
  a->st.requested++;
  if (!a->mark_flight)
    marks_propose(a); /* at once when idle; batched behind a flight */
  return 0;
}

bool lmz_act_confirmed(const lmz_act *a, const char *binding,
                       const char *instance, uint64_t epoch) {
  size_t bl = strlen(binding), il = strlen(instance);
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  if (bl == 0 || bl > LMZ_DIR_BINDING_MAX || il > LMZ_DIR_INSTANCE_MAX)
    return false;
  memcpy(key, binding, bl + 1);
  memcpy(key + bl + 1, instance, il);
  const struct lmz_act_mark *m = lmz_hmap_get(&a->marks, key, bl + 1 + il);
  return m && m->state == CONFIRMED && m->epoch == epoch;
}

/* ---- owner: marks ---------------------------------------------------------- */

static void mark_done(lmz_dirclient_req_t *req, int status,
                      const struct lmz_dir_item *item) {
  lmz_act *a = req->data;
  bool one = a->flight_n == 1 && item; /* the answer is this item's */
  a->mark_flight = false;
  if (a->closing)
    return;
  uint64_t now = a->o.dc->o.ops.now_ms(a->o.dc->o.ops_ctx);
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&a->marks, &it, NULL, NULL, &v)) {
    struct lmz_act_mark *m = v;
    if (m->state != FLIGHT)
      continue;
    m->state = status < 0                         ? QUEUED
               : one && item->epoch == m->epoch ? CONFIRMED
                                                : SENT;
    m->sent_ms = now;
  }
  if (status < 0)
    LMZ_LOG_DEBUG(&log_ns, "activation marks not committed: %s",
                  lmz_strerror(status));
  if (a->o.wake)
    a->o.wake(a->o.ctx);
  if (!a->closing && !a->mark_flight && status >= 0)
    marks_propose(a); /* what queued meanwhile (a failure waits a tick) */
}

/* Drops what the local replica settled; re-queues late answers. Returns
 * how many are QUEUED. */
static size_t marks_sweep(lmz_act *a, uint64_t now) {
  size_t it = 0, queued = 0;
  void *v;
  while (lmz_hmap_next(&a->marks, &it, NULL, NULL, &v)) {
    struct lmz_act_mark *m = v;
    if (m->state == FLIGHT)
      continue;
    struct lmz_dir_placement p;
    int rv = lmz_dir_placement_get(a->o.dir, m->key, m->blen,
                                   m->key + m->blen + 1,
                                   m->klen - m->blen - 1, &p);
    if (rv || p.node_id != a->o.node_id || p.epoch != m->epoch ||
        p.activated) {
      lmz_hmap_del(&a->marks, m->key, m->klen);
      free(m);
      continue;
    }
    if (m->state == SENT && now - m->sent_ms >= LMZ_DIRCLIENT_TIMEOUT_MS)
      m->state = QUEUED;
    queued += m->state == QUEUED;
  }
  return queued;
}

/* Every entry in `from` state goes to `to`. */
static void marks_set(lmz_act *a, enum mark_state from, enum mark_state to) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&a->marks, &it, NULL, NULL, &v)) {
    struct lmz_act_mark *m = v;
    if (m->state == from)
      m->state = to;
  }
}

static bool any_queued(const lmz_act *a) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&a->marks, &it, NULL, NULL, &v))
    if (((struct lmz_act_mark *)v)->state == QUEUED)
      return true;
  return false;
}

static void marks_propose(lmz_act *a) {
  if (!any_queued(a))
    return;
  struct lmz_dir_activated *items =
      malloc(LMZ_ACT_MAX_BATCH * sizeof *items);
  if (!items)
    return; /* next tick */
  lmz_dirclient_t *dc = a->o.dc;
  size_t n = 0, it = 0;
  void *v;
  while (n < LMZ_ACT_MAX_BATCH &&
         lmz_hmap_next(&a->marks, &it, NULL, NULL, &v)) {
    struct lmz_act_mark *m = v;
    if (m->state != QUEUED)
      continue;
    m->state = FLIGHT;
    items[n++] = (struct lmz_dir_activated){
        m->key, m->blen, m->key + m->blen + 1, m->klen - m->blen - 1,
        a->o.node_id, m->epoch, lmz_dirclient_next_id(dc)};
  }
  lmz_buf b = LMZ_BUF_INIT;
  int rv = n ? lmz_dir_encode_activated(&b, items, n) : LMZ_EINVAL;
  if (!rv)
    rv = lmz_dirclient_propose(dc, &a->mark_req, &b, mark_done);
  lmz_buf_free(&b);
  free(items);
  if (rv) {
    marks_set(a, FLIGHT, QUEUED); /* the next tick tries again */
    return;
  }
  a->mark_flight = true;
  a->flight_n = n;
  a->st.mark_batches++;
  a->st.marks_proposed += n;
}

/* ---- leader: re-placement of silent nodes' unactivated placements ------- */

struct replace_walk {
  const uint64_t *silent, *cand;
  size_t n_silent, n_cand, n;
  struct lmz_dir_replace *items;
  lmz_dirclient_t *dc;
};

static bool in_list(const uint64_t *ids, size_t n, uint64_t id) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] == id)
      return true;
  return false;
}

static int replace_visit(const char *binding, size_t blen,
                         const char *instance, size_t ilen,
                         const struct lmz_dir_placement *p, void *arg) {
  struct replace_walk *w = arg;
  if (p->activated || !in_list(w->silent, w->n_silent, p->node_id))
    return 0;
  uint64_t to = 0;
  if (lmz_placement_choose(LMZ_PLACEMENT_HASH, w->cand, w->n_cand, 0, binding,
                           blen, instance, ilen, &to) || to == p->node_id)
    return 0;
  w->items[w->n++] = (struct lmz_dir_replace){
      binding, blen, instance, ilen, p->node_id, to, p->epoch,
      lmz_dirclient_next_id(w->dc)};
  return w->n == LMZ_ACT_MAX_BATCH; /* the rest: next watch */
}

static void replace_done(lmz_dirclient_req_t *req, int status,
                         const struct lmz_dir_item *item) {
  lmz_act *a = req->data;
  a->replace_flight = false;
  if (a->closing)
    return;
  if (status >= 0 && item) {
    a->st.replaced += a->replace_n;
    LMZ_LOG_WARN(&log_ns, "re-placed %zu never-activated actor(s) of silent "
                 "node(s) (the first now on node %llu, epoch %llu)",
                 a->replace_n, (unsigned long long)item->node_id,
                 (unsigned long long)item->epoch);
  } else {
    a->st.replace_failed++;
    LMZ_LOG_DEBUG(&log_ns, "re-placement batch: %s", lmz_strerror(status));
  }
}

/* Nodes (not us) whose renewals are not current and that own unactivated
 * placements. */
static size_t silent_nodes(const lmz_act *a, uint64_t now, uint64_t *out) {
  size_t k = 0;
  for (size_t i = 0; i < lmz_dir_n_nodes(a->o.dir); i++) {
    const struct lmz_dir_node *n = lmz_dir_node_at(a->o.dir, i);
    uint32_t l = n->lease_ms ? n->lease_ms : a->o.lease.duration_ms;
    if (n->id != a->o.node_id && n->n_unactivated > 0 &&
        !lmz_lease_is_current(n->heard_ms, l, now))
      out[k++] = n->id;
  }
  return k;
}

static void replace_watch(lmz_act *a, uint64_t now) {
  lmz_dirclient_t *dc = a->o.dc;
  if (a->replace_flight || now < a->next_watch_ms ||
      !dc->o.ops.is_serving(dc->o.ops_ctx))
    return;
  uint32_t every = a->o.lease.margin_ms / 2 ? a->o.lease.margin_ms / 2 : 1;
  a->next_watch_ms = now + every;
  uint64_t silent[LMZ_DIR_MAX_NODES], cand[LMZ_DIR_MAX_NODES];
  struct replace_walk w = {silent, cand, silent_nodes(a, now, silent), 0, 0,
                           NULL, dc};
  if (!w.n_silent || !a->o.candidates)
    return;
  w.n_cand = a->o.candidates(a->o.ctx, now, cand, LMZ_DIR_MAX_NODES);
  if (w.n_cand > LMZ_DIR_MAX_NODES)
    w.n_cand = LMZ_DIR_MAX_NODES;
  if (!w.n_cand || !(w.items = malloc(LMZ_ACT_MAX_BATCH * sizeof *w.items)))
    return;
  lmz_dir_foreach_placement(a->o.dir, w.n_silent == 1 ? silent[0] : 0,
                            replace_visit, &w);
  lmz_buf b = LMZ_BUF_INIT;
  int rv = w.n ? lmz_dir_encode_replaces(&b, w.items, w.n) : LMZ_EINVAL;
  if (!rv)
    rv = lmz_dirclient_propose(dc, &a->replace_req, &b, replace_done);
  lmz_buf_free(&b);
  free(w.items);
  if (!rv) {
    a->replace_flight = true;
    a->replace_n = w.n;
    a->st.replace_batches++;
  }
}

void lmz_act_tick(lmz_act *a, uint64_t now) {
  if (a->closing)
    return;
  if (a->marks.n && marks_sweep(a, now) && !a->mark_flight)
    marks_propose(a);
  replace_watch(a, now);
}

size_t lmz_act_n_pending(const lmz_act *a) { return a->marks.n; }

void lmz_act_get_stats(const lmz_act *a, struct lmz_act_stats *st) {
  *st = a->st;
}
