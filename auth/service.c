/* auth/service.c - the LUMENIZE_AUTH durable object: its lifecycle on the
 * node, the endpoint table, and the answers every endpoint shares.
 *
 * Happy path: lmzd calls lmz_auth_init before lmz_node_start (class
 * registered, binding bound); the gateway routes {prefix}/... to
 * (LUMENIZE_AUTH, default); on_request strips the prefix, finds the
 * endpoint by method and path in `routes`, and the endpoint answers within
 * the turn (its storage writes commit with the turn; the answer leaves
 * once they are durable).
 * Failure modes:
 *  1. no route: 404 text/plain "Not Found", as the original;
 *  2. a body over LMZ_AUTH_MAX_BODY: 413; malformed JSON: 400
 *     invalid_request (lmz__auth_body);
 *  3. an endpoint fails (out of memory, storage): the turn throws, nothing
 *     is committed, the gateway answers 500;
 *  4. a mail send fails: logged only (the answer never says, so whether an
 *     address exists does not leak). Mails leave only after their turn's
 *     writes are durable (a call to the mailer worker, held by the output
 *     gate); a turn that fails sends none. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth/auth_int.h"

lmz_log_ns lmz__auth_log = LMZ_LOG_NS("lmz.auth");

/* ---- answers ------------------------------------------------------------- */

int lmz__auth_json(struct areq *r, int status, lmz_buf *body) {
  int rv = lmz_response_body(r->ctx, r->res, status, "application/json",
                             body->data, body->len);
  lmz_buf_free(body);
  if (!rv) /* tokens and subject data are never cached */
    rv = lmz_response_header(r->ctx, r->res, "Cache-Control", "no-store");
  return rv;
}

int lmz__auth_error(struct areq *r, int status, const char *error,
                    const char *description) {
  lmz_buf b = LMZ_BUF_INIT;
  lmz_buf_append_str(&b, "{\"error\":");
  lmz_json_write_string(&b, error, strlen(error));
  lmz_buf_append_str(&b, ",\"error_description\":");
  lmz_json_write_string(&b, description, strlen(description));
  lmz_buf_putc(&b, '}');
  return lmz__auth_json(r, status, &b);
}

int lmz__auth_redirect(struct areq *r, const char *code) {
  const char *to = r->auth->cfg.redirect;
  lmz_buf b = LMZ_BUF_INIT;
  if (code)
    lmz_buf_printf(&b, "%s%serror=%s", to, strchr(to, '?') ? "&" : "?", code);
  else
    lmz_buf_append_str(&b, to);
  lmz_buf_putc(&b, '\0');
  int rv = b.data ? lmz_response_header(r->ctx, r->res, "Location",
                                        (const char *)b.data)
                  : LMZ_ENOMEM;
  lmz_buf_free(&b);
  r->res->status = 302;
  if (!rv) /* it may carry a new refresh cookie */
    rv = lmz_response_header(r->ctx, r->res, "Cache-Control", "no-store");
  return rv;
}

int lmz__auth_set_cookie(struct areq *r, const char *tok) {
  char v[256];
  snprintf(v, sizeof v,
           LMZ_AUTH_COOKIE "=%s; Path=%s; HttpOnly; Secure; SameSite=Strict; "
                           "Max-Age=%u",
           tok ? tok : "", r->auth->cfg.prefix,
           tok ? r->auth->cfg.refresh_ttl_s : 0u);
  return lmz_response_header(r->ctx, r->res, "Set-Cookie", v);
}

const lmz_json *lmz__auth_body(struct areq *r) {
  if (r->req->body_len > LMZ_AUTH_MAX_BODY) {
    lmz__auth_error(r, 413, "invalid_request", "Request body too large");
    return NULL;
  }
  struct lmz_json_opts o = {.max_depth = 16, .max_len = LMZ_AUTH_MAX_BODY};
  lmz_json *j = NULL;
  int rv = r->req->body_len
               ? lmz_json_parse(r->a, (const char *)r->req->body,
                                r->req->body_len, &o, &j, NULL)
               : LMZ_ESYNTAX;
  if (rv || j->type != LMZ_JSON_OBJECT) {
    lmz__auth_error(r, 400, "invalid_request", "Invalid JSON body");
    return NULL;
  }
  return j;
}

