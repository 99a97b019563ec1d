/* Tests for the C client (clients/c/lmzc.h) against a real `lmzd --dev`
 * started by this binary (ephemeral ports, temp data dir, killed at the
 * end; PR_SET_PDEATHSIG kills it if this process dies first). Tokens come
 * from the node's GET /_lmz/dev-token through lmzc_dev_token.
 *
 * Covered: connect + connection_status (subscriptionRequired true, then
 * false on a second socket for the same instance), calls to COUNTER_DO
 * (results, rich values, thrown errors, unknown bindings, worker calls),
 * 2000 pipelined calls, calls queued before the connect completes, the
 * lmz:ping heartbeat, incoming calls (DOCUMENT_DO broadcast to subscribers
 * answered by a C handler), supersession 4409, refused tokens (401), an
 * identity mismatch (403), a closed port, close with calls in flight.
 * Every wait is bounded; every loop closes with uv_loop_close() == 0. */
#define _GNU_SOURCE
#include "lib/testlib.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "clients/c/lmzc.h"
#include "core/codec.h"

#define WAIT_MS 10000

static struct {
  char *dir;
  pid_t pid;
  char url[64];
  char *token, *sub;
  int seq; /* unique tab ids and instance names across tests */
} S;

static uv_loop_t L;

/* ---- loop helpers -------------------------------------------------------- */

static void deadline_cb(uv_timer_t *t) { *(bool *)t->data = true; }

/* Runs the loop until *flag or ms pass; returns *flag. */
static bool run_until(const bool *flag, int ms) {
  bool late = false;
  uv_timer_t t;
  uv_timer_init(&L, &t);
  t.data = &late;
  uv_timer_start(&t, deadline_cb, (uint64_t)ms, 0);
  while (!*flag && !late)
    uv_run(&L, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&L, UV_RUN_NOWAIT);
  return *flag;
}

/* Runs the loop while `cond` holds, at most ms (a timer bounds the wait). */
#define RUN_WHILE(cond, ms)                                                    \
  do {                                                                         \
    bool late_ = false;                                                        \
    uv_timer_t t_;                                                             \
    uv_timer_init(&L, &t_);                                                    \
    t_.data = &late_;                                                          \
    uv_timer_start(&t_, deadline_cb, (uint64_t)(ms), 0);                       \
    while ((cond) && !late_)                                                   \
      uv_run(&L, UV_RUN_ONCE);                                                 \
    uv_close((uv_handle_t *)&t_, NULL);                                        \
    uv_run(&L, UV_RUN_NOWAIT);                                                 \
  } while (0)

static int loop_setup(void **state) {
  (void)state;
  return uv_loop_init(&L);
}

static int loop_teardown(void **state) {
  (void)state;
  for (int i = 0; i < 1000 && uv_loop_alive(&L); i++)
    uv_run(&L, UV_RUN_NOWAIT);
  int rv = uv_loop_close(&L);
  if (rv)
    uv_print_all_handles(&L, stderr);
  assert_int_equal(rv, 0);
  return 0;
}

/* ---- lmzd ------------------------------------------------------------------ */

static char *lmzd_path(void) {
  if (getenv("LMZ_BIN_DIR"))
    return tl_bin_path("lmzd");
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash)
    *slash = '\0'; /* build/tests -> build/bin/lmzd */
  char *p = NULL;
  return asprintf(&p, "%s/../bin/lmzd", exe) < 0 ? NULL : p;
}

static void start_lmzd(void) {
  char *bin = lmzd_path();
  assert_non_null(bin);
  char log[4200];
  snprintf(log, sizeof log, "%s.log", S.dir);
  S.pid = fork();
  assert_true(S.pid >= 0);
  if (S.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    FILE *f = freopen(log, "w", stderr);
    (void)f;
    execl(bin, "lmzd", "--dev", "--data", S.dir, "--listen", "127.0.0.1:0",
          "--http", "127.0.0.1:0", (char *)NULL);
    _exit(127);
  }
  free(bin);
  char path[4200];
  snprintf(path, sizeof path, "%s/http.port", S.dir);
  uint64_t end = tl_now_ms() + 20000;
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
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL); /* polling a file another process writes */
  }
  snprintf(S.url, sizeof S.url, "ws://127.0.0.1:%d", atoi(port));
  free(port);
}

