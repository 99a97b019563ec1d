/* examples/counter - the application tests and benchmarks use.
 *
 * COUNTER_DO (class CounterDO), a durable object:
 *   increment(by) -> new total (persisted)     get() -> total
 *   reset() -> 0: deletes the total (a counter with nothing stored is
 *              released from the directory once it is evicted idle)
 *   echo(x) -> x unchanged                     whoami() -> call context
 *   fail(message) -> throws CounterError {code:"E_COUNTER", cause: Error}
 *   secret() -> local only (not mesh-callable)
 *   guarded() -> "ok", guard requires state.token == "letmein"
 *   activation() -> {node, activationId, activatedAt}
 *   schedule(ms, by) -> alarm id; the alarm increments by `by`
 *   callOther(instance, by) -> increments another counter with lmz_call and
 *                              a handler that records the result
 *   lastOtherResult() -> what that handler recorded
 *   broadcast(instances, by, all) -> n: increment(by) on every listed
 *       counter with one lmz_broadcast (n is stored as lastBroadcastSize,
 *       in the same turn); its on_result handler appends each
 *       outcome {instance, ok, result|error} (failures only, or all when
 *       `all` is true) to the list broadcastResults() returns
 *   note(text) -> id: a row in the SQL table notes (lmz/sql.h)
 *   notes(n) -> the last n notes [{id, text}], newest first
 *   noteGet(id) -> text or null (a point SELECT by primary key)
 * CounterHttpDO: the same methods and state, plus HTTP (on_request, e.g.
 *   /api/http-counter-do/{instance}): GET -> text "total=T node=N
 *   activation=A" (header X-Echo echoes the request's, X-Origin-Sub is the
 *   sub of the request's verified token or "-", X-Trace-Id the request's
 *   trace id: README "Tracing a call"), POST with a decimal
 *   body -> increments by it, same answer. (CounterDO has no on_request: a
 *   class without one answers 501.)
 * ECHO_WORKER (class EchoWorker), a worker: echo(x), whereami() -> node id. */
#include <string.h>

#include <stdio.h>
#include <stdlib.h>

#include "lmz/http.h"
#include "lmz/lmz.h"
#include "lmz/sql.h"

static double arg_number(lmz_value *const *args, size_t nargs, size_t i,
                         double dflt) {
  if (i >= nargs || lmz_typeof(args[i]) != LMZ_T_NUMBER)
    return dflt;
  return lmz_get_number(args[i]);
}

static double total_of(lmz_ctx *ctx) {
  lmz_value *t = lmz_kv_get(ctx, "total");
  return t && lmz_typeof(t) == LMZ_T_NUMBER ? lmz_get_number(t) : 0;
}

static int counter_increment(lmz_ctx *ctx, lmz_value *const *args,
                             size_t nargs, lmz_value **result) {
  if (nargs > 0 && lmz_typeof(args[0]) != LMZ_T_NUMBER)
    return lmz_throwf(ctx, "TypeError", "increment(by): by must be a number");
  double total = total_of(ctx) + arg_number(args, nargs, 0, 1);
  lmz_value *v = lmz_number(lmz_turn_arena(ctx), total);
  int rv = lmz_kv_put(ctx, "total", v);
  if (rv)
    return rv;
  *result = v;
  return 0;
}

static int counter_reset(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                         lmz_value **result) {
  (void)args, (void)nargs;
  int rv = lmz_kv_delete(ctx, "total");
  if (rv)
    return rv;
  *result = lmz_number(lmz_turn_arena(ctx), 0);
  return 0;
}

static int counter_get(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                       lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_number(lmz_turn_arena(ctx), total_of(ctx));
  return 0;
}

static int counter_echo(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                        lmz_value **result) {
  (void)ctx;
  *result = nargs ? args[0] : lmz_undefined();
  return 0;
}

static int counter_whoami(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                          lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_call_context_value(ctx);
  return 0;
}

