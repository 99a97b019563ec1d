/* cluster/transport_sim.c - the simulated transport (see transport_sim.h).
 *
 * Happy path: send packs the frame into a packet stamped now + latency and
 * appends it to one FIFO (every packet has the same latency, so the FIFO is
 * in delivery order); run_until pops due packets, unpacks each and calls
 * the receiver, and runs the nodes' ticks at their cadence in between.
 * Failure modes: 1. a packet for a paused node is kept back (the FIFO order
 * of the others is kept); 2. a packet on a cut link is dropped; 3. a frame
 * that does not unpack is dropped (counted). */
#include "cluster/transport_sim.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

struct lmz_simnet_packet {
  struct lmz_simnet_packet *next;
  uint64_t at_ms, from, to;
  size_t len;
  uint8_t data[];
};

void lmz_simnet_init(lmz_simnet_t *net, uint32_t latency_ms, uint32_t tick_ms) {
  memset(net, 0, sizeof *net);
  net->latency_ms = latency_ms;
  net->tick_ms = tick_ms;
  net->next_tick_ms = tick_ms;
}

void lmz_simnet_close(lmz_simnet_t *net) {
  while (net->head) {
    struct lmz_simnet_packet *p = net->head;
    net->head = p->next;
    free(p);
  }
  net->tail = NULL;
}

static int index_of(const lmz_simnet_t *net, uint64_t id) {
  for (size_t i = 0; i < net->n_nodes; i++)
    if (net->nodes[i].id == id)
      return (int)i;
  return -1;
}

int lmz_simnet_add(lmz_simnet_t *net, const struct lmz_simnet_node *n) {
  if (!n->id || index_of(net, n->id) >= 0 ||
      net->n_nodes == LMZ_SIMNET_MAX_NODES)
    return LMZ_EINVAL;
  net->nodes[net->n_nodes++] = *n;
  return 0;
}

bool lmz_simnet_is_up(const lmz_simnet_t *net, uint64_t a, uint64_t b) {
  int i = index_of(net, a), j = index_of(net, b);
  return i >= 0 && j >= 0 && !net->cut[i][j];
}

int lmz_simnet_send(lmz_simnet_t *net, uint64_t from, uint64_t to,
                    const Lmz__Frame *f) {
  int i = index_of(net, from), j = index_of(net, to);
  if (i < 0 || j < 0 || net->cut[i][j] || net->nodes[i].paused)
    return LMZ_EUNAVAILABLE;
  size_t len = lmz__frame__get_packed_size(f);
  struct lmz_simnet_packet *p = malloc(sizeof *p + len);
  if (!p)
    return LMZ_ENOMEM;
  *p = (struct lmz_simnet_packet){NULL, net->now_ms + net->latency_ms, from, to,
                                  len};
  lmz__frame__pack(f, p->data);
  if (net->tail)
    net->tail->next = p;
  else
    net->head = p;
  net->tail = p;
  net->sent++;
  return 0;
}

/* Drops the packets in flight between a and b (either way). */
static void drop_link(lmz_simnet_t *net, uint64_t a, uint64_t b) {
  struct lmz_simnet_packet **pp = &net->head, *last = NULL;
  while (*pp) {
    struct lmz_simnet_packet *p = *pp;
    if ((p->from == a && p->to == b) || (p->from == b && p->to == a)) {
      *pp = p->next;
      free(p);
      net->dropped++;
      continue;
    }
    last = p;
    pp = &p->next;
  }
  net->tail = last;
}

void lmz_simnet_cut(lmz_simnet_t *net, uint64_t a, uint64_t b, bool cut) {
  int i = index_of(net, a), j = index_of(net, b);
  if (i < 0 || j < 0 || net->cut[i][j] == cut)
    return;
  net->cut[i][j] = net->cut[j][i] = cut;
  if (!cut)
    return;
  drop_link(net, a, b);
  if (net->nodes[i].on_down)
    net->nodes[i].on_down(net->nodes[i].ctx, b);
  if (net->nodes[j].on_down)
    net->nodes[j].on_down(net->nodes[j].ctx, a);
}

void lmz_simnet_pause(lmz_simnet_t *net, uint64_t id, bool paused) {
  int i = index_of(net, id);
  if (i >= 0)
    net->nodes[i].paused = paused;
}

/* The first due packet whose receiver is not paused, unlinked; or NULL. */
static struct lmz_simnet_packet *take_due(lmz_simnet_t *net, uint64_t until) {
  struct lmz_simnet_packet **pp = &net->head, *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next) {
    struct lmz_simnet_packet *p = *pp;
    if (p->at_ms > until)
      return NULL;
    int j = index_of(net, p->to);
    if (j >= 0 && net->nodes[j].paused)
      continue;
    *pp = p->next;
    if (net->tail == p)
      net->tail = prev;
    return p;
  }
  return NULL;
}

static void deliver(lmz_simnet_t *net, struct lmz_simnet_packet *p) {
  int j = index_of(net, p->to);
  Lmz__Frame *f = lmz__frame__unpack(NULL, p->len, p->data);
  if (!f || j < 0) {
    net->dropped++;
  } else {
    net->delivered++;
    net->nodes[j].on_frame(net->nodes[j].ctx, p->from, f);
  }
  if (f)
    lmz__frame__free_unpacked(f, NULL);
  free(p);
}

static void run_ticks(lmz_simnet_t *net) {
  for (size_t i = 0; i < net->n_nodes; i++)
    if (net->nodes[i].on_tick && !net->nodes[i].paused)
      net->nodes[i].on_tick(net->nodes[i].ctx, net->now_ms);
}

void lmz_simnet_run_until(lmz_simnet_t *net, uint64_t until) {
  for (;;) {
    struct lmz_simnet_packet *p = NULL;
    uint64_t next_pkt = UINT64_MAX;
    for (p = net->head; p; p = p->next) {
      int j = index_of(net, p->to);
      if (j < 0 || !net->nodes[j].paused) {
        next_pkt = p->at_ms;
        break;
      }
    }
    uint64_t next_tick = net->tick_ms ? net->next_tick_ms : UINT64_MAX;
    uint64_t next = next_pkt < next_tick ? next_pkt : next_tick;
    if (next > until)
      break;
    if (next > net->now_ms)
      net->now_ms = next;
    if (next_pkt <= next_tick) {
      if ((p = take_due(net, net->now_ms)))
        deliver(net, p);
    } else {
      net->next_tick_ms += net->tick_ms;
      run_ticks(net);
    }
  }
  if (until > net->now_ms)
    net->now_ms = until;
}
