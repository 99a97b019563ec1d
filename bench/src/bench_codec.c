/* bench_codec - speed of the two value codecs against a plain JSON library.
 *
 * For every payload (a .json file of SC-JSON text in bench/payloads) three
 * variants are timed:
 *   A  bin_rt      lmz_bin_encode of the value + lmz_bin_decode of the bytes
 *   B  scjson_rt   lmz_scjson_decode of the text (parse + decode) +
 *                  lmz_scjson_encode of the value
 *   C  jansson_rt  json_loadb + json_dumpb(JSON_COMPACT) of the SAME text
 * Each iteration is one full round trip of the payload's value ("one value").
 * Scratch arenas and buffers are reset, not freed, between iterations, as a
 * server would reuse them between messages.
 *
 * Method: calibrate an iteration count per variant so one batch takes about
 * seconds/rounds, then run `rounds` rounds of A B C batches interleaved
 * (machine noise hits the three alike) and report the median rate per
 * variant. Speeds: MB/s (10^6 bytes of that variant's representation per
 * second: binary bytes for A, SC-JSON text bytes for B and C) and values/s.
 * Ratios compare values/s (the same value either way): A/B (target >= 3.0)
 * and B/C (target >= 1.0), per payload and "overall" as the geometric mean of
 * the per-payload ratios (each payload weighs the same).
 *
 * Output contract (bench/README.md): human-readable lines on stderr, one JSON
 * object per line on stdout.
 *
 * Failure modes: unreadable payload dir or file, or a payload the codecs
 * reject -> message on stderr, exit 1. A codec that changes a payload's value
 * on a round trip -> exit 1 (a wrong codec must not be benchmarked). A
 * payload whose SC-JSON re-encoding differs from the file (not canonical)
 * only warns. Bad arguments -> exit 2. */
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/codec.h"

#ifndef LMZ_BENCH_PAYLOAD_DIR
#define LMZ_BENCH_PAYLOAD_DIR "bench/payloads"
#endif

#define MAX_PAYLOADS 32
#define MAX_ROUNDS 51
#define N_VARIANTS 3

enum { V_BIN, V_SCJSON, V_JANSSON };
static const char *const variant_name[N_VARIANTS] = {"bin_rt", "scjson_rt",
                                                     "jansson_rt"};

struct opts {
  double seconds; /* measured time per variant per payload */
  int rounds;
  int quick;
  const char *dir;
  const char *only; /* one payload name, or NULL */
};

struct payload {
  char name[64];
  char *text; /* SC-JSON, NUL-terminated */
  size_t text_len;
  lmz_arena *arena; /* holds value */
  lmz_value *value;
  size_t bin_len;
  double rate[N_VARIANTS];   /* median values/s */
  double spread[N_VARIANTS]; /* (max - min) / median over the rounds */
  size_t iters[N_VARIANTS];
};

/* Reused between iterations: what a server keeps per connection/thread. */
struct scratch {
  lmz_arena *arena;
  lmz_buf buf;
  char *jbuf; /* jansson output */
  size_t jcap;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the three variants --------------------------------------------------- */

static int run_bin(const struct payload *p, struct scratch *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    lmz_value *v;
    lmz_buf_reset(&s->buf);
    if (lmz_bin_encode(p->value, &s->buf, NULL))
      return -1;
    lmz_arena_reset(s->arena);
    if (lmz_bin_decode(s->arena, s->buf.data, s->buf.len, NULL, &v, NULL))
      return -1;
  }
  return 0;
}

static int run_scjson(const struct payload *p, struct scratch *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    lmz_value *v;
    lmz_arena_reset(s->arena);
    if (lmz_scjson_decode(s->arena, p->text, p->text_len, NULL, &v, NULL))
      return -1;
    lmz_buf_reset(&s->buf);
    if (lmz_scjson_encode(v, &s->buf, NULL))
      return -1;
  }
  return 0;
}

static int run_jansson(const struct payload *p, struct scratch *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_error_t je;
    json_t *root = json_loadb(p->text, p->text_len, 0, &je);
    if (!root)
      return -1;
    size_t len = json_dumpb(root, s->jbuf, s->jcap, JSON_COMPACT);
    json_decref(root);
    if (len == 0 || len > s->jcap)
      return -1;
  }
  return 0;
}

