/* actor/broadcast_int.h - broadcast (lmz_broadcast, lmz/lmz.h), private to
 * actor/: the sending side (broadcast.c), the receiving side
 * (broadcast_in.c) and their hooks in the runtime and the router.
 *
 * One lmz_broadcast is one output message (lmz_msg.bcast) held behind the
 * turn's output gate like a call. Released, it becomes:
 *   - for each other owner node: flights, i.e. Broadcast frames
 *     (proto/lmz.proto) of at most LMZ_BROADCAST_FRAME_TARGETS targets and
 *     the node-port frame cap, waiting in the router's flight table for
 *     their BroadcastResult frames;
 *   - for every other target (ours, unplaced, owner unreachable, MOVED
 *     answers): one ordinary call message routed alone.
 * The receiving node turns a Broadcast into one call message per target it
 * owns and answers the rest per target (MOVED ...).
 *
 * Threading: loop thread only. */
#ifndef LMZ_ACTOR_BROADCAST_INT_H
#define LMZ_ACTOR_BROADCAST_INT_H

#include "actor/actor_int.h"
#include "actor/router.h"
#include "proto/frame.h"

/* How long a flight may wait for its final BroadcastResult (as a single
 * forwarded call waits for its Result). */
#define LMZ_BCAST_TIMEOUT_MS 15000

struct lmz__bcast; /* one lmz_broadcast (broadcast.c) */
struct flight;     /* one Broadcast frame sent, waiting (broadcast.c) */
struct lmz__bin;   /* one Broadcast frame received (broadcast_in.c) */

/* The router's broadcast state: its flights (sending side) and the inbound
 * batches with outcomes to send back (receiving side). */
struct lmz__bcast_rt {
  lmz_router_t *r;
  lmz_hmap flights;                /* id -> struct flight */
  struct flight *head, *tail;      /* the same, oldest first */
  uint64_t next_id;
  uv_check_t flush;                /* outcomes leave once per loop iteration */
  bool flush_armed, closing;
  struct lmz__bin *dirty;          /* inbound batches with outcomes to send */
  void (*close_cb)(void *arg);
  void *close_arg;
  /* counters (lmz_router_stats) */
  uint64_t frames_out, targets_out, moved_in, frames_in, targets_in,
      refused_out;
};

/* ---- the runtime's hooks (turn.c) ----------------------------------------- */

/* The broadcast's output message was released by the output gate: route
 * every target. m is the broadcast's own (never queued) message. */
void lmz__bcast_start(lmz_node_t *n, lmz_msg *m);
/* The broadcast cannot leave (its turn's commit failed): every target's
 * outcome is `err`. */
void lmz__bcast_fail(lmz_node_t *n, lmz_msg *m, lmz_value *err);
/* The turn threw: the broadcast is dropped unsent, silently. */
void lmz__bcast_drop(lmz_node_t *n, lmz_msg *m);

/* A call message for one target: a copy of `chain` and `cctx` in a new
 * arena, kind CALL, rkind NONE. NULL on out of memory. */
lmz_msg *lmz__bcast_target_msg(lmz_node_t *n, struct lmz_binding *b,
                               const char *instance, const lmz_value *chain,
                               const struct lmz_cctx *cctx);

/* ---- the router's side (router.c calls these) ----------------------------- */

int lmz__bcast_rt_new(lmz_router_t *r, uv_loop_t *loop,
                      struct lmz__bcast_rt **out);
/* Flights past LMZ_BCAST_TIMEOUT_MS fail their remaining targets. */
void lmz__bcast_rt_tick(struct lmz__bcast_rt *rt, uint64_t now_ms);
/* The link to `peer` dropped: its flights fail their remaining targets (they
 * may or may not have run: at most once, never twice). */
void lmz__bcast_rt_peer_down(struct lmz__bcast_rt *rt, uint64_t peer);
/* Fails every flight (router close; broadcast.c). */
void lmz__bcast_rt_fail_flights(struct lmz__bcast_rt *rt);
/* Router close: flights fail (node shutting down), inbound batches stop
 * answering; the flush handle closes, then cb(arg). */
void lmz__bcast_rt_close(struct lmz__bcast_rt *rt, void (*cb)(void *arg),
                         void *arg);
/* After the close callback. Inbound batches whose targets are still running
 * are freed when their last target settles (their calls hold them). */
void lmz__bcast_rt_free(struct lmz__bcast_rt *rt);
void lmz__bcast_rt_stats(struct lmz__bcast_rt *rt, struct lmz_router_stats *st);

/* broadcast.c / broadcast_in.c: the frame handlers (router.h). */
void lmz__bcast_on_result(struct lmz__bcast_rt *rt, uint64_t peer,
                          const Lmz__BroadcastResult *res);
void lmz__bcast_on_frame(struct lmz__bcast_rt *rt, lmz_conn_t *conn,
                         uint64_t peer, const Lmz__Broadcast *b);

/* ---- what the broadcast asks the router (router.c) ------------------------ */

/* Where does a broadcast target go? 1 = in a frame to *owner (another live
 * node whose link is up; *epoch = the placement's), 0 = alone, the way a
 * call goes (ours, unplaced, owner down or unreachable, router closing). */
int lmz__router_bcast_owner(lmz_router_t *r, const struct lmz_binding *b,
                            const char *instance, uint64_t *owner,
                            uint64_t *epoch);
/* A target `peer` answered MOVED: m (a call message) is parked and routed
 * again once the directory caught up; past the hop bound it fails. */
void lmz__router_moved(lmz_router_t *r, lmz_msg *m, uint64_t peer);
/* Sends a frame to `peer` over its link (a test hook may take it instead:
 * lmz__router_set_send_hook). LMZ_EUNAVAILABLE when the link is not up. */
int lmz__router_send(lmz_router_t *r, uint64_t peer, const Lmz__Frame *f);
/* Writes what was queued for `peer` now (lmz_conn_flush). */
void lmz__router_flush(lmz_router_t *r, uint64_t peer);
/* Tests: frames the router sends to peers go to fn instead. */
typedef int (*lmz__router_send_fn)(void *arg, uint64_t peer,
                                   const Lmz__Frame *f);
void lmz__router_set_send_hook(lmz_router_t *r, lmz__router_send_fn fn,
                               void *arg);
struct lmz__bcast_rt *lmz__router_bcast_rt(lmz_router_t *r);
lmz_node_t *lmz__router_node(lmz_router_t *r);
uint64_t lmz__router_now_ms(lmz_router_t *r);
bool lmz__router_closing(lmz_router_t *r);

#endif
