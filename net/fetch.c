/* net/fetch.c - outbound HTTP requests with limits (net/fetch.h).
 *
 * Happy path:
 *  1. lmz_net_fetch checks the request (parse_url: scheme http/https, host
 *     on the allow-list; method, headers, body size) and copies it;
 *  2. setup_easy configures one hop: the parsed URL handle itself
 *     (CURLOPT_CURLU, so the host we checked is the host libcurl connects
 *     to), protocols limited to http/https, libcurl's own redirects off, the
 *     time left of the request's deadline, the body cap;
 *  3. header_cb and write_cb collect the response within the bounds;
 *  4. done_cb: a 3xx with a Location is a redirect we follow (redirect():
 *     the new host is checked before the next hop starts), anything else is
 *     the response, handed to the callback; then the request is freed.
 * Failure modes:
 *  1. bad URL / scheme / method / header / body: LMZ_EINVAL at start;
 *  2. host not allowed: LMZ_EACCESS at start, or at a redirect (the request
 *     ends; the redirect target is never connected to);
 *  3. response head or body past its bound: the callback returns a short
 *     count, libcurl aborts the transfer, LMZ_ETOOBIG;
 *  4. deadline: CURLE_OPERATION_TIMEDOUT (or no time left for a redirect
 *     hop), LMZ_ETIMEOUT;
 *  5. too many redirects: UV_ELOOP;
 *  6. transport errors (DNS, refused, reset, TLS): LMZ_EIO with libcurl's
 *     message;
 *  7. close: net/curlm.c cancels the transfers; each request's callback
 *     gets LMZ_ECANCELED, then the client's close callback runs. */
#include "net/fetch.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/trace.h"
#include "net/curlm.h"

struct req {
  lmz_net_t *net;
  CURL *easy;
  CURLU *url;
  char *method;
  char **headers; /* "Name: value" copies */
  size_t n_headers;
  char traceparent[80]; /* "traceparent: 00-..." or "" (lmz_net_request) */
  struct curl_slist *slist;
  uint8_t *body;
  size_t body_len;
  bool has_body;
  uint64_t deadline; /* uv_now() ms */
  uint32_t timeout_ms;
  uint32_t hops;
  /* the response of the current hop */
  lmz_buf head; /* "name\0value\0" pairs */
  size_t n_head, head_total;
  lmz_buf body_in;
  int abort_status; /* set by a callback that stopped the transfer */
  const char *abort_msg;
  char errbuf[CURL_ERROR_SIZE];
  lmz_net_fetch_cb cb;
  void *ud;
};

/* ---- checks (pure) -------------------------------------------------------- */

static bool is_tchar(int c) { /* RFC 9110 5.6.2 token characters */
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s, size_t max) {
  size_t n = 0;
  for (; s[n]; n++)
    if (n >= max || !is_tchar((unsigned char)s[n]))
      return false;
  return n > 0;
}

/* "Name: value": token name, value without CR/LF (no header injection);
 * the names libcurl must own (framing, Host) are refused. */
static int check_header(const char *h, char *errmsg) {
  size_t len = strnlen(h, LMZ_NET_MAX_HEADER_LINE + 1);
  const char *colon = memchr(h, ':', len);
  if (len > LMZ_NET_MAX_HEADER_LINE || !colon || colon == h) {
    lmz__errmsg_printf(errmsg, "bad request header (\"Name: value\", at most %u bytes)",
                       LMZ_NET_MAX_HEADER_LINE);
    return LMZ_EINVAL;
  }
  for (const char *p = h; p < colon; p++)
    if (!is_tchar((unsigned char)*p)) {
      lmz__errmsg_printf(errmsg, "bad request header name");
      return LMZ_EINVAL;
    }
  if (strpbrk(colon, "\r\n")) {
    lmz__errmsg_printf(errmsg, "request header value contains CR or LF");
    return LMZ_EINVAL;
  }
  static const char *const owned[] = {"host", "content-length",
                                      "transfer-encoding", "connection"};
  size_t nl = (size_t)(colon - h);
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(owned); i++)
    if (strlen(owned[i]) == nl && strncasecmp(h, owned[i], nl) == 0) {
      lmz__errmsg_printf(errmsg, "request header %s is set by the client", owned[i]);
      return LMZ_EINVAL;
    }
  return 0;
}

