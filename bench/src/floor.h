/* bench/src/floor.h - the raw RocksDB durable-write floor, shared by the
 * scenarios that compare against it (durable_floor, durable): single synced
 * puts and synced WriteBatches of 100 puts, each on a fresh directory in
 * $TMPDIR (or /tmp), removed afterwards. Header-only: each scenario is one
 * executable. */
#ifndef LMZ_BENCH_FLOOR_H
#define LMZ_BENCH_FLOOR_H

#include <ftw.h>
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VLEN 100

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *f) {
  (void)sb, (void)flag, (void)f;
  return remove(p);
}

static char *make_dir(void) {
  const char *tmp = getenv("TMPDIR");
  char *path = NULL;
  if (asprintf(&path, "%s/lmz-floor.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0)
    return NULL;
  if (!mkdtemp(path)) {
    free(path);
    return NULL;
  }
  return path;
}

static void drop_dir(char *path) {
  nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(path);
}

static void die(const char *what, char *err) {
  fprintf(stderr, "bench: %s: %s\n", what, err ? err : "?");
  exit(1);
}

/* --- raw RocksDB -------------------------------------------------------- */

struct raw {
  rocksdb_t *db;
  rocksdb_options_t *opt;
  rocksdb_block_based_table_options_t *bbt;
  rocksdb_cache_t *cache;
  rocksdb_writeoptions_t *wo;
};

static void raw_open(struct raw *r, const char *dir) {
  r->opt = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(r->opt, 1);
  rocksdb_options_increase_parallelism(r->opt, 2);
  rocksdb_options_optimize_level_style_compaction(r->opt, 64u << 20);
  rocksdb_options_set_compression(r->opt, rocksdb_lz4_compression);
  r->cache = rocksdb_cache_create_lru(64u << 20);
  r->bbt = rocksdb_block_based_options_create();
  rocksdb_block_based_options_set_block_cache(r->bbt, r->cache);
  rocksdb_block_based_options_set_filter_policy(
      r->bbt, rocksdb_filterpolicy_create_bloom_full(10));
  rocksdb_options_set_block_based_table_factory(r->opt, r->bbt);
  char *err = NULL;
  r->db = rocksdb_open(r->opt, dir, &err);
  if (err)
    die("rocksdb_open", err);
  r->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(r->wo, 1);
}

static void raw_close(struct raw *r) {
  rocksdb_close(r->db);
  rocksdb_writeoptions_destroy(r->wo);
  rocksdb_options_destroy(r->opt);
  rocksdb_block_based_options_destroy(r->bbt);
  rocksdb_cache_destroy(r->cache);
}

static void key_of(char *k, uint64_t i) {
  snprintf(k, 17, "key%013llu", (unsigned long long)i);
}

/* Returns puts/s of single synced puts. */
static inline double run_single_sync(double seconds) {
  char *dir = make_dir();
  if (!dir)
    die("mkdtemp", NULL);
  struct raw r;
  raw_open(&r, dir);
  char k[17], v[VLEN];
  memset(v, 'v', sizeof v);
  uint64_t n = 0;
  double t0 = now_s(), t;
  do {
    key_of(k, n++);
    char *err = NULL;
    rocksdb_put(r.db, r.wo, k, 16, v, VLEN, &err);
    if (err)
      die("rocksdb_put", err);
  } while ((t = now_s()) - t0 < seconds);
  raw_close(&r);
  drop_dir(dir);
  return (double)n / (t - t0);
}

/* Returns batches/s of synced WriteBatches of 100 puts. */
static inline double run_batch100_sync(double seconds) {
  char *dir = make_dir();
  if (!dir)
    die("mkdtemp", NULL);
  struct raw r;
  raw_open(&r, dir);
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  char k[17], v[VLEN];
  memset(v, 'v', sizeof v);
  uint64_t n = 0, key = 0;
  double t0 = now_s(), t;
  do {
    rocksdb_writebatch_clear(wb);
    for (int i = 0; i < 100; i++) {
      key_of(k, key++);
      rocksdb_writebatch_put(wb, k, 16, v, VLEN);
    }
    char *err = NULL;
    rocksdb_write(r.db, r.wo, wb, &err);
    if (err)
      die("rocksdb_write", err);
    n++;
  } while ((t = now_s()) - t0 < seconds);
  rocksdb_writebatch_destroy(wb);
  raw_close(&r);
  drop_dir(dir);
  return (double)n / (t - t0);
}


#endif
