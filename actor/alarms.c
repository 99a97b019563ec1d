/* actor/alarms.c - durable alarms: schedules that run a continuation on a
 * durable object at a time, after a delay, or repeatedly by cron.
 *
 * Storage (two keys per alarm, written in the same batch as the turn that
 * schedules, runs or cancels it, so alarms are exactly as atomic as turns):
 *   actor framework space  "alarm:" id       -> record (binary value)
 *     record = {id, type, time, operationChain, retries, maxRetries,
 *               delayMs? | cron?}
 *   node index   'N' "alarmq" be64(time) binding '\0' instance '\0' id
 *                                            -> empty
 * The index sorts by due time across all actors, so the node finds due
 * alarms with one range scan, including after a restart.
 *
 * Firing (at least once): a poll scans the index up to now, and for each due
 * entry not already in flight delivers an ALARM message to the actor
 * (activating it). When that turn ends, in the turn's own batch:
 *   success  -> one-shot: record and index deleted; cron: moved to next time;
 *   failure  -> retries+1 and moved to now + 1 s * 2^retries, or dropped
 *               (logged) past maxRetries.
 * A crash before the batch is durable leaves the alarm due: it runs again.
 * Failure modes: a corrupt record is logged and deleted; an actor whose
 * binding vanished from the config keeps its alarm (logged, retried later). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/actor_int.h"
#include "actor/router.h"
#include "core/codec.h"
#include "core/cron.h"
#include "storage/keys.h"
#include "storage/store.h"

#define IDX_PREFIX "alarmq"
#define IDX_PREFIX_LEN 6
#define REC_PREFIX "alarm:"
#define DEFAULT_MAX_RETRIES 5
#define POLL_MAX_DELAY_MS 60000.0
#define FIRE_BATCH 1024

struct lmz_alarm_op {
  struct lmz_alarm_op *next;
  char *id;
  double old_time;    /* index entry to delete (< 0 = none) */
  lmz_value *record;  /* new record to write, NULL = delete the record */
  double new_time;
};

struct lmz_alarm_run {
  char *id;
  double time;
  lmz_value *record;
  uint8_t *ikey; /* its index key (the in-flight set's key) */
  size_t iklen;
};

/* in-flight alarms: index key -> commit seq after which it may fire again */
struct inflight {
  uint64_t done_seq; /* 0 = its turn has not finished yet */
  size_t klen;
  uint8_t key[];
};


/* ---- keys ---------------------------------------------------------------- */

static size_t be64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
  return 8;
}

static int index_key(uint8_t *out, double time, const char *binding,
                     const char *instance, const char *id) {
  uint8_t name[LMZ_KEY_USER_MAX];
  size_t bl = strlen(binding), il = strlen(instance), dl = strlen(id);
  size_t len = IDX_PREFIX_LEN + 8 + bl + 1 + il + 1 + dl;
  if (len > sizeof name)
    return LMZ_EINVAL;
  uint8_t *p = name;
  memcpy(p, IDX_PREFIX, IDX_PREFIX_LEN);
  p += IDX_PREFIX_LEN;
  p += be64(p, time > 0 ? (uint64_t)time : 0);
  memcpy(p, binding, bl + 1);
  p += bl + 1;
  memcpy(p, instance, il + 1);
  p += il + 1;
  memcpy(p, id, dl);
  return lmz_key_node(out, name, len);
}

static int record_key(uint8_t *out, const lmz_actor *a, const char *id) {
  char k[256];
  int kl = snprintf(k, sizeof k, REC_PREFIX "%s", id);
  if (kl < 0 || (size_t)kl >= sizeof k)
    return LMZ_EINVAL;
  return lmz_key_join(out, a->prefix, a->prefix_len, LMZ_KEY_SPACE_FRAMEWORK,
                      k, (size_t)kl);
}

/* ---- records ------------------------------------------------------------- */

static double rec_num(const lmz_value *rec, const char *k) {
  lmz_value *v = lmz_object_getc(rec, k);
  return v && lmz_typeof(v) == LMZ_T_NUMBER ? lmz_get_number(v) : -1;
}

