/* auth/tokens.c - the service's secrets: one-time and refresh tokens
 * (random, stored only as keyed hashes), token families, and access-token
 * minting.
 *
 * A token is 32 bytes from randombytes_buf, sent as 43 base64url
 * characters. Its storage key is "<kind>:" + hex of the first 16 bytes of
 * BLAKE2b-256(token, key = the service's hash key); the record keeps all 32
 * hash bytes, compared with sodium_memcmp, so neither a storage leak (no
 * token text, no hash key) nor a timing probe of the comparison finds a
 * token. A presented text that is not exactly a canonical 43-character
 * token is refused before any lookup.
 *
 * Families (reuse detection): a login starts a family f:<uuid>; each
 * rotation marks the presented token "rotated" and issues the next one in
 * the same family. Presenting a rotated token means two parties hold the
 * family's tokens: the whole family is revoked (RFC 6819 §5.2.2.3). */
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

void lmz__auth_uuid(char out[37]) {
  uint8_t b[16];
  randombytes_buf(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* RFC 9562 version 4 */
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
           b[11], b[12], b[13], b[14], b[15]);
}

static void tok_key(const lmz_auth_t *au, enum tok_kind kind,
                    const uint8_t raw[LMZ_AUTH_TOKEN_BYTES], struct tok *t) {
  crypto_generichash(t->hash, sizeof t->hash, raw, LMZ_AUTH_TOKEN_BYTES,
                     au->hash_key, sizeof au->hash_key);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, t->hash, 16);
  snprintf(t->key, sizeof t->key, "%c:%s", (char)kind, hex);
}

int lmz__auth_tok_new(struct areq *r, enum tok_kind kind, struct tok *t) {
  uint8_t raw[LMZ_AUTH_TOKEN_BYTES];
  randombytes_buf(raw, sizeof raw);
  lmz_auth_token_encode(raw, t->text);
  tok_key(r->auth, kind, raw, t);
  sodium_memzero(raw, sizeof raw);
  return 0;
}

lmz_value *lmz__auth_tok_find(struct areq *r, enum tok_kind kind,
                              const char *text, size_t len, struct tok *t) {
  uint8_t raw[LMZ_AUTH_TOKEN_BYTES];
  if (!text || lmz_auth_token_decode(text, len, raw))
    return NULL;
  tok_key(r->auth, kind, raw, t);
  sodium_memzero(raw, sizeof raw);
  lmz_value *rec = lmz_kv_get(r->ctx, t->key);
  lmz_value *h = rec ? lmz_object_getc(rec, "h") : NULL;
  if (!h || lmz_typeof(h) != LMZ_T_ARRAYBUFFER || lmz_len(h) != sizeof t->hash ||
      sodium_memcmp(lmz_arraybuffer_data(h), t->hash, sizeof t->hash))
    return NULL;
  return rec;
}

lmz_value *lmz__auth_tok_record(struct areq *r, const struct tok *t,
                                double expires_at) {
  lmz_value *o = lmz_object(r->a);
  if (!o || lmz_object_setc(o, "h", lmz_arraybuffer(r->a, t->hash, sizeof t->hash)) ||
      lmz_object_setc(o, "expiresAt", lmz_number(r->a, expires_at)))
    return NULL;
  return o;
}

/* Creates or extends family `fam`: its expiresAt follows its newest token,
 * so an expired family (swept by on_start) has no live token left. */
static int family_touch(struct areq *r, const char *sub, const char *fam, bool fresh,
                        double exp) {
  char key[400];
  lmz_arena *a = r->a;
  snprintf(key, sizeof key, "f:%s", fam);
  lmz_value *f = fresh ? lmz_object(a) : lmz_kv_get(r->ctx, key);
  if (!f || lmz_typeof(f) != LMZ_T_OBJECT)
    return fresh ? LMZ_ENOMEM : 0; /* swept meanwhile: nothing to extend */
  if (fresh && (lmz_object_setc(f, "sub", lmz_cstring(a, sub)) ||
                lmz_object_setc(f, "revoked", lmz_bool(false))))
    return LMZ_ENOMEM;
  if (lmz_object_setc(f, "expiresAt", lmz_number(a, exp)))
    return LMZ_ENOMEM;
  int rv = lmz_kv_put(r->ctx, key, f);
  if (!rv && fresh) { /* indexed under its subject, to revoke them all */
    snprintf(key, sizeof key, "F:%s:%s", sub, fam);
    rv = lmz_kv_put(r->ctx, key, lmz_bool(true));
  }
  return rv;
}

