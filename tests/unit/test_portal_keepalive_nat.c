/* ctest: labels=unit */
/*
 * Keep-alive against NAT mapping timeouts: options under which an idle
 * connection would outlive a 30 s UDP mapping (keep-alive off or >= 25 s,
 * with an idle timeout above 30 s) are accepted but warned about, once per
 * process, with a message that explains NAT mapping timeouts; the defaults
 * and safe settings are not. (That the defaults keep a 30 s mapping alive
 * is shown in the NAT lab: tests/lab/test_resilience.sh, soak.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "quic_portal.h"
#include "tu.h"

static int warnings;
static char last[1024];

static void collect(qp_log_level level, const char *message, void *user) {
  (void)user;
  if (level != QP_LOG_LEVEL_WARN)
    return;
  warnings++;
  snprintf(last, sizeof(last), "%s", message);
}

static void check(double idle, double keep_alive) {
  qp_transport_options o;
  qp_transport_options_init(&o);
  o.max_idle_timeout_secs = idle;
  o.keep_alive_interval_secs = keep_alive;
  TU_QP_OK(qp_transport_options_check(&o));
}

static void nat_unsafe_keep_alive_is_warned_about_once(void **state) {
  (void)state;
  qp_log_set_handler(collect, NULL);
  qp_log_set_level(QP_LOG_LEVEL_WARN);
  check(10, 2);    /* the defaults */
  check(30, 0);    /* no keep-alive, but the idle timeout ends it first */
  check(120, 24);  /* a keep-alive every 24 s refreshes a 30 s mapping */
  check(3600, 10);
  assert_int_equal(warnings, 0);

  check(60, 0);    /* off, and the connection outlives the mapping */
  assert_int_equal(warnings, 1);
  assert_true(tu_contains(last, "keep_alive_interval_secs=0 (off)"));
  assert_true(tu_contains(last, "max_idle_timeout_secs=60"));
  assert_true(tu_contains(last, "NATs commonly forget a UDP mapping after 30 s"));
  assert_true(tu_contains(last, "below 25 s"));

  check(60, 25);   /* as unsafe, but logged once per process */
  assert_int_equal(warnings, 1);
  qp_log_set_handler(NULL, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(nat_unsafe_keep_alive_is_warned_about_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
