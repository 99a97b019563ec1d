/* server/cli_getopt.c - option parsing shared by the subcommands (cli.h).
 *
 * getopt_long in RETURN_IN_ORDER mode ("-" leading the optstring): every
 * argument that is not an option comes back as code 1, so options may sit
 * before, between or after the positionals whatever POSIXLY_CORRECT says,
 * and argv is never permuted. "--" ends the options; what follows it is
 * positional even when it starts with '-' (a JSON argument -5). The
 * positionals are compacted in place into argv[1..npos]: getopt reads argv
 * only at and after optind, and each positional has used at least one slot
 * before the one it is copied to, so nothing unread is overwritten. */
#include <stdio.h>

#include "server/cli.h"

int cli_getopt(struct cli_getopt *g) {
  if (!g->started) {
    g->started = 1;
    g->npos = 0;
    optind = 0; /* glibc: full re-initialisation */
    opterr = 0; /* errors come back as '?' / ':' for cli_getopt_error */
  }
  for (;;) {
    int c = getopt_long(g->argc, g->argv, "-:h", g->longopts, NULL);
    if (c == 1) {
      g->argv[1 + g->npos++] = optarg;
      continue;
    }
    if (c == -1)
      while (optind < g->argc)
        g->argv[1 + g->npos++] = g->argv[optind++];
    return c;
  }
}

int cli_getopt_error(const char *prog, const char *help, int c, char **argv) {
  const char *arg = optind > 0 ? argv[optind - 1] : "?";
  if (c == ':') {
    fprintf(stderr, "%s: %s needs a value\n", prog, arg);
  } else if (optopt) { /* an unknown short option, e.g. -5 */
    fprintf(stderr, "%s: unknown option '-%c' (see lmz help %s; put -- before "
                    "an argument that starts with '-')\n", prog, optopt, help);
  } else {
    fprintf(stderr, "%s: unknown option '%s' (see lmz help %s; put -- before "
                    "an argument that starts with '-')\n", prog, arg, help);
  }
  return CLI_EXIT_USAGE;
}
