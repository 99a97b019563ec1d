/* auth/setup.c - what lmz_auth_init needs before the class is registered:
 * a private copy of the config, the signing key set and the token hash key.
 * Failure modes: a private key that does not parse, a primary naming no
 * key, no key at all, a malformed hash key or an unreadable/too-open hash
 * key file: LMZ_EBADCONFIG / LMZ_EACCESS with errmsg naming the setting or
 * file (never the key bytes). */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth_int.h"
#include "cluster/keyfile.h"
#include "gateway/keys.h"

static const char *dup_or(lmz_arena *a, const char *s, const char *dflt) {
  const char *v = s ? s : dflt;
  return v ? lmz_arena_strndup(a, v, strlen(v)) : NULL;
}

int lmz__auth_copy_config(lmz_auth_t *au, const struct lmz_auth_config *cfg) {
  lmz_arena *a = au->arena;
  struct lmz_auth_config *c = &au->cfg;
  *c = *cfg;
  c->prefix = dup_or(a, cfg->prefix, LMZ_AUTH_DEFAULT_PREFIX);
  c->redirect = dup_or(a, cfg->redirect, "/");
  c->public_url = dup_or(a, cfg->public_url, NULL);
  c->iss = dup_or(a, cfg->iss, LMZ_JWT_DEFAULT_ISS);
  c->aud = dup_or(a, cfg->aud, LMZ_JWT_DEFAULT_AUD);
  c->bootstrap_admin = dup_or(a, cfg->bootstrap_admin, NULL);
  c->hash_key = NULL;     /* read once by lmz__auth_hash_key, not kept */
  c->private_keys = NULL; /* parsed into au->ks, not kept */
  c->n_private_keys = 0;
  struct lmz_mail_config *m = &c->mail;
  m->from = dup_or(a, cfg->mail.from, "Lumenize <no-reply@localhost>");
  m->outbox_dir = dup_or(a, cfg->mail.outbox_dir, NULL);
  m->smtp_url = dup_or(a, cfg->mail.smtp_url, NULL);
  m->smtp_user = dup_or(a, cfg->mail.smtp_user, NULL);
  m->smtp_password = dup_or(a, cfg->mail.smtp_password, NULL);
  m->http_url = dup_or(a, cfg->mail.http_url, NULL);
  m->http_api_key = dup_or(a, cfg->mail.http_api_key, NULL);
  c->app_name = dup_or(a, cfg->app_name, "Lumenize");
  for (int t = 0; t < LMZ_AUTH_MAIL_N; t++) { /* a part not set: the default */
    const struct lmz_auth_template *d = lmz_auth_template_default(t);
    c->templates[t].subject = dup_or(a, cfg->templates[t].subject, d->subject);
    c->templates[t].text = dup_or(a, cfg->templates[t].text, d->text);
    c->templates[t].html = dup_or(a, cfg->templates[t].html, d->html);
    if (!c->templates[t].subject || !c->templates[t].text || !c->templates[t].html)
      return LMZ_ENOMEM;
  }
  if (!c->access_ttl_s) c->access_ttl_s = LMZ_AUTH_ACCESS_TTL_S;
  if (!c->refresh_ttl_s) c->refresh_ttl_s = LMZ_AUTH_REFRESH_TTL_S;
  if (!c->magic_link_ttl_s) c->magic_link_ttl_s = LMZ_AUTH_MAGIC_LINK_TTL_S;
  if (!c->invite_ttl_s) c->invite_ttl_s = LMZ_AUTH_INVITE_TTL_S;
  return c->prefix && c->redirect && c->iss && c->aud && m->from ? 0 : LMZ_ENOMEM;
}

static int add_private(lmz_auth_t *au, const struct lmz_auth_key_text *k,
                       char *errmsg) {
  uint8_t seed[LMZ_JWT_SEED_LEN];
  int rv = lmz_keys_parse_private(k->text, strlen(k->text), seed, errmsg);
  if (!rv)
    rv = lmz_jwt_keyset_add(&au->ks, k->kid, NULL, seed);
  sodium_memzero(seed, sizeof seed);
  if (rv) {
    lmz__errmsg_wrapf(errmsg, "auth.private_keys.%s", k->kid);
    return LMZ_EBADCONFIG;
  }
  return 0;
}

int lmz__auth_keys(lmz_auth_t *au, const struct lmz_auth_config *cfg,
                   const struct lmz_jwt_keyset *dev, char *errmsg) {
  for (size_t i = 0; i < cfg->n_private_keys; i++) {
    int rv = add_private(au, &cfg->private_keys[i], errmsg);
    if (rv)
      return rv;
  }
  if (!cfg->n_private_keys && dev) {
    au->ks = *dev; /* copied; wiped by lmz_auth_release */
    for (unsigned i = 0; i < au->ks.n; i++)
      if (!au->ks.keys[i].has_sk)
        au->ks.keys[i] = au->ks.keys[--au->ks.n]; /* verify-only: useless here */
  }
  if (au->ks.n == 0) {
    lmz__errmsg_printf(errmsg, "no signing key: set auth.private_keys (see `lmz keys "
                               "generate`) or run with --dev");
    return LMZ_EBADCONFIG;
  }
  if (cfg->primary) {
    int p = lmz_jwt_keyset_find(&au->ks, cfg->primary);
    if (p < 0) {
      lmz__errmsg_printf(errmsg, "auth.primary \"%s\" names no private key", cfg->primary);
      return LMZ_EBADCONFIG;
    }
    au->ks.primary = (unsigned)p;
  } else if (cfg->n_private_keys) {
    au->ks.primary = 0; /* the first key listed */
  }
  return 0;
}

int lmz__auth_hash_key(lmz_auth_t *au, const char *text, const char *data_dir,
                       char *errmsg) {
  if (text) {
    int rv = lmz_keyfile_parse(text, strlen(text), au->hash_key, errmsg);
    if (rv)
      lmz__errmsg_wrapf(errmsg, "auth.hash_key");
    return rv;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/" LMZ_AUTH_HASH_KEY_FILE, data_dir);
  int rv = lmz_keyfile_load(path, au->hash_key, errmsg);
  if (rv == LMZ_ENOTFOUND) {
    lmz_keyfile_generate(au->hash_key);
    rv = lmz_keyfile_save(path, au->hash_key, 0, errmsg);
    if (rv == LMZ_EEXIST) /* another start won the race: use its key */
      rv = lmz_keyfile_load(path, au->hash_key, errmsg);
    else if (!rv)
      LMZ_LOG_INFO(&lmz__auth_log, "generated the token hash key %s (a cluster "
                                   "sets auth.hash_key instead)", path);
  }
  return rv;
}
