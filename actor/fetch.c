/* actor/fetch.c - lmz_fetch: outbound HTTP for actors (lmz/lmz.h).
 *
 * Happy path (the original's "two one-way calls"):
 *  1. lmz_fetch, inside a turn, checks the request against the node's
 *     client (net/fetch.h: URL, allow-list, headers, body size) and queues
 *     it in the turn's outbox as an lmz_msg carrying a struct lmz__fetch
 *     (with the turn's trace id: the request carries a W3C traceparent),
 *     with either a pending handler continuation (like lmz_call's) or the
 *     current call deferred (lmz_defer);
 *  2. the turn ends; its outputs are released when its writes are durable
 *     (the output gate, turn.c), and release sends the request
 *     (lmz__fetch_release -> lmz_net_fetch): the actor is free meanwhile;
 *  3. the response (or an error) becomes a value in the message's arena:
 *     handler: the message turns into the reply of a pending call
 *     (lmz__release_output delivers it as a handler turn, a LATER turn of
 *     the actor); deferred: the call is resolved / rejected.
 * Failure modes:
 *  1. a bad request or a host not on the allow-list: lmz_fetch throws
 *     (FetchError with `code`), nothing is queued;
 *  2. the turn throws: the request is dropped unsent (drop); a deferred
 *     reply is not kept (the call gets the turn's error);
 *  3. the turn's commit fails: the handler / deferred reply gets the
 *     StorageError (fail), nothing is sent;
 *  4. transport errors, limits (timeout, size, redirects, a redirect to a
 *     host not allowed): a FetchError with `code` is delivered the same way
 *     as a response;
 *  5. node close: lmz_node_close closes the client; requests in flight end
 *     with FetchError code ECANCELED; their handler turns still run while
 *     the node drains (it waits for the client to be closed); requests
 *     released later fail the same way and lmz_fetch throws. */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "core/json.h"
#include "core/utf8.h"

struct lmz__fetch {
  lmz_node_t *node;
  struct lmz_net_request q; /* strings and body in the message's arena */
  lmz_deferred *d;          /* answer the deferred call, or NULL (handler) */
  bool binary, json;
};

static const char *code_name(int code) {
  switch (code) {
  case LMZ_ETIMEOUT:
    return "ETIMEOUT";
  case LMZ_ETOOBIG:
    return "ETOOBIG";
  case UV_ELOOP:
    return "ELOOP";
  case LMZ_EACCESS:
    return "EACCESS";
  case LMZ_ECANCELED:
    return "ECANCELED";
  case LMZ_EINVAL:
    return "EINVAL";
  case LMZ_ENOMEM:
    return "ENOMEM";
  case LMZ_ESYNTAX:
    return "ESYNTAX";
  case LMZ_EOVERLOAD:
    return "EOVERLOAD";
  default:
    return "EIO";
  }
}

static lmz_value *fetch_error(lmz_arena *a, int code, const char *msg) {
  lmz_value *e = lmz_error(a, "FetchError", msg && *msg ? msg : lmz_strerror(code));
  lmz_value *c = e ? lmz_cstring(a, code_name(code)) : NULL;
  if (c)
    lmz_error_set_prop(e, "code", 4, c);
  return e;
}

static int throw_fetch(lmz_ctx *ctx, int code, const char *msg) {
  lmz_value *e = fetch_error(ctx->arena, code, msg);
  return e ? lmz_throw(ctx, e) : LMZ_ENOMEM;
}

/* The body parsed as JSON (bounded: the response cap, depth 64), or a
 * FetchError ESYNTAX in *err. */
static lmz_value *json_body(lmz_arena *a, const struct lmz_net_response *r,
                            lmz_value **err) {
  struct lmz_json_opts o = {.max_depth = 64};
  struct lmz_codec_error ce = {0};
  lmz_json *j = NULL;
  int rv = lmz_json_parse(a, (const char *)r->body, r->body_len, &o, &j, &ce);
  lmz_value *v = rv ? NULL : lmz_json_to_value(a, j, 64);
  if (!v)
    *err = fetch_error(a, rv == LMZ_ENOMEM ? rv : LMZ_ESYNTAX,
                       "response body is not JSON");
  return v;
}

/* {status, headers, body, url} in `a`; NULL on out of memory, or with the
 * error in *err. */
