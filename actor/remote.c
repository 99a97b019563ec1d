/* actor/remote.c - Call frames from the node port into the runtime.
 *
 * Happy path: Call frame -> validate the envelope (version 1, callee) ->
 * decode chain/state/origin auth (binary codec, bounded) into a pooled
 * arena -> lmz_node_call -> reply_cb encodes the outcome -> Result frame on
 * the same connection.
 * Failure modes:
 *  1. bad envelope version / missing call context: an error value reply with
 *     the original's texts (the caller sees a thrown Error, as over RPC);
 *  2. undecodable chain or state: an error reply naming the field (hostile
 *     bytes never reach the runtime);
 *  3. target validation (unknown binding, instance rules): error reply with
 *     the original's text;
 *  4. node closing / out of memory: Result with code LMZ_ECANCELED /
 *     LMZ_ENOMEM (an overloaded node or mailbox answers the call itself
 *     with a MeshOverloadedError value);
 *  5. the connection died before the reply: the reply is dropped;
 *  6. the reply does not fit in one frame (LMZ_FRAME_MAX_DEFAULT): an
 *     Error("Message is too large ...") result goes back instead, so the
 *     caller never waits for its timeout; a large reply the connection's
 *     queue cannot take now: a MeshOverloadedError result instead.
 * A Call of kind 1 is an HTTP request another node forwarded to this owner
 * (router.c): checked against the directory like a call, decoded by http.c,
 * run by lmz_node_http; the response is the Result's value. */
#include <stdlib.h>
#include <string.h>

#include "actor/remote.h"
#include "actor/actor_int.h"
#include "actor/router.h"
#include "core/codec.h"
#include "core/log.h"
#include "proto/frame.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.actor.remote");

/* Per connection, from its first call to its DOWN: detached then (the
 * caller's router fails its forwarded calls on DOWN, so a reply has nobody
 * waiting for it after a reconnect) and freed once no reply is outstanding.
 * Managed conns too: they outlive DOWN, but the transport frees them at
 * close after reporting DOWN, so a ref still attached would leak. */
struct peer_ref {
  lmz_remote_t *r;
  lmz_conn_t *conn; /* NULL once the connection is gone */
  uint32_t outstanding;
};

struct pending_reply {
  struct peer_ref *ref;
  uint64_t call_id;
  char trace_id[LMZ_TRACE_ID_LEN + 1]; /* the call's trace, for logs */
};

/* The frame's trace id when valid (hostile input), else "": safe to log. */
static const char *frame_trace(const Lmz__Call *c) {
  const char *t = c->ctx ? c->ctx->trace_id : NULL;
  return t && lmz_trace_id_valid(t, strnlen(t, LMZ_TRACE_ID_LEN + 1)) ? t : "";
}

int lmz_remote_init(lmz_remote_t *r, lmz_node_t *node) {
  *r = (lmz_remote_t){.node = node};
  return 0;
}

void lmz_remote_close(lmz_remote_t *r) { r->router = NULL; }

void lmz_remote_set_router(lmz_remote_t *r, struct lmz_router_s *router) {
  r->router = router;
}

/* A call a peer routed to us: are we (still) the owner? */
static int owner_check(lmz_remote_t *r, struct peer_ref *ref,
                       const Lmz__Call *c) {
  if (!r->router || !c->callee || !c->callee->has_instance || !c->callee->binding)
    return 0;
  lmz_node_type kind;
  if (!lmz_node_binding_kind(r->node, c->callee->binding, &kind) || kind != LMZ_NODE_DO)
    return 0;
  uint64_t cur = 0;
  int rv = lmz_router_check_owner(r->router, c->callee->binding,
                                  c->callee->instance, c->epoch, &cur);
  if (rv) {
    r->stats.rejected++;
    Lmz__Result res = LMZ__RESULT__INIT;
    res.call_id = c->call_id;
    res.code = rv;
    res.epoch = cur;
    res.detail = (char *)lmz_strerror(rv);
    Lmz__Frame f = LMZ__FRAME__INIT;
    f.body_case = LMZ__FRAME__BODY_RESULT;
    f.result = &res;
    if (ref->conn)
      lmz_conn_send(ref->conn, &f);
  }
  return rv;
}

void lmz_remote_get_stats(lmz_remote_t *r, struct lmz_remote_stats *st) {
  *st = r->stats;
}

static struct peer_ref *ref_of(lmz_remote_t *r, lmz_conn_t *conn) {
  struct peer_ref *ref = lmz_conn_get_data(conn);
  if (ref)
    return ref;
  if (!(ref = calloc(1, sizeof *ref)))
    return NULL;
  ref->r = r;
  ref->conn = conn;
  lmz_conn_set_data(conn, ref);
  return ref;
}

