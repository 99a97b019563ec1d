/* tests/unit/gateway/gwtest.h - raw TCP clients for the gateway tests, driven
 * from the test thread while the server's loop runs in the same thread:
 * every wait pumps the loop (UV_RUN_NOWAIT) and polls the client socket and
 * the loop's backend fd with a short timeout, bounded by a deadline. No
 * sleeps, no threads. Header-only (static functions) so each test binary
 * stays one file. */
#ifndef LMZ_TESTS_GWTEST_H
#define LMZ_TESTS_GWTEST_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "lib/testlib.h"

#define GW_DEADLINE_MS 5000

static uv_loop_t *gw_loop;

/* One loop step plus a short wait for either side to have something. */
static void gw_step(int fd) {
  uv_run(gw_loop, UV_RUN_NOWAIT);
  struct pollfd p[2] = {{uv_backend_fd(gw_loop), POLLIN, 0}, {fd, POLLIN, 0}};
  int timeout = uv_backend_timeout(gw_loop);
  if (timeout < 0 || timeout > 2)
    timeout = 2;
  poll(p, fd >= 0 ? 2 : 1, timeout);
  uv_run(gw_loop, UV_RUN_NOWAIT);
}

/* Pumps until *flag becomes true or the deadline passes. */
static bool gw_wait_flag(const volatile bool *flag, int ms) {
  uint64_t end = tl_now_ms() + (uint64_t)ms;
  while (!*flag && tl_now_ms() < end)
    gw_step(-1);
  return *flag;
}

static int gw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rv = connect(fd, (struct sockaddr *)&a, sizeof a);
  assert_true(rv == 0 || errno == EINPROGRESS);
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  for (;;) { /* let the server accept */
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1)
      break;
    assert_true(tl_now_ms() < end);
    gw_step(-1);
  }
  gw_step(fd);
  return fd;
}

/* Sends everything, pumping the loop while the socket is full. */
static void gw_send(int fd, const void *data, size_t len) {
  const char *p = data;
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    assert_true(tl_now_ms() < end);
    gw_step(fd);
  }
  gw_step(fd);
}

static void gw_sends(int fd, const char *s) { gw_send(fd, s, strlen(s)); }

/* Non-blocking receive into b; returns bytes read, 0 on EOF, -1 if none
 * now, -2 on error (reset). */
static ssize_t gw_recv_some(int fd, lmz_buf *b) {
  char tmp[65536];
  ssize_t n = recv(fd, tmp, sizeof tmp, 0);
  if (n > 0) {
    assert_int_equal(lmz_buf_append(b, tmp, (size_t)n), 0);
    return n;
  }
  if (n == 0)
    return 0;
  return (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : -2;
}

/* Receives until b holds at least `want` bytes, EOF, or the deadline.
 * Returns true on EOF / reset. */
static bool gw_recv_upto(int fd, lmz_buf *b, size_t want, int ms) {
  uint64_t end = tl_now_ms() + (uint64_t)ms;
  while (b->len < want && tl_now_ms() < end) {
    ssize_t n = gw_recv_some(fd, b);
    if (n == 0 || n == -2)
      return true;
    if (n < 0)
      gw_step(fd);
  }
  return false;
}

/* Waits for EOF (or reset); returns true if it came before the deadline.
 * Bytes received meanwhile go to b. */
static bool gw_wait_eof(int fd, lmz_buf *b, int ms) {
  return gw_recv_upto(fd, b, SIZE_MAX, ms);
}

/* Length of the first complete HTTP response in b (head + Content-Length
 * body), or 0 if incomplete. */
static size_t gw_response_len(const lmz_buf *b) {
  if (b->len < 4)
    return 0;
  const char *s = (const char *)b->data;
  const char *e = NULL;
  for (size_t i = 0; i + 3 < b->len; i++)
    if (!memcmp(s + i, "\r\n\r\n", 4)) {
      e = s + i + 4;
      break;
    }
  if (!e)
    return 0;
  size_t head = (size_t)(e - s), cl = 0;
  for (const char *p = s; p < e; p++) {
    if ((p == s || p[-1] == '\n') && !strncasecmp(p, "Content-Length:", 15))
      cl = strtoul(p + 15, NULL, 10);
  }
  if (!strncmp(s, "HTTP/1.1 1", 10) || !strncmp(s + 9, "204", 3))
    cl = 0;
  return b->len >= head + cl ? head + cl : 0;
}

/* Receives one whole response into `out` (NUL-terminated, malloc'd) and
 * removes it from b. Fails the test on timeout. */
static char *gw_read_response(int fd, lmz_buf *b) {
  uint64_t end = tl_now_ms() + GW_DEADLINE_MS;
  size_t n;
  while ((n = gw_response_len(b)) == 0) {
    ssize_t r = gw_recv_some(fd, b);
    assert_true(r != 0 || gw_response_len(b) > 0); /* EOF before the end */
    if (r < 0)
      gw_step(fd);
    assert_true(tl_now_ms() < end);
  }
  char *out = malloc(n + 1);
  memcpy(out, b->data, n);
  out[n] = '\0';
  memmove(b->data, b->data + n, b->len - n);
  b->len -= n;
  return out;
}

static int gw_status(const char *resp) {
  int st = 0;
  assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &st), 1);
  return st;
}

static const char *gw_body(const char *resp) {
  const char *e = strstr(resp, "\r\n\r\n");
  return e ? e + 4 : "";
}

/* Closes the loop after the test: runs it until every handle is closed. */
static void gw_loop_teardown(void) {
  for (int i = 0; i < 1000 && uv_loop_alive(gw_loop); i++)
    uv_run(gw_loop, UV_RUN_NOWAIT);
  int rv = uv_loop_close(gw_loop);
  if (rv)
    uv_print_all_handles(gw_loop, stderr);
  assert_int_equal(rv, 0);
}

#endif
