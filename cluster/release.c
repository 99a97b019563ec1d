/* cluster/release.c - the release queue (see release.h).
 *
 * Items live in one hash map (name -> item) whether queued or in flight;
 * queued ones also sit on a FIFO. A tick takes up to LMZ_RELQ_MAX_BATCH
 * from the FIFO into one batch, encodes one releases command and proposes
 * it; the batch's callback settles its items. */
#include "cluster/release.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.release");

struct lmz_relq_item {
  struct lmz_relq_item *next;
  uint64_t epoch;
  bool in_flight, revive;
  size_t blen, ilen, klen;
  char key[]; /* binding '\0' instance '\0' */
};

struct lmz_relq_batch {
  lmz_dirclient_req_t req;
  lmz_relq *q;
  size_t n;
  struct lmz_relq_item *it[];
};

struct reclaim { /* a revived relay actor is claimed here again */
  lmz_dirclient_req_t req;
};

void lmz_relq_init(lmz_relq *q, lmz_dirclient_t *dc, uint64_t node_id) {
  memset(q, 0, sizeof *q);
  q->dc = dc;
  q->node_id = node_id;
  lmz_hmap_init(&q->items);
}

void lmz_relq_close(lmz_relq *q) {
  if (q->closing)
    return;
  q->closing = true;
  size_t i = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&q->items, &i, &k, &kl, &v)) {
    struct lmz_relq_item *it = v;
    if (!it->in_flight) /* in-flight items belong to their batch */
      free(it);
  }
  lmz_hmap_free(&q->items);
  q->head = q->tail = NULL;
}

static size_t make_key(char *out, const char *b, size_t bl, const char *in,
                       size_t il) {
  memcpy(out, b, bl);
  out[bl] = '\0';
  memcpy(out + bl + 1, in, il);
  out[bl + 1 + il] = '\0';
  return bl + 1 + il;
}

static struct lmz_relq_item *find(const lmz_relq *q, const char *binding,
                                  const char *instance) {
  size_t bl = strlen(binding), il = strlen(instance);
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  if (q->closing || bl > LMZ_DIR_BINDING_MAX || il > LMZ_DIR_INSTANCE_MAX)
    return NULL;
  return lmz_hmap_get(&q->items, key, make_key(key, binding, bl, instance, il));
}

int lmz_relq_add(lmz_relq *q, const char *binding, const char *instance,
                 uint64_t epoch) {
  size_t bl = strlen(binding), il = strlen(instance);
  if (q->closing)
    return LMZ_ECANCELED;
  if (!bl || !il || bl > LMZ_DIR_BINDING_MAX || il > LMZ_DIR_INSTANCE_MAX ||
      !epoch)
    return LMZ_EINVAL;
  struct lmz_relq_item *old = find(q, binding, instance);
  if (old && !old->in_flight) {
    old->epoch = epoch;
    return 0;
  }
  if (q->items.n >= LMZ_RELQ_MAX_QUEUED)
    return LMZ_EOVERLOAD;
  struct lmz_relq_item *it = malloc(sizeof *it + bl + il + 2);
  if (!it)
    return LMZ_ENOMEM;
  *it = (struct lmz_relq_item){.epoch = epoch, .blen = bl, .ilen = il};
  it->klen = make_key(it->key, binding, bl, instance, il);
  if (old) /* in flight with an older epoch: it settles on its own */
    old->revive = false;
  if (lmz_hmap_put(&q->items, it->key, it->klen, it, NULL)) {
    free(it);
    return LMZ_ENOMEM;
  }
  if (q->tail)
    q->tail->next = it;
  else
    q->head = it;
  q->tail = it;
  q->st.queued++;
  return 0;
}

static void unlink_queued(lmz_relq *q, struct lmz_relq_item *it) {
  struct lmz_relq_item **pp = &q->head, *prev = NULL;
  while (*pp && *pp != it) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp)
    return;
  *pp = it->next;
  if (q->tail == it)
    q->tail = prev;
}

int lmz_relq_cancel(lmz_relq *q, const char *binding, const char *instance,
                    bool revive) {
  struct lmz_relq_item *it = find(q, binding, instance);
  if (!it)
    return 0;
  if (it->in_flight) {
    it->revive = it->revive || revive;
    return LMZ_EBUSY;
  }
  /* O(queued): cancels are rare (an actor reactivated within one tick) */
  unlink_queued(q, it);
  lmz_hmap_del(&q->items, it->key, it->klen);
  free(it);
  q->st.cancelled++;
  return 0;
}

bool lmz_relq_pending(const lmz_relq *q, const char *binding,
                      const char *instance) {
  return find(q, binding, instance) != NULL;
}

size_t lmz_relq_n_pending(const lmz_relq *q) { return q->items.n; }

void lmz_relq_get_stats(const lmz_relq *q, struct lmz_relq_stats *st) {
  *st = q->st;
}

/* ---- the batch in flight ------------------------------------------------- */

