/* actor/broadcast_in.c - Broadcast frames arriving on the node port (the
 * receiving side of lmz_broadcast; proto/lmz.proto Broadcast).
 *
 * Happy path: a peer's Broadcast -> validated (version 1, a durable-object
 * binding, target count <= LMZ_BROADCAST_MAX, results mode) -> its chain and
 * call context decoded once (binary codec, bounded) -> per target: the
 * owner check of a forwarded call (lmz_router_check_owner: ours at that
 * epoch) -> a call message of its own, routed here (never forwarded again)
 * -> one BroadcastResult (accepted) listing the refused targets. When the
 * sender wants outcomes (results 1: failures, 2: all), they are collected
 * per batch as the calls settle and leave coalesced, once per loop
 * iteration (uv_check), the last one with `final`.
 * Failure modes:
 *  1. from an operator connection, bad version, unknown or worker binding,
 *     too many targets, undecodable chain or context: every target is
 *     answered with an error (code LMZ_EBADMSG / LMZ_EINVAL, a detail), in
 *     one final frame; nothing runs;
 *  2. a target we do not own (directory moved on, a drain moving it): MOVED
 *     with our epoch; our lease is not valid: UNAVAILABLE (both without a
 *     value: the sender routes that target again, alone); a bad instance
 *     name: EINVAL;
 *  3. out of memory for a target: that target answers ENOMEM;
 *  4. an outcome value over the frame cap: replaced by an error saying so;
 *  5. the link to the sender is down when answering: the answer is dropped
 *     (the sender's flight fails its targets on the link's DOWN);
 *  6. the router closes: no more answers; a batch is freed when its last
 *     call settled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actor/broadcast_int.h"
#include "core/codec.h"
#include "storage/keys.h"

static lmz_log_ns log_ns = LMZ_LOG_NS("lmz.actor.broadcast");

struct bin_out { /* one outcome waiting to be sent */
  uint32_t index;
  bool ok;
  int code;
  uint64_t epoch;
  uint8_t *val; /* encoded value (malloc'd), or NULL */
  size_t vlen;
};

struct bin_ref {
  struct lmz__bin *bin;
  uint32_t index;
};

struct lmz__bin {
  struct lmz__bcast_rt *rt;
  uint64_t peer, batch_id;
  uint32_t results;     /* 0 none, 1 failures, 2 all */
  uint32_t outstanding; /* targets started whose call has not settled */
  bool starting;        /* still in on_frame: no final yet */
  bool dirty;           /* on rt->dirty */
  bool final_sent;
  struct lmz__bin *next_dirty;
  struct bin_out *out;
  size_t n_out, cap_out;
  struct bin_ref *refs;
};

/* ---- answering ------------------------------------------------------------- */

static int out_push(struct lmz__bin *bn, struct bin_out o) {
  if (bn->n_out == bn->cap_out) {
    size_t cap = bn->cap_out ? bn->cap_out * 2 : 16;
    struct bin_out *p = realloc(bn->out, cap * sizeof *p);
    if (!p)
      return LMZ_ENOMEM;
    bn->out = p;
    bn->cap_out = cap;
  }
  bn->out[bn->n_out++] = o;
  return 0;
}

/* Sends outcomes [from, to) of bn in one frame. */
static void send_slice(struct lmz__bin *bn, size_t from, size_t to, bool accepted,
                       bool final) {
  size_t k = to - from;
  Lmz__BroadcastOutcome *ov = k ? malloc(k * sizeof *ov) : NULL;
  Lmz__BroadcastOutcome **op = k ? malloc(k * sizeof *op) : NULL;
  if (k && (!ov || !op)) {
    LMZ_LOG_WARN(&log_ns, "out of memory answering broadcast %llu",
                 (unsigned long long)bn->batch_id);
    free(ov);
    free(op);
    return;
  }
  for (size_t i = 0; i < k; i++) {
    const struct bin_out *o = &bn->out[from + i];
    lmz__broadcast_outcome__init(&ov[i]);
    ov[i].index = o->index;
    ov[i].ok = o->ok;
    ov[i].code = o->code;
    ov[i].epoch = o->epoch;
    ov[i].detail = (char *)(o->code ? lmz_strerror(o->code) : "");
    ov[i].value = (ProtobufCBinaryData){o->vlen, o->val};
    op[i] = &ov[i];
  }
  Lmz__BroadcastResult res = LMZ__BROADCAST_RESULT__INIT;
  res.batch_id = bn->batch_id;
  res.n_outcomes = k;
  res.outcomes = op;
  res.accepted = accepted;
  res.final = final;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_BROADCAST_RESULT;
  f.broadcast_result = &res;
  int rv = lmz__router_send(bn->rt->r, bn->peer, &f);
  if (rv)
    LMZ_LOG_DEBUG(&log_ns, "broadcast %llu: answer not sent: %s",
                  (unsigned long long)bn->batch_id, lmz_strerror(rv));
  free(ov);
  free(op);
}

