/* cluster/directory.h - the placement directory: a pure, in-memory state
 * machine replicated by Raft (cluster/raftnode.h drives it).
 *
 * STATE (replicated: identical on every replica after the same commands):
 *   - nodes: id -> {state, address, raft_address, lease_ms, lease_seq}
 *   - actors: (binding, instance) -> (node_id, epoch, backups), with an
 *     O(1) lookup (backups: see "replica sets" below)
 *   - epoch_seq: the highest epoch ever handed out
 * plus, per node, two derived/local fields that are NOT replicated:
 *   - n_actors (derived from the actor table),
 *   - heard_ms: this replica's clock when it applied the node's latest
 *     lease renewal or upsert (restore sets it to "now" for every node).
 *     The leader uses it for lease expiry (cluster/lease.h); it never
 *     influences what apply() decides, so replicas stay identical.
 *
 * COMMANDS (proto/directory.proto; encode them with lmz_dir_encode_*):
 *   claims       place each actor on the given UP node with a fresh epoch
 *                (++epoch_seq). An actor already placed is returned as is
 *                (LMZ_DIR_EXISTING): claims are idempotent, retries are safe.
 *                With LMZ_DIR_CLAIM_REPLACE_DOWN, an actor whose owner is
 *                DOWN is re-placed with epoch + 1 (LMZ_DIR_REPLACED): for
 *                stateless workers and gateway actors only.
 *   node_upsert  add a node or change state (JOINING/UP/DRAINING) and
 *                addresses; a DOWN node may come back this way. DOWN itself
 *                is refused (only mark_down fences). With lost_data (the
 *                node found no store of its own at start: a new or wiped
 *                disk), its actors fail over as on mark_down and it leaves
 *                every backup list; the item's epoch is the number
 *                promoted.
 *   lease_renew  lease_seq += 1, lease_ms = L; refused for DOWN/unknown
 *                nodes (LMZ_EUNAVAILABLE / LMZ_ENOTFOUND).
 *   mark_down    state = DOWN if lease_seq == expected (else LMZ_ESTALE),
 *                and fails its actors over to their backups (below).
 *   moves        owner from -> to, epoch + 1, if owner == from and epoch ==
 *                expected (else LMZ_ESTALE), `to` is UP (else
 *                LMZ_EUNAVAILABLE), and the move is graceful or `from` is
 *                DOWN (else LMZ_EBUSY: its lease may still be valid).
 *   releases     forget a placement if owner and epoch match.
 *   node_remove  drop a node; one that owns actors only when DOWN + force,
 *                which also drops its placements. The node also leaves
 *                every backup list (lists name known nodes only).
 *   backups_add, pair_out: replica sets, below.
 *   activated, replaces: activation, below.
 * Epochs are >= 1 and strictly increase across the placements of one
 * (binding, instance), even across release and re-claim.
 *
 * DETERMINISM: apply() reads no clock for its decisions (only for heard_ms),
 * allocates only to grow the tables, and reports item-level failures in the
 * result, never by changing state partially. If memory runs out in the
 * middle of a batch (LMZ_ENOMEM), the items before it stay applied; applying
 * the same command again is safe (claims are idempotent, applied moves and
 * releases turn into LMZ_ESTALE) and ends in the same state as a replica
 * that never ran out; the Raft glue therefore returns non-zero so Raft
 * retries the entry.
 *
 * SNAPSHOT FORMAT (little-endian, version 4):
 *   "LDIR" u16 version=4  u16 flags=0  u64 epoch_seq  u32 n_nodes  u64 n_actors
 *   n_nodes x  u64 id | u8 state | u32 lease_ms | u64 lease_seq |
 *              u8 alen | address | u8 rlen | raft_address        (ids ascending)
 *   n_actors x u64 node_id | u64 epoch | u8 n_backups | n_backups x u64 id |
 *              u8 flags | u8 blen | u16 ilen | binding | instance
 *   (version 1, still restored: no n_backups and no ids; lists start empty;
 *   versions 1 and 2: no flags, every placement activated; versions 1 to 3:
 *   no placement fresh)
 *   u64 checksum = lmz_hash_stable(every byte before it) (core/hash.h)
 * Restore validates everything (magic, version, bounds, unknown states,
 * duplicate or unknown ids, duplicate actors, epochs > epoch_seq, backup
 * lists: at most LMZ_DIR_MAX_BACKUPS known ids, none the owner, no repeats;
 * trailing bytes, checksum) before it replaces the state: on error nothing
 * changes.
 *
 * Threading: none; one thread owns a directory. Lookups may run between
 * applies. Pointers returned by lookups are valid until the next apply or
 * restore. */
