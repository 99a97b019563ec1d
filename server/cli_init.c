/* lmz init - a new application skeleton.
 *
 *   lmz init DIR [--name NAME]
 *
 * Writes templates/app/ (embedded: server/cli_init.h) into DIR with every
 * "@NAME@" replaced by NAME (default: DIR's last component): a C module with
 * a durable object and a worker, its unit test, CMakeLists.txt (pkg-config),
 * app.jsonc, web/index.html, a Makefile (make run / make test), a README.
 *
 * Happy path: check the arguments -> write everything into a fresh sibling
 * folder DIR.init-XXXXXX -> rename it to DIR (atomic; DIR may be an empty
 * folder) -> print what to do next.
 * Failure modes (one line on stderr; DIR is left as it was):
 *   1. bad arguments, an invalid NAME ([A-Za-z][A-Za-z0-9_-]*, at most 64
 *      bytes), DIR exists and is not an empty folder: exit 2;
 *   2. a write error (permissions, disk full): the sibling folder is
 *      removed, exit 1. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "server/cli_init.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "server/cli.h"

#define NAME_MAX_LEN 64
#define PLACEHOLDER "@NAME@"

static void usage(FILE *f) {
  fprintf(f, "usage: lmz init DIR [--name NAME]\n"
             "  a new application in DIR (a new or empty folder): src/app.c (a durable\n"
             "  object and a worker), test/test_app.c, CMakeLists.txt, app.jsonc, web/,\n"
             "  Makefile and README.md; then: cd DIR && make test && make run\n"
             "  --name NAME   the module's name (default: DIR's last component);\n"
             "                letters, digits, '_' and '-', starting with a letter\n");
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN || !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
    return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/* Writes f's bytes with the placeholder replaced, creating parent folders. */
static int write_one(const char *root, const struct cli_init_file *f, const char *name) {
  char path[4096];
  if ((size_t)snprintf(path, sizeof path, "%s/%s", root, f->path) >= sizeof path)
    return -ENAMETOOLONG;
  for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    int bad = mkdir(path, 0755) && errno != EEXIST;
    *p = '/';
    if (bad)
      return -errno;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, f->mode);
  if (fd < 0)
    return -errno;
  size_t plen = strlen(PLACEHOLDER), nlen = strlen(name), i = 0, from = 0;
  int rv = 0;
  for (; !rv && i + plen <= f->len; i++) {
    if (memcmp(f->data + i, PLACEHOLDER, plen))
      continue;
    rv = cli_write_all(fd, f->data + from, i - from);
    if (!rv)
      rv = cli_write_all(fd, name, nlen);
    from = i + plen;
    i = from - 1;
  }
  if (!rv)
    rv = cli_write_all(fd, f->data + from, f->len - from);
  if (close(fd) && !rv)
    rv = -errno;
  return rv;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* 0 when `dir` does not exist or is an empty folder (rename(2) may then
 * replace it), LMZ_EEXIST when it is anything else. */
static int target_free(const char *dir) {
  struct stat st;
  if (stat(dir, &st))
    return errno == ENOENT ? 0 : -errno;
  DIR *d = S_ISDIR(st.st_mode) ? opendir(dir) : NULL;
  if (!d)
    return S_ISDIR(st.st_mode) ? -errno : LMZ_EEXIST;
  int rv = 0;
  for (struct dirent *e; !rv && (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      rv = LMZ_EEXIST;
  closedir(d);
  return rv;
}

static int parse_args(int argc, char **argv, const char **dir, const char **name) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return CLI_EXIT_OK;
    } else if (!strcmp(argv[i], "--name") && i + 1 < argc) {
      *name = argv[++i];
    } else if (argv[i][0] == '-' || *dir) {
      fprintf(stderr, "lmz init: unexpected argument '%s' (see lmz help init)\n", argv[i]);
      return CLI_EXIT_USAGE;
    } else {
      *dir = argv[i];
    }
  }
  if (!*dir) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

int cli_init_main(int argc, char **argv) {
  const char *dir = NULL, *name = NULL;
  int rv = parse_args(argc, argv, &dir, &name);
  if (rv >= 0)
    return rv;
  char dircopy[4096], tmp[4200];
  snprintf(dircopy, sizeof dircopy, "%s", dir);
  if (!name)
    name = basename(dircopy);
  if (!valid_name(name)) {
    fprintf(stderr, "lmz init: invalid name '%s': letters, digits, '_' and '-', "
                    "starting with a letter, at most %d bytes (use --name)\n",
            name, NAME_MAX_LEN);
    return CLI_EXIT_USAGE;
  }
  if ((rv = target_free(dir))) {
    fprintf(stderr, "lmz init: %s: %s\n", dir,
            rv == LMZ_EEXIST ? "exists and is not an empty folder" : lmz_strerror(rv));
    return CLI_EXIT_USAGE;
  }
  snprintf(tmp, sizeof tmp, "%s.init-XXXXXX", dir);
  if (!mkdtemp(tmp)) {
    fprintf(stderr, "lmz init: cannot create %s: %s\n", tmp, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  chmod(tmp, 0755);
  for (size_t i = 0; !rv && i < cli_init_n_files; i++)
    if ((rv = write_one(tmp, &cli_init_files[i], name)))
      fprintf(stderr, "lmz init: writing %s: %s\n", cli_init_files[i].path, lmz_strerror(rv));
  if (!rv && rename(tmp, dir)) {
    rv = -errno;
    fprintf(stderr, "lmz init: cannot rename %s to %s: %s\n", tmp, dir, strerror(errno));
  }
  if (rv) {
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return CLI_EXIT_FAIL;
  }
  printf("created %s (application '%s', %zu files)\nnext:\n  cd %s\n  make test\n  make run\n",
         dir, name, cli_init_n_files, dir);
  return CLI_EXIT_OK;
}
