/* cluster/transport_uv.c - the node transport on libuv (see transport.h).
 *
 * Objects: a `sock` is one TCP connection (secure state, frame splitter);
 * an `lmz_conn_t` is one logical link to a peer (queued output, backoff
 * timer for managed peers) served by at most one UP sock at a time
 * (`conn->cur`), plus possibly a dial in progress and retiring duplicates.
 *
 * Happy path, sending: lmz_conn_send() packs the frame into conn->out (one
 * growable buffer per conn, reused) and puts the conn on the dirty list; the
 * uv_prepare hook (runs once per loop iteration, before the loop blocks)
 * seals each dirty conn's whole batch into records in one freshly allocated
 * write request and issues one uv_write.
 * Receiving: one 64 KiB read buffer is shared by all sockets (a read callback
 * consumes its data before returning); bytes go through lmz_secure_feed()
 * into sock->plain, frames are split without copying when whole, unpacked,
 * and delivered.
 *
 * Failure modes and what happens:
 *  1. wrong cluster key / malformed handshake: logged (warn), counted, the
 *     connection closes; a responder first sends a reject notice and closes
 *     gracefully so an operator's CLI can say "wrong key?".
 *  2. record fails authentication (tamper, replay, reorder, injection),
 *     oversize record or frame, malformed frame, first frame not Hello:
 *     logged, counted, closed at once.
 *  3. handshake not done within handshake_timeout_ms (also covers a TCP
 *     connect that hangs), or an incoming connection silent for
 *     first_bytes_timeout_ms: closed.
 *  4. nothing received for dead_timeout_ms: closed, DOWN(LMZ_ETIMEOUT).
 *  5. peer closes / connection error: DOWN; a managed conn redials with
 *     exponential backoff and jitter; its queue survives (bounded).
 *  6. slow or absent peer: queued + unwritten bytes reach max_pending_bytes
 *     (or frames reach max_pending_frames): lmz_conn_send -> LMZ_EOVERLOAD.
 *  7. too many unauthenticated incoming connections (per source address or
 *     in all): the one that kept us waiting longest is shed with the
 *     overload notice, strangers' before configured peers' (transport.h,
 *     "Node port limits"); the newcomer only when all arrived this very
 *     millisecond. Memory, sockets and time per unauthenticated peer stay
 *     bounded, and an honest peer needing one round trip gets through.
 *  8. both sides dialed: the connection dialed by the lower node id wins,
 *     the other is retired: nothing more is sent on it, frames still in
 *     flight on it are delivered, and it is closed once it has been quiet for
 *     two ping intervals (the peer, having switched too, stops pinging it).
 *     Closing it at once would race with frames in flight and could make the
 *     peer see a spurious DOWN before its own copy of the rule has run.
 *  9. user callbacks may close the conn or the transport: nothing is freed
 *     synchronously (close callbacks reclaim memory) and every loop that
 *     calls out re-checks the socket's state afterwards. */
#include "cluster/transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster/secure.h"
#include "core/log.h"
#include "proto/frame.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.transport");

#define READ_BUF_LEN (64u * 1024u)
#define OUT_KEEP_CAP                                                           \
  (1u << 20) /* a conn's idle output buffer above this is freed */
#define HELLO_VERSION 1u
#define NAME_LEN 64

enum sock_state {
  S_CONNECTING = 1, /* dialing: TCP connect in progress */
  S_HANDSHAKE,      /* secure handshake or waiting for the peer's Hello */
  S_UP,             /* serving its conn (or about to be retired) */
  S_RETIRING,       /* duplicate: no longer sent on; closed once quiet */
  S_DRAINING,       /* failed handshake: flushing a reject notice */
  S_CLOSING,        /* uv_close called; memory freed in the close cb */
};

typedef struct lmz__sock sock;
struct lmz__sock {
  uv_tcp_t tcp; /* tcp.data == this */
  lmz_transport_t *t;
  lmz_conn_t *conn; /* set at dial, or at the incoming Hello */
  sock *next, *prev;
  uint8_t state;
  bool dialed, hello_sent;
  bool handshaking; /* incoming, unauthenticated: in the pool (mode 7) */
  bool got_bytes;   /* anything received yet */
  bool member_addr; /* from the address of a managed peer */
  uint8_t addr_len; /* source address key: IPv4, or IPv6 /64 */
  uint8_t addr[8];
  int status; /* close reason */
  lmz_secure sec;
  lmz_buf plain; /* decrypted bytes of the current read */
  lmz_frame_splitter frames;
  uint64_t start_ms, last_rx_ms, last_tx_ms;
  uint64_t wait_since_ms; /* pooled: since accept / our last handshake bytes */
  uint64_t accept_seq;
  uv_connect_t connect_req;
  uv_shutdown_t shutdown_req;
  char peer[64]; /* "ip:port", for logs */
};

struct lmz_conn_s {
  lmz_transport_t *t;
  lmz_conn_t *next, *prev, *dirty_next;
  uint64_t peer_id, incarnation;
  char peer_name[NAME_LEN];
  char addr[64];
  struct sockaddr_storage sa;
  bool managed, closing, dirty, timer_open;
  bool redial_pending; /* a dial is due at redial_at (injected clock) */
  uint64_t redial_at;
  sock *cur;  /* the UP sock frames go out on; NULL = down */
  sock *dial; /* our dial in progress */
  unsigned n_socks, attempts;
  lmz_buf out; /* queued frames, [len][frame]..., flushed once per iteration */
  uint32_t out_frames;
  uv_timer_t backoff; /* managed conns only */
  void *data;
};

typedef struct wreq {
  uv_write_t req;
  sock *s;
  uint8_t data[];
} wreq;

#define P(t) (&(t)->priv)

static void sock_close(sock *s, int status);
static void dial(lmz_conn_t *conn);
static void on_flush(uv_prepare_t *h);
static void on_backoff_timer(uv_timer_t *h);

/* ---- small helpers ------------------------------------------------------ */

static uint64_t now_ms(lmz_transport_t *t) {
  const struct lmz_transport_options *o = &P(t)->opts;
  return o->now_ms ? o->now_ms(o->clock) : uv_now(t->loop);
}

