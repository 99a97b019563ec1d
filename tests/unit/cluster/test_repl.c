/* tests/unit/cluster/test_repl.c - replication streams (cluster/repl.h) and
 * the batch wire format (storage/store.h), under a fake clock.
 *
 * Each test builds a small world: 2 or 3 nodes, each with a real RocksDB
 * store in a temporary directory, a real directory replica (lmz_dir_t, every
 * command applied to every replica) and a replicator. ops.send packs the
 * frame with the real framing (proto/frame.h) into a queue the test
 * delivers by hand (unpacking it again), ops.propose queues the encoded
 * DirCommand; the test commits it (applied to every replica, then
 * lmz_repl_dir_changed everywhere, then the callback) or fails it (a
 * minority owner). Store commits complete on the storage thread: pump()
 * runs the loop until every store is idle - bounded by real completions,
 * never by sleeping. */
#include "lib/testlib.h"
#include "lib/tl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/directory.h"
#include "cluster/repl.h"
#include "core/err.h"
#include "proto/frame.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "storage/store_int.h" /* lmz__store_fail_writes: a backup's disk */

#define MAXN 4

struct qframe {
  struct qframe *next;
  uint64_t from, to;
  lmz_buf bytes;
};

struct qprop {
  struct qprop *next;
  uint64_t from;
  lmz_buf cmd;
  void (*cb)(void *, int, int);
  void *arg;
};

struct world;

struct node {
  struct world *w;
  uint64_t id;
  lmz_dir_t dir_mem, *dir; /* dir = &dir_mem once initialized */
  lmz_store_t *store;
  char *path;
  lmz_repl_t *r;
  int progress;
};

struct world {
  uv_loop_t loop;
  uint64_t now;
  size_t n;
  struct node nodes[MAXN + 1]; /* index = node id; 0 unused */
  struct qframe *fhead, **ftail;
  struct qprop *phead, **ptail;
  bool hold[MAXN + 1];      /* frames to this node stay queued */
  bool link_down[MAXN + 1]; /* sends to this node fail with LMZ_ECLOSED */
  bool overload[MAXN + 1];  /* sends to this node fail with LMZ_EOVERLOAD */
  size_t n_frames[MAXN + 1][MAXN + 1]; /* frames sent [from][to] */
  int propose_rv;                      /* != 0: propose() refuses at once */
  size_t n_proposals;
  uint32_t factor;
  uint64_t retention; /* lmz_repl_options.retention_bytes (0: default) */
};

static struct world *W;

/* ---- fakes --------------------------------------------------------------- */

static uint64_t fake_now(void *ctx) {
  struct node *n = ctx;
  return n->w->now;
}

static int fake_send(void *ctx, uint64_t to, const Lmz__Frame *f) {
  struct node *n = ctx;
  struct world *w = n->w;
  if (to == 0 || to > w->n || w->link_down[to])
    return LMZ_ECLOSED;
  if (w->overload[to])
    return LMZ_EOVERLOAD;
  w->n_frames[n->id][to]++;
  struct qframe *q = calloc(1, sizeof *q);
  assert_non_null(q);
  assert_true(lmz_frame_append(&q->bytes, f, 0) > 0);
  q->from = n->id;
  q->to = to;
  *w->ftail = q;
  w->ftail = &q->next;
  return 0;
}

static int fake_propose(void *ctx, const lmz_buf *cmd,
                        void (*cb)(void *, int, int), void *arg) {
  struct node *n = ctx;
  struct world *w = n->w;
  if (w->propose_rv)
    return w->propose_rv;
  struct qprop *p = calloc(1, sizeof *p);
  assert_non_null(p);
  assert_int_equal(lmz_buf_append(&p->cmd, cmd->data, cmd->len), 0);
  p->from = n->id;
  p->cb = cb;
  p->arg = arg;
  *w->ptail = p;
  w->ptail = &p->next;
  w->n_proposals++;
  return 0;
}

static size_t fake_candidates(void *ctx, uint64_t *out, size_t cap) {
  struct node *n = ctx;
  size_t k = 0;
  for (uint64_t id = 1; id <= n->w->n && k < cap; id++)
    if (id != n->id && !n->w->link_down[id] &&
        lmz_dir_node_get(n->dir, id)->state == LMZ_DIR_UP)
      out[k++] = id; /* UP only, as cluster/placement.h's set */
  return k;
}

static void on_progress(void *arg) {
  struct node *n = arg;
  n->progress++;
}

/* ---- the world ----------------------------------------------------------- */

/* Applies an encoded command to every replica; returns the first item's
 * status on node 1 (all replicas decide the same). */
static int apply_all(struct world *w, const lmz_buf *cmd, bool notify) {
  int item = 0;
  for (uint64_t id = 1; id <= w->n; id++) {
    const struct lmz_dir_result *res;
    assert_int_equal(lmz_dir_apply(w->nodes[id].dir, cmd->data, cmd->len, &res),
                     0);
    if (id == 1)
      item = res->n ? res->items[0].status : 0;
  }
  for (uint64_t id = 1; notify && id <= w->n; id++)
    if (w->nodes[id].r)
      lmz_repl_dir_changed(w->nodes[id].r);
  return item;
}

static void world_node(struct world *w, uint64_t id) {
  struct node *n = &w->nodes[id];
  n->w = w;
  n->id = id;
  assert_int_equal(lmz_dir_init(n->dir = &n->dir_mem), 0);
  n->path = tl_mkdtemp("lmz-repl");
  assert_non_null(n->path);
  struct lmz_store_opts so;
  lmz_store_opts_init(&so, n->path);
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(tl_store_open(&n->store, &w->loop, &so, err), 0);
}

static void world_repl(struct world *w, uint64_t id) {
  struct node *n = &w->nodes[id];
  struct lmz_repl_options o = {0};
  o.node_id = id;
  o.factor = w->factor;
  o.max_lag_ms = 1000;
  o.retention_bytes = w->retention;
  o.dir = n->dir;
  o.store = n->store;
  o.ops = (struct lmz_repl_ops){fake_now, fake_send, fake_propose,
                                fake_candidates, n};
  o.on_progress = on_progress;
  o.progress_arg = n;
  assert_int_equal(lmz_repl_new(&n->r, &o), 0);
}

static struct world *world_new(size_t n_nodes, uint32_t factor) {
  struct world *w = calloc(1, sizeof *w);
  assert_non_null(w);
  assert_int_equal(uv_loop_init(&w->loop), 0);
  w->n = n_nodes;
  w->factor = factor;
  w->ftail = &w->fhead;
  w->ptail = &w->phead;
  w->now = 1000;
  for (uint64_t id = 1; id <= n_nodes; id++)
    world_node(w, id);
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t id = 1; id <= n_nodes; id++) {
    char a[32];
    snprintf(a, sizeof a, "127.0.0.1:%u", (unsigned)(7000 + id));
    assert_int_equal(lmz_dir_encode_node_upsert(&b, id, LMZ_DIR_UP, a, a, id),
                     0);
    apply_all(w, &b, false);
    lmz_buf_reset(&b);
  }
  lmz_buf_free(&b);
  for (uint64_t id = 1; id <= n_nodes; id++)
    world_repl(w, id);
  W = w;
  return w;
}

/* Runs the loop until no store has a commit in flight. */
static void run_stores(struct world *w) {
  for (int guard = 0; guard < 100000; guard++) {
    size_t busy = 0;
    for (uint64_t id = 1; id <= w->n; id++)
      busy += lmz_store_queued(w->nodes[id].store, NULL);
    if (busy == 0) {
      uv_run(&w->loop, UV_RUN_NOWAIT);
      return;
    }
    uv_run(&w->loop, UV_RUN_ONCE); /* returns after a completion */
  }
  fail_msg("stores never went idle");
}

