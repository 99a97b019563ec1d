/* actor/context.c - call contexts (who called, on whose authority, with what
 * state) and the handler's accessors for them.
 *
 * Rules (lumenize-behaviour.md section 1.4):
 *  - outgoing: chain = current chain + self; origin auth inherited; state
 *    inherited and shallow-merged with opts.state (the option wins);
 *  - new_chain, or no current context (alarms, on_start): chain = [self],
 *    no origin auth, state = opts.state or {};
 *  - the callee is never in its own chain; origin = chain[0], caller = last.
 * Origin auth is only ever copied from the current context, so no node can
 * forge it: only the gateway mints it (gateway/). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "actor/actor_int.h"

const char *lmz__identity_type_name(lmz_node_type t) {
  switch (t) {
  case LMZ_NODE_DO:
    return "LumenizeDO";
  case LMZ_NODE_WORKER:
    return "LumenizeWorker";
  case LMZ_NODE_CLIENT:
    return "LumenizeClient";
  case LMZ_NODE_CLI:
    return "LmzCli";
  }
  return "unknown";
}

const char *lmz_node_type_name(lmz_node_type t) {
  return lmz__identity_type_name(t);
}

static int copy_identity(lmz_arena *a, lmz_identity *dst,
                         const lmz_identity *src) {
  dst->type = src->type;
  dst->binding = lmz_arena_strndup(a, src->binding, strlen(src->binding));
  dst->instance = src->instance
                      ? lmz_arena_strndup(a, src->instance, strlen(src->instance))
                      : NULL;
  return (!dst->binding || (src->instance && !dst->instance)) ? LMZ_ENOMEM : 0;
}

/* Deep-copies `src` into `a` (values of another arena must not be shared:
 * the source arena dies first). With copy_state_shallow the state is copied
 * as a new container of deep-copied values, which is the same thing here. */
int lmz__cctx_copy(lmz_arena *a, struct lmz_cctx *dst,
                   const struct lmz_cctx *src, bool copy_state_shallow) {
  (void)copy_state_shallow;
  *dst = (struct lmz_cctx){0};
  dst->present = src->present;
  memcpy(dst->trace_id, src->trace_id, sizeof dst->trace_id);
  memcpy(dst->call_id, src->call_id, sizeof dst->call_id);
  if (src->n) {
    dst->chain = lmz_arena_alloc(a, src->n * sizeof *dst->chain);
    if (!dst->chain)
      return LMZ_ENOMEM;
    for (size_t i = 0; i < src->n; i++)
      if (copy_identity(a, &dst->chain[i], &src->chain[i]))
        return LMZ_ENOMEM;
    dst->n = src->n;
  }
  if (src->origin_auth && !(dst->origin_auth = lmz_value_copy(a, src->origin_auth)))
    return LMZ_ENOMEM;
  dst->state = src->state ? lmz_value_copy(a, src->state) : lmz_object(a);
  return dst->state ? 0 : LMZ_ENOMEM;
}

int lmz__cctx_outgoing(lmz_ctx *ctx, lmz_arena *a,
                       const struct lmz_call_opts *opts,
                       struct lmz_cctx *out) {
  const struct lmz_cctx *cur = ctx->cctx;
  bool fresh = !cur || !cur->present || (opts && opts->new_chain);
  size_t keep = fresh ? 0 : cur->n;
  if (keep + 1 > LMZ_MAX_CALL_CHAIN)
    return lmz_throwf(ctx, "Error", "call chain too long: %zu > %d", keep + 1,
                      LMZ_MAX_CALL_CHAIN);
  *out = (struct lmz_cctx){.present = true};
  /* the trace goes on through new_chain too: the call is still caused by
   * this turn (a turn always has one: lmz__run_turn mints it) */
  lmz__cctx_trace(out, cur ? cur->trace_id : NULL, NULL);
  out->chain = lmz_arena_alloc(a, (keep + 1) * sizeof *out->chain);
  if (!out->chain)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < keep; i++)
    if (copy_identity(a, &out->chain[i], &cur->chain[i]))
      return LMZ_ENOMEM;
  if (copy_identity(a, &out->chain[keep], &ctx->actor->self))
    return LMZ_ENOMEM;
  out->n = keep + 1;
  if (!fresh && cur->origin_auth &&
      !(out->origin_auth = lmz_value_copy(a, cur->origin_auth)))
    return LMZ_ENOMEM;
  /* state: inherited (deep copy into the message) merged with opts.state */
  lmz_value *st = fresh ? lmz_object(a) : lmz_value_copy(a, cur->state);
  if (!st)
    return LMZ_ENOMEM;
  if (opts && opts->state && lmz_typeof(opts->state) == LMZ_T_OBJECT) {
    for (size_t i = 0; i < lmz_len(opts->state); i++) {
      size_t kl;
      const char *k = lmz_object_key(opts->state, i, &kl);
      lmz_value *v = lmz_value_copy(a, lmz_object_val(opts->state, i));
      if (!v || lmz_object_set(st, k, kl, v))
        return LMZ_ENOMEM;
    }
  }
  out->state = st;
  return 0;
}

void lmz__cctx_trace(struct lmz_cctx *c, const char *trace_id,
                     const char *call_id) {
  size_t tl = trace_id ? strnlen(trace_id, LMZ_TRACE_ID_LEN + 1) : 0;
  size_t cl = call_id ? strnlen(call_id, LMZ_CALL_ID_LEN + 1) : 0;
  if (lmz_trace_id_valid(trace_id, tl))
    memcpy(c->trace_id, trace_id, LMZ_TRACE_ID_LEN + 1);
  else if (!lmz_trace_id_valid(c->trace_id, strlen(c->trace_id)))
    lmz_trace_id_mint(c->trace_id);
  if (lmz_call_id_valid(call_id, cl))
    memcpy(c->call_id, call_id, LMZ_CALL_ID_LEN + 1);
  else
    lmz_call_id_mint(c->call_id);
}

