/* gateway/routes.c - which actor a URL names, CORS, and HTTP requests run
 * as turns of durable objects (lumenize-behaviour section 6, the original's
 * routeDORequest).
 *
 * Happy path: /{prefix}/{binding}/{instance}[/...] -> the binding segment
 * is matched against the node's durable-object bindings (a kebab-case
 * segment tries the case variants of getDONamespaceFromPathSegment, any
 * other segment matches exactly) -> CORS -> access (access.c: bearer token
 * or public binding) -> a trace (the request's W3C traceparent, else
 * fresh: request_trace) -> lmz_node_http_traced -> the handler's response
 * (with CORS headers for an allowed origin, and a traceparent naming the
 * turn); log lines about the request carry its trace= and call=. /gateway/{binding}/
 * {instance} goes the same way to the client gateway (clientgw.c).
 * Failure modes (answers):
 *  1. no binding segment, or no binding matches: not ours (the caller goes
 *     on to static files, then 404), as routeDORequest returns undefined;
 *  2. two bindings match: 400 MultipleBindingsFoundError (JSON);
 *  3. a binding but no instance segment: 400 MissingInstanceNameError;
 *  4. CORS allow-list set and the Origin is not on it: 403 "Forbidden:
 *     Origin not allowed" (OPTIONS with any Origin: 204);
 *  4b. the binding is not public and the request has no valid bearer token,
 *     the access gate refuses it or its subject is over its limit: 401 /
 *     403 / 429 (access.c), before the actor is claimed or anything runs
 *     (the order of the original's routeDORequest: binding, CORS, then the
 *     onBeforeRequest auth hook);
 *  5. the class has no on_request: 501 "Not Implemented: override
 *     onRequest() to handle HTTP requests";
 *  6. the handler throws / fails, a response the HTTP layer refuses
 *     (status out of range, CR/LF in a header): 500 (logged);
 *  7. the node is overloaded or shutting down, the actor is unavailable
 *     in the cluster: 503;
 *  8. the connection closes before the turn ends: the answer is dropped.
 * Deliberate difference: the prefix matches whole segments ("/apix" is not
 * under "/api"; the original's startsWith would route it). */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway/gw_int.h"

#define MAX_SEG 255
#define MAX_VARIANTS 8

/* ---- answers ------------------------------------------------------------- */

int lmz__gw_respond(lmz_http_conn_t *conn, int status, const char *ctype,
                    const void *body, size_t len, const char *origin,
                    const struct lmz_http_header *extra, size_t n_extra) {
  struct lmz_http_header hs[34];
  size_t n = 0;
  if (origin && *origin) {
    hs[n++] = (struct lmz_http_header){"Access-Control-Allow-Origin", 27,
                                       origin, strlen(origin)};
    hs[n++] = (struct lmz_http_header){"Vary", 4, "Origin", 6};
  }
  for (size_t i = 0; i < n_extra && n < LMZ_ARRAY_SIZE(hs); i++)
    hs[n++] = extra[i];
  struct lmz_http_response r = {.status = status, .headers = hs, .n_headers = n,
                                .content_type = ctype, .body = body,
                                .body_len = len};
  return lmz_http_respond(conn, &r);
}

static int respond_json(lmz_http_conn_t *conn, int status, lmz_buf *b,
                        const char *origin) {
  return lmz__gw_respond(conn, status, "application/json", b->data, b->len,
                         origin, NULL, 0);
}

/* ---- CORS (section 6 table) ---------------------------------------------- */

int lmz__gw_cors(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                 const struct lmz_http_request *req, char origin[256]) {
  return lmz__gw_cors_cred(gw, conn, req, origin, false);
}

int lmz__gw_cors_cred(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                      const struct lmz_http_request *req, char origin[256],
                      bool credentials) {
  origin[0] = '\0';
  size_t ol;
  const char *o = gw->n_cors ? lmz_http_header_get(req, "Origin", &ol) : NULL;
  if (!o)
    return 0; /* no allow-list, or not a cross-origin request */
  bool allowed = false;
  for (size_t i = 0; !allowed && i < gw->n_cors; i++)
    allowed = strlen(gw->cors[i]) == ol && !memcmp(gw->cors[i], o, ol);
  if (allowed && ol < 256) {
    memcpy(origin, o, ol);
    origin[ol] = '\0';
  }
  if (!strcmp(req->method, "OPTIONS")) { /* never forwarded */
    struct lmz_http_header cred = {"Access-Control-Allow-Credentials", 32, "true", 4};
    lmz__gw_respond(conn, 204, NULL, NULL, 0, origin, &cred,
                    credentials && origin[0] ? 1 : 0);
    return 1;
  }
  if (!origin[0]) {
    LMZ_LOG_INFO(&lmz__gw_log, "origin %.*s not allowed (%s %s)", (int)ol, o,
                 req->method, req->target);
    lmz__gw_respond(conn, 403, "text/plain", "Forbidden: Origin not allowed", 29,
                    NULL, NULL, 0);
    return 1;
  }
  return 0;
}

