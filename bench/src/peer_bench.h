/* bench/src/peer_bench.h - lmz against the systems a user would pick
 * instead, on the same machine in the same run (issue 12): shared by the
 * scenarios hot_actor and peers. Header-only on top of gw_bench.h (lmzd
 * --dev, C clients of the gateway, histogram, CPU of processes).
 *
 *   workerd   Cloudflare's Workers/Durable Objects runtime from npm
 *             (bench/peers/workerd, scripts/install-bench-deps.sh) running
 *             bench/peers/workerd/counter.js: a SQLite-backed Durable
 *             Object, durable increment through the synchronous KV API,
 *             WebSocket (hibernation API) and HTTP. It serves a listening
 *             socket this process bound to 127.0.0.1:0 (--socket-fd) and
 *             keeps its storage in a temp dir (removed at exit).
 *   raw load  a plain C WebSocket/HTTP client on libuv (no lmz code: upgrade
 *             request, masked text frames, unmasked replies; HTTP/1.1
 *             keep-alive GETs with Content-Length replies) driving workerd
 *             with the same client counts and windows as the lmz clients.
 *   lmz load  the C gateway client (clients/c/lmzc.h), each client calling
 *             its own COUNTER_DO instance or one shared instance.
 *   redis     redis-server (Debian) on a free loopback port, no
 *             persistence, measured with redis-benchmark (INCR).
 * Both load generators run on one libuv loop in this process; its CPU is
 * reported next to the server's for every measurement (a generator at 1.0
 * CPU is the bottleneck, not the server). A peer that is not installed is
 * skipped with a message on stderr; its metrics are then absent. */
#ifndef LMZ_BENCH_PEER_BENCH_H
#define LMZ_BENCH_PEER_BENCH_H

#include "gw_bench.h" /* first: it defines _GNU_SOURCE */

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#define PB_WMAX 64 /* requests in flight per client at most */

/* One measurement of one system at one load. */
struct pb_res {
  double rate, p50, p99, max, gen_cpu, srv_cpu;
  uint64_t errors;
};

/* Latencies: 10 us buckets up to 10 s (workerd's answers can take
 * hundreds of ms, past gw_bench.h's 100 ms range), then an overflow bucket
 * holding the max. */
#define PB_HIST_N 1000000
struct pb_hist {
  uint32_t b[PB_HIST_N + 1];
  uint64_t n;
  double max_ms;
};

static void pb_hist_add(struct pb_hist *h, uint64_t ns) {
  uint64_t i = ns / 10000;
  h->b[i < PB_HIST_N ? i : PB_HIST_N]++;
  h->n++;
  double ms = (double)ns / 1e6;
  if (ms > h->max_ms)
    h->max_ms = ms;
}

/* The q-quantile in ms (0 when empty): the middle of its bucket. */
static double pb_hist_q(const struct pb_hist *h, double q) {
  if (!h->n)
    return 0;
  uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
  for (uint32_t i = 0; i <= PB_HIST_N; i++) {
    seen += h->b[i];
    if (seen > want)
      return i == PB_HIST_N ? h->max_ms : ((double)i + 0.5) / 100.0;
  }
  return h->max_ms;
}

/* The closed loop both generators share: an answer sends the next request
 * until t_end; answers between t_meas and t_end are counted. */
static struct {
  uint64_t t_meas, t_end, inflight, counted, errors;
  struct pb_hist *hist;
} PB;

static bool pb_record(uint64_t t0) {
  uint64_t now = uv_hrtime();
  PB.inflight--;
  if (now >= PB.t_meas && now <= PB.t_end) {
    PB.counted++;
    pb_hist_add(PB.hist, now - t0);
  }
  return now < PB.t_end;
}

/* ---- processes ------------------------------------------------------------ */

#define PB_MAXPROC 4
static struct {
  pid_t pid;
  char *dir;
} pb_proc[PB_MAXPROC];

