/* auth/mail_http.c against an in-process fake HTTP API on the same loop
 * (tests/lib/fakehttp.h, port 0): the JSON body and Bearer key arrive, a
 * non-2xx answer and silence become callback errors, header injection is
 * refused before any connection, close cancels the sends in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/mail.h"
#include "core/err.h"
#include "lib/fakehttp.h"
#include "lib/testlib.h"
#include "lib/tl_loop.h"

static struct {
  char head[4096], body[4096];
  int status; /* what the fake answers */
  bool hang;
} G;

static void api(void *ud, const struct fakehttp_req *q, struct fakehttp_reply *r) {
  (void)ud;
  snprintf(G.head, sizeof G.head, "%s", q->head);
  snprintf(G.body, sizeof G.body, "%.*s", (int)q->body_len, (const char *)q->body);
  r->status = G.status;
  r->hang = G.hang;
  r->body = "{\"id\":\"x\"}";
}

struct res {
  int n, status;
  char errmsg[LMZ_ERRMSG_LEN];
};

static void sent_cb(void *ud, int status, const char *errmsg) {
  struct res *r = ud;
  r->n++;
  r->status = status;
  snprintf(r->errmsg, sizeof r->errmsg, "%s", errmsg ? errmsg : "");
}

static void closed_cb(void *ud) { *(bool *)ud = true; }

struct fx {
  uv_loop_t loop;
  fakehttp *srv;
  lmz_mail_sender_t s_mem, *s; /* s = &s_mem once initialized */
  char url[96];
};

static void fx_open(struct fx *f, uint32_t timeout_ms) {
  assert_int_equal(uv_loop_init(&f->loop), 0);
  int port;
  assert_int_equal(fakehttp_start(&f->loop, api, NULL, &f->srv, &port), 0);
  snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/emails", port);
  struct lmz_mail_config c = {.kind = LMZ_MAIL_HTTP, .from = "Lmz <noreply@lmz.test>",
                              .timeout_ms = timeout_ms, .http_url = f->url,
                              .http_api_key = "re_test_key"};
  char err[LMZ_ERRMSG_LEN] = "";
  f->s_mem = (lmz_mail_sender_t){.loop = &f->loop}; /* as mail.c does */
  f->s = &f->s_mem;
  assert_int_equal(lmz__mail_http_init(f->s, &c, err), 0);
}

static void fx_close(struct fx *f) {
  bool closed = false;
  f->s->ops->close(f->s, closed_cb, &closed);
  tl_run_until_true(&f->loop, &closed);
  fakehttp_close(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static const struct lmz_mail_msg good = {
    .to = "bob@example.test", .subject = "Log in \"now\"",
    .text = "Follow the link", .html = "<a href=\"x\">log in</a>"};

static void message_posted(void **state) {
  (void)state;
  memset(&G, 0, sizeof G);
  struct fx f;
  fx_open(&f, 5000);
  struct res r = {0};
  assert_int_equal(f.s->ops->send(f.s, &good, sent_cb, &r), 0);
  assert_int_equal(r.n, 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(strncmp(G.head, "POST /emails ", 13), 0);
  assert_non_null(strstr(G.head, "\r\nAuthorization: Bearer re_test_key\r\n"));
  assert_non_null(strstr(G.head, "\r\nContent-Type: application/json\r\n"));
  assert_string_equal(G.body,
                      "{\"from\":\"Lmz <noreply@lmz.test>\",\"to\":\"bob@example.test\","
                      "\"subject\":\"Log in \\\"now\\\"\",\"html\":\"<a href=\\\"x\\\">log in</a>\","
                      "\"text\":\"Follow the link\"}");
  G.status = 202; /* any 2xx */
  assert_int_equal(f.s->ops->send(f.s, &good, sent_cb, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 2);
  assert_int_equal(r.status, 0);
  fx_close(&f);
}

static void server_error_and_timeout(void **state) {
  (void)state;
  memset(&G, 0, sizeof G);
  G.status = 422;
  struct fx f;
  fx_open(&f, 300);
  struct res r = {0};
  assert_int_equal(f.s->ops->send(f.s, &good, sent_cb, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, LMZ_EIO);
  assert_non_null(strstr(r.errmsg, "HTTP 422"));
  assert_null(strstr(r.errmsg, "log in")); /* never the message */
  G.status = 0;
  G.hang = true;
  assert_int_equal(f.s->ops->send(f.s, &good, sent_cb, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 2);
  assert_int_equal(r.status, LMZ_ETIMEOUT);
  fx_close(&f);
}

static void injection_refused(void **state) {
  (void)state;
  memset(&G, 0, sizeof G);
  struct fx f;
  fx_open(&f, 5000);
  struct res r = {0};
  struct lmz_mail_msg m = good;
  m.to = "bob@example.test\r\nBcc: eve@evil.test";
  assert_int_equal(f.s->ops->send(f.s, &m, sent_cb, &r), LMZ_EINVAL);
  m = good;
  m.to = "bob@example.test, eve@evil.test";
  assert_int_equal(f.s->ops->send(f.s, &m, sent_cb, &r), LMZ_EINVAL);
  m = good;
  m.subject = "x\nBcc: eve@evil.test";
  assert_int_equal(f.s->ops->send(f.s, &m, sent_cb, &r), LMZ_EINVAL);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_int_equal(r.n, 0);
  assert_int_equal(fakehttp_count(f.srv), 0);
  fx_close(&f);
  uv_loop_t loop;
  uv_loop_init(&loop);
  lmz_mail_sender_t s = {.loop = &loop};
  char err[LMZ_ERRMSG_LEN];
  struct lmz_mail_config c = {.kind = LMZ_MAIL_HTTP, .from = "a@b.test",
                              .http_url = "http://127.0.0.1:1/emails",
                              .http_api_key = "k\r\nX-Evil: 1"};
  assert_int_equal(lmz__mail_http_init(&s, &c, err), LMZ_EBADCONFIG);
  c.http_api_key = "k";
  c.http_url = "ftp://127.0.0.1/emails";
  assert_int_equal(lmz__mail_http_init(&s, &c, err), LMZ_EBADCONFIG);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void close_with_sends_in_flight(void **state) {
  (void)state;
  memset(&G, 0, sizeof G);
  G.hang = true;
  struct fx f;
  fx_open(&f, 60000);
  struct res r[3] = {{0}};
  for (int i = 0; i < 3; i++)
    assert_int_equal(f.s->ops->send(f.s, &good, sent_cb, &r[i]), 0);
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  while (fakehttp_count(f.srv) < 3 && tl_now_ms() < end)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(fakehttp_count(f.srv), 3);
  fx_close(&f);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].n, 1);
    assert_int_equal(r[i].status, LMZ_ECANCELED);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(message_posted),
      cmocka_unit_test(server_error_and_timeout),
      cmocka_unit_test(injection_refused),
      cmocka_unit_test(close_with_sends_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
