/* storage/sqlvfs.c - the "lmz" SQLite VFS: a database file made of 4 KiB
 * chunks stored as keys of one actor (layout and versions: sqlvfs.h).
 *
 * Happy path: SQLite reads a page -> xRead looks at the turn's version, the
 * committed-not-durable version, then RocksDB (one lmz_store_get). SQLite
 * commits its transaction -> xWrite puts full pages into the turn's versions;
 * the runtime moves them into the turn's batch (add_to_batch), then marks
 * them committed with the batch's sequence (turn_commit), then frees them
 * once durable (trim).
 *
 * Failure modes:
 *  1. RocksDB read error: SQLITE_IOERR_READ; the store is marked failed so
 *     the runtime fails the turn; the text is kept in ss->errmsg.
 *  2. A stored chunk that does not decode (corruption, a hostile import):
 *     SQLITE_IOERR_READ / failed, never a read past the value.
 *  3. Out of memory: SQLITE_IOERR_NOMEM (nothing half-written: a chunk is
 *     copied into a new buffer before it replaces the old one).
 *  4. Opening a main database file that is not the store being connected
 *     (ATTACH, VACUUM INTO, a URI trick): SQLITE_CANTOPEN.
 *  5. SQLite rolls back an atomic batch (SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE,
 *     only with SQLITE_ENABLE_BATCH_ATOMIC_WRITE builds): marked failed.
 *  6. A temporary file beyond LMZ_SQLVFS_TEMP_MAX: SQLITE_FULL. */
#include "storage/sqlvfs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/hmap.h"
#include "storage/keys.h"

#define PAGE LMZ_SQLVFS_PAGE

/* One version of a chunk: data (PAGE bytes) or "absent" when NULL. */
struct lmz__sqlstore_chunk {
  uint32_t idx; /* also the hmap key */
  uint8_t *turn;      /* the current turn's version, or NULL */
  uint8_t *committed; /* committed, maybe not durable yet, or NULL */
  uint64_t seq;       /* commit sequence of `committed` */
  struct lmz__sqlstore_chunk
      *next_dirty; /* chunks with `turn` set, in write order */
  /* Deltas stored after the base once every committed batch is applied;
   * valid while `committed` is set (it is then the page they add up to). */
  uint16_t ndelta, pend_ndelta; /* pend_*: what this turn's batch makes it */
  uint32_t dbytes, pend_dbytes; /* their value bytes */
  bool ref; /* `committed` is durable, kept as the base of the next delta */
};

/* ---- page buffers ----------------------------------------------------------- */

/* Page buffers are recycled through one process-wide free list: a busy
 * actor writes and frees a few pages per turn, and malloc/free of 4 KiB
 * blocks at that rate makes glibc trim and re-fault its heap top. Bounded,
 * so idle memory stays small; a mutex because stores may live on several
 * loop threads (it is never contended in practice). */
#define POOL_MAX 512
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static void *pool_head;
static size_t pool_n;

static uint8_t *page_alloc(void) {
  pthread_mutex_lock(&pool_mu);
  void *p = pool_head;
  if (p) {
    memcpy(&pool_head, p, sizeof pool_head);
    pool_n--;
  }
  pthread_mutex_unlock(&pool_mu);
  return p ? p : malloc(PAGE);
}

static void page_free(uint8_t *p) {
  if (!p)
    return;
  pthread_mutex_lock(&pool_mu);
  if (pool_n < POOL_MAX) {
    memcpy(p, &pool_head, sizeof pool_head);
    pool_head = p;
    pool_n++;
    p = NULL;
  }
  pthread_mutex_unlock(&pool_mu);
  free(p);
}

/* ---- keys ------------------------------------------------------------------ */

int lmz_sqlvfs_page_key(uint8_t *out, const uint8_t *prefix,
                        size_t prefix_len, uint32_t idx) {
  uint8_t k[LMZ_SQLVFS_KEY_PREFIX_LEN + 4];
  memcpy(k, LMZ_SQLVFS_KEY_PREFIX, LMZ_SQLVFS_KEY_PREFIX_LEN);
  for (int i = 0; i < 4; i++)
    k[LMZ_SQLVFS_KEY_PREFIX_LEN + (unsigned)i] = (uint8_t)(idx >> (24 - 8 * i));
  return lmz_key_join(out, prefix, prefix_len, LMZ_KEY_SPACE_FRAMEWORK, k,
                      sizeof k);
}

int lmz_sqlvfs_delta_key(uint8_t *out, const uint8_t *prefix,
                         size_t prefix_len, uint32_t idx, uint16_t n) {
  uint8_t k[LMZ_SQLVFS_KEY_PREFIX_LEN + 6];
  memcpy(k, LMZ_SQLVFS_KEY_PREFIX, LMZ_SQLVFS_KEY_PREFIX_LEN);
  for (int i = 0; i < 4; i++)
    k[LMZ_SQLVFS_KEY_PREFIX_LEN + (unsigned)i] = (uint8_t)(idx >> (24 - 8 * i));
  k[LMZ_SQLVFS_KEY_PREFIX_LEN + 4] = (uint8_t)(n >> 8);
  k[LMZ_SQLVFS_KEY_PREFIX_LEN + 5] = (uint8_t)n;
  return lmz_key_join(out, prefix, prefix_len, LMZ_KEY_SPACE_FRAMEWORK, k,
                      sizeof k);
}

