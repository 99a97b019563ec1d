/* lmz status / lmz locate - what the cluster looks like, from any node.
 *
 *   lmz status [--node HOST:PORT] [--data DIR | --key-file F]
 *   lmz locate [--node HOST:PORT] [--data DIR | --key-file F] BINDING INSTANCE
 *   lmz node drain|add|remove [options] ...   (usage: lmz help node)
 * Options may come anywhere on the line (cli.h: cli_getopt).
 *
 * status prints JSON: this node, the leader, the Raft term, the lease, and
 * every node (id, state, addresses, actors, lease age). locate prints the
 * owner and epoch of one actor ({"placed":false} if it has none yet).
 * Exit 0; 2 with one line on stderr for usage, a missing key or an
 * unreachable node. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/rpc_client.h"
#include "server/cli.h"

struct status_args {
  const char *node, *data, *key_file, *binding, *instance;
  bool standby; /* lmz node add --standby */
};

enum { OPT_NODE = 256, OPT_DATA, OPT_KEY_FILE, OPT_STANDBY };
static const struct option status_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"node", required_argument, NULL, OPT_NODE},
    {"data", required_argument, NULL, OPT_DATA},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"standby", no_argument, NULL, OPT_STANDBY}, /* lmz node add only */
    {NULL, 0, NULL, 0}};

static void status_usage(const char *cmd, FILE *f) {
  if (!strcmp(cmd, "status"))
    fprintf(f, "usage: lmz status [--node HOST:PORT] [--data DIR | --key-file F]\n");
  else
    fprintf(f, "usage: lmz locate [--node HOST:PORT] [--data DIR | --key-file F] "
               "BINDING INSTANCE\n");
}

/* Options anywhere (cli.h); the positionals end up in argv[1..*npos].
 * Returns -1 to go on, or the exit status (0 after --help). `help` is
 * called for --help (status 0). */
static int parse(const char *cmd, int argc, char **argv, struct status_args *a,
                 int *npos, int (*help)(const char *cmd)) {
  *a = (struct status_args){.node = "127.0.0.1:7100", .data = "./lmz-data"};
  struct cli_getopt g = {.argc = argc, .argv = argv, .longopts = status_opts};
  char prog[32];
  snprintf(prog, sizeof prog, "lmz %s", cmd);
  int c;
  while ((c = cli_getopt(&g)) != -1) {
    switch (c) {
    case 'h': return help(cmd);
    case OPT_NODE: a->node = optarg; break;
    case OPT_DATA: a->data = optarg; break;
    case OPT_KEY_FILE: a->key_file = optarg; break;
    case OPT_STANDBY:
      if (strcmp(cmd, "node")) {
        fprintf(stderr, "%s: unknown option '--standby'\n", prog);
        return CLI_EXIT_USAGE;
      }
      a->standby = true;
      break;
    default: return cli_getopt_error(prog, cmd, c, argv);
    }
  }
  *npos = g.npos;
  return -1;
}

static int status_help(const char *cmd) {
  status_usage(cmd, stdout);
  return 0;
}

/* status (0 positionals) and locate (BINDING INSTANCE). */
static int parse_query(const char *cmd, int argc, char **argv,
                       struct status_args *a, int want) {
  int npos, rv = parse(cmd, argc, argv, a, &npos, status_help);
  if (rv >= 0)
    return rv;
  if (npos > want) {
    fprintf(stderr, "lmz %s: unexpected argument '%s'\n", cmd, argv[1 + want]);
    return CLI_EXIT_USAGE;
  }
  if (npos < want) {
    status_usage(cmd, stderr);
    return CLI_EXIT_USAGE;
  }
  if (want) {
    a->binding = argv[1];
    a->instance = argv[2];
  }
  return -1;
}

static int ask_ex(const char *cmd, const struct status_args *a, uint32_t kind,
                  int timeout_ms);
static int ask(const char *cmd, const struct status_args *a, uint32_t kind) {
  return ask_ex(cmd, a, kind, 5000);
}

static int ask_ex(const char *cmd, const struct status_args *a, uint32_t kind,
                  int timeout_ms) {
  char err[LMZ_ERRMSG_LEN];
  uint8_t key[32];
  if (cli_load_cluster_key(cmd, a->key_file, a->data, key))
    return CLI_EXIT_USAGE;
  lmz_rpc_client *rc;
  if (lmz_rpc_connect(&rc, a->node, key, 5000, err)) {
    fprintf(stderr, "lmz %s: %s\n", cmd, err);
    return CLI_EXIT_USAGE;
  }
  Lmz__StatusRequest q = LMZ__STATUS_REQUEST__INIT;
  q.request_id = 1;
  q.kind = kind;
  q.binding = (char *)(a->binding ? a->binding : "");
  q.instance = (char *)(a->instance ? a->instance : "");
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_STATUS_REQUEST;
  f.status_request = &q;
  int rv = lmz_rpc_send(rc, &f) ? CLI_EXIT_USAGE : -1;
  while (rv < 0) {
    Lmz__Frame *in = NULL;
    if (lmz_rpc_recv(rc, &in, timeout_ms)) {
      fprintf(stderr, "lmz %s: no answer: %s\n", cmd, lmz_rpc_errmsg(rc));
      rv = CLI_EXIT_USAGE;
      break;
    }
    if (in->body_case == LMZ__FRAME__BODY_STATUS_RESPONSE) {
      if (in->status_response->status) {
        fprintf(stderr, "lmz %s: %s\n", cmd, lmz_strerror(in->status_response->status));
        rv = CLI_EXIT_USAGE;
      } else {
        printf("%s\n", in->status_response->json);
        rv = CLI_EXIT_OK;
      }
    }
    lmz__frame__free_unpacked(in, NULL);
  }
  lmz_rpc_close(rc);
  return rv;
}

