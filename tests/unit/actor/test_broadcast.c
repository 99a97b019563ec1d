/* tests/unit/actor/test_broadcast.c - lmz_broadcast (actor/broadcast.c,
 * broadcast_in.c) through the router on a cluster on fake time: a real
 * node (node 2: temp RocksDB, the counter example, whose broadcast()
 * method calls lmz_broadcast) and simulated nodes 1 and 3 whose frames the
 * test reads and answers (the router's send hook takes what the node would
 * put on its links). Placements are written straight into every directory
 * replica, so each test knows who owns what. Checked:
 *   - one Broadcast frame per other owner node, none per target; the
 *     node's own targets run here exactly once;
 *   - a target answered MOVED is routed again alone (here: its placement
 *     moved to this node, so it runs here), the others are not resent;
 *   - per-target outcomes reach the on_result handler, one per target;
 *   - a group over LMZ_BROADCAST_FRAME_TARGETS goes out in several frames;
 *   - the broadcasting turn's commit fails: nothing is sent, every target's
 *     outcome is that StorageError;
 *   - receiving: owned targets run, the others are answered MOVED per
 *     target, outcomes come back with `final`; an operator's frame is
 *     refused whole, and so is a hostile one (bad version, undecodable
 *     chain, unknown binding, empty instance name per target). */
#include "unit/cluster/simdir.h"

#include "actor/broadcast_int.h"
#include "actor/router.h"
#include "core/codec.h"
#include "lmz/testing.h"
#include "storage/store_int.h" /* lmz__store_fail_writes */
#include "examples/counter/counter.c"

#include "unit/actor/routerfix.h"

#define MAXCAP 64

struct cap {
  size_t n;
  uint64_t peer[MAXCAP];
  Lmz__Frame *f[MAXCAP];
};

static struct cap C;

/* The send hook: keeps a decoded copy of every frame. */
static int capture(void *arg, uint64_t peer, const Lmz__Frame *f) {
  (void)arg;
  lmz_buf b = LMZ_BUF_INIT;
  assert_true(lmz_frame_append(&b, f, 0) > 0);
  assert_true(C.n < MAXCAP);
  assert_int_equal(lmz_frame_unpack(b.data + LMZ_FRAME_HDR_LEN,
                                    b.len - LMZ_FRAME_HDR_LEN, &C.f[C.n]), 0);
  C.peer[C.n++] = peer;
  lmz_buf_free(&b);
  return 0;
}

static void cap_reset(void) {
  for (size_t i = 0; i < C.n; i++)
    lmz_frame_free(C.f[i]);
  C.n = 0;
}

static size_t cap_count(int body_case) {
  size_t k = 0;
  for (size_t i = 0; i < C.n; i++)
    k += C.f[i]->body_case == (Lmz__Frame__BodyCase)body_case;
  return k;
}

/* Index of the k-th frame of `body_case` to `peer`, or -1. */
static int cap_find(int body_case, uint64_t peer, int k) {
  for (size_t i = 0; i < C.n; i++)
    if (C.f[i]->body_case == (Lmz__Frame__BodyCase)body_case && C.peer[i] == peer &&
        k-- == 0)
      return (int)i;
  return -1;
}

static uint64_t next_req = 1000;

static void apply_all(struct fx *x, lmz_buf *cmd) {
  for (size_t i = 0; i < x->s->count; i++) {
    const struct lmz_dir_result *r;
    assert_int_equal(lmz_dir_apply(x->s->n[i].dir, cmd->data, cmd->len, &r), 0);
  }
  lmz_buf_free(cmd);
}

/* Places COUNTER_DO/<names[i]> on nodes[i], in every replica. */
static void place(struct fx *x, const char *const *names, const uint64_t *nodes,
                  size_t n) {
  struct lmz_dir_claim *cl = calloc(n, sizeof *cl);
  for (size_t i = 0; i < n; i++)
    cl[i] = (struct lmz_dir_claim){"COUNTER_DO", 10, names[i], strlen(names[i]),
                                   nodes[i], ++next_req, 0, 0, NULL};
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_claims(&cmd, cl, n), 0);
  apply_all(x, &cmd);
  free(cl);
}

