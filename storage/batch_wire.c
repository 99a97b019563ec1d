/* storage/batch_wire.c - the portable encoding of a write batch (store.h
 * "Batch wire format"), for replication streams (cluster/repl.h).
 *
 * Happy path: serialize walks the batch's in-memory records (store_int.h)
 * and writes each one with varint lengths, skipping (or clipping, for a
 * delete_range) what lies outside the caller's `keep` range; deserialize
 * parses the bytes and appends the same operations to a batch in one pass.
 *
 * Failure modes (deserialize; the bytes come from another node):
 *  1. Malformed bytes (unknown version or op, truncated or non-minimal
 *     varints, lengths over the store.h limits, an operation count that does
 *     not match, trailing bytes): LMZ_EBADMSG / LMZ_EBADVERSION.
 *  2. A key outside the actor's range, in a reserved space, or a
 *     delete_range reaching outside the range or inverted: LMZ_EACCESS
 *     (the record is well-formed but not allowed to touch that key).
 *  3. Memory / batch cap: LMZ_ENOMEM / LMZ_ETOOBIG.
 * In every case the batch is truncated back to what it held before the call
 * and errmsg says what and where (byte offset, operation index). */
#include <string.h>

#include "storage/keys.h"
#include "storage/store_int.h"

#define WIRE_VERSION 1

/* --- Serialize ---------------------------------------------------------- */

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

static int put_lenstr(lmz_buf *out, const void *p, size_t len) {
  uint8_t tmp[10];
  int rv = lmz_buf_append(out, tmp, lmz__varint_put(tmp, len));
  return rv || len == 0 ? rv : lmz_buf_append(out, p, len);
}

static int put_op(lmz_buf *out, uint8_t op, const uint8_t *k, size_t klen,
                  const uint8_t *v, size_t vlen) {
  int rv = lmz_buf_putc(out, op);
  if (!rv)
    rv = put_lenstr(out, k, klen);
  if (!rv && op != LMZ__OP_DELETE)
    rv = put_lenstr(out, v, vlen);
  return rv;
}

static bool in_range(const lmz_key_range *r, const uint8_t *k, size_t klen) {
  return key_cmp(k, klen, r->lower, r->lower_len) >= 0 &&
         key_cmp(k, klen, r->upper, r->upper_len) < 0;
}

/* Writes one record of the in-memory encoding, filtered by `keep`.
 * Returns 1 when written, 0 when skipped, or an error. */
static int serialize_op(lmz_buf *out, const lmz_key_range *keep, uint8_t op,
                        const uint8_t *k, size_t klen, const uint8_t *v,
                        size_t vlen) {
  if (keep && op != LMZ__OP_DELETE_RANGE && !in_range(keep, k, klen))
    return 0;
  if (keep && op == LMZ__OP_DELETE_RANGE) { /* [k, v): clip to keep */
    if (key_cmp(k, klen, keep->lower, keep->lower_len) < 0)
      k = keep->lower, klen = keep->lower_len;
    if (key_cmp(v, vlen, keep->upper, keep->upper_len) > 0)
      v = keep->upper, vlen = keep->upper_len;
    if (key_cmp(k, klen, v, vlen) >= 0)
      return 0; /* no overlap */
  }
  int rv = put_op(out, op, k, klen, v, vlen);
  return rv ? rv : 1;
}

int lmz_batch_serialize(const lmz_batch *b, const lmz_key_range *keep,
                        lmz_buf *out) {
  if (!b || !out)
    return LMZ_EINVAL;
  size_t len0 = out->len;
  /* The count comes first but is known only at the end: reserve the
   * largest varint and move the records down once it is known. */
  uint8_t hdr[11] = {WIRE_VERSION};
  int rv = lmz_buf_append(out, hdr, sizeof hdr);
  size_t n = 0;
  const uint8_t *p = b->ops.data; /* NULL for a batch never written to */
  const uint8_t *end = p ? p + b->ops.len : p;
  while (rv == 0 && p < end) {
    uint32_t a, c;
    memcpy(&a, p + 1, 4);
    memcpy(&c, p + 5, 4);
    const uint8_t *k = p + LMZ__OP_HDR, *v = k + a;
    rv = serialize_op(out, keep, p[0], k, a, v, c);
    if (rv > 0)
      n++, rv = 0;
    p = v + c;
  }
  if (rv) {
    out->len = len0;
    return rv;
  }
  size_t vl = lmz__varint_put(hdr + 1, n);
  uint8_t *base = out->data + len0;
  memcpy(base + 1, hdr + 1, vl);
  memmove(base + 1 + vl, base + sizeof hdr, out->len - len0 - sizeof hdr);
  out->len -= sizeof hdr - 1 - vl;
  return 0;
}

