/* gateway/gateway.c - the gateway object: init (keys, HTTP server, the
 * LumenizeClientGateway class), request dispatch, /_lmz/status, /metrics,
 * the dev token, close.
 *
 * Happy path: lmz_gateway_init copies the options, builds the key set
 * (given keys, dev keys, configured public keys), resolves the static
 * folder, binds the HTTP port, registers and binds the raw class, and only
 * then puts the port and the deadline timer on the loop: everything that
 * can fail comes before the node's binding (which cannot be undone) and
 * nothing that needs a loop iteration to undo comes before it, so a failed
 * init unwinds synchronously. Each request goes: built-in endpoints ->
 * routes.c (gateway, actors) -> static.c -> 404.
 * Failure modes:
 *  1. bad options (empty binding, unknown static folder, unreadable keys,
 *     a binding already taken): init fails with errmsg, nothing to close;
 *  2. the HTTP port cannot be bound, or the class is taken: init fails
 *     (errmsg names it), the bound socket is closed, nothing is on the loop;
 *  3. the dev token without a signing key: 500 (and it is 404 unless dev);
 *  4. close: sockets get 1001, relayed and held mesh calls fail with
 *     ClientDisconnectedError, pending HTTP answers are dropped, static
 *     reads finish; then the close callback. What the gateway holds stays
 *     until lmz_gateway_release (the node may still call the class). */
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "actor/router.h"
#include "gateway/gw_int.h"
#include "gateway/keys.h"

/* ---- pending HTTP answers ------------------------------------------------ */

struct gw_pending_http *lmz__gw_pending_new(lmz_gateway_t *gw,
                                            lmz_http_conn_t *conn) {
  struct gw_pending_http *p = calloc(1, sizeof *p);
  if (!p)
    return NULL;
  p->gw = gw;
  p->conn = conn;
  lmz_http_conn_set_data(conn, p);
  return p;
}

void lmz__gw_pending_done(struct gw_pending_http *p) {
  if (p->conn)
    lmz_http_conn_set_data(p->conn, NULL);
  free(p);
}

static void on_conn_close(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                          bool had_pending) {
  (void)srv, (void)had_pending;
  struct gw_pending_http *p = lmz_http_conn_data(conn);
  if (p)
    p->conn = NULL; /* the answer, when it comes, is dropped */
}

/* ---- /_lmz/status and /metrics ------------------------------------------- */

static int status_json(lmz_gateway_t *gw, lmz_buf *b) {
  struct lmz_node_stats ns;
  struct lmz_http_metrics hm;
  const struct lmz_gateway_stats *g = &gw->stats;
  lmz_node_get_stats(gw->node, &ns);
  lmz_http_server_metrics(&gw->http, &hm);
  int rv = lmz_buf_append_str(b, "{\"node\":");
  if (!rv)
    rv = lmz_json_write_string(b, lmz_node_get_id(gw->node),
                               strlen(lmz_node_get_id(gw->node)));
  if (!rv)
    rv = lmz_buf_printf(b,
        ",\"uptime_ms\":%llu,\"started_at_ms\":%.0f,"
        "\"actors\":{\"active\":%llu,\"activations\":%llu,\"evictions\":%llu},"
        "\"calls\":{\"in\":%llu,\"local\":%llu,\"queued\":%llu},"
        "\"turns\":{\"run\":%llu,\"failed\":%llu},\"commits\":%llu,\"alarms_fired\":%llu,"
        "\"gateway\":{\"binding\":\"%s\",\"clients\":%llu,\"sockets\":%llu,"
        "\"accepted\":%llu,\"rejected\":%llu,\"client_calls\":%llu,"
        "\"incoming_calls\":%llu,\"incoming_timeouts\":%llu},"
        "\"http\":{\"connections\":%llu,\"requests\":%llu,\"routed\":%llu}}",
        (unsigned long long)(uv_now(gw->loop) - gw->started_ms), gw->started_wall_ms,
        (unsigned long long)ns.active_actors, (unsigned long long)ns.activations,
        (unsigned long long)ns.evictions, (unsigned long long)ns.calls_in,
        (unsigned long long)ns.calls_local, (unsigned long long)ns.queued_msgs,
        (unsigned long long)ns.turns, (unsigned long long)ns.turns_failed,
        (unsigned long long)ns.commits, (unsigned long long)ns.alarms_fired,
        gw->binding, (unsigned long long)g->clients,
        (unsigned long long)g->sockets_open, (unsigned long long)g->accepted,
        (unsigned long long)g->rejected, (unsigned long long)g->client_calls,
        (unsigned long long)g->incoming_calls, (unsigned long long)g->incoming_timeouts,
        (unsigned long long)hm.conns_open, (unsigned long long)hm.requests,
        (unsigned long long)g->http_routed);
  struct lmz_router_s *r = lmz_node_router(gw->node);
  if (!rv && r) { /* the cluster's view: nodes, leader, term, leases */
    b->len--; /* reopen the object: replace its closing brace */
    rv = lmz_buf_append_str(b, ",\"cluster\":");
    if (!rv)
      rv = lmz_router_status_json(r, b);
    if (!rv)
      rv = lmz_buf_putc(b, '}');
  }
  return rv;
}

