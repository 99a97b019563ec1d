/* bench/src/bench_node.h - an in-process node for the runtime scenarios
 * (calls, durable): its own loop, a store in a fresh temp directory, the
 * scenario's classes, and helpers to run until quiet and print results in
 * the bench/README.md contract. Header-only: each scenario is one binary. */
#ifndef LMZ_BENCH_NODE_H
#define LMZ_BENCH_NODE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/node.h"
#include "floor.h"

struct bench_node {
  uv_loop_t loop;
  lmz_node_t node_mem, *node; /* node = &node_mem once initialized */
  char *dir;
};

static inline void bench_node_open(struct bench_node *b, bool sync,
                            lmz_module_init_fn init) {
  char err[LMZ_ERRMSG_LEN];
  if (!(b->dir = make_dir()))
    die("mkdtemp", NULL);
  uv_loop_init(&b->loop);
  struct lmz_node_opts o = {.node_id = "bench", .data_dir = b->dir, .sync = sync,
                            .max_queue = 1u << 24};
  if (lmz_node_init(b->node = &b->node_mem, &b->loop, &o, err) ||
      lmz_node_register_module(b->node, "bench", init, err))
    die("node", err);
  lmz_node_start(b->node);
}

static void bench_node_bind(struct bench_node *b, const char *binding,
                            const char *cls, lmz_node_type kind) {
  char err[LMZ_ERRMSG_LEN];
  if (lmz_node_bind(b->node, binding, cls, kind, err))
    die("bind", err);
}

static void bench_node_run(struct bench_node *b) {
  while (!lmz_node_is_quiet(b->node))
    uv_run(&b->loop, UV_RUN_ONCE);
}

static void bench_closed(lmz_node_t *n, void *arg) {
  (void)n;
  *(bool *)arg = true;
}

static void bench_node_close(struct bench_node *b) {
  bool closed = false;
  lmz_node_close(b->node, bench_closed, &closed);
  while (!closed)
    uv_run(&b->loop, UV_RUN_ONCE);
  lmz_node_release(b->node);
  uv_run(&b->loop, UV_RUN_DEFAULT);
  uv_loop_close(&b->loop);
  drop_dir(b->dir);
}

static void bench_ignore_reply(void *arg, int status, bool ok,
                               const lmz_value *v) {
  (void)arg, (void)v;
  if (status || !ok)
    fprintf(stderr, "bench: a driver call failed\n");
}

/* Starts method() on (binding, instance) with no arguments. */
static void bench_node_kick(struct bench_node *b, const char *binding,
                            const char *instance, const char *method) {
  lmz_arena *a = lmz_node_arena_get(b->node);
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  lmz_object_setc(get, "type", lmz_cstring(a, "get"));
  lmz_object_setc(get, "key", lmz_cstring(a, method));
  lmz_object_setc(ap, "type", lmz_cstring(a, "apply"));
  lmz_object_setc(ap, "args", lmz_array(a, 0));
  lmz_array_push(chain, get);
  lmz_array_push(chain, ap);
  static const lmz_identity cli = {LMZ_NODE_CLI, "bench", NULL};
  struct lmz_node_call c = {.binding = binding, .instance = instance,
                            .chain = chain, .call_chain = &cli,
                            .call_chain_len = 1, .arena = a};
  char err[LMZ_ERRMSG_LEN];
  if (lmz_node_call(b->node, &c, bench_ignore_reply, NULL, err))
    die("kick", err);
}

static inline void bench_emit(const char *scenario, const char *metric, double value,
                       const char *unit, double target, bool higher_better) {
  printf("{\"scenario\":\"%s\",\"metric\":\"%s\",\"value\":%.3f,\"unit\":\"%s\"",
         scenario, metric, value, unit);
  if (target > 0)
    printf(",\"target\":%.3f,\"pass\":%s", target,
           (higher_better ? value >= target : value <= target) ? "true" : "false");
  printf("}\n");
  fflush(stdout);
  fprintf(stderr, "  %-40s %14.1f %-10s%s\n", metric, value, unit,
          target > 0 ? ((higher_better ? value >= target : value <= target)
                            ? "  (target met)" : "  (target MISSED)") : "");
}

static inline double bench_seconds(int argc, char **argv, double dflt,
                            const char *help) {
  double s = dflt;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      s = dflt / 10;
    else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
      s = atof(argv[++i]);
    else if (!strcmp(argv[i], "--help")) {
      fputs(help, stdout);
      exit(0);
    } else {
      fprintf(stderr, "unknown argument %s\n%s", argv[i], help);
      exit(2);
    }
  }
  return s > 0 ? s : dflt;
}

#endif
