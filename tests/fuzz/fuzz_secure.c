/* tests/fuzz/fuzz_secure.c - libFuzzer target for cluster/secure.c.
 *
 * Byte 0 picks who receives the rest of the input:
 *   0: a fresh responder (what an unauthenticated dialer can send);
 *   1: an initiator that has sent its hello (what a fake node can answer);
 *   2: a responder that completed a real handshake (hostile records);
 *   3: an initiator that completed a real handshake.
 * Input is fed in pseudo-random chunks. Properties: no crash/leak; no
 * plaintext ever comes out in modes 0, 2 and 3 (the attacker has no key, so
 * every record must fail); once failed, the state stays failed; output
 * stays small (a handshake never answers with more than hello + proof). */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/secure.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t KEY[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
                                7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

static void pump(lmz_secure *i, lmz_secure *r) {
  lmz_buf a = LMZ_BUF_INIT, b = LMZ_BUF_INIT, pl = LMZ_BUF_INIT;
  lmz_secure_start(i, &a);
  for (int round = 0; round < 4; round++) {
    lmz_buf_reset(&b);
    if (lmz_secure_feed(r, a.data, a.len, &b, &pl))
      abort();
    lmz_buf_reset(&a);
    if (lmz_secure_feed(i, b.data, b.len, &a, &pl))
      abort();
  }
  if (!lmz_secure_is_open(i) || !lmz_secure_is_open(r))
    abort();
  lmz_buf_free(&a);
  lmz_buf_free(&b);
  lmz_buf_free(&pl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init) {
    if (sodium_init() < 0)
      abort();
    init = 1;
  }
  if (size < 1)
    return 0;
  int mode = data[0] % 4;
  uint8_t ri[LMZ_SECURE_RANDOM_LEN], rr[LMZ_SECURE_RANDOM_LEN];
  memset(ri, 0x11, sizeof ri);
  memset(rr, 0x22, sizeof rr);
  lmz_secure i, r, *target;
  lmz_secure_init(&i, LMZ_SECURE_INITIATOR, KEY, ri);
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY, rr);
  lmz_buf out = LMZ_BUF_INIT, plain = LMZ_BUF_INIT;
  if (mode >= 2)
    pump(&i, &r);
  else if (mode == 1)
    lmz_secure_start(&i, &out);
  target = (mode == 0 || mode == 2) ? &r : &i;
  lmz_buf_reset(&out);
  const uint8_t *p = data + 1;
  size_t left = size - 1;
  uint32_t seed = (uint32_t)size;
  int failed = 0;
  while (left > 0) {
    seed = seed * 1103515245u + 12345u;
    size_t k = 1 + (seed >> 16) % 131;
    if (k > left)
      k = left;
    int rv = lmz_secure_feed(target, p, k, &out, &plain);
    if (failed && rv == 0)
      abort(); /* failure is terminal */
    if (rv)
      failed = 1;
    p += k;
    left -= k;
  }
  if (mode != 1 && plain.len != 0)
    abort(); /* forged records never decrypt */
  if (out.len > 2 * (4 + LMZ_SECURE_HELLO_LEN) + 4096)
    abort();
  lmz_buf_free(&out);
  lmz_buf_free(&plain);
  lmz_secure_free(&i);
  lmz_secure_free(&r);
  return 0;
}
