/* ctest: labels=loopback,iothread */
/*
 * test_trav_run.c: two trav_run agents (server and client threads) on
 * 127.0.0.1 meet through a mem: store and agree on each other's address;
 * with an embedded STUN server; client first; a second server on the same
 * store after the first finished, with stale records around.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "udp/udp.h"
#include "stun/stun_server.h"
#include "test_trav_tu.h"

#define URL "mem:trav-run"
#define TIMEOUT_MS 5000

static void run_pair(const char *session, int client_delay_ms) {
  tt_side_t server, client;
  tt_side_init(&server, URL, session, true, TIMEOUT_MS);
  tt_side_init(&client, URL, session, false, TIMEOUT_MS);
  if (client_delay_ms >= 0) {
    tt_side_start(&server);
    usleep((useconds_t)client_delay_ms * 1000); /* order the starts */
    tt_side_start(&client);
  } else {
    tt_side_start(&client);
    usleep((useconds_t)-client_delay_ms * 1000);
    tt_side_start(&server);
  }
  tt_side_join(&server);
  tt_side_join(&client);
  tt_assert_agree(&server, &client);
  print_message("server summary:\n%s\nclient summary:\n%s\n(server %lld ms, "
                "client %lld ms)\n", server.res.summary, client.res.summary,
                (long long)server.elapsed_ms, (long long)client.elapsed_ms);
  assert_true(server.elapsed_ms < 2000);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
}

static void test_pair_agrees(void **state) {
  (void)state;
  run_pair("agree", 0);
}

static void test_client_first(void **state) {
  (void)state;
  run_pair("client-first", -300);
}

static void test_server_first(void **state) {
  (void)state;
  run_pair("server-first", 300);
}

/* Our records are deleted on success, so the srflx candidate is read from
 * the record of a server that waits for nobody. */
static void test_stun_srflx_in_record(void **state) {
  (void)state;
  stun_server_t *stun;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &stun), 0);
  udp_addr_t sa;
  assert_int_equal(stun_server_address(stun, 0, &sa), 0);
  char stun_text[UDP_ADDRSTRLEN];
  udp_addr_to_string(&sa, stun_text, sizeof(stun_text));

  tt_side_t server;
  tt_side_init(&server, URL, "srflx", true, 1500);
  server.stun[0] = stun_text;
  server.cfg.stun_server_count = 1;
  rdv_t *reader;
  assert_int_equal(rdv_open(URL, "srflx", &reader), 0);
  tt_side_start(&server);
  rdv_record rec;
  assert_true(tt_wait_record(reader, "server", 3000, &rec));
  bool srflx = false;
  for (size_t i = 0; i < rec.candidate_count; i++)
    srflx |= rec.candidates[i].type == RDV_CAND_SRFLX &&
             rec.candidates[i].port == udp_addr_port(&server.sock.local) &&
             strcmp(rec.candidates[i].addr, "127.0.0.1") == 0;
  assert_true(srflx);
  assert_true(stun_server_requests_answered(stun) >= 1);
  TU_RC_EQ(tt_side_join(&server), QP_ERR_PUNCH, server.err);
  TU_ASSERT_CONTAINS(server.res.summary, "mapped 127.0.0.1");
  tt_side_cleanup(&server);
  rdv_close(reader);
  stun_server_stop(stun);
}

/* Both sides with a live STUN server and a dead one: the pair connects and
 * the dead server costs at most the gathering deadline (timeout / 3). */
static void test_pair_with_stun(void **state) {
  (void)state;
  stun_server_t *stun;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &stun), 0);
  udp_addr_t sa;
  assert_int_equal(stun_server_address(stun, 0, &sa), 0);
  char live[UDP_ADDRSTRLEN], dead[32];
  udp_addr_to_string(&sa, live, sizeof(live));
  snprintf(dead, sizeof(dead), "127.0.0.1:%u", tu_free_udp_port());
  tt_side_t server, client;
  tt_side_init(&server, URL, "with-stun", true, 3000);
  tt_side_init(&client, URL, "with-stun", false, 3000);
  for (tt_side_t *s = &server; s; s = s == &server ? &client : NULL) {
    s->stun[0] = live;
    s->stun[1] = dead;
    s->cfg.stun_server_count = 2;
  }
  tt_side_start(&server);
  tt_side_start(&client);
  tt_side_join(&server);
  tt_side_join(&client);
  tt_assert_agree(&server, &client);
  TU_ASSERT_CONTAINS(client.res.summary, "no answer");
  TU_ASSERT_CONTAINS(client.res.summary, "mapped 127.0.0.1");
  /* gathering <= 1000 ms, then checks on loopback */
  assert_true(server.elapsed_ms < 1800);
  assert_true(client.elapsed_ms < 1800);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
  stun_server_stop(stun);
}

