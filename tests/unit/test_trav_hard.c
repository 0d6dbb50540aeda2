/* ctest: labels=unit */
/*
 * test_trav_hard: the pure parts of hard-NAT traversal (trav_hard.c): how
 * mapped ports classify a NAT, how that goes into the record and back, the
 * strategy both sides derive, and the bounds of the configuration. The
 * sockets and probes themselves run in the NAT lab (tests/lab/
 * test_hard_nat.sh, test_traversal_matrix.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tu.h"
#include "test_trav_tu.h"
#include "stun/stun_nat.h"

#define URL "mem:trav_hard"

static trav_behavior_t classify(const uint16_t *ports, size_t n) {
  trav_behavior_t b;
  trav_behavior_classify(ports, n, &b);
  return b;
}

static void test_classify(void **state) {
  (void)state;
  trav_behavior_t b = classify((uint16_t[]){40000}, 1);
  assert_int_equal(b.ports, TRAV_PORTS_UNKNOWN);

  b = classify((uint16_t[]){40000, 40000, 40000}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_SAME);
  assert_int_equal(b.delta, 0);

  /* The lab's symmetric-seq NAT: +1 per new mapping. */
  b = classify((uint16_t[]){20001, 20002, 20003}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_SEQUENTIAL);
  assert_int_equal(b.delta, 1);
  assert_int_equal(b.last_port, 20003);

  /* A busy NAT: other hosts took ports in between; the smallest step. */
  b = classify((uint16_t[]){30010, 30013, 30015}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_SEQUENTIAL);
  assert_int_equal(b.delta, 2);

  b = classify((uint16_t[]){50000, 49998, 49996}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_SEQUENTIAL);
  assert_int_equal(b.delta, -2);

  /* Two servers only: one step. */
  b = classify((uint16_t[]){1000, 1004}, 2);
  assert_int_equal(b.ports, TRAV_PORTS_SEQUENTIAL);
  assert_int_equal(b.delta, 4);

  /* Random (the lab's fully-random masquerade), too big a step, steps of
   * both signs, a repeated port among new ones. */
  b = classify((uint16_t[]){3789, 43678, 36504}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_RANDOM);
  assert_int_equal(b.delta, 0);
  b = classify((uint16_t[]){1000, 1000 + STUN_NAT_SEQUENTIAL_MAX_DELTA + 1}, 2);
  assert_int_equal(b.ports, TRAV_PORTS_RANDOM);
  b = classify((uint16_t[]){1000, 1001, 1000}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_RANDOM);
  b = classify((uint16_t[]){1000, 1000, 1005}, 3);
  assert_int_equal(b.ports, TRAV_PORTS_RANDOM);
}

static void round_trip(trav_ports ports, int delta, const char *mapping,
                       int port_delta) {
  trav_behavior_t b = {.ports = ports, .delta = delta}, back;
  rdv_record rec;
  rdv_record_init(&rec, RDV_ROLE_SERVER, "s");
  trav_behavior_to_record(&b, &rec.nat);
  assert_string_equal(rec.nat.mapping, mapping);
  assert_int_equal(rec.nat.port_delta, port_delta);
  trav_behavior_from_record(&rec.nat, &back);
  assert_int_equal(back.ports, ports);
  assert_int_equal(back.delta, delta);
}

