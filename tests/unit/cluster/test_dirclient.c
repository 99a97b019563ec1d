/* tests/unit/cluster/test_dirclient.c - the directory client on fake time
 * (tests/unit/cluster/simdir.h: simulated transport, real directory FSM,
 * fake Raft): claims through a remote leader, a leader that never answers,
 * a leader change in the middle of a claim, requests a follower refuses.
 * Every time asserted is a time on the fake clock. */
#include "simdir.h"

#include <stdio.h>

#include "cluster/release.h"

/* A follower's claim goes to the leader as a DirRequest; the leader commits
 * it and answers; every replica holds the placement. */
static void test_remote_claim(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  struct outcome o;
  outcome_init(&o, s);
  uint64_t t0 = s->net.now_ms;
  assert_int_equal(lmz_dirclient_claim(&s->n[1].dc, &o.req, "DOC", "a",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  assert_false(o.done); /* never from inside the call */
  assert_int_equal(lmz_dirclient_n_waiting(&s->n[1].dc), 1);
  sim_run(s, t0 + 200);
  assert_true(o.done);
  assert_int_equal(o.status, LMZ_DIR_PLACED);
  assert_true(o.epoch >= 1);
  /* request (1 ms) + commit on the leader's next tick + answer (1 ms) */
  assert_true(o.at_ms <= t0 + SIM_LATENCY_MS + SIM_TICK_MS + SIM_COMMIT_MS +
                             SIM_LATENCY_MS);
  for (size_t i = 0; i < 3; i++) {
    uint64_t owner = 0, epoch = 0;
    assert_int_equal(lmz_dir_lookup(s->n[i].dir, "DOC", 3, "a", 1, &owner, &epoch), 0);
    assert_int_equal(owner, o.node);
    assert_int_equal(epoch, o.epoch);
  }
  assert_int_equal(lmz_dirclient_n_waiting(&s->n[1].dc), 0);
  assert_int_equal(s->n[1].dc.st.claims_remote, 1);
  assert_true(s->n[0].dc.st.served >= 1); /* renewals are served too */
  sim_free(s);
}

/* A leader that never answers (paused: its link stays up): the request
 * fails LMZ_ETIMEOUT at LMZ_DIRCLIENT_TIMEOUT_MS, not before. */
static void test_leader_never_answers(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  lmz_simnet_pause(&s->net, 1, true);
  struct outcome o;
  outcome_init(&o, s);
  uint64_t t0 = s->net.now_ms;
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "b",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, t0 + LMZ_DIRCLIENT_TIMEOUT_MS - 1);
  assert_false(o.done);
  sim_run(s, t0 + LMZ_DIRCLIENT_TIMEOUT_MS + SIM_TICK_MS);
  assert_true(o.done);
  assert_int_equal(o.status, LMZ_ETIMEOUT);
  assert_true(o.at_ms >= t0 + LMZ_DIRCLIENT_TIMEOUT_MS);
  assert_int_equal(s->n[2].dc.st.timeouts, 1);
  /* the leader wakes up and answers late: the answer is ignored */
  lmz_simnet_pause(&s->net, 1, false);
  sim_run(s, s->net.now_ms + 200);
  assert_int_equal(o.status, LMZ_ETIMEOUT);
  sim_free(s);
}

/* Leadership moves while the claim waits in the old leader's queue: the
 * old leader answers LMZ_ENOTLEADER (outcome unknown), the client retries
 * on the new leader, the actor is placed once. */
static void test_leader_change_mid_claim(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  struct outcome o;
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "c",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  /* the DirRequest arrives at node 1 and is queued there, not committed */
  sim_run(s, s->net.now_ms + SIM_LATENCY_MS);
  assert_non_null(s->pend);
  sim_set_leader(s, 2);
  sim_run(s, s->net.now_ms + 5);
  assert_true(o.done);
  assert_int_equal(o.status, LMZ_ENOTLEADER);
  uint64_t owner = 0, epoch = 0;
  assert_int_equal(lmz_dir_lookup(s->n[2].dir, "DOC", 3, "c", 1, &owner, &epoch),
                   LMZ_ENOTFOUND);
  /* the retry goes to node 2 */
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "c",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, s->net.now_ms + 100);
  assert_int_equal(o.status, LMZ_DIR_PLACED);
  assert_true(o.epoch >= 1);
  assert_int_equal(s->n[1].dc.st.served, 1);
  /* a request that reaches a follower is refused at once */
  outcome_init(&o, s);
  s->n[2].known_leader = 1; /* stale view */
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "d",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, s->net.now_ms + 10);
  assert_int_equal(o.status, LMZ_ENOTLEADER);
  /* no leader known: refused without a callback */
  s->n[2].known_leader = 0;
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "d",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   LMZ_ENOTLEADER);
  sim_free(s);
}

