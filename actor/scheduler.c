/* actor/scheduler.c - the node: activations, mailboxes, the run queue, calls
 * entering the node and calls between actors, idle eviction, shutdown.
 *
 * Happy path: a message is delivered to its actor (activated on first use,
 * with an on_start turn first when the class has one); an actor with messages
 * and no running turn sits on the run queue; a uv_idle handle drains the run
 * queue in budgets of turns per loop iteration, so network I/O interleaves.
 * Failure modes:
 *  1. unknown binding / wrong instance: target validation errors (the
 *     original's texts), thrown into the caller's turn or returned to the
 *     external caller;
 *  2. overload: a call that finds its actor's mailbox at max_queue, or the
 *     node at max_pending calls pending (accepted and not answered yet,
 *     handler continuations included), is refused with MeshOverloadedError
 *     (retryable: true, overloaded: true) as an ordinary error reply, sent
 *     on the next loop iteration before any queued turn runs; HTTP requests
 *     get LMZ_EOVERLOAD at once (the gateway answers 503);
 *  3. out of memory while creating a message: LMZ_ENOMEM;
 *  4. node closing: new calls get LMZ_ECANCELED, queued work still runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "actor/actor_int.h"
#include "actor/router.h"
#include "cluster/cluster.h"
#include "storage/keys.h"
#include "storage/store.h"

lmz_log_ns lmz__actor_log = LMZ_LOG_NS("lmz.actor");

#define TURN_BUDGET 4096
#define POOL_MAX 16384

/* ---- arenas and messages ------------------------------------------------- */

lmz_arena *lmz_node_arena_get(lmz_node_t *n) {
  if (n->pool_n)
    return n->pool[--n->pool_n];
  return lmz_arena_new();
}

void lmz_node_arena_put(lmz_node_t *n, lmz_arena *a) {
  if (!a)
    return;
  if (n->pool_n == n->pool_cap && n->pool_cap < POOL_MAX) {
    size_t cap = n->pool_cap ? n->pool_cap * 2 : 64;
    lmz_arena **p = realloc(n->pool, cap * sizeof *p);
    if (p) {
      n->pool = p;
      n->pool_cap = cap;
    }
  }
  if (n->pool_n < n->pool_cap) {
    lmz_arena_reset(a);
    lmz_arena_set_limit(a, 0);
    n->pool[n->pool_n++] = a;
  } else {
    lmz_arena_free(a);
  }
}

lmz_msg *lmz__msg_new(lmz_node_t *n) {
  lmz_arena *a = lmz_node_arena_get(n);
  if (!a)
    return NULL;
  lmz_msg *m = lmz_arena_alloc(a, sizeof *m);
  if (!m) {
    lmz_node_arena_put(n, a);
    return NULL;
  }
  memset(m, 0, sizeof *m);
  m->arena = a;
  return m;
}

void lmz__msg_free(lmz_node_t *n, lmz_msg *m) {
  if (!m)
    return;
  if (m->counted) {
    LMZ_ASSERT(n->calls_pending > 0);
    n->calls_pending--;
  }
  lmz_node_arena_put(n, m->arena); /* m lives in its own arena */
}

/* ---- clock --------------------------------------------------------------- */

double lmz_node_now_ms(lmz_node_t *n) {
  if (n->opts.clock)
    return n->opts.clock(n->opts.clock_data);
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec * 1000.0 + (double)(tv.tv_usec / 1000);
}

/* ---- activations --------------------------------------------------------- */

static int actor_init_identity(lmz_actor *a, struct lmz_binding *b,
                               const char *instance) {
  size_t bl = b->name_len, il = instance ? strlen(instance) : 0;
  a->key = malloc(bl + 1 + il + 1);
  if (!a->key)
    return LMZ_ENOMEM;
  memcpy(a->key, b->name, bl + 1);
  if (instance)
    memcpy(a->key + bl + 1, instance, il + 1);
  a->key_len = bl + 1 + il;
  a->instance = instance ? a->key + bl + 1 : NULL;
  a->self = (lmz_identity){b->kind, b->name, a->instance};
  if (b->kind != LMZ_NODE_DO)
    return 0;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, b->name, bl, instance, il);
  if (pl < 0)
    return pl;
  a->prefix = malloc((size_t)pl);
  if (!a->prefix)
    return LMZ_ENOMEM;
  memcpy(a->prefix, prefix, (size_t)pl);
  a->prefix_len = (size_t)pl;
  return 0;
}

