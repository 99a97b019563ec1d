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

#include "floor.h"

/* --- group commit through lmz_store_t ------------------------------------- */

struct gc {
  lmz_store_t *s;
  double deadline;
  uint64_t next_key;
  uint64_t done;
  int failed;
};

static void gc_commit(struct gc *g);

static void gc_on_commit(lmz_store_t *s, int status, void *arg) {
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
  lmz_store_t store;
  g.s = &store;
  if (lmz_store_init(g.s, &loop, &o, err))
    die("lmz_store_init", err);
  double t0 = now_s();
  g.deadline = t0 + seconds;
  for (int i = 0; i < inflight; i++)
    gc_commit(&g);
  uv_run(&loop, UV_RUN_DEFAULT); /* returns when the last commit reported */
  double t = now_s();
  uint64_t syncs = lmz_store_sync_count(g.s);
  lmz_store_close(g.s, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the store's close phase */
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
