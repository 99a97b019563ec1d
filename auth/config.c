/* auth/config.c - the node config's "auth" block (auth/auth.h) into
 * struct lmz_auth_config. Unknown members are errors (a typo in a security
 * setting must not be silently ignored); every value is type- and
 * range-checked with the file position in the message. */
#include <string.h>

#include "auth/auth.h"
#include "auth/parse.h"
#include "core/err.h"

struct cfgctx {
  const lmz_config *file;
  char *errmsg;
};

static int bad(struct cfgctx *c, const lmz_json *at, const char *what) {
  lmz_config_errorf(c->errmsg, c->file, at, "auth: %s", what);
  return LMZ_EBADCONFIG;
}

static int str(struct cfgctx *c, const lmz_json *v, const char **out) {
  if (v->type != LMZ_JSON_STRING || memchr(v->u.str.p, '\0', v->u.str.len) ||
      strpbrk(v->u.str.p, "\r\n"))
    return bad(c, v, "must be a string without line breaks");
  *out = v->u.str.p;
  return 0;
}

static int u32(struct cfgctx *c, const lmz_json *v, uint32_t lo, uint32_t hi,
               uint32_t *out) {
  if (v->type != LMZ_JSON_NUMBER || v->u.num < lo || v->u.num > hi ||
      v->u.num != (double)(uint32_t)v->u.num) {
    lmz_config_errorf(c->errmsg, c->file, v, "auth: must be an integer %u..%u",
                      lo, hi);
    return LMZ_EBADCONFIG;
  }
  *out = (uint32_t)v->u.num;
  return 0;
}

static int flag(struct cfgctx *c, const lmz_json *v, bool *out) {
  if (v->type != LMZ_JSON_TRUE && v->type != LMZ_JSON_FALSE)
    return bad(c, v, "must be true or false");
  *out = v->type == LMZ_JSON_TRUE;
  return 0;
}

static int bucket(struct cfgctx *c, const lmz_json *v,
                  struct lmz_auth_bucket_cfg *out) {
  if (v->type != LMZ_JSON_OBJECT)
    return bad(c, v, "a rate limit is {\"burst\": N, \"per_hour\": N}");
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    uint32_t x;
    if (strcmp(m->key, "burst") && strcmp(m->key, "per_hour"))
      return bad(c, m->val, "a rate limit has only burst and per_hour");
    if (u32(c, m->val, 0, 1000000, &x))
      return LMZ_EBADCONFIG;
    *(strcmp(m->key, "burst") ? &out->per_hour : &out->burst) = x;
  }
  return 0;
}

static int limits(struct cfgctx *c, const lmz_json *v, struct lmz_auth_config *o) {
  if (v->type != LMZ_JSON_OBJECT)
    return bad(c, v, "rate_limits must be an object");
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    int rv = !strcmp(m->key, "magic_link_per_address") ? bucket(c, m->val, &o->per_address)
           : !strcmp(m->key, "magic_link_per_ip")      ? bucket(c, m->val, &o->per_ip)
           : bad(c, m->val, "unknown rate limit (magic_link_per_address, "
                            "magic_link_per_ip)");
    if (rv)
      return rv;
  }
  return 0;
}

static int keys(lmz_arena *a, struct cfgctx *c, const lmz_json *v,
                struct lmz_auth_config *o) {
  if (v->type != LMZ_JSON_OBJECT || v->n == 0 || v->n > LMZ_JWT_MAX_KEYS)
    return bad(c, v, "private_keys must be an object {KID: key} of 1..4 keys");
  o->private_keys = lmz_arena_alloc(a, v->n * sizeof *o->private_keys);
  if (!o->private_keys)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    if (m->val->type != LMZ_JSON_STRING || memchr(m->val->u.str.p, '\0', m->val->u.str.len))
      return bad(c, m->val, "a private key is a string (PEM or 43 base64url chars)");
    o->private_keys[o->n_private_keys++] =
        (struct lmz_auth_key_text){m->key, m->val->u.str.p};
  }
  return 0;
}

/* Message bodies may have line breaks (never NUL); subjects may not. */
static int body_text(struct cfgctx *c, const lmz_json *v, const char **out) {
  if (v->type != LMZ_JSON_STRING || memchr(v->u.str.p, '\0', v->u.str.len))
    return bad(c, v, "a template part must be a string");
  *out = v->u.str.p;
  return 0;
}

