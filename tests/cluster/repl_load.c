/* tests/cluster/repl_load.c - the load driver of the replication tests
 * (tests/cluster/repl_*.sh, issue 9): Jepsen-style, it records a history that
 * tests/cluster/repl_check.c judges.
 *
 *   repl_load run    K callers increment C COUNTER_DO counters (increment 1)
 *                    through every node in turn until --seconds pass or the
 *                    --stop-file appears; a call that fails in any way is
 *                    retried on the next node (a new operation in the
 *                    history: increment is not idempotent) until the
 *                    operation's retry deadline, then another counter is
 *                    picked. One history line per call:
 *       op CALLER COUNTER NODE START_US END_US ok VALUE
 *       op CALLER COUNTER NODE START_US END_US fail NAME      (an answer that
 *                    is not a total: ActorUnavailableError, a transport code)
 *       op CALLER COUNTER NODE START_US END_US unknown WHY    (no answer)
 *                    Only "ok" is acknowledged; fail and unknown may or may
 *                    not have run (actor/router.c: a dropped forward is "at
 *                    most once"), so the checker counts both as maybe.
 *   repl_load final  per counter one `get` (any --via node, retried until
 *                    --deadline-s) -> "final COUNTER NODE VALUE", then
 *                    `activation` through every --via node -> "act COUNTER
 *                    VIA NODE_NAME ACTIVATION_ID"; appended to --history.
 *   repl_load probe  until every counter answered a `get` through a node
 *                    other than --exclude (pipelined rounds, one connection
 *                    per node): "probe COUNTER NODE MS" on stdout, MS since
 *                    --since-us (default: the start); exit 0 when all
 *                    answered within --deadline-s, else 1 (the missing ones
 *                    named on stderr).
 *   repl_load owners "owner COUNTER NODE BACKUPS" per counter from
 *                    `locate` (BACKUPS: the "backups" array's ids joined by
 *                    ',', or '-' when the answer has none).
 *
 * Nodes are numbered 1..--nodes. Their addresses: --addrs A1,A2,... or,
 * with --cluster DIR (deploy/dev-cluster.sh with ephemeral ports), read
 * from DIR/nodeN/node.port at every (re)connect, so a restarted node is
 * found on its new port. The key: --key-file. Counter names: --prefix
 * (default "r") + index. --skip-file F (run): node numbers listed in F
 * (re-read every 100 ms) get no calls, e.g. a SIGSTOPped node.
 *
 * Failure modes: usage -> exit 2; a history that cannot be written -> 1.
 * Nodes that are down, slow or gone are what this is for: they only shape
 * the history. Every wait has a deadline (--timeout-ms per call, 1 s per
 * connect). Threads: `run` has one thread per caller, each with its own
 * connections; the history FILE is shared under a mutex. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/keyfile.h"
#include "cluster/rpc_client.h"
#include "core/codec.h"
#include "lmz/lmz.h"
#include "proto/frame.h"

#define MAX_NODES 8
#define MAX_CALLERS 64
#define MAX_COUNTERS 10000
#define CONNECT_MS 1000

struct opts {
  const char *cmd, *cluster, *key_file, *history, *stop_file, *skip_file;
  const char *prefix;
  char addrs[MAX_NODES][64];
  bool fixed_addrs;
  int nodes, counters, callers, timeout_ms, exclude;
  double seconds, deadline_s, retry_s;
  uint64_t seed, since_us;
  unsigned via_mask; /* final: bit n = node n */
};

static struct opts O;
static uint8_t g_key[LMZ_KEYFILE_KEY_LEN];
static FILE *g_hist;
static pthread_mutex_t g_hist_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool g_stop;
static atomic_uint g_skip; /* bit n: send nothing to node n */

/* ---- small utilities ----------------------------------------------------- */

