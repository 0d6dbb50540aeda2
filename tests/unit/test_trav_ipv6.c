/* ctest: labels=loopback,traversal,iothread */
/*
 * IPv6 end to end on ::1 (issue 11), loopback only:
 * - trav_run between two sockets on ::1: the records hold the IPv6 host
 *   candidate, the pair validates, the path names the family;
 * - qp_create_server / qp_create_client with local_ip "::1": QUIC over
 *   IPv6, 1 KiB echoed byte for byte, qp_portal_path says
 *   "direct (host, IPv6) to [::1]:port", the peer address is "::1";
 * - a portal listening on "::" (dual-stack) and a client from 127.0.0.1:
 *   QUIC over an IPv4-mapped path, and the server names its peer in IPv4;
 * - an embedded STUN server on [::1]: an IPv6 server-reflexive candidate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "stun/stun_server.h"
#include "tu.h"
#include "test_trav_tu.h"

#define URL "mem:trav-ipv6"
#define TIMEOUT_MS 5000

static bool have_ipv6_loopback(void) {
  udp_socket_t s;
  if (!tt_open_at(&s, "::1"))
    return false;
  udp_socket_close(&s);
  return true;
}

static void side_on_v6(tt_side_t *s, const char *session, bool server) {
  tt_side_init(s, URL, session, server, TIMEOUT_MS);
  udp_socket_close(&s->sock);
  assert_true(tt_open_at(&s->sock, "::1"));
}

static void assert_v6_record(const char *session, const char *key) {
  rdv_t *rdv;
  rdv_record rec;
  assert_int_equal(rdv_open(URL, session, &rdv), 0);
  assert_true(tt_wait_record(rdv, key, TIMEOUT_MS, &rec));
  assert_true(rec.candidate_count >= 1);
  for (size_t i = 0; i < rec.candidate_count; i++) {
    print_message("%s candidate %s %s:%u\n", key,
                  rdv_cand_type_to_string(rec.candidates[i].type),
                  rec.candidates[i].addr, (unsigned)rec.candidates[i].port);
    assert_string_equal(rec.candidates[i].addr, "::1");
  }
  rdv_close(rdv);
}

static void traversal_on_ipv6_loopback(void **state) {
  (void)state;
  if (!have_ipv6_loopback())
    TU_SKIP("cannot bind ::1 (IPv6 disabled)");
  tt_side_t srv, cli;
  side_on_v6(&srv, "v6-trav", true);
  side_on_v6(&cli, "v6-trav", false);
  tt_side_start(&srv);
  assert_v6_record("v6-trav", "server");
  tt_side_start(&cli);
  tt_side_join(&srv);
  tt_side_join(&cli);
  tt_assert_agree(&srv, &cli);
  assert_int_equal(srv.res.peer.ss.ss_family, AF_INET6);
  char want[64];
  snprintf(want, sizeof(want), "direct (host, IPv6) to [::1]:%u",
           (unsigned)udp_addr_port(&cli.sock.local));
  assert_string_equal(srv.res.path_desc, want);
  assert_int_equal(srv.res.path_kind, QP_PATH_HOST);
  tt_side_cleanup(&srv);
  tt_side_cleanup(&cli);
}

static void side_init(tu_create_side_t *s, bool server) {
  tu_create_side_init(s, server);
  s->opts.rendezvous = URL;
  s->opts.session = "v6-create";
  s->opts.punch_timeout_ms = TIMEOUT_MS;
  s->opts.local_ip = "::1";
}

static void portals_on_ipv6_loopback(void **state) {
  (void)state;
  if (!have_ipv6_loopback())
    TU_SKIP("cannot bind ::1 (IPv6 disabled)");
  tu_create_side_t srv, cli;
  side_init(&srv, true);
  side_init(&cli, false);
  tu_create_side_start(&srv);
  tu_create_side_start(&cli);
  tu_create_side_join(&srv);
  tu_create_side_join(&cli);
  TU_RC_EQ(srv.rc, QP_OK, srv.err);
  TU_RC_EQ(cli.rc, QP_OK, cli.err);

  tu_echo_t echo;
  tu_echo_start(&echo, srv.portal, TIMEOUT_MS);
  tu_echo_roundtrip(cli.portal, 1024, 11, TIMEOUT_MS);

  char desc[QP_PATH_DESC_SIZE], want[QP_PATH_DESC_SIZE];
  assert_int_equal(qp_portal_path(cli.portal, desc, sizeof(desc), NULL), QP_PATH_HOST);
  snprintf(want, sizeof(want), "direct (host, IPv6) to [::1]:%u",
           (unsigned)qp_portal_local_port(srv.portal));
  assert_string_equal(desc, want);
  char ip[QP_PEER_IP_SIZE];
  uint16_t port = 0;
  TU_QP_OK(qp_portal_peer_address(cli.portal, ip, sizeof(ip), &port));
  assert_string_equal(ip, "::1");
  assert_int_equal(port, qp_portal_local_port(srv.portal));

  qp_portal_destroy(cli.portal);
  tu_echo_join(&echo);
  qp_portal_destroy(srv.portal);
}

/* ngtcp2 over a dual-stack socket with an IPv4 peer: every packet's
 * address is IPv4-mapped on the server side. */
