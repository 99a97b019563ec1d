/* clients/c/lmzc.h - the C client of lmz's client gateway: one WebSocket to
 * ws://HOST:PORT/gateway/LUMENIZE_CLIENT_GATEWAY/{sub}.{tabId}, speaking
 * the original's client protocol (lumenize-behaviour sections 1.9, 2.2-2.7).
 *
 *   lmzc_connect()  TCP connect, HTTP upgrade with the subprotocols
 *                   "lmz, lmz.access-token.<jwt>", then wait for the
 *                   gateway's {"type":"connection_status"} frame: only then
 *                   is the client connected (as the original's client).
 *   lmzc_call()     {"type":"call","callId","binding","instance","chain"}
 *                   -> {"type":"call_response","callId","success",
 *                   "result"|"error"}. Any number of calls may be in flight
 *                   (pipelined on the one socket; answers may come back in
 *                   any order).
 *   incoming calls  {"type":"incoming_call"} frames (an actor called
 *                   lmz_call(ctx, "LUMENIZE_CLIENT_GATEWAY", "<sub>.<tab>",
 *                   ...)) go to the handler set with lmzc_on_incoming(),
 *                   which answers with lmzc_respond() (at once or later).
 *   lmzc_ping()     "lmz:ping" -> "lmz:pong", answered by the gateway
 *                   without running any actor; also the heartbeat.
 *   lmzc_close()    Close frame 1000 "Client disconnect", then the socket.
 *
 * Values are lmz values (include/lmz/value.h); they travel as SC-JSON
 * ({"json":...,"meta":{...}}, core/codec.h). A chain is the operation chain
 * of a continuation, for a method call [{type:'get',key:'increment'},
 * {type:'apply',args:[5]}] (lmzc_method_chain builds it).
 *
 * What this client does not do (the JS client does): reconnecting, token
 * refresh, tab-id discovery. A closed or refused connection is reported
 * (connect callback, on_disconnect with the close code: 4401 token
 * expired, 4409 superseded, ...); the application connects again with a
 * new handle if it wants to. No TLS: put a TLS proxy in front (wss:// and
 * https:// URLs are refused).
 *
 * Server input is hostile: a bad handshake answer fails the connect
 * (LMZ_EAUTH for 401/403, LMZ_EBADMSG for anything malformed, with the
 * reason in lmzc_errmsg()); framing violations close the socket with
 * 1002/1007/1009; frames that are not JSON, unknown types and answers to
 * unknown calls are ignored (counted in lmzc_stats); a malformed answer to
 * a known call fails that call with LMZ_EBADMSG. Every size is bounded
 * (max_message, max_outbound, a 16 KiB handshake answer). Nothing aborts.
 *
 * Threading: everything runs on the thread of `loop`; call every function
 * from that thread. Callbacks never run from inside the function that
 * caused them (libuv's rule); a function that returns an error never runs
 * its callback. */
#ifndef LMZ_CLIENTS_C_LMZC_H
#define LMZ_CLIENTS_C_LMZC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h" /* LMZ_E* codes the functions return */
#include "lmz/value.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMZC_GATEWAY_BINDING "LUMENIZE_CLIENT_GATEWAY"
/* The gateway's default message cap (gateway.max_message_bytes; the
 * original's 32 MiB) and the reason of its 1009 Close. */
#define LMZC_MAX_SEND_MESSAGE (32u << 20)
#define LMZC_TOO_BIG_REASON "Message is too large"

typedef struct lmzc_s lmzc_t;                   /* one connection (opaque) */
typedef struct lmzc_incoming_s lmzc_incoming_t; /* one call from the mesh */

/* status 0: connected (connection_status received). Otherwise the connect
 * failed: LMZ_EAUTH (401/403: token refused; the server's answer is in
 * lmzc_errmsg), LMZ_EBADMSG (not a valid WebSocket/lmz answer), LMZ_ETIMEOUT
 * (no connection_status within connect_timeout_ms), LMZ_ECLOSED (the server
 * closed first), LMZ_ECANCELED (lmzc_close before it finished), libuv codes
 * (UV_ECONNREFUSED, UV_EAI_NONAME, ...). Runs exactly once. */
