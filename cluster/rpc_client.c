/* cluster/rpc_client.c - blocking node-port client (see rpc_client.h).
 *
 * Happy path: resolve, non-blocking connect + poll until the deadline, send
 * the secure hello, read until the handshake completes and the node's Hello
 * frame arrived (our Hello goes out sealed right behind our proof). Then
 * send = pack + seal + write all; recv = read + open records + split frames.
 *
 * Failure modes:
 *  1. connect refused/unreachable: the errno in words, lower-case, after
 *     "cannot connect to HOST:PORT: ".
 *  2. deadline passes: LMZ_ETIMEOUT naming the phase.
 *  3. wrong key: the node sends a reject notice -> "the node rejected our
 *     cluster key (wrong key?)"; a node that cannot prove the key -> says so.
 *  4. EOF in the handshake: LMZ_ECLOSED, with the likely reason.
 *  5. tampered/replayed record or oversize length: the secure layer's
 *     error; the client is unusable afterwards (every call returns it).
 *  6. the node shed our handshake for load (its overload notice, see
 *     cluster/transport.h "Node port limits"): connect again after a short
 *     randomized pause (20 ms doubling to 500 ms) until the deadline; if it
 *     passes, LMZ_EOVERLOAD "handshake failed: the node is overloaded ...". */
#include "cluster/rpc_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/secure.h"
#include "lmz/lmz.h"
#include "proto/frame.h"

struct lmz_rpc_client {
  int fd;
  int timeout_ms; /* default deadline for send/recv */
  int dead;       /* sticky error once the connection is unusable */
  lmz_secure sec;
  lmz_buf out;   /* handshake bytes / sealed records to write */
  lmz_buf plain; /* decrypted, not yet split; consumed from plain_off */
  size_t plain_off;
  lmz_frame_splitter frames;
  bool got_hello;
  uint64_t peer_id;
  char peer_name[64];
  char target[128];
  char errmsg[LMZ_ERRMSG_LEN];
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(int64_t deadline) {
  int64_t r = deadline - mono_ms();
  return r < 0 ? 0 : r > 1000000000 ? 1000000000 : (int)r;
}

/* "Connection refused" -> "connection refused". */
static void errno_words(char *dst, size_t n, int e) {
  snprintf(dst, n, "%s", strerror(e));
  if (dst[0])
    dst[0] = (char)tolower((unsigned char)dst[0]);
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timeout, <0 err. */
static int wait_fd(int fd, short events, int64_t deadline) {
  for (;;) {
    struct pollfd p = {fd, events, 0};
    int r = poll(&p, 1, remaining(deadline));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    return r;
  }
}

static int write_all(lmz_rpc_client *c, const uint8_t *p, size_t n,
                     int64_t deadline) {
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w > 0) {
      p += w, n -= (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int r = wait_fd(c->fd, POLLOUT, deadline);
      if (r == 0) {
        lmz__errmsg_printf(c->errmsg, "send to %s timed out", c->target);
        return LMZ_ETIMEOUT;
      }
      if (r > 0)
        continue;
    }
    lmz__errmsg_printf(c->errmsg, "connection to %s lost: %s", c->target,
                       strerror(errno));
    return c->dead = LMZ_ECLOSED;
  }
  return 0;
}

/* Non-blocking connect to one resolved address within the deadline. */
static int try_connect(const struct addrinfo *ai, int64_t deadline,
                       int *fd_out) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  ai->ai_protocol);
  if (fd < 0)
    return -errno;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    int e = errno;
    close(fd);
    return -e;
  }
  int r = wait_fd(fd, POLLOUT, deadline);
  int err = 0;
  socklen_t len = sizeof err;
  if (r == 0) {
    close(fd);
    return LMZ_ETIMEOUT;
  }
  if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err) {
    int e = r < 0 ? -r : err ? err : errno;
    close(fd);
    return -e;
  }
  *fd_out = fd;
  return 0;
}

/* Splits "host:port" / "[v6]:port" without resolving. */
static int split_hostport(const char *hp, char *host, size_t hn, char *port,
                          size_t pn) {
  const char *colon = strrchr(hp, ':');
  if (!colon || colon == hp || !colon[1] || strlen(colon + 1) >= pn)
    return LMZ_EINVAL;
  const char *h = hp;
  size_t hl = (size_t)(colon - hp);
  if (hp[0] == '[') {
    if (hl < 3 || hp[hl - 1] != ']')
      return LMZ_EINVAL;
    h++, hl -= 2;
  }
  if (hl >= hn)
    return LMZ_EINVAL;
  memcpy(host, h, hl);
  host[hl] = '\0';
  strcpy(port, colon + 1);
  return 0;
}

