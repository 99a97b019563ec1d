/* cluster/member.h - membership and leases, all in one place next to the
 * lease arithmetic of cluster/lease.h:
 *   - registration: the node proposes itself UP (DirNodeUpsert) until it
 *     is registered, and again after it was fenced;
 *   - the holder loop: a lease renewal (DirLeaseRenew) every L/3 through the
 *     directory client; the node runs durable-object turns only while its
 *     lease is valid (lmz_member_lease_valid);
 *   - the leader's lease watch: every margin/2 the serving leader looks for
 *     a node whose lease surely expired and fences it (DirMarkDown);
 *   - membership changes (lmz node add/remove) on the leader;
 *   - the node's own state changes (DRAINING for a drain).
 * Nothing here reads a clock or owns a handle: the owner (cluster/cluster.c)
 * calls lmz_member_tick(now) from its tick.
 *
 * Threading: loop thread only. */
#ifndef LMZ_CLUSTER_MEMBER_H
#define LMZ_CLUSTER_MEMBER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/dirclient.h"
#include "cluster/lease.h"
#include "cluster/raftnode.h"

typedef struct lmz_member_s lmz_member_t;

/* The lease became valid after it was not (parked calls may run now):
 * from the grant's answer, or from a tick once the replica applied it. */
typedef void (*lmz_member_lease_cb)(lmz_member_t *m);
typedef void (*lmz_member_change_cb)(lmz_member_t *m, int status, void *arg);

struct lmz_member_options {
  uint64_t node_id;
  const char *node_address; /* copied */
  const char *raft_address; /* copied */
  struct lmz_lease_config lease;
  lmz_dirclient_t *dc;      /* borrowed: requests go through it */
  const lmz_dir_t *dir;     /* borrowed: the local replica */
  lmz_raftnode_t *rn;       /* borrowed: membership changes; NULL = none */
  bool no_auto_mark_down;   /* tests: the watch never fences */
  bool lost_data;           /* the node started on a fresh store: its first
                               registration says so (directory.h) ... */
  lmz_member_lease_cb on_lost_data_told; /* ... and then this runs once */
  lmz_member_lease_cb on_lease_valid; /* optional */
};

struct lmz_member_s {
  void *data; /* public */
  /* private */
  struct lmz_member_options o;
  char node_address[LMZ_DIR_ADDRESS_MAX + 1];
  char raft_address[LMZ_DIR_ADDRESS_MAX + 1];
  struct lmz_lease_holder lease;
  uint64_t lease_t_req;
  uint64_t next_watch_ms;
  bool registered, upsert_flight, renew_flight, markdown_flight;
  bool closing;
  bool stopped; /* lmz_member_stop_serving */
  bool told_valid; /* on_lease_valid ran since the lease last lapsed */
  uint64_t start_seq; /* lease_seq of the grant that began the validity */
  bool lost_data_told; /* a registration with lost_data succeeded */
  uint64_t markdown_silent_ms; /* for the log: how long it was silent */
  lmz_dirclient_req_t upsert, renew, markdown;
  struct lmz_member_change *change; /* the membership change in flight */
};

/* Gives the lease up for the rest of the process's life: no renewal, no
 * registration; the node stops running durable-object turns at once and
 * the leader fences it (and fails its actors over) once its lease surely
 * expired. For a node that must not serve any more: its disk failed a
 * replicated write (cluster/repl.h). */
void lmz_member_stop_serving(lmz_member_t *m);

/* Returns 0 or LMZ_EINVAL (addresses too long, bad lease config). */
int lmz_member_init(lmz_member_t *m, const struct lmz_member_options *o);
/* Stops new requests; those in flight complete through the directory
 * client's and the Raft node's close. */
void lmz_member_close(lmz_member_t *m);
/* Registration, renewal and (leader) the lease watch, at now_ms. */
void lmz_member_tick(lmz_member_t *m, uint64_t now_ms);

/* The lease is granted, not expired, AND this node's replica has applied
 * the grant that began this stretch of validity (so it shows every
 * placement change committed before it: an actor that failed over while
 * the node was away is not "ours" there). Renewals within the stretch do
 * not wait for the replica. */
bool lmz_member_lease_valid(const lmz_member_t *m, uint64_t now_ms);
/* True once a lease was ever granted (a lost lease then means "cut off",
 * not "still starting"). */
bool lmz_member_had_lease(const lmz_member_t *m);
uint64_t lmz_member_lease_remaining_ms(const lmz_member_t *m, uint64_t now_ms);

/* Proposes this node's own state (e.g. LMZ_DIR_DRAINING) with its
 * addresses. Returns 0 (cb runs) or an error (dirclient.h). */
int lmz_member_set_state(lmz_member_t *m, lmz_dirclient_req_t *req,
                         enum lmz_dir_node_state state, lmz_dirclient_cb cb);

/* Leader only: adds node `id` (Raft address) as a voter or standby, or
 * removes it. One change at a time. Returns 0 (cb runs with the outcome),
 * LMZ_ENOTLEADER, LMZ_EBUSY, LMZ_ENOMEM. */
int lmz_member_change(lmz_member_t *m, bool add, uint64_t id,
                      const char *raft_address, bool standby,
                      lmz_member_change_cb cb, void *arg);

#endif
