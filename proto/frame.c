/* proto/frame.c - length-prefixed protobuf-c frames.
 *
 * Happy path: lmz_frame_append() sizes the message, reserves header + body in
 * the output buffer and packs straight into it (no temporary). On the read
 * side lmz_frame_split() hands out bodies that lie wholly inside the caller's
 * input without copying; only a frame cut by a read boundary is carried.
 *
 * Failure modes:
 *  1. A header announcing more than the cap: LMZ_ETOOBIG at once, before any
 *     body byte is buffered (a 4 GiB length costs nothing).
 *  2. Allocation failure while carrying a partial frame: LMZ_ENOMEM; the
 *     splitter stays consistent (unconsumed input is left in p and n).
 *  3. Malformed protobuf: lmz_frame_unpack() returns LMZ_EBADMSG.
 *  4. A huge frame that was carried leaves a big buffer behind: it is released
 *     on the next call so an idle connection does not pin 16 MiB. */
#include "proto/frame.h"

#include <stdbool.h>
#include <stdlib.h>

#include "core/err.h"

/* Carried buffers above this are released once empty (failure mode 4). */
#define SPLIT_KEEP_CAP (256u * 1024u)

size_t lmz_frame_encoded_len(const Lmz__Frame *f) {
  return LMZ_FRAME_HDR_LEN + lmz__frame__get_packed_size(f);
}

long lmz_frame_append(lmz_buf *b, const Lmz__Frame *f, size_t max) {
  if (max == 0)
    max = LMZ_FRAME_MAX_DEFAULT;
  size_t n = lmz__frame__get_packed_size(f);
  if (n > max || n > UINT32_MAX)
    return LMZ_ETOOBIG;
  int rv = lmz_buf_reserve(b, LMZ_FRAME_HDR_LEN + n);
  if (rv)
    return rv;
  uint8_t *dst = b->data + b->len;
  lmz_frame_put_len(dst, (uint32_t)n);
  size_t packed = lmz__frame__pack(f, dst + LMZ_FRAME_HDR_LEN);
  LMZ_ASSERT(packed == n); /* get_packed_size and pack disagree: a bug */
  b->len += LMZ_FRAME_HDR_LEN + n;
  return (long)(LMZ_FRAME_HDR_LEN + n);
}

void lmz_frame_splitter_init(lmz_frame_splitter *s, uint32_t max) {
  lmz_buf_init(&s->buf);
  s->max = max ? max : LMZ_FRAME_MAX_DEFAULT;
  s->need = 0;
}

void lmz_frame_splitter_free(lmz_frame_splitter *s) {
  lmz_buf_free(&s->buf);
  s->need = 0;
}

static inline void take(const uint8_t **p, size_t *n, size_t k) {
  *p += k;
  *n -= k;
}

/* Carries header bytes until 4 are known, then checks the cap and reserves
 * room for exactly this frame. Returns 1 when the header is complete, 0 when
 * input ran out, or an error. */
static int carry_header(lmz_frame_splitter *s, const uint8_t **p, size_t *n) {
  size_t k = LMZ_FRAME_HDR_LEN - s->buf.len;
  if (k > *n)
    k = *n;
  int rv = lmz_buf_append(&s->buf, *p, k);
  if (rv)
    return rv;
  take(p, n, k);
  if (s->buf.len < LMZ_FRAME_HDR_LEN)
    return 0;
  uint32_t len = lmz_frame_get_len(s->buf.data);
  if (len > s->max)
    return LMZ_ETOOBIG; /* checked before a single body byte is buffered */
  rv = lmz_buf_reserve(&s->buf, len);
  if (rv)
    return rv;
  s->need = len;
  return 1;
}

int lmz_frame_split(lmz_frame_splitter *s, const uint8_t **p, size_t *n,
                    const uint8_t **body, size_t *body_len) {
  if (s->buf.len == 0) {
    if (s->buf.cap > SPLIT_KEEP_CAP)
      lmz_buf_free(&s->buf); /* the last carried frame was huge */
    if (*n == 0)
      return 0;
    if (*n >= LMZ_FRAME_HDR_LEN) {
      uint32_t len = lmz_frame_get_len(*p);
      if (len > s->max)
        return LMZ_ETOOBIG;
      if (*n - LMZ_FRAME_HDR_LEN >= len) { /* whole frame in input: no copy */
        *body = *p + LMZ_FRAME_HDR_LEN;
        *body_len = len;
        take(p, n, LMZ_FRAME_HDR_LEN + len);
        return 1;
      }
    }
  }
  if (s->buf.len < LMZ_FRAME_HDR_LEN) {
    int rv = carry_header(s, p, n);
    if (rv <= 0)
      return rv;
  }
  size_t have = s->buf.len - LMZ_FRAME_HDR_LEN;
  size_t k = s->need - have;
  if (k > *n)
    k = *n;
  int rv = lmz_buf_append(&s->buf, *p, k); /* capacity already reserved */
  if (rv)
    return rv;
  take(p, n, k);
  if (s->buf.len - LMZ_FRAME_HDR_LEN < s->need)
    return 0;
  *body = s->buf.data + LMZ_FRAME_HDR_LEN;
  *body_len = s->need;
  s->buf.len = 0; /* data stays readable until the next call */
  s->need = 0;
  return 1;
}

/* The field of message `m` described by `fd`, if set: its submessages. */
static size_t submessages(const ProtobufCMessage *m,
                          const ProtobufCFieldDescriptor *fd,
                          ProtobufCMessage *const **out) {
  const char *base = (const char *)m;
  if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t which = *(const uint32_t *)(const void *)(base + fd->quantifier_offset);
    if (which != fd->id)
      return 0;
  }
  if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
    *out = *(ProtobufCMessage *const *const *)(const void *)(base + fd->offset);
    return *(const size_t *)(const void *)(base + fd->quantifier_offset);
  }
  *out = (ProtobufCMessage *const *)(const void *)(base + fd->offset);
  return **out ? 1 : 0;
}

/* protobuf-c keeps an unknown field numbered 0 when its tag is written in
 * two bytes (80 00), but refuses the one-byte form it packs it back to: such
 * a frame would unpack here and fail on the next hop. Field 0 does not exist
 * (protobuf encoding: field numbers start at 1), so refuse it at any depth.
 * `depth` bounds the walk like the nesting protobuf-c itself accepts. */
static bool has_field_zero(const ProtobufCMessage *m, int depth) {
  if (depth > 64)
    return true;
  for (unsigned i = 0; i < m->n_unknown_fields; i++)
    if (m->unknown_fields[i].tag == 0)
      return true;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *fd = &d->fields[i];
    if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
      continue;
    ProtobufCMessage *const *sub = NULL;
    size_t n = submessages(m, fd, &sub);
    for (size_t k = 0; k < n; k++)
      if (sub[k] && has_field_zero(sub[k], depth + 1))
        return true;
  }
  return false;
}

int lmz_frame_unpack(const uint8_t *p, size_t len, Lmz__Frame **out) {
  *out = lmz__frame__unpack(NULL, len, p);
  if (!*out)
    return LMZ_EBADMSG;
  if (has_field_zero(&(*out)->base, 0)) {
    lmz__frame__free_unpacked(*out, NULL);
    *out = NULL;
    return LMZ_EBADMSG;
  }
  return 0;
}

void lmz_frame_free(Lmz__Frame *f) {
  if (f)
    lmz__frame__free_unpacked(f, NULL);
}
