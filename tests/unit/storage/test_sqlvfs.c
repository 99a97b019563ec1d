/* storage/sqlvfs: SQLite over an actor's key range, with a real RocksDB in a
 * temp dir and no actor runtime: chunk keys, pages only reaching RocksDB
 * through a committed batch, the committed-not-durable versions, truncation
 * (VACUUM) persisted as a range delete, aborting a turn, corrupt chunks,
 * and no second database file (ATTACH / VACUUM INTO). */
#include "lib/testlib.h"
#include "lib/tl_store.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "storage/keys.h"
#include "storage/sqlvfs.h"
#include "storage/store.h"

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_store_t *s;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  size_t plen;
  uint64_t seq;
};

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->dir = tl_mkdtemp("lmz-sqlvfs");
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, f->dir);
  o.sync = false;
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(tl_store_open(&f->s, &f->loop, &o, err), 0);
  int n = lmz_key_actor_prefix(f->prefix, "DOC", 3, "a", 1);
  assert_true(n > 0);
  f->plen = (size_t)n;
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tl_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void on_commit(lmz_store_t *s, int status, void *arg) {
  (void)s;
  *(int *)arg = status;
}

/* A caller-allocated store on the heap: open_db() and ss_new() make one,
 * ss_free() closes and frees it. */
static lmz_sqlstore_t *ss_new(lmz_store_t *s, const uint8_t *prefix,
                              size_t plen) {
  char err[LMZ_ERRMSG_LEN];
  lmz_sqlstore_t *ss = malloc(sizeof *ss);
  assert_non_null(ss);
  assert_int_equal(lmz_sqlstore_init(ss, s, prefix, plen, err), 0);
  return ss;
}

static void ss_free(lmz_sqlstore_t *ss) {
  lmz_sqlstore_close(ss);
  free(ss);
}

static sqlite3 *open_db(struct fx *f, lmz_sqlstore_t **ss) {
  char err[LMZ_ERRMSG_LEN];
  *ss = ss_new(f->s, f->prefix, f->plen);
  sqlite3 *db;
  assert_int_equal(lmz_sqlstore_connect(*ss, &db, err), 0);
  assert_int_equal(sqlite3_exec(db, "PRAGMA page_size=4096; PRAGMA journal_mode=MEMORY;"
                                    "PRAGMA locking_mode=EXCLUSIVE", NULL, NULL, NULL), 0);
  return db;
}

static void exec_ok(sqlite3 *db, const char *sql) {
  char *e = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
    fail_msg("%s: %s", sql, e);
}

static long long scalar(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* The turn's pages go into one batch; commit it and wait until durable. */
static void commit_turn(struct fx *f, lmz_sqlstore_t *ss) {
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_sqlstore_add_to_batch(ss, b), 0);
  int status = 1;
  assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
  lmz_sqlstore_turn_commit(ss, ++f->seq);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(status, 0);
  lmz_sqlstore_trim(ss, f->seq);
}

/* Counts the pages' bases (a delta is checked, not counted). */
static int count_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
  struct lmz_key_parts p;
  uint32_t idx;
  uint16_t n;
  uint8_t page[LMZ_SQLVFS_PAGE] = {0};
  assert_int_equal(lmz_key_parse(k, kl, &p), 0);
  assert_int_equal(lmz_sqlvfs_parse_chunk_key(p.key, p.key_len, &idx, &n), 0);
  if (n) {
    assert_int_equal(lmz_sqlvfs_apply_delta(v, vl, page), 0);
    return 0;
  }
  assert_int_equal(lmz_sqlvfs_decode_page(v, vl, page), 0);
  ++*(int *)arg;
  return 0;
}

static int chunks_on_disk(struct fx *f) {
  lmz_key_range r;
  assert_int_equal(lmz_key_list_range(&r, f->prefix, f->plen, LMZ_KEY_SPACE_FRAMEWORK,
                                      LMZ_SQLVFS_KEY_PREFIX, LMZ_SQLVFS_KEY_PREFIX_LEN), 0);
  int n = 0;
  assert_true(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper, r.upper_len, 0, false,
                             count_cb, &n) >= 0);
  return n;
}

