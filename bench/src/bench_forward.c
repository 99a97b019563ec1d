/* bench_forward - cross-node calls through a forwarding node, on a real
 * 3-node cluster of lmzd processes on loopback (bench/src/cluster_bench.h).
 *
 * Node A is a node that is not the Raft leader; 512 COUNTER_DO actors are
 * created through A and located (StatusRequest kind 2); node B is the other
 * node owning the most of them. Then (each measured S seconds in total, in
 * rounds that interleave the paths so machine noise hits them alike):
 *   forward.calls_per_s   echo(k) calls sent to A for actors owned by B,
 *                         pipelined (--conns connections to A, --window calls
 *                         in flight on each): A forwards to B, B answers A, A
 *                         answers us. Every answer is checked (== k).
 *   direct.calls_per_s    the same calls sent straight to B (no forward).
 *   forward.latency_*     one call in flight through A: p50 / p99.
 *   direct.latency_*      one call in flight straight to B.
 *   tcp_floor.rtt_*       a plain loopback TCP round trip of the same sizes
 *                         (request = the sealed Call record, reply = the
 *                         sealed Result record): a thread echoing on a
 *                         socket, no encryption, no runtime. The floor.
 *   *.cpu_us_per_call     CPU time (3 nodes + client) per call, throughput.
 * CPU used by each node and by this client during the forwarded throughput
 * rounds is printed on stderr, to say what dominates when a target is missed.
 *
 * Targets (cluster issue): forwarded throughput >= 300,000 calls/s;
 * forwarded p50 latency <= 2x the raw round-trip floor.
 * --seconds S: forwarded throughput, direct throughput and the latencies
 * each take S seconds (default 3; --quick 0.4), in 5 rounds (--quick 2);
 * rates are the medians over the rounds. Exit 0 when measured; 1 when the cluster did not start or
 * an answer was wrong; 2 for bad usage. */
#define _GNU_SOURCE
#include "cluster_bench.h"

#define SCEN "forward"
#define N_INST 512
#define DECODE_RESET 4096

struct fwd {
  struct cb_cluster cl;
  int a, b; /* node indexes: entry (forwarder) and owner */
  char names[N_INST][16];
  int owned[N_INST], n_owned; /* instances owned by B */
  lmz_buf chains[N_INST];     /* echo(k) for owned[k] */
  struct cb_conn *conns;      /* the pipe's connections */
  lmz_arena *arena;
  uint32_t decoded;
  size_t req_len, rep_len; /* wire sizes of one call / one result */
};

static struct fwd F;

/* The call id picks the actor (id % n_owned), so the answer is known. */
static int issue(void *arg, int i) {
  struct fwd *f = arg;
  struct cb_conn *c = &f->conns[i];
  uint32_t k = (uint32_t)(c->next_id % (uint64_t)f->n_owned);
  return cb_conn_call(c, "COUNTER_DO", f->names[f->owned[k]], &f->chains[k]) ? 0 : LMZ_ENOMEM;
}

static int check(struct fwd *f, uint64_t id, const Lmz__Result *r) {
  char why[256];
  if (!cb_result_ok(r)) {
    cb_result_describe(r, why, sizeof why);
    fprintf(stderr, "forward: call %llu failed: %s\n", (unsigned long long)id, why);
    return -1;
  }
  if (++f->decoded % DECODE_RESET == 0)
    lmz_arena_reset(f->arena);
  lmz_value *v = NULL;
  double want = (double)(id % (uint64_t)f->n_owned);
  if (lmz_bin_decode(f->arena, r->value.data, r->value.len, NULL, &v, NULL) ||
      lmz_typeof(v) != LMZ_T_NUMBER || lmz_get_number(v) != want) {
    fprintf(stderr, "forward: call %llu: wrong answer (want %.0f)\n",
            (unsigned long long)id, want);
    return -1;
  }
  return 0;
}

static int done(void *arg, int i, const Lmz__Result *r) {
  (void)i;
  return check(arg, r->call_id, r);
}

/* ---- setup: actors through A, owners located ----------------------------- */