int lmz_sqlvfs_parse_chunk_key(const uint8_t *user_key, size_t len,
                               uint32_t *idx, uint16_t *n) {
  if (!user_key || (len != LMZ_SQLVFS_KEY_PREFIX_LEN + 4 &&
                    len != LMZ_SQLVFS_KEY_PREFIX_LEN + 6) ||
      memcmp(user_key, LMZ_SQLVFS_KEY_PREFIX, LMZ_SQLVFS_KEY_PREFIX_LEN))
    return LMZ_EINVAL;
  const uint8_t *p = user_key + LMZ_SQLVFS_KEY_PREFIX_LEN;
  uint16_t d = len == LMZ_SQLVFS_KEY_PREFIX_LEN + 6 ? (uint16_t)(p[4] << 8 | p[5]) : 0;
  if (len == LMZ_SQLVFS_KEY_PREFIX_LEN + 6 && d == 0)
    return LMZ_EINVAL; /* delta numbers start at 1; 0 is the base */
  *idx = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  *n = d;
  return 0;
}

int lmz_sqlvfs_parse_page_key(const uint8_t *user_key, size_t len,
                              uint32_t *idx) {
  uint16_t n;
  if (len != LMZ_SQLVFS_KEY_PREFIX_LEN + 4)
    return LMZ_EINVAL;
  return lmz_sqlvfs_parse_chunk_key(user_key, len, idx, &n);
}

/* ---- page encoding (sqlvfs.h) --------------------------------------------- */

#define HOLE_TAG 0x01
#define HOLE_HDR 3
#define HOLE_MIN 32 /* shorter runs are not worth a decode */

static uint64_t word(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, sizeof w);
  return w;
}

/* The longest run of zero words, widened by the zero bytes around it (a
 * word at a time: this runs for every page of every turn). Any zero run
 * decodes; the longest one is merely the smallest value. */
static size_t zero_run(const uint8_t *page, size_t *off) {
  size_t best = 0, best_off = 0;
  for (size_t i = 0; i < PAGE; i += 8) {
    if (word(page + i))
      continue;
    size_t j = i + 8;
    while (j < PAGE && !word(page + j))
      j += 8;
    if (j - i > best) {
      best = j - i;
      best_off = i;
    }
    i = j;
  }
  if (!best)
    return 0;
  size_t end = best_off + best;
  while (best_off > 0 && !page[best_off - 1])
    best_off--;
  while (end < PAGE && !page[end])
    end++;
  *off = best_off;
  return end - best_off;
}

size_t lmz_sqlvfs_encode_page(const uint8_t *page, uint8_t *out) {
  size_t best_off = 0, best = zero_run(page, &best_off);
  if (best < HOLE_MIN) {
    memcpy(out, page, PAGE);
    return PAGE;
  }
  out[0] = HOLE_TAG;
  out[1] = (uint8_t)(best_off >> 8);
  out[2] = (uint8_t)best_off;
  memcpy(out + HOLE_HDR, page, best_off);
  memcpy(out + HOLE_HDR + best_off, page + best_off + best, PAGE - best_off - best);
  return HOLE_HDR + PAGE - best;
}

int lmz_sqlvfs_decode_page(const uint8_t *val, size_t len, uint8_t *out) {
  if (len == PAGE) {
    memcpy(out, val, PAGE);
    return 0;
  }
  if (!val || len < HOLE_HDR || len > PAGE || val[0] != HOLE_TAG)
    return LMZ_EBADMSG;
  size_t data = len - HOLE_HDR, off = (size_t)val[1] << 8 | val[2];
  if (off > data)
    return LMZ_EBADMSG;
  size_t run = PAGE - data; /* > 0: len < PAGE + HOLE_HDR */
  memcpy(out, val + HOLE_HDR, off);
  memset(out + off, 0, run);
  memcpy(out + off + run, val + HOLE_HDR + off, data - off);
  return 0;
}

/* Delta values (sqlvfs.h): DELTA_TAG, then runs of (offset u16 BE, length
 * u16 BE, bytes). Unchanged gaps shorter than a run header are sent as
 * data (one run is cheaper than two). */
#define DELTA_TAG 0x02
#define RUN_HDR 4

static uint64_t blockdiff(const uint8_t *a, const uint8_t *b) {
  return (word(a) ^ word(b)) | (word(a + 8) ^ word(b + 8)) |
         (word(a + 16) ^ word(b + 16)) | (word(a + 24) ^ word(b + 24));
}

size_t lmz_sqlvfs_encode_delta(const uint8_t *old, const uint8_t *page,
                               uint8_t *out, size_t cap) {
  size_t n = 1, i = 0;
  if (cap < 1)
    return 0;
  out[0] = DELTA_TAG;
  while (i < PAGE) { /* most of a page is unchanged: skip it in big steps */
    if (i % 256 == 0 && !memcmp(old + i, page + i, 256)) {
      i += 256;
      continue;
    }
    if (i % 32 == 0 && !blockdiff(old + i, page + i)) {
      i += 32;
      continue;
    }
    if (old[i] == page[i]) {
      i++;
      continue;
    }
    size_t start = i, end = i + 1, same = 0;
    for (size_t j = end; j < PAGE && same <= RUN_HDR; j++) {
      same = old[j] == page[j] ? same + 1 : 0;
      if (!same)
        end = j + 1;
    }
    size_t len = end - start;
    if (n + RUN_HDR + len > cap)
      return 0;
    out[n] = (uint8_t)(start >> 8);
    out[n + 1] = (uint8_t)start;
    out[n + 2] = (uint8_t)(len >> 8);
    out[n + 3] = (uint8_t)len;
    memcpy(out + n + RUN_HDR, page + start, len);
    n += RUN_HDR + len;
    i = end;
  }
  return n;
}

