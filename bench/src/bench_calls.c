/* bench_calls - in-node call throughput of the actor runtime.
 *
 *   ff          fire-and-forget calls/s: a driver actor issues lmz_call()s
 *               (no handler) to 64 sink actors, BATCH per turn; the sink
 *               turn that completes a batch calls the driver for the next
 *               one, until the time is up; counted when the sink's turn has
 *               run.
 *   roundtrip   request + handler round trips/s: the driver keeps WINDOW
 *               calls with a handler in flight to 64 echo actors; each
 *               handler turn (the result substituted for $result) issues the
 *               next call. One round trip = call turn + handler turn.
 * Every call goes through the whole runtime: continuation building, target
 * validation, call-context propagation, a copy of the chain into the
 * message, the mailbox, the run queue, exposure check, method dispatch.
 * No storage writes, so the output gate never waits.
 *
 * --seconds S: each measurement runs about S seconds (default 3). Targets
 * (issue 3, on this 2-core machine): >= 1,000,000 ff calls/s,
 * >= 500,000 round trips/s. */
#define _GNU_SOURCE
#include "bench_node.h"

#define SINKS 64
#define BATCH 4096
#define WINDOW 2048

static double g_deadline;
static uint64_t g_sent, g_done;

static double mono(void) { return now_s(); }

static const char *sink_name(uint64_t i) {
  static char names[SINKS][8];
  if (!names[0][0])
    for (int k = 0; k < SINKS; k++)
      snprintf(names[k], sizeof names[k], "s%d", k);
  return names[i % SINKS];
}

/* The last hit of a batch starts the driver's next batch, so the calls in
 * flight stay bounded (BATCH) instead of piling up in mailboxes. */
static int sink_hit(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  static const struct lmz_call_opts fresh = {.new_chain = true};
  if (++g_done == g_sent && mono() < g_deadline)
    return lmz_call(ctx, "DRIVER", "d", lmz_ctn_call(lmz_ctn_new(ctx), "ff", 0),
                    NULL, &fresh);
  return 0;
}

static int sink_echo(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)ctx;
  *r = n ? a[0] : NULL;
  return 0;
}

static int driver_ff(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  lmz_ctn *hit = lmz_ctn_call(lmz_ctn_new(ctx), "hit", 0);
  for (int i = 0; i < BATCH; i++) {
    int rv = lmz_call(ctx, "SINK", sink_name(g_sent++), hit, NULL, NULL);
    if (rv)
      return rv;
  }
  return 0;
}

static int send_one(lmz_ctx *ctx) {
  lmz_arena *ar = lmz_turn_arena(ctx);
  lmz_ctn *echo = lmz_ctn_call(lmz_ctn_new(ctx), "echo", 1,
                               lmz_number(ar, (double)g_sent));
  lmz_ctn *pong = lmz_ctn_call(lmz_ctn_new(ctx), "pong", 1, lmz_ctn_result(ctx));
  return lmz_call(ctx, "SINK", sink_name(g_sent++), echo, pong, NULL);
}

static int driver_rt(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)a, (void)n, (void)r;
  for (int i = 0; i < WINDOW; i++) {
    int rv = send_one(ctx);
    if (rv)
      return rv;
  }
  return 0;
}

static int driver_pong(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)r;
  if (n != 1 || lmz_typeof(a[0]) != LMZ_T_NUMBER)
    return lmz_throwf(ctx, "Error", "pong without the echoed number");
  g_done++;
  return mono() < g_deadline ? send_one(ctx) : 0;
}

static const lmz_method sink_methods[] = {
    LMZ_MESH("hit", sink_hit, NULL), LMZ_MESH("echo", sink_echo, NULL), LMZ_END};
static const lmz_method driver_methods[] = {
    LMZ_MESH("ff", driver_ff, NULL), LMZ_MESH("rt", driver_rt, NULL),
    LMZ_LOCAL("pong", driver_pong), LMZ_END};

static int bench_init(lmz_registry *r) {
  int rv = lmz_register_do(r, "SinkDO", sink_methods, NULL);
  return rv ? rv : lmz_register_do(r, "DriverDO", driver_methods, NULL);
}

static double measure(struct bench_node *b, const char *method, double secs) {
  g_sent = g_done = 0;
  double t0 = mono();
  g_deadline = t0 + secs;
  bench_node_kick(b, "DRIVER", "d", method);
  bench_node_run(b);
  return (double)g_done / (mono() - t0);
}

int main(int argc, char **argv) {
  double secs = bench_seconds(argc, argv, 3.0,
                              "usage: bench_calls [--quick] [--seconds S]\n");
  struct bench_node b;
  bench_node_open(&b, false, bench_init);
  bench_node_bind(&b, "SINK", "SinkDO", LMZ_NODE_DO);
  bench_node_bind(&b, "DRIVER", "DriverDO", LMZ_NODE_DO);
  fprintf(stderr, "calls: %.1f s per measurement\n", secs);
  measure(&b, "ff", secs / 10); /* warm up: activations, arena pool */
  double ff = measure(&b, "ff", secs);
  bench_emit("calls", "fire_and_forget.calls_per_s", ff, "calls/s", 1e6, true);
  double rt = measure(&b, "rt", secs);
  bench_emit("calls", "roundtrip.per_s", rt, "round trips/s", 5e5, true);
  bench_node_close(&b);
  return 0;
}