void lmz__actor_free(lmz_actor *a) {
  if (!a)
    return;
  lmz__cache_free(a);
  lmz_chain_unref(a->chain);
  lmz__sql_close(a);
  lmz_arena_free(a->err_arena);
  free(a->prefix);
  free(a->key);
  free(a);
}

static int enqueue_start(lmz_node_t *n, lmz_actor *a) {
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return LMZ_ENOMEM;
  m->kind = LMZ_MSG_START;
  LMZ_ASSERT(!a->q_head); /* a new activation: on_start runs first */
  lmz__mailbox_push(n, a, m);
  return 0;
}

lmz_actor *lmz__actor_get(lmz_node_t *n, struct lmz_binding *b,
                          const char *instance, bool create) {
  char stack[512];
  size_t bl = b->name_len, il = instance ? strlen(instance) : 0;
  char *key = bl + il + 2 <= sizeof stack ? stack : malloc(bl + il + 2);
  if (!key)
    return NULL;
  memcpy(key, b->name, bl + 1);
  if (instance)
    memcpy(key + bl + 1, instance, il + 1);
  lmz_actor *a = lmz_hmap_get(&n->actors, key, bl + 1 + il);
  if (key != stack)
    free(key);
  if (a || !create)
    return a;
  if (!(a = calloc(1, sizeof *a)))
    return NULL;
  a->node = n;
  a->binding = b;
  if (actor_init_identity(a, b, instance) ||
      lmz_hmap_put(&n->actors, a->key, a->key_len, a, NULL)) {
    lmz__actor_free(a);
    return NULL;
  }
  a->state = LMZ_ACTOR_ACTIVE;
  a->activated_at_ms = lmz_node_now_ms(n);
  a->last_active_ms = a->activated_at_ms;
  snprintf(a->activation_id, sizeof a->activation_id, "%s-%llu", n->boot_id,
           (unsigned long long)++n->activation_counter);
  n->stats.activations++;
  if (b->cls->opts.on_start) {
    a->state = LMZ_ACTOR_STARTING;
    if (enqueue_start(n, a)) {
      lmz_hmap_del(&n->actors, a->key, a->key_len);
      lmz__actor_free(a);
      return NULL;
    }
  }
  LMZ_LOG_DEBUG(&lmz__actor_log, "activated %s/%s (%s)", b->name,
                instance ? instance : "-", a->activation_id);
  return a;
}

const char *lmz_activation_id(lmz_ctx *ctx, double *activated_at) {
  if (activated_at)
    *activated_at = ctx->actor->activated_at_ms;
  return ctx->actor->activation_id;
}

/* ---- run queue ----------------------------------------------------------- */

static void idle_cb(uv_idle_t *h);
static void idle_start(lmz_node_t *n);

void lmz__mailbox_push(lmz_node_t *n, lmz_actor *a, lmz_msg *m) {
  m->next = NULL;
  if (a->q_tail)
    a->q_tail->next = m;
  else
    a->q_head = m;
  a->q_tail = m;
  a->q_len++;
  n->queued++;
  lmz__schedule(n, a);
}

void lmz__schedule(lmz_node_t *n, lmz_actor *a) {
  if (a->in_runq || a->running || !a->q_head)
    return;
  a->in_runq = true;
  a->run_next = NULL;
  if (n->rq_tail)
    n->rq_tail->run_next = a;
  else
    n->rq_head = a;
  n->rq_tail = a;
  idle_start(n);
}

static void idle_start(lmz_node_t *n) {
  if (!n->idle_active) {
    uv_idle_start(&n->idle, idle_cb);
    n->idle_active = true;
  }
}

