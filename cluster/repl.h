/* cluster/repl.h - replication streams: the owner ships every committed turn
 * batch of its replicated actors to their backups; backups apply and
 * acknowledge; the owner's output gate waits for the in-sync backups
 * (DESIGN.md 4.1, issue 9).
 *
 * OWNER SIDE. For each peer it replicates to, one ordered stream per
 * (owner node, backup node) pair: a generation (chosen afresh whenever the
 * stream (re)starts) and a sequence number per record. lmz_repl_ship()
 * appends one record (the actor, its epoch, the batch's operations) to the
 * stream of each backup of the actor and to the stream of each node being
 * filled for it; records queued during one loop iteration leave as one
 * ReplAppend frame per stream (flushed from lmz_repl_flush(), which the
 * owner of the loop calls once per iteration, e.g. from a uv_prepare_t).
 * Each shipped batch gets a node-wide TOKEN (1, 2, 3, ... in ship order);
 * lmz_repl_acked_through() is the highest token T such that every token
 * <= T has been acknowledged by every backup it waited for, or that backup
 * was dropped from the directory (PAIR_OUT committed). A batch of an actor
 * with no backups gets token 0 (nothing to wait for).
 *
 * IN-SYNC SETS. A stream whose oldest unacknowledged record is older than
 * max_lag_ms, whose unacknowledged bytes exceed max_lag_bytes, whose link
 * went down, or whose backup refused it (stale epoch, gap, bad record,
 * disk error), is CLOSED: nothing more is sent on that generation, and
 * PAIR_OUT(self, backup) is proposed through the leader (retried each tick
 * until committed). Its waiting tokens count as acknowledged only once the
 * directory shows the backup gone from the actors' lists; so a minority-side
 * owner that cannot commit PAIR_OUT never acknowledges without it.
 *
 * REFILL. Each tick (bounded work per tick), for actors this node owns whose
 * list is shorter than min(R - 1, candidates), the owner picks the next
 * nodes of the rendezvous ranking over the placement candidate set
 * (cluster/placement.h) that are neither owner nor listed, sends the actor's
 * whole key range (a FILL record: storage/store.h dump) on that node's
 * stream, keeps shipping the actor's later batches to it, and once the fill
 * is acknowledged proposes BACKUPS_ADD (owner, epoch, backup). A failed
 * proposal or a closed stream restarts the fill later.
 * Details (cluster/repl_fill.c): the FILL record is queued at once as a
 * placeholder and the dump is taken after an empty barrier commit, so every
 * batch shipped before the fill is in the dump and every later one follows
 * it on the stream; from the fill's acknowledgement on, the actor's batches
 * also wait for the node, and BACKUPS_ADD is proposed once every record of
 * the actor queued so far is acknowledged (so a listed backup holds every
 * write acknowledged before it was listed).
 *
 * CATCH-UP. A stream closed by a link loss or by lag (not a refusal) is
 * RETAINED when its unacknowledged bytes fit retention_bytes and at most
 * LMZ_REPL_MAX_RESUME actors list its backup: its records are kept, the
 * actors that listed the node (the RESUME set, with their epochs) keep
 * queueing their batches on it after the PAIR_OUT delisted it (they no
 * longer wait for it), and no fill is started towards it. Once the PAIR_OUT
 * committed, the link is up, the node is a placement candidate again
 * (ops.candidates) and LMZ_REPL_RESUME_MIN_MS passed, the SAME
 * generation reopens from the last acknowledged sequence (every kept record
 * is sent again) and each resume actor that is still ours at its epoch, not
 * listed and short of backups gets a CATCHING fill (REFILL below): its
 * BACKUPS_ADD is proposed once every record queued so far is acknowledged.
 * Retention is given up (records freed; the refill then sends FILLs) when
 * the kept bytes pass retention_bytes, or at resumption when a kept record's
 * actor is no longer ours at its epoch. A backup that lost its store
 * refuses the resumed generation (a gap): the stream closes for good and
 * the refill sends FILLs.
 *
 * BACKUP SIDE. lmz_repl_on_append() validates the frame (hostile input:
 * bounded sizes; generation and sequence contiguous; every key inside the
 * record's actor range; the actor's epoch not older than the local
 * directory's; the sender is the directory's owner or the epoch is newer than
 * what the directory knows), applies the records as one store batch (group
 * commit: one fsync for many frames), and once durable answers ReplAck with
 * the highest durable sequence. The same batch records (generation, last
 * seq) of the sender under the node-level key "replin" + sender id, so a
 * resumed generation continues from the durable sequence even after a
 * restart; records a resumed stream sends again (seq at or below what was
 * received) are skipped. A violation answers ReplAck with a negative
 * status and the reason, and drops the stream state for that sender (its
 * owner then closes the stream and refills). Backed-up actors are never
 * activated by the backup.
 *
 * WHAT IS SHIPPED. Only the operations inside the actor's key range
 * (storage/keys.h): node-level keys a turn writes (the alarm index 'N'
 * "alarmq...") stay local, so a promoted owner must rebuild them from the
 * actor's range (actor/alarms.c lmz__alarms_index_actor, as drains do).
 *
 * LOST TOKENS. A token's wait that an acknowledgement did not satisfy, on
 * a stream that closed, is resolved by the directory: while the actor is
 * ours at the epoch the batch was shipped with, by the backup's absence from
 * its list (PAIR_OUT); once the directory shows the actor owned by another
 * node, at another epoch, or released, it can never be satisfied (the new
 * owner may lack that write): the token is LOST. A lost token no longer
 * holds acked_through back (a fenced node that re-registers serves new
 * actors), but lmz_repl_token_state() reports it as LMZ_EUNAVAILABLE, never
 * as acknowledged. Waits already satisfied by the backup's acknowledgement
 * stay satisfied (it had the write before the failover); a token all of
 * whose waits were acknowledged is acknowledged whatever happens later.
 * Lost ids below acked_through are kept until the gate asked about a later
 * token (it asks in token order), at most LMZ_REPL_MAX_LOST of them: at the
 * cap, acked_through stops before the next lost token (still reported lost)
 * until the gate's asking prunes the set, so nothing lost is ever reported
 * acknowledged.
 *
 * Callbacks: on_progress may run from inside lmz_repl_on_ack, _tick,
 * _dir_changed, _on_link, _flush and _ship (a stream closing resolves
 * waits), never from _new or _free.
 *
 * Time: every decision reads ops.now_ms (fake time in unit tests).
 * Threading: loop thread only. */
