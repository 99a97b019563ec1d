/* Unit tests for proto/frame.c: length-prefixed protobuf-c framing. */
#include "lib/testlib.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "proto/frame.h"

/* Builds a stream of three frames: a Call with a 300-byte chain, a Hello, a
 * Result. Returns the stream in `b`. */
static void build_stream(lmz_buf *b, uint8_t *chain, size_t chain_len) {
  for (size_t i = 0; i < chain_len; i++)
    chain[i] = (uint8_t)(i * 7 + 1);
  Lmz__Call call = LMZ__CALL__INIT;
  call.call_id = 42;
  call.version = 1;
  call.chain.data = chain;
  call.chain.len = chain_len;
  Lmz__Frame f1 = LMZ__FRAME__INIT;
  f1.body_case = LMZ__FRAME__BODY_CALL;
  f1.call = &call;
  Lmz__Hello hello = LMZ__HELLO__INIT;
  hello.node_id = 7;
  hello.name = "node-7";
  Lmz__Frame f2 = LMZ__FRAME__INIT;
  f2.body_case = LMZ__FRAME__BODY_HELLO;
  f2.hello = &hello;
  Lmz__Result res = LMZ__RESULT__INIT;
  res.call_id = 42;
  res.ok = 1;
  res.code = -9017;
  Lmz__Frame f3 = LMZ__FRAME__INIT;
  f3.body_case = LMZ__FRAME__BODY_RESULT;
  f3.result = &res;
  long n1 = lmz_frame_append(b, &f1, 0);
  assert_int_equal(n1, (long)lmz_frame_encoded_len(&f1));
  assert_true(n1 > 300);
  assert_true(lmz_frame_append(b, &f2, 0) > 0);
  assert_true(lmz_frame_append(b, &f3, 0) > 0);
}

static void check_frame(int idx, const uint8_t *p, size_t n,
                        const uint8_t *chain, size_t chain_len) {
  Lmz__Frame *f = NULL;
  assert_int_equal(lmz_frame_unpack(p, n, &f), 0);
  switch (idx) {
  case 0:
    assert_int_equal(f->body_case, LMZ__FRAME__BODY_CALL);
    assert_int_equal(f->call->call_id, 42);
    assert_int_equal(f->call->chain.len, chain_len);
    assert_memory_equal(f->call->chain.data, chain, chain_len);
    break;
  case 1:
    assert_int_equal(f->body_case, LMZ__FRAME__BODY_HELLO);
    assert_int_equal(f->hello->node_id, 7);
    assert_string_equal(f->hello->name, "node-7");
    break;
  default:
    assert_int_equal(f->body_case, LMZ__FRAME__BODY_RESULT);
    assert_int_equal(f->result->code, -9017);
    assert_true(f->result->ok);
  }
  lmz_frame_free(f);
}

/* Feeds `stream` in the chunks given by `cuts` and checks all 3 frames. */
static void feed_chunks(const lmz_buf *stream, const size_t *cuts, int ncuts,
                        const uint8_t *chain, size_t chain_len) {
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, 0);
  int got = 0;
  size_t start = 0;
  for (int c = 0; c <= ncuts; c++) {
    size_t end = c < ncuts ? cuts[c] : stream->len;
    const uint8_t *p = stream->data + start;
    size_t n = end - start;
    const uint8_t *body;
    size_t blen;
    int rv;
    while ((rv = lmz_frame_split(&sp, &p, &n, &body, &blen)) == 1)
      check_frame(got++, body, blen, chain, chain_len);
    assert_int_equal(rv, 0);
    assert_int_equal(n, 0);
    start = end;
  }
  assert_int_equal(got, 3);
  assert_int_equal(lmz_frame_splitter_buffered(&sp), 0);
  lmz_frame_splitter_free(&sp);
}

static void test_split_every_boundary(void **state) {
  (void)state;
  uint8_t chain[300];
  lmz_buf b = LMZ_BUF_INIT;
  build_stream(&b, chain, sizeof chain);
  for (size_t i = 0; i <= b.len; i++) { /* one cut at every byte */
    size_t cuts[1] = {i};
    feed_chunks(&b, cuts, 1, chain, sizeof chain);
  }
  for (size_t i = 0; i + 7 <= b.len; i += 3) { /* two cuts, 7 bytes apart */
    size_t cuts[2] = {i, i + 7};
    feed_chunks(&b, cuts, 2, chain, sizeof chain);
  }
  size_t *all = malloc(b.len * sizeof *all); /* byte by byte */
  for (size_t i = 0; i < b.len; i++)
    all[i] = i;
  feed_chunks(&b, all, (int)b.len, chain, sizeof chain);
  free(all);
  lmz_buf_free(&b);
}

static void test_zero_copy_when_whole(void **state) {
  (void)state;
  uint8_t chain[300];
  lmz_buf b = LMZ_BUF_INIT;
  build_stream(&b, chain, sizeof chain);
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, 0);
  const uint8_t *p = b.data, *body;
  size_t n = b.len, blen;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 1);
  assert_ptr_equal(body, b.data + 4); /* points into the input */
  assert_int_equal(sp.buf.cap, 0);    /* nothing was copied */
  lmz_frame_splitter_free(&sp);
  lmz_buf_free(&b);
}

