/* lmz_fetch (issue 13 item 2): outbound HTTP from actors, against an
 * in-process fake HTTP server on the node's own loop (tests/lib/fakehttp.h,
 * 127.0.0.1 port 0).
 *
 *  - a worker answers a call with a fetch (deferred reply);
 *  - a durable object gets the response as a handler continuation in a
 *    later turn, and keeps serving other calls while the remote is slow;
 *  - limits: timeout, too large, redirect limit, a host not allowed (at
 *    once, and when the list is empty: fetch is off by default);
 *  - a turn that throws sends nothing;
 *  - node shutdown with a fetch in flight: the handler runs with
 *    FetchError ECANCELED, the node closes, the loop closes empty;
 *  - the request carries the calling turn's trace (W3C traceparent). */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actor/node.h"
#include "core/err.h"
#include "core/trace.h"
#include "lib/fakehttp.h"
#include "lib/tl_loop.h"
#include "lmz/lmz.h"

static struct {
  int replies, handled;
  bool reply_ok;
  char reply_body[128], reply_code[32];
  double reply_status;
  char h_body[128], h_code[32];
  double h_status;
  int h_turns_before; /* pings served before the handler ran */
  int pings;
  char base[64];
} G;

/* ---- the fake service ------------------------------------------------------ */

static void handler(void *ud, const struct fakehttp_req *q, struct fakehttp_reply *r) {
  (void)ud;
  static char loc[64];
  if (strcmp(q->path, "/hello") == 0) {
    r->body = "hello";
  } else if (strcmp(q->path, "/trace") == 0) { /* the traceparents it got */
    static char tp[512];
    fakehttp_header(q, "traceparent", tp, sizeof tp);
    r->body = tp;
  } else if (strcmp(q->path, "/slow") == 0) {
    r->body = "slow";
    r->delay_ms = 300;
  } else if (strcmp(q->path, "/hang") == 0) {
    r->hang = true;
  } else if (strcmp(q->path, "/big") == 0) {
    r->filler_len = 100000;
    r->no_length = true;
  } else if (strncmp(q->path, "/loop/", 6) == 0) {
    r->status = 302;
    snprintf(loc, sizeof loc, "Location: /loop/%d\r\n", atoi(q->path + 6) + 1);
    r->headers = loc;
  } else {
    r->status = 404;
  }
}

/* ---- the application ------------------------------------------------------- */

static bool G_body_binary;
static const char *G_call_trace; /* the trace id calls carry in (NULL: none) */

static void record(const lmz_value *v, double *status, char *body, char *code) {
  if (lmz_typeof(v) == LMZ_T_ERROR) {
    const lmz_value *c = lmz_error_prop(v, "code");
    snprintf(code, 32, "%s", c ? lmz_get_str(c, NULL) : "?");
    return;
  }
  const lmz_value *s = lmz_object_getc(v, "status"), *b = lmz_object_getc(v, "body");
  *status = s ? lmz_get_number(s) : -1;
  G_body_binary = b && lmz_typeof(b) == LMZ_T_ARRAYBUFFER;
  snprintf(body, 128, "%s", b && lmz_typeof(b) == LMZ_T_STRING ? lmz_get_str(b, NULL) : "?");
}

static int w_get(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  struct lmz_fetch_req q = {.url = n ? lmz_get_str(a[0], NULL) : NULL};
  return lmz_fetch(ctx, &q, NULL); /* the call is answered by the fetch */
}

/* getBin(url): the body as an ArrayBuffer; answers with its byteLength */
static int w_get_bin(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  struct lmz_fetch_req q = {.url = n ? lmz_get_str(a[0], NULL) : NULL, .binary = true};
  return lmz_fetch(ctx, &q, NULL);
}

static int d_get(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  struct lmz_fetch_req q = {.url = n ? lmz_get_str(a[0], NULL) : NULL};
  lmz_ctn *h = lmz_ctn_call(lmz_ctn_new(ctx), "onResponse", 1, lmz_ctn_result(ctx));
  int rv = lmz_fetch(ctx, &q, h);
  if (rv)
    return rv;
  /* a write in the same turn: the request leaves after it is durable */
  rv = lmz_kv_put(ctx, "asked", lmz_cstring(lmz_turn_arena(ctx), q.url));
  *r = lmz_cstring(lmz_turn_arena(ctx), "queued");
  return rv;
}

