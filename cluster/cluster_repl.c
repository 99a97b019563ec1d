/* cluster/cluster_repl.c - the cluster's replicator (cluster/repl.h) wired
 * to the node transport (frames to backups), the directory client (PAIR_OUT
 * and BACKUPS_ADD through the leader) and the placement candidate set; the
 * loop's prepare phase flushes what the iteration's turns shipped.
 *
 * Failure modes:
 *  1. a proposal outlives the replicator (close): the glue's request keeps
 *     running until the directory client cancels it; its callback then
 *     reaches nothing (rp->live is cleared when the replicator goes);
 *  2. a frame from a connection that is not a cluster node (an operator's
 *     CLI: peer id 0) is ignored. */
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/repl.h"
#include "core/log.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.repl");

/* One proposal in flight for the replicator. */
struct repl_prop {
  lmz_dirclient_req_t req;
  void (*cb)(void *arg, int status, int item_status);
  void *arg;
  lmz_cluster_t *c;
  struct repl_prop *prev, *next; /* c->repl_props */
};

static uint64_t glue_now(void *ctx) { return lmz_cluster_now_ms(ctx); }

static int glue_send(void *ctx, uint64_t node_id, const Lmz__Frame *f) {
  lmz_conn_t *conn = lmz_cluster_peer_conn(ctx, node_id);
  if (!conn || !lmz_conn_is_up(conn))
    return LMZ_EUNAVAILABLE;
  return lmz_conn_send(conn, f);
}

static void prop_unlink(struct repl_prop *p) {
  if (p->prev)
    p->prev->next = p->next;
  else
    p->c->repl_props = p->next;
  if (p->next)
    p->next->prev = p->prev;
}

static void prop_done(lmz_dirclient_req_t *req, int status,
                      const struct lmz_dir_item *item) {
  struct repl_prop *p = req->data;
  if (p->c) /* NULL once the replicator is gone (a Raft entry can complete
             * after that: the close cancels only what is still queued) */
    prop_unlink(p);
  /* always: a disarmed replicator callback only frees its state */
  p->cb(p->arg, status, item ? item->status : status);
  free(p);
}

static int glue_propose(void *ctx, const lmz_buf *cmd,
                        void (*cb)(void *arg, int status, int item_status),
                        void *arg) {
  lmz_cluster_t *c = ctx;
  struct repl_prop *p = calloc(1, sizeof *p);
  if (!p)
    return LMZ_ENOMEM;
  *p = (struct repl_prop){.cb = cb, .arg = arg, .c = c, .next = c->repl_props};
  p->req.data = p;
  int rv = lmz_cluster_propose(c, &p->req, cmd, prop_done);
  if (rv) {
    free(p);
    return rv;
  }
  if (c->repl_props)
    c->repl_props->prev = p;
  c->repl_props = p;
  return 0;
}

static size_t glue_candidates(void *ctx, uint64_t *out, size_t cap) {
  lmz_cluster_t *c = ctx;
  return lmz__cluster_candidates(c, lmz_cluster_now_ms(c), false, out, cap);
}

/* Once per loop iteration: the turns of this iteration shipped their
 * records; they leave now, so the backups' fsyncs run alongside the local
 * one. The transport's own flush is a prepare handle too and may already
 * have run in this phase: without lmz_transport_flush() the frames would
 * wait until something else woke the loop (in practice the local commit),
 * which serialized the two fsyncs. */
static void flush_cb(uv_prepare_t *h) {
  lmz_cluster_t *c = h->data;
  if (!c->repl)
    return;
  lmz_repl_flush(c->repl);
  lmz_transport_flush(c->t);
}

int lmz_cluster_repl_start(lmz_cluster_t *c, lmz_store_t *store,
                           const struct lmz_cluster_repl_options *o,
                           char *errmsg) {
  struct lmz_repl_options ro = {
      .node_id = c->o.node_id,
      .factor = c->o.replication_factor ? c->o.replication_factor : 1,
      .max_lag_ms = o->max_lag_ms,
      .max_lag_bytes = o->max_lag_bytes,
      .retention_bytes = o->retention_bytes,
      .dir = c->dir,
      .store = store,
      .ops = {glue_now, glue_send, glue_propose, glue_candidates, c},
      .on_progress = o->on_progress,
      .progress_arg = o->progress_arg};
  int rv = lmz_repl_new(&c->repl, &ro);
  if (rv) {
    lmz__errmsg_printf(errmsg, "replication: %s", lmz_strerror(rv));
    return rv;
  }
  uv_prepare_init(c->loop, &c->repl_flush);
  c->repl_flush.data = c;
  uv_prepare_start(&c->repl_flush, flush_cb);
  uv_unref((uv_handle_t *)&c->repl_flush);
  c->repl_flush_on = true;
  LMZ_LOG_INFO(&log_ns, "replication factor %u", ro.factor);
  return 0;
}

lmz_repl_t *lmz_cluster_repl(lmz_cluster_t *c) { return c->repl; }

void lmz_cluster_stop_serving(lmz_cluster_t *c, const char *why) {
  if (c->mb.stopped)
    return;
  LMZ_LOG_ERROR(&log_ns, "node %llu stops serving: %s; its durable objects "
                "fail over to their backups once its lease expired",
                (unsigned long long)c->o.node_id, why);
  lmz_member_stop_serving(&c->mb);
}

/* The tick's share: directory changes, lag checks, retries, refills. */
void lmz__cluster_repl_tick(lmz_cluster_t *c) {
  if (!c->repl || c->closing)
    return;
  lmz_repl_dir_changed(c->repl);
  lmz_repl_tick(c->repl);
}

/* Close, after the directory client cancelled its requests (their
 * callbacks reached the replicator): proposals still referenced are
 * disarmed, the replicator goes, the prepare handle closes (its memory is
 * c's, which outlives the loop's close phase). */
void lmz__cluster_repl_close(lmz_cluster_t *c) {
  for (struct repl_prop *p = c->repl_props; p; p = p->next)
    p->c = NULL;
  c->repl_props = NULL;
  lmz_repl_free(c->repl);
  c->repl = NULL;
  if (c->repl_flush_on) {
    c->repl_flush_on = false;
    uv_close((uv_handle_t *)&c->repl_flush, NULL);
  }
}

void lmz_cluster_on_repl_append(lmz_cluster_t *c, lmz_conn_t *conn,
                                const Lmz__Frame *f) {
  uint64_t from = lmz_conn_peer_id(conn);
  if (c->repl && !c->closing && from)
    lmz_repl_on_append(c->repl, from, f->repl_append);
}

void lmz_cluster_on_repl_ack(lmz_cluster_t *c, lmz_conn_t *conn,
                             const Lmz__Frame *f) {
  uint64_t from = lmz_conn_peer_id(conn);
  if (c->repl && !c->closing && from)
    lmz_repl_on_ack(c->repl, from, f->repl_ack);
}
