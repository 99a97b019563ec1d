/* auth/mail_stub_remote.c - placeholders for the SMTP and HTTP-API senders
 * until auth/mail_smtp.c and auth/mail_http.c (libcurl) land: choosing
 * either kind fails at start with LMZ_EBADCONFIG "not built", so a node
 * never pretends to send. Delete this file when those two are merged. */
#include "auth/mail.h"
#include "core/err.h"

int lmz__mail_smtp_new(uv_loop_t *loop, const struct lmz_mail_config *cfg,
                       lmz_mail_sender **out, char *errmsg) {
  (void)loop, (void)cfg;
  *out = NULL;
  lmz__errmsg_printf(errmsg, "mail: the smtp sender is not built in this lmzd");
  return LMZ_EBADCONFIG;
}

int lmz__mail_http_new(uv_loop_t *loop, const struct lmz_mail_config *cfg,
                       lmz_mail_sender **out, char *errmsg) {
  (void)loop, (void)cfg;
  *out = NULL;
  lmz__errmsg_printf(errmsg, "mail: the http sender is not built in this lmzd");
  return LMZ_EBADCONFIG;
}
