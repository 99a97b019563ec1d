/* Tests for gateway/ws_conn.c + ws_session.c over real loopback sockets: a
 * raw WebSocket client (masked frames built by hand) against the server on
 * a libuv loop in the same thread (gwtest.h pumps it). Upgrade, subprotocol
 * and token extraction, echo, fragments, ping/pong, close handshakes both
 * ways, invalid UTF-8, oversize, protocol errors, a client that does not
 * read, dead peers, and 2000 connections with bounded memory. A ping flood
 * runs on a socketless connection (http_int.h), where nothing is written
 * while the test holds the loop: a peer that never reads, without timing. */
#include "lib/testlib.h"

#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "gateway/http.h"
#include "gateway/http_int.h" /* socketless connections (test_ping_flood) */
#include "gateway/jwt.h"
#include "gateway/ws.h"
#include "gwtest.h"

/* ---- the app ------------------------------------------------------------- */

static struct {
  lmz_http_server_t srv;
  struct lmz_ws_options wso;
  bool closed;
  int upgrades, accepted, messages, closes;
  int last_code;
  char last_reason[128];
  int flood_rv;      /* what the flood's last send returned */
  size_t max_queued; /* largest lmz_ws_queued_bytes seen while flooding */
  lmz_ws_t *last_ws;
  char token[64];
  uv_timer_t flood_timer;
  lmz_ws_t *flooded;
  lmz_http_conn_t *held; /* upgrade accepted later */
  int conn_closes_pending;
} T;

static void on_closed(lmz_http_server_t *srv);

/* Pushes 4 x 64 KiB per tick to T.flooded until a send fails. */
static void flood_tick(uv_timer_t *t) {
  static uint8_t chunk[64 * 1024];
  for (int i = 0; i < 4; i++) {
    int rv = lmz_ws_send_binary(T.flooded, chunk, sizeof chunk);
    size_t q = lmz_ws_queued_bytes(T.flooded);
    if (q > T.max_queued)
      T.max_queued = q;
    if (rv) {
      T.flood_rv = rv;
      uv_timer_stop(t);
      return;
    }
  }
}

static void on_message(lmz_ws_t *ws, bool is_text, const uint8_t *d, size_t n) {
  T.messages++;
  if (is_text && n == 8 && !memcmp(d, "close-me", 8)) {
    assert_int_equal(lmz_ws_close(ws, 4409, "Superseded by new connection"), 0);
    assert_int_equal(lmz_ws_close(ws, 1000, NULL), LMZ_ECLOSED);
    assert_int_equal(lmz_ws_send_text(ws, "x", 1), LMZ_ECLOSED);
    return;
  }
  if (is_text && n == 10 && !memcmp(d, "slow-close", 10)) {
    /* a handler that holds the loop (a large frame parsed) past the close
     * timeout, then closes: the loop's cached time is now stale */
    uint64_t until = tl_now_ms() + 600;
    while (tl_now_ms() < until)
      ;
    assert_int_equal(lmz_ws_close(ws, 4409, "Superseded by new connection"), 0);
    return;
  }
  if (is_text && n == 5 && !memcmp(d, "flood", 5)) {
    T.flooded = ws; /* server push from a timer, the client never reads */
    uv_timer_start(&T.flood_timer, flood_tick, 1, 1);
    return;
  }
  if (is_text && n == 4 && !memcmp(d, "shut", 4)) {
    lmz_http_server_close(lmz_ws_server(ws), on_closed);
    return;
  }
  int rv = is_text ? lmz_ws_send_text(ws, d, n) : lmz_ws_send_binary(ws, d, n);
  assert_int_equal(rv, 0);
}

static void on_close(lmz_ws_t *ws, int code, const char *reason, size_t n) {
  (void)ws;
  T.closes++;
  T.last_code = code;
  snprintf(T.last_reason, sizeof T.last_reason, "%.*s", (int)n, reason);
}

/* Accepts the held upgrade from a timer: later than on_upgrade. */
static void accept_later(uv_timer_t *t) {
  (void)t;
  static const struct lmz_ws_callbacks cb = {on_message, on_close};
  lmz_ws_t *ws = NULL;
  if (T.held)
    assert_int_equal(lmz_ws_accept(T.held, "lmz", &cb, &T.wso, NULL, &ws), 0);
  T.held = NULL;
  T.accepted += ws != NULL;
}

