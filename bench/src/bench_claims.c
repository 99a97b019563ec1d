/* bench_claims - new actors activated per second, cluster-wide, on a real
 * 3-node cluster of lmzd processes on loopback (bench/src/cluster_bench.h).
 *
 *   claims.activations_per_s  --conns connections to EACH node (default 2,
 *                             so 6), --window calls in flight on each
 *                             (default 256), every call `activation()` on a
 *                             fresh COUNTER_DO instance name: the receiving
 *                             node asks the leader to claim it (claims are
 *                             batched into Raft entries), the owner
 *                             activates it and answers {node, activationId,
 *                             activatedAt}. Completions/s over S seconds,
 *                             after a warm-up of S/5.
 *   claims.latency_p50_ms /   one fresh activation at a time (through each
 *   claims.latency_p99_ms     node in turn): claim + activation latency.
 * Every answer is checked (an object naming a node); afterwards the
 * directory (status of the leader) must hold at least as many actors as
 * were activated. Placement per node and CPU per node are printed on
 * stderr.
 *
 * Target (cluster issue): >= 50,000 new activations/s. Anchor: Dapr actor
 * activation p50 2.3 ms. --seconds S: the throughput run (default 3,
 * --quick 0.5); the latency run is S/2. Exit 0 when measured; 1 when the
 * cluster did not start or an answer was wrong; 2 for bad usage. */
#define _GNU_SOURCE
#include "cluster_bench.h"

#define SCEN "claims"
#define MAX_CONNS 48

struct claims {
  struct cb_cluster cl;
  struct cb_conn conns[MAX_CONNS];
  int n_conns;
  lmz_buf chain; /* activation() */
  lmz_arena *arena;
  uint64_t per_node[CB_NODES + 1], decoded;
};

static struct claims C;

static void fresh_name(char *out, size_t n, int conn, uint64_t id) {
  snprintf(out, n, "cl%d-%llu", conn, (unsigned long long)id);
}

static int issue(void *arg, int i) {
  struct claims *c = arg;
  char name[48];
  fresh_name(name, sizeof name, i, c->conns[i].next_id);
  return cb_conn_call(&c->conns[i], "COUNTER_DO", name, &c->chain) ? 0 : LMZ_ENOMEM;
}

/* {node:"node-N", activationId, activatedAt}: counts the node. */
static int check(struct claims *c, const Lmz__Result *r) {
  char why[256];
  if (!cb_result_ok(r)) {
    cb_result_describe(r, why, sizeof why);
    fprintf(stderr, "claims: call %llu failed: %s\n", (unsigned long long)r->call_id, why);
    return -1;
  }
  if (++c->decoded % 4096 == 0)
    lmz_arena_reset(c->arena);
  lmz_value *v = NULL, *node;
  const char *s;
  if (lmz_bin_decode(c->arena, r->value.data, r->value.len, NULL, &v, NULL) ||
      lmz_typeof(v) != LMZ_T_OBJECT || !(node = lmz_object_getc(v, "node")) ||
      lmz_typeof(node) != LMZ_T_STRING || !(s = lmz_get_str(node, NULL)) ||
      strncmp(s, "node-", 5)) {
    fprintf(stderr, "claims: call %llu: not an activation record\n",
            (unsigned long long)r->call_id);
    return -1;
  }
  int k = atoi(s + 5);
  c->per_node[k >= 1 && k <= CB_NODES ? k : 0]++;
  return 0;
}

static int done(void *arg, int i, const Lmz__Result *r) {
  (void)i;
  return check(arg, r);
}

/* Fresh activations one at a time, through node 1, 2, 3 in turn. */
static int latency(double secs, size_t cap, double **out, size_t *n) {
  struct cb_conn lc[CB_NODES];
  int rv = 0, opened = 0;
  for (; opened < CB_NODES && !rv; opened++)
    rv = cb_conn_open(&lc[opened], C.cl.n[opened].addr, C.cl.key, 5000);
  double *v = malloc(cap * sizeof *v), end = cb_now() + secs;
  *n = 0;
  if (!rv && !v)
    rv = LMZ_ENOMEM;
  for (size_t i = 0; !rv && *n < cap && (i < 30 || cb_now() < end); i++) {
    struct cb_conn *c = &lc[i % CB_NODES];
    char name[48];
    fresh_name(name, sizeof name, 100 + (int)(i % CB_NODES), c->next_id);
    double t0 = cb_now();
    Lmz__Frame *fr = NULL;
    if (!cb_conn_call(c, "COUNTER_DO", name, &C.chain))
      rv = LMZ_ENOMEM;
    if (rv || (rv = cb_conn_flush(c)) || (rv = cb_conn_result(c, &fr, 10000)))
      break;
    double ms = (cb_now() - t0) * 1e3;
    rv = check(&C, fr->result);
    lmz_frame_free(fr);
    if (i >= 6)
      v[(*n)++] = ms;
  }
  if (rv)
    fprintf(stderr, "claims: latency run failed (%s)\n", rv == LMZ_ETIMEOUT ? "timeout" : "error");
  for (int i = 0; i < opened; i++)
    cb_conn_close(&lc[i]);
  *out = v;
  return rv;
}