static void idle_cb(uv_idle_t *h) {
  lmz_node_t *n = h->data;
  /* refusals first: an overloaded caller hears it before the queue moves */
  if (n->rej_head)
    lmz__flush_refused(n);
  /* one clock read per batch: idle eviction needs no finer resolution */
  double now = lmz_node_now_ms(n);
  for (int budget = TURN_BUDGET; budget > 0 && n->rq_head; budget--) {
    lmz_actor *a = n->rq_head;
    n->rq_head = a->run_next;
    if (!n->rq_head)
      n->rq_tail = NULL;
    a->in_runq = false;
    lmz_msg *m = a->q_head;
    if (!m)
      continue;
    a->q_head = m->next;
    if (!a->q_head)
      a->q_tail = NULL;
    a->q_len--;
    n->queued--;
    m->next = NULL;
    a->running = true;
    lmz__run_turn(n, a, m);
    a->running = false;
    a->last_active_ms = now;
    lmz__schedule(n, a);
  }
  if (!n->rq_head && !n->rej_head) {
    uv_idle_stop(&n->idle);
    n->idle_active = false;
  }
}

/* ---- delivery ------------------------------------------------------------ */

void lmz__node_set_router(lmz_node_t *n, struct lmz_router_s *r) {
  n->router = r;
}

/* ---- overload ------------------------------------------------------------ */

/* Refuses m: its error reply (err; NULL = out of memory, a generic error)
 * leaves on the next loop iteration, never from inside lmz_node_call. */
static void refuse(lmz_node_t *n, lmz_msg *m, lmz_value *err) {
  m->binding = NULL; /* a reply from now on */
  m->reply_ok = false;
  m->reply_value = err;
  m->next = NULL;
  if (n->rej_tail)
    n->rej_tail->next = m;
  else
    n->rej_head = m;
  n->rej_tail = m;
  idle_start(n);
  uint64_t total = n->stats.overloaded_mailbox + n->stats.overloaded_node;
  if (total % 10000 == 1) /* the first, then one line per 10,000 */
    LMZ_LOG_WARN(&lmz__actor_log,
                 "overloaded: %llu calls refused so far (%s; this one:"
                 LMZ__TRACE_FMT ")", (unsigned long long)total,
                 err ? lmz_error_message(err) : "out of memory",
                 LMZ__TRACE_ARGS(&m->cctx));
}

void lmz__flush_refused(lmz_node_t *n) {
  lmz_msg *m = n->rej_head;
  n->rej_head = n->rej_tail = NULL; /* replies may refuse more: next time */
  while (m) {
    lmz_msg *next = m->next;
    if (m->rkind == LMZ_REPLY_NONE) /* fire-and-forget: counted and logged */
      lmz__msg_free(n, m);
    else
      lmz__msg_fail(n, m, m->reply_value);
    m = next;
  }
}

/* Durable-object calls go through the cluster router (one code path for one
 * node and many); workers and built-in relay classes (the client gateway)
 * always run on the node that has the call. A call counts in calls_pending
 * from here until its message is freed (answered, or its handler turn has
 * run); 0 = taken (delivered, routed or refused), else nothing was taken. */
int lmz__deliver(lmz_node_t *n, lmz_msg *m) {
  if (n->calls_pending >= n->opts.max_pending) {
    n->stats.overloaded_node++;
    if (m->kind == LMZ_MSG_HTTP)
      return LMZ_EOVERLOAD;
    refuse(n, m, lmz__overloaded_error(m->arena,
               "node %s is overloaded: too many calls pending "
               "(limits.pending_calls_max = %u)", n->id, n->opts.max_pending));
    return 0;
  }
  m->counted = true;
  n->calls_pending++;
  if (n->router && !m->routed && m->binding->kind == LMZ_NODE_DO &&
      (m->binding->cls->raw ? lmz__router_route_relay(n->router, m)
                            : lmz__router_route(n->router, m)) == 0)
    return 0; /* m may be gone (answered at once) */
  /* routed here by a peer: the same activation gate as our own calls */
  if (n->router && m->routed && m->binding->kind == LMZ_NODE_DO &&
      !m->binding->cls->raw && lmz__router_gate(n->router, m) == 0)
    return 0;
  int rv = lmz__deliver_local(n, m);
  if (rv) {
    m->counted = false;
    n->calls_pending--;
  }
  return rv;
}

struct lmz_router_s *lmz_node_router(lmz_node_t *n) {
  return n->router;
}

void lmz_node_claim_local(lmz_node_t *n, const char *binding,
                          const char *instance) {
  if (!n->router || !binding || !instance)
    return;
  /* a release in flight is followed by a claim here (revive) */
  if (lmz_cluster_release_cancel(lmz_router_cluster(n->router), binding,
                                 instance, true) == 0)
    lmz__router_claim_local(n->router, binding, instance);
}