struct metric {
  const char *name, *type, *help;
  uint64_t value;
};

static int metrics_text(lmz_gateway_t *gw, lmz_buf *b) {
  struct lmz_router_stats rs = {0};
  if (lmz_node_router(gw->node))
    lmz_router_get_stats(lmz_node_router(gw->node), &rs);
  struct lmz_node_stats ns;
  struct lmz_http_metrics hm;
  const struct lmz_gateway_stats *g = &gw->stats;
  lmz_node_get_stats(gw->node, &ns);
  lmz_http_server_metrics(&gw->http, &hm);
  const struct metric m[] = {
      {"lmz_calls_in_total", "counter", "Calls entering the node", ns.calls_in},
      {"lmz_calls_local_total", "counter", "Calls between local actors", ns.calls_local},
      {"lmz_turns_total", "counter", "Turns run", ns.turns},
      {"lmz_turns_failed_total", "counter", "Turns that threw", ns.turns_failed},
      {"lmz_activations_total", "counter", "Actor activations", ns.activations},
      {"lmz_evictions_total", "counter", "Idle actors evicted", ns.evictions},
      {"lmz_stale_copies_dropped_total", "counter", "Outdated actor copies dropped by fresh placements (as owner or backup)", ns.stale_copies_dropped + rs.repl_stale_dropped},
      {"lmz_commits_total", "counter", "Turn batches committed", ns.commits},
      {"lmz_alarms_fired_total", "counter", "Alarms run", ns.alarms_fired},
      {"lmz_actors_active", "gauge", "Active actors", ns.active_actors},
      {"lmz_queued_messages", "gauge", "Messages in mailboxes", ns.queued_msgs},
      {"lmz_calls_pending", "gauge", "Calls accepted and not answered", ns.calls_pending},
      {"lmz_overloaded_mailbox_total", "counter", "Calls refused MeshOverloadedError: mailbox_max", ns.overloaded_mailbox},
      {"lmz_overloaded_pending_total", "counter", "Calls refused MeshOverloadedError: pending_calls_max", ns.overloaded_node},
      {"lmz_sql_rows_read_total", "counter", "Rows read by SQL statements", ns.sql_rows_read},
      {"lmz_sql_rows_written_total", "counter", "Rows written by SQL statements", ns.sql_rows_written},
      {"lmz_sql_database_bytes", "gauge", "Size of the open SQL databases", ns.sql_db_bytes},
      {"lmz_sql_databases_open", "gauge", "Actors with an open SQL database", ns.sql_open_dbs},
      {"lmz_ws_overload_closes_total", "counter", "Sockets closed 1008: outbound queue full", hm.ws_overload_closes},
      {"lmz_gateway_clients", "gauge", "Client instances with state", g->clients},
      {"lmz_gateway_sockets_open", "gauge", "Client sockets open", g->sockets_open},
      {"lmz_gateway_accepted_total", "counter", "Client sockets accepted", g->accepted},
      {"lmz_gateway_rejected_total", "counter", "Upgrades refused", g->rejected},
      {"lmz_gateway_superseded_total", "counter", "Sockets closed 4409", g->superseded},
      {"lmz_gateway_token_expired_total", "counter", "Sockets closed 4401", g->expired_closes},
      {"lmz_gateway_frames_in_total", "counter", "Client frames", g->frames_in},
      {"lmz_gateway_frames_ignored_total", "counter", "Client frames ignored", g->frames_ignored},
      {"lmz_gateway_client_calls_total", "counter", "Client calls into the mesh", g->client_calls},
      {"lmz_gateway_client_calls_failed_total", "counter", "Client calls failed", g->client_calls_failed},
      {"lmz_gateway_client_replies_dropped_total", "counter", "Answers for gone sockets", g->client_replies_dropped},
      {"lmz_gateway_incoming_calls_total", "counter", "Mesh calls to clients", g->incoming_calls},
      {"lmz_gateway_incoming_failed_total", "counter", "Mesh calls to clients failed", g->incoming_failed},
      {"lmz_gateway_incoming_timeouts_total", "counter", "Client call timeouts", g->incoming_timeouts},
      {"lmz_gateway_not_connected_total", "counter", "Calls to absent clients", g->not_connected},
      {"lmz_gateway_grace_expired_total", "counter", "Grace periods ended", g->grace_expired},
      {"lmz_gateway_http_unauthorized_total", "counter", "Actor requests refused 401 (no or bad token)", g->http_unauthorized},
      {"lmz_gateway_http_forbidden_total", "counter", "Actor requests refused 403 (access gate)", g->http_forbidden},
      {"lmz_gateway_http_rate_limited_total", "counter", "Actor requests refused 429 (per-subject limit)", g->http_rate_limited},
      {"lmz_gateway_http_public_total", "counter", "Actor requests to public bindings", g->http_public},
      {"lmz_gateway_ws_rate_limited_total", "counter", "Upgrades refused 429 (per-subject limit)", g->ws_rate_limited},
      {"lmz_http_connections_open", "gauge", "HTTP connections open", hm.conns_open},
      {"lmz_http_requests_total", "counter", "HTTP requests", hm.requests},
      {"lmz_http_responses_4xx_total", "counter", "HTTP 4xx answers", hm.responses_4xx},
      {"lmz_http_responses_5xx_total", "counter", "HTTP 5xx answers", hm.responses_5xx},
      {"lmz_http_bytes_in_total", "counter", "Bytes received", hm.bytes_in},
      {"lmz_http_bytes_out_total", "counter", "Bytes sent", hm.bytes_out},
      {"lmz_ws_messages_in_total", "counter", "WebSocket messages received", hm.ws_msgs_in},
      {"lmz_ws_messages_out_total", "counter", "WebSocket messages sent", hm.ws_msgs_out},
      {"lmz_cluster_forwarded_total", "counter", "Calls forwarded to their owner", rs.forwarded},
      {"lmz_cluster_forwarded_in_total", "counter", "Forwarded calls run here", rs.forwarded_in},
      {"lmz_cluster_moved_total", "counter", "MOVED answers seen", rs.moved},
      {"lmz_broadcast_frames_out_total", "counter", "Broadcast frames sent to owner nodes", rs.bcast_frames_out},
      {"lmz_broadcast_targets_out_total", "counter", "Broadcast targets sent in frames", rs.bcast_targets_out},
      {"lmz_broadcast_moved_total", "counter", "Broadcast targets answered MOVED, routed again", rs.bcast_moved},
      {"lmz_broadcast_frames_in_total", "counter", "Broadcast frames received", rs.bcast_frames_in},
      {"lmz_broadcast_targets_in_total", "counter", "Broadcast targets received", rs.bcast_targets_in},
      {"lmz_broadcast_refused_total", "counter", "Broadcast targets refused here (not owned)", rs.bcast_refused},
      {"lmz_cluster_claims_total", "counter", "Claims made", rs.claims},
      {"lmz_cluster_claims_remote_total", "counter", "Claims sent to the leader", rs.claims_remote},
      {"lmz_cluster_unavailable_total", "counter", "Calls failed ActorUnavailable", rs.unavailable},
      {"lmz_cluster_parked", "gauge", "Calls waiting for the directory", rs.parked_now},
      {"lmz_cluster_activation_gated_total", "counter", "Calls parked for their new placement's activation mark", rs.gated},
      {"lmz_cluster_forwards_pending", "gauge", "Forwarded calls awaiting a result", rs.forwards_pending},
      {"lmz_cluster_lease_valid", "gauge", "1 while this node holds a lease", rs.lease_valid},
      {"lmz_cluster_lease_remaining_ms", "gauge", "Lease left", rs.lease_remaining_ms},
      {"lmz_raft_leader_id", "gauge", "Known Raft leader (0 = none)", rs.leader_id},
      {"lmz_raft_term", "gauge", "Raft term", rs.term},
      {"lmz_raft_role", "gauge", "Raft role (1 follower, 2 candidate, 3 leader)", (uint64_t)rs.role},
      {"lmz_repl_under_replicated", "gauge", "Actors with fewer backups than wanted (whole cluster)", rs.repl_under_replicated},
      {"lmz_repl_shipped_total", "counter", "Turn batches shipped to backups", rs.repl_shipped},
      {"lmz_repl_pending", "gauge", "Shipped batches not yet acknowledged", rs.repl_pending},
      {"lmz_repl_pair_outs_total", "counter", "Backups dropped from in-sync sets", rs.repl_pair_outs},
      {"lmz_repl_fills_total", "counter", "Backups refilled", rs.repl_fills},
      {"lmz_repl_applied_records_total", "counter", "Records applied as a backup", rs.repl_applied},
      {"lmz_repl_refused_total", "counter", "Stream frames refused as a backup", rs.repl_refused},
      {"lmz_repl_streams_in_sync", "gauge", "Streams to backups in sync", rs.repl_in_sync},
      {"lmz_repl_streams_out_of_sync", "gauge", "Streams to backups closed", rs.repl_out_of_sync},
      {"lmz_repl_max_lag_ms", "gauge", "Oldest unacknowledged record, worst stream", rs.repl_max_lag_ms},
      {"lmz_repl_lag_bytes", "gauge", "Unacknowledged bytes, all streams", rs.repl_lag_bytes},
  };
  const char *node = lmz_node_get_id(gw->node);
  int rv = 0;
  for (size_t i = 0; !rv && i < LMZ_ARRAY_SIZE(m); i++)
    rv = lmz_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s{node=\"%s\"} %llu\n",
                        m[i].name, m[i].help, m[i].name, m[i].type, m[i].name,
                        node, (unsigned long long)m[i].value);
  return rv;
}

