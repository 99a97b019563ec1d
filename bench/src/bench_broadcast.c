/* bench_broadcast - one document update fanned out to many subscribed
 * WebSocket clients (the editor example's DocumentDO, examples/editor).
 *
 * Part 1 (as before): 1,000 clients on an `lmzd --dev` of this build that
 * the bench starts itself (ephemeral ports, temp data dir, killed at exit).
 * Part 2 (issue 13 item 5): a real 3-node loopback cluster
 * (cluster_bench.h) running the editor, clients spread round-robin over the
 * three nodes' gateways, for 1,000 and 10,000 subscribers (one pool of the
 * larger size; the first 1,000 subscribe to a second document), measured
 * twice on a fresh cluster each: the document's naive fan-out (one lmz_call
 * per subscriber: config var EDITOR_FANOUT=loop) and lmz_broadcast (one
 * Broadcast frame per owner node). Metrics are named
 * cluster.<loop|broadcast>.<N>.fanout.p50_ms etc.
 *
 * Setup: N C clients (clients/c/lmzc.h, one loop in this process) connect
 * and each calls DOCUMENT_DO.subscribe() on one document; each client
 * answers the incoming handleContentUpdate(doc, content) at once.
 * One update: client 0 (a subscriber: update is guarded to subscribers)
 * calls update("v<k> ..."); DocumentDO stores it and, in the same turn,
 * pushes it to every subscriber through the gateways. Fan-out time = from
 * sending the update frame to the moment the last client has received
 * version k; also the time to the first client. The next update starts when
 * all N have it and the update call was answered. Warm-up updates (not
 * counted) are sent until one reaches all N (warm_up: placements of
 * freshly connected clients may lag under load).
 *
 * Target: fan-out p50 <= 50 ms with 1,000 clients (--dev), and with 10,000
 * clients over the cluster through lmz_broadcast (the original measured
 * 790 ms p50 at 1,000 on its platform; one Cloudflare DO's send loop, 148 ms).
 * File descriptors: N sockets on each side; RLIMIT_NOFILE is raised to the
 * hard limit here and lmzd (a child) inherits it; both are checked.
 *
 * --seconds S: updates are measured for S seconds per case (at least 3 and
 * at most 1000 updates; default 3, --quick 0.5). --clients N (part 1,
 * default 1000). --cluster-clients A[,B] (part 2 sizes, ascending; default
 * 1000,10000, --quick 1000). --modes loop,broadcast (part 2). --dev-only /
 * --cluster-only run one part. */
#include "gw_bench.h"

#include "cluster_bench.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"

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

static char update_err[256]; /* the update's error, when it failed */

static void on_update(lmzc_t *c, void *data, int status, bool ok,
                      const lmz_value *v) {
  (void)c, (void)data;
  B.update_done = true;
  B.update_status = status;
  B.update_ok = ok;
  const char *m = !ok && v && lmz_typeof(v) == LMZ_T_ERROR ? lmz_error_message(v) : NULL;
  snprintf(update_err, sizeof update_err, "%s", m ? m : lmz_strerror(status));
}

static bool update_over(void *arg) {
  (void)arg;
  return B.update_done && B.received == B.n;
}

/* Sends update k and waits up to `wait_s` until every client has it and
 * the update is answered; false when some did not get it by then. */
static bool send_update(uv_loop_t *loop, lmzc_t *updater, const char *doc,
                        uint32_t k, double wait_s) {
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
  return gb_run_until(loop, update_over, NULL, wait_s);
}

/* Sends update k and waits until every client has it; returns ms to the
 * last client and (via *first) to the first. */
static double one_update(uv_loop_t *loop, lmzc_t *updater, const char *doc,
                         uint32_t k, double *first) {
  if (!send_update(loop, updater, doc, k, 60))
    gb_die("update %u: %d of %d clients got it, update %s", k, B.received, B.n,
           B.update_done ? "answered" : "not answered");
  if (B.update_status || !B.update_ok)
    gb_die("update %u failed: %s", k, update_err);
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

/* Clients 0..n-1 subscribe to doc; B.n = n from now on. */
static void subscribe_all(uv_loop_t *loop, struct gb_pool *pool, const char *doc,
                          int n) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "subscribe", 0, NULL);
  double t0 = gb_now();
  B.n = n;
  B.subscribed = B.sub_failed = 0;
  for (int i = 0; i < B.n; i++) {
    lmzc_on_incoming(pool->v[i].c, on_incoming, &B.s[i]);
    if (lmzc_call(pool->v[i].c, "DOCUMENT_DO", doc, chain, on_subscribed, NULL))
      gb_die("subscribe call: %s", lmzc_errmsg(pool->v[i].c));
  }
  lmz_arena_free(a);
  if (!gb_run_until(loop, all_subscribed, NULL, 120 + n / 50) || B.sub_failed)
    gb_die("%d of %d subscribed (%d failed)", B.subscribed, B.n, B.sub_failed);
  fprintf(stderr, "  %d clients subscribed in %.2f s\n", B.n, gb_now() - t0);
}

