/* auth/auth_int.h - private to auth/: the service's state and the helpers
 * its endpoint files share. Storage layout of the LUMENIZE_AUTH actor
 * (values are lmz_value objects; H = hex of the first 16 bytes of a token's
 * keyed hash, whose full 32 bytes are kept in the record and compared in
 * constant time):
 *   s:<sub>              subject {sub, email, emailVerified, adminApproved,
 *                        isAdmin, createdAt, lastLoginAt}
 *   e:<email>            sub (the email index; emails are unique)
 *   a:<principal>:<actor>, A:<actor>:<principal>   delegation grants
 *   m:H                  magic link {h, email, expiresAt, used}
 *   i:H                  invite {h, email, expiresAt} (reusable)
 *   r:H                  refresh token {h, sub, fam, expiresAt, rotated}
 *   f:<fam>              token family {sub, revoked, expiresAt (its newest
 *                        token's)}
 *   F:<sub>:<fam>        the subject's families (to revoke them all) */
#ifndef LMZ_AUTH_AUTH_INT_H
#define LMZ_AUTH_AUTH_INT_H

#include "auth/auth.h"
#include "auth/parse.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "lmz/http.h"

extern lmz_log_ns lmz__auth_log;

/* One request being handled (lives for the turn). */
struct areq {
  lmz_auth_t *auth;
  lmz_ctx *ctx;
  const struct lmz_request *req;
  struct lmz_response *res;
  lmz_arena *a;      /* the turn arena */
  double now_ms;     /* the node's clock (fake in tests) */
  const char *rest;  /* path after the prefix ("/subject/x") */
  const char *ip;    /* client address without the port */
};

/* ---- setup (setup.c) ---------------------------------------------------- */
/* Copies the config's strings into au->arena and fills defaults. */
int lmz__auth_copy_config(lmz_auth_t *au, const struct lmz_auth_config *cfg);
/* The signing key set: the config's private keys, else the dev keys. */
int lmz__auth_keys(lmz_auth_t *au, const struct lmz_auth_config *cfg,
                   const struct lmz_jwt_keyset *dev, char *errmsg);
/* The token hash key: config, else DATA/auth-hash.key (created 0600). */
int lmz__auth_hash_key(lmz_auth_t *au, const char *text, const char *data_dir,
                       char *errmsg);

/* ---- answers (service.c) ------------------------------------------------- */
int lmz__auth_json(struct areq *r, int status, lmz_buf *body);
int lmz__auth_error(struct areq *r, int status, const char *error,
                    const char *description);
/* 302 to the redirect, with ?error=code (or &error=) when code != NULL. */
int lmz__auth_redirect(struct areq *r, const char *code);
/* Set-Cookie refresh-token=tok (NULL = clear) for the prefix. */
int lmz__auth_set_cookie(struct areq *r, const char *tok);
/* The JSON body as an object DOM; answers 400/413 itself and returns NULL. */
const lmz_json *lmz__auth_body(struct areq *r);
/* A query parameter into the turn arena; NULL when absent or malformed. */
const char *lmz__auth_param(struct areq *r, const char *name);
bool lmz__auth_test_request(struct areq *r);
/* "{origin}{prefix}{path}" in the turn arena. */
const char *lmz__auth_url(struct areq *r, const char *path);
/* Sends a message of `type` to `to`, rendered from its template with
 * {{url}} = url and {{email}} = email, once this turn's writes are durable
 * (failures are logged, never reported to the client). */
void lmz__auth_mail(struct areq *r, enum lmz_auth_mail_type type, const char *to,
                    const char *url, const char *email);

/* ---- the mailer worker (mailer.c) -------------------------------------- */
/* Its method table: send(type, to, url, email), guarded so that only the
 * LUMENIZE_AUTH actor may call it. */
extern const lmz_method lmz__auth_mailer_methods[];

