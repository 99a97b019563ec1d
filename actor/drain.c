/* actor/drain.c - moving every actor of this node elsewhere, with its state
 * (see drain.h; the storage side is actor/migrate.c).
 *
 * Failure modes:
 *  1. DRAINING cannot be proposed or is refused: the drain ends at once
 *     with nothing moved;
 *  2. no other candidate node: every remaining actor stays (failed);
 *  3. an actor does not become idle within DRAIN_IDLE_TIMEOUT_MS: it stays;
 *  4. the target cannot be reached, refuses the import, or does not answer
 *     within IMPORT_TIMEOUT_MS: the actor stays (the target's copy is
 *     unused: the directory still names us);
 *  5. the move is refused by the directory: the actor stays;
 *  5a. the move's outcome is unknown (the leader changed or did not answer:
 *     LMZ_ENOTLEADER, LMZ_ETIMEOUT): unless our replica shows it within
 *     UNKNOWN_RETRY_MS, it is proposed again, up to MOVE_TRIES times (the
 *     expected epoch makes a repeat harmless: a move that did commit makes
 *     the repeat LMZ_ESTALE). Resuming at once on an unknown outcome would
 *     run turns that the new owner never sees;
 *  5b. the leader's verdict reaches us before our own replica applied it
 *     (followers learn a commit with the next append): the actor stays
 *     marked moving until this node's directory no longer names it at the
 *     old epoch (PH_SETTLING). Unmarking at the verdict let a call through
 *     in that window, run here on a dropped state and be acknowledged -
 *     the "drain loses acknowledged increments" of issue 9;
 *  6. an ImportRequest for a malformed dump: answered with the error,
 *     nothing written (migrate.c);
 *  7. the router closes (SIGTERM) during the drain: lmz__drain_cancel stops
 *     the timer and unmarks the actor in progress; the drain's memory lives
 *     until its timer closed and its directory request in flight (if any)
 *     came back, cancelled by the cluster's close. The callback is not
 *     called. */
#include "actor/drain.h"

#include <stdlib.h>
#include <string.h>

#include "actor/router_int.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.cluster.drain");

#define DRAIN_IDLE_TIMEOUT_MS 5000
#define DRAIN_POLL_MS 5
#define IMPORT_TIMEOUT_MS 1500
/* Proposals of one move whose outcome stayed unknown (5a). */
#define MOVE_TRIES 4
/* An unknown outcome: how long our replica may take to show the move
 * before it is proposed again (after MOVE_TRIES, the actor resumes here).
 * A committed move waits for our replica without a bound (the actor is not
 * ours: serving it would lose turns), warning every SETTLE_WARN_MS. */
#define UNKNOWN_RETRY_MS 1000
#define SETTLE_WARN_MS 5000
/* After the moves: how long (and how often) the drain waits for the owners
 * to take this node off their backup lists (cluster/repl.h: they fill a
 * replacement first, then PAIR_OUT). */
#define DRAIN_BACKUPS_TIMEOUT_MS 30000
#define DRAIN_BACKUPS_POLL_MS 50

struct drain_item {
  char *binding, *instance;
  uint64_t epoch;
};

enum drain_phase {
  PH_MARKING,
  PH_IDLE_WAIT,
  PH_IMPORTING,
  PH_MOVING,
  PH_SETTLING, /* the move's verdict is in: waiting for our replica */
  PH_BACKUPS, /* every actor moved or failed: waiting for the backup roles */
  PH_DONE
};

struct lmz_drain {
  lmz_router_t *r;
  lmz_cluster_t *c;
  struct drain_item *items;
  size_t n, cap, next, moved, failed;
  uint64_t target, wait_since, import_id;
  unsigned move_tries;
  bool move_committed; /* the leader said the move applied */
  char key[LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX + 2];
  size_t klen;
  enum drain_phase phase;
  lmz_drain_cb cb;
  void *arg;
  uv_timer_t timer;
  lmz_dirclient_req_t req; /* DRAINING, then each move */
  bool req_flight;         /* req is with the directory client */
  bool timer_open;         /* until its close callback */
  bool cancelled;
};

