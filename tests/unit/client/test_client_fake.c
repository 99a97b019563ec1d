/* Tests for the C client (clients/c/lmzc.h) against a scripted fake server
 * in the same loop: a raw libuv TCP listener that reads the upgrade
 * request, answers whatever the test wants (good or broken 101s, refusals,
 * garbage), sends hand-built server frames and decodes the client's masked
 * frames. This is where hostile server input is tested: bad handshakes,
 * timeouts, junk and unknown frames, undecodable answers, masked or
 * invalid-UTF-8 or oversized frames, server Close codes, fragments, pings,
 * incoming calls (no handler, malformed, answered late, answered after
 * close), the heartbeat and both ends of the close handshake.
 * Every wait is bounded by a timer; every loop closes with
 * uv_loop_close() == 0; ASan checks that nothing leaks. */
#define _GNU_SOURCE
#include "lib/testlib.h"

#include <arpa/inet.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "clients/c/lmzc.h"
#include "core/buf.h"

#define WAIT_MS 5000
#define MAXMSG 32

static uv_loop_t L;

/* ---- the fake server ------------------------------------------------------ */

struct msg {
  uint8_t op;
  size_t len;
  char data[2048];
};

static struct {
  uv_tcp_t srv, conn;
  bool has_conn, conn_closed, srv_closed;
  int port;
  lmz_buf in;
  bool got_request;
  char request[4096];
  char key[64];
  void (*on_request)(void); /* what to answer; NULL = good 101 + status */
  bool answer_pings;        /* reply lmz:pong to lmz:ping */
  bool manual_close;        /* do not answer the client's Close */
  int n;                    /* client messages received */
  struct msg m[MAXMSG];
  bool eof;                 /* the client closed its side */
} F;

static void deadline_cb(uv_timer_t *t) { *(bool *)t->data = true; }

#define RUN_WHILE(cond, ms)                                                    \
  do {                                                                         \
    bool late_ = false;                                                        \
    uv_timer_t t_;                                                             \
    uv_timer_init(&L, &t_);                                                    \
    t_.data = &late_;                                                          \
    uv_timer_start(&t_, deadline_cb, (uint64_t)(ms), 0);                       \
    while ((cond) && !late_)                                                   \
      uv_run(&L, UV_RUN_ONCE);                                                 \
    uv_close((uv_handle_t *)&t_, NULL);                                        \
    uv_run(&L, UV_RUN_NOWAIT);                                                 \
  } while (0)

static void written(uv_write_t *w, int status) {
  (void)status;
  free(w);
}

static void fake_raw(const void *data, size_t len) {
  if (!F.has_conn || F.conn_closed)
    return;
  uv_write_t *w = malloc(sizeof *w + len);
  assert_non_null(w);
  memcpy(w + 1, data, len);
  uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)len);
  assert_int_equal(uv_write(w, (uv_stream_t *)&F.conn, &b, 1, written), 0);
}

/* An unmasked server frame; `mask` makes it (wrongly) masked. */
static void fake_frame(uint8_t first, const void *data, size_t len, bool mask) {
  uint8_t h[14];
  size_t hn = 2;
  h[0] = first;
  if (len < 126) {
    h[1] = (uint8_t)len;
  } else if (len < 65536) {
    h[1] = 126, h[2] = (uint8_t)(len >> 8), h[3] = (uint8_t)len;
    hn = 4;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hn = 10;
  }
  lmz_buf b = LMZ_BUF_INIT;
  if (mask) {
    h[1] |= 0x80;
    memset(h + hn, 0, 4); /* key 0: the payload is unchanged */
    hn += 4;
  }
  lmz_buf_append(&b, h, hn);
  lmz_buf_append(&b, data, len);
  fake_raw(b.data, b.len);
  lmz_buf_free(&b);
}

static void fake_text(const char *s) { fake_frame(0x81, s, strlen(s), false); }

static void fake_close(uint16_t code, const char *reason) {
  uint8_t p[128] = {(uint8_t)(code >> 8), (uint8_t)code};
  size_t n = strlen(reason);
  memcpy(p + 2, reason, n);
  fake_frame(0x88, p, n + 2, false);
}

