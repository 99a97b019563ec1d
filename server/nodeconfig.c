/* server/nodeconfig.c - parsing and validating lmzd's configuration.
 *
 * Happy path: lmz_config_load (JSONC -> DOM) then one small function per
 * section fills struct lmzd_config.
 * Failure modes (each one line "FILE:LINE:COL: problem"):
 *  1. unreadable file / bad JSON: from core/config.c;
 *  2. a section or field of the wrong type, a missing required field;
 *  3. a binding name used twice (across durable objects and services);
 *  4. an invalid name (bindings: [A-Za-z_][A-Za-z0-9_]*, 1..255 bytes). */
#include "server/nodeconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "cluster/directory.h" /* LMZ_DIR_MAX_BACKUPS */
#include "cluster/repl.h"      /* LMZ_REPL_DEFAULT_RETENTION_BYTES */
#include "core/err.h"
#include "gateway/gateway.h"

#define DEV_CONFIG                                                             \
  "// the embedded --dev configuration\n"                                      \
  "{\n"                                                                        \
  "  \"node\": {\"id\": \"node-1\", \"data\": \"./lmz-data\",\n"              \
  "            \"listen\": \"127.0.0.1:7100\", \"http\": \"127.0.0.1:8787\"},\n" \
  "  \"modules\": [\"libcounter.so\", \"libeditor.so\"],\n"                     \
  "  \"durable_objects\": {\"bindings\": [\n"                                  \
  "    {\"name\": \"COUNTER_DO\", \"class_name\": \"CounterDO\"},\n"           \
  "    {\"name\": \"DOCUMENT_DO\", \"class_name\": \"DocumentDO\"}\n"          \
  "  ]},\n"                                                                    \
  "  \"services\": [\n"                                                        \
  "    {\"binding\": \"ECHO_WORKER\", \"entrypoint\": \"EchoWorker\"},\n"      \
  "    {\"binding\": \"SPELLCHECK_WORKER\", \"entrypoint\": \"SpellCheckWorker\"}\n" \
  "  ],\n"                                                                     \
  "  \"storage\": {\"sync\": true}\n"                                          \
  "}\n"

static const char *get_str(const struct lmzd_config *c, const lmz_json *obj,
                           const char *key, bool required, const char *dflt,
                           char *errmsg, int *rv) {
  const lmz_json *v = lmz_json_get(obj, key);
  if (!v) {
    if (required) {
      lmz_config_errorf(errmsg, &c->file, obj, "missing \"%s\"", key);
      *rv = LMZ_EBADCONFIG;
    }
    return dflt;
  }
  if (v->type != LMZ_JSON_STRING) {
    lmz_config_errorf(errmsg, &c->file, v, "\"%s\" must be a string", key);
    *rv = LMZ_EBADCONFIG;
    return dflt;
  }
  return v->u.str.p;
}

static const lmz_json *get_typed(const struct lmzd_config *c, const lmz_json *obj,
                                 const char *key, lmz_json_type t,
                                 const char *what, char *errmsg, int *rv) {
  const lmz_json *v = lmz_json_get(obj, key);
  if (v && v->type != t) {
    lmz_config_errorf(errmsg, &c->file, v, "\"%s\" must be %s", key, what);
    *rv = LMZ_EBADCONFIG;
    return NULL;
  }
  return v;
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 255 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && s[i] != '_')
      return false;
  return true;
}

static int add_binding(lmz_arena *a, struct lmzd_config *c, const char *name,
                       const char *cls, lmz_node_type kind, const lmz_json *where,
                       char *errmsg) {
  if (!valid_name(name)) {
    lmz_config_errorf(errmsg, &c->file, where,
                      "invalid binding name \"%s\" (letters, digits, _)", name);
    return LMZ_EBADCONFIG;
  }
  for (size_t i = 0; i < c->n_bindings; i++)
    if (!strcmp(c->bindings[i].name, name)) {
      lmz_config_errorf(errmsg, &c->file, where, "duplicate binding %s", name);
      return LMZ_EBADCONFIG;
    }
  struct lmzd_binding *nb = lmz_arena_alloc(a, (c->n_bindings + 1) * sizeof *nb);
  if (!nb)
    return LMZ_ENOMEM;
  if (c->n_bindings)
    memcpy(nb, c->bindings, c->n_bindings * sizeof *nb);
  nb[c->n_bindings++] = (struct lmzd_binding){name, cls, kind, where};
  c->bindings = nb;
  return 0;
}

