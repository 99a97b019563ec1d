/* gateway/clientmsg.c - frames from a client socket (lumenize-behaviour
 * sections 1.10 "Incoming frames", 2.3, 2.4).
 *
 * Happy path (client -> mesh): a "call" frame -> the trust DMZ rebuilds
 * the call context: callChain[0] becomes the client's verified identity
 * {LumenizeClient, <gateway binding>, <instance>} (later hops of the
 * client's chain are kept, as the original does), originAuth = {sub,
 * claims} from the verified token (plus the accept hook's claims), state =
 * the frame's SC state (or {}) -> on_before_call_to_mesh -> lmz_node_call
 * -> the outcome goes back as {"type":"call_response","callId",
 * "success", "result"|"error"} (SC-JSON). Frames of one socket are handled
 * in order; their calls run concurrently in the mesh.
 * Other frames: "lmz:ping" -> "lmz:pong" (before anything else, as the
 * original's auto-responder); "incoming_call_response" settles the relayed
 * call with that callId.
 * Failure modes:
 *  1. binary frames, invalid JSON, unknown types, an incoming_call_response
 *     for an unknown callId, a call without a callId: ignored (logged);
 *  2. the token expired: the socket is closed with 4401 "Token expired";
 *  3. a malformed call (no binding, undecodable chain or state, state not
 *     an object, bad callChain), an unknown binding or a bad instance, a
 *     refusing hook, an overloaded or closing node: call_response with
 *     success false and an Error saying so;
 *  4. the socket drops while calls run: their answers are dropped (logged,
 *     counted) - the client gets no call_response for them;
 *  5. a result the SC-JSON encoder refuses: the client gets a
 *     DataCloneError instead (frames.c). */
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/trace.h"
#include "gateway/gw_int.h"

#define MAX_CALL_ID 128
#define MAX_CHAIN_IDS 64 /* actor runtime's call-chain bound */

/* A client call running in the mesh. */
struct gw_outcall {
  struct gw_conn *k; /* holds a reference */
  char trace_id[LMZ_TRACE_ID_LEN + 1]; /* the call's trace (core/trace.h) */
  size_t id_len;
  char call_id[];
};

/* ---- call_response ------------------------------------------------------- */

/* An answer larger than the socket's output cap: the call fails with
 * Error("Message is too large") instead of never being answered. */
static int send_too_big(struct gw_conn *k, const char *id, size_t id_len,
                        const char *trace) {
  lmz_buf *b = &k->gw->out;
  b->len = 0;
  LMZ_LOG_INFO(&lmz__gw_log, "client %s: answer to call %.*s too large trace=%s",
               k->info.instance, (int)id_len, id, trace);
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = a ? lmz_error(a, "Error", LMZ_WS_TOO_BIG_REASON) : NULL;
  int rv = e ? lmz_buf_append_str(b, "{\"type\":\"call_response\",\"callId\":")
             : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_json_write_string(b, id, id_len);
  if (!rv)
    rv = lmz_buf_append_str(b, ",\"success\":false,\"error\":");
  if (!rv)
    rv = lmz__gw_write_sc(b, e) ? LMZ_ENOMEM : 0;
  if (!rv)
    rv = lmz_buf_putc(b, '}');
  lmz_arena_free(a);
  return rv ? rv : lmz_ws_send_text(k->ws, b->data, b->len);
}

/* {"type":"call_response","callId":..,"success":..,"result"|"error":SC
 * [,"traceId":".."]}: traceId is an lmz addition (the call's trace, for
 * the client's logs); the original's client ignores unknown fields.
 * `trace` is a valid trace id or "" (a call refused before it had one). */
