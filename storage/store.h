/* storage/store.h - the per-node RocksDB store: synchronous reads, write
 * batches and group commit on a dedicated storage thread (DESIGN.md §3, §6).
 *
 * One store per node (one RocksDB, default column family, lz4 + zstd
 * bottommost, bloom filters, LRU block cache). Keys follow storage/keys.h.
 *
 * THREADS. Every function here is called on the thread running `loop` (the
 * "loop thread"), except the lmz_batch_* functions, which touch no shared
 * state and may be called on any thread for a batch that thread owns.
 * RocksDB writes run on one storage thread owned by the store (never on the
 * libuv threadpool, which raft's disk I/O needs); completions are posted
 * back with a uv_async_t and every callback runs on the loop thread.
 *
 * READS (lmz_store_get, lmz_store_scan) are synchronous RocksDB calls on the
 * loop thread (microseconds, served by memtable/block cache). They see every
 * batch whose commit callback has run, and possibly later batches that are
 * written but not yet reported; never a part of a batch (batches are atomic).
 *
 * GROUP COMMIT. lmz_store_commit() queues a batch. The storage thread takes
 * every batch queued while the previous write was in progress (up to
 * max_batch_bytes), merges them into ONE rocksdb_write (with sync = 1 when
 * opts.sync: one WAL fsync for many turns), then reports each batch's
 * completion in commit order. An empty batch completes in order too: it is a
 * barrier ("everything committed before me is written", and durable when
 * opts.sync).
 *
 * WRITE ERRORS AND CHAINS. A failed write fails every batch of its group;
 * later groups are still attempted. Batches that depend on each other (one
 * actor's turns: each may have read the not yet durable writes of the ones
 * before) share a chain (lmz_chain_new, lmz_batch_set_chain). Once a batch
 * of a chain has failed, every later batch of that chain fails too
 * (LMZ_ESTORAGE) WITHOUT being written, even if the disk has recovered: a
 * batch computed from lost writes never reaches the disk. The chain stays
 * broken; its owner starts a new one after it has dropped what it derived
 * from the lost writes (actor/turn.c drops the actor's cache).
 *
 * LIFETIME. The caller allocates the store; lmz_store_init() opens it,
 * lmz_store_close() ends it (see there). The store keeps `loop` alive (uv_ref)
 * only while commits are in flight, so uv_run(loop, UV_RUN_DEFAULT) returns
 * once they have all been reported.
 *
 * ERRORS (core/err.h): LMZ_ESTORAGE for RocksDB failures (text in
 * s->errmsg), LMZ_EINVAL / LMZ_ETOOBIG for bad arguments, LMZ_ENOMEM,
 * LMZ_ECANCELED once close has started, libuv/errno codes for mkdir and
 * thread creation. */
#ifndef LMZ_STORAGE_STORE_H
#define LMZ_STORAGE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "core/err.h"

/* Limits on raw keys and values given to a batch (LMZ_ETOOBIG beyond), and
 * on a whole batch. Actor keys are much shorter (storage/keys.h). */
#define LMZ_STORE_KEY_MAX (16u * 1024)
#define LMZ_STORE_VALUE_MAX (64u * 1024 * 1024)
#define LMZ_BATCH_MAX_BYTES (512u * 1024 * 1024)

typedef struct lmz_store_s lmz_store_t;
typedef struct lmz_batch lmz_batch;
typedef struct lmz_chain lmz_chain;
typedef void (*lmz_store_close_cb)(lmz_store_t *s);

/* A FIFO of batches linked through `next` (private to storage/). */
struct lmz__bqueue {
  struct lmz_batch *head;
  struct lmz_batch *tail;
};

/* The store handle (README "Code conventions"): the caller allocates it.
 * The first three fields are public; the rest is private to storage/
 * (store.c, commit.c; RocksDB's types are only named here, not included). */
struct lmz_store_s {
  void *data;                  /* public: for the user */
  uv_loop_t *loop;             /* read-only */
  char errmsg[LMZ_ERRMSG_LEN]; /* read-only: text of the last error */

  /* RocksDB; db is NULL once closed. Read-only after open except in close. */
  struct rocksdb_t *db;
  struct rocksdb_options_t *options;
  struct rocksdb_block_based_table_options_t *bbt;
  struct rocksdb_cache_t *cache;
  struct rocksdb_readoptions_t *ro;  /* gets (loop thread) */
  struct rocksdb_writeoptions_t *wo; /* storage thread */
  bool sync;
  size_t max_batch_bytes;

  /* Shared with the storage thread, guarded by mu. */
  uv_mutex_t mu;
  uv_cond_t cond;             /* signalled on new pending work / closing */
  struct lmz__bqueue pending; /* queued, not yet taken by the thread */
  struct lmz__bqueue done;    /* written, callbacks not yet run */
  bool closing;               /* set once by close; the thread drains, exits */
  bool paused;                /* test hook: thread takes nothing while set */
  int fail_writes;            /* test hook: fail the next n group writes */

