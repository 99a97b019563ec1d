/* Unit tests of the value model: arena, construction and inspection of every
 * type, keyed containers (objects, maps, sets), equality and copy. */
#include "lib/testlib.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/value_int.h"
#include "lib/gen_value.h"

static int setup(void **state) {
  *state = lmz_arena_new();
  return *state ? 0 : -1;
}

static int teardown(void **state) {
  lmz_arena_free(*state);
  return 0;
}

#define A ((lmz_arena *)*state)

/* ---- arena ----------------------------------------------------------------------- */

static void arena_alignment_accounting_reset(void **state) {
  lmz_arena *a = A;
  assert_int_equal(lmz_arena_used(a), 0);
  size_t sizes[] = {1, 3, 8, 9, 17, 0, 100};
  size_t total = 0;
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(sizes); i++) {
    char *p = lmz_arena_alloc(a, sizes[i]);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 8, 0);
    memset(p, 0xab, sizes[i]);
    total += (sizes[i] + 7) / 8 * 8;
  }
  assert_int_equal(lmz_arena_used(a), total);
  /* big allocations get their own chunk and stay usable */
  char *big = lmz_arena_alloc(a, 300000);
  assert_non_null(big);
  memset(big, 1, 300000);
  for (int i = 0; i < 5000; i++) /* many chunks */
    assert_non_null(lmz_arena_alloc(a, 200));
  assert_int_equal(lmz_arena_used(a), total + 300000 + 5000 * 200);
  char *s = lmz_arena_strndup(a, "hello", 3);
  assert_string_equal(s, "hel");
  lmz_arena_reset(a);
  assert_int_equal(lmz_arena_used(a), 0);
  for (int round = 0; round < 3; round++) { /* reuses the spare chunk */
    for (int i = 0; i < 3000; i++)
      memset(lmz_arena_alloc(a, 100), 2, 100);
    assert_int_equal(lmz_arena_used(a), 3000 * 104);
    lmz_arena_reset(a);
  }
  assert_null(lmz_arena_alloc(a, SIZE_MAX - 3)); /* overflow, no crash */
  lmz_arena_free(NULL);
}

static void arena_limit(void **state) {
  lmz_arena *a = A;
  assert_non_null(lmz_arena_alloc(a, 16));
  lmz_arena_set_limit(a, 40);
  assert_int_equal(lmz__arena_limit(a), 40);
  assert_non_null(lmz_arena_alloc(a, 20)); /* 16 + 24 = 40 */
  assert_null(lmz_arena_alloc(a, 1));
  assert_int_equal(lmz_arena_used(a), 40);
  /* constructors and setters fail cleanly at the cap */
  assert_null(lmz_number(a, 1));
  lmz_arena_set_limit(a, 0);
  lmz_value *o = lmz_object(a);
  assert_int_equal(lmz_object_setc(o, "a", lmz_null()), 0);
  lmz_arena_set_limit(a, lmz_arena_used(a));
  /* Not one more byte: every new key fails, whether or not the props array
   * has room (the key copy needs arena bytes too), and the object keeps
   * exactly its one property. */
  for (int i = 0; i < 8; i++) {
    char k[8];
    snprintf(k, sizeof k, "k%d", i);
    assert_int_equal(lmz_object_setc(o, k, lmz_null()), LMZ_ENOMEM);
    assert_int_equal(lmz_len(o), 1);
  }
  assert_int_equal(lmz_object_setc(o, "a", lmz_bool(true)), 0); /* in place */
  assert_ptr_equal(lmz_object_getc(o, "a"), lmz_bool(true));
  assert_int_equal(lmz_object_setc(o, "a", lmz_null()), 0);
  assert_int_equal(lmz_object_setc(o, "zz", lmz_null()), LMZ_ENOMEM);
  assert_ptr_equal(lmz_object_getc(o, "a"), lmz_null());
  assert_null(lmz_object_getc(o, "zz"));
  lmz_arena_set_limit(a, 0);
  assert_non_null(lmz_arena_alloc(a, 1 << 20));
}

/* ---- primitives --------------------------------------------------------------------- */

static void singletons_are_static(void **state) {
  (void)state;
  lmz_value *s[] = {lmz_undefined(), lmz_null(), lmz_bool(true),
                    lmz_bool(false), lmz_hole()};
  lmz_type t[] = {LMZ_T_UNDEFINED, LMZ_T_NULL, LMZ_T_BOOL, LMZ_T_BOOL,
                  LMZ_T_HOLE};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(s); i++) {
    assert_int_equal(lmz_typeof(s[i]), t[i]);
    assert_true(s[i]->flags & LMZ__V_STATIC);
    assert_null(s[i]->arena);
  }
  assert_ptr_equal(lmz_null(), lmz_null());
  assert_ptr_equal(lmz_bool(true), lmz_bool(1));
  assert_true(lmz_get_bool(lmz_bool(true)));
  assert_false(lmz_get_bool(lmz_bool(false)));
  assert_false(lmz_get_bool(lmz_null()));
  assert_int_equal(lmz_get_number(lmz__small_int(63)), 63);
  assert_null(lmz__small_int(64));
  assert_false(lmz_type_has_identity(LMZ_T_HOLE));
  assert_true(lmz_type_has_identity(LMZ_T_DATE));
  assert_string_equal(lmz_type_name(LMZ_T_MAP), "Map");
  assert_string_equal(lmz_type_name(LMZ_T_BOOL), "boolean");
  assert_string_equal(lmz_type_name((lmz_type)99), "invalid");
}

