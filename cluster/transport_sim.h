/* cluster/transport_sim.h - a simulated node transport for unit tests:
 * frames between in-process nodes on a fake clock, deterministic.
 *
 * Each frame is packed (protobuf, as on the wire) when sent and unpacked
 * when delivered, `latency_ms` later on the net's clock, in send order. A
 * link can be cut (frames in flight on it are lost, both ends get a
 * link-down callback, sends fail), and a node can be paused (SIGSTOP: it
 * neither receives nor sends; frames to it wait until it resumes). Nothing
 * reads a real clock and nothing touches libuv: tests call
 * lmz_simnet_run_until(net, t) to advance time.
 *
 * Threading: one thread. */
#ifndef LMZ_CLUSTER_TRANSPORT_SIM_H
#define LMZ_CLUSTER_TRANSPORT_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "proto/lmz.pb-c.h"

#define LMZ_SIMNET_MAX_NODES 16

/* A frame for node `to` (valid only during the call). */
typedef void (*lmz_simnet_frame_cb)(void *ctx, uint64_t from,
                                    const Lmz__Frame *f);
/* The link between `self` and `peer` went down. */
typedef void (*lmz_simnet_down_cb)(void *ctx, uint64_t peer);
/* Called after the clock advanced to now_ms (the node's timers). */
typedef void (*lmz_simnet_tick_cb)(void *ctx, uint64_t now_ms);

struct lmz_simnet_node {
  uint64_t id;
  lmz_simnet_frame_cb on_frame;
  lmz_simnet_down_cb on_down;
  lmz_simnet_tick_cb on_tick;
  void *ctx;
  bool paused;
};

struct lmz_simnet_packet;

typedef struct lmz_simnet_s {
  uint64_t now_ms;
  uint32_t latency_ms;
  uint32_t tick_ms; /* on_tick cadence (0 = never) */
  uint64_t next_tick_ms;
  struct lmz_simnet_node nodes[LMZ_SIMNET_MAX_NODES];
  size_t n_nodes;
  bool cut[LMZ_SIMNET_MAX_NODES][LMZ_SIMNET_MAX_NODES];
  struct lmz_simnet_packet *head, *tail;
  uint64_t sent, delivered, dropped;
} lmz_simnet_t;

void lmz_simnet_init(lmz_simnet_t *net, uint32_t latency_ms, uint32_t tick_ms);
/* Frees the frames in flight. */
void lmz_simnet_close(lmz_simnet_t *net);
/* Adds node `id` (non-zero, unique). Returns 0 or LMZ_EINVAL. */
int lmz_simnet_add(lmz_simnet_t *net, const struct lmz_simnet_node *n);
/* Queues f from `from` to `to`. Returns 0, LMZ_EUNAVAILABLE (no such node,
 * link cut, sender paused) or LMZ_ENOMEM. */
int lmz_simnet_send(lmz_simnet_t *net, uint64_t from, uint64_t to,
                    const Lmz__Frame *f);
bool lmz_simnet_is_up(const lmz_simnet_t *net, uint64_t a, uint64_t b);
/* Cuts (or heals) the link a <-> b; cutting loses its frames in flight and
 * tells both ends. */
void lmz_simnet_cut(lmz_simnet_t *net, uint64_t a, uint64_t b, bool cut);
void lmz_simnet_pause(lmz_simnet_t *net, uint64_t id, bool paused);
/* Advances the clock to now_ms, delivering frames and ticks in time order. */
void lmz_simnet_run_until(lmz_simnet_t *net, uint64_t now_ms);

#endif
