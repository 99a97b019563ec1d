/* lmz status / lmz locate - what the cluster looks like, from any node.
 *
 *   lmz status [--node HOST:PORT] [--data DIR | --key-file F]
 *   lmz locate [--node HOST:PORT] [--data DIR | --key-file F] BINDING INSTANCE
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
};

static int parse(const char *cmd, int argc, char **argv, struct status_args *a,
                 int npos) {
  *a = (struct status_args){.node = "127.0.0.1:7100", .data = "./lmz-data"};
  int i = 1, pos = 0;
  for (; i < argc; i++) {
    const char *o = argv[i];
    if (!strcmp(o, "--help")) {
      printf("usage: lmz %s [--node HOST:PORT] [--data DIR | --key-file F]%s\n", cmd,
             npos ? " BINDING INSTANCE" : "");
      return 0;
    }
    if (o[0] == '-' && o[1] == '-') {
      if (i + 1 >= argc) {
        fprintf(stderr, "lmz %s: %s needs a value\n", cmd, o);
        return CLI_EXIT_USAGE;
      }
      const char *v = argv[++i];
      if (!strcmp(o, "--node"))
        a->node = v;
      else if (!strcmp(o, "--data"))
        a->data = v;
      else if (!strcmp(o, "--key-file"))
        a->key_file = v;
      else {
        fprintf(stderr, "lmz %s: unknown option %s\n", cmd, o);
        return CLI_EXIT_USAGE;
      }
    } else if (pos < npos) {
      *(pos++ ? &a->instance : &a->binding) = o;
    } else {
      fprintf(stderr, "lmz %s: unexpected argument '%s'\n", cmd, o);
      return CLI_EXIT_USAGE;
    }
  }
  if (pos < npos) {
    fprintf(stderr, "usage: lmz %s [options] BINDING INSTANCE\n", cmd);
    return CLI_EXIT_USAGE;
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
  int rv = parse("status", argc, argv, &a, 0);
  return rv >= 0 ? rv : ask("status", &a, 1);
}

int cli_locate_main(int argc, char **argv) {
  struct status_args a;
  int rv = parse("locate", argc, argv, &a, 2);
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
          "  remove  removes a node from the Raft configuration\n");
  return status;
}

/* lmz node drain|add|remove: asks any node (--node) for the cluster's
 * state, then talks to the right node: the one to drain, or the leader. */
int cli_node_main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help"))
    return node_usage(argc < 2 ? CLI_EXIT_USAGE : 0);
  const char *act = argv[1];
  bool drain = !strcmp(act, "drain"), add = !strcmp(act, "add"),
       rem = !strcmp(act, "remove");
  if (!drain && !add && !rem) {
    fprintf(stderr, "lmz node: unknown action '%s' (drain, add, remove)\n", act);
    return CLI_EXIT_USAGE;
  }
  bool standby = false;
  char *args[64];
  int n = 0;
  for (int i = 1; i < argc && n < 63; i++)
    if (!strcmp(argv[i], "--standby"))
      standby = true;
    else
      args[n++] = argv[i];
  struct status_args a;
  int rv = parse("node", n, args, &a, add ? 2 : 1);
  if (rv >= 0)
    return rv;
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