void lmz_remote_on_conn_state(lmz_remote_t *r, lmz_conn_t *conn, int state,
                              int status) {
  (void)r, (void)status;
  if (state != LMZ_CONN_DOWN)
    return;
  struct peer_ref *ref = lmz_conn_get_data(conn);
  if (!ref)
    return;
  lmz_conn_set_data(conn, NULL);
  ref->conn = NULL; /* an unmanaged conn is freed after this callback */
  if (!ref->outstanding)
    free(ref);
}

/* ---- replies ------------------------------------------------------------- */

static int send_result_frame(struct peer_ref *ref, uint64_t call_id, bool ok,
                             const lmz_value *v, int code, const char *detail,
                             size_t *frame_len);

/* A reply that cannot go out as it is (over the frame cap, or too big for
 * the queue now): the caller gets a small error value saying so instead of
 * waiting for its timeout. */
static int send_instead(struct peer_ref *ref, uint64_t call_id, int why,
                        size_t frame_len) {
  char msg[160];
  if (why == LMZ_ETOOBIG)
    snprintf(msg, sizeof msg,
             "Message is too large: the reply is %zu bytes, the limit between "
             "nodes is %u bytes", frame_len, (unsigned)LMZ_FRAME_MAX_DEFAULT);
  else
    snprintf(msg, sizeof msg, "the reply (%zu bytes) could not be queued: the "
             "connection to the caller's node is overloaded", frame_len);
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = !a                    ? NULL
                 : why == LMZ_ETOOBIG ? lmz_error(a, "Error", msg)
                                      : lmz__overloaded_error(a, "%s", msg);
  int rv = send_result_frame(ref, call_id, false, e, e ? 0 : LMZ_ENOMEM, msg,
                             NULL);
  lmz_arena_free(a);
  return rv;
}

static void send_result(struct peer_ref *ref, uint64_t call_id, bool ok,
                        const lmz_value *v, int code, const char *detail,
                        const char *trace) {
  if (!ref->conn) {
    ref->r->stats.replies_dropped++;
    return;
  }
  size_t frame_len = 0;
  int rv = send_result_frame(ref, call_id, ok, v, code, detail, &frame_len);
  if (rv == LMZ_ETOOBIG || (rv == LMZ_EOVERLOAD && frame_len > 4096)) {
    LMZ_LOG_WARN(&log_ns, "reply %llu (%zu bytes) not sent: %s; answered with "
                 "an error trace=%s", (unsigned long long)call_id, frame_len,
                 lmz_strerror(rv), trace);
    rv = send_instead(ref, call_id, rv, frame_len);
  }
  if (rv) {
    ref->r->stats.replies_dropped++;
    LMZ_LOG_WARN(&log_ns, "reply %llu not sent: %s trace=%s",
                 (unsigned long long)call_id, lmz_strerror(rv), trace);
  }
}

/* Encodes and queues one Result frame; *frame_len (if given) = its body
 * length. LMZ_ETOOBIG when it is over the frame cap (nothing queued). */
static int send_result_frame(struct peer_ref *ref, uint64_t call_id, bool ok,
                             const lmz_value *v, int code, const char *detail,
                             size_t *frame_len) {
  lmz_buf enc = LMZ_BUF_INIT;
  Lmz__Result res = LMZ__RESULT__INIT;
  res.call_id = call_id;
  res.ok = ok;
  res.code = code;
  res.detail = (char *)(detail ? detail : "");
  if (v && lmz_bin_encode(v, &enc, NULL) == 0) {
    res.value.data = enc.data;
    res.value.len = enc.len;
  } else if (v) {
    res.ok = false;
    res.code = LMZ_ENOMEM;
    res.detail = "cannot encode the reply";
  }
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_RESULT;
  f.result = &res;
  size_t len = lmz_frame_encoded_len(&f) - LMZ_FRAME_HDR_LEN;
  if (frame_len)
    *frame_len = len;
  int rv = len > LMZ_FRAME_MAX_DEFAULT ? LMZ_ETOOBIG : lmz_conn_send(ref->conn, &f);
  lmz_buf_free(&enc);
  return rv;
}

static void reply_cb(void *arg, int status, bool ok, const lmz_value *value) {
  struct pending_reply *p = arg;
  struct peer_ref *ref = p->ref;
  if (p->call_id)
    send_result(ref, p->call_id, status == 0 && ok, value, status,
                status ? lmz_strerror(status) : NULL, p->trace_id);
  if (--ref->outstanding == 0 && !ref->conn)
    free(ref);
  free(p);
}

