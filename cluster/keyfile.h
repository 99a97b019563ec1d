/* cluster/keyfile.h - the cluster key file (32 random bytes, as text).
 *
 * Format: one line holding the key as 64 hex digits (what lmz_keyfile_save
 * writes) or as standard base64 (44 characters with padding, 43 without);
 * surrounding whitespace and a trailing newline are ignored, nothing else is.
 * The file must be a regular file not readable or writable by group/others
 * (mode 0600 or stricter): a key readable by other users is refused, as ssh
 * does, so a leaked key is noticed instead of silently used.
 *
 * Every function fills `errmsg` (LMZ_ERRMSG_LEN bytes, may be NULL) with a
 * sentence naming the file and what to do. Threading: any thread; no state.
 * Requirements: sodium_init() has been called (randomness, hex decoding). */
#ifndef LMZ_CLUSTER_KEYFILE_H
#define LMZ_CLUSTER_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#define LMZ_KEYFILE_KEY_LEN 32u

/* Fills key with 32 random bytes. Never fails. */
void lmz_keyfile_generate(uint8_t key[LMZ_KEYFILE_KEY_LEN]);

/* Parses the text form (hex or base64, see above). Returns 0 or
 * LMZ_EBADCONFIG (malformed; `errmsg` says why, never echoing key bytes). */
int lmz_keyfile_parse(const char *text, size_t len,
                      uint8_t key[LMZ_KEYFILE_KEY_LEN], char *errmsg);

/* Reads and parses `path`. Returns 0, LMZ_ENOTFOUND (missing),
 * LMZ_EACCESS (mode allows group/other access, or not a regular file, or
 * unreadable), LMZ_EBADCONFIG (malformed or too large), LMZ_EIO. */
int lmz_keyfile_load(const char *path, uint8_t key[LMZ_KEYFILE_KEY_LEN],
                     char *errmsg);

/* Writes `key` as hex + newline to `path` with mode 0600, atomically (a
 * temporary file in the same directory, fsync, rename). Refuses to replace an
 * existing file unless `overwrite`. Returns 0, LMZ_EEXIST, LMZ_EIO. */
int lmz_keyfile_save(const char *path, const uint8_t key[LMZ_KEYFILE_KEY_LEN],
                     int overwrite, char *errmsg);

#endif
