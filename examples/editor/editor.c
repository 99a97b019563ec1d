/* examples/editor - the getting-started tutorial's server side, in C.
 *
 * DOCUMENT_DO (class DocumentDO): a collaboratively edited document.
 *   subscribe() -> content; remembers the calling client (callChain[0]),
 *       one storage key per subscriber ("sub:<client>")
 *   update(content) -> stores it, pushes it to every subscriber (a new chain,
 *       so clients do not see who edited; one lmz_broadcast) and asks
 *       SPELLCHECK_WORKER to check
 *       it; guarded: only subscribers may edit. Every update is also one
 *       row of the document's SQL table `revisions` (lmz/sql.h), created in
 *       on_start, indexed on revision.
 *   history(n) -> the last n revisions, newest first:
 *       [{revision, content, author, at}] (author: the client, or null)
 * SPELLCHECK_WORKER (class SpellCheckWorker): check(content, clientId,
 *   documentId) flags "teh" and sends the findings straight to the client
 *   that made the edit ("direct delivery", not back through the document).
 *   With the config var SPELLCHECK_URL set, it asks that HTTP service
 *   instead (lmz_fetch, so its host must be on fetch.allow): POST the
 *   content as text/plain, the answer is JSON {"findings": [{"word",
 *   "position", "suggestions"}]}; the findings arrive in a later turn of
 *   the worker (onSpellResponse). A failed or malformed answer falls back
 *   to the local check.
 * Clients are reached through the gateway binding LUMENIZE_CLIENT_GATEWAY,
 * instance "{sub}.{tabId}". */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "lmz/lmz.h"
#include "lmz/sql.h"

#define GATEWAY "LUMENIZE_CLIENT_GATEWAY"

/* The originating client's instance name, or NULL (not called by a client). */
static const char *origin_client(lmz_ctx *ctx) {
  const lmz_identity *o = lmz_call_chain_at(ctx, 0);
  return o && o->type == LMZ_NODE_CLIENT ? o->instance : NULL;
}

/* Subscribers are one key each, "sub:<client>" (a subscribe writes a few
 * bytes, however many there are; the push lists the prefix). */
#define SUB_PREFIX "sub:"

static char *sub_key(lmz_ctx *ctx, const char *client, size_t *klen) {
  size_t cl = strlen(client);
  char *k = lmz_arena_alloc(lmz_turn_arena(ctx), sizeof SUB_PREFIX + cl);
  if (k) {
    memcpy(k, SUB_PREFIX, sizeof SUB_PREFIX - 1);
    memcpy(k + sizeof SUB_PREFIX - 1, client, cl + 1);
    *klen = sizeof SUB_PREFIX - 1 + cl;
  }
  return k;
}

static int subscribers_only(lmz_ctx *ctx) {
  const char *client = origin_client(ctx);
  size_t kl = 0;
  char *key = client ? sub_key(ctx, client, &kl) : NULL;
  lmz_value *v = NULL;
  if (!key || lmz_kv_get_ex(ctx, key, kl, &v) || !v)
    return lmz_throwf(ctx, "Error", "Must be subscribed to edit");
  return 0;
}

/* Pushes the content to every subscriber with one lmz_broadcast: grouped
 * by the node holding each client's socket, one node-port frame per node.
 * The config var EDITOR_FANOUT = "loop" makes it one lmz_call per
 * subscriber instead (the naive fan-out, kept for the broadcast bench). */
static int broadcast(lmz_ctx *ctx, const lmz_value *content) {
  lmz_arena *a = lmz_turn_arena(ctx);
  lmz_value *subs = NULL;
  struct lmz_kv_list_opts lo = {.prefix = SUB_PREFIX};
  int rv = lmz_kv_list(ctx, &lo, &subs);
  if (rv)
    return rv;
  size_t n = lmz_len(subs);
  const char **names = lmz_arena_alloc(a, (n ? n : 1) * sizeof *names);
  if (!names)
    return -1;
  for (size_t i = 0; i < n; i++) { /* keys are "sub:<client>" */
    const char *k = lmz_get_str(lmz_map_key(subs, i), NULL);
    names[i] = k ? k + sizeof SUB_PREFIX - 1 : NULL;
  }
  lmz_value *doc = lmz_cstring(a, lmz_instance_name(ctx));
  lmz_ctn *remote = lmz_ctn_call(lmz_ctn_new(ctx), "handleContentUpdate", 2,
                                 doc, (lmz_value *)content);
  const char *mode = lmz_var(ctx, "EDITOR_FANOUT");
  if (!mode || strcmp(mode, "loop")) {
    struct lmz_broadcast_opts bo = {.new_chain = true};
    return lmz_broadcast(ctx, GATEWAY, names, n, remote, &bo);
  }
  struct lmz_call_opts opts = {.new_chain = true};
  for (size_t i = 0; i < n && !rv; i++)
    rv = lmz_call(ctx, GATEWAY, names[i], remote, NULL, &opts);
  return rv;
}

