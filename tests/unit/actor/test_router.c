/* tests/unit/actor/test_router.c - the router (actor/router.c) on a cluster
 * that runs on fake time (cluster/cluster.h lmz_cluster_init_sim over
 * tests/unit/cluster/simdir.h: simulated transport, real directory
 * replicas, fake Raft) and a real node (temp RocksDB, the counter example).
 * The router's node is node 2; node 1 leads the directory. Every decision
 * the router makes reads the fake clock; the loop only runs the turns. */
#include "unit/cluster/simdir.h"

#include "actor/broadcast_int.h" /* lmz__router_set_send_hook */
#include "actor/router.h"
#include "core/trace.h"
#include "lmz/testing.h"
#include "core/codec.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "examples/counter/counter.c"


#include "unit/actor/routerfix.h"

/* A call to an actor nobody placed: the router claims it through the
 * leader (node 1), parks the call, and runs it here once the claim is
 * applied - on the fake clock, within a request, a commit and an answer. */
static void test_claim_then_run(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  char inst[32];
  instance_on(2, "here", inst, sizeof inst);
  struct reply rp;
  uint64_t t0 = x.s->net.now_ms;
  call(&x, inst, "increment", &rp);
  run_for(&x, &rp, 500);
  assert_true(rp.done);
  assert_int_equal(rp.status, 0);
  assert_true(rp.ok);
  assert_true(rp.number == 1.0);
  assert_true(rp.at_ms - t0 <= SIM_LATENCY_MS + SIM_TICK_MS + SIM_COMMIT_MS +
                                  SIM_LATENCY_MS + 2);
  struct lmz_router_stats st;
  lmz_router_get_stats(x.r, &st);
  assert_int_equal(st.claims_remote, 1);
  assert_int_equal(st.parked_now, 0);
  teardown(&x);
}

/* Commits a directory command through the leader (node 1). */
static void propose_on_leader(struct fx *x, lmz_buf *cmd) {
  struct outcome o;
  outcome_init(&o, x->s);
  assert_int_equal(lmz_dirclient_propose(&x->s->n[0].dc, &o.req, cmd, outcome_cb), 0);
  while (!o.done)
    step(x);
  assert_true(o.status >= 0);
  lmz_buf_reset(cmd);
}

/* Before the first lease, a call for an actor placed here waits (parked);
 * it runs when the lease is granted (the cluster wakes the router). */
static void test_parked_until_first_lease(void **state) {
  (void)state;
  struct fx x;
  setup(&x, false);
  /* node 2 is UP and owns the actor, but holds no lease yet */
  const char *inst = "early";
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_node_upsert(&cmd, 2, LMZ_DIR_UP, "sim:2", "sim:2", 1), 0);
  propose_on_leader(&x, &cmd);
  struct lmz_dir_claim cl = {"COUNTER_DO", 10, inst, strlen(inst), 2, 2, 0, 0,
                             NULL};
  assert_int_equal(lmz_dir_encode_claims(&cmd, &cl, 1), 0);
  propose_on_leader(&x, &cmd);
  lmz_buf_free(&cmd);
  struct reply rp;
  call(&x, inst, "increment", &rp);
  run_for(&x, &rp, 200);
  assert_false(rp.done); /* claimed? maybe; run? never without a lease */
  assert_false(lmz_member_had_lease(&x.c.mb));
  x.s->n[1].member_on = true;
  run_for(&x, &rp, 500);
  assert_true(rp.done);
  assert_true(rp.ok);
  assert_true(lmz_cluster_lease_valid(&x.c, x.s->net.now_ms));
  teardown(&x);
}

/* Lease loss: node 2 is cut off from the leader; its lease ends on the
 * fake clock at valid_until. A call parked before that (its claim cannot
 * reach the leader) never runs here after the lease ended: it fails
 * (retryable) - either when it is routed without a lease or at its park
 * deadline - and the actor's state is untouched. */
