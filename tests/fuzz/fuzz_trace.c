/* libFuzzer target for core/trace: lmz_traceparent_parse() on arbitrary
 * bytes (an exact-size copy, so ASan sees any read past the value; the
 * gateway hands it a header value and its length), checked against an
 * independent oracle of W3C Trace Context section 3.2 as core/trace.h
 * states it: 2 lowercase hex version (not "ff"), '-', 32 lowercase hex
 * trace id not all zeros, '-', 16 lowercase hex parent id not all zeros,
 * '-', 2 lowercase hex flags; version 00 exactly 55 bytes, a later version
 * 55 or more with '-' right after the flags. Also: an accepted trace id is
 * the input's bytes 3..34 and valid; a refusal leaves out untouched;
 * lmz_trace_id_valid / lmz_call_id_valid / lmz_trace_id_adopt agree with
 * the oracle on the input taken as an id. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* compiled in so that the parser is coverage-instrumented (as fuzz_cron) */
#include "core/trace.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

static bool lhex(uint8_t c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

static bool id_ok(const uint8_t *d, size_t n) {
  bool nonzero = false;
  for (size_t i = 0; i < n; i++) {
    if (!lhex(d[i]))
      return false;
    nonzero |= d[i] != '0';
  }
  return nonzero;
}

static bool oracle(const uint8_t *d, size_t n) {
  if (n < 55)
    return false;
  for (size_t i = 0; i < 55; i++)
    if (i == 2 || i == 35 || i == 52 ? d[i] != '-' : !lhex(d[i]))
      return false;
  if (d[0] == 'f' && d[1] == 'f')
    return false;
  if (!id_ok(d + 3, 32) || !id_ok(d + 36, 16))
    return false;
  if (d[0] == '0' && d[1] == '0')
    return n == 55;
  return n == 55 || d[55] == '-';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size ? size : 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  char out[LMZ_TRACE_ID_LEN + 1];
  memset(out, 'Z', sizeof out);
  int rc = lmz_traceparent_parse(s, size, out);
  bool want = oracle(data, size);
  CHECK((rc == 0) == want);
  if (rc == 0) {
    CHECK(memcmp(out, data + 3, 32) == 0 && out[32] == '\0');
    CHECK(lmz_trace_id_valid(out, 32));
  } else {
    CHECK(rc == LMZ_EINVAL);
    for (size_t i = 0; i < sizeof out; i++)
      CHECK(out[i] == 'Z');
  }
  CHECK(lmz_trace_id_valid(s, size) == (size == 32 && id_ok(data, 32)));
  CHECK(lmz_call_id_valid(s, size) == (size == 16 && id_ok(data, 16)));
  free(s);
  /* adopt: a NUL-terminated string (cut at an embedded NUL) */
  char *z = malloc(size + 1);
  if (!z)
    return 0;
  memcpy(z, data, size);
  z[size] = '\0';
  size_t zl = strlen(z);
  char t[LMZ_TRACE_ID_LEN + 1];
  bool kept = lmz_trace_id_adopt(z, t);
  CHECK(kept == (zl == 32 && id_ok((const uint8_t *)z, 32)));
  CHECK(lmz_trace_id_valid(t, strlen(t)));
  if (kept)
    CHECK(strcmp(t, z) == 0);
  free(z);
  return 0;
}
