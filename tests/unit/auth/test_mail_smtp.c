/* auth/mail_smtp.c against an in-process fake SMTP server on the same loop
 * (tests/lib/fakesmtp.h, port 0): the message arrives whole (RFC 5322 head,
 * MIME multipart text + html), header injection is refused before any
 * connection, a server refusal / no STARTTLS / silence become callback
 * errors, and close cancels the sends in flight. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth/mail.h"
#include "core/err.h"
#include "lib/fakesmtp.h"
#include "lib/testlib.h"
#include "lib/tl_loop.h"

struct res {
  int n;
  int status;
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
  fakesmtp *srv;
  lmz_mail_sender_t s_mem, *s; /* s = &s_mem once initialized */
  char url[64];
};

static void fx_open(struct fx *f, const struct fakesmtp_opts *so, int starttls,
                    uint32_t timeout_ms) {
  assert_int_equal(uv_loop_init(&f->loop), 0);
  int port;
  assert_int_equal(fakesmtp_start(&f->loop, so, &f->srv, &port), 0);
  snprintf(f->url, sizeof f->url, "smtp://127.0.0.1:%d", port);
  struct lmz_mail_config c = {.kind = LMZ_MAIL_SMTP, .from = "Lmz Editor <noreply@lmz.test>",
                              .timeout_ms = timeout_ms, .smtp_url = f->url,
                              .smtp_user = "u", .smtp_password = "p",
                              .smtp_starttls = starttls};
  char err[LMZ_ERRMSG_LEN] = "";
  f->s_mem = (lmz_mail_sender_t){.loop = &f->loop}; /* as mail.c does */
  f->s = &f->s_mem;
  assert_int_equal(lmz__mail_smtp_init(f->s, &c, err), 0);
}

