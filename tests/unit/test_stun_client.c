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
#include "stun/stun_addr.h"
#include "stun/stun_client.h"
#include "stun/stun_server.h"
#include "tu.h"

/* Slack for scheduling under ASan on a loaded machine. */
#define TIMING_SLACK_MS 400

static struct sockaddr_storage addr_of(const char *text) {
  struct sockaddr_storage a;
  assert_int_equal(stun_addr_parse(text, 0, &a), 0);
  return a;
}

static int bound_socket(const char *ip, struct sockaddr_storage *local) {
  struct sockaddr_storage a = addr_of(ip);
  int fd = socket(a.ss_family, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, stun_addr_len(&a)), 0);
  socklen_t len = sizeof(*local);
  assert_int_equal(getsockname(fd, (struct sockaddr *)local, &len), 0);
  return fd;
}

/* RFC 8489 section 6.2.1's example: sends at 0, 500, 1500, 3500, 7500,
 * 15500, 31500 ms, failure at 39500 ms. */
static void retransmission_schedule_follows_rfc8489(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  struct sockaddr_storage server = addr_of("192.0.2.1:3478");
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
    assert_true(stun_addr_equal(out[0].to, &server));
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
  struct sockaddr_storage server = addr_of("192.0.2.1:3478");
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
  struct sockaddr_storage server = addr_of("192.0.2.1:3478");
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++)
    assert_int_equal(stun_client_start(&c, &server, 0, 0, 100), i);
  assert_int_equal(stun_client_start(&c, &server, 0, 0, 100), QP_ERR_NOMEM);
}

/* Client and server cores talk to each other in memory: no sockets. */
static void response_completes_matching_transaction(void **state) {
  (void)state;
  stun_client c;
  stun_client_init(&c);
  struct sockaddr_storage server = addr_of("192.0.2.1:3478");
  struct sockaddr_storage client = addr_of("198.51.100.9:40001");
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
  assert_true(stun_addr_equal(&reply.to, &client));
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
  assert_true(stun_addr_equal(&r->mapped, &client));
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
  struct sockaddr_storage server = addr_of("192.0.2.1:3478");
  struct sockaddr_storage client = addr_of("198.51.100.9:40001");
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
  struct sockaddr_storage server_addr, local;
  assert_int_equal(stun_server_address(server, 0, &server_addr), 0);
  int fd = bound_socket("127.0.0.1:0", &local);
  stun_client_result results[1];
  int rc = stun_client_query(fd, &server_addr, 1, 2000, results);
  assert_int_equal(rc, 1);
  assert_int_equal(results[0].state, STUN_TXN_SUCCEEDED);
  assert_true(stun_addr_equal(&results[0].mapped, &local));
  assert_true(stun_addr_equal(&results[0].from, &server_addr));
  assert_int_equal(results[0].requests_sent, 1);
  assert_true(stun_server_requests_answered(server) >= 1);
  close(fd);
  stun_server_stop(server);
}

static void query_over_ipv6_loopback(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  if (stun_server_start("[::1]:0", NULL, &server) != 0)
    TU_SKIP("no IPv6 loopback here");
  struct sockaddr_storage server_addr, local;
  assert_int_equal(stun_server_address(server, 0, &server_addr), 0);
  int fd = bound_socket("[::1]:0", &local);
  stun_client_result results[1];
  assert_int_equal(stun_client_query(fd, &server_addr, 1, 2000, results), 1);
  assert_true(stun_addr_equal(&results[0].mapped, &local));
  close(fd);
  stun_server_stop(server);
}

