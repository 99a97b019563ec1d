/* auth/mail_dev.c - the dev sender (auth/mail.h): each message becomes a
 * file DATA_DIR/outbox/<unix-ms>-<seq>.eml (mode 0600) and one log line
 * carrying the first link of its text, so `lmzd --dev` logs a user in with
 * no email setup: follow the link from the log or open the newest file.
 *
 * Happy path: lmz_mail_send (checks done by mail.c) copies the message into
 * a request -> uv_queue_work writes the file on the thread pool (the loop
 * never blocks on the disk) -> after_work logs the link and calls cb(0).
 * Failure modes:
 *  1. the outbox cannot be created at start: LMZ_EIO with the path;
 *  2. a write fails (disk full, folder removed): cb gets LMZ_EIO and an
 *     errmsg naming the outbox, never the message;
 *  3. close with sends in flight: each write still finishes its (small)
 *     file, but its cb runs with LMZ_ECANCELED; close_cb follows the last
 *     one, always from a later loop iteration (a handle's close phase). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth/mail.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.auth.mail");

struct dev_sender {
  char *dir, *from;
  uint64_t seq;
  unsigned pending; /* sends whose after_work has not run yet */
  bool closing;
  uv_timer_t defer; /* never started: its uv_close defers close_cb */
  lmz_mail_close_cb close_cb;
  void *close_ud;
};

struct dev_req {
  uv_work_t work;
  struct dev_sender *s;
  char *path, *data, *link;
  size_t len;
  int status;
  lmz_mail_cb cb;
  void *ud;
};

/* ---- building the file --------------------------------------------------- */

/* The first http(s) URL of `text`, up to white space (malloc'd or NULL). */
static char *first_link(const char *text) {
  const char *p = text ? strstr(text, "http") : NULL;
  while (p && strncmp(p, "http://", 7) && strncmp(p, "https://", 8))
    p = strstr(p + 4, "http");
  if (!p)
    return NULL;
  size_t n = strcspn(p, " \t\r\n\"'<>");
  return strndup(p, n);
}

static int build(struct dev_req *r, const struct lmz_mail_msg *m) {
  struct dev_sender *s = r->s;
  unsigned long long now_ms = (unsigned long long)time(NULL) * 1000u;
  lmz_buf p = LMZ_BUF_INIT, d = LMZ_BUF_INIT;
  int rv = lmz_buf_printf(&p, "%s/%llu-%06llu.eml%c", s->dir, now_ms,
                          (unsigned long long)++s->seq, '\0');
  if (!rv)
    rv = lmz_buf_printf(&d,
                        "From: %s\r\nTo: %s\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n%s%s",
                        s->from, m->to, m->subject, m->text ? m->text : "",
                        m->html ? "\r\n----- text/html -----\r\n" : "",
                        m->html ? m->html : "");
  if (rv) {
    lmz_buf_free(&p);
    lmz_buf_free(&d);
    return LMZ_ENOMEM;
  }
  size_t unused;
  r->path = (char *)lmz_buf_detach(&p, &unused);
  r->data = (char *)lmz_buf_detach(&d, &r->len);
  r->link = first_link(m->text ? m->text : m->html);
  return 0;
}

/* ---- the thread pool's part ---------------------------------------------- */

/* Written under a temporary name and renamed, so a reader of the outbox
 * (a user, a test) never sees a partly written message. */
static void write_file(uv_work_t *w) {
  struct dev_req *r = w->data;
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", r->path) >= (int)sizeof tmp) {
    r->status = LMZ_EIO;
    return;
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    r->status = LMZ_EIO;
    return;
  }
  size_t off = 0;
  while (off < r->len) {
    ssize_t k = write(fd, r->data + off, r->len - off);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      break;
    off += (size_t)k;
  }
  int closed = close(fd);
  r->status = off == r->len && closed == 0 && rename(tmp, r->path) == 0 ? 0 : LMZ_EIO;
  if (r->status)
    unlink(tmp);
}

/* ---- back on the loop ---------------------------------------------------- */

static void req_free(struct dev_req *r) {
  free(r->path);
  free(r->data);
  free(r->link);
  free(r);
}

static void defer_closed(uv_handle_t *h) {
  struct dev_sender *s = h->data;
  if (s->close_cb)
    s->close_cb(s->close_ud);
  free(s->dir);
  free(s->from);
  free(s);
}

static void after_write(uv_work_t *w, int status) {
  struct dev_req *r = w->data;
  struct dev_sender *s = r->s;
  char msg[LMZ_ERRMSG_LEN] = "";
  int st = r->status;
  if (status == UV_ECANCELED || s->closing) {
    st = LMZ_ECANCELED;
    lmz__errmsg_printf(msg, "dev outbox %s: sender closing", s->dir);
  } else if (st) {
    lmz__errmsg_printf(msg, "dev outbox %s: cannot write a message file", s->dir);
    LMZ_LOG_WARN(&log_ns, "%s", msg);
  } else {
    LMZ_LOG_INFO(&log_ns, "dev mail written to %s%s%s", r->path,
                 r->link ? "; link: " : "", r->link ? r->link : "");
  }
  r->cb(r->ud, st, st ? msg : NULL);
  req_free(r);
  if (--s->pending == 0 && s->closing)
    uv_close((uv_handle_t *)&s->defer, defer_closed);
}

static int dev_send(lmz_mail_sender_t *base, const struct lmz_mail_msg *m,
                    lmz_mail_cb cb, void *ud) {
  struct dev_sender *s = base->impl;
  if (s->closing)
    return LMZ_ECANCELED;
  struct dev_req *r = calloc(1, sizeof *r);
  if (!r)
    return LMZ_ENOMEM;
  r->s = s;
  r->cb = cb;
  r->ud = ud;
  r->work.data = r;
  int rv = build(r, m);
  if (!rv)
    rv = uv_queue_work(base->loop, &r->work, write_file, after_write);
  if (rv) {
    req_free(r);
    return rv;
  }
  s->pending++;
  return 0;
}

static void dev_close(lmz_mail_sender_t *base, lmz_mail_close_cb cb, void *ud) {
  struct dev_sender *s = base->impl;
  if (s->closing)
    return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ud = ud;
  /* With writes in flight, the last after_work closes `defer`. */
  if (s->pending == 0)
    uv_close((uv_handle_t *)&s->defer, defer_closed);
}

static const struct lmz_mail_ops dev_ops = {dev_send, dev_close};

int lmz__mail_dev_init(lmz_mail_sender_t *h, const struct lmz_mail_config *cfg,
                       char *errmsg) {
  if (!cfg->outbox_dir || !*cfg->outbox_dir) {
    lmz__errmsg_printf(errmsg, "mail: the dev sender needs outbox_dir");
    return LMZ_EBADCONFIG;
  }
  if (mkdir(cfg->outbox_dir, 0700) && errno != EEXIST) {
    lmz__errmsg_printf(errmsg, "mail: cannot create outbox %s: %s",
                       cfg->outbox_dir, strerror(errno));
    return LMZ_EIO;
  }
  struct dev_sender *s = calloc(1, sizeof *s);
  if (!s || !(s->dir = strdup(cfg->outbox_dir)) || !(s->from = strdup(cfg->from))) {
    if (s)
      free(s->dir);
    free(s);
    return LMZ_ENOMEM;
  }
  h->ops = &dev_ops;
  h->impl = s;
  uv_timer_init(h->loop, &s->defer);
  s->defer.data = s;
  return 0;
}