/* Close cancels what waits, from inside the close. */
static void test_close_cancels(void **state) {
  (void)state;
  struct sim *s = sim_new(2, 3000);
  sim_register_all(s);
  lmz_simnet_pause(&s->net, 1, true);
  struct outcome o[3];
  for (int i = 0; i < 3; i++) {
    outcome_init(&o[i], s);
    char inst[8];
    snprintf(inst, sizeof inst, "x%d", i);
    assert_int_equal(lmz_dirclient_claim(&s->n[1].dc, &o[i].req, "DOC", inst,
                                         LMZ_PLACEMENT_HASH, 0, outcome_cb),
                     0);
  }
  lmz_dirclient_close(&s->n[1].dc);
  for (int i = 0; i < 3; i++)
    assert_int_equal(o[i].status, LMZ_ECANCELED);
  outcome_init(&o[0], s);
  assert_int_equal(lmz_dirclient_claim(&s->n[1].dc, &o[0].req, "DOC", "y",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   LMZ_ECANCELED);
  lmz_dirclient_init(&s->n[1].dc, &s->n[1].dc.o); /* for sim_free */
  sim_free(s);
}

/* Expiry costs O(expired) per tick, not O(waiting): 20,000 requests wait
 * on a silent leader, and the ticks before their deadline look at (almost)
 * none of them; at the deadline they all fail, each looked at once. */
static void test_expiry_is_not_a_scan(void **state) {
  (void)state;
  enum { N = 20000 };
  struct sim *s = sim_new(2, 3000);
  sim_register_all(s);
  lmz_simnet_pause(&s->net, 1, true);
  s->n[1].member_on = false; /* only our requests wait */
  sim_run(s, s->net.now_ms + LMZ_DIRCLIENT_TIMEOUT_MS + SIM_TICK_MS);
  struct outcome *o = calloc(N, sizeof *o);
  uint64_t t0 = s->net.now_ms;
  for (int i = 0; i < N; i++) {
    outcome_init(&o[i], s);
    char inst[16];
    snprintf(inst, sizeof inst, "e%d", i);
    assert_int_equal(lmz_dirclient_claim(&s->n[1].dc, &o[i].req, "DOC", inst,
                                         LMZ_PLACEMENT_HASH, 0, outcome_cb),
                     0);
  }
  uint64_t v0 = s->n[1].dc.st.expiry_visits;
  sim_run(s, t0 + LMZ_DIRCLIENT_TIMEOUT_MS - 1); /* ~75 ticks, none due */
  uint64_t before = s->n[1].dc.st.expiry_visits - v0;
  printf("# %d waiting: %llu looked at by %d ticks before the deadline\n", N,
         (unsigned long long)before,
         (int)((LMZ_DIRCLIENT_TIMEOUT_MS - 1) / SIM_TICK_MS));
  assert_true(before <= (LMZ_DIRCLIENT_TIMEOUT_MS / SIM_TICK_MS) + 1);
  for (int i = 0; i < N; i++)
    assert_false(o[i].done);
  sim_run(s, t0 + LMZ_DIRCLIENT_TIMEOUT_MS + SIM_TICK_MS);
  for (int i = 0; i < N; i++)
    assert_int_equal(o[i].status, LMZ_ETIMEOUT);
  assert_true(s->n[1].dc.st.expiry_visits - v0 <= before + N + 2);
  free(o);
  sim_free(s);
}

/* Issue 15 item 4: a request to a leader whose link drops fails at once
 * (LMZ_ENOTLEADER), not LMZ_DIRCLIENT_TIMEOUT_MS later. */
static void test_link_loss_fails_at_once(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  lmz_simnet_pause(&s->net, 1, true); /* it takes the request, then dies */
  struct outcome o;
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "k",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, s->net.now_ms + 100);
  assert_false(o.done);
  uint64_t t_cut = s->net.now_ms;
  lmz_simnet_cut(&s->net, 1, 3, true);
  assert_true(o.done);
  assert_int_equal(o.status, LMZ_ENOTLEADER);
  assert_int_equal(o.at_ms, t_cut);
  sim_free(s);
}

