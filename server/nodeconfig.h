/* server/nodeconfig.h - lmzd's configuration: a JSON-with-comments file
 * shaped like the wrangler config users know, plus a `node` section.
 *
 *   {
 *     "node": { "id": "node-1", "data": "./lmz-data",
 *               "listen": "127.0.0.1:7100", "http": "127.0.0.1:8787" },
 *     "modules": ["build/lib/libcounter.so"],     // relative to this file
 *     "durable_objects": { "bindings": [ { "name": "COUNTER_DO",
 *                                          "class_name": "CounterDO" } ] },
 *     "services": [ { "binding": "ECHO_WORKER", "entrypoint": "EchoWorker" } ],
 *     "vars": { "GREETING": "hello" },
 *     "storage": { "sync": true },
 *     "actors": { "idle_evict_ms": 60000 },
 *     "sql": { "max_db_bytes": 10000000000, "cache_kib": 1024 },
 *     "limits": { "mailbox_max": 100000,          // calls queued per actor
 *                 "pending_calls_max": 200000 },  // calls unanswered per node
 *     "fetch": { "allow": ["api.example.com", "*.svc.example"], // lmz_fetch
 *                "timeout_ms": 10000, "max_response_bytes": 1048576,
 *                "max_request_bytes": 1048576, "max_redirects": 5,
 *                "max_inflight": 1024 },        // requests at once, per node
 *     "log": { "level": "info", "debug": "lmz.cluster.*" },
 *     "cluster": { "id": 1, "raft": "10.0.0.1:7201", "lease_ms": 3000,
 *                  "join": false,   // true for a node added by `lmz node add`
 *                  "replication": { "factor": 3,      // copies, 1..5
 *                                   "max_lag_ms": 2000, "max_lag_mib": 64,
 *                                   "retention_mib": 64 },
 *                  "voters": [ { "id": 1, "node": "10.0.0.1:7101",
 *                                "raft": "10.0.0.1:7201" }, ... ] },
 *     "gateway": { "static": "web",            // relative to this file
 *                  "route_prefix": "/api", "cors_origins": ["https://a.b"],
 *                  "grace_period_ms": 5000, "client_call_timeout_ms": 30000,
 *                  "max_message_bytes": 33554432,  // 1024..67108864
 *                  // actor routes reachable WITHOUT a token (none by
 *                  // default; each must be a durable_objects binding)
 *                  "public_bindings": ["WEBHOOK_DO"],
 *                  // per-subject token buckets (off unless set):
 *                  // authenticated actor requests and WebSocket upgrades
 *                  "rate_limits": { "http": { "per_minute": 600, "burst": 100 },
 *                                   "connections": { "per_minute": 60,
 *                                                    "burst": 20 } },
 *                  "jwt": { "issuer": "https://lumenize.local",
 *                           "audience": "https://lumenize.local",
 *                           "public_keys": { "BLUE": "<PEM or base64url>" },
 *                           "dev_keys": false } },  // DATA/jwt-keys.json
 *     "auth": { "prefix": "/auth", ... }   // auth/auth.h, README "Logging in"
 *   }
 *
 * Keys wrangler uses that lmz does not (name, main, compatibility_date,
 * migrations, ...) are accepted and ignored. Wrong types, duplicate
 * bindings and missing fields are errors "FILE:LINE:COL: problem"; unknown
 * classes are reported when the modules are loaded (lmzd). */
#ifndef LMZ_SERVER_NODECONFIG_H
#define LMZ_SERVER_NODECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "core/config.h"
#include "lmz/lmz.h"
#include "lmz/sql.h"
#include "net/fetch.h"

struct lmzd_binding {
  const char *name;
  const char *class_name;
  lmz_node_type kind;
  const lmz_json *where; /* for error messages */
};

struct lmzd_voter {
  uint64_t id;
  const char *node; /* node port address */
  const char *raft; /* Raft address */
};

struct lmzd_var {
  const char *name, *value;
};

struct lmzd_key {
  const char *kid, *text; /* a public key: PEM or 43 base64url chars */
};

