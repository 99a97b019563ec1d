/* cluster/raftbridge.c - raft streams as socketpairs tunnelled over the node
 * transport (see raftbridge.h for the picture).
 *
 * Happy path: connect -> socketpair, open frame, raft gets its end at the
 * next loop turn; the peer's bridge sees the open frame, makes its own
 * socketpair and calls raft's accept callback; from then on whatever raft
 * writes into its end is read here and sent as data frames, and data frames
 * are written into the local end.
 * Failure modes:
 *  1. no transport connection to the peer: connect fails RAFT_NOCONNECTION,
 *     raft retries;
 *  2. the transport refuses a frame (overload, closing): the stream closes;
 *  3. the connection to the peer drops: its streams close (raft sees EOF);
 *  4. frames for unknown streams (late, or forged by nobody - the channel is
 *     authenticated) get a close answer and are dropped;
 *  5. a write into the local pipe fails: the stream closes. */
#include "cluster/raftbridge.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/hmap.h"
#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.raftbridge");

struct lmz__raftbridge_key {
  uint64_t peer;   /* the other node */
  uint64_t sid;    /* stream number, chosen by the initiator */
  uint64_t mine;   /* 1 when we initiated it (a full word: no padding in
                      the hash key) */
};

struct stream {
  struct lmz__raftbridge_key k;
  lmz_raftbridge_t *b;
  uv_pipe_t pipe; /* our end of the socketpair */
  bool closing;
  struct stream *next_closing;
};

struct pending_connect { /* raft's connect callback, run on the next turn */
  uv_timer_t timer;
  struct raft_uv_connect *req;
  uv_pipe_t *raft_end;
  int status;
};

/* ---- streams ------------------------------------------------------------- */

static void send_frame(lmz_raftbridge_t *b, const struct lmz__raftbridge_key *k,
                       bool open, bool close, const void *data, size_t len) {
  lmz_conn_t *c = lmz_transport_peer(b->tr, k->peer);
  if (!c)
    return;
  Lmz__RaftData d = LMZ__RAFT_DATA__INIT;
  d.stream = k->sid;
  d.initiator = k->mine;
  d.open = open;
  d.close = close;
  d.data = (ProtobufCBinaryData){len, (uint8_t *)data};
  d.from_id = b->id;
  d.from_address = b->address;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_RAFT_DATA;
  f.raft_data = &d;
  lmz_conn_send(c, &f);
}

static void stream_closed(uv_handle_t *h) {
  struct stream *s = h->data;
  lmz_raftbridge_t *b = s->b;
  free(s);
  if (--b->open_handles == 0 && b->closing && b->close_cb)
    b->close_cb(&b->t);
}

/* Closes our end (raft's end then reads EOF); tells the peer unless it was
 * the peer that closed. */
static void stream_close(struct stream *s, bool tell_peer) {
  if (s->closing)
    return;
  s->closing = true;
  lmz_hmap_del(&s->b->streams, &s->k, sizeof s->k);
  if (tell_peer)
    send_frame(s->b, &s->k, false, true, NULL, 0);
  uv_close((uv_handle_t *)&s->pipe, stream_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h, (void)hint;
  static char slab[64 * 1024]; /* loop thread only; consumed in read_cb */
  *buf = uv_buf_init(slab, sizeof slab);
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  struct stream *s = st->data;
  if (n < 0) {
    stream_close(s, true);
    return;
  }
  if (n == 0)
    return;
  lmz_conn_t *c = lmz_transport_peer(s->b->tr, s->k.peer);
  Lmz__RaftData d = LMZ__RAFT_DATA__INIT;
  d.stream = s->k.sid;
  d.initiator = s->k.mine;
  d.data = (ProtobufCBinaryData){(size_t)n, (uint8_t *)buf->base};
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_RAFT_DATA;
  f.raft_data = &d;
  if (!c || lmz_conn_send(c, &f)) {
    LMZ_LOG_DEBUG(&log_ns, "stream %llu to node %llu: cannot send, closing",
                  (unsigned long long)s->k.sid, (unsigned long long)s->k.peer);
    stream_close(s, false);
  }
}

struct wreq {
  uv_write_t w;
  struct stream *s;
  char data[];
};

static void write_cb(uv_write_t *w, int status) {
  struct wreq *r = (struct wreq *)w;
  if (status && !r->s->closing)
    stream_close(r->s, true);
  free(r);
}

/* A socketpair: raft's end (a uv_pipe_t from raft_malloc: raft frees it
 * after uv_close) and ours, registered under `k`. */
static int stream_new(lmz_raftbridge_t *b, const struct lmz__raftbridge_key *k,
                      uv_pipe_t **raft_end) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds))
    return RAFT_NOCONNECTION;
  struct stream *s = calloc(1, sizeof *s);
  uv_pipe_t *p = raft_malloc(sizeof *p);
  if (!s || !p) {
    close(fds[0]);
    close(fds[1]);
    free(s);
    raft_free(p);
    return RAFT_NOMEM;
  }
  s->k = *k;
  s->b = b;
  uv_pipe_init(b->loop, &s->pipe, 0);
  uv_pipe_open(&s->pipe, fds[1]);
  s->pipe.data = s;
  uv_pipe_init(b->loop, p, 0);
  uv_pipe_open(p, fds[0]);
  b->open_handles++;
  if (lmz_hmap_put(&b->streams, &s->k, sizeof s->k, s, NULL)) {
    uv_close((uv_handle_t *)&s->pipe, stream_closed);
    uv_close((uv_handle_t *)p, (uv_close_cb)raft_free);
    return RAFT_NOMEM;
  }
  uv_read_start((uv_stream_t *)&s->pipe, alloc_cb, read_cb);
  *raft_end = p;
  return 0;
}

