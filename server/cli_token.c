/* lmz token - mint and check JWTs with the dev keys of a data directory.
 *
 *   lmz token mint   [--data DIR] --sub SUB [--ttl S] [--claims JSON]
 *                    [--iss ISS] [--aud AUD] [--kid KID]
 *   lmz token verify [--data DIR] [--iss ISS] [--aud AUD] TOKEN
 *
 * Options may come anywhere, even before the action (cli.h: cli_getopt).
 * mint prints a token signed with DIR's dev key (default ./lmz-data, the key
 * named primary in DIR/jwt-keys.json unless --kid), carrying
 * {"emailVerified":true,"adminApproved":true, <--claims>, iss, aud, sub,
 * exp = now + ttl (default 3600; negative makes an expired token for tests),
 * iat, jti}; iss and aud default to https://lumenize.local (the original's
 * defaults). verify prints the payload of a valid token (signature, exp,
 * iss, aud, sub checked as the gateway does) and says on stderr whether the
 * access gate would pass.
 *
 * Happy path: parse the arguments, load (never create) the dev keys, build
 * the claims, sign, write token + "\n" to stdout in one write.
 *
 * Failure modes (one line on stderr, nothing on stdout):
 *   1. bad arguments (missing --sub, bad --ttl, --claims not a JSON object):
 *      exit 2;
 *   2. no dev keys: "no dev keys in DIR: start `lmzd --dev` once to create
 *      them", exit 2; unreadable / too-open / corrupt key file: exit 2;
 *   3. verify: the token is rejected: its status and reason, exit 2;
 *   4. out of memory or a write error: exit 1. */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "gateway/jwt.h"
#include "gateway/keys.h"
#include "server/cli.h"

#define DEFAULT_DATA "./lmz-data"

struct token_args {
  const char *data, *sub, *claims, *iss, *aud, *kid, *token;
  long long ttl;
};

static void token_usage(FILE *f) {
  fprintf(f,
          "usage: lmz token mint [--data DIR] --sub SUB [--ttl S] "
          "[--claims JSON]\n"
          "                      [--iss ISS] [--aud AUD] [--kid KID]\n"
          "       lmz token verify [--data DIR] [--iss ISS] [--aud AUD] "
          "TOKEN\n\n"
          "  --data DIR     data directory holding jwt-keys.json (default %s;\n"
          "                 `lmzd --dev` creates the keys on its first start)\n"
          "  --sub SUB      subject (required for mint)\n"
          "  --ttl S        lifetime in seconds (default 3600; may be "
          "negative)\n"
          "  --claims JSON  extra claims merged into the payload; "
          "emailVerified and\n"
          "                 adminApproved are true unless it sets them\n"
          "  --iss, --aud   default %s\n"
          "  --kid KID      signing key (default: the file's primary, BLUE)\n",
          DEFAULT_DATA, LMZ_JWT_DEFAULT_ISS);
}

static int parse_ttl(const char *s, long long *out) {
  if (!s || !*s)
    return -1;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < -315360000LL || v > 315360000LL) /* +-10 years */
    return -1;
  *out = v;
  return 0;
}

enum { OPT_DATA = 256, OPT_SUB, OPT_CLAIMS, OPT_ISS, OPT_AUD, OPT_KID, OPT_TTL };
static const struct option token_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"data", required_argument, NULL, OPT_DATA},
    {"sub", required_argument, NULL, OPT_SUB},
    {"claims", required_argument, NULL, OPT_CLAIMS},
    {"iss", required_argument, NULL, OPT_ISS},
    {"aud", required_argument, NULL, OPT_AUD},
    {"kid", required_argument, NULL, OPT_KID},
    {"ttl", required_argument, NULL, OPT_TTL},
    {NULL, 0, NULL, 0}};

/* Parses the whole command line (options anywhere, cli.h): the action is
 * the first positional, verify's TOKEN the second. Returns -1 to go on, or
 * the exit status after printing usage or why. */