static void test_oversize_rejected_before_buffering(void **state) {
  (void)state;
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, 1000);
  /* 1001 > cap: refused with the header alone, whatever follows. */
  uint8_t hdr[8] = {0, 0, 0x03, 0xE9, 1, 2, 3, 4};
  const uint8_t *p = hdr, *body;
  size_t n = sizeof hdr, blen;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), LMZ_ETOOBIG);
  assert_int_equal(sp.buf.cap, 0); /* no allocation at all */
  lmz_frame_splitter_free(&sp);

  /* 4 GiB - 1 announced two bytes at a time: refused at the 4th byte with
   * only the 4 header bytes ever held. */
  lmz_frame_splitter_init(&sp, 0);
  uint8_t huge[4] = {0xFF, 0xFF, 0xFF, 0xFF};
  p = huge;
  n = 2;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 0);
  n = 2;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), LMZ_ETOOBIG);
  assert_true(sp.buf.cap <= 256);
  lmz_frame_splitter_free(&sp);

  /* Exactly the cap is accepted. */
  lmz_frame_splitter_init(&sp, 3);
  uint8_t ok[7] = {0, 0, 0, 3, 'a', 'b', 'c'};
  p = ok;
  n = sizeof ok;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 1);
  assert_int_equal(blen, 3);
  assert_memory_equal(body, "abc", 3);
  lmz_frame_splitter_free(&sp);
}

static void test_append_over_cap(void **state) {
  (void)state;
  uint8_t chain[300] = {0};
  Lmz__Call call = LMZ__CALL__INIT;
  call.chain.data = chain;
  call.chain.len = sizeof chain;
  Lmz__Frame f = LMZ__FRAME__INIT;
  f.body_case = LMZ__FRAME__BODY_CALL;
  f.call = &call;
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_frame_append(&b, &f, 100), LMZ_ETOOBIG);
  assert_int_equal(b.len, 0);
  b.max = 64; /* the buffer's own cap is honoured too */
  assert_int_equal(lmz_frame_append(&b, &f, 0), LMZ_ETOOBIG);
  assert_int_equal(b.len, 0);
  lmz_buf_free(&b);
}

static void test_unpack_errors_and_empty(void **state) {
  (void)state;
  Lmz__Frame *f = NULL;
  const uint8_t garbage[] = {0x0A, 0xFF, 0xFF,
                             0xFF, 0xFF, 0x0F}; /* len > input */
  assert_int_equal(lmz_frame_unpack(garbage, sizeof garbage, &f), LMZ_EBADMSG);
  assert_null(f);
  const uint8_t badwire[] = {0x0F}; /* field 1, wire type 7: invalid */
  assert_int_equal(lmz_frame_unpack(badwire, sizeof badwire, &f), LMZ_EBADMSG);
  /* Empty body: a frame with no oneof set (e.g. an unknown newer type). */
  assert_int_equal(lmz_frame_unpack((const uint8_t *)"", 0, &f), 0);
  assert_int_equal(f->body_case, LMZ__FRAME__BODY__NOT_SET);
  lmz_frame_free(f);
  /* An unknown field number 99 (varint) is skipped, body stays NOT_SET. */
  const uint8_t unknown[] = {0x98, 0x06, 0x01};
  assert_int_equal(lmz_frame_unpack(unknown, sizeof unknown, &f), 0);
  assert_int_equal(f->body_case, LMZ__FRAME__BODY__NOT_SET);
  lmz_frame_free(f);
}

static void test_big_carried_buffer_released(void **state) {
  (void)state;
  size_t big = 1u << 20;
  uint8_t *stream = calloc(1, big + 4 + 4);
  lmz_frame_put_len(stream, (uint32_t)big);
  lmz_frame_put_len(stream + 4 + big, 0); /* then an empty frame */
  lmz_frame_splitter sp;
  lmz_frame_splitter_init(&sp, 0);
  const uint8_t *p = stream, *body;
  size_t n = 1000, blen; /* first a partial chunk: forces carrying */
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 0);
  assert_true(sp.buf.cap >= big + 4);
  n = big + 8 - 1000;
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 1);
  assert_int_equal(blen, big);
  assert_int_equal(lmz_frame_split(&sp, &p, &n, &body, &blen), 1);
  assert_int_equal(blen, 0);
  assert_int_equal(sp.buf.cap, 0); /* released once empty */
  lmz_frame_splitter_free(&sp);
  free(stream);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_split_every_boundary),
      cmocka_unit_test(test_zero_copy_when_whole),
      cmocka_unit_test(test_oversize_rejected_before_buffering),
      cmocka_unit_test(test_append_over_cap),
      cmocka_unit_test(test_unpack_errors_and_empty),
      cmocka_unit_test(test_big_carried_buffer_released),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
