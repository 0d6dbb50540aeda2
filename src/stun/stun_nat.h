/*
 * stun_nat.h: NAT behavior discovery (RFC 5780 sections 4.3 and 4.4), with
 * a fallback for servers that do not implement RFC 5780.
 *
 * Discovery opens two UDP sockets of its own: one for the mapping tests
 * and a fresh one for the filtering tests, so that the mapping tests' traffic
 * to the server's alternate address does not open the filter the
 * filtering tests probe.
 *
 * Phase 1 (both sockets, at once, to the server): test I. Its two mappings,
 *   taken back to back from two sockets, also give the port delta that
 *   tells sequential from random port allocation (for port prediction).
 * Phase 2, when test I's answer carried OTHER-ADDRESS (RFC 5780):
 *   mapping test II (alternate IP, primary port) and test III (alternate
 *   IP and port) on the mapping socket; filtering test II (CHANGE-REQUEST
 *   change IP and port) and test III (change port) on the filtering socket.
 * Phase 2, otherwise, when a second server is given: one request to it on
 *   the mapping socket. The same mapped address from both servers means
 *   endpoint-independent mapping; a different one means per-destination
 *   mapping. Filtering stays unknown.
 */
#ifndef QP_STUN_NAT_H
#define QP_STUN_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "udp/udp.h"

/* Two mappings taken back to back whose ports differ by at most this much
 * (and are not simply the local ports) count as sequential allocation. A
 * busy NAT hands out a few ports to other hosts in between. */
#define STUN_NAT_SEQUENTIAL_MAX_DELTA 16

typedef enum stun_nat_mapping {
  STUN_NAT_MAPPING_UNKNOWN = 0,
  STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT,
  STUN_NAT_MAPPING_ADDRESS_DEPENDENT,
  STUN_NAT_MAPPING_ADDRESS_AND_PORT_DEPENDENT,
  /* Fallback only: differs per destination; one of the two above. */
  STUN_NAT_MAPPING_DESTINATION_DEPENDENT,
} stun_nat_mapping;

typedef enum stun_nat_filtering {
  STUN_NAT_FILTERING_UNKNOWN = 0,
  STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT,
  STUN_NAT_FILTERING_ADDRESS_DEPENDENT,
  STUN_NAT_FILTERING_ADDRESS_AND_PORT_DEPENDENT,
} stun_nat_filtering;

/* The classic (RFC 3489) labels, derived from mapping and filtering. */
typedef enum stun_nat_type {
  STUN_NAT_TYPE_UNKNOWN = 0,
  STUN_NAT_TYPE_UDP_BLOCKED,     /* no answer to test I */
  STUN_NAT_TYPE_OPEN,            /* no NAT, nothing filtered (or unknown) */
  STUN_NAT_TYPE_FIREWALL,        /* no NAT, but inbound traffic filtered */
  STUN_NAT_TYPE_FULL_CONE,       /* EIM + endpoint-independent filtering */
  STUN_NAT_TYPE_RESTRICTED_CONE, /* EIM + address-dependent */
  STUN_NAT_TYPE_PORT_RESTRICTED_CONE, /* EIM + address-and-port-dependent */
  STUN_NAT_TYPE_CONE,                 /* EIM, filtering unknown (fallback) */
  STUN_NAT_TYPE_SYMMETRIC,            /* mapping depends on the destination */
} stun_nat_type;

typedef enum stun_nat_port_allocation {
  STUN_NAT_PORTS_UNKNOWN = 0,
  STUN_NAT_PORTS_PRESERVED,  /* mapped port = local port */
  STUN_NAT_PORTS_SEQUENTIAL, /* see STUN_NAT_SEQUENTIAL_MAX_DELTA */
  STUN_NAT_PORTS_RANDOM,
} stun_nat_port_allocation;

typedef struct stun_nat_config {
  udp_addr_t server;        /* RFC 5780 server, or any */
  bool has_second_server;   /* for the fallback */
  udp_addr_t second_server; /* another server, another IP */
  bool has_local;           /* bind here (port ignored) */
  udp_addr_t local;         /* default: any address */
  int timeout_ms;           /* for the whole discovery */
} stun_nat_config;

typedef struct stun_nat_result {
  stun_nat_type type;
  stun_nat_mapping mapping;
  stun_nat_filtering filtering;
  bool behind_nat; /* test I's mapped address is not the local address */
  bool rfc5780;    /* the server gave OTHER-ADDRESS; tests II/III ran */
  bool used_second_server;
  udp_addr_t local;              /* mapping socket, as routed to server */
  udp_addr_t mapped;             /* test I */
  udp_addr_t other_address;      /* when rfc5780 */
  udp_addr_t mapped_alt_ip;      /* mapping test II */
  udp_addr_t mapped_alt_ip_port; /* mapping test III */
  udp_addr_t mapped_second;      /* fallback server */
  /* Port of the filtering socket's test I mapping minus the mapping
   * socket's, both taken back to back. */
  bool has_port_delta;
  int port_delta;
  stun_nat_port_allocation port_allocation;
} stun_nat_result;

/*
 * Run the discovery. Blocks for at most cfg->timeout_ms (a NAT that
 * filters makes the filtering tests wait that long). Returns 0 with *out
 * filled (type UDP_BLOCKED when the server never answered), or
 * QP_ERR_INVALID, QP_ERR_SOCKET, QP_ERR_STUN (the server answered test I
 * with an error), QP_ERR_INTERRUPTED.
 */
int stun_nat_discover(const stun_nat_config *cfg, stun_nat_result *out);

/* Classify from the raw observations already in r (used by discover; public
 * so tests can check every combination). Sets r->type. */
void stun_nat_classify(stun_nat_result *r);

const char *stun_nat_type_name(stun_nat_type type);
const char *stun_nat_mapping_name(stun_nat_mapping mapping);
const char *stun_nat_filtering_name(stun_nat_filtering filtering);
const char *stun_nat_port_allocation_name(stun_nat_port_allocation a);

/* One line: "port-restricted cone (mapping endpoint-independent, filtering
 * address-and-port-dependent, mapped 203.0.113.4:40000, ports sequential,
 * delta +1)". Returns buf. */
const char *stun_nat_to_string(const stun_nat_result *r, char *buf, size_t len);

#endif
