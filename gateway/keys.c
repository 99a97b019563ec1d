/* gateway/keys.c - the dev JWT key file and key text formats (keys.h).
 *
 * Happy path (load): read DATA_DIR/jwt-keys.json with lmz_secretfile_read
 * (core/secretfile.h: regular, no group/other bits, <= 16 KiB), parse it with
 * core/json.h, decode each seed, derive the key pair and compare it with the
 * stored public key, wipe the text.
 * Create: two random seeds -> JSON text -> temp file (mkstemp, 0600) ->
 * fsync -> link() to the final name (refuses to replace: a concurrent
 * creator wins and its file is loaded) -> fsync the directory.
 *
 * Failure modes:
 *  1. no file: LMZ_ENOTFOUND with the "start `lmzd --dev` once" hint;
 *  2. permissions too open / not a regular file: LMZ_EACCESS with the chmod;
 *  3. malformed JSON, wrong version, missing/invalid key, public key that
 *     does not match its seed, duplicate kid: LMZ_EBADCONFIG;
 *  4. I/O errors: LMZ_EIO. A crash while creating leaves no file or a stray
 *     temp file, never a half-written key file. */
#include "gateway/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/file.h"
#include "core/json.h"
#include "core/secretfile.h"

#define KEYFILE_MAX (16u * 1024u)
#define B64URL sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* DER prefixes of RFC 8410 Ed25519 keys; the 32 key bytes follow. */
static const uint8_t SPKI_PREFIX[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                        0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
static const uint8_t PKCS8_PREFIX[16] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30,
                                         0x05, 0x06, 0x03, 0x2b, 0x65, 0x70,
                                         0x04, 0x22, 0x04, 0x20};

/* ---- key text ------------------------------------------------------------ */

/* Decodes the base64 body of a PEM block labelled `label` into der. Returns
 * the DER length or -1. Accepts literal "\n" escapes. */
static long pem_decode(const char *text, size_t len, const char *label,
                       uint8_t *der, size_t cap) {
  char begin[48], end[48];
  snprintf(begin, sizeof begin, "-----BEGIN %s-----", label);
  snprintf(end, sizeof end, "-----END %s-----", label);
  if (len > 4096)
    return -1;
  char buf[4097];
  size_t n = 0;
  for (size_t i = 0; i < len; i++) { /* "\n" escapes become spaces */
    if (text[i] == '\\' && i + 1 < len && text[i + 1] == 'n') {
      buf[n++] = ' ';
      i++;
    } else {
      buf[n++] = text[i];
    }
  }
  buf[n] = '\0';
  char *b = strstr(buf, begin), *e = b ? strstr(b, end) : NULL;
  if (!b || !e)
    return -1;
  b += strlen(begin);
  size_t got = 0;
  const char *stop = NULL;
  int rv = sodium_base642bin(der, cap, b, (size_t)(e - b), " \t\r\n", &got,
                             &stop, sodium_base64_VARIANT_ORIGINAL);
  sodium_memzero(buf, sizeof buf);
  if (rv != 0 || stop != e)
    return -1;
  return (long)got;
}

static int b64url_exact(const char *text, size_t len, uint8_t *out, size_t n) {
  size_t got = 0;
  const char *end = NULL;
  return len == 43 &&
                 sodium_base642bin(out, n, text, len, NULL, &got, &end,
                                   B64URL) == 0 &&
                 got == n && end == text + len
             ? 0
             : -1;
}

static void trim(const char **t, size_t *len) {
  while (*len && (**t == ' ' || **t == '\n' || **t == '\r' || **t == '\t'))
    (*t)++, (*len)--;
  while (*len && ((*t)[*len - 1] == ' ' || (*t)[*len - 1] == '\n' ||
                  (*t)[*len - 1] == '\r' || (*t)[*len - 1] == '\t'))
    (*len)--;
}

/* Shared shape of both parsers: PEM with a DER prefix, or raw base64url. */
static int parse_key(const char *text, size_t len, const char *label,
                     const uint8_t *prefix, size_t plen, uint8_t out[32],
                     char *errmsg) {
  trim(&text, &len);
  if (len > 0 && text[0] != '-') {
    if (b64url_exact(text, len, out, 32) == 0)
      return 0;
    lmz__errmsg_printf(
        errmsg, "expected a PEM %s or 43 characters of base64url", label);
    return LMZ_EBADCONFIG;
  }
  uint8_t der[128];
  long n = pem_decode(text, len, label, der, sizeof der);
  int ok = n == (long)(plen + 32) && memcmp(der, prefix, plen) == 0;
  if (ok)
    memcpy(out, der + plen, 32);
  sodium_memzero(der, sizeof der);
  if (ok)
    return 0;
  lmz__errmsg_printf(errmsg, "not a PEM %s holding an Ed25519 key", label);
  return LMZ_EBADCONFIG;
}

