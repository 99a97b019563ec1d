/* tests/cluster/repl_check.c - the history checker of the replication tests
 * (issue 9): judges a history written by tests/cluster/repl_load.c.
 *
 *   repl_check HISTORY
 *
 * The model: each counter starts at 0 and every `op` is one increment by 1.
 * An "ok V" op was acknowledged with the new total V; "fail"/"unknown" ops
 * may or may not have run. The "final" line is a `get` after the run, the
 * "act" lines the counter's activation as seen through each node.
 * Violations (each named on stdout, first 20; the exit status is 1):
 *   - no acknowledged op at all, or a counter with ops but no final total
 *     (nothing to compare is a failure, never a pass);
 *   - an acknowledged value returned twice, or one below 1 (an increment
 *     applied on a stale copy);
 *   - final < the largest acknowledged value (acknowledged writes lost);
 *   - final > acknowledged + maybe ops (increments from nowhere);
 *   - real-time order: op A acknowledged before op B started, yet A's value
 *     is larger than B's (B ran on a copy that missed A: a lost write even
 *     if the counter later climbed past the old values);
 *   - a counter with a final total but no activation answer, or two
 *     different activations (node + activation id) through different nodes.
 * Together: every acknowledged increment is reflected exactly once, in an
 * order consistent with real time (a linearizable counter).
 *
 * Input is trusted test output but still parsed defensively: a malformed
 * line is a violation, counters are bounded (MAX_COUNTERS), lines too. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COUNTERS 10000
#define MAX_REPORTS 20

struct op {
  int counter, node;
  uint64_t t0, t1;
  long long value; /* ok ops */
};

struct counter {
  long long n_ok, n_maybe, max_ok, final;
  bool has_final, has_act, two_acts;
  char act[160]; /* "node-N id" of the first activation answer */
};

static struct counter C[MAX_COUNTERS];
static struct op *g_ok;
static size_t g_n_ok, g_cap_ok;
static long long g_n_fail, g_n_unknown;
static int g_violations;
static int g_bad_counter = -1; /* the counter the next violation is about */
static bool g_bad[MAX_COUNTERS]; /* counters with a violation */

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...) {
  if (g_bad_counter >= 0)
    g_bad[g_bad_counter] = true;
  if (g_violations++ < MAX_REPORTS) {
    va_list ap;
    va_start(ap, fmt);
    fputs("VIOLATION: ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
  }
}

static int push_ok(const struct op *o) {
  if (g_n_ok == g_cap_ok) {
    size_t cap = g_cap_ok ? 2 * g_cap_ok : 4096;
    struct op *n = realloc(g_ok, cap * sizeof *n);
    if (!n)
      return -1;
    g_ok = n, g_cap_ok = cap;
  }
  g_ok[g_n_ok++] = *o;
  return 0;
}

static bool counter_ok(int c) { return c >= 0 && c < MAX_COUNTERS; }

/* "op CALLER COUNTER NODE T0 T1 KIND REST" */
static int parse_op(const char *line) {
  struct op o = {0};
  int caller;
  char kind[16], rest[128];
  if (sscanf(line, "op %d %d %d %" SCNu64 " %" SCNu64 " %15s %127s", &caller, &o.counter,
             &o.node, &o.t0, &o.t1, kind, rest) != 7 || !counter_ok(o.counter))
    return -1;
  struct counter *c = &C[o.counter];
  if (!strcmp(kind, "ok")) {
    char *end;
    o.value = strtoll(rest, &end, 10);
    if (*end)
      return -1;
    c->n_ok++;
    c->max_ok = o.value > c->max_ok ? o.value : c->max_ok;
    return push_ok(&o);
  }
  c->n_maybe++;
  if (!strcmp(kind, "fail"))
    g_n_fail++;
  else if (!strcmp(kind, "unknown"))
    g_n_unknown++;
  else
    return -1;
  return 0;
}

static int parse_final(const char *line) {
  int i, node;
  long long v;
  if (sscanf(line, "final %d %d %lld", &i, &node, &v) != 3 || !counter_ok(i))
    return -1;
  g_bad_counter = i;
  if (C[i].has_final && C[i].final != v)
    violation("counter %d: two final totals, %lld and %lld", i, C[i].final, v);
  C[i].final = v;
  C[i].has_final = true;
  return 0;
}

static int parse_act(const char *line) {
  int i, via;
  char node[64], id[80], both[160];
  if (sscanf(line, "act %d %d %63s %79s", &i, &via, node, id) != 4 || !counter_ok(i))
    return -1;
  snprintf(both, sizeof both, "%s %s", node, id);
  struct counter *c = &C[i];
  g_bad_counter = i;
  if (!c->has_act) {
    snprintf(c->act, sizeof c->act, "%s", both);
    c->has_act = true;
  } else if (strcmp(c->act, both) && !c->two_acts) {
    c->two_acts = true;
    violation("counter %d: two live activations: %s, and %s through node %d", i, c->act,
              both, via);
  }
  return 0;
}

static int read_history(FILE *f) {
  char line[512];
  long lineno = 0;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    int rv = 0;
    if (!strncmp(line, "op ", 3))
      rv = parse_op(line);
    else if (!strncmp(line, "final ", 6))
      rv = parse_final(line);
    else if (!strncmp(line, "act ", 4))
      rv = parse_act(line);
    else if (line[0] != '#' && line[0] != '\n')
      rv = -1;
    g_bad_counter = -1;
    if (rv)
      violation("history line %ld is malformed: %.*s", lineno,
                (int)(strcspn(line, "\n") < 80 ? strcspn(line, "\n") : 80), line);
  }
  return ferror(f) ? -1 : 0;
}

