/* tests/unit/storage/test_keys.c - actor key layout: exact bytes, ordering,
 * containment, limits, hostile parsing. Pure; no RocksDB. */
#include "lib/testlib.h"

#include <string.h>

#include "core/err.h"
#include "storage/keys.h"

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                     size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = memcmp(a, b, n);
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

/* lower <= key < upper */
static int in_range(const lmz_key_range *r, const uint8_t *k, size_t len) {
  return bytes_cmp(r->lower, r->lower_len, k, len) <= 0 &&
         bytes_cmp(k, len, r->upper, r->upper_len) < 0;
}

static void prefix_exact_bytes(void **state) {
  (void)state;
  uint8_t p[LMZ_KEY_PREFIX_MAX];
  int n = lmz_key_actor_prefix(p, "DOC", 3, "x1", 2);
  assert_int_equal(n, 8);
  assert_memory_equal(p,
                      "A\x03"
                      "DOC\x02x1",
                      8);

  uint8_t k[LMZ_KEY_MAX];
  n = lmz_key_join(k, p, 8, LMZ_KEY_SPACE_USER, "name", 4);
  assert_int_equal(n, 13);
  assert_memory_equal(k,
                      "A\x03"
                      "DOC\x02x1\x01name",
                      13);
  n = lmz_key_actor(k, "DOC", 3, "x1", 2, LMZ_KEY_SPACE_FRAMEWORK, "id", 2);
  assert_int_equal(n, 11);
  assert_memory_equal(k,
                      "A\x03"
                      "DOC\x02x1\x00id",
                      11);

  /* 200-byte binding: varint 200 = 0xC8 0x01 */
  char big[300];
  memset(big, 'b', sizeof big);
  n = lmz_key_actor_prefix(p, big, 200, "", 0);
  assert_int_equal(n, 1 + 2 + 200 + 1);
  assert_int_equal(p[1], 0xC8);
  assert_int_equal(p[2], 0x01);
  assert_int_equal(p[203], 0x00);
}

static void limits_are_enforced(void **state) {
  (void)state;
  static char big[LMZ_KEY_USER_MAX + 2];
  memset(big, 'z', sizeof big);
  uint8_t k[LMZ_KEY_MAX];
  assert_int_equal(lmz_key_actor_prefix(k, "", 0, "i", 1), LMZ_EINVAL);
  assert_int_equal(lmz_key_actor_prefix(k, big, 256, "i", 1), LMZ_EINVAL);
  assert_int_equal(lmz_key_actor_prefix(k, "b", 1, big, 1025), LMZ_EINVAL);
  assert_int_equal(lmz_key_actor_prefix(k, NULL, 3, "i", 1), LMZ_EINVAL);
  /* maxima are accepted and fit the buffers */
  int n = lmz_key_actor(k, big, 255, big, 1024, LMZ_KEY_SPACE_USER, big,
                        LMZ_KEY_USER_MAX);
  assert_int_equal(n, LMZ_KEY_MAX);
  assert_int_equal(lmz_key_actor(k, "b", 1, "i", 1, LMZ_KEY_SPACE_USER, big,
                                 LMZ_KEY_USER_MAX + 1),
                   LMZ_EINVAL);
  assert_int_equal(
      lmz_key_actor(k, "b", 1, "i", 1, LMZ_KEY_SPACE_COUNT, "k", 1),
      LMZ_EINVAL);
  assert_int_equal(lmz_key_node(k, big, LMZ_KEY_USER_MAX + 1), LMZ_EINVAL);
  assert_int_equal(lmz_key_node(k, "raft", 4), 5);
  assert_memory_equal(k, "Nraft", 5);
  lmz_key_range r;
  assert_int_equal(lmz_key_actor_range(&r, (const uint8_t *)"Z", 1),
                   LMZ_EINVAL);
  assert_int_equal(lmz_key_list_range(&r, k, 0, LMZ_KEY_SPACE_USER, "", 0),
                   LMZ_EINVAL);
}

/* Keys of an actor fall inside its ranges; keys of prefix-related actors
 * ("ab","c") / ("a","bc") / ("a","b") / ("a","bc\x01...") do not. */
