/* Overload against a real lmzd (issue 13 item 3): a node started with a low
 * bound (limits.mailbox_max = 8, or limits.pending_calls_max = 64) in its
 * config (one node per test, each with the bound it floods), flooded by C
 * clients (clients/c/lmzc.h) through the gateway.
 *
 *  1. mailbox: 4 clients pipeline 250 increments each to one counter; every
 *     call is answered, the ones past the bound with MeshOverloadedError
 *     (retryable and overloaded, read with lmzc_error_is_*), the counter's
 *     total equals the number of successful increments, and the counter
 *     serves normally afterwards;
 *  2. pending calls: client A holds every call relayed to it (never
 *     answers); client B sends 200 calls to A: the node accepts what its
 *     pending-call bound allows and refuses the rest at once; when A
 *     answers, B gets those results and the node serves normally;
 *  3. /metrics counts both kinds of refusal;
 *  4. a bad limit (0) stops lmzd at start, naming file, line and rule.
 * The time to the first refusal is printed (a measurement, not a check:
 * no wall-clock upper bounds in tests). Every wait has a deadline; lmzd is
 * killed at the end (and by PR_SET_PDEATHSIG if this process dies). */
#define _GNU_SOURCE
#include "lib/testlib.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "clients/c/lmzc.h"

#define WAIT_MS 20000
#define FLOOD_CLIENTS 4
#define FLOOD_CALLS 250
#define RELAYED 200

static struct {
  char *dir;
  pid_t pid;
  int http_port;
  char url[64];
  char token[2048];
} S;

static uv_loop_t L;

/* ---- loop ----------------------------------------------------------------- */

static void deadline_cb(uv_timer_t *t) { *(bool *)t->data = true; }

typedef bool (*cond_fn)(void *arg);

/* Runs the loop until cond(arg) or ms pass; returns cond(arg). */
static bool run_until(cond_fn cond, void *arg, int ms) {
  bool late = false;
  uv_timer_t t;
  uv_timer_init(&L, &t);
  t.data = &late;
  uv_timer_start(&t, deadline_cb, (uint64_t)ms, 0);
  while (!cond(arg) && !late)
    uv_run(&L, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&L, UV_RUN_NOWAIT);
  return cond(arg);
}

static bool flag_set(void *arg) { return *(bool *)arg; }

/* ---- lmzd ------------------------------------------------------------------ */

static void sleep_10ms(void) {
  struct timespec ts = {0, 10 * 1000 * 1000};
  nanosleep(&ts, NULL); /* polling a file another process writes */
}

static void write_config(const char *path, const char *limits) {
  const char *lib = getenv("LMZ_LIB_DIR");
  assert_non_null(lib);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f,
          "// issue 13 item 3: low bounds, so a test can reach them\n"
          "{\n"
          "  \"modules\": [\"%s/libcounter.so\"],\n"
          "  \"durable_objects\": {\"bindings\": [\n"
          "    {\"name\": \"COUNTER_DO\", \"class_name\": \"CounterDO\"}]},\n"
          "  \"storage\": {\"sync\": false},\n"
          "  \"gateway\": {\"jwt\": {\"dev_keys\": true}},\n"
          "  \"limits\": %s\n"
          "}\n", lib, limits);
  assert_int_equal(fclose(f), 0);
}