static const char *rec_str(const lmz_value *rec, const char *k) {
  lmz_value *v = lmz_object_getc(rec, k);
  return v && lmz_typeof(v) == LMZ_T_STRING ? lmz_get_str(v, NULL) : NULL;
}

static int rec_set_num(lmz_arena *a, lmz_value *rec, const char *k, double d) {
  return lmz_object_setc(rec, k, lmz_number(a, d));
}

static lmz_value *make_record(lmz_ctx *ctx, const char *id, const char *type,
                              double time, lmz_ctn *c,
                              const struct lmz_alarm_opts *o) {
  lmz_arena *a = ctx->arena;
  lmz_value *rec = lmz_object(a);
  int maxr = o && o->max_retries ? o->max_retries : DEFAULT_MAX_RETRIES;
  if (!rec || lmz_object_setc(rec, "id", lmz_cstring(a, id)) ||
      lmz_object_setc(rec, "type", lmz_cstring(a, type)) ||
      rec_set_num(a, rec, "time", time) ||
      lmz_object_setc(rec, "operationChain", lmz_ctn_chain(c)) ||
      rec_set_num(a, rec, "retries", 0) ||
      rec_set_num(a, rec, "maxRetries", maxr < 0 ? 0 : maxr))
    return NULL;
  return rec;
}

/* ---- scheduling from a turn --------------------------------------------- */

static int add_op(lmz_ctx *ctx, const char *id, double old_time,
                  lmz_value *record, double new_time) {
  struct lmz_alarm_op *op = lmz_arena_alloc(ctx->arena, sizeof *op);
  char *idc = lmz_arena_strndup(ctx->arena, id, strlen(id));
  if (!op || !idc)
    return LMZ_ENOMEM;
  *op = (struct lmz_alarm_op){NULL, idc, old_time, record, new_time};
  struct lmz_alarm_op **pp = &ctx->alarm_ops;
  while (*pp)
    pp = &(*pp)->next;
  *pp = op;
  return 0;
}

/* Finds the current record of `id`: this turn's own ops first, then disk. */
static int load_record(lmz_ctx *ctx, const char *id, lmz_value **out) {
  lmz_value *found = NULL;
  bool seen = false;
  for (struct lmz_alarm_op *op = ctx->alarm_ops; op; op = op->next)
    if (!strcmp(op->id, id))
      found = op->record, seen = true;
  if (seen) {
    *out = found;
    return found ? 0 : LMZ_ENOTFOUND;
  }
  uint8_t k[LMZ_KEY_MAX];
  int kl = record_key(k, ctx->actor, id);
  if (kl < 0)
    return kl;
  lmz_buf b = LMZ_BUF_INIT;
  int rv = lmz_store_get(ctx->node->store, k, (size_t)kl, &b);
  if (!rv)
    rv = lmz_bin_decode(ctx->arena, b.data, b.len, NULL, out, NULL);
  lmz_buf_free(&b);
  return rv;
}

static int check_do(lmz_ctx *ctx) {
  if (ctx->actor->binding->kind != LMZ_NODE_DO)
    return lmz_throwf(ctx, "Error", "alarms are only available to durable objects");
  if (ctx->in_guard)
    return lmz_throwf(ctx, "Error", "guards must not schedule alarms");
  return 0;
}

static int schedule(lmz_ctx *ctx, const char *type, double time, lmz_ctn *c,
                    const struct lmz_alarm_opts *o, lmz_value **out,
                    const char *extra_key, lmz_value *extra) {
  int rv = check_do(ctx);
  if (rv)
    return rv;
  if (!c || !lmz_ctn_chain(c))
    return lmz_throwf(ctx, "Error", "Invalid continuation: must be created with lmz_ctn_new()");
  if (!isfinite(time))
    return lmz_throwf(ctx, "Error", "Invalid schedule type");
  static uint64_t seq;
  char idbuf[64];
  const char *id = o && o->id ? o->id : idbuf;
  if (!(o && o->id))
    snprintf(idbuf, sizeof idbuf, "%013.0f-%08llu-%s", lmz_now_ms(ctx),
             (unsigned long long)++seq, ctx->node->boot_id);
  if (strlen(id) == 0 || strlen(id) > 128)
    return lmz_throwf(ctx, "RangeError", "alarm id must be 1..128 bytes");
  lmz_value *old = NULL;
  double old_time = load_record(ctx, id, &old) == 0 ? rec_num(old, "time") : -1;
  lmz_value *rec = make_record(ctx, id, type, time, c, o);
  if (!rec || (extra_key && lmz_object_setc(rec, extra_key, extra)))
    return LMZ_ENOMEM;
  if ((rv = add_op(ctx, id, old_time, rec, time)))
    return rv;
  if (out)
    *out = rec;
  return 0;
}

