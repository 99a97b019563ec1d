/* cluster/placement.h - where a new actor goes: pure placement policies.
 *
 * HASH (default): rendezvous (highest random weight) hashing over a set of
 * node ids. Every (binding, instance) gets a score per node,
 *   score(node) = mix64(key_hash ^ mix64(node_id)),
 * and the node with the highest score wins (ties: the lower node id). The
 * result depends only on the key and the *set* of candidates, not on their
 * order, and when a node leaves the set only the keys it won move (each to
 * its second choice); a node joining takes about 1/n of the keys from
 * everyone else. The leader passes the nodes it currently hears from (UP,
 * lease live: cluster/directory.h lmz_dir_live_nodes).
 *
 * LOCAL: the caller's own node, when it is a candidate (gateway actors follow
 * their socket; callers that ask for locality); otherwise the HASH choice, so
 * a claim never lands on a node the leader does not hear from.
 *
 * key_hash is FNV-1a 64 over [u8 binding_len][binding][instance] with a final
 * avalanche; it is part of the placement contract (changing it would move
 * actors between versions), so it is defined here and not borrowed from the
 * hash map.
 *
 * Threading: pure functions; no allocation; thread-safe. */
#ifndef LMZ_CLUSTER_PLACEMENT_H
#define LMZ_CLUSTER_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/directory.h"

enum lmz_placement_policy {
  LMZ_PLACEMENT_HASH = 0,
  LMZ_PLACEMENT_LOCAL = 1,
};

/* Stable 64-bit hash of an actor name. Lengths are not checked here. */
uint64_t lmz_placement_key_hash(const void *binding, size_t blen,
                                const void *instance, size_t ilen);
/* The rendezvous score of node_id for a key hash. */
uint64_t lmz_placement_score(uint64_t key_hash, uint64_t node_id);

/* Chooses a node for (binding, instance) among `nodes` (n ids, borrowed;
 * duplicates and order do not matter; id 0 is ignored).
 * local_id: the asking node, used by LMZ_PLACEMENT_LOCAL.
 * Returns 0 and *out, LMZ_EUNAVAILABLE when no candidate (n == 0 or all 0),
 * or LMZ_EINVAL for an unknown policy or blen > 255. */
int lmz_placement_choose(enum lmz_placement_policy policy,
                         const uint64_t *nodes, size_t n, uint64_t local_id,
                         const void *binding, size_t blen,
                         const void *instance, size_t ilen, uint64_t *out);

/* The rendezvous ranking of (binding, instance) over `nodes`: writes the k
 * best candidates into out, best first (highest lmz_placement_score, ties to
 * the lower id: the order lmz_placement_choose picks from), skipping id 0,
 * duplicates and `exclude` (0 = none). With exclude = the owner, these are
 * its backups (DESIGN.md 4.1): the next R-1 nodes of the owner's ranking, so
 * the choice is deterministic, spreads load, and moves little when the set
 * changes. Depends only on the key and the *set* of candidates. Returns how
 * many were written (<= k, fewer when the set is smaller). O(n * k), no
 * allocation; lengths are not checked (blen <= 255 for a stable hash). */
size_t lmz_placement_rank(const uint64_t *nodes, size_t n, uint64_t exclude,
                          const void *binding, size_t blen,
                          const void *instance, size_t ilen, uint64_t *out,
                          size_t k);

/* ---- the candidate set ----------------------------------------------------
 *
 * ONE set of nodes a new actor (a claim), a draining node's actor (the drain
 * target) and, later, a backup may go to: nodes that are UP with a live
 * lease in the directory (lmz_dir_live_nodes), whose renewals are current
 * (lmz_lease_is_current: heard within one renewal interval plus slack - a
 * paused node keeps its connections and a live lease for up to L), AND
 * connected to the asking node right now (a node that just crashed keeps a
 * live lease for up to L, and an actor placed there would be unavailable
 * until it returns). The asking node itself counts as connected. No
 * network: `connected` is the caller's view of its links. */
typedef bool (*lmz_placement_connected_fn)(void *ctx, uint64_t node_id);

struct lmz_placement_view {
  const lmz_dir_t *dir;
  uint64_t self_id;                    /* the asking node */
  uint64_t now_ms;                     /* the caller's monotonic clock */
  lmz_placement_connected_fn connected; /* NULL = every node connected */
  void *ctx;
};

/* Writes up to cap candidate ids (ascending) into out, the asking node
 * included only when include_self; returns how many were written. */
size_t lmz_placement_candidates(const struct lmz_placement_view *v,
                                bool include_self, uint64_t *out, size_t cap);

#endif
