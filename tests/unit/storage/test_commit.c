/* tests/unit/storage/test_commit.c - group commit on the storage thread,
 * against a real RocksDB: ordering, grouping, max_batch_bytes, write errors,
 * barriers, close semantics, durability across reopen, sync = false. */
#include "lib/testlib.h"
#include "lib/tl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/store.h"
#include "storage/store_int.h" /* test hooks: pause, fail_writes */

#define N_MAX 2000

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_store_t *s;
  /* callback log */
  int order[N_MAX];
  int status[N_MAX];
  size_t n_done;
  /* per-test behaviour inside callbacks */
  int close_at;    /* close the store from callback #close_at (-1: never) */
  int recommit_rv; /* result of a commit attempted inside a callback */
  int get_rv;      /* result of a get inside that callback */
  char errmsg[LMZ_ERRMSG_LEN];
};

struct tag {
  struct fx *f;
  int seq;
};
static struct tag tags[N_MAX];

static void open_store(struct fx *f, bool sync, size_t max_batch) {
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, f->dir);
  o.sync = sync;
  o.max_batch_bytes = max_batch;
  char err[LMZ_ERRMSG_LEN];
  int rv = tl_store_open(&f->s, &f->loop, &o, err);
  if (rv)
    fail_msg("open: %s", err);
}

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->dir = tl_mkdtemp("lmz-commit");
  assert_non_null(f->dir);
  f->close_at = -1;
  open_store(f, true, 0);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s); /* NULL when a test closed it already */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tl_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void reopen(struct fx *f, bool sync) {
  tl_store_close(f->s);
  f->s = NULL;
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  open_store(f, sync, 0);
}

static void on_commit(lmz_store_t *s, int status, void *arg) {
  struct tag *t = arg;
  struct fx *f = t->f;
  assert_true(f->n_done < N_MAX);
  f->order[f->n_done] = t->seq;
  f->status[f->n_done] = status;
  if (status)
    snprintf(f->errmsg, sizeof f->errmsg, "%s", s->errmsg);
  f->n_done++;
  if (t->seq == f->close_at) {
    tl_store_close(s);
    f->s = NULL;
  }
}

/* Used during close: commits are refused, reads still work. */
static void on_commit_during_close(lmz_store_t *s, int status, void *arg) {
  struct tag *t = arg;
  struct fx *f = t->f;
  if (f->n_done == 0) {
    lmz_batch *b = lmz_batch_new();
    f->recommit_rv = lmz_store_commit(s, b, on_commit, arg);
    lmz_batch_free(b);
    lmz_buf out = LMZ_BUF_INIT;
    f->get_rv = lmz_store_get(s, "seq00000", 8, &out);
    lmz_buf_free(&out);
  }
  on_commit(s, status, arg);
}

/* One batch: put "seqNNNNN" -> value of vlen bytes. */
static lmz_batch *seq_batch(int seq, size_t vlen) {
  lmz_batch *b = lmz_batch_new();
  char k[16], v[1024];
  snprintf(k, sizeof k, "seq%05d", seq);
  memset(v, 'a' + seq % 26, sizeof v);
  assert_true(vlen <= sizeof v);
  assert_int_equal(lmz_batch_put(b, k, 8, v, vlen), 0);
  return b;
}

static void commit_seq(struct fx *f, int seq, lmz_batch *b,
                       lmz_store_commit_cb cb) {
  tags[seq] = (struct tag){f, seq};
  assert_int_equal(lmz_store_commit(f->s, b, cb, &tags[seq]), 0);
}

static int count_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                    void *arg) {
  (void)k, (void)kl, (void)v, (void)vl, (void)arg;
  return 0;
}

static int count_keys(struct fx *f) {
  return lmz_store_scan(f->s, NULL, 0, NULL, 0, 0, false, count_cb, NULL);
}

static void assert_in_order_ok(struct fx *f, size_t n) {
  assert_int_equal(f->n_done, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(f->order[i], (int)i);
    assert_int_equal(f->status[i], 0);
  }
}

/* 1000 commits queued in one go: callbacks in order, all ok, and far fewer
 * fsyncs than commits (the first write's fsync lets the rest pile up). */