static void dispatch(struct world *w, struct qframe *q) {
  Lmz__Frame *f;
  assert_true(q->bytes.len >= LMZ_FRAME_HDR_LEN);
  assert_int_equal(lmz_frame_unpack(q->bytes.data + LMZ_FRAME_HDR_LEN,
                                    q->bytes.len - LMZ_FRAME_HDR_LEN, &f),
                   0);
  lmz_repl_t *r = w->nodes[q->to].r;
  if (f->body_case == LMZ__FRAME__BODY_REPL_APPEND)
    lmz_repl_on_append(r, q->from, f->repl_append);
  else if (f->body_case == LMZ__FRAME__BODY_REPL_ACK)
    lmz_repl_on_ack(r, q->from, f->repl_ack);
  else
    fail_msg("unexpected frame %d", (int)f->body_case);
  lmz_frame_free(f);
}

/* Delivers the queued frames whose destination is not held. Returns how
 * many. */
static size_t deliver(struct world *w) {
  size_t n = 0;
  struct qframe **pp = &w->fhead;
  while (*pp) {
    struct qframe *q = *pp;
    if (w->hold[q->to]) {
      pp = &q->next;
      continue;
    }
    *pp = q->next;
    if (!*pp)
      w->ftail = pp;
    dispatch(w, q);
    lmz_buf_free(&q->bytes);
    free(q);
    n++;
  }
  return n;
}

static void flush_all(struct world *w) {
  for (uint64_t id = 1; id <= w->n; id++)
    lmz_repl_flush(w->nodes[id].r);
}

/* flush + deliver + store completions, until nothing moves (a store
 * completion may make a record sendable: flush again before stopping). */
static void pump(struct world *w) {
  for (int round = 0; round < 1000; round++) {
    flush_all(w);
    run_stores(w);
    size_t moved = deliver(w);
    run_stores(w);
    flush_all(w);
    if (moved == 0 && deliver(w) == 0)
      return;
  }
  fail_msg("pump never settled");
}

/* Commits (or fails, status != 0) every queued proposal. Returns how many. */
static size_t decide(struct world *w, int status) {
  size_t n = 0;
  while (w->phead) {
    struct qprop *p = w->phead;
    w->phead = p->next;
    if (!w->phead)
      w->ptail = &w->phead;
    int item = status == 0 ? apply_all(w, &p->cmd, true) : 0;
    p->cb(p->arg, status, item);
    lmz_buf_free(&p->cmd);
    free(p);
    n++;
  }
  return n;
}

/* Pops the queued proposal number k (0 = oldest) and applies it to every
 * replica; returns it with its callback not yet run (*item: its status). */
static struct qprop *apply_nth(struct world *w, size_t k, int *item) {
  struct qprop **pp = &w->phead;
  for (size_t i = 0; i < k; i++) {
    assert_non_null(*pp);
    pp = &(*pp)->next;
  }
  struct qprop *p = *pp;
  assert_non_null(p);
  *pp = p->next;
  if (!*pp)
    w->ptail = pp;
  *item = apply_all(w, &p->cmd, true);
  return p;
}

static void callback(struct qprop *p, int item) {
  p->cb(p->arg, 0, item);
  lmz_buf_free(&p->cmd);
  free(p);
}

/* Commits the queued proposal number k (0 = oldest) only. */
static void decide_nth(struct world *w, size_t k) {
  struct qprop **pp = &w->phead;
  for (size_t i = 0; i < k; i++) {
    assert_non_null(*pp);
    pp = &(*pp)->next;
  }
  struct qprop *p = *pp;
  assert_non_null(p);
  *pp = p->next;
  if (!*pp)
    w->ptail = pp;
  int item = apply_all(w, &p->cmd, true);
  p->cb(p->arg, 0, item);
  lmz_buf_free(&p->cmd);
  free(p);
}

static void world_free(struct world *w) {
  for (uint64_t id = 1; id <= w->n; id++)
    lmz_repl_free(w->nodes[id].r);
  decide(w, LMZ_ECANCELED); /* disarmed callbacks: they only free */
  while (w->fhead) {
    struct qframe *q = w->fhead;
    w->fhead = q->next;
    lmz_buf_free(&q->bytes);
    free(q);
  }
  for (uint64_t id = 1; id <= w->n; id++) {
    struct node *n = &w->nodes[id];
    tl_store_close(n->store);
    lmz_dir_close(n->dir);
  }
  assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&w->loop), 0);
  for (uint64_t id = 1; id <= w->n; id++) {
    tl_rmtree(w->nodes[id].path);
    free(w->nodes[id].path);
  }
  free(w);
  W = NULL;
}

/* ---- actors and turns ---------------------------------------------------- */

static void claim(struct world *w, const char *inst, uint64_t owner,
                  const uint64_t *backups, uint32_t n_backups) {
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_dir_claim c = {"C", 1, inst,      strlen(inst), owner,
                            1,   0, n_backups, backups};
  assert_int_equal(lmz_dir_encode_claims(&b, &c, 1), 0);
  assert_true(apply_all(w, &b, true) >= 0);
  lmz_buf_free(&b);
}

static struct lmz_dir_placement placement(struct world *w, uint64_t on,
                                          const char *inst) {
  struct lmz_dir_placement p;
  assert_int_equal(
      lmz_dir_placement_get(w->nodes[on].dir, "C", 1, inst, strlen(inst), &p),
      0);
  return p;
}

static int key_of(uint8_t *k, const char *inst, const char *key) {
  int kl = lmz_key_actor(k, "C", 1, inst, strlen(inst), LMZ_KEY_SPACE_USER, key,
                         strlen(key));
  assert_true(kl > 0);
  return kl;
}

/* One turn on the owner: ship the batch, then commit it locally (the
 * order lmz_repl_ship asks for). Returns the token. */
static uint64_t turn(struct world *w, uint64_t owner, const char *inst,
                     const char *key, const char *val) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = key_of(k, inst, key);
  lmz_batch *b = lmz_batch_new();
  assert_non_null(b);
  assert_int_equal(lmz_batch_put(b, k, (size_t)kl, val, strlen(val)), 0);
  uint8_t nk[LMZ_KEY_MAX]; /* a node-level key (alarm index): stays local */
  int nkl = lmz_key_node(nk, "alarmq-test", 11);
  assert_int_equal(lmz_batch_put(b, nk, (size_t)nkl, "", 0), 0);
  uint64_t token = 99;
  assert_int_equal(lmz_repl_ship(w->nodes[owner].r, "C", inst, b, false, &token), 0);
  assert_int_equal(lmz_store_commit(w->nodes[owner].store, b, NULL, NULL), 0);
  return token;
}

/* The value of `key` of actor C/inst in node's store, or NULL (static). */
static const char *read_key(struct world *w, uint64_t node, const char *inst,
                            const char *key) {
  static char out[256];
  uint8_t k[LMZ_KEY_MAX];
  int kl = key_of(k, inst, key);
  lmz_buf v = LMZ_BUF_INIT;
  int rv = lmz_store_get(w->nodes[node].store, k, (size_t)kl, &v);
  if (rv == LMZ_ENOTFOUND) {
    lmz_buf_free(&v);
    return NULL;
  }
  assert_int_equal(rv, 0);
  assert_true(v.len < sizeof out);
  memcpy(out, v.data, v.len);
  out[v.len] = '\0';
  lmz_buf_free(&v);
  return out;
}

static uint64_t acked(struct world *w, uint64_t node) {
  return lmz_repl_acked_through(w->nodes[node].r);
}

/* ---- tests: the stream --------------------------------------------------- */