/* The warm-up update, then updates for `secs`; prints the results. */
static uint32_t next_version = 1; /* versions grow across documents */

/* Warm-up updates until one reaches every subscriber. A client's gateway
 * actor is placed (a raft claim) when it connects; until the document's
 * node has applied that claim, a push to the client runs there and fails
 * "Client is not connected" (logged by lmzd). Under heavy load the last
 * claims of a large pool can lag the subscriptions by seconds: measuring
 * then would time deliveries that never come. */
static void warm_up(uv_loop_t *loop, lmzc_t *updater, const char *doc) {
  double t0 = gb_now();
  for (int i = 0; i < 20; i++) {
    if (send_update(loop, updater, doc, next_version++, 10)) {
      fprintf(stderr, "  warm-up: update %d reached all %d clients, after %.2f s\n",
              i + 1, B.n, gb_now() - t0);
      return;
    }
    fprintf(stderr, "  warm-up: %d of %d clients got update %d, again\n", B.received,
            B.n, i + 1);
    if (B.update_done && (B.update_status || !B.update_ok))
      gb_die("warm-up update failed: %s", update_err);
    if (!B.update_done && !gb_run_until(loop, gb_flag, &B.update_done, 30))
      gb_die("warm-up update not answered");
  }
  gb_die("no warm-up update reached every client");
}

/* The warm-up update, then updates for `secs`; emits <prefix>fanout.p50_ms
 * and friends (target: fan-out p50, 0 = none). CPU: of `pids` (n_pids). */
static void measure_updates(uv_loop_t *loop, lmzc_t *updater, const char *doc,
                            double secs, const char *prefix, double target,
                            const pid_t *pids, int n_pids) {
  warm_up(loop, updater, doc);
  enum { MAX_UPDATES = 1000 };
  static double last_ms[MAX_UPDATES], first_ms[MAX_UPDATES];
  int k = 0;
  double cpu_srv0 = 0, cpu_self0 = gb_self_cpu();
  for (int i = 0; i < n_pids; i++)
    cpu_srv0 += gb_proc_cpu(pids[i]);
  double t0 = gb_now();
  while (k < MAX_UPDATES && (k < 3 || gb_now() - t0 < secs)) {
    last_ms[k] = one_update(loop, updater, doc, next_version++, &first_ms[k]);
    k++;
  }
  double wall = gb_now() - t0;
  double cpu_srv = -cpu_srv0;
  for (int i = 0; i < n_pids; i++)
    cpu_srv += gb_proc_cpu(pids[i]);
  cpu_srv /= wall;
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
  char name[128];
  snprintf(name, sizeof name, "%sfanout.p50_ms", prefix);
  gb_emit(name, p50, "ms", target, false, extra);
  snprintf(name, sizeof name, "%sfanout.max_ms", prefix);
  gb_emit(name, mx, "ms", 0, false, NULL);
  snprintf(name, sizeof name, "%sfirst_client.p50_ms", prefix);
  gb_emit(name, f50, "ms", 0, false, NULL);
  snprintf(name, sizeof name, "%sdeliveries_s", prefix);
  gb_emit(name, p50 > 0 ? (double)B.n / (p50 / 1000.0) : 0, "msgs/s", 0, true, NULL);
}

/* ---- part 1: one lmzd --dev ------------------------------------------------- */

static void run_dev(const char *lmzd, int n, double secs) {
  rlim_t lim = gb_raise_nofile((rlim_t)n + 64);
  gb_start_lmzd(lmzd);
  unsigned long long srv_lim = gb_proc_nofile(gb_srv.pid);
  fprintf(stderr, "broadcast: lmzd %s (pid %d), open files: bench %llu, lmzd %llu; "
                  "%d clients, %.2f s of updates\n",
          gb_srv.url, (int)gb_srv.pid, (unsigned long long)lim, srv_lim, n, secs);
  if (srv_lim && srv_lim < (unsigned long long)n + 64)
    gb_die("lmzd may open only %llu files", srv_lim);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  gb_fetch_token(&loop, &tok);
  B.s = calloc((size_t)n, sizeof *B.s);
  struct gb_pool pool;
  gb_pool_open(&pool, &loop, n, &tok, "b");
  char doc[64];
  snprintf(doc, sizeof doc, "bench-doc-%d", (int)getpid());
  subscribe_all(&loop, &pool, doc, n);
  measure_updates(&loop, pool.v[0].c, doc, secs, "", 50, &gb_srv.pid, 1);
  if (pool.n_disconnected)
    gb_die("%d clients were disconnected during the run", pool.n_disconnected);
  gb_pool_close(&pool);
  free(B.s);
  B.s = NULL;
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  gb_stop_lmzd();
}