static lmz_value *response_value(lmz_arena *a, const struct lmz_net_response *r,
                                 const struct lmz__fetch *f, lmz_value **err) {
  lmz_value *o = lmz_object(a), *h = lmz_headers(a);
  if (!o || !h)
    return NULL;
  for (size_t i = 0; i < r->n_headers; i++)
    if (lmz_headers_append(h, r->headers[i].name, strlen(r->headers[i].name),
                           r->headers[i].value, strlen(r->headers[i].value)))
      return NULL;
  bool text = !f->binary && lmz__wtf8_is_wellformed((const char *)r->body, r->body_len);
  lmz_value *body = f->json ? json_body(a, r, err)
                    : text  ? lmz_string(a, (const char *)r->body, r->body_len)
                            : lmz_arraybuffer(a, r->body, r->body_len);
  if (*err)
    return NULL;
  lmz_value *st = lmz_number(a, (double)r->status);
  lmz_value *url = lmz_cstring(a, r->url);
  if (!body || !st || !url || lmz_object_setc(o, "status", st) ||
      lmz_object_setc(o, "headers", h) || lmz_object_setc(o, "body", body) ||
      lmz_object_setc(o, "url", url))
    return NULL;
  return o;
}

/* Hands the outcome to whoever waits: the deferred call or the handler. */
static void complete(lmz_node_t *n, lmz_msg *m, bool ok, lmz_value *v) {
  struct lmz__fetch *f = m->fetch;
  m->fetch = NULL;
  n->fetches--;
  if (!v) {
    ok = false;
    v = lmz_error(m->arena, "FetchError", "out of memory");
  }
  if (f->d) {
    if (ok)
      lmz_deferred_resolve(f->d, v);
    else
      lmz_deferred_reject(f->d, v);
    lmz__msg_free(n, m);
    return;
  }
  m->reply_ok = ok; /* now the reply of a pending call (rkind PENDING) */
  m->reply_value = v;
  lmz__release_output(n, m);
}

static void net_cb(void *ud, int status, const struct lmz_net_response *res,
                   const char *errmsg) {
  lmz_msg *m = ud;
  struct lmz__fetch *f = m->fetch;
  lmz_value *err = NULL;
  lmz_value *v = status ? fetch_error(m->arena, status, errmsg)
                        : response_value(m->arena, res, f, &err);
  if (err)
    v = err;
  complete(f->node, m, status == 0 && !err, v);
}

void lmz__fetch_release(lmz_node_t *n, lmz_msg *m) {
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = n->net ? lmz_net_fetch(n->net, &m->fetch->q, net_cb, m, err)
                  : LMZ_ECANCELED;
  if (rv)
    complete(n, m, false,
             fetch_error(m->arena, rv, rv == LMZ_ECANCELED ? "node shutting down" : err));
}

void lmz__fetch_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err) {
  complete(n, m, false, err);
}

void lmz__fetch_drop(lmz_actor *a, lmz_msg *m) {
  struct lmz__fetch *f = m->fetch;
  m->fetch = NULL;
  a->node->fetches--;
  if (f->d) { /* the call is answered with the turn's error instead */
    if (f->d->msg)
      lmz__defer_cancel(f->d->msg);
    free(f->d);
  }
}

/* ---- lmz_fetch ------------------------------------------------------------ */

/* The request goes out with the turn's trace (a W3C traceparent, built by
 * net/fetch.c), so the remote's work joins the caller's trace. */
static int copy_req(lmz_arena *a, struct lmz__fetch *f, const struct lmz_fetch_req *r,
                    const char *trace_id) {
  struct lmz_net_request *q = &f->q;
  *q = (struct lmz_net_request){.n_headers = r->n_headers,
                                .body_len = r->body_len,
                                .timeout_ms = r->timeout_ms};
  f->binary = r->binary;
  f->json = r->json;
  if (!(q->url = lmz_arena_strndup(a, r->url, strlen(r->url))))
    return LMZ_ENOMEM;
  if (*trace_id && !(q->trace_id = lmz_arena_strndup(a, trace_id, strlen(trace_id))))
    return LMZ_ENOMEM;
  if (r->method && !(q->method = lmz_arena_strndup(a, r->method, strlen(r->method))))
    return LMZ_ENOMEM;
  if (r->n_headers) {
    const char **hs = lmz_arena_alloc(a, r->n_headers * sizeof *hs);
    if (!hs)
      return LMZ_ENOMEM;
    for (size_t i = 0; i < r->n_headers; i++)
      if (!(hs[i] = lmz_arena_strndup(a, r->headers[i], strlen(r->headers[i]))))
        return LMZ_ENOMEM;
    q->headers = hs;
  }
  if (r->body_len) {
    void *b = lmz_arena_alloc(a, r->body_len);
    if (!b)
      return LMZ_ENOMEM;
    memcpy(b, r->body, r->body_len);
    q->body = b;
  }
  return 0;
}

