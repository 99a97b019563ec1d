/* clients/c/proto.c - the lmz client frames (lumenize-behaviour section
 * 2.3): calls and their answers, incoming calls and their answers,
 * connection_status, lmz:ping / lmz:pong.
 *
 * Happy path (a call): lmzc_call gives the call the next numeric callId,
 * records {cb, data} in an open-addressing table keyed by that number,
 * writes {"type":"call","callId":"17","binding":..,"instance":..,
 * "chain":SC[,"callContext":{"state":SC}]} and frames it (client.c). The
 * call_response with callId "17" takes the entry out, its SC-JSON result
 * or error is decoded into the scratch arena and the callback runs; the
 * arena is reset after each frame.
 * Incoming: an incoming_call is decoded into an arena of its own (it
 * lives until the application answers), the handler runs, lmzc_respond
 * writes {"type":"incoming_call_response","callId",.."success",
 * "result"|"error"} and frees it.
 * Dispatch is a table of one small handler per frame type; "lmz:pong"
 * (not JSON) is matched first.
 *
 * Failure modes (server input):
 *  1. binary frames, text that is not JSON or not an object with a string
 *     "type", unknown types (on_unknown if set): ignored, counted;
 *  2. a call_response whose callId is not one of ours: ignored, counted
 *     (replies_unknown);
 *  3. a call_response without a boolean "success", or whose payload does
 *     not decode (codec limits: max_message, depth 512): that call fails
 *     with LMZ_EBADMSG and lmzc_errmsg says why;
 *  4. an incoming_call without a usable callId: ignored; with a malformed
 *     chain or context: answered with an Error saying so;
 *  5. a pong with no ping out: ignored.
 * Nothing here allocates per call on the hot path except table growth. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients/c/lmzc_int.h"
#include "core/codec.h"

#define PLAIN_MAX_DEPTH 64

/* ---- the call table ------------------------------------------------------ */

static size_t home(uint64_t id, size_t mask) {
  return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int calls_grow(struct lmz__cc_calls *t) {
  size_t cap = t->cap ? t->cap * 2 : 64;
  struct lmz__cc_slot *s = calloc(cap, sizeof *s);
  if (!s)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    if (!t->s[i].id)
      continue;
    size_t j = home(t->s[i].id, cap - 1);
    while (s[j].id)
      j = (j + 1) & (cap - 1);
    s[j] = t->s[i];
  }
  free(t->s);
  t->s = s;
  t->cap = cap;
  return 0;
}

static int calls_put(struct lmz__cc_calls *t, uint64_t id, lmzc_reply_cb cb,
                     void *data) {
  if ((t->n + 1) * 2 > t->cap && calls_grow(t)) /* load <= 1/2 */
    return LMZ_ENOMEM;
  size_t mask = t->cap - 1, i = home(id, mask);
  while (t->s[i].id)
    i = (i + 1) & mask;
  t->s[i] = (struct lmz__cc_slot){id, cb, data};
  t->n++;
  return 0;
}

/* Removes id; true and *out when it was there. Backward-shift deletion
 * keeps every probe sequence unbroken without tombstones. */
static bool calls_take(struct lmz__cc_calls *t, uint64_t id,
                       struct lmz__cc_slot *out) {
  if (!t->cap || !id)
    return false;
  size_t mask = t->cap - 1, i = home(id, mask);
  while (t->s[i].id && t->s[i].id != id)
    i = (i + 1) & mask;
  if (!t->s[i].id)
    return false;
  *out = t->s[i];
  for (size_t j = (i + 1) & mask; t->s[j].id; j = (j + 1) & mask) {
    size_t k = home(t->s[j].id, mask);
    /* move s[j] into the hole when its home is not in (i, j] cyclically */
    bool keep = i <= j ? (k > i && k <= j) : (k > i || k <= j);
    if (!keep) {
      t->s[i] = t->s[j];
      i = j;
    }
  }
  t->s[i].id = 0;
  t->n--;
  return true;
}

void lmz__cc_calls_free(struct lmz__cc_calls *t) {
  free(t->s);
  *t = (struct lmz__cc_calls){0};
}

/* ---- pings --------------------------------------------------------------- */