static void pb_stop_all(void) {
  for (int i = 0; i < PB_MAXPROC; i++) {
    if (pb_proc[i].pid > 0) {
      kill(pb_proc[i].pid, SIGKILL);
      waitpid(pb_proc[i].pid, NULL, 0);
      pb_proc[i].pid = 0;
    }
    if (pb_proc[i].dir) {
      nftw(pb_proc[i].dir, gb_rm, 16, FTW_DEPTH | FTW_PHYS);
      free(pb_proc[i].dir);
      pb_proc[i].dir = NULL;
    }
  }
}

static void pb_on_signal(int sig) {
  for (int i = 0; i < PB_MAXPROC; i++)
    if (pb_proc[i].pid > 0)
      kill(pb_proc[i].pid, SIGKILL);
  if (gb_srv.pid > 0)
    kill(gb_srv.pid, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Runs argv[0] with stdout+stderr to DIR/log; slot i. keep_fd stays open
 * in the child (-1: none). */
static void pb_spawn(int slot, char *const argv[], int keep_fd) {
  static bool hooked;
  if (!hooked) {
    atexit(pb_stop_all);
    signal(SIGINT, pb_on_signal);
    signal(SIGTERM, pb_on_signal);
    hooked = true;
  }
  char log[4200];
  snprintf(log, sizeof log, "%s/log", pb_proc[slot].dir);
  pid_t pid = fork();
  if (pid < 0)
    gb_die("fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!freopen(log, "w", stderr) || dup2(fileno(stderr), 1) < 0)
      _exit(126);
    if (keep_fd >= 0)
      fcntl(keep_fd, F_SETFD, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  pb_proc[slot].pid = pid;
}

static void pb_mkdir(int slot, const char *what) {
  const char *tmp = getenv("TMPDIR");
  if (asprintf(&pb_proc[slot].dir, "%s/lmz-bench-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
               what) < 0 ||
      !mkdtemp(pb_proc[slot].dir))
    gb_die("mkdtemp: %s", strerror(errno));
}

static void pb_show_log(int slot) {
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "tail -n 20 '%s/log' >&2", pb_proc[slot].dir);
  if (system(cmd) != 0)
    fprintf(stderr, "  (no log)\n");
}

/* A loopback socket listening on a free port; returns the fd, sets *port. */
static int pb_listen_any(int *port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 4096) ||
      getsockname(fd, (struct sockaddr *)&a, &len))
    gb_die("listen on 127.0.0.1:0: %s", strerror(errno));
  *port = ntohs(a.sin_port);
  return fd;
}

/* A blocking request/response on a fresh connection (readiness checks);
 * returns the answer's length, -1 on failure. */
static int pb_ask(int port, const char *req, char *out, size_t cap) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  struct timeval tv = {2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int n = -1;
  if (fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof a) &&
      write(fd, req, strlen(req)) == (ssize_t)strlen(req)) {
    ssize_t r = read(fd, out, cap - 1);
    n = r > 0 ? (int)r : -1;
    if (n > 0)
      out[n] = '\0';
  }
  if (fd >= 0)
    close(fd);
  return n;
}

/* ---- workerd ---------------------------------------------------------------- */

#define PB_WORKERD 0
#define PB_REDIS 1
static int pb_workerd_port;

static const char *pb_peer_dir(void) { return LMZ_BENCH_PAYLOAD_DIR "/../peers"; }

