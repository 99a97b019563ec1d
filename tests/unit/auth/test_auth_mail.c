/* tests/unit/auth/test_auth_mail.c - auth/mail.c's common checks and the
 * dev outbox sender on a real loop: a message becomes a 0600 file with its
 * headers, the callback runs later (never from the send), hostile messages
 * are refused before anything runs, close with sends in flight cancels
 * their callbacks before close_cb, and the remote kinds without their
 * settings are refused at creation (and say "not built" until the libcurl
 * senders land). */
#include "lib/testlib.h"

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "auth/mail.h"
#include "core/err.h"

struct sent {
  int n, status[8];
  bool closed;
};

static void on_sent(void *ud, int status, const char *errmsg) {
  (void)errmsg;
  struct sent *s = ud;
  s->status[s->n++] = status;
}

static void on_closed(void *ud) { ((struct sent *)ud)->closed = true; }

static lmz_mail_sender_t *dev_sender(uv_loop_t *loop, const char *dir) {
  struct lmz_mail_config c = {.kind = LMZ_MAIL_DEV, .from = "App <no-reply@app.test>",
                              .outbox_dir = dir};
  lmz_mail_sender_t *s = malloc(sizeof *s); /* freed after its close */
  assert_non_null(s);
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_mail_sender_init(s, loop, &c, err), 0);
  return s;
}

static int files_in(const char *dir, char *first, size_t cap) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));)
    if (e->d_name[0] != '.' && n++ == 0)
      snprintf(first, cap, "%s/%s", dir, e->d_name);
  if (d)
    closedir(d);
  return n;
}

static void dev_writes_a_file(void **state) {
  (void)state;
  char *tmp = tl_mkdtemp("lmz-mail"), dir[512], path[1024];
  snprintf(dir, sizeof dir, "%s/outbox", tmp);
  uv_loop_t loop;
  uv_loop_init(&loop);
  lmz_mail_sender_t *s = dev_sender(&loop, dir);
  struct sent r = {0};
  struct lmz_mail_msg m = {"a@b.test", "Your login link",
                           "Click: http://127.0.0.1:1/auth/magic-link?one_time_token=x\n", NULL};
  assert_int_equal(lmz_mail_send(s, &m, on_sent, &r), 0);
  assert_int_equal(r.n, 0); /* never from the send */
  uint64_t deadline = tl_now_ms() + 30000; /* a hang guard, not a bound */
  while (r.n < 1 && tl_now_ms() < deadline)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.status[0], 0);
  assert_int_equal(files_in(dir, path, sizeof path), 1);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  size_t len;
  char *text = tl_read_file(path, &len);
  assert_non_null(strstr(text, "From: App <no-reply@app.test>\r\nTo: a@b.test\r\nSubject: Your login link\r\n"));
  assert_non_null(strstr(text, "one_time_token=x"));
  free(text);
  /* hostile messages: refused at once, no callback */
  static const char *const bad_to[] = {"a@b.test\r\nBcc: c@d.test", "a@b.test,c@d.test",
                                       "<a@b.test>", "ab.test", "a@@b.test", "@b.test", ""};
  for (size_t i = 0; i < sizeof bad_to / sizeof *bad_to; i++) {
    struct lmz_mail_msg h = {bad_to[i], "s", "t", NULL};
    assert_int_equal(lmz_mail_send(s, &h, on_sent, &r), LMZ_EINVAL);
  }
  struct lmz_mail_msg subj = {"a@b.test", "hi\r\nBcc: c@d.test", "t", NULL};
  assert_int_equal(lmz_mail_send(s, &subj, on_sent, &r), LMZ_EINVAL);
  struct lmz_mail_msg nobody = {"a@b.test", "s", NULL, NULL};
  assert_int_equal(lmz_mail_send(s, &nobody, on_sent, &r), LMZ_EINVAL);
  char *big = malloc(LMZ_MAIL_BODY_MAX + 2);
  memset(big, 'x', LMZ_MAIL_BODY_MAX + 1);
  big[LMZ_MAIL_BODY_MAX + 1] = '\0';
  struct lmz_mail_msg huge = {"a@b.test", "s", big, NULL};
  assert_int_equal(lmz_mail_send(s, &huge, on_sent, &r), LMZ_EINVAL);
  free(big);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(r.n, 1);
  lmz_mail_sender_close(s, on_closed, &r);
  assert_false(r.closed); /* later, from the loop */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(r.closed);
  free(s);
  assert_int_equal(uv_loop_close(&loop), 0);
  tl_rmtree(tmp);
  free(tmp);
}

static void close_cancels_pending(void **state) {
  (void)state;
  char *tmp = tl_mkdtemp("lmz-mail");
  uv_loop_t loop;
  uv_loop_init(&loop);
  lmz_mail_sender_t *s = dev_sender(&loop, tmp);
  struct sent r = {0};
  struct lmz_mail_msg m = {"a@b.test", "s", "t", "<p>t</p>"};
  for (int i = 0; i < 3; i++)
    assert_int_equal(lmz_mail_send(s, &m, on_sent, &r), 0);
  lmz_mail_sender_close(s, on_closed, &r);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(r.n, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r.status[i], LMZ_ECANCELED);
  assert_true(r.closed);
  free(s);
  assert_int_equal(uv_loop_close(&loop), 0);
  tl_rmtree(tmp);
  free(tmp);
}

static void bad_configs(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  lmz_mail_sender_t s_mem, *s = &s_mem;
  char err[LMZ_ERRMSG_LEN] = "";
  struct lmz_mail_config c = {.kind = LMZ_MAIL_DEV, .from = "x@y.test"};
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err),
                   LMZ_EBADCONFIG); /* no outbox */
  c.outbox_dir = "/proc/no/such/dir";
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err), LMZ_EIO);
  assert_non_null(strstr(err, "/proc/no/such/dir"));
  c.from = "x@y.test\r\nBcc: z@y.test";
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err), LMZ_EBADCONFIG);
  c.from = "x@y.test";
  c.kind = LMZ_MAIL_SMTP; /* no smtp_url (and, before libcurl lands, not built) */
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err), LMZ_EBADCONFIG);
  c.kind = LMZ_MAIL_HTTP;
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err), LMZ_EBADCONFIG);
  c.kind = (enum lmz_mail_kind)7;
  assert_int_equal(lmz_mail_sender_init(s, &loop, &c, err), LMZ_EBADCONFIG);
  assert_null(s->impl); /* no kind was created */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dev_writes_a_file),
      cmocka_unit_test(close_cancels_pending),
      cmocka_unit_test(bad_configs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
