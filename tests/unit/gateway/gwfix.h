/* tests/unit/gateway/gwfix.h - fixture for the client gateway tests: a real
 * node (RocksDB in a temp dir, fake wall clock for token times) with the
 * counter example and a test module, a gateway on an ephemeral loopback
 * port, and a tiny blocking-style HTTP/WebSocket client that pumps the
 * node's loop while it waits (same thread, no sleeps; every wait bounded).
 * Header-only (static inline functions): each test binary includes it once. */
#ifndef LMZ_TESTS_GWFIX_H
#define LMZ_TESTS_GWFIX_H

#include "lib/testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "actor/node.h"
#include "core/buf.h"
#include "core/codec.h"
#include "core/json.h"
#include "gateway/gateway.h"
#include "gateway/jwt.h"

/* a hang guard: sanitizer builds stretch it (a 4 MiB parse takes ~11 s
 * under TSan) */
#define WC_DEADLINE_MS (5000 * tl_time_scale())

/* ---- the fixture --------------------------------------------------------- */

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  lmz_gateway_t gw_mem, *gw; /* gw = &gw_mem once initialized */
  int port;
  double now_ms; /* the node's (fake) wall clock */
  struct lmz_jwt_keyset ks;
  bool gw_closed, node_closed;
};

static struct fx *F; /* the current fixture (one per test) */

static inline double fx_clock(void *d) { return ((struct fx *)d)->now_ms; }

typedef int (*fx_module_fn)(lmz_registry *r);

struct fx_opts {
  fx_module_fn modules[3];
  const char *binds[8][3]; /* {binding, class, "do"|"worker"} */
  struct lmz_gateway_opts gw;
};

static inline void fx_start(const struct fx_opts *o) {
  F = calloc(1, sizeof *F);
  assert_non_null(F);
  assert_int_equal(sodium_init() >= 0, 1);
  assert_int_equal(uv_loop_init(&F->loop), 0);
  F->dir = tl_mkdtemp("lmz-gw");
  F->now_ms = (double)time(NULL) * 1000.0;
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts no = {.node_id = "test-node", .data_dir = F->dir,
                             .clock = fx_clock, .clock_data = F};
  assert_int_equal(lmz_node_init(F->node = &F->node_mem, &F->loop, &no, err),
                   0);
  for (int i = 0; i < 3 && o->modules[i]; i++)
    assert_int_equal(lmz_node_register_module(F->node, "test", o->modules[i], err), 0);
  for (int i = 0; i < 8 && o->binds[i][0]; i++) {
    lmz_node_type kind = strcmp(o->binds[i][2], "do") ? LMZ_NODE_WORKER : LMZ_NODE_DO;
    int rv = lmz_node_bind(F->node, o->binds[i][0], o->binds[i][1], kind, err);
    if (rv)
      fprintf(stderr, "bind: %s\n", err);
    assert_int_equal(rv, 0);
  }
  assert_int_equal(lmz_node_start(F->node), 0);
  uint8_t seed[32];
  for (int i = 0; i < 32; i++)
    seed[i] = (uint8_t)(i * 7 + 1);
  assert_int_equal(lmz_jwt_keyset_add(&F->ks, "BLUE", NULL, seed), 0);
  struct lmz_gateway_opts go = o->gw;
  go.port = 0;
  go.keyset = &F->ks;
  int rv = lmz_gateway_init(&F->loop, &F->gw_mem, F->node, &go, err);
  if (rv)
    fprintf(stderr, "gateway: %s\n", err);
  assert_int_equal(rv, 0);
  F->gw = &F->gw_mem;
  F->port = lmz_gateway_port(F->gw);
}

/* One loop step plus a short wait for the loop or the socket fd. */
static inline void wc_step(int fd) {
  uv_run(&F->loop, UV_RUN_NOWAIT);
  struct pollfd p[2] = {{uv_backend_fd(&F->loop), POLLIN, 0}, {fd, POLLIN, 0}};
  int timeout = uv_backend_timeout(&F->loop);
  if (timeout < 0 || timeout > 2)
    timeout = 2;
  poll(p, fd >= 0 ? 2 : 1, timeout);
  uv_run(&F->loop, UV_RUN_NOWAIT);
}

static inline bool wc_wait(const volatile bool *flag, int ms) {
  uint64_t end = tl_now_ms() + (uint64_t)ms;
  while (!*flag && tl_now_ms() < end)
    wc_step(-1);
  return *flag;
}

/* Pumps for `ms` (lets timers and in-flight work happen). */
static inline void wc_pump(int ms) {
  uint64_t end = tl_now_ms() + (uint64_t)ms;
  while (tl_now_ms() < end)
    wc_step(-1);
}