  /* Written by the storage thread, read anywhere. */
  _Atomic uint64_t commit_count;
  _Atomic uint64_t sync_count;

  /* Loop thread only. */
  uv_async_t async; /* storage thread -> loop: "done is not empty" */
  uv_thread_t thread;
  struct lmz__bqueue ready; /* taken from done, callbacks being run */
  size_t inflight;          /* committed, callback not yet run */
  size_t inflight_bytes;
  bool cancel; /* close started: commits get LMZ_ECANCELED */
  lmz_store_close_cb close_cb;
};

/* Start from lmz_store_opts_init(): a zeroed struct would mean sync = false. */
struct lmz_store_opts {
  const char *path;       /* RocksDB directory, created (with parents) if
                             missing; read only during open */
  bool sync;              /* true (default): a commit is reported only after
                             its WAL write is fsynced. false: written to the
                             WAL (survives a process crash, not power loss) */
  size_t cache_bytes;     /* block cache; 0 = default (64 MiB) */
  size_t max_batch_bytes; /* cap of one merged group write (a single larger
                             batch is still written alone); 0 = 4 MiB */
};

/* Fills `o` with the defaults above for `path` (borrowed: it must stay valid
 * until lmz_store_init() returns). */
void lmz_store_opts_init(struct lmz_store_opts *o, const char *path);

/* Opens (creating if needed) the store at opts->path into the caller's `s`
 * and starts its storage thread. `errmsg` (LMZ_ERRMSG_LEN bytes, may be
 * NULL) receives the reason on failure. Returns 0, or LMZ_EINVAL (no path),
 * LMZ_ENOMEM, LMZ_ESTORAGE (RocksDB refused: corrupt, locked by another
 * process, ...), a libuv code (mkdir, thread). On error nothing needs
 * closing and `s` may be freed at once. Loop thread. */
int lmz_store_init(lmz_store_t *s, uv_loop_t *loop,
                   const struct lmz_store_opts *opts, char *errmsg);

/* Closes the store, on the loop thread; steps 1-4 run before it returns:
 *  1. new commits are refused with LMZ_ECANCELED from now on;
 *  2. the storage thread writes every commit already queued (normal group
 *     commit) and exits;
 *  3. every callback not yet run is run HERE, before close returns, in
 *     commit order, with the real result: 0 when written (and synced when
 *     opts.sync), LMZ_ESTORAGE when the write failed. Nothing queued is
 *     dropped. Reads still work inside those callbacks; commits get
 *     LMZ_ECANCELED;
 *  4. RocksDB is closed (its memtable stays in the WAL, nothing is lost).
 * `s` must not be used after close returns. Its memory is the caller's again
 * when `cb` (may be NULL) runs, in the loop's next close phase (the store's
 * uv_async_t is closed with uv_close), so run the loop once more before
 * uv_loop_close() or freeing `s`. May be called from inside a commit
 * callback. Call once. */
void lmz_store_close(lmz_store_t *s, lmz_store_close_cb cb);

/* Reads `key`. On success replaces out's content with the value (out->len =
 * value length; capacity kept) and returns 0. Returns LMZ_ENOTFOUND (out
 * unchanged), LMZ_ESTORAGE (s->errmsg), LMZ_ENOMEM, LMZ_ECANCELED (closed).
 * `key` is borrowed for the call. Loop thread. */
int lmz_store_get(lmz_store_t *s, const void *key, size_t klen, lmz_buf *out);

/* Called for each key/value of a scan. Both pointers are valid only during
 * the call. Return 0 to continue, non-zero to stop the scan. The callback may
 * call lmz_store_get/scan/commit, but not lmz_store_close. */
typedef int (*lmz_store_scan_cb)(const uint8_t *key, size_t klen,
                                 const uint8_t *val, size_t vlen, void *arg);

/* Visits the keys in [lower, upper) in ascending order (descending when
 * `reverse`), at most `limit` of them (0 = no limit). lower == NULL means
 * from the first key; upper == NULL means to the last. The view is a
 * consistent snapshot taken at the start of the scan. Bounds are borrowed
 * for the call. Returns the number of entries passed to `cb` (>= 0), or
 * LMZ_ESTORAGE (s->errmsg), LMZ_EINVAL (cb NULL), LMZ_ECANCELED (closed).
 * Loop thread. */
int lmz_store_scan(lmz_store_t *s, const void *lower, size_t lower_len,
                   const void *upper, size_t upper_len, size_t limit,
                   bool reverse, lmz_store_scan_cb cb, void *arg);

