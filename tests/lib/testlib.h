/* tests/lib/testlib.h - shared fixtures for lmz tests (cmocka based). */
#ifndef LMZ_TESTLIB_H
#define LMZ_TESTLIB_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the three above first */
#include <cmocka.h>

/* Creates a fresh temporary directory (under $TMPDIR or /tmp) and returns its
 * malloc'd path; tl_rmtree() removes it recursively. */
char *tl_mkdtemp(const char *prefix);
void tl_rmtree(const char *path);
/* Monotonic milliseconds. */
uint64_t tl_now_ms(void);
/* $LMZ_TEST_TIME_SCALE (1 if unset or invalid; 3 in sanitizer builds,
 * cmake/sanitizers.cmake): multiply wall-clock hang guards by it, never
 * checks of speed. */
unsigned tl_time_scale(void);
/* Reads a whole file; malloc'd, NUL-terminated; NULL on error. */
char *tl_read_file(const char *path, size_t *len);
/* Path of a build binary: $LMZ_BIN_DIR/name (static buffer per call site is
 * not kept: returns malloc'd). */
char *tl_bin_path(const char *name);

#endif
