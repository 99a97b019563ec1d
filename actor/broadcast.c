/* actor/broadcast.c - lmz_broadcast (lmz/lmz.h): the sending side.
 *
 * Happy path: lmz_broadcast validates the targets and copies them, the
 * chain, the outgoing call context and (with on_result) the handler and the
 * caller's context into one message's arena, held in the turn's outbox. The
 * output gate releases it (lmz__bcast_start): each target is looked up in
 * the directory (lmz__router_bcast_owner); targets of other live owners are
 * grouped per owner and sent as Broadcast frames (one per owner, more when
 * a group exceeds LMZ_BROADCAST_FRAME_TARGETS or the frame cap), each a
 * flight waiting for its BroadcastResult frames; every other target
 * becomes an ordinary call message routed alone (local, claim, park ...).
 * Outcomes (with on_result) become handler turns on the caller, one per
 * target the handler wants. The broadcast ends when no flight and no
 * awaited outcome is left: the caller is unpinned, the message freed.
 * Failure modes:
 *  1. validation (binding, instances, n, continuation): thrown at once;
 *  2. the turn throws: dropped unsent; its commit fails: every target's
 *     outcome is a StorageError (lmz__bcast_fail);
 *  3. a receiver answers MOVED (or UNAVAILABLE without a value) for a
 *     target: only that target is routed again, alone, parked until the
 *     directory caught up (router: bounded hops);
 *  4. a frame cannot be queued (link down, queue full) or a group's chain
 *     does not fit in a frame at all: its targets go alone (which fails
 *     them the way a single call fails: too big, unavailable, overloaded);
 *  5. no final answer within LMZ_BCAST_TIMEOUT_MS, or the link drops, or
 *     the router closes: the flight's unsettled targets fail with
 *     ActorUnavailableError (they may have run: at most once);
 *  6. out of memory for a target: that target fails (outcome or log). */
#include <stdlib.h>
#include <string.h>

#include "actor/broadcast_int.h"
#include "core/codec.h"
#include "storage/keys.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.actor.broadcast");

struct target_ref { /* a single-path target's reply argument */
  struct lmz__bcast *b;
  uint32_t idx;
};

struct lmz__bcast {
  lmz_node_t *node;
  lmz_msg *m; /* owns the arena everything below lives in */
  struct lmz_binding *binding;
  const char **inst; /* n names */
  uint32_t n;
  lmz_value *chain;      /* the remote continuation */
  struct lmz_cctx cctx;  /* the targets' call context */
  lmz_actor *caller;
  lmz_value *handler;    /* on_result chain, or NULL (fire-and-forget) */
  struct lmz_cctx hctx;  /* the caller's context for handler turns */
  bool all_results;
  struct target_ref *refs; /* per target, with a handler */
  /* flights in the air + outcomes awaited (handler); the broadcast ends at
   * 0. Invariant: with a handler, every target counts once until its
   * outcome was reported (single path, flight, or failure). */
  uint32_t waiting;
};

struct flight {
  uint64_t id, peer, sent_ms;
  struct lmz__bcast *b;
  uint32_t *idx;     /* the frame's targets: indices into b->inst */
  uint8_t *settled;  /* per frame target: its outcome was seen */
  uint32_t n;
  uint32_t hops;
  struct flight *prev, *next; /* rt FIFO by sent_ms (= by deadline) */
};

/* ---- validation and construction (lmz_broadcast) ------------------------ */

static int bad_binding(lmz_ctx *ctx, const char *binding,
                       struct lmz_binding **out) {
  struct lmz_binding *b = binding ? lmz__binding_get(ctx->node, binding) : NULL;
  if (!b)
    return lmz_throwf(ctx, "Error", "lmz.broadcast: no binding named '%s' in env.",
                      binding ? binding : "");
  if (b->kind != LMZ_NODE_DO)
    return lmz_throwf(ctx, "Error",
                      "lmz.broadcast: '%s' is a Worker/service binding; broadcast "
                      "targets durable objects and clients (instances).", binding);
  *out = b;
  return 0;
}