/* ---- the dev token ------------------------------------------------------- */

static void dev_token(lmz_gateway_t *gw, lmz_http_conn_t *conn) {
  uint8_t r[6];
  char sub[32];
  randombytes_buf(r, sizeof r);
  snprintf(sub, sizeof sub, "dev-%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2],
           r[3], r[4], r[5]);
  struct lmz_jwt_claims_opts co = {.iss = gw->iss, .aud = gw->aud, .sub = sub,
                                   .now_s = (int64_t)(lmz_node_now_ms(gw->node) / 1000.0),
                                   .ttl_s = 3600};
  lmz_buf claims = LMZ_BUF_INIT, tok = LMZ_BUF_INIT, body = LMZ_BUF_INIT;
  int rv = lmz_jwt_build_claims(&co, &claims, NULL);
  if (!rv)
    rv = lmz_jwt_mint(&gw->keys, NULL, (const char *)claims.data, claims.len, &tok);
  if (!rv)
    rv = lmz_buf_append_str(&body, "{\"access_token\":\"");
  if (!rv)
    rv = lmz_buf_append(&body, tok.data, tok.len);
  if (!rv)
    rv = lmz_buf_printf(&body, "\",\"token_type\":\"Bearer\",\"expires_in\":3600,"
                               "\"sub\":\"%s\",\"dev_only\":true}", sub);
  struct lmz_http_header h = {"Cache-Control", 13, "no-store", 8};
  if (rv) {
    LMZ_LOG_WARN(&lmz__gw_log, "dev token: %s", lmz_strerror(rv));
    lmz__gw_respond(conn, 500, "text/plain", "cannot mint a dev token", 23, NULL, &h, 1);
  } else {
    lmz__gw_respond(conn, 200, "application/json", body.data, body.len, NULL, &h, 1);
  }
  sodium_memzero(tok.data, tok.len);
  lmz_buf_free(&tok);
  lmz_buf_free(&claims);
  lmz_buf_free(&body);
}

