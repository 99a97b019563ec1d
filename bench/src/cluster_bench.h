/* bench/src/cluster_bench.h - a real 3-node lmz cluster on loopback for the
 * cluster scenarios (forward, claims, failover), and a pipelining client of
 * the node port.
 *
 * Happy path: cb_cluster_start() makes a temp dir ($TMPDIR or /tmp), a
 * cluster key copied into each node's data dir, picks free loopback ports
 * (bind port 0), writes one JSONC config per node (like
 * deploy/dev-cluster.sh: the `cluster` section lists the 3 voters, the
 * counter example module, storage sync on), fork/execs $LMZ_BIN_DIR/lmzd
 * (default: the directory of this executable) and waits, with a deadline,
 * until every node reports a leader, 3 nodes up and a valid lease.
 * cb_conn_* is a non-blocking client that speaks the node port's secure
 * channel (cluster/secure.h) itself, so that many queued Call frames go out
 * sealed in one record and one write (lmz_rpc_client seals and writes each
 * frame alone: one syscall per call would measure the client, not the node).
 * cb_pipe_run() keeps a window of calls in flight on several connections.
 *
 * Failure modes: a node that dies or a cluster that is not ready within the
 * deadline -> the node logs' tails on stderr and an error (the scenario
 * exits non-zero). Every child is killed (SIGKILL) and reaped, and the temp
 * dir removed, at exit, on SIGINT/SIGTERM/SIGHUP, and (PR_SET_PDEATHSIG)
 * when the benchmark itself is killed. LMZ_BENCH_KEEP=1 keeps the temp dir.
 *
 * Header-only: each scenario is one binary. Threading: the main thread owns
 * everything here (cb_echo_* runs its own thread). */
#ifndef LMZ_BENCH_CLUSTER_BENCH_H
#define LMZ_BENCH_CLUSTER_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/keyfile.h"
#include "cluster/rpc_client.h"
#include "cluster/secure.h"
#include "core/codec.h"
#include "lmz/lmz.h"
#include "proto/frame.h"

#define CB_NODES 3
#define CB_FN static __attribute__((unused))
#define CB_PATH 1024

/* ---- small utilities ----------------------------------------------------- */

CB_FN double cb_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

CB_FN void cb_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* One result line (bench/README.md contract) on stdout, a readable line on
 * stderr. target <= 0: no target. */
CB_FN void cb_emit(const char *scenario, const char *metric, double value,
                   const char *unit, double target, bool higher_better) {
  bool pass = higher_better ? value >= target : value <= target;
  printf("{\"scenario\":\"%s\",\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"",
         scenario, metric, value, unit);
  if (target > 0)
    printf(",\"target\":%.3f,\"pass\":%s", target, pass ? "true" : "false");
  printf("}\n");
  fflush(stdout);
  fprintf(stderr, "  %-34s %12.1f %-8s%s\n", metric, value, unit,
          target > 0 ? (pass ? "  (target met)" : "  (target MISSED)") : "");
}

struct cb_args {
  bool quick;
  double seconds; /* <= 0: the scenario's default */
  int conns, window, trials;
};

/* --quick, --seconds S, and the optional --conns N, --window N, --trials N.
 * Exits 0 on --help, 2 on bad usage. */
CB_FN struct cb_args cb_parse_args(int argc, char **argv, const char *help) {
  struct cb_args a = {0};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    bool has = i + 1 < argc;
    if (!strcmp(o, "--quick"))
      a.quick = true;
    else if (!strcmp(o, "--seconds") && has)
      a.seconds = atof(argv[++i]);
    else if (!strcmp(o, "--conns") && has)
      a.conns = atoi(argv[++i]);
    else if (!strcmp(o, "--window") && has)
      a.window = atoi(argv[++i]);
    else if (!strcmp(o, "--trials") && has)
      a.trials = atoi(argv[++i]);
    else if (!strcmp(o, "--help")) {
      fputs(help, stdout);
      exit(0);
    } else {
      fprintf(stderr, "unknown argument %s\n%s", o, help);
      exit(2);
    }
  }
  return a;
}

static int cb_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Sorts v and returns the q-quantile (0..1), nearest rank. */
CB_FN double cb_quantile(double *v, size_t n, double q) {
  if (!n)
    return 0;
  qsort(v, n, sizeof *v, cb_cmp_double);
  size_t k = (size_t)(q * (double)n);
  return v[k >= n ? n - 1 : k];
}

/* CPU seconds (user + system) a process used so far; -1 if unknown. */
CB_FN double cb_proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  /* after "pid (comm) ": state is field 3, utime 14, stime 15 */
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                   &ut, &st) != 2)
    return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Whole-machine CPU from /proc/stat: busy and total jiffies so far. */
CB_FN void cb_sys_cpu(double *busy, double *total) {
  unsigned long long v[8] = {0};
  *busy = *total = 0;
  FILE *f = fopen("/proc/stat", "r");
  if (!f)
    return;
  if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
             &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
    for (int i = 0; i < 8; i++)
      *total += (double)v[i];
    *busy = *total - (double)v[3] - (double)v[4]; /* minus idle, iowait */
  }
  fclose(f);
}

/* ---- the cluster --------------------------------------------------------- */

