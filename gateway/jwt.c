/* gateway/jwt.c - Ed25519 JWT verify / mint (see jwt.h for the rules).
 *
 * Happy path (verify): find the two dots (memchr), decode and parse the small
 * header, decode the 64-byte signature, verify it over the first two
 * segments with libsodium (the kid's key first, then the others), then
 * decode the payload into the arena, parse it with core/json.h and check
 * exp/nbf/aud/iss/sub. Cost is dominated by the one Ed25519 verification.
 *
 * Failure modes (all return a status, never abort; nothing is allocated
 * outside the caller's arena):
 *  1. oversize token / header, wrong number of segments, bad base64url
 *     (padding, stray characters, non-canonical bits): EINVALID;
 *  2. header not an object, alg not exactly "EdDSA", crit present: EINVALID;
 *  3. no key verifies the signature (wrong key, tampered header, payload or
 *     signature): EINVALID; the payload is never parsed in that case;
 *  4. payload not a JSON object, exp absent or not a number, nbf in the
 *     future: EINVALID; exp in the past: EEXPIRED;
 *  5. aud / iss / sub wrong: EAUDIENCE / EISSUER / ESUBJECT;
 *  6. arena exhausted: EINTERNAL. */
#include "gateway/jwt.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/err.h"

#define B64V sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define SIG_LEN 64u
#define SIG_B64_LEN 86u /* 64 bytes, unpadded base64url */

/* ---- key sets ------------------------------------------------------------ */

/* kids go into JSON headers unescaped, so only [A-Za-z0-9_-] are allowed. */
static bool kid_ok(const char *kid) {
  size_t n = kid ? strlen(kid) : 0;
  if (n == 0 || n >= LMZ_JWT_KID_MAX)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = kid[i];
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return false;
  }
  return true;
}

int lmz_jwt_keyset_add(struct lmz_jwt_keyset *ks, const char *kid,
                       const uint8_t *pk, const uint8_t *seed) {
  if (!kid_ok(kid) || (!pk && !seed))
    return LMZ_EINVAL;
  if (lmz_jwt_keyset_find(ks, kid) >= 0)
    return LMZ_EEXIST;
  if (ks->n >= LMZ_JWT_MAX_KEYS)
    return LMZ_ETOOBIG;
  struct lmz_jwt_key *k = &ks->keys[ks->n];
  memset(k, 0, sizeof *k);
  memcpy(k->kid, kid, strlen(kid) + 1);
  if (seed) {
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    k->has_sk = true;
  } else {
    memcpy(k->pk, pk, LMZ_JWT_PK_LEN);
  }
  ks->n++;
  return 0;
}

int lmz_jwt_keyset_find(const struct lmz_jwt_keyset *ks, const char *kid) {
  for (unsigned i = 0; kid && i < ks->n; i++)
    if (!strcmp(ks->keys[i].kid, kid))
      return (int)i;
  return -1;
}

void lmz_jwt_keyset_wipe(struct lmz_jwt_keyset *ks) {
  sodium_memzero(ks, sizeof *ks);
}

/* ---- helpers ------------------------------------------------------------- */

/* Strict base64url (no padding, canonical) of exactly `len` chars into `out`
 * (capacity `cap`). Returns the decoded length or -1. */
static long b64url_decode(const char *s, size_t len, uint8_t *out, size_t cap) {
  size_t got = 0;
  const char *end = NULL;
  if (len == 0)
    return -1;
  if (sodium_base642bin(out, cap, s, len, NULL, &got, &end, B64V) != 0 ||
      end != s + len)
    return -1;
  return (long)got;
}

static bool json_str_eq(const lmz_json *j, const char *s) {
  size_t n = strlen(s);
  return j && j->type == LMZ_JSON_STRING && j->u.str.len == n &&
         memcmp(j->u.str.p, s, n) == 0;
}

static const char *json_str(const lmz_json *j) {
  return j && j->type == LMZ_JSON_STRING ? j->u.str.p : NULL;
}