static bool scheme_ok(CURLU *u) {
  char *s = NULL;
  bool ok = curl_url_get(u, CURLUPART_SCHEME, &s, 0) == CURLUE_OK && s &&
            (strcmp(s, "http") == 0 || strcmp(s, "https") == 0);
  curl_free(s);
  return ok;
}

/* The host of `u` is on the allow-list? errmsg names it if not. */
static int host_check(const lmz_net_t *n, CURLU *u, char *errmsg) {
  char *host = NULL;
  if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) {
    lmz__errmsg_printf(errmsg, "URL has no host");
    return LMZ_EINVAL;
  }
  int rv = 0;
  if (!lmz_net_host_allowed((const char *const *)n->allow, n->n_allow, host)) {
    lmz__errmsg_printf(errmsg, "host %.200s is not on the fetch allow-list", host);
    rv = LMZ_EACCESS;
  }
  curl_free(host);
  return rv;
}

/* Parses `url` into *out (NULL to only check). Relative to `base` if set. */
static int parse_url(const lmz_net_t *n, CURLU *base, const char *url,
                     CURLU **out, char *errmsg) {
  if (!url || strnlen(url, LMZ_NET_MAX_URL + 1) > LMZ_NET_MAX_URL) {
    lmz__errmsg_printf(errmsg, "URL missing or longer than %u bytes", LMZ_NET_MAX_URL);
    return LMZ_EINVAL;
  }
  CURLU *u = base ? curl_url_dup(base) : curl_url();
  if (!u)
    return LMZ_ENOMEM;
  int rv = 0;
  CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
  if (uc != CURLUE_OK) {
    lmz__errmsg_printf(errmsg, "bad URL: %s", curl_url_strerror(uc));
    rv = LMZ_EINVAL;
  } else if (!scheme_ok(u)) {
    lmz__errmsg_printf(errmsg, "URL scheme must be http or https");
    rv = LMZ_EINVAL;
  } else {
    rv = host_check(n, u, errmsg);
  }
  if (rv || !out)
    curl_url_cleanup(u);
  else
    *out = u;
  return rv;
}

int lmz_net_check(const lmz_net_t *n, const struct lmz_net_request *req,
                  char *errmsg) {
  if (req->method && !is_token(req->method, 32)) {
    lmz__errmsg_printf(errmsg, "bad HTTP method");
    return LMZ_EINVAL;
  }
  if (req->n_headers > LMZ_NET_MAX_HEADERS || (req->n_headers && !req->headers)) {
    lmz__errmsg_printf(errmsg, "more than %u request headers", LMZ_NET_MAX_HEADERS);
    return LMZ_EINVAL;
  }
  for (size_t i = 0; i < req->n_headers; i++) {
    int rv = req->headers[i] ? check_header(req->headers[i], errmsg) : LMZ_EINVAL;
    if (rv)
      return rv;
  }
  if (req->body_len > n->max_request || (req->body_len && !req->body)) {
    lmz__errmsg_printf(errmsg, "request body larger than %llu bytes",
                       (unsigned long long)n->max_request);
    return LMZ_EINVAL;
  }
  return parse_url(n, NULL, req->url, NULL, errmsg);
}

/* ---- the request's life --------------------------------------------------- */

static void req_free(struct req *r) {
  if (r->easy)
    curl_easy_cleanup(r->easy);
  curl_url_cleanup(r->url);
  curl_slist_free_all(r->slist);
  for (size_t i = 0; i < r->n_headers; i++)
    free(r->headers[i]);
  free(r->headers);
  free(r->body);
  free(r->method);
  lmz_buf_free(&r->head);
  lmz_buf_free(&r->body_in);
  free(r);
}

static void finish(struct req *r, int status, const struct lmz_net_response *res,
                   const char *errmsg) {
  r->net->n_active--;
  r->cb(r->ud, status, res, status ? errmsg : NULL);
  req_free(r);
}