static int by_counter_value(const void *a, const void *b) {
  const struct op *x = a, *y = b;
  if (x->counter != y->counter)
    return x->counter < y->counter ? -1 : 1;
  return x->value < y->value ? -1 : x->value > y->value;
}

/* One counter's ok ops, sorted by value: distinct, >= 1, and in real-time
 * order (no op with a larger value finished before a smaller one began). */
static void check_order(const struct op *o, size_t n) {
  g_bad_counter = n ? o[0].counter : -1;
  uint64_t min_end = UINT64_MAX; /* over the ops with larger values */
  const struct op *min_op = NULL;
  for (size_t k = n; k-- > 0;) {
    if (o[k].value < 1)
      violation("counter %d: acknowledged value %lld (node %d): below 1", o[k].counter,
                o[k].value, o[k].node);
    if (k + 1 < n && o[k].value == o[k + 1].value)
      violation("counter %d: value %lld acknowledged twice (nodes %d and %d, at %" PRIu64
                " and %" PRIu64 " us): an increment ran on a copy that missed another",
                o[k].counter, o[k].value, o[k].node, o[k + 1].node, o[k].t1, o[k + 1].t1);
    if (min_op && min_end < o[k].t0)
      violation("counter %d: value %lld (node %d, started %" PRIu64 ") came after value %lld "
                "(node %d) was acknowledged at %" PRIu64 ": an acknowledged increment was lost",
                o[k].counter, o[k].value, o[k].node, o[k].t0, min_op->value, min_op->node,
                min_end);
    if (o[k].t1 < min_end)
      min_end = o[k].t1, min_op = &o[k];
  }
}

static void check_counters(void) {
  if (g_n_ok) /* an empty history has no array: qsort(NULL) is undefined */
    qsort(g_ok, g_n_ok, sizeof *g_ok, by_counter_value);
  for (size_t i = 0, j; i < g_n_ok; i = j) {
    for (j = i; j < g_n_ok && g_ok[j].counter == g_ok[i].counter; j++) {
    }
    check_order(g_ok + i, j - i);
  }
  for (int i = 0; i < MAX_COUNTERS; i++) {
    const struct counter *c = &C[i];
    if (!c->n_ok && !c->n_maybe && !c->has_final)
      continue;
    g_bad_counter = i;
    if (!c->has_final) {
      violation("counter %d: %lld acknowledged increments but no final total", i, c->n_ok);
      continue;
    }
    if (c->final < c->max_ok)
      violation("counter %d: final total %lld < acknowledged %lld: acknowledged "
                "increments lost", i, c->final, c->max_ok);
    if (c->final > c->n_ok + c->n_maybe)
      violation("counter %d: final total %lld > %lld acknowledged + %lld maybe "
                "increments", i, c->final, c->n_ok, c->n_maybe);
    if (!c->has_act)
      violation("counter %d: no activation answer", i);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: repl_check HISTORY\n");
    return 2;
  }
  FILE *f = fopen(argv[1], "r");
  if (!f) {
    perror(argv[1]);
    return 2;
  }
  int rv = read_history(f);
  fclose(f);
  if (rv) {
    fprintf(stderr, "repl_check: cannot read %s\n", argv[1]);
    return 2;
  }
  g_bad_counter = -1;
  if (!g_n_ok)
    violation("no acknowledged operation in the history: nothing was checked");
  check_counters();
  int n_counters = 0;
  long long sum = 0;
  for (int i = 0; i < MAX_COUNTERS; i++)
    if (C[i].has_final)
      n_counters++, sum += C[i].final;
  printf("repl_check: %zu acknowledged, %lld failed, %lld unknown increments on %d "
         "counters (final totals sum %lld): %d violation%s\n", g_n_ok, g_n_fail,
         g_n_unknown, n_counters, sum, g_violations, g_violations == 1 ? "" : "s");
  int n_bad = 0;
  for (int i = 0; i < MAX_COUNTERS; i++)
    if (g_bad[i] && n_bad++ < 40)
      printf("%s%d", n_bad == 1 ? "repl_check: counters with violations: " : " ", i);
  if (n_bad)
    printf("%s (%d counters)\n", n_bad > 40 ? " ..." : "", n_bad);
  free(g_ok);
  return g_violations ? 1 : 0;
}
