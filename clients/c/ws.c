/* clients/c/ws.c - the client side of RFC 6455 without sockets: the upgrade
 * request and the check of its answer (section 4.1-4.2), masked frames
 * (section 5.3), and wslay's event API in client mode for reading frames
 * and answering pings and closes. client.c moves the bytes.
 *
 * Happy path: lmz__cc_hs_start writes the GET with a random key and the
 * subprotocols "lmz, lmz.access-token.<jwt>"; lmz__cc_hs_feed runs
 * http-parser over the answer until a 101 whose Upgrade, Connection,
 * Sec-WebSocket-Accept and Sec-WebSocket-Protocol ("lmz") are right; the
 * bytes after it are frames. Frames are fed to wslay (no-buffering mode:
 * data arrives chunk by chunk, a message that came in one chunk is handed
 * over without a copy, a fragmented one is reassembled in `msg`). Our data
 * frames are written straight into the output buffer, masked; wslay writes
 * its control frames (pong, close) into the same buffer through a send
 * callback that always takes everything, so frames never interleave and
 * the deps guide's "restart wslay_event_send from the write callback" rule
 * cannot bite (nothing is ever left inside wslay).
 *
 * Masking keys come from a xorshift64* generator seeded from the OS
 * (uv_random). RFC 6455 section 10.3 asks for unpredictable keys to keep
 * script-controlled payloads from poisoning intermediaries; this client
 * runs no untrusted script, so a fast generator seeded per connection is
 * enough (a getrandom() per frame would cost more than the framing).
 *
 * Failure modes:
 *  1. the answer is not HTTP, too long (16 KiB), not 101, or a 101 with a
 *     wrong/missing Upgrade, Connection, Accept or Protocol: an error with
 *     the status line and up to 512 bytes of the body in errmsg (401/403
 *     are LMZ_EAUTH: a refused token);
 *  2. a masked server frame, reserved bits or opcodes, bad continuation,
 *     bad close code: wslay queues Close 1002 and stops reading;
 *  3. invalid UTF-8 in text: 1007; a message over max_message (one frame
 *     or fragments added up): 1009, before any of its payload is kept;
 *  4. frame-layer violations (oversized or fragmented control frame,
 *     non-minimal length): we write Close 1002 ourselves and fail;
 *  5. out of memory: failed.
 * After any failure further bytes are ignored; memory stays bounded by
 * max_message plus one control frame. */
#include <arpa/inet.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clients/c/lmzc_int.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MSG_KEEP_CAP (64u * 1024u) /* a larger idle reassembly buffer is freed */

/* ---- masking ------------------------------------------------------------- */

uint32_t lmz__cc_mask(uint64_t *rng) {
  uint64_t x = *rng; /* xorshift64* (Vigna); never 0 once seeded */
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *rng = x;
  return (uint32_t)((x * 0x2545F4914F6CDD1DULL) >> 32);
}

/* dst = src XOR the 4-byte key, word at a time. */
static void mask_copy(uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t key[4]) {
  uint64_t k8;
  uint8_t kb[8] = {key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3]};
  memcpy(&k8, kb, 8);
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t w;
    memcpy(&w, src + i, 8);
    w ^= k8;
    memcpy(dst + i, &w, 8);
  }
  for (; i < len; i++)
    dst[i] = src[i] ^ key[i & 3];
}

int lmz__cc_frame(lmz_buf *dst, uint8_t opcode, const void *data, size_t len,
                  uint64_t *rng) {
  uint8_t h[14];
  size_t hn;
  h[0] = (uint8_t)(0x80u | opcode); /* FIN, no RSV (section 5.2) */
  if (len < 126) {
    h[1] = (uint8_t)(0x80u | len);
    hn = 2;
  } else if (len < 65536) {
    h[1] = 0x80u | 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    hn = 4;
  } else {
    h[1] = 0x80u | 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    hn = 10;
  }
  uint32_t key = lmz__cc_mask(rng);
  memcpy(h + hn, &key, 4);
  hn += 4;
  int rv = lmz_buf_reserve(dst, hn + len);
  if (rv)
    return rv;
  uint8_t *p = dst->data + dst->len;
  memcpy(p, h, hn);
  mask_copy(p + hn, data, len, h + hn - 4);
  dst->len += hn + len;
  return 0;
}

