/* net/curlm.h - libcurl's multi interface driven by a libuv loop.
 *
 * The caller builds a CURL easy handle (any protocol it allowed on it) and
 * hands it to lmz_curlm_add; the driver runs the transfer on the loop
 * (CURLMOPT_SOCKETFUNCTION -> uv_poll, CURLMOPT_TIMERFUNCTION -> uv_timer)
 * and reports its end through the transfer's callback. Nothing blocks the
 * loop: sockets are non-blocking, DNS runs on libcurl's resolver thread
 * (Debian's libcurl4 is built with the threaded resolver, "AsynchDNS"), and
 * every easy handle is given CURLOPT_QUICK_EXIT so that removing a transfer
 * still resolving never joins that thread on the loop.
 *
 * Contract (libuv style):
 *  - lmz_curlm_add returns 0 and the callback runs exactly once, later, on
 *    the loop thread (never from inside lmz_curlm_add); or it returns an
 *    error and the callback never runs. The easy handle stays the caller's:
 *    the driver never frees it; the callback may free it (it is out of the
 *    multi handle by then) or add it again.
 *  - lmz_curlm_close cancels every transfer in flight: each callback runs
 *    with status LMZ_ECANCELED, on a later loop iteration, then close_cb.
 *    When close_cb runs nothing of the driver is left on the loop.
 *
 * Threads: loop thread only. curl_global_init must have run (the first
 * lmz_curlm_init calls it; it is not thread-safe, so a program with several
 * loop threads calls curl_global_init itself first). */
#ifndef LMZ_NET_CURLM_H
#define LMZ_NET_CURLM_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct lmz_curlm_s lmz_curlm_t;

/* status 0: the transfer ended and `code` says how (CURLE_OK or an error);
 * status LMZ_ECANCELED: the driver closed before it ended (code is
 * CURLE_ABORTED_BY_CALLBACK). */
typedef void (*lmz_curlm_done_cb)(void *ud, CURL *easy, int status,
                                  CURLcode code);
typedef void (*lmz_curlm_close_cb)(void *ud);

struct lmz__curlm_xfer;
struct lmz__curlm_sock;
/* A handle (README "Code conventions"): the caller allocates it; all fields
 * are private to curlm.c. */
struct lmz_curlm_s {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct lmz__curlm_xfer *xfers;    /* in flight (in the multi handle) */
  struct lmz__curlm_xfer *canceled; /* removed by close, callbacks not run */
  struct lmz__curlm_sock *socks;    /* polls open (not closing) */
  size_t n_active;
  int n_handles; /* uv handles initialized and not closed yet */
  bool closing;
  lmz_curlm_close_cb close_cb;
  void *close_ud;
};

/* Initializes the caller's `m`. Returns 0, LMZ_ENOMEM or LMZ_EIO (libcurl
 * refused; errmsg). On error nothing is left on the loop and `m` may be
 * freed at once. */
int lmz_curlm_init(lmz_curlm_t *m, uv_loop_t *loop, char *errmsg);
/* Starts a transfer (see above). Errors: LMZ_ECANCELED (closing),
 * LMZ_ENOMEM, LMZ_EIO (libcurl refused the handle). */
int lmz_curlm_add(lmz_curlm_t *m, CURL *easy, lmz_curlm_done_cb cb, void *ud);
/* Transfers in flight. */
size_t lmz_curlm_active(const lmz_curlm_t *m);
/* Cancels everything (see above), then calls close_cb (may be NULL); the
 * memory of `m` is the caller's again from then on. Call once. */
void lmz_curlm_close(lmz_curlm_t *m, lmz_curlm_close_cb close_cb, void *ud);

#endif