static void dead_server_costs_only_the_deadline(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &server), 0);
  struct sockaddr_storage servers[2], local;
  assert_int_equal(stun_server_address(server, 0, &servers[0]), 0);
  servers[1] = addr_of("127.0.0.1:0");
  stun_addr_set_port(&servers[1], tu_free_udp_port()); /* nobody listens */
  int fd = bound_socket("127.0.0.1:0", &local);
  stun_client_result results[2];
  const int deadline_ms = 800;
  int64_t start = tu_now_ms();
  int rc = stun_client_query(fd, servers, 2, deadline_ms, results);
  int64_t elapsed = tu_now_ms() - start;
  assert_int_equal(rc, 1);
  assert_int_equal(results[0].state, STUN_TXN_SUCCEEDED);
  assert_int_equal(results[1].state, STUN_TXN_FAILED);
  assert_int_equal(results[1].error, QP_ERR_TIMEOUT);
  assert_int_equal(results[1].requests_sent, 2); /* at 0 and 500 ms */
  assert_true(elapsed >= deadline_ms - 10);
  assert_true(elapsed <= deadline_ms + TIMING_SLACK_MS);

  /* The dead one alone: an error that names it and the time. */
  char text[STUN_ADDR_STRLEN], want[128];
  snprintf(want, sizeof(want), "STUN server %s did not answer in 300 ms",
           stun_addr_format(&servers[1], text, sizeof(text)));
  start = tu_now_ms();
  assert_int_equal(stun_client_query(fd, &servers[1], 1, 300, results),
                   QP_ERR_TIMEOUT);
  assert_true(tu_now_ms() - start <= 300 + TIMING_SLACK_MS);
  assert_string_equal(qp_last_error(), want);
  close(fd);
  stun_server_stop(server);
}

static void resolve_names_and_literals(void **state) {
  (void)state;
  struct sockaddr_storage out[4];
  char text[STUN_ADDR_STRLEN];
  int n = stun_addr_resolve("127.0.0.1", 3478, AF_UNSPEC, out, 4);
  assert_int_equal(n, 1);
  assert_string_equal(stun_addr_format(&out[0], text, sizeof(text)),
                      "127.0.0.1:3478");
  n = stun_addr_resolve("::1", 19302, AF_INET6, out, 4);
  assert_int_equal(n, 1);
  assert_string_equal(stun_addr_format(&out[0], text, sizeof(text)),
                      "[::1]:19302");
  n = stun_addr_resolve("localhost", 3478, AF_INET, out, 4);
  assert_true(n >= 1);
  assert_int_equal(out[0].ss_family, AF_INET);
  assert_int_equal(stun_addr_port(&out[0]), 3478);
  /* RFC 6761 reserves .invalid: it never resolves. */
  assert_int_equal(
      stun_addr_resolve("stun.nonexistent.invalid", 3478, AF_UNSPEC, out, 4),
      QP_ERR_RESOLVE);
  assert_non_null(strstr(qp_last_error(), "stun.nonexistent.invalid"));
  assert_int_equal(stun_addr_resolve("", 3478, AF_UNSPEC, out, 4),
                   QP_ERR_INVALID);
}

static void parse_addresses(void **state) {
  (void)state;
  struct sockaddr_storage a;
  char text[STUN_ADDR_STRLEN];
  assert_int_equal(stun_addr_parse("[2001:db8::1]:443", 0, &a), 0);
  assert_string_equal(stun_addr_format(&a, text, sizeof(text)),
                      "[2001:db8::1]:443");
  assert_int_equal(stun_addr_parse("2001:db8::1", 3478, &a), 0);
  assert_int_equal(stun_addr_port(&a), 3478);
  assert_int_equal(stun_addr_parse("10.0.0.1", 3478, &a), 0);
  assert_int_equal(stun_addr_port(&a), 3478);
  assert_int_equal(stun_addr_parse("10.0.0.1:70000", 0, &a), QP_ERR_INVALID);
  assert_int_equal(stun_addr_parse("example.com:3478", 0, &a), QP_ERR_INVALID);
  assert_int_equal(stun_addr_parse("[::1", 0, &a), QP_ERR_INVALID);
  assert_int_equal(stun_addr_parse(NULL, 0, &a), QP_ERR_INVALID);
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
  struct sockaddr_storage a;
  stun_server_address(server, 0, &a);
  char text[STUN_ADDR_STRLEN], primary[STUN_ADDR_STRLEN + 8];
  snprintf(primary, sizeof(primary), "%s",
           stun_addr_format(&a, text, sizeof(text)));
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
      cmocka_unit_test(resolve_names_and_literals),
      cmocka_unit_test(parse_addresses),
      cmocka_unit_test(server_start_errors_are_clear),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
