/* Client gateway black-box cases (lumenize-behaviour 7.1: handshake,
 * supersession, client->mesh, token expiry, mesh->client, grace period,
 * hooks) over real loopback WebSockets against a real node running the
 * counter example. Deadlines bound every wait. Grace periods and call
 * timeouts run on the node's fake clock (F->now_ms, moved by move_clock):
 * they are long, so nothing expires by wall-clock time, and the expiry
 * cases check the exact deadline (not a millisecond earlier). */
#include "gwfix.h"

#include "examples/counter/counter.c"
#include "lmz/gateway.h"

#define GRACE_MS 45000
#define TIMEOUT_MS 90000
#define GW "LUMENIZE_CLIENT_GATEWAY"

/* ---- a test application: a DO that calls clients, and hooks ------------ */

static int pusher_push(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                       lmz_value **result) {
  if (nargs < 2)
    return lmz_throwf(ctx, "TypeError", "push(client, text)");
  lmz_ctn *remote = lmz_ctn_call(lmz_ctn_new(ctx), "handle", 1, args[1]);
  lmz_ctn *handler = lmz_ctn_call(lmz_ctn_new(ctx), "onPushed", 1, lmz_ctn_result(ctx));
  int rv = lmz_call(ctx, GW, lmz_get_str(args[0], NULL), remote, handler, NULL);
  *result = lmz_cstring(lmz_turn_arena(ctx), "sent");
  return rv;
}

static int pusher_on_pushed(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                            lmz_value **result) {
  (void)result;
  return lmz_kv_put(ctx, "last", nargs ? args[0] : lmz_undefined());
}

/* big(n): a string of n bytes (an answer larger than its request). */
static int pusher_big(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                      lmz_value **result) {
  double n = nargs ? lmz_get_number(args[0]) : 0;
  if (!(n >= 0 && n <= 64.0 * 1024 * 1024))
    return lmz_throwf(ctx, "RangeError", "big(n): 0..64 MiB");
  char *p = lmz_arena_alloc(lmz_turn_arena(ctx), (size_t)n + 1);
  if (!p)
    return LMZ_ENOMEM;
  memset(p, 'b', (size_t)n);
  *result = lmz_string(lmz_turn_arena(ctx), p, (size_t)n);
  return *result ? 0 : LMZ_ENOMEM;
}

static const lmz_method pusher_methods[] = {
    LMZ_MESH("push", pusher_push, NULL),
    LMZ_MESH("big", pusher_big, NULL),
    LMZ_LOCAL("onPushed", pusher_on_pushed),
    LMZ_END,
};

static struct {
  int accepts, to_mesh, to_client;
} H;

static int hook_accept(void *data, const char *instance, const char *sub,
                       const lmz_value *payload, lmz_arena *a,
                       lmz_value **extra, struct lmz_gateway_reject *rej) {
  (void)data, (void)instance;
  H.accepts++;
  if (!strcmp(sub, "blocked")) {
    rej->status = 403;
    rej->body = "Forbidden: blocked by hook";
    return 1;
  }
  assert_non_null(lmz_object_getc(payload, "exp"));
  *extra = lmz_object(a);
  return lmz_object_setc(*extra, "role", lmz_cstring(a, "editor"));
}

static int hook_to_mesh(void *data, const struct lmz_gateway_conn_info *client,
                        struct lmz_gateway_mesh_call *call, lmz_arena *a,
                        lmz_value **error) {
  (void)data;
  H.to_mesh++;
  assert_string_equal(client->binding, GW);
  if (call->instance && !strcmp(call->instance, "refused")) {
    *error = lmz_error(a, "HookError", "refused by the mesh hook");
    return 1;
  }
  return lmz_object_setc(call->state, "injected", lmz_bool(true));
}

static int hook_to_client(void *data, const struct lmz_gateway_conn_info *client,
                          const lmz_identity *chain, size_t n,
                          const lmz_value *state, lmz_arena *a, lmz_value **error) {
  (void)data, (void)state;
  H.to_client++;
  assert_non_null(client->sub);
  if (n && !strcmp(chain[n - 1].binding, "BLOCKED_DO")) {
    *error = lmz_error(a, "Error", "Blocked caller");
    return 1;
  }
  return 0;
}

static const struct lmz_gateway_hooks hooks = {
    .on_before_accept = hook_accept,
    .on_before_call_to_mesh = hook_to_mesh,
    .on_before_call_to_client = hook_to_client,
};

static int test_module_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "PusherDO", pusher_methods, NULL);
  return rv ? rv : lmz_register_gateway_hooks(r, &hooks);
}

/* Moves the node's fake clock and tells the gateway. */
static void move_clock(double ms) {
  F->now_ms += ms;
  lmz_gateway_clock_moved(F->gw);
}

static int setup(void **state) {
  (void)state;
  memset(&H, 0, sizeof H);
  struct fx_opts o = {
      .modules = {lmz_module_init, test_module_init},
      .binds = {{"COUNTER_DO", "CounterDO", "do"},
                {"ECHO_WORKER", "EchoWorker", "worker"},
                {"PUSHER_DO", "PusherDO", "do"},
                {"BLOCKED_DO", "PusherDO", "do"}},
      .gw = {.grace_ms = GRACE_MS, .client_call_timeout_ms = TIMEOUT_MS},
  };
  fx_start(&o);
  return 0;
}

#define SMALL_MAX 65536 /* the socket's output cap is then the 4 MiB floor */

static int setup_small(void **state) {
  (void)state;
  memset(&H, 0, sizeof H);
  struct fx_opts o = {
      .modules = {lmz_module_init, test_module_init},
      .binds = {{"PUSHER_DO", "PusherDO", "do"}},
      .gw = {.grace_ms = GRACE_MS, .client_call_timeout_ms = TIMEOUT_MS,
             .max_message = SMALL_MAX},
  };
  fx_start(&o);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  fx_stop();
  return 0;
}