/* Schema: runs before any call of a new activation. */
static int document_start(lmz_ctx *ctx) {
  int rv = lmz_sql_exec(ctx, "CREATE TABLE IF NOT EXISTS revisions("
                             "id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, "
                             "content TEXT NOT NULL, author TEXT, at REAL NOT NULL)",
                        NULL, 0, NULL);
  return rv ? rv : lmz_sql_exec(ctx, "CREATE UNIQUE INDEX IF NOT EXISTS "
                                     "revisions_by_revision ON revisions(revision)",
                                NULL, 0, NULL);
}

/* One row per update, in the same turn (and commit) as the KV write. */
static int record_revision(lmz_ctx *ctx, lmz_value *content, const char *client) {
  lmz_arena *a = lmz_turn_arena(ctx);
  lmz_value *p[] = {content, client ? lmz_cstring(a, client) : lmz_null(),
                    lmz_number(a, lmz_now_ms(ctx))};
  return lmz_sql_exec(ctx, "INSERT INTO revisions(revision, content, author, at) "
                           "SELECT coalesce(max(revision), 0) + 1, ?, ?, ? "
                           "FROM revisions", p, 3, NULL);
}

static int document_update(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                           lmz_value **result) {
  (void)result;
  if (nargs < 1 || lmz_typeof(args[0]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "update(content): content must be a string");
  const char *client = origin_client(ctx);
  int rv = lmz_kv_put(ctx, "content", args[0]);
  if (!rv)
    rv = record_revision(ctx, args[0], client);
  if (!rv)
    rv = broadcast(ctx, args[0]);
  if (rv || !client)
    return rv;
  lmz_arena *a = lmz_turn_arena(ctx);
  lmz_ctn *check = lmz_ctn_call(lmz_ctn_new(ctx), "check", 3, args[0],
                                lmz_cstring(a, client),
                                lmz_cstring(a, lmz_instance_name(ctx)));
  return lmz_call(ctx, "SPELLCHECK_WORKER", NULL, check, NULL, NULL);
}

static int document_subscribe(lmz_ctx *ctx, lmz_value *const *args,
                              size_t nargs, lmz_value **result) {
  (void)args, (void)nargs;
  lmz_arena *a = lmz_turn_arena(ctx);
  const char *client = origin_client(ctx);
  if (client) { /* remembered once: a repeat writes nothing new */
    size_t kl = 0;
    char *key = sub_key(ctx, client, &kl);
    int rv = key ? lmz_kv_put_ex(ctx, key, kl, lmz_bool(true)) : -1;
    if (rv)
      return rv;
  }
  lmz_value *content = lmz_kv_get(ctx, "content");
  *result = content ? content : lmz_cstring(a, "");
  return 0;
}

static int document_history(lmz_ctx *ctx, lmz_value *const *args,
                            size_t nargs, lmz_value **result) {
  double n = nargs && lmz_typeof(args[0]) == LMZ_T_NUMBER ? lmz_get_number(args[0]) : 10;
  lmz_value *lim = lmz_number(lmz_turn_arena(ctx), n < 0 ? 0 : n > 1000 ? 1000 : n);
  return lmz_sql_query(ctx, "SELECT revision, content, author, at FROM revisions "
                            "ORDER BY revision DESC LIMIT ?", &lim, 1, result);
}

static const lmz_method document_methods[] = {
    LMZ_MESH("update", document_update, subscribers_only),
    LMZ_MESH("subscribe", document_subscribe, NULL),
    LMZ_MESH("history", document_history, NULL),
    LMZ_END,
};

/* ---- SpellCheckWorker ---------------------------------------------------- */

static lmz_value *finding(lmz_arena *a, const char *word, size_t len,
                          size_t position) {
  lmz_value *f = lmz_object(a), *sugg = lmz_array(a, 1);
  if (!f || !sugg || lmz_array_push(sugg, lmz_cstring(a, "the")) ||
      lmz_object_setc(f, "word", lmz_string(a, word, len)) ||
      lmz_object_setc(f, "position", lmz_number(a, (double)position)) ||
      lmz_object_setc(f, "suggestions", sugg))
    return NULL;
  return f;
}

/* Splits on single spaces like the tutorial's content.split(' '). */
static int find_teh(lmz_arena *a, const char *s, size_t n, lmz_value *out) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && s[i] != ' ')
      continue;
    if (i - start == 3 && !strncasecmp(s + start, "teh", 3)) {
      lmz_value *f = finding(a, s + start, 3, start);
      if (!f || lmz_array_push(out, f))
        return -1;
    }
    start = i + 1;
  }
  return 0;
}

