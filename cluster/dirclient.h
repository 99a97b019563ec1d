/* cluster/dirclient.h - the directory client: claims and proposals reach
 * the Raft leader, locally when this node is the serving leader, else as a
 * DirRequest frame to the leader (proto/lmz.proto), whose DirResponse
 * completes the request. On the leader it also serves the DirRequests of
 * its peers.
 *
 * The client does no I/O of its own: `struct lmz_dirclient_ops` says how to
 * reach the local Raft node and a peer (cluster/cluster.c wires them to
 * raftnode.h and transport.h; unit tests to a fake leader and the simulated
 * transport, cluster/transport_sim.h). Time is injected: the owner calls
 * lmz_dirclient_tick(now) and every deadline is computed from `now_ms`.
 *
 * Request outcomes (exactly one callback per accepted request, never from
 * inside the call that started it):
 *   status >= 0   the item's status (LMZ_DIR_PLACED/EXISTING/REPLACED), with
 *                 the item;
 *   status < 0    the directory's refusal (item may be set), or the request
 *                 never reached a verdict: LMZ_ENOTLEADER (the leader it was
 *                 sent to lost leadership or the link to it dropped: outcome
 *                 unknown, retry - claims are idempotent), LMZ_ETIMEOUT (no
 *                 answer within LMZ_DIRCLIENT_TIMEOUT_MS), LMZ_ECANCELED
 *                 (closing or cancelled).
 * Remote requests wait in a FIFO ordered by deadline (all share one
 * timeout), so expiry costs O(expired), not O(pending), per tick.
 *
 * Threading: loop thread only. */
#ifndef LMZ_CLUSTER_DIRCLIENT_H
#define LMZ_CLUSTER_DIRCLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/directory.h"
#include "cluster/placement.h"
#include "cluster/raftnode.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "proto/lmz.pb-c.h"

#define LMZ_DIRCLIENT_TIMEOUT_MS 1500

typedef struct lmz_dirclient_s lmz_dirclient_t;
typedef struct lmz_dirclient_req_s lmz_dirclient_req_t;

typedef void (*lmz_dirclient_cb)(lmz_dirclient_req_t *req, int status,
                                 const struct lmz_dir_item *item);

/* How the client reaches the directory. ctx is ops_ctx of the options. */
struct lmz_dirclient_ops {
  /* true when this node is the serving leader */
  bool (*is_serving)(void *ctx);
  /* the known leader (0 = none) */
  uint64_t (*leader)(void *ctx);
  /* local requests on the serving leader: complete them with
   * lmz_dirclient_local_done(); return 0 or an error (no callback then) */
  int (*claim)(void *ctx, lmz_dirclient_req_t *req, const char *binding,
               const char *instance, enum lmz_placement_policy policy,
               uint64_t local_node, uint32_t flags);
  int (*propose)(void *ctx, lmz_dirclient_req_t *req, const void *cmd,
                 size_t len);
  /* a frame to node `peer`: 0, or an error when there is no live link */
  int (*send)(void *ctx, uint64_t peer, const Lmz__Frame *f);
  uint64_t (*now_ms)(void *ctx);
};

struct lmz_dirclient_options {
  uint64_t node_id; /* ours */
  struct lmz_dirclient_ops ops;
  void *ops_ctx;
};

struct lmz_dirclient_stats {
  uint64_t claims, claims_remote, proposals, served, timeouts, retargeted;
  uint64_t expiry_visits; /* requests looked at by expiry, ever */
};

/* Caller-allocated; lives until its callback. */
struct lmz_dirclient_req_s {
  void *data; /* public */
  /* private */
  lmz_dirclient_t *dc;
  lmz_dirclient_cb cb;
  uint64_t id;
  uint64_t deadline_ms;
  uint64_t sent_to; /* remote: the leader it went to; 0 = local */
  lmz_dirclient_req_t *prev, *next; /* the FIFO of remote requests */
  lmz_raftnode_claim_t claim;       /* the local request (cluster.c) */
  lmz_raftnode_propose_t propose;
};

struct lmz_dirclient_s {
  void *data; /* public */
  /* private */
  struct lmz_dirclient_options o;
  lmz_hmap remote;                /* request id -> req (waiting) */
  lmz_dirclient_req_t *head, *tail; /* the same, by deadline */
  uint64_t next_id;
  bool closing;
  struct lmz_dirclient_stats st;
};

void lmz_dirclient_init(lmz_dirclient_t *dc,
                        const struct lmz_dirclient_options *o);
/* Cancels every waiting remote request (LMZ_ECANCELED, from inside this
 * call) and refuses new ones; local requests complete through the Raft
 * node's own close. Then frees what init allocated. */
void lmz_dirclient_close(lmz_dirclient_t *dc);

/* Claims (binding, instance): policy HASH, or LOCAL with local_node (the
 * node that asks). Returns 0 (cb will run), LMZ_ENOTLEADER (no leader known
 * or no link to it), LMZ_ECANCELED, LMZ_ENOMEM. */
int lmz_dirclient_claim(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                        const char *binding, const char *instance,
                        enum lmz_placement_policy policy, uint64_t local_node,
                        lmz_dirclient_cb cb);
/* Proposes an encoded command (copied). Same returns. */
int lmz_dirclient_propose(lmz_dirclient_t *dc, lmz_dirclient_req_t *req,
                          const lmz_buf *cmd, lmz_dirclient_cb cb);
/* A fresh id for the request_id fields of directory commands. */
uint64_t lmz_dirclient_next_id(lmz_dirclient_t *dc);

/* Completion of a local request (ops.claim / ops.propose). */
void lmz_dirclient_local_done(lmz_dirclient_req_t *req, int status,
                              const struct lmz_dir_item *item);

/* Frames from peers: a DirRequest (served when we lead, else answered
 * LMZ_ENOTLEADER) and a DirResponse to one of ours. */
void lmz_dirclient_on_request(lmz_dirclient_t *dc, const Lmz__DirRequest *d);
void lmz_dirclient_on_response(lmz_dirclient_t *dc,
                               const Lmz__DirResponse *d);
/* The link to `peer` dropped, or the leader changed to `leader` (0 = none
 * known): requests waiting on a node that is gone or no longer leads fail
 * at once with LMZ_ENOTLEADER (outcome unknown: the caller retries on the
 * new leader instead of waiting for LMZ_DIRCLIENT_TIMEOUT_MS). Callbacks
 * run from inside these calls. */
void lmz_dirclient_peer_down(lmz_dirclient_t *dc, uint64_t peer);
void lmz_dirclient_leader_changed(lmz_dirclient_t *dc, uint64_t leader);
/* Fails requests whose deadline passed (LMZ_ETIMEOUT). */
void lmz_dirclient_tick(lmz_dirclient_t *dc, uint64_t now_ms);
size_t lmz_dirclient_n_waiting(const lmz_dirclient_t *dc);

#endif