int lmz_alarm_at(lmz_ctx *ctx, double unix_ms, lmz_ctn *c,
                 const struct lmz_alarm_opts *opts, lmz_value **out) {
  return schedule(ctx, "scheduled", unix_ms, c, opts, out, NULL, NULL);
}

int lmz_alarm_after(lmz_ctx *ctx, double delay_ms, lmz_ctn *c,
                    const struct lmz_alarm_opts *opts, lmz_value **out) {
  if (!isfinite(delay_ms) || delay_ms < 0)
    return lmz_throwf(ctx, "Error", "Invalid schedule type");
  return schedule(ctx, "delayed", lmz_now_ms(ctx) + delay_ms, c, opts, out,
                  "delayMs", lmz_number(ctx->arena, delay_ms));
}

int lmz_alarm_cron(lmz_ctx *ctx, const char *expr, lmz_ctn *c,
                   const struct lmz_alarm_opts *opts, lmz_value **out) {
  lmz_cron cron;
  char err[LMZ_ERRMSG_LEN];
  if (!expr || lmz_cron_parse(expr, &cron, err))
    return lmz_throwf(ctx, "Error", "Invalid cron expression: %s", expr ? err : "NULL");
  int64_t next = lmz_cron_next(&cron, (int64_t)lmz_now_ms(ctx));
  if (next < 0)
    return lmz_throwf(ctx, "Error", "cron expression '%s' never fires", expr);
  return schedule(ctx, "cron", (double)next, c, opts, out, "cron",
                  lmz_cstring(ctx->arena, expr));
}

int lmz_alarm_cancel(lmz_ctx *ctx, const char *id, bool *found) {
  int rv = check_do(ctx);
  if (rv)
    return rv;
  lmz_value *old = NULL;
  rv = load_record(ctx, id, &old);
  if (found)
    *found = rv == 0;
  if (rv == LMZ_ENOTFOUND)
    return 0;
  if (rv)
    return lmz_throwf(ctx, "StorageError", "cannot read alarm %s", id);
  return add_op(ctx, id, rec_num(old, "time"), NULL, -1);
}

/* ---- listing ------------------------------------------------------------- */

struct list_acc {
  lmz_ctx *ctx;
  lmz_value *arr;
  int err;
};

static int list_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                   size_t vlen, void *arg) {
  (void)key, (void)klen;
  struct list_acc *acc = arg;
  lmz_value *rec;
  if (lmz_bin_decode(acc->ctx->arena, val, vlen, NULL, &rec, NULL) == 0 &&
      lmz_typeof(rec) == LMZ_T_OBJECT)
    acc->err = lmz_array_push(acc->arr, rec);
  return acc->err;
}

static int rec_cmp(const void *pa, const void *pb) {
  const lmz_value *a = *(lmz_value *const *)pa, *b = *(lmz_value *const *)pb;
  double ta = rec_num(a, "time"), tb = rec_num(b, "time");
  if (ta != tb)
    return ta < tb ? -1 : 1;
  return strcmp(rec_str(a, "id"), rec_str(b, "id"));
}

