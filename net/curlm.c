/* net/curlm.c - libcurl multi on a libuv loop (net/curlm.h).
 *
 * Happy path:
 *  1. lmz_curlm_add puts the easy handle into the multi handle; libcurl asks
 *     for a timeout of 0 (timer_fn), so the transfer starts on the next loop
 *     iteration (timer_cb -> curl_multi_socket_action(CURL_SOCKET_TIMEOUT));
 *  2. libcurl tells us which sockets to watch for what (socket_fn): one
 *     uv_poll per socket, attached with curl_multi_assign; readiness calls
 *     curl_multi_socket_action for that socket (poll_cb);
 *  3. after every socket_action, finished transfers are read with
 *     curl_multi_info_read, removed from the multi handle and reported.
 * Failure modes:
 *  1. uv_poll_init_socket / uv_poll_start fails: socket_fn returns -1, so
 *     libcurl fails the transfers using that socket (reported as in 3);
 *  2. a poll reports an error: CURL_CSELECT_ERR, libcurl fails the transfer;
 *  3. close with transfers in flight: each is removed from the multi handle
 *     (libcurl closes their connections and says CURL_POLL_REMOVE), the
 *     multi handle is cleaned up, remaining polls and the timer are closed;
 *     when the last handle's close callback ran, every canceled transfer's
 *     callback runs with LMZ_ECANCELED, then close_cb (the memory is the
 *     caller's again).
 *  4. a user callback closes the driver: the info loop stops at once (the
 *     multi handle is gone; the rest are canceled transfers).
 * libcurl never calls back into us outside socket_action, add, remove and
 * cleanup, and we never call socket_action from inside its callbacks (the
 * timer is always armed, never run inline). */
#include "net/curlm.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

struct lmz__curlm_xfer {
  CURL *easy;
  lmz_curlm_done_cb cb;
  void *ud;
  struct lmz__curlm_xfer *prev, *next;
};

struct lmz__curlm_sock {
  uv_poll_t poll;
  curl_socket_t fd;
  lmz_curlm_t *m;
  struct lmz__curlm_sock *prev, *next;
};

static void finish_close(lmz_curlm_t *m) {
  struct lmz__curlm_xfer *x = m->canceled;
  m->canceled = NULL;
  while (x) {
    struct lmz__curlm_xfer *next = x->next;
    x->cb(x->ud, x->easy, LMZ_ECANCELED, CURLE_ABORTED_BY_CALLBACK);
    free(x);
    x = next;
  }
  if (m->close_cb)
    m->close_cb(m->close_ud); /* m is the caller's again */
}

static void handle_closed(lmz_curlm_t *m) {
  if (--m->n_handles == 0 && m->closing)
    finish_close(m);
}

static void timer_closed(uv_handle_t *h) { handle_closed(h->data); }

static void sock_closed(uv_handle_t *h) {
  struct lmz__curlm_sock *s = h->data;
  lmz_curlm_t *m = s->m;
  free(s);
  handle_closed(m);
}

static void sock_close(lmz_curlm_t *m, struct lmz__curlm_sock *s) {
  if (s->prev)
    s->prev->next = s->next;
  else
    m->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void xfer_unlink(struct lmz__curlm_xfer **head,
                        struct lmz__curlm_xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    *head = x->next;
  if (x->next)
    x->next->prev = x->prev;
  x->prev = x->next = NULL;
}

static void xfer_push(struct lmz__curlm_xfer **head,
                      struct lmz__curlm_xfer *x) {
  x->prev = NULL;
  x->next = *head;
  if (*head)
    (*head)->prev = x;
  *head = x;
}

/* Reports finished transfers. A callback may add transfers (fine: the
 * multi handle is not inside a libcurl call here) or close the driver
 * (then the multi handle is gone and we stop). */
static void drain_done(lmz_curlm_t *m) {
  CURLMsg *msg;
  int left;
  while (!m->closing && (msg = curl_multi_info_read(m->multi, &left))) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    struct lmz__curlm_xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(m->multi, easy);
    if (!x)
      continue; /* not ours: cannot happen, nothing to report to */
    xfer_unlink(&m->xfers, x);
    m->n_active--;
    x->cb(x->ud, easy, 0, code);
    free(x);
  }
}

static void timer_cb(uv_timer_t *t) {
  lmz_curlm_t *m = t->data;
  int running;
  curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  drain_done(m);
}

static void poll_cb(uv_poll_t *p, int status, int events) {
  struct lmz__curlm_sock *s = p->data;
  lmz_curlm_t *m = s->m;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE)
      flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
      flags |= CURL_CSELECT_OUT;
  }
  int running;
  /* s may be closed (not freed) inside: read nothing from it afterwards */
  curl_multi_socket_action(m->multi, s->fd, flags, &running);
  drain_done(m);
}

