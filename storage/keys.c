/* storage/keys.c - actor / node key layout (see keys.h for the byte diagram).
 *
 * Happy path: lmz_key_actor_prefix() encodes 'A' varint(bl) binding
 * varint(il) instance once; lmz_key_join() appends space + user key for every
 * get/put; range helpers derive [lower, upper) bounds from a prefix.
 *
 * Failure modes:
 *  1. Lengths beyond the documented limits, empty binding, NULL pointer with
 *     a non-zero length, reserved space value: LMZ_EINVAL, nothing written
 *     beyond the caller's buffer (every write is bounded by the limits).
 *  2. Hostile keys given to lmz_key_parse() (truncated, overlong varints,
 *     non-minimal encodings that would alias a canonical key): LMZ_EINVAL. */
#include "storage/keys.h"

#include <string.h>

#include "core/err.h"

size_t lmz__varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

size_t lmz__varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (size_t i = 0; i < 10 && p + i < end; i++) {
    uint64_t b = p[i];
    if (i == 9 && b > 1)
      return 0; /* would overflow 64 bits */
    x |= (b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      /* minimal: a multi-byte varint never ends with a zero group, otherwise
       * two encodings of one length would name two different keys */
      if (i > 0 && b == 0)
        return 0;
      *v = x;
      return i + 1;
    }
  }
  return 0;
}

static int bad_ptr(const void *p, size_t len) { return p == NULL && len > 0; }

int lmz_key_actor_prefix(uint8_t *out, const char *binding, size_t binding_len,
                         const char *instance, size_t instance_len) {
  if (binding_len == 0 || binding_len > LMZ_KEY_BINDING_MAX ||
      instance_len > LMZ_KEY_INSTANCE_MAX || bad_ptr(binding, binding_len) ||
      bad_ptr(instance, instance_len))
    return LMZ_EINVAL;
  size_t n = 0;
  out[n++] = LMZ_KEY_KIND_ACTOR;
  n += lmz__varint_put(out + n, binding_len);
  memcpy(out + n, binding, binding_len);
  n += binding_len;
  n += lmz__varint_put(out + n, instance_len);
  if (instance_len)
    memcpy(out + n, instance, instance_len);
  n += instance_len;
  return (int)n;
}

/* The shortest possible prefix is 'A' 0x01 b 0x00 (3 bytes + binding). */
static int bad_prefix(const uint8_t *prefix, size_t prefix_len) {
  return prefix == NULL || prefix_len < 4 || prefix_len > LMZ_KEY_PREFIX_MAX ||
         prefix[0] != LMZ_KEY_KIND_ACTOR;
}

int lmz_key_join(uint8_t *out, const uint8_t *prefix, size_t prefix_len,
                 unsigned space, const void *key, size_t key_len) {
  if (bad_prefix(prefix, prefix_len) || space >= LMZ_KEY_SPACE_COUNT ||
      key_len > LMZ_KEY_USER_MAX || bad_ptr(key, key_len))
    return LMZ_EINVAL;
  if (out != prefix)
    memmove(out, prefix, prefix_len);
  out[prefix_len] = (uint8_t)space;
  if (key_len)
    memcpy(out + prefix_len + 1, key, key_len);
  return (int)(prefix_len + 1 + key_len);
}

int lmz_key_actor(uint8_t *out, const char *binding, size_t binding_len,
                  const char *instance, size_t instance_len, unsigned space,
                  const void *key, size_t key_len) {
  int n =
      lmz_key_actor_prefix(out, binding, binding_len, instance, instance_len);
  if (n < 0)
    return n;
  return lmz_key_join(out, out, (size_t)n, space, key, key_len);
}

/* lower = prefix + tail byte ... ; upper = prefix + `upper_byte`. */
static void range_with_byte(lmz_key_range *r, const uint8_t *prefix,
                            size_t prefix_len, int lower_byte,
                            uint8_t upper_byte) {
  memcpy(r->lower, prefix, prefix_len);
  r->lower_len = prefix_len;
  if (lower_byte >= 0)
    r->lower[r->lower_len++] = (uint8_t)lower_byte;
  memcpy(r->upper, prefix, prefix_len);
  r->upper[prefix_len] = upper_byte;
  r->upper_len = prefix_len + 1;
}