/* Starts workerd; false (and a message) when it is not installed. */
static inline bool pb_workerd_start(void) {
  char bin[4200], cfg[4200], sockarg[64], dirarg[4300];
  snprintf(bin, sizeof bin, "%s/workerd/node_modules/.bin/workerd", pb_peer_dir());
  snprintf(cfg, sizeof cfg, "%s/workerd/config.capnp", pb_peer_dir());
  if (access(bin, X_OK)) {
    fprintf(stderr, "%s: workerd not installed (%s missing; run "
                    "scripts/install-bench-deps.sh): workerd skipped\n", gb_scenario, bin);
    return false;
  }
  pb_mkdir(PB_WORKERD, "workerd");
  int fd = pb_listen_any(&pb_workerd_port);
  snprintf(sockarg, sizeof sockarg, "http=%d", fd);
  snprintf(dirarg, sizeof dirarg, "do-storage=%s", pb_proc[PB_WORKERD].dir);
  char *argv[] = {bin, "serve", cfg, "--socket-fd", sockarg, "--directory-path", dirarg, NULL};
  pb_spawn(PB_WORKERD, argv, fd);
  close(fd);
  char buf[512];
  for (double end = gb_now() + 30; gb_now() < end;) {
    int n = pb_ask(pb_workerd_port, "GET /ready/echo HTTP/1.1\r\nHost: x\r\n"
                                    "Connection: close\r\n\r\n", buf, sizeof buf);
    if (n > 0 && strstr(buf, " 200 ") && strstr(buf, "echo"))
      return true;
    if (waitpid(pb_proc[PB_WORKERD].pid, NULL, WNOHANG) == pb_proc[PB_WORKERD].pid) {
      pb_proc[PB_WORKERD].pid = 0;
      pb_show_log(PB_WORKERD);
      gb_die("workerd exited at start");
    }
    struct timespec ts = {0, 50 * 1000 * 1000};
    nanosleep(&ts, NULL); /* waiting for another process to come up */
  }
  pb_show_log(PB_WORKERD);
  gb_die("workerd did not answer within 30 s");
}

/* ---- the raw WebSocket / HTTP generator ---------------------------------- */

enum pb_proto { PB_WS, PB_HTTP };

struct pb_rconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  struct pb_rpool *pool;
  char name[48];
  bool open, dead;
  uint8_t *rbuf;
  size_t rlen, rcap;
  uint64_t t0[PB_WMAX];
  unsigned head, tail; /* FIFO of send times: answers come in order */
};

struct pb_rpool {
  uv_loop_t *loop;
  enum pb_proto proto;
  struct pb_rconn *v;
  int n, n_open, n_failed, n_closed, next;
  uint8_t req[256]; /* the request: a masked frame or an HTTP GET */
  size_t req_len;
};

static void pb_rsend(struct pb_rconn *k);

static void pb_rfail(struct pb_rconn *k, const char *why) {
  if (!k->dead)
    fprintf(stderr, "  raw client %s: %s\n", k->name, why);
  if (!k->dead && !k->open)
    k->pool->n_failed++;
  k->dead = true;
  PB.errors++;
  uv_read_stop((uv_stream_t *)&k->tcp);
}

static void pb_ralloc(uv_handle_t *h, size_t sug, uv_buf_t *b) {
  (void)sug;
  struct pb_rconn *k = h->data;
  if (k->rcap - k->rlen < 16384) {
    k->rcap = k->rcap ? k->rcap * 2 : 32768;
    k->rbuf = realloc(k->rbuf, k->rcap);
    if (!k->rbuf)
      gb_die("out of memory");
  }
  *b = uv_buf_init((char *)k->rbuf + k->rlen, (unsigned)(k->rcap - k->rlen));
}

/* Length of one complete answer at the start of p (0: need more; -1: bad). */
static long pb_ws_frame(const uint8_t *p, size_t n, int *op) {
  if (n < 2)
    return 0;
  if (p[1] & 0x80)
    return -1; /* a server must not mask */
  size_t len = p[1] & 0x7f, hdr = 2;
  if (len == 126) {
    if (n < 4)
      return 0;
    len = (size_t)p[2] << 8 | p[3], hdr = 4;
  } else if (len == 127) {
    return -1; /* our answers are short */
  }
  *op = p[0] & 0x0f;
  return n >= hdr + len ? (long)(hdr + len) : 0;
}

