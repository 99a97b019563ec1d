/* auth/mail_smtp.c - the SMTP sender (auth/mail.h), with libcurl.
 *
 * Why threads and not the loop: libcurl's SMTP "done" phase (the server's
 * answer to the end of DATA) runs a BLOCKING state machine even under the
 * multi interface (lib/smtp.c smtp_done -> smtp_block_statemach, curl
 * 7.88), which held the node's loop for as long as the server took to
 * answer (found by this file's test: the fake server on the same loop
 * could never answer). So each send runs curl_easy_perform on one of
 * SMTP_THREADS sender threads of its own (not the libuv pool, which file
 * and DNS work share); the loop only builds the message and hears the
 * outcome (uv_async). The loop never blocks; a thread blocks at most
 * timeout_ms per send.
 *
 * Happy path:
 *  1. lmz__mail_smtp_init checks the config (smtp:// or smtps:// URL, a
 *     From whose address is sane, libcurl built with SMTP) and starts the
 *     threads;
 *  2. send checks the message again (mail_remote_int.h: no header
 *     injection, whatever the caller did), builds an RFC 5322 message
 *     (Date, Message-ID, From, To, Subject - RFC 2047 encoded when not
 *     ASCII - MIME 1.0, multipart/alternative text + html, each part base64
 *     so no body line can be a lone "." or overlong), sets up MAIL FROM,
 *     RCPT TO and the upload, and queues it;
 *  3. a thread performs it; the loop's async callback reports 0 when the
 *     server accepted the data.
 * Failure modes:
 *  1. bad config: LMZ_EINVAL / LMZ_EBADCONFIG at new, nothing started;
 *  2. a refused address or subject: LMZ_EINVAL at send, cb never runs;
 *  3. the server refuses (4xx/5xx), connection or TLS fails, STARTTLS is
 *     required (smtp_starttls) but not offered: cb gets LMZ_EIO with
 *     "smtp HOST: <libcurl's reason>" (never the message);
 *  4. no answer within timeout_ms: LMZ_ETIMEOUT;
 *  5. close: `stop` is set; a transfer in progress aborts at its next
 *     progress callback (libcurl calls it at least once a second, also in
 *     the blocking phase), queued sends are not started; every callback
 *     runs with LMZ_ECANCELED; once the threads have exited (they say so
 *     through the async, so the join never waits) close_cb runs. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth/mail_remote_int.h"
#include "core/buf.h"
#include "core/err.h"

#include <curl/curl.h>

#define SMTP_THREADS 2 /* sends in parallel; each blocks one thread */

struct send {
  struct smtp *s;
  CURL *easy;
  struct curl_slist *rcpt;
  lmz_buf msg;
  size_t off;
  lmz_mail_cb cb;
  void *ud;
  CURLcode code;
  bool canceled;
  struct send *next;
  char errbuf[CURL_ERROR_SIZE];
};

struct smtp {
  char *from_hdr; /* From: as configured ("Name <addr>" or "addr") */
  char from_addr[LMZ_MAIL_ADDR_MAX + 1];
  char *url, *user, *password, *host;
  bool starttls;
  uint32_t timeout_ms;
  /* the sender threads (see the top of the file) */
  uv_thread_t threads[SMTP_THREADS];
  int n_threads, n_exited; /* n_exited under mu */
  uv_mutex_t mu;
  uv_cond_t cv;
  struct send *todo, *todo_tail; /* under mu */
  struct send *done;             /* under mu; any order */
  atomic_bool stop;              /* close: abort transfers, take no more */
  uv_async_t async;              /* done work or a thread exited */
  bool closing;
  lmz_mail_close_cb close_cb;
  void *close_ud;
};

/* ---- checks (shared with mail_http.c) -------------------------------------- */

static bool addr_ok(const char *a, size_t len) {
  if (len == 0 || len > LMZ_MAIL_ADDR_MAX)
    return false;
  size_t n_at = 0, at = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)a[i];
    if (c <= 0x20 || c == 0x7f || strchr("<>,;:\"\\()", c))
      return false;
    if (c == '@') {
      n_at++;
      at = i;
    }
  }
  return n_at == 1 && at > 0 && at < len - 1;
}

