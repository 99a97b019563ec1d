/* cluster/lease.h - node leases: pure arithmetic with injected times.
 *
 * WHY. A node may run turns of its actors only while it holds a valid lease,
 * and the directory leader may hand a node's actors to anyone else only
 * after that lease has *surely* expired. Together these give fencing: a node
 * cut off from the majority stops serving before anybody else may take its
 * actors, so no actor is ever active on two nodes at once.
 *
 * PROTOCOL.
 *   1. Holder H reads its monotonic clock: t_req. It sends a renewal
 *      (DirLeaseRenew{node_id, L}) to the leader, which commits it through
 *      Raft. The renewal's reply echoes t_req (lmz_lease_holder_begin()
 *      returns it). Renewals go out every L/3, so two may be lost before the
 *      lease runs out.
 *   2. H, on a successful reply: valid_until = t_req + L - margin (its own
 *      clock). H runs turns only while now < valid_until, and checks it
 *      again before it releases a turn's outputs (output gate): outputs
 *      computed under the lease but released after it are dropped.
 *   3. Every directory replica (the leader included) records, on its own
 *      monotonic clock, `heard_ms` = the time at which it *applied* H's
 *      latest renewal (cluster/directory.h). A replica that restarts or
 *      restores a snapshot sets heard_ms = now for every node.
 *   4. The leader treats H's lease as surely expired once
 *      now >= heard_ms + L + margin (its own clock). Only then may it commit
 *      DirMarkDown{H, expected_lease_seq}, and only a DOWN owner's actors may
 *      be moved without the owner's cooperation. The FSM refuses the
 *      MarkDown if H's lease sequence changed in between (a renewal was
 *      committed after the leader looked), and refuses renewals of a DOWN
 *      node: a fenced node must re-register, it cannot silently resume.
 *
 * SAFETY ARGUMENT. Let r be real time and assume each monotonic clock runs
 * at a rate within [1 - rho, 1 + rho] of real time.
 *   - The renewal was applied on a replica after it was committed, which is
 *     after H sent it: r(apply) >= r(t_req). (A replica that applies it late,
 *     replays it at restart or restores it from a snapshot only moves
 *     heard_ms later, which is conservative.)
 *   - H stops at r(t_req) + (L - margin) / (1 - rho) at the latest.
 *   - The leader acts no earlier than r(apply) + (L + margin) / (1 + rho)
 *     >= r(t_req) + (L + margin) / (1 + rho).
 *   - So H has stopped before the leader acts whenever
 *     (L - margin)(1 + rho) <= (L + margin)(1 - rho), i.e. rho <= margin / L.
 *     With the defaults (L = 3000 ms, margin = 300 ms) that tolerates a
 *     10% rate difference; NTP-disciplined or free-running crystals differ by
 *     well under 0.1%. Wall clocks are never used: steps do not matter.
 *   - A new leader has every committed renewal in its log (Raft leader
 *     completeness) and serves only after its first barrier, so it has
 *     applied them all before it looks at heard_ms.
 *   - Turn length: a turn started at now < valid_until may still be running
 *     at valid_until; its outputs are gated (step 2) and its storage is local
 *     to H, so nothing it does after valid_until is visible to others.
 *
 * Threading: every function is pure (no clocks read, no allocation) and
 * thread-safe on distinct objects. Times are milliseconds of a monotonic
 * clock chosen by the caller; 0 is a valid time. */
#ifndef LMZ_CLUSTER_LEASE_H
#define LMZ_CLUSTER_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#define LMZ_LEASE_MIN_MS 50u        /* shortest lease the directory accepts */
#define LMZ_LEASE_MAX_MS 600000u    /* longest: 10 minutes */
#define LMZ_LEASE_DEFAULT_MS 3000u  /* > election timeout + a few renewals */
#define LMZ_LEASE_DEFAULT_MARGIN_MS 300u

struct lmz_lease_config {
  uint32_t duration_ms; /* L */
  uint32_t margin_ms;   /* clock-rate allowance; see the argument above */
};

