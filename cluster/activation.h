/* cluster/activation.h - activation of placements (issue 15 item 3;
 * directory.h "activation"): both sides of one rule.
 *
 * THE RULE. A placement claimed without backups while another node could
 * take the actor starts NOT activated. Its owner runs no turn of it (no
 * on_start, no call, no alarm: the router parks its calls) until the
 * owner's DirActivated mark for (name, epoch) is committed and applied in
 * the owner's own replica. Until then the leader may move it away from an
 * owner whose lease renewals stopped (DirReplace, epoch + 1), without
 * waiting for the owner's lease to expire.
 *
 * WHY IT IS SAFE. The mark and the re-placement are entries of one log and
 * each refuses what the other changed: a mark needs the same owner and
 * epoch, a re-placement an unactivated placement. If the re-placement is
 * first, the mark is refused and the old owner never runs a turn under
 * that epoch, so it wrote and acknowledged nothing (no key of the actor's
 * range was written there under it: nothing stale can surface if the actor
 * is placed back on that node later). If the mark is first, the
 * placement is activated and only its owner (drain) or a failover moves it,
 * as before. The old owner's activation of that epoch, if any, is dropped
 * by the epoch check when the actor comes back (lmz__actor_for_epoch).
 *
 * OWNER SIDE (every node): lmz_act_request() queues a mark, proposed at
 * once when no mark batch is in flight, else with everything queued
 * meanwhile as ONE DirActivated command (at most LMZ_ACT_MAX_BATCH items)
 * when the flight ends (or on the tick after a failure). The router may
 * run the actor once the local replica shows the mark, or once the leader
 * confirmed that very item (a batch of one: the answer is its own; for a
 * bigger batch the answer is the first item's and proves nothing about
 * the others). A request stays known until the
 * local replica shows the placement activated, or no longer ours at that
 * epoch: a failed or refused batch is proposed again (marks are
 * idempotent, a stale one is refused), so the caller just asks again each
 * time it routes a parked call.
 *
 * LEADER SIDE (the serving leader): every `margin/2` the tick looks for
 * nodes whose renewals are not current (lmz_lease_is_current false, DOWN
 * included) and that own unactivated placements (n_unactivated), and
 * proposes ONE DirReplace batch (one in flight) moving them to the HASH
 * choice among the placement candidates (UP, current, connected).
 *
 * Time: none of its own; the owner's tick passes now. Threading: loop
 * only. */
#ifndef LMZ_CLUSTER_ACTIVATION_H
#define LMZ_CLUSTER_ACTIVATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/dirclient.h"
#include "cluster/lease.h"
#include "core/hmap.h"

#define LMZ_ACT_MAX_BATCH 4096
#define LMZ_ACT_MAX_PENDING 100000 /* beyond it requests are refused */

/* The placement candidates now (cluster.c lmz__cluster_candidates). */
typedef size_t (*lmz_act_candidates_fn)(void *ctx, uint64_t now,
                                        uint64_t *out, size_t cap);
typedef void (*lmz_act_wake_fn)(void *ctx);

struct lmz_act_options {
  lmz_dirclient_t *dc;  /* borrowed */
  const lmz_dir_t *dir; /* borrowed: the local replica */
  uint64_t node_id;
  struct lmz_lease_config lease; /* L for nodes that never renewed */
  lmz_act_candidates_fn candidates;
  lmz_act_wake_fn wake; /* a mark batch settled (parked calls may go) */
  void *ctx;            /* for both */
};

/* replaced: items of re-placement batches whose first item applied (a
 * batch is one Raft entry; later items may still have been refused). */
struct lmz_act_stats {
  uint64_t requested, mark_batches, marks_proposed, replace_batches,
      replaced, replace_failed;
};

struct lmz_act_mark;

typedef struct lmz_act {
  /* private */
  struct lmz_act_options o;
  lmz_hmap marks; /* "binding\0instance" -> struct lmz_act_mark */
  bool mark_flight, replace_flight, closing;
  size_t flight_n;  /* marks in the batch in flight */
  size_t replace_n; /* items in the re-placement batch in flight */
  uint64_t next_watch_ms;
  lmz_dirclient_req_t mark_req, replace_req;
  struct lmz_act_stats st;
} lmz_act;

void lmz_act_init(lmz_act *a, const struct lmz_act_options *o);
/* Drops what is queued; requests in flight complete through the directory
 * client's close (their callbacks then only free). */
void lmz_act_close(lmz_act *a);
/* This node owns (binding, instance) at `epoch` and it is not activated:
 * mark it. Returns 0 (queued or already known), LMZ_EINVAL (lengths),
 * LMZ_EOVERLOAD (LMZ_ACT_MAX_PENDING), LMZ_ENOMEM, LMZ_ECANCELED. */
int lmz_act_request(lmz_act *a, const char *binding, const char *instance,
                    uint64_t epoch);
/* True when the leader confirmed this node's mark of (binding, instance)
 * at `epoch` itself (committed: it can no longer be re-placed at that
 * epoch), before the local replica applied it. */
bool lmz_act_confirmed(const lmz_act *a, const char *binding,
                       const char *instance, uint64_t epoch);
/* Both sides, at now_ms (see above). */
void lmz_act_tick(lmz_act *a, uint64_t now_ms);
size_t lmz_act_n_pending(const lmz_act *a);
void lmz_act_get_stats(const lmz_act *a, struct lmz_act_stats *st);

#endif
