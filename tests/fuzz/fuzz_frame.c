/* tests/fuzz/fuzz_frame.c - libFuzzer target for proto/frame.c.
 *
 * Input: byte 0 seeds the chunking, the rest is a node-port plaintext byte
 * stream. It is fed to the splitter (cap 1 MiB) in chunks of pseudo-random
 * sizes; every body is unpacked, and whatever unpacks is packed again and
 * must be a fixed point: unpack(pack(m)) packs to the same bytes. The
 * splitter must never hold more than the cap + header, and split results
 * must not depend on the chunking (checked against a one-shot split). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (1u << 20)

static void check_body(const uint8_t *body, size_t len) {
  Lmz__Frame *f = NULL;
  if (lmz_frame_unpack(body, len, &f) != 0)
    return;
  lmz_buf a = LMZ_BUF_INIT, b = LMZ_BUF_INIT;
  long n = lmz_frame_append(&a, f, 0);
  lmz_frame_free(f);
  if (n < 0)
    abort(); /* re-packing what we unpacked cannot exceed 16 MiB here */
  Lmz__Frame *g = NULL;
  if (lmz_frame_unpack(a.data + 4, a.len - 4, &g) != 0)
    abort(); /* our own output must parse */
  if (lmz_frame_append(&b, g, 0) != n || memcmp(a.data, b.data, a.len) != 0)
    abort(); /* and be a fixed point */
  lmz_frame_free(g);
  lmz_buf_free(&a);
  lmz_buf_free(&b);
}

/* Splits in one shot; returns the count of bodies and the final status. */
static int count_bodies(const uint8_t *p, size_t n, int *status) {
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, CAP);
  const uint8_t *body;
  size_t blen;
  int count = 0, rv;
  while ((rv = lmz_frame_split(&sp, &p, &n, &body, &blen)) == 1)
    count++;
  *status = rv;
  lmz_frame_splitter_free(&sp);
  return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint32_t seed = data[0] * 2654435761u + 1;
  const uint8_t *p = data + 1;
  size_t left = size - 1;
  int want_status;
  int want = count_bodies(p, left, &want_status);
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, CAP);
  int got = 0, rv = 0;
  while (left > 0 && rv >= 0) {
    seed = seed * 1103515245u + 12345u;
    size_t k = 1 + (seed >> 16) % 97;
    if (k > left)
      k = left;
    const uint8_t *q = p;
    size_t n = k;
    const uint8_t *body;
    size_t blen;
    while ((rv = lmz_frame_split(&sp, &q, &n, &body, &blen)) == 1) {
      if (blen > CAP)
        abort();
      got++;
      check_body(body, blen);
    }
    if (sp.buf.len > CAP + LMZ_FRAME_HDR_LEN)
      abort();
    p += k - n;
    left -= k - n;
    if (rv == 0 && n != 0)
      abort(); /* 0 means all input consumed */
  }
  if (got != want || (rv < 0) != (want_status < 0))
    abort(); /* chunking must not change the result */
  lmz_frame_splitter_free(&sp);
  return 0;
}