static long pb_http_reply(const uint8_t *p, size_t n) {
  const char *end = memmem(p, n, "\r\n\r\n", 4);
  if (!end)
    return n > 8192 ? -1 : 0;
  if (n < 12 || memcmp(p + 9, "200", 3))
    return -1;
  const char *cl = memmem(p, (size_t)(end - (const char *)p), "ontent-Length:", 14);
  if (!cl)
    return -1;
  long body = atol(cl + 14), hdr = (long)(end + 4 - (const char *)p);
  if (body < 0 || body > 65536)
    return -1; /* our answers are a number or "echo" */
  return (size_t)(hdr + body) <= n ? hdr + body : 0;
}

/* Consumes complete answers; each sends the next request while running. */
static void pb_rparse(struct pb_rconn *k) {
  size_t off = 0;
  while (!k->dead && off < k->rlen) {
    const uint8_t *p = k->rbuf + off;
    size_t n = k->rlen - off;
    long used;
    int op = 1;
    if (!k->open && k->pool->proto == PB_WS) {
      const char *end = memmem(p, n, "\r\n\r\n", 4);
      if (!end)
        break;
      if (n < 12 || memcmp(p + 9, "101", 3))
        return pb_rfail(k, "upgrade refused");
      k->open = true;
      k->pool->n_open++;
      off += (size_t)(end + 4 - (const char *)p);
      continue;
    }
    used = k->pool->proto == PB_WS ? pb_ws_frame(p, n, &op) : pb_http_reply(p, n);
    if (used < 0 || op == 8)
      return pb_rfail(k, used < 0 ? "bad answer" : "closed by the server");
    if (used == 0)
      break;
    off += (size_t)used;
    if (op == 9 || op == 10)
      continue; /* ping/pong: not an answer */
    if (k->head == k->tail)
      return pb_rfail(k, "an answer nobody asked for");
    if (pb_record(k->t0[k->head++ % PB_WMAX]))
      pb_rsend(k);
  }
  memmove(k->rbuf, k->rbuf + off, k->rlen - off);
  k->rlen -= off;
}

static void pb_rread(uv_stream_t *s, ssize_t nread, const uv_buf_t *b) {
  (void)b;
  struct pb_rconn *k = s->data;
  if (nread < 0)
    return pb_rfail(k, uv_strerror((int)nread));
  k->rlen += (size_t)nread;
  pb_rparse(k);
}

static void pb_wdone(uv_write_t *w, int status) {
  struct pb_rconn *k = w->data;
  free(w);
  if (status)
    pb_rfail(k, uv_strerror(status));
}

static void pb_write(struct pb_rconn *k, const void *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
  if (n == (int)len)
    return;
  if (n < 0 && n != UV_EAGAIN)
    return pb_rfail(k, uv_strerror(n));
  if (n > 0)
    b.base += n, b.len -= (size_t)n;
  uv_write_t *w = malloc(sizeof *w + b.len); /* rare: the socket is full */
  if (!w)
    gb_die("out of memory");
  memcpy(w + 1, b.base, b.len);
  b.base = (char *)(w + 1);
  w->data = k;
  if (uv_write(w, (uv_stream_t *)&k->tcp, &b, 1, pb_wdone))
    free(w), pb_rfail(k, "write");
}

static void pb_rsend(struct pb_rconn *k) {
  if (k->dead)
    return;
  k->t0[k->tail++ % PB_WMAX] = uv_hrtime();
  PB.inflight++;
  pb_write(k, k->pool->req, k->pool->req_len);
}

static void pb_rconnect_next(struct pb_rpool *p);

static void pb_rconnected(uv_connect_t *req, int status) {
  struct pb_rconn *k = req->data;
  if (status) {
    pb_rfail(k, uv_strerror(status));
    return pb_rconnect_next(k->pool);
  }
  uv_tcp_nodelay(&k->tcp, 1);
  uv_read_start((uv_stream_t *)&k->tcp, pb_ralloc, pb_rread);
  if (k->pool->proto == PB_WS) {
    char up[512];
    int n = snprintf(up, sizeof up,
                     "GET /%s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", k->name);
    pb_write(k, up, (size_t)n);
  } else {
    k->open = true;
    k->pool->n_open++;
  }
  pb_rconnect_next(k->pool);
}