/* many(url, n): n fetches in one turn */
static int d_many(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  struct lmz_fetch_req q = {.url = n ? lmz_get_str(a[0], NULL) : NULL};
  int count = n > 1 ? (int)lmz_get_number(a[1]) : 0;
  for (int i = 0; i < count; i++) {
    lmz_ctn *h = lmz_ctn_call(lmz_ctn_new(ctx), "onResponse", 1, lmz_ctn_result(ctx));
    int rv = lmz_fetch(ctx, &q, h);
    if (rv)
      return rv;
  }
  return 0;
}

static int d_get_throw(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  int rv = d_get(ctx, a, n, r);
  return rv ? rv : lmz_throwf(ctx, "Error", "changed my mind");
}

static int d_on_response(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  G.handled++;
  G.h_turns_before = G.pings;
  if (n == 1)
    record(a[0], &G.h_status, G.h_body, G.h_code);
  return lmz_kv_put(ctx, "answered", lmz_bool(true));
}

static int d_ping(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  G.pings++;
  *r = lmz_cstring(lmz_turn_arena(ctx), "pong");
  return 0;
}

static const lmz_method worker_methods[] = {
    LMZ_MESH("get", w_get, NULL), LMZ_MESH("getBin", w_get_bin, NULL), LMZ_END};
static const lmz_method do_methods[] = {
    LMZ_MESH("get", d_get, NULL), LMZ_MESH("getThrow", d_get_throw, NULL),
    LMZ_MESH("ping", d_ping, NULL), LMZ_MESH("many", d_many, NULL),
    LMZ_MESH("getDeferred", w_get, NULL), /* a durable object may defer too */
    LMZ_LOCAL("onResponse", d_on_response), LMZ_END};

static int app_init(lmz_registry *r) {
  int rv = lmz_register_worker(r, "FetchWorker", worker_methods, NULL);
  return rv ? rv : lmz_register_do(r, "FetchDO", do_methods, NULL);
}

/* ---- the node -------------------------------------------------------------- */

struct env {
  uv_loop_t loop;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  fakehttp *srv;
  char *dir;
};

static const char *const local[] = {"127.0.0.1"};

static void env_open(struct env *e, size_t n_allow, uint32_t timeout_ms) {
  memset(&G, 0, sizeof G);
  e->dir = tl_mkdtemp("lmz-fetch");
  assert_non_null(e->dir);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  int port;
  assert_int_equal(fakehttp_start(&e->loop, handler, NULL, &e->srv, &port), 0);
  snprintf(G.base, sizeof G.base, "http://127.0.0.1:%d", port);
  char err[LMZ_ERRMSG_LEN];
  struct lmz_node_opts o = {
      .node_id = "fetch", .data_dir = e->dir,
      .fetch = {.allow = local, .n_allow = n_allow, .timeout_ms = timeout_ms,
                .max_response_bytes = 65536, .max_redirects = 3, .max_inflight = 3}};
  assert_int_equal(lmz_node_init(e->node = &e->node_mem, &e->loop, &o, err), 0);
  assert_int_equal(lmz_node_register_module(e->node, "fetch", app_init, err), 0);
  assert_int_equal(lmz_node_bind(e->node, "W", "FetchWorker", LMZ_NODE_WORKER, err), 0);
  assert_int_equal(lmz_node_bind(e->node, "D", "FetchDO", LMZ_NODE_DO, err), 0);
  assert_int_equal(lmz_node_start(e->node), 0);
}

static void closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void env_close(struct env *e) {
  bool done = false;
  lmz_node_close(e->node, closed, &done);
  tl_run_until_true(&e->loop, &done);
  lmz_node_release(e->node);
  fakehttp_close(e->srv);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&e->loop), 0); /* nothing left on the loop */
  tl_rmtree(e->dir);
  free(e->dir);
}

static void on_reply(void *arg, int status, bool ok, const lmz_value *v) {
  (void)arg;
  G.replies++;
  G.reply_ok = status == 0 && ok;
  record(v, &G.reply_status, G.reply_body, G.reply_code);
}

static void call_n(struct env *e, const char *binding, const char *instance,
                   const char *method, const char *path, int count);