int lmz__auth_refresh_issue(struct areq *r, const char *sub, const char *fam,
                            struct tok *t) {
  char fid[37];
  lmz_arena *a = r->a;
  bool fresh = !fam; /* a new login: a new family */
  if (fresh) {
    lmz__auth_uuid(fid);
    fam = fid;
  }
  double exp = r->now_ms + 1000.0 * r->auth->cfg.refresh_ttl_s;
  int rv = family_touch(r, sub, fam, fresh, exp);
  if (rv)
    return rv;
  lmz__auth_tok_new(r, TOK_REFRESH, t);
  lmz_value *rec = lmz__auth_tok_record(r, t, exp);
  if (!rec || lmz_object_setc(rec, "sub", lmz_cstring(a, sub)) ||
      lmz_object_setc(rec, "fam", lmz_cstring(a, fam)) ||
      lmz_object_setc(rec, "rotated", lmz_bool(false)))
    return LMZ_ENOMEM;
  return lmz_kv_put(r->ctx, t->key, rec);
}

int lmz__auth_family_revoke(struct areq *r, const char *fam) {
  char key[64];
  snprintf(key, sizeof key, "f:%.40s", fam);
  lmz_value *f = lmz_kv_get(r->ctx, key);
  if (!f)
    return 0;
  lmz_object_setc(f, "revoked", lmz_bool(true));
  return lmz_kv_put(r->ctx, key, f);
}

int lmz__auth_revoke_subject(struct areq *r, const char *sub) {
  char prefix[400];
  snprintf(prefix, sizeof prefix, "F:%s:", sub);
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = prefix};
  int rv = lmz_kv_list(r->ctx, &o, &map);
  for (size_t i = 0; !rv && i < lmz_len(map); i++) {
    const char *k = lmz_get_str(lmz_map_key(map, i), NULL);
    rv = lmz__auth_family_revoke(r, k + strlen(prefix));
  }
  return rv;
}

int lmz__auth_mint(struct areq *r, const lmz_value *s, const char *act,
                   lmz_buf *out) {
  const struct lmz_auth_config *c = &r->auth->cfg;
  lmz_buf extra = LMZ_BUF_INIT;
  lmz_buf_printf(&extra, "{\"emailVerified\":%s,\"adminApproved\":%s%s%s%s}",
                 lmz__auth_flag(s, "emailVerified") ? "true" : "false",
                 lmz__auth_flag(s, "adminApproved") ? "true" : "false",
                 lmz__auth_flag(s, "isAdmin") ? ",\"isAdmin\":true" : "",
                 act ? ",\"act\":" : "", act ? act : "");
  lmz_buf_putc(&extra, '\0');
  lmz_buf payload = LMZ_BUF_INIT;
  char why[LMZ_ERRMSG_LEN] = "";
  struct lmz_jwt_claims_opts o = {.iss = c->iss, .aud = c->aud,
                                  .sub = lmz__auth_sget(s, "sub"),
                                  .now_s = (int64_t)(r->now_ms / 1000),
                                  .ttl_s = c->access_ttl_s,
                                  .extra_json = (const char *)extra.data,
                                  .no_default_flags = true};
  int rv = extra.data ? lmz_jwt_build_claims(&o, &payload, why) : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_jwt_mint(&r->auth->ks, NULL, (const char *)payload.data, payload.len, out);
  if (rv)
    LMZ_LOG_WARN(&lmz__auth_log, "mint failed: %s %s", lmz_strerror(rv), why);
  lmz_buf_free(&extra);
  lmz_buf_free(&payload);
  return rv;
}
