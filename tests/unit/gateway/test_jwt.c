/* Unit tests for gateway/jwt.c (verify, gate, answers, mint, claims) and
 * gateway/keys.c (dev key file, PEM/base64url key text). No sockets. */
#include "lib/testlib.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"

#define NOW 1700000000LL
#define B64V sodium_base64_VARIANT_URLSAFE_NO_PADDING

static struct lmz_jwt_keyset KS;    /* BLUE + GREEN, with secrets */
static struct lmz_jwt_keyset OTHER; /* unrelated BLUE */
static lmz_arena *A;

static int setup(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  uint8_t s1[32], s2[32], s3[32];
  memset(s1, 1, 32);
  memset(s2, 2, 32);
  memset(s3, 3, 32);
  memset(&KS, 0, sizeof KS);
  memset(&OTHER, 0, sizeof OTHER);
  assert_int_equal(lmz_jwt_keyset_add(&KS, "BLUE", NULL, s1), 0);
  assert_int_equal(lmz_jwt_keyset_add(&KS, "GREEN", NULL, s2), 0);
  assert_int_equal(lmz_jwt_keyset_add(&OTHER, "BLUE", NULL, s3), 0);
  A = lmz_arena_new();
  assert_non_null(A);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  lmz_jwt_keyset_wipe(&KS);
  lmz_jwt_keyset_wipe(&OTHER);
  lmz_arena_free(A);
  return 0;
}

static const struct lmz_jwt_expect EXPECT = {LMZ_JWT_DEFAULT_ISS,
                                             LMZ_JWT_DEFAULT_AUD, NOW, 0};

/* Mints `payload` with `kid` of `ks` into a static buffer (NUL-terminated). */
static const char *mint(const struct lmz_jwt_keyset *ks, const char *kid,
                        const char *payload) {
  static char out[LMZ_JWT_MAX_LEN + 1];
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_jwt_mint(ks, kid, payload, strlen(payload), &b), 0);
  assert_true(b.len <= LMZ_JWT_MAX_LEN);
  memcpy(out, b.data, b.len);
  out[b.len] = '\0';
  lmz_buf_free(&b);
  return out;
}

/* A token with an arbitrary header, signed by BLUE's secret key. */
static const char *forge(const char *header, const char *payload) {
  static char out[4096];
  char h[512], p[2048];
  sodium_bin2base64(h, sizeof h, (const uint8_t *)header, strlen(header), B64V);
  sodium_bin2base64(p, sizeof p, (const uint8_t *)payload, strlen(payload),
                    B64V);
  int n = snprintf(out, sizeof out, "%s.%s", h, p);
  uint8_t sig[64];
  crypto_sign_detached(sig, NULL, (const uint8_t *)out, (size_t)n,
                       KS.keys[0].sk);
  out[n++] = '.';
  sodium_bin2base64(out + n, sizeof out - (size_t)n, sig, 64, B64V);
  return out;
}

static int verify_ex(const char *tok, const struct lmz_jwt_keyset *ks,
                     const struct lmz_jwt_expect *e, struct lmz_jwt_claims *c) {
  char why[LMZ_ERRMSG_LEN] = "";
  lmz_arena_reset(A);
  int st = lmz_jwt_verify(tok, strlen(tok), ks, e, A, c, why);
  if (st)
    assert_true(why[0] != '\0'); /* every rejection says why */
  return st;
}

static int verify(const char *tok) {
  struct lmz_jwt_claims c;
  return verify_ex(tok, &KS, &EXPECT, &c);
}

#define GOOD_PAYLOAD                                                           \
  "{\"iss\":\"https://lumenize.local\",\"aud\":\"https://lumenize.local\","    \
  "\"sub\":\"alice\",\"exp\":1700000100,\"iat\":1700000000,\"jti\":\"j1\","    \
  "\"emailVerified\":true,\"adminApproved\":true}"

