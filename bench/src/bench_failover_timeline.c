/* bench_failover_timeline - completed durable calls per 100 ms across a
 * leader kill and an owner kill (issue 12's failover plot), on a real
 * 3-node cluster of lmzd processes on loopback (cluster_bench.h, the
 * default replication factor).
 *
 * 120 COUNTER_DO actors are created and located; each then keeps one
 * increment() in flight, sent through the live node connections in turn
 * (a failed answer is retried 5 ms later; a call unanswered for 5 s is
 * given up and sent again elsewhere). Answers are counted in 100 ms bins
 * from the start. Events, S = --seconds (default 1, --quick 0.3):
 *   t = S            SIGKILL the Raft leader (its connection is dropped)
 *   + 3 S (>= 1 s)   the leader starts again on its data (not used again)
 *   + 3 S (>= 1 s)   SIGKILL the live follower that owns the most actors
 *   + 3 s            it starts again on its data (--quick: 1.5 s)
 *   + 2 s            end (--quick: 1 s)
 * Metrics: steady.calls_per_s (median bin before the first kill, x10),
 * leader_kill.gap_ms / owner_kill.gap_ms (kill -> the end of the first bin
 * back at >= 50% of steady; owner_kill target <= 4000 ms, the lease + 1 s,
 * as failover_do), leader_kill.min_calls_per_s / owner_kill.min_... (the
 * worst bin after each kill), timeline.bins. The whole timeline goes to
 * $LMZ_BENCH_OUT/failover_timeline.tsv ("ms<TAB>calls/s<TAB>event"; bench/run
 * sets LMZ_BENCH_OUT and plots it as failover.png/.svg); without
 * LMZ_BENCH_OUT it is not written. Exit 1 when the cluster does not start
 * or no call is ever answered. */
#define _GNU_SOURCE
#include "cluster_bench.h"

#define SCEN "failover_timeline"
#define ACTORS 120
#define BIN_S 0.1
#define MAX_BINS 1000
#define GIVE_UP_S 5.0

struct act {
  char name[32];
  int owner, conn; /* node indexes; conn -1: no call in flight */
  uint64_t call;
  double sent, next;
};

static struct cb_cluster CL;
static struct cb_conn C[CB_NODES];
static bool live[CB_NODES];
static struct act A[ACTORS];
static lmz_buf g_inc;
static double t0;
static uint32_t bins[MAX_BINS];
static const char *events[MAX_BINS];
static uint64_t n_failed, n_lost;
static int turn;

static void drop_conn(int k) {
  if (!live[k])
    return;
  live[k] = false;
  cb_conn_close(&C[k]);
  for (int i = 0; i < ACTORS; i++)
    if (A[i].conn == k)
      A[i].conn = -1, A[i].next = 0;
}

static void send_due(void) {
  double now = cb_now();
  for (int i = 0; i < ACTORS; i++) {
    struct act *a = &A[i];
    if (a->conn >= 0 && now - a->sent > GIVE_UP_S)
      a->conn = -1, n_lost++; /* its late answer will not match */
    if (a->conn >= 0 || a->next > now)
      continue;
    for (int tries = 0; tries < CB_NODES; tries++) {
      int k = turn++ % CB_NODES;
      if (!live[k])
        continue;
      if ((a->call = cb_conn_call(&C[k], "COUNTER_DO", a->name, &g_inc)))
        a->conn = k, a->sent = now;
      break;
    }
  }
}

static void collect(int k) {
  if (cb_conn_read(&C[k]) < 0) {
    fprintf(stderr, "%s: node %d's connection: %s\n", SCEN, k + 1, C[k].err);
    return drop_conn(k);
  }
  Lmz__Frame *f;
  while (cb_conn_next(&C[k], &f) == 1) {
    if (f->body_case == LMZ__FRAME__BODY_RESULT) {
      C[k].in_flight--;
      for (int i = 0; i < ACTORS; i++) {
        struct act *a = &A[i];
        if (a->conn != k || a->call != f->result->call_id)
          continue;
        a->conn = -1;
        double now = cb_now();
        if (cb_result_ok(f->result)) {
          long b = (long)((now - t0) / BIN_S);
          if (b >= 0 && b < MAX_BINS)
            bins[b]++;
        } else {
          n_failed++;
          a->next = now + 0.005;
        }
        break;
      }
    }
    lmz_frame_free(f);
  }
}

