/* auth/mail_remote_int.h - shared by the libcurl senders (mail_smtp.c,
 * mail_http.c); private to them and their tests. */
#ifndef LMZ_AUTH_MAIL_REMOTE_INT_H
#define LMZ_AUTH_MAIL_REMOTE_INT_H

#include <stddef.h>

#include "auth/mail.h"

/* The senders' own check of a message, before anything is built or sent
 * (mail.c checks the same; a sender never relies on its caller for what
 * would be header injection): `to` a bare address (no CR, LF, NUL, '<',
 * '>', ',', spaces, one '@', at most LMZ_MAIL_ADDR_MAX bytes), a subject
 * without CR/LF, text or html, bodies within LMZ_MAIL_BODY_MAX.
 * Returns 0 or LMZ_EINVAL. (mail_smtp.c) */
int lmz__mail_msg_check(const struct lmz_mail_msg *m);
/* "Name <addr>" or "addr": the bare address into out (cap bytes), checked
 * like a recipient; CR/LF anywhere refused. 0 or LMZ_EINVAL. */
int lmz__mail_from_addr(const char *from, char *out, size_t cap);

#endif