/* ---- handshake: request -------------------------------------------------- */

static void accept_of(const char *key, char out[29]) {
  struct sha1_ctx ctx;
  uint8_t digest[SHA1_DIGEST_SIZE];
  sha1_init(&ctx);
  sha1_update(&ctx, strlen(key), (const uint8_t *)key);
  sha1_update(&ctx, sizeof WS_GUID - 1, (const uint8_t *)WS_GUID);
  sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
  base64_encode_raw(out, SHA1_DIGEST_SIZE, digest); /* 28 chars, padded */
  out[28] = '\0';
}

static int hs_parser_init(struct lmz__cc_hs *hs);

int lmz__cc_hs_start(struct lmz__cc_hs *hs, lmz_buf *out,
                     const struct lmz__cc_addr *a, const char *path,
                     const char *token) {
  memset(hs, 0, sizeof *hs);
  uint8_t raw[16];
  if (uv_random(NULL, NULL, raw, sizeof raw, 0, NULL) != 0)
    return LMZ_EIO;
  base64_encode_raw(hs->key, sizeof raw, raw); /* section 4.1: 16 bytes */
  hs->key[24] = '\0';
  accept_of(hs->key, hs->expect);
  hs_parser_init(hs);
  return lmz_buf_printf(out,
                        "GET %s HTTP/1.1\r\n"
                        "Host: %s\r\n"
                        "Upgrade: websocket\r\n"
                        "Connection: Upgrade\r\n"
                        "Sec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Protocol: lmz, lmz.access-token.%s\r\n"
                        "\r\n",
                        path, a->hostport, hs->key, token);
}

/* ---- handshake: answer --------------------------------------------------- */

enum { HS_UPGRADE, HS_CONNECTION, HS_ACCEPT, HS_PROTOCOL, HS__N };
static const char *const hs_names[HS__N] = {"upgrade", "connection",
                                            "sec-websocket-accept",
                                            "sec-websocket-protocol"};

static char *hs_slot(struct lmz__cc_hs *hs, int i, size_t *cap) {
  switch (i) {
  case HS_UPGRADE: *cap = sizeof hs->upgrade; return hs->upgrade;
  case HS_CONNECTION: *cap = sizeof hs->connection; return hs->connection;
  case HS_ACCEPT: *cap = sizeof hs->accept; return hs->accept;
  default: *cap = sizeof hs->protocol; return hs->protocol;
  }
}

static int on_field(http_parser *p, const char *at, size_t len) {
  struct lmz__cc_hs *hs = p->data;
  if (hs->in_value) { /* a new header starts */
    hs->in_value = false;
    hs->fname_len = 0;
  }
  size_t room = sizeof hs->fname - 1 - hs->fname_len;
  size_t n = len < room ? len : room;
  memcpy(hs->fname + hs->fname_len, at, n);
  hs->fname_len += n;
  hs->fname[hs->fname_len] = '\0';
  if (len > room) /* longer than any name we look for */
    hs->fname[0] = '\0';
  return 0;
}

static int on_value(http_parser *p, const char *at, size_t len) {
  struct lmz__cc_hs *hs = p->data;
  if (!hs->in_value) { /* first piece of this value: which header? */
    hs->in_value = true;
    hs->field = -1;
    for (int i = 0; i < HS__N; i++)
      if (!strcasecmp(hs->fname, hs_names[i]))
        hs->field = i;
    size_t cap;
    char *v = hs->field >= 0 ? hs_slot(hs, hs->field, &cap) : NULL;
    if (v && v[0] && strlen(v) + 2 < cap) /* repeated header: a list */
      strcat(v, ", ");
  }
  if (hs->field < 0)
    return 0;
  size_t cap;
  char *v = hs_slot(hs, hs->field, &cap);
  size_t have = strlen(v);
  if (have + len >= cap) {
    hs->overflow = true;
    return 0;
  }
  memcpy(v + have, at, len);
  v[have + len] = '\0';
  return 0;
}

static int on_headers_complete(http_parser *p) {
  struct lmz__cc_hs *hs = p->data;
  hs->done = p->status_code == 101; /* a refusal goes on to its body */
  if (p->status_code == 101 && !p->upgrade)
    return -1; /* a 101 without Upgrade/Connection: stop here */
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct lmz__cc_hs *hs = p->data;
  size_t room = LMZ__CC_BODY_MAX - hs->body_len;
  size_t n = len < room ? len : room;
  memcpy(hs->body + hs->body_len, at, n);
  hs->body_len += n;
  hs->body[hs->body_len] = '\0';
  return 0;
}