int lmz__mail_msg_check(const struct lmz_mail_msg *m) {
  if (!m || !m->to || !addr_ok(m->to, strlen(m->to)) || !m->subject ||
      strpbrk(m->subject, "\r\n") || (!m->text && !m->html))
    return LMZ_EINVAL;
  size_t body = (m->text ? strlen(m->text) : 0) + (m->html ? strlen(m->html) : 0);
  return body > LMZ_MAIL_BODY_MAX ? LMZ_EINVAL : 0;
}

int lmz__mail_from_addr(const char *from, char *out, size_t cap) {
  if (!from || strpbrk(from, "\r\n"))
    return LMZ_EINVAL;
  const char *lt = strrchr(from, '<'), *a = from;
  size_t len = strlen(from);
  if (lt) {
    const char *gt = strchr(lt, '>');
    if (!gt || gt[1] || strchr(from, '>') != gt)
      return LMZ_EINVAL;
    a = lt + 1;
    len = (size_t)(gt - a);
  }
  if (!addr_ok(a, len) || len >= cap)
    return LMZ_EINVAL;
  memcpy(out, a, len);
  out[len] = 0;
  return 0;
}

/* ---- the message (RFC 5322, RFC 2045/2046 MIME, RFC 2047 words) ------------ */

static bool is_ascii(const char *s) {
  for (; *s; s++)
    if ((unsigned char)*s >= 0x80)
      return false;
  return true;
}

/* base64 of s, in lines of at most 76 characters (RFC 2045 6.8). */
static int put_base64(lmz_buf *b, const char *s, size_t len, bool wrap) {
  size_t enc = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
  char *tmp = malloc(enc);
  if (!tmp)
    return LMZ_ENOMEM;
  sodium_bin2base64(tmp, enc, (const unsigned char *)s, len,
                    sodium_base64_VARIANT_ORIGINAL);
  size_t n = strlen(tmp);
  int rv = 0;
  for (size_t i = 0; !rv && i < n; i += 76) {
    rv = lmz_buf_append(b, tmp + i, n - i < 76 ? n - i : 76);
    if (!rv && wrap)
      rv = lmz_buf_append_str(b, "\r\n");
  }
  free(tmp);
  return rv;
}

/* A header value as is (ASCII) or as one RFC 2047 encoded word. Long
 * subjects stay one word: RFC 5322's 998-byte line limit still holds for
 * any subject mail.c lets through (it bounds nothing but CR/LF, so bound). */
static int put_word(lmz_buf *b, const char *s) {
  if (strlen(s) > 600)
    return LMZ_EINVAL;
  if (is_ascii(s))
    return lmz_buf_append_str(b, s);
  int rv = lmz_buf_append_str(b, "=?UTF-8?B?");
  if (!rv)
    rv = put_base64(b, s, strlen(s), false);
  return rv ? rv : lmz_buf_append_str(b, "?=");
}

static int put_from(lmz_buf *b, const struct smtp *s) {
  const char *lt = strrchr(s->from_hdr, '<');
  if (!lt || is_ascii(s->from_hdr))
    return lmz_buf_append_str(b, s->from_hdr);
  char name[256];
  size_t nl = (size_t)(lt - s->from_hdr);
  while (nl && s->from_hdr[nl - 1] == ' ')
    nl--;
  if (nl >= sizeof name)
    return LMZ_EINVAL;
  memcpy(name, s->from_hdr, nl);
  name[nl] = 0;
  int rv = put_word(b, name);
  return rv ? rv : lmz_buf_printf(b, " <%s>", s->from_addr);
}

static int put_part(lmz_buf *b, const char *boundary, const char *type,
                    const char *body) {
  int rv = boundary ? lmz_buf_printf(b, "--%s\r\n", boundary) : 0;
  if (!rv)
    rv = lmz_buf_printf(b, "Content-Type: %s; charset=utf-8\r\n"
                           "Content-Transfer-Encoding: base64\r\n\r\n", type);
  return rv ? rv : put_base64(b, body, strlen(body), true);
}