int lmz_sqlvfs_apply_delta(const uint8_t *val, size_t len, uint8_t *page) {
  if (!val || len < 1 || val[0] != DELTA_TAG)
    return LMZ_EBADMSG;
  size_t n = 1;
  while (n < len) { /* check every run before touching the page */
    if (len - n < RUN_HDR)
      return LMZ_EBADMSG;
    size_t off = (size_t)val[n] << 8 | val[n + 1];
    size_t rl = (size_t)val[n + 2] << 8 | val[n + 3];
    if (rl == 0 || off > PAGE || rl > PAGE - off || rl > len - n - RUN_HDR)
      return LMZ_EBADMSG;
    n += RUN_HDR + rl;
  }
  for (n = 1; n < len;) {
    size_t off = (size_t)val[n] << 8 | val[n + 1];
    size_t rl = (size_t)val[n + 2] << 8 | val[n + 3];
    memcpy(page + off, val + n + RUN_HDR, rl);
    n += RUN_HDR + rl;
  }
  return 0;
}

/* ---- the store --------------------------------------------------------------- */

struct last_key {
  uint32_t idx;
  bool found;
  size_t skip; /* prefix + space */
};

static int last_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, void *arg) {
  struct last_key *l = arg;
  (void)val, (void)vlen;
  uint16_t n;
  if (klen > l->skip &&
      !lmz_sqlvfs_parse_chunk_key(key + l->skip, klen - l->skip, &l->idx, &n))
    l->found = true; /* a delta key sorts after its page's base */
  return 1; /* one is enough */
}

/* Size = (last chunk + 1) * PAGE: a reverse scan of the chunk range. */
static int read_size(lmz_sqlstore_t *ss) {
  uint8_t lo[LMZ_KEY_MAX], hi[LMZ_KEY_MAX];
  int ll = lmz_sqlvfs_page_key(lo, ss->prefix, ss->prefix_len, 0);
  int hl = lmz_key_join(hi, ss->prefix, ss->prefix_len, LMZ_KEY_SPACE_FRAMEWORK,
                        "sql;", 4); /* ';' = ':' + 1: just past every chunk */
  if (ll < 0 || hl < 0)
    return LMZ_EINVAL;
  struct last_key l = {.skip = ss->prefix_len + 1};
  int rv = lmz_store_scan(ss->store, lo, (size_t)ll, hi, (size_t)hl, 1, true,
                          last_cb, &l);
  if (rv < 0) {
    lmz__errmsg_printf(ss->errmsg, "size scan: %s", ss->store->errmsg);
    return rv;
  }
  ss->size = l.found ? ((uint64_t)l.idx + 1) * PAGE : 0;
  ss->committed_size = ss->size;
  return 0;
}

int lmz_sqlstore_init(lmz_sqlstore_t *ss, lmz_store_t *s, const uint8_t *prefix,
                      size_t prefix_len, char *errmsg) {
  if (!s || !prefix || prefix_len == 0 || prefix_len > LMZ_KEY_PREFIX_MAX)
    return LMZ_EINVAL;
  *ss = (lmz_sqlstore_t){.store = s, .prefix_len = prefix_len};
  memcpy(ss->prefix, prefix, prefix_len);
  int rv = read_size(ss);
  if (rv && errmsg)
    lmz__errmsg_printf(errmsg, "%s", ss->errmsg);
  return rv; /* on error ss holds nothing (no chunk read yet) */
}

/* Reference pages (durable `committed` versions kept as delta bases) of
 * all stores, bounded process-wide so that many actors that each wrote a
 * little cannot pin much memory; past the bound, a page's next write reads
 * its base back from RocksDB instead. */
#define REF_PER_STORE 4
#define REF_BUDGET (64u << 20)
static _Atomic size_t ref_total;

static bool ref_take(void) {
  size_t cur = atomic_load(&ref_total);
  while (cur + PAGE <= REF_BUDGET)
    if (atomic_compare_exchange_weak(&ref_total, &cur, cur + PAGE))
      return true;
  return false;
}

static void committed_drop(lmz_sqlstore_t *ss, struct lmz__sqlstore_chunk *c) {
  if (!c->committed)
    return;
  if (c->ref)
    atomic_fetch_sub(&ref_total, PAGE);
  page_free(c->committed);
  c->committed = NULL;
  c->ref = false;
  ss->mem -= PAGE;
}

static void chunk_free(lmz_sqlstore_t *ss, struct lmz__sqlstore_chunk *c) {
  committed_drop(ss, c);
  ss->mem -= sizeof *c + (c->turn ? PAGE : 0);
  page_free(c->turn);
  free(c);
}

void lmz_sqlstore_close(lmz_sqlstore_t *ss) {
  if (!ss)
    return;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&ss->chunks, &it, NULL, NULL, &v))
    chunk_free(ss, v);
  lmz_hmap_free(&ss->chunks); /* ss itself is the caller's */
}