#ifndef LMZ_CLUSTER_DIRECTORY_H
#define LMZ_CLUSTER_DIRECTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/buf.h"
#include "core/hmap.h"
#include "lmz/value.h" /* lmz_arena */

#define LMZ_DIR_BINDING_MAX 255
#define LMZ_DIR_INSTANCE_MAX 1024
#define LMZ_DIR_ADDRESS_MAX 255
#define LMZ_DIR_MAX_NODES 4096
#define LMZ_DIR_MAX_BATCH 65536     /* items per command */
#define LMZ_DIR_MAX_COMMAND (64u << 20) /* bytes per command */
#define LMZ_DIR_MAX_BACKUPS 4 /* replication factor R <= 5 (DESIGN 4.1) */

enum lmz_dir_node_state {
  LMZ_DIR_JOINING = 1,
  LMZ_DIR_UP = 2,
  LMZ_DIR_DRAINING = 3,
  LMZ_DIR_DOWN = 4,
};

enum lmz_dir_cmd {
  LMZ_DIR_CMD_NONE = 0, /* malformed: nothing decoded */
  LMZ_DIR_CMD_CLAIMS = 2,
  LMZ_DIR_CMD_NODE_UPSERT = 3,
  LMZ_DIR_CMD_LEASE_RENEW = 4,
  LMZ_DIR_CMD_MARK_DOWN = 5,
  LMZ_DIR_CMD_MOVES = 6,
  LMZ_DIR_CMD_RELEASES = 7,
  LMZ_DIR_CMD_NODE_REMOVE = 8,
  LMZ_DIR_CMD_BACKUPS_ADD = 9,
  LMZ_DIR_CMD_PAIR_OUT = 10,
  LMZ_DIR_CMD_ACTIVATED = 11,
  LMZ_DIR_CMD_REPLACES = 12,
};

/* Item status (>= 0 success; < 0 an lmz error code, core/err.h). */
#define LMZ_DIR_PLACED 0   /* claim: newly placed; other commands: done */
#define LMZ_DIR_EXISTING 1 /* claim: already placed; existing returned */
#define LMZ_DIR_REPLACED 2 /* claim: owner was DOWN; re-placed, epoch + 1 */

#define LMZ_DIR_CLAIM_REPLACE_DOWN 1u
/* struct lmz_dir_claim only (the encoder sends it as DirClaim.unactivated,
 * not in DirClaim.flags): the placement starts not activated (ACTIVATION) */
#define LMZ_DIR_CLAIM_UNACTIVATED 2u

struct lmz_dir_node {
  uint64_t id;
  enum lmz_dir_node_state state;
  uint32_t lease_ms;  /* duration of the latest grant; 0 = never renewed */
  uint64_t lease_seq; /* grants applied so far */
  uint64_t n_actors;  /* derived */
  uint64_t n_unactivated; /* derived: its placements not activated yet */
  bool stale_copies; /* may hold outdated copies (see FRESH placements) */
  uint64_t heard_ms;  /* LOCAL: see the file comment */
  char address[LMZ_DIR_ADDRESS_MAX + 1];      /* NUL-terminated */
  char raft_address[LMZ_DIR_ADDRESS_MAX + 1]; /* NUL-terminated */
};

/* Outcome of one item. For lease_renew, `epoch` is the new lease_seq. */
struct lmz_dir_item {
  int32_t status;
  uint64_t request_id; /* echoed from the command */
  uint64_t node_id;    /* owner after the item (claims, moves) or node */
  uint64_t epoch;
};

struct lmz_dir_result {
  int status;           /* 0, or LMZ_EBADMSG/LMZ_EBADVERSION/LMZ_ETOOBIG/
                           LMZ_ENOMEM for the whole command */
  enum lmz_dir_cmd cmd; /* which command was decoded */
  size_t n;             /* items, in command order */
  const struct lmz_dir_item *items;
};

typedef struct lmz_dir_s lmz_dir_t;
typedef uint64_t (*lmz_dir_clock_fn)(void *ctx);
typedef void (*lmz_dir_move_fn)(void *ctx, const char *binding, size_t blen,
                                const char *instance, size_t ilen,
                                uint64_t new_owner, uint64_t epoch);

struct lmz__dir_ent_chunk;