static void page_keys(void **state) {
  struct fx *f = *state;
  uint8_t k[LMZ_KEY_MAX];
  int n = lmz_sqlvfs_page_key(k, f->prefix, f->plen, 0x01020304);
  assert_int_equal(n, (int)f->plen + 1 + 8);
  struct lmz_key_parts p;
  assert_int_equal(lmz_key_parse(k, (size_t)n, &p), 0);
  assert_int_equal(p.space, LMZ_KEY_SPACE_FRAMEWORK);
  uint32_t idx = 0;
  assert_int_equal(lmz_sqlvfs_parse_page_key(p.key, p.key_len, &idx), 0);
  assert_int_equal(idx, 0x01020304);
  assert_memory_equal(p.key, "sql:\x01\x02\x03\x04", 8);
  assert_int_equal(lmz_sqlvfs_parse_page_key(p.key, 7, &idx), LMZ_EINVAL);
  assert_int_equal(lmz_sqlvfs_parse_page_key((const uint8_t *)"sqm:abcd", 8, &idx), LMZ_EINVAL);
  /* chunks sort by index: big-endian */
  uint8_t k2[LMZ_KEY_MAX];
  lmz_sqlvfs_page_key(k, f->prefix, f->plen, 255);
  lmz_sqlvfs_page_key(k2, f->prefix, f->plen, 256);
  assert_true(memcmp(k, k2, (size_t)n) < 0);
}

static void pages_reach_rocksdb_only_through_the_batch(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (1), (2); COMMIT");
  assert_true(lmz_sqlstore_dirty(ss));
  assert_int_equal(chunks_on_disk(f), 0); /* SQLite committed; RocksDB has nothing */
  commit_turn(f, ss);
  assert_false(lmz_sqlstore_dirty(ss));
  assert_int_equal(chunks_on_disk(f), 2);
  /* durable: only the turn's pages kept as delta bases (at most 4) */
  assert_true(lmz_sqlstore_mem(ss) <= 4 * (LMZ_SQLVFS_PAGE + 64));
  /* a turn that is aborted leaves RocksDB and the size alone */
  uint64_t size = lmz_sqlstore_size(ss);
  exec_ok(db, "BEGIN; CREATE TABLE u(y); COMMIT");
  assert_true(lmz_sqlstore_size(ss) > size);
  lmz_sqlstore_turn_abort(ss);
  assert_int_equal(lmz_sqlstore_size(ss), size);
  sqlite3_close(db); /* its cache holds the aborted pages */
  assert_int_equal(lmz_sqlstore_connect(ss, &db, (char[LMZ_ERRMSG_LEN]){0}), 0);
  assert_int_equal(scalar(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'u'"), 0);
  assert_int_equal(scalar(db, "SELECT sum(x) FROM t"), 3);
  sqlite3_close(db);
  ss_free(ss);
  /* a new store over the same keys finds the size and the data */
  db = open_db(f, &ss);
  assert_int_equal(lmz_sqlstore_size(ss), size);
  assert_int_equal(scalar(db, "SELECT sum(x) FROM t"), 3);
  sqlite3_close(db);
  ss_free(ss);
}

static void committed_versions_serve_reads_until_durable(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (7); COMMIT");
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_sqlstore_add_to_batch(ss, b), 0);
  lmz_sqlstore_turn_commit(ss, 1); /* accepted, not written yet */
  lmz_batch_free(b);               /* ...and never written: RocksDB is empty */
  assert_true(lmz_sqlstore_mem(ss) >= 2 * LMZ_SQLVFS_PAGE);
  sqlite3_close(db);
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_sqlstore_connect(ss, &db, err), 0); /* cold SQLite cache */
  assert_int_equal(scalar(db, "SELECT x FROM t"), 7);      /* from memory */
  lmz_sqlstore_trim(ss, 0);
  assert_true(lmz_sqlstore_mem(ss) > 0); /* seq 1 is not durable yet */
  lmz_sqlstore_trim(ss, 1);
  assert_true(lmz_sqlstore_mem(ss) <= 4 * (LMZ_SQLVFS_PAGE + 64)); /* delta bases */
  sqlite3_close(db);
  ss_free(ss);
}