static void on_upgrade(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req) {
  (void)srv;
  T.upgrades++;
  if (req->path_len == 6 && !memcmp(req->path, "/async", 6)) {
    T.held = conn; /* decided later, as after an actor round trip */
    uv_timer_start(&T.flood_timer, accept_later, 30, 0);
    return;
  }
  const char *tok;
  size_t tl;
  bool lmz;
  if (!lmz_ws_protocol_token(req, &tok, &tl, &lmz)) {
    struct lmz_jwt_answer a;
    lmz_jwt_answer(LMZ_JWT_EMISSING_WS, &a);
    assert_int_equal(
        lmz_http_respond_text(conn, a.http_status, a.content_type, a.body), 0);
    return;
  }
  snprintf(T.token, sizeof T.token, "%.*s", (int)tl, tok);
  static const struct lmz_ws_callbacks cb = {on_message, on_close};
  lmz_ws_t *ws = NULL;
  assert_int_equal(
      lmz_ws_accept(conn, lmz ? "lmz" : NULL, &cb, &T.wso, NULL, &ws), 0);
  assert_int_equal(lmz_ws_accept(conn, NULL, &cb, NULL, NULL, &ws),
                   LMZ_EINVAL); /* answered already */
  T.accepted++;
  T.last_ws = ws;
}

static void on_request(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req) {
  (void)srv, (void)req;
  struct lmz_jwt_answer a;
  lmz_jwt_answer(LMZ_JWT_ENOUPGRADE, &a);
  lmz_http_respond_text(conn, a.http_status, a.content_type, a.body);
}

static void on_closed(lmz_http_server_t *srv) {
  (void)srv;
  T.closed = true;
}

static void on_conn_close(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                          bool had_pending) {
  (void)srv;
  T.conn_closes_pending += had_pending;
  if (conn == T.held)
    T.held = NULL; /* as an app must: the late accept is off */
}

static void start_ex(const struct lmz_ws_options *wso, uint32_t max_conns) {
  memset(&T, 0, sizeof T);
  if (wso)
    T.wso = *wso;
  gw_loop = malloc(sizeof *gw_loop);
  assert_int_equal(uv_loop_init(gw_loop), 0);
  uv_timer_init(gw_loop, &T.flood_timer);
  struct lmz_http_options o = {.host = "127.0.0.1",
                               .on_request = on_request,
                               .on_upgrade = on_upgrade,
                               .on_conn_close = on_conn_close,
                               .max_connections = max_conns};
  assert_int_equal(lmz_http_server_init(gw_loop, &T.srv, &o), 0);
}

static void start(void) { start_ex(NULL, 0); }

static void stop(void) {
  uv_close((uv_handle_t *)&T.flood_timer, NULL);
  if (!T.closed)
    lmz_http_server_close(&T.srv, on_closed);
  assert_true(gw_wait_flag(&T.closed, GW_DEADLINE_MS));
  gw_loop_teardown();
  free(gw_loop);
}

static int port(void) { return lmz_http_server_port(&T.srv); }

/* ---- a raw client -------------------------------------------------------- */

#define KEY "dGhlIHNhbXBsZSBub25jZQ==" /* RFC 6455 §1.3 example */

static size_t frame(uint8_t *out, bool fin, uint8_t op, const void *p, size_t n,
                    bool mask) {
  size_t k = 0;
  out[k++] = (uint8_t)((fin ? 0x80 : 0) | op);
  uint8_t m = mask ? 0x80 : 0;
  if (n < 126) {
    out[k++] = (uint8_t)(m | n);
  } else if (n < 65536) {
    out[k++] = m | 126;
    out[k++] = (uint8_t)(n >> 8);
    out[k++] = (uint8_t)n;
  } else {
    out[k++] = m | 127;
    for (int i = 7; i >= 0; i--)
      out[k++] = (uint8_t)((uint64_t)n >> (8 * i));
  }
  static const uint8_t key[4] = {0x12, 0x34, 0x56, 0x78};
  if (mask) {
    memcpy(out + k, key, 4);
    k += 4;
  }
  for (size_t i = 0; i < n; i++)
    out[k + i] = ((const uint8_t *)p)[i] ^ (mask ? key[i % 4] : 0);
  return k + n;
}

static void send_frame(int fd, bool fin, uint8_t op, const void *p, size_t n) {
  uint8_t *buf = malloc(n + 14);
  gw_send(fd, buf, frame(buf, fin, op, p, n, true));
  free(buf);
}

/* Opens a WebSocket: the request (plus `extra` headers and `after` bytes in
 * the same write); returns the fd with the 101 consumed into `resp`. */
static int ws_open_ex(const char *extra, const void *after, size_t after_len,
                      char **resp, lmz_buf *b) {
  int fd = gw_connect(port());
  lmz_buf req = LMZ_BUF_INIT;
  lmz_buf_printf(&req,
                 "GET /gateway/LMZ/alice.t1 HTTP/1.1\r\nHost: x\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: " KEY "\r\n"
                 "Sec-WebSocket-Version: 13\r\n%s\r\n",
                 extra);
  if (after_len)
    lmz_buf_append(&req, after, after_len);
  gw_send(fd, req.data, req.len);
  lmz_buf_free(&req);
  *resp = gw_read_response(fd, b);
  return fd;
}

