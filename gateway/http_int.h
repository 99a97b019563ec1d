/* gateway/http_int.h - private: the connection object shared by
 * http_server.c (HTTP/1.1) and ws_conn.c (WebSocket after the upgrade), and
 * the sans-I/O WebSocket session (ws_session.c) that ws_conn.c drives.
 * Only the gateway .c files, its unit tests and its fuzz targets include it. */
#ifndef LMZ_GATEWAY_HTTP_INT_H
#define LMZ_GATEWAY_HTTP_INT_H

#include <http_parser.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "core/buf.h"
#include "gateway/http.h"
#include "gateway/ws.h"

/* struct lmz__qnode (http.h): intrusive circular doubly linked list, libuv's
 * QUEUE idea: O(1) removal from any list a connection is on when it closes.
 * A node linked to itself is on no list. */

enum lmz__conn_state {
  LMZ__C_HEAD = 1, /* waiting for / reading a request head */
  LMZ__C_BODY,     /* reading a request body */
  LMZ__C_APP,      /* request delivered; waiting for the app's answer */
  LMZ__C_WS,       /* a WebSocket (conn->ws) */
  LMZ__C_DRAIN,    /* last answer queued: write it, FIN, drain, close */
  LMZ__C_CLOSING,  /* uv_close called; freed in the close callback */
};

/* Offsets of one header in conn->head (stable while the buffer grows). */
struct lmz__hdr_off {
  size_t name_off, name_len, value_off, value_len;
};

struct lmz_http_conn_s {
  uv_tcp_t tcp; /* tcp.data == this */
  uv_timer_t timer;
  lmz_http_server_t *srv;
  struct lmz__qnode all, dirty, resume; /* srv lists; self-linked = off */
  void *data;
  uint64_t id;
  uint8_t state;     /* enum lmz__conn_state */
  uint8_t n_closed;  /* handles closed (2 = tcp and timer: free) */
  bool reading;      /* uv_read_start active */
  bool writing;      /* wreq in flight */
  bool shut;         /* uv_shutdown issued (DRAIN) */
  bool peer_eof;     /* the client half-closed */
  bool seen;         /* given to the app: on_conn_close is owed */
  bool pending;      /* a request awaits the app's answer */
  bool upgrade_req;  /* the pending request was an upgrade */
  bool ws_req;       /* ... and went to on_upgrade (ws accept allowed) */
  bool in_msg;       /* parser inside a request */
  bool last_value;   /* header callbacks: last data was a value */
  bool headers_done; /* req.headers built: head must not grow (trailers) */
  bool head_method;  /* current request is HEAD */
  bool method_ok;    /* the request starts with a method-like token */
  int err_status;    /* error answer chosen inside a parser callback */
  unsigned n_requests;
  http_parser parser;
  size_t head_bytes; /* request line + header bytes so far */
  lmz_buf head;      /* target, names and values, each NUL-terminated */
  lmz_buf hidx;      /* struct lmz__hdr_off[] */
  struct lmz_http_header *hdrs; /* built at headers-complete */
  size_t hdrs_cap;
  lmz_buf body;
  struct lmz_http_request req;
  lmz_buf in;   /* received, not yet parsed (paused / pipelined) */
  lmz_buf out;  /* output collected this iteration */
  lmz_buf wbuf; /* output being written (one uv_write) */
  uv_write_t wreq;
  uv_shutdown_t sreq;
  uint64_t last_progress_ms; /* last write start or completion */
  uint64_t deadline_ms;      /* the timer's deadline (server clock) */
  size_t last_wq;            /* tcp.write_queue_size at the last check */
  struct lmz_ws_s *ws;
  char remote[64];
};

/* ---- used by ws_conn.c (implemented in http_server.c) -------------------- */

/* Queues conn for the iteration's flush (idempotent). */
void lmz__http_conn_dirty(lmz_http_conn_t *c);
/* Queues conn for parsing / feeding conn->in in the prepare hook. */
void lmz__http_conn_resume(lmz_http_conn_t *c);
/* Starts or stops reading as the state and output backlog say. */
void lmz__http_conn_update_reading(lmz_http_conn_t *c);
/* (Re)starts the connection's one timer (its callback dispatches on the
 * state: the WebSocket state calls lmz__ws_on_timer). */
void lmz__http_conn_arm(lmz_http_conn_t *c, uint32_t ms);
/* Closes now (uv_close); callbacks follow from the close callback. */
void lmz__http_conn_close(lmz_http_conn_t *c);
/* Closes once the queued output is written (FIN, short drain, close). */
void lmz__http_conn_drain(lmz_http_conn_t *c);
/* Bytes queued and in flight. */
static inline size_t lmz__http_conn_backlog(const lmz_http_conn_t *c) {
  return c->out.len + c->wbuf.len;
}

/* A connection without a socket (the fuzz target and tests drive it with
 * lmz__http_conn_input / _eof; its writes fail, so they empty conn->out
 * themselves). NULL on out of memory. */
