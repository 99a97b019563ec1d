/* gateway/jwt.h - Ed25519 JSON Web Tokens (RFC 7519 / RFC 8037), pure.
 *
 * Verification turns a token, a key set, the expected issuer/audience and an
 * injected "now" into claims or a status that says which HTTP answer the
 * original (@lumenize/auth hooks.ts verifyAndGate) would give:
 *
 *   status                 HTTP  body / header
 *   LMZ_JWT_EINVALID       401   {"error":"invalid_token","error_description":
 *   LMZ_JWT_EEXPIRED       401    "Token is invalid or expired"}
 *   LMZ_JWT_EAUDIENCE      401   ... "Token audience mismatch"
 *   LMZ_JWT_EISSUER        401   ... "Token issuer mismatch"
 *   LMZ_JWT_ESUBJECT       401   ... "Token missing subject claim"
 *     (every 401 above also carries WWW-Authenticate: Bearer realm="Lumenize",
 *      error="invalid_token", error_description="<same text>")
 *   LMZ_JWT_EDENIED        403   {"error":"access_denied","error_description":
 *                                 "Account not yet approved"} (lmz_jwt_gate)
 *   LMZ_JWT_EMISSING_WS    401   text/plain "Unauthorized: Missing access token
 *                                 in WebSocket subprotocol"
 *   LMZ_JWT_EMISSING_BEARER 401  invalid_request "Missing Authorization header
 *                                 with Bearer token"
 *   LMZ_JWT_ERATE          429   {"error":"rate_limited",...}
 *   LMZ_JWT_ENOUPGRADE     426   text/plain "Expected WebSocket upgrade"
 *   LMZ_JWT_EINSTANCE_FORMAT / _EIDENTITY 403 (lmz_jwt_check_instance)
 *   LMZ_JWT_EINTERNAL      500   (out of memory in the arena)
 * lmz_jwt_answer() gives the exact status, headers and body for each.
 *
 * Token rules (checked in this order; the first failure is returned):
 *  1. at most LMZ_JWT_MAX_LEN bytes, exactly three base64url segments
 *     (RFC 4648 §5 without padding: '=' and non-canonical trailing bits are
 *     rejected, so a token has exactly one spelling);
 *  2. header: a JSON object of at most LMZ_JWT_MAX_HEADER bytes whose "alg" is
 *     exactly "EdDSA" (anything else, e.g. "HS256" or "none", is rejected:
 *     no algorithm confusion); "kid", if present, is a string and only orders
 *     the keys tried; a "crit" member is rejected (RFC 7515 §4.1.11);
 *  3. the Ed25519 signature over "<header>.<payload>" verifies with one of
 *     the key set's public keys (all are tried, the kid's first: BLUE and
 *     GREEN are both accepted during a rotation, as the original does);
 *  4. payload: a JSON object (depth <= 32) with a numeric "exp" (REQUIRED,
 *     unlike the original, which accepts tokens without exp) such that
 *     now_s <= exp + leeway_s (the original's `exp < now` rejects); an "nbf",
 *     if numeric, must satisfy nbf - leeway_s <= now_s;
 *  5. "aud" is a string equal to expect->aud (skipped when expect->aud is
 *     NULL); 6. "iss" likewise; 7. "sub" is a non-empty string.
 * The access gate is separate (lmz_jwt_gate) because some callers (the auth
 * service's admin endpoints) verify without it.
 *
 * Minting signs with a key that has its secret part, with the header
 * {"alg":"EdDSA","typ":"JWT","kid":"<kid>"}.
 *
 * Threads: no global state; any thread, as long as a key set / arena is used
 * by one thread at a time (verify only reads the key set, so one key set may
 * be shared by many threads). Requirement: sodium_init() has been called. */
#ifndef LMZ_GATEWAY_JWT_H
#define LMZ_GATEWAY_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/json.h"