static int collect_cb(const char *b, size_t bl, const char *i, size_t il,
                      uint64_t node, uint64_t epoch, void *arg) {
  (void)node;
  struct lmz_drain *d = arg;
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    struct drain_item *p = realloc(d->items, cap * sizeof *p);
    if (!p)
      return LMZ_ENOMEM;
    d->items = p;
    d->cap = cap;
  }
  struct drain_item *it = &d->items[d->n];
  it->binding = strndup(b, bl);
  it->instance = strndup(i, il);
  it->epoch = epoch;
  if (!it->binding || !it->instance) {
    free(it->binding);
    free(it->instance);
    return LMZ_ENOMEM;
  }
  d->n++;
  return 0;
}

static void drain_next(struct lmz_drain *d);

static void drain_item_done(struct lmz_drain *d, bool ok, const char *why) {
  struct drain_item *it = &d->items[d->next];
  if (ok)
    d->moved++;
  else {
    d->failed++;
    LMZ_LOG_WARN(&log_ns, "drain: %s/%s stays here: %s", it->binding,
                 it->instance, why);
  }
  lmz__router_set_moving(d->r, d->key, d->klen, false);
  d->next++;
  lmz__router_retry_parked(d->r); /* its calls go to the new owner */
  drain_next(d);
}

static void drain_free(struct lmz_drain *d) {
  for (size_t i = 0; i < d->n; i++) {
    free(d->items[i].binding);
    free(d->items[i].instance);
  }
  free(d->items);
  free(d);
}

static void maybe_free(struct lmz_drain *d) {
  if (!d->timer_open && !d->req_flight)
    drain_free(d);
}

static void drain_timer_closed(uv_handle_t *h) {
  struct lmz_drain *d = lmz_container_of((uv_timer_t *)h, struct lmz_drain, timer);
  d->timer_open = false;
  maybe_free(d);
}

/* A request came back: false when the drain was cancelled meanwhile (and
 * is freed now if nothing else holds it). */
static bool req_back(struct lmz_drain *d) {
  d->req_flight = false;
  if (!d->cancelled)
    return true;
  maybe_free(d);
  return false;
}

void lmz__drain_cancel(struct lmz_drain *d) {
  d->cancelled = true;
  uv_timer_stop(&d->timer);
  if (d->phase == PH_IDLE_WAIT || d->phase == PH_IMPORTING ||
      d->phase == PH_MOVING || d->phase == PH_SETTLING)
    lmz__router_set_moving(d->r, d->key, d->klen, false);
  d->phase = PH_DONE;
  lmz__router_set_drain(d->r, NULL);
  LMZ_LOG_WARN(&log_ns, "drain cancelled: %zu moved, %zu left here", d->moved,
               d->n > d->next ? d->n - d->next : 0);
  uv_close((uv_handle_t *)&d->timer, drain_timer_closed);
}

static void drain_finish(struct lmz_drain *d) {
  uv_timer_stop(&d->timer);
  d->phase = PH_DONE;
  LMZ_LOG_INFO(&log_ns, "drain done: %zu moved, %zu failed", d->moved,
               d->failed);
  d->cb(d->r, (int)d->moved, (int)d->failed, d->arg);
  lmz__router_set_drain(d->r, NULL);
  uv_close((uv_handle_t *)&d->timer, drain_timer_closed);
}

static void propose_move(struct lmz_drain *d);

/* Our replica's view: true once it no longer names us as the owner; a new
 * epoch of ours (released, then claimed here again) sets *again. */
static bool left_us(struct lmz_drain *d, const struct drain_item *it,
                    uint64_t *owner, bool *again) {
  uint64_t epoch = 0, self = lmz_cluster_node_id(d->c);
  *owner = 0;
  int rv = lmz_dir_lookup(lmz_cluster_dir(d->c), it->binding,
                          strlen(it->binding), it->instance,
                          strlen(it->instance), owner, &epoch);
  *again = rv == 0 && *owner == self && epoch != it->epoch;
  return rv == LMZ_ENOTFOUND || (rv == 0 && *owner != self);
}

