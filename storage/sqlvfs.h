/* storage/sqlvfs.h - SQLite databases whose pages are keys in an actor's own
 * key range (DESIGN.md section 3.1).
 *
 * One lmz_sqlstore_t per durable object that uses SQL. It is the "file" of a
 * SQLite connection opened on the "lmz" VFS (lmz_sqlstore_connect). The file
 * is cut into fixed 4 KiB chunks (SQLite's page size is pinned to the same
 * value, so one chunk = one page); chunk i is one RocksDB key in the actor's
 * framework space:
 *
 *   +--------------+------+-----+-----+-----+-----+--------------------+
 *   | actor prefix | 0x00 | 's' | 'q' | 'l' | ':' | chunk index u32 BE |
 *   +--------------+------+-----+-----+-----+-----+--------------------+
 *     keys.h         space  \____ sub-prefix ____/   4 B, big-endian so
 *                    (framework)                     keys sort by offset
 *   value: the page (LMZ_SQLVFS_PAGE bytes) as SQLite wrote it, or, when
 *   it holds a run of zero bytes (the free space in the middle of a b-tree
 *   page: Debian's SQLite zeroes freed space), the page without its longest
 *   zero run:
 *
 *     +------+---------------+------------------------------------------+
 *     | 0x01 | run offset    | page[0, off) then page[off + run, PAGE)   |
 *     |      | u16 BE (off)  |  (PAGE - run bytes)                       |
 *     +------+---------------+------------------------------------------+
 *       1 B     2 B             value length = 3 + PAGE - run  (< PAGE)
 *
 *   A value of exactly PAGE bytes is a raw page; anything else must decode
 *   (lmz_sqlvfs_decode_page) or the read fails. A page whose run is short
 *   is stored raw. This keeps a turn that adds one row to a half-empty page
 *   from writing 4 KiB to the WAL.
 *
 * DELTAS. A page rewritten by a turn is usually stored as a delta against
 * its stored version, under the base key followed by the delta's number
 * n = 1, 2, ... (u16 BE), so it sorts right after its base:
 *
 *   key:   actor prefix | 0x00 | "sql:" | chunk index u32 BE | n u16 BE
 *   value: | 0x02 | runs of ( offset u16 BE | length u16 BE | bytes ) |
 *
 * The page is its base with deltas 1..N applied in order (one scan of the
 * chunk's key range). A one-row INSERT changes ~150 bytes of its leaf page
 * and 8 bytes of page 1 (SQLite's change counters), so its turn writes
 * ~200 bytes instead of two whole pages. When a chain would reach
 * LMZ_SQLVFS_DELTA_MAX deltas or PAGE/2 delta bytes, the turn stores the
 * whole page again and deletes the chain (point deletes) in the same batch.
 * Databases written before deltas existed (bases only) read unchanged.
 *
 * The file size is not stored: it is (last chunk index + 1) * page, found
 * with one reverse scan when the store is created; truncation deletes the
 * chunks beyond the end in the same batch. Because the pages are ordinary
 * keys of the actor, export, drain and replication carry them unchanged.
 *
 * VERSIONS OF A PAGE (newest first), read in this order:
 *   1. the current turn's version (xWrite during the turn) - not committed;
 *   2. the version of an earlier turn whose batch is committed but maybe
 *      not yet durable (tagged with its commit sequence number; RocksDB may
 *      not show it yet, so it is kept until lmz_sqlstore_trim says durable);
 *   3. RocksDB.
 * SQLite's own page cache (cache_size) sits above all of this; this layer
 * holds only what RocksDB cannot serve yet. A chunk beyond the current file
 * size reads as zeros without looking further (after a truncation RocksDB
 * may still hold the old chunk until the delete is durable).
 *
 * THE TURN. SQLite writes dirty pages (at COMMIT, or when its cache spills)
 * into version 1. lmz_sqlstore_add_to_batch() appends those pages (and the
 * truncation's delete_range) to the turn's batch; after lmz_store_commit()
 * accepted the batch, lmz_sqlstore_turn_commit() moves them to version 2.
 * lmz_sqlstore_turn_abort() drops version 1 (a failed turn); the caller must
 * then also drop the SQLite connection's page cache (close it), which may
 * hold the same uncommitted pages.
 *
 * No journal: SQLite runs with journal_mode=MEMORY (its rollback journal
 * lives in its own memory) and the VFS declares SQLITE_IOCAP_BATCH_ATOMIC;
 * the turn's batch is the atomic unit. Temporary files (statement journals,
 * sorter, temp tables) are in-memory files, capped. Every other file (a
 * second main database: ATTACH, VACUUM INTO) cannot be opened.
 *
 * Threads: a store and its connection are used on one thread (the actor's
 * loop thread). Registration of the VFS is thread-safe.
 *
 * Errors: 0, LMZ_ENOMEM, LMZ_ESTORAGE (RocksDB; text in errmsg),
 * LMZ_EINVAL, LMZ_EIO (SQLite refused to open; text in errmsg). */
