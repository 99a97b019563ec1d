/* storage/store.c - open/close of the node's RocksDB, synchronous reads.
 *
 * Happy path: lmz_store_init() creates the directory, opens RocksDB with the
 * options of c-deps-guide §3 (lz4, zstd bottommost, full bloom filters,
 * LRU block cache holding index and filter blocks), then starts the storage
 * thread (commit.c). Gets and scans run directly on the loop thread.
 * lmz_store_close() drains the commit queue, runs the remaining callbacks,
 * closes RocksDB and uv_close()s the async handle; the handle's close
 * callback runs the caller's close_cb, which owns the memory again.
 *
 * Failure modes:
 *  1. mkdir fails (permissions, a file in the way): its errno as a libuv
 *     code, with the path in errmsg.
 *  2. RocksDB open fails (corruption, LOCK held by another process/store):
 *     LMZ_ESTORAGE with RocksDB's text; every option object is destroyed.
 *  3. Read errors (I/O, corruption) or iterator errors after a scan:
 *     LMZ_ESTORAGE with the text in s->errmsg; RocksDB strings are freed.
 *  4. Reads after close: LMZ_ECANCELED (db is NULL) - only reachable from a
 *     callback run by close itself, which still has the db. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/store_int.h"

#define DEFAULT_CACHE_BYTES (64u << 20)
#define DEFAULT_MAX_BATCH_BYTES (4u << 20)

int lmz__err_from_rocksdb(char *err, char *errmsg, const char *what) {
  if (errmsg)
    lmz__errmsg_printf(errmsg, "%s: %s", what, err ? err : "unknown error");
  rocksdb_free(err);
  return LMZ_ESTORAGE;
}

void lmz_store_opts_init(struct lmz_store_opts *o, const char *path) {
  memset(o, 0, sizeof *o);
  o->path = path;
  o->sync = true;
  o->cache_bytes = DEFAULT_CACHE_BYTES;
  o->max_batch_bytes = DEFAULT_MAX_BATCH_BYTES;
}

/* mkdir -p: creates every missing component of `path`. */
static int mkdir_p(const char *path, char *errmsg) {
  char tmp[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof tmp) {
    lmz__errmsg_printf(errmsg, "store path is empty or too long");
    return LMZ_EINVAL;
  }
  memcpy(tmp, path, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (tmp[i] != '/' && tmp[i] != '\0')
      continue;
    char c = tmp[i];
    tmp[i] = '\0';
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
      int e = errno;
      lmz__errmsg_printf(errmsg, "mkdir %s: %s", tmp, strerror(e));
      return -e; /* libuv codes are negated errno on unix */
    }
    tmp[i] = c;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    lmz__errmsg_printf(errmsg, "store path %s is not a directory", path);
    return LMZ_EINVAL;
  }
  return 0;
}

/* Options per c-deps-guide §3. Keeps the cache and table options in `s` so
 * they can be destroyed after the db (the cache must outlive it). */
static void make_options(lmz_store_t *s, const struct lmz_store_opts *o) {
  rocksdb_options_t *opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(opt, 1);
  rocksdb_options_increase_parallelism(opt, 2);
  rocksdb_options_optimize_level_style_compaction(opt, 64u << 20);
  rocksdb_options_set_compression(opt, rocksdb_lz4_compression);
  rocksdb_options_set_bottommost_compression(opt, rocksdb_zstd_compression);
  rocksdb_options_set_keep_log_file_num(opt, 4); /* RocksDB's LOG files */
  s->cache = rocksdb_cache_create_lru(o->cache_bytes ? o->cache_bytes
                                                     : DEFAULT_CACHE_BYTES);
  s->bbt = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(s->bbt, s->cache);
  rocksdb_block_based_options_set_filter_policy(
      s->bbt, rocksdb_filterpolicy_create_bloom_full(10)); /* owned by bbt */
  rocksdb_block_based_options_set_cache_index_and_filter_blocks(s->bbt, 1);
  rocksdb_options_set_block_based_table_factory(opt, s->bbt);
  s->options = opt;
}

static void destroy_rocksdb(lmz_store_t *s) {
  if (s->db)
    rocksdb_close(s->db);
  s->db = NULL;
  if (s->ro)
    rocksdb_readoptions_destroy(s->ro);
  if (s->wo)
    rocksdb_writeoptions_destroy(s->wo);
  if (s->options)
    rocksdb_options_destroy(s->options);
  if (s->bbt)
    rocksdb_block_based_options_destroy(s->bbt);
  if (s->cache)
    rocksdb_cache_destroy(s->cache);
  s->ro = NULL, s->wo = NULL, s->options = NULL, s->bbt = NULL, s->cache = NULL;
}

static int open_rocksdb(lmz_store_t *s, const struct lmz_store_opts *o,
                        char *errmsg) {
  make_options(s, o);
  char *err = NULL;
  s->db = rocksdb_open(s->options, o->path, &err);
  if (err) {
    s->db = NULL;
    int rv = lmz__err_from_rocksdb(err, errmsg, "open");
    lmz__errmsg_wrapf(errmsg, "store %s", o->path);
    return rv;
  }
  s->ro = rocksdb_readoptions_create();
  s->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(s->wo, o->sync);
  s->sync = o->sync;
  s->max_batch_bytes =
      o->max_batch_bytes ? o->max_batch_bytes : DEFAULT_MAX_BATCH_BYTES;
  return 0;
}

