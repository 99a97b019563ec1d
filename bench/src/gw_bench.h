/* bench/src/gw_bench.h - shared by the gateway scenarios (gateway,
 * broadcast): an `lmzd --dev` of this build started on ephemeral ports in a
 * temp data dir (killed and removed at exit, also on failure or a signal;
 * PR_SET_PDEATHSIG kills it if the bench dies), a dev token, many C clients
 * (clients/c/lmzc.h) on one loop, a latency histogram, CPU accounting of
 * both processes, and the result lines of bench/README.md.
 * Header-only: each scenario is one executable. */
#ifndef LMZ_BENCH_GW_BENCH_H
#define LMZ_BENCH_GW_BENCH_H

#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "clients/c/lmzc.h"

static const char *gb_scenario = "?";

/* ---- time, failure ------------------------------------------------------- */

static double gb_now(void) { return (double)uv_hrtime() / 1e9; }

static void gb_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void gb_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bench %s: ", gb_scenario);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1); /* atexit stops lmzd */
}

/* ---- lmzd ------------------------------------------------------------------ */

static struct {
  pid_t pid;
  char *dir;
  char url[64];
} gb_srv;

static int gb_rm(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static void gb_stop_lmzd(void) {
  if (gb_srv.pid > 0) {
    kill(gb_srv.pid, SIGTERM);
    int st;
    for (int i = 0; i < 300 && waitpid(gb_srv.pid, &st, WNOHANG) == 0; i++) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    kill(gb_srv.pid, SIGKILL);
    waitpid(gb_srv.pid, &st, 0);
    gb_srv.pid = 0;
  }
  if (gb_srv.dir) {
    nftw(gb_srv.dir, gb_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(gb_srv.dir);
    gb_srv.dir = NULL;
  }
}

static void gb_on_signal(int sig) {
  if (gb_srv.pid > 0)
    kill(gb_srv.pid, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* Soft RLIMIT_NOFILE up to the hard limit (lmzd inherits it); dies when
 * `need` descriptors are not possible. Returns the limit. */
static rlim_t gb_raise_nofile(rlim_t need) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl))
    gb_die("getrlimit: %s", strerror(errno));
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl))
      gb_die("setrlimit: %s", strerror(errno));
  }
  if (rl.rlim_cur < need)
    gb_die("RLIMIT_NOFILE is %llu, need %llu (raise the hard limit: ulimit -Hn)",
           (unsigned long long)rl.rlim_cur, (unsigned long long)need);
  return rl.rlim_cur;
}

/* "Max open files" soft limit of a process, from /proc (0 if unknown). */
static inline unsigned long long gb_proc_nofile(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/limits", (int)pid);
  FILE *f = fopen(path, "r");
  unsigned long long v = 0;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "Max open files", 14))
      sscanf(line + 14, "%llu", &v);
  if (f)
    fclose(f);
  return v;
}

/* CPU seconds (user + system) of a process, from /proc/PID/stat. */
static double gb_proc_cpu(pid_t pid) {
  char path[64], buf[2048];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')'); /* the command may contain spaces */
  unsigned long long ut = 0, st = 0;
  if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                  &ut, &st) == 2)
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
  return 0;
}

/* The 1-minute load average (other work on the box skews every number). */
static double gb_loadavg(void) {
  double l = 0;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f && fscanf(f, "%lf", &l) != 1)
    l = 0;
  if (f)
    fclose(f);
  return l;
}

static double gb_self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Starts `lmzd --dev` (next to this binary unless `bin` is given) and waits
 * for DATA/http.port; sets gb_srv.url. */
