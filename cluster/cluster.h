/* cluster/cluster.h - the cluster side of a node in one handle: the Raft
 * node with the placement directory (raftnode.h), Raft's bridge over the
 * node transport (raftbridge.h), the directory client (dirclient.h),
 * membership and leases (member.h), placement (placement.h) and the tick
 * that drives them. actor/router.c routes calls by asking it.
 *
 * Lifecycle: lmz_cluster_init() starts the directory (bootstrap on a first
 * start of an initial voter), connects to the initial voters, and from its
 * tick registers this node and keeps its lease. lmz_cluster_close() cancels
 * everything in flight (directory requests, membership changes) and closes
 * Raft; its callback comes when nothing of the cluster is left on the loop.
 *
 * Time: every decision reads the injected clock (options.now_ms), so the
 * components run under fake time in unit tests.
 *
 * Threading: loop thread only. Callbacks never run from inside the call
 * that caused them, except the cancellations inside lmz_cluster_close(). */
#ifndef LMZ_CLUSTER_CLUSTER_H
#define LMZ_CLUSTER_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/dirclient.h"
#include "cluster/activation.h"
#include "cluster/member.h"
#include "cluster/raftbridge.h"
#include "cluster/raftnode.h"
#include "cluster/release.h"
#include "cluster/repl.h"
#include "cluster/transport.h"
#include "core/buf.h"

typedef struct lmz_cluster_s lmz_cluster_t;

typedef uint64_t (*lmz_cluster_clock_fn)(void *ctx);
typedef void (*lmz_cluster_close_cb)(lmz_cluster_t *c);
/* Something a parked call may wait for happened: the lease became valid,
 * this node started serving as leader, the leader changed, a claim
 * completed. */
typedef void (*lmz_cluster_wake_cb)(lmz_cluster_t *c, void *arg);
/* Every tick (TICK_MS on the cluster's timer; the test's lmz_cluster_tick
 * in sim mode), after the cluster's own work. */
typedef void (*lmz_cluster_tick_cb)(lmz_cluster_t *c, uint64_t now_ms,
                                    void *arg);
typedef void (*lmz_cluster_member_cb)(lmz_cluster_t *c, int status,
                                      void *arg);

struct lmz_cluster_peer {
  uint64_t id;
  const char *node_address; /* "ip:port" of its node port */
  const char *raft_address; /* its Raft address (identifier) */
};

struct lmz_cluster_options {
  uint64_t node_id;          /* ours, non-zero */
  const char *node_address;  /* our node port, as peers dial it */
  const char *raft_address;  /* our Raft address (IPv4 "a.b.c.d:port") */
  const char *raft_dir;      /* created if missing */
  const struct lmz_cluster_peer *voters; /* initial voters (bootstrap) */
  size_t n_voters;           /* 0 = a one-node cluster of ourselves */
  uint32_t lease_ms;         /* 0 = default (3000) */
  uint32_t replication_factor; /* R (DESIGN 4.1): the leader gives each
                                durable actor's claim R-1 backups, capped
                                by the candidates; 0 or 1 = no backups */
  bool join;                 /* added at run time (lmz node add): never
                                bootstrap; wait to be added by the leader */
  bool raft_tcp;             /* Raft over its own TCP port instead of the
                                node transport (raftbridge.h, the default) */
  lmz_cluster_clock_fn now_ms; /* NULL = uv_hrtime() in ms */
  void *clock_ctx;
  /* The node's store holds no copies the directory may count on (a new or
   * wiped disk): the first registration says so (directory.h lost_data),
   * then lost_data_told(arg) runs once (the node records it durably). */
  bool lost_data;
  void (*lost_data_told)(void *arg);
  void *lost_data_arg;
};

