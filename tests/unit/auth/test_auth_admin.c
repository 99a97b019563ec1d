/* tests/unit/auth/test_auth_admin.c - the admin side of the auth service
 * (auth/admin.c, invite.c) on a real node with a fake clock: bootstrap
 * admin, subject listing / reading / patching / deleting with the
 * original's status codes, approval, invites, delegation (RFC 8693 act). */
#include "authfix.h"

/* Logs in and refreshes: the access token and sub of `email`. */
static void session(struct fx *f, const char *email, char access[4096], char sub[64]) {
  struct resp r = fx_refresh(f, fx_login(f, email), NULL, access);
  assert_int_equal(r.status, 200);
  snprintf(sub, 64, "%s", fx_json_str(f, r.body, "sub"));
}

static struct resp as(struct fx *f, const char *method, const char *target,
                      const char *bearer, const char *body) {
  return fx_do(f, &(struct fx_req){.method = method, .target = target, .bearer = bearer,
                                   .body = body});
}

static void bootstrap_and_subjects(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static char boss[4096], bsub[64], ann[4096], asub[64];
  session(&f, "boss@example.com", boss, bsub);
  f.now += 1000; /* ann signs up later: listed first */
  session(&f, "ann@example.com", ann, asub);
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {NULL, NULL, (int64_t)(f.now / 1000), 0};
  assert_int_equal(lmz_jwt_verify(boss, strlen(boss), &f.ks, &ex, f.a, &c, NULL), 0);
  assert_true(c.is_admin && c.admin_approved && c.email_verified);
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_OK);
  assert_int_equal(lmz_jwt_verify(ann, strlen(ann), &f.ks, &ex, f.a, &c, NULL), 0);
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_EDENIED);
  /* who may list */
  assert_int_equal(as(&f, "GET", "/auth/subjects", NULL, NULL).status, 401);
  assert_int_equal(as(&f, "GET", "/auth/subjects", "not.a.jwt", NULL).status, 401);
  struct resp r = as(&f, "GET", "/auth/subjects", ann, NULL);
  assert_int_equal(r.status, 403);
  assert_string_equal(fx_json_str(&f, r.body, "error"), "forbidden");
  r = as(&f, "GET", "/auth/subjects?role=admin", boss, NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "boss@example.com"));
  assert_null(strstr(r.body, "ann@example.com"));
  r = as(&f, "GET", "/auth/subjects?limit=1", boss, NULL); /* newest first */
  assert_non_null(strstr(r.body, "ann@example.com"));
  assert_null(strstr(r.body, "boss@example.com"));
  char t[200];
  snprintf(t, sizeof t, "/auth/subject/%s", asub);
  r = as(&f, "GET", t, boss, NULL);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"emailVerified\":true,\"adminApproved\":false,\"isAdmin\":false"));
  assert_int_equal(as(&f, "GET", "/auth/subject/nobody", boss, NULL).status, 404);
  fx_stop(&f);
}

static void patch_and_delete(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static char boss[4096], bsub[64], ann[4096], asub[64], t[200];
  session(&f, "boss@example.com", boss, bsub);
  char ann_cookie[256];
  snprintf(ann_cookie, sizeof ann_cookie, "%s", fx_login(&f, "ann@example.com"));
  session(&f, "ann@example.com", ann, asub);
  snprintf(t, sizeof t, "/auth/subject/%s", bsub);
  assert_int_equal(as(&f, "PATCH", t, boss, "{\"isAdmin\":false}").status, 403); /* self */
  snprintf(t, sizeof t, "/auth/subject/%s", asub);
  assert_int_equal(as(&f, "PATCH", t, boss, "{\"authorizedActors\":[]}").status, 400);
  struct resp r = as(&f, "PATCH", t, boss, "{\"adminApproved\":true}");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"adminApproved\":true"));
  /* approval shows in the next access token */
  char next[256], access[4096];
  assert_int_equal(fx_refresh(&f, ann_cookie, next, access).status, 200);
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {NULL, NULL, (int64_t)(f.now / 1000), 0};
  assert_int_equal(lmz_jwt_verify(access, strlen(access), &f.ks, &ex, f.a, &c, NULL), 0);
  assert_int_equal(lmz_jwt_gate(&c), LMZ_JWT_OK);
  /* adminApproved:false revokes the subject's refresh tokens */
  assert_int_equal(as(&f, "PATCH", t, boss, "{\"adminApproved\":false}").status, 200);
  assert_int_equal(fx_refresh(&f, next, NULL, NULL).status, 401);
  /* the bootstrap admin cannot be changed or deleted, even by another admin */
  assert_int_equal(as(&f, "PATCH", t, boss, "{\"isAdmin\":true}").status, 200);
  snprintf(t, sizeof t, "/auth/subject/%s", bsub);
  assert_int_equal(as(&f, "DELETE", t, ann, NULL).status, 403);
  assert_int_equal(as(&f, "DELETE", t, boss, NULL).status, 403); /* self */
  snprintf(t, sizeof t, "/auth/subject/%s", asub);
  assert_int_equal(as(&f, "DELETE", t, boss, NULL).status, 204);
  assert_int_equal(as(&f, "GET", t, boss, NULL).status, 404);
  fx_stop(&f);
}