static void actors_do_not_overlap(void **state) {
  (void)state;
  struct {
    const char *b, *i;
  } actors[] = {{"ab", "c"}, {"a", "bc"}, {"a", "b"},     {"a", "bc\x01"},
                {"a", ""},   {"abc", ""}, {"a", "bc\xff"}};
  const char *ukeys[] = {"", "k", "\xff\xff", "zz\x00q"};
  size_t na = LMZ_ARRAY_SIZE(actors);
  for (size_t x = 0; x < na; x++) {
    uint8_t px[LMZ_KEY_PREFIX_MAX];
    int plx = lmz_key_actor_prefix(px, actors[x].b, strlen(actors[x].b),
                                   actors[x].i, strlen(actors[x].i));
    assert_true(plx > 0);
    lmz_key_range all, user, fw;
    assert_int_equal(lmz_key_actor_range(&all, px, (size_t)plx), 0);
    assert_int_equal(lmz_key_space_range(&user, px, (size_t)plx, 1), 0);
    assert_int_equal(lmz_key_space_range(&fw, px, (size_t)plx, 0), 0);
    for (size_t y = 0; y < na; y++) {
      for (size_t u = 0; u < LMZ_ARRAY_SIZE(ukeys); u++) {
        for (unsigned sp = 0; sp < LMZ_KEY_SPACE_COUNT; sp++) {
          uint8_t k[LMZ_KEY_MAX];
          size_t ul = u == 3 ? 5 : strlen(ukeys[u]);
          int kl =
              lmz_key_actor(k, actors[y].b, strlen(actors[y].b), actors[y].i,
                            strlen(actors[y].i), sp, ukeys[u], ul);
          assert_true(kl > 0);
          int same = x == y;
          assert_int_equal(in_range(&all, k, (size_t)kl), same);
          assert_int_equal(in_range(&user, k, (size_t)kl), same && sp == 1);
          assert_int_equal(in_range(&fw, k, (size_t)kl), same && sp == 0);
        }
      }
    }
  }
}