uint64_t lmz_sqlstore_size(const lmz_sqlstore_t *ss) { return ss->size; }
bool lmz_sqlstore_dirty(const lmz_sqlstore_t *ss) {
  return ss->dirty || ss->truncated;
}
bool lmz_sqlstore_failed(const lmz_sqlstore_t *ss) { return ss->failed; }
const char *lmz_sqlstore_errmsg(const lmz_sqlstore_t *ss) { return ss->errmsg; }
size_t lmz_sqlstore_mem(const lmz_sqlstore_t *ss) { return ss->mem; }

void lmz_sqlstore_counters(const lmz_sqlstore_t *ss, uint64_t *pages_read,
                           uint64_t *pages_written) {
  *pages_read = ss->pages_read;
  *pages_written = ss->pages_written;
}

/* ---- chunk versions -------------------------------------------------------- */

static struct lmz__sqlstore_chunk *chunk_get(lmz_sqlstore_t *ss, uint32_t idx,
                                             bool create) {
  struct lmz__sqlstore_chunk *c = lmz_hmap_get(&ss->chunks, &idx, sizeof idx);
  if (c || !create)
    return c;
  if (!(c = calloc(1, sizeof *c)))
    return NULL;
  c->idx = idx;
  if (lmz_hmap_put(&ss->chunks, &c->idx, sizeof c->idx, c, NULL)) {
    free(c);
    return NULL;
  }
  ss->mem += sizeof *c;
  return c;
}

static void chunk_drop_if_empty(lmz_sqlstore_t *ss,
                                struct lmz__sqlstore_chunk *c) {
  if (c->turn || c->committed)
    return;
  lmz_hmap_del(&ss->chunks, &c->idx, sizeof c->idx);
  chunk_free(ss, c);
}

struct load {
  uint8_t *buf;
  size_t skip; /* prefix + space */
  uint32_t idx;
  uint16_t ndelta;
  uint32_t dbytes;
  bool base, bad;
};

/* Base first, then deltas 1, 2, ... in key order, each applied in turn. */
static int load_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, void *arg) {
  struct load *l = arg;
  uint32_t idx;
  uint16_t n;
  if (klen <= l->skip ||
      lmz_sqlvfs_parse_chunk_key(key + l->skip, klen - l->skip, &idx, &n) ||
      idx != l->idx || n != (l->base ? l->ndelta + 1 : 0) ||
      n > LMZ_SQLVFS_DELTA_MAX ||
      (n ? lmz_sqlvfs_apply_delta(val, vlen, l->buf)
         : lmz_sqlvfs_decode_page(val, vlen, l->buf))) {
    l->bad = true;
    return 1;
  }
  if (n) {
    l->ndelta = n;
    l->dbytes += (uint32_t)vlen;
  }
  l->base = true;
  return 0;
}

/* Reads chunk idx from RocksDB (base and deltas) into buf. 0, or an
 * SQLITE_IOERR_* code (the store is then failed). */
static int load_stored(lmz_sqlstore_t *ss, uint32_t idx, uint8_t *buf,
                       struct load *l) {
  uint8_t lo[LMZ_KEY_MAX], hi[LMZ_KEY_MAX];
  int ll = lmz_sqlvfs_page_key(lo, ss->prefix, ss->prefix_len, idx);
  int hl = idx == UINT32_MAX
               ? lmz_key_join(hi, ss->prefix, ss->prefix_len,
                              LMZ_KEY_SPACE_FRAMEWORK, "sql;", 4)
               : lmz_sqlvfs_page_key(hi, ss->prefix, ss->prefix_len, idx + 1);
  *l = (struct load){.buf = buf, .skip = ss->prefix_len + 1, .idx = idx};
  memset(buf, 0, PAGE); /* a hole SQLite never wrote (cannot happen for a
                           page below its own size; zeros are safe) */
  int rv = ll < 0 || hl < 0 ? LMZ_EINVAL
                            : lmz_store_scan(ss->store, lo, (size_t)ll, hi,
                                             (size_t)hl, 0, false, load_cb, l);
  ss->pages_read++;
  if (rv >= 0 && !l->bad)
    return 0;
  if (l->bad)
    lmz__errmsg_printf(ss->errmsg, "SQL page %u: its stored %s %u is neither "
                       "a page nor an encoded page", (unsigned)idx,
                       l->base ? "delta" : "base", l->base ? l->ndelta + 1u : 0u);
  else
    lmz__errmsg_printf(ss->errmsg, "SQL page %u: %s", (unsigned)idx,
                       ss->store->errmsg);
  ss->failed = true;
  return rv == LMZ_ENOMEM ? SQLITE_IOERR_NOMEM : SQLITE_IOERR_READ;
}

/* Copies chunk idx as the turn sees it into buf (PAGE bytes). Chunks at or
 * beyond the file size are zeros. 0 or an SQLITE_IOERR_* code. */
static int chunk_read(lmz_sqlstore_t *ss, uint32_t idx, uint8_t *buf) {
  if ((uint64_t)idx * PAGE >= ss->size) {
    memset(buf, 0, PAGE);
    return 0;
  }
  struct lmz__sqlstore_chunk *c = chunk_get(ss, idx, false);
  const uint8_t *src = c ? (c->turn ? c->turn : c->committed) : NULL;
  if (src) {
    memcpy(buf, src, PAGE);
    return 0;
  }
  struct load l;
  return load_stored(ss, idx, buf, &l);
}