/* An error reply for a call that never reached the runtime. */
static void reply_error(struct peer_ref *ref, const Lmz__Call *c,
                        const char *name, const char *msg) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = a ? lmz_error(a, name, msg) : NULL;
  if (c->call_id)
    send_result(ref, c->call_id, false, e, e ? 0 : LMZ_ENOMEM, e ? NULL : msg,
                frame_trace(c));
  lmz_arena_free(a);
  ref->r->stats.rejected++;
}

/* ---- decoding a call ----------------------------------------------------- */

static int decode_value(lmz_arena *a, ProtobufCBinaryData d, lmz_value **out,
                        const char *what, char *msg, size_t msglen) {
  struct lmz_codec_error err;
  struct lmz_codec_limits lim;
  lmz_codec_limits_default(&lim);
  lim.max_input = LMZ_FRAME_MAX_DEFAULT; /* bounded by the frame anyway */
  int rv = lmz_bin_decode(a, d.data, d.len, &lim, out, &err);
  if (rv)
    snprintf(msg, msglen, "malformed %s: %s", what, err.msg);
  return rv;
}

static const char *dup_str(lmz_arena *a, const char *s) {
  return s ? lmz_arena_strndup(a, s, strlen(s)) : NULL;
}

static int decode_chain_ids(lmz_arena *a, const Lmz__CallContext *c,
                            struct lmz_node_call *call) {
  size_t n = c->n_call_chain;
  lmz_identity *ids = lmz_arena_alloc(a, (n ? n : 1) * sizeof *ids);
  if (!ids)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const Lmz__Identity *id = c->call_chain[i];
    if (id->type > LMZ_NODE_CLI || !id->binding || !*id->binding)
      return LMZ_EBADMSG;
    ids[i] = (lmz_identity){(lmz_node_type)id->type, dup_str(a, id->binding),
                            id->has_instance ? dup_str(a, id->instance) : NULL};
  }
  call->call_chain = ids;
  call->call_chain_len = n;
  return 0;
}

static const lmz_identity cli_identity = {LMZ_NODE_CLI, "lmz-cli", NULL};

/* Fills `call` from the frame; returns 0 or an error with msg set. */
static int decode_call(const Lmz__Call *c, bool from_operator, lmz_arena *a,
                       struct lmz_node_call *call, char *msg, size_t msglen) {
  if (!c->callee || !c->callee->binding) {
    snprintf(msg, msglen, "Missing callee in envelope.");
    return LMZ_EBADMSG;
  }
  call->binding = c->callee->binding;
  call->instance = c->callee->has_instance ? c->callee->instance : NULL;
  int rv = decode_value(a, c->chain, &call->chain, "chain", msg, msglen);
  if (rv)
    return rv;
  if (c->ctx) { /* validated by lmz_node_call (a bad one is replaced) */
    call->trace_id = c->ctx->trace_id;
    call->call_id = c->ctx->call_id;
  }
  if (from_operator) { /* operators never speak for anyone but themselves */
    call->call_chain = &cli_identity;
    call->call_chain_len = 1;
  } else if (!c->ctx) {
    snprintf(msg, msglen, "Missing callContext in envelope. All mesh calls "
                          "must include callContext.");
    return LMZ_EBADMSG;
  } else if ((rv = decode_chain_ids(a, c->ctx, call))) {
    snprintf(msg, msglen, "malformed callChain");
    return rv;
  }
  if (c->ctx && c->ctx->state.len &&
      (rv = decode_value(a, c->ctx->state, &call->state, "state", msg, msglen)))
    return rv;
  if (call->state && lmz_typeof(call->state) != LMZ_T_OBJECT) {
    snprintf(msg, msglen, "callContext.state must be a plain object");
    return LMZ_EBADMSG;
  }
  if (!from_operator && c->ctx->origin_auth.len &&
      (rv = decode_value(a, c->ctx->origin_auth, &call->origin_auth,
                         "originAuth", msg, msglen)))
    return rv;
  return 0;
}

