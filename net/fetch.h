/* net/fetch.h - outbound HTTP(S) requests on the node's loop, with limits.
 *
 * lmz_net_t is the client behind lmz_fetch (lmz/lmz.h) and the HTTP-API mail
 * sender. One request: URL checked (http/https only, host on the egress
 * allow-list), sent with libcurl on the loop (net/curlm.h), its response
 * read within the limits below, redirects followed here, by us, so that
 * every hop's host is checked against the allow-list BEFORE it is
 * connected to (libcurl's own redirect following would connect first).
 *
 * Limits (all bounded; past one the request ends with an error, nothing
 * partial is delivered):
 *  - timeout_ms: for the whole request, redirects included (LMZ_ETIMEOUT);
 *  - max_response_bytes: response body (LMZ_ETOOBIG, "response too large");
 *  - response head: at most LMZ_NET_MAX_HEADERS header lines of at most
 *    LMZ_NET_MAX_HEADER_LINE bytes each, LMZ_NET_MAX_HEAD_BYTES in all
 *    (LMZ_ETOOBIG);
 *  - max_redirects: hops followed (301/302/303/307/308 with a Location);
 *    one more ends the request with UV_ELOOP ("too many redirects");
 *  - max_request_bytes: request body (LMZ_EINVAL at start);
 *  - max_inflight: requests at once (LMZ_EOVERLOAD at start).
 * Redirects follow the fetch standard: 303 (and 301/302 after a POST)
 * become a GET without body; 307/308 keep method and body. Authorization
 * and Cookie headers are dropped when a redirect changes the host.
 * No proxy is used (proxy environment variables are ignored), so the host
 * checked is the host connected to.
 *
 * The allow-list: exact host names ("api.example.com", compared without
 * case; IPv6 literals in brackets "[::1]"), "*.example.com" for any
 * subdomain (not example.com itself), or "*" for every host. Empty = no
 * host is reachable (the default: egress is opt-in).
 *
 * Threads: loop thread only. Callbacks: lmz_net_fetch returns 0 and cb runs
 * exactly once, later (never from inside lmz_net_fetch); or it returns an
 * error and cb never runs. lmz_net_close cancels requests in flight (their
 * cb gets LMZ_ECANCELED), then close_cb; nothing is left on the loop. */
#ifndef LMZ_NET_FETCH_H
#define LMZ_NET_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/curlm.h"

#define LMZ_NET_MAX_HEADERS 100u           /* request and response */
#define LMZ_NET_MAX_HEADER_LINE 8192u      /* bytes, one header line */
#define LMZ_NET_MAX_HEAD_BYTES (64u * 1024u) /* response head, all lines */
#define LMZ_NET_MAX_URL 8192u

#define LMZ_NET_DEFAULT_TIMEOUT_MS 10000u
#define LMZ_NET_DEFAULT_MAX_RESPONSE (1024u * 1024u)
#define LMZ_NET_DEFAULT_MAX_REQUEST (1024u * 1024u)
#define LMZ_NET_DEFAULT_MAX_REDIRECTS 5u
#define LMZ_NET_DEFAULT_MAX_INFLIGHT 1024u

typedef struct lmz_net_s lmz_net_t;

/* Borrowed for lmz_net_init only (copied). Zeros are the defaults above,
 * except max_redirects, taken as is (0 = no redirect followed) unless
 * redirects_default is set. */
struct lmz_net_opts {
  const char *const *allow; /* egress allow-list, n_allow entries */
  size_t n_allow;
  uint32_t timeout_ms;         /* per request, the default and the cap */
  uint64_t max_response_bytes; /* response body cap */
  uint64_t max_request_bytes;  /* request body cap */
  uint32_t max_redirects;
  bool redirects_default; /* max_redirects = LMZ_NET_DEFAULT_MAX_REDIRECTS */
  uint32_t max_inflight;  /* requests at once; past it LMZ_EOVERLOAD */
  const char *user_agent; /* NULL = "lmz/<version>" */
};

