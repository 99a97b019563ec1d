/* actor/node.h - the actor runtime of one node, as lmzd, the gateway and the
 * test kit drive it.
 *
 * A node owns: the class registry (modules), the bindings of the config, the
 * activations (one lmz_actor per (binding, instance) that is live here), the
 * run queue, the node's store (RocksDB, group commit) and its alarms.
 * Applications never see this header: they use lmz/lmz.h.
 *
 * Threading: everything runs on the loop thread given to lmz_node_init().
 *
 * Lifecycle:
 *   lmz_node_init -> lmz_node_load_module / lmz_node_register_module ->
 *   lmz_node_bind ... -> lmz_node_start -> (calls) -> lmz_node_close(cb)
 */
#ifndef LMZ_ACTOR_NODE_H
#define LMZ_ACTOR_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/err.h"
#include "core/hmap.h"
#include "lmz/lmz.h"
#include "lmz/sql.h"
#include "net/fetch.h"

typedef struct lmz_node_s lmz_node_t;
typedef void (*lmz_node_close_cb)(lmz_node_t *n, void *arg);

/* Wall clock in Unix milliseconds. The test kit installs a fake one. */
typedef double (*lmz_clock_fn)(void *data);

struct lmz_node_opts {
  const char *node_id;      /* "node-1"; copied */
  const char *data_dir;     /* RocksDB lives in DATA_DIR/store; copied */
  bool sync;                /* fsync the WAL before acknowledging (true) */
  uint64_t idle_evict_ms;   /* evict actors idle this long (default 60000) */
  uint32_t max_queue;       /* per-actor mailbox bound: calls queued for one
                               actor (limits.mailbox_max, default 100000) */
  uint32_t max_pending;     /* per-node bound: calls accepted and not answered
                               yet, handler continuations included
                               (limits.pending_calls_max, default 200000) */
  lmz_clock_fn clock;       /* NULL = real wall clock */
  void *clock_data;
  bool manual_alarms;       /* test kit: alarms fire only in lmz_node_poll_alarms */
  struct lmz_sql_opts sql;  /* SQL limits and caches (zeros = defaults) */
  /* Outbound HTTP for lmz_fetch (net/fetch.h): the egress allow-list
   * (fetch.allow; empty = lmz_fetch is off), timeout, size caps, redirects.
   * Borrowed until lmz_node_init returns (copied). */
  struct lmz_net_opts fetch;
};

/* Initializes the caller's `n` and opens its store. Returns 0 or an error
 * with errmsg (LMZ_ERRMSG_LEN) saying what failed ("open store /x: ...");
 * on error `n` may be freed at once. */
int lmz_node_init(lmz_node_t *n, uv_loop_t *loop,
                  const struct lmz_node_opts *opts, char *errmsg);

/* Loads an application shared object (dlopen) and runs its
 * lmz_module_init. Errors: LMZ_ENOTFOUND (file or symbol), LMZ_EBADCONFIG
 * (init failed or registered a duplicate class), with errmsg. */
int lmz_node_load_module(lmz_node_t *n, const char *path, char *errmsg);
/* Same for an init function linked into the process (tests, embedding). */
int lmz_node_register_module(lmz_node_t *n, const char *name,
                             lmz_module_init_fn init, char *errmsg);

/* Binds a name (COUNTER_DO) to a registered class. A durable-object class
 * needs kind LMZ_NODE_DO, a worker class LMZ_NODE_WORKER. Errors:
 * LMZ_ENOTFOUND (unknown class), LMZ_EEXIST (binding taken), LMZ_EINVAL
 * (kind does not match the class). */
int lmz_node_bind(lmz_node_t *n, const char *binding, const char *class_name,
                  lmz_node_type kind, char *errmsg);
/* A built-in class whose mesh calls bypass the operation-chain executor:
 * `fn` receives the raw chain (exposure rules are its own business) and
 * answers by setting *result, throwing, or deferring (lmz_defer). Used by the
 * client gateway, which relays chains to browser clients. Registered like a
 * module's class (kind LMZ_NODE_DO), then bound with lmz_node_bind. */
typedef int (*lmz_raw_call_fn)(lmz_ctx *ctx, lmz_value *chain,
                               lmz_value **result);
int lmz_node_register_raw_class(lmz_node_t *n, const char *class_name,
                                lmz_raw_call_fn fn, void *data);
/* In a cluster: places (binding, instance) of a relay class on this node,
 * moving it here if another node held it (a client reconnected here). Calls
 * from other nodes are then forwarded here. Asynchronous; no-op alone. */
void lmz_node_claim_local(lmz_node_t *n, const char *binding,
                          const char *instance);
