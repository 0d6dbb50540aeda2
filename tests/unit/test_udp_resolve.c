/* ctest: labels=unit */
/* The one bounded, cancellable resolver: names resolve within a deadline,
 * literals pass through without a lookup, a bad entry or a name that does
 * not resolve costs that entry only, and a cancel ends the wait at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "stun/stun_msg.h"
#include "tu.h"
#include "udp/udp_resolve.h"

static void names_literals_and_failures(void **state) {
  (void)state;
  const char *names[] = {"localhost:3479", "127.0.0.1:1", "no-such-host.invalid:3478",
                         "[::1]", "10.0.0.1:99999", "localhost"};
  udp_resolved_t out[UDP_RESOLVE_MAX_NAMES];
  int64_t t0 = tu_now_ms();
  size_t n = udp_resolve_names(names, 6, STUN_DEFAULT_PORT, AF_INET, 1500, NULL, NULL, out);
  int64_t elapsed = tu_now_ms() - t0;
  assert_int_equal(n, 6);
  TU_RC_EQ(out[0].rc, 0, out[0].message);
  assert_string_equal(out[0].text, "127.0.0.1:3479");
  assert_int_equal(out[1].rc, 0);
  assert_string_equal(out[1].text, "127.0.0.1:1"); /* a literal, as given */
  assert_int_equal(out[2].rc, QP_ERR_RESOLVE);
  assert_string_equal(out[2].text, "no-such-host.invalid:3478"); /* left for STUN to report */
  TU_ASSERT_CONTAINS(out[2].message, "no-such-host.invalid");
  assert_int_equal(out[3].rc, 0);
  assert_int_equal(udp_addr_port(&out[3].addr), STUN_DEFAULT_PORT);
  assert_int_equal(out[4].rc, QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(out[4].message, "port");
  TU_RC_EQ(out[5].rc, 0, out[5].message);
  assert_string_equal(out[5].text, "127.0.0.1:3478"); /* default port */
  assert_true(elapsed < 2000);
}

static bool always(void *user) {
  (void)user;
  return true;
}

static void cancel_ends_the_wait(void **state) {
  (void)state;
  const char *names[] = {"no-such-host.invalid:3478"};
  udp_resolved_t out[1];
  int64_t t0 = tu_now_ms();
  udp_resolve_names(names, 1, STUN_DEFAULT_PORT, AF_INET, 5000, always, NULL, out);
  assert_true(tu_now_ms() - t0 < 200);
  /* Either the lookup failed already or the wait was cancelled. */
  assert_true(out[0].rc == QP_ERR_INTERRUPTED || out[0].rc == QP_ERR_RESOLVE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(names_literals_and_failures),
      cmocka_unit_test(cancel_ends_the_wait),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