struct tokres {
  bool done;
  int status;
  char *token, *sub;
};

static void on_token(void *data, int status, const char *token, const char *sub,
                     const char *errmsg) {
  struct tokres *r = data;
  r->done = true;
  r->status = status;
  if (status)
    fprintf(stderr, "dev token: %s\n", errmsg);
  r->token = token ? strdup(token) : NULL;
  r->sub = sub ? strdup(sub) : NULL;
}

static void fetch_token(char **token, char **sub) {
  struct tokres r = {0};
  assert_int_equal(lmzc_dev_token(&L, S.url, on_token, &r), 0);
  assert_true(run_until(&r.done, WAIT_MS));
  assert_int_equal(r.status, 0);
  *token = r.token;
  *sub = r.sub;
}

static int group_setup(void **state) {
  (void)state;
  S.dir = tl_mkdtemp("lmz-cc");
  assert_non_null(S.dir);
  start_lmzd();
  loop_setup(NULL);
  fetch_token(&S.token, &S.sub);
  loop_teardown(NULL);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  if (S.pid > 0) {
    kill(S.pid, SIGTERM);
    int st;
    uint64_t end = tl_now_ms() + 5000;
    while (waitpid(S.pid, &st, WNOHANG) == 0 && tl_now_ms() < end) {
      struct timespec ts = {0, 10 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    kill(S.pid, SIGKILL);
    waitpid(S.pid, &st, 0);
  }
  char log[4200];
  snprintf(log, sizeof log, "%s.log", S.dir);
  unlink(log);
  tl_rmtree(S.dir);
  free(S.dir);
  free(S.token);
  free(S.sub);
  return 0;
}

/* ---- a client ------------------------------------------------------------- */

struct cl {
  lmzc_t *c;
  bool connected, closed, disconnected;
  int status, disc_code;
  char disc_reason[128];
  char instance[128];
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

static void cl_on_disconnect(lmzc_t *c, int code, const char *reason, size_t n) {
  struct cl *x = lmzc_data(c);
  x->disconnected = true;
  x->disc_code = code;
  snprintf(x->disc_reason, sizeof x->disc_reason, "%.*s", (int)n, reason);
}

/* Starts a client for "<sub>.<tab>" (tab NULL: a fresh one). */
static void cl_start(struct cl *x, const char *token, const char *sub,
                     const char *tab) {
  memset(x, 0, sizeof *x);
  if (tab)
    snprintf(x->instance, sizeof x->instance, "%s.%s", sub, tab);
  else
    snprintf(x->instance, sizeof x->instance, "%s.t%d", sub, ++S.seq);
  struct lmzc_options o = {.url = S.url, .instance = x->instance, .token = token,
                           .on_disconnect = cl_on_disconnect, .data = x};
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = lmzc_connect(&L, &x->c, &o, cl_on_connect, err);
  if (rv)
    fprintf(stderr, "connect: %s\n", err);
  assert_int_equal(rv, 0);
}

static void cl_open(struct cl *x, const char *tab) {
  cl_start(x, S.token, S.sub, tab);
  assert_true(run_until(&x->connected, WAIT_MS));
  if (x->status)
    fprintf(stderr, "connect: %s\n", lmzc_errmsg(x->c));
  assert_int_equal(x->status, 0);
  assert_true(lmzc_is_connected(x->c));
}

static void cl_close(struct cl *x) {
  lmzc_close(x->c, cl_on_close);
  assert_true(run_until(&x->closed, WAIT_MS));
}

/* ---- replies -------------------------------------------------------------- */

struct rep {
  bool done;
  int status;
  bool ok;
  lmz_arena *a;
  lmz_value *v;
};

static void on_reply(lmzc_t *c, void *data, int status, bool ok, const lmz_value *v) {
  (void)c;
  struct rep *r = data;
  r->done = true;
  r->status = status;
  r->ok = ok;
  if (!r->a)
    r->a = lmz_arena_new();
  r->v = v ? lmz_value_copy(r->a, v) : NULL;
}

static lmz_value *num(lmz_arena *a, double d) { return lmz_number(a, d); }

/* Calls binding/instance.method(args) and waits for the answer. */
static void call_wait(struct cl *x, const char *binding, const char *instance,
                      const char *method, size_t n, lmz_value *const *args,
                      struct rep *r) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, method, n, args);
  assert_non_null(chain);
  memset(r, 0, sizeof *r);
  assert_int_equal(lmzc_call(x->c, binding, instance, chain, on_reply, r), 0);
  lmz_arena_free(a);
  assert_true(run_until(&r->done, WAIT_MS));
}

static void rep_free(struct rep *r) {
  lmz_arena_free(r->a);
  r->a = NULL;
}

/* ---- tests: calls --------------------------------------------------------- */

static void test_connect_and_increment(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  assert_true(lmzc_subscription_required(x.c));
  lmz_arena *a = lmz_arena_new();
  char inst[32];
  snprintf(inst, sizeof inst, "inc-%d", ++S.seq);
  struct rep r;
  lmz_value *five = num(a, 5), *two = num(a, 2);
  call_wait(&x, "COUNTER_DO", inst, "increment", 1, &five, &r);
  assert_int_equal(r.status, 0);
  assert_true(r.ok);
  assert_int_equal(lmz_typeof(r.v), LMZ_T_NUMBER);
  assert_true(lmz_get_number(r.v) == 5.0);
  rep_free(&r);
  call_wait(&x, "COUNTER_DO", inst, "increment", 1, &two, &r);
  assert_true(r.ok && lmz_get_number(r.v) == 7.0);
  rep_free(&r);
  call_wait(&x, "COUNTER_DO", inst, "get", 0, NULL, &r);
  assert_true(r.ok && lmz_get_number(r.v) == 7.0);
  rep_free(&r);
  assert_int_equal(lmzc_pending(x.c), 0);
  assert_int_equal(lmzc_stats(x.c)->calls_sent, 3);
  assert_int_equal(lmzc_stats(x.c)->replies, 3);
  lmz_arena_free(a);
  cl_close(&x);
}

static void test_echo_rich_value(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  lmz_arena *a = lmz_arena_new();
  lmz_value *m = lmz_map(a), *d = lmz_date(a, 86400000.0), *o = lmz_object(a);
  assert_int_equal(lmz_map_set(m, lmz_cstring(a, "k"), d), 0);
  assert_int_equal(lmz_object_setc(o, "map", m), 0);
  assert_int_equal(lmz_object_setc(o, "same", d), 0); /* an alias */
  assert_int_equal(lmz_object_setc(o, "big", lmz_bigint(a, "123456789012345678901", 21)), 0);
  assert_int_equal(lmz_object_setc(o, "u", lmz_undefined()), 0);
  struct rep r;
  call_wait(&x, "COUNTER_DO", "echo", "echo", 1, &o, &r);
  assert_int_equal(r.status, 0);
  assert_true(r.ok);
  assert_true(lmz_value_equal(r.v, o));
  rep_free(&r);
  /* a worker (no instance) */
  lmz_value *s = lmz_cstring(a, "hi");
  call_wait(&x, "ECHO_WORKER", NULL, "echo", 1, &s, &r);
  assert_true(r.ok);
  assert_string_equal(lmz_get_str(r.v, NULL), "hi");
  rep_free(&r);
  lmz_arena_free(a);
  cl_close(&x);
}

static void test_thrown_error_and_unknown_binding(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  lmz_arena *a = lmz_arena_new();
  lmz_value *msg = lmz_cstring(a, "boom");
  struct rep r;
  call_wait(&x, "COUNTER_DO", "err", "fail", 1, &msg, &r);
  assert_int_equal(r.status, 0);
  assert_false(r.ok);
  assert_int_equal(lmz_typeof(r.v), LMZ_T_ERROR);
  assert_string_equal(lmz_error_name(r.v), "CounterError");
  assert_string_equal(lmz_error_message(r.v), "boom");
  lmz_value *code = lmz_error_prop(r.v, "code");
  assert_non_null(code);
  assert_string_equal(lmz_get_str(code, NULL), "E_COUNTER");
  rep_free(&r);
  call_wait(&x, "NO_SUCH_DO", "x", "echo", 0, NULL, &r);
  assert_int_equal(r.status, 0);
  assert_false(r.ok);
  assert_int_equal(lmz_typeof(r.v), LMZ_T_ERROR);
  rep_free(&r);
  /* not mesh-callable */
  call_wait(&x, "COUNTER_DO", "err", "secret", 0, NULL, &r);
  assert_false(r.ok);
  rep_free(&r);
  lmz_arena_free(a);
  cl_close(&x);
}

#define NPIPE 2000

struct pipe_state {
  int done, wrong;
};

static void on_pipe_reply(lmzc_t *c, void *data, int status, bool ok,
                          const lmz_value *v) {
  (void)c;
  struct pipe_state *ps = (struct pipe_state *)((uintptr_t *)data)[0];
  uintptr_t i = ((uintptr_t *)data)[1];
  ps->done++;
  if (status || !ok || lmz_typeof(v) != LMZ_T_NUMBER || lmz_get_number(v) != (double)i)
    ps->wrong++;
}

static void test_pipelined_calls(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  lmz_arena *a = lmz_arena_new();
  struct pipe_state ps = {0};
  static uintptr_t ctx[NPIPE][2];
  char inst[32];
  for (int i = 0; i < NPIPE; i++) {
    lmz_value *arg = num(a, i);
    lmz_value *chain = lmzc_method_chain(a, "echo", 1, &arg);
    ctx[i][0] = (uintptr_t)&ps;
    ctx[i][1] = (uintptr_t)i;
    snprintf(inst, sizeof inst, "pipe-%d", i % 8); /* 8 actors */
    assert_int_equal(lmzc_call(x.c, "COUNTER_DO", inst, chain, on_pipe_reply, ctx[i]), 0);
  }
  assert_int_equal(lmzc_pending(x.c), NPIPE);
  RUN_WHILE(ps.done < NPIPE, WAIT_MS);
  assert_int_equal(ps.done, NPIPE);
  assert_int_equal(ps.wrong, 0);
  assert_int_equal(lmzc_pending(x.c), 0);
  lmz_arena_free(a);
  cl_close(&x);
}

static void test_calls_queued_before_connect(void **state) {
  (void)state;
  struct cl x;
  cl_start(&x, S.token, S.sub, NULL);
  lmz_arena *a = lmz_arena_new();
  lmz_value *arg = lmz_cstring(a, "early");
  lmz_value *chain = lmzc_method_chain(a, "echo", 1, &arg);
  struct rep r = {0};
  assert_int_equal(lmzc_call(x.c, "COUNTER_DO", "q", chain, on_reply, &r), 0);
  assert_false(x.connected); /* never synchronous */
  assert_true(run_until(&r.done, WAIT_MS));
  assert_true(x.connected);
  assert_int_equal(x.status, 0);
  assert_true(r.ok);
  assert_string_equal(lmz_get_str(r.v, NULL), "early");
  rep_free(&r);
  lmz_arena_free(a);
  cl_close(&x);
}

static void on_pong(lmzc_t *c, void *data, int status) {
  (void)c;
  int *n = data;
  if (status == 0)
    (*n)++;
}

static void test_ping_pong(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  int pongs = 0;
  for (int i = 0; i < 10; i++)
    assert_int_equal(lmzc_ping(x.c, on_pong, &pongs), 0);
  RUN_WHILE(pongs < 10, WAIT_MS);
  assert_int_equal(pongs, 10);
  assert_int_equal(lmzc_stats(x.c)->pongs, 10);
  cl_close(&x);
}

static void test_close_with_calls_in_flight(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "get", 0, NULL);
  struct rep r1 = {0}, r2 = {0};
  assert_int_equal(lmzc_call(x.c, "COUNTER_DO", "c", chain, on_reply, &r1), 0);
  assert_int_equal(lmzc_call(x.c, "COUNTER_DO", "c", chain, on_reply, &r2), 0);
  lmzc_close(x.c, cl_on_close); /* before the loop wrote anything */
  assert_false(r1.done);
  assert_int_equal(lmzc_call(x.c, "COUNTER_DO", "c", chain, on_reply, &r1), LMZ_ECLOSED);
  assert_true(run_until(&x.closed, WAIT_MS));
  assert_true(r1.done && r2.done);
  assert_int_equal(r1.status, LMZ_ECANCELED);
  assert_int_equal(r2.status, LMZ_ECANCELED);
  assert_false(x.disconnected);
  rep_free(&r1);
  rep_free(&r2);
  lmz_arena_free(a);
}

