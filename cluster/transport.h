/* cluster/transport.h - the node port: authenticated, encrypted, batched
 * protobuf-c frames over TCP between nodes (and operators' CLIs).
 *
 * Layers, bottom up:
 *   TCP (libuv)  ->  cluster/secure.h handshake bound to the cluster key, then
 *   AEAD records  ->  proto/frame.h [u32 BE len][Lmz__Frame] inside the
 *   decrypted byte stream. A record carries every frame queued on a
 *   connection during one loop iteration (split at 256 KiB), so one uv_write
 *   and one AEAD call cover a whole batch.
 *
 * Connection lifecycle:
 *   - After the secure handshake each side sends a Hello frame (node id,
 *     name, incarnation). A connection is UP once the peer's Hello arrived.
 *     Frames before that, or a first frame that is not a Hello, close it.
 *   - lmz_transport_connect() creates a *managed* peer: it dials, and redials
 *     with exponential backoff (backoff_min_ms doubling to backoff_max_ms,
 *     randomized to [d/2, d]) whenever it has no live connection. Frames sent
 *     while it is down are queued (bounded) and go out once it is up again.
 *   - An incoming connection becomes a conn for its Hello's node id; if a
 *     managed peer with that id exists, the connection serves it: one logical
 *     link per peer pair, usable both ways. When both nodes dial each other at
 *     once, both keep the connection dialed by the lower node id and retire
 *     the other gracefully (no more sends on it; frames already in flight are
 *     still delivered; it closes once quiet for two ping intervals).
 *   - Operators (Hello node id 0) get an unmanaged conn that dies with its
 *     connection; reply to them with lmz_conn_send() on the conn a frame came
 *     in on.
 *   - Liveness: each connection that has sent nothing for ping_interval_ms
 *     sends a Ping (answered by a Pong); a connection on which nothing
 *     arrived for dead_timeout_ms is closed (a managed peer then redials), so
 *     a restarted or vanished peer is noticed within that bound. TCP
 *     keepalive is on as well. A peer's restart also shows as a new
 *     incarnation in its Hello (lmz_conn_peer_incarnation()).
 *   - A connection that has not finished the handshake and Hello within
 *     handshake_timeout_ms is closed.
 *
 * Node port limits (what the port tolerates from peers without the key):
 *   An incoming connection is *unauthenticated* from accept until its peer
 *   has proved the cluster key (one round trip for an honest peer); only
 *   those are limited, an authenticated peer is trusted. Memory and sockets
 *   for them are bounded by max_handshaking (all sources) and
 *   max_handshaking_per_addr (one IPv4 address or IPv6 /64), and time by
 *   first_bytes_timeout_ms (accept to the first byte) and
 *   handshake_timeout_ms (accept to the Hello). When a new connection finds
 *   its address's share or the whole pool full, the transport *evicts* one
 *   instead of refusing the newcomer: among the unauthenticated connections
 *   (of the newcomer's address when its share is full), those from no
 *   configured peer's address (a managed conn's IP) go first, so strangers
 *   never starve members (a stranger never displaces one from a member's
 *   address: it is refused instead); then silent ones (an honest peer speaks
 *   at once); then the one that has kept us waiting longest (since accept,
 *   or since we answered its hello), then the earliest accepted. A
 *   connection gets at least one loop iteration to speak: only when every
 *   candidate arrived in the current millisecond is the newcomer refused
 *   instead. Either way the
 *   dropped connection gets the overload notice (cluster/secure.h,
 *   lmz_secure_overload_notice: 6 unauthenticated bytes) and is closed, so
 *   a CLI says "overloaded", not "wrong key", and retries
 *   (cluster/rpc_client.h); a managed peer redials with its backoff.
 *   Consequences: a flood of idle or never-finishing connections, from any
 *   number of addresses, cannot keep an honest peer out, since an honest
 *   peer needs the slot for one round trip and is never the one that waited
 *   longest; the exception is a flooder that opens more than
 *   max_handshaking_per_addr connections per round trip *from the honest
 *   peer's own address* (or more than max_handshaking from everywhere),
 *   which delays the honest peer until it wins a retry. Log lines about
 *   shed, timed-out and failed unauthenticated connections are rate-limited
 *   (one line, then one summary per second).
 *   Cost per unauthenticated connection (the bound review): one sock
 *   (about 1.5 KiB with its secure state, set up only once admitted), at most
 *   LMZ_SECURE_HS_MAX + 4 bytes buffered (a longer or malformed handshake
 *   message fails at once), our 63-byte hello and at most the 6-byte notice
 *   sent, two X25519 operations (our keypair on admission, the key exchange
 *   on its hello); no frame is parsed and no callback runs before the key
 *   is proved. Per accepted connection the pool bookkeeping is O(sockets);
 *   the tick's scan is O(sockets) every <= 250 ms.
 *
 * Security events (wrong key, failed record authentication, oversize,
 * malformed frames, handshake timeouts) close the connection, are logged on
 * "lmz.cluster.transport" and counted in the metrics.
 *
 * Delivery: frames on one connection arrive in order, at most once. Frames
 * still in a socket when it dies are lost; callers own retries/timeouts.
 *
 * Threading: every function runs on the loop thread; callbacks run there too,
 * never synchronously from the call that caused them. */
