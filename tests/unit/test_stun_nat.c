/* ctest: labels=loopback */
/* NAT behavior discovery: the classification table, and real discovery
 * against the embedded server on loopback (no NAT there, so "open"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>

#include "common/error.h"
#include "udp/udp.h"
#include "stun/stun_nat.h"
#include "stun/stun_server.h"
#include "tu.h"

#define TIMING_SLACK_MS 400

static void classification_table(void **state) {
  (void)state;
  const struct {
    bool behind_nat;
    stun_nat_mapping mapping;
    stun_nat_filtering filtering;
    stun_nat_type want;
  } cases[] = {
      {false, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
       STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT, STUN_NAT_TYPE_OPEN},
      {false, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT, STUN_NAT_FILTERING_UNKNOWN,
       STUN_NAT_TYPE_OPEN},
      {false, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
       STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT, STUN_NAT_TYPE_FIREWALL},
      {true, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
       STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT, STUN_NAT_TYPE_FULL_CONE},
      {true, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
       STUN_NAT_FILTERING_ADDRESS_DEPENDENT, STUN_NAT_TYPE_RESTRICTED_CONE},
      {true, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
       STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT,
       STUN_NAT_TYPE_PORT_RESTRICTED_CONE},
      {true, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT, STUN_NAT_FILTERING_UNKNOWN,
       STUN_NAT_TYPE_CONE},
      {true, STUN_NAT_MAPPING_ADDRESS_DEPENDENT,
       STUN_NAT_FILTERING_ADDRESS_DEPENDENT, STUN_NAT_TYPE_SYMMETRIC},
      {true, STUN_NAT_MAPPING_ADDRESS_AND_PORT_DEPENDENT,
       STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT, STUN_NAT_TYPE_SYMMETRIC},
      {true, STUN_NAT_MAPPING_DESTINATION_DEPENDENT, STUN_NAT_FILTERING_UNKNOWN,
       STUN_NAT_TYPE_SYMMETRIC},
      {true, STUN_NAT_MAPPING_UNKNOWN, STUN_NAT_FILTERING_UNKNOWN,
       STUN_NAT_TYPE_UNKNOWN},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    stun_nat_result r = {.behind_nat = cases[i].behind_nat,
                         .mapping = cases[i].mapping,
                         .filtering = cases[i].filtering};
    stun_nat_classify(&r);
    assert_int_equal(r.type, cases[i].want);
  }
  stun_nat_result blocked = {.type = STUN_NAT_TYPE_UDP_BLOCKED};
  stun_nat_classify(&blocked);
  assert_int_equal(blocked.type, STUN_NAT_TYPE_UDP_BLOCKED);
  assert_string_equal(stun_nat_type_name(STUN_NAT_TYPE_PORT_RESTRICTED_CONE),
                      "port-restricted cone");
  assert_string_equal(stun_nat_type_name((stun_nat_type)99), "unknown");
}

static void to_string_has_the_facts(void **state) {
  (void)state;
  stun_nat_result r = {.behind_nat = true,
                       .mapping = STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
                       .filtering =
                           STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT,
                       .rfc5780 = true,
                       .has_port_delta = true,
                       .port_delta = 1,
                       .port_allocation = STUN_NAT_PORTS_SEQUENTIAL};
  assert_int_equal(udp_addr_parse("203.0.113.4:40000", 0, &r.mapped), 0);
  stun_nat_classify(&r);
  char buf[256];
  assert_string_equal(stun_nat_to_string(&r, buf, sizeof(buf)),
                      "port-restricted cone (mapping endpoint-independent, "
                      "filtering address-and-port-dependent, mapped "
                      "203.0.113.4:40000, ports sequential, delta +1)");
}

static stun_nat_config config_for(const stun_server_t *server, int timeout) {
  stun_nat_config cfg = {.timeout_ms = timeout, .has_local = true};
  assert_int_equal(stun_server_address(server, 0, &cfg.server), 0);
  assert_int_equal(udp_addr_parse("127.0.0.1:0", 0, &cfg.local), 0);
  return cfg;
}

static void rfc5780_discovery_on_loopback_is_open(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", "127.0.0.2:0", &server), 0);
  stun_nat_config cfg = config_for(server, 3000);
  stun_nat_result r;
  int64_t start = tu_now_ms();
  assert_int_equal(stun_nat_discover(&cfg, &r), 0);
  char text[256];
  print_message("discovery: %s\n", stun_nat_to_string(&r, text, sizeof(text)));
  assert_true(tu_now_ms() - start < 3000); /* every test was answered */
  assert_true(r.rfc5780);
  assert_false(r.behind_nat);
  assert_int_equal(r.type, STUN_NAT_TYPE_OPEN);
  assert_int_equal(r.mapping, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT);
  assert_int_equal(r.filtering, STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT);
  assert_int_equal(r.port_allocation, STUN_NAT_PORTS_PRESERVED);
  assert_true(r.has_port_delta);
  assert_true(udp_addr_equal(&r.mapped, &r.local));
  udp_addr_t alt;
  stun_server_address(server, 3, &alt);
  assert_true(udp_addr_equal(&r.other_address, &alt));
  assert_true(udp_addr_equal(&r.mapped_alt_ip, &r.mapped));
  stun_server_stop(server);
}

static void plain_servers_use_two_server_fallback(void **state) {
  (void)state;
  stun_server_t *a = NULL, *b = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &a), 0);
  assert_int_equal(stun_server_start("127.0.0.2:0", NULL, &b), 0);
  stun_nat_config cfg = config_for(a, 2000);
  cfg.has_second_server = true;
  assert_int_equal(stun_server_address(b, 0, &cfg.second_server), 0);
  stun_nat_result r;
  assert_int_equal(stun_nat_discover(&cfg, &r), 0);
  assert_false(r.rfc5780);
  assert_false(r.behind_nat);
  assert_int_equal(r.type, STUN_NAT_TYPE_OPEN);
  assert_int_equal(r.mapping, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT);
  assert_int_equal(r.filtering, STUN_NAT_FILTERING_UNKNOWN);
  stun_server_stop(a);
  stun_server_stop(b);
}

static void dead_server_means_udp_blocked_within_timeout(void **state) {
  (void)state;
  stun_nat_config cfg = {.timeout_ms = 600};
  assert_int_equal(udp_addr_parse("127.0.0.1:0", 0, &cfg.server), 0);
  udp_addr_set_port(&cfg.server, tu_free_udp_port());
  stun_nat_result r;
  int64_t start = tu_now_ms();
  assert_int_equal(stun_nat_discover(&cfg, &r), 0);
  assert_true(tu_now_ms() - start <= 600 + TIMING_SLACK_MS);
  assert_int_equal(r.type, STUN_NAT_TYPE_UDP_BLOCKED);
  assert_int_equal(stun_nat_discover(NULL, &r), QP_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(classification_table),
      cmocka_unit_test(to_string_has_the_facts),
      cmocka_unit_test(rfc5780_discovery_on_loopback_is_open),
      cmocka_unit_test(plain_servers_use_two_server_fallback),
      cmocka_unit_test(dead_server_means_udp_blocked_within_timeout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
