/* tests/unit/core/test_hmap.c - the hash map, and hash flooding.
 *
 * The flooding test builds keys that all land in one home slot under the
 * stable (unseeded FNV) hash, the hash the tables used before they were
 * seeded, and checks through lmz__hmap_stats that the table still finds
 * each of them in a few probes: a count, not a stopwatch. */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/hmap.h"

#define N_FLOOD 1000
#define FLOOD_KEYLEN 14
#define FLOOD_BITS 0xfffu /* > the table's final mask for N_FLOOD entries */

/* N_FLOOD keys "actor-xxxxxxxx" whose stable hashes share the low 12 bits:
 * in a table of up to 4096 slots they all start probing at one slot. */
static char (*flood_keys(void))[FLOOD_KEYLEN + 1] {
  char (*keys)[FLOOD_KEYLEN + 1] = calloc(N_FLOOD, sizeof *keys);
  assert_non_null(keys);
  size_t n = 0;
  for (uint32_t i = 0; n < N_FLOOD; i++) {
    char k[FLOOD_KEYLEN + 1];
    snprintf(k, sizeof k, "actor-%08x", i);
    if ((lmz_hash_stable(k, FLOOD_KEYLEN) & FLOOD_BITS) == 0x5a5)
      memcpy(keys[n++], k, sizeof k);
  }
  return keys;
}

static void flood_keys_collide_under_stable_hash(void **state) {
  (void)state;
  char (*keys)[FLOOD_KEYLEN + 1] = flood_keys();
  uint64_t h0 = lmz_hash_stable(keys[0], FLOOD_KEYLEN) & FLOOD_BITS;
  for (size_t i = 1; i < N_FLOOD; i++)
    assert_int_equal(lmz_hash_stable(keys[i], FLOOD_KEYLEN) & FLOOD_BITS, h0);
  free(keys);
}

static void flood_does_not_degrade_lookups(void **state) {
  (void)state;
  char (*keys)[FLOOD_KEYLEN + 1] = flood_keys();
  lmz_hmap m = LMZ_HMAP_INIT;
  for (size_t i = 0; i < N_FLOOD; i++)
    assert_int_equal(lmz_hmap_put(&m, keys[i], FLOOD_KEYLEN, keys[i], NULL), 0);
  assert_true(m.cap <= FLOOD_BITS + 1); /* else the keys would not collide */
  for (size_t i = 0; i < N_FLOOD; i++)
    assert_ptr_equal(lmz_hmap_get(&m, keys[i], FLOOD_KEYLEN), keys[i]);
  struct lmz__hmap_stats st;
  lmz__hmap_stats(&m, &st);
  assert_int_equal(st.n, N_FLOOD);
  /* Unseeded: max_probe = N_FLOOD, mean ~N_FLOOD/2. Seeded, at load < 0.5,
   * linear probing averages ~1.5 probes; 64 is far out in the tail. */
  printf("flood: %zu keys, cap %zu, max probes %zu, mean %.2f\n", st.n, m.cap,
         st.max_probe, (double)st.total_probe / (double)st.n);
  assert_true(st.max_probe <= 64);
  assert_true(st.total_probe <= 3 * st.n);
  lmz_hmap_free(&m);
  free(keys);
}

/* The stable hash is a persisted format (directory snapshot checksums):
 * pin its values so a change cannot slip through. */
static void stable_hash_is_frozen(void **state) {
  (void)state;
  assert_int_equal(lmz_hash_stable("", 0), 0xecba3df2c3383c52ull);
  assert_int_equal(lmz_hash_stable("LDIR snapshot!", 14), 0x939516dd66dfb2f9ull);
}

static char *self_exe;

static uint64_t child_hash(void) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "'%s' --print-seeded-hash", self_exe);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  unsigned long long h = 0;
  assert_int_equal(fscanf(f, "%llx", &h), 1);
  assert_int_equal(pclose(f), 0);
  return h;
}

/* Same within a process, different between processes: the key is random. */
static void seeded_hash_differs_between_processes(void **state) {
  (void)state;
  assert_int_equal(lmz_hash_seeded("x", 1), lmz_hash_seeded("x", 1));
  assert_int_not_equal(lmz_hash_seeded("x", 1), lmz_hash_seeded("y", 1));
  uint64_t a = child_hash(), b = child_hash();
  assert_int_not_equal(a, b);
  assert_int_not_equal(a, lmz_hash_seeded("x", 1));
}

static void put_get_del_and_iterate(void **state) {
  (void)state;
  static char keys[500][8];
  lmz_hmap m = LMZ_HMAP_INIT;
  for (int i = 0; i < 500; i++) {
    snprintf(keys[i], sizeof keys[i], "k%d", i);
    assert_int_equal(lmz_hmap_put(&m, keys[i], strlen(keys[i]), keys[i], NULL),
                     0);
  }
  void *old = NULL;
  assert_int_equal(lmz_hmap_put(&m, "k7", 2, keys[0], &old), 0);
  assert_ptr_equal(old, keys[7]);
  for (int i = 0; i < 500; i += 2) /* delete the evens: tombstones */
    assert_non_null(lmz_hmap_del(&m, keys[i], strlen(keys[i])));
  assert_null(lmz_hmap_del(&m, "k0", 2));
  assert_int_equal(m.n, 250);
  size_t it = 0, seen = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&m, &it, &k, &kl, &v)) {
    assert_true(memcmp(k, "k", 1) == 0);
    seen++;
  }
  assert_int_equal(seen, 250);
  for (int i = 1; i < 500; i += 2)
    assert_non_null(lmz_hmap_get(&m, keys[i], strlen(keys[i])));
  assert_null(lmz_hmap_get(&m, "k2", 2));
  struct lmz__hmap_stats st;
  lmz__hmap_stats(&m, &st);
  assert_int_equal(st.n, 250);
  lmz_hmap_free(&m);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--print-seeded-hash") == 0) {
    printf("%llx\n", (unsigned long long)lmz_hash_seeded("x", 1));
    return 0;
  }
  self_exe = argv[0];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flood_keys_collide_under_stable_hash),
      cmocka_unit_test(flood_does_not_degrade_lookups),
      cmocka_unit_test(stable_hash_is_frozen),
      cmocka_unit_test(seeded_hash_differs_between_processes),
      cmocka_unit_test(put_get_del_and_iterate),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
