/* actor/turn.c - one turn of one actor, and the output gate.
 *
 * Happy path (DESIGN.md section 3):
 *  1. set up the handler's ctx over the message's arena and call context;
 *  2. run on_start, or on_before_call + the chain (mesh rules), or a handler
 *     / alarm chain (local rules);
 *  3. on success the turn's writes (and alarm changes) become one batch,
 *     committed through the store's group commit; the actor's cache takes
 *     the new values at once, so its next turn reads them;
 *  4. the reply and the outgoing calls of the turn are outputs: released when
 *     the actor's latest commit is durable (at once if nothing is pending).
 * Failure modes:
 *  1. the turn throws: its writes, alarm changes and outgoing calls are
 *     dropped; only the error reply leaves (still behind the gate, since it
 *     may reveal earlier, not yet durable, state);
 *  2. the batch cannot be built (out of memory): the turn fails as 1;
 *  3. the commit fails (disk): replies become StorageErrors, outgoing calls
 *     fail their handlers. No turn whose reads depend on the lost writes
 *     may commit or answer with success: an actor's batches share one
 *     storage chain (storage/store.h), so every later batch of the actor
 *     that was already queued fails without being written (even in a later
 *     group the disk accepted), and the outputs of those turns, and of
 *     read-only turns behind them, fail as well (they wait behind the
 *     gate). The first failure of the actor's current chain drops its cache
 *     (it held the lost writes) and retires the chain: the next turn reads
 *     the disk and commits on a new chain. Failures of an already retired
 *     chain drop nothing (the cache may hold newer, valid writes);
 *  4. an overloaded callee (mailbox or node bound, scheduler.c): the call's
 *     handler gets MeshOverloadedError (a fire-and-forget call is dropped
 *     and counted). */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "actor/broadcast_int.h"
#include "storage/store.h"

_Static_assert(LMZ_ETHROWN == LMZ__ERR_BASE - 12, "LMZ_ETHROWN mismatch");

static void store_commit_cb(lmz_store_t *s, int status, void *arg);

/* ---- outputs ------------------------------------------------------------- */

static void push_output(lmz_msg **head, lmz_msg **tail, lmz_msg *m) {
  m->next = NULL;
  if (*tail)
    (*tail)->next = m;
  else
    *head = m;
  *tail = m;
}

static void release_list(lmz_node_t *n, lmz_msg *m) {
  while (m) {
    lmz_msg *next = m->next;
    m->next = NULL;
    lmz__release_output(n, m);
    m = next;
  }
}

void lmz__msg_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err) {
  if (m->bcast) { /* a broadcast that cannot leave: every target fails */
    lmz__bcast_fail(n, m, err);
    return;
  }
  m->binding = NULL; /* now a reply */
  m->next = NULL;
  m->reply_ok = false;
  m->reply_value = err ? err : lmz_error(m->arena, "Error", "call could not be delivered");
  lmz__release_output(n, m);
}

/* Turns a failed outgoing call into an error reply to its own sender. */
static void fail_call(lmz_node_t *n, lmz_msg *m, int status) {
  lmz__msg_fail(n, m, status == LMZ_EOVERLOAD
                          ? lmz__overloaded_error(m->arena, "call could not be delivered: %s",
                                                  lmz_strerror(status))
                          : lmz__error_value(m->arena, "Error", "call could not be delivered: %s",
                                             lmz_strerror(status)));
}

static void deliver_to_pending(lmz_node_t *n, lmz_msg *m) {
  struct lmz_pending *p = m->pending;
  lmz_actor *caller = p->actor;
  lmz_value *v = m->reply_value ? lmz_value_copy(p->arena, m->reply_value)
                                : lmz_undefined();
  lmz_msg *h = v ? lmz_arena_alloc(p->arena, sizeof *h) : NULL;
  if (!h || lmz__ocan_substitute(p->arena, p->handler, v)) {
    LMZ_LOG_ERROR(&lmz__actor_log, "out of memory delivering a reply to %s"
                  LMZ__TRACE_FMT, caller->key, LMZ__TRACE_ARGS(&p->cctx));
    caller->n_pending--;
    lmz_node_arena_put(n, p->arena);
    return;
  }
  memset(h, 0, sizeof *h);
  h->kind = LMZ_MSG_HANDLER;
  h->arena = p->arena;
  h->chain = p->handler;
  h->cctx = p->cctx;
  h->caller = caller->self;
  h->counted = m->counted; /* the call stays pending until its handler ran */
  m->counted = false;
  /* the caller is pinned (n_pending), so it is still active: enqueue
   * directly, ignoring the mailbox bound (a reply must not be lost) */
  lmz__mailbox_push(n, caller, h);
}