static void dual_stack_listener_and_ipv4_client(void **state) {
  (void)state;
  if (!have_ipv6_loopback())
    TU_SKIP("cannot bind :: (IPv6 disabled)");
  qp_portal_t *server = NULL, *client = NULL;
  TU_QP_OK(qp_portal_create(&server));
  TU_QP_OK(qp_portal_create(&client));
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "::", 0, NULL, TIMEOUT_MS);
  assert_true(port != 0);
  TU_QP_OK(qp_portal_connect(client, "127.0.0.1", port, 0, NULL, TIMEOUT_MS));
  TU_RC_EQ(tu_listen_join(&l), QP_OK, l.error);

  tu_echo_t echo;
  tu_echo_start(&echo, server, TIMEOUT_MS);
  tu_echo_roundtrip(client, 1024, 12, TIMEOUT_MS);
  char ip[QP_PEER_IP_SIZE];
  uint16_t peer_port = 0;
  TU_QP_OK(qp_portal_peer_address(server, ip, sizeof(ip), &peer_port));
  assert_string_equal(ip, "127.0.0.1"); /* not ::ffff:127.0.0.1 */
  assert_int_equal(peer_port, qp_portal_local_port(client));
  qp_portal_destroy(client);
  tu_echo_join(&echo);
  qp_portal_destroy(server);
}

/* STUN over IPv6: the answer's XOR-MAPPED-ADDRESS (IPv6) becomes an srflx
 * candidate in the record, next to the host one. */
static void srflx_from_an_ipv6_stun_server(void **state) {
  (void)state;
  if (!have_ipv6_loopback())
    TU_SKIP("cannot bind ::1 (IPv6 disabled)");
  stun_server_t *stun;
  TU_RC_EQ(stun_server_start("[::1]:0", NULL, &stun), 0, qp_last_error());
  udp_addr_t sa;
  assert_int_equal(stun_server_address(stun, 0, &sa), 0);
  char server[UDP_ADDRSTRLEN];
  udp_addr_to_string(&sa, server, sizeof(server));
  tt_side_t srv;
  side_on_v6(&srv, "v6-srflx", true);
  srv.stun[0] = server;
  srv.cfg.stun_server_count = 1;
  tt_side_start(&srv);
  rdv_t *rdv;
  rdv_record rec;
  assert_int_equal(rdv_open(URL, "v6-srflx", &rdv), 0);
  assert_true(tt_wait_record(rdv, "server", TIMEOUT_MS, &rec));
  bool srflx = false;
  for (size_t i = 0; i < rec.candidate_count; i++)
    if (rec.candidates[i].type == RDV_CAND_SRFLX) {
      assert_string_equal(rec.candidates[i].addr, "::1");
      assert_int_equal(rec.candidates[i].port, udp_addr_port(&srv.sock.local));
      srflx = true;
    }
  assert_true(srflx);
  atomic_store(&srv.cancel, true);
  TU_RC_EQ(tt_side_join(&srv), QP_ERR_INTERRUPTED, srv.err);
  rdv_close(rdv);
  tt_side_cleanup(&srv);
  stun_server_stop(stun);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(traversal_on_ipv6_loopback),
      cmocka_unit_test(portals_on_ipv6_loopback),
      cmocka_unit_test(dual_stack_listener_and_ipv4_client),
      cmocka_unit_test(srflx_from_an_ipv6_stun_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
