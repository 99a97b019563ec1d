/* storage/commit.c - write batches and group commit on the storage thread.
 *
 * Happy path:
 *   loop thread: lmz_store_commit() appends the batch (which doubles as the
 *     request) to `pending` under the mutex and signals the thread.
 *   storage thread: takes every pending batch (up to max_batch_bytes) as one
 *     group, replays their records into one reusable rocksdb_writebatch_t,
 *     does ONE rocksdb_write (sync = opts.sync, i.e. one WAL fsync for the
 *     group), marks every batch with the result, appends the group to `done`
 *     and wakes the loop with uv_async_send(). Batches queued during that
 *     write form the next group: the slower the disk, the bigger the groups.
 *   loop thread: the async callback moves `done` to `ready` and runs the
 *     callbacks in commit order (pending, done and ready are FIFOs and groups
 *     are written one after another), then frees the batches.
 *
 * Failure modes:
 *  1. rocksdb_write fails: every batch of that group gets LMZ_ESTORAGE and a
 *     copy of RocksDB's text (shown in s->errmsg during its callback), and
 *     the chains of those batches are broken. Later groups are still
 *     attempted (RocksDB decides whether it can recover), but a batch whose
 *     chain is broken is not written: it fails with LMZ_ESTORAGE ("an
 *     earlier batch of its chain failed"). So no batch computed from lost
 *     writes ever reaches the disk, whichever group it landed in: a turn
 *     that read an actor's failed writes cannot commit (actor/turn.c starts
 *     a new chain once it has dropped the actor's cache).
 *  2. Out of memory copying the error text: the callback still gets
 *     LMZ_ESTORAGE, with a generic message.
 *  3. Commit after close started: LMZ_ECANCELED, the caller keeps the batch.
 *  4. Close while commits are queued: the thread drains them all before it
 *     exits, close runs their callbacks with the real results (store.h).
 *  5. A callback closes the store: delivery continues from `ready` inside
 *     close; the outer delivery loop then finds it empty. The store's memory
 *     lives until the uv_close callback, so the outer loop stays valid. */
#include <stdlib.h>
#include <string.h>

#include "storage/store_int.h"

/* --- Batches ------------------------------------------------------------ */

lmz_batch *lmz_batch_new(void) {
  lmz_batch *b = calloc(1, sizeof *b);
  if (b)
    b->ops.max = LMZ_BATCH_MAX_BYTES;
  return b;
}

void lmz_batch_free(lmz_batch *b) {
  if (!b)
    return;
  lmz_chain_unref(b->chain);
  lmz_buf_free(&b->ops);
  free(b->errmsg);
  free(b);
}

lmz_chain *lmz_chain_new(void) {
  lmz_chain *c = calloc(1, sizeof *c);
  if (c)
    c->refs = 1;
  return c;
}

void lmz_chain_unref(lmz_chain *c) {
  if (c && --c->refs == 0)
    free(c);
}

void lmz_batch_set_chain(lmz_batch *b, lmz_chain *c) {
  if (c)
    c->refs++;
  lmz_chain_unref(b->chain);
  b->chain = c;
}

size_t lmz_batch_count(const lmz_batch *b) { return b ? b->count : 0; }
size_t lmz_batch_bytes(const lmz_batch *b) { return b ? b->ops.len : 0; }

void lmz_batch_clear(lmz_batch *b) {
  if (b)
    lmz__batch_truncate(b, 0, 0);
}

void lmz__batch_truncate(lmz_batch *b, size_t bytes, size_t count) {
  LMZ_ASSERT(bytes <= b->ops.len && count <= b->count);
  b->ops.len = bytes;
  b->count = count;
}

static int batch_add(lmz_batch *b, uint8_t op, const void *k, size_t klen,
                     const void *v, size_t vlen) {
  size_t need = LMZ__OP_HDR + klen + vlen;
  int rv = lmz_buf_reserve(&b->ops, need); /* ETOOBIG past ops.max */
  if (rv)
    return rv;
  uint8_t *p = b->ops.data + b->ops.len;
  uint32_t a = (uint32_t)klen, c = (uint32_t)vlen;
  p[0] = op;
  memcpy(p + 1, &a, 4);
  memcpy(p + 5, &c, 4);
  if (klen)
    memcpy(p + LMZ__OP_HDR, k, klen);
  if (vlen)
    memcpy(p + LMZ__OP_HDR + klen, v, vlen);
  b->ops.len += need;
  b->count++;
  return 0;
}

static int bad_ptr(const void *p, size_t len) { return p == NULL && len > 0; }

int lmz_batch_put(lmz_batch *b, const void *k, size_t klen, const void *v,
                  size_t vlen) {
  if (!b || bad_ptr(k, klen) || bad_ptr(v, vlen))
    return LMZ_EINVAL;
  if (klen > LMZ_STORE_KEY_MAX || vlen > LMZ_STORE_VALUE_MAX)
    return LMZ_ETOOBIG;
  return batch_add(b, LMZ__OP_PUT, k, klen, v, vlen);
}

