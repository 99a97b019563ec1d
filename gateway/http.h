/* gateway/http.h - HTTP/1.1 server on libuv (http-parser), the base of the
 * gateway: plain requests, and WebSocket upgrades handed to gateway/ws.h.
 *
 * Model (libuv style): the caller owns the server handle; the server owns its
 * connections (lmz_http_conn_t, opaque). Each connection serves one request
 * at a time: the request goes to on_request (or on_upgrade), the app answers
 * it now or later with lmz_http_respond(), and only then is the next
 * (pipelined) request parsed. Responses on a connection therefore go out in
 * request order; all output of one loop iteration leaves in one write.
 *
 * Limits and what a client gets past them (the connection is then closed,
 * after the answer is written; other connections are never affected):
 *   malformed request line/headers/chunking       400 Bad Request
 *   HTTP/1.1 without Host                         400 Bad Request
 *   request line + headers > max_header_bytes     431 Request Header Fields
 *     or more than max_headers headers                Too Large
 *   URL > max_url_bytes                           414 URI Too Long
 *   body (Content-Length or chunked) > max_body   413 Content Too Large
 *   unknown method                                501 Not Implemented
 *   HTTP version other than 1.0 / 1.1             505 HTTP Version Not Supp.
 *   Expect other than 100-continue                417 Expectation Failed
 *   WebSocket upgrade with a bad key / version    400 / 426 (+ Sec-WebSocket-
 *                                                     Version: 13)
 *   headers not complete header_timeout_ms after  408 Request Timeout
 *     the request's first byte (or the accept)
 *   body not complete body_timeout_ms after the   408 Request Timeout
 *     headers
 *   keep-alive connection idle idle_timeout_ms    closed silently
 *   a response not written within idle_timeout_ms closed (slow reader)
 *   more than max_connections open                503 (then closed at once)
 * "Expect: 100-continue" gets "100 Continue" when the body is acceptable.
 * Closing answers are followed by a FIN and a short drain of what the client
 * still sends (lingering close), so the client reads the answer, not a RST.
 *
 * Threading: every function runs on the loop thread; callbacks run there,
 * never synchronously from the call that caused them. */
#ifndef LMZ_GATEWAY_HTTP_H
#define LMZ_GATEWAY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"

typedef struct lmz_http_server_s lmz_http_server_t;
typedef struct lmz_http_conn_s lmz_http_conn_t; /* opaque; server-owned */

struct lmz_http_header {
  const char *name; /* NUL-terminated; as sent (case kept) */
  size_t name_len;
  const char *value; /* NUL-terminated; leading/trailing blanks trimmed */
  size_t value_len;
};

/* A parsed request. Everything it points to is owned by the server and
 * valid until lmz_http_respond() / lmz_ws_accept() is called for it or the
 * connection's on_conn_close runs, whichever comes first. */
struct lmz_http_request {
  const char *method; /* "GET", static */
  int http_major, http_minor;
  const char *target; /* raw request target ("/a/b?x=1"), NUL-terminated */
  size_t target_len;
  const char *path; /* target up to '?' (not decoded); NOT NUL-terminated */
  size_t path_len;
  const char *query; /* after '?' (without it), or "" */
  size_t query_len;
  const struct lmz_http_header *headers;
  size_t n_headers;
  const uint8_t *body; /* de-chunked; NULL when empty */
  size_t body_len;
  bool keep_alive;    /* the client wants the connection kept */
  bool upgrade;       /* Connection: upgrade + Upgrade: present */
  const char *remote; /* "127.0.0.1:53412" / "[::1]:53412" */
  uint64_t conn_id;   /* unique per server, for logs */
};

/* Case-insensitive lookup of the first header `name`; NULL if absent.
 * *len (may be NULL) gets the value length. */
const char *lmz_http_header_get(const struct lmz_http_request *req,
                                const char *name, size_t *len);
/* Whether the comma-separated list in header `name` holds `token`
 * (case-insensitive), e.g. ("Connection", "upgrade"). */
bool lmz_http_header_has_token(const struct lmz_http_request *req,
                               const char *name, const char *token);

struct lmz_http_response {
  int status;                            /* 200..599 (101 is for ws.h) */
  const char *reason;                    /* NULL = the standard phrase */
  const struct lmz_http_header *headers; /* extra headers; copied; may not
                                            set Content-Length, Connection,
                                            Transfer-Encoding */
  size_t n_headers;
  const char *content_type; /* NULL = none; shortcut for the header */
  const void *body;         /* copied; HEAD requests get headers only */
  size_t body_len;
  bool close; /* close the connection after this response */
};