static int ping_push(lmzc_t *c, lmzc_pong_cb cb, void *data) {
  if (c->ping_n == c->ping_cap) {
    size_t cap = c->ping_cap ? c->ping_cap * 2 : 8;
    struct lmz__cc_ping *r = malloc(cap * sizeof *r);
    if (!r)
      return LMZ_ENOMEM;
    for (size_t i = 0; i < c->ping_n; i++)
      r[i] = c->pings[(c->ping_head + i) % c->ping_cap];
    free(c->pings);
    c->pings = r;
    c->ping_cap = cap;
    c->ping_head = 0;
  }
  c->pings[(c->ping_head + c->ping_n) % c->ping_cap] = (struct lmz__cc_ping){cb, data};
  c->ping_n++;
  return 0;
}

static void on_pong(lmzc_t *c) {
  if (!c->ping_n) {
    c->st.frames_ignored++;
    return;
  }
  struct lmz__cc_ping p = c->pings[c->ping_head];
  c->ping_head = (c->ping_head + 1) % c->ping_cap;
  c->ping_n--;
  c->st.pongs++;
  if (p.cb)
    p.cb(c, p.data, 0);
  else
    c->hb_outstanding = false;
}

int lmzc_ping(lmzc_t *c, lmzc_pong_cb cb, void *data) {
  if (c->closing || c->state == CC_DEAD)
    return LMZ_ECLOSED;
  if (c->state != CC_READY)
    return LMZ_EBUSY;
  int rv = ping_push(c, cb, data);
  if (!rv)
    rv = lmz__cc_send_text(c, "lmz:ping", 8, false);
  if (rv) {
    c->ping_n--; /* the entry just pushed */
    return rv;
  }
  c->st.pings_sent++;
  return 0;
}

void lmz__cc_heartbeat(lmzc_t *c) {
  if (c->hb_outstanding) { /* a whole interval without the pong: dead */
    lmz__errmsg_printf(c->errmsg, "no lmz:pong within %d ms", c->heartbeat_ms);
    lmz__cc_fail(c, LMZ_ETIMEOUT, 1006, "heartbeat timeout", 17);
    return;
  }
  if (ping_push(c, NULL, NULL) == 0) {
    if (lmz__cc_send_text(c, "lmz:ping", 8, false) == 0) {
      c->hb_outstanding = true;
      c->st.pings_sent++;
    } else {
      c->ping_n--;
    }
  }
}

void lmz__cc_fail_all(lmzc_t *c, int status) {
  struct lmz__cc_calls t = c->calls; /* detached: callbacks may re-enter */
  c->calls = (struct lmz__cc_calls){0};
  struct lmz__cc_ping *pings = c->pings;
  size_t head = c->ping_head, n = c->ping_n, cap = c->ping_cap;
  c->pings = NULL;
  c->ping_n = c->ping_cap = c->ping_head = 0;
  c->hb_outstanding = false;
  c->n_queued = 0;
  lmz_buf_free(&c->queued);
  for (size_t i = 0; i < t.cap; i++)
    if (t.s[i].id && t.s[i].cb)
      t.s[i].cb(c, t.s[i].data, status, false, NULL);
  lmz__cc_calls_free(&t);
  for (size_t i = 0; i < n; i++) {
    struct lmz__cc_ping *p = &pings[(head + i) % cap];
    if (p->cb)
      p->cb(c, p->data, status);
  }
  free(pings);
}

/* ---- outgoing calls ------------------------------------------------------ */

static int put_sc(lmzc_t *c, lmz_buf *b, const lmz_value *v, const char *what) {
  struct lmz_codec_error err;
  int rv = lmz_scjson_encode(v, b, &err);
  if (rv)
    lmz__errmsg_printf(c->errmsg, "%s: %s", what, err.msg);
  return rv;
}