static int create_actors(struct fwd *f) {
  struct cb_conn c;
  lmz_buf chain = LMZ_BUF_INIT;
  int rv = cb_conn_open(&c, f->cl.n[f->a].addr, f->cl.key, 5000);
  if (!rv)
    rv = cb_chain(&chain, "get", NULL);
  for (int k = 0; !rv && k < N_INST; k++) {
    snprintf(f->names[k], sizeof f->names[k], "fw%d", k);
    rv = cb_conn_call(&c, "COUNTER_DO", f->names[k], &chain) ? 0 : LMZ_ENOMEM;
  }
  for (int k = 0; !rv && k < N_INST; k++) {
    Lmz__Frame *fr = NULL;
    if (!(rv = cb_conn_result(&c, &fr, 15000))) {
      char why[256] = "";
      if (!cb_result_ok(fr->result))
        cb_result_describe(fr->result, why, sizeof why);
      rv = why[0] ? -1 : 0;
      if (rv)
        fprintf(stderr, "forward: creating actors: %s\n", why);
      lmz_frame_free(fr);
    }
  }
  if (rv)
    fprintf(stderr, "forward: creating %d actors through node %d failed (%s)\n",
            N_INST, f->a + 1, c.err);
  lmz_buf_free(&chain);
  cb_conn_close(&c);
  return rv;
}

/* Locates every actor through A; B = the other node owning the most. */
static int locate_owners(struct fwd *f) {
  char err[LMZ_ERRMSG_LEN], js[1024];
  int owner[N_INST], count[CB_NODES + 1] = {0};
  lmz_rpc_client *rc;
  if (lmz_rpc_connect(&rc, f->cl.n[f->a].addr, f->cl.key, 3000, err)) {
    fprintf(stderr, "forward: %s\n", err);
    return -1;
  }
  for (int k = 0; k < N_INST; k++) {
    if (cb_status_ask(rc, 2, "COUNTER_DO", f->names[k], js, sizeof js) ||
        !strstr(js, "\"placed\":true")) {
      fprintf(stderr, "forward: locate %s failed (%s)\n", f->names[k], js);
      lmz_rpc_close(rc);
      return -1;
    }
    owner[k] = (int)cb_json_num(js, "node");
    if (owner[k] >= 1 && owner[k] <= CB_NODES)
      count[owner[k]]++;
  }
  lmz_rpc_close(rc);
  f->b = -1;
  for (int i = 0; i < CB_NODES; i++)
    if (i != f->a && (f->b < 0 || count[i + 1] > count[f->b + 1]))
      f->b = i;
  for (int k = 0; k < N_INST; k++)
    if (owner[k] == f->b + 1)
      f->owned[f->n_owned++] = k;
  fprintf(stderr, "forward: %d actors placed: node1 %d, node2 %d, node3 %d; "
                  "entry A = node %d, owner B = node %d (%d actors)\n",
          N_INST, count[1], count[2], count[3], f->a + 1, f->b + 1, f->n_owned);
  for (int k = 0; k < f->n_owned; k++) {
    double arg = k;
    if (cb_chain(&f->chains[k], "echo", &arg))
      return -1;
  }
  return f->n_owned >= 8 ? 0 : -1;
}

/* ---- measurements --------------------------------------------------------- */

#define MAX_CONNS 16
#define MAX_ROUNDS 9

/* Pipelined connections to one node. */
struct target {
  int node;
  struct cb_conn conns[MAX_CONNS];
  int n;
  struct cb_pipe p;
};

static int target_open(struct target *t, int node, int n_conns, uint32_t window) {
  t->node = node;
  t->p = (struct cb_pipe){t->conns, n_conns, window, issue, done, &F};
  for (t->n = 0; t->n < n_conns; t->n++)
    if (cb_conn_open(&t->conns[t->n], F.cl.n[node].addr, F.cl.key, 5000)) {
      fprintf(stderr, "forward: connect to node %d: %s\n", node + 1, t->conns[t->n].err);
      t->n++;
      return -1;
    }
  return 0;
}

static void target_close(struct target *t) {
  for (int i = 0; i < t->n; i++)
    cb_conn_close(&t->conns[i]);
  t->n = 0;
}

static int target_run(struct target *t, double secs, double *rate, uint64_t *n) {
  F.conns = t->conns;
  return cb_pipe_run(&t->p, secs, 15, rate, n);
}

/* Adds the CPU used between a and b to sum (deltas; sum starts zeroed). */
static void cpu_add(struct cb_cpu *sum, const struct cb_cpu *a, const struct cb_cpu *b) {
  for (int i = 0; i < CB_NODES; i++)
    sum->node[i] += b->node[i] - a->node[i];
  sum->self += b->self - a->self;
  sum->sys_busy += b->sys_busy - a->sys_busy;
  sum->sys_total += b->sys_total - a->sys_total;
  sum->t += b->t - a->t;
}

/* Rounds of S/rounds seconds to A then to B, interleaved so that machine
 * noise hits both alike; each rate is the median over the rounds. cpu[k]:
 * CPU of the forwarded rounds (% of a core per node, client last);
 * us_per_call[k]: CPU microseconds (all nodes + client) per call, k = 0
 * forwarded, 1 direct. */