/* Records are shipped, applied on every backup, and open the gate. */
static void test_ship_apply(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t bk[] = {2, 3};
  claim(w, "a", 1, bk, 2);
  uint64_t t1 = turn(w, 1, "a", "k1", "v1");
  uint64_t t2 = turn(w, 1, "a", "k2", "v2");
  assert_int_equal(t1, 1);
  assert_int_equal(t2, 2);
  assert_int_equal(acked(w, 1), 0);
  pump(w);
  assert_int_equal(acked(w, 1), 2);
  assert_true(w->nodes[1].progress > 0);
  for (uint64_t b = 2; b <= 3; b++) {
    const char *v = read_key(w, b, "a", "k1");
    assert_non_null(v);
    assert_string_equal(v, "v1");
    v = read_key(w, b, "a", "k2");
    assert_non_null(v);
    assert_string_equal(v, "v2");
    /* the node-level key stayed on the owner */
    uint8_t nk[LMZ_KEY_MAX];
    int nkl = lmz_key_node(nk, "alarmq-test", 11);
    lmz_buf v2 = LMZ_BUF_INIT;
    assert_int_equal(lmz_store_get(w->nodes[b].store, nk, (size_t)nkl, &v2),
                     LMZ_ENOTFOUND);
    lmz_buf_free(&v2);
  }
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.applied_records, 2);
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.shipped, 2);
  assert_int_equal(st.pending_tokens, 0);
  assert_int_equal(st.n_pairs, 2);
  struct lmz_repl_pair_stats ps;
  lmz_repl_pair_at(w->nodes[1].r, 0, &ps);
  assert_true(ps.outgoing && ps.in_sync);
  assert_int_equal(ps.acked_seq, 2);
  assert_int_equal(ps.lag_records, 0);
  world_free(w);
}

/* An actor without backups waits for nothing; with R = 1 ship is a no-op. */
static void test_no_backups_token_zero(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  claim(w, "solo", 1, NULL, 0);
  assert_int_equal(turn(w, 1, "solo", "k", "v"), 0);
  /* not our actor: the turn must fail */
  lmz_batch *b = lmz_batch_new();
  uint64_t tok = 5;
  claim(w, "theirs", 2, NULL, 0);
  assert_int_equal(lmz_repl_ship(w->nodes[1].r, "C", "theirs", b, false, &tok),
                   LMZ_ESTALE);
  assert_int_equal(tok, 0);
  lmz_batch_free(b);
  world_free(w);
}

/* The gate waits for every listed backup, and acked_through is ordered. */
static void test_gate_waits_every_backup(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b23[] = {2, 3}, b2[] = {2}, b3[] = {3};
  claim(w, "a", 1, b23, 2);
  uint64_t t1 = turn(w, 1, "a", "k", "v");
  w->hold[3] = true;
  pump(w);
  assert_int_equal(acked(w, 1), t1 - 1); /* node 2 acked, node 3 not yet */
  w->hold[3] = false;
  pump(w);
  assert_int_equal(acked(w, 1), t1);

  /* order: x waits for node 2, y for node 3; y acked first */
  claim(w, "x", 1, b2, 1);
  claim(w, "y", 1, b3, 1);
  uint64_t tx = turn(w, 1, "x", "k", "vx");
  uint64_t ty = turn(w, 1, "y", "k", "vy");
  assert_true(ty == tx + 1);
  w->hold[2] = true;
  pump(w);
  assert_int_equal(acked(w, 1), tx - 1); /* ty done, tx holds it back */
  w->hold[2] = false;
  pump(w);
  assert_int_equal(acked(w, 1), ty);
  world_free(w);
}

/* A lagging backup: stream closed, PAIR_OUT proposed; the gate opens only
 * once the PAIR_OUT is applied. */
static void test_lag_closes_and_pairs_out(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  w->hold[2] = true;
  uint64_t t = turn(w, 1, "a", "k", "v");
  pump(w);
  w->now += 999;
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(w->n_proposals, 0); /* within max_lag_ms */
  w->now += 2;
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(w->n_proposals, 1); /* PAIR_OUT */
  assert_int_equal(acked(w, 1), t - 1);
  w->now += 50;
  struct lmz_repl_pair_stats ps;
  lmz_repl_pair_at(w->nodes[1].r, 0, &ps);
  assert_int_equal(ps.node_id, 2);
  assert_false(ps.in_sync);
  assert_int_equal(ps.lag_ms, 50); /* out of sync since it closed */
  /* a turn while closed still waits for the listed backup */
  uint64_t t2 = turn(w, 1, "a", "k", "v2");
  assert_int_equal(acked(w, 1), t - 1);
  assert_int_equal(decide(w, 0), 1);
  assert_int_equal(placement(w, 1, "a").n_backups, 0);
  assert_int_equal(acked(w, 1), t2);
  world_free(w);
}

/* A minority-side owner: PAIR_OUT never commits, nothing is acknowledged,
 * and the proposal is retried each tick. */
static void test_minority_owner_keeps_waiting(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  w->hold[2] = true;
  uint64_t t = turn(w, 1, "a", "k", "v");
  pump(w);
  w->now += 5000;
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(decide(w, LMZ_ENOTLEADER), 1);
  assert_int_equal(acked(w, 1), t - 1);
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(decide(w, LMZ_ENOTLEADER), 1); /* retried */
  w->propose_rv = LMZ_ENOTLEADER;                 /* refused at once */
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(acked(w, 1), t - 1);
  assert_int_equal(placement(w, 1, "a").n_backups, 1);
  w->propose_rv = 0;
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(decide(w, 0), 1); /* majority back: committed */
  assert_int_equal(acked(w, 1), t);
  world_free(w);
}

/* Link down: the stream closes at once and PAIR_OUT follows. */
static void test_link_down_pairs_out(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  w->hold[2] = true;
  uint64_t t = turn(w, 1, "a", "k", "v");
  w->link_down[2] = true;
  lmz_repl_on_link(w->nodes[1].r, 2, false);
  assert_int_equal(w->n_proposals, 1);
  assert_int_equal(acked(w, 1), t - 1);
  decide(w, 0);
  assert_int_equal(acked(w, 1), t);
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.pair_outs, 1);
  world_free(w);
}

/* A disk error on the backup: negative ack, the owner drops it. */
static void test_backup_disk_error(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  uint64_t t = turn(w, 1, "a", "k", "v");
  lmz__store_fail_writes(w->nodes[2].store, 1);
  pump(w);
  assert_int_equal(acked(w, 1), t - 1);
  assert_int_equal(w->n_proposals, 1); /* PAIR_OUT after the refusal */
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.refused, 1);
  decide(w, 0);
  assert_int_equal(acked(w, 1), t);
  world_free(w);
}

/* ---- tests: hostile appends ---------------------------------------------- */

struct ack {
  uint64_t gen, seq;
  int status;
  char detail[256];
};

/* Pops the first frame queued from -> to; it must be a ReplAck. */
static struct ack take_ack(struct world *w, uint64_t from, uint64_t to) {
  struct ack a = {0};
  for (struct qframe **pp = &w->fhead; *pp; pp = &(*pp)->next) {
    struct qframe *q = *pp;
    if (q->from != from || q->to != to)
      continue;
    *pp = q->next;
    if (!*pp)
      w->ftail = pp;
    Lmz__Frame *f;
    assert_int_equal(lmz_frame_unpack(q->bytes.data + LMZ_FRAME_HDR_LEN,
                                      q->bytes.len - LMZ_FRAME_HDR_LEN, &f),
                     0);
    assert_int_equal(f->body_case, LMZ__FRAME__BODY_REPL_ACK);
    a.gen = f->repl_ack->generation;
    a.seq = f->repl_ack->seq;
    a.status = f->repl_ack->status;
    snprintf(a.detail, sizeof a.detail, "%s", f->repl_ack->detail);
    lmz_frame_free(f);
    lmz_buf_free(&q->bytes);
    free(q);
    return a;
  }
  fail_msg("no ack from %llu to %llu", (unsigned long long)from,
           (unsigned long long)to);
  return a;
}

/* Record data: a batch putting `key` of actor C/<key_inst>. */
static void ops_data(lmz_buf *out, const char *key_inst, const char *key) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = key_of(k, key_inst, key);
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_batch_put(b, k, (size_t)kl, "x", 1), 0);
  assert_int_equal(lmz_batch_serialize(b, NULL, out), 0);
  lmz_batch_free(b);
}