/* ---- binding names (getDONamespaceFromPathSegment) ----------------------- */

static bool is_kebab(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '-')
      return false;
  return n > 0;
}

enum casing { UPPER_SNAKE, LOWER_SNAKE, PASCAL, CAMEL, UPPER_JOINED, PASCAL_ACRONYM };

/* One variant of a kebab segment into out (n + 1 bytes). */
static void variant(const char *s, size_t n, enum casing c, char *out) {
  size_t o = 0, part = 0, start = 0;
  size_t last_start = 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '-')
      last_start = i + 1;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != '-')
      continue;
    for (size_t j = start; j < i; j++) {
      int ch = (unsigned char)s[j];
      bool first = j == start;
      bool up = c == UPPER_SNAKE || c == UPPER_JOINED ||
                (c == PASCAL && first) || (c == CAMEL && first && part > 0) ||
                (c == PASCAL_ACRONYM && (first || start == last_start));
      out[o++] = (char)(up ? toupper(ch) : ch);
    }
    if (i < n && (c == UPPER_SNAKE || c == LOWER_SNAKE))
      out[o++] = '_';
    start = i + 1;
    part++;
  }
  out[o] = '\0';
}

/* The candidate names of a segment, deduplicated; returns how many. */
static size_t variants(const char *s, size_t n, char out[MAX_VARIANTS][MAX_SEG + 1]) {
  size_t k = 0;
  memcpy(out[k], s, n);
  out[k++][n] = '\0';
  if (!is_kebab(s, n))
    return k; /* exact matching only */
  bool single = false, dash = memchr(s, '-', n) != NULL;
  size_t last_len = 0;
  for (size_t i = 0, start = 0; i <= n; i++)
    if (i == n || s[i] == '-') {
      single |= i - start == 1;
      last_len = i - start;
      start = i + 1;
    }
  enum casing list[6];
  size_t nl = 0;
  list[nl++] = UPPER_SNAKE;
  list[nl++] = LOWER_SNAKE;
  list[nl++] = PASCAL;
  list[nl++] = CAMEL;
  if (single)
    list[nl++] = UPPER_JOINED; /* my-d-o -> MYDO */
  if (dash && last_len <= 2)
    list[nl++] = PASCAL_ACRONYM; /* my-do -> MyDO */
  for (size_t i = 0; i < nl; i++) {
    variant(s, n, list[i], out[k]);
    bool dup = false;
    for (size_t j = 0; j < k && !dup; j++)
      dup = !strcmp(out[j], out[k]);
    if (!dup)
      k++;
  }
  return k;
}

int lmz__gw_match_binding(lmz_gateway_t *gw, const char *seg, size_t len,
                          char *names, size_t cap) {
  names[0] = '\0';
  if (!len || len > MAX_SEG)
    return 0;
  char v[MAX_VARIANTS][MAX_SEG + 1];
  size_t nv = variants(seg, len, v), used = 0;
  int found = 0;
  for (size_t i = 0; i < nv; i++) {
    lmz_node_type kind;
    if (!lmz_node_binding_kind(gw->node, v[i], &kind) || kind != LMZ_NODE_DO)
      continue;
    found++;
    int w = snprintf(names + used, cap - used, "%s%s", used ? ", " : "", v[i]);
    if (w > 0 && (size_t)w < cap - used)
      used += (size_t)w;
  }
  return found;
}

/* ---- path segments ------------------------------------------------------- */

struct segs {
  const char *p[3];
  size_t n[3];
  size_t count; /* up to 3 (binding, instance, "more") */
};

/* Splits `path` (after a prefix) into its first non-empty segments. */
static void split(const char *path, size_t len, struct segs *s) {
  s->count = 0;
  size_t i = 0;
  while (i < len && s->count < 3) {
    while (i < len && path[i] == '/')
      i++;
    size_t start = i;
    while (i < len && path[i] != '/')
      i++;
    if (i > start) {
      s->p[s->count] = path + start;
      s->n[s->count++] = i - start;
    }
  }
}

