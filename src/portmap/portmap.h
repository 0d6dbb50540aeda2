/*
 * portmap layer: ask the home gateway to forward a public UDP port to the
 * portal's own socket, so that a peer can reach it directly even behind a
 * NAT that filters (docs/internals/portmap.md).
 *
 * Three protocols run at once, each on a thread of its own: UPnP IGD
 * (Debian's libminiupnpc), NAT-PMP (RFC 6886, libnatpmp) and PCP MAP
 * (RFC 6887, written here on the udp layer). The first mapping granted is
 * kept, refreshed at half its lifetime and deleted by portmap_stop; a
 * mapping granted later by another protocol is deleted at once, unless the
 * gateway gave it the same public port (one rule, as miniupnpd does): then
 * it is deleted on stop too.
 * portmap_wait answers within deadline_ms (250 ms by default); gathering
 * itself waits less (TRAV_PORTMAP_AFTER_STUN_MS after STUN) and publishes
 * a later grant when portmap_status shows it.
 *
 * Thread safety: a portmap_t is used by one thread (the gatherer); its
 * worker threads share state with it under its own lock.
 */
#ifndef QP_PORTMAP_H
#define QP_PORTMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "udp/udp.h"

/* portmap_wait's answer comes by this long after the start (NAT-PMP and
 * PCP give up then). A LAN gateway that speaks one of the protocols
 * answers in a few ms (docs/internals/portmap.md). */
#define PORTMAP_DEADLINE_MS 250
/* Lifetime asked for: RFC 6886 section 3.3 recommends 7200 s; PCP and UPnP
 * get the same so that all three behave alike. */
#define PORTMAP_LIFETIME_S 7200
/* UPnP NewPortMappingDescription, shown in the router's mapping list. */
#define PORTMAP_DESCRIPTION "quic-portal"

typedef enum portmap_proto {
  PORTMAP_UPNP = 1u << 0,
  PORTMAP_NATPMP = 1u << 1,
  PORTMAP_PCP = 1u << 2,
} portmap_proto_t;
#define PORTMAP_ALL (PORTMAP_UPNP | PORTMAP_NATPMP | PORTMAP_PCP)

/* portmap_wait: the deadline has not passed and nobody has answered yet. */
#define PORTMAP_PENDING 1

typedef struct portmap_config {
  /* The portal's socket: its port is the one mapped. An unspecified IP
   * (0.0.0.0) means the address the kernel routes towards the gateway.
   * IPv4 only: the three protocols map IPv4 ports here. */
  udp_addr_t local;
  unsigned protocols; /* PORTMAP_* bits; 0 = none (portmap_start fails) */
  int deadline_ms;    /* 0 = PORTMAP_DEADLINE_MS */
  uint32_t lifetime_s; /* 0 = PORTMAP_LIFETIME_S */
  /* "ip" or "ip:port" of the gateway; NULL = the default route's gateway
   * (/proc/net/route). The port (default 5351) applies to PCP only:
   * libnatpmp always uses 5351, UPnP finds the gateway by SSDP multicast.
   * Copied by portmap_start. */
  const char *gateway;
} portmap_config_t;

typedef struct portmap_result {
  portmap_proto_t proto; /* the protocol that holds the mapping */
  udp_addr_t external;   /* public ip:port a peer sends to */
  udp_addr_t internal;   /* the inside ip:port the gateway forwards to */
  udp_addr_t gateway;    /* who granted it */
  uint32_t lifetime_s;   /* as granted (0: UPnP permanent lease) */
  int64_t elapsed_ms;    /* from portmap_start to the grant */
  unsigned refreshes;    /* successful renewals so far */
  bool lost;             /* a renewal failed: the mapping is gone */
  bool late;             /* granted after portmap_wait had given up (UPnP's
                            first discovery takes over 1 s): held, renewed
                            and deleted all the same, for a later use */
} portmap_result_t;

typedef struct portmap portmap_t;

/*
 * Start asking the gateway (returns at once). QP_ERR_INVALID (no protocol,
 * not IPv4, port 0), QP_ERR_SOCKET (no default gateway: message says so),
 * QP_ERR_NOMEM. *out is set only on success; free it with portmap_stop.
 */
int portmap_start(const portmap_config_t *cfg, portmap_t **out);

/*
 * Wait up to wait_ms (0 = just look, negative = until the deadline) for the
 * answer. QP_OK with *out set: a mapping is held. PORTMAP_PENDING: still
 * waiting. Once the deadline has passed or every protocol has answered
 * without a mapping: QP_ERR_TIMEOUT (nothing answered within deadline_ms)
 * or QP_ERR_NOT_SUPPORTED (every protocol was refused or unsupported), the
 * message naming the gateway and each protocol's reason. A mapping granted
 * after that moment (UPnP's search goes on) is still held, with late set,
 * and portmap_status returns it.
 */
int portmap_wait(portmap_t *pm, int wait_ms, portmap_result_t *out);

/* The mapping held now, with its renewals (QP_OK), or the code
 * portmap_wait would give without waiting. */
int portmap_status(portmap_t *pm, portmap_result_t *out);

/*
 * Delete the mapping this portmap holds and free it. Waits for that delete
 * at most 600 ms (PORTMAP_STOP_WAIT_MS in portmap.c); a worker still
 * waiting for its first answer (UPnP discovery blocks for 1 s) is not
 * waited for: it deletes whatever it is granted and frees the rest when it
 * returns. Accepts NULL.
 */
void portmap_stop(portmap_t *pm);

/* "UPnP", "NAT-PMP", "PCP". */
const char *portmap_proto_name(portmap_proto_t proto);
/* "upnp", "natpmp", "pcp": the name in a rendezvous record ("mapped"). */
const char *portmap_proto_token(portmap_proto_t proto);

#endif
