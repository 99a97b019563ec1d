/* cluster/directory.c - the placement directory state machine (see
 * directory.h for the state, the commands and the snapshot format).
 *
 * Happy path (apply): the command bytes are unpacked by protobuf-c into a
 * bump arena (reset after every apply, so a batch of thousands of claims
 * costs no malloc per claim), dispatched through a small handler table, and
 * every item is applied in order with one hash-map probe. Actor entries
 * (node, epoch, key bytes inline) are bump-allocated from 256 KiB chunks;
 * the hash map's keys point into them. Results go into an item array the
 * directory keeps between applies.
 *
 * Failure modes:
 *  1. Undecodable bytes, missing body, wrong version -> command-level
 *     LMZ_EBADMSG / LMZ_EBADVERSION, state untouched.
 *  2. Invalid item fields (lengths, zero ids, unknown states) -> that item's
 *     status is LMZ_EINVAL; the other items still apply.
 *  3. Out of memory while growing a table -> LMZ_ENOMEM for the command;
 *     items before stay applied (re-applying converges, directory.h).
 *  4. Released entries leave holes in the chunks: once the holes outweigh
 *     the live bytes (and exceed 1 MiB) the entries are copied into fresh
 *     chunks (O(live), amortized against the releases); if that copy cannot
 *     get memory it is simply skipped.
 *  5. Hostile snapshots: parsed completely into a scratch state first;
 *     any inconsistency frees the scratch state and keeps the old one. */
#include "cluster/directory.h"

#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cluster/directory_int.h"
#include "cluster/lease.h"
#include "core/err.h"
#include "core/hash.h"
#include "core/hmap.h"

#define CHUNK_SIZE (256u * 1024)
#define COMPACT_MIN (1u << 20)

struct lmz__dir_ent_chunk {
  struct lmz__dir_ent_chunk *next;
  size_t used, cap;
  alignas(8) unsigned char data[];
};

/* ---- actor entries -------------------------------------------------------- */

static size_t actor_size(size_t klen) {
  return (offsetof(struct dir_actor, key) + klen + 7) & ~(size_t)7;
}

static struct dir_actor *actor_alloc(struct lmz__dir_state *s, size_t klen) {
  size_t sz = actor_size(klen);
  struct lmz__dir_ent_chunk *c = s->chunks;
  if (!c || c->cap - c->used < sz) {
    c = malloc(sizeof *c + CHUNK_SIZE);
    if (!c)
      return NULL;
    c->used = 0;
    c->cap = CHUNK_SIZE;
    c->next = s->chunks;
    s->chunks = c;
  }
  struct dir_actor *a = (struct dir_actor *)(void *)(c->data + c->used);
  c->used += sz;
  s->live_bytes += sz;
  return a;
}

static void chunks_free(struct lmz__dir_ent_chunk *c) {
  while (c) {
    struct lmz__dir_ent_chunk *n = c->next;
    free(c);
    c = n;
  }
}

static void state_free(struct lmz__dir_state *s) {
  free(s->nodes);
  lmz_hmap_free(&s->actors);
  chunks_free(s->chunks);
  memset(s, 0, sizeof *s);
}

/* Copies every live entry into fresh chunks and repoints the map at them
 * (lmz_hmap_put on an existing key only swaps the key pointer: no rehash,
 * cannot fail). Skipped when memory is short: the holes just stay. */
static void state_compact(struct lmz__dir_state *s) {
  struct lmz__dir_state fresh = {0};
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&s->actors, &it, NULL, NULL, &v)) {
    struct dir_actor *a = v;
    if (!actor_alloc(&fresh, a->klen)) {
      chunks_free(fresh.chunks);
      return;
    }
  }
  /* Second pass fills the chunks in the same order they were sized. */
  struct lmz__dir_ent_chunk *order = NULL;
  while (fresh.chunks) { /* reverse: allocation order */
    struct lmz__dir_ent_chunk *c = fresh.chunks;
    fresh.chunks = c->next;
    c->next = order;
    order = c;
  }
  struct lmz__dir_ent_chunk *c = order;
  size_t off = 0;
  it = 0;
  while (lmz_hmap_next(&s->actors, &it, NULL, NULL, &v)) {
    struct dir_actor *a = v;
    size_t sz = actor_size(a->klen);
    if (off + sz > c->used) {
      c = c->next;
      off = 0;
    }
    struct dir_actor *b = (struct dir_actor *)(void *)(c->data + off);
    memcpy(b, a, offsetof(struct dir_actor, key) + a->klen);
    off += sz;
    LMZ_ASSERT(lmz_hmap_put(&s->actors, b->key, b->klen, b, NULL) == 0);
  }
  struct lmz__dir_ent_chunk *rev = NULL; /* back to newest-first */
  while (order) {
    struct lmz__dir_ent_chunk *n = order->next;
    order->next = rev;
    rev = order;
    order = n;
  }
  chunks_free(s->chunks);
  s->chunks = rev;
  s->live_bytes = fresh.live_bytes;
  s->dead_bytes = 0;
  s->compactions++;
}

static void maybe_compact(struct lmz__dir_state *s) {
  if (s->dead_bytes > COMPACT_MIN && s->dead_bytes > s->live_bytes)
    state_compact(s);
}

/* ---- nodes ---------------------------------------------------------------- */