static int copy_targets(lmz_ctx *ctx, struct lmz__bcast *b,
                        const char *const *instances, size_t n) {
  lmz_arena *a = b->m->arena;
  if (n > LMZ_BROADCAST_MAX)
    return lmz_throwf(ctx, "Error", "lmz.broadcast: %zu targets, the limit is %d",
                      n, LMZ_BROADCAST_MAX);
  if (n && !instances)
    return lmz_throwf(ctx, "Error", "lmz.broadcast: instances is NULL");
  b->inst = lmz_arena_alloc(a, (n ? n : 1) * sizeof *b->inst);
  if (!b->inst)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    size_t len = instances[i] ? strlen(instances[i]) : 0;
    if (!len || len > LMZ_KEY_INSTANCE_MAX)
      return lmz_throwf(ctx, "Error", "lmz.broadcast: instance %zu is %s", i,
                        len ? "longer than 1024 bytes" : "empty");
    if (!(b->inst[i] = lmz_arena_strndup(a, instances[i], len)))
      return LMZ_ENOMEM;
  }
  b->n = (uint32_t)n;
  return 0;
}

static int copy_handler(lmz_ctx *ctx, struct lmz__bcast *b,
                        const struct lmz_broadcast_opts *o) {
  lmz_arena *a = b->m->arena;
  if (!o || !o->on_result)
    return 0;
  if (!lmz_ctn_chain(o->on_result))
    return lmz_throwf(ctx, "Error", "lmz.broadcast: invalid on_result continuation");
  struct lmz_cctx now = ctx->cctx ? *ctx->cctx : (struct lmz_cctx){0};
  if (!(b->handler = lmz_value_copy(a, lmz_ctn_chain(o->on_result))) ||
      lmz__cctx_copy(a, &b->hctx, &now, true))
    return LMZ_ENOMEM;
  b->refs = lmz_arena_alloc(a, (b->n ? b->n : 1) * sizeof *b->refs);
  if (!b->refs)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < b->n; i++)
    b->refs[i] = (struct target_ref){b, i};
  b->all_results = o->all_results;
  return 0;
}

int lmz_broadcast(lmz_ctx *ctx, const char *binding,
                  const char *const *instances, size_t n, lmz_ctn *remote,
                  const struct lmz_broadcast_opts *opts) {
  struct lmz_binding *bd;
  if (!remote || !lmz_ctn_chain(remote))
    return lmz_throwf(ctx, "Error", "Invalid remoteContinuation: must be created "
                                    "with lmz_ctn_new()");
  int rv = bad_binding(ctx, binding, &bd);
  if (rv)
    return rv;
  lmz_msg *m = lmz__msg_new(ctx->node);
  struct lmz__bcast *b = m ? lmz_arena_alloc(m->arena, sizeof *b) : NULL;
  if (!b) {
    lmz__msg_free(ctx->node, m);
    return LMZ_ENOMEM;
  }
  *b = (struct lmz__bcast){.node = ctx->node, .m = m, .binding = bd,
                           .caller = ctx->actor};
  struct lmz_call_opts co = {.new_chain = opts && opts->new_chain,
                             .state = opts ? opts->state : NULL};
  rv = copy_targets(ctx, b, instances, n);
  if (!rv)
    rv = (b->chain = lmz_value_copy(m->arena, lmz_ctn_chain(remote))) ? 0 : LMZ_ENOMEM;
  if (!rv)
    rv = lmz__cctx_outgoing(ctx, m->arena, &co, &b->cctx);
  if (!rv)
    rv = copy_handler(ctx, b, opts);
  if (rv) {
    lmz__msg_free(ctx->node, m);
    return rv;
  }
  m->kind = LMZ_MSG_CALL;
  m->binding = bd; /* an outgoing output until released */
  m->bcast = b;
  m->caller = ctx->actor->self;
  if (b->handler)
    ctx->actor->n_pending++; /* pinned until the broadcast ends */
  if (ctx->out_tail) /* held until the turn ends (output gate) */
    ctx->out_tail->next = m;
  else
    ctx->out_head = m;
  ctx->out_tail = m;
  return 0;
}

/* ---- outcomes -------------------------------------------------------------- */

