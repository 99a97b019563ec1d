/* gateway/clientgw.c - client gateway actors (LumenizeClientGateway):
 * sockets, reconnect grace periods, and mesh calls relayed to clients
 * (lumenize-behaviour sections 1.10, 2.2, 2.5-2.7). Client frames are
 * handled in clientmsg.c.
 *
 * Happy path (connect): an upgrade on /gateway/{binding}/{sub}.{tabId} ->
 * token from the "lmz.access-token.<jwt>" subprotocol -> signature, exp,
 * issuer, audience (jwt.h) -> access gate -> identity check (instance =
 * "<sub>.<tabId>") -> on_before_accept hook -> accept with subprotocol
 * "lmz" -> an older socket of the instance is closed with 4409 -> the
 * grace period (if any) ends -> {"type":"connection_status",
 * "subscriptionRequired":<no socket and no grace before>} -> calls held
 * during the grace period are relayed in arrival order.
 * Happy path (mesh -> client): a call to LUMENIZE_CLIENT_GATEWAY/<instance>
 * runs the raw class function as a turn of that gateway actor -> checks ->
 * on_before_call_to_client -> the reply is deferred -> an incoming_call
 * frame with a new UUID is sent (or held during the grace period) -> the
 * client's incoming_call_response settles the deferred reply.
 * Failure modes:
 *  1. no token, bad token, wrong iss/aud, no sub, not approved: 401 / 403
 *     with the original's bodies (jwt.h answers); identity mismatch, bad
 *     instance format: 403 texts of the original; the subject over its
 *     connection limit (opts.ws_rate): 429 with Retry-After; hook refusal:
 *     its answer;
 *  2. a second socket for the instance: the old one is closed with 4409
 *     "Superseded by new connection" (no grace period follows) and the
 *     calls relayed to it fail with ClientDisconnectedError at once;
 *  3. a socket closes (not 4409): grace period of grace_ms; mesh calls
 *     meanwhile are held; at its end they fail with ClientDisconnectedError
 *     ('Client did not reconnect within grace period'); calls relayed to
 *     the dead socket fail at once ('Client disconnected');
 *  4. no socket and no grace period: ClientDisconnectedError('Client is not
 *     connected') at once;
 *  5. the token expired: the socket is closed with 4401 "Token expired" on
 *     the next frame or relayed call ('Client token expired');
 *  6. the client does not answer within client_call_timeout_ms (by the
 *     node's clock, as the grace period):
 *     ClientDisconnectedError('Client call timed out'); the socket stays;
 *  7. the gateway closes: every held or relayed call fails at once.
 * Every ClientDisconnectedError carries clientInstanceName. */
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "gateway/gw_int.h"
#include "gateway/keys.h"

/* ---- connections and clients --------------------------------------------- */

static void conn_unref(struct gw_conn *k) {
  LMZ_ASSERT(k->refs > 0);
  if (--k->refs)
    return;
  lmz__gw_list_remove(&k->gw->conns, &k->all);
  lmz_hmap_free(&k->calls);
  lmz_arena_free(k->arena);
  free(k);
}

static struct gw_client *client_get(lmz_gateway_t *gw, const char *inst,
                                    size_t len, bool create) {
  struct gw_client *c = lmz_hmap_get(&gw->clients, inst, len);
  if (c || !create)
    return c;
  if (!(c = calloc(1, sizeof *c + len + 1)))
    return NULL;
  c->gw = gw;
  c->instance = (char *)(c + 1);
  memcpy(c->instance, inst, len);
  c->instance_len = len;
  lmz__gw_list_init(&c->held);
  if (lmz_hmap_put(&gw->clients, c->instance, len, c, NULL)) {
    free(c);
    return NULL;
  }
  gw->stats.clients = gw->clients.n;
  return c;
}

static void set_last(struct gw_client *c, struct gw_conn *k) {
  if (c->last == k)
    return;
  if (c->last) {
    c->last->is_last = false;
    conn_unref(c->last);
  }
  c->last = k;
  if (k) {
    k->is_last = true;
    k->refs++;
  }
}

