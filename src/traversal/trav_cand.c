/*
 * trav_cand.c: our candidates. Host addresses from getifaddrs (or the
 * socket's own bound address) and server-reflexive addresses learned with
 * STUN Binding requests sent from the very socket QUIC will use.
 */
#include "traversal/trav_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "portmap/portmap.h"

/* RFC 8445 section 5.1.2.1: "priority = (2^24)*(type preference) +
 * (2^8)*(local preference) + (2^0)*(256 - component ID)". One component
 * (ID 1): the last term is 255. */
#define TRAV_COMPONENT_ID 1u
/* Local preferences (16 bits): the best for a socket's own bound address
 * and srflx candidates, the lowest for loopback (only a peer on this
 * machine can use it). */
#define TRAV_LOCAL_PREF_MAX 65535
#define TRAV_LOCAL_PREF_LOOPBACK 1
uint32_t trav_cand_priority(rdv_cand_type type, uint16_t local_pref) {
  uint32_t type_pref = TRAV_PREF_HOST;
  switch (type) {
  case RDV_CAND_HOST:
    type_pref = TRAV_PREF_HOST;
    break;
  case RDV_CAND_PRFLX:
    type_pref = TRAV_PREF_PRFLX;
    break;
  case RDV_CAND_SRFLX:
    type_pref = TRAV_PREF_SRFLX;
    break;
  case RDV_CAND_PREDICTED:
    type_pref = TRAV_PREF_PREDICTED;
    break;
  case RDV_CAND_RELAY:
    type_pref = TRAV_PREF_RELAY;
    break;
  case RDV_CAND_MAPPED:
    type_pref = TRAV_PREF_MAPPED;
    break;
  }
  return (type_pref << 24) | ((uint32_t)local_pref << 8) | (256u - TRAV_COMPONENT_ID);
}

int trav_cand_add(trav_agent_t *a, rdv_cand_type type, const udp_addr_t *addr,
                  uint16_t local_pref, size_t sock_index) {
  for (size_t i = 0; i < a->cand_count; i++)
    if (a->cands[i].type == type && udp_addr_equal(&a->cands[i].addr, addr))
      return 0;
  if (a->cand_count >= TRAV_MAX_LOCAL_CANDIDATES)
    return QP_ERR_TOO_LARGE;
  a->cands[a->cand_count++] = (trav_cand_t){
      .type = type,
      .addr = *addr,
      .priority = trav_cand_priority(type, local_pref),
      .sock_index = sock_index,
  };
  return 0;
}

const char *trav_addr_ip(const udp_addr_t *addr, char *buf, size_t size) {
  const struct sockaddr_storage *ss = &addr->ss;
  buf[0] = '\0';
  if (ss->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf,
              (socklen_t)size);
  } else if (ss->ss_family == AF_INET6) {
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    if (IN6_IS_ADDR_V4MAPPED(a6))
      inet_ntop(AF_INET, &a6->s6_addr[12], buf, (socklen_t)size);
    else
      inet_ntop(AF_INET6, a6, buf, (socklen_t)size);
  }
  return buf;
}

bool trav_addr_for_family(const udp_addr_t *in, int family, udp_addr_t *out) {
  return udp_addr_to_family(in, family, out);
}

/* IPv6 address states (Linux /proc/net/if_inet6 flags, IFA_F_* of
 * linux/if_addr.h) that make an address a bad candidate: tentative (DAD
 * not finished: the kernel will not send from it), DAD failed, and
 * deprecated (its preferred lifetime is over: no new flows). Temporary
 * (privacy) addresses are kept: the kernel prefers them for new flows. */
#define TRAV_IFA_F_DADFAILED 0x08
#define TRAV_IFA_F_DEPRECATED 0x20
#define TRAV_IFA_F_TENTATIVE 0x40
#define TRAV_IFA_BAD                                                           \
  (TRAV_IFA_F_DADFAILED | TRAV_IFA_F_DEPRECATED | TRAV_IFA_F_TENTATIVE)
/* Unusable IPv6 addresses remembered per gathering (more are ignored). */
#define TRAV_MAX_BAD_V6 16