/* Sends what bn collected, in frames under the frame cap. */
static void bin_flush(struct lmz__bin *bn, bool accepted) {
  bool final = !bn->starting && bn->outstanding == 0;
  size_t from = 0, len = 64;
  if (!bn->final_sent && !bn->rt->closing) {
    for (size_t i = 0; i < bn->n_out; i++) {
      size_t add = bn->out[i].vlen + 64;
      if (i > from && len + add > LMZ_FRAME_MAX_DEFAULT) {
        send_slice(bn, from, i, accepted, false);
        accepted = false;
        from = i;
        len = 64;
      }
      len += add;
    }
    if (from < bn->n_out || accepted || final)
      send_slice(bn, from, bn->n_out, accepted, final);
    bn->final_sent = final;
  }
  for (size_t i = 0; i < bn->n_out; i++)
    free(bn->out[i].val);
  bn->n_out = 0;
}

static void bin_free(struct lmz__bin *bn) {
  for (size_t i = 0; i < bn->n_out; i++)
    free(bn->out[i].val);
  free(bn->out);
  free(bn->refs);
  free(bn);
}

static void flush_cb(uv_check_t *h) {
  struct lmz__bcast_rt *rt = h->data;
  struct lmz__bin *bn = rt->dirty;
  rt->dirty = NULL;
  rt->flush_armed = false;
  uv_check_stop(h);
  while (bn) {
    struct lmz__bin *next = bn->next_dirty;
    bn->dirty = false;
    bin_flush(bn, false);
    if (bn->outstanding == 0)
      bin_free(bn);
    bn = next;
  }
}

static void mark_dirty(struct lmz__bin *bn) {
  struct lmz__bcast_rt *rt = bn->rt;
  if (bn->dirty)
    return;
  bn->dirty = true;
  bn->next_dirty = rt->dirty;
  rt->dirty = bn;
  if (!rt->flush_armed && !rt->closing) {
    rt->flush_armed = true;
    uv_check_start(&rt->flush, flush_cb);
  }
}

/* One target's call settled (results wanted). The last one of the batch
 * makes it final; the flush sends it and frees the batch. */
static void target_done(void *arg, int status, bool ok, const lmz_value *v) {
  struct bin_ref *ref = arg;
  struct lmz__bin *bn = ref->bin;
  bool success = status == 0 && ok;
  bn->outstanding--;
  if (!success || bn->results == 2) {
    struct bin_out o = {ref->index, success, 0, 0, NULL, 0};
    lmz_buf enc = LMZ_BUF_INIT;
    if (v && lmz_bin_encode(v, &enc, NULL) == 0) {
      o.val = lmz_buf_detach(&enc, &o.vlen);
      if (o.vlen + 64 > LMZ_FRAME_MAX_DEFAULT) { /* never fits: say so */
        free(o.val);
        o = (struct bin_out){ref->index, false, LMZ_ETOOBIG, 0, NULL, 0};
      }
    } else {
      lmz_buf_free(&enc);
      o.code = status ? status : LMZ_ENOMEM;
    }
    if (out_push(bn, o))
      free(o.val);
  }
  if (bn->rt->closing) { /* nobody to answer: forget it once done */
    if (bn->outstanding == 0 && !bn->starting && !bn->dirty)
      bin_free(bn);
    return;
  }
  if (bn->n_out || (bn->outstanding == 0 && !bn->starting))
    mark_dirty(bn);
}

/* ---- receiving a Broadcast --------------------------------------------- */

/* Every target refused with `code` (nothing runs), in one final frame. */
static void refuse_all(struct lmz__bcast_rt *rt, uint64_t peer,
                       const Lmz__Broadcast *b, int code, const char *why) {
  const char *t = b->ctx ? b->ctx->trace_id : NULL; /* hostile: checked */
  LMZ_LOG_WARN(&log_ns, "broadcast %llu from node %llu refused: %s trace=%s",
               (unsigned long long)b->batch_id, (unsigned long long)peer, why,
               t && lmz_trace_id_valid(t, strnlen(t, LMZ_TRACE_ID_LEN + 1)) ? t : "");
  struct lmz__bin bn = {.rt = rt, .peer = peer, .batch_id = b->batch_id};
  size_t n = b->n_targets <= LMZ_BROADCAST_MAX ? b->n_targets : 0;
  for (size_t i = 0; i < n; i++)
    if (out_push(&bn, (struct bin_out){(uint32_t)i, false, code, 0, NULL, 0}))
      break;
  bin_flush(&bn, true);
  free(bn.out);
}

