/* lmz/value.h - the structured-clone value model (public API).
 *
 * An lmz_value is one node of a value graph covering the whole JavaScript
 * structured-clone space (DESIGN.md section 5): undefined, null, booleans,
 * numbers (NaN, +-Infinity, -0), bigints, strings, Date, RegExp, URL, Headers,
 * ArrayBuffer, typed arrays and DataView (with byte offsets, sharing one
 * buffer), Map, Set, plain objects, dense and sparse arrays, Error (name,
 * message, stack, cause, custom properties, AggregateError's errors), boxed
 * primitives. Graphs may be cyclic and may share nodes.
 *
 * MEMORY. Every value lives in an lmz_arena. Constructors allocate in the arena
 * they are given; nothing is freed individually: lmz_arena_free() releases the
 * whole graph at once (that is how cycles stay simple). A value may point to
 * values of another arena only if that arena outlives it. Values never own
 * their arena. The singletons (undefined, null, true, false, hole) are static
 * and belong to no arena.
 *
 * IDENTITY. Object-like values (Date and everything after it in lmz_type) have
 * identity: two references to the same node are "the same object", and the
 * codecs preserve that (aliases, cycles). Primitive nodes (undefined .. string)
 * have no identity: sharing one primitive node twice means nothing.
 *
 * STRINGS are byte strings holding UTF-8; JavaScript's lone surrogates are
 * kept as WTF-8 (the 3-byte encoding of the surrogate) so they round-trip.
 *
 * THREADS. A graph is not thread-safe; use it from one thread at a time. The
 * encoders keep scratch marks in the nodes, so do not encode the same graph
 * from two threads at once.
 *
 * ERRORS. Constructors return NULL when the arena is out of memory (or over
 * its limit) or an argument is invalid; setters return 0, LMZ_ENOMEM or
 * LMZ_EINVAL (core/err.h). */
#ifndef LMZ_VALUE_H
#define LMZ_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmz_arena lmz_arena;
typedef struct lmz_value lmz_value;

/* ---- arena ---------------------------------------------------------------- */

/* New empty arena. NULL on out of memory. Free with lmz_arena_free(). */
lmz_arena *lmz_arena_new(void);
/* Frees every allocation made in the arena. NULL is allowed. */
void lmz_arena_free(lmz_arena *a);
/* Frees all allocations but keeps the first chunk (and one more chunk of up
 * to 1 MiB) for reuse (cheap reset for hot loops). Every value of the arena
 * becomes invalid. */
void lmz_arena_reset(lmz_arena *a);
/* Caps the bytes the arena may hold (0 = unlimited). Decoders use it to bound
 * memory by input size. Allocation past the cap fails like out of memory. */
void lmz_arena_set_limit(lmz_arena *a, size_t max_bytes);
/* Bytes handed out since new/reset, each request rounded up to 8 (chunk
 * slack is not counted); this is what the limit caps. */
size_t lmz_arena_used(const lmz_arena *a);
/* Raw allocation (8-byte aligned), freed with the arena. NULL on failure. */
void *lmz_arena_alloc(lmz_arena *a, size_t n);
/* Copies n bytes and adds a NUL terminator. */
char *lmz_arena_strndup(lmz_arena *a, const char *s, size_t n);

/* ---- types ---------------------------------------------------------------- */

typedef enum lmz_type {
  /* primitives: no identity */
  LMZ_T_UNDEFINED = 0,
  LMZ_T_NULL,
  LMZ_T_BOOL,
  LMZ_T_NUMBER,
  LMZ_T_BIGINT,
  LMZ_T_STRING,
  LMZ_T_HOLE, /* a missing element of a sparse array; only inside arrays */
  /* objects: identity-bearing */
  LMZ_T_DATE,
  LMZ_T_REGEXP,
  LMZ_T_URL,
  LMZ_T_HEADERS,
  LMZ_T_ARRAYBUFFER,
  LMZ_T_VIEW, /* typed array or DataView over an ArrayBuffer */
  LMZ_T_BOXED,
  LMZ_T_ARRAY,
  LMZ_T_OBJECT,
  LMZ_T_MAP,
  LMZ_T_SET,
  LMZ_T_ERROR,
  LMZ_T__COUNT
} lmz_type;

