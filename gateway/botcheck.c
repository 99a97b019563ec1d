/* gateway/botcheck.c - the bot check on POST {auth_prefix}/email-magic-link
 * (gateway.h, struct lmz_gateway_bot_check), done here like the original's
 * createAuthRoutes does it in the Worker: before the request reaches the
 * auth service's actor, so no actor is held while siteverify answers.
 *
 * Happy path: body parsed -> "cf-turnstile-response" taken -> form
 * {secret, response, remoteip} POSTed with the gateway's own client
 * (net/fetch.h, libcurl on the loop; allow-list = the endpoint's host) ->
 * {"success": true} -> the request is forwarded (routes.c). The request
 * stays valid meanwhile: the HTTP server parses nothing more on that
 * connection until it is answered, or tells us it closed (then the
 * check's answer is dropped).
 * Failure modes (answers, none reaches the actor):
 *  1. body not a JSON object: 400 invalid_request;
 *  2. no token (missing, empty, not a string): 403 turnstile_required;
 *  3. siteverify says no, answers a status other than 200, a body that is
 *     not {"success": bool}, times out or is unreachable: 403
 *     turnstile_failed with error_codes (siteverify's, or ours:
 *     "siteverify-unavailable", "siteverify-bad-answer");
 *  4. the check cannot start (too many in flight, out of memory, its HTTP
 *     client, made by the first check, cannot be created): 503;
 *  5. the connection closes or the gateway closes meanwhile: dropped. */
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gw_int.h"

#define BOT_TOKEN_MAX 4096 /* Turnstile tokens are ~2 KB */

struct bot_req {
  struct gw_pending_http *p; /* conn (NULL once gone) and origin */
  const struct lmz_http_request *req;
};

static char *endpoint_host(const char *url) {
  CURLU *u = curl_url();
  char *h = NULL, *scheme = NULL, *out = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      (!strcmp(scheme, "https") || !strcmp(scheme, "http")) &&
      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK)
    out = strdup(h);
  curl_free(h);
  curl_free(scheme);
  curl_url_cleanup(u);
  return out;
}

int lmz__gw_bot_init(lmz_gateway_t *gw, const struct lmz_gateway_bot_check *o,
                     char *errmsg) {
  if (!o->secret)
    return 0;
  const char *url = o->endpoint ? o->endpoint : LMZ_GATEWAY_BOT_ENDPOINT;
  char *host = endpoint_host(url);
  if (!host || !*o->secret || strlen(o->secret) > 1024) {
    free(host);
    lmz__errmsg_printf(errmsg, "bot check: the endpoint must be an http(s) URL "
                               "and the secret 1..1024 bytes");
    return LMZ_EINVAL;
  }
  gw->bot.timeout_ms = o->timeout_ms ? o->timeout_ms : LMZ_GATEWAY_BOT_TIMEOUT_MS;
  gw->bot.host = host;
  gw->bot.secret = strdup(o->secret);
  gw->bot.url = strdup(url);
  return gw->bot.secret && gw->bot.url ? 0 : LMZ_ENOMEM;
}

/* The check's HTTP client, created by the first check rather than at init:
 * it puts a timer on the loop, and init must add nothing to the loop before
 * its last step that can fail. 0, LMZ_ECANCELED, LMZ_ENOMEM, LMZ_EIO; errmsg. */
static int bot_net(lmz_gateway_t *gw, char *errmsg) {
  if (gw->bot.net)
    return 0;
  if (gw->closing) /* lmz__gw_bot_close has run: it would never be closed */
    return LMZ_ECANCELED;
  const char *allow[] = {gw->bot.host};
  struct lmz_net_opts no = {.allow = allow, .n_allow = 1,
                            .timeout_ms = gw->bot.timeout_ms,
                            .max_response_bytes = 16 * 1024,
                            .max_request_bytes = 16 * 1024,
                            .max_redirects = 0, .max_inflight = 256};
  lmz_net_t *net = malloc(sizeof *net);
  int rv = net ? lmz_net_init(net, gw->loop, &no, errmsg) : LMZ_ENOMEM;
  if (rv)
    free(net); /* nothing of it is on the loop */
  else
    gw->bot.net = net;
  return rv;
}

