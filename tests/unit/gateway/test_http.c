/* Tests for gateway/http_server.c over real loopback sockets: raw TCP
 * clients send well-formed, pipelined, malformed, oversized and slow
 * requests; the server runs on a libuv loop in the same thread (gwtest.h
 * pumps it). Every wait is bounded by a deadline. */
#include "lib/testlib.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"
#include "gateway/http.h"
#include "gwtest.h"

/* ---- the app ------------------------------------------------------------- */

enum app_mode { APP_ECHO, APP_ASYNC, APP_BIG };

static struct {
  lmz_http_server_t srv;
  enum app_mode mode;
  int requests, conn_closes, conn_closes_pending;
  lmz_http_conn_t *held; /* APP_ASYNC: the request being worked on */
  uv_timer_t timer;
  bool closed;
  int last_respond_rv;
} T;

static void echo(lmz_http_conn_t *conn, const struct lmz_http_request *req) {
  lmz_buf b = LMZ_BUF_INIT;
  size_t xl = 0;
  const char *x = lmz_http_header_get(req, "x-test", &xl);
  lmz_buf_printf(&b, "%s %.*s ?%.*s x=%s body=%.*s", req->method,
                 (int)req->path_len, req->path, (int)req->query_len, req->query,
                 x ? x : "-", (int)req->body_len,
                 req->body ? (const char *)req->body : "");
  struct lmz_http_header h[1] = {{"X-Conn", 6, "yes", 3}};
  struct lmz_http_response r = {.status = 200,
                                .content_type = "text/plain",
                                .headers = h,
                                .n_headers = 1,
                                .body = b.data,
                                .body_len = b.len};
  T.last_respond_rv = lmz_http_respond(conn, &r);
  lmz_buf_free(&b);
}

static void on_timer(uv_timer_t *t) {
  (void)t;
  if (T.held) {
    lmz_http_conn_t *c = T.held;
    T.held = NULL;
    T.last_respond_rv = lmz_http_respond_text(c, 202, "text/plain", "later");
  }
}

static void on_request(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req) {
  (void)srv;
  T.requests++;
  if (T.mode == APP_ASYNC) {
    T.held = conn;
    uv_timer_start(&T.timer, on_timer, 20, 0);
    return;
  }
  if (T.mode == APP_BIG) {
    static char big[256 * 1024];
    memset(big, 'b', sizeof big);
    struct lmz_http_response r = {
        .status = 200, .body = big, .body_len = sizeof big};
    T.last_respond_rv = lmz_http_respond(conn, &r);
    return;
  }
  echo(conn, req);
}

static void on_conn_close(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                          bool had_pending) {
  (void)srv;
  T.conn_closes++;
  if (had_pending)
    T.conn_closes_pending++;
  if (conn == T.held)
    T.held = NULL;
}

static void on_closed(lmz_http_server_t *srv) {
  (void)srv;
  T.closed = true;
}

static struct lmz_http_options opts(void) {
  struct lmz_http_options o = {.host = "127.0.0.1",
                               .on_request = on_request,
                               .on_conn_close = on_conn_close,
                               .header_timeout_ms = 2000,
                               .body_timeout_ms = 2000,
                               .idle_timeout_ms = 2000};
  return o;
}

static void start(const struct lmz_http_options *o) {
  memset(&T, 0, sizeof T);
  gw_loop = malloc(sizeof *gw_loop);
  assert_int_equal(uv_loop_init(gw_loop), 0);
  uv_timer_init(gw_loop, &T.timer);
  assert_int_equal(lmz_http_server_init(gw_loop, &T.srv, o), 0);
  assert_true(lmz_http_server_port(&T.srv) > 0);
}

static void stop(void) {
  lmz_http_server_close(&T.srv, on_closed);
  uv_close((uv_handle_t *)&T.timer, NULL);
  assert_true(gw_wait_flag(&T.closed, GW_DEADLINE_MS));
  gw_loop_teardown();
  free(gw_loop);
}

static int port(void) { return lmz_http_server_port(&T.srv); }

/* One request on a fresh connection; returns the malloc'd response. */
static char *roundtrip(const char *req) {
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, req);
  char *r = gw_read_response(fd, &b);
  close(fd);
  lmz_buf_free(&b);
  return r;
}

