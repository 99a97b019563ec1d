/* actor/fresh.c - a fresh placement never runs on a stale copy
 * (cluster/directory.h FRESH).
 *
 * A node can keep a copy of an actor it no longer owns or backs up: a
 * backup its owner dropped from the set (PAIR_OUT), an owner whose actors
 * failed over while it was away, a drain's source. Nothing reads that copy
 * while another node owns the actor. But once the actor is released (which
 * needs its range empty at the owner) and a new claim places it on that
 * node, or lists that node as a backup, the copy is not the actor's state:
 * deleted keys and turns that were never acknowledged would surface (on
 * the owner at once, on a backup after a failover). So:
 *  - OWNER: before a fresh placement's first turn here, its range here is
 *    made empty (lmz__fresh_check);
 *  - BACKUPS: the activation's first commit is shipped as a FRESH record
 *    (cluster/repl.h LMZ_REPL_KIND_OPS_FRESH): a backup empties the range
 *    in the same batch that applies it. When a listed backup may hold a
 *    stale copy (cluster/directory.h STALE COPIES: it left some actor's
 *    set once), a first turn that wrote nothing commits an empty batch all
 *    the same (once per activation; turn.c), shipped FRESH: its outputs
 *    wait for the backups' acknowledgements, so a value this life answered
 *    is never followed, after a failover to that backup, by an older one.
 *    An empty barrier records nothing (no fsync for a read); the first
 *    commit that writes records the epoch. The barrier costs a replication
 *    round trip on the first read of a new actor (bench claims: about a
 *    third of the activations per second), hence only where needed.
 *
 * "First commit here under epoch E" must survive a restart: a restarted
 * owner must not drop what it wrote under E itself. That first commit also
 * writes a node-level key, 'N' "fresh" + actor prefix = be64(E) (turn.c
 * calls lmz__fresh_add_to_batch; node-level keys are not shipped). A key
 * equal to E: nothing to do. Without it the range holds nothing written
 * under E (the key and the first write are one batch), so an old copy is
 * dropped and the next first commit is FRESH again - also after a crash
 * between the drop and that commit. Cost per fresh activation: one
 * single-entry range probe and, when the range is not empty, one point
 * read; nothing per turn. A released actor's key stays (a few dozen
 * bytes; a later claim has a higher epoch, so it never matches by
 * accident).
 *
 * The owner's drop is a synchronous delete_range on the loop thread
 * (lmz_store_write_now, with the store's fsync setting): only a node that
 * kept a stale copy pays it, and the activation's first reads must not see
 * the old keys, which a queued commit would not guarantee. No range
 * tombstone is written when the range is empty (the common case): RocksDB
 * reads slow down with many of them in a memtable.
 *
 * UPGRADES. A store written by an lmz without these records holds data of
 * placements whose first commits wrote no record: it is not stale, and must
 * not be dropped. So drops apply only to placements with an epoch above
 * the node's FRESH SINCE epoch: the directory's epoch_seq when the node
 * first held a valid lease after a start that found no record of it (the
 * node's replica has then applied everything it had applied before it
 * stopped, so every placement it ever served has an epoch at or below it),
 * kept in 'N' "fresh.since" (written with the next commit of any actor:
 * no write of its own). Until it is known nothing is dropped (the
 * owner's check and the backups' FRESH drops wait for it; lmz__fresh_tick
 * passes it to the replicator), but first commits are recorded all the
 * same: an empty range holds nothing of any epoch. Lost in a crash before
 * it was written, it is learned again, higher: only fewer placements
 * drop.
 *
 * Failure modes: a read or write error -> LMZ_ESTORAGE: the activation is
 * not created (the call fails; the node's storage is in trouble anyway). */
#include <string.h>

#include "actor/actor_int.h"
#include "actor/router.h"
#include "cluster/cluster.h"
#include "cluster/repl.h"
#include "storage/keys.h"
#include "storage/store.h"

#define FRESH_NAME "fresh"
#define FRESH_NAME_LEN 5

/* 'N' "fresh" + the actor prefix (`prefix`, plen bytes). */
static int marker_key(const uint8_t *prefix, size_t plen, uint8_t *out) {
  uint8_t name[FRESH_NAME_LEN + LMZ_KEY_PREFIX_MAX];
  memcpy(name, FRESH_NAME, FRESH_NAME_LEN);
  memcpy(name + FRESH_NAME_LEN, prefix, plen);
  return lmz_key_node(out, name, FRESH_NAME_LEN + plen);
}

static void be64(uint8_t out[8], uint64_t v) {
  for (int i = 7; i >= 0; i--, v >>= 8)
    out[i] = (uint8_t)v;
}

#define SINCE_NAME "fresh.since"

static int since_key(uint8_t *k) {
  return lmz_key_node(k, SINCE_NAME, strlen(SINCE_NAME));
}

/* Whether the marker says `epoch`: 1 yes, 0 no (absent or another), or an
 * error. */
static int marker_is(lmz_node_t *n, const uint8_t *k, size_t kl,
                     uint64_t epoch) {
  lmz_buf v = LMZ_BUF_INIT;
  int rv = lmz_store_get(n->store, k, kl, &v);
  uint8_t want[8];
  be64(want, epoch);
  if (rv == 0)
    rv = v.len == 8 && memcmp(v.data, want, 8) == 0;
  else if (rv == LMZ_ENOTFOUND)
    rv = 0;
  lmz_buf_free(&v);
  return rv;
}

/* Drops the stale copy, synchronously, with the entries its alarms have
 * in this node's alarm index (they would fire on records gone). */