static void reclaim_done(lmz_dirclient_req_t *req, int status,
                         const struct lmz_dir_item *item) {
  (void)item;
  if (status < 0)
    LMZ_LOG_DEBUG(&log_ns, "re-claim after release: %s", lmz_strerror(status));
  free(lmz_container_of(req, struct reclaim, req));
}

/* A relay actor came back while its release was in flight: claim it here
 * again (idempotent if the release lost to it). */
static void reclaim(lmz_relq *q, const struct lmz_relq_item *it) {
  lmz_buf cmd = LMZ_BUF_INIT;
  struct lmz_dir_claim cl = {it->key, it->blen, it->key + it->blen + 1,
                             it->ilen, q->node_id, lmz_dirclient_next_id(q->dc),
                             LMZ_DIR_CLAIM_REPLACE_DOWN, 0, NULL};
  struct reclaim *rc = calloc(1, sizeof *rc);
  int rv = rc ? lmz_dir_encode_claims(&cmd, &cl, 1) : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_dirclient_propose(q->dc, &rc->req, &cmd, reclaim_done);
  if (rv) {
    free(rc);
    LMZ_LOG_WARN(&log_ns, "re-claim of %s/%s failed: %s", it->key,
                 it->key + it->blen + 1, lmz_strerror(rv));
  }
  lmz_buf_free(&cmd);
  q->st.revived++;
}

static bool outcome_unknown(int status) {
  return status == LMZ_ENOTLEADER || status == LMZ_ETIMEOUT;
}

/* Puts the batch's items back at the head of the FIFO (outcome unknown). */
static void requeue(lmz_relq *q, struct lmz_relq_batch *b) {
  for (size_t i = b->n; i-- > 0;) {
    struct lmz_relq_item *it = b->it[i];
    it->in_flight = false;
    if (lmz_hmap_get(&q->items, it->key, it->klen) != it) {
      free(it); /* re-queued meanwhile with a newer epoch */
      continue;
    }
    it->next = q->head;
    q->head = it;
    if (!q->tail)
      q->tail = it;
  }
  q->st.retried += b->n;
}

static void batch_done(lmz_dirclient_req_t *req, int status,
                       const struct lmz_dir_item *item) {
  (void)item; /* items' own outcomes: ESTALE means a re-claim or move won */
  struct lmz_relq_batch *b = lmz_container_of(req, struct lmz_relq_batch, req);
  lmz_relq *q = b->q;
  if (!q->closing)
    q->flight = NULL;
  if (!q->closing && outcome_unknown(status)) {
    requeue(q, b);
    free(b);
    return;
  }
  for (size_t i = 0; i < b->n; i++) {
    struct lmz_relq_item *it = b->it[i];
    if (!q->closing) {
      if (lmz_hmap_get(&q->items, it->key, it->klen) == it)
        lmz_hmap_del(&q->items, it->key, it->klen);
      if (it->revive)
        reclaim(q, it);
    }
    free(it);
  }
  if (status >= 0)
    q->st.released += b->n;
  else
    q->st.stale += b->n;
  free(b);
}

static int propose_batch(lmz_relq *q, struct lmz_relq_batch *b) {
  struct lmz_dir_release *r = calloc(b->n, sizeof *r);
  if (!r)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < b->n; i++) {
    const struct lmz_relq_item *it = b->it[i];
    r[i] = (struct lmz_dir_release){it->key, it->blen, it->key + it->blen + 1,
                                    it->ilen, q->node_id, it->epoch,
                                    lmz_dirclient_next_id(q->dc)};
  }
  lmz_buf cmd = LMZ_BUF_INIT;
  int rv = lmz_dir_encode_releases(&cmd, r, b->n);
  if (!rv)
    rv = lmz_dirclient_propose(q->dc, &b->req, &cmd, batch_done);
  lmz_buf_free(&cmd);
  free(r);
  return rv;
}

void lmz_relq_tick(lmz_relq *q) {
  if (q->closing || q->flight || !q->head)
    return;
  size_t n = 0;
  for (struct lmz_relq_item *it = q->head; it && n < LMZ_RELQ_MAX_BATCH;
       it = it->next)
    n++;
  struct lmz_relq_batch *b = calloc(1, sizeof *b + n * sizeof b->it[0]);
  if (!b)
    return; /* next tick */
  b->q = q;
  struct lmz_relq_item *it = q->head;
  for (; b->n < n; it = it->next)
    b->it[b->n++] = it;
  int rv = propose_batch(q, b);
  if (rv) { /* no leader yet, or out of memory: the items stay queued */
    LMZ_LOG_DEBUG(&log_ns, "releases not proposed: %s", lmz_strerror(rv));
    free(b);
    return;
  }
  q->head = it;
  if (!it)
    q->tail = NULL;
  for (size_t i = 0; i < b->n; i++) {
    b->it[i]->in_flight = true;
    b->it[i]->next = NULL;
  }
  q->flight = b;
  q->st.proposed += b->n;
  q->st.batches++;
}
