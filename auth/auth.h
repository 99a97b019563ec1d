/* auth/auth.h - the authentication service (issue 11; lumenize-behaviour
 * section 5): a built-in durable object, binding LUMENIZE_AUTH, instance
 * "default", registered by lmzd itself on every node. The gateway sends
 * every request under the auth prefix (default /auth) to that one actor
 * (forwarded to its owner in a cluster, like any durable object's HTTP),
 * so subjects, magic links, invites, refresh tokens and grants live in its
 * own storage: placed, fenced and replicated like any actor's.
 *
 * Endpoints (paths relative to the prefix; answers as the original's,
 * lumenize-behaviour 5.5; auth/service.c is the table):
 *   POST /email-magic-link   {email} -> 200 always the same message (no
 *                            enumeration); 400 bad JSON/email; 429 +
 *                            Retry-After past the per-address or per-IP
 *                            limit; ?_test=true in test mode returns the link
 *   GET  /magic-link?one_time_token=   single use, magic_link_ttl_s; 302 to
 *                            redirect + Set-Cookie refresh-token
 *   POST /refresh-token      cookie -> {access_token, token_type,
 *                            expires_in, sub} + a rotated cookie
 *   POST /logout             revokes the cookie's token family, clears it
 *   GET/PATCH/DELETE /subject/:id, GET /subjects, POST /subject/:id/actors,
 *   DELETE /subject/:id/actors/:actorId, POST /invite, GET /accept-invite,
 *   GET /approve/:id, POST /delegated-token (RFC 8693 "act")
 *
 * Tokens: refresh, magic-link and invite tokens are 32 random bytes sent
 * as 43 base64url characters; only a keyed BLAKE2b hash of each is stored
 * (the hash key is config, never in the actor's storage), and the stored
 * hash is compared in constant time. Refresh tokens rotate on every use
 * and belong to a family (one login); presenting a token that was already
 * rotated revokes its whole family (reuse detection; the original has
 * none), except within reuse_grace_s of its rotation (tabs refreshing at
 * the same moment with the same cookie). Access tokens are Ed25519 JWTs (gateway/jwt.h) signed with the
 * key set's primary key.
 *
 * Threads: the node's loop thread. */
#ifndef LMZ_AUTH_AUTH_H
#define LMZ_AUTH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "actor/node.h"
#include "auth/mail.h"
#include "auth/ratelimit.h"
#include "auth/templates.h"
#include "core/config.h"
#include "gateway/jwt.h"

#define LMZ_AUTH_BINDING "LUMENIZE_AUTH"
#define LMZ_AUTH_CLASS "LumenizeAuth"
#define LMZ_AUTH_INSTANCE "default"
/* The worker that sends the service's mail (auth/mailer.c): only the
 * LUMENIZE_AUTH actor may call it. */
#define LMZ_AUTH_MAILER_BINDING "LUMENIZE_AUTH_MAILER"
#define LMZ_AUTH_MAILER_CLASS "LumenizeAuthMailer"
#define LMZ_AUTH_DEFAULT_PREFIX "/auth"
#define LMZ_AUTH_COOKIE "refresh-token"
#define LMZ_AUTH_HASH_KEY_FILE "auth-hash.key"

/* Original's defaults (lumenize-behaviour 5.2). */
#define LMZ_AUTH_ACCESS_TTL_S 900u
#define LMZ_AUTH_REFRESH_TTL_S 2592000u
#define LMZ_AUTH_MAGIC_LINK_TTL_S 1800u
#define LMZ_AUTH_INVITE_TTL_S 604800u
#define LMZ_AUTH_MAX_BODY 16384u /* JSON bodies of the auth endpoints */

/* The `auth` block of the node config (documented in README, "Logging in"):
 *   "auth": { "enabled": true, "prefix": "/auth", "redirect": "/",
 *             "public_url": "https://app.example",   // links in emails
 *             "issuer": ..., "audience": ...,
 *             "access_token_ttl_s": 900, "refresh_token_ttl_s": 2592000,
 *             "magic_link_ttl_s": 1800, "invite_ttl_s": 604800,
 *             "bootstrap_admin": "you@example.com",
 *             "test_mode": false, "auto_approve": false,
 *             "refresh_reuse_grace_s": 10,
 *             "hash_key": "<43 chars base64url>",   // else DATA/auth-hash.key
 *             "primary": "BLUE",
 *             "private_keys": { "BLUE": "<PEM or 43 chars>", "GREEN": ... },
 *             "bot_check": { "secret": "...", "endpoint": "https://...",
 *                            "timeout_ms": 10000 },
 *             "rate_limits": { "magic_link_per_address": {"burst": 5, "per_hour": 10},
 *                              "magic_link_per_ip": {"burst": 20, "per_hour": 60} },
 *             "email": { "kind": "dev"|"smtp"|"http", "from": "...",
 *                        "app_name": "Lumenize",
 *                        "templates": { "magic-link": {"subject", "text",
 *                                       "html"}, ... },   // auth/templates.h
 *                        ...kind's settings (auth/mail.h) } } */
struct lmz_auth_key_text {
  const char *kid, *text;
};

