/* core/json.h - a small, fast JSON DOM (RFC 8259) with an optional JSONC mode
 * (comments and trailing commas) for config files.
 *
 * The DOM lives in an lmz_arena (freed with it). Strings are unescaped into
 * the arena as UTF-8 (lone surrogate escapes become WTF-8). Object members keep
 * their order; duplicate keys are all kept (lmz_json_get returns the last, as
 * JSON.parse would). Every node records the byte offset where it starts.
 *
 * The parser is hostile-input safe: depth and length caps, no recursion
 * deeper than max_depth, exact error offsets.
 *
 * THREADS: no global state; any thread may call any function as long as one
 * arena / buffer is used by one thread at a time. */
#ifndef LMZ_CORE_JSON_H
#define LMZ_CORE_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/codec.h"
#include "lmz/value.h"

typedef enum lmz_json_type {
  LMZ_JSON_NULL = 0,
  LMZ_JSON_FALSE,
  LMZ_JSON_TRUE,
  LMZ_JSON_NUMBER,
  LMZ_JSON_STRING,
  LMZ_JSON_ARRAY,
  LMZ_JSON_OBJECT,
} lmz_json_type;

typedef struct lmz_json lmz_json;
struct lmz_json_member {
  const char *key; /* NUL-terminated */
  size_t klen;
  lmz_json *val;
};
struct lmz_json {
  uint8_t type;
  uint32_t n;    /* array items / object members */
  size_t offset; /* byte offset of the node in the source text */
  union {
    double num;
    struct {
      const char *p; /* NUL-terminated */
      size_t len;
    } str;
    lmz_json **items;
    struct lmz_json_member *members;
  } u;
};

struct lmz_json_opts {
  bool jsonc;         /* allow // and block comments and trailing commas,
                         and skip a leading UTF-8 byte order mark */
  uint32_t max_depth; /* 0 = 512 */
  size_t max_len;     /* 0 = 64 MiB */
};

/* Parses `len` bytes. On success *out is the root and 0 is returned; on
 * failure an error (LMZ_ESYNTAX, LMZ_ETOODEEP, LMZ_ETOOBIG, LMZ_ENOMEM) with
 * err->offset at the offending byte and err->msg saying what was expected.
 * Trailing non-space bytes after the root are an error. `text` is borrowed
 * (the DOM copies what it keeps); `err` may be NULL. Input bytes are taken
 * as they are (invalid UTF-8 is kept); raw control characters in strings are
 * errors. Numbers too large for a double become +-Infinity (as JSON.parse). */
int lmz_json_parse(lmz_arena *a, const char *text, size_t len,
                   const struct lmz_json_opts *opts, lmz_json **out,
                   struct lmz_codec_error *err);

/* Member lookup (last duplicate wins); NULL if absent or not an object. */
lmz_json *lmz_json_get(const lmz_json *obj, const char *key);
/* 1-based line and column of a byte offset (for "file:line:col" messages).
 * Columns count characters (UTF-8 lead bytes), as editors show them. */
void lmz_json_line_col(const char *text, size_t len, size_t offset,
                       int *line, int *col);

/* Writers (append to b; 0 or LMZ_ENOMEM/LMZ_ETOOBIG). */
/* A quoted JSON string escaped exactly like JSON.stringify (WTF-8 surrogates
 * become \udXXX escapes; invalid UTF-8 bytes become U+FFFD). */
int lmz_json_write_string(lmz_buf *b, const char *s, size_t len);
/* A finite number formatted like JavaScript's Number#toString (shortest
 * round-trip digits, "1e+21", "1.5e-7"); -0 prints "0" as JSON.stringify,
 * and NaN / +-Infinity print "null" as JSON.stringify does. */
int lmz_json_write_number(lmz_buf *b, double d);
/* Formats like lmz_json_write_number into out (at least 32 bytes, NUL-
 * terminated); returns the length. NaN and +-Infinity give "NaN",
 * "Infinity", "-Infinity" (Number#toString). */
size_t lmz_json_format_number(double d, char *out);
/* The DOM as plain values (null, booleans, numbers, strings, arrays,
 * objects; keys taken literally, last duplicate wins), allocated in `a`.
 * NULL when nested deeper than max_depth or out of memory. Used where plain
 * JSON (not SC-JSON) arrives: CLI arguments, frames' call chains. */
lmz_value *lmz_json_to_value(lmz_arena *a, const lmz_json *j, uint32_t max_depth);
/* Serializes a DOM back to compact JSON (no recursion: any depth). */
int lmz_json_write(lmz_buf *b, const lmz_json *node);

#endif
