/* gateway/http_server.c - HTTP/1.1 server on libuv + http-parser (http.h).
 *
 * Happy path: accept -> read into the server's one 64 KiB read buffer ->
 * http_parser_execute; the parser callbacks copy the target, header names
 * and values into conn->head and the body into conn->body, checking limits
 * as bytes arrive; on_message_complete pauses the parser, and the request
 * goes to the app. Its answer (lmz_http_respond, now or later) is formatted
 * into conn->out; a uv_prepare hook (once per loop iteration, before the
 * loop blocks) flushes every dirty connection with one uv_write, then the
 * next pipelined request is parsed (answers to pipelined requests answered
 * at once leave in the same write). When a write completes and more output
 * is waiting, the next write starts from the write callback.
 *
 * Failure modes and what happens:
 *  1. malformed / oversize / unsupported request: the matching 4xx/5xx (see
 *     http.h), then FIN, a short drain of what the client still sends
 *     (lingering close, so the answer is not lost to a RST), then close;
 *     nothing reaches the app. Bytes of a further pipelined request are
 *     ignored.
 *  2. slow client: a per-connection timer (header, body, idle, write-stall
 *     and linger deadlines); 408 while a request is incomplete, silent close
 *     when idle.
 *  3. client gone (reset / error) while the app holds its request: the
 *     connection closes; on_conn_close(had_pending = true) tells the app.
 *     A half-close (EOF) while the app works is allowed: the answer is
 *     written, then the connection closes.
 *  4. a client that pipelines without reading answers: parsing pauses when
 *     more than OUT_HIGH bytes wait to be written, reading pauses when more
 *     than IN_CAP bytes of input wait to be parsed; memory per connection
 *     stays bounded.
 *  5. too many connections: 503 and close, before any parsing.
 *  6. app callbacks may respond, close the connection or close the server:
 *     nothing is freed synchronously (the uv_close callbacks free), and every
 *     loop that calls out re-checks the connection's state afterwards.
 *  7. the address cannot be bound (taken, bad host): init fails before any
 *     handle exists (the socket is bound and listens before the loop sees
 *     it), so nothing is left to close. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "gateway/http_int.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.gateway.http");

#define READ_BUF_LEN (64u * 1024u)
#define IN_CAP (64u * 1024u)       /* unparsed input kept per connection */
#define OUT_HIGH (1u << 20)        /* pipelined parsing pauses above this */
#define BUF_KEEP_CAP (16u * 1024u) /* idle buffers above this are freed */
#define LINGER_MS 2000u            /* drain after FIN before closing */

/* ---- intrusive lists ----------------------------------------------------- */

static void q_init(struct lmz__qnode *q) { q->next = q->prev = q; }
static bool q_linked(const struct lmz__qnode *q) { return q->next != q; }
static void q_remove(struct lmz__qnode *q) {
  q->prev->next = q->next;
  q->next->prev = q->prev;
  q_init(q);
}
static void q_push(struct lmz__qnode *head, struct lmz__qnode *q) {
  q->prev = head->prev;
  q->next = head;
  head->prev->next = q;
  head->prev = q;
}
#define Q_CONN(q, field) lmz_container_of(q, struct lmz_http_conn_s, field)

/* ---- small helpers ------------------------------------------------------- */

uint64_t lmz_http_server_now(const lmz_http_server_t *srv) {
  const struct lmz_http_options *o = &srv->priv.opts;
  return o->now_ms ? o->now_ms(o->clock_data) : uv_now(srv->loop);
}

static uint64_t now_ms(const lmz_http_conn_t *c) {
  return lmz_http_server_now(c->srv);
}

static void arm(lmz_http_conn_t *c, uint32_t ms);

static void buf_trim(lmz_buf *b) {
  b->len = 0;
  if (b->cap > BUF_KEEP_CAP)
    lmz_buf_free(b);
}

const char *lmz_http_status_text(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 304:
    return "Not Modified";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 417:
    return "Expectation Failed";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
}

/* ---- request accessors --------------------------------------------------- */

const char *lmz_http_header_get(const struct lmz_http_request *req,
                                const char *name, size_t *len) {
  size_t n = strlen(name);
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct lmz_http_header *h = &req->headers[i];
    if (h->name_len == n && strncasecmp(h->name, name, n) == 0) {
      if (len)
        *len = h->value_len;
      return h->value;
    }
  }
  return NULL;
}

static bool is_blank(char c) { return c == ' ' || c == '\t'; }

bool lmz_http_header_has_token(const struct lmz_http_request *req,
                               const char *name, const char *token) {
  size_t tn = strlen(token), nn = strlen(name);
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct lmz_http_header *h = &req->headers[i];
    if (h->name_len != nn || strncasecmp(h->name, name, nn) != 0)
      continue;
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) { /* each comma-separated element, blanks trimmed */
      const char *comma = memchr(p, ',', (size_t)(end - p));
      const char *e = comma ? comma : end;
      const char *s = p;
      while (s < e && is_blank(*s))
        s++;
      const char *t = e;
      while (t > s && is_blank(t[-1]))
        t--;
      if ((size_t)(t - s) == tn && strncasecmp(s, token, tn) == 0)
        return true;
      p = comma ? comma + 1 : end;
    }
  }
  return false;
}

/* ---- output -------------------------------------------------------------- */

void lmz__http_conn_dirty(lmz_http_conn_t *c) {
  if (!q_linked(&c->dirty) && c->state != LMZ__C_CLOSING)
    q_push(&c->srv->priv.dirty, &c->dirty);
}

