/* actor/router.h - the cluster side of a node: one placement directory
 * (Raft, cluster/raftnode.h) shared by every node, calls routed to the node
 * that owns an actor, the node's lease.
 *
 * Every durable-object call leaving or entering the node goes through the
 * router (a one-node `--dev` cluster too: one code path):
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
 *
 * Leases (cluster/lease.h): the node renews its lease through the leader
 * every L/3; it runs durable-object turns only while the lease is valid.
 * The leader marks a node DOWN only once its lease has surely expired.
 *
 * Threading: loop thread only. */
#ifndef LMZ_ACTOR_ROUTER_H
#define LMZ_ACTOR_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "actor/node.h"
#include "cluster/raftnode.h"
#include "cluster/transport.h"

typedef struct lmz_router lmz_router;

struct lmz_router_peer {
  uint64_t id;
  const char *node_address; /* "ip:port" of its node port */
  const char *raft_address; /* "ip:port" of its Raft port */
};

struct lmz_router_opts {
  uint64_t node_id;          /* ours, non-zero */
  const char *node_address;  /* our node port, as peers dial it */
  const char *raft_address;  /* our Raft address (IPv4 "a.b.c.d:port") */
  const char *raft_dir;      /* created if missing */
  const struct lmz_router_peer *voters; /* initial voters (bootstrap) */
  size_t n_voters;           /* 0 = a one-node cluster of ourselves */
  uint32_t lease_ms;         /* 0 = default (3000) */
  uint32_t park_timeout_ms;  /* how long a call may wait for the directory
                                (0 = 10000) */
  bool join;                 /* added at run time (lmz node add): never
                                bootstrap; wait to be added by the leader */
  bool raft_tcp;             /* Raft over its own TCP port (raft_uv_tcp)
                                instead of the authenticated node transport
                                (cluster/raftbridge.h, the default) */
};

struct lmz_router_stats {
  uint64_t forwarded, forwarded_in, moved, claims, claims_remote,
      unavailable, parked_now, forwards_pending;
  bool lease_valid;
  uint64_t lease_remaining_ms;
  uint64_t leader_id;
  int role;
  uint64_t term;
};

/* Starts the directory (bootstrap on first start), connects to the peers,
 * registers this node (UP) and starts the lease. The node routes through it
 * from now on. Returns 0 or an error with errmsg. */
int lmz_router_init(lmz_router **out, lmz_node *n, lmz_transport_t *t,
                    const struct lmz_router_opts *o, char *errmsg);
/* Transport hooks: frames from peers (Call, Result, Dir*), conn states. */
void lmz_router_on_frame(lmz_router *r, lmz_conn_t *conn, const Lmz__Frame *f);
void lmz_router_on_conn_state(lmz_router *r, lmz_conn_t *conn, int state,
                              int status);
/* Ownership check for a call forwarded to us: 0 = ours (run it),
 * LMZ_EMOVED (*epoch = our view, 0 = unknown), LMZ_EUNAVAILABLE (our lease
 * is not valid). */
int lmz_router_check_owner(lmz_router *r, const char *binding,
                           const char *instance, uint64_t epoch,
                           uint64_t *cur_epoch);
void lmz_router_get_stats(lmz_router *r, struct lmz_router_stats *st);
/* Status JSON (lmz status): nodes, states, leader, term, actors per node,
 * lease ages. Appends to out. */
int lmz_router_status_json(lmz_router *r, lmz_buf *out);
/* Placement JSON of one actor (lmz locate). */
int lmz_router_locate_json(lmz_router *r, const char *binding,
                           const char *instance, lmz_buf *out);
lmz_raftnode_t *lmz_router_raft(lmz_router *r);
/* Drains this node (lmz node drain): marks it DRAINING (no new placements),
 * then moves every actor it owns to another live node with its whole state
 * (quiesce, export the key range, import on the target, commit the move with
 * epoch + 1, drop the local copy); calls for a moving actor wait and then go
 * to the new owner. cb gets the counts. LMZ_EBUSY if a drain runs. */
typedef void (*lmz_router_drain_cb)(lmz_router *r, int moved, int failed,
                                    void *arg);
/* Membership (lmz node add/remove), on the leader only: adds node `id` with
 * Raft address `raft_address` as a voter (or standby: a replica that holds
 * the directory without voting), or removes it. One change at a time.
 * Returns 0 (cb runs with the outcome), LMZ_ENOTLEADER, LMZ_EBUSY. */
typedef void (*lmz_router_member_cb)(lmz_router *r, int status, void *arg);
int lmz_router_member(lmz_router *r, bool add, uint64_t id,
                      const char *raft_address, bool standby,
                      lmz_router_member_cb cb, void *arg);
int lmz_router_drain(lmz_router *r, lmz_router_drain_cb cb, void *arg);
typedef void (*lmz_router_close_cb)(lmz_router *r, void *arg);
/* Fails parked and forwarded calls (LMZ_ECANCELED), closes Raft; cb after. */
void lmz_router_close(lmz_router *r, lmz_router_close_cb cb, void *arg);
void lmz_router_free(lmz_router *r);

#endif
