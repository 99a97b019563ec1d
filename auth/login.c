/* auth/login.c - the login endpoints (lumenize-behaviour 5.5): requesting a
 * magic link, following it, accepting an invite, refreshing and logging out.
 *
 * Failure modes and answers (the original's, plus lmz's additions marked +):
 *  1. POST /email-magic-link: bad JSON or email -> 400 invalid_request;
 *     + over the per-IP or per-address bucket -> 429 rate_limited with
 *     Retry-After (the same for every address: nothing about its
 *     existence leaks); a mail failure is only logged (200 regardless);
 *  2. GET /magic-link: no token -> 400; unknown -> 302 ?error=invalid_token;
 *     used -> token_used; expired -> token_expired; + a client presenting
 *     bad tokens past the per-IP bucket -> 429;
 *  3. POST /refresh-token: no or unknown cookie, subject gone -> 401
 *     invalid_token; revoked family -> 401 token_revoked; expired -> 401
 *     token_expired; + a rotated token presented again -> its whole family
 *     is revoked, 401 token_revoked (logged as a security event), unless
 *     within reuse_grace_s of its rotation (concurrent tabs: answered);
 *  4. POST /logout: always 200; a valid cookie's family is revoked. */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

static int too_many(struct areq *r, uint32_t retry_s) {
  char v[16];
  snprintf(v, sizeof v, "%u", retry_s);
  int rv = lmz__auth_error(r, 429, "rate_limited", "Too many requests");
  return rv ? rv : lmz_response_header(r->ctx, r->res, "Retry-After", v);
}

/* ---- POST /email-magic-link ---------------------------------------------- */

static int send_magic_link(struct areq *r, const char *email, const char **url) {
  struct tok t;
  lmz__auth_tok_new(r, TOK_MAGIC, &t);
  lmz_value *rec = lmz__auth_tok_record(r, &t, r->now_ms + 1000.0 * r->auth->cfg.magic_link_ttl_s);
  if (!rec || lmz_object_setc(rec, "email", lmz_cstring(r->a, email)) ||
      lmz_object_setc(rec, "used", lmz_bool(false)) || lmz_kv_put(r->ctx, t.key, rec))
    return LMZ_ENOMEM;
  char path[128];
  snprintf(path, sizeof path, "/magic-link?one_time_token=%s", t.text);
  if (!(*url = lmz__auth_url(r, path)))
    return LMZ_ENOMEM;
  if (!lmz__auth_test_request(r))
    lmz__auth_mail(r, LMZ_AUTH_MAIL_MAGIC_LINK, email, *url, email);
  return 0;
}

int lmz__auth_magic_request(struct areq *r) {
  uint32_t wait = lmz_auth_limiter_take(&r->auth->per_ip, r->ip, strlen(r->ip), r->now_ms);
  if (wait)
    return too_many(r, wait);
  const lmz_json *body = lmz__auth_body(r);
  if (!body)
    return 0;
  const lmz_json *e = lmz_json_get(body, "email");
  char email[LMZ_MAIL_ADDR_MAX + 1];
  if (!e || e->type != LMZ_JSON_STRING ||
      lmz_auth_email_normalize(e->u.str.p, e->u.str.len, email, sizeof email))
    return lmz__auth_error(r, 400, "invalid_request", "Valid email address required");
  if ((wait = lmz_auth_limiter_take(&r->auth->per_addr, email, strlen(email), r->now_ms)))
    return too_many(r, wait);
  const char *url = NULL;
  int rv = send_magic_link(r, email, &url);
  if (rv)
    return rv;
  lmz_buf b = LMZ_BUF_INIT;
  if (lmz__auth_test_request(r)) {
    lmz_buf_append_str(&b, "{\"message\":\"Magic link generated (test mode)\",\"magic_link\":");
    lmz_json_write_string(&b, url, strlen(url));
    lmz_buf_printf(&b, ",\"expires_in\":%u}", r->auth->cfg.magic_link_ttl_s);
  } else {
    lmz_buf_printf(&b, "{\"message\":\"Check your email for the magic link\","
                       "\"expires_in\":%u}", r->auth->cfg.magic_link_ttl_s);
  }
  return lmz__auth_json(r, 200, &b);
}

