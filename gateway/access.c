/* gateway/access.c - who may reach an actor through the HTTP port: bearer
 * tokens on the actor routes, public bindings, per-subject rate limits, and
 * the origin auth a verified token gives a turn (shared with the WebSocket
 * side: clientgw.c verifies with lmz__gw_verify, clientmsg.c builds the
 * origin auth with lmz__gw_origin_auth).
 *
 * Happy path (HTTP to an actor, after binding resolution and CORS, before
 * anything is delivered or claimed): the binding is not public ->
 * "Authorization: Bearer <jwt>" -> signature, exp, iss, aud, sub (jwt.h) ->
 * access gate -> the subject's HTTP bucket (ratelimit.h) -> origin auth
 * {sub, claims} for the turn. A public binding skips all of it and its turn
 * has no origin auth.
 * Failure modes (answers, the original's: lumenize-behaviour 5.4):
 *  1. no Authorization header, or not "Bearer <token>": 401 invalid_request
 *     with WWW-Authenticate;
 *  2. a bad token (forged, alg other than EdDSA, expired, wrong aud/iss, no
 *     sub): 401 invalid_token with WWW-Authenticate;
 *  3. the access gate refuses: 403 access_denied;
 *  4. the subject is over its limit: 429 rate_limited with Retry-After;
 *  5. out of memory building the claims: 500 server_error.
 * Refusals are logged at debug level only (a flood must not flood the log)
 * and counted (/metrics lmz_gateway_http_refused_total{...}). */
#include <string.h>

#include "gateway/gw_int.h"

lmz_value *lmz__gw_origin_auth(lmz_arena *a, const char *sub,
                               lmz_value *claims) {
  lmz_value *oa = claims ? lmz_object(a) : NULL;
  if (!oa || lmz_object_setc(oa, "sub", lmz_cstring(a, sub)) ||
      lmz_object_setc(oa, "claims", claims))
    return NULL;
  return oa;
}

int lmz__gw_verify(lmz_gateway_t *gw, const char *tok, size_t len, lmz_arena *a,
                   struct lmz_jwt_claims *cl) {
  struct lmz_jwt_expect ex = {gw->iss, gw->aud,
                              (int64_t)(lmz_node_now_ms(gw->node) / 1000.0), 0};
  char why[LMZ_ERRMSG_LEN];
  int st = lmz_jwt_verify(tok, len, &gw->keys, &ex, a, cl, why);
  if (st) {
    LMZ_LOG_DEBUG(&lmz__gw_log, "token refused: %s", why);
    return st;
  }
  return lmz_jwt_gate(cl);
}

void lmz__gw_refuse(lmz_http_conn_t *conn, int status, const char *origin,
                    uint32_t retry_after_s) {
  struct lmz_jwt_answer ans;
  lmz_jwt_answer(status, &ans);
  struct lmz_http_header hs[2];
  size_t n = 0;
  char retry[16];
  if (ans.www_authenticate)
    hs[n++] = (struct lmz_http_header){"WWW-Authenticate", 16, ans.www_authenticate,
                                       strlen(ans.www_authenticate)};
  if (status == LMZ_JWT_ERATE) { /* RFC 9110 §10.2.3 delay-seconds */
    int w = snprintf(retry, sizeof retry, "%u", retry_after_s ? retry_after_s : 1);
    hs[n++] = (struct lmz_http_header){"Retry-After", 11, retry, (size_t)w};
  }
  lmz__gw_respond(conn, ans.http_status, ans.content_type, ans.body,
                  strlen(ans.body), origin, hs, n);
}

int lmz__gw_limit(lmz_gateway_t *gw, lmz_rate *r, const char *sub, size_t len,
                  uint32_t *retry_after_s) {
  return lmz_rate_take(r, sub, len, lmz__gw_now(gw), retry_after_s) ? LMZ_JWT_ERATE
                                                                    : LMZ_JWT_OK;
}

bool lmz__gw_is_public(const lmz_gateway_t *gw, const char *binding) {
  for (size_t i = 0; i < gw->n_public; i++)
    if (!strcmp(gw->public_bindings[i], binding))
      return true;
  return false;
}

static void count_refusal(lmz_gateway_t *gw, int st) {
  if (st == LMZ_JWT_ERATE)
    gw->stats.http_rate_limited++;
  else if (st == LMZ_JWT_EDENIED)
    gw->stats.http_forbidden++;
  else
    gw->stats.http_unauthorized++;
}

/* The token's checks and the subject's bucket; claims in `a`. */
static int check_bearer(lmz_gateway_t *gw, const struct lmz_http_request *req,
                        lmz_arena *a, struct lmz_jwt_claims *cl,
                        uint32_t *retry_after_s) {
  size_t hl;
  const char *h = lmz_http_header_get(req, "Authorization", &hl);
  const char *tok;
  size_t tl;
  if (!h || !lmz_jwt_bearer(h, hl, &tok, &tl))
    return LMZ_JWT_EMISSING_BEARER;
  int st = lmz__gw_verify(gw, tok, tl, a, cl);
  if (!st)
    st = lmz__gw_limit(gw, &gw->http_rate, cl->sub, cl->sub_len, retry_after_s);
  return st;
}

int lmz__gw_http_access(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                        const struct lmz_http_request *req, const char *binding,
                        const char *origin, lmz_arena *a,
                        lmz_value **origin_auth) {
  *origin_auth = NULL;
  if (lmz__gw_is_public(gw, binding)) {
    gw->stats.http_public++;
    return 0;
  }
  struct lmz_jwt_claims cl;
  uint32_t retry = 0;
  int st = check_bearer(gw, req, a, &cl, &retry);
  if (!st) {
    lmz_value *claims = lmz__gw_json_to_value(a, cl.payload);
    *origin_auth = claims ? lmz__gw_origin_auth(a, cl.sub, claims) : NULL;
    if (!*origin_auth)
      st = LMZ_JWT_EINTERNAL;
  }
  if (!st)
    return 0;
  count_refusal(gw, st);
  LMZ_LOG_DEBUG(&lmz__gw_log, "%s %s refused: %s", req->method, req->target,
                lmz_jwt_status_name(st));
  lmz__gw_refuse(conn, st, origin, retry);
  return -1;
}