static void start_lmzd(const char *limits) {
  char *bin = tl_bin_path("lmzd");
  assert_non_null(bin);
  char cfg[4200], log[4200], data[4200];
  snprintf(cfg, sizeof cfg, "%s/node.jsonc", S.dir);
  snprintf(log, sizeof log, "%s/lmzd.log", S.dir);
  snprintf(data, sizeof data, "%s/data", S.dir);
  write_config(cfg, limits);
  S.pid = fork();
  assert_true(S.pid >= 0);
  if (S.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    execl(bin, "lmzd", "--config", cfg, "--data", data, "--listen", "127.0.0.1:0",
          "--http", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  free(bin);
  char path[4200];
  snprintf(path, sizeof path, "%s/http.port", data);
  uint64_t end = tl_now_ms() + WAIT_MS;
  char *port = NULL;
  while (!(port = tl_read_file(path, NULL)) || !*port) {
    free(port);
    port = NULL;
    int st;
    if (waitpid(S.pid, &st, WNOHANG) == S.pid) {
      fprintf(stderr, "lmzd exited early; see %s\n", log);
      fail();
    }
    assert_true(tl_now_ms() < end);
    sleep_10ms();
  }
  S.http_port = atoi(port);
  free(port);
  snprintf(S.url, sizeof S.url, "ws://127.0.0.1:%d", S.http_port);
}

/* A token for sub "ovl" from the node's dev keys (`lmz token mint`). */
static void mint_token(void) {
  char *bin = tl_bin_path("lmz");
  assert_non_null(bin);
  char cmd[8500];
  snprintf(cmd, sizeof cmd, "'%s' token mint --data '%s/data' --sub ovl", bin, S.dir);
  free(bin);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = fread(S.token, 1, sizeof S.token - 1, p);
  assert_int_equal(pclose(p), 0);
  assert_true(n > 20);
  S.token[n] = '\0';
  S.token[strcspn(S.token, "\r\n")] = '\0';
}

/* One lmzd per test, with the bounds the test floods. */
static int node_setup(const char *limits) {
  S.dir = tl_mkdtemp("lmz-ovl-it");
  assert_non_null(S.dir);
  start_lmzd(limits);
  mint_token();
  return uv_loop_init(&L);
}

static int mailbox_setup(void **state) {
  (void)state;
  return node_setup("{\"mailbox_max\": 8}");
}

static int pending_setup(void **state) {
  (void)state;
  return node_setup("{\"pending_calls_max\": 64}");
}

static int node_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 1000 && uv_loop_alive(&L); i++)
    uv_run(&L, UV_RUN_NOWAIT);
  int rv = uv_loop_close(&L);
  if (rv)
    uv_print_all_handles(&L, stderr);
  if (S.pid > 0) {
    kill(S.pid, SIGTERM);
    int st;
    uint64_t end = tl_now_ms() + 5000;
    while (waitpid(S.pid, &st, WNOHANG) == 0 && tl_now_ms() < end)
      sleep_10ms();
    kill(S.pid, SIGKILL);
    waitpid(S.pid, &st, 0);
    S.pid = 0;
  }
  tl_rmtree(S.dir);
  free(S.dir);
  return rv;
}

/* ---- clients ----------------------------------------------------------------- */

struct cl {
  lmzc_t *c;
  bool connected, closed;
  int status;
  char instance[64];
  lmzc_incoming_t *held[RELAYED];
  int n_held;
};

static void cl_on_connect(lmzc_t *c, int status) {
  struct cl *x = lmzc_data(c);
  x->connected = true;
  x->status = status;
}

static void cl_on_close(lmzc_t *c) {
  struct cl *x = lmzc_data(c);
  x->closed = true;
}

static void cl_open(struct cl *x, int tab) {
  memset(x, 0, sizeof *x);
  snprintf(x->instance, sizeof x->instance, "ovl.t%d", tab);
  struct lmzc_options o = {.url = S.url, .instance = x->instance, .token = S.token,
                           .data = x};
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = lmzc_connect(&L, &x->c, &o, cl_on_connect, err);
  if (rv)
    fprintf(stderr, "connect: %s\n", err);
  assert_int_equal(rv, 0);
  assert_true(run_until(flag_set, &x->connected, WAIT_MS));
  if (x->status)
    fprintf(stderr, "connect: %s\n", lmzc_errmsg(x->c));
  assert_int_equal(x->status, 0);
}

static void cl_close(struct cl *x) {
  lmzc_close(x->c, cl_on_close);
  assert_true(run_until(flag_set, &x->closed, WAIT_MS));
}

/* ---- answers ------------------------------------------------------------------ */

static struct {
  int answered, ok, overloaded, other;
  uint64_t t0, first_refusal_ms;
  char other_msg[256];
} A;

static void tally(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c, (void)data;
  A.answered++;
  if (status == 0 && ok) {
    A.ok++;
  } else if (status == 0 && v && lmz_typeof(v) == LMZ_T_ERROR &&
             !strcmp(lmz_error_name(v), "MeshOverloadedError") &&
             lmzc_error_is_retryable(v) && lmzc_error_is_overloaded(v)) {
    if (!A.overloaded++)
      A.first_refusal_ms = tl_now_ms() - A.t0;
  } else {
    A.other++;
    snprintf(A.other_msg, sizeof A.other_msg, "status %d: %s", status,
             v && lmz_typeof(v) == LMZ_T_ERROR ? lmz_error_message(v) : "?");
  }
}

