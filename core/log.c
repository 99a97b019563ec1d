/* core/log.c - leveled, namespaced, one-line logs (contract in core/log.h).
 *
 * Happy path: LMZ_LOG_*(&ns, ...) checks ns's cached level against the
 * global generation inline. On a miss (first use, or after a reconfigure
 * bumped the generation) lmz__log_resolve() matches ns->name against the
 * patterns under a mutex and caches the result in ns. An enabled event is
 * formatted into one heap buffer (timestamp, level, namespace, message) and
 * written with a single write(2), so lines of concurrent threads never
 * interleave (pipes: up to PIPE_BUF bytes; files opened O_APPEND: always).
 *
 * The first resolve reads the environment (LMZ_LOG_LEVEL, LMZ_DEBUG,
 * LMZ_LOG_FORMAT) unless lmz_log_configure() ran before.
 *
 * Failure modes:
 *   1. invalid level or format given to lmz_log_configure: LMZ_EINVAL, the
 *      previous configuration stays.
 *   2. invalid values in the environment at first use: the default (info,
 *      text) is used instead and one warning line says so.
 *   3. out of memory while formatting: the line is dropped (logging must not
 *      fail its caller); while configuring: LMZ_ENOMEM, nothing changes.
 *   4. write(2) fails (closed pipe, full disk): the line is lost; EINTR and
 *      short writes are retried. */
#include "core/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"

/* Starts at 1 so that namespaces (gen 0) resolve on first use. */
_Atomic unsigned lmz__log_gen = 1;

struct pattern {
  const char *glob; /* into config.storage; not NUL-terminated */
  size_t len;
  bool exclude;
  int level; /* level granted on a match (debug, or from a ":level" suffix) */
};