static int ws_open(lmz_buf *b) {
  char *r;
  int fd = ws_open_ex("Sec-WebSocket-Protocol: lmz, lmz.access-token.tok\r\n",
                      NULL, 0, &r, b);
  assert_int_equal(gw_status(r), 101);
  free(r);
  return fd;
}

struct rframe {
  bool fin;
  uint8_t op;
  size_t len;
  uint8_t *data; /* malloc'd, NUL-terminated */
};

/* Reads one server frame (unmasked) from fd (bytes buffered in b). Returns
 * false on EOF before a whole frame. */
static bool read_frame(int fd, lmz_buf *b, struct rframe *f) {
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  for (;;) {
    if (b->len >= 2) {
      assert_int_equal(b->data[1] & 0x80, 0); /* servers never mask */
      size_t hl = 2, n = b->data[1] & 0x7f;
      if (n == 126) {
        hl = 4;
        n = b->len >= 4 ? ((size_t)b->data[2] << 8 | b->data[3]) : 0;
      } else if (n == 127) {
        hl = 10;
        n = 0;
        for (int i = 0; b->len >= 10 && i < 8; i++)
          n = n << 8 | b->data[2 + i];
      }
      if (b->len >= hl && b->len >= hl + n) {
        f->fin = b->data[0] & 0x80;
        f->op = b->data[0] & 0x0f;
        f->len = n;
        f->data = malloc(n + 1);
        memcpy(f->data, b->data + hl, n);
        f->data[n] = 0;
        memmove(b->data, b->data + hl + n, b->len - hl - n);
        b->len -= hl + n;
        return true;
      }
    }
    ssize_t r = gw_recv_some(fd, b);
    if (r == 0 || r == -2)
      return false;
    if (r < 0)
      gw_step(fd);
    assert_true(tl_now_ms() < end);
  }
}

static void expect_frame(int fd, lmz_buf *b, uint8_t op, const void *p,
                         size_t n) {
  struct rframe f;
  assert_true(read_frame(fd, b, &f));
  assert_int_equal(f.op, op);
  assert_true(f.fin);
  assert_int_equal(f.len, n);
  assert_memory_equal(f.data, p, n);
  free(f.data);
}

/* Expects a Close frame with `code`, then EOF; returns the reason. */
static void expect_close(int fd, lmz_buf *b, int code, const char *reason) {
  struct rframe f;
  assert_true(read_frame(fd, b, &f));
  assert_int_equal(f.op, 0x8);
  if (code == 0) {
    assert_int_equal(f.len, 0);
  } else {
    assert_true(f.len >= 2);
    assert_int_equal((f.data[0] << 8) | f.data[1], code);
    if (reason)
      assert_string_equal((char *)f.data + 2, reason);
  }
  free(f.data);
  assert_true(gw_wait_eof(fd, b, GW_DEADLINE_MS));
}

static void wait_closes(int n) {
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  while (T.closes < n && tl_now_ms() < end)
    gw_step(-1);
  assert_int_equal(T.closes, n);
}

/* ---- tests --------------------------------------------------------------- */

