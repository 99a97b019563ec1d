/* lmz codec - convert values between SC-JSON text and the lmz binary encoding.
 *
 *   lmz codec encode    [opts] [FILE]  SC-JSON in  -> binary out
 *   lmz codec decode    [opts] [FILE]  binary in   -> SC-JSON out (+ "\n")
 *   lmz codec roundtrip [opts] [FILE]  SC-JSON -> value -> binary -> value
 *                                      -> SC-JSON out (+ "\n")
 *   lmz codec check     [opts] [FILE]  SC-JSON in; the value must survive a
 *                                      binary round trip and re-encode to the
 *                                      same SC-JSON; prints a one-line summary
 * FILE defaults to stdin ("-" also means stdin).
 *
 * Happy path: read the whole input (capped by --max-bytes), decode it into an
 * arena with the limits of --max-depth/--max-bytes, encode into a buffer, and
 * write the buffer to stdout in one go.
 *
 * Failure modes (each prints ONE line on stderr and leaves stdout empty):
 *   1. Bad arguments: "lmz codec: ..." and exit 2.
 *   2. Input unreadable, empty or over --max-bytes: exit 2.
 *   3. Input malformed or over a limit: the codec's error with the byte
 *      offset, "lmz codec encode: stdin: byte 17: expected ...", exit 2.
 *   4. A value the output encoding refuses (e.g. nested too deep to encode):
 *      exit 2, since the input caused it.
 *   5. An intermediate step of roundtrip/check fails or changes the value:
 *      that is a codec bug, reported as "internal", exit 1.
 *   6. Out of memory or a write error: exit 1.
 * Output is only written after every step succeeded, so a failed decode never
 * leaves partial output behind. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/codec.h"
#include "server/cli.h"

#define CODEC_DEFAULT_MAX_BYTES ((size_t)64 << 20) /* matches codec.h */

struct codec_run {
  char prog[48];   /* "lmz codec encode", the prefix of every message */
  const char *src; /* "stdin" or the file name */
  const char *in;
  size_t in_len;
  lmz_arena *arena;
  struct lmz_codec_limits limits;
  lmz_buf out;
};

typedef int (*codec_action_fn)(struct codec_run *r);

static int act_encode(struct codec_run *r);
static int act_decode(struct codec_run *r);
static int act_roundtrip(struct codec_run *r);
static int act_check(struct codec_run *r);

static const struct {
  const char *name;
  codec_action_fn fn;
  const char *help;
} codec_actions[] = {
    {"encode", act_encode, "SC-JSON on stdin -> lmz binary on stdout"},
    {"decode", act_decode, "lmz binary on stdin -> SC-JSON on stdout"},
    {"roundtrip", act_roundtrip,
     "SC-JSON -> value -> binary -> value -> SC-JSON on stdout"},
    {"check", act_check,
     "SC-JSON on stdin; verify the codecs keep its value"},
};

static void codec_usage(FILE *f) {
  fprintf(f, "usage: lmz codec <action> [options] [FILE]\n\nactions:\n");
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(codec_actions); i++)
    fprintf(f, "  %-10s %s\n", codec_actions[i].name, codec_actions[i].help);
  fprintf(f,
          "\noptions:\n"
          "  --max-depth N   deepest container nesting accepted (default 512)\n"
          "  --max-bytes N   largest input accepted, k/m/g suffixes allowed\n"
          "                  (default 64m)\n"
          "FILE defaults to stdin. Exit status: 0 ok, 1 internal error,\n"
          "2 bad usage or bad input (one line on stderr with the byte "
          "offset).\n");
}

/* ---- error reporting ----------------------------------------------------- */

/* Copies a message for a one-line report: control bytes become spaces. */
static void one_line(char *dst, size_t cap, const char *src) {
  size_t i = 0;
  for (; src[i] && i + 1 < cap; i++)
    dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
  dst[i] = '\0';
}

