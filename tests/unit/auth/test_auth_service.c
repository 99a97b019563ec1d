/* tests/unit/auth/test_auth_service.c - the auth service's state machine
 * (auth/login.c, admin.c, invite.c) on a real node with a fake clock:
 * login, single use, rotation, reuse detection, logout, expiry of each
 * token kind, bootstrap admin, subject admin, invites, delegation, rate
 * limits (429 + Retry-After, refill after time passes), hostile input. */
#include "authfix.h"

#include <dirent.h>

#include "cluster/keyfile.h"

static void verify_access(struct fx *f, const char *tok, const char *sub,
                          bool approved) {
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {LMZ_JWT_DEFAULT_ISS, LMZ_JWT_DEFAULT_AUD,
                              (int64_t)(f->now / 1000), 0};
  char why[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_jwt_verify(tok, strlen(tok), &f->ks, &ex, f->a, &c, why), LMZ_JWT_OK);
  if (sub)
    assert_string_equal(c.sub, sub);
  assert_true(c.email_verified);
  assert_int_equal(c.admin_approved, approved);
  assert_true(c.exp == (double)((int64_t)(f->now / 1000) + 900));
}

static void login_flow(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  const char *tok = fx_magic_token(&f, " Alice@Example.COM ");
  char target[200], t1[256], t2[256], access[4096], sub[64];
  snprintf(target, sizeof target, "/auth/magic-link?one_time_token=%s", tok);
  struct resp r = fx_do(&f, &(struct fx_req){.method = "GET", .target = target});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/");
  assert_non_null(strstr(r.set_cookie, "; Path=/auth; HttpOnly; Secure; SameSite=Strict; Max-Age=2592000"));
  snprintf(t1, sizeof t1, "%s", r.cookie);
  /* single use */
  r = fx_do(&f, &(struct fx_req){.method = "GET", .target = target});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/?error=token_used");
  /* refresh: a JWT with the subject, and a rotated cookie */
  r = fx_refresh(&f, t1, t2, access);
  assert_int_equal(r.status, 200);
  assert_string_not_equal(t1, t2);
  snprintf(sub, sizeof sub, "%s", fx_json_str(&f, r.body, "sub"));
  assert_non_null(strstr(r.body, "\"token_type\":\"Bearer\",\"expires_in\":900"));
  verify_access(&f, access, sub, false);
  /* the sub is stable across logins */
  r = fx_refresh(&f, fx_login(&f, "alice@example.com"), NULL, NULL);
  assert_int_equal(r.status, 200);
  assert_string_equal(fx_json_str(&f, r.body, "sub"), sub);
  fx_stop(&f);
}

static void reuse_revokes_family(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  char t1[256], t2[256], t3[256];
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "bob@example.com"));
  const char *other = fx_login(&f, "bob@example.com"); /* a second family */
  char t_other[256];
  snprintf(t_other, sizeof t_other, "%s", other);
  assert_int_equal(fx_refresh(&f, t1, t2, NULL).status, 200);
  /* t1 again: someone replays a rotated token -> the family is revoked */
  f.now += 10 * 1000.0 + 1; /* past the concurrent-refresh grace */
  struct resp r = fx_refresh(&f, t1, NULL, NULL);
  assert_int_equal(r.status, 401);
  assert_string_equal(fx_json_str(&f, r.body, "error"), "token_revoked");
  r = fx_refresh(&f, t2, NULL, NULL); /* the legitimate holder's too */
  assert_int_equal(r.status, 401);
  assert_string_equal(fx_json_str(&f, r.body, "error"), "token_revoked");
  /* the other login (another family) is untouched */
  assert_int_equal(fx_refresh(&f, t_other, t3, NULL).status, 200);
  fx_stop(&f);
}

/* Two tabs refresh with the same cookie at once: both are answered (same
 * family) within the grace period; a replay after it still revokes all. */
