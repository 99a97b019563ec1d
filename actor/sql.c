/* actor/sql.c - a durable object's SQL database as its handlers see it
 * (lmz/sql.h; DESIGN.md section 3.1).
 *
 * Happy path: the first SQL call of a turn opens the actor's database if
 * needed (storage/sqlvfs.h: pages are keys of the actor) and runs BEGIN;
 * statements run inside that transaction; when the handler returns 0 the
 * runtime (turn.c) calls lmz__sql_turn_end -> COMMIT, which makes SQLite
 * write its dirty pages into the store's turn versions; commit_turn appends
 * them to the turn's batch next to the KV writes (lmz__sql_add_to_batch);
 * start_commit tags them with the commit sequence (lmz__sql_turn_applied).
 * One batch, one group commit, one output gate for SQL and KV.
 *
 * Failure modes:
 *  1. a statement fails (syntax, constraint, refused by the authorizer,
 *     limit): an Error is thrown in the turn; SQLite undid the statement.
 *     If SQLite had to roll back the whole transaction (rare: out of
 *     memory, disk full) the turn is marked broken and fails at its end.
 *  2. the turn throws, or COMMIT fails, or the batch cannot be committed:
 *     ROLLBACK, the store drops the turn's page versions and, if the
 *     transaction had written, the connection is closed, so SQLite's page
 *     cache cannot keep an uncommitted page (reopened on next use);
 *  3. the commit fails on disk (lmz__sql_reset from commit_done): the
 *     database is closed and its in-memory versions dropped, like the KV
 *     cache;
 *  4. eviction closes the database (lmz__sql_close).
 * Memory: SQLite's page cache per actor is cache_size; the whole process is
 * bounded by sqlite3_soft_heap_limit64 (node_cache_bytes). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "lmz/sql.h"
#include "storage/sqlvfs.h"
#include "storage/store.h"

#define DEF_MAX_SQL 100000u
#define DEF_MAX_PARAMS 100u
#define DEF_MAX_VALUE 2000000u
#define DEF_MAX_DB (10ull * 1000 * 1000 * 1000)
#define DEF_CACHE_KIB 1024u
#define DEF_NODE_CACHE (256ull << 20)
#define MAX_SAFE_INT 9007199254740991.0 /* 2^53 - 1 */
#define ADMIN_METHOD "__lmz_sql"
#define STMT_CACHE 16 /* prepared statements kept per open database */

/* A prepared statement kept for reuse, keyed by its exact text. */
struct cached_stmt {
  char *sql; /* malloc'd; NULL = free slot */
  size_t len;
  sqlite3_stmt *st;
  bool busy;     /* a cursor of this turn is using it */
  uint64_t used; /* LRU tick */
};

/* Per actor, while its database is open. */
struct lmz__sql {
  lmz_sqlstore_t store; /* embedded: closed with this struct */
  sqlite3 *db;
  bool user;          /* the authorizer applies the user rules */
  const char *denied; /* why the authorizer refused (static text) */
  char denied_buf[160];
  uint64_t counted_bytes; /* database size counted in the node's stats */
  sqlite3_stmt *begin, *commit, *rollback; /* the runtime's own */
  struct cached_stmt cache[STMT_CACHE];
  uint64_t tick;
};

/* Per turn, in the turn arena. */
struct lmz__sql_turn {
  bool began;  /* BEGIN ran (at the first statement that writes: a turn
                  that only reads runs its statements in autocommit mode) */
  bool broken; /* SQLite rolled the whole transaction back */
  int depth;   /* lmz_sql_transaction nesting */
  lmz_sql_cursor *cursors; /* open ones */
};

struct lmz_sql_cursor {
  lmz_ctx *ctx;
  sqlite3_stmt *stmt; /* NULL once finished */
  lmz_sql_cursor *next;
  struct cached_stmt *cached; /* stmt belongs to this cache slot, or NULL */
  bool has_row;       /* a row is waiting in stmt */
  int ncol;
  const char **names; /* in the turn arena */
  uint64_t rows_read, rows_written;
  int64_t changes_before;
};

/* ---- settings -------------------------------------------------------------- */

static struct lmz_sql_opts opts_of(lmz_node_t *n) {
  struct lmz_sql_opts o = n->opts.sql;
  if (!o.max_sql_bytes)
    o.max_sql_bytes = DEF_MAX_SQL;
  if (!o.max_params)
    o.max_params = DEF_MAX_PARAMS;
  if (!o.max_value_bytes)
    o.max_value_bytes = DEF_MAX_VALUE;
  if (!o.max_db_bytes)
    o.max_db_bytes = DEF_MAX_DB;
  if (!o.cache_kib)
    o.cache_kib = DEF_CACHE_KIB;
  if (!o.node_cache_bytes)
    o.node_cache_bytes = DEF_NODE_CACHE;
  return o;
}

/* ---- errors ---------------------------------------------------------------- */