/* In a cluster: forgets the directory placement of (binding, instance) if
 * this node owns it, fenced by the placement's current epoch (batched;
 * cluster/release.h). Only for an actor that is not active here and holds
 * no state (a client gone past its grace period, an evicted durable object
 * whose key range is empty). No-op alone. */
void lmz_node_release_placement(lmz_node_t *n, const char *binding,
                                const char *instance);
/* The node's cluster router (actor/router.h), or NULL before it starts. */
struct lmz_router_s *lmz_node_router(lmz_node_t *n);

/* Replication of durable turns (cluster/repl.h, DESIGN.md 4.1). With a
 * replicator set, every committed turn batch of a durable object is handed
 * to ship() before its local commit; ship returns a token (0 = no backup
 * to wait for). The output gate then opens for that turn only when its
 * local commit is durable AND token_state(token) says it is settled:
 * 1 = every in-sync backup acknowledged it (outputs released), 0 = still
 * waiting, < 0 = it can no longer be acknowledged (the actor moved away
 * while the write was in flight: its outputs fail with that error, an
 * unknown outcome for the caller). Outputs are released in commit order,
 * node-wide; the replicator calls lmz_node_repl_progress() when tokens
 * settled. Unset it (ship = NULL) before freeing the replicator: turns
 * still waiting for it then fail their outputs (never released as
 * durable). A local commit failure of a replicated batch calls
 * on_local_failure (the node must stop serving: its backups may hold the
 * write it lost). */
struct lmz_batch; /* storage/store.h */
struct lmz_node_replicator {
  /* fresh: the first commit of a fresh placement here (actor/fresh.c) */
  int (*ship)(void *ctx, const char *binding, const char *instance,
              const struct lmz_batch *b, bool fresh, uint64_t *token);
  int (*token_state)(void *ctx, uint64_t token);
  void (*on_local_failure)(void *ctx, int status);
  void *ctx;
};
void lmz_node_set_replicator(lmz_node_t *n,
                             const struct lmz_node_replicator *r);
/* An actor that became this node's own without an import (a failover
 * promoted this node, which held its range as a backup): its alarms are
 * entered in this node's alarm index so they fire here. Idempotent.
 * Returns 0 or an error (logged). */
int lmz_node_adopt_actor(lmz_node_t *n, const char *binding,
                         const char *instance);
/* The node's store (storage/store.h), for the replicator: backups apply
 * their streams to it. */
struct lmz_store_s *lmz_node_store(lmz_node_t *n);
void lmz_node_repl_progress(lmz_node_t *n);

/* A config `vars` entry; copied. */
int lmz_node_set_var(lmz_node_t *n, const char *name, const char *value);
/* True if `binding` exists; *kind gets its kind. */
bool lmz_node_binding_kind(lmz_node_t *n, const char *binding,
                           lmz_node_type *kind);

/* Recovers alarms from storage and starts timers. */
int lmz_node_start(lmz_node_t *n);

/* ---- calls entering the node (network, CLI, gateway, test kit) ------------ */

/* The outcome of a call. status 0: `ok` says whether `value` is the result
 * or the raised error value. status < 0: the call could not run (e.g.
 * LMZ_ECANCELED); value is then an Error describing it. The value is valid
 * only during the callback.
 *
 * Overload is an ordinary error reply (status 0, ok false): a call that
 * finds its actor's mailbox at max_queue, or the node at max_pending calls
 * pending, is refused on the next loop iteration, before any queued turn
 * runs, with an Error named MeshOverloadedError carrying retryable: true
 * and overloaded: true. The same holds for calls between actors (the
 * handler continuation gets that error; a fire-and-forget call is dropped
 * and counted). Replies, handler continuations and alarms are never
 * refused: they finish work already accepted. */
typedef void (*lmz_node_reply_cb)(void *arg, int status, bool ok,
                                  const lmz_value *value);

struct lmz_node_call {
  const char *binding;  /* callee */
  const char *instance; /* NULL for workers */
  lmz_value *chain;     /* operation chain (in `arena`) */
  /* Call context as the callee will see it: the caller chain (caller last),
   * origin auth (NULL = none), state (NULL = {}). Strings and values must
   * live in `arena`. */
  const lmz_identity *call_chain;
  size_t call_chain_len;
  lmz_value *origin_auth;
  lmz_value *state;
  lmz_arena *arena; /* ownership passes to the node when the call returns 0 */
  bool routed;      /* already routed here by its sender (the owner check
                       passed): run locally, never forward */
  uint64_t epoch;   /* placement epoch it was routed with (0 = none) */
  /* Tracing (core/trace.h), NUL-terminated, borrowed for the call: the
   * origin's trace id and this call's id, as a forwarding peer or a client
   * sent them. NULL or invalid (hostile input) = a fresh one is minted: the
   * call then starts a trace here. */
  const char *trace_id;
  const char *call_id;
};