/* Index of id in the sorted array, or of where it would go (*found = 0). */
static size_t node_pos(const struct lmz__dir_state *s, uint64_t id,
                       bool *found) {
  size_t lo = 0, hi = s->n_nodes;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (s->nodes[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = lo < s->n_nodes && s->nodes[lo].id == id;
  return lo;
}

struct lmz_dir_node *lmz__dir_node_find(const struct lmz__dir_state *s,
                                        uint64_t id) {
  bool found;
  size_t i = node_pos(s, id, &found);
  return found ? &s->nodes[i] : NULL;
}

/* Inserts a zeroed node with `id` (absent). NULL on LMZ_ENOMEM. */
static struct lmz_dir_node *node_insert(struct lmz__dir_state *s, uint64_t id) {
  bool found;
  size_t i = node_pos(s, id, &found);
  if (s->n_nodes == s->cap_nodes) {
    size_t ncap = s->cap_nodes ? s->cap_nodes * 2 : 8;
    struct lmz_dir_node *nn = realloc(s->nodes, ncap * sizeof *nn);
    if (!nn)
      return NULL;
    s->nodes = nn;
    s->cap_nodes = ncap;
  }
  memmove(&s->nodes[i + 1], &s->nodes[i], (s->n_nodes - i) * sizeof *s->nodes);
  s->n_nodes++;
  memset(&s->nodes[i], 0, sizeof s->nodes[i]);
  s->nodes[i].id = id;
  return &s->nodes[i];
}

static bool state_valid(int64_t st) {
  return st >= LMZ_DIR_JOINING && st <= LMZ_DIR_DOWN;
}

/* ---- keys ----------------------------------------------------------------- */

/* Builds [u8 blen][binding][instance] into k (KEY_MAX bytes). Returns the
 * length, or 0 when the lengths are out of range. */
size_t lmz__dir_key_build(uint8_t *k, const void *b, size_t blen,
                          const void *i, size_t ilen) {
  if (blen == 0 || blen > LMZ_DIR_BINDING_MAX || ilen > LMZ_DIR_INSTANCE_MAX)
    return 0;
  if ((!b && blen) || (!i && ilen))
    return 0;
  k[0] = (uint8_t)blen;
  memcpy(k + 1, b, blen);
  if (ilen)
    memcpy(k + 1 + blen, i, ilen);
  return 1 + blen + ilen;
}

/* ---- lifecycle ------------------------------------------------------------ */

static uint64_t default_clock(void *ctx) {
  (void)ctx;
  return uv_hrtime() / 1000000u;
}

static void *pb_alloc(void *ctx, size_t n) { return lmz_arena_alloc(ctx, n); }
static void pb_free(void *ctx, void *p) {
  (void)ctx;
  (void)p; /* released with the arena */
}

int lmz_dir_init(lmz_dir_t *d) {
  *d = (lmz_dir_t){0};
  d->pb = lmz_arena_new();
  if (!d->pb)
    return LMZ_ENOMEM;
  d->pba = (ProtobufCAllocator){pb_alloc, pb_free, d->pb};
  lmz_hmap_init(&d->st.actors);
  d->clock = default_clock;
  return 0;
}

void lmz_dir_close(lmz_dir_t *d) {
  if (!d)
    return;
  state_free(&d->st);
  lmz_arena_free(d->pb);
  free(d->items);
  d->pb = NULL, d->items = NULL; /* d itself is the caller's */
}

void lmz_dir_set_clock(lmz_dir_t *d, lmz_dir_clock_fn fn, void *ctx) {
  d->clock = fn ? fn : default_clock;
  d->clock_ctx = fn ? ctx : NULL;
}

/* ---- apply: claims -------------------------------------------------------- */

static struct lmz_dir_item item_err(int32_t st, uint64_t rid) {
  return (struct lmz_dir_item){.status = st, .request_id = rid};
}

void lmz__dir_actor_move(struct lmz__dir_state *s, struct dir_actor *a,
                         struct lmz_dir_node *to) {
  struct lmz_dir_node *from = lmz__dir_node_find(s, a->node_id);
  LMZ_ASSERT(from && from->n_actors > 0);
  lmz__dir_set_activated(s, a, true); /* state may travel with it */
  from->stale_copies = true; /* they keep what they held */
  for (uint8_t i = 0; i < a->n_backups; i++)
    if (a->backups[i] != to->id) /* its copy is the current one */
      lmz__dir_stale_copies(s, a->backups[i]);
  from->n_actors--;
  to->n_actors++;
  a->node_id = to->id;
  a->n_backups = 0;
  a->fresh = 0; /* its new owner got (or will get) its state */
  a->epoch++;
  if (a->epoch > s->epoch_seq)
    s->epoch_seq = a->epoch;
  if (s->on_move) {
    size_t blen = a->key[0];
    s->on_move(s->on_move_ctx, (const char *)a->key + 1, blen,
               (const char *)a->key + 1 + blen, (size_t)a->klen - 1 - blen,
               a->node_id, a->epoch);
  }
}

void lmz_dir_set_move_hook(lmz_dir_t *d, lmz_dir_move_fn fn, void *ctx) {
  d->st.on_move = fn;
  d->st.on_move_ctx = ctx;
}

static struct lmz_dir_item claim_existing(struct lmz__dir_state *s,
                                          struct dir_actor *a,
                                          const Lmz__DirClaim *c) {
  struct lmz_dir_node *owner = lmz__dir_node_find(s, a->node_id);
  LMZ_ASSERT(owner);
  if ((c->flags & LMZ_DIR_CLAIM_REPLACE_DOWN) && owner->state == LMZ_DIR_DOWN) {
    struct lmz_dir_node *to = lmz__dir_node_find(s, c->node_id);
    if (!to || to->state != LMZ_DIR_UP)
      return item_err(LMZ_EUNAVAILABLE, c->request_id);
    if (a->epoch == UINT64_MAX)
      return item_err(LMZ_ETOOBIG, c->request_id);
    lmz__dir_actor_move(s, a, to);
    return (struct lmz_dir_item){LMZ_DIR_REPLACED, c->request_id, a->node_id,
                                 a->epoch};
  }
  return (struct lmz_dir_item){LMZ_DIR_EXISTING, c->request_id, a->node_id,
                               a->epoch};
}

/* One claim. Returns LMZ_ENOMEM (command-level) or 0 with *it filled. */
static int claim_one(struct lmz__dir_state *s, const Lmz__DirClaim *c,
                     struct lmz_dir_item *it) {
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, c->binding.data, c->binding.len,
                                 c->instance.data, c->instance.len);
  if (!kl || c->node_id == 0 || (c->flags & ~LMZ_DIR_CLAIM_REPLACE_DOWN)) {
    *it = item_err(LMZ_EINVAL, c->request_id);
    return 0;
  }
  struct dir_actor *a = lmz_hmap_get(&s->actors, k, kl);
  if (a) {
    *it = claim_existing(s, a, c);
    return 0;
  }
  struct lmz_dir_node *to = lmz__dir_node_find(s, c->node_id);
  if (!to || to->state != LMZ_DIR_UP) {
    *it = item_err(LMZ_EUNAVAILABLE, c->request_id);
    return 0;
  }
  if (s->epoch_seq == UINT64_MAX) {
    *it = item_err(LMZ_ETOOBIG, c->request_id);
    return 0;
  }
  a = actor_alloc(s, kl);
  if (!a)
    return LMZ_ENOMEM;
  a->klen = (uint16_t)kl;
  memcpy(a->key, k, kl);
  if (lmz_hmap_put(&s->actors, a->key, kl, a, NULL) != 0) {
    size_t sz = actor_size(kl); /* the bump space becomes a hole */
    s->live_bytes -= sz;
    s->dead_bytes += sz;
    return LMZ_ENOMEM;
  }
  a->node_id = to->id;
  a->epoch = ++s->epoch_seq;
  lmz__dir_claim_backups(s, a, c);
  to->n_actors++;
  a->activated = 1;
  a->fresh = 1;
  if (c->unactivated && !(c->flags & LMZ_DIR_CLAIM_REPLACE_DOWN))
    lmz__dir_set_activated(s, a, false);
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, c->request_id, a->node_id,
                              a->epoch};
  return 0;
}