/* Frees the client once it has no socket, grace period or held call. */
static void client_maybe_free(struct gw_client *c) {
  if (c->conn || c->in_grace || c->held.n)
    return;
  lmz_gateway_t *gw = c->gw;
  set_last(c, NULL);
  if (!gw->closing) /* gone past its grace period: its relay actor's
                       placement goes too (issue 15 item 5) */
    lmz_node_release_placement(gw->node, LMZ_GATEWAY_BINDING, c->instance);
  lmz_hmap_del(&gw->clients, c->instance, c->instance_len);
  gw->stats.clients = gw->clients.n;
  free(c);
}

static bool token_expired(const struct gw_conn *k) {
  return k->exp_s < lmz_node_now_ms(k->gw->node) / 1000.0;
}

/* Closes with 4401 (section 2.7); the close callback does the rest. */
static void close_expired(struct gw_conn *k) {
  if (!k->ws)
    return;
  LMZ_LOG_INFO(&lmz__gw_log, "client %s: token expired, closing (4401)",
               k->info.instance);
  if (lmz_ws_close(k->ws, 4401, "Token expired") == 0)
    k->gw->stats.expired_closes++;
}

/* ---- settling mesh calls to clients -------------------------------------- */

static struct gw_incall *incall_new(const char *instance) {
  size_t il = strlen(instance);
  struct gw_incall *ic = calloc(1, sizeof *ic + il + 1);
  if (!ic)
    return NULL;
  memcpy(ic->instance, instance, il + 1);
  lmz__gw_uuid(ic->call_id);
  return ic;
}

static void incall_free(struct gw_incall *ic) {
  lmz_buf_free(&ic->frame);
  free(ic);
}

/* Rejects with ClientDisconnectedError(msg) and frees. */
static void incall_fail(lmz_gateway_t *gw, struct gw_incall *ic,
                        const char *msg) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = a ? lmz__gw_disconnected(a, msg, ic->instance) : NULL;
  lmz_deferred_reject(ic->d, e ? e : lmz_null());
  lmz_arena_free(a);
  gw->stats.incoming_failed++;
  incall_free(ic);
}

/* Settles a relayed call with the client's answer (`v` may be NULL). */
void lmz__gw_incall_settle(lmz_gateway_t *gw, struct gw_incall *ic, bool ok,
                           const lmz_value *v) {
  if (ok) {
    lmz_deferred_resolve(ic->d, v ? v : lmz_undefined());
    gw->stats.incoming_ok++;
  } else {
    lmz_deferred_reject(ic->d, v ? v : lmz_undefined());
    gw->stats.incoming_failed++;
  }
  incall_free(ic);
}

/* Fails on the next timer run: a deferred reply must not be settled from
 * inside the turn that deferred it. */
static void incall_fail_soon(lmz_gateway_t *gw, struct gw_incall *ic,
                             const char *msg) {
  ic->fail_msg = msg;
  lmz__gw_list_push(&gw->fail_q, &ic->link);
  lmz__gw_timer_arm(gw);
}

/* Relays `ic` on socket `k` and starts its answer deadline. */
static void incall_send(struct gw_conn *k, struct gw_incall *ic) {
  lmz_gateway_t *gw = k->gw;
  int rv = lmz_hmap_put(&k->calls, ic->call_id, 36, ic, NULL);
  if (!rv)
    rv = lmz_ws_send_text(k->ws, ic->frame.data, ic->frame.len);
  lmz_buf_free(&ic->frame);
  if (rv) {
    lmz_hmap_del(&k->calls, ic->call_id, 36);
    incall_fail_soon(gw, ic, rv == LMZ_ETOOBIG ? LMZ_WS_TOO_BIG_REASON
                                               : "Client disconnected");
    return;
  }
  ic->conn = k;
  ic->client = NULL;
  ic->deadline = lmz__gw_now(gw) + gw->call_timeout_ms;
  lmz__gw_list_push(&gw->sent_q, &ic->link);
  lmz__gw_timer_arm(gw);
}

/* Every call relayed on `k` fails now (its answer can no longer come). */
static void fail_conn_calls(struct gw_conn *k, const char *msg) {
  lmz_gateway_t *gw = k->gw;
  struct lmz__gw_list local;
  lmz__gw_list_init(&local);
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&k->calls, &it, NULL, NULL, &v)) {
    struct gw_incall *ic = v;
    lmz__gw_list_remove(&gw->sent_q, &ic->link);
    lmz__gw_list_push(&local, &ic->link);
  }
  lmz_hmap_clear(&k->calls);
  struct lmz__gw_link *l;
  while ((l = lmz__gw_list_first(&local))) {
    lmz__gw_list_remove(&local, l);
    incall_fail(gw, lmz_container_of(l, struct gw_incall, link), msg);
  }
}