/* Issue 15 item 4: the leader changes while a claim waits on the old one
 * (paused, links up): the claim fails at the change and its retry on the
 * new leader commits within a few ms of the change - the first claim after
 * a leader loss costs the election, not the request timeout. */
static void test_leader_change_retries_at_once(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  lmz_simnet_pause(&s->net, 1, true);
  struct outcome o;
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "m",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, s->net.now_ms + 300); /* the election takes a while */
  assert_false(o.done);
  uint64_t t_elected = s->net.now_ms;
  sim_set_leader(s, 2);
  assert_true(o.done);
  assert_int_equal(o.status, LMZ_ENOTLEADER);
  outcome_init(&o, s); /* the router's retry */
  assert_int_equal(lmz_dirclient_claim(&s->n[2].dc, &o.req, "DOC", "m",
                                       LMZ_PLACEMENT_HASH, 0, outcome_cb),
                   0);
  sim_run(s, t_elected + 100);
  assert_true(o.done);
  assert_true(o.status >= 0);
  printf("# first claim after the leader change: %llu ms\n",
         (unsigned long long)(o.at_ms - t_elected));
  assert_true(o.at_ms - t_elected <= SIM_TICK_MS + SIM_COMMIT_MS + 2 * SIM_LATENCY_MS);
  sim_free(s);
}

/* ---- the release queue (cluster/release.h) ------------------------------- */

#define REL_N 300

/* Places REL_N actors on node n[1] (one claims command through its client). */
static void place_on(struct sim *s, size_t ni, uint64_t *epochs) {
  static char names[REL_N][16];
  struct lmz_dir_claim cl[REL_N];
  for (size_t i = 0; i < REL_N; i++) {
    snprintf(names[i], sizeof names[i], "c%zu", i);
    cl[i] = (struct lmz_dir_claim){"GW", 2, names[i], strlen(names[i]),
                                   s->n[ni].id, i + 1, 0, 0, NULL};
  }
  lmz_buf cmd = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_claims(&cmd, cl, REL_N), 0);
  struct outcome o;
  outcome_init(&o, s);
  assert_int_equal(lmz_dirclient_propose(&s->n[ni].dc, &o.req, &cmd, outcome_cb), 0);
  lmz_buf_free(&cmd);
  sim_run(s, s->net.now_ms + 200);
  assert_true(o.done);
  assert_true(o.status >= 0);
  for (size_t i = 0; i < REL_N; i++) {
    uint64_t owner = 0;
    assert_int_equal(lmz_dir_lookup(s->n[0].dir, "GW", 2, names[i],
                                    strlen(names[i]), &owner, &epochs[i]), 0);
    assert_int_equal(owner, s->n[ni].id);
  }
}

/* Releases queued in one tick go as ONE directory entry; an item whose epoch
 * no longer matches (a re-claim or move won) keeps its placement; the
 * directory is back to its starting size on every replica. */
static void test_release_batched_and_fenced(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  uint64_t start = lmz_dir_n_actors(s->n[0].dir);
  uint64_t epochs[REL_N];
  place_on(s, 1, epochs);
  assert_int_equal(lmz_dir_n_actors(s->n[2].dir), start + REL_N);
  lmz_relq q;
  lmz_relq_init(&q, &s->n[1].dc, s->n[1].id);
  char name[16];
  for (size_t i = 0; i < REL_N; i++) {
    snprintf(name, sizeof name, "c%zu", i);
    /* c7 with a stale epoch: the directory must refuse it */
    assert_int_equal(lmz_relq_add(&q, "GW", name, i == 7 ? epochs[i] - 1 : epochs[i]), 0);
  }
  assert_int_equal(lmz_relq_add(&q, "GW", "c0", epochs[0]), 0); /* dup: one entry */
  assert_int_equal(lmz_relq_n_pending(&q), REL_N);
  uint64_t commits = s->commits;
  lmz_relq_tick(&q);
  lmz_relq_tick(&q); /* one batch in flight at a time: no second entry */
  sim_run(s, s->net.now_ms + 200);
  lmz_relq_tick(&q);
  sim_run(s, s->net.now_ms + 100);
  /* renewals commit too: count ours by the queue's stats */
  struct lmz_relq_stats st;
  lmz_relq_get_stats(&q, &st);
  assert_int_equal(st.batches, 1);
  assert_int_equal(st.proposed, REL_N);
  assert_true(s->commits > commits);
  assert_int_equal(lmz_relq_n_pending(&q), 0);
  for (size_t i = 0; i < s->count; i++)
    assert_int_equal(lmz_dir_n_actors(s->n[i].dir), start + 1);
  uint64_t owner = 0, ep = 0;
  assert_int_equal(lmz_dir_lookup(s->n[2].dir, "GW", 2, "c7", 2, &owner, &ep), 0);
  assert_int_equal(ep, epochs[7]);
  assert_int_equal(lmz_dir_lookup(s->n[2].dir, "GW", 2, "c8", 2, &owner, &ep),
                   LMZ_ENOTFOUND);
  lmz_relq_close(&q);
  sim_free(s);
}

