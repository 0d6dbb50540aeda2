/* ctest: labels=unit */
/* The one constant-time compare (src/common/secret.c): equal and unequal
 * values, a difference in the first or the last byte, and length 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "common/secret.h"

static void equal_and_different(void **state) {
  (void)state;
  uint8_t a[32], b[32];
  for (size_t i = 0; i < sizeof(a); i++)
    a[i] = b[i] = (uint8_t)(i * 7);
  assert_true(secret_equal(a, b, sizeof(a)));
  b[0] ^= 1;
  assert_false(secret_equal(a, b, sizeof(a)));
  b[0] ^= 1;
  b[31] ^= 0x80;
  assert_false(secret_equal(a, b, sizeof(a)));
  assert_true(secret_equal(a, b, 31)); /* only the last byte differs */
  assert_true(secret_equal(a, b, 0));
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(equal_and_different)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
