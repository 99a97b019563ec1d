/* cluster/repl_backup.c - replication streams, backup side (DESIGN.md 4.1,
 * cluster/repl.h BACKUP SIDE).
 *
 * Happy path: a ReplAppend from an owner continues its stream (same
 * generation, first_seq == the next expected) or starts a new generation at
 * seq 1. Every record is checked and its operations go into ONE store batch
 * for the whole frame (OPS: the batch wire format, confined to the record's
 * actor range; FILL: an actor dump, lmz_store_import, replacing the range);
 * the batch is committed on the stream's chain (group commit: one fsync for
 * many frames) and, from the commit callback (in commit order), ReplAck
 * reports the highest durable sequence. Backed-up actors are never
 * activated here: nothing but the store sees the records.
 *
 * Failure modes (each answers ReplAck with a negative status and a detail,
 * and forgets the sender's stream, so its next append must start a new
 * generation at seq 1; nothing of the refused frame is applied):
 *  1. Malformed: no records, too many, generation or first_seq 0, bad names,
 *     unknown kind, data over LMZ_REPL_MAX_RECORD_BYTES, undecodable batch
 *     or dump, a dump of another actor: LMZ_EBADMSG (or the decoder's code).
 *  2. A sequence gap, or a new generation not starting at 1: LMZ_EBADMSG.
 *  3. A stale owner: the record's epoch is older than the local
 *     directory's, or equal while the directory names another owner:
 *     LMZ_ESTALE. (A newer epoch than ours is accepted: our replica lags.)
 *  4. An operation outside the record's actor range: LMZ_EACCESS.
 *  5. The commit fails (disk): LMZ_ESTORAGE; the stream's chain breaks, so
 *     no later batch of that generation reaches the disk either.
 *  6. Ack send fails (link full): retried from lmz_repl_flush.
 *
 * Catch-up (cluster/repl.h CATCH-UP): every applied batch also records the
 * sender's (generation, last seq) under a node-level key, so an append that
 * continues a generation this node forgot (link loss, restart) resumes
 * after the durable sequence; records at or below what was already
 * received are skipped (a resumed owner sends everything it has not seen
 * acknowledged). A node whose store lost that key refuses (a gap). */
#include <stdlib.h>
#include <string.h>

#include "cluster/repl_int.h"
#include "core/err.h"

static struct istream *in_get(lmz_repl_t *r, uint64_t node) {
  for (size_t i = 0; i < r->n_in; i++)
    if (r->in[i]->node == node)
      return r->in[i];
  return NULL;
}

void lmz__repl_in_forget(lmz_repl_t *r, uint64_t node) {
  for (size_t i = 0; i < r->n_in; i++)
    if (r->in[i]->node == node) {
      lmz_chain_unref(r->in[i]->chain);
      free(r->in[i]);
      r->in[i] = r->in[--r->n_in];
      return;
    }
}

void lmz__repl_in_free(lmz_repl_t *r) {
  for (size_t i = 0; i < r->n_in; i++) {
    lmz_chain_unref(r->in[i]->chain);
    free(r->in[i]);
  }
  free(r->in);
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&r->imports, &it, NULL, NULL, &v))
    free(v);
  lmz_hmap_free(&r->imports);
}

/* ---- drain imports --------------------------------------------------------
 * A drain imports an actor here while its old owner's stream to us may
 * still carry an older record of it (kept for a closed stream and resent on
 * catch-up, or queued behind a full link): applied after the import, it
 * would overwrite the newer imported state with an older one. So, until
 * the directory shows the move (then the epoch check refuses such records)
 * or the fence times out (a drain that never moved it), a record of that
 * actor from the old owner is refused: the owner drops the stream and
 * refills us, which replaces our copy wholesale. */

