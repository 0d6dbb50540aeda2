/* ctest: labels=loopback,iothread,slow timeout=200 */
/*
 * A connection with default options (idle timeout 10 s, keep-alive 2 s)
 * left idle by both applications for 60 s is still up and delivers the next
 * message both ways. Slow: labelled "slow" in test_props.cmake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "quic_portal.h"
#include "tu.h"

#define IDLE_MS 60000

static void default_connection_survives_60_s_of_silence(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, IDLE_MS + 30000);
  tu_echo_roundtrip(pair.client, 1000, 1, 5000);

  /* The silence is the behavior under test. The client waits in recv (a
   * message now would be a bug), one second at a time, checking that both
   * ends still report a connection. */
  int64_t start = tu_now_ms();
  while (tu_now_ms() - start < IDLE_MS) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(pair.client, &msg, &len, 1000);
    int64_t at = tu_now_ms() - start;
    if (rc != QP_ERR_TIMEOUT)
      fail_msg("after %lld ms of silence recv returned %s: \"%s\"",
               (long long)at, qp_err_name(rc), qp_last_error());
    if (!qp_portal_is_connected(pair.client) ||
        !qp_portal_is_connected(pair.server))
      fail_msg("after %lld ms of silence: client connected %d, server "
               "connected %d",
               (long long)at, qp_portal_is_connected(pair.client),
               qp_portal_is_connected(pair.server));
  }
  qp_portal_stats st;
  TU_QP_OK(qp_portal_get_stats(pair.client, &st));
  print_message("after %d s idle: %llu packets sent, %llu received (keep-"
                "alives)\n",
                IDLE_MS / 1000, (unsigned long long)st.packets_sent,
                (unsigned long long)st.packets_received);

  /* Both directions still deliver: client -> server -> client through the
   * echo peer, with a fresh pattern. */
  tu_echo_roundtrip(pair.client, 64 * 1024, 2, 5000);
  TU_QP_OK(qp_portal_close(pair.client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  assert_int_equal(echo.messages, 2);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(default_connection_survives_60_s_of_silence),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