static void numbers(void **state) {
  lmz_value *z = lmz_number(A, -0.0), *n = lmz_number(A, NAN),
            *i = lmz_number(A, -INFINITY);
  assert_int_equal(lmz_typeof(z), LMZ_T_NUMBER);
  assert_true(signbit(lmz_get_number(z)));
  assert_true(isnan(lmz_get_number(n)));
  assert_true(isinf(lmz_get_number(i)) && lmz_get_number(i) < 0);
  assert_ptr_equal(z->arena, A);
  assert_null(lmz_number(NULL, 1));
}

static void bigint_normalizes_and_rejects(void **state) {
  static const struct {
    const char *in, *out;
  } ok[] = {{"0", "0"},       {"-0", "0"},   {"-000", "0"}, {"007", "7"},
            {"-0012", "-12"}, {"-12", "-12"},
            {"123456789012345678901234567890", "123456789012345678901234567890"}};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(ok); i++) {
    lmz_value *b = lmz_bigint(A, ok[i].in, strlen(ok[i].in));
    assert_non_null(b);
    assert_int_equal(lmz_typeof(b), LMZ_T_BIGINT);
    size_t len;
    assert_string_equal(lmz_get_str(b, &len), ok[i].out);
    assert_int_equal(len, strlen(ok[i].out));
  }
  static const char *const bad[] = {"", "-", "+1", "1.5", "12a", " 1", "--1",
                                    "1 ", "0x10", "1e3"};
  for (size_t i = 0; i < LMZ_ARRAY_SIZE(bad); i++)
    assert_null(lmz_bigint(A, bad[i], strlen(bad[i])));
  assert_null(lmz_bigint(A, NULL, 0));
}

static void strings(void **state) {
  lmz_value *s = lmz_string(A, "a\0b", 3);
  size_t len = 99;
  const char *p = lmz_get_str(s, &len);
  assert_int_equal(len, 3);
  assert_memory_equal(p, "a\0b", 4); /* NUL-terminated too */
  lmz_value *c = lmz_cstring(A, "\xed\xa0\x80"); /* WTF-8 lone surrogate */
  assert_string_equal(lmz_get_str(c, NULL), "\xed\xa0\x80");
  assert_null(lmz_cstring(A, NULL));
  assert_null(lmz_get_str(lmz_null(), &len));
  assert_int_equal(len, 0);
  assert_int_equal(lmz_len(s), 0); /* strings have no count */
  lmz_value *e = lmz_string(A, NULL, 0);
  assert_string_equal(lmz_get_str(e, &len), "");
}

/* ---- leaf objects -------------------------------------------------------------------- */

static void date_regexp_url(void **state) {
  lmz_value *d = lmz_date(A, 1.5e12), *bad = lmz_date(A, NAN);
  assert_int_equal(lmz_typeof(d), LMZ_T_DATE);
  assert_true(lmz_get_number(d) == 1.5e12);
  assert_true(isnan(lmz_get_number(bad)));
  lmz_value *re = lmz_regexp(A, "a+b", 3, "gi", 2);
  size_t len;
  assert_string_equal(lmz_get_str(re, &len), "a+b");
  assert_int_equal(len, 3);
  assert_string_equal(lmz_regexp_flags(re, &len), "gi");
  assert_int_equal(len, 2);
  assert_null(lmz_regexp_flags(d, &len));
  lmz_value *u = lmz_url(A, "https://x.test/a?b#c", 20);
  assert_int_equal(lmz_typeof(u), LMZ_T_URL);
  assert_string_equal(lmz_get_str(u, NULL), "https://x.test/a?b#c");
}

static void headers(void **state) {
  lmz_value *h = lmz_headers(A);
  assert_int_equal(lmz_headers_append(h, "Content-Type", 12, "text/plain", 10), 0);
  assert_int_equal(lmz_headers_append(h, "set-cookie", 10, "a=1", 3), 0);
  assert_int_equal(lmz_headers_append(h, "set-cookie", 10, "b=2", 3), 0);
  assert_int_equal(lmz_len(h), 3);
  size_t len;
  assert_string_equal(lmz_headers_name(h, 0, &len), "Content-Type");
  assert_int_equal(len, 12);
  assert_string_equal(lmz_headers_value(h, 2, &len), "b=2");
  assert_null(lmz_headers_name(h, 3, &len));
  assert_int_equal(lmz_headers_append(lmz_object(A), "a", 1, "b", 1),
                   LMZ_EINVAL);
}

