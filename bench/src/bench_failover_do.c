/* bench_failover_do - how long a durable object is unavailable when its
 * owner dies (issue 9: replicated actor storage), on a real 3-node cluster
 * of lmzd processes on loopback (bench/src/cluster_bench.h; the default
 * replication factor).
 *
 * One trial: 150 fresh COUNTER_DO actors each take one increment (through
 * all nodes), are located (StatusRequest kind 2), and the follower that
 * owns the most of them is the victim. The cluster idles S seconds, the
 * victim is SIGKILLed, and from that instant every one of its actors is
 * probed with get() through the two survivors in turn (one call in flight
 * per actor; a failed answer is retried 5 ms later) until each has answered
 * once. An actor's time is kill -> its first successful answer. Then the
 * victim starts again on its data and the cluster must be ready (all nodes
 * up, leader known, leases valid) before the next trial.
 *
 *   failover_do.first_call_ms_p50 / _max   over every probed actor of every
 *                                          trial
 *   failover_do.actors                     how many that was
 * Target (issue 9): <= lease + 1 s = 4000 ms with the default 3 s lease
 * (self-hosted Workers-compatible runtimes use a 10 s lease; Cloudflare
 * publishes none).
 * A cluster whose `lmz status` has no "replication" member does not
 * replicate: its dead owner's actors stay unavailable until it returns, so
 * there is nothing to time; the scenario says so on stderr, reports
 * failover_do.replicating = 0 and exits 0 (no kill).
 * LMZ_FAILOVER_DO_RESTART_MS=N restarts the victim N ms after the kill,
 * during the probing, and runs even without replication: what R = 1's
 * recovery by restart costs, and a check of this scenario on such a
 * cluster (its targets are then not judged).
 * --seconds S: idle time before each kill (default 1, --quick 0.3);
 * --trials N: trials (default 3, --quick 1). Exit 0 when measured; 1 when
 * the cluster did not start, an actor never answered within 30 s of the
 * kill, or the victim did not rejoin; 2 for bad usage. */
#define _GNU_SOURCE
#include "cluster_bench.h"

#define SCEN "failover_do"
#define ACTORS 150
#define MAX_TRIALS 20
#define GIVE_UP_S 30
#define RETRY_MS 5

struct probe {
  char name[32];
  int owner;       /* node index, -1 unknown */
  int conn;        /* survivor connection of the call in flight, -1 none */
  uint64_t call;   /* its call id */
  double next, ms; /* next send time; kill -> first answer (0: not yet) */
};

static struct cb_cluster CL;
static lmz_buf g_inc, g_get;
static struct probe P[ACTORS];
static uint64_t g_failed;
static int g_restart_ms; /* > 0: restart the victim this long after the kill */
static bool g_restarted;
static char g_first_error[256];

/* One increment on every actor, through the nodes in turn; all must answer. */
static int create_actors(int trial) {
  struct cb_conn cs[CB_NODES];
  int rv = 0, opened = 0;
  for (; opened < CB_NODES && !rv; opened++)
    rv = cb_conn_open(&cs[opened], CL.n[opened].addr, CL.key, 5000);
  for (int i = 0; i < ACTORS && !rv; i++) {
    snprintf(P[i].name, sizeof P[i].name, "fd%d-%d", trial, i);
    rv = cb_conn_call(&cs[i % CB_NODES], "COUNTER_DO", P[i].name, &g_inc) ? 0 : LMZ_ENOMEM;
  }
  for (int k = 0; k < opened && !rv; k++) {
    rv = cb_conn_flush(&cs[k]);
    while (!rv && cs[k].in_flight) {
      Lmz__Frame *f = NULL;
      if ((rv = cb_conn_result(&cs[k], &f, 30000)))
        break;
      if (!cb_result_ok(f->result)) {
        cb_result_describe(f->result, g_first_error, sizeof g_first_error);
        fprintf(stderr, "failover_do: creating an actor failed: %s\n", g_first_error);
        rv = -1;
      }
      lmz_frame_free(f);
    }
  }
  for (int k = 0; k < opened; k++)
    cb_conn_close(&cs[k]);
  return rv;
}