/* A request arrived. The app answers with lmz_http_respond() now or later.
 * It must not keep `req` past its answer. */
typedef void (*lmz_http_request_cb)(lmz_http_server_t *srv,
                                    lmz_http_conn_t *conn,
                                    const struct lmz_http_request *req);
/* A valid WebSocket upgrade request arrived (GET, HTTP/1.1, Upgrade:
 * websocket, Connection: upgrade, Sec-WebSocket-Version 13, a 16-byte
 * Sec-WebSocket-Key). The app rejects it with lmz_http_respond() (the
 * connection closes after the answer) or accepts it with lmz_ws_accept(),
 * now or later. Without on_upgrade, upgrade requests go to on_request. */
typedef void (*lmz_http_upgrade_cb)(lmz_http_server_t *srv,
                                    lmz_http_conn_t *conn,
                                    const struct lmz_http_request *req);
/* The connection died or was closed. Runs once for every connection that was
 * given to on_request/on_upgrade and not turned into a WebSocket (those get
 * the ws on_close instead); afterwards `conn` is gone. `had_pending` says
 * whether a request was still unanswered (the app must drop it). */
typedef void (*lmz_http_conn_close_cb)(lmz_http_server_t *srv,
                                       lmz_http_conn_t *conn, bool had_pending);
typedef void (*lmz_http_close_cb)(lmz_http_server_t *srv);
/* Monotonic milliseconds (any origin). */
typedef uint64_t (*lmz_http_now_fn)(void *data);

struct lmz_http_options {
  const char *host; /* listen address; NULL = "127.0.0.1"; "::" for v6 */
  int port;         /* 0 = ephemeral (see lmz_http_server_port) */
  lmz_http_request_cb on_request;       /* required */
  lmz_http_upgrade_cb on_upgrade;       /* optional */
  lmz_http_conn_close_cb on_conn_close; /* optional */
  /* Limits and timers; 0 = the default in brackets. */
  size_t max_header_bytes;    /* request line + headers [16 KiB] */
  size_t max_url_bytes;       /* [8 KiB] */
  uint32_t max_headers;       /* [100] */
  size_t max_body;            /* [1 MiB] */
  uint32_t header_timeout_ms; /* [10000] */
  uint32_t body_timeout_ms;   /* [30000] */
  uint32_t idle_timeout_ms;   /* keep-alive idle, write stall [60000] */
  uint32_t max_connections;   /* [10000] */
  int backlog;                /* listen backlog [511] */
  /* The clock every deadline (and the WebSocket ping/stall checks) is
   * measured on; NULL = uv_now(loop). The loop's timers only wake the
   * server: a timer that fires before its deadline by this clock is re-armed
   * for the rest. A test kit installs a fake clock and calls
   * lmz_http_server_clock_moved() after moving it. */
  lmz_http_now_fn now_ms;
  void *clock_data; /* passed to now_ms */
};

/* Counters since init. Gauges say "now". */
struct lmz_http_metrics {
  uint64_t conns_accepted, conns_rejected; /* rejected: max_connections */
  uint64_t conns_open;                     /* gauge */
  uint64_t requests, upgrades;             /* delivered to the app */
  uint64_t responses, responses_4xx, responses_5xx;
  uint64_t parse_errors; /* 400/414/431/413/501/505/417 sent by the server */
  uint64_t timeouts;     /* 408 or idle/stall closes */
  uint64_t bytes_in, bytes_out, writes; /* writes: uv_write calls */
  /* WebSocket (gateway/ws.h) */
  uint64_t ws_open; /* gauge */
  uint64_t ws_msgs_in, ws_msgs_out;
  uint64_t ws_overload_closes, ws_protocol_closes, ws_dead_peers;
};

/* Intrusive circular list node (private; see gateway/http_int.h). */
struct lmz__qnode {
  struct lmz__qnode *next, *prev;
};