static int drop_copy(lmz_node_t *n, const char *binding, const char *instance,
                     uint64_t epoch, const lmz_key_range *r) {
  lmz_batch *b = lmz_batch_new();
  int rv = b ? lmz__alarms_index_actor(n, binding, instance, b, false)
             : LMZ_ENOMEM;
  if (!rv)
    rv = lmz_batch_delete_range(b, r->lower, r->lower_len, r->upper,
                                r->upper_len);
  if (!rv)
    rv = lmz_store_write_now(n->store, b);
  lmz_batch_free(b);
  if (rv) {
    LMZ_LOG_ERROR(&lmz__actor_log, "%s/%s: its stale copy could not be "
                  "dropped: %s", binding, instance, n->store->errmsg);
    return LMZ_ESTORAGE;
  }
  n->stats.stale_copies_dropped++;
  LMZ_LOG_INFO(&lmz__actor_log, "%s/%s: placed here afresh (epoch %llu): "
               "dropped the outdated copy this node still held", binding,
               instance, (unsigned long long)epoch);
  return 0;
}

int lmz__fresh_check(lmz_node_t *n, const struct lmz_binding *b,
                     const char *instance, uint64_t epoch, uint64_t since,
                     uint64_t *record) {
  *record = 0;
  if (!n->store)
    return 0;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX], k[LMZ_KEY_MAX];
  int pl = lmz_key_actor_prefix(prefix, b->name, b->name_len, instance,
                                strlen(instance));
  int kl = pl > 0 ? marker_key(prefix, (size_t)pl, k) : pl;
  if (kl < 0)
    return kl;
  lmz_key_range r;
  int rv = lmz_key_actor_range(&r, prefix, (size_t)pl);
  if (!rv)
    rv = lmz_store_range_empty(n->store, r.lower, r.lower_len, r.upper,
                               r.upper_len);
  if (rv < 0)
    return LMZ_ESTORAGE;
  if (rv == 0) { /* something is there: written under E here, or stale */
    if ((rv = marker_is(n, k, (size_t)kl, epoch)) != 0)
      return rv < 0 ? LMZ_ESTORAGE : 0;
    if (epoch <= since) /* UPGRADES: maybe written before the records */
      return 0;
    if ((rv = drop_copy(n, b->name, instance, epoch, &r)))
      return rv;
  }
  *record = epoch; /* nothing of E here: its first commit records it */
  return 0;
}

int lmz__fresh_add_to_batch(lmz_actor *a, struct lmz_batch *b) {
  uint8_t k[LMZ_KEY_MAX], e[8];
  struct lmz_router_s *r = a->node->router;
  int rv = 0;
  if (r && r->fresh_since_unsaved) {
    int kl = since_key(k);
    be64(e, r->fresh_since);
    rv = kl < 0 ? kl : lmz_batch_put(b, k, (size_t)kl, e, sizeof e);
  }
  if (!rv && a->fresh_epoch) {
    int kl = marker_key(a->prefix, a->prefix_len, k);
    be64(e, a->fresh_epoch);
    rv = kl < 0 ? kl : lmz_batch_put(b, k, (size_t)kl, e, sizeof e);
  }
  return rv;
}

void lmz__fresh_queued(lmz_actor *a) {
  a->fresh_epoch = 0;
  if (a->node->router)
    a->node->router->fresh_since_unsaved = false;
}

/* ---- FRESH SINCE ---------------------------------------------------------- */

/* The record, once per router: 0 and *out set, or LMZ_ENOTFOUND. */
static int since_read(lmz_node_t *n, uint64_t *out) {
  uint8_t k[LMZ_KEY_MAX];
  lmz_buf v = LMZ_BUF_INIT;
  int kl = since_key(k);
  int rv = kl < 0 ? kl : lmz_store_get(n->store, k, (size_t)kl, &v);
  if (rv == 0 && v.len != 8)
    rv = LMZ_ENOTFOUND; /* not ours: learn it again */
  for (size_t i = 0; rv == 0 && i < 8; i++)
    *out = *out << 8 | v.data[i];
  lmz_buf_free(&v);
  return rv;
}

/* The record is written with the next commit of any actor
 * (lmz__fresh_add_to_batch): no write of its own. */
uint64_t lmz__fresh_since(struct lmz_router_s *r) {
  lmz_node_t *n = r->node;
  if (r->fresh_since != UINT64_MAX || !n->store || r->closing)
    return r->fresh_since;
  if (!r->fresh_since_read) {
    uint64_t since = 0;
    r->fresh_since_read = true;
    if (since_read(n, &since) == 0)
      return r->fresh_since = since;
  }
  if (lmz_cluster_lease_valid(r->c, lmz_cluster_now_ms(r->c))) {
    r->fresh_since = lmz_dir_epoch_seq(lmz_cluster_dir(r->c));
    r->fresh_since_unsaved = true; /* with the next commit (no write of
                                      its own: tests count group writes) */
    LMZ_LOG_INFO(&lmz__actor_log, "placements claimed after epoch %llu drop "
                 "outdated copies this node may hold",
                 (unsigned long long)r->fresh_since);
  }
  return r->fresh_since;
}

void lmz__fresh_tick(struct lmz_router_s *r, uint64_t now) {
  (void)now;
  uint64_t since = lmz__fresh_since(r);
  lmz_repl_t *rp = lmz_cluster_repl(r->c);
  if (rp && since != UINT64_MAX)
    lmz_repl_set_fresh_since(rp, since);
}
