/* tests/unit/actor/test_http_forward.c - an HTTP request another node
 * forwarded to this owner (actor/http.c: lmz__http_run_forwarded): a
 * well-formed one runs the class's on_request and its response encodes for
 * the way back; hostile ones (wrong types, CR/LF in a header, too many
 * headers, over-long strings) are refused with LMZ_EBADMSG and a message,
 * and nothing runs. A real node (RocksDB in a temp dir) runs the counter
 * example's CounterHttpDO. */
#include "counterfix.h"

#include <stdio.h>

#include "core/trace.h"
#include "lmz/http.h"

struct http_reply {
  int n, status, http_status;
  char body[128];
  char origin_sub[64]; /* the handler's X-Origin-Sub header */
  char trace_id[64];   /* the handler's X-Trace-Id header: lmz_trace_id */
};

static void on_http(void *arg, int status, const struct lmz_response *res,
                    const lmz_value *error) {
  (void)error;
  struct http_reply *r = arg;
  r->n++;
  r->status = status;
  if (status == 0) {
    r->http_status = res->status;
    snprintf(r->body, sizeof r->body, "%.*s", (int)res->body_len,
             (const char *)res->body);
    for (size_t i = 0; i < res->n_headers; i++)
      if (!strcmp(res->headers[i].name, "X-Origin-Sub"))
        snprintf(r->origin_sub, sizeof r->origin_sub, "%s", res->headers[i].value);
      else if (!strcmp(res->headers[i].name, "X-Trace-Id"))
        snprintf(r->trace_id, sizeof r->trace_id, "%s", res->headers[i].value);
  }
}

/* A forwarded request value as the entry node sends it. */
static lmz_value *request(lmz_arena *a, const char *method, const char *body) {
  lmz_value *o = lmz_object(a), *hs = lmz_array(a, 2);
  lmz_array_push(hs, lmz_cstring(a, "X-Echo"));
  lmz_array_push(hs, lmz_cstring(a, "hi"));
  lmz_object_setc(o, "method", lmz_cstring(a, method));
  lmz_object_setc(o, "path", lmz_cstring(a, "/api/http-counter-do/a"));
  lmz_object_setc(o, "query", lmz_cstring(a, ""));
  lmz_object_setc(o, "remote", lmz_cstring(a, "127.0.0.1:1"));
  lmz_object_setc(o, "headers", hs);
  lmz_object_setc(o, "body", lmz_arraybuffer(a, body, strlen(body)));
  return o;
}

static void start(struct counterfix *f) {
  char err[LMZ_ERRMSG_LEN];
  cf_start(f, "lmz-httpfwd");
  assert_int_equal(lmz_node_bind(f->n, "HTTP_COUNTER_DO", "CounterHttpDO",
                                 LMZ_NODE_DO, err), 0);
}

static void forwarded_request_runs_on_request(void **state) {
  (void)state;
  struct counterfix f;
  start(&f);
  lmz_arena *a = lmz_arena_new();
  struct http_reply r = {0};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz__http_run_forwarded(f.n, "HTTP_COUNTER_DO", "a",
                                           request(a, "POST", "7"), NULL, NULL, on_http,
                                           &r, err), 0);
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r.n < 1 && tl_now_ms() < deadline)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(r.http_status, 200);
  assert_true(!strncmp(r.body, "total=7 node=lmz-httpfwd activation=", 36));
  assert_string_equal(r.origin_sub, "-"); /* no origin auth: none seen */
  /* the response travels back as a value: status, type, headers, body */
  struct lmz_header h = {"X-Echo", "hi"};
  struct lmz_response res = {201, "text/plain", "ok", 2, &h, 1};
  lmz_value *v = lmz__http_response_value(a, &res);
  assert_non_null(v);
  assert_int_equal((int)lmz_get_number(lmz_object_getc(v, "status")), 201);
  assert_string_equal(lmz_get_str(lmz_object_getc(v, "contentType"), NULL), "text/plain");
  assert_int_equal(lmz_len(lmz_object_getc(v, "headers")), 2);
  assert_int_equal(lmz_len(lmz_object_getc(v, "body")), 2);
  lmz_arena_free(a);
  cf_stop(&f);
}

/* The origin auth the entry node's gateway verified travels with the
 * request: the handler sees its sub (lmz_origin_auth). */
static void forwarded_origin_auth_reaches_the_turn(void **state) {
  (void)state;
  struct counterfix f;
  start(&f);
  lmz_arena *a = lmz_arena_new();
  lmz_value *oa = lmz_object(a), *claims = lmz_object(a);
  lmz_object_setc(claims, "sub", lmz_cstring(a, "alice"));
  lmz_object_setc(oa, "sub", lmz_cstring(a, "alice"));
  lmz_object_setc(oa, "claims", claims);
  struct http_reply r = {0};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz__http_run_forwarded(f.n, "HTTP_COUNTER_DO", "a",
                                           request(a, "GET", ""), oa, NULL, on_http,
                                           &r, err), 0);
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r.n < 1 && tl_now_ms() < deadline)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.http_status, 200);
  assert_string_equal(r.origin_sub, "alice");
  lmz_arena_free(a);
  cf_stop(&f);
}