/* ---- dispatch ------------------------------------------------------------ */

static bool path_is(const struct lmz_http_request *req, const char *p) {
  return req->path_len == strlen(p) && !memcmp(req->path, p, req->path_len);
}

static bool builtin(lmz_gateway_t *gw, lmz_http_conn_t *conn,
                    const struct lmz_http_request *req) {
  bool get = !strcmp(req->method, "GET") || !strcmp(req->method, "HEAD");
  lmz_buf b = LMZ_BUF_INIT;
  if (get && path_is(req, "/_lmz/status")) {
    if (status_json(gw, &b) == 0)
      lmz__gw_respond(conn, 200, "application/json", b.data, b.len, NULL, NULL, 0);
  } else if (get && path_is(req, "/metrics")) {
    if (metrics_text(gw, &b) == 0)
      lmz__gw_respond(conn, 200, "text/plain; version=0.0.4", b.data, b.len, NULL, NULL, 0);
  } else if (gw->dev && get && path_is(req, "/_lmz/dev-token")) {
    dev_token(gw, conn);
  } else {
    return false;
  }
  lmz_buf_free(&b);
  return true;
}

static void dispatch(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                     const struct lmz_http_request *req, bool upgrade) {
  lmz_gateway_t *gw = srv->data;
  if ((!upgrade && builtin(gw, conn, req)) || lmz__gw_route(gw, conn, req, upgrade) ||
      (!upgrade && lmz__gw_static(gw, conn, req)))
    return;
  gw->stats.http_404++;
  lmz__gw_respond(conn, 404, "text/plain", "Not Found", 9, NULL, NULL, 0);
}