/* Shed and timed-out unauthenticated connections are an attacker's to
 * multiply: one line for the first, then at most one summary a second. */
static bool quiet_log_due(lmz_transport_t *t) {
  struct lmz__transport_private *p = P(t);
  uint64_t now = now_ms(t);
  if (p->quiet_log_ms && now - p->quiet_log_ms < 1000) {
    p->quiet_unlogged++;
    return false;
  }
  if (p->quiet_unlogged)
    LMZ_LOG_WARN(&log_ns,
                 "%llu more unauthenticated connections shed or timed out "
                 "in the last second",
                 (unsigned long long)p->quiet_unlogged);
  p->quiet_log_ms = now ? now : 1;
  p->quiet_unlogged = 0;
  return true;
}

static void report(lmz_conn_t *conn, int state, int status) {
  lmz_transport_t *t = conn->t;
  if (P(t)->opts.on_conn_state)
    P(t)->opts.on_conn_state(conn, state, status, P(t)->opts.data);
}

static lmz_conn_t *find_conn(lmz_transport_t *t, uint64_t id) {
  for (lmz_conn_t *c = P(t)->conns; c; c = c->next)
    if (c->peer_id == id && !c->closing)
      return c;
  return NULL;
}

static void mark_dirty(lmz_conn_t *conn) {
  lmz_transport_t *t = conn->t;
  if (conn->dirty || P(t)->closing)
    return; /* (closing: the prepare handle is gone) */
  conn->dirty = true;
  conn->dirty_next = P(t)->dirty;
  P(t)->dirty = conn;
  if (!uv_is_active((uv_handle_t *)&P(t)->flush))
    uv_prepare_start(&P(t)->flush, on_flush);
}

static void maybe_finish_close(lmz_transport_t *t) {
  if (!P(t)->closing || P(t)->n_handles > 0 || !P(t)->rbuf)
    return;
  LMZ_ASSERT(P(t)->conns == NULL && P(t)->socks == NULL);
  lmz_buf_free(&P(t)->scratch);
  free(P(t)->rbuf);
  P(t)->rbuf = NULL; /* marks "finished" */
  sodium_memzero(P(t)->key, sizeof P(t)->key);
  if (P(t)->close_cb)
    P(t)->close_cb(t);
}

static void on_handle_closed(uv_handle_t *h) {
  lmz_transport_t *t = h->data;
  P(t)->n_handles--;
  maybe_finish_close(t);
}

/* ---- conns -------------------------------------------------------------- */

static lmz_conn_t *conn_new(lmz_transport_t *t, uint64_t peer_id) {
  lmz_conn_t *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  c->t = t;
  c->peer_id = peer_id;
  lmz_buf_init(&c->out);
  c->next = P(t)->conns;
  if (c->next)
    c->next->prev = c;
  P(t)->conns = c;
  return c;
}

/* Frees a conn nobody references any more (failure mode 9: only called from
 * close callbacks, never from a public call). */