int lmz_batch_delete(lmz_batch *b, const void *k, size_t klen) {
  if (!b || bad_ptr(k, klen))
    return LMZ_EINVAL;
  if (klen > LMZ_STORE_KEY_MAX)
    return LMZ_ETOOBIG;
  return batch_add(b, LMZ__OP_DELETE, k, klen, NULL, 0);
}

/* Bytewise comparison, as RocksDB's default comparator. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c)
    return c;
  return alen < blen ? -1 : alen > blen;
}

int lmz_batch_delete_range(lmz_batch *b, const void *lo, size_t lo_len,
                           const void *hi, size_t hi_len) {
  if (!b || bad_ptr(lo, lo_len) || bad_ptr(hi, hi_len))
    return LMZ_EINVAL;
  if (lo_len > LMZ_STORE_KEY_MAX || hi_len > LMZ_STORE_KEY_MAX)
    return LMZ_ETOOBIG;
  int c = key_cmp(lo, lo_len, hi, hi_len);
  if (c > 0)
    return LMZ_EINVAL; /* RocksDB would reject the whole group's write */
  if (c == 0)
    return 0;
  return batch_add(b, LMZ__OP_DELETE_RANGE, lo, lo_len, hi, hi_len);
}

/* --- Storage thread ----------------------------------------------------- */

/* Replays b's records into wb (trusted: we encoded them). */
static void replay(rocksdb_writebatch_t *wb, const lmz_batch *b) {
  if (b->ops.len == 0)
    return; /* empty barrier; data may be NULL */
  const uint8_t *p = b->ops.data, *end = p + b->ops.len;
  while (p < end) {
    uint32_t a, c;
    memcpy(&a, p + 1, 4);
    memcpy(&c, p + 5, 4);
    const char *k = (const char *)p + LMZ__OP_HDR, *v = k + a;
    switch (p[0]) {
    case LMZ__OP_PUT:
      rocksdb_writebatch_put(wb, k, a, v, c);
      break;
    case LMZ__OP_DELETE:
      rocksdb_writebatch_delete(wb, k, a);
      break;
    case LMZ__OP_DELETE_RANGE:
      rocksdb_writebatch_delete_range(wb, k, a, v, c);
      break;
    default:
      LMZ_ASSERT(!"corrupt batch record");
    }
    p += LMZ__OP_HDR + (size_t)a + c;
  }
  LMZ_ASSERT(p == end);
}

int lmz_store_write_now(lmz_store_t *s, const lmz_batch *b) {
  if (!s->db)
    return LMZ_ECANCELED;
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  replay(wb, b);
  char *err = NULL;
  rocksdb_write(s->db, s->wo, wb, &err);
  rocksdb_writebatch_destroy(wb);
  return err ? lmz__err_from_rocksdb(err, s->errmsg, "write") : 0;
}

/* Detaches the oldest pending batches whose total size fits max_batch_bytes
 * (at least one). Called with mu held. */
static lmz_batch *take_group(lmz_store_t *s) {
  lmz_batch *head = s->pending.head, *last = head;
  size_t bytes = head->ops.len;
  while (last->next && bytes <= s->max_batch_bytes &&
         last->next->ops.len <= s->max_batch_bytes - bytes) {
    last = last->next;
    bytes += last->ops.len;
  }
  s->pending.head = last->next;
  if (!s->pending.head)
    s->pending.tail = NULL;
  last->next = NULL;
  return head;
}

#define CHAIN_BROKEN_MSG "not written: an earlier batch of its chain failed"

/* Writes one group with a single rocksdb_write and records the result in
 * every batch of it; batches of broken chains are skipped (failure mode 1).
 * Runs without the mutex. */
static void write_group(lmz_store_t *s, rocksdb_writebatch_t *wb,
                        lmz_batch *group, bool inject_failure) {
  size_t n = 0, ops = 0;
  for (lmz_batch *b = group; b; b = b->next) {
    n++;
    b->skipped = b->chain && b->chain->broken;
    if (b->skipped)
      continue;
    ops += b->count;
    replay(wb, b);
  }
  char *err = NULL;
  if (inject_failure) {
    err = strdup("IO error: injected write failure (test hook)");
    atomic_fetch_add(&s->sync_count, 1);
  } else if (ops > 0) { /* a group of empty barriers needs no write */
    rocksdb_write(s->db, s->wo, wb, &err);
    atomic_fetch_add(&s->sync_count, 1);
  }
  rocksdb_writebatch_clear(wb);
  for (lmz_batch *b = group; b; b = b->next) {
    const char *why = b->skipped ? CHAIN_BROKEN_MSG : err;
    b->status = why ? LMZ_ESTORAGE : 0;
    b->errmsg = why ? strdup(why) : NULL; /* NULL on OOM: generic text */
    if (why && b->chain)
      b->chain->broken = true;
  }
  free(err); /* rocksdb_free is free() for strings it returns */
  atomic_fetch_add(&s->commit_count, n);
}