static void on_request(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req) {
  dispatch(srv, conn, req, false);
}

static void on_upgrade(lmz_http_server_t *srv, lmz_http_conn_t *conn,
                       const struct lmz_http_request *req) {
  dispatch(srv, conn, req, true);
}

/* ---- init ---------------------------------------------------------------- */

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

/* "api", "/api/", "/" -> "/api", "/api", "" */
static char *norm_prefix(const char *p) {
  if (!p)
    p = LMZ_GATEWAY_DEFAULT_PREFIX;
  while (*p == '/')
    p++;
  size_t n = strlen(p);
  while (n && p[n - 1] == '/')
    n--;
  char *out = malloc(n + 2);
  if (out && n) {
    out[0] = '/';
    memcpy(out + 1, p, n);
    out[n + 1] = '\0';
  } else if (out) {
    out[0] = '\0';
  }
  return out;
}

static int add_keys(struct lmz_jwt_keyset *dst, const struct lmz_jwt_keyset *src) {
  for (unsigned i = 0; i < src->n; i++) {
    const struct lmz_jwt_key *k = &src->keys[i];
    if (lmz_jwt_keyset_find(dst, k->kid) >= 0)
      continue; /* the first source wins */
    int rv = lmz_jwt_keyset_add(dst, k->kid, k->pk, k->has_sk ? k->sk : NULL);
    if (rv)
      return rv;
  }
  return 0;
}

static int load_keys(lmz_gateway_t *gw, const struct lmz_gateway_opts *o,
                     char *errmsg) {
  int rv = o->keyset ? add_keys(&gw->keys, o->keyset) : 0;
  if (o->keyset)
    gw->keys.primary = o->keyset->primary;
  if (!rv && o->dev_key_dir) {
    struct lmz_jwt_keyset dev = {0};
    rv = lmz_keys_dev_load_or_create(o->dev_key_dir, &dev, NULL, errmsg);
    if (!rv) {
      if (!o->keyset)
        gw->keys.primary = dev.primary;
      rv = add_keys(&gw->keys, &dev);
    }
    lmz_jwt_keyset_wipe(&dev);
  }
  for (size_t i = 0; !rv && i < o->n_public_keys; i++) {
    const struct lmz_gateway_key *k = &o->public_keys[i];
    uint8_t pk[LMZ_JWT_PK_LEN];
    rv = k->kid && k->public_key
             ? lmz_keys_parse_public(k->public_key, strlen(k->public_key), pk, errmsg)
             : LMZ_EINVAL;
    if (!rv && (rv = lmz_jwt_keyset_add(&gw->keys, k->kid, pk, NULL)))
      lmz__errmsg_printf(errmsg, "public key %s: %s", k->kid, lmz_strerror(rv));
    else if (rv)
      lmz__errmsg_wrapf(errmsg, "public key %s", k->kid ? k->kid : "(no kid)");
  }
  if (!rv && !gw->keys.n)
    LMZ_LOG_WARN(&lmz__gw_log, "no token keys configured: every client is refused");
  return rv;
}

