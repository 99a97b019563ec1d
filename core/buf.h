/* core/buf.h - growable byte buffer, the output of every encoder.
 *
 * Ownership: the buffer owns `data` (malloc'd). lmz_buf_free() releases it;
 * lmz_buf_detach() hands it to the caller (free with free()).
 * Functions returning int give 0 or LMZ_ENOMEM / LMZ_ETOOBIG (the buffer
 * never grows past `max`, 0 = unlimited). After an error the buffer is
 * still valid and holds what was appended before. */
#ifndef LMZ_CORE_BUF_H
#define LMZ_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct lmz_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
  size_t max; /* 0 = unlimited */
} lmz_buf;

#define LMZ_BUF_INIT {NULL, 0, 0, 0}

void lmz_buf_init(lmz_buf *b);
void lmz_buf_free(lmz_buf *b);
void lmz_buf_reset(lmz_buf *b); /* len = 0, keeps capacity */
uint8_t *lmz_buf_detach(lmz_buf *b, size_t *len);
/* Makes room for `extra` more bytes. */
int lmz_buf_reserve(lmz_buf *b, size_t extra);
int lmz_buf_append(lmz_buf *b, const void *p, size_t n);
int lmz_buf_append_str(lmz_buf *b, const char *s);
int lmz_buf_printf(lmz_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline int lmz_buf_putc(lmz_buf *b, uint8_t c) {
  if (b->len < b->cap) {
    b->data[b->len++] = c;
    return 0;
  }
  return lmz_buf_append(b, &c, 1);
}

#endif