static void test_valid_blue_and_green(void **state) {
  (void)state;
  const char *hdr_blue =
      "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6IkJMVUUifQ";
  const char *t = mint(&KS, NULL, GOOD_PAYLOAD);      /* primary = BLUE */
  assert_memory_equal(t, hdr_blue, strlen(hdr_blue)); /* the exact header */
  struct lmz_jwt_claims c;
  assert_int_equal(verify_ex(t, &KS, &EXPECT, &c), LMZ_JWT_OK);
  assert_string_equal(c.sub, "alice");
  assert_int_equal(c.sub_len, 5);
  assert_string_equal(c.iss, "https://lumenize.local");
  assert_string_equal(c.aud, "https://lumenize.local");
  assert_string_equal(c.jti, "j1");
  assert_true(c.exp == 1700000100.0 && c.iat == 1700000000.0);
  assert_true(c.email_verified && c.admin_approved && !c.is_admin);
  assert_null(c.act);
  assert_string_equal(c.kid, "BLUE");
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_OK);

  t = mint(&KS, "GREEN", GOOD_PAYLOAD);
  assert_int_equal(verify_ex(t, &KS, &EXPECT, &c), LMZ_JWT_OK);
  assert_string_equal(c.kid, "GREEN");

  /* the kid only orders the keys: a GREEN-signed token saying kid BLUE
   * still verifies (the original ignores kid) */
  struct lmz_jwt_keyset swapped;
  memset(&swapped, 0, sizeof swapped);
  uint8_t s2[32];
  memset(s2, 2, 32);
  assert_int_equal(lmz_jwt_keyset_add(&swapped, "BLUE", NULL, s2), 0);
  t = mint(&swapped, "BLUE", GOOD_PAYLOAD);
  assert_int_equal(verify_ex(t, &KS, &EXPECT, &c), LMZ_JWT_OK);
  assert_string_equal(c.kid, "GREEN");
  lmz_jwt_keyset_wipe(&swapped);

  /* a verify-only key set (public keys only) accepts it too */
  struct lmz_jwt_keyset pub;
  memset(&pub, 0, sizeof pub);
  assert_int_equal(lmz_jwt_keyset_add(&pub, "BLUE", KS.keys[0].pk, NULL), 0);
  t = mint(&KS, "BLUE", GOOD_PAYLOAD);
  assert_int_equal(verify_ex(t, &pub, &EXPECT, &c), LMZ_JWT_OK);
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_jwt_mint(&pub, "BLUE", "{}", 2, &b), LMZ_EACCESS);
  assert_int_equal(lmz_jwt_mint(&KS, "RED", "{}", 2, &b), LMZ_ENOTFOUND);
  assert_int_equal(b.len, 0);
  lmz_buf_free(&b);
}

static void test_wrong_key_and_tampering(void **state) {
  (void)state;
  const char *t = mint(&OTHER, "BLUE", GOOD_PAYLOAD);
  assert_int_equal(verify(t), LMZ_JWT_EINVALID);

  char tok[LMZ_JWT_MAX_LEN + 1];
  strcpy(tok, mint(&KS, "BLUE", GOOD_PAYLOAD));
  assert_int_equal(verify(tok), LMZ_JWT_OK);
  char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
  /* tampered payload: one character changed */
  char save = d1[5];
  d1[5] = save == 'A' ? 'B' : 'A';
  assert_int_equal(verify(tok), LMZ_JWT_EINVALID);
  d1[5] = save;
  /* tampered signature */
  save = d2[10];
  d2[10] = save == 'A' ? 'B' : 'A';
  assert_int_equal(verify(tok), LMZ_JWT_EINVALID);
  d2[10] = save;
  /* tampered header (kid BLUE -> a different valid header) */
  char t2[LMZ_JWT_MAX_LEN + 1];
  const char *green = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6IkdSRUVOIn0";
  snprintf(t2, sizeof t2, "%s%s", green, d1);
  assert_int_equal(verify(t2), LMZ_JWT_EINVALID);
  /* a payload re-encoded with a different (but valid) JSON: signature fails */
  assert_int_equal(verify(tok), LMZ_JWT_OK);
}

