/* lmz - the operator's command-line tool.
 *
 * Happy path: main() looks argv[1] up in the subcommand table and hands the
 * rest of argv to that subcommand's cli_<name>_main() (contract in
 * server/cli.h); its return value is the exit status.
 *
 * Failure modes:
 *   1. No subcommand: usage on stderr, exit 2.
 *   2. Unknown subcommand (or `lmz help <unknown>`): one line naming it on
 *      stderr, exit 2.
 *   3. Anything inside a subcommand: the subcommand prints its one line and
 *      picks the status (0/1/2).
 * The shared helpers below (size parsing, read-all with a cap, write-all) live
 * here so every subcommand bounds its input the same way. */
#include "server/cli.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/keyfile.h"
#include "cluster/rpc_client.h"
#include "core/err.h"
#include "core/file.h"
#include "server/version.h"

struct cli_cmd {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help; /* one line, shown by `lmz --help` */
};

/* Later subcommands (call, status, token, ...) add one row each. */
static const struct cli_cmd cli_cmds[] = {
    {"codec", cli_codec_main,
     "convert values between SC-JSON and the lmz binary encoding"},
    {"call", cli_call_main, "call a method of any actor on a node"},
    {"status", cli_status_main, "cluster status: nodes, leader, term, leases"},
    {"locate", cli_locate_main, "which node owns an actor, at which epoch"},
    {"node", cli_node_main, "cluster membership and moves: node drain|add|remove"},
    {"sql", cli_sql_main, "run one SQL statement as a turn of a durable object"},
    {"token", cli_token_main, "mint (or verify) a dev access token for clients"},
    {"keys", cli_keys_main, "generate signing keys for the auth service"},
    {"init", cli_init_main, "a new application: lmz init DIR [--name NAME]"},
};

static const struct cli_cmd *cmd_find(const char *name) {
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cli_cmds); i++)
    if (!strcmp(cli_cmds[i].name, name))
      return &cli_cmds[i];
  return NULL;
}

static void usage(FILE *f) {
  fprintf(f, "usage: lmz <command> [args...]\n"
             "       lmz help <command>\n"
             "       lmz --version\n\ncommands:\n");
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cli_cmds); i++)
    fprintf(f, "  %-10s %s\n", cli_cmds[i].name, cli_cmds[i].help);
}

/* `lmz help [command]`: the command's own --help. */
static int help_main(int argc, char **argv) {
  if (argc < 2) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  const struct cli_cmd *c = cmd_find(argv[1]);
  if (!c) {
    fprintf(stderr, "lmz help: unknown command '%s' (see lmz --help)\n",
            argv[1]);
    return CLI_EXIT_USAGE;
  }
  char *sub_argv[] = {argv[1], "--help", NULL};
  return c->fn(2, sub_argv);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (!strcmp(name, "--version") || !strcmp(name, "version")) {
    printf("lmz %s\n", lmz_version_string());
    return CLI_EXIT_OK;
  }
  if (!strcmp(name, "--help") || !strcmp(name, "-h")) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (!strcmp(name, "help"))
    return help_main(argc - 1, argv + 1);
  const struct cli_cmd *c = cmd_find(name);
  if (!c) {
    fprintf(stderr, "lmz: unknown command '%s' (see lmz --help)\n", name);
    return CLI_EXIT_USAGE;
  }
  return c->fn(argc - 1, argv + 1);
}

/* ---- shared helpers ------------------------------------------------------ */

int cli_parse_size(const char *s, size_t *out) {
  if (!s || *s < '0' || *s > '9')
    return -1; /* rejects "", "-1", " 1" (strtoull would accept them) */
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno)
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  default: break;
  }
  if (*end || v > (SIZE_MAX >> shift))
    return -1;
  *out = (size_t)(v << shift);
  return 0;
}

int cli_read_all(int fd, size_t max, char **data, size_t *len) {
  if (max > SIZE_MAX / 4)
    max = SIZE_MAX / 4; /* keeps cap * 2 and max + 1 from overflowing */
  size_t cap = 64 * 1024, n = 0;
  char *p = malloc(cap + 1);
  if (!p)
    return LMZ_ENOMEM;
  for (;;) {
    if (n == cap) { /* grow geometrically; never past max + 1 bytes */
      if (n > max)
        break;
      size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
      char *np = realloc(p, ncap + 1);
      if (!np) {
        free(p);
        return LMZ_ENOMEM;
      }
      p = np;
      cap = ncap;
    }
    ssize_t r = read(fd, p + n, cap - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      int e = -errno;
      free(p);
      return e;
    }
    if (r == 0)
      break;
    n += (size_t)r;
  }
  if (n > max) { /* one byte past the cap is enough to know */
    free(p);
    return LMZ_ETOOBIG;
  }
  p[n] = '\0';
  *data = p;
  *len = n;
  return 0;
}

int cli_load_cluster_key(const char *cmd, const char *key_file,
                         const char *data_dir, uint8_t key[32]) {
  char path[4096], err[LMZ_ERRMSG_LEN];
  if (key_file)
    snprintf(path, sizeof path, "%s", key_file);
  else
    snprintf(path, sizeof path, "%s/cluster.key", data_dir);
  if (lmz_keyfile_load(path, key, err)) {
    fprintf(stderr, "lmz %s: no cluster key: %s (use --data DIR of the node "
                    "or --key-file FILE)\n", cmd, err);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

Lmz__Frame *cli_await_result(lmz_rpc_client *rc, const char *cmd,
                             int timeout_ms) {
  for (;;) {
    Lmz__Frame *f = NULL;
    if (lmz_rpc_recv(rc, &f, timeout_ms)) {
      fprintf(stderr, "lmz %s: no answer: %s\n", cmd, lmz_rpc_errmsg(rc));
      return NULL;
    }
    if (f->body_case == LMZ__FRAME__BODY_RESULT && f->result->call_id == 1)
      return f;
    lmz__frame__free_unpacked(f, NULL);
  }
}

int cli_write_all(int fd, const void *data, size_t len) {
  return lmz_write_all(fd, data, len);
}