/* A decode failure of `what` (the input's name) at err->offset. */
static int fail_decode(const struct codec_run *r, const char *what,
                       const struct lmz_codec_error *err, int status) {
  char msg[sizeof err->msg];
  one_line(msg, sizeof msg, err->msg[0] ? err->msg : lmz_strerror(err->code));
  fprintf(stderr, "%s: %s: byte %zu: %s\n", r->prog, what, err->offset, msg);
  return status;
}

/* An encode failure: no input offset applies. ENOMEM is ours, the rest
 * (too deep, unsupported) comes from the value, i.e. from the input. */
static int fail_encode(const struct codec_run *r, const char *to,
                       const struct lmz_codec_error *err, int rc) {
  char msg[sizeof err->msg];
  one_line(msg, sizeof msg, err->msg[0] ? err->msg : lmz_strerror(rc));
  fprintf(stderr, "%s: %s: cannot encode as %s: %s\n", r->prog, r->src, to,
          msg);
  return rc == LMZ_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
}

static void error_clear(struct lmz_codec_error *err) {
  memset(err, 0, sizeof *err);
}

/* ---- steps --------------------------------------------------------------- */

static int scjson_in(struct codec_run *r, lmz_value **v) {
  struct lmz_codec_error err;
  error_clear(&err);
  int rc = lmz_scjson_decode(r->arena, r->in, r->in_len, &r->limits, v, &err);
  return rc ? fail_decode(r, r->src, &err, CLI_EXIT_USAGE) : 0;
}

static int binary_in(struct codec_run *r, lmz_value **v) {
  struct lmz_codec_error err;
  error_clear(&err);
  int rc = lmz_bin_decode(r->arena, r->in, r->in_len, &r->limits, v, &err);
  return rc ? fail_decode(r, r->src, &err, CLI_EXIT_USAGE) : 0;
}

static int scjson_out(struct codec_run *r, const lmz_value *v, lmz_buf *b) {
  struct lmz_codec_error err;
  error_clear(&err);
  int rc = lmz_scjson_encode(v, b, &err);
  if (rc)
    return fail_encode(r, "SC-JSON", &err, rc);
  return 0;
}

static int binary_out(struct codec_run *r, const lmz_value *v, lmz_buf *b) {
  struct lmz_codec_error err;
  error_clear(&err);
  int rc = lmz_bin_encode(v, b, &err);
  return rc ? fail_encode(r, "binary", &err, rc) : 0;
}