/* Every actor's owner; returns the follower owning the most, or -1. */
static int locate_all(int leader) {
  char err[LMZ_ERRMSG_LEN], js[4096];
  lmz_rpc_client *rc;
  int count[CB_NODES] = {0}, best = -1;
  if (lmz_rpc_connect(&rc, CL.n[leader].addr, CL.key, 3000, err))
    return -1;
  for (int i = 0; i < ACTORS; i++) {
    unsigned long long n = 0;
    if (!cb_status_ask(rc, 2, "COUNTER_DO", P[i].name, js, sizeof js) &&
        strstr(js, "\"placed\":true"))
      n = cb_json_num(js, "node");
    P[i].owner = n >= 1 && n <= CB_NODES ? (int)n - 1 : -1;
    if (P[i].owner >= 0)
      count[P[i].owner]++;
  }
  lmz_rpc_close(rc);
  for (int k = 0; k < CB_NODES; k++)
    if (k != leader && (best < 0 || count[k] > count[best]))
      best = k;
  return best >= 0 && count[best] > 0 ? best : -1;
}

/* Handles what arrived on survivor connection k. */
static int collect(struct cb_conn *c, int k, double t_kill) {
  long r = cb_conn_read(c);
  if (r < 0)
    return (int)r;
  Lmz__Frame *f;
  int rv;
  while ((rv = cb_conn_next(c, &f)) == 1) {
    if (f->body_case == LMZ__FRAME__BODY_RESULT) {
      c->in_flight--;
      for (int i = 0; i < ACTORS; i++) {
        struct probe *p = &P[i];
        if (p->conn != k || p->call != f->result->call_id)
          continue;
        p->conn = -1;
        if (cb_result_ok(f->result))
          p->ms = (cb_now() - t_kill) * 1e3;
        else if (g_failed++ == 0)
          cb_result_describe(f->result, g_first_error, sizeof g_first_error);
        p->next = cb_now() + RETRY_MS / 1e3;
        break;
      }
    }
    lmz_frame_free(f);
  }
  return rv;
}

/* Sends a get() for each of the victim's actors that needs one; returns
 * how many have not answered yet. */
static int send_due(struct cb_conn sv[2], int victim, int *turn) {
  int left = 0;
  double now = cb_now();
  for (int i = 0; i < ACTORS; i++) {
    struct probe *p = &P[i];
    if (p->owner != victim || p->ms > 0)
      continue;
    left++;
    if (p->conn >= 0 || p->next > now)
      continue;
    int k = (*turn)++ % 2;
    if ((p->call = cb_conn_call(&sv[k], "COUNTER_DO", p->name, &g_get)))
      p->conn = k;
  }
  return left;
}

/* Probes until every actor of the victim answered once (or GIVE_UP_S). */
static int probe_until_served(struct cb_conn sv[2], int victim, double t_kill) {
  int rv = 0, turn = 0, left = 1;
  while (!rv && (left = send_due(sv, victim, &turn)) > 0 && cb_now() < t_kill + GIVE_UP_S) {
    if (g_restart_ms > 0 && !g_restarted && cb_now() >= t_kill + g_restart_ms / 1e3) {
      g_restarted = true;
      rv = cb_spawn(&CL, victim);
    }
    struct pollfd pf[2];
    for (int k = 0; k < 2 && !rv; k++) {
      rv = cb_conn_flush(&sv[k]);
      pf[k] = (struct pollfd){sv[k].fd, POLLIN, 0};
    }
    if (!rv && poll(pf, 2, 2) > 0)
      for (int k = 0; k < 2 && !rv; k++)
        if (pf[k].revents)
          rv = collect(&sv[k], k, t_kill);
  }
  if (rv)
    fprintf(stderr, "failover_do: a survivor's connection: %s %s\n", sv[0].err, sv[1].err);
  else if (left > 0)
    fprintf(stderr, "failover_do: %d actors did not answer within %d s of the kill (last "
                    "error: %s)\n", left, GIVE_UP_S, g_first_error);
  return rv || left > 0 ? -1 : 0;
}