struct lmz_cluster_stats {
  uint64_t claims, claims_remote;
  bool lease_valid;
  uint64_t lease_remaining_ms;
  uint64_t leader_id;
  int role;
  uint64_t term;
  uint64_t releases_pending, released; /* release.h */
  struct lmz_cluster_repl_stats {    /* repl.h; zeros without replication */
    uint64_t under_replicated;       /* the directory's, as lmz status */
    uint64_t shipped, pending_tokens, pair_outs, fills_sent, fills_done;
    uint64_t applied_records, refused, stale_dropped;
    uint64_t streams_in_sync, streams_out_of_sync; /* ours to backups */
    uint64_t max_lag_ms, lag_bytes; /* worst stream, all streams */
  } repl;
};

struct lmz_cluster_s {
  void *data;      /* public */
  uv_loop_t *loop; /* read-only */
  /* private */
  lmz_transport_t *t;
  struct lmz_cluster_options o;
  struct lmz_cluster_peer *voters; /* copied */
  char *strings;                   /* the copied addresses */
  lmz_raftnode_t rn;
  const lmz_dir_t *dir; /* rn.dir, or the test's replica (init_sim) */
  bool (*sim_connected)(void *ops_ctx, uint64_t peer); /* init_sim only */
  uint64_t raft_start_at; /* fresh Raft state: start it then (0 = started) */
  lmz_raftbridge_t bridge_mem; /* Raft over the node transport ... */
  lmz_raftbridge_t *bridge;    /* ... &bridge_mem while Raft uses it, or NULL */
  lmz_dirclient_t dc;
  lmz_relq rq; /* placements to release (release.h) */
  lmz_act act; /* activation marks, re-placements (activation.h) */
  lmz_member_t mb;
  uv_timer_t tick;
  int role;
  uint64_t leader_id;
  bool closing;
  lmz_cluster_wake_cb wake;
  lmz_cluster_tick_cb tick_hook;
  void *wake_arg; /* for both */
  lmz_cluster_close_cb close_cb;
  lmz_cluster_member_cb member_cb;
  void *member_arg;
  lmz_repl_t *repl;          /* replication (cluster_repl.c), or NULL */
  uv_prepare_t repl_flush;   /* flushes its streams once per iteration */
  bool repl_flush_on;
  struct repl_prop *repl_props; /* its proposals in flight */
  lmz_buf acquired; /* "binding\0instance\0" of actors that became ours */
};

/* Initializes c on `loop` over the node transport `t` (borrowed; must
 * outlive c). Returns 0 or an error with errmsg; on error nothing is left
 * on the loop and c may be freed at once. Call it outside loop callbacks
 * (at start-up): a failure after Raft was initialized runs the loop until
 * Raft's handles are closed. */
int lmz_cluster_init(uv_loop_t *loop, lmz_cluster_t *c, lmz_transport_t *t,
                     const struct lmz_cluster_options *o, char *errmsg);
/* Cancels directory requests (LMZ_ECANCELED) and membership changes,
 * closes Raft and the tick; cb runs once all of it is off the loop. */
void lmz_cluster_close(lmz_cluster_t *c, lmz_cluster_close_cb cb);
/* The router's hooks: wake (parked calls may proceed) and its tick work
 * (expiry, retries), so that it runs on the cluster's clock. */
void lmz_cluster_set_hooks(lmz_cluster_t *c, lmz_cluster_wake_cb wake,
                           lmz_cluster_tick_cb tick, void *arg);

/* Tests: a cluster without Raft, transport or handles, on fake time. The
 * directory replica and the way to the leader (dirclient.h ops) are the
 * test's (tests/unit/cluster/simdir.h); the test drives
 * lmz_cluster_tick() and lmz_cluster_leader_changed(). Peers have no
 * links (lmz_cluster_peer_conn returns NULL): lmz_cluster_send goes through
 * ops.send, and a peer counts as connected when `connected` (may be NULL:
 * never) says so. Close: lmz_cluster_close_sim
 * (synchronous). */
