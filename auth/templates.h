/* auth/templates.h - the auth service's messages (lumenize-behaviour 5.6):
 * five types, each a subject, a plain-text body and an HTML body, with
 * placeholders {{url}} {{email}} {{app}} {{minutes}}; the defaults are the
 * original's subjects, and config "auth.email.templates" overrides any part:
 *   "templates": {"magic-link": {"subject": "Sign in to {{app}}",
 *                                "text": "...{{url}}...", "html": "..."}}
 * Values are HTML-escaped in HTML bodies; an unknown {{name}} stays as it
 * is. Pure; any thread. */
#ifndef LMZ_AUTH_TEMPLATES_H
#define LMZ_AUTH_TEMPLATES_H

#include "core/buf.h"

enum lmz_auth_mail_type {
  LMZ_AUTH_MAIL_MAGIC_LINK = 0,
  LMZ_AUTH_MAIL_ADMIN_NOTIFICATION,
  LMZ_AUTH_MAIL_APPROVAL_CONFIRMATION,
  LMZ_AUTH_MAIL_INVITE_EXISTING,
  LMZ_AUTH_MAIL_INVITE_NEW,
  LMZ_AUTH_MAIL_N
};

struct lmz_auth_template {
  const char *subject, *text, *html; /* NULL = the default */
};

struct lmz_auth_vars {
  const char *url, *email, *app;
  unsigned minutes;
};

/* "magic-link", "admin-notification", ... ; -1 for an unknown name. */
int lmz_auth_mail_type_from_name(const char *name);
const char *lmz_auth_mail_type_name(enum lmz_auth_mail_type t);
/* The default template of a type (static). */
const struct lmz_auth_template *lmz_auth_template_default(enum lmz_auth_mail_type t);

/* Appends `tmpl` with the placeholders replaced (HTML-escaped when `html`).
 * 0 or LMZ_ENOMEM. */
int lmz_auth_render(const char *tmpl, const struct lmz_auth_vars *v, int html,
                    lmz_buf *out);

#endif