static uint64_t epoch_of(struct fx *x, const char *inst, uint64_t *owner) {
  uint64_t o = 0, e = 0;
  assert_int_equal(lmz_dir_lookup(lmz_cluster_dir(&x->c), "COUNTER_DO", 10, inst,
                                  strlen(inst), &o, &e), 0);
  if (owner)
    *owner = o;
  return e;
}

static void move_to(struct fx *x, const char *inst, uint64_t to) {
  uint64_t from = 0, e = epoch_of(x, inst, &from);
  struct lmz_dir_move mv = {"COUNTER_DO", 10, inst, strlen(inst), from, to, e,
                            ++next_req, true}; /* graceful: node 1 agrees */
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_moves(&cmd, &mv, 1), 0);
  apply_all(x, &cmd);
}

/* Three simulated nodes; the real one is node 2. */
static void setup3(struct fx *x) {
  memset(x, 0, sizeof *x);
  assert_int_equal(uv_loop_init(&x->loop), 0);
  x->dir = tl_mkdtemp("lmz-bcast");
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts no = {.node_id = "n2", .data_dir = x->dir};
  assert_int_equal(lmz_node_init(x->node = &x->node_mem, &x->loop, &no, err),
                   0);
  assert_int_equal(lmz_node_register_module(x->node, "counter", lmz_module_init, err), 0);
  assert_int_equal(lmz_node_bind(x->node, "COUNTER_DO", "CounterDO", LMZ_NODE_DO, err), 0);
  assert_int_equal(lmz_node_start(x->node), 0);
  x->s = sim_new(3, RL);
  sim_attach_cluster(x->s, 1, &x->c, RL);
  struct lmz_router_opts ro = {.park_timeout_ms = 3000};
  x->r = &x->r_mem;
  assert_int_equal(lmz_router_init(x->r, x->node, &x->c, &ro, err), 0);
  sim_register_all(x->s);
  lmz__router_set_send_hook(x->r, capture, NULL);
  cap_reset();
}

/* COUNTER_DO/bc.broadcast(names, by, all), the broadcaster placed here. */
static void broadcast(struct fx *x, const char *const *names, size_t n,
                      double by, bool all, struct reply *rp) {
  static const char *const bc[] = {"bc"};
  static const uint64_t here[] = {2};
  place(x, bc, here, 1);
  memset(rp, 0, sizeof *rp);
  rp->x = x;
  lmz_arena *a = lmz_node_arena_get(x->node);
  lmz_value *list = lmz_array(a, n), *args = lmz_array(a, 3);
  for (size_t i = 0; i < n; i++)
    lmz_array_push(list, lmz_cstring(a, names[i]));
  lmz_array_push(args, list);
  lmz_array_push(args, lmz_number(a, by));
  lmz_array_push(args, lmz_bool(all));
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, "broadcast"));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", args);
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call c = {.binding = "COUNTER_DO", .instance = "bc",
                            .chain = chain, .call_chain = &cli,
                            .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(x->node, &c, reply_cb, rp, err), 0);
}

static void steps(struct fx *x, int n) {
  for (int i = 0; i < n; i++)
    step(x);
}

static double total(struct fx *x, const char *inst) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = NULL;
  int rv = lmz_node_kv_peek(x->node, "COUNTER_DO", inst, "total", a, &v);
  double t = rv == 0 && v ? lmz_get_number(v) : -1;
  lmz_arena_free(a);
  return t;
}

/* An outcome entry: index, ok, a number value (or an Error when !ok). */
static void answer(struct fx *x, uint64_t peer, uint64_t batch,
                   const Lmz__BroadcastOutcome *const *o, size_t n, bool final) {
  Lmz__BroadcastResult res = LMZ__BROADCAST_RESULT__INIT;
  res.batch_id = batch;
  res.outcomes = (Lmz__BroadcastOutcome **)o;
  res.n_outcomes = n;
  res.accepted = true;
  res.final = final;
  lmz__bcast_on_result(lmz__router_bcast_rt(x->r), peer, &res);
}

static lmz_buf enc_value(lmz_value *v) {
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_bin_encode(v, &b, NULL), 0);
  return b;
}

static const char *const T9[] = {"a1", "a2", "a3", "b1", "b2", "b3", "c1", "c2", "c3"};
static const uint64_t N9[] = {1, 2, 3, 1, 2, 3, 1, 2, 3};

