/* auth/ratelimit.h - token buckets per key (an email address, a client IP),
 * pure and on an injected clock: the auth service's abuse control for
 * magic-link requests (issue 11 item 5).
 *
 * Each key has a bucket of `burst` tokens refilled at `per_hour` tokens an
 * hour; a request takes one token or is refused with the seconds until one
 * is back (the HTTP answer is 429 with that Retry-After).
 *
 * Memory is fixed: n_slots buckets in 4-way sets indexed by a keyed
 * SipHash of the key (the hash key is random per limiter, so a client
 * cannot aim its keys at another's set). A new key takes the slot in its
 * set with the most tokens (the least recently limited), so flooding with
 * fresh keys evicts idle buckets first; a bucket that was just drained
 * stays while its set has any fuller one.
 * Threads: one thread at a time per limiter. */
#ifndef LMZ_AUTH_RATELIMIT_H
#define LMZ_AUTH_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct lmz_auth_bucket_cfg {
  double burst;    /* bucket size; <= 0 = no limit */
  double per_hour; /* refill rate */
};

struct lmz_auth_slot {
  uint64_t key; /* SipHash of the key; 0 = empty */
  double tokens, last_ms;
};

struct lmz_auth_limiter {
  struct lmz_auth_bucket_cfg cfg;
  struct lmz_auth_slot *slots;
  size_t n_slots; /* a multiple of 4 */
  uint8_t hash_key[16];
};

/* n_slots is rounded up to a multiple of 4 (0 = 4096). 0 or LMZ_ENOMEM. */
int lmz_auth_limiter_init(struct lmz_auth_limiter *l,
                          const struct lmz_auth_bucket_cfg *cfg, size_t n_slots);
void lmz_auth_limiter_free(struct lmz_auth_limiter *l);

/* Takes one token for `key` at now_ms. Returns 0 (allowed) or the seconds
 * until a token is back (>= 1: refused, nothing taken). */
uint32_t lmz_auth_limiter_take(struct lmz_auth_limiter *l, const char *key,
                               size_t klen, double now_ms);

#endif
