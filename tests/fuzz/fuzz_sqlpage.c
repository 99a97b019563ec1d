/* tests/fuzz/fuzz_sqlpage.c - hostile SQL page values and chunk keys.
 *
 * The SQL VFS (storage/sqlvfs.h) reads chunk values from RocksDB, where an
 * import (migration, replication) may have put anything. Invariants on every
 * input:
 *  - lmz_sqlvfs_decode_page() either rejects the value or fills exactly one
 *    page (ASan catches any read or write outside value and page), and then
 *    encoding that page and decoding the result gives the same page back;
 *  - encoding never produces more than a page, and a raw page (the input
 *    padded or cut to one page) round-trips;
 *  - lmz_sqlvfs_apply_delta() either rejects the value and leaves the page
 *    untouched, or changes it; then a delta encoded from the old page to the
 *    new one applies back to the same page;
 *  - lmz_sqlvfs_parse_page_key() / parse_chunk_key() either reject the
 *    bytes or they re-encode to exactly the same user key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"
#include "storage/sqlvfs.h"

static void check_decode(const uint8_t *data, size_t size) {
  uint8_t page[LMZ_SQLVFS_PAGE], enc[LMZ_SQLVFS_PAGE], back[LMZ_SQLVFS_PAGE];
  /* a private copy, so ASan sees reads past the value */
  uint8_t *v = malloc(size ? size : 1);
  if (!v)
    return;
  if (size)
    memcpy(v, data, size);
  if (lmz_sqlvfs_decode_page(v, size, page) == 0) {
    size_t n = lmz_sqlvfs_encode_page(page, enc);
    if (n > LMZ_SQLVFS_PAGE || lmz_sqlvfs_decode_page(enc, n, back) ||
        memcmp(page, back, LMZ_SQLVFS_PAGE))
      abort();
  }
  free(v);
  memset(page, 0, sizeof page);
  memcpy(page, data, size < sizeof page ? size : sizeof page);
  size_t n = lmz_sqlvfs_encode_page(page, enc);
  if (n > LMZ_SQLVFS_PAGE || lmz_sqlvfs_decode_page(enc, n, back) ||
      memcmp(page, back, LMZ_SQLVFS_PAGE))
    abort();
}

static void check_delta(const uint8_t *data, size_t size) {
  /* a delta of a page changed throughout takes a page and a run header */
  static uint8_t old[LMZ_SQLVFS_PAGE], page[LMZ_SQLVFS_PAGE], enc[2 * LMZ_SQLVFS_PAGE];
  for (size_t i = 0; i < sizeof old; i++)
    old[i] = (uint8_t)(i * 31 + 7);
  memcpy(page, old, sizeof page);
  uint8_t *v = malloc(size ? size : 1);
  if (!v)
    return;
  if (size)
    memcpy(v, data, size);
  int rv = lmz_sqlvfs_apply_delta(v, size, page);
  free(v);
  if (rv && memcmp(page, old, sizeof page))
    abort(); /* a rejected delta touched the page */
  if (rv)
    return;
  size_t n = lmz_sqlvfs_encode_delta(old, page, enc, sizeof enc);
  uint8_t back[LMZ_SQLVFS_PAGE];
  memcpy(back, old, sizeof back);
  if (n == 0 || n > sizeof enc || lmz_sqlvfs_apply_delta(enc, n, back) ||
      memcmp(back, page, sizeof page))
    abort();
}

static void check_key(const uint8_t *data, size_t size) {
  uint32_t idx;
  uint16_t d;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX], key[LMZ_KEY_MAX];
  int pl = lmz_key_actor_prefix(prefix, "D", 1, "i", 1);
  if (!lmz_sqlvfs_parse_chunk_key(data, size, &idx, &d)) {
    int kl = d ? lmz_sqlvfs_delta_key(key, prefix, (size_t)pl, idx, d)
               : lmz_sqlvfs_page_key(key, prefix, (size_t)pl, idx);
    if (kl < 0 || (size_t)kl != (size_t)pl + 1 + size ||
        memcmp(key + pl + 1, data, size))
      abort();
  }
  if (lmz_sqlvfs_parse_page_key(data, size, &idx))
    return;
  int kl = lmz_sqlvfs_page_key(key, prefix, (size_t)pl, idx);
  if (kl < 0 || (size_t)kl != (size_t)pl + 1 + size ||
      memcmp(key + pl + 1, data, size))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_decode(data, size);
  check_delta(data, size);
  check_key(data, size);
  return 0;
}
