/* tests/unit/auth/test_auth_config.c - the node config's "auth" block
 * (auth/config.c): defaults, every setting read, and each kind of mistake
 * refused with its file position (unknown settings included). */
#include "lib/testlib.h"

#include <string.h>

#include "auth/auth.h"
#include "core/err.h"

static int parse(lmz_arena *a, const char *text, struct lmz_auth_config *c, char *err) {
  lmz_config f;
  assert_int_equal(lmz_config_parse(a, "node.jsonc", text, strlen(text), &f, err), 0);
  return lmz_auth_config_parse(a, &f, lmz_json_get(f.root, "auth"), c, err);
}

static void defaults_and_values(void **state) {
  (void)state;
  lmz_arena *a = lmz_arena_new();
  struct lmz_auth_config c;
  char err[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(parse(a, "{}", &c, err), 0);
  assert_false(c.enabled);
  assert_int_equal(c.access_ttl_s, 900);
  assert_int_equal(c.refresh_ttl_s, 2592000);
  assert_int_equal(c.magic_link_ttl_s, 1800);
  assert_int_equal(c.invite_ttl_s, 604800);
  assert_int_equal(c.reuse_grace_s, 10);
  assert_true(c.per_address.burst == 5 && c.per_address.per_hour == 10);
  assert_true(c.per_ip.burst == 20 && c.per_ip.per_hour == 60);
  assert_int_equal(parse(a,
      "{\"auth\": {\"prefix\": \"/login\", \"redirect\": \"/app\", \"access_token_ttl_s\": 60,"
      " \"bootstrap_admin\": \" Boss@Example.COM\", \"primary\": \"GREEN\","
      " \"private_keys\": {\"GREEN\": \"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"},"
      " \"rate_limits\": {\"magic_link_per_ip\": {\"burst\": 2, \"per_hour\": 3}},"
      " \"email\": {\"kind\": \"smtp\", \"from\": \"a@b.test\", \"smtp_url\": \"smtp://h:25\","
      "  \"app_name\": \"Ed\", \"templates\": {\"invite-new\": {\"text\": \"a\\nb {{url}}\"}}}}}",
      &c, err), 0);
  assert_true(c.enabled);
  assert_string_equal(c.prefix, "/login");
  assert_string_equal(c.bootstrap_admin, "boss@example.com");
  assert_int_equal(c.access_ttl_s, 60);
  assert_int_equal(c.n_private_keys, 1);
  assert_true(c.per_ip.burst == 2 && c.per_ip.per_hour == 3);
  assert_int_equal(c.mail.kind, LMZ_MAIL_SMTP);
  assert_true(c.mail_set);
  assert_string_equal(c.app_name, "Ed");
  assert_string_equal(c.templates[LMZ_AUTH_MAIL_INVITE_NEW].text, "a\nb {{url}}");
  assert_null(c.templates[LMZ_AUTH_MAIL_INVITE_NEW].subject);
  assert_null(c.bot_secret);
  assert_int_equal(parse(a,
      "{\"auth\": {\"bot_check\": {\"secret\": \"x\", \"endpoint\": \"http://h/v\","
      " \"timeout_ms\": 500}}}", &c, err), 0);
  assert_string_equal(c.bot_secret, "x");
  assert_string_equal(c.bot_endpoint, "http://h/v");
  assert_int_equal(c.bot_timeout_ms, 500);
  lmz_arena_free(a);
}

static void mistakes(void **state) {
  (void)state;
  static const char *const bad[] = {
      "{\"auth\": 1}",
      "{\"auth\": {\"prefixx\": \"/auth\"}}",
      "{\"auth\": {\"bot_check\": {\"endpoint\": \"http://h/v\"}}}",
      "{\"auth\": {\"bot_check\": {\"secret\": \"x\", \"timeout\": 5}}}",
      "{\"auth\": {\"bot_check\": {\"secret\": \"x\", \"timeout_ms\": 0}}}",
      "{\"auth\": {\"bot_check\": true}}",
      "{\"auth\": {\"prefix\": \"auth\"}}",
      "{\"auth\": {\"prefix\": \"/auth/\"}}",
      "{\"auth\": {\"access_token_ttl_s\": 0}}",
      "{\"auth\": {\"access_token_ttl_s\": 1.5}}",
      "{\"auth\": {\"enabled\": \"yes\"}}",
      "{\"auth\": {\"bootstrap_admin\": \"not an address\"}}",
      "{\"auth\": {\"redirect\": \"/a\\r\\nX: y\"}}",
      "{\"auth\": {\"private_keys\": {}}}",
      "{\"auth\": {\"private_keys\": {\"BLUE\": 1}}}",
      "{\"auth\": {\"rate_limits\": {\"per_moon\": {}}}}",
      "{\"auth\": {\"rate_limits\": {\"magic_link_per_ip\": {\"burst\": -1}}}}",
      "{\"auth\": {\"email\": {\"kind\": \"pigeon\"}}}",
      "{\"auth\": {\"email\": {\"smtp_pass\": \"x\"}}}",
      "{\"auth\": {\"email\": {\"templates\": {\"magic\": {}}}}}",
      "{\"auth\": {\"email\": {\"templates\": {\"magic-link\": {\"subject\": \"a\\nBcc: x\"}}}}}",
      "{\"auth\": {\"email\": {\"templates\": {\"magic-link\": {\"body\": \"x\"}}}}}",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    lmz_arena *a = lmz_arena_new();
    struct lmz_auth_config c;
    char err[LMZ_ERRMSG_LEN] = "";
    assert_int_equal(parse(a, bad[i], &c, err), LMZ_EBADCONFIG);
    assert_int_equal(strncmp(err, "node.jsonc:1:", 13), 0);
    lmz_arena_free(a);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_and_values),
      cmocka_unit_test(mistakes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