static void test_upgrade_and_echo(void **state) {
  (void)state;
  start();
  lmz_buf b = LMZ_BUF_INIT;
  /* frames in the same write as the request are frames, not HTTP */
  uint8_t pre[64];
  size_t pn = frame(pre, true, 0x1, "early", 5, true);
  char *r;
  int fd = ws_open_ex("Sec-WebSocket-Protocol: lmz, lmz.access-token.abc.def"
                      "\r\n",
                      pre, pn, &r, &b);
  assert_int_equal(gw_status(r), 101);
  assert_non_null(
      strstr(r, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
  assert_non_null(strstr(r, "\r\nSec-WebSocket-Protocol: lmz\r\n"));
  assert_non_null(strstr(r, "\r\nUpgrade: websocket\r\n"));
  free(r);
  assert_string_equal(T.token, "abc.def");
  expect_frame(fd, &b, 0x1, "early", 5);
  send_frame(fd, true, 0x1, "hello", 5);
  expect_frame(fd, &b, 0x1, "hello", 5);
  uint8_t bin[3] = {0, 0xff, 7};
  send_frame(fd, true, 0x2, bin, 3);
  expect_frame(fd, &b, 0x2, bin, 3);
  send_frame(fd, true, 0x1, "", 0);
  expect_frame(fd, &b, 0x1, "", 0);
  /* large (64-bit length) message */
  size_t big = 200000;
  uint8_t *p = malloc(big);
  for (size_t i = 0; i < big; i++)
    p[i] = (uint8_t)(i * 7);
  send_frame(fd, true, 0x2, p, big);
  expect_frame(fd, &b, 0x2, p, big);
  free(p);
  /* fragmented, with a ping in the middle, and a UTF-8 character split
   * across the fragments ("h\xc3\xa9llo" = "héllo") */
  send_frame(fd, false, 0x1, "h\xc3", 2);
  send_frame(fd, true, 0x9, "pp", 2);
  send_frame(fd, false, 0x0, "\xa9l", 2);
  send_frame(fd, true, 0x0, "lo", 2);
  expect_frame(fd, &b, 0xA, "pp", 2); /* pong first */
  expect_frame(fd, &b, 0x1, "h\xc3\xa9llo", 6);
  /* unsolicited pong: ignored */
  send_frame(fd, true, 0xA, "x", 1);
  send_frame(fd, true, 0x1, "after", 5);
  expect_frame(fd, &b, 0x1, "after", 5);
  assert_int_equal(T.messages, 7);
  /* client-initiated close: echoed, then the server closes TCP */
  uint8_t cl[5] = {0x03, 0xe8, 'b', 'y', 'e'};
  send_frame(fd, true, 0x8, cl, 5);
  expect_close(fd, &b, 1000, "bye");
  wait_closes(1);
  assert_int_equal(T.last_code, 1000);
  assert_string_equal(T.last_reason, "bye");
  close(fd);
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.ws_msgs_in, 7);
  assert_int_equal(m.ws_msgs_out, 7);
  assert_int_equal(m.ws_open, 0);
  lmz_buf_free(&b);
  stop();
}

static void test_server_close_codes(void **state) {
  (void)state;
  struct lmz_ws_options wso = {.close_timeout_ms = 200};
  start_ex(&wso, 0);
  lmz_buf b = LMZ_BUF_INIT;
  /* the app closes with 4409; the client answers */
  int fd = ws_open(&b);
  send_frame(fd, true, 0x1, "close-me", 8);
  struct rframe f;
  assert_true(read_frame(fd, &b, &f));
  assert_int_equal(f.op, 0x8);
  assert_int_equal((f.data[0] << 8) | f.data[1], 4409);
  assert_string_equal((char *)f.data + 2, "Superseded by new connection");
  free(f.data);
  send_frame(fd, true, 0x1, "dropped", 7); /* after our close: not delivered */
  uint8_t cl[2] = {0x0f, 0xa0 + 0x19};     /* 4409 */
  send_frame(fd, true, 0x8, cl, 2);
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  close(fd);
  wait_closes(1);
  assert_int_equal(T.last_code, 4409);
  assert_string_equal(T.last_reason, "Superseded by new connection");
  assert_int_equal(T.messages, 1);
  /* the client never answers the close: TCP closed after close_timeout */
  fd = ws_open(&b);
  send_frame(fd, true, 0x1, "close-me", 8);
  uint64_t t0 = tl_now_ms();
  assert_true(read_frame(fd, &b, &f));
  free(f.data);
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  assert_true(tl_now_ms() - t0 >= 150);
  close(fd);
  wait_closes(2);
  assert_int_equal(T.last_code, 4409);
  /* ... counted from the close, not from before a slow handler (libuv's
   * cached loop time would fire the 200 ms timer at once) */
  fd = ws_open(&b);
  send_frame(fd, true, 0x1, "slow-close", 10);
  assert_true(read_frame(fd, &b, &f));
  assert_int_equal(f.op, 0x8);
  free(f.data);
  t0 = tl_now_ms();
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  assert_true(tl_now_ms() - t0 >= 100);
  close(fd);
  wait_closes(3);
  /* EOF without a close frame: 1006 */
  fd = ws_open(&b);
  send_frame(fd, true, 0x1, "hi", 2);
  expect_frame(fd, &b, 0x1, "hi", 2);
  close(fd);
  wait_closes(4);
  assert_int_equal(T.last_code, 1006);
  assert_string_equal(T.last_reason, "");
  /* close codes the app may not send */
  fd = ws_open(&b);
  assert_non_null(T.last_ws);
  assert_int_equal(lmz_ws_close(T.last_ws, 1005, NULL), LMZ_EINVAL);
  assert_int_equal(lmz_ws_close(T.last_ws, 1006, NULL), LMZ_EINVAL);
  assert_int_equal(lmz_ws_close(T.last_ws, 999, NULL), LMZ_EINVAL);
  assert_int_equal(lmz_ws_close(T.last_ws, 5000, NULL), LMZ_EINVAL);
  /* a long reason is cut at 123 bytes on a character boundary */
  char reason[200];
  memset(reason, 'a', 122);
  strcpy(reason + 122, "\xc3\xa9zzzz"); /* é straddles byte 123 */
  assert_int_equal(lmz_ws_close(T.last_ws, 1000, reason), 0);
  assert_true(read_frame(fd, &b, &f));
  assert_int_equal(f.len, 2 + 122);
  free(f.data);
  close(fd);
  wait_closes(5);
  /* server shutdown: 1001 going away */
  fd = ws_open(&b);
  send_frame(fd, true, 0x1, "shut", 4);
  expect_close(fd, &b, 1001, "server shutting down");
  close(fd);
  wait_closes(6);
  assert_int_equal(T.last_code, 1001);
  assert_true(gw_wait_flag(&T.closed, GW_DEADLINE_MS));
  lmz_buf_free(&b);
  stop(); /* a second close is a no-op */
}

static void test_protocol_errors(void **state) {
  (void)state;
  struct lmz_ws_options wso = {.max_message = 1000};
  start_ex(&wso, 0);
  lmz_buf b = LMZ_BUF_INIT;
  struct {
    const char *name;
    int code;
  } cases[] = {{"bad utf-8", 1007},      {"bad utf-8 at end", 1007},
               {"oversize frame", 1009}, {"oversize fragments", 1009},
               {"unmasked", 1002},       {"reserved opcode", 1002},
               {"rsv bit", 1002},        {"stray continuation", 1002},
               {"long ping", 1002},      {"fragmented ping", 1002},
               {"bad close code", 1002}, {"non-minimal length", 1002},
               {"1-byte close payload", 1002}};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    int fd = ws_open(&b);
    uint8_t buf[3000], pay[1200];
    memset(pay, 'a', sizeof pay);
    size_t n = 0;
    switch (i) {
    case 0:
      n = frame(buf, true, 0x1, "ab\xff", 3, true);
      break;
    case 1:
      n = frame(buf, true, 0x1, "ab\xc3", 3, true); /* truncated sequence */
      break;
    case 2:
      n = frame(buf, true, 0x2, pay, 1001, true);
      break;
    case 3:
      n = frame(buf, false, 0x2, pay, 600, true);
      n += frame(buf + n, true, 0x0, pay, 600, true);
      break;
    case 4:
      n = frame(buf, true, 0x1, "hi", 2, false);
      break;
    case 5:
      n = frame(buf, true, 0x3, "hi", 2, true);
      break;
    case 6:
      n = frame(buf, true, 0x1, "hi", 2, true);
      buf[0] |= 0x40;
      break;
    case 7:
      n = frame(buf, true, 0x0, "hi", 2, true);
      break;
    case 8:
      n = frame(buf, true, 0x9, pay, 126, true);
      break;
    case 9:
      n = frame(buf, false, 0x9, "p", 1, true);
      break;
    case 10: {
      uint8_t cl[2] = {0x03, 0xed}; /* 1005 may not be sent */
      n = frame(buf, true, 0x8, cl, 2, true);
      break;
    }
    case 11: /* 5 bytes with a 16-bit length */
      buf[0] = 0x81, buf[1] = 0x80 | 126, buf[2] = 0, buf[3] = 5;
      memset(buf + 4, 0, 4 + 5);
      n = 13;
      break;
    case 12: /* RFC 6455 §5.5.1: a Close body starts with a 2-byte code */
      n = frame(buf, true, 0x8, "\x03", 1, true);
      break;
    }
    gw_send(fd, buf, n);
    /* 1009 carries the original's reason (issue 13 item 4) */
    const char *why = cases[i].code == 1009 ? "Message is too large" : NULL;
    expect_close(fd, &b, cases[i].code, why);
    close(fd);
    wait_closes((int)i + 1);
    if (T.last_code != cases[i].code)
      fprintf(stderr, "case %s: on_close %d\n", cases[i].name, T.last_code);
    assert_int_equal(T.last_code, cases[i].code);
    if (why)
      assert_string_equal(T.last_reason, why);
    /* and others are still served */
    fd = ws_open(&b);
    send_frame(fd, true, 0x1, "ok", 2);
    expect_frame(fd, &b, 0x1, "ok", 2);
    close(fd);
    wait_closes((int)i + 2);
    T.closes--; /* keep the count per case */
  }
  assert_int_equal(T.messages, (int)LMZ_ARRAY_SIZE(cases));
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.ws_protocol_closes, LMZ_ARRAY_SIZE(cases));
  lmz_buf_free(&b);
  stop();
}