struct cb_node {
  int id; /* cluster id 1..3 */
  int node_port, raft_port;
  pid_t pid; /* 0 = not running */
  int wstatus; /* how it ended, when it ended by itself (waitpid) */
  bool ended;  /* ... and that it did */
  char addr[32];
  char cfg[CB_PATH], log[CB_PATH], data[CB_PATH];
};

struct cb_cluster {
  char dir[CB_PATH / 2]; /* so that dir + "/nodeN.jsonc" fits a path */
  char lmzd[CB_PATH], lib[CB_PATH];
  uint8_t key[LMZ_KEYFILE_KEY_LEN];
  struct cb_node n[CB_NODES];
  /* Optional, kept by cb_cluster_start: the application part of every
   * node's config (JSON members in place of "modules" .. "services", each
   * line ending with a comma), and a hook run after the data dirs exist and
   * before any node starts (non-zero = failure). */
  const char *app_json;
  int (*before_spawn)(struct cb_cluster *c);
};

static struct cb_cluster *cb_g; /* for the exit and signal handlers */

/* Async-signal-safe: SIGKILL and reap every node. */
static void cb_kill_all(void) {
  if (!cb_g)
    return;
  for (int i = 0; i < CB_NODES; i++)
    if (cb_g->n[i].pid > 0)
      kill(cb_g->n[i].pid, SIGKILL);
  for (int i = 0; i < CB_NODES; i++)
    if (cb_g->n[i].pid > 0) {
      while (waitpid(cb_g->n[i].pid, NULL, 0) < 0 && errno == EINTR) {
      }
      cb_g->n[i].pid = 0;
    }
}

static int cb_rm_cb(const char *p, const struct stat *sb, int flag,
                    struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static bool cb_keep_dir(void) {
  const char *k = getenv("LMZ_BENCH_KEEP");
  return k && *k && strcmp(k, "0");
}

static void cb_atexit(void) {
  cb_kill_all();
  if (cb_g && cb_g->dir[0]) {
    if (cb_keep_dir())
      fprintf(stderr, "cluster dir kept: %s\n", cb_g->dir);
    else
      nftw(cb_g->dir, cb_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    cb_g->dir[0] = '\0';
  }
}

/* Signals: only async-signal-safe calls (kill, waitpid, fork, execve). The
 * temp dir goes with a child `rm -rf` (nftw may malloc). */
static void cb_on_signal(int sig) {
  cb_kill_all();
  if (cb_g && cb_g->dir[0] && !cb_keep_dir() && fork() == 0) {
    char *argv[] = {"rm", "-rf", cb_g->dir, NULL};
    char *envp[] = {NULL};
    execve("/bin/rm", argv, envp);
    _exit(127);
  }
  _exit(128 + sig);
}

static void cb_install_handlers(struct cb_cluster *c) {
  cb_g = c;
  atexit(cb_atexit);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = cb_on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
}

/* lmzd: $LMZ_BIN_DIR/lmzd, else next to this executable; the counter module
 * in $LMZ_LIB_DIR, else BIN/../lib. */
static int cb_find_binaries(struct cb_cluster *c) {
  char bin[CB_PATH / 2];
  const char *env = getenv("LMZ_BIN_DIR");
  if (env && *env) {
    snprintf(bin, sizeof bin, "%s", env);
  } else {
    ssize_t n = readlink("/proc/self/exe", bin, sizeof bin - 1);
    if (n <= 0)
      return -1;
    bin[n] = '\0';
    char *slash = strrchr(bin, '/');
    if (slash)
      *slash = '\0';
  }
  const char *lib = getenv("LMZ_LIB_DIR");
  snprintf(c->lmzd, sizeof c->lmzd, "%s/lmzd", bin);
  if (lib && *lib)
    snprintf(c->lib, sizeof c->lib, "%s/libcounter.so", lib);
  else
    snprintf(c->lib, sizeof c->lib, "%s/../lib/libcounter.so", bin);
  if (access(c->lmzd, X_OK) || access(c->lib, R_OK)) {
    fprintf(stderr, "cluster: need %s and %s (build lmzd and the counter "
                    "example; LMZ_BIN_DIR / LMZ_LIB_DIR)\n", c->lmzd, c->lib);
    return -1;
  }
  return 0;
}

/* n distinct free loopback ports: all bound at once (so distinct), then
 * released for the nodes to take. */
static int cb_free_ports(int *ports, int n) {
  int fds[16], rv = 0;
  for (int i = 0; i < n; i++) {
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof sa) ||
        getsockname(fds[i], (struct sockaddr *)&sa, &len))
      rv = -1;
    ports[i] = ntohs(sa.sin_port);
  }
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  return rv;
}

