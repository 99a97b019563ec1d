/* cluster/repl_int.h - private to cluster/repl*.c (and its unit tests).
 *
 * Files: repl.c (owner streams, gate tokens, flush, lag, PAIR_OUT),
 * repl_fill.c (refill of under-replicated actors), repl_backup.c (the
 * backup side). Everything runs on the loop thread. */
#ifndef LMZ_CLUSTER_REPL_INT_H
#define LMZ_CLUSTER_REPL_INT_H

#include "cluster/repl.h"
#include "core/hmap.h"
#include "core/log.h"
#include "storage/keys.h"

/* Record bytes shared by the streams of one shipped batch. */
struct rdata {
  uint32_t refs;
  size_t len;
  uint8_t bytes[];
};

/* A record on an outgoing stream, from queued until acknowledged.
 * Invariant: a stream's records have consecutive seqs in list order. */
struct rrec {
  struct rrec *next;
  uint64_t seq;
  uint64_t token; /* the gate token of its batch (0 = none) */
  uint64_t t_ms;  /* when queued: lag is measured from the oldest */
  uint64_t epoch;
  uint64_t fill_id; /* FILL: its fill (0 for ops records) */
  uint32_t kind;    /* LMZ_REPL_KIND_* */
  bool ready;       /* FILL: the dump is attached (flush stops before) */
  struct rdata *data;
  size_t blen, ilen;
  char name[]; /* binding then instance, not terminated */
};

enum ostate {
  OS_IDLE = 0,   /* no generation: the next record opens a new one */
  OS_OPEN = 1,   /* records flow */
  OS_CLOSED = 2, /* lagged / refused / link down: PAIR_OUT until committed */
};

/* The outgoing stream to one backup (or node being filled). */
struct ostream {
  uint64_t node;
  enum ostate state;
  uint64_t gen;
  uint64_t next_seq;        /* seq of the next record queued */
  uint64_t sent_seq;        /* highest seq handed to ops.send */
  uint64_t acked_seq;       /* highest seq acknowledged */
  struct rrec *head, *tail; /* unacknowledged records, seq order */
  struct rrec *unsent;      /* first record not yet sent (NULL: none) */
  uint64_t n_unacked, unacked_bytes;
  uint64_t sent_records;
  bool pair_out_inflight;
  uint64_t closed_ms; /* when it closed (stats: lag_ms while CLOSED) */
  bool link_down;     /* since lmz_repl_on_link(down), until (up) */
  /* RETAINED (CLOSED or IDLE, repl.h CATCH-UP): the generation's
   * unacknowledged records are kept (head..tail, seqs go on) and the
   * actors in `resume` (those that listed the node when it closed) still
   * queue their records on it, until it resumes or retention is given up. */
  bool retained;
  lmz_hmap resume; /* actor prefix -> struct rresume */
  size_t n_resume;
};

/* An actor whose backup list lost the node of a retained stream. */
struct rresume {
  uint64_t epoch;
  size_t plen;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX]; /* hmap key */
  size_t blen, ilen;
  char name[];
};

/* One backup a gate token waits for: acknowledged on stream (node, gen),
 * or resolved because the directory no longer lists the node. */
struct rwait {
  uint64_t node, gen;
  bool done;
};

#define LMZ__REPL_MAX_WAITS (2 * LMZ_DIR_MAX_BACKUPS)

struct rtoken {
  uint64_t id;
  uint64_t epoch;           /* the actor's epoch when shipped */
  uint32_t n_waits, n_left; /* n_left == 0: satisfied (or lost) */
  bool lost; /* a wait can no longer be satisfied: the actor is not ours at
                `epoch` any more (repl.h LOST TOKENS) */
  struct rwait waits[LMZ__REPL_MAX_WAITS];
  size_t blen, ilen;
  char name[]; /* binding then instance */
};

enum fstate {
  FILL_EXPORTING = 1, /* barrier commit pending; FILL record not ready */
  FILL_SENT = 2,      /* FILL record queued, not yet acknowledged */
  FILL_CATCHING = 3,  /* acknowledged; later records gate on it; waiting
                         for last_seq to be acknowledged */
  FILL_PROPOSING = 4, /* BACKUPS_ADD proposed */
};