static int parse_args(int argc, char **argv, struct token_args *a,
                      const char **action) {
  struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = token_opts};
  int c;
  while ((c = cli_getopt(&g)) != -1) {
    switch (c) {
    case 'h': token_usage(stdout); return CLI_EXIT_OK;
    case OPT_DATA: a->data = optarg; break;
    case OPT_SUB: a->sub = optarg; break;
    case OPT_CLAIMS: a->claims = optarg; break;
    case OPT_ISS: a->iss = optarg; break;
    case OPT_AUD: a->aud = optarg; break;
    case OPT_KID: a->kid = optarg; break;
    case OPT_TTL:
      if (parse_ttl(optarg, &a->ttl)) {
        fprintf(stderr, "lmz token: --ttl wants whole seconds, got '%s'\n",
                optarg);
        return CLI_EXIT_USAGE;
      }
      break;
    default: return cli_getopt_error("lmz token", "token", c, argv);
    }
  }
  if (g.npos < 1) {
    token_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  *action = argv[1];
  a->token = g.npos >= 2 ? argv[2] : NULL;
  if (g.npos > 2) {
    fprintf(stderr, "lmz token %s: unexpected argument '%s'\n", *action,
            argv[3]);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

static int load_keys(const char *prog, const struct token_args *a,
                     struct lmz_jwt_keyset *ks) {
  char why[LMZ_ERRMSG_LEN];
  int rv = lmz_keys_dev_load(a->data ? a->data : DEFAULT_DATA, ks, why);
  if (rv) {
    fprintf(stderr, "%s: %s\n", prog, why);
    return rv == LMZ_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
  }
  return 0;
}

static int token_mint(struct token_args a) {
  const char *prog = "lmz token mint";
  int rv;
  if (a.token) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", prog, a.token);
    return CLI_EXIT_USAGE;
  }
  if (!a.sub || !*a.sub) {
    fprintf(stderr, "%s: --sub SUB is required\n", prog);
    return CLI_EXIT_USAGE;
  }
  struct lmz_jwt_keyset ks;
  if ((rv = load_keys(prog, &a, &ks)))
    return rv;
  if (a.kid && lmz_jwt_keyset_find(&ks, a.kid) < 0) {
    fprintf(stderr, "%s: no key '%s' in the dev keys\n", prog, a.kid);
    lmz_jwt_keyset_wipe(&ks);
    return CLI_EXIT_USAGE;
  }
  struct lmz_jwt_claims_opts o = {.iss = a.iss,
                                  .aud = a.aud,
                                  .sub = a.sub,
                                  .now_s = (int64_t)time(NULL),
                                  .ttl_s = a.ttl,
                                  .extra_json = a.claims};
  char why[LMZ_ERRMSG_LEN];
  lmz_buf payload = LMZ_BUF_INIT, tok = LMZ_BUF_INIT;
  rv = lmz_jwt_build_claims(&o, &payload, why);
  if (rv == LMZ_EINVAL)
    fprintf(stderr, "%s: --%s\n", prog, why);
  if (!rv)
    rv =
        lmz_jwt_mint(&ks, a.kid, (const char *)payload.data, payload.len, &tok);
  if (rv == LMZ_ETOOBIG)
    fprintf(stderr, "%s: the token would exceed %u bytes\n", prog,
            LMZ_JWT_MAX_LEN);
  if (!rv)
    rv = lmz_buf_putc(&tok, '\n');
  if (!rv && cli_write_all(STDOUT_FILENO, tok.data, tok.len) != 0) {
    fprintf(stderr, "%s: write: %s\n", prog, strerror(errno));
    rv = LMZ_EIO;
  }
  lmz_jwt_keyset_wipe(&ks);
  lmz_buf_free(&payload);
  lmz_buf_free(&tok);
  if (rv == LMZ_ENOMEM)
    fprintf(stderr, "%s: out of memory\n", prog);
  return !rv                                     ? CLI_EXIT_OK
         : rv == LMZ_EINVAL || rv == LMZ_ETOOBIG ? CLI_EXIT_USAGE
                                                 : CLI_EXIT_FAIL;
}

static int token_verify(struct token_args a) {
  const char *prog = "lmz token verify";
  int rv;
  if (!a.token) {
    fprintf(stderr, "%s: TOKEN is required\n", prog);
    return CLI_EXIT_USAGE;
  }
  struct lmz_jwt_keyset ks;
  if ((rv = load_keys(prog, &a, &ks)))
    return rv;
  lmz_arena *arena = lmz_arena_new();
  if (!arena) {
    lmz_jwt_keyset_wipe(&ks);
    return CLI_EXIT_FAIL;
  }
  struct lmz_jwt_expect e = {a.iss ? a.iss : LMZ_JWT_DEFAULT_ISS,
                             a.aud ? a.aud : LMZ_JWT_DEFAULT_AUD,
                             (int64_t)time(NULL), 0};
  struct lmz_jwt_claims c;
  char why[LMZ_ERRMSG_LEN] = "";
  int st = lmz_jwt_verify(a.token, strlen(a.token), &ks, &e, arena, &c, why);
  lmz_buf out = LMZ_BUF_INIT;
  if (st) {
    fprintf(stderr, "%s: %s: %s\n", prog, lmz_jwt_status_name(st), why);
    rv = CLI_EXIT_USAGE;
  } else if (lmz_json_write(&out, c.payload) || lmz_buf_putc(&out, '\n') ||
             cli_write_all(STDOUT_FILENO, out.data, out.len)) {
    fprintf(stderr, "%s: out of memory or write error\n", prog);
    rv = CLI_EXIT_FAIL;
  } else {
    fprintf(stderr, "valid (key %s); access gate: %s\n", c.kid,
            lmz_jwt_gate(&c) ? "denied (403 access_denied)" : "passes");
  }
  lmz_buf_free(&out);
  lmz_arena_free(arena);
  lmz_jwt_keyset_wipe(&ks);
  return rv;
}

int cli_token_main(int argc, char **argv) {
  struct token_args a = {.ttl = 3600};
  const char *action = NULL;
  int rv = parse_args(argc, argv, &a, &action);
  if (rv >= 0)
    return rv;
  if (strcmp(action, "mint") && strcmp(action, "verify")) {
    fprintf(stderr, "lmz token: unknown action '%s' (mint, verify)\n", action);
    return CLI_EXIT_USAGE;
  }
  if (sodium_init() < 0) { /* the CLI's process start: once, here */
    fprintf(stderr, "lmz token: libsodium failed to initialise\n");
    return CLI_EXIT_FAIL;
  }
  return !strcmp(action, "mint") ? token_mint(a) : token_verify(a);
}