static void settled(struct lmz_drain *d, bool gone, uint64_t owner) {
  struct drain_item *it = &d->items[d->next];
  uv_timer_stop(&d->timer);
  if (!gone) {
    drain_item_done(d, false, "its move did not apply");
    return;
  }
  /* not ours any more: our copy is dead weight */
  lmz__node_drop_actor(lmz__router_node(d->r), it->binding, it->instance);
  drain_item_done(d, owner == d->target,
                  owner == d->target ? NULL : "the directory placed it elsewhere");
}

static void settle_poll(uv_timer_t *t) {
  struct lmz_drain *d = t->data;
  uint64_t owner;
  bool again;
  if (left_us(d, &d->items[d->next], &owner, &again) || again) {
    settled(d, !again, owner);
    return;
  }
  uint64_t waited = lmz_cluster_now_ms(d->c) - d->wait_since;
  if (!d->move_committed && waited > UNKNOWN_RETRY_MS) {
    uv_timer_stop(t);
    if (d->move_tries < MOVE_TRIES)
      propose_move(d); /* the repeat's verdict tells */
    else
      settled(d, false, 0);
    return;
  }
  if (d->move_committed && waited > SETTLE_WARN_MS) {
    LMZ_LOG_WARN(&log_ns, "drain: the move of %s/%s committed but this "
                 "node's directory has not applied it yet; its calls wait",
                 d->items[d->next].binding, d->items[d->next].instance);
    d->wait_since = lmz_cluster_now_ms(d->c);
  }
}

/* The verdict is in (committed: wait for our replica, without a bound) or
 * stays unknown (wait a little, then propose again): meanwhile the actor
 * stays marked moving (failure modes 5a, 5b). */
static void settle_wait(struct lmz_drain *d, bool committed) {
  d->phase = PH_SETTLING;
  d->move_committed = committed;
  d->wait_since = lmz_cluster_now_ms(d->c);
  uv_timer_start(&d->timer, settle_poll, 0, DRAIN_POLL_MS);
}

static void move_done(lmz_dirclient_req_t *req, int status,
                      const struct lmz_dir_item *item) {
  (void)item;
  struct lmz_drain *d = req->data;
  if (!req_back(d))
    return;
  if (status >= 0 || status == LMZ_ESTALE) /* stale: an earlier try
      committed, or a failover moved it; either way it is not ours */
    settle_wait(d, true);
  else if (status == LMZ_ENOTLEADER || status == LMZ_ETIMEOUT)
    settle_wait(d, false);
  else
    drain_item_done(d, false, lmz_strerror(status));
}

static void propose_move(struct lmz_drain *d) {
  struct drain_item *it = &d->items[d->next];
  d->phase = PH_MOVING;
  d->move_tries++;
  lmz_buf cmd = LMZ_BUF_INIT;
  struct lmz_dir_move mv = {it->binding, strlen(it->binding), it->instance,
                            strlen(it->instance), lmz_cluster_node_id(d->c),
                            d->target, it->epoch, lmz_cluster_next_id(d->c),
                            true};
  int rv = lmz_dir_encode_moves(&cmd, &mv, 1);
  if (!rv)
    rv = lmz_cluster_propose(d->c, &d->req, &cmd, move_done);
  d->req_flight = rv == 0;
  lmz_buf_free(&cmd);
  if (rv && d->move_tries > 1)
    settle_wait(d, false); /* an earlier try may have committed: find out */
  else if (rv)
    drain_item_done(d, false, "cannot propose the move");
}

static void import_done(struct lmz_drain *d, int status) {
  uv_timer_stop(&d->timer);
  if (status < 0) {
    drain_item_done(d, false, "the target could not import the state");
    return;
  }
  d->move_tries = 0;
  propose_move(d);
}

static void import_timeout(uv_timer_t *t) {
  struct lmz_drain *d = t->data;
  import_done(d, LMZ_ETIMEOUT);
}