/* ---- tests: incoming calls ------------------------------------------------ */

struct sub {
  struct cl cl;
  int updates;
  char doc[64], content[64];
  int bad; /* incoming calls that were not handleContentUpdate(doc, text) */
};

static void on_incoming(lmzc_t *c, lmzc_incoming_t *in, void *data) {
  struct sub *s = data;
  const char *method;
  const lmz_value *args;
  if (!lmzc_chain_method(in->chain, &method, &args) ||
      strcmp(method, "handleContentUpdate") || lmz_len(args) != 2) {
    s->bad++;
    lmzc_respond(in, false, lmz_error(in->arena, "Error", "unexpected"));
    return;
  }
  snprintf(s->doc, sizeof s->doc, "%s", lmz_get_str(lmz_array_get(args, 0), NULL));
  snprintf(s->content, sizeof s->content, "%s", lmz_get_str(lmz_array_get(args, 1), NULL));
  s->updates++;
  assert_int_equal(lmz_typeof(in->call_chain), LMZ_T_ARRAY);
  assert_true(lmz_len(in->call_chain) >= 1);
  (void)c;
  assert_int_equal(lmzc_respond(in, true, lmz_undefined()), 0);
}

static void test_incoming_calls_broadcast(void **state) {
  (void)state;
  struct sub s[3];
  char doc[32];
  snprintf(doc, sizeof doc, "doc-%d", ++S.seq);
  struct rep r;
  for (int i = 0; i < 3; i++) {
    memset(&s[i], 0, sizeof s[i]);
    cl_open(&s[i].cl, NULL);
    lmzc_on_incoming(s[i].cl.c, on_incoming, &s[i]);
    call_wait(&s[i].cl, "DOCUMENT_DO", doc, "subscribe", 0, NULL, &r);
    assert_true(r.ok);
    rep_free(&r);
  }
  lmz_arena *a = lmz_arena_new();
  lmz_value *text = lmz_cstring(a, "hello world");
  call_wait(&s[0].cl, "DOCUMENT_DO", doc, "update", 1, &text, &r);
  assert_int_equal(r.status, 0);
  assert_true(r.ok);
  rep_free(&r);
  RUN_WHILE((s[0].updates < 1 || s[1].updates < 1 || s[2].updates < 1), WAIT_MS);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(s[i].updates, 1);
    assert_int_equal(s[i].bad, 0);
    assert_string_equal(s[i].doc, doc);
    assert_string_equal(s[i].content, "hello world");
    assert_int_equal(lmzc_stats(s[i].cl.c)->incoming_answered, 1);
  }
  lmz_arena_free(a);
  for (int i = 0; i < 3; i++)
    cl_close(&s[i].cl);
}