/* The directory's actor count (sum over the nodes in the leader's status). */
static long long directory_actors(void) {
  char js[8192];
  int l = cb_leader(&C.cl);
  if (l < 0 || cb_status(&C.cl, l, js, sizeof js))
    return -1;
  const char *p = strstr(js, "\"nodes\":[");
  long long sum = 0;
  for (; p && (p = strstr(p, "\"actors\":")); p += 9)
    sum += (long long)cb_json_num(p, "actors");
  return sum;
}

static int open_conns(int per_node) {
  C.n_conns = per_node * CB_NODES;
  for (int i = 0; i < C.n_conns; i++)
    if (cb_conn_open(&C.conns[i], C.cl.n[i % CB_NODES].addr, C.cl.key, 5000)) {
      fprintf(stderr, "claims: connect to node %d: %s\n", i % CB_NODES + 1,
              C.conns[i].err);
      C.n_conns = i + 1;
      return -1;
    }
  return 0;
}

int main(int argc, char **argv) {
  struct cb_args a = cb_parse_args(argc, argv,
      "usage: bench_claims [--quick] [--seconds S] [--conns N] [--window W]\n"
      "  S: length of the throughput run (default 3, --quick 0.5); latency S/2\n"
      "  N: connections to each node (default 2), W: calls in flight per\n"
      "     connection (default 256)\n");
  double secs = a.seconds > 0 ? a.seconds : a.quick ? 0.5 : 3;
  int per_node = a.conns > 0 && a.conns <= MAX_CONNS / CB_NODES ? a.conns : 2;
  uint32_t window = a.window > 0 ? (uint32_t)a.window : 256;
  if (cb_cluster_start(&C.cl))
    return 1;
  if (!(C.arena = lmz_arena_new()) || cb_chain(&C.chain, "activation", NULL) ||
      open_conns(per_node))
    return 1;
  fprintf(stderr, "claims: leader node %d; %.1f s, %d conns (%d per node) x window %u\n",
          cb_leader(&C.cl) + 1, secs, C.n_conns, per_node, window);
  struct cb_pipe p = {C.conns, C.n_conns, window, issue, done, &C};
  double warm, rate, cpu[CB_NODES + 1], *lat;
  uint64_t n_warm, n_run;
  size_t n_lat;
  struct cb_cpu s0, s1;
  if (cb_pipe_run(&p, secs / 5, 20, &warm, &n_warm))
    return 1;
  memset(C.per_node, 0, sizeof C.per_node);
  cb_cpu_snap(&C.cl, &s0);
  if (cb_pipe_run(&p, secs, 20, &rate, &n_run))
    return 1;
  cb_cpu_snap(&C.cl, &s1);
  uint64_t pn[CB_NODES + 1];
  memcpy(pn, C.per_node, sizeof pn);
  double sys = cb_cpu_pct(&s0, &s1, cpu);
  for (int i = 0; i < C.n_conns; i++)
    cb_conn_close(&C.conns[i]);
  if (latency(secs / 2, a.quick ? 2000 : 100000, &lat, &n_lat) || !n_lat)
    return 1;
  long long dir = directory_actors();
  uint64_t activated = n_warm + n_run + n_lat;
  fprintf(stderr, "claims: %llu activations in the measured run: node1 %llu, node2 %llu, "
                  "node3 %llu; directory holds %lld actors (>= %llu expected)\n",
          (unsigned long long)n_run, (unsigned long long)pn[1],
          (unsigned long long)pn[2], (unsigned long long)pn[3], dir,
          (unsigned long long)activated);
  fprintf(stderr, "claims: CPU during the run: node1 %.0f%%, node2 %.0f%%, node3 %.0f%% "
                  "of a core, this client %.0f%%; machine %.0f%% busy (%ld cores, shared)\n",
          cpu[0], cpu[1], cpu[2], cpu[3], sys, sysconf(_SC_NPROCESSORS_ONLN));
  double core_s = 0;
  for (int i = 0; i <= CB_NODES; i++)
    core_s += cpu[i] / 100 * (s1.t - s0.t);
  double us_per = n_run ? core_s / (double)n_run * 1e6 : 0;
  double ours = core_s / (s1.t - s0.t) / (double)sysconf(_SC_NPROCESSORS_ONLN) * 100;
  fprintf(stderr, "claims: CPU %.1f us per activation (nodes + client, %.0f%% of the "
                  "machine); %s\n", us_per, ours,
          sys >= 85 || ours >= 70 ? "CPU-bound: the machine is saturated"
                                  : "the machine has idle CPU: waiting dominates (Raft "
                                    "commits, synced writes, round trips), not CPU");
  if (dir < (long long)activated) {
    fprintf(stderr, "claims: the directory lost claims\n");
    return 1;
  }
  double p50 = cb_quantile(lat, n_lat, .5), p99 = cb_quantile(lat, n_lat, .99);
  cb_emit(SCEN, "claims.activations_per_s", rate, "activations/s", 50000, true);
  cb_emit(SCEN, "claims.latency_p50_ms", p50, "ms", 0, false);
  cb_emit(SCEN, "claims.latency_p99_ms", p99, "ms", 0, false);
  fprintf(stderr, "claims: anchor: Dapr actor activation p50 2.3 ms (ours %.2f ms, "
                  "%zu samples)\n", p50, n_lat);
  free(lat);
  lmz_buf_free(&C.chain);
  lmz_arena_free(C.arena);
  cb_cluster_stop(&C.cl);
  return 0;
}
