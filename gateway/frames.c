/* gateway/frames.c - JSON pieces of the client protocol (lumenize-behaviour
 * section 2.3): token payloads as values, plain-JSON writing of call
 * context parts (callChain and originAuth travel as plain JSON; chain,
 * state, result and error as SC-JSON {json, meta}), UUIDs, the
 * ClientDisconnectedError value, and the small FIFO lists of deadlines.
 *
 * Failure modes: out of memory (NULL / LMZ_ENOMEM), nesting deeper than
 * MAX_DEPTH (NULL / LMZ_ETOODEEP); a value the SC-JSON encoder refuses is
 * replaced by an Error saying so, so a reply frame is always well formed. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/codec.h"
#include "gateway/gw_int.h"

#define MAX_DEPTH 64

lmz_log_ns lmz__gw_log = LMZ_LOG_NS("lmz.gateway");

/* ---- lists --------------------------------------------------------------- */

void lmz__gw_list_init(struct lmz__gw_list *l) {
  l->head.next = l->head.prev = &l->head;
  l->n = 0;
}

void lmz__gw_list_push(struct lmz__gw_list *l, struct lmz__gw_link *e) {
  e->prev = l->head.prev;
  e->next = &l->head;
  l->head.prev->next = e;
  l->head.prev = e;
  l->n++;
}

void lmz__gw_list_remove(struct lmz__gw_list *l, struct lmz__gw_link *e) {
  if (!e->next)
    return;
  e->prev->next = e->next;
  e->next->prev = e->prev;
  e->next = e->prev = NULL;
  l->n--;
}

/* ---- JSON DOM -> value --------------------------------------------------- */


lmz_value *lmz__gw_json_to_value(lmz_arena *a, const lmz_json *j) {
  return lmz_json_to_value(a, j, MAX_DEPTH);
}

/* ---- value -> plain JSON ------------------------------------------------- */

static int write_plain(lmz_buf *b, const lmz_value *v, int depth) {
  if (depth > MAX_DEPTH)
    return LMZ_ETOODEEP;
  int rv = 0;
  switch (lmz_typeof(v)) {
  case LMZ_T_BOOL:
    return lmz_buf_append_str(b, lmz_get_bool(v) ? "true" : "false");
  case LMZ_T_NUMBER:
    return lmz_json_write_number(b, lmz_get_number(v));
  case LMZ_T_STRING: {
    size_t len;
    const char *s = lmz_get_str(v, &len);
    return lmz_json_write_string(b, s, len);
  }
  case LMZ_T_ARRAY:
    rv = lmz_buf_putc(b, '[');
    for (size_t i = 0; !rv && i < lmz_len(v); i++) {
      if (i)
        rv = lmz_buf_putc(b, ',');
      lmz_value *e = lmz_array_get(v, i);
      if (!rv) /* holes and undefined are null in a JSON array */
        rv = e && lmz_typeof(e) != LMZ_T_HOLE && lmz_typeof(e) != LMZ_T_UNDEFINED
                 ? write_plain(b, e, depth + 1) : lmz_buf_append_str(b, "null");
    }
    return rv ? rv : lmz_buf_putc(b, ']');
  case LMZ_T_OBJECT: {
    bool first = true;
    rv = lmz_buf_putc(b, '{');
    for (size_t i = 0; !rv && i < lmz_len(v); i++) {
      size_t kl;
      const char *k = lmz_object_key(v, i, &kl);
      lmz_value *e = lmz_object_val(v, i);
      if (lmz_typeof(e) == LMZ_T_UNDEFINED)
        continue;
      if (!first)
        rv = lmz_buf_putc(b, ',');
      first = false;
      if (!rv)
        rv = lmz_json_write_string(b, k, kl);
      if (!rv)
        rv = lmz_buf_putc(b, ':');
      if (!rv)
        rv = write_plain(b, e, depth + 1);
    }
    return rv ? rv : lmz_buf_putc(b, '}');
  }
  default:
    return lmz_buf_append_str(b, "null");
  }
}

int lmz__gw_write_plain(lmz_buf *b, const lmz_value *v) {
  return write_plain(b, v, 0);
}