void lmz_repl_imported(lmz_repl_t *r, const char *binding,
                       const char *instance, uint64_t from) {
  size_t blen = strlen(binding), ilen = strlen(instance);
  struct rimport *im = malloc(sizeof *im + blen + ilen);
  int pl = im ? lmz_key_actor_prefix(im->prefix, binding, blen, instance, ilen)
              : LMZ_ENOMEM;
  struct rimport *old = pl > 0 ? lmz_hmap_get(&r->imports, im->prefix,
                                              (size_t)pl) : NULL;
  if (pl <= 0 || (!old && r->imports.n >= LMZ__REPL_MAX_IMPORTS)) {
    free(im); /* over the bound: the move's epoch check still fences */
    return;
  }
  im->from = from;
  im->until_ms = r->o.ops.now_ms(r->o.ops.ctx) + LMZ__REPL_IMPORT_FENCE_MS;
  im->plen = (size_t)pl;
  im->blen = blen;
  im->ilen = ilen;
  memcpy(im->name, binding, blen);
  memcpy(im->name + blen, instance, ilen);
  if (old) {
    lmz_hmap_del(&r->imports, old->prefix, old->plen);
    free(old);
  }
  if (lmz_hmap_put(&r->imports, im->prefix, im->plen, im, NULL))
    free(im);
}

/* True when a record of this actor from `from` must be refused. */
static bool import_fenced(lmz_repl_t *r, const uint8_t *prefix, size_t plen,
                          uint64_t from) {
  struct rimport *im = lmz_hmap_get(&r->imports, prefix, plen);
  if (!im)
    return false;
  struct lmz_dir_placement p;
  bool moved = lmz_dir_placement_get(r->o.dir, im->name, im->blen,
                                     im->name + im->blen, im->ilen, &p) == 0 &&
               p.node_id != im->from;
  if (moved || r->o.ops.now_ms(r->o.ops.ctx) >= im->until_ms) {
    lmz_hmap_del(&r->imports, im->prefix, im->plen);
    free(im);
    return false;
  }
  return im->from == from;
}

/* A fresh stream state for (node, gen), replacing any older one. */
static struct istream *in_start(lmz_repl_t *r, uint64_t node, uint64_t gen) {
  lmz__repl_in_forget(r, node);
  if (r->n_in == r->cap_in) {
    size_t cap = r->cap_in ? 2 * r->cap_in : 4;
    struct istream **a = realloc(r->in, cap * sizeof *a);
    if (!a)
      return NULL;
    r->in = a;
    r->cap_in = cap;
  }
  struct istream *in = calloc(1, sizeof *in);
  lmz_chain *c = in ? lmz_chain_new() : NULL;
  if (!c) {
    free(in);
    return NULL;
  }
  in->node = node;
  in->gen = gen;
  in->next_seq = 1;
  in->chain = c;
  r->in[r->n_in++] = in;
  return in;
}

static int send_ack(lmz_repl_t *r, uint64_t node, uint64_t gen, uint64_t seq,
                    int status, const char *detail) {
  Lmz__ReplAck a = LMZ__REPL_ACK__INIT;
  a.generation = gen;
  a.seq = seq;
  a.status = status;
  a.detail = (char *)(detail ? detail : "");
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_REPL_ACK;
  f.repl_ack = &a;
  return r->o.ops.send(r->o.ops.ctx, node, &f);
}

static int pos_key(uint8_t *k, uint64_t from);

/* Forgets the sender's durable position in the store too (best effort: a
 * commit behind the batches in flight), so a refused generation never
 * continues, even after a restart. */
static void pos_forget(lmz_repl_t *r, uint64_t from) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = pos_key(k, from);
  lmz_batch *b = kl > 0 ? lmz_batch_new() : NULL;
  if (b && (lmz_batch_delete(b, k, (size_t)kl) != 0 ||
            lmz_store_commit(r->o.store, b, NULL, NULL) != 0))
    lmz_batch_free(b);
}

/* Every failure mode: a negative ack, then the stream is forgotten. */
static void refuse(lmz_repl_t *r, uint64_t node, uint64_t gen, int status,
                   const char *detail) {
  struct istream *in = in_get(r, node);
  uint64_t durable = in && in->gen == gen ? in->durable_seq : 0;
  r->st.refused++;
  LMZ_LOG_WARN(&lmz__repl_log, "repl: refused the stream of node %llu: %s",
               (unsigned long long)node, detail);
  send_ack(r, node, gen, durable, status, detail); /* best effort */
  lmz__repl_in_forget(r, node);
  pos_forget(r, node);
}