static void failf(struct req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failf(struct req *r, int status, const char *fmt, ...) {
  char msg[LMZ_ERRMSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  finish(r, status, NULL, msg);
}

static void abort_with(struct req *r, int status, const char *msg) {
  if (!r->abort_status) {
    r->abort_status = status;
    r->abort_msg = msg;
  }
}

/* One response header line (libcurl hands them one by one, the status
 * line and the blank line included). Bounded; lowercased names. */
static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud) {
  struct req *r = ud;
  size_t len = size * nitems;
  r->head_total += len;
  if (len > LMZ_NET_MAX_HEADER_LINE || r->head_total > LMZ_NET_MAX_HEAD_BYTES) {
    abort_with(r, LMZ_ETOOBIG, "response head too large");
    return 0;
  }
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a (new) status line */
    lmz_buf_reset(&r->head);
    r->n_head = 0;
    return len;
  }
  const char *colon = memchr(buf, ':', len);
  if (!colon || colon == buf || buf[0] == ' ' || buf[0] == '\t')
    return len; /* blank line, obsolete folding: ignored */
  if (r->n_head >= LMZ_NET_MAX_HEADERS) {
    abort_with(r, LMZ_ETOOBIG, "too many response headers");
    return 0;
  }
  size_t nl = (size_t)(colon - buf);
  const char *v = colon + 1, *end = buf + len;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' ||
                     end[-1] == '\t'))
    end--;
  size_t at = r->head.len;
  if (lmz_buf_reserve(&r->head, nl + (size_t)(end - v) + 2)) {
    abort_with(r, LMZ_ENOMEM, "out of memory");
    return 0;
  }
  for (size_t i = 0; i < nl; i++)
    r->head.data[at + i] = (uint8_t)tolower((unsigned char)buf[i]);
  r->head.data[at + nl] = 0;
  memcpy(r->head.data + at + nl + 1, v, (size_t)(end - v));
  r->head.data[at + nl + 1 + (size_t)(end - v)] = 0;
  r->head.len = at + nl + (size_t)(end - v) + 2;
  r->n_head++;
  return len;
}

static size_t write_cb(char *buf, size_t size, size_t nitems, void *ud) {
  struct req *r = ud;
  size_t len = size * nitems;
  if (r->body_in.len + len > r->net->max_response) {
    abort_with(r, LMZ_ETOOBIG, "response too large");
    return 0;
  }
  if (lmz_buf_append(&r->body_in, buf, len)) {
    abort_with(r, LMZ_ENOMEM, "out of memory");
    return 0;
  }
  return len;
}

static const char *head_get(const struct req *r, const char *name) {
  const char *p = (const char *)r->head.data;
  for (size_t i = 0; i < r->n_head; i++) {
    const char *v = p + strlen(p) + 1;
    if (strcmp(p, name) == 0)
      return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

static int build_slist(struct req *r) {
  curl_slist_free_all(r->slist);
  r->slist = NULL;
  /* no 100-continue round trip: the body is small and bounded */
  struct curl_slist *l = curl_slist_append(NULL, "Expect:");
  for (size_t i = 0; l && i <= r->n_headers; i++) {
    const char *h = i < r->n_headers ? r->headers[i] : r->traceparent;
    if (!*h)
      break; /* no traceparent of ours */
    struct curl_slist *nl = curl_slist_append(l, h);
    if (!nl) {
      curl_slist_free_all(l);
      l = NULL;
    }
    l = nl;
  }
  r->slist = l;
  return l ? 0 : LMZ_ENOMEM;
}

static void setup_method(struct req *r) {
  CURL *e = r->easy;
  if (strcmp(r->method, "HEAD") == 0) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    return;
  }
  if (strcmp(r->method, "GET") == 0 && !r->has_body) {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    return;
  }
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? (char *)r->body : "");
  if (strcmp(r->method, "POST") != 0)
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
}

