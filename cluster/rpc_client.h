/* cluster/rpc_client.h - a small blocking client of the node port, for the
 * `lmz` CLI and tests.
 *
 * Speaks exactly what cluster/transport.h speaks: the secure handshake bound
 * to the cluster key (initiator side), then a Hello with node id 0 (an
 * operator), then length-prefixed frames inside AEAD records. Plain POSIX
 * sockets + poll(2); every call takes a deadline, nothing blocks forever.
 *
 *   lmz_rpc_client *c;
 *   char err[LMZ_ERRMSG_LEN];
 *   if (lmz_rpc_connect(&c, "127.0.0.1:7100", key, 3000, err)) die(err);
 *   lmz_rpc_send(c, &frame);
 *   Lmz__Frame *reply;
 *   if (lmz_rpc_recv(c, &reply, 3000) == 0) { ...; lmz_frame_free(reply); }
 *   lmz_rpc_close(c);
 *
 * Pings from the node are answered inside lmz_rpc_recv(); Ping/Pong/Hello
 * are never returned. Requirements: sodium_init() was called.
 * Threading: one client per thread at a time; no global state. SIGPIPE is
 * avoided with MSG_NOSIGNAL. */
#ifndef LMZ_CLUSTER_RPC_CLIENT_H
#define LMZ_CLUSTER_RPC_CLIENT_H

#include <stdint.h>

#include "core/err.h"
#include "proto/lmz.pb-c.h"

typedef struct lmz_rpc_client lmz_rpc_client;

/* Connects to "host:port" ("[v6]:port" too; names are resolved), runs the
 * handshake with `key` (32 bytes, copied) and exchanges Hellos, all within
 * `timeout_ms`. On success *out is a client to lmz_rpc_close(). On failure
 * returns an error and writes a sentence into `errmsg` (LMZ_ERRMSG_LEN):
 *   LMZ_EINVAL     bad address            "bad address x: expected host:port"
 *   negative errno-style libuv code for socket errors, e.g. UV_ECONNREFUSED:
 *                  "cannot connect to 127.0.0.1:7100: connection refused"
 *   LMZ_ETIMEOUT   "cannot connect to ...: timed out after 3000 ms" or
 *                  "handshake with ... timed out after 3000 ms"
 *   LMZ_EAUTH      "handshake failed: the node rejected our cluster key
 *                  (wrong key?)", or the node could not prove the key
 *   LMZ_ECLOSED    the node closed the connection during the handshake
 *   LMZ_EOVERLOAD  "handshake failed: the node is overloaded ..." (the node
 *                  kept shedding our handshake for load until the deadline;
 *                  each shed is retried after a short pause)
 *   LMZ_EBADMSG / LMZ_EBADVERSION / LMZ_ENOMEM */
int lmz_rpc_connect(lmz_rpc_client **out, const char *hostport,
                    const uint8_t *key, int timeout_ms, char *errmsg);

/* Sends one frame (borrowed for the call), waiting at most the connect
 * timeout for socket space. Returns 0, LMZ_ETOOBIG, LMZ_ETIMEOUT,
 * LMZ_ECLOSED (connection gone), LMZ_ENOMEM. */
int lmz_rpc_send(lmz_rpc_client *c, const Lmz__Frame *f);

/* Sends a Call frame as `lmz call` does: to (binding, instance) - a durable
 * object, or a worker when instance is NULL - with the encoded operation
 * chain and, when state is not NULL, that call-context state (binary
 * value). Returns as lmz_rpc_send. Borrowed for the call. */
int lmz_rpc_send_call(lmz_rpc_client *c, uint64_t call_id, const char *binding,
                      const char *instance, const void *chain,
                      size_t chain_len, const void *state, size_t state_len);
/* The same with the call's trace id (core/trace.h; NULL = none: the node
 * starts a trace). The node keeps it only when valid. */
int lmz_rpc_send_call_traced(lmz_rpc_client *c, uint64_t call_id,
                             const char *binding, const char *instance,
                             const void *chain, size_t chain_len,
                             const void *state, size_t state_len,
                             const char *trace_id);

/* Waits up to `timeout_ms` (< 0: the connect timeout) for the next
 * application frame. On 0, *out is the caller's (free with lmz_frame_free()).
 * Returns 0, LMZ_ETIMEOUT (the connection stays usable), LMZ_ECLOSED,
 * LMZ_EAUTH (record failed authentication: connection unusable),
 * LMZ_EBADMSG, LMZ_ETOOBIG. lmz_rpc_errmsg() says more. */
int lmz_rpc_recv(lmz_rpc_client *c, Lmz__Frame **out, int timeout_ms);

/* Last error's sentence (never NULL). */
const char *lmz_rpc_errmsg(const lmz_rpc_client *c);
/* The node's Hello: its id and name. */
uint64_t lmz_rpc_peer_id(const lmz_rpc_client *c);
const char *lmz_rpc_peer_name(const lmz_rpc_client *c);

/* Closes the socket and wipes the keys. NULL is ignored. */
void lmz_rpc_close(lmz_rpc_client *c);

#endif
