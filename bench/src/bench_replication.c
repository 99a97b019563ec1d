/* bench_replication - what replicated actor storage (issue 9, DESIGN.md 4.1)
 * costs, on a real 3-node cluster of lmzd processes on loopback
 * (bench/src/cluster_bench.h), R = 1 against R = 3 in the same run.
 *
 * For each R (a fresh cluster whose configs say cluster.replication.factor
 * = R; storage.sync on):
 *   rR.turns_per_s       durable turns/s: increment() on 256 COUNTER_DO
 *                        actors, pipelined (2 connections to each node,
 *                        --window calls in flight on each; calls to actors
 *                        owned elsewhere are forwarded); every answer
 *                        checked
 *   rR.hot_calls_per_s   one actor's durable calls/s: increment() on one
 *                        actor, pipelined on 2 connections to its owner
 *   rR.gate_p50_us/_p99  one increment() in flight to its owner at a time:
 *                        the client's round trip, the turn and the output
 *                        gate (local fsync; R = 3: and the backups' acks)
 *   rR.floor_fsync_p50_us  right after that run, on the same disk: one
 *                        fdatasync of a 128-byte append to a preallocated
 *                        file (a WAL append at best), p50
 *   rR.floor_rtt_p50_us  one loopback TCP round trip of 128 bytes, p50
 *   rR.floor_gate_p50_us their sum: a durable reply cannot come sooner
 *                        (measured next to each run: a shared disk's fsync
 *                        time drifts by 10x within a minute)
 *   r3.floor_shared_disk_p50_us  the same for 3 copies on this ONE disk: 3
 *                        threads fdatasync their own files, the 2 "backups"
 *                        starting half a round trip after the "owner" and
 *                        answering half a round trip after their fsync,
 *                        plus one round trip. On one machine the three
 *                        nodes' fsyncs meet in one filesystem journal
 *                        (measured: ~2.3x one fsync), which the floor above
 *                        (the issue's: one fsync + one round trip) leaves
 *                        out. r3.gate_p50_vs_shared_disk_floor has no
 *                        target; it says how much of the gate is lmz's.
 * Targets (issue 9): r3.turns_vs_r1 >= 0.5; r3.hot_calls_per_s >= 50,000;
 * rR.gate_p50_vs_floor <= 2. r3.factor is the factor `lmz status` reports
 * for the R = 3 cluster; below 3 (this lmzd does not replicate, so R = 3 ran
 * like R = 1) the R = 3 targets are left out rather than "met", and stderr
 * says so.
 * --seconds S: each measurement takes S seconds (default 3; --quick 0.5);
 * --window N: calls in flight per connection (default 256).
 * Exit 0 when measured; 1 when a cluster did not start or a call failed;
 * 2 for bad usage. */
#define _GNU_SOURCE
#include "cluster_bench.h"

#define SCEN "replication"
#define ACTORS 256
#define MAX_SAMPLES 200000

struct load {
  struct cb_conn *conns;
  lmz_buf inc; /* increment(1) */
  char names[ACTORS][16];
  const char *hot; /* NULL: all actors in turn */
  uint64_t k, errors;
  char first_error[256];
};

struct result {
  double turns_s, hot_s, p50_us, p99_us;
  double fsync_us, rtt_us; /* the floor, measured right after this R's run */
  double shared_us;        /* R = 3: the floor of 3 copies on this one disk */
  unsigned long long factor; /* as lmz status reports it */
};

static struct cb_cluster CL;
static struct cb_args A;

/* ---- a cluster with a given replication factor --------------------------- */

/* Inserts "replication": {"factor": r} at the head of the cluster section. */
static int patch_config(const char *path, int r) {
  char buf[16384], out[16600];
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  if (f)
    fclose(f);
  buf[n] = '\0';
  char *at = strstr(buf, "\"cluster\": {");
  if (!at || n == sizeof buf - 1)
    return -1;
  at += strlen("\"cluster\": {");
  snprintf(out, sizeof out, "%.*s\"replication\": {\"factor\": %d}, %s", (int)(at - buf), buf,
           r, at);
  f = fopen(path, "w");
  if (!f || fputs(out, f) < 0) {
    if (f)
      fclose(f);
    return -1;
  }
  return fclose(f) ? -1 : 0;
}

