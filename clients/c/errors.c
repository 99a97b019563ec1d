/* clients/c/errors.c - reading the flags of an error a call answered with.
 *
 * The mesh marks errors a caller may simply retry (later, or elsewhere)
 * with retryable: true, as Cloudflare does: MeshOverloadedError (the
 * callee's mailbox or its node's pending calls are at their bound; also
 * overloaded: true) and ActorUnavailableError (the actor's node is
 * unreachable or moving). Anything else, or a flag that is not exactly the
 * boolean true, reads as false. */
#include "clients/c/lmzc_int.h"

static bool flag(const lmz_value *err, const char *key) {
  if (!err || lmz_typeof(err) != LMZ_T_ERROR)
    return false;
  const lmz_value *v = lmz_error_prop(err, key);
  return v && lmz_typeof(v) == LMZ_T_BOOL && lmz_get_bool(v);
}

bool lmzc_error_is_retryable(const lmz_value *err) { return flag(err, "retryable"); }

bool lmzc_error_is_overloaded(const lmz_value *err) { return flag(err, "overloaded"); }