/* ---- helpers ------------------------------------------------------------- */

/* Connects alice.tab1 (or `instance` for `sub`) and checks the status. */
static struct wc_ws *connect_ok(const char *sub, const char *instance,
                                bool want_subscription_required) {
  char *tok = fx_token(sub);
  struct wc_ws *w = wc_client(instance, tok);
  free(tok);
  assert_int_equal(w->resp.status, 101);
  assert_string_equal(wc_header(w->resp.head, "Sec-WebSocket-Protocol"), "lmz");
  char *m = wc_ws_recv(w, WC_DEADLINE_MS);
  assert_non_null(m);
  assert_string_equal(m, want_subscription_required
                             ? "{\"type\":\"connection_status\",\"subscriptionRequired\":true}"
                             : "{\"type\":\"connection_status\",\"subscriptionRequired\":false}");
  free(m);
  return w;
}

struct reply {
  bool done, ok;
  int status;
  lmz_arena *a;
  lmz_value *v;
};

static void on_reply(void *arg, int status, bool ok, const lmz_value *v) {
  struct reply *r = arg;
  r->done = true;
  r->status = status;
  r->ok = ok;
  r->v = lmz_value_copy(r->a, v);
}

static lmz_value *op(lmz_arena *a, const char *type, const char *key,
                     lmz_value *args) {
  lmz_value *o = lmz_object(a);
  lmz_object_setc(o, "type", lmz_cstring(a, type));
  if (key)
    lmz_object_setc(o, "key", lmz_cstring(a, key));
  if (args)
    lmz_object_setc(o, "args", args);
  return o;
}

/* A mesh call from COUNTER_DO/c1 to client `instance`: handle(arg). */
static void call_client_from(const char *instance, const char *caller,
                             const char *arg, struct reply *r) {
  memset(r, 0, sizeof *r);
  r->a = lmz_arena_new();
  lmz_arena *a = lmz_node_arena_get(F->node);
  lmz_value *args = lmz_array(a, 1), *chain = lmz_array(a, 2), *st = lmz_object(a);
  lmz_array_push(args, lmz_cstring(a, arg));
  lmz_array_push(chain, op(a, "get", "handle", NULL));
  lmz_array_push(chain, op(a, "apply", NULL, args));
  lmz_object_setc(st, "s", lmz_number(a, 1));
  lmz_identity *ids = lmz_arena_alloc(a, sizeof *ids);
  ids[0] = (lmz_identity){LMZ_NODE_DO, lmz_arena_strndup(a, caller, strlen(caller)),
                          lmz_arena_strndup(a, "c1", 2)};
  struct lmz_node_call c = {.binding = GW, .instance = instance, .chain = chain,
                           .call_chain = ids, .call_chain_len = 1, .state = st, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(F->node, &c, on_reply, r, err), 0);
}

static void call_client(const char *instance, const char *arg, struct reply *r) {
  call_client_from(instance, "COUNTER_DO", arg, r);
}

static void reply_free(struct reply *r) { lmz_arena_free(r->a); }

/* The error of a failed call: name, message, clientInstanceName. */
static void assert_disconnected(const struct reply *r, const char *msg,
                                const char *instance) {
  assert_true(r->done);
  assert_int_equal(r->status, 0);
  assert_false(r->ok);
  assert_int_equal(lmz_typeof(r->v), LMZ_T_ERROR);
  assert_string_equal(lmz_error_name(r->v), "ClientDisconnectedError");
  assert_string_equal(lmz_error_message(r->v), msg);
  lmz_value *cin = lmz_error_prop(r->v, "clientInstanceName");
  assert_non_null(cin);
  assert_string_equal(lmz_get_str(cin, NULL), instance);
}

/* Receives an incoming_call; returns its callId (static buffer). */
static const char *expect_incoming(struct wc_ws *w, const char *arg) {
  static char id[64];
  lmz_arena *a = lmz_arena_new();
  lmz_json *m = wc_ws_json(w, a);
  assert_string_equal(jstr(m, "type"), "incoming_call");
  snprintf(id, sizeof id, "%s", jstr(m, "callId"));
  assert_int_equal(strlen(id), 36);
  assert_string_equal(jstr(m, "chain.json.0.key"), "handle");
  assert_string_equal(jstr(m, "chain.json.1.args.0"), arg);
  assert_string_equal(jstr(m, "callContext.callChain.0.type"), "LumenizeDO");
  assert_non_null(jget(m, "callContext.state.json"));
  lmz_arena_free(a);
  return id;
}

static void answer(struct wc_ws *w, const char *id, const char *result_text) {
  char buf[512];
  snprintf(buf, sizeof buf,
           "{\"type\":\"incoming_call_response\",\"callId\":\"%s\",\"success\":true,"
           "\"result\":{\"json\":\"%s\",\"meta\":{}}}", id, result_text);
  wc_ws_text(w, buf);
}

/* Sends a call frame and returns the call_response (in a). */
static lmz_json *client_call(struct wc_ws *w, lmz_arena *a, const char *frame) {
  wc_ws_text(w, frame);
  lmz_json *m = wc_ws_json(w, a);
  assert_string_equal(jstr(m, "type"), "call_response");
  return m;
}

/* ---- handshake (7.1 "Gateway handshake") --------------------------------- */

static void expect_status(struct wc_ws *w, int status, const char *body) {
  assert_int_equal(w->resp.status, status);
  if (body)
    assert_string_equal(w->resp.body, body);
  wc_ws_free(w);
}