/* Runs a mesh call (mesh exposure enforced). On 0 the arena belongs to the
 * node and cb runs exactly once, later (never from inside this function);
 * an overloaded node or actor answers through cb (see above). On error
 * nothing was taken: errors are LMZ_EINVAL (bad target: the message in
 * errmsg is the original's target-validation text), LMZ_ECANCELED
 * (closing), LMZ_ENOMEM. */
int lmz_node_call(lmz_node_t *n, const struct lmz_node_call *call,
                  lmz_node_reply_cb cb, void *arg, char *errmsg);

/* ---- HTTP requests for on_request (the gateway's routing) ---------------- */

struct lmz_request;
struct lmz_response;
struct lmz_gateway_hooks;
/* The outcome of an HTTP request: status 0 and `res` (valid only during the
 * callback), or an error (LMZ_ETHROWN: the handler threw `error`, which is
 * then valid during the callback; LMZ_ECANCELED, LMZ_EOVERLOAD ...) with res
 * NULL. */
typedef void (*lmz_node_http_cb)(void *arg, int status,
                                 const struct lmz_response *res,
                                 const lmz_value *error);
/* Runs the on_request handler of (binding, instance) as a turn of that
 * durable object (lmz/http.h). `req` is copied before returning (its
 * binding and instance fields are ignored). On 0 cb runs exactly once,
 * later. Errors (cb will not run; errmsg says why): LMZ_ENOTFOUND (no such
 * durable-object binding), LMZ_EINVAL (no instance), UV_ENOSYS (the class
 * has no on_request), LMZ_ECANCELED (closing), LMZ_EOVERLOAD (the actor's
 * mailbox or the node's pending calls are at their bound: the gateway
 * answers 503), LMZ_ENOMEM. */
int lmz_node_http(lmz_node_t *n, const char *binding, const char *instance,
                  const struct lmz_request *req, lmz_node_http_cb cb, void *arg,
                  char *errmsg);
/* The same with the origin auth of a verified token ({sub, claims}, copied;
 * NULL = none, as lmz_node_http): the turn's lmz_origin_auth, carried on by
 * the calls its handler makes and, when the actor lives on another node,
 * in the forwarded Call's context. Only the gateway mints it, after
 * verifying the request's token (gateway/access.c). */
int lmz_node_http_auth(lmz_node_t *n, const char *binding, const char *instance,
                       const struct lmz_request *req, const lmz_value *origin_auth,
                       lmz_node_http_cb cb, void *arg, char *errmsg);
/* The same with the ids the gateway gave the request, ids = {trace id,
 * call id} (core/trace.h; NUL-terminated, each replaced by a fresh one when
 * invalid): the turn runs under them, on the owner node too, so the
 * gateway's log lines and its response's traceparent name the turn. */
int lmz_node_http_traced(lmz_node_t *n, const char *binding, const char *instance,
                         const struct lmz_request *req, const lmz_value *origin_auth,
                         const char *const ids[2], lmz_node_http_cb cb, void *arg,
                         char *errmsg);
/* The hooks a module registered with lmz_register_gateway_hooks, or NULL. */
const struct lmz_gateway_hooks *lmz_node_gateway_hooks(lmz_node_t *n);

/* Arena pool: arenas for calls entering the node. */
lmz_arena *lmz_node_arena_get(lmz_node_t *n);
void lmz_node_arena_put(lmz_node_t *n, lmz_arena *a);

/* ---- time and alarms ----------------------------------------------------- */

double lmz_node_now_ms(lmz_node_t *n);
/* Runs every alarm due at the node's current clock (test kit). Returns the
 * number of alarms started. */
int lmz_node_poll_alarms(lmz_node_t *n);
/* Due time of the earliest alarm not yet started, as of the last poll
 * (0 = none known). */
double lmz_node_next_alarm_ms(lmz_node_t *n);

/* Evicts every actor idle for idle_evict_ms (by the node's clock) that is
 * not pinned: no queued or running turn, no pending handler continuation,
 * no deferred reply, no commit in flight. The node's timer calls it every
 * idle_evict_ms/2; the test kit calls it after moving its clock. Returns the
 * number evicted. */
int lmz_node_evict_idle(lmz_node_t *n);

/* ---- state for tests and operators --------------------------------------- */