static void bot_closed(void *ud) {
  lmz_net_t *net = ud;
  lmz_gateway_t *gw = net->data;
  free(net);
  lmz__gw_wait_done(gw);
}

void lmz__gw_bot_close(lmz_gateway_t *gw) {
  if (!gw->bot.net)
    return;
  gw->n_waits++;
  gw->bot.net->data = gw;
  lmz_net_close(gw->bot.net, bot_closed, gw->bot.net);
  gw->bot.net = NULL;
}

static void answer(lmz_http_conn_t *conn, const char *origin, int status,
                   const char *error, const char *desc, const lmz_json *codes) {
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append_str(&b, "{\"error\":");
  lmz_json_write_string(&b, error, strlen(error));
  lmz_buf_append_str(&b, ",\"error_description\":");
  lmz_json_write_string(&b, desc, strlen(desc));
  if (codes && codes->type == LMZ_JSON_ARRAY) {
    lmz_buf_append_str(&b, ",\"error_codes\":");
    lmz_json_write(&b, codes);
  } else if (codes && codes->type == LMZ_JSON_STRING) { /* one of ours */
    lmz_buf_append_str(&b, ",\"error_codes\":[");
    lmz_json_write_string(&b, codes->u.str.p, codes->u.str.len);
    lmz_buf_putc(&b, ']');
  }
  lmz_buf_putc(&b, '}');
  struct lmz_http_header cred = {"Access-Control-Allow-Credentials", 32, "true", 4};
  lmz__gw_respond(conn, status, "application/json", b.data, b.len, origin,
                  &cred, origin && *origin ? 1 : 0);
  lmz_buf_free(&b);
}

/* The verdict of a siteverify answer: true = pass; else *codes says why. */
static bool verdict(lmz_arena *a, int status, const struct lmz_net_response *res,
                    const lmz_json **codes) {
  static const lmz_json unavailable = {.type = LMZ_JSON_STRING,
                                       .u.str = {"siteverify-unavailable", 22}};
  static const lmz_json bad = {.type = LMZ_JSON_STRING,
                               .u.str = {"siteverify-bad-answer", 21}};
  *codes = &unavailable;
  if (status || res->status != 200)
    return false;
  struct lmz_json_opts o = {.max_depth = 8, .max_len = 16 * 1024};
  lmz_json *j = NULL;
  const lmz_json *s;
  *codes = &bad;
  if (!res->body_len || lmz_json_parse(a, (const char *)res->body, res->body_len,
                                       &o, &j, NULL) ||
      j->type != LMZ_JSON_OBJECT || !(s = lmz_json_get(j, "success")) ||
      (s->type != LMZ_JSON_TRUE && s->type != LMZ_JSON_FALSE))
    return false;
  if (s->type == LMZ_JSON_TRUE)
    return true;
  const lmz_json *c = lmz_json_get(j, "error-codes");
  *codes = c && c->type == LMZ_JSON_ARRAY ? c : NULL;
  return false;
}

static void on_verify(void *ud, int status, const struct lmz_net_response *res,
                      const char *errmsg) {
  struct bot_req *br = ud;
  struct gw_pending_http *p = br->p;
  lmz_gateway_t *gw = p->gw;
  lmz_http_conn_t *conn = p->conn;
  char origin[256];
  memcpy(origin, p->origin, sizeof origin);
  lmz__gw_pending_done(p);
  if (conn && !gw->closing) {
    lmz_arena *a = lmz_arena_new();
    const lmz_json *codes = NULL;
    if (status)
      LMZ_LOG_WARN(&lmz__gw_log, "bot check: siteverify: %s", errmsg);
    if (a && verdict(a, status, res, &codes))
      lmz__gw_to_auth(gw, conn, br->req, origin);
    else
      answer(conn, origin, 403, "turnstile_failed", "Bot check failed", codes);
    lmz_arena_free(a);
  }
  free(br);
}

