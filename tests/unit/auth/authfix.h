/* tests/unit/auth/authfix.h - one real node (RocksDB in a temp dir) running
 * the auth service on a fake clock, driven request by request through
 * lmz_node_http as the gateway does: the service's state machine (logins,
 * rotation, reuse, expiry, limits, admin) with time stepped by the test. */
#ifndef LMZ_TESTS_AUTHFIX_H
#define LMZ_TESTS_AUTHFIX_H

#include "lib/testlib.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "actor/node.h"
#include "auth/auth.h"
#include "core/json.h"
#include "gateway/jwt.h"
#include "lmz/http.h"

#define FX_START_MS 1796428800000.0 /* 2026-12-05T00:00:00Z */

struct fx {
  char *dir;
  uv_loop_t loop;
  lmz_node_t n_mem, *n;   /* n = &n_mem once initialized */
  lmz_auth_t au_mem, *au; /* au = &au_mem once initialized */
  double now;
  struct lmz_jwt_keyset ks;
  lmz_arena *a; /* answers' parsed bodies */
};

struct resp {
  int n, status;
  char body[8192];
  char cookie[256];   /* the refresh-token value of Set-Cookie */
  char set_cookie[512];
  char location[1024];
  char retry_after[16];
};

static inline double fx_clock(void *d) { return ((struct fx *)d)->now; }

static inline void fx_on_http(void *arg, int status, const struct lmz_response *res,
                              const lmz_value *error) {
  (void)error;
  struct resp *r = arg;
  r->n++;
  r->status = status ? -1 : res->status;
  if (status)
    return;
  snprintf(r->body, sizeof r->body, "%.*s", (int)res->body_len, (const char *)res->body);
  for (size_t i = 0; i < res->n_headers; i++) {
    const char *nm = res->headers[i].name, *v = res->headers[i].value;
    if (!strcasecmp(nm, "Location"))
      snprintf(r->location, sizeof r->location, "%s", v);
    if (!strcasecmp(nm, "Retry-After"))
      snprintf(r->retry_after, sizeof r->retry_after, "%s", v);
    if (!strcasecmp(nm, "Set-Cookie")) {
      snprintf(r->set_cookie, sizeof r->set_cookie, "%s", v);
      const char *eq = strchr(v, '=');
      size_t n = strcspn(eq + 1, ";");
      snprintf(r->cookie, sizeof r->cookie, "%.*s", (int)n, eq + 1);
    }
  }
}

static inline void fx_start_cfg(struct fx *f, struct lmz_auth_config *cfg) {
  memset(f, 0, sizeof *f);
  assert_true(sodium_init() >= 0);
  f->dir = tl_mkdtemp("lmz-auth");
  f->now = FX_START_MS;
  f->a = lmz_arena_new();
  uv_loop_init(&f->loop);
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts o = {.node_id = "auth-test", .data_dir = f->dir,
                            .clock = fx_clock, .clock_data = f};
  assert_int_equal(lmz_node_init(f->n = &f->n_mem, &f->loop, &o, err), 0);
  uint8_t seed[32];
  randombytes_buf(seed, sizeof seed);
  assert_int_equal(lmz_jwt_keyset_add(&f->ks, "BLUE", NULL, seed), 0);
  int rv = lmz_auth_init(f->au = &f->au_mem, &f->loop, f->n, cfg, &f->ks,
                         f->dir, err);
  if (rv)
    fprintf(stderr, "lmz_auth_init: %s\n", err);
  assert_int_equal(rv, 0);
  lmz_auth_set_origin(f->au, "http://127.0.0.1:8787");
  assert_int_equal(lmz_node_start(f->n), 0);
}

static inline void fx_default_cfg(struct lmz_auth_config *c) {
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_auth_config_parse(NULL, NULL, NULL, c, err), 0);
  c->enabled = true;
  c->test_mode = true;
  c->bootstrap_admin = "boss@example.com";
}

static inline void fx_start(struct fx *f) {
  struct lmz_auth_config c;
  fx_default_cfg(&c);
  fx_start_cfg(f, &c);
}

static inline void fx_closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static inline void fx_auth_closed(void *arg) { *(bool *)arg = true; }

/* The auth service's mail sender closes first (its cancelled sends call
 * back into the node's requests), then the node, as lmzd does. */
