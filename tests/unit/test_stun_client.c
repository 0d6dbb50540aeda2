/* ctest: labels=loopback */
/* STUN client transactions: the retransmission schedule on a fake clock,
 * response matching, and real queries against the embedded server on
 * loopback (including a dead server that must cost only the deadline). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "udp/udp.h"
#include "stun/stun_client.h"
#include "stun/stun_server.h"
#include "tu.h"

/* Slack for scheduling under ASan on a loaded machine. */
#define TIMING_SLACK_MS 400

static udp_addr_t addr_of(const char *text) {
  udp_addr_t a;
  assert_int_equal(udp_addr_parse(text, 0, &a), 0);
  return a;
}

/* The STUN client runs on sockets of the udp layer. */
static void bound_socket(const char *ip, udp_socket_t *sock, udp_addr_t *local) {
  udp_addr_t a = addr_of(ip);
  assert_int_equal(udp_socket_open(&a, sock), 0);
  *local = sock->local;
}

/* RFC 8489 section 6.2.1's example: sends at 0, 500, 1500, 3500, 7500,
 * 15500, 31500 ms, failure at 39500 ms. */
static void retransmission_schedule_follows_rfc8489(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server = addr_of("192.0.2.1:3478");
  int txn = stun_client_start(&c, &server, 0, 0, 1000000);
  assert_int_equal(txn, 0);
  const int64_t sends[] = {0, 500, 1500, 3500, 7500, 15500, 31500};
  stun_client_datagram out[4];
  for (size_t i = 0; i < 7; i++) {
    assert_int_equal(stun_client_next_timeout(&c), sends[i]);
    if (sends[i] > 0)
      assert_int_equal(stun_client_on_timer(&c, sends[i] - 1, out, 4), 0);
    assert_int_equal(stun_client_on_timer(&c, sends[i], out, 4), 1);
    assert_true(stun_msg_is_stun(out[0].data, out[0].len));
    assert_true(udp_addr_equal(out[0].to, &server));
  }
  assert_int_equal(stun_client_next_timeout(&c), 39500);
  assert_int_equal(stun_client_on_timer(&c, 39499, out, 4), 0);
  assert_int_equal(stun_client_result_of(&c, txn)->state, STUN_TXN_PENDING);
  assert_int_equal(stun_client_on_timer(&c, 39500, out, 4), 0);
  const stun_client_result *r = stun_client_result_of(&c, txn);
  assert_int_equal(r->state, STUN_TXN_FAILED);
  assert_int_equal(r->error, QP_ERR_TIMEOUT);
  assert_int_equal(r->requests_sent, 7);
  assert_int_equal(stun_client_next_timeout(&c), -1);
}

static void deadline_caps_the_transaction(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server = addr_of("192.0.2.1:3478");
  int txn = stun_client_start(&c, &server, 0, 1000, 2200);
  stun_client_datagram out[1];
  assert_int_equal(stun_client_on_timer(&c, 1000, out, 1), 1);
  assert_int_equal(stun_client_on_timer(&c, 1500, out, 1), 1);
  assert_int_equal(stun_client_next_timeout(&c), 2200); /* not 2500 */
  assert_int_equal(stun_client_on_timer(&c, 2200, out, 1), 0);
  assert_int_equal(stun_client_result_of(&c, txn)->state, STUN_TXN_FAILED);
  assert_int_equal(stun_client_result_of(&c, txn)->requests_sent, 2);
}

static void table_full_is_an_error(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server = addr_of("192.0.2.1:3478");
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++)
    assert_int_equal(stun_client_start(&c, &server, 0, 0, 100), i);
  assert_int_equal(stun_client_start(&c, &server, 0, 0, 100), QP_ERR_NOMEM);
}

