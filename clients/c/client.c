/* clients/c/client.c - the client handle on libuv: resolve, connect, the
 * upgrade, reading, batched writing, the timer, closing.
 *
 * Happy path: lmzc_connect parses the URL, writes the upgrade request into
 * `out`, opens a TCP handle, a timer (connect timeout) and a prepare hook,
 * resolves the host (numeric addresses at once) and connects. Once
 * connected the request is written; the answer goes through ws.c's
 * handshake check; the bytes after it are frames (ws.c), whole messages go
 * to proto.c. connection_status makes the client ready (lmz__cc_ready):
 * queued calls move to `out`, the timer becomes the heartbeat, the connect
 * callback runs. Every frame is appended to `out`; the prepare hook writes
 * `out` once per loop iteration (uv_try_write, the rest with one uv_write
 * while new frames go to the other buffer; the write callback starts the
 * next write, as the deps guide's restart rule asks). Frames made while
 * handling a read (a pipeline's next calls) are written at the end of that
 * read instead, so the server works on them while we read other sockets.
 * lmzc_close sends Close 1000 when connected and waits for the server's
 * Close (or close_timeout_ms, or EOF), then closes the handles; when the
 * last close callback has run, everything still pending fails with
 * LMZ_ECANCELED, the close callback runs and the memory goes (unless
 * unanswered incoming calls still hold a reference: then at their answer).
 *
 * Failure modes:
 *  1. resolve/connect errors, a refused or malformed upgrade, EOF, no
 *     connection_status in time: state DEAD, queued calls fail with
 *     LMZ_ECLOSED, the connect callback gets the error;
 *  2. after connecting: EOF, a read/write error, a Close from the server,
 *     a protocol violation (our 1002/1007/1009 goes out best effort), a
 *     missing heartbeat pong: state DEAD, calls in flight fail with
 *     LMZ_ECLOSED (LMZ_ETOOBIG when the code is 1009, "Message is too
 *     large"), then on_disconnect(code, reason);
 *  3. a failure while the user closes: the close just proceeds;
 *  4. user callbacks may call lmzc_close (and lmzc_call, which then fails)
 *     at any point: closing is deferred to libuv's close callbacks, so the
 *     handle stays valid until every stack frame using it has returned. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/c/lmzc_int.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_HEARTBEAT_MS 30000
#define DEFAULT_CLOSE_TIMEOUT_MS 2000u
#define DEFAULT_MAX_MESSAGE (64u << 20)
#define MIN_MAX_OUTBOUND (16u << 20)
#define DEFAULT_MAX_QUEUED 100u
#define TOKEN_MAX (16u * 1024u)

static void cc_teardown(lmzc_t *c);
static void cc_write(lmzc_t *c);
static void on_timer(uv_timer_t *t);

/* ---- small things -------------------------------------------------------- */

void *lmzc_data(const lmzc_t *c) { return c->data; }
void lmzc_set_data(lmzc_t *c, void *data) { c->data = data; }
uv_loop_t *lmzc_loop(const lmzc_t *c) { return c->loop; }
bool lmzc_is_connected(const lmzc_t *c) { return c->state == CC_READY && !c->closing; }
bool lmzc_subscription_required(const lmzc_t *c) { return c->sub_required; }
size_t lmzc_pending(const lmzc_t *c) { return c->calls.n; }
const char *lmzc_errmsg(const lmzc_t *c) { return c->errmsg; }
const struct lmzc_stats *lmzc_stats(const lmzc_t *c) { return &c->st; }
const char *lmzc_instance(const lmzc_t *c) { return c->instance; }

size_t lmzc_queued_bytes(const lmzc_t *c) {
  size_t n = c->out.len + c->queued.len;
  if (c->write_busy)
    n += c->wbuf.len - c->woff;
  return n;
}

void lmz__cc_unref(lmzc_t *c) {
  if (--c->refs > 0)
    return;
  free(c->instance); /* kept for lmzc_instance() until the very end */
  free(c);
}

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

/* ---- writing ------------------------------------------------------------- */

