/* gateway/ratelimit.c - per-key token buckets (ratelimit.h).
 *
 * Happy path: look the key up -> refill its bucket for the time since its
 * last use -> take one token (60000 units) or compute Retry-After.
 * Failure modes:
 *  1. the limiter is off (per_minute 0): everything is allowed, nothing is
 *     stored;
 *  2. a new key and the table is full: full buckets are swept (at most once
 *     a second); still full: allowed unmetered (`untracked`);
 *  3. out of memory for a new bucket: allowed unmetered (`untracked`): a
 *     limiter never turns an allocation failure into a refusal;
 *  4. the clock went backwards: no refill until it passes the bucket's
 *     last time again (no underflow). */
#include "gateway/ratelimit.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define UNITS_PER_TOKEN 60000u /* ms in a minute: per_minute units per ms */

struct lmz__rate_bucket {
  uint64_t units; /* tokens x UNITS_PER_TOKEN, <= burst_units */
  uint64_t at_ms; /* when `units` was computed */
  size_t klen;
  char key[];
};

static uint64_t clamp(uint64_t v, uint64_t hi) { return v < hi ? v : hi; }

void lmz_rate_init(lmz_rate *r, const struct lmz_rate_opts *o) {
  memset(r, 0, sizeof *r);
  lmz_hmap_init(&r->map);
  r->per_minute = clamp(o ? o->per_minute : 0, LMZ_RATE_MAX_PER_MINUTE);
  uint64_t burst = o && o->burst ? o->burst : r->per_minute;
  r->burst_units = clamp(burst ? burst : 1, LMZ_RATE_MAX_BURST) * UNITS_PER_TOKEN;
  r->max_keys = o && o->max_keys ? o->max_keys : LMZ_RATE_MAX_KEYS;
}

void lmz_rate_free(lmz_rate *r) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&r->map, &it, NULL, NULL, &v))
    free(v);
  lmz_hmap_free(&r->map);
  r->stats.keys = 0;
}

/* Brings b up to now_ms. The elapsed time that would overflow the product
 * is more than enough to fill any bucket, so it is checked first. */
static void refill(const lmz_rate *r, struct lmz__rate_bucket *b, uint64_t now_ms) {
  if (now_ms <= b->at_ms)
    return; /* same instant, or the clock went back: nothing to add */
  uint64_t elapsed = now_ms - b->at_ms;
  uint64_t missing = r->burst_units - b->units;
  if (elapsed >= missing / r->per_minute + 1)
    b->units = r->burst_units;
  else
    b->units += elapsed * r->per_minute;
  b->at_ms = now_ms;
}

/* Drops buckets that are full again (as good as absent). */
static void sweep(lmz_rate *r, uint64_t now_ms) {
  if (r->swept_once && now_ms < r->last_sweep_ms + 1000)
    return;
  r->swept_once = true;
  r->last_sweep_ms = now_ms;
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&r->map, &it, &k, &kl, &v)) {
    struct lmz__rate_bucket *b = v;
    refill(r, b, now_ms);
    if (b->units < r->burst_units)
      continue;
    lmz_hmap_del(&r->map, k, kl);
    free(b);
    r->stats.swept++;
  }
  r->stats.keys = r->map.n;
}

/* A new full bucket for key, or NULL (table full, out of memory). */
static struct lmz__rate_bucket *bucket_new(lmz_rate *r, const void *key,
                                           size_t len, uint64_t now_ms) {
  if (r->map.n >= r->max_keys)
    sweep(r, now_ms);
  if (r->map.n >= r->max_keys)
    return NULL;
  struct lmz__rate_bucket *b = malloc(sizeof *b + (len ? len : 1));
  if (!b)
    return NULL;
  *b = (struct lmz__rate_bucket){r->burst_units, now_ms, len};
  memcpy(b->key, key, len);
  if (lmz_hmap_put(&r->map, b->key, len, b, NULL)) {
    free(b);
    return NULL;
  }
  r->stats.keys = r->map.n;
  return b;
}

int lmz_rate_take(lmz_rate *r, const void *key, size_t len, uint64_t now_ms,
                  uint32_t *retry_after_s) {
  if (!lmz_rate_enabled(r))
    return 0;
  len = len < LMZ_RATE_MAX_KEY_LEN ? len : LMZ_RATE_MAX_KEY_LEN;
  struct lmz__rate_bucket *b = lmz_hmap_get(&r->map, key, len);
  if (!b && !(b = bucket_new(r, key, len, now_ms))) {
    r->stats.untracked++;
    return 0;
  }
  refill(r, b, now_ms);
  if (b->units >= UNITS_PER_TOKEN) {
    b->units -= UNITS_PER_TOKEN;
    r->stats.allowed++;
    return 0;
  }
  r->stats.limited++;
  if (retry_after_s) { /* ceil(ms until one token), then ceil to seconds */
    uint64_t ms = (UNITS_PER_TOKEN - b->units + r->per_minute - 1) / r->per_minute;
    uint64_t s = (ms + 999) / 1000;
    *retry_after_s = (uint32_t)(s ? clamp(s, UINT32_MAX) : 1);
  }
  return LMZ_EOVERLOAD;
}
