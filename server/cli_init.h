/* server/cli_init.h - the files `lmz init` writes (server/cli_init.c).
 *
 * The table is generated at build time from templates/app/ by
 * cmake/embed_files.cmake (cmake/install.cmake wires it into `lmz`), so the
 * binary needs no template folder at run time. In the bytes, every "@NAME@"
 * stands for the application's name. */
#ifndef LMZ_SERVER_CLI_INIT_H
#define LMZ_SERVER_CLI_INIT_H

#include <stddef.h>

struct cli_init_file {
  const char *path; /* relative, '/'-separated ("src/app.c") */
  const char *data; /* len bytes (not NUL-terminated in general) */
  size_t len;
  unsigned mode; /* 0644, or 0755 for scripts */
};

extern const struct cli_init_file cli_init_files[];
extern const size_t cli_init_n_files;

#endif
