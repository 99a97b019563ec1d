/* tests/fuzz/fuzz_repl.c - hostile replication input: the batch wire format
 * (storage/store.h lmz_batch_deserialize) and ReplAppend frames on the
 * backup side (cluster/repl.h lmz_repl_on_append).
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is a batch encoding, parsed against actor C/a's range.
 *         A refusal must leave the batch as it was; an accepted encoding
 *         must give exactly rv operations, and re-serializing them
 *         (filtered to the range) must parse again to the same count, so
 *         nothing outside the range got in.
 *   odd:  the rest is a packed ReplAppend handed to a replicator (node 2)
 *         from node 1, the owner of C/a at epoch 1 in its directory, with a
 *         real RocksDB store in a temporary directory (opened once, writes
 *         unsynced). Every append must be answered (one ack, accepted or
 *         refused) once the store is idle, and an accepted one must not ack
 *         beyond the records it carried.
 * The replicator is rebuilt every 4096 inputs so stream state varies, the
 * store every 65536 so a long run stays within libFuzzer's RSS limit. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/directory.h"
#include "cluster/repl.h"
#include "core/err.h"
#include "core/log.h"
#include "storage/keys.h"
#include "storage/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- batch mode ---------------------------------------------------------- */

static void check_batch(const uint8_t *data, size_t size) {
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, "C", 1, "a", 1);
  lmz_key_range range;
  lmz_key_actor_range(&range, prefix, (size_t)pl);
  lmz_batch *b = lmz_batch_new(), *c = lmz_batch_new();
  if (!b || !c)
    abort();
  char err[LMZ_ERRMSG_LEN];
  int rv = lmz_batch_deserialize(b, data, size, &range, err);
  if (rv < 0 && (lmz_batch_count(b) != 0 || lmz_batch_bytes(b) != 0))
    abort();
  if (rv >= 0) {
    lmz_buf out = LMZ_BUF_INIT;
    if (lmz_batch_count(b) > (size_t)rv ||
        lmz_batch_serialize(b, &range, &out) != 0)
      abort();
    int rv2 = lmz_batch_deserialize(c, out.data, out.len, &range, err);
    if (rv2 < 0 || (size_t)rv2 != lmz_batch_count(b))
      abort();
    lmz_buf_free(&out);
  }
  lmz_batch_free(b);
  lmz_batch_free(c);
}

/* ---- append mode --------------------------------------------------------- */

static uv_loop_t loop;
static lmz_store_t *store;
static lmz_dir_t dir_mem, *dir; /* &dir_mem once initialized */
static lmz_repl_t *repl;
static unsigned runs;
static int n_acks, last_status;
static uint64_t last_seq;

static uint64_t now_fn(void *ctx) {
  (void)ctx;
  return 1000;
}

static int send_fn(void *ctx, uint64_t to, const Lmz__Frame *f) {
  (void)ctx;
  if (to != 1 || f->body_case != LMZ__FRAME__BODY_REPL_ACK)
    abort(); /* a backup answers the sender, with acks only */
  n_acks++;
  last_status = f->repl_ack->status;
  last_seq = f->repl_ack->seq;
  return 0;
}

static int propose_fn(void *ctx, const lmz_buf *cmd,
                      void (*cb)(void *, int, int), void *arg) {
  (void)ctx, (void)cmd, (void)cb, (void)arg;
  abort(); /* the backup side never proposes */
}

static void apply(lmz_buf *b) {
  const struct lmz_dir_result *res;
  if (lmz_dir_apply(dir, b->data, b->len, &res) != 0)
    abort();
  lmz_buf_reset(b);
}

static char tmpdir[] = "/tmp/lmz-fuzz-repl.XXXXXX";

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void store_open(void) {
  struct lmz_store_opts so;
  lmz_store_opts_init(&so, tmpdir);
  so.sync = false;
  so.cache_bytes = 4u << 20;
  static lmz_store_t store_mem;
  store = &store_mem;
  if (lmz_store_init(store, &loop, &so, NULL))
    abort();
}

/* The replicator goes first (it borrows the store), then the store and its
 * files. */
static void store_drop(void) {
  lmz_repl_free(repl);
  repl = NULL;
  lmz_store_close(store, NULL); /* static memory: nothing to free */
  store = NULL;
  uv_run(&loop, UV_RUN_DEFAULT);
  nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void world_end(void) {
  store_drop();
  uv_loop_close(&loop);
  lmz_dir_close(dir);
}

static void world_init(void) {
  lmz_log_configure("off", "", ""); /* a refusal logs a warning per input */
  if (uv_loop_init(&loop))
    abort();
  if (!mkdtemp(tmpdir) || lmz_dir_init(dir = &dir_mem))
    abort();
  store_open();
  lmz_buf b = LMZ_BUF_INIT;
  for (uint64_t id = 1; id <= 2; id++) {
    if (lmz_dir_encode_node_upsert(&b, id, LMZ_DIR_UP, "a:1", "a:2", id))
      abort();
    apply(&b);
  }
  uint64_t backup = 2;
  struct lmz_dir_claim c = {"C", 1, "a", 1, 1, 1, 0, 1, &backup};
  if (lmz_dir_encode_claims(&b, &c, 1))
    abort();
  apply(&b);
  lmz_buf_free(&b);
  atexit(world_end);
}

/* A fresh replicator every 4096 appends (stream state varies), and a fresh
 * store every 65536 (RocksDB's memtables, files and an ASan heap would
 * otherwise grow over a long run until the RSS limit). */
static void world_renew(void) {
  static unsigned renewals;
  if (renewals++ % 16 == 15) {
    store_drop();
    if (mkdir(tmpdir, 0700))
      abort();
    store_open();
  }
  lmz_repl_free(repl);
  struct lmz_repl_options o = {0};
  o.node_id = 2;
  o.factor = 1; /* no refill: only the backup side runs */
  o.dir = dir;
  o.store = store;
  o.ops = (struct lmz_repl_ops){now_fn, send_fn, propose_fn, NULL, NULL};
  if (lmz_repl_new(&repl, &o))
    abort();
}

static void check_append(const uint8_t *data, size_t size) {
  if (!store)
    world_init();
  if (runs++ % 4096 == 0)
    world_renew();
  Lmz__ReplAppend *m = lmz__repl_append__unpack(NULL, size, data);
  if (!m)
    return;
  n_acks = 0;
  lmz_repl_on_append(repl, 1, m);
  while (lmz_store_queued(store, NULL) > 0)
    uv_run(&loop, UV_RUN_ONCE);
  uv_run(&loop, UV_RUN_NOWAIT);
  if (n_acks != 1)
    abort(); /* every append is answered exactly once */
  if (last_status == 0 &&
      (m->n_records == 0 || last_seq != m->first_seq + m->n_records - 1))
    abort(); /* an acceptance acknowledges exactly what it carried */
  lmz__repl_append__free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  if (data[0] % 2 == 0)
    check_batch(data + 1, size - 1);
  else
    check_append(data + 1, size - 1);
  return 0;
}
