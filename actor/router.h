/* actor/router.h - routing durable-object calls by the placement directory.
 *
 * Every durable-object call leaving or entering the node goes through the
 * router (a one-node `--dev` cluster too: one code path). It asks the
 * cluster (cluster/cluster.h: directory, lease, leader) and decides:
 *   - the directory knows the owner: run here (if our lease is valid) or
 *     forward the call to the owner over the node transport, with the epoch;
 *   - it does not: claim the actor through the leader (claims are batched
 *     into Raft entries), park the call, route it when the claim is applied;
 *   - the owner is DOWN: the call fails with a retryable
 *     ActorUnavailableError naming the owner (availability never trumps
 *     single activation);
 *   - a forwarded call that reaches a node which does not own the actor (its
 *     directory moved on) is answered MOVED; the sender waits for its own
 *     directory to catch up and routes again (bounded).
 * Workers run on the node that receives the call; they are never placed.
 * Drains (moving this node's actors away) are in actor/drain.h.
 *
 * Threading: loop thread only. */
#ifndef LMZ_ACTOR_ROUTER_H
#define LMZ_ACTOR_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/node.h"
#include "core/buf.h"
#include "core/hmap.h"

typedef struct lmz_router_s lmz_router_t;
typedef void (*lmz_router_close_cb)(lmz_router_t *r, void *arg);
/* Opaque here: the router's API names no cluster, Raft or protobuf
 * internals. */
typedef struct lmz_cluster_s lmz_cluster_t; /* cluster/cluster.h */
typedef struct lmz_conn_s lmz_conn_t;       /* cluster/transport.h */
typedef struct Lmz__Frame Lmz__Frame;       /* proto/lmz.proto, hooks only */

struct lmz_router_opts {
  uint32_t park_timeout_ms; /* how long a call may wait for the directory
                               (0 = 10000) */
};

struct lmz_router_stats {
  uint64_t forwarded, forwarded_in, moved, claims, claims_remote,
      unavailable, parked_now, forwards_pending;
  uint64_t gated; /* calls parked for their placement's activation mark
                     (cluster/activation.h) */
  bool lease_valid;
  uint64_t lease_remaining_ms;
  uint64_t leader_id;
  int role;
  uint64_t term;
  /* replication (cluster/repl.h): see lmz status "replication" */
  uint64_t repl_under_replicated, repl_shipped, repl_pending, repl_pair_outs,
      repl_fills, repl_applied, repl_refused, repl_in_sync, repl_out_of_sync,
      repl_max_lag_ms, repl_lag_bytes, repl_stale_dropped;
  /* broadcast (actor/broadcast.c): Broadcast frames sent and the targets
   * they carried; targets answered MOVED/UNAVAILABLE by their receiver (and
   * routed again alone); frames and targets received; targets this node
   * refused (not its own) */
  uint64_t bcast_frames_out, bcast_targets_out, bcast_moved, bcast_frames_in,
      bcast_targets_in, bcast_refused;
};

/* The router handle (README "Code conventions"): the caller allocates it;
 * the fields are private to router.c. */
struct lmz_msg;
struct lmz__router_fwd;
struct lmz_drain;
struct lmz__bcast_rt;
struct lmz_router_s {
  lmz_node_t *node;
  uint64_t relay_claims; /* claims proposed for relay actors (metrics) */
  struct relay_claim *relays; /* claim_local proposals in flight or waiting */
  lmz_cluster_t *c;
  struct lmz_router_opts o;
  uv_check_t retry; /* one retry pass per loop iteration, however many
                       claims completed in it (no O(claims x parked)) */
  bool retry_armed;
  struct lmz_msg *parked_head, *parked_tail;
  lmz_hmap claims; /* actor key -> struct claim_flight */
  lmz_hmap fwds;   /* call id -> struct lmz__router_fwd */
  struct lmz__router_fwd *fwd_head, *fwd_tail; /* the same, oldest first */
  lmz_hmap moving;         /* actor key -> drain: being moved away */
  struct lmz_drain *drain; /* the drain in progress, or NULL */
  uint64_t next_id;
  /* actor/fresh.c: fresh placements with a higher epoch drop stale copies
   * here (UINT64_MAX until known); the store's record was read */
  uint64_t fresh_since;
  bool fresh_since_read, fresh_since_unsaved;
  struct lmz__bcast_rt *bc; /* broadcast flights and inbound batches */
  /* tests: frames to peers go here (lmz__router_send_fn) */
  int (*send_hook)(void *arg, uint64_t peer, const Lmz__Frame *f);
  void *send_arg;
  int handles_open; /* retry + the broadcast flush, at close */
  bool closing;
  lmz_router_close_cb close_cb;
  void *close_arg;
  struct lmz_router_stats st;
};

/* Routes node `n`'s durable-object calls through cluster `c` (borrowed; it
 * must outlive the router's close), in the caller's `r`. Returns 0 or
 * LMZ_ENOMEM with errmsg; on error nothing is left on the loop and `r` may
 * be freed at once. */
int lmz_router_init(lmz_router_t *r, lmz_node_t *n, lmz_cluster_t *c,
                    const struct lmz_router_opts *o, char *errmsg);
/* Node-port hooks (server/lmzd.c's frame table): a Result frame for a
 * forwarded call; connection states (calls in flight to a peer whose link
 * dropped fail at once). */
void lmz_router_on_result(lmz_router_t *r, lmz_conn_t *conn,
                          const Lmz__Frame *f);
/* Broadcast and BroadcastResult frames (lmz_broadcast, actor/broadcast.c). */
void lmz_router_on_broadcast(lmz_router_t *r, lmz_conn_t *conn,
                             const Lmz__Frame *f);
void lmz_router_on_broadcast_result(lmz_router_t *r, lmz_conn_t *conn,
                                    const Lmz__Frame *f);
void lmz_router_on_conn_state(lmz_router_t *r, lmz_conn_t *conn, int state,
                              int status);
/* Ownership check for a call forwarded to us: 0 = ours (run it),
 * LMZ_EMOVED (*epoch = our view, 0 = unknown; also while a drain moves it
 * away: the sender routes again once the move settled), LMZ_EUNAVAILABLE
 * (our lease is not valid). */
int lmz_router_check_owner(lmz_router_t *r, const char *binding,
                           const char *instance, uint64_t epoch,
                           uint64_t *cur_epoch);
/* May this node run (binding, instance) now (its alarms)? 0 = the
 * directory names us the owner and our lease is valid; LMZ_EMOVED (another
 * owner, or not placed); LMZ_EUNAVAILABLE (no valid lease, or a drain is
 * moving it away). */
int lmz_router_owns(lmz_router_t *r, const char *binding, const char *instance);
void lmz_router_get_stats(lmz_router_t *r, struct lmz_router_stats *st);
/* Status JSON (lmz status): the cluster's view (cluster/cluster.h). */
int lmz_router_status_json(lmz_router_t *r, lmz_buf *out);
lmz_cluster_t *lmz_router_cluster(lmz_router_t *r);
/* Fails parked and forwarded calls (LMZ_ECANCELED), cancels a drain in
 * progress, closes the router's handles; cb after. The cluster is not
 * closed (its owner closes it after this). */
void lmz_router_close(lmz_router_t *r, lmz_router_close_cb cb, void *arg);
/* After the close callback AND the cluster's close (claims still in flight
 * complete, cancelled, at the cluster's close and still reach the router):
 * releases what the router holds. The memory of `r` is then the caller's.
 * NULL is ignored. */
void lmz_router_release(lmz_router_t *r);

#endif