/* Runs the load until t0 + until_s. */
static void run_until(double until_s) {
  while (cb_now() < t0 + until_s) {
    send_due();
    struct pollfd pf[CB_NODES];
    for (int k = 0; k < CB_NODES; k++) {
      if (live[k] && cb_conn_flush(&C[k]))
        drop_conn(k);
      pf[k] = (struct pollfd){live[k] ? C[k].fd : -1, POLLIN, 0};
    }
    if (poll(pf, CB_NODES, 2) > 0)
      for (int k = 0; k < CB_NODES; k++)
        if (live[k] && pf[k].revents)
          collect(k);
  }
}

static void mark(const char *what) {
  long b = (long)((cb_now() - t0) / BIN_S);
  if (b >= 0 && b < MAX_BINS)
    events[b] = what;
  fprintf(stderr, "%s: %.2f s: %s\n", SCEN, cb_now() - t0, what);
}

static int setup(void) {
  int rv = 0;
  for (int k = 0; k < CB_NODES && !rv; k++)
    live[k] = !(rv = cb_conn_open(&C[k], CL.n[k].addr, CL.key, 5000));
  for (int i = 0; i < ACTORS; i++) {
    snprintf(A[i].name, sizeof A[i].name, "tl-%d", i);
    A[i].conn = -1;
    A[i].owner = -1;
  }
  t0 = cb_now();
  run_until(2.0); /* activation: every actor answered at least once */
  memset(bins, 0, sizeof bins);
  char err[LMZ_ERRMSG_LEN], js[4096];
  lmz_rpc_client *rc;
  int leader = cb_leader(&CL);
  if (rv || leader < 0 || lmz_rpc_connect(&rc, CL.n[leader].addr, CL.key, 3000, err))
    return -1;
  for (int i = 0; i < ACTORS; i++)
    if (!cb_status_ask(rc, 2, "COUNTER_DO", A[i].name, js, sizeof js) &&
        strstr(js, "\"placed\":true")) {
      unsigned long long n = cb_json_num(js, "node");
      A[i].owner = n >= 1 && n <= CB_NODES ? (int)n - 1 : -1;
    }
  lmz_rpc_close(rc);
  return 0;
}

/* Among live followers: the one owning the most actors (-1: none). */
static int pick_owner(void) {
  int leader = cb_leader(&CL), count[CB_NODES] = {0}, best = -1;
  for (int i = 0; i < ACTORS; i++)
    if (A[i].owner >= 0)
      count[A[i].owner]++;
  for (int k = 0; k < CB_NODES; k++)
    if (live[k] && k != leader && (best < 0 || count[k] > count[best]))
      best = k;
  return best;
}

static double median_rate(int from, int to) {
  double v[MAX_BINS];
  int n = 0;
  for (int b = from; b < to && b < MAX_BINS; b++)
    v[n++] = bins[b] / BIN_S;
  return cb_quantile(v, (size_t)n, 0.5);
}

/* Kill at time k (s): gap to the first bin >= half of steady, and the worst bin. */
static void judge(const char *what, double k_s, double end_s, double steady, double target) {
  int kb = (int)(k_s / BIN_S), eb = (int)(end_s / BIN_S), back = -1;
  double worst = 1e18;
  for (int b = kb; b < eb && b < MAX_BINS; b++) {
    double r = bins[b] / BIN_S;
    worst = r < worst ? r : worst;
    if (back < 0 && b > kb && r >= steady / 2)
      back = b;
  }
  char m[96];
  snprintf(m, sizeof m, "%s.gap_ms", what);
  double gap = back < 0 ? (end_s - k_s) * 1e3 : ((back + 1) * BIN_S - k_s) * 1e3;
  cb_emit(SCEN, m, gap, "ms", target, false);
  snprintf(m, sizeof m, "%s.min_calls_per_s", what);
  cb_emit(SCEN, m, worst, "calls/s", 0, true);
}

