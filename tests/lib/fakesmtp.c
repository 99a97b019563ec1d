/* tests/lib/fakesmtp.c - see fakesmtp.h. */
#include "lib/fakesmtp.h"
#include "lib/fakelisten.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BUF_MAX (8u * 1024u * 1024u)

struct conn {
  fakesmtp *s;
  uv_tcp_t tcp;
  char *buf;
  size_t len, cap;
  bool in_data, closing, in_auth;
  struct conn *prev, *next;
};

struct fakesmtp {
  uv_loop_t *loop;
  uv_tcp_t listener;
  struct fakesmtp_opts o;
  unsigned conns_seen, messages;
  char from[512], rcpt[512];
  char *data;
  bool auth;
  struct conn *conns;
};

static void conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  free(c->buf);
  free(c);
}

static void conn_close(struct conn *c) {
  if (c->closing)
    return;
  c->closing = true;
  if (c->prev)
    c->prev->next = c->next;
  else
    c->s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

struct wr {
  uv_write_t w;
  char *data;
  struct conn *c;
  bool close_after;
};

static void write_done(uv_write_t *w, int status) {
  struct wr *r = (struct wr *)w;
  if (r->close_after || status < 0)
    conn_close(r->c);
  free(r->data);
  free(r);
}

static void reply(struct conn *c, const char *text, bool close_after) {
  struct wr *r = calloc(1, sizeof *r);
  if (!r || !(r->data = strdup(text))) {
    free(r);
    conn_close(c);
    return;
  }
  r->c = c;
  r->close_after = close_after;
  uv_buf_t b = uv_buf_init(r->data, (unsigned)strlen(r->data));
  if (uv_write(&r->w, (uv_stream_t *)&c->tcp, &b, 1, write_done)) {
    free(r->data);
    free(r);
    conn_close(c);
  }
}

static void code_reply(struct conn *c, int code, const char *ok) {
  char line[64];
  if (code && code != 250)
    snprintf(line, sizeof line, "%d refused by fake\r\n", code);
  reply(c, code && code != 250 ? line : ok, false);
}

/* The message body: dot-unstuffed (RFC 5321 4.5.2), without the end line. */
static void end_data(struct conn *c, size_t end) {
  fakesmtp *s = c->s;
  free(s->data);
  s->data = malloc(end + 1);
  size_t w = 0;
  for (size_t i = 0; s->data && i < end; i++) {
    if (c->buf[i] == '.' && (i == 0 || c->buf[i - 1] == '\n'))
      continue;
    s->data[w++] = c->buf[i];
  }
  if (s->data)
    s->data[w] = 0;
  if (!s->o.data_code || s->o.data_code == 250)
    s->messages++;
  code_reply(c, s->o.data_code, "250 queued\r\n");
}

static void command(struct conn *c, const char *line) {
  fakesmtp *s = c->s;
  if (c->in_auth) { /* the PLAIN credentials after our 334 */
    c->in_auth = false;
    s->auth = true;
    reply(c, "235 ok\r\n", false);
  } else if (!strcasecmp(line, "AUTH PLAIN")) {
    c->in_auth = true;
    reply(c, "334 \r\n", false);
  } else if (!strncasecmp(line, "EHLO", 4))
    reply(c, "250-fake\r\n250-AUTH PLAIN\r\n250 SIZE 10000000\r\n", false);
  else if (!strncasecmp(line, "HELO", 4) || !strncasecmp(line, "RSET", 4) ||
           !strncasecmp(line, "NOOP", 4))
    reply(c, "250 ok\r\n", false);
  else if (!strncasecmp(line, "AUTH", 4)) {
    s->auth = true;
    reply(c, "235 ok\r\n", false);
  } else if (!strncasecmp(line, "MAIL FROM:", 10)) {
    snprintf(s->from, sizeof s->from, "%s", line + 10);
    reply(c, "250 ok\r\n", false);
  } else if (!strncasecmp(line, "RCPT TO:", 8)) {
    snprintf(s->rcpt, sizeof s->rcpt, "%s", line + 8);
    code_reply(c, s->o.rcpt_code, "250 ok\r\n");
  } else if (!strncasecmp(line, "DATA", 4)) {
    c->in_data = true;
    reply(c, "354 go on\r\n", false);
  } else if (!strncasecmp(line, "QUIT", 4))
    reply(c, "221 bye\r\n", true);
  else
    reply(c, "502 not implemented\r\n", false);
}

static void consume(struct conn *c) {
  for (;;) {
    c->buf[c->len] = 0;
    if (c->in_data) {
      char *end = strstr(c->buf, "\r\n.\r\n");
      if (!end && !(c->len >= 3 && !memcmp(c->buf, ".\r\n", 3)))
        return;
      size_t body = end ? (size_t)(end - c->buf) + 2 : 0;
      size_t used = end ? body + 3 : 3;
      end_data(c, body);
      c->in_data = false;
      memmove(c->buf, c->buf + used, c->len - used);
      c->len -= used;
      continue;
    }
    char *nl = strstr(c->buf, "\r\n");
    if (!nl)
      return;
    *nl = 0;
    command(c, c->buf);
    size_t used = (size_t)(nl - c->buf) + 2;
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
  }
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  struct conn *c = h->data;
  (void)sz;
  fake_read_buf(&c->buf, c->len, &c->cap, b);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b) {
  struct conn *c = st->data;
  (void)b;
  if (nread < 0 || c->len + (size_t)nread > BUF_MAX) {
    conn_close(c);
    return;
  }
  c->len += (size_t)nread;
  consume(c);
}

static void accept_cb(uv_stream_t *l, int status) {
  fakesmtp *s = l->data;
  struct conn *c = status < 0 ? NULL : calloc(1, sizeof *c);
  if (!c)
    return;
  c->s = s;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  c->next = s->conns;
  if (s->conns)
    s->conns->prev = c;
  s->conns = c;
  s->conns_seen++;
  if (uv_accept(l, (uv_stream_t *)&c->tcp) ||
      uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) {
    conn_close(c);
    return;
  }
  if (!s->o.hang)
    reply(c, "220 fake ESMTP\r\n", false);
}

int fakesmtp_start(uv_loop_t *loop, const struct fakesmtp_opts *o,
                   fakesmtp **out, int *port) {
  fakesmtp *s = calloc(1, sizeof *s);
  if (!s)
    return UV_ENOMEM;
  s->loop = loop;
  if (o)
    s->o = *o;
  int rv = fake_listen(loop, &s->listener, accept_cb, port);
  s->listener.data = s;
  if (rv) {
    fakesmtp_close(s);
    return rv;
  }
  *out = s;
  return 0;
}

unsigned fakesmtp_connections(const fakesmtp *s) { return s->conns_seen; }
unsigned fakesmtp_messages(const fakesmtp *s) { return s->messages; }
const char *fakesmtp_mail_from(const fakesmtp *s) { return s->from; }
const char *fakesmtp_rcpt(const fakesmtp *s) { return s->rcpt; }
const char *fakesmtp_data(const fakesmtp *s) { return s->data ? s->data : ""; }
bool fakesmtp_saw_auth(const fakesmtp *s) { return s->auth; }

static void listener_closed(uv_handle_t *h) {
  fakesmtp *s = h->data;
  free(s->data);
  free(s);
}

void fakesmtp_close(fakesmtp *s) {
  while (s->conns)
    conn_close(s->conns);
  uv_close((uv_handle_t *)&s->listener, listener_closed);
}
