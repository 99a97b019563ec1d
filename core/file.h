/* core/file.h - small file helpers shared by the modules that write files
 * (key files, dev keys, the CLI's output). */
#ifndef LMZ_CORE_FILE_H
#define LMZ_CORE_FILE_H

#include <stddef.h>

/* Writes all `len` bytes to `fd`, retrying short writes and EINTR.
 * Returns 0 or a negative errno value (-EIO if write returned 0). */
int lmz_write_all(int fd, const void *data, size_t len);

/* Reads from `fd` until EOF or `cap` bytes, retrying EINTR; *n gets the
 * count (cap bytes read may mean more is left: read cap + 1 to detect "too
 * large"). Returns 0 or a negative errno value. */
int lmz_read_upto(int fd, void *buf, size_t cap, size_t *n);

#endif
