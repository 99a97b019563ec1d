/* storage/dump.c - export / import of one actor's key range (migration).
 *
 * Happy path: export scans [prefix, prefix 0xFF) in one consistent iterator
 * and writes the length-prefixed dump described in store.h, with keys made
 * relative to the actor prefix. Import parses the dump and, in the same
 * pass, appends to the caller's batch a delete_range of the actor's range
 * followed by one put per entry; committing that batch replaces the actor's
 * state atomically.
 *
 * Failure modes:
 *  1. Import of a hostile dump (bad magic, unknown version, truncation,
 *     overlong or non-minimal varints, names or keys beyond keys.h limits,
 *     reserved space byte, unsorted/duplicate keys, wrong entry count,
 *     trailing bytes): LMZ_EBADMSG / LMZ_EBADVERSION with the offset in
 *     s->errmsg; the batch is truncated back to its state before the call.
 *  2. Export meets a key in the actor's range that is not a valid key of
 *     this actor (written by hand, corruption): LMZ_ESTORAGE, so we never
 *     emit a dump that import would refuse.
 *  3. Memory: LMZ_ENOMEM / LMZ_ETOOBIG from the output buffer or batch. */
#include <string.h>

#include "storage/keys.h"
#include "storage/store_int.h"

#define DUMP_MAGIC "LMZA"
#define DUMP_VERSION 1
#define TAG_END 0x00
#define TAG_ENTRY 0x01

/* --- Export ------------------------------------------------------------- */

struct export_ctx {
  lmz_buf *out;
  size_t prefix_len;
  int rv;
};

static int put_varint(lmz_buf *out, uint64_t v) {
  uint8_t tmp[10];
  return lmz_buf_append(out, tmp, lmz__varint_put(tmp, v));
}

static int put_lenstr(lmz_buf *out, const void *p, size_t len) {
  int rv = put_varint(out, len);
  return rv ? rv : lmz_buf_append(out, p, len);
}

static int export_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                     size_t vlen, void *arg) {
  struct export_ctx *x = arg;
  size_t rel = klen - x->prefix_len; /* range scan: klen >= prefix_len */
  if (klen <= x->prefix_len || rel > 1 + LMZ_KEY_USER_MAX ||
      key[x->prefix_len] >= LMZ_KEY_SPACE_COUNT || vlen > LMZ_STORE_VALUE_MAX) {
    x->rv = LMZ_ESTORAGE;
    return 1;
  }
  int rv = lmz_buf_putc(x->out, TAG_ENTRY);
  if (!rv)
    rv = put_lenstr(x->out, key + x->prefix_len, rel);
  if (!rv)
    rv = put_lenstr(x->out, val, vlen);
  x->rv = rv;
  return rv != 0;
}

static int export_header(lmz_buf *out, const char *binding, size_t binding_len,
                         const char *instance, size_t instance_len) {
  int rv = lmz_buf_append(out, DUMP_MAGIC, 4);
  if (!rv)
    rv = lmz_buf_putc(out, DUMP_VERSION);
  if (!rv)
    rv = put_lenstr(out, binding, binding_len);
  if (!rv)
    rv = put_lenstr(out, instance, instance_len);
  return rv;
}

int lmz_store_export_actor(lmz_store_t *s, const char *binding,
                           size_t binding_len, const char *instance,
                           size_t instance_len, lmz_buf *out) {
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int plen = lmz_key_actor_prefix(prefix, binding, binding_len, instance,
                                  instance_len);
  if (plen < 0) {
    lmz__errmsg_printf(s->errmsg, "export: invalid actor name");
    return plen;
  }
  lmz_key_range r;
  lmz_key_actor_range(&r, prefix, (size_t)plen);
  int rv = export_header(out, binding, binding_len, instance, instance_len);
  if (rv)
    return rv;
  struct export_ctx x = {out, (size_t)plen, 0};
  int n = lmz_store_scan(s, r.lower, r.lower_len, r.upper, r.upper_len, 0,
                         false, export_cb, &x);
  if (n < 0)
    return n;
  if (x.rv) {
    if (x.rv == LMZ_ESTORAGE)
      lmz__errmsg_printf(s->errmsg, "export: malformed key in actor range");
    return x.rv;
  }
  rv = lmz_buf_putc(out, TAG_END);
  if (!rv)
    rv = put_varint(out, (uint64_t)n);
  return rv ? rv : n;
}

/* --- Import ------------------------------------------------------------- */

struct reader {
  const uint8_t *p, *start, *end;
};

