/* tests/unit/cluster/test_placement.c - rendezvous hashing and the local
 * policy: determinism, order independence, balance, minimal disruption. */
#include "lib/testlib.h"

#include <stdio.h>
#include <string.h>

#include "cluster/placement.h"
#include "core/err.h"

static uint64_t pick(const uint64_t *nodes, size_t n, const char *inst) {
  uint64_t out = 0;
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, nodes, n, 0, "DOC",
                                        3, inst, strlen(inst), &out),
                   0);
  return out;
}

static void test_golden(void **state) {
  (void)state;
  /* The key hash is part of the placement contract: pinned values. */
  assert_int_equal(lmz_placement_key_hash("DOC", 3, "a", 1),
                   0x1103dccf33d068fcull /* FNV-1a + splitmix64, checked in Python */);
  assert_int_not_equal(lmz_placement_key_hash("DOC", 3, "a", 1),
                       lmz_placement_key_hash("DO", 2, "Ca", 2));
  assert_int_not_equal(lmz_placement_score(1, 2), lmz_placement_score(2, 1));
}

static void test_deterministic_and_order_free(void **state) {
  (void)state;
  uint64_t a[] = {11, 22, 33, 44, 55};
  uint64_t b[] = {55, 33, 11, 44, 22};
  uint64_t c[] = {55, 0, 33, 11, 44, 22, 22}; /* zeros and duplicates */
  for (int i = 0; i < 2000; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "k%d", i);
    uint64_t x = pick(a, 5, inst);
    assert_int_equal(x, pick(b, 5, inst));
    assert_int_equal(x, pick(c, 7, inst));
    assert_int_equal(x, pick(a, 5, inst));
  }
}

static void test_errors(void **state) {
  (void)state;
  uint64_t out = 7;
  uint64_t zeros[] = {0, 0};
  uint64_t one[] = {9};
  char big[256] = {0};
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, NULL, 0, 0, "D", 1,
                                        "x", 1, &out),
                   LMZ_EUNAVAILABLE);
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, zeros, 2, 0, "D",
                                        1, "x", 1, &out),
                   LMZ_EUNAVAILABLE);
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_LOCAL, NULL, 0, 5, "D", 1,
                                        "x", 1, &out),
                   LMZ_EUNAVAILABLE);
  assert_int_equal(lmz_placement_choose((enum lmz_placement_policy)7, one, 1,
                                        0, "D", 1, "x", 1, &out),
                   LMZ_EINVAL);
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, one, 1, 0, big,
                                        256, "x", 1, &out),
                   LMZ_EINVAL);
  assert_int_equal(out, 7);
  assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_HASH, one, 1, 0, big,
                                        255, "x", 1, &out),
                   0);
  assert_int_equal(out, 9);
}

static void test_local(void **state) {
  (void)state;
  uint64_t nodes[] = {1, 2, 3};
  uint64_t out;
  for (int i = 0; i < 100; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "g%d", i);
    assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_LOCAL, nodes, 3, 2,
                                          "GW", 2, inst, strlen(inst), &out),
                     0);
    assert_int_equal(out, 2);
    /* the local node is not heard from: fall back to the hash choice */
    assert_int_equal(lmz_placement_choose(LMZ_PLACEMENT_LOCAL, nodes, 3, 4,
                                          "DOC", 3, inst, strlen(inst), &out),
                     0);
    assert_int_equal(out, pick(nodes, 3, inst));
  }
}

enum { KEYS = 100000 };

static void test_balance(void **state) {
  (void)state;
  uint64_t nodes[] = {101, 102, 103, 104, 105};
  unsigned count[6] = {0};
  for (int i = 0; i < KEYS; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "%d", i);
    count[pick(nodes, 5, inst) - 100]++;
  }
  for (int j = 1; j <= 5; j++) {
    /* 20000 expected; sd ~126, so 5% (1000) is ~8 sd */
    assert_in_range(count[j], 19000, 21000);
  }
}

static void test_minimal_disruption(void **state) {
  (void)state;
  uint64_t five[] = {1, 2, 3, 4, 5};
  uint64_t four[] = {1, 2, 4, 5};         /* node 3 left */
  uint64_t six[] = {1, 2, 3, 4, 5, 6};    /* node 6 joined */
  unsigned moved_leave = 0, moved_join = 0, on3 = 0;
  for (int i = 0; i < KEYS; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "%d", i);
    uint64_t before = pick(five, 5, inst);
    uint64_t after = pick(four, 4, inst);
    if (before == 3)
      on3++;
    if (before != after) {
      assert_int_equal(before, 3); /* only node 3's keys move */
      moved_leave++;
    }
    uint64_t joined = pick(six, 6, inst);
    if (joined != before) {
      assert_int_equal(joined, 6); /* keys move only to the new node */
      moved_join++;
    }
  }
  assert_int_equal(moved_leave, on3);
  assert_in_range(moved_join, KEYS / 6 - 1000, KEYS / 6 + 1000);
}