static void test_alg_confusion(void **state) {
  (void)state;
  /* the signature is a real BLUE signature: only the header is wrong */
  assert_int_equal(
      verify(forge("{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", GOOD_PAYLOAD)),
      LMZ_JWT_OK);
  assert_int_equal(
      verify(forge("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD_PAYLOAD)),
      LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("{\"alg\":\"none\"}", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("{\"alg\":\"eddsa\"}", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("{\"alg\":\"Ed25519\"}", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("{\"typ\":\"JWT\"}", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("{\"alg\":[\"EdDSA\"]}", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(verify(forge("[\"EdDSA\"]", GOOD_PAYLOAD)),
                   LMZ_JWT_EINVALID);
  assert_int_equal(
      verify(forge("{\"alg\":\"EdDSA\",\"crit\":[\"exp\"]}", GOOD_PAYLOAD)),
      LMZ_JWT_EINVALID);
  /* last duplicate wins, as JSON.parse: "none" after "EdDSA" is rejected */
  assert_int_equal(
      verify(forge("{\"alg\":\"EdDSA\",\"alg\":\"none\"}", GOOD_PAYLOAD)),
      LMZ_JWT_EINVALID);
  /* alg:none with an empty signature segment */
  char t[1024];
  char h[128], p[1024];
  sodium_bin2base64(h, sizeof h, (const uint8_t *)"{\"alg\":\"none\"}", 14,
                    B64V);
  sodium_bin2base64(p, sizeof p, (const uint8_t *)GOOD_PAYLOAD,
                    strlen(GOOD_PAYLOAD), B64V);
  snprintf(t, sizeof t, "%s.%s.", h, p);
  assert_int_equal(verify(t), LMZ_JWT_EINVALID);
  /* an HS256 "signature" made with the public key as the HMAC secret */
  snprintf(t, sizeof t, "%s.%s", "eyJhbGciOiJIUzI1NiJ9", p);
  uint8_t mac[32];
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, KS.keys[0].pk, 32);
  crypto_auth_hmacsha256_update(&st, (const uint8_t *)t, strlen(t));
  crypto_auth_hmacsha256_final(&st, mac);
  size_t n = strlen(t);
  t[n++] = '.';
  sodium_bin2base64(t + n, sizeof t - n, mac, 32, B64V);
  assert_int_equal(verify(t), LMZ_JWT_EINVALID);
}

static void test_times(void **state) {
  (void)state;
  struct lmz_jwt_claims c;
  char p[512];
  /* exp == now is still valid (the original rejects exp < now) */
  snprintf(p, sizeof p,
           "{\"aud\":\"https://lumenize.local\",\"iss\":\"https://"
           "lumenize.local\",\"sub\":\"a\",\"exp\":%lld}",
           NOW);
  assert_int_equal(verify(mint(&KS, "BLUE", p)), LMZ_JWT_OK);
  snprintf(p, sizeof p,
           "{\"aud\":\"https://lumenize.local\",\"iss\":\"https://"
           "lumenize.local\",\"sub\":\"a\",\"exp\":%lld}",
           NOW - 1);
  const char *t = mint(&KS, "BLUE", p);
  assert_int_equal(verify(t), LMZ_JWT_EEXPIRED);
  struct lmz_jwt_expect lee = EXPECT;
  lee.leeway_s = 1;
  assert_int_equal(verify_ex(t, &KS, &lee, &c), LMZ_JWT_OK);
  /* no exp at all: rejected (stricter than the original) */
  assert_int_equal(verify(mint(&KS, "BLUE",
                               "{\"aud\":\"https://lumenize.local\",\"iss\":"
                               "\"https://lumenize.local\",\"sub\":\"a\"}")),
                   LMZ_JWT_EINVALID);
  assert_int_equal(
      verify(mint(&KS, "BLUE",
                  "{\"aud\":\"https://lumenize.local\",\"iss\":\"https://"
                  "lumenize.local\",\"sub\":\"a\",\"exp\":\"1800000000\"}")),
      LMZ_JWT_EINVALID);
  /* nbf in the future */
  snprintf(p, sizeof p,
           "{\"aud\":\"https://lumenize.local\",\"iss\":\"https://"
           "lumenize.local\",\"sub\":\"a\",\"exp\":%lld,\"nbf\":%lld}",
           NOW + 100, NOW + 10);
  assert_int_equal(verify(mint(&KS, "BLUE", p)), LMZ_JWT_EINVALID);
}

static void test_claim_checks(void **state) {
  (void)state;
#define P(body) "{\"exp\":1800000000," body "}"
#define GOOD_IA                                                                \
  "\"aud\":\"https://lumenize.local\",\"iss\":\"https://lumenize.local\""
  assert_int_equal(verify(mint(&KS, "BLUE", P(GOOD_IA))), LMZ_JWT_ESUBJECT);
  assert_int_equal(verify(mint(&KS, "BLUE", P(GOOD_IA ",\"sub\":\"\""))),
                   LMZ_JWT_ESUBJECT);
  assert_int_equal(verify(mint(&KS, "BLUE", P(GOOD_IA ",\"sub\":42"))),
                   LMZ_JWT_ESUBJECT);
  assert_int_equal(
      verify(mint(&KS, "BLUE",
                  P("\"aud\":\"https://lumenize.local\",\"iss\":\"x\","
                    "\"sub\":\"a\""))),
      LMZ_JWT_EISSUER);
  assert_int_equal(verify(mint(&KS, "BLUE",
                               P("\"aud\":\"https://other\",\"iss\":\"https://"
                                 "lumenize.local\",\"sub\":\"a\""))),
                   LMZ_JWT_EAUDIENCE);
  /* audience is checked before issuer, as the original does */
  assert_int_equal(
      verify(mint(&KS, "BLUE", P("\"aud\":\"y\",\"iss\":\"x\",\"sub\":\"a\""))),
      LMZ_JWT_EAUDIENCE);
  /* aud as an array: the original compares with !==, so it is a mismatch */
  assert_int_equal(
      verify(mint(&KS, "BLUE",
                  P("\"aud\":[\"https://lumenize.local\"],\"iss\":\"https://"
                    "lumenize.local\",\"sub\":\"a\""))),
      LMZ_JWT_EAUDIENCE);
  /* no expectations: anything goes but sub */
  struct lmz_jwt_expect none = {NULL, NULL, NOW, 0};
  struct lmz_jwt_claims c;
  assert_int_equal(
      verify_ex(mint(&KS, "BLUE", P("\"sub\":\"s\"")), &KS, &none, &c),
      LMZ_JWT_OK);
  assert_null(c.iss);
  /* payload must be an object even when the signature is fine */
  assert_int_equal(verify(mint(&KS, "BLUE", "[1,2]")), LMZ_JWT_EINVALID);
  assert_int_equal(verify(mint(&KS, "BLUE", "{\"a\":")), LMZ_JWT_EINVALID);
  assert_int_equal(verify(mint(&KS, "BLUE", "")), LMZ_JWT_EINVALID);
#undef P
}

static void test_malformed(void **state) {
  (void)state;
  char tok[LMZ_JWT_MAX_LEN + 64];
  strcpy(tok, mint(&KS, "BLUE", GOOD_PAYLOAD));
  size_t n = strlen(tok);
  assert_int_equal(verify(tok), LMZ_JWT_OK);
  /* padded signature */
  strcpy(tok + n, "==");
  assert_int_equal(verify(tok), LMZ_JWT_EINVALID);
  tok[n] = '\0';
  /* non-canonical last character (unused low bits set): same bytes, other
   * spelling; rejected so a token has one spelling only */
  char last = tok[n - 1];
  const char *alpha =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  int idx = (int)(strchr(alpha, last) - alpha);
  tok[n - 1] = alpha[(idx & ~15) | ((idx & 15) ^ 1)];
  assert_int_equal(verify(tok), LMZ_JWT_EINVALID);
  tok[n - 1] = last;
  /* padded payload segment */
  char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
  char t2[LMZ_JWT_MAX_LEN + 64];
  snprintf(t2, sizeof t2, "%.*s=%s", (int)(d2 - tok), tok, d2);
  assert_int_equal(verify(t2), LMZ_JWT_EINVALID);
  /* standard-alphabet characters */
  snprintf(t2, sizeof t2, "%.*s+%s", (int)(d2 - tok), tok, d2);
  assert_int_equal(verify(t2), LMZ_JWT_EINVALID);
  /* segment counts */
  assert_int_equal(verify("a.b"), LMZ_JWT_EINVALID);
  assert_int_equal(verify("a.b.c.d"), LMZ_JWT_EINVALID);
  assert_int_equal(verify(".."), LMZ_JWT_EINVALID);
  assert_int_equal(verify(""), LMZ_JWT_EINVALID);
  snprintf(t2, sizeof t2, "%s.", tok);
  assert_int_equal(verify(t2), LMZ_JWT_EINVALID);
  /* huge token */
  char *huge = malloc(LMZ_JWT_MAX_LEN + 2);
  memset(huge, 'A', LMZ_JWT_MAX_LEN + 1);
  huge[10] = '.';
  huge[20] = '.';
  huge[LMZ_JWT_MAX_LEN + 1] = '\0';
  assert_int_equal(verify(huge), LMZ_JWT_EINVALID);
  free(huge);
  /* a payload near the limit mints and verifies; over it, mint refuses */
  char *big = malloc(7000);
  int m = snprintf(big, 7000,
                   "{\"exp\":1800000000,\"sub\":\"a\",\"aud\":"
                   "\"https://lumenize.local\",\"iss\":\"https://"
                   "lumenize.local\",\"pad\":\"");
  memset(big + m, 'x', 5900 - (size_t)m);
  strcpy(big + 5900, "\"}");
  assert_int_equal(verify(mint(&KS, "BLUE", big)), LMZ_JWT_OK);
  lmz_buf b = LMZ_BUF_INIT;
  memset(big + m, 'x', 6990 - (size_t)m);
  strcpy(big + 6990, "\"}");
  assert_int_equal(lmz_jwt_mint(&KS, "BLUE", big, strlen(big), &b),
                   LMZ_ETOOBIG);
  assert_int_equal(b.len, 0);
  lmz_buf_free(&b);
  free(big);
  /* deep nesting in the payload is bounded */
  char deep[700];
  strcpy(deep, "{\"exp\":1800000000,\"sub\":\"a\",\"x\":");
  size_t k = strlen(deep);
  for (int i = 0; i < 300; i++)
    deep[k++] = '[';
  for (int i = 0; i < 300; i++)
    deep[k++] = ']';
  strcpy(deep + k, "}");
  struct lmz_jwt_expect none = {NULL, NULL, NOW, 0};
  struct lmz_jwt_claims c;
  assert_int_equal(verify_ex(mint(&KS, "BLUE", deep), &KS, &none, &c),
                   LMZ_JWT_EINVALID);
}

static void test_gate(void **state) {
  (void)state;
  struct {
    const char *flags;
    int want;
  } cases[] = {
      {"\"emailVerified\":true,\"adminApproved\":true", LMZ_JWT_OK},
      {"\"emailVerified\":true,\"adminApproved\":false", LMZ_JWT_EDENIED},
      {"\"emailVerified\":false,\"adminApproved\":true", LMZ_JWT_EDENIED},
      {"\"adminApproved\":true", LMZ_JWT_EDENIED},
      {"\"isAdmin\":true", LMZ_JWT_OK},
      {"\"isAdmin\":false,\"emailVerified\":true", LMZ_JWT_EDENIED},
      {"\"isAdmin\":1", LMZ_JWT_OK}, /* JavaScript truthiness */
      {"\"isAdmin\":\"yes\"", LMZ_JWT_OK},
      {"\"isAdmin\":0", LMZ_JWT_EDENIED},
      {"\"isAdmin\":\"\"", LMZ_JWT_EDENIED},
      {"\"isAdmin\":null", LMZ_JWT_EDENIED},
      {"\"emailVerified\":{},\"adminApproved\":[]", LMZ_JWT_OK},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    char p[512];
    snprintf(p, sizeof p, "{\"exp\":1800000000,\"sub\":\"a\",%s}",
             cases[i].flags);
    struct lmz_jwt_expect none = {NULL, NULL, NOW, 0};
    struct lmz_jwt_claims c;
    assert_int_equal(verify_ex(mint(&KS, "BLUE", p), &KS, &none, &c),
                     LMZ_JWT_OK);
    assert_int_equal(lmz_jwt_gate(&c), cases[i].want);
  }
  struct lmz_jwt_answer a;
  lmz_jwt_answer(LMZ_JWT_EDENIED, &a);
  assert_int_equal(a.http_status, 403);
  assert_string_equal(a.content_type, "application/json");
  assert_string_equal(
      a.body,
      "{\"error\":\"access_denied\",\"error_description\":\"Account not yet "
      "approved\"}");
  assert_null(a.www_authenticate);
}

static void test_answers(void **state) {
  (void)state;
  struct lmz_jwt_answer a;
  lmz_jwt_answer(LMZ_JWT_EINVALID, &a);
  assert_int_equal(a.http_status, 401);
  assert_string_equal(a.body, "{\"error\":\"invalid_token\",\"error_"
                              "description\":\"Token is invalid or expired\"}");
  assert_string_equal(a.www_authenticate,
                      "Bearer realm=\"Lumenize\", error=\"invalid_token\", "
                      "error_description=\"Token is invalid or expired\"");
  lmz_jwt_answer(LMZ_JWT_EEXPIRED, &a);
  assert_int_equal(a.http_status, 401);
  assert_string_equal(a.body, "{\"error\":\"invalid_token\",\"error_"
                              "description\":\"Token is invalid or expired\"}");
  lmz_jwt_answer(LMZ_JWT_EAUDIENCE, &a);
  assert_string_equal(a.body, "{\"error\":\"invalid_token\",\"error_"
                              "description\":\"Token audience mismatch\"}");
  lmz_jwt_answer(LMZ_JWT_EISSUER, &a);
  assert_string_equal(a.body, "{\"error\":\"invalid_token\",\"error_"
                              "description\":\"Token issuer mismatch\"}");
  lmz_jwt_answer(LMZ_JWT_ESUBJECT, &a);
  assert_string_equal(a.body, "{\"error\":\"invalid_token\",\"error_"
                              "description\":\"Token missing subject claim\"}");
  assert_string_equal(a.www_authenticate,
                      "Bearer realm=\"Lumenize\", error=\"invalid_token\", "
                      "error_description=\"Token missing subject claim\"");
  lmz_jwt_answer(LMZ_JWT_EMISSING_WS, &a);
  assert_int_equal(a.http_status, 401);
  assert_string_equal(
      a.body, "Unauthorized: Missing access token in WebSocket subprotocol");
  lmz_jwt_answer(LMZ_JWT_EMISSING_BEARER, &a);
  assert_int_equal(a.http_status, 401);
  assert_string_equal(a.body, "{\"error\":\"invalid_request\",\"error_"
                              "description\":\"Missing Authorization header "
                              "with Bearer token\"}");
  lmz_jwt_answer(LMZ_JWT_ERATE, &a);
  assert_int_equal(a.http_status, 429);
  assert_string_equal(a.body,
                      "{\"error\":\"rate_limited\",\"error_description\":"
                      "\"Too many requests. Please try again later.\"}");
  lmz_jwt_answer(LMZ_JWT_ENOUPGRADE, &a);
  assert_int_equal(a.http_status, 426);
  assert_string_equal(a.body, "Expected WebSocket upgrade");
  lmz_jwt_answer(LMZ_JWT_EIDENTITY, &a);
  assert_int_equal(a.http_status, 403);
  assert_string_equal(a.body, "Forbidden: identity mismatch");
  lmz_jwt_answer(LMZ_JWT_EINSTANCE_FORMAT, &a);
  assert_string_equal(
      a.body, "Forbidden: invalid instance name format (expected sub.tabId)");
  lmz_jwt_answer(999, &a);
  assert_int_equal(a.http_status, 500);
  lmz_jwt_answer(LMZ_JWT_OK, &a);
  assert_int_equal(a.http_status, 0);
}

static void test_instance_and_bearer(void **state) {
  (void)state;
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "alice.tab1", 10),
                   LMZ_JWT_OK);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "alice.tab.x", 11),
                   LMZ_JWT_OK);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "bob.tab1", 8),
                   LMZ_JWT_EIDENTITY);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "alicex.t", 8),
                   LMZ_JWT_EIDENTITY);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "alic.t", 6),
                   LMZ_JWT_EIDENTITY);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, "alice", 5),
                   LMZ_JWT_EINSTANCE_FORMAT);
  assert_int_equal(lmz_jwt_check_instance("alice", 5, ".t", 2),
                   LMZ_JWT_EIDENTITY);
  const char *t;
  size_t n;
  assert_true(lmz_jwt_bearer("Bearer abc", 10, &t, &n));
  assert_int_equal(n, 3);
  assert_memory_equal(t, "abc", 3);
  assert_true(lmz_jwt_bearer("bEaReR x.y.z", 12, &t, &n));
  assert_int_equal(n, 5);
  assert_false(lmz_jwt_bearer("Bearer", 6, &t, &n));
  assert_false(lmz_jwt_bearer("Bearer ", 7, &t, &n));
  assert_false(lmz_jwt_bearer("Bearer  abc", 11, &t, &n));
  assert_false(lmz_jwt_bearer("Bearer a b", 10, &t, &n));
  assert_false(lmz_jwt_bearer("Basic abc", 9, &t, &n));
  assert_false(lmz_jwt_bearer(" abc", 4, &t, &n));
}

