/* tests/unit/net/test_fetch.c - net/fetch.h against an in-process fake HTTP
 * server on the same loop (tests/lib/fakehttp.h, port 0): success, limits
 * (timeout, body and head caps, redirect limit), the allow-list (at start
 * and on a redirect), request checks, and close with requests in flight
 * (every callback canceled, nothing left on the loop), the W3C traceparent
 * a traced request carries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/trace.h"
#include "lib/fakehttp.h"
#include "lib/testlib.h"
#include "lib/tl_loop.h"
#include "net/fetch.h"

struct result {
  bool done;
  int status;
  long http;
  char body[256];
  size_t body_len;
  char hdr[128]; /* value of x-test */
  size_t n_headers;
  char errmsg[LMZ_ERRMSG_LEN];
};

struct fx {
  uv_loop_t loop;
  fakehttp *srv;
  int port;
  lmz_net_t *net, net_mem;
  char base[64];
};

static void handler(void *ud, const struct fakehttp_req *q, struct fakehttp_reply *r) {
  struct fx *f = ud;
  static char loc[256], big_headers[100000];
  if (strcmp(q->path, "/hello") == 0) {
    r->headers = "X-Test: yes\r\n";
    r->body = "hello";
  } else if (strcmp(q->path, "/echo") == 0) {
    r->body = (const char *)q->body;
    r->body_len = q->body_len;
    r->headers = strstr(q->head, "POST ") == q->head ? "X-Test: POST\r\n" : "X-Test: other\r\n";
  } else if (strcmp(q->path, "/trace") == 0) { /* the traceparents it got */
    static char tp[512];
    fakehttp_header(q, "traceparent", tp, sizeof tp);
    r->body = tp;
  } else if (strcmp(q->path, "/trace-moved") == 0) {
    r->status = 307;
    r->headers = "Location: /trace\r\n";
  } else if (strcmp(q->path, "/hang") == 0) {
    r->hang = true;
  } else if (strcmp(q->path, "/big") == 0) {
    r->filler_len = 2 * 1024 * 1024;
  } else if (strcmp(q->path, "/big-nolen") == 0) {
    r->filler_len = 2 * 1024 * 1024;
    r->no_length = true;
  } else if (strcmp(q->path, "/many-headers") == 0) {
    size_t n = 0;
    for (int i = 0; i < 300; i++)
      n += (size_t)snprintf(big_headers + n, sizeof big_headers - n, "X-H%d: v\r\n", i);
    r->headers = big_headers;
  } else if (strncmp(q->path, "/loop/", 6) == 0) {
    r->status = 302;
    snprintf(loc, sizeof loc, "Location: /loop/%d\r\n", atoi(q->path + 6) + 1);
    r->headers = loc;
  } else if (strcmp(q->path, "/see-other") == 0) {
    r->status = 303;
    r->headers = "Location: /echo\r\n";
  } else if (strcmp(q->path, "/elsewhere") == 0) {
    r->status = 302;
    snprintf(loc, sizeof loc, "Location: http://localhost:%d/hello\r\n", f->port);
    r->headers = loc;
  } else {
    r->status = 404;
    r->body = "no";
  }
}

static void fetch_cb(void *ud, int status, const struct lmz_net_response *res,
                     const char *errmsg) {
  struct result *r = ud;
  r->done = true;
  r->status = status;
  if (errmsg)
    snprintf(r->errmsg, sizeof r->errmsg, "%s", errmsg);
  if (!res)
    return;
  r->http = res->status;
  r->n_headers = res->n_headers;
  r->body_len = res->body_len;
  memcpy(r->body, res->body, res->body_len < sizeof r->body - 1 ? res->body_len
                                                                 : sizeof r->body - 1);
  for (size_t i = 0; i < res->n_headers; i++)
    if (strcmp(res->headers[i].name, "x-test") == 0)
      snprintf(r->hdr, sizeof r->hdr, "%s", res->headers[i].value);
}

static struct fx *fx_new(const struct lmz_net_opts *o) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  assert_int_equal(fakehttp_start(&f->loop, handler, f, &f->srv, &f->port), 0);
  snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", f->port);
  char err[LMZ_ERRMSG_LEN] = "";
  f->net = &f->net_mem;
  assert_int_equal(lmz_net_init(f->net, &f->loop, o, err), 0);
  return f;
}