static void fx_close(struct fx *f) {
  bool closed = false;
  f->s->ops->close(f->s, closed_cb, &closed);
  tl_run_until_true(&f->loop, &closed);
  fakesmtp_close(f->srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
}

static int msend(struct fx *f, const struct lmz_mail_msg *m, struct res *r) {
  return f->s->ops->send(f->s, m, sent_cb, r);
}

static const struct lmz_mail_msg good = {
    .to = "alice@example.test", .subject = "Your login link",
    .text = "Hello text\n.\nwith a lone dot", .html = "<p>Hello <b>html</b></p>"};

static bool has_base64_of(const char *data, const char *s) {
  char b64[512];
  sodium_bin2base64(b64, sizeof b64, (const unsigned char *)s, strlen(s),
                    sodium_base64_VARIANT_ORIGINAL);
  return strstr(data, b64) != NULL;
}

static void message_received(void **state) {
  (void)state;
  struct fx f;
  fx_open(&f, NULL, 0, 5000);
  struct res r = {0};
  assert_int_equal(msend(&f, &good, &r), 0);
  assert_int_equal(r.n, 0); /* never from inside send */
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, 0);
  assert_int_equal(fakesmtp_messages(f.srv), 1);
  assert_int_equal(strncmp(fakesmtp_mail_from(f.srv), "<noreply@lmz.test>", 18), 0);
  assert_string_equal(fakesmtp_rcpt(f.srv), "<alice@example.test>");
  assert_true(fakesmtp_saw_auth(f.srv));
  const char *d = fakesmtp_data(f.srv);
  assert_true(strncmp(d, "Date: ", 6) == 0);
  assert_non_null(strstr(d, "Message-ID: <"));
  assert_non_null(strstr(d, "@lmz.test>\r\n"));
  assert_non_null(strstr(d, "From: Lmz Editor <noreply@lmz.test>\r\n"));
  assert_non_null(strstr(d, "To: <alice@example.test>\r\n"));
  assert_non_null(strstr(d, "Subject: Your login link\r\n"));
  assert_non_null(strstr(d, "MIME-Version: 1.0\r\n"));
  assert_non_null(strstr(d, "Content-Type: multipart/alternative; boundary=\"lmz-"));
  assert_non_null(strstr(d, "Content-Type: text/plain; charset=utf-8"));
  assert_non_null(strstr(d, "Content-Type: text/html; charset=utf-8"));
  assert_true(has_base64_of(d, good.text));
  assert_true(has_base64_of(d, good.html));
  /* a non-ASCII subject is one RFC 2047 word */
  struct lmz_mail_msg m = good;
  m.subject = "Connexion \xc3\xa0 lmz";
  m.html = NULL;
  assert_int_equal(msend(&f, &m, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 2);
  assert_int_equal(r.status, 0);
  d = fakesmtp_data(f.srv);
  assert_non_null(strstr(d, "Subject: =?UTF-8?B?"));
  assert_null(strstr(d, "multipart")); /* one part: no wrapper */
  fx_close(&f);
}

static void header_injection_refused(void **state) {
  (void)state;
  struct fx f;
  fx_open(&f, NULL, 0, 5000);
  struct res r = {0};
  const char *bad_to[] = {"a@b.test\r\nBcc: x@evil.test", "a@b.test>", "<a@b.test",
                          "a@b.test,c@d.test", "a b@c.test", "ab.test", "a@@b.test",
                          "a@b.test\n", ""};
  for (size_t i = 0; i < sizeof bad_to / sizeof *bad_to; i++) {
    struct lmz_mail_msg m = good;
    m.to = bad_to[i];
    assert_int_equal(msend(&f, &m, &r), LMZ_EINVAL);
  }
  struct lmz_mail_msg m = good;
  m.subject = "hi\r\nBcc: x@evil.test";
  assert_int_equal(msend(&f, &m, &r), LMZ_EINVAL);
  m = good;
  m.text = m.html = NULL;
  assert_int_equal(msend(&f, &m, &r), LMZ_EINVAL);
  uv_run(&f.loop, UV_RUN_NOWAIT);
  assert_int_equal(r.n, 0);
  assert_int_equal(fakesmtp_connections(f.srv), 0); /* nothing sent */
  fx_close(&f);
  /* a From with CR/LF is refused at creation */
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct lmz_mail_config c = {.kind = LMZ_MAIL_SMTP, .from = "x@y.test\r\nBcc: z@evil.test",
                              .smtp_url = "smtp://127.0.0.1:25"};
  lmz_mail_sender_t s = {.loop = &loop};
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz__mail_smtp_init(&s, &c, err), LMZ_EBADCONFIG);
  c.from = "x@y.test";
  c.smtp_url = "http://127.0.0.1:25";
  assert_int_equal(lmz__mail_smtp_init(&s, &c, err), LMZ_EBADCONFIG);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void server_errors(void **state) {
  (void)state;
  struct fx f;
  struct fakesmtp_opts o = {.rcpt_code = 550};
  fx_open(&f, &o, 0, 5000);
  struct res r = {0};
  assert_int_equal(msend(&f, &good, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, LMZ_EIO);
  assert_non_null(strstr(r.errmsg, "127.0.0.1")); /* names the server... */
  assert_null(strstr(r.errmsg, "Hello"));         /* ...never the message */
  fx_close(&f);
  o = (struct fakesmtp_opts){.data_code = 554};
  fx_open(&f, &o, 0, 5000);
  r = (struct res){0};
  assert_int_equal(msend(&f, &good, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, LMZ_EIO);
  assert_int_equal(fakesmtp_messages(f.srv), 0);
  fx_close(&f);
  /* STARTTLS required, the server does not offer it: nothing in clear */
  fx_open(&f, NULL, 1, 5000);
  r = (struct res){0};
  assert_int_equal(msend(&f, &good, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, LMZ_EIO);
  assert_int_equal(fakesmtp_messages(f.srv), 0);
  assert_false(fakesmtp_saw_auth(f.srv)); /* no password in clear either */
  fx_close(&f);
}

static void timeout(void **state) {
  (void)state;
  struct fx f;
  struct fakesmtp_opts o = {.hang = true};
  fx_open(&f, &o, 0, 300);
  struct res r = {0};
  assert_int_equal(msend(&f, &good, &r), 0);
  tl_run_until_count(&f.loop, &r.n, 1);
  assert_int_equal(r.status, LMZ_ETIMEOUT);
  fx_close(&f);
}

static void close_with_sends_in_flight(void **state) {
  (void)state;
  struct fx f;
  struct fakesmtp_opts o = {.hang = true};
  fx_open(&f, &o, 0, 60000);
  struct res r[3] = {{0}};
  for (int i = 0; i < 3; i++)
    assert_int_equal(msend(&f, &good, &r[i]), 0);
  uint64_t end = tl_now_ms() + 20000u * tl_time_scale();
  /* two sender threads: two sends connected and waiting, one queued */
  while (fakesmtp_connections(f.srv) < 2 && tl_now_ms() < end)
    uv_run(&f.loop, UV_RUN_ONCE);
  assert_int_equal(fakesmtp_connections(f.srv), 2);
  fx_close(&f); /* every callback before close_cb, loop left empty */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(r[i].n, 1);
    assert_int_equal(r[i].status, LMZ_ECANCELED);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(message_received),
      cmocka_unit_test(header_injection_refused),
      cmocka_unit_test(server_errors),
      cmocka_unit_test(timeout),
      cmocka_unit_test(close_with_sends_in_flight),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
