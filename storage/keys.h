/* storage/keys.h - the RocksDB key layout of a node (pure functions, no I/O).
 *
 * One RocksDB per node, default column family. Every key starts with a kind
 * byte:
 *
 *   'A'  actor data. An actor's whole state is ONE contiguous key range, so
 *        export, delete and migration are a single range scan / delete_range:
 *
 *        +-----+------------+---------+-------------+----------+-------+--------+
 *        | 'A' | varint(bl) | binding | varint(il)  | instance | space | key |
 *        +-----+------------+---------+-------------+----------+-------+--------+
 *         1 B    1-2 B        bl B      1-2 B         il B       1 B     kl B
 *        \________________ actor prefix ______________________/
 *
 *        varint = unsigned LEB128, minimal encoding (7 bits per byte, low
 *        group first, high bit = "more"). Length-prefixing makes the set of
 *        actor prefixes prefix-free: no actor's prefix is a prefix of another
 *        actor's key, so ("ab","c") and ("a","bc") never overlap.
 *        space: 0x00 = framework data (identity, alarms, ...),
 *               0x01 = user KV (lmz_kv_*). Values >= LMZ_KEY_SPACE_COUNT are
 *               reserved; the whole-actor range covers spaces 0x00..0xFE.
 *   'N'  node-level framework data, outside any actor: 'N' + name.
 *
 * Limits (inputs beyond them give LMZ_EINVAL): binding 1..255 bytes,
 * instance 0..1024 bytes, user key 0..2048 bytes, node key name 0..2048.
 * Names are byte strings (UTF-8 expected, not checked; NUL allowed).
 *
 * Ranges are half-open [lower, upper) in RocksDB's bytewise order.
 *
 * Threading: every function is pure and thread-safe. Nothing allocates. */
#ifndef LMZ_STORAGE_KEYS_H
#define LMZ_STORAGE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define LMZ_KEY_BINDING_MAX 255
#define LMZ_KEY_INSTANCE_MAX 1024
#define LMZ_KEY_USER_MAX 2048
/* 'A' + varint(255) (2 B) + binding + varint(1024) (2 B) + instance */
#define LMZ_KEY_PREFIX_MAX                                                     \
  (1 + 2 + LMZ_KEY_BINDING_MAX + 2 + LMZ_KEY_INSTANCE_MAX)
/* prefix + space + user key; also bounds node keys and every range bound */
#define LMZ_KEY_MAX (LMZ_KEY_PREFIX_MAX + 1 + LMZ_KEY_USER_MAX)

#define LMZ_KEY_KIND_ACTOR 'A'
#define LMZ_KEY_KIND_NODE 'N'

enum lmz_key_space {
  LMZ_KEY_SPACE_FRAMEWORK = 0x00,
  LMZ_KEY_SPACE_USER = 0x01,
  LMZ_KEY_SPACE_COUNT = 0x02 /* first reserved value */
};

/* A [lower, upper) range; both bounds are stored inline (no allocation). */
typedef struct lmz_key_range {
  uint8_t lower[LMZ_KEY_MAX];
  size_t lower_len;
  uint8_t upper[LMZ_KEY_MAX];
  size_t upper_len;
} lmz_key_range;

/* The pieces of a parsed actor key; pointers borrow from the parsed key. */
struct lmz_key_parts {
  const char *binding;
  size_t binding_len;
  const char *instance;
  size_t instance_len;
  size_t prefix_len;  /* bytes of the actor prefix */
  unsigned space;     /* the space byte (may be a reserved value) */
  const uint8_t *key; /* user key (after the space byte) */
  size_t key_len;
};

/* Writes the actor prefix of (binding, instance) into `out`, which must hold
 * LMZ_KEY_PREFIX_MAX bytes. Returns its length (> 0) or LMZ_EINVAL (empty or
 * too long binding, too long instance, NULL pointer with a non-zero length).
 * The runtime computes this once per activation and reuses it. */
int lmz_key_actor_prefix(uint8_t *out, const char *binding, size_t binding_len,
                         const char *instance, size_t instance_len);

/* Writes prefix + space + key into `out` (LMZ_KEY_MAX bytes). `prefix` must
 * come from lmz_key_actor_prefix(). Returns the length or LMZ_EINVAL (bad
 * prefix length, space >= LMZ_KEY_SPACE_COUNT, key longer than
 * LMZ_KEY_USER_MAX). */
int lmz_key_join(uint8_t *out, const uint8_t *prefix, size_t prefix_len,
                 unsigned space, const void *key, size_t key_len);

/* Convenience: lmz_key_actor_prefix() then lmz_key_join(). */
int lmz_key_actor(uint8_t *out, const char *binding, size_t binding_len,
                  const char *instance, size_t instance_len, unsigned space,
                  const void *key, size_t key_len);

/* The whole key range of one actor (every space): [prefix, prefix 0xFF).
 * Returns 0 or LMZ_EINVAL (bad prefix length). */
int lmz_key_actor_range(lmz_key_range *r, const uint8_t *prefix,
                        size_t prefix_len);

/* The range of one space of one actor: [prefix space, prefix space+1).
 * Returns 0 or LMZ_EINVAL. */
int lmz_key_space_range(lmz_key_range *r, const uint8_t *prefix,
                        size_t prefix_len, unsigned space);

/* The range of every key of one space of one actor that starts with
 * `key_prefix` (user `list({prefix})`): lower = prefix space key_prefix,
 * upper = the smallest key greater than every key with that start.
 * Returns 0 or LMZ_EINVAL (key_prefix longer than LMZ_KEY_USER_MAX, ...). */
int lmz_key_list_range(lmz_key_range *r, const uint8_t *prefix,
                       size_t prefix_len, unsigned space,
                       const void *key_prefix, size_t key_prefix_len);

/* Writes 'N' + name into `out` (LMZ_KEY_MAX bytes). Returns the length or
 * LMZ_EINVAL (name longer than LMZ_KEY_USER_MAX). */
int lmz_key_node(uint8_t *out, const void *name, size_t name_len);
/* The range of every node-level key: ['N', 'O'). */
void lmz_key_node_range(lmz_key_range *r);

/* Splits a full actor key (as found by a scan) into its parts. Hostile input
 * is fine: returns 0, or LMZ_EINVAL when `key` is not a well-formed actor key
 * (wrong kind byte, truncated or non-minimal varint, lengths beyond the
 * limits, missing space byte, user key too long). The space byte is reported
 * as found, reserved values included; callers decide whether to accept it. */
int lmz_key_parse(const uint8_t *key, size_t len, struct lmz_key_parts *p);

/* Unsigned LEB128 helpers (also used by the export dump format).
 * put: writes at most 10 bytes, returns the count.
 * get: reads a minimal varint from [p, end); returns bytes read, or 0 when it
 * is truncated, longer than 10 bytes, overflows or is non-minimal. */
size_t lmz__varint_put(uint8_t *p, uint64_t v);
size_t lmz__varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v);

#endif