static void approve_link(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static char boss[4096], bsub[64], ann[4096], asub[64], t[200];
  char boss_cookie[256];
  snprintf(boss_cookie, sizeof boss_cookie, "%s", fx_login(&f, "boss@example.com"));
  session(&f, "boss@example.com", boss, bsub);
  session(&f, "ann@example.com", ann, asub);
  snprintf(t, sizeof t, "/auth/approve/%s", asub);
  struct resp r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/?error=login_required");
  assert_int_equal(as(&f, "GET", t, ann, NULL).status, 403);
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t, .cookie = boss_cookie});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/");
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t, .cookie = boss_cookie});
  assert_int_equal(r.status, 302); /* idempotent */
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "GET", .target = "/auth/approve/x",
                                              .cookie = boss_cookie}).status, 404);
  fx_stop(&f);
}

static void invites(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static char boss[4096], bsub[64], ann[4096], asub[64];
  session(&f, "boss@example.com", boss, bsub);
  session(&f, "ann@example.com", ann, asub);
  const char *body = "{\"emails\":[\"new@example.com\",\"bad\",\"ann@example.com\"]}";
  assert_int_equal(as(&f, "POST", "/auth/invite", NULL, body).status, 401);
  assert_int_equal(as(&f, "POST", "/auth/invite", ann, body).status, 403);
  struct resp r = as(&f, "POST", "/auth/invite?_test=true", boss, body);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, "\"invited\":[\"new@example.com\",\"ann@example.com\"]"));
  assert_non_null(strstr(r.body, "\"errors\":[{\"email\":\"bad\",\"error\":\"Invalid email address\"}]"));
  assert_non_null(strstr(r.body, "\"ann@example.com\":\"(already verified)\""));
  const char *link = strstr(r.body, "accept-invite?invite_token=");
  assert_non_null(link);
  char t[200];
  snprintf(t, sizeof t, "/auth/%.*s", 27 + 43, link);
  /* reusable until expiry; each use logs in */
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t});
  assert_int_equal(r.status, 302);
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/");
  char access[4096];
  assert_int_equal(fx_refresh(&f, r.cookie, NULL, access).status, 200);
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {NULL, NULL, (int64_t)(f.now / 1000), 0};
  assert_int_equal(lmz_jwt_verify(access, strlen(access), &f.ks, &ex, f.a, &c, NULL), 0);
  assert_true(c.email_verified && c.admin_approved);
  f.now += 604800 * 1000.0 + 1000;
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t});
  assert_string_equal(r.location, "/?error=token_expired");
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "GET", .target = "/auth/accept-invite"}).status, 400);
  session(&f, "boss@example.com", boss, bsub); /* a week later: a fresh token */
  assert_int_equal(as(&f, "POST", "/auth/invite", boss, "{\"emails\":[]}").status, 200);
  fx_stop(&f);
}

static void delegation(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static char boss[4096], bsub[64], ann[4096], asub[64], bob[4096], bobsub[64];
  session(&f, "boss@example.com", boss, bsub);
  session(&f, "ann@example.com", ann, asub);
  session(&f, "bob@example.com", bob, bobsub);
  char body[200];
  snprintf(body, sizeof body, "{\"actFor\":\"%s\"}", asub);
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", NULL, body).status, 401);
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", boss, "{}").status, 400);
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", boss, "{\"actFor\":\"nobody\"}").status, 404);
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", bob, body).status, 403);
  struct resp r = as(&f, "POST", "/auth/delegated-token", boss, body);
  assert_int_equal(r.status, 200);
  const char *tok = fx_json_str(&f, r.body, "access_token");
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {LMZ_JWT_DEFAULT_ISS, LMZ_JWT_DEFAULT_AUD, (int64_t)(f.now / 1000), 0};
  assert_int_equal(lmz_jwt_verify(tok, strlen(tok), &f.ks, &ex, f.a, &c, NULL), 0);
  assert_string_equal(c.sub, asub);
  assert_non_null(c.act);
  assert_string_equal(lmz_json_get(c.act, "sub")->u.str.p, bsub);
  /* a grant lets bob act for ann */
  char t[200], grant[200];
  snprintf(t, sizeof t, "/auth/subject/%s/actors", asub);
  snprintf(grant, sizeof grant, "{\"actorSub\":\"%s\"}", bobsub);
  assert_int_equal(as(&f, "POST", t, boss, "{\"actorSub\":\"ghost\"}").status, 400);
  r = as(&f, "POST", t, boss, grant);
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.body, bobsub));
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", bob, body).status, 200);
  snprintf(t, sizeof t, "/auth/subject/%s/actors/%s", asub, bobsub);
  assert_int_equal(as(&f, "DELETE", t, boss, NULL).status, 200);
  assert_int_equal(as(&f, "POST", "/auth/delegated-token", bob, body).status, 403);
  fx_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(bootstrap_and_subjects), cmocka_unit_test(patch_and_delete),
      cmocka_unit_test(approve_link),           cmocka_unit_test(invites),
      cmocka_unit_test(delegation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