struct lmz_auth_config {
  bool enabled;
  const char *prefix;     /* NULL = /auth */
  const char *redirect;   /* NULL = "/" */
  const char *public_url; /* origin of links; NULL = see lmz_auth_set_origin */
  const char *iss, *aud;  /* NULL = LMZ_JWT_DEFAULT_ISS / _AUD */
  uint32_t access_ttl_s, refresh_ttl_s, magic_link_ttl_s, invite_ttl_s;
  const char *bootstrap_admin; /* normalised email or NULL */
  bool test_mode;              /* ?_test=true answers carry the links */
  bool auto_approve;           /* new subjects start adminApproved (--dev) */
  /* A rotated refresh token presented again within this many seconds of its
   * rotation is a concurrent refresh (two tabs at once), answered with a new
   * token of the same family; later it is reuse and revokes the family.
   * 0 = strict (every reuse revokes). */
  uint32_t reuse_grace_s;
  const char *hash_key;        /* base64url text or NULL */
  const char *primary;         /* kid minted with; NULL = the key set's */
  struct lmz_auth_key_text *private_keys;
  size_t n_private_keys;
  struct lmz_auth_bucket_cfg per_address, per_ip;
  /* "bot_check": the gateway's Turnstile-compatible check on the magic-link
   * POST (gateway/gateway.h, struct lmz_gateway_bot_check); secret NULL =
   * off; endpoint NULL = Cloudflare's; off in test mode, as the original. */
  const char *bot_secret, *bot_endpoint;
  uint32_t bot_timeout_ms;
  struct lmz_mail_config mail; /* outbox_dir filled by lmzd for dev */
  const char *app_name;        /* {{app}} in messages; NULL = "Lumenize" */
  struct lmz_auth_template templates[LMZ_AUTH_MAIL_N]; /* NULL parts = default */
  bool mail_set;               /* an "email" block was given */
};

/* Fills defaults (enabled false, TTLs, limits 5/10 per address, 20/60 per
 * IP) and parses `obj` (the "auth" member; NULL = defaults only) of config
 * `file`. Strings point into the config's DOM or `a`. 0 or LMZ_EBADCONFIG
 * with errmsg "FILE:LINE:COL: problem". */
int lmz_auth_config_parse(lmz_arena *a, const lmz_config *file,
                          const lmz_json *obj, struct lmz_auth_config *out,
                          char *errmsg);

typedef struct lmz_auth_s lmz_auth_t;
typedef void (*lmz_auth_close_cb)(void *arg);

/* The service handle (README "Code conventions"): the caller allocates it;
 * the fields are private to auth/. */
struct lmz_auth_s {
  uv_loop_t *loop;
  lmz_node_t *node;
  lmz_arena *arena; /* the config's copied strings */
  struct lmz_auth_config cfg;
  struct lmz_jwt_keyset ks;
  uint8_t hash_key[32];
  lmz_mail_sender_t *mail;
  struct lmz_auth_limiter per_addr, per_ip, bad_token_ip;
  char *origin;
  lmz_auth_close_cb close_cb;
  void *close_arg;
  uint64_t mails_sent, mails_failed;
};

/* Initializes the caller's `au` as the service: copies the config, builds the
 * signing key set (the config's private keys, else `dev_keys` copied: lmzd
 * passes the dev key file's), loads or creates the hash key
 * (DATA/auth-hash.key, 0600, when the config has none), starts the mail sender,
 * registers classes LumenizeAuth and LumenizeAuthMailer and binds LUMENIZE_AUTH
 * and LUMENIZE_AUTH_MAILER on `node` (before lmz_node_start). Errors (errmsg):
 * LMZ_EBADCONFIG (no signing key, bad key text, primary unknown, bad hash key,
 * mail config), LMZ_EEXIST (binding taken), LMZ_EIO, LMZ_ENOMEM. On error
 * nothing is left to close (a mail sender already started finishes its close on
 * the loop by itself) and `au` may be freed. */
int lmz_auth_init(lmz_auth_t *au, uv_loop_t *loop, lmz_node_t *node,
                  const struct lmz_auth_config *cfg,
                  const struct lmz_jwt_keyset *dev_keys, const char *data_dir,
                  char *errmsg);
/* The public keys of the signing set (for the gateway's verification). */
const struct lmz_jwt_keyset *lmz_auth_keyset(const lmz_auth_t *auth);
/* The origin links fall back to when no public_url is configured and the
 * request's Host is not a loopback name ("http://127.0.0.1:8787"); copied. */
int lmz_auth_set_origin(lmz_auth_t *auth, const char *origin);
const char *lmz_auth_prefix(const lmz_auth_t *auth);

/* Closes the mail sender (pending sends cancelled); cb (may be NULL) runs
 * later. The class stays registered on the node: release only after the
 * node is closed. */
void lmz_auth_close(lmz_auth_t *auth, lmz_auth_close_cb cb, void *arg);
/* Releases what the service holds (keys wiped); after the close callback
 * and the node's close. The memory of `auth` is then the caller's. NULL is
 * ignored. */
void lmz_auth_release(lmz_auth_t *auth);

#endif
