/* auth/templates.c - default messages and placeholder rendering
 * (auth/templates.h). */
#include <stdio.h>
#include <string.h>

#include "auth/templates.h"
#include "core/err.h"

static const char *const names[LMZ_AUTH_MAIL_N] = {
    "magic-link", "admin-notification", "approval-confirmation", "invite-existing",
    "invite-new"};

static const struct lmz_auth_template defaults[LMZ_AUTH_MAIL_N] = {
    {"Your login link",
     "Click to log in to {{app}} (valid {{minutes}} minutes, once):\n\n{{url}}\n\n"
     "If you did not ask for this, ignore this message.\n",
     "<p>Click to log in to {{app}} (valid {{minutes}} minutes, once):</p>"
     "<p><a href=\"{{url}}\">Log in</a></p>"
     "<p>If you did not ask for this, ignore this message.</p>"},
    {"New signup: {{email}}",
     "{{email}} signed up for {{app}} and waits for your approval.\n\nApprove: {{url}}\n",
     "<p>{{email}} signed up for {{app}} and waits for your approval.</p>"
     "<p><a href=\"{{url}}\">Approve</a></p>"},
    {"Your account has been approved",
     "Your {{app}} account has been approved. Log in: {{url}}\n",
     "<p>Your {{app}} account has been approved.</p><p><a href=\"{{url}}\">Log in</a></p>"},
    {"You've been invited",
     "You have been given access to {{app}}. Log in as usual: {{url}}\n",
     "<p>You have been given access to {{app}}.</p><p><a href=\"{{url}}\">Log in</a></p>"},
    {"You've been invited",
     "You've been invited to {{app}}. Accept: {{url}}\n",
     "<p>You've been invited to {{app}}.</p><p><a href=\"{{url}}\">Accept the invitation</a></p>"},
};

int lmz_auth_mail_type_from_name(const char *name) {
  for (int i = 0; i < LMZ_AUTH_MAIL_N; i++)
    if (!strcmp(names[i], name))
      return i;
  return -1;
}

const char *lmz_auth_mail_type_name(enum lmz_auth_mail_type t) {
  return (unsigned)t < LMZ_AUTH_MAIL_N ? names[t] : "?";
}

const struct lmz_auth_template *lmz_auth_template_default(enum lmz_auth_mail_type t) {
  return &defaults[(unsigned)t < LMZ_AUTH_MAIL_N ? t : 0];
}

static int put_escaped(lmz_buf *out, const char *s, int html) {
  if (!html)
    return lmz_buf_append_str(out, s);
  int rv = 0;
  for (; *s && !rv; s++) {
    switch (*s) {
    case '<': rv = lmz_buf_append_str(out, "&lt;"); break;
    case '>': rv = lmz_buf_append_str(out, "&gt;"); break;
    case '&': rv = lmz_buf_append_str(out, "&amp;"); break;
    case '"': rv = lmz_buf_append_str(out, "&quot;"); break;
    case '\'': rv = lmz_buf_append_str(out, "&#39;"); break;
    default: rv = lmz_buf_putc(out, (uint8_t)*s);
    }
  }
  return rv;
}

int lmz_auth_render(const char *tmpl, const struct lmz_auth_vars *v, int html,
                    lmz_buf *out) {
  char minutes[16];
  snprintf(minutes, sizeof minutes, "%u", v->minutes);
  const struct { const char *name, *value; } vars[] = {
      {"{{url}}", v->url}, {"{{email}}", v->email}, {"{{app}}", v->app},
      {"{{minutes}}", minutes}};
  int rv = 0;
  for (const char *p = tmpl; *p && !rv;) {
    size_t i = 0;
    while (i < sizeof vars / sizeof *vars &&
           strncmp(p, vars[i].name, strlen(vars[i].name)))
      i++;
    if (i < sizeof vars / sizeof *vars) {
      rv = put_escaped(out, vars[i].value ? vars[i].value : "", html);
      p += strlen(vars[i].name);
    } else {
      rv = lmz_buf_putc(out, (uint8_t)*p++);
    }
  }
  return rv;
}
