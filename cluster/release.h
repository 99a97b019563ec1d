/* cluster/release.h - the release queue: placements of actors that hold no
 * state (a client gateway actor whose client is gone, a durable object whose
 * key range is empty at eviction) are forgotten by the directory, so that it
 * does not grow with every actor ever touched (issue 15 item 5).
 *
 * Contract:
 *  - lmz_relq_add() queues (binding, instance, epoch) of a placement this
 *    node owns; lmz_relq_tick() proposes everything queued as ONE releases
 *    command (at most LMZ_RELQ_MAX_BATCH items; one batch in flight at a
 *    time). The directory applies an item only if the placement still has
 *    this node as owner and that epoch (directory.h): a concurrent re-claim
 *    or move wins and the release becomes LMZ_ESTALE.
 *  - The caller releases only actors that are not active and hold no state.
 *    Before it activates an actor again it calls lmz_relq_cancel(): a queued
 *    release is dropped (0); one already proposed cannot be taken back
 *    (LMZ_EBUSY): a durable-object call must then be refused (retryable),
 *    a relay actor (revive = true) is claimed here again (LOCAL policy) once
 *    the release has settled.
 *  - A batch whose outcome is unknown (LMZ_ENOTLEADER, LMZ_ETIMEOUT) is
 *    queued again: a release applied twice turns into LMZ_ESTALE/ENOTFOUND,
 *    so retries are safe.
 * Time: none of its own; the owner's tick drives it. Threading: loop only. */
#ifndef LMZ_CLUSTER_RELEASE_H
#define LMZ_CLUSTER_RELEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/dirclient.h"
#include "core/hmap.h"

#define LMZ_RELQ_MAX_BATCH 4096
#define LMZ_RELQ_MAX_QUEUED 1000000 /* beyond it add() refuses (LMZ_EOVERLOAD) */

struct lmz_relq_item;
struct lmz_relq_batch;

/* Counters. released/stale count the items of settled batches by the
 * batch's status (the first item's, cluster.c local_propose_cb): a batch
 * whose first item lost to a re-claim counts as stale as a whole. */
struct lmz_relq_stats {
  uint64_t queued, proposed, batches, released, stale, retried, cancelled,
      revived;
};

typedef struct lmz_relq {
  /* private */
  lmz_dirclient_t *dc;
  uint64_t node_id;
  lmz_hmap items;                      /* key -> item (queued or in flight) */
  struct lmz_relq_item *head, *tail;   /* queued, not yet proposed */
  struct lmz_relq_batch *flight;       /* the batch in flight, or NULL */
  bool closing;
  struct lmz_relq_stats st;
} lmz_relq;

void lmz_relq_init(lmz_relq *q, lmz_dirclient_t *dc, uint64_t node_id);
/* Drops what is queued; a batch in flight frees itself when its request
 * completes (the directory client's or Raft's close cancels it). */
void lmz_relq_close(lmz_relq *q);
/* Returns 0, LMZ_EINVAL (lengths over the directory limits), LMZ_EOVERLOAD,
 * LMZ_ENOMEM, LMZ_ECANCELED. Queuing a name already queued keeps one entry
 * (the newer epoch). */
int lmz_relq_add(lmz_relq *q, const char *binding, const char *instance,
                 uint64_t epoch);
/* 0: nothing pending for it (any queued release dropped); LMZ_EBUSY: a
 * release is in flight (see the contract). */
int lmz_relq_cancel(lmz_relq *q, const char *binding, const char *instance,
                    bool revive);
/* True while a release of it is queued or in flight. */
bool lmz_relq_pending(const lmz_relq *q, const char *binding,
                      const char *instance);
/* Proposes the queued releases as one command when none is in flight. */
void lmz_relq_tick(lmz_relq *q);
size_t lmz_relq_n_pending(const lmz_relq *q);
void lmz_relq_get_stats(const lmz_relq *q, struct lmz_relq_stats *st);

#endif
