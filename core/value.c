/* core/value.c - construction and inspection of lmz_value nodes.
 *
 * Happy path: every constructor takes one arena allocation (node and its
 * bytes together where the size is known), growable arrays (items, props,
 * entries) double in the arena and leave the old block behind, and keyed
 * containers (objects, errors' props, maps, sets) find keys by a linear scan
 * while small and through a lazily built hash index (struct lmz__hidx) once
 * they hold more than HIDX_MIN entries, so building or decoding a big object
 * is linear, never quadratic.
 *
 * Failure modes:
 *  1. Arena exhausted or over its limit -> constructors return NULL, setters
 *     LMZ_ENOMEM; the container is unchanged (growth allocates first, then
 *     copies).
 *  2. Invalid argument (wrong container type, NULL, a hole outside an array,
 *     a count past UINT32_MAX, a malformed bigint, a view outside its buffer)
 *     -> NULL / LMZ_EINVAL.
 *  3. The hash index cannot be allocated -> lookups fall back to the linear
 *     scan (slower, still correct); the next lookup retries the index.
 *  4. Hash flooding: the hash is seeded from the address of a static (ASLR),
 *     so colliding keys cannot be precomputed offline. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "core/err.h"
#include "core/hash.h"
#include "core/value_int.h"

/* ---- singletons ------------------------------------------------------------ */

#define STATIC_NODE(t, ...)                                                    \
  { .type = (t), .flags = LMZ__V_STATIC, __VA_ARGS__ }

static lmz_value s_undefined = STATIC_NODE(LMZ_T_UNDEFINED, .n = 0);
static lmz_value s_null = STATIC_NODE(LMZ_T_NULL, .n = 0);
static lmz_value s_true = STATIC_NODE(LMZ_T_BOOL, .u.b = true);
static lmz_value s_false = STATIC_NODE(LMZ_T_BOOL, .u.b = false);
static lmz_value s_hole = STATIC_NODE(LMZ_T_HOLE, .n = 0);
static lmz_value s_empty = STATIC_NODE(LMZ_T_STRING, .u.str = {"", 0});

#define SI(i) STATIC_NODE(LMZ_T_NUMBER, .u.num = (i))
#define SI4(i) SI(i), SI(i + 1), SI(i + 2), SI(i + 3)
#define SI16(i) SI4(i), SI4(i + 4), SI4(i + 8), SI4(i + 12)
static lmz_value s_small[LMZ__SMALL_INT_MAX + 1] = {SI16(0), SI16(16), SI16(32),
                                                     SI16(48)};
_Static_assert(LMZ__SMALL_INT_MAX == 63, "s_small initializer covers 0..63");

lmz_value *lmz_undefined(void) { return &s_undefined; }
lmz_value *lmz_null(void) { return &s_null; }
lmz_value *lmz_bool(bool b) { return b ? &s_true : &s_false; }
lmz_value *lmz_hole(void) { return &s_hole; }
lmz_value *lmz__empty_string(void) { return &s_empty; }
lmz_value *lmz__small_int(unsigned i) {
  return i <= LMZ__SMALL_INT_MAX ? &s_small[i] : NULL;
}

uint32_t lmz__value_next_epoch(void) {
  static _Atomic uint32_t epoch;
  uint32_t e;
  do
    e = atomic_fetch_add(&epoch, 1) + 1; /* wraps; 0 is skipped */
  while (e == 0);
  return e;
}

/* ---- names ----------------------------------------------------------------- */

static const char *const type_names[LMZ_T__COUNT] = {
    "undefined", "null",   "boolean",     "number",          "bigint",
    "string",    "hole",   "Date",        "RegExp",          "URL",
    "Headers",   "ArrayBuffer", "ArrayBufferView", "boxed primitive",
    "Array",     "Object", "Map",         "Set",             "Error"};

static const char *const view_names[LMZ_VIEW__COUNT] = {
    "Int8Array",    "Uint8Array",   "Uint8ClampedArray", "Int16Array",
    "Uint16Array",  "Int32Array",   "Uint32Array",       "Float32Array",
    "Float64Array", "BigInt64Array", "BigUint64Array",   "DataView"};

static const uint8_t view_sizes[LMZ_VIEW__COUNT] = {1, 1, 1, 2, 2, 4,
                                                    4, 4, 8, 8, 8, 1};

const char *lmz_type_name(lmz_type t) {
  return (unsigned)t < LMZ_T__COUNT ? type_names[t] : "invalid";
}

const char *lmz_view_kind_name(lmz_view_kind k) {
  return (unsigned)k < LMZ_VIEW__COUNT ? view_names[k] : "invalid";
}

