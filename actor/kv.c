/* actor/kv.c - a durable object's storage as its handlers see it:
 * synchronous get/put/delete/list over (turn overlay -> actor cache -> disk).
 *
 * Happy path: writes go into the turn's overlay (key -> encoded value or
 * delete); reads look in the overlay, then the actor's cache, then RocksDB
 * (and cache what they find). When the turn succeeds the overlay becomes one
 * batch (turn.c commits it) and moves into the cache tagged with the commit's
 * sequence number; a failed turn just drops its overlay (turn atomicity).
 * Failure modes:
 *  1. a worker, or a guard, touching storage: thrown Error;
 *  2. key too long (> 2048 bytes): thrown RangeError;
 *  3. a stored value that does not decode (corruption): thrown StorageError;
 *  4. RocksDB read error: thrown StorageError with RocksDB's text.
 * The cache is bounded: entries already durable are dropped when it grows
 * past CACHE_MAX_BYTES (entries not yet durable must stay: they may not be
 * readable from RocksDB yet). */
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "core/codec.h"
#include "storage/keys.h"
#include "storage/store.h"

#define CACHE_MAX_BYTES (4u << 20)

static int kv_check(lmz_ctx *ctx, size_t klen, bool write) {
  if (ctx->actor->binding->kind != LMZ_NODE_DO)
    return lmz_throwf(ctx, "Error", "storage is only available to durable objects");
  if (write && ctx->in_guard)
    return lmz_throwf(ctx, "Error", "guards must not write storage");
  if (klen > LMZ_KEY_USER_MAX)
    return lmz_throwf(ctx, "RangeError", "storage key longer than %d bytes",
                      LMZ_KEY_USER_MAX);
  return 0;
}

/* ---- cache --------------------------------------------------------------- */

static void cache_ent_free(struct lmz_cache_ent *e) {
  free(e->val);
  free(e);
}

void lmz__cache_free(lmz_actor *a) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&a->cache, &it, NULL, NULL, &v))
    cache_ent_free(v);
  lmz_hmap_free(&a->cache);
  a->cache_bytes = 0;
}

static void cache_trim(lmz_actor *a) {
  if (a->cache_bytes <= CACHE_MAX_BYTES)
    return;
  uint64_t durable = a->node->durable_seq;
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&a->cache, &it, &k, &kl, &v)) {
    struct lmz_cache_ent *e = v;
    if (e->seq > durable)
      continue;
    lmz_hmap_del(&a->cache, k, kl);
    a->cache_bytes -= e->klen + e->vlen + sizeof *e;
    cache_ent_free(e);
  }
}

static int cache_put(lmz_actor *a, const char *key, size_t klen,
                     const uint8_t *val, size_t vlen, bool present,
                     uint64_t seq) {
  struct lmz_cache_ent *e = lmz_hmap_get(&a->cache, key, klen);
  if (!e) {
    e = calloc(1, sizeof *e + klen + 1);
    if (!e)
      return LMZ_ENOMEM;
    e->key = (char *)(e + 1);
    memcpy(e->key, key, klen);
    e->klen = klen;
    if (lmz_hmap_put(&a->cache, e->key, klen, e, NULL)) {
      free(e);
      return LMZ_ENOMEM;
    }
    a->cache_bytes += klen + sizeof *e;
  }
  uint8_t *copy = NULL;
  if (present && !(copy = malloc(vlen ? vlen : 1)))
    return LMZ_ENOMEM;
  if (present && vlen)
    memcpy(copy, val, vlen);
  a->cache_bytes = a->cache_bytes - e->vlen + (present ? vlen : 0);
  free(e->val);
  e->val = copy;
  e->vlen = present ? vlen : 0;
  e->seq = seq;
  return 0;
}

/* ---- lookup -------------------------------------------------------------- */

static int full_key(lmz_actor *a, const char *key, size_t klen, uint8_t *out) {
  return lmz_key_join(out, a->prefix, a->prefix_len, LMZ_KEY_SPACE_USER, key, klen);
}

/* 1 = found (*val borrowed until the next storage call), 0 = absent, < 0 =
 * error (thrown). */