static void fail_held(struct gw_client *c, const char *msg) {
  struct lmz__gw_link *l;
  while ((l = lmz__gw_list_first(&c->held))) {
    lmz__gw_list_remove(&c->held, l);
    incall_fail(c->gw, lmz_container_of(l, struct gw_incall, link), msg);
  }
}

/* ---- the deadline timer -------------------------------------------------- */

/* Deadlines are on the node's clock (lmz_node_now_ms: injected, so tests
 * run them on fake time); the loop timer only wakes us, and a wake before
 * the deadline by that clock re-arms for the rest. */
static void timer_cb(uv_timer_t *t) { lmz__gw_timer_run(t->data); }

void lmz_gateway_clock_moved(lmz_gateway_t *gw) {
  if (!gw->closing) /* on the next loop iteration, never from this call */
    uv_timer_start(&gw->timer, timer_cb, 0, 0);
}

void lmz__gw_timer_arm(lmz_gateway_t *gw) {
  if (gw->closing)
    return;
  uint64_t now = lmz__gw_now(gw), due = UINT64_MAX;
  struct lmz__gw_link *l;
  if (gw->fail_q.n)
    due = now;
  if ((l = lmz__gw_list_first(&gw->sent_q))) {
    uint64_t d = lmz_container_of(l, struct gw_incall, link)->deadline;
    due = d < due ? d : due;
  }
  if ((l = lmz__gw_list_first(&gw->grace_q))) {
    uint64_t d = lmz_container_of(l, struct gw_client, grace_link)->grace_deadline;
    due = d < due ? d : due;
  }
  if (due == UINT64_MAX)
    uv_timer_stop(&gw->timer);
  else
    uv_timer_start(&gw->timer, timer_cb, due > now ? due - now : 0, 0);
}

static void grace_end(struct gw_client *c) {
  lmz__gw_list_remove(&c->gw->grace_q, &c->grace_link);
  c->in_grace = false;
}

void lmz__gw_timer_run(lmz_gateway_t *gw) {
  uint64_t now = lmz__gw_now(gw);
  struct lmz__gw_link *l;
  while ((l = lmz__gw_list_first(&gw->fail_q))) {
    lmz__gw_list_remove(&gw->fail_q, l);
    struct gw_incall *ic = lmz_container_of(l, struct gw_incall, link);
    incall_fail(gw, ic, ic->fail_msg);
  }
  while ((l = lmz__gw_list_first(&gw->sent_q)) &&
         lmz_container_of(l, struct gw_incall, link)->deadline <= now) {
    struct gw_incall *ic = lmz_container_of(l, struct gw_incall, link);
    lmz__gw_list_remove(&gw->sent_q, l);
    lmz_hmap_del(&ic->conn->calls, ic->call_id, 36);
    gw->stats.incoming_timeouts++;
    LMZ_LOG_INFO(&lmz__gw_log, "client %s did not answer call %s in time trace=%s",
                 ic->instance, ic->call_id, ic->trace_id);
    incall_fail(gw, ic, "Client call timed out");
  }
  while ((l = lmz__gw_list_first(&gw->grace_q)) &&
         lmz_container_of(l, struct gw_client, grace_link)->grace_deadline <= now) {
    struct gw_client *c = lmz_container_of(l, struct gw_client, grace_link);
    grace_end(c);
    gw->stats.grace_expired++;
    LMZ_LOG_DEBUG(&lmz__gw_log, "client %s: grace period over (%zu held calls fail)",
                  c->instance, c->held.n);
    fail_held(c, "Client did not reconnect within grace period");
    client_maybe_free(c);
  }
  lmz__gw_timer_arm(gw);
}

