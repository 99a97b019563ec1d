/* gateway/keys.h - JWT signing keys: the dev key file and key text formats.
 *
 * DEV KEY FILE: DATA_DIR/jwt-keys.json, mode 0600 (a file readable by group
 * or others is refused, as ssh does), written atomically:
 *   {"version":1,"primary":"BLUE","keys":[
 *     {"kid":"BLUE","seed":"<43 chars base64url, 32 bytes>",
 *      "public":"<43 chars base64url, 32 bytes>"},
 *     {"kid":"GREEN","seed":"...","public":"..."}]}
 * `public` is redundant (derived from the seed) and checked on load, so a
 * corrupted file is noticed. `lmzd --dev` creates it on its first start
 * (lmz_keys_dev_load_or_create); `lmz token mint` only loads it.
 *
 * KEY TEXT (config, environment): a public key is either a PEM
 * "-----BEGIN PUBLIC KEY-----" block (DER SubjectPublicKeyInfo of an Ed25519
 * key, RFC 8410) or 43 characters of base64url for the raw 32 bytes; a
 * private key is a PEM "-----BEGIN PRIVATE KEY-----" block (PKCS#8, RFC 8410)
 * or 43 characters of base64url for the 32-byte seed. Literal "\n" escapes
 * inside PEM text are accepted, as the original's importPublicKey does for
 * environment variables.
 *
 * Every function fills `errmsg` (LMZ_ERRMSG_LEN bytes, may be NULL) with a
 * sentence naming the file and what to do; key bytes are never echoed.
 * Threads: any thread; no state. Requirement: sodium_init() was called. */
#ifndef LMZ_GATEWAY_KEYS_H
#define LMZ_GATEWAY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "gateway/jwt.h"

#define LMZ_KEYS_DEV_FILE "jwt-keys.json"

/* Loads DATA_DIR/jwt-keys.json into `ks` (which must be empty): BLUE and
 * GREEN with their secret parts, primary as in the file. Returns 0,
 * LMZ_ENOTFOUND (no file; errmsg: "no dev keys in DIR: start `lmzd --dev`
 * once to create them"), LMZ_EACCESS (mode too open, not a regular file,
 * unreadable), LMZ_EBADCONFIG (malformed, public key does not match the
 * seed), LMZ_EIO. On error `ks` is left wiped. */
int lmz_keys_dev_load(const char *data_dir, struct lmz_jwt_keyset *ks,
                      char *errmsg);

/* Loads the dev keys, or when there are none generates fresh BLUE and GREEN
 * seeds (primary BLUE), saves them (creating DATA_DIR with mode 0700 if it
 * is missing; never replacing a file that appeared meanwhile: then that one
 * is loaded) and fills `ks`. *created (may be NULL) says whether a file was
 * written. Errors as lmz_keys_dev_load, plus LMZ_EIO when the file cannot be
 * written. */
int lmz_keys_dev_load_or_create(const char *data_dir, struct lmz_jwt_keyset *ks,
                                bool *created, char *errmsg);

/* Key text parsing (formats above). Return 0 or LMZ_EBADCONFIG. */
int lmz_keys_parse_public(const char *text, size_t len,
                          uint8_t pk[LMZ_JWT_PK_LEN], char *errmsg);
int lmz_keys_parse_private(const char *text, size_t len,
                           uint8_t seed[LMZ_JWT_SEED_LEN], char *errmsg);

/* Appends the PEM SubjectPublicKeyInfo of `pk` (with a final newline), the
 * form JWT_PUBLIC_KEY_BLUE/GREEN take in the original. 0 or LMZ_ENOMEM. */
int lmz_keys_public_pem(const uint8_t pk[LMZ_JWT_PK_LEN], lmz_buf *out);

#endif
