/* tests/unit/core/test_secretfile.c - lmz_secretfile_read: the one reader of
 * secret files (cluster key, dev JWT keys). Real files in a temp dir. */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/secretfile.h"

#define CAP 16

static void write_file(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
  assert_int_equal(chmod(path, mode), 0);
}

/* True when every byte of buf is zero (the buffer was wiped). */
static int all_zero(const char *buf, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (buf[i])
      return 0;
  return 1;
}

static void reads_a_private_file(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-secretfile");
  char path[512], buf[CAP + 1], err[LMZ_ERRMSG_LEN];
  size_t len = 99;
  snprintf(path, sizeof path, "%s/s", dir);
  write_file(path, "0123456789abcdef", 0600); /* exactly CAP bytes */
  assert_int_equal(lmz_secretfile_read(path, "key file", "the key", buf, CAP,
                                       &len, err), 0);
  assert_int_equal(len, CAP);
  assert_memory_equal(buf, "0123456789abcdef", CAP);
  tl_rmtree(dir);
  free(dir);
}

static void refuses_and_wipes(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-secretfile");
  char path[512], buf[CAP + 1], err[LMZ_ERRMSG_LEN];
  size_t len;
  snprintf(path, sizeof path, "%s/s", dir);

  assert_int_equal(lmz_secretfile_read(path, "key file", "the key", buf, CAP,
                                       &len, err), LMZ_ENOTFOUND);
  assert_non_null(strstr(err, "key file"));
  assert_non_null(strstr(err, "does not exist"));

  write_file(path, "secret", 0640);
  memset(buf, 'x', sizeof buf);
  assert_int_equal(lmz_secretfile_read(path, "key file", "the key", buf, CAP,
                                       &len, err), LMZ_EACCESS);
  assert_non_null(strstr(err, "permissions 0640"));
  assert_non_null(strstr(err, "could read the key"));
  assert_non_null(strstr(err, "chmod 600"));
  assert_true(all_zero(buf, sizeof buf));

  write_file(path, "0123456789abcdefX", 0600); /* CAP + 1 bytes */
  memset(buf, 'x', sizeof buf);
  assert_int_equal(lmz_secretfile_read(path, NULL, "the key", buf, CAP, &len,
                                       err), LMZ_EBADCONFIG);
  assert_non_null(strstr(err, "larger than 16 bytes"));
  assert_int_equal(strncmp(err, path, strlen(path)), 0); /* no "what" */
  assert_true(all_zero(buf, sizeof buf));
  assert_int_equal(len, 0);

  assert_int_equal(lmz_secretfile_read(dir, "key file", "the key", buf, CAP,
                                       &len, NULL), LMZ_EACCESS); /* NULL ok */
  assert_int_equal(lmz_secretfile_read(dir, "key file", "the key", buf, CAP,
                                       &len, err), LMZ_EACCESS);
  assert_non_null(strstr(err, "not a regular file"));
  tl_rmtree(dir);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(reads_a_private_file),
      cmocka_unit_test(refuses_and_wipes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