static void vacuum_truncates_with_a_range_delete(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE big(b); "
              "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200) "
              "INSERT INTO big SELECT randomblob(3000) FROM c; CREATE TABLE keep(k); "
              "INSERT INTO keep VALUES ('kept'); COMMIT");
  commit_turn(f, ss);
  int before = chunks_on_disk(f);
  assert_true(before > 150);
  exec_ok(db, "BEGIN; DROP TABLE big; COMMIT");
  commit_turn(f, ss);
  exec_ok(db, "VACUUM");
  commit_turn(f, ss);
  int after = chunks_on_disk(f);
  assert_true(after < 10);
  assert_int_equal((uint64_t)after * LMZ_SQLVFS_PAGE, lmz_sqlstore_size(ss));
  sqlite3_close(db);
  ss_free(ss);
  db = open_db(f, &ss);
  assert_int_equal(scalar(db, "SELECT count(*) FROM keep WHERE k = 'kept'"), 1);
  assert_int_equal(scalar(db, "PRAGMA page_count") * 4096, (long long)lmz_sqlstore_size(ss));
  exec_ok(db, "PRAGMA integrity_check");
  sqlite3_close(db);
  ss_free(ss);
}

static void corrupt_chunk_is_an_error_not_a_crash(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (1); COMMIT");
  commit_turn(f, ss);
  sqlite3_close(db);
  ss_free(ss);
  uint8_t k[LMZ_KEY_MAX];
  int kl = lmz_sqlvfs_page_key(k, f->prefix, f->plen, 1);
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_batch_put(b, k, (size_t)kl, "short", 5), 0);
  int status = 1;
  assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  db = open_db(f, &ss);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "SELECT x FROM t", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
  }
  assert_int_equal(rc & 0xff, SQLITE_IOERR);
  assert_true(lmz_sqlstore_failed(ss));
  assert_non_null(strstr(lmz_sqlstore_errmsg(ss), "neither a page nor an encoded page"));
  sqlite3_close(db);
  ss_free(ss);
}

static void no_second_database_file(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  /* no authorizer here: the VFS itself refuses any other main database */
  assert_int_not_equal(sqlite3_exec(db, "ATTACH 'x.db' AS x; CREATE TABLE x.t(a)",
                                    NULL, NULL, NULL), SQLITE_OK);
  exec_ok(db, "CREATE TABLE t(x)");
  assert_int_not_equal(sqlite3_exec(db, "VACUUM INTO 'copy.db'", NULL, NULL, NULL), SQLITE_OK);
  sqlite3 *db2;
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_sqlstore_connect(ss, &db2, err), LMZ_EINVAL); /* one only */
  sqlite3_close(db);
  lmz_sqlstore_turn_abort(ss);
  ss_free(ss);
}

static void page_encoding(void **state) {
  (void)state;
  uint8_t page[LMZ_SQLVFS_PAGE], enc[LMZ_SQLVFS_PAGE], back[LMZ_SQLVFS_PAGE];
  memset(page, 0, sizeof page);
  memcpy(page, "header", 6);
  memcpy(page + 4000, "cells at the end", 16);
  memset(page + 100, 0x11, 10); /* a shorter zero run before the longest */
  size_t n = lmz_sqlvfs_encode_page(page, enc);
  assert_int_equal(n, 3 + 110 + (LMZ_SQLVFS_PAGE - 4000)); /* the run 110..4000 is gone */
  assert_int_equal(lmz_sqlvfs_decode_page(enc, n, back), 0);
  assert_memory_equal(back, page, sizeof page);
  for (size_t i = 0; i < sizeof page; i++) /* no zero run: stored raw */
    page[i] = (uint8_t)(i % 251 + 1);
  assert_int_equal(lmz_sqlvfs_encode_page(page, enc), LMZ_SQLVFS_PAGE);
  assert_int_equal(lmz_sqlvfs_decode_page(enc, LMZ_SQLVFS_PAGE, back), 0);
  assert_memory_equal(back, page, sizeof page);
  /* hostile values */
  uint8_t bad[8] = {0x01, 0x00, 0x10, 1, 2, 3, 4, 5}; /* offset 16 > 5 bytes */
  assert_int_equal(lmz_sqlvfs_decode_page(bad, sizeof bad, back), LMZ_EBADMSG);
  bad[0] = 0x02;
  bad[2] = 0;
  assert_int_equal(lmz_sqlvfs_decode_page(bad, sizeof bad, back), LMZ_EBADMSG);
  assert_int_equal(lmz_sqlvfs_decode_page(bad, 2, back), LMZ_EBADMSG);
  assert_int_equal(lmz_sqlvfs_decode_page(enc, LMZ_SQLVFS_PAGE + 1, back), LMZ_EBADMSG);
  bad[0] = 0x01; /* offset 0, 5 bytes: a valid page of 4091 zeros then data */
  assert_int_equal(lmz_sqlvfs_decode_page(bad, sizeof bad, back), 0);
  assert_memory_equal(back + LMZ_SQLVFS_PAGE - 5, bad + 3, 5);
}