/* JavaScript truthiness, as the original's `payload.isAdmin || ...`. */
static bool truthy(const lmz_json *j) {
  if (!j)
    return false;
  switch (j->type) {
  case LMZ_JSON_TRUE:
  case LMZ_JSON_ARRAY:
  case LMZ_JSON_OBJECT:
    return true;
  case LMZ_JSON_NUMBER:
    return j->u.num != 0 && !isnan(j->u.num);
  case LMZ_JSON_STRING:
    return j->u.str.len > 0;
  default:
    return false;
  }
}

/* ---- verify -------------------------------------------------------------- */

/* Header checks (rule 2). Sets *kid to the header's kid or NULL. */
static int check_header(const char *seg, size_t len, lmz_arena *a,
                        const char **kid, char *why) {
  uint8_t hbuf[LMZ_JWT_MAX_HEADER];
  if (len > sodium_base64_ENCODED_LEN(LMZ_JWT_MAX_HEADER, B64V)) {
    lmz__errmsg_printf(why, "header longer than %u bytes", LMZ_JWT_MAX_HEADER);
    return LMZ_JWT_EINVALID;
  }
  long n = b64url_decode(seg, len, hbuf, sizeof hbuf);
  if (n < 0) {
    lmz__errmsg_printf(why, "header is not canonical unpadded base64url");
    return LMZ_JWT_EINVALID;
  }
  lmz_json *h = NULL;
  struct lmz_json_opts jo = {.max_depth = 8, .max_len = LMZ_JWT_MAX_HEADER};
  int rv = lmz_json_parse(a, (const char *)hbuf, (size_t)n, &jo, &h, NULL);
  if (rv == LMZ_ENOMEM)
    return LMZ_JWT_EINTERNAL;
  if (rv || h->type != LMZ_JSON_OBJECT) {
    lmz__errmsg_printf(why, "header is not a JSON object");
    return LMZ_JWT_EINVALID;
  }
  const lmz_json *alg = lmz_json_get(h, "alg");
  if (!json_str_eq(alg, "EdDSA")) {
    const char *s = json_str(alg);
    lmz__errmsg_printf(why, "alg is %s%.16s%s, expected \"EdDSA\"",
                       s ? "\"" : "", s ? s : "missing or not a string",
                       s ? "\"" : "");
    return LMZ_JWT_EINVALID;
  }
  if (lmz_json_get(h, "crit")) {
    lmz__errmsg_printf(why, "header has a crit member");
    return LMZ_JWT_EINVALID;
  }
  *kid = json_str(lmz_json_get(h, "kid"));
  return LMZ_JWT_OK;
}

/* Rule 3: the kid's key first, then every other key. Returns the index of
 * the key that verified or -1. */
static int check_signature(const char *tok, size_t signed_len,
                           const uint8_t sig[SIG_LEN],
                           const struct lmz_jwt_keyset *ks, const char *kid) {
  int first = lmz_jwt_keyset_find(ks, kid);
  const unsigned char *m = (const unsigned char *)tok;
  if (first >= 0 &&
      crypto_sign_verify_detached(sig, m, signed_len, ks->keys[first].pk) == 0)
    return first;
  for (unsigned i = 0; i < ks->n; i++) {
    if ((int)i == first)
      continue;
    if (crypto_sign_verify_detached(sig, m, signed_len, ks->keys[i].pk) == 0)
      return (int)i;
  }
  return -1;
}

/* Decodes and parses the payload (rule 4, first half). */
static int parse_payload(const char *seg, size_t len, lmz_arena *a,
                         lmz_json **out, char *why) {
  size_t cap = len / 4 * 3 + 3;
  uint8_t *pbuf = lmz_arena_alloc(a, cap);
  if (!pbuf)
    return LMZ_JWT_EINTERNAL;
  long n = b64url_decode(seg, len, pbuf, cap);
  if (n < 0) {
    lmz__errmsg_printf(why, "payload is not canonical unpadded base64url");
    return LMZ_JWT_EINVALID;
  }
  struct lmz_json_opts jo = {.max_depth = 32, .max_len = LMZ_JWT_MAX_LEN};
  int rv = lmz_json_parse(a, (const char *)pbuf, (size_t)n, &jo, out, NULL);
  if (rv == LMZ_ENOMEM)
    return LMZ_JWT_EINTERNAL;
  if (rv || (*out)->type != LMZ_JSON_OBJECT) {
    lmz__errmsg_printf(why, "payload is not a JSON object");
    return LMZ_JWT_EINVALID;
  }
  return LMZ_JWT_OK;
}