static lmz_value *identity_value(lmz_arena *a, const lmz_identity *id) {
  lmz_value *o = lmz_object(a);
  if (!o || lmz_object_setc(o, "type", lmz_cstring(a, lmz__identity_type_name(id->type))) ||
      lmz_object_setc(o, "bindingName", lmz_cstring(a, id->binding)))
    return NULL;
  if (id->instance && lmz_object_setc(o, "instanceName", lmz_cstring(a, id->instance)))
    return NULL;
  return o;
}

lmz_value *lmz__cctx_value(lmz_arena *a, const struct lmz_cctx *c) {
  lmz_value *o = lmz_object(a);
  lmz_value *chain = lmz_array(a, c->n);
  if (!o || !chain)
    return NULL;
  for (size_t i = 0; i < c->n; i++) {
    lmz_value *id = identity_value(a, &c->chain[i]);
    if (!id || lmz_array_push(chain, id))
      return NULL;
  }
  if (lmz_object_setc(o, "callChain", chain))
    return NULL;
  if (c->origin_auth && lmz_object_setc(o, "originAuth", c->origin_auth))
    return NULL;
  if (lmz_object_setc(o, "state", c->state ? c->state : lmz_object(a)))
    return NULL;
  /* Extra fields beyond the original's {callChain, originAuth?, state}: its
   * clients read only those three, so these are harmless to them. */
  if (c->trace_id[0] && lmz_object_setc(o, "traceId", lmz_cstring(a, c->trace_id)))
    return NULL;
  if (c->call_id[0] && lmz_object_setc(o, "callId", lmz_cstring(a, c->call_id)))
    return NULL;
  return o;
}

lmz_value *lmz__error_value(lmz_arena *a, const char *name, const char *fmt,
                            ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lmz_error(a, name, msg);
}

lmz_value *lmz__overloaded_error(lmz_arena *a, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lmz_value *e = lmz_error(a, "MeshOverloadedError", msg);
  if (!e || lmz_error_set_prop(e, "retryable", 9, lmz_bool(true)) ||
      lmz_error_set_prop(e, "overloaded", 10, lmz_bool(true)))
    return NULL;
  return e;
}

/* ---- the handler's accessors (lmz/lmz.h) -------------------------------- */

lmz_arena *lmz_turn_arena(lmz_ctx *ctx) { return ctx->arena; }
lmz_node_type lmz_self_type(lmz_ctx *ctx) { return ctx->actor->self.type; }
const char *lmz_binding_name(lmz_ctx *ctx) { return ctx->actor->self.binding; }
const char *lmz_instance_name(lmz_ctx *ctx) { return ctx->actor->self.instance; }
void *lmz_class_data(lmz_ctx *ctx) { return ctx->actor->binding->cls->opts.data; }
const char *lmz_node_id(lmz_ctx *ctx) { return ctx->node->id; }
double lmz_now_ms(lmz_ctx *ctx) { return lmz_node_now_ms(ctx->node); }
void *lmz_uv_loop(lmz_ctx *ctx) { return ctx->node->loop; }

const char *lmz_var(lmz_ctx *ctx, const char *name) {
  const char *e = lmz_hmap_get(&ctx->node->vars, name, strlen(name));
  return e ? e + strlen(e) + 1 : NULL;
}

size_t lmz_call_chain_len(lmz_ctx *ctx) {
  return ctx->cctx && ctx->cctx->present ? ctx->cctx->n : 0;
}

const lmz_identity *lmz_call_chain_at(lmz_ctx *ctx, size_t i) {
  return i < lmz_call_chain_len(ctx) ? &ctx->cctx->chain[i] : NULL;
}

lmz_value *lmz_origin_auth(lmz_ctx *ctx) {
  return ctx->cctx && ctx->cctx->present ? ctx->cctx->origin_auth : NULL;
}

const char *lmz_trace_id(lmz_ctx *ctx) {
  return ctx->cctx ? ctx->cctx->trace_id : "";
}

const char *lmz_call_id(lmz_ctx *ctx) {
  return ctx->cctx ? ctx->cctx->call_id : "";
}

lmz_value *lmz_state(lmz_ctx *ctx) {
  if (!ctx->cctx->state)
    ctx->cctx->state = lmz_object(ctx->arena);
  return ctx->cctx->state;
}

lmz_value *lmz_call_context_value(lmz_ctx *ctx) {
  struct lmz_cctx empty = {0};
  const struct lmz_cctx *c = ctx->cctx && ctx->cctx->present ? ctx->cctx : &empty;
  if (c == &empty) {
    empty.state = lmz_object(ctx->arena);
    if (ctx->cctx) { /* an alarm's or on_start's own trace */
      memcpy(empty.trace_id, ctx->cctx->trace_id, sizeof empty.trace_id);
      memcpy(empty.call_id, ctx->cctx->call_id, sizeof empty.call_id);
    }
  }
  return lmz__cctx_value(ctx->arena, c);
}

int lmz_throw(lmz_ctx *ctx, lmz_value *err) {
  ctx->thrown = err ? err : lmz_undefined();
  return LMZ_ETHROWN;
}

int lmz_throwf(lmz_ctx *ctx, const char *name, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  lmz_value *e = lmz_error(ctx->arena, name, msg);
  return lmz_throw(ctx, e ? e : lmz_undefined());
}