static int lookup(lmz_ctx *ctx, const char *key, size_t klen,
                  const uint8_t **val, size_t *vlen, lmz_buf *tmp) {
  struct lmz_kv_write *w = lmz_hmap_get(&ctx->writes, key, klen);
  if (w) {
    *val = w->val;
    *vlen = w->vlen;
    return w->val != NULL;
  }
  lmz_actor *a = ctx->actor;
  struct lmz_cache_ent *e = lmz_hmap_get(&a->cache, key, klen);
  if (e) {
    *val = e->val;
    *vlen = e->vlen;
    return e->val != NULL;
  }
  uint8_t fk[LMZ_KEY_MAX];
  int fl = full_key(a, key, klen, fk);
  if (fl < 0)
    return lmz_throwf(ctx, "RangeError", "invalid storage key");
  int rv = lmz_store_get(ctx->node->store, fk, (size_t)fl, tmp);
  if (rv == LMZ_ENOTFOUND) {
    cache_put(a, key, klen, NULL, 0, false, 0);
    return 0;
  }
  if (rv)
    return lmz_throwf(ctx, "StorageError", "read failed: %s",
                      ctx->node->store->errmsg);
  cache_put(a, key, klen, tmp->data, tmp->len, true, 0);
  cache_trim(a);
  *val = tmp->data;
  *vlen = tmp->len;
  return 1;
}

static int decode_into(lmz_ctx *ctx, const uint8_t *val, size_t vlen,
                       lmz_value **out) {
  struct lmz_codec_error err;
  int rv = lmz_bin_decode(ctx->arena, val, vlen, NULL, out, &err);
  if (rv)
    return lmz_throwf(ctx, "StorageError", "stored value is corrupt: %s", err.msg);
  return 0;
}

int lmz_kv_get_ex(lmz_ctx *ctx, const char *key, size_t klen, lmz_value **out) {
  int rv = kv_check(ctx, klen, false);
  if (rv)
    return rv;
  lmz_buf tmp = LMZ_BUF_INIT;
  const uint8_t *val;
  size_t vlen;
  rv = lookup(ctx, key, klen, &val, &vlen, &tmp);
  *out = NULL;
  if (rv == 1)
    rv = decode_into(ctx, val, vlen, out);
  else if (rv == 0)
    rv = LMZ_ENOTFOUND;
  lmz_buf_free(&tmp);
  return rv;
}

lmz_value *lmz_kv_get(lmz_ctx *ctx, const char *key) {
  lmz_value *v = NULL;
  int rv = lmz_kv_get_ex(ctx, key, strlen(key), &v);
  return rv == 0 ? v : NULL;
}

/* ---- writes -------------------------------------------------------------- */

static int overlay_set(lmz_ctx *ctx, const char *key, size_t klen,
                       uint8_t *val, size_t vlen) {
  struct lmz_kv_write *w = lmz_hmap_get(&ctx->writes, key, klen);
  if (!w) {
    w = lmz_arena_alloc(ctx->arena, sizeof *w);
    char *k = lmz_arena_strndup(ctx->arena, key, klen);
    if (!w || !k || lmz_hmap_put(&ctx->writes, k, klen, w, NULL))
      return LMZ_ENOMEM;
    *w = (struct lmz_kv_write){.key = k, .klen = klen};
    if (ctx->w_tail)
      ctx->w_tail->next = w;
    else
      ctx->w_head = w;
    ctx->w_tail = w;
  }
  w->val = val;
  w->vlen = vlen;
  return 0;
}

int lmz_kv_put_ex(lmz_ctx *ctx, const char *key, size_t klen,
                  const lmz_value *v) {
  int rv = kv_check(ctx, klen, true);
  if (rv)
    return rv;
  lmz_buf b = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  if ((rv = lmz_bin_encode(v, &b, &err))) {
    lmz_buf_free(&b);
    return lmz_throwf(ctx, "DataCloneError", "cannot store value: %s", err.msg);
  }
  uint8_t *copy = lmz_arena_alloc(ctx->arena, b.len ? b.len : 1);
  if (copy)
    memcpy(copy, b.data, b.len);
  size_t len = b.len;
  lmz_buf_free(&b);
  if (!copy)
    return LMZ_ENOMEM;
  return overlay_set(ctx, key, klen, copy, len);
}

int lmz_kv_put(lmz_ctx *ctx, const char *key, const lmz_value *v) {
  return lmz_kv_put_ex(ctx, key, strlen(key), v);
}