static void accept_of(const char *key, char out[29]) {
  struct sha1_ctx ctx;
  uint8_t d[SHA1_DIGEST_SIZE];
  sha1_init(&ctx);
  sha1_update(&ctx, strlen(key), (const uint8_t *)key);
  sha1_update(&ctx, 36, (const uint8_t *)"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  sha1_digest(&ctx, SHA1_DIGEST_SIZE, d);
  base64_encode_raw(out, SHA1_DIGEST_SIZE, d);
  out[28] = '\0';
}

static void fake_101_ex(const char *protocol, bool good_accept, const char *extra) {
  char acc[29], buf[1024];
  accept_of(F.key, acc);
  if (!good_accept)
    acc[0] = acc[0] == 'A' ? 'B' : 'A';
  int n = snprintf(buf, sizeof buf,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s%s\r\n",
                   acc, protocol ? "Sec-WebSocket-Protocol: " : "",
                   protocol ? protocol : "", protocol ? "\r\n" : "", extra ? extra : "");
  fake_raw(buf, (size_t)n);
}

static void fake_status(bool required) {
  fake_text(required ? "{\"type\":\"connection_status\",\"subscriptionRequired\":true}"
                     : "{\"type\":\"connection_status\",\"subscriptionRequired\":false}");
}

static void good_upgrade(void) {
  fake_101_ex("lmz", true, NULL);
  fake_status(true);
}

/* Decodes one masked client frame; bytes used, 0 when incomplete. */
static size_t take_frame(const uint8_t *p, size_t n) {
  if (n < 2)
    return 0;
  uint64_t len = p[1] & 0x7f;
  size_t hn = 2;
  if (len == 126) {
    if (n < 4)
      return 0;
    len = (uint64_t)p[2] << 8 | p[3];
    hn = 4;
  } else if (len == 127) {
    if (n < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | p[2 + i];
    hn = 10;
  }
  assert_true(p[1] & 0x80); /* RFC 6455 5.3: clients mask every frame */
  if (n < hn + 4 + len)
    return 0;
  const uint8_t *key = p + hn;
  struct msg *m = &F.m[F.n < MAXMSG ? F.n : MAXMSG - 1];
  m->op = p[0] & 0x0f;
  assert_true(p[0] & 0x80); /* FIN */
  m->len = len < sizeof m->data - 1 ? (size_t)len : sizeof m->data - 1;
  for (size_t i = 0; i < m->len; i++)
    m->data[i] = (char)(p[hn + 4 + i] ^ key[i & 3]);
  m->data[m->len] = '\0';
  F.n++;
  if (F.answer_pings && m->op == 1 && m->len == 8 && !memcmp(m->data, "lmz:ping", 8))
    fake_text("lmz:pong");
  if (m->op == 8 && !F.manual_close) /* a server answers Close, then ends */
    fake_frame(0x88, m->data, m->len, false);
  return hn + 4 + (size_t)len;
}

static void take_request(void) {
  const char *end = memmem(F.in.data, F.in.len, "\r\n\r\n", 4);
  if (!end)
    return;
  size_t n = (size_t)(end - (const char *)F.in.data) + 4;
  snprintf(F.request, sizeof F.request, "%.*s", (int)n, (const char *)F.in.data);
  const char *k = strcasestr(F.request, "Sec-WebSocket-Key: ");
  assert_non_null(k);
  snprintf(F.key, sizeof F.key, "%.24s", k + 19);
  memmove(F.in.data, F.in.data + n, F.in.len - n);
  F.in.len -= n;
  F.got_request = true;
  if (F.on_request)
    F.on_request();
  else
    good_upgrade();
}

static void srv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)h, (void)hint;
  static char buf[65536];
  *b = uv_buf_init(buf, sizeof buf);
}

static void conn_closed(uv_handle_t *h) {
  (void)h;
  F.conn_closed = true;
}

static void fake_end(void) {
  if (F.has_conn && !uv_is_closing((uv_handle_t *)&F.conn))
    uv_close((uv_handle_t *)&F.conn, conn_closed);
}

static void srv_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)s;
  if (n < 0) {
    F.eof = true;
    fake_end();
    return;
  }
  lmz_buf_append(&F.in, b->base, (size_t)n);
  if (!F.got_request)
    take_request();
  size_t used;
  while (F.got_request && F.in.len && (used = take_frame(F.in.data, F.in.len))) {
    memmove(F.in.data, F.in.data + used, F.in.len - used);
    F.in.len -= used;
  }
}

static void on_conn(uv_stream_t *srv, int status) {
  assert_int_equal(status, 0);
  assert_false(F.has_conn); /* one client per test */
  uv_tcp_init(&L, &F.conn);
  assert_int_equal(uv_accept(srv, (uv_stream_t *)&F.conn), 0);
  F.has_conn = true;
  uv_read_start((uv_stream_t *)&F.conn, srv_alloc, srv_read);
}

static void srv_closed(uv_handle_t *h) {
  (void)h;
  F.srv_closed = true;
}

static int setup(void **state) {
  (void)state;
  memset(&F, 0, sizeof F);
  assert_int_equal(uv_loop_init(&L), 0);
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_init(&L, &F.srv);
  assert_int_equal(uv_tcp_bind(&F.srv, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&F.srv, 16, on_conn), 0);
  int len = sizeof sa;
  uv_tcp_getsockname(&F.srv, (struct sockaddr *)&sa, &len);
  F.port = ntohs(sa.sin_port);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fake_end();
  uv_close((uv_handle_t *)&F.srv, srv_closed);
  for (int i = 0; i < 1000 && uv_loop_alive(&L); i++)
    uv_run(&L, UV_RUN_NOWAIT);
  int rv = uv_loop_close(&L);
  if (rv)
    uv_print_all_handles(&L, stderr);
  assert_int_equal(rv, 0);
  lmz_buf_free(&F.in);
  return 0;
}