static bool answered(void *arg) { return A.answered >= *(int *)arg; }

struct one {
  bool done, ok;
  double num;
};

static void one_reply(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c;
  struct one *o = data;
  o->done = true;
  o->ok = status == 0 && ok;
  o->num = v && lmz_typeof(v) == LMZ_T_NUMBER ? lmz_get_number(v) : -1;
}

static struct one call_one(struct cl *x, const char *method, double arg) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *n = lmz_number(a, arg);
  lmz_value *chain = lmzc_method_chain(a, method, arg ? 1 : 0, &n);
  struct one o = {0};
  assert_int_equal(lmzc_call(x->c, "COUNTER_DO", "flood", chain, one_reply, &o), 0);
  lmz_arena_free(a);
  assert_true(run_until(flag_set, &o.done, WAIT_MS));
  return o;
}

/* ---- /metrics ----------------------------------------------------------------- */

static uint64_t metric(const char *name) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct timeval tv = {10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)S.http_port)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  assert_int_equal(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
  static char body[1 << 16];
  size_t len = 0;
  ssize_t n;
  while (len < sizeof body - 1 && (n = read(fd, body + len, sizeof body - 1 - len)) > 0)
    len += (size_t)n;
  close(fd);
  body[len] = '\0';
  char key[128];
  snprintf(key, sizeof key, "\n%s{", name);
  const char *p = strstr(body, key);
  if (!p)
    fprintf(stderr, "metric %s missing in:\n%.2000s\n", name, body);
  assert_non_null(p);
  p = strchr(p, '}');
  assert_non_null(p);
  return strtoull(p + 1, NULL, 10);
}

/* ---- tests -------------------------------------------------------------------- */

static void flood_one_counter(void **state) {
  (void)state;
  struct cl cs[FLOOD_CLIENTS];
  for (int i = 0; i < FLOOD_CLIENTS; i++)
    cl_open(&cs[i], i + 1);
  memset(&A, 0, sizeof A);
  lmz_arena *a = lmz_arena_new();
  lmz_value *one = lmz_number(a, 1);
  lmz_value *chain = lmzc_method_chain(a, "increment", 1, &one);
  A.t0 = tl_now_ms();
  for (int k = 0; k < FLOOD_CALLS; k++)
    for (int i = 0; i < FLOOD_CLIENTS; i++)
      assert_int_equal(lmzc_call(cs[i].c, "COUNTER_DO", "flood", chain, tally, NULL), 0);
  int all = FLOOD_CLIENTS * FLOOD_CALLS;
  assert_true(run_until(answered, &all, WAIT_MS));
  print_message("mailbox flood: %d calls, %d ok, %d MeshOverloadedError (first after %llu ms), "
                "all answered after %llu ms\n", all, A.ok, A.overloaded,
                (unsigned long long)A.first_refusal_ms,
                (unsigned long long)(tl_now_ms() - A.t0));
  if (A.other)
    fprintf(stderr, "unexpected answer: %s\n", A.other_msg);
  assert_int_equal(A.other, 0);
  assert_int_equal(A.ok + A.overloaded, all);
  assert_true(A.overloaded > 0);
  assert_true(A.ok >= 8);
  /* the counter served exactly the accepted increments, and serves on */
  struct one got = call_one(&cs[0], "get", 0);
  assert_true(got.ok);
  assert_true(got.num == (double)A.ok);
  got = call_one(&cs[1], "increment", 1);
  assert_true(got.ok);
  assert_true(got.num == (double)A.ok + 1);
  uint64_t refused = metric("lmz_overloaded_mailbox_total");
  print_message("/metrics: lmz_overloaded_mailbox_total %llu\n", (unsigned long long)refused);
  assert_int_equal(refused, A.overloaded); /* this node refused nothing else */
  assert_int_equal(metric("lmz_overloaded_pending_total"), 0);
  lmz_arena_free(a);
  for (int i = 0; i < FLOOD_CLIENTS; i++)
    cl_close(&cs[i]);
}

static void hold_incoming(lmzc_t *c, lmzc_incoming_t *in, void *data) {
  (void)c;
  struct cl *x = data;
  if (x->n_held < RELAYED)
    x->held[x->n_held++] = in;
  else
    lmzc_respond(in, false, lmz_error(in->arena, "Error", "test: too many"));
}