/* No handler: the gateway gets an Error back; the document's update still
 * succeeds (it does not wait for its subscribers), and the client counts
 * the incoming call as answered. */
static void test_incoming_without_handler(void **state) {
  (void)state;
  struct cl x;
  cl_open(&x, NULL);
  char doc[32];
  snprintf(doc, sizeof doc, "doc-%d", ++S.seq);
  struct rep r;
  call_wait(&x, "DOCUMENT_DO", doc, "subscribe", 0, NULL, &r);
  rep_free(&r);
  lmz_arena *a = lmz_arena_new();
  lmz_value *text = lmz_cstring(a, "x");
  call_wait(&x, "DOCUMENT_DO", doc, "update", 1, &text, &r);
  assert_true(r.ok);
  rep_free(&r);
  RUN_WHILE(lmzc_stats(x.c)->incoming_answered < 1, WAIT_MS);
  assert_int_equal(lmzc_stats(x.c)->incoming, 1);
  assert_int_equal(lmzc_stats(x.c)->incoming_answered, 1);
  lmz_arena_free(a);
  cl_close(&x);
}

/* ---- tests: connection life ----------------------------------------------- */

static void test_superseded_4409(void **state) {
  (void)state;
  struct cl x, y;
  char tab[16];
  snprintf(tab, sizeof tab, "s%d", ++S.seq);
  cl_open(&x, tab);
  assert_true(lmzc_subscription_required(x.c));
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmzc_method_chain(a, "get", 0, NULL);
  cl_open(&y, tab);
  assert_false(lmzc_subscription_required(y.c)); /* socket existed */
  assert_true(run_until(&x.disconnected, WAIT_MS));
  assert_int_equal(x.disc_code, 4409);
  assert_string_equal(x.disc_reason, "Superseded by new connection");
  assert_false(lmzc_is_connected(x.c));
  struct rep r = {0};
  assert_int_equal(lmzc_call(x.c, "COUNTER_DO", "c", chain, on_reply, &r), LMZ_ECLOSED);
  call_wait(&y, "COUNTER_DO", "c", "get", 0, NULL, &r); /* y works */
  assert_true(r.ok);
  rep_free(&r);
  lmz_arena_free(a);
  cl_close(&x);
  cl_close(&y);
}