static void closed_cb(void *ud) { *(bool *)ud = true; }

static void fx_free(struct fx *f) {
  bool closed = false;
  lmz_net_close(f->net, closed_cb, &closed);
  tl_run_until_true(&f->loop, &closed);
  fakehttp_close(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0); /* nothing left behind */
  free(f);
}

static const char *const local[] = {"127.0.0.1"};
static const struct lmz_net_opts local_opts = {
    .allow = local, .n_allow = 1, .timeout_ms = 5000,
    .max_response_bytes = 1024 * 1024, .max_redirects = 3};

static void get(struct fx *f, const char *path, struct result *r) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", f->base, path);
  struct lmz_net_request q = {.url = url};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, r, err), 0);
  assert_false(r->done); /* never synchronous */
  tl_run_until_true(&f->loop, &r->done);
}

static void test_get_ok(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  struct result r = {0};
  get(f, "/hello", &r);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.http, 200);
  assert_int_equal(r.body_len, 5);
  assert_string_equal(r.body, "hello");
  assert_string_equal(r.hdr, "yes");
  struct result nf = {0};
  get(f, "/nothing", &nf);
  assert_int_equal(nf.status, 0); /* any HTTP status is a response */
  assert_int_equal(nf.http, 404);
  fx_free(f);
}

static void test_post_body_and_303(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  char url[256];
  snprintf(url, sizeof url, "%s/echo", f->base);
  const char *hs[] = {"Content-Type: text/plain", "X-Any: 1"};
  struct lmz_net_request q = {.url = url, .method = "POST", .headers = hs,
                              .n_headers = 2, .body = "ping", .body_len = 4};
  struct result r = {0};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), 0);
  tl_run_until_true(&f->loop, &r.done);
  assert_int_equal(r.status, 0);
  assert_string_equal(r.body, "ping");
  assert_string_equal(r.hdr, "POST");
  /* 303 after a POST: followed as a GET without the body */
  snprintf(url, sizeof url, "%s/see-other", f->base);
  struct result r2 = {0};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r2, err), 0);
  tl_run_until_true(&f->loop, &r2.done);
  assert_int_equal(r2.status, 0);
  assert_int_equal(r2.http, 200);
  assert_string_equal(r2.hdr, "other");
  assert_int_equal(r2.body_len, 0);
  fx_free(f);
}

static void test_timeout(void **state) {
  (void)state;
  struct lmz_net_opts o = local_opts;
  o.timeout_ms = 300;
  struct fx *f = fx_new(&o);
  struct result r = {0};
  get(f, "/hang", &r);
  assert_int_equal(r.status, LMZ_ETIMEOUT);
  assert_non_null(strstr(r.errmsg, "timed out"));
  fx_free(f);
}

static void test_too_large(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  struct result r = {0}, r2 = {0}, r3 = {0};
  get(f, "/big", &r); /* Content-Length above the cap */
  assert_int_equal(r.status, LMZ_ETOOBIG);
  get(f, "/big-nolen", &r2); /* no length: cut while reading */
  assert_int_equal(r2.status, LMZ_ETOOBIG);
  assert_non_null(strstr(r2.errmsg, "too large"));
  get(f, "/many-headers", &r3); /* 300 header lines > 100 */
  assert_int_equal(r3.status, LMZ_ETOOBIG);
  fx_free(f);
}

static void test_redirect_limit(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  struct result r = {0};
  get(f, "/loop/0", &r);
  assert_int_equal(r.status, UV_ELOOP);
  assert_non_null(strstr(r.errmsg, "too many redirects"));
  assert_int_equal(fakehttp_count(f->srv), 4); /* first + 3 followed */
  fx_free(f);
}

