/* cluster/directory_replicas.c - replica sets in the placement directory
 * (directory.h "replica sets", DESIGN.md 4.1): each placement's ordered list
 * of in-sync backups, the commands that change it (claims' backups,
 * BACKUPS_ADD, PAIR_OUT), the failover promotion a MarkDown triggers, and
 * the reads (placement with backups, under-replicated counts).
 *
 * Happy path: lists live inline in the actor entry (LMZ_DIR_MAX_BACKUPS
 * ids, no allocation), so every change is a few word moves in place. The
 * commands that concern a node rather than an actor (PAIR_OUT, the MarkDown
 * failover) walk the actor table once: O(actors), no allocation.
 *
 * Determinism: every per-actor decision reads only that actor's entry and
 * node states, which the walk does not change; epoch_seq is a maximum. So
 * the outcome does not depend on the hash map's iteration order, which can
 * differ between replicas (a restored one was filled in another order).
 *
 * Failure modes:
 *  1. Invalid item fields (names, zero ids, backup == owner) -> LMZ_EINVAL
 *     for that item, the others apply.
 *  2. Stale owner/epoch (the owner moved on meanwhile) -> LMZ_ESTALE; a
 *     backup that is not UP -> LMZ_EUNAVAILABLE; a full list -> LMZ_EBUSY.
 *     Nothing changes for a refused item.
 *  3. An actor whose owner goes DOWN with no backup left that is not DOWN
 *     stays on the DOWN owner (unavailable until it returns, as without
 *     replicas). */
#include <string.h>

#include "cluster/directory_int.h"
#include "core/err.h"

static bool listed(const struct dir_actor *a, uint64_t id) {
  for (uint8_t i = 0; i < a->n_backups; i++)
    if (a->backups[i] == id)
      return true;
  return false;
}

bool lmz__dir_list_remove(struct dir_actor *a, uint64_t id) {
  for (uint8_t i = 0; i < a->n_backups; i++) {
    if (a->backups[i] != id)
      continue;
    memmove(&a->backups[i], &a->backups[i + 1],
            (size_t)(a->n_backups - i - 1) * sizeof a->backups[0]);
    a->n_backups--;
    return true; /* ids are never repeated in a list */
  }
  return false;
}

void lmz__dir_claim_backups(const struct lmz__dir_state *s, struct dir_actor *a,
                            const Lmz__DirClaim *c) {
  a->n_backups = 0;
  if (c->flags & LMZ_DIR_CLAIM_REPLACE_DOWN)
    return; /* stateless: nothing to keep a copy of */
  for (size_t i = 0; i < c->n_backups && a->n_backups < LMZ_DIR_MAX_BACKUPS;
       i++) {
    uint64_t id = c->backups[i];
    const struct lmz_dir_node *n = lmz__dir_node_find(s, id);
    if (id == a->node_id || !n || n->state != LMZ_DIR_UP || listed(a, id))
      continue;
    a->backups[a->n_backups++] = id;
  }
}

static bool in_set(const uint64_t *to, size_t n, uint64_t id) {
  for (size_t i = 0; i < n; i++) /* n: the nodes of a cluster, small */
    if (to[i] == id)
      return true;
  return false;
}

/* The first listed backup that is not DOWN and, with a set, in it; or
 * NULL. */
static struct lmz_dir_node *first_alive(const struct lmz__dir_state *s,
                                        const struct dir_actor *a,
                                        const uint64_t *to, size_t n_to) {
  for (uint8_t i = 0; i < a->n_backups; i++) {
    struct lmz_dir_node *n = lmz__dir_node_find(s, a->backups[i]);
    if (n && n->state != LMZ_DIR_DOWN && (!n_to || in_set(to, n_to, n->id)))
      return n;
  }
  return NULL;
}

void lmz__dir_stale_copies(struct lmz__dir_state *s, uint64_t id) {
  struct lmz_dir_node *n = lmz__dir_node_find(s, id);
  if (n)
    n->stale_copies = true;
}

uint64_t lmz__dir_failover(struct lmz__dir_state *s, uint64_t down,
                           const uint64_t *to, size_t n_to) {
  uint64_t promoted = 0;
  lmz__dir_stale_copies(s, down); /* its copies stay on its disk */
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&s->actors, &it, NULL, NULL, &v)) {
    struct dir_actor *a = v;
    if (a->node_id != down) {
      lmz__dir_list_remove(a, down);
      continue;
    }
    struct lmz_dir_node *dest = first_alive(s, a, to, n_to);
    if (!dest || a->epoch == UINT64_MAX)
      continue; /* stays on the DOWN owner: unavailable, as unreplicated */
    /* The other backups may lack the dead owner's last unacknowledged
     * writes; the new owner refills them (the list starts empty). */
    lmz__dir_actor_move(s, a, dest);
    promoted++;
  }
  return promoted;
}

/* ---- BACKUPS_ADD --------------------------------------------------------- */