typedef enum lmz_view_kind {
  LMZ_VIEW_INT8 = 0,
  LMZ_VIEW_UINT8,
  LMZ_VIEW_UINT8_CLAMPED,
  LMZ_VIEW_INT16,
  LMZ_VIEW_UINT16,
  LMZ_VIEW_INT32,
  LMZ_VIEW_UINT32,
  LMZ_VIEW_FLOAT32,
  LMZ_VIEW_FLOAT64,
  LMZ_VIEW_BIGINT64,
  LMZ_VIEW_BIGUINT64,
  LMZ_VIEW_DATAVIEW,
  LMZ_VIEW__COUNT
} lmz_view_kind;

typedef enum lmz_boxed_kind {
  LMZ_BOXED_BOOLEAN = 0,
  LMZ_BOXED_NUMBER,
  LMZ_BOXED_STRING,
  LMZ_BOXED_BIGINT,
} lmz_boxed_kind;

/* JS constructor name of a view kind ("Float32Array", "DataView"), and back.
 * lmz_view_kind_from_name returns -1 for an unknown name. */
const char *lmz_view_kind_name(lmz_view_kind k);
int lmz_view_kind_from_name(const char *name, size_t len);
/* Element size in bytes (1 for DataView). */
size_t lmz_view_elem_size(lmz_view_kind k);

lmz_type lmz_typeof(const lmz_value *v);
/* Name for messages: "undefined", "number", "Map", ... */
const char *lmz_type_name(lmz_type t);
/* True for identity-bearing types (LMZ_T_DATE and later). */
static inline bool lmz_type_has_identity(lmz_type t) { return t >= LMZ_T_DATE; }

/* ---- construction --------------------------------------------------------- */
/* All constructors copy the bytes they are given into the arena. */

lmz_value *lmz_undefined(void); /* static singleton */
lmz_value *lmz_null(void);      /* static singleton */
lmz_value *lmz_bool(bool b);    /* static singletons */
lmz_value *lmz_hole(void);      /* static singleton */
lmz_value *lmz_number(lmz_arena *a, double d);
/* `dec` is an optional '-' then decimal digits; leading zeros are removed and
 * "-0" becomes "0". NULL if not a valid decimal integer. */
lmz_value *lmz_bigint(lmz_arena *a, const char *dec, size_t len);
lmz_value *lmz_string(lmz_arena *a, const char *s, size_t len);
lmz_value *lmz_cstring(lmz_arena *a, const char *s);
/* Milliseconds since the epoch; NaN makes an invalid Date. */
lmz_value *lmz_date(lmz_arena *a, double ms);
lmz_value *lmz_regexp(lmz_arena *a, const char *source, size_t source_len,
                      const char *flags, size_t flags_len);
lmz_value *lmz_url(lmz_arena *a, const char *href, size_t len);
lmz_value *lmz_headers(lmz_arena *a);
/* Appends one header pair (name is kept as given; SC-JSON lower-cases). */
int lmz_headers_append(lmz_value *h, const char *name, size_t name_len,
                       const char *value, size_t value_len);
/* `bytes` may be NULL for a zero-filled buffer. */
lmz_value *lmz_arraybuffer(lmz_arena *a, const void *bytes, size_t len);
/* A view of `buffer` (an ArrayBuffer value, which the view references, not
 * copies). `length` counts elements (bytes for DataView). NULL when the range
 * falls outside the buffer or byte_offset is not a multiple of the element
 * size. */
lmz_value *lmz_view(lmz_arena *a, lmz_view_kind kind, lmz_value *buffer,
                    size_t byte_offset, size_t length);
/* Boxed primitive: `prim` must be a bool, number, string or bigint. */
lmz_value *lmz_boxed(lmz_arena *a, lmz_value *prim);
lmz_value *lmz_array(lmz_arena *a, size_t capacity_hint);
int lmz_array_push(lmz_value *arr, lmz_value *v);
/* Sets element idx, growing the array with holes as needed. */
int lmz_array_set(lmz_value *arr, size_t idx, lmz_value *v);
lmz_value *lmz_object(lmz_arena *a);
/* Sets a property; replaces the value of an existing key in place (keeps its
 * position, like JavaScript). The key bytes are copied. */
int lmz_object_set(lmz_value *obj, const char *key, size_t klen, lmz_value *v);
int lmz_object_setc(lmz_value *obj, const char *key, lmz_value *v);
lmz_value *lmz_map(lmz_arena *a);
/* Sets an entry (SameValueZero on keys: primitives by value, objects by
 * identity); an existing key keeps its position. */