/* The shared part of every target's call: chain and context, decoded once
 * into `a`. Returns 0 or an error with msg set. */
static int decode_template(const Lmz__Broadcast *b, lmz_arena *a,
                           lmz_value **chain, struct lmz_cctx *cc, char *msg,
                           size_t msglen) {
  struct lmz_codec_limits lim;
  struct lmz_codec_error err;
  lmz_codec_limits_default(&lim);
  lim.max_input = LMZ_FRAME_MAX_DEFAULT;
  const Lmz__CallContext *c = b->ctx;
  if (!c || c->n_call_chain > LMZ_MAX_CALL_CHAIN) {
    snprintf(msg, msglen, "missing or oversized callContext");
    return LMZ_EBADMSG;
  }
  *cc = (struct lmz_cctx){.present = true, .n = c->n_call_chain};
  /* hostile: kept only when valid, else each target starts a trace */
  if (c->trace_id &&
      lmz_trace_id_valid(c->trace_id, strnlen(c->trace_id, LMZ_TRACE_ID_LEN + 1)))
    memcpy(cc->trace_id, c->trace_id, LMZ_TRACE_ID_LEN + 1);
  cc->chain = lmz_arena_alloc(a, (cc->n ? cc->n : 1) * sizeof *cc->chain);
  if (!cc->chain)
    return LMZ_ENOMEM;
  for (size_t i = 0; i < cc->n; i++) {
    const Lmz__Identity *id = c->call_chain[i];
    if (id->type > LMZ_NODE_CLI || !id->binding || !*id->binding) {
      snprintf(msg, msglen, "malformed callChain");
      return LMZ_EBADMSG;
    }
    cc->chain[i] = (lmz_identity){(lmz_node_type)id->type, id->binding,
                                  id->has_instance ? id->instance : NULL};
  }
  const ProtobufCBinaryData *in[3] = {&b->chain, &c->state, &c->origin_auth};
  lmz_value **outv[3] = {chain, &cc->state, &cc->origin_auth};
  static const char *const what[3] = {"chain", "state", "originAuth"};
  for (int i = 0; i < 3; i++) {
    *outv[i] = NULL;
    if ((i == 0 || in[i]->len) &&
        lmz_bin_decode(a, in[i]->data, in[i]->len, &lim, outv[i], &err)) {
      snprintf(msg, msglen, "malformed %s: %s", what[i], err.msg);
      return LMZ_EBADMSG;
    }
  }
  if (cc->state && lmz_typeof(cc->state) != LMZ_T_OBJECT) {
    snprintf(msg, msglen, "callContext.state must be a plain object");
    return LMZ_EBADMSG;
  }
  return 0;
}

/* One target: refused (an outcome in bn), or a call message started here. */
static void start_target(struct lmz__bin *bn, struct lmz_binding *bd,
                         const Lmz__BroadcastTarget *t, uint32_t i,
                         const lmz_value *chain, const struct lmz_cctx *cc) {
  lmz_router_t *r = bn->rt->r;
  lmz_node_t *n = lmz__router_node(r);
  size_t il = t->instance ? strlen(t->instance) : 0;
  uint64_t cur = 0;
  int rv = !il || il > LMZ_KEY_INSTANCE_MAX ? LMZ_EINVAL
           : lmz_router_check_owner(r, bd->name, t->instance, t->epoch, &cur);
  lmz_msg *m = rv ? NULL : lmz__bcast_target_msg(n, bd, t->instance, chain, cc);
  if (!rv && !m)
    rv = LMZ_ENOMEM;
  if (rv) {
    if (rv == LMZ_EMOVED || rv == LMZ_EUNAVAILABLE)
      bn->rt->refused_out++;
    out_push(bn, (struct bin_out){i, false, rv, cur, NULL, 0});
    return;
  }
  m->routed = true; /* the owner check passed: run here */
  m->epoch = t->epoch;
  if (bn->results) {
    bn->refs[i] = (struct bin_ref){bn, i};
    m->rkind = LMZ_REPLY_CB;
    m->cb = target_done;
    m->cb_arg = &bn->refs[i];
    bn->outstanding++;
  }
  rv = lmz__deliver(n, m);
  if (rv) /* not taken: its reply says why (target_done with results) */
    lmz__msg_fail(n, m, lmz__error_value(m->arena, "Error", "%s", lmz_strerror(rv)));
}

