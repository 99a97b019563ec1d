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
 *  - lmz_sqlvfs_parse_page_key() either rejects the bytes or they re-encode
 *    to exactly the same user key. */
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

static void check_key(const uint8_t *data, size_t size) {
  uint32_t idx;
  if (lmz_sqlvfs_parse_page_key(data, size, &idx))
    return;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX], key[LMZ_KEY_MAX];
  int pl = lmz_key_actor_prefix(prefix, "D", 1, "i", 1);
  int kl = lmz_sqlvfs_page_key(key, prefix, (size_t)pl, idx);
  if (kl < 0 || (size_t)kl != (size_t)pl + 1 + size ||
      memcmp(key + pl + 1, data, size))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_decode(data, size);
  check_key(data, size);
  return 0;
}