/* Reads varint(len) + len bytes (len <= max). Returns 0 or -1. */
static int read_lenstr(struct reader *r, uint64_t max, const uint8_t **s,
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

static int read_header(struct reader *r, const char **binding, size_t *blen,
                       const char **instance, size_t *ilen) {
  const uint8_t *b, *i;
  if (r->end - r->p < 5 || memcmp(r->p, DUMP_MAGIC, 4) != 0)
    return LMZ_EBADMSG;
  if (r->p[4] != DUMP_VERSION)
    return LMZ_EBADVERSION;
  r->p += 5;
  if (read_lenstr(r, LMZ_KEY_BINDING_MAX, &b, blen) || *blen == 0 ||
      read_lenstr(r, LMZ_KEY_INSTANCE_MAX, &i, ilen))
    return LMZ_EBADMSG;
  *binding = (const char *)b;
  *instance = (const char *)i;
  return 0;
}

int lmz_store_dump_actor(const void *data, size_t len, const char **binding,
                         size_t *binding_len, const char **instance,
                         size_t *instance_len) {
  if (!data)
    return LMZ_EBADMSG;
  struct reader r = {data, data, (const uint8_t *)data + len};
  return read_header(&r, binding, binding_len, instance, instance_len);
}

/* Bytewise "a < b". */
static int key_less(const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  return c < 0 || (c == 0 && alen < blen);
}

/* Parses the entries and the trailer, adding a put per entry to `b`.
 * Returns the entry count or an error (message in errmsg). */
static int import_entries(struct reader *r, const uint8_t *prefix, size_t plen,
                          lmz_batch *b, char *errmsg) {
  uint8_t key[LMZ_KEY_MAX];
  const uint8_t *prev = NULL;
  size_t prev_len = 0, n = 0;
  while (r->p < r->end && *r->p == TAG_ENTRY) {
    const uint8_t *k, *v;
    size_t klen, vlen;
    r->p++;
    if (read_lenstr(r, 1 + LMZ_KEY_USER_MAX, &k, &klen) || klen == 0 ||
        read_lenstr(r, LMZ_STORE_VALUE_MAX, &v, &vlen))
      goto bad;
    if (k[0] >= LMZ_KEY_SPACE_COUNT ||
        (prev && !key_less(prev, prev_len, k, klen)))
      goto bad; /* reserved space; unsorted or duplicate key */
    int kl = lmz_key_join(key, prefix, plen, k[0], k + 1, klen - 1);
    LMZ_ASSERT(kl > 0); /* every part was checked above */
    int rv = lmz_batch_put(b, key, (size_t)kl, v, vlen);
    if (rv) {
      lmz__errmsg_printf(errmsg, "import: %s", lmz_strerror(rv));
      return rv;
    }
    prev = k, prev_len = klen, n++;
  }
  uint64_t count;
  size_t c;
  if (r->p >= r->end || *r->p != TAG_END ||
      (c = lmz__varint_get(r->p + 1, r->end, &count)) == 0 || count != n ||
      r->p + 1 + c != r->end)
    goto bad;
  return n > INT32_MAX ? LMZ_ETOOBIG : (int)n;
bad:
  lmz__errmsg_printf(errmsg, "import: malformed dump at offset %zu (entry %zu)",
                     (size_t)(r->p - r->start), n);
  return LMZ_EBADMSG;
}

int lmz_store_import(lmz_store_t *s, const void *data, size_t len,
                     lmz_batch *b) {
  if (!b)
    return LMZ_EINVAL;
  static const uint8_t none[1];
  if (!data) /* no NULL pointer arithmetic below; an empty dump is refused */
    data = none, len = 0;
  struct reader r = {data, data, (const uint8_t *)data + len};
  const char *binding, *instance;
  size_t blen, ilen;
  int rv = read_header(&r, &binding, &blen, &instance, &ilen);
  if (rv) {
    lmz__errmsg_printf(s->errmsg, "import: bad dump header: %s",
                       lmz_strerror(rv));
    return rv;
  }
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int plen = lmz_key_actor_prefix(prefix, binding, blen, instance, ilen);
  LMZ_ASSERT(plen > 0); /* read_header checked the lengths */
  lmz_key_range range;
  lmz_key_actor_range(&range, prefix, (size_t)plen);
  size_t bytes0 = lmz_batch_bytes(b), count0 = lmz_batch_count(b);
  rv = lmz_batch_delete_range(b, range.lower, range.lower_len, range.upper,
                              range.upper_len);
  if (rv == 0)
    rv = import_entries(&r, prefix, (size_t)plen, b, s->errmsg);
  else
    lmz__errmsg_printf(s->errmsg, "import: %s", lmz_strerror(rv));
  if (rv < 0)
    lmz__batch_truncate(b, bytes0, count0);
  return rv;
}
