/* The gateway's plain HTTP side over real loopback sockets: routing to
 * on_request handlers (binding-name matching and the original's status
 * codes, lumenize-behaviour section 6), bearer tokens on the actor routes
 * (401 / 403 before anything runs, origin auth in the turn), public
 * bindings, per-subject rate limits on fake time (429 + Retry-After), CORS,
 * static files (traversal rejected), the dev token (dev only),
 * /_lmz/status and /metrics, tracing (W3C traceparent in and out, trace=
 * in the log lines). */
#include "gwfix.h"

#include <sys/stat.h>

#include "examples/counter/counter.c"
#include "core/log.h"
#include "core/trace.h"
#include "gateway/gw_int.h"
#include "lmz/http.h"

/* ---- a class with an HTTP handler ---------------------------------------- */

/* WEB_DO.record(): stores the caller's origin-auth sub and chain length. */
static int web_record(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                      lmz_value **result) {
  (void)args, (void)nargs;
  lmz_arena *a = lmz_turn_arena(ctx);
  lmz_value *oa = lmz_origin_auth(ctx);
  lmz_value *sub = oa ? lmz_object_getc(oa, "sub") : NULL;
  int rv = lmz_kv_put(ctx, "seen", sub ? sub : lmz_cstring(a, "-"));
  if (!rv)
    rv = lmz_kv_put(ctx, "chain", lmz_number(a, (double)lmz_call_chain_len(ctx)));
  *result = lmz_undefined();
  return rv;
}

static int web_request(lmz_ctx *ctx, const struct lmz_request *req,
                       struct lmz_response *res) {
  if (strstr(req->path, "/relay")) /* a call from the handler: WEB_DO/rec */
    return lmz_call(ctx, "WEB_DO", "rec", lmz_ctn_call(lmz_ctn_new(ctx), "record", 0),
                    NULL, NULL);
  if (strstr(req->path, "/trace")) { /* the ids the turn runs under */
    char ids[64];
    snprintf(ids, sizeof ids, "%s %s", lmz_trace_id(ctx), lmz_call_id(ctx));
    return lmz_response_text(ctx, res, 200, "text/plain", ids);
  }
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
  lmz_value *oa = lmz_origin_auth(ctx);
  lmz_value *sub = oa ? lmz_object_getc(oa, "sub") : NULL;
  lmz_value *claims = oa ? lmz_object_getc(oa, "claims") : NULL;
  lmz_value *csub = claims ? lmz_object_getc(claims, "sub") : NULL;
  char body[512];
  snprintf(body, sizeof body, "%s %s %s %s q=%s hits=%.0f body=%.*s x=%s chain=%zu "
           "sub=%s claims.sub=%s",
           req->method, req->binding, req->instance, req->path, req->query, hits,
           (int)req->body_len, req->body ? (const char *)req->body : "",
           x ? x : "-", lmz_call_chain_len(ctx), sub ? lmz_get_str(sub, NULL) : "-",
           csub ? lmz_get_str(csub, NULL) : "-");
  if (!rv)
    rv = lmz_response_header(ctx, res, "X-Web", "yes");
  if (!rv)
    assert_int_equal(lmz_response_header(ctx, res, "Bad\r\nName", "v"), LMZ_EINVAL);
  return rv ? rv : lmz_response_text(ctx, res, 201, "text/plain", body);
}

static const lmz_method web_methods[] = {LMZ_MESH("record", web_record, NULL),
                                         LMZ_END};
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
/* "Authorization: Bearer <alice's token>\r\n", set by start() */
static char AUTH[4096];

/* AUTH followed by more header lines (one static buffer: use at once). */
static const char *auth_and(const char *more) {
  static char h[8192];
  snprintf(h, sizeof h, "%s%s", AUTH, more);
  return h;
}

static const char *const public_list[] = {"PUBLIC_DO"};

