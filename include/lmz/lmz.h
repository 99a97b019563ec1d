/* lmz/lmz.h - the public C API for lmz applications.
 *
 * An application is a shared object that lmzd loads (dlopen). It exports one
 * function, lmz_module_init(), which registers classes: durable objects
 * (named, single-threaded, stateful actors with transactional storage) and
 * workers (stateless). A configuration file binds names (COUNTER_DO, ...) to
 * classes, like a wrangler config.
 *
 *   static int counter_increment(lmz_ctx *ctx, lmz_value *const *args,
 *                                size_t nargs, lmz_value **result);
 *   static const lmz_method counter_methods[] = {
 *     LMZ_MESH("increment", counter_increment, NULL),
 *     LMZ_LOCAL("onResult", counter_on_result),
 *     LMZ_END,
 *   };
 *   LMZ_EXPORT int lmz_module_init(lmz_registry *r) {
 *     return lmz_register_do(r, "CounterDO", counter_methods, NULL);
 *   }
 *
 * THE MODEL. Handlers are synchronous and run to completion: one turn at a
 * time per actor. Work that waits is expressed as a continuation (an
 * operation chain) that the runtime runs later: the reply handler of a call,
 * an alarm. A turn's storage writes commit atomically (all or nothing) and its
 * outputs (reply, outgoing calls) leave only once its writes are durable.
 *
 * THREADS. Every function here is called on the node's loop thread, from
 * inside a handler (with the ctx it received) unless it says otherwise.
 *
 * MEMORY. Values a handler receives (args, storage reads, call context) live
 * in the turn's arena, lmz_turn_arena(ctx), and are valid until the handler
 * returns. Values a handler creates for its result, for storage or for calls
 * should be allocated in that arena too; the runtime copies what it keeps.
 *
 * ERRORS. Functions return 0 or a negative lmz error code (core/err.h). A
 * handler "throws" by calling lmz_throw()/lmz_throwf(), which record an error
 * value and return LMZ_ETHROWN; the handler returns that code. Functions that
 * the original API throws from (lmz_call target validation, ...) record their
 * error the same way and return LMZ_ETHROWN, so `return rv;` propagates it.
 * Any other negative code a handler returns becomes an Error whose message is
 * lmz_strerror(code). */
#ifndef LMZ_LMZ_H
#define LMZ_LMZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmz/value.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMZ_EXPORT __attribute__((visibility("default")))
#define LMZ_API_VERSION 1

/* Error code returned after lmz_throw() (same value as core/err.h's). */
#define LMZ_ETHROWN (-9012)

typedef struct lmz_ctx lmz_ctx;
typedef struct lmz_registry lmz_registry;
typedef struct lmz_ctn lmz_ctn;
typedef struct lmz_deferred lmz_deferred;

/* ---- node identity -------------------------------------------------------- */

typedef enum lmz_node_type {
  LMZ_NODE_DO = 0,     /* "LumenizeDO" */
  LMZ_NODE_WORKER = 1, /* "LumenizeWorker" */
  LMZ_NODE_CLIENT = 2, /* "LumenizeClient" */
  LMZ_NODE_CLI = 3,    /* "LmzCli": an operator's `lmz call` */
} lmz_node_type;

typedef struct lmz_identity {
  lmz_node_type type;
  const char *binding;  /* NUL-terminated */
  const char *instance; /* NULL for workers and the CLI */
} lmz_identity;

/* "LumenizeDO", "LumenizeWorker", "LumenizeClient", "LmzCli". */
const char *lmz_node_type_name(lmz_node_type t);

/* ---- classes -------------------------------------------------------------- */

/* A method. `args` are the call's arguments (borrowed, turn arena). Set
 * *result (NULL or untouched = undefined) and return 0, or throw. */
typedef int (*lmz_method_fn)(lmz_ctx *ctx, lmz_value *const *args,
                             size_t nargs, lmz_value **result);