static void bcast_end(struct lmz__bcast *b) {
  if (b->handler)
    b->caller->n_pending--;
  lmz__msg_free(b->node, b->m);
}

static void unwait(struct lmz__bcast *b) {
  LMZ_ASSERT(b->waiting > 0);
  if (--b->waiting == 0)
    bcast_end(b);
}

/* {instance, ok, result|error} */
static lmz_value *outcome_value(lmz_arena *a, const char *inst, bool ok,
                                const lmz_value *v) {
  lmz_value *o = lmz_object(a);
  lmz_value *c = v ? lmz_value_copy(a, v) : lmz_undefined();
  if (!o || !c || lmz_object_setc(o, "instance", lmz_cstring(a, inst)) ||
      lmz_object_setc(o, "ok", lmz_bool(ok)) ||
      lmz_object_setc(o, ok ? "result" : "error", c))
    return NULL;
  return o;
}

/* The handler turn for one target's outcome, on the (pinned) caller. */
static void run_handler(struct lmz__bcast *b, uint32_t idx, bool ok,
                        const lmz_value *v) {
  lmz_node_t *n = b->node;
  lmz_arena *a = lmz_node_arena_get(n);
  lmz_msg *h = a ? lmz_arena_alloc(a, sizeof *h) : NULL;
  lmz_value *chain = h ? lmz_value_copy(a, b->handler) : NULL;
  lmz_value *out = chain ? outcome_value(a, b->inst[idx], ok, v) : NULL;
  if (h)
    memset(h, 0, sizeof *h);
  if (!out || lmz__cctx_copy(a, &h->cctx, &b->hctx, true) ||
      lmz__ocan_substitute(a, chain, out)) {
    LMZ_LOG_ERROR(&log_ns, "out of memory delivering a broadcast outcome to %s"
                  LMZ__TRACE_FMT, b->caller->key, LMZ__TRACE_ARGS(&b->cctx));
    lmz_node_arena_put(n, a);
    return;
  }
  h->kind = LMZ_MSG_HANDLER;
  h->arena = a;
  h->chain = chain;
  h->caller = b->caller->self;
  b->caller->n_pending++; /* the handler turn decrements it (turn.c) */
  lmz__mailbox_push(n, b->caller, h);
}

/* One target's outcome (handler mode; each target reports exactly once). */
static void outcome(struct lmz__bcast *b, uint32_t idx, bool ok,
                    const lmz_value *v) {
  if (!b->handler)
    return;
  if (!ok || b->all_results)
    run_handler(b, idx, ok, v);
  unwait(b);
}

static void outcome_error(struct lmz__bcast *b, uint32_t idx, const char *name,
                          const char *why) {
  if (!b->handler) {
    LMZ_LOG_WARN(&log_ns, "broadcast to %s/%s failed with no handler: %s"
                 LMZ__TRACE_FMT, b->binding->name, b->inst[idx], why,
                 LMZ__TRACE_ARGS(&b->cctx));
    return;
  }
  lmz_arena *a = lmz_arena_new();
  lmz_value *e = a ? lmz__error_value(a, name, "actor %s/%s: %s", b->binding->name,
                                      b->inst[idx], why) : NULL;
  if (e && !strcmp(name, "ActorUnavailableError"))
    lmz_error_set_prop(e, "retryable", 9, lmz_bool(true));
  outcome(b, idx, false, e);
  lmz_arena_free(a);
}

static void single_done(void *arg, int status, bool ok, const lmz_value *v) {
  struct target_ref *t = arg;
  outcome(t->b, t->idx, status == 0 && ok, v);
}

/* ---- targets routed alone ------------------------------------------------ */

