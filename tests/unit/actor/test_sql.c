/* SQL storage of durable objects (issue 10, lmz/sql.h) through the test kit:
 * real RocksDB in a temp dir, fake clock. SQL + KV atomicity, failed turns,
 * eviction, refused statements, limits, bound parameters, value mapping,
 * lmz_sql_transaction, the operator entry point. */
#define _GNU_SOURCE
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "lmz/sql.h"
#include "lmz/testing.h"

/* ---- the application --------------------------------------------------- */

static int on_start(lmz_ctx *ctx) {
  return lmz_sql_exec(ctx, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY "
                           "KEY, s TEXT, b BLOB)", NULL, 0, NULL);
}

/* add(s, kvkey, fail): INSERT s, kv_put(kvkey, s), then throw if fail. */
static int m_add(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n < 3)
    return lmz_throwf(ctx, "TypeError", "add(s, key, fail)");
  int rv = lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", a, 1, NULL);
  if (!rv)
    rv = lmz_kv_put(ctx, lmz_get_str(a[1], NULL), a[0]);
  if (!rv && lmz_get_bool(a[2]))
    rv = lmz_throwf(ctx, "Error", "asked to fail");
  return rv;
}

/* q(sql, ...params): rows as objects. */
static int m_q(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  if (n < 1 || lmz_typeof(a[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "q(sql, ...params)");
  return lmz_sql_query(ctx, lmz_get_str(a[0], NULL), a + 1, n - 1, r);
}

/* fill(n, bytes): n rows of `bytes` bytes each, one turn. */
static int m_fill(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n < 2)
    return lmz_throwf(ctx, "TypeError", "fill(n, bytes)");
  size_t rows = (size_t)lmz_get_number(a[0]), len = (size_t)lmz_get_number(a[1]);
  lmz_arena *ar = lmz_turn_arena(ctx);
  char *s = lmz_arena_alloc(ar, len + 1);
  for (size_t i = 0; i < rows; i++) {
    memset(s, 'a' + (int)(i % 26), len);
    lmz_value *v = lmz_string(ar, s, len);
    int rv = lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", &v, 1, NULL);
    if (rv)
      return rv;
  }
  return 0;
}

static int section_body(lmz_ctx *ctx, void *arg) {
  lmz_value *v = lmz_cstring(lmz_turn_arena(ctx), "in-section");
  int rv = lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", &v, 1, NULL);
  if (!rv)
    rv = lmz_kv_put(ctx, "section", v);
  if (!rv)
    rv = lmz_kv_put(ctx, "outside", v); /* overwrites the turn's own write */
  if (!rv && *(bool *)arg)
    rv = lmz_throwf(ctx, "Error", "section fails");
  return rv;
}

/* section(fail): a write before, a section, a write after; returns whether
 * the section failed. The turn itself succeeds. */
static int m_section(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  bool fail = n && lmz_get_bool(a[0]);
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_value *before = lmz_cstring(ar, "before"), *after = lmz_cstring(ar, "after");
  int rv = lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", &before, 1, NULL);
  if (!rv)
    rv = lmz_kv_put(ctx, "outside", before);
  if (rv)
    return rv;
  int srv = lmz_sql_transaction(ctx, section_body, &fail);
  rv = lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", &after, 1, NULL);
  *r = lmz_bool(srv != 0);
  return rv;
}

/* cursor(): iterates SELECT id, s with lmz_sql_next; returns
 * {n, cols, read, written, size}. */
static int m_cursor(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  lmz_sql_cursor *c;
  int rv = lmz_sql_exec(ctx, "SELECT id, s AS text FROM t ORDER BY id", NULL, 0, &c);
  if (rv)
    return rv;
  lmz_value *row;
  double rows = 0;
  while ((rv = lmz_sql_next(c, &row)) == 1)
    rows++;
  if (rv)
    return rv;
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_value *o = lmz_object(ar), *cols = lmz_array(ar, 2);
  lmz_array_push(cols, lmz_cstring(ar, lmz_sql_column_name(c, 0)));
  lmz_array_push(cols, lmz_cstring(ar, lmz_sql_column_name(c, 1)));
  lmz_object_setc(o, "n", lmz_number(ar, rows));
  lmz_object_setc(o, "cols", cols);
  lmz_object_setc(o, "read", lmz_number(ar, (double)lmz_sql_rows_read(c)));
  lmz_sql_cursor *w;
  lmz_value *v = lmz_cstring(ar, "x");
  if ((rv = lmz_sql_exec(ctx, "UPDATE t SET s = ? WHERE id <= 2", &v, 1, &w)))
    return rv;
  lmz_object_setc(o, "written", lmz_number(ar, (double)lmz_sql_rows_written(w)));
  lmz_object_setc(o, "size", lmz_number(ar, (double)lmz_sql_database_size(ctx)));
  *r = o;
  return 0;
}

static int guard_reads(lmz_ctx *ctx) {
  lmz_value *rows;
  int rv = lmz_sql_query(ctx, "SELECT count(*) FROM t", NULL, 0, &rows);
  if (rv)
    return rv;
  return lmz_sql_exec(ctx, "DELETE FROM t", NULL, 0, NULL); /* refused */
}

/* tolerant(): statements that fail are caught and the turn goes on; only
 * the failed statements are undone. */
static int m_tolerant(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  lmz_value *rows;
  if (lmz_sql_query(ctx, "SELECT json('{bad')", NULL, 0, &rows) != LMZ_ETHROWN)
    return lmz_throwf(ctx, "Error", "a bad json() read should throw");
  int rv = lmz_sql_exec(ctx, "INSERT INTO t(id, s) VALUES (1, 'one')", NULL, 0, NULL);
  if (rv)
    return rv;
  if (lmz_sql_exec(ctx, "INSERT INTO t(id, s) VALUES (1, 'dup')", NULL, 0, NULL) != LMZ_ETHROWN)
    return lmz_throwf(ctx, "Error", "a duplicate key should throw");
  if (lmz_sql_query(ctx, "SELECT json('{bad')", NULL, 0, &rows) != LMZ_ETHROWN)
    return lmz_throwf(ctx, "Error", "a bad json() read should throw");
  return lmz_sql_exec(ctx, "INSERT INTO t(id, s) VALUES (2, 'two')", NULL, 0, NULL);
}

static int m_nop(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)ctx, (void)a, (void)n, (void)r;
  return 0;
}