static void test_handshake_answers(void **state) {
  (void)state;
  struct wc_resp r = wc_http("GET", "/gateway/LUMENIZE_CLIENT_GATEWAY/alice.tab1", NULL);
  assert_int_equal(r.status, 426);
  assert_string_equal(r.body, "Expected WebSocket upgrade");
  wc_resp_free(&r);
  /* no token subprotocol */
  expect_status(wc_ws_open("/gateway/LUMENIZE_CLIENT_GATEWAY/alice.tab1", "lmz", NULL),
                401, "Unauthorized: Missing access token in WebSocket subprotocol");
  /* undecodable token */
  struct wc_ws *w = wc_client("alice.tab1", "not.a.jwt");
  assert_int_equal(w->resp.status, 401);
  assert_non_null(strstr(w->resp.body, "\"error\":\"invalid_token\""));
  assert_non_null(wc_header(w->resp.head, "WWW-Authenticate"));
  wc_ws_free(w);
  /* identity mismatch and bad instance format */
  char *bob = fx_token("bob");
  expect_status(wc_client("alice.tab1", bob), 403, "Forbidden: identity mismatch");
  expect_status(wc_client("bob", bob), 403,
                "Forbidden: invalid instance name format (expected sub.tabId)");
  free(bob);
  /* no sub, wrong audience, not approved, expired */
  char *t = fx_token_ex(NULL, 3600, NULL, NULL);
  w = wc_client("alice.tab1", t);
  assert_int_equal(w->resp.status, 401);
  assert_non_null(strstr(w->resp.body, "Token missing subject claim"));
  wc_ws_free(w);
  free(t);
  t = fx_token_ex("alice", 3600, NULL, "https://elsewhere");
  w = wc_client("alice.tab1", t);
  assert_non_null(strstr(w->resp.body, "Token audience mismatch"));
  wc_ws_free(w);
  free(t);
  t = fx_token_ex("alice", 3600, "{\"adminApproved\":false}", NULL);
  expect_status(wc_client("alice.tab1", t), 403,
                "{\"error\":\"access_denied\",\"error_description\":\"Account not yet approved\"}");
  free(t);
  t = fx_token_ex("alice", -10, NULL, NULL);
  w = wc_client("alice.tab1", t);
  assert_int_equal(w->resp.status, 401);
  assert_non_null(strstr(w->resp.body, "invalid_token"));
  wc_ws_free(w);
  free(t);
  /* missing instance: the routing answer */
  r = wc_http("GET", "/gateway/LUMENIZE_CLIENT_GATEWAY", NULL);
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "\"code\":\"MISSING_INSTANCE_NAME\""));
  wc_resp_free(&r);
  assert_int_equal(H.accepts, 0); /* the hook never saw a refused token */
}

static void test_connect_and_kebab_binding(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  char *tok = fx_token("carol");
  char proto[2048];
  snprintf(proto, sizeof proto, "lmz, lmz.access-token.%s", tok);
  struct wc_ws *k = wc_ws_open("/gateway/lumenize-client-gateway/carol.t", proto, NULL);
  assert_int_equal(k->resp.status, 101);
  char *m = wc_ws_recv(k, WC_DEADLINE_MS);
  assert_string_equal(m, "{\"type\":\"connection_status\",\"subscriptionRequired\":true}");
  free(m);
  /* only the token offered: accepted without echoing a subprotocol */
  snprintf(proto, sizeof proto, "lmz.access-token.%s", tok);
  struct wc_ws *k2 = wc_ws_open("/gateway/LUMENIZE_CLIENT_GATEWAY/carol.u", proto, NULL);
  assert_int_equal(k2->resp.status, 101);
  assert_null(wc_header(k2->resp.head, "Sec-WebSocket-Protocol"));
  free(tok);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.accepted, 3);
  assert_int_equal(st.sockets_open, 3);
  assert_int_equal(H.accepts, 3);
  wc_ws_free(k2);
  wc_ws_free(k);
  wc_ws_free(w);
}

static void test_ping_and_ignored_frames(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  wc_ws_text(w, "lmz:ping");
  char *m = wc_ws_recv(w, WC_DEADLINE_MS);
  assert_string_equal(m, "lmz:pong");
  free(m);
  wc_ws_text(w, "{not json");
  wc_ws_text(w, "{\"type\":\"mystery\"}");
  wc_ws_text(w, "[1,2]");
  wc_ws_text(w, "{\"type\":\"incoming_call_response\",\"callId\":\"nope\",\"success\":true}");
  wc_ws_frame(w, 2, "\x01\x02", 2);
  wc_ws_text(w, "lmz:ping");
  m = wc_ws_recv(w, WC_DEADLINE_MS); /* still usable, nothing else came */
  assert_string_equal(m, "lmz:pong");
  free(m);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.frames_ignored, 5);
  assert_int_equal(st.pings, 2);
  wc_ws_free(w);
}

/* ---- supersession -------------------------------------------------------- */

static void test_supersession(void **state) {
  (void)state;
  struct wc_ws *a = connect_ok("alice", "alice.tab1", true);
  struct wc_ws *b = connect_ok("alice", "alice.tab1", false);
  assert_null(wc_ws_recv(a, WC_DEADLINE_MS));
  assert_true(a->closed);
  assert_int_equal(a->close_code, 4409);
  assert_string_equal(a->close_reason, "Superseded by new connection");
  wc_ws_free(a);
  /* mesh calls now go to the new socket */
  struct reply r;
  call_client("alice.tab1", "to-b", &r);
  answer(b, expect_incoming(b, "to-b"), "from-b");
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_true(r.ok);
  assert_string_equal(lmz_get_str(r.v, NULL), "from-b");
  reply_free(&r);
  /* the 4409 close started no grace period: closing b does */
  wc_ws_close(b, 1000);
  wc_ws_free(b);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.superseded, 1);
  struct wc_ws *c = connect_ok("alice", "alice.tab1", false); /* in grace */
  wc_ws_free(c);
}