/* ---- the raft_uv_transport interface -------------------------------------- */

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address) {
  lmz_raftbridge_t *b = (lmz_raftbridge_t *)t;
  b->id = id;
  snprintf(b->address, sizeof b->address, "%s", address);
  return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb) {
  ((lmz_raftbridge_t *)t)->accept_cb = cb;
  return 0;
}

static void connect_fire(uv_timer_t *h) {
  struct pending_connect *pc = h->data;
  pc->req->cb(pc->req, (uv_stream_t *)pc->raft_end, pc->status);
  uv_close((uv_handle_t *)h, (uv_close_cb)free);
}

static int tr_connect(struct raft_uv_transport *t, struct raft_uv_connect *req,
                      raft_id id, const char *address, raft_uv_connect_cb cb) {
  (void)address;
  lmz_raftbridge_t *b = (lmz_raftbridge_t *)t;
  lmz_conn_t *c = lmz_transport_peer(b->tr, id);
  if (b->closing || !c || !lmz_conn_is_up(c))
    return RAFT_NOCONNECTION;
  struct pending_connect *pc = calloc(1, sizeof *pc);
  if (!pc)
    return RAFT_NOMEM;
  struct lmz__raftbridge_key k = {id, ++b->next_sid, 1};
  int rv = stream_new(b, &k, &pc->raft_end);
  if (rv) {
    free(pc);
    return rv;
  }
  send_frame(b, &k, true, false, NULL, 0);
  req->cb = cb;
  pc->req = req;
  uv_timer_init(b->loop, &pc->timer);
  pc->timer.data = pc;
  uv_timer_start(&pc->timer, connect_fire, 0, 0); /* never from inside connect */
  return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb) {
  lmz_raftbridge_t *b = (lmz_raftbridge_t *)t;
  b->closing = true;
  b->close_cb = cb;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&b->streams, &it, NULL, NULL, &v))
    stream_close(v, true);
  if (b->open_handles == 0 && cb)
    cb(t);
}

/* ---- frames from peers ---------------------------------------------------- */

static void on_open(lmz_raftbridge_t *b, uint64_t peer,
                    const Lmz__RaftData *d) {
  struct lmz__raftbridge_key k = {peer, d->stream, 0};
  uv_pipe_t *raft_end;
  if (b->closing || !b->accept_cb || lmz_hmap_get(&b->streams, &k, sizeof k) ||
      stream_new(b, &k, &raft_end)) {
    send_frame(b, &k, false, true, NULL, 0);
    return;
  }
  /* the channel authenticated the peer as node `peer`: raft's id must match */
  raft_id from = d->from_id == peer ? d->from_id : peer;
  b->accept_cb(&b->t, from, d->from_address ? d->from_address : "",
               (uv_stream_t *)raft_end);
}

void lmz_raftbridge_on_frame(lmz_raftbridge_t *b, lmz_conn_t *conn,
                             const Lmz__Frame *f) {
  if (f->body_case != LMZ__FRAME__BODY_RAFT_DATA)
    return;
  const Lmz__RaftData *d = f->raft_data;
  uint64_t peer = lmz_conn_peer_id(conn);
  if (!peer)
    return; /* operators never speak raft */
  if (d->open && d->initiator) {
    on_open(b, peer, d);
    return;
  }
  struct lmz__raftbridge_key k = {peer, d->stream, d->initiator ? 0 : 1};
  struct stream *s = lmz_hmap_get(&b->streams, &k, sizeof k);
  if (!s) {
    if (!d->close)
      send_frame(b, &k, false, true, NULL, 0);
    return;
  }
  if (d->close) {
    stream_close(s, false);
    return;
  }
  if (!d->data.len)
    return;
  struct wreq *w = malloc(sizeof *w + d->data.len);
  if (!w) {
    stream_close(s, true);
    return;
  }
  w->s = s;
  memcpy(w->data, d->data.data, d->data.len);
  uv_buf_t buf = uv_buf_init(w->data, (unsigned)d->data.len);
  if (uv_write(&w->w, (uv_stream_t *)&s->pipe, &buf, 1, write_cb)) {
    free(w);
    stream_close(s, true);
  }
}

void lmz_raftbridge_on_conn_state(lmz_raftbridge_t *b, lmz_conn_t *conn,
                                  int state) {
  if (state != LMZ_CONN_DOWN)
    return;
  uint64_t peer = lmz_conn_peer_id(conn);
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&b->streams, &it, NULL, NULL, &v))
    if (((struct stream *)v)->k.peer == peer)
      stream_close(v, false);
}

/* ---- lifecycle ------------------------------------------------------------ */

int lmz_raftbridge_init(lmz_raftbridge_t *b, uv_loop_t *loop,
                        lmz_transport_t *t) {
  *b = (lmz_raftbridge_t){.loop = loop, .tr = t};
  b->t.impl = b;
  b->t.init = tr_init;
  b->t.listen = tr_listen;
  b->t.connect = tr_connect;
  b->t.close = tr_close;
  return 0;
}

struct raft_uv_transport *lmz_raftbridge_transport(lmz_raftbridge_t *b) {
  return &b->t;
}

void lmz_raftbridge_close(struct raft_uv_transport *t) {
  lmz_raftbridge_t *b = (lmz_raftbridge_t *)t;
  if (!b)
    return;
  lmz_hmap_free(&b->streams); /* b itself is the caller's */
}
