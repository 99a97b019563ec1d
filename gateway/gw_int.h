/* gateway/gw_int.h - private: what the files of the gateway object
 * (struct lmz_gateway_s, gateway.h) share: gateway.c (init,
 * close, HTTP dispatch, status, metrics, dev token), clientgw.c (client
 * gateway actors), frames.c (JSON helpers), routes.c (paths, binding
 * matching, CORS, actor routing), access.c (tokens on actor routes, public
 * bindings, per-subject limits, origin auth) and static.c (files). Only
 * those files and the gateway's unit tests include it. */
#ifndef LMZ_GATEWAY_GW_INT_H
#define LMZ_GATEWAY_GW_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "core/json.h"
#include "core/log.h"
#include "core/trace.h"
#include "gateway/gateway.h"
#include "gateway/http.h"
#include "gateway/ratelimit.h"
#include "gateway/ws.h"
#include "lmz/gateway.h"
#include "lmz/http.h"
#include "net/fetch.h"

extern lmz_log_ns lmz__gw_log;

/* The intrusive lists (struct lmz__gw_list, gateway.h): FIFO queues of
 * deadlines. */
void lmz__gw_list_init(struct lmz__gw_list *l);
void lmz__gw_list_push(struct lmz__gw_list *l, struct lmz__gw_link *e);
void lmz__gw_list_remove(struct lmz__gw_list *l, struct lmz__gw_link *e);
static inline struct lmz__gw_link *lmz__gw_list_first(struct lmz__gw_list *l) {
  return l->head.next == &l->head ? NULL : l->head.next;
}

struct gw_conn;

/* One client instance ("{sub}.{tabId}") with any state: a socket, a grace
 * period, or calls held for its reconnect. Freed when it has none. */
struct gw_client {
  lmz_gateway_t *gw;
  char *instance; /* NUL-terminated; the hmap key */
  size_t instance_len;
  struct gw_conn *conn;  /* the open socket, or NULL */
  struct gw_conn *last;  /* latest connection (for hooks during grace) */
  bool in_grace;
  uint64_t grace_deadline; /* lmz__gw_now ms */
  struct lmz__gw_link grace_link; /* on gw->grace_q */
  struct lmz__gw_list held;       /* struct gw_incall waiting for a reconnect */
};

/* One accepted WebSocket. Reference counted: the open socket, each client
 * call still running in the mesh, being its client's `last`, and short pins
 * while callbacks run each hold one; freed at zero. */
struct gw_conn {
  lmz_gateway_t *gw;
  struct lmz__gw_link all;       /* gw->conns */
  uint32_t refs;
  lmz_ws_t *ws;             /* NULL once closed */
  struct gw_client *client; /* NULL once superseded or closed */
  lmz_arena *arena;         /* info strings and claims */
  struct lmz_gateway_conn_info info;
  double exp_s;             /* token exp (Unix seconds) */
  lmz_hmap calls;           /* callId -> struct gw_incall (sent here) */
  bool is_last;             /* gw_client.last points here */
};

/* A mesh call to a client (the raw class call), from its arrival until the
 * client answers, a deadline passes or the socket drops. */
struct gw_incall {
  struct lmz__gw_link link;      /* gw->sent_q, gw->fail_q or client->held */
  lmz_deferred *d;
  struct gw_client *client; /* while held */
  struct gw_conn *conn;     /* while sent */
  uint64_t deadline;        /* lmz__gw_now ms (sent, fail_q) */
  const char *fail_msg;     /* fail_q: the ClientDisconnectedError text */
  char call_id[37];
  char trace_id[33];        /* the mesh call's trace, for logs (core/trace.h) */
  lmz_buf frame;            /* the incoming_call frame (until sent) */
  char instance[];          /* the client's instance name */
};

/* An HTTP request answered later (actor route, static file). */
struct gw_pending_http {
  lmz_gateway_t *gw;
  lmz_http_conn_t *conn; /* NULL once the connection is gone */
  char origin[256];      /* allowed CORS origin to echo, or "" */
  bool head;
  bool credentials; /* auth routes: Access-Control-Allow-Credentials too */
  /* the request's turn (core/trace.h): for log lines and the response's
   * traceparent "00-<trace>-<call>-01" (routes.c) */
  char trace[LMZ_TRACE_ID_LEN + 1], call[LMZ_CALL_ID_LEN + 1];
  char traceparent[56];
};

/* ---- clientgw.c ---------------------------------------------------------- */

/* The clock of call timeouts and grace periods: the node's (injected by a
 * test kit; lmz_gateway_clock_moved tells the gateway it moved). */
