/* libFuzzer target for the binary value decoder (core/codec_bin.c).
 *
 * Decodes arbitrary bytes under small limits. Whatever decodes must encode
 * again, decode again to an equal graph (lmz_value_equal), and re-encode to
 * the same bytes (the encoding is canonical); any difference aborts. Errors
 * must carry an offset inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "lmz/value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct lmz_codec_limits l;
  lmz_codec_limits_default(&l);
  l.max_depth = 64;
  l.max_input = 1 << 16;
  l.max_nodes = 20000;
  l.max_memory = 4 << 20;
  lmz_arena *a = lmz_arena_new(), *b = lmz_arena_new();
  if (!a || !b)
    abort();
  lmz_value *v = NULL, *w = NULL;
  struct lmz_codec_error err;
  int rv = lmz_bin_decode(a, data, size, &l, &v, &err);
  if (rv) {
    if (err.code != rv || err.offset > (size > l.max_input ? l.max_input : size))
      abort();
    goto out;
  }
  lmz_buf e1 = LMZ_BUF_INIT, e2 = LMZ_BUF_INIT;
  if (lmz_bin_encode(v, &e1, NULL) ||
      lmz_bin_decode(b, e1.data, e1.len, NULL, &w, &err) ||
      !lmz_value_equal(v, w) || lmz_bin_encode(w, &e2, NULL) ||
      e1.len != e2.len || memcmp(e1.data, e2.data, e1.len) != 0)
    abort();
  lmz_buf_free(&e1);
  lmz_buf_free(&e2);
out:
  lmz_arena_free(a);
  lmz_arena_free(b);
  return 0;
}