typedef void (*lmzc_connect_cb)(lmzc_t *c, int status);
/* The handle is gone after this returns. */
typedef void (*lmzc_close_cb)(lmzc_t *c);
/* A connected client lost its socket: the server closed it (`code` is its
 * close code: 4401 token expired, 4409 superseded, 1001 going away, 1009
 * "Message is too large": a message of ours was over its cap, ...), the TCP
 * connection broke (1006), the heartbeat got no pong (1006), or the server
 * broke the protocol (1002/1007/1009, the code we sent). `reason` is valid
 * during the callback only (not NUL-terminated). Calls in flight have
 * already failed with LMZ_ECLOSED, or with LMZ_ETOOBIG when the code is
 * 1009 (either side's; lmzc_errmsg says which). The handle still needs
 * lmzc_close. */
typedef void (*lmzc_disconnect_cb)(lmzc_t *c, int code, const char *reason,
                                   size_t reason_len);
/* A frame whose "type" this client does not know (the original's
 * onUnknownMessage). `text` is the whole frame, valid during the call. */
typedef void (*lmzc_unknown_cb)(lmzc_t *c, const char *text, size_t len);

struct lmzc_options {
  /* Required. "ws://HOST:PORT", "http://HOST:PORT" or "HOST:PORT" (port 80
   * when absent; IPv6 as [::1]; names are resolved). */
  const char *url;
  const char *instance; /* required: "<sub>.<tabId>" (URL-safe characters) */
  const char *token;    /* required: the JWT (HTTP token characters) */
  const char *gateway_binding;  /* NULL = LMZC_GATEWAY_BINDING */
  uint32_t connect_timeout_ms;  /* 0 = 10000: TCP + upgrade + status */
  int heartbeat_ms;             /* 0 = 30000; < 0 = no heartbeat */
  uint32_t close_timeout_ms;    /* 0 = 2000: wait for the server's Close */
  size_t max_message;           /* received message cap; 0 = 64 MiB (the
                                   gateway's output cap: 2 x its message cap) */
  /* A call frame longer than this is refused by lmzc_call (LMZ_ETOOBIG)
   * instead of being sent for the gateway to close the socket with 1009;
   * 0 = LMZC_MAX_SEND_MESSAGE. Set it to the gateway's max_message_bytes. */
  size_t max_send_message;
  size_t max_outbound;          /* unwritten bytes cap; 0 = the larger of
                                   16 MiB and 2 x max_send_message */
  uint32_t max_queued;          /* calls queued before connected; 0 = 100 */
  lmzc_disconnect_cb on_disconnect; /* may be NULL */
  lmzc_unknown_cb on_unknown;       /* may be NULL (ignored, counted) */
  void *data;                       /* initial lmzc_data() */
};

/* Starts connecting. Strings of `opts` are copied. On 0, *out is the handle
 * and `cb` will run once; the handle must be closed with lmzc_close() in
 * every case (also after a failed connect). Calls made before the connect
 * completes are queued (max_queued) and sent once connected.
 * Errors (nothing to close, cb never runs; lmzc_errmsg unavailable, so a
 * message goes to `errmsg` when not NULL, LMZ_ERRMSG_LEN bytes): LMZ_EINVAL
 * (missing option, bad URL, wss://, unsafe characters in instance or
 * token), LMZ_ENOMEM, libuv errors of the first step. */
int lmzc_connect(uv_loop_t *loop, lmzc_t **out, const struct lmzc_options *opts,
                 lmzc_connect_cb cb, char *errmsg);

/* Starts closing: calls in flight or queued fail with LMZ_ECANCELED, pings
 * too, a pending connect gets LMZ_ECANCELED; a connected socket sends Close
 * 1000 "Client disconnect" and waits close_timeout_ms at most for the
 * server's Close; then `cb` (may be NULL) runs and the handle is freed.
 * Allowed from any callback of this client. Calling it twice is a bug
 * (the second call is ignored). Incoming calls not yet answered stay valid:
 * lmzc_respond on them returns LMZ_ECLOSED and frees them. */
void lmzc_close(lmzc_t *c, lmzc_close_cb cb);

/* ---- calls --------------------------------------------------------------- */