static int throughput(struct target *fw, struct target *dr, double secs, int rounds,
                      double rate[2], double cpu[CB_NODES + 1], double *sys,
                      double us_per_call[2]) {
  double r[2][MAX_ROUNDS], warm, pct[CB_NODES + 1];
  struct cb_cpu zero = {{0}, 0, 0, 0, 0}, sum[2] = {zero, zero}, s0, s1;
  uint64_t n[2] = {0, 0}, got;
  struct target *t[2] = {fw, dr};
  if (target_run(fw, secs / 5, &warm, NULL) || target_run(dr, secs / 5, &warm, NULL))
    return -1; /* warm-up: connections, buffers, the forwarder's peer link */
  for (int i = 0; i < rounds; i++)
    for (int k = 0; k < 2; k++) {
      cb_cpu_snap(&F.cl, &s0);
      if (target_run(t[k], secs / rounds, &r[k][i], &got))
        return -1;
      cb_cpu_snap(&F.cl, &s1);
      cpu_add(&sum[k], &s0, &s1);
      n[k] += got;
    }
  *sys = cb_cpu_pct(&zero, &sum[0], cpu);
  for (int k = 0; k < 2; k++) {
    cb_cpu_pct(&zero, &sum[k], pct);
    double core_s = 0;
    for (int i = 0; i <= CB_NODES; i++)
      core_s += pct[i] / 100 * sum[k].t;
    us_per_call[k] = n[k] ? core_s / (double)n[k] * 1e6 : 0;
    rate[k] = cb_quantile(r[k], (size_t)rounds, .5);
    fprintf(stderr, "forward: %s calls/s over %d rounds: min %.0f, median %.0f, max %.0f; "
                    "CPU %.2f us per call (nodes + client)\n", k ? "direct" : "forwarded",
            rounds, r[k][0], rate[k], r[k][rounds - 1], us_per_call[k]);
  }
  return 0;
}

struct samples {
  double *v;
  size_t n, cap;
};

/* One call in flight on c for S seconds (at least 100 calls), round-trip
 * times in microseconds appended to s (NULL: a warm-up, not recorded). */
static int lat_chunk(struct cb_conn *c, double secs, struct samples *s) {
  double end = cb_now() + secs;
  int rv = 0;
  for (size_t i = 0; !rv && (!s || s->n < s->cap) && (i < 100 || cb_now() < end); i++) {
    uint32_t k = (uint32_t)(c->next_id % (uint64_t)F.n_owned);
    double t0 = cb_now();
    Lmz__Frame *fr = NULL;
    if (!cb_conn_call(c, "COUNTER_DO", F.names[F.owned[k]], &F.chains[k]))
      rv = LMZ_ENOMEM;
    if (rv || (rv = cb_conn_flush(c)) || (rv = cb_conn_result(c, &fr, 10000)))
      break;
    double us = (cb_now() - t0) * 1e6;
    rv = check(&F, fr->result->call_id, fr->result);
    if (!F.rep_len) { /* the wire sizes, for the floor */
      Lmz__Frame req;
      Lmz__Call call;
      Lmz__Identity callee;
      Lmz__CallContext ctx;
      cb_call_frame(&req, &call, &callee, &ctx, fr->result->call_id, "COUNTER_DO",
                    F.names[F.owned[k]], &F.chains[k]);
      F.req_len = lmz_secure_sealed_len(lmz_frame_encoded_len(&req));
      F.rep_len = lmz_secure_sealed_len(lmz_frame_encoded_len(fr));
    }
    lmz_frame_free(fr);
    if (s)
      s->v[s->n++] = us;
  }
  if (rv)
    fprintf(stderr, "forward: latency run: %s\n", c->err[0] ? c->err : "wrong answer");
  return rv;
}

/* ---- the floor: plain loopback TCP echo of the same sizes ----------------- */

struct echo_srv {
  int lfd, cfd; /* listener; our client end */
  size_t req, rep;
  pthread_t th;
};

static int io_all(int fd, uint8_t *p, size_t n, bool rd) {
  while (n) {
    ssize_t r = rd ? recv(fd, p, n, 0) : send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0 && !(r < 0 && errno == EINTR))
      return -1;
    if (r > 0)
      p += r, n -= (size_t)r;
  }
  return 0;
}

static void *echo_main(void *arg) {
  struct echo_srv *s = arg;
  int fd = accept(s->lfd, NULL, NULL), one = 1;
  uint8_t buf[8192] = {0};
  if (fd < 0)
    return NULL;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (io_all(fd, buf, s->req, true) == 0 && io_all(fd, buf, s->rep, false) == 0) {
  }
  close(fd);
  return NULL;
}