struct lmz_node_stats {
  uint64_t calls_in;      /* calls entering through lmz_node_call */
  uint64_t calls_local;   /* lmz_call deliveries */
  uint64_t turns;         /* turns run */
  uint64_t turns_failed;  /* turns that threw */
  uint64_t activations;
  uint64_t evictions;
  uint64_t commits;       /* turn batches committed */
  uint64_t alarms_fired;
  uint64_t active_actors;
  uint64_t queued_msgs;
  uint64_t sql_rows_read;    /* rows read by SQL statements */
  uint64_t sql_rows_written; /* rows inserted, updated or deleted */
  uint64_t sql_db_bytes;     /* size of the open SQL databases */
  uint64_t sql_open_dbs;     /* actors with an open SQL database */
  uint64_t calls_pending;       /* gauge: calls accepted, not answered */
  uint64_t overloaded_mailbox;  /* calls refused: the actor's mailbox full */
  uint64_t overloaded_node;     /* calls refused: max_pending reached */
  uint64_t stale_copies_dropped; /* fresh placements found an old copy here */
};
void lmz_node_get_stats(lmz_node_t *n, struct lmz_node_stats *st);
const char *lmz_node_get_id(lmz_node_t *n);
uv_loop_t *lmz_node_loop(lmz_node_t *n);
/* True when no turn is queued or running and no output or commit is pending
 * (the test kit runs the loop until this holds). */
bool lmz_node_is_quiet(lmz_node_t *n);

/* Reads a durable object's stored value (test kit / operators); *out in `a`.
 * 0, LMZ_ENOTFOUND. Sees only durable data. */
int lmz_node_kv_peek(lmz_node_t *n, const char *binding, const char *instance,
                     const char *key, lmz_arena *a, lmz_value **out);
/* Writes a value durably outside any turn (test kit seeding); the actor must
 * not be active. cb-less: returns after the write is durable. */
int lmz_node_kv_seed(lmz_node_t *n, const char *binding, const char *instance,
                     const char *key, const lmz_value *v);

/* The node handle (README "Code conventions"): the caller allocates it;
 * the fields are private to actor/ (actor_int.h). */
struct lmz_actor;
struct lmz_msg;
struct lmz_commit;
struct lmz_gateway_hooks;
struct lmz_router_s;
struct lmz_node_s {
  uv_loop_t *loop;
  char *id;
  char errmsg[LMZ_ERRMSG_LEN];
  struct lmz_node_opts opts;
  lmz_hmap classes;  /* name -> struct lmz_class * */
  lmz_hmap bindings; /* name -> struct lmz_binding * */
  lmz_hmap vars;     /* name -> char * ("name\0value") */
  lmz_hmap actors;   /* key -> struct lmz_actor * */
  void **dl_handles;
  size_t n_dl;
  struct lmz_store_s *store;
  /* run queue */
  struct lmz_actor *rq_head, *rq_tail;
  uv_idle_t idle;
  bool idle_active;
  /* commits in flight (oldest first) */
  struct lmz_commit *c_head, *c_tail;
  uint64_t next_seq;
  uint64_t durable_seq;
  /* arena pool */
  lmz_arena **pool;
  size_t pool_n, pool_cap;
  /* timers */
  uv_timer_t evict_timer;
  uv_timer_t alarm_timer;
  double alarm_next_ms;     /* earliest known future alarm, or 0 */
  bool alarm_rearm;         /* a turn scheduled an earlier alarm */
  lmz_hmap alarms_inflight; /* index key -> struct inflight */
  uint64_t activation_counter;
  char boot_id[17];
  bool closing;
  lmz_node_close_cb close_cb;
  void *close_arg;
  int n_handles_open;
  struct lmz_node_stats stats;
  uint64_t queued;
  /* overload (scheduler.c): calls accepted and not answered yet, and the
   * refused ones whose error replies leave on the next loop iteration */
  uint64_t calls_pending;
  struct lmz_msg *rej_head, *rej_tail;
  struct lmz_router_s *router; /* cluster routing (actor/router.c), or NULL */
  struct lmz_node_replicator
      repl; /* lmz_node_set_replicator; ship NULL = none */
  const struct lmz_gateway_hooks *gw_hooks; /* lmz_register_gateway_hooks */
  struct lmz_net_s *net; /* outbound HTTP (lmz_fetch), NULL when fetch.allow is
                          empty; closed by lmz_node_close (fetch.c) */
  uint32_t fetches;      /* lmz_fetch requests queued or in flight; bounded by
                            the client's max_inflight (fetch.c) */
};

/* Graceful shutdown: refuses new calls (LMZ_ECANCELED), lets running and
 * queued turns finish, flushes the storage queue, closes the store and the
 * node's handles; then cb runs. Free nothing before cb. */
void lmz_node_close(lmz_node_t *n, lmz_node_close_cb cb, void *arg);
/* Releases what the node still holds (actors, classes, bindings; its
 * modules stay loaded); only after the close callback. The memory of `n` is
 * then the caller's. NULL is ignored. */
void lmz_node_release(lmz_node_t *n);

#endif