static void conn_maybe_free(lmz_conn_t *c) {
  if (c->n_socks > 0 || c->timer_open || (c->managed && !c->closing))
    return;
  lmz_transport_t *t = c->t;
  if (c->dirty) { /* rare: unlink from the dirty list */
    lmz_conn_t **pp = &P(t)->dirty;
    while (*pp != c)
      pp = &(*pp)->dirty_next;
    *pp = c->dirty_next;
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    P(t)->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  lmz_buf_free(&c->out);
  free(c);
}

static void on_timer_closed(uv_handle_t *h) {
  lmz_conn_t *c = h->data;
  lmz_transport_t *t = c->t;
  c->timer_open = false;
  P(t)->n_handles--;
  conn_maybe_free(c);
  maybe_finish_close(t);
}

/* Dials if the backoff has passed on the injected clock; the uv timer (and
 * the tick) only wake us up. */
static void maybe_redial(lmz_conn_t *c, uint64_t now) {
  if (!c->redial_pending || c->closing)
    return;
  if (c->cur || c->dial) {
    c->redial_pending = false;
    return;
  }
  if (now < c->redial_at) {
    uv_timer_start(&c->backoff, on_backoff_timer, c->redial_at - now, 0);
    return;
  }
  c->redial_pending = false;
  c->t->priv.m.reconnects++;
  dial(c);
}

static void on_backoff_timer(uv_timer_t *h) {
  lmz_conn_t *c = h->data;
  maybe_redial(c, now_ms(c->t));
}

/* Exponential backoff with jitter in [d/2, d]. */
static void schedule_dial(lmz_conn_t *c) {
  const struct lmz_transport_options *o = &c->t->priv.opts;
  uint64_t d = (uint64_t)o->backoff_min_ms
               << (c->attempts < 16 ? c->attempts : 16);
  if (d > o->backoff_max_ms)
    d = o->backoff_max_ms;
  d = d / 2 + randombytes_uniform((uint32_t)(d / 2 + 1));
  c->attempts++;
  c->redial_pending = true;
  c->redial_at = now_ms(c->t) + d;
  uv_timer_start(&c->backoff, on_backoff_timer, d, 0);
}

/* ---- socks -------------------------------------------------------------- */

static sock *sock_new(lmz_transport_t *t, bool dialed) {
  sock *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->t = t;
  s->dialed = dialed;
  if (dialed) /* incoming: once admitted (an X25519 keypair each) */
    lmz_secure_init(&s->sec, LMZ_SECURE_INITIATOR, P(t)->key, NULL);
  lmz_buf_init(&s->plain);
  lmz_frame_splitter_init(&s->frames, P(t)->opts.max_frame);
  s->start_ms = s->last_rx_ms = s->last_tx_ms = s->wait_since_ms = now_ms(t);
  uv_tcp_init(t->loop, &s->tcp);
  s->tcp.data = s;
  P(t)->n_handles++;
  s->next = P(t)->socks;
  if (s->next)
    s->next->prev = s;
  P(t)->socks = s;
  return s;
}

/* Closes the other sockets of a conn that lost its current one: a DOWN conn
 * has no live connection at all (dials in progress continue). */
static void close_duplicates(lmz_conn_t *c) {
  for (sock *o = c->t->priv.socks; o; o = o->next)
    if (o->conn == c && o != c->dial && o->state != S_CLOSING)
      sock_close(o, LMZ_ECLOSED);
}

static void on_sock_closed(uv_handle_t *h) {
  sock *s = h->data;
  lmz_transport_t *t = s->t;
  lmz_conn_t *c = s->conn;
  if (s->prev)
    s->prev->next = s->next;
  else
    P(t)->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  P(t)->n_handles--;
  lmz_secure_free(&s->sec);
  lmz_buf_free(&s->plain);
  lmz_frame_splitter_free(&s->frames);
  if (c) {
    c->n_socks--;
    if (c->dial == s)
      c->dial = NULL;
    if (c->cur == s) {
      c->cur = NULL;
      close_duplicates(c);
      LMZ_LOG_INFO(&log_ns, "peer %llu (%s) down: %s",
                   (unsigned long long)c->peer_id, s->peer,
                   lmz_strerror(s->status));
      report(c, LMZ_CONN_DOWN, s->status);
    }
    if (c->managed && !c->closing && !c->cur && !c->dial)
      schedule_dial(c);
    conn_maybe_free(c);
  }
  free(s);
  maybe_finish_close(t);
}

/* The sock proved the key, failed or closes: it no longer holds a slot. */
static void leave_pool(sock *s) {
  if (s->handshaking) {
    s->handshaking = false;
    s->t->priv.n_handshaking--;
  }
}

static void sock_close(sock *s, int status) {
  if (s->state == S_CLOSING)
    return;
  leave_pool(s);
  s->status = status;
  s->state = S_CLOSING;
  uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = lmz_container_of(req, wreq, req);
  sock *s = w->s;
  free(w);
  if (status < 0 && status != UV_ECANCELED)
    sock_close(s, status);
}

/* Issues one uv_write of `w` (n bytes); `w` is freed by on_write. */
static int submit(sock *s, wreq *w, size_t n) {
  w->s = s;
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
  int rv = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
  if (rv) {
    free(w);
    sock_close(s, rv);
    return rv;
  }
  s->t->priv.m.bytes_out += n;
  s->last_tx_ms = now_ms(s->t);
  return 0;
}

static int write_copy(sock *s, const uint8_t *p, size_t n) {
  wreq *w = malloc(sizeof *w + n);
  if (!w) {
    sock_close(s, LMZ_ENOMEM);
    return LMZ_ENOMEM;
  }
  memcpy(w->data, p, n);
  return submit(s, w, n);
}

/* Seals the conn's whole batch into one write (failure mode 6 is decided at
 * send time; here the batch just goes out). */
static void flush_conn(lmz_conn_t *c) {
  sock *s = c->cur;
  if (!s || s->state != S_UP || c->out.len == 0)
    return;
  size_t n = lmz_secure_sealed_len(c->out.len);
  wreq *w = malloc(sizeof *w + n);
  if (!w) {
    sock_close(s, LMZ_ENOMEM);
    return;
  }
  int rv = lmz_secure_seal_to(&s->sec, c->out.data, c->out.len, w->data);
  if (rv) {
    free(w);
    sock_close(s, rv);
    return;
  }
  lmz_buf_reset(&c->out);
  c->out_frames = 0;
  if (c->out.cap > OUT_KEEP_CAP)
    lmz_buf_free(&c->out);
  if (submit(s, w, n) == 0)
    c->t->priv.m.writes++;
}

void lmz_transport_flush(lmz_transport_t *t) {
  lmz_conn_t *c;
  while ((c = P(t)->dirty) != NULL) {
    P(t)->dirty = c->dirty_next;
    c->dirty = false;
    c->dirty_next = NULL;
    flush_conn(c);
  }
  if (!P(t)->closing)
    uv_prepare_stop(&P(t)->flush);
}

static void on_flush(uv_prepare_t *h) {
  lmz_transport_flush(h->data);
}

/* Appends a frame to the conn's queue without the backpressure check (the
 * transport's own small control frames). */
static void queue_control(lmz_conn_t *c, const Lmz__Frame *f) {
  if (lmz_frame_append(&c->out, f, 0) > 0) {
    c->out_frames++;
    mark_dirty(c);
  }
}

/* ---- receiving ---------------------------------------------------------- */

static void retire(sock *s);

static bool is_preferred(const sock *s) {
  uint64_t me = s->t->priv.opts.node_id, peer = s->conn->peer_id;
  return s->dialed ? me < peer : peer < me;
}

/* A sock became UP for conn `c`: it serves the conn if the conn was down,
 * else the duplicate rule decides (failure mode 8). */
static void promote(lmz_conn_t *c, sock *s) {
  if (c->dial == s)
    c->dial = NULL;
  if (c->cur == NULL) {
    c->cur = s;
    c->attempts = 0;
    c->redial_pending = false;
    if (c->timer_open)
      uv_timer_stop(&c->backoff);
    if (c->out.len)
      mark_dirty(c);
    LMZ_LOG_INFO(&log_ns, "peer %llu (%s, %s) up",
                 (unsigned long long)c->peer_id, c->peer_name, s->peer);
    report(c, LMZ_CONN_UP, 0);
    return;
  }
  if (is_preferred(s) && !is_preferred(c->cur)) {
    sock *old = c->cur;
    c->cur = s;
    retire(old);
    if (c->out.len)
      mark_dirty(c);
  } else {
    retire(s);
  }
}

static void retire(sock *s) {
  if (s->state != S_UP)
    return;
  LMZ_LOG_DEBUG(&log_ns, "retiring duplicate connection %s to peer %llu",
                s->peer, (unsigned long long)s->conn->peer_id);
  s->state = S_RETIRING;
  s->t->priv.m.duplicates_retired++;
}

static int reject_frame(sock *s, int err, const char *why) {
  s->t->priv.m.bad_frames++;
  LMZ_LOG_WARN(&log_ns, "closing connection %s: %s", s->peer, why);
  sock_close(s, err);
  return err;
}

/* Binds an incoming sock to the conn of the Hello's node id. */
static lmz_conn_t *bind_incoming(sock *s, uint64_t id) {
  lmz_transport_t *t = s->t;
  lmz_conn_t *c = id ? find_conn(t, id) : NULL;
  if (!c)
    c = conn_new(t, id);
  if (!c)
    return NULL;
  s->conn = c;
  c->n_socks++;
  return c;
}

static int on_hello(sock *s, const Lmz__Frame *f) {
  lmz_transport_t *t = s->t;
  if (f->body_case != LMZ__FRAME__BODY_HELLO)
    return reject_frame(s, LMZ_EBADMSG, "first frame is not a Hello");
  const Lmz__Hello *h = f->hello;
  if (h->proto_version != HELLO_VERSION)
    return reject_frame(s, LMZ_EBADVERSION, "unsupported Hello version");
  if (s->dialed && h->node_id != s->conn->peer_id) {
    LMZ_LOG_WARN(&log_ns, "dialed node %llu at %s but node %llu answered",
                 (unsigned long long)s->conn->peer_id, s->peer,
                 (unsigned long long)h->node_id);
    return reject_frame(s, LMZ_EBADMSG, "unexpected node id");
  }
  if (!s->dialed && h->node_id && h->node_id == P(t)->opts.node_id)
    return reject_frame(s, LMZ_EINVAL, "peer claims our own node id");
  lmz_conn_t *c = s->dialed ? s->conn : bind_incoming(s, h->node_id);
  if (!c) {
    sock_close(s, LMZ_ENOMEM);
    return LMZ_ENOMEM;
  }
  s->state = S_UP;
  leave_pool(s);
  if (c->incarnation && h->incarnation != c->incarnation)
    LMZ_LOG_INFO(&log_ns, "peer %llu restarted (new incarnation)",
                 (unsigned long long)h->node_id);
  c->incarnation = h->incarnation;
  snprintf(c->peer_name, sizeof c->peer_name, "%s", h->name ? h->name : "");
  promote(c, s);
  return 0;
}

static void send_pong(sock *s, const Lmz__Ping *ping) {
  if (s->conn->cur != s)
    return; /* a retiring duplicate: the live connection carries pings */
  Lmz__Pong pong = LMZ__PONG__INIT;
  pong.seq = ping->seq;
  pong.sent_us = ping->sent_us;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_PONG;
  f.pong = &pong;
  queue_control(s->conn, &f);
}

static int handle_frame(sock *s, const uint8_t *body, size_t len) {
  lmz_transport_t *t = s->t;
  Lmz__Frame *f;
  if (lmz_frame_unpack(body, len, &f) != 0)
    return reject_frame(s, LMZ_EBADMSG, "malformed frame");
  int rv = 0;
  if (s->state == S_HANDSHAKE) {
    rv = on_hello(s, f);
  } else {
    switch (f->body_case) {
    case LMZ__FRAME__BODY_PING:
      send_pong(s, f->ping);
      break;
    case LMZ__FRAME__BODY_PONG:
    case LMZ__FRAME__BODY__NOT_SET: /* a newer peer's frame type: skip */
      break;
    case LMZ__FRAME__BODY_HELLO:
      rv = reject_frame(s, LMZ_EBADMSG, "second Hello");
      break;
    default:
      P(t)->m.frames_in++;
      P(t)->opts.on_frame(s->conn, f, P(t)->opts.data);
    }
  }
  lmz_frame_free(f);
  return rv;
}

static void process_plain(sock *s) {
  const uint8_t *p = s->plain.data;
  size_t n = s->plain.len;
  for (;;) {
    const uint8_t *body;
    size_t blen;
    int rv = lmz_frame_split(&s->frames, &p, &n, &body, &blen);
    if (rv == 0)
      break;
    if (rv < 0) {
      if (rv == LMZ_ETOOBIG)
        s->t->priv.m.oversize++;
      LMZ_LOG_WARN(&log_ns, "closing connection %s: frame over the %u-byte cap",
                   s->peer, (unsigned)s->frames.max);
      sock_close(s, rv);
      break;
    }
    if (handle_frame(s, body, blen) < 0)
      break;
    if (s->state != S_UP && s->state != S_RETIRING)
      break; /* a callback closed it (failure mode 9) */
  }
  lmz_buf_reset(&s->plain);
  if (s->plain.cap > OUT_KEEP_CAP)
    lmz_buf_free(&s->plain);
}

static void on_drain_shutdown(uv_shutdown_t *req, int status) {
  sock *s = req->data;
  sock_close(s, s->status ? s->status : status);
}

/* Failure modes 1 and 2 at the secure layer. */
static void security_failure(sock *s, int err, bool sent_reject) {
  struct lmz_transport_metrics *m = &s->t->priv.m;
  const char *what = "handshake failed";
  if (s->sec.fail == LMZ_SECURE_FAIL_RECORD) {
    m->decrypt_failures++;
    what = "record rejected";
  } else if (s->sec.fail == LMZ_SECURE_FAIL_OVERSIZE) {
    m->oversize++;
    what = "oversize length";
  } else {
    m->handshake_failures++;
  }
  char node[40] = "";
  if (s->conn)
    snprintf(node, sizeof node, " (node %llu)",
             (unsigned long long)s->conn->peer_id);
  /* s->handshaking: a stranger (not yet proved the key), free to repeat */
  if (!s->handshaking || quiet_log_due(s->t))
    LMZ_LOG_WARN(&log_ns, "closing connection %s%s: %s: %s [%s]", s->peer,
                 node, what, s->sec.errmsg, lmz_err_name(err));
  if (!sent_reject) {
    sock_close(s, err);
    return;
  }
  s->status = err; /* failure mode 1: let the reject notice reach the peer */
  leave_pool(s);   /* draining ends within one iteration or the timeout */
  s->state = S_DRAINING;
  uv_read_stop((uv_stream_t *)&s->tcp);
  s->shutdown_req.data = s;
  if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_drain_shutdown))
    sock_close(s, err);
}

