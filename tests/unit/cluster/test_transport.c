/* Tests for cluster/transport_uv.c and cluster/rpc_client.c over real
 * loopback TCP on ephemeral ports. Every wait is bounded by a generous
 * liveness deadline (LIVE_MS); what the transport promises about time
 * (deadlines, dead peers, backoff) is asserted on an injected fake clock.
 * Source addresses other than 127.0.0.1 are other 127/8 loopback addresses
 * (Linux routes all of 127/8 to lo). */
#include "lib/testlib.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/rpc_client.h"
#include "cluster/secure.h"
#include "cluster/transport.h"
#include "proto/frame.h"

static uint8_t KEY[32], OTHER_KEY[32];

/* Liveness bound for waits on real I/O: generous, never a timing claim. */
#define LIVE_MS 30000

/* ---- a fake clock (readable from a server thread) ----------------------- */

typedef _Atomic uint64_t fake_clock;
static uint64_t fake_now(void *c) { return atomic_load((fake_clock *)c); }
static void fake_set(fake_clock *c, uint64_t ms) { atomic_store(c, ms); }

/* ---- a transport with counters ------------------------------------------ */

typedef struct node {
  lmz_transport_t t;
  uint64_t id;
  int ups, downs, last_down_status;
  uint64_t frames, next_expected; /* Call frames received, in order */
  int order_errors;
  bool echo;   /* answer Call with Result (same call_id, value = chain) */
  bool closed; /* close callback ran */
  lmz_conn_t *last_conn;
} node;

static void on_frame(lmz_conn_t *c, const Lmz__Frame *f, void *data) {
  node *n = data;
  n->last_conn = c;
  if (f->body_case != LMZ__FRAME__BODY_CALL)
    return;
  if (f->call->call_id != n->next_expected)
    n->order_errors++;
  n->next_expected = f->call->call_id + 1;
  n->frames++;
  if (n->echo) {
    Lmz__Result r = LMZ__RESULT__INIT;
    r.call_id = f->call->call_id;
    r.ok = 1;
    r.value = f->call->chain;
    Lmz__Frame out = LMZ__FRAME__INIT;
    out.body_case = LMZ__FRAME__BODY_RESULT;
    out.result = &r;
    assert_int_equal(lmz_conn_send(c, &out), 0);
  }
}

static void on_state(lmz_conn_t *c, int state, int status, void *data) {
  node *n = data;
  if (state == LMZ_CONN_UP) {
    n->ups++;
  } else {
    n->downs++;
    n->last_down_status = status;
  }
  (void)c;
}

static void on_closed(lmz_transport_t *t) {
  node *n = lmz_container_of(t, node, t);
  n->closed = true;
}

static struct lmz_transport_options base_opts(node *n, const char *listen) {
  struct lmz_transport_options o = {0};
  o.key = KEY;
  o.node_id = n->id;
  o.name = "test";
  o.listen = listen;
  o.on_frame = on_frame;
  o.on_conn_state = on_state;
  o.data = n;
  o.backoff_min_ms = 10;
  o.backoff_max_ms = 100;
  return o;
}

static void node_start(uv_loop_t *loop, node *n, uint64_t id,
                       struct lmz_transport_options *o) {
  memset(n, 0, sizeof *n);
  n->id = id;
  o->node_id = id;
  o->data = n;
  assert_int_equal(lmz_transport_init(loop, &n->t, o), 0);
}

typedef bool (*pred_fn)(void *ctx);

/* Runs the loop until pred holds; fails the test after timeout_ms. */
static void run_until(uv_loop_t *loop, pred_fn pred, void *ctx,
                      uint64_t timeout_ms) {
  uint64_t deadline = tl_now_ms() + timeout_ms;
  while (!pred(ctx)) {
    if (tl_now_ms() > deadline)
      fail_msg("condition not reached within %llu ms",
               (unsigned long long)timeout_ms);
    uv_run(loop, UV_RUN_ONCE);
  }
}

static bool is_closed(void *ctx) { return ((node *)ctx)->closed; }
static bool has_up(void *ctx) { return ((node *)ctx)->ups > 0; }
static bool has_down(void *ctx) { return ((node *)ctx)->downs > 0; }

static void node_close(uv_loop_t *loop, node *n) {
  lmz_transport_close(&n->t, on_closed);
  run_until(loop, is_closed, n, LIVE_MS);
}