static void on_flush(uv_prepare_t *h) {
  lmzc_t *c = h->data;
  uv_prepare_stop(h);
  c->flush_armed = false;
  cc_write(c);
}

void lmz__cc_arm_flush(lmzc_t *c) {
  if (c->flush_armed || !c->tcp_connected || c->torn || c->state == CC_DEAD)
    return;
  c->flush_armed = true;
  uv_prepare_start(&c->flush, on_flush);
}

static void write_failed(lmzc_t *c, int err) {
  if (c->closing) {
    cc_teardown(c);
    return;
  }
  lmz__errmsg_printf(c->errmsg, "write: %s", uv_strerror(err));
  lmz__cc_fail(c, LMZ_ECLOSED, 1006, "write failed", 12);
}

static void on_write(uv_write_t *req, int status) {
  lmzc_t *c = req->data;
  c->write_busy = false;
  c->st.bytes_out += c->wbuf.len - c->woff;
  c->wbuf.len = 0;
  if (status == UV_ECANCELED || c->torn)
    return;
  if (status) {
    write_failed(c, status);
    return;
  }
  cc_write(c); /* frames queued meanwhile (the restart rule) */
}

/* Writes `out`: directly as far as the kernel takes it, the rest with one
 * uv_write while `out` (swapped with wbuf) collects the next frames. */
static void cc_write(lmzc_t *c) {
  if (c->write_busy || !c->out.len || !c->tcp_connected || c->torn ||
      c->state == CC_DEAD)
    return;
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN || n == UV_ENOSYS)
    n = 0;
  if (n < 0) {
    write_failed(c, n);
    return;
  }
  c->st.bytes_out += (uint64_t)n;
  if ((size_t)n == c->out.len) {
    c->out.len = 0;
    return;
  }
  lmz_buf t = c->wbuf;
  c->wbuf = c->out;
  c->out = t;
  c->out.len = 0;
  c->woff = (size_t)n;
  b = uv_buf_init((char *)c->wbuf.data + n, (unsigned)(c->wbuf.len - (size_t)n));
  c->wreq.data = c;
  int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
  if (rv) {
    c->wbuf.len = 0;
    write_failed(c, rv);
    return;
  }
  c->write_busy = true;
}

