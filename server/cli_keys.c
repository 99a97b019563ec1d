/* lmz keys generate - fresh Ed25519 signing keys for the auth service, in
 * the key text formats of gateway/keys.h, as a JSONC fragment to paste into
 * every node's config:
 *
 *   lmz keys generate [--kid KID]... [--primary KID] [--pem]
 *
 * Default: BLUE and GREEN, primary BLUE. Each private key is 43 base64url
 * characters (the 32-byte seed) or, with --pem, a PKCS#8 PEM block written
 * with "\n" escapes (RFC 8410; what `openssl genpkey -algorithm ed25519`
 * prints); comments list the public keys (43 base64url characters and PEM
 * SubjectPublicKeyInfo) for verifiers elsewhere. One --kid generates only
 * that key: the rotation step (README "Rotating keys").
 *
 * Happy path: parse, generate each seed with randombytes_buf, derive the
 * public key, format everything into one buffer, write it in one write,
 * wipe the buffer. Failure modes: bad arguments (an empty or long kid, more
 * than 4 keys, --primary naming no generated key): one line on stderr,
 * exit 2, nothing on stdout; a write error: exit 1. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"
#include "server/cli.h"

static void keys_usage(FILE *f) {
  fprintf(f,
          "usage: lmz keys generate [--kid KID]... [--primary KID] [--pem]\n\n"
          "  Prints new Ed25519 signing keys as the \"auth\" settings of a node\n"
          "  config (the same on every node):\n"
          "  --kid KID       generate this key (repeatable; default BLUE and GREEN)\n"
          "  --primary KID   the key new tokens are signed with (default: the first)\n"
          "  --pem           private keys as PKCS#8 PEM instead of 43 base64url chars\n"
          "  Rotation without logging anyone out: README, \"Rotating keys\".\n");
}

/* PKCS#8 PrivateKeyInfo of an Ed25519 seed (RFC 8410 section 7). */
static const uint8_t PKCS8_PREFIX[] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
                                       0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};