/* Migration and drains move an actor as one dump of its key range
 * (store.h): the SQL pages travel with it, and the other node's store opens
 * the same database. */
static void database_moves_with_the_actor_dump(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (40), (2); COMMIT");
  commit_turn(f, ss);
  sqlite3_close(db);
  ss_free(ss);
  lmz_buf dump = LMZ_BUF_INIT;
  assert_true(lmz_store_export_actor(f->s, "DOC", 3, "a", 1, &dump) >= 2);
  char *dir2 = tl_mkdtemp("lmz-sqlvfs2");
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, dir2);
  o.sync = false;
  char err[LMZ_ERRMSG_LEN];
  lmz_store_t *s2;
  assert_int_equal(tl_store_open(&s2, &f->loop, &o, err), 0);
  lmz_batch *b = lmz_batch_new();
  assert_true(lmz_store_import(s2, dump.data, dump.len, b) >= 2);
  int status = 1;
  assert_int_equal(lmz_store_commit(s2, b, on_commit, &status), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(status, 0);
  ss = ss_new(s2, f->prefix, f->plen);
  assert_int_equal(lmz_sqlstore_connect(ss, &db, err), 0);
  assert_int_equal(scalar(db, "SELECT sum(x) FROM t"), 42);
  sqlite3_close(db);
  ss_free(ss);
  tl_store_close(s2);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  tl_rmtree(dir2);
  free(dir2);
  lmz_buf_free(&dump);
}

/* Like commit_turn, and returns the batch's bytes. */
static size_t commit_turn_bytes(struct fx *f, lmz_sqlstore_t *ss) {
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_sqlstore_add_to_batch(ss, b), 0);
  size_t bytes = lmz_batch_bytes(b);
  if (getenv("SQLVFS_TEST_VERBOSE"))
    fprintf(stderr, "batch: %zu ops\n", lmz_batch_count(b));
  int status = 1;
  assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
  lmz_sqlstore_turn_commit(ss, ++f->seq);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(status, 0);
  lmz_sqlstore_trim(ss, f->seq);
  return bytes;
}

static int deltas_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *arg) {
  (void)v, (void)vl;
  struct lmz_key_parts p;
  uint32_t idx;
  uint16_t n;
  assert_int_equal(lmz_key_parse(k, kl, &p), 0);
  assert_int_equal(lmz_sqlvfs_parse_chunk_key(p.key, p.key_len, &idx, &n), 0);
  *(int *)arg += n > 0;
  return 0;
}

static int deltas_on_disk(struct fx *f) {
  lmz_key_range r;
  assert_int_equal(lmz_key_list_range(&r, f->prefix, f->plen, LMZ_KEY_SPACE_FRAMEWORK,
                                      LMZ_SQLVFS_KEY_PREFIX, LMZ_SQLVFS_KEY_PREFIX_LEN), 0);
  int n = 0;
  assert_true(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper, r.upper_len, 0, false,
                             deltas_cb, &n) >= 0);
  return n;
}

