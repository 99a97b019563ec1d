/* actor/testing.c - the application test kit (lmz/testing.h): a node on its
 * own loop with a fake clock, driven synchronously.
 *
 * Failure modes: node creation errors come back as NULL + errmsg; a call
 * that cannot be made returns its code with the reason in env->errmsg; the
 * loop is always run until quiet, so nothing is left pending between calls. */
#define _GNU_SOURCE
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/node.h"
#include "core/err.h"
#include "lmz/testing.h"

#define DEFAULT_START_MS 1767225600000.0 /* 2026-01-01T00:00:00Z */

struct lmz_testenv {
  uv_loop_t loop;
  lmz_node_t node_mem;
  lmz_node_t *node; /* &node_mem while initialized */
  double now_ms;
  char *tmpdir; /* removed on free when we created it */
  lmz_arena *arena;
  char errmsg[LMZ_ERRMSG_LEN];
};

static double fake_clock(void *data) { return ((lmz_testenv *)data)->now_ms; }

lmz_testenv *lmz_testenv_new(const struct lmz_testenv_opts *opts, char *errmsg) {
  struct lmz_testenv_opts o = opts ? *opts : (struct lmz_testenv_opts){0};
  lmz_testenv *env = calloc(1, sizeof *env);
  if (!env || !(env->arena = lmz_arena_new())) {
    free(env);
    lmz__errmsg_printf(errmsg, "out of memory");
    return NULL;
  }
  env->now_ms = o.start_ms ? o.start_ms : DEFAULT_START_MS;
  if (!o.data_dir) {
    const char *tmp = getenv("TMPDIR");
    if (asprintf(&env->tmpdir, "%s/lmz-testenv.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0 ||
        !mkdtemp(env->tmpdir)) {
      lmz__errmsg_printf(errmsg, "cannot create a temporary directory");
      free(env->tmpdir);
      lmz_arena_free(env->arena);
      free(env);
      return NULL;
    }
  }
  uv_loop_init(&env->loop);
  struct lmz_node_opts no = {
      .node_id = o.node_id ? o.node_id : "test-node",
      .data_dir = o.data_dir ? o.data_dir : env->tmpdir,
      .sync = o.sync,
      .clock = fake_clock,
      .clock_data = env,
      .manual_alarms = true,
      .idle_evict_ms = o.idle_evict_ms ? o.idle_evict_ms : 60000,
      .sql = o.sql,
  };
  env->node = &env->node_mem;
  int rv = lmz_node_init(env->node, &env->loop, &no, env->errmsg);
  if (!rv)
    rv = lmz_node_start(env->node);
  if (rv) {
    lmz__errmsg_printf(errmsg, "%s", env->errmsg);
    env->node = NULL;
    lmz_testenv_free(env);
    return NULL;
  }
  return env;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static void closed_cb(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

void lmz_testenv_free(lmz_testenv *env) {
  if (!env)
    return;
  if (env->node) {
    bool closed = false;
    lmz_node_close(env->node, closed_cb, &closed);
    while (!closed)
      uv_run(&env->loop, UV_RUN_ONCE);
    lmz_node_release(env->node);
  }
  uv_run(&env->loop, UV_RUN_DEFAULT); /* let closed handles finish */
  uv_loop_close(&env->loop);
  if (env->tmpdir) {
    nftw(env->tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(env->tmpdir);
  }
  lmz_arena_free(env->arena);
  free(env);
}

int lmz_testenv_register(lmz_testenv *env, const char *name,
                         lmz_module_init_fn init) {
  return lmz_node_register_module(env->node, name, init, env->errmsg);
}

int lmz_testenv_bind(lmz_testenv *env, const char *binding,
                     const char *class_name, lmz_node_type kind) {
  return lmz_node_bind(env->node, binding, class_name, kind, env->errmsg);
}

int lmz_testenv_set_var(lmz_testenv *env, const char *name, const char *value) {
  return lmz_node_set_var(env->node, name, value);
}

const char *lmz_testenv_errmsg(lmz_testenv *env) { return env->errmsg; }
lmz_arena *lmz_testenv_arena(lmz_testenv *env) { return env->arena; }
void lmz_testenv_arena_reset(lmz_testenv *env) { lmz_arena_reset(env->arena); }
double lmz_testenv_now(lmz_testenv *env) { return env->now_ms; }

void lmz_testenv_run(lmz_testenv *env) {
  while (!lmz_node_is_quiet(env->node))
    uv_run(&env->loop, UV_RUN_ONCE);
  uv_run(&env->loop, UV_RUN_NOWAIT);
}

void lmz_testenv_advance(lmz_testenv *env, double ms) {
  double target = env->now_ms + ms;
  lmz_testenv_run(env);
  /* step through due alarms in time order, so retries scheduled by a
   * failing alarm fire at their own (fake) times */
  for (int guard = 0; guard < 100000; guard++) {
    if (lmz_node_poll_alarms(env->node) > 0) {
      lmz_testenv_run(env);
      continue;
    }
    double next = lmz_node_next_alarm_ms(env->node);
    if (next <= 0 || next > target)
      break;
    env->now_ms = next > env->now_ms ? next : env->now_ms;
  }
  env->now_ms = target;
  if (lmz_node_poll_alarms(env->node) > 0)
    lmz_testenv_run(env);
  if (lmz_node_evict_idle(env->node) > 0)
    lmz_testenv_run(env);
}

/* ---- calls --------------------------------------------------------------- */

struct call_wait {
  lmz_testenv *env;
  bool done, ok;
  int status;
  lmz_value *value;
};

static void reply_cb(void *arg, int status, bool ok, const lmz_value *value) {
  struct call_wait *w = arg;
  w->done = true;
  w->ok = ok;
  w->status = status;
  w->value = lmz_value_copy(w->env->arena, value);
}

static const lmz_identity test_cli = {LMZ_NODE_CLI, "lmz-test", NULL};

static int copy_caller(lmz_arena *a, const struct lmz_test_caller *c,
                       struct lmz_node_call *call) {
  const lmz_identity *chain = c ? c->chain : &test_cli;
  size_t n = c ? c->n : 1;
  lmz_identity *ids = lmz_arena_alloc(a, (n ? n : 1) * sizeof *ids);
  if (!ids)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    ids[i].type = chain[i].type;
    ids[i].binding = lmz_arena_strndup(a, chain[i].binding, strlen(chain[i].binding));
    ids[i].instance = chain[i].instance
                          ? lmz_arena_strndup(a, chain[i].instance, strlen(chain[i].instance))
                          : NULL;
  }
  call->call_chain = ids;
  call->call_chain_len = n;
  call->origin_auth = c && c->origin_auth ? lmz_value_copy(a, c->origin_auth) : NULL;
  call->state = c && c->state ? lmz_value_copy(a, c->state) : NULL;
  return 0;
}

int lmz_testenv_call_chain(lmz_testenv *env, const char *binding,
                           const char *instance,
                           const struct lmz_test_caller *caller,
                           lmz_value *chain, lmz_value **result, bool *threw) {
  lmz_arena *a = lmz_node_arena_get(env->node);
  if (!a)
    return LMZ_ENOMEM;
  struct lmz_node_call call = {.binding = binding, .instance = instance,
                               .arena = a};
  call.chain = lmz_value_copy(a, chain);
  int rv = call.chain ? copy_caller(a, caller, &call) : LMZ_ENOMEM;
  struct call_wait w = {.env = env};
  if (!rv)
    rv = lmz_node_call(env->node, &call, reply_cb, &w, env->errmsg);
  if (rv) {
    lmz_node_arena_put(env->node, a);
    return rv;
  }
  while (!w.done)
    uv_run(&env->loop, UV_RUN_ONCE);
  lmz_testenv_run(env);
  if (w.status)
    return w.status;
  if (!w.value)
    return LMZ_ENOMEM;
  *result = w.value;
  if (threw)
    *threw = !w.ok;
  return 0;
}

int lmz_testenv_call(lmz_testenv *env, const char *binding,
                     const char *instance, const struct lmz_test_caller *caller,
                     const char *method, size_t nargs, lmz_value *const *args,
                     lmz_value **result, bool *threw) {
  lmz_arena *a = env->arena;
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_value *argv = lmz_array(a, nargs);
  if (!chain || !get || !ap || !argv)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < nargs; i++)
    if (lmz_array_push(argv, args[i] ? args[i] : lmz_undefined()))
      return LMZ_ENOMEM;
  if (lmz_object_setc(get, "type", lmz_cstring(a, "get")) ||
      lmz_object_setc(get, "key", lmz_cstring(a, method)) ||
      lmz_object_setc(ap, "type", lmz_cstring(a, "apply")) ||
      lmz_object_setc(ap, "args", argv) || lmz_array_push(chain, get) ||
      lmz_array_push(chain, ap))
    return LMZ_ENOMEM;
  return lmz_testenv_call_chain(env, binding, instance, caller, chain, result,
                                threw);
}

/* ---- storage and stats --------------------------------------------------- */

lmz_value *lmz_testenv_kv_get(lmz_testenv *env, const char *binding,
                              const char *instance, const char *key) {
  lmz_testenv_run(env);
  lmz_value *v = NULL;
  return lmz_node_kv_peek(env->node, binding, instance, key, env->arena, &v) ? NULL : v;
}

int lmz_testenv_kv_put(lmz_testenv *env, const char *binding,
                       const char *instance, const char *key,
                       const lmz_value *v) {
  return lmz_node_kv_seed(env->node, binding, instance, key, v);
}

void lmz_testenv_stats(lmz_testenv *env, struct lmz_testenv_stats *st) {
  struct lmz_node_stats s;
  lmz_node_get_stats(env->node, &s);
  *st = (struct lmz_testenv_stats){s.turns, s.turns_failed, s.activations,
                                   s.evictions, s.commits, s.alarms_fired,
                                   s.active_actors, s.sql_rows_read,
                                   s.sql_rows_written, s.sql_db_bytes,
                                   s.sql_open_dbs};
}

int lmz_testenv_sql(lmz_testenv *env, const char *binding,
                    const char *instance, bool write, const char *sql,
                    size_t nargs, lmz_value *const *args, lmz_value **result,
                    bool *threw) {
  lmz_arena *a = env->arena;
  lmz_value *argv[2 + 100], *o = lmz_object(a);
  if (nargs > 100)
    return LMZ_EINVAL;
  if (!o || lmz_object_setc(o, "write", lmz_bool(write)))
    return LMZ_ENOMEM;
  argv[0] = o;
  argv[1] = lmz_cstring(a, sql);
  for (size_t i = 0; i < nargs; i++)
    argv[2 + i] = args[i];
  /* the runtime's operator entry point (actor/sql.c), as `lmz sql` sends it */
  return lmz_testenv_call(env, binding, instance, NULL, "__lmz_sql", nargs + 2,
                          argv, result, threw);
}