/* Best effort before giving up on a socket: our Close frame, if it fits. */
static void flush_now(lmzc_t *c) {
  if (!c->tcp_connected || c->write_busy || !c->out.len || c->torn)
    return;
  uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
  (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  c->out.len = 0;
}

int lmz__cc_send_text(lmzc_t *c, const void *data, size_t len, bool queue) {
  if (c->closing || c->state == CC_DEAD)
    return LMZ_ECLOSED;
  bool now = c->state == CC_READY;
  if (!now && !queue)
    return LMZ_EBUSY;
  if (len + 14 > c->max_outbound)
    return LMZ_ETOOBIG;
  if (lmzc_queued_bytes(c) + len + 14 > c->max_outbound ||
      (!now && c->n_queued >= c->max_queued))
    return LMZ_EOVERLOAD;
  int rv = lmz__cc_frame(now ? &c->out : &c->queued, WSLAY_TEXT_FRAME, data,
                         len, &c->rng);
  if (rv)
    return rv;
  if (now)
    lmz__cc_arm_flush(c);
  else
    c->n_queued++;
  return 0;
}

/* ---- state changes ------------------------------------------------------- */

static void stop_io(lmzc_t *c) {
  if (c->tcp_connected)
    uv_read_stop((uv_stream_t *)&c->tcp);
  uv_timer_stop(&c->timer);
  uv_prepare_stop(&c->flush);
  c->flush_armed = false;
}

void lmz__cc_fail(lmzc_t *c, int status, int code, const char *reason,
                  size_t reason_len) {
  if (c->state == CC_DEAD || c->torn)
    return;
  bool was_connected = c->connect_reported;
  char why[124];
  size_t n = reason_len < sizeof why ? reason_len : sizeof why;
  if (n)
    memcpy(why, reason, n);
  flush_now(c);
  c->state = CC_DEAD;
  stop_io(c);
  c->connect_reported = true;
  LMZ_LOG_DEBUG(&lmz__cc_log, "%s: %s (%d %.*s): %s", c->instance,
                was_connected ? "disconnected" : "connect failed", code,
                (int)n, why, c->errmsg);
  /* 1009: a message over a cap (the gateway's "Message is too large", or
   * an answer over our max_message) is what ended the calls */
  lmz__cc_fail_all(c, code == 1009 ? LMZ_ETOOBIG : LMZ_ECLOSED);
  if (!was_connected) {
    if (c->connect_cb)
      c->connect_cb(c, status);
  } else if (c->on_disconnect && !c->closing) {
    c->on_disconnect(c, code, why, n);
  }
}

void lmz__cc_ready(lmzc_t *c, bool subscription_required) {
  c->state = CC_READY;
  c->sub_required = subscription_required;
  uv_timer_stop(&c->timer);
  if (c->heartbeat_ms > 0)
    uv_timer_start(&c->timer, on_timer, (uint64_t)c->heartbeat_ms,
                   (uint64_t)c->heartbeat_ms);
  if (c->queued.len) { /* calls made while connecting, in order */
    if (lmz_buf_append(&c->out, c->queued.data, c->queued.len)) {
      lmz__errmsg_printf(c->errmsg, "out of memory");
      lmz__cc_fail(c, LMZ_ENOMEM, 1006, NULL, 0);
      return;
    }
    lmz_buf_free(&c->queued);
    c->n_queued = 0;
  }
  lmz__cc_arm_flush(c);
  c->connect_reported = true;
  if (c->connect_cb)
    c->connect_cb(c, 0);
}

/* ---- reading ------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  lmzc_t *c = h->data;
  *b = uv_buf_init((char *)c->rbuf, LMZ__CC_RBUF);
}

/* The session ended or failed while feeding. */
static void session_over(lmzc_t *c, int rv) {
  if (c->closing) { /* our Close was answered (or the server broke it) */
    flush_now(c);
    cc_teardown(c);
    return;
  }
  const char *r;
  size_t rl;
  int code = lmz__cc_ws_close_code(&c->ws, &r, &rl);
  if (!c->connect_reported)
    lmz__errmsg_printf(c->errmsg, "server closed the connection: %d %.*s", code,
                       (int)rl, r);
  else if (code == 1009) /* the calls fail with LMZ_ETOOBIG: say whose cap */
    lmz__errmsg_printf(c->errmsg, "%s: %d %.*s",
                       c->ws.our_code ? "an answer was over max_message"
                          : "the gateway closed the connection",
                       code, (int)rl, r);
  else if (rv)
    lmz__errmsg_printf(c->errmsg, "protocol error from the server (%d)", code);
  lmz__cc_fail(c, rv ? rv : LMZ_ECLOSED, code, r, rl);
}

static void feed_frames(lmzc_t *c, const uint8_t *p, size_t n) {
  int rv = lmz__cc_ws_feed(&c->ws, p, n);
  if (c->torn || c->state == CC_DEAD)
    return;
  if (c->out.len)
    lmz__cc_arm_flush(c);
  if (rv == 0 && !lmz__cc_ws_done(&c->ws) && !lmz__cc_ws_close_received(&c->ws))
    return;
  session_over(c, rv == LMZ_EBADMSG ? LMZ_EBADMSG : rv);
}

static void feed(lmzc_t *c, const uint8_t *p, size_t n) {
  if (c->state == CC_UPGRADING) {
    size_t used = 0;
    int rv = lmz__cc_hs_feed(&c->hs, p, n, &used, c->errmsg);
    if (rv == 0)
      return;
    if (rv < 0) {
      lmz__cc_fail(c, rv, 1006, NULL, 0);
      return;
    }
    rv = lmz__cc_ws_init(&c->ws, &c->out, &c->rng, c->max_message,
                         lmz__cc_on_message, c);
    if (rv) {
      lmz__errmsg_printf(c->errmsg, "out of memory");
      lmz__cc_fail(c, rv, 1006, NULL, 0);
      return;
    }
    c->ws_inited = true;
    c->state = CC_OPENING;
    p += used;
    n -= used;
  }
  if (n && c->ws_inited && c->state != CC_DEAD)
    feed_frames(c, p, n);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  lmzc_t *c = s->data;
  if (n > 0) {
    c->st.bytes_in += (uint64_t)n;
    feed(c, (const uint8_t *)b->base, (size_t)n);
    /* What the answers in this read made us send (the next calls of a
     * pipeline, pongs) leaves now, not after every other socket of this
     * iteration was read: the server starts on it meanwhile. */
    if (c->flush_armed) {
      uv_prepare_stop(&c->flush);
      c->flush_armed = false;
      cc_write(c);
    }
    return;
  }
  if (n == 0 || c->torn)
    return;
  if (c->closing) { /* EOF after our Close: done */
    cc_teardown(c);
    return;
  }
  if (c->state == CC_UPGRADING) {
    int rv = n == UV_EOF ? lmz__cc_hs_eof(&c->hs, c->errmsg) : (int)n;
    if (n != UV_EOF)
      lmz__errmsg_printf(c->errmsg, "read: %s", uv_strerror((int)n));
    lmz__cc_fail(c, rv, 1006, NULL, 0);
    return;
  }
  if (c->ws_inited && lmz__cc_ws_close_received(&c->ws)) {
    session_over(c, 0);
    return;
  }
  lmz__errmsg_printf(c->errmsg, "connection lost: %s", uv_strerror((int)n));
  lmz__cc_fail(c, n == UV_EOF ? LMZ_ECLOSED : (int)n, 1006, "connection lost", 15);
}

/* ---- connecting ---------------------------------------------------------- */

static void on_connected(uv_connect_t *req, int status) {
  lmzc_t *c = req->data;
  if (status == UV_ECANCELED || c->torn || c->closing)
    return;
  if (status) {
    lmz__errmsg_printf(c->errmsg, "connect %s: %s", c->addr.hostport,
                       uv_strerror(status));
    lmz__cc_fail(c, status, 1006, NULL, 0);
    return;
  }
  c->tcp_connected = true;
  c->state = CC_UPGRADING;
  uv_tcp_nodelay(&c->tcp, 1);
  int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rv) {
    lmz__errmsg_printf(c->errmsg, "read: %s", uv_strerror(rv));
    lmz__cc_fail(c, rv, 1006, NULL, 0);
    return;
  }
  cc_write(c); /* the upgrade request */
}

