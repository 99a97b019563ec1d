/* clients/c/token.c - lmzc_dev_token: GET /_lmz/dev-token from an
 * `lmzd --dev` (the gateway answers {"access_token","sub",...} there and
 * nowhere else), on the caller's loop.
 *
 * Happy path: resolve (numeric at once) -> connect -> write the request
 * (Connection: close) -> http-parser reads the answer into `body` -> on
 * message complete the handles close -> in the last close callback the
 * JSON body is parsed and the callback gets token and sub.
 * Failure modes (each ends the same way, the callback runs once, after
 * every handle closed): resolve/connect/read/write errors (libuv codes);
 * no complete answer within 10 s (LMZ_ETIMEOUT); a non-200 status
 * (LMZ_EAUTH: the node is not in --dev, or refuses); a body over 16 KiB,
 * malformed HTTP or JSON without string access_token and sub
 * (LMZ_EBADMSG). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/c/lmzc_int.h"

#define TOK_TIMEOUT_MS 10000
#define TOK_BODY_MAX (16u * 1024u)

struct tok {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;
  struct lmz__cc_addr addr;
  http_parser p;
  lmz_buf req, body;
  int open_handles;
  bool gai_active, ending;
  int status;
  lmzc_token_cb cb;
  void *data;
  char errmsg[LMZ_ERRMSG_LEN];
  char rbuf[4096];
};

static void tok_deliver(struct tok *t) {
  lmz_arena *a = t->status ? NULL : lmz_arena_new();
  lmz_json *doc = NULL;
  const lmz_json *tk = NULL, *sub = NULL;
  if (a && !lmz_json_parse(a, (const char *)t->body.data, t->body.len, NULL, &doc,
                           NULL) && doc->type == LMZ_JSON_OBJECT) {
    tk = lmz_json_get(doc, "access_token");
    sub = lmz_json_get(doc, "sub");
  }
  if (!t->status && (!tk || tk->type != LMZ_JSON_STRING || !sub ||
                     sub->type != LMZ_JSON_STRING)) {
    t->status = a ? LMZ_EBADMSG : LMZ_ENOMEM;
    lmz__errmsg_printf(t->errmsg, "dev token: unexpected answer");
  }
  if (t->status)
    t->cb(t->data, t->status, NULL, NULL, t->errmsg);
  else
    t->cb(t->data, 0, tk->u.str.p, sub->u.str.p, NULL);
  lmz_arena_free(a);
  lmz_buf_free(&t->req);
  lmz_buf_free(&t->body);
  free(t);
}

static void tok_closed(uv_handle_t *h) {
  struct tok *t = h->data;
  if (--t->open_handles == 0 && !t->gai_active)
    tok_deliver(t);
}

static void tok_end(struct tok *t, int status) {
  if (t->ending)
    return;
  t->ending = true;
  t->status = status;
  if (t->gai_active)
    uv_cancel((uv_req_t *)&t->gai);
  uv_close((uv_handle_t *)&t->tcp, tok_closed);
  uv_close((uv_handle_t *)&t->timer, tok_closed);
}

static int tok_on_body(http_parser *p, const char *at, size_t len) {
  struct tok *t = p->data;
  if (t->body.len + len > TOK_BODY_MAX)
    return -1;
  return lmz_buf_append(&t->body, at, len) ? -1 : 0;
}

static int tok_on_complete(http_parser *p) {
  struct tok *t = p->data;
  if (p->status_code != 200) {
    lmz__errmsg_printf(t->errmsg, "dev token: HTTP %u (is lmzd running with --dev?)",
                       p->status_code);
    tok_end(t, LMZ_EAUTH);
  } else {
    tok_end(t, 0);
  }
  return 0;
}

static const http_parser_settings tok_settings = {
    .on_body = tok_on_body,
    .on_message_complete = tok_on_complete,
};

static void tok_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  struct tok *t = h->data;
  *b = uv_buf_init(t->rbuf, sizeof t->rbuf);
}

static void tok_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct tok *t = s->data;
  if (t->ending || n == 0)
    return;
  size_t len = n > 0 ? (size_t)n : 0; /* 0 tells http-parser about EOF */
  size_t used = http_parser_execute(&t->p, &tok_settings, b->base, len);
  if (t->ending)
    return;
  if (HTTP_PARSER_ERRNO(&t->p) != HPE_OK || used != len) {
    lmz__errmsg_printf(t->errmsg, "dev token: bad HTTP answer: %s",
                       http_errno_description(HTTP_PARSER_ERRNO(&t->p)));
    tok_end(t, LMZ_EBADMSG);
  } else if (n < 0) {
    lmz__errmsg_printf(t->errmsg, "dev token: %s before a whole answer",
                       uv_strerror((int)n));
    tok_end(t, n == UV_EOF ? LMZ_ECLOSED : (int)n);
  }
}