int cli_status_main(int argc, char **argv) {
  struct status_args a;
  int rv = parse_query("status", argc, argv, &a, 0);
  return rv >= 0 ? rv : ask("status", &a, 1);
}

int cli_locate_main(int argc, char **argv) {
  struct status_args a;
  int rv = parse_query("locate", argc, argv, &a, 2);
  return rv >= 0 ? rv : ask("locate", &a, 2);
}

/* The status JSON of the node --node points at (malloc'd), or NULL. */
static char *status_of(const struct status_args *a, const char *cmd) {
  FILE *saved = stdout;
  char *buf = NULL;
  size_t blen = 0;
  stdout = open_memstream(&buf, &blen);
  int rv = ask(cmd, a, 1);
  fclose(stdout);
  stdout = saved;
  if (rv) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* Address of node `id` in a status JSON; false if absent. */
static bool address_of(const char *status, unsigned long long id, char *addr,
                       size_t len) {
  char pat[64];
  snprintf(pat, sizeof pat, "{\"id\":%llu,", id);
  const char *p = status ? strstr(status, pat) : NULL;
  const char *q = p ? strstr(p, "\"address\":\"") : NULL;
  if (!q)
    return false;
  q += 11;
  snprintf(addr, len, "%.*s", (int)strcspn(q, "\""), q);
  return addr[0] != 0;
}

static int node_usage(int status) {
  FILE *f = status ? stderr : stdout;
  fprintf(f,
          "usage: lmz node drain  [--node HOST:PORT] [--data DIR | --key-file F] NODE_ID\n"
          "       lmz node add    [--node ...] [--standby] NODE_ID RAFT_ADDRESS\n"
          "       lmz node remove [--node ...] NODE_ID\n"
          "  drain   moves every actor of NODE_ID to other nodes, with its state\n"
          "  add     adds a node started with cluster.join = true (voter, or a\n"
          "          standby that replicates the directory without voting)\n"
          "  remove  removes a node from the Raft configuration\n"
          "options may come anywhere; -- ends them\n");
  return status;
}

static int node_help(const char *cmd) {
  (void)cmd;
  return node_usage(0);
}

/* Checks lmz node's positionals, argv[1..npos] = ACTION NODE_ID [RAFT].
 * Returns -1 when they fit, else the exit status after saying why. */
static int node_check(int npos, char **argv, const struct status_args *a) {
  if (npos < 1)
    return node_usage(CLI_EXIT_USAGE);
  const char *act = argv[1];
  bool add = !strcmp(act, "add");
  if (!add && strcmp(act, "drain") && strcmp(act, "remove")) {
    fprintf(stderr, "lmz node: unknown action '%s' (drain, add, remove)\n", act);
    return CLI_EXIT_USAGE;
  }
  int want = add ? 3 : 2;
  if (npos > want) {
    fprintf(stderr, "lmz node: unexpected argument '%s'\n", argv[1 + want]);
    return CLI_EXIT_USAGE;
  }
  if (npos < want) {
    fprintf(stderr, "usage: lmz node %s [options] %s\n", act,
            add ? "NODE_ID RAFT_ADDRESS" : "NODE_ID");
    return CLI_EXIT_USAGE;
  }
  if (a->standby && !add) {
    fprintf(stderr, "lmz node %s: --standby is for lmz node add\n", act);
    return CLI_EXIT_USAGE;
  }
  return -1;
}

/* lmz node drain|add|remove: asks any node (--node) for the cluster's
 * state, then talks to the right node: the one to drain, or the leader. */
int cli_node_main(int argc, char **argv) {
  struct status_args a;
  int npos, rv = parse("node", argc, argv, &a, &npos, node_help);
  if (rv < 0)
    rv = node_check(npos, argv, &a);
  if (rv >= 0)
    return rv;
  const char *act = argv[1];
  bool drain = !strcmp(act, "drain"), add = !strcmp(act, "add");
  a.binding = argv[2];
  a.instance = add ? argv[3] : NULL;
  bool standby = a.standby;
  char *end, idbuf[32], addr[128];
  unsigned long long nid = strtoull(a.binding, &end, 10);
  if (!nid || *end) {
    fprintf(stderr, "lmz node %s: NODE_ID must be a positive number\n", act);
    return CLI_EXIT_USAGE;
  }
  snprintf(idbuf, sizeof idbuf, "%llu", nid);
  const char *raft = a.instance;
  char *st = status_of(&a, "node");
  if (!st)
    return CLI_EXIT_USAGE;
  unsigned long long leader = 0;
  const char *lp = strstr(st, "\"leader\":");
  if (lp)
    leader = strtoull(lp + 9, NULL, 10);
  bool found = address_of(st, drain ? nid : leader, addr, sizeof addr);
  free(st);
  if (!found) {
    if (drain)
      fprintf(stderr, "lmz node drain: node %llu is not in the cluster\n", nid);
    else
      fprintf(stderr, "lmz node %s: no leader known right now; retry\n", act);
    return CLI_EXIT_USAGE;
  }
  a.node = addr;
  a.instance = idbuf;
  a.binding = add ? raft : NULL;
  return ask_ex(drain ? "node drain" : add ? "node add" : "node remove", &a,
                drain ? 3 : add ? (standby ? 5 : 4) : 6, 600000);
}
