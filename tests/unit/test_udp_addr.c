/* ctest: labels=unit */
/* The one "host:port" parser (IPv4, [IPv6]:port, bare IPv6, bare host,
 * bad ports, empty) and the one name lookup, with literals and names that
 * never reach a DNS server (localhost, RFC 6761 .invalid). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "stun/stun_msg.h"
#include "tu.h"
#include "udp/udp.h"

static void split_ok(const char *text, const char *host, uint16_t port) {
  char h[UDP_HOST_MAX];
  uint16_t p = 0;
  TU_RC_EQ(udp_hostport_split(text, STUN_DEFAULT_PORT, h, sizeof(h), &p), 0,
           qp_last_error());
  assert_string_equal(h, host);
  assert_int_equal(p, port);
}

static void split_bad(const char *text, const char *why) {
  char h[UDP_HOST_MAX];
  uint16_t p = 0;
  assert_int_equal(udp_hostport_split(text, STUN_DEFAULT_PORT, h, sizeof(h), &p),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), why);
  if (text != NULL && *text != '\0')
    TU_ASSERT_CONTAINS(qp_last_error(), text);
}

static void hostport_forms(void **state) {
  (void)state;
  split_ok("192.0.2.1:3479", "192.0.2.1", 3479);
  split_ok("192.0.2.1", "192.0.2.1", STUN_DEFAULT_PORT);
  split_ok("[2001:db8::1]:443", "2001:db8::1", 443);
  split_ok("[::1]", "::1", STUN_DEFAULT_PORT);
  split_ok("2001:db8::1", "2001:db8::1", STUN_DEFAULT_PORT); /* bare IPv6 */
  split_ok("stun.example.org:19302", "stun.example.org", 19302);
  split_ok("stun.example.org", "stun.example.org", STUN_DEFAULT_PORT);
  split_ok("127.0.0.1:0", "127.0.0.1", 0); /* 0: any port, for binding */
  split_ok("h:65535", "h", 65535);
}

static void hostport_errors(void **state) {
  (void)state;
  split_bad("10.0.0.1:70000", "port must be 0-65535");
  split_bad("10.0.0.1:", "port must be 0-65535");
  split_bad("10.0.0.1:-1", "port must be 0-65535");
  split_bad("10.0.0.1:12ab", "port must be 0-65535");
  split_bad("[::1]:x", "port must be 0-65535");
  split_bad("[::1", "unbalanced");
  split_bad("[::1]3478", "unbalanced");
  split_bad(":3478", "no host");
  split_bad("[]:3478", "no host");
  split_bad("", "empty");
  split_bad(NULL, "empty");
  char long_name[UDP_HOST_MAX + 8];
  memset(long_name, 'a', sizeof(long_name) - 1);
  long_name[sizeof(long_name) - 1] = '\0';
  char h[UDP_HOST_MAX];
  uint16_t p;
  assert_int_equal(udp_hostport_split(long_name, 1, h, sizeof(h), &p), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "too long");
}

static void numeric_parse(void **state) {
  (void)state;
  udp_addr_t a;
  char text[UDP_ADDRSTRLEN];
  assert_int_equal(udp_addr_parse("[2001:db8::1]:443", 0, &a), 0);
  assert_string_equal(udp_addr_to_string(&a, text, sizeof(text)), "[2001:db8::1]:443");
  assert_int_equal(a.len, sizeof(struct sockaddr_in6));
  assert_int_equal(udp_addr_parse("10.0.0.1", STUN_DEFAULT_PORT, &a), 0);
  assert_string_equal(udp_addr_to_string(&a, text, sizeof(text)), "10.0.0.1:3478");
  assert_int_equal(a.len, sizeof(struct sockaddr_in));
  /* Names are not numeric: the parser never looks them up. */
  assert_int_equal(udp_addr_parse("example.com:3478", 0, &a), QP_ERR_INVALID);
  assert_int_equal(udp_addr_parse("10.0.0.1:70000", 0, &a), QP_ERR_INVALID);
}

static void address_helpers(void **state) {
  (void)state;
  udp_addr_t a, b;
  assert_int_equal(udp_addr_parse("198.51.100.7:1000", 0, &a), 0);
  assert_int_equal(udp_addr_parse("198.51.100.7:2000", 0, &b), 0);
  assert_true(udp_addr_same_ip(&a, &b));
  assert_false(udp_addr_equal(&a, &b));
  udp_addr_set_port(&b, 1000);
  assert_true(udp_addr_equal(&a, &b));
  assert_false(udp_addr_is_unspecified(&a));
  assert_int_equal(udp_addr_parse("0.0.0.0:5", 0, &a), 0);
  assert_true(udp_addr_is_unspecified(&a));
  assert_int_equal(udp_addr_parse("[::]:5", 0, &a), 0);
  assert_true(udp_addr_is_unspecified(&a));
  assert_int_equal(udp_addr_parse("127.0.0.1:5", 0, &b), 0);
  udp_addr_t src;
  assert_int_equal(udp_route_source(&b, 77, &src), 0);
  assert_true(udp_addr_is_loopback(&src));
  assert_int_equal(udp_addr_port(&src), 77);
}

static void lookup_literals_and_names(void **state) {
  (void)state;
  udp_addr_t a;
  char text[UDP_ADDRSTRLEN];
  assert_int_equal(udp_addr_lookup("127.0.0.1", 3478, AF_UNSPEC, &a), 0);
  assert_string_equal(udp_addr_to_string(&a, text, sizeof(text)), "127.0.0.1:3478");
  assert_int_equal(udp_addr_lookup("::1", 19302, AF_INET6, &a), 0);
  assert_string_equal(udp_addr_to_string(&a, text, sizeof(text)), "[::1]:19302");
  assert_int_equal(udp_addr_lookup("localhost", 3478, AF_INET, &a), 0);
  assert_int_equal(a.ss.ss_family, AF_INET);
  assert_int_equal(a.len, sizeof(struct sockaddr_in));
  assert_int_equal(udp_addr_port(&a), 3478);
  /* RFC 6761 reserves .invalid: it never resolves. */
  assert_int_equal(udp_addr_lookup("stun.nonexistent.invalid", 3478, AF_UNSPEC, &a),
                   QP_ERR_RESOLVE);
  TU_ASSERT_CONTAINS(qp_last_error(), "stun.nonexistent.invalid");
  assert_int_equal(udp_addr_lookup("", 3478, AF_UNSPEC, &a), QP_ERR_INVALID);
}

static void lost_packet_errnos(void **state) {
  (void)state;
  assert_true(udp_errno_is_loss(EAGAIN));
  assert_true(udp_errno_is_loss(ENOBUFS));
  assert_true(udp_errno_is_loss(ECONNREFUSED));
  assert_true(udp_errno_is_loss(EHOSTUNREACH));
  assert_false(udp_errno_is_loss(EBADF));
  assert_false(udp_errno_is_loss(EINVAL));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(hostport_forms),     cmocka_unit_test(hostport_errors),
      cmocka_unit_test(numeric_parse),      cmocka_unit_test(address_helpers),
      cmocka_unit_test(lookup_literals_and_names), cmocka_unit_test(lost_packet_errnos),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