int lmz_keys_parse_public(const char *text, size_t len, uint8_t pk[32],
                          char *errmsg) {
  return parse_key(text, len, "PUBLIC KEY", SPKI_PREFIX, sizeof SPKI_PREFIX, pk,
                   errmsg);
}

int lmz_keys_parse_private(const char *text, size_t len, uint8_t seed[32],
                           char *errmsg) {
  return parse_key(text, len, "PRIVATE KEY", PKCS8_PREFIX, sizeof PKCS8_PREFIX,
                   seed, errmsg);
}

int lmz_keys_public_pem(const uint8_t pk[32], lmz_buf *out) {
  uint8_t der[sizeof SPKI_PREFIX + 32];
  memcpy(der, SPKI_PREFIX, sizeof SPKI_PREFIX);
  memcpy(der + sizeof SPKI_PREFIX, pk, 32);
  char b64[sodium_base64_ENCODED_LEN(sizeof der,
                                     sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b64, sizeof b64, der, sizeof der,
                    sodium_base64_VARIANT_ORIGINAL);
  return lmz_buf_printf(out,
                        "-----BEGIN PUBLIC KEY-----\n%s\n"
                        "-----END PUBLIC KEY-----\n",
                        b64);
}

/* ---- the dev key file: load ---------------------------------------------- */

static int key_path(const char *dir, char *path, size_t n, char *errmsg) {
  if (snprintf(path, n, "%s/%s", dir, LMZ_KEYS_DEV_FILE) >= (int)n) {
    lmz__errmsg_printf(errmsg, "data directory path too long");
    return LMZ_EINVAL;
  }
  return 0;
}

/* Reads the whole file after checking what was opened. */
static int read_keyfile(const char *dir, const char *path, char *text,
                        size_t *len, char *errmsg) {
  char why[LMZ_ERRMSG_LEN];
  int rv = lmz_secretfile_read(path, NULL, "the JWT signing keys", text,
                               KEYFILE_MAX, len, why);
  if (rv == LMZ_ENOTFOUND)
    lmz__errmsg_printf(errmsg, "no dev keys in %s: start `lmzd --dev` once to create them",
        dir);
  else if (rv)
    lmz__errmsg_printf(errmsg, "%s", why);
  return rv;
}

/* One {"kid","seed","public"} entry into the key set. */
static int load_entry(const lmz_json *e, struct lmz_jwt_keyset *ks,
                      const char *path, char *errmsg) {
  const lmz_json *kid = lmz_json_get(e, "kid"), *seed = lmz_json_get(e, "seed"),
                 *pub = lmz_json_get(e, "public");
  uint8_t s[32], pk[32];
  if (!kid || kid->type != LMZ_JSON_STRING || !seed ||
      seed->type != LMZ_JSON_STRING || !pub || pub->type != LMZ_JSON_STRING ||
      b64url_exact(seed->u.str.p, seed->u.str.len, s, 32) ||
      b64url_exact(pub->u.str.p, pub->u.str.len, pk, 32)) {
    lmz__errmsg_printf(
        errmsg, "%s: each key needs kid, seed and public (32 bytes base64url)",
        path);
    return LMZ_EBADCONFIG;
  }
  int rv = lmz_jwt_keyset_add(ks, kid->u.str.p, NULL, s);
  sodium_memzero(s, sizeof s);
  if (rv) {
    lmz__errmsg_printf(errmsg, "%s: bad or duplicate kid \"%.15s\"", path,
                       kid->u.str.p);
    return LMZ_EBADCONFIG;
  }
  if (sodium_memcmp(ks->keys[ks->n - 1].pk, pk, 32) != 0) {
    lmz__errmsg_printf(
        errmsg, "%s: public key of %s does not match its seed (corrupt file?)",
        path, kid->u.str.p);
    return LMZ_EBADCONFIG;
  }
  return 0;
}

static int parse_keyfile(const char *text, size_t len, const char *path,
                         struct lmz_jwt_keyset *ks, char *errmsg) {
  lmz_arena *a = lmz_arena_new();
  if (!a)
    return LMZ_ENOMEM;
  lmz_json *root = NULL;
  struct lmz_codec_error err;
  int rv = lmz_json_parse(a, text, len, NULL, &root, &err);
  const lmz_json *ver = root ? lmz_json_get(root, "version") : NULL;
  const lmz_json *keys = root ? lmz_json_get(root, "keys") : NULL;
  if (rv) {
    lmz__errmsg_printf(errmsg, "%s: byte %zu: %s", path, err.offset, err.msg);
    rv = rv == LMZ_ENOMEM ? LMZ_ENOMEM : LMZ_EBADCONFIG;
  } else if (!ver || ver->type != LMZ_JSON_NUMBER || ver->u.num != 1 || !keys ||
             keys->type != LMZ_JSON_ARRAY || keys->n == 0) {
    lmz__errmsg_printf(errmsg, "%s: expected {\"version\":1,\"keys\":[...]}",
                       path);
    rv = LMZ_EBADCONFIG;
  }
  for (uint32_t i = 0; rv == 0 && i < keys->n; i++)
    rv = load_entry(keys->u.items[i], ks, path, errmsg);
  const lmz_json *prim = rv ? NULL : lmz_json_get(root, "primary");
  if (prim) {
    int k = prim->type == LMZ_JSON_STRING
                ? lmz_jwt_keyset_find(ks, prim->u.str.p)
                : -1;
    if (k < 0) {
      lmz__errmsg_printf(errmsg, "%s: primary names no key of the file", path);
      rv = LMZ_EBADCONFIG;
    } else {
      ks->primary = (unsigned)k;
    }
  }
  lmz_arena_free(a); /* the arena held seeds as text: wipe-free is enough */
  return rv;
}

int lmz_keys_dev_load(const char *data_dir, struct lmz_jwt_keyset *ks,
                      char *errmsg) {
  char path[4096];
  int rv = key_path(data_dir, path, sizeof path, errmsg);
  if (rv)
    return rv;
  char *text = malloc(KEYFILE_MAX + 1);
  if (!text)
    return LMZ_ENOMEM;
  size_t len = 0;
  memset(ks, 0, sizeof *ks);
  rv = read_keyfile(data_dir, path, text, &len, errmsg);
  if (!rv)
    rv = parse_keyfile(text, len, path, ks, errmsg);
  sodium_memzero(text, KEYFILE_MAX + 1);
  free(text);
  if (rv)
    lmz_jwt_keyset_wipe(ks);
  return rv;
}

/* ---- the dev key file: create -------------------------------------------- */


static int format_keyfile(lmz_buf *b, const char *const kids[2],
                          uint8_t seeds[2][32]) {
  int rv =
      lmz_buf_append_str(b, "{\"version\":1,\"primary\":\"BLUE\",\"keys\":[");
  for (int i = 0; i < 2 && !rv; i++) {
    uint8_t pk[32], sk[64];
    crypto_sign_seed_keypair(pk, sk, seeds[i]);
    sodium_memzero(sk, sizeof sk);
    char s64[44], p64[44];
    sodium_bin2base64(s64, sizeof s64, seeds[i], 32, B64URL);
    sodium_bin2base64(p64, sizeof p64, pk, 32, B64URL);
    rv = lmz_buf_printf(
        b, "%s\n {\"kid\":\"%s\",\"seed\":\"%s\",\"public\":\"%s\"}",
        i ? "," : "", kids[i], s64, p64);
    sodium_memzero(s64, sizeof s64);
  }
  return rv ? rv : lmz_buf_append_str(b, "]}\n");
}

/* Writes a fresh key file; LMZ_EEXIST if one appeared meanwhile. */
static int create_keyfile(const char *dir, const char *path, char *errmsg) {
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
    lmz__errmsg_printf(errmsg, "cannot create data directory %s: %s", dir,
                       strerror(errno));
    return LMZ_EIO;
  }
  static const char *const kids[2] = {"BLUE", "GREEN"};
  uint8_t seeds[2][32];
  randombytes_buf(seeds, sizeof seeds);
  lmz_buf b = LMZ_BUF_INIT;
  int rv = format_keyfile(&b, kids, seeds);
  sodium_memzero(seeds, sizeof seeds);
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  int fd = rv ? -1 : mkstemp(tmp); /* mode 0600 */
  if (fd < 0 && !rv) {
    lmz__errmsg_printf(errmsg, "cannot create a file in %s: %s", dir,
                       strerror(errno));
    rv = LMZ_EIO;
  }
  if (!rv) {
    int bad = fchmod(fd, 0600) || lmz_write_all(fd, b.data, b.len) || fsync(fd);
    int e = errno;
    close(fd);
    int l = bad ? -1 : link(tmp, path); /* never replaces an existing file */
    e = bad ? e : errno;
    unlink(tmp);
    if (bad || l != 0) {
      rv = (!bad && e == EEXIST) ? LMZ_EEXIST : LMZ_EIO;
      if (rv == LMZ_EIO)
        lmz__errmsg_printf(errmsg, "cannot write %s: %s", path, strerror(e));
    }
  }
  if (b.data)
    sodium_memzero(b.data, b.cap);
  lmz_buf_free(&b);
  int dfd = rv ? -1 : open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) { /* make the new name durable */
    (void)fsync(dfd);
    close(dfd);
  }
  return rv;
}

int lmz_keys_dev_load_or_create(const char *data_dir, struct lmz_jwt_keyset *ks,
                                bool *created, char *errmsg) {
  if (created)
    *created = false;
  int rv = lmz_keys_dev_load(data_dir, ks, errmsg);
  if (rv != LMZ_ENOTFOUND)
    return rv;
  char path[4096];
  if ((rv = key_path(data_dir, path, sizeof path, errmsg)))
    return rv;
  rv = create_keyfile(data_dir, path, errmsg);
  if (rv && rv != LMZ_EEXIST)
    return rv;
  if (created)
    *created = rv == 0;
  return lmz_keys_dev_load(data_dir, ks, errmsg);
}
