/* actor/migrate.c - an actor's whole state leaving or arriving at this node
 * (drain, DESIGN.md section 4 "Moves"). The cluster router decides when;
 * this file does the storage side.
 *
 *   export: a consistent dump of the actor's key range (user data, alarms,
 *           framework data), storage/store.h format;
 *   import: the dump replaces whatever this node held for the actor, in one
 *           batch; then the alarms it carries are entered in this node's
 *           alarm index (a second batch), so they fire here;
 *   drop:   after the move committed: the local range and the actor's alarm
 *           index entries are deleted and the (idle) activation freed;
 *   adopt:  an actor that became ours without an import (a failover
 *           promoted this backup: its range arrived by replication, but the
 *           alarm index is node-level and stayed on the dead owner): its
 *           alarms are entered in this node's index.
 * Failure modes: a malformed dump is refused (LMZ_EBADMSG, nothing written);
 * a failed commit reports its status to the importer's callback; an actor
 * that is active here at import time is dropped first (its cache would be
 * stale). */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "storage/keys.h"
#include "storage/store.h"

bool lmz__node_actor_idle(lmz_node_t *n, const char *binding,
                          const char *instance) {
  struct lmz_binding *b = lmz__binding_get(n, binding);
  lmz_actor *a = b ? lmz__actor_get(n, b, instance, false) : NULL;
  return !a || (!a->q_head && !a->running && !a->in_runq && !a->n_pending &&
                !a->n_deferred && !a->last_commit);
}

int lmz__node_export_actor(lmz_node_t *n, const char *binding,
                           const char *instance, lmz_buf *out) {
  return lmz_store_export_actor(n->store, binding, strlen(binding), instance,
                                strlen(instance), out);
}

static void forget_activation(lmz_node_t *n, const char *binding,
                              const char *instance) {
  struct lmz_binding *b = lmz__binding_get(n, binding);
  lmz_actor *a = b ? lmz__actor_get(n, b, instance, false) : NULL;
  if (!a)
    return;
  lmz_hmap_del(&n->actors, a->key, a->key_len);
  lmz__actor_free(a);
}

struct import_op {
  lmz_node_t *n;
  char *binding, *instance;
  lmz__import_cb cb;
  void *arg;
  bool indexed;
};

static void import_finish(struct import_op *op, int status) {
  op->cb(op->n, status, op->arg);
  free(op->binding);
  free(op->instance);
  free(op);
}

static void import_committed(lmz_store_t *s, int status, void *arg) {
  (void)s;
  struct import_op *op = arg;
  if (status || op->indexed) {
    if (op->indexed && !status)
      lmz__alarms_indexed(op->n);
    import_finish(op, status);
    return;
  }
  /* the state is in: now index its alarms, in a second batch */
  op->indexed = true;
  lmz_batch *b = lmz_batch_new();
  int rv = b ? lmz__alarms_index_actor(op->n, op->binding, op->instance, b, true)
             : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_store_commit(op->n->store, b, import_committed, op);
  if (rv) {
    lmz_batch_free(b);
    import_finish(op, rv);
  }
}

int lmz__node_import_actor(lmz_node_t *n, const char *binding,
                           const char *instance, const void *dump, size_t len,
                           lmz__import_cb cb, void *arg) {
  struct lmz_binding *bd = lmz__binding_get(n, binding);
  if (!bd || bd->kind != LMZ_NODE_DO || !instance)
    return LMZ_EINVAL;
  const char *db, *di;
  size_t dbl, dil;
  if (lmz_store_dump_actor(dump, len, &db, &dbl, &di, &dil) ||
      dbl != strlen(binding) || memcmp(db, binding, dbl) ||
      dil != strlen(instance) || memcmp(di, instance, dil))
    return LMZ_EBADMSG; /* the dump is not the actor it claims to be */
  if (!lmz__node_actor_idle(n, binding, instance))
    return LMZ_EBUSY;
  forget_activation(n, binding, instance);
  struct import_op *op = calloc(1, sizeof *op);
  lmz_batch *b = lmz_batch_new();
  int rv = op && b ? 0 : LMZ_ENOMEM;
  if (!rv) {
    *op = (struct import_op){n, strdup(binding), strdup(instance), cb, arg, false};
    rv = op->binding && op->instance ? 0 : LMZ_ENOMEM;
  }
  if (!rv && (rv = lmz_store_import(n->store, dump, len, b)) >= 0)
    rv = lmz_store_commit(n->store, b, import_committed, op);
  if (rv) {
    lmz_batch_free(b);
    if (op) {
      free(op->binding);
      free(op->instance);
    }
    free(op);
  }
  return rv;
}

static void adopt_committed(lmz_store_t *s, int status, void *arg) {
  lmz_node_t *n = arg;
  if (status)
    LMZ_LOG_ERROR(&lmz__actor_log, "indexing an adopted actor's alarms "
                  "failed: %s", s->errmsg);
  else
    lmz__alarms_indexed(n);
}

int lmz_node_adopt_actor(lmz_node_t *n, const char *binding,
                         const char *instance) {
  struct lmz_binding *bd = lmz__binding_get(n, binding);
  if (!bd || bd->kind != LMZ_NODE_DO || n->closing || !n->store)
    return 0; /* stateless: nothing of its own is stored */
  lmz_batch *b = lmz_batch_new();
  int rv = b ? lmz__alarms_index_actor(n, binding, instance, b, true)
             : LMZ_ENOMEM;
  if (!rv && lmz_batch_count(b) == 0) {
    lmz_batch_free(b); /* no alarms */
    return 0;
  }
  if (!rv)
    LMZ_LOG_INFO(&lmz__actor_log, "adopted %s/%s: %zu alarm(s) indexed here",
                 binding, instance, lmz_batch_count(b));
  if (!rv)
    rv = lmz_store_commit(n->store, b, adopt_committed, n);
  if (rv) {
    lmz_batch_free(b);
    LMZ_LOG_ERROR(&lmz__actor_log, "cannot index the alarms of adopted "
                  "actor %s/%s: %s", binding, instance, lmz_strerror(rv));
  }
  return rv;
}

static void drop_committed(lmz_store_t *s, int status, void *arg) {
  (void)arg;
  if (status)
    LMZ_LOG_ERROR(&lmz__actor_log, "dropping a moved actor failed: %s", s->errmsg);
}

void lmz__node_drop_actor(lmz_node_t *n, const char *binding,
                          const char *instance) {
  forget_activation(n, binding, instance);
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, binding, strlen(binding), instance,
                                strlen(instance));
  lmz_key_range r;
  lmz_batch *b = lmz_batch_new();
  int rv = b && pl > 0 ? lmz_key_actor_range(&r, prefix, (size_t)pl) : LMZ_ENOMEM;
  if (!rv)
    rv = lmz__alarms_index_actor(n, binding, instance, b, false);
  if (!rv)
    rv = lmz_batch_delete_range(b, r.lower, r.lower_len, r.upper, r.upper_len);
  if (!rv)
    rv = lmz_store_commit(n->store, b, drop_committed, NULL);
  if (rv) {
    lmz_batch_free(b);
    LMZ_LOG_ERROR(&lmz__actor_log, "cannot drop moved actor %s/%s: %s", binding,
                  instance, lmz_strerror(rv));
  }
}