/* Rules 4 (times) to 7 on a verified payload; fills the claims. */
static int check_claims(const lmz_json *p, const struct lmz_jwt_expect *e,
                        struct lmz_jwt_claims *c, char *why) {
  const lmz_json *exp = lmz_json_get(p, "exp");
  if (!exp || exp->type != LMZ_JSON_NUMBER || !isfinite(exp->u.num)) {
    lmz__errmsg_printf(why, "exp missing or not a number");
    return LMZ_JWT_EINVALID;
  }
  if (exp->u.num + (double)e->leeway_s < (double)e->now_s) {
    lmz__errmsg_printf(why, "expired %.0f s ago",
                       (double)e->now_s - exp->u.num);
    return LMZ_JWT_EEXPIRED;
  }
  const lmz_json *nbf = lmz_json_get(p, "nbf");
  if (nbf && nbf->type == LMZ_JSON_NUMBER &&
      !(nbf->u.num - (double)e->leeway_s <= (double)e->now_s)) {
    lmz__errmsg_printf(why, "not valid before nbf");
    return LMZ_JWT_EINVALID;
  }
  const lmz_json *aud = lmz_json_get(p, "aud"), *iss = lmz_json_get(p, "iss");
  if (e->aud && !json_str_eq(aud, e->aud)) {
    lmz__errmsg_printf(why, "aud does not match");
    return LMZ_JWT_EAUDIENCE;
  }
  if (e->iss && !json_str_eq(iss, e->iss)) {
    lmz__errmsg_printf(why, "iss does not match");
    return LMZ_JWT_EISSUER;
  }
  const lmz_json *sub = lmz_json_get(p, "sub");
  if (!sub || sub->type != LMZ_JSON_STRING || sub->u.str.len == 0) {
    lmz__errmsg_printf(why, "sub missing, empty or not a string");
    return LMZ_JWT_ESUBJECT;
  }
  const lmz_json *iat = lmz_json_get(p, "iat");
  c->payload = p;
  c->sub = sub->u.str.p;
  c->sub_len = sub->u.str.len;
  c->iss = json_str(iss);
  c->aud = json_str(aud);
  c->jti = json_str(lmz_json_get(p, "jti"));
  c->exp = exp->u.num;
  c->iat = iat && iat->type == LMZ_JSON_NUMBER ? iat->u.num : 0;
  c->email_verified = truthy(lmz_json_get(p, "emailVerified"));
  c->admin_approved = truthy(lmz_json_get(p, "adminApproved"));
  c->is_admin = truthy(lmz_json_get(p, "isAdmin"));
  c->act = lmz_json_get(p, "act");
  return LMZ_JWT_OK;
}

int lmz_jwt_verify(const char *tok, size_t len, const struct lmz_jwt_keyset *ks,
                   const struct lmz_jwt_expect *expect, lmz_arena *a,
                   struct lmz_jwt_claims *out, char *why) {
  memset(out, 0, sizeof *out);
  if (!tok || len == 0 || len > LMZ_JWT_MAX_LEN) {
    lmz__errmsg_printf(why, len ? "token longer than %u bytes" : "empty token",
                       LMZ_JWT_MAX_LEN);
    return LMZ_JWT_EINVALID;
  }
  const char *d1 = memchr(tok, '.', len);
  const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)) : 0;
  const char *end = tok + len;
  if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1))) {
    lmz__errmsg_printf(why, "not three dot-separated segments");
    return LMZ_JWT_EINVALID;
  }
  const char *kid = NULL;
  int st = check_header(tok, (size_t)(d1 - tok), a, &kid, why);
  if (st)
    return st;
  uint8_t sig[SIG_LEN];
  if ((size_t)(end - d2 - 1) != SIG_B64_LEN ||
      b64url_decode(d2 + 1, SIG_B64_LEN, sig, sizeof sig) != SIG_LEN) {
    lmz__errmsg_printf(why, "signature is not 64 bytes of canonical base64url");
    return LMZ_JWT_EINVALID;
  }
  int k = check_signature(tok, (size_t)(d2 - tok), sig, ks, kid);
  if (k < 0) {
    lmz__errmsg_printf(why, "signature does not verify with any of %u keys",
                       ks->n);
    return LMZ_JWT_EINVALID;
  }
  lmz_json *p = NULL;
  st = parse_payload(d1 + 1, (size_t)(d2 - d1 - 1), a, &p, why);
  if (!st)
    st = check_claims(p, expect, out, why);
  if (st) {
    memset(out, 0, sizeof *out);
    return st;
  }
  out->kid = ks->keys[k].kid;
  return LMZ_JWT_OK;
}