struct lmz__dir_state {
  struct lmz_dir_node *nodes; /* sorted by id */
  size_t n_nodes, cap_nodes;
  lmz_hmap actors;
  struct lmz__dir_ent_chunk *chunks; /* head = the one being filled */
  size_t live_bytes, dead_bytes;
  uint64_t compactions;
  uint64_t epoch_seq;
  /* LOCAL: lmz_dir_set_move_hook (kept across restore) */
  lmz_dir_move_fn on_move;
  void *on_move_ctx;
};

/* The directory (README "Code conventions"): the caller allocates it; the
 * fields are private to directory.c and directory_replicas.c. */
struct lmz_dir_s {
  struct lmz__dir_state st;
  uint64_t owner_changes; /* LOCAL: lmz_dir_owner_changes */
  lmz_dir_clock_fn clock;
  void *clock_ctx;
  lmz_arena *pb; /* protobuf-c unpack arena, reset per apply */
  ProtobufCAllocator pba;
  struct lmz_dir_item *items;
  size_t cap_items;
  struct lmz_dir_result res;
};

/* ---- lifecycle ----------------------------------------------------------- */

/* Initializes the caller's `d` as an empty directory. Its clock (for
 * heard_ms) defaults to uv_hrtime() in milliseconds. Returns 0 or
 * LMZ_ENOMEM (then `d` holds nothing). Close with lmz_dir_close(). */
int lmz_dir_init(lmz_dir_t *d);
/* Releases what the directory holds (synchronous; it owns memory only).
 * The memory of `d` is the caller's again. NULL allowed. */
void lmz_dir_close(lmz_dir_t *d);
/* Replaces the clock used for heard_ms (tests inject fake time). */
void lmz_dir_set_clock(lmz_dir_t *d, lmz_dir_clock_fn fn, void *ctx);

/* ---- the state machine --------------------------------------------------- */

/* Applies one encoded command (borrowed; not kept). Returns the command-level
 * status (also in (*res)->status): 0 when the command was well-formed (each
 * item's outcome is in the result; an item with an invalid field, such as an
 * empty binding, a zero node id or an unknown state, gets LMZ_EINVAL and
 * the others still apply), LMZ_EBADMSG (undecodable, or no body: state
 * unchanged), LMZ_EBADVERSION, LMZ_ETOOBIG (over LMZ_DIR_MAX_COMMAND or
 * LMZ_DIR_MAX_BATCH), or LMZ_ENOMEM (see DETERMINISM).
 * *res is always set; it points into the directory and stays valid until the
 * next apply/restore/free. Cost: O(items), no allocation per item except
 * table growth (amortized). */
int lmz_dir_apply(lmz_dir_t *d, const void *cmd, size_t len,
                  const struct lmz_dir_result **res);

/* Serializes the replicated state (format above) into a fresh malloc'd
 * buffer, or with `alloc` when non-NULL (the Raft glue passes raft_malloc).
 * Returns 0 (*out, *len set; the caller frees) or LMZ_ENOMEM. */
int lmz_dir_snapshot(const lmz_dir_t *d, void *(*alloc)(size_t), void **out,
                     size_t *len);
/* Replaces the state with a snapshot (borrowed). Returns 0, LMZ_EBADMSG,
 * LMZ_EBADVERSION or LMZ_ENOMEM; on error the directory is unchanged.
 * Every node's heard_ms becomes now. */
int lmz_dir_restore(lmz_dir_t *d, const void *buf, size_t len);

/* ---- reads (local, O(1) lookups) ----------------------------------------- */

/* Placement of (binding, instance). Returns 0 (*node_id, *epoch set),
 * LMZ_ENOTFOUND, or LMZ_EINVAL for lengths over the limits. */
int lmz_dir_lookup(const lmz_dir_t *d, const void *binding, size_t blen,
                   const void *instance, size_t ilen, uint64_t *node_id,
                   uint64_t *epoch);
/* The node with this id, or NULL. Valid until the next apply/restore. */
const struct lmz_dir_node *lmz_dir_node_get(const lmz_dir_t *d, uint64_t id);
/* Nodes by ascending id: i in [0, lmz_dir_n_nodes()). */
size_t lmz_dir_n_nodes(const lmz_dir_t *d);
const struct lmz_dir_node *lmz_dir_node_at(const lmz_dir_t *d, size_t i);
uint64_t lmz_dir_n_actors(const lmz_dir_t *d);
uint64_t lmz_dir_epoch_seq(const lmz_dir_t *d);
/* Ids of the nodes eligible for placement at now_ms: UP and lease live
 * (lmz_lease_is_live on heard_ms). Writes up to cap ids (ascending) into
 * out and returns how many there are in total. */