/* Hands node 2 an append from node 1 with one record for actor C/inst. */
static struct ack append1(struct world *w, uint64_t gen, uint64_t seq,
                          const char *inst, uint64_t epoch, uint32_t kind,
                          const void *data, size_t len) {
  Lmz__ReplRecord rec = LMZ__REPL_RECORD__INIT;
  rec.binding = (ProtobufCBinaryData){1, (uint8_t *)"C"};
  rec.instance = (ProtobufCBinaryData){strlen(inst), (uint8_t *)inst};
  rec.epoch = epoch;
  rec.kind = kind;
  rec.data = (ProtobufCBinaryData){len, (uint8_t *)data};
  Lmz__ReplRecord *recs[] = {&rec};
  Lmz__ReplAppend m = LMZ__REPL_APPEND__INIT;
  m.generation = gen;
  m.first_seq = seq;
  m.n_records = 1;
  m.records = recs;
  lmz_repl_on_append(w->nodes[2].r, 1, &m);
  run_stores(w);
  return take_ack(w, 2, 1);
}

static void test_refusals_apply_nothing(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "pre1", 1, NULL, 0); /* so that a's epoch is 3: 2 is stale */
  claim(w, "pre2", 1, NULL, 0);
  claim(w, "a", 1, b2, 1);
  uint64_t epoch = placement(w, 2, "a").epoch;
  lmz_buf good = LMZ_BUF_INIT, other = LMZ_BUF_INIT;
  ops_data(&good, "a", "k");
  ops_data(&other, "b", "k"); /* a key of another actor */
  struct ack a =
      append1(w, 7, 1, "a", epoch, LMZ_REPL_KIND_OPS, good.data, good.len);
  assert_int_equal(a.status, 0); /* the baseline is accepted */
  assert_int_equal(a.seq, 1);
  assert_int_equal(a.gen, 7);
  assert_non_null(read_key(w, 2, "a", "k"));

  /* sequence gap in the same generation */
  a = append1(w, 7, 3, "a", epoch, LMZ_REPL_KIND_OPS, good.data, good.len);
  assert_int_equal(a.status, LMZ_EBADMSG);
  assert_non_null(strstr(a.detail, "gap"));
  /* forgotten: the generation continues nowhere, seq 2 is a gap too */
  a = append1(w, 7, 2, "a", epoch, LMZ_REPL_KIND_OPS, good.data, good.len);
  assert_int_equal(a.status, LMZ_EBADMSG);

  /* each of these is refused and applies nothing (actor "z" is unknown
   * locally, so only the record itself can be at fault) */
  lmz_buf zk = LMZ_BUF_INIT;
  ops_data(&zk, "z", "k");
  a = append1(w, 8, 1, "a", epoch - 1, LMZ_REPL_KIND_OPS, good.data, good.len);
  assert_int_equal(a.status, LMZ_ESTALE); /* stale epoch */
  a = append1(w, 9, 1, "z", 1, LMZ_REPL_KIND_OPS, other.data, other.len);
  assert_int_equal(a.status, LMZ_EACCESS); /* key of actor b in z's record */
  a = append1(w, 10, 1, "z", 1, LMZ_REPL_KIND_OPS, "\x01\x05garbage", 9);
  assert_true(a.status < 0); /* garbage bytes */
  a = append1(w, 11, 1, "z", 1, LMZ_REPL_KIND_FILL, zk.data, zk.len);
  assert_true(a.status < 0); /* not a dump */
  a = append1(w, 12, 1, "z", 1, 7, zk.data, zk.len);
  assert_int_equal(a.status, LMZ_EBADMSG); /* unknown kind */
  /* an append without records */
  Lmz__ReplAppend empty = LMZ__REPL_APPEND__INIT;
  empty.generation = 1;
  empty.first_seq = 1;
  lmz_repl_on_append(w->nodes[2].r, 1, &empty);
  assert_int_equal(take_ack(w, 2, 1).status, LMZ_EBADMSG); /* no records */
  assert_null(read_key(w, 2, "b", "k"));
  assert_null(read_key(w, 2, "z", "k"));
  /* a new generation from seq 1 is accepted again */
  a = append1(w, 13, 1, "z", 1, LMZ_REPL_KIND_OPS, zk.data, zk.len);
  assert_int_equal(a.status, 0);
  assert_non_null(read_key(w, 2, "z", "k"));
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.refused, 8);
  lmz_buf_free(&good);
  lmz_buf_free(&other);
  lmz_buf_free(&zk);
  world_free(w);
}

/* Two nodes; actors a and b owned by node 1, backed up by node 2; their
 * epochs. */
static struct world *world_ab(uint64_t *ea, uint64_t *eb) {
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  claim(w, "b", 1, b2, 1);
  *ea = placement(w, 2, "a").epoch;
  *eb = placement(w, 2, "b").epoch;
  return w;
}

/* A FRESH record (the first commit of a fresh placement, actor/fresh.c):
 * what the backup held of the actor is dropped in the batch that applies
 * it; an OPS record adds to what is there; a FRESH record on an empty
 * range drops nothing. */
static void test_fresh_record_drops_stale_copy(void **state) {
  (void)state;
  uint64_t ea, eb;
  struct world *w = world_ab(&ea, &eb);
  lmz_buf old = LMZ_BUF_INIT, cur = LMZ_BUF_INIT, bk = LMZ_BUF_INIT;
  ops_data(&old, "a", "old");
  ops_data(&cur, "a", "new");
  ops_data(&bk, "b", "k");
  struct ack k =
      append1(w, 5, 1, "a", ea, LMZ_REPL_KIND_OPS, old.data, old.len);
  assert_int_equal(k.status, 0);
  k = append1(w, 5, 2, "a", ea, LMZ_REPL_KIND_OPS, cur.data, cur.len);
  assert_int_equal(k.status, 0);
  assert_non_null(read_key(w, 2, "a", "old")); /* OPS: added */
  assert_non_null(read_key(w, 2, "a", "new"));
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.stale_dropped, 0);
  /* until the node knows its FRESH SINCE epoch, and for placements at or
   * below it (a store written before these records), nothing is dropped */
  k = append1(w, 5, 3, "a", ea, LMZ_REPL_KIND_OPS_FRESH, cur.data, cur.len);
  assert_int_equal(k.status, 0);
  lmz_repl_set_fresh_since(w->nodes[2].r, ea);
  k = append1(w, 5, 4, "a", ea, LMZ_REPL_KIND_OPS_FRESH, cur.data, cur.len);
  assert_int_equal(k.status, 0);
  assert_non_null(read_key(w, 2, "a", "old"));
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.stale_dropped, 0);
  lmz_repl_set_fresh_since(w->nodes[2].r, ea - 1);
  k = append1(w, 5, 5, "a", ea, LMZ_REPL_KIND_OPS_FRESH, cur.data, cur.len);
  assert_int_equal(k.status, 0);
  assert_null(read_key(w, 2, "a", "old")); /* FRESH: the copy is gone */
  assert_non_null(read_key(w, 2, "a", "new")); /* the record applied */
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.stale_dropped, 1);
  k = append1(w, 5, 6, "b", eb, LMZ_REPL_KIND_OPS_FRESH, bk.data, bk.len);
  assert_int_equal(k.status, 0);
  assert_non_null(read_key(w, 2, "b", "k"));
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.stale_dropped, 1); /* nothing to drop */
  /* the empty barrier of a first turn that only read (turn.c) */
  lmz_batch *e = lmz_batch_new();
  lmz_buf none = LMZ_BUF_INIT;
  assert_int_equal(lmz_batch_serialize(e, NULL, &none), 0);
  k = append1(w, 5, 7, "b", eb, LMZ_REPL_KIND_OPS_FRESH, none.data, none.len);
  assert_int_equal(k.status, 0);
  assert_null(read_key(w, 2, "b", "k"));
  lmz_repl_get_stats(w->nodes[2].r, &st);
  assert_int_equal(st.stale_dropped, 2);
  lmz_batch_free(e);
  lmz_buf_free(&none);
  lmz_buf_free(&old);
  lmz_buf_free(&cur);
  lmz_buf_free(&bk);
  world_free(w);
}

