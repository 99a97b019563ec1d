/* gateway/ws.h - WebSocket (RFC 6455) connections on the HTTP server, with
 * wslay doing the framing.
 *
 * Life of a WebSocket: gateway/http.h calls on_upgrade with a valid upgrade
 * request; the app (after checking the token: lmz_ws_protocol_token +
 * gateway/jwt.h) calls lmz_ws_accept(), which answers 101 (with
 * Sec-WebSocket-Protocol if asked) and turns the connection into `ws`.
 * Bytes the client sent right after its request are frames and are fed in.
 * Messages arrive whole (fragments reassembled) via on_message; the app
 * sends with lmz_ws_send_text/_binary and ends with lmz_ws_close(). on_close
 * runs exactly once, when the TCP connection is gone; then `ws` is freed.
 *
 * Protocol failures and limits (the peer gets a Close frame with the code,
 * then the connection closes; other connections are never affected):
 *   text message (or close reason) that is not UTF-8        1007
 *   message longer than max_message (fragments summed)      1009
 *     with the reason LMZ_WS_TOO_BIG_REASON, the original's text
 *   unmasked client frame, reserved bits/opcodes, control
 *   frame > 125 bytes or fragmented, bad continuation,
 *   invalid close code, Close body of 1 byte                1002
 *   outbound queue full (the peer does not read):           1008
 *     every byte queued for the peer counts against max_outbound, whoever
 *     made it: the app's messages (lmz_ws_send_* returns LMZ_EOVERLOAD)
 *     and the replies made while reading (pongs to a peer that pings and
 *     never reads: input stops being consumed at the cap). Then everything
 *     not yet handed to the kernel is dropped, "1008 outbound queue full"
 *     is queued (no pong follows it) and the TCP connection is closed
 *     close_timeout_ms later if the peer does not answer. 1008 (policy violation), not 1013 (try again later), because
 *     the cause is this peer's behaviour, not the server's load.
 *   no answer (any traffic) within ping_interval_ms to a ping, which is
 *     sent once the peer has been quiet for half an interval (checked every
 *     interval), or no write progress for 2 x ping_interval_ms while output
 *     waits: dead peer, TCP closed (on_close code 1006)
 *   close handshake not answered within close_timeout_ms: TCP closed
 * Backpressure on input: checked after each app send and each completed
 * write, while more than max_outbound/2 bytes are queued the connection is
 * not read (a client that sends but does not read is slowed down by TCP
 * instead of growing our memory). Replies made while reading do not pause
 * it: they run into the cap and 1008 (ws_conn.c, failure 2).
 * Ping frames are answered by wslay (pong with the same payload); pongs are
 * only counted as traffic. Application-level "lmz:ping" text is a normal
 * message for the app to answer.
 *
 * Memory per idle connection: the conn (~0.5 KiB) plus wslay's two contexts
 * (~8.5 KiB, two 4 KiB frame buffers inside wslay); input and output buffers
 * are released when idle. Each connection holds at most max_message bytes of
 * a message being received and max_outbound bytes of output.
 *
 * Threading: loop thread only; callbacks never run synchronously from the
 * call that caused them. */
#ifndef LMZ_GATEWAY_WS_H
#define LMZ_GATEWAY_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/http.h"

typedef struct lmz_ws_s lmz_ws_t; /* opaque; owned by the server */

/* A whole message. `data` is valid during the callback only. The callback
 * may send, close, or close the server. */
typedef void (*lmz_ws_message_cb)(lmz_ws_t *ws, bool is_text,
                                  const uint8_t *data, size_t len);
/* The connection is gone (exactly once per accepted ws). `code`: the peer's
 * close code if the peer sent a Close frame first (1005 when it had none),
 * else the code we sent (the app's lmz_ws_close, or 1002/1007/1008/1009/1011
 * after a failure), else 1006 (TCP lost without a close frame, dead peer,
 * server closed). `reason` is valid during the callback only (not
 * NUL-terminated in general; `reason_len` bytes). After it returns `ws` is
 * freed. */
typedef void (*lmz_ws_close_cb)(lmz_ws_t *ws, int code, const char *reason,
                                size_t reason_len);

