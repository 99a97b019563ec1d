/* cluster/raftnode.h - one node's Raft instance for the placement directory:
 * owns a `struct raft` with the libuv I/O backend (raft_uv) and a transport
 * (raft_uv_tcp for now; a transport over the authenticated node channel
 * will replace it), and the directory FSM (cluster/directory.h) it drives.
 *
 * Lifecycle (raft 0.15 order, c-deps-guide section 2.1):
 *   lmz_raftnode_init()       raft_uv + transport + raft_init + settings
 *   lmz_raftnode_bootstrap()  first start of an initial voter only (the same
 *                             voter list on every initial node); a node that
 *                             joins later is never bootstrapped
 *   lmz_raftnode_start()      loads snapshot + log, restores the FSM
 *   ... lookups (rn->dir), claims, proposals, membership changes ...
 *   lmz_raftnode_close(cb)    fails what is pending, closes raft, then the
 *                             I/O, then the handles; cb when all are gone
 *
 * Leadership: 0.15 has no state callback and no leader no-op, so a check
 * hook polls raft_state() and the term on every loop iteration; a node that
 * becomes leader issues raft_barrier() and *serves* (accepts claims and
 * proposals into the log) only once the barrier applied, i.e. once every
 * entry of earlier terms is in its FSM. Until then requests queue; if
 * leadership is lost they fail with LMZ_ENOTLEADER (find the leader with
 * lmz_raftnode_leader() and forward).
 *
 * Claims are batched per loop iteration: every claim made during one
 * iteration (and up to max_batch per entry) becomes one Raft entry; the
 * placement (cluster/placement.h) is chosen when the batch is built, over
 * the candidate set the `candidates` option returns (the cluster passes
 * placement.h's one set: live AND connected), or the nodes the leader hears
 * from (lmz_dir_live_nodes) without it. Each claimer's callback gets its
 * own item of the entry's result.
 *
 * Leases are not watched here: cluster/member.c fences silent nodes.
 *
 * Threading: everything runs on the loop thread; callbacks too. A function
 * that takes a callback and returns an error never runs it; after it
 * returned 0 the callback runs exactly once, never from inside the call. */
#ifndef LMZ_CLUSTER_RAFTNODE_H
#define LMZ_CLUSTER_RAFTNODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/directory.h"
#include "cluster/lease.h"
#include "cluster/placement.h"
#include "core/buf.h"
#include "core/err.h"

typedef struct lmz_raftnode_s lmz_raftnode_t;
typedef struct lmz_raftnode_claim_s lmz_raftnode_claim_t;
typedef struct lmz_raftnode_propose_s lmz_raftnode_propose_t;
typedef struct lmz_raftnode_change_s lmz_raftnode_change_t;

/* Roles as raft reports them (RAFT_FOLLOWER, RAFT_CANDIDATE, RAFT_LEADER,
 * RAFT_UNAVAILABLE). `serving`: leader with its barrier applied. */
typedef void (*lmz_raftnode_role_cb)(lmz_raftnode_t *rn, int role,
                                     bool serving, uint64_t leader_id);
/* status >= 0: the item's status (LMZ_DIR_PLACED / EXISTING / REPLACED) and
 * `item` holds the placement; status < 0: `item` is the directory's refusal
 * (LMZ_EUNAVAILABLE ...) when non-NULL, else the request never committed:
 * LMZ_ENOTLEADER (leadership lost: outcome unknown, retry — claims are
 * idempotent), LMZ_EUNAVAILABLE (no live node to place on), LMZ_ECANCELED
 * (closing). `item` is valid only during the callback. */
typedef void (*lmz_raftnode_claim_cb)(lmz_raftnode_claim_t *req, int status,
                                      const struct lmz_dir_item *item);
/* status: the command-level status (res->status) or LMZ_ENOTLEADER /
 * LMZ_ECANCELED / LMZ_ENOMEM with res NULL. `res` is valid only during the
 * callback. */
typedef void (*lmz_raftnode_propose_cb)(lmz_raftnode_propose_t *req,
                                        int status,
                                        const struct lmz_dir_result *res);
/* status: 0, LMZ_ENOTLEADER, LMZ_EBUSY, LMZ_EINVAL, LMZ_ECANCELED, ... */
typedef void (*lmz_raftnode_change_cb)(lmz_raftnode_change_t *req,
                                       int status);
typedef void (*lmz_raftnode_close_cb)(lmz_raftnode_t *rn);
/* The placement candidates at now_ms (up to cap ids into out; returns how
 * many). */
typedef size_t (*lmz_raftnode_candidates_fn)(void *ctx, uint64_t now_ms,
                                             uint64_t *out, size_t cap);
/* A monotonic clock in milliseconds (injected; tests use fake time). */
typedef uint64_t (*lmz_raftnode_clock_fn)(void *ctx);

