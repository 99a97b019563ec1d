/* cluster/directory_activation.c - activation marks and the re-placement
 * of never-activated placements in the placement directory (directory.h
 * "activation"; issue 15 item 3).
 *
 * Happy path: an owner's DirActivated batch sets the flag of each named
 * placement it still owns at that epoch; a leader's DirReplace batch moves
 * each named placement that is still not activated (and still on the silent
 * owner at the epoch the leader saw) to a live node, epoch + 1. One hash
 * probe per item, no allocation.
 *
 * Failure modes (per item; the other items still apply):
 *  1. invalid names or zero ids -> LMZ_EINVAL;
 *  2. unknown actor -> LMZ_ENOTFOUND; owner or epoch moved on -> LMZ_ESTALE
 *     (a mark that lost to a re-placement: the owner must not run it);
 *  3. a mark from a DOWN owner -> LMZ_EUNAVAILABLE (a fenced node pins
 *     nothing); a re-placement of an activated placement -> LMZ_EBUSY (it
 *     may hold acknowledged state: only its owner or a failover moves it);
 *     a target that is not UP -> LMZ_EUNAVAILABLE. */
#include <stdint.h>
#include <stdlib.h>

#include "cluster/directory_int.h"
#include "core/err.h"

void lmz__dir_set_activated(struct lmz__dir_state *s, struct dir_actor *a,
                            bool on) {
  if ((a->activated != 0) == on)
    return;
  struct lmz_dir_node *owner = lmz__dir_node_find(s, a->node_id);
  LMZ_ASSERT(owner);
  if (on) {
    LMZ_ASSERT(owner->n_unactivated > 0);
    owner->n_unactivated--;
  } else {
    owner->n_unactivated++;
  }
  a->activated = on;
}

static struct dir_actor *find(struct lmz__dir_state *s, ProtobufCBinaryData b,
                              ProtobufCBinaryData i, bool *bad) {
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, b.data, b.len, i.data, i.len);
  *bad = kl == 0;
  return kl ? lmz_hmap_get(&s->actors, k, kl) : NULL;
}

static struct lmz_dir_item mark_one(struct lmz__dir_state *s,
                                    const Lmz__DirActivated *m) {
  struct lmz_dir_item it = {.request_id = m->request_id};
  bool bad;
  struct dir_actor *a = find(s, m->binding, m->instance, &bad);
  const struct lmz_dir_node *o = lmz__dir_node_find(s, m->node_id);
  if (bad || m->node_id == 0 || m->epoch == 0)
    it.status = LMZ_EINVAL;
  else if (!a)
    it.status = LMZ_ENOTFOUND;
  else if (a->node_id != m->node_id || a->epoch != m->epoch)
    it.status = LMZ_ESTALE;
  else if (!o || o->state == LMZ_DIR_DOWN)
    it.status = LMZ_EUNAVAILABLE;
  else
    it.status = a->activated ? LMZ_DIR_EXISTING : LMZ_DIR_PLACED;
  if (it.status >= 0) {
    lmz__dir_set_activated(s, a, true);
    it.node_id = a->node_id;
    it.epoch = a->epoch;
  }
  return it;
}

int lmz__dir_apply_activated(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirActivatedBatch *b = cmd->activated;
  for (size_t i = 0; i < b->n_items; i++)
    d->items[i] = mark_one(&d->st, b->items[i]);
  d->res.n = b->n_items;
  return 0;
}

static struct lmz_dir_item replace_one(struct lmz__dir_state *s,
                                       const Lmz__DirReplace *r) {
  struct lmz_dir_item it = {.request_id = r->request_id};
  bool bad;
  struct dir_actor *a = find(s, r->binding, r->instance, &bad);
  struct lmz_dir_node *to = lmz__dir_node_find(s, r->to_node);
  if (bad || r->from_node == 0 || r->to_node == 0 ||
      r->from_node == r->to_node)
    it.status = LMZ_EINVAL;
  else if (!a)
    it.status = LMZ_ENOTFOUND;
  else if (a->node_id != r->from_node || a->epoch != r->expected_epoch)
    it.status = LMZ_ESTALE;
  else if (a->activated)
    it.status = LMZ_EBUSY;
  else if (!to || to->state != LMZ_DIR_UP)
    it.status = LMZ_EUNAVAILABLE;
  else if (a->epoch == UINT64_MAX)
    it.status = LMZ_ETOOBIG;
  if (it.status < 0)
    return it;
  uint8_t fresh = a->fresh;
  struct lmz_dir_node *from = lmz__dir_node_find(s, a->node_id);
  bool stale = from->stale_copies;     /* found: a->node_id == from_node */
  lmz__dir_actor_move(s, a, to); /* leaves it activated and not fresh ... */
  lmz__dir_set_activated(s, a, false); /* ... but nothing ran: still not */
  a->fresh = fresh;                    /* and nothing was written, */
  from->stale_copies = stale;          /* not on the node it leaves */
  it.status = LMZ_DIR_PLACED;
  it.node_id = a->node_id;
  it.epoch = a->epoch;
  return it;
}

int lmz__dir_apply_replaces(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirReplaceBatch *b = cmd->replaces;
  for (size_t i = 0; i < b->n_items; i++)
    d->items[i] = replace_one(&d->st, b->items[i]);
  d->res.n = b->n_items;
  return 0;
}

/* ---- encoders ------------------------------------------------------------- */

static ProtobufCBinaryData bin(const void *p, size_t n) {
  return (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)p};
}

int lmz_dir_encode_activated(lmz_buf *out, const struct lmz_dir_activated *a,
                             size_t n) {
  Lmz__DirActivated *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(a[i].binding, a[i].blen, a[i].instance, a[i].ilen))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirActivated)LMZ__DIR_ACTIVATED__INIT;
    m[i].binding = bin(a[i].binding, a[i].blen);
    m[i].instance = bin(a[i].instance, a[i].ilen);
    m[i].node_id = a[i].node_id;
    m[i].epoch = a[i].epoch;
    m[i].request_id = a[i].request_id;
  }
  Lmz__DirActivatedBatch b = LMZ__DIR_ACTIVATED_BATCH__INIT;
  b.n_items = n;
  b.items = (Lmz__DirActivated **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_ACTIVATED;
  cmd.activated = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}

int lmz_dir_encode_replaces(lmz_buf *out, const struct lmz_dir_replace *r,
                            size_t n) {
  Lmz__DirReplace *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(r[i].binding, r[i].blen, r[i].instance, r[i].ilen))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirReplace)LMZ__DIR_REPLACE__INIT;
    m[i].binding = bin(r[i].binding, r[i].blen);
    m[i].instance = bin(r[i].instance, r[i].ilen);
    m[i].from_node = r[i].from_node;
    m[i].to_node = r[i].to_node;
    m[i].expected_epoch = r[i].expected_epoch;
    m[i].request_id = r[i].request_id;
  }
  Lmz__DirReplaceBatch b = LMZ__DIR_REPLACE_BATCH__INIT;
  b.n_items = n;
  b.items = (Lmz__DirReplace **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_REPLACES;
  cmd.replaces = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}