static void on_call(lmz_remote_t *r, struct peer_ref *ref, const Lmz__Call *c,
                    bool from_operator) {
  char msg[LMZ_ERRMSG_LEN];
  if (c->version != 1) {
    snprintf(msg, sizeof msg,
             "Unsupported RPC envelope version: %u. This version of lmz only "
             "supports v1 envelopes.", c->version);
    reply_error(ref, c, "Error", msg);
    return;
  }
  if (!from_operator && owner_check(r, ref, c))
    return;
  lmz_arena *a = lmz_node_arena_get(r->node);
  struct pending_reply *p = malloc(sizeof *p);
  struct lmz_node_call call = {.arena = a, .routed = !from_operator && r->router,
                               .epoch = c->epoch};
  int rv = a && p ? decode_call(c, from_operator, a, &call, msg, sizeof msg)
                  : LMZ_ENOMEM;
  if (!rv) {
    *p = (struct pending_reply){ref, c->call_id, ""};
    /* the call's trace: the sender's when valid, else it starts here */
    lmz_trace_id_adopt(call.trace_id, p->trace_id);
    call.trace_id = p->trace_id;
    ref->outstanding++;
    rv = lmz_node_call(r->node, &call, reply_cb, p, msg);
    if (!rv) {
      r->stats.calls++;
      return;
    }
    ref->outstanding--;
  }
  free(p);
  lmz_node_arena_put(r->node, a);
  /* lmz_node_call answers an overloaded call itself (MeshOverloadedError):
   * it never returns LMZ_EOVERLOAD for one */
  if (rv == LMZ_ECANCELED || rv == LMZ_ENOMEM) {
    r->stats.rejected++;
    if (c->call_id)
      send_result(ref, c->call_id, false, NULL, rv, lmz_strerror(rv),
                  frame_trace(c));
    return;
  }
  reply_error(ref, c, "Error", msg);
}

/* ---- HTTP requests forwarded by the entry node (Call kind 1) ------------- */

static void http_reply_cb(void *arg, int status, const struct lmz_response *res,
                          const lmz_value *error) {
  struct pending_reply *p = arg;
  struct peer_ref *ref = p->ref;
  lmz_arena *a = lmz_arena_new();
  const lmz_value *v = !a ? NULL : status ? error : lmz__http_response_value(a, res);
  if (status && !v && a) /* refused before running (no error value) */
    v = status == LMZ_EOVERLOAD ? lmz__overloaded_error(a, "%s", lmz_strerror(status))
                                : lmz_error(a, "Error", lmz_strerror(status));
  if (p->call_id)
    send_result(ref, p->call_id, status == 0 && v, v, v ? 0 : LMZ_ENOMEM,
                v ? NULL : "cannot encode the response", p->trace_id);
  lmz_arena_free(a);
  if (--ref->outstanding == 0 && !ref->conn)
    free(ref);
  free(p);
}

/* Runs a forwarded HTTP request here (the owner was checked): the request
 * is decoded like any hostile input (http.c), the response goes back as the
 * Result's value. Only peers forward HTTP; operators cannot. */
static void on_http(lmz_remote_t *r, struct peer_ref *ref, const Lmz__Call *c) {
  char msg[LMZ_ERRMSG_LEN] = "";
  if (!c->callee || !c->callee->binding || !c->callee->has_instance) {
    reply_error(ref, c, "Error", "Missing callee in envelope.");
    return;
  }
  lmz_arena *a = lmz_node_arena_get(r->node);
  struct pending_reply *p = malloc(sizeof *p);
  lmz_value *req = NULL, *oa = NULL;
  int rv = a && p ? decode_value(a, c->chain, &req, "HTTP request", msg, sizeof msg)
                  : LMZ_ENOMEM;
  /* the entry node's gateway verified the token: its origin auth rides in
   * the context as a mesh call's does (none for a public binding) */
  if (!rv && c->ctx && c->ctx->origin_auth.len)
    rv = decode_value(a, c->ctx->origin_auth, &oa, "originAuth", msg, sizeof msg);
  const char *ids[2] = {c->ctx ? c->ctx->trace_id : NULL,
                       c->ctx ? c->ctx->call_id : NULL};
  if (!rv) {
    *p = (struct pending_reply){ref, c->call_id, ""};
    snprintf(p->trace_id, sizeof p->trace_id, "%s", frame_trace(c));
    ref->outstanding++;
    rv = lmz__http_run_forwarded(r->node, c->callee->binding, c->callee->instance,
                                 req, oa, ids, http_reply_cb, p, msg);
    if (!rv) {
      r->stats.calls++;
      lmz_node_arena_put(r->node, a); /* lmz_node_http copied the request */
      return;
    }
    ref->outstanding--;
  }
  free(p);
  if (a)
    lmz_node_arena_put(r->node, a);
  reply_error(ref, c, rv == LMZ_EOVERLOAD ? "MeshOverloadedError" : "Error",
              msg[0] ? msg : lmz_strerror(rv));
}

void lmz_remote_on_call(lmz_remote_t *r, lmz_conn_t *conn,
                        const Lmz__Frame *f) {
  struct peer_ref *ref = ref_of(r, conn);
  if (!ref)
    return;
  const Lmz__Call *c = f->call;
  bool from_operator = lmz_conn_peer_id(conn) == 0;
  if (c->kind == 0) {
    on_call(r, ref, c, from_operator);
    return;
  }
  if (c->kind != 1 || from_operator || c->version != 1) {
    reply_error(ref, c, "Error", "unsupported call kind from this sender");
    return;
  }
  if (!owner_check(r, ref, c))
    on_http(r, ref, c);
}
