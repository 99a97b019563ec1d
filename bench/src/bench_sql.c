/* bench_sql - SQL storage of durable objects (issue 10) against KV and
 * against native SQLite, in one run, on one disk, durable (storage.sync).
 *
 *   insert      (a) a driver keeps WINDOW calls in flight to ACTORS actors;
 *               each call is one turn doing one INSERT of a 100-byte row,
 *               replied only once durable. Compared with the same driver
 *               doing one kv_put of a 100-byte value per turn.
 *               Target: SQL insert turns/s >= 50% of KV put turns/s.
 *   select      (b) the same, each turn one point SELECT by primary key
 *               (rows seeded first) vs one kv_get. Target >= 50%.
 *   bulk        (c) one turn inserting 1,000 rows of 1 KB (1 MiB) in one
 *               turn, call to durable reply; vs native SQLite on a local
 *               file (journal_mode=WAL, synchronous=FULL) doing the same
 *               1,000 INSERTs in one transaction. Target: <= 3x native.
 *   idle_memory (d) RSS and SQLite heap per idle actor whose database is
 *               open (after one small SQL turn each), measured first. RSS
 *               also counts the RocksDB memtable holding each new database's
 *               first pages; the SQLite heap is the connection itself.
 *
 * --seconds S: (a) and (b) measure about S seconds per variant (default 3);
 * (c) runs max(3, 3 S) transactions each way; (d) opens 1000 actors (200
 * with --quick). */
#define _GNU_SOURCE
#include <sqlite3.h>

#include "bench_node.h"
#include "lmz/sql.h"

#define ACTORS 256
#define WINDOW 4096
#define SEED_ROWS 16
#define BULK_ROWS 1000
#define BULK_ROW_BYTES 1024

static double g_deadline;
static uint64_t g_sent, g_done;
static uint64_t g_max; /* > 0: stop after this many turns (profiling mode) */
static const char *g_target, *g_method; /* what the driver calls */
static char g_row[BULK_ROW_BYTES + 1];

static const char *actor_name(uint64_t i) {
  static char names[ACTORS][8];
  if (!names[0][0])
    for (int k = 0; k < ACTORS; k++)
      snprintf(names[k], sizeof names[k], "a%d", k);
  return names[i % ACTORS];
}

/* ---- the actors under test ------------------------------------------------ */

static int sql_start(lmz_ctx *ctx) {
  return lmz_sql_exec(ctx, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v BLOB)",
                      NULL, 0, NULL);
}

static lmz_value *row100(lmz_ctx *ctx) {
  return lmz_string(lmz_turn_arena(ctx), g_row, 100);
}

static int sql_insert(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  lmz_value *v = row100(ctx);
  return lmz_sql_exec(ctx, "INSERT INTO t(v) VALUES (?)", &v, 1, NULL);
}

static int kv_insert(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  char key[32];
  snprintf(key, sizeof key, "k%llu", (unsigned long long)g_sent);
  return lmz_kv_put(ctx, key, row100(ctx));
}

static int sql_seed(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 1; i <= SEED_ROWS; i++) {
    lmz_value *p[] = {lmz_number(lmz_turn_arena(ctx), 1e6 + i), row100(ctx)};
    int rv = lmz_sql_exec(ctx, "INSERT OR REPLACE INTO t(id, v) VALUES (?, ?)", p, 2, NULL);
    if (rv)
      return rv;
  }
  return 0;
}

static int kv_seed(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 1; i <= SEED_ROWS; i++) {
    char key[32];
    snprintf(key, sizeof key, "s%d", i);
    int rv = lmz_kv_put(ctx, key, row100(ctx));
    if (rv)
      return rv;
  }
  return 0;
}

static int sql_select(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  lmz_value *id = lmz_number(lmz_turn_arena(ctx), 1e6 + 1 + (double)(g_sent % SEED_ROWS)), *rows;
  int rv = lmz_sql_query(ctx, "SELECT v FROM t WHERE id = ?", &id, 1, &rows);
  if (!rv && lmz_len(rows) != 1)
    return lmz_throwf(ctx, "Error", "row not found");
  *r = rows;
  return rv;
}