/* Cancel before the tick drops the release; cancel while in flight is
 * LMZ_EBUSY and, with revive, the actor is claimed on this node again with
 * a newer epoch once the release settled. */
static void test_release_cancel_and_revive(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  uint64_t epochs[REL_N];
  place_on(s, 1, epochs);
  lmz_relq q;
  lmz_relq_init(&q, &s->n[1].dc, s->n[1].id);
  assert_int_equal(lmz_relq_add(&q, "GW", "c1", epochs[1]), 0);
  assert_int_equal(lmz_relq_add(&q, "GW", "c2", epochs[2]), 0);
  assert_int_equal(lmz_relq_cancel(&q, "GW", "c1", false), 0);
  assert_false(lmz_relq_pending(&q, "GW", "c1"));
  lmz_relq_tick(&q);
  assert_int_equal(lmz_relq_cancel(&q, "GW", "c2", true), LMZ_EBUSY);
  sim_run(s, s->net.now_ms + 300);
  uint64_t owner = 0, ep = 0;
  assert_int_equal(lmz_dir_lookup(s->n[0].dir, "GW", 2, "c1", 2, &owner, &ep), 0);
  assert_int_equal(ep, epochs[1]); /* never released */
  assert_int_equal(lmz_dir_lookup(s->n[0].dir, "GW", 2, "c2", 2, &owner, &ep), 0);
  assert_int_equal(owner, s->n[1].id); /* revived here */
  assert_true(ep > epochs[2]);
  struct lmz_relq_stats st;
  lmz_relq_get_stats(&q, &st);
  assert_int_equal(st.cancelled, 1);
  assert_int_equal(st.revived, 1);
  lmz_relq_close(&q);
  sim_free(s);
}

/* A batch whose leader is lost (outcome unknown) is proposed again; the
 * retry of an applied release is harmless. */
static void test_release_retried_after_leader_change(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  sim_register_all(s);
  uint64_t epochs[REL_N];
  place_on(s, 1, epochs);
  lmz_relq q;
  lmz_relq_init(&q, &s->n[1].dc, s->n[1].id);
  assert_int_equal(lmz_relq_add(&q, "GW", "c3", epochs[3]), 0);
  lmz_simnet_pause(&s->net, 1, true);
  lmz_relq_tick(&q);
  sim_run(s, s->net.now_ms + 100);
  sim_set_leader(s, 2);
  assert_int_equal(lmz_relq_n_pending(&q), 1); /* back in the queue */
  lmz_relq_tick(&q);
  sim_run(s, s->net.now_ms + 200);
  assert_int_equal(lmz_relq_n_pending(&q), 0);
  uint64_t owner = 0, ep = 0;
  assert_int_equal(lmz_dir_lookup(s->n[1].dir, "GW", 2, "c3", 2, &owner, &ep),
                   LMZ_ENOTFOUND);
  struct lmz_relq_stats st;
  lmz_relq_get_stats(&q, &st);
  assert_int_equal(st.retried, 1);
  lmz_relq_close(&q);
  sim_free(s);
}


/* ---- replica sets in the operators' views -------------------------------- */

static void json_of(lmz_cluster_t *c, const char *inst, lmz_buf *out) {
  lmz_buf_reset(out);
  if (inst)
    assert_int_equal(lmz_cluster_locate_json(c, "R", inst, out), 0);
  else
    assert_int_equal(lmz_cluster_status_json(c, out), 0);
  assert_int_equal(lmz_buf_putc(out, 0), 0);
}

static void commit_cmd(struct sim *s, lmz_cluster_t *c, lmz_buf *cmd) {
  struct outcome o;
  outcome_init(&o, s);
  assert_int_equal(lmz_cluster_propose(c, &o.req, cmd, outcome_cb), 0);
  lmz_buf_reset(cmd);
  sim_run(s, s->net.now_ms + 100);
  assert_true(o.done);
  assert_true(o.status >= 0);
}

