/* cluster/directory_int.h - private structures of the placement directory,
 * shared by directory.c (tables, the core commands, snapshots, encoders)
 * and directory_replicas.c (replica sets: the backup lists, BACKUPS_ADD,
 * PAIR_OUT and the failover promotion on MarkDown). Nothing outside those
 * two files includes it. */
#ifndef LMZ_CLUSTER_DIRECTORY_INT_H
#define LMZ_CLUSTER_DIRECTORY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/directory.h"
#include "core/hmap.h"
#include "lmz/value.h" /* lmz_arena */
#include "proto/directory.pb-c.h"

#define KEY_MAX (1 + LMZ_DIR_BINDING_MAX + LMZ_DIR_INSTANCE_MAX)

/* One placement. The hash map key is `key` = [u8 blen][binding][instance].
 * backups[0..n_backups) are distinct known node ids, none the owner
 * (directory.h "replica sets"). */
struct dir_actor {
  uint64_t node_id;
  uint64_t epoch;
  uint64_t backups[LMZ_DIR_MAX_BACKUPS];
  uint8_t n_backups;
  uint8_t activated : 1; /* 0: never activated (directory.h ACTIVATION) */
  uint8_t fresh : 1;     /* its epoch began with a claim (directory.h FRESH) */
  uint16_t klen;
  uint8_t key[];
};

/* struct lmz__dir_state and struct lmz_dir_s are in directory.h (the
 * caller allocates the directory). */

/* ---- directory.c --------------------------------------------------------- */

/* Node `id` (if known) may hold copies of actors it no longer owns or
 * backs up (directory.h STALE COPIES). directory_replicas.c */
void lmz__dir_stale_copies(struct lmz__dir_state *s, uint64_t id);

struct lmz_dir_node *lmz__dir_node_find(const struct lmz__dir_state *s,
                                        uint64_t id);
/* [u8 blen][binding][instance] into k (KEY_MAX bytes): its length, or 0 when
 * a length is out of range. */
size_t lmz__dir_key_build(uint8_t *k, const void *b, size_t blen,
                          const void *i, size_t ilen);
/* Moves a placement to `to` with epoch + 1 and an empty backup list (the new
 * owner refills it), activated (state may travel with it); counts and
 * epoch_seq follow. epoch < UINT64_MAX. */
void lmz__dir_actor_move(struct lmz__dir_state *s, struct dir_actor *a,
                         struct lmz_dir_node *to);

/* ---- directory_replicas.c ------------------------------------------------ */

/* A new placement's list from a claim's backups (directory.h). */
void lmz__dir_claim_backups(const struct lmz__dir_state *s, struct dir_actor *a,
                            const Lmz__DirClaim *c);
/* Removes id from a's list, keeping the order; true when it was listed. */
bool lmz__dir_list_remove(struct dir_actor *a, uint64_t id);
/* MarkDown of node `down` (now DOWN), or its registration with lost data:
 * promotes its actors to their first backup that is not DOWN and, when
 * n_to > 0, is one of to[] (the nodes the leader heard from), and drops it
 * from the other lists. Returns how many actors were promoted. O(actors +
 * n_to log n_to). */
uint64_t lmz__dir_failover(struct lmz__dir_state *s, uint64_t down,
                           const uint64_t *to, size_t n_to);
int lmz__dir_apply_backups_add(lmz_dir_t *d, const Lmz__DirCommand *cmd);
int lmz__dir_apply_pair_out(lmz_dir_t *d, const Lmz__DirCommand *cmd);

/* ---- directory_activation.c ---------------------------------------------- */

/* a's activated flag with its owner's n_unactivated count kept in step. */
void lmz__dir_set_activated(struct lmz__dir_state *s, struct dir_actor *a,
                            bool on);
int lmz__dir_apply_activated(lmz_dir_t *d, const Lmz__DirCommand *cmd);
int lmz__dir_apply_replaces(lmz_dir_t *d, const Lmz__DirCommand *cmd);
/* encoders' shared helpers (directory.c) */
int lmz__dir_pack_cmd(lmz_buf *out, Lmz__DirCommand *c);
bool lmz__dir_name_ok(const void *b, size_t blen, const void *i, size_t ilen);
/* n messages of sz bytes and an array of n pointers to them (freed by the
 * caller): 0, LMZ_EINVAL (n == 0 or over LMZ_DIR_MAX_BATCH), LMZ_ENOMEM. */
int lmz__dir_batch_alloc(size_t n, size_t sz, void **msgs, void ***ptrs);

#endif