struct lmz_raftnode_options {
  uint64_t id;              /* raft id == directory node id; non-zero */
  const char *address;      /* raft address "a.b.c.d:port" (copied) */
  const char *bind_address; /* NULL = address; same port (copied) */
  const char *data_dir;     /* must exist; one per node (copied) */
  unsigned election_timeout_ms;  /* 0 = 200 */
  unsigned heartbeat_timeout_ms; /* 0 = 20 */
  unsigned snapshot_threshold;   /* 0 = 8192 (guide: >= 8192) */
  unsigned snapshot_trailing;    /* 0 = threshold / 8 */
  unsigned connect_retry_ms;     /* 0 = 200 */
  unsigned max_batch;            /* claims per entry; 0 = 4096 */
  unsigned max_inflight;         /* claim entries in flight; 0 = 32 */
  unsigned replication_factor;   /* R: a claim names up to R-1 backups;
                                    0 or 1 = none; capped at
                                    LMZ_DIR_MAX_BACKUPS + 1 (DESIGN 4.1) */
  struct lmz_lease_config lease; /* zeros = LMZ_LEASE_DEFAULT_* */
  lmz_raftnode_role_cb on_role;  /* optional */
  lmz_raftnode_clock_fn now_ms;  /* NULL = uv_hrtime() in ms; also the
                                    directory's clock (heard_ms) */
  void *clock_ctx;
  lmz_raftnode_candidates_fn candidates; /* NULL = lmz_dir_live_nodes */
  void *candidates_ctx;
  /* Optional: raft's peer traffic through this transport instead of
   * raft_uv_tcp (cluster/raftbridge.h: over the authenticated node channel;
   * nothing listens on `address` then). raft closes it; `transport_free`
   * releases it after raft closed. */
  struct raft_uv_transport *custom_transport;
  void (*transport_free)(struct raft_uv_transport *t);
};

/* ---- requests (caller-allocated; live until their callback) -------------- */

struct lmz_raftnode_claim_s {
  void *data; /* public */
  /* private */
  lmz_raftnode_claim_cb cb;
  uint64_t request_id;
};

struct lmz_raftnode_propose_s {
  void *data; /* public */
  /* private */
  lmz_raftnode_propose_cb cb;
  lmz_raftnode_t *rn;
  struct raft_apply apply;
  struct raft_buffer buf; /* raft_malloc'd copy until raft owns it */
  lmz_raftnode_propose_t *next;
};

struct lmz_raftnode_change_s {
  void *data; /* public */
  /* private */
  lmz_raftnode_change_cb cb;
  lmz_raftnode_t *rn;
  struct raft_change change;
  int kind; /* add / assign / remove */
  int role;
  uint64_t id;
  char address[LMZ_DIR_ADDRESS_MAX + 1];
  lmz_raftnode_change_t *next;
};

/* ---- the handle ----------------------------------------------------------- */

struct lmz_raftnode_pending; /* private */

struct lmz_raftnode_s {
  void *data;                  /* public */
  uv_loop_t *loop;             /* read-only */
  lmz_dir_t dir_mem;           /* private: what dir points to */
  lmz_dir_t *dir;              /* read-only: local lookups at any time */
  char errmsg[LMZ_ERRMSG_LEN]; /* read-only: context of the last error */
  /* private: raft state must not move after init (raft keeps pointers) */
  struct raft raft;
  struct raft_io io;
  struct raft_uv_transport transport;
  struct raft_fsm fsm;
  struct raft_barrier barrier;
  uv_check_t check;
  uv_idle_t idle;
  struct lmz_raftnode_options opts;
  char address[LMZ_DIR_ADDRESS_MAX + 1];
  int role;
  uint64_t leader_id;
  raft_term lead_term;   /* term in which we became leader (0 = none) */
  bool barrier_pending;
  bool serving;
  bool closing;
  bool started;
  uint64_t close_by;    /* loop ms: raft_close from then on, stored or not */
  int handles_open;
  lmz_raftnode_close_cb close_cb;
  struct lmz_raftnode_pending *pend;
  lmz_raftnode_propose_t *props_head, *props_tail; /* waiting to serve */
  lmz_raftnode_change_t *chg_head, *chg_tail;      /* [0] is in flight */
  bool chg_inflight;
  unsigned inflight;       /* claim entries in flight */
  uint64_t next_request_id;
  uint64_t n_claims, n_entries; /* metrics: claims committed, entries */
};

/* Initializes rn on `loop` (options copied). Returns 0, LMZ_EINVAL (bad
 * options), LMZ_ENOTFOUND (data_dir missing), LMZ_ENOMEM or LMZ_EIO; see
 * rn->errmsg. On error nothing needs closing. */
int lmz_raftnode_init(uv_loop_t *loop, lmz_raftnode_t *rn,
                      const struct lmz_raftnode_options *opts);