struct config {
  int base;
  bool json;
  struct pattern *pats;
  size_t n_pats;
  char *storage; /* copy of the pattern string */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct config cur = {LMZ_LOG_INFO, false, NULL, 0, NULL}; /* mu */
static bool configured;                                          /* mu */
static _Atomic int out_fd = -1;
static _Atomic bool out_json;

#define TS_LEN                                                                 \
  96 /* room for any int fields, to keep -Wformat-truncation quiet */

static const char *const level_names[] = {"off",  "error", "warn",
                                          "info", "debug", "trace"};

int lmz_log_level_from_name(const char *name) {
  if (!name)
    return -1;
  for (int i = 0; i < (int)LMZ_ARRAY_SIZE(level_names); i++)
    if (strcasecmp(name, level_names[i]) == 0)
      return i;
  if (strcasecmp(name, "warning") == 0)
    return LMZ_LOG_WARN;
  return -1;
}

/* ---- patterns ------------------------------------------------------------ */

/* Glob match where '*' matches any run of characters (dots included).
 * Iterative with one backtrack point: O(len(glob) * len(name)) worst case. */
static bool glob_match(const char *g, size_t glen, const char *s) {
  size_t gi = 0, si = 0, star = (size_t)-1, star_s = 0;
  while (s[si]) {
    if (gi < glen && g[gi] == '*') {
      star = gi++;
      star_s = si;
    } else if (gi < glen && g[gi] == s[si]) {
      gi++;
      si++;
    } else if (star != (size_t)-1) {
      gi = star + 1; /* let the last '*' swallow one more character */
      si = ++star_s;
    } else {
      return false;
    }
  }
  while (gi < glen && g[gi] == '*')
    gi++;
  return gi == glen;
}

/* Splits "a.*,-b, c:trace" (commas and/or spaces) into c->pats. */
static int parse_patterns(const char *spec, struct config *c) {
  size_t n = 1;
  for (const char *p = spec; *p; p++)
    n += *p == ',' || *p == ' ';
  c->storage = strdup(spec);
  c->pats = calloc(n, sizeof *c->pats);
  if (!c->storage || !c->pats)
    return LMZ_ENOMEM;
  for (char *p = c->storage; *p;) {
    size_t len = strcspn(p, ", \t\n");
    struct pattern pat = {p, len, false, LMZ_LOG_DEBUG};
    char *next = p + len + (p[len] != 0);
    p[len] = 0;
    if (pat.len && *pat.glob == '-') {
      pat.exclude = true;
      pat.glob++;
      pat.len--;
    }
    char *colon = memchr(pat.glob, ':', pat.len);
    int lv = colon ? lmz_log_level_from_name(colon + 1) : -1;
    if (lv >= 0) {
      pat.level = lv;
      pat.len = (size_t)(colon - pat.glob);
    }
    if (pat.len)
      c->pats[c->n_pats++] = pat;
    p = next;
  }
  return 0;
}

/* Effective level of a namespace: the base level, raised by matching
 * patterns and reset to it by matching exclusions; later patterns win. */
static int level_for(const struct config *c, const char *name) {
  int lv = c->base;
  for (size_t i = 0; i < c->n_pats; i++) {
    const struct pattern *p = &c->pats[i];
    if (!glob_match(p->glob, p->len, name))
      continue;
    lv = p->exclude ? c->base : (p->level > c->base ? p->level : c->base);
  }
  return lv;
}

static void config_free(struct config *c) {
  free(c->pats);
  free(c->storage);
  c->pats = NULL;
  c->storage = NULL;
  c->n_pats = 0;
}

/* ---- configuration ------------------------------------------------------- */

/* Builds a configuration; NULL arguments come from the environment. With
 * `lenient`, invalid values fall back to the defaults and *bad names the
 * first one; otherwise they are LMZ_EINVAL. */
static int build_config(const char *level, const char *patterns,
                        const char *format, bool lenient, struct config *c,
                        const char **bad) {
  level = level ? level : getenv("LMZ_LOG_LEVEL");
  patterns = patterns ? patterns : getenv("LMZ_DEBUG");
  format = format ? format : getenv("LMZ_LOG_FORMAT");
  memset(c, 0, sizeof *c);
  c->base = LMZ_LOG_INFO;
  if (level && *level) {
    int lv = lmz_log_level_from_name(level);
    if (lv < 0 && !lenient)
      return LMZ_EINVAL;
    if (lv < 0)
      *bad = "LMZ_LOG_LEVEL";
    else
      c->base = lv;
  }
  if (format && *format) {
    bool json = strcasecmp(format, "json") == 0;
    if (!json && strcasecmp(format, "text") != 0) {
      if (!lenient)
        return LMZ_EINVAL;
      *bad = "LMZ_LOG_FORMAT";
    }
    c->json = json;
  }
  if (patterns && *patterns) {
    int rv = parse_patterns(patterns, c);
    if (rv) {
      config_free(c);
      return rv;
    }
  }
  return 0;
}

/* Installs c (mu held) and invalidates every cached namespace level. */
static void install_locked(struct config *c) {
  struct config old = cur;
  cur = *c;
  *c = old; /* the caller frees the previous one outside the lock */
  configured = true;
  atomic_store_explicit(&out_json, cur.json, memory_order_relaxed);
  atomic_fetch_add_explicit(&lmz__log_gen, 1, memory_order_release);
}

int lmz_log_configure(const char *level, const char *debug_patterns,
                      const char *format) {
  struct config c;
  const char *bad = NULL;
  int rv = build_config(level, debug_patterns, format, false, &c, &bad);
  if (rv)
    return rv;
  pthread_mutex_lock(&mu);
  install_locked(&c);
  pthread_mutex_unlock(&mu);
  config_free(&c);
  return 0;
}

/* First use without lmz_log_configure(): take the environment. */
static void configure_from_env(void) {
  struct config c;
  const char *bad = NULL;
  if (build_config(NULL, NULL, NULL, true, &c, &bad))
    return; /* out of memory: the defaults stay */
  pthread_mutex_lock(&mu);
  if (!configured)
    install_locked(&c);
  else
    bad = NULL; /* somebody configured meanwhile; theirs wins */
  pthread_mutex_unlock(&mu);
  config_free(&c);
  if (bad) {
    static lmz_log_ns ns = LMZ_LOG_NS("lmz.log");
    LMZ_LOG_WARN(&ns, "ignoring invalid %s=%s (using the default)", bad,
                 getenv(bad));
  }
}

int lmz__log_resolve(lmz_log_ns *ns) {
  pthread_mutex_lock(&mu);
  bool need_env = !configured;
  pthread_mutex_unlock(&mu);
  if (need_env)
    configure_from_env();
  pthread_mutex_lock(&mu);
  unsigned gen = atomic_load_explicit(&lmz__log_gen, memory_order_acquire);
  int lv = level_for(&cur, ns->name);
  /* level before gen: a reader that sees the new gen sees this level */
  atomic_store_explicit(&ns->level, lv, memory_order_relaxed);
  atomic_store_explicit(&ns->gen, gen, memory_order_release);
  pthread_mutex_unlock(&mu);
  return lv;
}

void lmz_log_set_fd(int fd) {
  atomic_store_explicit(&out_fd, fd, memory_order_relaxed);
}

/* ---- output -------------------------------------------------------------- */

/* "2026-11-22T17:22:10.123Z" (24 bytes) into ts[TS_LEN]. */
static void timestamp(char *ts) {
  struct timespec now;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, &tm);
  snprintf(ts, TS_LEN, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(now.tv_nsec / 1000000));
}