/* At most 128 connects at a time (the listen backlog). */
static void pb_rconnect_next(struct pb_rpool *p) {
  if (p->next >= p->n)
    return;
  struct pb_rconn *k = &p->v[p->next++];
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_port = htons((uint16_t)pb_workerd_port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  uv_tcp_init(p->loop, &k->tcp);
  k->tcp.data = k;
  k->creq.data = k;
  if (uv_tcp_connect(&k->creq, &k->tcp, (struct sockaddr *)&a, pb_rconnected))
    gb_die("uv_tcp_connect");
}

static bool pb_rall_open(void *arg) {
  struct pb_rpool *p = arg;
  return p->n_open + p->n_failed == p->n;
}

/* n connections to workerd; client i talks to the object "<name(i)>":
 * WebSocket: "i" frames (durable increment) or "e" (echo); HTTP: GET
 * /<object>/inc or /echo. */
static void pb_ropen(struct pb_rpool *p, uv_loop_t *loop, int n, enum pb_proto proto,
                     bool incr, const char *prefix, bool shared) {
  memset(p, 0, sizeof *p);
  p->loop = loop;
  p->n = n;
  p->proto = proto;
  p->v = calloc((size_t)n, sizeof *p->v);
  if (!p->v)
    gb_die("out of memory");
  for (int i = 0; i < n; i++) {
    p->v[i].pool = p;
    if (shared)
      snprintf(p->v[i].name, sizeof p->v[i].name, "%sshared", prefix);
    else
      snprintf(p->v[i].name, sizeof p->v[i].name, "%s%d", prefix, i);
  }
  if (proto == PB_WS) { /* one masked text frame, mask key fixed */
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    uint8_t c = incr ? 'i' : 'e';
    uint8_t f[7] = {0x81, 0x81, mask[0], mask[1], mask[2], mask[3], (uint8_t)(c ^ mask[0])};
    memcpy(p->req, f, sizeof f);
    p->req_len = sizeof f;
  } else {
    p->req_len = 0; /* per connection: built in pb_rmeasure */
  }
  for (int i = 0; i < 128 && i < n; i++)
    pb_rconnect_next(p);
  if (!gb_run_until(loop, pb_rall_open, p, 60) || p->n_failed)
    gb_die("%d of %d connections to workerd opened", p->n_open, n);
}

static void pb_rclosed(uv_handle_t *h) {
  struct pb_rconn *k = h->data;
  k->pool->n_closed++;
  free(k->rbuf);
}

static bool pb_rall_closed(void *arg) {
  struct pb_rpool *p = arg;
  return p->n_closed == p->next;
}

static void pb_rclose(struct pb_rpool *p) {
  for (int i = 0; i < p->next; i++)
    uv_close((uv_handle_t *)&p->v[i].tcp, pb_rclosed);
  if (!gb_run_until(p->loop, pb_rall_closed, p, 10))
    gb_die("raw connections did not close");
  free(p->v);
}

/* ---- lmz clients ----------------------------------------------------------- */

struct pb_lslot {
  struct pb_lclient *lc;
  uint64_t t0;
};
struct pb_lclient {
  lmzc_t *c;
  char target[48];
  struct pb_lslot slots[PB_WMAX];
};
static const lmz_value *pb_lchain;

static void pb_lissue(struct pb_lslot *s);

static void pb_lreply(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c, (void)v;
  struct pb_lslot *s = data;
  if (status || !ok)
    PB.errors++;
  if (pb_record(s->t0) && !status)
    pb_lissue(s);
}

static void pb_lissue(struct pb_lslot *s) {
  s->t0 = uv_hrtime();
  if (lmzc_call(s->lc->c, "COUNTER_DO", s->lc->target, pb_lchain, pb_lreply, s)) {
    PB.errors++;
    return;
  }
  PB.inflight++;
}

/* ---- one measurement -------------------------------------------------------- */

struct pb_load {
  uv_loop_t *loop;
  int n, window;
  double warm, secs;
  pid_t srv; /* whose CPU is the server's */
  struct pb_rpool *raw;     /* workerd, or */
  struct pb_lclient *lmz;   /* lmz (n clients) */
};

static void pb_tick(uv_timer_t *t) { (void)t; }

static struct pb_res pb_measure(const struct pb_load *L) {
  static struct pb_hist hist;
  memset(&hist, 0, sizeof hist);
  PB.hist = &hist;
  PB.inflight = PB.counted = PB.errors = 0;
  uint64_t t0 = uv_hrtime();
  PB.t_meas = t0 + (uint64_t)(L->warm * 1e9);
  PB.t_end = PB.t_meas + (uint64_t)(L->secs * 1e9);
  for (int i = 0; i < L->n; i++)
    for (int w = 0; w < L->window; w++) {
      if (L->raw)
        pb_rsend(&L->raw->v[i]);
      else
        pb_lissue(&L->lmz[i].slots[w]);
    }
  bool cpu_taken = false;
  double g0 = 0, s0 = 0, g1 = 0, s1 = 0;
  /* A system slower than one answer per request in flight within S (workerd
   * with 1,000 objects) gets its window extended, S at a time, up to 30 s,
   * so that its rate is measured, not reported as 0. */
  uint64_t step = PB.t_end - PB.t_meas, cap = PB.t_meas + 30 * (uint64_t)1e9;
  uint64_t want = L->warm > 0 ? (uint64_t)L->n * (uint64_t)L->window : 0;
  uv_timer_t tick; /* wakes the loop when no answer comes for a while */
  uv_timer_init(L->loop, &tick);
  uv_timer_start(&tick, pb_tick, 50, 50);
  while (PB.inflight > 0) {
    uv_run(L->loop, UV_RUN_ONCE);
    uint64_t now = uv_hrtime();
    if (!cpu_taken && now >= PB.t_meas)
      g0 = gb_self_cpu(), s0 = gb_proc_cpu(L->srv), cpu_taken = true;
    if (g1 == 0 && now + step / 10 >= PB.t_end && PB.counted < want && PB.t_end < cap)
      PB.t_end += step;
    if (now >= PB.t_end && g1 == 0)
      g1 = gb_self_cpu(), s1 = gb_proc_cpu(L->srv);
    if (now > PB.t_end + 30 * (uint64_t)1e9)
      gb_die("%llu requests never answered", (unsigned long long)PB.inflight);
  }
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(L->loop, UV_RUN_NOWAIT);
  double span = (double)(PB.t_end - PB.t_meas) / 1e9;
  if (span > L->secs * 1.01)
    fprintf(stderr, "  (measured over %.1f s: fewer answers than requests in flight "
                    "in %.1f s)\n", span, L->secs);
  struct pb_res r = {(double)PB.counted / span, pb_hist_q(&hist, 0.5),
                     pb_hist_q(&hist, 0.99), hist.max_ms, (g1 - g0) / span,
                     (s1 - s0) / span, PB.errors};
  if (r.errors)
    fprintf(stderr, "  %llu requests failed\n", (unsigned long long)r.errors);
  return r;
}

/* A whole load against lmz: n clients (own instances "<prefix><i>" or one
 * shared "<prefix>shared"), window w, one warm-up call each. */
static struct pb_res pb_lmz_load(uv_loop_t *loop, const struct gb_token *tok, int n,
                                 int window, const char *prefix, bool shared,
                                 const lmz_value *chain, double secs) {
  struct gb_pool pool;
  gb_pool_open(&pool, loop, n, tok, prefix);
  struct pb_lclient *lc = calloc((size_t)n, sizeof *lc);
  if (!lc)
    gb_die("out of memory");
  for (int i = 0; i < n; i++) {
    lc[i].c = pool.v[i].c;
    if (shared)
      snprintf(lc[i].target, sizeof lc[i].target, "%sshared", prefix);
    else
      snprintf(lc[i].target, sizeof lc[i].target, "%s%d", prefix, i);
    for (int w = 0; w < PB_WMAX; w++)
      lc[i].slots[w].lc = &lc[i];
  }
  pb_lchain = chain;
  struct pb_load L = {loop, n, 1, 0, 0.001, gb_srv.pid, NULL, lc};
  pb_measure(&L); /* activates every client's actor */
  L.window = window, L.warm = secs / 5, L.secs = secs;
  struct pb_res r = pb_measure(&L);
  if (pool.n_disconnected)
    gb_die("%d lmz clients were disconnected", pool.n_disconnected);
  gb_pool_close(&pool);
  free(lc);
  return r;
}

static struct pb_res pb_workerd_load(uv_loop_t *loop, enum pb_proto proto, int n,
                                     int window, const char *prefix, bool shared,
                                     bool incr, double secs) {
  if (proto == PB_HTTP && (!shared || window != 1))
    gb_die("the HTTP load is one shared object, one request in flight per connection");
  struct pb_rpool p;
  pb_ropen(&p, loop, n, proto, incr, prefix, shared);
  if (proto == PB_HTTP) /* one request text for all: the shared object */
    p.req_len = (size_t)snprintf((char *)p.req, sizeof p.req,
                                 "GET /%s/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                 p.v[0].name, incr ? "inc" : "echo");
  struct pb_load L = {loop, n, 1, 0, 0.001, pb_proc[PB_WORKERD].pid, &p, NULL};
  pb_measure(&L);
  L.window = window, L.warm = secs / 5, L.secs = secs;
  struct pb_res r = pb_measure(&L);
  pb_rclose(&p);
  return r;
}

/* ---- redis ------------------------------------------------------------------- */

static int pb_redis_port;

static inline bool pb_redis_start(void) {
  const char *bin = "/usr/bin/redis-server";
  if (access(bin, X_OK) || access("/usr/bin/redis-benchmark", X_OK)) {
    fprintf(stderr, "%s: redis-server/redis-benchmark not installed "
                    "(scripts/install-bench-deps.sh): Redis skipped\n", gb_scenario);
    return false;
  }
  pb_mkdir(PB_REDIS, "redis");
  /* a free port: bound, then released for redis (a small race, retried) */
  for (int attempt = 0; attempt < 3; attempt++) {
    int fd = pb_listen_any(&pb_redis_port);
    close(fd);
    char port[16];
    snprintf(port, sizeof port, "%d", pb_redis_port);
    char *argv[] = {(char *)bin, "--port", port, "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", pb_proc[PB_REDIS].dir, NULL};
    pb_spawn(PB_REDIS, argv, -1);
    char buf[64];
    for (double end = gb_now() + 10; gb_now() < end;) {
      if (pb_ask(pb_redis_port, "PING\r\n", buf, sizeof buf) > 0 && strstr(buf, "PONG"))
        return true;
      if (waitpid(pb_proc[PB_REDIS].pid, NULL, WNOHANG) == pb_proc[PB_REDIS].pid)
        break;
      struct timespec ts = {0, 20 * 1000 * 1000};
      nanosleep(&ts, NULL); /* waiting for another process to come up */
    }
    kill(pb_proc[PB_REDIS].pid, SIGKILL);
    waitpid(pb_proc[PB_REDIS].pid, NULL, 0);
    pb_proc[PB_REDIS].pid = 0;
  }
  pb_show_log(PB_REDIS);
  gb_die("redis-server did not start");
}

/* redis-benchmark INCR: `clients` connections, `pipeline` commands in
 * flight each, `requests` in all. Rate and percentiles from its CSV;
 * gen_cpu = redis-benchmark's CPU seconds per second. */
static inline struct pb_res pb_redis_incr(int clients, int pipeline, long requests) {
  char cmd[512], line[512];
  snprintf(cmd, sizeof cmd,
           "exec /usr/bin/redis-benchmark -h 127.0.0.1 -p %d -c %d -P %d -n %ld "
           "-t incr --csv 2>&1",
           pb_redis_port, clients, pipeline, requests);
  double c0 = gb_proc_cpu(pb_proc[PB_REDIS].pid), t0 = gb_now();
  struct rusage ru0, ru1;
  getrusage(RUSAGE_CHILDREN, &ru0);
  FILE *f = popen(cmd, "r");
  struct pb_res r = {0};
  while (f && fgets(line, sizeof line, f)) {
    double rps, avg, mn, p50, p95, p99;
    if (sscanf(line, "\"INCR\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\"", &rps, &avg,
               &mn, &p50, &p95, &p99) == 6)
      r.rate = rps, r.p50 = p50, r.p99 = p99;
  }
  if (!f || pclose(f) != 0 || r.rate <= 0)
    gb_die("redis-benchmark failed or printed no INCR line");
  getrusage(RUSAGE_CHILDREN, &ru1);
  double dt = gb_now() - t0;
  double gen = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
  r.gen_cpu = gen / dt;
  r.srv_cpu = (gb_proc_cpu(pb_proc[PB_REDIS].pid) - c0) / dt;
  return r;
}

/* ---- the fsync floor ---------------------------------------------------------- */

/* Median time (ms) of one fdatasync after a 128-byte append to a
 * preallocated file in $TMPDIR (where lmzd's and workerd's data live): no
 * durable answer can come sooner, and a shared disk moves it by 10x. */
static inline double pb_fsync_floor_ms(int n) {
  const char *tmp = getenv("TMPDIR");
  char path[4200];
  snprintf(path, sizeof path, "%s/lmz-bench-fsync.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  if (fd < 0)
    gb_die("mkstemp: %s", strerror(errno));
  unlink(path);
  static double v[1000];
  n = n > 1000 ? 1000 : n;
  char rec[128];
  memset(rec, 'x', sizeof rec);
  if (posix_fallocate(fd, 0, (off_t)sizeof rec * n) || fdatasync(fd))
    gb_die("fallocate/fdatasync: %s", strerror(errno));
  for (int i = 0; i < n; i++) {
    double t = gb_now();
    if (pwrite(fd, rec, sizeof rec, (off_t)sizeof rec * i) != (ssize_t)sizeof rec ||
        fdatasync(fd))
      gb_die("write/fdatasync: %s", strerror(errno));
    v[i] = (gb_now() - t) * 1e3;
  }
  close(fd);
  for (int i = 1; i < n; i++) /* insertion sort: n is small */
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      double x = v[j];
      v[j] = v[j - 1], v[j - 1] = x;
    }
  return v[n / 2];
}

/* ---- results ---------------------------------------------------------------- */

/* <sys>.<what>.rate / .p50_ms / .p99_ms with CPU fields. */
static void pb_emit_res(const char *sys, const char *what, int clients, int window,
                        const struct pb_res *r, double rate_target) {
  char metric[128], extra[384];
  snprintf(extra, sizeof extra,
           "\"system\":\"%s\",\"clients\":%d,\"window\":%d,\"server_cpu\":%.2f,"
           "\"generator_cpu\":%.2f,\"errors\":%llu,\"max_ms\":%.3f,\"loadavg\":%.2f",
           sys, clients, window, r->srv_cpu, r->gen_cpu, (unsigned long long)r->errors,
           r->max, gb_loadavg());
  snprintf(metric, sizeof metric, "%s.%s.rate", sys, what);
  gb_emit(metric, r->rate, "calls/s", rate_target, true, extra);
  snprintf(metric, sizeof metric, "%s.%s.p50_ms", sys, what);
  gb_emit(metric, r->p50, "ms", 0, false, NULL);
  snprintf(metric, sizeof metric, "%s.%s.p99_ms", sys, what);
  gb_emit(metric, r->p99, "ms", 0, false, NULL);
  fprintf(stderr, "    (%s: server %.2f CPU, generator %.2f CPU)\n", sys, r->srv_cpu,
          r->gen_cpu);
}

static void pb_emit_ratio(const char *metric, double a, double b, double target) {
  if (a > 0 && b > 0)
    gb_emit(metric, a / b, "x", target, true, NULL);
}

#endif
