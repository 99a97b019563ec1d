/* core/config.h - loading JSON-with-comments configuration files.
 *
 * The loader reads a file (size-capped), parses it as JSONC (comments and
 * trailing commas allowed) and returns the DOM; the caller interprets it.
 * Errors come back as one line "FILE:LINE:COL: problem", ready to print
 * (columns count characters). A leading UTF-8 BOM is accepted.
 * Threads: no shared state; one arena per thread at a time. */
#ifndef LMZ_CORE_CONFIG_H
#define LMZ_CORE_CONFIG_H

#include <stddef.h>

#include "core/err.h"
#include "core/json.h"

#define LMZ_CONFIG_MAX_BYTES (4u << 20)

typedef struct lmz_config {
  const char *name; /* file path (or given name); in the arena */
  const char *text; /* file contents; in the arena, NUL-terminated */
  size_t len;
  lmz_json *root;   /* always an object */
} lmz_config;

/* Loads `path` into `cfg`, everything allocated in `a`. Returns 0,
 * LMZ_ENOTFOUND / LMZ_EIO (cannot read), LMZ_ETOOBIG, LMZ_ESYNTAX,
 * LMZ_EBADCONFIG (root not an object); errmsg (LMZ_ERRMSG_LEN bytes) then says
 * "FILE:LINE:COL: problem" (or "FILE: problem"). */
int lmz_config_load(lmz_arena *a, const char *path, lmz_config *cfg,
                    char *errmsg);
/* Same, from text in memory (copied); `name` is used in messages. */
int lmz_config_parse(lmz_arena *a, const char *name, const char *text,
                     size_t len, lmz_config *cfg, char *errmsg);
/* Formats "NAME:LINE:COL: message" for a node of a loaded config, so callers
 * validating the DOM report positions the same way. node NULL = no position. */
void lmz_config_errorf(char *errmsg, const lmz_config *cfg,
                       const lmz_json *node, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