/* Makes `data` (PAGE bytes, malloc'd, ownership taken) the turn's version. */
static int chunk_set(lmz_sqlstore_t *ss, uint32_t idx, uint8_t *data) {
  struct lmz__sqlstore_chunk *c = chunk_get(ss, idx, true);
  if (!c) {
    page_free(data);
    return SQLITE_IOERR_NOMEM;
  }
  if (c->turn) {
    page_free(c->turn);
  } else {
    ss->mem += PAGE;
    c->next_dirty = ss->dirty;
    ss->dirty = c;
  }
  c->turn = data;
  return 0;
}

/* ---- turn boundaries ------------------------------------------------------- */

/* The page as stored before this turn (its base plus deltas) into *prev,
 * with the chain's length in c->ndelta / c->dbytes; *prev = NULL for a
 * page that did not exist before the turn (or was truncated in it). */
static int stored_version(lmz_sqlstore_t *ss, struct lmz__sqlstore_chunk *c,
                          uint8_t *buf, const uint8_t **prev) {
  *prev = NULL;
  if ((uint64_t)c->idx * PAGE >= ss->committed_size ||
      (ss->truncated && c->idx >= ss->trunc_chunks))
    return 0;
  if (c->committed) {
    *prev = c->committed;
    return 0;
  }
  struct load l;
  if (load_stored(ss, c->idx, buf, &l))
    return LMZ_ESTORAGE;
  c->ndelta = l.ndelta;
  c->dbytes = l.dbytes;
  *prev = buf;
  return 0;
}

/* One dirty chunk into b: a delta against the stored version while the
 * chain is short, else the whole (hole-encoded) page, whose deltas then go. */
static int put_chunk(lmz_sqlstore_t *ss, struct lmz__sqlstore_chunk *c,
                     lmz_batch *b) {
  uint8_t key[LMZ_KEY_MAX], enc[PAGE], old[PAGE];
  const uint8_t *prev;
  int rv = stored_version(ss, c, old, &prev), kl;
  if (rv)
    return rv;
  uint16_t nd = prev ? c->ndelta : 0;
  size_t room = prev && nd < LMZ_SQLVFS_DELTA_MAX && c->dbytes < PAGE / 2
                    ? PAGE / 2 - c->dbytes : 0;
  size_t vl = room ? lmz_sqlvfs_encode_delta(prev, c->turn, enc, room) : 0;
  if (vl == 1) { /* rewritten unchanged: nothing to store */
    c->pend_ndelta = c->ndelta;
    c->pend_dbytes = c->dbytes;
    return 0;
  }
  if (vl) {
    kl = lmz_sqlvfs_delta_key(key, ss->prefix, ss->prefix_len, c->idx, ++nd);
    if (kl < 0 || (rv = lmz_batch_put(b, key, (size_t)kl, enc, vl)))
      return kl < 0 ? kl : rv;
    c->pend_ndelta = nd;
    c->pend_dbytes = c->dbytes + (uint32_t)vl;
    return 0;
  }
  for (; nd > 0; nd--) { /* the old chain: point deletes (no range
                            tombstones for the reads to skip) */
    kl = lmz_sqlvfs_delta_key(key, ss->prefix, ss->prefix_len, c->idx, nd);
    if (kl < 0 || (rv = lmz_batch_delete(b, key, (size_t)kl)))
      return kl < 0 ? kl : rv;
  }
  kl = lmz_sqlvfs_page_key(key, ss->prefix, ss->prefix_len, c->idx);
  vl = lmz_sqlvfs_encode_page(c->turn, enc);
  if (kl < 0 || (rv = lmz_batch_put(b, key, (size_t)kl, enc, vl)))
    return kl < 0 ? kl : rv;
  c->pend_ndelta = 0;
  c->pend_dbytes = 0;
  ss->pages_written++;
  return 0;
}

int lmz_sqlstore_add_to_batch(lmz_sqlstore_t *ss, lmz_batch *b) {
  uint8_t key[LMZ_KEY_MAX], hi[LMZ_KEY_MAX];
  int rv;
  if (ss->truncated && ss->trunc_chunks <= UINT32_MAX) {
    /* delete every chunk (and its deltas) from the lowest truncation point
     * on; chunks written after it in this turn are put below (later
     * operations win) */
    int kl = lmz_sqlvfs_page_key(key, ss->prefix, ss->prefix_len,
                                 (uint32_t)ss->trunc_chunks);
    int hl = lmz_key_join(hi, ss->prefix, ss->prefix_len,
                          LMZ_KEY_SPACE_FRAMEWORK, "sql;", 4);
    if (kl < 0 || hl < 0)
      return LMZ_EINVAL;
    if ((rv = lmz_batch_delete_range(b, key, (size_t)kl, hi, (size_t)hl)))
      return rv;
  }
  for (struct lmz__sqlstore_chunk *c = ss->dirty; c; c = c->next_dirty) {
    c->pend_ndelta = 0;
    c->pend_dbytes = 0;
    if ((uint64_t)c->idx * PAGE >= ss->size)
      continue; /* written, then truncated away in the same turn */
    if ((rv = put_chunk(ss, c, b)))
      return rv;
  }
  return 0;
}

void lmz_sqlstore_turn_commit(lmz_sqlstore_t *ss, uint64_t seq) {
  for (struct lmz__sqlstore_chunk *c = ss->dirty, *nx; c; c = nx) {
    nx = c->next_dirty;
    c->next_dirty = NULL;
    committed_drop(ss, c);
    c->committed = c->turn; /* beyond the size: never read, trimmed later */
    c->turn = NULL;
    c->seq = seq;
    c->ndelta = c->pend_ndelta;
    c->dbytes = c->pend_dbytes;
  }
  ss->dirty = NULL;
  ss->truncated = false;
  ss->committed_size = ss->size;
  ss->last_seq = seq;
}