static int put_head(lmz_buf *b, const struct smtp *s, const struct lmz_mail_msg *m,
                    const char *id) {
  char date[64];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm); /* 3.3 */
  const char *domain = strchr(s->from_addr, '@') + 1;
  int rv = lmz_buf_printf(b, "Date: %s\r\nMessage-ID: <%s@%s>\r\nFrom: ", date, id, domain);
  if (!rv)
    rv = put_from(b, s);
  if (!rv)
    rv = lmz_buf_printf(b, "\r\nTo: <%s>\r\nSubject: ", m->to);
  if (!rv)
    rv = put_word(b, m->subject);
  return rv ? rv : lmz_buf_append_str(b, "\r\nMIME-Version: 1.0\r\n");
}

static int build_message(lmz_buf *b, const struct smtp *s, const struct lmz_mail_msg *m) {
  unsigned char rnd[12];
  char id[25];
  if (uv_random(NULL, NULL, rnd, sizeof rnd, 0, NULL))
    return LMZ_EIO;
  sodium_bin2hex(id, sizeof id, rnd, sizeof rnd);
  int rv = put_head(b, s, m, id);
  if (rv)
    return rv;
  if (!m->text || !m->html) /* one part: no multipart wrapper */
    return put_part(b, NULL, m->text ? "text/plain" : "text/html",
                    m->text ? m->text : m->html);
  char boundary[40];
  snprintf(boundary, sizeof boundary, "lmz-%s", id); /* never in base64 */
  rv = lmz_buf_printf(b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n",
                      boundary);
  if (!rv)
    rv = put_part(b, boundary, "text/plain", m->text); /* least preferred first */
  if (!rv)
    rv = put_part(b, boundary, "text/html", m->html);
  return rv ? rv : lmz_buf_printf(b, "--%s--\r\n", boundary);
}

/* ---- sending (sender threads) ---------------------------------------------- */

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ud) {
  struct send *x = ud;
  size_t n = size * nitems, left = x->msg.len - x->off;
  if (n > left)
    n = left;
  memcpy(buf, x->msg.data + x->off, n);
  x->off += n;
  return n;
}

/* Thread side: a non-zero return aborts the transfer (close). */
static int progress_cb(void *ud, curl_off_t a, curl_off_t b, curl_off_t c,
                       curl_off_t d) {
  struct send *x = ud;
  (void)a, (void)b, (void)c, (void)d;
  return atomic_load(&x->s->stop) ? 1 : 0;
}

static void send_free(struct send *x) {
  if (x->easy)
    curl_easy_cleanup(x->easy);
  curl_slist_free_all(x->rcpt);
  lmz_buf_free(&x->msg);
  free(x);
}

static void sender_thread(void *arg) {
  struct smtp *s = arg;
  uv_mutex_lock(&s->mu);
  for (;;) {
    while (!s->todo && !atomic_load(&s->stop))
      uv_cond_wait(&s->cv, &s->mu);
    struct send *x = s->todo;
    if (!x)
      break; /* stopping and nothing queued */
    s->todo = x->next;
    if (!s->todo)
      s->todo_tail = NULL;
    x->canceled = atomic_load(&s->stop);
    if (!x->canceled) {
      uv_mutex_unlock(&s->mu);
      x->code = curl_easy_perform(x->easy);
      /* here, not on the loop: closing the connection sends QUIT and
       * waits (blocking) for the server's answer */
      curl_easy_cleanup(x->easy);
      x->easy = NULL;
      uv_mutex_lock(&s->mu);
      x->canceled = x->code == CURLE_ABORTED_BY_CALLBACK;
    }
    x->next = s->done;
    s->done = x;
    uv_async_send(&s->async);
  }
  s->n_exited++;
  uv_mutex_unlock(&s->mu);
  uv_async_send(&s->async);
}

static void report(struct send *x) {
  struct smtp *s = x->s;
  char msg[LMZ_ERRMSG_LEN];
  int status = 0;
  if (x->canceled) {
    status = LMZ_ECANCELED;
    snprintf(msg, sizeof msg, "smtp %s: canceled (sender closing)", s->host);
  } else if (x->code == CURLE_OPERATION_TIMEDOUT) {
    status = LMZ_ETIMEOUT;
    snprintf(msg, sizeof msg, "smtp %s: no answer within %u ms", s->host, s->timeout_ms);
  } else if (x->code != CURLE_OK) {
    status = LMZ_EIO;
    snprintf(msg, sizeof msg, "smtp %s: %s", s->host,
             x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->code));
  }
  x->cb(x->ud, status, status ? msg : NULL);
  send_free(x);
}

