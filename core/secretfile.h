/* core/secretfile.h - one reader for files that hold secrets (the cluster
 * key file, the dev JWT key file).
 *
 * The checks run on the opened file (fstat after open), so swapping the file
 * between a check and the read is harmless. */
#ifndef LMZ_CORE_SECRETFILE_H
#define LMZ_CORE_SECRETFILE_H

#include <stddef.h>

/* Reads the whole of `path` into `buf`, which must hold `cap + 1` bytes (the
 * extra byte detects a file that grew past `cap` after the fstat). The file
 * must be a regular file with no group/other permission bits and at most
 * `cap` bytes. `what` names the file in messages ("key file"; NULL or ""
 * = just the path); `secret` says what other users could read when the
 * mode is too open ("the cluster key"). Thread-safe; blocking I/O.
 *
 * Returns 0 with *len set (the bytes are in buf; wipe buf with
 * sodium_memzero when done), or, with buf wiped and a message in `errmsg`
 * (LMZ_ERRMSG_LEN bytes, may be NULL):
 *   LMZ_ENOTFOUND  no such file ("<what> <path> does not exist"; callers
 *                  usually replace it with how to create one);
 *   LMZ_EACCESS    cannot open (EACCES), not a regular file, or permissions
 *                  too open (the message names the chmod to run);
 *   LMZ_EBADCONFIG larger than `cap` bytes;
 *   LMZ_EIO        open/fstat/read failed otherwise. */
int lmz_secretfile_read(const char *path, const char *what, const char *secret,
                        char *buf, size_t cap, size_t *len, char *errmsg);

#endif
