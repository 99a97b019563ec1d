/* core/trace.c - trace and call ids (see core/trace.h).
 *
 * Randomness comes from libsodium's randombytes_buf (the kernel's CSPRNG);
 * trace ids need not be secret, only unpredictable enough never to collide
 * between origins. The call id prefix is drawn once per process. */
#include "core/trace.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "core/err.h"

static const char hexd[] = "0123456789abcdef";

static void hex_encode(const uint8_t *b, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = hexd[b[i] >> 4];
    out[2 * i + 1] = hexd[b[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Exactly `want` lowercase hex chars, not all '0' (W3C: all-zero ids are
 * invalid). Upper case is refused as the spec refuses it. */
static bool hex_id_valid(const char *s, size_t len, size_t want) {
  if (!s || len != want)
    return false;
  bool nonzero = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return false;
    nonzero |= c != '0';
  }
  return nonzero;
}

void lmz_trace_id_mint(char out[LMZ_TRACE_ID_LEN + 1]) {
  uint8_t b[LMZ_TRACE_ID_LEN / 2];
  do
    randombytes_buf(b, sizeof b);
  while (sodium_is_zero(b, sizeof b)); /* all-zero is invalid (W3C) */
  hex_encode(b, sizeof b, out);
}

static uv_once_t prefix_once = UV_ONCE_INIT;
static uint32_t prefix;
static _Atomic uint32_t seq;

static void prefix_draw(void) {
  do
    randombytes_buf(&prefix, sizeof prefix);
  while (prefix == 0); /* so that no id is ever zero */
}

void lmz_call_id_mint(char out[LMZ_CALL_ID_LEN + 1]) {
  uv_once(&prefix_once, prefix_draw);
  uint32_t low = atomic_fetch_add_explicit(&seq, 1, memory_order_relaxed) + 1;
  uint64_t id = ((uint64_t)prefix << 32) | low;
  snprintf(out, LMZ_CALL_ID_LEN + 1, "%016llx", (unsigned long long)id);
}

bool lmz_trace_id_valid(const char *s, size_t len) {
  return hex_id_valid(s, len, LMZ_TRACE_ID_LEN);
}

bool lmz_call_id_valid(const char *s, size_t len) {
  return hex_id_valid(s, len, LMZ_CALL_ID_LEN);
}

bool lmz_trace_id_adopt(const char *s, char out[LMZ_TRACE_ID_LEN + 1]) {
  /* strnlen: never read past what a valid id could be */
  if (s && lmz_trace_id_valid(s, strnlen(s, LMZ_TRACE_ID_LEN + 1))) {
    memcpy(out, s, LMZ_TRACE_ID_LEN + 1);
    return true;
  }
  lmz_trace_id_mint(out);
  return false;
}

static bool is_hex2(const char *s) {
  return hex_id_valid(s, 2, 2) || (s[0] == '0' && s[1] == '0');
}

int lmz_traceparent_parse(const char *s, size_t len,
                          char out[LMZ_TRACE_ID_LEN + 1]) {
  /* 00-<32 hex>-<16 hex>-<2 hex>: dashes at 2, 35, 52; 55 chars */
  if (!s || len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
    return LMZ_EINVAL;
  if (!is_hex2(s) || (s[0] == 'f' && s[1] == 'f'))
    return LMZ_EINVAL;
  bool v00 = s[0] == '0' && s[1] == '0';
  if ((v00 && len != 55) || (!v00 && len > 55 && s[55] != '-'))
    return LMZ_EINVAL;
  if (!lmz_trace_id_valid(s + 3, LMZ_TRACE_ID_LEN) ||
      !lmz_call_id_valid(s + 36, LMZ_CALL_ID_LEN) || !is_hex2(s + 53))
    return LMZ_EINVAL;
  memcpy(out, s + 3, LMZ_TRACE_ID_LEN);
  out[LMZ_TRACE_ID_LEN] = '\0';
  return 0;
}