static const char *code_name(int rc) {
  static const char *const names[] = {
      "OK", "ERROR", "INTERNAL", "PERM", "ABORT", "BUSY", "LOCKED", "NOMEM",
      "READONLY", "INTERRUPT", "IOERR", "CORRUPT", "NOTFOUND", "FULL",
      "CANTOPEN", "PROTOCOL", "EMPTY", "SCHEMA", "TOOBIG", "CONSTRAINT",
      "MISMATCH", "MISUSE", "NOLFS", "AUTH", "FORMAT", "RANGE", "NOTADB"};
  int p = rc & 0xff;
  return p >= 0 && (size_t)p < LMZ_ARRAY_SIZE(names) ? names[p] : "UNKNOWN";
}

/* Throws SQLite's error of the last call on the actor's db. */
static int throw_db(lmz_ctx *ctx, int rc) {
  struct lmz__sql *s = ctx->actor->sql;
  if (s->denied) /* refused by the authorizer (function denials come back
                    as SQLITE_ERROR) */
    return lmz_throwf(ctx, "Error", "%s: SQLITE_AUTH", s->denied);
  if ((rc & 0xff) == SQLITE_TOOBIG)
    return lmz_throwf(ctx, "RangeError", "%s: SQLITE_TOOBIG",
                      sqlite3_errmsg(s->db));
  return lmz_throwf(ctx, "Error", "%s: SQLITE_%s", sqlite3_errmsg(s->db),
                    code_name(rc));
}

/* ---- the authorizer -------------------------------------------------------- */

/* PRAGMAs a user may run: introspection and per-transaction switches. Those
 * marked read-only are refused with an argument (PRAGMA page_size = ...). */
static const struct {
  const char *name;
  bool read_only;
} allowed_pragmas[] = {
    {"table_info", false},     {"table_xinfo", false},
    {"table_list", false},     {"index_list", false},
    {"index_info", false},     {"index_xinfo", false},
    {"foreign_key_list", false}, {"foreign_key_check", false},
    {"integrity_check", false}, {"quick_check", false},
    {"collation_list", false}, {"function_list", false},
    {"foreign_keys", false},   {"defer_foreign_keys", false},
    {"recursive_triggers", false}, {"case_sensitive_like", false},
    {"optimize", false},       {"user_version", false},
    {"page_count", true},      {"page_size", true},
    {"freelist_count", true},  {"data_version", true},
    {"schema_version", true},  {"max_page_count", true},
};

static int deny(struct lmz__sql *s, const char *why) {
  s->denied = why;
  return SQLITE_DENY;
}

static int check_pragma(struct lmz__sql *s, const char *name, const char *arg) {
  for (size_t i = 0; name && i < LMZ_ARRAY_SIZE(allowed_pragmas); i++)
    if (!sqlite3_stricmp(name, allowed_pragmas[i].name)) {
      if (arg && allowed_pragmas[i].read_only)
        break;
      return SQLITE_OK;
    }
  snprintf(s->denied_buf, sizeof s->denied_buf,
           "PRAGMA %.64s is not allowed (it would change the database file "
           "or the connection)", name ? name : "?");
  return deny(s, s->denied_buf);
}

static int authorizer(void *arg, int action, const char *a1, const char *a2,
                      const char *db, const char *trigger) {
  struct lmz__sql *s = arg;
  (void)db, (void)trigger;
  if (!s->user)
    return SQLITE_OK; /* the runtime's own BEGIN / COMMIT / SAVEPOINT */
  switch (action) {
  case SQLITE_TRANSACTION:
  case SQLITE_SAVEPOINT:
    return deny(s, "BEGIN, COMMIT, ROLLBACK and SAVEPOINT are not allowed: "
                   "the turn is the transaction (use lmz_sql_transaction)");
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
    return deny(s, "ATTACH and DETACH are not allowed");
  case SQLITE_PRAGMA:
    return check_pragma(s, a1, a2);
  case SQLITE_FUNCTION:
    /* load_extension is off (db_config) anyway; fts3_tokenizer(name, ptr)
     * would let SQL hand SQLite a pointer */
    if (a2 && (!sqlite3_stricmp(a2, "load_extension") ||
               !sqlite3_stricmp(a2, "fts3_tokenizer")))
      return deny(s, a2[0] == 'l' || a2[0] == 'L'
                         ? "load_extension() is not allowed"
                         : "fts3_tokenizer() is not allowed");
    return SQLITE_OK;
  default:
    return SQLITE_OK;
  }
}

/* ---- opening and closing ---------------------------------------------------- */

static int run_internal(struct lmz__sql *s, const char *sql) {
  s->user = false;
  int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
  s->user = true;
  return rc;
}

/* Steps one of the runtime's prepared statements (BEGIN, COMMIT, ...);
 * user = false also covers an automatic re-prepare inside the step. */
