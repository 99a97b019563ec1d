/* lmz sql - run one SQL statement as a turn of a durable object.
 *
 *   lmz sql [--write] [--json] [--node HOST:PORT] [--data DIR | --key-file F]
 *           [--timeout MS] BINDING INSTANCE 'SQL' [ARG...]
 *
 * Each ARG is one JSON value bound to a `?` of the statement. The statement
 * is read-only unless --write (the node refuses a write otherwise). It runs
 * through the node port like `lmz call` (cluster key, routed to the owner in
 * a cluster) as the runtime's operator method __lmz_sql (actor/sql.c), which
 * only an operator's call can reach.
 *
 * Output: a header line of column names, then one line per row, values
 * separated by tabs (strings as they are, NULL, numbers, BLOBs as x'hex');
 * a summary line on stderr. --json prints the whole answer as SC-JSON
 * ({columns, rows, rowsRead, rowsWritten, databaseSize}).
 * Exit: 0 ok, 3 the statement failed (the error as SC-JSON on stdout), 2 bad
 * usage / unreachable node / missing key, 1 internal failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/rpc_client.h"
#include "core/codec.h"
#include "core/json.h"
#include "lmz/lmz.h"
#include "server/cli.h"

#define EXIT_THREW 3

struct sql_args {
  const char *node, *data, *key_file;
  int timeout_ms;
  bool write, json;
  const char *binding, *instance, *sql;
  char **argv;
  int argc;
};

static void sql_usage(FILE *f) {
  fprintf(f,
          "usage: lmz sql [--write] [--json] [--node HOST:PORT]\n"
          "               [--data DIR | --key-file FILE] [--timeout MS]\n"
          "               BINDING INSTANCE 'SQL' [ARG...]\n"
          "  runs one statement as a turn of the durable object; read-only\n"
          "  unless --write. ARG: one JSON value per ? parameter.\n"
          "  --json       the whole answer as SC-JSON\n"
          "exit: 0 rows printed, 3 the statement failed, 2 usage / node\n");
}

static int parse(int argc, char **argv, struct sql_args *a) {
  *a = (struct sql_args){.node = "127.0.0.1:7100", .data = "./lmz-data",
                         .timeout_ms = 30000};
  int i = 1;
  for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help")) {
      sql_usage(stdout);
      return 0;
    }
    if (!strcmp(o, "--write") || !strcmp(o, "--json")) {
      *(o[2] == 'w' ? &a->write : &a->json) = true;
      continue;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "lmz sql: %s needs a value\n", o);
      return CLI_EXIT_USAGE;
    }
    const char *v = argv[++i];
    if (!strcmp(o, "--node"))
      a->node = v;
    else if (!strcmp(o, "--data"))
      a->data = v;
    else if (!strcmp(o, "--key-file"))
      a->key_file = v;
    else if (!strcmp(o, "--timeout"))
      a->timeout_ms = atoi(v) > 0 ? atoi(v) : 30000;
    else {
      fprintf(stderr, "lmz sql: unknown option %s (see lmz help sql)\n", o);
      return CLI_EXIT_USAGE;
    }
  }
  if (argc - i < 3) {
    sql_usage(stderr);
    return CLI_EXIT_USAGE;
  }
  a->binding = argv[i];
  a->instance = argv[i + 1];
  a->sql = argv[i + 2];
  a->argv = argv + i + 3;
  a->argc = argc - i - 3;
  return -1;
}

/* [{type:'get', key:'__lmz_sql'}, {type:'apply', args:[{write}, sql, ...]}] */
static lmz_value *make_chain(lmz_arena *a, const struct sql_args *s) {
  lmz_value *args = lmz_array(a, 2), *o = lmz_object(a);
  if (!args || !o || lmz_object_setc(o, "write", lmz_bool(s->write)) ||
      lmz_array_push(args, o) || lmz_array_push(args, lmz_cstring(a, s->sql)))
    return NULL;
  for (int i = 0; i < s->argc; i++) {
    lmz_json *j;
    struct lmz_codec_error err;
    if (lmz_json_parse(a, s->argv[i], strlen(s->argv[i]), NULL, &j, &err)) {
      fprintf(stderr, "lmz sql: ARG %d is not a JSON value (byte %zu: %s); "
                      "strings need quotes, e.g. '\"hi\"'\n", i + 1, err.offset, err.msg);
      return NULL;
    }
    lmz_value *v = lmz_json_to_value(a, j, 16);
    if (!v || lmz_array_push(args, v))
      return NULL;
  }
  lmz_value *chain = lmz_array(a, 2), *get = lmz_object(a), *ap = lmz_object(a);
  if (!chain || !get || !ap || lmz_object_setc(get, "type", lmz_cstring(a, "get")) ||
      lmz_object_setc(get, "key", lmz_cstring(a, "__lmz_sql")) ||
      lmz_object_setc(ap, "type", lmz_cstring(a, "apply")) ||
      lmz_object_setc(ap, "args", args) || lmz_array_push(chain, get) ||
      lmz_array_push(chain, ap))
    return NULL;
  return chain;
}