static void smtp_free(struct smtp *s);

static void async_closed(uv_handle_t *h) {
  struct smtp *s = h->data;
  if (s->close_cb)
    s->close_cb(s->close_ud);
  smtp_free(s);
}

static void join_threads(struct smtp *s) {
  for (int i = 0; i < s->n_threads; i++)
    uv_thread_join(&s->threads[i]);
  s->n_threads = 0;
}

/* Loop side: report finished sends; after close, once every thread has
 * exited, join them (instant) and release the sender. */
static void async_cb(uv_async_t *a) {
  struct smtp *s = a->data;
  uv_mutex_lock(&s->mu);
  struct send *x = s->done;
  s->done = NULL;
  bool all_exited = s->n_exited == s->n_threads;
  uv_mutex_unlock(&s->mu);
  while (x) {
    struct send *next = x->next;
    report(x);
    x = next;
  }
  if (!s->closing || !all_exited || uv_is_closing((uv_handle_t *)a))
    return;
  join_threads(s);
  uv_close((uv_handle_t *)&s->async, async_closed);
}

static int setup(struct send *x, const struct lmz_mail_msg *m) {
  struct smtp *s = x->s;
  char rcpt[LMZ_MAIL_ADDR_MAX + 3], from[LMZ_MAIL_ADDR_MAX + 3];
  snprintf(rcpt, sizeof rcpt, "<%s>", m->to);
  snprintf(from, sizeof from, "<%s>", s->from_addr);
  if (!(x->rcpt = curl_slist_append(NULL, rcpt)) || !(x->easy = curl_easy_init()))
    return LMZ_ENOMEM;
  CURL *e = x->easy;
  curl_easy_setopt(e, CURLOPT_URL, s->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->rcpt);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
  curl_easy_setopt(e, CURLOPT_READDATA, x);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->msg.len);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L); /* QUIT in the thread */
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress_cb);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  if (s->starttls) /* refuse to go on in clear text */
    curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
  if (s->user) {
    curl_easy_setopt(e, CURLOPT_USERNAME, s->user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, s->password ? s->password : "");
  }
  return 0;
}

static int smtp_send(lmz_mail_sender_t *base, const struct lmz_mail_msg *m,
                     lmz_mail_cb cb, void *ud) {
  struct smtp *s = base->impl;
  if (s->closing)
    return LMZ_ECANCELED;
  if (lmz__mail_msg_check(m))
    return LMZ_EINVAL;
  struct send *x = calloc(1, sizeof *x);
  if (!x)
    return LMZ_ENOMEM;
  *x = (struct send){.s = s, .cb = cb, .ud = ud};
  int rv = build_message(&x->msg, s, m);
  if (!rv)
    rv = setup(x, m);
  if (rv) {
    send_free(x);
    return rv;
  }
  uv_mutex_lock(&s->mu);
  if (s->todo_tail)
    s->todo_tail->next = x;
  else
    s->todo = x;
  s->todo_tail = x;
  uv_cond_signal(&s->cv);
  uv_mutex_unlock(&s->mu);
  return 0;
}

/* ---- the sender --------------------------------------------------------------- */

static void smtp_free(struct smtp *s) {
  free(s->from_hdr);
  free(s->url);
  free(s->user);
  if (s->password)
    sodium_memzero(s->password, strlen(s->password));
  free(s->password);
  free(s->host);
  free(s);
}

static void stop_threads(struct smtp *s) {
  uv_mutex_lock(&s->mu);
  atomic_store(&s->stop, true);
  uv_cond_broadcast(&s->cv);
  uv_mutex_unlock(&s->mu);
}

static void smtp_close(lmz_mail_sender_t *base, lmz_mail_close_cb cb,
                       void *ud) {
  struct smtp *s = base->impl;
  s->closing = true;
  s->close_cb = cb;
  s->close_ud = ud;
  stop_threads(s); /* their exit wakes async_cb, which finishes the close */
}

static const struct lmz_mail_ops smtp_ops = {smtp_send, smtp_close};

static bool curl_has_smtp(void) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  for (const char *const *p = v->protocols; p && *p; p++)
    if (strcmp(*p, "smtp") == 0)
      return true;
  return false;
}

