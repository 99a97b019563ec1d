/* tests/unit/auth/test_auth_parse.c - the pure parts of auth/: cookie and
 * query/form parsing, email normalisation, token text, the mail address
 * check, and token buckets on a stepped clock. */
#include "lib/testlib.h"

#include <sodium.h>
#include <string.h>

#include "auth/mail.h"
#include "auth/parse.h"
#include "auth/ratelimit.h"
#include "auth/templates.h"
#include "core/err.h"

static void cookies(void **state) {
  (void)state;
  const char *v;
  size_t n;
  const char *h = "a=1;  refresh-token = abc ; refresh-token=second; q=\"quoted\"";
  assert_true(lmz_auth_cookie_get(h, strlen(h), "refresh-token", &v, &n));
  assert_int_equal(n, 3);
  assert_memory_equal(v, "abc", 3);
  assert_true(lmz_auth_cookie_get(h, strlen(h), "q", &v, &n));
  assert_int_equal(n, 6);
  assert_memory_equal(v, "quoted", 6);
  assert_false(lmz_auth_cookie_get(h, strlen(h), "refresh", &v, &n));
  assert_false(lmz_auth_cookie_get("", 0, "a", &v, &n));
  assert_false(lmz_auth_cookie_get(";;;=", 4, "a", &v, &n));
  /* the length bounds the read: "a=1" cut to "a=" */
  assert_true(lmz_auth_cookie_get("a=1", 2, "a", &v, &n));
  assert_int_equal(n, 0);
  assert_true(lmz_auth_cookie_get("x=\"", 3, "x", &v, &n)); /* lone quote kept */
  assert_int_equal(n, 1);
}

static void params(void **state) {
  (void)state;
  char out[16];
  const char *q = "a=1&one_time_token=x%2By+z&empty&bad=%zz&nul=%00&long=0123456789abcdefXYZ";
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "a", out, sizeof out), 1);
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "one_time_token", out, sizeof out), 5);
  assert_string_equal(out, "x+y z");
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "empty", out, sizeof out), 0);
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "bad", out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "nul", out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "long", out, sizeof out), LMZ_ETOOBIG);
  assert_int_equal(lmz_auth_param_get(q, strlen(q), "none", out, sizeof out), LMZ_ENOTFOUND);
  assert_int_equal(lmz_auth_param_get("t=%4", 4, "t", out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz_auth_param_get("t=%41", 4, "t", out, sizeof out), LMZ_EINVAL); /* cut */
}