size_t lmz_dir_live_nodes(const lmz_dir_t *d, uint64_t now_ms, uint64_t *out,
                          size_t cap);
/* Visits every actor placed on node_id (every actor when 0), in no
 * particular order; stops when fn returns non-zero and returns that. The
 * directory must not change during the walk (no apply from fn). */
typedef int (*lmz_dir_actor_fn)(const char *binding, size_t blen,
                                const char *instance, size_t ilen,
                                uint64_t node_id, uint64_t epoch, void *arg);
int lmz_dir_foreach_actor(const lmz_dir_t *d, uint64_t node_id,
                          lmz_dir_actor_fn fn, void *arg);
/* ---- replica sets (DESIGN.md 4.1) ------------------------------------------
 *
 * A placement has an owner and up to LMZ_DIR_MAX_BACKUPS backups: the nodes
 * that hold a copy of the actor's key range and are IN SYNC with the owner
 * (the owner's output gate waits for each of them). The list is ordered: on
 * failover the first backup that is not DOWN becomes the owner. A backup is
 * listed only after it holds the actor's state (a fresh claim: the empty
 * state; otherwise a fill then BACKUPS_ADD) and is unlisted by PAIR_OUT
 * before the owner acknowledges anything without it.
 *
 * Command semantics (apply):
 *   claims       DirClaim.backups (chosen by the leader) are listed, in the
 *                given order, keeping only ids that are UP, not the owner,
 *                not repeated, at most LMZ_DIR_MAX_BACKUPS; claims with
 *                LMZ_DIR_CLAIM_REPLACE_DOWN (stateless actors) get none.
 *                A claim that finds the actor placed changes no list.
 *   backups_add  per item: (binding, instance) must be owned by `owner` at
 *                `epoch` and `owner` not DOWN (else LMZ_ESTALE: a fenced
 *                owner changes no in-sync set; unknown actor
 *                LMZ_ENOTFOUND),
 *                `backup` UP and not the owner (else LMZ_EUNAVAILABLE /
 *                LMZ_EINVAL); already listed: LMZ_DIR_EXISTING; list full:
 *                LMZ_EBUSY; else appended (LMZ_DIR_PLACED). Epoch unchanged.
 *                Zero ids or an invalid name: LMZ_EINVAL. A successful
 *                item reports the owner and epoch.
 *   pair_out     removes `backup` from the list of every actor owned by
 *                `owner`; always succeeds (idempotent) unless an id is 0
 *                (LMZ_EINVAL); the item's node_id is `backup`, its epoch
 *                the number of lists it changed. O(actors).
 *   mark_down    (when it applies) additionally: every actor owned by the
 *                node whose list has a backup that is not DOWN (and, when
 *                the command names promote_to nodes, is one of them) is
 *                PROMOTED to the first such backup with epoch + 1
 *                (epoch_seq kept >= every epoch) and an EMPTY list (the other backups may lack
 *                the dead owner's last, unacknowledged writes: the new
 *                owner refills them); every other actor drops the node from
 *                its list. The item's epoch is the number promoted (0
 *                for a retry on a node already DOWN: nothing is left to
 *                move). One walk of the actor table. An actor with no
 *                backup left that is not DOWN stays on the DOWN owner
 *                (unavailable until it returns, as without replicas).
 *   moves        the moved actor's list becomes empty (the new owner
 *                refills it); so does a REPLACE_DOWN re-placement.
 *   node_remove  also drops the node from every list.
 * Every decision about one actor reads only its own entry and the node
 * states, so the outcome does not depend on the order of the table walk.
 * Snapshot format version 2 adds, after each actor's epoch, u8 n_backups
 * and n_backups x u64 id; restore accepts version 1 (no lists) too. */