/* Failure mode 3: the sender must be the actor's owner at that epoch. */
static int check_epoch(lmz_repl_t *r, uint64_t from, const Lmz__ReplRecord *m,
                       char *err) {
  struct lmz_dir_placement p;
  int rv = lmz_dir_placement_get(r->o.dir, m->binding.data, m->binding.len,
                                 m->instance.data, m->instance.len, &p);
  if (rv == LMZ_ENOTFOUND)
    return 0; /* not applied here yet (a fresh claim): the epoch is newer */
  if (rv)
    return rv;
  if (m->epoch > p.epoch || (m->epoch == p.epoch && p.node_id == from))
    return 0;
  lmz__errmsg_printf(err,
                     "stale epoch %llu from node %llu (directory: node "
                     "%llu at epoch %llu)",
                     (unsigned long long)m->epoch, (unsigned long long)from,
                     (unsigned long long)p.node_id,
                     (unsigned long long)p.epoch);
  return LMZ_ESTALE;
}

/* A FILL record: a dump of exactly this record's actor. */
static int add_fill(lmz_repl_t *r, const Lmz__ReplRecord *m, lmz_batch *b,
                    char *err) {
  const char *bn, *in;
  size_t bl, il;
  int rv = lmz_store_dump_actor(m->data.data, m->data.len, &bn, &bl, &in, &il);
  if (rv == 0 && (bl != m->binding.len || il != m->instance.len ||
                  memcmp(bn, m->binding.data, bl) != 0 ||
                  (il && memcmp(in, m->instance.data, il) != 0))) {
    lmz__errmsg_printf(err, "fill: the dump names another actor");
    return LMZ_EBADMSG;
  }
  if (rv == 0)
    rv = lmz_store_import(r->o.store, m->data.data, m->data.len, b);
  if (rv < 0)
    lmz__errmsg_printf(err, "fill: %s", r->o.store->errmsg);
  return rv < 0 ? rv : 0;
}

void lmz_repl_set_fresh_since(lmz_repl_t *r, uint64_t since) {
  r->fresh_since = since;
}

/* A FRESH record (actor/fresh.c): what this node holds of the actor is an
 * outdated copy; the batch that applies the record drops it first. An empty
 * range (the usual case) costs one probe and no range tombstone. */
static int drop_stale(lmz_repl_t *r, const Lmz__ReplRecord *m,
                      const lmz_key_range *range, lmz_batch *b, char *err) {
  if (m->epoch <= r->fresh_since) /* may be data of before the records */
    return 0;
  int rv = lmz_store_range_empty(r->o.store, range->lower, range->lower_len,
                                 range->upper, range->upper_len);
  if (rv == 1)
    return 0;
  if (rv == 0)
    rv = lmz_batch_delete_range(b, range->lower, range->lower_len,
                                range->upper, range->upper_len);
  if (rv) {
    lmz__errmsg_printf(err, "dropping an outdated copy: %s", lmz_strerror(rv));
    return rv;
  }
  r->st.stale_dropped++;
  LMZ_LOG_INFO(&lmz__repl_log, "repl: %.*s/%.*s placed afresh (epoch %llu): "
               "dropping the outdated copy this backup held",
               (int)m->binding.len, (const char *)m->binding.data,
               (int)m->instance.len, (const char *)m->instance.data,
               (unsigned long long)m->epoch);
  return 0;
}