static void concurrent_refresh_grace(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  char t1[256], a[256], b[256];
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "tabs@example.com"));
  assert_int_equal(fx_refresh(&f, t1, a, NULL).status, 200);
  f.now += 10 * 1000.0; /* the other tab, 10 s later: still concurrent */
  assert_int_equal(fx_refresh(&f, t1, b, NULL).status, 200);
  assert_string_not_equal(a, b);
  f.now += 1;
  assert_int_equal(fx_refresh(&f, t1, NULL, NULL).status, 401); /* now a replay */
  assert_int_equal(fx_refresh(&f, a, NULL, NULL).status, 401);
  assert_int_equal(fx_refresh(&f, b, NULL, NULL).status, 401);
  fx_stop(&f);
}

static void strict_reuse_and_auto_approve(void **state) {
  (void)state;
  struct fx f;
  struct lmz_auth_config c;
  fx_default_cfg(&c);
  c.reuse_grace_s = 0;
  c.auto_approve = true;
  fx_start_cfg(&f, &c);
  char t1[256], access[4096];
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "new@example.com"));
  assert_int_equal(fx_refresh(&f, t1, NULL, access).status, 200);
  verify_access(&f, access, NULL, true); /* approved from the first login */
  assert_int_equal(fx_refresh(&f, t1, NULL, NULL).status, 401); /* same instant */
  fx_stop(&f);
}

static void logout_revokes(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  char t1[256];
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "carol@example.com"));
  struct resp r = fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/logout", .cookie = t1});
  assert_int_equal(r.status, 200);
  assert_string_equal(r.body, "{\"message\":\"Logged out\"}");
  assert_non_null(strstr(r.set_cookie, "refresh-token=; Path=/auth;"));
  assert_non_null(strstr(r.set_cookie, "Max-Age=0"));
  r = fx_refresh(&f, t1, NULL, NULL);
  assert_int_equal(r.status, 401);
  /* without a cookie: still 200 */
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/logout"}).status, 200);
  fx_stop(&f);
}

static void expiry_on_fake_time(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  /* magic link: valid at 30 min, expired one second later */
  char target[200], t1[256], t2[256], access[4096];
  snprintf(target, sizeof target, "/auth/magic-link?one_time_token=%s",
           fx_magic_token(&f, "dan@example.com"));
  f.now += 1800 * 1000.0 + 1000;
  struct resp r = fx_do(&f, &(struct fx_req){.method = "GET", .target = target});
  assert_string_equal(r.location, "/?error=token_expired");
  /* refresh token: 30 days */
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "dan@example.com"));
  f.now += 2592000 * 1000.0 - 1000;
  assert_int_equal(fx_refresh(&f, t1, t2, access).status, 200);
  /* the access token: 900 s */
  struct lmz_jwt_claims c;
  struct lmz_jwt_expect ex = {NULL, NULL, (int64_t)(f.now / 1000) + 901, 0};
  assert_int_equal(lmz_jwt_verify(access, strlen(access), &f.ks, &ex, f.a, &c, NULL),
                   LMZ_JWT_EEXPIRED);
  f.now += 2592000 * 1000.0 + 1000;
  r = fx_refresh(&f, t2, NULL, NULL);
  assert_int_equal(r.status, 401);
  assert_string_equal(fx_json_str(&f, r.body, "error"), "token_expired");
  fx_stop(&f);
}