lmz_msg *lmz__bcast_target_msg(lmz_node_t *n, struct lmz_binding *bd,
                               const char *instance, const lmz_value *chain,
                               const struct lmz_cctx *cctx) {
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return NULL;
  m->kind = LMZ_MSG_CALL;
  m->binding = bd;
  if (!(m->instance = lmz_arena_strndup(m->arena, instance, strlen(instance))) ||
      !(m->chain = lmz_value_copy(m->arena, chain)) ||
      lmz__cctx_copy(m->arena, &m->cctx, cctx, true)) {
    lmz__msg_free(n, m);
    return NULL;
  }
  /* the broadcast's trace goes on; each target's call is its own chain
   * entry, so it gets its own call id (minted by the node delivering it) */
  lmz__cctx_trace(&m->cctx, NULL, NULL);
  if (m->cctx.n)
    m->caller = m->cctx.chain[m->cctx.n - 1];
  return m;
}

/* A call message for target idx; with a handler its reply is the target's
 * outcome (the target's count in b->waiting passes to it). */
static lmz_msg *single_msg(struct lmz__bcast *b, uint32_t idx) {
  lmz_msg *m = lmz__bcast_target_msg(b->node, b->binding, b->inst[idx],
                                     b->chain, &b->cctx);
  if (!m) {
    outcome_error(b, idx, "Error", "out of memory");
    return NULL;
  }
  if (b->handler) {
    m->rkind = LMZ_REPLY_CB;
    m->cb = single_done;
    m->cb_arg = &b->refs[idx];
  }
  return m;
}

static void send_single(struct lmz__bcast *b, uint32_t idx) {
  lmz_msg *m = single_msg(b, idx);
  if (m) /* routed like any outgoing call (fails through its reply) */
    lmz__release_output(b->node, m);
}

/* ---- the release: grouping by owner ------------------------------------- */

struct group { /* targets of one other owner node */
  uint64_t owner;
  uint32_t *idx;
  uint64_t *epoch;
  uint32_t n, cap;
};

static int group_add(struct group **gs, size_t *ng, uint64_t owner,
                     uint32_t idx, uint64_t epoch) {
  struct group *g = NULL;
  for (size_t i = 0; i < *ng && !g; i++) /* a handful of nodes: a scan */
    g = (*gs)[i].owner == owner ? &(*gs)[i] : NULL;
  if (!g) {
    struct group *ngs = realloc(*gs, (*ng + 1) * sizeof *ngs);
    if (!ngs)
      return LMZ_ENOMEM;
    *gs = ngs;
    g = &ngs[(*ng)++];
    *g = (struct group){.owner = owner};
  }
  if (g->n == g->cap) {
    uint32_t cap = g->cap ? g->cap * 2 : 64;
    uint32_t *ni = realloc(g->idx, cap * sizeof *ni);
    if (ni)
      g->idx = ni;
    uint64_t *ne = ni ? realloc(g->epoch, cap * sizeof *ne) : NULL;
    if (!ne)
      return LMZ_ENOMEM;
    g->epoch = ne;
    g->cap = cap;
  }
  g->idx[g->n] = idx;
  g->epoch[g->n++] = epoch;
  return 0;
}

/* The call context, encoded once for all of a broadcast's frames. */
struct enc_ctx {
  lmz_buf chain, state, auth;
  Lmz__CallContext ctx;
  Lmz__Identity *ids[LMZ_MAX_CALL_CHAIN], idv[LMZ_MAX_CALL_CHAIN];
};

static int encode_ctx(const struct lmz__bcast *b, struct enc_ctx *e) {
  const struct lmz_cctx *c = &b->cctx;
  lmz__call_context__init(&e->ctx);
  if (c->n > LMZ_MAX_CALL_CHAIN || lmz_bin_encode(b->chain, &e->chain, NULL) ||
      (c->state && lmz_bin_encode(c->state, &e->state, NULL)) ||
      (c->origin_auth && lmz_bin_encode(c->origin_auth, &e->auth, NULL)))
    return LMZ_ENOMEM;
  for (size_t i = 0; i < c->n; i++) {
    lmz__identity__init(&e->idv[i]);
    e->idv[i].type = c->chain[i].type;
    e->idv[i].binding = (char *)c->chain[i].binding;
    e->idv[i].instance = (char *)(c->chain[i].instance ? c->chain[i].instance : "");
    e->idv[i].has_instance = c->chain[i].instance != NULL;
    e->ids[i] = &e->idv[i];
  }
  e->ctx.n_call_chain = c->n;
  e->ctx.call_chain = e->ids;
  e->ctx.state = (ProtobufCBinaryData){e->state.len, e->state.data};
  e->ctx.origin_auth = (ProtobufCBinaryData){e->auth.len, e->auth.data};
  e->ctx.trace_id = (char *)c->trace_id; /* b outlives the frame's encoding */
  e->ctx.call_id = (char *)c->call_id;
  return 0;
}