/* ---- client -> mesh (2.4) ------------------------------------------------ */

static void test_client_call_context(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  lmz_arena *a = lmz_arena_new();
  /* a forged origin is replaced; the client's state arrives (plus the
   * hook's); originAuth comes from the verified token */
  lmz_json *m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"test-call-1\",\"binding\":\"COUNTER_DO\","
      "\"instance\":\"x\",\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"whoami\"},"
      "{\"type\":\"apply\",\"args\":[]}],\"meta\":{}},\"callContext\":{\"callChain\":"
      "[{\"type\":\"LumenizeDO\",\"bindingName\":\"ADMIN_DO\",\"instanceName\":\"root\"}],"
      "\"state\":{\"json\":{\"k\":1},\"meta\":{}}}}");
  assert_string_equal(jstr(m, "callId"), "test-call-1");
  assert_true(jtrue(m, "success"));
  assert_string_equal(jstr(m, "result.json.callChain.0.type"), "LumenizeClient");
  assert_string_equal(jstr(m, "result.json.callChain.0.bindingName"), GW);
  assert_string_equal(jstr(m, "result.json.callChain.0.instanceName"), "alice.tab1");
  assert_null(jget(m, "result.json.callChain.1"));
  assert_string_equal(jstr(m, "result.json.originAuth.sub"), "alice");
  assert_true(jtrue(m, "result.json.originAuth.claims.emailVerified"));
  assert_true(jtrue(m, "result.json.originAuth.claims.adminApproved"));
  assert_string_equal(jstr(m, "result.json.originAuth.claims.role"), "editor");
  assert_non_null(jstr(m, "result.json.originAuth.claims.jti"));
  assert_int_equal((int)jget(m, "result.json.state.k")->u.num, 1);
  assert_true(jtrue(m, "result.json.state.injected"));
  /* later hops of the client's chain are kept (2.4) */
  m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"c2\",\"binding\":\"COUNTER_DO\",\"instance\":\"x\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"whoami\"},{\"type\":\"apply\","
      "\"args\":[]}],\"meta\":{}},\"callContext\":{\"callChain\":[{\"type\":\"LumenizeDO\","
      "\"bindingName\":\"DOC_DO\",\"instanceName\":\"d\"},{\"type\":\"LumenizeClient\","
      "\"bindingName\":\"" GW "\",\"instanceName\":\"alice.tab1\"}]}}");
  assert_true(jtrue(m, "success"));
  assert_string_equal(jstr(m, "result.json.callChain.0.instanceName"), "alice.tab1");
  assert_string_equal(jstr(m, "result.json.callChain.1.type"), "LumenizeClient");
  assert_int_equal(H.to_mesh, 2);
  lmz_arena_free(a);
  wc_ws_free(w);
}

static bool is_hex_id(const char *s, size_t n) {
  if (!s || strlen(s) != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!strchr("0123456789abcdef", s[i]))
      return false;
  return true;
}

/* Tracing (issue 13 item 6): a client's call starts a trace at the gateway,
 * or keeps a well-formed callContext.traceId the client sent (a malformed
 * one is replaced); call_response names it (traceId, an lmz addition), the
 * callee's context value has it, and a call the callee makes to a client
 * arrives with it in the incoming_call's callContext. */
static void test_client_call_trace(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  lmz_arena *a = lmz_arena_new();
  static const char *const T = "4bf92f3577b34da6a3ce929d0e0e4736";
#define WHOAMI(id, cc)                                                          \
  "{\"type\":\"call\",\"callId\":\"" id "\",\"binding\":\"COUNTER_DO\","            \
  "\"instance\":\"x\",\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"whoami\"},"  \
  "{\"type\":\"apply\",\"args\":[]}],\"meta\":{}}" cc "}"
  lmz_json *m = client_call(w, a, WHOAMI("t1", ",\"callContext\":{\"traceId\":"
                                               "\"4bf92f3577b34da6a3ce929d0e0e4736\"}"));
  assert_true(jtrue(m, "success"));
  assert_string_equal(jstr(m, "traceId"), T);
  assert_string_equal(jstr(m, "result.json.traceId"), T);
  assert_true(is_hex_id(jstr(m, "result.json.callId"), 16));
  /* hostile: upper case, then a log-forging newline: replaced */
  static const char *const bad[] = {
      WHOAMI("t2", ",\"callContext\":{\"traceId\":\"4BF92F3577B34DA6A3CE929D0E0E4736\"}"),
      WHOAMI("t3", ",\"callContext\":{\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\\n\"}"),
      WHOAMI("t4", ",\"callContext\":{\"traceId\":7}"),
      WHOAMI("t5", "")};
  char prev[40] = "";
  for (int i = 0; i < 4; i++) {
    m = client_call(w, a, bad[i]);
    assert_true(jtrue(m, "success"));
    const char *t = jstr(m, "traceId");
    assert_true(is_hex_id(t, 32));
    assert_string_not_equal(t, T);
    assert_string_not_equal(t, prev);
    assert_string_equal(jstr(m, "result.json.traceId"), t);
    snprintf(prev, sizeof prev, "%s", t);
  }
#undef WHOAMI
  /* client -> PUSHER_DO -> back to the client: one trace */
  m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"push\",\"binding\":\"PUSHER_DO\",\"instance\":\"p\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"push\"},{\"type\":\"apply\",\"args\":"
      "[\"alice.tab1\",\"hello\"]}],\"meta\":{}},\"callContext\":{\"traceId\":"
      "\"0af7651916cd43dd8448eb211c80319c\"}}");
  assert_string_equal(jstr(m, "traceId"), "0af7651916cd43dd8448eb211c80319c");
  m = wc_ws_json(w, a);
  assert_string_equal(jstr(m, "type"), "incoming_call");
  assert_string_equal(jstr(m, "callContext.traceId"), "0af7651916cd43dd8448eb211c80319c");
  assert_true(is_hex_id(jstr(m, "callContext.callId"), 16));
  answer(w, jstr(m, "callId"), "ack");
  lmz_arena_free(a);
  wc_ws_free(w);
}