/* Appends msg for a text line: a line break or control character inside a
 * message would forge or break lines, so they are escaped (\n, \r, \xNN). */
static int append_text_msg(lmz_buf *b, const char *msg, size_t len) {
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)msg[i];
    if ((c >= 0x20 && c != 0x7f) || c == '\t')
      continue;
    int rv = lmz_buf_append(b, msg + run, i - run);
    if (!rv)
      rv = c == '\n'   ? lmz_buf_append(b, "\\n", 2)
           : c == '\r' ? lmz_buf_append(b, "\\r", 2)
                       : lmz_buf_printf(b, "\\x%02x", c);
    if (rv)
      return rv;
    run = i + 1;
  }
  return lmz_buf_append(b, msg + run, len - run);
}

static int format_line(lmz_buf *b, const char *ns, int level, const char *msg,
                       size_t len) {
  char ts[TS_LEN];
  timestamp(ts);
  const char *lname = level > 0 && level < (int)LMZ_ARRAY_SIZE(level_names)
                          ? level_names[level]
                          : "?";
  int rv;
  if (atomic_load_explicit(&out_json, memory_order_relaxed)) {
    if ((rv = lmz_buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"ns\":", ts,
                             lname)) ||
        (rv = lmz_json_write_string(b, ns, strlen(ns))) ||
        (rv = lmz_buf_append(b, ",\"msg\":", 7)) ||
        (rv = lmz_json_write_string(b, msg, len)))
      return rv;
    return lmz_buf_append(b, "}\n", 2);
  }
  char up[8];
  size_t i = 0;
  for (; lname[i] && i < sizeof up - 1; i++)
    up[i] =
        (char)(lname[i] >= 'a' && lname[i] <= 'z' ? lname[i] - 32 : lname[i]);
  up[i] = 0;
  if ((rv = lmz_buf_printf(b, "%s %-5s %s ", ts, up, ns)) ||
      (rv = append_text_msg(b, msg, len)))
    return rv;
  return lmz_buf_putc(b, '\n');
}

static void write_all(const uint8_t *p, size_t len) {
  int fd = atomic_load_explicit(&out_fd, memory_order_relaxed);
  if (fd < 0)
    fd = STDERR_FILENO;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; /* nowhere to report a failing log sink */
    p += n;
    len -= (size_t)n;
  }
}

void lmz__log(lmz_log_ns *ns, int level, const char *fmt, ...) {
  int saved_errno = errno; /* callers often log errno-based messages next */
  char small[512], *msg = small;
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof small) {
    msg = malloc((size_t)n + 1);
    if (msg)
      vsnprintf(msg, (size_t)n + 1, fmt, ap2);
  }
  va_end(ap2);
  if (n < 0 || !msg) {
    errno = saved_errno;
    return;
  }
  lmz_buf b = LMZ_BUF_INIT;
  if (format_line(&b, ns->name, level, msg, (size_t)n) == 0)
    write_all(b.data, b.len);
  lmz_buf_free(&b);
  if (msg != small)
    free(msg);
  errno = saved_errno;
}
