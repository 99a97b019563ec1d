/* core/json_value.c - a JSON DOM as plain values (see core/json.h). */
#include "core/json.h"

static lmz_value *to_value(lmz_arena *a, const lmz_json *j, uint32_t depth,
                           uint32_t max_depth) {
  if (depth > max_depth)
    return NULL;
  switch ((lmz_json_type)j->type) {
  case LMZ_JSON_NULL:
    return lmz_null();
  case LMZ_JSON_FALSE:
    return lmz_bool(false);
  case LMZ_JSON_TRUE:
    return lmz_bool(true);
  case LMZ_JSON_NUMBER:
    return lmz_number(a, j->u.num);
  case LMZ_JSON_STRING:
    return lmz_string(a, j->u.str.p, j->u.str.len);
  case LMZ_JSON_ARRAY: {
    lmz_value *arr = lmz_array(a, j->n);
    for (uint32_t i = 0; arr && i < j->n; i++) {
      lmz_value *v = to_value(a, j->u.items[i], depth + 1, max_depth);
      if (!v || lmz_array_push(arr, v))
        return NULL;
    }
    return arr;
  }
  case LMZ_JSON_OBJECT: {
    lmz_value *o = lmz_object(a);
    for (uint32_t i = 0; o && i < j->n; i++) {
      const struct lmz_json_member *m = &j->u.members[i];
      lmz_value *v = to_value(a, m->val, depth + 1, max_depth);
      if (!v || lmz_object_set(o, m->key, m->klen, v)) /* last duplicate wins */
        return NULL;
    }
    return o;
  }
  }
  return NULL;
}

lmz_value *lmz_json_to_value(lmz_arena *a, const lmz_json *j, uint32_t max_depth) {
  return j ? to_value(a, j, 0, max_depth) : NULL;
}