struct rfill {
  struct rfill *next; /* the next fill of the same actor (hmap chain) */
  uint64_t id;
  uint64_t barrier; /* the scan's barrier commit it waits for */
  uint64_t node, gen, epoch;
  uint64_t fill_seq; /* seq of its FILL record */
  uint64_t last_seq; /* seq of the actor's last record on the stream */
  enum fstate state;
  bool propose_failed; /* retry BACKUPS_ADD on the next tick */
  size_t dump_bytes;
  size_t plen;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX]; /* hmap key */
  size_t blen, ilen;
  char name[]; /* binding then instance */
};

/* An incoming stream (we back up `node`'s actors). */
struct istream {
  uint64_t node, gen;
  uint64_t next_seq;    /* expected first_seq of the next append */
  uint64_t durable_seq; /* highest seq made durable */
  uint64_t acked_seq;   /* highest seq acknowledged (ack sent) */
  lmz_chain *chain;     /* batches of this generation depend on each other */
  uint64_t applied_records;
};

/* Asynchronous work whose callback may outlive the replicator: disarmed
 * (r = NULL) by lmz_repl_free, freed by its callback. */
enum pkind { PK_PAIR_OUT = 1, PK_BACKUPS_ADD, PK_BARRIER, PK_COMMIT };
struct rpending {
  struct rpending *prev, *next;
  lmz_repl_t *r;
  enum pkind kind;
  uint64_t node, gen, id, seq, n;
};

struct lmz_repl_s {
  struct lmz_repl_options o;
  uint64_t max_lag_ms, max_lag_bytes, retention_bytes;

  struct ostream **out; /* outgoing streams */
  size_t n_out, cap_out;
  struct istream **in; /* incoming streams */
  size_t n_in, cap_in;

  /* Gate tokens: ids [first_token, next_token) are pending, in a ring. */
  struct rtoken **tok;
  size_t tok_cap, tok_head, tok_n;
  uint64_t first_token, next_token;
  /* Lost token ids below first_token, ascending (appended as the ring pops
   * them), pruned below the last id the gate asked about. */
  uint64_t *lost;
  size_t n_lost, cap_lost;

  /* Fills in flight: a list and, by actor prefix, the first of each actor. */
  struct rfill **fills;
  size_t n_fills, cap_fills;
  lmz_hmap fill_by_actor;
  lmz_hmap imports; /* actor prefix -> struct rimport (repl_backup.c) */
  uint64_t next_fill_id;
  uint64_t next_barrier_id, scan_barrier;
  size_t fill_bytes_inflight;
  bool refill_dirty;
  uint64_t last_refill_ms;
  uint64_t last_scan_actors; /* actors the last scan walked (its cost) */
  /* Some wait may be on a generation that is no longer open: directory
   * changes must look at the tokens (else only acks resolve waits). */
  bool stale_waits;
  uint64_t fresh_since; /* lmz_repl_set_fresh_since; UINT64_MAX: none */

  struct rpending pending; /* list head */
  lmz_buf scratch;         /* serialize output */
  /* flush scratch: the frame under construction */
  Lmz__ReplRecord *frec;
  Lmz__ReplRecord **fptr;
  size_t fcap;
  uint64_t gen_counter;

  struct lmz_repl_stats st;
};

/* ---- repl.c (shared with the other files) -------------------------------- */
extern lmz_log_ns lmz__repl_log;
struct ostream *lmz__repl_out_get(lmz_repl_t *r, uint64_t node, bool create);
/* Opens a new generation on an IDLE stream. */
void lmz__repl_out_open(lmz_repl_t *r, struct ostream *s);
/* Queues `rec` (seq assigned here) on an OPEN stream. */
void lmz__repl_out_push(struct ostream *s, struct rrec *rec, uint64_t now);
void lmz__repl_out_close(lmz_repl_t *r, struct ostream *s, const char *why);
/* As lmz__repl_out_close, but keeps the records for a catch-up when
 * retention allows (link down, lag: the backup's copy is intact). */
