/* core/log.h - leveled, namespaced, one-line logs.
 *
 *   static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.actor");
 *   LMZ_LOG_INFO(&log_ns, "activated %s/%s", binding, instance);
 *
 * Output: one line per event on stderr,
 *   2026-11-22T17:22:10.123Z INFO  lmz.actor activated COUNTER_DO/a
 * or, with LMZ_LOG_FORMAT=json, one JSON object per line
 *   {"ts":"...","level":"info","ns":"lmz.actor","msg":"activated ..."}
 *
 * Filtering at run time, like the original's `debug` package:
 *   LMZ_LOG_LEVEL=error|warn|info|debug|trace   base level (default info)
 *   LMZ_DEBUG=lmz.cluster.*,lmz.actor,-lmz.cluster.raft
 *       namespaces matching a pattern log at debug (trace with a ":trace"
 *       suffix, e.g. lmz.gateway:trace; any level name works as a suffix);
 *       '*' matches any run of characters; a leading '-' excludes (back to
 *       the base level). Patterns never lower the base level. Separators:
 *       commas and/or spaces. Later patterns win.
 *   LMZ_LOG_FORMAT=text|json                    (default text)
 * Invalid environment values at first use fall back to the defaults, with
 * one warning line. In text lines, control characters of the message are
 * escaped (\n, \r, \xNN) so one event is always one line.
 * lmz_log_configure() sets the same from code (lmzd's config does this).
 *
 * Cost when filtered out: one integer compare (the namespace caches its
 * resolved level against a global generation counter); the format arguments
 * are not evaluated. Thread-safe: lines are written with one write(2). */
#ifndef LMZ_CORE_LOG_H
#define LMZ_CORE_LOG_H

#include <stdatomic.h>

enum lmz_log_level {
  LMZ_LOG_OFF = 0,
  LMZ_LOG_ERROR = 1,
  LMZ_LOG_WARN = 2,
  LMZ_LOG_INFO = 3,
  LMZ_LOG_DEBUG = 4,
  LMZ_LOG_TRACE = 5,
};

typedef struct lmz_log_ns {
  const char *name;
  _Atomic unsigned gen; /* generation the cached level belongs to */
  _Atomic int level;    /* cached effective level */
} lmz_log_ns;

#define LMZ_LOG_NS(name_) {(name_), 0, 0}

extern _Atomic unsigned lmz__log_gen;
int lmz__log_resolve(lmz_log_ns *ns);
void lmz__log(lmz_log_ns *ns, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline int lmz_log_enabled(lmz_log_ns *ns, int level) {
  int lv = (atomic_load_explicit(&ns->gen, memory_order_relaxed) ==
            atomic_load_explicit(&lmz__log_gen, memory_order_relaxed))
               ? atomic_load_explicit(&ns->level, memory_order_relaxed)
               : lmz__log_resolve(ns);
  return level <= lv;
}

#define LMZ_LOG(ns, level, ...)                                                \
  do {                                                                         \
    if (lmz_log_enabled((ns), (level)))                                        \
      lmz__log((ns), (level), __VA_ARGS__);                                    \
  } while (0)
#define LMZ_LOG_ERROR(ns, ...) LMZ_LOG(ns, LMZ_LOG_ERROR, __VA_ARGS__)
#define LMZ_LOG_WARN(ns, ...) LMZ_LOG(ns, LMZ_LOG_WARN, __VA_ARGS__)
#define LMZ_LOG_INFO(ns, ...) LMZ_LOG(ns, LMZ_LOG_INFO, __VA_ARGS__)
#define LMZ_LOG_DEBUG(ns, ...) LMZ_LOG(ns, LMZ_LOG_DEBUG, __VA_ARGS__)
#define LMZ_LOG_TRACE(ns, ...) LMZ_LOG(ns, LMZ_LOG_TRACE, __VA_ARGS__)

/* (Re)configures filtering. NULL arguments read the environment variables
 * (LMZ_LOG_LEVEL, LMZ_DEBUG, LMZ_LOG_FORMAT); "" means the default. Returns
 * 0, LMZ_EINVAL for an unknown level or format name, or LMZ_ENOMEM (the
 * previous setting stays on error). Bumps the generation so every namespace
 * re-resolves on its next use. Strings are copied. Any thread. */
int lmz_log_configure(const char *level, const char *debug_patterns,
                      const char *format);
/* Redirect output (tests); fd -1 restores stderr. The fd stays the
 * caller's (never closed here). Any thread. */
void lmz_log_set_fd(int fd);
/* Parses "off", "error", "warn" (or "warning"), "info", "debug", "trace",
 * case-insensitively; -1 if unknown or NULL. */
int lmz_log_level_from_name(const char *name);

#endif
