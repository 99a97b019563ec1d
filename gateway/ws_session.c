/* gateway/ws_session.c - the sans-I/O WebSocket session: wslay's event API
 * fed from memory, frames written into a buffer (struct in http_int.h).
 * No sockets, no clock: ws_conn.c drives it, and so does fuzz_ws.
 *
 * Happy path (receive): feed() points wslay's recv callback at the bytes and
 * runs wslay_event_recv, which parses frames (RFC 6455 §5.2), unmasks, checks
 * UTF-8 of text (§8.1) and answers pings and closes by queueing replies;
 * wslay runs in no-buffering mode, so data frames reach us chunk by chunk
 * and we reassemble the message in `msg` (or pass it without a copy when it
 * arrived as one chunk). Then wslay_event_send flushes the replies into
 * `out`: its send callback always takes everything, so wslay never holds a
 * half-sent frame and our own data frames (written straight into `out` by
 * session_send, no copy inside wslay) can never interleave with its frames.
 * Because send never returns WOULDBLOCK, the deps guide's "call
 * wslay_event_send again from the write callback" rule holds trivially: all
 * pending wslay output is already in `out` after every call, and the
 * connection layer restarts its own writes from uv_write's callback.
 *
 * Failure modes:
 *  1. invalid UTF-8 in a text message or close reason: wslay queues 1007 and
 *     stops reading (done once flushed);
 *  2. a frame over max_message, or a message whose fragments add up to
 *     more: we queue 1009 "Message is too large" (on_frame_recv_start,
 *     before any of the payload is stored; wslay's own cap, which would
 *     send 1009 with no reason, is off) and stop reading;
 *  3. protocol violations inside wslay's event layer (unmasked frame, RSV
 *     bits, unknown opcode, bad continuation, bad close code): 1002 queued
 *     by wslay; a Close with a 1-byte body, which wslay accepts as a Close
 *     without a code: 1002 queued by us (fail_short_close);
 *  4. violations in wslay's frame layer (control frame > 125 bytes or
 *     fragmented, non-minimal 16/64-bit length, length with the top bit):
 *     wslay_event_recv fails; we write a 1002 Close ourselves (wslay would
 *     send an empty one) and mark the session failed;
 *  5. out of memory: failed (the caller closes the connection).
 *  6. a peer that provokes replies (pings) faster than it reads them: the
 *     replies count against out_limit like any output, so the session
 *     stops taking input before they would pass it; feed returns
 *     LMZ_EOVERLOAD and `unread` bytes at the end of the input were not
 *     consumed (ws_conn.c then closes with 1008; failure 2 there).
 * In every case bytes after the failure are ignored and memory stays
 * bounded by max_message + one control frame. */
#include <arpa/inet.h>
#include <string.h>

#include "core/err.h"
#include "gateway/http_int.h"

#define MSG_KEEP_CAP (16u * 1024u) /* a larger idle message buffer is freed */

static bool is_ctrl(uint8_t op) { return (op & 0x8u) != 0; }

/* Bytes the session's output takes once wslay's queue is flushed: `out`
 * plus the queued replies with their 2-byte headers (control frames carry
 * at most 125 bytes). */
static size_t out_pending(const struct lmz__ws_session *s,
                          wslay_event_context_ptr ctx) {
  return s->out->len + wslay_event_get_queued_msg_length(ctx) +
         2 * wslay_event_get_queued_msg_count(ctx);
}

/* Hands wslay only bytes whose replies fit under out_limit: a frame never
 * makes a reply longer than itself (a ping of n payload bytes is n + 6 on
 * the wire, its pong n + 2), so each byte handed over in this feed is
 * counted as one byte of output until the feed ends (a frame cut between
 * feeds can add one control frame on top). */
static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                       int flags, void *user) {
  (void)flags;
  struct lmz__ws_session *s = user;
  size_t used = out_pending(s, ctx) + s->handed;
  size_t room = used < s->out_limit ? s->out_limit - used : 0;
  if (room == 0 && s->in_len > 0)
    s->out_full = true;
  if (s->in_len == 0 || room == 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    return -1;
  }
  size_t n = len < s->in_len ? len : s->in_len;
  if (n > room)
    n = room;
  s->handed += n;
  memcpy(buf, s->in, n);
  s->in += n;
  s->in_len -= n;
  return (ssize_t)n;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data,
                       size_t len, int flags, void *user) {
  (void)flags;
  struct lmz__ws_session *s = user;
  if (lmz_buf_append(s->out, data, len) != 0) {
    wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
  }
  return (ssize_t)len;
}

static int genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                      void *user) {
  (void)ctx, (void)user; /* server frames are never masked */
  memset(buf, 0, len);
  return 0;
}

/* Queues 1009 for a message that grew past the cap and stops reading. The
 * reason is the original's (Cloudflare's) text, which clients show. */