static int w_sql(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  return lmz_sql_query(ctx, "SELECT 1", NULL, 0, r);
}

static const lmz_method sql_methods[] = {
    LMZ_MESH("add", m_add, NULL),         LMZ_MESH("q", m_q, NULL),
    LMZ_MESH("fill", m_fill, NULL),       LMZ_MESH("section", m_section, NULL),
    LMZ_MESH("cursor", m_cursor, NULL),   LMZ_MESH("guarded", m_nop, guard_reads),
    LMZ_MESH("tolerant", m_tolerant, NULL),
    LMZ_END};
static const lmz_method worker_methods[] = {LMZ_MESH("sql", w_sql, NULL), LMZ_END};

static int sql_init(lmz_registry *r) {
  static const struct lmz_class_opts o = {.on_start = on_start};
  int rv = lmz_register_do(r, "SqlDO", sql_methods, &o);
  return rv ? rv : lmz_register_worker(r, "SqlWorker", worker_methods, NULL);
}

/* ---- fixture ------------------------------------------------------------- */

static lmz_testenv *env_new(const struct lmz_sql_opts *sql) {
  char err[256];
  struct lmz_testenv_opts o = {.idle_evict_ms = 1000};
  if (sql)
    o.sql = *sql;
  lmz_testenv *env = lmz_testenv_new(&o, err);
  if (!env)
    fail_msg("testenv: %s", err);
  assert_int_equal(lmz_testenv_register(env, "sql", sql_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "SQL_DO", "SqlDO", LMZ_NODE_DO), 0);
  assert_int_equal(lmz_testenv_bind(env, "SQL_W", "SqlWorker", LMZ_NODE_WORKER), 0);
  return env;
}

