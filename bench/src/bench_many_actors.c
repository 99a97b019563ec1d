/* bench_many_actors - one node, N actors touched once (issue 12,
 * `many-actors`): how fast a node activates actors, what an active actor
 * costs in memory, what is left once they are evicted, and how long the
 * eviction takes.
 *
 * An in-process node (bench_node.h's store in a temp dir, sync off: the
 * touch writes nothing) with a fake clock. A driver actor keeps WINDOW
 * calls in flight, each `touch()` on a fresh TouchDO instance "a<i>" (a
 * method without user state) with a handler turn back on the driver that
 * sends the next, until N actors have answered once:
 *   activations_per_s    N / the time from the first call to the last
 *                        answer (every call activates: a fresh instance)
 *   active.bytes_per_actor   heap in use (mallinfo2 uordblks) after the
 *                        touches minus before, / N; RSS the same way
 *                        (field rss_bytes_per_actor)
 * Then the clock moves past idle_evict_ms and lmz_node_evict_idle() runs:
 *   evict.seconds        its wall time (N evictions; the count is checked)
 *   evicted.bytes_per_actor  heap in use after eviction minus before the
 *                        touches, / N (what a node keeps per actor it no
 *                        longer runs; a cluster's directory entry lives on
 *                        the Raft leader and is not part of this number)
 * First a warm-up touches and evicts 4 x WINDOW other actors, so that the
 * node's fixed memory (pools, arenas, store buffers) is in the baseline.
 * Heap, not RSS, is the judged measure: freed memory stays in the process
 * (malloc_trim is called, RSS is printed too).
 * Targets: >= 100,000 activations/s, <= 8 KB per active actor, <= 1 KB per
 * evicted actor.
 *
 * --actors N (default 1,000,000; --quick 20,000). --seconds S is accepted
 * for the bench/run contract and ignored: the run is as long as N takes. */
#define _GNU_SOURCE
#include <malloc.h>

#include "bench_node.h"

#define WINDOW 4096

static uint64_t g_n, g_sent, g_done, g_failed;
static char g_prefix = 'a'; /* 'w': the warm-up's actors */
static double g_fake_ms;

static double fake_clock(void *data) {
  (void)data;
  return g_fake_ms;
}

static int touch(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  *r = lmz_number(lmz_turn_arena(ctx), 1);
  return 0;
}

static int send_one(lmz_ctx *ctx) {
  char name[24];
  snprintf(name, sizeof name, "%c%llu", g_prefix, (unsigned long long)g_sent++);
  lmz_ctn *t = lmz_ctn_call(lmz_ctn_new(ctx), "touch", 0);
  lmz_ctn *back = lmz_ctn_call(lmz_ctn_new(ctx), "back", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, "TOUCH", name, t, back, NULL);
}

static int driver_go(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 0; i < WINDOW && g_sent < g_n; i++) {
    int rv = send_one(ctx);
    if (rv)
      return rv;
  }
  return 0;
}

static int driver_back(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n != 1 || lmz_typeof(a[0]) != LMZ_T_NUMBER)
    g_failed++;
  g_done++;
  return g_sent < g_n ? send_one(ctx) : 0;
}

static const lmz_method touch_methods[] = {LMZ_MESH("touch", touch, NULL), LMZ_END};
static const lmz_method driver_methods[] = {
    LMZ_MESH("go", driver_go, NULL), LMZ_LOCAL("back", driver_back), LMZ_END};

static int bench_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "TouchDO", touch_methods, NULL);
  return rv ? rv : lmz_register_do(r, "DriverDO", driver_methods, NULL);
}

static double heap_bytes(void) {
  struct mallinfo2 mi = mallinfo2();
  return (double)mi.uordblks + (double)mi.hblkhd;
}

static double rss_bytes(void) {
  long pages = 0, rss = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f && fscanf(f, "%ld %ld", &pages, &rss) != 2)
    rss = 0;
  if (f)
    fclose(f);
  return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static void open_node(struct bench_node *b) {
  char err[LMZ_ERRMSG_LEN];
  if (!(b->dir = make_dir()))
    die("mkdtemp", NULL);
  uv_loop_init(&b->loop);
  struct lmz_node_opts o = {.node_id = "bench", .data_dir = b->dir, .sync = false,
                            .idle_evict_ms = 60000, .max_queue = 1u << 24,
                            .max_pending = 1u << 24, .clock = fake_clock};
  if (lmz_node_init(b->node = &b->node_mem, &b->loop, &o, err) ||
      lmz_node_register_module(b->node, "bench", bench_init, err))
    die("node", err);
  lmz_node_start(b->node);
  bench_node_bind(b, "TOUCH", "TouchDO", LMZ_NODE_DO);
  bench_node_bind(b, "DRIVER", "DriverDO", LMZ_NODE_DO);
}