static void call(struct env *e, const char *binding, const char *instance,
                 const char *method, const char *path) {
  call_n(e, binding, instance, method, path, -1);
}

static void call_n(struct env *e, const char *binding, const char *instance,
                   const char *method, const char *path, int count) {
  lmz_arena *a = lmz_node_arena_get(e->node);
  assert_non_null(a);
  char url[256];
  snprintf(url, sizeof url, "%s%s", path[0] == '/' ? G.base : "", path);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 1);
  assert_int_equal(lmz_array_push(args, lmz_cstring(a, url)), 0);
  if (count >= 0)
    assert_int_equal(lmz_array_push(args, lmz_number(a, count)), 0);
  assert_int_equal(lmz_object_setc(get, "type", lmz_cstring(a, "get")), 0);
  assert_int_equal(lmz_object_setc(get, "key", lmz_cstring(a, method)), 0);
  assert_int_equal(lmz_object_setc(ap, "type", lmz_cstring(a, "apply")), 0);
  assert_int_equal(lmz_object_setc(ap, "args", args), 0);
  assert_int_equal(lmz_array_push(chain, get), 0);
  assert_int_equal(lmz_array_push(chain, ap), 0);
  struct lmz_node_call c = {.binding = binding, .instance = instance,
                            .chain = chain, .arena = a, .trace_id = G_call_trace};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(e->node, &c, on_reply, NULL, err), 0);
}

/* ---- tests ----------------------------------------------------------------- */

static void worker_answers_with_fetch(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  call(&e, "W", NULL, "get", "/hello");
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_true(G.reply_ok);
  assert_true(G.reply_status == 200);
  assert_string_equal(G.reply_body, "hello");
  call(&e, "W", NULL, "get", "/nothing");
  tl_run_until_count(&e.loop, &G.replies, 2);
  assert_true(G.reply_ok); /* an HTTP error status is still a response */
  assert_true(G.reply_status == 404);
  call(&e, "W", NULL, "getBin", "/hello");
  tl_run_until_count(&e.loop, &G.replies, 3);
  assert_true(G.reply_ok);
  assert_true(G_body_binary);
  call(&e, "D", "z", "getDeferred", "/hello");
  tl_run_until_count(&e.loop, &G.replies, 4);
  assert_true(G.reply_ok);
  assert_false(G_body_binary);
  assert_string_equal(G.reply_body, "hello");
  env_close(&e);
}

/* The request carries the calling turn's trace as a W3C traceparent
 * (00-<trace>-<parent>-01): a worker's deferred fetch and a durable
 * object's fetch with a handler; a call that starts its own trace sends
 * that one (never nothing). */
static void fetch_carries_traceparent(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  static const char tid[] = "0af7651916cd43dd8448eb211c80319c";
  G_call_trace = tid;
  call(&e, "W", NULL, "get", "/trace");
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_true(G.reply_ok);
  char want[8 + sizeof tid];
  snprintf(want, sizeof want, "00-%s-", tid);
  assert_int_equal(strlen(G.reply_body), 55);
  assert_memory_equal(G.reply_body, want, strlen(want));
  assert_string_equal(G.reply_body + 52, "-01");
  call(&e, "D", "t", "get", "/trace");
  tl_run_until_count(&e.loop, &G.handled, 1);
  assert_int_equal(strlen(G.h_body), 55);
  assert_memory_equal(G.h_body, want, strlen(want));
  G_call_trace = NULL; /* the call mints a trace: the request carries it */
  call(&e, "W", NULL, "get", "/trace");
  tl_run_until_count(&e.loop, &G.replies, 3);
  char got[LMZ_TRACE_ID_LEN + 1];
  assert_int_equal(lmz_traceparent_parse(G.reply_body, strlen(G.reply_body), got), 0);
  assert_string_not_equal(got, tid);
  env_close(&e);
}

static void do_gets_handler_in_later_turn_and_keeps_serving(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  call(&e, "D", "a", "get", "/slow"); /* the server answers after 300 ms */
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_true(G.reply_ok);
  assert_string_equal(G.reply_body, "?"); /* "queued" is a string, not a response */
  assert_int_equal(G.handled, 0);
  /* the actor serves other calls while its fetch waits */
  for (int i = 0; i < 5; i++)
    call(&e, "D", "a", "ping", "");
  tl_run_until_count(&e.loop, &G.replies, 6);
  assert_int_equal(G.pings, 5);
  assert_int_equal(G.handled, 0);
  tl_run_until_count(&e.loop, &G.handled, 1);
  assert_int_equal(G.h_turns_before, 5);
  assert_true(G.h_status == 200);
  assert_string_equal(G.h_body, "slow");
  env_close(&e);
}

