/* proto/frame.h - length-prefixed protobuf-c frames (pure, no I/O).
 *
 * Wire layout of one frame (DESIGN.md section 5):
 *
 *   0               4                         4 + len
 *   +---------------+-------------------------+
 *   | len (u32, BE) | packed Lmz__Frame (len) |
 *   +---------------+-------------------------+
 *
 * `len` never exceeds the receiver's cap (LMZ_FRAME_MAX_DEFAULT unless
 * configured); the splitter checks it as soon as the 4 header bytes are known,
 * BEFORE buffering any of the body, so a hostile length costs no memory.
 * A zero length is legal (an empty Frame, which unpacks to body_case NOT_SET).
 *
 * The splitter is generic over "u32 BE length + body" chunks; the secure
 * record layer (cluster/secure.c) reuses it for records with its own cap.
 *
 * Threading: none of these functions share state; a splitter is used by one
 * thread at a time. */
#ifndef LMZ_PROTO_FRAME_H
#define LMZ_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "proto/lmz.pb-c.h"

#define LMZ_FRAME_HDR_LEN 4u
/* The node-port frame body cap: the largest client message a gateway may be
 * configured to take (gateway.max_message_bytes <= 64 MiB, gateway/gateway.h)
 * plus 1 MiB for the envelope (call context, chain steps), so any call a
 * gateway accepted can be forwarded to its owner in one frame. The binary
 * codec's own input cap (core/codec.h) is the same 64 MiB. Bounded: the
 * splitter refuses a longer header before buffering anything. */
#define LMZ_FRAME_MAX_DEFAULT ((64u + 1u) * 1024u * 1024u)

/* Appends [u32 BE len][packed f] to `b`, packing straight into the buffer.
 * `max` caps the packed length (0 = LMZ_FRAME_MAX_DEFAULT).
 * Returns the number of bytes appended (> 0), LMZ_ETOOBIG (frame over `max`
 * or the buffer's own max; `b` unchanged), LMZ_ENOMEM (`b` unchanged).
 * `f` is borrowed for the call only. */
long lmz_frame_append(lmz_buf *b, const Lmz__Frame *f, size_t max);

/* Bytes lmz_frame_append would add (header included). */
size_t lmz_frame_encoded_len(const Lmz__Frame *f);

/* Writes the 4-byte big-endian header / reads it. */
static inline void lmz_frame_put_len(uint8_t *p, uint32_t n) {
  p[0] = (uint8_t)(n >> 24);
  p[1] = (uint8_t)(n >> 16);
  p[2] = (uint8_t)(n >> 8);
  p[3] = (uint8_t)n;
}
static inline uint32_t lmz_frame_get_len(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* Incremental splitter: bytes in (any chunking), complete bodies out.
 * Invariant: `buf` holds either < 4 header bytes, or a header whose length
 * passed the cap plus part of that body (its capacity reserved exactly). */
typedef struct lmz_frame_splitter {
  lmz_buf buf;   /* partial header/body carried across calls */
  uint32_t max;  /* body cap (bytes); checked before buffering */
  uint32_t need; /* body length of the frame being buffered (valid if
                    buf.len >= 4) */
} lmz_frame_splitter;

/* `max` = body cap (0 = LMZ_FRAME_MAX_DEFAULT). Never fails. */
void lmz_frame_splitter_init(lmz_frame_splitter *s, uint32_t max);
/* Releases the carried buffer; the splitter may be re-initialized. */
void lmz_frame_splitter_free(lmz_frame_splitter *s);
/* Bytes currently carried (partial frame). */
static inline size_t lmz_frame_splitter_buffered(const lmz_frame_splitter *s) {
  return s->buf.len;
}

/* Consumes input from (*p, *n), advancing both. Returns:
 *    1  a complete body is available: (*body, *body_len). It points into the
 *       caller's input (zero copy, when nothing was carried) or into the
 *       splitter's buffer; valid until the next call on this splitter or
 *       until the input is released, whichever comes first.
 *    0  all input consumed, no complete body yet (a partial one is carried).
 *   LMZ_ETOOBIG  a header announced more than `max`; nothing of the body was
 *       buffered. The stream is unusable afterwards (close the connection).
 *   LMZ_ENOMEM   could not buffer a partial frame.
 * Call in a loop until it returns <= 0. */
int lmz_frame_split(lmz_frame_splitter *s, const uint8_t **p, size_t *n,
                    const uint8_t **body, size_t *body_len);

/* Unpacks one body (already capped by the splitter). On success *out is a
 * malloc'd message to free with lmz_frame_free(). Returns 0 or LMZ_EBADMSG
 * (malformed protobuf; protobuf-c also fails on allocation failure, which is
 * reported the same way). A frame from a newer peer whose body is unknown to
 * us unpacks fine with body_case == LMZ__FRAME__BODY__NOT_SET: callers skip it.
 * Strings/bytes in *out point into its own allocation, not into `p`. */
int lmz_frame_unpack(const uint8_t *p, size_t len, Lmz__Frame **out);
void lmz_frame_free(Lmz__Frame *f);

#endif