static int cb_write_config(const struct cb_cluster *c, const struct cb_node *nd) {
  FILE *f = fopen(nd->cfg, "w");
  if (!f)
    return -1;
  fprintf(f,
          "// generated by bench/src/cluster_bench.h\n{\n"
          "  \"node\": {\"id\": \"node-%d\", \"data\": \"%s\",\n"
          "           \"listen\": \"%s\", \"http\": \"127.0.0.1:0\"},\n"
          "%s%s%s"
          "  \"storage\": {\"sync\": true},\n"
          "  \"log\": {\"level\": \"warn\"},\n"
          "  \"cluster\": {\"id\": %d, \"raft\": \"127.0.0.1:%d\", \"voters\": [",
          nd->id, nd->data, nd->addr, c->app_json ? c->app_json : "  \"modules\": [\"",
          c->app_json ? "" : c->lib,
          c->app_json ? ""
                      : "\"],\n"
                        "  \"durable_objects\": {\"bindings\": [\n"
                        "    {\"name\": \"COUNTER_DO\", \"class_name\": \"CounterDO\"}]},\n"
                        "  \"services\": [{\"binding\": \"ECHO_WORKER\", \"entrypoint\": \"EchoWorker\"}],\n",
          nd->id, nd->raft_port);
  for (int i = 0; i < CB_NODES; i++)
    fprintf(f, "%s\n    {\"id\": %d, \"node\": \"%s\", \"raft\": \"127.0.0.1:%d\"}",
            i ? "," : "", c->n[i].id, c->n[i].addr, c->n[i].raft_port);
  fprintf(f, "]}\n}\n");
  return fclose(f) ? -1 : 0;
}

/* Prepares dir, key and configs (fresh ports). */
static int cb_prepare(struct cb_cluster *c) {
  char err[LMZ_ERRMSG_LEN], path[CB_PATH + 32];
  int ports[2 * CB_NODES];
  if (cb_free_ports(ports, 2 * CB_NODES))
    return -1;
  for (int i = 0; i < CB_NODES; i++) {
    struct cb_node *nd = &c->n[i];
    nd->id = i + 1;
    nd->node_port = ports[2 * i];
    nd->raft_port = ports[2 * i + 1];
    snprintf(nd->addr, sizeof nd->addr, "127.0.0.1:%d", nd->node_port);
    snprintf(nd->data, sizeof nd->data, "%s/node%d", c->dir, nd->id);
    snprintf(nd->cfg, sizeof nd->cfg, "%s/node%d.jsonc", c->dir, nd->id);
    snprintf(nd->log, sizeof nd->log, "%s/node%d.log", c->dir, nd->id);
    snprintf(path, sizeof path, "%s/cluster.key", nd->data);
    if ((mkdir(nd->data, 0700) && errno != EEXIST) ||
        lmz_keyfile_save(path, c->key, 1, err)) {
      fprintf(stderr, "cluster: %s: %s\n", nd->data, err);
      return -1;
    }
  }
  for (int i = 0; i < CB_NODES; i++)
    if (cb_write_config(c, &c->n[i]))
      return -1;
  return 0;
}

/* fork/exec lmzd on node i's config, output appended to its log. */
CB_FN int cb_spawn(struct cb_cluster *c, int i) {
  struct cb_node *nd = &c->n[i];
  pid_t parent = getpid();
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the bench dies -> the node dies */
    if (getppid() != parent)
      _exit(1);
    int fd = open(nd->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || null < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0 || dup2(null, 0) < 0)
      _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execl(c->lmzd, "lmzd", "--config", nd->cfg, (char *)NULL);
    _exit(127);
  }
  nd->pid = pid;
  nd->ended = false;
  return 0;
}

/* SIGKILL node i and reap it. */
CB_FN void cb_kill_node(struct cb_cluster *c, int i) {
  pid_t pid = c->n[i].pid;
  if (pid <= 0)
    return;
  kill(pid, SIGKILL);
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
  c->n[i].pid = 0;
}

/* True if node i's process has exited (reaps it). */
static bool cb_node_died(struct cb_cluster *c, int i) {
  if (c->n[i].pid <= 0)
    return true;
  int st;
  if (waitpid(c->n[i].pid, &st, WNOHANG) == c->n[i].pid) {
    c->n[i].pid = 0;
    c->n[i].wstatus = st;
    c->n[i].ended = true;
    return true;
  }
  return false;
}

/* "running", "exited with status N", "killed by signal N (name)". */
static const char *cb_node_state(struct cb_cluster *c, int i, char *buf, size_t n) {
  if (!cb_node_died(c, i))
    snprintf(buf, n, "running (pid %d)", (int)c->n[i].pid);
  else if (!c->n[i].ended)
    snprintf(buf, n, "stopped");
  else if (WIFSIGNALED(c->n[i].wstatus))
    snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(c->n[i].wstatus),
             strsignal(WTERMSIG(c->n[i].wstatus)));
  else
    snprintf(buf, n, "exited with status %d", WEXITSTATUS(c->n[i].wstatus));
  return buf;
}

/* Prints the last `lines` lines of node i's log, or, if a sanitizer
 * reported an error there, the report's first lines (the useful part). */
CB_FN void cb_log_tail(const struct cb_cluster *c, int i, int lines) {
  FILE *f = fopen(c->n[i].log, "r");
  if (!f)
    return;
  static char ring[32][512];
  int n = 0, report = -1;
  while (fgets(ring[n % 32], sizeof ring[0], f)) {
    if (report < 0 && (strstr(ring[n % 32], "ERROR: AddressSanitizer") ||
                       strstr(ring[n % 32], "runtime error:")))
      report = n;
    if (report >= 0 && n - report >= 20)
      break;
    n++;
  }
  fclose(f);
  int from = report >= 0 ? report : n > lines ? n - lines : 0;
  fprintf(stderr, "--- node %d log (%s) ---\n", c->n[i].id,
          report >= 0 ? "sanitizer report" : "last lines");
  for (int k = from; k < n; k++)
    fprintf(stderr, "  %s", ring[k % 32]);
}

