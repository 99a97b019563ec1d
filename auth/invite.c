/* auth/invite.c - invitations, approval, delegation and the test-mode
 * helper (lumenize-behaviour 5.5).
 *
 * Failure modes: see admin.c for the caller checks; an invalid address in
 * an invite list goes to "errors" while the others are processed; more
 * than MAX_INVITES addresses -> 400; a delegation for an unknown principal
 * -> 404, by a caller neither admin nor granted -> 403. */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

#define MAX_INVITES 100

/* One address of POST /invite: the link (or "(already verified)") goes to
 * `links`. Returns 0 or a storage/memory error. */
static int invite_one(struct areq *r, const char *email, lmz_buf *links, bool test) {
  lmz_value *s = lmz__auth_subject_by_email(r, email);
  bool verified = s && lmz__auth_flag(s, "emailVerified");
  if (!s && !(s = lmz__auth_subject_create(r, email)))
    return LMZ_ENOMEM;
  lmz__auth_set_flag(r, s, "adminApproved", true);
  int rv = lmz__auth_subject_save(r, s);
  if (rv)
    return rv;
  const char *url = NULL;
  if (verified) {
    url = "(already verified)";
    if (!test)
      lmz__auth_mail(r, LMZ_AUTH_MAIL_INVITE_EXISTING, email, lmz__auth_url(r, ""), email);
  } else {
    struct tok t;
    lmz__auth_tok_new(r, TOK_INVITE, &t);
    lmz_value *rec = lmz__auth_tok_record(r, &t, r->now_ms + 1000.0 * r->auth->cfg.invite_ttl_s);
    char path[128];
    snprintf(path, sizeof path, "/accept-invite?invite_token=%s", t.text);
    if (!rec || lmz_object_setc(rec, "email", lmz_cstring(r->a, email)) ||
        (rv = lmz_kv_put(r->ctx, t.key, rec)) || !(url = lmz__auth_url(r, path)))
      return rv ? rv : LMZ_ENOMEM;
    if (!test)
      lmz__auth_mail(r, LMZ_AUTH_MAIL_INVITE_NEW, email, url, email);
  }
  if (links->len > 1)
    lmz_buf_putc(links, ',');
  lmz_json_write_string(links, email, strlen(email));
  lmz_buf_putc(links, ':');
  lmz_json_write_string(links, url, strlen(url));
  return 0;
}

int lmz__auth_invite(struct areq *r) {
  struct caller c;
  int rv = 0;
  const lmz_json *body;
  if (!lmz__auth_admin(r, &c, &rv) || !(body = lmz__auth_body(r)))
    return rv;
  const lmz_json *list = lmz_json_get(body, "emails");
  if (!list || list->type != LMZ_JSON_ARRAY || list->n > MAX_INVITES)
    return lmz__auth_error(r, 400, "invalid_request", "emails must be an array of up to 100 addresses");
  bool test = lmz__auth_test_request(r);
  lmz_buf inv = LMZ_BUF_INIT, errs = LMZ_BUF_INIT, links = LMZ_BUF_INIT;
  lmz_buf_putc(&links, '{');
  for (uint32_t i = 0; !rv && i < list->n; i++) {
    const lmz_json *e = list->u.items[i];
    char email[LMZ_MAIL_ADDR_MAX + 1];
    if (e->type != LMZ_JSON_STRING ||
        lmz_auth_email_normalize(e->u.str.p, e->u.str.len, email, sizeof email)) {
      lmz_buf_append_str(&errs, errs.len ? ",{\"email\":" : "{\"email\":");
      if (e->type == LMZ_JSON_STRING)
        lmz_json_write_string(&errs, e->u.str.p, e->u.str.len);
      else
        lmz_buf_append_str(&errs, "null");
      lmz_buf_append_str(&errs, ",\"error\":\"Invalid email address\"}");
      continue;
    }
    if (!(rv = invite_one(r, email, &links, test))) {
      lmz_buf_append_str(&inv, inv.len ? "," : "");
      lmz_json_write_string(&inv, email, strlen(email));
    }
  }
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_printf(&b, "{\"invited\":[%.*s],\"errors\":[%.*s]", (int)inv.len,
                 inv.data ? (const char *)inv.data : "", (int)errs.len,
                 errs.data ? (const char *)errs.data : "");
  if (test)
    lmz_buf_printf(&b, ",\"links\":%.*s}", (int)links.len, (const char *)links.data);
  lmz_buf_putc(&b, '}');
  lmz_buf_free(&inv);
  lmz_buf_free(&errs);
  lmz_buf_free(&links);
  if (rv)
    lmz_buf_free(&b);
  return rv ? rv : lmz__auth_json(r, 200, &b);
}