static void test_build_claims(void **state) {
  (void)state;
  lmz_buf b = LMZ_BUF_INIT;
  char why[LMZ_ERRMSG_LEN];
  struct lmz_jwt_claims_opts o = {.sub = "alice", .now_s = NOW, .ttl_s = 60};
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), 0);
  /* exact text up to the random jti */
  const char *want =
      "{\"emailVerified\":true,\"adminApproved\":true,\"iss\":\"https://"
      "lumenize.local\",\"aud\":\"https://lumenize.local\",\"sub\":\"alice\","
      "\"exp\":1700000060,\"iat\":1700000000,\"jti\":\"";
  assert_true(b.len == strlen(want) + 36 + 2);
  assert_memory_equal(b.data, want, strlen(want));
  assert_int_equal(b.data[strlen(want) + 14], '4'); /* UUID version 4 */
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect e = EXPECT;
  b.data[b.len] = 0;
  assert_int_equal(verify_ex(mint(&KS, "BLUE", (char *)b.data), &KS, &e, &c),
                   LMZ_JWT_OK);
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_OK);
  assert_int_equal(strlen(c.jti), 36);

  /* extra claims override the flags; registered claims always win */
  lmz_buf_reset(&b);
  o.extra_json = "{\"adminApproved\":false,\"sub\":\"mallory\",\"role\":"
                 "{\"a\":[1,\"x\"]},\"role\":\"last\",\"exp\":1}";
  o.iss = "https://iss";
  o.aud = "https://aud";
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), 0);
  want = "{\"emailVerified\":true,\"adminApproved\":false,\"role\":\"last\","
         "\"iss\":\"https://iss\",\"aud\":\"https://aud\",\"sub\":\"alice\","
         "\"exp\":1700000060,\"iat\":1700000000,\"jti\":\"";
  assert_memory_equal(b.data, want, strlen(want));
  b.data[b.len] = 0;
  e.iss = "https://iss";
  e.aud = "https://aud";
  assert_int_equal(verify_ex(mint(&KS, "BLUE", (char *)b.data), &KS, &e, &c),
                   LMZ_JWT_OK);
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_EDENIED);
  assert_string_equal(c.sub, "alice");

  lmz_buf_reset(&b);
  o.extra_json = "[1]";
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), LMZ_EINVAL);
  o.extra_json = "{\"a\":";
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), LMZ_EINVAL);
  assert_non_null(strstr(why, "claims:"));
  o.extra_json = NULL;
  o.sub = "";
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), LMZ_EINVAL);
  assert_int_equal(b.len, 0);
  lmz_buf_free(&b);

  /* key set limits */
  struct lmz_jwt_keyset ks;
  memset(&ks, 0, sizeof ks);
  uint8_t s[32] = {9};
  assert_int_equal(lmz_jwt_keyset_add(&ks, "", NULL, s), LMZ_EINVAL);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "a\"b", NULL, s), LMZ_EINVAL);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K", NULL, NULL), LMZ_EINVAL);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K1", NULL, s), 0);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K1", NULL, s), LMZ_EEXIST);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K2", NULL, s), 0);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K3", NULL, s), 0);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K4", NULL, s), 0);
  assert_int_equal(lmz_jwt_keyset_add(&ks, "K5", NULL, s), LMZ_ETOOBIG);
  lmz_jwt_keyset_wipe(&ks);
  assert_int_equal(ks.n, 0);
}

