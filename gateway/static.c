/* gateway/static.c - files under the configured static folder (the example
 * page in --dev).
 *
 * Happy path: GET/HEAD /a/b.js -> the folder: the mount (static_mount_dir)
 * when the path starts with its prefix, else static_dir -> the rest of the
 * path is percent-decoded and checked
 * (lmz__gw_safe_path) -> a libuv pool thread resolves it (realpath), checks
 * it is still inside the folder, reads it (a folder serves its index.html)
 * -> 200 with the content type of its extension and Cache-Control: no-cache
 * (HEAD: headers only, by the HTTP layer).
 * Failure modes:
 *  1. not GET/HEAD, no static folder: not ours (the caller answers 404);
 *  2. "..", ".", hidden segments (".git"), NUL, backslashes, bad percent
 *     escapes, an over-long path: 400, nothing touches the disk;
 *  3. missing, unreadable, not a regular file, a symlink leading outside
 *     the folder, larger than MAX_FILE: 404;
 *  4. the connection closes during the read: the answer is dropped;
 *  5. the gateway closes: close waits for reads in flight. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/pct.h"
#include "gateway/gw_int.h"

#define MAX_FILE (32u << 20)
#define MAX_REL 1024

struct static_job {
  uv_work_t work;
  struct gw_pending_http *p;
  char *root; /* borrowed: gw->static_dir or gw->mount_dir (realpath) */
  char rel[MAX_REL + 16];
  char final[PATH_MAX]; /* the file actually read */
  uint8_t *data;
  size_t len;
  int status; /* 200 or 404 */
};

const char *lmz__gw_content_type(const char *name) {
  static const char *const map[][2] = {
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".wasm", "application/wasm"},
  };
  const char *dot = strrchr(name, '.');
  for (size_t i = 0; dot && i < LMZ_ARRAY_SIZE(map); i++)
    if (!strcasecmp(dot, map[i][0]))
      return map[i][1];
  return "application/octet-stream";
}

/* Checks each decoded segment of `dec` and joins them into out. */
static int join_segments(const char *dec, size_t n, char *out, size_t cap) {
  size_t o = 0, i = 0;
  while (i < n) {
    while (i < n && dec[i] == '/')
      i++;
    size_t start = i;
    while (i < n && dec[i] != '/')
      i++;
    size_t sl = i - start;
    if (sl == 0)
      continue;
    if (dec[start] == '.') /* ".", "..", and hidden files */
      return LMZ_EINVAL;
    if (o + sl + 2 > cap)
      return LMZ_EINVAL;
    if (o)
      out[o++] = '/';
    memcpy(out + o, dec + start, sl);
    o += sl;
  }
  out[o] = '\0';
  return 0;
}

int lmz__gw_safe_path(const char *path, size_t len, char *out, size_t cap) {
  char dec[MAX_REL + 1];
  size_t n = 0;
  if (len > MAX_REL)
    return LMZ_EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = path[i];
    if (c == '%') {
      int v = lmz_pct_byte(path + i, len - i);
      if (v < 0)
        return LMZ_EINVAL;
      c = (char)v;
      i += 2;
    }
    if (c == '\0' || c == '\\')
      return LMZ_EINVAL;
    dec[n++] = c;
  }
  return join_segments(dec, n, out, cap);
}

/* ---- the read (pool thread) ---------------------------------------------- */

static bool inside(const char *root, const char *p) {
  size_t rl = strlen(root);
  return !strncmp(p, root, rl) && (p[rl] == '/' || p[rl] == '\0');
}

static int read_file(const char *path, struct static_job *j) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0)
    return -1;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_FILE ||
      !(j->data = malloc((size_t)st.st_size + 1))) {
    close(fd);
    return -1;
  }
  size_t got = 0, want = (size_t)st.st_size;
  while (got < want) {
    ssize_t r = read(fd, j->data + got, want - got);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  close(fd);
  j->len = got;
  return got == want ? 0 : -1;
}

static void work_cb(uv_work_t *w) {
  struct static_job *j = lmz_container_of(w, struct static_job, work);
  char full[PATH_MAX + MAX_REL + 32];
  j->status = 404;
  snprintf(full, sizeof full, "%s/%s", j->root, j->rel);
  if (!realpath(full, j->final) || !inside(j->root, j->final))
    return;
  struct stat st;
  if (!stat(j->final, &st) && S_ISDIR(st.st_mode)) {
    size_t fl = strlen(j->final);
    if (fl + 12 >= sizeof j->final)
      return;
    memcpy(j->final + fl, "/index.html", 12);
    char again[PATH_MAX];
    if (!realpath(j->final, again) || !inside(j->root, again))
      return;
    memcpy(j->final, again, strlen(again) + 1);
  }
  if (read_file(j->final, j) == 0)
    j->status = 200;
}

static void after_cb(uv_work_t *w, int status) {
  struct static_job *j = lmz_container_of(w, struct static_job, work);
  struct gw_pending_http *p = j->p;
  lmz_gateway_t *gw = p->gw;
  if (p->conn && status == 0 && j->status == 200) {
    struct lmz_http_header h = {"Cache-Control", 13, "no-cache", 8};
    lmz__gw_respond(p->conn, 200, lmz__gw_content_type(j->final), j->data,
                    j->len, NULL, &h, 1);
    gw->stats.http_static++;
  } else if (p->conn) {
    lmz__gw_respond(p->conn, 404, "text/plain", "Not Found", 9, NULL, NULL, 0);
    gw->stats.http_404++;
  }
  lmz__gw_pending_done(p);
  free(j->data);
  free(j);
  lmz__gw_wait_done(gw);
}

/* The folder a path is served from: the mount when the path is its prefix
 * followed by '/' (*skip = the prefix length), else static_dir (or NULL). */
static char *root_of(const lmz_gateway_t *gw,
                     const struct lmz_http_request *req, size_t *skip) {
  size_t pl = gw->mount_prefix ? strlen(gw->mount_prefix) : 0;
  *skip = 0;
  if (pl && req->path_len > pl && req->path[pl] == '/' &&
      !memcmp(req->path, gw->mount_prefix, pl)) {
    *skip = pl;
    return gw->mount_dir;
  }
  return gw->static_dir;
}

bool lmz__gw_static(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                    const struct lmz_http_request *req) {
  size_t skip;
  char *root = root_of(gw, req, &skip);
  if (!root || (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")))
    return false;
  struct static_job *j = calloc(1, sizeof *j);
  if (!j)
    return false;
  if (lmz__gw_safe_path(req->path + skip, req->path_len - skip, j->rel, MAX_REL + 1)) {
    free(j);
    lmz__gw_respond(conn, 400, "text/plain", "Bad Request", 11, NULL, NULL, 0);
    return true;
  }
  j->root = root;
  if (!(j->p = lmz__gw_pending_new(gw, conn)) ||
      uv_queue_work(gw->loop, &j->work, work_cb, after_cb)) {
    if (j->p)
      lmz__gw_pending_done(j->p);
    free(j);
    return false;
  }
  gw->n_waits++;
  return true;
}