void lmz__gw_clients_shutdown(lmz_gateway_t *gw) {
  struct lmz__gw_link *l;
  while ((l = lmz__gw_list_first(&gw->fail_q))) {
    lmz__gw_list_remove(&gw->fail_q, l);
    struct gw_incall *ic = lmz_container_of(l, struct gw_incall, link);
    incall_fail(gw, ic, ic->fail_msg);
  }
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&gw->clients, &it, NULL, NULL, &v)) {
    struct gw_client *c = v;
    if (c->in_grace)
      grace_end(c);
    fail_held(c, "Client is not connected");
    if (c->conn)
      fail_conn_calls(c->conn, "Client disconnected");
    client_maybe_free(c); /* deleting the current entry is allowed */
  }
}

/* ---- socket events ------------------------------------------------------- */

static void on_close(lmz_ws_t *ws, int code, const char *reason,
                     size_t reason_len) {
  struct gw_conn *k = lmz_ws_data(ws);
  lmz_gateway_t *gw = k->gw;
  k->ws = NULL;
  gw->stats.sockets_open--;
  LMZ_LOG_DEBUG(&lmz__gw_log, "client %s: socket closed (%d %.*s)",
                k->info.instance, code, (int)reason_len, reason);
  k->refs++; /* settling calls may reach back here */
  fail_conn_calls(k, "Client disconnected");
  struct gw_client *c = k->client;
  k->client = NULL;
  if (c) {
    c->conn = NULL;
    if (code != 4409 && !gw->closing) { /* section 1.10: 4409 skips grace */
      c->in_grace = true;
      c->grace_deadline = lmz__gw_now(gw) + gw->grace_ms;
      lmz__gw_list_push(&gw->grace_q, &c->grace_link);
      lmz__gw_timer_arm(gw);
    }
    client_maybe_free(c);
  }
  conn_unref(k); /* the pin */
  conn_unref(k); /* the socket's reference */
}

/* The old socket of a reconnecting client (section 1.10, supersession). */
static void supersede(struct gw_conn *old) {
  old->client = NULL;
  old->gw->stats.superseded++;
  LMZ_LOG_DEBUG(&lmz__gw_log, "client %s: superseded by a new connection",
                old->info.instance);
  old->refs++;
  fail_conn_calls(old, "Client disconnected");
  if (old->ws)
    lmz_ws_close(old->ws, 4409, "Superseded by new connection");
  conn_unref(old);
}

static void send_status(struct gw_conn *k, bool subscription_required) {
  char msg[80];
  int n = snprintf(msg, sizeof msg,
                   "{\"type\":\"connection_status\",\"subscriptionRequired\":%s}",
                   subscription_required ? "true" : "false");
  lmz_ws_send_text(k->ws, msg, (size_t)n);
}

/* Makes `k` the client's socket (the upgrade is accepted). */
static void attach(struct gw_client *c, struct gw_conn *k) {
  lmz_gateway_t *gw = c->gw;
  bool sub_required = !c->conn && !c->in_grace;
  if (c->conn)
    supersede(c->conn);
  if (c->in_grace)
    grace_end(c);
  c->conn = k;
  k->client = c;
  set_last(c, k);
  send_status(k, sub_required);
  struct lmz__gw_link *l;
  while (k->ws && (l = lmz__gw_list_first(&c->held))) {
    lmz__gw_list_remove(&c->held, l);
    incall_send(k, lmz_container_of(l, struct gw_incall, link));
  }
  gw->stats.accepted++;
  gw->stats.sockets_open++;
  LMZ_LOG_DEBUG(&lmz__gw_log, "client %s connected (subscriptionRequired %s)",
                c->instance, sub_required ? "true" : "false");
}

/* ---- the upgrade (sections 1.10 and 2.2) --------------------------------- */

static void reject(lmz_gateway_t *gw, lmz_http_conn_t *conn, int status,
                   const char *origin, const char *instance, uint32_t retry_s) {
  gw->stats.rejected++;
  if (status == LMZ_JWT_ERATE)
    gw->stats.ws_rate_limited++;
  LMZ_LOG_INFO(&lmz__gw_log, "client %s refused: %s", instance,
               lmz_jwt_status_name(status));
  lmz__gw_refuse(conn, status, origin, retry_s);
}

/* Runs on_before_accept; merges its extra claims into k's claims. Returns
 * 0, or non-zero when it refused (the request is then answered). */
