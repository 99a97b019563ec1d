/* core/hash.c - seeded and stable byte-string hashes (see hash.h).
 *
 * Failure modes:
 *  1. sodium_init() fails (it cannot in practice on Linux): the key is still
 *     drawn with randombytes_buf(), whose default source initialises itself
 *     and aborts inside libsodium when the OS has no entropy to give; there
 *     is no unseeded fallback, on purpose. */
#include "core/hash.h"

#include <sodium.h>
#include <string.h>
#include <uv.h>

static unsigned char seed_key[crypto_shorthash_KEYBYTES];
static uv_once_t seed_once = UV_ONCE_INIT;

static void seed_init(void) {
  /* The daemon calls sodium_init() at start; tests and tools may hash first.
   * 0 or 1 (already initialised); < 0 is failure mode 1 and goes on. */
  int rv = sodium_init();
  (void)rv;
  randombytes_buf(seed_key, sizeof seed_key);
}

uint64_t lmz_hash_seeded(const void *p, size_t n) {
  uv_once(&seed_once, seed_init);
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, p, n, seed_key);
  uint64_t h;
  memcpy(&h, out, sizeof h); /* host order: the value never leaves us */
  return h;
}

/* FNV-1a over 8-byte words, then a final mix. Frozen: directory snapshots
 * written by older builds carry checksums made with it. The word load is
 * host-endian, which is fine while every node is little-endian x86-64/arm64;
 * a big-endian port must byte-swap `w` here. */
uint64_t lmz_hash_stable(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, s, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
    s += 8;
    n -= 8;
  }
  while (n--)
    h = (h ^ *s++) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}
