/* tests/unit/storage/test_store.c - the store against a real RocksDB in a
 * temp dir: open errors, put/get/delete/delete_range, scans (bounds, limit,
 * reverse, prefix), batch limits, export/import round trip and hostile
 * dumps. Every test closes the store, closes the loop (== 0) and removes its
 * directory. */
#include "lib/testlib.h"
#include "lib/tl_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/keys.h"
#include "storage/store.h"

struct fx {
  uv_loop_t loop;
  char *dir;
  lmz_store_t *s;
};

static int fx_setup(void **state) {
  struct fx *f = calloc(1, sizeof *f);
  assert_non_null(f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->dir = tl_mkdtemp("lmz-store");
  assert_non_null(f->dir);
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, f->dir);
  char err[LMZ_ERRMSG_LEN];
  assert_int_equal(tl_store_open(&f->s, &f->loop, &o, err), 0);
  *state = f;
  return 0;
}

static int fx_teardown(void **state) {
  struct fx *f = *state;
  tl_store_close(f->s);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  tl_rmtree(f->dir);
  free(f->dir);
  free(f);
  return 0;
}

static void on_commit(lmz_store_t *s, int status, void *arg) {
  (void)s;
  *(int *)arg = status;
}

/* Commits b and runs the loop until its callback has run; returns status. */
static int commit_wait(struct fx *f, lmz_batch *b) {
  int status = 1;
  assert_int_equal(lmz_store_commit(f->s, b, on_commit, &status), 0);
  assert_int_equal(status, 1); /* never synchronous */
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_not_equal(status, 1);
  return status;
}

static void put_str(lmz_batch *b, const char *k, const char *v) {
  assert_int_equal(lmz_batch_put(b, k, strlen(k), v, strlen(v)), 0);
}

static void check_value(struct fx *f, const char *k, const char *v) {
  lmz_buf out = LMZ_BUF_INIT;
  int rv = lmz_store_get(f->s, k, strlen(k), &out);
  if (v == NULL) {
    assert_int_equal(rv, LMZ_ENOTFOUND);
  } else {
    assert_int_equal(rv, 0);
    assert_int_equal(out.len, strlen(v));
    assert_memory_equal(out.data, v, out.len);
  }
  lmz_buf_free(&out);
}

/* Scan collector: "k1,k2,..." (keys are printable in these tests). */
struct collect {
  char text[4096];
  size_t n;
  size_t stop_after; /* 0 = never */
};

static int collect_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                      void *arg) {
  (void)v, (void)vl;
  struct collect *c = arg;
  size_t used = strlen(c->text);
  snprintf(c->text + used, sizeof c->text - used, "%s%.*s", used ? "," : "",
           (int)kl, (const char *)k);
  c->n++;
  return c->stop_after && c->n >= c->stop_after;
}

static const char *scan_str(struct fx *f, const char *lo, const char *hi,
                            size_t limit, bool reverse, int expect_n) {
  static struct collect c;
  memset(&c, 0, sizeof c);
  int n = lmz_store_scan(f->s, lo, lo ? strlen(lo) : 0, hi, hi ? strlen(hi) : 0,
                         limit, reverse, collect_cb, &c);
  assert_int_equal(n, expect_n);
  return c.text;
}

