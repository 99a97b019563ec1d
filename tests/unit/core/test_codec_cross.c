/* tests/unit/core/test_codec_cross.c - random seeded graphs (cycles, aliases,
 * every type) through both codecs:
 *   value -> SC-JSON -> value -> binary -> value -> SC-JSON
 * lmz_value_equal must hold at every step and the two SC-JSON texts must be
 * byte-identical. A failure prints the seed and the text. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/gen_value.h"
#include "lib/testlib.h"

#include "core/codec.h"
#include "core/value_int.h"

#define N_GRAPHS 2500

static char *sc_encode(const lmz_value *v, uint64_t seed) {
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  int rc = lmz_scjson_encode(v, &b, &err);
  if (rc != 0)
    fail_msg("seed %llu: SC-JSON encode: %s (%s)", (unsigned long long)seed,
             lmz_err_name(rc), err.msg);
  lmz_buf_putc(&b, 0);
  size_t n;
  return (char *)lmz_buf_detach(&b, &n);
}

/* Ill-formed WTF-8: a lone high surrogate directly followed by a lone low
 * surrogate, stored as two 3-byte sequences (ED A0-AF xx ED B0-BF xx). In
 * JavaScript those two code units ARE one code point, so JSON writes the
 * 4-byte character and the decoded string is (correctly) the well-formed
 * form: such a value cannot come back byte-identical. The generator makes
 * them by concatenating its "lone surrogate" pieces. */
static bool split_pair(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i + 6 <= n; i++)
    if (p[i] == 0xED && (p[i + 1] & 0xF0) == 0xA0 && p[i + 3] == 0xED &&
        (p[i + 4] & 0xF0) == 0xB0)
      return true;
  return false;
}

struct walk {
  uint32_t epoch;
  bool found;
};

static void walk_props(struct walk *w, const struct lmz_prop *props, size_t n);

/* Looks for split pairs in every string of the graph (keys included). */
static void walk(struct walk *w, const lmz_value *v) {
  if (!v || w->found)
    return;
  lmz_value *m = (lmz_value *)(uintptr_t)v;
  if (lmz_type_has_identity((lmz_type)v->type)) {
    if (m->mark_epoch == w->epoch)
      return;
    m->mark_epoch = w->epoch;
  }
  switch ((lmz_type)v->type) {
  case LMZ_T_STRING:
  case LMZ_T_URL:
    w->found |= split_pair(v->u.str.p, v->u.str.len);
    break;
  case LMZ_T_REGEXP:
    w->found |= split_pair(v->u.re.src, v->u.re.src_len) ||
                split_pair(v->u.re.flags, v->u.re.flags_len);
    break;
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    for (uint32_t i = 0; i < v->n; i++)
      walk(w, v->u.items[i]);
    break;
  case LMZ_T_OBJECT:
  case LMZ_T_HEADERS:
    walk_props(w, v->u.props, v->n);
    break;
  case LMZ_T_MAP:
    for (uint32_t i = 0; i < v->n; i++) {
      walk(w, v->u.ents[i].k);
      walk(w, v->u.ents[i].v);
    }
    break;
  case LMZ_T_ERROR:
    walk(w, v->u.err.name);
    walk(w, v->u.err.message);
    walk(w, v->u.err.stack);
    walk(w, v->u.err.cause);
    walk_props(w, v->u.err.props, v->n);
    break;
  case LMZ_T_BOXED:
    walk(w, v->u.boxed);
    break;
  default:
    break;
  }
}

static void walk_props(struct walk *w, const struct lmz_prop *props,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    w->found |= split_pair(props[i].key, props[i].klen);
    walk(w, props[i].v);
  }
}

static bool has_split_pair(const lmz_value *v) {
  struct walk w = {lmz__value_next_epoch(), false};
  walk(&w, v);
  return w.found;
}

static int n_split_pairs; /* graphs where only v == decode(encode(v)) is
                             skipped, see has_split_pair */