static void print_cell(lmz_buf *out, const lmz_value *v) {
  size_t len;
  const char *s;
  switch (lmz_typeof(v)) {
  case LMZ_T_NULL:
    lmz_buf_append_str(out, "NULL");
    break;
  case LMZ_T_NUMBER:
    lmz_buf_printf(out, "%.17g", lmz_get_number(v));
    break;
  case LMZ_T_STRING:
  case LMZ_T_BIGINT:
    s = lmz_get_str(v, &len);
    lmz_buf_append(out, s, len);
    break;
  case LMZ_T_ARRAYBUFFER:
    lmz_buf_append_str(out, "x'");
    for (size_t i = 0; i < lmz_len(v); i++)
      lmz_buf_printf(out, "%02x", lmz_arraybuffer_data(v)[i]);
    lmz_buf_putc(out, '\'');
    break;
  default:
    lmz_buf_append_str(out, "?");
  }
}

/* The answer as a table: header, rows (tab-separated). */
static int print_table(const lmz_value *r) {
  const lmz_value *cols = lmz_object_getc(r, "columns");
  const lmz_value *rows = lmz_object_getc(r, "rows");
  if (lmz_typeof(cols) != LMZ_T_ARRAY || lmz_typeof(rows) != LMZ_T_ARRAY) {
    fprintf(stderr, "lmz sql: unexpected answer (no columns / rows)\n");
    return CLI_EXIT_FAIL;
  }
  lmz_buf out = LMZ_BUF_INIT;
  for (size_t i = 0; i < lmz_len(cols); i++) {
    if (i)
      lmz_buf_putc(&out, '\t');
    print_cell(&out, lmz_array_get(cols, i));
  }
  if (lmz_len(cols))
    lmz_buf_putc(&out, '\n');
  for (size_t i = 0; i < lmz_len(rows); i++) {
    const lmz_value *row = lmz_array_get(rows, i);
    for (size_t j = 0; j < lmz_len(row); j++) {
      if (j)
        lmz_buf_putc(&out, '\t');
      print_cell(&out, lmz_array_get(row, j));
    }
    lmz_buf_putc(&out, '\n');
  }
  int rv = cli_write_all(1, out.data, out.len) ? CLI_EXIT_FAIL : 0;
  lmz_buf_free(&out);
  fprintf(stderr, "(%zu rows; read %.0f, written %.0f; database %.0f bytes)\n",
          lmz_len(rows), lmz_get_number(lmz_object_getc(r, "rowsRead")),
          lmz_get_number(lmz_object_getc(r, "rowsWritten")),
          lmz_get_number(lmz_object_getc(r, "databaseSize")));
  return rv;
}

static int print_scjson(const lmz_value *v) {
  lmz_buf out = LMZ_BUF_INIT;
  struct lmz_codec_error err;
  int rv = lmz_scjson_encode(v, &out, &err) || lmz_buf_putc(&out, '\n');
  if (!rv)
    rv = cli_write_all(1, out.data, out.len);
  lmz_buf_free(&out);
  return rv ? CLI_EXIT_FAIL : 0;
}

static int send_and_wait(lmz_rpc_client *rc, const struct sql_args *s,
                         const lmz_buf *chain, lmz_arena *a) {
  if (lmz_rpc_send_call(rc, 1, s->binding, s->instance, chain->data,
                        chain->len, NULL, 0)) {
    fprintf(stderr, "lmz sql: send failed: %s\n", lmz_rpc_errmsg(rc));
    return CLI_EXIT_USAGE;
  }
  Lmz__Frame *r = cli_await_result(rc, "sql", s->timeout_ms);
  if (!r)
    return CLI_EXIT_USAGE;
  Lmz__Result *res = r->result;
  lmz_value *v = NULL;
  int rv;
  if (res->code && !res->value.len) {
    fprintf(stderr, "lmz sql: the node refused the call: %s (%s)\n",
            res->detail, lmz_err_name(res->code));
    rv = CLI_EXIT_USAGE;
  } else if (lmz_bin_decode(a, res->value.data, res->value.len, NULL, &v, NULL)) {
    fprintf(stderr, "lmz sql: undecodable reply\n");
    rv = CLI_EXIT_FAIL;
  } else if (!res->ok) {
    rv = print_scjson(v) ? CLI_EXIT_FAIL : EXIT_THREW;
  } else {
    rv = s->json ? print_scjson(v) : print_table(v);
  }
  lmz__frame__free_unpacked(r, NULL);
  return rv;
}

int cli_sql_main(int argc, char **argv) {
  struct sql_args s;
  int rv = parse(argc, argv, &s);
  if (rv >= 0)
    return rv;
  lmz_arena *a = lmz_arena_new();
  if (!a)
    return CLI_EXIT_FAIL;
  lmz_value *chain = make_chain(a, &s);
  lmz_buf enc = LMZ_BUF_INIT;
  uint8_t key[32];
  if (!chain || lmz_bin_encode(chain, &enc, NULL))
    rv = chain ? CLI_EXIT_FAIL : CLI_EXIT_USAGE;
  else
    rv = cli_load_cluster_key("sql", s.key_file, s.data, key);
  char err[LMZ_ERRMSG_LEN];
  lmz_rpc_client *rc = NULL;
  if (!rv && lmz_rpc_connect(&rc, s.node, key, s.timeout_ms, err)) {
    fprintf(stderr, "lmz sql: %s\n", err);
    rv = CLI_EXIT_USAGE;
  } else if (!rv) {
    rv = send_and_wait(rc, &s, &enc, a);
  }
  lmz_rpc_close(rc);
  lmz_buf_free(&enc);
  lmz_arena_free(a);
  return rv;
}