void lmz__release_output(lmz_node_t *n, lmz_msg *m) {
  if (m->fetch) { /* an outbound HTTP request: it leaves now */
    lmz__fetch_release(n, m);
    return;
  }
  if (m->bcast) { /* a broadcast: it routes its targets (broadcast.c) */
    lmz__bcast_start(n, m);
    return;
  }
  if (m->binding) { /* an outgoing call */
    n->stats.calls_local++;
    int rv = lmz__deliver(n, m);
    if (rv)
      fail_call(n, m, rv);
    return;
  }
  switch (m->rkind) {
  case LMZ_REPLY_CB:
    m->cb(m->cb_arg, m->reply_status, m->reply_ok,
          m->reply_value ? m->reply_value : lmz_undefined());
    break;
  case LMZ_REPLY_PENDING:
    if (m->pending->on_error_only && m->reply_ok) {
      m->pending->actor->n_pending--;
      lmz_node_arena_put(n, m->pending->arena);
    } else {
      deliver_to_pending(n, m);
    }
    break;
  case LMZ_REPLY_NONE:
    if (!m->reply_ok) /* a fire-and-forget call that could not be delivered */
      LMZ_LOG_WARN(&lmz__actor_log,
                   "fire-and-forget call failed with no handler: %s" LMZ__TRACE_FMT,
                   m->reply_value && lmz_typeof(m->reply_value) == LMZ_T_ERROR
                       ? lmz_error_message(m->reply_value) : "(non-Error)",
                   LMZ__TRACE_ARGS(&m->cctx));
    break;
  }
  lmz__msg_free(n, m);
}

/* A fire-and-forget call failed on its callee: nobody will hear of it but
 * the log (lumenize-behaviour.md 1.3, step 5). */
static void log_unhandled(lmz_actor *a, const lmz_msg *m, const lmz_value *err) {
  LMZ_LOG_WARN(&lmz__actor_log,
               "fire-and-forget call to %s/%s failed with no handler: %s"
               LMZ__TRACE_FMT,
               a->self.binding, a->self.instance ? a->self.instance : "-",
               err && lmz_typeof(err) == LMZ_T_ERROR ? lmz_error_message(err)
                                                     : "(non-Error)",
               LMZ__TRACE_ARGS(&m->cctx));
}

/* A call whose callee threw (its caller gets the error): debug level, as a
 * thrown error is an ordinary answer; the trace ties it to the caller's
 * lines on other nodes. */
static void log_thrown(lmz_actor *a, const lmz_msg *m, const lmz_value *err) {
  LMZ_LOG_DEBUG(&lmz__actor_log, "call to %s/%s threw: %s" LMZ__TRACE_FMT,
                a->self.binding, a->self.instance ? a->self.instance : "-",
                err && lmz_typeof(err) == LMZ_T_ERROR ? lmz_error_message(err)
                                                      : "(non-Error)",
                LMZ__TRACE_ARGS(&m->cctx));
}

/* ---- commits ------------------------------------------------------------- */

/* Hands a durable object's batch to the replicator before the local
 * commit: a batch that could not be shipped is never written either. */
static int ship_batch(lmz_node_t *n, lmz_actor *a, const struct lmz_batch *b,
                      uint64_t *token) {
  *token = 0;
  if (!n->repl.ship || a->binding->kind != LMZ_NODE_DO)
    return 0;
  return n->repl.ship(n->repl.ctx, a->self.binding, a->self.instance, b,
                      a->fresh_epoch != 0, token);
}

/* A fresh placement's first commit here (actor/fresh.c): shipped FRESH,
 * and it records the epoch - unless it is the empty barrier of a turn
 * that wrote nothing, which records nothing (no fsync for a read). */
static int fresh_prepare(lmz_actor *a, struct lmz_batch *b) {
  if (lmz_batch_count(b) == 0)
    return 0;
  return lmz__fresh_add_to_batch(a, b); /* node-level: not shipped */
}