static int parse_node(struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *n = get_typed(c, c->file.root, "node", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !n)
    return rv;
  c->node_id = get_str(c, n, "id", false, c->node_id, errmsg, &rv);
  c->data_dir = get_str(c, n, "data", false, c->data_dir, errmsg, &rv);
  c->listen = get_str(c, n, "listen", false, c->listen, errmsg, &rv);
  c->http = get_str(c, n, "http", false, c->http, errmsg, &rv);
  return rv;
}

static int parse_modules(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *m = get_typed(c, c->file.root, "modules", LMZ_JSON_ARRAY,
                                "an array of paths", errmsg, &rv);
  if (rv || !m)
    return rv;
  c->modules = lmz_arena_alloc(a, (m->n ? m->n : 1) * sizeof *c->modules);
  if (!c->modules)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < m->n; i++) {
    const lmz_json *p = m->u.items[i];
    if (p->type != LMZ_JSON_STRING || !p->u.str.len) {
      lmz_config_errorf(errmsg, &c->file, p, "module paths must be non-empty strings");
      return LMZ_EBADCONFIG;
    }
    const char *path = p->u.str.p;
    if (path[0] != '/' && c->base_dir) {
      size_t len = strlen(c->base_dir) + strlen(path) + 2;
      char *full = lmz_arena_alloc(a, len);
      if (!full)
        return LMZ_ENOMEM;
      snprintf(full, len, "%s/%s", c->base_dir, path);
      path = full;
    }
    c->modules[c->n_modules++] = path;
  }
  return 0;
}

static int parse_bindings(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *dos = get_typed(c, c->file.root, "durable_objects",
                                  LMZ_JSON_OBJECT, "an object", errmsg, &rv);
  const lmz_json *list = dos ? get_typed(c, dos, "bindings", LMZ_JSON_ARRAY,
                                         "an array", errmsg, &rv) : NULL;
  for (uint32_t i = 0; !rv && list && i < list->n; i++) {
    const lmz_json *b = list->u.items[i];
    if (b->type != LMZ_JSON_OBJECT) {
      lmz_config_errorf(errmsg, &c->file, b, "a binding must be an object");
      return LMZ_EBADCONFIG;
    }
    const char *name = get_str(c, b, "name", true, NULL, errmsg, &rv);
    const char *cls = rv ? NULL : get_str(c, b, "class_name", true, NULL, errmsg, &rv);
    if (!rv)
      rv = add_binding(a, c, name, cls, LMZ_NODE_DO, b, errmsg);
  }
  const lmz_json *svcs = rv ? NULL : get_typed(c, c->file.root, "services",
                                               LMZ_JSON_ARRAY, "an array", errmsg, &rv);
  for (uint32_t i = 0; !rv && svcs && i < svcs->n; i++) {
    const lmz_json *s = svcs->u.items[i];
    if (s->type != LMZ_JSON_OBJECT) {
      lmz_config_errorf(errmsg, &c->file, s, "a service must be an object");
      return LMZ_EBADCONFIG;
    }
    const char *name = get_str(c, s, "binding", true, NULL, errmsg, &rv);
    const char *cls = rv ? NULL : get_str(c, s, "entrypoint", true, NULL, errmsg, &rv);
    if (!rv)
      rv = add_binding(a, c, name, cls, LMZ_NODE_WORKER, s, errmsg);
  }
  return rv;
}