int lmz_view_kind_from_name(const char *name, size_t len) {
  for (int k = 0; k < LMZ_VIEW__COUNT; k++)
    if (strlen(view_names[k]) == len && memcmp(view_names[k], name, len) == 0)
      return k;
  return -1;
}

size_t lmz_view_elem_size(lmz_view_kind k) {
  return (unsigned)k < LMZ_VIEW__COUNT ? view_sizes[k] : 0;
}

lmz_type lmz_typeof(const lmz_value *v) {
  return v ? (lmz_type)v->type : LMZ_T_UNDEFINED;
}

/* ---- hashing and SameValueZero ------------------------------------------- */

#define HIDX_MIN 16 /* linear scan up to this many entries */

struct lmz__hidx {
  uint32_t mask;  /* slots - 1; slots is a power of two >= 2 * count */
  uint32_t count; /* entries [0, count) are indexed */
  struct {
    uint32_t idx1; /* entry index + 1; 0 = empty slot */
    uint32_t hash;
  } slot[];
};

static const char hash_anchor;

static inline uint64_t mix64(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

/* Keys come from clients (decoded objects, Maps, Sets): the seeded hash, so
 * nobody can pick keys that share one slot (core/hash.h). */
static uint64_t hash_bytes(const void *p, size_t n) {
  return lmz_hash_seeded(p, n);
}

/* Hash consistent with SameValueZero below. */
static uint64_t hash_value(const lmz_value *v) {
  switch (v->type) {
  case LMZ_T_NUMBER: {
    double d = v->u.num;
    if (d != d)
      return 0x7ff8;     /* every NaN */
    if (d == 0)
      d = 0.0;           /* +0 and -0 */
    return hash_bytes(&d, sizeof d);
  }
  case LMZ_T_STRING:
  case LMZ_T_BIGINT:
    return hash_bytes(v->u.str.p, v->u.str.len) + v->type;
  case LMZ_T_BOOL:
    return mix64(v->type * 2u + v->u.b);
  case LMZ_T_UNDEFINED:
  case LMZ_T_NULL:
  case LMZ_T_HOLE:
    return mix64(v->type);
  default:
    return mix64((uint64_t)(uintptr_t)v ^ (uint64_t)(uintptr_t)&hash_anchor);
  }
}

/* ECMA-262 SameValueZero: NaN equals NaN, +0 equals -0, primitives by value,
 * objects by identity. */
static bool same_value_zero(const lmz_value *a, const lmz_value *b) {
  if (a == b)
    return true;
  if (a->type != b->type)
    return false;
  switch (a->type) {
  case LMZ_T_NUMBER:
    return a->u.num == b->u.num || (a->u.num != a->u.num && b->u.num != b->u.num);
  case LMZ_T_STRING:
  case LMZ_T_BIGINT:
    return a->u.str.len == b->u.str.len &&
           memcmp(a->u.str.p, b->u.str.p, a->u.str.len) == 0;
  case LMZ_T_BOOL:
    return a->u.b == b->u.b;
  case LMZ_T_UNDEFINED:
  case LMZ_T_NULL:
  case LMZ_T_HOLE:
    return true;
  default:
    return false;
  }
}

/* A lookup key: property bytes (objects, errors) or a value (maps, sets). */
struct key {
  const char *s;
  size_t len;
  const lmz_value *v;
};

static struct lmz__hidx **hidx_ref(lmz_value *c) {
  return c->type == LMZ_T_ERROR ? &c->u.err.hidx : &c->u.hidx;
}

static struct key entry_key(const lmz_value *c, uint32_t i) {
  switch (c->type) {
  case LMZ_T_OBJECT:
    return (struct key){c->u.props[i].key, c->u.props[i].klen, NULL};
  case LMZ_T_ERROR:
    return (struct key){c->u.err.props[i].key, c->u.err.props[i].klen, NULL};
  case LMZ_T_MAP:
    return (struct key){NULL, 0, c->u.ents[i].k};
  default: /* set */
    return (struct key){NULL, 0, c->u.items[i]};
  }
}

static uint32_t key_hash(const struct key *k) {
  return (uint32_t)(k->v ? hash_value(k->v) : hash_bytes(k->s, k->len));
}

static bool key_eq(const struct key *a, const struct key *b) {
  if (a->v)
    return same_value_zero(a->v, b->v);
  /* keys are short: compare the length and the first byte before paying
   * for a memcmp call */
  return a->len == b->len &&
         (a->len == 0 || (a->s[0] == b->s[0] && memcmp(a->s, b->s, a->len) == 0));
}

static void hidx_insert(struct lmz__hidx *h, uint32_t idx, uint32_t hash) {
  uint32_t i = hash & h->mask;
  while (h->slot[i].idx1)
    i = (i + 1) & h->mask;
  h->slot[i].idx1 = idx + 1;
  h->slot[i].hash = hash;
}

/* Brings the index of `c` up to date with its n entries (building or growing
 * it). NULL on out of memory. */
static struct lmz__hidx *hidx_sync(lmz_value *c) {
  struct lmz__hidx **ref = hidx_ref(c), *h = *ref;
  uint32_t have = h ? h->count : 0;
  if (h && h->count == c->n)
    return h;
  if (!h || (uint64_t)c->n * 2 > (uint64_t)h->mask + 1) {
    uint64_t slots = 64;
    while (slots < (uint64_t)c->n * 2)
      slots *= 2;
    struct lmz__hidx *nh =
        lmz_arena_alloc(c->arena, sizeof(*nh) + slots * sizeof(nh->slot[0]));
    if (!nh)
      return NULL;
    nh->mask = (uint32_t)(slots - 1);
    memset(nh->slot, 0, slots * sizeof(nh->slot[0]));
    for (uint32_t i = 0; h && i <= h->mask; i++)
      if (h->slot[i].idx1)
        hidx_insert(nh, h->slot[i].idx1 - 1, h->slot[i].hash);
    *ref = h = nh;
  }
  for (uint32_t i = have; i < c->n; i++) {
    struct key k = entry_key(c, i);
    hidx_insert(h, i, key_hash(&k));
  }
  h->count = c->n;
  return h;
}

/* Index of the entry whose key equals `k`, or -1. */
static int64_t find_key(const lmz_value *cc, const struct key *k) {
  lmz_value *c = (lmz_value *)cc; /* the index is a cache: logically const */
  struct lmz__hidx *h = c->n > HIDX_MIN && c->arena ? hidx_sync(c) : NULL;
  if (!h) {
    for (uint32_t i = 0; i < c->n; i++) {
      struct key e = entry_key(c, i);
      if (key_eq(k, &e))
        return i;
    }
    return -1;
  }
  uint32_t hash = key_hash(k);
  for (uint32_t i = hash & h->mask; h->slot[i].idx1; i = (i + 1) & h->mask) {
    if (h->slot[i].hash != hash)
      continue;
    struct key e = entry_key(c, h->slot[i].idx1 - 1);
    if (key_eq(k, &e))
      return h->slot[i].idx1 - 1;
  }
  return -1;
}

uint32_t lmz__value_index_max_probe(const lmz_value *c) {
  const struct lmz__hidx *h =
      c->type == LMZ_T_ERROR ? c->u.err.hidx : c->u.hidx;
  uint32_t worst = 0;
  for (uint32_t i = 0; h && i <= h->mask; i++) {
    if (!h->slot[i].idx1)
      continue;
    uint32_t probes = ((i - h->slot[i].hash) & h->mask) + 1;
    if (probes > worst)
      worst = probes;
  }
  return worst;
}

/* ---- node allocation and growth -------------------------------------------- */

static lmz_value *node_new(lmz_arena *a, lmz_type t, size_t extra) {
  if (!a || extra > SIZE_MAX - sizeof(lmz_value))
    return NULL;
  lmz_value *v = lmz_arena_alloc(a, sizeof(*v) + extra);
  if (!v)
    return NULL;
  memset(v, 0, sizeof(*v));
  v->type = (uint8_t)t;
  v->arena = a;
  return v;
}

static bool is_growable(const lmz_value *v) {
  switch (v->type) {
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
  case LMZ_T_OBJECT:
  case LMZ_T_HEADERS:
  case LMZ_T_MAP:
  case LMZ_T_ERROR:
    return true;
  default:
    return false;
  }
}

static size_t entry_size(const lmz_value *v) {
  switch (v->type) {
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    return sizeof(lmz_value *);
  case LMZ_T_MAP:
    return sizeof(struct lmz_entry);
  default:
    return sizeof(struct lmz_prop);
  }
}

static void *entries(const lmz_value *v) {
  switch (v->type) {
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    return v->u.items;
  case LMZ_T_MAP:
    return v->u.ents;
  case LMZ_T_ERROR:
    return v->u.err.props;
  default:
    return v->u.props;
  }
}

static void set_entries(lmz_value *v, void *p) {
  switch (v->type) {
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    v->u.items = p;
    break;
  case LMZ_T_MAP:
    v->u.ents = p;
    break;
  case LMZ_T_ERROR:
    v->u.err.props = p;
    break;
  default:
    v->u.props = p;
    break;
  }
}

/* Capacity for `need` entries; doubling, the old block stays in the arena. */
static int reserve(lmz_value *v, size_t need, bool exact) {
  if (need <= v->cap)
    return 0;
  if (need > UINT32_MAX || !v->arena)
    return LMZ_EINVAL;
  size_t cap = exact ? need : (size_t)v->cap * 2;
  if (cap < need)
    cap = need;
  if (!exact && cap < 4)
    cap = 4;
  if (cap > UINT32_MAX)
    cap = UINT32_MAX;
  size_t esz = entry_size(v);
  if (cap > SIZE_MAX / esz)
    return LMZ_ENOMEM;
  void *p = lmz_arena_alloc(v->arena, cap * esz);
  if (!p)
    return LMZ_ENOMEM;
  if (v->n)
    memcpy(p, entries(v), (size_t)v->n * esz);
  set_entries(v, p);
  v->cap = (uint32_t)cap;
  return 0;
}

int lmz__value_reserve(lmz_value *v, size_t n) {
  if (!v || !is_growable(v))
    return LMZ_EINVAL;
  return reserve(v, n, true);
}

/* ---- primitives ------------------------------------------------------------ */

lmz_value *lmz_number(lmz_arena *a, double d) {
  lmz_value *v = node_new(a, LMZ_T_NUMBER, 0);
  if (v)
    v->u.num = d;
  return v;
}

static lmz_value *str_node(lmz_arena *a, lmz_type t, const char *s,
                           size_t len) {
  if (len == SIZE_MAX || (!s && len))
    return NULL;
  lmz_value *v = node_new(a, t, len + 1);
  if (!v)
    return NULL;
  v->u.str.p = (char *)(v + 1);
  if (len)
    memcpy(v->u.str.p, s, len);
  v->u.str.p[len] = 0;
  v->u.str.len = len;
  return v;
}

lmz_value *lmz_string(lmz_arena *a, const char *s, size_t len) {
  return str_node(a, LMZ_T_STRING, s, len);
}

lmz_value *lmz_cstring(lmz_arena *a, const char *s) {
  return s ? str_node(a, LMZ_T_STRING, s, strlen(s)) : NULL;
}

lmz_value *lmz_bigint(lmz_arena *a, const char *dec, size_t len) {
  if (!dec)
    return NULL;
  bool neg = len > 0 && dec[0] == '-';
  size_t i = neg;
  if (i == len)
    return NULL; /* "" or "-" */
  for (size_t j = i; j < len; j++)
    if (dec[j] < '0' || dec[j] > '9')
      return NULL;
  while (i + 1 < len && dec[i] == '0')
    i++;
  if (dec[i] == '0') /* the value zero: "0", "-000" */
    return str_node(a, LMZ_T_BIGINT, "0", 1);
  if (!neg)
    return str_node(a, LMZ_T_BIGINT, dec + i, len - i);
  lmz_value *v = str_node(a, LMZ_T_BIGINT, dec + i - 1, len - i + 1);
  if (v)
    v->u.str.p[0] = '-';
  return v;
}

/* ---- objects without entries ----------------------------------------------- */

lmz_value *lmz_date(lmz_arena *a, double ms) {
  lmz_value *v = node_new(a, LMZ_T_DATE, 0);
  if (v)
    v->u.num = ms;
  return v;
}

lmz_value *lmz_regexp(lmz_arena *a, const char *source, size_t source_len,
                      const char *flags, size_t flags_len) {
  if ((!source && source_len) || (!flags && flags_len) ||
      source_len >= UINT32_MAX || flags_len >= UINT32_MAX)
    return NULL;
  lmz_value *v = node_new(a, LMZ_T_REGEXP, source_len + flags_len + 2);
  if (!v)
    return NULL;
  char *p = (char *)(v + 1);
  v->u.re.src = p;
  if (source_len)
    memcpy(p, source, source_len);
  p[source_len] = 0;
  v->u.re.flags = p + source_len + 1;
  if (flags_len)
    memcpy(v->u.re.flags, flags, flags_len);
  v->u.re.flags[flags_len] = 0;
  v->u.re.src_len = (uint32_t)source_len;
  v->u.re.flags_len = (uint32_t)flags_len;
  return v;
}

lmz_value *lmz_url(lmz_arena *a, const char *href, size_t len) {
  return str_node(a, LMZ_T_URL, href, len);
}

lmz_value *lmz_arraybuffer(lmz_arena *a, const void *bytes, size_t len) {
  lmz_value *v = node_new(a, LMZ_T_ARRAYBUFFER, len);
  if (!v)
    return NULL;
  v->u.ab.bytes = (uint8_t *)(v + 1);
  v->u.ab.len = len;
  if (bytes && len)
    memcpy(v->u.ab.bytes, bytes, len);
  else if (len)
    memset(v->u.ab.bytes, 0, len);
  return v;
}

lmz_value *lmz_view(lmz_arena *a, lmz_view_kind kind, lmz_value *buffer,
                    size_t byte_offset, size_t length) {
  if ((unsigned)kind >= LMZ_VIEW__COUNT || !buffer ||
      buffer->type != LMZ_T_ARRAYBUFFER)
    return NULL;
  size_t esz = view_sizes[kind], blen = buffer->u.ab.len;
  if (byte_offset % esz || byte_offset > blen ||
      length > (blen - byte_offset) / esz)
    return NULL;
  lmz_value *v = node_new(a, LMZ_T_VIEW, 0);
  if (!v)
    return NULL;
  v->sub = (uint8_t)kind;
  v->u.view.buffer = buffer;
  v->u.view.byte_offset = byte_offset;
  v->u.view.length = length;
  return v;
}

lmz_value *lmz_boxed(lmz_arena *a, lmz_value *prim) {
  if (!prim)
    return NULL;
  lmz_boxed_kind k;
  switch (prim->type) {
  case LMZ_T_BOOL:
    k = LMZ_BOXED_BOOLEAN;
    break;
  case LMZ_T_NUMBER:
    k = LMZ_BOXED_NUMBER;
    break;
  case LMZ_T_STRING:
    k = LMZ_BOXED_STRING;
    break;
  case LMZ_T_BIGINT:
    k = LMZ_BOXED_BIGINT;
    break;
  default:
    return NULL;
  }
  lmz_value *v = node_new(a, LMZ_T_BOXED, 0);
  if (!v)
    return NULL;
  v->sub = (uint8_t)k;
  v->u.boxed = prim;
  return v;
}

/* ---- containers ------------------------------------------------------------- */

lmz_value *lmz_array(lmz_arena *a, size_t capacity_hint) {
  lmz_value *v = node_new(a, LMZ_T_ARRAY, 0);
  if (v && capacity_hint && reserve(v, capacity_hint, true))
    return NULL;
  return v;
}

int lmz_array_push(lmz_value *arr, lmz_value *v) {
  if (!arr || arr->type != LMZ_T_ARRAY || !v)
    return LMZ_EINVAL;
  if (arr->n == arr->cap) {
    int rv = reserve(arr, (size_t)arr->n + 1, false);
    if (rv)
      return rv;
  }
  arr->u.items[arr->n++] = v;
  return 0;
}

int lmz_array_set(lmz_value *arr, size_t idx, lmz_value *v) {
  if (!arr || arr->type != LMZ_T_ARRAY || !v || idx >= UINT32_MAX)
    return LMZ_EINVAL;
  if (idx >= arr->n) {
    int rv = reserve(arr, idx + 1, false);
    if (rv)
      return rv;
    while (arr->n < idx)
      arr->u.items[arr->n++] = &s_hole;
    arr->n++;
  }
  arr->u.items[idx] = v;
  return 0;
}

lmz_value *lmz_object(lmz_arena *a) { return node_new(a, LMZ_T_OBJECT, 0); }

static struct lmz_prop *props_of(lmz_value *o) {
  return o->type == LMZ_T_ERROR ? o->u.err.props : o->u.props;
}

/* Appends a new property (the caller checked the key is absent). */
static int prop_append(lmz_value *o, const char *key, size_t klen,
                       lmz_value *v) {
  if (o->n == o->cap) {
    int rv = reserve(o, (size_t)o->n + 1, false);
    if (rv)
      return rv;
  }
  char *k = lmz_arena_strndup(o->arena, key, klen);
  if (!k)
    return LMZ_ENOMEM;
  struct lmz_prop *p = &props_of(o)[o->n++];
  p->key = k;
  p->klen = (uint32_t)klen;
  p->v = v;
  return 0;
}

static bool keyed_ok(const lmz_value *o, const char *key, size_t klen,
                     const lmz_value *v) {
  return o && (o->type == LMZ_T_OBJECT || o->type == LMZ_T_ERROR) &&
         (key || !klen) && klen < UINT32_MAX && v && v->type != LMZ_T_HOLE;
}

int lmz__object_add(lmz_value *obj, const char *key, size_t klen,
                    lmz_value *v) {
  if (!keyed_ok(obj, key, klen, v))
    return LMZ_EINVAL;
  struct key k = {key ? key : "", klen, NULL};
  if (find_key(obj, &k) >= 0)
    return LMZ_EEXIST;
  return prop_append(obj, k.s, klen, v);
}

static int prop_set(lmz_value *obj, const char *key, size_t klen,
                    lmz_value *v) {
  if (!keyed_ok(obj, key, klen, v))
    return LMZ_EINVAL;
  struct key k = {key ? key : "", klen, NULL};
  int64_t i = find_key(obj, &k);
  if (i >= 0) {
    props_of(obj)[i].v = v; /* JS keeps the position of an existing key */
    return 0;
  }
  return prop_append(obj, k.s, klen, v);
}

int lmz_object_set(lmz_value *obj, const char *key, size_t klen,
                   lmz_value *v) {
  if (!obj || obj->type != LMZ_T_OBJECT)
    return LMZ_EINVAL;
  return prop_set(obj, key, klen, v);
}

int lmz_object_setc(lmz_value *obj, const char *key, lmz_value *v) {
  return key ? lmz_object_set(obj, key, strlen(key), v) : LMZ_EINVAL;
}

lmz_value *lmz_map(lmz_arena *a) { return node_new(a, LMZ_T_MAP, 0); }
lmz_value *lmz_set(lmz_arena *a) { return node_new(a, LMZ_T_SET, 0); }

/* Map.prototype.set / Set.prototype.add store -0 as +0 (ECMA-262 24.1.3.9). */
static lmz_value *norm_key(lmz_value *k) {
  if (k->type == LMZ_T_NUMBER && k->u.num == 0 && signbit(k->u.num))
    return &s_small[0];
  return k;
}

static int map_put(lmz_value *map, lmz_value *key, lmz_value *v, bool replace) {
  if (!map || map->type != LMZ_T_MAP || !key || !v ||
      key->type == LMZ_T_HOLE || v->type == LMZ_T_HOLE)
    return LMZ_EINVAL;
  key = norm_key(key);
  struct key k = {NULL, 0, key};
  int64_t i = find_key(map, &k);
  if (i >= 0) {
    if (!replace)
      return LMZ_EEXIST;
    map->u.ents[i].v = v;
    return 0;
  }
  if (map->n == map->cap) {
    int rv = reserve(map, (size_t)map->n + 1, false);
    if (rv)
      return rv;
  }
  map->u.ents[map->n++] = (struct lmz_entry){key, v};
  return 0;
}

int lmz_map_set(lmz_value *map, lmz_value *key, lmz_value *v) {
  return map_put(map, key, v, true);
}

int lmz__map_add(lmz_value *map, lmz_value *key, lmz_value *v) {
  return map_put(map, key, v, false);
}

int lmz__set_add_new(lmz_value *set, lmz_value *v) {
  if (!set || set->type != LMZ_T_SET || !v || v->type == LMZ_T_HOLE)
    return LMZ_EINVAL;
  v = norm_key(v);
  struct key k = {NULL, 0, v};
  if (find_key(set, &k) >= 0)
    return LMZ_EEXIST;
  if (set->n == set->cap) {
    int rv = reserve(set, (size_t)set->n + 1, false);
    if (rv)
      return rv;
  }
  set->u.items[set->n++] = v;
  return 0;
}

int lmz_set_add(lmz_value *set, lmz_value *v) {
  int rv = lmz__set_add_new(set, v);
  return rv == LMZ_EEXIST ? 0 : rv;
}

lmz_value *lmz_headers(lmz_arena *a) { return node_new(a, LMZ_T_HEADERS, 0); }

int lmz_headers_append(lmz_value *h, const char *name, size_t name_len,
                       const char *value, size_t value_len) {
  if (!h || h->type != LMZ_T_HEADERS || (!name && name_len) ||
      (!value && value_len) || name_len >= UINT32_MAX)
    return LMZ_EINVAL;
  if (h->n == h->cap) {
    int rv = reserve(h, (size_t)h->n + 1, false);
    if (rv)
      return rv;
  }
  lmz_value *sv = lmz_string(h->arena, value, value_len);
  char *k = lmz_arena_strndup(h->arena, name ? name : "", name_len);
  if (!sv || !k)
    return LMZ_ENOMEM;
  h->u.props[h->n++] = (struct lmz_prop){k, (uint32_t)name_len, sv};
  return 0;
}

/* ---- errors ----------------------------------------------------------------- */

lmz_value *lmz_error_n(lmz_arena *a, const char *name, size_t name_len,
                       const char *message, size_t message_len) {
  lmz_value *v = node_new(a, LMZ_T_ERROR, 0);
  if (!v)
    return NULL;
  v->u.err.name = name ? lmz_string(a, name, name_len) : lmz_cstring(a, "Error");
  v->u.err.message = lmz_string(a, message ? message : "", message ? message_len : 0);
  if (!v->u.err.name || !v->u.err.message)
    return NULL;
  return v;
}

lmz_value *lmz_error(lmz_arena *a, const char *name, const char *message) {
  return lmz_error_n(a, name, name ? strlen(name) : 0, message,
                     message ? strlen(message) : 0);
}

int lmz_error_set_stack(lmz_value *err, const char *stack, size_t len) {
  if (!err || err->type != LMZ_T_ERROR)
    return LMZ_EINVAL;
  if (!stack) {
    err->u.err.stack = NULL;
    return 0;
  }
  lmz_value *s = lmz_string(err->arena, stack, len);
  if (!s)
    return LMZ_ENOMEM;
  err->u.err.stack = s;
  return 0;
}

int lmz_error_set_cause(lmz_value *err, lmz_value *cause) {
  if (!err || err->type != LMZ_T_ERROR ||
      (cause && cause->type == LMZ_T_HOLE))
    return LMZ_EINVAL;
  err->u.err.cause = cause;
  return 0;
}

int lmz_error_set_prop(lmz_value *err, const char *key, size_t klen,
                       lmz_value *v) {
  if (!err || err->type != LMZ_T_ERROR)
    return LMZ_EINVAL;
  return prop_set(err, key, klen, v);
}

/* ---- inspection -------------------------------------------------------------- */

bool lmz_get_bool(const lmz_value *v) {
  if (v && v->type == LMZ_T_BOXED && v->sub == LMZ_BOXED_BOOLEAN)
    v = v->u.boxed;
  return v && v->type == LMZ_T_BOOL && v->u.b;
}

double lmz_get_number(const lmz_value *v) {
  if (v && v->type == LMZ_T_BOXED && v->sub == LMZ_BOXED_NUMBER)
    v = v->u.boxed;
  if (v && (v->type == LMZ_T_NUMBER || v->type == LMZ_T_DATE))
    return v->u.num;
  return 0;
}

const char *lmz_get_str(const lmz_value *v, size_t *len) {
  if (v && v->type == LMZ_T_BOXED &&
      (v->sub == LMZ_BOXED_STRING || v->sub == LMZ_BOXED_BIGINT))
    v = v->u.boxed;
  if (v && (v->type == LMZ_T_STRING || v->type == LMZ_T_BIGINT ||
            v->type == LMZ_T_URL)) {
    if (len)
      *len = v->u.str.len;
    return v->u.str.p;
  }
  if (v && v->type == LMZ_T_REGEXP) {
    if (len)
      *len = v->u.re.src_len;
    return v->u.re.src;
  }
  if (len)
    *len = 0;
  return NULL;
}

const char *lmz_regexp_flags(const lmz_value *v, size_t *len) {
  bool ok = v && v->type == LMZ_T_REGEXP;
  if (len)
    *len = ok ? v->u.re.flags_len : 0;
  return ok ? v->u.re.flags : NULL;
}

size_t lmz_len(const lmz_value *v) {
  if (!v)
    return 0;
  if (is_growable(v))
    return v->n;
  if (v->type == LMZ_T_ARRAYBUFFER)
    return v->u.ab.len;
  if (v->type == LMZ_T_VIEW)
    return v->u.view.length;
  return 0;
}

lmz_value *lmz_array_get(const lmz_value *arr, size_t idx) {
  if (!arr || arr->type != LMZ_T_ARRAY || idx >= arr->n)
    return NULL;
  return arr->u.items[idx];
}

lmz_value *lmz_object_get(const lmz_value *obj, const char *key, size_t klen) {
  if (!obj || (obj->type != LMZ_T_OBJECT && obj->type != LMZ_T_ERROR) ||
      (!key && klen))
    return NULL;
  struct key k = {key ? key : "", klen, NULL};
  int64_t i = find_key(obj, &k);
  return i < 0 ? NULL : props_of((lmz_value *)obj)[i].v;
}

lmz_value *lmz_object_getc(const lmz_value *obj, const char *key) {
  return key ? lmz_object_get(obj, key, strlen(key)) : NULL;
}

static const struct lmz_prop *prop_at(const lmz_value *o, size_t i) {
  if (!o || i >= o->n)
    return NULL;
  if (o->type == LMZ_T_OBJECT || o->type == LMZ_T_HEADERS)
    return &o->u.props[i];
  if (o->type == LMZ_T_ERROR)
    return &o->u.err.props[i];
  return NULL;
}

const char *lmz_object_key(const lmz_value *obj, size_t i, size_t *klen) {
  const struct lmz_prop *p =
      obj && obj->type != LMZ_T_HEADERS ? prop_at(obj, i) : NULL;
  if (klen)
    *klen = p ? p->klen : 0;
  return p ? p->key : NULL;
}

lmz_value *lmz_object_val(const lmz_value *obj, size_t i) {
  const struct lmz_prop *p =
      obj && obj->type != LMZ_T_HEADERS ? prop_at(obj, i) : NULL;
  return p ? p->v : NULL;
}

lmz_value *lmz_map_get(const lmz_value *map, const lmz_value *key) {
  if (!map || map->type != LMZ_T_MAP || !key)
    return NULL;
  struct key k = {NULL, 0, key};
  int64_t i = find_key(map, &k);
  return i < 0 ? NULL : map->u.ents[i].v;
}

lmz_value *lmz_map_key(const lmz_value *map, size_t i) {
  return map && map->type == LMZ_T_MAP && i < map->n ? map->u.ents[i].k : NULL;
}

lmz_value *lmz_map_val(const lmz_value *map, size_t i) {
  return map && map->type == LMZ_T_MAP && i < map->n ? map->u.ents[i].v : NULL;
}

lmz_value *lmz_set_item(const lmz_value *set, size_t i) {
  return set && set->type == LMZ_T_SET && i < set->n ? set->u.items[i] : NULL;
}

bool lmz_set_has(const lmz_value *set, const lmz_value *v) {
  if (!set || set->type != LMZ_T_SET || !v)
    return false;
  struct key k = {NULL, 0, v};
  return find_key(set, &k) >= 0;
}

const char *lmz_headers_name(const lmz_value *h, size_t i, size_t *len) {
  const struct lmz_prop *p =
      h && h->type == LMZ_T_HEADERS ? prop_at(h, i) : NULL;
  if (len)
    *len = p ? p->klen : 0;
  return p ? p->key : NULL;
}

const char *lmz_headers_value(const lmz_value *h, size_t i, size_t *len) {
  const struct lmz_prop *p =
      h && h->type == LMZ_T_HEADERS ? prop_at(h, i) : NULL;
  if (len)
    *len = p ? p->v->u.str.len : 0;
  return p ? p->v->u.str.p : NULL;
}

uint8_t *lmz_arraybuffer_data(const lmz_value *ab) {
  return ab && ab->type == LMZ_T_ARRAYBUFFER ? ab->u.ab.bytes : NULL;
}

lmz_view_kind lmz_view_get_kind(const lmz_value *view) {
  return view && view->type == LMZ_T_VIEW ? (lmz_view_kind)view->sub
                                          : LMZ_VIEW_INT8;
}

lmz_value *lmz_view_buffer(const lmz_value *view) {
  return view && view->type == LMZ_T_VIEW ? view->u.view.buffer : NULL;
}

size_t lmz_view_byte_offset(const lmz_value *view) {
  return view && view->type == LMZ_T_VIEW ? view->u.view.byte_offset : 0;
}

size_t lmz_view_byte_length(const lmz_value *view) {
  if (!view || view->type != LMZ_T_VIEW)
    return 0;
  return view->u.view.length * view_sizes[view->sub];
}

lmz_boxed_kind lmz_boxed_get_kind(const lmz_value *b) {
  return b && b->type == LMZ_T_BOXED ? (lmz_boxed_kind)b->sub
                                     : LMZ_BOXED_BOOLEAN;
}

lmz_value *lmz_boxed_value(const lmz_value *b) {
  return b && b->type == LMZ_T_BOXED ? b->u.boxed : NULL;
}

const char *lmz_error_name(const lmz_value *err) {
  return err && err->type == LMZ_T_ERROR ? err->u.err.name->u.str.p : NULL;
}

const char *lmz_error_message(const lmz_value *err) {
  return err && err->type == LMZ_T_ERROR ? err->u.err.message->u.str.p : NULL;
}

const char *lmz_error_stack(const lmz_value *err) {
  if (!err || err->type != LMZ_T_ERROR || !err->u.err.stack)
    return NULL;
  return err->u.err.stack->u.str.p;
}

lmz_value *lmz_error_cause(const lmz_value *err) {
  return err && err->type == LMZ_T_ERROR ? err->u.err.cause : NULL;
}

lmz_value *lmz_error_prop(const lmz_value *err, const char *key) {
  if (!err || err->type != LMZ_T_ERROR)
    return NULL;
  return lmz_object_getc(err, key);
}
