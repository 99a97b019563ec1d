/* tests/lib/gen_value.h - seeded random lmz_value graphs for tests.
 *
 *   struct gen_opts o;
 *   gen_opts_default(&o);            // every type, depth 4, cycles + aliases
 *   uint64_t seed = 42;
 *   lmz_value *v = gen_value(arena, &seed, &o);
 *
 * The same seed and options always give the same graph (splitmix64; no global
 * state), and `seed` is advanced, so calling again gives the next graph. Print
 * the seed on failure to reproduce.
 *
 * What it covers, when the type is enabled: -0, NaN, +-Infinity, integers
 * around 2^53, fractions, denormals; bigints from "0" to ~120 digits, both
 * signs; strings empty/short/63-64 bytes/long, multi-byte UTF-8, WTF-8 lone
 * surrogates (never a high one right before a low one: JavaScript would read
 * that as one character, see test_codec_cross.c), embedded NUL, strings starting with '$'; valid and invalid
 * Dates; RegExp with flags; URL; Headers; ArrayBuffers; every view kind
 * (DataView, BigInt64Array, ...) at aligned byte offsets, sharing buffers when
 * aliases are on; boxed primitives of the 4 kinds; arrays with holes
 * (including trailing ones); objects with '$'-prefixed keys (never
 * integer-like keys, whose order JavaScript would change); Maps with primitive
 * and object keys; Sets; Errors of several names with stack, message, custom
 * props ("code"), AggregateError "errors", and causes (a cycle back to the
 * error itself or an ancestor when cycles are on).
 *
 * Everything is allocated in the given arena (freed with it). Returns NULL
 * only when the arena runs out. Thread: any; the generator has no state
 * besides *seed. */
#ifndef LMZ_TESTS_GEN_VALUE_H
#define LMZ_TESTS_GEN_VALUE_H

#include <stdbool.h>
#include <stdint.h>

#include "lmz/value.h"

/* Bit for one lmz_type in gen_opts.types. */
#define GEN_TYPE(t) (1u << (t))

struct gen_opts {
  unsigned max_depth;   /* containers nest at most this deep (default 4) */
  unsigned max_breadth; /* at most this many children per container (6) */
  bool cycles;          /* allow references back to enclosing containers */
  bool aliases;         /* allow one identity node at several places */
  /* Allowed types, GEN_TYPE() bits; 0 = all. LMZ_T_HOLE enables holes in
   * arrays; views create their ArrayBuffers even if LMZ_T_ARRAYBUFFER is
   * off; errors always have string names and messages. */
  uint32_t types;
};

/* Defaults as documented above: depth 4, breadth 6, cycles and aliases on,
 * every type. */
void gen_opts_default(struct gen_opts *o);

/* Next 64 random bits from *seed (splitmix64). */
uint64_t gen_next(uint64_t *seed);

/* A random graph in `a` (see above). `o` NULL = defaults. */
lmz_value *gen_value(lmz_arena *a, uint64_t *seed, const struct gen_opts *o);

#endif
