/* Storage error semantics (actor/turn.c failure mode 3, storage/commit.c
 * failure mode 1): after a group commit fails, no turn whose reads depend on
 * the lost writes may commit or answer with success.
 *
 * Scenario, with a real RocksDB and the store's write-failure hook: each
 * group holds one batch, the first group write fails.
 *   T1 increment(1) -> batch C1 (fails)
 *   T2 get()        -> reads 1 from the cache (C1's lost write), no batch
 *   T3 increment(1) -> reads 1, writes 2 -> batch C2, a LATER group that the
 *                      disk would accept
 * Expected: T1, T2 and T3 all answer StorageError; nothing is on disk (C2
 * must not be written: it was computed from the lost write); the next turn
 * reads the disk again and commits 1. */
#include "unit/actor/counterfix.h"
#include "storage/store_int.h" /* pause, fail_writes, set_max_batch */

static void no_turn_commits_on_lost_writes(void **state) {
  (void)state;
  struct counterfix f;
  cf_start(&f, "lmz-cfail");
  lmz_node_t *n = f.n;
  uv_loop_t *loop = &f.loop;

  struct reply r = {0};
  lmz__store_pause(n->store, true);
  lmz__store_set_max_batch(n->store, 1); /* one batch per group */
  lmz__store_fail_writes(n->store, 1);   /* the first group write fails */
  call(n, "increment", 1, &r);           /* T1 -> C1 */
  run_turns(loop, n);
  call(n, "get", -1, &r);                /* T2: reads C1's write */
  run_turns(loop, n);
  call(n, "increment", 1, &r);           /* T3 -> C2, its own group */
  run_turns(loop, n);
  assert_int_equal(lmz_store_queued(n->store, NULL), 2);
  assert_int_equal(r.n, 0); /* all three wait behind the gate */
  lmz__store_pause(n->store, false);
  run_until_replies(loop, &r, 3);
  for (int i = 0; i < 3; i++) {
    assert_false(r.ok[i]);
    assert_string_equal(r.err[i], "StorageError");
  }
  assert_true(stored_total(n) == 0); /* C2 (total 2) never reached the disk */

  /* the actor reads the disk again: the next turn commits 1 */
  call(n, "increment", 1, &r);
  run_until_replies(loop, &r, 4);
  assert_true(r.ok[3]);
  assert_true(r.num[3] == 1);
  assert_true(stored_total(n) == 1);

  cf_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(no_turn_commits_on_lost_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
