/* core/value_equal.c - whole-graph operations: identity-aware deep equality
 * and deep copy.
 *
 * Both walk the graph with an explicit work stack (no recursion), so any
 * depth is fine, and both keep pointer maps (open addressing, malloc'd
 * scratch freed before returning) for identity-bearing nodes:
 *  - equality keeps a bijection a-node <-> b-node: the first time two
 *    identity nodes are paired they are recorded in both directions; any later
 *    pairing must agree with the record, which is exactly "same sharing
 *    pattern". Primitives compare by value and are never recorded.
 *  - copy keeps old-node -> new-node; a node is registered before its children
 *    are copied, so cycles close onto the copy under construction.
 *
 * Failure modes:
 *  1. malloc of the scratch fails -> equal returns false, copy returns NULL.
 *  2. The destination arena is exhausted (copy) -> NULL; what was copied so
 *     far stays in the arena until it is freed.
 *  3. Malformed nodes (a NULL error name, an unknown type) -> not equal / NULL
 *     rather than a crash. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/value_int.h"

/* ---- pointer map ------------------------------------------------------------ */

struct pmap {
  const void **keys;
  void **vals;
  size_t mask; /* slots - 1 */
  size_t count;
};

static inline size_t ptr_hash(const void *p) {
  uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
  return (size_t)(h ^ (h >> 29));
}

static int pmap_init(struct pmap *m) {
  m->mask = 63;
  m->count = 0;
  m->keys = calloc(m->mask + 1, sizeof(*m->keys));
  m->vals = malloc((m->mask + 1) * sizeof(*m->vals));
  return m->keys && m->vals ? 0 : LMZ_ENOMEM;
}

static void pmap_free(struct pmap *m) {
  free(m->keys);
  free(m->vals);
}

static void *pmap_get(const struct pmap *m, const void *k) {
  for (size_t i = ptr_hash(k) & m->mask; m->keys[i]; i = (i + 1) & m->mask)
    if (m->keys[i] == k)
      return m->vals[i];
  return NULL;
}

static void pmap_insert_raw(struct pmap *m, const void *k, void *v) {
  size_t i = ptr_hash(k) & m->mask;
  while (m->keys[i])
    i = (i + 1) & m->mask;
  m->keys[i] = k;
  m->vals[i] = v;
  m->count++;
}

/* Inserts a key known to be absent. */
static int pmap_put(struct pmap *m, const void *k, void *v) {
  if ((m->count + 1) * 2 > m->mask + 1) {
    struct pmap g = {NULL, NULL, m->mask * 2 + 1, 0};
    g.keys = calloc(g.mask + 1, sizeof(*g.keys));
    g.vals = malloc((g.mask + 1) * sizeof(*g.vals));
    if (!g.keys || !g.vals) {
      pmap_free(&g);
      return LMZ_ENOMEM;
    }
    for (size_t i = 0; i <= m->mask; i++)
      if (m->keys[i])
        pmap_insert_raw(&g, m->keys[i], m->vals[i]);
    pmap_free(m);
    *m = g;
  }
  pmap_insert_raw(m, k, v);
  return 0;
}

/* ---- work stack ---------------------------------------------------------------- */

struct wstack {
  const lmz_value **p; /* pairs for equality, single nodes for copy */
  size_t n, cap;
};

static int ws_push(struct wstack *s, const lmz_value *v) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    const lmz_value **p = realloc(s->p, cap * sizeof(*p));
    if (!p)
      return LMZ_ENOMEM;
    s->p = p;
    s->cap = cap;
  }
  s->p[s->n++] = v;
  return 0;
}

/* ---- equality ------------------------------------------------------------------ */

struct eq {
  struct pmap ab, ba;
  struct wstack st;
  bool oom;
};

