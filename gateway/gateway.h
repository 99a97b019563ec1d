/* gateway/gateway.h - a node's HTTP/WebSocket port: client gateway actors,
 * HTTP routing to actors, static files, status and metrics.
 *
 * What the port serves (in this order):
 *   GET  /_lmz/status          JSON: node id, uptime, actors, calls, gateway
 *   GET  /metrics              Prometheus text (node, gateway, HTTP counters)
 *   GET  /_lmz/dev-token       only with opts.dev: {access_token, sub, ...}
 *                              for a fresh random sub, signed with the dev
 *                              keys, 1 h (never enabled without dev)
 *   /gateway/{binding}/{sub}.{tabId}
 *        WebSocket upgrade -> the client's gateway actor (lumenize-behaviour
 *        sections 1.10 and 2.2-2.7); a plain request -> 426
 *   {auth_prefix}[/...]        on_request of LUMENIZE_AUTH "default" (the
 *                              auth service, auth/auth.h), when set; bodies
 *                              over auth_max_body 413 here, the bot check
 *                              (botcheck.c) first on the magic-link POST,
 *                              allowed origins get Allow-Credentials
 *   /{prefix}/{binding}/{instance}[/...]   on_request of that durable object
 *        (lmz/http.h): 404 unknown binding, 400 missing instance, 501 no
 *        handler, 500 handler failure, 503 overloaded / shutting down.
 *        Authenticated like a WebSocket (access.c): unless the binding is
 *        in opts.public_bindings, "Authorization: Bearer <jwt>" is verified
 *        (signature, exp, iss, aud, sub, access gate) and the subject's
 *        bucket (opts.http_rate) taken BEFORE anything is delivered or
 *        claimed: 401 / 403 / 429 (+Retry-After) with the original's bodies
 *        (jwt.h). The turn's origin auth is {sub, claims} of the token (a
 *        public binding's turn has none); a request forwarded to the
 *        owner node carries it in the Call's context like any mesh call
 *   GET/HEAD {static_mount_prefix}/...  a file under opts.static_mount_dir
 *   GET/HEAD anything else     a file under opts.static_dir, else 404
 * CORS (when an allow-list is set) applies to the gateway and actor routes
 * as the original's routeDORequest does: OPTIONS with an Origin -> 204
 * (with Access-Control-Allow-Origin only for an allowed origin); another
 * method from a disallowed origin -> 403 "Forbidden: Origin not allowed";
 * an allowed origin's answers carry Access-Control-Allow-Origin and
 * Vary: Origin. Requests without Origin are not affected.
 *
 * The client gateway. The gateway registers the built-in class
 * LumenizeClientGateway and binds it (opts.binding, LUMENIZE_CLIENT_GATEWAY)
 * on the node, so application code reaches a client with
 *   lmz_call(ctx, "LUMENIZE_CLIENT_GATEWAY", "alice.tab1", ctn, handler, 0);
 * Each instance ("{sub}.{tabId}") has at most one socket. State per
 * instance, derived as in the original (no storage):
 *   socket open             -> mesh calls are relayed (incoming_call) and
 *                              answered within client_call_timeout_ms, else
 *                              ClientDisconnectedError('Client call timed out')
 *   closed < grace_ms ago   -> calls are held and relayed on reconnect, or
 *     (not by 4409)            fail with ClientDisconnectedError('Client did
 *                              not reconnect within grace period')
 *   otherwise               -> ClientDisconnectedError('Client is not
 *                              connected') at once
 * Every ClientDisconnectedError carries clientInstanceName.
 * Deliberate differences (DESIGN.md section 9): the token's signature,
 * issuer, audience and access gate are verified here (the original trusted
 * its edge worker); when a socket drops, mesh calls already relayed to it
 * fail at once with ClientDisconnectedError('Client disconnected') instead
 * of waiting for the timeout, and the client's own calls still running in
 * the mesh have their answers dropped (logged): the client (which rejects
 * them on the drop) re-issues them.
 *
 * Threading: the node's loop thread only. */
#ifndef LMZ_GATEWAY_GATEWAY_H
#define LMZ_GATEWAY_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "actor/node.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "gateway/http.h"
#include "gateway/jwt.h"
#include "gateway/ratelimit.h"