static int send_import(struct lmz_drain *d, const struct drain_item *it) {
  lmz_buf dump = LMZ_BUF_INIT;
  int rv = lmz__node_export_actor(lmz__router_node(d->r), it->binding,
                                  it->instance, &dump);
  if (rv < 0) {
    lmz_buf_free(&dump);
    return rv;
  }
  Lmz__ImportRequest q = LMZ__IMPORT_REQUEST__INIT;
  q.request_id = d->import_id = lmz_cluster_next_id(d->c);
  q.binding = it->binding;
  q.instance = it->instance;
  q.dump = (ProtobufCBinaryData){dump.len, dump.data};
  q.from_node = lmz_cluster_node_id(d->c);
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_IMPORT_REQUEST;
  f.import_request = &q;
  rv = lmz_cluster_send(d->c, d->target, &f);
  lmz_buf_free(&dump);
  if (!rv) {
    d->phase = PH_IMPORTING;
    uv_timer_start(&d->timer, import_timeout, IMPORT_TIMEOUT_MS, 0);
  }
  return rv;
}

static void drain_poll(uv_timer_t *t) {
  struct lmz_drain *d = t->data;
  struct drain_item *it = &d->items[d->next];
  if (!lmz__node_actor_idle(lmz__router_node(d->r), it->binding,
                            it->instance)) {
    if (lmz_cluster_now_ms(d->c) - d->wait_since > DRAIN_IDLE_TIMEOUT_MS)
      drain_item_done(d, false, "it did not become idle");
    return;
  }
  uv_timer_stop(t);
  int rv = send_import(d, it);
  if (rv)
    drain_item_done(d, false, lmz_strerror(rv));
}

static int backs_up_cb(const char *b, size_t bl, const char *i, size_t il,
                       const struct lmz_dir_placement *p, void *arg) {
  (void)b, (void)bl, (void)i, (void)il;
  uint64_t *n = arg; /* n[0]: our id, n[1]: the count */
  for (uint32_t k = 0; k < p->n_backups && k < LMZ_DIR_MAX_BACKUPS; k++)
    n[1] += p->backups[k] == n[0];
  return 0;
}

/* How many actors list this node as a backup (a walk of the table). */
static uint64_t backup_roles(struct lmz_drain *d) {
  uint64_t n[2] = {lmz_cluster_node_id(d->c), 0};
  lmz_dir_foreach_placement(lmz_cluster_dir(d->c), 0, backs_up_cb, n);
  return n[1];
}

static void backups_poll(uv_timer_t *t) {
  struct lmz_drain *d = lmz_container_of(t, struct lmz_drain, timer);
  uint64_t n = backup_roles(d);
  if (n == 0) {
    drain_finish(d);
    return;
  }
  if (lmz_cluster_now_ms(d->c) - d->wait_since > DRAIN_BACKUPS_TIMEOUT_MS) {
    LMZ_LOG_WARN(&log_ns,
                 "drain: this node still backs up %llu actors (their owners "
                 "found no replacement)",
                 (unsigned long long)n);
    drain_finish(d);
  }
}

/* The moves are over: the drain ends once no owner lists this node as a
 * backup any more (bounded), so a drained node holds no role at all. */
static void backups_wait(struct lmz_drain *d) {
  uint64_t n = backup_roles(d);
  if (n == 0) {
    drain_finish(d);
    return;
  }
  LMZ_LOG_INFO(&log_ns, "drain: waiting for %llu backup roles to move",
               (unsigned long long)n);
  d->phase = PH_BACKUPS;
  d->wait_since = lmz_cluster_now_ms(d->c);
  uv_timer_start(&d->timer, backups_poll, DRAIN_BACKUPS_POLL_MS,
                 DRAIN_BACKUPS_POLL_MS);
}

static void drain_next(struct lmz_drain *d) {
  if (d->next >= d->n) {
    backups_wait(d);
    return;
  }
  struct drain_item *it = &d->items[d->next];
  if (!(d->target = lmz_cluster_choose(d->c, it->binding, it->instance,
                                       false))) {
    d->failed += d->n - d->next; /* nowhere to go: everything stays */
    d->next = d->n;
    drain_finish(d);
    return;
  }
  size_t bl = strlen(it->binding), il = strlen(it->instance);
  memcpy(d->key, it->binding, bl + 1);
  memcpy(d->key + bl + 1, it->instance, il);
  d->klen = bl + 1 + il;
  lmz__router_set_moving(d->r, d->key, d->klen, true);
  d->wait_since = lmz_cluster_now_ms(d->c);
  d->phase = PH_IDLE_WAIT;
  uv_timer_start(&d->timer, drain_poll, 0, DRAIN_POLL_MS);
}