static void list_range_is_prefix_scan(void **state) {
  (void)state;
  uint8_t p[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(p, "B", 1, "i", 1);
  lmz_key_range r;
  assert_int_equal(lmz_key_list_range(&r, p, (size_t)pl, 1, "ab", 2), 0);
  assert_memory_equal(r.lower,
                      "A\x01"
                      "B\x01i\x01"
                      "ab",
                      8);
  assert_int_equal(r.lower_len, 8);
  assert_memory_equal(r.upper,
                      "A\x01"
                      "B\x01i\x01"
                      "ac",
                      8);
  assert_int_equal(r.upper_len, 8);

  const char *inside[] = {"ab", "ab\x00", "abz", "ab\xff\xff"};
  const char *outside[] = {"a", "aa\xff", "ac", "b", ""};
  for (size_t j = 0; j < LMZ_ARRAY_SIZE(inside); j++) {
    uint8_t k[LMZ_KEY_MAX];
    size_t l = j == 1 ? 3 : strlen(inside[j]);
    int kl = lmz_key_join(k, p, (size_t)pl, 1, inside[j], l);
    assert_true(in_range(&r, k, (size_t)kl));
  }
  for (size_t j = 0; j < LMZ_ARRAY_SIZE(outside); j++) {
    uint8_t k[LMZ_KEY_MAX];
    int kl = lmz_key_join(k, p, (size_t)pl, 1, outside[j], strlen(outside[j]));
    assert_false(in_range(&r, k, (size_t)kl));
  }
  /* 0xFF tail: "a\xff\xff" -> upper "b" */
  assert_int_equal(lmz_key_list_range(&r, p, (size_t)pl, 1, "a\xff\xff", 3), 0);
  assert_int_equal(r.upper_len, (size_t)pl + 2);
  assert_int_equal(r.upper[pl + 1], 'b');
  /* all 0xFF (or empty): upper = end of the user space */
  assert_int_equal(lmz_key_list_range(&r, p, (size_t)pl, 1, "\xff", 1), 0);
  assert_int_equal(r.upper_len, (size_t)pl + 1);
  assert_int_equal(r.upper[pl], 0x02);
  assert_int_equal(lmz_key_list_range(&r, p, (size_t)pl, 1, "", 0), 0);
  assert_int_equal(r.upper_len, (size_t)pl + 1);
  assert_int_equal(r.upper[pl], 0x02);
}

static void node_keys_are_outside_actors(void **state) {
  (void)state;
  lmz_key_range nr;
  lmz_key_node_range(&nr);
  uint8_t k[LMZ_KEY_MAX];
  int kl = lmz_key_node(k, "\xff\xff", 2);
  assert_true(in_range(&nr, k, (size_t)kl));
  kl = lmz_key_node(k, "", 0);
  assert_true(in_range(&nr, k, (size_t)kl));
  kl = lmz_key_actor(k, "N", 1, "x", 1, 1, "k", 1);
  assert_false(in_range(&nr, k, (size_t)kl));
}

static void parse_round_trip_and_hostile(void **state) {
  (void)state;
  uint8_t k[LMZ_KEY_MAX];
  int kl = lmz_key_actor(k, "Bind", 4, "inst\x00x", 6, 1, "key", 3);
  struct lmz_key_parts pt;
  assert_int_equal(lmz_key_parse(k, (size_t)kl, &pt), 0);
  assert_int_equal(pt.binding_len, 4);
  assert_memory_equal(pt.binding, "Bind", 4);
  assert_int_equal(pt.instance_len, 6);
  assert_memory_equal(pt.instance, "inst\x00x", 6);
  assert_int_equal(pt.space, 1);
  assert_int_equal(pt.key_len, 3);
  assert_memory_equal(pt.key, "key", 3);
  assert_int_equal(pt.prefix_len, 1 + 1 + 4 + 1 + 6);
  /* every truncation is rejected up to (and including) the bare prefix */
  for (size_t n = 0; n <= pt.prefix_len; n++)
    assert_int_equal(lmz_key_parse(k, n, &pt), LMZ_EINVAL);
  /* non-minimal varint (0x84 0x00 for 4) */
  const uint8_t nm[] = {'A', 0x84, 0x00, 'B', 'i', 'n', 'd', 0x00, 0x01};
  assert_int_equal(lmz_key_parse(nm, sizeof nm, &pt), LMZ_EINVAL);
  /* binding length beyond the limit, empty binding, wrong kind */
  const uint8_t bl[] = {'A', 0x80, 0x02, 'x', 0x00, 0x01};
  assert_int_equal(lmz_key_parse(bl, sizeof bl, &pt), LMZ_EINVAL);
  const uint8_t eb[] = {'A', 0x00, 0x00, 0x01};
  assert_int_equal(lmz_key_parse(eb, sizeof eb, &pt), LMZ_EINVAL);
  assert_int_equal(lmz_key_parse((const uint8_t *)"Nx", 2, &pt), LMZ_EINVAL);
  /* length pointing past the end */
  const uint8_t past[] = {'A', 0x7f, 'x'};
  assert_int_equal(lmz_key_parse(past, sizeof past, &pt), LMZ_EINVAL);
}

static void varints(void **state) {
  (void)state;
  uint64_t vals[] = {0, 1, 127, 128, 255, 16383, 16384, UINT64_MAX};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(vals); i++) {
    uint8_t b[10];
    size_t n = lmz__varint_put(b, vals[i]);
    uint64_t v = 1;
    assert_int_equal(lmz__varint_get(b, b + n, &v), n);
    assert_true(v == vals[i]);
    assert_int_equal(lmz__varint_get(b, b + n - 1, &v), 0); /* truncated */
  }
  uint8_t over[11];
  memset(over, 0xff, sizeof over);
  uint64_t v;
  assert_int_equal(lmz__varint_get(over, over + 11, &v), 0);
  over[9] = 0x02; /* 10th byte may only be 0 or 1 */
  assert_int_equal(lmz__varint_get(over, over + 10, &v), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(prefix_exact_bytes),
      cmocka_unit_test(limits_are_enforced),
      cmocka_unit_test(actors_do_not_overlap),
      cmocka_unit_test(list_range_is_prefix_scan),
      cmocka_unit_test(node_keys_are_outside_actors),
      cmocka_unit_test(parse_round_trip_and_hostile),
      cmocka_unit_test(varints),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
