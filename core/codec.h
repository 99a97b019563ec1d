/* core/codec.h - the two wire encodings of lmz_value.
 *
 * BINARY (node-to-node, storage, alarms): compact, tagged, versioned, with
 *   back-references for shared and cyclic values. Layout in core/codec_bin.c.
 * SC-JSON (clients): the {"json":...,"meta":{...}} format of the original
 *   @lumenize/structured-clone package, byte-for-byte where the original is
 *   defined; extensions for what it cannot express are documented in
 *   core/codec_scjson.c and listed here:
 *     -0            {"$type":"number-special","value":"-0"}
 *     array hole    {"$type":"hole"} as the element
 *     invalid Date  {"$type":"date","iso":"Invalid Date"}
 *     BigInt64Array / BigUint64Array  subtype as named, data = decimal strings
 *     Float32/Float64Array elements NaN, +-Infinity, -0  the strings "NaN",
 *                   "Infinity", "-Infinity", "-0" (JSON.stringify: null)
 *     view with a byte offset or a shared buffer: the usual "data" (element
 *                   values) plus "byteOffset" and "buffer" (the ArrayBuffer,
 *                   usually a {"$ref":n})
 *
 * Decoders treat input as hostile: every length is checked before use, depth,
 * input size, node count and memory are capped (struct lmz_codec_limits), and
 * every failure is an error code plus a message with the byte offset. */
#ifndef LMZ_CORE_CODEC_H
#define LMZ_CORE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "lmz/value.h"

struct lmz_codec_limits {
  uint32_t max_depth;  /* nesting depth of containers (default 512) */
  size_t max_input;    /* bytes of input accepted (default 64 MiB) */
  size_t max_nodes;    /* values created by one decode (default 4M) */
  size_t max_memory;   /* arena bytes one decode may add (default
                          16 x input + 1 MiB; 64 x input + 1 MiB for the
                          denser binary codec) ; 0 = derive from input */
};

struct lmz_codec_error {
  int code;      /* LMZ_EBADMSG, LMZ_ESYNTAX, LMZ_ETOODEEP, LMZ_ETOOBIG, ... */
  size_t offset; /* byte offset in the input where decoding failed */
  char msg[200]; /* one line, no trailing newline */
};

void lmz_codec_limits_default(struct lmz_codec_limits *l);

/* Binary codec. Encode appends to `out`; returns 0 or an error (ETOODEEP for
 * graphs nested deeper than the default max_depth, ENOMEM). `err` may be NULL.
 * Decode builds the value in `a` and sets *out; `limits` NULL = defaults.
 * On error *out is untouched and whatever was allocated stays in `a`. */
int lmz_bin_encode(const lmz_value *v, lmz_buf *out,
                   struct lmz_codec_error *err);
int lmz_bin_decode(lmz_arena *a, const void *data, size_t len,
                   const struct lmz_codec_limits *limits, lmz_value **out,
                   struct lmz_codec_error *err);

/* SC-JSON codec: text in and out (UTF-8). */
int lmz_scjson_encode(const lmz_value *v, lmz_buf *out,
                      struct lmz_codec_error *err);
int lmz_scjson_decode(lmz_arena *a, const char *text, size_t len,
                      const struct lmz_codec_limits *limits, lmz_value **out,
                      struct lmz_codec_error *err);

struct lmz_json;
/* Decodes an SC-JSON {json, meta} object already parsed into a JSON DOM (as
 * embedded in a gateway frame). Offsets in errors are those of the DOM. */
int lmz_scjson_decode_dom(lmz_arena *a, const struct lmz_json *doc,
                          const struct lmz_codec_limits *limits,
                          lmz_value **out, struct lmz_codec_error *err);

#endif