static int templates(struct cfgctx *c, const lmz_json *v, struct lmz_auth_config *o) {
  if (v->type != LMZ_JSON_OBJECT)
    return bad(c, v, "templates must be an object {TYPE: {subject, text, html}}");
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    int t = lmz_auth_mail_type_from_name(m->key);
    if (t < 0 || m->val->type != LMZ_JSON_OBJECT)
      return bad(c, m->val, "templates: a type is magic-link, admin-notification, "
                            "approval-confirmation, invite-existing or invite-new");
    struct lmz_auth_template *tp = &o->templates[t];
    for (uint32_t k = 0; k < m->val->n; k++) {
      const struct lmz_json_member *f = &m->val->u.members[k];
      int rv = !strcmp(f->key, "subject") ? str(c, f->val, &tp->subject)
             : !strcmp(f->key, "text")    ? body_text(c, f->val, &tp->text)
             : !strcmp(f->key, "html")    ? body_text(c, f->val, &tp->html)
             : bad(c, f->val, "a template has subject, text and html");
      if (rv)
        return rv;
    }
  }
  return 0;
}

static int mail_kind(struct cfgctx *c, const lmz_json *v, enum lmz_mail_kind *k) {
  const char *s;
  if (str(c, v, &s))
    return LMZ_EBADCONFIG;
  if (!strcmp(s, "dev"))
    *k = LMZ_MAIL_DEV;
  else if (!strcmp(s, "smtp"))
    *k = LMZ_MAIL_SMTP;
  else if (!strcmp(s, "http"))
    *k = LMZ_MAIL_HTTP;
  else
    return bad(c, v, "email.kind is \"dev\", \"smtp\" or \"http\"");
  return 0;
}

static int email(struct cfgctx *c, const lmz_json *v, struct lmz_auth_config *o) {
  struct lmz_mail_config *m = &o->mail;
  if (v->type != LMZ_JSON_OBJECT)
    return bad(c, v, "email must be an object");
  static const char *const names[] = {"from", "outbox", "smtp_url", "smtp_user",
                                      "smtp_password", "http_url", "http_api_key"};
  const char **slots[] = {&m->from, &m->outbox_dir, &m->smtp_url, &m->smtp_user,
                          &m->smtp_password, &m->http_url, &m->http_api_key};
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *mm = &v->u.members[i];
    int rv = LMZ_EBADCONFIG;
    if (!strcmp(mm->key, "kind"))
      rv = mail_kind(c, mm->val, &m->kind);
    else if (!strcmp(mm->key, "app_name"))
      rv = str(c, mm->val, &o->app_name);
    else if (!strcmp(mm->key, "templates"))
      rv = templates(c, mm->val, o);
    else if (!strcmp(mm->key, "timeout_ms"))
      rv = u32(c, mm->val, 1, 600000, &m->timeout_ms);
    else if (!strcmp(mm->key, "smtp_starttls")) {
      bool b = false;
      rv = flag(c, mm->val, &b);
      m->smtp_starttls = b;
    } else {
      size_t k = 0;
      while (k < LMZ_ARRAY_SIZE(names) && strcmp(names[k], mm->key))
        k++;
      rv = k < LMZ_ARRAY_SIZE(names) ? str(c, mm->val, slots[k])
                                     : bad(c, mm->val, "unknown email setting");
    }
    if (rv)
      return rv;
  }
  return 0;
}

/* "bot_check": {secret, endpoint, timeout_ms} (gateway.h, the check). */
static int bot_check(struct cfgctx *c, const lmz_json *v, struct lmz_auth_config *o) {
  if (v->type != LMZ_JSON_OBJECT)
    return bad(c, v, "bot_check must be an object {secret, endpoint, timeout_ms}");
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    int rv;
    if (!strcmp(m->key, "secret"))
      rv = str(c, m->val, &o->bot_secret);
    else if (!strcmp(m->key, "endpoint"))
      rv = str(c, m->val, &o->bot_endpoint);
    else if (!strcmp(m->key, "timeout_ms"))
      rv = u32(c, m->val, 1, 60000, &o->bot_timeout_ms);
    else
      rv = bad(c, m->val, "unknown bot_check setting (secret, endpoint, timeout_ms)");
    if (rv)
      return rv;
  }
  if (!o->bot_secret || !*o->bot_secret)
    return bad(c, v, "bot_check needs a secret");
  return 0;
}