static void tok_written(uv_write_t *w, int status) {
  struct tok *t = w->data;
  if (status && !t->ending) {
    lmz__errmsg_printf(t->errmsg, "dev token: write: %s", uv_strerror(status));
    tok_end(t, status);
  }
}

static void tok_connected(uv_connect_t *req, int status) {
  struct tok *t = req->data;
  if (t->ending)
    return;
  int rv = status;
  if (!rv)
    rv = uv_read_start((uv_stream_t *)&t->tcp, tok_alloc, tok_read);
  uv_buf_t b = uv_buf_init((char *)t->req.data, (unsigned)t->req.len);
  t->wreq.data = t;
  if (!rv)
    rv = uv_write(&t->wreq, (uv_stream_t *)&t->tcp, &b, 1, tok_written);
  if (rv) {
    lmz__errmsg_printf(t->errmsg, "dev token: connect %s: %s", t->addr.hostport,
                       uv_strerror(rv));
    tok_end(t, rv);
  }
}

static int tok_connect(struct tok *t, const struct sockaddr *sa) {
  t->creq.data = t;
  int rv = uv_tcp_connect(&t->creq, &t->tcp, sa, tok_connected);
  if (rv)
    lmz__errmsg_printf(t->errmsg, "dev token: connect %s: %s", t->addr.hostport,
                       uv_strerror(rv));
  return rv;
}

static void tok_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  struct tok *t = req->data;
  t->gai_active = false;
  if (t->ending) {
    uv_freeaddrinfo(res);
    if (t->open_handles == 0)
      tok_deliver(t);
    return;
  }
  int rv = status ? status : tok_connect(t, res->ai_addr);
  if (status)
    lmz__errmsg_printf(t->errmsg, "dev token: resolve %s: %s", t->addr.host,
                       uv_strerror(status));
  uv_freeaddrinfo(res);
  if (rv)
    tok_end(t, rv);
}

static void tok_timeout(uv_timer_t *h) {
  struct tok *t = h->data;
  lmz__errmsg_printf(t->errmsg, "dev token: no answer within %d ms", TOK_TIMEOUT_MS);
  tok_end(t, LMZ_ETIMEOUT);
}

/* Resolves or connects; an error here is reported through the callback. */
static void tok_start(struct tok *t) {
  struct sockaddr_storage sa;
  int rv;
  if (lmz__cc_numeric(&t->addr, &sa)) {
    rv = tok_connect(t, (const struct sockaddr *)&sa);
  } else {
    char port[8];
    snprintf(port, sizeof port, "%d", t->addr.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    t->gai.data = t;
    rv = uv_getaddrinfo(t->loop, &t->gai, tok_resolved, t->addr.host, port, &hints);
    t->gai_active = rv == 0;
    if (rv)
      lmz__errmsg_printf(t->errmsg, "dev token: resolve %s: %s", t->addr.host,
                         uv_strerror(rv));
  }
  if (rv)
    tok_end(t, rv);
}

int lmzc_dev_token(uv_loop_t *loop, const char *url, lmzc_token_cb cb,
                   void *data) {
  if (!loop || !cb)
    return LMZ_EINVAL;
  struct tok *t = calloc(1, sizeof *t);
  if (!t)
    return LMZ_ENOMEM;
  int rv = lmz__cc_url_parse(url, &t->addr, NULL);
  if (!rv)
    rv = lmz_buf_printf(&t->req,
                        "GET /_lmz/dev-token HTTP/1.1\r\nHost: %s\r\n"
                        "Accept: application/json\r\nConnection: close\r\n\r\n",
                        t->addr.hostport);
  if (!rv)
    rv = uv_tcp_init(loop, &t->tcp);
  if (rv) {
    lmz_buf_free(&t->req);
    free(t);
    return rv;
  }
  uv_timer_init(loop, &t->timer);
  t->loop = loop;
  t->open_handles = 2;
  t->tcp.data = t->timer.data = t;
  t->cb = cb;
  t->data = data;
  http_parser_init(&t->p, HTTP_RESPONSE);
  t->p.data = t;
  uv_timer_start(&t->timer, tok_timeout, TOK_TIMEOUT_MS, 0);
  tok_start(t); /* failures end through the callback, never synchronously */
  return 0;
}