/* ---- logging a subject in ------------------------------------------------ */

/* Finds or creates the subject of `email`, applies the login's flags,
 * starts a token family, sets the cookie and redirects. */
static int login(struct areq *r, const char *email, bool create) {
  lmz_value *s = lmz__auth_subject_by_email(r, email);
  if (!s && create)
    s = lmz__auth_subject_create(r, email);
  if (!s)
    return create ? LMZ_ENOMEM : lmz__auth_redirect(r, "invalid_token");
  lmz__auth_login_flags(r, s);
  struct tok t;
  int rv = lmz__auth_subject_save(r, s);
  if (!rv)
    rv = lmz__auth_refresh_issue(r, lmz__auth_sget(s, "sub"), NULL, &t);
  if (!rv)
    rv = lmz__auth_set_cookie(r, t.text);
  if (!rv)
    rv = lmz__auth_redirect(r, NULL);
  LMZ_LOG_DEBUG(&lmz__auth_log, "auth.LumenizeAuth.login.success %s",
                lmz__auth_sget(s, "sub"));
  return rv;
}

/* A token from the query: NULL and a 400 answered when absent; `*limited`
 * set (and 429 answered) when this client guessed too often. */
static const char *query_token(struct areq *r, const char *name, int *rv) {
  const char *tok = lmz__auth_param(r, name);
  if (!tok) {
    char msg[64];
    snprintf(msg, sizeof msg, "Missing %s", name);
    *rv = lmz__auth_error(r, 400, "invalid_request", msg);
  }
  return tok;
}

/* A bad token presented: counts against the client's IP (token guessing).
 * Returns true (and answers 429) when over the limit. */
static bool guessing(struct areq *r, int *rv) {
  uint32_t wait = lmz_auth_limiter_take(&r->auth->bad_token_ip, r->ip,
                                        strlen(r->ip), r->now_ms);
  if (wait)
    *rv = too_many(r, wait);
  return wait != 0;
}

int lmz__auth_magic_click(struct areq *r) {
  int rv = 0;
  const char *text = query_token(r, "one_time_token", &rv);
  if (!text)
    return rv;
  struct tok t;
  lmz_value *rec = lmz__auth_tok_find(r, TOK_MAGIC, text, strlen(text), &t);
  if (!rec)
    return guessing(r, &rv) ? rv : lmz__auth_redirect(r, "invalid_token");
  if (lmz__auth_flag(rec, "used")) {
    LMZ_LOG_WARN(&lmz__auth_log, "auth.LumenizeAuth.login.replay magic link used twice");
    return lmz__auth_redirect(r, "token_used");
  }
  if (lmz_get_number(lmz_object_getc(rec, "expiresAt")) < r->now_ms)
    return lmz__auth_redirect(r, "token_expired");
  lmz_object_setc(rec, "used", lmz_bool(true)); /* kept until expiry: "token_used" */
  if ((rv = lmz_kv_put(r->ctx, t.key, rec)))
    return rv;
  return login(r, lmz__auth_sget(rec, "email"), true);
}

int lmz__auth_accept_invite(struct areq *r) {
  int rv = 0;
  const char *text = query_token(r, "invite_token", &rv);
  if (!text)
    return rv;
  struct tok t;
  lmz_value *rec = lmz__auth_tok_find(r, TOK_INVITE, text, strlen(text), &t);
  if (!rec)
    return guessing(r, &rv) ? rv : lmz__auth_redirect(r, "invalid_token");
  if (lmz_get_number(lmz_object_getc(rec, "expiresAt")) < r->now_ms)
    return lmz__auth_redirect(r, "token_expired");
  return login(r, lmz__auth_sget(rec, "email"), true); /* reusable until expiry */
}

/* ---- POST /refresh-token, POST /logout ----------------------------------- */

/* The refresh-token cookie's record, or NULL. */
lmz_value *lmz__auth_cookie_token(struct areq *r, struct tok *t) {
  const char *c = lmz_request_header(r->req, "Cookie");
  const char *v;
  size_t n;
  if (!c || !lmz_auth_cookie_get(c, strlen(c), LMZ_AUTH_COOKIE, &v, &n))
    return NULL;
  return lmz__auth_tok_find(r, TOK_REFRESH, v, n, t);
}

