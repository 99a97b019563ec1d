/* core/pct.c - percent-decoding (see pct.h). */
#include "core/pct.h"

static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int lmz_pct_byte(const char *s, size_t avail) {
  if (avail < 3)
    return -1;
  int hi = hexval(s[1]), lo = hexval(s[2]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}