static void loop_teardown(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_NOWAIT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static Lmz__Frame call_frame(Lmz__Call *c, uint64_t id, const void *chain,
                             size_t len) {
  lmz__call__init(c);
  c->call_id = id;
  c->version = 1;
  c->chain.data = (uint8_t *)chain;
  c->chain.len = len;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_CALL;
  f.call = c;
  return f;
}

static char *addr_of(node *n, char *buf) {
  sprintf(buf, "127.0.0.1:%d", lmz_transport_port(&n->t));
  return buf;
}

/* ---- 100k frames both ways, batched ------------------------------------- */

typedef struct {
  node *a, *b;
  uint64_t want;
} pair_ctx;

static bool both_up(void *ctx) {
  pair_ctx *p = ctx;
  return p->a->ups > 0 && p->b->ups > 0;
}

/* Nodes 1 (a, dialing) and 2 (b, listening on port 0) with default
 * options, connected and both UP: returns a's conn to b. */
static lmz_conn_t *pair_up(uv_loop_t *loop, node *a, node *b) {
  struct lmz_transport_options oa = base_opts(a, NULL);
  struct lmz_transport_options ob = base_opts(b, "127.0.0.1:0");
  node_start(loop, b, 2, &ob);
  node_start(loop, a, 1, &oa);
  char addr[64];
  lmz_conn_t *ca;
  assert_int_equal(lmz_transport_connect(&a->t, 2, addr_of(b, addr), &ca), 0);
  pair_ctx pc = {a, b, 0};
  run_until(loop, both_up, &pc, LIVE_MS);
  return ca;
}

/* ---- a frame sent from a prepare callback leaves in that iteration ------- */

struct prep_send {
  uv_prepare_t h;
  lmz_transport_t *t;
  lmz_conn_t *conn;
  uint64_t writes_before, writes_after;
  bool ran;
};

/* Like the replication flush (cluster/cluster_repl.c): queue a frame in a
 * prepare callback of our own, then write it at once. The transport's own
 * prepare handle is not active at the start of this phase, so without
 * lmz_transport_flush() the frame would wait for the loop's next wake-up. */
static void prep_send_cb(uv_prepare_t *h) {
  struct prep_send *ps = h->data;
  struct lmz_transport_metrics m;
  Lmz__Call call;
  Lmz__Frame f = call_frame(&call, 0, "x", 1);
  lmz_transport_metrics(ps->t, &m);
  ps->writes_before = m.writes;
  assert_int_equal(lmz_conn_send(ps->conn, &f), 0);
  lmz_transport_flush(ps->t);
  lmz_transport_metrics(ps->t, &m);
  ps->writes_after = m.writes;
  ps->ran = true;
  uv_prepare_stop(h);
}

static bool got_frame(void *ctx) { return ((node *)ctx)->frames > 0; }

static void test_flush_from_prepare(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  lmz_conn_t *ca = pair_up(&loop, &a, &b);
  struct prep_send ps = {.t = &a.t, .conn = ca};
  uv_prepare_init(&loop, &ps.h);
  ps.h.data = &ps;
  uv_prepare_start(&ps.h, prep_send_cb);
  run_until(&loop, got_frame, &b, LIVE_MS);
  assert_true(ps.ran);
  assert_int_equal(ps.writes_after, ps.writes_before + 1);
  uv_close((uv_handle_t *)&ps.h, NULL);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

static void test_exchange_100k_both_ways(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  lmz_conn_t *ca = pair_up(&loop, &a, &b);
  lmz_conn_t *cb = lmz_transport_peer(&b.t, 1);
  assert_non_null(cb);
  assert_false(lmz_conn_is_managed(cb));
  assert_true(lmz_conn_is_managed(ca));
  assert_int_equal(lmz_conn_peer_incarnation(cb) != 0, 1);
  const uint64_t N = 100000;
  uint64_t sent_a = 0, sent_b = 0, overloads = 0;
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (a.frames < N || b.frames < N) {
    assert_true(tl_now_ms() < deadline);
    Lmz__Call call;
    for (int i = 0; i < 5000 && sent_a < N; i++) {
      Lmz__Frame f = call_frame(&call, sent_a, "0123456789abcdef", 16);
      int rv = lmz_conn_send(ca, &f);
      if (rv == LMZ_EOVERLOAD) {
        overloads++;
        break;
      }
      assert_int_equal(rv, 0);
      sent_a++;
    }
    for (int i = 0; i < 5000 && sent_b < N; i++) {
      Lmz__Frame f = call_frame(&call, sent_b, "fedcba9876543210", 16);
      int rv = lmz_conn_send(cb, &f);
      if (rv == LMZ_EOVERLOAD) {
        overloads++;
        break;
      }
      assert_int_equal(rv, 0);
      sent_b++;
    }
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  assert_int_equal(a.frames, N);
  assert_int_equal(b.frames, N);
  assert_int_equal(a.order_errors, 0);
  assert_int_equal(b.order_errors, 0);
  struct lmz_transport_metrics ma, mb;
  lmz_transport_metrics(&a.t, &ma);
  lmz_transport_metrics(&b.t, &mb);
  assert_int_equal(ma.frames_out, N);
  assert_int_equal(mb.frames_in, N);
  assert_int_equal(ma.frames_in, N);
  /* Batched: far fewer writes than frames. */
  assert_true(ma.writes * 20 < ma.frames_out);
  assert_true(mb.writes * 20 < mb.frames_out);
  assert_int_equal(ma.decrypt_failures + mb.decrypt_failures, 0);
  assert_int_equal(ma.handshakes_ok, 1);
  assert_int_equal(mb.handshakes_ok, 1);
  print_message("100k both ways: writes a=%llu b=%llu, overloads=%llu\n",
                (unsigned long long)ma.writes, (unsigned long long)mb.writes,
                (unsigned long long)overloads);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

/* ---- backpressure ------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, (struct sockaddr *)&sa, sizeof sa);
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  close(fd); /* nothing listens there now: connections are refused */
  return ntohs(sa.sin_port);
}

static void test_backpressure_peer_gone(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a;
  struct lmz_transport_options oa = base_opts(&a, NULL);
  oa.max_pending_bytes = 64 * 1024;
  node_start(&loop, &a, 1, &oa);
  char addr[64];
  sprintf(addr, "127.0.0.1:%d", free_port());
  lmz_conn_t *c;
  assert_int_equal(lmz_transport_connect(&a.t, 9, addr, &c), 0);
  uint8_t payload[1000] = {0};
  Lmz__Call call;
  int accepted = 0, rv = 0;
  for (int i = 0; i < 1000 && rv == 0; i++) {
    Lmz__Frame f = call_frame(&call, (uint64_t)i, payload, sizeof payload);
    rv = lmz_conn_send(c, &f);
    if (rv == 0)
      accepted++;
    uv_run(&loop, UV_RUN_NOWAIT); /* dials fail meanwhile */
  }
  assert_int_equal(rv, LMZ_EOVERLOAD);
  /* each frame is 4 + ~1010 bytes: 64 KiB holds 64 of them */
  assert_int_equal(accepted, 64);
  size_t pending = lmz_conn_pending_bytes(c);
  assert_true(pending <= 64 * 1024);
  for (int i = 0; i < 100; i++) { /* stays bounded, keeps refusing */
    Lmz__Frame f = call_frame(&call, 0, payload, sizeof payload);
    assert_int_equal(lmz_conn_send(c, &f), LMZ_EOVERLOAD);
    uv_run(&loop, UV_RUN_NOWAIT);
  }
  assert_int_equal(lmz_conn_pending_bytes(c), pending);
  assert_false(lmz_conn_is_up(c));
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&a.t, &m);
  assert_int_equal(m.overload_rejections, 101);
  assert_true(m.dials >= 1);
  assert_int_equal(a.ups, 0);
  node_close(&loop, &a);
  loop_teardown(&loop);
}

/* A live peer whose loop stops running (a stuck process): the sender's
 * kernel buffers fill, then its write queue, then sends are refused; later
 * the dead-peer timeout closes the link. */
static void test_slow_then_dead_peer(void **state) {
  (void)state;
  uv_loop_t la, lb;
  uv_loop_init(&la);
  uv_loop_init(&lb);
  node a, b;
  fake_clock clk = 1000;
  struct lmz_transport_options oa = base_opts(&a, NULL);
  oa.max_pending_bytes = 1u << 20;
  oa.dead_timeout_ms = 400;
  oa.ping_interval_ms = 100;
  oa.now_ms = fake_now; /* a's deadlines on fake time (b: real) */
  oa.clock = &clk;
  struct lmz_transport_options ob = base_opts(&b, "127.0.0.1:0");
  node_start(&lb, &b, 2, &ob);
  node_start(&la, &a, 1, &oa);
  char addr[64];
  lmz_conn_t *c;
  assert_int_equal(lmz_transport_connect(&a.t, 2, addr_of(&b, addr), &c), 0);
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (!(a.ups && b.ups)) {
    assert_true(tl_now_ms() < deadline);
    uv_run(&la, UV_RUN_NOWAIT);
    uv_run(&lb, UV_RUN_NOWAIT);
  }
  /* b stops running. */
  static uint8_t payload[16384];
  Lmz__Call call;
  int rv = 0;
  uint64_t sent = 0;
  while (rv == 0) {
    assert_true(tl_now_ms() < deadline + LIVE_MS);
    assert_true(sent < 200000); /* 3 GB: memory would have exploded */
    Lmz__Frame f = call_frame(&call, sent, payload, sizeof payload);
    rv = lmz_conn_send(c, &f);
    if (rv == 0)
      sent++;
    if (sent % 16 == 0)
      uv_run(&la, UV_RUN_NOWAIT);
  }
  assert_int_equal(rv, LMZ_EOVERLOAD);
  assert_true(lmz_conn_pending_bytes(c) <= (1u << 20));
  print_message("slow peer: %llu x 16 KiB accepted before EOVERLOAD\n",
                (unsigned long long)sent);
  /* Nothing arrives from b: dead exactly dead_timeout_ms after the last
   * bytes from it (fake time stood still at 1000 while they came). */
  fake_set(&clk, 1399);
  lmz_transport_tick(&a.t);
  uv_run(&la, UV_RUN_NOWAIT);
  assert_int_equal(a.downs, 0);
  fake_set(&clk, 1400);
  lmz_transport_tick(&a.t);
  run_until(&la, has_down, &a, LIVE_MS);
  assert_int_equal(a.last_down_status, LMZ_ETIMEOUT);
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&a.t, &m);
  assert_int_equal(m.dead_peers, 1);
  lmz_transport_close(&b.t, on_closed);
  lmz_transport_close(&a.t, on_closed);
  deadline = tl_now_ms() + LIVE_MS;
  while (!(a.closed && b.closed)) {
    assert_true(tl_now_ms() < deadline);
    uv_run(&la, UV_RUN_NOWAIT);
    uv_run(&lb, UV_RUN_NOWAIT);
  }
  loop_teardown(&la);
  loop_teardown(&lb);
}

/* ---- reconnect after the peer restarts on the same port ----------------- */

static void test_reconnect_same_port(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  struct lmz_transport_options oa = base_opts(&a, NULL);
  struct lmz_transport_options ob = base_opts(&b, "127.0.0.1:0");
  node_start(&loop, &b, 2, &ob);
  node_start(&loop, &a, 1, &oa);
  char addr[64], listen[64];
  addr_of(&b, addr);
  strcpy(listen, addr);
  lmz_conn_t *c;
  assert_int_equal(lmz_transport_connect(&a.t, 2, addr, &c), 0);
  pair_ctx pc = {&a, &b, 0};
  run_until(&loop, both_up, &pc, LIVE_MS);
  uint64_t inc1 = lmz_conn_peer_incarnation(c);
  node_close(&loop, &b);
  run_until(&loop, has_down, &a, LIVE_MS);
  assert_true(a.last_down_status == LMZ_ECLOSED ||
              a.last_down_status == UV_ECONNRESET);
  assert_true(lmz_transport_peer(&a.t, 2) == c); /* managed: still there */
  /* Frames sent while down are queued... */
  Lmz__Call call;
  for (uint64_t i = 0; i < 10; i++) {
    Lmz__Frame f = call_frame(&call, i, "x", 1);
    assert_int_equal(lmz_conn_send(c, &f), 0);
  }
  /* ...the peer comes back on the same port... */
  ob.listen = listen;
  node_start(&loop, &b, 2, &ob);
  run_until(&loop, has_up, &b, LIVE_MS);
  /* ...and gets them, in order. */
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (b.frames < 10) {
    assert_true(tl_now_ms() < deadline);
    uv_run(&loop, UV_RUN_ONCE);
  }
  assert_int_equal(b.order_errors, 0);
  assert_int_equal(a.ups, 2);
  assert_true(lmz_conn_peer_incarnation(c) != inc1); /* restart visible */
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&a.t, &m);
  assert_true(m.reconnects >= 1);
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

/* ---- both dial at once: one link, usable both ways ---------------------- */

typedef struct {
  node *a, *b;
} two;

static bool one_socket_each(void *ctx) {
  two *p = ctx;
  struct lmz_transport_metrics ma, mb;
  lmz_transport_metrics(&p->a->t, &ma);
  lmz_transport_metrics(&p->b->t, &mb);
  return ma.sockets_open == 1 && mb.sockets_open == 1;
}

static void test_simultaneous_dial(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  struct lmz_transport_options oa = base_opts(&a, "127.0.0.1:0");
  struct lmz_transport_options ob = base_opts(&b, "127.0.0.1:0");
  oa.ping_interval_ms = ob.ping_interval_ms = 50;
  node_start(&loop, &a, 1, &oa);
  node_start(&loop, &b, 2, &ob);
  char aa[64], ba[64];
  lmz_conn_t *ca, *cb;
  assert_int_equal(lmz_transport_connect(&a.t, 2, addr_of(&b, ba), &ca), 0);
  assert_int_equal(lmz_transport_connect(&b.t, 1, addr_of(&a, aa), &cb), 0);
  assert_int_equal(lmz_transport_connect(&b.t, 1, aa, &cb), LMZ_EEXIST);
  pair_ctx pc = {&a, &b, 0};
  run_until(&loop, both_up, &pc, LIVE_MS);
  /* Traffic both ways while the duplicate is being resolved. */
  Lmz__Call call;
  for (uint64_t i = 0; i < 100; i++) {
    Lmz__Frame f = call_frame(&call, i, "y", 1);
    assert_int_equal(lmz_conn_send(ca, &f), 0);
    assert_int_equal(lmz_conn_send(cb, &f), 0);
  }
  two tw = {&a, &b};
  run_until(&loop, one_socket_each, &tw, LIVE_MS);
  assert_true(lmz_transport_peer(&a.t, 2) == ca);
  assert_true(lmz_transport_peer(&b.t, 1) == cb);
  for (uint64_t i = 100; i < 200; i++) {
    Lmz__Frame f = call_frame(&call, i, "y", 1);
    assert_int_equal(lmz_conn_send(ca, &f), 0);
    assert_int_equal(lmz_conn_send(cb, &f), 0);
  }
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (a.frames < 200 || b.frames < 200) {
    assert_true(tl_now_ms() < deadline);
    uv_run(&loop, UV_RUN_ONCE);
  }
  /* One link per pair, no flap, nothing lost or reordered. */
  assert_int_equal(a.order_errors + b.order_errors, 0);
  assert_int_equal(a.ups, 1);
  assert_int_equal(b.ups, 1);
  assert_int_equal(a.downs + b.downs, 0);
  struct lmz_transport_metrics ma, mb;
  lmz_transport_metrics(&a.t, &ma);
  lmz_transport_metrics(&b.t, &mb);
  assert_int_equal(ma.duplicates_retired, 1);
  assert_int_equal(mb.duplicates_retired, 1);
  assert_true(lmz_conn_is_up(ca) && lmz_conn_is_up(cb));
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

/* ---- a server on its own thread, for blocking clients ------------------- */

typedef struct server {
  uv_loop_t loop;
  node n;
  uv_async_t stop;
  uv_thread_t th;
  int port;
  struct lmz_transport_metrics m; /* copied at stop */
} server;

static void on_stop(uv_async_t *h) {
  server *s = h->data;
  lmz_transport_metrics(&s->n.t, &s->m);
  lmz_transport_close(&s->n.t, on_closed);
  uv_close((uv_handle_t *)&s->stop, NULL);
}

static void server_thread(void *arg) {
  server *s = arg;
  uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* What a test server differs in (0 = the transport's default). */
typedef struct server_cfg {
  uint32_t handshake_ms, first_bytes_ms, ping_ms, max_hs, max_hs_addr;
  fake_clock *clock; /* NULL = real time */
} server_cfg;

static void server_start_cfg(server *s, const server_cfg *cfg) {
  memset(s, 0, sizeof *s);
  uv_loop_init(&s->loop);
  struct lmz_transport_options o = base_opts(&s->n, "127.0.0.1:0");
  o.handshake_timeout_ms = cfg->handshake_ms;
  o.first_bytes_timeout_ms = cfg->first_bytes_ms;
  o.ping_interval_ms = cfg->ping_ms;
  o.max_handshaking = cfg->max_hs;
  o.max_handshaking_per_addr = cfg->max_hs_addr;
  if (cfg->clock) {
    o.now_ms = fake_now;
    o.clock = cfg->clock;
  }
  node_start(&s->loop, &s->n, 5, &o);
  s->n.echo = true;
  s->port = lmz_transport_port(&s->n.t);
  uv_async_init(&s->loop, &s->stop, on_stop);
  s->stop.data = s;
  assert_int_equal(uv_thread_create(&s->th, server_thread, s), 0);
}

static void server_start(server *s, uint32_t handshake_timeout_ms,
                         uint32_t ping_ms) {
  server_cfg cfg = {.handshake_ms = handshake_timeout_ms, .ping_ms = ping_ms};
  server_start_cfg(s, &cfg);
}

static void server_stop(server *s) {
  uv_async_send(&s->stop);
  uv_thread_join(&s->th);
  assert_true(s->n.closed);
  assert_int_equal(uv_loop_close(&s->loop), 0);
}

static int raw_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  return fd;
}

/* True when the server closed fd within timeout_ms (EOF or reset). Other
 * bytes (a reject notice) are skipped. */
static bool closed_by_peer(int fd, int timeout_ms) {
  uint64_t deadline = tl_now_ms() + (uint64_t)timeout_ms;
  uint8_t buf[512];
  while (tl_now_ms() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
      continue;
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r == 0 || (r < 0 && errno == ECONNRESET))
      return true;
  }
  return false;
}

/* True when fd is connected and nothing is waiting on it (no bytes, no
 * EOF): the server has not closed it. */
static bool still_open(int fd) {
  uint8_t b;
  ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
  return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void rpc_roundtrip(lmz_rpc_client *c, uint64_t id, const char *s) {
  Lmz__Call call;
  Lmz__Frame f = call_frame(&call, id, s, strlen(s));
  assert_int_equal(lmz_rpc_send(c, &f), 0);
  Lmz__Frame *r = NULL;
  assert_int_equal(lmz_rpc_recv(c, &r, LIVE_MS), 0);
  assert_int_equal(r->body_case, LMZ__FRAME__BODY_RESULT);
  assert_int_equal(r->result->call_id, id);
  assert_int_equal(r->result->value.len, strlen(s));
  assert_memory_equal(r->result->value.data, s, strlen(s));
  lmz_frame_free(r);
}

static void test_rpc_client(void **state) {
  (void)state;
  server s;
  server_start(&s, 2000, 50);
  char addr[64], err[LMZ_ERRMSG_LEN];
  sprintf(addr, "127.0.0.1:%d", s.port);
  lmz_rpc_client *c = NULL;
  assert_int_equal(lmz_rpc_connect(&c, addr, KEY, 3000, err), 0);
  assert_int_equal(lmz_rpc_peer_id(c), 5);
  assert_string_equal(lmz_rpc_peer_name(c), "test");
  rpc_roundtrip(c, 7, "abc");
  /* Idle in recv while the server pings every 50 ms: no frame, a timeout,
   * pings answered, and the connection is still good. */
  Lmz__Frame *r = NULL;
  assert_int_equal(lmz_rpc_recv(c, &r, 300), LMZ_ETIMEOUT);
  assert_null(r);
  rpc_roundtrip(c, 8, "still alive");
  lmz_rpc_close(c);
  /* Wrong key: a clear message, no session. */
  assert_int_equal(lmz_rpc_connect(&c, addr, OTHER_KEY, 3000, err), LMZ_EAUTH);
  assert_null(c);
  assert_string_equal(err,
                      "handshake failed: the node rejected our cluster key "
                      "(wrong key?)");
  /* Refused. */
  char closed[64];
  int fp = free_port();
  sprintf(closed, "127.0.0.1:%d", fp);
  assert_int_equal(lmz_rpc_connect(&c, closed, KEY, 3000, err),
                   UV_ECONNREFUSED);
  char want[128];
  sprintf(want, "cannot connect to 127.0.0.1:%d: connection refused", fp);
  assert_string_equal(err, want);
  assert_int_equal(lmz_rpc_connect(&c, "nonsense", KEY, 3000, err), LMZ_EINVAL);
  assert_string_equal(err, "bad address nonsense: expected host:port");
  server_stop(&s);
  assert_int_equal(s.m.frames_in, 2);
  assert_int_equal(s.m.handshake_failures, 1);
  assert_true(s.m.pings_sent >= 2);
}

/* Garbage, silence, a tampered record: each closed; a good client is served
 * throughout. */
static void test_hostile_clients(void **state) {
  (void)state;
  server s;
  fake_clock clk = 1000;
  server_cfg cfg = {.handshake_ms = 300, .ping_ms = 1000, .clock = &clk};
  server_start_cfg(&s, &cfg);
  char addr[64], err[LMZ_ERRMSG_LEN];
  sprintf(addr, "127.0.0.1:%d", s.port);
  lmz_rpc_client *good = NULL;
  assert_int_equal(lmz_rpc_connect(&good, addr, KEY, LIVE_MS, err), 0);

  int g = raw_connect(s.port); /* garbage */
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(send(g, http, strlen(http), 0), (ssize_t)strlen(http));
  int q = raw_connect(s.port); /* says nothing */
  assert_true(closed_by_peer(g, LIVE_MS));
  rpc_roundtrip(good, 1, "between");
  assert_true(still_open(q)); /* fake time stands at 1000 */
  fake_set(&clk, 1300);       /* handshake timeout: 300 ms */
  assert_true(closed_by_peer(q, LIVE_MS));
  close(g);
  close(q);

  /* A client that knows the key but sends a tampered record. */
  int t = raw_connect(s.port);
  lmz_secure sec;
  lmz_buf out = LMZ_BUF_INIT, plain = LMZ_BUF_INIT;
  lmz_secure_init(&sec, LMZ_SECURE_INITIATOR, KEY, NULL);
  lmz_secure_start(&sec, &out);
  assert_int_equal(send(t, out.data, out.len, 0), (ssize_t)out.len);
  uint8_t buf[4096];
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (!lmz_secure_can_send(&sec)) {
    assert_true(tl_now_ms() < deadline);
    ssize_t r = recv(t, buf, sizeof buf, 0);
    assert_true(r > 0);
    lmz_buf_reset(&out);
    assert_int_equal(lmz_secure_feed(&sec, buf, (size_t)r, &out, &plain), 0);
    assert_int_equal(send(t, out.data, out.len, 0), (ssize_t)out.len);
  }
  lmz_buf_reset(&out);
  assert_int_equal(lmz_secure_seal(&sec, (const uint8_t *)"\0\0\0\0", 4, &out),
                   0);
  out.data[6] ^= 0x20;
  assert_int_equal(send(t, out.data, out.len, 0), (ssize_t)out.len);
  assert_true(closed_by_peer(t, LIVE_MS));
  close(t);
  lmz_secure_free(&sec);
  lmz_buf_free(&out);
  lmz_buf_free(&plain);

  rpc_roundtrip(good, 2, "after");
  lmz_rpc_close(good);
  server_stop(&s);
  assert_int_equal(s.m.frames_in, 2);
  assert_true(s.m.oversize + s.m.handshake_failures >= 1); /* garbage */
  assert_int_equal(s.m.handshake_timeouts, 1);             /* silence */
  assert_int_equal(s.m.decrypt_failures, 1);               /* tamper */
}

/* Two transports with different keys never come up; both count failures. */
static void test_wrong_key_transports(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  struct lmz_transport_options oa = base_opts(&a, NULL);
  oa.key = OTHER_KEY;
  struct lmz_transport_options ob = base_opts(&b, "127.0.0.1:0");
  node_start(&loop, &b, 2, &ob);
  node_start(&loop, &a, 1, &oa);
  char addr[64];
  lmz_conn_t *c;
  assert_int_equal(lmz_transport_connect(&a.t, 2, addr_of(&b, addr), &c), 0);
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  struct lmz_transport_metrics ma, mb;
  do {
    assert_true(tl_now_ms() < deadline);
    uv_run(&loop, UV_RUN_ONCE);
    lmz_transport_metrics(&a.t, &ma);
    lmz_transport_metrics(&b.t, &mb);
  } while (ma.handshake_failures < 2 || mb.handshake_failures < 2);
  assert_int_equal(a.ups + b.ups, 0);
  assert_int_equal(ma.handshakes_ok + mb.handshakes_ok, 0);
  assert_true(ma.reconnects >= 1); /* it keeps trying, with backoff */
  node_close(&loop, &a);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

static bool both_down(void *ctx) {
  two *p = ctx;
  return p->a->downs > 0 && p->b->downs > 0;
}

static void test_parse_addr(void **state) {
  (void)state;
  struct sockaddr_storage sa;
  assert_int_equal(lmz__transport_parse_addr("127.0.0.1:7100", &sa), 0);
  assert_int_equal(sa.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 7100);
  assert_int_equal(lmz__transport_parse_addr("[::1]:7101", &sa), 0);
  assert_int_equal(sa.ss_family, AF_INET6);
  assert_int_equal(ntohs(((struct sockaddr_in6 *)&sa)->sin6_port), 7101);
  const char *bad[] = {
      "localhost:7100", "1.2.3.4:99999", "1.2.3.4",    ":80", "1.2.3.4:",
      "[::1:80",        "::1:80",        "1.2.3.4:8x", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(lmz__transport_parse_addr(bad[i], &sa), LMZ_EINVAL);
}

static void test_init_errors_and_close_status(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  struct lmz_transport_options o = base_opts(&a, "nonsense");
  assert_int_equal(lmz_transport_init(&loop, &a.t, &o), LMZ_EINVAL);
  assert_non_null(strstr(a.t.errmsg, "expected ip:port"));
  o = base_opts(&a, "127.0.0.1:0");
  node_start(&loop, &a, 1, &o);
  char addr[64];
  addr_of(&a, addr);
  struct lmz_transport_options o2 = base_opts(&b, addr);
  assert_int_equal(lmz_transport_init(&loop, &b.t, &o2), UV_EADDRINUSE);
  assert_non_null(strstr(b.t.errmsg, addr));
  /* b dials a; closing a reports DOWN(ECANCELED) on a's side for b's conn */
  fake_clock clk = 1000;
  o2 = base_opts(&b, NULL);
  o2.now_ms = fake_now; /* b's backoff on fake time: see "nobody redials" */
  o2.clock = &clk;
  node_start(&loop, &b, 2, &o2);
  lmz_conn_t *c;
  assert_int_equal(lmz_transport_connect(&b.t, 1, addr, &c), 0);
  assert_int_equal(lmz_transport_connect(&b.t, 2, addr, &c), LMZ_EINVAL);
  pair_ctx pc = {&a, &b, 0};
  run_until(&loop, both_up, &pc, LIVE_MS);
  /* Closing a managed conn: DOWN(ECANCELED) here, the peer sees the link
   * go, and nobody redials. */
  lmz_conn_close(c);
  lmz_conn_close(c); /* idempotent */
  two tw = {&a, &b};
  run_until(&loop, both_down, &tw, LIVE_MS);
  assert_int_equal(b.last_down_status, LMZ_ECANCELED);
  assert_true(lmz_transport_peer(&b.t, 1) == NULL);
  assert_true(lmz_transport_peer(&a.t, 2) == NULL); /* unmanaged: freed */
  fake_set(&clk, 1000 + 10 * 100); /* ten times b's longest backoff */
  lmz_transport_tick(&b.t);
  for (int i = 0; i < 10; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&b.t, &m);
  assert_int_equal(m.dials, 1);
  assert_int_equal(m.sockets_open, 0);
  /* Dial again (a new managed conn), then close a: a reports DOWN with
   * ECANCELED for its side. */
  assert_int_equal(lmz_transport_connect(&b.t, 1, addr, &c), 0);
  a.ups = b.ups = 0;
  a.downs = b.downs = 0;
  run_until(&loop, both_up, &pc, LIVE_MS);
  node_close(&loop, &a);
  assert_int_equal(a.downs, 1);
  assert_int_equal(a.last_down_status, LMZ_ECANCELED);
  node_close(&loop, &b);
  loop_teardown(&loop);
}

/* ---- node port limits (issue 15 item 1) --------------------------------- */

/* A flooder: `n` connections from source address `src` (a 127/8 address),
 * every odd one "slow" (sends a real secure hello, then nothing), the rest
 * idle. flood_pump() reopens whatever the server closed, at most `burst` per
 * call, until `limit` connections were opened. */
#define FLOOD_MAX 400
typedef struct flood {
  int fd[FLOOD_MAX];
  bool hello_sent[FLOOD_MAX];
  int n, port, burst;
  const char *src;
  uint64_t opened, closed, notices, limit;
} flood;

static uint8_t flood_hello[LMZ_FRAME_HDR_LEN + LMZ_SECURE_HELLO_LEN];

static void flood_init_hello(void) {
  lmz_secure sec;
  lmz_buf out = LMZ_BUF_INIT;
  lmz_secure_init(&sec, LMZ_SECURE_INITIATOR, OTHER_KEY, NULL);
  assert_int_equal(lmz_secure_start(&sec, &out), 0);
  assert_int_equal(out.len, sizeof flood_hello);
  memcpy(flood_hello, out.data, out.len);
  lmz_buf_free(&out);
  lmz_secure_free(&sec);
}

/* A non-blocking connection from src to 127.0.0.1:port; -1 if refused. */
static int connect_from(const char *src, int port, bool block) {
  int fd = socket(AF_INET, SOCK_STREAM | (block ? 0 : SOCK_NONBLOCK), 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  assert_int_equal(inet_pton(AF_INET, src, &sa.sin_addr), 1);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 &&
      errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void flood_start(flood *f, const char *src, int port, int n,
                        uint64_t limit) {
  memset(f, 0, sizeof *f);
  assert_true(n <= FLOOD_MAX);
  f->src = src, f->port = port, f->n = n, f->limit = limit, f->burst = n;
  for (int i = 0; i < n; i++)
    f->fd[i] = -1;
}

static const uint8_t NOTICE[6] = {0, 0, 0, 2, 3, 2};

static bool has_notice(const uint8_t *p, size_t n) {
  for (size_t i = 0; i + sizeof NOTICE <= n; i++)
    if (memcmp(p + i, NOTICE, sizeof NOTICE) == 0)
      return true;
  return false;
}

/* One slot: send the slow hello once connected, notice what came back,
 * reap a closed connection. */
static void flood_slot(flood *f, int i) {
  uint8_t buf[512];
  if (i % 2 && !f->hello_sent[i] &&
      send(f->fd[i], flood_hello, sizeof flood_hello, MSG_NOSIGNAL) > 0)
    f->hello_sent[i] = true;
  ssize_t r = recv(f->fd[i], buf, sizeof buf, MSG_DONTWAIT);
  if (r > 0 && has_notice(buf, (size_t)r))
    f->notices++;
  if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                 errno != ENOTCONN)) {
    close(f->fd[i]);
    f->fd[i] = -1;
    f->closed++;
  }
}

static void flood_pump(flood *f) {
  int opened = 0;
  for (int i = 0; i < f->n; i++) {
    if (f->fd[i] < 0) {
      if (f->opened >= f->limit || opened >= f->burst)
        continue;
      f->fd[i] = connect_from(f->src, f->port, false);
      f->hello_sent[i] = false;
      f->opened++, opened++;
      if (f->fd[i] < 0) {
        f->closed++;
        continue;
      }
    }
    flood_slot(f, i);
  }
}

static void flood_stop(flood *f) {
  for (int i = 0; i < f->n; i++)
    if (f->fd[i] >= 0)
      close(f->fd[i]);
}

/* Reads what the server sent to fd until it closes: true if the overload
 * notice came (the only bytes, for a connection that never spoke). */
static bool got_notice(int fd) {
  uint8_t buf[256];
  size_t n = 0;
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (tl_now_ms() < deadline) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0)
      continue;
    ssize_t r = recv(fd, buf + n, sizeof buf - n, 0);
    if (r <= 0)
      break;
    n += (size_t)r;
  }
  return n == sizeof NOTICE && memcmp(buf, NOTICE, n) == 0;
}

/* The flood, from the server thread's point of view, and an rpc client
 * from the same address: a flooder thread keeps 300 idle/slow connections
 * from 127.0.0.1 (and 300 from 127.0.0.2) and reopens every one the server
 * drops, while this thread connects 20 times. The server's deadlines are a
 * minute, so only eviction can let the client in. Before the fix the 65th
 * connection was refused and every connect failed. */
typedef struct flooder {
  flood f[2];
  atomic_bool stop;
  uv_thread_t th;
} flooder;

static void flooder_thread(void *arg) {
  flooder *fl = arg;
  struct pollfd none[1];
  while (!atomic_load(&fl->stop)) {
    flood_pump(&fl->f[0]);
    flood_pump(&fl->f[1]);
    poll(none, 0, 1); /* pace: reopen bursts at most every millisecond */
  }
}

static void test_flood_rpc_client_same_address(void **state) {
  (void)state;
  server s;
  server_cfg cfg = {.handshake_ms = 60000, .first_bytes_ms = 60000};
  server_start_cfg(&s, &cfg);
  flooder fl;
  memset(&fl, 0, sizeof fl);
  flood_start(&fl.f[0], "127.0.0.1", s.port, 300, 20000);
  flood_start(&fl.f[1], "127.0.0.2", s.port, 300, 20000);
  fl.f[0].burst = fl.f[1].burst = 4; /* up to ~8000 new connections/s */
  while (fl.f[0].opened < 300 || fl.f[1].opened < 300) {
    flood_pump(&fl.f[0]); /* the first 600 at once */
    flood_pump(&fl.f[1]);
    fl.f[0].burst = fl.f[1].burst = 300;
  }
  fl.f[0].burst = fl.f[1].burst = 4;
  assert_int_equal(uv_thread_create(&fl.th, flooder_thread, &fl), 0);
  char addr[64], err[LMZ_ERRMSG_LEN];
  sprintf(addr, "127.0.0.1:%d", s.port);
  uint64_t worst = 0;
  int failed = -1, rv = 0;
  for (int i = 0; i < 20 && failed < 0; i++) {
    uint64_t t0 = tl_now_ms();
    lmz_rpc_client *c = NULL;
    if ((rv = lmz_rpc_connect(&c, addr, KEY, LIVE_MS, err)) != 0) {
      failed = i; /* assert after the threads are stopped */
      break;
    }
    uint64_t dt = tl_now_ms() - t0;
    worst = dt > worst ? dt : worst;
    rpc_roundtrip(c, (uint64_t)i, "through the flood");
    lmz_rpc_close(c);
  }
  atomic_store(&fl.stop, true);
  uv_thread_join(&fl.th);
  if (failed >= 0) {
    flood_stop(&fl.f[0]);
    flood_stop(&fl.f[1]);
    server_stop(&s);
    fail_msg("connect %d under the flood: %s", failed, err);
  }
  print_message("flood: %llu + %llu connections opened, %llu notices; 20 "
                "connects, slowest %llu ms\n",
                (unsigned long long)fl.f[0].opened,
                (unsigned long long)fl.f[1].opened,
                (unsigned long long)(fl.f[0].notices + fl.f[1].notices),
                (unsigned long long)worst);
  flood_stop(&fl.f[0]);
  flood_stop(&fl.f[1]);
  server_stop(&s);
  assert_int_equal(s.m.frames_in, 20);
  assert_true(s.m.handshake_evictions + s.m.handshake_refusals >= 600 - 32);
  assert_true(fl.f[0].notices + fl.f[1].notices > 0);
  assert_int_equal(s.m.handshake_timeouts + s.m.first_byte_timeouts, 0);
  assert_true(s.m.handshaking <= 2 * 16); /* two addresses, 16 each */
}

/* A 2-node cluster, both nodes flooded from a stranger's address and from
 * the members' own (127.0.0.1), on fake time (1 ms per loop iteration, the
 * deadlines a minute away: only eviction can help). Node b restarts on the
 * same port: both sides see the link up again within a bound. Before the
 * fix the floods held every handshake slot and b stayed out. */
typedef struct cluster2 {
  uv_loop_t loop;
  fake_clock clk;
  node a, b;
  struct lmz_transport_options oa, ob;
  char addr_a[64], addr_b[64];
  flood fl[4];
} cluster2;

static void c2_step(cluster2 *c, bool b_running) {
  atomic_fetch_add(&c->clk, 1);
  for (int i = 0; i < 4; i++)
    if (b_running || i < 2)
      flood_pump(&c->fl[i]);
  lmz_transport_tick(&c->a.t);
  if (b_running)
    lmz_transport_tick(&c->b.t);
  uv_run(&c->loop, UV_RUN_NOWAIT);
}

static void c2_start_b(cluster2 *c) {
  node_start(&c->loop, &c->b, 2, &c->ob);
  lmz_conn_t *conn;
  assert_int_equal(lmz_transport_connect(&c->b.t, 1, c->addr_a, &conn), 0);
}

static struct lmz_transport_options c2_opts(cluster2 *c, node *n,
                                            const char *listen) {
  struct lmz_transport_options o = base_opts(n, listen);
  o.now_ms = fake_now;
  o.clock = &c->clk;
  o.first_bytes_timeout_ms = o.handshake_timeout_ms = 60000;
  o.dead_timeout_ms = 60000;
  o.max_handshaking = 24; /* < 2 x 16: strangers must make room too */
  return o;
}

static bool c2_both_up(cluster2 *c) {
  lmz_conn_t *ab = lmz_transport_peer(&c->a.t, 2);
  lmz_conn_t *ba = lmz_transport_peer(&c->b.t, 1);
  return ab && ba && lmz_conn_is_up(ab) && lmz_conn_is_up(ba);
}

/* b restarts while both floods go on. The flood is back the moment b
 * listens, ahead of a's redial and of b's own dial's answer (what the issue
 * measured: a restarted node kept out for as long as the flood lasted). */
static void c2_restart_b(cluster2 *c, lmz_conn_t *ab, uint64_t deadline) {
  node_close(&c->loop, &c->b);
  while (lmz_conn_is_up(ab)) {
    assert_true(tl_now_ms() < deadline);
    c2_step(c, false);
  }
  node_start(&c->loop, &c->b, 2, &c->ob);
  for (int k = 0; k < 2; k++) { /* reap the dead ones, reopen all */
    for (int i = 2; i < 4; i++) {
      c->fl[i].burst = 150;
      flood_pump(&c->fl[i]);
      c->fl[i].burst = 10;
    }
  }
  lmz_conn_t *ba;
  assert_int_equal(lmz_transport_connect(&c->b.t, 1, c->addr_a, &ba), 0);
}

static void test_flood_rejoin_fake_time(void **state) {
  (void)state;
  cluster2 *c = calloc(1, sizeof *c);
  uv_loop_init(&c->loop);
  c->clk = 1000;
  c->oa = c2_opts(c, &c->a, "127.0.0.1:0");
  node_start(&c->loop, &c->a, 1, &c->oa);
  addr_of(&c->a, c->addr_a);
  c->ob = c2_opts(c, &c->b, "127.0.0.1:0");
  c2_start_b(c);
  addr_of(&c->b, c->addr_b);
  c->ob.listen = c->addr_b; /* the restart reuses the port */
  lmz_conn_t *ab;
  assert_int_equal(lmz_transport_connect(&c->a.t, 2, c->addr_b, &ab), 0);
  int pa = lmz_transport_port(&c->a.t), pb = lmz_transport_port(&c->b.t);
  flood_start(&c->fl[0], "127.0.0.1", pa, 150, 200000);
  flood_start(&c->fl[1], "127.0.0.2", pa, 150, 200000);
  flood_start(&c->fl[2], "127.0.0.1", pb, 150, 200000);
  flood_start(&c->fl[3], "127.0.0.2", pb, 150, 200000);
  for (int i = 0; i < 4; i++)
    c->fl[i].burst = 10;
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (!c2_both_up(c)) {
    assert_true(tl_now_ms() < deadline);
    c2_step(c, true);
  }
  for (int i = 0; i < 200; i++) /* the floods settle in: pools full */
    c2_step(c, true);
  struct lmz_transport_metrics ma;
  lmz_transport_metrics(&c->a.t, &ma);
  assert_int_equal(ma.handshaking, 24);
  c2_restart_b(c, ab, deadline);
  /* b's first dial goes at once and a redials within its backoff_max (100
   * ms): both are linked again within 300 ms of fake time. */
  uint64_t t0 = fake_now(&c->clk), real0 = tl_now_ms();
  while (!c2_both_up(c)) {
    assert_true(tl_now_ms() < deadline);
    assert_true(fake_now(&c->clk) - t0 <= 300);
    c2_step(c, true);
  }
  print_message("flooded rejoin: %llu fake ms (%llu real ms)\n",
                (unsigned long long)(fake_now(&c->clk) - t0),
                (unsigned long long)(tl_now_ms() - real0));
  Lmz__Call call;
  Lmz__Frame f = call_frame(&call, 0, "after", 5);
  assert_int_equal(lmz_conn_send(ab, &f), 0);
  while (c->b.frames < 1) {
    assert_true(tl_now_ms() < deadline);
    c2_step(c, true);
  }
  struct lmz_transport_metrics mb;
  lmz_transport_metrics(&c->a.t, &ma);
  lmz_transport_metrics(&c->b.t, &mb);
  assert_true(ma.handshake_evictions > 0 && mb.handshake_evictions > 0);
  assert_true(ma.handshaking <= 24 && mb.handshaking <= 24);
  assert_int_equal(ma.first_byte_timeouts + ma.handshake_timeouts, 0);
  assert_true(ma.sockets_open <= 24 + 4); /* + the links, + retiring */
  for (int i = 0; i < 4; i++)
    flood_stop(&c->fl[i]);
  node_close(&c->loop, &c->a);
  node_close(&c->loop, &c->b);
  loop_teardown(&c->loop);
  free(c);
}

/* The deadlines on fake time: a silent connection goes at exactly
 * first_bytes_timeout_ms, one stalled after its hello at exactly
 * handshake_timeout_ms, and not a millisecond earlier. */
static bool accepted(void *ctx) {
  node *n = ctx;
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&n->t, &m);
  return m.conns_accepted >= n->frames; /* frames: the count wanted here */
}

static void wait_accepted(uv_loop_t *loop, node *n, uint64_t want) {
  n->frames = want;
  run_until(loop, accepted, n, LIVE_MS);
}

static bool closed_now(uv_loop_t *loop, int fd) {
  uv_run(loop, UV_RUN_NOWAIT);
  return closed_by_peer(fd, LIVE_MS);
}

static void test_deadlines_fake_time(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  fake_clock clk = 1000;
  node s;
  struct lmz_transport_options o = base_opts(&s, "127.0.0.1:0");
  o.now_ms = fake_now;
  o.clock = &clk;
  o.first_bytes_timeout_ms = 100;
  o.handshake_timeout_ms = 300;
  node_start(&loop, &s, 1, &o);
  int port = lmz_transport_port(&s.t);
  int idle = connect_from("127.0.0.1", port, true);
  int slow = connect_from("127.0.0.1", port, true);
  assert_int_equal(send(slow, flood_hello, sizeof flood_hello, 0),
                   (ssize_t)sizeof flood_hello);
  wait_accepted(&loop, &s, 2);
  uint8_t buf[128]; /* the server answers the slow one's hello */
  size_t got = 0;
  while (got < LMZ_FRAME_HDR_LEN + LMZ_SECURE_HELLO_LEN) {
    uv_run(&loop, UV_RUN_NOWAIT);
    ssize_t r = recv(slow, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0)
      got += (size_t)r;
  }
  fake_set(&clk, 1099);
  lmz_transport_tick(&s.t);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(still_open(idle) && still_open(slow));
  fake_set(&clk, 1100);
  lmz_transport_tick(&s.t);
  assert_true(closed_now(&loop, idle));
  assert_true(still_open(slow));
  fake_set(&clk, 1299);
  lmz_transport_tick(&s.t);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(still_open(slow));
  fake_set(&clk, 1300);
  lmz_transport_tick(&s.t);
  assert_true(closed_now(&loop, slow));
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&s.t, &m);
  assert_int_equal(m.first_byte_timeouts, 1);
  assert_int_equal(m.handshake_timeouts, 1);
  assert_int_equal(m.handshaking, 0);
  close(idle);
  close(slow);
  node_close(&loop, &s);
  loop_teardown(&loop);
}

/* Who is shed, and what they are told, on fake time. */
static int join(uv_loop_t *loop, node *n, const char *src) {
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&n->t, &m);
  int fd = connect_from(src, lmz_transport_port(&n->t), true);
  wait_accepted(loop, n, m.conns_accepted + 1);
  return fd;
}

