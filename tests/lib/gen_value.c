/* tests/lib/gen_value.c - seeded random lmz_value graphs (see gen_value.h).
 *
 * The generator recurses once per container level (bounded by max_depth) and
 * keeps two small lists: the identity nodes made so far (for aliases) and the
 * containers still under construction (for cycles). */
#include "lib/gen_value.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define POOL_MAX 256
#define ANC_MAX 64

struct gen {
  lmz_arena *a;
  uint64_t *seed;
  struct gen_opts o;
  lmz_value *pool[POOL_MAX]; /* finished identity nodes */
  size_t n_pool;
  lmz_value *anc[ANC_MAX]; /* containers under construction */
  size_t n_anc;
  lmz_value *bufs[POOL_MAX]; /* ArrayBuffers, for views to share */
  size_t n_bufs;
  bool oom;
};

void gen_opts_default(struct gen_opts *o) {
  o->max_depth = 4;
  o->max_breadth = 6;
  o->cycles = true;
  o->aliases = true;
  o->types = 0;
}

uint64_t gen_next(uint64_t *seed) {
  uint64_t z = (*seed += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint32_t rnd(struct gen *g, uint32_t n) { /* 0..n-1 */
  return n ? (uint32_t)(gen_next(g->seed) % n) : 0;
}

static bool chance(struct gen *g, uint32_t one_in) { return rnd(g, one_in) == 0; }

static bool allowed(const struct gen *g, lmz_type t) {
  return g->o.types == 0 || (g->o.types & GEN_TYPE(t));
}

static lmz_value *chk(struct gen *g, lmz_value *v) {
  if (!v)
    g->oom = true;
  return v;
}

static void remember(struct gen *g, lmz_value *v) {
  if (v && g->n_pool < POOL_MAX)
    g->pool[g->n_pool++] = v;
}

/* ---- primitives ---------------------------------------------------------------- */

static double gen_double(struct gen *g) {
  static const double specials[] = {
      0.0, -0.0, NAN, INFINITY, -INFINITY, 1.0, -1.0, 0.5, 0.1, -2.75,
      63.0, 64.0, -63.0, 9007199254740991.0, 9007199254740992.0,
      -9007199254740992.0, 9007199254740994.0, 5e-324, DBL_MAX, -DBL_MIN,
      1e21, 123456789.0, 4294967296.0, -4294967297.0};
  switch (rnd(g, 4)) {
  case 0:
    return specials[rnd(g, sizeof(specials) / sizeof(specials[0]))];
  case 1:
    return (double)rnd(g, 64);
  case 2:
    return (double)((int64_t)(gen_next(g->seed) >> rnd(g, 63)) *
                    (chance(g, 2) ? 1 : -1));
  default: {
    uint64_t bits = gen_next(g->seed);
    double d;
    memcpy(&d, &bits, 8);
    return d != d ? 1.5 : d; /* NaN comes from the specials */
  }
  }
}

static lmz_value *gen_bigint(struct gen *g) {
  char buf[130];
  size_t n = 0, digits = 1 + rnd(g, chance(g, 3) ? 120 : 20);
  if (chance(g, 3))
    buf[n++] = '-';
  for (size_t i = 0; i < digits; i++)
    buf[n++] = (char)('0' + rnd(g, 10)); /* leading zeros get normalized */
  return chk(g, lmz_bigint(g->a, buf, n));
}

/* Random string bytes into buf (cap >= 300); returns the length. */
static size_t gen_str_bytes(struct gen *g, char *buf, bool key) {
  static const char *const pieces[] = {
      "a", "Z", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
      "\xed\xa0\x80", "\xed\xbf\xbf", "\"", "\\", "\n", "/", "$"};
  size_t n = 0, len;
  switch (rnd(g, key ? 3 : 6)) {
  case 0:
    len = key ? 1 + rnd(g, 4) : 0;
    break;
  case 1:
  case 2:
    len = 1 + rnd(g, 12);
    break;
  case 3:
    len = 60 + rnd(g, 8); /* around the 63-byte short-string boundary */
    break;
  default:
    len = 100 + rnd(g, 180);
  }
  if (chance(g, 4) || (key && chance(g, 3)))
    buf[n++] = '$';
  if (key)
    buf[n++] = (char)('a' + rnd(g, 26)); /* never integer-like */
  while (n < len) {
    if (chance(g, 3)) {
      const char *p = pieces[rnd(g, sizeof(pieces) / sizeof(pieces[0]))];
      size_t pl = strlen(p);
      /* A lone high surrogate followed by a lone low one is ill-formed
       * WTF-8: JavaScript sees one code point there, so it could not come
       * back byte-identical. Keep the surrogates lone. */
      if (p[0] == '\xed' && (unsigned char)p[1] >= 0xb0 && n >= 3 &&
          buf[n - 3] == '\xed' && (unsigned char)buf[n - 2] < 0xb0) {
        p = "a";
        pl = 1;
      }
      if (n + pl > 290)
        break;
      memcpy(buf + n, p, pl);
      n += pl;
    } else {
      buf[n++] = (char)(key || !chance(g, 40) ? 'a' + rnd(g, 26) : 0);
    }
  }
  return n;
}

static lmz_value *gen_string(struct gen *g) {
  char buf[300];
  size_t n = gen_str_bytes(g, buf, false);
  return chk(g, lmz_string(g->a, buf, n));
}

static lmz_value *gen_primitive(struct gen *g, lmz_type t) {
  switch (t) {
  case LMZ_T_UNDEFINED:
    return lmz_undefined();
  case LMZ_T_NULL:
    return lmz_null();
  case LMZ_T_BOOL:
    return lmz_bool(chance(g, 2));
  case LMZ_T_NUMBER:
    return chk(g, lmz_number(g->a, gen_double(g)));
  case LMZ_T_BIGINT:
    return gen_bigint(g);
  default:
    return gen_string(g);
  }
}

/* ---- leaf objects ----------------------------------------------------------------- */

static lmz_value *gen_arraybuffer(struct gen *g, size_t min_len) {
  uint8_t bytes[200];
  size_t len = min_len + rnd(g, 48);
  if (len > sizeof(bytes))
    len = sizeof(bytes);
  for (size_t i = 0; i < len; i++)
    bytes[i] = (uint8_t)gen_next(g->seed);
  lmz_value *b = chk(g, lmz_arraybuffer(g->a, bytes, len));
  if (b && g->n_bufs < POOL_MAX)
    g->bufs[g->n_bufs++] = b;
  return b;
}

static lmz_value *gen_view(struct gen *g) {
  lmz_view_kind k = (lmz_view_kind)rnd(g, LMZ_VIEW__COUNT);
  size_t esz = lmz_view_elem_size(k);
  lmz_value *buf = NULL;
  if (g->o.aliases && g->n_bufs && chance(g, 2))
    buf = g->bufs[rnd(g, (uint32_t)g->n_bufs)]; /* shared with another view */
  else
    buf = gen_arraybuffer(g, 16);
  if (!buf)
    return NULL;
  size_t slots = lmz_len(buf) / esz;
  size_t first = rnd(g, (uint32_t)slots + 1);
  size_t count = rnd(g, (uint32_t)(slots - first) + 1);
  return chk(g, lmz_view(g->a, k, buf, first * esz, count));
}

static lmz_value *gen_boxed(struct gen *g) {
  static const lmz_type prims[] = {LMZ_T_BOOL, LMZ_T_NUMBER, LMZ_T_STRING,
                                   LMZ_T_BIGINT};
  lmz_value *p = gen_primitive(g, prims[rnd(g, 4)]);
  return p ? chk(g, lmz_boxed(g->a, p)) : NULL;
}

static lmz_value *gen_leaf_object(struct gen *g, lmz_type t) {
  static const char *const res[] = {"a+b", "^\\d{3}$", "[/]", "(?:)", "x|y*",
                                    "\\u{1F600}"};
  static const char *const flags[] = {"", "g", "gi", "imsuy", "d", "v"};
  char buf[300];
  switch (t) {
  case LMZ_T_DATE:
    return chk(g, lmz_date(g->a, chance(g, 6) ? NAN
                                              : (double)((int64_t)rnd(g, 2000000000) * 1000 -
                                                         (int64_t)rnd(g, 1000))));
  case LMZ_T_REGEXP: {
    const char *s = res[rnd(g, 6)], *f = flags[rnd(g, 6)];
    return chk(g, lmz_regexp(g->a, s, strlen(s), f, strlen(f)));
  }
  case LMZ_T_URL: {
    int n = snprintf(buf, sizeof buf, "https://example.com/p%u?q=%u#f",
                     rnd(g, 1000), rnd(g, 100));
    return chk(g, lmz_url(g->a, buf, (size_t)n));
  }
  case LMZ_T_HEADERS: {
    lmz_value *h = chk(g, lmz_headers(g->a));
    for (uint32_t i = 0, n = rnd(g, 4); h && i < n; i++) {
      static const char *const names[] = {"content-type", "x-id", "accept",
                                          "set-cookie"};
      size_t vn = gen_str_bytes(g, buf, true);
      const char *nm = names[rnd(g, 4)];
      if (lmz_headers_append(h, nm, strlen(nm), buf, vn))
        g->oom = true;
    }
    return h;
  }
  case LMZ_T_ARRAYBUFFER:
    return gen_arraybuffer(g, 0);
  case LMZ_T_VIEW:
    return gen_view(g);
  default:
    return gen_boxed(g);
  }
}

/* ---- containers ------------------------------------------------------------------- */

static lmz_value *gen_node(struct gen *g, unsigned depth);

/* A child of a container: sometimes a reference to an existing node. */
static lmz_value *gen_child(struct gen *g, unsigned depth) {
  if (g->o.cycles && g->n_anc && chance(g, 12))
    return g->anc[rnd(g, (uint32_t)g->n_anc)];
  if (g->o.aliases && g->n_pool && chance(g, 8))
    return g->pool[rnd(g, (uint32_t)g->n_pool)];
  return gen_node(g, depth + 1);
}

static void push_anc(struct gen *g, lmz_value *c) {
  if (g->n_anc < ANC_MAX)
    g->anc[g->n_anc++] = c;
}

static void fill_array(struct gen *g, lmz_value *arr, unsigned depth) {
  uint32_t n = rnd(g, g->o.max_breadth + 1);
  bool holes = allowed(g, LMZ_T_HOLE) && chance(g, 3);
  for (uint32_t i = 0; i < n && !g->oom; i++) {
    lmz_value *v = holes && chance(g, 3) ? lmz_hole() : gen_child(g, depth);
    if (!v || lmz_array_push(arr, v))
      g->oom = true;
  }
}

static void fill_object(struct gen *g, lmz_value *o, unsigned depth) {
  uint32_t n = rnd(g, g->o.max_breadth + 1);
  char key[300];
  for (uint32_t i = 0; i < n && !g->oom; i++) {
    size_t kn = gen_str_bytes(g, key, true);
    lmz_value *v = gen_child(g, depth);
    if (!v || lmz_object_set(o, key, kn, v))
      g->oom = true;
  }
}

static void fill_map(struct gen *g, lmz_value *m, unsigned depth, bool is_set) {
  uint32_t n = rnd(g, g->o.max_breadth + 1);
  for (uint32_t i = 0; i < n && !g->oom; i++) {
    lmz_value *k = gen_child(g, depth);
    if (!k)
      return;
    int rv = is_set ? lmz_set_add(m, k) : 0;
    if (!is_set) {
      lmz_value *v = gen_child(g, depth);
      rv = v ? lmz_map_set(m, k, v) : -1;
    }
    if (rv)
      g->oom = true;
  }
}

static void fill_error(struct gen *g, lmz_value *e, unsigned depth,
                       bool aggregate) {
  char buf[300];
  if (chance(g, 2)) {
    int n = snprintf(buf, sizeof buf, "%s: boom\n    at f (file%u.js:1:2)",
                     lmz_error_name(e), rnd(g, 100));
    if (lmz_error_set_stack(e, buf, (size_t)n))
      g->oom = true;
  }
  if (chance(g, 2)) {
    lmz_value *cause = g->o.cycles && chance(g, 4) ? e : gen_child(g, depth);
    if (!cause || lmz_error_set_cause(e, cause))
      g->oom = true;
  }
  if (chance(g, 3) && lmz_error_set_prop(e, "code", 4,
                                         chance(g, 2) ? lmz_number(g->a, 42)
                                                      : lmz_cstring(g->a, "E_X")))
    g->oom = true;
  if (aggregate) {
    lmz_value *errs = chk(g, lmz_array(g->a, 0));
    for (uint32_t i = 0, n = rnd(g, 3); errs && i < n; i++)
      if (lmz_array_push(errs, chk(g, lmz_error(g->a, "TypeError", "inner"))))
        g->oom = true;
    if (errs && lmz_error_set_prop(e, "errors", 6, errs))
      g->oom = true;
  }
  for (uint32_t i = 0, n = rnd(g, 3); i < n && !g->oom; i++) {
    size_t kn = gen_str_bytes(g, buf, true);
    lmz_value *v = gen_child(g, depth);
    if (!v || lmz_error_set_prop(e, buf, kn, v))
      g->oom = true;
  }
}

static lmz_value *gen_error(struct gen *g, unsigned depth) {
  static const char *const names[] = {"Error",      "TypeError",   "RangeError",
                                      "SyntaxError", "ReferenceError",
                                      "EvalError",  "URIError",    "AggregateError",
                                      "CustomError"};
  char msg[300];
  unsigned k = rnd(g, 9);
  size_t mn = gen_str_bytes(g, msg, false);
  const char *nm = names[k];
  lmz_value *e = chk(g, lmz_error_n(g->a, nm, strlen(nm), msg, mn));
  if (!e)
    return NULL;
  push_anc(g, e);
  fill_error(g, e, depth, k == 7);
  g->n_anc--;
  return e;
}

static lmz_value *gen_container(struct gen *g, lmz_type t, unsigned depth) {
  if (t == LMZ_T_ERROR)
    return gen_error(g, depth);
  lmz_value *c = t == LMZ_T_ARRAY    ? lmz_array(g->a, 0)
                 : t == LMZ_T_OBJECT ? lmz_object(g->a)
                 : t == LMZ_T_MAP    ? lmz_map(g->a)
                                     : lmz_set(g->a);
  if (!chk(g, c))
    return NULL;
  push_anc(g, c);
  if (t == LMZ_T_ARRAY)
    fill_array(g, c, depth);
  else if (t == LMZ_T_OBJECT)
    fill_object(g, c, depth);
  else
    fill_map(g, c, depth, t == LMZ_T_SET);
  g->n_anc--;
  return c;
}

static bool is_container(lmz_type t) {
  return t == LMZ_T_ARRAY || t == LMZ_T_OBJECT || t == LMZ_T_MAP ||
         t == LMZ_T_SET || t == LMZ_T_ERROR;
}

static lmz_value *gen_node(struct gen *g, unsigned depth) {
  lmz_type choices[3 * LMZ_T__COUNT];
  uint32_t n = 0;
  for (int t = 0; t < LMZ_T__COUNT; t++) {
    if (t == LMZ_T_HOLE || !allowed(g, (lmz_type)t))
      continue;
    if (is_container((lmz_type)t) && depth >= g->o.max_depth)
      continue;
    choices[n++] = (lmz_type)t;
    if (is_container((lmz_type)t)) /* weight 2 (3 at the top): bigger graphs */
      choices[n++] = (lmz_type)t;
    if (is_container((lmz_type)t) && depth == 0)
      choices[n++] = (lmz_type)t;
  }
  if (n == 0)
    return lmz_undefined();
  lmz_type t = choices[rnd(g, n)];
  if (!lmz_type_has_identity(t))
    return gen_primitive(g, t);
  lmz_value *v = is_container(t) ? gen_container(g, t, depth)
                                 : gen_leaf_object(g, t);
  remember(g, v);
  return v;
}

lmz_value *gen_value(lmz_arena *a, uint64_t *seed, const struct gen_opts *o) {
  struct gen gs;
  struct gen *g = &gs;
  memset(g, 0, sizeof(*g));
  g->a = a;
  g->seed = seed;
  if (o)
    g->o = *o;
  else
    gen_opts_default(&g->o);
  if (g->o.max_breadth == 0)
    g->o.max_breadth = 1;
  lmz_value *v = gen_node(g, 0);
  return g->oom ? NULL : v;
}
