/* tests/fuzz/fuzz_jwt.c - libFuzzer target for gateway/jwt.c.
 *
 * Input: byte 0 picks a mode, the rest is the data.
 *   mode even: the data is a token; lmz_jwt_verify must return a known
 *     status and, when OK, claims that satisfy the rules (sub non-empty, exp
 *     in range, iss/aud equal to the expected ones).
 *   mode odd: the data is a payload; it is minted with BLUE, must verify
 *     unless the payload breaks a claim rule (never with a signature
 *     failure when the payload is a JSON object with a valid exp/sub/iss/aud
 *     ... checked loosely: OK implies the payload rules), and the token with
 *     any one byte changed (position and value from the input) must never
 *     verify: a token has exactly one spelling.
 * Also runs lmz_jwt_build_claims on the data as --claims text. */
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "gateway/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lmz_jwt_keyset KS;
static lmz_arena *A;
static const struct lmz_jwt_expect E = {LMZ_JWT_DEFAULT_ISS,
                                        LMZ_JWT_DEFAULT_AUD, 1700000000, 5};

static void setup(void) {
  if (sodium_init() < 0)
    abort();
  uint8_t s1[32], s2[32];
  memset(s1, 1, 32);
  memset(s2, 2, 32);
  lmz_jwt_keyset_add(&KS, "BLUE", NULL, s1);
  lmz_jwt_keyset_add(&KS, "GREEN", NULL, s2);
  A = lmz_arena_new();
}

static int verify(const char *t, size_t n, struct lmz_jwt_claims *c) {
  char why[LMZ_ERRMSG_LEN];
  lmz_arena_reset(A);
  int st = lmz_jwt_verify(t, n, &KS, &E, A, c, why);
  if (st < 0 || st > LMZ_JWT_EINTERNAL)
    abort();
  if (st == LMZ_JWT_OK &&
      (!c->sub || c->sub_len == 0 || strcmp(c->iss, E.iss) ||
       strcmp(c->aud, E.aud) || c->exp + 5 < 1700000000.0 || !c->kid))
    abort();
  if (st != LMZ_JWT_OK && c->sub)
    abort(); /* claims are zeroed on failure */
  return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool ready;
  if (!ready) {
    setup();
    ready = true;
  }
  if (size < 1)
    return 0;
  uint8_t mode = data[0];
  data++, size--;
  struct lmz_jwt_claims c;
  if (!(mode & 1)) {
    verify((const char *)data, size, &c);
    return 0;
  }
  lmz_buf tok = LMZ_BUF_INIT;
  if (lmz_jwt_mint(&KS, (mode & 2) ? "GREEN" : NULL, (const char *)data, size,
                   &tok) == 0) {
    (void)verify((const char *)tok.data, tok.len, &c);
    if (tok.len > 0 && size > 0) {
      size_t pos = (size_t)data[0] * 31u % tok.len;
      uint8_t v = (uint8_t)(mode ^ 0x5a);
      if (tok.data[pos] != v) {
        tok.data[pos] = v;
        if (verify((const char *)tok.data, tok.len, &c) == LMZ_JWT_OK)
          abort();
      }
    }
  }
  lmz_buf_free(&tok);
  /* the same bytes as --claims text */
  char *text = malloc(size + 1);
  memcpy(text, data, size);
  text[size] = '\0';
  lmz_buf b = LMZ_BUF_INIT;
  char why[LMZ_ERRMSG_LEN];
  struct lmz_jwt_claims_opts o = {
      .sub = "s", .now_s = 1700000000, .ttl_s = 60, .extra_json = text};
  if (lmz_jwt_build_claims(&o, &b, why) == 0) {
    lmz_buf t2 = LMZ_BUF_INIT;
    lmz_arena *pa = lmz_arena_new();
    lmz_json *root = NULL;
    if (lmz_json_parse(pa, (const char *)b.data, b.len, NULL, &root, NULL))
      abort(); /* build_claims writes valid JSON */
    bool nbf = lmz_json_get(root, "nbf") != NULL; /* may be in the future */
    lmz_arena_free(pa);
    if (lmz_jwt_mint(&KS, NULL, (const char *)b.data, b.len, &t2) == 0 &&
        verify((const char *)t2.data, t2.len, &c) != LMZ_JWT_OK && !nbf)
      abort(); /* our own claims always verify */
    lmz_buf_free(&t2);
  }
  lmz_buf_free(&b);
  free(text);
  return 0;
}