static void test_lease_lost_while_parked(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  char placed[32], fresh[32];
  instance_on(2, "mine", placed, sizeof placed);
  instance_on(2, "new", fresh, sizeof fresh);
  struct reply rp;
  call(&x, placed, "increment", &rp); /* placed here, runs: total 1 */
  run_for(&x, &rp, 500);
  assert_true(rp.ok);
  lmz_simnet_cut(&x.s->net, 1, 2, true);
  struct reply parked;
  call(&x, fresh, "increment", &parked); /* no leader reachable: parked */
  uint64_t until = x.c.mb.lease.valid_until_ms;
  while (x.s->net.now_ms < until - 1)
    step(&x);
  assert_false(parked.done);
  assert_true(lmz_cluster_lease_valid(&x.c, x.s->net.now_ms));
  step(&x);
  step(&x);
  assert_false(lmz_cluster_lease_valid(&x.c, x.s->net.now_ms));
  /* a call for the actor placed here: refused at once, not run */
  call(&x, placed, "increment", &rp);
  run_for(&x, &rp, 50);
  assert_true(rp.done);
  assert_false(rp.ok);
  assert_non_null(strstr(rp.error, "no valid lease"));
  /* the parked one fails too, by its deadline at the latest */
  run_for(&x, &parked, 3000);
  assert_true(parked.done);
  assert_false(parked.ok);
  lmz_arena *peek = lmz_arena_new();
  lmz_value *total = NULL;
  assert_int_equal(lmz_node_kv_peek(x.node, "COUNTER_DO", placed, "total", peek, &total), 0);
  assert_true(lmz_get_number(total) == 1.0); /* the refused call did not run */
  lmz_arena_free(peek);
  teardown(&x);
}

/* Leadership moves in the middle of a claim: the claim waits on node 1,
 * which stops (paused, its link up) - then node 2 (ours) is elected. The
 * waiting request fails at the change, the router claims again on the new
 * leader at its next tick, the call runs: within a tick and a commit of the
 * election, not after the directory request timeout (issue 15 item 4). */
static void test_leader_change_mid_claim(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  char inst[32];
  instance_on(2, "moving", inst, sizeof inst);
  lmz_simnet_pause(&x.s->net, 1, true);
  struct reply rp;
  call(&x, inst, "increment", &rp);
  run_for(&x, &rp, 300); /* the election takes a while */
  assert_false(rp.done);
  assert_true(lmz_dirclient_n_waiting(&x.c.dc) >= 1); /* the claim (and a renewal) */
  uint64_t t_elected = x.s->net.now_ms;
  sim_set_leader(x.s, 2);
  assert_int_equal(lmz_dirclient_n_waiting(&x.c.dc), 0);
  run_for(&x, &rp, LMZ_DIRCLIENT_TIMEOUT_MS);
  assert_true(rp.done);
  assert_true(rp.ok);
  printf("# call answered %llu ms after the election\n",
         (unsigned long long)(rp.at_ms - t_elected));
  assert_true(rp.at_ms - t_elected <= 2 * SIM_TICK_MS + SIM_COMMIT_MS + 2);
  lmz_simnet_pause(&x.s->net, 1, false);
  teardown(&x);
}

/* A relay claim (lmz_node_claim_local: a client connected here) that
 * fails because leadership moves while it waits is proposed again: the
 * placement is made once there is a leader. Before, it was dropped, and
 * the client stayed unreachable from other nodes while connected (seen in
 * bench_broadcast: pushes to a few hundred of 3,000 clients answered
 * "Client is not connected" on every update, after an election). */