static void open_errors(void **state) {
  struct fx *f = *state;
  char err[LMZ_ERRMSG_LEN];
  lmz_store_t *s2 = NULL;
  struct lmz_store_opts o;
  /* the same directory is locked by the open store */
  lmz_store_opts_init(&o, f->dir);
  assert_int_equal(tl_store_open(&s2, &f->loop, &o, err), LMZ_ESTORAGE);
  assert_non_null(strstr(err, "lock"));
  assert_null(s2);
  /* a file in the way */
  char path[512];
  snprintf(path, sizeof path, "%s/file", f->dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  fclose(fp);
  snprintf(path, sizeof path, "%s/file/db", f->dir);
  lmz_store_opts_init(&o, path);
  assert_int_equal(tl_store_open(&s2, &f->loop, &o, err), UV_ENOTDIR);
  assert_non_null(strstr(err, "mkdir"));
  lmz_store_opts_init(&o, NULL);
  assert_int_equal(tl_store_open(&s2, &f->loop, &o, err), LMZ_EINVAL);
  /* nested missing directories are created */
  snprintf(path, sizeof path, "%s/a/b/c", f->dir);
  lmz_store_opts_init(&o, path);
  assert_int_equal(tl_store_open(&s2, &f->loop, &o, NULL), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  tl_store_close(s2);
}

static void put_get_delete(void **state) {
  struct fx *f = *state;
  lmz_batch *b = lmz_batch_new();
  put_str(b, "a", "1");
  put_str(b, "b", "2");
  put_str(b, "gone", "x");
  assert_int_equal(lmz_batch_delete(b, "gone", 4), 0);
  assert_int_equal(lmz_batch_delete(b, "c", 1), 0);
  put_str(b, "c", "3"); /* later op wins */
  assert_int_equal(lmz_batch_put(b, "bin\0k", 5, "\0\1\2", 3), 0);
  assert_int_equal(lmz_batch_put(b, "empty", 5, NULL, 0), 0);
  assert_int_equal(lmz_batch_count(b), 8);
  assert_int_equal(commit_wait(f, b), 0);
  check_value(f, "a", "1");
  check_value(f, "b", "2");
  check_value(f, "c", "3");
  check_value(f, "gone", NULL);
  check_value(f, "empty", "");
  lmz_buf out = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_get(f->s, "bin\0k", 5, &out), 0);
  assert_int_equal(out.len, 3);
  assert_memory_equal(out.data, "\0\1\2", 3);
  /* not found leaves out unchanged; a hit replaces the content */
  assert_int_equal(lmz_store_get(f->s, "nope", 4, &out), LMZ_ENOTFOUND);
  assert_int_equal(out.len, 3);
  assert_int_equal(lmz_store_get(f->s, "a", 1, &out), 0);
  assert_int_equal(out.len, 1);
  lmz_buf_free(&out);

  b = lmz_batch_new();
  assert_int_equal(lmz_batch_delete(b, "a", 1), 0);
  put_str(b, "b", "22");
  assert_int_equal(commit_wait(f, b), 0);
  check_value(f, "a", NULL);
  check_value(f, "b", "22");
}

static void delete_range(void **state) {
  struct fx *f = *state;
  lmz_batch *b = lmz_batch_new();
  const char *keys[] = {"a", "b", "ba", "c", "d", "e"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(keys); i++)
    put_str(b, keys[i], "v");
  assert_int_equal(commit_wait(f, b), 0);
  b = lmz_batch_new();
  assert_int_equal(lmz_batch_delete_range(b, "d", 1, "b", 1), LMZ_EINVAL);
  assert_int_equal(lmz_batch_delete_range(b, "b", 1, "b", 1), 0); /* no-op */
  assert_int_equal(lmz_batch_count(b), 0);
  assert_int_equal(lmz_batch_delete_range(b, "b", 1, "d", 1), 0);
  assert_int_equal(lmz_batch_count(b), 1);
  assert_int_equal(commit_wait(f, b), 0);
  assert_string_equal(scan_str(f, NULL, NULL, 0, false, 3), "a,d,e");
}

static void scans(void **state) {
  struct fx *f = *state;
  lmz_batch *b = lmz_batch_new();
  for (int i = 0; i < 10; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%d", i);
    put_str(b, k, k);
  }
  put_str(b, "j", "before");
  put_str(b, "l", "after");
  assert_int_equal(commit_wait(f, b), 0);

  assert_string_equal(scan_str(f, "k", "l", 0, false, 10),
                      "k0,k1,k2,k3,k4,k5,k6,k7,k8,k9");
  assert_string_equal(scan_str(f, "k", "l", 3, false, 3), "k0,k1,k2");
  assert_string_equal(scan_str(f, "k", "l", 0, true, 10),
                      "k9,k8,k7,k6,k5,k4,k3,k2,k1,k0");
  assert_string_equal(scan_str(f, "k", "l", 2, true, 2), "k9,k8");
  /* upper bound is exclusive in both directions, lower inclusive */
  assert_string_equal(scan_str(f, "k2", "k5", 0, false, 3), "k2,k3,k4");
  assert_string_equal(scan_str(f, "k2", "k5", 0, true, 3), "k4,k3,k2");
  /* open-ended bounds */
  assert_string_equal(scan_str(f, "k8", NULL, 0, false, 3), "k8,k9,l");
  assert_string_equal(scan_str(f, NULL, "k1", 0, false, 2), "j,k0");
  assert_string_equal(scan_str(f, NULL, "k1", 0, true, 2), "k0,j");
  assert_string_equal(scan_str(f, NULL, NULL, 1, true, 1), "l");
  /* empty ranges */
  assert_string_equal(scan_str(f, "k5", "k5", 0, false, 0), "");
  assert_string_equal(scan_str(f, "x", "z", 0, true, 0), "");
  /* the callback stops the scan */
  struct collect c;
  memset(&c, 0, sizeof c);
  c.stop_after = 2;
  assert_int_equal(
      lmz_store_scan(f->s, "k", 1, "l", 1, 0, false, collect_cb, &c), 2);
  assert_string_equal(c.text, "k0,k1");
  assert_int_equal(lmz_store_scan(f->s, NULL, 0, NULL, 0, 0, false, NULL, NULL),
                   LMZ_EINVAL);
}

/* User keys of one actor, listed by prefix, next to a prefix-related actor. */
static void actor_prefix_scans(void **state) {
  struct fx *f = *state;
  lmz_batch *b = lmz_batch_new();
  const char *ukeys[] = {"post:1", "post:2", "postx", "user:1", "pos"};
  for (int a = 0; a < 2; a++) {
    const char *bind = a ? "ab" : "a", *inst = a ? "c" : "bc";
    for (size_t i = 0; i < LMZ_ARRAY_SIZE(ukeys); i++) {
      uint8_t k[LMZ_KEY_MAX];
      int kl = lmz_key_actor(k, bind, strlen(bind), inst, strlen(inst),
                             LMZ_KEY_SPACE_USER, ukeys[i], strlen(ukeys[i]));
      assert_int_equal(lmz_batch_put(b, k, (size_t)kl, bind, strlen(bind)), 0);
    }
    uint8_t k[LMZ_KEY_MAX];
    int kl = lmz_key_actor(k, bind, strlen(bind), inst, strlen(inst),
                           LMZ_KEY_SPACE_FRAMEWORK, "id", 2);
    assert_int_equal(lmz_batch_put(b, k, (size_t)kl, "fw", 2), 0);
  }
  assert_int_equal(commit_wait(f, b), 0);

  uint8_t p[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(p, "a", 1, "bc", 2);
  lmz_key_range r;
  struct collect c;
  assert_int_equal(lmz_key_list_range(&r, p, (size_t)pl, 1, "post", 4), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper,
                                  r.upper_len, 0, false, collect_cb, &c),
                   3);
  assert_int_equal(lmz_key_space_range(&r, p, (size_t)pl, 1), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper,
                                  r.upper_len, 0, false, collect_cb, &c),
                   5);
  assert_int_equal(lmz_key_actor_range(&r, p, (size_t)pl), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper,
                                  r.upper_len, 0, false, collect_cb, &c),
                   6);
  /* deleting one actor's range leaves the other one whole */
  b = lmz_batch_new();
  assert_int_equal(
      lmz_batch_delete_range(b, r.lower, r.lower_len, r.upper, r.upper_len), 0);
  assert_int_equal(commit_wait(f, b), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(
      lmz_store_scan(f->s, NULL, 0, NULL, 0, 0, false, collect_cb, &c), 6);
  pl = lmz_key_actor_prefix(p, "ab", 2, "c", 1);
  assert_int_equal(lmz_key_actor_range(&r, p, (size_t)pl), 0);
  memset(&c, 0, sizeof c);
  assert_int_equal(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper,
                                  r.upper_len, 0, false, collect_cb, &c),
                   6);
}