static int parse_vars(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *v = get_typed(c, c->file.root, "vars", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !v)
    return rv;
  c->vars = lmz_arena_alloc(a, (v->n ? v->n : 1) * sizeof *c->vars);
  if (!c->vars)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < v->n; i++) {
    const struct lmz_json_member *m = &v->u.members[i];
    if (m->val->type != LMZ_JSON_STRING) {
      lmz_config_errorf(errmsg, &c->file, m->val, "vars.%s must be a string", m->key);
      return LMZ_EBADCONFIG;
    }
    c->vars[c->n_vars++] = (struct lmzd_var){m->key, m->val->u.str.p};
  }
  return 0;
}

/* "sql": SQL limits and caches (lmz/sql.h); each a positive integer. */
static int parse_sql(struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *q = get_typed(c, c->file.root, "sql", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (!q)
    return rv;
  static const struct {
    const char *name;
    double max;
  } keys[] = {{"max_sql_bytes", 1e9}, {"max_params", 32766},
              {"max_value_bytes", 1e9}, {"max_db_bytes", 1e15},
              {"cache_kib", 1e8}, {"node_cache_bytes", 1e15}};
  double v[LMZ_ARRAY_SIZE(keys)] = {0};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(keys); i++) {
    const lmz_json *j = lmz_json_get(q, keys[i].name);
    if (j && (j->type != LMZ_JSON_NUMBER || j->u.num < 1 ||
              j->u.num > keys[i].max || j->u.num != (double)(uint64_t)j->u.num)) {
      lmz_config_errorf(errmsg, &c->file, j, "sql.%s must be an integer from 1 to %.0f",
                        keys[i].name, keys[i].max);
      return LMZ_EBADCONFIG;
    }
    v[i] = j ? j->u.num : 0;
  }
  c->sql = (struct lmz_sql_opts){(uint32_t)v[0], (uint32_t)v[1], (uint32_t)v[2],
                                 (uint64_t)v[3], (uint32_t)v[4], (uint64_t)v[5]};
  return 0;
}

static int parse_misc(struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *st = get_typed(c, c->file.root, "storage", LMZ_JSON_OBJECT,
                                 "an object", errmsg, &rv);
  const lmz_json *sync = st ? lmz_json_get(st, "sync") : NULL;
  if (sync && sync->type != LMZ_JSON_TRUE && sync->type != LMZ_JSON_FALSE) {
    lmz_config_errorf(errmsg, &c->file, sync, "storage.sync must be true or false");
    return LMZ_EBADCONFIG;
  }
  if (sync)
    c->sync = sync->type == LMZ_JSON_TRUE;
  const lmz_json *ac = rv ? NULL : get_typed(c, c->file.root, "actors",
                                             LMZ_JSON_OBJECT, "an object", errmsg, &rv);
  const lmz_json *idle = ac ? lmz_json_get(ac, "idle_evict_ms") : NULL;
  if (idle && (idle->type != LMZ_JSON_NUMBER || idle->u.num < 1 || idle->u.num > 1e12)) {
    lmz_config_errorf(errmsg, &c->file, idle, "actors.idle_evict_ms must be a positive number");
    return LMZ_EBADCONFIG;
  }
  if (idle)
    c->idle_evict_ms = (uint64_t)idle->u.num;
  const lmz_json *log = rv ? NULL : get_typed(c, c->file.root, "log",
                                              LMZ_JSON_OBJECT, "an object", errmsg, &rv);
  if (log) {
    c->log_level = get_str(c, log, "level", false, NULL, errmsg, &rv);
    c->log_debug = get_str(c, log, "debug", false, NULL, errmsg, &rv);
  }
  return rv;
}

static int parse_id(const struct lmzd_config *c, const lmz_json *v,
                    uint64_t *out, char *errmsg) {
  if (!v || v->type != LMZ_JSON_NUMBER || v->u.num < 1 || v->u.num > 1e15 ||
      v->u.num != (double)(uint64_t)v->u.num) {
    lmz_config_errorf(errmsg, &c->file, v, "node ids are positive integers");
    return LMZ_EBADCONFIG;
  }
  *out = (uint64_t)v->u.num;
  return 0;
}