const char *lmz__auth_param(struct areq *r, const char *name) {
  char buf[512];
  const char *q = r->req->query;
  int n = lmz_auth_param_get(q, strlen(q), name, buf, sizeof buf);
  return n < 0 ? NULL : lmz_arena_strndup(r->a, buf, (size_t)n);
}

bool lmz__auth_test_request(struct areq *r) {
  const char *t = lmz__auth_param(r, "_test");
  return r->auth->cfg.test_mode && t && !strcmp(t, "true");
}

/* Loopback Host names may name the origin (the dev editor is opened as
 * localhost or 127.0.0.1, and its cookie must come back to the same host);
 * any other Host is attacker-chosen text and never goes into a link. */
static bool loopback_host(const char *h) {
  static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(names); i++) {
    size_t n = strlen(names[i]);
    if (!strncmp(h, names[i], n) &&
        (h[n] == '\0' || (h[n] == ':' && strlen(h + n + 1) <= 5 &&
                          strspn(h + n + 1, "0123456789") == strlen(h + n + 1))))
      return true;
  }
  return false;
}

const char *lmz__auth_url(struct areq *r, const char *path) {
  const lmz_auth_t *au = r->auth;
  const char *host = lmz_request_header(r->req, "Host");
  lmz_buf b = LMZ_BUF_INIT;
  if (au->cfg.public_url)
    lmz_buf_append_str(&b, au->cfg.public_url);
  else if (host && loopback_host(host))
    lmz_buf_printf(&b, "http://%s", host);
  else
    lmz_buf_append_str(&b, au->origin ? au->origin : "http://127.0.0.1");
  lmz_buf_printf(&b, "%s%s", au->cfg.prefix, path);
  const char *s = b.data ? lmz_arena_strndup(r->a, (const char *)b.data, b.len) : NULL;
  lmz_buf_free(&b);
  return s;
}

/* Mail leaves through the mailer worker (auth/mailer.c) as a mesh call, so
 * the output gate holds it until this turn's writes are durable: a mail
 * never carries a token that a failed turn did not store. */
void lmz__auth_mail(struct areq *r, enum lmz_auth_mail_type type, const char *to,
                    const char *url, const char *email) {
  lmz_arena *a = r->a;
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(r->ctx), "send", 4,
                            lmz_cstring(a, lmz_auth_mail_type_name(type)),
                            lmz_cstring(a, to), lmz_cstring(a, url ? url : ""),
                            lmz_cstring(a, email ? email : ""));
  int rv = c ? lmz_call(r->ctx, LMZ_AUTH_MAILER_BINDING, NULL, c, NULL, NULL) : LMZ_ENOMEM;
  if (rv)
    LMZ_LOG_WARN(&lmz__auth_log, "mail %s not queued: %s", lmz_auth_mail_type_name(type),
                 lmz_strerror(rv));
}

/* ---- the endpoint table -------------------------------------------------- */

/* Path patterns: literal segments, ":" for one variable segment. */
static const struct route {
  const char *method, *path;
  int (*fn)(struct areq *r);
} routes[] = {
    {"POST", "/email-magic-link", lmz__auth_magic_request},
    {"GET", "/magic-link", lmz__auth_magic_click},
    {"GET", "/accept-invite", lmz__auth_accept_invite},
    {"POST", "/refresh-token", lmz__auth_refresh},
    {"POST", "/logout", lmz__auth_logout},
    {"POST", "/delegated-token", lmz__auth_delegated},
    {"GET", "/subjects", lmz__auth_subjects},
    {"GET", "/subject/:", lmz__auth_subject_get},
    {"PATCH", "/subject/:", lmz__auth_subject_patch},
    {"DELETE", "/subject/:", lmz__auth_subject_delete},
    {"POST", "/subject/:/actors", lmz__auth_actor_add},
    {"DELETE", "/subject/:/actors/:", lmz__auth_actor_remove},
    {"POST", "/invite", lmz__auth_invite},
    {"GET", "/approve/:", lmz__auth_approve},
    {"POST", "/test/set-subject-data", lmz__auth_test_set},
};

/* Whether `path` matches `pat` segment by segment (":" = any non-empty). */
static bool match(const char *pat, const char *path) {
  while (*pat && *path) {
    if (*pat == ':') {
      size_t n = strcspn(path, "/");
      if (n == 0)
        return false;
      path += n;
      pat++;
    } else if (*pat++ != *path++) {
      return false;
    }
  }
  return *pat == '\0' && *path == '\0';
}