int lmz_alarm_list(lmz_ctx *ctx, lmz_value **out) {
  int rv = check_do(ctx);
  if (rv)
    return rv;
  lmz_key_range r;
  lmz_key_list_range(&r, ctx->actor->prefix, ctx->actor->prefix_len,
                     LMZ_KEY_SPACE_FRAMEWORK, REC_PREFIX, strlen(REC_PREFIX));
  lmz_value *disk = lmz_array(ctx->arena, 8);
  struct list_acc acc = {ctx, disk, 0};
  if (!disk || lmz_store_scan(ctx->node->store, r.lower, r.lower_len, r.upper,
                              r.upper_len, 0, false, list_cb, &acc) < 0 || acc.err)
    return acc.err ? acc.err : lmz_throwf(ctx, "StorageError", "cannot list alarms");
  /* apply this turn's own changes over what is on disk */
  size_t n = lmz_len(disk);
  lmz_value **v = lmz_arena_alloc(ctx->arena, (n + 64) * sizeof *v);
  size_t m = 0;
  for (size_t i = 0; v && i < n; i++) {
    lmz_value *rec = lmz_array_get(disk, i);
    bool replaced = false;
    for (struct lmz_alarm_op *op = ctx->alarm_ops; op; op = op->next)
      replaced |= !strcmp(op->id, rec_str(rec, "id") ? rec_str(rec, "id") : "");
    if (!replaced)
      v[m++] = rec;
  }
  for (struct lmz_alarm_op *op = ctx->alarm_ops; v && op; op = op->next) {
    bool later = false; /* only the last op of an id counts */
    for (struct lmz_alarm_op *o2 = op->next; o2; o2 = o2->next)
      later |= !strcmp(o2->id, op->id);
    if (!later && op->record && m < n + 64)
      v[m++] = op->record;
  }
  if (!v)
    return LMZ_ENOMEM;
  qsort(v, m, sizeof *v, rec_cmp);
  lmz_value *arr = lmz_array(ctx->arena, m);
  for (size_t i = 0; arr && i < m; i++)
    if (lmz_array_push(arr, v[i]))
      arr = NULL;
  if (!arr)
    return LMZ_ENOMEM;
  *out = arr;
  return 0;
}

/* ---- applying a turn's alarm changes ------------------------------------ */

static int apply_op(lmz_node_t *n, lmz_actor *a, struct lmz_alarm_op *op,
                    lmz_batch *b) {
  uint8_t k[LMZ_KEY_MAX];
  int kl;
  const char *inst = a->instance ? a->instance : "";
  if (op->old_time >= 0) {
    if ((kl = index_key(k, op->old_time, a->binding->name, inst, op->id)) < 0 ||
        lmz_batch_delete(b, k, (size_t)kl))
      return kl < 0 ? kl : LMZ_ENOMEM;
  }
  if ((kl = record_key(k, a, op->id)) < 0)
    return kl;
  if (!op->record)
    return lmz_batch_delete(b, k, (size_t)kl);
  lmz_buf enc = LMZ_BUF_INIT;
  int rv = lmz_bin_encode(op->record, &enc, NULL);
  if (!rv)
    rv = lmz_batch_put(b, k, (size_t)kl, enc.data, enc.len);
  lmz_buf_free(&enc);
  if (rv)
    return rv;
  if ((kl = index_key(k, op->new_time, a->binding->name, inst, op->id)) < 0)
    return kl;
  if (!n->alarm_next_ms || op->new_time < n->alarm_next_ms)
    n->alarm_rearm = true;
  return lmz_batch_put(b, k, (size_t)kl, "", 0);
}

int lmz__alarms_add_to_batch(lmz_ctx *ctx, lmz_batch *b) {
  for (struct lmz_alarm_op *op = ctx->alarm_ops; op; op = op->next) {
    int rv = apply_op(ctx->node, ctx->actor, op, b);
    if (rv)
      return rv;
  }
  return 0;
}

/* Bookkeeping for a finished alarm turn (see the file comment). The user's
 * own alarm changes of a failed turn were dropped by the caller. */