/* The answer to a call. status 0: the gateway answered; `ok` says whether
 * the callee returned (`v` = the result) or threw (`v` = the error value,
 * usually an Error). status < 0: no answer: LMZ_ECLOSED (the socket closed
 * first; the gateway drops such answers), LMZ_ETOOBIG (the socket closed
 * with 1009 "Message is too large" first: this call or another one in
 * flight was over the gateway's cap, or an answer over max_message came;
 * it may or may not have run), LMZ_ECANCELED (lmzc_close),
 * LMZ_EBADMSG (the answer could not be decoded; lmzc_errmsg says why); `v`
 * is NULL then. `v` lives in a scratch arena valid during the callback only
 * (lmz_value_copy it to keep it). */
typedef void (*lmzc_reply_cb)(lmzc_t *c, void *data, int status, bool ok,
                              const lmz_value *v);

struct lmzc_call_opts {
  /* callContext.state: a plain object (SC-JSON) the callee sees with
   * lmz_state(); NULL = {} */
  const lmz_value *state;
  /* The chain as SC-JSON text already encoded ({"json":[...],"meta":{}});
   * used instead of the chain value when not NULL (for callers that send
   * the same chain many times). Not checked here; the gateway answers a
   * malformed chain with an error. */
  const char *chain_scjson;
  size_t chain_scjson_len;
};

/* Calls `binding` (a durable object binding with an `instance`, or a
 * worker with instance NULL) with the operation chain `chain` (SC-JSON
 * encodable; lmzc_method_chain). Everything is encoded before return (the
 * arguments are not kept). `cb` may be NULL (the answer is dropped). Sent
 * at the end of the loop iteration (frames of one iteration leave in one
 * write). Returns 0 or: LMZ_EINVAL (binding NULL, chain NULL), LMZ_ECLOSED
 * (disconnected, failed, closing), LMZ_EOVERLOAD (max_queued calls already
 * wait for the connection, or max_outbound bytes are unwritten),
 * LMZ_ETOOBIG (the frame exceeds max_send_message or max_outbound;
 * lmzc_errmsg "Message is too large: ..."; nothing was sent), codec errors of the chain
 * or state (LMZ_EUNSUPPORTED, LMZ_ETOODEEP; lmzc_errmsg), LMZ_ENOMEM. */
int lmzc_call(lmzc_t *c, const char *binding, const char *instance,
              const lmz_value *chain, lmzc_reply_cb cb, void *data);
int lmzc_call_ex(lmzc_t *c, const char *binding, const char *instance,
                 const lmz_value *chain, const struct lmzc_call_opts *opts,
                 lmzc_reply_cb cb, void *data);

/* The chain of a method call: [{"type":"get","key":method},{"type":"apply",
 * "args":[args...]}], built in `a` (args are referenced, not copied).
 * NULL on out of memory or method NULL. */
lmz_value *lmzc_method_chain(lmz_arena *a, const char *method, size_t nargs,
                             lmz_value *const *args);
/* The reverse, for incoming calls: true when `chain` is exactly a get of a
 * string key followed by an apply; sets *method (borrowed from the chain)
 * and *args (the array of arguments, borrowed). */
bool lmzc_chain_method(const lmz_value *chain, const char **method,
                       const lmz_value **args);

/* The flags of an error value a call answered with (!ok): retryable is
 * true for errors worth retrying later (MeshOverloadedError: the callee or
 * its node is over a queue bound; ActorUnavailableError); overloaded is
 * true for MeshOverloadedError. False for anything that is not an Error
 * whose property is exactly true. */
bool lmzc_error_is_retryable(const lmz_value *err);
bool lmzc_error_is_overloaded(const lmz_value *err);

/* ---- heartbeat ------------------------------------------------------------ */

/* status 0: "lmz:pong" came back; LMZ_ECLOSED / LMZ_ECANCELED otherwise. */
typedef void (*lmzc_pong_cb)(lmzc_t *c, void *data, int status);
/* Sends "lmz:ping"; pongs are matched in order. Only when connected.
 * Returns 0, LMZ_EBUSY (not connected yet), LMZ_ECLOSED, LMZ_EOVERLOAD,
 * LMZ_ENOMEM. */