/* lmz locate lists the in-sync backups in failover order; lmz status counts
 * the actors with fewer than min(R-1, live nodes-1) of them. */
static void test_replication_json(void **state) {
  (void)state;
  struct sim *s = sim_new(3, 3000);
  lmz_cluster_t cl;
  sim_attach_cluster(s, 0, &cl, 3000);
  sim_register_all(s);
  lmz_buf out = LMZ_BUF_INIT, cmd = LMZ_BUF_INIT;
  json_of(&cl, NULL, &out); /* R unset: 1, nothing is under-replicated */
  assert_non_null(strstr((char *)out.data,
                         "],\"replication\":{\"factor\":1,"
                         "\"under_replicated\":0,\"pairs\":[]}}"));
  cl.o.replication_factor = 3; /* lmz_cluster_options.replication_factor */
  uint64_t a_bk[] = {3, 2}, b_bk[] = {3};
  struct lmz_dir_claim c[3] = {{"R", 1, "a", 1, 1, 1, 0, 2, a_bk},
                               {"R", 1, "b", 1, 2, 2, 0, 1, b_bk},
                               {"R", 1, "c", 1, 3, 3, 0, 0, NULL}};
  assert_int_equal(lmz_dir_encode_claims(&cmd, c, 3), 0);
  commit_cmd(s, &cl, &cmd);
  json_of(&cl, "a", &out);
  assert_non_null(strstr((char *)out.data, "{\"placed\":true,\"node\":1,"));
  assert_non_null(strstr((char *)out.data, ",\"backups\":[3,2]}"));
  json_of(&cl, "c", &out);
  assert_non_null(strstr((char *)out.data, "\"node\":3,"));
  assert_non_null(strstr((char *)out.data, ",\"backups\":[]}"));
  json_of(&cl, "zz", &out);
  assert_string_equal((char *)out.data, "{\"placed\":false}");
  /* 3 live nodes: each actor wants 2 backups; b and c have fewer */
  json_of(&cl, NULL, &out);
  assert_non_null(strstr((char *)out.data,
                         "\"replication\":{\"factor\":3,"
                         "\"under_replicated\":2,"));
  assert_non_null(strstr((char *)out.data, "\"nodes\":[{\"id\":1,"));
  /* a pair drops out: a is short too */
  assert_int_equal(lmz_dir_encode_pair_out(&cmd, 1, 3, 9), 0);
  commit_cmd(s, &cl, &cmd);
  json_of(&cl, "a", &out);
  assert_non_null(strstr((char *)out.data, ",\"backups\":[2]}"));
  json_of(&cl, NULL, &out);
  assert_non_null(strstr((char *)out.data, "\"under_replicated\":3,"));
  /* R = 2 wants 1 backup: only c has none */
  cl.o.replication_factor = 2;
  json_of(&cl, NULL, &out);
  assert_non_null(strstr((char *)out.data,
                         "\"replication\":{\"factor\":2,"
                         "\"under_replicated\":1,"));
  /* node 3 goes silent: its MarkDown took it out of b's list, and c stays
   * on it (no backup); a DOWN member still counts (it may come back with
   * its copies), so R = 3 still wants 2 backups and all three are short */
  cl.o.replication_factor = 3;
  s->n[2].member_on = false;
  sim_run(s, s->net.now_ms + 5000);
  assert_int_equal(lmz_dir_node_get(s->n[0].dir, 3)->state, LMZ_DIR_DOWN);
  json_of(&cl, "b", &out);
  assert_non_null(strstr((char *)out.data, ",\"backups\":[]}"));
  json_of(&cl, NULL, &out);
  assert_non_null(strstr((char *)out.data,
                         "\"replication\":{\"factor\":3,"
                         "\"under_replicated\":3,"));
  lmz_buf_free(&out);
  lmz_buf_free(&cmd);
  sim_free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_remote_claim),
      cmocka_unit_test(test_leader_never_answers),
      cmocka_unit_test(test_leader_change_mid_claim),
      cmocka_unit_test(test_close_cancels),
      cmocka_unit_test(test_expiry_is_not_a_scan),
      cmocka_unit_test(test_link_loss_fails_at_once),
      cmocka_unit_test(test_leader_change_retries_at_once),
      cmocka_unit_test(test_release_batched_and_fenced),
      cmocka_unit_test(test_release_cancel_and_revive),
      cmocka_unit_test(test_release_retried_after_leader_change),
      cmocka_unit_test(test_replication_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