static void start_ex(const char *prefix, bool dev,
                     const struct lmz_gateway_opts *more) {
  static_root = make_static();
  struct fx_opts o = {
      .modules = {lmz_module_init, web_module_init},
      .binds = {{"COUNTER_DO", "CounterDO", "do"},
                {"ECHO_WORKER", "EchoWorker", "worker"},
                {"WEB_DO", "WebDO", "do"},
                {"MULTI_DO", "WebDO", "do"},
                {"multi_do", "WebDO", "do"},
                {"MyDO", "WebDO", "do"},
                {"chatRoom", "WebDO", "do"},
                {"PUBLIC_DO", "WebDO", "do"}},
      .gw = {.route_prefix = prefix, .static_dir = web_dir, .dev = dev,
             .cors_origins = good_origins, .n_cors_origins = 1},
  };
  if (more) {
    o.gw.public_bindings = more->public_bindings;
    o.gw.n_public_bindings = more->n_public_bindings;
    o.gw.http_rate = more->http_rate;
    o.gw.ws_rate = more->ws_rate;
  }
  fx_start(&o);
  char *tok = fx_token("alice");
  snprintf(AUTH, sizeof AUTH, "Authorization: Bearer %s\r\n", tok);
  free(tok);
}

static void start(const char *prefix, bool dev) { start_ex(prefix, dev, NULL); }

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

static int setup_public(void **state) {
  (void)state;
  struct lmz_gateway_opts more = {.public_bindings = public_list,
                                  .n_public_bindings = 1};
  start_ex(NULL, true, &more);
  return 0;
}