static void batch_limits(void **state) {
  (void)state;
  lmz_batch *b = lmz_batch_new();
  assert_int_equal(lmz_batch_bytes(b), 0);
  assert_int_equal(lmz_batch_put(b, "key", 3, "value", 5), 0);
  assert_int_equal(lmz_batch_bytes(b), 9 + 3 + 5);
  assert_int_equal(lmz_batch_delete(b, "key", 3), 0);
  assert_int_equal(lmz_batch_bytes(b), 9 + 3 + 5 + 9 + 3);
  assert_int_equal(lmz_batch_put(b, NULL, 2, "v", 1), LMZ_EINVAL);
  assert_int_equal(lmz_batch_put(b, "k", 1, NULL, 1), LMZ_EINVAL);
  assert_int_equal(lmz_batch_put(NULL, "k", 1, "v", 1), LMZ_EINVAL);
  static char big[LMZ_STORE_KEY_MAX + 1];
  assert_int_equal(lmz_batch_put(b, big, sizeof big, "v", 1), LMZ_ETOOBIG);
  assert_int_equal(lmz_batch_delete(b, big, sizeof big), LMZ_ETOOBIG);
  assert_int_equal(
      lmz_batch_put(b, "k", 1, big, (size_t)LMZ_STORE_VALUE_MAX + 1),
      LMZ_ETOOBIG);
  assert_int_equal(lmz_batch_count(b), 2); /* errors changed nothing */
  lmz_batch_clear(b);
  assert_int_equal(lmz_batch_count(b), 0);
  assert_int_equal(lmz_batch_bytes(b), 0);
  lmz_batch_free(b);
  lmz_batch_free(NULL);
}

