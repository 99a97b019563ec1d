/* tests/unit/cluster/test_raft_fixture.c - the directory FSM under canonical
 * raft 0.15's in-memory fixture (fake time, deterministic): election,
 * batched claims, leader loss, partitions (saturated links), rejoin, a new
 * server catching up by snapshot, and lease fencing on fixture time.
 *
 * Fixture rules (c-deps-guide 2.8): the struct is zeroed before
 * raft_fixture_initialize(); partitions use saturate, not disconnect; after
 * a kill, step_until_has_no_leader comes before step_until_has_leader. */
#include "lib/testlib.h"

#include <raft.h>
#include <raft/fixture.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/directory.h"
#include "cluster/lease.h"
#include "cluster/raftnode.h"
#include "core/err.h"

struct fx {
  struct raft_fixture f;
  struct raft_fsm fsms[RAFT_FIXTURE_MAX_SERVERS];
  lmz_dir_t dir_mem[RAFT_FIXTURE_MAX_SERVERS];
  lmz_dir_t *dirs[RAFT_FIXTURE_MAX_SERVERS]; /* &dir_mem[i] once initialized */
  unsigned n;
  unsigned restores[RAFT_FIXTURE_MAX_SERVERS];
  int (*orig_restore)(struct raft_fsm *, struct raft_buffer *);
};

/* One proposal and what its callback saw (the result is copied: it lives
 * only until the next apply). */
struct prop {
  struct raft_apply req;
  bool done;
  int status;
  int cmd_status;
  size_t n;
  struct lmz_dir_item items[4096];
};

static uint64_t fx_clock(void *ctx) {
  return raft_fixture_time((struct raft_fixture *)ctx);
}

/* restore wrapper: which server restored is found by its dir pointer */
static struct fx *g_fx;
static int restore_wrap(struct raft_fsm *fsm, struct raft_buffer *buf) {
  for (unsigned i = 0; i < g_fx->n; i++)
    if (g_fx->dirs[i] == fsm->data)
      g_fx->restores[i]++;
  return g_fx->orig_restore(fsm, buf);
}

static void add_server(struct fx *x, unsigned threshold) {
  unsigned i = x->n;
  assert_int_equal(lmz_dir_init(x->dirs[i] = &x->dir_mem[i]), 0);
  lmz_dir_set_clock(x->dirs[i], fx_clock, &x->f);
  lmz_raftnode_fsm_init(&x->fsms[i], x->dirs[i]);
  x->orig_restore = x->fsms[i].restore;
  x->fsms[i].restore = restore_wrap;
  assert_int_equal(raft_fixture_grow(&x->f, &x->fsms[i]), 0);
  struct raft *r = raft_fixture_get(&x->f, i);
  raft_set_pre_vote(r, true);
  if (threshold) {
    raft_set_snapshot_threshold(r, threshold);
    raft_set_snapshot_trailing(r, threshold / 2);
  }
  x->n++;
}

static struct fx *fx_new(unsigned n, unsigned threshold) {
  struct fx *x = calloc(1, sizeof *x); /* zeroed: 0.15 leaves f.n unset */
  g_fx = x;
  assert_int_equal(raft_fixture_initialize(&x->f), 0);
  for (unsigned i = 0; i < n; i++)
    add_server(x, threshold);
  struct raft_configuration conf;
  assert_int_equal(raft_fixture_configuration(&x->f, n, &conf), 0);
  assert_int_equal(raft_fixture_bootstrap(&x->f, &conf), 0);
  raft_configuration_close(&conf);
  assert_int_equal(raft_fixture_start(&x->f), 0);
  assert_true(raft_fixture_step_until_has_leader(&x->f, 10000));
  return x;
}

static void fx_free(struct fx *x) {
  raft_fixture_close(&x->f); /* FSMs must outlive it */
  for (unsigned i = 0; i < x->n; i++)
    lmz_dir_close(x->dirs[i]);
  free(x);
}

static unsigned leader(struct fx *x) {
  unsigned l = raft_fixture_leader_index(&x->f);
  assert_true(l < x->n);
  return l;
}

static void prop_cb(struct raft_apply *req, int status, void *result) {
  struct prop *p = req->data;
  p->done = true;
  p->status = status;
  if (status == 0) {
    const struct lmz_dir_result *r = result;
    p->cmd_status = r->status;
    p->n = r->n;
    memcpy(p->items, r->items, r->n * sizeof *r->items);
  }
}

