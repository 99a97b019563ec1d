/* The gateway's plain HTTP side over real loopback sockets: routing to
 * on_request handlers (binding-name matching and the original's status
 * codes, lumenize-behaviour section 6), CORS, static files (traversal
 * rejected), the dev token (dev only), /_lmz/status and /metrics. */
#include "gwfix.h"

#include <sys/stat.h>

#include "examples/counter/counter.c"
#include "gateway/gw_int.h"
#include "lmz/http.h"

/* ---- a class with an HTTP handler ---------------------------------------- */

static int web_request(lmz_ctx *ctx, const struct lmz_request *req,
                       struct lmz_response *res) {
  if (strstr(req->path, "/throw"))
    return lmz_throwf(ctx, "Error", "handler blew up");
  if (strstr(req->path, "/badstatus")) {
    res->status = 42;
    return 0;
  }
  lmz_value *h = lmz_kv_get(ctx, "hits");
  double hits = (h ? lmz_get_number(h) : 0) + 1;
  int rv = lmz_kv_put(ctx, "hits", lmz_number(lmz_turn_arena(ctx), hits));
  const char *x = lmz_request_header(req, "x-test");
  char body[512];
  snprintf(body, sizeof body, "%s %s %s %s q=%s hits=%.0f body=%.*s x=%s chain=%zu",
           req->method, req->binding, req->instance, req->path, req->query, hits,
           (int)req->body_len, req->body ? (const char *)req->body : "",
           x ? x : "-", lmz_call_chain_len(ctx));
  if (!rv)
    rv = lmz_response_header(ctx, res, "X-Web", "yes");
  if (!rv)
    assert_int_equal(lmz_response_header(ctx, res, "Bad\r\nName", "v"), LMZ_EINVAL);
  return rv ? rv : lmz_response_text(ctx, res, 201, "text/plain", body);
}

static const lmz_method web_methods[] = {LMZ_END};
static const struct lmz_class_opts web_opts = {.on_request = web_request};

static int web_module_init(lmz_registry *r) {
  return lmz_register_do(r, "WebDO", web_methods, &web_opts);
}

static const char *const good_origins[] = {"https://good.example"};

static void write_file(const char *dir, const char *name, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static char web_dir[1024];

/* Static folder under its own temp dir; a secret next to it. */
static char *make_static(void) {
  char *root = tl_mkdtemp("lmz-gwweb");
  snprintf(web_dir, sizeof web_dir, "%s/web", root);
  assert_int_equal(mkdir(web_dir, 0700), 0);
  char sub[1100];
  snprintf(sub, sizeof sub, "%s/sub", web_dir);
  assert_int_equal(mkdir(sub, 0700), 0);
  write_file(root, "secret.txt", "top secret");
  write_file(web_dir, "index.html", "<h1>editor</h1>");
  write_file(web_dir, "app.js", "console.log(1)");
  write_file(web_dir, "style.css", "body{}");
  write_file(web_dir, ".env", "SECRET=1");
  write_file(sub, "index.html", "sub index");
  write_file(sub, "data.json", "{\"a\":1}");
  char link[1100], target[1100];
  snprintf(link, sizeof link, "%s/escape.txt", web_dir);
  snprintf(target, sizeof target, "%s/secret.txt", root);
  assert_int_equal(symlink(target, link), 0);
  return root;
}

static char *static_root;

static void start(const char *prefix, bool dev) {
  static_root = make_static();
  struct fx_opts o = {
      .modules = {lmz_module_init, web_module_init},
      .binds = {{"COUNTER_DO", "CounterDO", "do"},
                {"ECHO_WORKER", "EchoWorker", "worker"},
                {"WEB_DO", "WebDO", "do"},
                {"MULTI_DO", "WebDO", "do"},
                {"multi_do", "WebDO", "do"},
                {"MyDO", "WebDO", "do"},
                {"chatRoom", "WebDO", "do"}},
      .gw = {.route_prefix = prefix, .static_dir = web_dir, .dev = dev,
             .cors_origins = good_origins, .n_cors_origins = 1},
  };
  fx_start(&o);
}

static int setup(void **state) {
  (void)state;
  start(NULL, true);
  return 0;
}

static int setup_noprefix_nodev(void **state) {
  (void)state;
  start("/", false);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  tl_rmtree(static_root);
  free(static_root);
  return 0;
}

static void expect(const char *method, const char *target, const char *headers,
                   int status, const char *body) {
  struct wc_resp r = wc_http(method, target, headers);
  if (r.status != status || (body && strcmp(r.body, body)))
    fprintf(stderr, "%s %s -> %d %s\n", method, target, r.status, r.body);
  assert_int_equal(r.status, status);
  if (body)
    assert_string_equal(r.body, body);
  wc_resp_free(&r);
}

/* ---- routing ------------------------------------------------------------- */

static void test_route_to_on_request(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/api/web-do/a/more/path?x=1", "X-Test: hello\r\n");
  assert_int_equal(r.status, 201);
  assert_string_equal(r.body, "GET WEB_DO a /api/web-do/a/more/path q=x=1 hits=1 body= x=hello chain=0");
  assert_string_equal(wc_header(r.head, "X-Web"), "yes");
  assert_string_equal(wc_header(r.head, "Content-Type"), "text/plain");
  wc_resp_free(&r);
  /* storage persists across requests; exact binding names work too */
  r = wc_http_body("POST", "/api/WEB_DO/a", NULL, "abc");
  assert_non_null(strstr(r.body, "POST WEB_DO a /api/WEB_DO/a q= hits=2 body=abc"));
  wc_resp_free(&r);
  r = wc_http("GET", "/api/WEB_DO/a", NULL);
  assert_non_null(strstr(r.body, "hits=3"));
  wc_resp_free(&r);
  lmz_arena *a = lmz_arena_new();
  lmz_value *hits = NULL;
  assert_int_equal(lmz_node_kv_peek(F->node, "WEB_DO", "a", "hits", a, &hits), 0);
  assert_true(lmz_get_number(hits) == 3);
  lmz_arena_free(a);
  /* binding-name variants of the original's smart matching */
  r = wc_http("GET", "/api/my-do/z", NULL);
  assert_non_null(strstr(r.body, "GET MyDO z"));
  wc_resp_free(&r);
  r = wc_http("GET", "/api/chat-room/1", NULL);
  assert_non_null(strstr(r.body, "GET chatRoom 1"));
  wc_resp_free(&r);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.http_routed, 5);
}