/* A thread echoing rep bytes for every req bytes, and our connection to it. */
static int floor_open(struct echo_srv *s) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->req = F.req_len, s->rep = F.rep_len, s->cfd = -1;
  s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s->req > 8192 || s->rep > 8192 || s->lfd < 0 ||
      bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) || listen(s->lfd, 1) ||
      getsockname(s->lfd, (struct sockaddr *)&sa, &len) ||
      pthread_create(&s->th, NULL, echo_main, s)) {
    if (s->lfd >= 0)
      close(s->lfd);
    return -1;
  }
  int one = 1;
  s->cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(s->cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return connect(s->cfd, (struct sockaddr *)&sa, sizeof sa) ? -1 : 0;
}

static void floor_close(struct echo_srv *s) {
  close(s->cfd); /* the echo thread sees EOF and ends (or accept fails) */
  shutdown(s->lfd, SHUT_RDWR);
  pthread_join(s->th, NULL);
  close(s->lfd);
}

static int floor_chunk(struct echo_srv *e, double secs, struct samples *s) {
  uint8_t buf[8192] = {1};
  double end = cb_now() + secs;
  for (size_t i = 0; (!s || s->n < s->cap) && (i < 100 || cb_now() < end); i++) {
    double t0 = cb_now();
    if (io_all(e->cfd, buf, e->req, false) || io_all(e->cfd, buf, e->rep, true))
      return -1;
    if (s)
      s->v[s->n++] = (cb_now() - t0) * 1e6;
  }
  return 0;
}

/* Latency: one call in flight through A, straight to B, and the floor, in
 * interleaved chunks of S/rounds; s[0..2] = forward, direct, floor. */
static int latencies(double secs, int rounds, struct samples s[3]) {
  struct cb_conn c[2];
  struct echo_srv e;
  int rv = cb_conn_open(&c[0], F.cl.n[F.a].addr, F.cl.key, 5000);
  int rv2 = cb_conn_open(&c[1], F.cl.n[F.b].addr, F.cl.key, 5000);
  if (rv || rv2 || lat_chunk(&c[0], 0, NULL) || lat_chunk(&c[1], 0, NULL) ||
      floor_open(&e)) {
    cb_conn_close(&c[0]), cb_conn_close(&c[1]);
    return -1;
  }
  rv = floor_chunk(&e, 0, NULL);
  for (int i = 0; !rv && i < rounds; i++) {
    if (!(rv = lat_chunk(&c[0], secs / rounds, &s[0])) &&
        !(rv = lat_chunk(&c[1], secs / rounds, &s[1])))
      rv = floor_chunk(&e, secs / rounds, &s[2]);
  }
  floor_close(&e);
  cb_conn_close(&c[0]), cb_conn_close(&c[1]);
  return rv;
}

/* ---- report ---------------------------------------------------------------- */

static void diagnose(double fwd_rate, double dir_rate, const double cpu[CB_NODES + 1],
                     double sys, const double us_call[2], double p50f, double p50d,
                     double floor50) {
  fprintf(stderr, "\nforward: during the forwarded run: node A (forwarder) %.0f%%, "
                  "node B (owner) %.0f%%, node C %.0f%% of a core, this client %.0f%%; "
                  "machine %.0f%% busy (%ld cores, shared)\n",
          cpu[F.a], cpu[F.b], cpu[3 - F.a - F.b], cpu[CB_NODES], sys,
          sysconf(_SC_NPROCESSORS_ONLN));
  if (fwd_rate < 300000) {
    const char *who = cpu[F.a] >= 85 ? "the forwarding node's single loop thread is "
                                       "saturated (A is CPU-bound)"
                      : sys >= 85    ? "the machine is saturated: the client, A and B "
                                       "share 2 cores"
                                     : "neither node is CPU-bound: waiting dominates "
                                       "(batching/latency, not CPU)";
    fprintf(stderr, "forward: throughput target missed (%.0f/s, %.2fx of direct %.0f/s): %s; "
                    "a forwarded call costs %.2f us of CPU, a direct one %.2f us (%.1fx)\n",
            fwd_rate, dir_rate > 0 ? fwd_rate / dir_rate : 0, dir_rate, who, us_call[0],
            us_call[1], us_call[1] > 0 ? us_call[0] / us_call[1] : 0);
  }
  if (p50f > 2 * floor50)
    fprintf(stderr, "forward: latency target missed: p50 %.0f us = floor %.0f us + "
                    "direct-call overhead %.0f us (one hop: 2 AEAD records + runtime "
                    "turn) + forwarding %.0f us (a second hop A->B->A)\n",
            p50f, floor50, p50d - floor50, p50f - p50d);
}

