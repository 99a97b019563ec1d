/* tests/lib/fakehttp.c - see fakehttp.h. */
#include "lib/fakehttp.h"
#include "lib/fakelisten.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HEAD_MAX (64u * 1024u)
#define BODY_MAX (4u * 1024u * 1024u)

struct conn {
  fakehttp *s;
  uv_tcp_t tcp;
  uv_timer_t delay;
  char *buf;
  size_t len, cap;
  bool answered, closing;
  struct fakehttp_reply reply;
  struct conn *prev, *next;
  int n_open; /* handles not closed yet */
};

struct fakehttp {
  uv_loop_t *loop;
  uv_tcp_t listener;
  fakehttp_handler h;
  void *ud;
  unsigned count;
  struct conn *conns;
  bool closing;
};

static void conn_handle_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->n_open == 0) {
    free(c->buf);
    free(c);
  }
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  fakehttp *s = c->s;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->delay, conn_handle_closed);
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  struct conn *c = h->data;
  (void)sz;
  fake_read_buf(&c->buf, c->len, &c->cap, b);
}

struct wr {
  uv_write_t w;
  char *data;
  struct conn *c;
};

static void write_done(uv_write_t *w, int status) {
  struct wr *r = (struct wr *)w;
  (void)status;
  conn_close(r->c);
  free(r->data);
  free(r);
}

static void send_reply(struct conn *c) {
  const struct fakehttp_reply *rp = &c->reply;
  size_t blen = rp->filler_len ? rp->filler_len
                : rp->body_len  ? rp->body_len
                : rp->body      ? strlen(rp->body) : 0;
  size_t cap = 1024 + (rp->headers ? strlen(rp->headers) : 0) + blen;
  struct wr *r = calloc(1, sizeof *r);
  char *d = malloc(cap);
  if (!r || !d) {
    free(r);
    free(d);
    conn_close(c);
    return;
  }
  int n = snprintf(d, cap, "HTTP/1.1 %d X\r\n%s%sConnection: close\r\n", rp->status ? rp->status : 200,
                   rp->headers ? rp->headers : "", "");
  if (!rp->no_length)
    n += snprintf(d + n, cap - (size_t)n, "Content-Length: %zu\r\n", blen);
  n += snprintf(d + n, cap - (size_t)n, "\r\n");
  if (rp->filler_len)
    memset(d + n, 'x', blen);
  else if (blen)
    memcpy(d + n, rp->body, blen);
  r->data = d;
  r->c = c;
  uv_buf_t b = uv_buf_init(d, (unsigned)((size_t)n + blen));
  if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, write_done)) {
    free(d);
    free(r);
    conn_close(c);
  }
}

static void delay_cb(uv_timer_t *t) { send_reply(t->data); }

static size_t content_length(const char *head) {
  const char *p = head;
  while ((p = strchr(p, '\n'))) {
    p++;
    if (strncasecmp(p, "content-length:", 15) == 0)
      return (size_t)strtoul(p + 15, NULL, 10);
  }
  return 0;
}

/* A complete request in c->buf? Then ask the handler and answer. */
static void try_request(struct conn *c) {
  c->buf[c->len] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end)
    return;
  size_t hl = (size_t)(end - c->buf) + 4, bl = content_length(c->buf);
  if (bl > BODY_MAX || c->len < hl + bl)
    return;
  struct fakehttp_req q = {.head = c->buf, .body = (uint8_t *)c->buf + hl, .body_len = bl};
  char saved = c->buf[hl - 2];
  c->buf[hl - 2] = 0; /* head ends at its blank line */
  sscanf(c->buf, "%15s %1023s", q.method, q.path);
  c->answered = true;
  c->s->count++;
  memset(&c->reply, 0, sizeof c->reply);
  c->s->h(c->s->ud, &q, &c->reply);
  c->buf[hl - 2] = saved;
  if (c->reply.hang)
    return;
  if (c->reply.delay_ms)
    uv_timer_start(&c->delay, delay_cb, c->reply.delay_ms, 0);
  else
    send_reply(c);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = st->data;
  (void)b;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  if (c->len > HEAD_MAX + BODY_MAX) {
    conn_close(c);
    return;
  }
  if (!c->answered)
    try_request(c);
}

static void accept_cb(uv_stream_t *l, int status) {
  fakehttp *s = l->data;
  if (status < 0)
    return;
  struct conn *c = calloc(1, sizeof *c);
  if (!c)
    return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->delay);
  c->tcp.data = c->delay.data = c;
  c->n_open = 2;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb))
    conn_close(c);
}

int fakehttp_start(uv_loop_t *loop, fakehttp_handler h, void *ud,
                   fakehttp **out, int *port) {
  fakehttp *s = calloc(1, sizeof *s);
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
  s->h = h;
  s->ud = ud;
  int rv = fake_listen(loop, &s->listener, accept_cb, port);
  s->listener.data = s;
  if (rv) {
    fakehttp_close(s);
    return rv;
  }
  *out = s;
  return 0;
}

unsigned fakehttp_count(const fakehttp *s) { return s->count; }

size_t fakehttp_header(const struct fakehttp_req *q, const char *name, char *out,
                       size_t cap) {
  size_t nl = strlen(name), n = 0, len = 0;
  out[0] = '\0';
  for (const char *p = strchr(q->head, '\n'); p; p = strchr(p, '\n')) {
    p++;
    if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
      continue;
    const char *v = p + nl + 1, *e = strpbrk(v, "\r\n");
    v += strspn(v, " \t");
    size_t vl = e ? (size_t)(e - v) : strlen(v);
    if (len < cap)
      len += (size_t)snprintf(out + len, cap - len, "%s%.*s", n ? "|" : "",
                              (int)vl, v);
    n++;
  }
  return n;
}

static void listener_closed(uv_handle_t *h) { free(h->data); }

void fakehttp_close(fakehttp *s) {
  while (s->conns)
    conn_close(s->conns);
  uv_close((uv_handle_t *)&s->listener, listener_closed);
}