/* Returns 0, or LMZ_EINVAL unless LMZ_LEASE_MIN_MS <= duration_ms <=
 * LMZ_LEASE_MAX_MS and 0 < margin_ms < duration_ms / 2. */
int lmz_lease_config_check(const struct lmz_lease_config *c);

/* ---- holder side (the node that runs turns) ------------------------------ */

struct lmz_lease_holder {
  uint64_t valid_until_ms;  /* lease valid while now < this; 0 = none */
  uint64_t last_request_ms; /* t_req of the newest renewal sent */
  uint64_t granted_seq;     /* lease sequence of the newest grant */
  bool in_flight;           /* a renewal is outstanding */
  bool requested;           /* last_request_ms is meaningful */
};

/* A holder with no lease (not valid). */
void lmz_lease_holder_init(struct lmz_lease_holder *h);
/* True when a renewal should be sent now: none was ever sent, or L/3 passed
 * since the last one (even if it is still in flight: it may be lost). */
bool lmz_lease_holder_should_renew(const struct lmz_lease_holder *h,
                                   const struct lmz_lease_config *c,
                                   uint64_t now_ms);
/* Records that a renewal is being sent at now_ms; returns t_req (= now_ms),
 * which the caller carries with the request and passes back on reply. */
uint64_t lmz_lease_holder_begin(struct lmz_lease_holder *h, uint64_t now_ms);
/* A renewal sent at t_req_ms was committed with lease sequence `seq`:
 * valid_until becomes max(valid_until, t_req + L - margin). A late reply to
 * an old request never shortens the lease. */
void lmz_lease_holder_granted(struct lmz_lease_holder *h,
                              const struct lmz_lease_config *c,
                              uint64_t t_req_ms, uint64_t seq);
/* The renewal sent at t_req_ms failed (timeout, no leader): nothing changes
 * except that a retry is allowed at once. */
void lmz_lease_holder_failed(struct lmz_lease_holder *h, uint64_t t_req_ms);
/* The directory refused a renewal because the node is fenced (DOWN) or
 * unknown: the lease ends now, whatever remained of it. */
void lmz_lease_holder_revoke(struct lmz_lease_holder *h);
/* True while turns may run: now < valid_until. */
bool lmz_lease_holder_is_valid(const struct lmz_lease_holder *h,
                               uint64_t now_ms);
/* Milliseconds of lease left at now_ms (0 when not valid). */
uint64_t lmz_lease_holder_remaining_ms(const struct lmz_lease_holder *h,
                                       uint64_t now_ms);

/* ---- grantor side (the directory leader) -------------------------------- */

/* The first time, on the replica's clock, at which a lease of `lease_ms`
 * whose latest renewal this replica applied at heard_ms is surely expired:
 * heard_ms + lease_ms + margin_ms (saturating). */
uint64_t lmz_lease_expiry_ms(uint64_t heard_ms, uint32_t lease_ms,
                             uint32_t margin_ms);
/* now_ms >= lmz_lease_expiry_ms(...). */
bool lmz_lease_is_surely_expired(uint64_t heard_ms, uint32_t lease_ms,
                                 uint32_t margin_ms, uint64_t now_ms);
/* True while the node counts as "heard from" for placement: its lease, as
 * the leader last granted it, has not run out: now_ms < heard_ms + lease_ms.
 * (Liveness only; safety decisions use lmz_lease_is_surely_expired.) */
bool lmz_lease_is_live(uint64_t heard_ms, uint32_t lease_ms, uint64_t now_ms);
/* True while the node's renewals are current: its latest one was applied
 * within one renewal interval (L/3) plus slack (L/6) on this replica's
 * clock: now_ms < heard_ms + L/2. A node that stopped (paused, partitioned
 * away with its links still up) drops out of placement after that, long
 * before its lease could be surely expired (issue 15 item 3). Liveness
 * only, like lmz_lease_is_live. */
bool lmz_lease_is_current(uint64_t heard_ms, uint32_t lease_ms,
                          uint64_t now_ms);

#endif