int lmz_jwt_gate(const struct lmz_jwt_claims *c) {
  if (c->is_admin || (c->email_verified && c->admin_approved))
    return LMZ_JWT_OK;
  return LMZ_JWT_EDENIED;
}

int lmz_jwt_check_instance(const char *sub, size_t sub_len,
                           const char *instance, size_t instance_len) {
  const char *dot = memchr(instance, '.', instance_len);
  if (!dot)
    return LMZ_JWT_EINSTANCE_FORMAT;
  size_t n = (size_t)(dot - instance);
  if (n != sub_len || memcmp(instance, sub, n) != 0)
    return LMZ_JWT_EIDENTITY;
  return LMZ_JWT_OK;
}

bool lmz_jwt_bearer(const char *v, size_t len, const char **tok,
                    size_t *tok_len) {
  /* split(' ') must give exactly two parts: one space, not at either end */
  const char *sp = v ? memchr(v, ' ', len) : NULL;
  if (!sp || sp == v || sp + 1 == v + len ||
      memchr(sp + 1, ' ', len - (size_t)(sp + 1 - v)))
    return false;
  if (sp - v != 6 || strncasecmp(v, "bearer", 6) != 0)
    return false;
  *tok = sp + 1;
  *tok_len = len - 7;
  return true;
}

/* ---- answers ------------------------------------------------------------- */

#define INVALID_TOKEN_JSON(d)                                                  \
  "{\"error\":\"invalid_token\",\"error_description\":\"" d "\"}"
#define WWW_AUTH(e, d)                                                         \
  "Bearer realm=\"Lumenize\", error=\"" e "\", error_description=\"" d "\""
#define JSON "application/json"
#define TEXT "text/plain;charset=UTF-8"