/* Packs our Hello and seals it behind the handshake bytes in `out`. */
static int append_hello(sock *s, lmz_buf *out) {
  lmz_transport_t *t = s->t;
  Lmz__Hello h = LMZ__HELLO__INIT;
  h.proto_version = HELLO_VERSION;
  h.node_id = P(t)->opts.node_id;
  h.name = P(t)->name;
  h.incarnation = P(t)->incarnation;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_HELLO;
  f.hello = &h;
  uint8_t tmp[LMZ_FRAME_HDR_LEN + NAME_LEN + 64];
  size_t n = lmz_frame_encoded_len(&f);
  LMZ_ASSERT(n <= sizeof tmp);
  lmz_frame_put_len(tmp, (uint32_t)(n - LMZ_FRAME_HDR_LEN));
  lmz__frame__pack(&f, tmp + LMZ_FRAME_HDR_LEN);
  s->hello_sent = true;
  return lmz_secure_seal(&s->sec, tmp, n, out);
}

static void on_bytes(sock *s, const uint8_t *p, size_t n) {
  lmz_transport_t *t = s->t;
  lmz_buf *out = &P(t)->scratch;
  lmz_buf_reset(out);
  bool was_open = lmz_secure_is_open(&s->sec);
  int rv = lmz_secure_feed(&s->sec, p, n, out, &s->plain);
  if (rv == 0 && !s->hello_sent && lmz_secure_can_send(&s->sec))
    rv = append_hello(s, out);
  bool sent = false;
  if (out->len) {
    if (write_copy(s, out->data, out->len) != 0)
      return;
    sent = true;
    s->wait_since_ms = now_ms(t); /* the peer's turn again (mode 7) */
  }
  if (rv < 0) {
    security_failure(
        s, rv, sent && s->sec.fail == LMZ_SECURE_FAIL_HANDSHAKE && !s->dialed);
    return;
  }
  if (!was_open && lmz_secure_is_open(&s->sec)) {
    P(t)->m.handshakes_ok++;
    leave_pool(s); /* proved the key: trusted from here on */
  }
  if (s->plain.len)
    process_plain(s);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  sock *s = h->data;
  buf->base = (char *)s->t->priv.rbuf; /* shared: consumed before returning */
  buf->len = READ_BUF_LEN;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  sock *s = stream->data;
  if (nread == 0)
    return;
  if (s->state == S_CLOSING || s->state == S_DRAINING)
    return;
  if (nread < 0) {
    sock_close(s, nread == UV_EOF ? LMZ_ECLOSED : (int)nread);
    return;
  }
  s->t->priv.m.bytes_in += (uint64_t)nread;
  s->last_rx_ms = now_ms(s->t);
  s->got_bytes = true;
  on_bytes(s, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- connecting and accepting ------------------------------------------ */

static void set_sock_options(sock *s) {
  uv_tcp_nodelay(&s->tcp, 1);
  unsigned idle = s->t->priv.opts.dead_timeout_ms / 1000;
  uv_tcp_keepalive(&s->tcp, 1, idle ? idle : 1);
}

static void on_connect(uv_connect_t *req, int status) {
  sock *s = req->data;
  if (s->state == S_CLOSING)
    return;
  if (status < 0) {
    LMZ_LOG_DEBUG(&log_ns, "dial %s failed: %s", s->peer, uv_strerror(status));
    sock_close(s, status);
    return;
  }
  lmz_transport_t *t = s->t;
  set_sock_options(s);
  s->state = S_HANDSHAKE;
  int rv = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  lmz_buf_reset(&P(t)->scratch);
  if (rv == 0)
    rv = lmz_secure_start(&s->sec, &P(t)->scratch);
  if (rv) {
    sock_close(s, rv);
    return;
  }
  write_copy(s, P(t)->scratch.data, P(t)->scratch.len);
}

static void dial(lmz_conn_t *c) {
  lmz_transport_t *t = c->t;
  sock *s = sock_new(t, true);
  if (!s) {
    schedule_dial(c);
    return;
  }
  s->conn = c;
  c->n_socks++;
  c->dial = s;
  s->state = S_CONNECTING;
  snprintf(s->peer, sizeof s->peer, "%s", c->addr);
  P(t)->m.dials++;
  s->connect_req.data = s;
  int rv = uv_tcp_connect(&s->connect_req, &s->tcp,
                          (const struct sockaddr *)&c->sa, on_connect);
  if (rv)
    sock_close(s, rv); /* its close callback schedules the next attempt */
}

/* ---- the unauthenticated pool (failure mode 7) -------------------------- */

/* The key a source is limited by: its IPv4 address (also when IPv4-mapped)
 * or its IPv6 /64 (what one host usually controls). len 0 = unknown. */
static uint8_t addr_key(const struct sockaddr_storage *sa, uint8_t key[8]) {
  static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
  if (sa->ss_family == AF_INET) {
    memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    return 4;
  }
  if (sa->ss_family != AF_INET6)
    return 0;
  const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
  if (memcmp(a, v4mapped, sizeof v4mapped) == 0) {
    memcpy(key, a + 12, 4);
    return 4;
  }
  memcpy(key, a, 8);
  return 8;
}

static bool same_addr(const sock *a, const sock *b) {
  return a->addr_len == b->addr_len &&
         memcmp(a->addr, b->addr, a->addr_len) == 0;
}

/* From the address of a configured (managed) peer: shed after strangers. */
static bool is_member_addr(lmz_transport_t *t, const sock *s) {
  for (const lmz_conn_t *c = P(t)->conns; c; c = c->next) {
    uint8_t key[8];
    uint8_t n = c->managed && !c->closing ? addr_key(&c->sa, key) : 0;
    if (n && n == s->addr_len && memcmp(key, s->addr, n) == 0)
      return true;
  }
  return false;
}

/* Fills s->peer ("ip:port", for logs) and the address key. */
static void peer_address(sock *s) {
  struct sockaddr_storage sa;
  int len = sizeof sa;
  char ip[48] = "?";
  int port = 0;
  if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&sa, &len) == 0) {
    if (sa.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    } else {
      uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
    }
    s->addr_len = addr_key(&sa, s->addr);
  }
  snprintf(s->peer, sizeof s->peer, "%s:%d", ip, port);
}