/* One request; everything is copied by lmz_net_fetch. */
struct lmz_net_request {
  const char *url;
  const char *method; /* NULL = "GET"; an HTTP token (e.g. "POST") */
  const char *const *headers; /* "Name: value" lines, n_headers of them */
  size_t n_headers;
  const void *body; /* may be NULL; sent when body_len > 0 or method != GET */
  size_t body_len;
  uint32_t timeout_ms; /* 0 = the client's; never above the client's */
  /* W3C Trace Context (core/trace.h): a valid trace id (NUL-terminated)
   * sends `traceparent: 00-<trace_id>-<fresh parent id>-01` on every hop,
   * so the remote's work joins the caller's trace; NULL or invalid sends
   * none. A traceparent among `headers` wins: it is sent as given and no
   * other is added (an actor relaying a request's own trace). */
  const char *trace_id;
};

struct lmz_net_header {
  const char *name; /* lowercased */
  const char *value;
};

/* The final response (after redirects); valid only during the callback. */
struct lmz_net_response {
  long status;
  const struct lmz_net_header *headers;
  size_t n_headers;
  const uint8_t *body;
  size_t body_len;
  const char *url; /* the URL that answered */
};

/* status 0: `res` is the response (any HTTP status). Else an error code
 * (see above; LMZ_EIO for a transport failure: refused, reset, TLS, DNS)
 * with `errmsg` (one line, names the host, never the body); res is NULL. */
typedef void (*lmz_net_fetch_cb)(void *ud, int status,
                                 const struct lmz_net_response *res,
                                 const char *errmsg);
typedef void (*lmz_net_close_cb)(void *ud);

/* A handle (README "Code conventions"): the caller allocates it; all fields
 * are private to fetch.c. */
struct lmz_net_s {
  void *data; /* public: for the user */
  uv_loop_t *loop;
  lmz_curlm_t cm;
  char **allow;
  size_t n_allow;
  uint32_t timeout_ms;
  uint64_t max_response, max_request;
  uint32_t max_redirects, max_inflight;
  char *user_agent;
  size_t n_active;
  bool closing;
  lmz_net_close_cb close_cb;
  void *close_ud;
};

/* Initializes the caller's `n`. Returns 0, or LMZ_ENOMEM / LMZ_EIO /
 * LMZ_EINVAL (errmsg); on error nothing is left on the loop and `n` may be
 * freed at once. */
int lmz_net_init(lmz_net_t *n, uv_loop_t *loop, const struct lmz_net_opts *opts,
                 char *errmsg);
/* Checks a request without sending it (URL, scheme, host allowed, method,
 * headers, body size). Returns 0, LMZ_EINVAL or LMZ_EACCESS (host not on
 * the allow-list), with errmsg. lmz_net_fetch runs the same check. */
int lmz_net_check(const lmz_net_t *n, const struct lmz_net_request *req,
                  char *errmsg);
/* Starts a request. Errors (cb will not run): those of lmz_net_check,
 * LMZ_EOVERLOAD (max_inflight), LMZ_ECANCELED (closing), LMZ_ENOMEM,
 * LMZ_EIO. */
int lmz_net_fetch(lmz_net_t *n, const struct lmz_net_request *req,
                  lmz_net_fetch_cb cb, void *ud, char *errmsg);
size_t lmz_net_active(const lmz_net_t *n);
uint32_t lmz_net_max_inflight(const lmz_net_t *n);
bool lmz_net_is_closing(const lmz_net_t *n);
/* Cancels every request, releases what the client holds, then calls
 * close_cb (may be NULL): from then on the memory of `n` is the caller's. */
void lmz_net_close(lmz_net_t *n, lmz_net_close_cb close_cb, void *ud);

/* Pure: is `host` (as in a URL, lowercase or not) on the list? */
bool lmz_net_host_allowed(const char *const *allow, size_t n_allow,
                          const char *host);

#endif