void lmz_node_release_placement(lmz_node_t *n, const char *binding,
                                const char *instance) {
  if (!n->router || !binding || !instance)
    return;
  lmz_cluster_t *c = lmz_router_cluster(n->router);
  uint64_t owner = 0, epoch = 0;
  if (lmz_dir_lookup(lmz_cluster_dir(c), binding, strlen(binding), instance,
                     strlen(instance), &owner, &epoch) ||
      owner != lmz_cluster_node_id(c))
    return;
  int rv = lmz_cluster_release(c, binding, instance, epoch);
  if (rv)
    LMZ_LOG_DEBUG(&lmz__actor_log, "release of %s/%s not queued: %s", binding,
                  instance, lmz_strerror(rv));
}

/* Why an epoch: between two placements here the actor lived elsewhere (a
 * failover while this node was away or cut off, a move), and writes made
 * there reach our store through a backup stream or an import, never
 * through the old activation's memory (KV cache, SQL pages, the instance's
 * own fields). Serving from it would run on a copy that missed them. Idle,
 * it is dropped and the new activation reads the store; still finishing
 * old work, the caller retries. */
int lmz__actor_for_epoch(lmz_node_t *n, struct lmz_binding *b,
                         const char *instance, uint64_t epoch,
                         lmz_actor **out) {
  lmz_actor *a = lmz__actor_get(n, b, instance, false);
  if (a && epoch && a->epoch && a->epoch != epoch) {
    if (lmz__actor_pinned(a))
      return LMZ_EUNAVAILABLE;
    LMZ_LOG_INFO(&lmz__actor_log, "%s/%s: dropping its activation of "
                 "placement epoch %llu, now placed here under epoch %llu",
                 b->name, instance, (unsigned long long)a->epoch,
                 (unsigned long long)epoch);
    lmz_hmap_del(&n->actors, a->key, a->key_len);
    lmz__actor_free(a);
    a = NULL;
  }
  uint64_t record = 0; /* a fresh placement's first commit records it */
  bool barrier = false;
  if (!a && epoch && n->router &&
      lmz__router_fresh(n->router, b->name, instance, epoch, &barrier)) {
    int rv = lmz__fresh_check(n, b, instance, epoch,
                              lmz__fresh_since(n->router), &record);
    if (rv)
      return rv;
  }
  if (!a && !(a = lmz__actor_get(n, b, instance, true)))
    return LMZ_ENOMEM;
  if (record) {
    a->fresh_epoch = record;
    a->fresh_barrier = barrier;
  }
  if (epoch)
    a->epoch = epoch;
  *out = a;
  return 0;
}

/* The epoch a durable object's message runs under here: the one it was
 * routed with, else (a forwarded call that named none) the directory's. */
static uint64_t epoch_of(lmz_node_t *n, const lmz_msg *m) {
  if (!n->router || m->binding->kind != LMZ_NODE_DO || m->binding->cls->raw ||
      !m->instance)
    return 0;
  return m->epoch ? m->epoch
                  : lmz__router_epoch(n->router, m->binding->name, m->instance);
}

/* A durable object about to be activated here: a release of its placement
 * may be queued (dropped now) or in flight (then the call is refused,
 * retryable: once the release settled the call claims it afresh, so it
 * never runs on a node that no longer owns it). */
static bool release_in_flight(lmz_node_t *n, const lmz_msg *m) {
  if (!n->router || m->binding->kind != LMZ_NODE_DO || m->binding->cls->raw ||
      !m->instance || lmz__actor_get(n, m->binding, m->instance, false))
    return false;
  return lmz_cluster_release_cancel(lmz_router_cluster(n->router),
                                    m->binding->name, m->instance,
                                    false) == LMZ_EBUSY;
}