/* A server on fake time with a pool of 3, 2 per address; 127.0.0.9 is a
 * configured peer's address (a managed conn that never gets through). */
typedef struct shed_fx {
  uv_loop_t loop;
  fake_clock clk;
  node s;
  int fds[16], n;
} shed_fx;

static void shed_start(shed_fx *f) {
  memset(f, 0, sizeof *f);
  uv_loop_init(&f->loop);
  f->clk = 1000;
  struct lmz_transport_options o = base_opts(&f->s, "127.0.0.1:0");
  o.now_ms = fake_now;
  o.clock = &f->clk;
  o.max_handshaking = 3;
  o.max_handshaking_per_addr = 2;
  node_start(&f->loop, &f->s, 1, &o);
  lmz_conn_t *member;
  assert_int_equal(lmz_transport_connect(&f->s.t, 9, "127.0.0.9:1", &member),
                   0);
}

static int shed_join(shed_fx *f, const char *src) {
  return f->fds[f->n++] = join(&f->loop, &f->s, src);
}

static void shed_end(shed_fx *f) {
  struct lmz_transport_metrics m;
  lmz_transport_metrics(&f->s.t, &m);
  assert_true(m.handshaking <= 3);
  assert_int_equal(m.first_byte_timeouts + m.handshake_timeouts, 0);
  for (int i = 0; i < f->n; i++)
    close(f->fds[i]);
  node_close(&f->loop, &f->s);
  loop_teardown(&f->loop);
}