static int build_call(lmzc_t *c, lmz_buf *b, uint64_t id, const char *binding,
                      const char *instance, const lmz_value *chain,
                      const struct lmzc_call_opts *o) {
  int rv = lmz_buf_printf(b, "{\"type\":\"call\",\"callId\":\"%llu\",\"binding\":",
                          (unsigned long long)id);
  if (!rv)
    rv = lmz_json_write_string(b, binding, strlen(binding));
  if (!rv && instance) {
    rv = lmz_buf_append_str(b, ",\"instance\":");
    if (!rv)
      rv = lmz_json_write_string(b, instance, strlen(instance));
  }
  if (!rv)
    rv = lmz_buf_append_str(b, ",\"chain\":");
  if (!rv && o && o->chain_scjson)
    rv = lmz_buf_append(b, o->chain_scjson, o->chain_scjson_len);
  else if (!rv)
    rv = put_sc(c, b, chain, "chain");
  if (!rv && o && o->state) {
    rv = lmz_buf_append_str(b, ",\"callContext\":{\"state\":");
    if (!rv)
      rv = put_sc(c, b, o->state, "state");
    if (!rv)
      rv = lmz_buf_putc(b, '}');
  }
  return rv ? rv : lmz_buf_putc(b, '}');
}

/* A big frame's scratch buffer is not kept. */
static void tx_done(lmzc_t *c) {
  c->tx.len = 0;
  if (c->tx.cap > (256u << 10))
    lmz_buf_free(&c->tx);
}

int lmzc_call_ex(lmzc_t *c, const char *binding, const char *instance,
                 const lmz_value *chain, const struct lmzc_call_opts *o,
                 lmzc_reply_cb cb, void *data) {
  if (!c || !binding || (!chain && !(o && o->chain_scjson)))
    return LMZ_EINVAL;
  if (c->closing || c->state == CC_DEAD)
    return LMZ_ECLOSED;
  uint64_t id = ++c->next_id;
  c->tx.len = 0;
  int rv = build_call(c, &c->tx, id, binding, instance, chain, o);
  if (!rv && c->tx.len > c->max_send) { /* the gateway would close (1009) */
    lmz__errmsg_printf(c->errmsg, LMZC_TOO_BIG_REASON ": a call of %zu bytes "
                       "is over max_send_message (%zu)", c->tx.len, c->max_send);
    rv = LMZ_ETOOBIG;
  }
  if (!rv)
    rv = calls_put(&c->calls, id, cb, data);
  if (rv) {
    tx_done(c);
    return rv;
  }
  rv = lmz__cc_send_text(c, c->tx.data, c->tx.len, true);
  tx_done(c);
  if (rv) {
    struct lmz__cc_slot s;
    calls_take(&c->calls, id, &s);
    return rv;
  }
  c->st.calls_sent++;
  return 0;
}

int lmzc_call(lmzc_t *c, const char *binding, const char *instance,
              const lmz_value *chain, lmzc_reply_cb cb, void *data) {
  return lmzc_call_ex(c, binding, instance, chain, NULL, cb, data);
}

/* ---- received frames ----------------------------------------------------- */

static const char *jstr(const lmz_json *obj, const char *key, size_t *len) {
  const lmz_json *v = lmz_json_get(obj, key);
  if (!v || v->type != LMZ_JSON_STRING)
    return NULL;
  *len = v->u.str.len;
  return v->u.str.p;
}

/* Our callIds are decimal numbers without leading zeros. */
static bool parse_id(const char *s, size_t n, uint64_t *out) {
  uint64_t v = 0;
  if (n == 0 || n > 19 || s[0] == '0')
    return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return true;
}

static int decode_sc(lmzc_t *c, lmz_arena *a, const lmz_json *j,
                     lmz_value **out, const char *what) {
  if (!j) {
    *out = lmz_undefined();
    return 0;
  }
  if (j->type == LMZ_JSON_NULL) {
    *out = lmz_null();
    return 0;
  }
  struct lmz_codec_limits lim;
  struct lmz_codec_error err;
  lmz_codec_limits_default(&lim);
  lim.max_input = c->max_message;
  int rv = lmz_scjson_decode_dom(a, j, &lim, out, &err);
  if (rv)
    lmz__errmsg_printf(c->errmsg, "malformed %s: %s", what, err.msg);
  return rv;
}