static void write_timeline(int n_bins) {
  const char *dir = getenv("LMZ_BENCH_OUT");
  if (!dir || !*dir)
    return;
  char path[CB_PATH];
  snprintf(path, sizeof path, "%s/failover_timeline.tsv", dir);
  FILE *f = fopen(path, "w");
  for (int b = 0; f && b < n_bins; b++)
    fprintf(f, "%d\t%.0f\t%s\n", (int)(b * BIN_S * 1000), bins[b] / BIN_S,
            events[b] ? events[b] : "");
  if (f)
    fclose(f);
}

int main(int argc, char **argv) {
  struct cb_args a = cb_parse_args(argc, argv,
      "usage: bench_failover_timeline [--quick] [--seconds S]\n"
      "  S: steady load before the leader kill (default 1, --quick 0.3); the\n"
      "     leader restarts 3 S later (>= 1 s), the owner is killed 3 S after that\n");
  double s = a.seconds > 0 ? a.seconds : a.quick ? 0.3 : 1;
  double step = 3 * s > 1 ? 3 * s : 1;
  double one = 1;
  if (cb_cluster_start(&CL) || cb_chain(&g_inc, "increment", &one))
    return 1;
  if (setup()) {
    fprintf(stderr, "%s: setup failed (connections, leader or locating)\n", SCEN);
    return 1;
  }
  t0 = cb_now();
  run_until(s);
  int leader = cb_leader(&CL);
  if (leader < 0)
    return fprintf(stderr, "%s: no leader\n", SCEN), 1;
  double t_lk = cb_now() - t0;
  mark("leader kill");
  cb_kill_node(&CL, leader);
  drop_conn(leader);
  run_until(t_lk + step);
  mark("leader restart");
  if (cb_spawn(&CL, leader))
    return 1;
  run_until(t_lk + 2 * step);
  int victim = pick_owner();
  if (victim < 0)
    return fprintf(stderr, "%s: no live follower owning actors\n", SCEN), 1;
  double t_ok = cb_now() - t0;
  mark("owner kill");
  cb_kill_node(&CL, victim);
  drop_conn(victim);
  double down = a.quick ? 1.5 : 3; /* --quick: a smoke run, kept short */
  run_until(t_ok + down);
  mark("owner restart");
  if (cb_spawn(&CL, victim))
    return 1;
  double t_end = t_ok + down + (a.quick ? 1 : 2);
  run_until(t_end);
  int n_bins = (int)(t_end / BIN_S);
  double steady = median_rate(0, (int)(t_lk / BIN_S));
  if (steady <= 0)
    return fprintf(stderr, "%s: no call answered before the first kill\n", SCEN), 1;
  cb_emit(SCEN, "steady.calls_per_s", steady, "calls/s", 0, true);
  judge("leader_kill", t_lk, t_ok, steady, 0);
  judge("owner_kill", t_ok, t_end, steady, 4000);
  cb_emit(SCEN, "timeline.bins", n_bins, "bins", 0, true);
  fprintf(stderr, "%s: %llu failed answers (retried), %llu calls given up after %.0f s\n",
          SCEN, (unsigned long long)n_failed, (unsigned long long)n_lost, GIVE_UP_S);
  write_timeline(n_bins);
  for (int k = 0; k < CB_NODES; k++)
    if (live[k])
      cb_conn_close(&C[k]);
  lmz_buf_free(&g_inc);
  cb_cluster_stop(&CL);
  return 0;
}