/* The form {secret, response, remoteip}, URL-encoded, into b. */
static int form(lmz_gateway_t *gw, const struct lmz_http_request *req,
                const lmz_json *tok, lmz_buf *b) {
  char ip[64];
  const char *r = req->remote ? req->remote : "";
  size_t n = r[0] == '[' ? strcspn(r + 1, "]") : strcspn(r, ":");
  snprintf(ip, sizeof ip, "%.*s", (int)n, r[0] == '[' ? r + 1 : r);
  char *s = curl_easy_escape(NULL, gw->bot.secret, 0);
  char *t = curl_easy_escape(NULL, tok->u.str.p, (int)tok->u.str.len);
  char *i = curl_easy_escape(NULL, ip, 0);
  int rv = s && t && i ? lmz_buf_printf(b, "secret=%s&response=%s&remoteip=%s", s, t, i)
                       : LMZ_ENOMEM;
  curl_free(s);
  curl_free(t);
  curl_free(i);
  return rv;
}

static int start(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                 const struct lmz_http_request *req, const lmz_json *tok,
                 const char *origin) {
  lmz_buf b = LMZ_BUF_INIT;
  struct bot_req *br = calloc(1, sizeof *br);
  int rv = br ? form(gw, req, tok, &b) : LMZ_ENOMEM;
  if (!rv && !(br->p = lmz__gw_pending_new(gw, conn)))
    rv = LMZ_ENOMEM;
  if (!rv) {
    snprintf(br->p->origin, sizeof br->p->origin, "%s", origin);
    br->p->credentials = true;
    br->req = req;
    const char *hs[] = {"Content-Type: application/x-www-form-urlencoded"};
    struct lmz_net_request nr = {.url = gw->bot.url, .method = "POST", .headers = hs,
                                 .n_headers = 1, .body = b.data, .body_len = b.len};
    char err[LMZ_ERRMSG_LEN] = "";
    if ((rv = bot_net(gw, err)) ||
        (rv = lmz_net_fetch(gw->bot.net, &nr, on_verify, br, err)))
      LMZ_LOG_WARN(&lmz__gw_log, "bot check: %s", err[0] ? err : lmz_strerror(rv));
  }
  lmz_buf_free(&b);
  if (rv && br) {
    if (br->p)
      lmz__gw_pending_done(br->p);
    free(br);
  }
  return rv;
}

bool lmz__gw_bot_hold(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                      const struct lmz_http_request *req, const char *rest,
                      size_t rest_len, const char *origin) {
  static const char path[] = "/email-magic-link";
  if (!gw->bot.secret || strcmp(req->method, "POST") || rest_len != sizeof path - 1 ||
      memcmp(rest, path, rest_len))
    return false;
  lmz_arena *a = lmz_arena_new();
  struct lmz_json_opts o = {.max_depth = 16, .max_len = gw->auth_max_body};
  lmz_json *j = NULL;
  const lmz_json *tok = NULL;
  if (!a || !req->body_len ||
      lmz_json_parse(a, (const char *)req->body, req->body_len, &o, &j, NULL) ||
      j->type != LMZ_JSON_OBJECT)
    answer(conn, origin, 400, "invalid_request", "Invalid JSON body", NULL);
  else if (!(tok = lmz_json_get(j, "cf-turnstile-response")) ||
           tok->type != LMZ_JSON_STRING || !tok->u.str.len ||
           tok->u.str.len > BOT_TOKEN_MAX)
    answer(conn, origin, 403, "turnstile_required", "Bot check token required", NULL);
  else if (start(gw, conn, req, tok, origin))
    lmz__gw_respond(conn, 503, "text/plain", "Service Unavailable", 19, origin, NULL, 0);
  lmz_arena_free(a);
  return true;
}