struct lmz_raftnode_server {
  uint64_t id;
  const char *address;
  int role; /* RAFT_VOTER, RAFT_STANDBY or RAFT_SPARE */
};
/* Writes the initial configuration (before start). Returns 0, LMZ_EEXIST
 * (data dir already holds state: a restart, not an error), LMZ_EINVAL. */
int lmz_raftnode_bootstrap(lmz_raftnode_t *rn,
                           const struct lmz_raftnode_server *servers,
                           size_t n);
/* Starts raft (loads the snapshot and log synchronously). 0 or LMZ_EIO. */
int lmz_raftnode_start(lmz_raftnode_t *rn);
/* Closes everything; pending claims/proposals/changes fail with
 * LMZ_ECANCELED (possibly from inside this call), in-flight ones with
 * LMZ_ECANCELED or LMZ_ENOTLEADER as raft reports them. cb (optional) runs
 * once everything is closed; rn's memory may be freed from then on. */
void lmz_raftnode_close(lmz_raftnode_t *rn, lmz_raftnode_close_cb cb);

/* True when this node is the leader and its post-election barrier applied. */
bool lmz_raftnode_is_serving(const lmz_raftnode_t *rn);
/* The known leader's id (0 = none) and raft address (borrowed; may be
 * NULL). */
uint64_t lmz_raftnode_leader(lmz_raftnode_t *rn, const char **address);

/* Claims (binding, instance) on the leader. binding/instance are copied.
 * policy/local_node: see cluster/placement.h (local_node = the asking node;
 * 0 with LMZ_PLACEMENT_HASH). flags: LMZ_DIR_CLAIM_REPLACE_DOWN for
 * stateless actors only. Returns 0 (cb will run), LMZ_ENOTLEADER (this node
 * is not the leader: forward), LMZ_EINVAL (lengths, policy, flags),
 * LMZ_ECANCELED (closing) or LMZ_ENOMEM. */
int lmz_raftnode_claim(lmz_raftnode_t *rn, lmz_raftnode_claim_t *req,
                       const void *binding, size_t blen, const void *instance,
                       size_t ilen, enum lmz_placement_policy policy,
                       uint64_t local_node, uint32_t flags,
                       lmz_raftnode_claim_cb cb);
/* Proposes one encoded command (lmz_dir_encode_*; copied) as its own entry.
 * Returns 0 (cb will run), LMZ_ENOTLEADER, LMZ_EINVAL (empty or over
 * LMZ_DIR_MAX_COMMAND), LMZ_ECANCELED or LMZ_ENOMEM. */
int lmz_raftnode_propose(lmz_raftnode_t *rn, lmz_raftnode_propose_t *req,
                         const void *cmd, size_t len,
                         lmz_raftnode_propose_cb cb);

/* Membership (leader only), one change at a time: requests queue and run in
 * order. add: raft_add (as spare), then, for RAFT_VOTER or RAFT_STANDBY,
 * raft_assign (which catches the node up, snapshot included, before it
 * counts). The new node must have been started with an empty data dir and
 * no bootstrap. Returns 0 (cb will run), LMZ_ENOTLEADER, LMZ_EINVAL
 * (id 0, address too long, bad role), LMZ_ECANCELED. */
int lmz_raftnode_add(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                     uint64_t id, const char *address, int role,
                     lmz_raftnode_change_cb cb);
int lmz_raftnode_assign(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                        uint64_t id, int role, lmz_raftnode_change_cb cb);
int lmz_raftnode_remove(lmz_raftnode_t *rn, lmz_raftnode_change_t *req,
                        uint64_t id, lmz_raftnode_change_cb cb);

/* The FSM glue on its own (apply/snapshot/restore over `dir`), for a raft
 * driven by something else (tests use raft_fixture). apply returns non-zero
 * only for LMZ_ENOMEM (raft then retries the entry); its result is a
 * `const struct lmz_dir_result *` valid until the next apply. Entries use
 * the lmz_raftnode_entry_encode() format; a malformed one is skipped with
 * result status LMZ_EBADMSG (the directory is unchanged). */
void lmz_raftnode_fsm_init(struct raft_fsm *fsm, lmz_dir_t *dir);

/* Wraps a command into a Raft entry (raft_malloc'd; ownership to the
 * caller, then to raft_apply):
 *   [u32 LE command length][command][0-7 zero bytes], total % 8 == 0.
 * raft_uv 0.15 needs entry lengths that are multiples of 8: its
 * AppendEntries receiver pads every entry to 8 bytes, its sender does not.
 * Returns 0, LMZ_EINVAL (len over LMZ_DIR_MAX_COMMAND) or LMZ_ENOMEM. */
int lmz_raftnode_entry_encode(const void *cmd, size_t len,
                              struct raft_buffer *out);

/* raft error code -> lmz error code. */
int lmz_raftnode_err(int raft_rv);

#endif