/* Sends findings (if any) to the client that made the edit. */
static int deliver_findings(lmz_ctx *ctx, lmz_value *client, lmz_value *doc,
                            lmz_value *findings) {
  if (lmz_len(findings) == 0)
    return 0;
  lmz_ctn *c = lmz_ctn_call(lmz_ctn_new(ctx), "handleSpellFindings", 2, doc, findings);
  return lmz_call(ctx, GATEWAY, lmz_get_str(client, NULL), c, NULL, NULL);
}

static lmz_value *local_findings(lmz_ctx *ctx, lmz_value *content) {
  lmz_arena *a = lmz_turn_arena(ctx);
  size_t n;
  const char *s = lmz_get_str(content, &n);
  lmz_value *findings = lmz_array(a, 0);
  return findings && !find_teh(a, s, n, findings) ? findings : NULL;
}

/* The service's findings: objects with a string "word", at most 100; NULL
 * when the answer is not a 2xx with {"findings": [...]}. Hostile input:
 * anything else is ignored, never trusted. */
static lmz_value *remote_findings(lmz_arena *a, const lmz_value *res) {
  const lmz_value *st = lmz_object_getc(res, "status");
  const lmz_value *body = lmz_object_getc(res, "body");
  const lmz_value *list = body ? lmz_object_getc(body, "findings") : NULL;
  double code = st ? lmz_get_number(st) : 0;
  if (code < 200 || code > 299 || !list || lmz_typeof(list) != LMZ_T_ARRAY)
    return NULL;
  lmz_value *out = lmz_array(a, 0);
  for (size_t i = 0; out && i < lmz_len(list) && lmz_len(out) < 100; i++) {
    lmz_value *f = lmz_array_get(list, i);
    const lmz_value *w = f ? lmz_object_getc(f, "word") : NULL;
    if (w && lmz_typeof(w) == LMZ_T_STRING && lmz_array_push(out, f))
      return NULL;
  }
  return out;
}

/* onSpellResponse(content, clientId, documentId, response or Error). */
static int spell_on_response(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                             lmz_value **result) {
  (void)result;
  if (nargs < 4)
    return lmz_throwf(ctx, "TypeError", "onSpellResponse: 4 arguments");
  lmz_value *findings = lmz_typeof(args[3]) == LMZ_T_ERROR
                            ? NULL : remote_findings(lmz_turn_arena(ctx), args[3]);
  if (!findings && !(findings = local_findings(ctx, args[0])))
    return -1;
  return deliver_findings(ctx, args[1], args[2], findings);
}

static int remote_check(lmz_ctx *ctx, const char *url, lmz_value *const *args) {
  size_t n;
  const char *s = lmz_get_str(args[0], &n);
  static const char *const hs[] = {"Content-Type: text/plain; charset=utf-8",
                                   "Accept: application/json"};
  struct lmz_fetch_req q = {.url = url, .method = "POST", .headers = hs,
                            .n_headers = 2, .body = s, .body_len = n, .json = true};
  lmz_ctn *h = lmz_ctn_call(lmz_ctn_new(ctx), "onSpellResponse", 4, args[0],
                            args[1], args[2], lmz_ctn_result(ctx));
  return lmz_fetch(ctx, &q, h);
}

static int spell_check(lmz_ctx *ctx, lmz_value *const *args, size_t nargs,
                       lmz_value **result) {
  if (nargs < 3 || lmz_typeof(args[0]) != LMZ_T_STRING ||
      lmz_typeof(args[1]) != LMZ_T_STRING)
    return lmz_throwf(ctx, "TypeError", "check(content, clientId, documentId)");
  const char *url = lmz_var(ctx, "SPELLCHECK_URL");
  if (url && *url)
    return remote_check(ctx, url, args);
  lmz_value *findings = local_findings(ctx, args[0]);
  if (!findings)
    return -1;
  *result = findings;
  return deliver_findings(ctx, args[1], args[2], findings);
}

static const lmz_method spell_methods[] = {
    LMZ_MESH("check", spell_check, NULL),
    LMZ_LOCAL("onSpellResponse", spell_on_response),
    LMZ_END,
};

LMZ_EXPORT int lmz_module_init(lmz_registry *r) {
  static const struct lmz_class_opts document_opts = {.on_start = document_start};
  int rv = lmz_register_do(r, "DocumentDO", document_methods, &document_opts);
  return rv ? rv : lmz_register_worker(r, "SpellCheckWorker", spell_methods, NULL);
}