static void test_client_call_outcomes(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  lmz_arena *a = lmz_arena_new();
  /* a worker: no instance */
  lmz_json *m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"w1\",\"binding\":\"ECHO_WORKER\",\"chain\":"
      "{\"json\":[{\"type\":\"get\",\"key\":\"echo\"},{\"type\":\"apply\",\"args\":"
      "[{\"$type\":\"map\",\"entries\":[[\"k\",{\"$type\":\"bigint\",\"value\":\"12\"}]]}]}],"
      "\"meta\":{}}}");
  assert_true(jtrue(m, "success"));
  assert_string_equal(jstr(m, "result.json.$type"), "map");
  assert_string_equal(jstr(m, "result.json.entries.0.1.value"), "12");
  /* a remote throw: structured error */
  m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"f1\",\"binding\":\"COUNTER_DO\",\"instance\":\"x\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"fail\"},{\"type\":\"apply\","
      "\"args\":[\"boom\"]}],\"meta\":{}}}");
  assert_false(jtrue(m, "success"));
  assert_string_equal(jstr(m, "error.json.$type"), "error");
  assert_string_equal(jstr(m, "error.json.name"), "CounterError");
  assert_string_equal(jstr(m, "error.json.message"), "boom");
  assert_string_equal(jstr(m, "error.json.code"), "E_COUNTER");
  /* target validation, malformed calls, the refusing hook */
  m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"u1\",\"binding\":\"NOPE\",\"instance\":\"x\","
      "\"chain\":{\"json\":[],\"meta\":{}}}");
  assert_false(jtrue(m, "success"));
  assert_string_equal(jstr(m, "error.json.message"), "lmz.call: no binding named 'NOPE' in env.");
  m = client_call(w, a, "{\"type\":\"call\",\"callId\":\"u2\",\"instance\":\"x\","
                        "\"chain\":{\"json\":[],\"meta\":{}}}");
  assert_string_equal(jstr(m, "error.json.message"), "Invalid call: binding must be a string");
  m = client_call(w, a, "{\"type\":\"call\",\"callId\":\"u3\",\"binding\":\"COUNTER_DO\","
                        "\"instance\":\"x\",\"chain\":{\"json\":{\"$ref\":99},\"meta\":{}}}");
  assert_false(jtrue(m, "success"));
  assert_non_null(strstr(jstr(m, "error.json.message"), "malformed chain"));
  m = client_call(w, a, "{\"type\":\"call\",\"callId\":\"u4\",\"binding\":\"COUNTER_DO\","
                        "\"instance\":\"x\",\"chain\":{\"json\":[],\"meta\":{}},"
                        "\"callContext\":{\"state\":{\"json\":[1],\"meta\":{}}}}");
  assert_string_equal(jstr(m, "error.json.message"), "callContext.state must be a plain object");
  m = client_call(w, a, "{\"type\":\"call\",\"callId\":\"u6\",\"binding\":\"COUNTER_DO\","
                        "\"instance\":\"x\",\"chain\":{\"json\":[],\"meta\":{}},"
                        "\"callContext\":{\"callChain\":[{},{\"type\":\"Hacker\","
                        "\"bindingName\":\"X\"}]}}");
  assert_string_equal(jstr(m, "error.json.message"), "invalid identity in callContext.callChain");
  m = client_call(w, a, "{\"type\":\"call\",\"callId\":\"u5\",\"binding\":\"COUNTER_DO\","
                        "\"instance\":\"refused\",\"chain\":{\"json\":[],\"meta\":{}}}");
  assert_string_equal(jstr(m, "error.json.name"), "HookError");
  /* pipelined calls: all answered, in any order */
  for (int i = 0; i < 20; i++) {
    char f[256];
    snprintf(f, sizeof f, "{\"type\":\"call\",\"callId\":\"p%d\",\"binding\":\"COUNTER_DO\","
                          "\"instance\":\"p\",\"chain\":{\"json\":[{\"type\":\"get\",\"key\":"
                          "\"increment\"},{\"type\":\"apply\",\"args\":[1]}],\"meta\":{}}}", i);
    wc_ws_text(w, f);
  }
  double max = 0;
  for (int i = 0; i < 20; i++) {
    m = wc_ws_json(w, a);
    assert_true(jtrue(m, "success"));
    double v = jget(m, "result.json")->u.num;
    max = v > max ? v : max;
  }
  assert_true(max == 20.0);
  lmz_arena_free(a);
  wc_ws_free(w);
}

/* ---- token expiry (4401) ------------------------------------------------- */

static void test_token_expiry(void **state) {
  (void)state;
  char *t = fx_token_ex("alice", 60, NULL, NULL);
  struct wc_ws *w = wc_client("alice.tab1", t);
  free(t);
  assert_int_equal(w->resp.status, 101);
  free(wc_ws_recv(w, WC_DEADLINE_MS)); /* connection_status */
  F->now_ms += 120 * 1000.0;
  wc_ws_text(w, "lmz:ping"); /* the heartbeat is answered regardless */
  char *m = wc_ws_recv(w, WC_DEADLINE_MS);
  assert_string_equal(m, "lmz:pong");
  free(m);
  wc_ws_text(w, "{\"type\":\"mystery\"}");
  assert_null(wc_ws_recv(w, WC_DEADLINE_MS));
  assert_int_equal(w->close_code, 4401);
  assert_string_equal(w->close_reason, "Token expired");
  wc_ws_free(w);
  /* a mesh call to an expired client: error + 4401 */
  t = fx_token_ex("dave", 60, NULL, NULL);
  w = wc_client("dave.t", t);
  free(t);
  free(wc_ws_recv(w, WC_DEADLINE_MS));
  F->now_ms += 120 * 1000.0;
  struct reply r;
  call_client("dave.t", "x", &r);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Client token expired", "dave.t");
  reply_free(&r);
  assert_null(wc_ws_recv(w, WC_DEADLINE_MS));
  assert_int_equal(w->close_code, 4401);
  wc_ws_free(w);
}

