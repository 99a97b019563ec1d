/* cluster/placement.c - rendezvous hashing and the local policy (see
 * placement.h).
 *
 * Happy path: hash the key once, score every candidate, keep the maximum.
 * O(n) per choice, no allocation.
 *
 * Failure modes:
 *  1. No candidates -> LMZ_EUNAVAILABLE (the caller retries when a node is
 *     heard from again).
 *  2. Unknown policy, binding longer than 255 bytes -> LMZ_EINVAL. */
#include "cluster/placement.h"

#include <string.h>

#include "cluster/lease.h"
#include "core/err.h"

/* splitmix64 finalizer: a bijection with full avalanche. */
static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

uint64_t lmz_placement_key_hash(const void *binding, size_t blen,
                                const void *instance, size_t ilen) {
  uint8_t len8 = (uint8_t)blen;
  uint64_t h = 0xcbf29ce484222325ull;
  h = fnv1a(h, &len8, 1);
  h = fnv1a(h, binding, blen);
  h = fnv1a(h, instance, ilen);
  return mix64(h);
}

uint64_t lmz_placement_score(uint64_t key_hash, uint64_t node_id) {
  return mix64(key_hash ^ mix64(node_id));
}

static int choose_hash(const uint64_t *nodes, size_t n, uint64_t kh,
                       uint64_t *out) {
  uint64_t best = 0, best_score = 0;
  for (size_t i = 0; i < n; i++) {
    if (nodes[i] == 0)
      continue;
    uint64_t s = lmz_placement_score(kh, nodes[i]);
    /* Ties (astronomically rare) go to the lower id: order-independent. */
    if (best == 0 || s > best_score || (s == best_score && nodes[i] < best)) {
      best = nodes[i];
      best_score = s;
    }
  }
  if (best == 0)
    return LMZ_EUNAVAILABLE;
  *out = best;
  return 0;
}

int lmz_placement_choose(enum lmz_placement_policy policy,
                         const uint64_t *nodes, size_t n, uint64_t local_id,
                         const void *binding, size_t blen,
                         const void *instance, size_t ilen, uint64_t *out) {
  if (blen > 255 || (policy != LMZ_PLACEMENT_HASH &&
                     policy != LMZ_PLACEMENT_LOCAL))
    return LMZ_EINVAL;
  if (policy == LMZ_PLACEMENT_LOCAL && local_id != 0) {
    for (size_t i = 0; i < n; i++) {
      if (nodes[i] == local_id) {
        *out = local_id;
        return 0;
      }
    }
  }
  uint64_t kh = lmz_placement_key_hash(binding, blen, instance, ilen);
  return choose_hash(nodes, n, kh, out);
}

/* a ranks before b: higher score, then the lower id. */
static bool ranks_before(uint64_t kh, uint64_t a, uint64_t b) {
  uint64_t sa = lmz_placement_score(kh, a), sb = lmz_placement_score(kh, b);
  return sa > sb || (sa == sb && a < b);
}

size_t lmz_placement_rank(const uint64_t *nodes, size_t n, uint64_t exclude,
                          const void *binding, size_t blen,
                          const void *instance, size_t ilen, uint64_t *out,
                          size_t k) {
  uint64_t kh = lmz_placement_key_hash(binding, blen, instance, ilen);
  size_t m = 0; /* out[0..m) sorted, best first */
  for (size_t i = 0; i < n && k; i++) {
    uint64_t id = nodes[i];
    bool seen = id == 0 || id == exclude;
    for (size_t j = 0; j < m && !seen; j++)
      seen = out[j] == id;
    if (seen)
      continue;
    size_t pos = m; /* insertion into the top k */
    while (pos > 0 && ranks_before(kh, id, out[pos - 1]))
      pos--;
    if (pos == k)
      continue;
    size_t last = m < k ? m : k - 1; /* the k-th falls off a full list */
    memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof out[0]);
    out[pos] = id;
    if (m < k)
      m++;
  }
  return m;
}

size_t lmz_placement_candidates(const struct lmz_placement_view *v,
                                bool include_self, uint64_t *out, size_t cap) {
  if (cap > LMZ_DIR_MAX_NODES)
    cap = LMZ_DIR_MAX_NODES;
  size_t n = lmz_dir_live_nodes(v->dir, v->now_ms, out, cap), k = 0;
  if (n > cap)
    n = cap;
  for (size_t i = 0; i < n; i++) {
    bool self = out[i] == v->self_id;
    const struct lmz_dir_node *dn = lmz_dir_node_get(v->dir, out[i]);
    bool ok = self ? include_self
                   : !v->connected || v->connected(v->ctx, out[i]);
    if (ok && dn && lmz_lease_is_current(dn->heard_ms, dn->lease_ms, v->now_ms))
      out[k++] = out[i];
  }
  return k;
}