void lmz__alarm_turn_done(lmz_ctx *ctx, int rv) {
  lmz_node_t *n = ctx->node;
  struct lmz_alarm_run *run = ctx->msg->alarm;
  lmz_arena *a = ctx->arena;
  lmz_value *rec = lmz_value_copy(a, run->record);
  const char *type = rec_str(rec, "type");
  double now = lmz_node_now_ms(n);
  n->stats.alarms_fired++;
  if (rv == 0 && type && !strcmp(type, "cron")) {
    lmz_cron cron;
    char err[LMZ_ERRMSG_LEN];
    const char *expr = rec_str(rec, "cron");
    int64_t next = expr && !lmz_cron_parse(expr, &cron, err)
                       ? lmz_cron_next(&cron, (int64_t)(now > run->time ? now : run->time))
                       : -1;
    if (next >= 0 && !rec_set_num(a, rec, "time", (double)next) &&
        !rec_set_num(a, rec, "retries", 0)) {
      add_op(ctx, run->id, run->time, rec, (double)next);
      goto done;
    }
  }
  if (rv == 0) {
    add_op(ctx, run->id, run->time, NULL, -1);
    goto done;
  }
  double retries = rec_num(rec, "retries") + 1, maxr = rec_num(rec, "maxRetries");
  if (retries > maxr) {
    LMZ_LOG_ERROR(&lmz__actor_log, "alarm %s of %s failed %g times; dropped"
                  LMZ__TRACE_FMT, run->id, ctx->actor->key, retries,
                  LMZ__TRACE_ARGS(ctx->cctx));
    add_op(ctx, run->id, run->time, NULL, -1);
    goto done;
  }
  double delay = fmin(1000.0 * pow(2.0, retries - 1), 3600000.0);
  LMZ_LOG_WARN(&lmz__actor_log, "alarm %s of %s failed; retry %g in %.0f ms"
               LMZ__TRACE_FMT, run->id, ctx->actor->key, retries, delay,
               LMZ__TRACE_ARGS(ctx->cctx));
  rec_set_num(a, rec, "retries", retries);
  rec_set_num(a, rec, "time", now + delay);
  add_op(ctx, run->id, run->time, rec, now + delay);
done:;
  /* it may fire again once this batch is durable (at-least-once) */
  struct inflight *f = lmz_hmap_get(&n->alarms_inflight, run->ikey, run->iklen);
  if (f)
    f->done_seq = n->next_seq + 1;
}

/* ---- firing -------------------------------------------------------------- */

struct fire_acc {
  lmz_node_t *n;
  int fired;
  int skipped; /* due, but not ours to run now (another owner, no lease) */
  double first_future; /* time of the first entry not fired, or -1 */
  double now;
};

/* Parses an index key: 'N' "alarmq" be64 binding \0 instance \0 id. */
static int parse_index(const uint8_t *k, size_t kl, double *time,
                       const char **binding, const char **instance,
                       const char **id, size_t *idlen) {
  size_t off = 1 + IDX_PREFIX_LEN;
  if (kl < off + 8 + 3)
    return LMZ_EBADMSG;
  uint64_t t = 0;
  for (int i = 0; i < 8; i++)
    t = t << 8 | k[off + (size_t)i];
  *time = (double)t;
  const char *p = (const char *)k + off + 8, *end = (const char *)k + kl;
  const char *z1 = memchr(p, 0, (size_t)(end - p));
  const char *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(end - z1 - 1)) : NULL;
  if (!z2 || z2 + 1 >= end)
    return LMZ_EBADMSG;
  *binding = p;
  *instance = z1 + 1;
  *id = z2 + 1;
  *idlen = (size_t)(end - z2 - 1);
  return 0;
}