static int counter_fail(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                        lmz_value **result) {
  (void)result;
  lmz_arena *a = lmz_turn_arena(ctx);
  const char *msg = nargs && lmz_typeof(args[0]) == LMZ_T_STRING
                        ? lmz_get_str(args[0], NULL) : "counter failed";
  lmz_value *err = lmz_error(a, "CounterError", msg);
  if (!err || lmz_error_set_prop(err, "code", 4, lmz_cstring(a, "E_COUNTER")) ||
      lmz_error_set_cause(err, lmz_error(a, "Error", "root cause")))
    return -1;
  return lmz_throw(ctx, err);
}

static int counter_secret(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                          lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_cstring(lmz_turn_arena(ctx), "the secret");
  return 0;
}

static int guard_token(lmz_ctx *ctx) {
  lmz_value *tok = lmz_object_getc(lmz_state(ctx), "token");
  const char *s = tok && lmz_typeof(tok) == LMZ_T_STRING ? lmz_get_str(tok, NULL) : NULL;
  if (!s || strcmp(s, "letmein"))
    return lmz_throwf(ctx, "Error", "Guard: valid token required");
  return 0;
}

static int counter_guarded(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                           lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_cstring(lmz_turn_arena(ctx), "ok");
  return 0;
}

static int counter_activation(lmz_ctx *ctx, lmz_value *const *args,
                              size_t nargs, lmz_value **result) {
  (void)args, (void)nargs;
  lmz_arena *a = lmz_turn_arena(ctx);
  double at;
  const char *id = lmz_activation_id(ctx, &at);
  lmz_value *o = lmz_object(a);
  if (!o || lmz_object_setc(o, "node", lmz_cstring(a, lmz_node_id(ctx))) ||
      lmz_object_setc(o, "activationId", lmz_cstring(a, id)) ||
      lmz_object_setc(o, "activatedAt", lmz_number(a, at)))
    return -1;
  *result = o;
  return 0;
}

static int counter_schedule(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                            lmz_value **result) {
  lmz_arena *a = lmz_turn_arena(ctx);
  double ms = arg_number(args, nargs, 0, 0), by = arg_number(args, nargs, 1, 1);
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "increment", 1, lmz_number(a, by));
  lmz_value *sched = NULL;
  int rv = lmz_alarm_after(ctx, ms, c, NULL, &sched);
  if (rv)
    return rv;
  *result = lmz_object_getc(sched, "id");
  return 0;
}