static void arraybuffer_and_views(void **state) {
  lmz_value *ab = lmz_arraybuffer(A, NULL, 16);
  assert_int_equal(lmz_len(ab), 16);
  for (int i = 0; i < 16; i++)
    assert_int_equal(lmz_arraybuffer_data(ab)[i], 0);
  lmz_value *f = lmz_view(A, LMZ_VIEW_FLOAT64, ab, 8, 1);
  assert_non_null(f);
  assert_int_equal(lmz_len(f), 1);
  assert_int_equal(lmz_view_byte_length(f), 8);
  assert_int_equal(lmz_view_byte_offset(f), 8);
  assert_ptr_equal(lmz_view_buffer(f), ab);
  assert_int_equal(lmz_view_get_kind(f), LMZ_VIEW_FLOAT64);
  assert_null(lmz_view(A, LMZ_VIEW_FLOAT64, ab, 4, 1));  /* misaligned */
  assert_null(lmz_view(A, LMZ_VIEW_FLOAT64, ab, 8, 2));  /* past the end */
  assert_null(lmz_view(A, LMZ_VIEW_UINT8, ab, 17, 0));   /* offset past end */
  assert_null(lmz_view(A, LMZ_VIEW_INT32, ab, 0, SIZE_MAX)); /* overflow */
  assert_non_null(lmz_view(A, LMZ_VIEW_UINT8, ab, 16, 0)); /* empty at end */
  assert_non_null(lmz_view(A, LMZ_VIEW_DATAVIEW, ab, 3, 13));
  assert_null(lmz_view(A, LMZ_VIEW_DATAVIEW, ab, 3, 14));
  assert_null(lmz_view(A, LMZ_VIEW__COUNT, ab, 0, 0));
  assert_null(lmz_view(A, LMZ_VIEW_UINT8, f, 0, 0)); /* not a buffer */
  lmz_value *bi = lmz_view(A, LMZ_VIEW_BIGINT64, ab, 0, 2);
  assert_int_equal(lmz_view_byte_length(bi), 16);
  /* views see writes to the buffer */
  lmz_arraybuffer_data(ab)[8] = 7;
  assert_int_equal(lmz_arraybuffer_data(lmz_view_buffer(f))[8], 7);
  uint8_t bytes[3] = {1, 2, 3};
  assert_memory_equal(lmz_arraybuffer_data(lmz_arraybuffer(A, bytes, 3)),
                      bytes, 3);
  /* names and sizes */
  static const size_t sizes[] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8, 1};
  for (int k = 0; k < LMZ_VIEW__COUNT; k++) {
    const char *nm = lmz_view_kind_name((lmz_view_kind)k);
    assert_int_equal(lmz_view_kind_from_name(nm, strlen(nm)), k);
    assert_int_equal(lmz_view_elem_size((lmz_view_kind)k), sizes[k]);
  }
  assert_string_equal(lmz_view_kind_name(LMZ_VIEW_UINT8_CLAMPED),
                      "Uint8ClampedArray");
  assert_string_equal(lmz_view_kind_name(LMZ_VIEW_DATAVIEW), "DataView");
  assert_int_equal(lmz_view_kind_from_name("Float32Arra", 11), -1);
}

static void boxed(void **state) {
  lmz_value *b = lmz_boxed(A, lmz_bool(true));
  assert_int_equal(lmz_boxed_get_kind(b), LMZ_BOXED_BOOLEAN);
  assert_true(lmz_get_bool(b));
  lmz_value *n = lmz_boxed(A, lmz_number(A, 2.5));
  assert_int_equal(lmz_boxed_get_kind(n), LMZ_BOXED_NUMBER);
  assert_true(lmz_get_number(n) == 2.5);
  lmz_value *s = lmz_boxed(A, lmz_cstring(A, "x"));
  assert_int_equal(lmz_boxed_get_kind(s), LMZ_BOXED_STRING);
  assert_string_equal(lmz_get_str(s, NULL), "x");
  lmz_value *g = lmz_boxed(A, lmz_bigint(A, "-5", 2));
  assert_int_equal(lmz_boxed_get_kind(g), LMZ_BOXED_BIGINT);
  assert_string_equal(lmz_get_str(g, NULL), "-5");
  assert_int_equal(lmz_typeof(lmz_boxed_value(g)), LMZ_T_BIGINT);
  assert_null(lmz_boxed(A, lmz_null()));
  assert_null(lmz_boxed(A, lmz_object(A)));
  assert_null(lmz_boxed(A, NULL));
}

/* ---- arrays and objects ------------------------------------------------------------------ */

static void arrays_and_holes(void **state) {
  lmz_value *arr = lmz_array(A, 0);
  assert_int_equal(lmz_array_push(arr, lmz_number(A, 1)), 0);
  assert_int_equal(lmz_array_set(arr, 4, lmz_null()), 0);
  assert_int_equal(lmz_len(arr), 5);
  for (int i = 1; i < 4; i++)
    assert_ptr_equal(lmz_array_get(arr, (size_t)i), lmz_hole());
  assert_ptr_equal(lmz_array_get(arr, 4), lmz_null());
  assert_null(lmz_array_get(arr, 5));
  assert_int_equal(lmz_array_set(arr, 2, lmz_bool(true)), 0);
  assert_ptr_equal(lmz_array_get(arr, 2), lmz_bool(true));
  assert_int_equal(lmz_array_push(arr, lmz_hole()), 0); /* trailing hole */
  assert_int_equal(lmz_len(arr), 6);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(lmz_array_push(arr, lmz_undefined()), 0);
  assert_int_equal(lmz_len(arr), 1006);
  assert_int_equal(lmz_array_push(lmz_object(A), lmz_null()), LMZ_EINVAL);
  assert_int_equal(lmz_array_push(arr, NULL), LMZ_EINVAL);
  /* holes live only in arrays */
  lmz_value *o = lmz_object(A), *m = lmz_map(A), *s = lmz_set(A);
  assert_int_equal(lmz_object_setc(o, "h", lmz_hole()), LMZ_EINVAL);
  assert_int_equal(lmz_map_set(m, lmz_hole(), lmz_null()), LMZ_EINVAL);
  assert_int_equal(lmz_map_set(m, lmz_null(), lmz_hole()), LMZ_EINVAL);
  assert_int_equal(lmz_set_add(s, lmz_hole()), LMZ_EINVAL);
  lmz_value *hinted = lmz_array(A, 100);
  assert_true(hinted->cap >= 100);
  assert_int_equal(lmz_len(hinted), 0);
}