/* CURLMOPT_TIMERFUNCTION: -1 = no timeout; else fire once after ms. Never
 * runs socket_action inline (libcurl forbids it from this callback). */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp) {
  lmz_curlm_t *m = userp;
  (void)multi;
  if (m->closing)
    return 0;
  if (timeout_ms < 0)
    uv_timer_stop(&m->timer);
  else
    uv_timer_start(&m->timer, timer_cb, (uint64_t)timeout_ms, 0);
  return 0;
}

static struct lmz__curlm_sock *sock_open(lmz_curlm_t *m, curl_socket_t fd) {
  struct lmz__curlm_sock *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  if (uv_poll_init_socket(m->loop, &s->poll, fd) != 0) {
    free(s);
    return NULL;
  }
  s->fd = fd;
  s->m = m;
  s->poll.data = s;
  s->next = m->socks;
  if (m->socks)
    m->socks->prev = s;
  m->socks = s;
  m->n_handles++;
  curl_multi_assign(m->multi, fd, s);
  return s;
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for `what`, or stop watching it
 * (libcurl says REMOVE before it closes the socket). */
static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp,
                     void *socketp) {
  lmz_curlm_t *m = userp;
  struct lmz__curlm_sock *s = socketp;
  (void)easy;
  if (what == CURL_POLL_REMOVE) {
    if (s) {
      curl_multi_assign(m->multi, fd, NULL);
      sock_close(m, s);
    }
    return 0;
  }
  if (m->closing)
    return -1;
  if (!s && !(s = sock_open(m, fd)))
    return -1;
  int ev = 0;
  if (what & CURL_POLL_IN)
    ev |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    ev |= UV_WRITABLE;
  return uv_poll_start(&s->poll, ev, poll_cb) == 0 ? 0 : -1;
}

int lmz_curlm_init(lmz_curlm_t *m, uv_loop_t *loop, char *errmsg) {
  static bool global_done;
  if (!global_done) {
    CURLcode gc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (gc != CURLE_OK) {
      lmz__errmsg_printf(errmsg, "curl_global_init: %s", curl_easy_strerror(gc));
      return LMZ_EIO;
    }
    global_done = true;
  }
  *m = (lmz_curlm_t){.loop = loop};
  if (!(m->multi = curl_multi_init())) {
    lmz__errmsg_printf(errmsg, "curl_multi_init failed");
    return LMZ_ENOMEM;
  }
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
  curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
  curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
  uv_timer_init(loop, &m->timer);
  m->timer.data = m;
  m->n_handles = 1;
  return 0;
}

int lmz_curlm_add(lmz_curlm_t *m, CURL *easy, lmz_curlm_done_cb cb, void *ud) {
  if (m->closing)
    return LMZ_ECANCELED;
  struct lmz__curlm_xfer *x = calloc(1, sizeof *x);
  if (!x)
    return LMZ_ENOMEM;
  *x = (struct lmz__curlm_xfer){.easy = easy, .cb = cb, .ud = ud};
  curl_easy_setopt(easy, CURLOPT_PRIVATE, (char *)x);
  /* never join a resolver thread on the loop (removal while resolving) */
  curl_easy_setopt(easy, CURLOPT_QUICK_EXIT, 1L);
  CURLMcode mc = curl_multi_add_handle(m->multi, easy);
  if (mc != CURLM_OK) {
    free(x);
    return mc == CURLM_OUT_OF_MEMORY ? LMZ_ENOMEM : LMZ_EIO;
  }
  xfer_push(&m->xfers, x);
  m->n_active++;
  return 0;
}

size_t lmz_curlm_active(const lmz_curlm_t *m) { return m->n_active; }

void lmz_curlm_close(lmz_curlm_t *m, lmz_curlm_close_cb close_cb, void *ud) {
  m->closing = true;
  m->close_cb = close_cb;
  m->close_ud = ud;
  struct lmz__curlm_xfer *x;
  while ((x = m->xfers)) {
    xfer_unlink(&m->xfers, x);
    curl_multi_remove_handle(m->multi, x->easy);
    xfer_push(&m->canceled, x);
  }
  m->n_active = 0;
  /* closes the cached connections: REMOVE for their sockets */
  curl_multi_cleanup(m->multi);
  m->multi = NULL;
  while (m->socks) /* anything libcurl did not say REMOVE for */
    sock_close(m, m->socks);
  uv_close((uv_handle_t *)&m->timer, timer_closed);
}