struct lmz_cluster_sim {
  uint64_t node_id;
  lmz_cluster_clock_fn now_ms;
  void *clock_ctx;
  const lmz_dir_t *dir;
  struct lmz_dirclient_ops ops;
  void *ops_ctx;
  uint32_t lease_ms;
  bool (*connected)(void *ops_ctx, uint64_t peer);
};
int lmz_cluster_init_sim(lmz_cluster_t *c, const struct lmz_cluster_sim *s);
void lmz_cluster_close_sim(lmz_cluster_t *c);
/* One tick at now_ms: request expiry, registration, renewals, lease watch
 * (the timer's work). */
void lmz_cluster_tick(lmz_cluster_t *c, uint64_t now_ms);

/* Node-port hooks (server/lmzd.c's frame table): RaftData, DirRequest,
 * DirResponse frames, and connection states. The transport closes after the
 * cluster, so they may still be called once lmz_cluster_close started (and
 * after it completed, until c's memory is freed): they then do nothing. */
void lmz_cluster_on_raft_data(lmz_cluster_t *c, lmz_conn_t *conn,
                              const Lmz__Frame *f);
void lmz_cluster_on_dir_request(lmz_cluster_t *c, lmz_conn_t *conn,
                                const Lmz__Frame *f);
void lmz_cluster_on_dir_response(lmz_cluster_t *c, lmz_conn_t *conn,
                                 const Lmz__Frame *f);
void lmz_cluster_on_conn_state(lmz_cluster_t *c, lmz_conn_t *conn, int state,
                               int status);

/* ---- replication (cluster_repl.c; cluster/repl.h, DESIGN.md 4.1) -------- */

/* R is the cluster's options.replication_factor. */
struct lmz_cluster_repl_options {
  uint32_t max_lag_ms;    /* 0 = repl.h default */
  uint64_t max_lag_bytes; /* 0 = repl.h default */
  uint64_t retention_bytes; /* 0 = repl.h default, UINT64_MAX = none */
  void (*on_progress)(void *arg); /* acked_through advanced */
  void *progress_arg;
};
/* Starts the replicator over the node's `store` (borrowed; it must outlive
 * the cluster's close). The cluster closes it (lmz_cluster_close). Returns
 * 0 or an error with errmsg. */
int lmz_cluster_repl_start(lmz_cluster_t *c, lmz_store_t *store,
                           const struct lmz_cluster_repl_options *o,
                           char *errmsg);
/* The replicator, or NULL (not started, or closing). */
lmz_repl_t *lmz_cluster_repl(lmz_cluster_t *c);
/* Node-port hooks: ReplAppend / ReplAck frames. */
void lmz_cluster_on_repl_append(lmz_cluster_t *c, lmz_conn_t *conn,
                                const Lmz__Frame *f);
void lmz_cluster_on_repl_ack(lmz_cluster_t *c, lmz_conn_t *conn,
                             const Lmz__Frame *f);
/* The node's disk failed a replicated write: it gives its lease up for
 * good (member.h lmz_member_stop_serving), so its actors fail over to
 * their backups; logged with the reason. */
void lmz_cluster_stop_serving(lmz_cluster_t *c, const char *why);
/* Internal to cluster.c and cluster_repl.c. The placement candidate set
 * (placement.h) as this node sees it at now (its links). */
size_t lmz__cluster_candidates(lmz_cluster_t *c, uint64_t now,
                               bool include_self, uint64_t *out, size_t cap);
void lmz__cluster_repl_tick(lmz_cluster_t *c);
void lmz__cluster_repl_close(lmz_cluster_t *c);

/* ---- what the router asks ----------------------------------------------- */

/* Calls fn for each actor that became this node's own by a failover
 * promotion or a move (directory.h lmz_dir_set_move_hook) since the last
 * call, then forgets them. The names are valid during the call only. */
void lmz_cluster_take_acquired(lmz_cluster_t *c,
                               void (*fn)(void *arg, const char *binding,
                                          const char *instance),
                               void *arg);