static void rate_limits(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  const char *body = "{\"email\":\"eve@example.com\"}";
  struct fx_req q = {.method = "POST", .target = "/auth/email-magic-link", .body = body, .remote = "10.1.1.1:9"};
  for (int i = 0; i < 5; i++) /* burst 5 per address */
    assert_int_equal(fx_do(&f, &q).status, 200);
  q.remote = "10.1.1.2:9"; /* another IP does not help: per address */
  struct resp r = fx_do(&f, &q);
  assert_int_equal(r.status, 429);
  assert_string_equal(r.retry_after, "360"); /* 10 per hour */
  assert_string_equal(fx_json_str(&f, r.body, "error"), "rate_limited");
  f.now += 359 * 1000.0;
  assert_int_equal(fx_do(&f, &q).status, 429);
  f.now += 1000.0;
  assert_int_equal(fx_do(&f, &q).status, 200);
  /* per IP: 20 in a burst, whatever the addresses */
  char b[100];
  struct fx_req p = {.method = "POST", .target = "/auth/email-magic-link", .body = b, .remote = "[::1]:7"};
  for (int i = 0; i < 20; i++) {
    snprintf(b, sizeof b, "{\"email\":\"u%d@example.com\"}", i);
    assert_int_equal(fx_do(&f, &p).status, 200);
  }
  snprintf(b, sizeof b, "{\"email\":\"u99@example.com\"}");
  r = fx_do(&f, &p);
  assert_int_equal(r.status, 429);
  assert_string_equal(r.retry_after, "60");
  /* token guessing on the magic-link endpoint: limited per IP too */
  struct fx_req g = {.method = "GET", .target = "/auth/magic-link?one_time_token=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                     .remote = "10.7.7.7:1"};
  for (int i = 0; i < 20; i++)
    assert_string_equal(fx_do(&f, &g).location, "/?error=invalid_token");
  assert_int_equal(fx_do(&f, &g).status, 429);
  fx_stop(&f);
}

/* The newest outbox file's text (polled: the dev sender writes on the
 * thread pool), or NULL after the hang guard. */
static char *outbox_text(struct fx *f, int want_files) {
  char dir[600];
  snprintf(dir, sizeof dir, "%s/outbox", f->dir);
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  for (;;) {
    DIR *d = opendir(dir);
    int n = 0;
    char last[300] = "";
    for (struct dirent *e; d && (e = readdir(d));)
      if (e->d_name[0] != '.' && ++n && strcmp(e->d_name, last) > 0)
        snprintf(last, sizeof last, "%s", e->d_name);
    if (d)
      closedir(d);
    if (n >= want_files) {
      char path[1000];
      snprintf(path, sizeof path, "%s/%s", dir, last);
      return tl_read_file(path, NULL);
    }
    if (tl_now_ms() > deadline)
      return NULL;
    uv_run(&f->loop, UV_RUN_ONCE);
  }
}

static void mail_templates(void **state) {
  (void)state;
  struct fx f;
  struct lmz_auth_config c;
  fx_default_cfg(&c);
  c.app_name = "Ed & Co";
  c.templates[LMZ_AUTH_MAIL_MAGIC_LINK].subject = "Sign in to {{app}}";
  c.templates[LMZ_AUTH_MAIL_MAGIC_LINK].html = "<b>{{app}}</b> <a href=\"{{url}}\">go</a>";
  fx_start_cfg(&f, &c);
  struct resp r = fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/email-magic-link",
                                             .body = "{\"email\":\"m@example.com\"}"});
  assert_int_equal(r.status, 200);
  char *text = outbox_text(&f, 1);
  assert_non_null(text);
  assert_non_null(strstr(text, "To: m@example.com\r\nSubject: Sign in to Ed & Co\r\n"));
  assert_non_null(strstr(text, "Click to log in to Ed & Co (valid 30 minutes, once):\n\n"
                               "http://127.0.0.1:8787/auth/magic-link?one_time_token="));
  assert_non_null(strstr(text, "<b>Ed &amp; Co</b> <a href=\"http://127.0.0.1:8787/auth/magic-link?"));
  free(text);
  fx_stop(&f);
}

/* The storage key of a token ("r:<hex of 16 hash bytes>"), computed as the
 * service does from its hash key file. */