/* ---- mesh -> client ------------------------------------------------------ */

static void test_mesh_to_client(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  struct reply r;
  call_client("alice.tab1", "hi", &r);
  const char *id = expect_incoming(w, "hi");
  assert_false(r.done);
  answer(w, id, "pong");
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_true(r.ok);
  assert_string_equal(lmz_get_str(r.v, NULL), "pong");
  reply_free(&r);
  /* the client's handler throws: the caller gets its error */
  call_client("alice.tab1", "err", &r);
  id = expect_incoming(w, "err");
  char buf[512];
  snprintf(buf, sizeof buf,
           "{\"type\":\"incoming_call_response\",\"callId\":\"%s\",\"success\":false,"
           "\"error\":{\"json\":{\"$type\":\"error\",\"name\":\"TypeError\",\"message\":"
           "\"bad\"},\"meta\":{}}}", id);
  wc_ws_text(w, buf);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_false(r.ok);
  assert_string_equal(lmz_error_name(r.v), "TypeError");
  assert_string_equal(lmz_error_message(r.v), "bad");
  reply_free(&r);
  /* a DO calls the client with lmz_call: callChain ends with the DO */
  lmz_arena *a = lmz_arena_new();
  lmz_json *m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"push\",\"binding\":\"PUSHER_DO\",\"instance\":\"p\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"push\"},{\"type\":\"apply\",\"args\":"
      "[\"alice.tab1\",\"hello\"]}],\"meta\":{}}}");
  assert_string_equal(jstr(m, "result.json"), "sent");
  m = wc_ws_json(w, a);
  assert_string_equal(jstr(m, "type"), "incoming_call");
  assert_string_equal(jstr(m, "callContext.callChain.0.instanceName"), "alice.tab1");
  assert_string_equal(jstr(m, "callContext.callChain.1.bindingName"), "PUSHER_DO");
  assert_string_equal(jstr(m, "callContext.originAuth.sub"), "alice");
  assert_string_equal(jstr(m, "callContext.originAuth.claims.role"), "editor");
  answer(w, jstr(m, "callId"), "ack");
  lmz_value *last = NULL; /* the handler stores the answer */
  uint64_t end = tl_now_ms() + WC_DEADLINE_MS;
  while (lmz_node_kv_peek(F->node, "PUSHER_DO", "p", "last", a, &last) &&
         tl_now_ms() < end)
    wc_pump(2);
  assert_non_null(last);
  assert_string_equal(lmz_get_str(last, NULL), "ack");
  lmz_arena_free(a);
  wc_ws_free(w);
}

static void test_not_connected(void **state) {
  (void)state;
  struct reply r;
  call_client("bob.tab1", "x", &r);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Client is not connected", "bob.tab1");
  reply_free(&r);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.not_connected, 1);
}

static void test_call_timeout(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  struct reply r;
  call_client("alice.tab1", "silent", &r);
  const char *id = expect_incoming(w, "silent");
  char late[64];
  snprintf(late, sizeof late, "%s", id);
  move_clock(TIMEOUT_MS - 1); /* not yet */
  wc_pump(20);
  assert_false(r.done);
  move_clock(1); /* the deadline */
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Client call timed out", "alice.tab1");
  reply_free(&r);
  answer(w, late, "too late"); /* unknown by now: ignored */
  wc_ws_text(w, "lmz:ping");   /* the socket stays open */
  char *m = wc_ws_recv(w, WC_DEADLINE_MS);
  assert_string_equal(m, "lmz:pong");
  free(m);
  wc_ws_free(w);
}

static void test_drop_fails_relayed_calls(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  struct reply r;
  call_client("alice.tab1", "lost", &r);
  expect_incoming(w, "lost");
  wc_ws_close(w, 1000);
  wc_ws_free(w);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  /* failed by the drop, not by the call timeout (that one says "Client
   * call timed out"): the message tells, no stopwatch needed */
  assert_disconnected(&r, "Client disconnected", "alice.tab1");
  reply_free(&r);
}

/* The client's own call still running when its socket drops: the answer
 * is dropped (counted), nothing crashes. */
static void test_drop_client_inflight(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  /* bob's client is called by alice's call and never answers in time */
  struct wc_ws *b = connect_ok("bob", "bob.t", true);
  wc_ws_text(w, "{\"type\":\"call\",\"callId\":\"relay\",\"binding\":\"" GW "\","
                "\"instance\":\"bob.t\",\"chain\":{\"json\":[{\"type\":\"get\",\"key\":"
                "\"handle\"},{\"type\":\"apply\",\"args\":[\"via-alice\"]}],\"meta\":{}}}");
  lmz_arena *a = lmz_arena_new();
  lmz_json *m = wc_ws_json(b, a);
  assert_string_equal(jstr(m, "type"), "incoming_call");
  assert_string_equal(jstr(m, "callContext.callChain.0.instanceName"), "alice.tab1");
  char id[64];
  snprintf(id, sizeof id, "%s", jstr(m, "callId"));
  wc_ws_close(w, 1000);
  wc_ws_free(w);
  answer(b, id, "late");
  wc_pump(50);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.client_replies_dropped, 1);
  lmz_arena_free(a);
  wc_ws_free(b);
}

/* ---- grace period -------------------------------------------------------- */