static int on_complete(http_parser *p) {
  struct lmz__cc_hs *hs = p->data;
  hs->failed = p->status_code != 101; /* the refusal is complete */
  return 0;
}

static const http_parser_settings hs_settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static int hs_parser_init(struct lmz__cc_hs *hs) {
  http_parser_init(&hs->p, HTTP_RESPONSE);
  hs->p.data = hs;
  hs->field = -1;
  return 0;
}

/* The error for a complete non-101 answer. */
static int refusal(struct lmz__cc_hs *hs, char *errmsg) {
  unsigned st = hs->p.status_code;
  for (size_t i = 0; i < hs->body_len; i++) /* one line in errmsg */
    if (hs->body[i] == '\r' || hs->body[i] == '\n')
      hs->body[i] = ' ';
  lmz__errmsg_printf(errmsg, "upgrade refused: HTTP %u: %s", st, hs->body);
  if (st == 401 || st == 403)
    return LMZ_EAUTH;
  if (st == 404)
    return LMZ_ENOTFOUND;
  if (st == 503)
    return LMZ_EUNAVAILABLE;
  return LMZ_EBADMSG;
}

/* A 101 arrived: the rest of RFC 6455 section 4.1's checks. */
static int check_101(struct lmz__cc_hs *hs, char *errmsg) {
  const char *why = NULL;
  if (hs->overflow)
    why = "a header is too long";
  else if (strcasecmp(hs->upgrade, "websocket"))
    why = "Upgrade is not websocket";
  else if (strcmp(hs->accept, hs->expect))
    why = "wrong Sec-WebSocket-Accept";
  else if (strcmp(hs->protocol, "lmz"))
    why = "Sec-WebSocket-Protocol is not lmz";
  if (!why)
    return 1;
  lmz__errmsg_printf(errmsg, "bad upgrade answer: %s", why);
  return LMZ_EBADMSG;
}

int lmz__cc_hs_feed(struct lmz__cc_hs *hs, const uint8_t *data, size_t len,
                    size_t *used, char *errmsg) {
  *used = 0;
  if (hs->failed)
    return LMZ_EBADMSG;
  size_t room = LMZ__CC_HS_MAX - hs->seen;
  size_t n = http_parser_execute(&hs->p, &hs_settings, (const char *)data,
                                 len < room ? len : room);
  hs->seen += n;
  enum http_errno e = HTTP_PARSER_ERRNO(&hs->p);
  if (hs->p.upgrade && hs->done && e == HPE_OK) {
    *used = n;
    return check_101(hs, errmsg);
  }
  if (hs->failed || (hs->p.status_code != 101 && hs->body_len == LMZ__CC_BODY_MAX))
    return refusal(hs, errmsg);
  if (e == HPE_CB_headers_complete) {
    lmz__errmsg_printf(errmsg, "bad upgrade answer: 101 without Upgrade/Connection");
    return LMZ_EBADMSG;
  }
  if (e != HPE_OK) {
    lmz__errmsg_printf(errmsg, "bad upgrade answer: %s", http_errno_description(e));
    return LMZ_EBADMSG;
  }
  if (hs->seen >= LMZ__CC_HS_MAX) {
    lmz__errmsg_printf(errmsg, "bad upgrade answer: longer than %u bytes",
                       LMZ__CC_HS_MAX);
    return LMZ_EBADMSG;
  }
  return 0;
}

int lmz__cc_hs_eof(struct lmz__cc_hs *hs, char *errmsg) {
  if (hs->p.status_code && hs->p.status_code != 101) {
    http_parser_execute(&hs->p, &hs_settings, NULL, 0); /* EOF ends a body */
    return refusal(hs, errmsg);
  }
  lmz__errmsg_printf(errmsg, "connection closed during the upgrade");
  return LMZ_ECLOSED;
}

/* ---- session: wslay callbacks -------------------------------------------- */