static int setup(void **state) {
  *state = env_new(NULL);
  return 0;
}

static int teardown(void **state) {
  lmz_testenv_free(*state);
  return 0;
}

#define ENV ((lmz_testenv *)*state)
#define A(env) lmz_testenv_arena(env)

static lmz_value *call(lmz_testenv *env, const char *m, size_t n,
                       lmz_value *const *args, bool want_throw) {
  lmz_value *r = NULL;
  bool threw = !want_throw;
  assert_int_equal(lmz_testenv_call(env, "SQL_DO", "a", NULL, m, n, args, &r, &threw), 0);
  if (threw != want_throw)
    fail_msg("%s: threw=%d: %s", m, threw,
             lmz_typeof(r) == LMZ_T_ERROR ? lmz_error_message(r) : "(value)");
  return r;
}

/* Runs q(sql, params...) and returns the thrown error's message. */
static const char *q_err(lmz_testenv *env, const char *sql, size_t n,
                         lmz_value *const *params, const char **name) {
  lmz_value *args[8] = {lmz_cstring(A(env), sql)};
  for (size_t i = 0; i < n; i++)
    args[i + 1] = params[i];
  lmz_value *e = call(env, "q", n + 1, args, true);
  assert_int_equal(lmz_typeof(e), LMZ_T_ERROR);
  if (name)
    *name = lmz_error_name(e);
  return lmz_error_message(e);
}

static lmz_value *q_ok(lmz_testenv *env, const char *sql, size_t n,
                       lmz_value *const *params) {
  lmz_value *args[8] = {lmz_cstring(A(env), sql)};
  for (size_t i = 0; i < n; i++)
    args[i + 1] = params[i];
  lmz_value *r = call(env, "q", n + 1, args, false);
  assert_int_equal(lmz_typeof(r), LMZ_T_ARRAY);
  return r;
}

/* SELECT count(*) through the operator entry point (durable data only). */
static double count_rows(lmz_testenv *env, const char *where) {
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM t%s", where ? where : "");
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_sql(env, "SQL_DO", "a", false, sql, 0, NULL, &r, &threw), 0);
  assert_false(threw);
  lmz_value *rows = lmz_object_getc(r, "rows");
  assert_int_equal(lmz_len(rows), 1);
  return lmz_get_number(lmz_array_get(lmz_array_get(rows, 0), 0));
}

static void add(lmz_testenv *env, const char *s, const char *key, bool fail) {
  lmz_value *args[] = {lmz_cstring(A(env), s), lmz_cstring(A(env), key),
                       lmz_bool(fail)};
  call(env, "add", 3, args, fail);
}

/* ---- tests --------------------------------------------------------------- */

static void sql_and_kv_commit_together(void **state) {
  add(ENV, "one", "k1", false);
  add(ENV, "two", "k2", false);
  lmz_value *v = lmz_testenv_kv_get(ENV, "SQL_DO", "a", "k2");
  assert_non_null(v);
  assert_string_equal(lmz_get_str(v, NULL), "two");
  assert_true(count_rows(ENV, NULL) == 2);
  struct lmz_testenv_stats st;
  lmz_testenv_stats(ENV, &st);
  assert_true(st.sql_rows_written >= 2);
  assert_true(st.sql_db_bytes >= 2 * 4096);
}

static void throwing_turn_commits_neither(void **state) {
  add(ENV, "kept", "k1", false);
  add(ENV, "lost", "k2", true);
  assert_null(lmz_testenv_kv_get(ENV, "SQL_DO", "a", "k2"));
  /* the same activation must not see the row either (SQLite's page cache
   * must not keep the failed turn's page) */
  lmz_value *p = lmz_cstring(A(ENV), "lost");
  lmz_value *rows = q_ok(ENV, "SELECT * FROM t WHERE s = ?", 1, &p);
  assert_int_equal(lmz_len(rows), 0);
  assert_true(count_rows(ENV, NULL) == 1);
  add(ENV, "after", "k3", false); /* the database still works */
  assert_true(count_rows(ENV, NULL) == 2);
}