void lmz__http_conn_resume(lmz_http_conn_t *c) {
  if (!q_linked(&c->resume) && c->state != LMZ__C_CLOSING)
    q_push(&c->srv->priv.resume, &c->resume);
}

static void on_write(uv_write_t *req, int status);
static void written(lmz_http_conn_t *c);

/* Most writes complete at once (a socket buffer has room): uv_try_write
 * sends them without a write request, whose completion would re-arm the
 * socket's epoll entry (libuv's drain: one epoll_ctl per write, a
 * measurable share of a broadcast's fan-out to many clients). What does
 * not fit goes on with uv_write and on_write, as before. */
static void flush(lmz_http_conn_t *c) {
  if (c->writing || c->out.len == 0 || c->state == LMZ__C_CLOSING)
    return;
  lmz_buf t = c->wbuf; /* swap: out becomes the write, wbuf collects */
  c->wbuf = c->out;
  c->out = t;
  c->srv->priv.m.writes++;
  c->srv->priv.m.bytes_out += c->wbuf.len;
  uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
  int n = c->tcp.write_queue_size == 0 ? uv_try_write((uv_stream_t *)&c->tcp, &b, 1)
                                       : UV_EAGAIN;
  if (n == (int)b.len) {
    c->last_progress_ms = now_ms(c);
    written(c);
    return;
  }
  int rv = n < 0 && n != UV_EAGAIN ? n : 0;
  if (!rv && n > 0) {
    b.base += n;
    b.len -= (unsigned)n;
  }
  if (!rv)
    rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rv) {
    LMZ_LOG_DEBUG(&log_ns, "conn %llu: write: %s", (unsigned long long)c->id,
                  uv_strerror(rv));
    lmz__http_conn_close(c);
    return;
  }
  c->writing = true;
  c->last_progress_ms = now_ms(c); /* a stall is counted from here */
  c->last_wq = c->tcp.write_queue_size;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  lmz_http_conn_t *c = req->handle->data;
  if (c->state == LMZ__C_CLOSING)
    return;
  if (status < 0 || c->peer_eof)
    lmz__http_conn_close(c);
  else
    arm(c, LINGER_MS); /* keep reading (and dropping) until EOF or then */
}