static int start_connect(lmzc_t *c, const struct sockaddr *sa) {
  c->state = CC_CONNECTING;
  c->creq.data = c;
  int rv = uv_tcp_connect(&c->creq, &c->tcp, sa, on_connected);
  if (rv)
    lmz__errmsg_printf(c->errmsg, "connect %s: %s", c->addr.hostport,
                       uv_strerror(rv));
  return rv;
}

static void maybe_finish(lmzc_t *c);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  lmzc_t *c = req->data;
  c->gai_active = false;
  if (c->torn) {
    uv_freeaddrinfo(res);
    maybe_finish(c);
    return;
  }
  int rv = status;
  if (rv)
    lmz__errmsg_printf(c->errmsg, "resolve %s: %s", c->addr.host, uv_strerror(rv));
  else
    rv = start_connect(c, res->ai_addr);
  uv_freeaddrinfo(res);
  if (rv)
    lmz__cc_fail(c, rv, 1006, NULL, 0);
}

static void on_timer(uv_timer_t *t) {
  lmzc_t *c = t->data;
  if (c->state == CC_CLOSING || c->closing) { /* no Close came back */
    cc_teardown(c);
    return;
  }
  if (c->state == CC_READY) {
    lmz__cc_heartbeat(c);
    return;
  }
  lmz__errmsg_printf(c->errmsg, "not connected within %u ms (%s)",
                     c->connect_timeout_ms,
                     c->state == CC_OPENING ? "no connection_status"
                     : c->state == CC_UPGRADING ? "no upgrade answer"
                                                : "TCP connect");
  lmz__cc_fail(c, LMZ_ETIMEOUT, 1006, NULL, 0);
}

/* ---- open / close -------------------------------------------------------- */