/* The app accepts later (after an actor round trip, say); frames the client
 * sent right behind its request wait and are delivered after the 101. */
static void test_async_accept(void **state) {
  (void)state;
  start();
  lmz_buf b = LMZ_BUF_INIT;
  int fd = gw_connect(port());
  uint8_t early[64];
  size_t en = frame(early, true, 0x1, "first", 5, true);
  lmz_buf req = LMZ_BUF_INIT;
  lmz_buf_printf(&req, "GET /async HTTP/1.1\r\nHost: x\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: " KEY "\r\n"
                       "Sec-WebSocket-Version: 13\r\n"
                       "Sec-WebSocket-Protocol: lmz\r\n\r\n");
  lmz_buf_append(&req, early, en);
  gw_send(fd, req.data, req.len);
  lmz_buf_free(&req);
  send_frame(fd, true, 0x1, "second", 6); /* while the app decides */
  char *r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 101);
  assert_non_null(strstr(r, "\r\nSec-WebSocket-Protocol: lmz\r\n"));
  free(r);
  assert_int_equal(T.accepted, 1);
  expect_frame(fd, &b, 0x1, "first", 5);
  expect_frame(fd, &b, 0x1, "second", 6);
  send_frame(fd, true, 0x1, "third", 5);
  expect_frame(fd, &b, 0x1, "third", 5);
  close(fd);
  wait_closes(1);
  /* the client resets before the app decides: on_conn_close says the
   * upgrade was pending, and the late accept does not happen */
  fd = gw_connect(port());
  gw_sends(fd, "GET /async HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n");
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  while (!T.held && tl_now_ms() < end)
    gw_step(fd);
  assert_non_null(T.held);
  struct linger lg = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  end = tl_now_ms() + GW_DEADLINE_MS;
  while (T.conn_closes_pending < 1 && tl_now_ms() < end)
    gw_step(-1);
  assert_int_equal(T.conn_closes_pending, 1);
  assert_null(T.held);
  for (int i = 0; i < 30; i++) /* the timer fires: nothing to accept */
    gw_step(-1);
  assert_int_equal(T.accepted, 1);
  assert_int_equal(T.closes, 1);
  lmz_buf_free(&b);
  stop();
}