static void object_replace_keeps_position(void **state) {
  lmz_value *o = lmz_object(A);
  assert_int_equal(lmz_object_setc(o, "a", lmz_number(A, 1)), 0);
  assert_int_equal(lmz_object_setc(o, "b", lmz_number(A, 2)), 0);
  assert_int_equal(lmz_object_setc(o, "c", lmz_number(A, 3)), 0);
  assert_int_equal(lmz_object_setc(o, "b", lmz_cstring(A, "B")), 0);
  assert_int_equal(lmz_len(o), 3);
  size_t kl;
  assert_string_equal(lmz_object_key(o, 0, &kl), "a");
  assert_string_equal(lmz_object_key(o, 1, &kl), "b");
  assert_string_equal(lmz_object_key(o, 2, &kl), "c");
  assert_string_equal(lmz_get_str(lmz_object_val(o, 1), NULL), "B");
  assert_string_equal(lmz_get_str(lmz_object_getc(o, "b"), NULL), "B");
  assert_null(lmz_object_getc(o, "d"));
  assert_null(lmz_object_key(o, 3, &kl));
  assert_int_equal(kl, 0);
  /* keys are byte strings: embedded NUL and the empty key */
  assert_int_equal(lmz_object_set(o, "x\0y", 3, lmz_null()), 0);
  assert_int_equal(lmz_object_set(o, "x", 1, lmz_undefined()), 0);
  assert_int_equal(lmz_object_set(o, "", 0, lmz_bool(false)), 0);
  assert_ptr_equal(lmz_object_get(o, "x\0y", 3), lmz_null());
  assert_ptr_equal(lmz_object_get(o, "x", 1), lmz_undefined());
  assert_ptr_equal(lmz_object_get(o, "", 0), lmz_bool(false));
  assert_int_equal(lmz_len(o), 6);
  assert_int_equal(lmz_object_setc(lmz_array(A, 0), "a", lmz_null()),
                   LMZ_EINVAL);
}

static void big_object_is_indexed(void **state) {
  enum { N = 20000 };
  lmz_value *o = lmz_object(A);
  char k[32];
  for (int i = 0; i < N; i++) {
    int kn = snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(lmz_object_set(o, k, (size_t)kn, lmz_number(A, i)), 0);
  }
  for (int i = 0; i < N; i += 2) { /* replace every other, in place */
    int kn = snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(lmz_object_set(o, k, (size_t)kn, lmz_number(A, -i)), 0);
  }
  assert_int_equal(lmz_len(o), N);
  for (int i = 0; i < N; i++) {
    int kn = snprintf(k, sizeof k, "key%d", i);
    size_t kl;
    assert_string_equal(lmz_object_key(o, (size_t)i, &kl), k);
    assert_int_equal(kl, (size_t)kn);
    double want = i % 2 ? i : -i;
    assert_true(lmz_get_number(lmz_object_get(o, k, (size_t)kn)) == want);
  }
  assert_null(lmz_object_getc(o, "key20000"));
  /* entries appended behind the index's back are found too */
  assert_int_equal(lmz__object_add(o, "late", 4, lmz_null()), 0);
  assert_int_equal(lmz__object_add(o, "late", 4, lmz_null()), LMZ_EEXIST);
  assert_int_equal(lmz__object_add(o, "key7", 4, lmz_null()), LMZ_EEXIST);
  assert_ptr_equal(lmz_object_getc(o, "late"), lmz_null());
}

static void errors(void **state) {
  lmz_value *e = lmz_error(A, "TypeError", "bad thing");
  assert_int_equal(lmz_typeof(e), LMZ_T_ERROR);
  assert_string_equal(lmz_error_name(e), "TypeError");
  assert_string_equal(lmz_error_message(e), "bad thing");
  assert_null(lmz_error_stack(e));
  assert_null(lmz_error_cause(e));
  assert_int_equal(lmz_error_set_stack(e, "TypeError: bad\n at x", 20), 0);
  assert_string_equal(lmz_error_stack(e), "TypeError: bad\n at x");
  assert_int_equal(lmz_error_set_cause(e, e), 0); /* a cycle is fine */
  assert_ptr_equal(lmz_error_cause(e), e);
  assert_int_equal(lmz_error_set_prop(e, "code", 4, lmz_number(A, 42)), 0);
  assert_int_equal(lmz_error_set_prop(e, "errno", 5, lmz_number(A, 1)), 0);
  assert_int_equal(lmz_error_set_prop(e, "code", 4, lmz_cstring(A, "E")), 0);
  assert_int_equal(lmz_len(e), 2);
  assert_string_equal(lmz_get_str(lmz_error_prop(e, "code"), NULL), "E");
  assert_string_equal(lmz_object_key(e, 0, NULL), "code");
  assert_null(lmz_error_prop(e, "nope"));
  assert_int_equal(lmz_error_set_cause(e, NULL), 0);
  assert_null(lmz_error_cause(e));
  assert_int_equal(lmz_error_set_stack(e, NULL, 0), 0);
  assert_null(lmz_error_stack(e));
  assert_int_equal(lmz_error_set_cause(e, lmz_hole()), LMZ_EINVAL);
  assert_int_equal(lmz_error_set_prop(lmz_object(A), "a", 1, lmz_null()),
                   LMZ_EINVAL);
  lmz_value *d = lmz_error(A, NULL, NULL);
  assert_string_equal(lmz_error_name(d), "Error");
  assert_string_equal(lmz_error_message(d), "");
  lmz_value *n = lmz_error_n(A, "E\0x", 3, "m", 1);
  size_t len;
  assert_string_equal(lmz_get_str(n->u.err.name, &len), "E");
  assert_int_equal(len, 3);
  assert_null(lmz_error_name(lmz_null()));
}

