/* core/value_int.h - node layout of lmz_value. Private to core/ (value.c and
 * the codecs) and core's unit tests. Everyone else uses lmz/value.h. */
#ifndef LMZ_CORE_VALUE_INT_H
#define LMZ_CORE_VALUE_INT_H

#include "lmz/value.h"

struct lmz_prop {
  const char *key; /* NUL-terminated copy in the arena */
  uint32_t klen;
  lmz_value *v;
};

struct lmz_entry { /* Map entry */
  lmz_value *k;
  lmz_value *v;
};

#define LMZ__V_STATIC 0x1u /* singleton, belongs to no arena */

struct lmz_value {
  uint8_t type;  /* lmz_type */
  uint8_t sub;   /* lmz_view_kind / lmz_boxed_kind */
  uint16_t flags;
  /* Encoder scratch: valid only while mark_epoch equals the encoder's epoch
   * (a process-wide counter bumped per encode), so nothing needs clearing. */
  uint32_t mark_epoch;
  uint32_t mark;     /* e.g. reference count in pass 1 */
  uint32_t mark_id;  /* e.g. alias id + 1 in pass 2 (0 = none) */
  uint32_t n;        /* element count (arrays, props, entries, headers) */
  uint32_t cap;      /* allocated slots */
  lmz_arena *arena;  /* owner arena; NULL for singletons */
  union {
    bool b;
    double num; /* number, date */
    struct {
      char *p; /* NUL-terminated */
      size_t len;
    } str; /* string, bigint (normalized decimal), url */
    struct {
      char *src;
      char *flags;
      uint32_t src_len, flags_len;
    } re;
    struct {
      union {
        lmz_value **items;      /* array (holes = lmz_hole()), set */
        struct lmz_prop *props; /* object; headers (v = string values) */
        struct lmz_entry *ents; /* map */
      };
      /* Private to value.c: lazily built key index of objects, maps and sets
       * (NULL until needed). Code that builds nodes by hand must set it to
       * NULL; appending to items/props/ents directly is fine (the index
       * catches up with entries it has not seen), reordering or removing
       * entries is not. */
      struct lmz__hidx *hidx;
    };
    struct {
      uint8_t *bytes;
      size_t len;
    } ab;
    struct {
      lmz_value *buffer;
      size_t byte_offset;
      size_t length; /* elements (bytes for DataView) */
    } view;
    lmz_value *boxed; /* the primitive */
    struct {
      lmz_value *name;    /* string */
      lmz_value *message; /* string */
      lmz_value *stack;   /* string or NULL */
      lmz_value *cause;   /* any or NULL */
      struct lmz_prop *props; /* custom properties, n/cap above */
      struct lmz__hidx *hidx; /* private key index of props (see above) */
    } err;
  } u;
};

/* Next encoder epoch (never 0). Thread-safe. */
uint32_t lmz__value_next_epoch(void);

/* ---- helpers for decoders (value.c, arena.c) ----------------------------- */

/* The cap set by lmz_arena_set_limit (0 = none), so a decoder can tighten it
 * for one decode and restore it afterwards. */
size_t lmz__arena_limit(const lmz_arena *a);
/* Makes room for `n` entries in total (array/set items, object/headers/error
 * props, map entries) so a decoder appends without regrowing. 0 / ENOMEM. */
int lmz__value_reserve(lmz_value *v, size_t n);
/* Appends a property to an object or error (key bytes copied) unless the key
 * exists: then nothing changes and LMZ_EEXIST is returned. */
int lmz__object_add(lmz_value *obj, const char *key, size_t klen,
                    lmz_value *v);
/* Same for a Map entry / Set item (SameValueZero): LMZ_EEXIST if present. */
int lmz__map_add(lmz_value *map, lmz_value *key, lmz_value *v);
int lmz__set_add_new(lmz_value *set, lmz_value *v);
/* Static number nodes for the integers 0..LMZ__SMALL_INT_MAX (flag
 * LMZ__V_STATIC, no arena): decoders use them to save a node per small int.
 * Never write to a static node. */
#define LMZ__SMALL_INT_MAX 63
lmz_value *lmz__small_int(unsigned i);
/* Static empty string node. */
lmz_value *lmz__empty_string(void);

/* For tests: slot probes needed to find the worst-placed key in the key
 * index of an object, error, map or set (0 when it has no index yet). The
 * index hashes with the per-process seeded hash (core/hash.h), so keys a
 * client picks cannot be made to collide. */
uint32_t lmz__value_index_max_probe(const lmz_value *c);

#endif
