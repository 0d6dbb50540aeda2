#include "stun/stun_nat.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "stun/stun_client.h"

/* Phase 1 gets at most this share (percent) of the timeout, so a dead
 * server leaves time for nothing else but phase 2 is never starved. */
#define PHASE1_SHARE_PERCENT 50

/* Requests of phase 2 with an RFC 5780 server, in this order. */
enum { MAP_TEST2, MAP_TEST3, FILTER_TEST2, FILTER_TEST3, RFC5780_REQUESTS };

typedef struct nat_sockets {
  udp_socket_t mapping;   /* tests I, II, III of section 4.3 */
  udp_socket_t filtering; /* tests I, II, III of section 4.4 */
} nat_sockets;

const char *stun_nat_type_name(stun_nat_type type) {
  static const char *const names[] = {"unknown",
                                      "UDP blocked",
                                      "open",
                                      "symmetric UDP firewall",
                                      "full cone",
                                      "restricted cone",
                                      "port-restricted cone",
                                      "cone (filtering unknown)",
                                      "symmetric"};
  return (unsigned)type < sizeof(names) / sizeof(names[0]) ? names[type]
                                                           : "unknown";
}

const char *stun_nat_mapping_name(stun_nat_mapping mapping) {
  static const char *const names[] = {
      "unknown", "endpoint-independent", "address-dependent",
      "address-and-port-dependent", "destination-dependent"};
  return (unsigned)mapping < sizeof(names) / sizeof(names[0]) ? names[mapping]
                                                              : "unknown";
}

const char *stun_nat_filtering_name(stun_nat_filtering filtering) {
  static const char *const names[] = {"unknown", "endpoint-independent",
                                      "address-dependent",
                                      "address-and-port-dependent"};
  return (unsigned)filtering < sizeof(names) / sizeof(names[0])
             ? names[filtering]
             : "unknown";
}

const char *stun_nat_port_allocation_name(stun_nat_port_allocation a) {
  static const char *const names[] = {"unknown", "preserved", "sequential",
                                      "random"};
  return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
}

static stun_nat_type cone_type(stun_nat_filtering filtering) {
  switch (filtering) {
  case STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT:
    return STUN_NAT_TYPE_FULL_CONE;
  case STUN_NAT_FILTERING_ADDRESS_DEPENDENT:
    return STUN_NAT_TYPE_RESTRICTED_CONE;
  case STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT:
    return STUN_NAT_TYPE_PORT_RESTRICTED_CONE;
  default:
    return STUN_NAT_TYPE_CONE;
  }
}

void stun_nat_classify(stun_nat_result *r) {
  if (r->type == STUN_NAT_TYPE_UDP_BLOCKED)
    return;
  if (!r->behind_nat) {
    bool filtered =
        r->filtering == STUN_NAT_FILTERING_ADDRESS_DEPENDENT ||
        r->filtering == STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT;
    r->type = filtered ? STUN_NAT_TYPE_FIREWALL : STUN_NAT_TYPE_OPEN;
    return;
  }
  switch (r->mapping) {
  case STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT:
    r->type = cone_type(r->filtering);
    break;
  case STUN_NAT_MAPPING_ADDRESS_DEPENDENT:
  case STUN_NAT_MAPPING_ADDRESS_AND_PORT_DEPENDENT:
  case STUN_NAT_MAPPING_DESTINATION_DEPENDENT:
    r->type = STUN_NAT_TYPE_SYMMETRIC;
    break;
  default:
    r->type = STUN_NAT_TYPE_UNKNOWN;
  }
}

const char *stun_nat_to_string(const stun_nat_result *r, char *buf,
                               size_t len) {
  char mapped[UDP_ADDRSTRLEN];
  char delta[32] = "";
  if (r->has_port_delta)
    snprintf(delta, sizeof(delta), ", delta %+d", r->port_delta);
  snprintf(buf, len, "%s (mapping %s, filtering %s, mapped %s, ports %s%s%s)",
           stun_nat_type_name(r->type), stun_nat_mapping_name(r->mapping),
           stun_nat_filtering_name(r->filtering),
           udp_addr_to_string(&r->mapped, mapped, sizeof(mapped)),
           stun_nat_port_allocation_name(r->port_allocation), delta,
           r->rfc5780 ? "" : ", server without RFC 5780");
  return buf;
}

/* ---- sockets ----------------------------------------------------------- */

static int open_socket(const stun_nat_config *cfg, udp_socket_t *out) {
  udp_addr_t local;
  if (cfg->has_local)
    local = cfg->local;
  else if (udp_addr_from_ip(cfg->server.ss.ss_family == AF_INET6 ? "::"
                                                                 : "0.0.0.0",
                            0, &local) != 0)
    return QP_ERR_INVALID;
  udp_addr_set_port(&local, 0);
  return udp_socket_open(&local, out);
}

/* The address the server would see without a NAT: the source IP the
 * kernel routes towards the server and the port of the socket. Without a
 * route, the socket's bound address. */
