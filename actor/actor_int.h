/* actor/actor_int.h - private structures of the actor runtime.
 *
 * Message flow (DESIGN.md sections 2 and 3):
 *
 *   lmz_node_call / lmz_call --> lmz_msg --> actor mailbox --> run queue
 *      --> turn (ctx: overlay of writes, outbox) --> finish_turn:
 *            writes -> batch -> store commit (group commit)
 *            outputs (reply, outgoing calls) -> released when the actor's
 *            latest commit is durable (output gate), else at once.
 *
 * Ownership: every message owns one arena holding its chain, call context
 * and arguments; the turn that runs it allocates in the same arena, so a
 * reply's value lives there too. A pending call (a call with a handler) owns
 * another arena holding the handler chain and the captured context; the
 * reply's value is copied into it and it becomes the handler's message.
 */
#ifndef LMZ_ACTOR_ACTOR_INT_H
#define LMZ_ACTOR_ACTOR_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "actor/node.h"
#include "core/buf.h"
#include "core/hmap.h"
#include "core/log.h"
#include "core/trace.h"
#include "lmz/lmz.h"

struct lmz_store_s;
struct lmz_batch;

#define LMZ_MAX_CHAIN_OPS 50
#define LMZ_MAX_CALL_ARGS 100
#define LMZ_MAX_NESTING 16
#define LMZ_MAX_CALL_CHAIN 64
#define LMZ_MAX_KEY_LEN 2048

extern lmz_log_ns lmz__actor_log;

/* ---- classes and bindings ------------------------------------------------ */

struct lmz_class {
  char *name;
  lmz_node_type kind;
  const lmz_method *methods;
  lmz_hmap by_name; /* name -> const lmz_method * */
  struct lmz_class_opts opts;
  char *module; /* module that registered it */
  lmz_raw_call_fn raw; /* built-in relay class (client gateway), or NULL */
};

struct lmz_registry {
  lmz_node_t *node;
  const char *module;
  int failed; /* first registration error */
  char *errmsg;
};

struct lmz_binding {
  char *name;
  size_t name_len;
  lmz_node_type kind;
  struct lmz_class *cls;
};

/* ---- call context -------------------------------------------------------- */

struct lmz_cctx {
  lmz_identity *chain; /* in the owning arena */
  size_t n;
  lmz_value *origin_auth; /* NULL = none */
  lmz_value *state;       /* plain object, never NULL once set up */
  bool present;           /* false for alarms / on_start: no mesh context */
  /* Tracing (core/trace.h): the origin's trace id, inherited by every call
   * made from a turn running under this context, and this call's id (kept
   * across forwarding hops). Both valid ids or "" (then the turn mints:
   * lmz__cctx_trace). Values from the wire are validated before landing
   * here, so they print safely in logs. */
  char trace_id[LMZ_TRACE_ID_LEN + 1];
  char call_id[LMZ_CALL_ID_LEN + 1];
};

/* ---- messages ------------------------------------------------------------ */

enum lmz_msg_kind {
  LMZ_MSG_CALL = 0, /* a mesh call: exposure + guard enforced */
  LMZ_MSG_HANDLER,  /* a handler continuation of one of our calls */
  LMZ_MSG_ALARM,    /* an alarm's continuation */
  LMZ_MSG_START,    /* on_start of a new activation */
  LMZ_MSG_HTTP,     /* an HTTP request for on_request (http.c) */
};

enum lmz_reply_kind {
  LMZ_REPLY_NONE = 0, /* fire-and-forget: failures are logged */
  LMZ_REPLY_PENDING,  /* a local caller's handler is waiting */
  LMZ_REPLY_CB,       /* an external caller (network, test kit) */
};

struct lmz_pending;
struct lmz_alarm_run;
struct lmz_actor;