static void eviction_and_reactivation_keep_the_database(void **state) {
  lmz_value *args[] = {lmz_number(A(ENV), 300), lmz_number(A(ENV), 1000)};
  call(ENV, "fill", 2, args, false);
  struct lmz_testenv_stats st;
  lmz_testenv_stats(ENV, &st);
  assert_int_equal(st.sql_open_dbs, 1);
  unsigned long long ev = st.evictions;
  lmz_testenv_advance(ENV, 5000);
  lmz_testenv_stats(ENV, &st);
  assert_true(st.evictions > ev);
  assert_int_equal(st.sql_open_dbs, 0);
  assert_int_equal(st.sql_db_bytes, 0);
  assert_true(count_rows(ENV, NULL) == 300);
  assert_true(count_rows(ENV, " WHERE s LIKE 'c%'") > 0);
}

static void survives_a_restart_of_the_node(void **state) {
  (void)state;
  char dir[] = "/tmp/lmz-sqltest.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char err[256];
  struct lmz_testenv_opts o = {.data_dir = dir};
  for (int round = 0; round < 2; round++) {
    lmz_testenv *env = lmz_testenv_new(&o, err);
    assert_non_null(env);
    assert_int_equal(lmz_testenv_register(env, "sql", sql_init), 0);
    assert_int_equal(lmz_testenv_bind(env, "SQL_DO", "SqlDO", LMZ_NODE_DO), 0);
    add(env, round ? "second" : "first", round ? "k2" : "k1", false);
    assert_true(count_rows(env, NULL) == round + 1);
    lmz_testenv_free(env);
  }
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
}

static void refused_statements_give_clear_errors(void **state) {
  static const struct {
    const char *sql, *expect;
  } cases[] = {
      {"BEGIN", "the turn is the transaction"},
      {"COMMIT", "the turn is the transaction"},
      {"ROLLBACK", "the turn is the transaction"},
      {"SAVEPOINT x", "the turn is the transaction"},
      {"RELEASE x", "the turn is the transaction"},
      {"ATTACH 'other.db' AS o", "ATTACH and DETACH are not allowed"},
      {"DETACH main", "ATTACH and DETACH are not allowed"},
      {"SELECT load_extension('libx')", "load_extension() is not allowed"},
      {"SELECT fts3_tokenizer('simple')", "fts3_tokenizer() is not allowed"},
      {"PRAGMA journal_mode=WAL", "PRAGMA journal_mode is not allowed"},
      {"PRAGMA locking_mode=NORMAL", "PRAGMA locking_mode is not allowed"},
      {"PRAGMA writable_schema=1", "PRAGMA writable_schema is not allowed"},
      {"PRAGMA cache_size=100000", "PRAGMA cache_size is not allowed"},
      {"PRAGMA page_size=65536", "PRAGMA page_size is not allowed"},
      {"PRAGMA temp_store_directory='/tmp'", "is not allowed"},
      {"VACUUM INTO '/tmp/lmz-sql-escape.db'", "SQLITE_"},
      {"SELECT 1; SELECT 2", "only one statement per call"},
      {"SELEKT 1", "syntax error: SQLITE_ERROR"},
      {"SELECT * FROM nope", "no such table: nope: SQLITE_ERROR"},
  };
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(cases); i++) {
    const char *m = q_err(ENV, cases[i].sql, 0, NULL, NULL);
    if (!strstr(m, cases[i].expect))
      fail_msg("%s: got \"%s\", want \"%s\"", cases[i].sql, m, cases[i].expect);
    if (strstr(cases[i].expect, "allowed") && !strstr(m, "SQLITE_AUTH") &&
        !strstr(m, "one statement"))
      fail_msg("%s: not refused by the authorizer: %s", cases[i].sql, m);
  }
  struct stat sb;
  assert_int_not_equal(stat("/tmp/lmz-sql-escape.db", &sb), 0);
  /* introspection stays available, and FTS5 / JSON work as Debian builds them */
  assert_true(lmz_len(q_ok(ENV, "PRAGMA table_info(t)", 0, NULL)) == 3);
  q_ok(ENV, "CREATE VIRTUAL TABLE doc USING fts5(body)", 0, NULL);
  q_ok(ENV, "INSERT INTO doc(body) VALUES ('hello world')", 0, NULL);
  assert_int_equal(lmz_len(q_ok(ENV, "SELECT * FROM doc WHERE doc MATCH 'hello'", 0, NULL)), 1);
  lmz_value *r = q_ok(ENV, "SELECT json_extract('{\"a\":[1,2]}', '$.a[1]') AS x", 0, NULL);
  assert_true(lmz_get_number(lmz_object_getc(lmz_array_get(r, 0), "x")) == 2);
}