static int parse_replication(struct lmzd_config *c, const lmz_json *cl,
                             char *errmsg);

static int parse_cluster(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *cl = get_typed(c, c->file.root, "cluster", LMZ_JSON_OBJECT,
                                 "an object", errmsg, &rv);
  if (rv || !cl)
    return rv;
  if (lmz_json_get(cl, "id") && (rv = parse_id(c, lmz_json_get(cl, "id"), &c->cluster_id, errmsg)))
    return rv;
  c->raft = get_str(c, cl, "raft", false, NULL, errmsg, &rv);
  const lmz_json *lease = lmz_json_get(cl, "lease_ms");
  if (lease && (lease->type != LMZ_JSON_NUMBER || lease->u.num < 50 || lease->u.num > 600000)) {
    lmz_config_errorf(errmsg, &c->file, lease, "cluster.lease_ms must be 50..600000");
    return LMZ_EBADCONFIG;
  }
  if (lease)
    c->lease_ms = (uint32_t)lease->u.num;
  const lmz_json *join = lmz_json_get(cl, "join");
  if (join && join->type != LMZ_JSON_TRUE && join->type != LMZ_JSON_FALSE) {
    lmz_config_errorf(errmsg, &c->file, join, "cluster.join must be true or false");
    return LMZ_EBADCONFIG;
  }
  c->join = join && join->type == LMZ_JSON_TRUE;
  const char *rt = get_str(c, cl, "raft_transport", false, "node", errmsg, &rv);
  if (!rv && strcmp(rt, "node") && strcmp(rt, "tcp")) {
    lmz_config_errorf(errmsg, &c->file, lmz_json_get(cl, "raft_transport"),
                      "cluster.raft_transport must be \"node\" or \"tcp\"");
    return LMZ_EBADCONFIG;
  }
  c->raft_tcp = rt && !strcmp(rt, "tcp");
  if (!rv && (rv = parse_replication(c, cl, errmsg)))
    return rv;
  const lmz_json *vs = rv ? NULL : get_typed(c, cl, "voters", LMZ_JSON_ARRAY,
                                             "an array", errmsg, &rv);
  if (!vs)
    return rv;
  c->voters = lmz_arena_alloc(a, (vs->n ? vs->n : 1) * sizeof *c->voters);
  if (!c->voters)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; !rv && i < vs->n; i++) {
    const lmz_json *v = vs->u.items[i];
    struct lmzd_voter *vt = &c->voters[c->n_voters];
    if (v->type != LMZ_JSON_OBJECT) {
      lmz_config_errorf(errmsg, &c->file, v, "a voter must be an object");
      return LMZ_EBADCONFIG;
    }
    if ((rv = parse_id(c, lmz_json_get(v, "id") ? lmz_json_get(v, "id") : v, &vt->id, errmsg)))
      return rv;
    vt->node = get_str(c, v, "node", true, NULL, errmsg, &rv);
    vt->raft = rv ? NULL : get_str(c, v, "raft", true, NULL, errmsg, &rv);
    for (size_t j = 0; !rv && j < c->n_voters; j++)
      if (c->voters[j].id == vt->id) {
        lmz_config_errorf(errmsg, &c->file, v, "duplicate voter id %llu",
                          (unsigned long long)vt->id);
        rv = LMZ_EBADCONFIG;
      }
    c->n_voters += rv == 0;
  }
  return rv;
}

/* A path relative to the config file's directory. */
static const char *relative(lmz_arena *a, const struct lmzd_config *c,
                            const char *path) {
  if (!path || path[0] == '/' || !c->base_dir)
    return path;
  size_t len = strlen(c->base_dir) + strlen(path) + 2;
  char *full = lmz_arena_alloc(a, len);
  if (full)
    snprintf(full, len, "%s/%s", c->base_dir, path);
  return full;
}