typedef struct bad_v6 {
  struct in6_addr addr[TRAV_MAX_BAD_V6];
  size_t count;
} bad_v6_t;

/* The IPv6 addresses in a bad state, from /proc/net/if_inet6 (where there
 * is none, e.g. not Linux, every address counts as good). */
static void load_bad_v6(bad_v6_t *bad) {
  bad->count = 0;
  FILE *f = fopen("/proc/net/if_inet6", "re");
  if (f == NULL)
    return;
  char hex[33];
  unsigned idx, plen, scope, flags;
  while (bad->count < TRAV_MAX_BAD_V6 &&
         fscanf(f, "%32s %x %x %x %x %*s", hex, &idx, &plen, &scope, &flags) == 5) {
    if (!(flags & TRAV_IFA_BAD) || strlen(hex) != 32)
      continue;
    for (int i = 0; i < 16; i++) {
      unsigned byte = 0;
      sscanf(hex + 2 * i, "%2x", &byte);
      bad->addr[bad->count].s6_addr[i] = (uint8_t)byte;
    }
    bad->count++;
  }
  fclose(f);
}

static bool is_bad_v6(const bad_v6_t *bad, const struct in6_addr *a6) {
  for (size_t i = 0; i < bad->count; i++)
    if (memcmp(&bad->addr[i], a6, sizeof(*a6)) == 0)
      return true;
  return false;
}

/* Interface addresses usable by a socket of `family` bound to the wildcard:
 * an IPv6 socket is dual-stack (udp_socket_open clears IPV6_V6ONLY), so it
 * takes IPv4 addresses too. Link-local IPv6 needs a scope: skipped; so are
 * IPv6 addresses in a bad state (bad_v6_t). Pass 0 takes IPv6, pass 1
 * IPv4, so that many IPv4 interfaces do not crowd IPv6 out of the
 * TRAV_MAX_HOST_CANDIDATES. */
static bool usable_ifaddr(const struct ifaddrs *ifa, int family, int pass,
                          const bad_v6_t *bad) {
  if (ifa->ifa_addr == NULL || !(ifa->ifa_flags & IFF_UP))
    return false;
  int f = ifa->ifa_addr->sa_family;
  if (f == AF_INET6) {
    const struct in6_addr *a6 =
        &((const struct sockaddr_in6 *)ifa->ifa_addr)->sin6_addr;
    return pass == 0 && family == AF_INET6 && !IN6_IS_ADDR_LINKLOCAL(a6) &&
           !IN6_IS_ADDR_V4MAPPED(a6) && !is_bad_v6(bad, a6);
  }
  return pass == 1 && f == AF_INET;
}

/* Host candidates' local preference by address class, best first (RFC
 * 6724 section 2.1 precedences: global IPv6 50 > IPv4 35 > ULA fc00::/7
 * 3), each class counting down in interface order from its base; a class
 * holds at most TRAV_MAX_HOST_CANDIDATES, so they never overlap.
 * docs/internals/traversal.md, IPv6. */
#define TRAV_LOCAL_PREF_V6_GLOBAL TRAV_LOCAL_PREF_MAX
#define TRAV_LOCAL_PREF_V4 (TRAV_LOCAL_PREF_MAX - 256)
#define TRAV_LOCAL_PREF_V6_ULA (TRAV_LOCAL_PREF_MAX - 512)

static bool is_ula(const struct in6_addr *a6) {
  return (a6->s6_addr[0] & 0xfe) == 0xfc;
}