/* One address's share: refusal within a millisecond, the oldest silent one
 * first, one that spoke only when no silent one may go; the notice even
 * after our hello. */
static void test_shed_per_address(void **state) {
  (void)state;
  shed_fx f;
  shed_start(&f);
  int a1 = shed_join(&f, "127.0.0.2"), a2 = shed_join(&f, "127.0.0.2");
  int a3 = shed_join(&f, "127.0.0.2"); /* all had no turn yet: refused */
  assert_true(got_notice(a3));
  fake_set(&f.clk, 1001); /* a millisecond later the oldest makes room */
  int a4 = shed_join(&f, "127.0.0.2");
  assert_true(got_notice(a1));
  assert_true(still_open(a2) && still_open(a4));
  assert_int_equal(send(a2, flood_hello, sizeof flood_hello, 0),
                   (ssize_t)sizeof flood_hello);
  uint8_t hs[256];
  ssize_t r;
  while ((r = recv(a2, hs, sizeof hs, MSG_DONTWAIT)) <= 0)
    uv_run(&f.loop, UV_RUN_NOWAIT); /* its hello is answered at 1001 */
  fake_set(&f.clk, 1002); /* the silent a4 goes before a2, who spoke */
  int a5 = shed_join(&f, "127.0.0.2");
  assert_true(got_notice(a4));
  assert_true(still_open(a2) && still_open(a5));
  fake_set(&f.clk, 1003);
  int a6 = shed_join(&f, "127.0.0.2"); /* a5, silent, goes */
  assert_true(got_notice(a5));
  int a7 = shed_join(&f, "127.0.0.2"); /* a6 too new: a2 goes */
  size_t n = 0;
  uint64_t deadline = tl_now_ms() + LIVE_MS;
  while (tl_now_ms() < deadline &&
         (r = recv(a2, hs + n, sizeof hs - n, 0)) > 0)
    n += (size_t)r;
  assert_true(n >= sizeof NOTICE &&
              memcmp(hs + n - sizeof NOTICE, NOTICE, sizeof NOTICE) == 0);
  assert_true(still_open(a6) && still_open(a7));
  shed_end(&f);
}