/* The epoch rule: the owner at the directory's epoch, or a newer epoch. */
static void test_epoch_owner_rule(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b2[] = {2};
  claim(w, "a", 3, b2, 1); /* owned by node 3, not by node 1 */
  uint64_t epoch = placement(w, 2, "a").epoch;
  lmz_buf d = LMZ_BUF_INIT;
  ops_data(&d, "a", "k");
  struct ack a = append1(w, 5, 1, "a", epoch, LMZ_REPL_KIND_OPS, d.data, d.len);
  assert_int_equal(a.status, LMZ_ESTALE); /* node 1 is not the owner */
  assert_null(read_key(w, 2, "a", "k"));
  a = append1(w, 6, 1, "a", epoch + 1, LMZ_REPL_KIND_OPS, d.data, d.len);
  assert_int_equal(a.status, 0); /* newer than our replica knows */
  lmz_buf_free(&d);
  world_free(w);
}

/* A drain imported actor a on node 2 from node 1: until the directory shows
 * the move (or the fence expires), node 1's records of a are refused, so an
 * older record resent after the import cannot overwrite the imported state;
 * other actors' records still apply. */
static void test_import_fences_old_owner(void **state) {
  (void)state;
  uint64_t ea, eb;
  struct world *w = world_ab(&ea, &eb);
  lmz_buf da = LMZ_BUF_INIT, db = LMZ_BUF_INIT;
  ops_data(&da, "a", "k");
  ops_data(&db, "b", "k");
  lmz_repl_imported(w->nodes[2].r, "C", "a", 1);
  struct ack k = append1(w, 5, 1, "a", ea, LMZ_REPL_KIND_OPS, da.data, da.len);
  assert_int_equal(k.status, LMZ_ESTALE);
  assert_non_null(strstr(k.detail, "drain"));
  assert_null(read_key(w, 2, "a", "k"));
  k = append1(w, 6, 1, "b", eb, LMZ_REPL_KIND_OPS, db.data, db.len);
  assert_int_equal(k.status, 0); /* only a is fenced */
  /* the fence lapses: a drain that never moved a */
  w->now += 60000; /* LMZ__REPL_IMPORT_FENCE_MS (cluster/repl_int.h) */
  k = append1(w, 7, 1, "a", ea, LMZ_REPL_KIND_OPS, da.data, da.len);
  assert_int_equal(k.status, 0);
  assert_non_null(read_key(w, 2, "a", "k"));
  lmz_buf_free(&da);
  lmz_buf_free(&db);
  world_free(w);
}

/* ---- tests: refill ------------------------------------------------------- */

/* An actor with one backup of two wanted: node 3 is filled (its data
 * arrives, later turns follow the fill), then listed by BACKUPS_ADD. */
static void test_refill_under_replicated(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  turn(w, 1, "a", "old", "before-fill");
  pump(w);
  lmz_repl_tick(w->nodes[1].r); /* scan: starts the fill to node 3 */
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.fills_sent, 1);
  assert_int_equal(st.under_replicated, 1);
  /* a turn shipped before the dump is taken still reaches node 3 */
  uint64_t t = turn(w, 1, "a", "new", "after-fill");
  pump(w); /* barrier, export, FILL, apply, ack */
  assert_int_equal(acked(w, 1), t);
  assert_int_equal(decide(w, 0), 1); /* BACKUPS_ADD */
  struct lmz_dir_placement p = placement(w, 3, "a");
  assert_int_equal(p.n_backups, 2);
  assert_int_equal(p.backups[1], 3);
  const char *v = read_key(w, 3, "a", "old");
  assert_non_null(v);
  assert_string_equal(v, "before-fill");
  v = read_key(w, 3, "a", "new");
  assert_non_null(v);
  assert_string_equal(v, "after-fill");
  /* now listed: the next turn waits for node 3 as well */
  w->hold[3] = true;
  uint64_t t2 = turn(w, 1, "a", "k3", "v3");
  pump(w);
  assert_int_equal(acked(w, 1), t2 - 1);
  w->hold[3] = false;
  pump(w);
  assert_int_equal(acked(w, 1), t2);
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.fills_done, 1);
  w->now += 2 * LMZ_REPL_REFILL_PERIOD_MS;
  lmz_repl_tick(w->nodes[1].r);
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.under_replicated, 0);
  assert_int_equal(st.fills_sent, 1);
  world_free(w);
}

/* Refill work is bounded: dumps beyond LMZ_REPL_MAX_FILL_BYTES wait for a
 * later scan (their placeholders turn into deletes), and every actor is
 * filled in the end. */
static void test_refill_budget(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  size_t big = 3u << 20;
  char *val = malloc(big + 1);
  assert_non_null(val);
  memset(val, 'y', big);
  val[big] = '\0';
  char inst[6][8];
  for (int i = 0; i < 6; i++) {
    snprintf(inst[i], sizeof inst[i], "f%d", i);
    claim(w, inst[i], 1, NULL, 0);
    turn(w, 1, inst[i], "k", val); /* no backups: stays local */
  }
  run_stores(w);
  lmz_repl_tick(w->nodes[1].r);
  pump(w);
  assert_int_equal(decide(w, 0), 3); /* 3 x 3 MiB reach the 8 MiB budget */
  size_t listed = 0;
  for (int i = 0; i < 6; i++)
    listed += placement(w, 1, inst[i]).n_backups;
  assert_int_equal(listed, 3);
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  uint64_t sent = st.fills_sent;
  lmz_repl_tick(w->nodes[1].r); /* no time passed: scans are rate-limited */
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.fills_sent, sent);
  for (int round = 0; round < 4; round++) {
    w->now += LMZ_REPL_REFILL_MIN_MS;
    lmz_repl_tick(w->nodes[1].r);
    pump(w);
    decide(w, 0);
  }
  for (int i = 0; i < 6; i++) {
    assert_int_equal(placement(w, 1, inst[i]).n_backups, 1);
    lmz_buf got = LMZ_BUF_INIT;
    uint8_t k[LMZ_KEY_MAX];
    int kl = key_of(k, inst[i], "k");
    assert_int_equal(lmz_store_get(w->nodes[2].store, k, (size_t)kl, &got), 0);
    assert_int_equal(got.len, big);
    lmz_buf_free(&got);
  }
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.fills_done, 6);
  assert_int_equal(st.under_replicated, 0);
  free(val);
  world_free(w);
}

/* After a PAIR_OUT the owner refills: the same node on a new generation
 * (without retention: no catch-up). */
static void test_pair_out_then_refill(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  w->retention = UINT64_MAX;
  lmz_repl_free(w->nodes[1].r);
  world_repl(w, 1);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  turn(w, 1, "a", "k", "v1");
  w->hold[2] = true;
  pump(w);
  w->now += 5000;
  lmz_repl_tick(w->nodes[1].r);
  decide(w, 0); /* PAIR_OUT */
  assert_int_equal(placement(w, 1, "a").n_backups, 0);
  w->hold[2] = false;
  pump(w); /* the old generation's frames: acks are ignored */
  turn(w, 1, "a", "k", "v2"); /* no backups: token 0, not shipped */
  run_stores(w);
  w->now += LMZ_REPL_REFILL_MIN_MS; /* the lag tick scanned just now */
  lmz_repl_tick(w->nodes[1].r);     /* refill node 2 */
  pump(w);
  assert_int_equal(decide(w, 0), 1); /* BACKUPS_ADD */
  assert_int_equal(placement(w, 1, "a").n_backups, 1);
  const char *v = read_key(w, 2, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "v2");
  world_free(w);
}

/* ---- tests: flow, frames, failover --------------------------------------- */