/* ---- the client ----------------------------------------------------------- */

static struct {
  lmzc_t *c;
  bool connected, closed, disconnected;
  int status, disc_code;
  char disc_reason[128];
  int unknown;
  char unknown_text[256];
} C;

static void on_connect(lmzc_t *c, int status) {
  (void)c;
  C.connected = true;
  C.status = status;
}

static void on_close(lmzc_t *c) {
  (void)c;
  C.closed = true;
}

static void on_disconnect(lmzc_t *c, int code, const char *reason, size_t n) {
  (void)c;
  C.disconnected = true;
  C.disc_code = code;
  snprintf(C.disc_reason, sizeof C.disc_reason, "%.*s", (int)n, reason);
}

static void on_unknown(lmzc_t *c, const char *text, size_t len) {
  (void)c;
  C.unknown++;
  snprintf(C.unknown_text, sizeof C.unknown_text, "%.*s", (int)len, text);
}

static void start_ex(struct lmzc_options *o) {
  memset(&C, 0, sizeof C);
  char url[64];
  snprintf(url, sizeof url, "ws://127.0.0.1:%d/", F.port);
  o->url = url;
  o->instance = "alice.tab1";
  o->token = "header.payload.signature";
  o->on_disconnect = on_disconnect;
  o->on_unknown = on_unknown;
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = lmzc_connect(&L, &C.c, o, on_connect, err);
  if (rv)
    fprintf(stderr, "%s\n", err);
  assert_int_equal(rv, 0);
}

static void start(void) {
  struct lmzc_options o = {0};
  start_ex(&o);
}

static void connect_ok(void) {
  start();
  RUN_WHILE(!C.connected, WAIT_MS);
  assert_true(C.connected);
  assert_int_equal(C.status, 0);
}

static void close_client(void) {
  lmzc_close(C.c, on_close);
  RUN_WHILE(!C.closed, WAIT_MS);
  assert_true(C.closed);
}

/* Waits for the connect callback and checks its status (a failure). */
static void connect_fails(int status, const char *in_errmsg) {
  RUN_WHILE(!C.connected, WAIT_MS);
  assert_true(C.connected);
  if (C.status != status || (in_errmsg && !strstr(lmzc_errmsg(C.c), in_errmsg)))
    fprintf(stderr, "status %d, errmsg '%s'\n", C.status, lmzc_errmsg(C.c));
  assert_int_equal(C.status, status);
  if (in_errmsg)
    assert_non_null(strstr(lmzc_errmsg(C.c), in_errmsg));
  assert_false(lmzc_is_connected(C.c));
  close_client();
}

struct rep {
  bool done;
  int status;
  bool ok;
  double num;
  char str[128];
};

static void on_reply(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c;
  struct rep *r = data;
  r->done = true;
  r->status = status;
  r->ok = ok;
  if (v && lmz_typeof(v) == LMZ_T_NUMBER)
    r->num = lmz_get_number(v);
  if (v && lmz_typeof(v) == LMZ_T_STRING)
    snprintf(r->str, sizeof r->str, "%s", lmz_get_str(v, NULL));
  if (v && lmz_typeof(v) == LMZ_T_ERROR)
    snprintf(r->str, sizeof r->str, "%s: %s", lmz_error_name(v), lmz_error_message(v));
}

/* Sends a call; returns its callId as the server sees it (1, 2, ...). */
static void send_call(struct rep *r) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *arg = lmz_number(a, 1);
  lmz_value *chain = lmzc_method_chain(a, "echo", 1, &arg);
  memset(r, 0, sizeof *r);
  assert_int_equal(lmzc_call(C.c, "COUNTER_DO", "x", chain, on_reply, r), 0);
  lmz_arena_free(a);
}

/* Waits until the server has seen n client messages. */
static void wait_msgs(int n) {
  RUN_WHILE(F.n < n, WAIT_MS);
  assert_true(F.n >= n);
}

/* ---- handshake ------------------------------------------------------------ */

static void test_request_shape(void **state) {
  (void)state;
  connect_ok();
  assert_non_null(strstr(F.request, "GET /gateway/LUMENIZE_CLIENT_GATEWAY/alice.tab1 HTTP/1.1\r\n"));
  assert_non_null(strstr(F.request, "\r\nUpgrade: websocket\r\n"));
  assert_non_null(strstr(F.request, "\r\nSec-WebSocket-Version: 13\r\n"));
  assert_non_null(strstr(F.request,
      "\r\nSec-WebSocket-Protocol: lmz, lmz.access-token.header.payload.signature\r\n"));
  char host[64];
  snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", F.port);
  assert_non_null(strstr(F.request, host));
  assert_true(lmzc_subscription_required(C.c));
  close_client();
}