static int kv_select(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  char key[32];
  snprintf(key, sizeof key, "s%d", (int)(1 + g_sent % SEED_ROWS));
  *r = lmz_kv_get(ctx, key);
  return *r ? 0 : lmz_throwf(ctx, "Error", "key not found");
}

static int sql_bulk(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 0; i < BULK_ROWS; i++) {
    lmz_value *v = lmz_string(lmz_turn_arena(ctx), g_row, BULK_ROW_BYTES);
    int rv = lmz_sql_exec(ctx, "INSERT INTO t(v) VALUES (?)", &v, 1, NULL);
    if (rv)
      return rv;
  }
  return 0;
}

static int sql_touch(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  return lmz_sql_query(ctx, "SELECT count(*) FROM t", NULL, 0, r);
}

/* ---- the driver --------------------------------------------------------- */

static int send_one(lmz_ctx *ctx) {
  lmz_ctn *op = lmz_ctn_call(lmz_ctn_new(ctx), g_method, 0);
  lmz_ctn *ack = lmz_ctn_call(lmz_ctn_new(ctx), "ack", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, g_target, actor_name(g_sent++), op, ack, NULL);
}

static bool more(void) {
  return g_max ? g_sent < g_max : now_s() < g_deadline;
}

static int driver_start(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 0; i < WINDOW && (!g_max || g_sent < g_max); i++) {
    int rv = send_one(ctx);
    if (rv)
      return rv;
  }
  return 0;
}

static int driver_ack(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n == 1 && lmz_typeof(a[0]) == LMZ_T_ERROR) {
    fprintf(stderr, "bench_sql: %s failed: %s\n", g_method, lmz_error_message(a[0]));
    exit(1);
  }
  g_done++;
  return more() ? send_one(ctx) : 0;
}

static const lmz_method sql_methods[] = {
    LMZ_MESH("insert", sql_insert, NULL), LMZ_MESH("seed", sql_seed, NULL),
    LMZ_MESH("select", sql_select, NULL), LMZ_MESH("bulk", sql_bulk, NULL),
    LMZ_MESH("touch", sql_touch, NULL), LMZ_END};
static const lmz_method kv_methods[] = {
    LMZ_MESH("insert", kv_insert, NULL), LMZ_MESH("seed", kv_seed, NULL),
    LMZ_MESH("select", kv_select, NULL), LMZ_END};
static const lmz_method driver_methods[] = {
    LMZ_MESH("start", driver_start, NULL), LMZ_LOCAL("ack", driver_ack), LMZ_END};

static int bench_init(lmz_registry *r) {
  static const struct lmz_class_opts sql_opts = {.on_start = sql_start};
  int rv = lmz_register_do(r, "SqlDO", sql_methods, &sql_opts);
  if (!rv)
    rv = lmz_register_do(r, "KvDO", kv_methods, NULL);
  return rv ? rv : lmz_register_do(r, "DriverDO", driver_methods, NULL);
}

/* Runs the driver against target.method for `secs`; returns turns/s. */
static double drive(struct bench_node *b, const char *target, const char *method,
                    double secs) {
  g_target = target;
  g_method = method;
  g_sent = g_done = 0;
  double t0 = now_s();
  g_deadline = t0 + secs;
  bench_node_kick(b, "DRIVER", "d", "start");
  bench_node_run(b);
  return (double)g_done / (now_s() - t0);
}

/* One call to binding/instance.method, waiting for its (durable) reply. */
static void reply_flag(void *arg, int status, bool ok, const lmz_value *v) {
  if (status || !ok) {
    fprintf(stderr, "bench_sql: call failed: %s\n",
            v && lmz_typeof(v) == LMZ_T_ERROR ? lmz_error_message(v) : "?");
    exit(1);
  }
  *(bool *)arg = true;
}