static int items_reserve(lmz_dir_t *d, size_t n) {
  if (n <= d->cap_items)
    return 0;
  size_t ncap = d->cap_items ? d->cap_items : 16;
  while (ncap < n)
    ncap *= 2;
  struct lmz_dir_item *ni = realloc(d->items, ncap * sizeof *ni);
  if (!ni)
    return LMZ_ENOMEM;
  d->items = ni;
  d->cap_items = ncap;
  return 0;
}

static int apply_claims(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirClaimBatch *b = cmd->claims;
  for (size_t i = 0; i < b->n_claims; i++) {
    int rv = claim_one(&d->st, b->claims[i], &d->items[i]);
    if (rv)
      return rv;
    d->res.n = i + 1;
  }
  return 0;
}

/* ---- apply: nodes and leases --------------------------------------------- */

static bool address_ok(ProtobufCBinaryData a) {
  return a.len <= LMZ_DIR_ADDRESS_MAX && (!a.len || !memchr(a.data, 0, a.len));
}

static void address_set(char *dst, ProtobufCBinaryData a) {
  if (a.len == 0)
    return; /* "not given": keep */
  memcpy(dst, a.data, a.len);
  dst[a.len] = 0;
}

static int apply_node_upsert(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirNodeUpsert *u = cmd->node_upsert;
  struct lmz_dir_item *it = &d->items[0];
  d->res.n = 1;
  int64_t st = u->state;
  if (u->node_id == 0 || !state_valid(st) || st == LMZ_DIR_DOWN ||
      !address_ok(u->address) || !address_ok(u->raft_address)) {
    *it = item_err(LMZ_EINVAL, u->request_id);
    return 0;
  }
  struct lmz_dir_node *n = lmz__dir_node_find(&d->st, u->node_id);
  if (!n) {
    if (d->st.n_nodes >= LMZ_DIR_MAX_NODES) {
      *it = item_err(LMZ_ETOOBIG, u->request_id);
      return 0;
    }
    n = node_insert(&d->st, u->node_id);
    if (!n) {
      d->res.n = 0;
      return LMZ_ENOMEM;
    }
  }
  n->state = (enum lmz_dir_node_state)st;
  address_set(n->address, u->address);
  address_set(n->raft_address, u->raft_address);
  n->heard_ms = d->clock(d->clock_ctx);
  /* its copies are gone: promote its actors, drop it from the lists */
  uint64_t promoted =
      u->lost_data ? lmz__dir_failover(&d->st, n->id, NULL, 0) : 0;
  if (u->lost_data)
    n->stale_copies = false; /* it holds no copy of anything any more */
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, u->request_id, n->id, promoted};
  return 0;
}

static int apply_lease_renew(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirLeaseRenew *l = cmd->lease_renew;
  struct lmz_dir_item *it = &d->items[0];
  d->res.n = 1;
  if (l->lease_ms < LMZ_LEASE_MIN_MS || l->lease_ms > LMZ_LEASE_MAX_MS) {
    *it = item_err(LMZ_EINVAL, l->request_id);
    return 0;
  }
  struct lmz_dir_node *n = lmz__dir_node_find(&d->st, l->node_id);
  if (!n || n->state == LMZ_DIR_DOWN) {
    *it = item_err(n ? LMZ_EUNAVAILABLE : LMZ_ENOTFOUND, l->request_id);
    return 0;
  }
  n->lease_seq++;
  n->lease_ms = l->lease_ms;
  n->heard_ms = d->clock(d->clock_ctx);
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, l->request_id, n->id,
                              n->lease_seq};
  return 0;
}

static int apply_mark_down(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirMarkDown *m = cmd->mark_down;
  struct lmz_dir_item *it = &d->items[0];
  d->res.n = 1;
  struct lmz_dir_node *n = lmz__dir_node_find(&d->st, m->node_id);
  if (!n) {
    *it = item_err(LMZ_ENOTFOUND, m->request_id);
    return 0;
  }
  /* Already DOWN is success (a retried MarkDown); otherwise the leader's
   * expiry decision must still be about the latest grant. */
  if (n->state != LMZ_DIR_DOWN && n->lease_seq != m->expected_lease_seq) {
    *it = item_err(LMZ_ESTALE, m->request_id);
    return 0;
  }
  uint64_t promoted = 0;
  if (n->state != LMZ_DIR_DOWN) { /* a retry finds nothing left to move */
    n->state = LMZ_DIR_DOWN;
    promoted = lmz__dir_failover(&d->st, n->id, m->promote_to,
                                 m->n_promote_to);
  }
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, m->request_id, n->id,
                              promoted};
  return 0;
}

/* Drops a placement from the map (its bytes become a hole). */
static void actor_drop(struct lmz__dir_state *s, struct dir_actor *a) {
  struct lmz_dir_node *owner = lmz__dir_node_find(s, a->node_id);
  LMZ_ASSERT(owner && owner->n_actors > 0);
  lmz__dir_set_activated(s, a, true);
  owner->n_actors--;
  LMZ_ASSERT(lmz_hmap_del(&s->actors, a->key, a->klen) == a);
  size_t sz = actor_size(a->klen);
  s->live_bytes -= sz;
  s->dead_bytes += sz;
}

static int apply_node_remove(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirNodeRemove *r = cmd->node_remove;
  struct lmz_dir_item *it = &d->items[0];
  d->res.n = 1;
  bool found;
  size_t pos = node_pos(&d->st, r->node_id, &found);
  if (!found) {
    *it = item_err(LMZ_ENOTFOUND, r->request_id);
    return 0;
  }
  struct lmz_dir_node *n = &d->st.nodes[pos];
  if (n->n_actors && !(n->state == LMZ_DIR_DOWN && r->force)) {
    *it = item_err(LMZ_EBUSY, r->request_id);
    return 0;
  }
  size_t iter = 0;
  void *v;
  uint64_t id = n->id;
  /* its placements go; so does every mention of it as a backup (a removed
   * node backs nothing up, and lists hold known ids only) */
  while (lmz_hmap_next(&d->st.actors, &iter, NULL, NULL, &v)) {
    struct dir_actor *a = v;
    if (a->node_id == id)
      actor_drop(&d->st, a); /* deleting the current entry is allowed */
    else
      lmz__dir_list_remove(a, id);
  }
  LMZ_ASSERT(n->n_actors == 0);
  memmove(n, n + 1, (d->st.n_nodes - pos - 1) * sizeof *n);
  d->st.n_nodes--;
  maybe_compact(&d->st);
  *it = (struct lmz_dir_item){LMZ_DIR_PLACED, r->request_id, id, 0};
  return 0;
}

/* ---- apply: moves and releases ------------------------------------------- */