static void test_handshake_rejections(void **state) {
  (void)state;
  start();
  lmz_buf b = LMZ_BUF_INIT;
  char *r;
  /* no token subprotocol: the app answers like the original */
  int fd = ws_open_ex("Sec-WebSocket-Protocol: lmz\r\n", NULL, 0, &r, &b);
  assert_int_equal(gw_status(r), 401);
  assert_string_equal(gw_body(r),
                      "Unauthorized: Missing access token in WebSocket "
                      "subprotocol");
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  free(r);
  close(fd);
  /* token without "lmz": accepted, no subprotocol in the answer */
  fd = ws_open_ex("Sec-WebSocket-Protocol: lmz.access-token.t\r\n", NULL, 0, &r,
                  &b);
  assert_int_equal(gw_status(r), 101);
  assert_null(strstr(r, "Sec-WebSocket-Protocol"));
  free(r);
  close(fd);
  /* bad version: 426 with the version we speak; the app is not asked */
  int up = T.upgrades;
  fd = gw_connect(port());
  gw_sends(fd, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
               "Sec-WebSocket-Version: 8\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 426);
  assert_non_null(strstr(r, "\r\nSec-WebSocket-Version: 13\r\n"));
  free(r);
  close(fd);
  /* bad key */
  fd = gw_connect(port());
  gw_sends(fd, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: short\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 400);
  free(r);
  close(fd);
  /* POST upgrade */
  fd = gw_connect(port());
  gw_sends(fd, "POST / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 400);
  free(r);
  close(fd);
  assert_int_equal(T.upgrades, up);
  /* a plain request to the gateway path: 426 from the app */
  fd = gw_connect(port());
  gw_sends(fd, "GET /gateway/x HTTP/1.1\r\nHost: x\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 426);
  assert_string_equal(gw_body(r), "Expected WebSocket upgrade");
  free(r);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

static void test_subprotocol_parsing(void **state) {
  (void)state;
  struct lmz_http_header h[3] = {
      {"Host", 4, "x", 1},
      {"sec-websocket-protocol", 22,
       "  foo ,lmz , lmz.access-token.A.B.C ,"
       "lmz.access-token.second",
       60},
      {"Sec-WebSocket-Protocol", 22, "lmz.access-token.third", 22}};
  struct lmz_http_request req = {.headers = h, .n_headers = 3};
  const char *t;
  size_t n;
  bool lmz;
  assert_true(lmz_ws_protocol_token(&req, &t, &n, &lmz));
  assert_int_equal(n, 5);
  assert_memory_equal(t, "A.B.C", 5);
  assert_true(lmz);
  h[1].value = "lmzx, lmz.access-token";
  h[1].value_len = strlen(h[1].value);
  req.n_headers = 2;
  assert_false(lmz_ws_protocol_token(&req, &t, &n, &lmz));
  assert_false(lmz);
  h[1].value = "lmz.access-token.";
  h[1].value_len = strlen(h[1].value);
  assert_true(lmz_ws_protocol_token(&req, &t, &n, NULL));
  assert_int_equal(n, 0); /* empty token: the JWT check rejects it */
  char acc[29];
  lmz_ws_accept_key(KEY, strlen(KEY), acc);
  assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* A client that asks for a flood and never reads: the server's sends fail
 * with LMZ_EOVERLOAD, the queue stays under the cap, and the connection is
 * closed with 1008 while other clients are served. */
static void test_non_reading_client(void **state) {
  (void)state;
  struct lmz_ws_options wso = {.max_outbound = 1u << 20,
                               .close_timeout_ms = 200};
  start_ex(&wso, 0);
  lmz_buf b = LMZ_BUF_INIT;
  int fd = ws_open(&b);
  int rcv = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  send_frame(fd, true, 0x1, "flood", 5);
  int other = ws_open(&b);
  wait_closes(1);
  assert_int_equal(T.flood_rv, LMZ_EOVERLOAD);
  assert_true(T.max_queued <= (1u << 20));
  wait_closes(1);
  assert_int_equal(T.last_code, 1008);
  assert_string_equal(T.last_reason, "outbound queue full");
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.ws_overload_closes, 1);
  /* the other client is fine */
  send_frame(other, true, 0x1, "still", 5);
  expect_frame(other, &b, 0x1, "still", 5);
  close(other);
  close(fd);
  wait_closes(2);
  lmz_buf_free(&b);
  stop();
}

/* A peer that sends pings and never reads (issue 15 item 2). On a
 * socketless connection nothing is written while the loop does not run, so
 * every pong stays queued, as with a peer that does not read. The pongs
 * count against max_outbound: input stops being consumed before they pass
 * it, the queue is replaced by "1008 outbound queue full", and pings after
 * that get no pong. Then the connection closes with 1008. */
static void test_ping_flood(void **state) {
  (void)state;
  enum { MAX_OUT = 64 * 1024, CHUNK = 4096, CHUNKS = 1024 };
  struct lmz_ws_options wso = {.max_outbound = MAX_OUT};
  start_ex(&wso, 0);
  lmz_http_conn_t *c = lmz__http_conn_new(&T.srv);
  assert_non_null(c);
  static const char req[] =
      "GET /gateway/LMZ/alice.t1 HTTP/1.1\r\nHost: x\r\n"
      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
      "Sec-WebSocket-Protocol: lmz, lmz.access-token.tok\r\n\r\n";
  lmz__http_conn_input(c, (const uint8_t *)req, sizeof req - 1);
  assert_int_equal(T.accepted, 1);
  assert_int_equal(c->state, LMZ__C_WS);
  assert_true(c->out.len > 0 && !memcmp(c->out.data, "HTTP/1.1 101 ", 13));
  c->out.len = 0; /* the 101: as if written */
  /* 4 KiB of pings with 125-byte payloads (131 bytes each on the wire) */
  static uint8_t chunk[CHUNK];
  uint8_t pay[125];
  memset(pay, 'p', sizeof pay);
  size_t n = 0, fl = frame(chunk, true, 0x9, pay, sizeof pay, true);
  while (n + fl <= CHUNK)
    n += frame(chunk + n, true, 0x9, pay, sizeof pay, true);
  size_t peak = 0;
  for (int i = 0; i < CHUNKS && c->state == LMZ__C_WS; i++) {
    lmz__http_conn_input(c, chunk, n);
    size_t q = lmz__http_conn_backlog(c);
    peak = q > peak ? q : peak;
  }
  printf("# %d x %zu bytes of pings: largest queue %zu bytes (cap %d)\n",
         CHUNKS, n, peak, MAX_OUT);
  assert_true(peak <= MAX_OUT);
  assert_true(peak >= MAX_OUT / 2); /* pings were answered up to near it */
  /* what is queued now is the Close alone: no pong after it */
  static const char why[] = "outbound queue full";
  assert_int_equal(c->state, LMZ__C_WS);
  assert_int_equal(c->out.len, 2 + 2 + sizeof why - 1);
  assert_int_equal(c->out.data[0], 0x88);
  assert_int_equal((c->out.data[2] << 8) | c->out.data[3], 1008);
  assert_memory_equal(c->out.data + 4, why, sizeof why - 1);
  wait_closes(1); /* the write fails (no socket): the connection goes */
  assert_int_equal(T.last_code, 1008);
  assert_string_equal(T.last_reason, why);
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.ws_overload_closes, 1);
  stop();
}

/* A peer that never answers pings is closed after two intervals. */
static void test_dead_peer(void **state) {
  (void)state;
  struct lmz_ws_options wso = {.ping_interval_ms = 50};
  start_ex(&wso, 0);
  lmz_buf b = LMZ_BUF_INIT;
  int fd = ws_open(&b);
  uint64_t t0 = tl_now_ms();
  struct rframe f;
  assert_true(read_frame(fd, &b, &f)); /* a ping after a quiet interval */
  assert_int_equal(f.op, 0x9);
  free(f.data);
  wait_closes(1);
  assert_int_equal(T.last_code, 1006);
  assert_true(tl_now_ms() - t0 >= 90);
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  close(fd);
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.ws_dead_peers, 1);
  /* a peer that answers pings (any traffic) stays */
  fd = ws_open(&b);
  t0 = tl_now_ms();
  while (tl_now_ms() - t0 < 300) {
    if (read_frame(fd, &b, &f)) {
      if (f.op == 0x9)
        send_frame(fd, true, 0xA, f.data, f.len);
      free(f.data);
    }
  }
  assert_int_equal(T.closes, 1);
  close(fd);
  wait_closes(2);
  lmz_buf_free(&b);
  stop();
}

/* Heap bytes in use: ASan's allocator when it is there, else glibc's. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));
static size_t heap_in_use(void) {
  if (__sanitizer_get_current_allocated_bytes)
    return __sanitizer_get_current_allocated_bytes();
  return mallinfo2().uordblks;
}

/* 2000 WebSockets at once: all echo; memory per idle connection is bounded. */
static void test_many_connections(void **state) {
  (void)state;
  enum { N = 2000 };
  start();
  static int fds[N];
  lmz_buf b = LMZ_BUF_INIT;
  size_t m0 = heap_in_use();
  for (int i = 0; i < N; i++)
    fds[i] = ws_open(&b);
  size_t per = (heap_in_use() - m0) / N;
  printf("# %d idle websockets: %zu bytes of heap each (incl. the test's)\n", N,
         per);
  assert_int_equal(T.accepted, N);
  assert_true(per < 16 * 1024);
  for (int i = 0; i < N; i++)
    send_frame(fds[i], true, 0x1, "m", 1);
  for (int i = 0; i < N; i++)
    expect_frame(fds[i], &b, 0x1, "m", 1);
  for (int i = 0; i < N; i++)
    close(fds[i]);
  wait_closes(N);
  lmz_buf_free(&b);
  stop();
}

/* Echo rate for one pipelined client (window of 64 messages in flight). */
static void test_echo_rate(void **state) {
  (void)state;
  start();
  lmz_buf b = LMZ_BUF_INIT;
  int fd = ws_open(&b);
  uint8_t msg[64], fr[80];
  memset(msg, 'x', sizeof msg);
  size_t fl = frame(fr, true, 0x2, msg, sizeof msg, true);
  enum { WINDOW = 64 };
  uint8_t batch[WINDOW * 80];
  for (int i = 0; i < WINDOW; i++)
    memcpy(batch + (size_t)i * fl, fr, fl);
  uint64_t t0 = tl_now_ms();
  long done = 0;
  while (tl_now_ms() - t0 < 500) {
    gw_send(fd, batch, fl * WINDOW);
    for (int i = 0; i < WINDOW; i++) {
      struct rframe f;
      assert_true(read_frame(fd, &b, &f));
      assert_int_equal(f.len, 64);
      free(f.data);
    }
    done += WINDOW;
  }
  uint64_t ms = tl_now_ms() - t0;
  printf("# ws echo: %ld msgs of 64 B in %llu ms = %.0f msg/s (window %d, "
         "client and server share one thread)\n",
         done, (unsigned long long)ms, done * 1000.0 / (double)ms, WINDOW);
  assert_int_equal(T.messages, done);
  close(fd);
  wait_closes(1);
  lmz_buf_free(&b);
  stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_upgrade_and_echo),
      cmocka_unit_test(test_server_close_codes),
      cmocka_unit_test(test_protocol_errors),
      cmocka_unit_test(test_async_accept),
      cmocka_unit_test(test_handshake_rejections),
      cmocka_unit_test(test_subprotocol_parsing),
      cmocka_unit_test(test_non_reading_client),
      cmocka_unit_test(test_ping_flood),
      cmocka_unit_test(test_dead_peer),
      cmocka_unit_test(test_many_connections),
      cmocka_unit_test(test_echo_rate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