/* ---- activation (issue 15 item 3) ------------------------------------------
 *
 * A placement is ACTIVATED unless it was claimed with `unactivated` (the
 * leader sets it on durable claims that get no backups while another node
 * could take the actor) and no DirActivated for it was committed since.
 * WHY: at R = 1 a claim can land on a node that went silent a moment
 * later (paused, partitioned with its links up); without this the actor is
 * unavailable until that node returns. A placement that was never
 * activated holds nothing (no turn ran for it: the owner's router runs no
 * turn before its mark is committed in its replica), so the leader may
 * move it without the owner: DirReplace. A mark and a re-placement of the
 * same placement are ordered by the log, and each refuses what the other
 * changed (the mark needs the same owner and epoch, the re-placement an
 * unactivated placement), so the old owner either ran nothing or keeps it.
 *   claims       a new placement is unactivated iff the claim says so and
 *                it is not REPLACE_DOWN; an existing one is unchanged.
 *   activated    per item: owned by node_id at epoch (else LMZ_ESTALE;
 *                unknown LMZ_ENOTFOUND), owner not DOWN (else
 *                LMZ_EUNAVAILABLE): marked (LMZ_DIR_PLACED) or already
 *                (LMZ_DIR_EXISTING).
 *   replaces     per item: owned by from_node at expected_epoch (else
 *                LMZ_ESTALE), not activated (else LMZ_EBUSY), to_node UP
 *                and not from_node (else LMZ_EUNAVAILABLE / LMZ_EINVAL):
 *                moved with epoch + 1, empty backup list, still not
 *                activated, fresh as it was (LMZ_DIR_PLACED).
 *   moves, failover promotions and REPLACE_DOWN re-placements leave the
 *   placement activated (the conservative value: state may travel with it).
 * Snapshot format version 3 adds, after each actor's backup ids, u8 flags
 * (bit 0 = activated; version 3: other bits must be 0); versions 1 and 2 restore
 * every placement as activated. lmz_dir_node.n_unactivated counts them per
 * owner (derived). */
/* ---- fresh placements --------------------------------------------------------
 *
 * A placement is FRESH while its epoch is the one a claim gave it: the
 * actor had no placement before that claim (never placed, or released,
 * which happens only with its key range empty), so no copy of its state was
 * written anywhere under an epoch that counts. Moves, failover promotions
 * and REPLACE_DOWN re-placements clear it (the state travels); a
 * DirReplace keeps it (the owner it leaves ran nothing). WHY: a node can
 * hold an outdated copy of an actor it no longer owns or backs up (a
 * backup removed by PAIR_OUT, an owner that failed over while it was away,
 * a drain's source); when a fresh placement names that node, the copy is
 * stale, and the owner drops it before the first turn (actor/fresh.c).
 * STALE COPIES: a node that left an actor's set (PAIR_OUT names it; it was
 * the owner marked DOWN; an owner or backup of a moved placement) may keep
 * a copy nobody updates: lmz_dir_node.stale_copies is set then and never
 * cleared. A fresh placement's owner holds back the outputs of a first
 * turn that wrote nothing until its backups confirmed they dropped their
 * copies (a FRESH barrier) only when a listed backup has the flag (a
 * turn that writes ships a FRESH record anyway).
 * Snapshot version 4 adds flags bit 1 = fresh, and bit 7 of each node's
 * state byte = stale_copies; versions 1 to 3 restore no placement as fresh
 * and no node as holding stale copies (the values of before). */
struct lmz_dir_placement {
  uint64_t node_id; /* owner */
  uint64_t epoch;
  uint32_t n_backups;
  uint64_t backups[LMZ_DIR_MAX_BACKUPS]; /* in-sync backups, failover order */
  bool activated; /* see ACTIVATION */
  bool fresh;     /* see FRESH */
};

/* Placement of (binding, instance) with its backups. Returns 0 (*out set),
 * LMZ_ENOTFOUND, or LMZ_EINVAL for lengths over the limits. */
int lmz_dir_placement_get(const lmz_dir_t *d, const void *binding, size_t blen,
                          const void *instance, size_t ilen,
                          struct lmz_dir_placement *out);
/* As lmz_dir_foreach_actor, with the whole placement. */
typedef int (*lmz_dir_placement_fn)(const char *binding, size_t blen,
                                    const char *instance, size_t ilen,
                                    const struct lmz_dir_placement *p,
                                    void *arg);
int lmz_dir_foreach_placement(const lmz_dir_t *d, uint64_t node_id,
                              lmz_dir_placement_fn fn, void *arg);
/* Actors placed on node_id (0 = all) with fewer than `want` backups
 * (want capped at LMZ_DIR_MAX_BACKUPS). O(actors). */
uint64_t lmz_dir_count_under_replicated(const lmz_dir_t *d, uint64_t node_id,
                                        uint32_t want);

/* LOCAL: called from apply for every placement that changed owner (a
 * failover promotion, a move, a stateless re-placement), after the change;
 * the names are valid during the call only. It must not touch the
 * directory. A restore calls nothing (see lmz_dir_owner_changes). */