/* Client and server cores talk to each other in memory: no sockets. */
static void response_completes_matching_transaction(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server = addr_of("192.0.2.1:3478");
  udp_addr_t client = addr_of("198.51.100.9:40001");
  int a = stun_client_start(&c, &server, 0, 0, 5000);
  int b = stun_client_start(&c, &server, 0, 0, 5000);
  stun_client_datagram out[2];
  assert_int_equal(stun_client_on_timer(&c, 0, out, 2), 2);

  stun_server_addrs addrs = {.slot = {server}, .count = 1};
  uint8_t resp[STUN_SERVER_RESPONSE_MAX];
  stun_server_reply reply;
  int len = stun_server_handle(&addrs, 0, out[1].data, out[1].len, &client,
                               resp, sizeof(resp), &reply);
  assert_true(len > 0);
  assert_int_equal(reply.slot, 0);
  assert_true(udp_addr_equal(&reply.to, &client));
  /* A stranger's datagram and a corrupted copy are ignored. */
  assert_int_equal(
      stun_client_on_response(&c, (const uint8_t *)"hello", 5, &server, 10),
      QP_ERR_STUN);
  resp[len - 1] ^= 1;
  assert_int_equal(stun_client_on_response(&c, resp, (size_t)len, &server, 10),
                   QP_ERR_STUN);
  resp[len - 1] ^= 1;
  assert_int_equal(stun_client_on_response(&c, resp, (size_t)len, &server, 10),
                   b);
  const stun_client_result *r = stun_client_result_of(&c, b);
  assert_int_equal(r->state, STUN_TXN_SUCCEEDED);
  assert_true(udp_addr_equal(&r->mapped, &client));
  assert_true(r->has_response_origin);
  assert_false(r->has_other_address);
  assert_int_equal(r->rtt_ms, 10);
  assert_int_equal(stun_client_result_of(&c, a)->state, STUN_TXN_PENDING);
  /* A duplicate answer no longer matches. */
  assert_int_equal(stun_client_on_response(&c, resp, (size_t)len, &server, 11),
                   QP_ERR_STUN);
}

static void error_response_fails_transaction(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server = addr_of("192.0.2.1:3478");
  udp_addr_t client = addr_of("198.51.100.9:40001");
  /* CHANGE-REQUEST to a one-address server: 420 (RFC 5780 section 6.1). */
  int t = stun_client_start(&c, &server, STUN_CHANGE_PORT, 0, 5000);
  stun_client_datagram out[1];
  assert_int_equal(stun_client_on_timer(&c, 0, out, 1), 1);
  stun_server_addrs addrs = {.slot = {server}, .count = 1};
  uint8_t resp[STUN_SERVER_RESPONSE_MAX];
  stun_server_reply reply;
  int len = stun_server_handle(&addrs, 0, out[0].data, out[0].len, &client,
                               resp, sizeof(resp), &reply);
  assert_true(len > 0);
  assert_int_equal(stun_client_on_response(&c, resp, (size_t)len, &server, 1),
                   t);
  const stun_client_result *r = stun_client_result_of(&c, t);
  assert_int_equal(r->state, STUN_TXN_FAILED);
  assert_int_equal(r->error, QP_ERR_STUN);
  assert_int_equal(r->error_code, 420);
  assert_string_equal(r->error_reason, "Unknown Attribute");
}

static void query_against_embedded_server(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &server), 0);
  udp_addr_t server_addr, local;
  assert_int_equal(stun_server_address(server, 0, &server_addr), 0);
  udp_socket_t sock;
  bound_socket("127.0.0.1:0", &sock, &local);
  stun_client_result results[1];
  int rc = stun_client_query(&sock, &server_addr, 1, 2000, results);
  assert_int_equal(rc, 1);
  assert_int_equal(results[0].state, STUN_TXN_SUCCEEDED);
  assert_true(udp_addr_equal(&results[0].mapped, &local));
  assert_true(udp_addr_equal(&results[0].from, &server_addr));
  assert_int_equal(results[0].requests_sent, 1);
  assert_true(stun_server_requests_answered(server) >= 1);
  udp_socket_close(&sock);
  stun_server_stop(server);
}