static void token_key(struct fx *f, char kind, const char *text, char out[40]) {
  char path[600], err[LMZ_ERRMSG_LEN];
  uint8_t key[32], raw[32], h[32];
  snprintf(path, sizeof path, "%s/" LMZ_AUTH_HASH_KEY_FILE, f->dir);
  assert_int_equal(lmz_keyfile_load(path, key, err), 0);
  assert_int_equal(sodium_base642bin(raw, sizeof raw, text, strlen(text), NULL, NULL, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
  crypto_generichash(h, sizeof h, raw, sizeof raw, key, sizeof key);
  char hex[33];
  sodium_bin2hex(hex, sizeof hex, h, 16);
  snprintf(out, 40, "%c:%s", kind, hex);
}

static bool stored(struct fx *f, const char *key, lmz_value **v) {
  int rv = lmz_node_kv_peek(f->n, LMZ_AUTH_BINDING, LMZ_AUTH_INSTANCE, key, f->a, v);
  assert_true(rv == 0 || rv == LMZ_ENOTFOUND);
  return rv == 0;
}

/* Expired links, refresh tokens and token families are deleted when the
 * actor next starts (fake time, eviction by the node's clock); live ones
 * stay. Only keyed hashes are stored: the token text appears nowhere. */
static void expired_records_swept(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  char t1[256], rkey[40], mkey[40], fkey[80], idx[200], sub[64];
  snprintf(t1, sizeof t1, "%s", fx_login(&f, "old@example.com"));
  struct resp r = fx_refresh(&f, t1, t1, NULL); /* t1 := the rotated-to token */
  snprintf(sub, sizeof sub, "%s", fx_json_str(&f, r.body, "sub"));
  token_key(&f, 'r', t1, rkey);
  token_key(&f, 'm', fx_magic_token(&f, "old@example.com"), mkey);
  lmz_value *rec = NULL, *fam = NULL;
  assert_true(stored(&f, rkey, &rec));
  /* the record: the keyed hash and metadata, never the token or its bytes */
  static const char *const fields[] = {"h", "expiresAt", "sub", "fam", "rotated"};
  assert_int_equal(lmz_len(rec), 5);
  for (size_t i = 0; i < 5; i++)
    assert_non_null(lmz_object_getc(rec, fields[i]));
  uint8_t raw[32];
  assert_int_equal(sodium_base642bin(raw, sizeof raw, t1, strlen(t1), NULL, NULL, NULL,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
  assert_memory_not_equal(lmz_arraybuffer_data(lmz_object_getc(rec, "h")), raw, 32);
  snprintf(fkey, sizeof fkey, "f:%s", lmz_get_str(lmz_object_getc(rec, "fam"), NULL));
  snprintf(idx, sizeof idx, "F:%s:%s", sub, fkey + 2);
  assert_true(stored(&f, fkey, &fam) && stored(&f, idx, &fam) && stored(&f, mkey, &fam));
  /* a month and a day later the actor is evicted, and its next start sweeps */
  f.now += (2592000.0 + 86400) * 1000;
  assert_int_equal(lmz_node_evict_idle(f.n), 1);
  const char *t2 = fx_login(&f, "new@example.com"); /* activates it again */
  assert_false(stored(&f, rkey, &rec));
  assert_false(stored(&f, fkey, &rec));
  assert_false(stored(&f, idx, &rec));
  assert_false(stored(&f, mkey, &rec));
  char k2[40];
  token_key(&f, 'r', t2, k2);
  assert_true(stored(&f, k2, &rec)); /* the new login's token stays */
  fx_stop(&f);
}

struct call_reply {
  int n;
  bool ok;
  char err[200];
};

static void on_reply(void *arg, int status, bool ok, const lmz_value *v) {
  struct call_reply *r = arg;
  r->n++;
  r->ok = status == 0 && ok;
  if (lmz_typeof(v) == LMZ_T_ERROR)
    snprintf(r->err, sizeof r->err, "%s", lmz_error_message(v));
}

/* The mailer worker sends only for the auth actor: a call from anyone else
 * (here the CLI; a browser client is the same) is refused, nothing sent. */
static void mailer_refuses_others(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  lmz_arena *a = lmz_node_arena_get(f.n);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *args = lmz_array(a, 4);
  const char *argv[] = {"magic-link", "victim@example.com", "http://evil/", "x"};
  for (int i = 0; i < 4; i++)
    lmz_array_push(args, lmz_cstring(a, argv[i]));
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, "send"));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", args);
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "test", NULL};
  struct lmz_node_call c = {.binding = LMZ_AUTH_MAILER_BINDING, .chain = chain,
                            .call_chain = &cli, .call_chain_len = 1, .arena = a};
  struct call_reply r = {0};
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_node_call(f.n, &c, on_reply, &r, err), 0);
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r.n < 1 && tl_now_ms() < deadline)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(r.n, 1);
  assert_false(r.ok);
  assert_non_null(strstr(r.err, "may only be called by LUMENIZE_AUTH"));
  char dir[600];
  snprintf(dir, sizeof dir, "%s/outbox", f.dir);
  DIR *d = opendir(dir);
  int files = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    files += e->d_name[0] != '.';
  if (d)
    closedir(d);
  assert_int_equal(files, 0);
  fx_stop(&f);
}