#define LMZ_JWT_MAX_LEN 8192u   /* whole token, bytes */
#define LMZ_JWT_MAX_HEADER 512u /* decoded header JSON, bytes */
#define LMZ_JWT_MAX_KEYS 4u
#define LMZ_JWT_KID_MAX 16u /* kid length including the NUL */
#define LMZ_JWT_PK_LEN 32u
#define LMZ_JWT_SEED_LEN 32u

/* Original's defaults (LUMENIZE_AUTH_ISSUER / _AUDIENCE). */
#define LMZ_JWT_DEFAULT_ISS "https://lumenize.local"
#define LMZ_JWT_DEFAULT_AUD "https://lumenize.local"

enum lmz_jwt_status {
  LMZ_JWT_OK = 0,
  LMZ_JWT_EINVALID,         /* malformed, bad alg, bad signature, no exp */
  LMZ_JWT_EEXPIRED,         /* signature fine, exp passed (same answer) */
  LMZ_JWT_EAUDIENCE,        /* aud missing or different */
  LMZ_JWT_EISSUER,          /* iss missing or different */
  LMZ_JWT_ESUBJECT,         /* sub missing, empty or not a string */
  LMZ_JWT_EDENIED,          /* access gate failed */
  LMZ_JWT_EMISSING_WS,      /* no lmz.access-token.* subprotocol */
  LMZ_JWT_EMISSING_BEARER,  /* no Authorization: Bearer header */
  LMZ_JWT_ERATE,            /* rate limited */
  LMZ_JWT_ENOUPGRADE,       /* gateway path without Upgrade: websocket */
  LMZ_JWT_EINSTANCE_FORMAT, /* instance name has no '.' */
  LMZ_JWT_EIDENTITY,        /* instance name prefix != sub */
  LMZ_JWT_EINTERNAL,        /* out of memory */
};

/* One named key. `sk` is libsodium's 64-byte secret key (seed || pk). */
struct lmz_jwt_key {
  char kid[LMZ_JWT_KID_MAX]; /* "BLUE", "GREEN" */
  uint8_t pk[LMZ_JWT_PK_LEN];
  uint8_t sk[64];
  bool has_sk; /* false: verify only */
};

/* Plain data, caller-owned. Wipe with lmz_jwt_keyset_wipe() when done
 * (secret keys are zeroed with sodium_memzero). */
struct lmz_jwt_keyset {
  struct lmz_jwt_key keys[LMZ_JWT_MAX_KEYS];
  unsigned n;
  unsigned primary; /* index minted with when no kid is given */
};

struct lmz_jwt_expect {
  const char *iss; /* NULL = do not check */
  const char *aud; /* NULL = do not check */
  int64_t now_s;   /* Unix seconds (injected: tests step it) */
  int64_t leeway_s;
};

/* Verified claims. Strings point into the arena (NUL-terminated) or are
 * NULL when the claim is absent / not a string. */
struct lmz_jwt_claims {
  const lmz_json *payload; /* the whole payload object */
  const char *sub, *iss, *aud, *jti;
  size_t sub_len;
  double exp, iat;                               /* iat = 0 when absent */
  bool email_verified, admin_approved, is_admin; /* JS truthiness */
  const lmz_json *act;                           /* delegation claim or NULL */
  const char *kid; /* kid of the key that verified (key set's copy) */
};

/* ---- key sets ------------------------------------------------------------ */

/* Adds a key. `seed` (32 bytes) derives both halves; else `pk` alone gives a
 * verify-only key. Copies everything. Returns 0, LMZ_EINVAL (kid empty or
 * too long, both NULL), LMZ_EEXIST (kid already present), LMZ_ETOOBIG
 * (set full). */
int lmz_jwt_keyset_add(struct lmz_jwt_keyset *ks, const char *kid,
                       const uint8_t *pk, const uint8_t *seed);
/* Index of `kid` or -1. */
int lmz_jwt_keyset_find(const struct lmz_jwt_keyset *ks, const char *kid);
void lmz_jwt_keyset_wipe(struct lmz_jwt_keyset *ks);

/* ---- verify -------------------------------------------------------------- */