/* True if `a` goes before `b`: strangers before members' addresses, the
 * silent before those that spoke (an honest peer speaks at once, so a
 * flood of idle connections never displaces it), then whoever has kept us
 * waiting longest, then the earlier accepted. */
static bool shed_first(const sock *a, const sock *b) {
  if (a->member_addr != b->member_addr)
    return !a->member_addr;
  if (a->got_bytes != b->got_bytes)
    return !a->got_bytes;
  if (a->wait_since_ms != b->wait_since_ms)
    return a->wait_since_ms < b->wait_since_ms;
  return a->accept_seq < b->accept_seq;
}

/* The pooled sock to shed for newcomer `n` (only from n's address when
 * `same_only`), or NULL: every candidate had its turn this millisecond (it
 * gets at least one read), or only members' are left and `n` is a
 * stranger. */
static sock *pick_victim(lmz_transport_t *t, const sock *n, bool same_only) {
  uint64_t now = now_ms(t);
  sock *v = NULL;
  for (sock *s = P(t)->socks; s; s = s->next) {
    if (!s->handshaking || s->wait_since_ms >= now ||
        (same_only && !same_addr(s, n)))
      continue;
    if (!v || shed_first(s, v))
      v = s;
  }
  if (v && v->member_addr && !n->member_addr)
    return NULL;
  return v;
}