static void on_call_response(lmzc_t *c, const lmz_json *msg) {
  size_t n;
  const char *id = jstr(msg, "callId", &n);
  uint64_t num;
  struct lmz__cc_slot s;
  if (!id || !parse_id(id, n, &num) || !calls_take(&c->calls, num, &s)) {
    c->st.replies_unknown++;
    LMZ_LOG_DEBUG(&lmz__cc_log, "%s: answer to unknown call ignored", c->instance);
    return;
  }
  c->st.replies++;
  const lmz_json *succ = lmz_json_get(msg, "success");
  bool ok = succ && succ->type == LMZ_JSON_TRUE;
  lmz_value *v = NULL;
  int status = 0;
  if (!succ || (succ->type != LMZ_JSON_TRUE && succ->type != LMZ_JSON_FALSE)) {
    lmz__errmsg_printf(c->errmsg, "call_response without a boolean success");
    status = LMZ_EBADMSG;
  } else if (decode_sc(c, c->scratch, lmz_json_get(msg, ok ? "result" : "error"),
                       &v, ok ? "result" : "error")) {
    status = LMZ_EBADMSG;
  }
  if (s.cb)
    s.cb(c, s.data, status, status ? false : ok, status ? NULL : v);
}

static void on_status(lmzc_t *c, const lmz_json *msg) {
  const lmz_json *sr = lmz_json_get(msg, "subscriptionRequired");
  bool req = sr && sr->type == LMZ_JSON_TRUE;
  if (c->state == CC_OPENING)
    lmz__cc_ready(c, req);
  else
    c->sub_required = req;
}

/* ---- incoming calls ------------------------------------------------------ */

struct cc_in {
  lmzc_incoming_t pub;
  lmzc_t *c;
  size_t id_len;
  char id[];
};


/* Decodes chain and callContext into in's arena. 0 or an error (errmsg). */
static int decode_incoming(lmzc_t *c, struct cc_in *in, const lmz_json *msg) {
  lmz_arena *a = in->pub.arena;
  const lmz_json *chain = lmz_json_get(msg, "chain");
  const lmz_json *cc = lmz_json_get(msg, "callContext");
  if (!chain || chain->type != LMZ_JSON_OBJECT) {
    lmz__errmsg_printf(c->errmsg, "malformed incoming_call: no chain");
    return LMZ_EBADMSG;
  }
  if (cc && cc->type != LMZ_JSON_OBJECT)
    cc = NULL;
  const lmz_json *ch = cc ? lmz_json_get(cc, "callChain") : NULL;
  const lmz_json *oa = cc ? lmz_json_get(cc, "originAuth") : NULL;
  int rv = decode_sc(c, a, chain, &in->pub.chain, "incoming chain");
  if (!rv)
    rv = decode_sc(c, a, cc ? lmz_json_get(cc, "state") : NULL, &in->pub.state,
                   "incoming state");
  if (rv)
    return rv;
  if (lmz_typeof(in->pub.state) != LMZ_T_OBJECT)
    in->pub.state = lmz_object(a);
  in->pub.call_chain = ch && ch->type == LMZ_JSON_ARRAY ? lmz_json_to_value(a, ch, PLAIN_MAX_DEPTH)
                                                        : lmz_array(a, 0);
  in->pub.origin_auth = oa && oa->type == LMZ_JSON_OBJECT ? lmz_json_to_value(a, oa, PLAIN_MAX_DEPTH) : NULL;
  if (!in->pub.state || !in->pub.call_chain || (oa && oa->type == LMZ_JSON_OBJECT &&
                                                !in->pub.origin_auth)) {
    lmz__errmsg_printf(c->errmsg, "malformed incoming_call: callContext");
    return LMZ_EBADMSG;
  }
  return 0;
}

static void on_incoming_call(lmzc_t *c, const lmz_json *msg) {
  size_t n;
  const char *id = jstr(msg, "callId", &n);
  if (!id || !n || n > LMZ__CC_CALL_ID_MAX) {
    c->st.frames_ignored++;
    return;
  }
  lmz_arena *a = lmz_arena_new();
  struct cc_in *in = a ? lmz_arena_alloc(a, sizeof *in + n + 1) : NULL;
  if (!in) {
    lmz_arena_free(a);
    c->st.frames_ignored++; /* the gateway times the call out */
    return;
  }
  memset(in, 0, sizeof *in);
  in->pub.arena = a;
  in->pub.client = c;
  in->c = c;
  in->id_len = n;
  memcpy(in->id, id, n);
  in->id[n] = '\0';
  in->pub.call_id = in->id;
  c->refs++; /* until lmzc_respond */
  c->st.incoming++;
  if (decode_incoming(c, in, msg)) {
    lmzc_respond(&in->pub, false, lmz_error(a, "Error", c->errmsg));
    return;
  }
  if (!c->on_incoming) {
    lmzc_respond(&in->pub, false,
                 lmz_error(a, "Error", "No handler for incoming calls"));
    return;
  }
  c->on_incoming(c, &in->pub, c->incoming_data);
}

