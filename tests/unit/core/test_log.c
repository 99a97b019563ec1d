/* tests/unit/core/test_log.c - leveled, namespaced logs (core/log.c).
 *
 * Output goes to a temp file (lmz_log_set_fd); each test reads what was
 * written since it truncated the file. The first test must run before
 * anything configures logging: it checks that the environment is read on
 * first use. */
#include "lib/testlib.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/json.h"
#include "core/log.h"

static char *dir;
static int fd = -1;

static int group_setup(void **state) {
  (void)state;
  dir = tl_mkdtemp("lmz-test-log");
  if (!dir)
    return -1;
  char path[512];
  snprintf(path, sizeof path, "%s/log.txt", dir);
  fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  lmz_log_set_fd(fd);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  lmz_log_set_fd(-1);
  close(fd);
  tl_rmtree(dir);
  free(dir);
  return 0;
}

static void clear(void) { assert_int_equal(ftruncate(fd, 0), 0); }

/* Everything logged since clear(); malloc'd, NUL-terminated. */
static char *captured(void) {
  off_t size = lseek(fd, 0, SEEK_END);
  assert_true(size >= 0);
  char *buf = malloc((size_t)size + 1);
  assert_non_null(buf);
  assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
  buf[size] = 0;
  return buf;
}

static size_t count_lines(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    n += *s == '\n';
  return n;
}

static int counter;
static int bump(void) { return ++counter; }

static lmz_log_ns ns_raft = LMZ_LOG_NS("lmz.cluster.raft");
static lmz_log_ns ns_gossip = LMZ_LOG_NS("lmz.cluster.gossip");
static lmz_log_ns ns_actor = LMZ_LOG_NS("lmz.actor");
static lmz_log_ns ns_gateway = LMZ_LOG_NS("lmz.gateway");

/* Logs one debug line on each namespace; returns which ones came out as
 * a string like "raft,gossip". */
static void which_log(int level, char *out, size_t n) {
  clear();
  LMZ_LOG(&ns_raft, level, "x");
  LMZ_LOG(&ns_gossip, level, "x");
  LMZ_LOG(&ns_actor, level, "x");
  LMZ_LOG(&ns_gateway, level, "x");
  char *s = captured();
  out[0] = 0;
  const char *names[] = {"lmz.cluster.raft", "lmz.cluster.gossip", "lmz.actor",
                         "lmz.gateway"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(names); i++) {
    char needle[64];
    snprintf(needle, sizeof needle, " %s x\n", names[i]);
    if (strstr(s, needle)) {
      if (out[0])
        strncat(out, ",", n - strlen(out) - 1);
      strncat(out, strrchr(names[i], '.') + 1, n - strlen(out) - 1);
    }
  }
  free(s);
}

static void environment_is_read_on_first_use(void **state) {
  (void)state;
  setenv("LMZ_LOG_LEVEL", "warn", 1);
  setenv("LMZ_DEBUG", "lmz.gateway", 1);
  setenv("LMZ_LOG_FORMAT", "xml", 1); /* invalid: text, with a warning */
  clear();
  LMZ_LOG_INFO(&ns_gateway, "first");
  char *s = captured();
  assert_int_equal(count_lines(s), 2);
  assert_non_null(strstr(s, " WARN  lmz.log ignoring invalid "
                            "LMZ_LOG_FORMAT=xml (using the default)\n"));
  assert_non_null(strstr(s, " INFO  lmz.gateway first\n"));
  free(s);
  char got[128];
  which_log(LMZ_LOG_INFO, got, sizeof got);
  assert_string_equal(got, "gateway");
  which_log(LMZ_LOG_WARN, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  unsetenv("LMZ_LOG_LEVEL");
  unsetenv("LMZ_DEBUG");
  unsetenv("LMZ_LOG_FORMAT");
}

static void text_line_format(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("info", "", "text"), 0);
  clear();
  /* the precise clock, as the logger's: time() reads a coarse one that
   * can still show the previous second when the logger's has moved on */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  time_t before = ts.tv_sec;
  LMZ_LOG_INFO(&ns_actor, "activated %s/%s", "COUNTER_DO", "a");
  LMZ_LOG_ERROR(&ns_actor, "two\nlines\r\x01 and a tab\t.");
  clock_gettime(CLOCK_REALTIME, &ts);
  time_t after = ts.tv_sec;
  char *s = captured();
  assert_int_equal(count_lines(s), 2);
  /* 2026-11-22T17:22:10.123Z INFO  lmz.actor activated COUNTER_DO/a */
  assert_true(strlen(s) > 24);
  struct tm tm = {0};
  int ms = -1;
  assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year,
                          &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                          &tm.tm_sec, &ms),
                   7);
  assert_true(s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[23] == 'Z');
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  assert_true(t >= before && t <= after);
  assert_true(ms >= 0 && ms <= 999);
  const char *first = " INFO  lmz.actor activated COUNTER_DO/a\n";
  assert_memory_equal(s + 24, first, strlen(first));
  char *second = strchr(s, '\n') + 1;
  assert_string_equal(second + 24, " ERROR lmz.actor two\\nlines\\r\\x01 and "
                                   "a tab\t.\n");
  free(s);
}