/* The server keeps serving: after a first pair finished, a second server
 * on the same store meets a new client, although stale records of dead
 * peers sit in both keys and the client starts first. */
static void test_second_server_same_store(void **state) {
  (void)state;
  rdv_t *keep;
  assert_int_equal(rdv_open(URL, "again", &keep), 0); /* keeps the table */
  run_pair("again", 0);

  trav_creds_t dead_server, dead_client;
  tt_creds(&dead_server, "deadsrv");
  tt_creds(&dead_client, "deadcli");
  uint16_t nowhere = tu_free_udp_port();
  tt_put_record(keep, "server", "again", &dead_server, nowhere, -1000);
  tt_put_record(keep, "client", "again", &dead_client, nowhere, -1000);

  tt_side_t server, client;
  tt_side_init(&server, URL, "again", true, TIMEOUT_MS);
  tt_side_init(&client, URL, "again", false, TIMEOUT_MS);
  tt_side_start(&client); /* adopts the dead server's record first */
  usleep(300 * 1000);
  tt_side_start(&server);
  tt_side_join(&server);
  tt_side_join(&client);
  tt_assert_agree(&server, &client);
  print_message("client summary:\n%s\n", client.res.summary);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
  rdv_close(keep);
}

/* Sockets bound to the wildcard: host candidates come from getifaddrs;
 * whichever interface wins, each side's peer has the other's port. */
static void test_wildcard_sockets(void **state) {
  (void)state;
  tt_side_t server, client;
  tt_side_init(&server, URL, "wildcard", true, TIMEOUT_MS);
  tt_side_init(&client, URL, "wildcard", false, TIMEOUT_MS);
  for (tt_side_t *s = &server; s; s = s == &server ? &client : NULL) {
    udp_socket_close(&s->sock);
    assert_true(tt_open_at(&s->sock, "0.0.0.0"));
  }
  tt_side_start(&server);
  tt_side_start(&client);
  TU_RC_EQ(tt_side_join(&server), 0, server.err);
  TU_RC_EQ(tt_side_join(&client), 0, client.err);
  assert_int_equal(udp_addr_port(&server.res.peer),
                   udp_addr_port(&client.sock.local));
  assert_int_equal(udp_addr_port(&client.res.peer),
                   udp_addr_port(&server.sock.local));
  print_message("server summary:\n%s\n", server.res.summary);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
}

static void test_ipv6_loopback(void **state) {
  (void)state;
  udp_socket_t probe;
  if (!tt_open_at(&probe, "::1"))
    TU_SKIP("cannot bind [::1] (no IPv6 here)");
  udp_socket_close(&probe);
  tt_side_t server, client;
  tt_side_init(&server, URL, "ipv6", true, TIMEOUT_MS);
  tt_side_init(&client, URL, "ipv6", false, TIMEOUT_MS);
  for (tt_side_t *s = &server; s; s = s == &server ? &client : NULL) {
    udp_socket_close(&s->sock);
    assert_true(tt_open_at(&s->sock, "::1"));
  }
  tt_side_start(&server);
  tt_side_start(&client);
  tt_side_join(&server);
  tt_side_join(&client);
  tt_assert_agree(&server, &client);
  TU_ASSERT_CONTAINS(server.res.summary, "[::1]:");
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pair_agrees),
      cmocka_unit_test(test_client_first),
      cmocka_unit_test(test_server_first),
      cmocka_unit_test(test_stun_srflx_in_record),
      cmocka_unit_test(test_pair_with_stun),
      cmocka_unit_test(test_second_server_same_store),
      cmocka_unit_test(test_wildcard_sockets),
      cmocka_unit_test(test_ipv6_loopback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