/* Configures the easy handle for the current hop (fresh or reset). */
static int setup_easy(struct req *r) {
  lmz_net_t *n = r->net;
  uint64_t now = uv_now(n->loop);
  if (now >= r->deadline)
    return LMZ_ETIMEOUT;
  long left = (long)(r->deadline - now);
  if (build_slist(r))
    return LMZ_ENOMEM;
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_CURLU, r->url);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* redirect() does */
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, ""); /* the checked host is the peer */
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, left);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, left);
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)n->max_response);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_USERAGENT, n->user_agent);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->slist);
  setup_method(r);
  return 0;
}

static void done_cb(void *ud, CURL *easy, int status, CURLcode code);

static int start_hop(struct req *r) {
  r->errbuf[0] = 0;
  int rv = setup_easy(r);
  return rv ? rv : lmz_curlm_add(&r->net->cm, r->easy, done_cb, r);
}

static void drop_headers(struct req *r, const char *const *names, size_t nn) {
  size_t w = 0;
  for (size_t i = 0; i < r->n_headers; i++) {
    const char *h = r->headers[i];
    size_t hl = (size_t)(strchr(h, ':') - h);
    bool drop = false;
    for (size_t j = 0; j < nn && !drop; j++)
      drop = strlen(names[j]) == hl && strncasecmp(h, names[j], hl) == 0;
    if (drop)
      free(r->headers[i]);
    else
      r->headers[w++] = r->headers[i];
  }
  r->n_headers = w;
}

/* The fetch standard's method change: 303 (not HEAD), or 301/302 after a
 * POST, become a GET without body or body headers. */
static int redirect_method(struct req *r, long code) {
  bool to_get = (code == 303 && strcmp(r->method, "HEAD") != 0) ||
                ((code == 301 || code == 302) && strcmp(r->method, "POST") == 0);
  if (!to_get)
    return 0;
  char *get = strdup("GET");
  if (!get)
    return LMZ_ENOMEM;
  free(r->method);
  r->method = get;
  free(r->body);
  r->body = NULL;
  r->body_len = 0;
  r->has_body = false;
  static const char *const body_hdrs[] = {"content-type", "content-encoding",
                                          "content-language", "content-location"};
  drop_headers(r, body_hdrs, LMZ_ARRAY_SIZE(body_hdrs));
  return 0;
}

static bool same_host(CURLU *a, CURLU *b) {
  char *ha = NULL, *hb = NULL;
  curl_url_get(a, CURLUPART_HOST, &ha, 0);
  curl_url_get(b, CURLUPART_HOST, &hb, 0);
  bool same = ha && hb && strcasecmp(ha, hb) == 0;
  curl_free(ha);
  curl_free(hb);
  return same;
}

static void redirect(struct req *r, long code, const char *location) {
  lmz_net_t *n = r->net;
  char msg[LMZ_ERRMSG_LEN];
  if (r->hops >= n->max_redirects)
    return failf(r, UV_ELOOP, "too many redirects (limit %u)", n->max_redirects);
  CURLU *next = NULL;
  int rv = parse_url(n, r->url, location, &next, msg);
  if (rv)
    return failf(r, rv, "redirect refused: %s", msg);
  if (!same_host(r->url, next)) { /* credentials stay with their host */
    static const char *const cred[] = {"authorization", "cookie",
                                       "proxy-authorization"};
    drop_headers(r, cred, LMZ_ARRAY_SIZE(cred));
  }
  curl_easy_reset(r->easy); /* drops its reference to the old URL */
  curl_url_cleanup(r->url);
  r->url = next;
  r->hops++;
  lmz_buf_reset(&r->head);
  lmz_buf_reset(&r->body_in);
  r->n_head = r->head_total = 0;
  if ((rv = redirect_method(r, code)))
    return failf(r, rv, "out of memory");
  if ((rv = start_hop(r)))
    failf(r, rv, rv == LMZ_ETIMEOUT ? "timed out after %u ms (redirects)"
                                    : "cannot start redirect hop (%u ms)",
          r->timeout_ms);
}