/* Whether `path` is under `prefix` (whole segments); sets *rest. */
static bool under(const char *path, size_t len, const char *prefix,
                  size_t *rest) {
  size_t pl = strlen(prefix);
  if (pl == 0 || (len >= pl && !memcmp(path, prefix, pl) &&
                  (len == pl || path[pl] == '/'))) {
    *rest = pl;
    return true;
  }
  return false;
}

static void missing_instance(lmz_http_conn_t *conn, lmz_buf *b) {
  lmz_buf_append_str(b,
      "{\"name\":\"MissingInstanceNameError\",\"code\":\"MISSING_INSTANCE_NAME\","
      "\"httpErrorCode\":400,\"message\":\"doBindingName found but "
      "doInstanceNameOrId missing. Expected format: "
      "[/prefix]/doBindingName/doInstanceNameOrId/...\"}");
  respond_json(conn, 400, b, NULL);
}

static void multiple(lmz_http_conn_t *conn, lmz_buf *b, const char *seg,
                     size_t n, const char *names) {
  lmz_buf msg = LMZ_BUF_INIT;
  lmz_buf_printf(&msg, "Multiple Durable Object bindings found for path "
                       "segment '%.*s': %s", (int)n, seg, names);
  lmz_buf_append_str(b, "{\"name\":\"MultipleBindingsFoundError\",\"code\":"
                        "\"MULTIPLE_BINDINGS_FOUND\",\"httpErrorCode\":400,"
                        "\"message\":");
  lmz_json_write_string(b, msg.data ? (const char *)msg.data : "", msg.len);
  lmz_buf_append_str(b, ",\"matchedBindings\":[");
  for (const char *p = names; *p;) {
    const char *e = strstr(p, ", ");
    size_t l = e ? (size_t)(e - p) : strlen(p);
    lmz_json_write_string(b, p, l);
    p += l;
    if (e) {
      p += 2;
      lmz_buf_putc(b, ',');
    }
  }
  lmz_buf_append_str(b, "]}");
  lmz_buf_free(&msg);
  respond_json(conn, 400, b, NULL);
}

/* Resolves binding and instance of segments s. Returns 1 (resolved: *bind,
 * instance copied into inst), 0 (not ours), -1 (answered). */
static int resolve(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                   const struct segs *s, char bind[512], char inst[512]) {
  if (s->count == 0)
    return 0;
  int m = lmz__gw_match_binding(gw, s->p[0], s->n[0], bind, 512);
  if (m == 0)
    return 0;
  lmz_buf b = LMZ_BUF_INIT;
  if (m > 1)
    multiple(conn, &b, s->p[0], s->n[0], bind);
  else if (s->count < 2)
    missing_instance(conn, &b);
  lmz_buf_free(&b);
  if (m > 1 || s->count < 2)
    return -1;
  if (s->n[1] >= 512) {
    lmz__gw_respond(conn, 414, "text/plain", "URI Too Long", 12, NULL, NULL, 0);
    return -1;
  }
  memcpy(inst, s->p[1], s->n[1]);
  inst[s->n[1]] = '\0';
  return 1;
}

/* ---- actor requests ------------------------------------------------------ */

#define TRACE_FMT " trace=%s call=%s"

/* The request's trace: the trace id of its W3C traceparent when there is
 * exactly one and it parses (hostile: strict, bounded, all-zero ids
 * refused: core/trace.h), else a fresh one; and a fresh call id for its
 * turn. The turn runs under both (lmz_node_http_traced), on whichever node
 * owns the actor, and the response carries them back as a traceparent. */
static void request_trace(const struct lmz_http_request *req,
                          struct gw_pending_http *p) {
  const char *v = NULL;
  size_t vl = 0, n = 0;
  for (size_t i = 0; i < req->n_headers; i++)
    if (!strcasecmp(req->headers[i].name, "traceparent") && n++ == 0) {
      v = req->headers[i].value;
      vl = req->headers[i].value_len;
    }
  if (n != 1 || lmz_traceparent_parse(v, vl, p->trace))
    lmz_trace_id_mint(p->trace);
  lmz_call_id_mint(p->call);
  snprintf(p->traceparent, sizeof p->traceparent, "00-%s-%s-01", p->trace, p->call);
}

static struct lmz_http_header tp_header(const struct gw_pending_http *p) {
  return (struct lmz_http_header){"traceparent", 11, p->traceparent,
                                  strlen(p->traceparent)};
}

