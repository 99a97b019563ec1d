/* lmz - the operator's command-line tool. */
#include <stdio.h>
#include <string.h>

#include "server/version.h"

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--version")) {
    printf("lmz %s\n", lmz_version_string());
    return 0;
  }
  fprintf(stderr, "usage: lmz --version\n");
  return 2;
}