static void test_host_not_allowed(void **state) {
  (void)state;
  static const char *const other[] = {"api.example.com"};
  struct lmz_net_opts o = local_opts;
  o.allow = other;
  struct fx *f = fx_new(&o);
  char url[256], err[LMZ_ERRMSG_LEN] = "";
  snprintf(url, sizeof url, "%s/hello", f->base);
  struct lmz_net_request q = {.url = url};
  struct result r = {0};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EACCESS);
  assert_non_null(strstr(err, "127.0.0.1"));
  fx_free(f);
  /* no allow-list at all: nothing reachable */
  struct lmz_net_opts none = local_opts;
  none.allow = NULL;
  none.n_allow = 0;
  f = fx_new(&none);
  snprintf(url, sizeof url, "%s/hello", f->base);
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EACCESS);
  assert_int_equal(fakehttp_count(f->srv), 0);
  fx_free(f);
  /* a redirect to a host not on the list is never followed */
  f = fx_new(&local_opts);
  get(f, "/elsewhere", &r);
  assert_int_equal(r.status, LMZ_EACCESS);
  assert_non_null(strstr(r.errmsg, "localhost"));
  assert_int_equal(fakehttp_count(f->srv), 1);
  fx_free(f);
}

static void test_bad_requests(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  char url[256], err[LMZ_ERRMSG_LEN] = "";
  snprintf(url, sizeof url, "%s/hello", f->base);
  struct result r = {0};
  const char *inj[] = {"X-A: 1\r\nX-Evil: 2"};
  struct lmz_net_request q = {.url = url, .headers = inj, .n_headers = 1};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  const char *host[] = {"Host: evil"};
  q.headers = host;
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  q = (struct lmz_net_request){.url = "ftp://127.0.0.1/x"};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  q = (struct lmz_net_request){.url = "not a url"};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  q = (struct lmz_net_request){.url = url, .method = "GE T"};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  static char huge[2 * 1024 * 1024];
  q = (struct lmz_net_request){.url = url, .method = "POST", .body = huge,
                               .body_len = sizeof huge};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r, err), LMZ_EINVAL);
  assert_false(r.done);
  assert_int_equal(fakehttp_count(f->srv), 0);
  fx_free(f);
}

/* GET path with `trace_id` and extra headers; the /trace body (the
 * traceparent values the server got) lands in r->body. */
static void get_traced(struct fx *f, const char *path, const char *trace_id,
                       const char *const *hs, size_t nh, struct result *r) {
  char url[256];
  snprintf(url, sizeof url, "%s%s", f->base, path);
  struct lmz_net_request q = {.url = url, .headers = hs, .n_headers = nh,
                              .trace_id = trace_id};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, r, err), 0);
  tl_run_until_true(&f->loop, &r->done);
  assert_int_equal(r->status, 0);
  assert_int_equal(r->http, 200);
}

/* W3C Trace Context: a valid trace id goes out as one traceparent
 * "00-<trace>-<parent>-01" (the parent a fresh 16-hex id, the same on a
 * redirect's next hop); the caller's own traceparent wins; no id or an
 * invalid one (hostile: upper case, all zeros, short) sends none. */
static void test_traceparent(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  static const char tid[] = "4bf92f3577b34da6a3ce929d0e0e4736";
  struct result r = {0};
  get_traced(f, "/trace", tid, NULL, 0, &r);
  assert_int_equal(strlen(r.body), 55);
  assert_memory_equal(r.body, "00-", 3);
  assert_memory_equal(r.body + 3, tid, 32);
  char tp[LMZ_TRACE_ID_LEN + 1];
  assert_int_equal(lmz_traceparent_parse(r.body, 55, tp), 0);
  assert_string_equal(tp, tid);
  assert_string_equal(r.body + 52, "-01");
  struct result r2 = {0};
  get_traced(f, "/trace", tid, NULL, 0, &r2);
  assert_memory_not_equal(r.body + 36, r2.body + 36, 16); /* a parent per request */
  struct result rd = {0};
  get_traced(f, "/trace-moved", tid, NULL, 0, &rd);
  assert_int_equal(strlen(rd.body), 55);
  assert_memory_equal(rd.body + 3, tid, 32);
  static const char mine[] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
  char line[128];
  snprintf(line, sizeof line, "TraceParent: %s", mine);
  const char *hs[] = {"X-Any: 1", line};
  struct result ru = {0};
  get_traced(f, "/trace", tid, hs, 2, &ru);
  assert_string_equal(ru.body, mine); /* only the caller's */
  static const char *const bad[] = {NULL, "", "4BF92F3577B34DA6A3CE929D0E0E4736",
                                    "00000000000000000000000000000000",
                                    "4bf92f3577b34da6a3ce929d0e0e473",
                                    "4bf92f3577b34da6a3ce929d0e0e47366"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct result rb = {0};
    get_traced(f, "/trace", bad[i], NULL, 0, &rb);
    assert_int_equal(rb.body_len, 0);
  }
  fx_free(f);
}

