/* ctest: labels=unit */
/* STUN server names resolve within a deadline, literals pass through, and a
 * cancel ends the wait at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "portal/resolve.h"
#include "tu.h"

static void names_literals_and_failures(void **state) {
  (void)state;
  const char *names[] = {"localhost:3479", "127.0.0.1:1", "no-such-host.invalid:3478"};
  char out[RESOLVE_MAX_NAMES][RESOLVE_NAME_MAX];
  int64_t t0 = tu_now_ms();
  size_t n = resolve_stun_names(names, 3, 1500, NULL, NULL, out);
  int64_t elapsed = tu_now_ms() - t0;
  assert_int_equal(n, 3);
  assert_string_equal(out[0], "127.0.0.1:3479");
  assert_string_equal(out[1], "127.0.0.1:1");
  assert_string_equal(out[2], "no-such-host.invalid:3478"); /* left for STUN to report */
  assert_true(elapsed < 2000);
}

static bool always(void *user) {
  (void)user;
  return true;
}

static void cancel_ends_the_wait(void **state) {
  (void)state;
  const char *names[] = {"no-such-host.invalid:3478"};
  char out[RESOLVE_MAX_NAMES][RESOLVE_NAME_MAX];
  int64_t t0 = tu_now_ms();
  resolve_stun_names(names, 1, 5000, always, NULL, out);
  assert_true(tu_now_ms() - t0 < 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_literals_and_failures),
      cmocka_unit_test(cancel_ends_the_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
