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

typedef struct lmz_raftbridge_s lmz_raftbridge_t;

/* Creates a bridge over `t` (which must outlive it). Returns NULL on out of
 * memory. The transport interface raft_uv_init() takes: */
lmz_raftbridge_t *lmz_raftbridge_new(uv_loop_t *loop, lmz_transport_t *t);
struct raft_uv_transport *lmz_raftbridge_transport(lmz_raftbridge_t *b);
/* Frees the bridge after raft closed it (raft_uv calls its close). */
void lmz_raftbridge_free(struct raft_uv_transport *t);
/* Hooks for the node transport's callbacks: RaftData frames and conn
 * states. Frames of other kinds are ignored. */
void lmz_raftbridge_on_frame(lmz_raftbridge_t *b, lmz_conn_t *conn,
                             const Lmz__Frame *f);
void lmz_raftbridge_on_conn_state(lmz_raftbridge_t *b, lmz_conn_t *conn,
                                  int state);

#endif
