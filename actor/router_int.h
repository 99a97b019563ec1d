/* actor/router_int.h - between the router and the drain (actor/drain.c),
 * private to actor/. */
#ifndef LMZ_ACTOR_ROUTER_INT_H
#define LMZ_ACTOR_ROUTER_INT_H

#include "actor/actor_int.h"
#include "actor/router.h"
#include "cluster/cluster.h"

struct lmz_drain;

lmz_node_t *lmz__router_node(lmz_router_t *r);
/* Marks an actor (binding NUL instance) as moving away: its calls park
 * until it is unmarked (on = false). Returns 0 or LMZ_ENOMEM. */
int lmz__router_set_moving(lmz_router_t *r, const char *key, size_t klen,
                           bool on);
/* Routes the parked calls again now. */
void lmz__router_retry_parked(lmz_router_t *r);
/* The drain in progress (drain.c), or NULL. */
struct lmz_drain *lmz__router_drain(lmz_router_t *r);
void lmz__router_set_drain(lmz_router_t *r, struct lmz_drain *d);
/* drain.c: cancels the drain in progress (router close); its callback is
 * not called; its memory goes once nothing of it is in flight. */
void lmz__drain_cancel(struct lmz_drain *d);

#endif