int lmz__deliver_local(lmz_node_t *n, lmz_msg *m) {
  if (release_in_flight(n, m)) {
    if (m->kind == LMZ_MSG_HTTP)
      return LMZ_EUNAVAILABLE;
    lmz_value *e = lmz__error_value(m->arena, "ActorUnavailableError",
                                    "actor %s/%s is unavailable: its placement "
                                    "is being released; retry", m->binding->name,
                                    m->instance);
    if (e)
      lmz_error_set_prop(e, "retryable", 9, lmz_bool(true));
    refuse(n, m, e);
    return 0;
  }
  lmz_actor *a;
  int rv = lmz__actor_for_epoch(n, m->binding, m->instance, epoch_of(n, m), &a);
  if (rv == LMZ_EUNAVAILABLE && m->kind != LMZ_MSG_HTTP) {
    lmz_value *e = lmz__error_value(m->arena, "ActorUnavailableError",
                                    "actor %s/%s is unavailable: its previous "
                                    "activation here is still finishing; retry",
                                    m->binding->name, m->instance);
    if (e)
      lmz_error_set_prop(e, "retryable", 9, lmz_bool(true));
    refuse(n, m, e);
    return 0;
  }
  if (rv)
    return rv;
  if (a->q_len >= n->opts.max_queue) {
    n->stats.overloaded_mailbox++;
    if (m->kind == LMZ_MSG_HTTP)
      return LMZ_EOVERLOAD;
    refuse(n, m, lmz__overloaded_error(m->arena,
               "actor %s/%s is overloaded: too many calls queued "
               "(limits.mailbox_max = %u)", a->self.binding,
               a->self.instance ? a->self.instance : "-", n->opts.max_queue));
    return 0;
  }
  m->binding = NULL; /* arrived: from now on the message is the callee's */
  lmz__mailbox_push(n, a, m);
  return 0;
}

/* Target validation (lumenize-behaviour.md 1.3), texts as the original. */
static int validate_target(lmz_node_t *n, const char *binding,
                           const char *instance, struct lmz_binding **out,
                           char *msg, size_t msglen) {
  struct lmz_binding *b = binding ? lmz__binding_get(n, binding) : NULL;
  if (!b) {
    snprintf(msg, msglen, "lmz.call: no binding named '%s' in env.",
             binding ? binding : "");
    return LMZ_EINVAL;
  }
  if (b->kind == LMZ_NODE_WORKER && instance) {
    snprintf(msg, msglen,
             "lmz.call: '%s' is a Worker/service binding but an instance name "
             "('%s') was supplied. Workers have no instance name.",
             binding, instance);
    return LMZ_EINVAL;
  }
  if (b->kind == LMZ_NODE_DO && (!instance || !*instance)) {
    snprintf(msg, msglen,
             "lmz.call: '%s' is a Durable Object namespace and requires an "
             "instance name.", binding);
    return LMZ_EINVAL;
  }
  if (instance && strlen(instance) > LMZ_KEY_INSTANCE_MAX) {
    snprintf(msg, msglen, "lmz.call: instance name longer than %d bytes",
             LMZ_KEY_INSTANCE_MAX);
    return LMZ_EINVAL;
  }
  *out = b;
  return 0;
}

/* ---- calls from handlers (lmz/lmz.h) ------------------------------------ */

int lmz__make_pending(lmz_ctx *ctx, lmz_ctn *handler,
                      const struct lmz_call_opts *opts,
                      struct lmz_pending **out) {
  lmz_node_t *n = ctx->node;
  lmz_arena *pa = lmz_node_arena_get(n);
  if (!pa)
    return LMZ_ENOMEM;
  struct lmz_pending *p = lmz_arena_alloc(pa, sizeof *p);
  struct lmz_cctx now = ctx->cctx ? *ctx->cctx : (struct lmz_cctx){0};
  if (!p || !(p->handler = lmz_value_copy(pa, lmz_ctn_chain(handler))) ||
      lmz__cctx_copy(pa, &p->cctx, &now, true)) {
    lmz_node_arena_put(n, pa);
    return LMZ_ENOMEM;
  }
  p->actor = ctx->actor;
  p->arena = pa;
  p->on_error_only = opts && opts->on_error_only;
  *out = p;
  return 0;
}

