/* clients/c/lmzc_int.h - private to clients/c: the handle's layout and the
 * pieces the files share.
 *
 *   url.c       URL parsing and address resolution (numeric or getaddrinfo)
 *   ws.c        the sans-I/O WebSocket: upgrade request/answer (RFC 6455
 *               section 4.1), masked client frames, wslay (client mode) for
 *               receiving and control replies
 *   client.c    the handle: libuv TCP, timer, write batching, close
 *   proto.c     the lmz frames: calls, answers, incoming calls, pings
 *   chain.c     method-call chains
 *   token.c     lmzc_dev_token (GET /_lmz/dev-token)
 * Nothing here is part of the public API. */
#ifndef LMZ_CLIENTS_C_LMZC_INT_H
#define LMZ_CLIENTS_C_LMZC_INT_H

#include <http_parser.h>
#include <wslay/wslay.h>

#include "clients/c/lmzc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

#define LMZ__CC_HOST_MAX 255
#define LMZ__CC_HS_MAX (16u * 1024u)  /* bytes of a handshake answer */
#define LMZ__CC_BODY_MAX 512          /* refusal body kept for errmsg */
#define LMZ__CC_RBUF (16u * 1024u)    /* read buffer per connection */
#define LMZ__CC_CALL_ID_MAX 128       /* the gateway's bound too */

extern lmz_log_ns lmz__cc_log;

/* ---- url.c --------------------------------------------------------------- */

struct lmz__cc_addr {
  char host[LMZ__CC_HOST_MAX + 1]; /* without brackets */
  char hostport[LMZ__CC_HOST_MAX + 9]; /* Host header value */
  int port;
};

/* Parses "ws://h:p", "http://h:p", "h:p", "h" (trailing "/" allowed).
 * 0 or LMZ_EINVAL with errmsg. */
int lmz__cc_url_parse(const char *url, struct lmz__cc_addr *out, char *errmsg);
/* Fills *sa when host is a numeric address (returns 1), 0 when it is a
 * name to resolve. */
int lmz__cc_numeric(const struct lmz__cc_addr *a, struct sockaddr_storage *sa);
/* RFC 3986 unreserved + sub-delims + ':' '@' (a path segment needs no
 * escaping). */
bool lmz__cc_segment_ok(const char *s, size_t max);
/* RFC 7230 tchar (a subprotocol must be a token). */
bool lmz__cc_token_ok(const char *s, size_t max);

/* ---- ws.c: handshake ----------------------------------------------------- */

struct lmz__cc_hs {
  http_parser p;
  char key[25];       /* Sec-WebSocket-Key we sent (base64 of 16 bytes) */
  char expect[29];    /* the Sec-WebSocket-Accept it must produce */
  size_t seen;        /* bytes fed so far */
  int field;          /* header being read (HS_* index), -1 = other */
  bool in_value;
  char fname[32];     /* the header name being read */
  size_t fname_len;
  bool done, failed;
  char upgrade[32], connection[64], accept[64], protocol[64];
  bool overflow;      /* one of those values was too long */
  char body[LMZ__CC_BODY_MAX + 1];
  size_t body_len;
};

/* Appends the upgrade request to `out` and prepares `hs` to read the
 * answer. 0 or LMZ_ENOMEM. */
int lmz__cc_hs_start(struct lmz__cc_hs *hs, lmz_buf *out,
                     const struct lmz__cc_addr *a, const char *path,
                     const char *token);
/* Feeds answer bytes. Returns 0 (need more), 1 (upgraded: *used bytes
 * belonged to the answer, the rest are frames), or an error with errmsg:
 * LMZ_EAUTH (401/403), LMZ_EBADMSG (anything else). */
int lmz__cc_hs_feed(struct lmz__cc_hs *hs, const uint8_t *data, size_t len,
                    size_t *used, char *errmsg);
/* The connection ended during the handshake: the error to report. */
int lmz__cc_hs_eof(struct lmz__cc_hs *hs, char *errmsg);

/* ---- ws.c: frames -------------------------------------------------------- */

/* Appends one masked, unfragmented frame (RFC 6455 section 5.2, 5.3).
 * 0, LMZ_ENOMEM, LMZ_ETOOBIG (dst->max). */
int lmz__cc_frame(lmz_buf *dst, uint8_t opcode, const void *data, size_t len,
                  uint64_t *rng);
/* A masking key (xorshift64*, seeded from the OS; see ws.c). */
uint32_t lmz__cc_mask(uint64_t *rng);

typedef void (*lmz__cc_msg_fn)(void *owner, bool is_text, const uint8_t *data,
                               size_t len);

/* The receiving side and control replies (wslay event API, client mode). */
struct lmz__cc_ws {
  wslay_event_context_ptr ctx;
  lmz_buf *out;           /* control frames wslay writes (pong, close) */
  uint64_t *rng;
  const uint8_t *in;      /* bytes being fed */
  size_t in_len;
  lmz_buf msg;            /* a fragmented message being reassembled */
  const uint8_t *direct;  /* a whole message inside wslay's buffer */
  size_t msg_len, max_message;
  uint64_t frame_len;
  uint8_t frame_op, msg_op;
  bool frame_fin;
  bool too_big, failed, closed_by_us;
  uint16_t our_code;      /* the code of the Close we queued, 0 = none */
  uint16_t fail_code;     /* a 1002 we wrote ourselves */
  char reason[124];
  size_t reason_len;
  lmz__cc_msg_fn on_message;
  void *owner;
};

int lmz__cc_ws_init(struct lmz__cc_ws *w, lmz_buf *out, uint64_t *rng,
                    size_t max_message, lmz__cc_msg_fn fn, void *owner);