int lmzc_ping(lmzc_t *c, lmzc_pong_cb cb, void *data);

/* ---- incoming calls (mesh -> client) -------------------------------------- */

struct lmzc_incoming_s {
  void *data;             /* public: for the application */
  lmzc_t *client;         /* read-only; do not use after its close cb */
  const char *call_id;    /* the gateway's callId */
  lmz_value *chain;       /* the operation chain (lmzc_chain_method) */
  lmz_value *call_chain;  /* array of {type, bindingName, instanceName?}:
                             who called, outermost first */
  lmz_value *origin_auth; /* {sub, claims} of the originating client, or NULL */
  lmz_value *state;       /* callContext.state (an object) */
  lmz_arena *arena;       /* owns the values above; build the answer here */
};

/* Runs for every incoming_call. The handler owns `in` until it answers it
 * with lmzc_respond() (now or later, e.g. after its own lmzc_call). */
typedef void (*lmzc_incoming_cb)(lmzc_t *c, lmzc_incoming_t *in, void *data);
/* Sets (or with NULL removes) the handler. Without a handler, incoming
 * calls are answered with Error "No handler for incoming calls". */
void lmzc_on_incoming(lmzc_t *c, lmzc_incoming_cb handler, void *data);
/* Answers `in` with a result (ok) or a thrown value (!ok, usually an Error)
 * and frees it (with its arena: the call's values die here; `v` may live
 * in it). A value SC-JSON cannot carry is replaced by a DataCloneError.
 * Returns 0, LMZ_ECLOSED (the socket is gone: the gateway has already
 * failed the call), LMZ_EOVERLOAD, LMZ_ENOMEM; `in` is freed in every case.
 * Must be called exactly once per incoming call. */
int lmzc_respond(lmzc_incoming_t *in, bool ok, const lmz_value *v);

/* ---- state ---------------------------------------------------------------- */

struct lmzc_stats {
  uint64_t calls_sent, replies, replies_unknown; /* unknown: no such call */
  uint64_t incoming, incoming_answered;
  uint64_t pings_sent, pongs;
  uint64_t frames_in, frames_ignored; /* ignored: binary, not JSON, no type,
                                         unknown type, malformed */
  uint64_t bytes_in, bytes_out;
};

void *lmzc_data(const lmzc_t *c);
void lmzc_set_data(lmzc_t *c, void *data);
uv_loop_t *lmzc_loop(const lmzc_t *c);
/* Connected: connection_status received and the socket is still open. */
bool lmzc_is_connected(const lmzc_t *c);
/* The gateway's connection_status.subscriptionRequired (false before). */
bool lmzc_subscription_required(const lmzc_t *c);
/* Calls sent or queued that have no answer yet. */
size_t lmzc_pending(const lmzc_t *c);
/* Bytes framed but not yet handed to the kernel. */
size_t lmzc_queued_bytes(const lmzc_t *c);
/* The last error's context ("HTTP 401: {"error":"invalid_token",...}"). */
const char *lmzc_errmsg(const lmzc_t *c);
const struct lmzc_stats *lmzc_stats(const lmzc_t *c);
const char *lmzc_instance(const lmzc_t *c);

/* ---- development tokens --------------------------------------------------- */

/* status 0: `token` (the JWT) and `sub` (its subject) are valid during the
 * callback; otherwise both are NULL and `errmsg` says why. */
typedef void (*lmzc_token_cb)(void *data, int status, const char *token,
                              const char *sub, const char *errmsg);
/* GET {url}/_lmz/dev-token from an `lmzd --dev` (a signed one-hour token
 * for a fresh random sub; never available without --dev). `url` as in
 * lmzc_options. `cb` runs once, after at most 10 s. Returns 0, LMZ_EINVAL
 * (bad URL), LMZ_ENOMEM. Errors in cb: libuv connect errors, LMZ_ETIMEOUT,
 * LMZ_EAUTH (HTTP 4xx: not --dev), LMZ_EBADMSG (not the expected JSON). */
int lmzc_dev_token(uv_loop_t *loop, const char *url, lmzc_token_cb cb,
                   void *data);

#ifdef __cplusplus
}
#endif
#endif
