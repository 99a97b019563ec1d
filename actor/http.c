/* actor/http.c - the runtime's entry points for the gateway: HTTP requests
 * run as turns of an actor (lmz_node_http, lmz/http.h), and the gateway
 * hooks an application registers (lmz_register_gateway_hooks).
 *
 * Happy path: lmz_node_http copies the request into a fresh message arena
 * (method, path, query, headers, body; the gateway's origin auth, if the
 * request carried a verified token: lmz_node_http_auth) -> the message is delivered like a
 * call (activation, mailbox, run queue; in a cluster the router claims the
 * actor) -> its turn calls the class's on_request with a preset 200
 * response -> the turn ends like any other (writes committed, outputs held
 * by the output gate) -> the reply callback hands the response to the
 * gateway, which writes it.
 * Failure modes:
 *  1. unknown binding / not a durable object: LMZ_ENOTFOUND, nothing runs;
 *     no instance: LMZ_EINVAL; the class has no on_request: UV_ENOSYS (the
 *     gateway answers 404 / 400 / 501 without activating anything);
 *  2. mailbox full, node closing: the error code, nothing taken;
 *  3. the handler throws or returns an error, on_start failed, the commit
 *     fails: the callback gets LMZ_ETHROWN and the error value (the gateway
 *     answers 500 and logs it);
 *  4. a response the HTTP layer cannot send (bad status, header with CR/LF)
 *     is the gateway's to refuse (500); lmz_response_header already refuses
 *     CR/LF/NUL so a handler finds out in its own turn. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actor/actor_int.h"
#include "core/codec.h"
#include "lmz/gateway.h"
#include "lmz/http.h"

struct lmz__http_turn {
  struct lmz_request req;    /* copied into the message arena */
  struct lmz_response res;   /* filled by on_request */
  lmz_node_http_cb cb;
  void *arg;
  lmz_arena *arena;  /* the message's: a forwarded response is decoded here */
  bool forwarded;    /* ran on the owner node: the reply value is the response */
};

/* ---- the application's helpers (lmz/http.h) ------------------------------ */

const char *lmz_request_header(const struct lmz_request *req, const char *name) {
  for (size_t i = 0; i < req->n_headers; i++)
    if (!strcasecmp(req->headers[i].name, name))
      return req->headers[i].value;
  return NULL;
}

static bool header_text_ok(const char *s, bool is_name) {
  if (is_name && !*s)
    return false;
  for (; *s; s++)
    if (*s == '\r' || *s == '\n' || (is_name && (*s == ':' || *s == ' ')))
      return false;
  return true;
}

int lmz_response_header(lmz_ctx *ctx, struct lmz_response *res,
                        const char *name, const char *value) {
  if (!name || !value || !header_text_ok(name, true) || !header_text_ok(value, false))
    return LMZ_EINVAL;
  lmz_arena *a = ctx->arena;
  struct lmz_header *h = lmz_arena_alloc(a, (res->n_headers + 1) * sizeof *h);
  if (!h)
    return LMZ_ENOMEM;
  if (res->n_headers)
    memcpy(h, res->headers, res->n_headers * sizeof *h);
  h[res->n_headers].name = lmz_arena_strndup(a, name, strlen(name));
  h[res->n_headers].value = lmz_arena_strndup(a, value, strlen(value));
  if (!h[res->n_headers].name || !h[res->n_headers].value)
    return LMZ_ENOMEM;
  res->headers = h;
  res->n_headers++;
  return 0;
}

int lmz_response_body(lmz_ctx *ctx, struct lmz_response *res, int status,
                      const char *content_type, const void *body, size_t len) {
  void *copy = NULL;
  if (len && !(copy = lmz_arena_alloc(ctx->arena, len)))
    return LMZ_ENOMEM;
  if (len)
    memcpy(copy, body, len);
  const char *ct = content_type
                       ? lmz_arena_strndup(ctx->arena, content_type, strlen(content_type))
                       : NULL;
  if (content_type && !ct)
    return LMZ_ENOMEM;
  res->status = status;
  res->content_type = ct;
  res->body = copy;
  res->body_len = len;
  return 0;
}

