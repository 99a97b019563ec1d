/* tests/unit/core/test_utf8.c - core/utf8.h: sequence lengths, the WHATWG
 * replacement unit (maximal subpart), WTF-8 surrogates, writing. */
#include "lib/testlib.h"

#include <string.h>

#include "core/utf8.h"

static size_t seq(const char *s, size_t n, uint32_t *cp, size_t *bad) {
  return lmz__utf8_seq((const unsigned char *)s, n, cp, bad);
}

static void well_formed_sequences(void **state) {
  (void)state;
  static const struct {
    const char *s;
    size_t len;
    uint32_t cp;
  } ok[] = {
      {"a", 1, 'a'},           {"\x7f", 1, 0x7f},
      {"\xc2\x80", 2, 0x80},   {"\xdf\xbf", 2, 0x7ff},
      {"\xe0\xa0\x80", 3, 0x800}, {"\xef\xbf\xbf", 3, 0xffff},
      {"\xed\xa0\x80", 3, 0xd800}, /* WTF-8: lone surrogates are accepted */
      {"\xed\xbf\xbf", 3, 0xdfff}, {"\xf0\x90\x80\x80", 4, 0x10000},
      {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint32_t cp = 0;
    size_t bad = 0;
    assert_int_equal(seq(ok[i].s, strlen(ok[i].s), &cp, &bad), ok[i].len);
    assert_int_equal(cp, ok[i].cp);
    unsigned char out[4];
    assert_int_equal(lmz__utf8_put(out, cp), ok[i].len);
    assert_memory_equal(out, ok[i].s, ok[i].len);
  }
}

/* Ill-formed: 0, and *bad = the bytes one U+FFFD replaces (TextDecoder). */
static void ill_formed_maximal_subparts(void **state) {
  (void)state;
  static const struct {
    const char *s;
    size_t bad;
  } ko[] = {
      {"\x80", 1},         {"\xc0\xaf", 1},         {"\xc1\xbf", 1},
      {"\xf5\x80", 1},     {"\xff", 1},             {"\xc3", 1},
      {"\xe2\x82", 2},     {"\xe2\x82" "a", 2},     {"\xe0\x80\x80", 1},
      {"\xf0\x9f\x98", 3}, {"\xf0\x8f\xbf\xbf", 1}, {"\xf4\x90\x80\x80", 1},
      {"\xf0\x9f" "a", 2},
  };
  for (size_t i = 0; i < sizeof ko / sizeof ko[0]; i++) {
    uint32_t cp;
    size_t bad = 0;
    assert_int_equal(seq(ko[i].s, strlen(ko[i].s), &cp, &bad), 0);
    assert_int_equal(bad, ko[i].bad);
  }
}

static void wtf8_wellformedness(void **state) {
  (void)state;
  assert_true(lmz__wtf8_is_wellformed("", 0));
  assert_true(lmz__wtf8_is_wellformed("plain ascii, longer than 8", 26));
  assert_true(lmz__wtf8_is_wellformed("\xed\xa0\x80x\xed\xb0\x80", 7));
  assert_true(lmz__wtf8_is_wellformed("\xed\xb0\x80\xed\xa0\x80", 6)); /* lo hi */
  assert_false(lmz__wtf8_is_wellformed("\xed\xa0\x80\xed\xb0\x80", 6)); /* pair */
  assert_false(lmz__wtf8_is_wellformed("abcdefgh\xff", 9));
  assert_false(lmz__wtf8_is_wellformed("\xe2\x82", 2));
  assert_int_equal(lmz__utf16_join(0xd83d, 0xde00), 0x1f600);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(well_formed_sequences),
      cmocka_unit_test(ill_formed_maximal_subparts),
      cmocka_unit_test(wtf8_wellformedness),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