static int parse_ms(const struct lmzd_config *c, const lmz_json *g,
                    const char *key, uint32_t *out, char *errmsg) {
  const lmz_json *v = lmz_json_get(g, key);
  if (!v)
    return 0;
  if (v->type != LMZ_JSON_NUMBER || v->u.num < 1 || v->u.num > 86400000) {
    lmz_config_errorf(errmsg, &c->file, v, "gateway.%s must be 1..86400000", key);
    return LMZ_EBADCONFIG;
  }
  *out = (uint32_t)v->u.num;
  return 0;
}

/* gateway.max_message_bytes: bounded here, with the file position, by the
 * same range lmz_gateway_init enforces (gateway/gateway.h says why). */
static int parse_max_message(struct lmzd_config *c, const lmz_json *g,
                             char *errmsg) {
  const lmz_json *v = lmz_json_get(g, "max_message_bytes");
  if (!v)
    return 0;
  if (v->type != LMZ_JSON_NUMBER || v->u.num < LMZ_GATEWAY_MAX_MESSAGE_MIN ||
      v->u.num > LMZ_GATEWAY_MAX_MESSAGE_LIMIT ||
      v->u.num != (double)(uint64_t)v->u.num) {
    lmz_config_errorf(errmsg, &c->file, v,
                      "gateway.max_message_bytes must be an integer %u..%u "
                      "(default %u)",
                      LMZ_GATEWAY_MAX_MESSAGE_MIN, LMZ_GATEWAY_MAX_MESSAGE_LIMIT,
                      LMZ_GATEWAY_MAX_MESSAGE);
    return LMZ_EBADCONFIG;
  }
  c->gw.max_message = (size_t)v->u.num;
  return 0;
}

static int parse_jwt(lmz_arena *a, struct lmzd_config *c, const lmz_json *g,
                     char *errmsg) {
  int rv = 0;
  const lmz_json *j = get_typed(c, g, "jwt", LMZ_JSON_OBJECT, "an object", errmsg, &rv);
  if (rv || !j)
    return rv;
  c->gw.iss = get_str(c, j, "issuer", false, NULL, errmsg, &rv);
  c->gw.aud = get_str(c, j, "audience", false, NULL, errmsg, &rv);
  const lmz_json *dk = lmz_json_get(j, "dev_keys");
  if (dk && dk->type != LMZ_JSON_TRUE && dk->type != LMZ_JSON_FALSE) {
    lmz_config_errorf(errmsg, &c->file, dk, "gateway.jwt.dev_keys must be true or false");
    return LMZ_EBADCONFIG;
  }
  c->gw.dev_keys = dk && dk->type == LMZ_JSON_TRUE;
  const lmz_json *pk = rv ? NULL : get_typed(c, j, "public_keys", LMZ_JSON_OBJECT,
                                             "an object {KID: key}", errmsg, &rv);
  if (!pk)
    return rv;
  if (!(c->gw.keys = lmz_arena_alloc(a, (pk->n ? pk->n : 1) * sizeof *c->gw.keys)))
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < pk->n; i++) {
    const struct lmz_json_member *m = &pk->u.members[i];
    if (m->val->type != LMZ_JSON_STRING) {
      lmz_config_errorf(errmsg, &c->file, m->val, "public key %s must be a string", m->key);
      return LMZ_EBADCONFIG;
    }
    c->gw.keys[c->gw.n_keys++] = (struct lmzd_key){m->key, m->val->u.str.p};
  }
  return 0;
}

/* An optional integer `section.key` in [lo, hi]. */
static int parse_u32(const struct lmzd_config *c, const lmz_json *l,
                     const char *section, const char *key, uint32_t lo,
                     uint32_t hi, uint32_t *out, char *errmsg) {
  const lmz_json *v = lmz_json_get(l, key);
  if (!v)
    return 0;
  if (v->type != LMZ_JSON_NUMBER || v->u.num < lo || v->u.num > hi ||
      v->u.num != (double)(uint32_t)v->u.num) {
    lmz_config_errorf(errmsg, &c->file, v, "%s.%s must be an integer %u..%u",
                      section, key, lo, hi);
    return LMZ_EBADCONFIG;
  }
  *out = (uint32_t)v->u.num;
  return 0;
}

