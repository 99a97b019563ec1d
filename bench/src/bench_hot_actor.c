/* bench_hot_actor - one durable object, as many durable calls per second
 * as many clients can get from it (issue 12, `hot-actor`): lmz vs workerd
 * in the same run (peer_bench.h has the systems and load generators).
 *
 * Loads (each client a WebSocket; every call a durable increment of the
 * ONE shared counter; closed loop):
 *   w64   64 clients x 64 calls in flight (lmz only: workerd is flat from
 *         1 to 16 in flight and would need 10+ s to drain 4,096 calls)
 *   w16   64 clients x 16 calls in flight
 *   w1    64 clients x 1 call in flight
 * lmz: lmzd --dev through the client gateway (COUNTER_DO.increment(1),
 * storage.sync on: replies leave after the fsync'd group commit). workerd:
 * counter.js over WebSocket ("i" frames: ctx.storage.kv put; its output
 * gate holds the reply until the write is confirmed) and over HTTP (64
 * keep-alive connections, one GET /hot/inc in flight each). lmz and workerd
 * alternate per load.
 *
 * Then lmz's node port (the secure channel other nodes and `lmz call`
 * use): 2 connections x 256 increments in flight on the same actor,
 * pipelined (cluster_bench.h's client), and one in flight for p50/p99
 * (lmz_node_t.w512.*).
 * Metrics: floor.fsync_p50_ms (one fdatasync of a 128-byte append in
 * $TMPDIR, measured first: the disk's floor for any durable answer),
 * <sys>.<load>.rate / .p50_ms / .p99_ms with server_cpu and
 * generator_cpu fields; lmz.best_rate (the best load, gateway or node
 * port; target >= 100,000 calls/s = 100x a Cloudflare Durable Object's
 * documented soft limit of about 1,000 requests/s) and lmz_vs_workerd =
 * lmz.best_rate / workerd.best_rate (target >= 40).
 *
 * --seconds S: each measurement counts S seconds (default 3; --quick 0.3)
 * after a warm-up of S/5. workerd not installed: skipped, said on stderr. */
#include "peer_bench.h"

#include "cluster_bench.h" /* the node port's pipelining client */

/* ---- lmz's node port -------------------------------------------------------- */

struct np_load {
  struct cb_conn *conns;
  lmz_buf inc;
  uint64_t errors;
  char first_error[256];
};

static int np_issue(void *arg, int i) {
  struct np_load *l = arg;
  return cb_conn_call(&l->conns[i], "COUNTER_DO", "hot-shared", &l->inc) ? 0 : LMZ_ENOMEM;
}

static int np_done(void *arg, int i, const Lmz__Result *r) {
  struct np_load *l = arg;
  (void)i;
  if (!cb_result_ok(r) && l->errors++ == 0)
    cb_result_describe(r, l->first_error, sizeof l->first_error);
  return 0;
}

/* The node port of gb_srv's lmzd: 2 connections x 256 increments in flight
 * on the same actor as the gateway loads (pipelined, sealed in one record
 * per round: cluster_bench.h); then one in flight for the latency. */
