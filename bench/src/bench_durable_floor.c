/* bench_durable_floor - the durable-write floor of this machine: what raw
 * RocksDB does with a WAL fsync per write, and what lmz's group commit
 * (storage/store.h) makes of many small batches. The runtime benchmarks
 * compare their durable turn rates against these numbers.
 *
 * Measurements (100-byte values, 16-byte keys, RocksDB options as in
 * storage/store.c: lz4, bloom filters, 64 MiB block cache), each for
 * `--seconds S` of wall time (default 2; --quick = 0.3):
 *   single_sync   rocksdb_put with sync = 1, one after another (puts/s)
 *   batch100_sync rocksdb_write of a WriteBatch of 100 puts, sync = 1
 *                 (batches/s and puts/s)
 *   group_commit  lmz_store_commit of one-put batches, sync = true, keeping
 *                 `inflight` commits queued (a new one from each callback):
 *                 commits/s and commits per fsync, for inflight = 1000 and 32
 * Each measurement uses a fresh RocksDB directory in $TMPDIR (or /tmp),
 * removed afterwards, so the numbers describe that disk.
 *
 * Output (bench/README.md contract): progress on stderr; on stdout one JSON
 * object per metric. The first line also carries the summary fields
 * single_sync_puts_per_s, batch100_sync_puts_per_s,
 * batch100_sync_batches_per_s, group_commit_commits_per_s.
 *
 * Failure modes: a RocksDB/open/commit error -> message on stderr, exit 1;
 * bad arguments -> exit 2. */
#define _GNU_SOURCE
#include <ftw.h>
#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/store.h"

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
  fprintf(stderr, "bench_durable_floor: %s: %s\n", what, err ? err : "?");
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
static double run_single_sync(double seconds) {
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
static double run_batch100_sync(double seconds) {
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

/* --- group commit through lmz_store ------------------------------------- */

struct gc {
  lmz_store *s;
  double deadline;
  uint64_t next_key;
  uint64_t done;
  int failed;
};

static void gc_commit(struct gc *g);

static void gc_on_commit(lmz_store *s, int status, void *arg) {
  struct gc *g = arg;
  if (status) {
    fprintf(stderr, "bench_durable_floor: commit: %s\n", s->errmsg);
    g->failed = 1;
    return;
  }
  g->done++;
  if (!g->failed && now_s() < g->deadline)
    gc_commit(g);
}

static void gc_commit(struct gc *g) {
  char k[17], v[VLEN];
  memset(v, 'v', sizeof v);
  key_of(k, g->next_key++);
  lmz_batch *b = lmz_batch_new();
  if (!b || lmz_batch_put(b, k, 16, v, VLEN) ||
      lmz_store_commit(g->s, b, gc_on_commit, g)) {
    fprintf(stderr, "bench_durable_floor: cannot queue a commit\n");
    lmz_batch_free(b);
    g->failed = 1;
  }
}

/* Returns commits/s; *per_sync = commits per WAL fsync. */
static double run_group_commit(double seconds, int inflight, double *per_sync) {
  char *dir = make_dir();
  if (!dir)
    die("mkdtemp", NULL);
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, dir);
  char err[LMZ_ERRMSG_LEN];
  struct gc g = {0};
  if (lmz_store_open(&g.s, &loop, &o, err))
    die("lmz_store_open", err);
  double t0 = now_s();
  g.deadline = t0 + seconds;
  for (int i = 0; i < inflight; i++)
    gc_commit(&g);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns when the last commit reported */
  double t = now_s();
  uint64_t syncs = lmz_store_sync_count(g.s);
  lmz_store_close(g.s);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  drop_dir(dir);
  if (g.failed)
    exit(1);
  *per_sync = syncs ? (double)g.done / (double)syncs : 0;
  return (double)g.done / (t - t0);
}

static int usage(void) {
  fprintf(stderr,
          "usage: bench_durable_floor [--quick] [--seconds S]\n"
          "  S = wall time of each of the 4 measurements (default 2)\n");
  return 2;
}

int main(int argc, char **argv) {
  double seconds = 2.0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      seconds = 0.3;
    else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = atof(argv[++i]);
    else
      return usage();
  }
  if (!(seconds > 0 && seconds < 3600))
    return usage();

  double single = run_single_sync(seconds);
  fprintf(stderr, "single synced puts:        %10.0f puts/s\n", single);
  double b100 = run_batch100_sync(seconds);
  fprintf(stderr, "synced batches of 100:     %10.0f batches/s = %.0f puts/s\n",
          b100, b100 * 100);
  double ps1k, ps32;
  double gc1k = run_group_commit(seconds, 1000, &ps1k);
  fprintf(stderr,
          "group commit, 1000 queued: %10.0f commits/s (%.1f per fsync)\n",
          gc1k, ps1k);
  double gc32 = run_group_commit(seconds, 32, &ps32);
  fprintf(stderr,
          "group commit, 32 queued:   %10.0f commits/s (%.1f per fsync)\n",
          gc32, ps32);

  printf(
      "{\"scenario\":\"durable_floor\",\"metric\":\"single_sync.puts_s\","
      "\"value\":%.0f,\"unit\":\"puts/s\",\"single_sync_puts_per_s\":%.0f,"
      "\"batch100_sync_puts_per_s\":%.0f,\"batch100_sync_batches_per_s\":%.0f,"
      "\"group_commit_commits_per_s\":%.0f,\"seconds\":%g}\n",
      single, single, b100 * 100, b100, gc1k, seconds);
  printf("{\"scenario\":\"durable_floor\",\"metric\":\"batch100_sync.puts_s\","
         "\"value\":%.0f,\"unit\":\"puts/s\"}\n",
         b100 * 100);
  printf(
      "{\"scenario\":\"durable_floor\",\"metric\":\"batch100_sync.batches_s\","
      "\"value\":%.0f,\"unit\":\"batches/s\"}\n",
      b100);
  printf("{\"scenario\":\"durable_floor\",\"metric\":\"group_commit_1000."
         "commits_s\","
         "\"value\":%.0f,\"unit\":\"commits/s\",\"commits_per_fsync\":%.1f}\n",
         gc1k, ps1k);
  printf("{\"scenario\":\"durable_floor\",\"metric\":\"group_commit_32.commits_"
         "s\","
         "\"value\":%.0f,\"unit\":\"commits/s\",\"commits_per_fsync\":%.1f}\n",
         gc32, ps32);
  return 0;
}