static void send_response(struct gw_conn *k, const char *id, size_t id_len,
                          bool ok, const lmz_value *v, const char *trace) {
  lmz_gateway_t *gw = k->gw;
  lmz_buf *b = &gw->out;
  b->len = 0;
  static const char yes[] = ",\"success\":true,\"result\":";
  static const char no[] = ",\"success\":false,\"error\":";
  _Static_assert(sizeof yes == sizeof no, "patched in place below");
  int rv = lmz_buf_append_str(b, "{\"type\":\"call_response\",\"callId\":");
  if (!rv)
    rv = lmz_json_write_string(b, id, id_len);
  size_t at = b->len;
  if (!rv)
    rv = lmz_buf_append_str(b, ok ? yes : no);
  int sc = rv ? 0 : lmz__gw_write_sc(b, v);
  if (sc == 1 && ok) /* the result could not be encoded: an error instead */
    memcpy(b->data + at, no, sizeof no - 1);
  if (sc < 0)
    rv = sc;
  if (!rv && trace[0]) {
    rv = lmz_buf_append_str(b, ",\"traceId\":\"");
    if (!rv)
      rv = lmz_buf_append_str(b, trace);
    if (!rv)
      rv = lmz_buf_putc(b, '"');
  }
  if (!rv)
    rv = lmz_buf_putc(b, '}');
  if (!rv)
    rv = lmz_ws_send_text(k->ws, b->data, b->len);
  if (rv == LMZ_ETOOBIG) /* the answer, not the socket, is the problem */
    rv = send_too_big(k, id, id_len, trace);
  if (rv)
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: call_response not sent: %s trace=%s",
                 k->info.instance, lmz_strerror(rv), trace);
}

static void respond_error(struct gw_conn *k, const char *id, size_t id_len,
                          const char *msg) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = a ? lmz_error(a, "Error", msg) : NULL;
  k->gw->stats.client_calls_failed++;
  send_response(k, id, id_len, false, e ? e : lmz_null(), "");
  lmz_arena_free(a);
}

static void outcall_reply(void *arg, int status, bool ok, const lmz_value *v) {
  struct gw_outcall *oc = arg;
  struct gw_conn *k = oc->k;
  if (k->ws) {
    if (status || !ok)
      k->gw->stats.client_calls_failed++;
    send_response(k, oc->call_id, oc->id_len, status == 0 && ok, v, oc->trace_id);
  } else { /* DESIGN.md section 9: the socket dropped; the client re-issues */
    k->gw->stats.client_replies_dropped++;
    LMZ_LOG_INFO(&lmz__gw_log,
                 "client %s disconnected: answer to call %.*s dropped trace=%s",
                 k->info.instance, (int)oc->id_len, oc->call_id, oc->trace_id);
  }
  free(oc);
  lmz__gw_conn_unref(k);
}

/* ---- building the mesh call ---------------------------------------------- */

static int type_from_name(const char *s, lmz_node_type *t) {
  static const lmz_node_type all[] = {LMZ_NODE_DO, LMZ_NODE_WORKER,
                                      LMZ_NODE_CLIENT, LMZ_NODE_CLI};
  for (size_t i = 0; s && i < LMZ_ARRAY_SIZE(all); i++)
    if (!strcmp(s, lmz_node_type_name(all[i]))) {
      *t = all[i];
      return 0;
    }
  return LMZ_EINVAL;
}

static const char *dup_in(lmz_arena *a, const char *s) {
  return s ? lmz_arena_strndup(a, s, strlen(s)) : NULL;
}

/* callChain = [verified client, ...client's chain from index 1] (2.4). */
static int build_chain(struct gw_conn *k, const lmz_json *cc, lmz_arena *a,
                       struct lmz_node_call *call, const char **why) {
  const lmz_json *ch = cc ? lmz_json_get(cc, "callChain") : NULL;
  size_t extra = ch && ch->type == LMZ_JSON_ARRAY && ch->n > 1 ? ch->n - 1 : 0;
  if (ch && ch->type != LMZ_JSON_ARRAY && ch->type != LMZ_JSON_NULL)
    *why = "callContext.callChain must be an array";
  else if (1 + extra > MAX_CHAIN_IDS)
    *why = "callContext.callChain is longer than 64";
  if (*why)
    return LMZ_EINVAL;
  lmz_identity *ids = lmz_arena_alloc(a, (1 + extra) * sizeof *ids);
  if (!ids)
    return LMZ_ENOMEM;
  ids[0] = (lmz_identity){LMZ_NODE_CLIENT, dup_in(a, k->info.binding),
                          dup_in(a, k->info.instance)};
  if (!ids[0].binding || !ids[0].instance)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < extra; i++) {
    const lmz_json *e = ch->u.items[i + 1];
    const char *b = lmz__gw_str(e, "bindingName", NULL);
    const lmz_json *in = lmz_json_get(e, "instanceName");
    if (!b || !*b || strlen(b) > 255 ||
        type_from_name(lmz__gw_str(e, "type", NULL), &ids[i + 1].type) ||
        (in && in->type != LMZ_JSON_STRING && in->type != LMZ_JSON_NULL)) {
      *why = "invalid identity in callContext.callChain";
      return LMZ_EINVAL;
    }
    ids[i + 1].binding = dup_in(a, b);
    ids[i + 1].instance = in && in->type == LMZ_JSON_STRING ? dup_in(a, in->u.str.p) : NULL;
    if (!ids[i + 1].binding || (in && in->type == LMZ_JSON_STRING && !ids[i + 1].instance))
      return LMZ_ENOMEM;
  }
  call->call_chain = ids;
  call->call_chain_len = 1 + extra;
  return 0;
}