#ifndef LMZ_CLUSTER_REPL_H
#define LMZ_CLUSTER_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/directory.h"
#include "core/buf.h"
#include "proto/lmz.pb-c.h"
#include "storage/store.h"

typedef struct lmz_repl_s lmz_repl_t;

#define LMZ_REPL_DEFAULT_MAX_LAG_MS 2000u
#define LMZ_REPL_DEFAULT_MAX_LAG_BYTES (64u << 20)
#define LMZ_REPL_DEFAULT_RETENTION_BYTES (64u << 20)
/* CATCH-UP bounds: actors that may resume on one stream (more: the stream
 * is refilled), and the minimum time between a close and its resumption (a
 * paused backup does not make the owner churn the directory). */
#define LMZ_REPL_MAX_RESUME 4096u
#define LMZ_REPL_RESUME_MIN_MS 500u
/* One ReplAppend (more records are split into several). */
#define LMZ_REPL_MAX_FRAME_BYTES (16u << 20)
/* One record's data (a single larger batch or dump cannot be replicated:
 * ship answers LMZ_ETOOBIG); below the node port's frame cap
 * (proto/frame.h) with room for the envelope. */
#define LMZ_REPL_MAX_RECORD_BYTES (60u << 20)
#define LMZ_REPL_MAX_RECORDS 65536u /* records per ReplAppend */
/* Refill bounds: fills in flight and bytes of their dumps. */
#define LMZ_REPL_MAX_FILLS 256u
#define LMZ_REPL_MAX_FILL_BYTES (8u << 20)
/* Lost token ids kept until the gate asked (repl.h LOST TOKENS). */
#define LMZ_REPL_MAX_LOST 65536u
/* A clean refill scan runs at least this often (ticks in between scan only
 * after a change: directory, link, a fill finished), and never twice within
 * LMZ_REPL_REFILL_MIN_MS + 10 us per actor walked by the previous scan (a
 * scan walks every actor this node owns; ticks come every few ms). */
