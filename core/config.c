/* core/config.c - loading JSONC configuration files.
 *
 * Happy path: open the file, read it whole into the arena (at most
 * LMZ_CONFIG_MAX_BYTES), parse it as JSONC, check that the root is an
 * object. The text and the name stay in the arena, so later validation of
 * the DOM can still report "FILE:LINE:COL" through lmz_config_errorf.
 *
 * Failure modes (each one returns a code and fills errmsg with one line):
 *   1. the file does not exist: LMZ_ENOTFOUND, "FILE: no such file or
 *      directory".
 *   2. it cannot be opened or read (permissions, a directory, I/O error):
 *      LMZ_EIO, "FILE: <reason>".
 *   3. it is larger than LMZ_CONFIG_MAX_BYTES (checked while reading, so a
 *      file growing under us is caught too): LMZ_ETOOBIG.
 *   4. a JSONC syntax error: LMZ_ESYNTAX (or LMZ_ETOODEEP),
 *      "FILE:LINE:COL: message" with the parser's exact position.
 *   5. the root is not an object: LMZ_EBADCONFIG at the root's position.
 *   6. the arena is exhausted: LMZ_ENOMEM. */
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *json_type_name(const lmz_json *j) {
  static const char *const names[] = {"null",   "false", "true",  "number",
                                      "string", "array", "object"};
  return j->type < LMZ_ARRAY_SIZE(names) ? names[j->type] : "unknown";
}

/* Positions are counted in the text held by cfg; a node of another text
 * would give a nonsense position, so callers pass nodes of cfg->root. */
void lmz_config_errorf(char *errmsg, const lmz_config *cfg,
                       const lmz_json *node, const char *fmt, ...) {
  const char *name = cfg && cfg->name ? cfg->name : "config";
  int n;
  if (cfg && cfg->text && node) {
    int line, col;
    lmz_json_line_col(cfg->text, cfg->len, node->offset, &line, &col);
    n = snprintf(errmsg, LMZ_ERRMSG_LEN, "%s:%d:%d: ", name, line, col);
  } else {
    n = snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: ", name);
  }
  if (n < 0 || n >= LMZ_ERRMSG_LEN - 1)
    return; /* the name alone filled the buffer: truncated */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(errmsg + n, LMZ_ERRMSG_LEN - (size_t)n, fmt, ap);
  va_end(ap);
}

/* Parses text already in the arena (not copied again). */
static int parse_in_arena(lmz_arena *a, const char *name, const char *text,
                          size_t len, lmz_config *cfg, char *errmsg) {
  char *nm = lmz_arena_strndup(a, name, strlen(name));
  if (!nm) {
    snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: out of memory", name);
    return LMZ_ENOMEM;
  }
  cfg->name = nm;
  cfg->text = text;
  cfg->len = len;
  struct lmz_json_opts opts = {.jsonc = true, .max_len = LMZ_CONFIG_MAX_BYTES};
  struct lmz_codec_error err;
  lmz_json *root = NULL;
  int rv = lmz_json_parse(a, text, len, &opts, &root, &err);
  if (rv) {
    int line, col;
    lmz_json_line_col(text, len, err.offset, &line, &col);
    snprintf(errmsg, LMZ_ERRMSG_LEN, "%s:%d:%d: %s", nm, line, col, err.msg);
    return rv;
  }
  if (root->type != LMZ_JSON_OBJECT) {
    lmz_config_errorf(errmsg, cfg, root,
                      "the configuration must be a JSON object, found %s",
                      json_type_name(root));
    return LMZ_EBADCONFIG;
  }
  cfg->root = root;
  return 0;
}

int lmz_config_parse(lmz_arena *a, const char *name, const char *text,
                     size_t len, lmz_config *cfg, char *errmsg) {
  memset(cfg, 0, sizeof *cfg);
  if (!name)
    name = "config";
  if (len > LMZ_CONFIG_MAX_BYTES) {
    snprintf(errmsg, LMZ_ERRMSG_LEN,
             "%s: %zu bytes exceed the limit of %u bytes", name, len,
             LMZ_CONFIG_MAX_BYTES);
    return LMZ_ETOOBIG;
  }
  char *tx = lmz_arena_strndup(a, text, len);
  if (!tx) {
    snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: out of memory", name);
    return LMZ_ENOMEM;
  }
  return parse_in_arena(a, name, tx, len, cfg, errmsg);
}

/* errno of a failed open/read as an lmz code plus "PATH: reason". */
static int io_error(const char *path, int e, char *errmsg) {
  snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: %s", path, uv_strerror(-e));
  return e == ENOENT || e == ENOTDIR ? LMZ_ENOTFOUND : LMZ_EIO;
}

/* Reads all of fd (at most LMZ_CONFIG_MAX_BYTES) into an arena buffer. */
static int read_all(lmz_arena *a, int fd, const char *path, char **out,
                    size_t *outlen, char *errmsg) {
  struct stat st;
  if (fstat(fd, &st) != 0)
    return io_error(path, errno, errmsg);
  if (S_ISDIR(st.st_mode))
    return io_error(path, EISDIR, errmsg);
  /* one byte more than allowed, to notice a file over the limit */
  size_t cap = LMZ_CONFIG_MAX_BYTES + 1, len = 0;
  if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < cap)
    cap = (size_t)st.st_size + 1;
  char *buf = lmz_arena_alloc(a, cap);
  if (!buf) {
    snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: out of memory", path);
    return LMZ_ENOMEM;
  }
  for (;;) {
    if (len == cap) { /* the file grew since fstat, or is not regular */
      if (cap > LMZ_CONFIG_MAX_BYTES)
        break;
      size_t ncap = cap * 2 > LMZ_CONFIG_MAX_BYTES + 1
                        ? LMZ_CONFIG_MAX_BYTES + 1
                        : cap * 2;
      char *nb = lmz_arena_alloc(a, ncap);
      if (!nb) {
        snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: out of memory", path);
        return LMZ_ENOMEM;
      }
      memcpy(nb, buf, len);
      buf = nb;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return io_error(path, errno, errmsg);
    if (n == 0)
      break;
    len += (size_t)n;
  }
  if (len > LMZ_CONFIG_MAX_BYTES) {
    snprintf(errmsg, LMZ_ERRMSG_LEN, "%s: file exceeds the limit of %u bytes",
             path, LMZ_CONFIG_MAX_BYTES);
    return LMZ_ETOOBIG;
  }
  buf[len] = 0; /* len < cap here: keep the text NUL-terminated */
  *out = buf;
  *outlen = len;
  return 0;
}

int lmz_config_load(lmz_arena *a, const char *path, lmz_config *cfg,
                    char *errmsg) {
  memset(cfg, 0, sizeof *cfg);
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return io_error(path, errno, errmsg);
  char *text = NULL;
  size_t len = 0;
  int rv = read_all(a, fd, path, &text, &len, errmsg);
  close(fd);
  if (rv)
    return rv;
  return parse_in_arena(a, path, text, len, cfg, errmsg);
}