static int open_socket(lmz_rpc_client *c, const char *hp, int64_t deadline,
                       int timeout_ms) {
  char host[96], port[16];
  if (split_hostport(hp, host, sizeof host, port, sizeof port) != 0) {
    lmz__errmsg_printf(c->errmsg, "bad address %s: expected host:port", hp);
    return LMZ_EINVAL;
  }
  struct addrinfo hints = {0}, *res = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int g = getaddrinfo(host, port, &hints, &res);
  if (g != 0) {
    lmz__errmsg_printf(c->errmsg, "cannot connect to %s: %s", hp,
                       gai_strerror(g));
    return LMZ_EINVAL;
  }
  int rv = LMZ_EINVAL;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    rv = try_connect(ai, deadline, &c->fd);
    if (rv == 0 || rv == LMZ_ETIMEOUT)
      break;
  }
  freeaddrinfo(res);
  if (rv == LMZ_ETIMEOUT) {
    lmz__errmsg_printf(c->errmsg, "cannot connect to %s: timed out after %d ms",
                       hp, timeout_ms);
  } else if (rv < 0) {
    char words[96];
    errno_words(words, sizeof words, -rv);
    lmz__errmsg_printf(c->errmsg, "cannot connect to %s: %s", hp, words);
  }
  return rv;
}

/* Reads once (waiting until the deadline) and feeds the secure layer.
 * Returns 0 (progress), LMZ_ETIMEOUT, LMZ_ECLOSED, or a secure error. */
static int read_some(lmz_rpc_client *c, int64_t deadline) {
  uint8_t buf[65536];
  ssize_t r;
  for (;;) {
    r = recv(c->fd, buf, sizeof buf, 0);
    if (r >= 0 || errno == EINTR) {
      if (r >= 0)
        break;
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      lmz__errmsg_printf(c->errmsg, "connection to %s lost: %s", c->target,
                         strerror(errno));
      return c->dead = LMZ_ECLOSED;
    }
    int w = wait_fd(c->fd, POLLIN, deadline);
    if (w == 0)
      return LMZ_ETIMEOUT;
    if (w < 0)
      return c->dead = LMZ_ECLOSED;
  }
  if (r == 0) {
    lmz__errmsg_printf(c->errmsg, "the node %s closed the connection",
                       c->target);
    return c->dead = LMZ_ECLOSED;
  }
  if (c->plain_off == c->plain.len) {
    lmz_buf_reset(&c->plain);
    c->plain_off = 0;
  }
  lmz_buf_reset(&c->out);
  int rv = lmz_secure_feed(&c->sec, buf, (size_t)r, &c->out, &c->plain);
  if (rv < 0) {
    lmz__errmsg_printf(c->errmsg, "%s", c->sec.errmsg);
    return c->dead = rv;
  }
  if (c->out.len)
    return write_all(c, c->out.data, c->out.len, deadline);
  return 0;
}

static int send_frame(lmz_rpc_client *c, const Lmz__Frame *f,
                      int64_t deadline) {
  lmz_buf plain = LMZ_BUF_INIT;
  long n = lmz_frame_append(&plain, f, 0);
  if (n < 0) {
    lmz__errmsg_printf(c->errmsg, "frame too large or out of memory");
    return (int)n;
  }
  lmz_buf_reset(&c->out);
  int rv = lmz_secure_seal(&c->sec, plain.data, plain.len, &c->out);
  lmz_buf_free(&plain);
  if (rv)
    return rv;
  return write_all(c, c->out.data, c->out.len, deadline);
}

static void answer_ping(lmz_rpc_client *c, const Lmz__Ping *ping,
                        int64_t deadline) {
  Lmz__Pong pong = LMZ__PONG__INIT;
  pong.seq = ping->seq;
  pong.sent_us = ping->sent_us;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_PONG;
  f.pong = &pong;
  (void)send_frame(c, &f, deadline); /* a failure shows on the next call */
}

/* Next complete frame from already-decrypted bytes: 1 (got one), 0 (need
 * more), <0 error. Handles Hello/Ping/Pong itself. */