static uint64_t now_us(void) { /* wall clock: the scripts compare with date */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static double mono_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void counter_name(int i, char *out, size_t n) {
  snprintf(out, n, "%s%d", O.prefix, i);
}

/* Node n's "host:port" now, or -1 (no port reported). */
static int node_addr(int n, char *out, size_t len) {
  if (O.fixed_addrs) {
    snprintf(out, len, "%s", O.addrs[n - 1]);
    return out[0] ? 0 : -1;
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/node%d/node.port", O.cluster, n);
  FILE *f = fopen(path, "r");
  int port = 0;
  if (f) {
    if (fscanf(f, "%d", &port) != 1)
      port = 0;
    fclose(f);
  }
  if (port <= 0 || port > 65535)
    return -1;
  snprintf(out, len, "127.0.0.1:%d", port);
  return 0;
}

static lmz_rpc_client *connect_node(int n) {
  char addr[80], err[LMZ_ERRMSG_LEN];
  lmz_rpc_client *rc = NULL;
  if (node_addr(n, addr, sizeof addr) || lmz_rpc_connect(&rc, addr, g_key, CONNECT_MS, err))
    return NULL;
  return rc;
}

/* ---- one call ------------------------------------------------------------ */

enum outcome { OUT_OK, OUT_FAIL, OUT_UNKNOWN };

struct answer {
  enum outcome o;
  lmz_value *v;  /* OUT_OK: the value (in the caller's arena) */
  char what[96]; /* OUT_FAIL: the error's name; OUT_UNKNOWN: why */
};

/* [{type:'get', key:method}, {type:'apply', args:[arg?]}] */
static int make_chain(lmz_buf *out, const char *method, const double *arg) {
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

static int send_call(lmz_rpc_client *rc, uint64_t id, const char *instance,
                     const lmz_buf *chain) {
  return lmz_rpc_send_call(rc, id, "COUNTER_DO", instance, chain->data,
                           chain->len, NULL, 0);
}

/* A Result as an answer: a value, or the name of what went wrong. */
static void classify(const Lmz__Result *r, lmz_arena *a, struct answer *ans) {
  lmz_value *v = NULL;
  ans->o = OUT_FAIL;
  if (r->code && !r->value.len) {
    snprintf(ans->what, sizeof ans->what, "%s", lmz_err_name(r->code));
  } else if (lmz_bin_decode(a, r->value.data, r->value.len, NULL, &v, NULL)) {
    snprintf(ans->what, sizeof ans->what, "undecodable");
  } else if (r->ok && !r->code) {
    ans->o = OUT_OK;
    ans->v = v;
  } else if (lmz_typeof(v) == LMZ_T_ERROR) {
    snprintf(ans->what, sizeof ans->what, "%s", lmz_error_name(v));
  } else {
    snprintf(ans->what, sizeof ans->what, "threw");
  }
}

/* Waits for Result `id`; any other frame is dropped. */
static void await_result(lmz_rpc_client *rc, uint64_t id, int timeout_ms,
                         lmz_arena *a, struct answer *ans) {
  double deadline = mono_s() + timeout_ms / 1000.0;
  for (;;) {
    int left = (int)((deadline - mono_s()) * 1000);
    Lmz__Frame *f = NULL;
    int rv = left > 0 ? lmz_rpc_recv(rc, &f, left) : LMZ_ETIMEOUT;
    if (rv) {
      ans->o = OUT_UNKNOWN;
      snprintf(ans->what, sizeof ans->what, "%s", rv == LMZ_ETIMEOUT ? "timeout" : "closed");
      return;
    }
    bool mine = f->body_case == LMZ__FRAME__BODY_RESULT && f->result->call_id == id;
    if (mine)
      classify(f->result, a, ans);
    lmz_frame_free(f);
    if (mine)
      return;
  }
}

/* One call on rc: its answer in ans (values in arena a). */
static void call_once(lmz_rpc_client *rc, uint64_t id, const char *instance,
                      const lmz_buf *chain, int timeout_ms, lmz_arena *a,
                      struct answer *ans) {
  memset(ans, 0, sizeof *ans);
  if (send_call(rc, id, instance, chain)) {
    ans->o = OUT_UNKNOWN; /* may have gone out in part: not known */
    snprintf(ans->what, sizeof ans->what, "send");
    return;
  }
  await_result(rc, id, timeout_ms, a, ans);
}

/* ---- run: the callers ---------------------------------------------------- */

struct caller {
  int id;
  pthread_t th;
  lmz_rpc_client *rc[MAX_NODES + 1];
  uint64_t next_id, rng;
  lmz_buf chain;
  lmz_arena *arena;
  uint64_t n_ok, n_fail, n_unknown;
};

static void log_op(const struct caller *c, int counter, int node, uint64_t t0,
                   uint64_t t1, const struct answer *ans) {
  pthread_mutex_lock(&g_hist_mu);
  fprintf(g_hist, "op %d %d %d %llu %llu ", c->id, counter, node,
          (unsigned long long)t0, (unsigned long long)t1);
  if (ans->o == OUT_OK && lmz_typeof(ans->v) == LMZ_T_NUMBER)
    fprintf(g_hist, "ok %.0f\n", lmz_get_number(ans->v));
  else if (ans->o == OUT_OK)
    fprintf(g_hist, "fail not-a-number\n"); /* an answer, but not a total */
  else
    fprintf(g_hist, "%s %s\n", ans->o == OUT_FAIL ? "fail" : "unknown", ans->what);
  pthread_mutex_unlock(&g_hist_mu);
}

/* The next node after `node` that is not skipped (all skipped: node + 1). */
static int next_node(int node) {
  unsigned skip = atomic_load(&g_skip);
  for (int k = 1; k <= O.nodes; k++) {
    int n = (node + k - 1) % O.nodes + 1;
    if (!(skip & (1u << n)))
      return n;
  }
  return node % O.nodes + 1;
}

/* One increment of `counter` through `node`; true if acknowledged. */
static bool caller_step(struct caller *c, int counter, int node) {
  if (!c->rc[node] && !(c->rc[node] = connect_node(node))) {
    sleep_ms(20); /* down or not started: nothing was sent */
    return false;
  }
  char name[64];
  counter_name(counter, name, sizeof name);
  struct answer ans;
  lmz_arena_reset(c->arena);
  uint64_t t0 = now_us();
  call_once(c->rc[node], c->next_id++, name, &c->chain, O.timeout_ms, c->arena, &ans);
  log_op(c, counter, node, t0, now_us(), &ans);
  if (ans.o == OUT_UNKNOWN) { /* a late answer must not meet a later call */
    lmz_rpc_close(c->rc[node]);
    c->rc[node] = NULL;
  }
  c->n_ok += ans.o == OUT_OK;
  c->n_fail += ans.o == OUT_FAIL;
  c->n_unknown += ans.o == OUT_UNKNOWN;
  if (ans.o != OUT_OK)
    sleep_ms(10);
  return ans.o == OUT_OK;
}

static void *caller_main(void *arg) {
  struct caller *c = arg;
  int node = c->id % O.nodes + 1, counter = -1;
  double give_up = 0;
  while (!atomic_load(&g_stop)) {
    if (counter < 0) {
      counter = (int)(rng_next(&c->rng) % (uint64_t)O.counters);
      give_up = mono_s() + O.retry_s;
    }
    node = next_node(node);
    if (caller_step(c, counter, node) || mono_s() > give_up)
      counter = -1;
  }
  for (int n = 1; n <= O.nodes; n++)
    lmz_rpc_close(c->rc[n]);
  return NULL;
}

/* Node numbers listed in the skip file, as a bit mask. */
static unsigned read_skip(void) {
  unsigned mask = 0;
  FILE *f = O.skip_file ? fopen(O.skip_file, "r") : NULL;
  int n;
  while (f && fscanf(f, "%d", &n) == 1)
    if (n >= 1 && n <= O.nodes)
      mask |= 1u << n;
  if (f)
    fclose(f);
  return mask;
}

static int cmd_run(void) {
  static struct caller cs[MAX_CALLERS];
  double end = mono_s() + O.seconds;
  atomic_store(&g_skip, read_skip());
  int started = 0;
  for (; started < O.callers; started++) {
    struct caller *c = &cs[started];
    c->id = started;
    c->next_id = 1;
    c->rng = O.seed * 1000003u + (uint64_t)started;
    c->arena = lmz_arena_new();
    double one = 1;
    if (!c->arena || make_chain(&c->chain, "increment", &one) ||
        pthread_create(&c->th, NULL, caller_main, c))
      break;
  }
  while (started == O.callers && mono_s() < end &&
         !(O.stop_file && access(O.stop_file, F_OK) == 0)) {
    atomic_store(&g_skip, read_skip());
    sleep_ms(100);
  }
  atomic_store(&g_stop, true);
  uint64_t ok = 0, fail = 0, unknown = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(cs[i].th, NULL);
    ok += cs[i].n_ok, fail += cs[i].n_fail, unknown += cs[i].n_unknown;
    lmz_buf_free(&cs[i].chain);
    lmz_arena_free(cs[i].arena);
  }
  fprintf(stderr, "repl_load run: %d callers, %llu acknowledged, %llu failed, "
                  "%llu unknown\n", started, (unsigned long long)ok,
          (unsigned long long)fail, (unsigned long long)unknown);
  return started == O.callers ? 0 : 1;
}

/* ---- final: totals and activations after the run ------------------------- */

struct session { /* one connection per node, reconnected on demand */
  lmz_rpc_client *rc[MAX_NODES + 1];
  uint64_t next_id;
  lmz_arena *arena;
};

static void session_close(struct session *s) {
  for (int n = 1; n <= O.nodes; n++)
    lmz_rpc_close(s->rc[n]);
  lmz_arena_free(s->arena);
}

/* One call through node n; the connection is dropped after no answer. */
static void session_call(struct session *s, int n, const char *name,
                         const lmz_buf *chain, struct answer *ans) {
  memset(ans, 0, sizeof *ans);
  if (!s->rc[n] && !(s->rc[n] = connect_node(n))) {
    ans->o = OUT_UNKNOWN;
    snprintf(ans->what, sizeof ans->what, "connect");
    return;
  }
  lmz_arena_reset(s->arena);
  call_once(s->rc[n], s->next_id++, name, chain, O.timeout_ms, s->arena, ans);
  if (ans->o == OUT_UNKNOWN) {
    lmz_rpc_close(s->rc[n]);
    s->rc[n] = NULL;
  }
}

/* `get` of counter i through the --via nodes in turn until one answers. */
static bool final_total(struct session *s, int i, const lmz_buf *chain,
                        double deadline) {
  char name[64];
  counter_name(i, name, sizeof name);
  int n = i % O.nodes;
  struct answer ans = {0};
  while (mono_s() < deadline) {
    n = n % O.nodes + 1;
    if (!(O.via_mask & (1u << n)))
      continue;
    session_call(s, n, name, chain, &ans);
    if (ans.o == OUT_OK && lmz_typeof(ans.v) == LMZ_T_NUMBER) {
      fprintf(g_hist, "final %d %d %.0f\n", i, n, lmz_get_number(ans.v));
      return true;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "repl_load final: %s: no total before the deadline (last: %s)\n",
          name, ans.what[0] ? ans.what : "no answer");
  return false;
}

/* `activation` of counter i through node n until it answers one. */
static bool final_activation(struct session *s, int i, int n,
                             const lmz_buf *chain, double deadline) {
  char name[64];
  counter_name(i, name, sizeof name);
  struct answer ans = {0};
  while (mono_s() < deadline) {
    session_call(s, n, name, chain, &ans);
    lmz_value *node = ans.o == OUT_OK ? lmz_object_getc(ans.v, "node") : NULL;
    lmz_value *id = ans.o == OUT_OK ? lmz_object_getc(ans.v, "activationId") : NULL;
    if (node && id && lmz_typeof(node) == LMZ_T_STRING && lmz_typeof(id) == LMZ_T_STRING) {
      fprintf(g_hist, "act %d %d %s %s\n", i, n, lmz_get_str(node, NULL),
              lmz_get_str(id, NULL));
      return true;
    }
    sleep_ms(20);
  }
  fprintf(stderr, "repl_load final: %s: no activation through node %d (last: %s)\n",
          name, n, ans.what[0] ? ans.what : "no answer");
  return false;
}

static int cmd_final(void) {
  struct session s = {.next_id = 1, .arena = lmz_arena_new()};
  lmz_buf get = LMZ_BUF_INIT, act = LMZ_BUF_INIT;
  if (!s.arena || make_chain(&get, "get", NULL) || make_chain(&act, "activation", NULL))
    return 1;
  double deadline = mono_s() + O.deadline_s;
  int missing = 0;
  for (int i = 0; i < O.counters; i++) {
    missing += !final_total(&s, i, &get, deadline);
    for (int n = 1; n <= O.nodes; n++)
      if (O.via_mask & (1u << n))
        missing += !final_activation(&s, i, n, &act, deadline);
  }
  session_close(&s);
  lmz_buf_free(&get);
  lmz_buf_free(&act);
  fprintf(stderr, "repl_load final: %d counters read, %d answers missing\n",
          O.counters, missing);
  return missing ? 1 : 0;
}

/* ---- probe: every counter answers again ---------------------------------- */

struct probe_state {
  uint64_t *answered_us; /* per counter, 0 = not yet */
  int *via;              /* per counter, the node that answered */
  uint64_t *call_of;     /* per counter, its call id this round */
  int left;
};

/* Sends a `get` for every unanswered counter through the allowed nodes in
 * turn (pipelined per node); returns the ids per node in call_of. */
static void probe_send(struct session *s, struct probe_state *p, const lmz_buf *chain,
                       int round) {
  int allowed[MAX_NODES], n_allowed = 0;
  for (int n = 1; n <= O.nodes; n++)
    if (n != O.exclude)
      allowed[n_allowed++] = n;
  for (int i = 0, k = round; i < O.counters; i++) {
    p->call_of[i] = 0;
    if (p->answered_us[i])
      continue;
    int n = allowed[k++ % n_allowed];
    if (!s->rc[n] && !(s->rc[n] = connect_node(n)))
      continue;
    char name[64];
    counter_name(i, name, sizeof name);
    uint64_t id = s->next_id++;
    if (send_call(s->rc[n], id, name, chain) == 0)
      p->call_of[i] = id * (MAX_NODES + 1) + (uint64_t)n;
  }
}

/* One Result (or nothing) from node n within `ms`; -1 when the connection
 * failed (closed here). */
static int probe_recv(struct session *s, struct probe_state *p, int n, int ms) {
  Lmz__Frame *f = NULL;
  int rv = lmz_rpc_recv(s->rc[n], &f, ms);
  if (rv == LMZ_ETIMEOUT)
    return 0;
  if (rv) {
    lmz_rpc_close(s->rc[n]);
    s->rc[n] = NULL;
    return -1;
  }
  if (f->body_case == LMZ__FRAME__BODY_RESULT) {
    uint64_t key = f->result->call_id * (MAX_NODES + 1) + (uint64_t)n;
    for (int i = 0; i < O.counters; i++)
      if (p->call_of[i] == key) {
        p->call_of[i] = 0;
        if (f->result->ok && !f->result->code) {
          p->answered_us[i] = now_us();
          p->via[i] = n;
          p->left--;
        }
        break;
      }
  }
  lmz_frame_free(f);
  return 0;
}

static bool waits_on(const struct probe_state *p, int n) {
  for (int i = 0; i < O.counters; i++)
    if (p->call_of[i] && p->call_of[i] % (MAX_NODES + 1) == (uint64_t)n)
      return true;
  return false;
}

/* Collects this round's answers from every node, in 5 ms slices so that an
 * answer is timed when it comes, whichever node it comes from. At the end
 * of the round a connection with calls still out is dropped: their late
 * answers must not count in the next round. */
static void probe_collect(struct session *s, struct probe_state *p, double round_end) {
  bool busy = true;
  while (busy && mono_s() < round_end) {
    busy = false;
    for (int n = 1; n <= O.nodes; n++)
      if (s->rc[n] && waits_on(p, n)) {
        busy = true;
        probe_recv(s, p, n, 5);
      }
  }
  for (int n = 1; n <= O.nodes; n++)
    if (s->rc[n] && waits_on(p, n)) {
      lmz_rpc_close(s->rc[n]);
      s->rc[n] = NULL;
    }
}

static int cmd_probe(void) {
  struct session s = {.next_id = 1};
  struct probe_state p = {calloc((size_t)O.counters, 8), calloc((size_t)O.counters, sizeof(int)),
                          calloc((size_t)O.counters, 8), O.counters};
  lmz_buf get = LMZ_BUF_INIT;
  uint64_t since = O.since_us ? O.since_us : now_us();
  if (!p.answered_us || !p.via || !p.call_of || make_chain(&get, "get", NULL))
    return 1;
  double deadline = mono_s() + O.deadline_s;
  for (int round = 0; p.left > 0 && mono_s() < deadline; round++) {
    probe_send(&s, &p, &get, round);
    double round_end = mono_s() + 1.0;
    probe_collect(&s, &p, round_end < deadline ? round_end : deadline);
    if (p.left > 0)
      sleep_ms(20);
  }
  double worst = 0;
  for (int i = 0; i < O.counters; i++) {
    char name[64];
    counter_name(i, name, sizeof name);
    if (!p.answered_us[i]) {
      fprintf(stderr, "repl_load probe: %s did not answer within %.1f s\n", name, O.deadline_s);
      continue;
    }
    double ms = p.answered_us[i] > since ? (double)(p.answered_us[i] - since) / 1000 : 0;
    worst = ms > worst ? ms : worst;
    printf("probe %d %d %.0f\n", i, p.via[i], ms);
  }
  fprintf(stderr, "repl_load probe: %d of %d counters answered, the last %.0f ms after the mark\n",
          O.counters - p.left, O.counters, worst);
  int rv = p.left ? 1 : 0;
  session_close(&s);
  lmz_buf_free(&get);
  free(p.answered_us), free(p.via), free(p.call_of);
  return rv;
}

/* ---- owners: where each counter lives ------------------------------------ */

/* `locate` of one counter through rc into out (JSON). */
static int locate(lmz_rpc_client *rc, const char *name, char *out, size_t len) {
  Lmz__StatusRequest q = LMZ__STATUS_REQUEST__INIT;
  q.request_id = 1;
  q.kind = 2;
  q.binding = "COUNTER_DO";
  q.instance = (char *)name;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_STATUS_REQUEST;
  f.status_request = &q;
  int rv = lmz_rpc_send(rc, &f);
  while (!rv) {
    Lmz__Frame *in = NULL;
    if ((rv = lmz_rpc_recv(rc, &in, O.timeout_ms)))
      break;
    bool done = in->body_case == LMZ__FRAME__BODY_STATUS_RESPONSE;
    if (done && !(rv = in->status_response->status))
      snprintf(out, len, "%s", in->status_response->json);
    lmz_frame_free(in);
    if (done)
      break;
  }
  return rv;
}

/* "owner I NODE BACKUPS" from a locate answer (not placed: NODE 0). */
static void print_owner(int i, const char *js) {
  const char *p = strstr(js, "\"node\":"), *b = strstr(js, "\"backups\":[");
  unsigned long long node = p && strstr(js, "\"placed\":true") ? strtoull(p + 7, NULL, 10) : 0;
  char backups[128] = "-";
  if (b) {
    b += strlen("\"backups\":[");
    size_t k = strcspn(b, "]");
    if (k > 0 && k < sizeof backups)
      snprintf(backups, sizeof backups, "%.*s", (int)k, b);
  }
  printf("owner %d %llu %s\n", i, node, backups);
}

static int cmd_owners(void) {
  lmz_rpc_client *rc = NULL;
  for (int n = 1; n <= O.nodes && !rc; n++)
    if (n != O.exclude)
      rc = connect_node(n);
  if (!rc) {
    fprintf(stderr, "repl_load owners: no node answers\n");
    return 1;
  }
  int rv = 0;
  for (int i = 0; i < O.counters && !rv; i++) {
    char name[64], js[4096] = "";
    counter_name(i, name, sizeof name);
    if ((rv = locate(rc, name, js, sizeof js)))
      fprintf(stderr, "repl_load owners: locate %s: %s\n", name, lmz_strerror(rv));
    else
      print_owner(i, js);
  }
  lmz_rpc_close(rc);
  return rv ? 1 : 0;
}

/* ---- arguments ----------------------------------------------------------- */

static const char usage_text[] =
    "usage: repl_load run|final|probe|owners (--cluster DIR | --addrs A1,A2,..)\n"
    "         --key-file F [--nodes N=3] [--counters C=100] [--prefix P=r]\n"
    "         [--timeout-ms T=3000]\n"
    "  run:    --history H [--callers K=8] [--seconds S=60] [--stop-file F]\n"
    "          [--skip-file F] [--seed X=1] [--retry-s R=2]\n"
    "  final:  --history H [--via 1,2,3 (all)] [--deadline-s S=30]\n"
    "  probe:  [--exclude N] [--since-us T] [--deadline-s S=30]\n"
    "  owners: [--exclude N]\n";

static int parse_addrs(const char *s) {
  int n = 0;
  while (*s && n < MAX_NODES) {
    size_t k = strcspn(s, ",");
    if (k == 0 || k >= sizeof O.addrs[0])
      return -1;
    snprintf(O.addrs[n++], sizeof O.addrs[0], "%.*s", (int)k, s);
    s += k + (s[k] == ',');
  }
  O.fixed_addrs = true;
  return n;
}

static unsigned parse_via(const char *s) {
  unsigned mask = 0;
  for (const char *p = s; *p; p++)
    if (*p >= '1' && *p <= '0' + MAX_NODES)
      mask |= 1u << (*p - '0');
  return mask;
}

/* One option with a value; returns 0, or -1 if unknown. */
static int parse_opt(const char *o, const char *v) {
  if (!strcmp(o, "--cluster")) O.cluster = v;
  else if (!strcmp(o, "--addrs")) return parse_addrs(v) > 0 ? 0 : -1;
  else if (!strcmp(o, "--key-file")) O.key_file = v;
  else if (!strcmp(o, "--history")) O.history = v;
  else if (!strcmp(o, "--stop-file")) O.stop_file = v;
  else if (!strcmp(o, "--skip-file")) O.skip_file = v;
  else if (!strcmp(o, "--prefix")) O.prefix = v;
  else if (!strcmp(o, "--nodes")) O.nodes = atoi(v);
  else if (!strcmp(o, "--counters")) O.counters = atoi(v);
  else if (!strcmp(o, "--callers")) O.callers = atoi(v);
  else if (!strcmp(o, "--timeout-ms")) O.timeout_ms = atoi(v);
  else if (!strcmp(o, "--exclude")) O.exclude = atoi(v);
  else if (!strcmp(o, "--seconds")) O.seconds = atof(v);
  else if (!strcmp(o, "--deadline-s")) O.deadline_s = atof(v);
  else if (!strcmp(o, "--retry-s")) O.retry_s = atof(v);
  else if (!strcmp(o, "--seed")) O.seed = strtoull(v, NULL, 10);
  else if (!strcmp(o, "--since-us")) O.since_us = strtoull(v, NULL, 10);
  else if (!strcmp(o, "--via")) O.via_mask = parse_via(v);
  else return -1;
  return 0;
}

static int parse_args(int argc, char **argv) {
  O = (struct opts){.prefix = "r", .nodes = 3, .counters = 100, .callers = 8,
                    .timeout_ms = 3000, .seconds = 60, .deadline_s = 30,
                    .retry_s = 2, .seed = 1};
  if (argc < 2)
    return -1;
  O.cmd = argv[1];
  for (int i = 2; i < argc; i += 2)
    if (i + 1 >= argc || parse_opt(argv[i], argv[i + 1]))
      return -1;
  if (!O.via_mask)
    O.via_mask = ((1u << (O.nodes + 1)) - 1) & ~1u;
  bool where = O.cluster || O.fixed_addrs;
  bool hist = O.history || (strcmp(O.cmd, "run") && strcmp(O.cmd, "final"));
  if (!where || !O.key_file || !hist || O.nodes < 1 || O.nodes > MAX_NODES ||
      O.counters < 1 || O.counters > MAX_COUNTERS || O.callers < 1 ||
      O.callers > MAX_CALLERS || O.timeout_ms < 1 || strlen(O.prefix) > 32 ||
      (O.exclude && O.nodes < 2))
    return -1;
  return 0;
}

int main(int argc, char **argv) {
  if (parse_args(argc, argv)) {
    fputs(usage_text, stderr);
    return 2;
  }
  char err[LMZ_ERRMSG_LEN] = "libsodium did not initialize";
  if (sodium_init() < 0 || lmz_keyfile_load(O.key_file, g_key, err)) {
    fprintf(stderr, "repl_load: key %s: %s\n", O.key_file, err);
    return 2;
  }
  if (O.history && !(g_hist = fopen(O.history, "a"))) {
    fprintf(stderr, "repl_load: %s: %s\n", O.history, strerror(errno));
    return 1;
  }
  if (g_hist) /* whole lines: the scripts read the history while it grows */
    setvbuf(g_hist, NULL, _IOLBF, 0);
  int rv = 2;
  if (!strcmp(O.cmd, "run")) rv = cmd_run();
  else if (!strcmp(O.cmd, "final")) rv = cmd_final();
  else if (!strcmp(O.cmd, "probe")) rv = cmd_probe();
  else if (!strcmp(O.cmd, "owners")) rv = cmd_owners();
  else fputs(usage_text, stderr);
  if (g_hist && fclose(g_hist)) {
    fprintf(stderr, "repl_load: %s: %s\n", O.history, strerror(errno));
    rv = 1;
  }
  return rv;
}
