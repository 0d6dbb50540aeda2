/* ctest: labels=unit,udp */
/*
 * IPv6 in the udp layer and the candidates (issue 11): an IPv4 address and
 * its IPv4-mapped form (::ffff:a.b.c.d) are one address for comparisons,
 * text and the STUN wire; the dual-stack socket of udp_socket_open_any
 * hears an IPv4 peer on 127.0.0.1 and answers it; the host candidates of a
 * dual-stack socket hold both families, no link-local, ranked global IPv6 >
 * IPv4 > ULA > loopback. Loopback only: nothing is sent beyond 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "stun/stun_msg.h"
#include "traversal/trav_internal.h"
#include "tu.h"
#include "udp/udp.h"
#include "udp/udp_resolve.h"

/* What a datagram on loopback may take to arrive on a loaded machine. */
#define WAIT_MS 2000

static udp_addr_t addr_of(const char *ip, uint16_t port) {
  udp_addr_t a;
  TU_RC_EQ(udp_addr_from_ip(ip, port, &a), 0, qp_last_error());
  return a;
}

static void mapped_is_the_ipv4_address(void **state) {
  (void)state;
  udp_addr_t v4 = addr_of("192.0.2.1", 4242);
  udp_addr_t mapped = addr_of("::ffff:192.0.2.1", 4242);
  udp_addr_t other = addr_of("::ffff:192.0.2.2", 4242);
  udp_addr_t v6 = addr_of("2001:db8::1", 4242);
  assert_true(udp_addr_is_v4mapped(&mapped));
  assert_false(udp_addr_is_v4mapped(&v4));
  assert_false(udp_addr_is_v4mapped(&v6));
  assert_int_equal(udp_addr_family(&mapped), AF_INET);
  assert_int_equal(udp_addr_family(&v6), AF_INET6);
  assert_true(udp_addr_equal(&v4, &mapped));
  assert_true(udp_addr_equal(&mapped, &v4));
  assert_true(udp_addr_same_ip(&v4, &mapped));
  assert_false(udp_addr_same_ip(&v4, &other));
  assert_false(udp_addr_same_ip(&v4, &v6));
  assert_false(udp_addr_same_ip(&v6, &mapped));
  udp_addr_t other_port = mapped;
  udp_addr_set_port(&other_port, 4243);
  assert_false(udp_addr_equal(&v4, &other_port));

  char text[UDP_ADDRSTRLEN];
  assert_string_equal(udp_addr_to_string(&mapped, text, sizeof(text)), "192.0.2.1:4242");
  assert_string_equal(udp_addr_to_string(&v6, text, sizeof(text)), "[2001:db8::1]:4242");

  udp_addr_t plain;
  udp_addr_unmap(&mapped, &plain);
  assert_int_equal(plain.ss.ss_family, AF_INET);
  assert_int_equal(plain.len, sizeof(struct sockaddr_in));
  assert_int_equal(udp_addr_port(&plain), 4242);
  udp_addr_unmap(&v6, &plain);
  assert_int_equal(plain.ss.ss_family, AF_INET6);

  udp_addr_t out;
  assert_true(udp_addr_to_family(&v4, AF_INET6, &out));
  assert_int_equal(out.ss.ss_family, AF_INET6);
  assert_true(udp_addr_is_v4mapped(&out));
  assert_true(udp_addr_equal(&out, &v4));
  assert_true(udp_addr_to_family(&mapped, AF_INET, &out));
  assert_int_equal(out.ss.ss_family, AF_INET);
  assert_false(udp_addr_to_family(&v6, AF_INET, &out));
  assert_true(udp_addr_to_family(&v6, AF_INET6, &out));
  assert_true(udp_addr_is_loopback(&(udp_addr_t){0}) == false);
  udp_addr_t mapped_loop = addr_of("::ffff:127.0.0.1", 1);
  assert_true(udp_addr_is_loopback(&mapped_loop));
}

/* A STUN answer to a dual-stack socket's IPv4 peer names an IPv4 address
 * (family 1), as the peer (or a TURN server) knows itself. */
static void stun_writes_mapped_as_ipv4(void **state) {
  (void)state;
  uint8_t txid[STUN_TXID_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  uint8_t buf[128];
  stun_msg_writer w;
  udp_addr_t mapped = addr_of("::ffff:198.51.100.7", 3478);
  assert_int_equal(stun_msg_write_header(&w, buf, sizeof(buf), STUN_METHOD_BINDING,
                                         STUN_CLASS_SUCCESS, txid),
                   0);
  assert_int_equal(stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, &mapped), 0);
  assert_int_equal(stun_msg_write_address(&w, STUN_ATTR_MAPPED_ADDRESS, &mapped), 0);
  /* header 20 + two attributes of 4 + 8 (IPv4), not 4 + 20 (IPv6) */
  assert_int_equal(w.len, 20 + 2 * 12);
  stun_msg msg;
  TU_RC_EQ(stun_msg_parse(buf, w.len, &msg), 0, qp_last_error());
  assert_true(msg.has_xor_mapped_address);
  assert_int_equal(msg.xor_mapped_address.ss.ss_family, AF_INET);
  assert_true(udp_addr_equal(&msg.xor_mapped_address, &mapped));
  assert_int_equal(msg.mapped_address.ss.ss_family, AF_INET);
  assert_true(udp_addr_equal(&msg.mapped_address, &mapped));
}