static void flight_free(struct flight *fl) {
  free(fl->idx);
  free(fl->settled);
  free(fl);
}

static int flight_add(struct lmz__bcast_rt *rt, struct flight *fl) {
  int rv = lmz_hmap_put(&rt->flights, &fl->id, sizeof fl->id, fl, NULL);
  if (rv)
    return rv;
  fl->next = NULL;
  fl->prev = rt->tail;
  if (rt->tail)
    rt->tail->next = fl;
  else
    rt->head = fl;
  rt->tail = fl;
  return 0;
}

static void flight_remove(struct lmz__bcast_rt *rt, struct flight *fl) {
  lmz_hmap_del(&rt->flights, &fl->id, sizeof fl->id);
  if (fl->prev)
    fl->prev->next = fl->next;
  else
    rt->head = fl->next;
  if (fl->next)
    fl->next->prev = fl->prev;
  else
    rt->tail = fl->prev;
}

/* One frame: targets g[from, from + k) to g->owner. Returns 0 (the flight
 * waits for its answer) or an error (nothing sent; the caller routes the
 * targets alone). */
static int send_frame(struct lmz__bcast_rt *rt, struct lmz__bcast *b,
                      const struct group *g, uint32_t from, uint32_t k,
                      Lmz__Broadcast *tpl) {
  struct flight *fl = calloc(1, sizeof *fl);
  Lmz__BroadcastTarget *tv = malloc(k * sizeof *tv);
  Lmz__BroadcastTarget **tp = malloc(k * sizeof *tp);
  int rv = fl && tv && tp ? 0 : LMZ_ENOMEM;
  if (!rv && (!(fl->idx = malloc(k * sizeof *fl->idx)) ||
              !(fl->settled = calloc(k, 1))))
    rv = LMZ_ENOMEM;
  for (uint32_t i = 0; !rv && i < k; i++) {
    lmz__broadcast_target__init(&tv[i]);
    tv[i].instance = (char *)b->inst[g->idx[from + i]];
    tv[i].epoch = g->epoch[from + i];
    tp[i] = &tv[i];
    fl->idx[i] = g->idx[from + i];
  }
  if (!rv) {
    *fl = (struct flight){++rt->next_id, g->owner, lmz__router_now_ms(rt->r), b,
                          fl->idx, fl->settled, k, 0, NULL, NULL};
    tpl->batch_id = fl->id;
    tpl->n_targets = k;
    tpl->targets = tp;
    Lmz__Frame f = LMZ__FRAME__INIT;
    f.body_case = LMZ__FRAME__BODY_BROADCAST;
    f.broadcast = tpl;
    rv = lmz__router_send(rt->r, g->owner, &f);
  }
  if (!rv && !(rv = flight_add(rt, fl))) {
    b->waiting++;
    rt->frames_out++;
    rt->targets_out += k;
  }
  free(tv);
  free(tp);
  if (rv && fl)
    flight_free(fl);
  return rv;
}

/* A group in frames of at most LMZ_BROADCAST_FRAME_TARGETS targets and the
 * frame cap (`base` = the frame's size without targets; a target adds its
 * name and at most 20 bytes of protobuf tags, lengths and epoch). */
static void send_group(struct lmz__bcast_rt *rt, struct lmz__bcast *b,
                       const struct group *g, Lmz__Broadcast *tpl, size_t base) {
  uint32_t i = 0;
  while (i < g->n) {
    uint32_t k = 0;
    size_t len = base;
    while (i + k < g->n && k < LMZ_BROADCAST_FRAME_TARGETS) {
      size_t add = strlen(b->inst[g->idx[i + k]]) + 20;
      if (len + add > LMZ_FRAME_MAX_DEFAULT)
        break;
      len += add;
      k++;
    }
    if (k == 0) { /* the chain alone fills a frame: it fails as a call would */
      send_single(b, g->idx[i++]);
      continue;
    }
    if (send_frame(rt, b, g, i, k, tpl))
      for (uint32_t j = 0; j < k; j++) /* link down, queue full ...: alone */
        send_single(b, g->idx[i + j]);
    i += k;
  }
}