void lmz_sqlstore_turn_abort(lmz_sqlstore_t *ss) {
  for (struct lmz__sqlstore_chunk *c = ss->dirty, *nx; c; c = nx) {
    nx = c->next_dirty;
    c->next_dirty = NULL;
    page_free(c->turn);
    c->turn = NULL;
    ss->mem -= PAGE;
    chunk_drop_if_empty(ss, c);
  }
  ss->dirty = NULL;
  ss->truncated = false;
  ss->size = ss->committed_size;
  ss->failed = false;
}

/* Durable committed versions are freed, but for up to REF_PER_STORE pages
 * of the last committed turn (the pages a busy actor writes again next):
 * they stay as the bases of the next deltas, saving a RocksDB read each. */
void lmz_sqlstore_trim(lmz_sqlstore_t *ss, uint64_t durable_seq) {
  size_t it = 0, kept = 0;
  void *v;
  while (lmz_hmap_next(&ss->chunks, &it, NULL, NULL, &v)) {
    struct lmz__sqlstore_chunk *c = v;
    if (!c->committed || c->seq > durable_seq)
      continue;
    if (c->seq == ss->last_seq && kept < REF_PER_STORE &&
        (uint64_t)c->idx * PAGE < ss->committed_size &&
        (c->ref || (c->ref = ref_take()))) {
      kept++;
      continue;
    }
    committed_drop(ss, c);
    chunk_drop_if_empty(ss, c);
  }
}

/* ---- the main database file ------------------------------------------------ */

struct dbfile {
  sqlite3_file base;
  lmz_sqlstore_t *ss;
};

static int db_close(sqlite3_file *f) {
  struct dbfile *d = (struct dbfile *)f;
  if (d->ss)
    d->ss->connected = false;
  return SQLITE_OK;
}

static int db_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off) {
  lmz_sqlstore_t *ss = ((struct dbfile *)f)->ss;
  if (amt < 0 || off < 0)
    return SQLITE_IOERR_READ;
  uint8_t page[PAGE], *dst = out;
  uint64_t pos = (uint64_t)off, end = pos + (uint64_t)amt;
  while (pos < end) {
    uint64_t idx = pos / PAGE, in = pos % PAGE, n = PAGE - in;
    if (n > end - pos)
      n = end - pos;
    if (idx > UINT32_MAX)
      return SQLITE_IOERR_READ;
    int rv = chunk_read(ss, (uint32_t)idx, page);
    if (rv)
      return rv;
    memcpy(dst, page + in, n);
    dst += n;
    pos += n;
  }
  if (end > ss->size) /* SQLite wants zeros and this code past the end */
    return SQLITE_IOERR_SHORT_READ;
  return SQLITE_OK;
}

/* A write starting past the end: the chunks in between become zeros of
 * this turn, so no stale chunk (truncated, delete not durable yet) can ever
 * reappear inside the file. */
static int fill_gap(lmz_sqlstore_t *ss, uint64_t pos) {
  for (uint64_t idx = ss->size / PAGE; idx < pos / PAGE; idx++) {
    if (idx > UINT32_MAX)
      return SQLITE_FULL;
    uint8_t *zero = page_alloc();
    if (!zero)
      return SQLITE_IOERR_NOMEM;
    memset(zero, 0, PAGE);
    int rv = chunk_set(ss, (uint32_t)idx, zero);
    if (rv)
      return rv;
    ss->size = (idx + 1) * PAGE;
  }
  return 0;
}

static int db_write(sqlite3_file *f, const void *src, int amt,
                    sqlite3_int64 off) {
  lmz_sqlstore_t *ss = ((struct dbfile *)f)->ss;
  if (amt < 0 || off < 0)
    return SQLITE_IOERR_WRITE;
  const uint8_t *p = src;
  uint64_t pos = (uint64_t)off, end = pos + (uint64_t)amt;
  int rv = fill_gap(ss, pos);
  if (rv)
    return rv;
  while (pos < end) {
    uint64_t idx = pos / PAGE, in = pos % PAGE, n = PAGE - in;
    if (n > end - pos)
      n = end - pos;
    if (idx > UINT32_MAX)
      return SQLITE_FULL;
    uint8_t *data = page_alloc();
    if (!data)
      return SQLITE_IOERR_NOMEM;
    rv = n == PAGE ? 0 : chunk_read(ss, (uint32_t)idx, data);
    if (rv) {
      page_free(data);
      return rv;
    }
    memcpy(data + in, p, n);
    if ((rv = chunk_set(ss, (uint32_t)idx, data)))
      return rv;
    p += n;
    pos += n;
  }
  /* the file grows to whole chunks: a chunk is stored whole */
  uint64_t end_chunks = (end + PAGE - 1) / PAGE * PAGE;
  if (end_chunks > ss->size)
    ss->size = end_chunks;
  return SQLITE_OK;
}