/* gateway.public_bindings: names of durable-object bindings declared
 * above (durable_objects.bindings); anything else is a mistake worth a
 * startup error, not a silently public or silently private route. */
static int parse_public(lmz_arena *a, struct lmzd_config *c, const lmz_json *g,
                        char *errmsg) {
  int rv = 0;
  const lmz_json *pb = get_typed(c, g, "public_bindings", LMZ_JSON_ARRAY,
                                 "an array of binding names", errmsg, &rv);
  if (rv || !pb)
    return rv;
  c->gw.public_bindings = lmz_arena_alloc(a, (pb->n ? pb->n : 1) * sizeof(char *));
  if (!c->gw.public_bindings)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < pb->n; i++) {
    const lmz_json *v = pb->u.items[i];
    bool found = false;
    for (size_t j = 0; v->type == LMZ_JSON_STRING && j < c->n_bindings; j++)
      found |= c->bindings[j].kind == LMZ_NODE_DO &&
               !strcmp(c->bindings[j].name, v->u.str.p);
    if (!found) {
      lmz_config_errorf(errmsg, &c->file, v, "gateway.public_bindings: each "
                        "must name a durable_objects binding");
      return LMZ_EBADCONFIG;
    }
    c->gw.public_bindings[c->gw.n_public++] = v->u.str.p;
  }
  return 0;
}

/* gateway.rate_limits.{http,connections}: {"per_minute": N, "burst": B}. */
static int parse_rate(const struct lmzd_config *c, const lmz_json *rl,
                      const char *key, uint32_t *per_minute, uint32_t *burst,
                      char *errmsg) {
  int rv = 0;
  const lmz_json *r = get_typed(c, rl, key, LMZ_JSON_OBJECT, "an object", errmsg, &rv);
  if (rv || !r)
    return rv;
  const char *sec = !strcmp(key, "http") ? "gateway.rate_limits.http"
                                         : "gateway.rate_limits.connections";
  if (!lmz_json_get(r, "per_minute")) {
    lmz_config_errorf(errmsg, &c->file, r, "%s needs \"per_minute\"", sec);
    return LMZ_EBADCONFIG;
  }
  rv = parse_u32(c, r, sec, "per_minute", 1, LMZ_RATE_MAX_PER_MINUTE, per_minute, errmsg);
  return rv ? rv : parse_u32(c, r, sec, "burst", 1, LMZ_RATE_MAX_BURST, burst, errmsg);
}

static int parse_rate_limits(const struct lmzd_config *c, const lmz_json *g,
                             struct lmzd_gateway *gw, char *errmsg) {
  int rv = 0;
  const lmz_json *rl = get_typed(c, g, "rate_limits", LMZ_JSON_OBJECT, "an object",
                                 errmsg, &rv);
  if (rv || !rl)
    return rv;
  rv = parse_rate(c, rl, "http", &gw->http_per_minute, &gw->http_burst, errmsg);
  return rv ? rv : parse_rate(c, rl, "connections", &gw->ws_per_minute,
                              &gw->ws_burst, errmsg);
}

static int parse_gateway(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *g = get_typed(c, c->file.root, "gateway", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !g)
    return rv;
  c->gw.static_dir = relative(a, c, get_str(c, g, "static", false, NULL, errmsg, &rv));
  c->gw.route_prefix = get_str(c, g, "route_prefix", false, NULL, errmsg, &rv);
  const lmz_json *co = rv ? NULL : get_typed(c, g, "cors_origins", LMZ_JSON_ARRAY,
                                             "an array of origins", errmsg, &rv);
  if (co && !(c->gw.cors = lmz_arena_alloc(a, (co->n ? co->n : 1) * sizeof *c->gw.cors)))
    return LMZ_ENOMEM;
  for (uint32_t i = 0; co && i < co->n; i++) {
    if (co->u.items[i]->type != LMZ_JSON_STRING) {
      lmz_config_errorf(errmsg, &c->file, co->u.items[i], "an origin must be a string");
      return LMZ_EBADCONFIG;
    }
    c->gw.cors[c->gw.n_cors++] = co->u.items[i]->u.str.p;
  }
  if (!rv)
    rv = parse_ms(c, g, "grace_period_ms", &c->gw.grace_ms, errmsg);
  if (!rv)
    rv = parse_ms(c, g, "client_call_timeout_ms", &c->gw.call_timeout_ms, errmsg);
  if (!rv)
    rv = parse_max_message(c, g, errmsg);
  if (!rv)
    rv = parse_public(a, c, g, errmsg);
  if (!rv)
    rv = parse_rate_limits(c, g, &c->gw, errmsg);
  return rv ? rv : parse_jwt(a, c, g, errmsg);
}