#ifndef LMZ_CLUSTER_TRANSPORT_H
#define LMZ_CLUSTER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "proto/lmz.pb-c.h"

typedef struct lmz_transport_s lmz_transport_t;
typedef struct lmz_conn_s lmz_conn_t; /* opaque; owned by the transport */

enum lmz_conn_state {
  LMZ_CONN_UP = 1,   /* authenticated, Hello exchanged: frames flow */
  LMZ_CONN_DOWN = 2, /* no live connection (status says why) */
};

/* A frame arrived on `conn`. `frame` and everything it points to are valid
 * only during the callback. The callback may send, close, or close the
 * transport. Ping/Pong/Hello are handled inside and never delivered. */
typedef void (*lmz_transport_frame_cb)(lmz_conn_t *conn,
                                       const Lmz__Frame *frame, void *data);
/* `conn` went UP (status 0) or DOWN (status: LMZ_ECLOSED peer closed,
 * LMZ_ETIMEOUT dead peer, LMZ_EAUTH / LMZ_EBADMSG / LMZ_ETOOBIG protocol or
 * security failure, LMZ_ECANCELED closed by us, or a libuv error). A managed
 * conn stays valid after DOWN and redials; an unmanaged one (incoming, no
 * lmz_transport_connect() for its id) is freed right after its DOWN
 * callback returns. */
typedef void (*lmz_transport_state_cb)(lmz_conn_t *conn, int state, int status,
                                       void *data);
typedef void (*lmz_transport_close_cb)(lmz_transport_t *t);

struct lmz_transport_options {
  const uint8_t *key; /* 32-byte cluster key; copied */
  uint64_t node_id;   /* ours, sent in Hello; 0 = not a node */
  const char *name;   /* ours, sent in Hello (copied; NULL = "") */
  const char *listen; /* "ip:port" / "[ip6]:port" (port 0 = ephemeral);
                         NULL = do not accept connections */
  lmz_transport_frame_cb on_frame;      /* required */
  lmz_transport_state_cb on_conn_state; /* optional */
  void *data;                           /* passed to both callbacks */
  /* Limits and timers; 0 = the default in brackets. */
  uint32_t max_frame;          /* frame body cap [LMZ_FRAME_MAX_DEFAULT] */
  size_t max_pending_bytes;    /* per conn: queued + unwritten [8 MiB] */
  uint32_t max_pending_frames; /* per conn: queued, not yet flushed [65536] */
  uint32_t max_handshaking;    /* incoming unauthenticated [128]; see "Node
                                  port limits" for what happens at the cap */
  uint32_t ping_interval_ms;   /* [1000] */
  uint32_t dead_timeout_ms;    /* [5000] */
  uint32_t handshake_timeout_ms; /* accept/dial to Hello [2000] */
  uint32_t backoff_min_ms;       /* [50] */
  uint32_t backoff_max_ms;       /* [2000] */
  /* Added later (zero-initialised callers get the defaults): */
  uint32_t max_handshaking_per_addr; /* unauthenticated per source [16] */
  uint32_t first_bytes_timeout_ms;   /* incoming: accept to 1st byte [1000] */
  /* The time source every deadline above is measured with; NULL =
   * uv_now(loop). The transport's own timers still fire on the loop (every
   * tick interval, <= 250 ms); with a fake clock call lmz_transport_tick()
   * after advancing it to act at once. Called on the loop thread. */
  uint64_t (*now_ms)(void *clock);
  void *clock; /* passed to now_ms */
};