/* Drops an unauthenticated sock for load: the overload notice (best effort:
 * 6 bytes into an idle socket buffer), then close. */
static void shed(sock *s, bool evicted) {
  lmz_transport_t *t = s->t;
  if (evicted)
    P(t)->m.handshake_evictions++;
  else
    P(t)->m.handshake_refusals++;
  if (quiet_log_due(t))
    LMZ_LOG_WARN(&log_ns,
                 "%s %s: %u connections waiting to authenticate (node port "
                 "limits; further ones are summarised)",
                 evicted ? "evicting" : "refusing", s->peer,
                 P(t)->n_handshaking);
  uint8_t notice[LMZ_SECURE_OVERLOAD_NOTICE_LEN];
  lmz_secure_overload_notice(notice);
  uv_buf_t b = uv_buf_init((char *)notice, sizeof notice);
  if (uv_try_write((uv_stream_t *)&s->tcp, &b, 1) > 0)
    P(t)->m.bytes_out += sizeof notice;
  sock_close(s, LMZ_EOVERLOAD);
}

/* Makes room in the pool for newcomer `n`: false = refuse `n` itself. */
static bool make_room(lmz_transport_t *t, sock *n) {
  const struct lmz_transport_options *o = &P(t)->opts;
  unsigned same = 0;
  for (const sock *s = P(t)->socks; s; s = s->next)
    if (s->handshaking && same_addr(s, n))
      same++;
  bool per_addr = same >= o->max_handshaking_per_addr;
  if (!per_addr && P(t)->n_handshaking < o->max_handshaking)
    return true;
  sock *v = pick_victim(t, n, per_addr);
  if (!v)
    return false;
  shed(v, true);
  return true;
}

static void on_connection(uv_stream_t *server, int status) {
  lmz_transport_t *t = server->data;
  if (status < 0) {
    LMZ_LOG_WARN(&log_ns, "accept failed: %s", uv_strerror(status));
    return;
  }
  sock *s = sock_new(t, false);
  if (!s) {
    LMZ_LOG_ERROR(&log_ns, "out of memory accepting a connection");
    return;
  }
  s->state = S_HANDSHAKE;
  if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0) {
    sock_close(s, LMZ_EIO);
    return;
  }
  P(t)->m.conns_accepted++;
  peer_address(s);
  s->accept_seq = ++P(t)->accept_seq;
  s->member_addr = is_member_addr(t, s);
  if (!make_room(t, s)) { /* mode 7 */
    shed(s, false);
    return;
  }
  s->handshaking = true;
  P(t)->n_handshaking++;
  lmz_secure_init(&s->sec, LMZ_SECURE_RESPONDER, P(t)->key, NULL);
  set_sock_options(s);
  int rv = uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read);
  if (rv)
    sock_close(s, rv);
}

/* ---- the per-tick scan: timeouts and pings ------------------------------ */

static void send_ping(sock *s) {
  lmz_transport_t *t = s->t;
  Lmz__Ping ping = LMZ__PING__INIT;
  ping.seq = ++P(t)->ping_seq;
  ping.sent_us = uv_hrtime() / 1000u;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_PING;
  f.ping = &ping;
  queue_control(s->conn, &f);
  s->last_tx_ms = now_ms(t); /* counts as sent: one ping per interval */
  P(t)->m.pings_sent++;
}

static void check_sock(sock *s, uint64_t now) {
  const struct lmz_transport_options *o = &s->t->priv.opts;
  struct lmz_transport_metrics *m = &s->t->priv.m;
  if (s->state == S_CLOSING)
    return;
  if (s->state != S_UP && s->state != S_RETIRING) {
    bool silent = !s->dialed && !s->got_bytes && s->state == S_HANDSHAKE &&
                  now - s->start_ms >= o->first_bytes_timeout_ms;
    if (!silent && now - s->start_ms < o->handshake_timeout_ms)
      return;
    if (silent)
      m->first_byte_timeouts++;
    else if (s->state != S_DRAINING)
      m->handshake_timeouts++;
    if (s->state != S_DRAINING && (s->dialed || quiet_log_due(s->t)))
      LMZ_LOG_WARN(&log_ns, "closing connection %s: %s within %u ms", s->peer,
                   silent ? "not a byte" : "no handshake",
                   silent ? o->first_bytes_timeout_ms
                          : o->handshake_timeout_ms);
    sock_close(s, LMZ_ETIMEOUT);
    return;
  }
  if (s->state == S_RETIRING &&
      now - s->last_rx_ms >= 2 * (uint64_t)o->ping_interval_ms) {
    sock_close(s, LMZ_ECLOSED); /* the peer switched too: quiet */
    return;
  }
  if (now - s->last_rx_ms >= o->dead_timeout_ms) {
    m->dead_peers++;
    LMZ_LOG_WARN(&log_ns, "peer %llu (%s) silent for %llu ms: closing",
                 (unsigned long long)s->conn->peer_id, s->peer,
                 (unsigned long long)(now - s->last_rx_ms));
    sock_close(s, LMZ_ETIMEOUT);
    return;
  }
  if (s->state == S_UP && s->conn->cur == s &&
      now - s->last_tx_ms >= o->ping_interval_ms)
    send_ping(s);
}

