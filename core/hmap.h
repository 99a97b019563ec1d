/* core/hmap.h - open-addressing hash map from byte-string keys to pointers.
 *
 * Used for registries, activation tables and caches. Keys are NOT copied: the
 * caller keeps them alive as long as the entry exists (typically the key
 * lives inside the value the entry points to). Linear probing with
 * tombstones; grows at 70% load. Not thread-safe.
 *
 * Keys are hashed with lmz_hash_seeded (core/hash.h), so iteration order
 * differs between processes and runs: never let it reach anything that must
 * be the same on every node (sort first, or hash with lmz_hash_stable). */
#ifndef LMZ_CORE_HMAP_H
#define LMZ_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct lmz_hmap_slot {
  const void *key; /* NULL = empty; LMZ__HMAP_TOMB = deleted */
  size_t klen;
  uint64_t hash;
  void *val;
};

typedef struct lmz_hmap {
  struct lmz_hmap_slot *slots;
  size_t cap;   /* power of two, or 0 */
  size_t n;     /* live entries */
  size_t used;  /* live + tombstones */
} lmz_hmap;

#define LMZ_HMAP_INIT {NULL, 0, 0, 0}

void lmz_hmap_init(lmz_hmap *m);
void lmz_hmap_free(lmz_hmap *m); /* frees the table, not keys or values */
void lmz_hmap_clear(lmz_hmap *m);
void *lmz_hmap_get(const lmz_hmap *m, const void *key, size_t klen);
/* Inserts or replaces. *old (optional) gets the replaced value or NULL.
 * Returns 0 or LMZ_ENOMEM. */
int lmz_hmap_put(lmz_hmap *m, const void *key, size_t klen, void *val,
                 void **old);
/* Removes; returns the removed value or NULL. */
void *lmz_hmap_del(lmz_hmap *m, const void *key, size_t klen);
/* Iteration: for (size_t i = 0; lmz_hmap_next(m, &i, &k, &kl, &v);) ...
 * Deleting the current entry during iteration is allowed. */
int lmz_hmap_next(const lmz_hmap *m, size_t *iter, const void **key,
                  size_t *klen, void **val);

/* Internal, for tests: how far the entries sit from their home slots. A
 * lookup of an entry costs `distance + 1` slot probes; a flooded table shows
 * up as a large max_probe however fast the machine is. */
struct lmz__hmap_stats {
  size_t n;           /* live entries */
  size_t max_probe;   /* probes to find the worst-placed entry */
  size_t total_probe; /* probes to find every entry once */
};
void lmz__hmap_stats(const lmz_hmap *m, struct lmz__hmap_stats *st);

#endif
