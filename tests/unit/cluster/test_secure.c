/* Unit tests for cluster/secure.c (handshake + record layer, no sockets) and
 * cluster/keyfile.c. */
#include "lib/testlib.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/keyfile.h"
#include "cluster/secure.h"

static const uint8_t KEY_A[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                  23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static uint8_t KEY_B[32]; /* KEY_A with one bit flipped */

typedef struct pair {
  lmz_secure i, r;
  lmz_buf i_out, r_out;     /* bytes each side wants to send */
  lmz_buf i_plain, r_plain; /* bytes each side received */
  int i_rv, r_rv;
} pair;

static void pair_init(pair *p, const uint8_t *ki, const uint8_t *kr) {
  memset(p, 0, sizeof *p);
  uint8_t ri[LMZ_SECURE_RANDOM_LEN], rr[LMZ_SECURE_RANDOM_LEN];
  memset(ri, 0x11, sizeof ri);
  memset(rr, 0x22, sizeof rr);
  assert_int_equal(lmz_secure_init(&p->i, LMZ_SECURE_INITIATOR, ki, ri), 0);
  assert_int_equal(lmz_secure_init(&p->r, LMZ_SECURE_RESPONDER, kr, rr), 0);
  assert_int_equal(lmz_secure_start(&p->i, &p->i_out), 0);
  assert_int_equal(lmz_secure_start(&p->r, &p->r_out), 0);
  assert_int_equal(p->r_out.len, 0); /* the responder speaks second */
}

static void pair_free(pair *p) {
  lmz_secure_free(&p->i);
  lmz_secure_free(&p->r);
  lmz_buf_free(&p->i_out);
  lmz_buf_free(&p->r_out);
  lmz_buf_free(&p->i_plain);
  lmz_buf_free(&p->r_plain);
}

/* Delivers queued bytes both ways until quiet or an error (bounded). */
static void pump(pair *p) {
  for (int round = 0; round < 10; round++) {
    if (p->i_out.len == 0 && p->r_out.len == 0)
      return;
    lmz_buf tmp = p->i_out;
    lmz_buf_init(&p->i_out);
    if (p->r_rv == 0)
      p->r_rv =
          lmz_secure_feed(&p->r, tmp.data, tmp.len, &p->r_out, &p->r_plain);
    lmz_buf_free(&tmp);
    tmp = p->r_out;
    lmz_buf_init(&p->r_out);
    if (p->i_rv == 0)
      p->i_rv =
          lmz_secure_feed(&p->i, tmp.data, tmp.len, &p->i_out, &p->i_plain);
    lmz_buf_free(&tmp);
  }
  fail_msg("handshake did not settle");
}

static void open_pair(pair *p) {
  pair_init(p, KEY_A, KEY_A);
  pump(p);
  assert_int_equal(p->i_rv, 0);
  assert_int_equal(p->r_rv, 0);
  assert_true(lmz_secure_is_open(&p->i));
  assert_true(lmz_secure_is_open(&p->r));
}

static void test_handshake_ok_and_data_both_ways(void **state) {
  (void)state;
  pair p;
  open_pair(&p);
  assert_int_equal(lmz_secure_seal(&p.i, (const uint8_t *)"ping", 4, &p.i_out),
                   0);
  assert_int_equal(lmz_secure_seal(&p.r, (const uint8_t *)"pong!", 5, &p.r_out),
                   0);
  assert_int_equal(p.i_out.len, 4 + 4 + 16);
  pump(&p);
  assert_int_equal(p.r_plain.len, 4);
  assert_memory_equal(p.r_plain.data, "ping", 4);
  assert_int_equal(p.i_plain.len, 5);
  assert_memory_equal(p.i_plain.data, "pong!", 5);
  assert_int_equal(p.i.n_tx, 1);
  assert_int_equal(p.r.n_rx, 1);
  pair_free(&p);
}

static void test_send_rights_during_handshake(void **state) {
  (void)state;
  pair p;
  pair_init(&p, KEY_A, KEY_A);
  assert_false(lmz_secure_can_send(&p.i));
  assert_int_equal(lmz_secure_seal(&p.i, (const uint8_t *)"x", 1, &p.i_out),
                   LMZ_EINVAL);
  /* hello_I -> R */
  p.r_rv =
      lmz_secure_feed(&p.r, p.i_out.data, p.i_out.len, &p.r_out, &p.r_plain);
  lmz_buf_reset(&p.i_out);
  assert_int_equal(p.r_rv, 0);
  assert_false(lmz_secure_can_send(&p.r)); /* not before I proves K */
  assert_int_equal(p.r_out.len, 4 + LMZ_SECURE_HELLO_LEN); /* no proof yet */
  /* hello_R -> I: I sends its proof and may pipeline data behind it. */
  p.i_rv =
      lmz_secure_feed(&p.i, p.r_out.data, p.r_out.len, &p.i_out, &p.i_plain);
  lmz_buf_reset(&p.r_out);
  assert_int_equal(p.i_rv, 0);
  assert_true(lmz_secure_can_send(&p.i));
  assert_false(lmz_secure_is_open(&p.i));
  assert_int_equal(lmz_secure_seal(&p.i, (const uint8_t *)"early", 5, &p.i_out),
                   0);
  pump(&p);
  assert_true(lmz_secure_is_open(&p.i));
  assert_true(lmz_secure_is_open(&p.r));
  assert_int_equal(p.r_plain.len, 5);
  assert_memory_equal(p.r_plain.data, "early", 5);
  pair_free(&p);
}

static void check_wrong_key(const uint8_t *ki, const uint8_t *kr) {
  pair p;
  pair_init(&p, ki, kr);
  /* hello_I -> R, hello_R -> I, auth_I (+ early data) -> R */
  lmz_buf r_sent = LMZ_BUF_INIT;
  p.r_rv =
      lmz_secure_feed(&p.r, p.i_out.data, p.i_out.len, &p.r_out, &p.r_plain);
  lmz_buf_reset(&p.i_out);
  lmz_buf_append(&r_sent, p.r_out.data, p.r_out.len);
  p.i_rv =
      lmz_secure_feed(&p.i, p.r_out.data, p.r_out.len, &p.i_out, &p.i_plain);
  lmz_buf_reset(&p.r_out);
  assert_int_equal(
      lmz_secure_seal(&p.i, (const uint8_t *)"secret", 6, &p.i_out), 0);
  p.r_rv =
      lmz_secure_feed(&p.r, p.i_out.data, p.i_out.len, &p.r_out, &p.r_plain);
  lmz_buf_reset(&p.i_out);
  assert_int_equal(p.r_rv, LMZ_EAUTH);
  assert_int_equal(p.r.fail, LMZ_SECURE_FAIL_HANDSHAKE);
  assert_int_equal(p.r_plain.len, 0); /* early data never decrypted */
  assert_string_equal(p.r.errmsg,
                      "peer failed to prove the cluster key (wrong key?)");
  /* R answered with a reject notice only, never its own proof. */
  assert_int_equal(p.r_out.len, 4 + 2);
  assert_int_equal(p.r_out.data[4], 3);
  p.i_rv =
      lmz_secure_feed(&p.i, p.r_out.data, p.r_out.len, &p.i_out, &p.i_plain);
  assert_int_equal(p.i_rv, LMZ_EAUTH);
  assert_true(p.i.peer_rejected);
  assert_string_equal(p.i.errmsg,
                      "the node rejected our cluster key (wrong key?)");
  assert_false(lmz_secure_is_open(&p.i));
  assert_false(lmz_secure_can_send(&p.i));
  /* Terminal: later input gets the same error. */
  assert_int_equal(
      lmz_secure_feed(&p.r, (const uint8_t *)"x", 1, &p.r_out, &p.r_plain),
      LMZ_EAUTH);
  lmz_buf_free(&r_sent);
  pair_free(&p);
}

static void test_wrong_key_either_side(void **state) {
  (void)state;
  check_wrong_key(KEY_A, KEY_B);
  check_wrong_key(KEY_B, KEY_A);
}

/* An impostor responder without K (it answers every AUTH with garbage):
 * the initiator refuses it. */
static void test_impostor_responder_proof_refused(void **state) {
  (void)state;
  pair p;
  pair_init(&p, KEY_A, KEY_A);
  p.r_rv =
      lmz_secure_feed(&p.r, p.i_out.data, p.i_out.len, &p.r_out, &p.r_plain);
  p.i_rv =
      lmz_secure_feed(&p.i, p.r_out.data, p.r_out.len, &p.i_out, &p.i_plain);
  uint8_t fake[4 + 33] = {0, 0, 0, 33, 2};
  memset(fake + 5, 0xAB, 32);
  p.i_rv = lmz_secure_feed(&p.i, fake, sizeof fake, &p.i_out, &p.i_plain);
  assert_int_equal(p.i_rv, LMZ_EAUTH);
  assert_false(p.i.peer_rejected);
  assert_non_null(strstr(p.i.errmsg, "could not prove the cluster key"));
  pair_free(&p);
}

/* Seals `msg` from I, returns the record bytes (p.i_out reset). */
static lmz_buf one_record(pair *p, const char *msg) {
  lmz_buf rec = LMZ_BUF_INIT;
  assert_int_equal(
      lmz_secure_seal(&p->i, (const uint8_t *)msg, strlen(msg), &rec), 0);
  return rec;
}

static void test_flipped_bit_fails(void **state) {
  (void)state;
  pair p0;
  open_pair(&p0);
  lmz_buf rec0 = one_record(&p0, "hello world");
  size_t len = rec0.len;
  lmz_buf_free(&rec0);
  pair_free(&p0);
  for (size_t pos = 4; pos < len; pos++) { /* ciphertext and tag */
    for (int bit = 0; bit < 8; bit += 3) {
      pair p;
      open_pair(&p);
      lmz_buf rec = one_record(&p, "hello world");
      rec.data[pos] ^= (uint8_t)(1u << bit);
      int rv = lmz_secure_feed(&p.r, rec.data, rec.len, &p.r_out, &p.r_plain);
      assert_int_equal(rv, LMZ_EAUTH);
      assert_int_equal(p.r.fail, LMZ_SECURE_FAIL_RECORD);
      assert_int_equal(p.r_plain.len, 0);
      lmz_buf_free(&rec);
      pair_free(&p);
    }
  }
  /* A forged empty record (tag only) with a fresh plaintext buffer. */
  {
    pair e;
    open_pair(&e);
    lmz_buf_free(&e.r_plain);
    uint8_t forged[4 + 16] = {0, 0, 0, 16};
    assert_int_equal(
        lmz_secure_feed(&e.r, forged, sizeof forged, &e.r_out, &e.r_plain),
        LMZ_EAUTH);
    assert_null(e.r_plain.data);
    pair_free(&e);
  }
  /* A flipped bit in the length header changes the AD or the split: a
   * shorter length fails authentication at once. */
  pair p;
  open_pair(&p);
  lmz_buf rec = one_record(&p, "hello world");
  rec.data[3] ^= 1; /* 27 -> 26 */
  assert_int_equal(
      lmz_secure_feed(&p.r, rec.data, rec.len, &p.r_out, &p.r_plain),
      LMZ_EAUTH);
  lmz_buf_free(&rec);
  pair_free(&p);
}

static void test_replay_reorder_drop_fail(void **state) {
  (void)state;
  pair p;
  /* replay */
  open_pair(&p);
  lmz_buf r1 = one_record(&p, "one");
  assert_int_equal(lmz_secure_feed(&p.r, r1.data, r1.len, &p.r_out, &p.r_plain),
                   0);
  assert_int_equal(lmz_secure_feed(&p.r, r1.data, r1.len, &p.r_out, &p.r_plain),
                   LMZ_EAUTH);
  assert_non_null(strstr(p.r.errmsg, "record 1 failed authentication"));
  assert_int_equal(p.r_plain.len, 3);
  lmz_buf_free(&r1);
  pair_free(&p);
  /* reorder: r2 before r1 */
  open_pair(&p);
  r1 = one_record(&p, "one");
  lmz_buf r2 = one_record(&p, "two");
  assert_int_equal(lmz_secure_feed(&p.r, r2.data, r2.len, &p.r_out, &p.r_plain),
                   LMZ_EAUTH);
  assert_int_equal(p.r_plain.len, 0);
  lmz_buf_free(&r1);
  lmz_buf_free(&r2);
  pair_free(&p);
  /* a record from another session (same key, same positions) */
  pair q;
  open_pair(&p);
  pair_init(&q, KEY_A, KEY_A);
  uint8_t rq[LMZ_SECURE_RANDOM_LEN];
  memset(rq, 0x33, sizeof rq); /* a different ephemeral key for q's I */
  lmz_secure_free(&q.i);
  lmz_buf_reset(&q.i_out);
  lmz_secure_init(&q.i, LMZ_SECURE_INITIATOR, KEY_A, rq);
  lmz_secure_start(&q.i, &q.i_out);
  pump(&q);
  assert_true(lmz_secure_is_open(&q.r));
  lmz_buf other = one_record(&q, "one");
  assert_int_equal(
      lmz_secure_feed(&p.r, other.data, other.len, &p.r_out, &p.r_plain),
      LMZ_EAUTH);
  lmz_buf_free(&other);
  pair_free(&q);
  pair_free(&p);
}

static void test_records_split_anywhere_and_large(void **state) {
  (void)state;
  pair p;
  open_pair(&p);
  size_t big = LMZ_SECURE_RECORD_PLAIN_MAX * 2 + 1000;
  uint8_t *data = malloc(big);
  for (size_t i = 0; i < big; i++)
    data[i] = (uint8_t)(i * 31);
  lmz_buf recs = LMZ_BUF_INIT;
  assert_int_equal(lmz_secure_seal(&p.i, data, big, &recs), 0);
  assert_int_equal(recs.len, lmz_secure_sealed_len(big));
  assert_int_equal(recs.len, big + 3 * 20);
  assert_int_equal(p.i.n_tx, 3);
  /* Feed in odd-sized chunks. */
  size_t off = 0, step = 1;
  while (off < recs.len) {
    size_t k = recs.len - off < step ? recs.len - off : step;
    assert_int_equal(
        lmz_secure_feed(&p.r, recs.data + off, k, &p.r_out, &p.r_plain), 0);
    off += k;
    step = step * 3 + 1;
  }
  assert_int_equal(p.r_plain.len, big);
  assert_memory_equal(p.r_plain.data, data, big);
  lmz_buf_free(&recs);
  free(data);
  /* A small record fed one byte at a time. */
  lmz_buf_reset(&p.r_plain);
  lmz_buf r = one_record(&p, "bytewise");
  for (size_t i = 0; i < r.len; i++)
    assert_int_equal(lmz_secure_feed(&p.r, r.data + i, 1, &p.r_out, &p.r_plain),
                     0);
  assert_int_equal(p.r_plain.len, 8);
  assert_memory_equal(p.r_plain.data, "bytewise", 8);
  lmz_buf_free(&r);
  pair_free(&p);
}

static int feed_r(const uint8_t *bytes, size_t n, lmz_secure *r) {
  lmz_buf out = LMZ_BUF_INIT, plain = LMZ_BUF_INIT;
  int rv = lmz_secure_feed(r, bytes, n, &out, &plain);
  lmz_buf_free(&out);
  lmz_buf_free(&plain);
  return rv;
}

static void test_hostile_handshakes(void **state) {
  (void)state;
  lmz_secure r;
  /* oversize handshake length: refused before buffering */
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  const uint8_t big[4] = {0, 0, 0x10, 0};
  assert_int_equal(feed_r(big, 4, &r), LMZ_ETOOBIG);
  assert_int_equal(r.fail, LMZ_SECURE_FAIL_OVERSIZE);
  lmz_secure_free(&r);
  /* an HTTP request */
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  assert_int_equal(feed_r((const uint8_t *)http, strlen(http), &r),
                   LMZ_ETOOBIG); /* "GET " as a length is ~1.2 GB */
  lmz_secure_free(&r);
  /* a well-framed but malformed hello */
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  const uint8_t junk[9] = {0, 0, 0, 5, 1, 2, 3, 4, 5};
  assert_int_equal(feed_r(junk, sizeof junk, &r), LMZ_EBADMSG);
  lmz_secure_free(&r);
  /* other version, reflected role, low-order key */
  uint8_t hello[4 + LMZ_SECURE_HELLO_LEN] = {0, 0, 0, LMZ_SECURE_HELLO_LEN,
                                             1, 2, 1};
  for (int i = 7; i < 4 + 35; i++)
    hello[i] = (uint8_t)i;
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  assert_int_equal(feed_r(hello, sizeof hello, &r), LMZ_EBADVERSION);
  lmz_secure_free(&r);
  hello[5] = 1, hello[6] = 2; /* a responder hello sent to a responder */
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  assert_int_equal(feed_r(hello, sizeof hello, &r), LMZ_EBADMSG);
  lmz_secure_free(&r);
  hello[6] = 1;
  memset(hello + 7, 0, 32); /* all-zero X25519 point */
  lmz_secure_init(&r, LMZ_SECURE_RESPONDER, KEY_A, NULL);
  assert_int_equal(feed_r(hello, sizeof hello, &r), LMZ_EAUTH);
  assert_string_equal(r.errmsg, "peer sent an invalid ephemeral key");
  lmz_secure_free(&r);
  /* a record where the proof should be: never decrypted, refused */
  pair p;
  pair_init(&p, KEY_A, KEY_A);
  p.r_rv =
      lmz_secure_feed(&p.r, p.i_out.data, p.i_out.len, &p.r_out, &p.r_plain);
  uint8_t rec[4 + 40] = {0, 0, 0, 40};
  assert_int_equal(feed_r(rec, sizeof rec, &p.r), LMZ_EBADMSG);
  pair_free(&p);
}

static void test_deterministic_hello(void **state) {
  (void)state;
  pair p;
  pair_init(&p, KEY_A, KEY_A);
  assert_int_equal(p.i_out.len, 4 + LMZ_SECURE_HELLO_LEN);
  const uint8_t head[7] = {0, 0, 0, LMZ_SECURE_HELLO_LEN, 1, 1, 1};
  assert_memory_equal(p.i_out.data, head, sizeof head);
  uint8_t nonce[24];
  memset(nonce, 0x11, sizeof nonce); /* the injected nonce bytes */
  assert_memory_equal(p.i_out.data + 4 + 35, nonce, 24);
  pair_free(&p);
}

/* ---- keyfile ---- */

static void test_keyfile(void **state) {
  (void)state;
  char *dir = tl_mkdtemp("lmz-keyfile");
  assert_non_null(dir);
  char path[512], errmsg[LMZ_ERRMSG_LEN];
  snprintf(path, sizeof path, "%s/cluster.key", dir);
  uint8_t key[32], got[32];
  lmz_keyfile_generate(key);
  assert_int_equal(lmz_keyfile_load(path, got, errmsg), LMZ_ENOTFOUND);
  assert_non_null(strstr(errmsg, "does not exist"));
  assert_int_equal(lmz_keyfile_save(path, key, 0, errmsg), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(st.st_size, 65);
  assert_int_equal(lmz_keyfile_load(path, got, errmsg), 0);
  assert_memory_equal(got, key, 32);
  assert_int_equal(lmz_keyfile_save(path, key, 0, errmsg), LMZ_EEXIST);
  uint8_t key2[32];
  lmz_keyfile_generate(key2);
  assert_int_equal(lmz_keyfile_save(path, key2, 1, errmsg), 0);
  assert_int_equal(lmz_keyfile_load(path, got, errmsg), 0);
  assert_memory_equal(got, key2, 32);
  /* too open */
  chmod(path, 0644);
  assert_int_equal(lmz_keyfile_load(path, got, errmsg), LMZ_EACCESS);
  assert_non_null(strstr(errmsg, "permissions 0644"));
  assert_non_null(strstr(errmsg, "chmod 600"));
  chmod(path, 0600);
  /* malformed: write directly */
  FILE *f = fopen(path, "w");
  fputs("not a key\n", f);
  fclose(f);
  assert_int_equal(lmz_keyfile_load(path, got, errmsg), LMZ_EBADCONFIG);
  assert_non_null(strstr(errmsg, "64 hex digits or base64"));
  unlink(path);
  /* a directory is not a key file */
  assert_int_equal(lmz_keyfile_load(dir, got, errmsg), LMZ_EACCESS);
  assert_non_null(strstr(errmsg, "not a regular file"));
  tl_rmtree(dir);
  free(dir);
}

static void test_keyfile_parse_forms(void **state) {
  (void)state;
  uint8_t key[32], want[32];
  char errmsg[LMZ_ERRMSG_LEN];
  for (int i = 0; i < 32; i++)
    want[i] = (uint8_t)i;
  const char *hex =
      "  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
  assert_int_equal(lmz_keyfile_parse(hex, strlen(hex), key, errmsg), 0);
  assert_memory_equal(key, want, 32);
  const char *b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
  assert_int_equal(lmz_keyfile_parse(b64, strlen(b64), key, errmsg), 0);
  assert_memory_equal(key, want, 32);
  const char *b64np = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
  assert_int_equal(lmz_keyfile_parse(b64np, strlen(b64np), key, errmsg), 0);
  assert_memory_equal(key, want, 32);
  const char *badhex =
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g";
  assert_int_equal(lmz_keyfile_parse(badhex, strlen(badhex), key, errmsg),
                   LMZ_EBADCONFIG);
  assert_string_equal(errmsg, "the key is not valid hex");
  const char *inner = "0001020304050607 8090a0b0c0d0e0f101112131415161718191a1b"
                      "1c1d1e1f";
  assert_int_equal(lmz_keyfile_parse(inner, strlen(inner), key, errmsg),
                   LMZ_EBADCONFIG);
  assert_int_equal(lmz_keyfile_parse("", 0, key, errmsg), LMZ_EBADCONFIG);
}

static int setup(void **state) {
  (void)state;
  if (sodium_init() < 0)
    return -1;
  memcpy(KEY_B, KEY_A, 32);
  KEY_B[17] ^= 0x40;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_handshake_ok_and_data_both_ways),
      cmocka_unit_test(test_send_rights_during_handshake),
      cmocka_unit_test(test_wrong_key_either_side),
      cmocka_unit_test(test_impostor_responder_proof_refused),
      cmocka_unit_test(test_flipped_bit_fails),
      cmocka_unit_test(test_replay_reorder_drop_fail),
      cmocka_unit_test(test_records_split_anywhere_and_large),
      cmocka_unit_test(test_hostile_handshakes),
      cmocka_unit_test(test_deterministic_hello),
      cmocka_unit_test(test_keyfile),
      cmocka_unit_test(test_keyfile_parse_forms),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