/* Proposes the encoded command in b on server i (b is reset). */
static int propose_on(struct fx *x, unsigned i, lmz_buf *b, struct prop *p) {
  struct raft_buffer buf;
  assert_int_equal(lmz_raftnode_entry_encode(b->data, b->len, &buf), 0);
  assert_int_equal(buf.len % 8, 0);
  lmz_buf_reset(b);
  memset(p, 0, sizeof *p);
  p->req.data = p;
  int rv = raft_apply(raft_fixture_get(&x->f, i), &p->req, &buf, 1, prop_cb);
  if (rv)
    raft_free(buf.base);
  return rv;
}

static bool prop_done(struct raft_fixture *f, void *arg) {
  (void)f;
  return ((struct prop *)arg)->done;
}

/* Proposes on the leader and steps until its callback ran. */
static struct prop *commit(struct fx *x, lmz_buf *b) {
  static struct prop p;
  assert_int_equal(propose_on(x, leader(x), b, &p), 0);
  assert_true(raft_fixture_step_until(&x->f, prop_done, &p, 5000));
  assert_int_equal(p.status, 0);
  assert_int_equal(p.cmd_status, 0);
  return &p;
}

/* Every alive server in `which` (bit mask) has applied `index`. */
static void wait_applied(struct fx *x, unsigned mask, raft_index index) {
  for (unsigned i = 0; i < x->n; i++)
    if (mask & (1u << i))
      assert_true(raft_fixture_step_until_applied(&x->f, i, index, 10000));
}

static void assert_same(struct fx *x, unsigned mask) {
  unsigned first = x->n;
  for (unsigned i = 0; i < x->n; i++) {
    if (!(mask & (1u << i)))
      continue;
    if (first == x->n)
      first = i;
    else
      assert_true(lmz_dir_equal(x->dirs[first], x->dirs[i]));
  }
}

static void register_nodes(struct fx *x, unsigned n) {
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t id = 1; id <= n; id++) {
    char addr[32];
    snprintf(addr, sizeof addr, "10.0.0.%u:7000", (unsigned)id);
    assert_int_equal(
        lmz_dir_encode_node_upsert(&b, id, LMZ_DIR_UP, addr, NULL, id), 0);
    assert_int_equal(commit(x, &b)->items[0].status, LMZ_DIR_PLACED);
    assert_int_equal(lmz_dir_encode_lease_renew(&b, id, 3000, id), 0);
    assert_int_equal(commit(x, &b)->items[0].epoch, 1);
  }
  lmz_buf_free(&b);
}

/* Encodes `count` claims "DOC"/<prefix><i> spread over nodes 1..n_nodes. */
static void encode_claims(lmz_buf *b, const char *prefix, int count,
                          unsigned n_nodes) {
  struct lmz_dir_claim *c = calloc((size_t)count, sizeof *c);
  char(*names)[32] = calloc((size_t)count, 32);
  for (int i = 0; i < count; i++) {
    snprintf(names[i], 32, "%s%d", prefix, i);
    c[i] = (struct lmz_dir_claim){"DOC", 3, names[i], strlen(names[i]),
                                  (uint64_t)(1 + (unsigned)i % n_nodes),
                                  (uint64_t)i, 0, 0, NULL};
  }
  assert_int_equal(lmz_dir_encode_claims(b, c, (size_t)count), 0);
  free(c);
  free(names);
}