/* Checks one record and appends its operations to b. */
static int add_record(lmz_repl_t *r, uint64_t from, const Lmz__ReplRecord *m,
                      lmz_batch *b, char *err) {
  uint8_t prefix[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(prefix, (const char *)m->binding.data,
                                m->binding.len, (const char *)m->instance.data,
                                m->instance.len);
  if (pl < 0 || m->epoch == 0 || m->data.len > LMZ_REPL_MAX_RECORD_BYTES ||
      (m->kind != LMZ_REPL_KIND_OPS && m->kind != LMZ_REPL_KIND_FILL &&
       m->kind != LMZ_REPL_KIND_OPS_FRESH)) {
    lmz__errmsg_printf(err, "malformed record (name, epoch, kind or size)");
    return LMZ_EBADMSG;
  }
  if (import_fenced(r, prefix, (size_t)pl, from)) {
    lmz__errmsg_printf(err, "record of an actor a drain imported here");
    return LMZ_ESTALE;
  }
  int rv = check_epoch(r, from, m, err);
  if (rv)
    return rv;
  if (m->kind == LMZ_REPL_KIND_FILL)
    return add_fill(r, m, b, err);
  lmz_key_range range;
  lmz_key_actor_range(&range, prefix, (size_t)pl);
  if (m->kind == LMZ_REPL_KIND_OPS_FRESH &&
      (rv = drop_stale(r, m, &range, b, err)))
    return rv;
  rv = lmz_batch_deserialize(b, m->data.data, m->data.len, &range, err);
  return rv < 0 ? rv : 0;
}

static void commit_cb(lmz_store_t *st, int status, void *arg) {
  (void)st;
  struct rpending *p = arg;
  if (p->r)
    lmz__repl_commit_done(p->r, p, status);
  lmz__repl_pending_done(p);
}

/* The node-level key of a sender's durable position. */
static int pos_key(uint8_t *k, uint64_t from) {
  uint8_t name[6 + 8];
  memcpy(name, "replin", 6);
  for (int i = 0; i < 8; i++)
    name[6 + i] = (uint8_t)(from >> (56 - 8 * i));
  return lmz_key_node(k, name, sizeof name);
}

static int pos_put(lmz_batch *b, uint64_t from, uint64_t gen, uint64_t seq) {
  uint8_t k[LMZ_KEY_MAX], v[16];
  int kl = pos_key(k, from);
  if (kl < 0)
    return kl;
  for (int i = 0; i < 8; i++) {
    v[i] = (uint8_t)(gen >> (56 - 8 * i));
    v[8 + i] = (uint8_t)(seq >> (56 - 8 * i));
  }
  return lmz_batch_put(b, k, (size_t)kl, v, sizeof v);
}

/* The durable seq of generation `gen` of `from` in the store, or 0. */
static uint64_t pos_get(lmz_repl_t *r, uint64_t from, uint64_t gen) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = pos_key(k, from);
  lmz_buf v = LMZ_BUF_INIT;
  uint64_t g = 0, seq = 0;
  if (kl > 0 && lmz_store_get(r->o.store, k, (size_t)kl, &v) == 0 &&
      v.len == 16)
    for (int i = 0; i < 8; i++) {
      g = g << 8 | v.data[i];
      seq = seq << 8 | v.data[8 + i];
    }
  lmz_buf_free(&v);
  return g == gen ? seq : 0;
}

/* A generation this node forgot (or never saw) continues after its durable
 * seq in the store (catch-up). NULL: no such position. */
static struct istream *in_recall(lmz_repl_t *r, uint64_t from,
                                 const Lmz__ReplAppend *m) {
  uint64_t durable = pos_get(r, from, m->generation);
  if (durable == 0 || m->first_seq > durable + 1)
    return NULL;
  struct istream *in = in_start(r, from, m->generation);
  if (in) {
    in->next_seq = durable + 1;
    in->durable_seq = in->acked_seq = durable;
  }
  return in;
}

/* Failure modes 1 and 2. Returns the stream state to continue, or NULL
 * (refused already); records below in->next_seq are already received. */
