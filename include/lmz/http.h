/* lmz/http.h - HTTP requests routed to an actor's on_request handler.
 *
 * The gateway (lmzd's HTTP port) routes
 *     /{prefix}/{binding}/{instance}[/rest...][?query]
 * to the durable object (binding, instance): its class's
 * lmz_class_opts.on_request runs as a turn of that actor, like a mesh call
 * (one turn at a time, storage writes atomic, the response leaves once the
 * turn's writes are durable). The binding segment is matched like the
 * original's routeDORequest: a kebab-case segment ("counter-do") finds
 * COUNTER_DO, counter_do, CounterDo, counterDo, CounterDO...; anything else
 * must match exactly. A class without on_request answers 501.
 *
 *   static int counter_http(lmz_ctx *ctx, const struct lmz_request *req,
 *                           struct lmz_response *res) {
 *     if (strcmp(req->method, "GET"))
 *       return lmz_response_text(ctx, res, 405, "text/plain", "GET only");
 *     return lmz_response_text(ctx, res, 200, "application/json", "{\"ok\":1}");
 *   }
 *
 * Authentication happens before the handler runs: unless the binding is
 * declared public (lmzd config gateway.public_bindings), the gateway
 * verifies "Authorization: Bearer <jwt>" (signature, exp, iss, aud, sub,
 * access gate) and answers 401 / 403 / 429 itself, so an unauthenticated
 * request never reaches the actor (nor claims it). The handler's
 * lmz_origin_auth(ctx) is then {sub, claims} of that token, as for a call
 * from a WebSocket client; the call chain is empty, and calls it makes
 * start a chain that carries that origin auth. A public binding's handler
 * runs with no call context (no origin auth).
 * It may not defer (lmz_defer returns NULL): answer within the turn.
 * Returning a negative code or throwing answers 500 "Internal Server Error"
 * (the error is logged, never sent to the client).
 *
 * Memory: the request and everything it points to live in the turn arena
 * until the turn ends. The response's body and header strings must stay
 * valid until then too: use the turn arena (the helpers below copy into it)
 * or static data, never the handler's stack.
 * Threads: the node's loop thread, inside the handler only. */
#ifndef LMZ_HTTP_H
#define LMZ_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lmz/lmz.h"

#ifdef __cplusplus
extern "C" {
#endif

struct lmz_header {
  const char *name;  /* NUL-terminated, as the client sent it */
  const char *value; /* NUL-terminated */
};

struct lmz_request {
  const char *method;   /* "GET", "POST", ... */
  const char *path;     /* whole path as received (not decoded, prefix kept) */
  const char *query;    /* after '?' without it, or "" */
  const struct lmz_header *headers;
  size_t n_headers;
  const uint8_t *body;  /* NULL when empty */
  size_t body_len;
  const char *binding;  /* the binding the path resolved to ("COUNTER_DO") */
  const char *instance; /* the instance segment, as received */
  const char *remote;   /* client address "127.0.0.1:5555" */
};

/* Preset to status 200, no headers, no body. */
struct lmz_response {
  int status;               /* 100..599 (not 101) */
  const char *content_type; /* NULL = none */
  const void *body;
  size_t body_len;
  const struct lmz_header *headers; /* extra headers (not Content-Length,
                                       Connection, Transfer-Encoding) */
  size_t n_headers;
};

/* First header `name` (ASCII case-insensitive), or NULL. */
const char *lmz_request_header(const struct lmz_request *req, const char *name);

/* Appends a header (name and value copied into the turn arena). Returns 0,
 * LMZ_EINVAL (CR, LF or NUL in name or value; empty name), LMZ_ENOMEM. */
int lmz_response_header(lmz_ctx *ctx, struct lmz_response *res,
                        const char *name, const char *value);
/* Sets status, content type and body (`len` bytes copied into the turn
 * arena). Returns 0 or LMZ_ENOMEM. */
int lmz_response_body(lmz_ctx *ctx, struct lmz_response *res, int status,
                      const char *content_type, const void *body, size_t len);
/* Same with a NUL-terminated body. */
int lmz_response_text(lmz_ctx *ctx, struct lmz_response *res, int status,
                      const char *content_type, const char *body);

#ifdef __cplusplus
}
#endif
#endif
