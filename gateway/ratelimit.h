/* gateway/ratelimit.h - token buckets keyed by a byte string: the gateway's
 * per-subject limits on authenticated HTTP requests to actors and on
 * WebSocket connections (issue 11 item 5; the original binds a rate limiter
 * per `sub` in its Worker hooks, lumenize-behaviour section 5.4).
 *
 * Each key has a bucket of at most `burst` tokens that refills at
 * `per_minute` tokens a minute, continuously; a request takes one token or
 * is refused with the whole seconds after which one will be there (the
 * HTTP answer's Retry-After). A new key starts with a full bucket.
 *
 * Time is the caller's: every call passes `now_ms` (the gateway passes its
 * node's injected clock, so unit tests step a fake one). A clock that goes
 * backwards refills nothing and never underflows.
 * Arithmetic is exact: one token is 60000 units and a millisecond adds
 * `per_minute` units, so "burst 3, 60 a minute" gives a token back every
 * 1000 ms exactly, with no floating-point drift.
 *
 * Memory is bounded: at most max_keys buckets (hash table keyed by the
 * subject: core/hmap.h, seeded, so chosen keys cannot force collisions).
 * When the table is full, buckets that have refilled to `burst` (they hold
 * no information: a new bucket would be the same) are dropped, at most once
 * a second; if it is still full, the new key is let through unmetered and
 * counted in `untracked` (a limiter must not lock out every new subject
 * because max_keys others are busy; only holders of that many valid tokens
 * can fill it).
 *
 * Threads: one at a time (the gateway's loop thread). */
#ifndef LMZ_GATEWAY_RATELIMIT_H
#define LMZ_GATEWAY_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hmap.h"

#define LMZ_RATE_MAX_KEYS 65536u   /* default max_keys */
#define LMZ_RATE_MAX_KEY_LEN 1024u /* longer keys are cut (subjects are short) */
#define LMZ_RATE_MAX_PER_MINUTE 6000000u
#define LMZ_RATE_MAX_BURST 1000000u

struct lmz_rate_opts {
  uint32_t per_minute; /* tokens added a minute; 0 = no limit at all */
  uint32_t burst;      /* bucket size; 0 = per_minute (a minute's worth) */
  size_t max_keys;     /* 0 = LMZ_RATE_MAX_KEYS */
};

struct lmz_rate_stats {
  uint64_t allowed, limited, untracked, swept;
  uint64_t keys; /* gauge: buckets held */
};

typedef struct lmz_rate {
  uint64_t per_minute, burst_units; /* burst in units (tokens x 60000) */
  size_t max_keys;
  lmz_hmap map;          /* key -> struct lmz__rate_bucket (owns its key) */
  uint64_t last_sweep_ms; /* at most one sweep a second */
  bool swept_once;
  struct lmz_rate_stats stats;
} lmz_rate;

/* Sets up `r` (values out of range are clamped to the LMZ_RATE_MAX_*
 * bounds). Never fails; the table grows on use. */
void lmz_rate_init(lmz_rate *r, const struct lmz_rate_opts *o);
/* Frees every bucket. */
void lmz_rate_free(lmz_rate *r);
/* Whether the limiter is on (per_minute > 0). */
static inline bool lmz_rate_enabled(const lmz_rate *r) { return r->per_minute > 0; }

/* Takes one token from `key`'s bucket at `now_ms`. Returns 0 (allowed; also
 * when the limiter is off, or out of memory / table full: unmetered) or
 * LMZ_EOVERLOAD (refused; *retry_after_s, if not NULL, gets the seconds,
 * at least 1, until a token is there). */
int lmz_rate_take(lmz_rate *r, const void *key, size_t len, uint64_t now_ms,
                  uint32_t *retry_after_s);

#endif
