/* cluster/secure.c - handshake state machine and AEAD record layer (no I/O).
 *
 * Protocol (version 1). I = initiator (dialer), R = responder. K = cluster key.
 * Every message is framed [u32 BE len][body]; handshake bodies start with a
 * type byte. H(x) = BLAKE2b-256(x); MAC_K(x) = BLAKE2b-256 keyed with K.
 *
 *      I                                                    R
 *      |  HELLO_I = 01 | ver | role=1 | epk_I(32) | nI(24)   |
 *      |---------------------------------------------------->|
 *      |  HELLO_R = 01 | ver | role=2 | epk_R(32) | nR(24)   |
 *      |<----------------------------------------------------|
 *   th = H("lmz/1 transcript" || HELLO_I || HELLO_R)
 *   (rx_I, tx_I) = crypto_kx_client_session_keys(epk_I, esk_I, epk_R)
 *   k_i2r = MAC_K("lmz/1 key i2r" || tx_I || th)   (= R's rx side)
 *   k_r2i = MAC_K("lmz/1 key r2i" || rx_I || th)   (= R's tx side)
 *      |  AUTH_I = 02 | MAC_K("lmz/1 auth initiator" || th) |
 *      |  [records I->R may follow at once, under k_i2r]     |
 *      |---------------------------------------------------->|  R verifies
 *      |  AUTH_R = 02 | MAC_K("lmz/1 auth responder" || th) |  (constant
 *      |  [records R->I under k_r2i]                         |   time)
 *      |<----------------------------------------------------|
 *      |  or, if AUTH_I was wrong: REJECT = 03 | 01, close   |
 *   At any point before its proof, R may instead drop I for load:
 *      |  REJECT = 03 | 02 (overloaded), close              |
 *      |<----------------------------------------------------|
 *   I verifies AUTH_R before reading any record.
 *
 * Why this holds:
 *  - Nobody without K gets in: R processes no record before AUTH_I verifies,
 *    and I none before AUTH_R verifies. A proof is a MAC under K over a
 *    transcript that contains both fresh ephemeral keys and nonces, so it
 *    cannot be replayed into another session; the role label stops reflecting
 *    R's proof back to it as AUTH_I.
 *  - R never sends a proof to a peer that has not proved K first, so an
 *    unauthenticated dialer learns nothing derived from K (no oracle).
 *  - I's early records are keyed with MAC_K(...), so an impostor R without K
 *    cannot read them. Session keys also depend on the ephemeral X25519
 *    secret: recording traffic and later stealing K does not decrypt it
 *    (forward secrecy), and an attacker who knows K but not the ephemeral
 *    secrets cannot read a passive session either.
 *  - Records: ChaCha20-Poly1305 IETF, one key per direction, nonce = implicit
 *    counter (never on the wire), AD = the record's length header. The
 *    receiver only ever tries the next counter, so a flipped bit, a replayed,
 *    reordered, dropped or injected record fails authentication and the
 *    connection dies (LMZ_EAUTH). A truncated stream is only a closed
 *    connection: records before the cut were whole and authentic.
 *
 * Failure modes (all terminal: state FAILED, the same code from then on):
 *  1. oversize length (handshake > 128, record > RECORD_MAX): LMZ_ETOOBIG,
 *     before buffering;
 *  2. malformed/unexpected handshake message, wrong role: LMZ_EBADMSG;
 *     other version: LMZ_EBADVERSION;
 *  3. low-order X25519 point (kx fails): LMZ_EAUTH;
 *  4. bad proof: LMZ_EAUTH (a responder queues a REJECT for the initiator);
 *  5. REJECT received: LMZ_EAUTH with peer_rejected set; reason
 *     OVERLOADED (lmz_secure_overload_notice): LMZ_EOVERLOAD with
 *     peer_overloaded set;
 *  6. record authentication failure: LMZ_EAUTH (fail = RECORD). */
#include "cluster/secure.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

