/* actor/ocan.c - continuations: building operation chains, validating and
 * executing them on an actor, substituting results into handlers.
 *
 * A chain is an array of operations {type:'get', key} and {type:'apply',
 * args} (the original's OCAN format, so chains pass to and from browsers
 * unchanged). A nested operation (an argument that is itself a chain) is the
 * marker {__isNestedOperation:true, __operationChain:[...]}.
 *
 * Execution (lumenize-behaviour.md 3.3, with DESIGN.md section 9's fixes):
 *  1. validate: an array, at most 50 operations, at most 100 args per apply;
 *  2. the leading gets name the entry method ("a" or a dotted path "a.b");
 *     with require_mesh, it must be a registered mesh method, else the
 *     original's "not mesh-callable" error - also for chains without any
 *     apply (no property-read bypass) and for unknown names;
 *  3. the guard runs (mesh calls only), then nested markers in the args are
 *     resolved left to right (top level, inside arrays, direct values of
 *     plain objects), each by executing its chain on the same actor under the
 *     same rules, then the method runs once;
 *  4. later gets read properties of the result; a later apply is a
 *     TypeError (C methods do not return callables).
 * Failure: every error is thrown into ctx (an Error value) and LMZ_ETHROWN
 * returned; nothing here aborts on input. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "actor/actor_int.h"

#define MARKER_FLAG "__isNestedOperation"
#define MARKER_CHAIN "__operationChain"

struct lmz_ctn {
  lmz_arena *arena;
  lmz_value *chain;
};

/* ---- markers ------------------------------------------------------------ */

bool lmz__is_marker(const lmz_value *v, lmz_value **chain) {
  if (!v || lmz_typeof(v) != LMZ_T_OBJECT)
    return false;
  lmz_value *flag = lmz_object_getc(v, MARKER_FLAG);
  if (!flag || lmz_typeof(flag) != LMZ_T_BOOL || !lmz_get_bool(flag))
    return false;
  lmz_value *c = lmz_object_getc(v, MARKER_CHAIN);
  if (!c || lmz_typeof(c) != LMZ_T_ARRAY)
    return false;
  if (chain)
    *chain = c;
  return true;
}

lmz_value *lmz__make_marker(lmz_arena *a, lmz_value *chain) {
  lmz_value *m = lmz_object(a);
  if (!m || lmz_object_setc(m, MARKER_FLAG, lmz_bool(true)) ||
      lmz_object_setc(m, MARKER_CHAIN, chain))
    return NULL;
  return m;
}

/* ---- validation --------------------------------------------------------- */

static int op_kind(const lmz_value *op, lmz_value **payload) {
  if (lmz_typeof(op) != LMZ_T_OBJECT)
    return -1;
  lmz_value *t = lmz_object_getc(op, "type");
  size_t tl;
  const char *ts = t && lmz_typeof(t) == LMZ_T_STRING ? lmz_get_str(t, &tl) : NULL;
  if (!ts)
    return -1;
  if (tl == 3 && !memcmp(ts, "get", 3)) {
    lmz_value *k = lmz_object_getc(op, "key");
    if (!k || (lmz_typeof(k) != LMZ_T_STRING && lmz_typeof(k) != LMZ_T_NUMBER))
      return -1;
    *payload = k;
    return 0;
  }
  if (tl == 5 && !memcmp(ts, "apply", 5)) {
    lmz_value *args = lmz_object_getc(op, "args");
    if (!args || lmz_typeof(args) != LMZ_T_ARRAY)
      return -1;
    *payload = args;
    return 1;
  }
  return -1;
}

int lmz__ocan_validate(lmz_ctx *ctx, const lmz_value *chain) {
  if (!chain || lmz_typeof(chain) != LMZ_T_ARRAY)
    return lmz_throwf(ctx, "Error",
                      "Invalid operation chain: operations must be an array");
  size_t n = lmz_len(chain);
  if (n > LMZ_MAX_CHAIN_OPS)
    return lmz_throwf(ctx, "Error", "Operation chain too deep: %zu > %d", n,
                      LMZ_MAX_CHAIN_OPS);
  for (size_t i = 0; i < n; i++) {
    lmz_value *p;
    int k = op_kind(lmz_array_get(chain, i), &p);
    if (k < 0)
      return lmz_throwf(ctx, "Error",
                        "Invalid operation chain: operation %zu must be "
                        "{type:'get',key} or {type:'apply',args:[]}", i);
    if (k == 1 && lmz_len(p) > LMZ_MAX_CALL_ARGS)
      return lmz_throwf(ctx, "Error", "Too many arguments: %zu > %d",
                        lmz_len(p), LMZ_MAX_CALL_ARGS);
  }
  return 0;
}

