/* cluster/secure.h - the node port's secure channel (pure: bytes in, bytes
 * out).
 *
 * A mutually authenticated handshake bound to the cluster's pre-shared key K
 * (libsodium crypto_kx ephemeral X25519 + keyed BLAKE2b proofs over the
 * transcript), then an AEAD record layer (ChaCha20-Poly1305 IETF with an
 * implicit 64-bit counter nonce per direction). The protocol, its message
 * diagram and the security argument are at the top of secure.c.
 *
 * Wire layout (both phases use [u32 BE length][body], see proto/frame.h):
 *
 *   handshake message:  | len (4) | type (1) | fields ...       |  len <= 128
 *   record:             | len (4) | ciphertext (len-16) | tag 16 |
 *                                   len <= LMZ_SECURE_RECORD_MAX
 *   record AD = the 4 length bytes; nonce = 4 zero bytes || LE64(counter).
 *
 * Records carry an arbitrary slice of the plaintext byte stream (like TLS):
 * the transport puts length-prefixed frames in it, so one record may hold
 * many frames and one frame may span several records.
 *
 * Usage (either role):
 *   lmz_secure_init(&s, role, key, NULL);
 *   lmz_secure_start(&s, &out);                 // initiator: its hello
 *   write(out); ...
 *   on bytes: rv = lmz_secure_feed(&s, p, n, &out, &plain);
 *             write(out) even when rv < 0 (it may hold a reject notice);
 *             rv < 0: close the connection; plain: application bytes
 *   to send:  if (lmz_secure_can_send(&s)) lmz_secure_seal(&s, p, n, &out);
 *   lmz_secure_free(&s);                         // wipes keys
 *
 * Requirements: sodium_init() has been called (by the process's startup).
 * Threading: a lmz_secure is used by one thread at a time; no global state. */
#ifndef LMZ_CLUSTER_SECURE_H
#define LMZ_CLUSTER_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "proto/frame.h"

#define LMZ_SECURE_KEY_LEN 32u /* the cluster key K */
#define LMZ_SECURE_VERSION 1u  /* handshake/record protocol version */
#define LMZ_SECURE_HS_MAX 128u /* cap on a handshake message body */
#define LMZ_SECURE_TAG_LEN 16u /* Poly1305 tag */
#define LMZ_SECURE_RECORD_PLAIN_MAX (256u * 1024u)
#define LMZ_SECURE_RECORD_MAX (LMZ_SECURE_RECORD_PLAIN_MAX + LMZ_SECURE_TAG_LEN)
/* Injected randomness: 32-byte X25519 seed + 24-byte hello nonce. */
#define LMZ_SECURE_RANDOM_LEN 56u
#define LMZ_SECURE_HELLO_LEN 59u /* type, version, role, epk 32, nonce 24 */

enum lmz_secure_role {
  LMZ_SECURE_INITIATOR = 1, /* dialed the connection */
  LMZ_SECURE_RESPONDER = 2, /* accepted it */
};

enum lmz_secure_state {
  LMZ_SECURE_WAIT_HELLO = 1, /* waiting for the peer's hello */
  LMZ_SECURE_WAIT_AUTH = 2,  /* waiting for the peer's proof of K */
  LMZ_SECURE_OPEN = 3,       /* peer authenticated; records flow */
  LMZ_SECURE_FAILED = 4,     /* terminal */
};

/* Where a failure happened (metrics/logs distinguish them). */
enum lmz_secure_fail {
  LMZ_SECURE_FAIL_NONE = 0,
  LMZ_SECURE_FAIL_HANDSHAKE = 1, /* malformed hello, bad proof, reject */
  LMZ_SECURE_FAIL_RECORD = 2,    /* tampered / replayed / reordered record */
  LMZ_SECURE_FAIL_OVERSIZE = 3,  /* a length over the cap */
};

typedef struct lmz_secure {
  uint8_t role;        /* enum lmz_secure_role */
  uint8_t state;       /* enum lmz_secure_state */
  uint8_t fail;        /* enum lmz_secure_fail, once state == FAILED */
  bool peer_rejected;  /* the peer told us our proof of K was wrong */
  bool peer_overloaded; /* the peer dropped the handshake for load */
  int err;             /* the error returned once FAILED */
  uint64_t n_tx, n_rx; /* next record counter per direction */
  lmz_frame_splitter in;
  /* Secrets below are wiped with sodium_memzero as soon as unneeded. */
  uint8_t key[LMZ_SECURE_KEY_LEN]; /* K; wiped once the proofs are computed */
  uint8_t esk[32], epk[32];        /* ephemeral X25519; esk wiped after kx */
  uint8_t hello[LMZ_SECURE_HELLO_LEN]; /* ours, for the transcript */
  uint8_t peer_auth[32];               /* the proof we expect from the peer */
  uint8_t k_tx[32], k_rx[32];          /* session keys */
  char errmsg[LMZ_ERRMSG_LEN];         /* why it failed, for logs/CLI */
} lmz_secure;