enum { MSG_HELLO = 1, MSG_AUTH = 2, MSG_REJECT = 3 };
#define AUTH_LEN 33u  /* type + 32-byte MAC */
#define REJECT_LEN 2u /* type + reason */
#define REJECT_BAD_PROOF 1u
#define REJECT_OVERLOADED 2u /* the node shed us for load (no key needed) */

_Static_assert(LMZ_SECURE_HELLO_LEN == 3 + crypto_kx_PUBLICKEYBYTES + 24,
               "hello layout");
_Static_assert(LMZ_SECURE_RANDOM_LEN == crypto_kx_SEEDBYTES + 24, "random");
_Static_assert(LMZ_SECURE_TAG_LEN == crypto_aead_chacha20poly1305_IETF_ABYTES,
               "tag");
_Static_assert(crypto_aead_chacha20poly1305_IETF_NPUBBYTES == 12, "nonce");
_Static_assert(LMZ_SECURE_KEY_LEN == crypto_generichash_KEYBYTES, "key");

static int fail(lmz_secure *s, int err, int stage, const char *msg) {
  s->state = LMZ_SECURE_FAILED;
  s->err = err;
  s->fail = (uint8_t)stage;
  lmz__errmsg_printf(s->errmsg, "%s", msg);
  sodium_memzero(s->key, sizeof s->key);
  sodium_memzero(s->esk, sizeof s->esk);
  sodium_memzero(s->k_tx, sizeof s->k_tx);
  sodium_memzero(s->k_rx, sizeof s->k_rx);
  return err;
}

int lmz_secure_init(lmz_secure *s, int role, const uint8_t *key,
                    const uint8_t *random) {
  memset(s, 0, sizeof *s);
  if (role != LMZ_SECURE_INITIATOR && role != LMZ_SECURE_RESPONDER)
    return LMZ_EINVAL;
  s->role = (uint8_t)role;
  s->state = LMZ_SECURE_WAIT_HELLO;
  memcpy(s->key, key, LMZ_SECURE_KEY_LEN);
  uint8_t rnd[LMZ_SECURE_RANDOM_LEN];
  if (random)
    memcpy(rnd, random, sizeof rnd);
  else
    randombytes_buf(rnd, sizeof rnd);
  crypto_kx_seed_keypair(s->epk, s->esk, rnd);
  s->hello[0] = MSG_HELLO;
  s->hello[1] = LMZ_SECURE_VERSION;
  s->hello[2] = (uint8_t)role;
  memcpy(s->hello + 3, s->epk, 32);
  memcpy(s->hello + 35, rnd + crypto_kx_SEEDBYTES, 24);
  sodium_memzero(rnd, sizeof rnd);
  lmz_frame_splitter_init(&s->in, LMZ_SECURE_HS_MAX);
  return 0;
}

void lmz_secure_free(lmz_secure *s) {
  lmz_frame_splitter_free(&s->in);
  sodium_memzero(s->key, sizeof s->key);
  sodium_memzero(s->esk, sizeof s->esk);
  sodium_memzero(s->k_tx, sizeof s->k_tx);
  sodium_memzero(s->k_rx, sizeof s->k_rx);
  sodium_memzero(s->peer_auth, sizeof s->peer_auth);
}

/* Appends one framed handshake message. */
static int put_msg(lmz_buf *out, const uint8_t *body, uint32_t len) {
  int rv = lmz_buf_reserve(out, LMZ_FRAME_HDR_LEN + len);
  if (rv)
    return rv;
  lmz_frame_put_len(out->data + out->len, len);
  memcpy(out->data + out->len + LMZ_FRAME_HDR_LEN, body, len);
  out->len += LMZ_FRAME_HDR_LEN + len;
  return 0;
}

int lmz_secure_start(lmz_secure *s, lmz_buf *out) {
  if (s->role != LMZ_SECURE_INITIATOR)
    return 0;
  return put_msg(out, s->hello, LMZ_SECURE_HELLO_LEN);
}

bool lmz_secure_can_send(const lmz_secure *s) {
  if (s->state == LMZ_SECURE_OPEN)
    return true;
  return s->role == LMZ_SECURE_INITIATOR && s->state == LMZ_SECURE_WAIT_AUTH;
}

