/* auth/mailer.c - the worker LUMENIZE_AUTH_MAILER: renders one of the
 * service's messages (auth/templates.h) and hands it to this node's mail
 * sender (auth/mail.h).
 *
 * Why a worker: the auth actor sends mail by calling it, and a call leaves
 * only once the calling turn's writes are durable (the output gate), so a
 * mail never carries a token its turn did not store.
 * Failure modes:
 *  1. a caller other than the LUMENIZE_AUTH actor (a client, another
 *     actor): the guard refuses the call (nothing is sent);
 *  2. bad arguments (not four strings, unknown type): refused, logged;
 *  3. the address or rendered message refused by lmz_mail_send, the
 *     sender closed or failing: logged (the HTTP answer went out already
 *     and never depended on it). */
#include <string.h>

#include "auth/auth_int.h"

/* Only the auth actor itself (the immediate caller) may send mail. */
static int only_auth(lmz_ctx *ctx) {
  size_t n = lmz_call_chain_len(ctx);
  const lmz_identity *id = n ? lmz_call_chain_at(ctx, n - 1) : NULL;
  if (id && id->type == LMZ_NODE_DO && id->binding && id->instance &&
      !strcmp(id->binding, LMZ_AUTH_BINDING) && !strcmp(id->instance, LMZ_AUTH_INSTANCE))
    return 0;
  return lmz_throwf(ctx, "Error", "%s may only be called by %s", LMZ_AUTH_MAILER_BINDING,
                    LMZ_AUTH_BINDING);
}

static void mail_done(void *ud, int status, const char *errmsg) {
  lmz_auth_t *au = ud;
  if (status == 0) {
    au->mails_sent++;
    return;
  }
  au->mails_failed++;
  if (status != LMZ_ECANCELED)
    LMZ_LOG_WARN(&lmz__auth_log, "mail not sent: %s", errmsg ? errmsg : lmz_strerror(status));
}

static const char *arg_str(lmz_value *const *args, size_t nargs, size_t i) {
  return i < nargs && lmz_typeof(args[i]) == LMZ_T_STRING ? lmz_get_str(args[i], NULL) : NULL;
}

/* Renders the three parts of `type` into NUL-terminated buffers. */
static int render(const lmz_auth_t *au, int type, const struct lmz_auth_vars *v,
                  lmz_buf out[3]) {
  const struct lmz_auth_template *t = &au->cfg.templates[type];
  const char *parts[3] = {t->subject, t->text, t->html};
  int rv = 0;
  for (int i = 0; i < 3 && !rv; i++) {
    rv = lmz_auth_render(parts[i], v, i == 2, &out[i]);
    if (!rv)
      rv = lmz_buf_putc(&out[i], '\0');
  }
  return rv;
}

/* send(type, to, url, email) */
static int mailer_send(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                       lmz_value **result) {
  (void)result;
  lmz_auth_t *au = lmz_class_data(ctx);
  const char *tname = arg_str(args, nargs, 0), *to = arg_str(args, nargs, 1);
  const char *url = arg_str(args, nargs, 2), *email = arg_str(args, nargs, 3);
  int type = tname ? lmz_auth_mail_type_from_name(tname) : -1;
  if (type < 0 || !to || !url || !email)
    return lmz_throwf(ctx, "TypeError", "send(type, to, url, email): bad arguments");
  struct lmz_auth_vars v = {url, email, au->cfg.app_name, au->cfg.magic_link_ttl_s / 60};
  lmz_buf b[3] = {LMZ_BUF_INIT, LMZ_BUF_INIT, LMZ_BUF_INIT};
  int rv = render(au, type, &v, b);
  struct lmz_mail_msg m = {to, (const char *)b[0].data, (const char *)b[1].data,
                           (const char *)b[2].data};
  if (!rv)
    rv = au->mail ? lmz_mail_send(au->mail, &m, mail_done, au) : LMZ_ECANCELED;
  if (rv)
    LMZ_LOG_WARN(&lmz__auth_log, "mail %s not sent: %s", tname, lmz_strerror(rv));
  for (int i = 0; i < 3; i++)
    lmz_buf_free(&b[i]);
  return 0; /* a failed send is logged, never raised: nobody waits for it */
}

const lmz_method lmz__auth_mailer_methods[] = {
    LMZ_MESH("send", mailer_send, only_auth),
    LMZ_END,
};