/* Whether [lower, upper) holds no key (bounds as lmz_store_scan). Reads at
 * most one entry. Returns 1 (empty), 0 (a key exists), or a scan error:
 * callers that act on "empty" (releasing an actor's placement) must treat
 * an error as "not empty". Loop thread. */
int lmz_store_range_empty(lmz_store_t *s, const void *lower, size_t lower_len,
                          const void *upper, size_t upper_len);

/* --- Batches ------------------------------------------------------------ */

/* A batch is an ordered list of puts/deletes applied atomically by one
 * commit. Later operations win over earlier ones on the same key. Returns a
 * new empty batch, or NULL when out of memory. Any thread. */
lmz_batch *lmz_batch_new(void);
/* Frees a batch the caller still owns (never one handed to a successful
 * lmz_store_commit: the store frees those). NULL is ignored. */
void lmz_batch_free(lmz_batch *b);

/* Append an operation; key/value bytes are copied. Return 0, LMZ_EINVAL
 * (b NULL, NULL pointer with non-zero length, lo > hi for a range),
 * LMZ_ETOOBIG (key > LMZ_STORE_KEY_MAX, value > LMZ_STORE_VALUE_MAX, batch
 * over LMZ_BATCH_MAX_BYTES) or LMZ_ENOMEM. On error the batch is unchanged.
 * delete_range removes [lo, hi); with lo == hi it is a no-op and nothing is
 * appended. */
int lmz_batch_put(lmz_batch *b, const void *k, size_t klen, const void *v,
                  size_t vlen);
int lmz_batch_delete(lmz_batch *b, const void *k, size_t klen);
int lmz_batch_delete_range(lmz_batch *b, const void *lo, size_t lo_len,
                           const void *hi, size_t hi_len);

/* Number of operations appended so far. */
size_t lmz_batch_count(const lmz_batch *b);
/* Encoded size of the batch (keys, values and per-op headers), the unit of
 * max_batch_bytes and of lmz_store_queued(). */
size_t lmz_batch_bytes(const lmz_batch *b);
/* Empties the batch for reuse (keeps its memory and its chain). */
void lmz_batch_clear(lmz_batch *b);

/* --- Batch wire format (replication, cluster/repl.h) ------------------- */

/* The portable encoding of a batch (version 1; varint = keys.h LEB128):
 *
 *   0x01 | varint(n_ops) | n_ops x op       and nothing after it
 *   op:  0x01 put          | varint(kl) key | varint(vl) value
 *        0x02 delete       | varint(kl) key
 *        0x03 delete_range | varint(ll) lo  | varint(hl) hi     ([lo, hi))
 *
 * Operations keep their batch order. */
struct lmz_key_range; /* storage/keys.h */

/* Appends the encoding of `b` (borrowed) to `out`. With `keep` non-NULL only
 * the operations inside [keep->lower, keep->upper) are written: puts and
 * deletes outside it are skipped, a delete_range is clipped to it (node-level
 * keys such as the alarm index stay out of an actor's record). Returns 0 or
 * LMZ_EINVAL / LMZ_ENOMEM / LMZ_ETOOBIG (out->max); on error `out` is as it
 * was. Any thread. */
int lmz_batch_serialize(const lmz_batch *b, const struct lmz_key_range *keep,
                        lmz_buf *out);

/* Parses an encoding (hostile input, borrowed for the call) and appends its
 * operations to `b`, only if all of it is valid and every operation stays
 * inside `range`, an actor's whole range (keys.h lmz_key_actor_range):
 * put/delete keys must be that actor's keys (its prefix, a space below
 * LMZ_KEY_SPACE_COUNT, a user key within LMZ_KEY_USER_MAX); a delete_range
 * must lie inside [range->lower, range->upper] with lo <= hi.
 * Returns the number of operations (>= 0) or LMZ_EBADMSG (malformed),
 * LMZ_EBADVERSION, LMZ_EACCESS (an operation outside the range),
 * LMZ_ETOOBIG (store.h limits), LMZ_ENOMEM, LMZ_EINVAL (b or range NULL);
 * on error `b` is left as it was and `errmsg` (LMZ_ERRMSG_LEN bytes, may be
 * NULL) says why. Any thread. */
int lmz_batch_deserialize(lmz_batch *b, const void *data, size_t len,
                          const struct lmz_key_range *range, char *errmsg);

/* --- Chains (see WRITE ERRORS AND CHAINS above) ------------------------- */

/* A new unbroken chain with one reference (the caller's), or NULL when out
 * of memory. Loop thread, like every chain function. */
lmz_chain *lmz_chain_new(void);
/* Drops one reference; the chain is freed with the last one. NULL ignored. */
void lmz_chain_unref(lmz_chain *c);
/* Puts `b` on chain `c` (NULL: on no chain), taking a reference that the
 * batch drops when it is freed; a batch is on at most one chain. A batch on
 * a chain must be freed on the loop thread (the store does so after its
 * callback). */
