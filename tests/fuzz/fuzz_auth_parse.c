/* tests/fuzz/fuzz_auth_parse.c - libFuzzer target for auth/parse.c (the
 * auth service's cookie, query/form, email and token text parsers).
 *
 * Input: byte 0 picks the parser, the rest is its text. Checked on every
 * input: nothing is read past the given length (ASan, the input is copied
 * to an exact-size buffer), a found cookie value lies inside the header, a
 * decoded parameter has the returned length and no NUL inside, a
 * normalised email passes the mail address check and has no upper-case
 * ASCII, and a token that decodes re-encodes to the same text. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/mail.h"
#include "auth/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_cookie(const char *s, size_t n) {
  const char *v;
  size_t vl;
  if (lmz_auth_cookie_get(s, n, "refresh-token", &v, &vl) &&
      (v < s || v + vl > s + n))
    abort();
}

static void check_param(const char *s, size_t n) {
  char out[64];
  static const char *const names[] = {"one_time_token", "a", ""};
  for (size_t i = 0; i < 3; i++) {
    int r = lmz_auth_param_get(s, n, names[i], out, sizeof out);
    if (r >= 0 && ((size_t)r >= sizeof out || strlen(out) != (size_t)r))
      abort();
  }
}

static void check_email(const char *s, size_t n) {
  char out[LMZ_MAIL_ADDR_MAX + 1];
  if (lmz_auth_email_normalize(s, n, out, sizeof out))
    return;
  size_t l = strlen(out);
  if (lmz_mail_check_addr(out, l))
    abort();
  for (size_t i = 0; i < l; i++)
    if (out[i] >= 'A' && out[i] <= 'Z')
      abort();
}

static void check_token(const char *s, size_t n) {
  uint8_t raw[LMZ_AUTH_TOKEN_BYTES];
  char again[LMZ_AUTH_TOKEN_CHARS + 1];
  if (lmz_auth_token_decode(s, n, raw))
    return;
  lmz_auth_token_encode(raw, again);
  if (n != LMZ_AUTH_TOKEN_CHARS || memcmp(again, s, n))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int init;
  if (!init && sodium_init() < 0)
    abort();
  init = 1;
  if (size < 1)
    return 0;
  size_t n = size - 1;
  char *s = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
  if (!s)
    return 0;
  memcpy(s, data + 1, n);
  switch (data[0] & 3) {
  case 0: check_cookie(s, n); break;
  case 1: check_param(s, n); break;
  case 2: check_email(s, n); break;
  default: check_token(s, n); break;
  }
  free(s);
  return 0;
}