static void send_groups(lmz_router_t *r, struct lmz__bcast *b, struct group *gs,
                        size_t ng) {
  struct enc_ctx e;
  memset(&e, 0, sizeof e); /* empty buffers (LMZ_BUF_INIT is all zeros) */
  Lmz__Broadcast tpl = LMZ__BROADCAST__INIT;
  int rv = encode_ctx(b, &e);
  tpl.version = 1;
  tpl.binding = b->binding->name;
  tpl.chain = (ProtobufCBinaryData){e.chain.len, e.chain.data};
  tpl.ctx = &e.ctx;
  tpl.results = !b->handler ? 0 : b->all_results ? 2 : 1;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_BROADCAST;
  f.broadcast = &tpl;
  size_t base = lmz_frame_encoded_len(&f) + 16; /* + batch id */
  for (size_t i = 0; i < ng; i++) {
    if (rv) { /* cannot encode: every target alone (each fails or runs) */
      for (uint32_t j = 0; j < gs[i].n; j++)
        send_single(b, gs[i].idx[j]);
      continue;
    }
    send_group(lmz__router_bcast_rt(r), b, &gs[i], &tpl, base);
  }
  lmz_buf_free(&e.chain);
  lmz_buf_free(&e.state);
  lmz_buf_free(&e.auth);
}

/* Other nodes' frames go first and are written at once: this node's own
 * targets are turns the loop runs next, and the transport would otherwise
 * write only after them (its flush is once per loop iteration), leaving
 * the other nodes idle meanwhile. */
void lmz__bcast_start(lmz_node_t *n, lmz_msg *m) {
  struct lmz__bcast *b = m->bcast;
  lmz_router_t *r = n->router;
  struct group *gs = NULL;
  size_t ng = 0, n_alone = 0;
  uint32_t *alone = malloc((b->n ? b->n : 1) * sizeof *alone);
  b->waiting = 1 + (b->handler ? b->n : 0); /* 1: held until routed */
  for (uint32_t i = 0; i < b->n; i++) {
    uint64_t owner = 0, epoch = 0;
    if (r && alone &&
        lmz__router_bcast_owner(r, b->binding, b->inst[i], &owner, &epoch) &&
        group_add(&gs, &ng, owner, i, epoch) == 0)
      continue;
    if (alone)
      alone[n_alone++] = i;
    else /* no memory for the list: at once, in order */
      send_single(b, i);
  }
  if (ng)
    send_groups(r, b, gs, ng);
  for (size_t i = 0; i < ng; i++) {
    lmz__router_flush(r, gs[i].owner);
    free(gs[i].idx);
    free(gs[i].epoch);
  }
  free(gs);
  for (size_t i = 0; i < n_alone; i++)
    send_single(b, alone[i]);
  free(alone);
  unwait(b);
}

void lmz__bcast_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err) {
  (void)n;
  struct lmz__bcast *b = m->bcast;
  b->waiting = 1 + (b->handler ? b->n : 0);
  if (!b->handler)
    LMZ_LOG_WARN(&log_ns, "broadcast to %u %s actors not sent: %s" LMZ__TRACE_FMT,
                 b->n, b->binding->name,
                 err && lmz_typeof(err) == LMZ_T_ERROR ? lmz_error_message(err) : "?",
                 LMZ__TRACE_ARGS(&b->cctx));
  for (uint32_t i = 0; b->handler && i < b->n; i++)
    outcome(b, i, false, err);
  unwait(b);
}

void lmz__bcast_drop(lmz_node_t *n, lmz_msg *m) {
  struct lmz__bcast *b = m->bcast;
  if (b->handler)
    b->caller->n_pending--;
  lmz__msg_free(n, m);
}

/* ---- answers from the receivers ------------------------------------------ */