/* HTTP: 2 at once, then 1 a second; connections: 1 at once, 1 a second. */
static int setup_limits(void **state) {
  (void)state;
  struct lmz_gateway_opts more = {.http_rate = {.per_minute = 60, .burst = 2},
                                  .ws_rate = {.per_minute = 60, .burst = 1}};
  start_ex(NULL, true, &more);
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
  struct wc_resp r = wc_http("GET", "/api/web-do/a/more/path?x=1", auth_and("X-Test: hello\r\n"));
  assert_int_equal(r.status, 201);
  assert_string_equal(r.body, "GET WEB_DO a /api/web-do/a/more/path q=x=1 hits=1 body= "
                              "x=hello chain=0 sub=alice claims.sub=alice");
  assert_string_equal(wc_header(r.head, "X-Web"), "yes");
  assert_string_equal(wc_header(r.head, "Content-Type"), "text/plain");
  wc_resp_free(&r);
  /* storage persists across requests; exact binding names work too */
  r = wc_http_body("POST", "/api/WEB_DO/a", AUTH, "abc");
  assert_non_null(strstr(r.body, "POST WEB_DO a /api/WEB_DO/a q= hits=2 body=abc"));
  wc_resp_free(&r);
  r = wc_http("GET", "/api/WEB_DO/a", AUTH);
  assert_non_null(strstr(r.body, "hits=3"));
  wc_resp_free(&r);
  lmz_arena *a = lmz_arena_new();
  lmz_value *hits = NULL;
  assert_int_equal(lmz_node_kv_peek(F->node, "WEB_DO", "a", "hits", a, &hits), 0);
  assert_true(lmz_get_number(hits) == 3);
  lmz_arena_free(a);
  /* binding-name variants of the original's smart matching */
  r = wc_http("GET", "/api/my-do/z", AUTH);
  assert_non_null(strstr(r.body, "GET MyDO z"));
  wc_resp_free(&r);
  r = wc_http("GET", "/api/chat-room/1", AUTH);
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
  lmz_buf reqs = LMZ_BUF_INIT;
  lmz_buf_printf(&reqs, "GET /api/web-do/k HTTP/1.1\r\nHost: x\r\n%s\r\n"
                        "GET /app.js HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /api/web-do/k HTTP/1.1\r\nHost: x\r\n%s\r\n",
                 AUTH, AUTH);
  wc_send(fd, reqs.data, reqs.len);
  lmz_buf_free(&reqs);
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
  expect("GET", "/api/counter-do/a", AUTH, 501,
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
  expect("GET", "/api/web-do/a/throw", AUTH, 500, "Internal Server Error");
  expect("GET", "/api/web-do/a/badstatus", AUTH, 500, "Internal Server Error");
  /* the prefix matches whole segments; the gateway is not under it */
  expect("GET", "/apix/web-do/a", NULL, 404, NULL);
  expect("GET", "/api/lumenize-client-gateway/a.b", NULL, 404, NULL);
  expect("GET", "/gateway/web-do/a", NULL, 404, NULL);
}

/* ---- tracing ------------------------------------------------------------- */

/* GET /api/web-do/t/trace with extra headers: the turn's "trace call"
 * (body) and the response's traceparent, which must name that turn. */
static void traced(const char *headers, char trace[33], char call[17]) {
  struct wc_resp r = wc_http("GET", "/api/web-do/t/trace", auth_and(headers));
  assert_int_equal(r.status, 200);
  assert_int_equal(strlen(r.body), 32 + 1 + 16);
  assert_int_equal(sscanf(r.body, "%32s %16s", trace, call), 2);
  const char *tp = wc_header(r.head, "traceparent");
  assert_non_null(tp);
  char want[64];
  snprintf(want, sizeof want, "00-%s-%s-01", trace, call);
  assert_string_equal(tp, want);
  wc_resp_free(&r);
}

static char *log_text(const char *path) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  static char buf[1 << 16];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

/* An HTTP request runs under the trace of its W3C traceparent when that is
 * valid, else a fresh one; its turn gets its own call id; the response
 * carries both back as a traceparent; the gateway's log lines about it say
 * trace= and call=. Malformed headers (hostile) never reach the turn. */
static void test_http_trace(void **state) {
  (void)state;
  static const char tid[] = "4bf92f3577b34da6a3ce929d0e0e4736";
  char t[33], c[17], t2[33], c2[17];
  traced("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
         t, c);
  assert_string_equal(t, tid);
  assert_string_not_equal(c, "00f067aa0ba902b7"); /* the turn is a new span */
  /* a later version: its first 55 chars count */
  traced("traceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\n",
         t2, c2);
  assert_string_equal(t2, tid);
  assert_string_not_equal(c2, c);
#define TP_LINE "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
  static const char TWICE[] = TP_LINE TP_LINE; /* two headers: neither is used */
  static const char *const bad[] = {
      "traceparent: 00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01\r\n",
      "traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01\r\n",
      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01\r\n",
      "traceparent: ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n",
      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\r\n",
      "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1\r\n",
      TWICE,
      "X-Other: 1\r\n"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(bad); i++) {
    traced(bad[i], t2, c2);
    assert_string_not_equal(t2, tid);
    assert_true(lmz_trace_id_valid(t2, strlen(t2)));
  }
  /* two requests without one: two traces */
  traced("", t, c);
  assert_string_not_equal(t, t2);
  /* the log line of a failed request names its trace and call */
  char *dir = tl_mkdtemp("lmz-gwtrace"), path[1024];
  snprintf(path, sizeof path, "%s/log.txt", dir);
  int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  assert_true(fd >= 0);
  lmz_log_set_fd(fd);
  struct wc_resp r = wc_http(
      "GET", "/api/web-do/a/throw",
      auth_and("traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"));
  lmz_log_set_fd(-1);
  assert_int_equal(r.status, 500);
  const char *tp = wc_header(r.head, "traceparent");
  assert_non_null(tp);
  assert_int_equal(strlen(tp), 55);
  char want[128];
  snprintf(want, sizeof want, "on_request failed: handler blew up trace=%s call=%.16s", tid,
           tp + 36);
  assert_non_null(strstr(log_text(path), want));
  wc_resp_free(&r);
  close(fd);
  tl_rmtree(dir);
  free(dir);
}

static void test_no_prefix(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/web-do/a", AUTH);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(r.body, "GET WEB_DO a /web-do/a"));
  wc_resp_free(&r);
  expect("GET", "/", NULL, 200, "<h1>editor</h1>"); /* static still served */
  expect("GET", "/_lmz/dev-token", NULL, 404, NULL); /* not dev */
}

/* ---- access: tokens, public bindings, rate limits ------------------------ */

/* A refused actor request: status, body substring, WWW-Authenticate. */
static void expect_refused(const char *headers, int status, const char *body_has,
                           bool www) {
  struct wc_resp r = wc_http("GET", "/api/web-do/victim", headers);
  if (r.status != status || !strstr(r.body, body_has))
    fprintf(stderr, "-> %d %s\n", r.status, r.body);
  assert_int_equal(r.status, status);
  assert_non_null(strstr(r.body, body_has));
  assert_string_equal(wc_header(r.head, "Content-Type"), "application/json");
  if (www)
    assert_non_null(wc_header(r.head, "WWW-Authenticate"));
  else
    assert_null(wc_header(r.head, "WWW-Authenticate"));
  wc_resp_free(&r);
}

static char *bearer(const char *tok) {
  char *h = malloc(strlen(tok) + 64);
  assert_non_null(h);
  sprintf(h, "Authorization: Bearer %s\r\n", tok);
  return h;
}

/* {"alg":"none"} with a valid token's payload and no signature. */
static char *alg_none(const char *tok) {
  const char *hdr = "{\"alg\":\"none\",\"typ\":\"JWT\"}";
  char b64[128];
  sodium_bin2base64(b64, sizeof b64, (const unsigned char *)hdr, strlen(hdr),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  const char *p = strchr(tok, '.'), *q = strrchr(tok, '.');
  char *out = malloc(strlen(b64) + (size_t)(q - p) + 4);
  sprintf(out, "%s%.*s.", b64, (int)(q - p), p);
  return out;
}

/* Every kind of missing or bad credential is refused with the original's
 * answer, and nothing runs: no turn, no activation, no storage. */
static void test_http_needs_a_token(void **state) {
  (void)state;
  const char *inv = "\"error\":\"invalid_token\"";
  expect_refused(NULL, 401, "Missing Authorization header with Bearer token", true);
  expect_refused("Authorization: Basic YTpi\r\n", 401, "\"error\":\"invalid_request\"", true);
  expect_refused("Authorization: Bearer\r\n", 401, "invalid_request", true);
  expect_refused("Authorization: Bearer a.b.c\r\n", 401, inv, true);
  char *good = fx_token("mallory");
  char *forged = strdup(good);
  char *sig = strrchr(forged, '.') + 5;
  *sig = *sig == 'A' ? 'B' : 'A'; /* one signature byte changed */
  char *h = bearer(forged);
  expect_refused(h, 401, "Token is invalid or expired", true);
  free(h);
  char *none = alg_none(good);
  h = bearer(none);
  expect_refused(h, 401, "Token is invalid or expired", true);
  free(h);
  char *expired = fx_token_ex("mallory", -10, NULL, NULL);
  h = bearer(expired);
  expect_refused(h, 401, "Token is invalid or expired", true);
  free(h);
  char *aud = fx_token_ex("mallory", 3600, NULL, "https://elsewhere");
  h = bearer(aud);
  expect_refused(h, 401, "Token audience mismatch", true);
  free(h);
  /* a wrong issuer: test_http_wrong_issuer */
  char *denied = fx_token_ex("mallory", 3600, "{\"adminApproved\":false}", NULL);
  h = bearer(denied);
  expect_refused(h, 403, "\"error\":\"access_denied\"", false);
  free(h);
  free(good), free(forged), free(none), free(expired), free(aud), free(denied);
  /* nothing ran for any of them */
  struct lmz_node_stats ns;
  lmz_node_get_stats(F->node, &ns);
  assert_int_equal(ns.turns, 0);
  assert_int_equal(ns.activations, 0);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.http_routed, 0);
  assert_int_equal(st.http_unauthorized, 8);
  assert_int_equal(st.http_forbidden, 1);
  /* the original's order: unknown binding and missing instance are
   * answered before the token is looked at (routeDORequest, then hooks) */
  expect("GET", "/api/nope-do/a", NULL, 404, "Not Found");
  struct wc_resp r = wc_http("GET", "/api/web-do", NULL);
  assert_int_equal(r.status, 400);
  wc_resp_free(&r);
  /* a 401 to an allowed origin keeps the CORS headers */
  r = wc_http("GET", "/api/web-do/a", "Origin: https://good.example\r\n");
  assert_int_equal(r.status, 401);
  assert_string_equal(wc_header(r.head, "Access-Control-Allow-Origin"), "https://good.example");
  wc_resp_free(&r);
  /* and with a good token the same URL runs, as alice */
  r = wc_http("GET", "/api/web-do/victim", AUTH);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(r.body, "hits=1 "));
  assert_non_null(strstr(r.body, "sub=alice"));
  wc_resp_free(&r);
}