static struct lmz_dir_item move_one(struct lmz__dir_state *s,
                                    const Lmz__DirMove *m) {
  uint64_t rid = m->request_id;
  if (m->from_node == 0 || m->to_node == 0 || m->from_node == m->to_node)
    return item_err(LMZ_EINVAL, rid);
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, m->binding.data, m->binding.len,
                                 m->instance.data, m->instance.len);
  if (!kl)
    return item_err(LMZ_EINVAL, rid);
  struct dir_actor *a = lmz_hmap_get(&s->actors, k, kl);
  if (!a)
    return item_err(LMZ_ENOTFOUND, rid);
  if (a->node_id != m->from_node || a->epoch != m->expected_epoch)
    return item_err(LMZ_ESTALE, rid);
  struct lmz_dir_node *to = lmz__dir_node_find(s, m->to_node);
  if (!to || to->state != LMZ_DIR_UP)
    return item_err(LMZ_EUNAVAILABLE, rid);
  struct lmz_dir_node *from = lmz__dir_node_find(s, m->from_node);
  LMZ_ASSERT(from);
  /* Fencing: without the owner's cooperation only a fenced owner (lease
   * surely expired, marked DOWN) may lose its actors. */
  if (!m->graceful && from->state != LMZ_DIR_DOWN)
    return item_err(LMZ_EBUSY, rid);
  if (a->epoch == UINT64_MAX)
    return item_err(LMZ_ETOOBIG, rid);
  lmz__dir_actor_move(s, a, to);
  return (struct lmz_dir_item){LMZ_DIR_PLACED, rid, a->node_id, a->epoch};
}

static int apply_moves(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirMoveBatch *b = cmd->moves;
  for (size_t i = 0; i < b->n_moves; i++)
    d->items[i] = move_one(&d->st, b->moves[i]);
  d->res.n = b->n_moves;
  return 0;
}

static struct lmz_dir_item release_one(struct lmz__dir_state *s,
                                       const Lmz__DirRelease *r) {
  uint64_t rid = r->request_id;
  uint8_t k[KEY_MAX];
  size_t kl = lmz__dir_key_build(k, r->binding.data, r->binding.len,
                                 r->instance.data, r->instance.len);
  if (!kl || r->node_id == 0)
    return item_err(LMZ_EINVAL, rid);
  struct dir_actor *a = lmz_hmap_get(&s->actors, k, kl);
  if (!a)
    return item_err(LMZ_ENOTFOUND, rid);
  if (a->node_id != r->node_id || a->epoch != r->epoch)
    return item_err(LMZ_ESTALE, rid);
  struct lmz_dir_item it = {LMZ_DIR_PLACED, rid, a->node_id, a->epoch};
  actor_drop(s, a);
  return it;
}

static int apply_releases(lmz_dir_t *d, const Lmz__DirCommand *cmd) {
  const Lmz__DirReleaseBatch *b = cmd->releases;
  for (size_t i = 0; i < b->n_releases; i++)
    d->items[i] = release_one(&d->st, b->releases[i]);
  d->res.n = b->n_releases;
  maybe_compact(&d->st);
  return 0;
}

/* ---- apply: dispatch ------------------------------------------------------ */

typedef int (*apply_fn)(lmz_dir_t *d, const Lmz__DirCommand *cmd);

static const struct {
  Lmz__DirCommand__BodyCase body;
  enum lmz_dir_cmd cmd;
  apply_fn fn;
} handlers[] = {
    {LMZ__DIR_COMMAND__BODY_CLAIMS, LMZ_DIR_CMD_CLAIMS, apply_claims},
    {LMZ__DIR_COMMAND__BODY_NODE_UPSERT, LMZ_DIR_CMD_NODE_UPSERT,
     apply_node_upsert},
    {LMZ__DIR_COMMAND__BODY_LEASE_RENEW, LMZ_DIR_CMD_LEASE_RENEW,
     apply_lease_renew},
    {LMZ__DIR_COMMAND__BODY_MARK_DOWN, LMZ_DIR_CMD_MARK_DOWN, apply_mark_down},
    {LMZ__DIR_COMMAND__BODY_MOVES, LMZ_DIR_CMD_MOVES, apply_moves},
    {LMZ__DIR_COMMAND__BODY_RELEASES, LMZ_DIR_CMD_RELEASES, apply_releases},
    {LMZ__DIR_COMMAND__BODY_NODE_REMOVE, LMZ_DIR_CMD_NODE_REMOVE,
     apply_node_remove},
    {LMZ__DIR_COMMAND__BODY_BACKUPS_ADD, LMZ_DIR_CMD_BACKUPS_ADD,
     lmz__dir_apply_backups_add},
    {LMZ__DIR_COMMAND__BODY_PAIR_OUT, LMZ_DIR_CMD_PAIR_OUT,
     lmz__dir_apply_pair_out},
    {LMZ__DIR_COMMAND__BODY_ACTIVATED, LMZ_DIR_CMD_ACTIVATED,
     lmz__dir_apply_activated},
    {LMZ__DIR_COMMAND__BODY_REPLACES, LMZ_DIR_CMD_REPLACES,
     lmz__dir_apply_replaces},
};

/* Items a decoded command will produce (1 for single commands). */
static size_t cmd_items(const Lmz__DirCommand *c) {
  switch (c->body_case) {
  case LMZ__DIR_COMMAND__BODY_CLAIMS:
    return c->claims->n_claims;
  case LMZ__DIR_COMMAND__BODY_MOVES:
    return c->moves->n_moves;
  case LMZ__DIR_COMMAND__BODY_RELEASES:
    return c->releases->n_releases;
  case LMZ__DIR_COMMAND__BODY_BACKUPS_ADD:
    return c->backups_add->n_items;
  case LMZ__DIR_COMMAND__BODY_ACTIVATED:
    return c->activated->n_items;
  case LMZ__DIR_COMMAND__BODY_REPLACES:
    return c->replaces->n_items;
  default:
    return 1;
  }
}

/* Unpacks into the arena. The limit bounds what a hostile command can make
 * protobuf-c allocate: real commands need about twice their length plus
 * ~170 bytes per item (a claim with LMZ_DIR_MAX_BACKUPS backups, measured by
 * test_max_batch_with_backups), and items are capped at LMZ_DIR_MAX_BATCH. A claim with thousands of backups (packed
 * varints unpack to 8 bytes each) hits the limit: LMZ_EBADMSG. */
static Lmz__DirCommand *cmd_unpack(lmz_dir_t *d, const void *buf, size_t len) {
  lmz_arena_reset(d->pb);
  lmz_arena_set_limit(d->pb, 2 * len + (size_t)LMZ_DIR_MAX_BATCH * 256 +
                                 (1u << 16));
  return lmz__dir_command__unpack(&d->pba, len, buf);
}

static int apply_decoded(lmz_dir_t *d, const Lmz__DirCommand *c) {
  if (c->version != 1)
    return LMZ_EBADVERSION;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(handlers); i++) {
    if (handlers[i].body != c->body_case)
      continue;
    size_t n = cmd_items(c);
    if (n > LMZ_DIR_MAX_BATCH)
      return LMZ_ETOOBIG;
    if (items_reserve(d, n ? n : 1))
      return LMZ_ENOMEM;
    d->res.cmd = handlers[i].cmd;
    return handlers[i].fn(d, c);
  }
  return LMZ_EBADMSG; /* no body, or a body this version does not know */
}

