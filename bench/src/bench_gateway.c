/* bench_gateway - client calls per second through the client gateway, with
 * C WebSocket clients (clients/c/lmzc.h) against an `lmzd --dev` of this
 * build that the bench starts itself (ephemeral ports, temp data dir,
 * killed at exit).
 *
 * For each load (1, 64 and 1,000 WebSocket clients, all on one loop in this
 * process, each client calling its own COUNTER_DO instance):
 *   echo       COUNTER_DO.echo(42): frame -> gateway -> actor turn -> answer
 *   increment  COUNTER_DO.increment(1): the same plus a durable write (the
 *              --dev node runs storage.sync = true: fsync'd group commits)
 *   floor      "lmz:ping" -> "lmz:pong" over the same sockets. The gateway
 *              has no plain WebSocket echo route; it answers the heartbeat
 *              itself without running any actor (as the original's
 *              auto-responder), so the ping is the WebSocket-echo floor of
 *              the same stack: TCP, framing, the gateway's frame handling.
 * Each client keeps a window of W requests in flight (closed loop: an
 * answer sends the next request). Rate = answers received in the measured
 * window / its length; latency = send to answer, every request of the
 * window, 1 us histogram. CPU seconds of lmzd and of this process are
 * sampled over the window (who is the bottleneck). The three variants run
 * interleaved in R rounds (floor, echo, increment, floor, ...) so machine
 * noise hits them alike; a rate is the median over the rounds (CPU too),
 * latencies come from all rounds' requests together.
 *
 * Targets: >= 100,000 echo calls/s with 64 clients, p99 < 5 ms at that
 * load; at every load echo >= 50% of the ping floor.
 *
 * --seconds S: each measurement counts S seconds (default 2; --quick 0.3)
 * after a warm-up of S/5; --rounds R (default 3; --quick 1): one load takes
 * about 3 x R x 1.2 x S. --clients 1,64,1000 and --window 128,4,1 (one W
 * per load) change the loads. */
#include "gw_bench.h"

#define MAX_LOADS 8

enum mode { M_ECHO, M_INCR, M_PING };
static const char *const mode_name[] = {"echo", "increment", "floor"};

struct bclient;
struct slot {
  struct bclient *bc;
  uint64_t t0;
};

struct bclient {
  lmzc_t *c;
  char target[32]; /* its COUNTER_DO instance */
  struct slot *slots;
};

static struct {
  enum mode mode;
  lmz_value *chain[2]; /* echo, increment */
  uint64_t t_meas, t_end; /* ns, uv_hrtime */
  uint64_t inflight, counted, errors;
  int last_err;
  struct gb_hist *hist;
  double cpu_self0, cpu_srv0, cpu_self, cpu_srv;
} R;

struct result {
  double rate, p50, p99, max, cpu_srv, cpu_self;
  uint64_t errors;
};

static void issue(struct slot *s);

static void finish_one(struct slot *s, bool failed) {
  uint64_t now = uv_hrtime();
  R.inflight--;
  if (failed)
    R.errors++;
  if (now >= R.t_meas && now <= R.t_end) {
    R.counted++;
    gb_hist_add(R.hist, now - s->t0);
  }
  if (now < R.t_end)
    issue(s);
}

static void on_reply(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c, (void)v;
  if (status || !ok)
    R.last_err = status ? status : -1;
  finish_one(data, status || !ok);
}

static void on_pong(lmzc_t *c, void *data, int status) {
  (void)c;
  finish_one(data, status != 0);
}

static void issue(struct slot *s) {
  s->t0 = uv_hrtime();
  int rv = R.mode == M_PING
               ? lmzc_ping(s->bc->c, on_pong, s)
               : lmzc_call(s->bc->c, "COUNTER_DO", s->bc->target, R.chain[R.mode],
                           on_reply, s);
  if (rv) {
    R.errors++;
    R.last_err = rv;
    return;
  }
  R.inflight++;
}

static void snap_start(uv_timer_t *t) {
  (void)t;
  R.cpu_self0 = gb_self_cpu();
  R.cpu_srv0 = gb_proc_cpu(gb_srv.pid);
}

static void snap_end(uv_timer_t *t) {
  (void)t;
  R.cpu_self = gb_self_cpu() - R.cpu_self0;
  R.cpu_srv = gb_proc_cpu(gb_srv.pid) - R.cpu_srv0;
}

static bool drained(void *arg) {
  (void)arg;
  return R.inflight == 0;
}