static void test_refused_token(void **state) {
  (void)state;
  struct cl x;
  cl_start(&x, "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", S.sub, NULL);
  assert_true(run_until(&x.connected, WAIT_MS));
  assert_int_equal(x.status, LMZ_EAUTH);
  assert_non_null(strstr(lmzc_errmsg(x.c), "HTTP 401"));
  assert_non_null(strstr(lmzc_errmsg(x.c), "invalid_token"));
  assert_false(lmzc_is_connected(x.c));
  cl_close(&x);
}

static void test_identity_mismatch(void **state) {
  (void)state;
  struct cl x;
  cl_start(&x, S.token, "someone-else", NULL);
  assert_true(run_until(&x.connected, WAIT_MS));
  assert_int_equal(x.status, LMZ_EAUTH);
  assert_non_null(strstr(lmzc_errmsg(x.c), "HTTP 403"));
  cl_close(&x);
}

static void test_second_token_other_sub(void **state) {
  (void)state;
  char *tok, *sub;
  fetch_token(&tok, &sub);
  assert_string_not_equal(sub, S.sub);
  struct cl x;
  cl_start(&x, tok, sub, NULL);
  assert_true(run_until(&x.connected, WAIT_MS));
  assert_int_equal(x.status, 0);
  cl_close(&x);
  free(tok);
  free(sub);
}