static void answer_garbage(void) { fake_raw("HELLO\r\n\r\n", 9); }
static void test_garbage_answer(void **state) {
  (void)state;
  F.on_request = answer_garbage;
  start();
  connect_fails(LMZ_EBADMSG, "bad upgrade answer");
}

static void answer_bad_accept(void) { fake_101_ex("lmz", false, NULL); }
static void test_wrong_accept(void **state) {
  (void)state;
  F.on_request = answer_bad_accept;
  start();
  connect_fails(LMZ_EBADMSG, "Sec-WebSocket-Accept");
}

static void answer_no_protocol(void) { fake_101_ex(NULL, true, NULL); }
static void test_missing_protocol(void **state) {
  (void)state;
  F.on_request = answer_no_protocol;
  start();
  connect_fails(LMZ_EBADMSG, "Sec-WebSocket-Protocol");
}

static void answer_no_upgrade(void) {
  fake_raw("HTTP/1.1 101 Switching Protocols\r\n\r\n", 36);
}
static void test_101_without_upgrade(void **state) {
  (void)state;
  F.on_request = answer_no_upgrade;
  start();
  connect_fails(LMZ_EBADMSG, "101 without Upgrade");
}

static void answer_401(void) {
  static const char r[] = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                          "Content-Length: 27\r\n\r\n{\"error\":\"invalid_token\"}\r\n";
  fake_raw(r, sizeof r - 1);
}
static void test_refusal_401(void **state) {
  (void)state;
  F.on_request = answer_401;
  start();
  connect_fails(LMZ_EAUTH, "HTTP 401: {\"error\":\"invalid_token\"}");
}

static void answer_404_eof(void) {
  fake_raw("HTTP/1.1 404 Not Found\r\n\r\nno such gateway", 41);
  fake_end();
}
static void test_refusal_404_until_eof(void **state) {
  (void)state;
  F.on_request = answer_404_eof;
  start();
  connect_fails(LMZ_ENOTFOUND, "HTTP 404: no such gateway");
}

static void answer_huge(void) {
  char line[1024];
  memset(line, 'a', sizeof line);
  fake_raw("HTTP/1.1 101 Switching Protocols\r\n", 34);
  for (int i = 0; i < 40; i++) { /* 40 KiB of one endless header */
    fake_raw("X: ", 3);
    fake_raw(line, sizeof line);
    fake_raw("\r\n", 2);
  }
}
static void test_oversized_answer(void **state) {
  (void)state;
  F.on_request = answer_huge;
  start();
  connect_fails(LMZ_EBADMSG, "bad upgrade answer");
}

static void test_eof_during_upgrade(void **state) {
  (void)state;
  F.on_request = fake_end;
  start();
  connect_fails(LMZ_ECLOSED, "during the upgrade");
}

static void answer_101_only(void) { fake_101_ex("lmz", true, NULL); }
static void test_no_connection_status(void **state) {
  (void)state;
  F.on_request = answer_101_only;
  struct lmzc_options o = {.connect_timeout_ms = 150};
  start_ex(&o);
  struct rep r;
  send_call(&r); /* queued; fails with the connect */
  connect_fails(LMZ_ETIMEOUT, "no connection_status");
  assert_true(r.done);
  assert_int_equal(r.status, LMZ_ECLOSED);
}

static void answer_close_first(void) {
  fake_101_ex("lmz", true, NULL);
  fake_close(4403, "Forbidden");
}
static void test_close_before_status(void **state) {
  (void)state;
  F.on_request = answer_close_first;
  start();
  connect_fails(LMZ_ECLOSED, "4403 Forbidden");
}

static void test_max_queued(void **state) {
  (void)state;
  F.on_request = answer_101_only; /* never ready */
  struct lmzc_options o = {.max_queued = 2};
  start_ex(&o);
  struct rep r1, r2, r3;
  send_call(&r1);
  send_call(&r2);
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "x", 0, NULL);
  memset(&r3, 0, sizeof r3);
  assert_int_equal(lmzc_call(C.c, "B", NULL, chain, on_reply, &r3), LMZ_EOVERLOAD);
  assert_int_equal(lmzc_ping(C.c, NULL, NULL), LMZ_EBUSY);
  lmz_arena_free(a);
  close_client();
  assert_int_equal(C.status, LMZ_ECANCELED); /* the connect never finished */
  assert_true(r1.done && r2.done);
  assert_int_equal(r1.status, LMZ_ECANCELED);
  assert_false(r3.done);
}