/* One member of the block. */
static int member(lmz_arena *a, struct cfgctx *c, const struct lmz_json_member *m,
                  struct lmz_auth_config *o) {
  const lmz_json *v = m->val;
  const char *k = m->key;
  if (!strcmp(k, "enabled")) return flag(c, v, &o->enabled);
  if (!strcmp(k, "test_mode")) return flag(c, v, &o->test_mode);
  if (!strcmp(k, "auto_approve")) return flag(c, v, &o->auto_approve);
  if (!strcmp(k, "refresh_reuse_grace_s")) return u32(c, v, 0, 300, &o->reuse_grace_s);
  if (!strcmp(k, "prefix")) {
    if (str(c, v, &o->prefix))
      return LMZ_EBADCONFIG;
    size_t n = strlen(o->prefix);
    if (n < 2 || o->prefix[0] != '/' || o->prefix[n - 1] == '/' ||
        strpbrk(o->prefix, "?#% "))
      return bad(c, v, "prefix is a path like \"/auth\" (no trailing /)");
    return 0;
  }
  if (!strcmp(k, "redirect")) return str(c, v, &o->redirect);
  if (!strcmp(k, "public_url")) return str(c, v, &o->public_url);
  if (!strcmp(k, "issuer")) return str(c, v, &o->iss);
  if (!strcmp(k, "audience")) return str(c, v, &o->aud);
  if (!strcmp(k, "hash_key")) return str(c, v, &o->hash_key);
  if (!strcmp(k, "primary")) return str(c, v, &o->primary);
  if (!strcmp(k, "access_token_ttl_s")) return u32(c, v, 1, 86400 * 7, &o->access_ttl_s);
  if (!strcmp(k, "refresh_token_ttl_s")) return u32(c, v, 1, 86400 * 3650, &o->refresh_ttl_s);
  if (!strcmp(k, "magic_link_ttl_s")) return u32(c, v, 1, 86400 * 7, &o->magic_link_ttl_s);
  if (!strcmp(k, "invite_ttl_s")) return u32(c, v, 1, 86400 * 365, &o->invite_ttl_s);
  if (!strcmp(k, "rate_limits")) return limits(c, v, o);
  if (!strcmp(k, "bot_check")) return bot_check(c, v, o);
  if (!strcmp(k, "private_keys")) return keys(a, c, v, o);
  if (!strcmp(k, "email")) {
    o->mail_set = true;
    return email(c, v, o);
  }
  if (!strcmp(k, "bootstrap_admin")) {
    char *e = lmz_arena_alloc(a, LMZ_MAIL_ADDR_MAX + 1);
    if (v->type != LMZ_JSON_STRING || !e ||
        lmz_auth_email_normalize(v->u.str.p, v->u.str.len, e, LMZ_MAIL_ADDR_MAX + 1))
      return bad(c, v, "bootstrap_admin must be an email address");
    o->bootstrap_admin = e;
    return 0;
  }
  return bad(c, v, "unknown setting (see README, \"Logging in\")");
}

int lmz_auth_config_parse(lmz_arena *a, const lmz_config *file,
                          const lmz_json *obj, struct lmz_auth_config *out,
                          char *errmsg) {
  *out = (struct lmz_auth_config){
      .access_ttl_s = LMZ_AUTH_ACCESS_TTL_S,
      .refresh_ttl_s = LMZ_AUTH_REFRESH_TTL_S,
      .magic_link_ttl_s = LMZ_AUTH_MAGIC_LINK_TTL_S,
      .invite_ttl_s = LMZ_AUTH_INVITE_TTL_S,
      .reuse_grace_s = 10,
      .per_address = {5, 10},
      .per_ip = {20, 60},
      .mail = {.kind = LMZ_MAIL_DEV, .from = "Lumenize <no-reply@localhost>"}};
  if (!obj)
    return 0;
  struct cfgctx c = {file, errmsg};
  if (obj->type != LMZ_JSON_OBJECT)
    return bad(&c, obj, "\"auth\" must be an object");
  out->enabled = true; /* a block enables it unless it says otherwise */
  for (uint32_t i = 0; i < obj->n; i++) {
    int rv = member(a, &c, &obj->u.members[i], out);
    if (rv)
      return rv;
  }
  return 0;
}