/* The handler's own calls carry the token's origin auth on (chain: the
 * handler's actor). */
static void test_http_origin_auth_carried(void **state) {
  (void)state;
  expect("GET", "/api/web-do/x/relay", AUTH, 200, NULL);
  lmz_arena *a = lmz_arena_new();
  lmz_value *seen = NULL, *chain = NULL;
  uint64_t end = tl_now_ms() + WC_DEADLINE_MS; /* a hang guard */
  while (!seen && tl_now_ms() < end) {
    wc_pump(10);
    lmz_arena_reset(a);
    lmz_node_kv_peek(F->node, "WEB_DO", "rec", "seen", a, &seen);
  }
  assert_non_null(seen);
  assert_string_equal(lmz_get_str(seen, NULL), "alice");
  assert_int_equal(lmz_node_kv_peek(F->node, "WEB_DO", "rec", "chain", a, &chain), 0);
  assert_true(lmz_get_number(chain) == 1);
  lmz_arena_free(a);
}

/* A token whose issuer differs: minted by hand (build_claims always sets
 * the default iss). */
static void test_http_wrong_issuer(void **state) {
  (void)state;
  lmz_buf tok = LMZ_BUF_INIT;
  char claims[512];
  snprintf(claims, sizeof claims,
           "{\"iss\":\"https://evil.example\",\"aud\":\"%s\",\"sub\":\"m\","
           "\"exp\":%lld,\"emailVerified\":true,\"adminApproved\":true}",
           LMZ_JWT_DEFAULT_AUD, (long long)(F->now_ms / 1000) + 3600);
  assert_int_equal(lmz_jwt_mint(&F->ks, NULL, claims, strlen(claims), &tok), 0);
  lmz_buf_putc(&tok, 0);
  char *h = bearer((const char *)tok.data);
  expect_refused(h, 401, "Token issuer mismatch", true);
  free(h);
  lmz_buf_free(&tok);
}