/* MAC_K(label || a || b), 32 bytes. */
static void mac3(uint8_t out[32], const uint8_t *key, const char *label,
                 const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, key, key ? 32 : 0, 32);
  crypto_generichash_update(&st, (const uint8_t *)label, strlen(label));
  if (alen)
    crypto_generichash_update(&st, a, alen);
  if (blen)
    crypto_generichash_update(&st, b, blen);
  crypto_generichash_final(&st, out, 32);
  sodium_memzero(&st, sizeof st);
}

/* After both hellos: transcript, kx, session keys, both proofs. Appends our
 * proof to `out` when we are the initiator. Wipes K and esk. */
static int derive(lmz_secure *s, const uint8_t *peer_hello, lmz_buf *out) {
  bool ini = s->role == LMZ_SECURE_INITIATOR;
  const uint8_t *hi = ini ? s->hello : peer_hello;
  const uint8_t *hr = ini ? peer_hello : s->hello;
  uint8_t th[32], rx[32], tx[32], mine[AUTH_LEN];
  mac3(th, NULL, "lmz/1 transcript", hi, LMZ_SECURE_HELLO_LEN, hr,
       LMZ_SECURE_HELLO_LEN);
  const uint8_t *peer_pk = peer_hello + 3;
  int kx = ini ? crypto_kx_client_session_keys(rx, tx, s->epk, s->esk, peer_pk)
               : crypto_kx_server_session_keys(rx, tx, s->epk, s->esk, peer_pk);
  sodium_memzero(s->esk, sizeof s->esk);
  if (kx != 0)
    return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_HANDSHAKE,
                "peer sent an invalid ephemeral key");
  /* tx_I == rx_R and rx_I == tx_R: name the halves by direction. */
  const uint8_t *i2r = ini ? tx : rx, *r2i = ini ? rx : tx;
  uint8_t k_i2r[32], k_r2i[32], a_i[32], a_r[32];
  mac3(k_i2r, s->key, "lmz/1 key i2r", i2r, 32, th, 32);
  mac3(k_r2i, s->key, "lmz/1 key r2i", r2i, 32, th, 32);
  mac3(a_i, s->key, "lmz/1 auth initiator", th, 32, NULL, 0);
  mac3(a_r, s->key, "lmz/1 auth responder", th, 32, NULL, 0);
  memcpy(s->k_tx, ini ? k_i2r : k_r2i, 32);
  memcpy(s->k_rx, ini ? k_r2i : k_i2r, 32);
  memcpy(s->peer_auth, ini ? a_r : a_i, 32);
  mine[0] = MSG_AUTH;
  memcpy(mine + 1, ini ? a_i : a_r, 32);
  /* The responder keeps its proof in `hello` (no longer needed) until the
   * initiator's proof verifies: it must not reveal it before. */
  if (!ini)
    memcpy(s->hello, mine, AUTH_LEN);
  sodium_memzero(s->key, sizeof s->key);
  sodium_memzero(rx, 32), sodium_memzero(tx, 32);
  sodium_memzero(k_i2r, 32), sodium_memzero(k_r2i, 32);
  sodium_memzero(a_i, 32), sodium_memzero(a_r, 32);
  s->state = LMZ_SECURE_WAIT_AUTH;
  int rv = ini ? put_msg(out, mine, AUTH_LEN) : 0;
  sodium_memzero(mine, sizeof mine);
  return rv ? fail(s, rv, LMZ_SECURE_FAIL_HANDSHAKE, "out of memory") : 0;
}

/* A REJECT from the responder (initiator only). Unauthenticated: it only
 * picks the error message (secure.h, lmz_secure_overload_notice). */
static int on_reject(lmz_secure *s, uint8_t reason) {
  if (reason == REJECT_OVERLOADED) {
    s->peer_overloaded = true;
    return fail(s, LMZ_EOVERLOAD, LMZ_SECURE_FAIL_HANDSHAKE,
                "the node is overloaded: it dropped our handshake (too many "
                "connections waiting to authenticate); retry later");
  }
  s->peer_rejected = true;
  return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_HANDSHAKE,
              "the node rejected our cluster key (wrong key?)");
}