static int fire_one(lmz_node_t *n, const uint8_t *k, size_t kl, double time,
                    const char *binding, const char *instance, const char *id,
                    size_t idlen) {
  struct lmz_binding *b = lmz__binding_get(n, binding);
  if (!b || b->kind != LMZ_NODE_DO) {
    LMZ_LOG_WARN(&lmz__actor_log, "alarm for unknown binding %s kept", binding);
    return LMZ_ENOTFOUND;
  }
  lmz_msg *m = lmz__msg_new(n);
  if (!m)
    return LMZ_ENOMEM;
  struct lmz_alarm_run *run = lmz_arena_alloc(m->arena, sizeof *run + kl);
  lmz_actor *a = NULL;
  uint64_t epoch = n->router ? lmz__router_epoch(n->router, binding, instance) : 0;
  int rv = run ? lmz__actor_for_epoch(n, b, instance, epoch, &a) : LMZ_ENOMEM;
  uint8_t rk[LMZ_KEY_MAX];
  lmz_buf enc = LMZ_BUF_INIT;
  if (!rv) {
    run->id = lmz_arena_strndup(m->arena, id, idlen);
    run->time = time;
    run->ikey = (uint8_t *)(run + 1);
    memcpy(run->ikey, k, kl);
    run->iklen = kl;
    int rkl = record_key(rk, a, run->id);
    rv = rkl < 0 ? rkl : lmz_store_get(n->store, rk, (size_t)rkl, &enc);
  }
  if (!rv)
    rv = lmz_bin_decode(m->arena, enc.data, enc.len, NULL, &run->record, NULL);
  lmz_buf_free(&enc);
  lmz_value *chain = rv ? NULL : lmz_object_getc(run->record, "operationChain");
  if (!rv && !chain)
    rv = LMZ_EBADMSG;
  if (!rv) {
    m->kind = LMZ_MSG_ALARM;
    m->binding = b;
    m->instance = a->instance;
    m->chain = chain;
    m->alarm = run;
    m->cctx.state = lmz_object(m->arena);
    m->binding = NULL; /* delivered directly below, not an outgoing call */
    lmz__mailbox_push(n, a, m);
    return 0;
  }
  if (rv == LMZ_EUNAVAILABLE) /* a stale activation still busy: next poll */
    LMZ_LOG_DEBUG(&lmz__actor_log, "alarm %.*s of %s/%s waits for the old "
                  "activation to finish", (int)idlen, id, binding, instance);
  else
    LMZ_LOG_ERROR(&lmz__actor_log, "alarm %.*s of %s/%s is unreadable (%s)",
                  (int)idlen, id, binding, instance, lmz_strerror(rv));
  lmz__msg_free(n, m);
  return rv;
}

static int poll_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   void *arg) {
  (void)v, (void)vl;
  struct fire_acc *acc = arg;
  lmz_node_t *n = acc->n;
  if (lmz_hmap_get(&n->alarms_inflight, k, kl))
    return 0;
  double time;
  const char *binding, *instance, *id;
  size_t idlen;
  if (parse_index(k, kl, &time, &binding, &instance, &id, &idlen))
    return 0;
  if (time > acc->now || acc->fired >= FIRE_BATCH) {
    acc->first_future = time;
    return 1;
  }
  /* Only the owner runs an actor's alarms, and only under its lease: a
   * node that lost the actor by a failover still holds its index entry
   * (the owner indexed them when it adopted the actor). Kept, not deleted:
   * our directory may be behind (an import indexes before its move
   * commits). */
  if (n->router && lmz_router_owns(n->router, binding, instance)) {
    acc->skipped++;
    return 0;
  }
  struct inflight *f = malloc(sizeof *f + kl);
  if (!f)
    return 1;
  f->done_seq = 0;
  f->klen = kl;
  memcpy(f->key, k, kl);
  int rv = fire_one(n, k, kl, time, binding, instance, id, idlen);
  if (rv || lmz_hmap_put(&n->alarms_inflight, f->key, kl, f, NULL)) {
    free(f);
    acc->skipped += rv == LMZ_EUNAVAILABLE; /* polled again soon */
    return 0;
  }
  acc->fired++;
  return 0;
}

static void clean_inflight(lmz_node_t *n) {
  size_t it = 0;
  const void *k;
  size_t kl;
  void *v;
  while (lmz_hmap_next(&n->alarms_inflight, &it, &k, &kl, &v)) {
    struct inflight *f = v;
    if (f->done_seq && f->done_seq <= n->durable_seq) {
      lmz_hmap_del(&n->alarms_inflight, k, kl);
      free(f);
    }
  }
}

static void alarm_timer_cb(uv_timer_t *t) {
  lmz_node_poll_alarms(t->data);
}