static int next_frame(lmz_rpc_client *c, Lmz__Frame **out, int64_t deadline) {
  for (;;) {
    if (c->plain_off == c->plain.len)
      return 0; /* (also keeps NULL + 0 away from UBSan) */
    const uint8_t *p = c->plain.data + c->plain_off, *body;
    size_t n = c->plain.len - c->plain_off, blen;
    int rv = lmz_frame_split(&c->frames, &p, &n, &body, &blen);
    c->plain_off = c->plain.len - n;
    if (rv == 0)
      return 0;
    if (rv < 0) {
      lmz__errmsg_printf(c->errmsg, "frame from %s over the size cap",
                         c->target);
      return c->dead = rv;
    }
    Lmz__Frame *f;
    if (lmz_frame_unpack(body, blen, &f) != 0) {
      lmz__errmsg_printf(c->errmsg, "malformed frame from %s", c->target);
      return c->dead = LMZ_EBADMSG;
    }
    switch (f->body_case) {
    case LMZ__FRAME__BODY_HELLO:
      c->got_hello = true;
      c->peer_id = f->hello->node_id;
      snprintf(c->peer_name, sizeof c->peer_name, "%s",
               f->hello->name ? f->hello->name : "");
      break;
    case LMZ__FRAME__BODY_PING:
      answer_ping(c, f->ping, deadline);
      break;
    case LMZ__FRAME__BODY_PONG:
    case LMZ__FRAME__BODY__NOT_SET:
      break;
    default:
      *out = f;
      return 1;
    }
    lmz_frame_free(f);
  }
}

static int handshake(lmz_rpc_client *c, int64_t deadline, int timeout_ms) {
  int rv = lmz_secure_start(&c->sec, &c->out);
  if (rv == 0)
    rv = write_all(c, c->out.data, c->out.len, deadline);
  bool hello_sent = false;
  while (rv == 0 && !(lmz_secure_is_open(&c->sec) && c->got_hello)) {
    rv = read_some(c, deadline);
    if (rv == 0 && !hello_sent && lmz_secure_can_send(&c->sec)) {
      Lmz__Hello h = LMZ__HELLO__INIT;
      h.proto_version = 1;
      h.name = "lmz-cli";
      Lmz__Frame f = LMZ__FRAME__INIT;
      f.body_case = LMZ__FRAME__BODY_HELLO;
      f.hello = &h;
      rv = send_frame(c, &f, deadline);
      hello_sent = true;
    }
    Lmz__Frame *early = NULL;
    if (rv == 0 && next_frame(c, &early, deadline) == 1) {
      lmz_frame_free(early); /* nothing else may come before the Hello */
      lmz__errmsg_printf(c->errmsg, "protocol error: frame before Hello");
      rv = LMZ_EBADMSG;
    }
  }
  if (rv == LMZ_ETIMEOUT)
    lmz__errmsg_printf(c->errmsg, "handshake with %s timed out after %d ms",
                       c->target, timeout_ms);
  else if (rv == LMZ_ECLOSED && !lmz_secure_is_open(&c->sec))
    lmz__errmsg_printf(c->errmsg,
                       "handshake failed: %s closed the connection (wrong "
                       "key, or not an lmz node port?)",
                       c->target);
  else if (rv < 0 && rv != LMZ_ECLOSED)
    lmz__errmsg_wrapf(c->errmsg, "handshake failed");
  return rv;
}

static void client_free(lmz_rpc_client *c) {
  if (c->fd >= 0)
    close(c->fd);
  lmz_secure_free(&c->sec);
  lmz_buf_free(&c->out);
  lmz_buf_free(&c->plain);
  lmz_frame_splitter_free(&c->frames);
  free(c);
}

/* Back to the state before a connection attempt (failure mode 6). */
static void client_reset(lmz_rpc_client *c, const uint8_t *key) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  c->dead = 0;
  c->got_hello = false;
  lmz_secure_free(&c->sec);
  lmz_secure_init(&c->sec, LMZ_SECURE_INITIATOR, key, NULL);
  lmz_frame_splitter_free(&c->frames);
  lmz_frame_splitter_init(&c->frames, 0);
  lmz_buf_reset(&c->out);
  lmz_buf_reset(&c->plain);
  c->plain_off = 0;
}