static const char *client_ip(lmz_arena *a, const char *remote) {
  const char *colon = remote ? strrchr(remote, ':') : NULL;
  if (!colon)
    return remote ? remote : "";
  size_t n = (size_t)(colon - remote);
  if (n >= 2 && remote[0] == '[' && remote[n - 1] == ']')
    return lmz_arena_strndup(a, remote + 1, n - 2);
  return lmz_arena_strndup(a, remote, n);
}

static int on_request(lmz_ctx *ctx, const struct lmz_request *req,
                      struct lmz_response *res) {
  lmz_auth_t *au = lmz_class_data(ctx);
  size_t pl = strlen(au->cfg.prefix);
  const char *rest = req->path;
  if (!strncmp(rest, au->cfg.prefix, pl) && (rest[pl] == '/' || !rest[pl]))
    rest += pl;
  struct areq r = {au, ctx, req, res, lmz_turn_arena(ctx), lmz_now_ms(ctx),
                   rest, client_ip(lmz_turn_arena(ctx), req->remote)};
  if (!r.ip)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(routes); i++)
    if (!strcmp(routes[i].method, req->method) && match(routes[i].path, rest))
      return routes[i].fn(&r);
  return lmz_response_text(ctx, res, 404, "text/plain", "Not Found");
}

/* Deletes expired magic links, invites, refresh tokens and token families
 * once per activation, as the original does on each wake (bounded per
 * kind; what is left waits for the next activation). A family goes with
 * its index entry F:<sub>:<fam>. */
static int on_start(lmz_ctx *ctx) {
  static const char *const prefixes[] = {"m:", "i:", "r:", "f:"};
  double now = lmz_now_ms(ctx);
  for (size_t k = 0; k < LMZ_ARRAY_SIZE(prefixes); k++) {
    lmz_value *map = NULL;
    struct lmz_kv_list_opts o = {.prefix = prefixes[k], .limit = 10000};
    if (lmz_kv_list(ctx, &o, &map))
      return 0; /* cleanup is best effort */
    for (size_t i = 0; i < lmz_len(map); i++) {
      lmz_value *rec = lmz_map_val(map, i), *exp = lmz_object_getc(rec, "expiresAt");
      const char *key = lmz_get_str(lmz_map_key(map, i), NULL);
      if (!exp || lmz_get_number(exp) >= now || !key)
        continue;
      lmz_kv_delete(ctx, key);
      lmz_value *sub = lmz_object_getc(rec, "sub");
      if (key[0] == 'f' && sub && lmz_typeof(sub) == LMZ_T_STRING) {
        char idx[400];
        snprintf(idx, sizeof idx, "F:%s:%s", lmz_get_str(sub, NULL), key + 2);
        lmz_kv_delete(ctx, idx);
      }
    }
  }
  return 0;
}

/* ---- lifecycle ----------------------------------------------------------- */

/* lmz_node_register_module takes no user data: the class opts (which carry
 * `data`) are built by lmz_auth_init just before and read here, all within
 * that one synchronous call on the loop thread. */
static struct lmz_class_opts registering;

static int module_init(lmz_registry *reg) {
  static const lmz_method none[] = {LMZ_END};
  int rv = lmz_register_do(reg, LMZ_AUTH_CLASS, none, &registering);
  struct lmz_class_opts mailer = {.data = registering.data};
  return rv ? rv : lmz_register_worker(reg, LMZ_AUTH_MAILER_CLASS, lmz__auth_mailer_methods,
                                       &mailer);
}