static void group_commit_1000(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 1000; i++)
    commit_seq(f, i, seq_batch(i, 100), on_commit);
  size_t bytes = 0;
  assert_int_equal(lmz_store_queued(f->s, &bytes), 1000);
  assert_int_equal(bytes, 1000 * (9 + 8 + 100));
  assert_int_equal(f->n_done, 0); /* never from inside commit */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 1000);
  assert_int_equal(lmz_store_queued(f->s, &bytes), 0);
  assert_int_equal(bytes, 0);
  uint64_t commits = lmz_store_commit_count(f->s);
  uint64_t syncs = lmz_store_sync_count(f->s);
  print_message("1000 commits in %llu fsyncs\n", (unsigned long long)syncs);
  assert_int_equal(commits, 1000);
  assert_true(syncs >= 1 && syncs <= 50);
  assert_int_equal(count_keys(f), 1000);
}

/* With the thread held, queued batches form exactly one group. */
static void paused_queue_is_one_write(void **state) {
  struct fx *f = *state;
  lmz__store_pause(f->s, true);
  for (int i = 0; i < 10; i++)
    commit_seq(f, i, seq_batch(i, 10), on_commit);
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 10);
  assert_int_equal(lmz_store_sync_count(f->s), 1);
  assert_int_equal(lmz_store_commit_count(f->s), 10);
}

/* max_batch_bytes caps a group: 10 batches of 500 bytes, cap 1000 -> 5. */
static void max_batch_bytes_splits_groups(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  open_store(f, true, 1000);
  lmz__store_pause(f->s, true);
  for (int i = 0; i < 10; i++) {
    lmz_batch *b = seq_batch(i, 500 - 9 - 8);
    assert_int_equal(lmz_batch_bytes(b), 500);
    commit_seq(f, i, b, on_commit);
  }
  /* a single batch over the cap still goes (alone) */
  commit_seq(f, 10, seq_batch(10, 1000), on_commit);
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 11);
  assert_int_equal(lmz_store_sync_count(f->s), 6);
}

/* A batch over the cap at the head of the queue goes alone: the batches
 * behind it form the next group (the cap minus an oversized head must not
 * wrap around and let everything in). */
static void oversized_head_goes_alone(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  open_store(f, true, 1000);
  lmz__store_pause(f->s, true);
  commit_seq(f, 0, seq_batch(0, 1000), on_commit); /* 1017 bytes > cap */
  for (int i = 1; i < 4; i++)
    commit_seq(f, i, seq_batch(i, 100), on_commit);
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 4);
  assert_int_equal(lmz_store_sync_count(f->s), 2);
}

/* Chains: after a batch of a chain fails, every later batch of that chain
 * fails without being written, even in a later group that the disk would
 * have taken; other chains and unchained batches are written. Groups of one
 * batch each (cap 1 byte), so the dependent batch is in its own group. */
static void failed_chain_fails_its_later_batches(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  open_store(f, true, 1);
  lmz_chain *a = lmz_chain_new(), *b = lmz_chain_new();
  assert_non_null(a);
  assert_non_null(b);
  lmz__store_pause(f->s, true);
  for (int i = 0; i < 5; i++) {
    lmz_batch *bt = seq_batch(i, 10);
    if (i != 3)
      lmz_batch_set_chain(bt, i % 2 ? b : a); /* a: 0 2 4, b: 1, none: 3 */
    commit_seq(f, i, bt, on_commit);
  }
  lmz__store_fail_writes(f->s, 1); /* batch 0 (chain a) fails */
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->n_done, 5);
  int want[5] = {LMZ_ESTORAGE, 0, LMZ_ESTORAGE, 0, LMZ_ESTORAGE};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(f->order[i], i);
    assert_int_equal(f->status[i], want[i]);
  }
  assert_non_null(strstr(f->errmsg, "earlier batch of its chain failed"));
  assert_int_equal(count_keys(f), 2); /* 1 and 3 only */
  lmz_buf out = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_get(f->s, "seq00002", 8, &out), LMZ_ENOTFOUND);
  lmz_buf_free(&out);
  /* a fresh chain writes again; the broken one stays broken */
  lmz_chain *c = lmz_chain_new();
  lmz_batch *ok = seq_batch(5, 10), *still = seq_batch(6, 10);
  lmz_batch_set_chain(ok, c);
  lmz_batch_set_chain(still, a);
  commit_seq(f, 5, ok, on_commit);
  commit_seq(f, 6, still, on_commit);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->status[5], 0);
  assert_int_equal(f->status[6], LMZ_ESTORAGE);
  lmz_chain_unref(a);
  lmz_chain_unref(b);
  lmz_chain_unref(c);
}

/* A failed write fails every batch of its group, with the error text; the
 * next group succeeds and nothing of the failed one is visible. */