static void limits_are_enforced(void **state) {
  (void)state;
  struct lmz_sql_opts so = {.max_sql_bytes = 300, .max_params = 3,
                            .max_value_bytes = 1000, .max_db_bytes = 64 * 1024};
  lmz_testenv *env = env_new(&so);
  const char *name = NULL;
  char longsql[400];
  memset(longsql, ' ', sizeof longsql - 1);
  memcpy(longsql, "SELECT 1", 8);
  longsql[sizeof longsql - 1] = 0;
  assert_non_null(strstr(q_err(env, longsql, 0, NULL, &name), "longer than 300"));
  assert_string_equal(name, "RangeError");
  lmz_value *p[4];
  for (int i = 0; i < 4; i++)
    p[i] = lmz_number(A(env), i);
  assert_non_null(strstr(q_err(env, "SELECT ?, ?, ?, ?", 4, p, NULL), "too many SQL variables"));
  assert_non_null(strstr(q_err(env, "SELECT ?, ?", 1, p, &name), "2 parameters, 1 values"));
  char big[1500];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  lmz_value *b = lmz_cstring(A(env), big);
  assert_non_null(strstr(q_err(env, "INSERT INTO t(s) VALUES (?)", 1, &b, &name), "SQLITE_TOOBIG"));
  assert_string_equal(name, "RangeError");
  /* 64 KiB database: 200 rows of 900 bytes cannot fit */
  lmz_value *args[] = {lmz_number(A(env), 200), lmz_number(A(env), 900)};
  lmz_value *e = call(env, "fill", 2, args, true);
  assert_non_null(strstr(lmz_error_message(e), "SQLITE_FULL"));
  assert_true(count_rows(env, NULL) == 0); /* the failed turn left nothing */
  lmz_testenv_free(env);
}

static void parameters_are_never_interpolated(void **state) {
  const char *evil = "x'); DROP TABLE t; --";
  lmz_value *p = lmz_cstring(A(ENV), evil);
  q_ok(ENV, "INSERT INTO t(s) VALUES (?)", 1, &p);
  lmz_value *rows = q_ok(ENV, "SELECT s FROM t WHERE s = ?", 1, &p);
  assert_int_equal(lmz_len(rows), 1);
  assert_string_equal(lmz_get_str(lmz_object_getc(lmz_array_get(rows, 0), "s"), NULL), evil);
  assert_true(count_rows(ENV, NULL) == 1); /* the table is still there */
}