static int start_commit(lmz_ctx *ctx, struct lmz_batch *b) {
  lmz_node_t *n = ctx->node;
  lmz_commit *c = calloc(1, sizeof *c);
  if (!c)
    return LMZ_ENOMEM;
  lmz_actor *a = ctx->actor;
  if (!a->chain && !(a->chain = lmz_chain_new())) {
    free(c);
    return LMZ_ENOMEM;
  }
  lmz_batch_set_chain(b, a->chain);
  c->chain = a->chain;
  c->node = n;
  c->actor = a;
  bool barrier = lmz_batch_count(b) == 0;
  int rv = fresh_prepare(a, b);
  if (!rv)
    rv = ship_batch(n, a, b, &c->token);
  if (!rv) {
    c->seq = ++n->next_seq;
    rv = lmz_store_commit(n->store, b, store_commit_cb, c);
    if (rv)
      n->next_seq--;
    else if (barrier)
      a->fresh_shipped = true;
    else
      lmz__fresh_queued(a);
  }
  if (rv) {
    free(c);
    return rv;
  }
  if (n->c_tail)
    n->c_tail->next = c;
  else
    n->c_head = c;
  n->c_tail = c;
  ctx->actor->last_commit = c;
  n->stats.commits++;
  lmz__turn_apply_writes(ctx, c->seq);
  lmz__sql_turn_applied(ctx, c->seq);
  return 0;
}

static void fail_outputs(lmz_node_t *n, lmz_msg *m) {
  while (m) {
    lmz_msg *next = m->next;
    m->next = NULL;
    if (m->fetch) {
      lmz__fetch_fail(n, m, lmz__error_value(m->arena, "StorageError",
                                             "the turn's writes could not be made durable"));
      m = next;
      continue;
    }
    if (m->binding) {
      fail_call(n, m, LMZ_ESTORAGE);
    } else {
      m->reply_ok = false;
      m->reply_value = lmz__error_value(m->arena, "StorageError",
                                        "the turn's writes could not be made durable");
      lmz__release_output(n, m);
    }
    m = next;
  }
}

/* Releases (or fails) the outputs of the oldest commit, which is settled:
 * durable here and, when replicated, on every in-sync backup. */
static void commit_settle(lmz_node_t *n, lmz_commit *c, int status) {
  n->c_head = c->next;
  if (!n->c_head)
    n->c_tail = NULL;
  n->durable_seq = c->seq;
  if (c->actor && c->actor->last_commit == c)
    c->actor->last_commit = NULL;
  if (status == 0) {
    release_list(n, c->outputs);
  } else {
    LMZ_LOG_ERROR(&lmz__actor_log, "commit %llu failed: %s (%s)",
                  (unsigned long long)c->seq, lmz_strerror(status),
                  n->store ? n->store->errmsg : "");
    lmz_actor *a = c->actor;
    if (a && a->chain == c->chain) { /* first failure of its chain */
      lmz__cache_free(a);
      lmz__sql_reset(a);
      lmz_chain_unref(a->chain);
      a->chain = NULL;
    }
    fail_outputs(n, c->outputs);
  }
  free(c);
}

/* The output gate, node-wide and in commit order: the head commit leaves
 * once the store reported it and its backups acknowledged it (or can no
 * longer: then it fails). With no replicator left (close), a commit still
 * waiting for backups fails. */
static void gate_advance(lmz_node_t *n) {
  lmz_commit *c;
  while ((c = n->c_head) && c->local_done) {
    int status = c->status;
    if (status == 0 && c->token) {
      int st = n->repl.token_state ? n->repl.token_state(n->repl.ctx, c->token)
                                   : LMZ_ECANCELED;
      if (st == 0)
        return; /* waits for its backups */
      status = st < 0 ? st : 0;
    }
    commit_settle(n, c, status);
  }
}

void lmz__commit_done(lmz_node_t *n, lmz_commit *c, int status) {
  c->local_done = true;
  c->status = status;
  if (status && c->token && n->repl.on_local_failure)
    n->repl.on_local_failure(n->repl.ctx, status);
  gate_advance(n);
}

void lmz_node_set_replicator(lmz_node_t *n,
                             const struct lmz_node_replicator *r) {
  if (r)
    n->repl = *r;
  else
    memset(&n->repl, 0, sizeof n->repl);
  gate_advance(n);
}

void lmz_node_repl_progress(lmz_node_t *n) { gate_advance(n); }

static void store_commit_cb(lmz_store_t *s, int status, void *arg) {
  lmz_commit *c = arg;
  (void)s;
  lmz__commit_done(c->node, c, status);
}

/* ---- the turn ------------------------------------------------------------ */

