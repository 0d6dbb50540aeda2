/* ctest: labels=loopback,iothread */
/*
 * Request and reply carry the acknowledgements (issue 16): in a loop of
 * 1-byte messages echoed by the peer, each side sends about one packet per
 * round trip, not an ACK-only packet and then the reply. ngtcp2 0.12 puts an
 * ACK into a packet only once it is due (RTT/8 after the packet it
 * acknowledges), so before the portal left the ACK to the caller's reply
 * (with ack_thresh 1) every round trip cost two packets each way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>

#include "quic_portal.h"
#include "tu.h"

#define ROUND_TRIPS 300
#define TIMEOUT_MS 10000
/* Packets per round trip allowed on each side: 1, plus room for a reply
 * that a loaded machine delays past the 1 ms the ACK waits for it (each such
 * delay costs one ACK-only packet) and for keep-alives. Two packets per round
 * trip, the behavior this guards against, is far above it (a loaded run
 * measured 380 packets for 300 round trips). */
#define MAX_PACKETS_PER_ROUND_TRIP 1.5

static uint64_t packets_sent(qp_portal_t *p) {
  qp_portal_stats s;
  TU_QP_OK(qp_portal_get_stats(p, &s));
  return s.packets_sent;
}

static void one_packet_each_way_per_round_trip(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, TIMEOUT_MS);
  /* One round trip first: the stream is open and the handshake's packets
   * are behind us. */
  tu_echo_roundtrip(pair.client, 1, 0, TIMEOUT_MS);
  uint64_t client0 = packets_sent(pair.client);
  uint64_t server0 = packets_sent(pair.server);

  for (uint32_t i = 1; i <= ROUND_TRIPS; i++)
    tu_echo_roundtrip(pair.client, 1, i, TIMEOUT_MS);

  uint64_t client = packets_sent(pair.client) - client0;
  uint64_t server = packets_sent(pair.server) - server0;
  print_message("%d round trips of 1 byte: client sent %llu packets, server "
                "%llu\n",
                ROUND_TRIPS, (unsigned long long)client,
                (unsigned long long)server);
  assert_true(client >= ROUND_TRIPS); /* every message went out */
  assert_true(server >= ROUND_TRIPS);
  if (client > ROUND_TRIPS * MAX_PACKETS_PER_ROUND_TRIP ||
      server > ROUND_TRIPS * MAX_PACKETS_PER_ROUND_TRIP)
    fail_msg("more than %.2f packets per round trip: client %llu, server %llu "
             "for %d round trips (ACK-only packets besides the replies?)",
             MAX_PACKETS_PER_ROUND_TRIP, (unsigned long long)client,
             (unsigned long long)server, ROUND_TRIPS);

  TU_QP_OK(qp_portal_close(pair.client, 5000));
  int rc = tu_echo_join(&echo);
  TU_RC_EQ(rc, QP_ERR_CLOSED, echo.error);
  assert_int_equal(echo.messages, ROUND_TRIPS + 1);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(one_packet_each_way_per_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