/* One trial; appends each probed actor's time to ms[*n]. */
static int run_trial(int trial, double settle_s, double *ms, size_t *n) {
  int leader = cb_leader(&CL), victim;
  if (leader < 0 || create_actors(trial) || (victim = locate_all(leader)) < 0) {
    fprintf(stderr, "failover_do: trial %d: no leader, actors or victim\n", trial + 1);
    return -1;
  }
  struct cb_conn sv[2];
  int s[2] = {(victim + 1) % CB_NODES, (victim + 2) % CB_NODES}, opened = 0, rv = 0;
  for (; opened < 2 && !rv; opened++)
    rv = cb_conn_open(&sv[opened], CL.n[s[opened]].addr, CL.key, 5000);
  for (int i = 0; i < ACTORS; i++)
    P[i].conn = -1, P[i].ms = 0, P[i].next = 0;
  g_restarted = false;
  if (!rv) {
    cb_sleep_ms((int)(settle_s * 1000));
    double t_kill = cb_now();
    cb_kill_node(&CL, victim);
    rv = probe_until_served(sv, victim, t_kill);
  }
  for (int k = 0; k < opened; k++)
    cb_conn_close(&sv[k]);
  int probed = 0;
  for (int i = 0; !rv && i < ACTORS; i++)
    if (P[i].owner == victim)
      ms[(*n)++] = P[i].ms, probed++;
  fprintf(stderr, "failover_do: trial %d: node %d killed, its %d actors served again "
                  "(%llu failed probes so far)\n", trial + 1, victim + 1, probed,
          (unsigned long long)g_failed);
  if (rv || (!g_restarted && cb_spawn(&CL, victim)) || cb_wait_ready(&CL, CB_NODES, 30))
    return -1;
  return 0;
}

static bool replicating(void) {
  char js[8192] = "";
  cb_status(&CL, 0, js, sizeof js);
  return strstr(js, "\"replication\":") != NULL;
}

int main(int argc, char **argv) {
  struct cb_args a = cb_parse_args(argc, argv,
      "usage: bench_failover_do [--quick] [--seconds S] [--trials N]\n"
      "  S: idle time before each kill (default 1, --quick 0.3)\n"
      "  N: owner kills (default 3, --quick 1)\n");
  double settle = a.seconds > 0 ? a.seconds : a.quick ? 0.3 : 1;
  int trials = a.trials > 0 ? (a.trials < MAX_TRIALS ? a.trials : MAX_TRIALS) : a.quick ? 1 : 3;
  double one = 1;
  if (cb_cluster_start(&CL) || cb_chain(&g_inc, "increment", &one) || cb_chain(&g_get, "get", NULL))
    return 1;
  const char *rs = getenv("LMZ_FAILOVER_DO_RESTART_MS");
  g_restart_ms = rs ? atoi(rs) : 0;
  bool real = replicating() && g_restart_ms <= 0;
  if (!real && g_restart_ms > 0)
    fprintf(stderr, "failover_do: the victim restarts %d ms after each kill "
                    "(LMZ_FAILOVER_DO_RESTART_MS): recovery by restart, targets not judged\n",
            g_restart_ms);
  else if (!real) {
    fprintf(stderr, "failover_do: this lmzd does not replicate (no \"replication\" in lmz "
                    "status): a dead owner's actors wait for it to return; nothing to time\n");
    cb_emit(SCEN, "failover_do.replicating", 0, "bool", 0, true);
    cb_cluster_stop(&CL);
    return 0;
  }
  static double ms[MAX_TRIALS * ACTORS];
  size_t n = 0;
  for (int t = 0; t < trials; t++)
    if (run_trial(t, settle, ms, &n))
      return 1;
  double mx = 0;
  for (size_t i = 0; i < n; i++)
    mx = ms[i] > mx ? ms[i] : mx;
  cb_emit(SCEN, "failover_do.replicating", replicating(), "bool", 0, true);
  cb_emit(SCEN, "failover_do.first_call_ms_p50", cb_quantile(ms, n, .5), "ms", real ? 4000 : 0,
          false);
  cb_emit(SCEN, "failover_do.first_call_ms_max", mx, "ms", real ? 4000 : 0, false);
  cb_emit(SCEN, "failover_do.actors", (double)n, "actors", 0, true);
  fprintf(stderr, "failover_do: context: self-hosted Workers-compatible runtimes use a 10 s "
                  "lease; Cloudflare publishes no failover time\n");
  lmz_buf_free(&g_inc);
  lmz_buf_free(&g_get);
  cb_cluster_stop(&CL);
  return 0;
}