static int newline(lmz_buf *b) {
  if (lmz_buf_putc(b, '\n')) {
    fprintf(stderr, "lmz codec: out of memory\n");
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* Binary -> value again, for roundtrip/check. A failure here means our own
 * encoder produced something our decoder rejects: a bug, not bad input. */
static int binary_back(struct codec_run *r, const lmz_buf *bin,
                       lmz_value **v) {
  struct lmz_codec_error err;
  error_clear(&err);
  if (!lmz_bin_decode(r->arena, bin->data, bin->len, &r->limits, v, &err))
    return 0;
  return fail_decode(r, "internal binary", &err, CLI_EXIT_FAIL);
}

/* ---- actions ------------------------------------------------------------- */

static int act_encode(struct codec_run *r) {
  lmz_value *v;
  int rc = scjson_in(r, &v);
  return rc ? rc : binary_out(r, v, &r->out);
}

static int act_decode(struct codec_run *r) {
  lmz_value *v;
  int rc = binary_in(r, &v);
  if (!rc)
    rc = scjson_out(r, v, &r->out);
  return rc ? rc : newline(&r->out);
}

static int act_roundtrip(struct codec_run *r) {
  lmz_value *v, *v2;
  lmz_buf bin = LMZ_BUF_INIT;
  int rc = scjson_in(r, &v);
  if (!rc)
    rc = binary_out(r, v, &bin);
  if (!rc)
    rc = binary_back(r, &bin, &v2);
  if (!rc)
    rc = scjson_out(r, v2, &r->out);
  if (!rc)
    rc = newline(&r->out);
  lmz_buf_free(&bin);
  return rc;
}

/* Verifies the codecs on this input (exit 1 = a codec bug, not bad input):
 *   v  = SC-JSON decode of the input, T1 = its SC-JSON encoding,
 *   v1 = SC-JSON decode of T1 (the value in canonical form; decoding may
 *        normalize, e.g. header names, short ISO dates, duplicate keys),
 *   v2 = binary decode of binary encode of v1: must equal v1
 *        (lmz_value_equal: types, contents and sharing),
 *   T2 = SC-JSON encoding of v2: must equal T1 byte for byte. */
static int act_check(struct codec_run *r) {
  lmz_value *v, *v1, *v2;
  lmz_buf t1 = LMZ_BUF_INIT, bin = LMZ_BUF_INIT, t2 = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  const char *bad = NULL;
  int rc = scjson_in(r, &v);
  if (!rc)
    rc = scjson_out(r, v, &t1);
  error_clear(&err);
  if (!rc && lmz_scjson_decode(r->arena, (const char *)t1.data, t1.len,
                               &r->limits, &v1, &err))
    rc = fail_decode(r, "internal SC-JSON", &err, CLI_EXIT_FAIL);
  if (!rc)
    rc = binary_out(r, v1, &bin);
  if (!rc)
    rc = binary_back(r, &bin, &v2);
  if (!rc && !lmz_value_equal(v1, v2))
    bad = "binary round trip changed the value";
  if (!rc && !bad)
    rc = scjson_out(r, v2, &t2);
  if (!rc && !bad && (t2.len != t1.len || memcmp(t2.data, t1.data, t1.len)))
    bad = "SC-JSON encoding changed after a binary round trip";
  if (bad) {
    fprintf(stderr, "%s: %s: %s\n", r->prog, r->src, bad);
    rc = CLI_EXIT_FAIL;
  }
  size_t in_len = r->in_len; /* a trailing newline does not count */
  while (in_len > 0 && r->in[in_len - 1] == '\n')
    in_len--;
  int canonical = t1.len == in_len && !memcmp(t1.data, r->in, in_len);
  if (!rc && lmz_buf_printf(&r->out, "ok: %s, %zu bytes SC-JSON (%s), %zu "
                            "bytes binary\n", lmz_type_name(lmz_typeof(v)),
                            r->in_len, canonical ? "canonical" : "normalized",
                            bin.len))
    rc = CLI_EXIT_FAIL;
  lmz_buf_free(&t1);
  lmz_buf_free(&bin);
  lmz_buf_free(&t2);
  return rc;
}

/* ---- argument parsing and driver ----------------------------------------- */

struct codec_args {
  codec_action_fn fn;
  const char *action;
  const char *path; /* NULL = stdin */
  size_t max_bytes;
  size_t max_depth; /* 0 = codec default */
  int help;
};

__attribute__((format(printf, 1, 2))) static int bad_usage(const char *fmt,
                                                        ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("lmz codec: ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (see lmz help codec)\n", stderr);
  return CLI_EXIT_USAGE;
}

/* The value of a size option ("--max-bytes N" or "--max-bytes=N"). */
static int opt_size(const char *name, const char *val, size_t *out) {
  if (cli_parse_size(val, out) || *out == 0)
    return bad_usage("invalid value '%s' for %s (want a positive integer)",
                     val, name);
  return 0;
}

enum { OPT_MAX_BYTES = 256, OPT_MAX_DEPTH };
static const struct option codec_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"max-bytes", required_argument, NULL, OPT_MAX_BYTES},
    {"max-depth", required_argument, NULL, OPT_MAX_DEPTH},
    {NULL, 0, NULL, 0}};

