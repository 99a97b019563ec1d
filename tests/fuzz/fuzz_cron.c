/* libFuzzer target for core/cron: lmz_cron_parse() on arbitrary bytes (as a
 * NUL-terminated copy, so embedded NULs cut the string as they would for a
 * caller), then lmz_cron_next() from a few fixed and input-derived times.
 * Checked: a failed parse leaves a non-empty message and returns LMZ_EINVAL;
 * a result is -1 or a whole minute strictly after t and within the horizon;
 * the result matches (next(result - 1) == result) and chaining advances. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The module libraries are built without coverage instrumentation, which
 * would leave libFuzzer blind inside the parser; compiling the source into
 * this target instruments it (its symbols then win over lmz_core's copy). */
#include "core/cron.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
  do {                                                                         \
    if (!(x))                                                                  \
      __builtin_trap();                                                        \
  } while (0)

static void check_next(const lmz_cron *c, int64_t t) {
  const int64_t max_gap = (int64_t)(LMZ_CRON_HORIZON_DAYS + 1) * 86400000;
  int64_t n = lmz_cron_next(c, t);
  if (n == -1)
    return;
  CHECK(n > t);
  CHECK(n % 60000 == 0);
  CHECK(n - t <= max_gap);
  /* n itself matches: the first match after n - 1 ms is n. */
  CHECK(lmz_cron_next(c, n - 1) == n);
  int64_t n2 = lmz_cron_next(c, n);
  CHECK(n2 == -1 || n2 > n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  lmz_cron c;
  char err[LMZ_ERRMSG_LEN];
  err[0] = '\0';
  int rc = lmz_cron_parse(s, &c, err);
  free(s);
  if (rc != 0) {
    CHECK(rc == LMZ_EINVAL);
    CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
    return 0;
  }
  /* A time derived from the input, so the fuzzer can steer it too. */
  uint64_t h = 1469598103934665603u;
  for (size_t i = 0; i < size; i++)
    h = (h ^ data[i]) * 1099511628211u;
  static const int64_t fixed[] = {
      0, -1, 1795367250000, 951782399999, 4107456000000, -62135596800000};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
    check_next(&c, fixed[i]);
  check_next(&c, (int64_t)(h % 8000000000000u) - 1000000000000);
  check_next(&c, INT64_MIN);
  CHECK(lmz_cron_next(&c, INT64_MAX) == -1);
  return 0;
}