static int connect_until(lmz_rpc_client *c, const char *hostport,
                         const uint8_t *key, int timeout_ms) {
  int64_t deadline = mono_ms() + timeout_ms;
  uint32_t pause = 20;
  for (;;) {
    int rv = open_socket(c, hostport, deadline, timeout_ms);
    if (rv == 0)
      rv = handshake(c, deadline, timeout_ms);
    if (rv != LMZ_EOVERLOAD || remaining(deadline) <= (int)pause)
      return rv;
    client_reset(c, key);
    poll(NULL, 0, (int)(pause / 2 + randombytes_uniform(pause / 2 + 1)));
    pause = pause < 250 ? pause * 2 : 500;
  }
}

int lmz_rpc_connect(lmz_rpc_client **out, const char *hostport,
                    const uint8_t *key, int timeout_ms, char *errmsg) {
  *out = NULL;
  lmz_rpc_client *c = calloc(1, sizeof *c);
  if (!c) {
    if (errmsg)
      lmz__errmsg_printf(errmsg, "out of memory");
    return LMZ_ENOMEM;
  }
  c->fd = -1;
  c->timeout_ms = timeout_ms;
  snprintf(c->target, sizeof c->target, "%s", hostport);
  lmz_secure_init(&c->sec, LMZ_SECURE_INITIATOR, key, NULL);
  lmz_frame_splitter_init(&c->frames, 0);
  int rv = connect_until(c, hostport, key, timeout_ms);
  if (rv) {
    if (errmsg)
      memcpy(errmsg, c->errmsg, LMZ_ERRMSG_LEN);
    client_free(c);
    return rv;
  }
  *out = c;
  return 0;
}

int lmz_rpc_send(lmz_rpc_client *c, const Lmz__Frame *f) {
  if (c->dead)
    return c->dead;
  return send_frame(c, f, mono_ms() + c->timeout_ms);
}

int lmz_rpc_send_call(lmz_rpc_client *c, uint64_t call_id, const char *binding,
                      const char *instance, const void *chain,
                      size_t chain_len, const void *state, size_t state_len) {
  return lmz_rpc_send_call_traced(c, call_id, binding, instance, chain,
                                  chain_len, state, state_len, NULL);
}

int lmz_rpc_send_call_traced(lmz_rpc_client *c, uint64_t call_id,
                             const char *binding, const char *instance,
                             const void *chain, size_t chain_len,
                             const void *state, size_t state_len,
                             const char *trace_id) {
  Lmz__Identity callee = LMZ__IDENTITY__INIT;
  callee.type = instance ? LMZ_NODE_DO : LMZ_NODE_WORKER;
  callee.binding = (char *)binding;
  callee.instance = (char *)(instance ? instance : "");
  callee.has_instance = instance != NULL;
  Lmz__CallContext ctx = LMZ__CALL_CONTEXT__INIT;
  ctx.state.data = (uint8_t *)state;
  ctx.state.len = state ? state_len : 0;
  if (trace_id)
    ctx.trace_id = (char *)trace_id;
  Lmz__Call call = LMZ__CALL__INIT;
  call.call_id = call_id;
  call.version = 1;
  call.callee = &callee;
  call.chain.data = (uint8_t *)chain;
  call.chain.len = chain_len;
  call.ctx = &ctx;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_CALL;
  f.call = &call;
  return lmz_rpc_send(c, &f);
}

int lmz_rpc_recv(lmz_rpc_client *c, Lmz__Frame **out, int timeout_ms) {
  *out = NULL;
  int64_t deadline = mono_ms() + (timeout_ms < 0 ? c->timeout_ms : timeout_ms);
  for (;;) {
    if (c->dead)
      return c->dead;
    int rv = next_frame(c, out, deadline);
    if (rv != 0)
      return rv < 0 ? rv : 0;
    rv = read_some(c, deadline);
    if (rv == LMZ_ETIMEOUT)
      lmz__errmsg_printf(c->errmsg, "no answer from %s within %d ms", c->target,
                         timeout_ms < 0 ? c->timeout_ms : timeout_ms);
    if (rv)
      return rv;
  }
}

const char *lmz_rpc_errmsg(const lmz_rpc_client *c) { return c->errmsg; }
uint64_t lmz_rpc_peer_id(const lmz_rpc_client *c) { return c->peer_id; }
const char *lmz_rpc_peer_name(const lmz_rpc_client *c) { return c->peer_name; }

void lmz_rpc_close(lmz_rpc_client *c) {
  if (c)
    client_free(c);
}