static inline uint64_t lmz__gw_now(lmz_gateway_t *gw) {
  double t = lmz_node_now_ms(gw->node);
  return t > 0 ? (uint64_t)t : 0;
}

/* The raw class function of LumenizeClientGateway. */
int lmz__gw_raw_call(lmz_ctx *ctx, lmz_value *chain, lmz_value **result);
/* An upgrade request on /gateway/... whose binding resolved to ours. */
void lmz__gw_upgrade(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, const char *instance,
                     const char *origin);
/* The deadline timer fired: fail what is due, re-arm. */
void lmz__gw_timer_run(lmz_gateway_t *gw);
/* (Re)arms the timer for the earliest deadline. */
void lmz__gw_timer_arm(lmz_gateway_t *gw);
/* Close: fail every held and relayed call, drop grace periods. */
void lmz__gw_clients_shutdown(lmz_gateway_t *gw);

/* Helpers for clientmsg.c. */
bool lmz__gw_conn_expired(struct gw_conn *k); /* closes with 4401 if so */
void lmz__gw_conn_unref(struct gw_conn *k);
struct gw_incall *lmz__gw_take_call(struct gw_conn *k, const char *id,
                                    size_t len);
void lmz__gw_incall_settle(lmz_gateway_t *gw, struct gw_incall *ic, bool ok,
                           const lmz_value *v);

/* ---- clientmsg.c --------------------------------------------------------- */

/* A whole message from a client socket (ws.h on_message). */
void lmz__gw_on_message(lmz_ws_t *ws, bool is_text, const uint8_t *data,
                        size_t len);

/* ---- routes.c ------------------------------------------------------------ */

/* Resolves a path segment to binding names like the original's
 * getDONamespaceFromPathSegment (durable-object bindings only). Returns
 * how many matched; their names, joined by ", ", go into names (cap
 * bytes; one match = the binding name). */
int lmz__gw_match_binding(lmz_gateway_t *gw, const char *seg, size_t len,
                          char *names, size_t cap);
/* CORS decision for a request: 0 = go on (*origin set to the origin to echo,
 * or "" when none), else the request was answered (403 / 204). */
int lmz__gw_cors(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                 const struct lmz_http_request *req, char origin[256]);
/* The same; `credentials`: an allowed origin also gets
 * Access-Control-Allow-Credentials: true (the auth routes, whose refresh
 * cookie a page on another allowed origin sends; the original sets none on
 * actor routes, and neither do we). */
int lmz__gw_cors_cred(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                      const struct lmz_http_request *req, char origin[256],
                      bool credentials);
/* Tries the /gateway and actor routes. Returns true if it answered (or
 * will answer) the request. */
bool lmz__gw_route(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                   const struct lmz_http_request *req, bool upgrade);
/* Adds the CORS headers for `origin` (if not "") and responds. */
int lmz__gw_respond(lmz_http_conn_t *conn, int status, const char *ctype,
                    const void *body, size_t len, const char *origin,
                    const struct lmz_http_header *extra, size_t n_extra);

/* ---- botcheck.c ---------------------------------------------------------- */

/* Copies the check's configuration when o->secret is set (else 0, off);
 * puts nothing on the loop (the first check creates the HTTP client). 0,
 * LMZ_EINVAL (bad endpoint or secret), LMZ_ENOMEM; errmsg. On an error
 * the copies are freed with the gateway's other options. */
int lmz__gw_bot_init(lmz_gateway_t *gw, const struct lmz_gateway_bot_check *o,
                     char *errmsg);
/* Cancels checks in flight (their requests are dropped); one close wait
 * when the client exists. */
void lmz__gw_bot_close(lmz_gateway_t *gw);
/* A request under the auth prefix (`rest`: the path after it): when it is
 * the magic-link POST and the check is on, takes it (answers it, or holds
 * it until siteverify answers, then forwards it) and returns true. */
bool lmz__gw_bot_hold(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                      const struct lmz_http_request *req, const char *rest,
                      size_t rest_len, const char *origin);
/* Sends a request to the auth service's actor (routes.c). */
void lmz__gw_to_auth(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, const char *origin);

/* ---- access.c ------------------------------------------------------------ */

/* Verifies a token (signature, exp, iss, aud, sub: jwt.h) on the node's
 * clock, then the access gate. LMZ_JWT_OK with *cl in `a`, or the status. */
int lmz__gw_verify(lmz_gateway_t *gw, const char *tok, size_t len, lmz_arena *a,
                   struct lmz_jwt_claims *cl);
/* The origin auth a turn gets from a verified token: {sub, claims}, in `a`;
 * `claims` (a value already in `a`, not copied) NULL or out of memory: NULL. */