/* Sets `why` and returns rv. */
static int refuse(char *why, size_t whylen, const char *msg, int rv) {
  snprintf(why, whylen, "%s", msg);
  return rv;
}

static int decode_sc(lmz_gateway_t *gw, lmz_arena *a, const lmz_json *j,
                     lmz_value **out, char *why, size_t whylen,
                     const char *what) {
  struct lmz_codec_limits lim;
  struct lmz_codec_error err;
  lmz_codec_limits_default(&lim);
  lim.max_input = gw->max_message;
  int rv = lmz_scjson_decode_dom(a, j, &lim, out, &err);
  if (rv)
    snprintf(why, whylen, "malformed %s: %s", what, err.msg);
  return rv;
}

/* Fills `call` from the frame. 0, or an error with `why` set. */
static int build_call(struct gw_conn *k, const lmz_json *msg, lmz_arena *a,
                      struct lmz_node_call *call, char *why, size_t whylen) {
  lmz_gateway_t *gw = k->gw;
  const char *w = NULL;
  const lmz_json *inst = lmz_json_get(msg, "instance");
  const lmz_json *chain = lmz_json_get(msg, "chain");
  const lmz_json *cc = lmz_json_get(msg, "callContext");
  const lmz_json *st = cc && cc->type == LMZ_JSON_OBJECT ? lmz_json_get(cc, "state") : NULL;
  call->binding = dup_in(a, lmz__gw_str(msg, "binding", NULL));
  if (!call->binding)
    w = "Invalid call: binding must be a string";
  else if (inst && inst->type != LMZ_JSON_STRING && inst->type != LMZ_JSON_NULL)
    w = "Invalid call: instance must be a string";
  else if (!chain || chain->type != LMZ_JSON_OBJECT)
    w = "Invalid call: chain must be a structured-clone object";
  else if (cc && cc->type != LMZ_JSON_OBJECT && cc->type != LMZ_JSON_NULL)
    w = "Invalid call: callContext must be an object";
  if (w)
    return refuse(why, whylen, w, LMZ_EINVAL);
  call->instance = inst && inst->type == LMZ_JSON_STRING ? dup_in(a, inst->u.str.p) : NULL;
  int rv = decode_sc(gw, a, chain, &call->chain, why, whylen, "chain");
  if (!rv && st && st->type != LMZ_JSON_NULL)
    rv = decode_sc(gw, a, st, &call->state, why, whylen, "callContext.state");
  if (!rv && call->state && lmz_typeof(call->state) != LMZ_T_OBJECT)
    rv = refuse(why, whylen, "callContext.state must be a plain object", LMZ_EINVAL);
  if (!rv && (rv = build_chain(k, cc && cc->type == LMZ_JSON_OBJECT ? cc : NULL, a, call, &w)))
    snprintf(why, whylen, "%s", w ? w : "out of memory");
  if (rv)
    return rv;
  /* optional callContext.traceId (an lmz addition; the original's client
   * never sends it): validated when the call is dispatched */
  if (cc && cc->type == LMZ_JSON_OBJECT)
    call->trace_id = dup_in(a, lmz__gw_str(cc, "traceId", NULL));
  if (!call->state)
    call->state = lmz_object(a);
  /* {sub, claims} from the verified token, as for HTTP (access.c) */
  lmz_value *oa = lmz__gw_origin_auth(a, k->info.sub,
                                      lmz_value_copy(a, k->info.claims));
  if (!oa || !call->state)
    return refuse(why, whylen, "out of memory", LMZ_ENOMEM);
  call->origin_auth = oa;
  return 0;
}