static void test_dev_keys(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-jwtkeys");
  assert_non_null(dir);
  char sub[512], path[600], why[LMZ_ERRMSG_LEN];
  snprintf(sub, sizeof sub, "%s/data", dir);
  snprintf(path, sizeof path, "%s/jwt-keys.json", sub);
  struct lmz_jwt_keyset ks, ks2;
  /* missing: load refuses with the hint; the directory is not created */
  assert_int_equal(lmz_keys_dev_load(sub, &ks, why), LMZ_ENOTFOUND);
  char want[700];
  snprintf(want, sizeof want,
           "no dev keys in %s: start `lmzd --dev` once to create them", sub);
  assert_string_equal(why, want);
  bool created = false;
  assert_int_equal(lmz_keys_dev_load_or_create(sub, &ks, &created, why), 0);
  assert_true(created);
  assert_int_equal(ks.n, 2);
  assert_string_equal(ks.keys[0].kid, "BLUE");
  assert_string_equal(ks.keys[1].kid, "GREEN");
  assert_int_equal(ks.primary, 0);
  assert_true(ks.keys[0].has_sk && ks.keys[1].has_sk);
  assert_true(memcmp(ks.keys[0].pk, ks.keys[1].pk, 32) != 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  /* second start loads the same keys */
  assert_int_equal(lmz_keys_dev_load_or_create(sub, &ks2, &created, why), 0);
  assert_false(created);
  assert_memory_equal(ks.keys[0].pk, ks2.keys[0].pk, 32);
  assert_memory_equal(ks.keys[1].sk, ks2.keys[1].sk, 64);
  /* a token minted with one verifies with the other */
  const char *t = mint(&ks, NULL, GOOD_PAYLOAD);
  struct lmz_jwt_claims c;
  assert_int_equal(verify_ex(t, &ks2, &EXPECT, &c), LMZ_JWT_OK);
  lmz_jwt_keyset_wipe(&ks2);
  /* too-open permissions are refused */
  assert_int_equal(chmod(path, 0644), 0);
  assert_int_equal(lmz_keys_dev_load(sub, &ks2, why), LMZ_EACCESS);
  assert_non_null(strstr(why, "chmod 600"));
  assert_int_equal(chmod(path, 0600), 0);
  /* a public key that does not match its seed is refused */
  size_t len;
  char *text = tl_read_file(path, &len);
  char *pub = strstr(text, "\"public\":\"");
  pub[10] = pub[10] == 'A' ? 'B' : 'A';
  FILE *f = fopen(path, "w");
  fwrite(text, 1, len, f);
  fclose(f);
  assert_int_equal(lmz_keys_dev_load(sub, &ks2, why), LMZ_EBADCONFIG);
  assert_int_equal(ks2.n, 0);
  f = fopen(path, "w");
  fputs("{\"version\":2,\"keys\":[]}", f);
  fclose(f);
  assert_int_equal(lmz_keys_dev_load(sub, &ks2, why), LMZ_EBADCONFIG);
  f = fopen(path, "w");
  fputs("{\"version\":1,", f);
  fclose(f);
  assert_int_equal(lmz_keys_dev_load(sub, &ks2, why), LMZ_EBADCONFIG);
  free(text);
  lmz_jwt_keyset_wipe(&ks);
  tl_rmtree(dir);
  free(dir);
}

static void test_key_text(void **state) {
  (void)state;
  /* RFC 8410 section 10.1 and 10.3 examples */
  const char *pub_pem =
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n"
      "-----END PUBLIC KEY-----\n";
  const char *priv_pem =
      "-----BEGIN PRIVATE KEY-----\n"
      "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n"
      "-----END PRIVATE KEY-----\n";
  uint8_t pk[32], seed[32], want_pk[32], want_seed[32];
  char why[LMZ_ERRMSG_LEN];
  sodium_hex2bin(want_pk, 32,
                 "19bf44096984cdfe8541bac167dc3b96c85086aa30b6b6cb0c5c38ad70316"
                 "6e1",
                 64, NULL, NULL, NULL);
  sodium_hex2bin(want_seed, 32,
                 "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755"
                 "842",
                 64, NULL, NULL, NULL);
  assert_int_equal(lmz_keys_parse_public(pub_pem, strlen(pub_pem), pk, why), 0);
  assert_memory_equal(pk, want_pk, 32);
  assert_int_equal(
      lmz_keys_parse_private(priv_pem, strlen(priv_pem), seed, why), 0);
  assert_memory_equal(seed, want_seed, 32);
  /* escaped newlines, as in environment variables */
  const char *esc = "-----BEGIN PUBLIC KEY-----\\nMCowBQYDK2VwAyEAGb9ECWmEzf6F"
                    "QbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\\n-----END PUBLIC KEY---"
                    "--\\n";
  memset(pk, 0, 32);
  assert_int_equal(lmz_keys_parse_public(esc, strlen(esc), pk, why), 0);
  assert_memory_equal(pk, want_pk, 32);
  /* our PEM writer round-trips */
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_keys_public_pem(want_pk, &b), 0);
  assert_int_equal(b.len, strlen(pub_pem));
  assert_memory_equal(b.data, pub_pem, b.len);
  lmz_buf_free(&b);
  /* raw base64url */
  char b64[44];
  sodium_bin2base64(b64, sizeof b64, want_pk, 32, B64V);
  memset(pk, 0, 32);
  assert_int_equal(lmz_keys_parse_public(b64, 43, pk, why), 0);
  assert_memory_equal(pk, want_pk, 32);
  /* wrong label, wrong DER, garbage */
  assert_int_equal(lmz_keys_parse_public(priv_pem, strlen(priv_pem), pk, why),
                   LMZ_EBADCONFIG);
  assert_int_equal(lmz_keys_parse_private(pub_pem, strlen(pub_pem), seed, why),
                   LMZ_EBADCONFIG);
  assert_int_equal(lmz_keys_parse_public("abc", 3, pk, why), LMZ_EBADCONFIG);
  assert_int_equal(lmz_keys_parse_public("", 0, pk, why), LMZ_EBADCONFIG);
  const char *rsa = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VxAyEAGb9ECWmEzf6FQ"
                    "brBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----";
  assert_int_equal(lmz_keys_parse_public(rsa, strlen(rsa), pk, why),
                   LMZ_EBADCONFIG);
}