/* --- export / import ---------------------------------------------------- */

static void put_actor(lmz_batch *b, const char *bind, const char *inst,
                      unsigned space, const void *k, size_t kl, const void *v,
                      size_t vl) {
  uint8_t key[LMZ_KEY_MAX];
  int n =
      lmz_key_actor(key, bind, strlen(bind), inst, strlen(inst), space, k, kl);
  assert_true(n > 0);
  assert_int_equal(lmz_batch_put(b, key, (size_t)n, v, vl), 0);
}

static int actor_count(struct fx *f, const char *bind, const char *inst) {
  uint8_t p[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(p, bind, strlen(bind), inst, strlen(inst));
  lmz_key_range r;
  lmz_key_actor_range(&r, p, (size_t)pl);
  struct collect c;
  memset(&c, 0, sizeof c);
  return lmz_store_scan(f->s, r.lower, r.lower_len, r.upper, r.upper_len, 0,
                        false, collect_cb, &c);
}

/* Fills actor DOC/a with 50 user keys (binary values) + 2 framework keys,
 * and its neighbour DOC/ab with 3 keys. */
static void fill_actors(struct fx *f) {
  lmz_batch *b = lmz_batch_new();
  for (int i = 0; i < 50; i++) {
    char k[16];
    uint8_t v[64];
    int kl = snprintf(k, sizeof k, "key%03d", i);
    for (size_t j = 0; j < sizeof v; j++)
      v[j] = (uint8_t)(i * 7 + j);
    put_actor(b, "DOC", "a", LMZ_KEY_SPACE_USER, k, (size_t)kl, v,
              (size_t)(i % 64));
  }
  put_actor(b, "DOC", "a", LMZ_KEY_SPACE_FRAMEWORK, "id", 2, "DOC/a", 5);
  put_actor(b, "DOC", "a", LMZ_KEY_SPACE_FRAMEWORK, "alarm", 5, "\0", 1);
  for (int i = 0; i < 3; i++)
    put_actor(b, "DOC", "ab", LMZ_KEY_SPACE_USER, "n", 1, "x", 1);
  put_actor(b, "DOC", "ab", LMZ_KEY_SPACE_USER, "m", 1, "y", 1);
  assert_int_equal(commit_wait(f, b), 0);
}

struct snapshot {
  lmz_buf all; /* key\0value\0 ... of one actor */
};

static int snap_cb(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   void *arg) {
  lmz_buf *o = arg;
  uint32_t a = (uint32_t)kl, c = (uint32_t)vl;
  lmz_buf_append(o, &a, 4);
  lmz_buf_append(o, k, kl);
  lmz_buf_append(o, &c, 4);
  lmz_buf_append(o, v, vl);
  return 0;
}

static void snapshot_actor(struct fx *f, const char *bind, const char *inst,
                           lmz_buf *o) {
  uint8_t p[LMZ_KEY_PREFIX_MAX];
  int pl = lmz_key_actor_prefix(p, bind, strlen(bind), inst, strlen(inst));
  lmz_key_range r;
  lmz_key_actor_range(&r, p, (size_t)pl);
  assert_true(lmz_store_scan(f->s, r.lower, r.lower_len, r.upper, r.upper_len,
                             0, false, snap_cb, o) >= 0);
}

static void export_import_round_trip(void **state) {
  struct fx *f = *state;
  fill_actors(f);
  assert_int_equal(actor_count(f, "DOC", "a"), 52);
  assert_int_equal(actor_count(f, "DOC", "ab"), 2);
  lmz_buf before = LMZ_BUF_INIT, after = LMZ_BUF_INIT, dump = LMZ_BUF_INIT;
  snapshot_actor(f, "DOC", "a", &before);
  assert_int_equal(lmz_store_export_actor(f->s, "DOC", 3, "a", 1, &dump), 52);

  const char *bn, *in;
  size_t bl, il;
  assert_int_equal(
      lmz_store_dump_actor(dump.data, dump.len, &bn, &bl, &in, &il), 0);
  assert_int_equal(bl, 3);
  assert_memory_equal(bn, "DOC", 3);
  assert_int_equal(il, 1);
  assert_memory_equal(in, "a", 1);

  /* change the actor, then import: the dump replaces its whole state */
  lmz_batch *b = lmz_batch_new();
  put_actor(b, "DOC", "a", LMZ_KEY_SPACE_USER, "stale", 5, "s", 1);
  put_actor(b, "DOC", "a", LMZ_KEY_SPACE_USER, "key000", 6, "changed", 7);
  assert_int_equal(commit_wait(f, b), 0);
  assert_int_equal(actor_count(f, "DOC", "a"), 53);
  b = lmz_batch_new();
  assert_int_equal(lmz_store_import(f->s, dump.data, dump.len, b), 52);
  assert_int_equal(lmz_batch_count(b), 53); /* delete_range + 52 puts */
  assert_int_equal(commit_wait(f, b), 0);
  snapshot_actor(f, "DOC", "a", &after);
  assert_int_equal(after.len, before.len);
  assert_memory_equal(after.data, before.data, before.len);
  assert_int_equal(actor_count(f, "DOC", "ab"), 2); /* neighbour untouched */

  /* migration: import into another node's store */
  struct fx g = {0};
  assert_int_equal(uv_loop_init(&g.loop), 0);
  g.dir = tl_mkdtemp("lmz-store2");
  struct lmz_store_opts o;
  lmz_store_opts_init(&o, g.dir);
  assert_int_equal(tl_store_open(&g.s, &g.loop, &o, NULL), 0);
  b = lmz_batch_new();
  assert_int_equal(lmz_store_import(g.s, dump.data, dump.len, b), 52);
  assert_int_equal(commit_wait(&g, b), 0);
  lmz_buf there = LMZ_BUF_INIT;
  snapshot_actor(&g, "DOC", "a", &there);
  assert_int_equal(there.len, before.len);
  assert_memory_equal(there.data, before.data, before.len);
  assert_int_equal(actor_count(&g, "DOC", "ab"), 0);
  /* an empty actor exports as header + trailer */
  lmz_buf empty = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_export_actor(g.s, "X", 1, "", 0, &empty), 0);
  assert_int_equal(empty.len, 4 + 1 + 2 + 1 + 2);
  assert_memory_equal(empty.data, "LMZA\x01\x01X\x00\x00\x00", 10);
  tl_store_close(g.s);
  assert_int_equal(uv_run(&g.loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&g.loop), 0);
  tl_rmtree(g.dir);
  free(g.dir);
  lmz_buf_free(&there);
  lmz_buf_free(&empty);
  lmz_buf_free(&before);
  lmz_buf_free(&after);
  lmz_buf_free(&dump);
}

