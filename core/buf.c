/* core/buf.c - growable byte buffer. */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"

void lmz_buf_init(lmz_buf *b) { *b = (lmz_buf)LMZ_BUF_INIT; }

void lmz_buf_free(lmz_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

void lmz_buf_reset(lmz_buf *b) { b->len = 0; }

uint8_t *lmz_buf_detach(lmz_buf *b, size_t *len) {
  uint8_t *p = b->data;
  if (len)
    *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

int lmz_buf_reserve(lmz_buf *b, size_t extra) {
  if (extra <= b->cap - b->len)
    return 0;
  if (extra > SIZE_MAX / 2 - b->len)
    return LMZ_ETOOBIG;
  size_t need = b->len + extra;
  if (b->max && need > b->max)
    return LMZ_ETOOBIG;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  if (b->max && cap > b->max)
    cap = b->max;
  uint8_t *p = realloc(b->data, cap);
  if (!p)
    return LMZ_ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

int lmz_buf_append(lmz_buf *b, const void *p, size_t n) {
  int rv = lmz_buf_reserve(b, n);
  if (rv)
    return rv;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

int lmz_buf_append_str(lmz_buf *b, const char *s) {
  return lmz_buf_append(b, s, strlen(s));
}

int lmz_buf_printf(lmz_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return LMZ_EINVAL;
  int rv = lmz_buf_reserve(b, (size_t)n + 1);
  if (rv)
    return rv;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}