/* One measurement; latencies are added to `hist`. */
static struct result measure(uv_loop_t *loop, struct bclient *bcs, int n,
                             int window, enum mode mode, double warm, double secs,
                             struct gb_hist *hist) {
  R.hist = hist;
  R.mode = mode;
  R.inflight = R.counted = R.errors = 0;
  R.last_err = 0;
  uint64_t t0 = uv_hrtime();
  R.t_meas = t0 + (uint64_t)(warm * 1e9);
  R.t_end = R.t_meas + (uint64_t)(secs * 1e9);
  uv_timer_t ts, te;
  uv_timer_init(loop, &ts);
  uv_timer_init(loop, &te);
  uv_timer_start(&ts, snap_start, (uint64_t)(warm * 1000), 0);
  uv_timer_start(&te, snap_end, (uint64_t)((warm + secs) * 1000), 0);
  for (int i = 0; i < n; i++)
    for (int w = 0; w < window; w++)
      issue(&bcs[i].slots[w]);
  if (!gb_run_until(loop, drained, NULL, warm + secs + 30))
    gb_die("%s: %llu requests never answered", mode_name[mode],
           (unsigned long long)R.inflight);
  uv_close((uv_handle_t *)&ts, NULL);
  uv_close((uv_handle_t *)&te, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  if (R.errors)
    fprintf(stderr, "  %s: %llu requests failed (last: %s)\n", mode_name[mode],
            (unsigned long long)R.errors, R.last_err > 0 ? "thrown" : lmz_strerror(R.last_err));
  struct result r = {(double)R.counted / secs, 0, 0, 0, R.cpu_srv / secs,
                     R.cpu_self / secs, R.errors};
  return r;
}

static int cmp_result(const void *x, const void *y) {
  double a = ((const struct result *)x)->rate, b = ((const struct result *)y)->rate;
  return a < b ? -1 : a > b;
}

/* The median round (by rate), with the latencies of all rounds. */
static struct result summarize(struct result *r, int rounds, const struct gb_hist *h) {
  qsort(r, (size_t)rounds, sizeof *r, cmp_result);
  struct result m = r[rounds / 2];
  m.errors = 0;
  for (int i = 0; i < rounds; i++)
    m.errors += r[i].errors;
  m.p50 = gb_hist_q(h, 0.5);
  m.p99 = gb_hist_q(h, 0.99);
  m.max = h->max_ms;
  return m;
}

/* ---- the loads ------------------------------------------------------------ */

static int parse_list(const char *s, int *out, int max) {
  int n = 0;
  while (s && *s && n < max) {
    out[n++] = atoi(s);
    s = strchr(s, ',');
    s = s ? s + 1 : NULL;
  }
  return n;
}

/* One warm-up call per client: activates its actor before measuring. */
static void activate(uv_loop_t *loop, struct bclient *bcs, int n) {
  R.mode = M_ECHO;
  static struct gb_hist h;
  R.hist = &h;
  R.t_meas = R.t_end = 0; /* nothing counted, nothing re-issued */
  R.inflight = R.errors = 0;
  for (int i = 0; i < n; i++)
    issue(&bcs[i].slots[0]);
  if (!gb_run_until(loop, drained, NULL, 60) || R.errors)
    gb_die("activation calls failed (%s)", lmz_strerror(R.last_err));
}

static void emit_result(int n, enum mode m, int window, const struct result *r,
                        double floor_rate) {
  char metric[96], extra[384];
  /* CPU per request: what each side spends, whatever else runs on the box */
  double us_srv = r->rate > 0 ? r->cpu_srv / r->rate * 1e6 : 0;
  double us_self = r->rate > 0 ? r->cpu_self / r->rate * 1e6 : 0;
  snprintf(extra, sizeof extra,
           "\"clients\":%d,\"window\":%d,\"lmzd_cpu\":%.2f,\"bench_cpu\":%.2f,"
           "\"lmzd_us_per_op\":%.2f,\"bench_us_per_op\":%.2f,"
           "\"errors\":%llu,\"max_ms\":%.3f,\"loadavg\":%.2f",
           n, window, r->cpu_srv, r->cpu_self, us_srv, us_self,
           (unsigned long long)r->errors, r->max, gb_loadavg());
  const char *unit = m == M_PING ? "msgs/s" : "calls/s";
  double t_rate = n == 64 && m == M_ECHO ? 100000 : 0;
  double t_p99 = n == 64 && m == M_ECHO ? 5 : 0;
  snprintf(metric, sizeof metric, "c%d.%s.rate", n, mode_name[m]);
  gb_emit(metric, r->rate, unit, t_rate, true, extra);
  snprintf(metric, sizeof metric, "c%d.%s.p50_ms", n, mode_name[m]);
  gb_emit(metric, r->p50, "ms", 0, false, NULL);
  snprintf(metric, sizeof metric, "c%d.%s.p99_ms", n, mode_name[m]);
  gb_emit(metric, r->p99, "ms", t_p99, false, NULL);
  if (m == M_ECHO && floor_rate > 0) {
    snprintf(metric, sizeof metric, "c%d.echo_vs_floor", n);
    gb_emit(metric, r->rate / floor_rate, "x", 0.5, true, NULL);
  }
}

#define MAX_ROUNDS 15

static void run_load(uv_loop_t *loop, const struct gb_token *tok, int n,
                     int window, double warm, double secs, int rounds) {
  fprintf(stderr, "%d client(s), window %d per client, %d round(s) (load average %.2f):\n",
          n, window, rounds, gb_loadavg());
  struct gb_pool pool;
  char prefix[16];
  snprintf(prefix, sizeof prefix, "g%d-", n);
  gb_pool_open(&pool, loop, n, tok, prefix);
  struct bclient *bcs = calloc((size_t)n, sizeof *bcs);
  struct slot *slots = calloc((size_t)n * (size_t)window, sizeof *slots);
  static struct gb_hist hist[3];
  memset(hist, 0, sizeof hist);
  if (!bcs || !slots)
    gb_die("out of memory");
  for (int i = 0; i < n; i++) {
    bcs[i].c = pool.v[i].c;
    snprintf(bcs[i].target, sizeof bcs[i].target, "g%d-%d", n, i);
    bcs[i].slots = slots + (size_t)i * (size_t)window;
    for (int w = 0; w < window; w++)
      bcs[i].slots[w].bc = &bcs[i];
  }
  activate(loop, bcs, n);
  static const enum mode order[3] = {M_PING, M_ECHO, M_INCR};
  struct result res[3][MAX_ROUNDS];
  for (int r = 0; r < rounds; r++)
    for (int m = 0; m < 3; m++)
      res[order[m]][r] = measure(loop, bcs, n, window, order[m], warm, secs,
                                 &hist[order[m]]);
  struct result fl = summarize(res[M_PING], rounds, &hist[M_PING]);
  struct result echo = summarize(res[M_ECHO], rounds, &hist[M_ECHO]);
  struct result inc = summarize(res[M_INCR], rounds, &hist[M_INCR]);
  emit_result(n, M_PING, window, &fl, 0);
  emit_result(n, M_ECHO, window, &echo, fl.rate);
  emit_result(n, M_INCR, window, &inc, 0);
  if (pool.n_disconnected)
    gb_die("%d clients were disconnected during the run", pool.n_disconnected);
  gb_pool_close(&pool);
  free(slots);
  free(bcs);
}

static const char usage[] =
    "usage: bench_gateway [--quick] [--seconds S] [--clients 1,64,1000]\n"
    "                     [--window 128,4,1] [--rounds R] [--lmzd PATH]\n"
    "  S: measured seconds per measurement (default 2, --quick 0.3), after a\n"
    "     warm-up of S/5; ping floor, echo and increment at every load,\n"
    "     interleaved, R rounds (default 3, --quick 1), median rate\n";

int main(int argc, char **argv) {
  gb_scenario = "gateway";
  double secs = 2;
  int rounds = 3;
  int loads[MAX_LOADS] = {1, 64, 1000}, n_loads = 3;
  int windows[MAX_LOADS] = {128, 4, 1}, n_windows = 3;
  const char *lmzd = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      secs = 0.3, rounds = 1;
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
      n_loads = parse_list(argv[++i], loads, MAX_LOADS);
    else if (!strcmp(argv[i], "--window") && i + 1 < argc)
      n_windows = parse_list(argv[++i], windows, MAX_LOADS);
    else if (!strcmp(argv[i], "--lmzd") && i + 1 < argc)
      lmzd = argv[++i];
    else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (secs <= 0 || n_loads < 1 || rounds < 1 || rounds > MAX_ROUNDS)
    gb_die("bad --seconds, --clients or --rounds");
  int most = 0;
  for (int i = 0; i < n_loads; i++)
    most = loads[i] > most ? loads[i] : most;
  rlim_t lim = gb_raise_nofile((rlim_t)most + 64);
  gb_start_lmzd(lmzd);
  unsigned long long srv_lim = gb_proc_nofile(gb_srv.pid);
  fprintf(stderr, "gateway: lmzd %s (pid %d), open files: bench %llu, lmzd %llu; "
                  "%.2f s per measurement\n",
          gb_srv.url, (int)gb_srv.pid, (unsigned long long)lim, srv_lim, secs);
  if (srv_lim && srv_lim < (unsigned long long)most + 64)
    gb_die("lmzd may open only %llu files", srv_lim);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  gb_fetch_token(&loop, &tok);
  lmz_arena *a = lmz_arena_new();
  lmz_value *arg = lmz_number(a, 42), *one = lmz_number(a, 1);
  R.chain[M_ECHO] = lmzc_method_chain(a, "echo", 1, &arg);
  R.chain[M_INCR] = lmzc_method_chain(a, "increment", 1, &one);
  for (int i = 0; i < n_loads; i++) {
    int w = windows[i < n_windows ? i : n_windows - 1];
    run_load(&loop, &tok, loads[i], w > 0 ? w : 1, secs / 5, secs, rounds);
  }
  lmz_arena_free(a);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  return 0;
}