/* ---- status / locate (lmz_rpc_client, one request at a time) ------------- */

/* Sends StatusRequest kind (1 status, 2 locate) and copies the JSON answer
 * into out. Returns 0 or an error. */
CB_FN int cb_status_ask(lmz_rpc_client *rc, uint32_t kind, const char *binding,
                        const char *instance, char *out, size_t outlen) {
  Lmz__StatusRequest q = LMZ__STATUS_REQUEST__INIT;
  q.request_id = 1;
  q.kind = kind;
  q.binding = (char *)(binding ? binding : "");
  q.instance = (char *)(instance ? instance : "");
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_STATUS_REQUEST;
  f.status_request = &q;
  int rv = lmz_rpc_send(rc, &f);
  while (!rv) {
    Lmz__Frame *in = NULL;
    if ((rv = lmz_rpc_recv(rc, &in, 3000)))
      break;
    bool done = in->body_case == LMZ__FRAME__BODY_STATUS_RESPONSE;
    if (done) {
      rv = in->status_response->status;
      snprintf(out, outlen, "%s", rv ? "" : in->status_response->json);
    }
    lmz_frame_free(in);
    if (done)
      break;
  }
  return rv;
}

/* Connects to node i (short timeout) and asks once. */
CB_FN int cb_status(struct cb_cluster *c, int i, char *out, size_t outlen) {
  char err[LMZ_ERRMSG_LEN];
  lmz_rpc_client *rc;
  int rv = lmz_rpc_connect(&rc, c->n[i].addr, c->key, 1000, err);
  if (rv)
    return rv;
  rv = cb_status_ask(rc, 1, NULL, NULL, out, outlen);
  lmz_rpc_close(rc);
  return rv;
}

/* The number after "key": in a JSON text (first match), or 0. */
CB_FN unsigned long long cb_json_num(const char *json, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(json, pat);
  return p ? strtoull(p + strlen(pat), NULL, 10) : 0;
}

static int cb_count(const char *s, const char *sub) {
  int n = 0;
  for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
    n++;
  return n;
}

static char cb_last_status[8192]; /* for the "not ready" message */

/* Node i sees a leader, every node up, and its own lease valid. */
static bool cb_node_ready(struct cb_cluster *c, int i, int want_up) {
  char *js = cb_last_status;
  if (cb_status(c, i, js, sizeof cb_last_status)) {
    snprintf(js, sizeof cb_last_status, "(no status answer)");
    return false;
  }
  return cb_json_num(js, "leader") != 0 && strstr(js, "\"valid\":true") &&
         cb_count(js, "\"state\":\"up\"") >= want_up;
}

/* Every node's process state and status, and the logs' tails. */
CB_FN void cb_dump_cluster(struct cb_cluster *c) {
  for (int k = 0; k < CB_NODES; k++) {
    char js[8192] = "(no answer)", how[96];
    cb_node_state(c, k, how, sizeof how);
    if (c->n[k].pid > 0)
      cb_status(c, k, js, sizeof js);
    fprintf(stderr, "cluster: node %d %s, status: %s\n", c->n[k].id, how, js);
  }
  for (int k = 0; k < CB_NODES; k++)
    cb_log_tail(c, k, 6);
}

/* Fails (-1, says which and how, logs) if a node marked in `was` ended. */
CB_FN int cb_check_alive(struct cb_cluster *c, const bool was[CB_NODES],
                         const char *when) {
  for (int k = 0; k < CB_NODES; k++)
    if (was[k] && cb_node_died(c, k)) {
      char how[96];
      fprintf(stderr, "cluster: node %d %s %s\n", c->n[k].id,
              cb_node_state(c, k, how, sizeof how), when);
      cb_dump_cluster(c);
      return -1;
    }
  return 0;
}

/* Waits until every running node is ready (all CB_NODES up, or want_up).
 * Returns 0, or -1 (a node died or the deadline passed; logs printed). */
CB_FN int cb_wait_ready(struct cb_cluster *c, int want_up, double timeout_s) {
  double deadline = cb_now() + timeout_s;
  bool was[CB_NODES];
  for (int k = 0; k < CB_NODES; k++)
    was[k] = c->n[k].pid > 0;
  for (int i = 0; i < CB_NODES; i++) {
    while (was[i] && !cb_node_ready(c, i, want_up)) {
      if (cb_check_alive(c, was, "while waiting for the cluster to be ready"))
        return -1;
      if (cb_now() > deadline) {
        fprintf(stderr, "cluster: node %d not ready after %.0f s; its status: %s\n",
                c->n[i].id, timeout_s, cb_last_status);
        cb_dump_cluster(c);
        return -1;
      }
      cb_sleep_ms(20);
    }
  }
  return 0;
}