/* ---- maps and sets ----------------------------------------------------------------------- */

static void map_same_value_zero(void **state) {
  lmz_arena *a = A;
  lmz_value *m = lmz_map(a);
  assert_int_equal(lmz_map_set(m, lmz_number(a, NAN), lmz_cstring(a, "nan")), 0);
  assert_int_equal(lmz_map_set(m, lmz_number(a, -NAN), lmz_cstring(a, "nan2")), 0);
  assert_int_equal(lmz_len(m), 1); /* NaN is one key */
  assert_string_equal(lmz_get_str(lmz_map_val(m, 0), NULL), "nan2");
  assert_int_equal(lmz_map_set(m, lmz_number(a, -0.0), lmz_cstring(a, "zero")), 0);
  assert_false(signbit(lmz_get_number(lmz_map_key(m, 1)))); /* -0 stored as +0 */
  assert_string_equal(lmz_get_str(lmz_map_get(m, lmz_number(a, 0.0)), NULL),
                      "zero");
  assert_string_equal(lmz_get_str(lmz_map_get(m, lmz_number(a, -0.0)), NULL),
                      "zero");
  assert_int_equal(lmz_map_set(m, lmz_cstring(a, "k"), lmz_number(a, 1)), 0);
  assert_int_equal(lmz_map_set(m, lmz_cstring(a, "k"), lmz_number(a, 2)), 0);
  assert_int_equal(lmz_map_set(m, lmz_bigint(a, "1", 1), lmz_number(a, 3)), 0);
  assert_int_equal(lmz_map_set(m, lmz_number(a, 1), lmz_number(a, 4)), 0);
  assert_int_equal(lmz_map_set(m, lmz_bigint(a, "01", 2), lmz_number(a, 5)), 0);
  lmz_value *o1 = lmz_object(a), *o2 = lmz_object(a);
  assert_int_equal(lmz_map_set(m, o1, lmz_number(a, 6)), 0);
  assert_int_equal(lmz_map_set(m, o2, lmz_number(a, 7)), 0);
  assert_int_equal(lmz_map_set(m, lmz_null(), lmz_number(a, 8)), 0);
  assert_int_equal(lmz_map_set(m, lmz_undefined(), lmz_number(a, 9)), 0);
  assert_int_equal(lmz_map_set(m, lmz_bool(false), lmz_number(a, 10)), 0);
  assert_int_equal(lmz_map_set(m, lmz_cstring(a, "1"), lmz_number(a, 11)), 0);
  /* keys: NaN, 0, "k", 1n, 1, o1, o2, null, undefined, false, "1" */
  assert_int_equal(lmz_len(m), 11);
  assert_true(lmz_get_number(lmz_map_val(m, 2)) == 2); /* "k" kept position */
  assert_true(lmz_get_number(lmz_map_val(m, 3)) == 5); /* 1n == 01n */
  assert_true(lmz_get_number(lmz_map_get(m, o1)) == 6);
  assert_true(lmz_get_number(lmz_map_get(m, o2)) == 7);
  assert_null(lmz_map_get(m, lmz_object(a))); /* identity, not content */
  assert_true(lmz_get_number(lmz_map_get(m, lmz_number(a, 1))) == 4);
  assert_true(lmz_get_number(lmz_map_get(m, lmz_cstring(a, "1"))) == 11);
  assert_null(lmz_map_get(m, lmz_bool(true)));
  assert_null(lmz_map_key(m, 11));
  assert_int_equal(lmz__map_add(m, lmz_cstring(a, "k"), lmz_null()), LMZ_EEXIST);
}

static void big_map_and_set(void **state) {
  lmz_arena *a = A;
  enum { N = 5000 };
  lmz_value *m = lmz_map(a), *s = lmz_set(a), *objs[64];
  for (int i = 0; i < 64; i++)
    objs[i] = lmz_object(a);
  char k[32];
  for (int i = 0; i < N; i++) {
    int kn = snprintf(k, sizeof k, "s%d", i);
    assert_int_equal(lmz_map_set(m, lmz_number(a, i), lmz_number(a, i)), 0);
    assert_int_equal(lmz_map_set(m, lmz_string(a, k, (size_t)kn), lmz_null()), 0);
    assert_int_equal(lmz_set_add(s, lmz_number(a, i % 1000)), 0);
    assert_int_equal(lmz_set_add(s, objs[i % 64]), 0);
  }
  assert_int_equal(lmz_len(m), 2 * N);
  assert_int_equal(lmz_len(s), 1000 + 64);
  for (int i = 0; i < N; i++) {
    assert_true(lmz_get_number(lmz_map_get(m, lmz_number(a, i))) == i);
    int kn = snprintf(k, sizeof k, "s%d", i);
    assert_ptr_equal(lmz_map_get(m, lmz_string(a, k, (size_t)kn)), lmz_null());
  }
  assert_true(lmz_set_has(s, lmz_number(a, 999)));
  assert_true(lmz_set_has(s, lmz_number(a, -0.0)));
  assert_false(lmz_set_has(s, lmz_number(a, 1000)));
  assert_true(lmz_set_has(s, objs[63]));
  assert_false(lmz_set_has(s, lmz_object(a)));
  assert_ptr_equal(lmz_set_item(s, 1), objs[0]);
  assert_int_equal(lmz__set_add_new(s, objs[5]), LMZ_EEXIST);
  assert_int_equal(lmz_set_add(s, lmz_number(a, NAN)), 0);
  assert_int_equal(lmz_set_add(s, lmz_number(a, NAN)), 0);
  assert_int_equal(lmz_len(s), 1065);
}