/* A public binding runs without a token and without origin auth; the
 * others still need one. */
static void test_public_binding(void **state) {
  (void)state;
  struct wc_resp r = wc_http("POST", "/api/public-do/hook", NULL);
  assert_int_equal(r.status, 201);
  assert_non_null(strstr(r.body, "POST PUBLIC_DO hook"));
  assert_non_null(strstr(r.body, "chain=0 sub=- claims.sub=-"));
  wc_resp_free(&r);
  /* a token sent anyway is not looked at: still no origin auth */
  r = wc_http("GET", "/api/public-do/hook", "Authorization: Bearer junk\r\n");
  assert_int_equal(r.status, 201);
  wc_resp_free(&r);
  expect_refused(NULL, 401, "invalid_request", true);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.http_public, 2);
}

/* Nothing is public by default. */
static void test_no_public_by_default(void **state) {
  (void)state;
  expect_refused(NULL, 401, "invalid_request", true);
  struct wc_resp r = wc_http("GET", "/api/public-do/hook", NULL);
  assert_int_equal(r.status, 401);
  wc_resp_free(&r);
}

/* Per-subject buckets on the gateway's (fake) clock: 429 + Retry-After,
 * other subjects unaffected, a token back after 1 s. */
static void test_rate_limits(void **state) {
  (void)state;
  expect("GET", "/api/web-do/r", AUTH, 201, NULL);
  expect("GET", "/api/web-do/r", AUTH, 201, NULL);
  struct wc_resp r = wc_http("GET", "/api/web-do/r", AUTH);
  assert_int_equal(r.status, 429);
  assert_non_null(strstr(r.body, "\"error\":\"rate_limited\""));
  assert_string_equal(wc_header(r.head, "Retry-After"), "1");
  wc_resp_free(&r);
  char *bob = fx_token("bob");
  char *h = bearer(bob);
  expect("GET", "/api/web-do/r", h, 201, NULL);
  free(h);
  free(bob);
  F->now_ms += 999;
  r = wc_http("GET", "/api/web-do/r", AUTH);
  assert_int_equal(r.status, 429);
  wc_resp_free(&r);
  F->now_ms += 1;
  expect("GET", "/api/web-do/r", AUTH, 201, NULL);
  /* the refused requests never ran: 4 hits (alice 3, bob 1) */
  r = wc_http("GET", "/api/web-do/r", AUTH);
  assert_int_equal(r.status, 429);
  wc_resp_free(&r);
  lmz_arena *a = lmz_arena_new();
  lmz_value *hits = NULL;
  assert_int_equal(lmz_node_kv_peek(F->node, "WEB_DO", "r", "hits", a, &hits), 0);
  assert_true(lmz_get_number(hits) == 4);
  lmz_arena_free(a);
  /* WebSocket connections: one, then 429 for the same subject */
  char *tok = fx_token("carol");
  struct wc_ws *w = wc_client("carol.t1", tok);
  assert_int_equal(w->resp.status, 101);
  wc_ws_free(w);
  w = wc_client("carol.t2", tok);
  assert_int_equal(w->resp.status, 429);
  assert_string_equal(wc_header(w->resp.head, "Retry-After"), "1");
  assert_non_null(strstr(w->resp.body, "rate_limited"));
  wc_ws_free(w);
  F->now_ms += 1000;
  w = wc_client("carol.t3", tok);
  assert_int_equal(w->resp.status, 101);
  wc_ws_free(w);
  free(tok);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.http_rate_limited, 3);
  assert_int_equal(st.ws_rate_limited, 1);
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
  r = wc_http("GET", "/api/web-do/a", auth_and("Origin: https://good.example\r\n"));
  assert_int_equal(r.status, 201);
  assert_string_equal(wc_header(r.head, "Access-Control-Allow-Origin"), "https://good.example");
  assert_string_equal(wc_header(r.head, "Vary"), "Origin");
  wc_resp_free(&r);
  r = wc_http("GET", "/api/web-do/a", AUTH); /* no Origin: no CORS at all */
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
  expect("GET", "/api/web-do/s", AUTH, 201, NULL);
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
      cmocka_unit_test_setup_teardown(test_http_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_no_prefix, setup_noprefix_nodev, teardown),
      cmocka_unit_test_setup_teardown(test_cors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_static_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_static_traversal, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dev_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_and_metrics, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_needs_a_token, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_wrong_issuer, setup, teardown),
      cmocka_unit_test_setup_teardown(test_http_origin_auth_carried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_public_binding, setup_public, teardown),
      cmocka_unit_test_setup_teardown(test_no_public_by_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_rate_limits, setup_limits, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