/* Expects `data` to be refused with `err`, leaving the batch as it was. */
static void expect_bad_dump(struct fx *f, const void *data, size_t len,
                            int err) {
  lmz_batch *b = lmz_batch_new();
  put_str(b, "keep", "me");
  size_t bytes = lmz_batch_bytes(b);
  f->s->errmsg[0] = '\0';
  assert_int_equal(lmz_store_import(f->s, data, len, b), err);
  assert_int_equal(lmz_batch_count(b), 1);
  assert_int_equal(lmz_batch_bytes(b), bytes);
  assert_true(f->s->errmsg[0] != '\0');
  lmz_batch_free(b);
}

/* Hand-built dump: header for B/i, then `body`, raw. */
static size_t mk_dump(uint8_t *out, const void *body, size_t body_len) {
  memcpy(out,
         "LMZA\x01\x01"
         "B\x01i",
         9);
  memcpy(out + 9, body, body_len);
  return 9 + body_len;
}

static void import_rejects_malformed(void **state) {
  struct fx *f = *state;
  fill_actors(f);
  lmz_buf dump = LMZ_BUF_INIT;
  assert_int_equal(lmz_store_export_actor(f->s, "DOC", 3, "a", 1, &dump), 52);
  /* every proper prefix of a valid dump is refused */
  for (size_t n = 0; n < dump.len; n++)
    expect_bad_dump(f, dump.data, n, LMZ_EBADMSG);
  /* a trailing byte */
  assert_int_equal(lmz_buf_putc(&dump, 0), 0);
  expect_bad_dump(f, dump.data, dump.len, LMZ_EBADMSG);
  dump.len--;
  /* magic, version */
  dump.data[0] = 'X';
  expect_bad_dump(f, dump.data, dump.len, LMZ_EBADMSG);
  dump.data[0] = 'L';
  dump.data[4] = 2;
  expect_bad_dump(f, dump.data, dump.len, LMZ_EBADVERSION);
  dump.data[4] = 1;
  lmz_batch *ok = lmz_batch_new();
  assert_int_equal(lmz_store_import(f->s, dump.data, dump.len, ok), 52);
  lmz_batch_free(ok);
  lmz_buf_free(&dump);

  uint8_t d[64];
  size_t n;
  /* valid baseline: one entry (user space, key "k", value "v") */
  n = mk_dump(d, "\x01\x02\x01k\x01v\x00\x01", 8);
  ok = lmz_batch_new();
  assert_int_equal(lmz_store_import(f->s, d, n, ok), 1);
  lmz_batch_free(ok);
  /* wrong count */
  n = mk_dump(d, "\x01\x02\x01k\x01v\x00\x02", 8);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* reserved space byte 0x02 */
  n = mk_dump(d, "\x01\x02\x02k\x01v\x00\x01", 8);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* empty relative key */
  n = mk_dump(d, "\x01\x00\x01v\x00\x01", 6);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* unsorted and duplicate keys */
  n = mk_dump(d, "\x01\x02\x01k\x01v\x01\x02\x01j\x01v\x00\x02", 14);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  n = mk_dump(d, "\x01\x02\x01k\x01v\x01\x02\x01k\x01v\x00\x02", 14);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* key length past the end, huge varint, non-minimal varint */
  n = mk_dump(d, "\x01\x7f\x01k", 4);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  n = mk_dump(d, "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  n = mk_dump(d, "\x01\x82\x00\x01k\x01v\x00\x01", 9);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* unknown tag */
  n = mk_dump(d, "\x07", 1);
  expect_bad_dump(f, d, n, LMZ_EBADMSG);
  /* empty binding, instance over the limit */
  expect_bad_dump(f, "LMZA\x01\x00\x00\x00\x00", 9, LMZ_EBADMSG);
  uint8_t big[1100] = "LMZA\x01\x01"
                      "B\x81\x08";
  expect_bad_dump(f, big, sizeof big, LMZ_EBADMSG); /* instance len 1025 */
  expect_bad_dump(f, NULL, 0, LMZ_EBADMSG);
  const char *bn, *in;
  size_t bl, il;
  assert_int_equal(lmz_store_dump_actor("LMZ", 3, &bn, &bl, &in, &il),
                   LMZ_EBADMSG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(open_errors, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(put_get_delete, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(delete_range, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(scans, fx_setup, fx_teardown),
      cmocka_unit_test_setup_teardown(actor_prefix_scans, fx_setup,
                                      fx_teardown),
      cmocka_unit_test(batch_limits),
      cmocka_unit_test_setup_teardown(export_import_round_trip, fx_setup,
                                      fx_teardown),
      cmocka_unit_test_setup_teardown(import_rejects_malformed, fx_setup,
                                      fx_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