/* DRAIN, all written: FIN, then drain until EOF or the linger timeout. */
static void begin_shutdown(lmz_http_conn_t *c) {
  if (c->shut)
    return;
  c->shut = true;
  if (c->peer_eof ||
      uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
    lmz__http_conn_close(c);
}

static void on_write(uv_write_t *req, int status) {
  lmz_http_conn_t *c = req->handle->data;
  c->writing = false;
  if (c->state == LMZ__C_CLOSING) {
    buf_trim(&c->wbuf);
    return;
  }
  if (status < 0) {
    buf_trim(&c->wbuf);
    LMZ_LOG_DEBUG(&log_ns, "conn %llu: write failed: %s",
                  (unsigned long long)c->id, uv_strerror(status));
    lmz__http_conn_close(c);
    return;
  }
  c->last_progress_ms = now_ms(c);
  written(c);
}

/* c->wbuf is on the wire (on_write, or at once in flush). */
static void written(lmz_http_conn_t *c) {
  buf_trim(&c->wbuf);
  flush(c); /* more output queued meanwhile: restart at once */
  if (c->state == LMZ__C_CLOSING)
    return;
  if (c->state == LMZ__C_DRAIN && !c->writing && c->out.len == 0)
    begin_shutdown(c);
  else if (c->state == LMZ__C_WS)
    lmz__ws_on_written(c->ws);
  else if (c->in.len > 0 &&
           (c->state == LMZ__C_HEAD || c->state == LMZ__C_BODY))
    lmz__http_conn_resume(c); /* parsing paused on OUT_HIGH */
  if (c->state != LMZ__C_CLOSING)
    lmz__http_conn_update_reading(c);
}

/* ---- closing ------------------------------------------------------------- */

static void maybe_finish_server(lmz_http_server_t *srv) {
  if (srv->priv.closing && srv->priv.n_handles == 0) {
    free(srv->priv.rbuf);
    srv->priv.rbuf = NULL;
    if (srv->priv.close_cb)
      srv->priv.close_cb(srv);
  }
}

static void conn_free(lmz_http_conn_t *c) {
  lmz_buf_free(&c->head);
  lmz_buf_free(&c->hidx);
  lmz_buf_free(&c->body);
  lmz_buf_free(&c->in);
  lmz_buf_free(&c->out);
  lmz_buf_free(&c->wbuf);
  free(c->hdrs);
  free(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  lmz_http_conn_t *c = h->data;
  lmz_http_server_t *srv = c->srv;
  srv->priv.n_handles--;
  if (++c->n_closed < 2)
    return;
  srv->priv.m.conns_open--;
  if (c->ws) {
    lmz__ws_finish(c->ws); /* the app's on_close */
    c->ws = NULL;
  } else if (c->seen && srv->priv.opts.on_conn_close) {
    srv->priv.opts.on_conn_close(srv, c, c->pending);
  }
  conn_free(c);
  maybe_finish_server(srv);
}

void lmz__http_conn_close(lmz_http_conn_t *c) {
  if (c->state == LMZ__C_CLOSING)
    return;
  c->state = LMZ__C_CLOSING;
  q_remove(&c->all);
  q_remove(&c->dirty);
  q_remove(&c->resume);
  uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

void lmz_http_conn_close(lmz_http_conn_t *conn) { lmz__http_conn_close(conn); }

void lmz__http_conn_drain(lmz_http_conn_t *c) {
  if (c->state == LMZ__C_CLOSING || c->state == LMZ__C_DRAIN)
    return;
  c->state = LMZ__C_DRAIN;
  c->in.len = 0;
  q_remove(&c->resume);
  arm(c, c->srv->priv.opts.idle_timeout_ms); /* write stall bound */
  if (!c->writing && c->out.len == 0)
    begin_shutdown(c);
  else
    lmz__http_conn_dirty(c);
}

/* ---- responses ----------------------------------------------------------- */

static bool token_char(unsigned char ch) {
  return ch > 32 && ch < 127 && !strchr("()<>@,;:\\\"/[]?={}", ch);
}

static bool header_ok(const struct lmz_http_header *h) {
  static const char *const reserved[] = {"content-length", "connection",
                                         "transfer-encoding"};
  if (!h->name || h->name_len == 0 || (!h->value && h->value_len))
    return false;
  for (size_t i = 0; i < h->name_len; i++)
    if (!token_char((unsigned char)h->name[i]))
      return false;
  for (size_t i = 0; i < h->value_len; i++)
    if (h->value[i] == '\r' || h->value[i] == '\n' || h->value[i] == '\0')
      return false;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(reserved); i++)
    if (strlen(reserved[i]) == h->name_len &&
        strncasecmp(h->name, reserved[i], h->name_len) == 0)
      return false;
  return true;
}

static bool text_ok(const char *s) { return !s || !strpbrk(s, "\r\n"); }

/* Formats a whole response into conn->out. */
static int put_response(lmz_http_conn_t *c, const struct lmz_http_response *r,
                        bool close, bool keep_alive_hdr) {
  lmz_buf *o = &c->out;
  size_t start = o->len;
  int rv =
      lmz_buf_printf(o, "HTTP/1.1 %d %s\r\n", r->status,
                     r->reason ? r->reason : lmz_http_status_text(r->status));
  for (size_t i = 0; !rv && i < r->n_headers; i++) {
    const struct lmz_http_header *h = &r->headers[i];
    rv = lmz_buf_append(o, h->name, h->name_len);
    rv = rv ? rv : lmz_buf_append(o, ": ", 2);
    rv = rv ? rv : lmz_buf_append(o, h->value, h->value_len);
    rv = rv ? rv : lmz_buf_append(o, "\r\n", 2);
  }
  if (!rv && r->content_type)
    rv = lmz_buf_printf(o, "Content-Type: %s\r\n", r->content_type);
  bool no_body = r->status < 200 || r->status == 204 || r->status == 304;
  if (!rv && !no_body)
    rv = lmz_buf_printf(o, "Content-Length: %zu\r\n", r->body_len);
  if (!rv && (close || keep_alive_hdr))
    rv = lmz_buf_append_str(o, close ? "Connection: close\r\n"
                                     : "Connection: keep-alive\r\n");
  if (!rv)
    rv = lmz_buf_append(o, "\r\n", 2);
  if (!rv && !no_body && !c->head_method && r->body_len)
    rv = lmz_buf_append(o, r->body, r->body_len);
  if (rv)
    o->len = start;
  return rv;
}

static void count_status(lmz_http_server_t *srv, int status) {
  srv->priv.m.responses++;
  if (status >= 500)
    srv->priv.m.responses_5xx++;
  else if (status >= 400)
    srv->priv.m.responses_4xx++;
}

/* An answer chosen by the server itself; the connection then closes. */
static void answer_error(lmz_http_conn_t *c, int status) {
  char body[80];
  snprintf(body, sizeof body, "%s\n", lmz_http_status_text(status));
  struct lmz_http_header ver = {"Sec-WebSocket-Version", 21, "13", 2};
  struct lmz_http_response r = {.status = status,
                                .content_type = "text/plain",
                                .body = body,
                                .body_len = strlen(body),
                                .headers = status == 426 ? &ver : NULL,
                                .n_headers = status == 426 ? 1 : 0};
  c->srv->priv.m.parse_errors += status != 408 && status != 503;
  count_status(c->srv, status);
  c->head_method = false;
  c->pending = false;
  (void)put_response(c, &r, true, false);
  lmz__http_conn_drain(c);
}

int lmz_http_respond(lmz_http_conn_t *c, const struct lmz_http_response *r) {
  if (c->state == LMZ__C_CLOSING || c->state == LMZ__C_DRAIN)
    return c->pending ? LMZ_ECLOSED : LMZ_EINVAL;
  if (!c->pending || c->state != LMZ__C_APP)
    return LMZ_EINVAL;
  if (r->status < 200 || r->status > 599 || !text_ok(r->reason) ||
      !text_ok(r->content_type) || (!r->body && r->body_len))
    return LMZ_EINVAL;
  for (size_t i = 0; i < r->n_headers; i++)
    if (!header_ok(&r->headers[i]))
      return LMZ_EINVAL;
  lmz_http_server_t *srv = c->srv;
  bool close = r->close || !c->req.keep_alive || c->peer_eof ||
               c->upgrade_req || srv->priv.closing;
  bool ka_hdr = !close && c->req.http_minor == 0; /* HTTP/1.0 keep-alive */
  int rv = put_response(c, r, close, ka_hdr);
  if (rv)
    return rv;
  count_status(srv, r->status);
  c->pending = false;
  buf_trim(&c->body); /* a big request's memory is not kept while idle */
  if (c->head.cap > BUF_KEEP_CAP) {
    lmz_buf_free(&c->head);
    lmz_buf_free(&c->hidx);
  }
  if (close) {
    lmz__http_conn_drain(c);
    return 0;
  }
  c->state = LMZ__C_HEAD;
  lmz__http_conn_dirty(c);
  arm(c, srv->priv.opts.idle_timeout_ms);
  if (c->in.len > 0)
    lmz__http_conn_resume(c); /* a pipelined request is waiting */
  lmz__http_conn_update_reading(c);
  return 0;
}

int lmz_http_respond_text(lmz_http_conn_t *conn, int status,
                          const char *content_type, const char *body) {
  struct lmz_http_response r = {.status = status,
                                .content_type = content_type,
                                .body = body,
                                .body_len = body ? strlen(body) : 0};
  return lmz_http_respond(conn, &r);
}

void lmz_http_conn_set_data(lmz_http_conn_t *conn, void *data) {
  conn->data = data;
}
void *lmz_http_conn_data(const lmz_http_conn_t *conn) { return conn->data; }
lmz_http_server_t *lmz_http_conn_server(const lmz_http_conn_t *conn) {
  return conn->srv;
}

/* ---- parser callbacks ---------------------------------------------------- */

#define CONN(p) ((lmz_http_conn_t *)(p)->data)

/* Fails the parse with `status` (answered after execute returns). */
static int fail(lmz_http_conn_t *c, int status) {
  if (!c->err_status)
    c->err_status = status;
  return 1;
}

static int on_message_begin(http_parser *p) {
  lmz_http_conn_t *c = CONN(p);
  c->in_msg = true;
  c->head.len = c->hidx.len = c->body.len = 0;
  c->head_bytes = 0;
  c->last_value = false;
  c->headers_done = false;
  c->err_status = 0;
  if (c->n_requests > 0) /* the first request runs on the accept deadline */
    arm(c, c->srv->priv.opts.header_timeout_ms);
  return 0;
}

/* Counts head bytes against max_header_bytes (431). */
static int head_add(lmz_http_conn_t *c, size_t n) {
  c->head_bytes += n;
  return c->head_bytes > c->srv->priv.opts.max_header_bytes ? fail(c, 431) : 0;
}

static int on_url(http_parser *p, const char *at, size_t n) {
  lmz_http_conn_t *c = CONN(p);
  if (c->head.len + n > c->srv->priv.opts.max_url_bytes)
    return fail(c, 414);
  if (head_add(c, n) || lmz_buf_append(&c->head, at, n))
    return fail(c, 431);
  return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n) {
  lmz_http_conn_t *c = CONN(p);
  if (head_add(c, n + 4)) /* ": " and CRLF */
    return 1;
  if (c->headers_done)
    return 0; /* chunked trailers: counted, not kept (head must not move) */
  struct lmz__hdr_off *h;
  if (c->last_value || c->hidx.len == 0) { /* a new header */
    size_t count = c->hidx.len / sizeof *h;
    if (count >= c->srv->priv.opts.max_headers)
      return fail(c, 431);
    if (lmz_buf_putc(&c->head, '\0') || /* ends the target / last value */
        lmz_buf_reserve(&c->hidx, sizeof *h))
      return fail(c, 431);
    h = (struct lmz__hdr_off *)(c->hidx.data + c->hidx.len);
    c->hidx.len += sizeof *h;
    memset(h, 0, sizeof *h);
    h->name_off = c->head.len;
    c->last_value = false;
  }
  h = (struct lmz__hdr_off *)(c->hidx.data + c->hidx.len) - 1;
  h->name_len += n;
  return lmz_buf_append(&c->head, at, n) ? fail(c, 431) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n) {
  lmz_http_conn_t *c = CONN(p);
  if (head_add(c, n))
    return 1;
  if (c->headers_done)
    return 0;
  struct lmz__hdr_off *h =
      (struct lmz__hdr_off *)(c->hidx.data + c->hidx.len) - 1;
  if (!c->last_value) {
    if (lmz_buf_putc(&c->head, '\0'))
      return fail(c, 431);
    h->value_off = c->head.len;
    c->last_value = true;
  }
  h->value_len += n;
  return lmz_buf_append(&c->head, at, n) ? fail(c, 431) : 0;
}

/* Builds req.headers (pointers into head, which no longer grows). */
static int build_headers(lmz_http_conn_t *c) {
  size_t n = c->hidx.len / sizeof(struct lmz__hdr_off);
  if (lmz_buf_putc(&c->head, '\0'))
    return -1;
  if (n > c->hdrs_cap) {
    struct lmz_http_header *nh = realloc(c->hdrs, n * sizeof *nh);
    if (!nh)
      return -1;
    c->hdrs = nh;
    c->hdrs_cap = n;
  }
  const struct lmz__hdr_off *o = (const struct lmz__hdr_off *)c->hidx.data;
  char *base = (char *)c->head.data;
  for (size_t i = 0; i < n; i++) {
    struct lmz_http_header *h = &c->hdrs[i];
    h->name = base + o[i].name_off;
    h->name_len = o[i].name_len;
    h->value = o[i].value_off ? base + o[i].value_off : "";
    h->value_len = o[i].value_len;
    while (h->value_len && is_blank(h->value[h->value_len - 1]))
      ((char *)h->value)[--h->value_len] = '\0'; /* trailing blanks */
  }
  c->req.headers = c->hdrs;
  c->req.n_headers = n;
  return 0;
}

static void fill_target(lmz_http_conn_t *c) {
  struct lmz_http_request *r = &c->req;
  r->target = (const char *)c->head.data;
  r->target_len = strlen(r->target);
  const char *q = memchr(r->target, '?', r->target_len);
  r->path = r->target;
  r->path_len = q ? (size_t)(q - r->target) : r->target_len;
  r->query = q ? q + 1 : "";
  r->query_len = q ? r->target_len - r->path_len - 1 : 0;
}

static int on_headers_complete(http_parser *p) {
  lmz_http_conn_t *c = CONN(p);
  struct lmz_http_request *r = &c->req;
  c->headers_done = true;
  if (c->hidx.len == 0 && lmz_buf_putc(&c->head, '\0'))
    return fail(c, 431);
  if (build_headers(c))
    return fail(c, 431);
  if (p->http_major != 1 || p->http_minor > 1)
    return fail(c, 505);
  fill_target(c);
  r->method = http_method_str((enum http_method)p->method);
  r->http_major = p->http_major;
  r->http_minor = p->http_minor;
  r->keep_alive = http_should_keep_alive(p) != 0;
  r->upgrade = p->upgrade != 0;
  r->remote = c->remote;
  r->conn_id = c->id;
  c->head_method = p->method == HTTP_HEAD;
  if (p->http_minor == 1 && !lmz_http_header_get(r, "Host", NULL))
    return fail(c, 400); /* RFC 9112 §3.2 */
  bool has_body = (p->flags & F_CHUNKED) ||
                  (p->content_length > 0 && p->content_length != ULLONG_MAX);
  if (!(p->flags & F_CHUNKED) && p->content_length != ULLONG_MAX &&
      p->content_length > c->srv->priv.opts.max_body)
    return fail(c, 413);
  size_t elen;
  const char *expect = lmz_http_header_get(r, "Expect", &elen);
  if (expect) {
    if (elen != 12 || strncasecmp(expect, "100-continue", 12) != 0)
      return fail(c, 417);
    if (has_body && p->http_minor == 1 &&
        !lmz_buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n"))
      lmz__http_conn_dirty(c);
  }
  if (has_body) {
    c->state = LMZ__C_BODY;
    arm(c, c->srv->priv.opts.body_timeout_ms);
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t n) {
  lmz_http_conn_t *c = CONN(p);
  if (c->body.len + n > c->srv->priv.opts.max_body)
    return fail(c, 413);
  return lmz_buf_append(&c->body, at, n) ? fail(c, 500) : 0;
}

static int on_message_complete(http_parser *p) {
  lmz_http_conn_t *c = CONN(p);
  c->in_msg = false;
  c->req.body = c->body.len ? c->body.data : NULL;
  c->req.body_len = c->body.len;
  http_parser_pause(p, 1); /* one request at a time: deliver it first */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- request processing -------------------------------------------------- */

/* Whether a request starting at data has a well-formed method token (then
 * an unknown method is 501 Not Implemented; anything else is 400). */
static bool method_token_ok(const uint8_t *data, size_t len) {
  size_t i = 0;
  while (i < len && (data[i] == '\r' || data[i] == '\n'))
    i++; /* http-parser skips blank lines between requests */
  size_t start = i;
  for (; i < len && i - start <= 20; i++) {
    uint8_t ch = data[i];
    if (ch == ' ')
      return i > start;
    if (!((ch >= 'A' && ch <= 'Z') || ch == '-' || ch == '_'))
      return false;
  }
  return i == len; /* cut short by the read: give it the benefit */
}

static int status_for_errno(lmz_http_conn_t *c, enum http_errno e) {
  switch (e) {
  case HPE_INVALID_METHOD:
    return c->method_ok ? 501 : 400;
  case HPE_HEADER_OVERFLOW:
    return 431;
  case HPE_INVALID_VERSION:
    return 505;
  default:
    return 400;
  }
}

/* Hands the complete request to the app. */
static void deliver(lmz_http_conn_t *c) {
  lmz_http_server_t *srv = c->srv;
  c->state = LMZ__C_APP;
  c->n_requests++;
  c->upgrade_req = c->req.upgrade;
  c->ws_req = false;
  uv_timer_stop(&c->timer); /* the app decides how long it takes */
  bool ws = c->req.upgrade && srv->priv.opts.on_upgrade &&
            lmz_http_header_has_token(&c->req, "Upgrade", "websocket");
  int st = ws ? lmz__ws_check_upgrade(&c->req) : 0;
  if (st) {
    answer_error(c, st); /* never reaches the app */
    return;
  }
  c->pending = true;
  c->seen = true;
  if (ws) {
    c->ws_req = true;
    srv->priv.m.upgrades++;
    srv->priv.opts.on_upgrade(srv, c, &c->req);
    return;
  }
  srv->priv.m.requests++;
  srv->priv.opts.on_request(srv, c, &c->req);
}

/* Keeps unparsed bytes for later (conn->in is empty or holds older bytes). */
static void stash(lmz_http_conn_t *c, const uint8_t *data, size_t len) {
  if (len && lmz_buf_append(&c->in, data, len))
    lmz__http_conn_close(c);
}

/* Parses requests from data until one is pending, the input ends, output
 * backs up, or an error. Leftover bytes go to conn->in. */
static void process(lmz_http_conn_t *c, const uint8_t *data, size_t len) {
  while (len > 0 && (c->state == LMZ__C_HEAD || c->state == LMZ__C_BODY)) {
    if (lmz__http_conn_backlog(c) > OUT_HIGH)
      break; /* resumed from on_write */
    if (!c->in_msg)
      c->method_ok = method_token_ok(data, len);
    size_t n =
        http_parser_execute(&c->parser, &settings, (const char *)data, len);
    data += n;
    len -= n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (c->err_status || (e != HPE_OK && e != HPE_PAUSED)) {
      answer_error(c, c->err_status ? c->err_status : status_for_errno(c, e));
      return; /* the rest of the input is ignored */
    }
    if (e != HPE_PAUSED)
      break; /* all consumed; the request is incomplete */
    http_parser_pause(&c->parser, 0);
    bool upgrade = c->parser.upgrade != 0;
    deliver(c);
    if (upgrade) {
      if (c->state == LMZ__C_APP || c->state == LMZ__C_WS)
        stash(c, data, len); /* frames for the WebSocket */
      if (c->state == LMZ__C_WS)
        lmz__http_conn_resume(c);
      return;
    }
  }
  if (c->state != LMZ__C_CLOSING && c->state != LMZ__C_DRAIN)
    stash(c, data, len);
}

/* Parses / feeds what conn->in holds (prepare hook, or after a read). */
static void process_buffered(lmz_http_conn_t *c) {
  lmz_buf tmp = c->in; /* moved out: process() may stash into c->in */
  lmz_buf_init(&c->in);
  if (c->state == LMZ__C_WS)
    lmz__ws_feed(c->ws, tmp.data, tmp.len);
  else if (c->state == LMZ__C_HEAD || c->state == LMZ__C_BODY)
    process(c, tmp.data, tmp.len);
  else
    stash(c, tmp.data, tmp.len); /* APP: keep for later */
  if (c->in.len == 0 && c->state != LMZ__C_CLOSING) {
    tmp.len = 0; /* keep the allocation */
    if (tmp.cap <= BUF_KEEP_CAP) {
      lmz_buf_free(&c->in);
      c->in = tmp;
      return;
    }
  }
  lmz_buf_free(&tmp);
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  lmz_http_conn_t *c = h->data;
  *buf = uv_buf_init((char *)c->srv->priv.rbuf, READ_BUF_LEN);
}

static void on_eof(lmz_http_conn_t *c) {
  c->peer_eof = true;
  switch (c->state) {
  case LMZ__C_APP: /* answer, then close (respond sees peer_eof) */
    lmz__http_conn_update_reading(c);
    break;
  case LMZ__C_WS:
    lmz__ws_on_eof(c->ws);
    break;
  case LMZ__C_DRAIN:
    if (c->shut || (!c->writing && c->out.len == 0))
      lmz__http_conn_close(c);
    else
      lmz__http_conn_update_reading(c); /* close after the last write */
    break;
  default: /* idle or a partial request: nothing to answer */
    lmz__http_conn_close(c);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  lmz_http_conn_t *c = s->data;
  (void)buf;
  if (nread == 0 || c->state == LMZ__C_CLOSING)
    return;
  if (nread < 0) {
    LMZ_LOG_DEBUG(&log_ns, "conn %llu: read: %s (state %d)",
                  (unsigned long long)c->id, uv_strerror((int)nread), c->state);
    if (nread == UV_EOF)
      on_eof(c);
    else
      lmz__http_conn_close(c);
    return;
  }
  lmz__http_conn_input(c, c->srv->priv.rbuf, (size_t)nread);
}

void lmz__http_conn_eof(lmz_http_conn_t *c) {
  if (c->state != LMZ__C_CLOSING)
    on_eof(c);
}

void lmz__http_conn_input(lmz_http_conn_t *c, const uint8_t *data, size_t len) {
  c->srv->priv.m.bytes_in += len;
  switch (c->state) {
  case LMZ__C_HEAD:
  case LMZ__C_BODY:
  case LMZ__C_WS:
    if (c->in.len > 0) { /* older bytes first */
      stash(c, data, len);
      process_buffered(c);
    } else if (c->state == LMZ__C_WS) {
      lmz__ws_feed(c->ws, data, len);
    } else {
      process(c, data, len);
    }
    break;
  case LMZ__C_APP:
    stash(c, data, len);
    break;
  default: /* DRAIN: dropped */
    break;
  }
  if (c->state != LMZ__C_CLOSING)
    lmz__http_conn_update_reading(c);
}

void lmz__http_conn_update_reading(lmz_http_conn_t *c) {
  bool want;
  switch (c->state) {
  case LMZ__C_HEAD:
  case LMZ__C_BODY:
    want = lmz__http_conn_backlog(c) <= OUT_HIGH && c->in.len < IN_CAP;
    break;
  case LMZ__C_APP:
    want = c->in.len < IN_CAP && !c->peer_eof;
    break;
  case LMZ__C_WS: /* plus the WebSocket's own backpressure */
    want = c->in.len < IN_CAP && !c->peer_eof && lmz__ws_wants_read(c->ws);
    break;
  case LMZ__C_DRAIN:
    want = !c->peer_eof;
    break;
  default:
    want = false;
  }
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
      c->reading = true;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
  }
}

/* ---- timers -------------------------------------------------------------- */

static void on_timer(uv_timer_t *t) {
  lmz_http_conn_t *c = t->data;
  lmz_http_server_t *srv = c->srv;
  uint64_t now = now_ms(c);
  if (now < c->deadline_ms) { /* early by the server's clock (a fake one) */
    uv_timer_start(&c->timer, on_timer, c->deadline_ms - now, 0);
    return;
  }
  LMZ_LOG_DEBUG(&log_ns, "conn %llu: timer in state %d (writing %d)",
                (unsigned long long)c->id, c->state, c->writing);
  if (c->writing && c->state != LMZ__C_WS &&
      c->tcp.write_queue_size < c->last_wq) {
    c->last_wq = c->tcp.write_queue_size; /* a slow reader, but reading */
    arm(c, srv->priv.opts.idle_timeout_ms);
    return;
  }
  switch (c->state) {
  case LMZ__C_WS:
    lmz__ws_on_timer(c->ws);
    return;
  case LMZ__C_HEAD:
    srv->priv.m.timeouts++;
    if (c->in_msg && !c->writing)
      answer_error(c, 408); /* slow request head */
    else
      lmz__http_conn_close(c); /* idle keep-alive, or a stalled write */
    return;
  case LMZ__C_BODY:
    srv->priv.m.timeouts++;
    answer_error(c, 408);
    return;
  case LMZ__C_DRAIN: /* write stall or linger over */
    lmz__http_conn_close(c);
    return;
  default:
    return;
  }
}

static void arm(lmz_http_conn_t *c, uint32_t ms) {
  c->deadline_ms = now_ms(c) + ms;
  /* libuv counts from the loop's cached time: after a long callback (a
   * large frame parsed) it would fire at once, e.g. close the TCP
   * connection before the peer had a chance to answer our Close */
  uv_update_time(c->srv->loop);
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

void lmz_http_server_clock_moved(lmz_http_server_t *srv) {
  if (!srv->priv.opts.now_ms)
    return;
  uint64_t now = lmz_http_server_now(srv);
  for (struct lmz__qnode *q = srv->priv.conns.next; q != &srv->priv.conns;
       q = q->next) {
    lmz_http_conn_t *c = Q_CONN(q, all);
    if (c->state == LMZ__C_CLOSING || !uv_is_active((uv_handle_t *)&c->timer))
      continue;
    uint64_t left = c->deadline_ms > now ? c->deadline_ms - now : 0;
    uv_timer_start(&c->timer, on_timer, left, 0);
  }
}

void lmz__http_conn_arm(lmz_http_conn_t *c, uint32_t ms) { arm(c, ms); }

/* ---- accepting ----------------------------------------------------------- */

static void format_remote(lmz_http_conn_t *c) {
  struct sockaddr_storage ss;
  int n = sizeof ss;
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &n) == 0) {
    if (ss.ss_family == AF_INET6) {
      struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
      uv_ip6_name(a, ip, sizeof ip);
      port = ntohs(a->sin6_port);
      snprintf(c->remote, sizeof c->remote, "[%s]:%d", ip, port);
      return;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
  }
  snprintf(c->remote, sizeof c->remote, "%s:%d", ip, port);
}

lmz_http_conn_t *lmz__http_conn_new(lmz_http_server_t *srv) {
  lmz_http_conn_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->srv = srv;
  c->id = ++srv->priv.next_conn_id;
  c->tcp.data = c->timer.data = c;
  q_init(&c->all), q_init(&c->dirty), q_init(&c->resume);
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  srv->priv.n_handles += 2;
  srv->priv.m.conns_open++;
  q_push(&srv->priv.conns, &c->all);
  c->state = LMZ__C_HEAD;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  c->last_progress_ms = now_ms(c);
  snprintf(c->remote, sizeof c->remote, "-");
  return c;
}

static void on_connection(uv_stream_t *l, int status) {
  lmz_http_server_t *srv = l->data;
  if (status < 0) {
    LMZ_LOG_WARN(&log_ns, "accept: %s", uv_strerror(status));
    return;
  }
  if (srv->priv.closing)
    return;
  lmz_http_conn_t *c = lmz__http_conn_new(srv);
  if (!c)
    return; /* the kernel keeps the connection queued; retried next time */
  if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
    lmz__http_conn_close(c);
    return;
  }
  srv->priv.m.conns_accepted++;
  uv_tcp_nodelay(&c->tcp, 1);
  format_remote(c);
  if (srv->priv.m.conns_open > srv->priv.opts.max_connections) {
    srv->priv.m.conns_rejected++;
    answer_error(c, 503);
    return;
  }
  arm(c, srv->priv.opts.header_timeout_ms);
  lmz__http_conn_update_reading(c);
}

/* ---- the per-iteration hook ---------------------------------------------- */

static void on_prepare(uv_prepare_t *p) {
  lmz_http_server_t *srv = p->data;
  struct lmz__qnode *rq = &srv->priv.resume, *dq = &srv->priv.dirty;
  /* parse what waits (may add output), at most the current members */
  struct lmz__qnode batch;
  q_init(&batch);
  if (q_linked(rq)) { /* move the whole list: new entries go to the next run */
    batch.next = rq->next;
    batch.prev = rq->prev;
    batch.next->prev = &batch;
    batch.prev->next = &batch;
    q_init(rq);
  }
  while (q_linked(&batch)) {
    lmz_http_conn_t *c = Q_CONN(batch.next, resume);
    q_remove(&c->resume);
    process_buffered(c);
    if (c->state != LMZ__C_CLOSING)
      lmz__http_conn_update_reading(c);
  }
  while (q_linked(dq)) {
    lmz_http_conn_t *c = Q_CONN(dq->next, dirty);
    q_remove(&c->dirty);
    flush(c);
  }
}

/* ---- server -------------------------------------------------------------- */

static void fill_defaults(struct lmz_http_options *o) {
#define DEF(f, v)                                                              \
  if (!o->f)                                                                   \
  o->f = (v)
  DEF(max_header_bytes, 16u * 1024u);
  DEF(max_url_bytes, 8u * 1024u);
  DEF(max_headers, 100);
  DEF(max_body, 1u << 20);
  DEF(header_timeout_ms, 10000);
  DEF(body_timeout_ms, 30000);
  DEF(idle_timeout_ms, 60000);
  DEF(max_connections, 10000);
  DEF(backlog, 511);
#undef DEF
}

/* The listening socket as a plain descriptor, not yet on the loop: a libuv
 * handle, once initialized, takes a loop iteration to close, so binding
 * first lets a failure (port taken, bad host) leave nothing behind.
 * Socket options as uv_tcp_bind sets them; errors are libuv's codes. */
static int bind_listen(lmz_http_server_t *srv) {
  struct lmz__http_private *pv = &srv->priv;
  struct sockaddr_storage ss;
  socklen_t len = sizeof(struct sockaddr_in);
  if (uv_ip4_addr(pv->host, pv->opts.port, (struct sockaddr_in *)&ss)) {
    len = sizeof(struct sockaddr_in6);
    if (uv_ip6_addr(pv->host, pv->opts.port, (struct sockaddr_in6 *)&ss)) {
      lmz__errmsg_printf(srv->errmsg, "bad listen host '%s'", pv->host);
      return LMZ_EINVAL;
    }
  }
  int one = 1, zero = 0, rv = 0;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      (ss.ss_family == AF_INET6 && /* dual stack, as uv_tcp_bind without flags */
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero)) ||
      bind(fd, (struct sockaddr *)&ss, len) || listen(fd, pv->opts.backlog))
    rv = uv_translate_sys_error(errno);
  len = sizeof ss;
  if (!rv && getsockname(fd, (struct sockaddr *)&ss, &len))
    rv = uv_translate_sys_error(errno);
  if (rv) {
    lmz__errmsg_printf(srv->errmsg, "listen on %s:%d: %s", pv->host,
                       pv->opts.port, uv_strerror(rv));
    if (fd >= 0)
      close(fd);
    return rv;
  }
  pv->fd = fd;
  pv->port =
      ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

int lmz_http_server_bind(uv_loop_t *loop, lmz_http_server_t *srv,
                         const struct lmz_http_options *opts) {
  void *data = srv->data;
  memset(srv, 0, sizeof *srv);
  srv->data = data;
  srv->loop = loop;
  struct lmz__http_private *pv = &srv->priv;
  pv->fd = -1;
  if (!opts || !opts->on_request) {
    lmz__errmsg_printf(srv->errmsg, "on_request is required");
    return LMZ_EINVAL;
  }
  pv->opts = *opts;
  fill_defaults(&pv->opts);
  snprintf(pv->host, sizeof pv->host, "%s",
           opts->host ? opts->host : "127.0.0.1");
  pv->opts.host = pv->host;
  q_init(&pv->conns), q_init(&pv->dirty), q_init(&pv->resume);
  if (!(pv->rbuf = malloc(READ_BUF_LEN)))
    return LMZ_ENOMEM;
  int rv = bind_listen(srv);
  if (rv) {
    free(pv->rbuf);
    pv->rbuf = NULL;
  }
  return rv;
}

void lmz_http_server_unbind(lmz_http_server_t *srv) {
  struct lmz__http_private *pv = &srv->priv;
  LMZ_ASSERT(pv->fd >= 0 && !pv->started);
  close(pv->fd);
  pv->fd = -1;
  free(pv->rbuf);
  pv->rbuf = NULL;
}

void lmz_http_server_start(lmz_http_server_t *srv) {
  struct lmz__http_private *pv = &srv->priv;
  LMZ_ASSERT(pv->fd >= 0 && !pv->started);
  /* None of these fails on a socket that already listens and that the loop
   * does not know yet: uv_tcp_init with no family creates nothing,
   * uv_tcp_open only checks that the loop does not watch the descriptor,
   * uv_listen repeats listen(). */
  int rv = uv_tcp_init(srv->loop, &pv->listener);
  if (!rv)
    rv = uv_tcp_open(&pv->listener, pv->fd);
  if (!rv)
    rv = uv_listen((uv_stream_t *)&pv->listener, pv->opts.backlog, on_connection);
  LMZ_ASSERT(rv == 0);
  pv->listener.data = srv;
  pv->fd = -1; /* the listener's now */
  pv->started = true;
  uv_prepare_init(srv->loop, &pv->flush);
  pv->flush.data = srv;
  uv_prepare_start(&pv->flush, on_prepare);
  uv_unref((uv_handle_t *)&pv->flush); /* the listener keeps the loop alive */
  pv->n_handles = 2;
  LMZ_LOG_DEBUG(&log_ns, "listening on %s:%d", pv->host, pv->port);
}

int lmz_http_server_init(uv_loop_t *loop, lmz_http_server_t *srv,
                         const struct lmz_http_options *opts) {
  int rv = lmz_http_server_bind(loop, srv, opts);
  if (!rv)
    lmz_http_server_start(srv);
  return rv;
}

int lmz_http_server_port(const lmz_http_server_t *srv) {
  return srv->priv.port;
}

void lmz_http_server_metrics(const lmz_http_server_t *srv,
                             struct lmz_http_metrics *out) {
  *out = srv->priv.m;
}

static void on_server_handle_closed(uv_handle_t *h) {
  lmz_http_server_t *srv = h->data;
  srv->priv.n_handles--;
  maybe_finish_server(srv);
}

void lmz_http_server_close(lmz_http_server_t *srv, lmz_http_close_cb cb) {
  struct lmz__http_private *pv = &srv->priv;
  if (pv->closing)
    return;
  pv->closing = true;
  pv->close_cb = cb;
  uv_close((uv_handle_t *)&pv->listener, on_server_handle_closed);
  uv_close((uv_handle_t *)&pv->flush, on_server_handle_closed);
  while (q_linked(&pv->conns)) {
    lmz_http_conn_t *c = Q_CONN(pv->conns.next, all);
    if (c->state == LMZ__C_WS) {
      lmz__ws_going_away(c->ws);
      if (c->out.len && !c->writing) { /* best effort, no waiting */
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
      }
    }
    lmz__http_conn_close(c); /* unlinks c from conns */
  }
}