static int check_opts(const struct lmzc_options *o, char *errmsg) {
  const char *why = NULL;
  if (!o || !o->url)
    why = "url is required";
  else if (!lmz__cc_segment_ok(o->instance, 255) || !strchr(o->instance, '.'))
    why = "instance must be <sub>.<tabId> in URL-safe characters (<= 255)";
  else if (!lmz__cc_token_ok(o->token, TOKEN_MAX))
    why = "token must be a JWT (HTTP token characters, <= 16 KiB)";
  else if (o->gateway_binding && !lmz__cc_segment_ok(o->gateway_binding, 255))
    why = "gateway_binding must be URL-safe";
  if (!why)
    return 0;
  if (errmsg)
    lmz__errmsg_printf(errmsg, "lmzc_connect: %s", why);
  return LMZ_EINVAL;
}

static int copy_opts(lmzc_t *c, const struct lmzc_options *o) {
  c->instance = dup_str(o->instance);
  c->token = dup_str(o->token);
  c->gw_binding = dup_str(o->gateway_binding ? o->gateway_binding
                                             : LMZC_GATEWAY_BINDING);
  c->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms
                                                : DEFAULT_CONNECT_TIMEOUT_MS;
  c->close_timeout_ms = o->close_timeout_ms ? o->close_timeout_ms
                                            : DEFAULT_CLOSE_TIMEOUT_MS;
  c->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
  c->max_message = o->max_message ? o->max_message : DEFAULT_MAX_MESSAGE;
  c->max_send = o->max_send_message ? o->max_send_message : LMZC_MAX_SEND_MESSAGE;
  size_t out = c->max_send > SIZE_MAX / 2 ? SIZE_MAX : 2 * c->max_send;
  c->max_outbound = o->max_outbound ? o->max_outbound
                                    : out > MIN_MAX_OUTBOUND ? out : MIN_MAX_OUTBOUND;
  c->max_queued = o->max_queued ? o->max_queued : DEFAULT_MAX_QUEUED;
  c->on_disconnect = o->on_disconnect;
  c->on_unknown = o->on_unknown;
  c->data = o->data;
  c->rbuf = malloc(LMZ__CC_RBUF);
  c->scratch = lmz_arena_new();
  lmz_buf path = LMZ_BUF_INIT;
  if (!c->instance || !c->token || !c->gw_binding || !c->rbuf || !c->scratch ||
      lmz_buf_printf(&path, "/gateway/%s/%s", c->gw_binding, c->instance) ||
      lmz_buf_putc(&path, 0)) {
    lmz_buf_free(&path);
    return LMZ_ENOMEM;
  }
  c->path = (char *)lmz_buf_detach(&path, NULL);
  return 0;
}

/* The upgrade request (with the token) passed through these buffers. */
static void wipe(lmz_buf *b) {
  volatile uint8_t *p = b->data;
  for (size_t i = 0; p && i < b->cap; i++)
    p[i] = 0;
}

static void free_parts(lmzc_t *c) {
  if (c->ws_inited)
    lmz__cc_ws_free(&c->ws);
  c->ws_inited = false;
  lmz__cc_calls_free(&c->calls);
  free(c->pings);
  c->pings = NULL;
  c->ping_n = c->ping_cap = 0;
  wipe(&c->out);
  wipe(&c->wbuf);
  lmz_buf_free(&c->out);
  lmz_buf_free(&c->wbuf);
  lmz_buf_free(&c->queued);
  lmz_buf_free(&c->tx);
  lmz_arena_free(c->scratch);
  c->scratch = NULL;
  if (c->token) { /* a secret: wipe before free */
    volatile char *p = c->token;
    while (*p)
      *p++ = 0;
  }
  free(c->token), free(c->gw_binding), free(c->path);
  c->token = c->gw_binding = c->path = NULL;
  free(c->rbuf);
  c->rbuf = NULL;
}