static void add_ifaddr(trav_agent_t *a, const struct ifaddrs *ifa,
                       uint16_t port, size_t sock_index, uint16_t *pref) {
  udp_addr_t addr = {0};
  bool v6 = ifa->ifa_addr->sa_family == AF_INET6;
  addr.len = v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
  memcpy(&addr.ss, ifa->ifa_addr, addr.len);
  udp_addr_set_port(&addr, port);
  /* Loopback only helps a peer on this machine: rank it last; the others
   * by class, then in interface order (pref counts the ones taken). */
  bool loop = (ifa->ifa_flags & IFF_LOOPBACK) != 0;
  uint16_t base = !v6 ? TRAV_LOCAL_PREF_V4
                  : is_ula(&((const struct sockaddr_in6 *)&addr.ss)->sin6_addr)
                      ? TRAV_LOCAL_PREF_V6_ULA
                      : TRAV_LOCAL_PREF_V6_GLOBAL;
  uint16_t lp = loop ? TRAV_LOCAL_PREF_LOOPBACK : (uint16_t)(base - *pref);
  if (!loop)
    (*pref)++;
  if (trav_cand_add(a, RDV_CAND_HOST, &addr, lp, sock_index) != 0)
    QP_LOG_DEBUG("traversal: candidate table full, host address skipped");
}

int trav_gather_host(trav_agent_t *a, size_t sock_index) {
  const udp_socket_t *s = a->socks[sock_index];
  uint16_t port = udp_addr_port(&s->local);
  if (!udp_addr_is_unspecified(&s->local))
    return trav_cand_add(a, RDV_CAND_HOST, &s->local, TRAV_LOCAL_PREF_MAX, sock_index);
  struct ifaddrs *list = NULL;
  if (getifaddrs(&list) != 0)
    return err_fail(QP_ERR_SOCKET, "could not list network interfaces "
                                  "(getifaddrs) for host candidates");
  uint16_t pref = 0; /* host addresses ranked so far */
  size_t added = 0;
  bad_v6_t bad;
  load_bad_v6(&bad);
  for (int pass = 0; pass < 2; pass++)
    for (struct ifaddrs *ifa = list;
         ifa != NULL && added < TRAV_MAX_HOST_CANDIDATES; ifa = ifa->ifa_next) {
      if (!usable_ifaddr(ifa, s->family, pass, &bad))
        continue;
      add_ifaddr(a, ifa, port, sock_index, &pref);
      added++;
    }
  freeifaddrs(list);
  return 0;
}

/* ---- server-reflexive candidates -------------------------------------- */

/* A STUN server as "ip:port", "[v6]:port" or an IP alone (port
 * STUN_DEFAULT_PORT). Names were resolved before traversal, within a
 * bound (udp_resolve_names); one still a name here did not resolve:
 * QP_ERR_RESOLVE, so it costs that server only. */
static int parse_server(const char *text, udp_addr_t *out) {
  char host[UDP_HOST_MAX];
  uint16_t port = 0;
  int rc = udp_hostport_split(text, STUN_DEFAULT_PORT, host, sizeof(host), &port);
  if (rc != 0)
    return rc;
  if (udp_addr_from_ip(host, port, out) != 0)
    return err_fail(QP_ERR_RESOLVE, "STUN server \"%s\" is not resolved", text);
  return 0;
}

/* Start one Binding transaction to an address of the socket's family. */
static int start_txn(trav_agent_t *a, const udp_addr_t *server, bool followup,
                     int64_t now_ms) {
  udp_addr_t mapped;
  if (a->stun_count >= TRAV_MAX_STUN_TXNS ||
      !trav_addr_for_family(server, a->socks[0]->family, &mapped))
    return 0;
  int rc = stun_client_start(a->stun, &mapped, 0, now_ms, a->gather_until_ms);
  if (rc < 0)
    return rc;
  a->stun_followup[a->stun_count] = followup;
  a->stun_txn[a->stun_count++] = rc;
  return 0;
}

static int start_one_server(trav_agent_t *a, const char *text, int64_t now_ms) {
  udp_addr_t server;
  int rc = parse_server(text, &server);
  if (rc == QP_ERR_RESOLVE) {
    /* A name that does not resolve costs that server only. */
    size_t used = strlen(a->stun_note);
    snprintf(a->stun_note + used, sizeof(a->stun_note) - used,
             "%sSTUN %s: not resolved", used ? "; " : "", text);
    return 0;
  }
  if (rc < 0)
    return rc;
  return start_txn(a, &server, false, now_ms);
}

/* How often gathering looks at the port-mapping answer: the workers do
 * not signal on the socket. */