static bool wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, WAIT_MS) == 1;
}

static bool open_dual(udp_socket_t *s) {
  TU_RC_EQ(udp_socket_open_any(0, s), 0, qp_last_error());
  return s->family == AF_INET6;
}

/* One socket for both families: an IPv4 peer on 127.0.0.1 reaches it, is
 * seen as IPv4-mapped, equals its own address and is answered. */
static void dual_stack_socket_carries_ipv4(void **state) {
  (void)state;
  udp_socket_t dual, v4;
  if (!open_dual(&dual)) {
    udp_socket_close(&dual);
    TU_SKIP("no IPv6 on this host: udp_socket_open_any fell back to IPv4");
  }
  assert_true(udp_addr_is_unspecified(&dual.local));
  assert_true(udp_addr_port(&dual.local) != 0);
  udp_addr_t v4_bind = addr_of("127.0.0.1", 0);
  TU_RC_EQ(udp_socket_open(&v4_bind, &v4), 0, qp_last_error());
  udp_addr_t to = addr_of("127.0.0.1", udp_addr_port(&dual.local));
  TU_RC_EQ(udp_send(&v4, &to, (const uint8_t *)"ping", 4, 0), 0, qp_last_error());
  assert_true(wait_readable(dual.fd));
  uint8_t buf[16];
  size_t len = 0;
  udp_addr_t from;
  assert_int_equal(udp_recv_one(&dual, buf, sizeof(buf), &len, &from), 1);
  assert_int_equal(len, 4);
  assert_true(udp_addr_is_v4mapped(&from));
  assert_true(udp_addr_equal(&from, &v4.local));
  char text[UDP_ADDRSTRLEN], want[UDP_ADDRSTRLEN];
  udp_addr_to_string(&v4.local, want, sizeof(want));
  assert_string_equal(udp_addr_to_string(&from, text, sizeof(text)), want);
  /* Answer to what was heard, and to the plain IPv4 form of it. */
  TU_RC_EQ(udp_send(&dual, &from, (const uint8_t *)"pong", 4, 0), 0, qp_last_error());
  udp_addr_t plain_from;
  assert_true(udp_addr_to_family(&v4.local, dual.family, &plain_from));
  TU_RC_EQ(udp_send(&dual, &plain_from, (const uint8_t *)"pong", 4, 0), 0,
           qp_last_error());
  for (int i = 0; i < 2; i++) {
    assert_true(wait_readable(v4.fd));
    assert_int_equal(udp_recv_one(&v4, buf, sizeof(buf), &len, &from), 1);
    assert_memory_equal(buf, "pong", 4);
    assert_int_equal(from.ss.ss_family, AF_INET);
    assert_int_equal(udp_addr_port(&from), udp_addr_port(&dual.local));
  }
  udp_socket_close(&v4);
  udp_socket_close(&dual);
}

/* A taken port stays an error (no silent fallback to IPv4 on another
 * socket): EADDRINUSE, as udp_socket_open says it. */
static void taken_port_is_not_a_fallback(void **state) {
  (void)state;
  udp_socket_t first, second;
  if (!open_dual(&first)) {
    udp_socket_close(&first);
    TU_SKIP("no IPv6 on this host");
  }
  assert_int_equal(udp_socket_open_any(udp_addr_port(&first.local), &second),
                   QP_ERR_SOCKET);
  TU_ASSERT_CONTAINS(qp_last_error(), "another socket holds this port");
  udp_socket_close(&first);
}

/* Each name in the family asked, strictly: a dual-stack socket asks a STUN
 * server once per family. No DNS server is involved (literals,
 * localhost, RFC 6761 .invalid). */