static bool bytes_eq(const void *a, size_t al, const void *b, size_t bl) {
  return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* ECMA-262 SameValue on doubles: NaN equals NaN, -0 differs from +0. */
static bool same_value(double a, double b) {
  if (a != a || b != b)
    return a != a && b != b;
  return memcmp(&a, &b, sizeof a) == 0;
}

static bool prim_eq(const lmz_value *a, const lmz_value *b) {
  switch (a->type) {
  case LMZ_T_BOOL:
    return a->u.b == b->u.b;
  case LMZ_T_NUMBER:
    return same_value(a->u.num, b->u.num);
  case LMZ_T_BIGINT:
  case LMZ_T_STRING:
    return bytes_eq(a->u.str.p, a->u.str.len, b->u.str.p, b->u.str.len);
  default: /* undefined, null, hole */
    return true;
  }
}

static bool str_eq(const lmz_value *a, const lmz_value *b) {
  if (!a || !b)
    return a == b;
  return a->type == b->type && prim_eq(a, b);
}

/* Queues the pair (a, b); primitives are compared right away. */
static bool eq_push(struct eq *e, const lmz_value *a, const lmz_value *b) {
  if (!a || !b)
    return a == b;
  if (a->type != b->type)
    return false;
  if (!lmz_type_has_identity((lmz_type)a->type))
    return prim_eq(a, b);
  if (ws_push(&e->st, a) || ws_push(&e->st, b)) {
    e->oom = true;
    return false;
  }
  return true;
}

static bool props_eq(struct eq *e, const struct lmz_prop *pa,
                     const struct lmz_prop *pb, uint32_t n) {
  for (uint32_t i = 0; i < n; i++)
    if (!bytes_eq(pa[i].key, pa[i].klen, pb[i].key, pb[i].klen) ||
        !eq_push(e, pa[i].v, pb[i].v))
      return false;
  return true;
}

static bool error_eq(struct eq *e, const lmz_value *a, const lmz_value *b) {
  return str_eq(a->u.err.name, b->u.err.name) &&
         str_eq(a->u.err.message, b->u.err.message) &&
         str_eq(a->u.err.stack, b->u.err.stack) &&
         eq_push(e, a->u.err.cause, b->u.err.cause) &&
         props_eq(e, a->u.err.props, b->u.err.props, a->n);
}

/* Compares the contents of two identity nodes already paired; children that
 * are objects are queued. */
static bool node_eq(struct eq *e, const lmz_value *a, const lmz_value *b) {
  if (a->sub != b->sub || a->n != b->n)
    return false;
  switch (a->type) {
  case LMZ_T_DATE:
    return same_value(a->u.num, b->u.num);
  case LMZ_T_REGEXP:
    return bytes_eq(a->u.re.src, a->u.re.src_len, b->u.re.src, b->u.re.src_len) &&
           bytes_eq(a->u.re.flags, a->u.re.flags_len, b->u.re.flags,
                    b->u.re.flags_len);
  case LMZ_T_URL:
    return bytes_eq(a->u.str.p, a->u.str.len, b->u.str.p, b->u.str.len);
  case LMZ_T_ARRAYBUFFER:
    return bytes_eq(a->u.ab.bytes, a->u.ab.len, b->u.ab.bytes, b->u.ab.len);
  case LMZ_T_VIEW:
    return a->u.view.byte_offset == b->u.view.byte_offset &&
           a->u.view.length == b->u.view.length &&
           eq_push(e, a->u.view.buffer, b->u.view.buffer);
  case LMZ_T_BOXED:
    return eq_push(e, a->u.boxed, b->u.boxed);
  case LMZ_T_HEADERS:
  case LMZ_T_OBJECT:
    return props_eq(e, a->u.props, b->u.props, a->n);
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    for (uint32_t i = 0; i < a->n; i++)
      if (!eq_push(e, a->u.items[i], b->u.items[i]))
        return false;
    return true;
  case LMZ_T_MAP:
    for (uint32_t i = 0; i < a->n; i++)
      if (!eq_push(e, a->u.ents[i].k, b->u.ents[i].k) ||
          !eq_push(e, a->u.ents[i].v, b->u.ents[i].v))
        return false;
    return true;
  case LMZ_T_ERROR:
    return error_eq(e, a, b);
  default:
    return false;
  }
}

/* One queued pair of identity nodes of the same type. */
static bool pair_eq(struct eq *e, const lmz_value *a, const lmz_value *b) {
  const lmz_value *seen = pmap_get(&e->ab, a);
  if (seen)
    return seen == b; /* ba[b] == a follows: pairs are recorded together */
  if (pmap_get(&e->ba, b))
    return false; /* b already stands for another node of a */
  if (pmap_put(&e->ab, a, (void *)b) || pmap_put(&e->ba, b, (void *)a)) {
    e->oom = true;
    return false;
  }
  return node_eq(e, a, b);
}

bool lmz_value_equal(const lmz_value *a, const lmz_value *b) {
  struct eq e = {.oom = false};
  if (!a || !b)
    return a == b;
  if (pmap_init(&e.ab) || pmap_init(&e.ba)) {
    pmap_free(&e.ab);
    pmap_free(&e.ba);
    return false;
  }
  bool ok = eq_push(&e, a, b);
  while (ok && e.st.n) {
    const lmz_value *y = e.st.p[--e.st.n];
    const lmz_value *x = e.st.p[--e.st.n];
    ok = pair_eq(&e, x, y);
  }
  pmap_free(&e.ab);
  pmap_free(&e.ba);
  free(e.st.p);
  return ok && !e.oom;
}

/* ---- copy ------------------------------------------------------------------------ */

/* Copy state. Identity nodes of the source are tagged with this copy's epoch
 * and their index in `news` (the encoders' scratch fields, value_int.h), so
 * "already copied?" costs one compare and small graphs need no malloc at all
 * (inline arrays; the heap only past COPY_INLINE nodes). */
#define COPY_INLINE 32
struct cp {
  lmz_arena *dst;
  uint32_t epoch;
  lmz_value **news;        /* copy of the identity node with mark_id i+1 */
  const lmz_value **todo;  /* source nodes whose copies still need children */
  uint32_t n_news, cap_news, n_todo, cap_todo;
  bool oom;
  lmz_value *news_inl[COPY_INLINE];
  const lmz_value *todo_inl[COPY_INLINE];
};

/* Grows an inline-backed pointer array; false on out of memory. */
static bool cp_grow(void ***arr, uint32_t *cap, void **inl) {
  uint32_t ncap = *cap * 2;
  void **p = *arr == inl ? malloc(ncap * sizeof *p)
                         : realloc(*arr, ncap * sizeof *p);
  if (!p)
    return false;
  if (*arr == inl)
    memcpy(p, inl, *cap * sizeof *p);
  *arr = p;
  *cap = ncap;
  return true;
}

static lmz_value *copy_str(lmz_arena *dst, const lmz_value *s) {
  if (!s)
    return NULL;
  if (s->flags & LMZ__V_STATIC)
    return (lmz_value *)s;
  lmz_value *v = lmz_string(dst, s->u.str.p, s->u.str.len);
  if (v)
    v->type = s->type; /* string, bigint or url: same layout */
  return v;
}

/* A copy of `v` with the leaves filled in and the children left for fill(). */
static lmz_value *shell_new(lmz_arena *dst, const lmz_value *v) {
  switch (v->type) {
  case LMZ_T_DATE:
    return lmz_date(dst, v->u.num);
  case LMZ_T_REGEXP:
    return lmz_regexp(dst, v->u.re.src, v->u.re.src_len, v->u.re.flags,
                      v->u.re.flags_len);
  case LMZ_T_URL:
    return copy_str(dst, v);
  case LMZ_T_ARRAYBUFFER:
    return lmz_arraybuffer(dst, v->u.ab.bytes, v->u.ab.len);
  default:
    break;
  }
  lmz_value *c = lmz_arena_alloc(dst, sizeof(*c));
  if (!c)
    return NULL;
  memset(c, 0, sizeof(*c));
  c->type = v->type;
  c->sub = v->sub;
  c->arena = dst;
  if (v->type == LMZ_T_ERROR || lmz__value_reserve(c, v->n) == LMZ_EINVAL)
    return c; /* not a container with entries (or an error: props later) */
  return c->cap >= v->n ? c : NULL;
}

/* The copy of `v`: primitives are copied now, identity nodes are created once
 * and queued for fill(). NULL on out of memory (or v NULL). */
static lmz_value *copy_ref(struct cp *c, const lmz_value *v) {
  if (!v || (v->flags & LMZ__V_STATIC))
    return (lmz_value *)v;
  switch (v->type) {
  case LMZ_T_NUMBER:
    return lmz_number(c->dst, v->u.num);
  case LMZ_T_STRING:
  case LMZ_T_BIGINT:
    return copy_str(c->dst, v);
  default:
    break;
  }
  if (v->mark_epoch == c->epoch)
    return c->news[v->mark_id - 1];
  lmz_value *n = shell_new(c->dst, v);
  if (!n)
    return NULL;
  if ((c->n_news == c->cap_news &&
       !cp_grow((void ***)&c->news, &c->cap_news, (void **)c->news_inl)) ||
      (c->n_todo == c->cap_todo &&
       !cp_grow((void ***)&c->todo, &c->cap_todo, (void **)c->todo_inl)))
    return NULL;
  c->news[c->n_news++] = n;
  lmz_value *mv = (lmz_value *)v; /* scratch marks only (value_int.h) */
  mv->mark_epoch = c->epoch;
  mv->mark_id = c->n_news;
  c->todo[c->n_todo++] = v;
  return n;
}

static int copy_props(struct cp *c, struct lmz_prop *dst,
                      const struct lmz_prop *src, uint32_t n, bool headers) {
  for (uint32_t i = 0; i < n; i++) {
    dst[i].key = lmz_arena_strndup(c->dst, src[i].key, src[i].klen);
    dst[i].klen = src[i].klen;
    dst[i].v = headers ? copy_str(c->dst, src[i].v) : copy_ref(c, src[i].v);
    if (!dst[i].key || !dst[i].v)
      return LMZ_ENOMEM;
  }
  return 0;
}

static int fill_error(struct cp *c, lmz_value *d, const lmz_value *s) {
  d->u.err.name = copy_str(c->dst, s->u.err.name);
  d->u.err.message = copy_str(c->dst, s->u.err.message);
  d->u.err.stack = copy_str(c->dst, s->u.err.stack);
  d->u.err.cause = copy_ref(c, s->u.err.cause);
  if (!d->u.err.name || !d->u.err.message ||
      (s->u.err.stack && !d->u.err.stack) ||
      (s->u.err.cause && !d->u.err.cause) || lmz__value_reserve(d, s->n))
    return LMZ_ENOMEM;
  d->n = s->n;
  return copy_props(c, d->u.err.props, s->u.err.props, s->n, false);
}

/* Copies the children of `s` into its shell `d`. */
static int fill(struct cp *c, lmz_value *d, const lmz_value *s) {
  switch (s->type) {
  case LMZ_T_VIEW:
    d->u.view = s->u.view;
    d->u.view.buffer = copy_ref(c, s->u.view.buffer);
    return d->u.view.buffer ? 0 : LMZ_ENOMEM;
  case LMZ_T_BOXED:
    d->u.boxed = copy_ref(c, s->u.boxed);
    return d->u.boxed ? 0 : LMZ_ENOMEM;
  case LMZ_T_ARRAY:
  case LMZ_T_SET:
    d->n = s->n;
    for (uint32_t i = 0; i < s->n; i++)
      if (!(d->u.items[i] = copy_ref(c, s->u.items[i])))
        return LMZ_ENOMEM;
    return 0;
  case LMZ_T_OBJECT:
  case LMZ_T_HEADERS:
    d->n = s->n;
    return copy_props(c, d->u.props, s->u.props, s->n,
                      s->type == LMZ_T_HEADERS);
  case LMZ_T_MAP:
    d->n = s->n;
    for (uint32_t i = 0; i < s->n; i++) {
      d->u.ents[i].k = copy_ref(c, s->u.ents[i].k);
      d->u.ents[i].v = copy_ref(c, s->u.ents[i].v);
      if (!d->u.ents[i].k || !d->u.ents[i].v)
        return LMZ_ENOMEM;
    }
    return 0;
  case LMZ_T_ERROR:
    return fill_error(c, d, s);
  default: /* leaves: complete in shell_new */
    return 0;
  }
}

lmz_value *lmz_value_copy(lmz_arena *dst, const lmz_value *v) {
  if (!dst || !v)
    return NULL;
  struct cp c = {.dst = dst, .epoch = lmz__value_next_epoch(),
                 .cap_news = COPY_INLINE, .cap_todo = COPY_INLINE};
  c.news = c.news_inl;
  c.todo = c.todo_inl;
  lmz_value *root = copy_ref(&c, v);
  int rv = root ? 0 : LMZ_ENOMEM;
  while (!rv && c.n_todo) {
    const lmz_value *s = c.todo[--c.n_todo];
    rv = fill(&c, c.news[s->mark_id - 1], s);
  }
  if (c.news != c.news_inl)
    free(c.news);
  if (c.todo != c.todo_inl)
    free(c.todo);
  return rv ? NULL : root;
}