int lmz_response_text(lmz_ctx *ctx, struct lmz_response *res, int status,
                      const char *content_type, const char *body) {
  return lmz_response_body(ctx, res, status, content_type, body,
                           body ? strlen(body) : 0);
}

/* ---- the turn ------------------------------------------------------------ */

int lmz__http_run(lmz_ctx *ctx) {
  lmz_actor *a = ctx->actor;
  struct lmz__http_turn *t = ctx->msg->http;
  if (a->state == LMZ_ACTOR_FAILED)
    return lmz_throw(ctx, a->start_error ? lmz_value_copy(ctx->arena, a->start_error)
                                         : lmz_error(ctx->arena, "Error", "on_start failed"));
  lmz_request_fn fn = a->binding->cls->opts.on_request;
  if (!fn) /* checked before delivery; the class cannot change meanwhile */
    return lmz_throwf(ctx, "Error", "no on_request handler");
  int rv = fn(ctx, &t->req, &t->res);
  if (rv && !ctx->thrown)
    return lmz_throwf(ctx, "Error", "on_request failed: %s", lmz_strerror(rv));
  return rv ? LMZ_ETHROWN : 0;
}

static int response_from_value(lmz_arena *a, const lmz_value *v,
                               struct lmz_response *res);

/* The message's reply: runs once, after the turn's writes are durable (or
 * when the message could not be delivered). */
static void http_reply(void *arg, int status, bool ok, const lmz_value *value) {
  struct lmz__http_turn *t = arg;
  if (status == 0 && ok && t->forwarded &&
      response_from_value(t->arena, value, &t->res)) {
    t->cb(t->arg, LMZ_ETHROWN, NULL,
          lmz_error(t->arena, "Error", "the owner node sent a malformed response"));
    return;
  }
  if (status == 0 && ok)
    t->cb(t->arg, 0, &t->res, NULL);
  else
    t->cb(t->arg, status ? status : LMZ_ETHROWN, NULL, value);
}

static const char *dup0(lmz_arena *a, const char *s) {
  return lmz_arena_strndup(a, s ? s : "", s ? strlen(s) : 0);
}

static int copy_request(lmz_arena *a, const struct lmz_request *in,
                        struct lmz_request *out) {
  struct lmz_header *h = in->n_headers
                             ? lmz_arena_alloc(a, in->n_headers * sizeof *h) : NULL;
  if (in->n_headers && !h)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < in->n_headers; i++) {
    h[i].name = dup0(a, in->headers[i].name);
    h[i].value = dup0(a, in->headers[i].value);
    if (!h[i].name || !h[i].value)
      return LMZ_ENOMEM;
  }
  uint8_t *body = in->body_len ? lmz_arena_alloc(a, in->body_len) : NULL;
  if (in->body_len && !body)
    return LMZ_ENOMEM;
  if (body)
    memcpy(body, in->body, in->body_len);
  *out = (struct lmz_request){dup0(a, in->method), dup0(a, in->path),
                              dup0(a, in->query), h, in->n_headers, body,
                              in->body_len, dup0(a, in->binding),
                              dup0(a, in->instance), dup0(a, in->remote)};
  if (!out->method || !out->path || !out->query || !out->binding ||
      !out->instance || !out->remote)
    return LMZ_ENOMEM;
  return 0;
}

int lmz_node_http(lmz_node_t *n, const char *binding, const char *instance,
                  const struct lmz_request *req, lmz_node_http_cb cb, void *arg,
                  char *errmsg) {
  return lmz_node_http_auth(n, binding, instance, req, NULL, cb, arg, errmsg);
}

/* The turn's call context: none (a public route), or the gateway's origin
 * auth with an empty chain (present, so lmz_origin_auth sees it and the
 * handler's own calls carry it on, as a client's calls do). Its trace: the
 * entry node's ids for a forwarded request, or the gateway's for a traced
 * one (`fwd`, each replaced when invalid), else the trace id of a
 * valid W3C traceparent header (hostile: parsed strictly), else a fresh
 * one: an HTTP request starts a trace. */