/* ---- equality ---------------------------------------------------------------------------- */

static lmz_value *pair_of(lmz_arena *a, lmz_value *x, lmz_value *y) {
  lmz_value *arr = lmz_array(a, 2);
  lmz_array_push(arr, x);
  lmz_array_push(arr, y);
  return arr;
}

static void equal_positive(void **state) {
  lmz_arena *a = A;
  assert_true(lmz_value_equal(lmz_number(a, NAN), lmz_number(a, -NAN)));
  assert_true(lmz_value_equal(lmz_cstring(a, "x"), lmz_cstring(a, "x")));
  assert_true(lmz_value_equal(lmz_date(a, NAN), lmz_date(a, NAN)));
  /* cycles: a = [a], b = [b] */
  lmz_value *x = lmz_array(a, 0), *y = lmz_array(a, 0);
  lmz_array_push(x, x);
  lmz_array_push(y, y);
  assert_true(lmz_value_equal(x, y));
  /* shared primitives mean nothing */
  lmz_value *s = lmz_cstring(a, "s");
  assert_true(lmz_value_equal(pair_of(a, s, s),
                              pair_of(a, lmz_cstring(a, "s"), lmz_cstring(a, "s"))));
  /* same sharing pattern with different nodes */
  lmz_value *o1 = lmz_object(a), *o2 = lmz_object(a);
  assert_true(lmz_value_equal(pair_of(a, o1, o1), pair_of(a, o2, o2)));
  assert_true(lmz_value_equal(NULL, NULL));
  /* every generated graph equals itself and its copy */
  struct gen_opts o;
  gen_opts_default(&o);
  for (uint64_t i = 0; i < 300; i++) {
    uint64_t seed = i;
    lmz_value *v = gen_value(a, &seed, &o);
    assert_non_null(v);
    assert_true(lmz_value_equal(v, v));
    assert_true(lmz_value_equal(v, lmz_value_copy(a, v)));
  }
}

static void equal_negative(void **state) {
  lmz_arena *a = A;
  assert_false(lmz_value_equal(lmz_number(a, 0.0), lmz_number(a, -0.0)));
  assert_false(lmz_value_equal(lmz_number(a, 1), lmz_bigint(a, "1", 1)));
  assert_false(lmz_value_equal(lmz_cstring(a, "a"), lmz_cstring(a, "b")));
  assert_false(lmz_value_equal(lmz_string(a, "a", 1), lmz_string(a, "a\0", 2)));
  assert_false(lmz_value_equal(lmz_null(), lmz_undefined()));
  assert_false(lmz_value_equal(lmz_null(), NULL));
  assert_false(lmz_value_equal(lmz_date(a, 0), lmz_date(a, -0.0)));
  /* different sharing patterns, both directions */
  lmz_value *o = lmz_object(a);
  lmz_value *shared = pair_of(a, o, o);
  lmz_value *split = pair_of(a, lmz_object(a), lmz_object(a));
  assert_false(lmz_value_equal(shared, split));
  assert_false(lmz_value_equal(split, shared));
  /* a cycle vs an unrolled copy */
  lmz_value *c = lmz_array(a, 0), *u = lmz_array(a, 0), *u2 = lmz_array(a, 0);
  lmz_array_push(c, c);
  lmz_array_push(u, u2);
  lmz_array_push(u2, u);
  assert_false(lmz_value_equal(c, u));
  /* order matters */
  lmz_value *p = lmz_object(a), *q = lmz_object(a);
  lmz_object_setc(p, "a", lmz_null());
  lmz_object_setc(p, "b", lmz_null());
  lmz_object_setc(q, "b", lmz_null());
  lmz_object_setc(q, "a", lmz_null());
  assert_false(lmz_value_equal(p, q));
  /* views: same bytes, different offset */
  lmz_value *ab = lmz_arraybuffer(a, NULL, 8);
  assert_false(lmz_value_equal(lmz_view(a, LMZ_VIEW_UINT8, ab, 0, 4),
                               lmz_view(a, LMZ_VIEW_UINT8, ab, 4, 4)));
  assert_false(lmz_value_equal(lmz_view(a, LMZ_VIEW_UINT8, ab, 0, 4),
                               lmz_view(a, LMZ_VIEW_INT8, ab, 0, 4)));
  /* errors differing only in the cause or a prop */
  lmz_value *e1 = lmz_error(a, "Error", "m"), *e2 = lmz_error(a, "Error", "m");
  assert_true(lmz_value_equal(e1, e2));
  lmz_error_set_cause(e1, lmz_null());
  assert_false(lmz_value_equal(e1, e2));
  lmz_error_set_cause(e2, lmz_null());
  lmz_error_set_prop(e2, "code", 4, lmz_null());
  assert_false(lmz_value_equal(e1, e2));
  /* a holey array is not an array of undefined */
  lmz_value *h = lmz_array(a, 0), *un = lmz_array(a, 0);
  lmz_array_push(h, lmz_hole());
  lmz_array_push(un, lmz_undefined());
  assert_false(lmz_value_equal(h, un));
  /* a mutated copy of random graphs differs */
  struct gen_opts go;
  gen_opts_default(&go);
  int tested = 0;
  for (uint64_t i = 0; i < 200; i++) {
    uint64_t seed = i;
    lmz_value *v = gen_value(a, &seed, &go);
    if (lmz_typeof(v) != LMZ_T_ARRAY || lmz_len(v) == 0)
      continue;
    lmz_value *w = lmz_value_copy(a, v);
    lmz_array_push(w->u.items[0]->type == LMZ_T_ARRAY ? w->u.items[0] : w,
                   lmz_cstring(a, "extra"));
    assert_false(lmz_value_equal(v, w));
    tested++;
  }
  assert_true(tested > 10);
}