#define TRAV_PORTMAP_POLL_MS 10
/* After the portmap's deadline passed without a grant, only UPnP may
 * still be granted (its search lasts up to 2 s): looked at this often. */
#define TRAV_PORTMAP_LATE_POLL_MS 50

/* A mapping is worth asking for where a server-reflexive address is: with
 * a STUN server beyond this machine. No STUN server means peers on one
 * network; one on loopback means both peers on this machine (and keeps
 * the tests' traffic off the real gateway). */
static bool wants_portmap(const trav_agent_t *a) {
  const trav_config_t *cfg = a->cfg;
  if (cfg->portmap_protocols == 0 ||
      (cfg->relay_policy == QP_RELAY_ONLY && cfg->turn_count > 0))
    return false; /* relay only: nothing but relayed candidates */
  if (cfg->portmap_gateway != NULL)
    return true; /* a gateway named by the caller (tests) */
  for (size_t i = 0; i < cfg->stun_server_count; i++) {
    udp_addr_t server;
    if (cfg->stun_servers[i] && parse_server(cfg->stun_servers[i], &server) == 0 &&
        !udp_addr_is_loopback(&server))
      return true;
  }
  return false;
}

/* Ask the gateway to map the socket's port (IPv4: a dual-stack socket
 * bound to :: maps 0.0.0.0 and its port). A failure costs the candidate
 * only. */
static void start_portmap(trav_agent_t *a) {
  const udp_socket_t *s = a->socks[0];
  portmap_config_t pc = {.protocols = a->cfg->portmap_protocols,
                         .gateway = a->cfg->portmap_gateway};
  if (!wants_portmap(a))
    return;
  if (s->local.ss.ss_family == AF_INET)
    pc.local = s->local;
  else if (udp_addr_is_unspecified(&s->local))
    udp_addr_from_ip("0.0.0.0", udp_addr_port(&s->local), &pc.local);
  else
    return;
  if (portmap_start(&pc, &a->portmap) != 0) {
    QP_LOG_DEBUG("traversal: no port mapping: %s", qp_last_error());
    return;
  }
  a->portmap_pending = true;
}

/* The mapping as a candidate of its own type. If STUN found the same
 * address (a gateway that also sends from the mapped port), that srflx
 * candidate becomes the mapped one: one address, one candidate. */
static void add_mapped(trav_agent_t *a, const udp_addr_t *addr,
                       const char *via) {
  trav_cand_t *c = NULL;
  for (size_t i = 0; i < a->cand_count && c == NULL; i++)
    if (a->cands[i].type == RDV_CAND_SRFLX &&
        udp_addr_equal(&a->cands[i].addr, addr))
      c = &a->cands[i];
  if (c == NULL) {
    if (trav_cand_add(a, RDV_CAND_MAPPED, addr, TRAV_LOCAL_PREF_MAX, 0) != 0)
      return;
    c = &a->cands[a->cand_count - 1];
  }
  c->type = RDV_CAND_MAPPED;
  c->priority = trav_cand_priority(RDV_CAND_MAPPED, TRAV_LOCAL_PREF_MAX);
  snprintf(c->via, sizeof(c->via), "%s", via);
}

const char *trav_mapped_text(const char *via) {
  if (strcmp(via, "upnp") == 0)
    return "port mapping, UPnP";
  if (strcmp(via, "natpmp") == 0)
    return "port mapping, NAT-PMP";
  if (strcmp(via, "pcp") == 0)
    return "port mapping, PCP";
  return "port mapping";
}

/* A granted mapping becomes our candidate; the note says when it came. */
static void take_mapping(trav_agent_t *a, const portmap_result_t *r,
                         bool late) {
  char ext[UDP_ADDRSTRLEN];
  size_t used = strlen(a->stun_note);
  udp_addr_t addr;
  if (trav_addr_for_family(&r->external, a->socks[0]->family, &addr))
    add_mapped(a, &addr, portmap_proto_token(r->proto));
  snprintf(a->stun_note + used, sizeof(a->stun_note) - used,
           "%s%s mapping %s in %lld ms%s", used ? "; " : "",
           portmap_proto_name(r->proto),
           udp_addr_to_string(&r->external, ext, sizeof(ext)),
           (long long)r->elapsed_ms,
           late ? " (after gathering: published late)" : "");
}