/* ---- frames --------------------------------------------------------------- */

static void test_call_frame_and_answer(void **state) {
  (void)state;
  connect_ok();
  struct rep r;
  send_call(&r);
  wait_msgs(1);
  assert_int_equal(F.m[0].op, 1);
  assert_string_equal(F.m[0].data,
      "{\"type\":\"call\",\"callId\":\"1\",\"binding\":\"COUNTER_DO\",\"instance\":\"x\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"echo\"},{\"type\":\"apply\","
      "\"args\":[1]}],\"meta\":{}}}");
  fake_text("{\"type\":\"call_response\",\"callId\":\"1\",\"success\":true,"
            "\"result\":{\"json\":42,\"meta\":{}}}");
  RUN_WHILE(!r.done, WAIT_MS);
  assert_int_equal(r.status, 0);
  assert_true(r.ok);
  assert_true(r.num == 42.0);
  close_client();
}

static void test_junk_frames_ignored(void **state) {
  (void)state;
  connect_ok();
  struct rep r;
  send_call(&r);
  wait_msgs(1);
  fake_frame(0x82, "\x01\x02", 2, false);            /* binary */
  fake_text("not json");                             /* not JSON */
  fake_text("[1,2]");                                /* not an object */
  fake_text("{\"callId\":\"1\"}");                   /* no type */
  fake_text("{\"type\":\"surprise\",\"x\":1}");      /* unknown type */
  fake_text("{\"type\":\"call_response\",\"callId\":\"99\",\"success\":true}");
  fake_text("{\"type\":\"call_response\",\"callId\":\"01\",\"success\":true}");
  fake_text("{\"type\":\"call_response\",\"callId\":7,\"success\":true}");
  fake_text("lmz:pong");                             /* no ping out */
  fake_text("{\"type\":\"call_response\",\"callId\":\"1\",\"success\":true,"
            "\"result\":{\"json\":\"fine\",\"meta\":{}}}");
  RUN_WHILE(!r.done, WAIT_MS);
  assert_true(r.ok);
  assert_string_equal(r.str, "fine");
  const struct lmzc_stats *st = lmzc_stats(C.c);
  assert_int_equal(st->frames_ignored, 6);
  assert_int_equal(st->replies_unknown, 3);
  assert_int_equal(st->replies, 1);
  assert_int_equal(C.unknown, 1);
  assert_string_equal(C.unknown_text, "{\"type\":\"surprise\",\"x\":1}");
  assert_true(lmzc_is_connected(C.c));
  close_client();
}

static void test_undecodable_answers(void **state) {
  (void)state;
  connect_ok();
  struct rep r1, r2, r3;
  send_call(&r1);
  send_call(&r2);
  send_call(&r3);
  wait_msgs(3);
  fake_text("{\"type\":\"call_response\",\"callId\":\"1\",\"success\":true,"
            "\"result\":{\"json\":{\"$type\":\"bigint\",\"value\":\"x\"},\"meta\":{}}}");
  fake_text("{\"type\":\"call_response\",\"callId\":\"2\",\"result\":1}");
  fake_text("{\"type\":\"call_response\",\"callId\":\"3\",\"success\":false,"
            "\"error\":{\"json\":{\"$type\":\"error\",\"name\":\"TypeError\","
            "\"message\":\"nope\"},\"meta\":{}}}");
  RUN_WHILE(!(r1.done && r2.done && r3.done), WAIT_MS);
  assert_int_equal(r1.status, LMZ_EBADMSG);
  assert_int_equal(r2.status, LMZ_EBADMSG);
  assert_int_equal(r3.status, 0);
  assert_false(r3.ok);
  assert_string_equal(r3.str, "TypeError: nope");
  assert_true(lmzc_is_connected(C.c));
  close_client();
}

static void test_fragments_and_server_ping(void **state) {
  (void)state;
  connect_ok();
  struct rep r;
  send_call(&r);
  wait_msgs(1);
  const char *a = "{\"type\":\"call_response\",", *b = "\"callId\":\"1\",\"success\":true,",
             *c = "\"result\":{\"json\":\"joined\",\"meta\":{}}}";
  fake_frame(0x01, a, strlen(a), false); /* text, not FIN */
  fake_frame(0x89, "hb", 2, false);     /* a ping in between */
  fake_frame(0x00, b, strlen(b), false); /* continuation */
  fake_frame(0x80, c, strlen(c), false); /* continuation, FIN */
  RUN_WHILE(!r.done, WAIT_MS);
  assert_true(r.ok);
  assert_string_equal(r.str, "joined");
  wait_msgs(2);
  assert_int_equal(F.m[1].op, 0xA); /* pong with the ping's payload */
  assert_string_equal(F.m[1].data, "hb");
  close_client();
}