static void drop_outbox(lmz_ctx *ctx) {
  lmz_msg *m = ctx->out_head;
  while (m) {
    lmz_msg *next = m->next;
    if (m->bcast) {
      lmz__bcast_drop(ctx->node, m);
      m = next;
      continue;
    }
    if (m->fetch)
      lmz__fetch_drop(ctx->actor, m); /* never sent */
    if (m->pending) {
      ctx->actor->n_pending--;
      lmz_node_arena_put(ctx->node, m->pending->arena);
    }
    lmz__msg_free(ctx->node, m);
    m = next;
  }
  ctx->out_head = ctx->out_tail = NULL;
}

static void start_failed(lmz_ctx *ctx) {
  lmz_actor *a = ctx->actor;
  a->state = LMZ_ACTOR_FAILED;
  if (!a->err_arena)
    a->err_arena = lmz_arena_new();
  a->start_error = a->err_arena ? lmz_value_copy(a->err_arena, ctx->thrown) : NULL;
  LMZ_LOG_WARN(&lmz__actor_log, "on_start of %s/%s failed: %s" LMZ__TRACE_FMT,
               a->self.binding, a->self.instance ? a->self.instance : "-",
               lmz_typeof(ctx->thrown) == LMZ_T_ERROR ? lmz_error_message(ctx->thrown) : "?",
               LMZ__TRACE_ARGS(ctx->cctx));
}

static int run_body(lmz_ctx *ctx, lmz_value **result) {
  lmz_actor *a = ctx->actor;
  lmz_msg *m = ctx->msg;
  const struct lmz_class_opts *o = &a->binding->cls->opts;
  int rv;
  switch (m->kind) {
  case LMZ_MSG_START:
    rv = o->on_start ? o->on_start(ctx) : 0;
    if (rv && !ctx->thrown)
      lmz_throwf(ctx, "Error", "%s", lmz_strerror(rv));
    return rv ? LMZ_ETHROWN : 0;
  case LMZ_MSG_CALL:
    if (a->state == LMZ_ACTOR_FAILED)
      return lmz_throw(ctx, a->start_error ? lmz_value_copy(ctx->arena, a->start_error)
                                           : lmz_error(ctx->arena, "Error", "on_start failed"));
    if (a->binding->cls->raw)
      return a->binding->cls->raw(ctx, m->chain, result);
    if (lmz__sql_is_admin(ctx, m->chain)) /* `lmz sql` (operators only) */
      return lmz__sql_admin(ctx, m->chain, result);
    if (o->on_before_call && (rv = o->on_before_call(ctx)))
      return ctx->thrown ? LMZ_ETHROWN : lmz_throwf(ctx, "Error", "%s", lmz_strerror(rv));
    return lmz__ocan_execute(ctx, m->chain, true, result);
  case LMZ_MSG_HANDLER:
    a->n_pending--;
    return lmz__ocan_execute(ctx, m->chain, false, result);
  case LMZ_MSG_ALARM:
    return lmz__ocan_execute(ctx, m->chain, false, result);
  case LMZ_MSG_HTTP:
    return lmz__http_run(ctx);
  }
  return LMZ_EINVAL;
}

/* Builds and starts the commit of a successful (or alarm-failed) turn. */
static int commit_turn(lmz_ctx *ctx, int rv) {
  struct lmz_batch *b = NULL;
  int err = rv == 0 ? lmz__turn_build_batch(ctx, &b) : 0;
  if (!err && rv == 0)
    err = lmz__sql_add_to_batch(ctx, &b);
  if (!err && ctx->alarm_ops) {
    if (!b && !(b = lmz_batch_new()))
      err = LMZ_ENOMEM;
    if (!err)
      err = lmz__alarms_add_to_batch(ctx, b);
  }
  lmz_actor *a = ctx->actor;
  if (!err && !b && a->fresh_epoch && a->fresh_barrier && !a->fresh_shipped &&
      a->binding->kind == LMZ_NODE_DO && !(b = lmz_batch_new()))
    err = LMZ_ENOMEM; /* a read of a fresh placement: its outputs wait for
                         the backups to drop their old copies (fresh.c) */
  if (!err && b)
    err = start_commit(ctx, b);
  if (err && b)
    lmz_batch_free(b);
  return err;
}