static void gb_start_lmzd(const char *bin) {
  char exe[4096], lmzd[4200];
  if (!bin) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
      gb_die("readlink /proc/self/exe");
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(lmzd, sizeof lmzd, "%s/lmzd", exe);
    bin = lmzd;
  }
  const char *tmp = getenv("TMPDIR");
  if (asprintf(&gb_srv.dir, "%s/lmz-bench-gw.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
      !mkdtemp(gb_srv.dir))
    gb_die("mkdtemp: %s", strerror(errno));
  atexit(gb_stop_lmzd);
  signal(SIGINT, gb_on_signal);
  signal(SIGTERM, gb_on_signal);
  char log[4200];
  snprintf(log, sizeof log, "%s/lmzd.log", gb_srv.dir);
  gb_srv.pid = fork();
  if (gb_srv.pid < 0)
    gb_die("fork: %s", strerror(errno));
  if (gb_srv.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!freopen(log, "w", stderr))
      _exit(126);
    execl(bin, "lmzd", "--dev", "--data", gb_srv.dir, "--listen", "127.0.0.1:0",
          "--http", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/http.port", gb_srv.dir);
  for (double end = gb_now() + 20;;) {
    FILE *f = fopen(path, "r");
    int port = 0;
    if (f && fscanf(f, "%d", &port) == 1 && port > 0) {
      fclose(f);
      snprintf(gb_srv.url, sizeof gb_srv.url, "ws://127.0.0.1:%d", port);
      return;
    }
    if (f)
      fclose(f);
    int st;
    if (waitpid(gb_srv.pid, &st, WNOHANG) == gb_srv.pid) {
      gb_srv.pid = 0;
      gb_die("%s exited at start (log: %s)", bin, log);
    }
    if (gb_now() > end)
      gb_die("lmzd did not write %s within 20 s", path);
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling a file another process writes */
  }
}

/* ---- loop helpers -------------------------------------------------------- */

static void gb_late(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs `loop` until done(arg) or `seconds` pass; returns done(arg). */
static bool gb_run_until(uv_loop_t *loop, bool (*done)(void *), void *arg,
                         double seconds) {
  bool late = false;
  uv_timer_t t;
  uv_timer_init(loop, &t);
  t.data = &late;
  uv_timer_start(&t, gb_late, (uint64_t)(seconds * 1000), 0);
  while (!done(arg) && !late)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return done(arg);
}

static bool gb_flag(void *p) { return *(bool *)p; }

struct gb_token {
  bool done;
  int status;
  char token[2048], sub[128], err[LMZ_ERRMSG_LEN];
};

static void gb_on_token(void *data, int status, const char *token,
                        const char *sub, const char *errmsg) {
  struct gb_token *t = data;
  t->done = true;
  t->status = status;
  if (status)
    snprintf(t->err, sizeof t->err, "%s", errmsg);
  else
    snprintf(t->token, sizeof t->token, "%s", token),
        snprintf(t->sub, sizeof t->sub, "%s", sub);
}

static void gb_fetch_token(uv_loop_t *loop, struct gb_token *t) {
  memset(t, 0, sizeof *t);
  if (lmzc_dev_token(loop, gb_srv.url, gb_on_token, t))
    gb_die("dev token request");
  if (!gb_run_until(loop, gb_flag, &t->done, 15) || t->status)
    gb_die("dev token: %s", t->done ? t->err : "no answer");
}

/* ---- many clients --------------------------------------------------------- */

struct gb_conn {
  lmzc_t *c;
  int status;
  bool connected, closed, disconnected;
  int idx;
  void *user;
  struct gb_pool *pool;
  char instance[160];
};

struct gb_pool {
  uv_loop_t *loop;
  const char *token;
  struct gb_conn *v;
  int n;
  int n_connected, n_failed, n_closed, n_disconnected, next;
  const char *const *urls; /* NULL: gb_srv.url; else client i -> urls[i % n_urls] */
  int n_urls;
};

static void gb_pool_connect_next(struct gb_pool *p);

static void gb_on_connect(lmzc_t *c, int status) {
  struct gb_conn *k = lmzc_data(c);
  k->connected = true;
  k->status = status;
  if (status) {
    k->pool->n_failed++;
    fprintf(stderr, "  client %d: connect failed: %s\n", k->idx, lmzc_errmsg(c));
  } else {
    k->pool->n_connected++;
  }
  gb_pool_connect_next(k->pool);
}

static void gb_on_disc(lmzc_t *c, int code, const char *reason, size_t n) {
  struct gb_conn *k = lmzc_data(c);
  k->disconnected = true;
  k->pool->n_disconnected++;
  fprintf(stderr, "  client %d disconnected: %d %.*s\n", k->idx, code, (int)n, reason);
}

static void gb_on_closed(lmzc_t *c) {
  struct gb_conn *k = lmzc_data(c);
  k->closed = true;
  k->pool->n_closed++;
}

/* Connects one more client (at most 128 handshakes at a time, so the
 * server's listen backlog never overflows). */
static void gb_pool_connect_next(struct gb_pool *p) {
  if (p->next >= p->n)
    return;
  struct gb_conn *k = &p->v[p->next++];
  const char *url = p->urls ? p->urls[k->idx % p->n_urls] : gb_srv.url;
  struct lmzc_options o = {.url = url, .instance = k->instance, .token = p->token,
                           .on_disconnect = gb_on_disc, .data = k,
                           .heartbeat_ms = -1, .max_queued = 100000};
  char err[LMZ_ERRMSG_LEN] = "";
  if (lmzc_connect(p->loop, &k->c, &o, gb_on_connect, err))
    gb_die("lmzc_connect: %s", err);
}

static bool gb_pool_all_connected(void *arg) {
  struct gb_pool *p = arg;
  return p->n_connected + p->n_failed == p->n;
}

/* Opens n clients "<sub>.<prefix><i>"; dies unless all connect. */
static void gb_pool_open_urls(struct gb_pool *p, uv_loop_t *loop, int n,
                              const struct gb_token *tok, const char *prefix,
                              const char *const *urls, int n_urls) {
  memset(p, 0, sizeof *p);
  p->urls = urls; /* client i on urls[i % n_urls] (NULL: gb_srv.url) */
  p->n_urls = n_urls;
  p->loop = loop;
  p->n = n;
  p->v = calloc((size_t)n, sizeof *p->v);
  if (!p->v)
    gb_die("out of memory");
  for (int i = 0; i < n; i++) {
    p->v[i].idx = i;
    p->v[i].pool = p;
    snprintf(p->v[i].instance, sizeof p->v[i].instance, "%s.%s%d", tok->sub, prefix, i);
  }
  p->token = tok->token;
  for (int i = 0; i < 128 && i < n; i++)
    gb_pool_connect_next(p);
  if (!gb_run_until(loop, gb_pool_all_connected, p, 60 + n / 100) || p->n_failed)
    gb_die("%d of %d clients connected", p->n_connected, n);
}

static inline void gb_pool_open(struct gb_pool *p, uv_loop_t *loop, int n,
                                const struct gb_token *tok, const char *prefix) {
  gb_pool_open_urls(p, loop, n, tok, prefix, NULL, 0);
}

static bool gb_pool_all_closed(void *arg) {
  struct gb_pool *p = arg;
  return p->n_closed == p->next;
}

static void gb_pool_close(struct gb_pool *p) {
  for (int i = 0; i < p->next; i++)
    lmzc_close(p->v[i].c, gb_on_closed);
  if (!gb_run_until(p->loop, gb_pool_all_closed, p, 30))
    gb_die("clients did not close");
  free(p->v);
  p->v = NULL;
}

/* ---- latency histogram ----------------------------------------------------- */

/* 1 us buckets up to 100 ms, then one overflow bucket holding the max. */
#define GB_HIST_N 100000

struct gb_hist {
  uint32_t b[GB_HIST_N + 1];
  uint64_t n;
  double max_ms;
};

static inline void gb_hist_add(struct gb_hist *h, uint64_t ns) {
  uint64_t us = ns / 1000;
  h->b[us < GB_HIST_N ? us : GB_HIST_N]++;
  h->n++;
  double ms = (double)ns / 1e6;
  if (ms > h->max_ms)
    h->max_ms = ms;
}

/* The q-quantile in ms (0 when empty). */
static inline double gb_hist_q(const struct gb_hist *h, double q) {
  if (!h->n)
    return 0;
  uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
  for (uint32_t i = 0; i <= GB_HIST_N; i++) {
    seen += h->b[i];
    if (seen > want)
      return i == GB_HIST_N ? h->max_ms : ((double)i + 0.5) / 1000.0;
  }
  return h->max_ms;
}

/* ---- results ---------------------------------------------------------------- */

/* One result line (bench/README.md contract). target <= 0: none. */
static void gb_emit(const char *metric, double value, const char *unit,
                    double target, bool higher_better, const char *extra) {
  bool pass = higher_better ? value >= target : value <= target;
  printf("{\"scenario\":\"%s\",\"metric\":\"%s\",\"value\":%.4f,\"unit\":\"%s\"",
         gb_scenario, metric, value, unit);
  if (target > 0)
    printf(",\"target\":%.4f,\"pass\":%s", target, pass ? "true" : "false");
  if (extra && *extra)
    printf(",%s", extra);
  printf("}\n");
  fflush(stdout);
  fprintf(stderr, "  %-34s %12.3f %-8s%s\n", metric, value, unit,
          target > 0 ? (pass ? "  (target met)" : "  (target MISSED)") : "");
}

#endif