static int http_cctx(lmz_msg *m, const struct lmz_request *req,
                     const lmz_value *origin_auth, const char *const *fwd) {
  char tp[LMZ_TRACE_ID_LEN + 1];
  const char *h = fwd ? NULL : lmz_request_header(req, "traceparent");
  if (fwd)
    lmz__cctx_trace(&m->cctx, fwd[0], fwd[1]);
  else
    lmz__cctx_trace(&m->cctx,
                    h && !lmz_traceparent_parse(h, strlen(h), tp) ? tp : NULL,
                    NULL);
  m->cctx.state = lmz_object(m->arena);
  if (!m->cctx.state)
    return LMZ_ENOMEM;
  if (!origin_auth)
    return 0; /* no mesh context: present = false */
  if (!(m->cctx.origin_auth = lmz_value_copy(m->arena, origin_auth)))
    return LMZ_ENOMEM;
  m->cctx.present = true;
  return 0;
}

static int http_submit(lmz_node_t *n, const char *binding, const char *instance,
                       const struct lmz_request *req,
                       const lmz_value *origin_auth, const char *const *fwd,
                       lmz_node_http_cb cb, void *arg, char *errmsg);

int lmz_node_http_auth(lmz_node_t *n, const char *binding, const char *instance,
                       const struct lmz_request *req,
                       const lmz_value *origin_auth, lmz_node_http_cb cb,
                       void *arg, char *errmsg) {
  return http_submit(n, binding, instance, req, origin_auth, NULL, cb, arg,
                     errmsg);
}

int lmz_node_http_traced(lmz_node_t *n, const char *binding, const char *instance,
                         const struct lmz_request *req, const lmz_value *origin_auth,
                         const char *const ids[2], lmz_node_http_cb cb, void *arg,
                         char *errmsg) {
  return http_submit(n, binding, instance, req, origin_auth, ids, cb, arg, errmsg);
}

static int http_submit(lmz_node_t *n, const char *binding, const char *instance,
                       const struct lmz_request *req,
                       const lmz_value *origin_auth, const char *const *fwd,
                       lmz_node_http_cb cb, void *arg, char *errmsg) {
  struct lmz_binding *b = binding ? lmz__binding_get(n, binding) : NULL;
  if (n->closing) {
    lmz__errmsg_printf(errmsg, "node is shutting down");
    return LMZ_ECANCELED;
  }
  if (!b || b->kind != LMZ_NODE_DO || b->cls->raw) {
    lmz__errmsg_printf(errmsg, "no durable object binding named '%s'",
                       binding ? binding : "");
    return LMZ_ENOTFOUND;
  }
  if (!instance || !*instance) {
    lmz__errmsg_printf(errmsg, "'%s' requires an instance name", binding);
    return LMZ_EINVAL;
  }
  if (!b->cls->opts.on_request) {
    lmz__errmsg_printf(errmsg, "class %s has no on_request handler", b->cls->name);
    return UV_ENOSYS;
  }
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return LMZ_ENOMEM;
  struct lmz__http_turn *t = lmz_arena_alloc(m->arena, sizeof *t);
  int rv = t ? 0 : LMZ_ENOMEM;
  if (!rv) {
    memset(t, 0, sizeof *t);
    t->res.status = 200;
    t->cb = cb;
    t->arg = arg;
    t->arena = m->arena;
    struct lmz_request r = *req;
    r.binding = b->name;
    r.instance = instance;
    rv = copy_request(m->arena, &r, &t->req);
  }
  if (!rv && !(m->instance = lmz_arena_strndup(m->arena, instance, strlen(instance))))
    rv = LMZ_ENOMEM;
  if (!rv)
    rv = http_cctx(m, req, origin_auth, fwd);
  if (rv) {
    lmz__msg_free(n, m);
    return rv;
  }
  m->kind = LMZ_MSG_HTTP;
  m->binding = b;
  m->http = t;
  m->rkind = LMZ_REPLY_CB;
  m->cb = http_reply;
  m->cb_arg = t;
  if ((rv = lmz__deliver(n, m))) {
    lmz__msg_free(n, m);
    lmz__errmsg_printf(errmsg, "%s", lmz_strerror(rv));
    return rv;
  }
  return 0;
}

/* ---- gateway hooks (lmz/gateway.h) --------------------------------------- */