typedef struct lmz_msg {
  struct lmz_msg *next;
  enum lmz_msg_kind kind;
  enum lmz_reply_kind rkind;
  lmz_arena *arena;
  lmz_value *chain;
  struct lmz_cctx cctx;
  /* target (set for outgoing calls until delivered) */
  struct lmz_binding *binding;
  char *instance;
  /* reply */
  struct lmz_pending *pending;
  lmz_node_reply_cb cb;
  void *cb_arg;
  bool reply_ok;
  lmz_value *reply_value; /* in arena, set when the turn ends */
  int reply_status;
  lmz_identity caller; /* for logs */
  struct lmz_alarm_run *alarm;
  struct lmz_deferred *defer; /* the method called lmz_defer: its handle */
  struct lmz__http_turn *http; /* LMZ_MSG_HTTP: request and response */
  bool routed;   /* arrived from the owner check: never forwarded again */
  uint32_t hops; /* MOVED answers seen while routing */
  uint64_t epoch; /* placement epoch it was routed with */
  uint64_t route_deadline_ms; /* parked by the router until then (0 = no) */
  bool counted;  /* counts in the node's calls_pending until freed */
  struct lmz__fetch *fetch; /* an outbound HTTP request (fetch.c): an output
                               released like a call, then sent */
  struct lmz__bcast *bcast; /* an lmz_broadcast output (broadcast.c): never
                               queued; released, it routes its targets */
} lmz_msg;

struct lmz_pending {
  struct lmz_actor *actor; /* the caller; it is pinned while this exists */
  lmz_arena *arena;
  lmz_value *handler; /* handler chain (in arena) */
  struct lmz_cctx cctx; /* captured caller context (in arena) */
  bool on_error_only;
};

/* ---- commits and the output gate ----------------------------------------- */

typedef struct lmz_commit {
  struct lmz_commit *next; /* node's in-flight list, in commit order */
  uint64_t seq;
  lmz_msg *outputs; /* released when durable (FIFO: head..tail) */
  lmz_msg *outputs_tail;
  struct lmz_actor *actor; /* its latest commit points here, or NULL */
  lmz_node_t *node;
  struct lmz_chain *chain; /* the batch's chain (borrowed: the batch holds
                              a reference until after the callback) */
  uint64_t token;  /* replication token (0 = no backup waits); node.h */
  bool local_done; /* the store reported it (status below) */
  int status;
} lmz_commit;

/* ---- actors -------------------------------------------------------------- */

enum lmz_actor_state {
  LMZ_ACTOR_STARTING = 0,
  LMZ_ACTOR_ACTIVE,
  LMZ_ACTOR_FAILED, /* on_start threw: calls fail with start_error */
};

/* A cached storage entry: the encoded value, or absent (deleted). */
struct lmz_cache_ent {
  char *key;
  size_t klen;
  uint8_t *val; /* NULL = known absent */
  size_t vlen;
  uint64_t seq; /* commit seq of the write (0 = read from disk) */
};

typedef struct lmz_actor {
  lmz_node_t *node;
  struct lmz_binding *binding;
  char *instance; /* NULL for workers */
  char *key;      /* binding '\0' instance: activation table key */
  size_t key_len;
  uint8_t *prefix; /* storage key prefix of this actor */
  size_t prefix_len;
  enum lmz_actor_state state;
  lmz_arena *err_arena;
  lmz_value *start_error;
  lmz_identity self;
  /* mailbox */
  lmz_msg *q_head, *q_tail;
  uint32_t q_len;
  bool in_runq, running;
  struct lmz_actor *run_next;
  /* pins: the actor may not be evicted while any is non-zero */
  uint32_t n_pending;  /* our calls whose handlers have not run yet */
  uint32_t n_deferred; /* deferred replies not resolved yet */
  lmz_commit *last_commit; /* latest commit not durable yet */
  struct lmz_chain *chain;  /* storage chain of its batches (turn.c), or NULL */
  double last_active_ms;
  uint64_t epoch; /* placement epoch it was activated under (0: unplaced) */
  uint64_t fresh_epoch; /* fresh.c: the first commit records this epoch */
  bool fresh_barrier;   /* fresh.c: a read-only first turn needs one ... */
  bool fresh_shipped;   /* ... and it went out */
  char activation_id[48];
  double activated_at_ms;
  lmz_hmap cache; /* key -> struct lmz_cache_ent * (malloc'd) */
  size_t cache_bytes;
  struct lmz__sql *sql; /* open SQL database (sql.c), or NULL */
} lmz_actor;

/* ---- the turn ------------------------------------------------------------ */

struct lmz_kv_write {
  char *key;
  size_t klen;
  uint8_t *val; /* NULL = delete; in the turn arena */
  size_t vlen;
  struct lmz_kv_write *next; /* in write order */
};