/* Counters since init; read with lmz_transport_metrics(). */
struct lmz_transport_metrics {
  uint64_t frames_in, frames_out; /* application frames (no Ping/Pong/Hello) */
  uint64_t bytes_in, bytes_out;   /* TCP payload bytes */
  uint64_t writes;                /* uv_write calls for batched frames */
  uint64_t conns_accepted, dials, reconnects;
  uint64_t handshakes_ok, handshake_failures, handshake_timeouts;
  uint64_t decrypt_failures, oversize, bad_frames, dead_peers;
  uint64_t overload_rejections;
  uint64_t pings_sent;
  uint64_t duplicates_retired; /* simultaneous dials resolved */
  uint64_t sockets_open;       /* gauge: TCP connections open now */
  /* Node port limits: unauthenticated connections dropped for load. */
  uint64_t handshake_evictions; /* an older one made room for a newcomer */
  uint64_t handshake_refusals;  /* the newcomer itself (all were too new) */
  uint64_t first_byte_timeouts; /* silent past first_bytes_timeout_ms */
  uint64_t handshaking;         /* gauge: unauthenticated incoming now */
};

struct lmz__sock;
struct lmz__transport_private {
  uint8_t key[32];
  struct lmz_transport_options opts; /* defaults filled in; name copied */
  char name[64];
  uv_tcp_t listener;
  uv_prepare_t flush; /* one flush of all dirty conns per loop iteration */
  uv_timer_t tick;    /* handshake/dead-peer timeouts and pings */
  bool listening, closing;
  int bound_port;
  unsigned n_handles; /* open handles; close completes at 0 */
  unsigned n_handshaking;  /* unauthenticated incoming socks (the pool) */
  uint64_t accept_seq;     /* orders socks accepted in the same ms */
  uint64_t quiet_log_ms;   /* rate limit for shed/timeout log lines */
  uint64_t quiet_unlogged; /* events since the last such line */
  uint64_t incarnation, ping_seq;
  struct lmz__sock *socks; /* every TCP connection */
  lmz_conn_t *conns;       /* every logical peer link */
  lmz_conn_t *dirty;       /* conns with frames to flush */
  lmz_buf scratch;         /* handshake output, Hello/Ping packing */
  uint8_t *rbuf;           /* one read buffer shared by all sockets */
  lmz_transport_close_cb close_cb;
  struct lmz_transport_metrics m;
};

struct lmz_transport_s {
  void *data;                         /* public: for the user */
  uv_loop_t *loop;                    /* read-only */
  char errmsg[LMZ_ERRMSG_LEN];        /* read-only: context of the last error */
  struct lmz__transport_private priv; /* private: do not touch */
};

/* Initializes `t` and, if opts->listen is set, binds and listens.
 * Returns 0, LMZ_EINVAL (missing key/on_frame, unparsable address; see
 * t->errmsg), LMZ_ENOMEM, or a libuv error from bind/listen (e.g.
 * UV_EADDRINUSE; t->errmsg names the address). On error nothing needs
 * closing. On success close with lmz_transport_close(). */
int lmz_transport_init(uv_loop_t *loop, lmz_transport_t *t,
                       const struct lmz_transport_options *opts);
/* Runs the periodic checks now (deadlines, dead peers, pings, retiring
 * duplicates, due redials) against the injected clock. The transport runs
 * them from its own timer too; tests on a fake clock call this after
 * advancing it. No-op while closing. */