/* ---- part 2: a 3-node cluster ------------------------------------------- */

static char app_json[4 * CB_PATH];

/* The editor on every node; fan-out mode by config var. */
static void set_app(const char *mode) {
  char dir[CB_PATH]; /* $LMZ_LIB_DIR, else next to bin/: ../lib */
  const char *env = getenv("LMZ_LIB_DIR");
  if (env && *env) {
    snprintf(dir, sizeof dir, "%s", env);
  } else {
    ssize_t k = readlink("/proc/self/exe", dir, sizeof dir - 8);
    if (k <= 0)
      gb_die("readlink /proc/self/exe");
    dir[k] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash)
      *slash = '\0';
    strcat(dir, "/../lib");
  }
  snprintf(app_json, sizeof app_json,
           "  \"modules\": [\"%s/libeditor.so\"],\n"
           "  \"durable_objects\": {\"bindings\": [\n"
           "    {\"name\": \"DOCUMENT_DO\", \"class_name\": \"DocumentDO\"}]},\n"
           "  \"services\": [{\"binding\": \"SPELLCHECK_WORKER\", "
           "\"entrypoint\": \"SpellCheckWorker\"}],\n"
           "  \"vars\": {\"EDITOR_FANOUT\": \"%s\"},\n"
           "  \"gateway\": {\"jwt\": {\"dev_keys\": true}},\n",
           dir, mode);
}

/* One set of dev JWT keys for the whole cluster (as deploy/dev-cluster.sh):
 * made in node 1's data dir, copied to the others before they start. */
static int share_jwt_keys(struct cb_cluster *c) {
  struct lmz_jwt_keyset ks;
  memset(&ks, 0, sizeof ks);
  char err[LMZ_ERRMSG_LEN] = "", src[CB_PATH + 32], dst[CB_PATH + 32];
  if (lmz_keys_dev_load_or_create(c->n[0].data, &ks, NULL, err)) {
    fprintf(stderr, "cluster: dev keys: %s\n", err);
    return -1;
  }
  snprintf(src, sizeof src, "%s/jwt-keys.json", c->n[0].data);
  for (int i = 1; i < CB_NODES; i++) {
    snprintf(dst, sizeof dst, "%s/jwt-keys.json", c->n[i].data);
    char cmd[3 * CB_PATH];
    snprintf(cmd, sizeof cmd, "install -m 600 '%s' '%s'", src, dst);
    if (system(cmd) != 0)
      return -1;
  }
  return 0;
}

static void mint_token(const struct cb_cluster *c, struct gb_token *t) {
  struct lmz_jwt_keyset ks;
  memset(&ks, 0, sizeof ks);
  memset(t, 0, sizeof *t);
  char err[LMZ_ERRMSG_LEN] = "";
  if (lmz_keys_dev_load(c->n[0].data, &ks, err))
    gb_die("dev keys: %s", err);
  snprintf(t->sub, sizeof t->sub, "bench%d", (int)getpid());
  struct lmz_jwt_claims_opts o = {.sub = t->sub, .now_s = (int64_t)time(NULL),
                                  .ttl_s = 3600};
  lmz_buf payload = LMZ_BUF_INIT, tok = LMZ_BUF_INIT;
  if (lmz_jwt_build_claims(&o, &payload, err) ||
      lmz_jwt_mint(&ks, NULL, (const char *)payload.data, payload.len, &tok) ||
      tok.len >= sizeof t->token)
    gb_die("cannot mint a token");
  memcpy(t->token, tok.data, tok.len);
  t->done = true;
  lmz_buf_free(&payload);
  lmz_buf_free(&tok);
}

static void node_urls(const struct cb_cluster *c, char urls[CB_NODES][64]) {
  for (int i = 0; i < CB_NODES; i++) {
    char path[CB_PATH + 32];
    snprintf(path, sizeof path, "%s/http.port", c->n[i].data);
    FILE *f = fopen(path, "r");
    int port = 0;
    if (!f || fscanf(f, "%d", &port) != 1 || port <= 0)
      gb_die("node %d reported no HTTP port (%s)", i + 1, path);
    fclose(f);
    snprintf(urls[i], 64, "ws://127.0.0.1:%d", port);
  }
}

/* One mode on a fresh cluster: a pool of sizes[n_sizes-1] clients, one
 * document per size. */