static void json_line_format(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("info", NULL, "json"), 0);
  clear();
  LMZ_LOG_WARN(&ns_gateway, "quote \" backslash \\ nl \n %d", 7);
  char *s = captured();
  assert_int_equal(count_lines(s), 1);
  lmz_arena *a = lmz_arena_new();
  assert_non_null(a);
  lmz_json *j = NULL;
  struct lmz_codec_error err;
  assert_int_equal(lmz_json_parse(a, s, strlen(s), NULL, &j, &err), 0);
  assert_int_equal(j->n, 4);
  assert_string_equal(j->u.members[0].key, "ts");
  assert_int_equal(lmz_json_get(j, "ts")->u.str.len, 24);
  assert_string_equal(lmz_json_get(j, "level")->u.str.p, "warn");
  assert_string_equal(lmz_json_get(j, "ns")->u.str.p, "lmz.gateway");
  assert_string_equal(lmz_json_get(j, "msg")->u.str.p,
                      "quote \" backslash \\ nl \n 7");
  assert_non_null(strstr(s,
                         ",\"level\":\"warn\",\"ns\":\"lmz.gateway\","
                         "\"msg\":\"quote \\\" backslash \\\\ nl \\n 7\"}\n"));
  lmz_arena_free(a);
  free(s);
  assert_int_equal(lmz_log_configure("info", NULL, "text"), 0);
}