/* on_before_call_to_mesh; 0, or non-zero with *err set. */
static int mesh_hook(struct gw_conn *k, const char *id,
                     struct lmz_node_call *call, lmz_arena *a, lmz_value **err) {
  const struct lmz_gateway_hooks *h = lmz_node_gateway_hooks(k->gw->node);
  if (!h || !h->on_before_call_to_mesh)
    return 0;
  struct lmz_gateway_mesh_call mc = {id, call->binding, call->instance,
                                     call->call_chain, call->call_chain_len,
                                     call->origin_auth, call->state};
  *err = NULL;
  if (h->on_before_call_to_mesh(h->data, &k->info, &mc, a, err)) {
    if (!*err)
      *err = lmz_error(a, "Error", "Call refused by the gateway");
    return -1;
  }
  call->origin_auth = mc.origin_auth;
  call->state = mc.state && lmz_typeof(mc.state) == LMZ_T_OBJECT ? mc.state
                                                                 : call->state;
  return 0;
}

/* Hands the call to the node; replies at once when it cannot start. */
static void dispatch(struct gw_conn *k, const char *id, size_t id_len,
                     struct lmz_node_call *call) {
  lmz_gateway_t *gw = k->gw;
  char errmsg[LMZ_ERRMSG_LEN] = "";
  struct gw_outcall *oc = malloc(sizeof *oc + id_len + 1);
  int rv = oc ? 0 : LMZ_ENOMEM;
  if (oc) {
    oc->k = k;
    oc->id_len = id_len;
    memcpy(oc->call_id, id, id_len);
    oc->call_id[id_len] = '\0';
    /* a client's call starts a trace here, unless the client sent a valid
     * callContext.traceId (hostile: kept only when valid) */
    lmz_trace_id_adopt(call->trace_id, oc->trace_id);
    call->trace_id = oc->trace_id;
    k->refs++;
    rv = lmz_node_call(gw->node, call, outcall_reply, oc, errmsg);
  }
  if (!rv) {
    gw->stats.client_calls++;
    return;
  }
  if (oc) {
    k->refs--; /* the socket still holds its own reference */
    free(oc);
  }
  lmz_node_arena_put(gw->node, call->arena);
  respond_error(k, id, id_len, errmsg[0] ? errmsg : lmz_strerror(rv));
}

static void on_call(struct gw_conn *k, const lmz_json *msg) {
  lmz_gateway_t *gw = k->gw;
  size_t id_len;
  const char *id = lmz__gw_str(msg, "callId", &id_len);
  if (!id || !id_len || id_len > MAX_CALL_ID) {
    gw->stats.frames_ignored++;
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: call without a valid callId ignored",
                 k->info.instance);
    return;
  }
  char why[LMZ_ERRMSG_LEN];
  lmz_arena *a = lmz_node_arena_get(gw->node);
  struct lmz_node_call call = {.arena = a};
  int rv = a ? build_call(k, msg, a, &call, why, sizeof why) : LMZ_ENOMEM;
  lmz_value *err = NULL;
  if (!rv && mesh_hook(k, id, &call, a, &err)) {
    gw->stats.client_calls_failed++;
    send_response(k, id, id_len, false, err, "");
    lmz_node_arena_put(gw->node, a);
    return;
  }
  if (rv) {
    lmz_node_arena_put(gw->node, a);
    respond_error(k, id, id_len, rv == LMZ_ENOMEM ? "out of memory" : why);
    return;
  }
  dispatch(k, id, id_len, &call);
}

/* ---- incoming_call_response ---------------------------------------------- */

/* The original rejects with the client's error if it is an Error, else with
 * new Error(String(x)). */
