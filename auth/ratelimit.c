/* auth/ratelimit.c - token buckets in a fixed 4-way set-associative table
 * (auth/ratelimit.h). Time comes from the caller: tests step it. */
#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "auth/ratelimit.h"
#include "core/err.h"

#define WAYS 4u

int lmz_auth_limiter_init(struct lmz_auth_limiter *l,
                          const struct lmz_auth_bucket_cfg *cfg, size_t n_slots) {
  memset(l, 0, sizeof *l);
  l->cfg = *cfg;
  l->n_slots = n_slots ? (n_slots + WAYS - 1) / WAYS * WAYS : 4096;
  l->slots = calloc(l->n_slots, sizeof *l->slots);
  if (!l->slots)
    return LMZ_ENOMEM;
  randombytes_buf(l->hash_key, sizeof l->hash_key);
  return 0;
}

void lmz_auth_limiter_free(struct lmz_auth_limiter *l) {
  free(l->slots);
  l->slots = NULL;
}

/* Refills a bucket up to now (time never runs backwards here: a clock step
 * back leaves the bucket as it was). */
static void refill(const struct lmz_auth_bucket_cfg *c, struct lmz_auth_slot *s,
                   double now_ms) {
  if (now_ms > s->last_ms) {
    s->tokens += (now_ms - s->last_ms) * c->per_hour / 3600000.0;
    if (s->tokens > c->burst)
      s->tokens = c->burst;
    s->last_ms = now_ms;
  }
}

static struct lmz_auth_slot *find(struct lmz_auth_limiter *l, uint64_t h,
                                  double now_ms) {
  struct lmz_auth_slot *set = &l->slots[(h % (l->n_slots / WAYS)) * WAYS];
  struct lmz_auth_slot *victim = &set[0];
  for (unsigned i = 0; i < WAYS; i++) {
    if (set[i].key == h)
      return &set[i];
    if (set[i].key == 0) {
      victim = &set[i];
      break;
    }
    refill(&l->cfg, &set[i], now_ms);
    if (set[i].tokens > victim->tokens)
      victim = &set[i];
  }
  *victim = (struct lmz_auth_slot){h, l->cfg.burst, now_ms};
  return victim;
}

uint32_t lmz_auth_limiter_take(struct lmz_auth_limiter *l, const char *key,
                               size_t klen, double now_ms) {
  if (l->cfg.burst <= 0 || !l->slots)
    return 0;
  uint8_t hb[crypto_shorthash_BYTES];
  crypto_shorthash(hb, (const unsigned char *)key, klen, l->hash_key);
  uint64_t h;
  memcpy(&h, hb, sizeof h);
  h |= 1; /* 0 marks an empty slot */
  struct lmz_auth_slot *s = find(l, h, now_ms);
  refill(&l->cfg, s, now_ms);
  if (s->tokens >= 1.0) {
    s->tokens -= 1.0;
    return 0;
  }
  if (l->cfg.per_hour <= 0)
    return 3600; /* never refills: come back in an hour (operator's config) */
  double wait_s = (1.0 - s->tokens) * 3600.0 / l->cfg.per_hour;
  double up = ceil(wait_s);
  return up < 1 ? 1 : up > 86400 ? 86400 : (uint32_t)up;
}