static inline void fx_stop(struct fx *f) {
  bool done = false, auth_done = false;
  lmz_auth_close(f->au, fx_auth_closed, &auth_done);
  uint64_t end = tl_now_ms() + 5000;
  while (!auth_done && tl_now_ms() < end)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(auth_done);
  lmz_node_close(f->n, fx_closed, &done);
  while (!done)
    uv_run(&f->loop, UV_RUN_ONCE);
  lmz_node_release(f->n);
  lmz_auth_release(f->au);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  lmz_jwt_keyset_wipe(&f->ks);
  lmz_arena_free(f->a);
  tl_rmtree(f->dir);
  free(f->dir);
}

struct fx_req {
  const char *method, *target; /* "/auth/x?y=1" */
  const char *cookie, *bearer, *body, *remote;
  const char *host;
};

/* One request, run to its answer. */
static inline struct resp fx_do(struct fx *f, const struct fx_req *q) {
  struct resp r = {0};
  struct lmz_header hs[4];
  size_t nh = 0;
  char cookie[400], authz[9000];
  hs[nh++] = (struct lmz_header){"Host", q->host ? q->host : "127.0.0.1:8787"};
  if (q->cookie) {
    snprintf(cookie, sizeof cookie, "refresh-token=%s", q->cookie);
    hs[nh++] = (struct lmz_header){"Cookie", strchr(q->cookie, '=') ? q->cookie : cookie};
  }
  if (q->bearer) {
    snprintf(authz, sizeof authz, "Bearer %s", q->bearer);
    hs[nh++] = (struct lmz_header){"Authorization", authz};
  }
  char path[2048];
  const char *qm = strchr(q->target, '?');
  snprintf(path, sizeof path, "%.*s", (int)(qm ? (size_t)(qm - q->target) : strlen(q->target)),
           q->target);
  struct lmz_request req = {q->method, path, qm ? qm + 1 : "", hs, nh,
                            (const uint8_t *)q->body, q->body ? strlen(q->body) : 0,
                            LMZ_AUTH_BINDING, LMZ_AUTH_INSTANCE,
                            q->remote ? q->remote : "10.0.0.1:5555"};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_node_http(f->n, LMZ_AUTH_BINDING, LMZ_AUTH_INSTANCE, &req,
                                 fx_on_http, &r, err), 0);
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r.n < 1 && tl_now_ms() < deadline)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(r.n, 1);
  return r;
}

/* A string member of a JSON answer (in f->a), or NULL. */
static inline const char *fx_json_str(struct fx *f, const char *body, const char *key) {
  lmz_json *j = NULL;
  if (lmz_json_parse(f->a, body, strlen(body), NULL, &j, NULL))
    return NULL;
  const lmz_json *v = lmz_json_get(j, key);
  return v && v->type == LMZ_JSON_STRING ? v->u.str.p : NULL;
}

/* Requests a magic link in test mode for `email` and returns its
 * one_time_token (static buffer). */
static inline const char *fx_magic_token(struct fx *f, const char *email) {
  static char tok[64];
  char body[300];
  snprintf(body, sizeof body, "{\"email\":\"%s\"}", email);
  struct resp r = fx_do(f, &(struct fx_req){.method = "POST", .target = "/auth/email-magic-link?_test=true",
                                            .body = body, .remote = "10.9.9.9:1"});
  assert_int_equal(r.status, 200);
  const char *link = fx_json_str(f, r.body, "magic_link");
  assert_non_null(link);
  const char *t = strstr(link, "one_time_token=");
  assert_non_null(t);
  snprintf(tok, sizeof tok, "%s", t + 15);
  return tok;
}

/* Logs `email` in; returns the refresh token (static buffer). */
static inline const char *fx_login(struct fx *f, const char *email) {
  static char cookie[256];
  char target[200];
  snprintf(target, sizeof target, "/auth/magic-link?one_time_token=%s", fx_magic_token(f, email));
  struct resp r = fx_do(f, &(struct fx_req){.method = "GET", .target = target});
  assert_int_equal(r.status, 302);
  assert_string_equal(r.location, "/");
  assert_true(strlen(r.cookie) == 43);
  snprintf(cookie, sizeof cookie, "%s", r.cookie);
  return cookie;
}

/* Refreshes with `cookie`; on 200 copies the new cookie and access token. */
static inline struct resp fx_refresh(struct fx *f, const char *cookie, char *next,
                                     char *access) {
  struct resp r = fx_do(f, &(struct fx_req){.method = "POST", .target = "/auth/refresh-token", .cookie = cookie});
  if (r.status == 200) {
    if (next)
      snprintf(next, 256, "%s", r.cookie);
    const char *at = fx_json_str(f, r.body, "access_token");
    assert_non_null(at);
    if (access)
      snprintf(access, 4096, "%s", at);
  }
  return r;
}

#endif