struct lmz_ctx {
  lmz_node_t *node;
  lmz_actor *actor;
  lmz_msg *msg;
  lmz_arena *arena;
  struct lmz_cctx *cctx;
  lmz_value *thrown;
  /* storage overlay of this turn */
  lmz_hmap writes; /* key -> struct lmz_kv_write * */
  struct lmz_kv_write *w_head, *w_tail;
  /* alarm changes of this turn, applied with the batch */
  struct lmz_alarm_op *alarm_ops;
  /* outgoing calls of this turn, released with the reply */
  lmz_msg *out_head, *out_tail;
  bool in_guard;
  int nesting;
  struct lmz__sql_turn *sql; /* SQL state of this turn (sql.c), or NULL */
};

struct lmz_deferred {
  lmz_node_t *node;
  lmz_actor *actor;
  lmz_msg *msg; /* NULL once cancelled: settling it only frees it */
};
/* The turn of m threw after lmz_defer: the call is answered with the error
 * now; the handle stays the method's to settle, which then only frees it. */
void lmz__defer_cancel(lmz_msg *m);

/* ---- the node ------------------------------------------------------------ */

/* struct lmz_node_s is in actor/node.h (the caller allocates the node). */

/* ---- internal functions (lmz__*) ----------------------------------------- */

/* registry.c */
const lmz_method *lmz__class_method(const struct lmz_class *c,
                                    const char *name, size_t len);
struct lmz_binding *lmz__binding_get(lmz_node_t *n, const char *name);

/* scheduler.c */
int lmz__deliver(lmz_node_t *n, lmz_msg *m);
lmz_actor *lmz__actor_get(lmz_node_t *n, struct lmz_binding *b,
                          const char *instance, bool create);
void lmz__schedule(lmz_node_t *n, lmz_actor *a);
/* Appends `m` to a's mailbox (m->next cleared), counts it (a->q_len,
 * n->queued) and schedules a. No bound check: callers that must respect
 * max_queue check a->q_len first (replies and alarms must not be lost). */
void lmz__mailbox_push(lmz_node_t *n, lmz_actor *a, lmz_msg *m);
/* Sends the error replies of refused calls (the idle handle does, before
 * running turns; node close does after the last commits). */
void lmz__flush_refused(lmz_node_t *n);
lmz_msg *lmz__msg_new(lmz_node_t *n);
/* Frees m (its arena); a counted message leaves calls_pending. */
void lmz__msg_free(lmz_node_t *n, lmz_msg *m);
void lmz__actor_free(lmz_actor *a);

/* router.c / scheduler.c */
struct lmz_router_s;
/* 1 = deliver locally; 0 = the router took the message (forwarded, parked
 * or failed). */
int lmz__router_route(struct lmz_router_s *r, lmz_msg *m);
int lmz__deliver_local(lmz_node_t *n, lmz_msg *m);
/* A call routed to us by a peer (m->routed): 1 = deliver locally; 0 = the
 * router parked it because its placement here is not activated yet
 * (cluster/activation.h). */
int lmz__router_gate(struct lmz_router_s *r, lmz_msg *m);
/* The current placement epoch of (binding, instance) when this node owns
 * it, else 0. */
uint64_t lmz__router_epoch(struct lmz_router_s *r, const char *binding,
                           const char *instance);
/* Whether (binding, instance) is placed here under `epoch` by a claim
 * (cluster/directory.h FRESH), and whether a listed backup may hold a
 * stale copy of it (STALE COPIES). router.c */
bool lmz__router_fresh(struct lmz_router_s *r, const char *binding,
                       const char *instance, uint64_t epoch,
                       bool *stale_backups);
/* Before a new activation of a fresh placement (binding, instance) under
 * `epoch`: drops a stale copy of its range (synchronously; only when
 * epoch > since), or sets *record = epoch when the activation's first
 * commit must record it.
 * 0 or LMZ_ESTORAGE / LMZ_ENOMEM / LMZ_EINVAL. fresh.c */
int lmz__fresh_check(lmz_node_t *n, const struct lmz_binding *b,
                     const char *instance, uint64_t epoch, uint64_t since,
                     uint64_t *record);
/* The node's FRESH SINCE epoch (fresh.c), learned now if it can be;
 * UINT64_MAX while unknown. */