int lmz_dir_apply(lmz_dir_t *d, const void *cmd, size_t len,
                  const struct lmz_dir_result **res) {
  d->res = (struct lmz_dir_result){0};
  d->res.items = d->items;
  *res = &d->res;
  int rv;
  if (len > LMZ_DIR_MAX_COMMAND) {
    rv = LMZ_ETOOBIG;
  } else {
    Lmz__DirCommand *c = cmd_unpack(d, cmd, len);
    rv = c ? apply_decoded(d, c) : LMZ_EBADMSG;
  }
  lmz_arena_reset(d->pb);
  d->res.status = rv;
  d->res.items = d->items;
  if (d->res.cmd == LMZ_DIR_CMD_MARK_DOWN || d->res.cmd == LMZ_DIR_CMD_MOVES ||
      d->res.cmd == LMZ_DIR_CMD_NODE_UPSERT ||
      d->res.cmd == LMZ_DIR_CMD_REPLACES)
    d->owner_changes++; /* may have moved actors between owners */
  return rv;
}

uint64_t lmz_dir_owner_changes(const lmz_dir_t *d) { return d->owner_changes; }

/* ---- reads ---------------------------------------------------------------- */

int lmz_dir_lookup(const lmz_dir_t *d, const void *binding, size_t blen,
                   const void *instance, size_t ilen, uint64_t *node_id,
                   uint64_t *epoch) {
  struct lmz_dir_placement p;
  int rv = lmz_dir_placement_get(d, binding, blen, instance, ilen, &p);
  if (rv)
    return rv;
  *node_id = p.node_id;
  *epoch = p.epoch;
  return 0;
}

const struct lmz_dir_node *lmz_dir_node_get(const lmz_dir_t *d, uint64_t id) {
  return lmz__dir_node_find(&d->st, id);
}

size_t lmz_dir_n_nodes(const lmz_dir_t *d) { return d->st.n_nodes; }

const struct lmz_dir_node *lmz_dir_node_at(const lmz_dir_t *d, size_t i) {
  return i < d->st.n_nodes ? &d->st.nodes[i] : NULL;
}

uint64_t lmz_dir_n_actors(const lmz_dir_t *d) { return d->st.actors.n; }

uint64_t lmz_dir_epoch_seq(const lmz_dir_t *d) { return d->st.epoch_seq; }

size_t lmz_dir_live_nodes(const lmz_dir_t *d, uint64_t now_ms, uint64_t *out,
                          size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i < d->st.n_nodes; i++) {
    const struct lmz_dir_node *nd = &d->st.nodes[i];
    if (nd->state != LMZ_DIR_UP || nd->lease_seq == 0 ||
        !lmz_lease_is_live(nd->heard_ms, nd->lease_ms, now_ms))
      continue;
    if (n < cap)
      out[n] = nd->id;
    n++;
  }
  return n;
}

void lmz_dir_stats(const lmz_dir_t *d, struct lmz_dir_stats *out) {
  *out = (struct lmz_dir_stats){d->st.live_bytes, d->st.dead_bytes,
                                d->st.compactions, d->st.actors.cap};
}

static bool node_equal(const struct lmz_dir_node *a,
                       const struct lmz_dir_node *b) {
  return a->id == b->id && a->state == b->state &&
         a->lease_ms == b->lease_ms && a->lease_seq == b->lease_seq &&
         a->n_actors == b->n_actors && a->n_unactivated == b->n_unactivated &&
         a->stale_copies == b->stale_copies &&
         !strcmp(a->address, b->address) &&
         !strcmp(a->raft_address, b->raft_address);
}

bool lmz_dir_equal(const lmz_dir_t *a, const lmz_dir_t *b) {
  if (a->st.epoch_seq != b->st.epoch_seq || a->st.n_nodes != b->st.n_nodes ||
      a->st.actors.n != b->st.actors.n)
    return false;
  for (size_t i = 0; i < a->st.n_nodes; i++)
    if (!node_equal(&a->st.nodes[i], &b->st.nodes[i]))
      return false;
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&a->st.actors, &it, &k, &kl, &v)) {
    const struct dir_actor *x = v, *y = lmz_hmap_get(&b->st.actors, k, kl);
    if (!y || x->node_id != y->node_id || x->epoch != y->epoch ||
        x->n_backups != y->n_backups || x->activated != y->activated ||
        x->fresh != y->fresh ||
        memcmp(x->backups, y->backups, x->n_backups * sizeof x->backups[0]))
      return false;
  }
  return true;
}

/* ---- snapshot ------------------------------------------------------------- */

#define SNAP_MAGIC "LDIR"
#define SNAP_VERSION 4 /* written; restore also reads versions 1 to 3 */
#define SNAP_ACTIVATED 1u /* actor flags (version 3) */
#define SNAP_FRESH 2u     /* actor flags (version 4) */
#define SNAP_STALE 0x80u  /* node state byte (version 4): stale_copies */
#define SNAP_HEADER (4 + 2 + 2 + 8 + 4 + 8)
#define SNAP_NODE_MIN (8 + 1 + 4 + 8 + 1 + 1)
#define SNAP_ACTOR_MIN (8 + 8 + 1 + 2 + 1) /* version 1 */

static uint8_t *put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  return p + 2;
}
static uint8_t *put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + 4;
}
static uint8_t *put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
  return p + 8;
}
static uint8_t *put_str8(uint8_t *p, const char *s) {
  size_t n = strlen(s);
  *p++ = (uint8_t)n;
  memcpy(p, s, n);
  return p + n;
}

static size_t snapshot_size(const struct lmz__dir_state *s) {
  size_t n = SNAP_HEADER + 8;
  for (size_t i = 0; i < s->n_nodes; i++)
    n += SNAP_NODE_MIN + strlen(s->nodes[i].address) +
         strlen(s->nodes[i].raft_address);
  size_t it = 0;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&s->actors, &it, NULL, &kl, &v)) {
    const struct dir_actor *a = v;
    n += 8 + 8 + 1 + 8u * a->n_backups + 1 + 2 + kl; /* blen is in the key */
  }
  return n;
}

static uint8_t *snapshot_nodes(const struct lmz__dir_state *s, uint8_t *p) {
  for (size_t i = 0; i < s->n_nodes; i++) {
    const struct lmz_dir_node *n = &s->nodes[i];
    p = put_u64(p, n->id);
    *p++ = (uint8_t)((unsigned)n->state | (n->stale_copies ? SNAP_STALE : 0));
    p = put_u32(p, n->lease_ms);
    p = put_u64(p, n->lease_seq);
    p = put_str8(p, n->address);
    p = put_str8(p, n->raft_address);
  }
  return p;
}

