/* tests/lib/tl_store.h - a store on the heap for the tests that open and
 * close stores by pointer: tl_store_open() allocates and initializes one
 * (frees it again when init fails), tl_store_close() closes it and frees the
 * memory in the close callback (run the loop once more, as with any
 * lmz_store_close). Header-only, so tests that do not link storage are not
 * affected by including testlib. */
#ifndef LMZ_TESTS_TL_STORE_H
#define LMZ_TESTS_TL_STORE_H

#include <stdlib.h>

#include "storage/store.h"

static inline int tl_store_open(lmz_store_t **out, uv_loop_t *loop,
                                const struct lmz_store_opts *o, char *err) {
  lmz_store_t *s = malloc(sizeof *s);
  int rv = s ? lmz_store_init(s, loop, o, err) : LMZ_ENOMEM;
  if (rv) {
    free(s); /* nothing of it is on the loop */
    s = NULL;
  }
  *out = s;
  return rv;
}

static inline void tl_store_free_cb(lmz_store_t *s) { free(s); }

/* NULL is ignored. */
static inline void tl_store_close(lmz_store_t *s) {
  if (s)
    lmz_store_close(s, tl_store_free_cb);
}

#endif