static bool is_ctrl(uint8_t op) { return (op & 0x8u) != 0; }

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user) {
  (void)flags;
  struct lmz__cc_ws *w = user;
  if (w->in_len == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < w->in_len ? len : w->in_len;
  memcpy(buf, w->in, n);
  w->in += n;
  w->in_len -= n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user) {
  (void)flags;
  struct lmz__cc_ws *w = user;
  if (lmz_buf_append(w->out, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user) {
  (void)ctx;
  struct lmz__cc_ws *w = user;
  for (size_t i = 0; i < len; i += 4) {
    uint32_t k = lmz__cc_mask(w->rng);
    memcpy(buf + i, &k, len - i < 4 ? len - i : 4);
  }
  return 0;
}

static void note_close(struct lmz__cc_ws *w, uint16_t code, const char *why) {
  if (w->our_code)
    return;
  w->our_code = code;
  w->reason_len = strlen(why);
  memcpy(w->reason, why, w->reason_len);
}

/* Failure 3: a message that grew past the cap. */
static void fail_too_big(struct lmz__cc_ws *w, wslay_event_context_ptr ctx) {
  static const char why[] = LMZC_TOO_BIG_REASON; /* as the gateway says */
  w->too_big = true;
  if (wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG,
                              (const uint8_t *)why, sizeof why - 1) == 0)
    note_close(w, WSLAY_CODE_MESSAGE_TOO_BIG, why);
  wslay_event_shutdown_read(ctx);
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a,
                           void *user) {
  struct lmz__cc_ws *w = user;
  w->frame_op = a->opcode;
  w->frame_fin = a->fin != 0;
  w->frame_len = a->payload_length;
  if (is_ctrl(a->opcode) || w->too_big)
    return; /* wslay keeps control frames (<= 125 bytes) itself */
  if (a->opcode != WSLAY_CONTINUATION_FRAME) { /* a new message */
    w->msg_op = a->opcode;
    w->msg_len = 0;
    w->msg.len = 0;
    w->direct = NULL;
  }
  if (a->payload_length > w->max_message - w->msg_len)
    fail_too_big(w, ctx);
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *a,
                           void *user) {
  struct lmz__cc_ws *w = user;
  if (is_ctrl(w->frame_op) || w->too_big || a->data_length == 0)
    return;
  /* The whole message in one chunk: hand it over from wslay's buffer,
   * which stays untouched until on_msg_recv of this same frame. */
  if (w->msg_len == 0 && w->frame_fin && a->data_length == w->frame_len &&
      w->frame_op != WSLAY_CONTINUATION_FRAME) {
    w->direct = a->data;
    w->msg_len = a->data_length;
    return;
  }
  if (w->direct || lmz_buf_append(&w->msg, a->data, a->data_length) != 0) {
    w->failed = true; /* direct implies the message ended; or no memory */
    wslay_event_shutdown_read(ctx);
    return;
  }
  w->msg_len += a->data_length;
}

static void reset_msg(struct lmz__cc_ws *w) {
  w->direct = NULL;
  w->msg_len = 0;
  w->msg.len = 0;
  if (w->msg.cap > MSG_KEEP_CAP)
    lmz_buf_free(&w->msg);
}

static void msg_recv_cb(wslay_event_context_ptr ctx,
                        const struct wslay_event_on_msg_recv_arg *a,
                        void *user) {
  (void)ctx;
  struct lmz__cc_ws *w = user;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    if (!w->our_code && a->msg_length >= 2) { /* keep the peer's reason */
      size_t n = a->msg_length - 2;
      w->reason_len = n < sizeof w->reason ? n : sizeof w->reason;
      memcpy(w->reason, a->msg + 2, w->reason_len);
    }
    return;
  }
  if (is_ctrl(a->opcode))
    return; /* ping (wslay queued the pong) or pong */
  if (w->too_big || w->failed) {
    reset_msg(w);
    return;
  }
  const uint8_t *data = w->direct ? w->direct : w->msg.data;
  size_t len = w->msg_len;
  bool text = w->msg_op == WSLAY_TEXT_FRAME;
  /* The owner never frees the session from inside this call (its close
   * is deferred to libuv's close callbacks), so w is still valid after. */
  w->on_message(w->owner, text, data ? data : (const uint8_t *)"", len);
  reset_msg(w);
}

/* ---- session: API -------------------------------------------------------- */

int lmz__cc_ws_init(struct lmz__cc_ws *w, lmz_buf *out, uint64_t *rng,
                    size_t max_message, lmz__cc_msg_fn fn, void *owner) {
  static const struct wslay_event_callbacks cbs = {
      recv_cb,        send_cb, genmask_cb, frame_start_cb,
      frame_chunk_cb, NULL,    msg_recv_cb,
  };
  memset(w, 0, sizeof *w);
  w->out = out;
  w->rng = rng;
  w->max_message = max_message;
  w->on_message = fn;
  w->owner = owner;
  if (wslay_event_context_client_init(&w->ctx, &cbs, w) != 0)
    return LMZ_ENOMEM;
  wslay_event_config_set_no_buffering(w->ctx, 1);
  /* wslay checks its cap before on_frame_recv_start and would close with
   * no reason; frame_start_cb checks ours (fragments summed) instead */
  wslay_event_config_set_max_recv_msg_length(w->ctx, UINT64_MAX);
  return 0;
}

void lmz__cc_ws_free(struct lmz__cc_ws *w) {
  if (w->ctx)
    wslay_event_context_free(w->ctx);
  w->ctx = NULL;
  lmz_buf_free(&w->msg);
}

/* Failure 4: wslay's frame layer rejected the input. */
static void fail_protocol(struct lmz__cc_ws *w) {
  w->failed = true;
  if (!wslay_event_get_close_sent(w->ctx) && !w->our_code) {
    static const uint8_t code[2] = {0x03, 0xea}; /* 1002 */
    (void)lmz__cc_frame(w->out, WSLAY_CONNECTION_CLOSE, code, 2, w->rng);
    w->fail_code = WSLAY_CODE_PROTOCOL_ERROR;
  }
  wslay_event_shutdown_read(w->ctx);
  wslay_event_shutdown_write(w->ctx);
}

int lmz__cc_ws_feed(struct lmz__cc_ws *w, const uint8_t *data, size_t len) {
  if (w->failed)
    return LMZ_EBADMSG;
  w->in = data;
  w->in_len = len;
  int r = wslay_event_recv(w->ctx);
  w->in = NULL; /* bytes after a failure are dropped */
  w->in_len = 0;
  if (r == WSLAY_ERR_CALLBACK_FAILURE) {
    fail_protocol(w);
    return LMZ_EBADMSG;
  }
  if (r != 0 || wslay_event_send(w->ctx) != 0 || w->failed) {
    w->failed = true;
    return LMZ_ENOMEM;
  }
  return 0;
}

bool lmz__cc_ws_can_send(const struct lmz__cc_ws *w) {
  return w->ctx && !w->failed && !w->closed_by_us &&
         wslay_event_get_write_enabled(w->ctx) &&
         !wslay_event_get_close_sent(w->ctx);
}

int lmz__cc_ws_close(struct lmz__cc_ws *w, uint16_t code, const char *reason) {
  if (!lmz__cc_ws_can_send(w))
    return LMZ_ECLOSED;
  size_t len = reason ? strlen(reason) : 0;
  if (len > 123)
    len = 123;
  if (wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, len) != 0)
    return LMZ_ECLOSED;
  w->closed_by_us = true;
  w->our_code = code;
  w->reason_len = len;
  if (len)
    memcpy(w->reason, reason, len);
  if (wslay_event_send(w->ctx) != 0) {
    w->failed = true;
    return LMZ_ENOMEM;
  }
  return 0;
}

bool lmz__cc_ws_done(const struct lmz__cc_ws *w) {
  return w->failed ||
         (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx));
}

bool lmz__cc_ws_close_received(const struct lmz__cc_ws *w) {
  return w->ctx && wslay_event_get_close_received(w->ctx);
}

int lmz__cc_ws_close_code(const struct lmz__cc_ws *w, const char **reason,
                          size_t *reason_len) {
  *reason = w->reason;
  *reason_len = w->reason_len;
  if (w->our_code)
    return w->our_code;
  if (wslay_event_get_close_received(w->ctx))
    return wslay_event_get_status_code_received(w->ctx);
  *reason_len = 0;
  if (wslay_event_get_close_sent(w->ctx)) /* wslay's own 1002/1007 */
    return wslay_event_get_status_code_sent(w->ctx);
  if (w->fail_code)
    return w->fail_code;
  return WSLAY_CODE_ABNORMAL_CLOSURE;
}