/* ---- SC-JSON ------------------------------------------------------------- */

int lmz__gw_write_sc(lmz_buf *b, const lmz_value *v) {
  size_t mark = b->len;
  struct lmz_codec_error err;
  int rv = lmz_scjson_encode(v ? v : lmz_undefined(), b, &err);
  if (rv == 0)
    return 0;
  b->len = mark;
  if (rv == LMZ_ENOMEM)
    return rv;
  LMZ_LOG_WARN(&lmz__gw_log, "value not sent: %s", err.msg);
  lmz_arena *a = lmz_arena_new();
  char msg[300];
  snprintf(msg, sizeof msg, "the value cannot be sent to a client: %s", err.msg);
  lmz_value *e = a ? lmz_error(a, "DataCloneError", msg) : NULL;
  rv = e ? lmz_scjson_encode(e, b, NULL) : LMZ_ENOMEM;
  lmz_arena_free(a);
  return rv ? rv : 1;
}

/* ---- small things -------------------------------------------------------- */

/* The bytes come from the CSPRNG in batches: one getrandom() system call
 * per UUID was one per message relayed to a client (each incoming_call has
 * one), a measurable share of a broadcast's fan-out. Per thread, so the
 * buffer needs no lock. */
static void uuid_bytes(uint8_t r[16]) {
  static _Thread_local uint8_t pool[16 * 64];
  static _Thread_local size_t used = sizeof pool;
  if (used == sizeof pool) {
    randombytes_buf(pool, sizeof pool);
    used = 0;
  }
  memcpy(r, pool + used, 16);
  sodium_memzero(pool + used, 16); /* a drawn value is never served twice */
  used += 16;
}

void lmz__gw_uuid(char out[37]) {
  uint8_t r[16];
  uuid_bytes(r);
  r[6] = (uint8_t)((r[6] & 0x0f) | 0x40); /* version 4 */
  r[8] = (uint8_t)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  static const char hex[] = "0123456789abcdef";
  size_t o = 0;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out[o++] = '-';
    out[o++] = hex[r[i] >> 4];
    out[o++] = hex[r[i] & 15];
  }
  out[o] = '\0';
}

lmz_value *lmz__gw_disconnected(lmz_arena *a, const char *message,
                                const char *instance) {
  lmz_value *e = lmz_error(a, "ClientDisconnectedError", message);
  if (e && instance &&
      lmz_error_set_prop(e, "clientInstanceName", 18, lmz_cstring(a, instance)))
    return NULL;
  return e;
}

/* ---- the frame budget ---------------------------------------------------- */

size_t lmz__gw_frame_budget(size_t len) {
  return (size_t)LMZ_GATEWAY_FRAME_MEMORY_FACTOR * len +
         LMZ_GATEWAY_FRAME_MEMORY_MIN;
}

int lmz__gw_parse_frame(lmz_arena *a, const uint8_t *data, size_t len,
                        size_t max_len, lmz_json **out,
                        struct lmz_codec_error *err) {
  struct lmz_json_opts jo = {.max_depth = 512, .max_len = max_len};
  size_t budget = lmz__gw_frame_budget(len);
  lmz_arena_set_limit(a, lmz_arena_used(a) + budget);
  int rc = lmz_json_parse(a, (const char *)data, len, &jo, out, err);
  /* Out of arena is the budget (a frame of tiny elements, ~40 bytes of DOM
   * for 2 of text); a failed malloc lands here too, and the frame cannot be
   * handled either way. */
  if (rc == LMZ_ENOMEM && err) {
    *out = NULL;
    err->code = LMZ_ETOOBIG;
    snprintf(err->msg, sizeof err->msg,
             "a %zu-byte frame needs more than %zu bytes of memory", len,
             budget);
    return LMZ_ETOOBIG;
  }
  return rc;
}

const char *lmz__gw_str(const lmz_json *obj, const char *key, size_t *len) {
  const lmz_json *v = lmz_json_get(obj, key);
  if (!v || v->type != LMZ_JSON_STRING)
    return NULL;
  if (len)
    *len = v->u.str.len;
  return v->u.str.p;
}
