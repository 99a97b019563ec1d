#define _GNU_SOURCE
#include "lib/testlib.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *tl_mkdtemp(const char *prefix) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp)
    tmp = "/tmp";
  char *path = NULL;
  if (asprintf(&path, "%s/%s.XXXXXX", tmp, prefix) < 0)
    return NULL;
  if (!mkdtemp(path)) {
    free(path);
    return NULL;
  }
  return path;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

void tl_rmtree(const char *path) {
  if (path)
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

uint64_t tl_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

unsigned tl_time_scale(void) {
  const char *v = getenv("LMZ_TEST_TIME_SCALE");
  char *end = NULL;
  unsigned long n = v ? strtoul(v, &end, 10) : 0;
  return (v && *end == '\0' && n >= 1 && n <= 100) ? (unsigned)n : 1u;
}

char *tl_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  size_t r;
  while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) {
      char *nb = realloc(buf, cap * 2 + 1);
      if (!nb) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (!buf)
    return NULL;
  buf[n] = '\0';
  if (len)
    *len = n;
  return buf;
}

char *tl_bin_path(const char *name) {
  const char *dir = getenv("LMZ_BIN_DIR");
  char *p = NULL;
  if (asprintf(&p, "%s/%s", dir ? dir : "build/bin", name) < 0)
    return NULL;
  return p;
}