#define LMZ_REPL_REFILL_PERIOD_MS 1000u
#define LMZ_REPL_REFILL_MIN_MS 100u

/* ReplRecord.kind */
#define LMZ_REPL_KIND_OPS 1  /* storage/store.h batch wire format */
#define LMZ_REPL_KIND_FILL 2 /* storage/store.h actor dump */
/* OPS, the first batch of a fresh placement (directory.h FRESH): anything
 * the backup held of the actor before is stale and is dropped first */
#define LMZ_REPL_KIND_OPS_FRESH 3

/* What the replicator needs from the node around it. */
struct lmz_repl_ops {
  uint64_t (*now_ms)(void *ctx);
  /* Sends a frame to node `node_id`; 0 or an lmz error (LMZ_EOVERLOAD: the
   * link is full; the stream keeps the records and retries on the next
   * flush). */
  int (*send)(void *ctx, uint64_t node_id, const Lmz__Frame *f);
  /* Proposes an encoded DirCommand through the leader; `cb(arg, status)`
   * runs exactly once later (0 = committed and applied locally; the item
   * status is in item_status). Returns 0 or an error (cb then never runs). */
  int (*propose)(void *ctx, const lmz_buf *cmd,
                 void (*cb)(void *arg, int status, int item_status), void *arg);
  /* The placement candidate set (cluster/placement.h) for backups: up to
   * cap ids written, count returned (self excluded). */
  size_t (*candidates)(void *ctx, uint64_t *out, size_t cap);
  void *ctx;
};

struct lmz_repl_options {
  uint64_t node_id;       /* ours */
  uint32_t factor;        /* R: 1 = no replication (then ship is a no-op) */
  uint32_t max_lag_ms;    /* 0 = LMZ_REPL_DEFAULT_MAX_LAG_MS */
  uint64_t max_lag_bytes; /* 0 = LMZ_REPL_DEFAULT_MAX_LAG_BYTES */
  /* CATCH-UP: unacknowledged bytes a closed stream keeps for its backup's
   * return; 0 = LMZ_REPL_DEFAULT_RETENTION_BYTES, UINT64_MAX = no retention
   * (every return is a refill). */
  uint64_t retention_bytes;
  const lmz_dir_t *dir; /* the local directory replica (borrowed) */
  lmz_store_t *store;   /* the node's store (borrowed) */
  struct lmz_repl_ops ops;
  /* acked_through advanced (the node releases outputs behind the gate). */
  void (*on_progress)(void *arg);
  void *progress_arg;
};

struct lmz_repl_pair_stats {
  uint64_t node_id; /* the other end */
  bool outgoing;    /* true: we own, it backs up; false: reverse */
  bool in_sync;     /* outgoing: stream open (not closed / idle) */
  /* Outgoing: unacknowledged records, their bytes, the age of the oldest
   * (for a closed stream waiting for its PAIR_OUT: the time since it
   * closed). Incoming: records received but not yet durable. */
  uint64_t lag_records, lag_bytes, lag_ms;
  uint64_t sent_records, acked_seq;
};

struct lmz_repl_stats {
  uint64_t shipped, acked_through, pending_tokens;
  uint64_t fills_sent, fills_done, pair_outs;
  uint64_t applied_records, refused;
  uint64_t stale_dropped; /* FRESH records that found an old copy here */
  uint64_t tokens_lost;      /* tokens lost to a change of owner or epoch */
  uint64_t under_replicated; /* actors we own with too short a list */
  size_t n_pairs;
};

/* Allocates and starts a replicator. Returns 0 or LMZ_EINVAL / LMZ_ENOMEM. */
int lmz_repl_new(lmz_repl_t **out, const struct lmz_repl_options *o);
/* Fails nothing it cannot: waiting tokens stay unacknowledged (their
 * outputs are failed by the node's own close). Frees everything; pending
 * proposals' callbacks must not touch r afterwards (they are disarmed). */