/* The extra static folder: a prefix "/x[/y]" (normalized like route_prefix)
 * and an existing folder, or neither. */
static int copy_mount(lmz_gateway_t *gw, const struct lmz_gateway_opts *o,
                      char *errmsg) {
  if (!o->static_mount_prefix && !o->static_mount_dir)
    return 0;
  char real[PATH_MAX];
  if (!o->static_mount_prefix || !o->static_mount_dir ||
      !realpath(o->static_mount_dir, real)) {
    lmz__errmsg_printf(errmsg, "gateway: static mount %s -> %s: needs a prefix "
                       "and an existing folder",
                       o->static_mount_prefix ? o->static_mount_prefix : "(none)",
                       o->static_mount_dir ? o->static_mount_dir : "(none)");
    return LMZ_EINVAL;
  }
  gw->mount_prefix = norm_prefix(o->static_mount_prefix);
  gw->mount_dir = strdup(real);
  if (!gw->mount_prefix || !gw->mount_dir)
    return LMZ_ENOMEM;
  if (!*gw->mount_prefix) {
    lmz__errmsg_printf(errmsg, "gateway: static mount needs a non-empty prefix");
    return LMZ_EINVAL;
  }
  return 0;
}

static int copy_opts(lmz_gateway_t *gw, const struct lmz_gateway_opts *o,
                     char *errmsg) {
  gw->binding = strdup(o->binding ? o->binding : LMZ_GATEWAY_BINDING);
  gw->prefix = norm_prefix(o->route_prefix);
  if (o->auth_prefix && !(gw->auth_prefix = norm_prefix(o->auth_prefix)))
    return LMZ_ENOMEM;
  gw->auth_max_body = o->auth_max_body ? o->auth_max_body : LMZ_GATEWAY_AUTH_MAX_BODY;
  gw->iss = strdup(o->iss ? o->iss : LMZ_JWT_DEFAULT_ISS);
  gw->aud = strdup(o->aud ? o->aud : LMZ_JWT_DEFAULT_AUD);
  gw->cors = o->n_cors_origins ? calloc(o->n_cors_origins, sizeof *gw->cors) : NULL;
  for (size_t i = 0; gw->cors && i < o->n_cors_origins; i++, gw->n_cors++)
    if (!(gw->cors[i] = dup_str(o->cors_origins[i])))
      return LMZ_ENOMEM;
  gw->public_bindings = o->n_public_bindings
                            ? calloc(o->n_public_bindings, sizeof *gw->public_bindings)
                            : NULL;
  for (size_t i = 0; gw->public_bindings && i < o->n_public_bindings; i++, gw->n_public++)
    if (!(gw->public_bindings[i] = dup_str(o->public_bindings[i])))
      return LMZ_ENOMEM;
  if (!gw->binding || !gw->prefix || !gw->iss || !gw->aud ||
      (o->n_cors_origins && !gw->cors) ||
      (o->n_public_bindings && !gw->public_bindings))
    return LMZ_ENOMEM;
  lmz_rate_init(&gw->http_rate, &o->http_rate);
  lmz_rate_init(&gw->ws_rate, &o->ws_rate);
  if (!*gw->binding) {
    lmz__errmsg_printf(errmsg, "gateway: empty binding name");
    return LMZ_EINVAL;
  }
  if (o->static_dir) {
    char real[PATH_MAX];
    if (!realpath(o->static_dir, real)) {
      lmz__errmsg_printf(errmsg, "gateway: static folder %s does not exist",
                         o->static_dir);
      return LMZ_EINVAL;
    }
    if (!(gw->static_dir = strdup(real)))
      return LMZ_ENOMEM;
  }
  int rv = copy_mount(gw, o, errmsg);
  if (rv)
    return rv;
  gw->dev = o->dev;
  gw->grace_ms = o->grace_ms ? o->grace_ms : LMZ_GATEWAY_GRACE_MS;
  gw->call_timeout_ms = o->client_call_timeout_ms ? o->client_call_timeout_ms
                                                  : LMZ_GATEWAY_CALL_TIMEOUT_MS;
  gw->max_message = o->max_message ? o->max_message : LMZ_GATEWAY_MAX_MESSAGE;
  if (gw->max_message < LMZ_GATEWAY_MAX_MESSAGE_MIN ||
      gw->max_message > LMZ_GATEWAY_MAX_MESSAGE_LIMIT) {
    lmz__errmsg_printf(errmsg, "gateway: max_message %zu is not in %u..%u",
                       gw->max_message, LMZ_GATEWAY_MAX_MESSAGE_MIN,
                       LMZ_GATEWAY_MAX_MESSAGE_LIMIT);
    return LMZ_EINVAL;
  }
  return 0;
}