static void run_checks(lmz_transport_t *t) {
  uint64_t now = now_ms(t);
  for (sock *s = P(t)->socks; s; s = s->next)
    check_sock(s, now); /* closing does not unlink: safe to iterate */
  for (lmz_conn_t *c = P(t)->conns; c; c = c->next)
    maybe_redial(c, now); /* dialing adds socks, never conns */
}

static void on_tick(uv_timer_t *h) { run_checks(h->data); }

void lmz_transport_tick(lmz_transport_t *t) {
  if (!P(t)->closing)
    run_checks(t);
}

/* ---- public API --------------------------------------------------------- */

int lmz__transport_parse_addr(const char *addr, struct sockaddr_storage *sa) {
  char host[64];
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || !colon[1])
    return LMZ_EINVAL;
  const char *h = addr;
  size_t hl = (size_t)(colon - addr);
  bool v6 = addr[0] == '[';
  if (v6) {
    if (hl < 3 || addr[hl - 1] != ']')
      return LMZ_EINVAL;
    h++, hl -= 2;
  }
  if (hl >= sizeof host)
    return LMZ_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port < 0 || port > 65535)
    return LMZ_EINVAL;
  memset(sa, 0, sizeof *sa);
  if (v6)
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) ? LMZ_EINVAL
                                                                   : 0;
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) ? LMZ_EINVAL
                                                                : 0;
}

/* Binds and listens on a plain socket first, so a failure (address in use)
 * leaves no libuv handle that would need an asynchronous close. */
static int open_listener(lmz_transport_t *t, const char *addr, int *fd_out) {
  struct sockaddr_storage sa;
  if (lmz__transport_parse_addr(addr, &sa) != 0) {
    lmz__errmsg_printf(t->errmsg, "listen address %s: expected ip:port", addr);
    return LMZ_EINVAL;
  }
  int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    lmz__errmsg_printf(t->errmsg, "listen %s: %s", addr, strerror(errno));
    return -errno;
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  socklen_t len = sa.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                           : sizeof(struct sockaddr_in);
  if (bind(fd, (struct sockaddr *)&sa, len) != 0 || listen(fd, 511) != 0) {
    int e = errno;
    close(fd);
    lmz__errmsg_printf(t->errmsg, "listen %s: %s", addr, strerror(e));
    return -e; /* libuv codes are negated errnos on unix */
  }
  struct sockaddr_storage bound;
  len = sizeof bound;
  getsockname(fd, (struct sockaddr *)&bound, &len);
  P(t)->bound_port = ntohs(bound.ss_family == AF_INET6
                               ? ((struct sockaddr_in6 *)&bound)->sin6_port
                               : ((struct sockaddr_in *)&bound)->sin_port);
  *fd_out = fd;
  return 0;
}

static void fill_defaults(struct lmz_transport_options *o) {
  if (!o->max_frame)
    o->max_frame = LMZ_FRAME_MAX_DEFAULT;
  if (!o->max_pending_bytes)
    o->max_pending_bytes = 8u << 20;
  if (!o->max_pending_frames)
    o->max_pending_frames = 65536;
  if (!o->max_handshaking)
    o->max_handshaking = 128;
  if (!o->max_handshaking_per_addr)
    o->max_handshaking_per_addr = 16;
  if (!o->first_bytes_timeout_ms)
    o->first_bytes_timeout_ms = 1000;
  if (!o->ping_interval_ms)
    o->ping_interval_ms = 1000;
  if (!o->dead_timeout_ms)
    o->dead_timeout_ms = 5000;
  if (!o->handshake_timeout_ms)
    o->handshake_timeout_ms = 2000;
  if (!o->backoff_min_ms)
    o->backoff_min_ms = 50;
  if (!o->backoff_max_ms)
    o->backoff_max_ms = 2000;
  if (o->backoff_max_ms < o->backoff_min_ms)
    o->backoff_max_ms = o->backoff_min_ms;
}

static uint64_t tick_interval(const struct lmz_transport_options *o) {
  uint32_t m = o->ping_interval_ms;
  if (o->dead_timeout_ms < m)
    m = o->dead_timeout_ms;
  if (o->handshake_timeout_ms < m)
    m = o->handshake_timeout_ms;
  if (o->first_bytes_timeout_ms < m)
    m = o->first_bytes_timeout_ms;
  m /= 4;
  return m < 5 ? 5 : m > 250 ? 250 : m;
}

int lmz_transport_init(uv_loop_t *loop, lmz_transport_t *t,
                       const struct lmz_transport_options *opts) {
  void *data = t->data;
  memset(t, 0, sizeof *t);
  t->data = data;
  t->loop = loop;
  if (!opts || !opts->key || !opts->on_frame) {
    lmz__errmsg_printf(t->errmsg, "transport: key and on_frame are required");
    return LMZ_EINVAL;
  }
  struct lmz__transport_private *p = P(t);
  p->opts = *opts;
  fill_defaults(&p->opts);
  memcpy(p->key, opts->key, sizeof p->key);
  snprintf(p->name, sizeof p->name, "%s", opts->name ? opts->name : "");
  p->opts.name = p->name;
  p->opts.key = NULL;
  p->opts.listen = NULL;
  int fd = -1;
  if (opts->listen) {
    int rv = open_listener(t, opts->listen, &fd);
    if (rv)
      return rv;
  }
  p->rbuf = malloc(READ_BUF_LEN);
  if (!p->rbuf) {
    if (fd >= 0)
      close(fd);
    return LMZ_ENOMEM;
  }
  randombytes_buf(&p->incarnation, sizeof p->incarnation);
  p->incarnation |= 1; /* never 0 (0 = unknown) */
  uv_prepare_init(loop, &p->flush);
  p->flush.data = t;
  uv_timer_init(loop, &p->tick);
  p->tick.data = t;
  p->n_handles = 2;
  uv_timer_start(&p->tick, on_tick, tick_interval(&p->opts),
                 tick_interval(&p->opts));
  if (fd >= 0) {
    uv_tcp_init(loop, &p->listener);
    p->listener.data = t;
    p->n_handles++;
    p->listening = true;
    int rv = uv_tcp_open(&p->listener, fd);
    if (rv == 0)
      rv = uv_listen((uv_stream_t *)&p->listener, 511, on_connection);
    LMZ_ASSERT(rv == 0); /* a bound, listening fd cannot fail here */
  }
  return 0;
}