static void test_relay_claim_retried(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  lmz_simnet_pause(&x.s->net, 1, true);
  lmz_node_claim_local(x.node, "COUNTER_DO", "relay1");
  struct reply never = {.x = &x};
  run_for(&x, &never, 300);
  assert_true(lmz_dirclient_n_waiting(&x.c.dc) >= 1); /* on the paused leader */
  sim_set_leader(x.s, 2); /* the waiting claim fails: the leader changed */
  uint64_t owner = 0, epoch = 0, end = x.s->net.now_ms + 10000;
  while (lmz_dir_lookup(lmz_cluster_dir(&x.c), "COUNTER_DO", 10, "relay1", 6, &owner,
                        &epoch) &&
         x.s->net.now_ms < end)
    step(&x);
  assert_int_equal(lmz_dir_lookup(lmz_cluster_dir(&x.c), "COUNTER_DO", 10, "relay1", 6,
                                  &owner, &epoch),
                   0);
  assert_int_equal(owner, 2);
  lmz_simnet_pause(&x.s->net, 1, false);
  teardown(&x);
}

/* ---- tracing across the node port (issue 13 item 6) ---------------------- */

struct seen_call {
  int n;
  char trace_id[64], call_id[64];
};
static struct seen_call seen;

/* The router's send hook (what node 2 puts on its link to node 1). */
static int grab_call(void *arg, uint64_t peer, const Lmz__Frame *f) {
  (void)arg;
  if (f->body_case != LMZ__FRAME__BODY_CALL || peer != 1 || !f->call->ctx)
    return 0;
  seen.n++;
  snprintf(seen.trace_id, sizeof seen.trace_id, "%s", f->call->ctx->trace_id);
  snprintf(seen.call_id, sizeof seen.call_id, "%s", f->call->ctx->call_id);
  return 0;
}

/* lmz_node_call with the given tracing ids (NULL = none). */
static void call_traced(struct fx *x, const char *instance, const char *trace,
                        const char *call_id, struct reply *rp) {
  memset(rp, 0, sizeof *rp);
  rp->x = x;
  lmz_arena *a = lmz_node_arena_get(x->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, "increment"));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", lmz_array(a, 0));
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call c = {.binding = "COUNTER_DO", .instance = instance,
                            .chain = chain, .call_chain = &cli,
                            .call_chain_len = 1, .arena = a,
                            .trace_id = trace, .call_id = call_id};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(x->node, &c, reply_cb, rp, err), 0);
}

/* Steps until node 1 saw `want` Call frames (bounded in fake time). */
static void until_seen(struct fx *x, int want) {
  uint64_t end = x->s->net.now_ms + 1000;
  while (seen.n < want && x->s->net.now_ms < end)
    step(x);
  assert_int_equal(seen.n, want);
}

/* A call entering node 2 for an actor node 1 owns is forwarded with its
 * trace id and call id in the Call's context: a valid incoming trace id is
 * kept, and so is the call id (the same call on every hop); a hostile one
 * (wrong length, upper case, non-hex, all zeros, a log-forging newline)
 * never leaves the node: the frame carries a fresh valid trace id. */
static void test_forward_keeps_trace(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  memset(&seen, 0, sizeof seen);
  lmz__router_set_send_hook(x.r, grab_call, NULL);
  char inst[32];
  instance_on(1, "far", inst, sizeof inst);
  const char *T = "4bf92f3577b34da6a3ce929d0e0e4736", *C = "00f067aa0ba902b7";
  struct reply rp[6];
  call_traced(&x, inst, T, C, &rp[0]);
  until_seen(&x, 1);
  assert_string_equal(seen.trace_id, T);
  assert_string_equal(seen.call_id, C);
  call_traced(&x, inst, T, NULL, &rp[1]); /* no call id: minted here */
  until_seen(&x, 2);
  assert_string_equal(seen.trace_id, T);
  assert_true(lmz_call_id_valid(seen.call_id, strlen(seen.call_id)));
  assert_string_not_equal(seen.call_id, C);
  static const char *const bad[] = {
      "4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6a3ce929d0e0e473",
      "00000000000000000000000000000000", "4bf92f3577b34da6a3ce929d0e0e4736\ntrace"};
  for (int i = 0; i < 4; i++) {
    call_traced(&x, inst, bad[i], "zz", &rp[2 + i]);
    until_seen(&x, 3 + i);
    assert_true(lmz_trace_id_valid(seen.trace_id, strlen(seen.trace_id)));
    assert_true(lmz_call_id_valid(seen.call_id, strlen(seen.call_id)));
    assert_string_not_equal(seen.trace_id, T);
  }
  teardown(&x); /* the unanswered calls fail at close */
}