static void private_text(const uint8_t seed[32], int pem, lmz_buf *out) {
  if (!pem) {
    char b[64];
    sodium_bin2base64(b, sizeof b, seed, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    lmz_buf_append_str(out, b);
    sodium_memzero(b, sizeof b);
    return;
  }
  uint8_t der[sizeof PKCS8_PREFIX + 32];
  memcpy(der, PKCS8_PREFIX, sizeof PKCS8_PREFIX);
  memcpy(der + sizeof PKCS8_PREFIX, seed, 32);
  char b[sodium_base64_ENCODED_LEN(sizeof der, sodium_base64_VARIANT_ORIGINAL)];
  sodium_bin2base64(b, sizeof b, der, sizeof der, sodium_base64_VARIANT_ORIGINAL);
  lmz_buf_printf(out, "-----BEGIN PRIVATE KEY-----\\n%s\\n-----END PRIVATE KEY-----\\n", b);
  sodium_memzero(der, sizeof der);
  sodium_memzero(b, sizeof b);
}

static void one_key(const char *kid, int pem, int last, lmz_buf *out, lmz_buf *pub) {
  uint8_t seed[32], pk[32], sk[64];
  randombytes_buf(seed, sizeof seed);
  crypto_sign_seed_keypair(pk, sk, seed);
  lmz_buf_printf(out, "      \"%s\": \"", kid);
  private_text(seed, pem, out);
  lmz_buf_printf(out, "\"%s\n", last ? "" : ",");
  char b[64];
  sodium_bin2base64(b, sizeof b, pk, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  lmz_buf_printf(pub, "// public %s: %s\n", kid, b);
  lmz_buf pem_pub = LMZ_BUF_INIT;
  lmz_keys_public_pem(pk, &pem_pub);
  for (size_t i = 0, s = 0; i < pem_pub.len; i++)
    if (pem_pub.data[i] == '\n') {
      lmz_buf_printf(pub, "//   %.*s\n", (int)(i - s), (const char *)pem_pub.data + s);
      s = i + 1;
    }
  lmz_buf_free(&pem_pub);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(sk, sizeof sk);
}

static int check_kids(const char **kids, size_t n, const char *primary) {
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(kids[i]);
    if (l == 0 || l >= LMZ_JWT_KID_MAX || strspn(kids[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                          "abcdefghijklmnopqrstuvwxyz0123456789_-") != l) {
      fprintf(stderr, "lmz keys generate: --kid '%s' must be 1..15 letters, digits, _ or -\n", kids[i]);
      return CLI_EXIT_USAGE;
    }
    for (size_t j = 0; j < i; j++)
      if (!strcmp(kids[i], kids[j])) {
        fprintf(stderr, "lmz keys generate: --kid %s given twice\n", kids[i]);
        return CLI_EXIT_USAGE;
      }
  }
  for (size_t i = 0; primary && i < n; i++)
    if (!strcmp(kids[i], primary))
      return 0;
  if (primary) {
    fprintf(stderr, "lmz keys generate: --primary %s is not one of the keys generated\n", primary);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

enum { OPT_KID = 256, OPT_PRIMARY, OPT_PEM };
static const struct option keys_opts[] = {{"help", no_argument, NULL, 'h'},
                                          {"kid", required_argument, NULL, OPT_KID},
                                          {"primary", required_argument, NULL, OPT_PRIMARY},
                                          {"pem", no_argument, NULL, OPT_PEM},
                                          {NULL, 0, NULL, 0}};

static int emit(const char **kids, size_t n, const char *primary, int pem) {
  lmz_buf out = LMZ_BUF_INIT, pub = LMZ_BUF_INIT;
  lmz_buf_printf(&out, "// lmz keys generate: the same on every node; keep it secret\n"
                       "  \"auth\": {\n    \"primary\": \"%s\",\n    \"private_keys\": {\n",
                 primary ? primary : kids[0]);
  for (size_t i = 0; i < n; i++)
    one_key(kids[i], pem, i + 1 == n, &out, &pub);
  lmz_buf_append_str(&out, "    }\n  }\n");
  lmz_buf_append(&out, pub.data, pub.len);
  lmz_buf_free(&pub);
  int rv = out.data && fwrite(out.data, 1, out.len, stdout) == out.len && !fflush(stdout)
               ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  if (rv)
    fprintf(stderr, "lmz keys generate: cannot write the keys\n");
  if (out.data)
    sodium_memzero(out.data, out.len);
  lmz_buf_free(&out);
  return rv;
}

int cli_keys_main(int argc, char **argv) {
  const char *kids[LMZ_JWT_MAX_KEYS + 1], *primary = NULL;
  size_t n = 0;
  int pem = 0, c;
  struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = keys_opts};
  while ((c = cli_getopt(&g)) != -1) {
    switch (c) {
    case 'h': keys_usage(stdout); return CLI_EXIT_OK;
    case OPT_KID:
      if (n == LMZ_JWT_MAX_KEYS) {
        fprintf(stderr, "lmz keys generate: at most %u keys\n", LMZ_JWT_MAX_KEYS);
        return CLI_EXIT_USAGE;
      }
      kids[n++] = optarg;
      break;
    case OPT_PRIMARY: primary = optarg; break;
    case OPT_PEM: pem = 1; break;
    default: return cli_getopt_error("lmz keys", "keys", c, argv);
    }
  }
  if (g.npos != 1 || strcmp(argv[1], "generate")) {
    keys_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (sodium_init() < 0)
    return CLI_EXIT_FAIL;
  if (n == 0) {
    kids[n++] = "BLUE";
    kids[n++] = "GREEN";
  }
  int rv = check_kids(kids, n, primary);
  return rv ? rv : emit(kids, n, primary, pem);
}