static void test_max_inflight(void **state) {
  (void)state;
  struct lmz_net_opts o = local_opts;
  o.max_inflight = 2;
  struct fx *f = fx_new(&o);
  char url[256], err[LMZ_ERRMSG_LEN] = "";
  snprintf(url, sizeof url, "%s/hello", f->base);
  struct lmz_net_request q = {.url = url};
  struct result r[3] = {{0}};
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[0], err), 0);
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[1], err), 0);
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[2], err), LMZ_EOVERLOAD);
  tl_run_until_true(&f->loop, &r[1].done);
  tl_run_until_true(&f->loop, &r[0].done);
  assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[2], err), 0);
  tl_run_until_true(&f->loop, &r[2].done);
  assert_int_equal(r[2].status, 0);
  fx_free(f);
}

static void test_close_in_flight(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  struct result r[3] = {{0}};
  char url[256], err[LMZ_ERRMSG_LEN] = "";
  snprintf(url, sizeof url, "%s/hang", f->base);
  struct lmz_net_request q = {.url = url};
  for (int i = 0; i < 3; i++)
    assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[i], err), 0);
  /* let them reach the server (connected, request sent, waiting) */
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (fakehttp_count(f->srv) < 3 && tl_now_ms() < end)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(fakehttp_count(f->srv), 3);
  assert_int_equal(lmz_net_active(f->net), 3);
  fx_free(f); /* closes the client: every request canceled */
}

/* The close test again, but checking the callbacks (fx_free frees f). */
static void test_close_cancels_callbacks(void **state) {
  (void)state;
  struct fx *f = fx_new(&local_opts);
  struct result r[2] = {{0}};
  char url[256], err[LMZ_ERRMSG_LEN] = "";
  snprintf(url, sizeof url, "%s/hang", f->base);
  struct lmz_net_request q = {.url = url};
  for (int i = 0; i < 2; i++)
    assert_int_equal(lmz_net_fetch(f->net, &q, fetch_cb, &r[i], err), 0);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  bool closed = false;
  lmz_net_close(f->net, closed_cb, &closed);
  assert_false(r[0].done); /* later, not from inside close */
  tl_run_until_true(&f->loop, &closed);
  for (int i = 0; i < 2; i++) {
    assert_true(r[i].done);
    assert_int_equal(r[i].status, LMZ_ECANCELED);
  }
  fakehttp_close(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
}

static void test_allow_match(void **state) {
  (void)state;
  const char *const l[] = {"api.example.com", "*.svc.test", "[::1]"};
  assert_true(lmz_net_host_allowed(l, 3, "api.example.com"));
  assert_true(lmz_net_host_allowed(l, 3, "API.Example.COM"));
  assert_true(lmz_net_host_allowed(l, 3, "api.example.com."));
  assert_false(lmz_net_host_allowed(l, 3, "xapi.example.com"));
  assert_false(lmz_net_host_allowed(l, 3, "api.example.com.evil"));
  assert_true(lmz_net_host_allowed(l, 3, "a.svc.test"));
  assert_true(lmz_net_host_allowed(l, 3, "a.b.svc.test"));
  assert_false(lmz_net_host_allowed(l, 3, "svc.test"));
  assert_false(lmz_net_host_allowed(l, 3, "evilsvc.test"));
  assert_true(lmz_net_host_allowed(l, 3, "[::1]"));
  assert_false(lmz_net_host_allowed(l, 3, ""));
  assert_false(lmz_net_host_allowed(NULL, 0, "api.example.com"));
  const char *const any[] = {"*"};
  assert_true(lmz_net_host_allowed(any, 1, "anything.at.all"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_allow_match),
      cmocka_unit_test(test_get_ok),
      cmocka_unit_test(test_post_body_and_303),
      cmocka_unit_test(test_timeout),
      cmocka_unit_test(test_too_large),
      cmocka_unit_test(test_redirect_limit),
      cmocka_unit_test(test_host_not_allowed),
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_traceparent),
      cmocka_unit_test(test_max_inflight),
      cmocka_unit_test(test_close_in_flight),
      cmocka_unit_test(test_close_cancels_callbacks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