void lmz_secure_overload_notice(uint8_t out[LMZ_SECURE_OVERLOAD_NOTICE_LEN]) {
  _Static_assert(LMZ_SECURE_OVERLOAD_NOTICE_LEN == 4 + REJECT_LEN, "notice");
  lmz_frame_put_len(out, REJECT_LEN);
  out[4] = MSG_REJECT;
  out[5] = REJECT_OVERLOADED;
}

static int on_hello(lmz_secure *s, const uint8_t *b, size_t len, lmz_buf *out) {
  if (len == REJECT_LEN && b[0] == MSG_REJECT &&
      s->role == LMZ_SECURE_INITIATOR)
    return on_reject(s, b[1]); /* overloaded; a key reject cannot come yet */
  if (len != LMZ_SECURE_HELLO_LEN || b[0] != MSG_HELLO)
    return fail(s, LMZ_EBADMSG, LMZ_SECURE_FAIL_HANDSHAKE,
                "malformed handshake hello (not an lmz node port peer?)");
  if (b[1] != LMZ_SECURE_VERSION)
    return fail(s, LMZ_EBADVERSION, LMZ_SECURE_FAIL_HANDSHAKE,
                "peer speaks another handshake version");
  uint8_t want = s->role == LMZ_SECURE_INITIATOR ? LMZ_SECURE_RESPONDER
                                                 : LMZ_SECURE_INITIATOR;
  if (b[2] != want)
    return fail(s, LMZ_EBADMSG, LMZ_SECURE_FAIL_HANDSHAKE,
                "peer hello has the wrong role (reflected?)");
  if (s->role == LMZ_SECURE_RESPONDER) {
    int rv = put_msg(out, s->hello, LMZ_SECURE_HELLO_LEN);
    if (rv)
      return fail(s, rv, LMZ_SECURE_FAIL_HANDSHAKE, "out of memory");
  }
  return derive(s, b, out);
}

static int on_auth(lmz_secure *s, const uint8_t *b, size_t len, lmz_buf *out) {
  if (len == REJECT_LEN && b[0] == MSG_REJECT &&
      s->role == LMZ_SECURE_INITIATOR)
    return on_reject(s, b[1]);
  if (len != AUTH_LEN || b[0] != MSG_AUTH)
    return fail(s, LMZ_EBADMSG, LMZ_SECURE_FAIL_HANDSHAKE,
                "malformed handshake proof");
  if (crypto_verify_32(b + 1, s->peer_auth) != 0) {
    if (s->role == LMZ_SECURE_RESPONDER) {
      const uint8_t rej[REJECT_LEN] = {MSG_REJECT, REJECT_BAD_PROOF};
      (void)put_msg(out, rej, REJECT_LEN); /* best effort notice */
      return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_HANDSHAKE,
                  "peer failed to prove the cluster key (wrong key?)");
    }
    return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_HANDSHAKE,
                "the node could not prove the cluster key (wrong key on "
                "the node, or not an lmz node)");
  }
  if (s->role == LMZ_SECURE_RESPONDER) {
    int rv = put_msg(out, s->hello, AUTH_LEN); /* our proof, kept in hello */
    sodium_memzero(s->hello, sizeof s->hello);
    if (rv)
      return fail(s, rv, LMZ_SECURE_FAIL_HANDSHAKE, "out of memory");
  }
  s->state = LMZ_SECURE_OPEN;
  s->in.max = LMZ_SECURE_RECORD_MAX; /* from here on only records arrive */
  return 0;
}

static void make_nonce(uint8_t nonce[12], uint64_t ctr) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++)
    nonce[4 + i] = (uint8_t)(ctr >> (8 * i));
}

