/* tests/unit/actor/lifecycle_app.h - a small application for the lifecycle
 * tests (eviction, deferred worker replies, alarms), included by one test. */
#include <stdlib.h>
#include <string.h>

#include "lmz/lmz.h"

static int lc_fail_left; /* flaky(): throws while > 0 */

static double total_of(lmz_ctx *ctx) {
  lmz_value *t = lmz_kv_get(ctx, "total");
  return t && lmz_typeof(t) == LMZ_T_NUMBER ? lmz_get_number(t) : 0;
}

static int lc_bump(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  double by = n && lmz_typeof(a[0]) == LMZ_T_NUMBER ? lmz_get_number(a[0]) : 1;
  lmz_value *v = lmz_number(lmz_turn_arena(ctx), total_of(ctx) + by);
  *r = v;
  return lmz_kv_put(ctx, "total", v);
}

static int lc_total(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  *r = lmz_number(lmz_turn_arena(ctx), total_of(ctx));
  return 0;
}

static int lc_activation(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  *r = lmz_cstring(lmz_turn_arena(ctx), lmz_activation_id(ctx, NULL));
  return 0;
}

static int lc_flaky(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  if (lc_fail_left > 0) {
    lc_fail_left--;
    lmz_kv_put(ctx, "total", lmz_number(lmz_turn_arena(ctx), -1000)); /* dropped */
    return lmz_throwf(ctx, "Error", "flaky");
  }
  return lc_bump(ctx, a, n, r);
}

/* schedule(kind, when, method, [id]) -> schedule object */
static int lc_schedule(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  if (n < 3)
    return lmz_throwf(ctx, "TypeError", "schedule(kind, when, method, id?)");
  const char *kind = lmz_get_str(a[0], NULL), *method = lmz_get_str(a[2], NULL);
  struct lmz_alarm_opts o = {.id = n > 3 ? lmz_get_str(a[3], NULL) : NULL,
                             .max_retries = 3};
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), method, 1,
                            lmz_number(lmz_turn_arena(ctx), 1));
  if (!strcmp(kind, "cron"))
    return lmz_alarm_cron(ctx, lmz_get_str(a[1], NULL), c, &o, r);
  if (!strcmp(kind, "at"))
    return lmz_alarm_at(ctx, lmz_get_number(a[1]), c, &o, r);
  return lmz_alarm_after(ctx, lmz_get_number(a[1]), c, &o, r);
}

static int lc_cancel(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  bool found = false;
  int rv = n ? lmz_alarm_cancel(ctx, lmz_get_str(a[0], NULL), &found) : -22;
  *r = lmz_bool(found);
  return rv;
}

static int lc_alarms(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n;
  return lmz_alarm_list(ctx, r);
}

/* calls WORKER later(x) with a handler that bumps by the result */
static int lc_ask_later(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  lmz_ctn *rem = lmz_ctn_call(lmz_ctn_new(ctx), "later", 1, n ? a[0] : lmz_undefined());
  lmz_ctn *h = lmz_ctn_call(lmz_ctn_new(ctx), "bump", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, "LATER", NULL, rem, h, NULL);
}

static const lmz_method lc_do_methods[] = {
    LMZ_MESH("bump", lc_bump, NULL),          LMZ_MESH("total", lc_total, NULL),
    LMZ_MESH("activation", lc_activation, NULL), LMZ_MESH("schedule", lc_schedule, NULL),
    LMZ_MESH("cancel", lc_cancel, NULL),      LMZ_MESH("alarms", lc_alarms, NULL),
    LMZ_LOCAL("flaky", lc_flaky),             LMZ_MESH("askLater", lc_ask_later, NULL),
    LMZ_END};

/* ---- a worker that answers after outside I/O (a libuv timer) ------------- */

struct later {
  uv_timer_t timer;
  lmz_deferred *d;
  lmz_arena *a;
  double x;
};

static void later_closed(uv_handle_t *h) {
  struct later *l = h->data;
  lmz_arena_free(l->a);
  free(l);
}

static void later_fire(uv_timer_t *t) {
  struct later *l = t->data;
  lmz_deferred_resolve(l->d, lmz_number(l->a, l->x * 2));
  uv_close((uv_handle_t *)t, later_closed);
}

static int lc_later(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  struct later *l = calloc(1, sizeof *l);
  if (!l || !(l->a = lmz_arena_new()) || !(l->d = lmz_defer(ctx)))
    return -12;
  l->x = n && lmz_typeof(a[0]) == LMZ_T_NUMBER ? lmz_get_number(a[0]) : 0;
  uv_timer_init(lmz_uv_loop(ctx), &l->timer);
  l->timer.data = l;
  uv_timer_start(&l->timer, later_fire, 5, 0);
  return 0;
}

static const lmz_method lc_worker_methods[] = {LMZ_MESH("later", lc_later, NULL), LMZ_END};

static int lc_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "LifeDO", lc_do_methods, NULL);
  return rv ? rv : lmz_register_worker(r, "LaterWorker", lc_worker_methods, NULL);
}