static const struct {
  const char *name;
  struct lmz_jwt_answer a;
} answers[] = {
    [LMZ_JWT_OK] = {"ok", {0, NULL, NULL, NULL}},
    [LMZ_JWT_EINVALID] = {"invalid_token",
                          {401, JSON,
                           INVALID_TOKEN_JSON("Token is invalid or expired"),
                           WWW_AUTH("invalid_token",
                                    "Token is invalid or expired")}},
    [LMZ_JWT_EEXPIRED] = {"invalid_token (expired)",
                          {401, JSON,
                           INVALID_TOKEN_JSON("Token is invalid or expired"),
                           WWW_AUTH("invalid_token",
                                    "Token is invalid or expired")}},
    [LMZ_JWT_EAUDIENCE] = {"invalid_token (audience)",
                           {401, JSON,
                            INVALID_TOKEN_JSON("Token audience mismatch"),
                            WWW_AUTH("invalid_token",
                                     "Token audience mismatch")}},
    [LMZ_JWT_EISSUER] = {"invalid_token (issuer)",
                         {401, JSON,
                          INVALID_TOKEN_JSON("Token issuer mismatch"),
                          WWW_AUTH("invalid_token", "Token issuer mismatch")}},
    [LMZ_JWT_ESUBJECT] = {"invalid_token (subject)",
                          {401, JSON,
                           INVALID_TOKEN_JSON("Token missing subject claim"),
                           WWW_AUTH("invalid_token",
                                    "Token missing subject claim")}},
    [LMZ_JWT_EDENIED] = {"access_denied",
                         {403, JSON,
                          "{\"error\":\"access_denied\",\"error_description\":"
                          "\"Account not yet approved\"}",
                          NULL}},
    [LMZ_JWT_EMISSING_WS] = {"missing_token",
                             {401, TEXT,
                              "Unauthorized: Missing access token in "
                              "WebSocket subprotocol",
                              NULL}},
    [LMZ_JWT_EMISSING_BEARER] =
        {"invalid_request",
         {401, JSON,
          "{\"error\":\"invalid_request\",\"error_description\":\"Missing "
          "Authorization header with Bearer token\"}",
          WWW_AUTH("invalid_request",
                   "Missing Authorization header with Bearer token")}},
    [LMZ_JWT_ERATE] = {"rate_limited",
                       {429, JSON,
                        "{\"error\":\"rate_limited\",\"error_description\":"
                        "\"Too many requests. Please try again later.\"}",
                        NULL}},
    [LMZ_JWT_ENOUPGRADE] = {"no_upgrade",
                            {426, TEXT, "Expected WebSocket upgrade", NULL}},
    [LMZ_JWT_EINSTANCE_FORMAT] = {"instance_format",
                                  {403, TEXT,
                                   "Forbidden: invalid instance name format "
                                   "(expected sub.tabId)",
                                   NULL}},
    [LMZ_JWT_EIDENTITY] = {"identity_mismatch",
                           {403, TEXT, "Forbidden: identity mismatch", NULL}},
    [LMZ_JWT_EINTERNAL] = {"server_error",
                           {500, JSON,
                            "{\"error\":\"server_error\",\"error_description\":"
                            "\"Internal error\"}",
                            NULL}},
};

void lmz_jwt_answer(int status, struct lmz_jwt_answer *out) {
  if (status < 0 || (size_t)status >= LMZ_ARRAY_SIZE(answers))
    status = LMZ_JWT_EINTERNAL;
  *out = answers[status].a;
}

const char *lmz_jwt_status_name(int status) {
  if (status < 0 || (size_t)status >= LMZ_ARRAY_SIZE(answers))
    return "unknown";
  return answers[status].name;
}

/* ---- mint ---------------------------------------------------------------- */

static int append_b64url(lmz_buf *out, const void *bin, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, B64V); /* includes the NUL */
  int rv = lmz_buf_reserve(out, cap);
  if (rv)
    return rv;
  sodium_bin2base64((char *)out->data + out->len, cap, bin, n, B64V);
  out->len += cap - 1;
  return 0;
}

int lmz_jwt_mint(const struct lmz_jwt_keyset *ks, const char *kid,
                 const char *payload_json, size_t len, lmz_buf *out) {
  int k = kid ? lmz_jwt_keyset_find(ks, kid) : (int)ks->primary;
  if (k < 0 || (unsigned)k >= ks->n)
    return LMZ_ENOTFOUND;
  const struct lmz_jwt_key *key = &ks->keys[k];
  if (!key->has_sk)
    return LMZ_EACCESS;
  if (len > LMZ_JWT_MAX_LEN) /* payload alone; the total is checked below */
    return LMZ_ETOOBIG;
  char hdr[96];
  int hn = snprintf(hdr, sizeof hdr,
                    "{\"alg\":\"EdDSA\",\"typ\":\"JWT\","
                    "\"kid\":\"%s\"}",
                    key->kid);
  size_t start = out->len;
  int rv = append_b64url(out, hdr, (size_t)hn);
  if (!rv)
    rv = lmz_buf_putc(out, '.');
  if (!rv)
    rv = append_b64url(out, payload_json, len);
  uint8_t sig[SIG_LEN];
  if (!rv) {
    crypto_sign_detached(sig, NULL, out->data + start, out->len - start,
                         key->sk);
    rv = lmz_buf_putc(out, '.');
  }
  if (!rv)
    rv = append_b64url(out, sig, sizeof sig);
  if (!rv && out->len - start > LMZ_JWT_MAX_LEN)
    rv = LMZ_ETOOBIG;
  if (rv)
    out->len = start;
  return rv;
}