static int set_positional(struct codec_args *ca, const char *a) {
  if (!ca->action) {
    for (size_t k = 0; k < LMZ_ARRAY_SIZE(codec_actions); k++)
      if (!strcmp(codec_actions[k].name, a)) {
        ca->fn = codec_actions[k].fn;
        ca->action = a;
        return 0;
      }
    return bad_usage("unknown action '%s'", a);
  }
  if (ca->path)
    return bad_usage("unexpected argument '%s'", a);
  ca->path = strcmp(a, "-") ? a : NULL;
  return 0;
}

static int parse_args(int argc, char **argv, struct codec_args *ca) {
  struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = codec_opts};
  int rc = 0, c;
  while (!rc && (c = cli_getopt(&g)) != -1) {
    switch (c) {
    case 'h': ca->help = 1; break;
    case OPT_MAX_BYTES: rc = opt_size("--max-bytes", optarg, &ca->max_bytes); break;
    case OPT_MAX_DEPTH: rc = opt_size("--max-depth", optarg, &ca->max_depth); break;
    default: rc = cli_getopt_error("lmz codec", "codec", c, argv); break;
    }
  }
  for (int i = 1; !rc && i <= g.npos; i++)
    rc = set_positional(ca, argv[i]);
  if (!rc && ca->max_depth > UINT32_MAX)
    rc = bad_usage("%s too large", "--max-depth");
  if (!rc && !ca->help && !ca->action) {
    codec_usage(stderr);
    rc = CLI_EXIT_USAGE;
  }
  return rc;
}

/* Reads the input named by `path` (NULL = stdin) into r->in. */
static int read_input(struct codec_run *r, const char *path,
                      size_t max_bytes) {
  int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
  if (fd < 0) {
    fprintf(stderr, "%s: %s: %s\n", r->prog, r->src, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  char *data = NULL;
  int rc = cli_read_all(fd, max_bytes, &data, &r->in_len);
  if (path)
    close(fd);
  if (rc == LMZ_ETOOBIG) {
    fprintf(stderr, "%s: %s: input too large (over %zu bytes; see "
            "--max-bytes)\n", r->prog, r->src, max_bytes);
    return CLI_EXIT_USAGE;
  }
  if (rc) {
    fprintf(stderr, "%s: %s: %s\n", r->prog, r->src, lmz_strerror(rc));
    return rc == LMZ_ENOMEM ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
  }
  r->in = data;
  if (r->in_len == 0) {
    fprintf(stderr, "%s: %s: byte 0: empty input\n", r->prog, r->src);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

static int run(const struct codec_args *ca, struct codec_run *r) {
  snprintf(r->prog, sizeof r->prog, "lmz codec %s", ca->action);
  r->src = ca->path ? ca->path : "stdin";
  lmz_codec_limits_default(&r->limits);
  r->limits.max_input = ca->max_bytes;
  if (ca->max_depth)
    r->limits.max_depth = (uint32_t)ca->max_depth;
  int rc = read_input(r, ca->path, ca->max_bytes);
  if (rc)
    return rc;
  r->arena = lmz_arena_new();
  if (!r->arena) {
    fprintf(stderr, "%s: out of memory\n", r->prog);
    return CLI_EXIT_FAIL;
  }
  rc = ca->fn(r);
  if (rc)
    return rc;
  if ((rc = cli_write_all(STDOUT_FILENO, r->out.data, r->out.len))) {
    fprintf(stderr, "%s: stdout: %s\n", r->prog, lmz_strerror(rc));
    return CLI_EXIT_FAIL;
  }
  return CLI_EXIT_OK;
}

int cli_codec_main(int argc, char **argv) {
  struct codec_args ca = {.max_bytes = CODEC_DEFAULT_MAX_BYTES};
  int rc = parse_args(argc, argv, &ca);
  if (rc)
    return rc;
  if (ca.help) {
    codec_usage(stdout);
    return CLI_EXIT_OK;
  }
  struct codec_run r = {.out = LMZ_BUF_INIT};
  rc = run(&ca, &r);
  lmz_buf_free(&r.out);
  lmz_arena_free(r.arena);
  free((char *)r.in);
  return rc;
}