static void free_parts(lmz_gateway_t *gw) {
  for (size_t i = 0; i < gw->n_cors; i++)
    free(gw->cors[i]);
  free(gw->cors);
  for (size_t i = 0; i < gw->n_public; i++)
    free(gw->public_bindings[i]);
  free(gw->public_bindings);
  lmz_rate_free(&gw->http_rate);
  lmz_rate_free(&gw->ws_rate);
  free(gw->binding);
  free(gw->prefix);
  free(gw->auth_prefix);
  free(gw->bot.secret);
  free(gw->bot.url);
  free(gw->bot.host);
  free(gw->iss);
  free(gw->aud);
  free(gw->static_dir);
  free(gw->mount_prefix);
  free(gw->mount_dir);
  lmz_jwt_keyset_wipe(&gw->keys);
  lmz_arena_free(gw->scratch);
  lmz_buf_free(&gw->out);
  lmz_hmap_free(&gw->clients);
}

/* Binds the HTTP port; nothing is on the loop until lmz_http_server_start. */
static int bind_http(lmz_gateway_t *gw, const struct lmz_gateway_opts *o,
                     char *errmsg) {
  struct lmz_http_options ho = {.host = o->host, .port = o->port,
                                .on_request = on_request, .on_upgrade = on_upgrade,
                                .on_conn_close = on_conn_close,
                                .max_body = gw->max_message};
  gw->http.data = gw;
  int rv = lmz_http_server_bind(gw->loop, &gw->http, &ho);
  if (rv)
    lmz__errmsg_printf(errmsg, "HTTP %s:%d: %s", o->host ? o->host : "127.0.0.1",
                       o->port, gw->http.errmsg[0] ? gw->http.errmsg : lmz_strerror(rv));
  return rv;
}

/* Everything of init that can fail and leaves nothing on the loop. */
static int prepare(lmz_gateway_t *gw, const struct lmz_gateway_opts *opts,
                   char *errmsg) {
  int rv = copy_opts(gw, opts, errmsg);
  if (!rv && !(gw->scratch = lmz_arena_new()))
    rv = LMZ_ENOMEM;
  if (!rv) /* each frame sets its own budget (lmz__gw_parse_frame) */
    lmz_arena_set_limit(gw->scratch, lmz__gw_frame_budget(gw->max_message));
  if (!rv)
    rv = load_keys(gw, opts, errmsg);
  if (!rv && lmz_node_binding_kind(gw->node, gw->binding, NULL)) {
    lmz__errmsg_printf(errmsg, "gateway: binding %s is taken", gw->binding);
    rv = LMZ_EEXIST;
  }
  if (!rv) /* the configuration only: its HTTP client comes with the first check */
    rv = lmz__gw_bot_init(gw, &opts->bot_check, errmsg);
  return rv;
}

/* The class LumenizeClientGateway and its binding. If the bind fails the
 * class stays registered, never bound: nothing calls it. */
