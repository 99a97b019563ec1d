/* core/secretfile.c - see secretfile.h.
 *
 * Happy path: open, fstat (type, mode, size on the opened file), read at
 * most cap + 1 bytes, close.
 * Failure modes: each check returns its error with one message naming the
 * file; the buffer is wiped on every error, so a caller that bails out
 * leaves no partial secret behind. */
#include "core/secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/file.h"

/* Type, mode and size of the opened file. */
static int check_stat(int fd, const char *what, const char *path,
                      const char *secret, size_t cap, char *errmsg) {
  const char *sp = what[0] ? " " : "";
  struct stat st;
  if (fstat(fd, &st) != 0) {
    lmz__errmsg_printf(errmsg, "%s%s%s: %s", what, sp, path, strerror(errno));
    return LMZ_EIO;
  }
  if (!S_ISREG(st.st_mode)) {
    lmz__errmsg_printf(errmsg, "%s%s%s is not a regular file", what, sp, path);
    return LMZ_EACCESS;
  }
  if (st.st_mode & 077) {
    lmz__errmsg_printf(errmsg,
                       "%s%s%s has permissions %04o, too open: other users "
                       "could read %s; run `chmod 600 %s`",
                       what, sp, path, (unsigned)(st.st_mode & 07777), secret,
                       path);
    return LMZ_EACCESS;
  }
  if ((unsigned long long)st.st_size > cap) {
    lmz__errmsg_printf(errmsg, "%s%s%s is larger than %zu bytes", what, sp,
                       path, cap);
    return LMZ_EBADCONFIG;
  }
  return 0;
}

int lmz_secretfile_read(const char *path, const char *what, const char *secret,
                        char *buf, size_t cap, size_t *len, char *errmsg) {
  char scratch[LMZ_ERRMSG_LEN];
  if (!errmsg)
    errmsg = scratch;
  if (!what)
    what = "";
  const char *sp = what[0] ? " " : "";
  *len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) {
      lmz__errmsg_printf(errmsg, "%s%s%s does not exist", what, sp, path);
      return LMZ_ENOTFOUND;
    }
    lmz__errmsg_printf(errmsg, "cannot open %s%s%s: %s", what, sp, path,
                       strerror(e));
    return e == EACCES ? LMZ_EACCESS : LMZ_EIO;
  }
  int rv = check_stat(fd, what, path, secret, cap, errmsg);
  int e = rv ? 0 : lmz_read_upto(fd, buf, cap + 1, len);
  close(fd);
  if (e) {
    lmz__errmsg_printf(errmsg, "cannot read %s%s%s: %s", what, sp, path,
                       strerror(-e));
    rv = LMZ_EIO;
  } else if (!rv && *len > cap) { /* grew after the fstat */
    lmz__errmsg_printf(errmsg, "%s%s%s is larger than %zu bytes", what, sp,
                       path, cap);
    rv = LMZ_EBADCONFIG;
  }
  if (rv) {
    sodium_memzero(buf, cap + 1);
    *len = 0;
  }
  return rv;
}