static void check_frame_targets(const Lmz__Broadcast *b, const char *x0,
                                const char *x1, const char *x2) {
  assert_int_equal(b->n_targets, 3);
  assert_string_equal(b->targets[0]->instance, x0);
  assert_string_equal(b->targets[1]->instance, x1);
  assert_string_equal(b->targets[2]->instance, x2);
  for (int i = 0; i < 3; i++)
    assert_true(b->targets[i]->epoch > 0);
  assert_string_equal(b->binding, "COUNTER_DO");
  assert_int_equal(b->results, 2);
  assert_non_null(b->ctx);
  assert_int_equal(b->ctx->n_call_chain, 2); /* test CLI, then bc */
  assert_string_equal(b->ctx->call_chain[1]->instance, "bc");
}

/* The outcomes the broadcaster's handler recorded, by instance. */
static void check_outcomes(struct fx *x) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *list = NULL;
  assert_int_equal(lmz_node_kv_peek(x->node, "COUNTER_DO", "bc", "broadcastResults",
                                    a, &list), 0);
  assert_non_null(list);
  assert_int_equal(lmz_len(list), 9);
  int seen[9] = {0};
  for (size_t i = 0; i < 9; i++) {
    lmz_value *o = lmz_array_get(list, i);
    const char *inst = lmz_get_str(lmz_object_getc(o, "instance"), NULL);
    assert_non_null(inst);
    int k = -1;
    for (int j = 0; j < 9; j++)
      k = strcmp(inst, T9[j]) ? k : j;
    assert_true(k >= 0);
    seen[k]++;
    bool ok = lmz_get_bool(lmz_object_getc(o, "ok"));
    if (!strcmp(inst, "b3")) { /* node 3 said it failed */
      assert_false(ok);
      assert_string_equal(lmz_error_message(lmz_object_getc(o, "error")), "boom");
    } else if (!strcmp(inst, "c3")) { /* not listed in node 3's final */
      assert_true(ok);
    } else {
      assert_true(ok);
      assert_true(lmz_get_number(lmz_object_getc(o, "result")) == 5);
    }
  }
  for (int j = 0; j < 9; j++)
    assert_int_equal(seen[j], 1); /* each target's outcome exactly once */
  lmz_arena_free(a);
}

static void test_one_frame_per_owner_moved_and_results(void **state) {
  (void)state;
  struct fx x;
  setup3(&x);
  place(&x, T9, N9, 9);
  struct reply rp;
  broadcast(&x, T9, 9, 5, true, &rp);
  steps(&x, 5);
  assert_true(rp.done && rp.ok);
  assert_true(rp.number == 9);
  /* one frame per other owner, and not a single Call */
  assert_int_equal(cap_count(LMZ__FRAME__BODY_BROADCAST), 2);
  assert_int_equal(cap_count(LMZ__FRAME__BODY_CALL), 0);
  int f1 = cap_find(LMZ__FRAME__BODY_BROADCAST, 1, 0);
  int f3 = cap_find(LMZ__FRAME__BODY_BROADCAST, 3, 0);
  assert_true(f1 >= 0 && f3 >= 0);
  check_frame_targets(C.f[f1]->broadcast, "a1", "b1", "c1");
  check_frame_targets(C.f[f3]->broadcast, "a3", "b3", "c3");
  /* this node's own targets ran here, once */
  assert_true(total(&x, "a2") == 5 && total(&x, "b2") == 5 && total(&x, "c2") == 5);

  /* node 1: b1 moved (to us); a1, c1 ran there */
  uint64_t b1_epoch = C.f[f1]->broadcast->targets[1]->epoch;
  move_to(&x, "b1", 2);
  lmz_arena *a = lmz_arena_new();
  lmz_buf five = enc_value(lmz_number(a, 5));
  lmz_buf boom = enc_value(lmz_error(a, "Error", "boom"));
  Lmz__BroadcastOutcome o1[3], o3[2];
  for (int i = 0; i < 3; i++) {
    lmz__broadcast_outcome__init(&o1[i]);
    o1[i].index = (uint32_t)i;
    o1[i].ok = true;
    o1[i].value = (ProtobufCBinaryData){five.len, five.data};
  }
  o1[1] = (Lmz__BroadcastOutcome)LMZ__BROADCAST_OUTCOME__INIT;
  o1[1].index = 1;
  o1[1].code = LMZ_EMOVED;
  o1[1].epoch = b1_epoch + 1;
  const Lmz__BroadcastOutcome *p1[] = {&o1[0], &o1[1], &o1[2]};
  uint64_t batch1 = C.f[f1]->broadcast->batch_id, batch3 = C.f[f3]->broadcast->batch_id;
  cap_reset();
  answer(&x, 1, batch1, p1, 3, true);
  /* node 3: a3 ok, b3 failed, c3 succeeded (unlisted in a final) */
  for (int i = 0; i < 2; i++) {
    lmz__broadcast_outcome__init(&o3[i]);
    o3[i].index = (uint32_t)i;
  }
  o3[0].ok = true;
  o3[0].value = (ProtobufCBinaryData){five.len, five.data};
  o3[1].value = (ProtobufCBinaryData){boom.len, boom.data};
  const Lmz__BroadcastOutcome *p3[] = {&o3[0], &o3[1]};
  answer(&x, 3, batch3, p3, 2, true);
  answer(&x, 3, batch3, p3, 2, true); /* a repeat is ignored */
  steps(&x, 3 * SIM_TICK_MS);
  /* b1 was routed again alone and ran here; nothing was resent */
  assert_true(total(&x, "b1") == 5);
  assert_int_equal(C.n, 0);
  struct lmz_router_stats st;
  lmz_router_get_stats(x.r, &st);
  assert_int_equal(st.bcast_frames_out, 2);
  assert_int_equal(st.bcast_targets_out, 6);
  assert_int_equal(st.bcast_moved, 1);
  check_outcomes(&x);
  lmz_buf_free(&five);
  lmz_buf_free(&boom);
  lmz_arena_free(a);
  cap_reset();
  teardown(&x);
}

