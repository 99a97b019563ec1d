/* gateway/ws_conn.c - WebSocket connections on the HTTP server (ws.h): the
 * handshake, and the glue between a connection's socket, its timer and the
 * sans-I/O session of ws_session.c.
 *
 * Happy path: lmz_ws_accept() writes the 101 answer into conn->out, creates
 * the session (framing into conn->out as well, so the 101 and the first
 * frames leave in one write) and queues the bytes that followed the request
 * for feeding in the prepare hook. Received bytes go straight from the read
 * buffer into the session; whole messages reach on_message. Sends frame into
 * conn->out; the server's prepare hook writes each connection's output once
 * per loop iteration, and the write callback restarts writing when more was
 * queued meanwhile.
 *
 * Failure modes:
 *  1. protocol errors, bad UTF-8, oversize messages: the session queues the
 *     Close frame (1002/1007/1009); the connection drains (writes it, FIN,
 *     closes). on_close gets that code.
 *  2. outbound queue over max_outbound: send returns LMZ_EOVERLOAD, unsent
 *     output is dropped, 1008 is queued, the close timer runs; reading
 *     stopped earlier at half the cap (backpressure). Every byte queued
 *     counts, whoever produced it: the session's own replies (pongs to a
 *     peer that pings and never reads) stop being made at the cap (the
 *     rest of the input is not consumed) and lead to the same 1008. They
 *     do not pause reading at half the cap as the app's messages do: a
 *     peer that provokes that many replies unread is flooding, and pausing
 *     would hold its connection (and the queue) for two ping intervals.
 *     Replies have a smaller cap of their own, max_replies: max_outbound
 *     is sized for the app's largest message (tens of MiB), and a peer
 *     that only pings must not make the node hold that much.
 *  3. dead peer (nothing received for two ping intervals, or no write
 *     progress for as long while output waits): TCP closed, code 1006.
 *  4. the peer never answers our Close: TCP closed after close_timeout_ms.
 *  5. EOF or reset without a close handshake: closed, code 1006.
 *  6. the app closes the server or the ws from a callback: the session stops
 *     delivering (s.stop) and memory is only freed in the close callback. */
#include <nettle/sha1.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "gateway/http_int.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.gateway.ws");

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct lmz_ws_s {
  lmz_http_conn_t *conn;
  struct lmz__ws_session s;
  struct lmz_ws_callbacks cb;
  struct lmz_ws_options opts;
  void *data;
  uint64_t last_rx_ms; /* last byte received */
  uint64_t ping_sent_ms;
  bool ping_outstanding; /* a ping went out and nothing came back yet */
  bool closing;          /* our Close is out; the close timer runs */
  bool read_paused;      /* backlog over max_outbound / 2 */
  bool feeding;          /* inside lmz__ws_feed */
  size_t app_in_feed;    /* app bytes sent during this feed */
  size_t reply_backlog;  /* >= queued bytes made while reading: growth of
                            the backlog during feeds, less the app's own
                            sends; lowered to the backlog as it drains
                            (FIFO: an upper bound, exact once drained) */
};

/* ---- handshake ----------------------------------------------------------- */