static void flood_pending_calls(void **state) {
  (void)state;
  struct cl holder, caller;
  cl_open(&holder, 11);
  cl_open(&caller, 12);
  lmzc_on_incoming(holder.c, hold_incoming, &holder);
  memset(&A, 0, sizeof A);
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "ping", 0, NULL);
  A.t0 = tl_now_ms();
  for (int k = 0; k < RELAYED; k++)
    assert_int_equal(lmzc_call(caller.c, LMZC_GATEWAY_BINDING, holder.instance, chain,
                               tally, NULL), 0);
  /* every call is either held by the holder or refused */
  bool settled = false;
  uint64_t end = tl_now_ms() + WAIT_MS;
  while (!settled && tl_now_ms() < end) {
    int n = A.answered + 1;
    run_until(answered, &n, 50);
    settled = A.answered + holder.n_held == RELAYED;
  }
  print_message("pending flood: %d calls, %d held by the slow client, %d MeshOverloadedError "
                "(first after %llu ms)\n", RELAYED, holder.n_held, A.overloaded,
                (unsigned long long)A.first_refusal_ms);
  if (A.other)
    fprintf(stderr, "unexpected answer: %s\n", A.other_msg);
  assert_true(settled);
  assert_int_equal(A.other, 0);
  assert_int_equal(A.overloaded, A.answered);
  assert_true(holder.n_held > 0 && holder.n_held <= 64);
  assert_true(A.overloaded >= RELAYED - 64);
  /* one more call while the node is full: refused in one round trip */
  uint64_t t1 = uv_hrtime();
  assert_int_equal(lmzc_call(caller.c, LMZC_GATEWAY_BINDING, holder.instance, chain,
                             tally, NULL), 0);
  int more = A.answered + 1;
  assert_true(run_until(answered, &more, WAIT_MS));
  print_message("a call to a full node: MeshOverloadedError after %.3f ms\n",
                (double)(uv_hrtime() - t1) / 1e6);
  assert_int_equal(A.overloaded, RELAYED - holder.n_held + 1);
  /* the slow client answers: the held calls complete */
  int held = holder.n_held;
  for (int i = 0; i < held; i++)
    assert_int_equal(lmzc_respond(holder.held[i], true, lmz_cstring(a, "pong")), 0);
  holder.n_held = 0;
  int all = RELAYED + 1;
  assert_true(run_until(answered, &all, WAIT_MS));
  assert_int_equal(A.ok, held);
  /* and the node serves normally */
  struct one got = call_one(&caller, "get", 0);
  assert_true(got.ok);
  assert_int_equal(metric("lmz_overloaded_pending_total"), A.overloaded);
  assert_int_equal(metric("lmz_overloaded_mailbox_total"), 0);
  assert_int_equal(metric("lmz_calls_pending"), 0);
  lmz_arena_free(a);
  cl_close(&holder);
  cl_close(&caller);
}

/* A bad limit stops lmzd at start with FILE:LINE:COL and the rule. */
static void bad_limits_refused(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-ovl-bad");
  assert_non_null(dir);
  char cfg[4200], log[4200];
  snprintf(cfg, sizeof cfg, "%s/node.jsonc", dir);
  snprintf(log, sizeof log, "%s/lmzd.log", dir);
  write_config(cfg, "{\"mailbox_max\": 0}");
  char *bin = tl_bin_path("lmzd");
  assert_non_null(bin);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    execl(bin, "lmzd", "--config", cfg, "--data", dir, "--listen", "127.0.0.1:0",
          "--http", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  free(bin);
  int st = 0;
  uint64_t end = tl_now_ms() + WAIT_MS;
  while (waitpid(pid, &st, WNOHANG) == 0) {
    if (tl_now_ms() >= end) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      fail_msg("lmzd started with limits.mailbox_max = 0");
    }
    sleep_10ms();
  }
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 2);
  char *text = tl_read_file(log, NULL);
  assert_non_null(text);
  assert_non_null(strstr(text, "node.jsonc:8:"));
  assert_non_null(strstr(text, "limits.mailbox_max must be an integer 1..1000000000"));
  free(text);
  tl_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(flood_one_counter, mailbox_setup, node_teardown),
      cmocka_unit_test_setup_teardown(flood_pending_calls, pending_setup, node_teardown),
      cmocka_unit_test(bad_limits_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