/* Like cb_cluster_fresh(), with replication.factor = r in every config. */
static int fresh_with_factor(int r) {
  for (int attempt = 0; attempt < 2; attempt++) {
    cb_kill_all();
    for (int i = 0; i < CB_NODES; i++)
      if (CL.n[i].data[0])
        nftw(CL.n[i].data, cb_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (cb_prepare(&CL))
      return -1;
    for (int i = 0; i < CB_NODES; i++)
      if (patch_config(CL.n[i].cfg, r) || cb_spawn(&CL, i))
        return -1;
    if (cb_wait_ready(&CL, CB_NODES, 30) == 0)
      return 0;
    fprintf(stderr, "replication: %s\n", attempt ? "giving up" : "retrying with fresh ports");
  }
  return -1;
}

static int cluster_init(void) {
  memset(&CL, 0, sizeof CL);
  if (sodium_init() < 0 || cb_find_binaries(&CL))
    return -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(CL.dir, sizeof CL.dir, "%s/lmz-rbench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(CL.dir)) {
    CL.dir[0] = '\0';
    return -1;
  }
  cb_install_handlers(&CL);
  lmz_keyfile_generate(CL.key);
  return 0;
}

/* The index of the node owning `name` (0..2), or -1. */
static int owner_of(const char *name) {
  char err[LMZ_ERRMSG_LEN], js[4096];
  lmz_rpc_client *rc;
  if (lmz_rpc_connect(&rc, CL.n[0].addr, CL.key, 3000, err))
    return -1;
  int rv = cb_status_ask(rc, 2, "COUNTER_DO", name, js, sizeof js);
  lmz_rpc_close(rc);
  unsigned long long n = rv || !strstr(js, "\"placed\":true") ? 0 : cb_json_num(js, "node");
  return n >= 1 && n <= CB_NODES ? (int)n - 1 : -1;
}

/* ---- the measurements ---------------------------------------------------- */

static int issue(void *arg, int i) {
  struct load *l = arg;
  const char *name = l->hot ? l->hot : l->names[l->k % ACTORS];
  l->k++;
  return cb_conn_call(&l->conns[i], "COUNTER_DO", name, &l->inc) ? 0 : LMZ_ENOMEM;
}

static int done(void *arg, int i, const Lmz__Result *r) {
  struct load *l = arg;
  (void)i;
  if (!cb_result_ok(r) && l->errors++ == 0)
    cb_result_describe(r, l->first_error, sizeof l->first_error);
  return 0;
}

/* n_conns connections: to node `only` (>= 0), else spread over all nodes. */
static int open_conns(struct cb_conn *cs, int n_conns, int only) {
  for (int i = 0; i < n_conns; i++) {
    int node = only >= 0 ? only : i % CB_NODES;
    if (cb_conn_open(&cs[i], CL.n[node].addr, CL.key, 5000)) {
      fprintf(stderr, "replication: connect to node %d: %s\n", node + 1, cs[i].err);
      for (int k = 0; k <= i; k++)
        cb_conn_close(&cs[k]);
      return -1;
    }
  }
  return 0;
}

/* Pipelined increments for `secs` (after a warm-up that also claims the
 * actors); *rate = answers/s. */
static int pipelined(struct load *l, int n_conns, int only, double secs, double *rate) {
  struct cb_conn cs[8];
  if (open_conns(cs, n_conns, only))
    return -1;
  l->conns = cs;
  struct cb_pipe p = {cs, n_conns, (uint32_t)(A.window > 0 ? A.window : 256), issue, done, l};
  double warm;
  int rv = cb_pipe_run(&p, secs / 4 > 0.2 ? secs / 4 : 0.2, 30, &warm, NULL);
  if (!rv)
    rv = cb_pipe_run(&p, secs, 30, rate, NULL);
  for (int i = 0; i < n_conns; i++)
    cb_conn_close(&cs[i]);
  if (!rv && l->errors)
    fprintf(stderr, "replication: %llu calls failed, the first: %s\n",
            (unsigned long long)l->errors, l->first_error);
  return rv || l->errors ? -1 : 0;
}

/* One increment in flight at a time to the owner of `name`: p50/p99 (us). */
static int latency(struct load *l, const char *name, double secs, struct result *res) {
  int owner = owner_of(name);
  struct cb_conn c;
  if (owner < 0 || open_conns(&c, 1, owner))
    return -1;
  static double v[MAX_SAMPLES];
  size_t n = 0;
  int rv = 0;
  for (double end = cb_now() + secs; !rv && n < MAX_SAMPLES && (n < 100 || cb_now() < end);) {
    Lmz__Frame *f = NULL;
    double t0 = cb_now();
    if (!cb_conn_call(&c, "COUNTER_DO", name, &l->inc) || cb_conn_flush(&c) ||
        cb_conn_result(&c, &f, 10000)) {
      rv = -1;
      break;
    }
    v[n++] = (cb_now() - t0) * 1e6;
    if (!cb_result_ok(f->result)) {
      cb_result_describe(f->result, l->first_error, sizeof l->first_error);
      fprintf(stderr, "replication: a latency call failed: %s\n", l->first_error);
      rv = -1;
    }
    lmz_frame_free(f);
  }
  cb_conn_close(&c);
  res->p50_us = cb_quantile(v, n, .5);
  res->p99_us = cb_quantile(v, n, .99);
  return rv;
}

/* All three measurements on a fresh cluster with factor r. */
static int measure(int r, double secs, struct result *res) {
  struct load l = {0};
  memset(res, 0, sizeof *res);
  for (int i = 0; i < ACTORS; i++)
    snprintf(l.names[i], sizeof l.names[i], "t%d", i);
  double one = 1;
  char js[8192] = "";
  if (fresh_with_factor(r) || cb_chain(&l.inc, "increment", &one))
    return -1;
  if (cb_status(&CL, 0, js, sizeof js) == 0 && strstr(js, "\"replication\":"))
    res->factor = cb_json_num(strstr(js, "\"replication\":"), "factor");
  fprintf(stderr, "replication: R = %d cluster up (lmz status reports factor %llu)\n", r,
          res->factor);
  int rv = pipelined(&l, 2 * CB_NODES, -1, secs, &res->turns_s);
  l.hot = "hot";
  int hot_owner = rv ? -1 : owner_of("hot");
  if (!rv && hot_owner < 0) { /* claim it first */
    double ignored;
    rv = pipelined(&l, 1, 0, 0.2, &ignored);
    hot_owner = owner_of("hot");
  }
  if (!rv)
    rv = hot_owner < 0 ? -1 : pipelined(&l, 2, hot_owner, secs, &res->hot_s);
  if (!rv)
    rv = latency(&l, "hot", secs, res);
  lmz_buf_free(&l.inc);
  cb_cluster_stop(&CL);
  fprintf(stderr, "replication: R = %d: %.0f turns/s, hot actor %.0f calls/s, gate p50 %.0f us "
                  "p99 %.0f us\n", r, res->turns_s, res->hot_s, res->p50_us, res->p99_us);
  return rv;
}

/* ---- the floor ----------------------------------------------------------- */

static void die(const char *what) {
  fprintf(stderr, "replication: %s: %s\n", what, strerror(errno));
  exit(1);
}


/* The floor's disk part: `copies` threads, each appending 128 bytes to its
 * own preallocated file and fdatasyncing it (a WAL append at best: no size
 * change to journal); copy 0 starts at once, the others `lag_us` later and
 * report `lag_us` after they finish (the record's trip to a backup and the
 * ack's trip back). A sample is the time until the last one is done; p50.
 * copies = 1 is one local fsync. copies = 3 is what R = 3 costs when the
 * three nodes share this one disk (this bench's loopback cluster): their
 * fsyncs meet in one filesystem journal, which a floor of one fsync
 * ignores. */
struct fsync_floor {
  pthread_barrier_t go, done;
  int fd[3];
  unsigned copies;
  double lag_us;
  size_t n; /* the sample being taken */
  bool stop, failed;
};

struct fsync_copy {
  struct fsync_floor *f;
  unsigned i;
};

static void spin_us(double us) {
  for (double t0 = cb_now(); (cb_now() - t0) * 1e6 < us;) {
  }
}

static void *fsync_copy_main(void *arg) {
  struct fsync_copy *c = arg;
  struct fsync_floor *f = c->f;
  uint8_t buf[128];
  memset(buf, 'v', sizeof buf);
  for (;;) {
    pthread_barrier_wait(&f->go);
    if (f->stop)
      return NULL;
    if (c->i > 0)
      spin_us(f->lag_us);
    if (pwrite(f->fd[c->i], buf, sizeof buf, (off_t)(f->n * sizeof buf)) != (ssize_t)sizeof buf ||
        fdatasync(f->fd[c->i]))
      f->failed = true;
    if (c->i > 0)
      spin_us(f->lag_us);
    pthread_barrier_wait(&f->done);
  }
}

static int floor_file(unsigned i) {
  char path[CB_PATH + 16];
  snprintf(path, sizeof path, "%s/fsync-floor-%u", CL.dir, i);
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0 || posix_fallocate(fd, 0, 64u << 20) || fdatasync(fd)) {
    fprintf(stderr, "replication: %s: cannot make the fsync floor's file\n", path);
    exit(1);
  }
  unlink(path); /* kept open until the measurement ends */
  return fd;
}