lmz_value *lmz__gw_origin_auth(lmz_arena *a, const char *sub, lmz_value *claims);
/* One token from sub's bucket of `r` on the gateway's clock: LMZ_JWT_OK or
 * LMZ_JWT_ERATE with *retry_after_s set. */
int lmz__gw_limit(lmz_gateway_t *gw, lmz_rate *r, const char *sub, size_t len,
                  uint32_t *retry_after_s);
/* Answers a jwt.h status the original's way (lmz_jwt_answer), with
 * WWW-Authenticate on 401s and Retry-After on 429. */
void lmz__gw_refuse(lmz_http_conn_t *conn, int status, const char *origin,
                    uint32_t retry_after_s);
/* Whether `binding` (a resolved binding name) is declared public. */
bool lmz__gw_is_public(const lmz_gateway_t *gw, const char *binding);
/* The access check of an actor request, before anything runs: 0 = go on,
 * with *origin_auth (in `a`) for the turn, NULL for a public binding; else
 * the request was answered (401 / 403 / 429 / 500). */
int lmz__gw_http_access(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                        const struct lmz_http_request *req, const char *binding,
                        const char *origin, lmz_arena *a,
                        lmz_value **origin_auth);

/* ---- static.c ------------------------------------------------------------ */

/* GET/HEAD of a file under static_dir. Returns true if it will answer. */
bool lmz__gw_static(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                    const struct lmz_http_request *req);
/* "text/html; charset=utf-8" etc. for a file name. */
const char *lmz__gw_content_type(const char *name);
/* Percent-decodes a path and checks it is a safe relative path (no "..",
 * ".", hidden segments, NUL, backslash, encoded '/'). Writes the relative
 * path (no leading '/') into out. Returns 0 or LMZ_EINVAL. */
int lmz__gw_safe_path(const char *path, size_t len, char *out, size_t cap);

/* ---- gateway.c ----------------------------------------------------------- */

/* A pending HTTP request: tracks the connection until answered. NULL on
 * out of memory. Must end with lmz__gw_pending_done. */
struct gw_pending_http *lmz__gw_pending_new(lmz_gateway_t *gw,
                                            lmz_http_conn_t *conn);
void lmz__gw_pending_done(struct gw_pending_http *p);
/* Close bookkeeping: one outstanding thing finished. */
void lmz__gw_wait_done(lmz_gateway_t *gw);

/* ---- frames.c ------------------------------------------------------------ */

/* A JSON DOM node as a value (objects, arrays, strings, numbers, booleans,
 * null), in `a`. NULL on out of memory or depth over 64. */
lmz_value *lmz__gw_json_to_value(lmz_arena *a, const lmz_json *j);
/* A value as plain JSON (what JSON.stringify would give for JSON-shaped
 * values: undefined members are skipped, other non-JSON values become
 * null). 0, LMZ_ENOMEM, LMZ_ETOODEEP. */
int lmz__gw_write_plain(lmz_buf *b, const lmz_value *v);
/* A random UUID v4 (36 chars + NUL). */
void lmz__gw_uuid(char out[37]);
/* ClientDisconnectedError(message) with clientInstanceName, in `a`. */
lmz_value *lmz__gw_disconnected(lmz_arena *a, const char *message,
                                const char *instance);
/* Appends {"json":...,"meta":...} for v; on an encoding failure appends
 * the SC-JSON of an Error saying so and returns 1 (0 = ok, <0 = ENOMEM). */
int lmz__gw_write_sc(lmz_buf *b, const lmz_value *v);
/* The scratch memory one client frame of `len` bytes may use:
 * LMZ_GATEWAY_FRAME_MEMORY_FACTOR x len + LMZ_GATEWAY_FRAME_MEMORY_MIN. */
size_t lmz__gw_frame_budget(size_t len);
/* Parses a client frame (at most max_len bytes) into `a`, an empty scratch
 * arena whose limit becomes the frame's budget (the caller sets the limit
 * it wants after the parse). 0 with *out set; LMZ_ETOOBIG when the
 * DOM would exceed the budget (hostile density such as [0,0,...]; also on
 * a failed malloc), or a parse error (LMZ_ESYNTAX, LMZ_ETOODEEP, ...); err
 * (required) says why. */
int lmz__gw_parse_frame(lmz_arena *a, const uint8_t *data, size_t len,
                        size_t max_len, lmz_json **out,
                        struct lmz_codec_error *err);
/* The member `key` of a frame as a string, or NULL (len may be NULL). */
const char *lmz__gw_str(const lmz_json *obj, const char *key, size_t *len);

#endif