static lmz_value *chain(lmz_arena *a, int depth, lmz_value *leaf) {
  lmz_value *v = leaf;
  for (int i = 0; i < depth; i++) {
    lmz_value *arr = lmz_array(a, 1);
    lmz_array_push(arr, v);
    v = arr;
  }
  return v;
}

/* Hash flooding: number keys whose hashes under the old, unseeded number
 * hash (mix64 of the bits, a bijection anyone can invert) all share their
 * low 12 bits, i.e. one home slot in an index of up to 4096 slots. With the
 * seeded hash the index stays short: probes are counted, not timed. */
static uint64_t old_mix64(uint64_t h) {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

static void number_keys_cannot_flood_the_index(void **state) {
  lmz_arena *a = A;
  enum { N = 1500 };
  lmz_value *m = lmz_map(a), *set = lmz_set(a);
  uint32_t n = 0;
  for (uint64_t i = 1; n < N; i++) {
    double d = (double)i;
    uint64_t bits;
    memcpy(&bits, &d, 8);
    if (((uint32_t)old_mix64(bits) & 0xfff) != 0x123)
      continue;
    lmz_value *k = lmz_number(a, d);
    assert_int_equal(lmz_map_set(m, k, lmz_null()), 0);
    assert_int_equal(lmz_set_add(set, k), 0);
    n++;
  }
  assert_int_equal(lmz_len(m), N);
  assert_null(lmz_map_get(m, lmz_number(a, 0.5)));
  assert_ptr_equal(lmz_map_get(m, lmz_map_key(m, N - 1)), lmz_null());
  assert_true(lmz_set_has(set, lmz_set_item(set, N / 2)));
  uint32_t pm = lmz__value_index_max_probe(m);
  uint32_t ps = lmz__value_index_max_probe(set);
  print_message("number keys: max probes map %u, set %u (unseeded: ~%d)\n",
                pm, ps, N);
  assert_true(pm >= 1 && pm <= 64); /* >= 1: the index exists */
  assert_true(ps >= 1 && ps <= 64);
}

/* The same for string keys of an object (the old string hash was keyed by
 * an address, which ASLR hides but one leaked pointer reveals): here we
 * only check the index of a big object stays short. */
static void string_keys_index_stays_short(void **state) {
  lmz_arena *a = A;
  lmz_value *o = lmz_object(a);
  for (int i = 0; i < 3000; i++) {
    char k[16];
    snprintf(k, sizeof k, "key%d", i);
    assert_int_equal(lmz_object_setc(o, k, lmz_null()), 0);
  }
  uint32_t p = lmz__value_index_max_probe(o);
  assert_true(p >= 1 && p <= 64);
}

static void equal_and_copy_deep_graphs(void **state) {
  lmz_arena *a = A;
  lmz_value *x = chain(a, 200000, lmz_number(a, 1));
  lmz_value *y = chain(a, 200000, lmz_number(a, 1));
  lmz_value *z = chain(a, 200000, lmz_number(a, 2));
  assert_true(lmz_value_equal(x, y));
  assert_false(lmz_value_equal(x, z));
  lmz_value *c = lmz_value_copy(a, x);
  assert_non_null(c);
  assert_true(lmz_value_equal(c, x));
}

/* ---- copy --------------------------------------------------------------------------------- */

static void copy_preserves_sharing_and_cycles(void **state) {
  lmz_arena *src = lmz_arena_new(), *dst = A;
  lmz_value *o = lmz_object(src), *root = lmz_array(src, 0);
  lmz_object_setc(o, "self", o);
  lmz_object_setc(o, "root", root);
  lmz_array_push(root, o);
  lmz_array_push(root, o);
  lmz_array_push(root, lmz_hole());
  lmz_value *ab = lmz_arraybuffer(src, "abcdefgh", 8);
  lmz_array_push(root, lmz_view(src, LMZ_VIEW_UINT16, ab, 2, 2));
  lmz_array_push(root, lmz_view(src, LMZ_VIEW_DATAVIEW, ab, 1, 3));
  lmz_value *e = lmz_error(src, "RangeError", "r");
  lmz_error_set_cause(e, e);
  lmz_error_set_prop(e, "k", 1, root);
  lmz_array_push(root, e);
  lmz_value *m = lmz_map(src);
  lmz_map_set(m, o, e);
  lmz_array_push(root, m);
  lmz_value *h = lmz_headers(src);
  lmz_headers_append(h, "a", 1, "b", 1);
  lmz_array_push(root, h);

  lmz_value *c = lmz_value_copy(dst, root);
  assert_non_null(c);
  assert_true(lmz_value_equal(root, c));
  lmz_arena_free(src); /* the copy must not point into the source arena */
  lmz_value *co = lmz_array_get(c, 0);
  assert_ptr_equal(lmz_array_get(c, 1), co);
  assert_ptr_equal(lmz_object_getc(co, "self"), co);
  assert_ptr_equal(lmz_object_getc(co, "root"), c);
  assert_ptr_equal(lmz_array_get(c, 2), lmz_hole());
  lmz_value *v1 = lmz_array_get(c, 3), *v2 = lmz_array_get(c, 4);
  assert_ptr_equal(lmz_view_buffer(v1), lmz_view_buffer(v2));
  assert_memory_equal(lmz_arraybuffer_data(lmz_view_buffer(v1)), "abcdefgh", 8);
  lmz_value *ce = lmz_array_get(c, 5);
  assert_ptr_equal(lmz_error_cause(ce), ce);
  assert_ptr_equal(lmz_error_prop(ce, "k"), c);
  assert_string_equal(lmz_error_name(ce), "RangeError");
  assert_ptr_equal(lmz_map_get(lmz_array_get(c, 6), co), ce);
  assert_string_equal(lmz_headers_value(lmz_array_get(c, 7), 0, NULL), "b");
  assert_ptr_equal(co->arena, dst);
  assert_null(lmz_value_copy(dst, NULL));
}

static void copy_random_graphs(void **state) {
  struct gen_opts o;
  gen_opts_default(&o);
  for (uint64_t i = 0; i < 300; i++) {
    lmz_arena *src = lmz_arena_new(), *dst = lmz_arena_new(),
              *ref = lmz_arena_new();
    uint64_t s1 = i * 7919, s2 = i * 7919;
    lmz_value *v = gen_value(src, &s1, &o);
    lmz_value *c = lmz_value_copy(dst, v);
    lmz_arena_free(src);
    lmz_value *again = gen_value(ref, &s2, &o); /* same seed, same graph */
    assert_true(lmz_value_equal(c, again));
    lmz_arena_free(dst);
    lmz_arena_free(ref);
  }
  (void)state;
}

static void copy_fails_cleanly_at_arena_limit(void **state) {
  uint64_t seed = 3;
  struct gen_opts o;
  gen_opts_default(&o);
  lmz_value *v = gen_value(A, &seed, &o);
  while (lmz_typeof(v) != LMZ_T_ARRAY || lmz_len(v) < 3)
    v = gen_value(A, &seed, &o);
  lmz_arena *dst = lmz_arena_new();
  lmz_arena_set_limit(dst, 200);
  assert_null(lmz_value_copy(dst, v));
  lmz_arena_free(dst);
}

static void epochs_are_never_zero(void **state) {
  (void)state;
  uint32_t prev = lmz__value_next_epoch();
  for (int i = 0; i < 1000; i++) {
    uint32_t e = lmz__value_next_epoch();
    assert_int_not_equal(e, 0);
    assert_int_not_equal(e, prev);
    prev = e;
  }
}

static void accessors_on_wrong_types(void **state) {
  lmz_value *n = lmz_number(A, 3);
  assert_int_equal(lmz_len(n), 0);
  assert_null(lmz_array_get(n, 0));
  assert_null(lmz_object_getc(n, "a"));
  assert_null(lmz_map_get(n, n));
  assert_false(lmz_set_has(n, n));
  assert_null(lmz_arraybuffer_data(n));
  assert_null(lmz_view_buffer(n));
  assert_int_equal(lmz_view_byte_length(n), 0);
  assert_null(lmz_boxed_value(n));
  assert_null(lmz_error_cause(n));
  assert_null(lmz_error_stack(n));
  assert_int_equal(lmz_typeof(NULL), LMZ_T_UNDEFINED);
  assert_true(lmz_get_number(lmz_cstring(A, "1")) == 0);
  assert_int_equal(lmz_len(lmz_arraybuffer(A, NULL, 5)), 5);
  assert_int_equal(lmz_len(lmz_map(A)), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(arena_alignment_accounting_reset, setup, teardown),
      cmocka_unit_test_setup_teardown(arena_limit, setup, teardown),
      cmocka_unit_test(singletons_are_static),
      cmocka_unit_test_setup_teardown(numbers, setup, teardown),
      cmocka_unit_test_setup_teardown(bigint_normalizes_and_rejects, setup, teardown),
      cmocka_unit_test_setup_teardown(strings, setup, teardown),
      cmocka_unit_test_setup_teardown(date_regexp_url, setup, teardown),
      cmocka_unit_test_setup_teardown(headers, setup, teardown),
      cmocka_unit_test_setup_teardown(arraybuffer_and_views, setup, teardown),
      cmocka_unit_test_setup_teardown(boxed, setup, teardown),
      cmocka_unit_test_setup_teardown(arrays_and_holes, setup, teardown),
      cmocka_unit_test_setup_teardown(object_replace_keeps_position, setup, teardown),
      cmocka_unit_test_setup_teardown(big_object_is_indexed, setup, teardown),
      cmocka_unit_test_setup_teardown(errors, setup, teardown),
      cmocka_unit_test_setup_teardown(map_same_value_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(big_map_and_set, setup, teardown),
      cmocka_unit_test_setup_teardown(number_keys_cannot_flood_the_index, setup, teardown),
      cmocka_unit_test_setup_teardown(string_keys_index_stays_short, setup, teardown),
      cmocka_unit_test_setup_teardown(equal_positive, setup, teardown),
      cmocka_unit_test_setup_teardown(equal_negative, setup, teardown),
      cmocka_unit_test_setup_teardown(equal_and_copy_deep_graphs, setup, teardown),
      cmocka_unit_test_setup_teardown(copy_preserves_sharing_and_cycles, setup, teardown),
      cmocka_unit_test(copy_random_graphs),
      cmocka_unit_test_setup_teardown(copy_fails_cleanly_at_arena_limit, setup, teardown),
      cmocka_unit_test(epochs_are_never_zero),
      cmocka_unit_test_setup_teardown(accessors_on_wrong_types, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
