/* core/err.c - error table, messages and assertion failure. */
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *lmz_strerror(int err) {
  switch (err) {
  case LMZ_OK:
    return "ok";
#define LMZ__ERR_MSG(name, n, msg)                                             \
  case LMZ_E##name:                                                            \
    return msg;
    LMZ_ERR_MAP(LMZ__ERR_MSG)
#undef LMZ__ERR_MSG
  default:
    break;
  }
  if (err < 0 && err > LMZ__ERR_BASE)
    return uv_strerror(err);
  return "unknown error";
}

const char *lmz_err_name(int err) {
  switch (err) {
  case LMZ_OK:
    return "OK";
#define LMZ__ERR_STR(name, n, msg)                                             \
  case LMZ_E##name:                                                            \
    return "LMZ_E" #name;
    LMZ_ERR_MAP(LMZ__ERR_STR)
#undef LMZ__ERR_STR
  default:
    break;
  }
  if (err < 0 && err > LMZ__ERR_BASE)
    return uv_err_name(err);
  return "UNKNOWN";
}

void lmz__errmsg_printf(char *buf, const char *fmt, ...) {
  if (buf == NULL)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, LMZ_ERRMSG_LEN, fmt, ap);
  va_end(ap);
}

/* Appends s at buf[n], cutting it to fit LMZ_ERRMSG_LEN with its NUL;
 * returns the new length. (Not snprintf: cutting is the point here, and gcc
 * warns about snprintf calls that may cut.) */
static size_t append_cut(char *buf, size_t n, const char *s) {
  size_t len = strlen(s), room = LMZ_ERRMSG_LEN - 1 - n;
  if (len > room)
    len = room;
  memcpy(buf + n, s, len);
  buf[n + len] = '\0';
  return n + len;
}

void lmz__errmsg_wrapf(char *buf, const char *fmt, ...) {
  if (buf == NULL)
    return;
  char prefix[LMZ_ERRMSG_LEN];
  char old[LMZ_ERRMSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  memcpy(old, buf, LMZ_ERRMSG_LEN);
  old[LMZ_ERRMSG_LEN - 1] = '\0';
  size_t n = append_cut(buf, 0, prefix);
  if (old[0] != '\0')
    append_cut(buf, append_cut(buf, n, ": "), old);
}

void lmz__assert_fail(const char *expr, const char *file, int line) {
  fprintf(stderr, "lmz: assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}