/* The leader's index (0..2) as seen by any live node, or -1. */
CB_FN int cb_leader(struct cb_cluster *c) {
  char js[8192];
  for (int i = 0; i < CB_NODES; i++) {
    if (c->n[i].pid <= 0 || cb_status(c, i, js, sizeof js))
      continue;
    unsigned long long l = cb_json_num(js, "leader");
    if (l >= 1 && l <= CB_NODES && c->n[l - 1].pid > 0)
      return (int)l - 1;
  }
  return -1;
}

/* Kills whatever runs, wipes the nodes' data and starts a fresh cluster in
 * the same dir (new ports; retried once: another process may take a port
 * between pick and bind). Returns 0 or -1 (reason on stderr). */
CB_FN int cb_cluster_fresh(struct cb_cluster *c) {
  for (int attempt = 0; attempt < 2; attempt++) {
    cb_kill_all();
    for (int i = 0; i < CB_NODES; i++)
      if (c->n[i].data[0])
        nftw(c->n[i].data, cb_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    double t0 = cb_now();
    if (cb_prepare(c) || (c->before_spawn && c->before_spawn(c)))
      return -1;
    for (int i = 0; i < CB_NODES; i++)
      if (cb_spawn(c, i))
        return -1;
    if (cb_wait_ready(c, CB_NODES, 30) == 0) {
      fprintf(stderr, "cluster: 3 lmzd nodes ready in %.2f s (%s, ports %d %d %d)\n",
              cb_now() - t0, c->dir, c->n[0].node_port, c->n[1].node_port,
              c->n[2].node_port);
      return 0;
    }
    fprintf(stderr, "cluster: %s\n", attempt ? "giving up" : "retrying with fresh ports");
  }
  cb_kill_all();
  return -1;
}

/* Temp dir, key, exit/signal handlers, then cb_cluster_fresh(). Returns 0
 * or -1 (reason on stderr; nothing left running). */
CB_FN int cb_cluster_start(struct cb_cluster *c) {
  const char *app = c->app_json;
  int (*hook)(struct cb_cluster *) = c->before_spawn;
  memset(c, 0, sizeof *c);
  c->app_json = app;
  c->before_spawn = hook;
  if (sodium_init() < 0 || cb_find_binaries(c))
    return -1;
  const char *tmp = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/lmz-cbench.XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(c->dir)) {
    c->dir[0] = '\0';
    return -1;
  }
  cb_install_handlers(c);
  lmz_keyfile_generate(c->key);
  return cb_cluster_fresh(c);
}

/* CPU of the nodes, this process and the machine at one instant. */
struct cb_cpu {
  double node[CB_NODES], self, sys_busy, sys_total, t;
};

CB_FN void cb_cpu_snap(const struct cb_cluster *c, struct cb_cpu *s) {
  for (int i = 0; i < CB_NODES; i++)
    s->node[i] = c->n[i].pid > 0 ? cb_proc_cpu_s(c->n[i].pid) : 0;
  s->self = cb_proc_cpu_s(getpid());
  cb_sys_cpu(&s->sys_busy, &s->sys_total);
  s->t = cb_now();
}

/* Between two snaps: % of one core per node (pct[0..2]) and for this
 * process (pct[3]); returns the machine's busy % (all cores). */
CB_FN double cb_cpu_pct(const struct cb_cpu *a, const struct cb_cpu *b,
                        double pct[CB_NODES + 1]) {
  double dt = b->t - a->t;
  for (int i = 0; i < CB_NODES; i++)
    pct[i] = dt > 0 ? 100 * (b->node[i] - a->node[i]) / dt : 0;
  pct[CB_NODES] = dt > 0 ? 100 * (b->self - a->self) / dt : 0;
  double jt = b->sys_total - a->sys_total;
  return jt > 0 ? 100 * (b->sys_busy - a->sys_busy) / jt : 0;
}

/* SIGTERM every node, SIGKILL what is left after 3 s. */
CB_FN void cb_cluster_stop(struct cb_cluster *c) {
  for (int i = 0; i < CB_NODES; i++)
    if (c->n[i].pid > 0)
      kill(c->n[i].pid, SIGTERM);
  double deadline = cb_now() + 3;
  for (int i = 0; i < CB_NODES; i++)
    while (c->n[i].pid > 0 && !cb_node_died(c, i) && cb_now() < deadline)
      cb_sleep_ms(10);
  cb_kill_all();
}

/* ---- the pipelining client ----------------------------------------------- */

struct cb_conn {
  int fd;
  bool got_hello;
  lmz_secure sec;
  lmz_buf frames; /* queued plaintext frames */
  lmz_buf wire;   /* sealed bytes not yet written, from wire_off */
  size_t wire_off;
  lmz_buf plain; /* decrypted bytes, consumed from plain_off */
  size_t plain_off;
  lmz_frame_splitter split;
  uint64_t next_id; /* call ids */
  uint32_t in_flight;
  char err[LMZ_ERRMSG_LEN];
};

/* Writes queued frames (sealed as one record) and pending wire bytes, as far
 * as the socket takes them. Returns 0 or LMZ_ECLOSED. */