static void insert_row(sqlite3 *db, int i) {
  char sql[256];
  snprintf(sql, sizeof sql, "BEGIN; INSERT INTO t(v) VALUES (printf('%%0100d', %d)); COMMIT", i);
  exec_ok(db, sql);
}

/* A one-row INSERT turn stores deltas of the pages it changed, not the
 * pages: a few hundred bytes instead of two pages (before deltas: ~2-4 KiB).
 * Chains are rewritten as whole pages before LMZ_SQLVFS_DELTA_MAX, and a
 * cold store (no page in memory) reads every row back. */
static void one_row_turns_write_deltas(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, v); COMMIT");
  commit_turn(f, ss);
  size_t total = 0, turns = 3 * LMZ_SQLVFS_DELTA_MAX;
  for (size_t i = 0; i < turns; i++) {
    insert_row(db, (int)i);
    size_t bytes = commit_turn_bytes(f, ss);
    assert_true(bytes < 2 * LMZ_SQLVFS_PAGE); /* one whole page at most */
    if (getenv("SQLVFS_TEST_VERBOSE"))
      fprintf(stderr, "turn %zu: %zu bytes\n", i, bytes);
    total += bytes;
    assert_true(deltas_on_disk(f) <= 2 * (int)LMZ_SQLVFS_DELTA_MAX);
  }
  assert_true(total / turns < 600); /* ~110 bytes of row + runs + rewrites */
  assert_true(deltas_on_disk(f) > 0);
  sqlite3_close(db);
  ss_free(ss);
  db = open_db(f, &ss); /* cold: bases plus deltas from RocksDB */
  assert_int_equal(scalar(db, "SELECT count(*) FROM t"), (long long)turns);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v = printf('%0100d', id - 1)"),
                   (long long)turns);
  exec_ok(db, "PRAGMA integrity_check");
  insert_row(db, (int)turns); /* the next delta numbers follow on from disk */
  commit_turn(f, ss);
  sqlite3_close(db);
  ss_free(ss);
  db = open_db(f, &ss);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t"), (long long)turns + 1);
  sqlite3_close(db);
  ss_free(ss);
}

/* An aborted turn's deltas never count: the next turn's delta takes the
 * number the aborted one would have had, and the data is the committed. */
static void aborted_turn_leaves_the_chain_alone(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(id INTEGER PRIMARY KEY, v); COMMIT");
  commit_turn(f, ss);
  insert_row(db, 0);
  commit_turn(f, ss);
  int before = deltas_on_disk(f);
  insert_row(db, 1);
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_sqlstore_add_to_batch(ss, b), 0); /* built, then dropped */
  lmz_batch_free(b);
  lmz_sqlstore_turn_abort(ss);
  sqlite3_close(db); /* its cache holds the aborted pages */
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(lmz_sqlstore_connect(ss, &db, err), 0);
  assert_int_equal(deltas_on_disk(f), before);
  insert_row(db, 2);
  commit_turn(f, ss);
  sqlite3_close(db);
  ss_free(ss);
  db = open_db(f, &ss);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t"), 2);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t WHERE v = printf('%0100d', 1)"), 0);
  exec_ok(db, "PRAGMA integrity_check");
  sqlite3_close(db);
  ss_free(ss);
}

/* A database in the format before deltas (every page a base: raw or
 * hole-encoded) opens, reads, and takes delta writes on top. The pages are
 * those of a real SQLite database (sqlite3_serialize), stored the way the
 * code before deltas stored them. */
