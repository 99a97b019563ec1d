/* lmz/sql.h - SQL storage of a durable object (the original's
 * ctx.storage.sql.exec(query, ...bindings)).
 *
 * Every durable object has its own SQLite database. Its pages live in the
 * actor's own storage, so SQL and KV writes of one turn commit together:
 * the turn is the transaction. A turn that throws (returns an error) keeps
 * neither its SQL nor its KV changes. Create tables in on_start.
 *
 *   lmz_value *args[] = {lmz_cstring(a, "hello")}, *rows;
 *   lmz_sql_exec(ctx, "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, s)",
 *                NULL, 0, NULL);
 *   lmz_sql_exec(ctx, "INSERT INTO t(s) VALUES (?)", args, 1, NULL);
 *   lmz_sql_query(ctx, "SELECT id, s FROM t", NULL, 0, &rows);   // [{id, s}]
 *
 * Rules (as in the original): one statement per call; `?` parameters only
 * (a parameter is always data, never SQL); no BEGIN / COMMIT / ROLLBACK /
 * SAVEPOINT (use lmz_sql_transaction); no ATTACH / DETACH, no
 * load_extension, no PRAGMA that changes files or the connection (the
 * read-only introspection PRAGMAs - table_info, index_list, ... - work).
 * Limits (defaults, configurable per node): statement 100 KB, 100 bound
 * parameters, a row / string / BLOB 2 MB, database 10 GB.
 *
 * Values. Parameters: number (an integer-valued number binds as INTEGER),
 * bigint (64-bit range), string, boolean (1/0), null/undefined (NULL),
 * ArrayBuffer or a typed array / DataView (BLOB). Columns: INTEGER -> number
 * (bigint beyond +-2^53), REAL -> number, TEXT -> string, BLOB ->
 * ArrayBuffer, NULL -> null.
 *
 * Errors. Every function returns 0 (or a count) or LMZ_ETHROWN after
 * throwing an Error in the turn (lmz_throwf): name "Error", message
 * "<SQLite's message>: SQLITE_<CODE>" (e.g. "no such table: t:
 * SQLITE_ERROR"); a parameter of the wrong type throws a TypeError, a limit
 * a RangeError. The caller may return it (the turn fails) or carry on (the
 * failed statement changed nothing). Workers get an Error: SQL is for
 * durable objects. Guards may only read.
 *
 * Lifetime: cursors and values live in the turn arena; cursors are closed
 * when the turn ends. Loop thread of the actor (inside a handler) only. */
#ifndef LMZ_SQL_H
#define LMZ_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmz/lmz.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmz_sql_cursor lmz_sql_cursor;

/* Runs one statement with `nargs` parameters. The statement runs at once up
 * to its first row (so a write is done when exec returns); rows are then
 * read from the cursor. `out` may be NULL (the cursor is drained and
 * closed at once: use it for writes). */
int lmz_sql_exec(lmz_ctx *ctx, const char *query, lmz_value *const *args,
                 size_t nargs, lmz_sql_cursor **out);

/* Next row: 1 and *row (an object keyed by column name, or with _raw an
 * array in column order), 0 when there are no more rows, or LMZ_ETHROWN. */
int lmz_sql_next(lmz_sql_cursor *c, lmz_value **row);
int lmz_sql_next_raw(lmz_sql_cursor *c, lmz_value **row);
/* The remaining rows as an array of objects (or arrays); closes the cursor.
 * 0 or LMZ_ETHROWN. */
int lmz_sql_all(lmz_sql_cursor *c, lmz_value **rows);
int lmz_sql_all_raw(lmz_sql_cursor *c, lmz_value **rows);
/* Convenience: exec then all (rows may be NULL for writes). */
int lmz_sql_query(lmz_ctx *ctx, const char *query, lmz_value *const *args,
                  size_t nargs, lmz_value **rows);

size_t lmz_sql_column_count(const lmz_sql_cursor *c);
const char *lmz_sql_column_name(const lmz_sql_cursor *c, size_t i);
/* Rows this statement read (rows returned plus rows scanned by full-table
 * steps, as SQLite counts them) and rows it inserted, updated or deleted
 * (triggers included). Final once the cursor is done. */
uint64_t lmz_sql_rows_read(const lmz_sql_cursor *c);
uint64_t lmz_sql_rows_written(const lmz_sql_cursor *c);
/* Closes early (optional). NULL ignored. */
void lmz_sql_close(lmz_sql_cursor *c);

/* Size of this object's database in bytes (0 before the first table), or
 * -1 after throwing (not a durable object, the database cannot open). */
int64_t lmz_sql_database_size(lmz_ctx *ctx);

/* The original's transactionSync: runs fn(ctx, arg) as an atomic section of
 * the turn. If fn returns 0, its SQL and KV writes stay part of the turn;
 * otherwise they are rolled back (SQL through a SAVEPOINT, KV through the
 * turn's overlay) and fn's result is returned, the thrown error still set,
 * WITHOUT failing the turn (the caller decides). Sections nest. Alarm
 * changes are not rolled back. */
typedef int (*lmz_sql_section_fn)(lmz_ctx *ctx, void *arg);
int lmz_sql_transaction(lmz_ctx *ctx, lmz_sql_section_fn fn, void *arg);

/* Per-node SQL settings (lmzd config "sql": {...}; the test kit's opts).
 * Zero fields take the defaults in brackets. */
struct lmz_sql_opts {
  uint32_t max_sql_bytes;     /* statement length [100000] */
  uint32_t max_params;        /* bound parameters [100] */
  uint32_t max_value_bytes;   /* a row, string or BLOB [2000000] */
  uint64_t max_db_bytes;      /* database size [10 GB] */
  uint32_t cache_kib;         /* SQLite page cache per actor [1024 KiB] */
  uint64_t node_cache_bytes;  /* SQLite memory of the whole process (soft
                                 heap limit) [256 MiB] */
};

#ifdef __cplusplus
}
#endif
#endif