lmz_http_conn_t *lmz__http_conn_new(lmz_http_server_t *srv);
/* Bytes received on the connection (what the read callback does). */
void lmz__http_conn_input(lmz_http_conn_t *c, const uint8_t *data, size_t len);
/* The peer half-closed. */
void lmz__http_conn_eof(lmz_http_conn_t *c);

/* ---- implemented in ws_conn.c, called by http_server.c ------------------- */

/* Bytes from the socket (or conn->in) for the WebSocket. */
void lmz__ws_feed(struct lmz_ws_s *ws, const uint8_t *data, size_t len);
/* The conn timer fired in the WS state. */
void lmz__ws_on_timer(struct lmz_ws_s *ws);
/* A write completed (backlog shrank). */
void lmz__ws_on_written(struct lmz_ws_s *ws);
/* The peer half-closed. */
void lmz__ws_on_eof(struct lmz_ws_s *ws);
/* Whether the WebSocket wants input now (false while its output backlog is
 * over half of max_outbound). */
bool lmz__ws_wants_read(const struct lmz_ws_s *ws);
/* The server is closing: best-effort 1001 into conn->out. */
void lmz__ws_going_away(struct lmz_ws_s *ws);
/* The connection's handles are closed: run on_close, free ws. */
void lmz__ws_finish(struct lmz_ws_s *ws);
/* Checks an upgrade request (version, key). Returns 0, or the HTTP status
 * to answer (400, 426). */
int lmz__ws_check_upgrade(const struct lmz_http_request *req);

/* ---- the sans-I/O WebSocket session (ws_session.c) ----------------------- */

typedef void (*lmz__ws_msg_fn)(void *owner, bool is_text, const uint8_t *data,
                               size_t len);

/* wslay's event context in no-buffering mode, fed from memory, writing
 * frames into `out`. Messages are reassembled here (memory grows with the
 * bytes actually received, never with a length the peer merely announced),
 * so max_message bounds it. Server role: expects masked frames. */
struct lmz__ws_session {
  wslay_event_context_ptr ctx;
  lmz_buf *out;      /* borrowed: frames are appended here */
  const uint8_t *in; /* feed window */
  size_t in_len;
  lmz_buf msg;           /* message being reassembled */
  const uint8_t *direct; /* whole message in one chunk: no copy */
  size_t msg_len, max_message;
  size_t out_limit; /* out may reach this with the replies [SIZE_MAX] */
  size_t unread;    /* input the last feed left (LMZ_EOVERLOAD) */
  size_t handed;    /* bytes given to wslay during this feed */
  uint64_t frame_len; /* announced payload length of the current frame */
  uint8_t frame_op, msg_op;
  bool frame_fin;
  bool too_big;       /* 1009 queued; the rest is ignored */
  bool app_closed;    /* we initiated close: incoming messages are dropped */
  bool failed;        /* protocol failure / OOM: close after the flush */
  bool stop;          /* owner asked to stop delivering (conn closing) */
  bool out_full;      /* this feed stopped at out_limit */
  uint16_t our_code;  /* close code we sent first (0 = none) */
  uint16_t fail_code; /* code we report for a failure wslay did not send */
  char reason[124];   /* peer's (or our) close reason */
  size_t reason_len;
  lmz__ws_msg_fn on_message;
  void *owner;
};

/* Returns 0 or LMZ_ENOMEM. */
int lmz__ws_session_init(struct lmz__ws_session *s, lmz_buf *out,
                         size_t max_message, lmz__ws_msg_fn on_message,
                         void *owner);
void lmz__ws_session_free(struct lmz__ws_session *s);
/* Feeds received bytes; replies (pong, close) are appended to out. Input is
 * consumed only while out (plus the replies wslay has queued) is under
 * s->out_limit, so the replies never take out past it (but for one control
 * frame, and one Close). Returns 0, LMZ_EOVERLOAD (out reached out_limit: the last
 * s->unread bytes of data were not consumed; feed them again once there is
 * room, or close), or LMZ_EBADMSG / LMZ_ENOMEM (failed: flush out, then
 * close). */
int lmz__ws_session_feed(struct lmz__ws_session *s, const uint8_t *data,
                         size_t len);
/* Appends one unfragmented data frame. LMZ_ECLOSED if a close was sent. */
int lmz__ws_session_send(struct lmz__ws_session *s, uint8_t opcode,
                         const void *data, size_t len);
/* Queues and flushes a Close frame. LMZ_ECLOSED if one was already sent. */
int lmz__ws_session_close(struct lmz__ws_session *s, uint16_t code,
                          const char *reason, size_t len);
int lmz__ws_session_ping(struct lmz__ws_session *s);
bool lmz__ws_session_can_send(const struct lmz__ws_session *s);
/* Both directions finished (or failed): close the TCP connection once out
 * is written. */
bool lmz__ws_session_done(const struct lmz__ws_session *s);
/* The on_close code and reason (rules in ws.h). */
int lmz__ws_session_close_code(const struct lmz__ws_session *s,
                               const char **reason, size_t *reason_len);
/* Frame header size for a payload of len bytes (server, unmasked). */
size_t lmz__ws_frame_overhead(size_t len);

#endif