lmz_value *lmz__auth_family(struct areq *r, const lmz_value *rec) {
  char key[64];
  const char *fam = lmz__auth_sget(rec, "fam");
  snprintf(key, sizeof key, "f:%.40s", fam ? fam : "");
  return lmz_kv_get(r->ctx, key);
}

/* A rotated token again within the grace period: two tabs refreshed with
 * the same cookie at once (the browser shares it); both get a token. */
static bool concurrent(struct areq *r, const lmz_value *rec) {
  lmz_value *at = lmz_object_getc(rec, "rotatedAt");
  return at && r->auth->cfg.reuse_grace_s > 0 &&
         r->now_ms - lmz_get_number(at) <= 1000.0 * r->auth->cfg.reuse_grace_s;
}

int lmz__auth_refresh(struct areq *r) {
  struct tok t;
  int rv = 0;
  lmz_value *rec = lmz__auth_cookie_token(r, &t);
  if (!rec)
    return lmz_request_header(r->req, "Cookie") && guessing(r, &rv)
               ? rv
               : lmz__auth_error(r, 401, "invalid_token", "Invalid refresh token");
  lmz_value *fam = lmz__auth_family(r, rec);
  if (!fam || lmz__auth_flag(fam, "revoked"))
    return lmz__auth_error(r, 401, "token_revoked", "Refresh token has been revoked");
  if (lmz__auth_flag(rec, "rotated") && !concurrent(r, rec)) {
    /* reuse: someone else holds a token of this family */
    LMZ_LOG_WARN(&lmz__auth_log, "auth.LumenizeAuth.token.reuse refresh token of "
                 "subject %s presented after rotation: family revoked",
                 lmz__auth_sget(rec, "sub"));
    rv = lmz__auth_family_revoke(r, lmz__auth_sget(rec, "fam"));
    return rv ? rv : lmz__auth_error(r, 401, "token_revoked", "Refresh token has been revoked");
  }
  if (lmz_get_number(lmz_object_getc(rec, "expiresAt")) < r->now_ms)
    return lmz__auth_error(r, 401, "token_expired", "Refresh token has expired");
  lmz_value *s = lmz__auth_subject(r, lmz__auth_sget(rec, "sub"));
  if (!s)
    return lmz__auth_error(r, 401, "invalid_token", "Invalid refresh token");
  if (!lmz__auth_flag(rec, "rotated")) { /* kept: reuse detection */
    lmz_object_setc(rec, "rotated", lmz_bool(true));
    lmz_object_setc(rec, "rotatedAt", lmz_number(r->a, r->now_ms));
  }
  struct tok next;
  lmz_buf jwt = LMZ_BUF_INIT, b = LMZ_BUF_INIT;
  if ((rv = lmz_kv_put(r->ctx, t.key, rec)) ||
      (rv = lmz__auth_refresh_issue(r, lmz__auth_sget(s, "sub"),
                                    lmz__auth_sget(rec, "fam"), &next)) ||
      (rv = lmz__auth_mint(r, s, NULL, &jwt)) ||
      (rv = lmz__auth_set_cookie(r, next.text))) {
    lmz_buf_free(&jwt);
    return rv;
  }
  const char *sub = lmz__auth_sget(s, "sub");
  lmz_buf_append_str(&b, "{\"access_token\":");
  lmz_json_write_string(&b, (const char *)jwt.data, jwt.len);
  lmz_buf_printf(&b, ",\"token_type\":\"Bearer\",\"expires_in\":%u,\"sub\":",
                 r->auth->cfg.access_ttl_s);
  lmz_json_write_string(&b, sub, strlen(sub));
  lmz_buf_putc(&b, '}');
  lmz_buf_free(&jwt);
  return lmz__auth_json(r, 200, &b);
}

int lmz__auth_logout(struct areq *r) {
  struct tok t;
  lmz_value *rec = lmz__auth_cookie_token(r, &t);
  int rv = rec ? lmz__auth_family_revoke(r, lmz__auth_sget(rec, "fam")) : 0;
  if (!rv)
    rv = lmz__auth_set_cookie(r, NULL);
  if (rv)
    return rv;
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append_str(&b, "{\"message\":\"Logged out\"}");
  return lmz__auth_json(r, 200, &b);
}