int lmz_node_poll_alarms(lmz_node_t *n) {
  if (n->closing || !n->store)
    return 0;
  clean_inflight(n);
  lmz_key_range r;
  lmz_key_node_range(&r);
  uint8_t lo[LMZ_KEY_MAX];
  int lol = lmz_key_node(lo, IDX_PREFIX, IDX_PREFIX_LEN);
  uint8_t hi[LMZ_KEY_MAX];
  int hil = lmz_key_node(hi, "alarmr", IDX_PREFIX_LEN); /* just past "alarmq" */
  struct fire_acc acc = {n, 0, 0, -1, lmz_node_now_ms(n)};
  lmz_store_scan(n->store, lo, (size_t)lol, hi, (size_t)hil, 0, false, poll_cb,
                 &acc);
  n->alarm_rearm = false;
  n->alarm_next_ms = acc.first_future > 0 ? acc.first_future : 0;
  if (!n->opts.manual_alarms) {
    double delay = acc.fired >= FIRE_BATCH ? 0
                   : acc.first_future < 0 ? POLL_MAX_DELAY_MS
                                          : fmin(fmax(acc.first_future - acc.now, 0),
                                                 POLL_MAX_DELAY_MS);
    /* in-flight alarms are re-checked soon: their turns may fail and
     * retry; skipped ones may become ours (a lease, an adoption) */
    if ((n->alarms_inflight.n || acc.skipped) && delay > 250)
      delay = 250;
    uv_timer_start(&n->alarm_timer, alarm_timer_cb, (uint64_t)delay, 0);
  }
  return acc.fired;
}

/* Index entries written outside a turn (an adopted or imported actor's
 * alarms) are visible only once their commit is done: poll then, whatever
 * ran meanwhile. A poll between the write and the commit clears
 * alarm_rearm without seeing them, and with no other alarm due would not
 * look again for POLL_MAX_DELAY_MS. */
void lmz__alarms_indexed(lmz_node_t *n) {
  if (n->opts.manual_alarms || n->closing)
    return;
  n->alarm_rearm = false;
  uv_timer_start(&n->alarm_timer, alarm_timer_cb, 0, 0);
}

void lmz__alarms_arm(lmz_node_t *n) {
  if (n->alarm_rearm)
    lmz__alarms_indexed(n);
}

int lmz__alarms_recover(lmz_node_t *n) {
  if (!n->opts.manual_alarms)
    uv_timer_start(&n->alarm_timer, alarm_timer_cb, 0, 0);
  return 0;
}

void lmz__alarms_free(lmz_node_t *n) {
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&n->alarms_inflight, &it, NULL, NULL, &v))
    free(v);
  lmz_hmap_free(&n->alarms_inflight);
}

double lmz_node_next_alarm_ms(lmz_node_t *n) { return n->alarm_next_ms; }

/* ---- moving an actor: its alarms' node index entries --------------------- */

struct index_acc {
  const char *binding, *instance;
  lmz_batch *b;
  bool put;
  int err;
  lmz_arena *a; /* one arena for the scan, reset per record */
};

static int index_cb(const uint8_t *key, size_t klen, const uint8_t *val,
                    size_t vlen, void *arg) {
  (void)key, (void)klen;
  struct index_acc *acc = arg;
  lmz_arena *a = acc->a;
  lmz_arena_reset(a);
  lmz_value *rec = NULL;
  uint8_t k[LMZ_KEY_MAX];
  int kl = -1;
  if (a && lmz_bin_decode(a, val, vlen, NULL, &rec, NULL) == 0 &&
      lmz_typeof(rec) == LMZ_T_OBJECT && rec_str(rec, "id"))
    kl = index_key(k, rec_num(rec, "time"), acc->binding, acc->instance,
                   rec_str(rec, "id"));
  if (kl > 0)
    acc->err = acc->put ? lmz_batch_put(acc->b, k, (size_t)kl, "", 0)
                        : lmz_batch_delete(acc->b, k, (size_t)kl);
  return acc->err;
}

int lmz__alarms_index_actor(lmz_node_t *n, const char *binding,
                            const char *instance, lmz_batch *b, bool put) {
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, binding, strlen(binding), instance,
                                strlen(instance));
  lmz_key_range r;
  if (pl < 0 || lmz_key_list_range(&r, prefix, (size_t)pl, LMZ_KEY_SPACE_FRAMEWORK,
                                   REC_PREFIX, strlen(REC_PREFIX)))
    return LMZ_EINVAL;
  struct index_acc acc = {binding, instance, b, put, 0, lmz_arena_new()};
  if (!acc.a)
    return LMZ_ENOMEM;
  int rv = lmz_store_scan(n->store, r.lower, r.lower_len, r.upper, r.upper_len,
                          0, false, index_cb, &acc);
  lmz_arena_free(acc.a);
  if (put)
    n->alarm_rearm = true;
  return rv < 0 ? rv : acc.err;
}
