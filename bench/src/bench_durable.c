/* bench_durable - durable turns/s against the raw RocksDB floor, in one run.
 *
 *   turns       a driver keeps WINDOW calls in flight to ACTORS counter
 *               actors; each call is one turn that reads and writes one key
 *               (increment), and its reply is released only after the turn's
 *               batch is durable (WAL fsync: storage.sync = true). The
 *               driver's handler turn counts the reply and sends the next.
 *   floor       in the same run, on the same disk: raw rocksdb_put with
 *               sync = 1 one after another, and synced WriteBatches of 100.
 * The ratio turns / single-synced-puts shows what group commit buys: many
 * turns share one fsync, and the output gate costs latency, not throughput.
 *
 * --seconds S: each measurement runs about S seconds (default 3).
 * Target (issue 3): durable turns/s >= 20 x the single-synced-put floor. */
#define _GNU_SOURCE
#include "bench_node.h"

#define ACTORS 256
#define WINDOW 4096

static double g_deadline;
static uint64_t g_sent, g_done;

static const char *actor_name(uint64_t i) {
  static char names[ACTORS][8];
  if (!names[0][0])
    for (int k = 0; k < ACTORS; k++)
      snprintf(names[k], sizeof names[k], "c%d", k);
  return names[i % ACTORS];
}

static int counter_increment(lmz_ctx *ctx, lmz_value *const *a, size_t n,
                             lmz_value **r) {
  (void)a, (void)n;
  lmz_value *t = lmz_kv_get(ctx, "total");
  double total = (t && lmz_typeof(t) == LMZ_T_NUMBER ? lmz_get_number(t) : 0) + 1;
  lmz_value *v = lmz_number(lmz_turn_arena(ctx), total);
  *r = v;
  return lmz_kv_put(ctx, "total", v);
}

static int send_one(lmz_ctx *ctx) {
  lmz_ctn *inc = lmz_ctn_call(lmz_ctn_new(ctx), "increment", 0);
  lmz_ctn *ack = lmz_ctn_call(lmz_ctn_new(ctx), "ack", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, "COUNTER", actor_name(g_sent++), inc, ack, NULL);
}

static int driver_start(lmz_ctx *ctx, lmz_value *const *a, size_t n,
                        lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 0; i < WINDOW; i++) {
    int rv = send_one(ctx);
    if (rv)
      return rv;
  }
  return 0;
}

static int driver_ack(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n != 1 || lmz_typeof(a[0]) != LMZ_T_NUMBER)
    return lmz_throwf(ctx, "Error", "increment failed");
  g_done++;
  return now_s() < g_deadline ? send_one(ctx) : 0;
}

static const lmz_method counter_methods[] = {
    LMZ_MESH("increment", counter_increment, NULL), LMZ_END};
static const lmz_method driver_methods[] = {
    LMZ_MESH("start", driver_start, NULL), LMZ_LOCAL("ack", driver_ack), LMZ_END};

static int bench_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "CounterDO", counter_methods, NULL);
  return rv ? rv : lmz_register_do(r, "DriverDO", driver_methods, NULL);
}

int main(int argc, char **argv) {
  double secs = bench_seconds(argc, argv, 3.0,
                              "usage: bench_durable [--quick] [--seconds S]\n");
  fprintf(stderr, "durable: %.1f s per measurement\n", secs);
  struct bench_node b;
  bench_node_open(&b, true, bench_init);
  bench_node_bind(&b, "COUNTER", "CounterDO", LMZ_NODE_DO);
  bench_node_bind(&b, "DRIVER", "DriverDO", LMZ_NODE_DO);
  double t0 = now_s();
  g_deadline = t0 + secs;
  bench_node_kick(&b, "DRIVER", "d", "start");
  bench_node_run(&b);
  double turns = (double)g_done / (now_s() - t0);
  struct lmz_node_stats st;
  lmz_node_get_stats(b.node, &st);
  bench_node_close(&b);

  double single = run_single_sync(secs);
  double batch100 = run_batch100_sync(secs) * 100.0;
  bench_emit("durable", "turns.per_s", turns, "turns/s", 0, true);
  bench_emit("durable", "floor.single_sync_puts_per_s", single, "puts/s", 0, true);
  bench_emit("durable", "floor.batch100_sync_puts_per_s", batch100, "puts/s", 0, true);
  bench_emit("durable", "turns_vs_single_sync", turns / single, "x", 20, true);
  bench_emit("durable", "turns_vs_batch100_sync", turns / batch100, "x", 0, true);
  bench_emit("durable", "commits", (double)st.commits, "commits", 0, true);
  return 0;
}