/* ---- ranking (backups) --------------------------------------------------- */

static size_t rank(const uint64_t *nodes, size_t n, uint64_t exclude,
                   const char *inst, uint64_t *out, size_t k) {
  return lmz_placement_rank(nodes, n, exclude, "DOC", 3, inst, strlen(inst),
                            out, k);
}

/* The ranking is the order of the scores; its head is choose's pick, and
 * with the owner excluded it continues with the owner's runners-up. */
static void test_rank(void **state) {
  (void)state;
  uint64_t a[] = {11, 22, 33, 44, 55, 66};
  uint64_t b[] = {66, 0, 33, 11, 44, 22, 55, 22, 0}; /* zeros, duplicates */
  for (int i = 0; i < 2000; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "k%d", i);
    uint64_t kh = lmz_placement_key_hash("DOC", 3, inst, strlen(inst));
    uint64_t full[6], other[6];
    assert_int_equal(rank(a, 6, 0, inst, full, 6), 6);
    assert_int_equal(rank(b, 9, 0, inst, other, 6), 6); /* order-free */
    assert_memory_equal(full, other, sizeof full);
    assert_int_equal(full[0], pick(a, 6, inst));
    for (int j = 1; j < 6; j++) /* descending scores, each id once */
      assert_true(lmz_placement_score(kh, full[j - 1]) >
                  lmz_placement_score(kh, full[j]));
    /* top-k is a prefix of the full ranking, whatever k */
    for (size_t k = 0; k <= 6; k++) {
      uint64_t top[6] = {0};
      assert_int_equal(rank(b, 9, 0, inst, top, k), k);
      assert_memory_equal(top, full, k * sizeof top[0]);
    }
    /* backups: excluding the owner gives the next ones, never the owner */
    uint64_t bk[4];
    assert_int_equal(rank(a, 6, full[0], inst, bk, 2), 2);
    assert_int_equal(bk[0], full[1]);
    assert_int_equal(bk[1], full[2]);
    /* excluding another node just skips it */
    assert_int_equal(rank(a, 6, full[1], inst, bk, 3), 3);
    assert_int_equal(bk[0], full[0]);
    assert_int_equal(bk[1], full[2]);
    assert_int_equal(bk[2], full[3]);
    /* fewer candidates than asked: all of them but the owner */
    assert_int_equal(rank(a, 3, a[0], inst, bk, 4), 2);
    assert_true(bk[0] != a[0] && bk[1] != a[0] && bk[0] != bk[1]);
  }
  uint64_t out[2] = {7, 7};
  assert_int_equal(rank(NULL, 0, 0, "x", out, 2), 0);
  uint64_t zeros[] = {0, 0, 5};
  assert_int_equal(rank(zeros, 3, 5, "x", out, 2), 0);
  assert_int_equal(out[0], 7); /* nothing written */
}

/* A node leaving moves a key's backups only when it was one of them, and
 * then the others keep their order (the next runner-up joins at the end). */
static void test_rank_stable(void **state) {
  (void)state;
  uint64_t five[] = {1, 2, 3, 4, 5};
  uint64_t four[] = {1, 2, 4, 5}; /* node 3 left */
  for (int i = 0; i < 5000; i++) {
    char inst[16];
    snprintf(inst, sizeof inst, "%d", i);
    uint64_t owner = pick(five, 5, inst);
    if (owner == 3)
      continue;
    uint64_t before[2], after[2];
    assert_int_equal(rank(five, 5, owner, inst, before, 2), 2);
    assert_int_equal(rank(four, 4, owner, inst, after, 2), 2);
    if (before[0] != 3 && before[1] != 3) {
      assert_memory_equal(before, after, sizeof before);
    } else {
      uint64_t kept = before[0] == 3 ? before[1] : before[0];
      assert_int_equal(after[0], kept);
      assert_true(after[1] != 3 && after[1] != owner && after[1] != kept);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
      cmocka_unit_test(test_deterministic_and_order_free),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_local),
      cmocka_unit_test(test_balance),
      cmocka_unit_test(test_minimal_disruption),
      cmocka_unit_test(test_rank),
      cmocka_unit_test(test_rank_stable),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