/* ---- execution ---------------------------------------------------------- */

static int normalize_rv(lmz_ctx *ctx, int rv) {
  if (rv == 0 || (rv == LMZ_ETHROWN && ctx->thrown))
    return rv;
  return lmz_throwf(ctx, "Error", "%s", lmz_strerror(rv));
}

/* Appends a get key to the dotted path; false if it does not fit. */
static bool path_append(char *path, size_t *len, size_t cap, const lmz_value *k) {
  char num[40];
  size_t kl;
  const char *ks;
  if (lmz_typeof(k) == LMZ_T_NUMBER) {
    kl = (size_t)snprintf(num, sizeof num, "%.17g", lmz_get_number(k));
    ks = num;
  } else {
    ks = lmz_get_str(k, &kl);
  }
  size_t need = kl + (*len ? 1 : 0);
  if (*len + need + 1 > cap)
    return false;
  if (*len)
    path[(*len)++] = '.';
  memcpy(path + *len, ks, kl);
  *len += kl;
  path[*len] = '\0';
  return true;
}

static int resolve_args(lmz_ctx *ctx, lmz_value *args, bool require_mesh,
                        lmz_value **out);

/* Resolves markers in one argument: a marker itself, array elements
 * (recursively), direct values of a plain object. Returns the argument
 * unchanged (same node, identity kept) when it holds no marker. */
static int resolve_one(lmz_ctx *ctx, lmz_value *v, bool require_mesh,
                       lmz_value **out) {
  lmz_value *chain;
  *out = v;
  if (lmz__is_marker(v, &chain)) {
    if (ctx->nesting >= LMZ_MAX_NESTING)
      return lmz_throwf(ctx, "Error", "Nested operations too deep: > %d",
                        LMZ_MAX_NESTING);
    ctx->nesting++;
    int rv = lmz__ocan_execute(ctx, chain, require_mesh, out);
    ctx->nesting--;
    return rv;
  }
  if (lmz_typeof(v) == LMZ_T_ARRAY)
    return resolve_args(ctx, v, require_mesh, out);
  if (lmz_typeof(v) != LMZ_T_OBJECT)
    return 0;
  lmz_value *copy = NULL;
  for (size_t i = 0; i < lmz_len(v); i++) {
    lmz_value *pv = lmz_object_val(v, i), *chain2;
    if (!lmz__is_marker(pv, &chain2))
      continue;
    if (!copy) {
      copy = lmz_object(ctx->arena);
      for (size_t j = 0; copy && j < lmz_len(v); j++) {
        size_t kl;
        const char *k = lmz_object_key(v, j, &kl);
        if (lmz_object_set(copy, k, kl, lmz_object_val(v, j)))
          copy = NULL;
      }
      if (!copy)
        return LMZ_ENOMEM;
    }
    lmz_value *r;
    ctx->nesting++;
    int rv = lmz__ocan_execute(ctx, chain2, require_mesh, &r);
    ctx->nesting--;
    if (rv)
      return rv;
    size_t kl;
    const char *k = lmz_object_key(v, i, &kl);
    if (lmz_object_set(copy, k, kl, r))
      return LMZ_ENOMEM;
  }
  if (copy)
    *out = copy;
  return 0;
}

static int resolve_args(lmz_ctx *ctx, lmz_value *args, bool require_mesh,
                        lmz_value **out) {
  size_t n = lmz_len(args);
  lmz_value *copy = NULL;
  for (size_t i = 0; i < n; i++) {
    lmz_value *a = lmz_array_get(args, i), *r;
    int rv = resolve_one(ctx, a, require_mesh, &r);
    if (rv)
      return rv;
    if (r == a && !copy)
      continue;
    if (!copy) { /* first change: copy the prefix */
      copy = lmz_array(ctx->arena, n);
      for (size_t j = 0; copy && j < i; j++)
        if (lmz_array_push(copy, lmz_array_get(args, j)))
          copy = NULL;
      if (!copy)
        return LMZ_ENOMEM;
    }
    if (lmz_array_push(copy, r))
      return LMZ_ENOMEM;
  }
  *out = copy ? copy : args;
  return 0;
}