void lmz__repl_out_lose(lmz_repl_t *r, struct ostream *s, const char *why);
void lmz__repl_out_free_records(struct ostream *s);
size_t lmz__repl_rec_bytes(const struct rrec *rec);
/* Proposes PAIR_OUT(self, s->node) for a CLOSED stream unless in flight. */
void lmz__repl_propose_pair_out(lmz_repl_t *r, struct ostream *s);
struct rrec *lmz__repl_rec_new(const char *name, size_t blen, size_t ilen,
                               uint32_t kind, uint64_t epoch,
                               struct rdata *data);
void lmz__repl_rec_free(struct rrec *rec);
void lmz__repl_data_unref(struct rdata *d);
struct rpending *lmz__repl_pending_new(lmz_repl_t *r, enum pkind kind);
void lmz__repl_pending_done(struct rpending *p);
/* Re-evaluates waits, advances acked_through, calls on_progress. */
void lmz__repl_reevaluate(lmz_repl_t *r);
/* A record of stream s was acknowledged: marks its token's wait. */
void lmz__repl_token_acked(lmz_repl_t *r, uint64_t token, uint64_t node,
                           uint64_t gen);

/* ---- repl_fill.c --------------------------------------------------------- */
struct rfill *lmz__repl_fills_of(lmz_repl_t *r, const uint8_t *prefix,
                                 size_t plen);
struct rfill *lmz__repl_fill_by_id(lmz_repl_t *r, uint64_t id);
void lmz__repl_fill_remove(lmz_repl_t *r, struct rfill *f);
/* The FILL record `rec` of stream s was acknowledged. */
void lmz__repl_fill_acked(lmz_repl_t *r, struct ostream *s,
                          const struct rrec *rec);
/* Stream s acknowledged through acked_seq: catching fills may propose. */
void lmz__repl_fills_progress(lmz_repl_t *r, struct ostream *s);
/* Stream s closed: its fills are abandoned. */
void lmz__repl_fills_abort_node(lmz_repl_t *r, uint64_t node);
void lmz__repl_fill_tick(lmz_repl_t *r);
/* Drops fills whose placement changed (owner, epoch, or now listed). */
void lmz__repl_fills_check(lmz_repl_t *r);
void lmz__repl_barrier_done(lmz_repl_t *r, uint64_t barrier, int status);
void lmz__repl_add_done(lmz_repl_t *r, uint64_t fill_id, uint64_t node,
                        uint64_t gen, int status, int item_status);
void lmz__repl_fills_free(lmz_repl_t *r);

/* ---- repl_resume.c (catch-up of a retained stream) ---------------------- */
/* Stream s is closing: retains it if it may resume (bounds). */
bool lmz__repl_retain(lmz_repl_t *r, struct ostream *s);
/* Frees the resume set (lmz_repl_free, or retention ends). */
void lmz__repl_resume_clear(struct ostream *s);
/* Gives retention up: the records and the resume set are freed. */
void lmz__repl_retain_drop(lmz_repl_t *r, struct ostream *s);
/* Whether a batch of the actor (prefix, epoch) goes on retained stream s. */
bool lmz__repl_retained_wants(const struct ostream *s, const uint8_t *prefix,
                              size_t plen, uint64_t epoch);
/* Resumes retained streams whose backup is reachable again. */
void lmz__repl_resume_tick(lmz_repl_t *r);
/* Creates a CATCHING fill (repl_fill.c) for a resumed actor. */
int lmz__repl_fill_resume(lmz_repl_t *r, struct ostream *s,
                          const struct rresume *a);

/* An actor this node imported from a drain (lmz_repl_imported): records of
 * it from `from` are refused until the directory shows the move. */
struct rimport {
  uint64_t from, until_ms;
  size_t plen;
  uint8_t prefix[LMZ_KEY_PREFIX_MAX]; /* hmap key */
  size_t blen, ilen;
  char name[]; /* binding then instance */
};
#define LMZ__REPL_IMPORT_FENCE_MS 60000u
#define LMZ__REPL_MAX_IMPORTS 65536u

/* ---- repl_backup.c ------------------------------------------------------- */
void lmz__repl_commit_done(lmz_repl_t *r, struct rpending *p, int status);
void lmz__repl_in_flush(lmz_repl_t *r);
void lmz__repl_in_forget(lmz_repl_t *r, uint64_t node);
void lmz__repl_in_free(lmz_repl_t *r);

#endif