void lmz_repl_free(lmz_repl_t *r);

/* ---- owner side ---------------------------------------------------------- */

/* Ships the batch `b` (borrowed; read now) of actor (binding, instance),
 * about to be committed locally, to the actor's backups and fills; with
 * `fresh` (the first commit of a fresh placement, actor/fresh.c) as
 * LMZ_REPL_KIND_OPS_FRESH records.
 * ORDER: commit `b` with lmz_store_commit right after ship, before returning
 * to the loop, in ship order (a fill's barrier relies on it: a batch shipped
 * before the fill started must be written before the fill's dump is taken).
 * Returns 0 with *token (0 = nothing to wait for: R = 1 or no backups), or
 * LMZ_ESTALE (the local directory does not name this node the owner),
 * LMZ_ENOMEM / LMZ_ETOOBIG (record over LMZ_REPL_MAX_RECORD_BYTES): the
 * turn fails; nothing was queued. */
int lmz_repl_ship(lmz_repl_t *r, const char *binding, const char *instance,
                  const lmz_batch *b, bool fresh, uint64_t *token);
uint64_t lmz_repl_acked_through(const lmz_repl_t *r);
/* The state of `token` for the output gate: 1 acknowledged (0 always is),
 * 0 still waiting, LMZ_EUNAVAILABLE lost (LOST TOKENS above). The gate asks
 * in token order (a token may be asked again): asking forgets the lost ids
 * below `token`, so a token must not be asked after a later one. */
int lmz_repl_token_state(lmz_repl_t *r, uint64_t token);
/* Sends what ship queued in this loop iteration. */
void lmz_repl_flush(lmz_repl_t *r);
/* Lag checks, PAIR_OUT retries, refill scheduling. */
void lmz_repl_tick(lmz_repl_t *r);
/* The local directory changed (an entry was applied): re-evaluates waiting
 * tokens (PAIR_OUT, failover) and refill needs. */
void lmz_repl_dir_changed(lmz_repl_t *r);

/* ---- frames (server/lmzd.c's frame table) -------------------------------- */

/* `m` is borrowed for the call. Answers (now, or from the commit callback)
 * with exactly one ReplAck: status 0 and the highest durable seq, or a
 * negative status: LMZ_EBADMSG (malformed, sequence gap, a new generation
 * not starting at 1), LMZ_ESTALE (stale epoch / not the owner),
 * LMZ_EACCESS (a key outside the record's actor range), LMZ_ESTORAGE (the
 * commit failed), LMZ_ENOMEM. */
void lmz_repl_on_append(lmz_repl_t *r, uint64_t from_node,
                        const Lmz__ReplAppend *m);
void lmz_repl_on_ack(lmz_repl_t *r, uint64_t from_node, const Lmz__ReplAck *m);
/* A link to `node_id` went down (up = false) or came up. */
void lmz_repl_on_link(lmz_repl_t *r, uint64_t node_id, bool up);

/* This node (a drain's target) imported (binding, instance) from node
 * `from`: until the directory shows the move (or 60 s passed), records of
 * that actor from `from` are refused (an older one resent on its stream
 * after the import would overwrite the imported state); the owner then
 * drops the stream and refills us. */
void lmz_repl_imported(lmz_repl_t *r, const char *binding,
                       const char *instance, uint64_t from);

/* FRESH records (LMZ_REPL_KIND_OPS_FRESH) drop what this node held of
 * their actor only when their epoch is above `since` (actor/fresh.c FRESH
 * SINCE); until this is called, never. */
void lmz_repl_set_fresh_since(lmz_repl_t *r, uint64_t since);

/* ---- operating it -------------------------------------------------------- */

void lmz_repl_get_stats(const lmz_repl_t *r, struct lmz_repl_stats *st);
/* Pair i in [0, stats.n_pairs). */
void lmz_repl_pair_at(const lmz_repl_t *r, size_t i,
                      struct lmz_repl_pair_stats *out);

#endif