static int step_internal(struct lmz__sql *s, sqlite3_stmt *st) {
  s->user = false;
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  s->user = true;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int prepare_internal(struct lmz__sql *s) {
  static const char *const text[] = {"BEGIN", "COMMIT", "ROLLBACK"};
  sqlite3_stmt **out[] = {&s->begin, &s->commit, &s->rollback};
  s->user = false;
  int rc = SQLITE_OK;
  for (size_t i = 0; rc == SQLITE_OK && i < LMZ_ARRAY_SIZE(text); i++)
    rc = sqlite3_prepare_v3(s->db, text[i], -1, SQLITE_PREPARE_PERSISTENT, out[i], NULL);
  s->user = true;
  return rc;
}

static int configure(lmz_node_t *n, struct lmz__sql *s) {
  struct lmz_sql_opts o = opts_of(n);
  sqlite3 *db = s->db;
  sqlite3_soft_heap_limit64((sqlite3_int64)o.node_cache_bytes);
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  sqlite3_limit(db, SQLITE_LIMIT_SQL_LENGTH, (int)o.max_sql_bytes);
  sqlite3_limit(db, SQLITE_LIMIT_VARIABLE_NUMBER, (int)o.max_params);
  sqlite3_limit(db, SQLITE_LIMIT_LENGTH, (int)o.max_value_bytes);
  sqlite3_limit(db, SQLITE_LIMIT_ATTACHED, 0);
  char sql[512];
  snprintf(sql, sizeof sql,
           "PRAGMA page_size=%u; PRAGMA journal_mode=MEMORY; "
           "PRAGMA locking_mode=EXCLUSIVE; PRAGMA synchronous=OFF; "
           "PRAGMA temp_store=MEMORY; PRAGMA cache_size=-%u; "
           "PRAGMA max_page_count=%llu;",
           LMZ_SQLVFS_PAGE, o.cache_kib,
           (unsigned long long)(o.max_db_bytes / LMZ_SQLVFS_PAGE));
  int rc = run_internal(s, sql);
  if (rc == SQLITE_OK)
    rc = prepare_internal(s);
  if (rc == SQLITE_OK)
    sqlite3_set_authorizer(db, authorizer, s);
  return rc;
}

static void count_size(lmz_actor *a) {
  struct lmz__sql *s = a->sql;
  uint64_t now = lmz_sqlstore_size(&s->store);
  a->node->stats.sql_db_bytes += now - s->counted_bytes; /* wraps right */
  s->counted_bytes = now;
}

static void close_db(struct lmz__sql *s) {
  for (size_t i = 0; i < STMT_CACHE; i++) {
    sqlite3_finalize(s->cache[i].st);
    free(s->cache[i].sql);
    s->cache[i] = (struct cached_stmt){0};
  }
  sqlite3_finalize(s->begin);
  sqlite3_finalize(s->commit);
  sqlite3_finalize(s->rollback);
  s->begin = s->commit = s->rollback = NULL;
  if (s->db)
    sqlite3_close_v2(s->db); /* every statement is finalized by now */
  s->db = NULL;
}

void lmz__sql_close(lmz_actor *a) {
  struct lmz__sql *s = a->sql;
  if (!s)
    return;
  close_db(s);
  a->node->stats.sql_db_bytes -= s->counted_bytes;
  if (a->node->stats.sql_open_dbs)
    a->node->stats.sql_open_dbs--;
  lmz_sqlstore_close(&s->store);
  free(s);
  a->sql = NULL;
}

void lmz__sql_reset(lmz_actor *a) { lmz__sql_close(a); }

/* Opens the actor's database (store and connection) if needed. */
static int open_db(lmz_ctx *ctx) {
  lmz_actor *a = ctx->actor;
  char err[LMZ_ERRMSG_LEN] = "";
  if (!a->sql) {
    struct lmz__sql *s = calloc(1, sizeof *s);
    if (!s)
      return LMZ_ENOMEM;
    int rv = lmz_sqlstore_init(&s->store, ctx->node->store, a->prefix,
                               a->prefix_len, err);
    if (rv) {
      free(s);
      return lmz_throwf(ctx, "StorageError", "cannot open the SQL database: %s", err);
    }
    s->user = true;
    a->sql = s;
    ctx->node->stats.sql_open_dbs++;
    count_size(a);
  }
  struct lmz__sql *s = a->sql;
  if (s->db)
    return 0;
  int rv = lmz_sqlstore_connect(&s->store, &s->db, err);
  if (!rv && configure(ctx->node, s) != SQLITE_OK) {
    lmz__errmsg_printf(err, "configure: %s", sqlite3_errmsg(s->db));
    close_db(s);
    rv = LMZ_EIO;
  }
  if (rv)
    return lmz_throwf(ctx, "StorageError", "cannot open the SQL database: %s", err);
  return 0;
}

/* ---- the turn ----------------------------------------------------------------- */

static int check_ctx(lmz_ctx *ctx) {
  if (ctx->actor->binding->kind != LMZ_NODE_DO || !ctx->actor->prefix)
    return lmz_throwf(ctx, "Error", "SQL storage is only available to durable objects");
  return 0;
}

/* Opens the database and starts the turn's transaction on first use. */
static int turn_begin(lmz_ctx *ctx) {
  int rv = check_ctx(ctx);
  if (rv)
    return rv;
  if (!ctx->sql) {
    ctx->sql = lmz_arena_alloc(ctx->arena, sizeof *ctx->sql);
    if (!ctx->sql)
      return LMZ_ENOMEM;
    memset(ctx->sql, 0, sizeof *ctx->sql);
  }
  if (ctx->sql->broken)
    return lmz_throwf(ctx, "Error", "the SQL transaction of this turn was "
                                    "rolled back by an earlier error");
  if (ctx->actor->sql && ctx->actor->sql->db)
    return 0;
  if ((rv = open_db(ctx)))
    return rv;
  lmz_sqlstore_trim(&ctx->actor->sql->store, ctx->node->durable_seq);
  return 0;
}

/* The turn's SQL transaction, started before its first write. */
static int txn_begin(lmz_ctx *ctx) {
  if (ctx->sql->began)
    return 0;
  lmz_sqlstore_trim(&ctx->actor->sql->store, ctx->node->durable_seq);
  int rc = step_internal(ctx->actor->sql, ctx->actor->sql->begin);
  if (rc != SQLITE_OK)
    return throw_db(ctx, rc);
  ctx->sql->began = true;
  return 0;
}

static void cursor_finish(lmz_sql_cursor *c) {
  if (!c->stmt)
    return;
  lmz_ctx *ctx = c->ctx;
  c->rows_read += (uint64_t)sqlite3_stmt_status(c->stmt, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1);
  c->rows_written = (uint64_t)(sqlite3_total_changes64(ctx->actor->sql->db) -
                               c->changes_before);
  ctx->node->stats.sql_rows_read += c->rows_read;
  ctx->node->stats.sql_rows_written += c->rows_written;
  if (c->cached) { /* back to the cache, ready for the next use */
    sqlite3_reset(c->stmt);
    sqlite3_clear_bindings(c->stmt);
    c->cached->busy = false;
    c->cached = NULL;
  } else {
    sqlite3_finalize(c->stmt);
  }
  c->stmt = NULL;
  c->has_row = false;
  for (lmz_sql_cursor **p = &ctx->sql->cursors; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
}

static void close_cursors(lmz_ctx *ctx) {
  while (ctx->sql->cursors)
    cursor_finish(ctx->sql->cursors);
}

int lmz__sql_turn_end(lmz_ctx *ctx, int rv) {
  struct lmz__sql_turn *t = ctx->sql;
  if (!t || !ctx->actor->sql || !ctx->actor->sql->db)
    return rv;
  struct lmz__sql *s = ctx->actor->sql;
  close_cursors(ctx);
  if (!t->began && !t->broken)
    return rv; /* only reads, in autocommit mode: nothing to end */
  t->began = false;
  if (rv == 0 && (t->broken || lmz_sqlstore_failed(&s->store)))
    rv = lmz_throwf(ctx, "StorageError", "the SQL transaction failed: %s",
                    t->broken ? "rolled back by an error"
                              : lmz_sqlstore_errmsg(&s->store));
  if (rv == 0) {
    int rc = step_internal(s, s->commit);
    if (rc == SQLITE_OK)
      return 0; /* pages are in the store's turn versions */
    rv = lmz_throwf(ctx, "StorageError", "SQL commit failed: %s",
                    sqlite3_errmsg(s->db));
  }
  bool wrote = sqlite3_txn_state(s->db, NULL) == SQLITE_TXN_WRITE ||
               lmz_sqlstore_dirty(&s->store) || t->broken;
  if (!sqlite3_get_autocommit(s->db))
    step_internal(s, s->rollback);
  lmz_sqlstore_turn_abort(&s->store);
  if (wrote)
    close_db(s); /* SQLite's cache must not keep a page of this turn */
  return rv;
}

int lmz__sql_add_to_batch(lmz_ctx *ctx, struct lmz_batch **b) {
  lmz_actor *a = ctx->actor;
  if (!ctx->sql || !a->sql || !lmz_sqlstore_dirty(&a->sql->store))
    return 0;
  if (!*b && !(*b = lmz_batch_new()))
    return LMZ_ENOMEM;
  return lmz_sqlstore_add_to_batch(&a->sql->store, *b);
}

void lmz__sql_turn_applied(lmz_ctx *ctx, uint64_t seq) {
  lmz_actor *a = ctx->actor;
  if (!ctx->sql || !a->sql || !lmz_sqlstore_dirty(&a->sql->store))
    return;
  lmz_sqlstore_turn_commit(&a->sql->store, seq);
  lmz_sqlstore_trim(&a->sql->store, ctx->node->durable_seq);
  count_size(a);
}

void lmz__sql_turn_cleanup(lmz_ctx *ctx) {
  lmz_actor *a = ctx->actor;
  if (!ctx->sql || !a->sql || !lmz_sqlstore_dirty(&a->sql->store))
    return;
  /* committed by SQLite but the batch never left: forget both */
  lmz_sqlstore_turn_abort(&a->sql->store);
  close_db(a->sql);
}

/* ---- values ------------------------------------------------------------------- */

static int bind_one(lmz_ctx *ctx, sqlite3_stmt *st, int i, const lmz_value *v) {
  size_t len;
  const char *p;
  switch (lmz_typeof(v)) {
  case LMZ_T_UNDEFINED:
  case LMZ_T_NULL:
    return sqlite3_bind_null(st, i);
  case LMZ_T_BOOL:
    return sqlite3_bind_int(st, i, lmz_get_bool(v));
  case LMZ_T_NUMBER: {
    double d = lmz_get_number(v);
    if (d == floor(d) && fabs(d) <= MAX_SAFE_INT)
      return sqlite3_bind_int64(st, i, (sqlite3_int64)d);
    return sqlite3_bind_double(st, i, d);
  }
  case LMZ_T_BIGINT: {
    p = lmz_get_str(v, &len);
    char *end;
    errno = 0;
    long long x = strtoll(p, &end, 10);
    if (errno || end != p + len)
      return lmz_throwf(ctx, "RangeError", "parameter %d: bigint out of the "
                        "64-bit range", i);
    return sqlite3_bind_int64(st, i, x);
  }
  case LMZ_T_STRING:
    p = lmz_get_str(v, &len);
    return sqlite3_bind_text64(st, i, p, len, SQLITE_TRANSIENT, SQLITE_UTF8);
  case LMZ_T_ARRAYBUFFER:
    return sqlite3_bind_blob64(st, i, lmz_arraybuffer_data(v), lmz_len(v),
                               SQLITE_TRANSIENT);
  case LMZ_T_VIEW:
    return sqlite3_bind_blob64(
        st, i, lmz_arraybuffer_data(lmz_view_buffer(v)) + lmz_view_byte_offset(v),
        lmz_view_byte_length(v), SQLITE_TRANSIENT);
  default:
    return lmz_throwf(ctx, "TypeError", "parameter %d: a %s cannot be bound "
                      "(numbers, bigints, strings, booleans, null and "
                      "binary data can)", i, lmz_type_name(lmz_typeof(v)));
  }
}

static int bind_all(lmz_ctx *ctx, sqlite3_stmt *st, lmz_value *const *args,
                    size_t nargs) {
  int want = sqlite3_bind_parameter_count(st);
  if ((size_t)want != nargs)
    return lmz_throwf(ctx, "RangeError", "the statement has %d parameters, "
                      "%zu values were given", want, nargs);
  for (size_t i = 0; i < nargs; i++) {
    int rc = bind_one(ctx, st, (int)i + 1, args[i]);
    if (rc == LMZ_ETHROWN)
      return rc;
    if (rc != SQLITE_OK)
      return throw_db(ctx, rc);
  }
  return 0;
}

static lmz_value *column_value(lmz_arena *a, sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
  case SQLITE_INTEGER: {
    sqlite3_int64 x = sqlite3_column_int64(st, i);
    if ((double)x >= -MAX_SAFE_INT && (double)x <= MAX_SAFE_INT)
      return lmz_number(a, (double)x);
    char dec[24];
    int n = snprintf(dec, sizeof dec, "%lld", (long long)x);
    return lmz_bigint(a, dec, (size_t)n);
  }
  case SQLITE_FLOAT:
    return lmz_number(a, sqlite3_column_double(st, i));
  case SQLITE_TEXT: {
    const unsigned char *t = sqlite3_column_text(st, i);
    return lmz_string(a, (const char *)t, (size_t)sqlite3_column_bytes(st, i));
  }
  case SQLITE_BLOB: {
    const void *b = sqlite3_column_blob(st, i);
    return lmz_arraybuffer(a, b, (size_t)sqlite3_column_bytes(st, i));
  }
  default:
    return lmz_null();
  }
}

/* ---- cursors ------------------------------------------------------------------ */

/* Steps once: has_row, or finished; throws on error. */
static int cursor_step(lmz_sql_cursor *c) {
  lmz_ctx *ctx = c->ctx;
  int rc = sqlite3_step(c->stmt);
  if (rc == SQLITE_ROW) {
    c->has_row = true;
    c->rows_read++;
    return 0;
  }
  c->has_row = false;
  if (rc == SQLITE_DONE) {
    cursor_finish(c);
    return 0;
  }
  int err = throw_db(ctx, rc);
  cursor_finish(c);
  if (ctx->sql->began && sqlite3_get_autocommit(ctx->actor->sql->db))
    ctx->sql->broken = true; /* SQLite rolled back the whole transaction */
  return err;
}

static int make_names(lmz_sql_cursor *c) {
  c->ncol = sqlite3_column_count(c->stmt);
  if (!c->ncol)
    return 0;
  c->names = lmz_arena_alloc(c->ctx->arena, (size_t)c->ncol * sizeof *c->names);
  if (!c->names)
    return LMZ_ENOMEM;
  for (int i = 0; i < c->ncol; i++) {
    const char *n = sqlite3_column_name(c->stmt, i);
    c->names[i] = lmz_arena_strndup(c->ctx->arena, n ? n : "", n ? strlen(n) : 0);
    if (!c->names[i])
      return LMZ_ENOMEM;
  }
  return 0;
}

/* Prepares exactly one statement; *st NULL for an empty one. */
static int prepare(lmz_ctx *ctx, const char *query, sqlite3_stmt **st) {
  struct lmz__sql *s = ctx->actor->sql;
  struct lmz_sql_opts o = opts_of(ctx->node);
  size_t len = strlen(query);
  if (len > o.max_sql_bytes)
    return lmz_throwf(ctx, "RangeError", "statement of %zu bytes is longer "
                      "than %u", len, o.max_sql_bytes);
  const char *tail = NULL;
  s->denied = NULL;
  int rc = sqlite3_prepare_v3(s->db, query, (int)len + 1,
                              SQLITE_PREPARE_PERSISTENT, st, &tail);
  if (rc != SQLITE_OK)
    return throw_db(ctx, rc);
  while (tail && *tail && strchr(" \t\r\n;", *tail))
    tail++;
  if (tail && *tail) {
    sqlite3_finalize(*st);
    *st = NULL;
    return lmz_throwf(ctx, "Error", "only one statement per call is allowed "
                      "(found more after byte %zu)", (size_t)(tail - query));
  }
  return 0;
}

/* A cached statement with exactly this text that no cursor is using. */
static struct cached_stmt *cache_find(struct lmz__sql *s, const char *q,
                                      size_t len) {
  for (size_t i = 0; i < STMT_CACHE; i++) {
    struct cached_stmt *e = &s->cache[i];
    if (e->sql && !e->busy && e->len == len && !memcmp(e->sql, q, len)) {
      e->used = ++s->tick;
      return e;
    }
  }
  return NULL;
}

/* Keeps `st` in a free slot (or the least recently used idle one); NULL
 * when every slot is busy or out of memory (the caller then finalizes). */
static struct cached_stmt *cache_put(struct lmz__sql *s, const char *q,
                                     size_t len, sqlite3_stmt *st) {
  struct cached_stmt *v = NULL;
  for (size_t i = 0; i < STMT_CACHE; i++) {
    struct cached_stmt *e = &s->cache[i];
    if (!e->sql) {
      v = e;
      break;
    }
    if (!e->busy && (!v || e->used < v->used))
      v = e;
  }
  char *copy = v ? malloc(len + 1) : NULL;
  if (!copy)
    return NULL;
  memcpy(copy, q, len + 1);
  sqlite3_finalize(v->st);
  free(v->sql);
  *v = (struct cached_stmt){copy, len, st, false, ++s->tick};
  return v;
}

/* The statement for `query` in *st (NULL for an empty one), from the cache
 * or freshly prepared; c->cached tells which. */
static int get_stmt(lmz_ctx *ctx, const char *query, lmz_sql_cursor *c) {
  struct lmz__sql *s = ctx->actor->sql;
  size_t len = strlen(query);
  c->cached = cache_find(s, query, len);
  if (!c->cached) {
    int rv = prepare(ctx, query, &c->stmt);
    if (rv || !c->stmt)
      return rv;
    c->cached = cache_put(s, query, len, c->stmt);
  }
  if (c->cached) {
    c->cached->busy = true;
    c->stmt = c->cached->st;
  }
  return 0;
}

static int exec_ex(lmz_ctx *ctx, const char *query, lmz_value *const *args,
                   size_t nargs, bool read_only, lmz_sql_cursor **out) {
  int rv = turn_begin(ctx);
  if (rv)
    return rv;
  if (!query)
    return lmz_throwf(ctx, "TypeError", "no SQL statement");
  lmz_sql_cursor *c = lmz_arena_alloc(ctx->arena, sizeof *c);
  if (!c)
    return LMZ_ENOMEM;
  memset(c, 0, sizeof *c);
  c->ctx = ctx;
  c->changes_before = sqlite3_total_changes64(ctx->actor->sql->db);
  if ((rv = get_stmt(ctx, query, c)) || !c->stmt)
    goto done; /* an error, or an empty statement (only comments): no rows */
  sqlite3_stmt *st = c->stmt;
  c->next = ctx->sql->cursors;
  ctx->sql->cursors = c;
  bool writes = !sqlite3_stmt_readonly(st);
  if (writes && (read_only || ctx->in_guard))
    rv = lmz_throwf(ctx, "Error", "this statement writes, and only reads "
                    "are allowed here%s", ctx->in_guard ? " (a guard)" : "");
  else if (writes)
    rv = txn_begin(ctx);
  ctx->actor->sql->denied = NULL;
  if (rv || (rv = make_names(c)) || (rv = bind_all(ctx, st, args, nargs)) ||
      (rv = cursor_step(c))) {
    cursor_finish(c);
    return rv;
  }
done:
  if (rv)
    return rv;
  if (out)
    *out = c;
  else
    while (c->stmt && !(rv = cursor_step(c)))
      ;
  return rv;
}

int lmz_sql_exec(lmz_ctx *ctx, const char *query, lmz_value *const *args,
                 size_t nargs, lmz_sql_cursor **out) {
  return exec_ex(ctx, query, args, nargs, false, out);
}

static int next_row(lmz_sql_cursor *c, bool raw, lmz_value **row) {
  *row = NULL;
  if (!c || !c->has_row)
    return 0;
  lmz_arena *a = c->ctx->arena;
  lmz_value *r = raw ? lmz_array(a, (size_t)c->ncol) : lmz_object(a);
  for (int i = 0; r && i < c->ncol; i++) {
    lmz_value *v = column_value(a, c->stmt, i);
    if (!v || (raw ? lmz_array_push(r, v) : lmz_object_setc(r, c->names[i], v)))
      r = NULL;
  }
  if (!r)
    return LMZ_ENOMEM;
  int rv = cursor_step(c);
  if (rv)
    return rv;
  *row = r;
  return 1;
}

int lmz_sql_next(lmz_sql_cursor *c, lmz_value **row) {
  return next_row(c, false, row);
}

int lmz_sql_next_raw(lmz_sql_cursor *c, lmz_value **row) {
  return next_row(c, true, row);
}

static int all_rows(lmz_sql_cursor *c, bool raw, lmz_value **rows) {
  lmz_value *arr = lmz_array(c->ctx->arena, 0), *r;
  if (!arr)
    return LMZ_ENOMEM;
  int rv;
  while ((rv = next_row(c, raw, &r)) == 1)
    if (lmz_array_push(arr, r))
      return LMZ_ENOMEM;
  if (rv == 0 && rows)
    *rows = arr;
  return rv;
}

int lmz_sql_all(lmz_sql_cursor *c, lmz_value **rows) {
  return all_rows(c, false, rows);
}

int lmz_sql_all_raw(lmz_sql_cursor *c, lmz_value **rows) {
  return all_rows(c, true, rows);
}

int lmz_sql_query(lmz_ctx *ctx, const char *query, lmz_value *const *args,
                  size_t nargs, lmz_value **rows) {
  lmz_sql_cursor *c;
  int rv = lmz_sql_exec(ctx, query, args, nargs, &c);
  return rv ? rv : lmz_sql_all(c, rows);
}

size_t lmz_sql_column_count(const lmz_sql_cursor *c) {
  return c ? (size_t)c->ncol : 0;
}

const char *lmz_sql_column_name(const lmz_sql_cursor *c, size_t i) {
  return c && i < (size_t)c->ncol ? c->names[i] : NULL;
}

uint64_t lmz_sql_rows_read(const lmz_sql_cursor *c) { return c ? c->rows_read : 0; }
uint64_t lmz_sql_rows_written(const lmz_sql_cursor *c) {
  return c ? c->rows_written : 0;
}

void lmz_sql_close(lmz_sql_cursor *c) {
  if (c)
    cursor_finish(c);
}

int64_t lmz_sql_database_size(lmz_ctx *ctx) {
  if (turn_begin(ctx))
    return -1;
  return (int64_t)lmz_sqlstore_size(&ctx->actor->sql->store);
}

/* ---- transactionSync ------------------------------------------------------ */

struct kv_snap {
  struct lmz_kv_write *tail; /* the overlay's last entry before the section */
  size_t n;
  struct { struct lmz_kv_write *w; uint8_t *val; size_t vlen; } *ents;
};

static int kv_snapshot(lmz_ctx *ctx, struct kv_snap *s) {
  s->tail = ctx->w_tail;
  s->n = 0;
  for (struct lmz_kv_write *w = ctx->w_head; w; w = w->next)
    s->n++;
  s->ents = s->n ? lmz_arena_alloc(ctx->arena, s->n * sizeof *s->ents) : NULL;
  if (s->n && !s->ents)
    return LMZ_ENOMEM;
  size_t i = 0;
  for (struct lmz_kv_write *w = ctx->w_head; w; w = w->next, i++) {
    s->ents[i].w = w;
    s->ents[i].val = w->val;
    s->ents[i].vlen = w->vlen;
  }
  return 0;
}

/* Puts the KV overlay back as it was at the snapshot. */
static void kv_restore(lmz_ctx *ctx, const struct kv_snap *s) {
  struct lmz_kv_write *w = s->tail ? s->tail->next : ctx->w_head;
  for (; w; w = w->next)
    lmz_hmap_del(&ctx->writes, w->key, w->klen);
  if (s->tail)
    s->tail->next = NULL;
  else
    ctx->w_head = NULL;
  ctx->w_tail = s->tail;
  for (size_t i = 0; i < s->n; i++) {
    s->ents[i].w->val = s->ents[i].val;
    s->ents[i].w->vlen = s->ents[i].vlen;
  }
}

int lmz_sql_transaction(lmz_ctx *ctx, lmz_sql_section_fn fn, void *arg) {
  int rv = turn_begin(ctx);
  if (rv)
    return rv;
  struct kv_snap snap;
  if ((rv = kv_snapshot(ctx, &snap)))
    return rv;
  if ((rv = txn_begin(ctx)))
    return rv;
  struct lmz__sql *s = ctx->actor->sql;
  char sp[96];
  int depth = ++ctx->sql->depth;
  snprintf(sp, sizeof sp, "SAVEPOINT lmz_section_%d", depth);
  int rc = run_internal(s, sp);
  if (rc != SQLITE_OK) {
    ctx->sql->depth--;
    return throw_db(ctx, rc);
  }
  rv = fn(ctx, arg);
  ctx->sql->depth--;
  if (rv && !ctx->thrown)
    lmz_throwf(ctx, "Error", "%s", lmz_strerror(rv));
  if (rv) {
    kv_restore(ctx, &snap);
    snprintf(sp, sizeof sp, "ROLLBACK TO lmz_section_%d; RELEASE lmz_section_%d",
             depth, depth);
  } else {
    snprintf(sp, sizeof sp, "RELEASE lmz_section_%d", depth);
  }
  if (run_internal(s, sp) != SQLITE_OK)
    ctx->sql->broken = true; /* the savepoint is gone: trust nothing */
  return rv;
}

/* ---- operators: `lmz sql` (and the test kit) ------------------------------- */

/* [{type:'get', key:'__lmz_sql'}, {type:'apply', args:[opts, sql, ...]}]
 * from an operator (a call chain of exactly one LmzCli identity, which only
 * the node port authenticated with the cluster key - or the test kit - can
 * produce: gateways put the verified client first, actors append
 * themselves). */
bool lmz__sql_is_admin(lmz_ctx *ctx, const lmz_value *chain) {
  if (ctx->actor->binding->kind != LMZ_NODE_DO || ctx->cctx->n != 1 ||
      ctx->cctx->chain[0].type != LMZ_NODE_CLI || ctx->cctx->origin_auth ||
      lmz_typeof(chain) != LMZ_T_ARRAY || lmz_len(chain) != 2)
    return false;
  const lmz_value *get = lmz_array_get(chain, 0);
  const lmz_value *key = get ? lmz_object_getc(get, "key") : NULL;
  size_t kl;
  const char *k = key && lmz_typeof(key) == LMZ_T_STRING ? lmz_get_str(key, &kl) : NULL;
  return k && kl == strlen(ADMIN_METHOD) && !memcmp(k, ADMIN_METHOD, kl);
}

static int admin_result(lmz_ctx *ctx, lmz_sql_cursor *c, lmz_value **result) {
  lmz_arena *a = ctx->arena;
  lmz_value *cols = lmz_array(a, 0), *rows = NULL, *r = lmz_object(a);
  if (!cols || !r)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < lmz_sql_column_count(c); i++)
    if (lmz_array_push(cols, lmz_cstring(a, lmz_sql_column_name(c, i))))
      return LMZ_ENOMEM;
  int rv = lmz_sql_all_raw(c, &rows);
  if (rv)
    return rv;
  if (lmz_object_setc(r, "columns", cols) || lmz_object_setc(r, "rows", rows) ||
      lmz_object_setc(r, "rowsRead", lmz_number(a, (double)c->rows_read)) ||
      lmz_object_setc(r, "rowsWritten",
                      lmz_number(a, (double)c->rows_written)) ||
      lmz_object_setc(
          r, "databaseSize",
          lmz_number(a, (double)lmz_sqlstore_size(&ctx->actor->sql->store))))
    return LMZ_ENOMEM;
  *result = r;
  return 0;
}

