/* lmz call - an operator's call to any actor, over the node port.
 *
 *   lmz call [--node HOST:PORT] [--data DIR | --key-file F] [--timeout MS]
 *            [--state JSON] [--scjson FILE] [--trace-id HEX] [--show-trace]
 *            BINDING INSTANCE|- METHOD [ARG...]
 *
 * Options may come anywhere (before, between or after the positionals);
 * `--` ends them, so an ARG starting with '-' goes after it:
 *   lmz call COUNTER_DO a increment -- -5
 *
 * Each ARG is one JSON value (plain JSON: keys are taken literally); with
 * --scjson FILE the arguments are a JSON array of SC-JSON {json, meta}
 * values (for rich values). INSTANCE "-" calls a worker (no instance).
 * The call's origin is the CLI; no origin auth is sent (the node would
 * ignore it anyway). The call starts a trace (README "Tracing a call"):
 * its id is minted here, or given with --trace-id (32 lowercase hex), and
 * printed on stderr as "trace=<id>" with --show-trace, so that the log
 * lines of every node the call crosses can be found.
 *
 * Exit: 0 and the result as SC-JSON on stdout; 3 and the error as SC-JSON
 * on stdout when the callee threw; 2 with one line on stderr for bad usage,
 * a missing key, or a node that cannot be reached; 1 for internal failures. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/rpc_client.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/trace.h"
#include "lmz/lmz.h"
#include "server/cli.h"

#define CLI_EXIT_THREW 3
#define MAX_JSON_DEPTH 128

struct call_args {
  const char *node, *data, *key_file, *state, *scjson;
  char trace_id[LMZ_TRACE_ID_LEN + 1];
  bool show_trace;
  int timeout_ms;
  const char *binding, *instance, *method;
  char **argv;
  int argc;
};

static void call_usage(FILE *f) {
  fprintf(f,
          "usage: lmz call [--node HOST:PORT] [--data DIR | --key-file FILE]\n"
          "                [--timeout MS] [--state JSON] [--scjson FILE]\n"
          "                BINDING INSTANCE|- METHOD [ARG...]\n"
          "  ARG          one JSON value per argument (strings need quotes: '\"hi\"')\n"
          "  INSTANCE -   call a worker (workers have no instance name)\n"
          "  --scjson F   arguments as a JSON array of SC-JSON values (rich values)\n"
          "  --state J    call-context state (a JSON object)\n"
          "  --trace-id T the call's trace id (32 lowercase hex; default: a\n"
          "               fresh one); --show-trace prints trace=<id> on stderr\n"
          "  --node       default 127.0.0.1:7100; key from DIR/cluster.key\n"
          "               (default ./lmz-data) unless --key-file is given\n"
          "options may come anywhere; -- ends them, so an ARG that starts\n"
          "with '-' goes after it:  lmz call COUNTER_DO a increment -- -5\n"
          "exit: 0 result on stdout, 3 the callee threw (error on stdout),\n"
          "      2 usage / unreachable node / missing key\n");
}

enum { OPT_NODE = 256, OPT_DATA, OPT_KEY_FILE, OPT_STATE, OPT_SCJSON, OPT_TIMEOUT,
       OPT_TRACE_ID, OPT_SHOW_TRACE };
static const struct option call_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"node", required_argument, NULL, OPT_NODE},
    {"data", required_argument, NULL, OPT_DATA},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"state", required_argument, NULL, OPT_STATE},
    {"scjson", required_argument, NULL, OPT_SCJSON},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"trace-id", required_argument, NULL, OPT_TRACE_ID},
    {"show-trace", no_argument, NULL, OPT_SHOW_TRACE},
    {NULL, 0, NULL, 0}};

/* Returns -1 to go on, or the exit status (0 after --help). */
static int parse(int argc, char **argv, struct call_args *a) {
  *a = (struct call_args){.node = "127.0.0.1:7100", .data = "./lmz-data",
                          .timeout_ms = 30000};
  struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = call_opts};
  int c;
  while ((c = cli_getopt(&g)) != -1) {
    switch (c) {
    case 'h': call_usage(stdout); return 0;
    case OPT_NODE: a->node = optarg; break;
    case OPT_DATA: a->data = optarg; break;
    case OPT_KEY_FILE: a->key_file = optarg; break;
    case OPT_STATE: a->state = optarg; break;
    case OPT_SCJSON: a->scjson = optarg; break;
    case OPT_TIMEOUT: a->timeout_ms = atoi(optarg); break;
    case OPT_SHOW_TRACE: a->show_trace = true; break;
    case OPT_TRACE_ID:
      if (!lmz_trace_id_valid(optarg, strlen(optarg))) {
        fprintf(stderr, "lmz call: --trace-id must be 32 lowercase hex digits, "
                        "not all zero\n");
        return CLI_EXIT_USAGE;
      }
      memcpy(a->trace_id, optarg, sizeof a->trace_id);
      break;
    default: return cli_getopt_error("lmz call", "call", c, argv);
    }
  }
  if (g.npos < 3) {
    call_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  a->binding = argv[1];
  a->instance = strcmp(argv[2], "-") ? argv[2] : NULL;
  a->method = argv[3];
  a->argv = argv + 4;
  a->argc = g.npos - 3;
  if (a->timeout_ms <= 0)
    a->timeout_ms = 30000;
  if (!a->trace_id[0])
    lmz_trace_id_mint(a->trace_id);
  return -1;
}