/* Refusals that throw at once, before anything is queued. */
static int check(lmz_ctx *ctx, const struct lmz_fetch_req *r, lmz_ctn *handler) {
  lmz_node_t *n = ctx->node;
  char err[LMZ_ERRMSG_LEN] = "";
  if (!r || !r->url)
    return throw_fetch(ctx, LMZ_EINVAL, "lmz_fetch: no URL");
  if (n->closing)
    return throw_fetch(ctx, LMZ_ECANCELED, "node shutting down");
  if (!n->net)
    return throw_fetch(ctx, LMZ_EACCESS,
                       "outbound fetch is off: no host on the fetch.allow list");
  for (size_t i = 0; i < r->n_headers; i++)
    if (!r->headers || !r->headers[i])
      return throw_fetch(ctx, LMZ_EINVAL, "lmz_fetch: NULL header");
  if (n->fetches >= lmz_net_max_inflight(n->net))
    return throw_fetch(ctx, LMZ_EOVERLOAD, "too many fetches queued or in flight on this node");
  struct lmz_net_request q = {.url = r->url, .method = r->method,
                              .headers = r->headers, .n_headers = r->n_headers,
                              .body = r->body, .body_len = r->body_len,
                              .timeout_ms = r->timeout_ms};
  int rv = lmz_net_check(n->net, &q, err);
  if (rv)
    return throw_fetch(ctx, rv, err);
  if (!handler && (ctx->msg->kind != LMZ_MSG_CALL || ctx->msg->defer))
    return lmz_throwf(ctx, "Error",
                      "lmz_fetch without a handler answers the current mesh "
                      "call: only inside one, and only once");
  if (handler && !lmz_ctn_chain(handler))
    return lmz_throwf(ctx, "Error", "lmz_fetch: invalid handler continuation");
  return 0;
}

int lmz_fetch(lmz_ctx *ctx, const struct lmz_fetch_req *req, lmz_ctn *handler) {
  int rv = check(ctx, req, handler);
  if (rv)
    return rv;
  lmz_node_t *n = ctx->node;
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return LMZ_ENOMEM;
  struct lmz__fetch *f = lmz_arena_alloc(m->arena, sizeof *f);
  rv = f ? copy_req(m->arena, memset(f, 0, sizeof *f), req, lmz_trace_id(ctx)) : LMZ_ENOMEM;
  if (!rv && handler && !(rv = lmz__make_pending(ctx, handler, NULL, &m->pending))) {
    m->rkind = LMZ_REPLY_PENDING;
    ctx->actor->n_pending++;
  } else if (!rv && !handler && !(f->d = lmz_defer(ctx))) {
    rv = LMZ_ENOMEM;
  }
  if (rv) {
    lmz__msg_free(n, m);
    return rv;
  }
  f->node = n;
  m->fetch = f;
  n->fetches++;
  m->caller = ctx->actor->self;
  /* held in the turn's outbox until the turn's writes are durable */
  if (ctx->out_tail)
    ctx->out_tail->next = m;
  else
    ctx->out_head = m;
  ctx->out_tail = m;
  return 0;
}

/* ---- the node's client ---------------------------------------------------- */

int lmz__fetch_net_open(lmz_node_t *n, char *errmsg) {
  struct lmz_net_opts o = n->opts.fetch;
  n->opts.fetch.allow = NULL; /* borrowed until now: copied by lmz_net_init */
  n->opts.fetch.n_allow = 0;
  if (!o.n_allow)
    return 0; /* egress is opt-in: no list, no client, lmz_fetch throws */
  if (!(n->net = malloc(sizeof *n->net)))
    return LMZ_ENOMEM;
  int rv = lmz_net_init(n->net, n->loop, &o, errmsg);
  if (rv) {
    free(n->net); /* nothing of it is on the loop */
    n->net = NULL;
    lmz__errmsg_wrapf(errmsg, "fetch client");
  }
  return rv;
}

static void net_closed(void *ud) {
  lmz_node_t *n = ud;
  free(n->net);
  n->net = NULL; /* the node's drain waits for this */
}

void lmz__fetch_net_close(lmz_node_t *n) {
  if (n->net && !lmz_net_is_closing(n->net))
    lmz_net_close(n->net, net_closed, n);
}