static struct lmz_dir_item backup_add_one(struct lmz__dir_state *s,
                                          const Lmz__DirBackupAdd *m) {
  struct lmz_dir_item it = {.request_id = m->request_id};
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, m->binding.data, m->binding.len,
                                 m->instance.data, m->instance.len);
  struct dir_actor *a = kl ? lmz_hmap_get(&s->actors, k, kl) : NULL;
  const struct lmz_dir_node *b = lmz__dir_node_find(s, m->backup);
  const struct lmz_dir_node *o = lmz__dir_node_find(s, m->owner);
  if (!kl || m->owner == 0 || m->backup == 0 || m->backup == m->owner)
    it.status = LMZ_EINVAL;
  else if (!a)
    it.status = LMZ_ENOTFOUND;
  else if (a->node_id != m->owner || a->epoch != m->epoch ||
           !o || o->state == LMZ_DIR_DOWN) /* a fenced owner changes none */
    it.status = LMZ_ESTALE;
  else if (!b || b->state != LMZ_DIR_UP)
    it.status = LMZ_EUNAVAILABLE;
  else if (listed(a, m->backup))
    it.status = LMZ_DIR_EXISTING;
  else if (a->n_backups == LMZ_DIR_MAX_BACKUPS)
    it.status = LMZ_EBUSY;
  else
    a->backups[a->n_backups++] = m->backup; /* LMZ_DIR_PLACED */
  if (it.status >= 0) {
    it.node_id = a->node_id;
    it.epoch = a->epoch;
  }
  return it;
}

int lmz__dir_apply_backups_add(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirBackupAddBatch *b = cmd->backups_add;
  for (size_t i = 0; i < b->n_items; i++)
    d->items[i] = backup_add_one(&d->st, b->items[i]);
  d->res.n = b->n_items;
  return 0;
}

/* ---- PAIR_OUT ------------------------------------------------------------ */

int lmz__dir_apply_pair_out(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirPairOut *p = cmd->pair_out;
  struct lmz_dir_item *it = &d->items[0];
  d->res.n = 1;
  if (p->owner == 0 || p->backup == 0) {
    *it = (struct lmz_dir_item){.status = LMZ_EINVAL,
                                .request_id = p->request_id};
    return 0;
  }
  uint64_t changed = 0;
  const struct lmz_dir_node *owner = lmz__dir_node_find(&d->st, p->owner);
  if (owner && owner->n_actors && p->owner != p->backup)
    lmz__dir_stale_copies(&d->st, p->backup); /* even a node it was
                                                 filling holds a copy */
  size_t iter = 0;
  void *v;
  while (owner && owner->n_actors &&
         lmz_hmap_next(&d->st.actors, &iter, NULL, NULL, &v)) {
    struct dir_actor *a = v;
    if (a->node_id == p->owner && lmz__dir_list_remove(a, p->backup))
      changed++;
  }
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, p->request_id, p->backup,
                              changed};
  return 0;
}

/* ---- reads --------------------------------------------------------------- */

static void placement_of(const struct dir_actor *a,
                         struct lmz_dir_placement *out) {
  out->node_id = a->node_id;
  out->epoch = a->epoch;
  out->n_backups = a->n_backups;
  out->activated = a->activated != 0;
  out->fresh = a->fresh != 0;
  memset(out->backups, 0, sizeof out->backups);
  memcpy(out->backups, a->backups, a->n_backups * sizeof a->backups[0]);
}

int lmz_dir_placement_get(const lmz_dir_t *d, const void *binding, size_t blen,
                          const void *instance, size_t ilen,
                          struct lmz_dir_placement *out) {
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, binding, blen, instance, ilen);
  if (!kl)
    return LMZ_EINVAL;
  const struct dir_actor *a = lmz_hmap_get(&d->st.actors, k, kl);
  if (!a)
    return LMZ_ENOTFOUND;
  placement_of(a, out);
  return 0;
}

int lmz_dir_foreach_placement(const lmz_dir_t *d, uint64_t node_id,
                              lmz_dir_placement_fn fn, void *arg) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&d->st.actors, &it, NULL, NULL, &v)) {
    const struct dir_actor *a = v;
    if (node_id && a->node_id != node_id)
      continue;
    struct lmz_dir_placement p;
    placement_of(a, &p);
    uint8_t blen = a->key[0];
    int rv = fn((const char *)a->key + 1, blen, (const char *)a->key + 1 + blen,
                (size_t)a->klen - 1 - blen, &p, arg);
    if (rv)
      return rv;
  }
  return 0;
}

uint64_t lmz_dir_count_under_replicated(const lmz_dir_t *d, uint64_t node_id,
                                        uint32_t want) {
  if (want > LMZ_DIR_MAX_BACKUPS)
    want = LMZ_DIR_MAX_BACKUPS;
  if (want == 0)
    return 0;
  uint64_t n = 0;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&d->st.actors, &it, NULL, NULL, &v)) {
    const struct dir_actor *a = v;
    if ((!node_id || a->node_id == node_id) && a->n_backups < want)
      n++;
  }
  return n;
}