/* ---- limits (overload bounds) ------------------------------------------- */

static int parse_limit(const struct lmzd_config *c, const lmz_json *l,
                       const char *key, uint32_t *out, char *errmsg) {
  return parse_u32(c, l, "limits", key, 1, 1000000000u, out, errmsg);
}

/* "cluster": {"replication": {"factor": 3, "max_lag_ms": 2000,
 * "max_lag_mib": 64}} (DESIGN.md 4.1). */
static int parse_replication(struct lmzd_config *c, const lmz_json *cl,
                             char *errmsg) {
  int rv = 0;
  const lmz_json *r = get_typed(c, cl, "replication", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !r)
    return rv;
  const char *sec = "cluster.replication";
  rv = parse_u32(c, r, sec, "factor", 1, LMZ_DIR_MAX_BACKUPS + 1, &c->repl_factor, errmsg);
  if (!rv)
    rv = parse_u32(c, r, sec, "max_lag_ms", 50, 600000, &c->repl_max_lag_ms, errmsg);
  if (!rv)
    rv = parse_u32(c, r, sec, "max_lag_mib", 1, 4096, &c->repl_max_lag_mib, errmsg);
  if (!rv)
    rv = parse_u32(c, r, sec, "retention_mib", 0, 65536, &c->repl_retention_mib, errmsg);
  return rv;
}

static int parse_limits(struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  const lmz_json *l = get_typed(c, c->file.root, "limits", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !l)
    return rv;
  rv = parse_limit(c, l, "mailbox_max", &c->mailbox_max, errmsg);
  return rv ? rv : parse_limit(c, l, "pending_calls_max", &c->pending_calls_max, errmsg);
}

/* ---- fetch (lmz_fetch's egress) ------------------------------------------- */

/* fetch.allow: host names, "*.suffix" or "*" (net/fetch.h). */
static int parse_allow(lmz_arena *a, struct lmzd_config *c, const lmz_json *f,
                       char *errmsg) {
  const lmz_json *l = lmz_json_get(f, "allow");
  if (!l)
    return 0;
  if (l->type != LMZ_JSON_ARRAY) {
    lmz_config_errorf(errmsg, &c->file, l, "fetch.allow must be an array of host names");
    return LMZ_EBADCONFIG;
  }
  const char **hosts = lmz_arena_alloc(a, (l->n ? l->n : 1) * sizeof *hosts);
  if (!hosts)
    return LMZ_ENOMEM;
  for (uint32_t i = 0; i < l->n; i++) {
    const lmz_json *h = l->u.items[i];
    if (h->type != LMZ_JSON_STRING || h->u.str.len == 0 || h->u.str.len > 255 ||
        strcspn(h->u.str.p, " \t\r\n/@?#") != h->u.str.len) {
      lmz_config_errorf(errmsg, &c->file, h,
                        "fetch.allow entries must be host names, \"*.suffix\" or \"*\"");
      return LMZ_EBADCONFIG;
    }
    hosts[i] = h->u.str.p;
  }
  c->fetch.allow = hosts;
  c->fetch.n_allow = l->n;
  return 0;
}

/* "fetch": {"allow": [...], "timeout_ms", "max_response_bytes",
 * "max_request_bytes", "max_redirects"}; absent = the net/fetch.h
 * defaults with nothing allowed. */