/* Keep-alive: pipelined requests to actors and files are answered in
 * order on one connection. */
static void test_keepalive_pipelined(void **state) {
  (void)state;
  int fd = wc_connect();
  const char *reqs = "GET /api/web-do/k HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
                     "GET /api/web-do/k HTTP/1.1\r\nHost: x\r\n\r\n";
  wc_send(fd, reqs, strlen(reqs));
  lmz_buf in = LMZ_BUF_INIT;
  struct wc_resp r = wc_read_resp(fd, &in, false);
  assert_non_null(strstr(r.body, "hits=1"));
  wc_resp_free(&r);
  r = wc_read_resp(fd, &in, false);
  assert_string_equal(r.body, "console.log(1)");
  wc_resp_free(&r);
  r = wc_read_resp(fd, &in, false);
  assert_non_null(strstr(r.body, "hits=2"));
  wc_resp_free(&r);
  close(fd);
  lmz_buf_free(&in);
}

static void test_route_statuses(void **state) {
  (void)state;
  expect("GET", "/api/nope-do/a", NULL, 404, "Not Found");
  expect("GET", "/api/echo-worker/a", NULL, 404, NULL); /* workers: not routed */
  expect("GET", "/api/counter-do/a", NULL, 501,
         "Not Implemented: override onRequest() to handle HTTP requests");
  struct wc_resp r = wc_http("GET", "/api/web-do", NULL);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "\"name\":\"MissingInstanceNameError\""));
  assert_non_null(strstr(r.body, "\"code\":\"MISSING_INSTANCE_NAME\""));
  assert_string_equal(wc_header(r.head, "Content-Type"), "application/json");
  wc_resp_free(&r);
  r = wc_http("GET", "/api/multi-do/a", NULL);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "\"code\":\"MULTIPLE_BINDINGS_FOUND\""));
  assert_non_null(strstr(r.body, "\"matchedBindings\":[\"MULTI_DO\",\"multi_do\"]"));
  wc_resp_free(&r);
  expect("GET", "/api/web-do/a/throw", NULL, 500, "Internal Server Error");
  expect("GET", "/api/web-do/a/badstatus", NULL, 500, "Internal Server Error");
  /* the prefix matches whole segments; the gateway is not under it */
  expect("GET", "/apix/web-do/a", NULL, 404, NULL);
  expect("GET", "/api/lumenize-client-gateway/a.b", NULL, 404, NULL);
  expect("GET", "/gateway/web-do/a", NULL, 404, NULL);
}