/* --- Deserialize -------------------------------------------------------- */

struct rd {
  const uint8_t *p, *start, *end;
};

static int get_lenstr(struct rd *r, size_t max, const uint8_t **s,
                      size_t *len) {
  uint64_t n;
  size_t k = lmz__varint_get(r->p, r->end, &n);
  if (k == 0 || n > max || n > (uint64_t)(r->end - r->p) - k)
    return -1;
  *s = r->p + k;
  *len = (size_t)n;
  r->p += k + n;
  return 0;
}

/* A put/delete key must be one of this actor's keys: the actor prefix
 * (range->lower), a space byte below LMZ_KEY_SPACE_COUNT, a user key within
 * the keys.h limit. */
static bool actor_key_ok(const lmz_key_range *r, const uint8_t *k,
                         size_t klen) {
  size_t pl = r->lower_len;
  return klen > pl && memcmp(k, r->lower, pl) == 0 &&
         k[pl] < LMZ_KEY_SPACE_COUNT && klen - pl - 1 <= LMZ_KEY_USER_MAX;
}

static bool range_ok(const lmz_key_range *r, const uint8_t *lo, size_t lol,
                     const uint8_t *hi, size_t hil) {
  return key_cmp(lo, lol, r->lower, r->lower_len) >= 0 &&
         key_cmp(hi, hil, r->upper, r->upper_len) <= 0 &&
         key_cmp(lo, lol, hi, hil) <= 0;
}

/* Parses and appends one operation. Returns 0 or an error. */
static int read_op(struct rd *r, lmz_batch *b, const lmz_key_range *range) {
  if (r->p >= r->end)
    return LMZ_EBADMSG;
  uint8_t op = *r->p++;
  const uint8_t *k, *v = NULL;
  size_t klen, vlen = 0;
  size_t vmax = op == LMZ__OP_PUT ? LMZ_STORE_VALUE_MAX : LMZ_KEY_MAX;
  if (op < LMZ__OP_PUT || op > LMZ__OP_DELETE_RANGE ||
      get_lenstr(r, LMZ_KEY_MAX, &k, &klen) ||
      (op != LMZ__OP_DELETE && get_lenstr(r, vmax, &v, &vlen)))
    return LMZ_EBADMSG;
  switch (op) {
  case LMZ__OP_PUT:
    return actor_key_ok(range, k, klen) ? lmz_batch_put(b, k, klen, v, vlen)
                                        : LMZ_EACCESS;
  case LMZ__OP_DELETE:
    return actor_key_ok(range, k, klen) ? lmz_batch_delete(b, k, klen)
                                        : LMZ_EACCESS;
  default:
    return range_ok(range, k, klen, v, vlen)
               ? lmz_batch_delete_range(b, k, klen, v, vlen)
               : LMZ_EACCESS;
  }
}

int lmz_batch_deserialize(lmz_batch *b, const void *data, size_t len,
                          const lmz_key_range *range, char *errmsg) {
  static const uint8_t none[1];
  if (!b || !range)
    return LMZ_EINVAL;
  if (!data)
    data = none, len = 0;
  struct rd r = {data, data, (const uint8_t *)data + len};
  size_t bytes0 = lmz_batch_bytes(b), count0 = lmz_batch_count(b);
  uint64_t n = 0, i = 0;
  size_t k = 0;
  int rv = LMZ_EBADMSG;
  if (len == 0 || r.p[0] != WIRE_VERSION) {
    rv = len == 0 ? LMZ_EBADMSG : LMZ_EBADVERSION;
    goto fail;
  }
  r.p++;
  k = lmz__varint_get(r.p, r.end, &n);
  if (k == 0 || n > len) /* every operation takes >= 3 bytes */
    goto fail;
  r.p += k;
  for (rv = 0; i < n && rv == 0; i++)
    rv = read_op(&r, b, range);
  if (rv == 0 && r.p == r.end)
    return n > INT32_MAX ? LMZ_ETOOBIG : (int)n;
  if (rv == 0)
    rv = LMZ_EBADMSG; /* trailing bytes */
  else
    i--; /* the operation that failed */
fail:
  lmz__batch_truncate(b, bytes0, count0);
  if (errmsg)
    lmz__errmsg_printf(errmsg, "batch: %s at offset %zu (operation %llu)",
                       rv == LMZ_EACCESS ? "key outside the actor's range"
                                         : lmz_strerror(rv),
                       (size_t)(r.p - r.start), (unsigned long long)i);
  return rv;
}