/* More targets on one node than a frame carries: several frames. */
static void test_big_group_split(void **state) {
  (void)state;
  struct fx x;
  setup3(&x);
  size_t n = LMZ_BROADCAST_FRAME_TARGETS + 5;
  char **names = calloc(n, sizeof *names);
  uint64_t *nodes = calloc(n, sizeof *nodes);
  for (size_t i = 0; i < n; i++) {
    names[i] = malloc(16);
    snprintf(names[i], 16, "t%zu", i);
    nodes[i] = 1;
  }
  place(&x, (const char *const *)names, nodes, n);
  struct reply rp;
  broadcast(&x, (const char *const *)names, n, 1, false, &rp);
  steps(&x, 5);
  assert_true(rp.done && rp.ok);
  assert_int_equal(cap_count(LMZ__FRAME__BODY_BROADCAST), 2);
  assert_int_equal(cap_count(LMZ__FRAME__BODY_CALL), 0);
  const Lmz__Broadcast *b0 = C.f[cap_find(LMZ__FRAME__BODY_BROADCAST, 1, 0)]->broadcast;
  const Lmz__Broadcast *b1 = C.f[cap_find(LMZ__FRAME__BODY_BROADCAST, 1, 1)]->broadcast;
  assert_int_equal(b0->n_targets, LMZ_BROADCAST_FRAME_TARGETS);
  assert_int_equal(b1->n_targets, 5);
  assert_string_equal(b1->targets[4]->instance, names[n - 1]);
  assert_int_equal(b0->results, 1); /* failures only */
  uint64_t id0 = b0->batch_id, id1 = b1->batch_id;
  cap_reset();
  answer(&x, 1, id0, NULL, 0, true);
  answer(&x, 1, id1, NULL, 0, true);
  steps(&x, 3);
  lmz_arena *a = lmz_arena_new();
  lmz_value *list = NULL;
  int rv = lmz_node_kv_peek(x.node, "COUNTER_DO", "bc", "broadcastResults", a, &list);
  assert_true(rv == LMZ_ENOTFOUND || (rv == 0 && lmz_len(list) == 0));
  lmz_arena_free(a);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  free(nodes);
  teardown(&x);
}