typedef int (*variant_fn)(const struct payload *, struct scratch *, size_t);
static const variant_fn variant_run[N_VARIANTS] = {run_bin, run_scjson,
                                                   run_jansson};

/* ---- loading and verifying payloads --------------------------------------- */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap + 1);
  while (p) {
    n += fread(p + n, 1, cap - n, f);
    if (n < cap)
      break;
    char *np = cap < (64u << 20) ? realloc(p, cap * 2 + 1) : NULL;
    if (!np)
      free(p);
    p = np;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (!p || bad) {
    free(p);
    return NULL;
  }
  while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r'))
    n--; /* files end with a newline; the SC-JSON text does not */
  p[n] = '\0';
  *len = n;
  return p;
}

/* Checks that both lmz round trips keep the value, sizes the scratch jansson
 * buffer, and notes (warning only) payloads that are not canonical. */
static int verify(struct payload *p, struct scratch *s) {
  lmz_value *v;
  struct lmz_codec_error err = {0};
  lmz_buf_reset(&s->buf);
  lmz_arena_reset(s->arena);
  if (lmz_bin_encode(p->value, &s->buf, &err) ||
      lmz_bin_decode(s->arena, s->buf.data, s->buf.len, NULL, &v, &err)) {
    fprintf(stderr, "bench_codec: %s: binary round trip failed: %s\n",
            p->name, err.msg);
    return -1;
  }
  p->bin_len = s->buf.len;
  if (!lmz_value_equal(p->value, v)) {
    fprintf(stderr, "bench_codec: %s: binary round trip changed the value\n",
            p->name);
    return -1;
  }
  lmz_buf_reset(&s->buf);
  if (lmz_scjson_encode(p->value, &s->buf, &err)) {
    fprintf(stderr, "bench_codec: %s: SC-JSON encode failed: %s\n", p->name,
            err.msg);
    return -1;
  }
  if (s->buf.len != p->text_len || memcmp(s->buf.data, p->text, p->text_len))
    fprintf(stderr, "bench_codec: warning: %s is not canonical SC-JSON "
            "(re-encoded: %zu bytes, file: %zu bytes)\n",
            p->name, s->buf.len, p->text_len);
  json_error_t je;
  json_t *root = json_loadb(p->text, p->text_len, 0, &je);
  if (!root) {
    fprintf(stderr, "bench_codec: %s: jansson: line %d: %s\n", p->name,
            je.line, je.text);
    return -1;
  }
  size_t need = json_dumpb(root, NULL, 0, JSON_COMPACT);
  json_decref(root);
  if (need > s->jcap) {
    char *nb = realloc(s->jbuf, need);
    if (!nb)
      return -1;
    s->jbuf = nb;
    s->jcap = need;
  }
  return 0;
}

static int load_payload(struct payload *p, const char *dir, const char *file,
                        struct scratch *s) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, file);
  snprintf(p->name, sizeof p->name, "%.*s", (int)(strlen(file) - 5), file);
  p->text = read_file(path, &p->text_len);
  if (!p->text) {
    fprintf(stderr, "bench_codec: cannot read %s\n", path);
    return -1;
  }
  struct lmz_codec_error err = {0};
  p->arena = lmz_arena_new();
  if (!p->arena || lmz_scjson_decode(p->arena, p->text, p->text_len, NULL,
                                     &p->value, &err)) {
    fprintf(stderr, "bench_codec: %s: byte %zu: %s\n", path, err.offset,
            err.msg);
    return -1;
  }
  return verify(p, s);
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the .json files of dir, sorted, into names (malloc'd strings). */
static int list_payloads(const char *dir, char **names, int max) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "bench_codec: cannot open payload dir %s\n", dir);
    return -1;
  }
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < max) {
    size_t len = strlen(e->d_name);
    if (len > 5 && !strcmp(e->d_name + len - 5, ".json"))
      names[n++] = strdup(e->d_name);
  }
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, by_name);
  return n;
}

/* ---- measuring ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Iterations for one batch of about `batch_s` seconds; doubles from 1 until
 * a run takes a measurable time (this also warms caches and arenas). */