/* The handler's response, with ours added: the CORS credentials flag for
 * the auth routes, the traceparent unless the handler set one. */
static int respond_actor(struct gw_pending_http *p, const struct lmz_response *res) {
  struct lmz_http_header hs[33];
  size_t n = res->n_headers < LMZ_ARRAY_SIZE(hs) - 2 ? res->n_headers
                                                     : LMZ_ARRAY_SIZE(hs) - 2;
  bool has_tp = false;
  for (size_t i = 0; i < n; i++) {
    hs[i] = (struct lmz_http_header){res->headers[i].name, strlen(res->headers[i].name),
                                     res->headers[i].value, strlen(res->headers[i].value)};
    has_tp |= !strcasecmp(res->headers[i].name, "traceparent");
  }
  if (p->credentials && p->origin[0]) /* the auth routes' cookie crosses origins */
    hs[n++] = (struct lmz_http_header){"Access-Control-Allow-Credentials", 32, "true", 4};
  if (!has_tp)
    hs[n++] = tp_header(p);
  if (res->status < 100 || res->status > 599 || res->status == 101)
    return -1;
  return lmz__gw_respond(p->conn, res->status, res->content_type, res->body,
                         res->body_len, p->origin, hs, n);
}

static void actor_reply(void *arg, int status, const struct lmz_response *res,
                        const lmz_value *error) {
  struct gw_pending_http *p = arg;
  if (!p->conn) {
    LMZ_LOG_DEBUG(&lmz__gw_log, "HTTP answer dropped: the connection closed" TRACE_FMT,
                  p->trace, p->call);
    lmz__gw_pending_done(p);
    return;
  }
  int rv = -1;
  struct lmz_http_header tp = tp_header(p);
  if (status == 0) {
    rv = respond_actor(p, res);
    if (rv)
      LMZ_LOG_WARN(&lmz__gw_log, "on_request answered an invalid response (status %d)"
                   TRACE_FMT, res->status, p->trace, p->call);
    else
      LMZ_LOG_DEBUG(&lmz__gw_log, "HTTP %d" TRACE_FMT, res->status, p->trace, p->call);
  } else {
    bool busy = status == LMZ_EOVERLOAD || status == LMZ_ECANCELED;
    LMZ_LOG_WARN(&lmz__gw_log, "on_request failed: %s" TRACE_FMT,
                 error && lmz_typeof(error) == LMZ_T_ERROR ? lmz_error_message(error)
                                                           : lmz_strerror(status),
                 p->trace, p->call);
    if (busy || (error && lmz_typeof(error) == LMZ_T_ERROR &&
                 !strcmp(lmz_error_name(error), "ActorUnavailableError")))
      rv = lmz__gw_respond(p->conn, 503, "text/plain", "Service Unavailable", 19,
                           p->origin, &tp, 1);
  }
  if (rv)
    lmz__gw_respond(p->conn, 500, "text/plain", "Internal Server Error", 21,
                    p->origin, &tp, 1);
  lmz__gw_pending_done(p);
}

/* The request as the handler sees it (strings in the gateway's scratch
 * arena; lmz_node_http copies them). */
static int to_request(lmz_gateway_t *gw, const struct lmz_http_request *req,
                      struct lmz_request *out) {
  lmz_arena *a = gw->scratch;
  struct lmz_header *h = lmz_arena_alloc(a, (req->n_headers + 1) * sizeof *h);
  if (!h)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < req->n_headers; i++)
    h[i] = (struct lmz_header){req->headers[i].name, req->headers[i].value};
  *out = (struct lmz_request){req->method,
                              lmz_arena_strndup(a, req->path, req->path_len),
                              req->query, h, req->n_headers, req->body,
                              req->body_len, NULL, NULL, req->remote};
  return out->path ? 0 : LMZ_ENOMEM;
}

/* `own_auth`: the auth service's routes, which authenticate their callers
 * themselves (a login has no token yet): no bearer check, no origin auth. */