static void move_actor(struct fx *x, const char *inst, uint64_t to) {
  static uint64_t req = 9000;
  uint64_t from = 0, e = 0;
  assert_int_equal(lmz_dir_lookup(lmz_cluster_dir(&x->c), "COUNTER_DO", 10,
                                  inst, strlen(inst), &from, &e), 0);
  struct lmz_dir_move mv = {"COUNTER_DO", 10, inst, strlen(inst), from, to, e,
                            ++req, true};
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_moves(&cmd, &mv, 1), 0);
  propose_on_leader(x, &cmd);
  lmz_buf_free(&cmd);
}

static void store_done(lmz_store_t *st, int status, void *arg) {
  (void)st;
  *(int *)arg = status ? status : 1;
}

/* Writes the counter's total into node 2's store behind its activation's
 * back, as the new owner's replication stream does on a backup. */
static void stream_total(struct fx *x, const char *inst, double total) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = lmz_key_actor(k, "COUNTER_DO", 10, inst, strlen(inst),
                         LMZ_KEY_SPACE_USER, "total", 5);
  assert_true(kl > 0);
  lmz_arena *a = lmz_arena_new();
  lmz_buf enc = LMZ_BUF_INIT;
  assert_int_equal(lmz_bin_encode(lmz_number(a, total), &enc, NULL), 0);
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_batch_put(b, k, (size_t)kl, enc.data, enc.len), 0);
  int done = 0;
  assert_int_equal(lmz_store_commit(lmz_node_store(x->node), b, store_done, &done), 0);
  while (!done)
    uv_run(&x->loop, UV_RUN_ONCE);
  assert_int_equal(done, 1);
  lmz_buf_free(&enc);
  lmz_arena_free(a);
}

/* An actor placed here, then elsewhere, then here again: the activation of
 * its first placement still holds the state of then (its KV cache), while
 * the store has what the other owner wrote (replicated here). A call under
 * the new placement runs on a fresh activation that reads the store -
 * never on the old one, which would lose the other owner's writes. */
static void test_stale_activation_replaced(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  char inst[32];
  instance_on(2, "back", inst, sizeof inst);
  struct reply rp;
  call(&x, inst, "increment", &rp);
  run_for(&x, &rp, 500);
  assert_true(rp.ok);
  assert_true(rp.number == 1.0);
  move_actor(&x, inst, 1);  /* failed over to node 1 ... */
  stream_total(&x, inst, 7); /* ... which counted on to 7 */
  move_actor(&x, inst, 2);  /* and back here */
  call(&x, inst, "increment", &rp);
  run_for(&x, &rp, 500);
  assert_true(rp.done);
  assert_true(rp.ok);
  assert_true(rp.number == 8.0);
  teardown(&x);
}

/* ---- fresh placements (cluster/directory.h FRESH, actor/fresh.c) --------- */

static void release_actor(struct fx *x, const char *inst) {
  uint64_t owner = 0, e = 0;
  assert_int_equal(lmz_dir_lookup(lmz_cluster_dir(&x->c), "COUNTER_DO", 10,
                                  inst, strlen(inst), &owner, &e), 0);
  struct lmz_dir_release rl = {"COUNTER_DO", 10, inst, strlen(inst), owner, e,
                               4545};
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_releases(&cmd, &rl, 1), 0);
  propose_on_leader(x, &cmd);
  lmz_buf_free(&cmd);
}

static double call_number(struct fx *x, const char *inst, const char *method) {
  struct reply rp;
  call(x, inst, method, &rp);
  run_for(x, &rp, 500);
  assert_true(rp.done);
  assert_true(rp.ok);
  return rp.number;
}

