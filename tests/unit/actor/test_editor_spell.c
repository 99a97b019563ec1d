/* examples/editor: SpellCheckWorker pointed at an HTTP spell-check service
 * by config (var SPELLCHECK_URL, host on fetch.allow), issue 13 item 2. A
 * fake service on the node's loop (tests/lib/fakehttp.h, port 0) answers;
 * a stand-in gateway class records the findings the client would get.
 *  - remote: the service's findings reach the client (the content was
 *    POSTed as text/plain);
 *  - the service fails (HTTP 500, or not JSON): the local check's findings;
 *  - no SPELLCHECK_URL: the local check, the service never asked. */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/node.h"
#include "core/err.h"
#include "lib/fakehttp.h"
#include "examples/editor/editor.c"

static struct {
  int findings_calls;
  char word[64];
  char doc[64];
  char svc_body[256];
  bool svc_text_plain;
  int svc_mode; /* 0 = findings, 1 = HTTP 500, 2 = not JSON */
  int replies;
} G;

static void service(void *ud, const struct fakehttp_req *q, struct fakehttp_reply *r) {
  (void)ud;
  snprintf(G.svc_body, sizeof G.svc_body, "%.*s", (int)q->body_len, (const char *)q->body);
  G.svc_text_plain = strstr(q->head, "Content-Type: text/plain") != NULL;
  if (G.svc_mode == 1) {
    r->status = 500;
    r->body = "{\"error\":\"down\"}";
  } else if (G.svc_mode == 2) {
    r->body = "<html>not json</html>";
  } else {
    r->body = "{\"findings\":[{\"word\":\"cat\",\"position\":4,\"suggestions\":[\"cot\"]},"
              "42,{\"no\":\"word\"}]}";
  }
}

static int fake_findings(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)ctx, (void)r;
  G.findings_calls++;
  if (n < 2 || lmz_typeof(a[1]) != LMZ_T_ARRAY || lmz_len(a[1]) == 0)
    return 0;
  snprintf(G.doc, sizeof G.doc, "%s", lmz_get_str(a[0], NULL));
  const lmz_value *w = lmz_object_getc(lmz_array_get(a[1], 0), "word");
  snprintf(G.word, sizeof G.word, "%s:%zu", w ? lmz_get_str(w, NULL) : "?", lmz_len(a[1]));
  return 0;
}

static const lmz_method fake_gw_methods[] = {
    LMZ_MESH("handleSpellFindings", fake_findings, NULL), LMZ_END};

static int fake_gw_init(lmz_registry *r) {
  return lmz_register_do(r, "FakeGateway", fake_gw_methods, NULL);
}

struct env {
  uv_loop_t loop;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  fakehttp *srv;
  char *dir;
};

static const char *const local[] = {"127.0.0.1"};

static void env_open(struct env *e, bool remote, int mode) {
  memset(&G, 0, sizeof G);
  G.svc_mode = mode;
  e->dir = tl_mkdtemp("lmz-spell");
  assert_non_null(e->dir);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  int port;
  assert_int_equal(fakehttp_start(&e->loop, service, NULL, &e->srv, &port), 0);
  char err[LMZ_ERRMSG_LEN], url[96];
  struct lmz_node_opts o = {.node_id = "spell", .data_dir = e->dir,
                            .fetch = {.allow = local, .n_allow = 1, .timeout_ms = 5000}};
  assert_int_equal(lmz_node_init(e->node = &e->node_mem, &e->loop, &o, err), 0);
  assert_int_equal(lmz_node_register_module(e->node, "editor", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_register_module(e->node, "fakegw", fake_gw_init, err), 0);
  assert_int_equal(lmz_node_bind(e->node, "SPELLCHECK_WORKER", "SpellCheckWorker",
                                 LMZ_NODE_WORKER, err), 0);
  assert_int_equal(lmz_node_bind(e->node, GATEWAY, "FakeGateway", LMZ_NODE_DO, err), 0);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/spell", port);
  if (remote)
    assert_int_equal(lmz_node_set_var(e->node, "SPELLCHECK_URL", url), 0);
  assert_int_equal(lmz_node_start(e->node), 0);
}

static void closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void env_close(struct env *e) {
  bool done = false;
  lmz_node_close(e->node, closed, &done);
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (!done && tl_now_ms() < end)
    uv_run(&e->loop, UV_RUN_ONCE);
  assert_true(done);
  lmz_node_release(e->node);
  fakehttp_close(e->srv);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  tl_rmtree(e->dir);
  free(e->dir);
}

static void on_reply(void *arg, int status, bool ok, const lmz_value *v) {
  (void)arg, (void)status, (void)ok, (void)v;
  G.replies++;
}

/* check(content, "alice.t1", "doc1") as the document would call it. */
static void check(struct env *e, const char *content) {
  lmz_arena *a = lmz_node_arena_get(e->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 3);
  assert_int_equal(lmz_array_push(args, lmz_cstring(a, content)), 0);
  assert_int_equal(lmz_array_push(args, lmz_cstring(a, "alice.t1")), 0);
  assert_int_equal(lmz_array_push(args, lmz_cstring(a, "doc1")), 0);
  assert_int_equal(lmz_object_setc(get, "type", lmz_cstring(a, "get")), 0);
  assert_int_equal(lmz_object_setc(get, "key", lmz_cstring(a, "check")), 0);
  assert_int_equal(lmz_object_setc(ap, "type", lmz_cstring(a, "apply")), 0);
  assert_int_equal(lmz_object_setc(ap, "args", args), 0);
  assert_int_equal(lmz_array_push(chain, get), 0);
  assert_int_equal(lmz_array_push(chain, ap), 0);
  struct lmz_node_call c = {.binding = "SPELLCHECK_WORKER", .chain = chain, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(e->node, &c, on_reply, NULL, err), 0);
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (G.findings_calls < 1 && tl_now_ms() < end)
    uv_run(&e->loop, UV_RUN_ONCE);
  assert_int_equal(G.findings_calls, 1);
}

static void remote_service_findings(void **state) {
  (void)state;
  struct env e;
  env_open(&e, true, 0);
  check(&e, "teh cat");
  assert_string_equal(G.svc_body, "teh cat");
  assert_true(G.svc_text_plain);
  assert_string_equal(G.word, "cat:1"); /* 42 and the word-less one dropped */
  assert_string_equal(G.doc, "doc1");
  env_close(&e);
}

static void failing_service_falls_back(void **state) {
  (void)state;
  for (int mode = 1; mode <= 2; mode++) {
    struct env e;
    env_open(&e, true, mode);
    check(&e, "teh cat");
    assert_string_equal(G.svc_body, "teh cat"); /* it was asked */
    assert_string_equal(G.word, "teh:1");       /* the local rule answered */
    env_close(&e);
  }
}

static void default_is_local(void **state) {
  (void)state;
  struct env e;
  env_open(&e, false, 0);
  check(&e, "teh cat");
  assert_string_equal(G.word, "teh:1");
  assert_int_equal(fakehttp_count(e.srv), 0);
  env_close(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(remote_service_findings),
      cmocka_unit_test(failing_service_falls_back),
      cmocka_unit_test(default_is_local),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