static void fail_too_big(struct lmz__ws_session *s,
                         wslay_event_context_ptr ctx) {
  static const char why[] = LMZ_WS_TOO_BIG_REASON;
  s->too_big = true;
  if (wslay_event_queue_close(ctx, WSLAY_CODE_MESSAGE_TOO_BIG,
                              (const uint8_t *)why, sizeof why - 1) == 0 &&
      !s->our_code) {
    s->our_code = WSLAY_CODE_MESSAGE_TOO_BIG;
    memcpy(s->reason, why, sizeof why - 1);
    s->reason_len = sizeof why - 1;
  }
  wslay_event_shutdown_read(ctx);
}

/* Failure 3b: a Close whose body is 1 byte long (RFC 6455 §5.5.1: a body
 * starts with a 2-byte code). wslay would treat it as a Close without a code
 * and echo an empty one; we queue 1002 first, so wslay's echo finds the
 * close already queued and sends nothing else. */
static void fail_short_close(struct lmz__ws_session *s,
                             wslay_event_context_ptr ctx) {
  if (wslay_event_queue_close(ctx, WSLAY_CODE_PROTOCOL_ERROR, NULL, 0) == 0 &&
      !s->our_code) {
    s->our_code = WSLAY_CODE_PROTOCOL_ERROR;
    s->reason_len = 0;
  }
  wslay_event_shutdown_read(ctx);
}

static void frame_start_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_start_arg *a,
                           void *user) {
  struct lmz__ws_session *s = user;
  s->frame_op = a->opcode;
  s->frame_fin = a->fin != 0;
  s->frame_len = a->payload_length;
  if (a->opcode == WSLAY_CONNECTION_CLOSE && a->payload_length == 1)
    fail_short_close(s, ctx);
  if (is_ctrl(a->opcode) || s->too_big)
    return; /* wslay buffers control frames itself (<= 125 bytes) */
  if (a->opcode != WSLAY_CONTINUATION_FRAME) { /* a new message */
    s->msg_op = a->opcode;
    s->msg_len = 0;
    s->msg.len = 0;
    s->direct = NULL;
  }
  if (a->payload_length > s->max_message - s->msg_len)
    fail_too_big(s, ctx);
}

static void frame_chunk_cb(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *a,
                           void *user) {
  struct lmz__ws_session *s = user;
  if (is_ctrl(s->frame_op) || s->too_big || a->data_length == 0)
    return;
  /* The whole message in one chunk: deliver from wslay's buffer, which
   * stays untouched until on_msg_recv of this same frame. */
  if (s->msg_len == 0 && s->frame_fin && a->data_length == s->frame_len &&
      s->frame_op != WSLAY_CONTINUATION_FRAME) {
    s->direct = a->data;
    s->msg_len = a->data_length;
    return;
  }
  if (s->direct) { /* cannot happen (direct implies the message ended) */
    s->failed = true;
    wslay_event_shutdown_read(ctx);
    return;
  }
  if (lmz_buf_append(&s->msg, a->data, a->data_length) != 0) {
    s->failed = true;
    wslay_event_shutdown_read(ctx);
    return;
  }
  s->msg_len += a->data_length;
}

static void reset_msg(struct lmz__ws_session *s) {
  s->direct = NULL;
  s->msg_len = 0;
  s->msg.len = 0;
  if (s->msg.cap > MSG_KEEP_CAP)
    lmz_buf_free(&s->msg);
}

static void msg_recv_cb(wslay_event_context_ptr ctx,
                        const struct wslay_event_on_msg_recv_arg *a,
                        void *user) {
  struct lmz__ws_session *s = user;
  if (a->opcode == WSLAY_CONNECTION_CLOSE) {
    if (!s->our_code && a->msg_length >= 2) { /* keep the peer's reason */
      size_t n = a->msg_length - 2;
      s->reason_len = n < sizeof s->reason ? n : sizeof s->reason;
      memcpy(s->reason, a->msg + 2, s->reason_len);
    }
    return;
  }
  if (is_ctrl(a->opcode))
    return; /* ping (wslay queued the pong) or pong */
  if (s->too_big || s->app_closed || s->stop || s->failed) {
    reset_msg(s);
    return;
  }
  const uint8_t *data = s->direct ? s->direct : s->msg.data;
  size_t len = s->msg_len;
  s->on_message(s->owner, a->opcode == WSLAY_TEXT_FRAME,
                data ? data : (const uint8_t *)"", len);
  reset_msg(s);
  if (s->stop)
    wslay_event_shutdown_read(ctx); /* the owner is going away */
}

int lmz__ws_session_init(struct lmz__ws_session *s, lmz_buf *out,
                         size_t max_message, lmz__ws_msg_fn on_message,
                         void *owner) {
  static const struct wslay_event_callbacks cbs = {
      recv_cb,        send_cb, genmask_cb,  frame_start_cb,
      frame_chunk_cb, NULL,    msg_recv_cb,
  };
  memset(s, 0, sizeof *s);
  s->out = out;
  s->max_message = max_message;
  s->out_limit = SIZE_MAX;
  s->on_message = on_message;
  s->owner = owner;
  if (wslay_event_context_server_init(&s->ctx, &cbs, s) != 0)
    return LMZ_ENOMEM;
  wslay_event_config_set_no_buffering(s->ctx, 1);
  /* wslay checks its cap before on_frame_recv_start and closes with an
   * empty reason; ours (frame_start_cb) runs with the reason instead */
  wslay_event_config_set_max_recv_msg_length(s->ctx, UINT64_MAX);
  return 0;
}