int lmz_register_gateway_hooks(lmz_registry *r,
                               const struct lmz_gateway_hooks *h) {
  if (!r || !h)
    return LMZ_EINVAL;
  if (r->node->gw_hooks) {
    if (r->errmsg)
      lmz__errmsg_printf(r->errmsg, "gateway hooks are registered twice");
    r->failed = LMZ_EEXIST;
    return LMZ_EEXIST;
  }
  r->node->gw_hooks = h;
  return 0;
}

const struct lmz_gateway_hooks *lmz_node_gateway_hooks(lmz_node_t *n) {
  return n->gw_hooks;
}

/* ---- forwarding to the owner node (router.c, remote.c) --------------------
 *
 * On the wire the request is a binary value {method, path, query, remote,
 * headers: [name, value, ...], body: ArrayBuffer} and the response
 * {status, contentType?, headers: [...], body: ArrayBuffer}. Both arrive
 * from another node and are checked like any input: types, lengths, header
 * text (no CR/LF), counts; the frame cap bounds the whole. */

#define FWD_MAX_HEADERS 256
#define FWD_MAX_STR 16384

static int set_str(lmz_arena *a, lmz_value *o, const char *k, const char *s) {
  lmz_value *v = lmz_cstring(a, s ? s : "");
  return v ? lmz_object_setc(o, k, v) : LMZ_ENOMEM;
}

static lmz_value *headers_value(lmz_arena *a, const struct lmz_header *h,
                                size_t n) {
  lmz_value *arr = lmz_array(a, 2 * n);
  for (size_t i = 0; arr && i < n; i++)
    if (lmz_array_push(arr, lmz_cstring(a, h[i].name)) ||
        lmz_array_push(arr, lmz_cstring(a, h[i].value)))
      return NULL;
  return arr;
}

int lmz__http_encode_request(lmz_msg *m, lmz_buf *out) {
  struct lmz__http_turn *t = m->http;
  const struct lmz_request *q = &t->req;
  lmz_arena *a = lmz_arena_new();
  lmz_value *o = a ? lmz_object(a) : NULL;
  lmz_value *hs = o ? headers_value(a, q->headers, q->n_headers) : NULL;
  lmz_value *body = hs ? lmz_arraybuffer(a, q->body, q->body_len) : NULL;
  int rv = body ? 0 : LMZ_ENOMEM;
  if (!rv && (set_str(a, o, "method", q->method) || set_str(a, o, "path", q->path) ||
              set_str(a, o, "query", q->query) || set_str(a, o, "remote", q->remote) ||
              lmz_object_setc(o, "headers", hs) || lmz_object_setc(o, "body", body)))
    rv = LMZ_ENOMEM;
  if (!rv)
    rv = lmz_bin_encode(o, out, NULL) ? LMZ_ENOMEM : 0;
  lmz_arena_free(a);
  if (!rv)
    t->forwarded = true;
  return rv;
}

/* A string property of a forwarded value, bounded; NULL when absent, not a
 * string, too long or holding a NUL. */
static const char *get_str(const lmz_value *o, const char *k, size_t max) {
  lmz_value *v = lmz_object_getc(o, k);
  size_t len = 0;
  const char *s = v && lmz_typeof(v) == LMZ_T_STRING ? lmz_get_str(v, &len) : NULL;
  return s && len <= max && strlen(s) == len ? s : NULL;
}

static int headers_from_value(lmz_arena *a, const lmz_value *arr,
                              struct lmz_header **out, size_t *n) {
  size_t len = arr && lmz_typeof(arr) == LMZ_T_ARRAY ? lmz_len(arr) : 1;
  if (len % 2 || len / 2 > FWD_MAX_HEADERS)
    return LMZ_EBADMSG;
  struct lmz_header *h = len ? lmz_arena_alloc(a, len / 2 * sizeof *h) : NULL;
  if (len && !h)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < len / 2; i++) {
    lmz_value *nv = lmz_array_get(arr, 2 * i), *vv = lmz_array_get(arr, 2 * i + 1);
    size_t nl = 0, vl = 0;
    h[i].name = nv && lmz_typeof(nv) == LMZ_T_STRING ? lmz_get_str(nv, &nl) : NULL;
    h[i].value = vv && lmz_typeof(vv) == LMZ_T_STRING ? lmz_get_str(vv, &vl) : NULL;
    if (!h[i].name || !h[i].value || nl > FWD_MAX_STR || vl > FWD_MAX_STR ||
        strlen(h[i].name) != nl || strlen(h[i].value) != vl ||
        !header_text_ok(h[i].name, true) || !header_text_ok(h[i].value, false))
      return LMZ_EBADMSG;
  }
  *out = h;
  *n = len / 2;
  return 0;
}