/* The broadcasting turn writes (lastBroadcastSize); its commit fails. */
static void test_commit_failure_fails_every_target(void **state) {
  (void)state;
  struct fx x;
  setup3(&x);
  static const char *const names[] = {"a2", "a1"};
  static const uint64_t nodes[] = {2, 1};
  place(&x, names, nodes, 2);
  struct reply rp;
  lmz__store_fail_writes(x.node->store, 1); /* the next group write fails */
  broadcast(&x, names, 2, 4, false, &rp);
  steps(&x, 5);
  assert_true(rp.done && !rp.ok);
  assert_int_equal(C.n, 0); /* no frame left */
  assert_true(total(&x, "a2") == -1); /* nothing ran */
  lmz_arena *a = lmz_arena_new();
  lmz_value *list = NULL;
  assert_int_equal(lmz_node_kv_peek(x.node, "COUNTER_DO", "bc", "broadcastResults",
                                    a, &list), 0);
  assert_int_equal(lmz_len(list), 2);
  for (size_t i = 0; i < 2; i++) {
    lmz_value *o = lmz_array_get(list, i);
    assert_false(lmz_get_bool(lmz_object_getc(o, "ok")));
    /* as an lmz_call of a failed turn: "call could not be delivered: storage error" */
    assert_non_null(strstr(lmz_error_message(lmz_object_getc(o, "error")), "storage error"));
  }
  lmz_arena_free(a);
  teardown(&x);
}

/* A Broadcast frame from node 1 (results: all) for a2 (ours), a1 (node
 * 1's) and b2 at a stale epoch. */
enum { H_NONE, H_VERSION, H_CHAIN, H_BINDING, H_EMPTY_NAME };

static void receive_ex(struct fx *x, uint64_t peer, uint64_t batch, int hostile) {
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 1);
  lmz_array_push(args, lmz_number(a, 3));
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, "increment"));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", args);
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  lmz_buf cb = enc_value(chain), sb = enc_value(lmz_object(a));
  Lmz__Identity id = LMZ__IDENTITY__INIT, *ids[] = {&id};
  id.binding = "COUNTER_DO";
  id.instance = "sender";
  id.has_instance = true;
  Lmz__CallContext ctx = LMZ__CALL_CONTEXT__INIT;
  ctx.n_call_chain = 1;
  ctx.call_chain = ids;
  ctx.state = (ProtobufCBinaryData){sb.len, sb.data};
  Lmz__BroadcastTarget t[3], *tp[3];
  const char *names[] = {"a2", "a1", "b2"};
  for (int i = 0; i < 3; i++) {
    lmz__broadcast_target__init(&t[i]);
    t[i].instance = (char *)names[i];
    t[i].epoch = epoch_of(x, names[i], NULL) + (i == 2 ? 7 : 0);
    tp[i] = &t[i];
  }
  Lmz__Broadcast b = LMZ__BROADCAST__INIT;
  b.batch_id = batch;
  b.version = 1;
  b.binding = "COUNTER_DO";
  b.n_targets = 3;
  b.targets = tp;
  b.chain = (ProtobufCBinaryData){cb.len, cb.data};
  b.ctx = &ctx;
  b.results = 2;
  static const uint8_t junk[] = {0xff, 0x13, 0x37};
  if (hostile == H_VERSION)
    b.version = 2;
  if (hostile == H_CHAIN)
    b.chain = (ProtobufCBinaryData){sizeof junk, (uint8_t *)junk};
  if (hostile == H_BINDING)
    b.binding = "NOPE_DO";
  if (hostile == H_EMPTY_NAME)
    t[0].instance = "";
  lmz__bcast_on_frame(lmz__router_bcast_rt(x->r), NULL, peer, &b);
  lmz_buf_free(&cb);
  lmz_buf_free(&sb);
  lmz_arena_free(a);
}

static void receive(struct fx *x, uint64_t peer, uint64_t batch) {
  receive_ex(x, peer, batch, H_NONE);
}

/* Hostile frames: every target refused in one final answer, nothing runs
 * (an empty name refuses that target only). */