/* A property read on a method's result (gets after the first apply). */
static int read_property(lmz_ctx *ctx, lmz_value *cur, const lmz_value *key,
                         lmz_value **out) {
  lmz_type t = lmz_typeof(cur);
  size_t kl = 0;
  const char *ks = lmz_typeof(key) == LMZ_T_STRING ? lmz_get_str(key, &kl) : NULL;
  if (t == LMZ_T_UNDEFINED || t == LMZ_T_NULL)
    return lmz_throwf(ctx, "TypeError",
                      "Cannot read properties of %s (reading '%s')",
                      lmz_type_name(t), ks ? ks : "?");
  *out = lmz_undefined();
  if ((t == LMZ_T_OBJECT || t == LMZ_T_ERROR) && ks) {
    lmz_value *v = t == LMZ_T_OBJECT ? lmz_object_get(cur, ks, kl)
                                     : lmz_error_prop(cur, ks);
    if (v)
      *out = v;
  } else if (t == LMZ_T_ARRAY) {
    if (lmz_typeof(key) == LMZ_T_NUMBER) {
      double d = lmz_get_number(key);
      if (d >= 0 && d < (double)lmz_len(cur) && d == (double)(size_t)d)
        *out = lmz_array_get(cur, (size_t)d);
    } else if (ks && kl == 6 && !memcmp(ks, "length", 6)) {
      *out = lmz_number(ctx->arena, (double)lmz_len(cur));
    }
  } else if (t == LMZ_T_STRING && ks && kl == 6 && !memcmp(ks, "length", 6)) {
    *out = lmz_number(ctx->arena, (double)lmz_len(cur));
  }
  return *out ? 0 : LMZ_ENOMEM;
}

static int not_callable(lmz_ctx *ctx, const char *path, bool require_mesh) {
  if (require_mesh)
    return lmz_throwf(ctx, "Error",
                      "Method '%s' is not mesh-callable. Add the @mesh "
                      "decorator to allow remote calls.", path);
  return lmz_throwf(ctx, "TypeError", "%s is not a function", path);
}

static int call_method(lmz_ctx *ctx, const lmz_method *m, lmz_value *args,
                       bool require_mesh, lmz_value **result) {
  int rv;
  if (require_mesh && m->guard) {
    ctx->in_guard = true;
    rv = m->guard(ctx);
    ctx->in_guard = false;
    if (rv)
      return normalize_rv(ctx, rv);
  }
  lmz_value *resolved;
  if ((rv = resolve_args(ctx, args, require_mesh, &resolved)))
    return rv;
  lmz_value *res = NULL;
  size_t n = lmz_len(resolved);
  lmz_value *argv[LMZ_MAX_CALL_ARGS + 1];
  for (size_t i = 0; i < n; i++)
    argv[i] = lmz_array_get(resolved, i);
  rv = m->fn(ctx, argv, n, &res);
  if (rv)
    return normalize_rv(ctx, rv);
  *result = res ? res : lmz_undefined();
  return 0;
}

int lmz__ocan_execute(lmz_ctx *ctx, lmz_value *chain, bool require_mesh,
                      lmz_value **result) {
  int rv = lmz__ocan_validate(ctx, chain);
  if (rv)
    return rv;
  size_t n = lmz_len(chain), i = 0;
  char path[512];
  size_t plen = 0;
  path[0] = '\0';
  lmz_value *payload = NULL;
  for (; i < n && op_kind(lmz_array_get(chain, i), &payload) == 0; i++)
    if (!path_append(path, &plen, sizeof path, payload))
      return not_callable(ctx, "(name too long)", require_mesh);
  if (i == n || plen == 0)
    return not_callable(ctx, path, require_mesh);
  const lmz_method *m = lmz__class_method(ctx->actor->binding->cls, path, plen);
  if (!m || (require_mesh && !(m->flags & LMZ_METHOD_MESH)))
    return not_callable(ctx, path, require_mesh);
  op_kind(lmz_array_get(chain, i), &payload);
  lmz_value *cur;
  if ((rv = call_method(ctx, m, payload, require_mesh, &cur)))
    return rv;
  for (i++; i < n; i++) {
    if (op_kind(lmz_array_get(chain, i), &payload) == 1)
      return lmz_throwf(ctx, "TypeError", "%s is not a function",
                        lmz_type_name(lmz_typeof(cur)));
    if ((rv = read_property(ctx, cur, payload, &cur)))
      return rv;
  }
  *result = cur;
  return 0;
}

