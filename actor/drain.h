/* actor/drain.h - draining a node (lmz node drain): every actor it owns
 * moves to another live, connected node with its whole state, and the node
 * stops receiving new placements.
 *
 * For each actor this node owns, one at a time:
 *   1. mark it moving: new calls for it park in the router;
 *   2. wait until it is idle (no queued/running turn, no commit in flight,
 *      no pending handler or deferred reply), bounded;
 *   3. export its key range (storage/store.h dump) and send it to the target
 *      node as an ImportRequest (proto/lmz.proto); the target imports it in
 *      one batch, re-indexes its alarms and answers ImportResponse;
 *   4. commit the move (epoch + 1, graceful) through the leader; a move
 *      whose outcome is unknown (leader change, timeout) is proposed again;
 *   5. wait until this node's own directory replica applied the move (the
 *      leader answers before a follower learns the commit: unmarking then
 *      let a call run here on the dropped state), then delete the local
 *      range, drop the activation, unmark: the parked calls route to the
 *      new owner.
 * A step that fails leaves the actor here (unmarked) and counts it failed;
 * the node is DRAINING in the directory from the start, so nothing new is
 * placed on it. Once every actor was handled, the drain also waits
 * (bounded, 30 s) until no actor lists this node as a backup: the owners
 * fill replacements and then drop it (cluster/repl.h). The target is chosen over placement's one candidate set
 * (cluster/placement.h), this node excluded.
 *
 * Threading: loop thread only. */
#ifndef LMZ_ACTOR_DRAIN_H
#define LMZ_ACTOR_DRAIN_H

#include "actor/router.h"

/* cb gets the counts; it is not called when the router closes first (the
 * drain is cancelled then). Returns 0, LMZ_EBUSY (a drain runs) or an
 * error from proposing DRAINING. */
typedef void (*lmz_drain_cb)(lmz_router_t *r, int moved, int failed, void *arg);
int lmz_drain_start(lmz_router_t *r, lmz_drain_cb cb, void *arg);

/* Node-port hooks (server/lmzd.c's frame table): an ImportRequest from a
 * draining peer (we are its target), and the ImportResponse to ours. */
void lmz_drain_on_import_request(lmz_router_t *r, lmz_conn_t *conn,
                                 const Lmz__Frame *f);
void lmz_drain_on_import_response(lmz_router_t *r, lmz_conn_t *conn,
                                  const Lmz__Frame *f);

#endif