/* The whole pool: strangers go before connections from a configured
 * peer's address, and a stranger never displaces one of those. */
static void test_shed_strangers_before_members(void **state) {
  (void)state;
  shed_fx f;
  shed_start(&f);
  int m1 = shed_join(&f, "127.0.0.9"), s1 = shed_join(&f, "127.0.0.3");
  fake_set(&f.clk, 1001);
  int m2 = shed_join(&f, "127.0.0.9"); /* the pool (3) is full */
  fake_set(&f.clk, 1002);
  int x1 = shed_join(&f, "127.0.0.4"); /* s1 goes, though m1 is as old */
  assert_true(got_notice(s1));
  assert_true(still_open(m1) && still_open(m2) && still_open(x1));
  int x2 = shed_join(&f, "127.0.0.5"); /* x1 too new, members' left: */
  assert_true(got_notice(x2));         /* the stranger is refused */
  assert_true(still_open(m1) && still_open(m2) && still_open(x1));
  fake_set(&f.clk, 1003);
  int m3 = shed_join(&f, "127.0.0.9"); /* members' share (2): m1 goes */
  assert_true(got_notice(m1));
  fake_set(&f.clk, 1004);
  int x3 = shed_join(&f, "127.0.0.6"); /* the stranger x1 goes */
  assert_true(got_notice(x1));
  assert_true(still_open(m2) && still_open(m3) && still_open(x3));
  shed_end(&f);
}