/* Verifies `tok` (`len` bytes, need not be NUL-terminated; borrowed). On
 * LMZ_JWT_OK fills *out with claims living in `a` (the caller resets or frees
 * the arena). Any other status leaves *out zeroed. `why` (LMZ_ERRMSG_LEN
 * bytes, may be NULL) gets a one-line reason for logs ("alg is \"HS256\",
 * expected EdDSA"); it never quotes signature or payload bytes. Returns an
 * enum lmz_jwt_status (never a core/err.h code). */
int lmz_jwt_verify(const char *tok, size_t len, const struct lmz_jwt_keyset *ks,
                   const struct lmz_jwt_expect *expect, lmz_arena *a,
                   struct lmz_jwt_claims *out, char *why);

/* The access gate: isAdmin || (emailVerified && adminApproved), with the
 * original's JavaScript truthiness. LMZ_JWT_OK or LMZ_JWT_EDENIED. */
int lmz_jwt_gate(const struct lmz_jwt_claims *c);

/* The gateway's identity check (original's default onBeforeAccept): the
 * instance name is "<sub>.<tabId>"; LMZ_JWT_EINSTANCE_FORMAT when it has no
 * '.', LMZ_JWT_EIDENTITY when the part before the first '.' differs from
 * sub, else LMZ_JWT_OK. */
int lmz_jwt_check_instance(const char *sub, size_t sub_len,
                           const char *instance, size_t instance_len);

/* Token from "Authorization: <value>": the value must be exactly two
 * space-separated parts, the first "bearer" in any case (the original's
 * extractBearerToken). Sets *tok and *tok_len into `value`; returns false if
 * there is none. */
bool lmz_jwt_bearer(const char *value, size_t len, const char **tok,
                    size_t *tok_len);

/* ---- answers ------------------------------------------------------------- */

struct lmz_jwt_answer {
  int http_status;              /* 401, 403, 426, 429, 500 */
  const char *content_type;     /* "application/json" or "text/plain" */
  const char *body;             /* static, NUL-terminated */
  const char *www_authenticate; /* header value or NULL */
};

/* The original's answer for a non-OK status (static strings; any thread).
 * LMZ_JWT_OK gives http_status 0. */
void lmz_jwt_answer(int status, struct lmz_jwt_answer *out);
/* "invalid_token: Token audience mismatch" style name, for logs. */
const char *lmz_jwt_status_name(int status);

/* ---- mint ---------------------------------------------------------------- */

/* Signs `payload_json` (bytes taken as they are; the caller makes it a JSON
 * object) with key `kid` (NULL = the set's primary) and appends the token
 * (no newline) to `out`. Returns 0, LMZ_ENOTFOUND (no such kid / empty set),
 * LMZ_EACCESS (that key has no secret part), LMZ_ETOOBIG (token would exceed
 * LMZ_JWT_MAX_LEN), LMZ_ENOMEM. */
int lmz_jwt_mint(const struct lmz_jwt_keyset *ks, const char *kid,
                 const char *payload_json, size_t len, lmz_buf *out);

struct lmz_jwt_claims_opts {
  const char *iss, *aud; /* NULL = LMZ_JWT_DEFAULT_ISS / _AUD */
  const char *sub;       /* required */
  int64_t now_s;         /* iat; exp = now_s + ttl_s */
  int64_t ttl_s;
  const char *extra_json; /* NULL or a JSON object merged in (may override
                             emailVerified/adminApproved; iss, aud, sub, exp,
                             iat, jti always win, as in createJwtPayload) */
  bool no_default_flags;  /* true: do not add emailVerified/adminApproved */
};

/* Builds a payload: {"emailVerified":true,"adminApproved":true, <extra>,
 * "iss","aud","sub","exp","iat","jti":<random UUID v4>} and appends it to
 * `out`. Returns 0, LMZ_EINVAL (no sub; extra not a JSON object: `why` gets
 * the parse error), LMZ_ENOMEM. */
int lmz_jwt_build_claims(const struct lmz_jwt_claims_opts *o, lmz_buf *out,
                         char *why);

#endif