/* A full link keeps the records; the next flush sends them. */
static void test_overload_retries(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  uint64_t t = turn(w, 1, "a", "k", "v");
  w->overload[2] = true;
  pump(w);
  assert_int_equal(w->n_frames[1][2], 0);
  assert_int_equal(acked(w, 1), t - 1);
  w->overload[2] = false;
  pump(w);
  assert_int_equal(w->n_frames[1][2], 1);
  assert_int_equal(acked(w, 1), t);
  world_free(w);
}

/* Records beyond LMZ_REPL_MAX_FRAME_BYTES are split over several frames
 * (one record is never split), and ship refuses a record over
 * LMZ_REPL_MAX_RECORD_BYTES. */
static void test_frames_split(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  size_t big = 9u << 20; /* two of them exceed one frame */
  char *val = malloc(big + 1);
  assert_non_null(val);
  memset(val, 'x', big);
  val[big] = '\0';
  turn(w, 1, "a", "k1", val);
  uint64_t t = turn(w, 1, "a", "k2", val);
  flush_all(w);
  assert_int_equal(w->n_frames[1][2], 2);
  pump(w);
  assert_int_equal(acked(w, 1), t);
  for (int i = 1; i <= 2; i++) { /* too big for read_key: compare here */
    lmz_buf got = LMZ_BUF_INIT;
    uint8_t k[LMZ_KEY_MAX];
    int kl = key_of(k, "a", i == 1 ? "k1" : "k2");
    assert_int_equal(lmz_store_get(w->nodes[2].store, k, (size_t)kl, &got), 0);
    assert_int_equal(got.len, big);
    assert_memory_equal(got.data, val, big);
    lmz_buf_free(&got);
  }
  free(val);
  size_t huge = LMZ_REPL_MAX_RECORD_BYTES + 1;
  val = calloc(1, huge);
  assert_non_null(val);
  lmz_batch *hb = lmz_batch_new();
  uint8_t k[LMZ_KEY_MAX];
  int kl = key_of(k, "a", "huge");
  assert_int_equal(lmz_batch_put(hb, k, (size_t)kl, val, huge), 0);
  uint64_t tok = 7;
  size_t frames = w->n_frames[1][2];
  assert_int_equal(lmz_repl_ship(w->nodes[1].r, "C", "a", hb, false, &tok),
                   LMZ_ETOOBIG);
  assert_int_equal(tok, 0);
  pump(w);
  assert_int_equal(w->n_frames[1][2], frames); /* nothing was queued */
  lmz_batch_free(hb);
  free(val);
  world_free(w);
}

/* The owner dies: MarkDown promotes its first backup (epoch + 1, empty
 * list); the new owner ships under the new epoch and refills the other
 * backup, which refuses the old owner's epoch from then on. */
static void test_failover_then_refill(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b23[] = {2, 3};
  claim(w, "a", 1, b23, 2);
  turn(w, 1, "a", "k", "v1");
  pump(w);
  uint64_t old_epoch = placement(w, 2, "a").epoch;
  w->link_down[1] = true;
  lmz_repl_on_link(w->nodes[2].r, 1, false);
  lmz_repl_on_link(w->nodes[3].r, 1, false);
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_mark_down(&b, 1, 0, 9), 0);
  apply_all(w, &b, true);
  lmz_buf_free(&b);
  struct lmz_dir_placement p = placement(w, 2, "a");
  assert_int_equal(p.node_id, 2);
  assert_int_equal(p.epoch, old_epoch + 1);
  assert_int_equal(p.n_backups, 0);
  const char *v = read_key(w, 2, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "v1"); /* the acknowledged write survived */
  assert_int_equal(turn(w, 2, "a", "k", "v2"), 0); /* no backups yet */
  run_stores(w);
  lmz_repl_tick(w->nodes[2].r);
  pump(w);
  assert_int_equal(decide(w, 0), 1); /* BACKUPS_ADD of node 3 */
  p = placement(w, 3, "a");
  assert_int_equal(p.n_backups, 1);
  assert_int_equal(p.backups[0], 3);
  v = read_key(w, 3, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "v2");
  uint64_t t = turn(w, 2, "a", "k", "v3");
  assert_true(t > 0);
  pump(w);
  assert_int_equal(acked(w, 2), t);
  world_free(w);
}

/* LOST TOKENS: node 1 fails over while a write of "a" waits for node 2
 * (node 3 acknowledged it). The token can never be acknowledged: it is
 * lost (reported LMZ_EUNAVAILABLE, never 1), acked_through moves past it,
 * and the fenced node, UP again, acknowledges its new actors' writes. */
static void test_failover_loses_waiting_token(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b23[] = {2, 3}, b3[] = {3};
  claim(w, "a", 1, b23, 2);
  uint64_t t1 = turn(w, 1, "a", "k", "v1");
  pump(w);
  assert_int_equal(acked(w, 1), t1);
  w->hold[2] = true;
  uint64_t t2 = turn(w, 1, "a", "k", "v2");
  pump(w);
  assert_int_equal(acked(w, 1), t1); /* node 3 acked, node 2 not */
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t2), 0);
  w->link_down[2] = true; /* node 1 loses node 2: PAIR_OUT never commits */
  lmz_repl_on_link(w->nodes[1].r, 2, false);
  assert_int_equal(decide(w, LMZ_ENOTLEADER), 1);
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t2), 0);
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_dir_encode_mark_down(&b, 1, 0, 9), 0);
  apply_all(w, &b, true); /* "a" fails over: node 1 no longer owns it */
  lmz_buf_reset(&b);
  assert_int_not_equal(placement(w, 1, "a").node_id, 1);
  assert_int_equal(acked(w, 1), t2);
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t1), 1);
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t2), LMZ_EUNAVAILABLE);
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t2), LMZ_EUNAVAILABLE);
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.tokens_lost, 1);

  /* fenced, node 1 registers UP again and serves a new actor */
  assert_int_equal(
      lmz_dir_encode_node_upsert(&b, 1, LMZ_DIR_UP, "a1", "a1", 10), 0);
  apply_all(w, &b, true);
  lmz_buf_free(&b);
  w->hold[2] = w->link_down[2] = false;
  claim(w, "b", 1, b3, 1);
  uint64_t t3 = turn(w, 1, "b", "k", "v3");
  assert_true(t3 > t2);
  pump(w);
  assert_int_equal(acked(w, 1), t3);
  assert_int_equal(lmz_repl_token_state(w->nodes[1].r, t3), 1);
  world_free(w);
}

/* ---- tests: catch-up (repl.h CATCH-UP) ----------------------------------- */

/* Node 2 (backup of "a" on node 1) drops off the link: PAIR_OUT, and node
 * 1 writes twice while it is away (the gate does not wait for it). */
static void blip_out(struct world *w) {
  w->link_down[2] = true;
  lmz_repl_on_link(w->nodes[1].r, 2, false);
  lmz_repl_on_link(w->nodes[2].r, 1, false);
  assert_int_equal(decide(w, 0), 1); /* PAIR_OUT */
  assert_int_equal(placement(w, 1, "a").n_backups, 0);
  turn(w, 1, "a", "k", "away1");
  turn(w, 1, "a", "j", "away2");
  run_stores(w);
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.pending_tokens, 0); /* nothing waits for node 2 */
}

/* The link is back: node 1 resumes (or refills) and lists node 2 again. */
static void blip_back(struct world *w) {
  w->link_down[2] = false;
  lmz_repl_on_link(w->nodes[1].r, 2, true);
  lmz_repl_on_link(w->nodes[2].r, 1, true);
  for (int i = 0; i < 5; i++) {
    w->now += 600;
    lmz_repl_tick(w->nodes[1].r);
    pump(w);
    lmz_repl_tick(w->nodes[1].r);
    decide(w, 0);
    pump(w);
  }
  struct lmz_dir_placement p = placement(w, 1, "a");
  assert_int_equal(p.n_backups, 1);
  assert_int_equal(p.backups[0], 2);
  const char *v = read_key(w, 2, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "away1");
  v = read_key(w, 2, "a", "j");
  assert_non_null(v);
  assert_string_equal(v, "away2");
  uint64_t t = turn(w, 1, "a", "k", "back");
  assert_true(t > 0); /* waits for node 2 again */
  pump(w);
  assert_int_equal(acked(w, 1), t);
}

