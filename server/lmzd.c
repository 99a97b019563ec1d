/* lmzd - the lmz node daemon.
 *
 *   lmzd --dev                       one node, embedded defaults, examples
 *   lmzd --config node.jsonc         a configured node
 *   options: --data DIR  --listen HOST:PORT  --http HOST:PORT  --node-id ID
 *            --static DIR
 *
 * Happy path: read the configuration -> open the data directory (cluster
 * key, store) -> load application modules and bind their classes -> listen
 * on the node port (authenticated, encrypted: cluster/transport.h) -> serve
 * until SIGINT/SIGTERM -> stop accepting, finish queued turns, flush the
 * storage queue, exit 0.
 * Failure modes: any configuration or startup problem prints one line
 * ("lmzd: FILE:LINE:COL: problem" or "lmzd: cannot listen on ...") and exits
 * with status 2 (bad configuration) or 1 (runtime failure). */
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "actor/drain.h"
#include "actor/node.h"
#include "actor/remote.h"
#include "actor/router.h"
#include "cluster/cluster.h"
#include "cluster/keyfile.h"
#include "cluster/transport.h"
#include "core/log.h"
#include "auth/auth.h"
#include "gateway/gateway.h"
#include "gateway/keys.h"
#include "proto/frame.h"
#include "storage/keys.h"
#include "storage/store.h"
#include "server/nodeconfig.h"
#include "server/version.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.server");

struct lmzd {
  uv_loop_t loop;
  lmz_arena *arena;
  struct lmzd_config cfg;
  lmz_node_t node_mem;
  lmz_node_t *node; /* &node_mem once initialized */
  lmz_remote_t remote;
  lmz_cluster_t cluster;
  bool cluster_up;
  lmz_router_t router_mem;
  lmz_router_t *router;   /* &router_mem in a cluster, else NULL */
  lmz_gateway_t gateway_mem; /* the HTTP/WebSocket port */
  lmz_gateway_t *gateway;    /* &gateway_mem once initialized */
  lmz_auth_t auth_mem;
  lmz_auth_t *auth; /* &auth_mem once initialized, or NULL (auth/auth.h) */
  lmz_transport_t transport;
  bool transport_up;
  uv_signal_t sigint, sigterm;
  int exit_code;
  bool stopping;
  bool signals_up; /* sigint/sigterm initialized (closed by node_closed) */
  lmz_conn_t *drain_conn; /* the operator waiting for a drain, or NULL */
  uint64_t drain_request;
  lmz_conn_t *member_conn; /* the operator waiting for a membership change */
  uint64_t member_request;
};

struct lmzd_args {
  bool dev;
  const char *config, *data, *listen, *http, *node_id, *raft, *static_dir;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: lmzd --dev | --config FILE [options]\n"
          "  --dev              one node with embedded defaults and the example apps\n"
          "                     (data ./lmz-data, node port 127.0.0.1:7100)\n"
          "  --config FILE      node configuration (JSON with comments); with --dev:\n"
          "                     its modules plus dev token, dev keys, /lmz-client/\n"
          "  --data DIR         data directory (overrides the config)\n"
          "  --listen HOST:PORT node port (port 0 = pick a free one)\n"
          "  --http HOST:PORT   HTTP/WebSocket port (clients, /api routes, status)\n"
          "  --static DIR       folder served at / (--dev: examples/editor/web,\n"
          "                     and clients/js/src at /lmz-client/)\n"
          "  --node-id ID       this node's name\n"
          "  --raft HOST:PORT   Raft address (IPv4; default: node port + 100,\n"
          "                     or a free port when the node port is 0)\n"
          "  --version          print the version\n"
          "environment: LMZ_LOG_LEVEL, LMZ_DEBUG=lmz.actor,lmz.cluster.*, LMZ_LOG_FORMAT=json\n");
}

static int parse_args(int argc, char **argv, struct lmzd_args *a) {
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    const char **slot = !strcmp(s, "--config") ? &a->config
                        : !strcmp(s, "--data") ? &a->data
                        : !strcmp(s, "--listen") ? &a->listen
                        : !strcmp(s, "--http") ? &a->http
                        : !strcmp(s, "--node-id") ? &a->node_id
                        : !strcmp(s, "--raft") ? &a->raft
                        : !strcmp(s, "--static") ? &a->static_dir : NULL;
    if (slot) {
      if (i + 1 >= argc) {
        fprintf(stderr, "lmzd: %s needs a value\n", s);
        return 2;
      }
      *slot = argv[++i];
    } else if (!strcmp(s, "--dev")) {
      a->dev = true;
    } else if (!strcmp(s, "--version")) {
      printf("lmzd %s\n", lmz_version_string());
      return 0;
    } else if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
      usage(stdout);
      return 0;
    } else {
      fprintf(stderr, "lmzd: unknown option '%s' (see lmzd --help)\n", s);
      return 2;
    }
  }
  if (!a->dev && !a->config) {
    usage(stderr);
    return 2;
  }
  return -1; /* continue */
}

/* mkdir -p */
static int make_dirs(const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf)
    return -ENAMETOOLONG;
  strcpy(buf, path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0700) && errno != EEXIST)
      return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0700) && errno != EEXIST)
    return -errno;
  return 0;
}