static int db_truncate(sqlite3_file *f, sqlite3_int64 size) {
  lmz_sqlstore_t *ss = ((struct dbfile *)f)->ss;
  if (size < 0)
    return SQLITE_IOERR_TRUNCATE;
  uint64_t chunks = ((uint64_t)size + PAGE - 1) / PAGE;
  if (chunks * PAGE >= ss->size)
    return SQLITE_OK;
  if ((uint64_t)size % PAGE) { /* zero the tail of the new last chunk */
    uint8_t *data = page_alloc();
    if (!data)
      return SQLITE_IOERR_NOMEM;
    int rv = chunk_read(ss, (uint32_t)(chunks - 1), data);
    if (rv) {
      page_free(data);
      return rv;
    }
    memset(data + (uint64_t)size % PAGE, 0, PAGE - (uint64_t)size % PAGE);
    if ((rv = chunk_set(ss, (uint32_t)(chunks - 1), data)))
      return rv;
  }
  ss->size = chunks * PAGE;
  if (!ss->truncated || chunks < ss->trunc_chunks)
    ss->trunc_chunks = chunks;
  ss->truncated = true;
  return SQLITE_OK;
}

static int db_sync(sqlite3_file *f, int flags) {
  (void)f, (void)flags;
  return SQLITE_OK; /* durability is the turn's commit, not SQLite's */
}

static int db_size(sqlite3_file *f, sqlite3_int64 *size) {
  *size = (sqlite3_int64)((struct dbfile *)f)->ss->size;
  return SQLITE_OK;
}

/* One connection per store and no other process: locks always succeed. */
static int no_lock(sqlite3_file *f, int level) {
  (void)f, (void)level;
  return SQLITE_OK;
}

static int no_reserved(sqlite3_file *f, int *out) {
  (void)f;
  *out = 0;
  return SQLITE_OK;
}

static int db_fcntl(sqlite3_file *f, int op, void *arg) {
  (void)arg;
  lmz_sqlstore_t *ss = ((struct dbfile *)f)->ss;
  switch (op) {
  case SQLITE_FCNTL_BEGIN_ATOMIC_WRITE:
  case SQLITE_FCNTL_COMMIT_ATOMIC_WRITE:
    return SQLITE_OK; /* the writes are the turn's: atomic by construction */
  case SQLITE_FCNTL_ROLLBACK_ATOMIC_WRITE:
    ss->failed = true; /* part of a SQLite commit is in the turn's versions */
    lmz__errmsg_printf(ss->errmsg, "SQLite rolled back an atomic write");
    return SQLITE_OK;
  default:
    return SQLITE_NOTFOUND;
  }
}

static int db_sector(sqlite3_file *f) {
  (void)f;
  return (int)PAGE;
}

static int db_caps(sqlite3_file *f) {
  (void)f;
  return SQLITE_IOCAP_BATCH_ATOMIC | SQLITE_IOCAP_SAFE_APPEND |
         SQLITE_IOCAP_SEQUENTIAL | SQLITE_IOCAP_POWERSAFE_OVERWRITE;
}

static const sqlite3_io_methods db_methods = {
    .iVersion = 1,
    .xClose = db_close,
    .xRead = db_read,
    .xWrite = db_write,
    .xTruncate = db_truncate,
    .xSync = db_sync,
    .xFileSize = db_size,
    .xLock = no_lock,
    .xUnlock = no_lock,
    .xCheckReservedLock = no_reserved,
    .xFileControl = db_fcntl,
    .xSectorSize = db_sector,
    .xDeviceCharacteristics = db_caps,
};

/* ---- temporary files (in memory) ------------------------------------------ */

struct memfile {
  sqlite3_file base;
  uint8_t *data;
  size_t len, cap;
};

static int mem_close(sqlite3_file *f) {
  free(((struct memfile *)f)->data);
  return SQLITE_OK;
}

static int mem_read(sqlite3_file *f, void *out, int amt, sqlite3_int64 off) {
  struct memfile *m = (struct memfile *)f;
  if (amt < 0 || off < 0)
    return SQLITE_IOERR_READ;
  size_t o = (size_t)off, n = (size_t)amt;
  size_t have = o < m->len ? m->len - o : 0;
  if (have > n)
    have = n;
  if (have)
    memcpy(out, m->data + o, have);
  if (have < n) {
    memset((uint8_t *)out + have, 0, n - have);
    return SQLITE_IOERR_SHORT_READ;
  }
  return SQLITE_OK;
}

static int mem_write(sqlite3_file *f, const void *src, int amt,
                     sqlite3_int64 off) {
  struct memfile *m = (struct memfile *)f;
  if (amt < 0 || off < 0 || (uint64_t)off + (uint64_t)amt > LMZ_SQLVFS_TEMP_MAX)
    return SQLITE_FULL;
  size_t end = (size_t)off + (size_t)amt;
  if (end > m->cap) {
    size_t cap = m->cap ? m->cap : 8192;
    while (cap < end)
      cap *= 2;
    uint8_t *d = realloc(m->data, cap);
    if (!d)
      return SQLITE_IOERR_NOMEM;
    m->data = d;
    m->cap = cap;
  }
  if ((size_t)off > m->len)
    memset(m->data + m->len, 0, (size_t)off - m->len);
  memcpy(m->data + off, src, (size_t)amt);
  if (end > m->len)
    m->len = end;
  return SQLITE_OK;
}

static int mem_truncate(sqlite3_file *f, sqlite3_int64 size) {
  struct memfile *m = (struct memfile *)f;
  if (size >= 0 && (size_t)size < m->len)
    m->len = (size_t)size;
  return SQLITE_OK;
}