struct lmz_ws_callbacks {
  lmz_ws_message_cb on_message; /* required */
  lmz_ws_close_cb on_close;     /* required */
};

struct lmz_ws_options {
  /* 0 = the default in brackets */
  size_t max_message;        /* received message cap [1 MiB] */
  size_t max_outbound;       /* queued + unwritten bytes cap [4 MiB] */
  size_t max_replies;        /* of those, bytes made while reading (pongs,
                                Close answers) the peer has not taken yet
                                [256 KiB, at most max_outbound] */
  uint32_t ping_interval_ms; /* [30000] */
  uint32_t close_timeout_ms; /* [5000] */
};

/* Accepts the pending upgrade request of `conn` (from on_upgrade, answered
 * neither way yet): answers 101 with Sec-WebSocket-Accept, and with
 * "Sec-WebSocket-Protocol: <subprotocol>" when `subprotocol` is not NULL
 * (it must be one the client offered; the original always answers "lmz").
 * `opts` may be NULL (defaults); `data` is the app's (lmz_ws_data()).
 * On 0, *out is the new ws and the request is answered (its memory is gone).
 * Returns LMZ_EINVAL (no upgrade pending on conn, bad subprotocol token),
 * LMZ_ECLOSED (conn closing), LMZ_ENOMEM; the request is then still pending
 * and must be answered with lmz_http_respond(). */
int lmz_ws_accept(lmz_http_conn_t *conn, const char *subprotocol,
                  const struct lmz_ws_callbacks *cb,
                  const struct lmz_ws_options *opts, void *data,
                  lmz_ws_t **out);

/* Queue a message (data copied). Returns 0; LMZ_ECLOSED when a close was
 * started (by either side) or the connection is going; LMZ_ETOOBIG when one
 * framed message exceeds max_outbound (nothing happens to the connection);
 * LMZ_EOVERLOAD when the outbound queue would exceed max_outbound: the
 * connection is then being closed with 1008 (see above). Text must be UTF-8
 * (not checked). */
int lmz_ws_send_text(lmz_ws_t *ws, const void *data, size_t len);
int lmz_ws_send_binary(lmz_ws_t *ws, const void *data, size_t len);

/* Starts the close handshake with `code` (1000-1003, 1007-1014, 3000-4999)
 * and `reason` (NUL-terminated UTF-8, may be NULL; cut to 123 bytes at a
 * character boundary). Messages arriving afterwards are dropped; on_close
 * follows once the peer answers or close_timeout_ms passes. Returns 0,
 * LMZ_EINVAL (code not allowed on the wire), LMZ_ECLOSED (already closing;
 * nothing changes). */
int lmz_ws_close(lmz_ws_t *ws, int code, const char *reason);

void *lmz_ws_data(const lmz_ws_t *ws);
void lmz_ws_set_data(lmz_ws_t *ws, void *data);
/* Bytes queued and not yet written to the socket. */
size_t lmz_ws_queued_bytes(const lmz_ws_t *ws);
/* The remote address string of the connection ("127.0.0.1:5555"). */
const char *lmz_ws_remote(const lmz_ws_t *ws);
lmz_http_server_t *lmz_ws_server(const lmz_ws_t *ws);

/* ---- subprotocols -------------------------------------------------------- */

/* The reason of our 1009 Close (Cloudflare's text, which clients match). */
#define LMZ_WS_TOO_BIG_REASON "Message is too large"

#define LMZ_WS_PROTOCOL "lmz"
#define LMZ_WS_TOKEN_PREFIX "lmz.access-token."

/* Reads every Sec-WebSocket-Protocol header of `req` as the original's
 * extractWebSocketToken does (split at ',', trim blanks, first entry that
 * starts with "lmz.access-token."): sets *tok and *tok_len (into the request's
 * memory) and returns true when there is one. *offered_lmz (may be NULL)
 * says whether "lmz" itself was offered. */
bool lmz_ws_protocol_token(const struct lmz_http_request *req, const char **tok,
                           size_t *tok_len, bool *offered_lmz);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2: base64 of
 * SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"), padded), into out
 * (29 bytes incl. NUL). */
void lmz_ws_accept_key(const char *key, size_t key_len, char out[29]);

#endif
