/* bench_broadcast - one document update fanned out to 1,000 subscribed
 * WebSocket clients (the editor example's DocumentDO, examples/editor), on
 * an `lmzd --dev` of this build that the bench starts itself (ephemeral
 * ports, temp data dir, killed at exit).
 *
 * Setup: N C clients (clients/c/lmzc.h, one loop in this process) connect
 * and each calls DOCUMENT_DO.subscribe() on one document; each client
 * answers the incoming handleContentUpdate(doc, content) at once.
 * One update: client 0 (a subscriber: update is guarded to subscribers)
 * calls update("v<k> ..."); DocumentDO stores it and, in the same turn,
 * calls handleContentUpdate on every subscriber through the gateway (one
 * incoming_call per socket). Fan-out time = from sending the update frame
 * to the moment the last client has received version k; also the time to
 * the first client. The next update starts when all N have it and the
 * update call was answered. One warm-up update is not counted.
 *
 * Target: fan-out p50 <= 50 ms with 1,000 clients (the original measured
 * 790 ms on its platform; one Cloudflare DO's send loop, 148 ms).
 * File descriptors: N sockets on each side; RLIMIT_NOFILE is raised to the
 * hard limit here and lmzd (a child) inherits it; both are checked.
 *
 * --seconds S: updates are measured for S seconds (at least 3 and at most
 * 1000 updates; default 3, --quick 0.5). --clients N (default 1000). */
#include "gw_bench.h"

#define CONTENT_PAD "The quick brown fox jumps over the lazy dog; lorem ipsum dolor sit amet."

struct subr {
  uint32_t seen; /* the last version this client received */
  bool answered_ok;
};

static struct {
  int n;
  struct subr *s;
  uint32_t version;     /* the update in flight */
  uint64_t t0;          /* when its frame was sent (ns) */
  uint64_t t_first, t_last;
  int received;
  bool update_done;
  int update_status;
  bool update_ok;
  uint64_t bad;         /* unexpected incoming calls */
  int subscribed, sub_failed;
} B;

static void on_incoming(lmzc_t *c, lmzc_incoming_t *in, void *data) {
  (void)c;
  struct subr *s = data;
  const char *method;
  const lmz_value *args;
  const char *content = NULL;
  if (lmzc_chain_method(in->chain, &method, &args) &&
      !strcmp(method, "handleContentUpdate") && lmz_len(args) == 2)
    content = lmz_get_str(lmz_array_get(args, 1), NULL);
  unsigned v = 0;
  if (!content || sscanf(content, "v%u ", &v) != 1) {
    B.bad++;
    lmzc_respond(in, false, lmz_error(in->arena, "Error", "unexpected call"));
    return;
  }
  if (v == B.version && s->seen < v) {
    uint64_t now = uv_hrtime();
    s->seen = v;
    if (B.received++ == 0)
      B.t_first = now;
    B.t_last = now;
  }
  lmzc_respond(in, true, lmz_undefined());
}

static void on_subscribed(lmzc_t *c, void *data, int status, bool ok,
                          const lmz_value *v) {
  (void)c, (void)data, (void)v;
  if (status || !ok)
    B.sub_failed++;
  else
    B.subscribed++;
}

static bool all_subscribed(void *arg) {
  (void)arg;
  return B.subscribed + B.sub_failed == B.n;
}

static void on_update(lmzc_t *c, void *data, int status, bool ok,
                      const lmz_value *v) {
  (void)c, (void)data, (void)v;
  B.update_done = true;
  B.update_status = status;
  B.update_ok = ok;
}

static bool update_over(void *arg) {
  (void)arg;
  return B.update_done && B.received == B.n;
}

/* Sends update k and waits until every client has it; returns ms to the
 * last client and (via *first) to the first. */
static double one_update(uv_loop_t *loop, lmzc_t *updater, const char *doc,
                         uint32_t k, double *first) {
  lmz_arena *a = lmz_arena_new();
  char text[160];
  snprintf(text, sizeof text, "v%u %s", k, CONTENT_PAD);
  lmz_value *arg = lmz_cstring(a, text);
  lmz_value *chain = lmzc_method_chain(a, "update", 1, &arg);
  B.version = k;
  B.received = 0;
  B.update_done = false;
  B.t0 = uv_hrtime();
  if (!chain || lmzc_call(updater, "DOCUMENT_DO", doc, chain, on_update, NULL))
    gb_die("update call: %s", lmzc_errmsg(updater));
  lmz_arena_free(a);
  if (!gb_run_until(loop, update_over, NULL, 60))
    gb_die("update %u: %d of %d clients got it, update %s", k, B.received, B.n,
           B.update_done ? "answered" : "not answered");
  if (B.update_status || !B.update_ok)
    gb_die("update %u failed (%s)", k, lmz_strerror(B.update_status));
  *first = (double)(B.t_first - B.t0) / 1e6;
  return (double)(B.t_last - B.t0) / 1e6;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void subscribe_all(uv_loop_t *loop, struct gb_pool *pool, const char *doc) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "subscribe", 0, NULL);
  double t0 = gb_now();
  for (int i = 0; i < B.n; i++) {
    lmzc_on_incoming(pool->v[i].c, on_incoming, &B.s[i]);
    if (lmzc_call(pool->v[i].c, "DOCUMENT_DO", doc, chain, on_subscribed, NULL))
      gb_die("subscribe call: %s", lmzc_errmsg(pool->v[i].c));
  }
  lmz_arena_free(a);
  if (!gb_run_until(loop, all_subscribed, NULL, 120) || B.sub_failed)
    gb_die("%d of %d subscribed (%d failed)", B.subscribed, B.n, B.sub_failed);
  fprintf(stderr, "  %d clients subscribed in %.2f s\n", B.n, gb_now() - t0);
}