/* A protocol violation: the client closes with `code`, calls fail. */
static void expect_violation(int code) {
  struct rep r;
  send_call(&r);
  RUN_WHILE(!C.disconnected, WAIT_MS);
  assert_true(C.disconnected);
  assert_int_equal(C.disc_code, code);
  assert_true(r.done);
  /* an answer over max_message: the call fails as "too big", not "closed" */
  assert_int_equal(r.status, code == 1009 ? LMZ_ETOOBIG : LMZ_ECLOSED);
  assert_false(lmzc_is_connected(C.c));
  RUN_WHILE(F.n < 2 || F.m[F.n - 1].op != 8, WAIT_MS); /* our Close arrived */
  struct msg *m = &F.m[F.n - 1];
  assert_int_equal(m->op, 8);
  assert_int_equal(((uint8_t)m->data[0] << 8) | (uint8_t)m->data[1], code);
  if (code == 1009) { /* the gateway's words, not an empty reason */
    assert_int_equal(m->len, 2 + strlen(LMZC_TOO_BIG_REASON));
    assert_memory_equal(m->data + 2, LMZC_TOO_BIG_REASON, m->len - 2);
    assert_non_null(strstr(lmzc_errmsg(C.c), "an answer was over max_message"));
  }
  close_client();
}

static void test_masked_server_frame(void **state) {
  (void)state;
  connect_ok();
  fake_frame(0x81, "{}", 2, true);
  expect_violation(1002);
}

static void test_invalid_utf8(void **state) {
  (void)state;
  connect_ok();
  fake_frame(0x81, "\"\xff\xfe\"", 4, false);
  expect_violation(1007);
}

static void test_message_too_big(void **state) {
  (void)state;
  struct lmzc_options o = {.max_message = 1024};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  assert_int_equal(C.status, 0);
  char big[2000];
  memset(big, ' ', sizeof big);
  fake_frame(0x81, big, sizeof big, false);
  expect_violation(1009);
}

static void test_fragments_too_big(void **state) {
  (void)state;
  struct lmzc_options o = {.max_message = 1024};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  char part[600];
  memset(part, ' ', sizeof part);
  fake_frame(0x01, part, sizeof part, false);
  fake_frame(0x80, part, sizeof part, false);
  expect_violation(1009);
}

static void test_bad_control_frame(void **state) {
  (void)state;
  connect_ok();
  char big[200];
  memset(big, 'p', sizeof big);
  fake_frame(0x89, big, sizeof big, false); /* ping > 125 bytes */
  expect_violation(1002);
}

static void test_server_close_4401(void **state) {
  (void)state;
  connect_ok();
  struct rep r;
  send_call(&r);
  wait_msgs(1);
  fake_close(4401, "Token expired");
  RUN_WHILE(!C.disconnected, WAIT_MS);
  assert_int_equal(C.disc_code, 4401);
  assert_string_equal(C.disc_reason, "Token expired");
  assert_true(r.done);
  assert_int_equal(r.status, LMZ_ECLOSED);
  wait_msgs(2); /* the client answered the Close */
  assert_int_equal(F.m[1].op, 8);
  assert_int_equal(lmzc_call(C.c, "B", NULL, lmz_null(), NULL, NULL), LMZ_ECLOSED);
  close_client();
}

/* The gateway closes with 1009 "Message is too large" (a call of ours was
 * over its cap): every call in flight fails with LMZ_ETOOBIG, not a bare
 * LMZ_ECLOSED, and lmzc_errmsg says so (issue 13 item 4). */
static void test_server_close_1009(void **state) {
  (void)state;
  connect_ok();
  struct rep r1, r2;
  send_call(&r1);
  send_call(&r2);
  wait_msgs(2);
  fake_close(1009, "Message is too large");
  RUN_WHILE(!C.disconnected, WAIT_MS);
  assert_int_equal(C.disc_code, 1009);
  assert_string_equal(C.disc_reason, "Message is too large");
  assert_true(r1.done && r2.done);
  assert_int_equal(r1.status, LMZ_ETOOBIG);
  assert_int_equal(r2.status, LMZ_ETOOBIG);
  assert_string_equal(lmzc_errmsg(C.c),
                      "the gateway closed the connection: 1009 Message is too large");
  assert_int_equal(lmzc_call(C.c, "B", NULL, lmz_null(), NULL, NULL), LMZ_ECLOSED);
  close_client();
}

/* A call over max_send_message is refused at once (nothing is sent, the
 * socket stays); smaller ones go on. */