static void test_receive_hostile(void **state) {
  (void)state;
  struct fx x;
  setup3(&x);
  static const char *const names[] = {"a2", "a1", "b2"};
  static const uint64_t nodes[] = {2, 1, 2};
  place(&x, names, nodes, 3);
  static const int kinds[] = {H_VERSION, H_CHAIN, H_BINDING};
  static const int codes[] = {LMZ_EINVAL, LMZ_EBADMSG, LMZ_EINVAL};
  for (int k = 0; k < 3; k++) {
    cap_reset();
    receive_ex(&x, 1, 90 + (uint64_t)k, kinds[k]);
    assert_int_equal(C.n, 1);
    const Lmz__BroadcastResult *r = C.f[0]->broadcast_result;
    assert_true(r->final);
    assert_int_equal(r->n_outcomes, 3);
    for (int i = 0; i < 3; i++)
      assert_int_equal(r->outcomes[i]->code, codes[k]);
  }
  cap_reset();
  receive_ex(&x, 1, 99, H_EMPTY_NAME); /* target 0 has no name */
  int first = cap_find(LMZ__FRAME__BODY_BROADCAST_RESULT, 1, 0);
  assert_true(first >= 0);
  const Lmz__BroadcastResult *r = C.f[first]->broadcast_result;
  bool named0 = false;
  for (size_t i = 0; i < r->n_outcomes; i++)
    named0 = named0 || (r->outcomes[i]->index == 0 && r->outcomes[i]->code == LMZ_EINVAL);
  assert_true(named0);
  cap_reset();
  teardown(&x);
}

static void test_receive_runs_owned_moved_others(void **state) {
  (void)state;
  struct fx x;
  setup3(&x);
  static const char *const names[] = {"a2", "a1", "b2"};
  static const uint64_t nodes[] = {2, 1, 2};
  place(&x, names, nodes, 3);
  receive(&x, 1, 77);
  /* at once: accepted, a1 and b2 (stale epoch) MOVED, not final */
  assert_int_equal(C.n, 1);
  assert_int_equal(C.peer[0], 1);
  const Lmz__BroadcastResult *r0 = C.f[0]->broadcast_result;
  assert_int_equal(C.f[0]->body_case, LMZ__FRAME__BODY_BROADCAST_RESULT);
  assert_int_equal(r0->batch_id, 77);
  assert_true(r0->accepted && !r0->final);
  assert_int_equal(r0->n_outcomes, 2);
  assert_int_equal(r0->outcomes[0]->index, 1);
  assert_int_equal(r0->outcomes[0]->code, LMZ_EMOVED);
  assert_int_equal(r0->outcomes[1]->index, 2);
  assert_int_equal(r0->outcomes[1]->code, LMZ_EMOVED);
  steps(&x, 3);
  /* a2 ran once; its outcome came back, final */
  assert_true(total(&x, "a2") == 3);
  assert_true(total(&x, "b2") == -1);
  assert_int_equal(C.n, 2);
  const Lmz__BroadcastResult *r1 = C.f[1]->broadcast_result;
  assert_true(r1->final && !r1->accepted);
  assert_int_equal(r1->n_outcomes, 1);
  assert_int_equal(r1->outcomes[0]->index, 0);
  assert_true(r1->outcomes[0]->ok);
  lmz_arena *a = lmz_arena_new();
  lmz_value *v = NULL;
  struct lmz_codec_limits lim;
  lmz_codec_limits_default(&lim);
  assert_int_equal(lmz_bin_decode(a, r1->outcomes[0]->value.data,
                                  r1->outcomes[0]->value.len, &lim, &v, NULL), 0);
  assert_true(lmz_get_number(v) == 3);
  lmz_arena_free(a);
  /* an operator's broadcast (peer 0) is refused whole, nothing runs */
  cap_reset();
  receive(&x, 0, 78);
  assert_int_equal(C.n, 1);
  assert_true(C.f[0]->broadcast_result->final);
  assert_int_equal(C.f[0]->broadcast_result->n_outcomes, 3);
  assert_int_equal(C.f[0]->broadcast_result->outcomes[0]->code, LMZ_EINVAL);
  steps(&x, 3);
  assert_true(total(&x, "a2") == 3);
  cap_reset();
  teardown(&x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_frame_per_owner_moved_and_results),
      cmocka_unit_test(test_big_group_split),
      cmocka_unit_test(test_commit_failure_fails_every_target),
      cmocka_unit_test(test_receive_runs_owned_moved_others),
      cmocka_unit_test(test_receive_hostile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
