/* cluster/keyfile.c - load/save the cluster key file.
 *
 * Happy path: read the file with lmz_secretfile_read (core/secretfile.h:
 * mode, type and size checked on the opened file; at most 4 KiB), trim,
 * decode hex or base64 into exactly 32 bytes, wipe the text copy.
 *
 * Failure modes:
 *  1. missing file: LMZ_ENOTFOUND, "... does not exist; create one with
 *     `lmz keygen`";
 *  2. group/other permission bits set, or not a regular file: LMZ_EACCESS
 *     with the chmod to run;
 *  3. wrong length / characters: LMZ_EBADCONFIG (key text never echoed);
 *  4. save: an existing file is kept (LMZ_EEXIST) unless overwrite is set;
 *     a crash mid-save leaves the old file or a stray temp file, never a
 *     half-written key (temp + fsync + link/rename). */
#include "cluster/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/file.h"
#include "core/secretfile.h"

#define KEYFILE_MAX 4096

void lmz_keyfile_generate(uint8_t key[LMZ_KEYFILE_KEY_LEN]) {
  randombytes_buf(key, LMZ_KEYFILE_KEY_LEN);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int lmz_keyfile_parse(const char *text, size_t len,
                      uint8_t key[LMZ_KEYFILE_KEY_LEN], char *errmsg) {
  while (len > 0 && is_space(text[0]))
    text++, len--;
  while (len > 0 && is_space(text[len - 1]))
    len--;
  size_t got = 0;
  const char *end = NULL;
  int rv = -1;
  if (len == 2 * LMZ_KEYFILE_KEY_LEN)
    rv = sodium_hex2bin(key, LMZ_KEYFILE_KEY_LEN, text, len, NULL, &got, &end);
  else if (len == 44)
    rv = sodium_base642bin(key, LMZ_KEYFILE_KEY_LEN, text, len, NULL, &got,
                           &end, sodium_base64_VARIANT_ORIGINAL);
  else if (len == 43)
    rv = sodium_base642bin(key, LMZ_KEYFILE_KEY_LEN, text, len, NULL, &got,
                           &end, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
  else {
    lmz__errmsg_printf(
        errmsg,
        "the key must be 32 bytes written as 64 hex digits or base64 "
        "(found %zu characters)",
        len);
    return LMZ_EBADCONFIG;
  }
  if (rv != 0 || got != LMZ_KEYFILE_KEY_LEN || end != text + len) {
    sodium_memzero(key, LMZ_KEYFILE_KEY_LEN);
    lmz__errmsg_printf(errmsg, "the key is not valid %s",
                       len == 64 ? "hex" : "base64");
    return LMZ_EBADCONFIG;
  }
  return 0;
}

int lmz_keyfile_load(const char *path, uint8_t key[LMZ_KEYFILE_KEY_LEN],
                     char *errmsg) {
  char text[KEYFILE_MAX + 1], why[LMZ_ERRMSG_LEN];
  size_t n = 0;
  int rv = lmz_secretfile_read(path, "key file", "the cluster key", text,
                               KEYFILE_MAX, &n, why);
  if (rv == LMZ_ENOTFOUND)
    lmz__errmsg_printf(errmsg, "key file %s does not exist; create one with `lmz keygen`",
        path);
  else if (rv)
    lmz__errmsg_printf(errmsg, "%s", why);
  if (rv == 0) {
    rv = lmz_keyfile_parse(text, n, key, why);
    if (rv)
      lmz__errmsg_printf(errmsg, "key file %s: %s", path, why);
  }
  sodium_memzero(text, sizeof text);
  return rv;
}

/* Moves the finished temp file into place: link() refuses an existing name
 * atomically, rename() replaces it. */
static int publish(const char *tmp, const char *path, int overwrite,
                   char *errmsg) {
  int r = overwrite ? rename(tmp, path) : link(tmp, path);
  int e = errno;
  unlink(tmp); /* after link: drop the temp name; after rename: no-op */
  if (r == 0)
    return 0;
  if (e == EEXIST) {
    lmz__errmsg_printf(errmsg, "key file %s already exists; not replacing it",
                       path);
    return LMZ_EEXIST;
  }
  lmz__errmsg_printf(errmsg, "cannot write key file %s: %s", path, strerror(e));
  return LMZ_EIO;
}

int lmz_keyfile_save(const char *path, const uint8_t key[LMZ_KEYFILE_KEY_LEN],
                     int overwrite, char *errmsg) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp) {
    lmz__errmsg_printf(errmsg, "key file path too long");
    return LMZ_EIO;
  }
  int fd = mkstemp(tmp); /* mode 0600 */
  if (fd < 0) {
    lmz__errmsg_printf(errmsg, "cannot create key file next to %s: %s", path,
                       strerror(errno));
    return LMZ_EIO;
  }
  char text[2 * LMZ_KEYFILE_KEY_LEN + 2];
  sodium_bin2hex(text, sizeof text, key, LMZ_KEYFILE_KEY_LEN);
  text[2 * LMZ_KEYFILE_KEY_LEN] = '\n';
  int bad = fchmod(fd, 0600) != 0 || lmz_write_all(fd, text, sizeof text - 1) ||
            fsync(fd) != 0;
  int e = errno;
  sodium_memzero(text, sizeof text);
  if (close(fd) != 0)
    bad = 1;
  if (bad) {
    unlink(tmp);
    lmz__errmsg_printf(errmsg, "cannot write key file %s: %s", path,
                       strerror(e));
    return LMZ_EIO;
  }
  return publish(tmp, path, overwrite, errmsg);
}