static int open_record(lmz_secure *s, const uint8_t *b, size_t len,
                       lmz_buf *plain) {
  if (len < LMZ_SECURE_TAG_LEN)
    return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_RECORD,
                "record shorter than its tag");
  if (s->n_rx == UINT64_MAX)
    return fail(s, LMZ_ETOOBIG, LMZ_SECURE_FAIL_RECORD, "record counter");
  size_t n = len - LMZ_SECURE_TAG_LEN;
  int rv = lmz_buf_reserve(plain, n);
  if (rv)
    return fail(s, rv, LMZ_SECURE_FAIL_RECORD, "out of memory");
  uint8_t ad[4], nonce[12], none;
  lmz_frame_put_len(ad, (uint32_t)len);
  make_nonce(nonce, s->n_rx);
  uint8_t *dst = n ? plain->data + plain->len : &none; /* empty record: the
                                                          buffer may be NULL */
  if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(
          dst, NULL, b, n, b + n, ad, sizeof ad, nonce, s->k_rx) != 0) {
    char msg[128];
    snprintf(msg, sizeof msg,
             "record %llu failed authentication (tampered, replayed, "
             "reordered or injected)",
             (unsigned long long)s->n_rx);
    return fail(s, LMZ_EAUTH, LMZ_SECURE_FAIL_RECORD, msg);
  }
  plain->len += n;
  s->n_rx++;
  return 0;
}

int lmz_secure_feed(lmz_secure *s, const uint8_t *p, size_t n, lmz_buf *out,
                    lmz_buf *plain) {
  if (s->state == LMZ_SECURE_FAILED)
    return s->err;
  for (;;) {
    const uint8_t *body;
    size_t len;
    int rv = lmz_frame_split(&s->in, &p, &n, &body, &len);
    if (rv == 0)
      return 0;
    if (rv == LMZ_ETOOBIG)
      return fail(s, rv, LMZ_SECURE_FAIL_OVERSIZE,
                  s->state == LMZ_SECURE_OPEN
                      ? "record length over the cap"
                      : "handshake message length over the cap");
    if (rv < 0)
      return fail(s, rv, LMZ_SECURE_FAIL_HANDSHAKE, "out of memory");
    if (s->state == LMZ_SECURE_OPEN)
      rv = open_record(s, body, len, plain);
    else if (s->state == LMZ_SECURE_WAIT_HELLO)
      rv = on_hello(s, body, len, out);
    else
      rv = on_auth(s, body, len, out);
    if (rv)
      return rv;
  }
}

size_t lmz_secure_sealed_len(size_t n) {
  size_t records =
      (n + LMZ_SECURE_RECORD_PLAIN_MAX - 1) / LMZ_SECURE_RECORD_PLAIN_MAX;
  return n + records * (LMZ_FRAME_HDR_LEN + LMZ_SECURE_TAG_LEN);
}

int lmz_secure_seal_to(lmz_secure *s, const uint8_t *p, size_t n,
                       uint8_t *dst) {
  if (!lmz_secure_can_send(s))
    return LMZ_EINVAL;
  while (n > 0) {
    size_t k =
        n < LMZ_SECURE_RECORD_PLAIN_MAX ? n : LMZ_SECURE_RECORD_PLAIN_MAX;
    if (s->n_tx == UINT64_MAX)
      return LMZ_ETOOBIG;
    uint8_t nonce[12];
    make_nonce(nonce, s->n_tx++);
    lmz_frame_put_len(dst, (uint32_t)(k + LMZ_SECURE_TAG_LEN));
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(
        dst + 4, dst + 4 + k, NULL, p, k, dst, 4, NULL, nonce, s->k_tx);
    dst += 4 + k + LMZ_SECURE_TAG_LEN;
    p += k;
    n -= k;
  }
  return 0;
}

int lmz_secure_seal(lmz_secure *s, const uint8_t *p, size_t n, lmz_buf *out) {
  if (!lmz_secure_can_send(s))
    return LMZ_EINVAL;
  size_t need = lmz_secure_sealed_len(n);
  int rv = lmz_buf_reserve(out, need);
  if (rv)
    return rv;
  rv = lmz_secure_seal_to(s, p, n, out->data + out->len);
  if (rv == 0)
    out->len += need;
  return rv;
}