static void test_max_send_message(void **state) {
  (void)state;
  struct lmzc_options o = {.max_send_message = 256};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  assert_int_equal(C.status, 0);
  lmz_arena *a = lmz_arena_new();
  char text[300];
  memset(text, 'x', sizeof text - 1);
  text[sizeof text - 1] = 0;
  lmz_value *arg = lmz_string(a, text, strlen(text));
  lmz_value *chain = lmzc_method_chain(a, "echo", 1, &arg);
  struct rep big = {0};
  assert_int_equal(lmzc_call(C.c, "COUNTER_DO", "x", chain, on_reply, &big), LMZ_ETOOBIG);
  assert_non_null(strstr(lmzc_errmsg(C.c), "Message is too large: a call of "));
  assert_non_null(strstr(lmzc_errmsg(C.c), "over max_send_message (256)"));
  assert_int_equal(lmzc_pending(C.c), 0);
  struct rep r;
  send_call(&r); /* small: sent and answered */
  wait_msgs(1);
  assert_non_null(strstr(F.m[0].data, "\"callId\":\"2\""));
  fake_text("{\"type\":\"call_response\",\"callId\":\"2\",\"success\":true,"
            "\"result\":{\"json\":7,\"meta\":{}}}");
  RUN_WHILE(!r.done, WAIT_MS);
  assert_int_equal(r.status, 0);
  assert_true(r.num == 7.0);
  assert_false(big.done);
  assert_true(lmzc_is_connected(C.c));
  lmz_arena_free(a);
  close_client();
}

static void test_server_eof(void **state) {
  (void)state;
  connect_ok();
  struct rep r;
  send_call(&r);
  wait_msgs(1);
  fake_end();
  RUN_WHILE(!C.disconnected, WAIT_MS);
  assert_int_equal(C.disc_code, 1006);
  assert_int_equal(r.status, LMZ_ECLOSED);
  close_client();
}

/* ---- close handshake ------------------------------------------------------ */

static void test_close_handshake(void **state) {
  (void)state;
  F.manual_close = true;
  /* a close timeout far past every wait here: the close can only come
   * from the server's answer */
  struct lmzc_options o = {.close_timeout_ms = 20 * WAIT_MS};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  assert_true(C.connected);
  assert_int_equal(C.status, 0);
  lmzc_close(C.c, on_close);
  wait_msgs(1);
  assert_int_equal(F.m[0].op, 8);
  assert_int_equal(((uint8_t)F.m[0].data[0] << 8) | (uint8_t)F.m[0].data[1], 1000);
  assert_string_equal(F.m[0].data + 2, "Client disconnect");
  assert_false(C.closed); /* waits for the server's Close */
  fake_close(1000, "");
  RUN_WHILE(!C.closed, WAIT_MS);
  assert_true(C.closed);
  assert_false(C.disconnected);
}

static void test_close_timeout(void **state) {
  (void)state;
  F.manual_close = true;
  struct lmzc_options o = {.close_timeout_ms = 100};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  lmzc_close(C.c, on_close);
  RUN_WHILE(!C.closed, WAIT_MS); /* the server never answers */
  assert_true(C.closed);
  RUN_WHILE(!F.eof, WAIT_MS);
  assert_true(F.eof);
}

/* ---- heartbeat ------------------------------------------------------------ */

static void test_heartbeat_answered(void **state) {
  (void)state;
  F.answer_pings = true;
  struct lmzc_options o = {.heartbeat_ms = 30};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  RUN_WHILE(lmzc_stats(C.c)->pongs < 4, WAIT_MS);
  assert_true(lmzc_stats(C.c)->pongs >= 4);
  assert_false(C.disconnected);
  assert_string_equal(F.m[0].data, "lmz:ping");
  close_client();
}

static void test_heartbeat_timeout(void **state) {
  (void)state;
  struct lmzc_options o = {.heartbeat_ms = 30};
  start_ex(&o);
  RUN_WHILE(!C.connected, WAIT_MS);
  RUN_WHILE(!C.disconnected, WAIT_MS);
  assert_true(C.disconnected);
  assert_int_equal(C.disc_code, 1006);
  assert_string_equal(C.disc_reason, "heartbeat timeout");
  close_client();
}

/* ---- incoming calls ------------------------------------------------------- */

static const char incoming[] =
    "{\"type\":\"incoming_call\",\"callId\":\"g-1\",\"chain\":{\"json\":[{\"type\":\"get\","
    "\"key\":\"handleContentUpdate\"},{\"type\":\"apply\",\"args\":[\"doc\",\"text\"]}],"
    "\"meta\":{}},\"callContext\":{\"callChain\":[{\"type\":\"LumenizeDO\","
    "\"bindingName\":\"DOCUMENT_DO\",\"instanceName\":\"doc\"}],\"originAuth\":{\"sub\":\"bob\","
    "\"claims\":{\"sub\":\"bob\"}},\"state\":{\"json\":{\"k\":1},\"meta\":{}}}}";

