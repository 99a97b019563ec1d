/* core/utf8.c - UTF-8 and WTF-8 helpers (see utf8.h). */
#include "core/utf8.h"

#include <string.h>

size_t lmz__utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp,
                     size_t *bad) {
  unsigned c = s[0], lo = 0x80, hi = 0xBF;
  size_t need;
  *bad = 1;
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    lo = c == 0xE0 ? 0xA0 : 0x80; /* no overlong 3-byte forms */
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    lo = c == 0xF0 ? 0x90 : 0x80; /* no overlong 4-byte forms */
    hi = c == 0xF4 ? 0x8F : 0xBF; /* nothing above U+10FFFF */
  } else {
    return 0;
  }
  uint32_t v = c & (0x3Fu >> need);
  for (size_t i = 1; i <= need; i++) {
    if (i >= avail || s[i] < lo || s[i] > hi)
      return 0;
    lo = 0x80;
    hi = 0xBF;
    v = v << 6 | (s[i] & 0x3Fu);
    *bad = i + 1;
  }
  *cp = v;
  return need + 1;
}

size_t lmz__utf8_put(unsigned char *o, uint32_t cp) {
  if (cp < 0x80) {
    o[0] = (unsigned char)cp;
    return 1;
  }
  if (cp < 0x800) {
    o[0] = (unsigned char)(0xC0 | cp >> 6);
    o[1] = (unsigned char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (unsigned char)(0xE0 | cp >> 12);
    o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (unsigned char)(0xF0 | cp >> 18);
  o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (unsigned char)(0x80 | (cp & 0x3F));
  return 4;
}

bool lmz__wtf8_is_wellformed(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) { /* ASCII prefix, 8 bytes at a time */
    uint64_t w;
    memcpy(&w, p + i, 8);
    if (w & 0x8080808080808080ull)
      break;
  }
  bool prev_high = false;
  while (i < n) {
    uint32_t cp;
    size_t bad, len = lmz__utf8_seq(p + i, n - i, &cp, &bad);
    if (len == 0 || (prev_high && lmz__utf16_is_low(cp)))
      return false;
    prev_high = lmz__utf16_is_high(cp);
    i += len;
  }
  return true;
}