/* ---- plain JSON -> value ------------------------------------------------- */


static int parse_json_arg(lmz_arena *a, const char *what, const char *text,
                          lmz_value **out) {
  lmz_json *j;
  struct lmz_codec_error err;
  if (lmz_json_parse(a, text, strlen(text), NULL, &j, &err)) {
    fprintf(stderr, "lmz call: %s is not a JSON value (byte %zu: %s); "
                    "strings need quotes, e.g. '\"hello\"'\n", what, err.offset, err.msg);
    return CLI_EXIT_USAGE;
  }
  if (!(*out = lmz_json_to_value(a, j, MAX_JSON_DEPTH))) {
    fprintf(stderr, "lmz call: %s: nested too deep or out of memory\n", what);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

static int scjson_args(lmz_arena *a, const char *path, lmz_value *args) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "lmz call: cannot open %s: %s\n", path, strerror(errno));
    return CLI_EXIT_USAGE;
  }
  char *text;
  size_t len;
  int rv = cli_read_all(fileno(f), 64u << 20, &text, &len);
  fclose(f);
  if (rv) {
    fprintf(stderr, "lmz call: cannot read %s: %s\n", path, lmz_strerror(rv));
    return CLI_EXIT_USAGE;
  }
  lmz_json *j;
  struct lmz_codec_error err;
  rv = lmz_json_parse(a, text, len, NULL, &j, &err);
  if (!rv && j->type != LMZ_JSON_ARRAY) {
    rv = LMZ_EBADMSG;
    snprintf(err.msg, sizeof err.msg, "expected a JSON array of SC-JSON values");
    err.offset = 0;
  }
  for (uint32_t i = 0; !rv && i < j->n; i++) {
    lmz_value *v;
    if (!(rv = lmz_scjson_decode_dom(a, j->u.items[i], NULL, &v, &err)))
      rv = lmz_array_push(args, v);
  }
  free(text);
  if (rv) {
    fprintf(stderr, "lmz call: %s: byte %zu: %s\n", path, err.offset, err.msg);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

/* [{type:'get', key:METHOD}, {type:'apply', args}] */
static lmz_value *make_chain(lmz_arena *a, const char *method, lmz_value *args) {
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  if (!chain || !get || !ap || lmz_object_setc(get, "type", lmz_cstring(a, "get")) ||
      lmz_object_setc(get, "key", lmz_cstring(a, method)) ||
      lmz_object_setc(ap, "type", lmz_cstring(a, "apply")) ||
      lmz_object_setc(ap, "args", args) || lmz_array_push(chain, get) ||
      lmz_array_push(chain, ap))
    return NULL;
  return chain;
}

/* ---- the call ------------------------------------------------------------ */

static int send_call(lmz_rpc_client *rc, const struct call_args *c,
                     const lmz_buf *chain, const lmz_buf *state) {
  if (c->show_trace)
    fprintf(stderr, "trace=%s\n", c->trace_id);
  return lmz_rpc_send_call_traced(rc, 1, c->binding, c->instance, chain->data,
                                  chain->len, state->data, state->len,
                                  c->trace_id);
}

/* Waits for Result 1 and prints it. Returns the exit status. */
static int await_result(lmz_rpc_client *rc, lmz_arena *a, int timeout_ms) {
  Lmz__Frame *f = cli_await_result(rc, "call", timeout_ms);
  if (!f)
    return CLI_EXIT_USAGE;
  Lmz__Result *r = f->result;
  int status = r->ok ? CLI_EXIT_OK : CLI_EXIT_THREW;
  lmz_value *v = NULL;
  struct lmz_codec_error err;
  lmz_buf out = LMZ_BUF_INIT;
  if (r->code && !r->value.len) {
    fprintf(stderr, "lmz call: the node refused the call: %s (%s)\n",
            r->detail, lmz_err_name(r->code));
    status = CLI_EXIT_USAGE;
  } else if (lmz_bin_decode(a, r->value.data, r->value.len, NULL, &v, &err) ||
             lmz_scjson_encode(v, &out, &err)) {
    fprintf(stderr, "lmz call: undecodable reply: %s\n", err.msg);
    status = CLI_EXIT_FAIL;
  } else {
    lmz_buf_putc(&out, '\n');
    cli_write_all(1, out.data, out.len);
  }
  lmz_buf_free(&out);
  lmz__frame__free_unpacked(f, NULL);
  return status;
}

static int do_call(const struct call_args *c, lmz_arena *a) {
  lmz_value *args = lmz_array(a, (size_t)c->argc), *state = NULL;
  int rv = args ? 0 : CLI_EXIT_FAIL;
  for (int i = 0; !rv && i < c->argc; i++) {
    char what[32];
    snprintf(what, sizeof what, "ARG %d", i + 1);
    lmz_value *v;
    if (!(rv = parse_json_arg(a, what, c->argv[i], &v)))
      rv = lmz_array_push(args, v) ? CLI_EXIT_FAIL : 0;
  }
  if (!rv && c->scjson)
    rv = scjson_args(a, c->scjson, args);
  if (!rv && c->state && !(rv = parse_json_arg(a, "--state", c->state, &state)) &&
      lmz_typeof(state) != LMZ_T_OBJECT) {
    fprintf(stderr, "lmz call: --state must be a JSON object\n");
    rv = CLI_EXIT_USAGE;
  }
  uint8_t key[32];
  if (rv || (rv = cli_load_cluster_key("call", c->key_file, c->data, key)))
    return rv;
  lmz_buf chain = LMZ_BUF_INIT, st = LMZ_BUF_INIT;
  lmz_value *ch = make_chain(a, c->method, args);
  if (!ch || lmz_bin_encode(ch, &chain, NULL) ||
      (state && lmz_bin_encode(state, &st, NULL)))
    return CLI_EXIT_FAIL;
  char err[LMZ_ERRMSG_LEN];
  lmz_rpc_client *rc = NULL;
  if (lmz_rpc_connect(&rc, c->node, key, c->timeout_ms, err)) {
    fprintf(stderr, "lmz call: %s\n", err);
    rv = CLI_EXIT_USAGE;
  } else if (send_call(rc, c, &chain, &st)) {
    fprintf(stderr, "lmz call: send failed: %s\n", lmz_rpc_errmsg(rc));
    rv = CLI_EXIT_USAGE;
  } else {
    rv = await_result(rc, a, c->timeout_ms);
  }
  lmz_rpc_close(rc);
  lmz_buf_free(&chain);
  lmz_buf_free(&st);
  return rv;
}

int cli_call_main(int argc, char **argv) {
  struct call_args c;
  int rv = parse(argc, argv, &c);
  if (rv >= 0)
    return rv;
  lmz_arena *a = lmz_arena_new();
  if (!a)
    return CLI_EXIT_FAIL;
  rv = do_call(&c, a);
  lmz_arena_free(a);
  return rv;
}