int lmz_call(lmz_ctx *ctx, const char *binding, const char *instance,
             lmz_ctn *remote, lmz_ctn *handler,
             const struct lmz_call_opts *opts) {
  lmz_node_t *n = ctx->node;
  char msg[512];
  struct lmz_binding *b;
  if (!remote || !lmz_ctn_chain(remote))
    return lmz_throwf(ctx, "Error",
                      "Invalid remoteContinuation: must be created with "
                      "lmz_ctn_new()");
  if (validate_target(n, binding, instance, &b, msg, sizeof msg))
    return lmz_throwf(ctx, "Error", "%s", msg);
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return LMZ_ENOMEM;
  int rv = LMZ_ENOMEM;
  m->kind = LMZ_MSG_CALL;
  m->binding = b;
  m->caller = ctx->actor->self;
  if (instance && !(m->instance = lmz_arena_strndup(m->arena, instance,
                                                    strlen(instance))))
    goto err;
  if (!(m->chain = lmz_value_copy(m->arena, lmz_ctn_chain(remote))))
    goto err;
  if ((rv = lmz__cctx_outgoing(ctx, m->arena, opts, &m->cctx)))
    goto err;
  if (handler) {
    if ((rv = lmz__make_pending(ctx, handler, opts, &m->pending)))
      goto err;
    m->rkind = LMZ_REPLY_PENDING;
    ctx->actor->n_pending++;
  }
  /* held in the turn's outbox until the turn ends (output gate) */
  if (ctx->out_tail)
    ctx->out_tail->next = m;
  else
    ctx->out_head = m;
  ctx->out_tail = m;
  return 0;
err:
  lmz__msg_free(n, m);
  return rv;
}

/* ---- calls entering the node --------------------------------------------- */

static int copy_chain_ids(lmz_arena *a, const struct lmz_node_call *c,
                          struct lmz_cctx *out) {
  if (c->call_chain_len > LMZ_MAX_CALL_CHAIN)
    return LMZ_EINVAL;
  out->present = true;
  out->n = c->call_chain_len;
  if (!out->n)
    return 0;
  out->chain = lmz_arena_alloc(a, out->n * sizeof *out->chain);
  if (!out->chain)
    return LMZ_ENOMEM;
  memcpy(out->chain, c->call_chain, out->n * sizeof *out->chain);
  return 0;
}

int lmz_node_call(lmz_node_t *n, const struct lmz_node_call *c,
                  lmz_node_reply_cb cb, void *arg, char *errmsg) {
  char msg[512];
  struct lmz_binding *b;
  if (n->closing) {
    lmz__errmsg_printf(errmsg, "node is shutting down");
    return LMZ_ECANCELED;
  }
  if (validate_target(n, c->binding, c->instance, &b, msg, sizeof msg)) {
    lmz__errmsg_printf(errmsg, "%s", msg);
    return LMZ_EINVAL;
  }
  lmz_msg *m = lmz_arena_alloc(c->arena, sizeof *m);
  if (!m)
    return LMZ_ENOMEM;
  memset(m, 0, sizeof *m);
  m->arena = c->arena;
  m->kind = LMZ_MSG_CALL;
  m->binding = b;
  m->chain = c->chain;
  m->rkind = LMZ_REPLY_CB;
  m->cb = cb;
  m->cb_arg = arg;
  m->routed = c->routed;
  m->epoch = c->epoch;
  if (c->instance &&
      !(m->instance = lmz_arena_strndup(m->arena, c->instance, strlen(c->instance))))
    return LMZ_ENOMEM;
  int rv = copy_chain_ids(m->arena, c, &m->cctx);
  if (rv)
    return rv;
  lmz__cctx_trace(&m->cctx, c->trace_id, c->call_id);
  m->cctx.origin_auth = c->origin_auth;
  m->cctx.state = c->state ? c->state : lmz_object(m->arena);
  if (!m->cctx.state)
    return LMZ_ENOMEM;
  if (m->cctx.n)
    m->caller = m->cctx.chain[m->cctx.n - 1];
  if ((rv = lmz__deliver(n, m))) {
    lmz__errmsg_printf(errmsg, "%s", lmz_strerror(rv));
    return rv;
  }
  n->stats.calls_in++;
  return 0;
}

/* ---- stats --------------------------------------------------------------- */

void lmz_node_get_stats(lmz_node_t *n, struct lmz_node_stats *st) {
  *st = n->stats;
  st->active_actors = n->actors.n;
  st->queued_msgs = n->queued;
  st->calls_pending = n->calls_pending;
}

const char *lmz_node_get_id(lmz_node_t *n) { return n->id; }
uv_loop_t *lmz_node_loop(lmz_node_t *n) { return n->loop; }

bool lmz_node_is_quiet(lmz_node_t *n) {
  return !n->rq_head && !n->c_head && n->queued == 0 && !n->rej_head;
}