static int accept_hook(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                       struct gw_conn *k, const lmz_value *payload,
                       const char *origin) {
  const struct lmz_gateway_hooks *h = lmz_node_gateway_hooks(gw->node);
  if (!h || !h->on_before_accept)
    return 0;
  lmz_value *extra = NULL;
  struct lmz_gateway_reject rej = {0};
  if (h->on_before_accept(h->data, k->info.instance, k->info.sub, payload,
                          k->arena, &extra, &rej)) {
    const char *body = rej.body ? rej.body : "Forbidden";
    int st = rej.status >= 400 && rej.status <= 599 ? rej.status : 403;
    gw->stats.rejected++;
    lmz__gw_respond(conn, st, rej.content_type ? rej.content_type : "text/plain",
                    body, strlen(body), origin, NULL, 0);
    return -1;
  }
  for (size_t i = 0; extra && lmz_typeof(extra) == LMZ_T_OBJECT && i < lmz_len(extra); i++) {
    size_t kl;
    const char *key = lmz_object_key(extra, i, &kl);
    lmz_value *v = lmz_value_copy(k->arena, lmz_object_val(extra, i));
    if (!v || lmz_object_set((lmz_value *)k->info.claims, key, kl, v))
      return LMZ_ENOMEM;
  }
  return 0;
}

/* Verifies the token and the identity, then takes one connection from the
 * subject's bucket; fills k->info. 0 or a jwt status (*retry_s with
 * LMZ_JWT_ERATE). */
static int check_token(lmz_gateway_t *gw, const struct lmz_http_request *req,
                       struct gw_conn *k, const char *instance,
                       lmz_value **payload, uint32_t *retry_s) {
  const char *tok;
  size_t tl;
  if (!lmz_ws_protocol_token(req, &tok, &tl, NULL))
    return LMZ_JWT_EMISSING_WS;
  struct lmz_jwt_claims cl;
  int st = lmz__gw_verify(gw, tok, tl, k->arena, &cl);
  if (st ||
      (st = lmz_jwt_check_instance(cl.sub, cl.sub_len, instance, strlen(instance))) ||
      (st = lmz__gw_limit(gw, &gw->ws_rate, cl.sub, cl.sub_len, retry_s)))
    return st;
  lmz_value *claims = lmz__gw_json_to_value(k->arena, cl.payload);
  /* the claims the hooks and originAuth see: a copy the hook may extend */
  lmz_value *mine = claims ? lmz_value_copy(k->arena, claims) : NULL;
  k->info.sub = cl.sub;
  k->info.binding = lmz_arena_strndup(k->arena, gw->binding, strlen(gw->binding));
  k->info.instance = lmz_arena_strndup(k->arena, instance, strlen(instance));
  k->info.claims = mine;
  k->exp_s = cl.exp;
  *payload = claims;
  return mine && k->info.binding && k->info.instance ? 0 : LMZ_JWT_EINTERNAL;
}

static struct gw_conn *conn_new(lmz_gateway_t *gw) {
  struct gw_conn *k = calloc(1, sizeof *k);
  if (!k || !(k->arena = lmz_arena_new())) {
    free(k);
    return NULL;
  }
  k->gw = gw;
  k->refs = 1;
  lmz__gw_list_push(&gw->conns, &k->all);
  return k;
}

void lmz__gw_upgrade(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, const char *instance,
                     const char *origin) {
  struct gw_conn *k = conn_new(gw);
  lmz_value *payload = NULL;
  uint32_t retry_s = 0;
  int st = k ? check_token(gw, req, k, instance, &payload, &retry_s)
             : LMZ_JWT_EINTERNAL;
  if (st) {
    reject(gw, conn, st, origin, instance, retry_s);
    if (k)
      conn_unref(k);
    return;
  }
  if (accept_hook(gw, conn, k, payload, origin)) {
    conn_unref(k);
    return;
  }
  struct gw_client *c = client_get(gw, instance, strlen(instance), true);
  bool offered_lmz = false;
  const char *tok;
  size_t tl;
  lmz_ws_protocol_token(req, &tok, &tl, &offered_lmz);
  struct lmz_ws_callbacks cbs = {lmz__gw_on_message, on_close};
  /* a reply may outgrow its request (JSON escaping): twice the cap */
  size_t out = 2 * gw->max_message;
  struct lmz_ws_options wo = {.max_message = gw->max_message,
                              .max_outbound = out > (4u << 20) ? out : (4u << 20)};
  int rv = c ? lmz_ws_accept(conn, offered_lmz ? LMZ_WS_PROTOCOL : NULL, &cbs,
                             &wo, k, &k->ws)
             : LMZ_ENOMEM;
  if (rv) {
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: accept failed: %s", instance,
                 lmz_strerror(rv));
    lmz__gw_respond(conn, 500, "text/plain", "Internal Server Error", 21,
                    origin, NULL, 0);
    gw->stats.rejected++;
    if (c)
      client_maybe_free(c);
    conn_unref(k);
    return;
  }
  attach(c, k);
  /* in a cluster the gateway actor follows its socket to this node */
  lmz_node_claim_local(gw->node, LMZ_GATEWAY_BINDING, instance);
}

