/* server/cli.h - subcommands of the `lmz` operator CLI.
 *
 * server/cli.c holds main() and a table {name, function, one-line help}. A
 * subcommand is one file server/cli_<name>.c defining cli_<name>_main() plus
 * one row in that table; nothing else needs registering (server/CMakeLists.txt
 * globs cli*.c into the lmz executable).
 *
 * CONTRACT for a subcommand function:
 *   argv[0] is the subcommand's name ("codec"), argv[1..argc-1] its arguments.
 *   `lmz help <name>` calls it as {name, "--help"}: print usage to stdout and
 *   return 0.
 *   Return the process exit status: 0 success, 1 internal failure (out of
 *   memory, write error), 2 usage error or bad input. On failure print ONE
 *   line to stderr, prefixed "lmz <name>[ <action>]: ", saying what and where.
 *   Never leave partial output on stdout on failure: buffer, write at the end.
 * Thread: main thread only; subcommands may use process-global state (stdio,
 * signals) because the CLI runs one subcommand per process. */
#ifndef LMZ_SERVER_CLI_H
#define LMZ_SERVER_CLI_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses shared by all subcommands. */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAIL = 1,  /* internal: out of memory, write error, bug */
  CLI_EXIT_USAGE = 2, /* bad arguments or bad input */
};

/* `lmz codec encode|decode|roundtrip|check`: server/cli_codec.c. */
int cli_codec_main(int argc, char **argv);
/* `lmz call BINDING INSTANCE METHOD [ARG...]`: server/cli_call.c. */
int cli_call_main(int argc, char **argv);
/* `lmz status` and `lmz locate`: server/cli_status.c. */
int cli_status_main(int argc, char **argv);
int cli_locate_main(int argc, char **argv);
/* `lmz node drain ID`: server/cli_status.c. */
int cli_node_main(int argc, char **argv);
/* `lmz sql [--write] BINDING INSTANCE 'SQL' [ARG...]`: server/cli_sql.c. */
int cli_sql_main(int argc, char **argv);
/* `lmz token mint|verify`: server/cli_token.c. */
int cli_token_main(int argc, char **argv);
/* `lmz keys generate`: server/cli_keys.c. */
int cli_keys_main(int argc, char **argv);
/* `lmz init DIR [--name NAME]`: server/cli_init.c. */
int cli_init_main(int argc, char **argv);

/* ---- helpers shared by subcommands (server/cli.c) ------------------------ */

/* Parses a non-negative decimal integer with an optional k/m/g suffix
 * (binary multiples: 64m = 64 MiB). Returns 0 and sets *out, or -1 when `s`
 * is not such a number or overflows. */
int cli_parse_size(const char *s, size_t *out);

/* Reads all of `fd` into a malloc'd buffer (*data, free with free(); a NUL
 * byte follows the data, not counted in *len). Returns 0, LMZ_ETOOBIG when
 * more than `max` bytes arrive (stops reading there), LMZ_ENOMEM, or a
 * negative errno-style code from read(). */
int cli_read_all(int fd, size_t max, char **data, size_t *len);

/* Loads the cluster key from `key_file`, or DATA_DIR/cluster.key when it is
 * NULL. On failure prints "lmz <cmd>: no cluster key: <why> (...)" and
 * returns CLI_EXIT_USAGE; 0 on success. */
int cli_load_cluster_key(const char *cmd, const char *key_file,
                         const char *data_dir, uint8_t key[32]);

/* Waits on `rc` for the Result frame of call 1 (the one call lmz sends),
 * skipping any other frame. Returns it (free it with
 * lmz__frame__free_unpacked), or NULL after printing "lmz <cmd>: no answer:
 * <why>" (the caller exits CLI_EXIT_USAGE). */
struct lmz_rpc_client;
struct Lmz__Frame;
struct Lmz__Frame *cli_await_result(struct lmz_rpc_client *rc, const char *cmd,
                                    int timeout_ms);

/* Writes all `len` bytes to `fd`, retrying short writes and EINTR.
 * Returns 0 or a negative errno-style code. */
int cli_write_all(int fd, const void *data, size_t len);

/* ---- options (server/cli_getopt.c) --------------------------------------- */

/* Every subcommand parses its options the same way: GNU long options
 * ("--node X" or "--node=X"; -h / --help), anywhere on the command line;
 * "--" ends them, so a positional may start with '-' (lmz call X a add --
 * -5). Usage:
 *   struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = opts};
 *   while ((c = cli_getopt(&g)) != -1) switch (c) { ... 'h', your codes,
 *     default: return cli_getopt_error("lmz call", "call", c, argv); }
 *   then the positionals are argv[1..g.npos], in order (compacted in place:
 *   argv is modified; argv[0], the subcommand's name, stays).
 * Not re-entrant (getopt's globals); main thread only. */
struct cli_getopt {
  int argc;
  char **argv;
  const struct option *longopts; /* zero-terminated; values >= 256 or 'h' */
  int npos;                      /* out: number of positionals */
  int started;                   /* private */
};
/* Next option code (optarg holds its value), '?' (unknown option), ':'
 * (missing value), or -1 at the end, when g->npos is set. */
int cli_getopt(struct cli_getopt *g);
/* Prints one line for a '?' or ':' from cli_getopt ("<prog>: unknown
 * option '--frob' (see lmz help <help>; ...)", "<prog>: --node needs a
 * value") and returns CLI_EXIT_USAGE. */
int cli_getopt_error(const char *prog, const char *help, int c, char **argv);

#endif