static void database_without_deltas_still_opens(void **state) {
  struct fx *f = *state;
  sqlite3 *mem;
  assert_int_equal(sqlite3_open(":memory:", &mem), SQLITE_OK);
  exec_ok(mem, "PRAGMA page_size=4096; VACUUM; CREATE TABLE t(id INTEGER PRIMARY KEY, v);"
               "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300) "
               "INSERT INTO t(v) SELECT printf('%0100d', i) FROM c");
  sqlite3_int64 len = 0;
  unsigned char *img = sqlite3_serialize(mem, "main", &len, 0);
  assert_non_null(img);
  assert_true(len > 4 * LMZ_SQLVFS_PAGE && len % LMZ_SQLVFS_PAGE == 0);
  img[18] = img[19] = 1; /* legacy (rollback journal) file format, as the VFS keeps */
  lmz_batch *b = lmz_batch_new();
  uint8_t k[LMZ_KEY_MAX], enc[LMZ_SQLVFS_PAGE];
  for (sqlite3_int64 i = 0; i < len / LMZ_SQLVFS_PAGE; i++) {
    int kl = lmz_sqlvfs_page_key(k, f->prefix, f->plen, (uint32_t)i);
    size_t vl = i % 2 ? lmz_sqlvfs_encode_page(img + i * LMZ_SQLVFS_PAGE, enc)
                      : LMZ_SQLVFS_PAGE; /* raw and hole-encoded bases */
    assert_int_equal(lmz_batch_put(b, k, (size_t)kl,
                                   vl == LMZ_SQLVFS_PAGE ? img + i * LMZ_SQLVFS_PAGE : enc, vl), 0);
  }
  sqlite3_free(img);
  sqlite3_close(mem);
  int status = 1;
  assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(status, 0);
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  assert_int_equal(lmz_sqlstore_size(ss), (uint64_t)len);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t"), 300);
  insert_row(db, 300);
  commit_turn(f, ss);
  assert_true(deltas_on_disk(f) > 0);
  sqlite3_close(db);
  ss_free(ss);
  db = open_db(f, &ss);
  assert_int_equal(scalar(db, "SELECT count(*) FROM t"), 301);
  exec_ok(db, "PRAGMA integrity_check");
  sqlite3_close(db);
  ss_free(ss);
}

/* Hostile deltas in RocksDB (a corrupt import) fail the read with an error;
 * a delta without its base, or with a gap in the numbering, too. */
static void corrupt_delta_is_an_error_not_a_crash(void **state) {
  struct fx *f = *state;
  lmz_sqlstore_t *ss;
  sqlite3 *db = open_db(f, &ss);
  exec_ok(db, "BEGIN; CREATE TABLE t(x); INSERT INTO t VALUES (1); COMMIT");
  commit_turn(f, ss);
  sqlite3_close(db);
  ss_free(ss);
  static const uint8_t bad[][8] = {
      {0x02, 0x0f, 0xff, 0x00, 0x02, 1, 2, 0}, /* run past the page's end */
      {0x02, 0x00, 0x00, 0x00, 0x09, 1, 2, 3}, /* run past the value */
      {0x01, 0x00, 0x00, 0x00, 0x01, 1, 0, 0}, /* not a delta */
  };
  for (size_t i = 0; i <= LMZ_ARRAY_SIZE(bad); i++) {
    uint8_t k[LMZ_KEY_MAX];
    /* the last case: a well-formed delta 2 with no delta 1 (a gap) */
    int kl = lmz_sqlvfs_delta_key(k, f->prefix, f->plen, 1, i < LMZ_ARRAY_SIZE(bad) ? 1 : 2);
    lmz_batch *b = lmz_batch_new();
    if (i == LMZ_ARRAY_SIZE(bad)) {
      uint8_t k1[LMZ_KEY_MAX];
      int k1l = lmz_sqlvfs_delta_key(k1, f->prefix, f->plen, 1, 1);
      assert_int_equal(lmz_batch_delete(b, k1, (size_t)k1l), 0);
    }
    const uint8_t ok[] = {0x02, 0x00, 0x20, 0x00, 0x01, 7};
    assert_int_equal(i < LMZ_ARRAY_SIZE(bad) ? lmz_batch_put(b, k, (size_t)kl, bad[i], 8)
                                             : lmz_batch_put(b, k, (size_t)kl, ok, sizeof ok), 0);
    int status = 1;
    assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    db = open_db(f, &ss);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db, "SELECT x FROM t", -1, &st, NULL);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(st);
      sqlite3_finalize(st);
    }
    assert_int_equal(rc & 0xff, SQLITE_IOERR);
    assert_true(lmz_sqlstore_failed(ss));
    assert_non_null(strstr(lmz_sqlstore_errmsg(ss), "neither a page nor an encoded page"));
    sqlite3_close(db);
    ss_free(ss);
  }
}

