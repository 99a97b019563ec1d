/* actor/node.c - node lifecycle: create (open the store), start, idle
 * eviction, graceful close, and storage access for the test kit.
 *
 * Close sequence: refuse new calls -> let the run queue drain (turns keep
 * running, outputs keep flowing) -> when quiet, close the store (it flushes
 * and reports every queued commit) -> close the node's handles -> cb.
 * Eviction: every idle_evict_ms/2 the node drops actors that have been idle
 * for idle_evict_ms and are not pinned (queued messages, a running turn,
 * pending handler continuations, deferred replies, a commit in flight). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "actor/actor_int.h"
#include "core/codec.h"
#include "storage/keys.h"
#include "storage/store.h"

static void evict_cb(uv_timer_t *t);

static void node_defaults(struct lmz_node_opts *o) {
  if (!o->idle_evict_ms)
    o->idle_evict_ms = 60000;
  if (!o->max_queue)
    o->max_queue = 100000;
  if (!o->max_pending)
    o->max_pending = 200000;
}

static int open_store(lmz_node_t *n, const char *data_dir, char *errmsg) {
  size_t len = strlen(data_dir) + 16;
  char *path = malloc(len);
  if (!path)
    return LMZ_ENOMEM;
  snprintf(path, len, "%s/store", data_dir);
  struct lmz_store_opts so;
  lmz_store_opts_init(&so, path);
  so.sync = n->opts.sync;
  n->store = malloc(sizeof *n->store);
  int rv =
      n->store ? lmz_store_init(n->store, n->loop, &so, errmsg) : LMZ_ENOMEM;
  if (rv) {
    free(n->store); /* nothing of it is on the loop */
    n->store = NULL;
  }
  if (rv && errmsg)
    lmz__errmsg_wrapf(errmsg, "open store %s", path);
  free(path);
  return rv;
}

/* The store's memory outlives the node's close: it is freed in the loop's
 * close phase, whenever that runs (as uv_close'd memory is). */
static void store_closed(lmz_store_t *s) { free(s); }

int lmz_node_init(lmz_node_t *n, uv_loop_t *loop,
                  const struct lmz_node_opts *opts, char *errmsg) {
  *n = (lmz_node_t){.loop = loop};
  n->opts = *opts;
  node_defaults(&n->opts);
  n->id = strdup(opts->node_id ? opts->node_id : "node-1");
  n->opts.node_id = n->id;
  n->opts.data_dir = NULL;
  uint64_t r = (uint64_t)uv_hrtime() ^ ((uint64_t)getpid() << 32);
  snprintf(n->boot_id, sizeof n->boot_id, "%08llx",
           (unsigned long long)(r & 0xffffffffu));
  int rv = n->id ? open_store(n, opts->data_dir ? opts->data_dir : ".", errmsg)
                 : LMZ_ENOMEM;
  if (!rv && (rv = lmz__fetch_net_open(n, errmsg)))
    lmz_store_close(n->store, store_closed); /* nothing else is open yet */
  if (rv) {
    free(n->id);
    n->id = NULL;
    return rv;
  }
  uv_idle_init(loop, &n->idle);
  n->idle.data = n;
  uv_timer_init(loop, &n->evict_timer);
  n->evict_timer.data = n;
  uv_timer_init(loop, &n->alarm_timer);
  n->alarm_timer.data = n;
  uv_unref((uv_handle_t *)&n->evict_timer);
  n->n_handles_open = 3;
  return 0;
}

int lmz_node_start(lmz_node_t *n) {
  uint64_t period = n->opts.idle_evict_ms / 2 ? n->opts.idle_evict_ms / 2 : 1;
  uv_timer_start(&n->evict_timer, evict_cb, period, period);
  return lmz__alarms_recover(n);
}

/* ---- eviction ------------------------------------------------------------ */

bool lmz__actor_pinned(const lmz_actor *a) {
  return a->q_head || a->running || a->in_runq || a->n_pending ||
         a->n_deferred || a->last_commit;
}

static void evict_cb(uv_timer_t *t) { lmz_node_evict_idle(t->data); }

/* An evicted durable object whose whole key range is empty (no KV, no
 * alarm, no SQL page) holds no state: its placement is released so the
 * directory does not keep every actor ever touched. Any doubt (a storage
 * error) keeps the placement. */
static void release_if_stateless(lmz_node_t *n, const lmz_actor *a) {
  if (!n->router || !n->store || a->binding->kind != LMZ_NODE_DO ||
      a->binding->cls->raw || !a->self.instance || !a->prefix)
    return;
  lmz_key_range r;
  if (lmz_key_actor_range(&r, a->prefix, a->prefix_len) ||
      lmz_store_range_empty(n->store, r.lower, r.lower_len, r.upper,
                            r.upper_len) != 1)
    return;
  lmz_node_release_placement(n, a->binding->name, a->self.instance);
}

int lmz_node_evict_idle(lmz_node_t *n) {
  double now = lmz_node_now_ms(n);
  int evicted = 0;
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&n->actors, &it, &k, &kl, &v)) {
    lmz_actor *a = v;
    if (lmz__actor_pinned(a) || now - a->last_active_ms < (double)n->opts.idle_evict_ms)
      continue;
    lmz_hmap_del(&n->actors, k, kl);
    LMZ_LOG_DEBUG(&lmz__actor_log, "evicted %s", a->key);
    release_if_stateless(n, a);
    lmz__actor_free(a);
    n->stats.evictions++;
    evicted++;
  }
  return evicted;
}

/* ---- close --------------------------------------------------------------- */

