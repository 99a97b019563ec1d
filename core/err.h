/* core/err.h - lmz error codes.
 *
 * Convention (libuv): negative = error, 0 = ok, positive = a count.
 * System-level errors reuse libuv's codes so libuv results pass straight
 * through; lmz's own codes live in a reserved range below LMZ__ERR_BASE.
 * One table (LMZ_ERR_MAP) gives every code its name and message. */
#ifndef LMZ_CORE_ERR_H
#define LMZ_CORE_ERR_H

#include <stddef.h>
#include <uv.h>

#define LMZ_ERRMSG_LEN 256
#define LMZ__ERR_BASE (-9000) /* well clear of errno and libuv's ranges */

#define LMZ_ERR_MAP(X)                                                         \
  X(NOTFOUND, 1, "not found")                                                  \
  X(NOTLEADER, 2, "this node is not the directory leader")                     \
  X(STALE, 3, "placement epoch is stale; retry with a newer one")              \
  X(BADMSG, 4, "malformed wire message")                                       \
  X(AUTH, 5, "authentication failed")                                          \
  X(CANCELED, 6, "operation canceled (handle closing)")                        \
  X(TOODEEP, 7, "nesting too deep")                                            \
  X(TOOBIG, 8, "input exceeds a size limit")                                   \
  X(BADVERSION, 9, "unsupported format version")                               \
  X(SYNTAX, 10, "syntax error")                                                \
  X(BADCONFIG, 11, "invalid configuration")                                    \
  X(THROWN, 12, "handler raised an error value")                               \
  X(ACCESS, 13, "access denied")                                               \
  X(UNAVAILABLE, 14, "actor unavailable; retry later")                         \
  X(MOVED, 15, "actor moved to another node")                                  \
  X(STORAGE, 16, "storage error")                                              \
  X(OVERLOAD, 17, "queue full; retry later")                                   \
  X(TIMEOUT, 18, "operation timed out")                                        \
  X(CLOSED, 19, "connection closed")                                           \
  X(UNSUPPORTED, 20, "unsupported value for this encoding")

enum lmz_err {
  LMZ_OK = 0,
  LMZ_ENOMEM = UV_ENOMEM,
  LMZ_EINVAL = UV_EINVAL,
  LMZ_EIO = UV_EIO,
  LMZ_EBUSY = UV_EBUSY,
  LMZ_EEXIST = UV_EEXIST,
#define LMZ__ERR_ENUM(name, n, msg) LMZ_E##name = LMZ__ERR_BASE - (n),
  LMZ_ERR_MAP(LMZ__ERR_ENUM)
#undef LMZ__ERR_ENUM
};

/* Message for `err`: lmz's own table first, else uv_strerror(). Never NULL;
 * the string is static. Thread-safe. */
const char *lmz_strerror(int err);
/* Symbolic name ("LMZ_ENOTLEADER", "ENOENT"), for logs and metrics. Static. */
const char *lmz_err_name(int err);

/* Writes a formatted message into buf (LMZ_ERRMSG_LEN bytes), truncating.
 * buf may be NULL (the caller did not ask for a message): then nothing
 * happens, so functions with an optional `char *errmsg` need no check. */
void lmz__errmsg_printf(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes the message already in buf with a formatted context:
 * "open /x: <old message>". Truncates safely; buf may be NULL. */
void lmz__errmsg_wrapf(char *buf, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Always-on assertion for cheap invariants whose failure means memory is
 * already corrupt. Never use it on input from the network, a file or a user. */
#define LMZ_ASSERT(x)                                                          \
  do {                                                                         \
    if (!(x))                                                                  \
      lmz__assert_fail(#x, __FILE__, __LINE__);                                \
  } while (0)
#ifdef NDEBUG
#define LMZ_DASSERT(x) ((void)0)
#else
#define LMZ_DASSERT(x) LMZ_ASSERT(x)
#endif
_Noreturn void lmz__assert_fail(const char *expr, const char *file, int line);

#define LMZ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define lmz_container_of(ptr, type, member)                                    \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