int lmz_store_init(lmz_store_t *s, uv_loop_t *loop,
                   const struct lmz_store_opts *opts, char *errmsg) {
  char scratch[LMZ_ERRMSG_LEN];
  if (!errmsg)
    errmsg = scratch;
  errmsg[0] = '\0';
  if (!s || !loop || !opts || !opts->path) {
    lmz__errmsg_printf(errmsg, "store: missing store, loop, options or path");
    return LMZ_EINVAL;
  }
  *s = (lmz_store_t){.data = s->data, .loop = loop};
  int rv = mkdir_p(opts->path, errmsg);
  if (rv)
    return rv;
  rv = open_rocksdb(s, opts, errmsg);
  if (rv)
    goto err_after_open;
  rv = lmz__commit_start(s);
  if (rv) {
    lmz__errmsg_printf(errmsg, "store: storage thread: %s", uv_strerror(rv));
    goto err_after_open;
  }
  return 0;

err_after_open:
  destroy_rocksdb(s);
  return rv;
}

static void on_closed(uv_handle_t *h) {
  lmz_store_t *s = lmz_container_of((uv_async_t *)h, lmz_store_t, async);
  if (s->close_cb)
    s->close_cb(s); /* s is the caller's again */
}

void lmz_store_close(lmz_store_t *s, lmz_store_close_cb cb) {
  LMZ_ASSERT(!s->cancel); /* closing twice is a bug in the caller */
  s->close_cb = cb;
  lmz__commit_stop(s); /* drains the queue, runs remaining callbacks */
  destroy_rocksdb(s);
  uv_close((uv_handle_t *)&s->async, on_closed);
}

int lmz_store_get(lmz_store_t *s, const void *key, size_t klen, lmz_buf *out) {
  if (!s->db)
    return LMZ_ECANCELED;
  if (!key && klen)
    return LMZ_EINVAL;
  char *err = NULL;
  /* Pinned: the value is copied once, from the block cache / memtable. */
  rocksdb_pinnableslice_t *ps =
      rocksdb_get_pinned(s->db, s->ro, key, klen, &err);
  if (err)
    return lmz__err_from_rocksdb(err, s->errmsg, "get");
  if (!ps)
    return LMZ_ENOTFOUND;
  size_t vlen;
  const char *v = rocksdb_pinnableslice_value(ps, &vlen);
  size_t old = out->len;
  out->len = 0;
  int rv = lmz_buf_append(out, v, vlen);
  if (rv)
    out->len = old;
  rocksdb_pinnableslice_destroy(ps);
  return rv;
}

/* Iterates an already positioned iterator; returns the count or an error. */
static int scan_run(lmz_store_t *s, rocksdb_iterator_t *it, size_t limit,
                    bool reverse, lmz_store_scan_cb cb, void *arg) {
  int n = 0;
  while (rocksdb_iter_valid(it) && (limit == 0 || (size_t)n < limit) &&
         n < INT_MAX) {
    size_t klen, vlen;
    const char *k = rocksdb_iter_key(it, &klen);
    const char *v = rocksdb_iter_value(it, &vlen);
    n++;
    if (cb((const uint8_t *)k, klen, (const uint8_t *)v, vlen, arg))
      return n; /* stopped by the callback */
    if (reverse)
      rocksdb_iter_prev(it);
    else
      rocksdb_iter_next(it);
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err)
    return lmz__err_from_rocksdb(err, s->errmsg, "scan");
  return n;
}

static int stop_at_first(const uint8_t *key, size_t klen, const uint8_t *val,
                         size_t vlen, void *arg) {
  (void)key, (void)klen, (void)val, (void)vlen, (void)arg;
  return 1;
}

int lmz_store_range_empty(lmz_store_t *s, const void *lower, size_t lower_len,
                          const void *upper, size_t upper_len) {
  int n = lmz_store_scan(s, lower, lower_len, upper, upper_len, 1, false,
                         stop_at_first, NULL);
  return n < 0 ? n : n == 0;
}

int lmz_store_scan(lmz_store_t *s, const void *lower, size_t lower_len,
                   const void *upper, size_t upper_len, size_t limit,
                   bool reverse, lmz_store_scan_cb cb, void *arg) {
  if (!s->db)
    return LMZ_ECANCELED;
  if (!cb)
    return LMZ_EINVAL;
  /* Own read options per scan: the C API stores the bounds as Slices that
   * point at the caller's bytes (not copied), and a callback may start a
   * nested scan with other bounds. */
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  if (lower)
    rocksdb_readoptions_set_iterate_lower_bound(ro, lower, lower_len);
  if (upper)
    rocksdb_readoptions_set_iterate_upper_bound(ro, upper, upper_len);
  rocksdb_iterator_t *it = rocksdb_create_iterator(s->db, ro);
  if (reverse)
    rocksdb_iter_seek_to_last(it); /* honours the upper bound (exclusive) */
  else if (lower)
    rocksdb_iter_seek(it, lower, lower_len);
  else
    rocksdb_iter_seek_to_first(it);
  int rv = scan_run(s, it, limit, reverse, cb, arg);
  rocksdb_iter_destroy(it);
  rocksdb_readoptions_destroy(ro);
  return rv;
}
