/*
 * Inside the portmap layer: one job per protocol, run on its own thread by
 * portmap.c, and the three protocol clients behind one small interface.
 */
#ifndef QP_PM_INTERNAL_H
#define QP_PM_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "portmap/portmap.h"

/* PCP and NAT-PMP servers listen here (RFC 6887 section 19.1, RFC 6886
 * section 3). */
#define PM_SERVER_PORT 5351
/* Time allowed for a renewal or a delete exchange once gathering is over:
 * a LAN gateway answers in milliseconds; this covers a few resends. */
#define PM_EXCHANGE_MS 2000
/* Longest reason one protocol gives (it goes into a summary of three). */
#define PM_REASON_MAX 160

typedef struct pm_job {
  portmap_proto_t proto;
  udp_addr_t gateway;  /* IP of the gateway, port PM_SERVER_PORT or the
                          configured one (PCP) */
  udp_addr_t internal; /* inside IP (route source) and the mapped port */
  uint32_t lifetime_s; /* asked for */
  /* Results of the last successful map call. */
  udp_addr_t external;
  uint32_t granted_s;
  void *priv; /* the protocol's own state, freed by its release */
  /* Set by portmap_stop: a worker still asking (UPnP) then asks no
   * further, so that no mapping is made after the portal closed. */
  atomic_bool stopping;
} pm_job_t;

typedef struct pm_proto_ops {
  portmap_proto_t proto;
  /* Create the mapping, or renew it (the same request in all three
   * protocols). Blocks until deadline_ms (clock_now_ms) at most. QP_OK
   * with job->external and job->granted_s set, or a code with the
   * thread's error message naming the reason. */
  int (*map)(pm_job_t *job, int64_t deadline_ms);
  /* Delete the mapping made by map (bounded the same way). */
  int (*unmap)(pm_job_t *job, int64_t deadline_ms);
  /* Free job->priv (after unmap, or when map failed). */
  void (*release)(pm_job_t *job);
} pm_proto_ops_t;

extern const pm_proto_ops_t pm_upnp_ops;
extern const pm_proto_ops_t pm_natpmp_ops;
extern const pm_proto_ops_t pm_pcp_ops;

/* ------------------------------------------------------------------------ */
/* UPnP: the SSDP search (pm_ssdp.c)                                         */
/* ------------------------------------------------------------------------ */

/* The device type searched for. IGD:2 devices answer IGD:1 searches
 * (UPnP DA 1.1 section 1.3.2), so one search finds both. */
#define PM_UPNP_IGD_TYPE "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
/* Longest root description URL kept (libminiupnpc's MINIUPNPC_URL_MAXSIZE
 * is 128; a URL is rarely longer). */
#define PM_UPNP_URL_MAX 256

/* Try a root description URL an answer named; true = the IGD to use. */
typedef bool (*pm_ssdp_accept_fn)(const char *url, void *ctx);

/* Search for the IGD until until_ms (or job->stopping): M-SEARCH to the
 * gateway's port 1900 and to the multicast group, resent; each new URL
 * answered goes to accept, and the first one accepted ends the search.
 * QP_OK, QP_ERR_TIMEOUT (no answer accepted), QP_ERR_NOT_SUPPORTED (the
 * gateway answered the unicast search with ICMP port unreachable: no
 * UPnP there; message set) or QP_ERR_SOCKET. */
int pm_ssdp_search(pm_job_t *job, int64_t until_ms, pm_ssdp_accept_fn accept,
                   void *ctx);
/* The LOCATION of an SSDP "HTTP/1.1 200" answer (an http:// URL) into
 * url; QP_ERR_PROTOCOL for anything else. */
int pm_ssdp_location(const uint8_t *buf, size_t len, char *url, size_t size);

/* Wait for one datagram on any of n sockets (at most PM_RECV_MAX_SOCKS)
 * until until_ms: 1 with it in buf (*len, *from), 0 at until_ms,
 * QP_ERR_NOT_SUPPORTED when a connected socket got ICMP port unreachable
 * (nothing listens on the gateway's port), or QP_ERR_SOCKET; the message
 * names who. */
#define PM_RECV_MAX_SOCKS 2
int pm_recv_until(udp_socket_t *const *socks, int n, int64_t until_ms,
                  uint8_t *buf, size_t cap, size_t *len, udp_addr_t *from,
                  const char *who);
/* Connect sock to the gateway, so that its ICMP port unreachable reaches
 * us (pm_recv_until). QP_ERR_SOCKET on failure. */
int pm_connect(udp_socket_t *sock, const udp_addr_t *to);

/* The default route's IPv4 gateway (Linux: /proc/net/route), port 0.
 * QP_ERR_SOCKET when there is none. */
int pm_default_gateway(udp_addr_t *out);

/* ------------------------------------------------------------------------ */
/* PCP MAP messages (RFC 6887 sections 7.1, 7.2, 11.1), IPv4 only           */
/* ------------------------------------------------------------------------ */

#define PM_PCP_VERSION 2
#define PM_PCP_OPCODE_MAP 1
#define PM_PCP_RESPONSE_BIT 0x80
#define PM_PCP_HEADER_LEN 24
#define PM_PCP_MAP_LEN 36
#define PM_PCP_MAP_MSG_LEN (PM_PCP_HEADER_LEN + PM_PCP_MAP_LEN)
#define PM_PCP_NONCE_LEN 12
#define PM_PCP_PROTO_UDP 17
/* Result codes used by name (RFC 6887 section 7.4). */
#define PM_PCP_SUCCESS 0
#define PM_PCP_UNSUPP_VERSION 1

typedef struct pm_pcp_map {
  uint32_t lifetime_s;
  uint8_t nonce[PM_PCP_NONCE_LEN];
  uint16_t internal_port;
  uint16_t external_port;   /* suggested (request) or assigned (response) */
  uint32_t client_ip;       /* request only: network byte order */
  uint32_t external_ip;     /* network byte order; 0 = no suggestion */
  uint8_t result;           /* response only */
  uint32_t epoch_s;         /* response only */
} pm_pcp_map_t;

/* Write a MAP request (PM_PCP_MAP_MSG_LEN bytes) into buf. Returns its
 * length, or QP_ERR_INVALID when cap is too small. */
int pm_pcp_encode_request(const pm_pcp_map_t *req, uint8_t *buf, size_t cap);
/* Parse a MAP response. QP_OK with *out set (out->result may be an error
 * code of the server), QP_ERR_NOT_SUPPORTED for a server that answered with
 * another version (a NAT-PMP-only gateway) or QP_ERR_PROTOCOL for anything
 * that is not a MAP response (the message says what). */
int pm_pcp_decode_response(const uint8_t *buf, size_t len, pm_pcp_map_t *out);
/* Parse a MAP request (for tests playing the server). QP_OK or
 * QP_ERR_PROTOCOL. */
int pm_pcp_decode_request(const uint8_t *buf, size_t len, pm_pcp_map_t *out);
/* Write a MAP response to req into buf (for tests playing the server). */
int pm_pcp_encode_response(const pm_pcp_map_t *resp, uint8_t *buf, size_t cap);
/* RFC 6887 section 7.4 name of a result code ("NOT_AUTHORIZED"). */
const char *pm_pcp_result_name(uint8_t result);

#endif