static void assert_lookup(lmz_dir_t *d, const char *inst, uint64_t node,
                          uint64_t epoch) {
  uint64_t n, e;
  assert_int_equal(lmz_dir_lookup(d, "DOC", 3, inst, strlen(inst), &n, &e), 0);
  assert_int_equal(n, node);
  assert_int_equal(e, epoch);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_elect_and_claim(void **state) {
  (void)state;
  struct fx *x = fx_new(3, 0);
  assert_int_equal(leader(x), 0); /* server 0's timer fires first */
  register_nodes(x, 3);
  lmz_buf b = LMZ_BUF_INIT;
  encode_claims(&b, "a", 1000, 3);
  struct prop *p = commit(x, &b);
  assert_int_equal(p->n, 1000);
  for (unsigned i = 0; i < 1000; i++) {
    assert_int_equal(p->items[i].status, LMZ_DIR_PLACED);
    assert_int_equal(p->items[i].request_id, i);
    assert_int_equal(p->items[i].epoch, i + 1);
  }
  wait_applied(x, 7, raft_last_index(raft_fixture_get(&x->f, 0)));
  assert_same(x, 7);
  assert_int_equal(lmz_dir_n_actors(x->dirs[2]), 1000);
  assert_lookup(x->dirs[2], "a5", 3, 6);
  assert_int_equal(lmz_dir_node_get(x->dirs[1], 1)->n_actors, 334);
  /* heard_ms is each replica's own fixture time at apply: the follower
   * applied later than the leader (commit index travels with the next
   * AppendEntries), never earlier */
  assert_true(lmz_dir_node_get(x->dirs[1], 3)->heard_ms >=
              lmz_dir_node_get(x->dirs[0], 3)->heard_ms);
  lmz_buf_free(&b);
  fx_free(x);
}

struct bwait {
  struct raft_barrier req;
  bool done;
  int status;
};

static void barrier_cb(struct raft_barrier *req, int status) {
  struct bwait *w = req->data;
  w->done = true;
  w->status = status;
}

static bool barrier_done(struct raft_fixture *f, void *arg) {
  (void)f;
  return ((struct bwait *)arg)->done;
}

static void test_kill_leader_reelect(void **state) {
  (void)state;
  struct fx *x = fx_new(3, 0);
  register_nodes(x, 3);
  lmz_buf b = LMZ_BUF_INIT;
  encode_claims(&b, "k", 300, 3);
  commit(x, &b);
  unsigned old = leader(x);
  wait_applied(x, 7, raft_last_index(raft_fixture_get(&x->f, old)));
  raft_fixture_kill(&x->f, old);
  assert_true(raft_fixture_step_until_has_no_leader(&x->f, 10000));
  assert_true(raft_fixture_step_until_has_leader(&x->f, 10000));
  unsigned nl = leader(x);
  assert_int_not_equal(nl, old);
  /* the new leader serves only after a barrier (0.15: no leader no-op) */
  struct bwait bw = {0};
  bw.req.data = &bw;
  assert_int_equal(raft_barrier(raft_fixture_get(&x->f, nl), &bw.req,
                                barrier_cb),
                   0);
  assert_true(raft_fixture_step_until(&x->f, barrier_done, &bw, 5000));
  assert_int_equal(bw.status, 0);
  /* directory intact on the new leader; re-claims return what exists */
  assert_int_equal(lmz_dir_n_actors(x->dirs[nl]), 300);
  encode_claims(&b, "k", 300, 3);
  struct prop *p = commit(x, &b);
  for (unsigned i = 0; i < 300; i++) {
    assert_int_equal(p->items[i].status, LMZ_DIR_EXISTING);
    assert_int_equal(p->items[i].epoch, i + 1);
  }
  encode_claims(&b, "after", 10, 3);
  p = commit(x, &b);
  assert_int_equal(p->items[9].status, LMZ_DIR_PLACED);
  assert_int_equal(p->items[9].epoch, 310);
  /* the old leader comes back and converges */
  raft_fixture_revive(&x->f, old);
  wait_applied(x, 7, raft_last_index(raft_fixture_get(&x->f, nl)));
  assert_same(x, 7);
  assert_int_equal(lmz_dir_n_actors(x->dirs[old]), 310);
  lmz_buf_free(&b);
  fx_free(x);
}

static void partition(struct fx *x, unsigned a_mask, bool on) {
  for (unsigned i = 0; i < x->n; i++)
    for (unsigned j = 0; j < x->n; j++) {
      if (i == j || !!(a_mask & (1u << i)) == !!(a_mask & (1u << j)))
        continue;
      if (on)
        raft_fixture_saturate(&x->f, i, j);
      else
        raft_fixture_desaturate(&x->f, i, j);
    }
}

static void test_partition_minority_cannot_commit(void **state) {
  (void)state;
  struct fx *x = fx_new(5, 0);
  register_nodes(x, 5);
  lmz_buf b = LMZ_BUF_INIT;
  encode_claims(&b, "p", 100, 5);
  commit(x, &b);
  unsigned old = leader(x);
  assert_int_equal(old, 0);
  wait_applied(x, 31, raft_last_index(raft_fixture_get(&x->f, 0)));
  lmz_dir_t before_mem, *before = NULL;
  {
    void *snap;
    size_t len;
    assert_int_equal(lmz_dir_snapshot(x->dirs[0], NULL, &snap, &len), 0);
    assert_int_equal(lmz_dir_init(before = &before_mem), 0);
    assert_int_equal(lmz_dir_restore(before, snap, len), 0);
    free(snap);
  }
  raft_term term_minority = raft_fixture_get(&x->f, 1)->current_term;
  partition(x, 0x3, true); /* {0,1} | {2,3,4} */
  /* the old leader still accepts the proposal but can never commit it */
  encode_claims(&b, "lost", 5, 5);
  static struct prop lost;
  assert_int_equal(propose_on(x, 0, &b, &lost), 0);
  assert_true(raft_fixture_step_until_has_no_leader(&x->f, 10000));
  assert_true(raft_fixture_step_until_has_leader(&x->f, 10000));
  unsigned nl = leader(x);
  assert_true(nl >= 2);
  encode_claims(&b, "maj", 20, 5);
  struct prop *p = commit(x, &b);
  assert_int_equal(p->items[0].status, LMZ_DIR_PLACED);
  raft_fixture_step_until_elapsed(&x->f, 3000);
  assert_true(!lost.done || lost.status != 0); /* never committed */
  assert_true(lmz_dir_equal(x->dirs[0], before));
  assert_true(lmz_dir_equal(x->dirs[1], before));
  /* pre-vote: the isolated pair did not inflate its term */
  assert_int_equal(raft_fixture_get(&x->f, 1)->current_term, term_minority);
  /* heal: the minority drops its uncommitted entry and converges */
  partition(x, 0x3, false);
  raft_index idx = raft_last_index(raft_fixture_get(&x->f, nl));
  wait_applied(x, 31, idx);
  raft_fixture_step_until_elapsed(&x->f, 500);
  assert_same(x, 31);
  assert_int_equal(leader(x), nl); /* the healed pair deposed nobody */
  uint64_t n, e;
  assert_int_equal(lmz_dir_lookup(x->dirs[0], "DOC", 3, "lost0", 5, &n, &e),
                   LMZ_ENOTFOUND);
  assert_int_equal(lmz_dir_n_actors(x->dirs[0]), 120);
  lmz_dir_close(before);
  lmz_buf_free(&b);
  fx_free(x);
}

struct change {
  struct raft_change req;
  bool done;
  int status;
};

static void change_cb(struct raft_change *req, int status) {
  struct change *c = req->data;
  c->done = true;
  c->status = status;
}

static bool change_done(struct raft_fixture *f, void *arg) {
  (void)f;
  return ((struct change *)arg)->done;
}

static void test_join_by_snapshot(void **state) {
  (void)state;
  struct fx *x = fx_new(3, 8); /* snapshot every 8 entries, keep 4 */
  register_nodes(x, 3);        /* 6 entries */
  lmz_buf b = LMZ_BUF_INIT;
  for (int round = 0; round < 20; round++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "j%d-", round);
    encode_claims(&b, prefix, 50, 3);
    commit(x, &b);
  }
  unsigned l = leader(x);
  struct raft *lr = raft_fixture_get(&x->f, l);
  wait_applied(x, 7, raft_last_index(lr));
  assert_true(lr->log.offset > 0); /* the log was compacted by snapshots */
  /* a 4th server: empty, not bootstrapped, started, then added + promoted */
  add_server(x, 8);
  assert_int_equal(raft_start(raft_fixture_get(&x->f, 3)), 0);
  struct change c = {0};
  c.req.data = &c;
  assert_int_equal(raft_add(lr, &c.req, 4, "4", change_cb), 0);
  assert_true(raft_fixture_step_until(&x->f, change_done, &c, 5000));
  assert_int_equal(c.status, 0);
  /* one change at a time: a second add while one runs is refused */
  c = (struct change){0};
  c.req.data = &c;
  assert_int_equal(raft_assign(lr, &c.req, 4, RAFT_VOTER, change_cb), 0);
  struct change c2 = {0};
  c2.req.data = &c2;
  assert_int_equal(raft_add(lr, &c2.req, 5, "5", change_cb), RAFT_CANTCHANGE);
  assert_true(raft_fixture_step_until(&x->f, change_done, &c, 10000));
  assert_int_equal(c.status, 0);
  encode_claims(&b, "after-join", 10, 3);
  commit(x, &b);
  wait_applied(x, 15, raft_last_index(lr));
  assert_true(x->restores[3] >= 1); /* it got the state by InstallSnapshot */
  assert_same(x, 15);
  assert_int_equal(lmz_dir_n_actors(x->dirs[3]), 1010);
  assert_lookup(x->dirs[3], "j7-3", 1, 7 * 50 + 4);
  lmz_buf_free(&b);
  fx_free(x);
}