#ifndef LMZ_STORAGE_SQLVFS_H
#define LMZ_STORAGE_SQLVFS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/hmap.h"
#include "storage/keys.h"
#include "storage/store.h"

#define LMZ_SQLVFS_NAME "lmz"
#define LMZ_SQLVFS_PAGE 4096u
#define LMZ_SQLVFS_KEY_PREFIX "sql:"
#define LMZ_SQLVFS_KEY_PREFIX_LEN 4u
/* A temporary (in-memory) file may not grow past this. */
#define LMZ_SQLVFS_TEMP_MAX (256u * 1024 * 1024)
/* Deltas stored after one page's base at most (reading applies them all). */
#define LMZ_SQLVFS_DELTA_MAX 32u

typedef struct lmz_sqlstore_s lmz_sqlstore_t;

/* Registers the "lmz" VFS with SQLite (not as the default). Idempotent and
 * thread-safe. Returns 0 or LMZ_EIO. */
int lmz_sqlvfs_register(void);

/* Writes the key of chunk `idx` of the actor whose prefix is given into out
 * (LMZ_KEY_MAX bytes). Returns its length or LMZ_EINVAL. */
int lmz_sqlvfs_page_key(uint8_t *out, const uint8_t *prefix,
                        size_t prefix_len, uint32_t idx);
/* Writes the key of delta n (>= 1) of chunk idx (DELTAS above). Returns its
 * length or LMZ_EINVAL. */
int lmz_sqlvfs_delta_key(uint8_t *out, const uint8_t *prefix,
                         size_t prefix_len, uint32_t idx, uint16_t n);
/* Parses a chunk key's user part (the bytes after the space byte): returns
 * 0 and *idx, or LMZ_EINVAL when it is not "sql:" + 4 bytes. Hostile input
 * is fine. */
int lmz_sqlvfs_parse_page_key(const uint8_t *user_key, size_t len,
                              uint32_t *idx);
/* The same for a base or a delta key: 0 with *idx and *n (0 = the base,
 * else the delta's number), or LMZ_EINVAL. Hostile input is fine. */
int lmz_sqlvfs_parse_chunk_key(const uint8_t *user_key, size_t len,
                               uint32_t *idx, uint16_t *n);

/* Encodes page (LMZ_SQLVFS_PAGE bytes) into out (LMZ_SQLVFS_PAGE bytes):
 * returns the value's length (PAGE = raw copy, less = zero run removed). */
size_t lmz_sqlvfs_encode_page(const uint8_t *page, uint8_t *out);
/* Decodes a stored value into out (LMZ_SQLVFS_PAGE bytes). Hostile input is
 * fine: returns 0, or LMZ_EBADMSG (wrong tag, lengths that do not add up). */
int lmz_sqlvfs_decode_page(const uint8_t *val, size_t len, uint8_t *out);

/* Encodes the changes from old to page (PAGE bytes each) as a delta value
 * into out: returns its length, or 0 when it would exceed cap bytes. */
size_t lmz_sqlvfs_encode_delta(const uint8_t *old, const uint8_t *page,
                               uint8_t *out, size_t cap);
/* Applies a delta value to page (PAGE bytes). Hostile input is fine: 0, or
 * LMZ_EBADMSG (wrong tag, a run outside the page or the value) with page
 * untouched. */