int lmz__sql_admin(lmz_ctx *ctx, const lmz_value *chain, lmz_value **result) {
  const lmz_value *ap = lmz_array_get(chain, 1);
  const lmz_value *args = ap ? lmz_object_getc(ap, "args") : NULL;
  size_t n = args && lmz_typeof(args) == LMZ_T_ARRAY ? lmz_len(args) : 0;
  const lmz_value *o = n >= 2 ? lmz_array_get(args, 0) : NULL;
  const lmz_value *q = n >= 2 ? lmz_array_get(args, 1) : NULL;
  if (!o || lmz_typeof(o) != LMZ_T_OBJECT || !q || lmz_typeof(q) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", ADMIN_METHOD "({write}, sql, ...params)");
  const lmz_value *w = lmz_object_getc(o, "write");
  bool write = w && lmz_typeof(w) == LMZ_T_BOOL && lmz_get_bool(w);
  lmz_value **params = n > 2 ? lmz_arena_alloc(ctx->arena, (n - 2) * sizeof *params) : NULL;
  if (n > 2 && !params)
    return LMZ_ENOMEM;
  for (size_t i = 2; i < n; i++)
    params[i - 2] = lmz_array_get(args, i);
  lmz_sql_cursor *c;
  int rv = exec_ex(ctx, lmz_get_str(q, NULL), params, n - 2, !write, &c);
  return rv ? rv : admin_result(ctx, c, result);
}