static void emit_extra(const char *metric, double value, const char *unit,
                       double target, bool higher, const char *extra) {
  bool pass = higher ? value >= target : value <= target;
  printf("{\"scenario\":\"many_actors\",\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"",
         metric, value, unit);
  if (target > 0)
    printf(",\"target\":%.3f,\"pass\":%s", target, pass ? "true" : "false");
  printf("%s%s}\n", extra ? "," : "", extra ? extra : "");
  fflush(stdout);
  fprintf(stderr, "  %-34s %14.1f %-10s%s\n", metric, value, unit,
          target > 0 ? (pass ? "  (target met)" : "  (target MISSED)") : "");
}

static const char usage[] =
    "usage: bench_many_actors [--quick] [--actors N] [--seconds S]\n"
    "  touches N fresh actors once (default 1000000, --quick 20000), then\n"
    "  evicts them; S is ignored (the run lasts as long as N takes)\n";

/* Baseline heap and RSS, before any TouchDO exists. */
static double g_heap0, g_rss0;

/* Touches g_n fresh actors; emits the rate and the memory per active actor. */
static void touch_all(struct bench_node *b) {
  double t0 = now_s();
  bench_node_kick(b, "DRIVER", "d", "go");
  bench_node_run(b);
  double t_act = now_s() - t0;
  struct lmz_node_stats st;
  lmz_node_get_stats(b->node, &st);
  if (g_done != g_n || g_failed)
    die("touch", "not every actor answered with a number");
  if (st.active_actors < g_n)
    die("touch", "fewer actors active than touched (evicted during the run?)");
  double heap1 = heap_bytes(), rss1 = rss_bytes(), n = (double)g_n;
  char extra[160];
  snprintf(extra, sizeof extra, "\"actors\":%llu,\"seconds\":%.3f",
           (unsigned long long)g_n, t_act);
  emit_extra("activations_per_s", n / t_act, "actors/s", 100000, true, extra);
  snprintf(extra, sizeof extra, "\"rss_bytes_per_actor\":%.1f,\"heap_mb\":%.1f",
           (rss1 - g_rss0) / n, heap1 / 1e6);
  emit_extra("active.bytes_per_actor", (heap1 - g_heap0) / n, "B", 8192, false, extra);
  fprintf(stderr, "  RSS: %.1f MB before, %.1f MB active\n", g_rss0 / 1e6, rss1 / 1e6);
}

/* Moves the clock past idle_evict_ms, evicts; emits time and what is left. */
static void evict_all(struct bench_node *b) {
  struct lmz_node_stats st;
  lmz_node_get_stats(b->node, &st);
  uint64_t ev0 = st.evictions;
  g_fake_ms += 61000;
  double t0 = now_s();
  int evicted = lmz_node_evict_idle(b->node);
  bench_node_run(b);
  double t_ev = now_s() - t0;
  lmz_node_get_stats(b->node, &st);
  if (evicted < 0 || st.evictions - ev0 < g_n)
    die("evict", "not every touched actor was evicted");
  malloc_trim(0);
  double heap2 = heap_bytes(), rss2 = rss_bytes(), n = (double)g_n;
  char extra[160];
  snprintf(extra, sizeof extra, "\"evicted\":%llu", (unsigned long long)(st.evictions - ev0));
  emit_extra("evict.seconds", t_ev, "s", 0, false, extra);
  emit_extra("evict.per_s", (double)(st.evictions - ev0) / t_ev, "actors/s", 0, true, NULL);
  snprintf(extra, sizeof extra, "\"rss_bytes_per_actor\":%.1f,\"active_after\":%llu",
           (rss2 - g_rss0) / n, (unsigned long long)st.active_actors);
  emit_extra("evicted.bytes_per_actor", (heap2 - g_heap0) / n, "B", 1024, false, extra);
  fprintf(stderr, "  RSS after eviction: %.1f MB\n", rss2 / 1e6);
}

int main(int argc, char **argv) {
  g_n = 1000000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      g_n = 20000;
    else if (!strcmp(argv[i], "--actors") && i + 1 < argc)
      g_n = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      i++;
    else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (g_n < 1)
    die("--actors", "must be >= 1");
  g_fake_ms = 1.7e12;
  struct bench_node b;
  open_node(&b);
  /* Warm-up: 4 windows of other actors touched and evicted, so that the
   * node's pools, arenas and store buffers that do not grow with the
   * number of actors are in the baseline, not charged to the actors. */
  uint64_t want = g_n;
  g_prefix = 'w', g_n = 4 * WINDOW;
  bench_node_kick(&b, "DRIVER", "d", "go");
  bench_node_run(&b);
  g_fake_ms += 61000;
  lmz_node_evict_idle(b.node);
  bench_node_run(&b);
  g_prefix = 'a', g_n = want, g_sent = g_done = 0;
  malloc_trim(0);
  g_heap0 = heap_bytes(), g_rss0 = rss_bytes();
  fprintf(stderr, "many_actors: %llu actors, window %d; heap %.1f MB, RSS %.1f MB before\n",
          (unsigned long long)g_n, WINDOW, g_heap0 / 1e6, g_rss0 / 1e6);
  touch_all(&b);
  evict_all(&b);
  bench_node_close(&b);
  return 0;
}
