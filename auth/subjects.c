/* auth/subjects.c - subject records (lumenize-behaviour 5.3 "Subjects"):
 * load, create, save, flags, their JSON form, and what a login changes
 * (bootstrap promotion, the admins' notification). */
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"

lmz_value *lmz__auth_subject(struct areq *r, const char *sub) {
  char key[400];
  if (!sub || strlen(sub) > 300)
    return NULL;
  snprintf(key, sizeof key, "s:%s", sub);
  lmz_value *s = lmz_kv_get(r->ctx, key);
  return s && lmz_typeof(s) == LMZ_T_OBJECT ? s : NULL;
}

lmz_value *lmz__auth_subject_by_email(struct areq *r, const char *email) {
  char key[300];
  snprintf(key, sizeof key, "e:%s", email);
  lmz_value *sub = lmz_kv_get(r->ctx, key);
  return sub ? lmz__auth_subject(r, lmz_get_str(sub, NULL)) : NULL;
}

bool lmz__auth_flag(const lmz_value *s, const char *name) {
  lmz_value *v = s ? lmz_object_getc(s, name) : NULL;
  return v && lmz_typeof(v) == LMZ_T_BOOL && lmz_get_bool(v);
}

void lmz__auth_set_flag(struct areq *r, lmz_value *s, const char *name, bool v) {
  (void)r;
  lmz_object_setc(s, name, lmz_bool(v));
}

const char *lmz__auth_sget(const lmz_value *s, const char *name) {
  lmz_value *v = s ? lmz_object_getc(s, name) : NULL;
  return v && lmz_typeof(v) == LMZ_T_STRING ? lmz_get_str(v, NULL) : NULL;
}

lmz_value *lmz__auth_subject_create(struct areq *r, const char *email) {
  char sub[37], key[300];
  lmz__auth_uuid(sub);
  lmz_value *s = lmz_object(r->a);
  if (!s || lmz_object_setc(s, "sub", lmz_cstring(r->a, sub)) ||
      lmz_object_setc(s, "email", lmz_cstring(r->a, email)) ||
      lmz_object_setc(s, "emailVerified", lmz_bool(false)) ||
      lmz_object_setc(s, "adminApproved", lmz_bool(r->auth->cfg.auto_approve)) ||
      lmz_object_setc(s, "isAdmin", lmz_bool(false)) ||
      lmz_object_setc(s, "createdAt", lmz_number(r->a, r->now_ms)) ||
      lmz_object_setc(s, "lastLoginAt", lmz_null()))
    return NULL;
  snprintf(key, sizeof key, "e:%s", email);
  if (lmz_kv_put(r->ctx, key, lmz_cstring(r->a, sub)))
    return NULL;
  LMZ_LOG_DEBUG(&lmz__auth_log, "auth.LumenizeAuth.subject.created %s", sub);
  return s;
}

int lmz__auth_subject_save(struct areq *r, lmz_value *s) {
  char key[400];
  snprintf(key, sizeof key, "s:%s", lmz__auth_sget(s, "sub"));
  return lmz_kv_put(r->ctx, key, s);
}

static void write_bool(lmz_buf *b, const char *name, bool v) {
  lmz_buf_printf(b, ",\"%s\":%s", name, v ? "true" : "false");
}

int lmz__auth_subject_json(struct areq *r, const lmz_value *s, lmz_buf *b) {
  const char *sub = lmz__auth_sget(s, "sub"), *email = lmz__auth_sget(s, "email");
  lmz_buf_append_str(b, "{\"sub\":");
  lmz_json_write_string(b, sub ? sub : "", sub ? strlen(sub) : 0);
  lmz_buf_append_str(b, ",\"email\":");
  lmz_json_write_string(b, email ? email : "", email ? strlen(email) : 0);
  write_bool(b, "emailVerified", lmz__auth_flag(s, "emailVerified"));
  write_bool(b, "adminApproved", lmz__auth_flag(s, "adminApproved"));
  write_bool(b, "isAdmin", lmz__auth_flag(s, "isAdmin"));
  lmz_buf_append_str(b, ",\"authorizedActors\":[");
  char prefix[400];
  snprintf(prefix, sizeof prefix, "a:%s:", sub ? sub : "");
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = prefix};
  int rv = lmz_kv_list(r->ctx, &o, &map);
  for (size_t i = 0; !rv && i < lmz_len(map); i++) {
    const char *k = lmz_get_str(lmz_map_key(map, i), NULL) + strlen(prefix);
    if (i)
      lmz_buf_putc(b, ',');
    lmz_json_write_string(b, k, strlen(k));
  }
  lmz_buf_append_str(b, "],\"createdAt\":");
  lmz_json_write_number(b, lmz_get_number(lmz_object_getc(s, "createdAt")));
  lmz_buf_append_str(b, ",\"lastLoginAt\":");
  lmz_value *ll = lmz_object_getc(s, "lastLoginAt");
  if (ll && lmz_typeof(ll) == LMZ_T_NUMBER)
    lmz_json_write_number(b, lmz_get_number(ll));
  else
    lmz_buf_append_str(b, "null");
  lmz_buf_putc(b, '}');
  return rv;
}

/* Emails every admin that `s` waits for approval (admin-notification). */
static void notify_admins(struct areq *r, const lmz_value *s) {
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = "s:", .limit = 10000};
  if (lmz_kv_list(r->ctx, &o, &map))
    return;
  char path[400];
  const char *email = lmz__auth_sget(s, "email");
  snprintf(path, sizeof path, "/approve/%s", lmz__auth_sget(s, "sub"));
  const char *url = lmz__auth_url(r, path);
  for (size_t i = 0; url && i < lmz_len(map); i++) {
    const lmz_value *a = lmz_map_val(map, i);
    if (lmz__auth_flag(a, "isAdmin") && lmz__auth_sget(a, "email"))
      lmz__auth_mail(r, LMZ_AUTH_MAIL_ADMIN_NOTIFICATION, lmz__auth_sget(a, "email"), url, email);
  }
}

void lmz__auth_login_flags(struct areq *r, lmz_value *s) {
  const char *boot = r->auth->cfg.bootstrap_admin;
  const char *email = lmz__auth_sget(s, "email");
  lmz_object_setc(s, "emailVerified", lmz_bool(true));
  lmz_object_setc(s, "lastLoginAt", lmz_number(r->a, r->now_ms));
  if (boot && email && !strcmp(boot, email)) { /* idempotent, every login */
    lmz_object_setc(s, "adminApproved", lmz_bool(true));
    lmz_object_setc(s, "isAdmin", lmz_bool(true));
  }
  if (!lmz__auth_flag(s, "adminApproved") && !lmz__auth_flag(s, "isAdmin"))
    notify_admins(r, s);
}
