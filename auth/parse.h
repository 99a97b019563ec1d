/* auth/parse.h - the auth service's small text parsers, pure (no I/O, no
 * allocation): cookies (RFC 6265 §5.4 "Cookie" header), query strings and
 * application/x-www-form-urlencoded bodies (WHATWG URL, percent-decoding and
 * '+' as space), email addresses (the original's normalisation and check),
 * and the 32-byte random tokens' text form.
 *
 * Every function takes a length (input need not be NUL-terminated), never
 * reads past it, bounds its output, and answers hostile input with a code,
 * never an assert. Fuzzed by tests/fuzz/fuzz_auth_parse.c.
 * Threads: any; no state. */
#ifndef LMZ_AUTH_PARSE_H
#define LMZ_AUTH_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMZ_AUTH_TOKEN_BYTES 32u
#define LMZ_AUTH_TOKEN_CHARS 43u /* base64url without padding */

/* The value of the first cookie `name` in a Cookie header ("a=1; b=2"):
 * pairs split on ';', blanks around names and values trimmed, a value in
 * double quotes unquoted. Sets *val and *vlen into `hdr`; false when absent.
 * (Browsers send the cookie with the longest matching Path first, RFC 6265
 * §5.4 step 2, so the first one is the one set for the auth prefix.) */
bool lmz_auth_cookie_get(const char *hdr, size_t len, const char *name,
                         const char **val, size_t *vlen);

/* The percent-decoded value of the first `name` parameter of a query
 * string or urlencoded form ("a=1&b=x%20y"; '+' is a space). Writes at
 * most cap-1 bytes and a NUL into out. Returns the decoded length (>= 0),
 * LMZ_ENOTFOUND (absent), LMZ_EINVAL (a bad %XX escape or a NUL byte in the
 * value), LMZ_ETOOBIG (longer than cap-1). A name without '=' has the
 * empty value. */
int lmz_auth_param_get(const char *q, size_t len, const char *name, char *out,
                       size_t cap);

/* Normalises an email address as the original does (trim ASCII blanks,
 * lowercase ASCII) and checks it against ^[^\s@]+@[^\s@]+\.[^\s@]+$ plus
 * lmz_mail_check_addr's header-safety rules. out gets the normalised
 * address (cap >= LMZ_MAIL_ADDR_MAX + 1). 0 or LMZ_EINVAL. */
int lmz_auth_email_normalize(const char *in, size_t len, char *out, size_t cap);

/* Token text: exactly LMZ_AUTH_TOKEN_CHARS base64url characters (no
 * padding, canonical trailing bits) -> 32 bytes. 0 or LMZ_EINVAL. */
int lmz_auth_token_decode(const char *s, size_t len,
                          uint8_t out[LMZ_AUTH_TOKEN_BYTES]);
/* 32 bytes -> 43 characters + NUL into out (44 bytes). */
void lmz_auth_token_encode(const uint8_t in[LMZ_AUTH_TOKEN_BYTES],
                           char out[LMZ_AUTH_TOKEN_CHARS + 1]);

#endif
