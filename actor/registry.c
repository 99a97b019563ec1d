/* actor/registry.c - classes (registered by modules) and bindings (config).
 *
 * Happy path: lmzd dlopens each module and calls its lmz_module_init with a
 * registry; lmz_register_do / lmz_register_worker add classes with a method
 * table indexed by name; the config then binds names to classes.
 * Failure modes:
 *  1. the module file or its init symbol is missing: LMZ_ENOTFOUND + dlerror;
 *  2. init returns non-zero or registers a duplicate class: LMZ_EBADCONFIG;
 *  3. a binding names an unknown class or the wrong kind: LMZ_ENOTFOUND /
 *     LMZ_EINVAL, with the class and binding in the message. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"

static int register_class(lmz_registry *r, const char *name,
                          const lmz_method *methods,
                          const struct lmz_class_opts *opts,
                          lmz_node_type kind) {
  if (!r || !name || !*name || !methods)
    return LMZ_EINVAL;
  lmz_node_t *n = r->node;
  if (lmz_hmap_get(&n->classes, name, strlen(name))) {
    if (r->errmsg)
      lmz__errmsg_printf(r->errmsg, "class '%s' is registered twice", name);
    r->failed = LMZ_EEXIST;
    return LMZ_EEXIST;
  }
  struct lmz_class *c = calloc(1, sizeof *c);
  if (!c || !(c->name = strdup(name))) {
    free(c);
    return LMZ_ENOMEM;
  }
  c->kind = kind;
  c->methods = methods;
  if (opts)
    c->opts = *opts;
  c->module = r->module ? strdup(r->module) : NULL;
  for (const lmz_method *m = methods; m->name; m++) {
    if (!m->fn || lmz_hmap_put(&c->by_name, m->name, strlen(m->name),
                               (void *)m, NULL)) {
      lmz_hmap_free(&c->by_name);
      free(c->module);
      free(c->name);
      free(c);
      return m->fn ? LMZ_ENOMEM : LMZ_EINVAL;
    }
  }
  if (lmz_hmap_put(&n->classes, c->name, strlen(c->name), c, NULL))
    return LMZ_ENOMEM;
  return 0;
}

int lmz_register_do(lmz_registry *r, const char *class_name,
                    const lmz_method *methods,
                    const struct lmz_class_opts *opts) {
  return register_class(r, class_name, methods, opts, LMZ_NODE_DO);
}

int lmz_register_worker(lmz_registry *r, const char *class_name,
                        const lmz_method *methods,
                        const struct lmz_class_opts *opts) {
  return register_class(r, class_name, methods, opts, LMZ_NODE_WORKER);
}

int lmz_node_register_raw_class(lmz_node_t *n, const char *class_name,
                                lmz_raw_call_fn fn, void *data) {
  static const lmz_method none[] = {LMZ_END};
  struct lmz_class_opts o = {.data = data};
  lmz_registry r = {n, "builtin", 0, NULL};
  int rv = register_class(&r, class_name, none, &o, LMZ_NODE_DO);
  if (rv)
    return rv;
  struct lmz_class *c = lmz_hmap_get(&n->classes, class_name, strlen(class_name));
  c->raw = fn;
  return 0;
}

const lmz_method *lmz__class_method(const struct lmz_class *c,
                                    const char *name, size_t len) {
  return lmz_hmap_get(&c->by_name, name, len);
}

int lmz_node_register_module(lmz_node_t *n, const char *name,
                             lmz_module_init_fn init, char *errmsg) {
  lmz_registry r = {n, name, 0, errmsg};
  int rv = init(&r);
  if (rv == 0 && r.failed == 0)
    return 0;
  if (!r.failed)
    lmz__errmsg_printf(errmsg, "module %s: lmz_module_init failed: %s", name,
                       rv < 0 ? lmz_strerror(rv) : "returned non-zero");
  else
    lmz__errmsg_wrapf(errmsg, "module %s", name);
  return LMZ_EBADCONFIG;
}

int lmz_node_load_module(lmz_node_t *n, const char *path, char *errmsg) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    lmz__errmsg_printf(errmsg, "cannot load module %s: %s", path, dlerror());
    return LMZ_ENOTFOUND;
  }
  lmz_module_init_fn init;
  *(void **)&init = dlsym(h, LMZ_MODULE_INIT_SYMBOL);
  if (!init) {
    lmz__errmsg_printf(errmsg, "module %s does not export %s", path,
                       LMZ_MODULE_INIT_SYMBOL);
    dlclose(h);
    return LMZ_ENOTFOUND;
  }
  void **nh = realloc(n->dl_handles, (n->n_dl + 1) * sizeof *nh);
  if (!nh) {
    dlclose(h);
    return LMZ_ENOMEM;
  }
  n->dl_handles = nh;
  n->dl_handles[n->n_dl++] = h;
  return lmz_node_register_module(n, path, init, errmsg);
}

int lmz_node_bind(lmz_node_t *n, const char *binding, const char *class_name,
                  lmz_node_type kind, char *errmsg) {
  struct lmz_class *c = lmz_hmap_get(&n->classes, class_name, strlen(class_name));
  if (!c) {
    lmz__errmsg_printf(errmsg, "binding %s: unknown class '%s'", binding,
                       class_name);
    return LMZ_ENOTFOUND;
  }
  if (c->kind != kind) {
    lmz__errmsg_printf(errmsg,
                       "binding %s: class '%s' is a %s, not a %s", binding,
                       class_name, c->kind == LMZ_NODE_DO ? "durable object" : "worker",
                       kind == LMZ_NODE_DO ? "durable object" : "worker");
    return LMZ_EINVAL;
  }
  if (lmz_hmap_get(&n->bindings, binding, strlen(binding))) {
    lmz__errmsg_printf(errmsg, "duplicate binding %s", binding);
    return LMZ_EEXIST;
  }
  struct lmz_binding *b = calloc(1, sizeof *b);
  if (!b || !(b->name = strdup(binding))) {
    free(b);
    return LMZ_ENOMEM;
  }
  b->name_len = strlen(binding);
  b->kind = kind;
  b->cls = c;
  return lmz_hmap_put(&n->bindings, b->name, b->name_len, b, NULL);
}

struct lmz_binding *lmz__binding_get(lmz_node_t *n, const char *name) {
  return lmz_hmap_get(&n->bindings, name, strlen(name));
}

bool lmz_node_binding_kind(lmz_node_t *n, const char *binding,
                           lmz_node_type *kind) {
  struct lmz_binding *b = lmz__binding_get(n, binding);
  if (b && kind)
    *kind = b->kind;
  return b != NULL;
}

int lmz_node_set_var(lmz_node_t *n, const char *name, const char *value) {
  size_t nl = strlen(name), vl = strlen(value);
  char *e = malloc(nl + vl + 2);
  if (!e)
    return LMZ_ENOMEM;
  memcpy(e, name, nl + 1);
  memcpy(e + nl + 1, value, vl + 1);
  void *old = NULL;
  int rv = lmz_hmap_put(&n->vars, e, nl, e, &old);
  free(old);
  if (rv)
    free(e);
  return rv;
}
