/* auth/admin.c - who is calling (Bearer access token, else the
 * refresh-token cookie), subject administration, invites, approval and
 * delegation (lumenize-behaviour 5.4 "Auth DO's own admin endpoints", 5.5).
 *
 * Failure modes (answers as the original's):
 *  1. no credentials -> 401 invalid_token "Authentication required"; an
 *     Authorization header whose token does not verify -> 401
 *     "Invalid or expired access token" (signature and exp only, as the
 *     original: no aud/iss/gate here; isAdmin is read from storage, never
 *     from the token);
 *  2. not an admin -> 403 forbidden "Admin access required";
 *  3. unknown subject -> 404 not_found; self-modification or the bootstrap
 *     admin as target -> 403; authorizedActors in a PATCH -> 400;
 *  4. delegation: actFor missing -> 400, principal unknown -> 404, caller
 *     neither admin nor granted -> 403. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_int.h"

static bool from_bearer(struct areq *r, struct caller *c, bool *bad) {
  const char *h = lmz_request_header(r->req, "Authorization");
  const char *tok;
  size_t n;
  if (!h)
    return false;
  struct lmz_jwt_claims cl;
  struct lmz_jwt_expect ex = {.now_s = (int64_t)(r->now_ms / 1000)};
  if (!lmz_jwt_bearer(h, strlen(h), &tok, &n) ||
      lmz_jwt_verify(tok, n, &r->auth->ks, &ex, r->a, &cl, NULL) != LMZ_JWT_OK ||
      !(c->s = lmz__auth_subject(r, cl.sub))) {
    *bad = true;
    return false;
  }
  c->sub = lmz__auth_sget(c->s, "sub");
  c->act = cl.act;
  return true;
}

static bool from_cookie(struct areq *r, struct caller *c) {
  struct tok t;
  lmz_value *rec = lmz__auth_cookie_token(r, &t);
  lmz_value *fam = rec ? lmz__auth_family(r, rec) : NULL;
  if (!fam || lmz__auth_flag(fam, "revoked") || lmz__auth_flag(rec, "rotated") ||
      lmz_get_number(lmz_object_getc(rec, "expiresAt")) < r->now_ms)
    return false;
  c->s = lmz__auth_subject(r, lmz__auth_sget(rec, "sub"));
  c->sub = c->s ? lmz__auth_sget(c->s, "sub") : NULL;
  return c->s != NULL;
}


bool lmz__auth_authenticate(struct areq *r, struct caller *c, int *rv) {
  bool bad = false;
  *c = (struct caller){0};
  if (from_bearer(r, c, &bad) || (!bad && from_cookie(r, c)))
    return true;
  *rv = lmz__auth_error(r, 401, "invalid_token",
                        bad ? "Invalid or expired access token" : "Authentication required");
  return false;
}

bool lmz__auth_admin(struct areq *r, struct caller *c, int *rv) {
  if (!lmz__auth_authenticate(r, c, rv))
    return false;
  if (lmz__auth_flag(c->s, "isAdmin"))
    return true;
  *rv = lmz__auth_error(r, 403, "forbidden", "Admin access required");
  return false;
}

/* Segment i (0-based) of the path after the prefix, in the turn arena. */
const char *lmz__auth_seg(struct areq *r, int i) {
  const char *p = r->rest;
  for (; i >= 0; i--) {
    if (*p == '/')
      p++;
    size_t n = strcspn(p, "/");
    if (i == 0)
      return lmz_arena_strndup(r->a, p, n);
    p += n;
  }
  return NULL;
}

static int subject_answer(struct areq *r, int status, const lmz_value *s) {
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append_str(&b, "{\"subject\":");
  int rv = lmz__auth_subject_json(r, s, &b);
  lmz_buf_putc(&b, '}');
  if (rv) {
    lmz_buf_free(&b);
    return rv;
  }
  return lmz__auth_json(r, status, &b);
}

static lmz_value *target(struct areq *r, int *rv) {
  lmz_value *s = lmz__auth_subject(r, lmz__auth_seg(r, 1));
  if (!s)
    *rv = lmz__auth_error(r, 404, "not_found", "Subject not found");
  return s;
}

/* 403 for the caller itself or the bootstrap admin. */
static bool protected_target(struct areq *r, const struct caller *c,
                             const lmz_value *s, const char *verb, int *rv) {
  const char *boot = r->auth->cfg.bootstrap_admin, *email = lmz__auth_sget(s, "email");
  char msg[96];
  if (!strcmp(c->sub, lmz__auth_sget(s, "sub")))
    snprintf(msg, sizeof msg, "Cannot %s yourself", verb);
  else if (boot && email && !strcmp(boot, email))
    snprintf(msg, sizeof msg, "Cannot %s the bootstrap admin", verb);
  else
    return false;
  *rv = lmz__auth_error(r, 403, "forbidden", msg);
  return true;
}