static int calibrate(const struct payload *p, struct scratch *s, int v,
                     double batch_s, size_t *iters) {
  double min_s = batch_s / 8 > 0.002 ? batch_s / 8 : 0.002;
  for (size_t n = 1;; n *= 2) {
    double t0 = now_s();
    if (variant_run[v](p, s, n))
      return -1;
    double dt = now_s() - t0;
    if (dt >= min_s || n >= ((size_t)1 << 30)) {
      double per = dt / (double)n;
      double want = per > 0 ? batch_s / per : (double)n;
      *iters = want < 1 ? 1 : (size_t)want;
      return 0;
    }
  }
}

static int measure(struct payload *p, struct scratch *s,
                   const struct opts *o) {
  double batch_s = o->seconds / o->rounds;
  double rates[N_VARIANTS][MAX_ROUNDS];
  for (int v = 0; v < N_VARIANTS; v++)
    if (calibrate(p, s, v, batch_s, &p->iters[v]))
      return -1;
  for (int r = 0; r < o->rounds; r++) {
    for (int v = 0; v < N_VARIANTS; v++) { /* A B C A B C ... */
      double t0 = now_s();
      if (variant_run[v](p, s, p->iters[v]))
        return -1;
      double dt = now_s() - t0;
      rates[v][r] = (double)p->iters[v] / (dt > 1e-9 ? dt : 1e-9);
    }
  }
  for (int v = 0; v < N_VARIANTS; v++) {
    qsort(rates[v], (size_t)o->rounds, sizeof(double), cmp_double);
    p->rate[v] = rates[v][o->rounds / 2];
    p->spread[v] = (rates[v][o->rounds - 1] - rates[v][0]) / p->rate[v];
  }
  return 0;
}

/* ---- reporting ------------------------------------------------------------ */

static void emit_speed(const struct payload *p, int v, int rounds) {
  size_t bytes = v == V_BIN ? p->bin_len : p->text_len;
  double mbs = p->rate[v] * (double)bytes / 1e6;
  printf("{\"scenario\":\"codec\",\"metric\":\"%s.%s.mb_s\",\"value\":%.2f,"
         "\"unit\":\"MB/s\",\"payload\":\"%s\",\"bytes\":%zu,"
         "\"iters\":%zu,\"rounds\":%d,\"spread\":%.3f}\n",
         p->name, variant_name[v], mbs, p->name, bytes, p->iters[v], rounds,
         p->spread[v]);
  printf("{\"scenario\":\"codec\",\"metric\":\"%s.%s.values_s\","
         "\"value\":%.0f,\"unit\":\"values/s\",\"payload\":\"%s\"}\n",
         p->name, variant_name[v], p->rate[v], p->name);
}

static void emit_ratio(const char *who, const char *what, double ratio,
                       double target) {
  printf("{\"scenario\":\"codec\",\"metric\":\"%s.%s\",\"value\":%.3f,"
         "\"unit\":\"x\",\"target\":%.1f,\"pass\":%s}\n",
         who, what, ratio, target, ratio >= target ? "true" : "false");
}

static void report_payload(const struct payload *p, int rounds) {
  double r_bin = p->rate[V_BIN] / p->rate[V_SCJSON];
  double r_js = p->rate[V_SCJSON] / p->rate[V_JANSSON];
  fprintf(stderr, "%-16s %7zu B SC-JSON %7zu B binary\n", p->name,
          p->text_len, p->bin_len);
  for (int v = 0; v < N_VARIANTS; v++) {
    size_t bytes = v == V_BIN ? p->bin_len : p->text_len;
    fprintf(stderr, "  %-11s %9.1f MB/s %11.0f values/s  (spread %4.1f%%)\n",
            variant_name[v], p->rate[v] * (double)bytes / 1e6, p->rate[v],
            p->spread[v] * 100);
    emit_speed(p, v, rounds);
  }
  fprintf(stderr, "  bin/scjson %.2fx (target 3.0)  scjson/jansson %.2fx "
          "(target 1.0)\n", r_bin, r_js);
  emit_ratio(p->name, "bin_vs_scjson", r_bin, 3.0);
  emit_ratio(p->name, "scjson_vs_jansson", r_js, 1.0);
}