/* The warm-up update, then updates for `secs`; prints the results. */
static void measure_updates(uv_loop_t *loop, lmzc_t *updater, const char *doc,
                            double secs) {
  double first, warm = one_update(loop, updater, doc, 1, &first);
  fprintf(stderr, "  warm-up update: last client after %.2f ms\n", warm);
  enum { MAX_UPDATES = 1000 };
  static double last_ms[MAX_UPDATES], first_ms[MAX_UPDATES];
  int k = 0;
  double cpu_srv0 = gb_proc_cpu(gb_srv.pid), cpu_self0 = gb_self_cpu();
  double t0 = gb_now();
  while (k < MAX_UPDATES && (k < 3 || gb_now() - t0 < secs)) {
    last_ms[k] = one_update(loop, updater, doc, (uint32_t)k + 2, &first_ms[k]);
    k++;
  }
  double wall = gb_now() - t0;
  double cpu_srv = (gb_proc_cpu(gb_srv.pid) - cpu_srv0) / wall;
  double cpu_self = (gb_self_cpu() - cpu_self0) / wall;
  double mx = 0;
  for (int i = 0; i < k; i++)
    mx = last_ms[i] > mx ? last_ms[i] : mx;
  double p50 = median(last_ms, k), f50 = median(first_ms, k);
  if (B.bad)
    gb_die("%llu unexpected incoming calls", (unsigned long long)B.bad);
  char extra[256];
  snprintf(extra, sizeof extra,
           "\"clients\":%d,\"updates\":%d,\"lmzd_cpu\":%.2f,\"bench_cpu\":%.2f,"
           "\"loadavg\":%.2f",
           B.n, k, cpu_srv, cpu_self, gb_loadavg());
  gb_emit("fanout.p50_ms", p50, "ms", 50, false, extra);
  gb_emit("fanout.max_ms", mx, "ms", 0, false, NULL);
  gb_emit("first_client.p50_ms", f50, "ms", 0, false, NULL);
  gb_emit("deliveries_s", p50 > 0 ? (double)B.n / (p50 / 1000.0) : 0, "msgs/s", 0,
          true, NULL);
}

static const char usage[] =
    "usage: bench_broadcast [--quick] [--seconds S] [--clients N] [--lmzd PATH]\n"
    "  S: seconds of measured updates (default 3, --quick 0.5; 3..1000 updates)\n";

int main(int argc, char **argv) {
  gb_scenario = "broadcast";
  double secs = 3;
  const char *lmzd = NULL;
  B.n = 1000;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      secs = 0.5;
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "--clients") && i + 1 < argc)
      B.n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--lmzd") && i + 1 < argc)
      lmzd = argv[++i];
    else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (secs <= 0 || B.n < 1)
    gb_die("bad --seconds or --clients");
  rlim_t lim = gb_raise_nofile((rlim_t)B.n + 64);
  gb_start_lmzd(lmzd);
  unsigned long long srv_lim = gb_proc_nofile(gb_srv.pid);
  fprintf(stderr, "broadcast: lmzd %s (pid %d), open files: bench %llu, lmzd %llu; "
                  "%d clients, %.2f s of updates\n",
          gb_srv.url, (int)gb_srv.pid, (unsigned long long)lim, srv_lim, B.n, secs);
  if (srv_lim && srv_lim < (unsigned long long)B.n + 64)
    gb_die("lmzd may open only %llu files", srv_lim);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  gb_fetch_token(&loop, &tok);
  B.s = calloc((size_t)B.n, sizeof *B.s);
  struct gb_pool pool;
  gb_pool_open(&pool, &loop, B.n, &tok, "b");
  char doc[64];
  snprintf(doc, sizeof doc, "bench-doc-%d", (int)getpid());
  subscribe_all(&loop, &pool, doc);

  measure_updates(&loop, pool.v[0].c, doc, secs);
  if (pool.n_disconnected)
    gb_die("%d clients were disconnected during the run", pool.n_disconnected);
  gb_pool_close(&pool);
  free(B.s);
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  return 0;
}