static int check_frame(struct lmz__bcast_rt *rt, uint64_t peer,
                       const Lmz__Broadcast *b, struct lmz_binding **bd) {
  const char *why = NULL;
  if (peer == 0)
    why = "broadcast frames are accepted from peer nodes only";
  else if (b->version != 1)
    why = "unsupported broadcast version";
  else if (b->n_targets > LMZ_BROADCAST_MAX || b->results > 2)
    why = "too many targets or a bad results mode";
  else if (!b->binding ||
           !(*bd = lmz__binding_get(lmz__router_node(rt->r), b->binding)) ||
           (*bd)->kind != LMZ_NODE_DO)
    why = "no durable-object binding of that name";
  if (why)
    refuse_all(rt, peer, b, LMZ_EINVAL, why);
  return why ? LMZ_EINVAL : 0;
}

void lmz__bcast_on_frame(struct lmz__bcast_rt *rt, lmz_conn_t *conn,
                         uint64_t peer, const Lmz__Broadcast *b) {
  (void)conn;
  struct lmz_binding *bd = NULL;
  if (rt->closing || check_frame(rt, peer, b, &bd))
    return;
  rt->frames_in++;
  rt->targets_in += b->n_targets;
  char msg[LMZ_ERRMSG_LEN] = "";
  lmz_arena *a = lmz_arena_new();
  lmz_value *chain = NULL;
  struct lmz_cctx cc;
  struct lmz__bin *bn = calloc(1, sizeof *bn);
  int rv = a && bn ? decode_template(b, a, &chain, &cc, msg, sizeof msg) : LMZ_ENOMEM;
  if (!rv && b->results && b->n_targets &&
      !(bn->refs = malloc(b->n_targets * sizeof *bn->refs)))
    rv = LMZ_ENOMEM;
  if (rv) {
    refuse_all(rt, peer, b, rv, msg[0] ? msg : lmz_strerror(rv));
    lmz_arena_free(a);
    if (bn)
      bin_free(bn);
    return;
  }
  *bn = (struct lmz__bin){.rt = rt, .peer = peer, .batch_id = b->batch_id,
                          .results = b->results, .starting = true,
                          .refs = bn->refs};
  for (size_t i = 0; i < b->n_targets; i++)
    start_target(bn, bd, b->targets[i], (uint32_t)i, chain, &cc);
  lmz_arena_free(a); /* every target copied what it needs */
  bn->starting = false;
  bin_flush(bn, true); /* accepted: the refusals, final if nothing waits */
  if (bn->outstanding == 0 && !bn->dirty)
    bin_free(bn);
}

/* ---- the router's broadcast state ------------------------------------------ */

int lmz__bcast_rt_new(lmz_router_t *r, uv_loop_t *loop,
                      struct lmz__bcast_rt **out) {
  struct lmz__bcast_rt *rt = calloc(1, sizeof *rt);
  if (!rt)
    return LMZ_ENOMEM;
  rt->r = r;
  uv_check_init(loop, &rt->flush);
  rt->flush.data = rt;
  *out = rt;
  return 0;
}

static void flush_closed(uv_handle_t *h) {
  struct lmz__bcast_rt *rt = h->data;
  if (rt->close_cb)
    rt->close_cb(rt->close_arg);
}

void lmz__bcast_rt_close(struct lmz__bcast_rt *rt, void (*cb)(void *arg),
                         void *arg) {
  rt->closing = true;
  rt->close_cb = cb;
  rt->close_arg = arg;
  lmz__bcast_rt_fail_flights(rt);
  struct lmz__bin *bn = rt->dirty;
  rt->dirty = NULL;
  while (bn) { /* nothing more is sent; running calls free their batch */
    struct lmz__bin *next = bn->next_dirty;
    bn->dirty = false;
    bin_flush(bn, false);
    if (bn->outstanding == 0)
      bin_free(bn);
    bn = next;
  }
  uv_close((uv_handle_t *)&rt->flush, flush_closed);
}

void lmz__bcast_rt_free(struct lmz__bcast_rt *rt) {
  if (!rt)
    return;
  lmz_hmap_free(&rt->flights);
  free(rt);
}

void lmz__bcast_rt_stats(struct lmz__bcast_rt *rt, struct lmz_router_stats *st) {
  st->bcast_frames_out = rt->frames_out;
  st->bcast_targets_out = rt->targets_out;
  st->bcast_moved = rt->moved_in;
  st->bcast_frames_in = rt->frames_in;
  st->bcast_targets_in = rt->targets_in;
  st->bcast_refused = rt->refused_out;
}