static void report_overall(const struct payload *ps, int n) {
  double lb = 0, lj = 0;
  for (int i = 0; i < n; i++) {
    lb += log(ps[i].rate[V_BIN] / ps[i].rate[V_SCJSON]);
    lj += log(ps[i].rate[V_SCJSON] / ps[i].rate[V_JANSSON]);
  }
  double gb = exp(lb / n), gj = exp(lj / n);
  fprintf(stderr, "overall (geometric mean of %d payloads): bin/scjson "
          "%.2fx, scjson/jansson %.2fx\n", n, gb, gj);
  emit_ratio("overall", "bin_vs_scjson", gb, 3.0);
  emit_ratio("overall", "scjson_vs_jansson", gj, 1.0);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f, "usage: bench_codec [--quick] [--seconds S] [--rounds N] "
             "[--payloads DIR] [--payload NAME]\n"
             "  --seconds S   measured seconds per variant per payload "
             "(default 0.6)\n"
             "  --rounds N    interleaved rounds; the median is reported "
             "(default 7)\n"
             "  --quick       smoke run: 0.03 s, 3 rounds\n");
}

static int parse_opts(int argc, char **argv, struct opts *o) {
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--quick")) {
      o->quick = 1;
      o->seconds = 0.03;
      o->rounds = 3;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      exit(0);
    } else if (val && !strcmp(a, "--seconds")) {
      o->seconds = atof(val), i++;
    } else if (val && !strcmp(a, "--rounds")) {
      o->rounds = atoi(val), i++;
    } else if (val && !strcmp(a, "--payloads")) {
      o->dir = val, i++;
    } else if (val && !strcmp(a, "--payload")) {
      o->only = val, i++;
    } else {
      fprintf(stderr, "bench_codec: bad argument '%s'\n", a);
      usage(stderr);
      return -1;
    }
  }
  if (!(o->seconds > 0) || o->rounds < 1 || o->rounds > MAX_ROUNDS) {
    fprintf(stderr, "bench_codec: need --seconds > 0 and 1 <= --rounds <= "
            "%d\n", MAX_ROUNDS);
    return -1;
  }
  return 0;
}

static int bench_all(const struct opts *o, struct payload *ps, int *n_out,
                     struct scratch *s) {
  char *names[MAX_PAYLOADS];
  int n_names = list_payloads(o->dir, names, MAX_PAYLOADS), n = 0, rc = 0;
  if (n_names < 0)
    return -1;
  for (int i = 0; i < n_names; i++) {
    if (!rc && (!o->only || !strncmp(names[i], o->only, strlen(o->only)))) {
      rc = load_payload(&ps[n], o->dir, names[i], s);
      n++; /* counted even on failure so cleanup frees it */
      if (!rc && (rc = measure(&ps[n - 1], s, o)))
        fprintf(stderr, "bench_codec: %s: a codec failed while measuring\n",
                ps[n - 1].name);
      if (!rc)
        report_payload(&ps[n - 1], o->rounds);
      fflush(stdout);
    }
    free(names[i]);
  }
  *n_out = n;
  if (!rc && n == 0)
    fprintf(stderr, "bench_codec: no payloads in %s\n", o->dir);
  return rc || n == 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  struct opts o = {.seconds = 0.6, .rounds = 7, .dir = LMZ_BENCH_PAYLOAD_DIR};
  if (parse_opts(argc, argv, &o))
    return 2;
  static struct payload ps[MAX_PAYLOADS];
  struct scratch s = {.arena = lmz_arena_new(), .buf = LMZ_BUF_INIT};
  if (!s.arena)
    return 1;
  fprintf(stderr, "bench_codec: %s, %.2f s per variant per payload, %d "
          "rounds, payloads in %s\n", o.quick ? "quick" : "full", o.seconds,
          o.rounds, o.dir);
  int n = 0, rc = bench_all(&o, ps, &n, &s);
  if (!rc)
    report_overall(ps, n);
  for (int i = 0; i < n; i++) {
    free(ps[i].text);
    lmz_arena_free(ps[i].arena);
  }
  lmz_arena_free(s.arena);
  lmz_buf_free(&s.buf);
  free(s.jbuf);
  return rc ? 1 : 0;
}