static int local_address(const udp_socket_t *sock, const udp_addr_t *server,
                         udp_addr_t *out) {
  if (udp_route_source(server, udp_addr_port(&sock->local), out) != 0)
    *out = sock->local;
  return 0;
}

static void close_sockets(nat_sockets *s) {
  udp_socket_close(&s->mapping);
  udp_socket_close(&s->filtering);
}

/* ---- analysis ---------------------------------------------------------- */

static void note_port_delta(stun_nat_result *r, const stun_client_result *a,
                            const stun_client_result *b, uint16_t local_a,
                            uint16_t local_b) {
  if (a->state != STUN_TXN_SUCCEEDED || b->state != STUN_TXN_SUCCEEDED)
    return;
  int port_a = udp_addr_port(&a->mapped), port_b = udp_addr_port(&b->mapped);
  r->has_port_delta = true;
  r->port_delta = port_b - port_a;
  if (port_a == local_a && port_b == local_b)
    r->port_allocation = STUN_NAT_PORTS_PRESERVED;
  else if (abs(r->port_delta) <= STUN_NAT_SEQUENTIAL_MAX_DELTA)
    r->port_allocation = STUN_NAT_PORTS_SEQUENTIAL;
  else
    r->port_allocation = STUN_NAT_PORTS_RANDOM;
}

/* RFC 5780 section 4.3: compare test II with test I, then test III with
 * test II. */
static stun_nat_mapping mapping_from_tests(const stun_nat_result *r,
                                           const stun_client_result *t2,
                                           const stun_client_result *t3) {
  if (!r->behind_nat)
    return STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  if (t2->state != STUN_TXN_SUCCEEDED)
    return STUN_NAT_MAPPING_UNKNOWN;
  if (udp_addr_equal(&t2->mapped, &r->mapped))
    return STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT;
  if (t3->state != STUN_TXN_SUCCEEDED)
    return STUN_NAT_MAPPING_UNKNOWN;
  return udp_addr_equal(&t3->mapped, &t2->mapped)
             ? STUN_NAT_MAPPING_ADDRESS_DEPENDENT
             : STUN_NAT_MAPPING_ADDRESS_AND_PORT_DEPENDENT;
}

/* A filtering answer counts only if it came from where the CHANGE-REQUEST
 * asked: a server that ignores the flags would otherwise fake
 * endpoint-independent filtering. */
static bool answered_as_asked(const stun_client_result *t,
                              const udp_addr_t *server) {
  if (t->state != STUN_TXN_SUCCEEDED)
    return false;
  bool ip_changed = !udp_addr_same_ip(&t->from, server);
  bool port_changed = udp_addr_port(&t->from) != udp_addr_port(server);
  return ip_changed == ((t->change_request & STUN_CHANGE_IP) != 0) &&
         port_changed == ((t->change_request & STUN_CHANGE_PORT) != 0);
}

/* Only silence means "filtered"; an error answer means "cannot tell". */
static bool silent(const stun_client_result *t) {
  return t->state == STUN_TXN_FAILED && t->error == QP_ERR_TIMEOUT;
}

/* RFC 5780 section 4.4: test II answered -> endpoint-independent; else
 * test III answered -> address-dependent; else address-and-port. */
static stun_nat_filtering filtering_from_tests(const stun_client_result *t2,
                                               const stun_client_result *t3,
                                               const udp_addr_t *s) {
  if (answered_as_asked(t2, s))
    return STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT;
  if (!silent(t2))
    return STUN_NAT_FILTERING_UNKNOWN;
  if (answered_as_asked(t3, s))
    return STUN_NAT_FILTERING_ADDRESS_DEPENDENT;
  return silent(t3) ? STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT
                    : STUN_NAT_FILTERING_UNKNOWN;
}

/* ---- phases ------------------------------------------------------------ */

static int phase1(const stun_nat_config *cfg, nat_sockets *s, int timeout_ms,
                  stun_nat_result *r, stun_client_result *test1) {
  stun_client_request reqs[2] = {
      {.sock = &s->mapping, .server = cfg->server},
      {.sock = &s->filtering, .server = cfg->server},
  };
  stun_client_result res[2];
  int rc = stun_client_run(reqs, 2, timeout_ms, res);
  if (rc)
    return rc;
  *test1 = res[0];
  udp_addr_t filter_local;
  local_address(&s->filtering, &cfg->server, &filter_local);
  note_port_delta(r, &res[0], &res[1], udp_addr_port(&r->local),
                  udp_addr_port(&filter_local));
  char addr[UDP_ADDRSTRLEN];
  udp_addr_to_string(&cfg->server, addr, sizeof(addr));
  if (res[0].state != STUN_TXN_SUCCEEDED && res[0].error == QP_ERR_SOCKET)
    return err_fail(QP_ERR_SOCKET,
                    "NAT discovery could not send to STUN server %s: %s", addr,
                    strerror(res[0].sys_errno));
  if (res[0].state != STUN_TXN_SUCCEEDED && res[0].error == QP_ERR_STUN)
    return err_fail(QP_ERR_STUN,
                    "STUN server %s refused NAT discovery test I: error %d "
                    "(%s)",
                    addr, res[0].error_code, res[0].error_reason);
  return 0;
}