/* A guard: return 0 to allow the call, or throw (lmz_throw...) to refuse it.
 * Guards see the call context; they must not write storage. */
typedef int (*lmz_guard_fn)(lmz_ctx *ctx);
/* Class hooks (on_start, on_before_call): 0 or throw. */
typedef int (*lmz_hook_fn)(lmz_ctx *ctx);

struct lmz_request;  /* lmz/http.h */
struct lmz_response; /* lmz/http.h */
/* HTTP handler for /{prefix}/{binding}/{instance}/... (lmz/http.h).
 * Fill `res`; return 0, or a negative code / throw for a 500. */
typedef int (*lmz_request_fn)(lmz_ctx *ctx, const struct lmz_request *req,
                              struct lmz_response *res);

#define LMZ_METHOD_MESH 0x1u /* callable from other nodes (the @mesh marker) */

typedef struct lmz_method {
  const char *name; /* "increment"; dotted paths ("admin.reset") are allowed */
  lmz_method_fn fn;
  lmz_guard_fn guard; /* optional, mesh methods only */
  unsigned flags;
} lmz_method;

#define LMZ_MESH(name_, fn_, guard_) {(name_), (fn_), (guard_), LMZ_METHOD_MESH}
#define LMZ_LOCAL(name_, fn_) {(name_), (fn_), NULL, 0}
#define LMZ_END {NULL, NULL, NULL, 0}

struct lmz_class_opts {
  /* Runs once per activation before the first call (durable objects: with
   * storage access; its writes commit like a turn's). If it throws, the calls
   * that triggered the activation fail with that error. */
  lmz_hook_fn on_start;
  /* Runs before every incoming mesh call, before the exposure check and the
   * guard. Throw to refuse the call. May modify lmz_state(ctx). */
  lmz_hook_fn on_before_call;
  lmz_request_fn on_request;
  void *data; /* returned by lmz_class_data() */
};

/* Registers a class; `methods` (terminated by LMZ_END) and `opts` must stay
 * valid while the module is loaded (static tables). Call only from
 * lmz_module_init. Returns 0, LMZ_EEXIST (class name taken), LMZ_EINVAL. */
int lmz_register_do(lmz_registry *r, const char *class_name,
                    const lmz_method *methods,
                    const struct lmz_class_opts *opts);
int lmz_register_worker(lmz_registry *r, const char *class_name,
                        const lmz_method *methods,
                        const struct lmz_class_opts *opts);

/* The one function an application module exports. */
typedef int (*lmz_module_init_fn)(lmz_registry *r);
LMZ_EXPORT int lmz_module_init(lmz_registry *r);
#define LMZ_MODULE_INIT_SYMBOL "lmz_module_init"

/* ---- the handler's view --------------------------------------------------- */

lmz_arena *lmz_turn_arena(lmz_ctx *ctx);
/* Who am I. Strings are NUL-terminated and live as long as the actor. */
lmz_node_type lmz_self_type(lmz_ctx *ctx);
const char *lmz_binding_name(lmz_ctx *ctx);
const char *lmz_instance_name(lmz_ctx *ctx); /* NULL for workers */
void *lmz_class_data(lmz_ctx *ctx);
/* This node's id (e.g. "node-1"), and the wall clock (fake in the test kit). */
const char *lmz_node_id(lmz_ctx *ctx);
double lmz_now_ms(lmz_ctx *ctx);
/* This activation's id (unique per activation on a node) and the time it
 * was activated (Unix ms): the probe for single activation. */
const char *lmz_activation_id(lmz_ctx *ctx, double *activated_at_ms);
/* A `vars` entry of the configuration, or NULL. */
const char *lmz_var(lmz_ctx *ctx, const char *name);

/* Call context of the current turn. Outside a mesh call (alarms, on_start)
 * the chain is empty, origin auth NULL, state an empty object. */
