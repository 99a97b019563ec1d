/* tests/fuzz/fuzz_ws.c - libFuzzer target for the WebSocket frame handling
 * (gateway/ws_session.c over wslay), without sockets.
 *
 * Input: byte 0 seeds the chunking and picks the message cap (64 B..16 KiB);
 * the rest is the client's byte stream after the handshake. It is fed in
 * chunks of pseudo-random sizes; every message is echoed back (text as
 * text), a message starting with 'C' makes the server start a close
 * handshake. After each chunk the output is checked to be a sequence of
 * well-formed unmasked server frames (header, length) and dropped.
 * Invariants: messages never exceed the cap; text messages are valid UTF-8
 * (checked independently here); nothing is delivered after a close or a
 * failure; memory stays bounded; the close code reported is a valid one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "gateway/http_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct lmz__ws_session S;
static size_t cap;
static bool closed_by_us;

/* Strict UTF-8 (RFC 3629): no overlongs, surrogates or > U+10FFFF. */
static bool utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len = c < 0x80         ? 1
                 : (c >> 5) == 6  ? 2
                 : (c >> 4) == 14 ? 3
                 : (c >> 3) == 30 ? 4
                                  : 0;
    if (!len || i + len > n || (len == 2 && c < 0xc2))
      return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return false;
    i += len;
  }
  return true;
}

static void on_message(void *owner, bool is_text, const uint8_t *d, size_t n) {
  (void)owner;
  if (n > cap || closed_by_us || S.failed)
    abort();
  if (is_text && !utf8_ok(d, n))
    abort();
  if (n > 0 && d[0] == 'C') {
    if (lmz__ws_session_close(&S, 1000, "bye", 3) == 0)
      closed_by_us = true;
    return;
  }
  (void)lmz__ws_session_send(&S, is_text ? 0x1 : 0x2, d, n);
}

/* The output must parse as whole server frames. */
static void check_out(const lmz_buf *o) {
  size_t i = 0;
  while (i < o->len) {
    if (o->len - i < 2)
      abort();
    uint8_t b0 = o->data[i], b1 = o->data[i + 1];
    if ((b0 & 0x70) || (b1 & 0x80) || !(b0 & 0x80)) /* RSV, mask, FIN */
      abort();
    uint8_t op = b0 & 0x0f;
    if (op != 0x1 && op != 0x2 && op != 0x8 && op != 0x9 && op != 0xA)
      abort();
    size_t h = 2, n = b1 & 0x7f;
    if (n == 126) {
      n = (size_t)o->data[i + 2] << 8 | o->data[i + 3];
      h = 4;
    } else if (n == 127) {
      n = 0;
      for (int k = 0; k < 8; k++)
        n = n << 8 | o->data[i + 2 + k];
      h = 10;
    }
    if ((op & 0x8) && n > 125)
      abort();
    if (n > o->len - i - h)
      abort();
    i += h + n;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  uint32_t seed = data[0] * 2654435761u + 7;
  cap = (size_t)64 << (data[0] % 9);
  data++, size--;
  lmz_buf out = LMZ_BUF_INIT;
  closed_by_us = false;
  if (lmz__ws_session_init(&S, &out, cap, on_message, NULL) != 0)
    return 0;
  while (size > 0) {
    seed = seed * 1103515245u + 12345u;
    size_t n = 1 + (seed >> 16) % 200;
    if (n > size)
      n = size;
    int rv = lmz__ws_session_feed(&S, data, n);
    data += n, size -= n;
    check_out(&out);
    if (out.len > cap * 2 + 4096) /* an echo per chunk at most, + control */
      abort();
    out.len = 0;
    if (rv || lmz__ws_session_done(&S))
      break;
  }
  const char *reason;
  size_t rl;
  int code = lmz__ws_session_close_code(&S, &reason, &rl);
  if (code < 1000 || code > 4999 || rl > 123)
    abort();
  lmz__ws_session_free(&S);
  lmz_buf_free(&out);
  return 0;
}
