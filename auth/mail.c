/* auth/mail.c - the common half of the email senders (auth/mail.h): the
 * checks every kind relies on, and dispatch to the kind's constructor.
 *
 * Happy path: lmz_mail_sender_init picks the kind's constructor from the
 * config; lmz_mail_send checks the message (address, subject, bodies) and
 * hands it to the kind's send; lmz_mail_sender_close hands over to the
 * kind's close.
 * Failure modes:
 *  1. an unknown kind, or a kind's required field missing: LMZ_EBADCONFIG
 *     with errmsg naming the field, nothing created;
 *  2. a hostile address (CR, LF, NUL, '<', '>', ',', no or two '@', too
 *     long), a subject with CR/LF, no body, bodies over LMZ_MAIL_BODY_MAX:
 *     LMZ_EINVAL, nothing sent, the callback will not run. The checks run
 *     here, before any kind sees the message, so no kind can forget them
 *     (header injection into SMTP / the API's JSON stays impossible). */
#include <stdbool.h>
#include <string.h>

#include "auth/mail.h"
#include "core/err.h"

int lmz_mail_check_addr(const char *addr, size_t len) {
  if (!addr || len == 0 || len > LMZ_MAIL_ADDR_MAX)
    return LMZ_EINVAL;
  size_t at = 0, n_at = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)addr[i];
    /* CR/LF/NUL would end a header line; <>, would smuggle a second
     * recipient or a display name; controls and spaces have no business in
     * a bare address either. */
    if (c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == ',' ||
        c == '"' || c == '\\' || c == '(' || c == ')' || c == ';' || c == ':')
      return LMZ_EINVAL;
    if (c == '@') {
      n_at++;
      at = i;
    }
  }
  if (n_at != 1 || at == 0 || at == len - 1)
    return LMZ_EINVAL;
  return 0;
}

static bool has_crlf(const char *s) {
  return s && (strchr(s, '\r') || strchr(s, '\n'));
}

int lmz_mail_sender_init(lmz_mail_sender_t *s, uv_loop_t *loop,
                         const struct lmz_mail_config *cfg, char *errmsg) {
  *s = (lmz_mail_sender_t){.data = s->data, .loop = loop};
  if (!loop || !cfg) {
    lmz__errmsg_printf(errmsg, "mail: no loop or config");
    return LMZ_EINVAL;
  }
  if (!cfg->from || !*cfg->from || has_crlf(cfg->from)) {
    lmz__errmsg_printf(errmsg, "mail: \"from\" is missing or has a line break");
    return LMZ_EBADCONFIG;
  }
  switch (cfg->kind) {
  case LMZ_MAIL_DEV:
    return lmz__mail_dev_init(s, cfg, errmsg);
  case LMZ_MAIL_SMTP:
    return lmz__mail_smtp_init(s, cfg, errmsg);
  case LMZ_MAIL_HTTP:
    return lmz__mail_http_init(s, cfg, errmsg);
  }
  lmz__errmsg_printf(errmsg, "mail: unknown sender kind %d", (int)cfg->kind);
  return LMZ_EBADCONFIG;
}

int lmz_mail_send(lmz_mail_sender_t *s, const struct lmz_mail_msg *m,
                  lmz_mail_cb cb, void *ud) {
  if (!s || !m || !m->to || lmz_mail_check_addr(m->to, strlen(m->to)))
    return LMZ_EINVAL;
  if (!m->subject || has_crlf(m->subject) || (!m->text && !m->html))
    return LMZ_EINVAL;
  size_t body = (m->text ? strlen(m->text) : 0) + (m->html ? strlen(m->html) : 0);
  if (body > LMZ_MAIL_BODY_MAX)
    return LMZ_EINVAL;
  return s->ops->send(s, m, cb, ud);
}

void lmz_mail_sender_close(lmz_mail_sender_t *s, lmz_mail_close_cb close_cb,
                           void *ud) {
  if (s)
    s->ops->close(s, close_cb, ud);
}