static void emails(void **state) {
  (void)state;
  char out[LMZ_MAIL_ADDR_MAX + 1];
  const char *ok = "  Alice@Example.COM\t";
  assert_int_equal(lmz_auth_email_normalize(ok, strlen(ok), out, sizeof out), 0);
  assert_string_equal(out, "alice@example.com");
  static const char *const bad[] = {"", "a", "a@b", "@b.com", "a@.com", "a@b.", "a@@b.com",
                                    "a b@c.com", "a@b.com\r\nBcc: x@y.com", "a@b.com,c@d.com",
                                    "<a@b.com>", "a@b.com>", "\"a\"@b.com"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(lmz_auth_email_normalize(bad[i], strlen(bad[i]), out, sizeof out),
                     LMZ_EINVAL);
  char big[400];
  memset(big, 'a', sizeof big);
  memcpy(big + 390, "@b.com", 6);
  assert_int_equal(lmz_auth_email_normalize(big, 396, out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz_auth_email_normalize("a\0@b.com", 8, out, sizeof out), LMZ_EINVAL);
  assert_int_equal(lmz_mail_check_addr("a@b.com", 7), 0);
  assert_int_equal(lmz_mail_check_addr("a@b.com\n", 8), LMZ_EINVAL);
}

static void tokens(void **state) {
  (void)state;
  assert_true(sodium_init() >= 0);
  uint8_t raw[32], back[32];
  char text[44];
  randombytes_buf(raw, sizeof raw);
  lmz_auth_token_encode(raw, text);
  assert_int_equal(strlen(text), 43);
  assert_int_equal(lmz_auth_token_decode(text, 43, back), 0);
  assert_memory_equal(raw, back, 32);
  assert_int_equal(lmz_auth_token_decode(text, 42, back), LMZ_EINVAL);
  char t2[45];
  memcpy(t2, text, 43);
  t2[43] = '=';
  assert_int_equal(lmz_auth_token_decode(t2, 44, back), LMZ_EINVAL);
  /* the last character carries 2 unused bits: "B" sets one (non-canonical) */
  const char *nc = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB";
  assert_int_equal(lmz_auth_token_decode(nc, 43, back), LMZ_EINVAL);
  assert_int_equal(lmz_auth_token_decode("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+", 43, back),
                   LMZ_EINVAL);
}

static void buckets(void **state) {
  (void)state;
  struct lmz_auth_limiter l;
  struct lmz_auth_bucket_cfg c = {3, 60}; /* 3, then one a minute */
  assert_int_equal(lmz_auth_limiter_init(&l, &c, 8), 0);
  double t = 1e12;
  for (int i = 0; i < 3; i++)
    assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t), 0);
  assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t), 60);
  assert_int_equal(lmz_auth_limiter_take(&l, "other", 5, t), 0); /* per key */
  assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t + 30000), 30);
  assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t + 60000), 0);
  assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t - 1e9), 60); /* clock back: no refill */
  /* a flood of fresh keys evicts idle (full) buckets, not a drained one */
  for (int i = 0; i < 1000; i++) {
    char k[16];
    snprintf(k, sizeof k, "f%d", i);
    lmz_auth_limiter_take(&l, k, strlen(k), t + 60000);
  }
  assert_true(lmz_auth_limiter_take(&l, "k", 1, t + 60000) > 0);
  lmz_auth_limiter_free(&l);
  struct lmz_auth_bucket_cfg off = {0, 0};
  assert_int_equal(lmz_auth_limiter_init(&l, &off, 0), 0);
  assert_int_equal(lmz_auth_limiter_take(&l, "k", 1, t), 0);
  lmz_auth_limiter_free(&l);
}

static void templates_render(void **state) {
  (void)state;
  struct lmz_auth_vars v = {"http://x/a?b=1&c=2", "a@b.test", "A<B>", 30};
  lmz_buf b = LMZ_BUF_INIT;
  assert_int_equal(lmz_auth_render("{{app}}: {{url}} {{email}} {{minutes}} {{other}} {{", &v, 0, &b), 0);
  lmz_buf_putc(&b, '\0');
  assert_string_equal((char *)b.data, "A<B>: http://x/a?b=1&c=2 a@b.test 30 {{other}} {{");
  lmz_buf_reset(&b);
  assert_int_equal(lmz_auth_render("<a href=\"{{url}}\">{{app}}</a>", &v, 1, &b), 0);
  lmz_buf_putc(&b, '\0');
  assert_string_equal((char *)b.data, "<a href=\"http://x/a?b=1&amp;c=2\">A&lt;B&gt;</a>");
  lmz_buf_free(&b);
  assert_int_equal(lmz_auth_mail_type_from_name("invite-new"), LMZ_AUTH_MAIL_INVITE_NEW);
  assert_int_equal(lmz_auth_mail_type_from_name("nope"), -1);
  assert_string_equal(lmz_auth_template_default(LMZ_AUTH_MAIL_MAGIC_LINK)->subject, "Your login link");
  assert_string_equal(lmz_auth_template_default(LMZ_AUTH_MAIL_ADMIN_NOTIFICATION)->subject,
                      "New signup: {{email}}");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(cookies), cmocka_unit_test(params), cmocka_unit_test(emails),
      cmocka_unit_test(tokens),  cmocka_unit_test(buckets), cmocka_unit_test(templates_render),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