static void handle_closed(uv_handle_t *h) {
  lmz_node_t *n = h->data;
  if (--n->n_handles_open == 0 && n->close_cb)
    n->close_cb(n, n->close_arg);
}

static void finish_close(lmz_node_t *n) {
  lmz_store_close(n->store, store_closed); /* runs the remaining commit
                                              callbacks */
  n->store = NULL;
  lmz_node_set_replicator(n, NULL); /* fails turns still waiting for backups */
  lmz__flush_refused(n); /* calls those outputs made that were refused */
  uv_close((uv_handle_t *)&n->idle, handle_closed);
  uv_close((uv_handle_t *)&n->evict_timer, handle_closed);
  uv_close((uv_handle_t *)&n->alarm_timer, handle_closed);
}

static void drain_check(uv_timer_t *t) {
  lmz_node_t *n = t->data;
  if (n->rq_head || n->queued || n->rej_head || n->net)
    return; /* turns or refusals queued: the idle handle is running them;
               or fetches being canceled: their handlers are still to run */
  uv_timer_stop(t);
  finish_close(n);
}

void lmz_node_close(lmz_node_t *n, lmz_node_close_cb cb, void *arg) {
  n->closing = true;
  n->close_cb = cb;
  n->close_arg = arg;
  uv_timer_stop(&n->alarm_timer);
  uv_timer_stop(&n->evict_timer);
  uv_ref((uv_handle_t *)&n->evict_timer);
  lmz__fetch_net_close(n); /* requests in flight fail with a cancel error */
  /* the evict timer doubles as the drain poller: commits and turns finish
   * through the loop; we check every millisecond until the queue is empty */
  uv_timer_start(&n->evict_timer, drain_check, 0, 1);
}

void lmz_node_release(lmz_node_t *n) {
  if (!n)
    return;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&n->actors, &it, NULL, NULL, &v))
    lmz__actor_free(v);
  lmz_hmap_free(&n->actors);
  for (it = 0; lmz_hmap_next(&n->bindings, &it, NULL, NULL, &v);) {
    free(((struct lmz_binding *)v)->name);
    free(v);
  }
  lmz_hmap_free(&n->bindings);
  for (it = 0; lmz_hmap_next(&n->classes, &it, NULL, NULL, &v);) {
    struct lmz_class *c = v;
    lmz_hmap_free(&c->by_name);
    free(c->module);
    free(c->name);
    free(c);
  }
  lmz_hmap_free(&n->classes);
  for (it = 0; lmz_hmap_next(&n->vars, &it, NULL, NULL, &v);)
    free(v);
  lmz_hmap_free(&n->vars);
  lmz__alarms_free(n);
  for (size_t i = 0; i < n->pool_n; i++)
    lmz_arena_free(n->pool[i]);
  free(n->pool);
  /* modules stay loaded: their static tables may still be referenced by
   * code that has not returned yet (dlclose is not worth that risk) */
  free(n->dl_handles);
  free(n->id);
  n->dl_handles = NULL, n->id = NULL; /* n itself is the caller's */
}

struct lmz_store_s *lmz_node_store(lmz_node_t *n) {
  return n->store;
}

/* ---- storage access outside turns (test kit, operators) ------------------ */

static int actor_key(const char *binding, const char *instance, const char *key,
                     uint8_t *out) {
  return lmz_key_actor(out, binding, strlen(binding), instance,
                       instance ? strlen(instance) : 0, LMZ_KEY_SPACE_USER, key,
                       strlen(key));
}

int lmz_node_kv_peek(lmz_node_t *n, const char *binding, const char *instance,
                     const char *key, lmz_arena *a, lmz_value **out) {
  uint8_t fk[LMZ_KEY_MAX];
  int fl = actor_key(binding, instance, key, fk);
  if (fl < 0)
    return fl;
  lmz_buf b = LMZ_BUF_INIT;
  int rv = lmz_store_get(n->store, fk, (size_t)fl, &b);
  if (!rv)
    rv = lmz_bin_decode(a, b.data, b.len, NULL, out, NULL);
  lmz_buf_free(&b);
  return rv;
}

struct seed_wait {
  bool done;
  int status;
};

static void seed_done(lmz_store_t *s, int status, void *arg) {
  (void)s;
  struct seed_wait *w = arg;
  w->done = true;
  w->status = status;
}

int lmz_node_kv_seed(lmz_node_t *n, const char *binding, const char *instance,
                     const char *key, const lmz_value *v) {
  struct lmz_binding *b = lmz__binding_get(n, binding);
  if (!b || b->kind != LMZ_NODE_DO || !instance)
    return LMZ_EINVAL;
  if (lmz__actor_get(n, b, instance, false))
    return LMZ_EBUSY; /* the actor's cache would go stale */
  uint8_t fk[LMZ_KEY_MAX];
  int fl = actor_key(binding, instance, key, fk);
  if (fl < 0)
    return fl;
  lmz_buf enc = LMZ_BUF_INIT;
  int rv = lmz_bin_encode(v, &enc, NULL);
  lmz_batch *batch = rv ? NULL : lmz_batch_new();
  if (!rv && !batch)
    rv = LMZ_ENOMEM;
  if (!rv)
    rv = lmz_batch_put(batch, fk, (size_t)fl, enc.data, enc.len);
  lmz_buf_free(&enc);
  struct seed_wait w = {0};
  if (!rv && !(rv = lmz_store_commit(n->store, batch, seed_done, &w)))
    batch = NULL;
  lmz_batch_free(batch);
  while (!rv && !w.done)
    uv_run(n->loop, UV_RUN_ONCE);
  return rv ? rv : w.status;
}