/* The HTTP port's client gateway (gateway/gateway.h); 0/NULL = defaults. */
struct lmzd_gateway {
  const char *static_dir;   /* served at /; --dev: the editor page */
  const char *route_prefix; /* actor routes; NULL = "/api" */
  const char **cors;        /* CORS allow-list (exact origins) */
  size_t n_cors;
  uint32_t grace_ms, call_timeout_ms;
  size_t max_message; /* gateway.max_message_bytes; 0 = 32 MiB */
  const char *iss, *aud;
  struct lmzd_key *keys;
  size_t n_keys;
  bool dev_keys; /* trust DATA/jwt-keys.json (always on in --dev) */
  const char **public_bindings; /* gateway.public_bindings */
  size_t n_public;
  /* gateway.rate_limits.{http,connections}: per subject; 0 = off */
  uint32_t http_per_minute, http_burst;
  uint32_t ws_per_minute, ws_burst;
};

struct lmzd_config {
  lmz_config file;       /* name = path ("<dev>" for the embedded one) */
  const char *base_dir;  /* directory modules are relative to */
  const char *node_id;
  const char *data_dir;
  const char *listen;    /* node port "ip:port" */
  const char *http;      /* HTTP/WebSocket "ip:port" */
  const char **modules;  /* absolute or base_dir-relative paths */
  size_t n_modules;
  struct lmzd_binding *bindings;
  size_t n_bindings;
  struct lmzd_var *vars;
  size_t n_vars;
  bool sync;
  uint64_t idle_evict_ms;
  struct lmz_sql_opts sql; /* "sql": {max_sql_bytes, max_params,
                              max_value_bytes, max_db_bytes, cache_kib,
                              node_cache_bytes}; 0 = default (lmz/sql.h) */
  const char *log_level, *log_debug;
  bool dev;
  /* cluster (optional section; without it: a one-node cluster) */
  uint64_t cluster_id;   /* this node's numeric id (default 1) */
  const char *raft;      /* Raft address; NULL = derived from `listen` */
  uint32_t lease_ms;     /* 0 = default */
  bool join;             /* a node added at run time: never bootstrap */
  bool raft_tcp;         /* cluster.raft_transport = "tcp" (default "node") */
  /* cluster.replication (DESIGN.md 4.1): copies of each durable object
   * (capped by the live nodes; --dev: 1); 0 = the repl.h defaults */
  uint32_t repl_factor;
  uint32_t repl_max_lag_ms;
  uint32_t repl_max_lag_mib;
  /* cluster.replication.retention_mib: records a closed stream keeps for
   * its backup's return (catch-up, cluster/repl.h); 0 = none */
  uint32_t repl_retention_mib;
  struct lmzd_voter *voters;
  size_t n_voters;
  struct lmzd_gateway gw;
  /* limits (actor/node.h): past them a call fails with MeshOverloadedError;
   * 0 = the node's default */
  uint32_t mailbox_max;       /* limits.mailbox_max */
  uint32_t pending_calls_max; /* limits.pending_calls_max */
  /* "fetch": outbound HTTP for lmz_fetch (net/fetch.h). Off by default: an
   * empty fetch.allow reaches no host. Strings live in the config arena. */
  struct lmz_net_opts fetch;
  /* "auth": the auth service (auth/auth.h documents the block); --dev
   * enables it with the dev mail outbox */
  struct lmz_auth_config auth;
};

#define LMZD_DEFAULT_REPL_FACTOR 3

/* Loads and validates `path`; everything is allocated in `a`. Returns 0 or
 * an error with errmsg ("FILE:LINE:COL: problem"). */
int lmzd_config_load(lmz_arena *a, const char *path, struct lmzd_config *c,
                     char *errmsg);
/* The embedded --dev configuration: the example applications from
 * `lib_dir` (where libcounter.so and libeditor.so are built). */
int lmzd_config_dev(lmz_arena *a, const char *lib_dir, struct lmzd_config *c,
                    char *errmsg);

#endif