size_t lmz_call_chain_len(lmz_ctx *ctx);
/* i = 0 is the origin; i = len-1 the immediate caller. */
const lmz_identity *lmz_call_chain_at(lmz_ctx *ctx, size_t i);
/* {sub, claims} minted by a gateway from a verified token, or NULL. */
lmz_value *lmz_origin_auth(lmz_ctx *ctx);
/* The mutable state object; outgoing calls of this turn carry it. */
lmz_value *lmz_state(lmz_ctx *ctx);
/* Tracing (README "Tracing a call"). The trace id names the causal tree
 * this turn belongs to: minted where a chain starts (a client's call at the
 * gateway, `lmz call`, an alarm, an HTTP request unless it carries a valid
 * W3C `traceparent`, on_start, a turn with no inherited context) and
 * inherited by every call, handler continuation and broadcast this turn
 * makes, on any node. The call id names the call being run (its chain
 * entry); it is the same on every node a forwarded call crosses, and each
 * outgoing call gets a fresh one. A handler continuation runs under its
 * caller's context, so it sees the caller's trace and call ids.
 * trace id: 32 lowercase hex chars; call id: 16 lowercase hex chars (W3C
 * trace-id and parent-id formats). Never NULL, never empty inside a turn;
 * valid until the turn ends (copy to keep). Call from the turn's own
 * handler (its loop thread), like every ctx accessor. */
const char *lmz_trace_id(lmz_ctx *ctx);
const char *lmz_call_id(lmz_ctx *ctx);
/* {callChain:[{type,bindingName,instanceName?}...], originAuth?, state,
 * traceId, callId} as a value in the turn arena (traceId and callId are
 * lmz additions the original's shape tolerates: its readers ignore them). */
lmz_value *lmz_call_context_value(lmz_ctx *ctx);

/* ---- errors --------------------------------------------------------------- */

/* Records `err` (any value; usually an Error) as the turn's thrown error and
 * returns LMZ_ETHROWN. */
int lmz_throw(lmz_ctx *ctx, lmz_value *err);
/* Throws a new Error with the given name ("TypeError", "CounterError") and a
 * printf-formatted message. */