int64_t trav_gather_portmap(trav_agent_t *a, int64_t now_ms,
                            int64_t stun_done_ms) {
  if (!a->portmap_pending)
    return -1;
  portmap_result_t r;
  int rc = portmap_wait(a->portmap, 0, &r);
  if (rc == PORTMAP_PENDING) {
    if (stun_done_ms < 0)
      return now_ms + TRAV_PORTMAP_POLL_MS;
    /* STUN is done: the gateway gets a short grace, not the whole
     * PORTMAP_DEADLINE_MS; what it grants later is published late
     * (trav_portmap_late). */
    int64_t until = stun_done_ms + TRAV_PORTMAP_AFTER_STUN_MS;
    if (now_ms >= until)
      return -1;
    int64_t next = now_ms + TRAV_PORTMAP_POLL_MS;
    return next < until ? next : until;
  }
  a->portmap_pending = false;
  if (rc == 0)
    take_mapping(a, &r, false);
  else
    QP_LOG_DEBUG("traversal: %s", qp_last_error());
  return -1;
}

/* The mapping granted after gathering ended (UPnP's first search takes
 * 55-65 ms, a slow gateway longer) joins our candidates, and our record is
 * published again at once (its heartbeat made due), as a late TURN
 * allocation is (trav_relay.c): the peer adds the pairs of candidates new
 * in a record it already uses (trav_pairs_trickle). A gateway that has not
 * answered is looked at every TRAV_PORTMAP_POLL_MS until the portmap's own
 * deadline, then every TRAV_PORTMAP_LATE_POLL_MS until traversal ends. */
int64_t trav_portmap_late(trav_agent_t *a, int64_t now_ms) {
  if (!a->portmap_pending)
    return INT64_MAX;
  if (now_ms < a->portmap_look_ms)
    return a->portmap_look_ms;
  portmap_result_t r;
  int rc = portmap_status(a->portmap, &r);
  if (rc == QP_ERR_NOT_SUPPORTED) { /* every protocol refused: none asks */
    a->portmap_pending = false;
    return INT64_MAX;
  }
  if (rc != QP_OK) { /* pending, or no grant within its deadline */
    a->portmap_look_ms = now_ms + (rc == PORTMAP_PENDING
                                       ? TRAV_PORTMAP_POLL_MS
                                       : TRAV_PORTMAP_LATE_POLL_MS);
    return a->portmap_look_ms;
  }
  a->portmap_pending = false;
  take_mapping(a, &r, true);
  char ext[UDP_ADDRSTRLEN];
  QP_LOG_INFO("traversal: %s mapping %s granted %lld ms after the start, "
              "after gathering: published late", portmap_proto_name(r.proto),
              udp_addr_to_string(&r.external, ext, sizeof(ext)),
              (long long)r.elapsed_ms);
  if (a->published)
    a->next_refresh_ms = now_ms;
  return now_ms;
}