#define LMZ_GATEWAY_BINDING "LUMENIZE_CLIENT_GATEWAY"
#define LMZ_GATEWAY_CLASS "LumenizeClientGateway"
#define LMZ_GATEWAY_DEFAULT_PREFIX "/api"
#define LMZ_GATEWAY_AUTH_BINDING "LUMENIZE_AUTH" /* auth/auth.h */
#define LMZ_GATEWAY_AUTH_INSTANCE "default"
#define LMZ_GATEWAY_GRACE_MS 5000u
#define LMZ_GATEWAY_CALL_TIMEOUT_MS 30000u
/* The cap on one client message (a WebSocket message, fragments summed, and
 * an HTTP request body): the original's (Cloudflare's) 32 MiB. Above it a
 * socket is closed with 1009 "Message is too large" (LMZ_WS_TOO_BIG_REASON)
 * and a request gets 413. Allowed: LMZ_GATEWAY_MAX_MESSAGE_MIN ..
 * LMZ_GATEWAY_MAX_MESSAGE_LIMIT; the ceiling is the value codecs' and the
 * JSON parser's own input cap (core/codec.h, core/json.h: 64 MiB), so a
 * message the gateway takes can always be decoded. Memory per socket: one
 * message being received, 2 x the cap of output (a reply may be larger than
 * its request after JSON escaping; at least 4 MiB), and while a frame is
 * handled (one at a time per gateway) its DOM in a scratch arena, at most
 * LMZ_GATEWAY_FRAME_MEMORY_FACTOR x the frame's size +
 * LMZ_GATEWAY_FRAME_MEMORY_MIN (8x + 16 MiB), and for a call or an answer
 * its decoded values (the SC-JSON decoder's own bound: 16x their text + 1 MiB). */
#define LMZ_GATEWAY_MAX_MESSAGE (32u << 20)
/* The scratch memory one client frame of N bytes may use for its JSON DOM:
 * FACTOR x N + MIN. A DOM costs ~40 bytes per value, so a frame of tiny
 * elements ([0,0,...], 20x its size) over MIN/12 (~1.3 MiB) is refused: the
 * socket is closed with 1009 "Message is too large" as for an oversize
 * message. (A call's values decoded from such a frame would need about
 * twice its DOM, past the SC-JSON decoder's own 16x bound, so such a call
 * would have failed there anyway.) */
#define LMZ_GATEWAY_FRAME_MEMORY_FACTOR 8u
#define LMZ_GATEWAY_FRAME_MEMORY_MIN (16u << 20)
#define LMZ_GATEWAY_MAX_MESSAGE_MIN 1024u
#define LMZ_GATEWAY_MAX_MESSAGE_LIMIT (64u << 20)

typedef struct lmz_gateway_s lmz_gateway_t;

/* A verification key given as text (gateway/keys.h formats: PEM or 43
 * base64url characters). */
struct lmz_gateway_key {
  const char *kid;        /* "BLUE", "GREEN" */
  const char *public_key; /* NUL-terminated */
};

#define LMZ_GATEWAY_AUTH_MAX_BODY 16384u
#define LMZ_GATEWAY_BOT_ENDPOINT \
  "https://challenges.cloudflare.com/turnstile/v0/siteverify"
#define LMZ_GATEWAY_BOT_TIMEOUT_MS 10000u

/* A Turnstile-compatible bot check (the original's createAuthRoutes does it
 * for the magic-link POST; gateway/botcheck.c). The client's token is the
 * JSON body's "cf-turnstile-response"; the gateway POSTs the form
 * {secret, response, remoteip} to `endpoint` (its host is the only one this
 * check may reach, whatever fetch.allow says) without holding any actor, and
 * forwards the request only when the answer is {"success": true}. Answers
 * otherwise: 400 invalid_request (body not a JSON object), 403
 * turnstile_required (no token), 403 turnstile_failed with error_codes
 * (refused, timed out, unreachable, or an answer that is not the JSON
 * expected); the actor never sees the request, no mail is sent. */
struct lmz_gateway_bot_check {
  const char *secret;   /* NULL = no check */
  const char *endpoint; /* NULL = LMZ_GATEWAY_BOT_ENDPOINT */
  uint32_t timeout_ms;  /* 0 = LMZ_GATEWAY_BOT_TIMEOUT_MS */
};