int lmz_kv_delete(lmz_ctx *ctx, const char *key) {
  size_t klen = strlen(key);
  int rv = kv_check(ctx, klen, true);
  return rv ? rv : overlay_set(ctx, key, klen, NULL, 0);
}

int lmz__turn_build_batch(lmz_ctx *ctx, struct lmz_batch **out) {
  *out = NULL;
  if (!ctx->w_head)
    return 0;
  lmz_batch *b = lmz_batch_new();
  if (!b)
    return LMZ_ENOMEM;
  uint8_t fk[LMZ_KEY_MAX];
  for (struct lmz_kv_write *w = ctx->w_head; w; w = w->next) {
    int fl = full_key(ctx->actor, w->key, w->klen, fk);
    int rv = fl < 0 ? fl
             : w->val ? lmz_batch_put(b, fk, (size_t)fl, w->val, w->vlen)
                      : lmz_batch_delete(b, fk, (size_t)fl);
    if (rv) {
      lmz_batch_free(b);
      return rv;
    }
  }
  *out = b;
  return 0;
}

void lmz__turn_apply_writes(lmz_ctx *ctx, uint64_t seq) {
  for (struct lmz_kv_write *w = ctx->w_head; w; w = w->next)
    if (cache_put(ctx->actor, w->key, w->klen, w->val, w->vlen, w->val != NULL, seq))
      LMZ_LOG_ERROR(&lmz__actor_log, "out of memory caching a write of %s",
                    ctx->actor->key);
  cache_trim(ctx->actor);
}

/* ---- list ---------------------------------------------------------------- */

struct list_ent {
  const char *key; /* user key, in the turn arena */
  size_t klen;
  const uint8_t *val; /* NULL = deleted */
  size_t vlen;
};

struct list_acc {
  lmz_ctx *ctx;
  struct list_ent *ents;
  size_t n, cap;
  size_t skip; /* bytes of actor prefix + space to strip */
  int err;
};

static int acc_push(struct list_acc *acc, const char *k, size_t kl,
                    const uint8_t *v, size_t vl, bool copy) {
  if (acc->n == acc->cap) {
    size_t cap = acc->cap ? acc->cap * 2 : 64;
    struct list_ent *e = realloc(acc->ents, cap * sizeof *e);
    if (!e)
      return acc->err = LMZ_ENOMEM;
    acc->ents = e;
    acc->cap = cap;
  }
  if (copy) {
    char *kc = lmz_arena_strndup(acc->ctx->arena, k, kl);
    uint8_t *vc = v ? lmz_arena_alloc(acc->ctx->arena, vl ? vl : 1) : NULL;
    if (!kc || (v && !vc))
      return acc->err = LMZ_ENOMEM;
    if (v)
      memcpy(vc, v, vl);
    k = kc;
    v = vc;
  }
  acc->ents[acc->n++] = (struct list_ent){k, kl, v, vl};
  return 0;
}

static int scan_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, void *arg) {
  struct list_acc *acc = arg;
  return acc_push(acc, (const char *)key + acc->skip, klen - acc->skip, val,
                  vlen, true);
}

static int key_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int c = memcmp(a, b, al < bl ? al : bl);
  return c ? c : (al < bl ? -1 : al > bl);
}

static bool in_range(const struct lmz_kv_list_opts *o, const char *k, size_t kl) {
  if (o->prefix && (kl < strlen(o->prefix) || memcmp(k, o->prefix, strlen(o->prefix))))
    return false;
  if (o->start && key_cmp(k, kl, o->start, strlen(o->start)) < 0)
    return false;
  if (o->end && key_cmp(k, kl, o->end, strlen(o->end)) >= 0)
    return false;
  return true;
}

/* Replaces or inserts `e` into the sorted accumulator. */
static int acc_merge(struct list_acc *acc, const struct list_ent *e) {
  size_t lo = 0, hi = acc->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (key_cmp(acc->ents[mid].key, acc->ents[mid].klen, e->key, e->klen) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < acc->n && !key_cmp(acc->ents[lo].key, acc->ents[lo].klen, e->key, e->klen)) {
    acc->ents[lo] = *e;
    return 0;
  }
  if (acc_push(acc, e->key, e->klen, e->val, e->vlen, false))
    return acc->err;
  memmove(&acc->ents[lo + 1], &acc->ents[lo], (acc->n - 1 - lo) * sizeof *acc->ents);
  acc->ents[lo] = *e;
  return 0;
}

