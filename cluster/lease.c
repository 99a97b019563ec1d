/* cluster/lease.c - lease arithmetic (see lease.h for the protocol and the
 * safety argument).
 *
 * Happy path: the holder sends a renewal every L/3 (should_renew/begin),
 * and each grant pushes valid_until to t_req + L - margin; the leader
 * computes heard + L + margin for expiry.
 *
 * Failure modes:
 *  1. Lost or late replies: should_renew fires again after L/3 even while a
 *     renewal is in flight; a late grant for an old t_req cannot shorten the
 *     lease (max), nor extend it past what its own t_req allows.
 *  2. Arithmetic overflow near UINT64_MAX: expiry saturates (never wraps to
 *     an early time, which would be unsafe).
 *  3. A t_req earlier than L - margin before 0: valid_until stays 0. */
#include "cluster/lease.h"

#include "core/err.h"

int lmz_lease_config_check(const struct lmz_lease_config *c) {
  if (!c || c->duration_ms < LMZ_LEASE_MIN_MS ||
      c->duration_ms > LMZ_LEASE_MAX_MS)
    return LMZ_EINVAL;
  if (c->margin_ms == 0 || c->margin_ms >= c->duration_ms / 2)
    return LMZ_EINVAL;
  return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void lmz_lease_holder_init(struct lmz_lease_holder *h) {
  *h = (struct lmz_lease_holder){0};
}

bool lmz_lease_holder_should_renew(const struct lmz_lease_holder *h,
                                   const struct lmz_lease_config *c,
                                   uint64_t now_ms) {
  if (!h->requested)
    return true;
  if (!h->in_flight && !lmz_lease_holder_is_valid(h, now_ms))
    return true; /* no lease and nothing pending: ask at once */
  /* Before last_request (a clock that went backwards is impossible for a
   * monotonic clock, but never trust it): wait. */
  if (now_ms < h->last_request_ms)
    return false;
  return now_ms - h->last_request_ms >= c->duration_ms / 3;
}

uint64_t lmz_lease_holder_begin(struct lmz_lease_holder *h, uint64_t now_ms) {
  h->last_request_ms = now_ms;
  h->requested = true;
  h->in_flight = true;
  return now_ms;
}

void lmz_lease_holder_granted(struct lmz_lease_holder *h,
                              const struct lmz_lease_config *c,
                              uint64_t t_req_ms, uint64_t seq) {
  if (t_req_ms == h->last_request_ms)
    h->in_flight = false;
  if (seq > h->granted_seq)
    h->granted_seq = seq;
  uint64_t span = (uint64_t)c->duration_ms - c->margin_ms;
  /* t_req + span may only be later than valid_until; never wraps. */
  uint64_t until = sat_add(t_req_ms, span);
  if (until > h->valid_until_ms)
    h->valid_until_ms = until;
}

void lmz_lease_holder_failed(struct lmz_lease_holder *h, uint64_t t_req_ms) {
  if (t_req_ms == h->last_request_ms) {
    h->in_flight = false;
    h->requested = false; /* allow an immediate retry */
  }
}

void lmz_lease_holder_revoke(struct lmz_lease_holder *h) {
  h->valid_until_ms = 0;
  h->in_flight = false;
  h->requested = false;
}

bool lmz_lease_holder_is_valid(const struct lmz_lease_holder *h,
                               uint64_t now_ms) {
  return now_ms < h->valid_until_ms;
}

uint64_t lmz_lease_holder_remaining_ms(const struct lmz_lease_holder *h,
                                       uint64_t now_ms) {
  return now_ms < h->valid_until_ms ? h->valid_until_ms - now_ms : 0;
}

uint64_t lmz_lease_expiry_ms(uint64_t heard_ms, uint32_t lease_ms,
                             uint32_t margin_ms) {
  return sat_add(heard_ms, (uint64_t)lease_ms + margin_ms);
}

bool lmz_lease_is_surely_expired(uint64_t heard_ms, uint32_t lease_ms,
                                 uint32_t margin_ms, uint64_t now_ms) {
  uint64_t exp = lmz_lease_expiry_ms(heard_ms, lease_ms, margin_ms);
  /* A saturated expiry never passes: better never than too early. */
  return exp != UINT64_MAX && now_ms >= exp;
}

bool lmz_lease_is_live(uint64_t heard_ms, uint32_t lease_ms, uint64_t now_ms) {
  return now_ms < sat_add(heard_ms, lease_ms);
}

bool lmz_lease_is_current(uint64_t heard_ms, uint32_t lease_ms,
                          uint64_t now_ms) {
  return now_ms < sat_add(heard_ms, lease_ms / 3 + lease_ms / 6);
}
