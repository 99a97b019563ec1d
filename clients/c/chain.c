/* clients/c/chain.c - the operation chain of a plain method call
 * (lumenize-behaviour section 3.1): [{"type":"get","key":name},
 * {"type":"apply","args":[...]}], built for outgoing calls and recognised
 * in incoming ones.
 *
 * Failure modes: out of memory while building (NULL); anything that is not
 * exactly that two-step shape is "not a method call" (false), including
 * chains with more steps (property paths, nested calls), which the
 * application may interpret itself from lmzc_incoming_t.chain. */
#include <string.h>

#include "clients/c/lmzc_int.h"

static lmz_value *op(lmz_arena *a, const char *type, const char *field,
                     lmz_value *v) {
  lmz_value *o = lmz_object(a);
  if (!o || !v || lmz_object_setc(o, "type", lmz_cstring(a, type)) ||
      lmz_object_setc(o, field, v))
    return NULL;
  return o;
}

lmz_value *lmzc_method_chain(lmz_arena *a, const char *method, size_t nargs,
                             lmz_value *const *args) {
  if (!a || !method || (nargs && !args))
    return NULL;
  lmz_value *arr = lmz_array(a, nargs);
  for (size_t i = 0; arr && i < nargs; i++)
    if (!args[i] || lmz_array_push(arr, args[i]))
      return NULL;
  lmz_value *chain = lmz_array(a, 2);
  lmz_value *get = op(a, "get", "key", lmz_cstring(a, method));
  lmz_value *ap = op(a, "apply", "args", arr);
  if (!chain || !get || !ap || lmz_array_push(chain, get) ||
      lmz_array_push(chain, ap))
    return NULL;
  return chain;
}

/* The string value of obj.type, or NULL. */
static const char *type_of(const lmz_value *o) {
  if (!o || lmz_typeof(o) != LMZ_T_OBJECT)
    return NULL;
  lmz_value *t = lmz_object_getc(o, "type");
  return t && lmz_typeof(t) == LMZ_T_STRING ? lmz_get_str(t, NULL) : NULL;
}

bool lmzc_chain_method(const lmz_value *chain, const char **method,
                       const lmz_value **args) {
  if (!chain || lmz_typeof(chain) != LMZ_T_ARRAY || lmz_len(chain) != 2)
    return false;
  lmz_value *get = lmz_array_get(chain, 0), *ap = lmz_array_get(chain, 1);
  const char *t0 = type_of(get), *t1 = type_of(ap);
  if (!t0 || !t1 || strcmp(t0, "get") || strcmp(t1, "apply"))
    return false;
  lmz_value *key = lmz_object_getc(get, "key");
  lmz_value *arr = lmz_object_getc(ap, "args");
  if (!key || lmz_typeof(key) != LMZ_T_STRING || !arr ||
      lmz_typeof(arr) != LMZ_T_ARRAY)
    return false;
  if (method)
    *method = lmz_get_str(key, NULL);
  if (args)
    *args = arr;
  return true;
}
