/* actor/remote.h - mesh calls arriving on the node port (cluster/transport.h)
 * and their Result frames.
 *
 * The node port carries lmz.Call frames (proto/lmz.proto) from operators'
 * CLIs (Hello node id 0) and, in a cluster, from peer nodes. This module
 * turns a Call into lmz_node_call() and the outcome into a Result frame on
 * the connection it came from.
 *
 * Trust (DESIGN.md section 10): the channel is authenticated with the
 * cluster key. A call from an operator connection never carries origin auth
 * and its chain is always [{LmzCli, "lmz-cli"}], whatever the frame says;
 * origin auth is only ever minted by a gateway.
 *
 * Lifetime: replies to a connection that went away are dropped (counted);
 * the node's turns are not affected. Loop thread only. */
#ifndef LMZ_ACTOR_REMOTE_H
#define LMZ_ACTOR_REMOTE_H

#include <stdint.h>

#include "actor/node.h"
#include "cluster/transport.h"

typedef struct lmz_remote_s lmz_remote_t;
struct lmz_router_s;

struct lmz_remote_stats {
  uint64_t calls;          /* Call frames accepted */
  uint64_t rejected;       /* malformed or refused before running */
  uint64_t replies_dropped; /* the connection was gone */
};

/* A handle (README "Code conventions"), caller-allocated (server/lmzd.c
 * embeds it); the fields are private to remote.c. */
struct lmz_remote_s {
  lmz_node_t *node;
  struct lmz_router_s *router;
  struct lmz_remote_stats stats;
};

/* Initializes the caller's `r` as the handler for `node`. Allocates nothing
 * and cannot fail (returns 0). */
int lmz_remote_init(lmz_remote_t *r, lmz_node_t *node);
/* Synchronous; holds nothing to release. Call it after the node port is
 * closed: replies still owed then are dropped with their connections. */
void lmz_remote_close(lmz_remote_t *r);
/* Node-port hooks (server/lmzd.c's frame table): a Call frame; connection
 * states. */
void lmz_remote_on_call(lmz_remote_t *r, lmz_conn_t *conn, const Lmz__Frame *f);
void lmz_remote_on_conn_state(lmz_remote_t *r, lmz_conn_t *conn, int state,
                              int status);
void lmz_remote_get_stats(lmz_remote_t *r, struct lmz_remote_stats *st);
/* In a cluster: calls from peers are checked against the directory (this
 * node must own the actor at the call's epoch, else MOVED). */
void lmz_remote_set_router(lmz_remote_t *r, struct lmz_router_s *router);

#endif