static void query_over_ipv6_loopback(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  if (stun_server_start("[::1]:0", NULL, &server) != 0)
    TU_SKIP("no IPv6 loopback here");
  udp_addr_t server_addr, local;
  assert_int_equal(stun_server_address(server, 0, &server_addr), 0);
  udp_socket_t sock;
  bound_socket("[::1]:0", &sock, &local);
  stun_client_result results[1];
  assert_int_equal(stun_client_query(&sock, &server_addr, 1, 2000, results), 1);
  assert_true(udp_addr_equal(&results[0].mapped, &local));
  udp_socket_close(&sock);
  stun_server_stop(server);
}

static void dead_server_costs_only_the_deadline(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &server), 0);
  udp_addr_t servers[2], local;
  assert_int_equal(stun_server_address(server, 0, &servers[0]), 0);
  servers[1] = addr_of("127.0.0.1:0");
  udp_addr_set_port(&servers[1], tu_free_udp_port()); /* nobody listens */
  udp_socket_t sock;
  bound_socket("127.0.0.1:0", &sock, &local);
  stun_client_result results[2];
  const int deadline_ms = 800;
  int64_t start = tu_now_ms();
  int rc = stun_client_query(&sock, servers, 2, deadline_ms, results);
  int64_t elapsed = tu_now_ms() - start;
  assert_int_equal(rc, 1);
  assert_int_equal(results[0].state, STUN_TXN_SUCCEEDED);
  assert_int_equal(results[1].state, STUN_TXN_FAILED);
  assert_int_equal(results[1].error, QP_ERR_TIMEOUT);
  assert_int_equal(results[1].requests_sent, 2); /* at 0 and 500 ms */
  assert_true(elapsed >= deadline_ms - 10);
  assert_true(elapsed <= deadline_ms + TIMING_SLACK_MS);

  /* The dead one alone: an error that names it and the time. */
  char text[UDP_ADDRSTRLEN], want[128];
  snprintf(want, sizeof(want), "STUN server %s did not answer in 300 ms",
           udp_addr_to_string(&servers[1], text, sizeof(text)));
  start = tu_now_ms();
  assert_int_equal(stun_client_query(&sock, &servers[1], 1, 300, results),
                   QP_ERR_TIMEOUT);
  assert_true(tu_now_ms() - start <= 300 + TIMING_SLACK_MS);
  assert_string_equal(qp_last_error(), want);
  udp_socket_close(&sock);
  stun_server_stop(server);
}

static void server_start_errors_are_clear(void **state) {
  (void)state;
  stun_server_t *server = NULL, *second = NULL;
  stun_server_stop(NULL);
  assert_int_equal(stun_server_start("not an address", NULL, &server),
                   QP_ERR_INVALID);
  assert_int_equal(stun_server_start("127.0.0.1:0", "127.0.0.1:0", &server),
                   QP_ERR_INVALID); /* alternate needs another IP */
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &server), 0);
  udp_addr_t a;
  stun_server_address(server, 0, &a);
  char text[UDP_ADDRSTRLEN], primary[UDP_ADDRSTRLEN + 8];
  snprintf(primary, sizeof(primary), "%s",
           udp_addr_to_string(&a, text, sizeof(text)));
  assert_int_equal(stun_server_start(primary, NULL, &second), QP_ERR_SOCKET);
  assert_non_null(strstr(qp_last_error(), primary));
  assert_null(second);
  stun_server_stop(server);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(retransmission_schedule_follows_rfc8489),
      cmocka_unit_test(deadline_caps_the_transaction),
      cmocka_unit_test(table_full_is_an_error),
      cmocka_unit_test(response_completes_matching_transaction),
      cmocka_unit_test(error_response_fails_transaction),
      cmocka_unit_test(query_against_embedded_server),
      cmocka_unit_test(query_over_ipv6_loopback),
      cmocka_unit_test(dead_server_costs_only_the_deadline),
      cmocka_unit_test(server_start_errors_are_clear),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