static const char *const registered[] = {"iss", "aud", "sub",
                                         "exp", "iat", "jti"};

static bool is_registered(const char *k) {
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(registered); i++)
    if (!strcmp(k, registered[i]))
      return true;
  return false;
}

static void uuid_v4(char out[37]) {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, b, sizeof b);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
           hex + 16, hex + 20);
}

/* Appends `"key":` (with a leading comma unless first). */
static int put_key(lmz_buf *b, bool *first, const char *k, size_t klen) {
  int rv = *first ? 0 : lmz_buf_putc(b, ',');
  *first = false;
  if (!rv)
    rv = lmz_json_write_string(b, k, klen);
  return rv ? rv : lmz_buf_putc(b, ':');
}

/* The extra claims (last duplicate wins, registered names skipped) and the
 * default flags they do not override. */
static int put_extra(lmz_buf *b, const lmz_json *x, bool flags, bool *first) {
  static const char *const defaults[] = {"emailVerified", "adminApproved"};
  int rv = 0;
  for (size_t i = 0; flags && !rv && i < LMZ_ARRAY_SIZE(defaults); i++) {
    if (x && lmz_json_get(x, defaults[i]))
      continue;
    rv = put_key(b, first, defaults[i], strlen(defaults[i]));
    if (!rv)
      rv = lmz_buf_append_str(b, "true");
  }
  for (uint32_t i = 0; x && !rv && i < x->n; i++) {
    const struct lmz_json_member *m = &x->u.members[i];
    if (is_registered(m->key) || lmz_json_get(x, m->key) != m->val)
      continue;
    rv = put_key(b, first, m->key, m->klen);
    if (!rv)
      rv = lmz_json_write(b, m->val);
  }
  return rv;
}

static int put_registered(lmz_buf *b, const struct lmz_jwt_claims_opts *o,
                          bool *first) {
  const char *sv[3] = {o->iss ? o->iss : LMZ_JWT_DEFAULT_ISS,
                       o->aud ? o->aud : LMZ_JWT_DEFAULT_AUD, o->sub};
  int rv = 0;
  for (int i = 0; i < 3 && !rv; i++) {
    rv = put_key(b, first, registered[i], 3);
    if (!rv)
      rv = lmz_json_write_string(b, sv[i], strlen(sv[i]));
  }
  char uuid[37];
  uuid_v4(uuid);
  if (!rv)
    rv = lmz_buf_printf(b, ",\"exp\":%lld,\"iat\":%lld,\"jti\":\"%s\"",
                        (long long)(o->now_s + o->ttl_s), (long long)o->now_s,
                        uuid);
  return rv;
}

int lmz_jwt_build_claims(const struct lmz_jwt_claims_opts *o, lmz_buf *out,
                         char *why) {
  if (!o->sub || !*o->sub) {
    lmz__errmsg_printf(why, "sub is required");
    return LMZ_EINVAL;
  }
  lmz_arena *a = NULL;
  lmz_json *x = NULL;
  if (o->extra_json) {
    if (!(a = lmz_arena_new()))
      return LMZ_ENOMEM;
    struct lmz_codec_error err;
    /* depth 31: inside the payload object it nests <= 32, what verify
     * accepts */
    struct lmz_json_opts jo = {.max_depth = 31, .max_len = LMZ_JWT_MAX_LEN};
    int rv =
        lmz_json_parse(a, o->extra_json, strlen(o->extra_json), &jo, &x, &err);
    if (rv || x->type != LMZ_JSON_OBJECT) {
      lmz__errmsg_printf(why, "claims: %s", rv ? err.msg : "not a JSON object");
      lmz_arena_free(a);
      return rv == LMZ_ENOMEM ? LMZ_ENOMEM : LMZ_EINVAL;
    }
  }
  size_t start = out->len;
  bool first = true;
  int rv = lmz_buf_putc(out, '{');
  if (!rv)
    rv = put_extra(out, x, !o->no_default_flags, &first);
  if (!rv)
    rv = put_registered(out, o, &first);
  if (!rv)
    rv = lmz_buf_putc(out, '}');
  if (rv)
    out->len = start;
  lmz_arena_free(a);
  return rv;
}