struct lmz__http_private {
  struct lmz_http_options opts; /* defaults filled in; host copied */
  char host[64];
  int fd;        /* the listening socket between bind and start, else -1 */
  bool started; /* lmz_http_server_start ran: the listener owns fd */
  uv_tcp_t listener;
  uv_prepare_t flush; /* once per loop iteration: resume parsing, flush */
  bool closing;
  int port;
  unsigned n_handles; /* open handles incl. connections' */
  uint64_t next_conn_id;
  struct lmz__qnode conns;  /* every connection */
  struct lmz__qnode dirty;  /* connections with output to flush */
  struct lmz__qnode resume; /* connections with buffered input to parse */
  uint8_t *rbuf;            /* one read buffer for all connections */
  lmz_http_close_cb close_cb;
  struct lmz_http_metrics m;
};

struct lmz_http_server_s {
  void *data;                    /* public: for the user */
  uv_loop_t *loop;               /* read-only */
  char errmsg[LMZ_ERRMSG_LEN];   /* read-only: context of the last error */
  struct lmz__http_private priv; /* private: do not touch */
};

/* Binds and listens, then watches the socket on `loop`. Returns 0,
 * LMZ_EINVAL (no on_request, bad host; see srv->errmsg), LMZ_ENOMEM, or a
 * libuv error from socket/bind/listen (UV_EADDRINUSE...; errmsg names the
 * address). On error nothing is left on the loop and `srv` may be freed at
 * once. On success close with lmz_http_server_close(). */
int lmz_http_server_init(uv_loop_t *loop, lmz_http_server_t *srv,
                         const struct lmz_http_options *opts);
/* The same in two steps, for an owner with a step of its own in between
 * that cannot be undone (the gateway binds its class on the node): bind
 * does everything that can fail (errors as init's) and leaves nothing on
 * the loop; clients that connect wait in the backlog. Then either
 * lmz_http_server_start(), which cannot fail and puts the socket on the
 * loop (close as after init), or lmz_http_server_unbind(), which closes the
 * socket synchronously (`srv` may be freed at once). */
int lmz_http_server_bind(uv_loop_t *loop, lmz_http_server_t *srv,
                         const struct lmz_http_options *opts);
void lmz_http_server_start(lmz_http_server_t *srv);
void lmz_http_server_unbind(lmz_http_server_t *srv);
/* The bound port (useful with port 0). */
int lmz_http_server_port(const lmz_http_server_t *srv);
/* Stops listening and closes every connection (WebSockets get a best-effort
 * 1001 "going away" frame). Every pending on_conn_close / ws on_close runs,
 * then `cb` (may be NULL) once all handles are closed; free `srv` only
 * after that. Calling it twice is a no-op. */
void lmz_http_server_close(lmz_http_server_t *srv, lmz_http_close_cb cb);
/* The injected clock (options.now_ms) moved: every connection's deadline
 * is checked again; those that passed fire from the loop's next iteration
 * (never from this call). A no-op with the default clock. */
void lmz_http_server_clock_moved(lmz_http_server_t *srv);
/* Now by the server's clock (options.now_ms, else uv_now). */
uint64_t lmz_http_server_now(const lmz_http_server_t *srv);
/* Copies the counters. */
void lmz_http_server_metrics(const lmz_http_server_t *srv,
                             struct lmz_http_metrics *out);

/* Answers the connection's pending request. Adds Content-Length (except for
 * 1xx/204/304) and Connection: close / keep-alive; the response is written
 * with the iteration's other output. Returns 0, LMZ_EINVAL (no request
 * pending, status out of range, a header name/value with CR, LF or NUL, or
 * a reserved header), LMZ_ECLOSED (the connection is closing; its
 * on_conn_close will still run), LMZ_ENOMEM. */
int lmz_http_respond(lmz_http_conn_t *conn,
                     const struct lmz_http_response *res);
/* Shortcut: status, content type and a NUL-terminated body. */
int lmz_http_respond_text(lmz_http_conn_t *conn, int status,
                          const char *content_type, const char *body);

/* App data attached to a connection (NULL at first). */
void lmz_http_conn_set_data(lmz_http_conn_t *conn, void *data);
void *lmz_http_conn_data(const lmz_http_conn_t *conn);
lmz_http_server_t *lmz_http_conn_server(const lmz_http_conn_t *conn);
/* Closes the connection now (a pending request is dropped unanswered);
 * on_conn_close follows (async). */
void lmz_http_conn_close(lmz_http_conn_t *conn);

/* "Not Found" for 404 etc.; "Unknown" for codes without a phrase. */
const char *lmz_http_status_text(int status);

#endif