static void deliver(struct req *r, long code) {
  struct lmz_net_header *hs = calloc(r->n_head ? r->n_head : 1, sizeof *hs);
  char *url = NULL;
  if (!hs)
    return failf(r, LMZ_ENOMEM, "out of memory");
  const char *p = (const char *)r->head.data;
  for (size_t i = 0; i < r->n_head; i++) {
    hs[i].name = p;
    hs[i].value = p + strlen(p) + 1;
    p = hs[i].value + strlen(hs[i].value) + 1;
  }
  curl_url_get(r->url, CURLUPART_URL, &url, 0);
  struct lmz_net_response res = {
      .status = code, .headers = hs, .n_headers = r->n_head,
      .body = r->body_in.data ? r->body_in.data : (const uint8_t *)"",
      .body_len = r->body_in.len, .url = url ? url : ""};
  finish(r, 0, &res, NULL);
  free(hs);
  curl_free(url);
}

static int map_code(CURLcode code) {
  switch (code) {
  case CURLE_OPERATION_TIMEDOUT:
    return LMZ_ETIMEOUT;
  case CURLE_FILESIZE_EXCEEDED:
    return LMZ_ETOOBIG;
  case CURLE_OUT_OF_MEMORY:
    return LMZ_ENOMEM;
  default:
    return LMZ_EIO;
  }
}

static void done_cb(void *ud, CURL *easy, int status, CURLcode code) {
  struct req *r = ud;
  (void)easy;
  if (status)
    return failf(r, status, "request canceled (client closing)");
  if (r->abort_status)
    return failf(r, r->abort_status, "%s", r->abort_msg);
  if (code != CURLE_OK) {
    int rv = map_code(code);
    if (rv == LMZ_ETIMEOUT)
      return failf(r, rv, "timed out after %u ms", r->timeout_ms);
    if (rv == LMZ_ETOOBIG)
      return failf(r, rv, "response too large");
    return failf(r, rv, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(code));
  }
  long http = 0;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
  const char *loc = head_get(r, "location");
  if (loc && (http == 301 || http == 302 || http == 303 || http == 307 ||
              http == 308))
    return redirect(r, http, loc);
  deliver(r, http);
}

/* Our traceparent line for a valid q->trace_id (hostile-safe: bounded
 * read, validated), unless the caller's headers carry one. One parent id
 * names the request on every hop. */
static void make_traceparent(struct req *r, const struct lmz_net_request *q) {
  const char *t = q->trace_id;
  if (!t || !lmz_trace_id_valid(t, strnlen(t, LMZ_TRACE_ID_LEN + 1)))
    return;
  static const char name[] = "traceparent:";
  for (size_t i = 0; i < q->n_headers; i++)
    if (strncasecmp(q->headers[i], name, sizeof name - 1) == 0)
      return;
  char parent[LMZ_CALL_ID_LEN + 1];
  lmz_call_id_mint(parent);
  snprintf(r->traceparent, sizeof r->traceparent, "traceparent: 00-%s-%s-01", t,
           parent);
}

static int copy_request(struct req *r, const struct lmz_net_request *q) {
  if (!(r->method = strdup(q->method ? q->method : "GET")))
    return LMZ_ENOMEM;
  if (q->n_headers && !(r->headers = calloc(q->n_headers, sizeof *r->headers)))
    return LMZ_ENOMEM;
  for (; r->n_headers < q->n_headers; r->n_headers++)
    if (!(r->headers[r->n_headers] = strdup(q->headers[r->n_headers])))
      return LMZ_ENOMEM;
  make_traceparent(r, q);
  r->has_body = q->body_len > 0 || (strcmp(r->method, "GET") != 0 &&
                                    strcmp(r->method, "HEAD") != 0);
  if (q->body_len) {
    if (!(r->body = malloc(q->body_len)))
      return LMZ_ENOMEM;
    memcpy(r->body, q->body, q->body_len);
    r->body_len = q->body_len;
  }
  return 0;
}