/* Leases on fixture time: the leader may fence node 3 (and move its actor
 * without its cooperation) only once node 3's lease surely expired. */
static void test_lease_fencing(void **state) {
  (void)state;
  struct fx *x = fx_new(3, 0);
  register_nodes(x, 3);
  const struct lmz_lease_config cfg = {3000, 300};
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_dir_claim c = {"DOC", 3, "f", 1, 3, 1, 0, 0, NULL};
  assert_int_equal(lmz_dir_encode_claims(&b, &c, 1), 0);
  assert_int_equal(commit(x, &b)->items[0].epoch, 1);
  unsigned l = leader(x);
  lmz_dir_t *ld = x->dirs[l];
  const struct lmz_dir_node *n3 = lmz_dir_node_get(ld, 3);
  uint64_t heard = n3->heard_ms;
  uint64_t seq = n3->lease_seq;
  struct lmz_dir_move mv = {"DOC", 3, "f", 1, 3, 1, 1, 9, false};
  /* node 3 still holds a lease: a forced move is refused by the FSM */
  assert_int_equal(lmz_dir_encode_moves(&b, &mv, 1), 0);
  assert_int_equal(commit(x, &b)->items[0].status, LMZ_EBUSY);
  /* nodes 1 and 2 keep renewing every L/3; node 3 is silent */
  while (!lmz_lease_is_surely_expired(heard, 3000, cfg.margin_ms,
                                      raft_fixture_time(&x->f))) {
    for (uint64_t id = 1; id <= 2; id++) {
      assert_int_equal(lmz_dir_encode_lease_renew(&b, id, 3000, 0), 0);
      commit(x, &b);
    }
    raft_fixture_step_until_elapsed(&x->f, 1000);
  }
  assert_true(raft_fixture_time(&x->f) >= heard + 3300);
  uint64_t live[4];
  assert_int_equal(lmz_dir_live_nodes(ld, raft_fixture_time(&x->f), live, 4),
                   2);
  /* a MarkDown decided on an older lease sequence is stale */
  assert_int_equal(lmz_dir_encode_mark_down(&b, 3, seq - 1, 0), 0);
  assert_int_equal(commit(x, &b)->items[0].status, LMZ_ESTALE);
  assert_int_equal(lmz_dir_encode_mark_down(&b, 3, seq, 0), 0);
  assert_int_equal(commit(x, &b)->items[0].status, LMZ_DIR_PLACED);
  assert_int_equal(lmz_dir_encode_moves(&b, &mv, 1), 0);
  struct prop *p = commit(x, &b);
  assert_int_equal(p->items[0].status, LMZ_DIR_PLACED);
  assert_int_equal(p->items[0].epoch, 2);
  /* the fenced node cannot renew its way back in */
  assert_int_equal(lmz_dir_encode_lease_renew(&b, 3, 3000, 0), 0);
  assert_int_equal(commit(x, &b)->items[0].status, LMZ_EUNAVAILABLE);
  wait_applied(x, 7, raft_last_index(raft_fixture_get(&x->f, l)));
  assert_same(x, 7);
  assert_lookup(x->dirs[2], "f", 1, 2);
  lmz_buf_free(&b);
  fx_free(x);
}

/* Two identical runs end at the identical fake time and state. */
static raft_time run_once(uint64_t *actors) {
  struct fx *x = fx_new(3, 16);
  register_nodes(x, 3);
  lmz_buf b = LMZ_BUF_INIT;
  for (int i = 0; i < 10; i++) {
    encode_claims(&b, i % 2 ? "odd" : "even", 100 + i, 3);
    commit(x, &b);
  }
  raft_time t = raft_fixture_time(&x->f);
  *actors = lmz_dir_n_actors(x->dirs[0]);
  lmz_buf_free(&b);
  fx_free(x);
  return t;
}

static void test_deterministic(void **state) {
  (void)state;
  uint64_t a1, a2;
  raft_time t1 = run_once(&a1), t2 = run_once(&a2);
  assert_int_equal(t1, t2);
  assert_int_equal(a1, a2);
  assert_int_equal(a1, 108 + 109); /* even0..107, odd0..108 */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_elect_and_claim),
      cmocka_unit_test(test_kill_leader_reelect),
      cmocka_unit_test(test_partition_minority_cannot_commit),
      cmocka_unit_test(test_join_by_snapshot),
      cmocka_unit_test(test_lease_fencing),
      cmocka_unit_test(test_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
