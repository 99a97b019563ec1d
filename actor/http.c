/* actor/http.c - the runtime's entry points for the gateway: HTTP requests
 * run as turns of an actor (lmz_node_http, lmz/http.h), and the gateway
 * hooks an application registers (lmz_register_gateway_hooks).
 *
 * Happy path: lmz_node_http copies the request into a fresh message arena
 * (method, path, query, headers, body) -> the message is delivered like a
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
#include "lmz/gateway.h"
#include "lmz/http.h"

struct lmz__http_turn {
  struct lmz_request req;    /* copied into the message arena */
  struct lmz_response res;   /* filled by on_request */
  lmz_node_http_cb cb;
  void *arg;
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

/* The message's reply: runs once, after the turn's writes are durable (or
 * when the message could not be delivered). */
static void http_reply(void *arg, int status, bool ok, const lmz_value *value) {
  struct lmz__http_turn *t = arg;
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

int lmz_node_http(lmz_node *n, const char *binding, const char *instance,
                  const struct lmz_request *req, lmz_node_http_cb cb,
                  void *arg, char *errmsg) {
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
    struct lmz_request r = *req;
    r.binding = b->name;
    r.instance = instance;
    rv = copy_request(m->arena, &r, &t->req);
  }
  if (!rv && !(m->instance = lmz_arena_strndup(m->arena, instance, strlen(instance))))
    rv = LMZ_ENOMEM;
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
  m->cctx.state = lmz_object(m->arena); /* no mesh context: present = false */
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

const struct lmz_gateway_hooks *lmz_node_gateway_hooks(lmz_node *n) {
  return n->gw_hooks;
}