int lmz_key_actor_range(lmz_key_range *r, const uint8_t *prefix,
                        size_t prefix_len) {
  if (bad_prefix(prefix, prefix_len))
    return LMZ_EINVAL;
  /* Every key of the actor is prefix + space (< 0xFF) + ...; and since
   * prefixes are prefix-free, nothing else lies in [prefix, prefix 0xFF). */
  range_with_byte(r, prefix, prefix_len, -1, 0xFF);
  return 0;
}

int lmz_key_space_range(lmz_key_range *r, const uint8_t *prefix,
                        size_t prefix_len, unsigned space) {
  if (bad_prefix(prefix, prefix_len) || space >= LMZ_KEY_SPACE_COUNT)
    return LMZ_EINVAL;
  range_with_byte(r, prefix, prefix_len, (int)space, (uint8_t)(space + 1));
  return 0;
}

int lmz_key_list_range(lmz_key_range *r, const uint8_t *prefix,
                       size_t prefix_len, unsigned space,
                       const void *key_prefix, size_t key_prefix_len) {
  int n = lmz_key_join(r->lower, prefix, prefix_len, space, key_prefix,
                       key_prefix_len);
  if (n < 0)
    return n;
  r->lower_len = (size_t)n;
  /* Upper = successor of every string starting with lower: drop trailing
   * 0xFF bytes, then increment the last byte. The space byte is < 0xFF, so
   * the loop stops inside this actor at the latest (giving prefix space+1). */
  size_t u = r->lower_len;
  memcpy(r->upper, r->lower, u);
  while (r->upper[u - 1] == 0xFF)
    u--;
  r->upper[u - 1]++;
  r->upper_len = u;
  return 0;
}

int lmz_key_node(uint8_t *out, const void *name, size_t name_len) {
  if (name_len > LMZ_KEY_USER_MAX || bad_ptr(name, name_len))
    return LMZ_EINVAL;
  out[0] = LMZ_KEY_KIND_NODE;
  if (name_len)
    memcpy(out + 1, name, name_len);
  return (int)(name_len + 1);
}

void lmz_key_node_range(lmz_key_range *r) {
  r->lower[0] = LMZ_KEY_KIND_NODE;
  r->lower_len = 1;
  r->upper[0] = LMZ_KEY_KIND_NODE + 1;
  r->upper_len = 1;
}

/* Reads varint(len) + len bytes; returns the new position or NULL. */
static const uint8_t *parse_lenstr(const uint8_t *p, const uint8_t *end,
                                   uint64_t max, const uint8_t **s,
                                   size_t *len) {
  uint64_t n;
  size_t k = lmz__varint_get(p, end, &n);
  if (k == 0 || n > max || n > (uint64_t)(end - p - (ptrdiff_t)k))
    return NULL;
  *s = p + k;
  *len = (size_t)n;
  return p + k + n;
}

int lmz_key_parse(const uint8_t *key, size_t len, struct lmz_key_parts *p) {
  if (key == NULL || len < 1 || key[0] != LMZ_KEY_KIND_ACTOR)
    return LMZ_EINVAL;
  const uint8_t *end = key + len, *b, *i;
  const uint8_t *q =
      parse_lenstr(key + 1, end, LMZ_KEY_BINDING_MAX, &b, &p->binding_len);
  if (q == NULL || p->binding_len == 0)
    return LMZ_EINVAL;
  q = parse_lenstr(q, end, LMZ_KEY_INSTANCE_MAX, &i, &p->instance_len);
  if (q == NULL || q == end) /* no space byte */
    return LMZ_EINVAL;
  p->binding = (const char *)b;
  p->instance = (const char *)i;
  p->prefix_len = (size_t)(q - key);
  p->space = *q++;
  p->key = q;
  p->key_len = (size_t)(end - q);
  if (p->key_len > LMZ_KEY_USER_MAX)
    return LMZ_EINVAL;
  return 0;
}