static double np_measure(double secs) {
  char path[4200], addr[64], err[LMZ_ERRMSG_LEN];
  uint8_t key[LMZ_KEYFILE_KEY_LEN];
  int port = 0;
  snprintf(path, sizeof path, "%s/node.port", gb_srv.dir);
  FILE *f = fopen(path, "r");
  if (!f || fscanf(f, "%d", &port) != 1 || port <= 0)
    gb_die("no node port in %s", path);
  fclose(f);
  snprintf(path, sizeof path, "%s/cluster.key", gb_srv.dir);
  if (lmz_keyfile_load(path, key, err))
    gb_die("cluster key: %s", err);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
  struct cb_conn cs[2];
  struct np_load l = {.conns = cs};
  double one = 1, rate = 0;
  if (cb_chain(&l.inc, "increment", &one))
    gb_die("chain");
  for (int i = 0; i < 2; i++)
    if (cb_conn_open(&cs[i], addr, key, 5000))
      gb_die("node port %s: %s", addr, cs[i].err);
  fprintf(stderr, "hot_actor: lmz node port, 2 connections x 256 in flight, one actor\n");
  struct cb_pipe p = {cs, 2, 256, np_issue, np_done, &l};
  double c0 = gb_self_cpu(), s0 = gb_proc_cpu(gb_srv.pid), t0 = gb_now();
  if (cb_pipe_run(&p, secs / 5, 30, &rate, NULL) ||
      (c0 = gb_self_cpu(), s0 = gb_proc_cpu(gb_srv.pid), t0 = gb_now(),
       cb_pipe_run(&p, secs, 30, &rate, NULL)) || l.errors)
    gb_die("node port load failed (%llu errors; %s)", (unsigned long long)l.errors,
           l.first_error);
  double dt = gb_now() - t0;
  struct pb_res r = {rate, 0, 0, 0, (gb_self_cpu() - c0) / dt,
                     (gb_proc_cpu(gb_srv.pid) - s0) / dt, 0};
  static double v[20000];
  size_t n = 0;
  for (double end = gb_now() + secs / 3; n < 20000 && (n < 50 || gb_now() < end);) {
    Lmz__Frame *fr = NULL;
    double t = gb_now();
    if (!cb_conn_call(&cs[0], "COUNTER_DO", "hot-shared", &l.inc) || cb_conn_flush(&cs[0]) ||
        cb_conn_result(&cs[0], &fr, 10000) || !cb_result_ok(fr->result))
      gb_die("node port call failed: %s", cs[0].err);
    v[n++] = (gb_now() - t) * 1e3;
    lmz_frame_free(fr);
  }
  r.p50 = cb_quantile(v, n, 0.5), r.p99 = cb_quantile(v, n, 0.99);
  pb_emit_res("lmz_node", "w512", 2, 256, &r, 0);
  for (int i = 0; i < 2; i++)
    cb_conn_close(&cs[i]);
  lmz_buf_free(&l.inc);
  return rate;
}

static const char usage[] = "usage: bench_hot_actor [--quick] [--seconds S]\n"
                            "  S: measured seconds per measurement (default 3, --quick 0.3)\n";

int main(int argc, char **argv) {
  gb_scenario = "hot_actor";
  double secs = 3;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      secs = 0.3;
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      secs = atof(argv[++i]);
    else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (secs <= 0)
    gb_die("bad --seconds");
  gb_raise_nofile(256);
  double fs = pb_fsync_floor_ms(secs < 1 ? 50 : 300);
  gb_emit("floor.fsync_p50_ms", fs, "ms", 0, false, NULL);
  gb_start_lmzd(NULL);
  bool have_wd = pb_workerd_start();
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  gb_fetch_token(&loop, &tok);
  lmz_arena *a = lmz_arena_new();
  lmz_value *one = lmz_number(a, 1);
  const lmz_value *inc = lmzc_method_chain(a, "increment", 1, &one);
  static const int window[3] = {64, 16, 1};
  double best_l = 0, best_w = 0;
  for (int k = 0; k < 3; k++) {
    char what[16];
    snprintf(what, sizeof what, "w%d", window[k]);
    fprintf(stderr, "hot_actor: 64 clients x %d in flight, one actor (load average %.2f)\n",
            window[k], gb_loadavg());
    struct pb_res l = pb_lmz_load(&loop, &tok, 64, window[k], "hot-", true, inc, secs);
    pb_emit_res("lmz", what, 64, window[k], &l, 0);
    best_l = l.rate > best_l ? l.rate : best_l;
    if (!have_wd || window[k] > 16)
      continue; /* workerd is flat from 1 to 16 in flight; 4,096 would take it 10+ s to drain */
    struct pb_res w = pb_workerd_load(&loop, PB_WS, 64, window[k], "hot-", true, true, secs);
    pb_emit_res("workerd", what, 64, window[k], &w, 0);
    best_w = w.rate > best_w ? w.rate : best_w;
  }
  double np = np_measure(secs);
  best_l = np > best_l ? np : best_l;
  if (have_wd) {
    fprintf(stderr, "hot_actor: workerd over HTTP, 64 connections x 1\n");
    struct pb_res h = pb_workerd_load(&loop, PB_HTTP, 64, 1, "hot-", true, true, secs);
    pb_emit_res("workerd_http", "c64", 64, 1, &h, 0);
    best_w = h.rate > best_w ? h.rate : best_w;
  }
  gb_emit("lmz.best_rate", best_l, "calls/s", 100000, true, NULL);
  pb_emit_ratio("lmz_vs_workerd", best_l, best_w, 40);
  lmz_arena_free(a);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  return 0;
}
