/* tests/fuzz/fuzz_json.c - libFuzzer target for core/json.c.
 *
 * Each input is parsed in strict and in JSONC mode with small limits (depth
 * 64, 64 KiB, a capped arena). Whatever parses is written back with
 * lmz_json_write, the output is parsed again (strict) and written again, and
 * the two serializations must be identical: our own writer's output is
 * always valid strict JSON and a fixed point. The first 8 bytes, read as a
 * double, must format to text that reads back as the same double. A
 * violation aborts (fine in a fuzzer: these are properties of our own
 * output, not of the input). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_mode(const uint8_t *data, size_t size, bool jsonc) {
  lmz_arena *a = lmz_arena_new();
  if (!a)
    abort();
  lmz_arena_set_limit(a, 4u << 20);
  struct lmz_json_opts o = {
      .jsonc = jsonc, .max_depth = 64, .max_len = 64 * 1024};
  struct lmz_codec_error err;
  lmz_json *root = NULL;
  int rv = lmz_json_parse(a, (const char *)data, size, &o, &root, &err);
  if (rv) {
    /* errors point inside the input (or at its end) and say something */
    if (err.code != rv || err.offset > size || err.msg[0] == 0)
      abort();
    lmz_arena_free(a);
    return;
  }
  lmz_buf b1 = LMZ_BUF_INIT, b2 = LMZ_BUF_INIT;
  if (lmz_json_write(&b1, root))
    abort();
  struct lmz_json_opts strict = {.max_depth = 64, .max_len = 0};
  lmz_json *again = NULL;
  lmz_arena_set_limit(a, 0);
  if (lmz_json_parse(a, (const char *)b1.data, b1.len, &strict, &again, &err)) {
    fprintf(stderr, "re-parse failed at %zu: %s\n", err.offset, err.msg);
    abort();
  }
  if (lmz_json_write(&b2, again))
    abort();
  if (b1.len != b2.len || memcmp(b1.data, b2.data, b1.len) != 0) {
    fprintf(stderr, "writer is not a fixed point:\n%.*s\n%.*s\n", (int)b1.len,
            (const char *)b1.data, (int)b2.len, (const char *)b2.data);
    abort();
  }
  lmz_buf_free(&b1);
  lmz_buf_free(&b2);
  lmz_arena_free(a);
}

static void check_number(const uint8_t *data) {
  double d;
  memcpy(&d, data, sizeof d);
  if (!isfinite(d))
    return;
  char out[32];
  size_t n = lmz_json_format_number(d, out);
  if (n >= sizeof out || strlen(out) != n || strtod(out, NULL) != d) {
    fprintf(stderr, "%.17g formatted as %s\n", d, out);
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= sizeof(double))
    check_number(data);
  check_mode(data, size, false);
  check_mode(data, size, true);
  return 0;
}
