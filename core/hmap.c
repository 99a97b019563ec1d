/* core/hmap.c - open-addressing hash map (see hmap.h). Keys are hashed
 * with the per-process seeded hash (core/hash.h): tables here hold names
 * that clients and peers choose, and an unseeded hash would let them pick
 * names that all probe from one slot. */
#include "core/hmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"

static const char hmap_tomb_byte;
#define TOMB ((const void *)&hmap_tomb_byte)

void lmz_hmap_init(lmz_hmap *m) { *m = (lmz_hmap)LMZ_HMAP_INIT; }

void lmz_hmap_free(lmz_hmap *m) {
  free(m->slots);
  lmz_hmap_init(m);
}

void lmz_hmap_clear(lmz_hmap *m) {
  if (m->slots)
    memset(m->slots, 0, m->cap * sizeof *m->slots);
  m->n = m->used = 0;
}

static struct lmz_hmap_slot *find(const lmz_hmap *m, const void *key,
                                  size_t klen, uint64_t h) {
  if (!m->cap)
    return NULL;
  size_t mask = m->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    struct lmz_hmap_slot *s = &m->slots[i];
    if (!s->key)
      return NULL;
    if (s->key != TOMB && s->hash == h && s->klen == klen &&
        memcmp(s->key, key, klen) == 0)
      return s;
  }
}

void *lmz_hmap_get(const lmz_hmap *m, const void *key, size_t klen) {
  struct lmz_hmap_slot *s = find(m, key, klen, lmz_hash_seeded(key, klen));
  return s ? s->val : NULL;
}

static int grow(lmz_hmap *m) {
  size_t ncap = m->cap ? m->cap * 2 : 16;
  if (m->n * 2 < m->cap) /* mostly tombstones: rehash at the same size */
    ncap = m->cap;
  struct lmz_hmap_slot *ns = calloc(ncap, sizeof *ns);
  if (!ns)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    struct lmz_hmap_slot *s = &m->slots[i];
    if (!s->key || s->key == TOMB)
      continue;
    size_t j = s->hash & (ncap - 1);
    while (ns[j].key)
      j = (j + 1) & (ncap - 1);
    ns[j] = *s;
  }
  free(m->slots);
  m->slots = ns;
  m->cap = ncap;
  m->used = m->n;
  return 0;
}

int lmz_hmap_put(lmz_hmap *m, const void *key, size_t klen, void *val,
                 void **old) {
  uint64_t h = lmz_hash_seeded(key, klen);
  struct lmz_hmap_slot *s = find(m, key, klen, h);
  if (old)
    *old = s ? s->val : NULL;
  if (s) {
    s->key = key; /* the caller's new key copy replaces the old one */
    s->val = val;
    return 0;
  }
  if ((m->used + 1) * 10 >= m->cap * 7) {
    int rv = grow(m);
    if (rv)
      return rv;
  }
  size_t mask = m->cap - 1;
  size_t i = h & mask;
  while (m->slots[i].key && m->slots[i].key != TOMB)
    i = (i + 1) & mask;
  if (!m->slots[i].key)
    m->used++;
  m->slots[i] = (struct lmz_hmap_slot){key, klen, h, val};
  m->n++;
  return 0;
}

void *lmz_hmap_del(lmz_hmap *m, const void *key, size_t klen) {
  struct lmz_hmap_slot *s = find(m, key, klen, lmz_hash_seeded(key, klen));
  if (!s)
    return NULL;
  void *v = s->val;
  s->key = TOMB;
  s->val = NULL;
  m->n--;
  return v;
}

int lmz_hmap_next(const lmz_hmap *m, size_t *iter, const void **key,
                  size_t *klen, void **val) {
  for (size_t i = *iter; i < m->cap; i++) {
    struct lmz_hmap_slot *s = &m->slots[i];
    if (!s->key || s->key == TOMB)
      continue;
    *iter = i + 1;
    if (key)
      *key = s->key;
    if (klen)
      *klen = s->klen;
    if (val)
      *val = s->val;
    return 1;
  }
  *iter = m->cap;
  return 0;
}

void lmz__hmap_stats(const lmz_hmap *m, struct lmz__hmap_stats *st) {
  *st = (struct lmz__hmap_stats){0, 0, 0};
  size_t mask = m->cap - 1;
  for (size_t i = 0; i < m->cap; i++) {
    const struct lmz_hmap_slot *s = &m->slots[i];
    if (!s->key || s->key == TOMB)
      continue;
    size_t probes = ((i - (size_t)s->hash) & mask) + 1;
    st->n++;
    st->total_probe += probes;
    if (probes > st->max_probe)
      st->max_probe = probes;
  }
}
