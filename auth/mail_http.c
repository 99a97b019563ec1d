/* auth/mail_http.c - the Resend-compatible HTTP API sender (auth/mail.h).
 *
 * Happy path: send checks the message (mail_remote_int.h), encodes
 * {"from","to","subject","html","text"} as JSON and POSTs it to the
 * configured endpoint with "Authorization: Bearer KEY" through the node's
 * kind of outbound client (net/fetch.h), whose allow-list holds exactly the
 * endpoint's host and which follows no redirect (an API key never leaves
 * for another host). A 2xx answer is success.
 * Failure modes:
 *  1. bad config (URL not http/https, key with CR/LF, bad From):
 *     LMZ_EBADCONFIG (auth/mail.h)
 *     at new; nothing opened;
 *  2. a refused address or subject: LMZ_EINVAL at send, cb never runs;
 *  3. a non-2xx answer: cb gets LMZ_EIO "mail API HOST: HTTP 422" (the
 *     answer's body is not repeated: it may echo the message);
 *  4. transport errors, the timeout, an oversized answer: the client's
 *     code (LMZ_EIO, LMZ_ETIMEOUT, LMZ_ETOOBIG) with its one-line reason;
 *  5. close: sends in flight get LMZ_ECANCELED, then close_cb. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "auth/mail_remote_int.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "net/fetch.h"

struct api {
  lmz_net_t net;                 /* embedded: closed before a is freed */
  char *from, *url, *auth_header, *host;
  lmz_mail_close_cb close_cb;
  void *close_ud;
};

struct send {
  struct api *a;
  lmz_mail_cb cb;
  void *ud;
};

static int put_field(lmz_buf *b, const char *key, const char *v, bool first) {
  int rv = lmz_buf_printf(b, "%s\"%s\":", first ? "{" : ",", key);
  return rv ? rv : lmz_json_write_string(b, v, strlen(v));
}

static int build_json(lmz_buf *b, const struct api *a, const struct lmz_mail_msg *m) {
  int rv = put_field(b, "from", a->from, true);
  if (!rv)
    rv = put_field(b, "to", m->to, false);
  if (!rv)
    rv = put_field(b, "subject", m->subject, false);
  if (!rv && m->html)
    rv = put_field(b, "html", m->html, false);
  if (!rv && m->text)
    rv = put_field(b, "text", m->text, false);
  return rv ? rv : lmz_buf_append_str(b, "}");
}

static void fetch_cb(void *ud, int status, const struct lmz_net_response *res,
                     const char *errmsg) {
  struct send *x = ud;
  char msg[LMZ_ERRMSG_LEN];
  if (status == LMZ_ECANCELED)
    snprintf(msg, sizeof msg, "mail API %s: canceled (sender closing)", x->a->host);
  else if (status)
    snprintf(msg, sizeof msg, "mail API %s: %s", x->a->host, errmsg ? errmsg : "");
  else if (res->status < 200 || res->status > 299) {
    status = LMZ_EIO;
    snprintf(msg, sizeof msg, "mail API %s: HTTP %ld", x->a->host, res->status);
  }
  x->cb(x->ud, status, status ? msg : NULL);
  free(x);
}

static int api_send(lmz_mail_sender_t *base, const struct lmz_mail_msg *m,
                    lmz_mail_cb cb, void *ud) {
  struct api *a = base->impl;
  if (lmz__mail_msg_check(m))
    return LMZ_EINVAL;
  struct send *x = malloc(sizeof *x);
  if (!x)
    return LMZ_ENOMEM;
  *x = (struct send){a, cb, ud};
  lmz_buf body = LMZ_BUF_INIT;
  int rv = build_json(&body, a, m);
  const char *hs[] = {a->auth_header, "Content-Type: application/json",
                      "Accept: application/json"};
  struct lmz_net_request q = {.url = a->url, .method = "POST", .headers = hs,
                              .n_headers = 3, .body = body.data,
                              .body_len = body.len};
  if (!rv)
    rv = lmz_net_fetch(&a->net, &q, fetch_cb, x, NULL);
  lmz_buf_free(&body); /* copied by lmz_net_fetch */
  if (rv)
    free(x);
  return rv;
}

/* ---- the sender ------------------------------------------------------------ */

static void api_free(struct api *a) {
  free(a->from);
  free(a->url);
  if (a->auth_header)
    sodium_memzero(a->auth_header, strlen(a->auth_header));
  free(a->auth_header);
  free(a->host);
  free(a);
}

static void net_closed(void *ud) {
  struct api *a = ud;
  if (a->close_cb)
    a->close_cb(a->close_ud);
  api_free(a);
}

static void api_close(lmz_mail_sender_t *base, lmz_mail_close_cb cb, void *ud) {
  struct api *a = base->impl;
  a->close_cb = cb;
  a->close_ud = ud;
  lmz_net_close(&a->net, net_closed, a);
}

static const struct lmz_mail_ops api_ops = {api_send, api_close};

/* The endpoint's host (http/https only): the client's whole allow-list. */
static int endpoint_host(const char *url, char **host) {
  CURLU *u = curl_url();
  char *h = NULL, *scheme = NULL;
  int rv = LMZ_EINVAL;
  if (u && url && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      (strcmp(scheme, "https") == 0 || strcmp(scheme, "http") == 0) &&
      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
    rv = (*host = strdup(h)) ? 0 : LMZ_ENOMEM;
  curl_free(h);
  curl_free(scheme);
  curl_url_cleanup(u);
  return rv;
}

static int api_config(struct api *a, const struct lmz_mail_config *c, char *errmsg) {
  char addr[LMZ_MAIL_ADDR_MAX + 1];
  if (endpoint_host(c->http_url, &a->host)) {
    lmz__errmsg_printf(errmsg, "mail.http.url must be an http(s) URL");
    return LMZ_EBADCONFIG;
  }
  if (!c->http_api_key || !*c->http_api_key || strpbrk(c->http_api_key, "\r\n")) {
    lmz__errmsg_printf(errmsg, "mail.http.api_key missing or contains CR/LF");
    return LMZ_EBADCONFIG;
  }
  if (lmz__mail_from_addr(c->from, addr, sizeof addr)) {
    lmz__errmsg_printf(errmsg, "mail.from must be \"addr\" or \"Name <addr>\"");
    return LMZ_EBADCONFIG;
  }
  size_t hl = strlen(c->http_api_key) + 32;
  if (!(a->from = strdup(c->from)) || !(a->url = strdup(c->http_url)) ||
      !(a->auth_header = malloc(hl)))
    return LMZ_ENOMEM;
  snprintf(a->auth_header, hl, "Authorization: Bearer %s", c->http_api_key);
  return 0;
}

int lmz__mail_http_init(lmz_mail_sender_t *h, const struct lmz_mail_config *cfg,
                        char *errmsg) {
  struct api *a = calloc(1, sizeof *a);
  if (!a)
    return LMZ_ENOMEM;
  int rv = api_config(a, cfg, errmsg);
  if (!rv) {
    const char *allow[] = {a->host};
    struct lmz_net_opts o = {.allow = allow, .n_allow = 1,
                             .timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000,
                             .max_response_bytes = 64 * 1024,
                             /* JSON escapes may grow a body 6x */
                             .max_request_bytes = 8 * LMZ_MAIL_BODY_MAX,
                             .max_redirects = 0};
    rv = lmz_net_init(&a->net, h->loop, &o, errmsg);
  }
  if (rv) {
    api_free(a);
    return rv;
  }
  h->ops = &api_ops;
  h->impl = a;
  return 0;
}