int trav_gather_start(trav_agent_t *a, int64_t now_ms, int64_t deadline_ms) {
  const trav_config_t *cfg = a->cfg;
  start_portmap(a);
  if (cfg->stun_server_count == 0)
    return 0;
  if (cfg->stun_server_count > TRAV_MAX_STUN_SERVERS)
    return err_fail(QP_ERR_INVALID, "too many STUN servers: %zu (at most %d)",
                   cfg->stun_server_count, TRAV_MAX_STUN_SERVERS);
  a->stun = calloc(1, sizeof(*a->stun));
  if (a->stun == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for STUN transactions");
  stun_client_init(a->stun);
  a->gather_until_ms = deadline_ms;
  a->gather_stop_ms = -1;
  for (size_t i = 0; i < cfg->stun_server_count; i++) {
    if (cfg->stun_servers[i] == NULL)
      return err_fail(QP_ERR_INVALID, "STUN server %zu is NULL", i);
    int rc = start_one_server(a, cfg->stun_servers[i], now_ms);
    if (rc < 0)
      return rc;
  }
  a->gathering = a->stun_count > 0;
  return 0;
}

static void add_srflx(trav_agent_t *a, const stun_client_result *r) {
  udp_addr_t addr = r->mapped;
  for (size_t i = 0; i < a->cand_count; i++)
    if (a->cands[i].type == RDV_CAND_MAPPED &&
        udp_addr_equal(&a->cands[i].addr, &addr))
      return; /* the gateway's mapping, published as such (add_mapped) */
  /* Kept even when equal to a host address: the record then tells the
   * peer (and the logs) that this side is not behind a NAT. */
  if (trav_cand_add(a, RDV_CAND_SRFLX, &addr, TRAV_LOCAL_PREF_MAX, 0) != 0)
    QP_LOG_DEBUG("traversal: candidate table full, srflx skipped");
}

static int slot_of(const trav_agent_t *a, int txn) {
  for (size_t i = 0; i < a->stun_count; i++)
    if (a->stun_txn[i] == txn)
      return (int)i;
  return -1;
}

/* The family whose NAT behavior gathering learns: IPv4 (IPv6 rarely has a
 * NAT, and answers over both families would look like a NAT with two
 * public IPs), unless the socket cannot carry IPv4 (bound to one IPv6
 * address). */
static int behavior_family(const trav_agent_t *a) {
  const udp_socket_t *s = a->socks[0];
  if (s->family == AF_INET6 && !udp_addr_is_unspecified(&s->local) &&
      !udp_addr_is_v4mapped(&s->local))
    return AF_INET6;
  return AF_INET;
}

/* The first answer naming an RFC 5780 OTHER-ADDRESS: ask (primary IP,
 * other port) and OTHER-ADDRESS itself, back to back, so that the mapped
 * ports of three destinations tell how the NAT allocates (trav_hard.c). */
static void start_followups(trav_agent_t *a, const stun_client_result *r,
                            int64_t now_ms) {
  if (a->stun_followups > 0 || !r->has_other_address ||
      udp_addr_family(&r->mapped) != behavior_family(a))
    return;
  udp_addr_t alt_port = r->server;
  udp_addr_set_port(&alt_port, udp_addr_port(&r->other_address));
  a->stun_followups = TRAV_BEHAVIOR_FOLLOWUPS;
  if (start_txn(a, &alt_port, true, now_ms) != 0 ||
      start_txn(a, &r->other_address, true, now_ms) != 0) {
    QP_LOG_DEBUG("traversal: no room for behavior-learning requests");
    return;
  }
  int64_t wait = TRAV_STUN_FOLLOWUP_RTTS * r->rtt_ms + TRAV_STUN_GRACE_MS;
  if (a->gather_stop_ms < now_ms + wait)
    a->gather_stop_ms = now_ms + wait;
}

/* The first answer starts the grace the other servers get. */
static void note_answer(trav_agent_t *a, int64_t now_ms) {
  if (a->gather_stop_ms < 0)
    a->gather_stop_ms = now_ms + TRAV_STUN_GRACE_MS;
}

bool trav_gather_on_datagram(trav_agent_t *a, const uint8_t *buf, size_t len,
                             const udp_addr_t *from, int64_t now_ms) {
  if (!a->gathering)
    return false;
  int txn = stun_client_on_response(a->stun, buf, len, from, now_ms);
  if (txn < 0)
    return false;
  const stun_client_result *r = stun_client_result_of(a->stun, txn);
  int slot = slot_of(a, txn);
  if (r && r->state == STUN_TXN_SUCCEEDED && slot >= 0 &&
      !a->stun_followup[slot]) {
    add_srflx(a, r);
    note_answer(a, now_ms);
    start_followups(a, r, now_ms);
  }
  return true;
}

int64_t trav_gather_on_timer(trav_agent_t *a, int64_t now_ms) {
  if (!a->gathering)
    return -1;
  stun_client_datagram out[TRAV_MAX_STUN_TXNS];
  size_t n = stun_client_on_timer(a->stun, now_ms, out, TRAV_MAX_STUN_TXNS);
  for (size_t i = 0; i < n; i++) {
    if (udp_send(a->socks[0], out[i].to, out[i].data, out[i].len, 0) != 0)
      stun_client_fail(a->stun, out[i].txn, QP_ERR_SOCKET, errno);
  }
  int64_t next = stun_client_next_timeout(a->stun);
  /* Parallel queries: once one server answered, the rest only get the
   * grace (TRAV_STUN_GRACE_MS); nothing pending means done already. */
  if (a->gather_stop_ms < 0 || next < 0)
    return next;
  if (now_ms >= a->gather_stop_ms)
    return -1;
  return next < a->gather_stop_ms ? next : a->gather_stop_ms;
}

/* Mapping behavior from the mapped addresses of every answered request, in
 * the order they were sent (RFC 5780 section 4.3 idea, run from our own
 * socket): the same address everywhere is endpoint-independent; otherwise
 * the port steps tell sequential from random allocation. */
static void learn_behavior(trav_agent_t *a) {
  uint16_t ports[TRAV_MAX_STUN_TXNS];
  const udp_addr_t *first = NULL;
  bool other_ip = false;
  size_t n = 0;
  int family = behavior_family(a);
  for (size_t i = 0; i < a->stun_count; i++) {
    const stun_client_result *r = stun_client_result_of(a->stun, a->stun_txn[i]);
    if (r->state != STUN_TXN_SUCCEEDED || udp_addr_family(&r->mapped) != family)
      continue;
    if (first == NULL)
      first = &r->mapped;
    else if (!udp_addr_same_ip(first, &r->mapped))
      other_ip = true;
    ports[n++] = udp_addr_port(&r->mapped);
  }
  trav_behavior_classify(ports, n, &a->self);
  if (other_ip && a->self.ports != TRAV_PORTS_UNKNOWN)
    a->self.ports = TRAV_PORTS_RANDOM; /* a pool of public IPs */
  if (a->self.ports == TRAV_PORTS_UNKNOWN)
    return;
  size_t used = strlen(a->stun_note);
  if (a->self.ports == TRAV_PORTS_SEQUENTIAL)
    snprintf(a->stun_note + used, sizeof(a->stun_note) - used,
             "%sNAT: ports sequential, step %+d, last %u", used ? "; " : "",
             a->self.delta, (unsigned)a->self.last_port);
  else
    snprintf(a->stun_note + used, sizeof(a->stun_note) - used, "%sNAT: %s",
             used ? "; " : "", a->self.ports == TRAV_PORTS_SAME
                                   ? "endpoint-independent mapping"
                                   : "ports random per destination");
}

static void describe_server(trav_agent_t *a, const stun_client_result *r) {
  char srv[UDP_ADDRSTRLEN], map[UDP_ADDRSTRLEN];
  size_t used = strlen(a->stun_note);
  if (used + 8 >= sizeof(a->stun_note))
    return;
  udp_addr_to_string(&r->server, srv, sizeof(srv));
  if (r->state == STUN_TXN_SUCCEEDED)
    snprintf(a->stun_note + used, sizeof(a->stun_note) - used,
             "%sSTUN %s: mapped %s", used ? "; " : "", srv,
             udp_addr_to_string(&r->mapped, map, sizeof(map)));
  else
    snprintf(a->stun_note + used, sizeof(a->stun_note) - used,
             "%sSTUN %s: %s", used ? "; " : "", srv,
             r->state == STUN_TXN_PENDING || r->error == QP_ERR_TIMEOUT
                 ? "no answer"
                 : "failed");
}

void trav_gather_finish(trav_agent_t *a) {
  if (a->stun == NULL)
    return;
  for (size_t i = 0; i < a->stun_count; i++)
    if (!a->stun_followup[i])
      describe_server(a, stun_client_result_of(a->stun, a->stun_txn[i]));
  learn_behavior(a);
  trav_hard_predict(a);
  a->gathering = false;
  free(a->stun);
  a->stun = NULL;
}
