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
 * Metrics: floor.fsync_p50_ms (one fdatasync of a 128-byte append in
 * $TMPDIR, measured first: the disk's floor for any durable answer),
 * <sys>.<load>.rate / .p50_ms / .p99_ms with server_cpu and
 * generator_cpu fields; lmz.best_rate (the best load; target >= 100,000
 * calls/s = 100x a Cloudflare Durable Object's documented soft limit of
 * about 1,000 requests/s) and lmz_vs_workerd = lmz.best_rate /
 * workerd.best_rate (target >= 40).
 *
 * --seconds S: each measurement counts S seconds (default 3; --quick 0.3)
 * after a warm-up of S/5. workerd not installed: skipped, said on stderr. */
#include "peer_bench.h"

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