static inline void fx_gw_closed(lmz_gateway_t *gw, void *arg) {
  (void)gw;
  ((struct fx *)arg)->gw_closed = true;
}

static inline void fx_node_closed(lmz_node_t *n, void *arg) {
  (void)n;
  ((struct fx *)arg)->node_closed = true;
}

static inline void fx_stop(void) {
  lmz_gateway_close(F->gw, fx_gw_closed, F);
  assert_true(wc_wait(&F->gw_closed, WC_DEADLINE_MS));
  lmz_node_close(F->node, fx_node_closed, F);
  assert_true(wc_wait(&F->node_closed, WC_DEADLINE_MS));
  lmz_gateway_release(F->gw);
  lmz_node_release(F->node);
  for (int i = 0; i < 1000 && uv_loop_alive(&F->loop); i++)
    uv_run(&F->loop, UV_RUN_NOWAIT);
  int rv = uv_loop_close(&F->loop);
  if (rv)
    uv_print_all_handles(&F->loop, stderr);
  assert_int_equal(rv, 0);
  lmz_jwt_keyset_wipe(&F->ks);
  tl_rmtree(F->dir);
  free(F->dir);
  free(F);
  F = NULL;
}

/* ---- tokens -------------------------------------------------------------- */

/* A token for `sub` (NULL: none), valid ttl_s from the fake clock, extra
 * claims as JSON (NULL = none). Returned malloc'd. */
static inline char *fx_token_ex(const char *sub, int64_t ttl_s, const char *extra,
                         const char *aud) {
  lmz_buf claims = LMZ_BUF_INIT, tok = LMZ_BUF_INIT;
  int64_t now = (int64_t)(F->now_ms / 1000.0);
  if (sub) {
    struct lmz_jwt_claims_opts co = {.sub = sub, .now_s = now, .ttl_s = ttl_s,
                                     .extra_json = extra, .aud = aud};
    assert_int_equal(lmz_jwt_build_claims(&co, &claims, NULL), 0);
  } else {
    lmz_buf_printf(&claims, "{\"iss\":\"%s\",\"aud\":\"%s\",\"exp\":%lld,"
                            "\"emailVerified\":true,\"adminApproved\":true}",
                   LMZ_JWT_DEFAULT_ISS, LMZ_JWT_DEFAULT_AUD, (long long)(now + ttl_s));
  }
  assert_int_equal(lmz_jwt_mint(&F->ks, NULL, (const char *)claims.data, claims.len, &tok), 0);
  lmz_buf_putc(&tok, 0);
  lmz_buf_free(&claims);
  return (char *)lmz_buf_detach(&tok, NULL);
}

static inline char *fx_token(const char *sub) { return fx_token_ex(sub, 3600, NULL, NULL); }

/* ---- raw TCP ------------------------------------------------------------- */

static inline int wc_connect(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)F->port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fcntl(fd, F_SETFL, O_NONBLOCK);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int rv = connect(fd, (struct sockaddr *)&a, sizeof a);
  assert_true(rv == 0 || errno == EINPROGRESS);
  uint64_t end = tl_now_ms() + WC_DEADLINE_MS;
  for (;;) {
    struct pollfd p = {fd, POLLOUT, 0};
    if (poll(&p, 1, 0) == 1)
      break;
    assert_true(tl_now_ms() < end);
    wc_step(-1);
  }
  return fd;
}

static inline void wc_send(int fd, const void *data, size_t len) {
  const char *p = data;
  uint64_t end = tl_now_ms() + WC_DEADLINE_MS;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n > 0) {
      p += n;
      len -= (size_t)n;
      continue;
    }
    assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    assert_true(tl_now_ms() < end);
    wc_step(fd);
  }
}

/* Reads what is there; 1 = got bytes, 0 = EOF/reset, -1 = nothing now. */
static inline int wc_read(int fd, lmz_buf *b) {
  char tmp[65536];
  ssize_t n = recv(fd, tmp, sizeof tmp, 0);
  if (n > 0) {
    assert_int_equal(lmz_buf_append(b, tmp, (size_t)n), 0);
    return 1;
  }
  if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
    return 0;
  return -1;
}

/* ---- HTTP ---------------------------------------------------------------- */

struct wc_resp {
  int status;
  char *head; /* status line + headers, NUL-terminated */
  char *body; /* NUL-terminated */
  size_t body_len;
};

static inline size_t wc_head_end(const lmz_buf *b) {
  for (size_t i = 0; i + 3 < b->len; i++)
    if (!memcmp(b->data + i, "\r\n\r\n", 4))
      return i + 4;
  return 0;
}