static void to_actor(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, const char *binding,
                     const char *instance, const char *origin, bool own_auth) {
  lmz_value *oa = NULL;
  if (!own_auth &&
      lmz__gw_http_access(gw, conn, req, binding, origin, gw->scratch, &oa)) {
    lmz_arena_reset(gw->scratch); /* answered: nothing delivered, nothing claimed */
    return;
  }
  struct gw_pending_http *p = lmz__gw_pending_new(gw, conn);
  struct lmz_request r;
  char errmsg[LMZ_ERRMSG_LEN] = "", trace[LMZ_TRACE_ID_LEN + 1] = "",
       call[LMZ_CALL_ID_LEN + 1] = "";
  int rv = p ? to_request(gw, req, &r) : LMZ_ENOMEM;
  if (!rv) {
    snprintf(p->origin, sizeof p->origin, "%s", origin);
    p->credentials = own_auth;
    request_trace(req, p);
    memcpy(trace, p->trace, sizeof trace); /* p is gone if this fails */
    memcpy(call, p->call, sizeof call);
    LMZ_LOG_DEBUG(&lmz__gw_log, "%s %s -> %s/%s" TRACE_FMT, req->method, req->target,
                  binding, instance, trace, call);
    const char *ids[2] = {p->trace, p->call};
    rv = lmz_node_http_traced(gw->node, binding, instance, &r, oa, ids, actor_reply,
                              p, errmsg);
  }
  lmz_arena_reset(gw->scratch);
  if (!rv) {
    gw->stats.http_routed++;
    return;
  }
  if (p)
    lmz__gw_pending_done(p);
  if (rv == UV_ENOSYS) {
    static const char t[] = "Not Implemented: override onRequest() to handle HTTP requests";
    lmz__gw_respond(conn, 501, "text/plain", t, sizeof t - 1, origin, NULL, 0);
  } else if (rv == LMZ_ENOTFOUND) {
    lmz__gw_respond(conn, 404, "text/plain", "Not Found", 9, origin, NULL, 0);
  } else {
    LMZ_LOG_WARN(&lmz__gw_log, "%s %s: %s" TRACE_FMT, req->method, req->target,
                 errmsg[0] ? errmsg : lmz_strerror(rv), trace, call);
    bool busy = rv == LMZ_EOVERLOAD || rv == LMZ_ECANCELED;
    lmz__gw_respond(conn, busy ? 503 : 500, "text/plain",
                    busy ? "Service Unavailable" : "Internal Server Error",
                    busy ? 19 : 21, origin, NULL, 0);
  }
}

void lmz__gw_to_auth(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, const char *origin) {
  to_actor(gw, conn, req, LMZ_GATEWAY_AUTH_BINDING, LMZ_GATEWAY_AUTH_INSTANCE,
           origin, true);
}

/* The auth service's routes: CORS (an allowed origin may send the refresh
 * cookie: Allow-Credentials), the body limit (refused here, never
 * forwarded), the bot check, then the service's actor. */
static void auth_route(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req, size_t rest) {
  char origin[256];
  if (lmz__gw_cors_cred(gw, conn, req, origin, true))
    return;
  if (req->body_len > gw->auth_max_body) {
    static const char t[] = "{\"error\":\"invalid_request\","
                            "\"error_description\":\"Request body too large\"}";
    struct lmz_http_header cred = {"Access-Control-Allow-Credentials", 32, "true", 4};
    lmz__gw_respond(conn, 413, "application/json", t, sizeof t - 1, origin, &cred,
                    origin[0] ? 1 : 0);
    return;
  }
  if (!lmz__gw_bot_hold(gw, conn, req, req->path + rest, req->path_len - rest, origin))
    lmz__gw_to_auth(gw, conn, req, origin);
}

/* ---- the two route families ---------------------------------------------- */

bool lmz__gw_route(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                   const struct lmz_http_request *req, bool upgrade) {
  size_t rest;
  struct segs s;
  char bind[512], inst[512], origin[256];
  if (gw->auth_prefix && *gw->auth_prefix &&
      under(req->path, req->path_len, gw->auth_prefix, &rest)) {
    auth_route(gw, conn, req, rest);
    return true;
  }
  bool gateway = under(req->path, req->path_len, "/gateway", &rest);
  if (!gateway && !under(req->path, req->path_len, gw->prefix, &rest))
    return false;
  split(req->path + rest, req->path_len - rest, &s);
  int r = resolve(gw, conn, &s, bind, inst);
  if (r <= 0)
    return r < 0;
  bool ours = !strcmp(bind, gw->binding);
  if (gateway != ours)
    return false; /* a DO under /gateway, or the gateway under the prefix */
  if (lmz__gw_cors(gw, conn, req, origin))
    return true;
  if (!gateway) {
    to_actor(gw, conn, req, bind, inst, origin, false);
  } else if (!upgrade) { /* section 1.10 check 1 */
    lmz__gw_respond(conn, 426, "text/plain", "Expected WebSocket upgrade", 26,
                    origin, NULL, 0);
  } else {
    lmz__gw_upgrade(gw, conn, req, inst, origin);
  }
  return true;
}