static void test_connection_refused(void **state) {
  (void)state;
  /* a port nobody listens on: bind one, close it, connect to it */
  uv_tcp_t t;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_init(&L, &t);
  assert_int_equal(uv_tcp_bind(&t, (struct sockaddr *)&sa, 0), 0);
  int len = sizeof sa;
  uv_tcp_getsockname(&t, (struct sockaddr *)&sa, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&L, UV_RUN_NOWAIT);
  char url[64];
  snprintf(url, sizeof url, "127.0.0.1:%d", ntohs(sa.sin_port));
  struct cl x = {0};
  struct lmzc_options o = {.url = url, .instance = "a.b", .token = "t", .data = &x};
  assert_int_equal(lmzc_connect(&L, &x.c, &o, cl_on_connect, NULL), 0);
  assert_true(run_until(&x.connected, WAIT_MS));
  assert_int_equal(x.status, UV_ECONNREFUSED);
  cl_close(&x);
}

static void test_bad_options(void **state) {
  (void)state;
  lmzc_t *c = NULL;
  char err[LMZ_ERRMSG_LEN];
  struct lmzc_options o = {.url = S.url, .instance = "a.b", .token = "t"};
  o.instance = "no-dot";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  o.instance = "a.b/../c";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  o.instance = "a.b";
  o.token = "bad token";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  o.token = "t";
  o.url = "wss://127.0.0.1:1";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  assert_non_null(strstr(err, "TLS"));
  o.url = "127.0.0.1:99999";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  o.url = "127.0.0.1:80/path";
  assert_int_equal(lmzc_connect(&L, &c, &o, cl_on_connect, err), LMZ_EINVAL);
  assert_null(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_connect_and_increment, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_echo_rich_value, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_thrown_error_and_unknown_binding, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_pipelined_calls, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_calls_queued_before_connect, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_ping_pong, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_close_with_calls_in_flight, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_incoming_calls_broadcast, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_incoming_without_handler, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_superseded_4409, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_refused_token, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_identity_mismatch, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_second_token_other_sub, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_connection_refused, loop_setup, loop_teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, loop_setup, loop_teardown),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