/* ---- tokens (tokens.c) --------------------------------------------------- */
enum tok_kind { TOK_MAGIC = 'm', TOK_INVITE = 'i', TOK_REFRESH = 'r' };
/* A fresh token: its text (43 chars) and its storage key. */
struct tok {
  char text[LMZ_AUTH_TOKEN_CHARS + 1];
  char key[40];
  uint8_t hash[32];
};
int lmz__auth_tok_new(struct areq *r, enum tok_kind kind, struct tok *t);
/* Looks a presented token up: NULL when malformed or unknown (or the stored
 * hash differs); else the record (turn arena) and its key in t->key. */
lmz_value *lmz__auth_tok_find(struct areq *r, enum tok_kind kind,
                              const char *text, size_t len, struct tok *t);
/* A record {h: <full hash>, expiresAt} to add fields to (turn arena). */
lmz_value *lmz__auth_tok_record(struct areq *r, const struct tok *t,
                                double expires_at);
/* A new refresh token in family `fam` (NULL = a new family) for sub. */
int lmz__auth_refresh_issue(struct areq *r, const char *sub, const char *fam,
                            struct tok *t);
/* The record of the request's refresh-token cookie, or NULL (login.c). */
lmz_value *lmz__auth_cookie_token(struct areq *r, struct tok *t);
/* The family record of a refresh-token record, or NULL (login.c). */
lmz_value *lmz__auth_family(struct areq *r, const lmz_value *rec);
int lmz__auth_family_revoke(struct areq *r, const char *fam);
int lmz__auth_revoke_subject(struct areq *r, const char *sub);
/* The access token for subject record `s` (flags from it), `act` NULL or an
 * "act" claim JSON object text. Appends the JWT to out. */
int lmz__auth_mint(struct areq *r, const lmz_value *s, const char *act,
                   lmz_buf *out);
void lmz__auth_uuid(char out[37]);

/* ---- subjects (subjects.c) ----------------------------------------------- */
lmz_value *lmz__auth_subject(struct areq *r, const char *sub);
lmz_value *lmz__auth_subject_by_email(struct areq *r, const char *email);
/* Creates a subject (flags false, createdAt now); NULL on out of memory. */
lmz_value *lmz__auth_subject_create(struct areq *r, const char *email);
int lmz__auth_subject_save(struct areq *r, lmz_value *s);
bool lmz__auth_flag(const lmz_value *s, const char *name);
void lmz__auth_set_flag(struct areq *r, lmz_value *s, const char *name, bool v);
const char *lmz__auth_sget(const lmz_value *s, const char *name);
/* Writes the Subject JSON (with authorizedActors). */
int lmz__auth_subject_json(struct areq *r, const lmz_value *s, lmz_buf *b);
/* Bootstrap promotion on login, then the admin notification. */
void lmz__auth_login_flags(struct areq *r, lmz_value *s);

/* ---- callers (admin.c) -------------------------------------------------- */
struct caller {
  lmz_value *s;        /* the caller's subject record */
  const char *sub;
  const lmz_json *act; /* the caller's own token's act claim, or NULL */
};
/* true: *c is the caller (Bearer token, else refresh cookie). false: a 401
 * has been answered; return *rv. */
bool lmz__auth_authenticate(struct areq *r, struct caller *c, int *rv);
/* Same, and the caller is an admin (from storage); else 403 answered. */
bool lmz__auth_admin(struct areq *r, struct caller *c, int *rv);
/* Segment i (0-based) of the path after the prefix (turn arena). */
const char *lmz__auth_seg(struct areq *r, int i);

/* ---- endpoints ----------------------------------------------------------- */
int lmz__auth_magic_request(struct areq *r); /* login.c */
int lmz__auth_magic_click(struct areq *r);
int lmz__auth_accept_invite(struct areq *r);
int lmz__auth_refresh(struct areq *r);
int lmz__auth_logout(struct areq *r);
int lmz__auth_subjects(struct areq *r); /* admin.c */
int lmz__auth_subject_get(struct areq *r);
int lmz__auth_subject_patch(struct areq *r);
int lmz__auth_subject_delete(struct areq *r);
int lmz__auth_actor_add(struct areq *r);
int lmz__auth_actor_remove(struct areq *r);
int lmz__auth_invite(struct areq *r);
int lmz__auth_approve(struct areq *r);
int lmz__auth_delegated(struct areq *r);
int lmz__auth_test_set(struct areq *r);

#endif