struct lmz_gateway_opts {
  const char *host;    /* listen address; NULL = "127.0.0.1" */
  int port;            /* 0 = ephemeral (lmz_gateway_port) */
  const char *binding; /* NULL = LMZ_GATEWAY_BINDING */
  /* Actor routes live under this prefix. NULL = LMZ_GATEWAY_DEFAULT_PREFIX
   * ("/api"); "" or "/" = no prefix (every /{binding}/{instance} path). */
  const char *route_prefix;
  /* The auth service's prefix ("/auth"; NULL = none): every request under
   * it goes to on_request of (LMZ_GATEWAY_AUTH_BINDING, "default"), on
   * this node or forwarded to its owner, with no token check (the service
   * authenticates its own callers). */
  const char *auth_prefix;
  const char *static_dir; /* NULL = no static files */
  /* One more folder, served under a URL prefix with static_dir's rules
   * (GET {prefix}/a.js -> {dir}/a.js); both NULL = none. lmzd --dev mounts
   * the JavaScript client (clients/js/src) at "/lmz-client" this way, so
   * the example page can import it without a build step. */
  const char *static_mount_prefix; /* "/lmz-client" (no trailing /) */
  const char *static_mount_dir;
  const char *const *cors_origins; /* exact origins ("https://a.example") */
  size_t n_cors_origins;           /* 0 = no CORS checks at all */
  uint32_t grace_ms;               /* 0 = LMZ_GATEWAY_GRACE_MS */
  uint32_t client_call_timeout_ms; /* 0 = LMZ_GATEWAY_CALL_TIMEOUT_MS */
  /* client message cap; 0 = LMZ_GATEWAY_MAX_MESSAGE; outside MIN..LIMIT:
   * LMZ_EINVAL */
  size_t max_message;
  /* Token checks: issuer and audience (NULL = LMZ_JWT_DEFAULT_ISS / _AUD).
   * Keys, tried in this order and merged: `keyset` (copied), the dev keys
   * of `dev_key_dir` (loaded, or created when missing), `public_keys`.
   * With no key at all every client is refused (401). */
  const char *iss, *aud;
  const struct lmz_jwt_keyset *keyset;
  const char *dev_key_dir;
  const struct lmz_gateway_key *public_keys;
  size_t n_public_keys;
  bool dev; /* serve /_lmz/dev-token (needs a key with its secret part) */
  /* Durable-object bindings whose actor routes need no token (webhooks and
   * the like): their turns run with no origin auth. Exact binding names as
   * bound on the node ("WEBHOOK_DO"); none by default. */
  const char *const *public_bindings;
  size_t n_public_bindings;
  /* Per-subject token buckets (ratelimit.h; per_minute 0 = no limit, the
   * default): authenticated actor requests, WebSocket connections. */
  struct lmz_rate_opts http_rate, ws_rate;
  /* Bodies of requests under auth_prefix above this many bytes are refused
   * here, 413, before they are forwarded; 0 = LMZ_GATEWAY_AUTH_MAX_BODY. */
  size_t auth_max_body;
  /* The bot check on POST {auth_prefix}/email-magic-link; secret NULL = off. */
  struct lmz_gateway_bot_check bot_check;
};

/* Counters since init; *_open are gauges. */
struct lmz_gateway_stats {
  uint64_t clients;            /* gauge: instances with a socket, a grace
                                  period or held calls */
  uint64_t sockets_open;       /* gauge */
  uint64_t accepted, rejected; /* WebSocket upgrades */
  uint64_t superseded;         /* sockets closed with 4409 */
  uint64_t expired_closes;     /* sockets closed with 4401 */
  uint64_t frames_in, frames_ignored; /* client frames; ignored: bad JSON,
                                         unknown type, binary */
  uint64_t pings;              /* lmz:ping answered */
  uint64_t client_calls, client_calls_failed, client_replies_dropped;
  uint64_t incoming_calls, incoming_ok, incoming_failed, incoming_timeouts,
      incoming_held, grace_expired, not_connected;
  uint64_t http_routed, http_static, http_404;
  /* actor routes refused before anything ran: 401, 403, 429 */
  uint64_t http_unauthorized, http_forbidden, http_rate_limited;
  uint64_t http_public;      /* requests to public bindings (no token) */
  uint64_t ws_rate_limited;  /* upgrades refused 429 */
};

/* The gateway handle (README "Code conventions"): the caller allocates it;
 * the fields are private to gateway/ (gw_int.h). */
typedef void (*lmz_gateway_close_cb)(lmz_gateway_t *gw, void *arg);

/* Intrusive doubly linked list (FIFO queues of deadlines). A link whose
 * next is NULL is on no list. */
struct lmz__gw_link {
  struct lmz__gw_link *next, *prev;
};
struct lmz__gw_list {
  struct lmz__gw_link head; /* sentinel */
  size_t n;
};

/* The bot check (botcheck.c): secret NULL = off; net is the HTTP client,
 * created by the first check (NULL until then and after close). */
struct lmz__gw_bot {
  lmz_net_t *net; /* allow-list: the endpoint's host only */
  char *secret, *url, *host;
  uint32_t timeout_ms;
};