/* ---- mesh -> client (the raw class; section 1.10) ------------------------ */

static int throw_disconnected(lmz_ctx *ctx, const char *msg) {
  lmz_value *e = lmz__gw_disconnected(lmz_turn_arena(ctx), msg,
                                      lmz_instance_name(ctx));
  return e ? lmz_throw(ctx, e) : LMZ_ENOMEM;
}

/* The caller's chain as one array (hooks and the frame). */
static lmz_identity *chain_of(lmz_ctx *ctx, size_t *n) {
  *n = lmz_call_chain_len(ctx);
  lmz_identity *ids = lmz_arena_alloc(lmz_turn_arena(ctx), (*n ? *n : 1) * sizeof *ids);
  for (size_t i = 0; ids && i < *n; i++)
    ids[i] = *lmz_call_chain_at(ctx, i);
  return ids;
}

static int write_identity(lmz_buf *b, const lmz_identity *id) {
  int rv = lmz_buf_append_str(b, "{\"type\":\"");
  if (!rv)
    rv = lmz_buf_append_str(b, lmz_node_type_name(id->type));
  if (!rv)
    rv = lmz_buf_append_str(b, "\",\"bindingName\":");
  if (!rv)
    rv = lmz_json_write_string(b, id->binding, strlen(id->binding));
  if (!rv && id->instance) {
    rv = lmz_buf_append_str(b, ",\"instanceName\":");
    if (!rv)
      rv = lmz_json_write_string(b, id->instance, strlen(id->instance));
  }
  return rv ? rv : lmz_buf_putc(b, '}');
}

/* Appends ,"traceId":"..","callId":".." (lmz additions to the callContext;
 * the original's client reads only callChain, originAuth and state, so
 * they are harmless to it). The ids are validated hex: no escaping. */
static int write_trace(lmz_buf *b, lmz_ctx *ctx) {
  int rv = lmz_buf_append_str(b, ",\"traceId\":\"");
  if (!rv)
    rv = lmz_buf_append_str(b, lmz_trace_id(ctx));
  if (!rv)
    rv = lmz_buf_append_str(b, "\",\"callId\":\"");
  if (!rv)
    rv = lmz_buf_append_str(b, lmz_call_id(ctx));
  return rv ? rv : lmz_buf_putc(b, '"');
}

/* {"type":"incoming_call","callId":..,"chain":SC,"callContext":{"callChain":
 * [plain...],"originAuth":plain,"state":SC,"traceId":..,"callId":..}}
 * (section 2.3; the outer callId is the gateway's, the inner the mesh's). */
static int build_incoming(lmz_buf *b, const char *call_id, const lmz_value *chain,
                          const lmz_identity *ids, size_t n, lmz_ctx *ctx) {
  const lmz_value *origin_auth = lmz_origin_auth(ctx);
  int rv = lmz_buf_append_str(b, "{\"type\":\"incoming_call\",\"callId\":\"");
  if (!rv)
    rv = lmz_buf_append_str(b, call_id);
  if (!rv)
    rv = lmz_buf_append_str(b, "\",\"chain\":");
  if (!rv)
    rv = lmz__gw_write_sc(b, chain) < 0 ? LMZ_ENOMEM : 0;
  if (!rv)
    rv = lmz_buf_append_str(b, ",\"callContext\":{\"callChain\":[");
  for (size_t i = 0; !rv && i < n; i++) {
    if (i)
      rv = lmz_buf_putc(b, ',');
    if (!rv)
      rv = write_identity(b, &ids[i]);
  }
  if (!rv)
    rv = lmz_buf_putc(b, ']');
  if (!rv && origin_auth) {
    rv = lmz_buf_append_str(b, ",\"originAuth\":");
    if (!rv)
      rv = lmz__gw_write_plain(b, origin_auth);
  }
  if (!rv)
    rv = lmz_buf_append_str(b, ",\"state\":");
  if (!rv)
    rv = lmz__gw_write_sc(b, lmz_state(ctx)) < 0 ? LMZ_ENOMEM : 0;
  if (!rv)
    rv = write_trace(b, ctx);
  return rv ? rv : lmz_buf_append_str(b, "}}");
}

