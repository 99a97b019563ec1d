/* tests/lib/tl_loop.h - running a test's libuv loop until something
 * happened, with a hang guard (20 s times tl_time_scale(): never a check of
 * speed). Include after lib/testlib.h. */
#ifndef LMZ_TL_LOOP_H
#define LMZ_TL_LOOP_H

#include <stdbool.h>
#include <uv.h>

#include "lib/testlib.h"

/* Until *n reaches want; asserts it did. */
static inline void tl_run_until_count(uv_loop_t *loop, const int *n, int want) {
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (*n < want && tl_now_ms() < end)
    uv_run(loop, UV_RUN_ONCE);
  assert_int_equal(*n, want);
}

/* Until *flag is set; asserts it was. */
static inline void tl_run_until_true(uv_loop_t *loop, const bool *flag) {
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (!*flag && tl_now_ms() < end)
    uv_run(loop, UV_RUN_ONCE);
  assert_true(*flag);
}

#endif