/* Not a pass/fail number: prints the verify rate for the report, and checks
 * every verification succeeds. */
static void test_verify_rate(void **state) {
  (void)state;
  lmz_buf b = LMZ_BUF_INIT;
  char why[LMZ_ERRMSG_LEN];
  struct lmz_jwt_claims_opts o = {.sub = "alice", .now_s = NOW, .ttl_s = 900};
  assert_int_equal(lmz_jwt_build_claims(&o, &b, why), 0);
  b.data[b.len] = 0;
  char tok[LMZ_JWT_MAX_LEN + 1];
  strcpy(tok, mint(&KS, "GREEN", (char *)b.data)); /* worst case: 2nd key */
  lmz_buf_free(&b);
  size_t len = strlen(tok);
  uint64_t t0 = tl_now_ms();
  int n = 0;
  while (tl_now_ms() - t0 < 300) {
    for (int i = 0; i < 100; i++, n++) {
      struct lmz_jwt_claims c;
      lmz_arena_reset(A);
      assert_int_equal(lmz_jwt_verify(tok, len, &KS, &EXPECT, A, &c, why), 0);
    }
  }
  uint64_t ms = tl_now_ms() - t0;
  printf("# jwt verify: %d in %llu ms = %.0f/s (token %zu bytes)\n", n,
         (unsigned long long)ms, n * 1000.0 / (double)ms, len);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_blue_and_green),
      cmocka_unit_test(test_wrong_key_and_tampering),
      cmocka_unit_test(test_alg_confusion),
      cmocka_unit_test(test_times),
      cmocka_unit_test(test_claim_checks),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_gate),
      cmocka_unit_test(test_answers),
      cmocka_unit_test(test_instance_and_bearer),
      cmocka_unit_test(test_build_claims),
      cmocka_unit_test(test_dev_keys),
      cmocka_unit_test(test_key_text),
      cmocka_unit_test(test_verify_rate),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