uint64_t lmz__fresh_since(struct lmz_router_s *r);
/* The cluster's tick: learns the epoch after which fresh placements drop
 * stale copies here (r->fresh_since) and tells the replicator. fresh.c */
void lmz__fresh_tick(struct lmz_router_s *r, uint64_t now);
/* Adds to a commit's (non-empty) batch the record of a->fresh_epoch and
 * the node's FRESH SINCE record, if either is due; lmz__fresh_queued once
 * the commit is queued. fresh.c */
int lmz__fresh_add_to_batch(lmz_actor *a, struct lmz_batch *b);
void lmz__fresh_queued(lmz_actor *a);
/* The activation of a durable object placed here under `epoch` (0: not
 * placed through a directory), created if there is none. One made under
 * another epoch is stale and replaced (LMZ_EUNAVAILABLE while it is still
 * busy with old work). scheduler.c */
int lmz__actor_for_epoch(lmz_node_t *n, struct lmz_binding *b,
                         const char *instance, uint64_t epoch,
                         lmz_actor **out);
/* Anything still holds the activation (queued or running work, replies
 * awaited, a commit not durable yet): it may not be freed. node.c */
bool lmz__actor_pinned(const lmz_actor *a);
int lmz__router_route_relay(struct lmz_router_s *r, lmz_msg *m);
void lmz__router_claim_local(struct lmz_router_s *r, const char *binding,
                             const char *instance);
void lmz__node_set_router(lmz_node_t *n, struct lmz_router_s *r);

/* migrate.c: moving an actor's whole state between nodes */
bool lmz__node_actor_idle(lmz_node_t *n, const char *binding,
                          const char *instance);
int lmz__node_export_actor(lmz_node_t *n, const char *binding,
                           const char *instance, lmz_buf *out);
typedef void (*lmz__import_cb)(lmz_node_t *n, int status, void *arg);
int lmz__node_import_actor(lmz_node_t *n, const char *binding,
                           const char *instance, const void *dump, size_t len,
                           lmz__import_cb cb, void *arg);
void lmz__node_drop_actor(lmz_node_t *n, const char *binding,
                          const char *instance);
/* alarms.c: the node index entries of one actor's alarms */
int lmz__alarms_index_actor(lmz_node_t *n, const char *binding,
                            const char *instance, struct lmz_batch *b,
                            bool put);

/* http.c: runs on_request for an LMZ_MSG_HTTP message (0 or thrown) */
int lmz__http_run(lmz_ctx *ctx);
/* http.c: an HTTP message forwarded to the node owning its actor. The
 * entry node encodes the request (router.c; marks the message forwarded,
 * so its Result value is decoded as the response); the owner runs the
 * decoded request (remote.c: hostile bytes, bounded and checked, errmsg on
 * refusal) and encodes the response into arena `a` (NULL = no memory).
 * The origin auth travels in the Call's context like a mesh call's (the
 * entry node's gateway verified the token; peers are mutually
 * authenticated): `origin_auth` is the decoded value, NULL for none.
 * `ids` = {trace id, call id} from the Call's context (hostile, NUL-ended,
 * replaced when invalid), so the request keeps the entry node's trace. */
int lmz__http_encode_request(lmz_msg *m, lmz_buf *out);
int lmz__http_run_forwarded(lmz_node_t *n, const char *binding,
                            const char *instance, const lmz_value *req,
                            const lmz_value *origin_auth,
                            const char *const *ids, lmz_node_http_cb cb,
                            void *arg, char *errmsg);
lmz_value *lmz__http_response_value(lmz_arena *a, const struct lmz_response *res);

/* scheduler.c: a pending call (handler continuation) of the running turn */
int lmz__make_pending(lmz_ctx *ctx, lmz_ctn *handler,
                      const struct lmz_call_opts *opts,
                      struct lmz_pending **out);

/* fetch.c: lmz_fetch's outputs (see fetch.c). release = the turn's outputs
 * leave: send it; fail = its turn's commit failed: the handler or deferred
 * reply gets `err`; drop = its turn threw: nothing is sent (the deferred
 * reply is the turn's error). Node lifecycle: net_open at lmz_node_init,
 * net_close at lmz_node_close (cancels requests in flight). */