static uint8_t *snapshot_actors(const struct lmz__dir_state *s, uint8_t *p) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&s->actors, &it, NULL, NULL, &v)) {
    const struct dir_actor *a = v;
    uint8_t blen = a->key[0];
    p = put_u64(p, a->node_id);
    p = put_u64(p, a->epoch);
    *p++ = a->n_backups;
    for (uint8_t i = 0; i < a->n_backups; i++)
      p = put_u64(p, a->backups[i]);
    *p++ = (uint8_t)((a->activated ? SNAP_ACTIVATED : 0) |
                     (a->fresh ? SNAP_FRESH : 0));
    *p++ = blen;
    p = put_u16(p, (uint16_t)(a->klen - 1 - blen));
    memcpy(p, a->key + 1, a->klen - 1u);
    p += a->klen - 1u;
  }
  return p;
}

int lmz_dir_snapshot(const lmz_dir_t *d, void *(*alloc)(size_t), void **out,
                     size_t *len) {
  const struct lmz__dir_state *s = &d->st;
  size_t n = snapshot_size(s);
  uint8_t *buf = (alloc ? alloc : malloc)(n);
  if (!buf)
    return LMZ_ENOMEM;
  uint8_t *p = buf;
  memcpy(p, SNAP_MAGIC, 4);
  p = put_u16(p + 4, SNAP_VERSION);
  p = put_u16(p, 0);
  p = put_u64(p, s->epoch_seq);
  p = put_u32(p, (uint32_t)s->n_nodes);
  p = put_u64(p, s->actors.n);
  p = snapshot_nodes(s, p);
  p = snapshot_actors(s, p);
  p = put_u64(p, lmz_hash_stable(buf, (size_t)(p - buf)));
  LMZ_ASSERT((size_t)(p - buf) == n);
  *out = buf;
  *len = n;
  return 0;
}

/* Bounds-checked reader over untrusted bytes. */
struct rd {
  const uint8_t *p, *end;
};

static bool get_bytes(struct rd *r, size_t n, const uint8_t **out) {
  if ((size_t)(r->end - r->p) < n)
    return false;
  *out = r->p;
  r->p += n;
  return true;
}
static bool get_u8(struct rd *r, uint8_t *v) {
  const uint8_t *b;
  if (!get_bytes(r, 1, &b))
    return false;
  *v = b[0];
  return true;
}
static bool get_u16(struct rd *r, uint16_t *v) {
  const uint8_t *b;
  if (!get_bytes(r, 2, &b))
    return false;
  *v = (uint16_t)(b[0] | (b[1] << 8));
  return true;
}
static bool get_u32(struct rd *r, uint32_t *v) {
  const uint8_t *b;
  if (!get_bytes(r, 4, &b))
    return false;
  *v = 0;
  for (int i = 3; i >= 0; i--)
    *v = (*v << 8) | b[i];
  return true;
}
static bool get_u64(struct rd *r, uint64_t *v) {
  const uint8_t *b;
  if (!get_bytes(r, 8, &b))
    return false;
  *v = 0;
  for (int i = 7; i >= 0; i--)
    *v = (*v << 8) | b[i];
  return true;
}
static bool get_str8(struct rd *r, char *dst) {
  uint8_t n;
  const uint8_t *b;
  if (!get_u8(r, &n) || !get_bytes(r, n, &b) || (n && memchr(b, 0, n)))
    return false;
  memcpy(dst, b, n);
  dst[n] = 0;
  return true;
}

/* Nodes must come in strictly ascending id order (so no duplicates). */
static int restore_nodes(struct lmz__dir_state *s, struct rd *r, uint32_t n,
                         uint16_t version, uint64_t now) {
  if (n > LMZ_DIR_MAX_NODES || (size_t)(r->end - r->p) / SNAP_NODE_MIN < n)
    return LMZ_EBADMSG;
  s->nodes = calloc(n ? n : 1, sizeof *s->nodes);
  if (!s->nodes)
    return LMZ_ENOMEM;
  s->cap_nodes = n ? n : 1;
  for (uint32_t i = 0; i < n; i++) {
    struct lmz_dir_node *nd = &s->nodes[i];
    uint8_t st;
    if (!get_u64(r, &nd->id) || !get_u8(r, &st) || !get_u32(r, &nd->lease_ms) ||
        !get_u64(r, &nd->lease_seq) || !get_str8(r, nd->address) ||
        !get_str8(r, nd->raft_address))
      return LMZ_EBADMSG;
    nd->stale_copies = version >= 4 && (st & SNAP_STALE);
    if (version >= 4)
      st &= (uint8_t)~SNAP_STALE;
    if (nd->id == 0 || (i && nd->id <= s->nodes[i - 1].id) || !state_valid(st))
      return LMZ_EBADMSG;
    if (nd->lease_seq ? (nd->lease_ms < LMZ_LEASE_MIN_MS ||
                         nd->lease_ms > LMZ_LEASE_MAX_MS)
                      : nd->lease_ms != 0)
      return LMZ_EBADMSG;
    nd->state = (enum lmz_dir_node_state)st;
    nd->heard_ms = now; /* conservative: see lease.h */
    s->n_nodes = i + 1;
  }
  return 0;
}

/* A version 2 backup list: bounded, known ids, not the owner, no repeats. */
static bool restore_backups(const struct lmz__dir_state *s, struct rd *r,
                            uint64_t owner, uint8_t *n, uint64_t *ids) {
  if (!get_u8(r, n) || *n > LMZ_DIR_MAX_BACKUPS)
    return false;
  for (uint8_t i = 0; i < *n; i++) {
    if (!get_u64(r, &ids[i]) || ids[i] == owner ||
        !lmz__dir_node_find(s, ids[i]))
      return false;
    for (uint8_t j = 0; j < i; j++)
      if (ids[j] == ids[i])
        return false;
  }
  return true;
}