void lmz__run_turn(lmz_node_t *n, lmz_actor *a, lmz_msg *m) {
  lmz_ctx ctx = {.node = n, .actor = a, .msg = m, .arena = m->arena,
                 .cctx = &m->cctx};
  lmz_value *result = NULL;
  if (m->kind == LMZ_MSG_START)
    m->cctx = (struct lmz_cctx){0};
  /* a turn with no inherited trace (an alarm, on_start, a local
   * continuation, an untraced HTTP request) starts one: every call it makes
   * then carries it (core/trace.h) */
  if (!m->cctx.trace_id[0])
    lmz__cctx_trace(&m->cctx, NULL, NULL);
  int rv = run_body(&ctx, &result);
  if (rv && !ctx.thrown)
    lmz_throwf(&ctx, "Error", "%s", lmz_strerror(rv));
  rv = lmz__sql_turn_end(&ctx, rv);
  n->stats.turns++;
  if (rv) {
    n->stats.turns_failed++;
    drop_outbox(&ctx);
    ctx.alarm_ops = NULL; /* a failed turn schedules nothing... */
    ctx.w_head = ctx.w_tail = NULL; /* ...and writes nothing, not even to
                                       the cache (the alarm bookkeeping of a
                                       failed alarm turn still commits) */
  }
  if (m->kind == LMZ_MSG_ALARM)
    lmz__alarm_turn_done(&ctx, rv);
  int cerr = commit_turn(&ctx, rv);
  if (cerr && !rv) { /* the writes cannot commit: the turn fails */
    drop_outbox(&ctx);
    rv = lmz_throwf(&ctx, "StorageError", "commit failed: %s", lmz_strerror(cerr));
  }
  lmz__sql_turn_cleanup(&ctx);
  lmz_hmap_free(&ctx.writes);
  lmz__alarms_arm(n);
  if (m->kind == LMZ_MSG_START) {
    if (rv)
      start_failed(&ctx);
    else
      a->state = LMZ_ACTOR_ACTIVE;
  }
  /* collect the outputs: outgoing calls first, then the reply */
  lmz_msg *head = ctx.out_head, *tail = ctx.out_tail;
  if (rv)
    lmz__defer_cancel(m);
  bool keep_msg = m->defer != NULL;
  if (rv && m->rkind == LMZ_REPLY_NONE && m->kind == LMZ_MSG_CALL)
    log_unhandled(a, m, ctx.thrown);
  else if (rv && m->kind == LMZ_MSG_CALL)
    log_thrown(a, m, ctx.thrown);
  if (!keep_msg && m->rkind != LMZ_REPLY_NONE) {
    m->reply_ok = rv == 0;
    m->reply_value = rv ? ctx.thrown : (result ? result : lmz_undefined());
    push_output(&head, &tail, m);
  } else if (!keep_msg) {
    lmz__msg_free(n, m);
  }
  if (!head)
    return;
  if (a->last_commit) { /* the output gate */
    lmz_commit *c = a->last_commit;
    if (c->outputs_tail)
      c->outputs_tail->next = head;
    else
      c->outputs = head;
    c->outputs_tail = tail;
  } else {
    release_list(n, head);
  }
}

/* ---- deferred replies ---------------------------------------------------- */

lmz_deferred *lmz_defer(lmz_ctx *ctx) {
  if (ctx->msg->defer || ctx->msg->kind != LMZ_MSG_CALL)
    return NULL;
  lmz_deferred *d = malloc(sizeof *d);
  if (!d)
    return NULL;
  *d = (lmz_deferred){ctx->node, ctx->actor, ctx->msg};
  ctx->msg->defer = d;
  ctx->actor->n_deferred++;
  return d;
}

void lmz__defer_cancel(lmz_msg *m) {
  lmz_deferred *d = m->defer;
  if (!d)
    return;
  m->defer = NULL;
  d->msg = NULL;
  d->actor->n_deferred--;
}

static void settle(lmz_deferred *d, bool ok, const lmz_value *v) {
  lmz_msg *m = d->msg;
  lmz_node_t *n = d->node;
  if (!m) { /* cancelled: its turn threw and answered the call */
    free(d);
    return;
  }
  m->reply_ok = ok;
  m->reply_value = v ? lmz_value_copy(m->arena, v) : lmz_undefined();
  if (!m->reply_value) {
    m->reply_ok = false;
    m->reply_value = lmz_error(m->arena, "Error", "out of memory");
  }
  d->actor->n_deferred--;
  m->defer = NULL;
  free(d);
  m->next = NULL;
  lmz__release_output(n, m);
}

void lmz_deferred_resolve(lmz_deferred *d, const lmz_value *result) {
  if (d)
    settle(d, true, result);
}

void lmz_deferred_reject(lmz_deferred *d, const lmz_value *error) {
  if (d)
    settle(d, false, error);
}