static double fsync_p50_us(double secs, unsigned copies, double lag_us) {
  static struct fsync_floor f;
  static double v[MAX_SAMPLES];
  pthread_t th[3];
  struct fsync_copy c[3];
  f = (struct fsync_floor){.copies = copies, .lag_us = lag_us};
  pthread_barrier_init(&f.go, NULL, copies + 1);
  pthread_barrier_init(&f.done, NULL, copies + 1);
  for (unsigned i = 0; i < copies; i++) {
    f.fd[i] = floor_file(i);
    c[i] = (struct fsync_copy){&f, i};
    if (pthread_create(&th[i], NULL, fsync_copy_main, &c[i]))
      die("fsync floor thread");
  }
  for (double end = cb_now() + secs;
       f.n < MAX_SAMPLES && f.n < (64u << 20) / 128 && (f.n < 50 || cb_now() < end); f.n++) {
    double t0 = cb_now();
    pthread_barrier_wait(&f.go);
    pthread_barrier_wait(&f.done);
    v[f.n] = (cb_now() - t0) * 1e6;
  }
  f.stop = true;
  pthread_barrier_wait(&f.go);
  for (unsigned i = 0; i < copies; i++) {
    pthread_join(th[i], NULL);
    close(f.fd[i]);
  }
  pthread_barrier_destroy(&f.go);
  pthread_barrier_destroy(&f.done);
  if (f.failed) {
    fprintf(stderr, "replication: fsync floor: a write or fdatasync failed\n");
    exit(1);
  }
  return cb_quantile(v, f.n, .5);
}

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
  int lfd = *(int *)arg, one = 1, fd = accept(lfd, NULL, NULL);
  uint8_t buf[128];
  if (fd < 0)
    return NULL;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while (io_all(fd, buf, sizeof buf, true) == 0 && io_all(fd, buf, sizeof buf, false) == 0) {
  }
  close(fd);
  return NULL;
}