void lmz__fetch_release(lmz_node_t *n, lmz_msg *m);
void lmz__fetch_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err);
void lmz__fetch_drop(lmz_actor *a, lmz_msg *m);
int lmz__fetch_net_open(lmz_node_t *n, char *errmsg);
void lmz__fetch_net_close(lmz_node_t *n);

/* turn.c */
/* Fails a message that could not be delivered: its sender gets `err` (an
 * Error value in m->arena; NULL = a generic one) as the reply. */
void lmz__msg_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err);
void lmz__run_turn(lmz_node_t *n, lmz_actor *a, lmz_msg *m);
void lmz__release_output(lmz_node_t *n, lmz_msg *m);
void lmz__commit_done(lmz_node_t *n, lmz_commit *c, int status);

/* ocan.c */
int lmz__ocan_validate(lmz_ctx *ctx, const lmz_value *chain);
int lmz__ocan_execute(lmz_ctx *ctx, lmz_value *chain, bool require_mesh,
                      lmz_value **result);
bool lmz__is_marker(const lmz_value *v, lmz_value **chain);
lmz_value *lmz__make_marker(lmz_arena *a, lmz_value *chain);
/* Substitutes `value` into the handler chain (in place; chain and value in
 * the same arena). */
int lmz__ocan_substitute(lmz_arena *a, lmz_value *chain, lmz_value *value);

/* context.c */
int lmz__cctx_copy(lmz_arena *a, struct lmz_cctx *dst,
                   const struct lmz_cctx *src, bool copy_state_shallow);
int lmz__cctx_outgoing(lmz_ctx *ctx, lmz_arena *a,
                       const struct lmz_call_opts *opts,
                       struct lmz_cctx *out);
lmz_value *lmz__cctx_value(lmz_arena *a, const struct lmz_cctx *c);
/* Gives `c` its tracing ids: trace_id (NUL-terminated, hostile) is kept when
 * valid, else c keeps a valid trace id it already has, else one is minted;
 * call_id likewise is kept when valid, else a fresh one is minted. */
void lmz__cctx_trace(struct lmz_cctx *c, const char *trace_id,
                     const char *call_id);
/* " trace=<id> call=<id>" for log lines about m ("" parts when unset):
 * ids are validated hex, safe unescaped. */
#define LMZ__TRACE_FMT " trace=%s call=%s"
#define LMZ__TRACE_ARGS(c) (c)->trace_id, (c)->call_id
const char *lmz__identity_type_name(lmz_node_type t);
lmz_value *lmz__error_value(lmz_arena *a, const char *name, const char *fmt,
                            ...) __attribute__((format(printf, 3, 4)));
/* MeshOverloadedError(message) with retryable: true and overloaded: true
 * (Cloudflare's flags on an overloaded Durable Object's errors); NULL on
 * out of memory. */
lmz_value *lmz__overloaded_error(lmz_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* kv.c */
void lmz__cache_free(lmz_actor *a);
int lmz__turn_build_batch(lmz_ctx *ctx, struct lmz_batch **out);
void lmz__turn_apply_writes(lmz_ctx *ctx, uint64_t seq);

/* sql.c: the turn's SQL transaction (see sql.c for the order of calls) */
int lmz__sql_turn_end(lmz_ctx *ctx, int rv); /* COMMIT or ROLLBACK; new rv */
int lmz__sql_add_to_batch(lmz_ctx *ctx, struct lmz_batch **b);
void lmz__sql_turn_applied(lmz_ctx *ctx, uint64_t seq);
void lmz__sql_turn_cleanup(lmz_ctx *ctx);
void lmz__sql_close(lmz_actor *a); /* eviction */
void lmz__sql_reset(lmz_actor *a); /* a failed commit */
bool lmz__sql_is_admin(lmz_ctx *ctx, const lmz_value *chain);
int lmz__sql_admin(lmz_ctx *ctx, const lmz_value *chain, lmz_value **result);

/* alarms.c */
int lmz__alarms_add_to_batch(lmz_ctx *ctx, struct lmz_batch *b);
int lmz__alarms_recover(lmz_node_t *n);
void lmz__alarms_arm(lmz_node_t *n);
/* After a commit that indexed alarms outside a turn: polls at once. */
void lmz__alarms_indexed(lmz_node_t *n);
void lmz__alarm_turn_done(lmz_ctx *ctx, int rv);
void lmz__alarms_free(lmz_node_t *n);

#endif