static int mem_size(sqlite3_file *f, sqlite3_int64 *size) {
  *size = (sqlite3_int64)((struct memfile *)f)->len;
  return SQLITE_OK;
}

static int mem_fcntl(sqlite3_file *f, int op, void *arg) {
  (void)f, (void)op, (void)arg;
  return SQLITE_NOTFOUND;
}

static const sqlite3_io_methods mem_methods = {
    .iVersion = 1,
    .xClose = mem_close,
    .xRead = mem_read,
    .xWrite = mem_write,
    .xTruncate = mem_truncate,
    .xSync = db_sync,
    .xFileSize = mem_size,
    .xLock = no_lock,
    .xUnlock = no_lock,
    .xCheckReservedLock = no_reserved,
    .xFileControl = mem_fcntl,
    .xSectorSize = db_sector,
    .xDeviceCharacteristics = db_caps,
};

/* ---- the VFS ----------------------------------------------------------------- */

/* The store lmz_sqlstore_connect() is opening on this thread: the only main
 * database xOpen will accept (so ATTACH / VACUUM INTO cannot open files). */
static _Thread_local lmz_sqlstore_t *connecting;
static sqlite3_vfs *base_vfs;

union anyfile {
  struct dbfile db;
  struct memfile mem;
};

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                    int flags, int *out_flags) {
  (void)vfs, (void)name;
  memset(f, 0, sizeof(union anyfile));
  if (flags & SQLITE_OPEN_MAIN_DB) {
    lmz_sqlstore_t *ss = connecting;
    if (!ss || ss->connected)
      return SQLITE_CANTOPEN;
    ss->connected = true;
    connecting = NULL;
    ((struct dbfile *)f)->ss = ss;
    f->pMethods = &db_methods;
  } else if (flags & (SQLITE_OPEN_WAL | SQLITE_OPEN_SUPER_JOURNAL)) {
    return SQLITE_CANTOPEN;
  } else { /* journals, statement journals, temp databases: memory */
    f->pMethods = &mem_methods;
  }
  if (out_flags)
    *out_flags = flags;
  return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
  (void)vfs, (void)name, (void)sync_dir;
  return SQLITE_OK;
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags,
                      int *out) {
  (void)vfs, (void)name, (void)flags;
  *out = 0; /* no journal, no WAL: nothing else ever exists */
  return SQLITE_OK;
}

static int vfs_fullpath(sqlite3_vfs *vfs, const char *name, int n, char *out) {
  (void)vfs;
  sqlite3_snprintf(n, out, "%s", name);
  return SQLITE_OK;
}

static int vfs_random(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs;
  return base_vfs->xRandomness(base_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us) {
  (void)vfs;
  return base_vfs->xSleep(base_vfs, us);
}

static int vfs_time(sqlite3_vfs *vfs, double *out) {
  (void)vfs;
  return base_vfs->xCurrentTime(base_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out) {
  (void)vfs, (void)n, (void)out;
  return 0;
}

static sqlite3_vfs lmz_vfs = {
    .iVersion = 1,
    .szOsFile = (int)sizeof(union anyfile),
    .mxPathname = 64,
    .zName = LMZ_SQLVFS_NAME,
    .xOpen = vfs_open,
    .xDelete = vfs_delete,
    .xAccess = vfs_access,
    .xFullPathname = vfs_fullpath,
    .xRandomness = vfs_random,
    .xSleep = vfs_sleep,
    .xCurrentTime = vfs_time,
    .xGetLastError = vfs_last_error,
};

static uv_once_t register_once = UV_ONCE_INIT;
static int register_rc;

static void do_register(void) {
  /* No up-front bulk of 20 pages per connection's page cache (Debian's
   * default): an idle actor's database should cost only the pages it
   * touched. Only possible before SQLite initializes; harmless if too late. */
  sqlite3_config(SQLITE_CONFIG_PAGECACHE, (void *)0, 0, 0);
  register_rc = sqlite3_initialize();
  if (register_rc == SQLITE_OK && !(base_vfs = sqlite3_vfs_find(NULL)))
    register_rc = SQLITE_ERROR;
  if (register_rc == SQLITE_OK)
    register_rc = sqlite3_vfs_register(&lmz_vfs, 0);
}

int lmz_sqlvfs_register(void) {
  uv_once(&register_once, do_register);
  return register_rc == SQLITE_OK ? 0 : LMZ_EIO;
}

int lmz_sqlstore_connect(lmz_sqlstore_t *ss, sqlite3 **db, char *errmsg) {
  *db = NULL;
  if (lmz_sqlvfs_register()) {
    lmz__errmsg_printf(errmsg, "cannot register the SQLite VFS");
    return LMZ_EIO;
  }
  if (ss->connected) {
    lmz__errmsg_printf(errmsg, "this SQL store already has a connection");
    return LMZ_EINVAL;
  }
  connecting = ss;
  /* NOMUTEX: a connection is only ever used on its actor's loop thread */
  int rc = sqlite3_open_v2("actor.db", db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                               SQLITE_OPEN_EXRESCODE | SQLITE_OPEN_NOMUTEX,
                           LMZ_SQLVFS_NAME);
  connecting = NULL;
  if (rc != SQLITE_OK) {
    lmz__errmsg_printf(errmsg, "sqlite3_open: %s",
                       *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
    sqlite3_close(*db);
    *db = NULL;
    return rc == SQLITE_NOMEM ? LMZ_ENOMEM : LMZ_EIO;
  }
  return 0;
}