/* Each hostile request is refused before anything runs. */
static void hostile_requests_are_refused(void **state) {
  (void)state;
  struct counterfix f;
  start(&f);
  lmz_arena *a = lmz_arena_new();
  lmz_value *bad[8];
  bad[0] = lmz_cstring(a, "not an object");
  bad[1] = request(a, "GET", "");
  lmz_object_setc(bad[1], "method", lmz_number(a, 1)); /* wrong type */
  bad[2] = request(a, "GET", "");
  lmz_object_setc(bad[2], "method", lmz_cstring(a, "")); /* empty */
  bad[3] = request(a, "GET", "");
  lmz_array_push(lmz_object_getc(bad[3], "headers"), lmz_cstring(a, "odd"));
  bad[4] = request(a, "GET", "");
  lmz_array_push(lmz_object_getc(bad[4], "headers"), lmz_cstring(a, "X-Bad"));
  lmz_array_push(lmz_object_getc(bad[4], "headers"), lmz_cstring(a, "a\r\nSet-Cookie: x"));
  bad[5] = request(a, "GET", "");
  lmz_value *many = lmz_array(a, 600);
  for (int i = 0; i < 600; i++)
    lmz_array_push(many, lmz_cstring(a, i % 2 ? "v" : "X-H"));
  lmz_object_setc(bad[5], "headers", many); /* 300 headers > 256 */
  bad[6] = request(a, "GET", "");
  lmz_object_setc(bad[6], "body", lmz_cstring(a, "not bytes"));
  bad[7] = request(a, "GET", "");
  static char longpath[20000];
  memset(longpath, 'p', sizeof longpath - 1);
  lmz_object_setc(bad[7], "path", lmz_cstring(a, longpath));
  struct http_reply r = {0};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(bad); i++) {
    char err[LMZ_ERRMSG_LEN] = "";
    assert_non_null(bad[i]);
    assert_int_equal(lmz__http_run_forwarded(f.n, "HTTP_COUNTER_DO", "a", bad[i], NULL,
                                             NULL, on_http, &r, err), LMZ_EBADMSG);
    assert_string_equal(err, "malformed forwarded HTTP request");
  }
  run_turns(&f.loop, f.n);
  assert_int_equal(r.n, 0); /* nothing ran, no callback */
  lmz_arena_free(a);
  cf_stop(&f);
}

/* ---- tracing (issue 13 item 6) ----------------------------------------- */

static void wait_reply(struct counterfix *f, struct http_reply *r, int n) {
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r->n < n && tl_now_ms() < deadline)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(r->n, n);
  assert_int_equal(r->http_status, 200);
}

/* An HTTP request with a valid W3C traceparent runs under its trace id; a
 * malformed one (each of the cases below) is ignored and a fresh trace id
 * minted, which the handler sees instead. */
static void traceparent_is_adopted_or_replaced(void **state) {
  (void)state;
  struct counterfix f;
  start(&f);
  static const char *const T = "4bf92f3577b34da6a3ce929d0e0e4736";
  static const char *const good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  static const char *const bad[] = {
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", /* upper case */
      "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  /* short id */
      "00-00000000000000000000000000000000-00f067aa0ba902b7-01", /* zero id */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", /* zero parent */
      "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", /* version ff */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 + extra */
      "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01", /* separators */
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", /* flags */
      "",
  };
  struct lmz_header h = {"traceparent", good};
  struct lmz_request req = {.method = "GET", .path = "/api/http-counter-do/t",
                            .query = "", .headers = &h, .n_headers = 1,
                            .remote = "127.0.0.1:1"};
  struct http_reply r = {0};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_node_http(f.n, "HTTP_COUNTER_DO", "t", &req, on_http, &r, err), 0);
  wait_reply(&f, &r, 1);
  assert_string_equal(r.trace_id, T);
  char prev[64] = "";
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    h.value = bad[i];
    assert_int_equal(lmz_node_http(f.n, "HTTP_COUNTER_DO", "t", &req, on_http, &r, err), 0);
    wait_reply(&f, &r, (int)i + 2);
    assert_true(lmz_trace_id_valid(r.trace_id, strlen(r.trace_id)));
    assert_string_not_equal(r.trace_id, T);
    assert_string_not_equal(r.trace_id, prev); /* each request its own */
    snprintf(prev, sizeof prev, "%s", r.trace_id);
  }
  cf_stop(&f);
}

/* A forwarded request runs under the entry node's trace (the Call's
 * context), not a new one; hostile ids from the peer are replaced. */
static void forwarded_request_keeps_the_trace(void **state) {
  (void)state;
  struct counterfix f;
  start(&f);
  lmz_arena *a = lmz_arena_new();
  const char *ids[2] = {"0123456789abcdef0123456789abcdef", "0123456789abcdef"};
  struct http_reply r = {0};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz__http_run_forwarded(f.n, "HTTP_COUNTER_DO", "a",
                                           request(a, "GET", ""), NULL, ids,
                                           on_http, &r, err), 0);
  wait_reply(&f, &r, 1);
  assert_string_equal(r.trace_id, ids[0]);
  const char *hostile[2] = {"0123456789abcdef0123456789abcdef\r\nX: y", "zz"};
  assert_int_equal(lmz__http_run_forwarded(f.n, "HTTP_COUNTER_DO", "a",
                                           request(a, "GET", ""), NULL, hostile,
                                           on_http, &r, err), 0);
  wait_reply(&f, &r, 2);
  assert_true(lmz_trace_id_valid(r.trace_id, strlen(r.trace_id)));
  assert_string_not_equal(r.trace_id, ids[0]);
  lmz_arena_free(a);
  cf_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forwarded_request_runs_on_request),
      cmocka_unit_test(forwarded_origin_auth_reaches_the_turn),
      cmocka_unit_test(traceparent_is_adopted_or_replaced),
      cmocka_unit_test(forwarded_request_keeps_the_trace),
      cmocka_unit_test(hostile_requests_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