static char *dup_or_null(const char *s, int *rv) {
  char *d = s ? strdup(s) : NULL;
  if (s && !d)
    *rv = LMZ_ENOMEM;
  return d;
}

/* The URL's host, for messages that must not show credentials. */
static int url_host(const char *url, char **host) {
  CURLU *u = curl_url();
  char *h = NULL;
  int rv = u && curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
                   curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK
               ? 0 : LMZ_EINVAL;
  *host = rv ? NULL : strdup(h);
  if (!rv && !*host)
    rv = LMZ_ENOMEM;
  curl_free(h);
  curl_url_cleanup(u);
  return rv;
}

static int smtp_config(struct smtp *s, const struct lmz_mail_config *c, char *errmsg) {
  if (!c->smtp_url || (strncmp(c->smtp_url, "smtp://", 7) && strncmp(c->smtp_url, "smtps://", 8)) ||
      strpbrk(c->smtp_url, "\r\n") || url_host(c->smtp_url, &s->host)) {
    lmz__errmsg_printf(errmsg, "mail.smtp.url must be smtp://HOST:PORT or smtps://HOST:PORT");
    return LMZ_EBADCONFIG;
  }
  if (lmz__mail_from_addr(c->from, s->from_addr, sizeof s->from_addr)) {
    lmz__errmsg_printf(errmsg, "mail.from must be \"addr\" or \"Name <addr>\"");
    return LMZ_EBADCONFIG;
  }
  if ((c->smtp_user && strpbrk(c->smtp_user, "\r\n")) ||
      (c->smtp_password && strpbrk(c->smtp_password, "\r\n"))) {
    lmz__errmsg_printf(errmsg, "mail.smtp user/password contain CR or LF");
    return LMZ_EBADCONFIG;
  }
  if (!curl_has_smtp()) {
    lmz__errmsg_printf(errmsg, "mail: this libcurl has no SMTP support");
    return LMZ_EBADCONFIG;
  }
  int rv = 0;
  s->from_hdr = dup_or_null(c->from, &rv);
  s->url = dup_or_null(c->smtp_url, &rv);
  s->user = dup_or_null(c->smtp_user, &rv);
  s->password = dup_or_null(c->smtp_password, &rv);
  s->starttls = c->smtp_starttls != 0;
  s->timeout_ms = c->timeout_ms ? c->timeout_ms : 30000;
  return rv;
}

static void global_init(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Threads need a sender that is complete: config first, then this. On a
 * thread that cannot start, the ones started are stopped and joined (they
 * are idle, so at once) and the async handle is closed; `s` is freed by
 * its close callback (the caller runs the loop before uv_loop_close). */
static int start_threads(struct smtp *s, uv_loop_t *loop, char *errmsg) {
  static uv_once_t once = UV_ONCE_INIT;
  uv_once(&once, global_init); /* curl_global_init is not thread-safe */
  if (uv_mutex_init(&s->mu))
    return LMZ_ENOMEM;
  if (uv_cond_init(&s->cv)) {
    uv_mutex_destroy(&s->mu);
    return LMZ_ENOMEM;
  }
  int rv = uv_async_init(loop, &s->async, async_cb);
  if (rv) {
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    return rv;
  }
  s->async.data = s;
  for (; !rv && s->n_threads < SMTP_THREADS; s->n_threads++)
    if ((rv = uv_thread_create(&s->threads[s->n_threads], sender_thread, s)))
      break;
  if (!rv)
    return 0;
  lmz__errmsg_printf(errmsg, "mail: cannot start the smtp threads: %s", uv_strerror(rv));
  stop_threads(s);
  join_threads(s);
  uv_close((uv_handle_t *)&s->async, async_closed); /* frees s */
  return rv;
}

int lmz__mail_smtp_init(lmz_mail_sender_t *h, const struct lmz_mail_config *cfg,
                        char *errmsg) {
  struct smtp *s = calloc(1, sizeof *s);
  if (!s)
    return LMZ_ENOMEM;
  atomic_init(&s->stop, false);
  int rv = smtp_config(s, cfg, errmsg);
  if (rv) {
    smtp_free(s);
    return rv;
  }
  if ((rv = start_threads(s, h->loop, errmsg)))
    return rv; /* s is freed on the loop; nothing of h is used */
  h->ops = &smtp_ops;
  h->impl = s;
  return 0;
}