/* Handler substitution (3.4): only the last operation, if an apply: every
 * top-level marker argument becomes the value; with none, the value is
 * appended as the last argument. */
int lmz__ocan_substitute(lmz_arena *a, lmz_value *chain, lmz_value *value) {
  size_t n = lmz_typeof(chain) == LMZ_T_ARRAY ? lmz_len(chain) : 0;
  lmz_value *args;
  if (n == 0 || op_kind(lmz_array_get(chain, n - 1), &args) != 1)
    return 0;
  (void)a;
  bool replaced = false;
  for (size_t i = 0; i < lmz_len(args); i++) {
    if (lmz__is_marker(lmz_array_get(args, i), NULL)) {
      if (lmz_array_set(args, i, value))
        return LMZ_ENOMEM;
      replaced = true;
    }
  }
  if (!replaced && lmz_len(args) < LMZ_MAX_CALL_ARGS)
    return lmz_array_push(args, value);
  return 0;
}

/* ---- the builder (lmz/lmz.h) -------------------------------------------- */

static lmz_value *make_op(lmz_arena *a, const char *type, const char *field,
                          lmz_value *payload) {
  lmz_value *op = lmz_object(a);
  if (!op || !payload || lmz_object_setc(op, "type", lmz_cstring(a, type)) ||
      lmz_object_setc(op, field, payload))
    return NULL;
  return op;
}

lmz_ctn *lmz_ctn_new(lmz_ctx *ctx) {
  lmz_ctn *c = lmz_arena_alloc(ctx->arena, sizeof *c);
  if (!c)
    return NULL;
  c->arena = ctx->arena;
  c->chain = lmz_array(ctx->arena, 4);
  return c->chain ? c : NULL;
}

lmz_ctn *lmz_ctn_get(lmz_ctn *c, const char *key) {
  if (!c)
    return NULL;
  lmz_value *op = make_op(c->arena, "get", "key", lmz_cstring(c->arena, key));
  return op && !lmz_array_push(c->chain, op) ? c : NULL;
}

lmz_ctn *lmz_ctn_apply(lmz_ctn *c, size_t nargs, lmz_value *const *args) {
  if (!c)
    return NULL;
  lmz_value *arr = lmz_array(c->arena, nargs);
  for (size_t i = 0; arr && i < nargs; i++)
    if (lmz_array_push(arr, args[i] ? args[i] : lmz_undefined()))
      arr = NULL;
  lmz_value *op = make_op(c->arena, "apply", "args", arr);
  return op && !lmz_array_push(c->chain, op) ? c : NULL;
}

lmz_ctn *lmz_ctn_call(lmz_ctn *c, const char *method, size_t nargs, ...) {
  lmz_value *argv[LMZ_MAX_CALL_ARGS];
  if (nargs > LMZ_MAX_CALL_ARGS)
    return NULL;
  va_list ap;
  va_start(ap, nargs);
  for (size_t i = 0; i < nargs; i++)
    argv[i] = va_arg(ap, lmz_value *);
  va_end(ap);
  return lmz_ctn_apply(lmz_ctn_get(c, method), nargs, argv);
}

lmz_value *lmz_ctn_nested(lmz_ctn *c) {
  return c ? lmz__make_marker(c->arena, c->chain) : NULL;
}

lmz_value *lmz_ctn_result(lmz_ctx *ctx) {
  lmz_ctn *c = lmz_ctn_get(lmz_ctn_new(ctx), "$result");
  return lmz_ctn_nested(c);
}

lmz_value *lmz_ctn_chain(lmz_ctn *c) { return c ? c->chain : NULL; }

lmz_ctn *lmz_ctn_from_chain(lmz_ctx *ctx, lmz_value *chain) {
  if (!chain || lmz_typeof(chain) != LMZ_T_ARRAY)
    return NULL;
  lmz_ctn *c = lmz_arena_alloc(ctx->arena, sizeof *c);
  if (!c)
    return NULL;
  c->arena = ctx->arena;
  c->chain = chain;
  return c;
}