static void values_map_both_ways(void **state) {
  lmz_arena *a = A(ENV);
  uint8_t bytes[] = {0, 1, 2, 0xff};
  lmz_value *ab = lmz_arraybuffer(a, bytes, sizeof bytes);
  lmz_value *p[] = {lmz_number(a, 42), lmz_number(a, 1.5),
                    lmz_bigint(a, "9007199254740993", 16), lmz_cstring(a, "héllo"),
                    lmz_null(), lmz_bool(true), ab,
                    lmz_view(a, LMZ_VIEW_UINT8, ab, 1, 2)};
  lmz_value *args[10] = {lmz_cstring(a, "SELECT ? AS i, ? AS f, ? AS big, ? AS s, "
                                        "? AS n, ? AS t, ? AS ab, ? AS u8")};
  memcpy(args + 1, p, sizeof p);
  lmz_value *r = call(ENV, "q", 9, args, false);
  lmz_value *row = lmz_array_get(r, 0);
  assert_true(lmz_get_number(lmz_object_getc(row, "i")) == 42);
  assert_true(lmz_get_number(lmz_object_getc(row, "f")) == 1.5);
  assert_int_equal(lmz_typeof(lmz_object_getc(row, "big")), LMZ_T_BIGINT);
  assert_string_equal(lmz_get_str(lmz_object_getc(row, "big"), NULL), "9007199254740993");
  assert_string_equal(lmz_get_str(lmz_object_getc(row, "s"), NULL), "héllo");
  assert_int_equal(lmz_typeof(lmz_object_getc(row, "n")), LMZ_T_NULL);
  assert_true(lmz_get_number(lmz_object_getc(row, "t")) == 1);
  lmz_value *gab = lmz_object_getc(row, "ab");
  assert_int_equal(lmz_typeof(gab), LMZ_T_ARRAYBUFFER);
  assert_int_equal(lmz_len(gab), 4);
  assert_memory_equal(lmz_arraybuffer_data(gab), bytes, 4);
  lmz_value *gu8 = lmz_object_getc(row, "u8");
  assert_int_equal(lmz_len(gu8), 2);
  assert_memory_equal(lmz_arraybuffer_data(gu8), bytes + 1, 2);
  const char *name;
  lmz_value *obj = lmz_object(a);
  assert_non_null(strstr(q_err(ENV, "SELECT ?", 1, &obj, &name), "cannot be bound"));
  assert_string_equal(name, "TypeError");
}

static void empty_query_rejected(void **state) {
  /* q() with the 9-parameter statement and no values is a RangeError */
  const char *name;
  assert_non_null(strstr(q_err(ENV, "SELECT ?, ?", 0, NULL, &name), "2 parameters, 0 values"));
}

static void transaction_section_rolls_back_without_failing_the_turn(void **state) {
  lmz_value *f = lmz_bool(true);
  lmz_value *r = call(ENV, "section", 1, &f, false);
  assert_true(lmz_get_bool(r)); /* the section failed, the turn did not */
  assert_true(count_rows(ENV, " WHERE s = 'before'") == 1);
  assert_true(count_rows(ENV, " WHERE s = 'after'") == 1);
  assert_true(count_rows(ENV, " WHERE s = 'in-section'") == 0);
  assert_null(lmz_testenv_kv_get(ENV, "SQL_DO", "a", "section"));
  assert_string_equal(lmz_get_str(lmz_testenv_kv_get(ENV, "SQL_DO", "a", "outside"), NULL),
                      "before");
  f = lmz_bool(false);
  r = call(ENV, "section", 1, &f, false);
  assert_false(lmz_get_bool(r));
  assert_true(count_rows(ENV, " WHERE s = 'in-section'") == 1);
  assert_string_equal(lmz_get_str(lmz_testenv_kv_get(ENV, "SQL_DO", "a", "outside"), NULL),
                      "in-section");
}

static void cursor_columns_and_counts(void **state) {
  add(ENV, "a", "k1", false);
  add(ENV, "b", "k2", false);
  add(ENV, "c", "k3", false);
  lmz_value *r = call(ENV, "cursor", 0, NULL, false);
  assert_true(lmz_get_number(lmz_object_getc(r, "n")) == 3);
  lmz_value *cols = lmz_object_getc(r, "cols");
  assert_string_equal(lmz_get_str(lmz_array_get(cols, 0), NULL), "id");
  assert_string_equal(lmz_get_str(lmz_array_get(cols, 1), NULL), "text");
  assert_true(lmz_get_number(lmz_object_getc(r, "read")) >= 3);
  assert_true(lmz_get_number(lmz_object_getc(r, "written")) == 2);
  assert_true(lmz_get_number(lmz_object_getc(r, "size")) >= 8192);
}