static void resolve_per_family(void **state) {
  (void)state;
  const char *names[] = {"192.0.2.1:3478", "192.0.2.1:3478", "[2001:db8::1]:3478",
                         "[2001:db8::1]", "name.invalid"};
  int families[] = {AF_INET, AF_INET6, AF_INET, AF_INET6, AF_INET6};
  udp_resolved_t out[5];
  assert_int_equal(udp_resolve_names_in(names, families, 5, 3478, 2000, NULL, NULL, out),
                   5);
  assert_int_equal(out[0].rc, 0);
  assert_string_equal(out[0].text, "192.0.2.1:3478");
  assert_int_equal(out[1].rc, QP_ERR_RESOLVE);
  TU_ASSERT_CONTAINS(out[1].message, "not an IPv6 address");
  assert_int_equal(out[2].rc, QP_ERR_RESOLVE);
  TU_ASSERT_CONTAINS(out[2].message, "not an IPv4 address");
  assert_int_equal(out[3].rc, 0); /* a literal keeps its text; the port defaults */
  assert_int_equal(out[3].addr.ss.ss_family, AF_INET6);
  assert_int_equal(udp_addr_port(&out[3].addr), 3478);
  assert_int_not_equal(out[4].rc, 0);
  /* The old call keeps literals of any family. */
  assert_int_equal(udp_resolve_names(names + 2, 1, 3478, AF_INET, 2000, NULL, NULL, out), 1);
  assert_int_equal(out[0].rc, 0);
}

static bool is_ula(const udp_addr_t *a) {
  const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
  return a->ss.ss_family == AF_INET6 && (s6->sin6_addr.s6_addr[0] & 0xfe) == 0xfc;
}

/* 0 loopback, 1 ULA, 2 IPv4, 3 global IPv6: the order of preference. */
static int rank_of(const udp_addr_t *a) {
  if (udp_addr_is_loopback(a))
    return 0;
  if (is_ula(a))
    return 1;
  return udp_addr_family(a) == AF_INET ? 2 : 3;
}

/* Host candidates of a dual-stack socket (getifaddrs; nothing is sent). */
static void host_candidates_of_both_families(void **state) {
  (void)state;
  udp_socket_t dual;
  if (!open_dual(&dual)) {
    udp_socket_close(&dual);
    TU_SKIP("no IPv6 on this host");
  }
  trav_agent_t *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  a->socks[0] = &dual;
  a->sock_count = 1;
  TU_RC_EQ(trav_gather_host(a, 0), 0, qp_last_error());
  bool v4_loop = false, v6_loop = false;
  for (size_t i = 0; i < a->cand_count; i++) {
    const trav_cand_t *c = &a->cands[i];
    char text[UDP_ADDRSTRLEN];
    print_message("host candidate %s priority %u\n",
                  udp_addr_to_string(&c->addr, text, sizeof(text)), c->priority);
    assert_int_equal(c->type, RDV_CAND_HOST);
    assert_int_equal(udp_addr_port(&c->addr), udp_addr_port(&dual.local));
    if (c->addr.ss.ss_family == AF_INET6) {
      const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&c->addr.ss)->sin6_addr;
      assert_false(IN6_IS_ADDR_LINKLOCAL(a6));
      assert_false(IN6_IS_ADDR_V4MAPPED(a6));
      v6_loop = v6_loop || IN6_IS_ADDR_LOOPBACK(a6);
    } else {
      v4_loop = v4_loop || udp_addr_is_loopback(&c->addr);
    }
    for (size_t j = 0; j < a->cand_count; j++)
      if (rank_of(&c->addr) > rank_of(&a->cands[j].addr))
        assert_true(c->priority > a->cands[j].priority);
  }
  /* lo is up on every host this runs on: both loopbacks are there. */
  assert_true(v4_loop);
  assert_true(v6_loop);
  free(a);
  udp_socket_close(&dual);
}

/* Bound to ::1 the socket has that one candidate, IPv6. */
static void host_candidate_of_a_bound_ipv6_socket(void **state) {
  (void)state;
  udp_socket_t s;
  udp_addr_t bind = addr_of("::1", 0);
  if (udp_socket_open(&bind, &s) != 0)
    TU_SKIP("cannot bind ::1 (IPv6 disabled)");
  trav_agent_t *a = calloc(1, sizeof(*a));
  assert_non_null(a);
  a->socks[0] = &s;
  a->sock_count = 1;
  TU_RC_EQ(trav_gather_host(a, 0), 0, qp_last_error());
  assert_int_equal(a->cand_count, 1);
  assert_true(udp_addr_equal(&a->cands[0].addr, &s.local));
  char ip[INET6_ADDRSTRLEN];
  assert_string_equal(trav_addr_ip(&a->cands[0].addr, ip, sizeof(ip)), "::1");
  free(a);
  udp_socket_close(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mapped_is_the_ipv4_address),
      cmocka_unit_test(stun_writes_mapped_as_ipv4),
      cmocka_unit_test(dual_stack_socket_carries_ipv4),
      cmocka_unit_test(taken_port_is_not_a_fallback),
      cmocka_unit_test(resolve_per_family),
      cmocka_unit_test(host_candidates_of_both_families),
      cmocka_unit_test(host_candidate_of_a_bound_ipv6_socket),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