static uint64_t fills_sent(struct world *w) {
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  return st.fills_sent;
}

static struct world *blip_world(uint64_t retention) {
  struct world *w = world_new(2, 2);
  w->retention = retention;
  lmz_repl_free(w->nodes[1].r);
  world_repl(w, 1);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  uint64_t t = turn(w, 1, "a", "k", "v1");
  pump(w);
  assert_int_equal(acked(w, 1), t);
  w->hold[2] = true; /* one write in flight when the link drops */
  turn(w, 1, "a", "k", "v2");
  flush_all(w);
  run_stores(w);
  w->hold[2] = false;
  return w;
}

/* A short link loss resumes the stream: no FILL, nothing missing. */
static void test_catchup_resumes(void **state) {
  (void)state;
  struct world *w = blip_world(0);
  blip_out(w);
  blip_back(w);
  assert_int_equal(fills_sent(w), 0);
  world_free(w);
}

/* More than retention_bytes while away: the actor is refilled. */
static void test_catchup_retention_exceeded(void **state) {
  (void)state;
  struct world *w = blip_world(400);
  blip_out(w);
  for (int i = 0; i < 10; i++)
    turn(w, 1, "a", "x", "0123456789012345678901234567890123456789");
  turn(w, 1, "a", "k", "away1");
  run_stores(w);
  blip_back(w);
  assert_int_equal(fills_sent(w), 1);
  world_free(w);
}

/* Closes and reopens node 2's store (wiped: a fresh directory) and starts a
 * new replicator on it (its stream state is gone). */
static void restart_backup(struct world *w, bool wipe) {
  struct node *n = &w->nodes[2];
  lmz_repl_free(n->r);
  tl_store_close(n->store);
  assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
  if (wipe) {
    tl_rmtree(n->path);
    free(n->path);
    n->path = tl_mkdtemp("lmz-repl");
    assert_non_null(n->path);
  }
  struct lmz_store_opts so;
  lmz_store_opts_init(&so, n->path);
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(tl_store_open(&n->store, &w->loop, &so, err), 0);
  world_repl(w, 2);
}

/* The backup restarts with its store intact: it resumes from its durable
 * sequence (kept in its store), without a FILL. */
static void test_catchup_backup_restarted(void **state) {
  (void)state;
  struct world *w = blip_world(0);
  blip_out(w);
  restart_backup(w, false);
  blip_back(w);
  assert_int_equal(fills_sent(w), 0);
  world_free(w);
}

/* The backup comes back with an empty store: it refuses the resumed
 * generation and gets a FILL. */
static void test_catchup_wiped_backup(void **state) {
  (void)state;
  struct world *w = blip_world(0);
  blip_out(w);
  restart_backup(w, true);
  blip_back(w);
  assert_int_equal(fills_sent(w), 1);
  const char *v = read_key(w, 2, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "back");
  world_free(w);
}

/* ---- tests: drain -------------------------------------------------------- */

/* Node 3, a backup of "a", drains: node 1 first fills node 4 (the list
 * never has fewer other copies than before), then node 3 leaves the list
 * (PAIR_OUT) and backs up nothing; the gate keeps working. */
static void test_drain_moves_backup_role(void **state) {
  (void)state;
  struct world *w = world_new(4, 3);
  uint64_t b23[] = {2, 3};
  claim(w, "a", 1, b23, 2);
  turn(w, 1, "a", "k", "v1");
  pump(w);
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(
      lmz_dir_encode_node_upsert(&b, 3, LMZ_DIR_DRAINING, "a3", "a3", 10), 0);
  apply_all(w, &b, true);
  lmz_buf_free(&b);
  w->now += LMZ_REPL_REFILL_PERIOD_MS;
  lmz_repl_tick(w->nodes[1].r); /* fills node 4; node 3 still needed */
  pump(w);
  assert_int_equal(w->n_proposals, 1); /* BACKUPS_ADD(4) only */
  assert_int_equal(placement(w, 1, "a").n_backups, 2);
  uint64_t t = turn(w, 1, "a", "k", "v2");
  pump(w);
  assert_int_equal(acked(w, 1), t); /* node 3 still acknowledges */
  assert_int_equal(decide(w, 0), 1);
  struct lmz_dir_placement p = placement(w, 1, "a");
  assert_int_equal(p.n_backups, 3);
  assert_int_equal(p.backups[2], 4);
  w->now += LMZ_REPL_REFILL_PERIOD_MS;
  lmz_repl_tick(w->nodes[1].r);      /* node 3 is no longer needed */
  assert_int_equal(decide(w, 0), 1); /* PAIR_OUT(1, 3) */
  p = placement(w, 1, "a");
  assert_int_equal(p.n_backups, 2);
  assert_int_equal(p.backups[0], 2);
  assert_int_equal(p.backups[1], 4);
  t = turn(w, 1, "a", "k", "v3");
  pump(w);
  assert_int_equal(acked(w, 1), t);
  const char *v = read_key(w, 4, "a", "k");
  assert_non_null(v);
  assert_string_equal(v, "v3");
  w->now += LMZ_REPL_REFILL_PERIOD_MS;
  lmz_repl_tick(w->nodes[1].r);
  assert_int_equal(decide(w, 0), 0); /* settled: nothing more to do */
  world_free(w);
}

/* A DRAINING owner starts no fill: its actors are about to move, and an
 * older FILL could land on the drain's target after the import there. */
static void test_draining_owner_fills_nothing(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  claim(w, "a", 1, NULL, 0); /* under-replicated */
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(
      lmz_dir_encode_node_upsert(&b, 1, LMZ_DIR_DRAINING, "a1", "a1", 10), 0);
  apply_all(w, &b, true);
  lmz_buf_free(&b);
  w->now += LMZ_REPL_REFILL_PERIOD_MS;
  lmz_repl_tick(w->nodes[1].r);
  pump(w);
  struct lmz_repl_stats st;
  lmz_repl_get_stats(w->nodes[1].r, &st);
  assert_int_equal(st.fills_sent, 0);
  assert_int_equal(st.under_replicated, 1); /* still counted */
  assert_int_equal(w->n_proposals, 0);
  world_free(w);
}

/* A fill's BACKUPS_ADD and the PAIR_OUT of its closed stream race: in
 * either commit order the node ends unlisted and the gate does not wait
 * for it. */
static void race_add_pair_out(bool add_first) {
  struct world *w = world_new(3, 3);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  turn(w, 1, "a", "k", "v");
  pump(w);
  lmz_repl_tick(w->nodes[1].r); /* fill node 3 */
  pump(w);
  assert_int_equal(w->n_proposals, 1); /* BACKUPS_ADD queued */
  w->link_down[3] = true;
  lmz_repl_on_link(w->nodes[1].r, 3, false); /* PAIR_OUT queued */
  assert_int_equal(w->n_proposals, 2);
  decide_nth(w, add_first ? 0 : 1);
  decide_nth(w, 0);
  decide(w, 0); /* a PAIR_OUT proposed again, if any */
  struct lmz_dir_placement p = placement(w, 1, "a");
  assert_int_equal(p.n_backups, 1);
  assert_int_equal(p.backups[0], 2);
  uint64_t t = turn(w, 1, "a", "k", "v2");
  pump(w);
  assert_int_equal(acked(w, 1), t);
  world_free(w);
}

static void test_fill_add_races_pair_out(void **state) {
  (void)state;
  race_add_pair_out(true);
  race_add_pair_out(false);
}

/* Both commit, PAIR_OUT first, but its callback runs before the
 * BACKUPS_ADD's: the node is listed again, so the stream must not reopen
 * (the node lacks the writes of the closed generation); a new PAIR_OUT
 * takes it out and only then does the gate stop waiting for it. */