static void hostile_input(void **state) {
  (void)state;
  struct fx f;
  fx_start(&f);
  static const char *const bad[] = {
      "{", "[]", "\"x\"", "{\"email\":5}", "{\"email\":\"nope\"}", "{\"email\":\"a@b\"}",
      "{\"email\":\"a@b.com\\r\\nBcc: evil@x.com\"}", "{\"email\":\"a@b.com,evil@x.com\"}",
      "{\"email\":\"<a@b.com>\"}", "{\"email\":\"a@@b.com\"}", "{\"email\":\"a\\u0000@b.com\"}"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    struct resp r = fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/email-magic-link",
                                               .body = bad[i], .remote = "10.2.0.1:1"});
    assert_int_equal(r.status, 400);
    assert_string_equal(fx_json_str(&f, r.body, "error"), "invalid_request");
  }
  char *big = calloc(1, LMZ_AUTH_MAX_BODY + 100);
  memset(big, ' ', LMZ_AUTH_MAX_BODY + 50);
  big[0] = '{';
  big[LMZ_AUTH_MAX_BODY + 50] = '}';
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/email-magic-link", .body = big,
                                              .remote = "10.2.0.2:1"}).status, 413);
  free(big);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "GET", .target = "/auth/nothing"}).status, 404);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "GET", .target = "/auth/email-magic-link"}).status, 404);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "GET", .target = "/auth/magic-link"}).status, 400);
  /* malformed tokens: never looked up, same answer as unknown ones */
  static const char *const toks[] = {"x", "%00", "AAAA%0d%0aSet-Cookie:%20a=b",
                                     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB"};
  for (size_t i = 0; i < sizeof toks / sizeof *toks; i++) {
    char t[200];
    snprintf(t, sizeof t, "/auth/magic-link?one_time_token=%s", toks[i]);
    struct resp r = fx_do(&f, &(struct fx_req){.method = "GET", .target = t, .remote = "10.2.0.3:1"});
    assert_true(r.status == 302 || r.status == 400);
    assert_null(strchr(r.location, '\n'));
  }
  /* cookies: none, garbage, another cookie of the same name later, quoted */
  const char *t1 = fx_login(&f, "frank@example.com");
  char hdr[400];
  snprintf(hdr, sizeof hdr, "refresh-token=garbage; refresh-token=%s", t1);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/refresh-token",
                                              .cookie = hdr}).status, 401);
  snprintf(hdr, sizeof hdr, "other=1; refresh-token=\"%s\"", t1);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/refresh-token",
                                              .cookie = hdr}).status, 200);
  assert_int_equal(fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/refresh-token"}).status, 401);
  /* a Host that is not loopback never names the origin of a link */
  struct resp r = fx_do(&f, &(struct fx_req){.method = "POST", .target = "/auth/email-magic-link?_test=true",
                                             .body = "{\"email\":\"g@example.com\"}",
                                             .host = "evil.example", .remote = "10.2.0.4:1"});
  assert_int_equal(strncmp(fx_json_str(&f, r.body, "magic_link"),
                           "http://127.0.0.1:8787/auth/magic-link?", 38), 0);
  fx_stop(&f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(login_flow),         cmocka_unit_test(reuse_revokes_family),
      cmocka_unit_test(concurrent_refresh_grace),
      cmocka_unit_test(strict_reuse_and_auto_approve),
      cmocka_unit_test(logout_revokes),     cmocka_unit_test(expiry_on_fake_time),
      cmocka_unit_test(rate_limits),        cmocka_unit_test(hostile_input),
      cmocka_unit_test(mail_templates),     cmocka_unit_test(expired_records_swept),
      cmocka_unit_test(mailer_refuses_others),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