static int restore_actor(struct lmz__dir_state *s, struct rd *r,
                         uint16_t version) {
  uint64_t node_id, epoch, backups[LMZ_DIR_MAX_BACKUPS];
  uint8_t blen, n_backups = 0, flags = SNAP_ACTIVATED;
  const uint8_t known = version >= 4 ? SNAP_ACTIVATED | SNAP_FRESH
                                     : SNAP_ACTIVATED;
  uint16_t ilen;
  const uint8_t *b;
  if (!get_u64(r, &node_id) || !get_u64(r, &epoch) ||
      (version >= 2 && !restore_backups(s, r, node_id, &n_backups, backups)) ||
      (version >= 3 && (!get_u8(r, &flags) || (flags & ~known))) ||
      !get_u8(r, &blen) || !get_u16(r, &ilen) || blen == 0 ||
      ilen > LMZ_DIR_INSTANCE_MAX || !get_bytes(r, (size_t)blen + ilen, &b))
    return LMZ_EBADMSG;
  struct lmz_dir_node *owner = lmz__dir_node_find(s, node_id);
  if (!owner || epoch == 0 || epoch > s->epoch_seq)
    return LMZ_EBADMSG;
  size_t kl = 1 + (size_t)blen + ilen;
  struct dir_actor *a = actor_alloc(s, kl);
  if (!a)
    return LMZ_ENOMEM;
  a->node_id = node_id;
  a->epoch = epoch;
  a->n_backups = n_backups;
  memcpy(a->backups, backups, n_backups * sizeof backups[0]);
  a->activated = 1;
  a->klen = (uint16_t)kl;
  a->key[0] = blen;
  memcpy(a->key + 1, b, kl - 1);
  void *old;
  if (lmz_hmap_put(&s->actors, a->key, kl, a, &old))
    return LMZ_ENOMEM;
  if (old)
    return LMZ_EBADMSG; /* duplicate actor */
  owner->n_actors++;
  if (!(flags & SNAP_ACTIVATED))
    lmz__dir_set_activated(s, a, false);
  a->fresh = (flags & SNAP_FRESH) != 0;
  return 0;
}

static int restore_parse(struct lmz__dir_state *s, const uint8_t *buf,
                         size_t len, uint64_t now) {
  if (len < SNAP_HEADER + 8 || memcmp(buf, SNAP_MAGIC, 4) != 0)
    return LMZ_EBADMSG;
  struct rd r = {buf + 4, buf + len - 8};
  /* The length check above guarantees the header reads below succeed. */
  uint16_t version = 0, flags = 0;
  uint32_t n_nodes = 0;
  uint64_t n_actors = 0, sum = 0;
  get_u16(&r, &version);
  get_u16(&r, &flags);
  if (version < 1 || version > SNAP_VERSION)
    return LMZ_EBADVERSION;
  struct rd tail = {buf + len - 8, buf + len};
  get_u64(&tail, &sum);
  if (flags != 0 || sum != lmz_hash_stable(buf, len - 8))
    return LMZ_EBADMSG;
  get_u64(&r, &s->epoch_seq);
  get_u32(&r, &n_nodes);
  get_u64(&r, &n_actors);
  int rv = restore_nodes(s, &r, n_nodes, version, now);
  if (rv)
    return rv;
  if ((uint64_t)(r.end - r.p) / SNAP_ACTOR_MIN < n_actors)
    return LMZ_EBADMSG;
  for (uint64_t i = 0; i < n_actors; i++)
    if ((rv = restore_actor(s, &r, version)))
      return rv;
  return r.p == r.end ? 0 : LMZ_EBADMSG;
}

int lmz_dir_restore(lmz_dir_t *d, const void *buf, size_t len) {
  struct lmz__dir_state s = {0};
  lmz_hmap_init(&s.actors);
  int rv = buf ? restore_parse(&s, buf, len, d->clock(d->clock_ctx))
               : LMZ_EBADMSG;
  if (rv) {
    state_free(&s);
    return rv;
  }
  s.on_move = d->st.on_move;
  s.on_move_ctx = d->st.on_move_ctx;
  state_free(&d->st);
  d->st = s;
  d->owner_changes++;
  return 0;
}

/* ---- encoders ------------------------------------------------------------- */

int lmz__dir_pack_cmd(lmz_buf *out, Lmz__DirCommand *c) {
  c->version = 1;
  size_t n = lmz__dir_command__get_packed_size(c);
  if (n > LMZ_DIR_MAX_COMMAND)
    return LMZ_EINVAL;
  int rv = lmz_buf_reserve(out, n);
  if (rv)
    return rv;
  size_t w = lmz__dir_command__pack(c, out->data + out->len);
  LMZ_ASSERT(w == n);
  out->len += n;
  return 0;
}

static ProtobufCBinaryData bin(const void *p, size_t n) {
  return (ProtobufCBinaryData){n, (uint8_t *)(uintptr_t)p};
}

bool lmz__dir_name_ok(const void *b, size_t blen, const void *i, size_t ilen) {
  return b && blen > 0 && blen <= LMZ_DIR_BINDING_MAX &&
         ilen <= LMZ_DIR_INSTANCE_MAX && (i || ilen == 0);
}

/* Allocates n messages of `sz` bytes and an array of n pointers to them. */
int lmz__dir_batch_alloc(size_t n, size_t sz, void **msgs, void ***ptrs) {
  if (n == 0 || n > LMZ_DIR_MAX_BATCH)
    return LMZ_EINVAL;
  *msgs = malloc(n * sz);
  *ptrs = malloc(n * sizeof(void *));
  if (!*msgs || !*ptrs) {
    free(*msgs);
    free(*ptrs);
    return LMZ_ENOMEM;
  }
  for (size_t i = 0; i < n; i++)
    (*ptrs)[i] = (char *)*msgs + i * sz;
  return 0;
}

int lmz_dir_encode_claims(lmz_buf *out, const struct lmz_dir_claim *c,
                          size_t n) {
  Lmz__DirClaim *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(c[i].binding, c[i].blen, c[i].instance, c[i].ilen) ||
        c[i].n_backups > LMZ_DIR_MAX_BACKUPS ||
        (c[i].n_backups && !c[i].backups))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirClaim)LMZ__DIR_CLAIM__INIT;
    m[i].binding = bin(c[i].binding, c[i].blen);
    m[i].instance = bin(c[i].instance, c[i].ilen);
    m[i].node_id = c[i].node_id;
    m[i].request_id = c[i].request_id;
    m[i].flags = c[i].flags & ~LMZ_DIR_CLAIM_UNACTIVATED;
    m[i].unactivated = (c[i].flags & LMZ_DIR_CLAIM_UNACTIVATED) != 0;
    m[i].n_backups = c[i].n_backups;
    m[i].backups = (uint64_t *)(uintptr_t)c[i].backups;
  }
  Lmz__DirClaimBatch b = LMZ__DIR_CLAIM_BATCH__INIT;
  b.n_claims = n;
  b.claims = (Lmz__DirClaim **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_CLAIMS;
  cmd.claims = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}

int lmz_dir_encode_moves(lmz_buf *out, const struct lmz_dir_move *mv,
                         size_t n) {
  Lmz__DirMove *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(mv[i].binding, mv[i].blen, mv[i].instance, mv[i].ilen))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirMove)LMZ__DIR_MOVE__INIT;
    m[i].binding = bin(mv[i].binding, mv[i].blen);
    m[i].instance = bin(mv[i].instance, mv[i].ilen);
    m[i].from_node = mv[i].from_node;
    m[i].to_node = mv[i].to_node;
    m[i].expected_epoch = mv[i].expected_epoch;
    m[i].graceful = mv[i].graceful;
    m[i].request_id = mv[i].request_id;
  }
  Lmz__DirMoveBatch b = LMZ__DIR_MOVE_BATCH__INIT;
  b.n_moves = n;
  b.moves = (Lmz__DirMove **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_MOVES;
  cmd.moves = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}