/* The notice at the secure layer, before and after the responder's hello:
 * LMZ_EOVERLOAD with peer_overloaded, and it stays failed. */
static void test_overload_notice_secure(void **state) {
  (void)state;
  uint8_t notice[LMZ_SECURE_OVERLOAD_NOTICE_LEN];
  lmz_secure_overload_notice(notice);
  assert_memory_equal(notice, NOTICE, sizeof NOTICE);
  for (int after_hello = 0; after_hello < 2; after_hello++) {
    lmz_secure i, r;
    lmz_buf a = LMZ_BUF_INIT, b = LMZ_BUF_INIT, pl = LMZ_BUF_INIT;
    lmz_secure_init(&i, LMZ_SECURE_INITIATOR, KEY, NULL);
    lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY, NULL);
    assert_int_equal(lmz_secure_start(&i, &a), 0);
    if (after_hello) { /* i got r's hello, sent its proof: WAIT_AUTH */
      assert_int_equal(lmz_secure_feed(&r, a.data, a.len, &b, &pl), 0);
      lmz_buf_reset(&a);
      assert_int_equal(lmz_secure_feed(&i, b.data, b.len, &a, &pl), 0);
      assert_true(lmz_secure_can_send(&i));
    }
    lmz_buf_reset(&a);
    assert_int_equal(lmz_secure_feed(&i, notice, sizeof notice, &a, &pl),
                     LMZ_EOVERLOAD);
    assert_true(i.peer_overloaded);
    assert_false(i.peer_rejected);
    assert_non_null(strstr(i.errmsg, "overloaded"));
    assert_int_equal(lmz_secure_feed(&i, notice, sizeof notice, &a, &pl),
                     LMZ_EOVERLOAD); /* terminal */
    assert_int_equal(pl.len, 0);
    lmz_secure_free(&i);
    lmz_secure_free(&r);
    lmz_buf_free(&a);
    lmz_buf_free(&b);
    lmz_buf_free(&pl);
  }
}

