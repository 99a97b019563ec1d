/* core/pct.h - percent-decoding (RFC 3986 section 2.1), once for every
 * parser that reads URLs or form data (gateway static paths, auth query
 * strings).
 *
 * Threading: a pure function, no state. */
#ifndef LMZ_CORE_PCT_H
#define LMZ_CORE_PCT_H

#include <stddef.h>

/* s points at a '%' with `avail` bytes from s on (the '%' included): the
 * byte that "%XX" encodes (0..255), or -1 unless exactly two hex digits
 * (either case) follow within avail. Callers decide which decoded bytes
 * they refuse (NUL, '/', ...). */
int lmz_pct_byte(const char *s, size_t avail);

#endif