int lmz_dir_encode_releases(lmz_buf *out, const struct lmz_dir_release *rl,
                            size_t n) {
  Lmz__DirRelease *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(rl[i].binding, rl[i].blen, rl[i].instance, rl[i].ilen))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirRelease)LMZ__DIR_RELEASE__INIT;
    m[i].binding = bin(rl[i].binding, rl[i].blen);
    m[i].instance = bin(rl[i].instance, rl[i].ilen);
    m[i].node_id = rl[i].node_id;
    m[i].epoch = rl[i].epoch;
    m[i].request_id = rl[i].request_id;
  }
  Lmz__DirReleaseBatch b = LMZ__DIR_RELEASE_BATCH__INIT;
  b.n_releases = n;
  b.releases = (Lmz__DirRelease **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_RELEASES;
  cmd.releases = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}

int lmz_dir_encode_node_upsert(lmz_buf *out, uint64_t node_id,
                               enum lmz_dir_node_state state,
                               const char *address, const char *raft_address,
                               uint64_t request_id) {
  return lmz_dir_encode_node_register(out, node_id, state, address,
                                      raft_address, false, request_id);
}

int lmz_dir_encode_node_register(lmz_buf *out, uint64_t node_id,
                                 enum lmz_dir_node_state state,
                                 const char *address, const char *raft_address,
                                 bool lost_data, uint64_t request_id) {
  size_t al = address ? strlen(address) : 0;
  size_t rl = raft_address ? strlen(raft_address) : 0;
  if (al > LMZ_DIR_ADDRESS_MAX || rl > LMZ_DIR_ADDRESS_MAX)
    return LMZ_EINVAL;
  Lmz__DirNodeUpsert u = LMZ__DIR_NODE_UPSERT__INIT;
  u.node_id = node_id;
  u.state = (Lmz__NodeState)state;
  u.address = bin(address, al);
  u.raft_address = bin(raft_address, rl);
  u.request_id = request_id;
  u.lost_data = lost_data;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_NODE_UPSERT;
  cmd.node_upsert = &u;
  return lmz__dir_pack_cmd(out, &cmd);
}

int lmz_dir_encode_lease_renew(lmz_buf *out, uint64_t node_id,
                               uint32_t lease_ms, uint64_t request_id) {
  Lmz__DirLeaseRenew l = LMZ__DIR_LEASE_RENEW__INIT;
  l.node_id = node_id;
  l.lease_ms = lease_ms;
  l.request_id = request_id;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_LEASE_RENEW;
  cmd.lease_renew = &l;
  return lmz__dir_pack_cmd(out, &cmd);
}

int lmz_dir_encode_mark_down(lmz_buf *out, uint64_t node_id,
                             uint64_t expected_lease_seq, uint64_t request_id) {
  return lmz_dir_encode_mark_down_to(out, node_id, expected_lease_seq, NULL,
                                     0, request_id);
}

int lmz_dir_encode_mark_down_to(lmz_buf *out, uint64_t node_id,
                                uint64_t expected_lease_seq,
                                const uint64_t *promote_to, size_t n,
                                uint64_t request_id) {
  if (n > LMZ_DIR_MAX_NODES || (n && !promote_to))
    return LMZ_EINVAL;
  Lmz__DirMarkDown m = LMZ__DIR_MARK_DOWN__INIT;
  m.node_id = node_id;
  m.expected_lease_seq = expected_lease_seq;
  m.request_id = request_id;
  m.n_promote_to = n;
  m.promote_to = (uint64_t *)promote_to;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_MARK_DOWN;
  cmd.mark_down = &m;
  return lmz__dir_pack_cmd(out, &cmd);
}

int lmz_dir_encode_node_remove(lmz_buf *out, uint64_t node_id, bool force,
                               uint64_t request_id) {
  Lmz__DirNodeRemove r = LMZ__DIR_NODE_REMOVE__INIT;
  r.node_id = node_id;
  r.force = force;
  r.request_id = request_id;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_NODE_REMOVE;
  cmd.node_remove = &r;
  return lmz__dir_pack_cmd(out, &cmd);
}

int lmz_dir_encode_backups_add(lmz_buf *out,
                               const struct lmz_dir_backup_add *a, size_t n) {
  Lmz__DirBackupAdd *m;
  void **pp;
  int rv = lmz__dir_batch_alloc(n, sizeof *m, (void **)&m, &pp);
  if (rv)
    return rv;
  for (size_t i = 0; i < n && !rv; i++) {
    if (!lmz__dir_name_ok(a[i].binding, a[i].blen, a[i].instance, a[i].ilen))
      rv = LMZ_EINVAL;
    m[i] = (Lmz__DirBackupAdd)LMZ__DIR_BACKUP_ADD__INIT;
    m[i].binding = bin(a[i].binding, a[i].blen);
    m[i].instance = bin(a[i].instance, a[i].ilen);
    m[i].owner = a[i].owner;
    m[i].epoch = a[i].epoch;
    m[i].backup = a[i].backup;
    m[i].request_id = a[i].request_id;
  }
  Lmz__DirBackupAddBatch b = LMZ__DIR_BACKUP_ADD_BATCH__INIT;
  b.n_items = n;
  b.items = (Lmz__DirBackupAdd **)pp;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_BACKUPS_ADD;
  cmd.backups_add = &b;
  if (!rv)
    rv = lmz__dir_pack_cmd(out, &cmd);
  free(m);
  free(pp);
  return rv;
}

int lmz_dir_encode_pair_out(lmz_buf *out, uint64_t owner, uint64_t backup,
                            uint64_t request_id) {
  Lmz__DirPairOut po = LMZ__DIR_PAIR_OUT__INIT;
  po.owner = owner;
  po.backup = backup;
  po.request_id = request_id;
  Lmz__DirCommand cmd = LMZ__DIR_COMMAND__INIT;
  cmd.body_case = LMZ__DIR_COMMAND__BODY_PAIR_OUT;
  cmd.pair_out = &po;
  return lmz__dir_pack_cmd(out, &cmd);
}

/* lmz_dir_foreach_actor is the placement walk without the backups. */
struct actor_walk {
  lmz_dir_actor_fn fn;
  void *arg;
};

static int actor_of_placement(const char *binding, size_t blen,
                              const char *instance, size_t ilen,
                              const struct lmz_dir_placement *p, void *arg) {
  const struct actor_walk *w = arg;
  return w->fn(binding, blen, instance, ilen, p->node_id, p->epoch, w->arg);
}

int lmz_dir_foreach_actor(const lmz_dir_t *d, uint64_t node_id,
                          lmz_dir_actor_fn fn, void *arg) {
  struct actor_walk w = {fn, arg};
  return lmz_dir_foreach_placement(d, node_id, actor_of_placement, &w);
}