static int counter_call_other(lmz_ctx *ctx, lmz_value *const *args,
                              size_t nargs, lmz_value **result) {
  lmz_arena *a = lmz_turn_arena(ctx);
  if (nargs < 1 || lmz_typeof(args[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "callOther(instance, by): instance must be a string");
  lmz_ctn *remote = lmz_ctn_call(lmz_ctn_new(ctx), "increment", 1,
                                 lmz_number(a, arg_number(args, nargs, 1, 1)));
  lmz_ctn *handler = lmz_ctn_call(lmz_ctn_new(ctx), "recordOther", 2, args[0],
                                  lmz_ctn_result(ctx));
  int rv = lmz_call(ctx, "COUNTER_DO", lmz_get_str(args[0], NULL), remote,
                    handler, NULL);
  if (rv)
    return rv;
  *result = lmz_cstring(a, "sent");
  return 0;
}

/* Local handler: not mesh-callable; runs with the other counter's result. */
static int counter_record_other(lmz_ctx *ctx, lmz_value *const *args,
                                size_t nargs, lmz_value **result) {
  (void)result;
  lmz_arena *a = lmz_turn_arena(ctx);
  lmz_value *rec = lmz_object(a);
  if (!rec || lmz_object_setc(rec, "instance", nargs > 0 ? args[0] : lmz_undefined()) ||
      lmz_object_setc(rec, "result", nargs > 1 ? args[1] : lmz_undefined()))
    return -1;
  return lmz_kv_put(ctx, "lastOtherResult", rec);
}

static int counter_last_other(lmz_ctx *ctx, lmz_value *const *args,
                              size_t nargs, lmz_value **result) {
  (void)args, (void)nargs;
  lmz_value *v = lmz_kv_get(ctx, "lastOtherResult");
  *result = v ? v : lmz_null();
  return 0;
}

static int counter_broadcast(lmz_ctx *ctx, lmz_value *const *args,
                             size_t nargs, lmz_value **result) {
  lmz_arena *a = lmz_turn_arena(ctx);
  if (nargs < 1 || lmz_typeof(args[0]) != LMZ_T_ARRAY)
    return lmz_throwf(ctx, "TypeError", "broadcast(instances, by, all): instances must be an array");
  size_t n = lmz_len(args[0]);
  const char **names = lmz_arena_alloc(a, (n ? n : 1) * sizeof *names);
  if (!names)
    return -1;
  for (size_t i = 0; i < n; i++)
    names[i] = lmz_get_str(lmz_array_get(args[0], i), NULL); /* NULL: throws */
  lmz_ctn *remote = lmz_ctn_call(lmz_ctn_new(ctx), "increment", 1,
                                 lmz_number(a, arg_number(args, nargs, 1, 1)));
  struct lmz_broadcast_opts o = {
      .on_result = lmz_ctn_call(lmz_ctn_new(ctx), "recordBroadcast", 1,
                                lmz_ctn_result(ctx)),
      .all_results = nargs > 2 && lmz_get_bool(args[2])};
  lmz_value *size = lmz_number(a, (double)n);
  int rv = lmz_broadcast(ctx, "COUNTER_DO", names, n, remote, &o);
  if (!rv)
    rv = lmz_kv_put(ctx, "lastBroadcastSize", size);
  if (!rv)
    *result = size;
  return rv;
}

/* Local handler: one broadcast outcome. */
static int counter_record_broadcast(lmz_ctx *ctx, lmz_value *const *args,
                                    size_t nargs, lmz_value **result) {
  (void)result;
  lmz_value *list = lmz_kv_get(ctx, "broadcastResults");
  if (!list || lmz_typeof(list) != LMZ_T_ARRAY)
    list = lmz_array(lmz_turn_arena(ctx), 1);
  if (!list || lmz_array_push(list, nargs ? args[0] : lmz_undefined()))
    return -1;
  return lmz_kv_put(ctx, "broadcastResults", list);
}

static int counter_broadcast_results(lmz_ctx *ctx, lmz_value *const *args,
                                     size_t nargs, lmz_value **result) {
  (void)args, (void)nargs;
  lmz_value *v = lmz_kv_get(ctx, "broadcastResults");
  *result = v ? v : lmz_array(lmz_turn_arena(ctx), 0);
  return 0;
}

/* ---- SQL: a tiny notes table (created on first use, so counters that
 * never take a note never open a database) ---- */

static int notes_table(lmz_ctx *ctx) {
  return lmz_sql_exec(ctx, "CREATE TABLE IF NOT EXISTS notes(id INTEGER "
                           "PRIMARY KEY, text TEXT NOT NULL)", NULL, 0, NULL);
}

static int counter_note(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                        lmz_value **result) {
  if (nargs < 1 || lmz_typeof(args[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "note(text): text must be a string");
  lmz_value *rows;
  int rv = notes_table(ctx);
  if (!rv)
    rv = lmz_sql_query(ctx, "INSERT INTO notes(text) VALUES (?) RETURNING id",
                       args, 1, &rows);
  if (rv)
    return rv;
  *result = lmz_object_getc(lmz_array_get(rows, 0), "id");
  return 0;
}

static int counter_notes(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                         lmz_value **result) {
  lmz_value *n = lmz_number(lmz_turn_arena(ctx), arg_number(args, nargs, 0, 10));
  int rv = notes_table(ctx);
  return rv ? rv : lmz_sql_query(ctx, "SELECT id, text FROM notes ORDER BY id "
                                      "DESC LIMIT ?", &n, 1, result);
}

static int counter_note_get(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                            lmz_value **result) {
  lmz_value *id = lmz_number(lmz_turn_arena(ctx), arg_number(args, nargs, 0, 0)), *rows;
  int rv = notes_table(ctx);
  if (!rv)
    rv = lmz_sql_query(ctx, "SELECT text FROM notes WHERE id = ?", &id, 1, &rows);
  if (rv)
    return rv;
  *result = lmz_len(rows) ? lmz_object_getc(lmz_array_get(rows, 0), "text") : lmz_null();
  return 0;
}

static const lmz_method counter_methods[] = {
    LMZ_MESH("increment", counter_increment, NULL),
    LMZ_MESH("get", counter_get, NULL),
    LMZ_MESH("reset", counter_reset, NULL),
    LMZ_MESH("echo", counter_echo, NULL),
    LMZ_MESH("whoami", counter_whoami, NULL),
    LMZ_MESH("fail", counter_fail, NULL),
    LMZ_LOCAL("secret", counter_secret),
    LMZ_MESH("guarded", counter_guarded, guard_token),
    LMZ_MESH("activation", counter_activation, NULL),
    LMZ_MESH("schedule", counter_schedule, NULL),
    LMZ_MESH("callOther", counter_call_other, NULL),
    LMZ_LOCAL("recordOther", counter_record_other),
    LMZ_MESH("lastOtherResult", counter_last_other, NULL),
    LMZ_MESH("broadcast", counter_broadcast, NULL),
    LMZ_LOCAL("recordBroadcast", counter_record_broadcast),
    LMZ_MESH("broadcastResults", counter_broadcast_results, NULL),
    LMZ_MESH("note", counter_note, NULL),
    LMZ_MESH("notes", counter_notes, NULL),
    LMZ_MESH("noteGet", counter_note_get, NULL),
    LMZ_END,
};

static int counter_http(lmz_ctx *ctx, const struct lmz_request *req,
                        struct lmz_response *res) {
  double total = total_of(ctx);
  if (!strcmp(req->method, "POST")) {
    char num[32] = "1";
    if (req->body_len && req->body_len < sizeof num) {
      memcpy(num, req->body, req->body_len);
      num[req->body_len] = 0;
    }
    total += strtod(num, NULL);
    int rv = lmz_kv_put(ctx, "total", lmz_number(lmz_turn_arena(ctx), total));
    if (rv)
      return rv;
  }
  const char *echo = lmz_request_header(req, "X-Echo");
  if (echo && lmz_response_header(ctx, res, "X-Echo", echo))
    return -1;
  /* who the gateway verified the request's token for (none: a public
   * binding); tests read it to see the token's subject reach the turn */
  lmz_value *oa = lmz_origin_auth(ctx);
  lmz_value *sub = oa ? lmz_object_getc(oa, "sub") : NULL;
  const char *s = sub && lmz_typeof(sub) == LMZ_T_STRING ? lmz_get_str(sub, NULL) : "-";
  if (lmz_response_header(ctx, res, "X-Origin-Sub", s))
    return -1;
  /* the request's trace (its W3C traceparent's, or minted for it) */
  if (lmz_response_header(ctx, res, "X-Trace-Id", lmz_trace_id(ctx)))
    return -1;
  double at;
  char text[256];
  snprintf(text, sizeof text, "total=%.0f node=%s activation=%s", total,
           lmz_node_id(ctx), lmz_activation_id(ctx, &at));
  return lmz_response_text(ctx, res, 200, "text/plain", text);
}

static const struct lmz_class_opts counter_opts = {.on_request = counter_http};

static int echo_echo(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                     lmz_value **result) {
  return counter_echo(ctx, args, nargs, result);
}

static int echo_whereami(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                         lmz_value **result) {
  (void)args, (void)nargs;
  *result = lmz_cstring(lmz_turn_arena(ctx), lmz_node_id(ctx));
  return 0;
}

static const lmz_method echo_methods[] = {
    LMZ_MESH("echo", echo_echo, NULL),
    LMZ_MESH("whereami", echo_whereami, NULL),
    LMZ_END,
};

LMZ_EXPORT int lmz_module_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "CounterDO", counter_methods, NULL);
  if (!rv)
    rv = lmz_register_do(r, "CounterHttpDO", counter_methods, &counter_opts);
  return rv ? rv : lmz_register_worker(r, "EchoWorker", echo_methods, NULL);
}
