/* tests/fuzz/fuzz_scjson.c - libFuzzer target for the SC-JSON decoder and
 * encoder (core/codec_scjson*.c).
 *
 * Each input is decoded with small limits (64 KiB, depth 64, 20000 values,
 * 4 MiB). Errors must carry their code, an offset inside the input and a
 * message. What decodes is encoded; the text is decoded again (default
 * limits: the encoder's own depth limit matches them) and must give an equal
 * value, and encoding that gives the same text byte-for-byte. The encoder
 * may refuse with LMZ_ETOODEEP only: refs used once are written inline, so a
 * chain of small aliases can become one deep value. A violation aborts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(int rc, const struct lmz_codec_error *err,
                        size_t size) {
  if (err->code != rc || err->offset > size || err->msg[0] == 0) {
    fprintf(stderr, "bad error report: rc %d code %d offset %zu msg '%s'\n", rc,
            err->code, err->offset, err->msg);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct lmz_codec_limits lim = {.max_depth = 64,
                                 .max_input = 64 * 1024,
                                 .max_nodes = 20000,
                                 .max_memory = 4u << 20};
  struct lmz_codec_error err;
  lmz_arena *a = lmz_arena_new();
  if (!a)
    abort();
  lmz_value *v = NULL;
  int rc = lmz_scjson_decode(a, (const char *)data, size, &lim, &v, &err);
  if (rc) {
    check_error(rc, &err, size);
    lmz_arena_free(a);
    return 0;
  }
  lmz_buf t1 = LMZ_BUF_INIT, t2 = LMZ_BUF_INIT;
  rc = lmz_scjson_encode(v, &t1, &err);
  if (rc == LMZ_ETOODEEP)
    goto out;
  if (rc) {
    fprintf(stderr, "encode failed: %s\n", err.msg);
    abort();
  }
  lmz_value *w = NULL;
  rc = lmz_scjson_decode(a, (const char *)t1.data, t1.len, NULL, &w, &err);
  if (rc) {
    fprintf(stderr, "re-decode failed at %zu: %s\n%.*s\n", err.offset, err.msg,
            (int)t1.len, (const char *)t1.data);
    abort();
  }
  if (!lmz_value_equal(v, w)) {
    fprintf(stderr, "decode(encode(v)) != v:\n%.*s\n", (int)t1.len,
            (const char *)t1.data);
    abort();
  }
  if (lmz_scjson_encode(w, &t2, &err) || t1.len != t2.len ||
      memcmp(t1.data, t2.data, t1.len) != 0) {
    fprintf(stderr, "encoding is not a fixed point:\n%.*s\n%.*s\n",
            (int)t1.len, (const char *)t1.data, (int)t2.len,
            (const char *)t2.data);
    abort();
  }
out:
  lmz_buf_free(&t1);
  lmz_buf_free(&t2);
  lmz_arena_free(a);
  return 0;
}
