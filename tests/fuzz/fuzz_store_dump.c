/* tests/fuzz/fuzz_store_dump.c - hostile actor dumps and keys.
 *
 * lmz_store_import() validates a migration dump (store.h) and touches only
 * the public s->errmsg of the store, so a bare struct lmz_store_s stands in
 * for an open store. Invariants checked on every input:
 *  - import either fails and leaves the batch as it was, or returns n >= 0
 *    with exactly n + 1 operations added (delete_range + n puts), and then
 *    lmz_store_dump_actor() accepts the header too;
 *  - lmz_key_parse() either rejects the bytes or they re-encode
 *    (lmz_key_actor) to exactly the same key. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keys.h"
#include "storage/store.h"

static void check_import(const uint8_t *data, size_t size) {
  struct lmz_store_s s;
  memset(&s, 0, sizeof s);
  lmz_batch *b = lmz_batch_new();
  if (!b)
    return;
  int n = lmz_store_import(&s, data, size, b);
  if (n < 0) {
    if (lmz_batch_count(b) != 0 || lmz_batch_bytes(b) != 0 || !s.errmsg[0])
      abort();
  } else {
    if (lmz_batch_count(b) != (size_t)n + 1)
      abort();
    const char *bn, *in;
    size_t bl, il;
    if (lmz_store_dump_actor(data, size, &bn, &bl, &in, &il) != 0)
      abort();
  }
  lmz_batch_free(b);
}

static void check_key(const uint8_t *data, size_t size) {
  struct lmz_key_parts p;
  if (lmz_key_parse(data, size, &p) != 0)
    return;
  if (p.space >= LMZ_KEY_SPACE_COUNT)
    return; /* reserved space: parse reports it, join refuses it */
  uint8_t k[LMZ_KEY_MAX];
  int kl = lmz_key_actor(k, p.binding, p.binding_len, p.instance,
                         p.instance_len, p.space, p.key, p.key_len);
  if (kl < 0 || (size_t)kl != size || memcmp(k, data, size) != 0)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  check_import(data, size);
  check_key(data, size);
  return 0;
}