void lmz_transport_tick(lmz_transport_t *t);
/* The bound TCP port (useful with port 0), or 0 when not listening. */
int lmz_transport_port(const lmz_transport_t *t);
/* Copies the counters. */
void lmz_transport_metrics(const lmz_transport_t *t,
                           struct lmz_transport_metrics *out);

/* Closes the listener and every connection; queued frames are dropped and
 * later sends return LMZ_ECANCELED. Conns that were UP get a DOWN callback
 * with LMZ_ECANCELED. `cb` (may be NULL) runs once everything is closed;
 * then `t` may be freed. Idempotent: a second call is ignored. */
void lmz_transport_close(lmz_transport_t *t, lmz_transport_close_cb cb);

/* Creates a managed peer link to node `peer_id` (non-zero, not ours) at
 * "ip:port" (numeric: the loop never resolves names). It dials at once and
 * keeps redialing with backoff. If an unmanaged conn for that id exists (it
 * dialed us), it becomes managed and is returned. Returns 0 with *out set,
 * LMZ_EINVAL (bad id/address), LMZ_EEXIST (already managed: *out is that
 * conn), LMZ_ECANCELED (transport closing), LMZ_ENOMEM. */
int lmz_transport_connect(lmz_transport_t *t, uint64_t peer_id,
                          const char *addr, lmz_conn_t **out);
/* The conn for node `peer_id` (managed or not), or NULL. O(peers). */
lmz_conn_t *lmz_transport_peer(lmz_transport_t *t, uint64_t peer_id);

/* Queues `f` (packed now; `f` is borrowed for the call only). The frame goes
 * out with everything else queued on this conn in the current loop
 * iteration, in one encrypted write. Returns 0,
 *   LMZ_EOVERLOAD  the conn's queued + unwritten bytes or queued frames are at
 *                  their bound (slow or absent peer): retry later;
 *   LMZ_ECLOSED    an unmanaged conn whose connection is gone;
 *   LMZ_ETOOBIG    frame over max_frame;
 *   LMZ_ECANCELED  conn or transport closing;
 *   LMZ_ENOMEM. */
int lmz_conn_send(lmz_conn_t *conn, const Lmz__Frame *f);
/* Writes the frames queued on conn now (one sealed record, one write)
 * instead of at the end of this loop iteration: for a sender that is about
 * to keep the loop busy (a broadcast fanning out locally after sending its
 * frames to other nodes). No-op when nothing is queued or it is not up. */
void lmz_conn_flush(lmz_conn_t *conn);
/* Writes every conn's queued frames now. For senders that run in a
 * uv_prepare callback of their own: libuv runs only the prepare handles that
 * were active when the phase began, so frames queued there would otherwise
 * wait for the NEXT iteration, i.e. until the loop wakes up again (for
 * whatever reason) after blocking in poll. */
void lmz_transport_flush(lmz_transport_t *t);
/* Stops a conn: a managed one stops redialing; its connection(s) close,
 * queued frames are dropped. DOWN (LMZ_ECANCELED) is reported if it was UP,
 * then the conn is freed (do not use it after this call). Idempotent. */
void lmz_conn_close(lmz_conn_t *conn);

uint64_t lmz_conn_peer_id(const lmz_conn_t *conn);      /* 0 = operator */
const char *lmz_conn_peer_name(const lmz_conn_t *conn); /* from Hello */
uint64_t lmz_conn_peer_incarnation(const lmz_conn_t *conn);
bool lmz_conn_is_up(const lmz_conn_t *conn);
bool lmz_conn_is_managed(const lmz_conn_t *conn);
/* Queued (not yet flushed) + unwritten bytes: what backpressure counts. */
size_t lmz_conn_pending_bytes(const lmz_conn_t *conn);
lmz_transport_t *lmz_conn_transport(const lmz_conn_t *conn);
void lmz_conn_set_data(lmz_conn_t *conn, void *data);
void *lmz_conn_get_data(const lmz_conn_t *conn);

/* Parses "a.b.c.d:port" or "[v6]:port" into `sa` (numeric only).
 * Returns 0 or LMZ_EINVAL. Shared with cluster/rpc_client.c. */
int lmz__transport_parse_addr(const char *addr, struct sockaddr_storage *sa);

#endif