static void test_incoming_no_handler(void **state) {
  (void)state;
  connect_ok();
  fake_text(incoming);
  wait_msgs(1);
  assert_string_equal(F.m[0].data,
      "{\"type\":\"incoming_call_response\",\"callId\":\"g-1\",\"success\":false,"
      "\"error\":{\"json\":{\"$type\":\"error\",\"name\":\"Error\",\"message\":"
      "\"No handler for incoming calls\"},\"meta\":{}}}");
  close_client();
}

static void test_incoming_malformed(void **state) {
  (void)state;
  connect_ok();
  fake_text("{\"type\":\"incoming_call\",\"callId\":\"g-2\",\"chain\":5}");
  fake_text("{\"type\":\"incoming_call\",\"chain\":{\"json\":[],\"meta\":{}}}"); /* no id */
  wait_msgs(1);
  assert_non_null(strstr(F.m[0].data, "\"callId\":\"g-2\",\"success\":false"));
  assert_non_null(strstr(F.m[0].data, "malformed incoming_call"));
  RUN_WHILE(lmzc_stats(C.c)->frames_ignored < 1, WAIT_MS);
  assert_int_equal(lmzc_stats(C.c)->frames_ignored, 1);
  assert_int_equal(F.n, 1);
  close_client();
}

static lmzc_incoming_t *held;

static void hold_incoming(lmzc_t *c, lmzc_incoming_t *in, void *data) {
  (void)c, (void)data;
  const char *method;
  const lmz_value *args;
  assert_true(lmzc_chain_method(in->chain, &method, &args));
  assert_string_equal(method, "handleContentUpdate");
  assert_int_equal(lmz_len(args), 2);
  assert_string_equal(lmz_get_str(lmz_array_get(args, 1), NULL), "text");
  assert_int_equal(lmz_len(in->call_chain), 1);
  assert_string_equal(lmz_get_str(lmz_object_getc(lmz_array_get(in->call_chain, 0),
                                                  "bindingName"), NULL), "DOCUMENT_DO");
  assert_string_equal(lmz_get_str(lmz_object_getc(in->origin_auth, "sub"), NULL), "bob");
  assert_true(lmz_get_number(lmz_object_getc(in->state, "k")) == 1.0);
  assert_string_equal(in->call_id, "g-1");
  held = in; /* answered later */
}

static void test_incoming_answered_later(void **state) {
  (void)state;
  connect_ok();
  held = NULL;
  lmzc_on_incoming(C.c, hold_incoming, NULL);
  fake_text(incoming);
  RUN_WHILE(!held, WAIT_MS);
  assert_non_null(held);
  RUN_WHILE(F.n < 1, 50); /* nothing is sent until the answer */
  assert_int_equal(F.n, 0);
  lmz_value *m = lmz_map(held->arena);
  lmz_map_set(m, lmz_cstring(held->arena, "ok"), lmz_date(held->arena, 0));
  assert_int_equal(lmzc_respond(held, true, m), 0);
  wait_msgs(1);
  assert_string_equal(F.m[0].data,
      "{\"type\":\"incoming_call_response\",\"callId\":\"g-1\",\"success\":true,"
      "\"result\":{\"json\":{\"$type\":\"map\",\"entries\":[[\"ok\",{\"$type\":\"date\","
      "\"iso\":\"1970-01-01T00:00:00.000Z\"}]]},\"meta\":{}}}");
  close_client();
}

static void test_incoming_answered_after_close(void **state) {
  (void)state;
  connect_ok();
  held = NULL;
  lmzc_on_incoming(C.c, hold_incoming, NULL);
  fake_text(incoming);
  RUN_WHILE(!held, WAIT_MS);
  close_client(); /* the handle's memory waits for the answer */
  assert_int_equal(lmzc_respond(held, true, lmz_null()), LMZ_ECLOSED);
}

int main(void) {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_request_shape),
      T(test_garbage_answer),
      T(test_wrong_accept),
      T(test_missing_protocol),
      T(test_101_without_upgrade),
      T(test_refusal_401),
      T(test_refusal_404_until_eof),
      T(test_oversized_answer),
      T(test_eof_during_upgrade),
      T(test_no_connection_status),
      T(test_close_before_status),
      T(test_max_queued),
      T(test_call_frame_and_answer),
      T(test_junk_frames_ignored),
      T(test_undecodable_answers),
      T(test_fragments_and_server_ping),
      T(test_masked_server_frame),
      T(test_invalid_utf8),
      T(test_message_too_big),
      T(test_fragments_too_big),
      T(test_bad_control_frame),
      T(test_server_close_4401),
      T(test_server_close_1009),
    T(test_max_send_message),
    T(test_server_eof),
      T(test_close_handshake),
      T(test_close_timeout),
      T(test_heartbeat_answered),
      T(test_heartbeat_timeout),
      T(test_incoming_no_handler),
      T(test_incoming_malformed),
      T(test_incoming_answered_later),
      T(test_incoming_answered_after_close),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