static int body_from_value(const lmz_value *v, const uint8_t **body, size_t *len) {
  if (!v || lmz_typeof(v) != LMZ_T_ARRAYBUFFER)
    return LMZ_EBADMSG;
  *len = lmz_len(v);
  *body = *len ? lmz_arraybuffer_data(v) : NULL;
  return 0;
}

int lmz__http_run_forwarded(lmz_node_t *n, const char *binding,
                            const char *instance, const lmz_value *v,
                            const lmz_value *origin_auth,
                            const char *const *ids, lmz_node_http_cb cb,
                            void *arg, char *errmsg) {
  lmz_arena *a = lmz_arena_new();
  if (!a)
    return LMZ_ENOMEM;
  struct lmz_request q = {0};
  struct lmz_header *h = NULL;
  int rv = v && lmz_typeof(v) == LMZ_T_OBJECT ? 0 : LMZ_EBADMSG;
  if (!rv) {
    q.method = get_str(v, "method", 32);
    q.path = get_str(v, "path", FWD_MAX_STR);
    q.query = get_str(v, "query", FWD_MAX_STR);
    q.remote = get_str(v, "remote", 256);
    if (!q.method || !*q.method || !q.path || !q.query || !q.remote)
      rv = LMZ_EBADMSG;
  }
  if (!rv)
    rv = headers_from_value(a, lmz_object_getc(v, "headers"), &h, &q.n_headers);
  q.headers = h;
  if (!rv)
    rv = body_from_value(lmz_object_getc(v, "body"), &q.body, &q.body_len);
  if (rv == LMZ_EBADMSG)
    lmz__errmsg_printf(errmsg, "malformed forwarded HTTP request");
  else if (!rv)
    rv = http_submit(n, binding, instance, &q, origin_auth, ids, cb, arg, errmsg);
  lmz_arena_free(a); /* http_submit copied what it keeps */
  return rv;
}

lmz_value *lmz__http_response_value(lmz_arena *a, const struct lmz_response *res) {
  lmz_value *o = lmz_object(a);
  lmz_value *hs = o ? headers_value(a, res->headers, res->n_headers) : NULL;
  lmz_value *body = hs ? lmz_arraybuffer(a, res->body, res->body_len) : NULL;
  if (!body || lmz_object_setc(o, "status", lmz_number(a, res->status)) ||
      (res->content_type && set_str(a, o, "contentType", res->content_type)) ||
      lmz_object_setc(o, "headers", hs) || lmz_object_setc(o, "body", body))
    return NULL;
  return o;
}

/* The owner's response, into the entry node's message arena (the value's
 * strings and bytes are borrowed: they live in the same arena). */
static int response_from_value(lmz_arena *a, const lmz_value *v,
                               struct lmz_response *res) {
  if (!v || lmz_typeof(v) != LMZ_T_OBJECT)
    return LMZ_EBADMSG;
  lmz_value *st = lmz_object_getc(v, "status");
  double s = st && lmz_typeof(st) == LMZ_T_NUMBER ? lmz_get_number(st) : 0;
  if (!(s >= 100 && s <= 599) || s != (int)s)
    return LMZ_EBADMSG;
  struct lmz_header *h = NULL;
  int rv = headers_from_value(a, lmz_object_getc(v, "headers"), &h, &res->n_headers);
  const uint8_t *body = NULL;
  if (!rv)
    rv = body_from_value(lmz_object_getc(v, "body"), &body, &res->body_len);
  res->content_type = get_str(v, "contentType", FWD_MAX_STR);
  if (!rv && lmz_object_getc(v, "contentType") &&
      (!res->content_type || !header_text_ok(res->content_type, false)))
    rv = LMZ_EBADMSG;
  res->status = (int)s;
  res->headers = h;
  res->body = body;
  return rv;
}