int lmz_map_set(lmz_value *map, lmz_value *key, lmz_value *v);
lmz_value *lmz_set(lmz_arena *a);
int lmz_set_add(lmz_value *set, lmz_value *v); /* no-op if present */
/* Error with name (e.g. "TypeError") and message; both copied. */
lmz_value *lmz_error(lmz_arena *a, const char *name, const char *message);
lmz_value *lmz_error_n(lmz_arena *a, const char *name, size_t name_len,
                       const char *message, size_t message_len);
int lmz_error_set_stack(lmz_value *err, const char *stack, size_t len);
/* `cause` may be any value; NULL removes it. */
int lmz_error_set_cause(lmz_value *err, lmz_value *cause);
/* Custom own property (e.g. "code"); same rules as lmz_object_set. */
int lmz_error_set_prop(lmz_value *err, const char *key, size_t klen,
                       lmz_value *v);

/* ---- inspection ----------------------------------------------------------- */
/* Accessors return 0 / NULL / false when called on the wrong type. Returned
 * pointers are borrowed from the graph and live as long as its arena. */

bool lmz_get_bool(const lmz_value *v);          /* bool, boxed boolean */
double lmz_get_number(const lmz_value *v);      /* number, date ms, boxed */
/* Bytes of a string, bigint (decimal), URL href, regexp source, boxed string
 * or bigint. Always NUL-terminated. */
const char *lmz_get_str(const lmz_value *v, size_t *len);
const char *lmz_regexp_flags(const lmz_value *v, size_t *len);
/* Count: array length (holes included), object/error props, map/set entries,
 * headers, ArrayBuffer bytes, view elements (bytes for DataView). */
size_t lmz_len(const lmz_value *v);
lmz_value *lmz_array_get(const lmz_value *arr, size_t idx); /* hole or NULL */
lmz_value *lmz_object_get(const lmz_value *obj, const char *key, size_t klen);
lmz_value *lmz_object_getc(const lmz_value *obj, const char *key);
/* i-th property in insertion order (objects and errors' custom props). */
const char *lmz_object_key(const lmz_value *obj, size_t i, size_t *klen);
lmz_value *lmz_object_val(const lmz_value *obj, size_t i);
lmz_value *lmz_map_get(const lmz_value *map, const lmz_value *key);
lmz_value *lmz_map_key(const lmz_value *map, size_t i);
lmz_value *lmz_map_val(const lmz_value *map, size_t i);
lmz_value *lmz_set_item(const lmz_value *set, size_t i);
bool lmz_set_has(const lmz_value *set, const lmz_value *v);
const char *lmz_headers_name(const lmz_value *h, size_t i, size_t *len);
const char *lmz_headers_value(const lmz_value *h, size_t i, size_t *len);
/* ArrayBuffer bytes (mutable: views see the change). */
uint8_t *lmz_arraybuffer_data(const lmz_value *ab);
lmz_view_kind lmz_view_get_kind(const lmz_value *view);
lmz_value *lmz_view_buffer(const lmz_value *view);
size_t lmz_view_byte_offset(const lmz_value *view);
size_t lmz_view_byte_length(const lmz_value *view);
lmz_boxed_kind lmz_boxed_get_kind(const lmz_value *b);
lmz_value *lmz_boxed_value(const lmz_value *b);
const char *lmz_error_name(const lmz_value *err);    /* NUL-terminated */
const char *lmz_error_message(const lmz_value *err); /* NUL-terminated */
const char *lmz_error_stack(const lmz_value *err);   /* NULL if absent */
lmz_value *lmz_error_cause(const lmz_value *err);    /* NULL if absent */
lmz_value *lmz_error_prop(const lmz_value *err, const char *key);

/* ---- whole-graph operations ----------------------------------------------- */

/* Deep equality, identity-aware: a and b are equal when their graphs are
 * isomorphic, i.e. same types and contents in the same order AND the same
 * sharing pattern (if a reaches one node twice, b reaches one node twice at
 * the same places). Numbers use SameValue (NaN equals NaN, -0 differs from 0).
 * Object, Map, Set and Headers entries compare in insertion order. Returns
 * false on out of memory (it needs a scratch table). */
bool lmz_value_equal(const lmz_value *a, const lmz_value *b);
/* Deep copy into `dst`, preserving cycles and sharing. NULL on out of memory. */
lmz_value *lmz_value_copy(lmz_arena *dst, const lmz_value *v);

#ifdef __cplusplus
}
#endif
#endif