void lmz__cc_ws_free(struct lmz__cc_ws *w);
/* Feeds received bytes: messages reach on_message; control replies go to
 * `out`. 0, or LMZ_EBADMSG / LMZ_ENOMEM (the session failed: stop). */
int lmz__cc_ws_feed(struct lmz__cc_ws *w, const uint8_t *data, size_t len);
bool lmz__cc_ws_can_send(const struct lmz__cc_ws *w);
/* Queues our Close (code, reason cut to 123 bytes) into `out`. */
int lmz__cc_ws_close(struct lmz__cc_ws *w, uint16_t code, const char *reason);
/* Both Close frames exchanged, or failed: nothing more to read or write. */
bool lmz__cc_ws_done(const struct lmz__cc_ws *w);
bool lmz__cc_ws_close_received(const struct lmz__cc_ws *w);
/* The close code to report (the peer's, else ours, else 1006) + reason. */
int lmz__cc_ws_close_code(const struct lmz__cc_ws *w, const char **reason,
                          size_t *reason_len);

/* ---- client.c / proto.c: the handle -------------------------------------- */

enum lmz__cc_state {
  CC_RESOLVING = 0, /* getaddrinfo */
  CC_CONNECTING,    /* TCP connect */
  CC_UPGRADING,     /* request written, reading the 101 */
  CC_OPENING,       /* WebSocket open, waiting for connection_status */
  CC_READY,         /* connected */
  CC_CLOSING,       /* lmzc_close: our Close sent, waiting for theirs */
  CC_DEAD,          /* failed or disconnected; waits for lmzc_close */
};

/* A call waiting for its answer; slot of an open-addressing table keyed by
 * the numeric callId (0 = empty; backward-shift deletion, no tombstones). */
struct lmz__cc_slot {
  uint64_t id;
  lmzc_reply_cb cb;
  void *data;
};

struct lmz__cc_calls {
  struct lmz__cc_slot *s;
  size_t cap; /* power of two or 0 */
  size_t n;
};

/* A ping waiting for its pong (FIFO ring; cb NULL = the heartbeat). */
struct lmz__cc_ping {
  lmzc_pong_cb cb;
  void *data;
};

struct lmzc_s {
  uv_loop_t *loop;
  void *data;
  enum lmz__cc_state state;
  bool closing;          /* lmzc_close was called */
  bool connect_reported; /* the connect callback ran (or is running) */
  bool write_busy;       /* a uv_write is in flight (wbuf) */
  bool flush_armed;      /* the prepare hook runs this iteration */
  bool tcp_connected;
  bool gai_active;       /* a getaddrinfo request is out */
  bool hb_outstanding;   /* the last heartbeat ping has no pong yet */
  bool torn;             /* handles are being closed (teardown started) */
  bool sub_required;     /* connection_status.subscriptionRequired */
  int open_handles;      /* initialised libuv handles not closed yet */
  int refs;              /* 1 for the handle + 1 per unanswered incoming */

  uv_tcp_t tcp;
  uv_timer_t timer;   /* connect timeout, heartbeat, close timeout */
  uv_prepare_t flush; /* writes `out` once per loop iteration */
  uv_getaddrinfo_t gai;
  uv_connect_t creq;
  uv_write_t wreq;

  struct lmz__cc_addr addr;
  char *instance, *token, *gw_binding, *path;
  uint32_t connect_timeout_ms, close_timeout_ms;
  int heartbeat_ms;
  size_t max_message, max_send, max_outbound;
  uint32_t max_queued;
  lmzc_connect_cb connect_cb;
  lmzc_close_cb close_cb;
  lmzc_disconnect_cb on_disconnect;
  lmzc_unknown_cb on_unknown;
  lmzc_incoming_cb on_incoming;
  void *incoming_data;

  lmz_buf out;    /* framed, not yet written */
  lmz_buf wbuf;   /* being written by wreq, from byte woff on */
  size_t woff;
  lmz_buf queued; /* call frames made before connected */
  lmz_buf tx;     /* scratch: a frame's JSON text */
  uint32_t n_queued;
  uint8_t *rbuf;
  uint64_t rng;
  struct lmz__cc_hs hs;
  struct lmz__cc_ws ws;
  bool ws_inited;

  lmz_arena *scratch; /* one received frame's DOM and values */
  uint64_t next_id;
  struct lmz__cc_calls calls;
  struct lmz__cc_ping *pings; /* ring */
  size_t ping_cap, ping_head, ping_n;

  struct lmzc_stats st;
  char errmsg[LMZ_ERRMSG_LEN];
};

/* client.c */
/* Sends a text frame now (connected, or during the open/closing phases
 * for control traffic); queue = true keeps it for later when not yet
 * connected. 0, LMZ_ECLOSED, LMZ_EOVERLOAD, LMZ_ETOOBIG, LMZ_ENOMEM. */
int lmz__cc_send_text(lmzc_t *c, const void *data, size_t len, bool queue);
/* Marks the output dirty: it is written in this iteration's prepare hook. */
void lmz__cc_arm_flush(lmzc_t *c);
/* The socket is unusable: state DEAD, calls fail with LMZ_ECLOSED, then
 * the connect callback (status) or on_disconnect (code, reason). */
void lmz__cc_fail(lmzc_t *c, int status, int code, const char *reason,
                  size_t reason_len);
/* connection_status arrived: connected. */
void lmz__cc_ready(lmzc_t *c, bool subscription_required);
void lmz__cc_unref(lmzc_t *c);

/* proto.c */
void lmz__cc_on_message(void *owner, bool is_text, const uint8_t *data,
                        size_t len);
/* Fails every call and ping with `status` (their callbacks run). */
void lmz__cc_fail_all(lmzc_t *c, int status);
void lmz__cc_heartbeat(lmzc_t *c);
void lmz__cc_calls_free(struct lmz__cc_calls *t);

#endif