/* Header value (case-insensitive) from a head, or NULL; static buffer. */
static inline const char *wc_header(const char *head, const char *name) {
  static char val[1024];
  size_t nl = strlen(name);
  for (const char *p = head; (p = strstr(p, "\r\n")); p += 2) {
    if (!strncasecmp(p + 2, name, nl) && p[2 + nl] == ':') {
      const char *v = p + 3 + nl;
      while (*v == ' ')
        v++;
      size_t l = strcspn(v, "\r");
      if (l >= sizeof val)
        l = sizeof val - 1;
      memcpy(val, v, l);
      val[l] = '\0';
      return val;
    }
  }
  return NULL;
}

/* Reads one response from fd (buffer b keeps what follows it). */
static inline struct wc_resp wc_read_resp(int fd, lmz_buf *b, bool head_only) {
  uint64_t end = tl_now_ms() + WC_DEADLINE_MS;
  size_t he = 0, need = 0;
  struct wc_resp r = {0};
  for (;;) {
    if (!he && (he = wc_head_end(b))) {
      r.head = strndup((char *)b->data, he);
      assert_int_equal(sscanf(r.head, "HTTP/1.1 %d", &r.status), 1);
      const char *cl = wc_header(r.head, "Content-Length");
      need = head_only || r.status == 101 || r.status == 204 || !cl ? 0 : strtoul(cl, NULL, 10);
    }
    if (he && b->len >= he + need)
      break;
    int rv = wc_read(fd, b);
    assert_true(rv != 0 || (he && b->len >= he + need));
    if (rv < 0)
      wc_step(fd);
    assert_true(tl_now_ms() < end);
  }
  r.body = strndup((char *)b->data + he, need);
  r.body_len = need;
  memmove(b->data, b->data + he + need, b->len - he - need);
  b->len -= he + need;
  return r;
}

static inline void wc_resp_free(struct wc_resp *r) {
  free(r->head);
  free(r->body);
}

/* One request on a fresh connection: "GET /x" + extra header lines and a
 * body (NULL = none). */
static inline struct wc_resp wc_http_body(const char *method, const char *target,
                                   const char *extra_headers, const char *body) {
  int fd = wc_connect();
  lmz_buf req = LMZ_BUF_INIT, in = LMZ_BUF_INIT;
  lmz_buf_printf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n",
                 method, target, extra_headers ? extra_headers : "");
  if (body)
    lmz_buf_printf(&req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
  else
    lmz_buf_append_str(&req, "\r\n");
  wc_send(fd, req.data, req.len);
  struct wc_resp r = wc_read_resp(fd, &in, !strcmp(method, "HEAD"));
  close(fd);
  lmz_buf_free(&req);
  lmz_buf_free(&in);
  return r;
}

static inline struct wc_resp wc_http(const char *method, const char *target,
                              const char *extra_headers) {
  return wc_http_body(method, target, extra_headers, NULL);
}

/* ---- WebSocket ----------------------------------------------------------- */

struct wc_ws {
  int fd;
  lmz_buf in;
  struct wc_resp resp; /* the handshake answer */
  bool closed;         /* a close frame or EOF was seen */
  int close_code;
  char close_reason[128];
};

/* Upgrade to `path` offering protocols (e.g. "lmz, lmz.access-token.X");
 * extra header lines may be given. resp.status says how it went. */
static inline struct wc_ws *wc_ws_open(const char *path, const char *protocols,
                                const char *extra_headers) {
  struct wc_ws *w = calloc(1, sizeof *w);
  w->fd = wc_connect();
  lmz_buf req = LMZ_BUF_INIT;
  lmz_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n", path);
  if (protocols)
    lmz_buf_printf(&req, "Sec-WebSocket-Protocol: %s\r\n", protocols);
  lmz_buf_printf(&req, "%s\r\n", extra_headers ? extra_headers : "");
  wc_send(w->fd, req.data, req.len);
  lmz_buf_free(&req);
  w->resp = wc_read_resp(w->fd, &w->in, false);
  return w;
}

/* Connects `instance` with a token for `sub` (NULL token: sub's own). */
static inline struct wc_ws *wc_client(const char *instance, const char *token) {
  char path[300], *proto = malloc(strlen(token) + 64);
  snprintf(path, sizeof path, "/gateway/LUMENIZE_CLIENT_GATEWAY/%s", instance);
  sprintf(proto, "lmz, lmz.access-token.%s", token);
  struct wc_ws *w = wc_ws_open(path, proto, NULL);
  free(proto);
  return w;
}