int lmz_sqlvfs_apply_delta(const uint8_t *val, size_t len, uint8_t *page);

/* A handle (README "Code conventions"), caller-allocated (actor/sql.c
 * embeds it); the fields are private to sqlvfs.c. */
struct lmz__sqlstore_chunk;
struct lmz_sqlstore_s {
  lmz_store_t *store;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  size_t prefix_len;
  lmz_hmap chunks; /* idx -> struct lmz__sqlstore_chunk * */
  struct lmz__sqlstore_chunk *dirty;
  uint64_t size;           /* current size (the turn's view) */
  uint64_t committed_size; /* size after the last committed turn */
  uint64_t trunc_chunks;   /* chunks after the turn's lowest truncation */
  bool truncated;          /* the turn truncated (trunc_chunks is valid) */
  bool failed;
  bool connected;
  size_t mem;
  uint64_t pages_read, pages_written;
  uint64_t last_seq; /* of the last committed turn */
  char errmsg[LMZ_ERRMSG_LEN];
};

/* Initializes the caller's `ss` as the store of one actor over `s`
 * (borrowed: must outlive it). `prefix` is copied. Reads the current file
 * size from RocksDB. Returns 0, LMZ_EINVAL, LMZ_ESTORAGE (errmsg); on error
 * `ss` holds nothing and may be freed at once. */
int lmz_sqlstore_init(lmz_sqlstore_t *ss, lmz_store_t *s, const uint8_t *prefix,
                      size_t prefix_len, char *errmsg);
/* Releases what the store holds (synchronous); its connection must be
 * closed already. The memory is the caller's again. NULL ignored. */
void lmz_sqlstore_close(lmz_sqlstore_t *ss);

/* Opens a SQLite connection whose main database is this store (at most one
 * open connection per store; SQLITE_OPEN_NOMUTEX: use it on one thread at a
 * time). Runs nothing on it. Returns 0 and *db, or
 * LMZ_EIO / LMZ_ENOMEM (errmsg); on error *db is NULL. */
int lmz_sqlstore_connect(lmz_sqlstore_t *ss, sqlite3 **db, char *errmsg);

/* The file size as the current turn sees it, in bytes. */
uint64_t lmz_sqlstore_size(const lmz_sqlstore_t *ss);
/* True when the current turn wrote or truncated anything. */
bool lmz_sqlstore_dirty(const lmz_sqlstore_t *ss);
/* True when something made the turn's SQL state untrustworthy (a RocksDB
 * read error, SQLite rolled back an atomic batch): the turn must fail. */
bool lmz_sqlstore_failed(const lmz_sqlstore_t *ss);
/* Text of the last error of this store. */
const char *lmz_sqlstore_errmsg(const lmz_sqlstore_t *ss);

/* Appends the turn's page writes (and a delete_range for a truncation) to
 * b. Returns 0, or the lmz_batch_* error (b may then hold some of them:
 * the caller frees it). */
int lmz_sqlstore_add_to_batch(lmz_sqlstore_t *ss, lmz_batch *b);
/* The batch was accepted as commit `seq`: the turn's versions become the
 * committed-not-yet-durable versions. Cannot fail. */
void lmz_sqlstore_turn_commit(lmz_sqlstore_t *ss, uint64_t seq);
/* Drops the turn's versions and restores the size before the turn. */
void lmz_sqlstore_turn_abort(lmz_sqlstore_t *ss);
/* Frees the committed versions with seq <= durable_seq (RocksDB has them),
 * but keeps up to 4 pages of the last committed turn as the bases of the
 * next deltas (bounded to 64 MiB per process). */
void lmz_sqlstore_trim(lmz_sqlstore_t *ss, uint64_t durable_seq);
/* Bytes of page versions held in memory (not SQLite's own cache). */
size_t lmz_sqlstore_mem(const lmz_sqlstore_t *ss);

/* Counters since creation: chunks read from RocksDB, whole chunks put in
 * batches (deltas not counted). */
void lmz_sqlstore_counters(const lmz_sqlstore_t *ss, uint64_t *pages_read,
                           uint64_t *pages_written);

#endif