struct lmz_gateway_s {
  uv_loop_t *loop;
  lmz_node_t *node;
  lmz_http_server_t http;
  char *binding;
  char *prefix;     /* normalized: "" (none) or "/x[/y]" without trailing / */
  char *auth_prefix; /* "/auth" or NULL: routed to LUMENIZE_AUTH/default */
  size_t auth_max_body; /* bodies under auth_prefix; larger: 413 here */
  struct lmz__gw_bot bot; /* the bot check on the magic-link POST */
  char *static_dir; /* realpath, or NULL */
  char *mount_prefix, *mount_dir; /* "/x" and a realpath, or both NULL */
  char **cors;
  size_t n_cors;
  char *iss, *aud;
  struct lmz_jwt_keyset keys;
  char **public_bindings; /* reachable over HTTP without a token */
  size_t n_public;
  lmz_rate http_rate; /* per subject: authenticated actor requests */
  lmz_rate ws_rate;   /* per subject: WebSocket connections */
  bool dev;
  uint32_t grace_ms, call_timeout_ms;
  size_t max_message;
  uv_timer_t timer; /* earliest deadline of sent_q, grace_q, fail_q */
  struct lmz__gw_list sent_q;  /* gw_incall relayed, by deadline */
  struct lmz__gw_list fail_q;  /* gw_incall to fail on the next timer run */
  struct lmz__gw_list grace_q; /* gw_client in grace, by deadline */
  lmz_hmap clients;       /* instance -> struct gw_client */
  struct lmz__gw_list conns; /* every struct gw_conn not yet freed */
  lmz_buf out;            /* frame being built (sends copy it) */
  lmz_arena *scratch;     /* per frame / per request; reset after use */
  uint64_t started_ms;    /* uv_now at init */
  double started_wall_ms;
  bool closing;
  unsigned n_waits; /* close waits: http server, timer, static reads */
  lmz_gateway_close_cb close_cb;
  void *close_arg;
  struct lmz_gateway_stats stats;
};

/* Initializes the caller's `gw`: loads the key set, binds the HTTP port,
 * registers the class LumenizeClientGateway and binds opts.binding on
 * `node` (before or after lmz_node_start), then starts listening. Strings
 * of `opts` are copied. On 0, close with lmz_gateway_close() and, once the
 * node has closed too, lmz_gateway_release(). Errors (errmsg,
 * LMZ_ERRMSG_LEN bytes, says what failed): LMZ_EINVAL (bad options),
 * LMZ_EEXIST (binding or class taken), key loading errors (gateway/keys.h:
 * LMZ_EACCESS, LMZ_EBADCONFIG, LMZ_EIO), libuv errors of bind/listen
 * (UV_EADDRINUSE ...), LMZ_ENOMEM. On error nothing is left on the loop,
 * nothing is bound on the node and `gw` may be freed at once (a failure
 * after the class was registered leaves it registered but never bound; a
 * later init on the same node then fails with LMZ_EEXIST). */
int lmz_gateway_init(uv_loop_t *loop, lmz_gateway_t *gw, lmz_node_t *node,
                     const struct lmz_gateway_opts *opts, char *errmsg);
/* The bound HTTP port. */
int lmz_gateway_port(const lmz_gateway_t *gw);
/* Call timeouts (client_call_timeout_ms) and grace periods are measured on
 * the node's clock (lmz_node_now_ms; lmz_node_opts.clock). A test kit that
 * moves a fake clock calls this: whatever is due by it is handled on the
 * next loop iteration (never from this call). */
void lmz_gateway_clock_moved(lmz_gateway_t *gw);

/* Stops listening, closes every socket (1001 going away) and connection,
 * fails held and relayed mesh calls with ClientDisconnectedError, waits for
 * static-file reads and bot checks in flight; then cb (may be NULL) runs:
 * nothing of the gateway is on the loop any more. Later mesh calls to the
 * gateway binding fail with ClientDisconnectedError('Client is not
 * connected'). Calling it twice is a no-op. */
void lmz_gateway_close(lmz_gateway_t *gw, lmz_gateway_close_cb cb, void *arg);
/* Releases what the gateway still holds (clients, connections, copied
 * options, keys): only after its close callback AND after the node has
 * closed (the node keeps the class, whose calls still reach the gateway
 * until then). The memory of `gw` is then the caller's. NULL is ignored. */
void lmz_gateway_release(lmz_gateway_t *gw);

void lmz_gateway_get_stats(const lmz_gateway_t *gw,
                           struct lmz_gateway_stats *st);

#endif