/* A loopback TCP round trip of 128 bytes each way (an echo thread), p50. */
static double rtt_p50_us(double secs) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, cfd = -1;
  pthread_t th;
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) || listen(lfd, 1) ||
      getsockname(lfd, (struct sockaddr *)&sa, &len) || pthread_create(&th, NULL, echo_main, &lfd))
    die("loopback echo");
  cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof sa))
    die("loopback connect");
  static double v[MAX_SAMPLES];
  uint8_t buf[128] = {1};
  size_t n = 0;
  for (double end = cb_now() + secs; n < MAX_SAMPLES && (n < 100 || cb_now() < end);) {
    double t0 = cb_now();
    if (io_all(cfd, buf, sizeof buf, false) || io_all(cfd, buf, sizeof buf, true))
      die("loopback echo");
    v[n++] = (cb_now() - t0) * 1e6;
  }
  close(cfd);
  shutdown(lfd, SHUT_RDWR);
  pthread_join(th, NULL);
  close(lfd);
  return cb_quantile(v, n, .5);
}

/* ---- main ---------------------------------------------------------------- */

/* Targets only where they mean something: R = 3's only when the cluster
 * really kept 3 copies (else it measured R = 1 twice). */
static void emit_run(const char *r, const struct result *x, bool real) {
  char m[64];
  double floor_us = x->fsync_us + x->rtt_us;
  snprintf(m, sizeof m, "%s.floor_fsync_p50_us", r);
  cb_emit(SCEN, m, x->fsync_us, "us", 0, false);
  snprintf(m, sizeof m, "%s.floor_rtt_p50_us", r);
  cb_emit(SCEN, m, x->rtt_us, "us", 0, false);
  snprintf(m, sizeof m, "%s.floor_gate_p50_us", r);
  cb_emit(SCEN, m, floor_us, "us", 0, false);
  snprintf(m, sizeof m, "%s.turns_per_s", r);
  cb_emit(SCEN, m, x->turns_s, "turns/s", 0, true);
  snprintf(m, sizeof m, "%s.hot_calls_per_s", r);
  cb_emit(SCEN, m, x->hot_s, "calls/s", strcmp(r, "r3") || !real ? 0 : 50000, true);
  snprintf(m, sizeof m, "%s.gate_p50_us", r);
  cb_emit(SCEN, m, x->p50_us, "us", 0, false);
  snprintf(m, sizeof m, "%s.gate_p99_us", r);
  cb_emit(SCEN, m, x->p99_us, "us", 0, false);
  snprintf(m, sizeof m, "%s.gate_p50_vs_floor", r);
  cb_emit(SCEN, m, floor_us > 0 ? x->p50_us / floor_us : 0, "x", real ? 2 : 0, false);
  if (x->shared_us > 0) { /* no target: it explains the one above */
    snprintf(m, sizeof m, "%s.floor_shared_disk_p50_us", r);
    cb_emit(SCEN, m, x->shared_us, "us", 0, false);
    snprintf(m, sizeof m, "%s.gate_p50_vs_shared_disk_floor", r);
    cb_emit(SCEN, m, x->p50_us / x->shared_us, "x", 0, false);
  }
}

