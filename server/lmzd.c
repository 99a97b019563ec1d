/* lmzd - the lmz node daemon. */
#include <stdio.h>
#include <string.h>

#include "server/version.h"

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--version")) {
      printf("lmzd %s\n", lmz_version_string());
      return 0;
    }
  }
  fprintf(stderr, "lmzd %s: the node runtime is not built yet; "
                  "try `lmzd --version` or `lmz codec --help`\n",
          lmz_version_string());
  return 2;
}