static int start_parts(lmz_auth_t *au, const struct lmz_auth_config *cfg,
                       const struct lmz_jwt_keyset *dev, const char *data_dir,
                       char *errmsg) {
  int rv = lmz__auth_copy_config(au, cfg);
  if (rv)
    return rv;
  if ((rv = lmz__auth_keys(au, cfg, dev, errmsg)) ||
      (rv = lmz__auth_hash_key(au, cfg->hash_key, data_dir, errmsg)))
    return rv;
  if (lmz_auth_limiter_init(&au->per_addr, &au->cfg.per_address, 0) ||
      lmz_auth_limiter_init(&au->per_ip, &au->cfg.per_ip, 0) ||
      lmz_auth_limiter_init(&au->bad_token_ip, &au->cfg.per_ip, 0))
    return LMZ_ENOMEM;
  struct lmz_mail_config mc = au->cfg.mail;
  char outbox[4096];
  if (mc.kind == LMZ_MAIL_DEV && !mc.outbox_dir) {
    snprintf(outbox, sizeof outbox, "%s/outbox", data_dir);
    mc.outbox_dir = outbox;
  }
  if (!(au->mail = malloc(sizeof *au->mail)))
    return LMZ_ENOMEM;
  rv = lmz_mail_sender_init(au->mail, au->loop, &mc, errmsg);
  if (rv) {
    free(au->mail); /* nothing of it is on the loop */
    au->mail = NULL;
  }
  return rv;
}

int lmz_auth_init(lmz_auth_t *au, uv_loop_t *loop, lmz_node_t *node,
                  const struct lmz_auth_config *cfg,
                  const struct lmz_jwt_keyset *dev_keys, const char *data_dir,
                  char *errmsg) {
  *au = (lmz_auth_t){.loop = loop, .node = node};
  if (!(au->arena = lmz_arena_new()))
    return LMZ_ENOMEM;
  int rv = start_parts(au, cfg, dev_keys, data_dir, errmsg);
  if (!rv) {
    registering = (struct lmz_class_opts){.on_start = on_start,
                                          .on_request = on_request, .data = au};
    rv = lmz_node_register_module(node, "auth", module_init, errmsg);
    if (!rv)
      rv = lmz_node_bind(node, LMZ_AUTH_BINDING, LMZ_AUTH_CLASS, LMZ_NODE_DO, errmsg);
    if (!rv)
      rv = lmz_node_bind(node, LMZ_AUTH_MAILER_BINDING, LMZ_AUTH_MAILER_CLASS,
                         LMZ_NODE_WORKER, errmsg);
    registering = (struct lmz_class_opts){0};
  }
  if (rv) {
    lmz__errmsg_wrapf(errmsg, "auth service");
    if (au->mail) /* nothing was sent: its close finishes on the loop */
      lmz_mail_sender_close(au->mail, free, au->mail); /* freed once closed */
    au->mail = NULL;
    lmz_auth_release(au);
    return rv;
  }
  LMZ_LOG_INFO(&lmz__auth_log,
               "auth service at %s (%s mail, keys: %u, primary %s)",
               au->cfg.prefix,
               au->cfg.mail.kind == LMZ_MAIL_DEV ? "dev outbox" : "remote",
               au->ks.n, au->ks.keys[au->ks.primary].kid);
  return 0;
}

const struct lmz_jwt_keyset *lmz_auth_keyset(const lmz_auth_t *au) {
  return &au->ks;
}
const char *lmz_auth_prefix(const lmz_auth_t *au) { return au->cfg.prefix; }

int lmz_auth_set_origin(lmz_auth_t *au, const char *origin) {
  char *o = strdup(origin);
  if (!o)
    return LMZ_ENOMEM;
  free(au->origin);
  au->origin = o;
  return 0;
}

static void mail_closed(void *arg) {
  lmz_mail_sender_t *m = arg;
  lmz_auth_t *au = m->data;
  free(m);
  if (au->close_cb)
    au->close_cb(au->close_arg);
}

void lmz_auth_close(lmz_auth_t *au, lmz_auth_close_cb cb, void *arg) {
  au->close_cb = cb;
  au->close_arg = arg;
  lmz_mail_sender_t *m = au->mail;
  au->mail = NULL; /* later turns log "not sent" instead of using it */
  if (m) {
    m->data = au;
    lmz_mail_sender_close(m, mail_closed, m);
  } else if (cb) /* closed twice: the first close's cb already ran or will */
    cb(arg);
}

void lmz_auth_release(lmz_auth_t *au) {
  if (!au)
    return;
  lmz_jwt_keyset_wipe(&au->ks);
  sodium_memzero(au->hash_key, sizeof au->hash_key);
  lmz_auth_limiter_free(&au->per_addr);
  lmz_auth_limiter_free(&au->per_ip);
  lmz_auth_limiter_free(&au->bad_token_ip);
  lmz_arena_free(au->arena);
  free(au->origin);
  au->arena = NULL, au->origin = NULL; /* au itself is the caller's */
}