/* GET /approve/:id: an admin's click in the admin-notification mail. */
int lmz__auth_approve(struct areq *r) {
  struct caller c;
  int rv = 0;
  if (!lmz_request_header(r->req, "Authorization") && !lmz__auth_cookie_token(r, &(struct tok){0}))
    return lmz__auth_redirect(r, "login_required");
  if (!lmz__auth_admin(r, &c, &rv))
    return rv;
  lmz_value *s = lmz__auth_subject(r, lmz__auth_seg(r, 1));
  if (!s)
    return lmz__auth_error(r, 404, "not_found", "Subject not found");
  bool was = lmz__auth_flag(s, "adminApproved");
  lmz__auth_set_flag(r, s, "adminApproved", true);
  if ((rv = lmz__auth_subject_save(r, s)))
    return rv;
  if (!was)
    lmz__auth_mail(r, LMZ_AUTH_MAIL_APPROVAL_CONFIRMATION, lmz__auth_sget(s, "email"),
                   r->auth->cfg.public_url ? r->auth->cfg.public_url : lmz__auth_url(r, ""),
                   lmz__auth_sget(s, "email"));
  return lmz__auth_redirect(r, NULL);
}

/* POST /delegated-token {actFor}: an access token for the principal with
 * act = {sub: caller[, act: the caller's own act]} (RFC 8693 §4.1). */
int lmz__auth_delegated(struct areq *r) {
  struct caller c;
  int rv = 0;
  const lmz_json *body;
  if (!lmz__auth_authenticate(r, &c, &rv) || !(body = lmz__auth_body(r)))
    return rv;
  const lmz_json *af = lmz_json_get(body, "actFor");
  if (!af || af->type != LMZ_JSON_STRING || !af->u.str.len)
    return lmz__auth_error(r, 400, "invalid_request", "actFor is required");
  lmz_value *p = lmz__auth_subject(r, af->u.str.p);
  if (!p)
    return lmz__auth_error(r, 404, "not_found", "Principal not found");
  char key[800];
  snprintf(key, sizeof key, "a:%s:%s", af->u.str.p, c.sub);
  if (!lmz__auth_flag(c.s, "isAdmin") && !lmz_kv_get(r->ctx, key))
    return lmz__auth_error(r, 403, "forbidden", "Not authorized to act for this subject");
  lmz_buf act = LMZ_BUF_INIT, jwt = LMZ_BUF_INIT, b = LMZ_BUF_INIT;
  lmz_buf_append_str(&act, "{\"sub\":");
  lmz_json_write_string(&act, c.sub, strlen(c.sub));
  if (c.act) {
    lmz_buf_append_str(&act, ",\"act\":");
    lmz_json_write(&act, c.act);
  }
  lmz_buf_append_str(&act, "}");
  lmz_buf_putc(&act, '\0');
  rv = act.data ? lmz__auth_mint(r, p, (const char *)act.data, &jwt) : LMZ_ENOMEM;
  lmz_buf_free(&act);
  if (rv) {
    lmz_buf_free(&jwt);
    return rv;
  }
  lmz_buf_append_str(&b, "{\"access_token\":");
  lmz_json_write_string(&b, (const char *)jwt.data, jwt.len);
  lmz_buf_printf(&b, ",\"token_type\":\"Bearer\",\"expires_in\":%u}", r->auth->cfg.access_ttl_s);
  lmz_buf_free(&jwt);
  LMZ_LOG_DEBUG(&lmz__auth_log, "auth.LumenizeAuth.actor.delegated %s acts for %s",
                c.sub, af->u.str.p);
  return lmz__auth_json(r, 200, &b);
}

/* POST /test/set-subject-data (test mode only). */
int lmz__auth_test_set(struct areq *r) {
  if (!r->auth->cfg.test_mode)
    return lmz__auth_error(r, 403, "forbidden", "Test mode is not enabled");
  const lmz_json *body = lmz__auth_body(r);
  if (!body)
    return 0;
  const lmz_json *e = lmz_json_get(body, "email");
  char email[LMZ_MAIL_ADDR_MAX + 1];
  lmz_value *s = NULL;
  if (!e || e->type != LMZ_JSON_STRING ||
      lmz_auth_email_normalize(e->u.str.p, e->u.str.len, email, sizeof email) ||
      !(s = lmz__auth_subject_by_email(r, email)))
    return lmz__auth_error(r, 404, "not_found", "Subject not found");
  static const char *const flags[] = {"adminApproved", "isAdmin"};
  for (size_t i = 0; i < 2; i++) {
    const lmz_json *f = lmz_json_get(body, flags[i]);
    if (f && (f->type == LMZ_JSON_TRUE || f->type == LMZ_JSON_FALSE))
      lmz__auth_set_flag(r, s, flags[i], f->type == LMZ_JSON_TRUE);
  }
  int rv = lmz__auth_subject_save(r, s);
  if (!rv)
    r->res->status = 204;
  return rv;
}
