/* examples/editor: DocumentDO keeps its revision history in SQL (issue 10):
 * one row per update, in the same turn as the content's KV write, indexed
 * on revision; history(n) returns the newest n. The tutorial flow (subscribe,
 * update, broadcast, spell check) still runs: a stand-in gateway class
 * records the pushes. */
#include "lib/testlib.h"

#include <string.h>

#include "lmz/testing.h"
#include "examples/editor/editor.c"

static int pushes;

static int fake_push(lmz_ctx *ctx, lmz_value *const *a, size_t n, lmz_value **r) {
  (void)ctx, (void)a, (void)n, (void)r;
  pushes++;
  return 0;
}

static const lmz_method fake_gw_methods[] = {
    LMZ_MESH("handleContentUpdate", fake_push, NULL),
    LMZ_MESH("handleSpellFindings", fake_push, NULL), LMZ_END};

static int fake_gw_init(lmz_registry *r) {
  return lmz_register_do(r, "FakeGateway", fake_gw_methods, NULL);
}

static lmz_value *call_as(lmz_testenv *env, const char *who, const char *m,
                          size_t n, lmz_value *const *args) {
  lmz_identity id = {LMZ_NODE_CLIENT, GATEWAY, who};
  struct lmz_test_caller c = {.chain = &id, .n = 1};
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_call(env, "DOCUMENT_DO", "doc1", &c, m, n, args, &r, &threw), 0);
  if (threw)
    fail_msg("%s threw: %s", m, lmz_typeof(r) == LMZ_T_ERROR ? lmz_error_message(r) : "?");
  return r;
}

static void updates_are_kept_as_revisions(void **state) {
  (void)state;
  char err[256];
  lmz_testenv *env = lmz_testenv_new(NULL, err);
  assert_non_null(env);
  assert_int_equal(lmz_testenv_register(env, "editor", lmz_module_init), 0);
  assert_int_equal(lmz_testenv_register(env, "fakegw", fake_gw_init), 0);
  assert_int_equal(lmz_testenv_bind(env, "DOCUMENT_DO", "DocumentDO", LMZ_NODE_DO), 0);
  assert_int_equal(lmz_testenv_bind(env, "SPELLCHECK_WORKER", "SpellCheckWorker",
                                    LMZ_NODE_WORKER), 0);
  assert_int_equal(lmz_testenv_bind(env, GATEWAY, "FakeGateway", LMZ_NODE_DO), 0);
  lmz_arena *a = lmz_testenv_arena(env);
  call_as(env, "alice.t1", "subscribe", 0, NULL);
  const char *texts[] = {"hello", "hello wrold", "teh end"};
  for (int i = 0; i < 3; i++) {
    lmz_value *c = lmz_cstring(a, texts[i]);
    call_as(env, "alice.t1", "update", 1, &c);
  }
  assert_true(pushes >= 4); /* 3 content pushes + 1 spell finding */
  lmz_value *two = lmz_number(a, 2);
  lmz_value *h = call_as(env, "bob.t1", "history", 1, &two);
  assert_int_equal(lmz_len(h), 2);
  lmz_value *newest = lmz_array_get(h, 0);
  assert_true(lmz_get_number(lmz_object_getc(newest, "revision")) == 3);
  assert_string_equal(lmz_get_str(lmz_object_getc(newest, "content"), NULL), "teh end");
  assert_string_equal(lmz_get_str(lmz_object_getc(newest, "author"), NULL), "alice.t1");
  assert_true(lmz_get_number(lmz_object_getc(lmz_array_get(h, 1), "revision")) == 2);
  /* the index exists, and the table is what `lmz sql` sees */
  lmz_value *r = NULL;
  bool threw = true;
  assert_int_equal(lmz_testenv_sql(env, "DOCUMENT_DO", "doc1", false,
                                   "SELECT count(*) FROM sqlite_schema WHERE type = 'index' "
                                   "AND name = 'revisions_by_revision'", 0, NULL, &r, &threw), 0);
  assert_false(threw);
  assert_true(lmz_get_number(lmz_array_get(lmz_array_get(lmz_object_getc(r, "rows"), 0), 0)) == 1);
  /* a non-subscriber's update is refused and leaves no revision */
  lmz_identity id = {LMZ_NODE_CLIENT, GATEWAY, "mallory.t1"};
  struct lmz_test_caller c = {.chain = &id, .n = 1};
  lmz_value *x = lmz_cstring(a, "vandalism");
  assert_int_equal(lmz_testenv_call(env, "DOCUMENT_DO", "doc1", &c, "update", 1, &x, &r, &threw), 0);
  assert_true(threw);
  lmz_value *ten = lmz_number(a, 10);
  assert_int_equal(lmz_len(call_as(env, "bob.t1", "history", 1, &ten)), 3);
  lmz_testenv_free(env);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(updates_are_kept_as_revisions)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