/* ---- GET /subjects, GET|PATCH|DELETE /subject/:id ------------------------ */

static int by_created_desc(const void *a, const void *b) {
  double x = lmz_get_number(lmz_object_getc(*(lmz_value *const *)a, "createdAt"));
  double y = lmz_get_number(lmz_object_getc(*(lmz_value *const *)b, "createdAt"));
  return x < y ? 1 : x > y ? -1 : 0;
}

int lmz__auth_subjects(struct areq *r) {
  struct caller c;
  int rv = 0;
  if (!lmz__auth_admin(r, &c, &rv))
    return rv;
  const char *ls = lmz__auth_param(r, "limit"), *os = lmz__auth_param(r, "offset");
  const char *role = lmz__auth_param(r, "role");
  long limit = ls ? strtol(ls, NULL, 10) : 50, offset = os ? strtol(os, NULL, 10) : 0;
  limit = limit < 1 ? 1 : limit > 200 ? 200 : limit;
  offset = offset < 0 ? 0 : offset;
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = "s:", .limit = 100000};
  if ((rv = lmz_kv_list(r->ctx, &o, &map)))
    return rv;
  size_t n = 0, total = lmz_len(map);
  lmz_value **v = lmz_arena_alloc(r->a, (total + 1) * sizeof *v);
  if (!v)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < total; i++) {
    lmz_value *s = lmz_map_val(map, i);
    bool adm = lmz__auth_flag(s, "isAdmin");
    if (!role || (!strcmp(role, "admin") && adm) || (!strcmp(role, "none") && !adm))
      v[n++] = s;
  }
  qsort(v, n, sizeof *v, by_created_desc);
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append_str(&b, "{\"subjects\":[");
  for (size_t i = (size_t)offset, k = 0; !rv && i < n && k < (size_t)limit; i++, k++) {
    if (k)
      lmz_buf_putc(&b, ',');
    rv = lmz__auth_subject_json(r, v[i], &b);
  }
  lmz_buf_append_str(&b, "]}");
  if (rv)
    lmz_buf_free(&b);
  return rv ? rv : lmz__auth_json(r, 200, &b);
}

int lmz__auth_subject_get(struct areq *r) {
  struct caller c;
  int rv = 0;
  lmz_value *s;
  if (!lmz__auth_admin(r, &c, &rv) || !(s = target(r, &rv)))
    return rv;
  return subject_answer(r, 200, s);
}

int lmz__auth_subject_patch(struct areq *r) {
  struct caller c;
  int rv = 0;
  lmz_value *s;
  const lmz_json *body;
  if (!lmz__auth_admin(r, &c, &rv) || !(s = target(r, &rv)) || !(body = lmz__auth_body(r)) ||
      protected_target(r, &c, s, "modify", &rv))
    return rv;
  if (lmz_json_get(body, "authorizedActors"))
    return lmz__auth_error(r, 400, "invalid_request",
                           "Use POST /subject/:id/actors to change authorizedActors");
  const lmz_json *adm = lmz_json_get(body, "isAdmin"), *app = lmz_json_get(body, "adminApproved");
  if ((adm && adm->type != LMZ_JSON_TRUE && adm->type != LMZ_JSON_FALSE) ||
      (app && app->type != LMZ_JSON_TRUE && app->type != LMZ_JSON_FALSE))
    return lmz__auth_error(r, 400, "invalid_request", "isAdmin and adminApproved are booleans");
  if (adm) {
    lmz__auth_set_flag(r, s, "isAdmin", adm->type == LMZ_JSON_TRUE);
    if (adm->type == LMZ_JSON_TRUE)
      lmz__auth_set_flag(r, s, "adminApproved", true);
  }
  if (app) {
    lmz__auth_set_flag(r, s, "adminApproved", app->type == LMZ_JSON_TRUE);
    if (app->type == LMZ_JSON_FALSE && (rv = lmz__auth_revoke_subject(r, lmz__auth_sget(s, "sub"))))
      return rv;
  }
  if ((rv = lmz__auth_subject_save(r, s)))
    return rv;
  return subject_answer(r, 200, s);
}