static void storage_thread(void *arg) {
  lmz_store_t *s = arg;
  rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
  uv_mutex_lock(&s->mu);
  for (;;) {
    while (!s->closing && (!s->pending.head || s->paused))
      uv_cond_wait(&s->cond, &s->mu);
    if (!s->pending.head)
      break; /* closing, and everything queued has been written */
    lmz_batch *group = take_group(s);
    bool fail = s->fail_writes > 0;
    s->fail_writes -= fail;
    uv_mutex_unlock(&s->mu);

    write_group(s, wb, group, fail);

    uv_mutex_lock(&s->mu);
    for (lmz_batch *b = group, *nx; b; b = nx) {
      nx = b->next;
      lmz__bqueue_push(&s->done, b);
    }
    uv_async_send(&s->async); /* coalesces; the loop drains all of done */
  }
  uv_mutex_unlock(&s->mu);
  rocksdb_writebatch_destroy(wb);
}

/* --- Loop side ---------------------------------------------------------- */

/* Runs the callbacks of `ready` in order. Re-entrant: a callback may commit
 * (goes to pending) or close the store (which delivers the rest itself). */
static void deliver(lmz_store_t *s) {
  lmz_batch *b;
  while ((b = s->ready.head) != NULL) {
    s->ready.head = b->next;
    if (!s->ready.head)
      s->ready.tail = NULL;
    s->inflight--;
    s->inflight_bytes -= b->ops.len;
    if (b->status)
      lmz__errmsg_printf(s->errmsg, "commit: %s",
                         b->errmsg ? b->errmsg : "RocksDB write failed");
    if (b->cb)
      b->cb(s, b->status, b->arg);
    lmz_batch_free(b);
  }
  if (s->inflight == 0 && !s->cancel)
    uv_unref((uv_handle_t *)&s->async); /* idle: don't hold the loop open */
}

static void on_async(uv_async_t *h) {
  lmz_store_t *s = lmz_container_of(h, lmz_store_t, async);
  uv_mutex_lock(&s->mu);
  lmz__bqueue_splice(&s->ready, &s->done);
  uv_mutex_unlock(&s->mu);
  deliver(s);
}

int lmz_store_commit(lmz_store_t *s, lmz_batch *b, lmz_store_commit_cb cb,
                     void *arg) {
  if (!s || !b)
    return LMZ_EINVAL;
  if (s->cancel)
    return LMZ_ECANCELED;
  b->cb = cb;
  b->arg = arg;
  b->status = 0;
  free(b->errmsg);
  b->errmsg = NULL;
  if (s->inflight++ == 0)
    uv_ref((uv_handle_t *)&s->async); /* keep the loop alive until reported */
  s->inflight_bytes += b->ops.len;
  uv_mutex_lock(&s->mu);
  lmz__bqueue_push(&s->pending, b);
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
  return 0;
}

int lmz__commit_start(lmz_store_t *s) {
  int rv = uv_mutex_init(&s->mu);
  if (rv)
    return rv;
  rv = uv_cond_init(&s->cond);
  if (rv)
    goto err_after_mutex;
  /* The thread only touches `async` after a commit, which comes after open
   * returns, and the mutex orders the two; so the thread may start first and
   * a failing uv_async_init leaves no handle to close. */
  rv = uv_thread_create(&s->thread, storage_thread, s);
  if (rv)
    goto err_after_cond;
  rv = uv_async_init(s->loop, &s->async, on_async);
  if (rv)
    goto err_after_thread;
  uv_unref((uv_handle_t *)&s->async);
  return 0;

err_after_thread:
  uv_mutex_lock(&s->mu);
  s->closing = true;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
  uv_thread_join(&s->thread);
err_after_cond:
  uv_cond_destroy(&s->cond);
err_after_mutex:
  uv_mutex_destroy(&s->mu);
  return rv;
}

void lmz__commit_stop(lmz_store_t *s) {
  s->cancel = true;
  uv_mutex_lock(&s->mu);
  s->closing = true;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
  uv_thread_join(&s->thread); /* returns once pending is fully written */
  lmz__bqueue_splice(&s->ready, &s->done); /* thread gone: no lock needed */
  deliver(s);
  uv_cond_destroy(&s->cond);
  uv_mutex_destroy(&s->mu);
}

uint64_t lmz_store_commit_count(const lmz_store_t *s) {
  return atomic_load(&s->commit_count);
}

uint64_t lmz_store_sync_count(const lmz_store_t *s) {
  return atomic_load(&s->sync_count);
}

size_t lmz_store_queued(const lmz_store_t *s, size_t *bytes) {
  if (bytes)
    *bytes = s->inflight_bytes;
  return s->inflight;
}

void lmz__store_pause(lmz_store_t *s, bool paused) {
  uv_mutex_lock(&s->mu);
  s->paused = paused;
  uv_cond_signal(&s->cond);
  uv_mutex_unlock(&s->mu);
}

void lmz__store_fail_writes(lmz_store_t *s, int n) {
  uv_mutex_lock(&s->mu);
  s->fail_writes = n;
  uv_mutex_unlock(&s->mu);
}

void lmz__store_set_max_batch(lmz_store_t *s, size_t bytes) {
  uv_mutex_lock(&s->mu); /* take_group reads it under mu */
  s->max_batch_bytes = bytes;
  uv_mutex_unlock(&s->mu);
}