int main(int argc, char **argv) {
  A = cb_parse_args(argc, argv,
      "usage: bench_replication [--quick] [--seconds S] [--window N]\n"
      "  S: length of each measurement (default 3, --quick 0.5)\n"
      "  N: calls in flight per connection (default 256)\n");
  double secs = A.seconds > 0 ? A.seconds : A.quick ? 0.5 : 3;
  struct result r1, r3;
  if (cluster_init() || measure(1, secs, &r1))
    return 1;
  r1.fsync_us = fsync_p50_us(secs, 1, 0), r1.rtt_us = rtt_p50_us(secs);
  if (measure(3, secs, &r3))
    return 1;
  r3.fsync_us = fsync_p50_us(secs, 1, 0), r3.rtt_us = rtt_p50_us(secs);
  r3.shared_us = fsync_p50_us(secs, 3, r3.rtt_us / 2) + r3.rtt_us;
  bool real = r3.factor >= 3;
  emit_run("r1", &r1, true);
  emit_run("r3", &r3, real);
  cb_emit(SCEN, "r3.turns_vs_r1", r1.turns_s > 0 ? r3.turns_s / r1.turns_s : 0, "x",
          real ? 0.5 : 0, true);
  cb_emit(SCEN, "r3.factor", (double)r3.factor, "copies", 0, true);
  if (!real)
    fprintf(stderr, "replication: NOTE: the R = 3 cluster reports factor %llu: this lmzd "
                    "does not replicate (yet), so R = 3 measured R = 1; its targets are "
                    "not judged\n", r3.factor);
  return 0;
}
