/* ctest: labels=loopback,stun,security */
/*
 * Attack: a STUN flood from one source against the embedded STUN server
 * (quic-portal stun-server), and its use as a reflector. The source gets
 * at most its rate's worth of answers; another source is still answered
 * at once; no answer is larger than its request by more than the
 * addresses and FINGERPRINT the RFCs require.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "stun/stun_msg.h"
#include "stun/stun_server.h"
#include "tu.h"
#include "udp/udp.h"

/* Requests in the flood; well over the burst of 100 and 1 s of rate. */
#define FLOOD 3000
/* What RFC 8489 requires a one-socket server's answer to add over an IPv4
 * request: XOR-MAPPED-ADDRESS and RESPONSE-ORIGIN (12 bytes each) and
 * FINGERPRINT (8). */
#define REQUIRED_GROWTH (2 * 12 + 8)

static size_t binding_request(uint8_t *buf, size_t cap) {
  uint8_t txid[STUN_TXID_SIZE];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  stun_msg_writer w;
  assert_int_equal(stun_msg_write_header(&w, buf, cap, STUN_METHOD_BINDING,
                                         STUN_CLASS_REQUEST, txid), 0);
  return w.len;
}

static void open_at(udp_socket_t *s, const char *ip) {
  udp_addr_t a;
  assert_int_equal(udp_addr_from_ip(ip, 0, &a), 0);
  assert_int_equal(udp_socket_open(&a, s), 0);
}

/* Count answers arriving within ms; the largest answer in *largest. */
static int count_answers(udp_socket_t *s, int ms, size_t *largest) {
  int n = 0;
  int64_t end = tu_now_ms() + ms;
  while (tu_now_ms() < end) {
    struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
    if (poll(&pfd, 1, 10) <= 0)
      continue;
    uint8_t buf[2048];
    ssize_t len;
    while ((len = recv(s->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
      n++;
      if ((size_t)len > *largest)
        *largest = (size_t)len;
    }
  }
  return n;
}

static void flood_is_rate_limited_and_others_answered(void **state) {
  (void)state;
  stun_server_t *srv;
  TU_QP_OK(stun_server_start("127.0.0.1:0", NULL, &srv));
  udp_addr_t to;
  assert_int_equal(stun_server_address(srv, 0, &to), 0);
  udp_socket_t flood, other;
  open_at(&flood, "127.0.0.1");
  open_at(&other, "127.0.0.2"); /* another source IP on the loopback */
  int rcvbuf = 4 << 20;
  setsockopt(flood.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));

  uint8_t req[64];
  size_t len = binding_request(req, sizeof(req));
  int64_t t0 = tu_now_ms();
  for (int i = 0; i < FLOOD; i++)
    udp_send(&flood, &to, req, len, len);
  size_t largest = 0;
  int answered = count_answers(&flood, 300, &largest);
  int64_t elapsed = tu_now_ms() - t0;
  uint64_t limited = stun_server_requests_limited(srv);
  print_message("flood: %d requests, %d answered, %llu limited in %lld ms; "
                "largest answer %zu bytes for a %zu-byte request\n",
                FLOOD, answered, (unsigned long long)limited, (long long)elapsed,
                largest, len);
  /* burst 100 + 50/s over the time it took, plus slack for a slow box */
  assert_true(answered <= 100 + 50 * (elapsed / 1000 + 1));
  assert_true(answered >= 50);
  assert_true(limited > 0);
  assert_true(largest <= len + REQUIRED_GROWTH);

  /* Another source is answered at once, flood or not. */
  size_t olen = binding_request(req, sizeof(req));
  udp_send(&other, &to, req, olen, olen);
  size_t olargest = 0;
  assert_int_equal(count_answers(&other, 300, &olargest), 1);

  udp_socket_close(&flood);
  udp_socket_close(&other);
  stun_server_stop(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(flood_is_rate_limited_and_others_answered),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