static void operator_entry_point(void **state) {
  lmz_value *r = NULL;
  bool threw = false;
  /* read-only unless write */
  assert_int_equal(lmz_testenv_sql(ENV, "SQL_DO", "a", false,
                                   "INSERT INTO t(s) VALUES ('op')", 0, NULL, &r, &threw), 0);
  assert_true(threw);
  assert_non_null(strstr(lmz_error_message(r), "only reads are allowed"));
  lmz_value *p = lmz_cstring(A(ENV), "op");
  assert_int_equal(lmz_testenv_sql(ENV, "SQL_DO", "a", true,
                                   "INSERT INTO t(s) VALUES (?)", 1, &p, &r, &threw), 0);
  assert_false(threw);
  assert_true(lmz_get_number(lmz_object_getc(r, "rowsWritten")) == 1);
  assert_true(count_rows(ENV, NULL) == 1);
  /* not from a mesh caller: the method does not exist for them */
  lmz_identity client = {LMZ_NODE_CLIENT, "LUMENIZE_CLIENT_GATEWAY", "mallory"};
  struct lmz_test_caller c = {.chain = &client, .n = 1};
  lmz_value *args[] = {lmz_object(A(ENV)), lmz_cstring(A(ENV), "DELETE FROM t")};
  lmz_object_setc(args[0], "write", lmz_bool(true));
  assert_int_equal(lmz_testenv_call(ENV, "SQL_DO", "a", &c, "__lmz_sql", 2, args, &r, &threw), 0);
  assert_true(threw);
  assert_true(count_rows(ENV, NULL) == 1);
}

static void guards_only_read_and_workers_have_no_sql(void **state) {
  const char *m = lmz_error_message(call(ENV, "guarded", 0, NULL, true));
  assert_non_null(strstr(m, "only reads are allowed here (a guard)"));
  lmz_value *r = NULL;
  bool threw = false;
  assert_int_equal(lmz_testenv_call(ENV, "SQL_W", NULL, NULL, "sql", 0, NULL, &r, &threw), 0);
  assert_true(threw);
  assert_non_null(strstr(lmz_error_message(r), "only available to durable objects"));
}

static void caught_statement_errors_undo_only_that_statement(void **state) {
  call(ENV, "tolerant", 0, NULL, false);
  assert_true(count_rows(ENV, NULL) == 2);
  assert_true(count_rows(ENV, " WHERE s = 'dup'") == 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(sql_and_kv_commit_together, setup, teardown),
      cmocka_unit_test_setup_teardown(throwing_turn_commits_neither, setup, teardown),
      cmocka_unit_test_setup_teardown(eviction_and_reactivation_keep_the_database, setup, teardown),
      cmocka_unit_test(survives_a_restart_of_the_node),
      cmocka_unit_test_setup_teardown(refused_statements_give_clear_errors, setup, teardown),
      cmocka_unit_test(limits_are_enforced),
      cmocka_unit_test_setup_teardown(parameters_are_never_interpolated, setup, teardown),
      cmocka_unit_test_setup_teardown(values_map_both_ways, setup, teardown),
      cmocka_unit_test_setup_teardown(empty_query_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(transaction_section_rolls_back_without_failing_the_turn, setup, teardown),
      cmocka_unit_test_setup_teardown(cursor_columns_and_counts, setup, teardown),
      cmocka_unit_test_setup_teardown(operator_entry_point, setup, teardown),
      cmocka_unit_test_setup_teardown(guards_only_read_and_workers_have_no_sql, setup, teardown),
      cmocka_unit_test_setup_teardown(caught_statement_errors_undo_only_that_statement, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