CB_FN int cb_conn_flush(struct cb_conn *c) {
  if (c->frames.len) {
    if (lmz_secure_seal(&c->sec, c->frames.data, c->frames.len, &c->wire))
      return LMZ_ECLOSED;
    lmz_buf_reset(&c->frames);
  }
  while (c->wire_off < c->wire.len) {
    ssize_t w = send(c->fd, c->wire.data + c->wire_off, c->wire.len - c->wire_off,
                     MSG_NOSIGNAL);
    if (w > 0)
      c->wire_off += (size_t)w;
    else if (w < 0 && errno == EINTR)
      continue;
    else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    else {
      snprintf(c->err, sizeof c->err, "send: %s", strerror(errno));
      return LMZ_ECLOSED;
    }
  }
  lmz_buf_reset(&c->wire);
  c->wire_off = 0;
  return 0;
}

CB_FN bool cb_conn_wants_write(const struct cb_conn *c) {
  return c->wire_off < c->wire.len;
}

/* One non-blocking read fed to the secure layer. Returns bytes read (> 0),
 * 0 (nothing now), or an error (closed, tampered). */
CB_FN long cb_conn_read(struct cb_conn *c) {
  static uint8_t buf[256 * 1024];
  ssize_t r = recv(c->fd, buf, sizeof buf, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return 0;
  if (r <= 0) {
    snprintf(c->err, sizeof c->err, "%s", r ? strerror(errno) : "the node closed the connection");
    return LMZ_ECLOSED;
  }
  if (c->plain_off == c->plain.len) {
    lmz_buf_reset(&c->plain);
    c->plain_off = 0;
  }
  int rv = lmz_secure_feed(&c->sec, buf, (size_t)r, &c->wire, &c->plain);
  if (rv < 0) {
    snprintf(c->err, sizeof c->err, "%s", c->sec.errmsg);
    return rv;
  }
  return (long)r;
}

/* Next application frame (1, *out to lmz_frame_free), 0 (none yet), or an
 * error. Hello/Ping/Pong are handled here (a Pong is queued). */
CB_FN int cb_conn_next(struct cb_conn *c, Lmz__Frame **out) {
  while (c->plain_off < c->plain.len) {
    const uint8_t *p = c->plain.data + c->plain_off, *body;
    size_t n = c->plain.len - c->plain_off, blen;
    int rv = lmz_frame_split(&c->split, &p, &n, &body, &blen);
    c->plain_off = c->plain.len - n;
    if (rv < 0)
      snprintf(c->err, sizeof c->err, "frame over the size cap");
    if (rv <= 0)
      return rv;
    Lmz__Frame *f;
    if (lmz_frame_unpack(body, blen, &f)) {
      snprintf(c->err, sizeof c->err, "malformed frame");
      return LMZ_EBADMSG;
    }
    if (f->body_case == LMZ__FRAME__BODY_HELLO) {
      c->got_hello = true;
    } else if (f->body_case == LMZ__FRAME__BODY_PING) {
      Lmz__Pong pong = LMZ__PONG__INIT;
      pong.seq = f->ping->seq;
      pong.sent_us = f->ping->sent_us;
      Lmz__Frame pf = LMZ__FRAME__INIT;
      pf.body_case = LMZ__FRAME__BODY_PONG;
      pf.pong = &pong;
      lmz_frame_append(&c->frames, &pf, 0);
    } else if (f->body_case != LMZ__FRAME__BODY_PONG &&
               f->body_case != LMZ__FRAME__BODY__NOT_SET) {
      *out = f;
      return 1;
    }
    lmz_frame_free(f);
  }
  return 0;
}

static int cb_tcp_connect(const char *addr, double deadline) {
  struct sockaddr_in sa = {.sin_family = AF_INET};
  const char *colon = strrchr(addr, ':');
  char host[64];
  if (!colon || (size_t)(colon - addr) >= sizeof host)
    return -1;
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  sa.sin_port = htons((uint16_t)atoi(colon + 1));
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
    return -1;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), one = 1;
  if (fd < 0)
    return -1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  struct pollfd p = {fd, POLLOUT, 0};
  int err = 0;
  socklen_t len = sizeof err;
  int ms = (int)((deadline - cb_now()) * 1000);
  if (poll(&p, 1, ms > 0 ? ms : 0) != 1 ||
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Waits for readability (and writability while bytes are pending). */
static int cb_conn_wait(struct cb_conn *c, int ms) {
  struct pollfd p = {c->fd, (short)(POLLIN | (cb_conn_wants_write(c) ? POLLOUT : 0)), 0};
  int r = poll(&p, 1, ms);
  return r < 0 && errno != EINTR ? -1 : r;
}

static int cb_conn_handshake(struct cb_conn *c, double deadline) {
  bool hello_sent = false;
  int rv = lmz_secure_start(&c->sec, &c->wire);
  while (!rv && !(lmz_secure_is_open(&c->sec) && c->got_hello)) {
    if ((rv = cb_conn_flush(c)))
      break;
    if (cb_now() > deadline) {
      snprintf(c->err, sizeof c->err, "handshake timed out");
      return LMZ_ETIMEOUT;
    }
    cb_conn_wait(c, 50);
    long r = cb_conn_read(c);
    if (r < 0)
      return (int)r;
    if (!hello_sent && lmz_secure_can_send(&c->sec)) {
      Lmz__Hello h = LMZ__HELLO__INIT;
      h.proto_version = 1;
      h.name = "lmz-bench";
      Lmz__Frame f = LMZ__FRAME__INIT;
      f.body_case = LMZ__FRAME__BODY_HELLO;
      f.hello = &h;
      lmz_frame_append(&c->frames, &f, 0);
      hello_sent = true;
    }
    Lmz__Frame *early = NULL;
    if ((rv = cb_conn_next(c, &early)) == 1) {
      lmz_frame_free(early);
      snprintf(c->err, sizeof c->err, "frame before Hello");
      return LMZ_EBADMSG;
    }
  }
  return rv < 0 ? rv : cb_conn_flush(c);
}

/* Connects and runs the handshake. Returns 0 or an error (c->err says why);
 * always pair with cb_conn_close(). */
CB_FN int cb_conn_open(struct cb_conn *c, const char *addr, const uint8_t *key,
                       int timeout_ms) {
  memset(c, 0, sizeof *c);
  c->next_id = 1;
  lmz_secure_init(&c->sec, LMZ_SECURE_INITIATOR, key, NULL);
  lmz_frame_splitter_init(&c->split, 0);
  double deadline = cb_now() + timeout_ms / 1000.0;
  if ((c->fd = cb_tcp_connect(addr, deadline)) < 0) {
    snprintf(c->err, sizeof c->err, "cannot connect to %s", addr);
    return LMZ_ECLOSED;
  }
  return cb_conn_handshake(c, deadline);
}

CB_FN void cb_conn_close(struct cb_conn *c) {
  if (c->fd > 0)
    close(c->fd);
  c->fd = -1;
  lmz_secure_free(&c->sec);
  lmz_buf_free(&c->frames);
  lmz_buf_free(&c->wire);
  lmz_buf_free(&c->plain);
  lmz_frame_splitter_free(&c->split);
}

/* [{type:'get', key:method}, {type:'apply', args:[arg?]}] in the binary
 * codec, as `lmz call` sends it. arg NULL = no argument. */
CB_FN int cb_chain(lmz_buf *out, const char *method, double *arg) {
  lmz_arena *a = lmz_arena_new();
  if (!a)
    return LMZ_ENOMEM;
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 1);
  int rv = !chain || !get || !ap || !args ||
           lmz_object_setc(get, "type", lmz_cstring(a, "get")) ||
           lmz_object_setc(get, "key", lmz_cstring(a, method)) ||
           lmz_object_setc(ap, "type", lmz_cstring(a, "apply")) ||
           (arg && lmz_array_push(args, lmz_number(a, *arg))) ||
           lmz_object_setc(ap, "args", args) || lmz_array_push(chain, get) ||
           lmz_array_push(chain, ap);
  if (!rv)
    rv = lmz_bin_encode(chain, out, NULL);
  lmz_arena_free(a);
  return rv ? LMZ_ENOMEM : 0;
}

/* The Call frame `lmz call` sends (a DO callee, an empty call context). */
CB_FN void cb_call_frame(Lmz__Frame *f, Lmz__Call *call, Lmz__Identity *callee,
                         Lmz__CallContext *ctx, uint64_t id, const char *binding,
                         const char *instance, const lmz_buf *chain) {
  *callee = (Lmz__Identity)LMZ__IDENTITY__INIT;
  callee->type = 0; /* DO */
  callee->binding = (char *)binding;
  callee->instance = (char *)instance;
  callee->has_instance = true;
  *ctx = (Lmz__CallContext)LMZ__CALL_CONTEXT__INIT;
  *call = (Lmz__Call)LMZ__CALL__INIT;
  call->call_id = id;
  call->version = 1;
  call->callee = callee;
  call->chain.data = chain->data;
  call->chain.len = chain->len;
  call->ctx = ctx;
  *f = (Lmz__Frame)LMZ__FRAME__INIT;
  f->body_case = LMZ__FRAME__BODY_CALL;
  f->call = call;
}

/* Queues one call (sent on the next flush); returns its call id, 0 on OOM. */
CB_FN uint64_t cb_conn_call(struct cb_conn *c, const char *binding,
                            const char *instance, const lmz_buf *chain) {
  Lmz__Frame f;
  Lmz__Call call;
  Lmz__Identity callee;
  Lmz__CallContext ctx;
  uint64_t id = c->next_id++;
  cb_call_frame(&f, &call, &callee, &ctx, id, binding, instance, chain);
  if (lmz_frame_append(&c->frames, &f, 0) < 0)
    return 0;
  c->in_flight++;
  return id;
}

/* Waits (up to timeout_ms) for the next Result frame on c; *out to
 * lmz_frame_free. Returns 0, LMZ_ETIMEOUT, or a connection error. */
CB_FN int cb_conn_result(struct cb_conn *c, Lmz__Frame **out, int timeout_ms) {
  double deadline = cb_now() + timeout_ms / 1000.0;
  for (;;) {
    Lmz__Frame *f = NULL;
    int rv = cb_conn_next(c, &f);
    if (rv < 0 || (rv = cb_conn_flush(c)))
      return rv;
    if (f && f->body_case == LMZ__FRAME__BODY_RESULT) {
      c->in_flight--;
      *out = f;
      return 0;
    }
    if (f) {
      lmz_frame_free(f);
      continue;
    }
    long r = cb_conn_read(c);
    if (r < 0)
      return (int)r;
    if (r == 0) {
      int ms = (int)((deadline - cb_now()) * 1000);
      if (ms <= 0)
        return LMZ_ETIMEOUT;
      cb_conn_wait(c, ms);
    }
  }
}

/* A Result that is a normal answer (no transport code, not a thrown error). */
CB_FN bool cb_result_ok(const Lmz__Result *r) { return r->ok && r->code == 0; }

/* One line about a failed Result (its code/detail, or the thrown value). */
CB_FN void cb_result_describe(const Lmz__Result *r, char *out, size_t n) {
  if (r->code) {
    snprintf(out, n, "code %s: %s", lmz_err_name(r->code), r->detail ? r->detail : "");
    return;
  }
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = NULL;
  lmz_buf s = LMZ_BUF_INIT;
  if (a && !lmz_bin_decode(a, r->value.data, r->value.len, NULL, &v, NULL) &&
      !lmz_scjson_encode(v, &s, NULL) && !lmz_buf_putc(&s, 0))
    snprintf(out, n, "threw %s", (char *)s.data);
  else
    snprintf(out, n, "threw (undecodable)");
  lmz_buf_free(&s);
  lmz_arena_free(a);
}

/* ---- pipelined driving of several connections ---------------------------- */

struct cb_pipe {
  struct cb_conn *conns;
  int n_conns;
  uint32_t window; /* calls in flight per connection */
  /* queue one call on conns[i] (cb_conn_call); 0 or an error */
  int (*issue)(void *arg, int i);
  /* check one Result of conns[i]; 0 or an error (a wrong answer) */
  int (*done)(void *arg, int i, const Lmz__Result *r);
  void *arg;
};

/* Reads and handles everything available on conn i. */
static int cb_pipe_drain_conn(struct cb_pipe *p, int i, uint64_t *n_done) {
  struct cb_conn *c = &p->conns[i];
  for (int reads = 0; reads < 64; reads++) {
    long r = cb_conn_read(c);
    if (r < 0)
      return (int)r;
    Lmz__Frame *f;
    int rv;
    while ((rv = cb_conn_next(c, &f)) == 1) {
      if (f->body_case == LMZ__FRAME__BODY_RESULT) {
        c->in_flight--;
        (*n_done)++;
        rv = p->done(p->arg, i, f->result);
      }
      lmz_frame_free(f);
      if (rv)
        return rv;
    }
    if (rv < 0)
      return rv;
    if (r == 0)
      break;
  }
  return 0;
}

/* One round: top every connection up to the window (unless `fill` is false),
 * flush, wait up to 50 ms, handle what arrived. */
static int cb_pipe_round(struct cb_pipe *p, bool fill, uint64_t *n_done) {
  struct pollfd pf[64];
  int rv = 0;
  for (int i = 0; i < p->n_conns && !rv; i++) {
    struct cb_conn *c = &p->conns[i];
    while (fill && c->in_flight < p->window && !rv)
      rv = p->issue(p->arg, i);
    if (!rv)
      rv = cb_conn_flush(c);
    pf[i] = (struct pollfd){c->fd, (short)(POLLIN | (cb_conn_wants_write(c) ? POLLOUT : 0)), 0};
  }
  if (rv)
    return rv;
  if (poll(pf, (nfds_t)p->n_conns, 50) < 0 && errno != EINTR) {
    snprintf(p->conns[0].err, sizeof p->conns[0].err, "poll: %s", strerror(errno));
    return -1;
  }
  for (int i = 0; i < p->n_conns && !rv; i++)
    if (pf[i].revents)
      rv = cb_pipe_drain_conn(p, i, n_done);
  return rv;
}

/* Keeps the window full for `seconds`, then stops issuing and waits (up to
 * drain_s) for every call in flight. *rate = results that arrived within
 * the measured time / that time. Returns 0 or an error. */
CB_FN int cb_pipe_run(struct cb_pipe *p, double seconds, double drain_s,
                      double *rate, uint64_t *total_done) {
  uint64_t n_done = 0;
  double t0 = cb_now(), end = t0 + seconds;
  int rv = 0;
  while (!rv && cb_now() < end)
    rv = cb_pipe_round(p, true, &n_done);
  double t1 = cb_now();
  *rate = (double)n_done / (t1 - t0);
  double deadline = t1 + drain_s;
  for (bool busy = true; !rv && busy;) {
    busy = false;
    for (int i = 0; i < p->n_conns; i++)
      busy |= p->conns[i].in_flight > 0;
    if (busy && cb_now() > deadline) {
      fprintf(stderr, "cluster: calls still in flight %.0f s after the end\n", drain_s);
      rv = LMZ_ETIMEOUT;
    } else if (busy) {
      rv = cb_pipe_round(p, false, &n_done);
    }
  }
  if (total_done)
    *total_done = n_done;
  for (int i = 0; rv && i < p->n_conns; i++)
    if (p->conns[i].err[0])
      fprintf(stderr, "cluster: connection %d: %s\n", i, p->conns[i].err);
  return rv;
}

#endif