/* Prepares a handshake. `key` (32 bytes) is copied. `random` supplies
 * LMZ_SECURE_RANDOM_LEN bytes (tests inject them; NULL = randombytes_buf).
 * Returns 0 or LMZ_EINVAL (bad role). Always pair with lmz_secure_free(). */
int lmz_secure_init(lmz_secure *s, int role, const uint8_t *key,
                    const uint8_t *random);
/* Wipes every secret and releases the receive buffer. Idempotent. */
void lmz_secure_free(lmz_secure *s);

/* Appends the first handshake message to `out` (initiator only; a responder
 * appends nothing, it speaks after the peer's hello). 0 or LMZ_ENOMEM. */
int lmz_secure_start(lmz_secure *s, lmz_buf *out);

/* Consumes received bytes. Handshake replies are appended to `out`; decrypted
 * application bytes are appended to `plain`. Returns 0, or on failure (the
 * state becomes FAILED and every later call returns the same code):
 *   LMZ_EOVERLOAD   (initiator) the peer sent the overload notice
 *   LMZ_EAUTH       wrong proof of K (either side), a peer's reject notice, or
 *                   a record that fails authentication: tampered, replayed,
 *                   reordered, truncated or injected (s->errmsg says which)
 *   LMZ_EBADMSG     malformed or unexpected handshake message
 *   LMZ_EBADVERSION peer speaks another protocol version
 *   LMZ_ETOOBIG     a length over the cap (checked before buffering)
 *   LMZ_ENOMEM      could not buffer
 * On LMZ_EAUTH from a responder, `out` may hold a reject notice: send it
 * before closing so an operator gets a clear message. Input is borrowed. */
int lmz_secure_feed(lmz_secure *s, const uint8_t *p, size_t n, lmz_buf *out,
                    lmz_buf *plain);

/* True once this side may seal records: the initiator right after sending its
 * proof (its data is unreadable to anyone without K), the responder once the
 * initiator's proof verified. */
bool lmz_secure_can_send(const lmz_secure *s);
/* True once the peer proved knowledge of K. */
static inline bool lmz_secure_is_open(const lmz_secure *s) {
  return s->state == LMZ_SECURE_OPEN;
}

/* The overload notice: what a responder sends, instead of (or after) its
 * hello, to a connection it drops before authentication because too many
 * connections are waiting to authenticate (cluster/transport.h, "Node port
 * limits"). It is a REJECT handshake message with reason 2:
 *
 *   | 00 00 00 02 | 03 (REJECT) | 02 (OVERLOADED) |
 *     length (BE)   type          reason
 *
 * It is not authenticated (the responder sends it before anyone proved K),
 * so an initiator only uses it to choose its error: it fails the handshake
 * with LMZ_EOVERLOAD ("the node is overloaded ...") and sets
 * peer_overloaded. Anyone on the path could forge it, but such an attacker
 * can as well reset the connection: it reveals nothing and grants nothing.
 * Reason 1 (BAD_PROOF) is the wrong-key notice; other reasons are treated
 * like it. */
#define LMZ_SECURE_OVERLOAD_NOTICE_LEN 6u
void lmz_secure_overload_notice(uint8_t out[LMZ_SECURE_OVERLOAD_NOTICE_LEN]);

/* Exact bytes lmz_secure_seal() appends for `n` plaintext bytes. */
size_t lmz_secure_sealed_len(size_t n);
/* Encrypts `n` bytes as ceil(n / LMZ_SECURE_RECORD_PLAIN_MAX) records into
 * `dst`, which has room for lmz_secure_sealed_len(n) bytes (`dst` may not
 * overlap `p`). Returns 0, LMZ_EINVAL (not allowed to send yet) or
 * LMZ_ETOOBIG (2^64 records sent: the connection must be replaced). */
int lmz_secure_seal_to(lmz_secure *s, const uint8_t *p, size_t n, uint8_t *dst);
/* Same, appending to a buffer. Adds LMZ_ENOMEM. */
int lmz_secure_seal(lmz_secure *s, const uint8_t *p, size_t n, lmz_buf *out);

#endif
