/* auth/parse.c - cookie, query/form, email and token text parsing
 * (auth/parse.h). Pure functions over (pointer, length); each loop is
 * bounded by its input length, each output by its capacity. */
#include <sodium.h>
#include <string.h>

#include "auth/mail.h"
#include "auth/parse.h"
#include "core/err.h"
#include "core/pct.h"

static bool blank(char c) { return c == ' ' || c == '\t'; }

bool lmz_auth_cookie_get(const char *hdr, size_t len, const char *name,
                         const char **val, size_t *vlen) {
  size_t nl = strlen(name), i = 0;
  while (i < len) {
    size_t end = i;
    while (end < len && hdr[end] != ';')
      end++;
    size_t a = i, b = end;
    while (a < b && blank(hdr[a]))
      a++;
    while (b > a && blank(hdr[b - 1]))
      b--;
    const char *eq = memchr(hdr + a, '=', b - a);
    if (eq) {
      size_t ke = (size_t)(eq - hdr), va = ke + 1;
      while (ke > a && blank(hdr[ke - 1]))
        ke--;
      while (va < b && blank(hdr[va]))
        va++;
      if (ke - a == nl && !memcmp(hdr + a, name, nl)) {
        if (b - va >= 2 && hdr[va] == '"' && hdr[b - 1] == '"')
          va++, b--;
        *val = hdr + va;
        *vlen = b - va;
        return true;
      }
    }
    i = end + 1;
  }
  return false;
}

/* Decodes q[a, b) into out; returns the length or an error. */
static int decode(const char *q, size_t a, size_t b, char *out, size_t cap) {
  size_t o = 0;
  for (size_t i = a; i < b; i++) {
    char c = q[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%') { /* exactly two hex digits must follow */
      int v = lmz_pct_byte(q + i, b - i);
      if (v < 0)
        return LMZ_EINVAL;
      c = (char)v;
      i += 2;
    }
    if (c == '\0')
      return LMZ_EINVAL;
    if (o + 1 >= cap)
      return LMZ_ETOOBIG;
    out[o++] = c;
  }
  out[o] = '\0';
  return (int)o;
}

int lmz_auth_param_get(const char *q, size_t len, const char *name, char *out,
                       size_t cap) {
  if (cap == 0)
    return LMZ_ETOOBIG;
  size_t nl = strlen(name), i = 0;
  while (i < len) {
    size_t end = i;
    while (end < len && q[end] != '&')
      end++;
    const char *eq = memchr(q + i, '=', end - i);
    size_t ke = eq ? (size_t)(eq - q) : end;
    if (ke - i == nl && !memcmp(q + i, name, nl))
      return decode(q, eq ? ke + 1 : end, end, out, cap);
    i = end + 1;
  }
  return LMZ_ENOTFOUND;
}

static bool is_space(unsigned char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

int lmz_auth_email_normalize(const char *in, size_t len, char *out, size_t cap) {
  size_t a = 0, b = len;
  while (a < b && is_space((unsigned char)in[a]))
    a++;
  while (b > a && is_space((unsigned char)in[b - 1]))
    b--;
  if (b - a == 0 || b - a > LMZ_MAIL_ADDR_MAX || b - a + 1 > cap)
    return LMZ_EINVAL;
  size_t at = 0;
  for (size_t i = a; i < b; i++) {
    unsigned char c = (unsigned char)in[i];
    out[i - a] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    if (c == '@')
      at = i - a;
  }
  size_t n = b - a;
  out[n] = '\0';
  if (lmz_mail_check_addr(out, n)) /* one '@', no blanks or header bytes */
    return LMZ_EINVAL;
  /* the domain needs a '.' with something on both sides */
  const char *dot = memchr(out + at + 1, '.', n - at - 1);
  bool ok = false;
  for (; dot; dot = memchr(dot + 1, '.', (size_t)(out + n - dot - 1)))
    if (dot > out + at + 1 && dot < out + n - 1) {
      ok = true;
      break;
    }
  return ok ? 0 : LMZ_EINVAL;
}

int lmz_auth_token_decode(const char *s, size_t len,
                          uint8_t out[LMZ_AUTH_TOKEN_BYTES]) {
  size_t bin_len = 0;
  const char *end = NULL;
  if (len != LMZ_AUTH_TOKEN_CHARS)
    return LMZ_EINVAL;
  if (sodium_base642bin(out, LMZ_AUTH_TOKEN_BYTES, s, len, NULL, &bin_len, &end,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
      bin_len != LMZ_AUTH_TOKEN_BYTES || end != s + len)
    return LMZ_EINVAL;
  /* canonical: re-encoding gives the same text (no stray trailing bits) */
  char again[LMZ_AUTH_TOKEN_CHARS + 1];
  lmz_auth_token_encode(out, again);
  return memcmp(again, s, len) ? LMZ_EINVAL : 0;
}

void lmz_auth_token_encode(const uint8_t in[LMZ_AUTH_TOKEN_BYTES],
                           char out[LMZ_AUTH_TOKEN_CHARS + 1]) {
  sodium_bin2base64(out, LMZ_AUTH_TOKEN_CHARS + 1, in, LMZ_AUTH_TOKEN_BYTES,
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}