static void test_grace_hold_and_deliver(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  wc_ws_close(w, 1000);
  wc_ws_free(w);
  struct reply r;
  call_client("alice.tab1", "held", &r);
  wc_pump(20);
  assert_false(r.done); /* held for the reconnect */
  w = connect_ok("alice", "alice.tab1", false);
  answer(w, expect_incoming(w, "held"), "delivered");
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_true(r.ok);
  assert_string_equal(lmz_get_str(r.v, NULL), "delivered");
  reply_free(&r);
  wc_ws_free(w);
}

static void test_grace_expiry(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  wc_ws_close(w, 1000);
  wc_ws_free(w);
  struct reply r;
  call_client("alice.tab1", "never", &r);
  move_clock(GRACE_MS - 1); /* not yet: the call stays held */
  wc_pump(20);
  assert_false(r.done);
  move_clock(1); /* the grace period is over */
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Client did not reconnect within grace period", "alice.tab1");
  reply_free(&r);
  w = connect_ok("alice", "alice.tab1", true); /* after the grace period */
  wc_ws_free(w);
  /* a closed client past grace: immediate not-connected */
  move_clock(GRACE_MS);
  wc_pump(20);
  call_client("alice.tab1", "x", &r);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Client is not connected", "alice.tab1");
  reply_free(&r);
  struct lmz_gateway_stats st;
  lmz_gateway_get_stats(F->gw, &st);
  assert_int_equal(st.clients, 0);
}

/* ---- large messages (issue 13 item 4) ------------------------------------- */

/* Whatever is too large for a socket fails its call with "Message is too
 * large" instead of leaving it unanswered; a client message over the cap
 * closes the socket with 1009 and that reason. */
static void test_large_messages(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  lmz_arena *a = lmz_arena_new();
  /* an answer over the 4 MiB output cap: an error answer, not silence */
  lmz_json *m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"b1\",\"binding\":\"PUSHER_DO\",\"instance\":\"p\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"big\"},{\"type\":\"apply\","
      "\"args\":[5000000]}],\"meta\":{}}}");
  assert_string_equal(jstr(m, "callId"), "b1");
  assert_false(jtrue(m, "success"));
  assert_string_equal(jstr(m, "error.json.message"), "Message is too large");
  /* one that fits still comes back */
  m = client_call(w, a,
      "{\"type\":\"call\",\"callId\":\"b2\",\"binding\":\"PUSHER_DO\",\"instance\":\"p\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"big\"},{\"type\":\"apply\","
      "\"args\":[1000000]}],\"meta\":{}}}");
  assert_true(jtrue(m, "success"));
  assert_int_equal(strlen(jstr(m, "result.json")), 1000000);
  /* a mesh call whose frame to the client is over the cap */
  char *big = malloc(5000001);
  assert_non_null(big);
  memset(big, 'm', 5000000);
  big[5000000] = 0;
  struct reply r;
  call_client("alice.tab1", big, &r);
  free(big);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_disconnected(&r, "Message is too large", "alice.tab1");
  reply_free(&r);
  /* a client message over max_message: 1009 with the reason */
  size_t n = SMALL_MAX + 1;
  char *frame = malloc(n);
  assert_non_null(frame);
  memset(frame, ' ', n);
  wc_ws_frame(w, 1, frame, n);
  free(frame);
  assert_null(wc_ws_recv(w, WC_DEADLINE_MS));
  assert_int_equal(w->close_code, 1009);
  assert_string_equal(w->close_reason, "Message is too large");
  wc_ws_free(w);
  lmz_arena_free(a);
}

/* A call frame to pusher big(10, [...]) whose array is `extra` bytes of
 * `item`s (each with its comma; the last one's comma is dropped). */
static char *big_call(const char *id, const char *item, size_t extra, size_t *len) {
  char pre[256];
  int np = snprintf(pre, sizeof pre,
      "{\"type\":\"call\",\"callId\":\"%s\",\"binding\":\"PUSHER_DO\",\"instance\":\"p\","
      "\"chain\":{\"json\":[{\"type\":\"get\",\"key\":\"big\"},{\"type\":\"apply\","
      "\"args\":[10,[", id);
  const char *post = "]]}],\"meta\":{}}}";
  size_t il = strlen(item), n = extra / il * il, pl = strlen(post);
  char *f = malloc((size_t)np + n + pl);
  assert_non_null(f);
  memcpy(f, pre, (size_t)np);
  for (size_t i = 0; i < n; i += il)
    memcpy(f + np + i, item, il);
  memcpy(f + np + n - 1, post, pl); /* over the last comma */
  *len = (size_t)np + n - 1 + pl;
  return f;
}

/* Hostile density: a 4 MiB frame of tiny elements ([0,0,...] as argument)
 * would take ~20x its size as a DOM; it is over the frame's memory budget
 * (8x + 16 MiB), and the socket is closed with 1009 as for an oversize
 * message. A call with 1 MiB of ordinary numbers still succeeds. */
static void test_dense_frame_closes(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  lmz_arena *a = lmz_arena_new();
  size_t len;
  char *f = big_call("n1", "1234.56,", (size_t)1 << 20, &len);
  wc_ws_frame(w, 1, f, len);
  free(f);
  lmz_json *m = wc_ws_json(w, a);
  assert_string_equal(jstr(m, "callId"), "n1");
  assert_true(jtrue(m, "success"));
  assert_string_equal(jstr(m, "result.json"), "bbbbbbbbbb");
  f = big_call("d1", "0,", (size_t)4 << 20, &len);
  wc_ws_frame(w, 1, f, len);
  free(f);
  assert_null(wc_ws_recv(w, WC_DEADLINE_MS));
  assert_int_equal(w->close_code, 1009);
  assert_string_equal(w->close_reason, "Message is too large");
  wc_ws_free(w);
  lmz_arena_free(a);
}