/* The notice as a client sees it: "overloaded", not "wrong key". A pool of
 * one, held by a silent connection on a stopped fake clock: the server
 * refuses every newcomer; the rpc client retries until its deadline. */
static void test_rpc_client_overloaded(void **state) {
  (void)state;
  server s;
  fake_clock clk = 1000;
  server_cfg cfg = {.max_hs = 1, .max_hs_addr = 1, .clock = &clk};
  server_start_cfg(&s, &cfg);
  int hog = connect_from("127.0.0.1", s.port, true);
  char addr[64], err[LMZ_ERRMSG_LEN];
  sprintf(addr, "127.0.0.1:%d", s.port);
  lmz_rpc_client *c = NULL;
  assert_int_equal(lmz_rpc_connect(&c, addr, KEY, 300, err), LMZ_EOVERLOAD);
  assert_null(c);
  assert_string_equal(err, "handshake failed: the node is overloaded: it "
                           "dropped our handshake (too many connections "
                           "waiting to authenticate); retry later");
  /* Time moves on: the hog, silent, is shed for a newcomer that speaks. */
  fake_set(&clk, 1001);
  assert_int_equal(lmz_rpc_connect(&c, addr, KEY, LIVE_MS, err), 0);
  rpc_roundtrip(c, 1, "in");
  lmz_rpc_close(c);
  assert_true(got_notice(hog));
  close(hog);
  server_stop(&s);
  assert_true(s.m.handshake_refusals >= 1);
  assert_int_equal(s.m.handshake_evictions, 1);
}

