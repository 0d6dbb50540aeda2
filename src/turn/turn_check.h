/*
 * turn_check.h: a blocking end-to-end check of one TURN server, for the
 * CLI's `quic-portal turn-check USER:PASS@HOST:PORT` and for tests.
 *
 * On a UDP socket of its own it allocates, gives itself a permission for
 * its own public address (the XOR-MAPPED-ADDRESS), and loops a datagram
 * through the relay both ways: socket -> relayed address -> Data
 * indication back to the socket, then Send indication -> relayed address
 * -> socket. Then it deallocates. This proves what a relayed path needs:
 * credentials, allocation, permission, and relaying in both directions.
 *
 * Blocks (host name lookup, then up to timeout_ms): never call it on an
 * I/O thread.
 */
#ifndef QP_TURN_CHECK_H
#define QP_TURN_CHECK_H

#include <stdint.h>

#include "turn/turn_proto.h"
#include "udp/udp.h"

typedef struct turn_check_result {
  udp_addr_t server;  /* the spec's host, resolved */
  udp_addr_t relayed; /* XOR-RELAYED-ADDRESS */
  udp_addr_t mapped;  /* XOR-MAPPED-ADDRESS: our public address */
  uint32_t lifetime_s;
  int64_t allocate_ms; /* first Allocate to the allocation */
  int64_t relay_ms;    /* permission plus both loops through the relay */
} turn_check_result;

/*
 * Check spec's server within timeout_ms (> 0). Returns 0 with *out
 * filled, or: QP_ERR_RESOLVE (host), QP_ERR_SOCKET, QP_ERR_RELAY (the
 * allocation failed: wrong credentials, quota, unreachable, ... or the
 * relay did not carry a datagram in one direction: the message says which),
 * QP_ERR_INVALID. *out holds what was learnt before a failure.
 */
int turn_check(const turn_server_spec *spec, int timeout_ms,
               turn_check_result *out);

#endif