static void test_pair_out_checks_listing(void **state) {
  (void)state;
  struct world *w = world_new(3, 3);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  lmz_repl_tick(w->nodes[1].r); /* fill node 3 */
  pump(w);
  assert_int_equal(w->n_proposals, 1); /* BACKUPS_ADD queued */
  w->hold[3] = true;
  turn(w, 1, "a", "k", "v");
  pump(w);
  w->now += 2000;
  lmz_repl_tick(w->nodes[1].r); /* lag: closed, PAIR_OUT queued */
  assert_int_equal(w->n_proposals, 2);
  w->hold[3] = false;
  pump(w);
  int item_out, item_add;
  struct qprop *out = apply_nth(w, 1, &item_out);
  struct qprop *add = apply_nth(w, 0, &item_add);
  assert_int_equal(item_add, LMZ_DIR_PLACED); /* node 3 listed again */
  callback(out, item_out);
  uint64_t t = turn(w, 1, "a", "k", "v2");
  pump(w);
  struct lmz_repl_pair_stats ps;
  for (size_t i = 0;; i++) {
    lmz_repl_pair_at(w->nodes[1].r, i, &ps);
    assert_true(ps.node_id != 0);
    if (ps.outgoing && ps.node_id == 3)
      break;
  }
  assert_false(ps.in_sync);             /* not reopened */
  assert_int_equal(acked(w, 1), t - 1); /* waits for the listed node 3 */
  callback(add, item_add);
  assert_int_equal(decide(w, 0), 1); /* the PAIR_OUT proposed again */
  assert_int_equal(placement(w, 1, "a").n_backups, 1);
  assert_int_equal(acked(w, 1), t);
  world_free(w);
}

/* Freed with a fill's barrier commit and a PAIR_OUT proposal in flight:
 * both callbacks run later, disarmed (ASan builds check nothing is touched
 * or leaked). The backup side too: its commit completes after the free. */
static void test_free_with_pending_work(void **state) {
  (void)state;
  struct world *w = world_new(2, 2);
  uint64_t b2[] = {2};
  claim(w, "a", 1, b2, 1);
  claim(w, "b", 1, NULL, 0);
  turn(w, 1, "a", "k", "v");
  flush_all(w);
  assert_int_equal(deliver(w), 1); /* node 2 commits it: ack pending */
  lmz_repl_tick(w->nodes[1].r);    /* fill of b: barrier in the store */
  lmz_repl_on_link(w->nodes[1].r, 2, false); /* PAIR_OUT proposed */
  assert_int_equal(w->n_proposals, 1);
  lmz_repl_free(w->nodes[1].r);
  w->nodes[1].r = NULL;
  lmz_repl_free(w->nodes[2].r);
  w->nodes[2].r = NULL;
  run_stores(w); /* the barrier's and the backup commit's callbacks */
  assert_int_equal(decide(w, 0), 1);
  world_free(w);
}

/* ---- tests: the batch wire format ---------------------------------------- */

static void test_batch_wire(void **state) {
  (void)state;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, "C", 1, "a", 1);
  lmz_key_range range;
  assert_int_equal(lmz_key_actor_range(&range, prefix, (size_t)pl), 0);
  uint8_t k[LMZ_KEY_MAX], kb[LMZ_KEY_MAX], nk[LMZ_KEY_MAX];
  int kl = key_of(k, "a", "k"), kbl = key_of(kb, "b", "k");
  int nkl = lmz_key_node(nk, "n", 1);
  lmz_batch *b = lmz_batch_new(), *c = lmz_batch_new();
  assert_int_equal(lmz_batch_put(b, k, (size_t)kl, "v", 1), 0);
  assert_int_equal(lmz_batch_put(b, nk, (size_t)nkl, "", 0), 0);
  assert_int_equal(lmz_batch_delete(b, k, (size_t)kl), 0);
  assert_int_equal(lmz_batch_delete_range(b, "A", 1, "B", 1), 0);
  assert_int_equal(lmz_batch_put(b, kb, (size_t)kbl, "w", 1), 0);
  lmz_buf all = LMZ_BUF_INIT, mine = LMZ_BUF_INIT;
  assert_int_equal(lmz_batch_serialize(b, NULL, &all), 0);
  assert_int_equal(lmz_batch_serialize(b, &range, &mine), 0);
  char err[LMZ_ERRMSG_LEN] = "";
  /* everything: refused (node key, other actor, wide range) */
  assert_int_equal(lmz_batch_deserialize(c, all.data, all.len, &range, err),
                   LMZ_EACCESS);
  assert_int_equal(lmz_batch_count(c), 0);
  assert_non_null(strstr(err, "range"));
  /* filtered: put, delete, the range clipped to the actor */
  assert_int_equal(lmz_batch_deserialize(c, mine.data, mine.len, &range, err),
                   3);
  assert_int_equal(lmz_batch_count(c), 3);
  /* every truncation and every flipped byte is refused or valid, never
   * out of range, and a refusal leaves the batch as it was */
  for (size_t cut = 0; cut < mine.len; cut++) {
    int rv = lmz_batch_deserialize(c, mine.data, cut, &range, err);
    assert_true(rv < 0);
    assert_int_equal(lmz_batch_count(c), 3);
  }
  for (size_t i = 0; i < mine.len; i++) {
    for (unsigned bit = 0; bit < 8; bit++) {
      mine.data[i] ^= (uint8_t)(1u << bit);
      lmz_batch_clear(c);
      int rv = lmz_batch_deserialize(c, mine.data, mine.len, &range, err);
      assert_true(rv < 0 || (size_t)rv == lmz_batch_count(c));
      mine.data[i] ^= (uint8_t)(1u << bit);
    }
  }
  assert_int_equal(lmz_batch_deserialize(c, "\x02\x00", 2, &range, err),
                   LMZ_EBADVERSION);
  assert_int_equal(lmz_batch_deserialize(c, NULL, 0, &range, err), LMZ_EBADMSG);
  assert_int_equal(lmz_batch_deserialize(c, "\x01\x00", 2, &range, err), 0);
  assert_int_equal(lmz_batch_deserialize(c, "\x01\x00\x00", 3, &range, err),
                   LMZ_EBADMSG); /* trailing byte */
  lmz_buf_free(&all);
  lmz_buf_free(&mine);
  lmz_batch_free(b);
  lmz_batch_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_wire),
      cmocka_unit_test(test_ship_apply),
      cmocka_unit_test(test_no_backups_token_zero),
      cmocka_unit_test(test_gate_waits_every_backup),
      cmocka_unit_test(test_lag_closes_and_pairs_out),
      cmocka_unit_test(test_minority_owner_keeps_waiting),
      cmocka_unit_test(test_link_down_pairs_out),
      cmocka_unit_test(test_backup_disk_error),
      cmocka_unit_test(test_refusals_apply_nothing),
      cmocka_unit_test(test_epoch_owner_rule),
      cmocka_unit_test(test_fresh_record_drops_stale_copy),
      cmocka_unit_test(test_import_fences_old_owner),
      cmocka_unit_test(test_refill_under_replicated),
      cmocka_unit_test(test_pair_out_then_refill),
      cmocka_unit_test(test_refill_budget),
      cmocka_unit_test(test_overload_retries),
      cmocka_unit_test(test_frames_split),
      cmocka_unit_test(test_failover_then_refill),
      cmocka_unit_test(test_failover_loses_waiting_token),
      cmocka_unit_test(test_catchup_resumes),
      cmocka_unit_test(test_catchup_retention_exceeded),
      cmocka_unit_test(test_catchup_backup_restarted),
      cmocka_unit_test(test_catchup_wiped_backup),
      cmocka_unit_test(test_drain_moves_backup_role),
      cmocka_unit_test(test_draining_owner_fills_nothing),
      cmocka_unit_test(test_free_with_pending_work),
      cmocka_unit_test(test_fill_add_races_pair_out),
      cmocka_unit_test(test_pair_out_checks_listing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