static void debug_patterns_select_namespaces(void **state) {
  (void)state;
  char got[128];
  assert_int_equal(lmz_log_configure("info", "lmz.cluster.*", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft,gossip");
  which_log(LMZ_LOG_TRACE, got, sizeof got);
  assert_string_equal(got, "");
  which_log(LMZ_LOG_INFO, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");

  /* exclusion; later patterns win; ":trace" */
  assert_int_equal(
      lmz_log_configure("info", "lmz.cluster.*,-lmz.cluster.raft", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "gossip");
  which_log(LMZ_LOG_INFO, got, sizeof got); /* excluded = base level */
  assert_string_equal(got, "raft,gossip,actor,gateway");
  assert_int_equal(lmz_log_configure("info", "-lmz.cluster.raft lmz.*", NULL),
                   0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  assert_int_equal(
      lmz_log_configure("info", "lmz.gateway:trace, lmz.actor", NULL), 0);
  which_log(LMZ_LOG_TRACE, got, sizeof got);
  assert_string_equal(got, "gateway");
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "actor,gateway");

  /* '*' inside a pattern, and alone */
  assert_int_equal(lmz_log_configure("info", "lmz.*.raft", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft");
  assert_int_equal(lmz_log_configure("info", "*", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  assert_int_equal(lmz_log_configure("info", "lmz.c*f*", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft");
  /* a pattern is matched whole, not as a prefix */
  assert_int_equal(lmz_log_configure("info", "lmz.cluster", NULL), 0);
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "");
  /* a base level above a pattern's level keeps the base */
  assert_int_equal(lmz_log_configure("trace", "lmz.actor", NULL), 0);
  which_log(LMZ_LOG_TRACE, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  assert_int_equal(lmz_log_configure("error", "", NULL), 0);
  which_log(LMZ_LOG_WARN, got, sizeof got);
  assert_string_equal(got, "");
  assert_int_equal(lmz_log_configure("off", NULL, NULL), 0);
  which_log(LMZ_LOG_ERROR, got, sizeof got);
  assert_string_equal(got, "");
}

static void filtered_out_arguments_are_not_evaluated(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("info", "", NULL), 0);
  counter = 0;
  clear();
  LMZ_LOG_DEBUG(&ns_actor, "n=%d", bump());
  LMZ_LOG_TRACE(&ns_actor, "n=%d", bump());
  assert_int_equal(counter, 0);
  char *s = captured();
  assert_string_equal(s, "");
  free(s);
  LMZ_LOG_INFO(&ns_actor, "n=%d", bump());
  assert_int_equal(counter, 1);
  /* after a reconfigure the cached level is refreshed */
  assert_int_equal(lmz_log_configure("info", "lmz.actor", NULL), 0);
  assert_true(lmz_log_enabled(&ns_actor, LMZ_LOG_DEBUG));
  LMZ_LOG_DEBUG(&ns_actor, "n=%d", bump());
  assert_int_equal(counter, 2);
  s = captured();
  assert_int_equal(count_lines(s), 2);
  assert_non_null(strstr(s, " DEBUG lmz.actor n=2\n"));
  free(s);
}

static void invalid_configuration_keeps_the_previous(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("debug", "", NULL), 0);
  assert_int_equal(lmz_log_configure("loud", "lmz.*", NULL), LMZ_EINVAL);
  assert_int_equal(lmz_log_configure("info", "lmz.*", "xml"), LMZ_EINVAL);
  char got[128];
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  which_log(LMZ_LOG_TRACE, got, sizeof got);
  assert_string_equal(got, "");
  /* NULL arguments come from the environment */
  setenv("LMZ_LOG_LEVEL", "error", 1);
  setenv("LMZ_DEBUG", "lmz.actor:warn", 1);
  assert_int_equal(lmz_log_configure(NULL, NULL, NULL), 0);
  which_log(LMZ_LOG_WARN, got, sizeof got);
  assert_string_equal(got, "actor");
  setenv("LMZ_LOG_LEVEL", "nonsense", 1);
  assert_int_equal(lmz_log_configure(NULL, NULL, NULL), LMZ_EINVAL);
  unsetenv("LMZ_LOG_LEVEL");
  unsetenv("LMZ_DEBUG");
  assert_int_equal(lmz_log_configure(NULL, NULL, NULL), 0);
  which_log(LMZ_LOG_INFO, got, sizeof got);
  assert_string_equal(got, "raft,gossip,actor,gateway");
  which_log(LMZ_LOG_DEBUG, got, sizeof got);
  assert_string_equal(got, "");
}

static void level_names(void **state) {
  (void)state;
  assert_int_equal(lmz_log_level_from_name("off"), LMZ_LOG_OFF);
  assert_int_equal(lmz_log_level_from_name("error"), LMZ_LOG_ERROR);
  assert_int_equal(lmz_log_level_from_name("WARN"), LMZ_LOG_WARN);
  assert_int_equal(lmz_log_level_from_name("warning"), LMZ_LOG_WARN);
  assert_int_equal(lmz_log_level_from_name("Info"), LMZ_LOG_INFO);
  assert_int_equal(lmz_log_level_from_name("debug"), LMZ_LOG_DEBUG);
  assert_int_equal(lmz_log_level_from_name("trace"), LMZ_LOG_TRACE);
  assert_int_equal(lmz_log_level_from_name("verbose"), -1);
  assert_int_equal(lmz_log_level_from_name(""), -1);
  assert_int_equal(lmz_log_level_from_name(NULL), -1);
}

static void long_messages_are_whole(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("info", "", NULL), 0);
  char big[5000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  clear();
  LMZ_LOG_INFO(&ns_actor, "<%s>", big);
  char *s = captured();
  assert_int_equal(strlen(s), 24 + strlen(" INFO  lmz.actor <>\n") + 4999);
  assert_true(s[strlen(s) - 2] == '>');
  free(s);
}

#define THREADS 4
#define LINES 500

static void *log_thread(void *arg) {
  static lmz_log_ns ns = LMZ_LOG_NS("lmz.thread");
  long id = (long)arg;
  for (int i = 0; i < LINES; i++)
    LMZ_LOG_INFO(&ns, "thread %ld line %d %s", id, i,
                 "padding padding padding padding padding padding");
  return NULL;
}

static void concurrent_lines_do_not_interleave(void **state) {
  (void)state;
  assert_int_equal(lmz_log_configure("info", "", NULL), 0);
  clear();
  pthread_t th[THREADS];
  for (long i = 0; i < THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, log_thread, (void *)i), 0);
  for (int i = 0; i < THREADS; i++)
    assert_int_equal(pthread_join(th[i], NULL), 0);
  char *s = captured();
  assert_int_equal(count_lines(s), THREADS * LINES);
  int seen[THREADS] = {0};
  for (char *line = s; *line;) {
    char *nl = strchr(line, '\n');
    *nl = 0;
    long id;
    int n;
    char pad[16];
    assert_int_equal(sscanf(line + 24,
                            " INFO  lmz.thread thread %ld line %d "
                            "%15s",
                            &id, &n, pad),
                     3);
    assert_true(id >= 0 && id < THREADS);
    assert_int_equal(n, seen[id]++); /* per thread, in order */
    assert_int_equal(strlen(line), 24 +
                                       strlen(" INFO  lmz.thread thread 0 "
                                              "line ") +
                                       (size_t)snprintf(NULL, 0, "%d", n) + 48);
    line = nl + 1;
  }
  free(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(environment_is_read_on_first_use), /* must be first */
      cmocka_unit_test(text_line_format),
      cmocka_unit_test(json_line_format),
      cmocka_unit_test(debug_patterns_select_namespaces),
      cmocka_unit_test(filtered_out_arguments_are_not_evaluated),
      cmocka_unit_test(invalid_configuration_keeps_the_previous),
      cmocka_unit_test(level_names),
      cmocka_unit_test(long_messages_are_whole),
      cmocka_unit_test(concurrent_lines_do_not_interleave),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