/* Every handle closed and no request out: report and release. */
static void maybe_finish(lmzc_t *c) {
  if (c->open_handles > 0 || c->gai_active)
    return;
  c->state = CC_DEAD;
  lmz__cc_fail_all(c, LMZ_ECANCELED);
  if (!c->connect_reported) {
    c->connect_reported = true;
    if (c->connect_cb)
      c->connect_cb(c, LMZ_ECANCELED);
  }
  if (c->close_cb)
    c->close_cb(c);
  free_parts(c);
  lmz__cc_unref(c); /* unanswered incoming calls may still hold it */
}

static void on_handle_closed(uv_handle_t *h) {
  lmzc_t *c = h->data;
  c->open_handles--;
  maybe_finish(c);
}

static void cc_teardown(lmzc_t *c) {
  if (c->torn)
    return;
  c->torn = true;
  c->flush_armed = false;
  if (c->gai_active)
    uv_cancel((uv_req_t *)&c->gai);
  uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&c->timer, on_handle_closed);
  uv_close((uv_handle_t *)&c->flush, on_handle_closed);
}

/* Starts resolving or connecting; 0 or an error (errmsg set). */
static int start(lmzc_t *c) {
  struct sockaddr_storage sa;
  if (lmz__cc_numeric(&c->addr, &sa))
    return start_connect(c, (const struct sockaddr *)&sa);
  char port[8];
  snprintf(port, sizeof port, "%d", c->addr.port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  c->gai.data = c;
  int rv = uv_getaddrinfo(c->loop, &c->gai, on_resolved, c->addr.host, port, &hints);
  if (rv)
    lmz__errmsg_printf(c->errmsg, "resolve %s: %s", c->addr.host, uv_strerror(rv));
  else
    c->gai_active = true;
  return rv;
}

static int init_handles(lmzc_t *c) {
  int rv = uv_tcp_init(c->loop, &c->tcp);
  if (rv)
    return rv;
  c->open_handles++;
  uv_timer_init(c->loop, &c->timer); /* cannot fail */
  uv_prepare_init(c->loop, &c->flush);
  c->open_handles += 2;
  c->tcp.data = c->timer.data = c->flush.data = c;
  return 0;
}

int lmzc_connect(uv_loop_t *loop, lmzc_t **out, const struct lmzc_options *o,
                 lmzc_connect_cb cb, char *errmsg) {
  int rv = check_opts(o, errmsg);
  if (rv)
    return rv;
  lmzc_t *c = calloc(1, sizeof *c);
  if (!c)
    return LMZ_ENOMEM;
  c->loop = loop;
  c->refs = 1;
  c->connect_reported = true; /* nothing is reported before we return 0 */
  rv = lmz__cc_url_parse(o->url, &c->addr, errmsg);
  if (!rv)
    rv = copy_opts(c, o);
  if (!rv && uv_random(NULL, NULL, &c->rng, sizeof c->rng, 0, NULL))
    rv = LMZ_EIO;
  c->rng |= 1; /* xorshift needs a non-zero state */
  if (!rv)
    rv = lmz__cc_hs_start(&c->hs, &c->out, &c->addr, c->path, c->token);
  if (!rv)
    rv = init_handles(c);
  if (rv) {
    free_parts(c);
    lmz__cc_unref(c);
    return rv;
  }
  uv_timer_start(&c->timer, on_timer, c->connect_timeout_ms, 0);
  rv = start(c);
  if (rv) { /* handles are open: close them quietly, free at the end */
    if (errmsg)
      memcpy(errmsg, c->errmsg, LMZ_ERRMSG_LEN);
    cc_teardown(c);
    return rv;
  }
  c->connect_cb = cb;
  c->connect_reported = false;
  *out = c;
  return 0;
}

void lmzc_close(lmzc_t *c, lmzc_close_cb cb) {
  if (!c || c->closing)
    return;
  c->closing = true;
  c->close_cb = cb;
  bool open = (c->state == CC_READY || c->state == CC_OPENING) && c->ws_inited;
  if (open && lmz__cc_ws_close(&c->ws, 1000, "Client disconnect") == 0) {
    c->state = CC_CLOSING;
    uv_timer_stop(&c->timer);
    uv_timer_start(&c->timer, on_timer, c->close_timeout_ms, 0);
    lmz__cc_arm_flush(c); /* the Close frame */
    return;
  }
  cc_teardown(c);
}
