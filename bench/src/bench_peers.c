/* bench_peers - lmz against workerd and Redis in the same run (issue 12,
 * `peers`; peer_bench.h has the systems and both load generators).
 *
 * For 1, 64 and 1,000 WebSocket clients (--quick: 1 and 64), each with
 * one durable increment in flight (closed loop):
 *   own     every client increments its own counter actor
 *   shared  every client increments one shared counter actor
 * against lmz (lmzd --dev through the client gateway, COUNTER_DO
 * .increment(1), storage.sync on) and workerd (counter.js, WebSocket "i"
 * frames, SQLite KV put). lmz and workerd alternate at each load so that
 * machine noise hits both alike. Then Redis INCR with 64 clients from
 * redis-benchmark, without pipelining and with 16 commands in flight per
 * client (the single-threaded C request/response floor: no auth, no
 * durability, no routing).
 *
 * Metrics: floor.fsync_p50_ms (one fdatasync of a 128-byte append in
 * $TMPDIR, measured first), <sys>.c<N>.<own|shared>.rate / .p50_ms / .p99_ms (fields:
 * server_cpu and generator_cpu = CPU seconds per second of the server and
 * of the load generator), redis.c64.p1 / .p16 the same, and
 * c64.own.lmz_vs_workerd (target >= 20), c64.own.lmz_vs_redis_p1 (target
 * >= 2); the shared and other-load ratios are reported without targets.
 *
 * --seconds S: each measurement counts S seconds (default 2; --quick 0.3)
 * after a warm-up of S/5. A peer that is not installed is skipped (stderr
 * says so) and its metrics are absent. */
#include "peer_bench.h"

static const char usage[] =
    "usage: bench_peers [--quick] [--seconds S] [--clients 1,64,1000]\n"
    "  S: measured seconds per measurement (default 2, --quick 0.3)\n";

static void run_load(uv_loop_t *loop, const struct gb_token *tok, int n, bool have_wd,
                     double secs, double *lmz_c64_own) {
  static const char *const what[2] = {"own", "shared"};
  lmz_arena *a = lmz_arena_new();
  lmz_value *one = lmz_number(a, 1);
  const lmz_value *inc = lmzc_method_chain(a, "increment", 1, &one);
  for (int s = 0; s < 2; s++) {
    char name[64], prefix[32], metric[96];
    snprintf(name, sizeof name, "c%d.%s", n, what[s]);
    fprintf(stderr, "peers: %d client(s), %s actor(s), one increment in flight each "
                    "(load average %.2f)\n", n, s ? "one shared" : "their own", gb_loadavg());
    snprintf(prefix, sizeof prefix, "p%d%c-", n, s ? 's' : 'o');
    struct pb_res l = pb_lmz_load(loop, tok, n, 1, prefix, s == 1, inc, secs);
    pb_emit_res("lmz", name, n, 1, &l, 0);
    if (n == 64 && s == 0)
      *lmz_c64_own = l.rate;
    if (!have_wd)
      continue;
    struct pb_res w = pb_workerd_load(loop, PB_WS, n, 1, prefix, s == 1, true, secs);
    pb_emit_res("workerd", name, n, 1, &w, 0);
    snprintf(metric, sizeof metric, "%s.lmz_vs_workerd", name);
    pb_emit_ratio(metric, l.rate, w.rate, n == 64 && s == 0 ? 20 : 0);
  }
  lmz_arena_free(a);
}

int main(int argc, char **argv) {
  gb_scenario = "peers";
  double secs = 2;
  bool quick = false;
  int loads[8] = {1, 64, 1000}, n_loads = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      secs = 0.3, quick = true;
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "--clients") && i + 1 < argc) {
      n_loads = 0;
      for (char *p = argv[++i]; p && *p && n_loads < 8; p = strchr(p, ','), p = p ? p + 1 : p)
        loads[n_loads++] = atoi(p);
    } else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (quick && n_loads == 3)
    n_loads = 2;
  if (secs <= 0 || n_loads < 1)
    gb_die("bad --seconds or --clients");
  gb_raise_nofile(2 * 1000 + 64);
  double fs = pb_fsync_floor_ms(quick ? 50 : 300);
  gb_emit("floor.fsync_p50_ms", fs, "ms", 0, false, NULL);
  gb_start_lmzd(NULL);
  bool have_wd = pb_workerd_start(), have_redis = pb_redis_start();
  fprintf(stderr, "peers: lmzd %s, workerd %s, redis %s; %.2f s per measurement\n",
          gb_srv.url, have_wd ? "running" : "skipped", have_redis ? "running" : "skipped",
          secs);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  gb_fetch_token(&loop, &tok);
  double lmz64 = 0;
  for (int i = 0; i < n_loads; i++)
    run_load(&loop, &tok, loads[i], have_wd, secs, &lmz64);
  if (have_redis) {
    long n1 = (long)(secs * 60000), n16 = (long)(secs * 600000);
    fprintf(stderr, "peers: redis-benchmark INCR, 64 clients\n");
    struct pb_res p1 = pb_redis_incr(64, 1, n1 > 10000 ? n1 : 10000);
    pb_emit_res("redis", "c64.p1", 64, 1, &p1, 0);
    struct pb_res p16 = pb_redis_incr(64, 16, n16 > 100000 ? n16 : 100000);
    pb_emit_res("redis", "c64.p16", 64, 16, &p16, 0);
    pb_emit_ratio("c64.own.lmz_vs_redis_p1", lmz64, p1.rate, 2);
    pb_emit_ratio("c64.own.lmz_vs_redis_p16", lmz64, p16.rate, 0);
  }
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  return 0;
}