/* Sends a hostile request; expects `status`, then the server closing. */
static void expect_rejected(const void *req, size_t len, int status) {
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_send(fd, req, len);
  char *r = gw_read_response(fd, &b);
  if (gw_status(r) != status)
    fprintf(stderr, "got: %s\n", r);
  assert_int_equal(gw_status(r), status);
  assert_non_null(strstr(r, "Connection: close\r\n"));
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  free(r);
  close(fd);
  lmz_buf_free(&b);
  /* and everyone else is still served */
  r = roundtrip("GET /ok HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(gw_status(r), 200);
  free(r);
}

static void expect_rejected_s(const char *req, int status) {
  expect_rejected(req, strlen(req), status);
}

/* ---- tests --------------------------------------------------------------- */

static void test_basic_keepalive(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nX-Test:  v1  \r\n\r\n");
  char *r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 200);
  assert_string_equal(gw_body(r), "GET /a/b ?x=1&y=2 x=v1 body=");
  assert_non_null(strstr(r, "\r\nX-Conn: yes\r\n"));
  assert_non_null(strstr(r, "\r\nContent-Length: 28\r\n"));
  assert_null(strstr(r, "Connection:")); /* HTTP/1.1 keep-alive is implicit */
  free(r);
  /* same connection, a POST with a body */
  gw_sends(fd, "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
  r = gw_read_response(fd, &b);
  assert_string_equal(gw_body(r), "POST /p ? x=- body=hello");
  free(r);
  /* chunked body, split across writes */
  gw_sends(fd,
           "PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           "3\r\nabc\r\n");
  gw_sends(fd, "2\r\nde\r\n0\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_string_equal(gw_body(r), "PUT /c ? x=- body=abcde");
  free(r);
  /* chunked trailers are accepted and not exposed (they used to move the
   * header storage under the request: found by fuzz_http) */
  gw_sends(fd,
           "POST /t HTTP/1.1\r\nHost: h\r\nX-Test: t1\r\n"
           "Transfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n"
           "X-Trailer: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
           "\r\nX-Test: trailer\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_string_equal(gw_body(r), "POST /t ? x=t1 body=z");
  free(r);
  /* HEAD: headers with the length, no body */
  gw_sends(fd, "HEAD /h HTTP/1.1\r\nHost: h\r\n\r\n");
  gw_recv_upto(fd, &b, 1, GW_DEADLINE_MS);
  gw_recv_upto(fd, &b, 4096, 100);
  b.data[b.len] = 0;
  assert_non_null(strstr((char *)b.data, "Content-Length: 19\r\n\r\n"));
  assert_int_equal(strlen(strstr((char *)b.data, "\r\n\r\n")), 4);
  b.len = 0;
  assert_int_equal(T.requests, 5);
  /* Connection: close is honoured */
  gw_sends(fd, "GET /z HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_non_null(strstr(r, "Connection: close\r\n"));
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  free(r);
  close(fd);
  /* HTTP/1.0: close by default, keep-alive on request */
  r = roundtrip("GET /o HTTP/1.0\r\n\r\n");
  assert_non_null(strstr(r, "Connection: close\r\n"));
  free(r);
  fd = gw_connect(port());
  gw_sends(fd, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_non_null(strstr(r, "Connection: keep-alive\r\n"));
  free(r);
  gw_sends(fd, "GET /k2 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 200);
  free(r);
  close(fd);
  lmz_buf_free(&b);
  assert_true(gw_wait_flag((volatile bool *)&(bool){true}, 1));
  stop();
  assert_int_equal(T.conn_closes, 3);
  assert_int_equal(T.conn_closes_pending, 0);
}

static void test_pipelining_one_write(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_http_metrics m0, m1;
  lmz_http_server_metrics(&T.srv, &m0);
  gw_sends(fd, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
               "GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
               "POST /3 HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok");
  char *r1 = gw_read_response(fd, &b);
  char *r2 = gw_read_response(fd, &b);
  char *r3 = gw_read_response(fd, &b);
  assert_string_equal(gw_body(r1), "GET /1 ? x=- body=");
  assert_string_equal(gw_body(r2), "GET /2 ? x=- body=");
  assert_string_equal(gw_body(r3), "POST /3 ? x=- body=ok");
  lmz_http_server_metrics(&T.srv, &m1);
  assert_int_equal(m1.requests - m0.requests, 3);
  assert_int_equal(m1.writes - m0.writes, 1); /* coalesced */
  free(r1), free(r2), free(r3);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

static void test_async_and_pipelined(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  T.mode = APP_ASYNC;
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, "GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h"
               "\r\n\r\n");
  char *r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 202);
  assert_string_equal(gw_body(r), "later");
  free(r);
  r = gw_read_response(fd, &b); /* the second waited for the first */
  assert_int_equal(gw_status(r), 202);
  free(r);
  assert_int_equal(T.requests, 2);
  assert_int_equal(T.last_respond_rv, 0);
  /* a client that goes away while the app works: on_conn_close says so */
  gw_sends(fd, "GET /3 HTTP/1.1\r\nHost: h\r\n\r\n");
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  while (T.requests < 3 && tl_now_ms() < end)
    gw_step(fd);
  assert_non_null(T.held);
  struct linger lg = {1, 0}; /* RST */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
  end = tl_now_ms() + GW_DEADLINE_MS;
  while (T.conn_closes < 1 && tl_now_ms() < end)
    gw_step(-1);
  assert_int_equal(T.conn_closes, 1);
  assert_int_equal(T.conn_closes_pending, 1);
  assert_null(T.held);
  /* a half-close (EOF) while the app works: the answer still arrives */
  fd = gw_connect(port());
  gw_sends(fd, "GET /4 HTTP/1.1\r\nHost: h\r\n\r\n");
  shutdown(fd, SHUT_WR);
  r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 202);
  assert_non_null(strstr(r, "Connection: close\r\n"));
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  free(r);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

static void test_malformed_and_limits(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  expect_rejected_s("GARBAGE\r\n\r\n", 400);
  expect_rejected_s("get / HTTP/1.1\r\nHost: h\r\n\r\n", 400);
  expect_rejected_s("GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n", 400);
  expect_rejected_s("GET / HTTP/1.1\r\n\r\n", 400); /* no Host */
  expect_rejected_s("FROB / HTTP/1.1\r\nHost: h\r\n\r\n", 501);
  expect_rejected_s("GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505);
  expect_rejected_s("GET / HTTP/1.1\r\nHost: h\r\nExpect: tea\r\n\r\n", 417);
  expect_rejected_s("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n",
                    400);
  expect_rejected_s("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked"
                    "\r\n\r\nzz\r\n",
                    400);
  /* WebSocket frame bytes instead of a request */
  const uint8_t frame[] = {0x81,    0x85,    1,       2,       3,      4,
                           'h' ^ 1, 'e' ^ 2, 'l' ^ 3, 'l' ^ 4, 'o' ^ 1};
  expect_rejected(frame, sizeof frame, 400);
  /* NUL in the request line */
  expect_rejected("GET /\0 HTTP/1.1\r\n\r\n", 20, 400);
  /* oversized: headers, header count, URL, body */
  char *big = malloc(40000);
  int n = snprintf(big, 40000, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ");
  memset(big + n, 'a', 17000);
  strcpy(big + n + 17000, "\r\n\r\n");
  expect_rejected_s(big, 431);
  n = snprintf(big, 40000, "GET / HTTP/1.1\r\nHost: h\r\n");
  for (int i = 0; i < 101; i++)
    n += snprintf(big + n, 40000 - (size_t)n, "X-%d: v\r\n", i);
  strcpy(big + n, "\r\n");
  expect_rejected_s(big, 431);
  n = snprintf(big, 40000, "GET /");
  memset(big + n, 'u', 9000);
  strcpy(big + n + 9000, " HTTP/1.1\r\nHost: h\r\n\r\n");
  expect_rejected_s(big, 414);
  free(big);
  expect_rejected_s("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2000000\r\n"
                    "\r\n",
                    413);
  /* chunked body growing past max_body */
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
               "\r\n");
  char *chunk = malloc(70000);
  n = snprintf(chunk, 70000, "10000\r\n");
  memset(chunk + n, 'c', 0x10000);
  strcpy(chunk + n + 0x10000, "\r\n");
  bool got = false;
  for (int i = 0; i < 20 && !got; i++) { /* 20 x 64 KiB > 1 MiB */
    gw_sends(fd, chunk);
    got = gw_response_len(&b) > 0 ||
          (gw_recv_some(fd, &b), gw_response_len(&b) > 0);
  }
  char *r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 413);
  free(r);
  free(chunk);
  close(fd);
  lmz_buf_free(&b);
  assert_int_equal(T.requests, 15); /* only the follow-up GET /ok ones */
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.parse_errors, 16);
  stop();
}

static void test_expect_continue(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, "POST /e HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
               "Expect: 100-continue\r\n\r\n");
  char *r = gw_read_response(fd, &b);
  assert_string_equal(r, "HTTP/1.1 100 Continue\r\n\r\n");
  free(r);
  gw_sends(fd, "abc");
  r = gw_read_response(fd, &b);
  assert_string_equal(gw_body(r), "POST /e ? x=- body=abc");
  free(r);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

/* ---- deadlines, on a fake clock ------------------------------------------ */

static uint64_t fake_now_ms;
static uint64_t fake_clock(void *data) {
  (void)data;
  return fake_now_ms;
}

/* Moves the fake clock to `t` and runs the loop once: a deadline that passed
 * has fired and its answer has been handed to the kernel when this returns
 * (timers run before the flush hook in the same iteration). The clock then
 * stays at `t`, so an answer that arrives afterwards (waits are bounded by
 * real-time deadlines that only guard against hanging) is one the server
 * decided at `t`. */
static void clock_to(uint64_t t) {
  fake_now_ms = t;
  lmz_http_server_clock_moved(&T.srv);
  uv_run(gw_loop, UV_RUN_NOWAIT);
}

/* Whether the client socket has something to read (bytes or EOF) now. */
static bool readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1;
}

/* Sends and pumps until the server has read the bytes. */
static void send_seen(int fd, const char *s) {
  struct lmz_http_metrics m0, m;
  lmz_http_server_metrics(&T.srv, &m0);
  gw_sends(fd, s);
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  do {
    gw_step(fd);
    lmz_http_server_metrics(&T.srv, &m);
  } while (m.bytes_in < m0.bytes_in + strlen(s) && tl_now_ms() < end);
  assert_true(m.bytes_in >= m0.bytes_in + strlen(s));
}

/* Every deadline is measured on the injected clock: nothing fires one
 * millisecond early, and it fires at the deadline exactly (the real time
 * the test takes does not matter). */
static void test_timeouts(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  o.header_timeout_ms = 150;
  o.body_timeout_ms = 150;
  o.idle_timeout_ms = 150;
  o.now_ms = fake_clock;
  fake_now_ms = 1000;
  start(&o);
  lmz_buf b = LMZ_BUF_INIT;
  /* slow head: 408 at 150 ms, while another client is served meanwhile */
  int slow = gw_connect(port());
  send_seen(slow, "GET / HTTP/1.1\r\nHost: x\r\n");
  char *r = roundtrip("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
  assert_int_equal(gw_status(r), 200);
  free(r);
  clock_to(1149);
  assert_false(readable(slow));
  clock_to(1150);
  r = gw_read_response(slow, &b);
  assert_int_equal(gw_status(r), 408);
  assert_true(gw_wait_eof(slow, &b, GW_DEADLINE_MS));
  free(r);
  close(slow);
  /* a trickle of header bytes does not extend the deadline */
  clock_to(2000);
  slow = gw_connect(port());
  send_seen(slow, "GET / HTTP/1.1\r\n");
  for (uint64_t t = 2000; t < 2150; t += 30) {
    clock_to(t);
    assert_false(readable(slow));
    send_seen(slow, "X: y\r\n");
  }
  clock_to(2149);
  assert_false(readable(slow));
  clock_to(2150);
  r = gw_read_response(slow, &b);
  assert_int_equal(gw_status(r), 408);
  free(r);
  close(slow);
  /* slow body: 150 ms after the headers */
  clock_to(3000);
  slow = gw_connect(port());
  send_seen(slow, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
  clock_to(3149);
  assert_false(readable(slow));
  clock_to(3150);
  r = gw_read_response(slow, &b);
  assert_int_equal(gw_status(r), 408);
  free(r);
  close(slow);
  /* idle keep-alive: closed silently 150 ms after the answer */
  clock_to(4000);
  int fd = gw_connect(port());
  gw_sends(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  r = gw_read_response(fd, &b);
  free(r);
  clock_to(4149);
  assert_false(readable(fd));
  clock_to(4150);
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  assert_int_equal(b.len, 0);
  close(fd);
  /* a connection that never sends anything: the header deadline */
  clock_to(5000);
  fd = gw_connect(port());
  clock_to(5149);
  assert_false(readable(fd));
  clock_to(5150);
  assert_true(gw_wait_eof(fd, &b, GW_DEADLINE_MS));
  assert_int_equal(b.len, 0);
  close(fd);
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.timeouts, 5);
  lmz_buf_free(&b);
  stop();
}

static void test_max_connections_and_close(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  o.max_connections = 2;
  start(&o);
  lmz_buf b = LMZ_BUF_INIT;
  int a = gw_connect(port()), c = gw_connect(port());
  gw_sends(a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  char *r = gw_read_response(a, &b);
  free(r);
  int d = gw_connect(port());
  r = gw_read_response(d, &b);
  assert_int_equal(gw_status(r), 503);
  free(r);
  assert_true(gw_wait_eof(d, &b, GW_DEADLINE_MS));
  close(d);
  gw_sends(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  r = gw_read_response(c, &b);
  assert_int_equal(gw_status(r), 200);
  free(r);
  struct lmz_http_metrics m;
  lmz_http_server_metrics(&T.srv, &m);
  assert_int_equal(m.conns_rejected, 1);
  assert_int_equal(m.conns_open, 2);
  /* closing the server closes the open connections */
  lmz_http_server_close(&T.srv, on_closed);
  assert_true(gw_wait_eof(a, &b, GW_DEADLINE_MS));
  assert_true(gw_wait_eof(c, &b, GW_DEADLINE_MS));
  close(a);
  close(c);
  uv_close((uv_handle_t *)&T.timer, NULL);
  assert_true(gw_wait_flag(&T.closed, GW_DEADLINE_MS));
  assert_int_equal(T.conn_closes, 2);
  gw_loop_teardown();
  free(gw_loop);
  lmz_buf_free(&b);
}

static lmz_http_conn_t *captured;
static void capture(lmz_http_server_t *s, lmz_http_conn_t *c,
                    const struct lmz_http_request *r) {
  (void)s, (void)r;
  captured = c;
}

static void test_respond_validation(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  o.on_request = capture;
  start(&o);
  captured = NULL;
  int fd = gw_connect(port());
  lmz_buf b = LMZ_BUF_INIT;
  gw_sends(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  while (!captured && tl_now_ms() < end)
    gw_step(fd);
  assert_non_null(captured);
  struct lmz_http_header bad[] = {{"X-A", 3, "a\r\nInjected: 1", 14}};
  struct lmz_http_response r = {.status = 200, .headers = bad, .n_headers = 1};
  assert_int_equal(lmz_http_respond(captured, &r), LMZ_EINVAL);
  struct lmz_http_header cl[] = {{"content-length", 14, "5", 1}};
  r.headers = cl;
  assert_int_equal(lmz_http_respond(captured, &r), LMZ_EINVAL);
  struct lmz_http_header sp[] = {{"X A", 3, "v", 1}};
  r.headers = sp;
  assert_int_equal(lmz_http_respond(captured, &r), LMZ_EINVAL);
  r.n_headers = 0;
  r.status = 99;
  assert_int_equal(lmz_http_respond(captured, &r), LMZ_EINVAL);
  r.status = 204;
  assert_int_equal(lmz_http_respond(captured, &r), 0);
  assert_int_equal(lmz_http_respond(captured, &r), LMZ_EINVAL); /* twice */
  char *resp = gw_read_response(fd, &b);
  assert_string_equal(resp, "HTTP/1.1 204 No Content\r\n\r\n");
  free(resp);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

/* A client that pipelines requests for large answers and does not read:
 * the server stops parsing (and reading) instead of buffering answers. */
static void test_pipeline_backpressure(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  T.mode = APP_BIG;
  int fd = gw_connect(port());
  int rcv = 65536;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
  const char *req = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
  size_t rl = strlen(req);
  char *many = malloc(rl * 100);
  for (int i = 0; i < 100; i++)
    memcpy(many + (size_t)i * rl, req, rl);
  gw_send(fd, many, rl * 100);
  for (int i = 0; i < 200; i++)
    gw_step(fd);
  /* 100 x 256 KiB = 25 MiB would be buffered without backpressure; the
   * server holds about 1 MiB, the kernel's socket buffers a few more */
  printf("# requests parsed while the client did not read: %d of 100\n",
         T.requests);
  assert_true(T.requests < 50);
  assert_true(T.requests >= 1);
  lmz_buf b = LMZ_BUF_INIT;
  for (int i = 0; i < 100; i++) {
    char *r = gw_read_response(fd, &b);
    assert_int_equal(gw_status(r), 200);
    assert_int_equal(strlen(gw_body(r)), 256 * 1024);
    free(r);
  }
  assert_int_equal(T.requests, 100);
  free(many);
  close(fd);
  lmz_buf_free(&b);
  stop();
}

static void test_bad_init(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  lmz_http_server_t s;
  struct lmz_http_options o = {.host = "127.0.0.1"};
  assert_int_equal(lmz_http_server_init(&loop, &s, &o), LMZ_EINVAL);
  o.on_request = on_request;
  o.host = "not-an-ip";
  assert_int_equal(lmz_http_server_init(&loop, &s, &o), LMZ_EINVAL);
  assert_non_null(strstr(s.errmsg, "not-an-ip"));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

/* Handles on gw_loop, closing ones included (a closed handle stays listed
 * until a loop iteration has finished its close). */
static int loop_handles(void) {
  int n = 0;
  uv_walk(gw_loop, count_handle, &n);
  return n;
}

static bool s2_closed;
static void on_s2_closed(lmz_http_server_t *srv) {
  (void)srv;
  s2_closed = true;
}

/* A taken port: init fails before any handle exists (nothing on the loop,
 * not even a closing listener, so the server's memory is free at once).
 * The two steps: bind adds nothing to the loop either; unbind undoes it at
 * once; a client that connects between bind and start is answered after
 * start. */
static void test_bind_failure_leaves_nothing(void **state) {
  (void)state;
  struct lmz_http_options o = opts();
  start(&o);
  int before = loop_handles();
  lmz_http_server_t *s2 = malloc(sizeof *s2);
  assert_non_null(s2);
  o.port = port();
  assert_int_equal(lmz_http_server_init(gw_loop, s2, &o), UV_EADDRINUSE);
  assert_non_null(strstr(s2->errmsg, "listen on 127.0.0.1"));
  assert_int_equal(loop_handles(), before);
  o.port = 0;
  assert_int_equal(lmz_http_server_bind(gw_loop, s2, &o), 0);
  assert_true(lmz_http_server_port(s2) > 0);
  assert_int_equal(loop_handles(), before);
  lmz_http_server_unbind(s2);
  assert_int_equal(loop_handles(), before);
  assert_int_equal(lmz_http_server_bind(gw_loop, s2, &o), 0);
  int fd = gw_connect(lmz_http_server_port(s2)); /* waits in the backlog */
  gw_sends(fd, "GET /early HTTP/1.1\r\nHost: x\r\n\r\n");
  lmz_http_server_start(s2);
  assert_int_equal(loop_handles(), before + 2); /* listener, prepare */
  lmz_buf b = LMZ_BUF_INIT;
  char *r = gw_read_response(fd, &b);
  assert_int_equal(gw_status(r), 200);
  assert_non_null(strstr(r, "GET /early"));
  free(r);
  lmz_buf_free(&b);
  close(fd);
  s2_closed = false;
  lmz_http_server_close(s2, on_s2_closed);
  assert_true(gw_wait_flag(&s2_closed, GW_DEADLINE_MS));
  free(s2);
  stop();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic_keepalive),
      cmocka_unit_test(test_pipelining_one_write),
      cmocka_unit_test(test_async_and_pipelined),
      cmocka_unit_test(test_malformed_and_limits),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_timeouts),
      cmocka_unit_test(test_max_connections_and_close),
      cmocka_unit_test(test_respond_validation),
      cmocka_unit_test(test_pipeline_backpressure),
      cmocka_unit_test(test_bad_init),
      cmocka_unit_test(test_bind_failure_leaves_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