static int register_class(lmz_gateway_t *gw, char *errmsg) {
  int rv = lmz_node_register_raw_class(gw->node, LMZ_GATEWAY_CLASS,
                                       lmz__gw_raw_call, gw);
  if (rv) {
    lmz__errmsg_printf(errmsg, "gateway: register %s: %s", LMZ_GATEWAY_CLASS,
                       rv == LMZ_EEXIST ? "the node has it already" : lmz_strerror(rv));
    return rv;
  }
  rv = lmz_node_bind(gw->node, gw->binding, LMZ_GATEWAY_CLASS, LMZ_NODE_DO,
                     errmsg);
  if (rv)
    lmz__errmsg_wrapf(errmsg, "gateway: register %s", LMZ_GATEWAY_CLASS);
  return rv;
}

int lmz_gateway_init(uv_loop_t *loop, lmz_gateway_t *gw, lmz_node_t *node,
                     const struct lmz_gateway_opts *opts, char *errmsg) {
  *gw = (lmz_gateway_t){.loop = loop, .node = node};
  lmz__gw_list_init(&gw->sent_q);
  lmz__gw_list_init(&gw->fail_q);
  lmz__gw_list_init(&gw->grace_q);
  lmz__gw_list_init(&gw->conns);
  int rv = prepare(gw, opts, errmsg);
  if (!rv)
    rv = bind_http(gw, opts, errmsg);
  if (rv) {
    free_parts(gw);
    return rv;
  }
  /* last: a binding on the node cannot be undone (its calls would reach gw) */
  if ((rv = register_class(gw, errmsg))) {
    lmz_http_server_unbind(&gw->http);
    free_parts(gw);
    return rv;
  }
  /* nothing below fails: the loop's handles */
  lmz_http_server_start(&gw->http);
  uv_timer_init(loop, &gw->timer);
  gw->timer.data = gw;
  gw->started_ms = uv_now(loop);
  gw->started_wall_ms = lmz_node_now_ms(node);
  LMZ_LOG_INFO(&lmz__gw_log, "HTTP on %s:%d (clients: /gateway/%s/{sub}.{tabId}, "
               "actors: %s/{binding}/{instance}%s%s)", opts->host ? opts->host : "127.0.0.1",
               lmz_http_server_port(&gw->http), gw->binding,
               gw->prefix[0] ? gw->prefix : "", gw->static_dir ? ", static: " : "",
               gw->static_dir ? gw->static_dir : "");
  return 0;
}

int lmz_gateway_port(const lmz_gateway_t *gw) {
  return lmz_http_server_port(&gw->http);
}

void lmz_gateway_get_stats(const lmz_gateway_t *gw,
                           struct lmz_gateway_stats *st) {
  *st = gw->stats;
}

/* ---- close --------------------------------------------------------------- */

void lmz__gw_wait_done(lmz_gateway_t *gw) {
  LMZ_ASSERT(gw->n_waits > 0);
  if (--gw->n_waits == 0 && gw->closing && gw->close_cb)
    gw->close_cb(gw, gw->close_arg);
}

static void http_closed(lmz_http_server_t *srv) { lmz__gw_wait_done(srv->data); }

static void timer_closed(uv_handle_t *h) { lmz__gw_wait_done(h->data); }

void lmz_gateway_close(lmz_gateway_t *gw, lmz_gateway_close_cb cb, void *arg) {
  if (gw->closing)
    return;
  gw->closing = true;
  gw->close_cb = cb;
  gw->close_arg = arg;
  lmz__gw_clients_shutdown(gw);
  gw->n_waits += 2;
  lmz__gw_bot_close(gw); /* checks in flight: their requests are dropped */
  lmz_http_server_close(&gw->http, http_closed);
  uv_close((uv_handle_t *)&gw->timer, timer_closed);
}

void lmz_gateway_release(lmz_gateway_t *gw) {
  if (!gw)
    return;
  size_t it = 0;
  void *v;
  while (lmz_hmap_next(&gw->clients, &it, NULL, NULL, &v))
    free(v); /* no held calls remain after close */
  struct lmz__gw_link *l;
  while ((l = lmz__gw_list_first(&gw->conns))) {
    struct gw_conn *k = lmz_container_of(l, struct gw_conn, all);
    lmz__gw_list_remove(&gw->conns, l);
    lmz_hmap_free(&k->calls);
    lmz_arena_free(k->arena);
    free(k);
  }
  free_parts(gw);
}