void lmz_batch_set_chain(lmz_batch *b, lmz_chain *c);

/* --- Group commit ------------------------------------------------------- */

/* Called on the loop thread, in commit order, exactly once per successful
 * lmz_store_commit(): status 0 (written; synced when opts.sync) or
 * LMZ_ESTORAGE (the group's write failed, or an earlier batch of the
 * batch's chain failed and it was not written; s->errmsg holds the text
 * during the callback). Never called from inside lmz_store_commit(). */
typedef void (*lmz_store_commit_cb)(lmz_store_t *s, int status, void *arg);

/* Queues `b` for the storage thread. On 0 the store owns `b` (it frees it
 * after the callback) and `cb` (may be NULL) will run exactly once. On error
 * the caller still owns `b` and `cb` never runs: LMZ_EINVAL (s or b NULL),
 * LMZ_ECANCELED (close has started). Loop thread. */
int lmz_store_commit(lmz_store_t *s, lmz_batch *b, lmz_store_commit_cb cb,
                     void *arg);

/* Writes `b` (borrowed; its chain is ignored) at once, on the calling
 * thread: one rocksdb_write with the store's sync option, so on 0 the
 * batch is in the memtable (every later read sees it) and, when opts.sync,
 * on disk. It does not wait for the storage thread: commits queued before
 * it may land after it, so use it only for keys no queued commit touches.
 * For rare repairs (actor/fresh.c), not for turns: an fsync on the loop
 * thread stalls it. Returns 0, LMZ_ESTORAGE (s->errmsg), LMZ_ECANCELED
 * (closed). Loop thread. */
int lmz_store_write_now(lmz_store_t *s, const lmz_batch *b);

/* Statistics (loop thread). commit_count: commits the storage thread has
 * finished (written or failed; reported or about to be). sync_count:
 * rocksdb_write calls made for them (each one a WAL fsync when opts.sync;
 * groups made only of empty batches need none). commit_count / sync_count
 * is the average group size. */
uint64_t lmz_store_commit_count(const lmz_store_t *s);
uint64_t lmz_store_sync_count(const lmz_store_t *s);
/* Commits queued or being written whose callbacks have not run yet, and
 * their total lmz_batch_bytes(); for backpressure. Loop thread. */
size_t lmz_store_queued(const lmz_store_t *s, size_t *bytes);

/* --- Actor export / import (migration) ---------------------------------- */

/* Dump format (version 1), all lengths unsigned LEB128 (keys.h varints):
 *
 *   "LMZA" | 0x01 | varint(bl) binding | varint(il) instance
 *   then per key, ascending and unique:
 *     0x01 | varint(kl) rel_key | varint(vl) value
 *        rel_key = space byte + user key (the key minus the actor prefix)
 *   then 0x00 | varint(number of entries)   and nothing after it.
 */

/* Appends the dump of every key of actor (binding, instance) to `out` (a
 * consistent snapshot). Returns the number of entries (>= 0), or
 * LMZ_EINVAL (names beyond keys.h limits), LMZ_ESTORAGE, LMZ_ENOMEM,
 * LMZ_ETOOBIG (out->max reached), LMZ_ECANCELED. On error `out` may hold a
 * partial dump; discard it. Loop thread. */
int lmz_store_export_actor(lmz_store_t *s, const char *binding,
                           size_t binding_len, const char *instance,
                           size_t instance_len, lmz_buf *out);

/* Validates a dump (hostile input) and, only if all of it is valid, appends
 * to `b`: a delete_range of the actor's whole range (the dump replaces the
 * actor's state) then one put per entry. Commit `b` to apply it atomically.
 * Returns the number of entries (>= 0), or LMZ_EBADMSG (malformed: bad
 * magic, truncated, lengths over the keys.h limits, reserved space byte,
 * unsorted or duplicate keys, wrong count, trailing bytes),
 * LMZ_EBADVERSION, LMZ_ENOMEM, LMZ_ETOOBIG, with the reason in s->errmsg.
 * On error `b` is left as it was. `data` is borrowed for the call.
 * Loop thread (uses s->errmsg only). */
int lmz_store_import(lmz_store_t *s, const void *data, size_t len,
                     lmz_batch *b);

/* Reads the actor named by a dump's header without validating the rest.
 * The name pointers borrow from `data`. Returns 0 or LMZ_EBADMSG /
 * LMZ_EBADVERSION. Pure; any thread. */
int lmz_store_dump_actor(const void *data, size_t len, const char **binding,
                         size_t *binding_len, const char **instance,
                         size_t *instance_len);

#endif