int lmz_transport_port(const lmz_transport_t *t) {
  return t->priv.listening ? t->priv.bound_port : 0;
}

void lmz_transport_metrics(const lmz_transport_t *t,
                           struct lmz_transport_metrics *out) {
  *out = t->priv.m;
  out->handshaking = t->priv.n_handshaking;
  out->sockets_open = 0;
  for (const sock *s = t->priv.socks; s; s = s->next)
    out->sockets_open++;
}

void lmz_transport_close(lmz_transport_t *t, lmz_transport_close_cb cb) {
  struct lmz__transport_private *p = P(t);
  if (p->closing)
    return;
  p->closing = true;
  p->close_cb = cb;
  if (p->listening)
    uv_close((uv_handle_t *)&p->listener, on_handle_closed);
  uv_close((uv_handle_t *)&p->flush, on_handle_closed);
  uv_close((uv_handle_t *)&p->tick, on_handle_closed);
  for (lmz_conn_t *c = p->conns; c; c = c->next)
    lmz_conn_close(c);
  for (sock *s = p->socks; s; s = s->next)
    sock_close(s, LMZ_ECANCELED); /* incoming ones not bound to a conn yet */
}

int lmz_transport_connect(lmz_transport_t *t, uint64_t peer_id,
                          const char *addr, lmz_conn_t **out) {
  struct lmz__transport_private *p = P(t);
  if (p->closing)
    return LMZ_ECANCELED;
  struct sockaddr_storage sa;
  if (!peer_id || peer_id == p->opts.node_id ||
      lmz__transport_parse_addr(addr, &sa) != 0 || strlen(addr) >= 64) {
    lmz__errmsg_printf(t->errmsg,
                       "connect to node %llu at %s: bad id or address",
                       (unsigned long long)peer_id, addr);
    return LMZ_EINVAL;
  }
  lmz_conn_t *c = find_conn(t, peer_id);
  if (c && c->managed) {
    *out = c;
    return LMZ_EEXIST;
  }
  if (!c && !(c = conn_new(t, peer_id)))
    return LMZ_ENOMEM;
  c->managed = true;
  c->sa = sa;
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  uv_timer_init(t->loop, &c->backoff);
  c->backoff.data = c;
  c->timer_open = true;
  p->n_handles++;
  if (!c->cur)
    dial(c);
  *out = c;
  return 0;
}

lmz_conn_t *lmz_transport_peer(lmz_transport_t *t, uint64_t peer_id) {
  return peer_id ? find_conn(t, peer_id) : NULL;
}

static size_t pending_bytes(const lmz_conn_t *c) {
  size_t n = c->out.len;
  if (c->cur)
    n += uv_stream_get_write_queue_size((const uv_stream_t *)&c->cur->tcp);
  return n;
}

int lmz_conn_send(lmz_conn_t *c, const Lmz__Frame *f) {
  struct lmz__transport_private *p = P(c->t);
  if (p->closing || c->closing)
    return LMZ_ECANCELED;
  if (!c->managed && !c->cur)
    return LMZ_ECLOSED;
  size_t need = lmz_frame_encoded_len(f);
  if (need - LMZ_FRAME_HDR_LEN > p->opts.max_frame)
    return LMZ_ETOOBIG;
  if (pending_bytes(c) + need > p->opts.max_pending_bytes ||
      c->out_frames >= p->opts.max_pending_frames) {
    p->m.overload_rejections++;
    return LMZ_EOVERLOAD;
  }
  long rv = lmz_frame_append(&c->out, f, p->opts.max_frame);
  if (rv < 0)
    return (int)rv;
  c->out_frames++;
  p->m.frames_out++;
  if (c->cur && c->cur->state == S_UP)
    mark_dirty(c);
  return 0;
}

void lmz_conn_flush(lmz_conn_t *c) {
  if (!c->closing && !P(c->t)->closing)
    flush_conn(c); /* still on the dirty list: on_flush finds it empty */
}

void lmz_conn_close(lmz_conn_t *c) {
  if (c->closing)
    return;
  c->closing = true;
  lmz_buf_free(&c->out);
  c->out_frames = 0;
  if (c->timer_open) {
    uv_timer_stop(&c->backoff);
    uv_close((uv_handle_t *)&c->backoff, on_timer_closed);
  }
  for (sock *s = c->t->priv.socks; s; s = s->next)
    if (s->conn == c)
      sock_close(s, LMZ_ECANCELED);
}

uint64_t lmz_conn_peer_id(const lmz_conn_t *c) { return c->peer_id; }
const char *lmz_conn_peer_name(const lmz_conn_t *c) { return c->peer_name; }
uint64_t lmz_conn_peer_incarnation(const lmz_conn_t *c) {
  return c->incarnation;
}
bool lmz_conn_is_up(const lmz_conn_t *c) { return c->cur != NULL; }
bool lmz_conn_is_managed(const lmz_conn_t *c) { return c->managed; }
size_t lmz_conn_pending_bytes(const lmz_conn_t *c) { return pending_bytes(c); }
lmz_transport_t *lmz_conn_transport(const lmz_conn_t *c) { return c->t; }
void lmz_conn_set_data(lmz_conn_t *c, void *data) { c->data = data; }
void *lmz_conn_get_data(const lmz_conn_t *c) { return c->data; }