/* max_message outside 1 KiB..64 MiB is refused at init. */
static void test_max_message_bounds(void **state) {
  (void)state;
  size_t bad[] = {LMZ_GATEWAY_MAX_MESSAGE_MIN - 1, LMZ_GATEWAY_MAX_MESSAGE_LIMIT + 1};
  for (size_t i = 0; i < 2; i++) {
    struct lmz_gateway_opts go = {.binding = "OTHER_GW", .max_message = bad[i],
                                  .keyset = &F->ks};
    lmz_gateway_t gw;
    char err[LMZ_ERRMSG_LEN] = "";
    assert_int_equal(lmz_gateway_init(&F->loop, &gw, F->node, &go, err), LMZ_EINVAL);
    assert_non_null(strstr(err, "max_message"));
  }
}

/* ---- a failed init leaves nothing on the loop ---------------------------- */

static void count_handle(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

/* Handles on the loop, closing ones included (uv_walk lists a handle until
 * its close has finished, which takes a loop iteration). */
static int loop_handles(void) {
  int n = 0;
  uv_walk(&F->loop, count_handle, &n);
  return n;
}

/* A second gateway on the fixture's node fails: its port is taken (with and
 * without the bot check's HTTP client), or the class LumenizeClientGateway
 * is (the fixture's gateway registered it). Each time init returns with no
 * handle added to the loop, not even a closing one, binds nothing, and the
 * memory is freed at once (ASan: nothing refers to it afterwards); the
 * fixture's gateway still answers. */
static void test_init_failure_leaves_nothing(void **state) {
  (void)state;
  struct {
    int port;
    const char *bot_secret;
    int want;
  } cases[] = {{F->port, NULL, UV_EADDRINUSE},
               {F->port, "s3cret", UV_EADDRINUSE},
               {0, NULL, LMZ_EEXIST}};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    struct lmz_gateway_opts go = {.binding = "OTHER_GW", .port = cases[i].port,
                                  .keyset = &F->ks,
                                  .bot_check = {.secret = cases[i].bot_secret,
                                                .endpoint = "http://127.0.0.1:9/"}};
    char err[LMZ_ERRMSG_LEN] = "";
    int before = loop_handles();
    lmz_gateway_t *gw = malloc(sizeof *gw);
    assert_non_null(gw);
    assert_int_equal(lmz_gateway_init(&F->loop, gw, F->node, &go, err), cases[i].want);
    assert_true(err[0] != '\0');
    assert_int_equal(loop_handles(), before);
    assert_false(lmz_node_binding_kind(F->node, "OTHER_GW", NULL));
    free(gw);
    for (int k = 0; k < 3; k++)
      uv_run(&F->loop, UV_RUN_NOWAIT);
  }
  struct wc_resp r = wc_http("GET", "/_lmz/status", NULL);
  assert_int_equal(r.status, 200);
  wc_resp_free(&r);
}

/* ---- hooks --------------------------------------------------------------- */

static void test_hooks(void **state) {
  (void)state;
  char *t = fx_token("blocked");
  struct wc_ws *w = wc_client("blocked.tab", t);
  free(t);
  assert_int_equal(w->resp.status, 403);
  assert_string_equal(w->resp.body, "Forbidden: blocked by hook");
  wc_ws_free(w);
  w = connect_ok("alice", "alice.tab1", true);
  struct reply r;
  call_client_from("alice.tab1", "BLOCKED_DO", "x", &r);
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_false(r.ok);
  assert_string_equal(lmz_error_message(r.v), "Blocked caller");
  reply_free(&r);
  call_client_from("alice.tab1", "PUSHER_DO", "ok", &r);
  answer(w, expect_incoming(w, "ok"), "fine");
  assert_true(wc_wait(&r.done, WC_DEADLINE_MS));
  assert_true(r.ok);
  reply_free(&r);
  assert_int_equal(H.to_client, 2);
  wc_ws_free(w);
}

/* ---- close with live sockets and held calls ------------------------------ */

static void test_close_with_clients(void **state) {
  (void)state;
  struct wc_ws *w = connect_ok("alice", "alice.tab1", true);
  struct wc_ws *g = connect_ok("gina", "gina.t", true);
  wc_ws_close(g, 1000);
  wc_ws_free(g);
  struct reply r1, r2;
  call_client("alice.tab1", "pending", &r1);
  expect_incoming(w, "pending");
  call_client("gina.t", "held", &r2);
  wc_pump(10);
  lmz_gateway_close(F->gw, fx_gw_closed, F);
  assert_true(wc_wait(&F->gw_closed, WC_DEADLINE_MS));
  assert_disconnected(&r1, "Client disconnected", "alice.tab1");
  assert_disconnected(&r2, "Client is not connected", "gina.t");
  assert_null(wc_ws_recv(w, WC_DEADLINE_MS));
  assert_int_equal(w->close_code, 1001);
  reply_free(&r1);
  reply_free(&r2);
  /* calls after close fail at once */
  call_client("alice.tab1", "after", &r1);
  assert_true(wc_wait(&r1.done, WC_DEADLINE_MS));
  assert_disconnected(&r1, "Client is not connected", "alice.tab1");
  reply_free(&r1);
  wc_ws_free(w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_handshake_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_connect_and_kebab_binding, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ping_and_ignored_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_supersession, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_call_context, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_call_trace, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_call_outcomes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_token_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mesh_to_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_not_connected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_call_timeout, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drop_fails_relayed_calls, setup, teardown),
      cmocka_unit_test_setup_teardown(test_drop_client_inflight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_grace_hold_and_deliver, setup, teardown),
      cmocka_unit_test_setup_teardown(test_grace_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hooks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_large_messages, setup_small, teardown),
      cmocka_unit_test_setup_teardown(test_dense_frame_closes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_message_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_init_failure_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_with_clients, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
