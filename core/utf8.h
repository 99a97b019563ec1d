/* core/utf8.h - UTF-8 and WTF-8, once for all of core.
 *
 * lmz strings are WTF-8: UTF-8 plus the 3-byte forms (ED A0..BF xx) of lone
 * UTF-16 surrogates, so JavaScript strings with lone surrogates round-trip
 * (include/lmz/value.h). A high surrogate stored directly before a low one
 * is ill-formed WTF-8: JavaScript reads that pair as one code point.
 *
 * Ill-formed bytes are replaced the way the WHATWG UTF-8 decoder
 * (TextDecoder) does it: one U+FFFD per maximal subpart, so that lmz and a
 * browser count the same replacement characters.
 *
 * Threading: pure functions, no state. */
#ifndef LMZ_CORE_UTF8_H
#define LMZ_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The sequence at s (avail >= 1 bytes): its length (1..4) with its code
 * point in *cp (surrogates included), or 0 when ill-formed; *bad is then
 * the maximal ill-formed subpart (>= 1 bytes), the unit one U+FFFD
 * replaces. The byte ranges are those of the WHATWG decoder, except that
 * ED A0..BF (surrogates) are accepted. */
size_t lmz__utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp,
                     size_t *bad);

/* Writes cp (< 0x110000; a surrogate gives its WTF-8 form) into out, which
 * has room for 4 bytes; returns the length. */
size_t lmz__utf8_put(unsigned char *out, uint32_t cp);

/* True when s is well-formed WTF-8 (see above). */
bool lmz__wtf8_is_wellformed(const char *s, size_t n);

static inline bool lmz__utf16_is_high(uint32_t cp) {
  return cp >= 0xD800 && cp <= 0xDBFF;
}
static inline bool lmz__utf16_is_low(uint32_t cp) {
  return cp >= 0xDC00 && cp <= 0xDFFF;
}
/* The code point of a high/low surrogate pair. */
static inline uint32_t lmz__utf16_join(uint32_t hi, uint32_t lo) {
  return 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
}

#endif