/* on_before_call_to_client; 0 or thrown. */
static int client_hook(lmz_ctx *ctx, lmz_gateway_t *gw, struct gw_client *c,
                       const lmz_identity *ids, size_t n) {
  const struct lmz_gateway_hooks *h = lmz_node_gateway_hooks(gw->node);
  struct gw_conn *k = c->conn ? c->conn : c->last;
  if (!h || !h->on_before_call_to_client || !k)
    return 0;
  lmz_value *err = NULL;
  if (!h->on_before_call_to_client(h->data, &k->info, ids, n, lmz_state(ctx),
                                   lmz_turn_arena(ctx), &err))
    return 0;
  return lmz_throw(ctx, err ? err : lmz_error(lmz_turn_arena(ctx), "Error",
                                               "Call to client refused"));
}

/* Checks done before relaying (items 3-6 of section 1.10's mesh-to-client
 * path); 0, or thrown. */
static int precheck(lmz_ctx *ctx, lmz_gateway_t *gw, struct gw_client **out) {
  const char *inst = lmz_instance_name(ctx);
  struct gw_client *c = gw->closing ? NULL : client_get(gw, inst, strlen(inst), false);
  if (!c || (!c->conn && !c->in_grace)) {
    gw->stats.not_connected++;
    return throw_disconnected(ctx, "Client is not connected");
  }
  if (c->conn && token_expired(c->conn)) {
    close_expired(c->conn);
    return throw_disconnected(ctx, "Client token expired");
  }
  *out = c;
  return 0;
}

int lmz__gw_raw_call(lmz_ctx *ctx, lmz_value *chain, lmz_value **result) {
  (void)result;
  lmz_gateway_t *gw = lmz_class_data(ctx);
  struct gw_client *c;
  int rv = precheck(ctx, gw, &c);
  size_t n;
  lmz_identity *ids = rv ? NULL : chain_of(ctx, &n);
  if (rv || !ids)
    return rv ? rv : LMZ_ENOMEM;
  if ((rv = client_hook(ctx, gw, c, ids, n)))
    return rv;
  struct gw_incall *ic = incall_new(c->instance);
  if (ic)
    snprintf(ic->trace_id, sizeof ic->trace_id, "%s", lmz_trace_id(ctx));
  if (!ic || build_incoming(&ic->frame, ic->call_id, chain, ids, n, ctx) ||
      !(ic->d = lmz_defer(ctx))) {
    if (ic)
      incall_free(ic);
    return LMZ_ENOMEM;
  }
  gw->stats.incoming_calls++;
  if (c->conn) {
    incall_send(c->conn, ic);
  } else { /* grace period: held until the client reconnects */
    ic->client = c;
    lmz__gw_list_push(&c->held, &ic->link);
    gw->stats.incoming_held++;
  }
  return 0;
}

/* ---- used by clientmsg.c ------------------------------------------------- */

bool lmz__gw_conn_expired(struct gw_conn *k) {
  if (!token_expired(k))
    return false;
  close_expired(k);
  return true;
}

void lmz__gw_conn_unref(struct gw_conn *k) { conn_unref(k); }

/* Takes the relayed call `id` off socket `k` (NULL if unknown). */
struct gw_incall *lmz__gw_take_call(struct gw_conn *k, const char *id,
                                    size_t len) {
  struct gw_incall *ic = lmz_hmap_del(&k->calls, id, len);
  if (ic)
    lmz__gw_list_remove(&k->gw->sent_q, &ic->link);
  return ic;
}