static void call_wait(struct bench_node *b, const char *binding, const char *inst,
                      const char *method) {
  lmz_arena *a = lmz_node_arena_get(b->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, method));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", lmz_array(a, 0));
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "bench", NULL};
  struct lmz_node_call c = {.binding = binding, .instance = inst, .chain = chain,
                            .call_chain = &cli, .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  bool done = false;
  if (lmz_node_call(b->node, &c, reply_flag, &done, err))
    die("call", err);
  while (!done)
    uv_run(&b->loop, UV_RUN_ONCE);
}

/* ---- native SQLite ------------------------------------------------------ */

static double native_bulk(int iters) {
  char *dir = make_dir(), path[512];
  if (!dir)
    die("mkdtemp", NULL);
  snprintf(path, sizeof path, "%s/native.db", dir);
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open(path, &db) ||
      sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                       "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)", NULL, NULL, NULL) ||
      sqlite3_prepare_v2(db, "INSERT INTO t(v) VALUES (?)", -1, &st, NULL))
    die("native sqlite", (char *)sqlite3_errmsg(db));
  double total = 0;
  for (int it = 0; it < iters; it++) {
    double t0 = now_s();
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int i = 0; i < BULK_ROWS; i++) {
      sqlite3_bind_text(st, 1, g_row, BULK_ROW_BYTES, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE)
        die("native insert", (char *)sqlite3_errmsg(db));
      sqlite3_reset(st);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))
      die("native commit", (char *)sqlite3_errmsg(db));
    total += now_s() - t0;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  drop_dir(dir);
  return total / iters;
}

static double lmz_bulk(struct bench_node *b, int iters) {
  call_wait(b, "SQL", "bulk", "touch"); /* activation + schema outside the timing */
  double total = 0;
  for (int it = 0; it < iters; it++) {
    double t0 = now_s();
    call_wait(b, "SQL", "bulk", "bulk");
    total += now_s() - t0;
  }
  return total / iters;
}

/* Bytes in the RocksDB write-ahead logs of the bench's store (*.log files):
 * what the turns wrote, with their batch framing. */
static double wal_bytes(const char *dir) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "cat %s/store/*.log 2>/dev/null | wc -c", dir);
  FILE *f = popen(cmd, "r");
  double v = 0;
  if (f) {
    if (fscanf(f, "%lf", &v) != 1)
      v = 0;
    pclose(f);
  }
  return v;
}

/* BENCH_SQL_ONLY=insert|kvinsert|select|kvselect (not for bench/run): one
 * phase alone, for a profiler. With BENCH_SQL_TURNS=N it runs exactly N
 * turns (seeding exactly one turn per actor) instead of a time budget, so
 * that two runs under callgrind with different N give the instructions of
 * one turn by difference; it also prints the WAL bytes per turn. */
static void profile_one(struct bench_node *b, const char *only, double secs) {
  const char *turns = getenv("BENCH_SQL_TURNS");
  bool kv = !strcmp(only, "kvinsert") || !strcmp(only, "kvselect");
  g_max = turns ? ACTORS : 0;
  drive(b, kv ? "KV" : "SQL", "seed", secs / 10);
  bench_node_run(b);
  /* BENCH_SQL_INSERTS=N: N insert turns first, as bench/run's select phase
   * follows the insert phase (bigger tables; for SQL, page deltas) */
  const char *before = getenv("BENCH_SQL_INSERTS");
  if (before && strstr(only, "select")) {
    g_max = strtoull(before, NULL, 10);
    drive(b, kv ? "KV" : "SQL", "insert", secs);
    bench_node_run(b);
  }
  double w0 = wal_bytes(b->dir);
  g_max = turns ? strtoull(turns, NULL, 10) : 0;
  double r = drive(b, kv ? "KV" : "SQL", strstr(only, "insert") ? "insert" : "select", secs);
  bench_node_run(b);
  fprintf(stderr, "%s: %llu turns, %.0f turns/s, %.0f WAL bytes/turn\n", only,
          (unsigned long long)g_done, r, (wal_bytes(b->dir) - w0) / (double)g_done);
}