int main(int argc, char **argv) {
  struct cb_args a = cb_parse_args(argc, argv,
      "usage: bench_forward [--quick] [--seconds S] [--conns N] [--window W]\n"
      "  S: measured seconds of each of throughput forwarded, throughput direct\n"
      "     and latency (forwarded, direct and the TCP floor interleaved in\n"
      "     rounds); default 3, --quick 0.4\n"
      "  N: connections to the entry node (default 2), W: calls in flight per\n"
      "     connection (default 256)\n");
  double secs = a.seconds > 0 ? a.seconds : a.quick ? 0.4 : 3;
  int n_conns = a.conns > 0 && a.conns <= MAX_CONNS ? a.conns : 2;
  uint32_t window = a.window > 0 ? (uint32_t)a.window : 256;
  int rounds = a.quick ? 2 : 5;
  size_t cap = a.quick ? 4000 : 200000;
  if (cb_cluster_start(&F.cl))
    return 1;
  int leader = cb_leader(&F.cl);
  F.a = leader == 0 ? 1 : 0;
  F.arena = lmz_arena_new();
  if (leader < 0 || !F.arena || create_actors(&F) || locate_owners(&F))
    return 1;
  fprintf(stderr, "forward: leader node %d; %.1f s per measurement in %d rounds, "
                  "%d conns x window %u\n", leader + 1, secs, rounds, n_conns, window);
  struct target fw, dr;
  double rate[2] = {0, 0}, cpu[CB_NODES + 1] = {0}, sys = 0, us_call[2] = {0, 0};
  struct samples s[3];
  for (int k = 0; k < 3; k++)
    if (!(s[k] = (struct samples){malloc(cap * sizeof(double)), 0, cap}).v)
      return 1;
  int rv = target_open(&fw, F.a, n_conns, window) || target_open(&dr, F.b, n_conns, window) ||
           throughput(&fw, &dr, secs, rounds, rate, cpu, &sys, us_call);
  target_close(&fw), target_close(&dr);
  if (rv || latencies(secs, rounds, s) || !s[0].n || !s[1].n || !s[2].n)
    return 1;
  double f50 = cb_quantile(s[0].v, s[0].n, .5), f99 = cb_quantile(s[0].v, s[0].n, .99);
  double d50 = cb_quantile(s[1].v, s[1].n, .5), d99 = cb_quantile(s[1].v, s[1].n, .99);
  double t50 = cb_quantile(s[2].v, s[2].n, .5), t99 = cb_quantile(s[2].v, s[2].n, .99);
  fprintf(stderr, "forward: request %zu B, reply %zu B on the wire; %zu/%zu/%zu "
                  "latency samples\n", F.req_len, F.rep_len, s[0].n, s[1].n, s[2].n);
  cb_emit(SCEN, "forward.calls_per_s", rate[0], "calls/s", 300000, true);
  cb_emit(SCEN, "direct.calls_per_s", rate[1], "calls/s", 0, true);
  cb_emit(SCEN, "forward.vs_direct_throughput", rate[0] / rate[1], "x", 0, true);
  cb_emit(SCEN, "forward.latency_p50_us", f50, "us", 0, false);
  cb_emit(SCEN, "forward.latency_p99_us", f99, "us", 0, false);
  cb_emit(SCEN, "direct.latency_p50_us", d50, "us", 0, false);
  cb_emit(SCEN, "direct.latency_p99_us", d99, "us", 0, false);
  cb_emit(SCEN, "tcp_floor.rtt_p50_us", t50, "us", 0, false);
  cb_emit(SCEN, "tcp_floor.rtt_p99_us", t99, "us", 0, false);
  cb_emit(SCEN, "forward.p50_vs_floor", f50 / t50, "x", 2.0, false);
  cb_emit(SCEN, "forward.p50_vs_direct", f50 / d50, "x", 0, false);
  cb_emit(SCEN, "direct.p50_vs_floor", d50 / t50, "x", 0, false);
  cb_emit(SCEN, "forward.cpu_us_per_call", us_call[0], "us", 0, false);
  cb_emit(SCEN, "direct.cpu_us_per_call", us_call[1], "us", 0, false);
  diagnose(rate[0], rate[1], cpu, sys, us_call, f50, d50, t50);
  for (int k = 0; k < 3; k++)
    free(s[k].v);
  for (int k = 0; k < F.n_owned; k++)
    lmz_buf_free(&F.chains[k]);
  lmz_arena_free(F.arena);
  cb_cluster_stop(&F.cl);
  return 0;
}