void lmz_ws_accept_key(const char *key, size_t key_len, char out[29]) {
  struct sha1_ctx ctx;
  uint8_t digest[SHA1_DIGEST_SIZE];
  sha1_init(&ctx);
  sha1_update(&ctx, key_len, (const uint8_t *)key);
  sha1_update(&ctx, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
  sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
  sodium_bin2base64(out, 29, digest, sizeof digest,
                    sodium_base64_VARIANT_ORIGINAL);
}

int lmz__ws_check_upgrade(const struct lmz_http_request *req) {
  size_t vlen, klen;
  const char *ver = lmz_http_header_get(req, "Sec-WebSocket-Version", &vlen);
  const char *key = lmz_http_header_get(req, "Sec-WebSocket-Key", &klen);
  if (strcmp(req->method, "GET") != 0 || req->http_minor != 1 ||
      req->body_len != 0)
    return 400; /* RFC 6455 §4.1: a GET, HTTP/1.1 or later */
  if (!ver || vlen != 2 || memcmp(ver, "13", 2) != 0)
    return 426; /* §4.4: answer with the version we speak */
  uint8_t raw[18];
  size_t got = 0;
  const char *end = NULL;
  if (!key || klen != 24 ||
      sodium_base642bin(raw, sizeof raw, key, klen, NULL, &got, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      got != 16 || end != key + klen)
    return 400; /* §4.1: base64 of 16 bytes */
  return 0;
}

/* RFC 6455 §4.1: a subprotocol is an HTTP token. */
static bool token_ok(const char *s) {
  if (!s || !*s || strlen(s) > 256)
    return false;
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?={}", ch))
      return false;
  }
  return true;
}

bool lmz_ws_protocol_token(const struct lmz_http_request *req, const char **tok,
                           size_t *tok_len, bool *offered_lmz) {
  static const char prefix[] = LMZ_WS_TOKEN_PREFIX;
  const size_t pn = sizeof prefix - 1;
  bool found = false;
  if (offered_lmz)
    *offered_lmz = false;
  for (size_t i = 0; i < req->n_headers; i++) {
    const struct lmz_http_header *h = &req->headers[i];
    if (h->name_len != 22 || strncasecmp(h->name, "Sec-WebSocket-Protocol", 22))
      continue;
    const char *p = h->value, *end = h->value + h->value_len;
    while (p <= end) {
      const char *comma = memchr(p, ',', (size_t)(end - p));
      const char *e = comma ? comma : end, *s = p;
      while (s < e && (*s == ' ' || *s == '\t'))
        s++;
      while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
      size_t n = (size_t)(e - s);
      if (n == 3 && memcmp(s, LMZ_WS_PROTOCOL, 3) == 0 && offered_lmz)
        *offered_lmz = true;
      if (!found && n >= pn && memcmp(s, prefix, pn) == 0) {
        *tok = s + pn;
        *tok_len = n - pn;
        found = true;
      }
      if (!comma)
        break;
      p = comma + 1;
    }
  }
  return found;
}

static void fill_ws_defaults(struct lmz_ws_options *o) {
  if (!o->max_message)
    o->max_message = 1u << 20;
  if (!o->max_outbound)
    o->max_outbound = 4u << 20;
  if (!o->max_replies)
    o->max_replies = 256u << 10;
  if (o->max_replies > o->max_outbound)
    o->max_replies = o->max_outbound;
  if (!o->ping_interval_ms)
    o->ping_interval_ms = 30000;
  if (!o->close_timeout_ms)
    o->close_timeout_ms = 5000;
}

static void deliver(void *owner, bool is_text, const uint8_t *data, size_t len);

/* The 101 answer (RFC 6455 §4.2.2). */
static int put_101(lmz_http_conn_t *c, const char *subprotocol) {
  size_t klen;
  const char *key = lmz_http_header_get(&c->req, "Sec-WebSocket-Key", &klen);
  char accept[29];
  lmz_ws_accept_key(key, klen, accept);
  size_t start = c->out.len;
  int rv = lmz_buf_printf(&c->out,
                          "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n",
                          accept);
  if (!rv && subprotocol)
    rv = lmz_buf_printf(&c->out, "Sec-WebSocket-Protocol: %s\r\n", subprotocol);
  if (!rv)
    rv = lmz_buf_append(&c->out, "\r\n", 2);
  if (rv)
    c->out.len = start;
  return rv;
}

int lmz_ws_accept(lmz_http_conn_t *c, const char *subprotocol,
                  const struct lmz_ws_callbacks *cb,
                  const struct lmz_ws_options *opts, void *data,
                  lmz_ws_t **out) {
  if (c->state == LMZ__C_CLOSING || c->state == LMZ__C_DRAIN)
    return LMZ_ECLOSED;
  if (c->state != LMZ__C_APP || !c->pending || !c->ws_req || !cb ||
      !cb->on_message || !cb->on_close ||
      (subprotocol && !token_ok(subprotocol)))
    return LMZ_EINVAL;
  lmz_ws_t *ws = calloc(1, sizeof *ws);
  if (!ws)
    return LMZ_ENOMEM;
  ws->conn = c;
  ws->cb = *cb;
  ws->data = data;
  if (opts)
    ws->opts = *opts;
  fill_ws_defaults(&ws->opts);
  if (lmz__ws_session_init(&ws->s, &c->out, ws->opts.max_message, deliver,
                           ws) != 0 ||
      put_101(c, subprotocol) != 0) {
    lmz__ws_session_free(&ws->s);
    free(ws);
    return LMZ_ENOMEM;
  }
  lmz_http_server_t *srv = c->srv;
  srv->priv.m.responses++;
  srv->priv.m.ws_open++;
  c->ws = ws;
  c->pending = false;
  c->state = LMZ__C_WS;
  ws->last_rx_ms = lmz_http_server_now(srv);
  c->last_progress_ms = ws->last_rx_ms;
  lmz__http_conn_arm(c, ws->opts.ping_interval_ms);
  /* HTTP request memory is not needed any more */
  lmz_buf_free(&c->head);
  lmz_buf_free(&c->hidx);
  lmz_buf_free(&c->body);
  free(c->hdrs);
  c->hdrs = NULL;
  c->hdrs_cap = 0;
  memset(&c->req, 0, sizeof c->req);
  lmz__http_conn_dirty(c);
  if (c->in.len)
    lmz__http_conn_resume(c); /* frames sent right after the request */
  lmz__http_conn_update_reading(c);
  *out = ws;
  return 0;
}

/* ---- receiving ----------------------------------------------------------- */

static void deliver(void *owner, bool is_text, const uint8_t *data,
                    size_t len) {
  lmz_ws_t *ws = owner;
  lmz_http_conn_t *c = ws->conn;
  if (c->state != LMZ__C_WS || ws->closing) {
    ws->s.stop = c->state != LMZ__C_WS;
    return;
  }
  c->srv->priv.m.ws_msgs_in++;
  ws->cb.on_message(ws, is_text, data, len);
  if (c->state != LMZ__C_WS)
    ws->s.stop = true; /* closed from the callback: deliver nothing more */
}

/* After the session ran: write what it produced, close when it is done. */
static void after_session(lmz_ws_t *ws, int rv) {
  lmz_http_conn_t *c = ws->conn;
  if (c->state != LMZ__C_WS)
    return;
  if (rv == LMZ_EBADMSG)
    c->srv->priv.m.ws_protocol_closes++;
  if (c->out.len)
    lmz__http_conn_dirty(c);
  if (rv || lmz__ws_session_done(&ws->s)) {
    /* 1002/1007/1009 we had to send: a close we started (our_code; the
     * peer's Close may have been the violation) or one that answers no
     * Close of the peer's */
    if (rv != LMZ_EBADMSG && !ws->closing &&
        wslay_event_get_close_sent(ws->s.ctx) &&
        (ws->s.our_code || !wslay_event_get_close_received(ws->s.ctx)))
      c->srv->priv.m.ws_protocol_closes++;
    lmz__http_conn_drain(c);
  }
}

static void overload(lmz_ws_t *ws);

/* Room for the session's replies: max_outbound less what is in flight (the
 * rest of the backlog is conn->out, which the session counts itself). */
static size_t out_limit(const lmz_ws_t *ws) {
  size_t wb = ws->conn->wbuf.len, max = ws->opts.max_outbound;
  return wb < max ? max - wb : 0;
}

/* Room for replies in this feed: out_limit, and no more than what is left
 * of max_replies on top of what is queued now. Once our Close is out no
 * reply follows it (wslay makes none), so only out_limit matters. */
static size_t feed_limit(const lmz_ws_t *ws) {
  if (ws->closing)
    return out_limit(ws);
  size_t max = ws->opts.max_replies, used = ws->reply_backlog;
  size_t room = used < max ? max - used : 0;
  size_t lim = ws->conn->out.len + room, all = out_limit(ws);
  return lim < all ? lim : all;
}

/* Counts what this feed queued that the app did not send itself. */
static void count_replies(lmz_ws_t *ws, size_t before) {
  size_t now = lmz__http_conn_backlog(ws->conn);
  size_t grown = now > before ? now - before : 0;
  ws->reply_backlog += grown > ws->app_in_feed ? grown - ws->app_in_feed : 0;
}

void lmz__ws_feed(lmz_ws_t *ws, const uint8_t *data, size_t len) {
  lmz_http_conn_t *c = ws->conn;
  ws->last_rx_ms = lmz_http_server_now(c->srv);
  ws->ping_outstanding = false; /* any traffic proves the peer alive */
  size_t before = lmz__http_conn_backlog(c);
  ws->feeding = true;
  ws->app_in_feed = 0;
  ws->s.out_limit = feed_limit(ws);
  int rv = lmz__ws_session_feed(&ws->s, data, len);
  if (c->state == LMZ__C_WS)
    count_replies(ws, before);
  ws->feeding = false;
  if (rv == LMZ_EOVERLOAD && c->state == LMZ__C_WS) {
    /* failure 2, caused by our replies (pongs) to a peer that does not
     * read them: 1008; no more replies follow it, so the rest is fed for
     * the peer's Close answer (once: if even that is refused, dropped) */
    size_t left = ws->s.unread;
    overload(ws);
    if (c->state != LMZ__C_WS)
      return;
    ws->s.out_limit = out_limit(ws);
    rv = lmz__ws_session_feed(&ws->s, data + len - left, left);
  }
  after_session(ws, rv == LMZ_EOVERLOAD ? 0 : rv);
}

bool lmz__ws_wants_read(const lmz_ws_t *ws) { return !ws->read_paused; }

void lmz__ws_on_eof(lmz_ws_t *ws) {
  /* a FIN without (or after) the close handshake: nothing more will come */
  lmz__http_conn_close(ws->conn);
}

/* ---- sending ------------------------------------------------------------- */

static void update_backpressure(lmz_ws_t *ws) {
  bool over = lmz__http_conn_backlog(ws->conn) > ws->opts.max_outbound / 2;
  if (over != ws->read_paused) {
    ws->read_paused = over;
    lmz__http_conn_update_reading(ws->conn);
  }
}

/* Failure 2: drop unsent output, queue 1008, start the close timer. */
static void overload(lmz_ws_t *ws) {
  static const char why[] = "outbound queue full";
  lmz_http_conn_t *c = ws->conn;
  c->srv->priv.m.ws_overload_closes++;
  LMZ_LOG_INFO(&log_ns, "%s: peer does not read; closing with 1008", c->remote);
  c->out.len = 0; /* whole frames only: the in-flight write is untouched */
  if (c->out.cap > 16u * 1024u)
    lmz_buf_free(&c->out); /* give the memory back now, not at close */
  if (ws->reply_backlog > c->wbuf.len)
    ws->reply_backlog = c->wbuf.len; /* the rest was just dropped */
  if (lmz__ws_session_close(&ws->s, WSLAY_CODE_POLICY_VIOLATION, why,
                            sizeof why - 1) != 0) {
    lmz__http_conn_close(c);
    return;
  }
  ws->closing = true;
  ws->read_paused = false; /* read the peer's Close answer */
  lmz__http_conn_update_reading(c);
  lmz__http_conn_arm(c, ws->opts.close_timeout_ms);
  lmz__http_conn_dirty(c);
}

static int send_msg(lmz_ws_t *ws, uint8_t opcode, const void *data,
                    size_t len) {
  lmz_http_conn_t *c = ws->conn;
  if (c->state != LMZ__C_WS || ws->closing || !lmz__ws_session_can_send(&ws->s))
    return LMZ_ECLOSED;
  size_t frame = len + lmz__ws_frame_overhead(len);
  if (len > ws->opts.max_outbound || frame > ws->opts.max_outbound)
    return LMZ_ETOOBIG;
  if (lmz__http_conn_backlog(c) + frame > ws->opts.max_outbound) {
    overload(ws);
    return LMZ_EOVERLOAD;
  }
  int rv = lmz__ws_session_send(&ws->s, opcode, data, len);
  if (rv)
    return rv;
  if (ws->feeding)
    ws->app_in_feed += frame;
  c->srv->priv.m.ws_msgs_out++;
  lmz__http_conn_dirty(c);
  update_backpressure(ws);
  return 0;
}

int lmz_ws_send_text(lmz_ws_t *ws, const void *data, size_t len) {
  return send_msg(ws, WSLAY_TEXT_FRAME, data, len);
}

int lmz_ws_send_binary(lmz_ws_t *ws, const void *data, size_t len) {
  return send_msg(ws, WSLAY_BINARY_FRAME, data, len);
}

void lmz__ws_on_written(lmz_ws_t *ws) {
  size_t backlog = lmz__http_conn_backlog(ws->conn);
  if (ws->reply_backlog > backlog)
    ws->reply_backlog = backlog;
  update_backpressure(ws);
  if (ws->conn->state == LMZ__C_WS && lmz__ws_session_done(&ws->s))
    lmz__http_conn_drain(ws->conn);
}

/* ---- closing ------------------------------------------------------------- */

/* Codes an endpoint may send (RFC 6455 §7.4.1, IANA registry). */
static bool code_sendable(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

/* Longest prefix of s, at most 123 bytes, that does not cut a UTF-8
 * sequence. */
static size_t reason_len(const char *s) {
  size_t n = s ? strlen(s) : 0;
  if (n <= 123)
    return n;
  n = 123;
  while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
    n--; /* s[n] continues a sequence: cut before its lead byte */
  return n;
}

int lmz_ws_close(lmz_ws_t *ws, int code, const char *reason) {
  if (!code_sendable(code))
    return LMZ_EINVAL;
  lmz_http_conn_t *c = ws->conn;
  if (c->state != LMZ__C_WS || ws->closing)
    return LMZ_ECLOSED;
  int rv =
      lmz__ws_session_close(&ws->s, (uint16_t)code, reason, reason_len(reason));
  if (rv == LMZ_ECLOSED)
    return rv;
  ws->closing = true;
  ws->read_paused = false;
  lmz__http_conn_arm(c, ws->opts.close_timeout_ms);
  after_session(ws, rv == LMZ_ENOMEM ? rv : 0);
  if (c->state == LMZ__C_WS)
    lmz__http_conn_update_reading(c);
  return 0;
}

void lmz__ws_on_timer(lmz_ws_t *ws) {
  lmz_http_conn_t *c = ws->conn;
  if (ws->closing) { /* failure 2 / 4: no Close answer in time */
    lmz__http_conn_close(c);
    return;
  }
  uint64_t now = lmz_http_server_now(c->srv), iv = ws->opts.ping_interval_ms;
  /* dead: our ping got no traffic back within an interval (not while we
   * do not read ourselves: then the write-stall check decides) */
  bool quiet = !ws->read_paused && ws->ping_outstanding &&
               now - ws->ping_sent_ms >= iv;
  bool stalled =
      lmz__http_conn_backlog(c) > 0 && now - c->last_progress_ms >= 2 * iv;
  if (quiet || stalled) { /* failure 3 */
    c->srv->priv.m.ws_dead_peers++;
    LMZ_LOG_DEBUG(&log_ns, "%s: dead peer (%s)", c->remote,
                  quiet ? "silent" : "not reading");
    lmz__http_conn_close(c);
    return;
  }
  if (!ws->ping_outstanding && now - ws->last_rx_ms >= iv / 2 &&
      lmz__ws_session_ping(&ws->s) == 0) { /* quiet for a while: ask */
    ws->ping_outstanding = true;
    ws->ping_sent_ms = now;
    lmz__http_conn_dirty(c);
  }
  lmz__http_conn_arm(c, (uint32_t)iv);
}

void lmz__ws_going_away(lmz_ws_t *ws) {
  static const char why[] = "server shutting down";
  if (!ws->closing &&
      lmz__ws_session_close(&ws->s, 1001, why, sizeof why - 1) == 0)
    ws->closing = true;
}

void lmz__ws_finish(lmz_ws_t *ws) {
  lmz_http_server_t *srv = ws->conn->srv;
  const char *reason;
  size_t rlen;
  int code = lmz__ws_session_close_code(&ws->s, &reason, &rlen);
  srv->priv.m.ws_open--;
  ws->cb.on_close(ws, code, reason, rlen);
  lmz__ws_session_free(&ws->s);
  free(ws);
}

/* ---- accessors ----------------------------------------------------------- */

void *lmz_ws_data(const lmz_ws_t *ws) { return ws->data; }
void lmz_ws_set_data(lmz_ws_t *ws, void *data) { ws->data = data; }
size_t lmz_ws_queued_bytes(const lmz_ws_t *ws) {
  return lmz__http_conn_backlog(ws->conn);
}
const char *lmz_ws_remote(const lmz_ws_t *ws) { return ws->conn->remote; }
lmz_http_server_t *lmz_ws_server(const lmz_ws_t *ws) { return ws->conn->srv; }
