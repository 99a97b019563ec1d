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
    lmz_value **items;        /* array (holes = lmz_hole()), set */
    struct lmz_prop *props;   /* object; headers (v = string values) */
    struct lmz_entry *ents;   /* map */
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
    } err;
  } u;
};

/* Next encoder epoch (never 0). Thread-safe. */
uint32_t lmz__value_next_epoch(void);

#endif
