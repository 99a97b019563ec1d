/* cluster/raftbridge.h - canonical raft's traffic over the authenticated node
 * transport, so a cluster exposes no unauthenticated port (DESIGN.md 10).
 *
 * raft_uv talks to its peers through a `struct raft_uv_transport` that hands
 * it libuv streams. This bridge implements that interface without a socket
 * of its own: each raft connection is a socketpair; raft gets one end (a
 * uv_pipe_t), the bridge pumps the other end's bytes as RaftData frames over
 * the node transport (cluster/transport.h: mutually authenticated,
 * encrypted, replay-protected) to the peer node, which feeds them into its
 * own socketpair and hands raft the other end through the accept callback.
 *
 *   raft A ==pipe== bridge A --RaftData frames (secure channel)--> bridge B ==pipe== raft B
 *
 * Stream lifecycle: connect() opens a stream (open frame with our raft id and
 * address), data both ways, and any end's EOF/error sends a close frame that
 * closes the other end's pipe; raft then reconnects as it does after a TCP
 * drop. A stream dies with its node transport connection. Node ids and raft
 * ids are the same numbers, so the bridge finds a peer's connection with
 * lmz_transport_peer(id); a peer not connected yet makes connect() fail
 * with RAFT_NOCONNECTION and raft retries (connect_retry_delay).
 *
 * Backpressure: a stream whose frames the transport refuses (LMZ_EOVERLOAD)
 * is closed; raft reconnects. Threading: loop thread only. */
#ifndef LMZ_CLUSTER_RAFTBRIDGE_H
#define LMZ_CLUSTER_RAFTBRIDGE_H

#include <raft.h>
#include <raft/uv.h>

#include "cluster/transport.h"
#include "core/hmap.h"

typedef struct lmz_raftbridge_s lmz_raftbridge_t;

/* A handle (README "Code conventions"), caller-allocated; the fields are
 * private to raftbridge.c. */
struct lmz_raftbridge_s {
  struct raft_uv_transport t; /* first: raft hands it back to us */
  uv_loop_t *loop;
  lmz_transport_t *tr;
  raft_id id;
  char address[256];
  raft_uv_accept_cb accept_cb;
  lmz_hmap streams; /* struct lmz__raftbridge_key -> struct stream */
  uint64_t next_sid;
  bool closing;
  unsigned open_handles;
  raft_uv_transport_close_cb close_cb;
};

/* Initializes the caller's `b` over `t` (which must outlive it). Allocates
 * nothing and cannot fail (returns 0); until raft_uv_init() takes
 * lmz_raftbridge_transport(b) the memory may simply be freed. */
int lmz_raftbridge_init(lmz_raftbridge_t *b, uv_loop_t *loop,
                        lmz_transport_t *t);
/* The transport interface raft_uv_init() takes. */
struct raft_uv_transport *lmz_raftbridge_transport(lmz_raftbridge_t *b);
/* Synchronous second half of raft's close: releases what the bridge holds
 * once raft closed it (raft_uv calls the transport's close first); pass it
 * as the raftnode's transport_free. The memory is the caller's again. NULL
 * is ignored. */
void lmz_raftbridge_close(struct raft_uv_transport *t);
/* Hooks for the node transport's callbacks: RaftData frames and conn
 * states. Frames of other kinds are ignored. */
void lmz_raftbridge_on_frame(lmz_raftbridge_t *b, lmz_conn_t *conn,
                             const Lmz__Frame *f);
void lmz_raftbridge_on_conn_state(lmz_raftbridge_t *b, lmz_conn_t *conn,
                                  int state);

#endif