void lmzc_on_incoming(lmzc_t *c, lmzc_incoming_cb handler, void *data) {
  c->on_incoming = handler;
  c->incoming_data = data;
}

static int build_answer(lmzc_t *c, lmz_buf *b, struct cc_in *in, bool ok,
                        const lmz_value *v) {
  (void)c;
  int rv = lmz_buf_append_str(b, "{\"type\":\"incoming_call_response\",\"callId\":");
  if (!rv)
    rv = lmz_json_write_string(b, in->id, in->id_len);
  size_t at = b->len;
  if (!rv)
    rv = lmz_buf_append_str(b, ok ? ",\"success\":true,\"result\":"
                                  : ",\"success\":false,\"error\":");
  struct lmz_codec_error err;
  if (!rv && (rv = lmz_scjson_encode(v ? v : lmz_undefined(), b, &err)) &&
      rv != LMZ_ENOMEM) { /* a value SC-JSON cannot carry: an error instead */
    b->len = at;
    char msg[300];
    snprintf(msg, sizeof msg, "the value cannot be sent: %s", err.msg);
    lmz_value *e = lmz_error(in->pub.arena, "DataCloneError", msg);
    rv = lmz_buf_append_str(b, ",\"success\":false,\"error\":");
    if (!rv)
      rv = e ? lmz_scjson_encode(e, b, NULL) : LMZ_ENOMEM;
  }
  return rv ? rv : lmz_buf_putc(b, '}');
}

int lmzc_respond(lmzc_incoming_t *pub, bool ok, const lmz_value *v) {
  struct cc_in *in = lmz_container_of(pub, struct cc_in, pub);
  lmzc_t *c = in->c;
  int rv = LMZ_ECLOSED;
  if (!c->closing && c->state == CC_READY) {
    c->tx.len = 0;
    rv = build_answer(c, &c->tx, in, ok, v);
    if (!rv)
      rv = lmz__cc_send_text(c, c->tx.data, c->tx.len, false);
    tx_done(c);
    if (!rv)
      c->st.incoming_answered++;
  }
  lmz_arena_free(pub->arena);
  lmz__cc_unref(c);
  return rv;
}

/* ---- dispatch ------------------------------------------------------------ */

static const struct {
  const char *type;
  void (*fn)(lmzc_t *c, const lmz_json *msg);
} handlers[] = {
    {"call_response", on_call_response},
    {"incoming_call", on_incoming_call},
    {"connection_status", on_status},
};

static void dispatch(lmzc_t *c, const lmz_json *msg, const uint8_t *data,
                     size_t len) {
  size_t tlen;
  const char *type = msg->type == LMZ_JSON_OBJECT ? jstr(msg, "type", &tlen) : NULL;
  if (!type) {
    c->st.frames_ignored++;
    return;
  }
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(handlers); i++)
    if (!strcmp(type, handlers[i].type)) {
      handlers[i].fn(c, msg);
      return;
    }
  c->st.frames_ignored++;
  if (c->on_unknown)
    c->on_unknown(c, (const char *)data, len);
}

void lmz__cc_on_message(void *owner, bool is_text, const uint8_t *data,
                        size_t len) {
  lmzc_t *c = owner;
  c->st.frames_in++;
  if (c->closing || c->state == CC_DEAD)
    return; /* closing: only the Close handshake matters now */
  if (!is_text) {
    c->st.frames_ignored++;
    return;
  }
  if (len == 8 && !memcmp(data, "lmz:pong", 8)) {
    on_pong(c);
    return;
  }
  struct lmz_json_opts jo = {.max_depth = 512, .max_len = c->max_message};
  struct lmz_codec_error err;
  lmz_json *msg = NULL;
  if (lmz_json_parse(c->scratch, (const char *)data, len, &jo, &msg, &err)) {
    c->st.frames_ignored++;
    LMZ_LOG_DEBUG(&lmz__cc_log, "%s: frame ignored: %s", c->instance, err.msg);
  } else {
    dispatch(c, msg, data, len);
  }
  lmz_arena_reset(c->scratch);
}