static void limits(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 300);
  call(&e, "W", NULL, "get", "/hang");
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "ETIMEOUT");
  call(&e, "W", NULL, "get", "/big");
  tl_run_until_count(&e.loop, &G.replies, 2);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "ETOOBIG");
  call(&e, "D", "b", "get", "/loop/0");
  tl_run_until_count(&e.loop, &G.handled, 1);
  assert_string_equal(G.h_code, "ELOOP");
  env_close(&e);
}

static void host_not_allowed(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  call(&e, "W", NULL, "get", "http://localhost:1/x"); /* not on the list */
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "EACCESS");
  call(&e, "D", "c", "get", "file:///etc/passwd");
  tl_run_until_count(&e.loop, &G.replies, 2);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "EINVAL");
  assert_int_equal(fakehttp_count(e.srv), 0);
  env_close(&e);
  /* no allow-list: fetch is off */
  env_open(&e, 0, 5000);
  call(&e, "W", NULL, "get", "/hello");
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "EACCESS");
  assert_int_equal(fakehttp_count(e.srv), 0);
  env_close(&e);
}

/* fetch.max_inflight (3 here) bounds what one node queues: a turn asking
 * for a 4th throws EOVERLOAD (and, having thrown, queues none); the count
 * comes back as fetches complete. */
static void inflight_bound(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  call_n(&e, "D", "f", "many", "/hello", 4);
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_false(G.reply_ok);
  assert_string_equal(G.reply_code, "EOVERLOAD");
  call_n(&e, "D", "f", "many", "/hello", 3);
  tl_run_until_count(&e.loop, &G.replies, 2);
  assert_true(G.reply_ok);
  tl_run_until_count(&e.loop, &G.handled, 3);
  call_n(&e, "D", "f", "many", "/hello", 3); /* the bound is free again */
  tl_run_until_count(&e.loop, &G.replies, 3);
  assert_true(G.reply_ok);
  tl_run_until_count(&e.loop, &G.handled, 6);
  assert_int_equal(fakehttp_count(e.srv), 6);
  env_close(&e);
}

static void throwing_turn_sends_nothing(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 5000);
  call(&e, "D", "d", "getThrow", "/hello");
  tl_run_until_count(&e.loop, &G.replies, 1);
  assert_false(G.reply_ok);
  call(&e, "D", "d", "ping", ""); /* a later turn: the loop has run */
  tl_run_until_count(&e.loop, &G.replies, 2);
  assert_int_equal(fakehttp_count(e.srv), 0);
  assert_int_equal(G.handled, 0);
  env_close(&e);
}

static void shutdown_with_fetch_in_flight(void **state) {
  (void)state;
  struct env e;
  env_open(&e, 1, 60000);
  call(&e, "D", "e", "get", "/hang");
  call(&e, "W", NULL, "get", "/hang");
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (fakehttp_count(e.srv) < 2 && tl_now_ms() < end)
    uv_run(&e.loop, UV_RUN_ONCE);
  assert_int_equal(fakehttp_count(e.srv), 2); /* both requests are out */
  assert_int_equal(G.replies, 1);             /* the DO's "queued" */
  env_close(&e); /* closes the node: both requests canceled */
  assert_int_equal(G.handled, 1);
  assert_string_equal(G.h_code, "ECANCELED");
  assert_int_equal(G.replies, 2); /* the worker's call was rejected */
  assert_string_equal(G.reply_code, "ECANCELED");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(worker_answers_with_fetch),
      cmocka_unit_test(fetch_carries_traceparent),
      cmocka_unit_test(do_gets_handler_in_later_turn_and_keeps_serving),
      cmocka_unit_test(limits),
      cmocka_unit_test(host_not_allowed),
      cmocka_unit_test(throwing_turn_sends_nothing),
      cmocka_unit_test(inflight_bound),
      cmocka_unit_test(shutdown_with_fetch_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