static void run_mode(struct cb_cluster *c, bool first, const char *mode,
                     const int *sizes, int n_sizes, double secs) {
  set_app(mode);
  c->app_json = app_json;
  c->before_spawn = share_jwt_keys;
  if (first ? cb_cluster_start(c) : cb_cluster_fresh(c))
    gb_die("the cluster did not start");
  char urls[CB_NODES][64];
  const char *up[CB_NODES];
  node_urls(c, urls);
  for (int i = 0; i < CB_NODES; i++)
    up[i] = urls[i];
  pid_t pids[CB_NODES];
  for (int i = 0; i < CB_NODES; i++)
    pids[i] = c->n[i].pid;
  int max = sizes[n_sizes - 1];
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct gb_token tok;
  mint_token(c, &tok);
  B.s = calloc((size_t)max, sizeof *B.s);
  struct gb_pool pool;
  double t0 = gb_now();
  gb_pool_open_urls(&pool, &loop, max, &tok, "c", up, CB_NODES);
  fprintf(stderr, "broadcast (cluster, %s): %d clients connected over 3 nodes in "
                  "%.2f s\n", mode, max, gb_now() - t0);
  for (int k = 0; k < n_sizes; k++) {
    char doc[64], prefix[64];
    snprintf(doc, sizeof doc, "bench-doc-%d-%s-%d", (int)getpid(), mode, sizes[k]);
    snprintf(prefix, sizeof prefix, "cluster.%s.%d.", mode, sizes[k]);
    subscribe_all(&loop, &pool, doc, sizes[k]);
    bool target = !strcmp(mode, "broadcast") && sizes[k] >= 10000;
    measure_updates(&loop, pool.v[0].c, doc, secs, prefix, target ? 50 : 0, pids,
                    CB_NODES);
  }
  if (pool.n_disconnected)
    gb_die("%d clients were disconnected during the run", pool.n_disconnected);
  gb_pool_close(&pool);
  free(B.s);
  B.s = NULL;
  uv_run(&loop, UV_RUN_NOWAIT);
  uv_loop_close(&loop);
  cb_cluster_stop(c);
}

static int parse_sizes(const char *s, int *out, int cap) {
  int n = 0;
  while (s && *s && n < cap) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 1 || v > 100000 || (n && v < out[n - 1]))
      return 0;
    out[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      return 0;
  }
  return n;
}

static const char usage[] =
    "usage: bench_broadcast [--quick] [--seconds S] [--clients N] [--lmzd PATH]\n"
    "                       [--cluster-clients A[,B]] [--modes loop,broadcast]\n"
    "                       [--dev-only | --cluster-only]\n"
    "  S: seconds of measured updates per case (default 3, --quick 0.5)\n"
    "  part 1: N clients on one lmzd --dev (default 1000)\n"
    "  part 2: a 3-node cluster, A and B subscribers (default 1000,10000;\n"
    "          --quick 1000), the naive loop and lmz_broadcast\n";

int main(int argc, char **argv) {
  gb_scenario = "broadcast";
  double secs = 0;
  const char *lmzd = NULL, *sizes_arg = NULL, *modes = "loop,broadcast";
  bool quick = false, dev = true, cluster = true;
  int n = 1000;
  for (int i = 1; i < argc; i++) {
    bool has = i + 1 < argc;
    if (!strcmp(argv[i], "--quick"))
      quick = true;
    else if (!strcmp(argv[i], "--seconds") && has)
      secs = atof(argv[++i]);
    else if (!strcmp(argv[i], "--clients") && has)
      n = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--lmzd") && has)
      lmzd = argv[++i];
    else if (!strcmp(argv[i], "--cluster-clients") && has)
      sizes_arg = argv[++i];
    else if (!strcmp(argv[i], "--modes") && has)
      modes = argv[++i];
    else if (!strcmp(argv[i], "--dev-only"))
      cluster = false;
    else if (!strcmp(argv[i], "--cluster-only"))
      dev = false;
    else {
      fputs(usage, strcmp(argv[i], "--help") ? stderr : stdout);
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (secs <= 0)
    secs = quick ? 0.5 : 3;
  int sizes[4];
  int n_sizes = parse_sizes(sizes_arg ? sizes_arg : quick ? "1000" : "1000,10000",
                            sizes, 4);
  if (n < 1 || !n_sizes)
    gb_die("bad --clients or --cluster-clients");
  if (dev)
    run_dev(lmzd, n, secs);
  if (!cluster)
    return 0;
  rlim_t lim = gb_raise_nofile((rlim_t)sizes[n_sizes - 1] + 256);
  fprintf(stderr, "broadcast (cluster): open files %llu; sizes", (unsigned long long)lim);
  for (int i = 0; i < n_sizes; i++)
    fprintf(stderr, " %d", sizes[i]);
  fprintf(stderr, "; modes %s; %.2f s of updates each\n", modes, secs);
  static struct cb_cluster c;
  bool first = true;
  const char *names[] = {"loop", "broadcast"};
  for (int m = 0; m < 2; m++) {
    if (!strstr(modes, names[m]))
      continue;
    run_mode(&c, first, names[m], sizes, n_sizes, secs);
    first = false;
  }
  return 0;
}
