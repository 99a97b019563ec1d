/* lmz/testing.h - run an application's classes in-process, without a server.
 *
 * The test kit owns a libuv loop, a node (real RocksDB in a temporary
 * directory, so storage behaves exactly as in production) and a fake clock.
 * Calls run the real runtime: mailboxes, turns, the output gate, access
 * control, alarms. Everything is synchronous from the test's point of view:
 * each function runs the loop until the node is quiet.
 *
 *   lmz_testenv *env = lmz_testenv_new(NULL, errmsg);
 *   lmz_testenv_register(env, "counter", lmz_module_init);
 *   lmz_testenv_bind(env, "COUNTER_DO", "CounterDO", LMZ_NODE_DO);
 *   lmz_value *five = lmz_number(lmz_testenv_arena(env), 5), *res;
 *   bool threw;
 *   lmz_testenv_call(env, "COUNTER_DO", "a", NULL, "increment", 1, &five,
 *                    &res, &threw);
 *   lmz_testenv_advance(env, 60000);   // fires alarms due within a minute
 *   lmz_testenv_free(env);
 *
 * Memory: values returned live in lmz_testenv_arena(env) until
 * lmz_testenv_arena_reset() or lmz_testenv_free(). One thread only. */
#ifndef LMZ_TESTING_H
#define LMZ_TESTING_H

#include <stdbool.h>
#include <stddef.h>

#include "lmz/lmz.h"
#include "lmz/sql.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmz_testenv lmz_testenv;

struct lmz_testenv_opts {
  const char *data_dir; /* NULL = a fresh temporary directory, removed by
                           lmz_testenv_free */
  double start_ms;      /* fake clock start (0 = 2026-01-01T00:00:00Z) */
  const char *node_id;  /* default "test-node" */
  bool sync;            /* fsync commits (default false: faster tests) */
  unsigned long long idle_evict_ms; /* evict actors idle this long on the
                                       fake clock (default 60000); checked by
                                       lmz_testenv_advance */
  struct lmz_sql_opts sql; /* SQL limits and caches (zeros = defaults) */
};

/* NULL on failure with errmsg (256 bytes) saying why. */
lmz_testenv *lmz_testenv_new(const struct lmz_testenv_opts *opts, char *errmsg);
/* Closes the node (finishing queued turns and commits), frees everything,
 * removes the temporary directory. NULL is ignored. */
void lmz_testenv_free(lmz_testenv *env);

/* Registers an application's init function and binds names to classes
 * (like lmzd's config). 0 or an error code; lmz_testenv_errmsg() says why. */
int lmz_testenv_register(lmz_testenv *env, const char *name,
                         lmz_module_init_fn init);
int lmz_testenv_bind(lmz_testenv *env, const char *binding,
                     const char *class_name, lmz_node_type kind);
int lmz_testenv_set_var(lmz_testenv *env, const char *name, const char *value);
const char *lmz_testenv_errmsg(lmz_testenv *env);

lmz_arena *lmz_testenv_arena(lmz_testenv *env);
void lmz_testenv_arena_reset(lmz_testenv *env);

/* Who is calling: the chain (origin first, immediate caller last), origin
 * auth (as a gateway would mint it) and state. NULL caller = an operator
 * (chain [{LmzCli, "lmz-test"}], no origin auth, empty state). */
struct lmz_test_caller {
  const lmz_identity *chain;
  size_t n;
  lmz_value *origin_auth;
  lmz_value *state;
};

/* Calls method(args...) on (binding, instance) as a mesh call (exposure and
 * guards enforced) and runs the loop until the reply. Returns 0 with
 * *result = the result (*threw false) or the thrown error (*threw true);
 * or an error code when the call could not be made (bad target: LMZ_EINVAL,
 * see lmz_testenv_errmsg). */
int lmz_testenv_call(lmz_testenv *env, const char *binding,
                     const char *instance, const struct lmz_test_caller *caller,
                     const char *method, size_t nargs, lmz_value *const *args,
                     lmz_value **result, bool *threw);
/* Same with a raw operation chain (array of {type,key}/{type,args}). */
int lmz_testenv_call_chain(lmz_testenv *env, const char *binding,
                           const char *instance,
                           const struct lmz_test_caller *caller,
                           lmz_value *chain, lmz_value **result, bool *threw);

/* Runs the loop until nothing is queued, running or committing. */
void lmz_testenv_run(lmz_testenv *env);
/* Fake clock. advance moves it forward, fires every alarm due by then (in
 * time order, retries included), evicts idle actors and runs until quiet. */
double lmz_testenv_now(lmz_testenv *env);
void lmz_testenv_advance(lmz_testenv *env, double ms);

/* Storage of a durable object as stored on disk (durable data only).
 * kv_get: NULL if absent. kv_put: seeds a value; the actor must not be
 * active (returns LMZ_EBUSY otherwise). */
lmz_value *lmz_testenv_kv_get(lmz_testenv *env, const char *binding,
                              const char *instance, const char *key);
int lmz_testenv_kv_put(lmz_testenv *env, const char *binding,
                       const char *instance, const char *key,
                       const lmz_value *v);

/* Runs one SQL statement as a turn of the durable object (binding,
 * instance), as `lmz sql` does: read-only unless `write`, `?` parameters
 * from args. Returns 0 with *result = {columns: [names], rows: [[values]],
 * rowsRead, rowsWritten, databaseSize} (*threw false) or the thrown Error
 * (*threw true); or an error code when the call could not be made. */
int lmz_testenv_sql(lmz_testenv *env, const char *binding,
                    const char *instance, bool write, const char *sql,
                    size_t nargs, lmz_value *const *args, lmz_value **result,
                    bool *threw);

/* Runtime counters (turns, activations, commits, ...). */
struct lmz_testenv_stats {
  unsigned long long turns, turns_failed, activations, evictions, commits,
      alarms_fired, active_actors;
  unsigned long long sql_rows_read, sql_rows_written, sql_db_bytes,
      sql_open_dbs;
};
void lmz_testenv_stats(lmz_testenv *env, struct lmz_testenv_stats *st);

#ifdef __cplusplus
}
#endif
#endif