static void test_no_prefix(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/web-do/a", NULL);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(r.body, "GET WEB_DO a /web-do/a"));
  wc_resp_free(&r);
  expect("GET", "/", NULL, 200, "<h1>editor</h1>"); /* static still served */
  expect("GET", "/_lmz/dev-token", NULL, 404, NULL); /* not dev */
}

/* ---- CORS ---------------------------------------------------------------- */

static void test_cors(void **state) {
  (void)state;
  struct wc_resp r = wc_http("OPTIONS", "/api/web-do/a", "Origin: https://good.example\r\n");
  assert_int_equal(r.status, 204);
  assert_string_equal(wc_header(r.head, "Access-Control-Allow-Origin"), "https://good.example");
  assert_null(wc_header(r.head, "Access-Control-Allow-Credentials"));
  wc_resp_free(&r);
  r = wc_http("OPTIONS", "/api/web-do/a", "Origin: https://evil.example\r\n");
  assert_int_equal(r.status, 204);
  assert_null(wc_header(r.head, "Access-Control-Allow-Origin"));
  wc_resp_free(&r);
  expect("GET", "/api/web-do/a", "Origin: https://evil.example\r\n", 403,
         "Forbidden: Origin not allowed");
  r = wc_http("GET", "/api/web-do/a", "Origin: https://good.example\r\n");
  assert_int_equal(r.status, 201);
  assert_string_equal(wc_header(r.head, "Access-Control-Allow-Origin"), "https://good.example");
  assert_string_equal(wc_header(r.head, "Vary"), "Origin");
  wc_resp_free(&r);
  r = wc_http("GET", "/api/web-do/a", NULL); /* no Origin: no CORS at all */
  assert_int_equal(r.status, 201);
  assert_null(wc_header(r.head, "Access-Control-Allow-Origin"));
  wc_resp_free(&r);
  /* WebSocket upgrades too */
  char *tok = fx_token("alice");
  char proto[2048];
  snprintf(proto, sizeof proto, "lmz, lmz.access-token.%s", tok);
  free(tok);
  struct wc_ws *w = wc_ws_open("/gateway/LUMENIZE_CLIENT_GATEWAY/alice.t", proto,
                               "Origin: https://evil.example\r\n");
  assert_int_equal(w->resp.status, 403);
  assert_string_equal(w->resp.body, "Forbidden: Origin not allowed");
  wc_ws_free(w);
  w = wc_ws_open("/gateway/LUMENIZE_CLIENT_GATEWAY/alice.t", proto,
                 "Origin: https://good.example\r\n");
  assert_int_equal(w->resp.status, 101);
  wc_ws_free(w);
  /* a refused token from an allowed origin keeps the CORS headers */
  w = wc_ws_open("/gateway/LUMENIZE_CLIENT_GATEWAY/alice.t", "lmz",
                 "Origin: https://good.example\r\n");
  assert_int_equal(w->resp.status, 401);
  assert_string_equal(wc_header(w->resp.head, "Access-Control-Allow-Origin"),
                      "https://good.example");
  wc_ws_free(w);
}

/* ---- static files -------------------------------------------------------- */

