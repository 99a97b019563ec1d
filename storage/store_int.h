/* storage/store_int.h - private to storage/ (and its unit tests).
 *
 * Batch encoding (in memory only, never on disk or the wire), one record per
 * operation, lengths native-endian:
 *
 *   put:          op=1 | u32 klen | u32 vlen | key | value
 *   delete:       op=2 | u32 klen | u32 0    | key
 *   delete_range: op=3 | u32 lolen | u32 hilen | lo | hi
 *
 * Fixed 9-byte headers keep the storage thread's decoding trivial; the
 * batch's lmz_buf is one growing allocation, so a turn costs O(1) mallocs. */
#ifndef LMZ_STORAGE_STORE_INT_H
#define LMZ_STORAGE_STORE_INT_H

#include <rocksdb/c.h>
#include <stdatomic.h>

#include "storage/store.h"

enum { LMZ__OP_PUT = 1, LMZ__OP_DELETE = 2, LMZ__OP_DELETE_RANGE = 3 };
#define LMZ__OP_HDR 9

struct lmz_batch {
  lmz_buf ops;  /* encoded records (above) */
  size_t count; /* records in ops */
  /* Set by lmz_store_commit; the batch is then also the commit request, so a
   * commit costs no allocation of its own. */
  struct lmz_batch *next;
  lmz_store_commit_cb cb;
  void *arg;
  int status;   /* set by the storage thread */
  char *errmsg; /* malloc'd RocksDB text when status != 0, else NULL */
  struct lmz_chain *chain; /* a reference, or NULL (lmz_batch_set_chain) */
  bool skipped;            /* storage thread: chain broken, not written */
};

/* A chain of dependent batches. refs: loop thread only (batches are set up
 * and freed there). broken: storage thread only (it alone decides what is
 * written), read and written while it holds a batch of the chain, which
 * keeps the chain alive. */
struct lmz_chain {
  uint32_t refs;
  bool broken;
};

static inline void lmz__bqueue_push(struct lmz__bqueue *q,
                                    struct lmz_batch *b) {
  b->next = NULL;
  if (q->tail)
    q->tail->next = b;
  else
    q->head = b;
  q->tail = b;
}

/* Moves all of `from` to the end of `to`. */
static inline void lmz__bqueue_splice(struct lmz__bqueue *to,
                                      struct lmz__bqueue *from) {
  if (!from->head)
    return;
  if (to->tail)
    to->tail->next = from->head;
  else
    to->head = from->head;
  to->tail = from->tail;
  from->head = from->tail = NULL;
}

/* Maps a RocksDB error string to LMZ_ESTORAGE, copies it into errmsg (may be
 * NULL) prefixed with `what`, and frees it with rocksdb_free. */
int lmz__err_from_rocksdb(char *err, char *errmsg, const char *what);

/* commit.c: the storage thread side, used by store.c's open and close. */
int lmz__commit_start(lmz_store_t *s);
/* Stops accepting commits, drains the thread, runs every remaining callback. */
void lmz__commit_stop(lmz_store_t *s);

/* Batch internals shared with the import code. */
void lmz__batch_truncate(lmz_batch *b, size_t bytes, size_t count);

/* Test hooks (tests/unit/storage only), loop thread. While paused the
 * storage thread takes no new batch, so a test can queue a deterministic
 * group. fail_writes makes the next n group writes fail with LMZ_ESTORAGE
 * as if RocksDB had returned an I/O error. */
void lmz__store_pause(lmz_store_t *s, bool paused);
void lmz__store_fail_writes(lmz_store_t *s, int n);
/* Sets max_batch_bytes of an open store (1 = every group is one batch). */
void lmz__store_set_max_batch(lmz_store_t *s, size_t bytes);

#endif