static int phase2_rfc5780(const stun_nat_config *cfg, nat_sockets *s,
                          int timeout_ms, stun_nat_result *r) {
  udp_addr_t alt_ip = r->other_address;
  udp_addr_set_port(&alt_ip, udp_addr_port(&cfg->server));
  stun_client_request reqs[RFC5780_REQUESTS] = {
      [MAP_TEST2] = {.sock = &s->mapping, .server = alt_ip},
      [MAP_TEST3] = {.sock = &s->mapping, .server = r->other_address},
      [FILTER_TEST2] = {.sock = &s->filtering,
                        .server = cfg->server,
                        .change_flags = STUN_CHANGE_IP | STUN_CHANGE_PORT},
      [FILTER_TEST3] = {.sock = &s->filtering,
                        .server = cfg->server,
                        .change_flags = STUN_CHANGE_PORT},
  };
  stun_client_result res[RFC5780_REQUESTS];
  int rc = stun_client_run(reqs, RFC5780_REQUESTS, timeout_ms, res);
  if (rc)
    return rc;
  r->mapped_alt_ip = res[MAP_TEST2].mapped;
  r->mapped_alt_ip_port = res[MAP_TEST3].mapped;
  r->mapping = mapping_from_tests(r, &res[MAP_TEST2], &res[MAP_TEST3]);
  r->filtering = filtering_from_tests(&res[FILTER_TEST2], &res[FILTER_TEST3],
                                      &cfg->server);
  return 0;
}

/* No RFC 5780: the same mapping towards two servers on different IPs is
 * endpoint-independent as far as one can tell; different is per
 * destination. */
static int phase2_two_servers(const stun_nat_config *cfg, nat_sockets *s,
                              int timeout_ms, stun_nat_result *r) {
  if (!r->behind_nat) {
    r->mapping = STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT;
    return 0;
  }
  if (!cfg->has_second_server)
    return 0;
  stun_client_request req = {.sock = &s->mapping, .server = cfg->second_server};
  stun_client_result res;
  int rc = stun_client_run(&req, 1, timeout_ms, &res);
  if (rc || res.state != STUN_TXN_SUCCEEDED)
    return rc;
  r->used_second_server = true;
  r->mapped_second = res.mapped;
  r->mapping = udp_addr_equal(&res.mapped, &r->mapped)
                   ? STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT
                   : STUN_NAT_MAPPING_DESTINATION_DEPENDENT;
  return 0;
}

/* OTHER-ADDRESS is usable when it differs from the server in IP and port. */
static bool usable_other_address(const stun_client_result *t,
                                 const udp_addr_t *server) {
  return t->has_other_address &&
         t->other_address.ss.ss_family == server->ss.ss_family &&
         !udp_addr_same_ip(&t->other_address, server) &&
         udp_addr_port(&t->other_address) != udp_addr_port(server);
}

static int run_phases(const stun_nat_config *cfg, nat_sockets *s,
                      stun_nat_result *r) {
  int64_t deadline = clock_now_ms() + cfg->timeout_ms;
  stun_client_result test1;
  int rc = local_address(&s->mapping, &cfg->server, &r->local);
  if (rc == 0)
    rc =
        phase1(cfg, s, cfg->timeout_ms * PHASE1_SHARE_PERCENT / 100, r, &test1);
  if (rc)
    return rc;
  if (test1.state != STUN_TXN_SUCCEEDED) {
    r->type = STUN_NAT_TYPE_UDP_BLOCKED;
    return 0;
  }
  r->mapped = test1.mapped;
  r->behind_nat = !udp_addr_equal(&r->mapped, &r->local);
  r->rfc5780 = usable_other_address(&test1, &cfg->server);
  int remaining = (int)(deadline - clock_now_ms());
  if (remaining < 0)
    remaining = 0;
  if (r->rfc5780) {
    r->other_address = test1.other_address;
    return phase2_rfc5780(cfg, s, remaining, r);
  }
  return phase2_two_servers(cfg, s, remaining, r);
}

int stun_nat_discover(const stun_nat_config *cfg, stun_nat_result *out) {
  if (!cfg || !out ||
      (cfg->server.ss.ss_family != AF_INET &&
       cfg->server.ss.ss_family != AF_INET6) ||
      cfg->timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID, "NAT discovery needs a server address and "
                                    "a positive timeout");
  stun_nat_result r;
  memset(&r, 0, sizeof(r));
  nat_sockets s = {.mapping.fd = -1, .filtering.fd = -1};
  int rc = open_socket(cfg, &s.mapping);
  if (rc == 0)
    rc = open_socket(cfg, &s.filtering);
  if (rc == 0)
    rc = run_phases(cfg, &s, &r);
  close_sockets(&s);
  if (rc)
    return rc;
  stun_nat_classify(&r);
  char text[256];
  QP_LOG_INFO("NAT discovery: %s", stun_nat_to_string(&r, text, sizeof(text)));
  *out = r;
  return 0;
}