int lmz_throwf(lmz_ctx *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- storage (durable objects) -------------------------------------------- */
/* The actor's own key space. Reads see the turn's own writes and earlier
 * turns' writes (cached). Writes are buffered in the turn and committed
 * atomically when the handler returns 0; a turn that throws commits nothing.
 * Keys are at most 2048 bytes. Workers get LMZ_EINVAL (and a thrown error). */

/* Returns a copy in the turn arena, or NULL if absent (or on error, see
 * lmz_kv_get_ex). */
lmz_value *lmz_kv_get(lmz_ctx *ctx, const char *key);
int lmz_kv_get_ex(lmz_ctx *ctx, const char *key, size_t klen, lmz_value **out);
/* `v` is copied (encoded) before returning. */
int lmz_kv_put(lmz_ctx *ctx, const char *key, const lmz_value *v);
int lmz_kv_put_ex(lmz_ctx *ctx, const char *key, size_t klen,
                  const lmz_value *v);
int lmz_kv_delete(lmz_ctx *ctx, const char *key);

struct lmz_kv_list_opts {
  const char *prefix; /* keys starting with it (NULL = all) */
  const char *start;  /* inclusive lower bound (NULL = none) */
  const char *end;    /* exclusive upper bound (NULL = none) */
  size_t limit;       /* 0 = no limit */
  bool reverse;
};
/* A Map key -> value in key order (reverse if asked), in the turn arena. */
int lmz_kv_list(lmz_ctx *ctx, const struct lmz_kv_list_opts *opts,
                lmz_value **out);

/* ---- continuations -------------------------------------------------------- */
/* A continuation is a serializable operation chain: gets and applies, like
 * the original's ctn() proxy. It lives in the turn arena.
 *
 *   lmz_ctn *remote = lmz_ctn_call(lmz_ctn_new(ctx), "increment", 1, five);
 *   lmz_ctn *handler = lmz_ctn_call(lmz_ctn_new(ctx), "onResult", 2,
 *                                   tag, lmz_ctn_result(ctx));
 *   rv = lmz_call(ctx, "COUNTER_DO", "b", remote, handler, NULL); */

lmz_ctn *lmz_ctn_new(lmz_ctx *ctx);
/* Appends a property access; returns c (or NULL on out of memory). */
lmz_ctn *lmz_ctn_get(lmz_ctn *c, const char *key);
/* Appends a call with `nargs` arguments (copied into the chain's graph:
 * nested continuation markers stay markers). */
lmz_ctn *lmz_ctn_apply(lmz_ctn *c, size_t nargs, lmz_value *const *args);
/* get(method) + apply(args...), the arguments as lmz_value* varargs. */
lmz_ctn *lmz_ctn_call(lmz_ctn *c, const char *method, size_t nargs, ...);
/* The continuation as an argument of another one (a nested operation,
 * evaluated on the callee before the outer call, left to right). */
lmz_value *lmz_ctn_nested(lmz_ctn *c);
/* The $result placeholder: stands for the call's result (or error) in a
 * handler continuation. Without one, the result is appended as the last
 * argument of the handler's final call. */
lmz_value *lmz_ctn_result(lmz_ctx *ctx);
/* The chain as a value (array of {type:'get',key} / {type:'apply',args}). */
lmz_value *lmz_ctn_chain(lmz_ctn *c);
/* Wraps a chain value (e.g. read back from storage) as a continuation. */
lmz_ctn *lmz_ctn_from_chain(lmz_ctx *ctx, lmz_value *chain);

/* ---- calls ---------------------------------------------------------------- */

struct lmz_call_opts {
  bool new_chain;      /* this node becomes the origin; origin auth dropped */
  lmz_value *state;    /* shallow-merged over the inherited state (wins) */
  bool on_error_only;  /* run the handler only when the call fails */
  bool local;          /* placement hint: prefer this node for a new actor */
};

/* Calls `remote` on (binding, instance); instance NULL for workers.
 * Fire-and-forget when `handler` is NULL (a failure is logged); otherwise the
 * handler continuation runs later on this actor, as its own turn, with the
 * result or the Error substituted for $result, under the context captured
 * now, and without the mesh-exposure check (it is your own code).
 * The call leaves after this turn's writes are durable (output gate).
 * Target validation throws (returns LMZ_ETHROWN): unknown binding, an
 * instance for a worker binding, no instance for a durable object binding. */
int lmz_call(lmz_ctx *ctx, const char *binding, const char *instance,
             lmz_ctn *remote, lmz_ctn *handler,
             const struct lmz_call_opts *opts);

/* ---- broadcast ------------------------------------------------------------ */
/* The original's svc.broadcast(targets, remoteCtn, {onResult}): one
 * continuation to many durable objects or clients of one binding.
 *
 *   const char *subs[] = {"alice.t1", "bob.t7", ...};
 *   lmz_ctn *push = lmz_ctn_call(lmz_ctn_new(ctx), "handleContentUpdate", 1, v);
 *   struct lmz_broadcast_opts o = {.new_chain = true,
 *       .on_result = lmz_ctn_call(lmz_ctn_new(ctx), "onPushFailed", 1,
 *                                 lmz_ctn_result(ctx))};
 *   rv = lmz_broadcast(ctx, "LUMENIZE_CLIENT_GATEWAY", subs, n, push, &o);
 *
 * Each listed instance gets one call of `remote` (a listed twice instance
 * gets two), with the call context lmz_call would give it (opts as
 * lmz_call_opts: new_chain, state). Like lmz_call's calls, the broadcast
 * leaves after this turn's writes are durable (output gate), and a turn
 * that throws sends none of it.
 *
 * Routing: targets are grouped by their owner node in this node's placement
 * directory; each other owner gets ONE node-port frame carrying the chain
 * and the context once and the list of its targets (several frames when
 * the list exceeds LMZ_BROADCAST_FRAME_TARGETS or the frame cap). Targets
 * this node owns run here; targets not placed yet (claimed first), or
 * whose owner is unreachable or down, go the way a single lmz_call goes. A
 * target the receiving node no longer owns (its placement moved) is
 * answered MOVED by that node, and only that target is routed again, alone,
 * once this node's directory caught up (bounded, as calls are). Gateway
 * clients (binding LUMENIZE_CLIENT_GATEWAY, instance "{sub}.{tabId}") are
 * reached on the node that holds their socket.
 *
 * Outcomes: with opts->on_result set, that handler continuation runs on
 * this actor, as its own turn (no mesh check, under the context captured
 * now), once per target whose outcome it wants: by default only for
 * targets that failed (the original's errors-only onResult), with
 * all_results for every target. In place of $result (or appended as the
 * last argument) it gets {instance, ok: true, result} or
 * {instance, ok: false, error}. Outcomes from one remote node arrive
 * coalesced (one frame per loop iteration of that node). Without on_result
 * the broadcast is fire-and-forget: failures are logged.
 *
 * Bounds: n <= LMZ_BROADCAST_MAX; each instance a non-empty name of at most
 * 1024 bytes. Throws (LMZ_ETHROWN) on a bad binding (unknown, or a worker
 * binding: broadcast targets durable objects and clients), a bad instance,
 * n over the bound, or an invalid continuation. `instances` is copied
 * before returning. */
#define LMZ_BROADCAST_MAX 100000
#define LMZ_BROADCAST_FRAME_TARGETS 16384 /* targets per node-port frame */

struct lmz_broadcast_opts {
  bool new_chain;    /* as lmz_call_opts */
  lmz_value *state;  /* as lmz_call_opts */
  lmz_ctn *on_result; /* per-target outcome handler, or NULL */
  bool all_results;  /* on_result for every target, not only failures */
};

int lmz_broadcast(lmz_ctx *ctx, const char *binding,
                  const char *const *instances, size_t n, lmz_ctn *remote,
                  const struct lmz_broadcast_opts *opts);

/* ---- workers: replying later ---------------------------------------------- */

/* Inside a method: the call will be answered later (after outside I/O). The
 * method returns 0 (its *result is ignored). Resolve or reject exactly once,
 * on the loop thread; values are copied. Call from workers (durable objects
 * may too, but their turns stay atomic: the reply is not part of the turn).
 * A method that throws after lmz_defer is answered with its error at once;
 * the handle must still be settled, which then only frees it. */
lmz_deferred *lmz_defer(lmz_ctx *ctx);
void lmz_deferred_resolve(lmz_deferred *d, const lmz_value *result);
void lmz_deferred_reject(lmz_deferred *d, const lmz_value *error);
/* The node's libuv loop (a uv_loop_t *), for outside I/O in workers. */
void *lmz_uv_loop(lmz_ctx *ctx);

/* ---- outbound HTTP (lmz_fetch) ------------------------------------------ */
/* An HTTP(S) request to the outside world that never holds the actor: the
 * request leaves with the turn's outputs (after its writes are durable;
 * nothing is sent if the turn throws), the node's loop waits for the
 * response (libcurl, asynchronous), and the result comes back later:
 *
 *  - handler != NULL (durable objects and workers): the handler
 *    continuation runs as a LATER turn of this actor with the response (or
 *    the Error) in place of $result, like lmz_call's handler (the
 *    original's "two one-way calls"). Other calls are served meanwhile.
 *  - handler == NULL, inside a mesh call: the call is deferred and answered
 *    with the response (or rejected with the Error) when it arrives; the
 *    method's *result is ignored. This is how a worker answers a call with
 *    a fetch (only one deferral per call: a second one throws).
 *
 * The response is {status, headers, body, url}: status a number, headers a
 * Headers value (names lowercased), body a string (UTF-8; an ArrayBuffer
 * when `binary` is set or the bytes are not UTF-8), url the final URL after
 * redirects (with `json`, body is the parsed value). A failure is an Error
 * named FetchError whose `code` property
 * is "ETIMEOUT", "ETOOBIG", "ELOOP" (too many redirects), "EACCESS" (a
 * redirect to a host not on the allow-list), "ECANCELED" (node shutting
 * down), "ESYNTAX" (with `json`) or "EIO" (DNS, connection, TLS). Any HTTP
 * status is a response. lmz_fetch throws FetchError "EOVERLOAD" when the
 * node already has fetch.max_inflight requests queued or in flight.
 *
 * The egress allow-list (config fetch.allow) is off by default: with it
 * empty every lmz_fetch throws. lmz_fetch throws at once (FetchError, code
 * "EACCESS" or "EINVAL") for a host not on the list, a scheme other than
 * http/https, a malformed URL, method or header (CR/LF refused), or a body
 * above fetch.max_request_bytes. Limits: fetch.timeout_ms (whole request,
 * redirects included; req->timeout_ms may only lower it),
 * fetch.max_response_bytes, fetch.max_redirects (each hop's host is checked
 * against the list before it is connected to). Tracing: the request carries
 * `traceparent: 00-<lmz_trace_id(ctx)>-<fresh parent id>-01` (W3C Trace
 * Context), unless req->headers has a traceparent, which is sent as is. */
struct lmz_fetch_req {
  const char *url;
  const char *method;         /* NULL = "GET" */
  const char *const *headers; /* "Name: value" lines */
  size_t n_headers;
  const void *body;           /* copied; may be NULL */
  size_t body_len;
  uint32_t timeout_ms;        /* 0 = fetch.timeout_ms */
  bool binary;                /* body as an ArrayBuffer */
  bool json;                  /* body parsed as JSON (depth <= 64); a body
                                 that is not JSON is a FetchError, code
                                 "ESYNTAX" */
};
int lmz_fetch(lmz_ctx *ctx, const struct lmz_fetch_req *req, lmz_ctn *handler);

/* ---- alarms (durable objects) --------------------------------------------- */
/* Durable schedules that run a continuation on this actor (locally, no mesh
 * check, no call context). At least once: a run that throws is retried with
 * exponential backoff (1 s, 2 s, 4 s, ...) up to max_retries, then dropped
 * (logged). Scheduling is part of the turn (atomic with its writes). */

struct lmz_alarm_opts {
  const char *id;  /* NULL = a new monotonic id (FIFO within a millisecond) */
  int max_retries; /* 0 = default (5); < 0 = never retry */
};

/* `schedule_out` (optional) gets {id, type, time, ...} in the turn arena. */
int lmz_alarm_at(lmz_ctx *ctx, double unix_ms, lmz_ctn *c,
                 const struct lmz_alarm_opts *opts, lmz_value **schedule_out);
int lmz_alarm_after(lmz_ctx *ctx, double delay_ms, lmz_ctn *c,
                    const struct lmz_alarm_opts *opts,
                    lmz_value **schedule_out);
/* Standard 5-field cron (minute hour day-of-month month day-of-week, UTC),
 * with lists, ranges, steps and names (JAN, MON). Invalid -> throws. */
int lmz_alarm_cron(lmz_ctx *ctx, const char *cron, lmz_ctn *c,
                   const struct lmz_alarm_opts *opts,
                   lmz_value **schedule_out);
/* Cancels by id; *found (optional) says whether it existed. */
int lmz_alarm_cancel(lmz_ctx *ctx, const char *id, bool *found);
/* Array of schedules ordered by (time, id), in the turn arena. */
int lmz_alarm_list(lmz_ctx *ctx, lmz_value **out);

#ifdef __cplusplus
}
#endif
#endif