static int parse_fetch(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  int rv = 0;
  c->fetch = (struct lmz_net_opts){.redirects_default = true};
  const lmz_json *f = get_typed(c, c->file.root, "fetch", LMZ_JSON_OBJECT,
                                "an object", errmsg, &rv);
  if (rv || !f)
    return rv;
  uint32_t resp = 0, req = 0;
  rv = parse_allow(a, c, f, errmsg);
  if (!rv)
    rv = parse_u32(c, f, "fetch", "timeout_ms", 1, 600000, &c->fetch.timeout_ms, errmsg);
  if (!rv)
    rv = parse_u32(c, f, "fetch", "max_response_bytes", 1, 1u << 30, &resp, errmsg);
  if (!rv)
    rv = parse_u32(c, f, "fetch", "max_request_bytes", 1, 1u << 30, &req, errmsg);
  if (!rv)
    rv = parse_u32(c, f, "fetch", "max_inflight", 1, 1000000, &c->fetch.max_inflight, errmsg);
  if (!rv && lmz_json_get(f, "max_redirects")) {
    c->fetch.redirects_default = false;
    rv = parse_u32(c, f, "fetch", "max_redirects", 0, 20, &c->fetch.max_redirects, errmsg);
  }
  c->fetch.max_response_bytes = resp;
  c->fetch.max_request_bytes = req;
  return rv;
}

static int interpret(lmz_arena *a, struct lmzd_config *c, char *errmsg) {
  c->node_id = "node-1";
  c->data_dir = "./lmz-data";
  c->listen = "127.0.0.1:7100";
  c->http = "127.0.0.1:8787";
  c->sync = true;
  int rv = parse_node(c, errmsg);
  if (!rv)
    rv = parse_modules(a, c, errmsg);
  if (!rv)
    rv = parse_bindings(a, c, errmsg);
  if (!rv)
    rv = parse_vars(a, c, errmsg);
  if (!rv)
    rv = parse_misc(c, errmsg);
  if (!rv)
    rv = parse_sql(c, errmsg);
  c->cluster_id = 1;
  c->repl_factor = LMZD_DEFAULT_REPL_FACTOR;
  c->repl_retention_mib = LMZ_REPL_DEFAULT_RETENTION_BYTES >> 20;
  if (!rv)
    rv = parse_cluster(a, c, errmsg);
  if (!rv)
    rv = parse_gateway(a, c, errmsg);
  if (!rv)
    rv = parse_limits(c, errmsg);
  if (!rv)
    rv = parse_fetch(a, c, errmsg);
  if (!rv) /* the auth service (auth/auth.h): its own parser and checks */
    rv = lmz_auth_config_parse(a, &c->file, lmz_json_get(c->file.root, "auth"),
                               &c->auth, errmsg);
  return rv;
}

int lmzd_config_load(lmz_arena *a, const char *path, struct lmzd_config *c,
                     char *errmsg) {
  memset(c, 0, sizeof *c);
  int rv = lmz_config_load(a, path, &c->file, errmsg);
  if (rv)
    return rv;
  const char *slash = strrchr(path, '/');
  c->base_dir = slash ? lmz_arena_strndup(a, path, (size_t)(slash - path)) : ".";
  if (slash == path)
    c->base_dir = "/";
  return interpret(a, c, errmsg);
}

int lmzd_config_dev(lmz_arena *a, const char *lib_dir, struct lmzd_config *c,
                    char *errmsg) {
  memset(c, 0, sizeof *c);
  int rv = lmz_config_parse(a, "<dev config>", DEV_CONFIG, strlen(DEV_CONFIG),
                            &c->file, errmsg);
  if (rv)
    return rv;
  c->base_dir = lib_dir;
  c->dev = true;
  rv = interpret(a, c, errmsg);
  c->auth.enabled = true; /* --dev: log in by email with the dev outbox, */
  c->auth.auto_approve = true; /* and a new user may use the example at once */
  c->repl_factor = 1; /* --dev: one node, one copy, as before replication */
  return rv;
}