static void delta_encoding(void **state) {
  (void)state;
  uint8_t old[LMZ_SQLVFS_PAGE], page[LMZ_SQLVFS_PAGE], enc[LMZ_SQLVFS_PAGE];
  for (size_t i = 0; i < sizeof old; i++)
    old[i] = (uint8_t)(i * 7);
  memcpy(page, old, sizeof page);
  page[3] ^= 1;
  page[6] ^= 1; /* 2 equal bytes between: one run 3..6 */
  memset(page + 4000, 0xee, 20);
  page[LMZ_SQLVFS_PAGE - 1] ^= 0xff;
  size_t n = lmz_sqlvfs_encode_delta(old, page, enc, sizeof enc);
  assert_int_equal(n, 1 + (4 + 4) + (4 + 20) + (4 + 1));
  uint8_t back[LMZ_SQLVFS_PAGE];
  memcpy(back, old, sizeof back);
  assert_int_equal(lmz_sqlvfs_apply_delta(enc, n, back), 0);
  assert_memory_equal(back, page, sizeof page);
  assert_int_equal(lmz_sqlvfs_encode_delta(old, page, enc, n - 1), 0); /* too big */
  assert_int_equal(lmz_sqlvfs_encode_delta(old, old, enc, sizeof enc), 1); /* no change */
  memcpy(back, old, sizeof back);
  assert_int_equal(lmz_sqlvfs_encode_delta(old, page, enc, sizeof enc), n);
  enc[n - 5] = 0x10; /* the last run now starts past the page */
  assert_int_equal(lmz_sqlvfs_apply_delta(enc, n, back), LMZ_EBADMSG);
  assert_memory_equal(back, old, sizeof back); /* untouched */
  assert_int_equal(lmz_sqlvfs_apply_delta(enc, 0, back), LMZ_EBADMSG);
  uint8_t k[LMZ_KEY_MAX], prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, "D", 1, "i", 1);
  int kl = lmz_sqlvfs_delta_key(k, prefix, (size_t)pl, 0x01020304, 0x0506);
  assert_int_equal(kl, pl + 1 + 10);
  uint32_t idx;
  uint16_t d;
  const uint8_t *user = k + pl + 1;
  assert_int_equal(lmz_sqlvfs_parse_chunk_key(user, 10, &idx, &d), 0);
  assert_int_equal(idx, 0x01020304);
  assert_int_equal(d, 0x0506);
  assert_int_equal(lmz_sqlvfs_parse_page_key(user, 10, &idx), LMZ_EINVAL);
  uint8_t base[LMZ_KEY_MAX]; /* a delta sorts after its base, before the next page */
  int bl = lmz_sqlvfs_page_key(base, prefix, (size_t)pl, 0x01020304);
  assert_true(memcmp(base, k, (size_t)bl) == 0 && kl > bl);
  bl = lmz_sqlvfs_page_key(base, prefix, (size_t)pl, 0x01020305);
  assert_true(memcmp(k, base, (size_t)bl) < 0);
  assert_int_equal(lmz_sqlvfs_parse_chunk_key((const uint8_t *)"sql:abcd\0\0", 10, &idx, &d),
                   LMZ_EINVAL); /* delta 0 does not exist */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(page_keys, fx_setup, fx_teardown),
      cmocka_unit_test(page_encoding),
      cmocka_unit_test_setup_teardown(pages_reach_rocksdb_only_through_the_batch, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(committed_versions_serve_reads_until_durable, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(vacuum_truncates_with_a_range_delete, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(corrupt_chunk_is_an_error_not_a_crash, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(no_second_database_file, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(database_moves_with_the_actor_dump, fx_setup, fx_teardown),
      cmocka_unit_test(delta_encoding),
      cmocka_unit_test_setup_teardown(one_row_turns_write_deltas, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(aborted_turn_leaves_the_chain_alone, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(database_without_deltas_still_opens, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(corrupt_delta_is_an_error_not_a_crash, fx_setup, fx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