static int setup(void **state) {
  (void)state;
  if (sodium_init() < 0)
    return -1;
  randombytes_buf(KEY, sizeof KEY);
  randombytes_buf(OTHER_KEY, sizeof OTHER_KEY);
  flood_init_hello();
  return 0;
}

int main(void) {
  if (getenv("LMZ_TEST_FILTER")) /* e.g. LMZ_TEST_FILTER='*flood*' */
    cmocka_set_test_filter(getenv("LMZ_TEST_FILTER"));
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exchange_100k_both_ways),
      cmocka_unit_test(test_flush_from_prepare),
      cmocka_unit_test(test_backpressure_peer_gone),
      cmocka_unit_test(test_slow_then_dead_peer),
      cmocka_unit_test(test_reconnect_same_port),
      cmocka_unit_test(test_simultaneous_dial),
      cmocka_unit_test(test_rpc_client),
      cmocka_unit_test(test_hostile_clients),
      cmocka_unit_test(test_wrong_key_transports),
      cmocka_unit_test(test_init_errors_and_close_status),
      cmocka_unit_test(test_parse_addr),
      cmocka_unit_test(test_deadlines_fake_time),
      cmocka_unit_test(test_shed_per_address),
      cmocka_unit_test(test_shed_strangers_before_members),
      cmocka_unit_test(test_overload_notice_secure),
      cmocka_unit_test(test_rpc_client_overloaded),
      cmocka_unit_test(test_flood_rpc_client_same_address),
      cmocka_unit_test(test_flood_rejoin_fake_time),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
