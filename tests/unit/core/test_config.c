/* tests/unit/core/test_config.c - JSONC config loading (core/config.c). */
#include "lib/testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/err.h"

struct fixture {
  lmz_arena *a;
  char *dir;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  if (!f)
    return -1;
  f->a = lmz_arena_new();
  f->dir = tl_mkdtemp("lmz-test-config");
  *state = f;
  return f->a && f->dir ? 0 : -1;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  tl_rmtree(f->dir);
  free(f->dir);
  lmz_arena_free(f->a);
  free(f);
  return 0;
}

/* Writes `len` bytes to DIR/name; returns the malloc'd path. */
static char *write_file(struct fixture *f, const char *name, const char *text,
                        size_t len) {
  char *path = malloc(strlen(f->dir) + strlen(name) + 2);
  assert_non_null(path);
  sprintf(path, "%s/%s", f->dir, name);
  FILE *fp = fopen(path, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(text, 1, len, fp), len);
  assert_int_equal(fclose(fp), 0);
  return path;
}

static void loads_jsonc_file(void **state) {
  struct fixture *f = *state;
  const char *text =
      "\xEF\xBB\xBF// node config\n"
      "{\n"
      "  \"name\": \"n1\", /* the node */\n"
      "  \"durable_objects\": {\"bindings\": [\n"
      "    {\"name\": \"COUNTER\", \"class_name\": \"Counter\"},\n"
      "  ]},\n"
      "}\n";
  char *path = write_file(f, "node.jsonc", text, strlen(text));
  lmz_config cfg;
  char errmsg[LMZ_ERRMSG_LEN] = "";
  assert_int_equal(lmz_config_load(f->a, path, &cfg, errmsg), 0);
  assert_string_equal(cfg.name, path);
  assert_int_equal(cfg.len, strlen(text));
  assert_memory_equal(cfg.text, text, cfg.len);
  assert_int_equal(cfg.root->type, LMZ_JSON_OBJECT);
  assert_string_equal(lmz_json_get(cfg.root, "name")->u.str.p, "n1");
  lmz_json *b =
      lmz_json_get(lmz_json_get(cfg.root, "durable_objects"), "bindings");
  assert_int_equal(b->n, 1);
  lmz_json *cls = lmz_json_get(b->u.items[0], "class_name");
  assert_string_equal(cls->u.str.p, "Counter");
  /* validation errors of the caller point into the file */
  lmz_config_errorf(errmsg, &cfg, cls, "unknown class '%s'", cls->u.str.p);
  char want[LMZ_ERRMSG_LEN];
  snprintf(want, sizeof want, "%s:5:39: unknown class 'Counter'", path);
  assert_string_equal(errmsg, want);
  lmz_config_errorf(errmsg, &cfg, NULL, "missing \"%s\"", "port");
  snprintf(want, sizeof want, "%s: missing \"port\"", path);
  assert_string_equal(errmsg, want);
  free(path);
}

static void syntax_error_reports_line_and_column(void **state) {
  struct fixture *f = *state;
  const char *text = "{\n  \"a\": 1,\n    x: 2\n}\n";
  lmz_config cfg;
  char errmsg[LMZ_ERRMSG_LEN];
  assert_int_equal(
      lmz_config_parse(f->a, "cfg.jsonc", text, strlen(text), &cfg, errmsg),
      LMZ_ESYNTAX);
  assert_string_equal(errmsg,
                      "cfg.jsonc:3:5: expected a string key or '}', found 'x'");
  assert_null(cfg.root);
  /* the same from a file */
  char *path = write_file(f, "bad.jsonc", text, strlen(text));
  assert_int_equal(lmz_config_load(f->a, path, &cfg, errmsg), LMZ_ESYNTAX);
  char want[LMZ_ERRMSG_LEN];
  snprintf(want, sizeof want, "%s:3:5: expected a string key or '}', found 'x'",
           path);
  assert_string_equal(errmsg, want);
  free(path);
  /* an unterminated comment is reported where it starts */
  const char *t2 = "{\"a\": 1 /* never\nclosed";
  assert_int_equal(lmz_config_parse(f->a, "c", t2, strlen(t2), &cfg, errmsg),
                   LMZ_ESYNTAX);
  assert_string_equal(errmsg, "c:1:9: unterminated block comment: expected "
                              "'*/', found end of input");
}

static void root_must_be_an_object(void **state) {
  struct fixture *f = *state;
  lmz_config cfg;
  char errmsg[LMZ_ERRMSG_LEN];
  const char *t = "// list\n  [1, 2]";
  assert_int_equal(
      lmz_config_parse(f->a, "x.jsonc", t, strlen(t), &cfg, errmsg),
      LMZ_EBADCONFIG);
  assert_string_equal(
      errmsg, "x.jsonc:2:3: the configuration must be a JSON object, found "
              "array");
  assert_int_equal(lmz_config_parse(f->a, NULL, "\"s\"", 3, &cfg, errmsg),
                   LMZ_EBADCONFIG);
  assert_string_equal(
      errmsg, "config:1:1: the configuration must be a JSON object, found "
              "string");
}

static void missing_and_unreadable_files(void **state) {
  struct fixture *f = *state;
  lmz_config cfg;
  char errmsg[LMZ_ERRMSG_LEN], want[LMZ_ERRMSG_LEN];
  char *path = malloc(strlen(f->dir) + 32);
  assert_non_null(path);
  sprintf(path, "%s/nope.jsonc", f->dir);
  assert_int_equal(lmz_config_load(f->a, path, &cfg, errmsg), LMZ_ENOTFOUND);
  snprintf(want, sizeof want, "%s: no such file or directory", path);
  assert_string_equal(errmsg, want);
  assert_null(cfg.root);
  /* a directory cannot be read as a config */
  assert_int_equal(lmz_config_load(f->a, f->dir, &cfg, errmsg), LMZ_EIO);
  snprintf(want, sizeof want, "%s: illegal operation on a directory", f->dir);
  assert_string_equal(errmsg, want);
  free(path);
}

static void size_is_capped(void **state) {
  struct fixture *f = *state;
  size_t n = LMZ_CONFIG_MAX_BYTES + 1;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, ' ', n);
  big[0] = '{';
  big[n - 1] = '}';
  lmz_config cfg;
  char errmsg[LMZ_ERRMSG_LEN], want[LMZ_ERRMSG_LEN];
  char *path = write_file(f, "big.jsonc", big, n);
  assert_int_equal(lmz_config_load(f->a, path, &cfg, errmsg), LMZ_ETOOBIG);
  snprintf(want, sizeof want, "%s: file exceeds the limit of %u bytes", path,
           LMZ_CONFIG_MAX_BYTES);
  assert_string_equal(errmsg, want);
  assert_int_equal(lmz_config_parse(f->a, "m", big, n, &cfg, errmsg),
                   LMZ_ETOOBIG);
  assert_string_equal(errmsg, "m: 4194305 bytes exceed the limit of 4194304 "
                              "bytes");
  /* exactly at the limit is fine */
  free(path);
  big[1] = '{';
  path = write_file(f, "max.jsonc", big + 1, n - 1);
  assert_int_equal(lmz_config_load(f->a, path, &cfg, errmsg), 0);
  assert_int_equal(cfg.root->n, 0);
  free(path);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(loads_jsonc_file, setup, teardown),
      cmocka_unit_test_setup_teardown(syntax_error_reports_line_and_column,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(root_must_be_an_object, setup, teardown),
      cmocka_unit_test_setup_teardown(missing_and_unreadable_files, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(size_is_capped, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