uint64_t lmz_cluster_now_ms(const lmz_cluster_t *c);
uint64_t lmz_cluster_node_id(const lmz_cluster_t *c);
/* The local directory replica (read-only; valid until close). */
const lmz_dir_t *lmz_cluster_dir(const lmz_cluster_t *c);
bool lmz_cluster_lease_valid(const lmz_cluster_t *c, uint64_t now_ms);
bool lmz_cluster_had_lease(const lmz_cluster_t *c);
/* The link to node `id`, dialed now from its directory (or voter) address
 * if there is none; NULL when no address is known. */
lmz_conn_t *lmz_cluster_peer_conn(lmz_cluster_t *c, uint64_t id);
/* Sends a frame to node `id` over its link: 0, LMZ_EUNAVAILABLE when the
 * link is not up (no address, not connected yet), or lmz_conn_send's error.
 * On a simulated cluster it goes through the test's ops.send. */
int lmz_cluster_send(lmz_cluster_t *c, uint64_t id, const Lmz__Frame *f);
/* Claims / proposes through the leader (dirclient.h). */
int lmz_cluster_claim(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                      const char *binding, const char *instance,
                      lmz_dirclient_cb cb);
int lmz_cluster_propose(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                        const lmz_buf *cmd, lmz_dirclient_cb cb);
uint64_t lmz_cluster_next_id(lmz_cluster_t *c);
/* Placement over the one candidate set (placement.h); 0 = no candidate. */
uint64_t lmz_cluster_choose(lmz_cluster_t *c, const char *binding,
                            const char *instance, bool include_self);
/* Releases the placement of (binding, instance) at `epoch` (owned by this
 * node; the actor is not active and holds no state): queued and proposed
 * with the others of this tick as one releases command (release.h). */
int lmz_cluster_release(lmz_cluster_t *c, const char *binding,
                        const char *instance, uint64_t epoch);
/* Before activating (binding, instance) here: 0 = go ahead (a queued
 * release was dropped); LMZ_EBUSY = its release is in flight: refuse the
 * call (retryable), or with `revive` (relay actors) it is claimed here again
 * once the release settled. */
int lmz_cluster_release_cancel(lmz_cluster_t *c, const char *binding,
                               const char *instance, bool revive);
/* This node owns (binding, instance) at `epoch` and the placement is not
 * activated (directory.h ACTIVATION): queue its activation mark. The
 * caller runs no turn of it until the local replica shows it activated
 * (the router parks its calls; activation.h). Returns 0 or an error of
 * lmz_act_request. */
int lmz_cluster_activation_request(lmz_cluster_t *c, const char *binding,
                                   const char *instance, uint64_t epoch);
/* The leader confirmed that mark itself (activation.h lmz_act_confirmed):
 * it may run before the local replica shows it. */
bool lmz_cluster_activation_confirmed(lmz_cluster_t *c, const char *binding,
                                      const char *instance, uint64_t epoch);
/* This node's state in the directory (DRAINING for a drain). */
int lmz_cluster_set_state(lmz_cluster_t *c, lmz_dirclient_req_t *req,
                          enum lmz_dir_node_state state, lmz_dirclient_cb cb);
/* Membership (leader only): see member.h. */
int lmz_cluster_member(lmz_cluster_t *c, bool add, uint64_t id,
                       const char *raft_address, bool standby,
                       lmz_cluster_member_cb cb, void *arg);

void lmz_cluster_get_stats(lmz_cluster_t *c, struct lmz_cluster_stats *st);
/* Status JSON (lmz status): nodes, states, leader, term, actors per node,
 * lease ages, and "replication":{"factor":R,"under_replicated":N}: the
 * actors with fewer than min(R-1, live nodes-1) in-sync backups (O(actors)).
 * Appends to out. */
int lmz_cluster_status_json(lmz_cluster_t *c, lmz_buf *out);
/* Placement JSON of one actor (lmz locate): {"placed":false}, or owner
 * ("node"), epoch, the owner's state and address, and "backups": the
 * directory's in-sync backups in failover order. */
int lmz_cluster_locate_json(lmz_cluster_t *c, const char *binding,
                            const char *instance, lmz_buf *out);

#endif
