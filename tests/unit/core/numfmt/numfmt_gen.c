/* tests/unit/core/numfmt/numfmt_gen.c - prints seeded doubles and how lmz
 * formats them, for the differential test against Node.js (numfmt_check.mjs).
 *
 *   numfmt_gen SEED COUNT
 *
 * One line per double: 16 hex digits of its bits, a space, then
 * lmz_json_format_number's text, then a space and lmz_json_write_number's
 * text (the JSON.stringify form). The doubles mix the cases the shortest-
 * digits code treats differently: random bit patterns (NaN and infinities
 * included), powers of two and their neighbours, subnormals, short decimals
 * and their neighbours, integers around 2^53 and 1e21, and numbers near the
 * 1e21 and 1e-7 switches to exponent form. Same seed, same output. */
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/json.h"

static uint64_t splitmix64(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double from_bits(uint64_t b) {
  double d;
  memcpy(&d, &b, sizeof d);
  return d;
}

/* Moves d by -2..+2 units in the last place. */
static double wiggle(uint64_t *s, double d) {
  int k = (int)(splitmix64(s) % 5) - 2;
  for (; k < 0; k++)
    d = nextafter(d, -INFINITY);
  for (; k > 0; k--)
    d = nextafter(d, INFINITY);
  return d;
}

static double short_decimal(uint64_t *s) {
  uint64_t r = splitmix64(s);
  int digits = 1 + (int)(r % 17);
  uint64_t t = splitmix64(s) % (uint64_t)pow(10, digits);
  int scale = (int)(splitmix64(s) % 61) - 30;
  double d = (double)t * pow(10, scale);
  return (r >> 32) & 1 ? wiggle(s, d) : d;
}

/* Edge values first, then the seeded mix. */
static const double specials[] = {
    0.0,     -0.0,    NAN,      INFINITY, -INFINITY, DBL_MAX, -DBL_MAX,
    DBL_MIN, 5e-324,  1e21,     1e21 - 65536, 1e-7,  1e-6,    0.1,
    0.3,     1.0 / 3, 123e-20,  9007199254740993.0, 4.35, 5e-310};

static double next_double(uint64_t *s, uint64_t i) {
  if (i < sizeof specials / sizeof specials[0])
    return specials[i];
  uint64_t r = splitmix64(s);
  switch (i % 8) {
  case 0:
  case 1:
    return from_bits(r); /* any pattern: NaN, Infinity, -0 included */
  case 2:
    return wiggle(s, ldexp(1.0, (int)(r % 2098) - 1074));
  case 3:
    return from_bits(r & 0x800fffffffffffffull); /* subnormal (or 0) */
  case 4:
    return short_decimal(s);
  case 5: /* integers: around 2^53 and up to ~1e22 */
    return wiggle(s, (double)(r >> (r % 64)) * ((r & 1) ? 1.0 : 1024.0));
  case 6: /* near the exponent-form switches */
    return wiggle(s, (r & 1 ? 1e21 : 1e-7) * (1.0 + (double)(r >> 40) / 1e12));
  default:
    return (double)(r >> 11) / 9007199254740992.0 *
           pow(10, (int)(splitmix64(s) % 40) - 20);
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: numfmt_gen SEED COUNT\n");
    return 2;
  }
  uint64_t seed = strtoull(argv[1], NULL, 10);
  uint64_t count = strtoull(argv[2], NULL, 10);
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t i = 0; i < count; i++) {
    double d = next_double(&seed, i);
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    char text[32];
    lmz_json_format_number(d, text);
    b.len = 0;
    if (lmz_json_write_number(&b, d) != 0 || lmz_buf_putc(&b, 0) != 0) {
      fprintf(stderr, "numfmt_gen: out of memory\n");
      return 1;
    }
    printf("%016" PRIx64 " %s %s\n", bits, text, (const char *)b.data);
  }
  lmz_buf_free(&b);
  return fflush(stdout) == 0 ? 0 : 1;
}