/* One graph through the whole chain; returns the SC-JSON length. */
static size_t cross_one(lmz_arena *a, uint64_t seed,
                        const struct gen_opts *o) {
  uint64_t s = seed;
  struct lmz_codec_error err;
  lmz_value *v = gen_value(a, &s, o);
  assert_non_null(v);

  char *t1 = sc_encode(v, seed);
  lmz_value *v1 = NULL;
  int rc = lmz_scjson_decode(a, t1, strlen(t1), NULL, &v1, &err);
  if (rc != 0)
    fail_msg("seed %llu: SC-JSON decode: %s at %zu (%s)\n%s",
             (unsigned long long)seed, lmz_err_name(rc), err.offset, err.msg,
             t1);
  bool split = has_split_pair(v);
  n_split_pairs += split;
  if (!split && !lmz_value_equal(v, v1))
    fail_msg("seed %llu: value != decode(encode(value))\n%s",
             (unsigned long long)seed, t1);

  lmz_buf bin = LMZ_BUF_INIT;
  rc = lmz_bin_encode(v1, &bin, &err);
  if (rc != 0)
    fail_msg("seed %llu: binary encode: %s", (unsigned long long)seed,
             lmz_err_name(rc));
  lmz_value *v2 = NULL;
  rc = lmz_bin_decode(a, bin.data, bin.len, NULL, &v2, &err);
  if (rc != 0)
    fail_msg("seed %llu: binary decode: %s (%s)", (unsigned long long)seed,
             lmz_err_name(rc), err.msg);
  lmz_buf_free(&bin);
  if (!lmz_value_equal(v1, v2) || (!split && !lmz_value_equal(v, v2)))
    fail_msg("seed %llu: binary round trip differs\n%s",
             (unsigned long long)seed, t1);

  char *t2 = sc_encode(v2, seed);
  if (strcmp(t1, t2) != 0)
    fail_msg("seed %llu: SC-JSON texts differ\n first:  %s\n second: %s",
             (unsigned long long)seed, t1, t2);
  size_t len = strlen(t1);
  free(t1);
  free(t2);
  return len;
}

static void run(const struct gen_opts *o, uint64_t base, int n) {
  lmz_arena *a = lmz_arena_new();
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    total += cross_one(a, base + (uint64_t)i, o);
    lmz_arena_reset(a);
  }
  assert_true(total > (size_t)n * 20); /* the graphs are not trivial */
  if (n_split_pairs)
    print_message("%d of %d graphs had split surrogate pairs (ill-formed "
                  "WTF-8 from the generator)\n", n_split_pairs, n);
  assert_true(n_split_pairs * 2 < n); /* most graphs get the full check */
  n_split_pairs = 0;
  lmz_arena_free(a);
}

static void test_cross_default(void **state) {
  (void)state;
  struct gen_opts o;
  gen_opts_default(&o);
  run(&o, 1, N_GRAPHS);
}

static void test_cross_deep_wide(void **state) {
  (void)state;
  struct gen_opts o;
  gen_opts_default(&o);
  o.max_depth = 8;
  o.max_breadth = 10;
  run(&o, 100000, 300);
}

/* Tree-shaped graphs: no aliases at all, so meta stays {} */
static void test_cross_no_aliases(void **state) {
  (void)state;
  struct gen_opts o;
  gen_opts_default(&o);
  o.cycles = false;
  o.aliases = false;
  lmz_arena *a = lmz_arena_new();
  for (uint64_t seed = 500000; seed < 500300; seed++) {
    uint64_t s = seed;
    lmz_value *v = gen_value(a, &s, &o);
    char *t = sc_encode(v, seed);
    if (!strstr(t, ",\"meta\":{}}"))
      fail_msg("seed %llu: aliases in a tree: %s", (unsigned long long)seed, t);
    free(t);
    cross_one(a, seed, &o);
    lmz_arena_reset(a);
  }
  lmz_arena_free(a);
}

/* Views and buffers only: exercises offsets and shared buffers. */
static void test_cross_views(void **state) {
  (void)state;
  struct gen_opts o;
  gen_opts_default(&o);
  o.types = GEN_TYPE(LMZ_T_VIEW) | GEN_TYPE(LMZ_T_ARRAYBUFFER) |
            GEN_TYPE(LMZ_T_ARRAY) | GEN_TYPE(LMZ_T_OBJECT) |
            GEN_TYPE(LMZ_T_NUMBER);
  run(&o, 900000, 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cross_default),
      cmocka_unit_test(test_cross_deep_wide),
      cmocka_unit_test(test_cross_no_aliases),
      cmocka_unit_test(test_cross_views),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