static void test_record_form(void **state) {
  (void)state;
  round_trip(TRAV_PORTS_UNKNOWN, 0, "unknown", 0);
  round_trip(TRAV_PORTS_SAME, 0, "endpoint-independent", 0);
  round_trip(TRAV_PORTS_SEQUENTIAL, 1, "destination-dependent", 1);
  round_trip(TRAV_PORTS_SEQUENTIAL, -3, "destination-dependent", -3);
  round_trip(TRAV_PORTS_RANDOM, 0, "destination-dependent", 0);

  /* RFC 5780 names from other implementations; a step too big to
   * predict from counts as random. */
  rdv_nat nat = {.mapping = "address-and-port-dependent", .port_delta = 1};
  trav_behavior_t b;
  trav_behavior_from_record(&nat, &b);
  assert_int_equal(b.ports, TRAV_PORTS_SEQUENTIAL);
  nat.port_delta = 1000;
  trav_behavior_from_record(&nat, &b);
  assert_int_equal(b.ports, TRAV_PORTS_RANDOM);
  snprintf(nat.mapping, sizeof(nat.mapping), "something-new");
  trav_behavior_from_record(&nat, &b);
  assert_int_equal(b.ports, TRAV_PORTS_UNKNOWN);
}

static trav_strategy choose(trav_ports self, trav_ports peer) {
  trav_behavior_t s = {.ports = self, .delta = self == TRAV_PORTS_SEQUENTIAL},
                  p = {.ports = peer, .delta = peer == TRAV_PORTS_SEQUENTIAL};
  return trav_strategy_choose(&s, &p);
}

static void test_strategy(void **state) {
  (void)state;
  const trav_ports U = TRAV_PORTS_UNKNOWN, E = TRAV_PORTS_SAME,
                   S = TRAV_PORTS_SEQUENTIAL, R = TRAV_PORTS_RANDOM;
  assert_int_equal(choose(E, E), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(U, U), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(R, E), TRAV_STRATEGY_BIRTHDAY_HARD);
  assert_int_equal(choose(E, R), TRAV_STRATEGY_BIRTHDAY_PROBE);
  /* Both sides derive matching roles from the two records. */
  assert_int_equal(choose(R, U), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(U, R), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(S, E), TRAV_STRATEGY_DIRECT); /* predictions */
  assert_int_equal(choose(E, S), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(S, S), TRAV_STRATEGY_DIRECT);
  assert_int_equal(choose(R, R), TRAV_STRATEGY_BOTH_HARD);
  assert_int_equal(choose(R, S), TRAV_STRATEGY_BOTH_HARD);
  assert_int_equal(choose(S, R), TRAV_STRATEGY_BOTH_HARD);
}

static void test_config_bounds(void **state) {
  (void)state;
  tt_side_t s;
  tt_side_init(&s, URL, "bounds", true, 100);
  s.cfg.hard_nat_sockets = TRAV_BIRTHDAY_MAX_SOCKETS + 1;
  assert_int_equal(trav_run(&s.sock, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "hard_nat_sockets");
  s.cfg.hard_nat_sockets = -1;
  s.cfg.hard_nat_probe_rate = -5;
  assert_int_equal(trav_run(&s.sock, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "hard_nat_probe_rate");
  s.cfg.hard_nat_probe_rate = 0;
  s.cfg.hard_nat_max_probes = TRAV_PROBES_MAX_LIMIT + 1;
  assert_int_equal(trav_run(&s.sock, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "hard_nat_max_probes");
  tt_side_cleanup(&s);
}

/* Two easy peers on loopback: no extra socket, the result's socket is the
 * caller's. */
static void test_result_socket_is_callers(void **state) {
  (void)state;
  tt_side_t server, client;
  tt_side_init(&server, URL, "sock", true, 5000);
  tt_side_init(&client, URL, "sock", false, 5000);
  tt_side_start(&server);
  tt_side_start(&client);
  assert_int_equal(tt_side_join(&server), 0);
  assert_int_equal(tt_side_join(&client), 0);
  assert_false(server.res.sock_is_extra);
  assert_int_equal(server.res.sock.fd, server.sock.fd);
  assert_false(client.res.sock_is_extra);
  assert_int_equal(client.res.sock.fd, client.sock.fd);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_classify),
      cmocka_unit_test(test_record_form),
      cmocka_unit_test(test_strategy),
      cmocka_unit_test(test_config_bounds),
      cmocka_unit_test(test_result_socket_is_callers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