static void write_error_fails_whole_group(void **state) {
  struct fx *f = *state;
  lmz__store_pause(f->s, true);
  for (int i = 0; i < 5; i++)
    commit_seq(f, i, seq_batch(i, 10), on_commit);
  lmz__store_fail_writes(f->s, 1);
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->n_done, 5);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(f->order[i], i);
    assert_int_equal(f->status[i], LMZ_ESTORAGE);
  }
  assert_non_null(strstr(f->errmsg, "injected write failure"));
  assert_int_equal(count_keys(f), 0);
  commit_seq(f, 5, seq_batch(5, 10), on_commit);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->n_done, 6);
  assert_int_equal(f->status[5], 0);
  assert_int_equal(count_keys(f), 1);
}

/* Empty batches complete in order among the others; a group made only of
 * empty batches costs no write. */
static void empty_batches_are_barriers(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 6; i++)
    commit_seq(f, i, i % 2 ? lmz_batch_new() : seq_batch(i, 10), on_commit);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 6);
  uint64_t syncs = lmz_store_sync_count(f->s);
  lmz__store_pause(f->s, true);
  for (int i = 6; i < 9; i++)
    commit_seq(f, i, lmz_batch_new(), on_commit);
  lmz__store_pause(f->s, false);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 9);
  assert_int_equal(lmz_store_sync_count(f->s), syncs);
  assert_int_equal(lmz_store_commit_count(f->s), 9);
}

static void data_survives_reopen(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 100; i++)
    commit_seq(f, i, seq_batch(i, 100), on_commit);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 100);
  reopen(f, true);
  assert_int_equal(count_keys(f), 100);
  lmz_buf out = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_get(f->s, "seq00042", 8, &out), 0);
  assert_int_equal(out.len, 100);
  assert_int_equal(out.data[0], 'a' + 42 % 26);
  lmz_buf_free(&out);
}

static void sync_false_mode(void **state) {
  struct fx *f = *state;
  reopen(f, false);
  for (int i = 0; i < 200; i++)
    commit_seq(f, i, seq_batch(i, 50), on_commit);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_in_order_ok(f, 200);
  assert_int_equal(lmz_store_commit_count(f->s), 200);
  reopen(f, true); /* WAL written (not fsynced) survives a clean close */
  assert_int_equal(count_keys(f), 200);
}

/* Close with commits queued: every callback runs inside close, in order,
 * with status 0; commits from those callbacks get LMZ_ECANCELED, reads
 * still work; the data is there after reopen. */
static void close_flushes_pending(void **state) {
  struct fx *f = *state;
  for (int i = 0; i < 300; i++)
    commit_seq(f, i, seq_batch(i, 100), on_commit_during_close);
  f->recommit_rv = 1;
  tl_store_close(f->s);
  f->s = NULL;
  assert_in_order_ok(f, 300); /* before running the loop */
  assert_int_equal(f->recommit_rv, LMZ_ECANCELED);
  assert_int_equal(f->get_rv, 0); /* seq 0 was written before its cb */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0); /* frees the store */
  open_store(f, true, 0);
  assert_int_equal(count_keys(f), 300);
}

/* A callback may close the store; the rest still run, in order. */
static void close_from_callback(void **state) {
  struct fx *f = *state;
  lmz__store_pause(f->s, true);
  for (int i = 0; i < 20; i++)
    commit_seq(f, i, seq_batch(i, 10), on_commit);
  lmz__store_pause(f->s, false);
  f->close_at = 3;
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_null(f->s);
  assert_in_order_ok(f, 20);
  open_store(f, true, 0);
  assert_int_equal(count_keys(f), 20);
}

static void commit_arguments(void **state) {
  struct fx *f = *state;
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_store_commit(f->s, NULL, on_commit, NULL), LMZ_EINVAL);
  assert_int_equal(lmz_store_commit(NULL, b, on_commit, NULL), LMZ_EINVAL);
  /* NULL callback: fire and forget, still written */
  assert_int_equal(lmz_batch_put(b, "k", 1, "v", 1), 0);
  assert_int_equal(lmz_store_commit(f->s, b, NULL, NULL), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(count_keys(f), 1);
  /* the loop is not held open by an idle store */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
  const struct CMUnitTest tests[] = {
      T(group_commit_1000),
      T(paused_queue_is_one_write),
      T(max_batch_bytes_splits_groups),
      T(write_error_fails_whole_group),
      T(oversized_head_goes_alone),
      T(failed_chain_fails_its_later_batches),
      T(empty_batches_are_barriers),
      T(data_survives_reopen),
      T(sync_false_mode),
      T(close_flushes_pending),
      T(close_from_callback),
      T(commit_arguments),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