void lmz__ws_session_free(struct lmz__ws_session *s) {
  if (s->ctx)
    wslay_event_context_free(s->ctx);
  s->ctx = NULL;
  lmz_buf_free(&s->msg);
}

/* Failure 4: wslay's frame layer rejected the input. */
static void fail_protocol(struct lmz__ws_session *s) {
  static const uint8_t close_1002[4] = {0x88, 0x02, 0x03, 0xea};
  s->failed = true;
  if (!wslay_event_get_close_sent(s->ctx) && !s->our_code) {
    (void)lmz_buf_append(s->out, close_1002, sizeof close_1002);
    s->fail_code = WSLAY_CODE_PROTOCOL_ERROR;
  }
  wslay_event_shutdown_read(s->ctx);
  wslay_event_shutdown_write(s->ctx);
}

int lmz__ws_session_feed(struct lmz__ws_session *s, const uint8_t *data,
                         size_t len) {
  s->unread = 0;
  if (s->failed)
    return LMZ_EBADMSG;
  s->in = data;
  s->in_len = len;
  s->out_full = false;
  s->handed = 0;
  int r = wslay_event_recv(s->ctx);
  size_t left = s->in_len;
  s->in = NULL; /* bytes after a failure or a close are dropped */
  s->in_len = 0;
  if (r == WSLAY_ERR_CALLBACK_FAILURE) {
    fail_protocol(s);
    return LMZ_EBADMSG;
  }
  if (r != 0 || wslay_event_send(s->ctx) != 0 || s->failed) {
    s->failed = true;
    return LMZ_ENOMEM;
  }
  if (s->out_full && left > 0 && wslay_event_get_read_enabled(s->ctx)) {
    s->unread = left; /* failure 6 */
    return LMZ_EOVERLOAD;
  }
  return 0;
}

size_t lmz__ws_frame_overhead(size_t len) {
  return len < 126 ? 2 : len < 65536 ? 4 : 10;
}

bool lmz__ws_session_can_send(const struct lmz__ws_session *s) {
  return !s->failed && !s->app_closed &&
         wslay_event_get_write_enabled(s->ctx) &&
         !wslay_event_get_close_sent(s->ctx);
}

int lmz__ws_session_send(struct lmz__ws_session *s, uint8_t opcode,
                         const void *data, size_t len) {
  if (!lmz__ws_session_can_send(s))
    return LMZ_ECLOSED;
  uint8_t h[10];
  size_t hn = lmz__ws_frame_overhead(len);
  h[0] = (uint8_t)(0x80u | opcode); /* FIN, no RSV */
  if (hn == 2) {
    h[1] = (uint8_t)len;
  } else if (hn == 4) {
    h[1] = 126;
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
  } else {
    h[1] = 127;
    for (int i = 0; i < 8; i++)
      h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
  }
  int rv = lmz_buf_reserve(s->out, hn + len);
  if (rv)
    return rv;
  memcpy(s->out->data + s->out->len, h, hn);
  if (len)
    memcpy(s->out->data + s->out->len + hn, data, len);
  s->out->len += hn + len;
  return 0;
}

int lmz__ws_session_ping(struct lmz__ws_session *s) {
  static const uint8_t ping[2] = {0x89, 0x00};
  if (!lmz__ws_session_can_send(s))
    return LMZ_ECLOSED;
  return lmz_buf_append(s->out, ping, sizeof ping);
}

int lmz__ws_session_close(struct lmz__ws_session *s, uint16_t code,
                          const char *reason, size_t len) {
  if (!lmz__ws_session_can_send(s))
    return LMZ_ECLOSED;
  if (len > 123)
    len = 123;
  if (wslay_event_queue_close(s->ctx, code, (const uint8_t *)reason, len) != 0)
    return LMZ_ECLOSED;
  s->app_closed = true;
  s->our_code = code;
  s->reason_len = len;
  if (len)
    memcpy(s->reason, reason, len);
  if (wslay_event_send(s->ctx) != 0) {
    s->failed = true;
    return LMZ_ENOMEM;
  }
  return 0;
}

bool lmz__ws_session_done(const struct lmz__ws_session *s) {
  return s->failed ||
         (!wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx));
}

int lmz__ws_session_close_code(const struct lmz__ws_session *s,
                               const char **reason, size_t *reason_len) {
  *reason = s->reason;
  *reason_len = s->reason_len;
  if (s->our_code)
    return s->our_code;
  if (wslay_event_get_close_received(s->ctx))
    return wslay_event_get_status_code_received(s->ctx);
  *reason_len = 0;
  if (wslay_event_get_close_sent(s->ctx))
    return wslay_event_get_status_code_sent(s->ctx);
  if (s->fail_code)
    return s->fail_code;
  return WSLAY_CODE_ABNORMAL_CLOSURE;
}
