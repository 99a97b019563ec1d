/* auth/mail.h - the auth service's email senders: one interface, three kinds.
 *
 *   dev    (auth/mail_dev.c)   writes each message as a file in
 *                              DATA_DIR/outbox/ and logs the link it carries;
 *                              the `--dev` default, so a new user logs in
 *                              with no email setup.
 *   smtp   (auth/mail_smtp.c)  SMTP (optionally STARTTLS / smtps) with
 *                              libcurl, each send on one of the sender's two
 *                              threads (libcurl 7.88 blocks in SMTP's done
 *                              phase even under its multi interface); the
 *                              loop only hands sends over and gets results.
 *   http   (auth/mail_http.c)  a Resend-compatible JSON API (POST
 *                              {from,to,subject,html,text} with
 *                              "Authorization: Bearer KEY"), libcurl too.
 *
 * Model (libuv style): the caller owns the sender (created by
 * lmz_mail_sender_init from config, closed by lmz_mail_sender_close). A send
 * copies the message, returns at once and later calls `cb` exactly once on
 * the loop thread (never synchronously from lmz_mail_send): status 0 =
 * handed to the server / written, else a core/err.h code with a one-line
 * `errmsg` that names the server, never the message body. Closing a sender
 * cancels what is in flight: each pending cb runs with LMZ_ECANCELED before
 * close_cb. Nothing blocks the loop: DNS, connect, TLS and I/O are all
 * asynchronous; every send has a deadline (timeout_ms).
 *
 * Hostile input: addresses are checked before anything is sent (no CR, LF,
 * NUL, '<', '>' or ',' anywhere; one '@'; at most LMZ_MAIL_ADDR_MAX bytes):
 * LMZ_EINVAL, nothing sent. Subjects have CR/LF refused the same way.
 * Callers never tell a requester whether a send failed (the auth service
 * answers the same either way), so an address's existence does not leak.
 *
 * Threads: loop thread only. */
#ifndef LMZ_AUTH_MAIL_H
#define LMZ_AUTH_MAIL_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define LMZ_MAIL_ADDR_MAX 254u          /* RFC 5321 path limit */
#define LMZ_MAIL_BODY_MAX (256u * 1024u) /* text + html, bytes */

enum lmz_mail_kind { LMZ_MAIL_DEV = 0, LMZ_MAIL_SMTP, LMZ_MAIL_HTTP };

/* Plain config, borrowed for lmz_mail_sender_init only (copied). */
struct lmz_mail_config {
  enum lmz_mail_kind kind;
  const char *from;      /* "Name <addr>" allowed here only (operator's) */
  uint32_t timeout_ms;   /* per send; 0 = 30000 */
  /* dev */
  const char *outbox_dir; /* created 0700 if missing */
  /* smtp: url "smtp://host:port" or "smtps://host:port" */
  const char *smtp_url, *smtp_user, *smtp_password;
  int smtp_starttls; /* 1 = require STARTTLS on smtp:// */
  /* http: full endpoint URL, e.g. "https://api.resend.com/emails" */
  const char *http_url, *http_api_key;
};

struct lmz_mail_msg {
  const char *to;      /* bare address */
  const char *subject; /* no CR/LF */
  const char *text;    /* plain-text body (may be NULL) */
  const char *html;    /* HTML body (may be NULL); one of the two required */
};

typedef struct lmz_mail_sender_s lmz_mail_sender_t;
typedef void (*lmz_mail_cb)(void *ud, int status, const char *errmsg);
typedef void (*lmz_mail_close_cb)(void *ud);
struct lmz_mail_ops;

/* The sender handle (README "Code conventions"): the caller allocates it;
 * the kind's own state (its size depends on the kind the config names) is
 * the kind's, behind impl. */
struct lmz_mail_sender_s {
  void *data;                     /* public: for the user */
  uv_loop_t *loop;                /* read-only */
  const struct lmz_mail_ops *ops; /* private: the kind's functions */
  void *impl;                     /* private: the kind's state */
};

/* Initializes the caller's `s`. Returns 0, or LMZ_EINVAL / LMZ_EBADCONFIG
 * (errmsg says which field; e.g. smtp when libcurl lacks SMTP), LMZ_ENOMEM,
 * LMZ_EIO (outbox not creatable). On failure nothing is left on the loop
 * and `s` may be freed at once. */
int lmz_mail_sender_init(lmz_mail_sender_t *s, uv_loop_t *loop,
                         const struct lmz_mail_config *cfg, char *errmsg);

/* Queues one message (copied). Returns 0 (cb will run), or LMZ_EINVAL
 * (address/subject/body refused; cb will NOT run), LMZ_ENOMEM. */
int lmz_mail_send(lmz_mail_sender_t *s, const struct lmz_mail_msg *m,
                  lmz_mail_cb cb, void *ud);

/* Cancels pending sends (their cb gets LMZ_ECANCELED), releases everything,
 * then calls close_cb (may be NULL) on a later loop iteration; from then on
 * the memory of `s` is the caller's. */
void lmz_mail_sender_close(lmz_mail_sender_t *s, lmz_mail_close_cb close_cb,
                           void *ud);

/* Address check used by lmz_mail_send (exposed for the service and fuzzing).
 * Returns 0 or LMZ_EINVAL. */
int lmz_mail_check_addr(const char *addr, size_t len);

/* ---- kind-specific constructors (mail.c dispatches to these) ------------- */

/* Each kind implements this vtable; mail.c owns the common checks. */
struct lmz_mail_ops {
  int (*send)(lmz_mail_sender_t *s, const struct lmz_mail_msg *m,
              lmz_mail_cb cb, void *ud);
  void (*close)(lmz_mail_sender_t *s, lmz_mail_close_cb cb, void *ud);
};

/* Each sets s->ops and s->impl (s->loop is set) or fails leaving nothing. */
int lmz__mail_dev_init(lmz_mail_sender_t *s, const struct lmz_mail_config *cfg,
                       char *errmsg);
int lmz__mail_smtp_init(lmz_mail_sender_t *s, const struct lmz_mail_config *cfg,
                        char *errmsg);
int lmz__mail_http_init(lmz_mail_sender_t *s, const struct lmz_mail_config *cfg,
                        char *errmsg);

#endif