/* Deletes every key under `prefix` (and, for grants, their mirror). */
static int delete_prefix(struct areq *r, const char *prefix, bool mirror) {
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = prefix};
  int rv = lmz_kv_list(r->ctx, &o, &map);
  for (size_t i = 0; !rv && i < lmz_len(map); i++) {
    const char *k = lmz_get_str(lmz_map_key(map, i), NULL);
    rv = lmz_kv_delete(r->ctx, k);
    if (!rv && mirror) { /* a:<p>:<x> <-> A:<x>:<p> */
      char m[800];
      const char *who = prefix + 2, *other = k + strlen(prefix);
      snprintf(m, sizeof m, "%c:%s:%.*s", k[0] == 'a' ? 'A' : 'a', other,
               (int)strlen(who) - 1, who);
      rv = lmz_kv_delete(r->ctx, m);
    }
  }
  return rv;
}

/* Removes magic links / invites (prefix "m:" / "i:") sent to `email`. */
static int delete_links(struct areq *r, const char *prefix, const char *email) {
  lmz_value *map = NULL;
  struct lmz_kv_list_opts o = {.prefix = prefix, .limit = 100000};
  int rv = lmz_kv_list(r->ctx, &o, &map);
  for (size_t i = 0; !rv && i < lmz_len(map); i++) {
    const char *e = lmz__auth_sget(lmz_map_val(map, i), "email");
    if (e && !strcmp(e, email))
      rv = lmz_kv_delete(r->ctx, lmz_get_str(lmz_map_key(map, i), NULL));
  }
  return rv;
}

int lmz__auth_subject_delete(struct areq *r) {
  struct caller c;
  int rv = 0;
  lmz_value *s;
  if (!lmz__auth_admin(r, &c, &rv) || !(s = target(r, &rv)) ||
      protected_target(r, &c, s, "delete", &rv))
    return rv;
  const char *sub = lmz__auth_sget(s, "sub"), *email = lmz__auth_sget(s, "email");
  char k[400], k2[400];
  snprintf(k, sizeof k, "a:%s:", sub);
  snprintf(k2, sizeof k2, "A:%s:", sub);
  if ((rv = lmz__auth_revoke_subject(r, sub)) || (rv = delete_prefix(r, k, true)) ||
      (rv = delete_prefix(r, k2, true)) || (rv = delete_links(r, "m:", email)) ||
      (rv = delete_links(r, "i:", email)))
    return rv;
  snprintf(k, sizeof k, "s:%s", sub);
  snprintf(k2, sizeof k2, "e:%s", email);
  if ((rv = lmz_kv_delete(r->ctx, k)) || (rv = lmz_kv_delete(r->ctx, k2)))
    return rv;
  LMZ_LOG_DEBUG(&lmz__auth_log, "auth.LumenizeAuth.subject.deleted %s by %s", sub, c.sub);
  r->res->status = 204;
  return 0;
}

/* ---- grants: POST /subject/:id/actors, DELETE /subject/:id/actors/:a ----- */

static int grant(struct areq *r, const char *principal, const char *actor, bool add) {
  char k1[800], k2[800];
  snprintf(k1, sizeof k1, "a:%s:%s", principal, actor);
  snprintf(k2, sizeof k2, "A:%s:%s", actor, principal);
  if (!add)
    return lmz_kv_delete(r->ctx, k1) ? LMZ_ENOMEM : lmz_kv_delete(r->ctx, k2);
  int rv = lmz_kv_put(r->ctx, k1, lmz_bool(true));
  return rv ? rv : lmz_kv_put(r->ctx, k2, lmz_bool(true));
}

int lmz__auth_actor_add(struct areq *r) {
  struct caller c;
  int rv = 0;
  lmz_value *s;
  const lmz_json *body;
  if (!lmz__auth_admin(r, &c, &rv) || !(s = target(r, &rv)) || !(body = lmz__auth_body(r)))
    return rv;
  const lmz_json *a = lmz_json_get(body, "actorSub");
  if (!a || a->type != LMZ_JSON_STRING)
    return lmz__auth_error(r, 400, "invalid_request", "actorSub is required");
  if (!lmz__auth_subject(r, a->u.str.p)) {
    char msg[400];
    snprintf(msg, sizeof msg, "Actor ID not found: %.300s", a->u.str.p);
    return lmz__auth_error(r, 400, "invalid_request", msg);
  }
  if ((rv = grant(r, lmz__auth_sget(s, "sub"), a->u.str.p, true)))
    return rv;
  return subject_answer(r, 200, s);
}

int lmz__auth_actor_remove(struct areq *r) {
  struct caller c;
  int rv = 0;
  lmz_value *s;
  if (!lmz__auth_admin(r, &c, &rv) || !(s = target(r, &rv)))
    return rv;
  if ((rv = grant(r, lmz__auth_sget(s, "sub"), lmz__auth_seg(r, 3), false)))
    return rv;
  return subject_answer(r, 200, s);
}
