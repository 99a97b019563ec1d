/* tests/fuzz/fuzz_http.c - libFuzzer target for gateway/http_server.c's
 * request parsing and connection state machine, and (after an upgrade) the
 * WebSocket layer, without sockets.
 *
 * Input: byte 0 seeds the chunking; the rest is what a client sends on one
 * connection. A socketless connection (lmz__http_conn_new) gets the bytes
 * in chunks of pseudo-random sizes, then EOF. The app echoes requests (and
 * answers every other one asynchronously, from the next loop iteration),
 * accepts WebSocket upgrades and echoes messages. After every chunk the
 * connection's output is checked and dropped (as if written), and the loop
 * runs one non-blocking iteration (the prepare hook parses pipelined input).
 * Invariants: output and buffered input stay bounded; every response starts
 * with "HTTP/1.1 "; the connection always ends closed with its handles
 * released (no leaks under ASan). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"
#include "gateway/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t loop;
static lmz_http_server_t srv;
static lmz_http_conn_t *held; /* answered on the next iteration */
static int n_req;

static void on_ws_message(lmz_ws_t *ws, bool is_text, const uint8_t *d,
                          size_t n) {
  if (is_text)
    (void)lmz_ws_send_text(ws, d, n);
  else if (n > 0 && d[0] == 'c')
    (void)lmz_ws_close(ws, 4409, "bye");
  else
    (void)lmz_ws_send_binary(ws, d, n);
}

static void on_ws_close(lmz_ws_t *ws, int code, const char *r, size_t n) {
  (void)ws, (void)r, (void)n;
  if (code < 1000 || code > 4999)
    abort();
}

static void on_upgrade(lmz_http_server_t *s, lmz_http_conn_t *c,
                       const struct lmz_http_request *req) {
  (void)s;
  const char *tok;
  size_t tl;
  bool lmz;
  if (!lmz_ws_protocol_token(req, &tok, &tl, &lmz) && req->query_len > 0) {
    (void)lmz_http_respond_text(c, 401, "text/plain", "no token");
    return;
  }
  static const struct lmz_ws_callbacks cb = {on_ws_message, on_ws_close};
  struct lmz_ws_options o = {.max_message = 4096, .max_outbound = 16384};
  lmz_ws_t *ws;
  if (lmz_ws_accept(c, lmz ? "lmz" : NULL, &cb, &o, NULL, &ws) != 0)
    abort(); /* a validated upgrade must be acceptable */
}

static void on_request(lmz_http_server_t *s, lmz_http_conn_t *c,
                       const struct lmz_http_request *req) {
  (void)s;
  if (lmz_http_header_get(req, "host", NULL) == NULL && req->http_minor == 1)
    abort(); /* the server rejects HTTP/1.1 without Host */
  if (req->target_len != strlen(req->target) ||
      req->path_len + (req->query_len ? req->query_len + 1 : 0) >
          req->target_len)
    abort();
  if (n_req++ % 2) {
    held = c;
    return;
  }
  struct lmz_http_response r = {
      .status = 200, .body = req->body, .body_len = req->body_len};
  if (lmz_http_respond(c, &r) != 0)
    abort();
}

static void on_conn_close(lmz_http_server_t *s, lmz_http_conn_t *c,
                          bool pending) {
  (void)s, (void)pending;
  if (c == held)
    held = NULL;
}

static void setup(void) {
  uv_loop_init(&loop);
  struct lmz_http_options o = {.host = "127.0.0.1",
                               .on_request = on_request,
                               .on_upgrade = on_upgrade,
                               .on_conn_close = on_conn_close,
                               .max_header_bytes = 2048,
                               .max_url_bytes = 512,
                               .max_headers = 16,
                               .max_body = 4096};
  if (lmz_http_server_init(&loop, &srv, &o) != 0)
    abort();
}

/* Checks and drops what the connection wrote. */
static void drain_out(lmz_http_conn_t *c) {
  if (c->out.len > (2u << 20))
    abort();
  if (!c->ws && c->out.len > 0 &&
      memcmp(c->out.data, "HTTP/1.1 ", c->out.len < 9 ? c->out.len : 9))
    abort();
  c->out.len = 0;
}

static bool alive(uint64_t id) {
  for (struct lmz__qnode *q = srv.priv.conns.next; q != &srv.priv.conns;
       q = q->next)
    if (lmz_container_of(q, struct lmz_http_conn_s, all)->id == id)
      return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    setup();
    ready = true;
  }
  if (size < 1)
    return 0;
  uint32_t seed = data[0] * 2654435761u + 1;
  data++, size--;
  lmz_http_conn_t *c = lmz__http_conn_new(&srv);
  uint64_t id = c->id;
  while (size > 0 && alive(id)) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 64;
    if (n > size)
      n = size;
    lmz__http_conn_input(c, data, n);
    data += n, size -= n;
    if (!alive(id))
      break;
    if (c->in.len > (64u << 10) + 64)
      abort();
    drain_out(c);
    if (held) {
      lmz_http_conn_t *h = held;
      held = NULL;
      if (lmz_http_respond_text(h, 202, NULL, "later") != 0)
        abort();
      drain_out(h);
    }
    uv_run(&loop, UV_RUN_NOWAIT); /* prepare: pipelined input */
    if (alive(id))
      drain_out(c);
  }
  if (alive(id)) {
    lmz__http_conn_eof(c);
    if (alive(id))
      drain_out(c);
    if (alive(id))
      lmz_http_conn_close(c);
  }
  held = NULL;
  for (int i = 0; i < 4; i++)
    uv_run(&loop, UV_RUN_NOWAIT); /* close callbacks free the conn */
  if (srv.priv.m.conns_open != 0)
    abort();
  return 0;
}
