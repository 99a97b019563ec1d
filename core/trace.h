/* core/trace.h - trace and call ids (issue 13 item 6).
 *
 * A trace id names one causal tree of calls: it is minted once where a call
 * chain starts (a client's call at the gateway, `lmz call`, an alarm, an
 * HTTP request, a turn with no inherited context) and inherited by every
 * call made from a turn that carries it, across nodes. A call id names one
 * entry of a chain (one call); a forwarded call keeps its call id on every
 * hop. Both are rendered as lowercase hex, as in W3C Trace Context
 * (https://www.w3.org/TR/trace-context/ section 3.2):
 *
 *   trace id  32 hex chars (128 random bits), never all zeros
 *   call id   16 hex chars (64 bits: a per-process random prefix in the high
 *             32 bits, a per-process counter in the low 32), never zero
 *
 * Input ids (peers, clients, HTTP headers) are hostile: only an exact-length
 * lowercase-hex non-zero string is accepted, so an accepted id is safe to
 * print in logs unescaped; anything else is ignored and a fresh id minted.
 *
 * Threading: every function is thread-safe (libsodium's randombytes). */
#ifndef LMZ_CORE_TRACE_H
#define LMZ_CORE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LMZ_TRACE_ID_LEN 32
#define LMZ_CALL_ID_LEN 16

/* Writes a fresh random trace id and its NUL into out[33]. */
void lmz_trace_id_mint(char out[LMZ_TRACE_ID_LEN + 1]);

/* Writes a fresh call id and its NUL into out[17]. Ids of one process (so
 * of one node, or of every node of an in-process test) never repeat before
 * 2^32 calls; other processes' ids differ by their random prefix (a
 * collision needs equal 32-bit random prefixes). */
void lmz_call_id_mint(char out[LMZ_CALL_ID_LEN + 1]);

/* True when s[0..len) is a valid trace id (32 lowercase hex, not all 0). */
bool lmz_trace_id_valid(const char *s, size_t len);
/* True when s[0..len) is a valid call id (16 lowercase hex, not all 0). */
bool lmz_call_id_valid(const char *s, size_t len);

/* Copies `s` into out[33] when it is a valid trace id (NUL-terminated s,
 * NULL allowed); else mints a fresh one. Returns true when `s` was kept. */
bool lmz_trace_id_adopt(const char *s, char out[LMZ_TRACE_ID_LEN + 1]);

/* Parses a W3C `traceparent` header value (section 3.2):
 *   version "-" trace-id "-" parent-id "-" flags, e.g.
 *   00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
 * strictly: version two lowercase hex digits, not "ff"; version 00 is
 * exactly 55 chars, a later version at least 55 with '-' after the flags;
 * trace-id and parent-id valid as above; flags two hex digits. On success
 * copies the trace id into out[33] and returns 0; else LMZ_EINVAL and out
 * is untouched. */
int lmz_traceparent_parse(const char *s, size_t len,
                          char out[LMZ_TRACE_ID_LEN + 1]);

#endif