static void draining_done(lmz_dirclient_req_t *req, int status,
                          const struct lmz_dir_item *item) {
  (void)item;
  struct lmz_drain *d = req->data;
  if (!req_back(d))
    return;
  if (status < 0) {
    d->failed = 0;
    d->n = 0;
    LMZ_LOG_WARN(&log_ns, "drain: cannot mark the node DRAINING: %s",
                 lmz_strerror(status));
    drain_finish(d);
    return;
  }
  if (lmz_dir_foreach_actor(lmz_cluster_dir(d->c), lmz_cluster_node_id(d->c),
                            collect_cb, d))
    d->failed = 1;
  LMZ_LOG_INFO(&log_ns, "drain: moving %zu actors", d->n);
  drain_next(d);
}

int lmz_drain_start(lmz_router_t *r, lmz_drain_cb cb, void *arg) {
  if (lmz__router_drain(r))
    return LMZ_EBUSY;
  struct lmz_drain *d = calloc(1, sizeof *d);
  if (!d)
    return LMZ_ENOMEM;
  d->r = r;
  d->c = lmz_router_cluster(r);
  d->cb = cb;
  d->arg = arg;
  d->req.data = d;
  uv_timer_init(lmz__router_node(r)->loop, &d->timer);
  d->timer.data = d;
  d->timer_open = true;
  int rv = lmz_cluster_set_state(d->c, &d->req, LMZ_DIR_DRAINING,
                                 draining_done);
  if (rv) {
    uv_close((uv_handle_t *)&d->timer, drain_timer_closed);
    return rv;
  }
  d->req_flight = true;
  lmz__router_set_drain(r, d);
  return 0;
}

void lmz_drain_on_import_response(lmz_router_t *r, lmz_conn_t *conn,
                                  const Lmz__Frame *f) {
  (void)conn;
  struct lmz_drain *d = lmz__router_drain(r);
  const Lmz__ImportResponse *res = f->import_response;
  if (d && d->phase == PH_IMPORTING && res->request_id == d->import_id)
    import_done(d, res->status);
}

/* ---- the importing side: a peer sends us an actor's state ----------------- */

struct import_reply {
  lmz_transport_t *t;
  uint64_t from, request_id;
};

static void send_import_response(lmz_transport_t *t, uint64_t to, uint64_t id,
                                 int status) {
  lmz_conn_t *c = lmz_transport_peer(t, to);
  if (!c)
    return;
  Lmz__ImportResponse res = LMZ__IMPORT_RESPONSE__INIT;
  res.request_id = id;
  res.status = status;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_IMPORT_RESPONSE;
  f.import_response = &res;
  lmz_conn_send(c, &f);
}

static void import_commit_cb(lmz_node_t *n, int status, void *arg) {
  struct import_reply *ir = arg;
  (void)n;
  send_import_response(ir->t, ir->from, ir->request_id, status);
  free(ir);
}

void lmz_drain_on_import_request(lmz_router_t *r, lmz_conn_t *conn,
                                 const Lmz__Frame *f) {
  const Lmz__ImportRequest *q = f->import_request;
  lmz_transport_t *t = lmz_conn_transport(conn);
  struct import_reply *ir = malloc(sizeof *ir);
  int rv = ir ? 0 : LMZ_ENOMEM;
  if (ir)
    *ir = (struct import_reply){t, q->from_node, q->request_id};
  lmz_repl_t *rp = lmz_cluster_repl(lmz_router_cluster(r));
  if (!rv && rp) /* fence the old owner's stream for this actor first */
    lmz_repl_imported(rp, q->binding, q->instance, q->from_node);
  if (!rv)
    rv = lmz__node_import_actor(lmz__router_node(r), q->binding, q->instance,
                                q->dump.data, q->dump.len, import_commit_cb,
                                ir);
  if (rv) {
    send_import_response(t, q->from_node, q->request_id, rv);
    free(ir);
  }
}