/* Unsettled targets of a flight that ends: without `why` (the final answer
 * came) they succeeded (failures were listed); with it they failed. */
static void flight_finish(struct lmz__bcast_rt *rt, struct flight *fl,
                          const char *why) {
  struct lmz__bcast *b = fl->b;
  flight_remove(rt, fl);
  uint32_t failed = 0;
  for (uint32_t i = 0; i < fl->n; i++) {
    if (fl->settled[i])
      continue;
    if (!why) {
      outcome(b, fl->idx[i], true, lmz_undefined());
    } else if (b->handler) {
      outcome_error(b, fl->idx[i], "ActorUnavailableError", why);
    } else {
      failed++;
    }
  }
  if (failed) /* fire-and-forget: one line per frame, not per target */
    LMZ_LOG_WARN(&log_ns, "broadcast to %u %s actors on node %llu: %s (they may "
                 "or may not have run)" LMZ__TRACE_FMT, failed, b->binding->name,
                 (unsigned long long)fl->peer, why, LMZ__TRACE_ARGS(&b->cctx));
  flight_free(fl);
  unwait(b);
}

static void flight_outcome(struct lmz__bcast_rt *rt, struct flight *fl,
                           const Lmz__BroadcastOutcome *o, lmz_arena *a) {
  if (o->index >= fl->n || fl->settled[o->index])
    return; /* hostile or repeated: ignored */
  fl->settled[o->index] = 1;
  struct lmz__bcast *b = fl->b;
  uint32_t idx = fl->idx[o->index];
  if (o->code == LMZ_EMOVED || (o->code == LMZ_EUNAVAILABLE && !o->value.len)) {
    rt->moved_in++;
    lmz_msg *m = single_msg(b, idx); /* only this target, alone */
    if (m) {
      m->hops = fl->hops + 1;
      lmz__router_moved(rt->r, m, fl->peer);
    }
    return;
  }
  lmz_value *v = NULL;
  struct lmz_codec_limits lim;
  lmz_codec_limits_default(&lim);
  lim.max_input = LMZ_FRAME_MAX_DEFAULT;
  lmz_arena_reset(a);
  if (o->value.len && lmz_bin_decode(a, o->value.data, o->value.len, &lim, &v, NULL))
    v = NULL;
  if (o->code || (o->value.len && !v))
    outcome_error(b, idx, "ActorUnavailableError",
                  o->detail && *o->detail ? o->detail : "bad reply");
  else
    outcome(b, idx, o->ok, v ? v : lmz_undefined());
}

void lmz__bcast_on_result(struct lmz__bcast_rt *rt, uint64_t peer,
                          const Lmz__BroadcastResult *res) {
  uint64_t id = res->batch_id;
  struct flight *fl = lmz_hmap_get(&rt->flights, &id, sizeof id);
  if (!fl || fl->peer != peer)
    return; /* timed out already, or not ours */
  lmz_arena *a = res->n_outcomes ? lmz_arena_new() : NULL;
  for (size_t i = 0; i < res->n_outcomes; i++)
    flight_outcome(rt, fl, res->outcomes[i], a);
  lmz_arena_free(a);
  if (res->final)
    flight_finish(rt, fl, NULL);
}

/* ---- the router's side --------------------------------------------------- */

void lmz__bcast_rt_tick(struct lmz__bcast_rt *rt, uint64_t now) {
  while (rt->head && now - rt->head->sent_ms >= LMZ_BCAST_TIMEOUT_MS)
    flight_finish(rt, rt->head, "its owner did not answer");
}

void lmz__bcast_rt_peer_down(struct lmz__bcast_rt *rt, uint64_t peer) {
  struct flight *fl = rt->head;
  while (fl) {
    struct flight *next = fl->next;
    if (fl->peer == peer)
      flight_finish(rt, fl, "the connection to its owner was lost");
    fl = next;
  }
}

/* Fails every flight (router close). */
void lmz__bcast_rt_fail_flights(struct lmz__bcast_rt *rt) {
  while (rt->head)
    flight_finish(rt, rt->head, "the node is shutting down");
}