int lmz_net_fetch(lmz_net_t *n, const struct lmz_net_request *q,
                  lmz_net_fetch_cb cb, void *ud, char *errmsg) {
  if (n->closing)
    return LMZ_ECANCELED;
  if (n->n_active >= n->max_inflight) {
    lmz__errmsg_printf(errmsg, "%u requests in flight (the limit)", n->max_inflight);
    return LMZ_EOVERLOAD;
  }
  int rv = lmz_net_check(n, q, errmsg);
  if (rv)
    return rv;
  struct req *r = calloc(1, sizeof *r);
  if (!r)
    return LMZ_ENOMEM;
  r->net = n;
  r->cb = cb;
  r->ud = ud;
  r->timeout_ms = q->timeout_ms && q->timeout_ms < n->timeout_ms ? q->timeout_ms
                                                                  : n->timeout_ms;
  r->deadline = uv_now(n->loop) + r->timeout_ms;
  rv = copy_request(r, q);
  if (!rv)
    rv = parse_url(n, NULL, q->url, &r->url, errmsg);
  if (!rv && !(r->easy = curl_easy_init()))
    rv = LMZ_ENOMEM;
  if (!rv)
    rv = start_hop(r);
  if (rv) {
    req_free(r);
    return rv;
  }
  n->n_active++;
  return 0;
}

/* ---- the client ----------------------------------------------------------- */

static void net_free(lmz_net_t *n) {
  for (size_t i = 0; i < n->n_allow; i++)
    free(n->allow[i]);
  free(n->allow);
  free(n->user_agent);
  n->allow = NULL;
  n->n_allow = 0;
  n->user_agent = NULL;
}

static int copy_opts(lmz_net_t *n, const struct lmz_net_opts *o) {
  n->timeout_ms = o->timeout_ms ? o->timeout_ms : LMZ_NET_DEFAULT_TIMEOUT_MS;
  n->max_response = o->max_response_bytes ? o->max_response_bytes
                                          : LMZ_NET_DEFAULT_MAX_RESPONSE;
  n->max_request = o->max_request_bytes ? o->max_request_bytes
                                        : LMZ_NET_DEFAULT_MAX_REQUEST;
  n->max_redirects = o->redirects_default ? LMZ_NET_DEFAULT_MAX_REDIRECTS
                                          : o->max_redirects;
  n->max_inflight = o->max_inflight ? o->max_inflight : LMZ_NET_DEFAULT_MAX_INFLIGHT;
  n->user_agent = strdup(o->user_agent ? o->user_agent : "lmz/" LMZ_VERSION);
  if (!n->user_agent)
    return LMZ_ENOMEM;
  if (o->n_allow && !(n->allow = calloc(o->n_allow, sizeof *n->allow)))
    return LMZ_ENOMEM;
  for (; n->n_allow < o->n_allow; n->n_allow++)
    if (!o->allow[n->n_allow] ||
        !(n->allow[n->n_allow] = strdup(o->allow[n->n_allow])))
      return o->allow[n->n_allow] ? LMZ_ENOMEM : LMZ_EINVAL;
  return 0;
}

int lmz_net_init(lmz_net_t *n, uv_loop_t *loop, const struct lmz_net_opts *opts,
                 char *errmsg) {
  static const struct lmz_net_opts none = {.redirects_default = true};
  *n = (lmz_net_t){.data = n->data, .loop = loop};
  int rv = copy_opts(n, opts ? opts : &none);
  if (rv == LMZ_EINVAL)
    lmz__errmsg_printf(errmsg, "fetch allow-list entry is NULL");
  if (!rv)
    rv = lmz_curlm_init(&n->cm, loop, errmsg);
  if (rv)
    net_free(n);
  return rv;
}

size_t lmz_net_active(const lmz_net_t *n) { return n->n_active; }
uint32_t lmz_net_max_inflight(const lmz_net_t *n) { return n->max_inflight; }
bool lmz_net_is_closing(const lmz_net_t *n) { return n->closing; }

static void curlm_closed(void *ud) {
  lmz_net_t *n = ud;
  net_free(n);
  if (n->close_cb)
    n->close_cb(n->close_ud); /* n is the caller's again */
}

void lmz_net_close(lmz_net_t *n, lmz_net_close_cb close_cb, void *ud) {
  n->closing = true;
  n->close_cb = close_cb;
  n->close_ud = ud;
  lmz_curlm_close(&n->cm, curlm_closed, n);
}