static void test_static_files(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/", NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "<h1>editor</h1>");
  assert_string_equal(wc_header(r.head, "Content-Type"), "text/html; charset=utf-8");
  wc_resp_free(&r);
  r = wc_http("GET", "/app.js?v=2", NULL);
  assert_string_equal(wc_header(r.head, "Content-Type"), "text/javascript; charset=utf-8");
  assert_string_equal(r.body, "console.log(1)");
  wc_resp_free(&r);
  r = wc_http("GET", "/style.css", NULL);
  assert_string_equal(wc_header(r.head, "Content-Type"), "text/css; charset=utf-8");
  wc_resp_free(&r);
  r = wc_http("GET", "/sub/data.json", NULL);
  assert_string_equal(wc_header(r.head, "Content-Type"), "application/json");
  wc_resp_free(&r);
  expect("GET", "/sub/", NULL, 200, "sub index");
  expect("GET", "/sub", NULL, 200, "sub index");
  expect("GET", "/s%75b/data.json", NULL, 200, "{\"a\":1}");
  r = wc_http("HEAD", "/app.js", NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(wc_header(r.head, "Content-Length"), "14");
  wc_resp_free(&r);
  expect("GET", "/missing.txt", NULL, 404, "Not Found");
  expect("POST", "/app.js", NULL, 404, NULL);
}

static void test_static_traversal(void **state) {
  (void)state;
  const char *bad[] = {"/../secret.txt",    "/sub/../../secret.txt",
                       "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
                       "/sub/%2e%2e%2f%2e%2e%2fsecret.txt",
                       "/.env",             "/sub/./data.json",
                       "/a%00b",            "/..%5csecret.txt",
                       "/%zz",              "/%2"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(bad); i++)
    expect("GET", bad[i], NULL, 400, "Bad Request");
  expect("GET", "/escape.txt", NULL, 404, "Not Found"); /* symlink outside */
  expect("GET", "/%252e%252e/secret.txt", NULL, 404, NULL); /* decoded once */
  /* the pure check */
  char out[64];
  assert_int_equal(lmz__gw_safe_path("//a//b.js", 9, out, sizeof out), 0);
  assert_string_equal(out, "a/b.js");
  assert_int_equal(lmz__gw_safe_path("/a%2fb", 6, out, sizeof out), 0);
  assert_string_equal(out, "a/b");
  assert_int_equal(lmz__gw_safe_path("/a/..", 5, out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz__gw_safe_path("/abcdefghij", 11, out, 8), LMZ_EINVAL);
}

/* ---- built-in endpoints -------------------------------------------------- */

static void test_dev_token(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/_lmz/dev-token", NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(wc_header(r.head, "Cache-Control"), "no-store");
  lmz_arena *a = lmz_arena_new();
  lmz_json *j = NULL;
  assert_int_equal(lmz_json_parse(a, r.body, r.body_len, NULL, &j, NULL), 0);
  const char *tok = jstr(j, "access_token"), *sub = jstr(j, "sub");
  assert_non_null(tok);
  assert_int_equal(strncmp(sub, "dev-", 4), 0);
  assert_true(jget(j, "expires_in")->u.num == 3600);
  /* the token verifies with the gateway's keys, approved, 1 h */
  struct lmz_jwt_expect ex = {LMZ_JWT_DEFAULT_ISS, LMZ_JWT_DEFAULT_AUD,
                              (int64_t)(F->now_ms / 1000), 0};
  struct lmz_jwt_claims cl;
  assert_int_equal(lmz_jwt_verify(tok, strlen(tok), &F->ks, &ex, a, &cl, NULL), 0);
  assert_int_equal(lmz_jwt_gate(&cl), 0);
  assert_true(cl.exp - cl.iat == 3600);
  /* and connects a client as <sub>.<tab> */
  char inst[64];
  snprintf(inst, sizeof inst, "%s.tab1", sub);
  struct wc_ws *w = wc_client(inst, tok);
  assert_int_equal(w->resp.status, 101);
  wc_ws_free(w);
  /* two tokens, two subs */
  struct wc_resp r2 = wc_http("GET", "/_lmz/dev-token", NULL);
  assert_null(strstr(r2.body, sub));
  wc_resp_free(&r2);
  lmz_arena_free(a);
  wc_resp_free(&r);
}

static void test_status_and_metrics(void **state) {
  (void)state;
  expect("GET", "/api/web-do/s", NULL, 201, NULL);
  struct wc_resp r = wc_http("GET", "/_lmz/status", NULL);
  assert_int_equal(r.status, 200);
  lmz_arena *a = lmz_arena_new();
  lmz_json *j = NULL;
  assert_int_equal(lmz_json_parse(a, r.body, r.body_len, NULL, &j, NULL), 0);
  assert_string_equal(jstr(j, "node"), "test-node");
  assert_true(jget(j, "actors.active")->u.num >= 1);
  assert_true(jget(j, "http.routed")->u.num == 1);
  assert_string_equal(jstr(j, "gateway.binding"), "LUMENIZE_CLIENT_GATEWAY");
  wc_resp_free(&r);
  r = wc_http("GET", "/metrics", NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "# TYPE lmz_turns_total counter\n"));
  assert_non_null(strstr(r.body, "lmz_gateway_sockets_open{node=\"test-node\"} 0\n"));
  assert_non_null(strstr(r.body, "lmz_http_requests_total{node=\"test-node\"} "));
  wc_resp_free(&r);
  lmz_arena_free(a);
  expect("GET", "/nothing/here", NULL, 404, "Not Found");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_route_to_on_request, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_pipelined, setup, teardown),
      cmocka_unit_test_setup_teardown(test_route_statuses, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_prefix, setup_noprefix_nodev, teardown),
      cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_static_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_static_traversal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dev_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_and_metrics, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