static uint64_t stale_dropped(struct fx *x) {
  struct lmz_node_stats st;
  lmz_node_get_stats(x->node, &st);
  return st.stale_copies_dropped;
}

/* This node kept a copy of an actor it no longer owns (it counted to 3
 * here, the actor moved to node 1, which emptied it and released it). A new
 * claim places it here again: the call runs on an empty range, not on the
 * old total. The record of that placement survives the activation: the
 * next activation under the same placement keeps what it wrote. */
static void test_fresh_claim_drops_stale_copy(void **state) {
  (void)state;
  struct fx x;
  setup_ex(&x, true, 50);
  char inst[32];
  instance_on(2, "fresh", inst, sizeof inst);
  for (int i = 1; i <= 3; i++)
    assert_true(call_number(&x, inst, "increment") == i);
  assert_int_equal(stale_dropped(&x), 0); /* its first claim found nothing */
  /* the node's FRESH SINCE epoch, learned at its first lease, went to disk
   * with those commits */
  assert_true(x.r->fresh_since < UINT64_MAX);
  lmz_buf v = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_get(lmz_node_store(x.node), "Nfresh.since", 12,
                                 &v), 0);
  assert_int_equal(v.len, 8);
  uint64_t since = 0;
  for (int i = 0; i < 8; i++)
    since = since << 8 | v.data[i];
  assert_true(since == x.r->fresh_since);
  lmz_buf_free(&v);
  move_actor(&x, inst, 1);
  release_actor(&x, inst);
  assert_true(call_number(&x, inst, "increment") == 1.0); /* claimed again */
  struct lmz_dir_placement p;
  assert_int_equal(lmz_dir_placement_get(lmz_cluster_dir(&x.c), "COUNTER_DO",
                                         10, inst, strlen(inst), &p), 0);
  assert_int_equal(p.node_id, 2);
  assert_true(p.fresh);
  assert_int_equal(stale_dropped(&x), 1);
  /* evicted (its range is not empty: the placement stays) and activated
   * again: the marker matches, nothing is dropped */
  x.wall_ms += 1000;
  assert_true(lmz_node_evict_idle(x.node) >= 1);
  assert_true(call_number(&x, inst, "increment") == 2.0);
  assert_int_equal(stale_dropped(&x), 0 + 1);
  /* a placement that moved here is not fresh: what it finds is its state */
  move_actor(&x, inst, 1);
  stream_total(&x, inst, 40); /* node 1's writes, replicated here */
  move_actor(&x, inst, 2);
  assert_true(call_number(&x, inst, "increment") == 41.0);
  assert_int_equal(stale_dropped(&x), 1);
  /* UPGRADES (fresh.c): placements at or below the FRESH SINCE epoch may
   * hold data written before these records existed: nothing is dropped */
  x.r->fresh_since = lmz_dir_epoch_seq(lmz_cluster_dir(&x.c)) + 100;
  move_actor(&x, inst, 1);
  release_actor(&x, inst);
  assert_true(call_number(&x, inst, "increment") == 42.0);
  assert_int_equal(stale_dropped(&x), 1);
  teardown(&x);
}

/* ---- the activation gate (cluster/activation.h) -------------------------- */

static struct {
  int n;
  uint64_t epoch;
} fwd_seen;

static int grab_epoch(void *arg, uint64_t peer, const Lmz__Frame *f) {
  (void)arg;
  if (f->body_case == LMZ__FRAME__BODY_CALL && peer == 1) {
    fwd_seen.n++;
    fwd_seen.epoch = f->call->epoch;
  }
  return 0;
}

