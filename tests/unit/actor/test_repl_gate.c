/* The output gate with replication (actor/node.h lmz_node_set_replicator,
 * DESIGN.md 4.1): a replicated turn's reply leaves only when its local
 * commit is durable AND every backup acknowledged it (acked_through >= its
 * token); outputs leave in commit order; a turn whose batch could not be
 * shipped commits nothing; a replicator removed while turns wait fails
 * them (never released as durable); a local commit failure of a replicated
 * batch is reported (the node must stop serving). The replicator here is a
 * fake whose acknowledgements the test hands out. */
#include "unit/actor/counterfix.h"
#include "storage/store_int.h" /* fail_writes */

struct fake_repl {
  uint64_t next_token, acked;
  uint64_t lost;     /* a token that can no longer be acknowledged */
  int ship_error;    /* returned by the next ship, then cleared */
  int shipped;       /* batches seen */
  int local_failures;
  char last[64];     /* "binding/instance" of the latest batch */
};

static int fake_ship(void *ctx, const char *binding, const char *instance,
                     const struct lmz_batch *b, bool fresh, uint64_t *token) {
  struct fake_repl *f = ctx;
  assert_non_null(b);
  assert_false(fresh); /* no directory: no fresh placement */
  if (f->ship_error) {
    int rv = f->ship_error;
    f->ship_error = 0;
    return rv;
  }
  f->shipped++;
  snprintf(f->last, sizeof f->last, "%s/%s", binding, instance ? instance : "");
  *token = ++f->next_token;
  return 0;
}

static int fake_token_state(void *ctx, uint64_t token) {
  struct fake_repl *f = ctx;
  if (token == f->lost)
    return LMZ_EUNAVAILABLE;
  return token <= f->acked;
}

static void fake_local_failure(void *ctx, int status) {
  (void)status;
  ((struct fake_repl *)ctx)->local_failures++;
}

static void install(lmz_node_t *n, struct fake_repl *f) {
  struct lmz_node_replicator r = {fake_ship, fake_token_state, fake_local_failure, f};
  lmz_node_set_replicator(n, &r);
}

/* Replies wait for the backups' acknowledgement, in commit order. */
static void replies_wait_for_backups(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rgate");
  struct fake_repl f = {0};
  install(cf.n, &f);
  struct reply r = {0};
  call(cf.n, "increment", 1, &r); /* token 1 */
  call(cf.n, "increment", 1, &r); /* token 2 */
  run_turns(&cf.loop, cf.n);
  run_until_stored(&cf.loop, cf.n);
  assert_int_equal(f.shipped, 2);
  assert_string_equal(f.last, "COUNTER_DO/a");
  assert_true(stored_total(cf.n) == 2); /* durable here ... */
  assert_int_equal(r.n, 0);             /* ... but not acknowledged yet */

  f.acked = 1;
  lmz_node_repl_progress(cf.n);
  assert_int_equal(r.n, 1); /* the first turn only */
  assert_true(r.ok[0] && r.num[0] == 1);
  f.acked = 2;
  lmz_node_repl_progress(cf.n);
  assert_int_equal(r.n, 2);
  assert_true(r.ok[1] && r.num[1] == 2);
  cf_stop(&cf);
}

/* A token that can no longer be acknowledged fails its outputs only. */
static void lost_token_fails_its_outputs(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rlost");
  struct fake_repl f = {.lost = 1};
  install(cf.n, &f);
  struct reply r = {0};
  call(cf.n, "increment", 1, &r); /* token 1: lost */
  call(cf.n, "increment", 1, &r); /* token 2 */
  run_turns(&cf.loop, cf.n);
  run_until_stored(&cf.loop, cf.n);
  f.acked = 2;
  lmz_node_repl_progress(cf.n);
  assert_int_equal(r.n, 2);
  assert_false(r.ok[0]);
  assert_true(r.ok[1]);
  cf_stop(&cf);
}

/* A batch the replicator refuses is not written here either. */
static void unshipped_batch_commits_nothing(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rship");
  struct fake_repl f = {.ship_error = LMZ_ENOMEM};
  install(cf.n, &f);
  struct reply r = {0};
  call(cf.n, "increment", 5, &r);
  run_until_replies(&cf.loop, &r, 1);
  assert_false(r.ok[0]);
  run_until_stored(&cf.loop, cf.n);
  assert_true(stored_total(cf.n) == 0);
  f.acked = 100;
  call(cf.n, "increment", 1, &r); /* the next one ships and commits */
  run_until_replies(&cf.loop, &r, 2);
  assert_true(r.ok[1] && r.num[1] == 1);
  cf_stop(&cf);
}

/* Unsetting the replicator (close) fails what still waits for backups. */
static void removed_replicator_fails_waiting_turns(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rdrop");
  struct fake_repl f = {0};
  install(cf.n, &f);
  struct reply r = {0};
  call(cf.n, "increment", 1, &r);
  run_turns(&cf.loop, cf.n);
  run_until_stored(&cf.loop, cf.n);
  assert_int_equal(r.n, 0);
  lmz_node_set_replicator(cf.n, NULL);
  assert_int_equal(r.n, 1);
  assert_false(r.ok[0]);
  call(cf.n, "increment", 1, &r); /* unreplicated again: local gate only */
  run_until_replies(&cf.loop, &r, 2);
  assert_true(r.ok[1] && r.num[1] == 2);
  cf_stop(&cf);
}

/* Closing the node with turns waiting for backups fails them. */
static void close_fails_waiting_turns(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rclose");
  struct fake_repl f = {0};
  install(cf.n, &f);
  struct reply r = {0};
  call(cf.n, "increment", 1, &r);
  run_turns(&cf.loop, cf.n);
  run_until_stored(&cf.loop, cf.n);
  assert_int_equal(r.n, 0);
  cf_stop(&cf);
  assert_int_equal(r.n, 1);
  assert_false(r.ok[0]);
}

/* A replicated batch that fails here is reported: its backups may hold it. */
static void local_failure_is_reported(void **state) {
  (void)state;
  struct counterfix cf;
  cf_start(&cf, "lmz-rlocal");
  struct fake_repl f = {.acked = 100};
  install(cf.n, &f);
  lmz__store_fail_writes(cf.n->store, 1);
  struct reply r = {0};
  call(cf.n, "increment", 1, &r);
  run_until_replies(&cf.loop, &r, 1);
  assert_false(r.ok[0]);
  assert_string_equal(r.err[0], "StorageError");
  assert_int_equal(f.local_failures, 1);
  cf_stop(&cf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(replies_wait_for_backups),
      cmocka_unit_test(lost_token_fails_its_outputs),
      cmocka_unit_test(unshipped_batch_commits_nothing),
      cmocka_unit_test(removed_replicator_fails_waiting_turns),
      cmocka_unit_test(close_fails_waiting_turns),
      cmocka_unit_test(local_failure_is_reported),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
