/* tests/fuzz/fuzz_directory.c - libFuzzer target for the placement directory
 * FSM (cluster/directory.c): commands and snapshots from hostile bytes.
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is a sequence of commands, each [u16 LE length][bytes]
 *         (a short tail is one last command). They are applied to a
 *         directory that already has nodes 1..3 (UP, leased) and a few
 *         actors, two of them with backups, so well-formed claims, moves,
 *         releases, backups_add, pair_out and mark_down (failover) reach
 *         the deep paths.
 *   odd:  the rest is a snapshot to restore.
 * After every step the invariants must hold (per-node actor counts add up
 * to the actor count; every backup list holds at most LMZ_DIR_MAX_BACKUPS
 * distinct known nodes, none the owner; every command result has at most
 * as many items as the batch limit), and the state must survive
 * snapshot -> restore -> equal, and a second snapshot of the restored state
 * must restore equal again. A failed restore must leave the directory
 * unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/directory.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fake_now;
static uint64_t clock_fn(void *ctx) {
  (void)ctx;
  return fake_now;
}

static int check_list(const char *b, size_t blen, const char *i, size_t ilen,
                      const struct lmz_dir_placement *p, void *arg) {
  const lmz_dir_t *d = arg;
  (void)b, (void)blen, (void)i, (void)ilen;
  if (p->n_backups > LMZ_DIR_MAX_BACKUPS || !lmz_dir_node_get(d, p->node_id))
    abort();
  for (uint32_t x = 0; x < p->n_backups; x++) {
    if (p->backups[x] == p->node_id || !lmz_dir_node_get(d, p->backups[x]))
      abort();
    for (uint32_t y = 0; y < x; y++)
      if (p->backups[x] == p->backups[y])
        abort();
  }
  return 0;
}

static void check_invariants(const lmz_dir_t *d) {
  lmz_dir_foreach_placement(d, 0, check_list, (void *)(uintptr_t)d);
  uint64_t sum = 0;
  for (size_t i = 0; i < lmz_dir_n_nodes(d); i++) {
    const struct lmz_dir_node *n = lmz_dir_node_at(d, i);
    if (i && n->id <= lmz_dir_node_at(d, i - 1)->id)
      abort(); /* nodes sorted by id, unique */
    sum += n->n_actors;
  }
  if (sum != lmz_dir_n_actors(d))
    abort();
}

/* snapshot -> restore must give an equal directory (twice). */
static void check_round_trip(const lmz_dir_t *d) {
  void *buf;
  size_t len;
  if (lmz_dir_snapshot(d, NULL, &buf, &len))
    abort();
  lmz_dir_t c_mem, *c = &c_mem;
  if (lmz_dir_init(c))
    abort();
  lmz_dir_set_clock(c, clock_fn, NULL);
  if (lmz_dir_restore(c, buf, len) || !lmz_dir_equal(d, c) ||
      !lmz_dir_equal(c, d))
    abort();
  void *buf2;
  size_t len2;
  if (lmz_dir_snapshot(c, NULL, &buf2, &len2) || len2 != len)
    abort();
  if (lmz_dir_restore(c, buf2, len2) || !lmz_dir_equal(d, c))
    abort();
  check_invariants(c);
  free(buf);
  free(buf2);
  lmz_dir_close(c);
}

static void apply(lmz_dir_t *d, const void *cmd, size_t len) {
  const struct lmz_dir_result *r;
  int rv = lmz_dir_apply(d, cmd, len, &r);
  if (r->status != rv || r->n > LMZ_DIR_MAX_BATCH)
    abort();
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i].status > LMZ_DIR_REPLACED)
      abort();
}

static void seed_state(lmz_dir_t *d) {
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t id = 1; id <= 3; id++) {
    lmz_dir_encode_node_upsert(&b, id, LMZ_DIR_UP, "127.0.0.1:7000", NULL, 0);
    apply(d, b.data, b.len);
    lmz_buf_reset(&b);
    lmz_dir_encode_lease_renew(&b, id, 3000, 0);
    apply(d, b.data, b.len);
    lmz_buf_reset(&b);
  }
  static const uint64_t a_bk[] = {2, 3}, b_bk[] = {3};
  struct lmz_dir_claim c[3] = {{"DOC", 3, "a", 1, 1, 1, 0, 2, a_bk},
                               {"DOC", 3, "b", 1, 2, 2, 0, 1, b_bk},
                               {"W", 1, "c", 1, 3, 3, 0, 0, NULL}};
  lmz_dir_encode_claims(&b, c, 3);
  apply(d, b.data, b.len);
  lmz_buf_free(&b);
}

static void run_commands(lmz_dir_t *d, const uint8_t *p, size_t n) {
  seed_state(d);
  int steps = 0;
  while (n > 0 && steps++ < 64) {
    size_t len = n;
    if (n >= 2) {
      len = (size_t)p[0] | (size_t)p[1] << 8;
      p += 2;
      n -= 2;
      if (len > n)
        len = n;
    }
    fake_now += 100;
    apply(d, p, len);
    check_invariants(d);
    p += len;
    n -= len;
  }
  check_round_trip(d);
}

static void run_snapshot(lmz_dir_t *d, const uint8_t *p, size_t n) {
  seed_state(d);
  lmz_dir_t before_mem, *before = &before_mem;
  if (lmz_dir_init(before))
    abort();
  seed_state(before);
  if (lmz_dir_restore(d, p, n) != 0) {
    if (!lmz_dir_equal(d, before))
      abort(); /* a refused snapshot changes nothing */
  } else {
    check_invariants(d);
    check_round_trip(d);
    /* the restored state keeps working */
    lmz_buf b = LMZ_BUF_INIT;
    struct lmz_dir_claim c = {"DOC", 3, "fuzz", 4, 1, 9, 0, 0, NULL};
    lmz_dir_encode_claims(&b, &c, 1);
    apply(d, b.data, b.len);
    check_invariants(d);
    lmz_buf_free(&b);
  }
  lmz_dir_close(before);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  lmz_dir_t d_mem, *d = &d_mem;
  if (lmz_dir_init(d))
    return 0;
  lmz_dir_set_clock(d, clock_fn, NULL);
  if (data[0] & 1)
    run_snapshot(d, data + 1, size - 1);
  else
    run_commands(d, data + 1, size - 1);
  lmz_dir_close(d);
  return 0;
}