/* Collects the entries not yet durable (cache with seq > durable, overlay),
 * which RocksDB may not show yet, and merges them over the scan. */
static int merge_dirty(lmz_ctx *ctx, const struct lmz_kv_list_opts *o,
                       struct list_acc *acc) {
  uint64_t durable = ctx->node->durable_seq;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&ctx->actor->cache, &it, NULL, NULL, &v)) {
    struct lmz_cache_ent *e = v;
    if (e->seq > durable && in_range(o, e->key, e->klen) &&
        acc_merge(acc, &(struct list_ent){e->key, e->klen, e->val, e->vlen}))
      return acc->err;
  }
  for (struct lmz_kv_write *w = ctx->w_head; w; w = w->next)
    if (in_range(o, w->key, w->klen) &&
        acc_merge(acc, &(struct list_ent){w->key, w->klen, w->val, w->vlen}))
      return acc->err;
  return 0;
}

static size_t count_dirty(lmz_ctx *ctx) {
  size_t n = ctx->writes.n;
  uint64_t durable = ctx->node->durable_seq;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&ctx->actor->cache, &it, NULL, NULL, &v))
    n += ((struct lmz_cache_ent *)v)->seq > durable;
  return n;
}

static int list_scan(lmz_ctx *ctx, const struct lmz_kv_list_opts *o,
                     struct list_acc *acc) {
  lmz_actor *a = ctx->actor;
  lmz_key_range r;
  const char *p = o->prefix ? o->prefix : "";
  if (lmz_key_list_range(&r, a->prefix, a->prefix_len, LMZ_KEY_SPACE_USER, p,
                         strlen(p)))
    return lmz_throwf(ctx, "RangeError", "invalid list prefix");
  uint8_t lo[LMZ_KEY_MAX], hi[LMZ_KEY_MAX];
  const uint8_t *lower = r.lower, *upper = r.upper;
  size_t lower_len = r.lower_len, upper_len = r.upper_len;
  int l;
  if (o->start && (l = full_key(a, o->start, strlen(o->start), lo)) > 0 &&
      key_cmp((char *)lo, (size_t)l, (char *)lower, lower_len) > 0)
    lower = lo, lower_len = (size_t)l;
  if (o->end && (l = full_key(a, o->end, strlen(o->end), hi)) > 0 &&
      key_cmp((char *)hi, (size_t)l, (char *)upper, upper_len) < 0)
    upper = hi, upper_len = (size_t)l;
  if (key_cmp((char *)lower, lower_len, (char *)upper, upper_len) >= 0)
    return 0;
  size_t dirty = count_dirty(ctx);
  size_t limit = o->limit && !o->reverse ? o->limit + dirty : 0;
  acc->skip = a->prefix_len + 1;
  int rv = lmz_store_scan(ctx->node->store, lower, lower_len, upper, upper_len,
                          limit, false, scan_cb, acc);
  if (rv < 0)
    return acc->err ? acc->err
                    : lmz_throwf(ctx, "StorageError", "list failed: %s",
                                 ctx->node->store->errmsg);
  return merge_dirty(ctx, o, acc);
}

int lmz_kv_list(lmz_ctx *ctx, const struct lmz_kv_list_opts *opts,
                lmz_value **out) {
  struct lmz_kv_list_opts none = {0};
  const struct lmz_kv_list_opts *o = opts ? opts : &none;
  int rv = kv_check(ctx, o->prefix ? strlen(o->prefix) : 0, false);
  if (rv)
    return rv;
  struct list_acc acc = {.ctx = ctx};
  lmz_value *map = lmz_map(ctx->arena);
  if (!map)
    return LMZ_ENOMEM;
  if (!(rv = list_scan(ctx, o, &acc))) {
    size_t emitted = 0;
    for (size_t i = 0; i < acc.n && !rv; i++) {
      const struct list_ent *e = &acc.ents[o->reverse ? acc.n - 1 - i : i];
      if (!e->val)
        continue;
      if (o->limit && emitted == o->limit)
        break;
      lmz_value *v;
      if (!(rv = decode_into(ctx, e->val, e->vlen, &v)))
        rv = lmz_map_set(map, lmz_string(ctx->arena, e->key, e->klen), v);
      emitted++;
    }
  }
  free(acc.ents);
  if (!rv)
    *out = map;
  return rv;
}