/* Claims COUNTER_DO/inst on node 2 not activated; returns its epoch. */
static uint64_t claim_unactivated(struct fx *x, const char *inst) {
  lmz_buf cmd = LMZ_BUF_INIT;
  struct lmz_dir_claim cl = {"COUNTER_DO", 10, inst, strlen(inst), 2, 4242,
                             LMZ_DIR_CLAIM_UNACTIVATED, 0, NULL};
  assert_int_equal(lmz_dir_encode_claims(&cmd, &cl, 1), 0);
  propose_on_leader(x, &cmd);
  lmz_buf_free(&cmd);
  struct lmz_dir_placement p;
  assert_int_equal(lmz_dir_placement_get(lmz_cluster_dir(&x->c), "COUNTER_DO",
                                         10, inst, strlen(inst), &p), 0);
  assert_int_equal(p.node_id, 2);
  assert_false(p.activated);
  return p.epoch;
}

/* A placement here that was never activated: the call waits for the mark
 * (no turn before it is committed), then runs here. When the leader
 * re-places it first (its owner looked silent), the mark is refused and the
 * parked call goes to the new owner: it never ran here. */
static void test_unactivated_gate(void **state) {
  (void)state;
  struct fx x;
  setup(&x, true);
  memset(&fwd_seen, 0, sizeof fwd_seen);
  lmz__router_set_send_hook(x.r, grab_epoch, NULL);
  claim_unactivated(&x, "fresh");
  struct reply rp;
  call(&x, "fresh", "increment", &rp);
  struct lmz_router_stats st;
  lmz_router_get_stats(x.r, &st);
  assert_int_equal(st.gated, 1);
  assert_int_equal(st.parked_now, 1);
  run_for(&x, &rp, 500);
  assert_true(rp.done && rp.ok && rp.number == 1.0);
  struct lmz_dir_placement p;
  assert_int_equal(lmz_dir_placement_get(lmz_cluster_dir(&x.c), "COUNTER_DO",
                                         10, "fresh", 5, &p), 0);
  assert_true(p.activated);
  /* the race, lost: the re-placement commits before the mark */
  uint64_t e = claim_unactivated(&x, "lost");
  call(&x, "lost", "increment", &rp); /* its mark is on its way */
  lmz_buf cmd = LMZ_BUF_INIT;
  struct lmz_dir_replace rep = {"COUNTER_DO", 10, "lost", 4, 2, 1, e, 4343};
  assert_int_equal(lmz_dir_encode_replaces(&cmd, &rep, 1), 0);
  propose_on_leader(&x, &cmd);
  lmz_buf_free(&cmd);
  uint64_t end = x.s->net.now_ms + 500;
  while (fwd_seen.n == 0 && x.s->net.now_ms < end)
    step(&x);
  assert_int_equal(fwd_seen.n, 1);
  assert_int_equal(fwd_seen.epoch, e + 1); /* to node 1, the new placement */
  assert_false(rp.done); /* node 1 (a fake) never answers */
  assert_int_equal(lmz_dir_placement_get(lmz_cluster_dir(&x.c), "COUNTER_DO",
                                         10, "lost", 4, &p), 0);
  assert_int_equal(p.node_id, 1);
  assert_false(p.activated); /* the mark was refused */
  for (int i = 0; i < 2 * SIM_TICK_MS; i++)
    step(&x);
  assert_int_equal(lmz_act_n_pending(&x.c.act), 0); /* dropped: moved */
  assert_false(rp.done);
  lmz_router_get_stats(x.r, &st);
  assert_int_equal(st.gated, 2);
  teardown(&x); /* the unanswered call fails at close */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_claim_then_run),
      cmocka_unit_test(test_parked_until_first_lease),
      cmocka_unit_test(test_lease_lost_while_parked),
      cmocka_unit_test(test_leader_change_mid_claim),
      cmocka_unit_test(test_relay_claim_retried),
      cmocka_unit_test(test_forward_keeps_trace),
      cmocka_unit_test(test_stale_activation_replaced),
      cmocka_unit_test(test_unactivated_gate),
      cmocka_unit_test(test_fresh_claim_drops_stale_copy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