/* Where --dev finds the example modules: <prefix>/lib/lmz next to an
 * installed lmzd (cmake/install.cmake), else build/lib next to build/bin. */
static char *exe_lib_dir(lmz_arena *a) {
  char exe[4096], path[4200];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return lmz_arena_strndup(a, "build/lib", 9);
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash)
    *slash = '\0';
  struct stat st;
  snprintf(path, sizeof path, "%s/../lib/lmz", exe);
  if (stat(path, &st) || !S_ISDIR(st.st_mode))
    snprintf(path, sizeof path, "%s/../lib", exe);
  return lmz_arena_strndup(a, path, strlen(path));
}

/* Whether path prefix a is b or under it (whole segments). */
static bool seg_under(const char *a, const char *b) {
  size_t n = strlen(b);
  return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

/* The auth prefix must not share paths with the actor routes or the
 * gateway's own: one of the two would silently shadow the other. */
static bool prefixes_overlap(struct lmzd *d) {
  const char *ap = d->cfg.auth.prefix ? d->cfg.auth.prefix : LMZ_AUTH_DEFAULT_PREFIX;
  const char *rp = d->cfg.gw.route_prefix ? d->cfg.gw.route_prefix : LMZ_GATEWAY_DEFAULT_PREFIX;
  while (*rp == '/') /* as the gateway normalizes it: "/x[/y]", or "" */
    rp++;
  size_t rl = strlen(rp);
  while (rl && rp[rl - 1] == '/')
    rl--;
  char r[512];
  snprintf(r, sizeof r, "/%.*s", (int)rl, rp);
  const char *clash = rl && (seg_under(ap, r) || seg_under(r, ap))
                          ? "gateway.route_prefix"
                      : seg_under(ap, "/gateway") || seg_under(ap, "/_lmz") ||
                              seg_under(ap, "/metrics")
                          ? "the gateway's own routes"
                          : NULL;
  if (clash)
    fprintf(stderr, "lmzd: %s: auth.prefix \"%s\" overlaps %s (\"%s\"): choose "
                    "prefixes that share no path\n", d->cfg.file.name, ap, clash,
            clash[0] == 'g' ? r : "/gateway, /_lmz, /metrics");
  return clash != NULL;
}

static int load_config(struct lmzd *d, const struct lmzd_args *args) {
  char err[LMZ_ERRMSG_LEN] = "";
  int rv = args->config ? lmzd_config_load(d->arena, args->config, &d->cfg, err)
                        : lmzd_config_dev(d->arena, exe_lib_dir(d->arena), &d->cfg, err);
  if (rv) {
    fprintf(stderr, "lmzd: %s\n", err[0] ? err : lmz_strerror(rv));
    return 2;
  }
  if (args->data)
    d->cfg.data_dir = args->data;
  if (args->listen)
    d->cfg.listen = args->listen;
  if (args->http)
    d->cfg.http = args->http;
  if (args->node_id)
    d->cfg.node_id = args->node_id;
  if (args->raft)
    d->cfg.raft = args->raft;
  if (args->static_dir)
    d->cfg.gw.static_dir = args->static_dir;
  if (args->dev) /* --dev --config: the user's modules, dev conveniences */
    d->cfg.dev = true;
  if (args->dev && !lmz_json_get(d->cfg.file.root, "auth"))
    d->cfg.auth.enabled = d->cfg.auth.auto_approve = true; /* as --dev alone */
  if (d->cfg.auth.enabled && prefixes_overlap(d))
    return 2;
  if (lmz_log_configure(d->cfg.log_level, d->cfg.log_debug, NULL)) {
    fprintf(stderr, "lmzd: %s: unknown log level '%s'\n", d->cfg.file.name,
            d->cfg.log_level);
    return 2;
  }
  return 0;
}

/* The cluster key: DATA/cluster.key, generated on the first start. */
static int cluster_key(struct lmzd *d, uint8_t key[32]) {
  char path[4096], err[LMZ_ERRMSG_LEN];
  snprintf(path, sizeof path, "%s/cluster.key", d->cfg.data_dir);
  int rv = lmz_keyfile_load(path, key, err);
  if (rv == LMZ_ENOTFOUND) {
    lmz_keyfile_generate(key);
    rv = lmz_keyfile_save(path, key, 0, err);
    if (!rv)
      LMZ_LOG_INFO(&log_ns, "generated a new cluster key in %s", path);
  }
  if (rv)
    fprintf(stderr, "lmzd: cluster key %s: %s\n", path, err);
  return rv ? 1 : 0;
}

/* The auth service's class, on every node (before lmz_node_start). Its
 * signing keys: auth.private_keys, else (--dev, gateway.jwt.dev_keys) the
 * dev key file, which the gateway trusts too. */
static int start_auth(struct lmzd *d) {
  char err[LMZ_ERRMSG_LEN] = "";
  if ((d->cfg.n_voters > 1 || d->cfg.join) && !d->cfg.auth.hash_key) {
    /* each node would hash tokens with its own DATA/auth-hash.key: after
     * the auth actor moves, every login would be unknown */
    fprintf(stderr, "lmzd: %s: auth.hash_key is required in a cluster (the same "
                    "32 bytes, hex or base64, on every node)\n", d->cfg.file.name);
    return 2;
  }
  struct lmz_jwt_keyset dev = {0};
  bool use_dev = !d->cfg.auth.n_private_keys && (d->cfg.dev || d->cfg.gw.dev_keys);
  int rv = use_dev ? lmz_keys_dev_load_or_create(d->cfg.data_dir, &dev, NULL, err) : 0;
  if (!rv)
    rv = lmz_auth_init(&d->auth_mem, &d->loop, d->node, &d->cfg.auth,
                       use_dev ? &dev : NULL, d->cfg.data_dir, err);
  lmz_jwt_keyset_wipe(&dev);
  if (!rv)
    d->auth = &d->auth_mem;
  if (rv)
    fprintf(stderr, "lmzd: %s\n", err);
  else if (!d->cfg.dev && !d->cfg.auth.mail_set)
    LMZ_LOG_WARN(&log_ns, "auth: no \"email\" sender configured: login links go to "
                          "the dev outbox %s/outbox only", d->cfg.data_dir);
  return rv;
}

static int start_node(struct lmzd *d) {
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_node_opts o = {.node_id = d->cfg.node_id,
                            .data_dir = d->cfg.data_dir,
                            .sync = d->cfg.sync,
                            .idle_evict_ms = d->cfg.idle_evict_ms,
                            .sql = d->cfg.sql,
                            .max_queue = d->cfg.mailbox_max,
                            .max_pending = d->cfg.pending_calls_max,
                            .fetch = d->cfg.fetch};
  if (lmz_node_init(&d->node_mem, &d->loop, &o, err)) {
    fprintf(stderr, "lmzd: %s\n", err);
    return 1;
  }
  d->node = &d->node_mem;
  for (size_t i = 0; i < d->cfg.n_modules; i++)
    if (lmz_node_load_module(d->node, d->cfg.modules[i], err)) {
      fprintf(stderr, "lmzd: %s: %s\n", d->cfg.file.name, err);
      return 2;
    }
  for (size_t i = 0; i < d->cfg.n_bindings; i++) {
    const struct lmzd_binding *b = &d->cfg.bindings[i];
    if (lmz_node_bind(d->node, b->name, b->class_name, b->kind, err)) {
      char where[LMZ_ERRMSG_LEN];
      lmz_config_errorf(where, &d->cfg.file, b->where, "%s", err);
      fprintf(stderr, "lmzd: %s\n", where);
      return 2;
    }
  }
  for (size_t i = 0; i < d->cfg.n_vars; i++)
    lmz_node_set_var(d->node, d->cfg.vars[i].name, d->cfg.vars[i].value);
  if (d->cfg.auth.enabled && start_auth(d))
    return 2;
  return lmz_node_start(d->node) ? 1 : 0;
}

static void send_status(lmz_conn_t *conn, uint64_t id, int rv, const char *json) {
  Lmz__StatusResponse res = LMZ__STATUS_RESPONSE__INIT;
  res.request_id = id;
  res.status = rv;
  res.json = (char *)(rv ? "" : json);
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_STATUS_RESPONSE;
  f.status_response = &res;
  lmz_conn_send(conn, &f);
}

static void drain_done(lmz_router_t *r, int moved, int failed, void *arg) {
  (void)r;
  struct lmzd *d = arg;
  char json[96];
  snprintf(json, sizeof json, "{\"moved\":%d,\"failed\":%d}", moved, failed);
  if (d->drain_conn)
    send_status(d->drain_conn, d->drain_request, 0, json);
  d->drain_conn = NULL;
}

/* kind 3: drain this node (the operator's CLI connects to the node itself). */
static void on_drain_request(struct lmzd *d, lmz_conn_t *conn,
                             const Lmz__StatusRequest *q) {
  uint64_t id = strtoull(q->instance, NULL, 10);
  int rv = !d->router ? LMZ_EUNAVAILABLE
           : id != d->cfg.cluster_id ? LMZ_EINVAL
           : d->drain_conn ? LMZ_EBUSY
           : lmz_drain_start(d->router, drain_done, d);
  if (rv) {
    send_status(conn, q->request_id, rv, NULL);
    return;
  }
  d->drain_conn = conn;
  d->drain_request = q->request_id;
}

static void member_done(lmz_cluster_t *c, int status, void *arg) {
  (void)c;
  struct lmzd *d = arg;
  if (d->member_conn)
    send_status(d->member_conn, d->member_request, status, "{\"ok\":true}");
  d->member_conn = NULL;
}

/* kinds 4/5/6: add a voter / add a standby / remove (the leader only; the
 * CLI finds the leader). instance = node id, binding = its Raft address. */
static void on_member_request(struct lmzd *d, lmz_conn_t *conn,
                              const Lmz__StatusRequest *q) {
  uint64_t id = strtoull(q->instance, NULL, 10);
  int rv = !d->router ? LMZ_EUNAVAILABLE
           : !id ? LMZ_EINVAL
           : d->member_conn ? LMZ_EBUSY
           : lmz_cluster_member(&d->cluster, q->kind != 6, id, q->binding,
                                q->kind == 5, member_done, d);
  if (rv) {
    send_status(conn, q->request_id, rv, NULL);
    return;
  }
  d->member_conn = conn;
  d->member_request = q->request_id;
}

static void on_status_request(struct lmzd *d, lmz_conn_t *conn,
                              const Lmz__StatusRequest *q) {
  if (q->kind == 3) {
    on_drain_request(d, conn, q);
    return;
  }
  if (q->kind >= 4 && q->kind <= 6) {
    on_member_request(d, conn, q);
    return;
  }
  lmz_buf out = LMZ_BUF_INIT;
  int rv = !d->router ? LMZ_EUNAVAILABLE
           : q->kind == 2 ? lmz_cluster_locate_json(&d->cluster, q->binding, q->instance, &out)
                          : lmz_cluster_status_json(&d->cluster, &out);
  if (!rv)
    rv = lmz_buf_putc(&out, 0);
  send_status(conn, q->request_id, rv, rv ? NULL : (const char *)out.data);
  lmz_buf_free(&out);
}

/* ---- the node port: one handler per frame type --------------------------- */

static void on_call(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  lmz_remote_on_call(&d->remote, conn, f);
}

static void on_status(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  on_status_request(d, conn, f->status_request);
}

/* The handlers below are cluster-only: a node without a router ignores the
 * frames (peers of a --dev node do not exist). */
static void on_result(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  lmz_router_on_result(d->router, conn, f);
}

static void on_dir_request(struct lmzd *d, lmz_conn_t *conn,
                           const Lmz__Frame *f) {
  lmz_cluster_on_dir_request(&d->cluster, conn, f);
}

static void on_dir_response(struct lmzd *d, lmz_conn_t *conn,
                            const Lmz__Frame *f) {
  lmz_cluster_on_dir_response(&d->cluster, conn, f);
}

static void on_raft_data(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  lmz_cluster_on_raft_data(&d->cluster, conn, f);
}

static void on_import_request(struct lmzd *d, lmz_conn_t *conn,
                              const Lmz__Frame *f) {
  lmz_drain_on_import_request(d->router, conn, f);
}

static void on_import_response(struct lmzd *d, lmz_conn_t *conn,
                               const Lmz__Frame *f) {
  lmz_drain_on_import_response(d->router, conn, f);
}

static void on_repl_append(struct lmzd *d, lmz_conn_t *conn,
                           const Lmz__Frame *f) {
  lmz_cluster_on_repl_append(&d->cluster, conn, f);
}

static void on_repl_ack(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  lmz_cluster_on_repl_ack(&d->cluster, conn, f);
}

static void on_broadcast(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f) {
  lmz_router_on_broadcast(d->router, conn, f);
}

static void on_broadcast_result(struct lmzd *d, lmz_conn_t *conn,
                                const Lmz__Frame *f) {
  lmz_router_on_broadcast_result(d->router, conn, f);
}

typedef void (*frame_fn)(struct lmzd *d, lmz_conn_t *conn, const Lmz__Frame *f);

struct frame_route {
  frame_fn fn;
  bool cluster; /* needs the cluster and the router */
};

/* Frame type (proto/lmz.proto Frame.body) -> handler. Hello, Ping and Pong
 * never get here (the transport answers them); a type missing from the
 * table, or from a newer peer, is ignored. */
static const struct frame_route frame_routes[] = {
    [LMZ__FRAME__BODY_CALL] = {on_call, false},
    [LMZ__FRAME__BODY_STATUS_REQUEST] = {on_status, false},
    [LMZ__FRAME__BODY_RESULT] = {on_result, true},
    [LMZ__FRAME__BODY_DIR_REQUEST] = {on_dir_request, true},
    [LMZ__FRAME__BODY_DIR_RESPONSE] = {on_dir_response, true},
    [LMZ__FRAME__BODY_RAFT_DATA] = {on_raft_data, true},
    [LMZ__FRAME__BODY_IMPORT_REQUEST] = {on_import_request, true},
    [LMZ__FRAME__BODY_IMPORT_RESPONSE] = {on_import_response, true},
    [LMZ__FRAME__BODY_REPL_APPEND] = {on_repl_append, true},
    [LMZ__FRAME__BODY_REPL_ACK] = {on_repl_ack, true},
    [LMZ__FRAME__BODY_BROADCAST] = {on_broadcast, true},
    [LMZ__FRAME__BODY_BROADCAST_RESULT] = {on_broadcast_result, true},
};

static void on_frame(lmz_conn_t *conn, const Lmz__Frame *f, void *data) {
  struct lmzd *d = data;
  size_t k = (size_t)f->body_case;
  if (k >= sizeof frame_routes / sizeof *frame_routes || !frame_routes[k].fn)
    return;
  if (frame_routes[k].cluster && !d->router)
    return;
  frame_routes[k].fn(d, conn, f);
}

static void on_conn_state(lmz_conn_t *conn, int state, int status, void *data) {
  struct lmzd *d = data;
  if (state == LMZ_CONN_DOWN && conn == d->drain_conn)
    d->drain_conn = NULL;
  if (state == LMZ_CONN_DOWN && conn == d->member_conn)
    d->member_conn = NULL;
  if (d->cluster_up)
    lmz_cluster_on_conn_state(&d->cluster, conn, state, status);
  if (d->router)
    lmz_router_on_conn_state(d->router, conn, state, status);
  lmz_remote_on_conn_state(&d->remote, conn, state, status);
}

/* ---- the store's copies and the directory -------------------------------
 * A node whose store lacks the marker below (a new or wiped disk, or one
 * that crashed before the directory heard of it) tells the directory at
 * registration that the copies it counted on here are gone; the marker is
 * written once the directory knows (cluster.h lost_data). */

#define COPIES_MARKER "copies.registered"

static int copies_key(uint8_t k[LMZ_KEY_MAX]) {
  return lmz_key_node(k, COPIES_MARKER, strlen(COPIES_MARKER));
}

static bool store_has_copies(struct lmzd *d) {
  uint8_t k[LMZ_KEY_MAX];
  int kl = copies_key(k);
  lmz_buf v = LMZ_BUF_INIT;
  int rv = kl < 0 ? kl : lmz_store_get(lmz_node_store(d->node), k, (size_t)kl, &v);
  lmz_buf_free(&v);
  return rv == 0;
}

static void record_copies(void *arg) {
  struct lmzd *d = arg;
  uint8_t k[LMZ_KEY_MAX];
  int kl = copies_key(k);
  lmz_batch *b = kl < 0 ? NULL : lmz_batch_new();
  if (!b || lmz_batch_put(b, k, (size_t)kl, "1", 1) ||
      lmz_store_commit(lmz_node_store(d->node), b, NULL, NULL)) {
    lmz_batch_free(b); /* the next start registers with lost_data again */
    LMZ_LOG_WARN(&log_ns, "could not record the store's registration");
  }
}

/* ---- replication (cluster/repl.h): the node's output gate asks it ------- */

static int repl_ship(void *ctx, const char *binding, const char *instance,
                     const struct lmz_batch *b, bool fresh, uint64_t *token) {
  lmz_repl_t *r = lmz_cluster_repl(ctx);
  *token = 0;
  return r ? lmz_repl_ship(r, binding, instance, b, fresh, token) : 0;
}

static int repl_token_state(void *ctx, uint64_t token) {
  lmz_repl_t *r = lmz_cluster_repl(ctx);
  if (!r)
    return LMZ_ECANCELED;
  return lmz_repl_token_state(r, token); /* lost: LMZ_EUNAVAILABLE */
}

static void repl_local_failure(void *ctx, int status) {
  char why[96];
  snprintf(why, sizeof why, "a replicated write failed on this disk (%s)",
           lmz_strerror(status));
  lmz_cluster_stop_serving(ctx, why);
}

static void repl_progress(void *arg) { lmz_node_repl_progress(arg); }

static int start_replication(struct lmzd *d, char *err) {
  struct lmz_cluster_repl_options o = {
      .max_lag_ms = d->cfg.repl_max_lag_ms,
      .max_lag_bytes = (uint64_t)d->cfg.repl_max_lag_mib << 20,
      .retention_bytes = d->cfg.repl_retention_mib
                             ? (uint64_t)d->cfg.repl_retention_mib << 20
                             : UINT64_MAX,
      .on_progress = repl_progress,
      .progress_arg = d->node};
  int rv = lmz_cluster_repl_start(&d->cluster, lmz_node_store(d->node), &o, err);
  if (rv)
    return rv;
  struct lmz_node_replicator nr = {repl_ship, repl_token_state,
                                   repl_local_failure, &d->cluster};
  lmz_node_set_replicator(d->node, &nr);
  return 0;
}

static int start_node_port(struct lmzd *d, const uint8_t key[32]) {
  lmz_remote_init(&d->remote, d->node); /* cannot fail */
  struct lmz_transport_options o = {.key = key,
                                    .node_id = d->cfg.cluster_id,
                                    .name = d->cfg.node_id,
                                    .listen = d->cfg.listen,
                                    .on_frame = on_frame,
                                    .on_conn_state = on_conn_state,
                                    .data = d,
                                    /* a call or reply of the full frame cap
                                     * (the largest gateway message) fits
                                     * behind the usual 8 MiB of traffic */
                                    .max_frame = LMZ_FRAME_MAX_DEFAULT,
                                    .max_pending_bytes =
                                        LMZ_FRAME_MAX_DEFAULT + (8u << 20)};
  int rv = lmz_transport_init(&d->loop, &d->transport, &o);
  if (rv) {
    fprintf(stderr, "lmzd: cannot listen on %s: %s\n", d->cfg.listen,
            d->transport.errmsg[0] ? d->transport.errmsg : lmz_strerror(rv));
    return 1;
  }
  d->transport_up = true;
  /* the bound port, for scripts and tests that asked for port 0 */
  char path[4096];
  snprintf(path, sizeof path, "%s/node.port", d->cfg.data_dir);
  FILE *f = fopen(path, "w");
  if (f) {
    fprintf(f, "%d\n", lmz_transport_port(&d->transport));
    fclose(f);
  }
  return 0;
}

/* The Raft address: configured, or the node port + 100 on the same host, or
 * (node port 0, as tests use) the bound node port when Raft rides the node
 * transport (the address is an identifier then), or, for raft_tcp, a free
 * port chosen now. */
static const char *raft_address(struct lmzd *d, char *buf, size_t len) {
  if (d->cfg.raft)
    return d->cfg.raft;
  struct sockaddr_storage ss;
  if (lmz__transport_parse_addr(d->cfg.listen, &ss) || ss.ss_family != AF_INET)
    return NULL;
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  char host[INET_ADDRSTRLEN];
  uv_ip4_name(sin, host, sizeof host);
  int port = ntohs(sin->sin_port);
  if (port) {
    snprintf(buf, len, "%s:%d", host, port + 100);
    return buf;
  }
  if (!d->cfg.raft_tcp) { /* no port of raft's own: no probe, no race */
    snprintf(buf, len, "%s:%d", host, lmz_transport_port(&d->transport));
    return buf;
  }
  uv_tcp_t probe; /* bind port 0, read the port, close: free right now */
  struct sockaddr_in any;
  uv_ip4_addr(host, 0, &any);
  int namelen = sizeof any;
  uv_tcp_init(&d->loop, &probe);
  if (uv_tcp_bind(&probe, (struct sockaddr *)&any, 0) ||
      uv_tcp_getsockname(&probe, (struct sockaddr *)&any, &namelen))
    port = 0;
  else
    port = ntohs(any.sin_port);
  uv_close((uv_handle_t *)&probe, NULL);
  uv_run(&d->loop, UV_RUN_NOWAIT);
  if (!port)
    return NULL;
  snprintf(buf, len, "%s:%d", host, port);
  return buf;
}

static int start_router(struct lmzd *d) {
  char raft_buf[64], raft_dir[4096], err[LMZ_ERRMSG_LEN] = "";
  char node_addr[64];
  const char *raft = raft_address(d, raft_buf, sizeof raft_buf);
  if (!raft) {
    fprintf(stderr, "lmzd: cannot derive a Raft address from %s; use --raft "
                    "or cluster.raft (IPv4 a.b.c.d:port)\n", d->cfg.listen);
    return 2;
  }
  /* peers dial the bound node port */
  snprintf(node_addr, sizeof node_addr, "%.*s:%d",
           (int)(strrchr(d->cfg.listen, ':') - d->cfg.listen), d->cfg.listen,
           lmz_transport_port(&d->transport));
  snprintf(raft_dir, sizeof raft_dir, "%s/raft", d->cfg.data_dir);
  struct lmz_cluster_peer peers[64];
  size_t n = 0;
  for (size_t i = 0; i < d->cfg.n_voters && n < 64; i++)
    peers[n++] = (struct lmz_cluster_peer){d->cfg.voters[i].id, d->cfg.voters[i].node,
                                           d->cfg.voters[i].raft};
  struct lmz_cluster_options o = {.node_id = d->cfg.cluster_id,
                                  .node_address = node_addr,
                                  .raft_address = raft,
                                  .raft_dir = raft_dir,
                                  .voters = peers,
                                  .n_voters = n,
                                  .lease_ms = d->cfg.lease_ms,
                                  .join = d->cfg.join,
                                  .raft_tcp = d->cfg.raft_tcp,
                                  .replication_factor = d->cfg.repl_factor,
                                  .lost_data = !store_has_copies(d),
                                  .lost_data_told = record_copies,
                                  .lost_data_arg = d};
  if (lmz_cluster_init(&d->loop, &d->cluster, &d->transport, &o, err)) {
    fprintf(stderr, "lmzd: cluster: %s\n", err);
    return 1;
  }
  d->cluster_up = true;
  struct lmz_router_opts ro = {0};
  if (lmz_router_init(&d->router_mem, d->node, &d->cluster, &ro, err)) {
    fprintf(stderr, "lmzd: cluster: %s\n", err);
    return 1;
  }
  d->router = &d->router_mem;
  lmz_remote_set_router(&d->remote, d->router);
  if (start_replication(d, err)) {
    fprintf(stderr, "lmzd: cluster: %s\n", err);
    return 1;
  }
  LMZ_LOG_INFO(&log_ns, "cluster node %llu, raft %s, %zu initial voter(s)",
               (unsigned long long)d->cfg.cluster_id, raft, n ? n : 1);
  return 0;
}

/* ---- the HTTP port (gateway/gateway.h) ---------------------------------- */

/* --dev serves the editor page and the JavaScript client it imports
 * (mounted at /lmz-client): next to an installed lmzd
 * (<prefix>/share/lmz/{editor,client}), from a build directory inside the
 * source tree (build/bin/lmzd), from the current directory (the repo
 * root), or from the source tree this binary was built from. `what` is the source-tree folder ("examples/editor/web"). */
static const char *dev_dir(lmz_arena *a, const char *what, const char *installed) {
  char exe[4096], path[4200];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(exe, '/');
  if (slash)
    *slash = '\0';
  const char *cands[][3] = {{exe, "/../share/lmz/", installed},
                            {exe, "/../../", what},
                            {"", "", what},
                            {LMZ_SOURCE_TREE, "/", what}}; /* the build's source */
  for (size_t i = 0; i < sizeof cands / sizeof *cands; i++) {
    snprintf(path, sizeof path, "%s%s%s", cands[i][0], cands[i][1], cands[i][2]);
    struct stat st;
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
      return lmz_arena_strndup(a, path, strlen(path));
  }
  LMZ_LOG_WARN(&log_ns, "--dev: %s not found, so it is not served (see --static)", what);
  return NULL;
}

/* "host:port" / "[v6]:port" -> host (in the arena) and port. */
static int split_addr(lmz_arena *a, const char *s, const char **host, int *port) {
  const char *colon = strrchr(s, ':');
  char *end;
  long p = colon ? strtol(colon + 1, &end, 10) : -1;
  if (!colon || *end || p < 0 || p > 65535)
    return -1;
  const char *h = s;
  size_t hl = (size_t)(colon - s);
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
    h++, hl -= 2;
  *host = lmz_arena_strndup(a, h, hl);
  *port = (int)p;
  return *host ? 0 : -1;
}

static int start_gateway(struct lmzd *d) {
  const struct lmzd_gateway *g = &d->cfg.gw;
  struct lmz_gateway_key *keys = lmz_arena_alloc(d->arena, (g->n_keys + 1) * sizeof *keys);
  for (size_t i = 0; keys && i < g->n_keys; i++)
    keys[i] = (struct lmz_gateway_key){g->keys[i].kid, g->keys[i].text};
  struct lmz_gateway_opts o = {.route_prefix = g->route_prefix,
                               .static_dir = g->static_dir,
                               .cors_origins = g->cors, .n_cors_origins = g->n_cors,
                               .grace_ms = g->grace_ms,
                               .client_call_timeout_ms = g->call_timeout_ms,
                               .max_message = g->max_message,
                               .iss = g->iss, .aud = g->aud,
                               .public_keys = keys, .n_public_keys = g->n_keys,
                               .dev_key_dir = d->cfg.dev || g->dev_keys ? d->cfg.data_dir : NULL,
                               .dev = d->cfg.dev,
                               .public_bindings = g->public_bindings,
                               .n_public_bindings = g->n_public,
                               .http_rate = {g->http_per_minute, g->http_burst, 0},
                               .ws_rate = {g->ws_per_minute, g->ws_burst, 0}};
  if (d->auth) { /* its prefix is routed; tokens it signs are accepted */
    o.auth_prefix = lmz_auth_prefix(d->auth);
    if (d->cfg.auth.n_private_keys) /* else they are the dev keys, loaded anyway */
      o.keyset = lmz_auth_keyset(d->auth);
    o.auth_max_body = LMZ_AUTH_MAX_BODY;
    if (d->cfg.auth.bot_secret && d->cfg.auth.test_mode)
      LMZ_LOG_WARN(&log_ns, "auth.test_mode: the bot check is off");
    else
      o.bot_check = (struct lmz_gateway_bot_check){d->cfg.auth.bot_secret,
                                                   d->cfg.auth.bot_endpoint,
                                                   d->cfg.auth.bot_timeout_ms};
  }
  if (d->cfg.dev && !o.static_dir)
    o.static_dir = dev_dir(d->arena, "examples/editor/web", "editor");
  if (d->cfg.dev && (o.static_mount_dir = dev_dir(d->arena, "clients/js/src", "client")))
    o.static_mount_prefix = "/lmz-client";
  char err[LMZ_ERRMSG_LEN] = "";
  if (!keys || split_addr(d->arena, d->cfg.http, &o.host, &o.port)) {
    fprintf(stderr, "lmzd: bad HTTP address '%s' (HOST:PORT)\n", d->cfg.http);
    return 2;
  }
  if (lmz_gateway_init(&d->loop, &d->gateway_mem, d->node, &o, err)) {
    fprintf(stderr, "lmzd: %s\n", err);
    return 1;
  }
  d->gateway = &d->gateway_mem;
  if (d->auth) { /* links fall back to this node's own address */
    char origin[300];
    bool any = !strcmp(o.host, "0.0.0.0") || !strcmp(o.host, "::");
    snprintf(origin, sizeof origin, strchr(o.host, ':') && !any ? "http://[%s]:%d" : "http://%s:%d",
             any ? "127.0.0.1" : o.host, lmz_gateway_port(d->gateway));
    lmz_auth_set_origin(d->auth, origin);
  }
  if (d->cfg.dev)
    LMZ_LOG_WARN(&log_ns, "--dev: GET /_lmz/dev-token hands out signed tokens to "
                          "anyone who can reach %s; never expose it", d->cfg.http);
  char path[4096];
  snprintf(path, sizeof path, "%s/http.port", d->cfg.data_dir);
  FILE *f = fopen(path, "w");
  if (f) {
    fprintf(f, "%d\n", lmz_gateway_port(d->gateway));
    fclose(f);
  }
  return 0;
}

/* ---- shutdown ------------------------------------------------------------ */

static void node_closed(lmz_node_t *n, void *arg) {
  (void)n;
  struct lmzd *d = arg;
  if (d->signals_up) {
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
  }
}

static void transport_closed(lmz_transport_t *t) {
  struct lmzd *d = t->data;
  lmz_node_close(d->node, node_closed, d);
}

static void close_transport_or_node(struct lmzd *d) {
  if (d->transport_up) {
    d->transport.data = d;
    lmz_transport_close(&d->transport, transport_closed);
  } else {
    lmz_node_close(d->node, node_closed, d);
  }
}

static void cluster_closed(lmz_cluster_t *c) {
  close_transport_or_node(c->data);
}

/* The router first (parked and forwarded calls fail, a drain stops), then
 * the cluster (directory requests cancelled, Raft closed). */
static void router_closed(lmz_router_t *r, void *arg) {
  (void)r;
  struct lmzd *d = arg;
  d->cluster.data = d;
  lmz_cluster_close(&d->cluster, cluster_closed);
}

/* After the HTTP port: the cluster side, then the node. */
static void stop_rest(struct lmzd *d) {
  lmz_node_set_replicator(d->node, NULL); /* turns waiting for backups fail */
  if (d->router) {
    lmz_router_close(d->router, router_closed, d);
  } else if (d->transport_up) {
    d->transport.data = d;
    lmz_transport_close(&d->transport, transport_closed);
  } else {
    lmz_node_close(d->node, node_closed, d);
  }
}

static void gateway_closed(lmz_gateway_t *gw, void *arg) {
  (void)gw;
  struct lmzd *d = arg;
  if (d->auth) /* its mail sender; turns still finishing log "not sent" */
    lmz_auth_close(d->auth, NULL, NULL);
  stop_rest(arg);
}

static void on_signal(uv_signal_t *s, int signum) {
  struct lmzd *d = s->data;
  if (d->stopping)
    return;
  d->stopping = true;
  LMZ_LOG_INFO(&log_ns, "%s: finishing queued turns and flushing storage",
               signum == SIGINT ? "SIGINT" : "SIGTERM");
  if (d->gateway) /* clients first: no new calls while the node drains */
    lmz_gateway_close(d->gateway, gateway_closed, d);
  else
    stop_rest(d);
}

/* A start that failed half way: what was started closes in the stop's
 * order (gateway, the auth service's mail sender, router, cluster,
 * transport, node) and the loop runs until it is empty, so nothing is
 * left on it (uv_loop_close clean) and no send is abandoned mid-way. */
static void abort_start(struct lmzd *d) {
  d->stopping = true;
  if (d->gateway) {
    lmz_gateway_close(d->gateway, gateway_closed, d);
  } else {
    if (d->auth)
      lmz_auth_close(d->auth, NULL, NULL);
    if (d->node)
      stop_rest(d);
  }
  uv_run(&d->loop, UV_RUN_DEFAULT);
}

static int run(struct lmzd *d) {
  uint8_t key[32];
  if (make_dirs(d->cfg.data_dir)) {
    fprintf(stderr, "lmzd: cannot create data directory %s: %s\n",
            d->cfg.data_dir, strerror(errno));
    return 1;
  }
  int rv = cluster_key(d, key);
  if (!rv)
    rv = start_node(d);
  if (!rv)
    rv = start_node_port(d, key);
  if (!rv)
    rv = start_router(d);
  if (!rv) /* last: client calls must go through the router */
    rv = start_gateway(d);
  sodium_memzero(key, sizeof key);
  if (rv) {
    abort_start(d);
    return rv;
  }
  uv_signal_init(&d->loop, &d->sigint);
  uv_signal_init(&d->loop, &d->sigterm);
  d->signals_up = true;
  d->sigint.data = d->sigterm.data = d;
  uv_signal_start(&d->sigint, on_signal, SIGINT);
  uv_signal_start(&d->sigterm, on_signal, SIGTERM);
  LMZ_LOG_INFO(&log_ns, "lmzd %s node %s ready: node port %s (bound %d), "
               "http %s (bound %d), data %s%s", lmz_version_string(),
               d->cfg.node_id, d->cfg.listen, lmz_transport_port(&d->transport),
               d->cfg.http, lmz_gateway_port(d->gateway), d->cfg.data_dir,
               d->cfg.dev ? " (dev)" : "");
  uv_run(&d->loop, UV_RUN_DEFAULT);
  LMZ_LOG_INFO(&log_ns, "stopped cleanly");
  return 0;
}

int main(int argc, char **argv) {
  struct lmzd_args args = {0};
  int rv = parse_args(argc, argv, &args);
  if (rv >= 0)
    return rv;
  if (sodium_init() < 0) {
    fprintf(stderr, "lmzd: libsodium failed to initialize\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  lmz_log_configure(NULL, NULL, NULL);
  static struct lmzd d;
  if (!(d.arena = lmz_arena_new()) || uv_loop_init(&d.loop))
    return 1;
  rv = load_config(&d, &args);
  if (!rv)
    rv = run(&d);
  if (d.node)
    lmz_node_release(d.node);
  lmz_remote_close(&d.remote);
  lmz_router_release(d.router);
  lmz_gateway_release(d.gateway); /* after the node: it may call the gateway */
  lmz_auth_release(d.auth);    /* after the node too: its class data */
  if (uv_loop_close(&d.loop)) /* a close path forgot something: say so */
    fprintf(stderr, "lmzd: handles left open on the loop at exit\n");
  lmz_arena_free(d.arena);
  return rv;
}