static lmz_value *as_error(lmz_arena *a, lmz_value *v) {
  if (v && lmz_typeof(v) == LMZ_T_ERROR)
    return v;
  if (v && lmz_typeof(v) == LMZ_T_STRING)
    return lmz_error(a, "Error", lmz_get_str(v, NULL));
  return lmz_error(a, "Error", v ? "Client call failed" : "undefined");
}

static void on_incall_response(struct gw_conn *k, const lmz_json *msg) {
  lmz_gateway_t *gw = k->gw;
  size_t id_len;
  const char *id = lmz__gw_str(msg, "callId", &id_len);
  struct gw_incall *ic = id ? lmz__gw_take_call(k, id, id_len) : NULL;
  if (!ic) {
    gw->stats.frames_ignored++;
    /* the id is the client's: a line shows at most MAX_CALL_ID of it */
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: response for unknown call %.*s",
                 k->info.instance,
                 id ? (int)(id_len < MAX_CALL_ID ? id_len : MAX_CALL_ID) : 4,
                 id ? id : "null");
    return;
  }
  const lmz_json *succ = lmz_json_get(msg, "success");
  bool ok = succ && succ->type == LMZ_JSON_TRUE;
  const lmz_json *payload = lmz_json_get(msg, ok ? "result" : "error");
  char why[LMZ_ERRMSG_LEN];
  lmz_arena *a = gw->scratch;
  lmz_value *v = NULL;
  if (payload && payload->type != LMZ_JSON_NULL &&
      decode_sc(gw, a, payload, &v, why, sizeof why, ok ? "result" : "error")) {
    ok = false;
    v = lmz_error(a, "Error", why);
  }
  lmz__gw_incall_settle(gw, ic, ok, ok ? v : as_error(a, v));
}

/* ---- dispatch ------------------------------------------------------------ */

void lmz__gw_on_message(lmz_ws_t *ws, bool is_text, const uint8_t *data,
                        size_t len) {
  struct gw_conn *k = lmz_ws_data(ws);
  lmz_gateway_t *gw = k->gw;
  gw->stats.frames_in++;
  if (!is_text) {
    gw->stats.frames_ignored++;
    LMZ_LOG_DEBUG(&lmz__gw_log, "client %s: binary frame ignored", k->info.instance);
    return;
  }
  if (len == 8 && !memcmp(data, "lmz:ping", 8)) { /* the heartbeat (1.9) */
    gw->stats.pings++;
    lmz_ws_send_text(ws, "lmz:pong", 8);
    return;
  }
  if (lmz__gw_conn_expired(k))
    return;
  struct lmz_codec_error err;
  lmz_json *msg = NULL;
  const char *type = NULL;
  k->refs++; /* settling a call may close this socket */
  int rc = lmz__gw_parse_frame(gw->scratch, data, len, gw->max_message, &msg, &err);
  /* the DOM is in; an answer decoded here brings the decoder's own bound */
  lmz_arena_set_limit(gw->scratch, 0);
  if (rc == LMZ_ETOOBIG) { /* over its memory budget: as over the size cap */
    gw->stats.frames_ignored++;
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: frame refused, closing: %s",
                 k->info.instance, err.msg);
    lmz_ws_close(ws, 1009, LMZ_WS_TOO_BIG_REASON);
  } else if (rc || msg->type != LMZ_JSON_OBJECT ||
             !(type = lmz__gw_str(msg, "type", NULL))) {
    gw->stats.frames_ignored++;
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: frame ignored: %s", k->info.instance,
                 msg ? "not an object with a type" : err.msg);
  } else if (!strcmp(type, "call")) {
    on_call(k, msg);
  } else if (!strcmp(type, "incoming_call_response")) {
    on_incall_response(k, msg);
  } else {
    gw->stats.frames_ignored++;
    LMZ_LOG_WARN(&lmz__gw_log, "client %s: unknown message type '%s' ignored",
                 k->info.instance, type);
  }
  lmz_arena_reset(gw->scratch);
  lmz_arena_set_limit(gw->scratch, lmz__gw_frame_budget(gw->max_message));
  lmz__gw_conn_unref(k);
}