static inline void wc_ws_frame(struct wc_ws *w, int opcode, const void *data, size_t len) {
  lmz_buf f = LMZ_BUF_INIT;
  uint8_t hdr[14], mask[4] = {0x12, 0x34, 0x56, 0x78};
  size_t h = 0;
  hdr[h++] = (uint8_t)(0x80 | opcode);
  if (len < 126) {
    hdr[h++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    hdr[h++] = 0x80 | 126;
    hdr[h++] = (uint8_t)(len >> 8);
    hdr[h++] = (uint8_t)len;
  } else {
    hdr[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  memcpy(hdr + h, mask, 4);
  h += 4;
  lmz_buf_append(&f, hdr, h);
  for (size_t i = 0; i < len; i++)
    lmz_buf_putc(&f, ((const uint8_t *)data)[i] ^ mask[i % 4]);
  wc_send(w->fd, f.data, f.len);
  lmz_buf_free(&f);
}

static inline void wc_ws_text(struct wc_ws *w, const char *s) { wc_ws_frame(w, 1, s, strlen(s)); }

static inline void wc_ws_close(struct wc_ws *w, int code) {
  uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  wc_ws_frame(w, 8, p, 2);
}

/* Parses one server frame from w->in: returns its total size, 0 if
 * incomplete. */
static inline size_t wc_frame(struct wc_ws *w, int *op, const uint8_t **pl, size_t *pl_len) {
  const uint8_t *d = w->in.data;
  if (w->in.len < 2)
    return 0;
  size_t h = 2, len = d[1] & 0x7f;
  if (len == 126) {
    if (w->in.len < 4)
      return 0;
    len = (size_t)d[2] << 8 | d[3];
    h = 4;
  } else if (len == 127) {
    if (w->in.len < 10)
      return 0;
    len = 0;
    for (int i = 0; i < 8; i++)
      len = len << 8 | d[2 + i];
    h = 10;
  }
  if (w->in.len < h + len)
    return 0;
  *op = d[0] & 0x0f;
  *pl = d + h;
  *pl_len = len;
  return h + len;
}

/* Next text message (malloc'd), or NULL on close/EOF/timeout (w->closed
 * and close_code tell which). Pings are skipped. */
static inline char *wc_ws_recv(struct wc_ws *w, int ms) {
  uint64_t end = tl_now_ms() + (uint64_t)ms;
  for (;;) {
    int op;
    const uint8_t *pl;
    size_t pl_len, n;
    while ((n = wc_frame(w, &op, &pl, &pl_len))) {
      char *msg = NULL;
      if (op == 1)
        msg = strndup((const char *)pl, pl_len);
      if (op == 8) {
        w->closed = true;
        w->close_code = pl_len >= 2 ? (pl[0] << 8 | pl[1]) : 1005;
        snprintf(w->close_reason, sizeof w->close_reason, "%.*s",
                 (int)(pl_len > 2 ? pl_len - 2 : 0), (const char *)pl + 2);
      }
      memmove(w->in.data, w->in.data + n, w->in.len - n);
      w->in.len -= n;
      if (msg || w->closed)
        return msg;
    }
    if (w->closed || tl_now_ms() >= end)
      return NULL;
    int rv = wc_read(w->fd, &w->in);
    if (rv == 0) {
      w->closed = true;
      w->close_code = w->close_code ? w->close_code : 1006;
      return NULL;
    }
    if (rv < 0)
      wc_step(w->fd);
  }
}

/* Next message parsed as JSON in arena a (fails the test if none). */
static inline lmz_json *wc_ws_json(struct wc_ws *w, lmz_arena *a) {
  char *m = wc_ws_recv(w, WC_DEADLINE_MS);
  assert_non_null(m);
  lmz_json *j = NULL;
  int rv = lmz_json_parse(a, m, strlen(m), NULL, &j, NULL);
  if (rv)
    fprintf(stderr, "not JSON: %s\n", m);
  assert_int_equal(rv, 0);
  free(m);
  return j;
}

static inline void wc_ws_free(struct wc_ws *w) {
  close(w->fd);
  lmz_buf_free(&w->in);
  wc_resp_free(&w->resp);
  free(w);
  wc_pump(5); /* let the server see the close */
}

/* Dotted path lookup in a JSON DOM ("result.json.callChain.0.type"). */
static inline const lmz_json *jget(const lmz_json *j, const char *path) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *save = NULL, *k = strtok_r(buf, ".", &save); j && k;
       k = strtok_r(NULL, ".", &save)) {
    if (j->type == LMZ_JSON_ARRAY) {
      unsigned long i = strtoul(k, NULL, 10);
      j = i < j->n ? j->u.items[i] : NULL;
    } else {
      j = lmz_json_get(j, k);
    }
  }
  return j;
}

static inline const char *jstr(const lmz_json *j, const char *path) {
  const lmz_json *v = jget(j, path);
  return v && v->type == LMZ_JSON_STRING ? v->u.str.p : NULL;
}

static inline bool jtrue(const lmz_json *j, const char *path) {
  const lmz_json *v = jget(j, path);
  return v && v->type == LMZ_JSON_TRUE;
}

#endif
