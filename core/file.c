/* core/file.c - see file.h. */
#include "core/file.h"

#include <errno.h>
#include <unistd.h>

int lmz_write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -errno;
    if (w == 0)
      return -EIO;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

int lmz_read_upto(int fd, void *buf, size_t cap, size_t *n) {
  char *p = buf;
  *n = 0;
  while (*n < cap) {
    ssize_t r = read(fd, p + *n, cap - *n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return -errno;
    if (r == 0)
      break;
    *n += (size_t)r;
  }
  return 0;
}