void lmz_dir_set_move_hook(lmz_dir_t *d, lmz_dir_move_fn fn, void *ctx);

/* LOCAL (not replicated): bumped by every applied command that may have
 * given actors a new owner (mark_down, moves, node_upsert) and by
 * restore. A node compares it with the value it saw to learn that actors
 * may have become its own (their alarms need indexing there). */
uint64_t lmz_dir_owner_changes(const lmz_dir_t *d);

/* Memory of the actor table, for metrics. */
struct lmz_dir_stats {
  size_t live_bytes;   /* bytes of live actor entries */
  size_t dead_bytes;   /* holes left by released entries, not yet compacted */
  uint64_t compactions;
  size_t map_slots;    /* hash map capacity */
};
void lmz_dir_stats(const lmz_dir_t *d, struct lmz_dir_stats *out);
/* True when both hold the same replicated state (not heard_ms). O(actors). */
bool lmz_dir_equal(const lmz_dir_t *a, const lmz_dir_t *b);

/* ---- command encoders (for proposers and tests) -------------------------- */

struct lmz_dir_claim {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t node_id;
  uint64_t request_id;
  uint32_t flags; /* LMZ_DIR_CLAIM_REPLACE_DOWN */
  uint32_t n_backups; /* <= LMZ_DIR_MAX_BACKUPS (else LMZ_EINVAL) */
  const uint64_t *backups;
};

/* DirActivated: the owner marks its placement at `epoch` activated. */
struct lmz_dir_activated {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t node_id, epoch, request_id;
};

/* DirReplace: the leader re-places a never-activated placement. */
struct lmz_dir_replace {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t from_node, to_node, expected_epoch, request_id;
};

struct lmz_dir_backup_add {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t owner, epoch, backup, request_id;
};

struct lmz_dir_move {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t from_node, to_node, expected_epoch, request_id;
  bool graceful;
};

struct lmz_dir_release {
  const void *binding;
  size_t blen;
  const void *instance;
  size_t ilen;
  uint64_t node_id, epoch, request_id;
};

/* Each encoder appends one DirCommand to `out` (the inputs are borrowed).
 * Returns 0, LMZ_EINVAL (n == 0 or over LMZ_DIR_MAX_BATCH, NULL strings,
 * lengths over the limits) or LMZ_ENOMEM. Encoders do not check what only
 * apply() can know (node states, epochs). */
int lmz_dir_encode_claims(lmz_buf *out, const struct lmz_dir_claim *c,
                          size_t n);
int lmz_dir_encode_moves(lmz_buf *out, const struct lmz_dir_move *m,
                         size_t n);
int lmz_dir_encode_releases(lmz_buf *out, const struct lmz_dir_release *r,
                            size_t n);
int lmz_dir_encode_node_upsert(lmz_buf *out, uint64_t node_id,
                               enum lmz_dir_node_state state,
                               const char *address, const char *raft_address,
                               uint64_t request_id);
/* node_upsert with lost_data (see COMMANDS). */
int lmz_dir_encode_node_register(lmz_buf *out, uint64_t node_id,
                                 enum lmz_dir_node_state state,
                                 const char *address, const char *raft_address,
                                 bool lost_data, uint64_t request_id);
int lmz_dir_encode_lease_renew(lmz_buf *out, uint64_t node_id,
                               uint32_t lease_ms, uint64_t request_id);
int lmz_dir_encode_mark_down(lmz_buf *out, uint64_t node_id,
                             uint64_t expected_lease_seq, uint64_t request_id);
/* mark_down whose failover promotes only to nodes in promote_to[] (the
 * nodes the leader hears from; n == 0: any backup that is not DOWN). */
int lmz_dir_encode_mark_down_to(lmz_buf *out, uint64_t node_id,
                                uint64_t expected_lease_seq,
                                const uint64_t *promote_to, size_t n,
                                uint64_t request_id);
int lmz_dir_encode_node_remove(lmz_buf *out, uint64_t node_id, bool force,
                               uint64_t request_id);
int lmz_dir_encode_backups_add(lmz_buf *out,
                               const struct lmz_dir_backup_add *a, size_t n);
int lmz_dir_encode_pair_out(lmz_buf *out, uint64_t owner, uint64_t backup,
                            uint64_t request_id);
int lmz_dir_encode_activated(lmz_buf *out, const struct lmz_dir_activated *a,
                             size_t n);
int lmz_dir_encode_replaces(lmz_buf *out, const struct lmz_dir_replace *r,
                            size_t n);

#endif