/* ---- memory ------------------------------------------------------------- */

static double rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, rss = 0;
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
      rss = 0;
    fclose(f);
  }
  return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

static void idle_memory(struct bench_node *b, int n, double *rss, double *heap) {
  double r0 = rss_bytes(), h0 = (double)sqlite3_memory_used();
  for (int i = 0; i < n; i++) {
    char inst[32];
    snprintf(inst, sizeof inst, "idle%d", i);
    call_wait(b, "SQL", inst, "touch");
  }
  bench_node_run(b);
  *rss = (rss_bytes() - r0) / n;
  *heap = ((double)sqlite3_memory_used() - h0) / n;
}

int main(int argc, char **argv) {
  const char *only = getenv("BENCH_SQL_ONLY");
  double secs = bench_seconds(argc, argv, 3.0,
                              "usage: bench_sql [--quick] [--seconds S]\n");
  bool quick = secs < 1.0;
  memset(g_row, 'x', BULK_ROW_BYTES);
  fprintf(stderr, "sql: %.1f s per turn-rate measurement (storage.sync)\n", secs);
  struct bench_node b;
  bench_node_open(&b, true, bench_init);
  bench_node_bind(&b, "SQL", "SqlDO", LMZ_NODE_DO);
  bench_node_bind(&b, "KV", "KvDO", LMZ_NODE_DO);
  bench_node_bind(&b, "DRIVER", "DriverDO", LMZ_NODE_DO);

  if (only) {
    profile_one(&b, only, secs);
    bench_node_close(&b);
    return 0;
  }
  /* (d) first, on a fresh heap: later phases leave freed memory behind
   * that new allocations reuse, which would hide the growth */
  double rss, heap;
  idle_memory(&b, quick ? 200 : 1000, &rss, &heap);
  /* activate and seed every actor of both kinds (not measured) */
  drive(&b, "SQL", "seed", secs / 10);
  drive(&b, "KV", "seed", secs / 10);
  double kv_put = drive(&b, "KV", "insert", secs);
  double sql_ins = drive(&b, "SQL", "insert", secs);
  double kv_get = drive(&b, "KV", "select", secs);
  double sql_sel = drive(&b, "SQL", "select", secs);
  int iters = quick ? 3 : (int)(3 * secs) > 3 ? (int)(3 * secs) : 3;
  double lmz_1m = lmz_bulk(&b, iters);
  struct lmz_node_stats st;
  lmz_node_get_stats(b.node, &st);
  bench_node_close(&b);
  double native_1m = native_bulk(iters);

  bench_emit("sql", "insert.kv_put_turns_per_s", kv_put, "turns/s", 0, true);
  bench_emit("sql", "insert.sql_insert_turns_per_s", sql_ins, "turns/s", 0, true);
  bench_emit("sql", "insert.sql_vs_kv", sql_ins / kv_put, "x", 0.5, true);
  bench_emit("sql", "select.kv_get_turns_per_s", kv_get, "turns/s", 0, true);
  bench_emit("sql", "select.sql_select_turns_per_s", sql_sel, "turns/s", 0, true);
  bench_emit("sql", "select.sql_vs_kv", sql_sel / kv_get, "x", 0.5, true);
  bench_emit("sql", "bulk_1mib.lmz_ms", lmz_1m * 1e3, "ms", 0, true);
  bench_emit("sql", "bulk_1mib.native_wal_full_ms", native_1m * 1e3, "ms", 0, true);
  bench_emit("sql", "bulk_1mib.lmz_vs_native", lmz_1m / native_1m, "x", 3.0, false);
  bench_emit("sql", "idle_actor.rss_bytes", rss, "bytes", 0, true);
  bench_emit("sql", "idle_actor.sqlite_heap_bytes", heap, "bytes", 0, true);
  bench_emit("sql", "rows_written", (double)st.sql_rows_written, "rows", 0, true);
  return 0;
}