static struct istream *in_continue(lmz_repl_t *r, uint64_t from,
                                   const Lmz__ReplAppend *m) {
  char err[LMZ_ERRMSG_LEN];
  if (m->n_records == 0 || m->n_records > LMZ_REPL_MAX_RECORDS ||
      m->generation == 0 || m->first_seq == 0) {
    refuse(r, from, m->generation, LMZ_EBADMSG, "malformed append");
    return NULL;
  }
  struct istream *in = in_get(r, from);
  if (in && in->gen == m->generation && m->first_seq <= in->next_seq)
    return in;
  if ((!in || in->gen != m->generation) && m->first_seq > 1 &&
      (in = in_recall(r, from, m)) != NULL)
    return in;
  in = in_get(r, from);
  if ((!in || in->gen != m->generation) && m->first_seq == 1) {
    in = in_start(r, from, m->generation);
    if (!in)
      refuse(r, from, m->generation, LMZ_ENOMEM, "out of memory");
    return in;
  }
  lmz__errmsg_printf(
      err, "sequence gap: got %llu, expected %llu",
      (unsigned long long)m->first_seq,
      (unsigned long long)(in && in->gen == m->generation ? in->next_seq : 1));
  refuse(r, from, m->generation, LMZ_EBADMSG, err);
  return NULL;
}

/* Every record of the frame was received before (a resumed stream sends
 * them again): acknowledge what is durable of it. */
static void ack_again(lmz_repl_t *r, struct istream *in,
                      const Lmz__ReplAppend *m) {
  uint64_t last = m->first_seq + m->n_records - 1;
  uint64_t seq = in->durable_seq < last ? in->durable_seq : last;
  if (seq > 0)
    send_ack(r, in->node, in->gen, seq, 0, NULL); /* best effort */
}

void lmz_repl_on_append(lmz_repl_t *r, uint64_t from_node,
                        const Lmz__ReplAppend *m) {
  struct istream *in = in_continue(r, from_node, m);
  if (!in)
    return;
  size_t skip = (size_t)(in->next_seq - m->first_seq);
  if (skip >= m->n_records) {
    ack_again(r, in, m);
    return;
  }
  char err[LMZ_ERRMSG_LEN] = "";
  lmz_batch *b = lmz_batch_new();
  struct rpending *p = b ? lmz__repl_pending_new(r, PK_COMMIT) : NULL;
  int rv = p ? 0 : LMZ_ENOMEM;
  for (size_t i = skip; rv == 0 && i < m->n_records; i++)
    rv = add_record(r, from_node, m->records[i], b, err);
  uint64_t last = m->first_seq + m->n_records - 1;
  if (rv == 0)
    rv = pos_put(b, from_node, in->gen, last);
  if (rv == 0) {
    lmz_batch_set_chain(b, in->chain);
    p->node = from_node;
    p->gen = in->gen;
    p->n = m->n_records - skip;
    p->seq = last;
    rv = lmz_store_commit(r->o.store, b, commit_cb, p);
    if (rv == 0) {
      in->next_seq = last + 1;
      return;
    }
    lmz__errmsg_printf(err, "commit: %s", lmz_strerror(rv));
  }
  lmz_batch_free(b);
  if (p)
    lmz__repl_pending_done(p);
  refuse(r, from_node, m->generation, rv, err[0] ? err : lmz_strerror(rv));
}

void lmz__repl_commit_done(lmz_repl_t *r, struct rpending *p, int status) {
  struct istream *in = in_get(r, p->node);
  if (!in || in->gen != p->gen)
    return; /* refused or restarted since: nobody waits for this */
  if (status) {
    char err[LMZ_ERRMSG_LEN];
    lmz__errmsg_printf(err, "commit: %s", r->o.store->errmsg);
    refuse(r, p->node, p->gen, LMZ_ESTORAGE, err);
    return;
  }
  in->durable_seq = p->seq;
  in->applied_records += p->n;
  r->st.applied_records += p->n;
  if (send_ack(r, in->node, in->gen, in->durable_seq, 0, NULL) == 0)
    in->acked_seq = in->durable_seq; /* else lmz_repl_flush retries */
}

void lmz__repl_in_flush(lmz_repl_t *r) {
  for (size_t i = 0; i < r->n_in; i++) {
    struct istream *in = r->in[i];
    if (in->acked_seq < in->durable_seq &&
        send_ack(r, in->node, in->gen, in->durable_seq, 0, NULL) == 0)
      in->acked_seq = in->durable_seq;
  }
}
