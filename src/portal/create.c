/*
 * qp_create_server / qp_create_client: the front door that joins the layers.
 * Bind one UDP socket, let traversal meet the peer through the rendezvous
 * and punch a path on that socket, then hand the very same socket to the
 * portal, which runs QUIC with the peer's published fingerprint pinned.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "portal/options.h"
#include "portal/portal_internal.h"
#include "portal/recover.h"
#include "portal/relay.h"
#include "portmap/portmap.h"
#include "rendezvous/rdv.h"
#include "traversal/traversal.h"
#include "stun/stun_msg.h"
#include "udp/udp.h"
#include "udp/udp_resolve.h"

/* Names of STUN servers get at most a quarter of the punch budget, and never
 * more than this: a slow resolver must not eat the time to punch. */
#define MAX_RESOLVE_MS 2000

/* 0.1.x's default punch timeout: 15 s. */
#define DEFAULT_PUNCH_TIMEOUT_MS 15000
/* The QUIC handshake after a validated punch gets what is left of the punch
 * budget, but never less than this: the path is known to work by then. */
#define MIN_HANDSHAKE_MS 3000

static void traverse_defaults(qp_traverse_options *o) {
  memset(o, 0, sizeof(*o));
  o->struct_size = sizeof(*o);
  o->session = "default";
  o->punch_timeout_ms = DEFAULT_PUNCH_TIMEOUT_MS;
  o->reconnect_timeout_ms = RECOVER_DEFAULT_TIMEOUT_MS;
  o->wait_timeout_ms = -1; /* as 0.1.x: wait for the peer until stopped */
}

void qp_traverse_options_init_size(qp_traverse_options *o, size_t size) {
  if (o == NULL || size < sizeof(o->struct_size))
    return;
  qp_traverse_options d;
  traverse_defaults(&d);
  options_write_sized(o, size, &d, sizeof(d));
}

/* The caller's options as this library's structs (the ABI rule in
 * quic_portal.h): fields an older caller's struct lacks keep their
 * defaults, the nested transport options too. */
static int options_traverse_copy(const qp_traverse_options *in,
                                 qp_traverse_options *out,
                                 qp_transport_options *transport) {
  traverse_defaults(out);
  if (in == NULL)
    return err_fail(QP_ERR_INVALID, "qp_create_*: options and out are required");
  int rc = options_read_sized(out, sizeof(*out), in, "traverse");
  if (rc != 0)
    return rc;
  if (out->transport != NULL) {
    rc = options_transport_copy(out->transport, transport);
    if (rc != 0)
      return rc;
    out->transport = transport;
  }
  return 0;
}

static int validate(const qp_traverse_options *o, qp_portal_t **out) {
  udp_addr_t local;
  if (o == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "qp_create_*: options and out are required");
  if (o->local_ip != NULL && udp_addr_from_ip(o->local_ip, 0, &local) != 0)
    return err_fail(QP_ERR_INVALID,
                    "qp_create_*: local_ip \"%.100s\" is not a numeric IPv4 or IPv6 "
                    "address",
                    o->local_ip);
  if (o->callbacks == NULL && (o->rendezvous == NULL || *o->rendezvous == '\0'))
    return err_fail(QP_ERR_INVALID,
                   "qp_create_*: give a rendezvous URL (mem:NAME, dir:PATH, "
                   "redis://HOST:PORT/DB) or rendezvous callbacks");
  if (o->callbacks && (!o->callbacks->put || !o->callbacks->get || !o->callbacks->del))
    return err_fail(QP_ERR_INVALID, "qp_create_*: put, get and del callbacks are all required");
  if (o->punch_timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID, "punch_timeout_ms=%d: must be > 0", o->punch_timeout_ms);
  if (o->stun_server_count > 0 && o->stun_servers == NULL)
    return err_fail(QP_ERR_INVALID, "stun_server_count is %zu but stun_servers is NULL",
                   o->stun_server_count);
  return turn_opts_validate(o);
}

static int open_store(const qp_traverse_options *o, const char *session, rdv_t **out) {
  if (o->callbacks == NULL)
    return rdv_open(o->rendezvous, session, out);
  rdv_callbacks cb = {.put = o->callbacks->put,
                      .get = o->callbacks->get,
                      .del = o->callbacks->del};
  return rdv_open_callbacks(&cb, o->callbacks_user, session, out);
}

static size_t answer_check(void *ctx, const uint8_t *pkt, size_t len,
                           const udp_addr_t *from, uint8_t *resp, size_t cap) {
  return trav_responder_handle(ctx, pkt, len, from, resp, cap);
}

static void free_responder(void *ctx) { trav_responder_destroy(ctx); }

static void fill_handoff(portal_handoff_t *h, const qp_traverse_options *o,
                         bool is_server, udp_socket_t *sock, trav_result_t *res) {
  memset(h, 0, sizeof(*h));
  h->sock = *sock;
  h->is_server = is_server;
  h->peer = res->peer;
  h->pin = !o->no_pin;
  memcpy(h->peer_fingerprint, res->peer_fingerprint, sizeof(h->peer_fingerprint));
  h->opts = o->transport;
  h->stun_cb = answer_check;
  h->stun_ctx = res->responder;
  h->stun_ctx_free = free_responder;
  res->responder = NULL; /* the portal owns it now */
  for (size_t i = 0; i < res->early_count && i < 8; i++) {
    h->early[i] = res->early[i];
    h->early_len[i] = res->early_len[i];
    h->early_from[i] = res->early_from[i];
  }
  h->early_count = res->early_count < 8 ? res->early_count : 8;
  h->path_kind = res->path_kind;
  snprintf(h->path_desc, sizeof(h->path_desc), "%s", res->path_desc);
  h->turn = res->turn; /* the portal owns it now */
  res->turn = NULL;
  h->portmap = res->portmap; /* and the gateway's mapping */
  res->portmap = NULL;
  h->upgrade = res->upgrade; /* and the direct-path checks, if relayed */
  res->upgrade = NULL;
}

static bool has_secret(const qp_traverse_options *o) {
  return o->secret != NULL && o->secret[0] != '\0';
}

/* Is this the dual-stack socket of udp_socket_open_any? */
static bool is_dual_stack(const udp_socket_t *sock) {
  return sock->family == AF_INET6 && udp_addr_is_unspecified(&sock->local);
}

/* The family names are looked up in: IPv4 on an IPv4 or dual-stack socket
 * (the IPv4 NAT is the one traversal learns), any on an IPv6 one. */
static int names_family(const udp_socket_t *sock) {
  return sock->family == AF_INET6 && !is_dual_stack(sock) ? AF_UNSPEC : AF_INET;
}

/* A STUN server's IPv6 address is asked only when this host has a route
 * to it: otherwise the request is lost and only delays gathering. */
static bool v6_routed(const udp_addr_t *server) {
  udp_addr_t src;
  return udp_route_source(server, 0, &src) == 0;
}

/*
 * The STUN servers as traversal takes them (text of stun[i] in names):
 * each one's IPv4 address, as before IPv6; on a dual-stack socket also its
 * IPv6 address when routed (an IPv6 server-reflexive candidate;
 * docs/internals/traversal.md, IPv6), after all the IPv4 ones and while
 * TRAV_MAX_STUN_SERVERS allow. A server with neither is logged and left as
 * text (traversal notes it).
 */
static size_t resolve_stun(const qp_traverse_options *o, const udp_socket_t *sock,
                           int budget, udp_resolved_t *names, const char **stun) {
  size_t n = o->stun_server_count;
  if (!is_dual_stack(sock) || n > TRAV_MAX_STUN_SERVERS) {
    n = udp_resolve_names(o->stun_servers, n, STUN_DEFAULT_PORT, names_family(sock),
                          budget, o->cancel, o->cancel_user, names);
    for (size_t i = 0; i < n; i++) {
      stun[i] = names[i].text; /* a name left as is: traversal notes it */
      if (names[i].rc != 0)
        QP_LOG_INFO("STUN server %s skipped: %s", names[i].text, names[i].message);
    }
    return n;
  }
  const char *both[2 * TRAV_MAX_STUN_SERVERS];
  int families[2 * TRAV_MAX_STUN_SERVERS];
  for (size_t i = 0; i < n; i++) {
    both[i] = both[n + i] = o->stun_servers[i];
    families[i] = AF_INET;
    families[n + i] = AF_INET6;
  }
  udp_resolve_names_in(both, families, 2 * n, STUN_DEFAULT_PORT, budget, o->cancel,
                       o->cancel_user, names);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    const udp_resolved_t *v4 = &names[i], *v6 = &names[n + i];
    if (v4->rc != 0 && v6->rc != 0)
      QP_LOG_INFO("STUN server %s skipped: %s", v4->text, v4->message);
    if (v4->rc == 0 || v6->rc != 0)
      stun[k++] = v4->text;
  }
  for (size_t i = 0; i < n && k < TRAV_MAX_STUN_SERVERS; i++)
    if (names[n + i].rc == 0 && v6_routed(&names[n + i].addr))
      stun[k++] = names[n + i].text;
  return k;
}

static int traverse(const qp_traverse_options *o, bool is_server, qp_portal_t *p,
                    udp_socket_t *sock, trav_result_t *res) {
  const char *session = o->session && *o->session ? o->session : "default";
  rdv_t *rdv = NULL;
  /* Sealed rendezvous: the store sees only the derived label (rdv_seal.h). */
  rdv_seal_t seal = {{0}, ""};
  int rc = has_secret(o) ? rdv_seal_init(&seal, o->secret, session) : 0;
  if (rc == 0)
    rc = open_store(o, has_secret(o) ? seal.label : session, &rdv);
  if (rc != 0) {
    rdv_seal_wipe(&seal);
    return rc;
  }
  udp_resolved_t names[UDP_RESOLVE_MAX_NAMES];
  const char *stun[UDP_RESOLVE_MAX_NAMES];
  int budget = o->punch_timeout_ms / 4 < MAX_RESOLVE_MS ? o->punch_timeout_ms / 4
                                                         : MAX_RESOLVE_MS;
  uint64_t t0 = clock_now_ns();
  size_t nstun = resolve_stun(o, sock, budget, names, stun);
  turn_config turn[QP_MAX_TURN_SERVERS];
  size_t nturn = 0;
  /* A dual-stack socket reaches TURN servers by name over IPv4, as an
   * IPv4 socket did (an IPv6 literal still works). */
  rc = turn_opts_build(o, names_family(sock), budget, turn, &nturn);
  if (rc != 0) {
    rdv_close(rdv);
    rdv_seal_wipe(&seal);
    return rc;
  }
  int spent_ms = (int)((clock_now_ns() - t0) / CLOCK_NS_PER_MS);
  trav_config_t cfg = {
      .is_server = is_server,
      .session = session,
      .stun_servers = stun,
      .stun_server_count = nstun,
      /* With a wait, the punch budget starts at the peer's record, after
       * the names were resolved: the caller's number as given (and named
       * in the messages). Without one it counts from the call. */
      .punch_timeout_ms = o->wait_timeout_ms != 0 ? o->punch_timeout_ms
                                                  : o->punch_timeout_ms - spent_ms,
      .wait_timeout_ms = o->wait_timeout_ms,
      .hard_nat_sockets = o->hard_nat_sockets,
      .hard_nat_probe_rate = o->hard_nat_probe_rate,
      .hard_nat_max_probes = o->hard_nat_max_probes,
      .seal = has_secret(o) ? &seal : NULL,
      .turn = turn,
      .turn_count = nturn,
      .relay_policy = o->relay,
      .portmap_protocols = o->no_portmap ? 0u
                           : (o->no_upnp ? 0u : PORTMAP_UPNP) |
                                 (o->no_natpmp ? 0u : PORTMAP_NATPMP) |
                                 (o->no_pcp ? 0u : PORTMAP_PCP),
  };
  memcpy(cfg.fingerprint, portal_fingerprint(p), sizeof(cfg.fingerprint));
  rc = trav_run(sock, rdv, &cfg, o->cancel, o->cancel_user, res);
  gnutls_memset(turn, 0, sizeof(turn)); /* passwords */
  rdv_close(rdv);
  rdv_seal_wipe(&seal);
  return rc;
}

static int create(const qp_traverse_options *o, bool is_server, qp_portal_t **out) {
  int rc = validate(o, out);
  if (rc != 0)
    return rc;
  uint64_t start = clock_now_ns();
  qp_portal_t *p = NULL;
  if ((rc = qp_portal_create(&p)) != 0)
    return rc;
  udp_addr_t bind_addr;
  udp_socket_t sock = {.fd = -1};
  trav_result_t res;
  memset(&res, 0, sizeof(res));
  /* local_ip NULL or "": every address of both families, one dual-stack
   * socket (udp_socket_open_any; docs/internals/traversal.md, IPv6).
   * Bound to one address, the socket gives traversal that one host
   * candidate (trav_gather_host). */
  if (o->local_ip == NULL || *o->local_ip == '\0')
    rc = udp_socket_open_any(o->local_port, &sock);
  else if ((rc = udp_addr_from_ip(o->local_ip, o->local_port, &bind_addr)) == 0)
    rc = udp_socket_open(&bind_addr, &sock);
  if (rc != 0)
    goto fail;
  if ((rc = traverse(o, is_server, p, &sock, &res)) != 0) {
    udp_socket_close(&sock);
    goto fail;
  }
  QP_LOG_INFO("%s: path found: %s", is_server ? "create_server" : "create_client",
              res.summary);
  QP_LOG_INFO("%s: path: %s", is_server ? "create_server" : "create_client",
              res.path_desc);
  if (res.sock_is_extra) {
    /* The birthday technique won on one of traversal's extra sockets: QUIC
     * runs there, and ours is no longer needed. */
    udp_socket_close(&sock);
    sock = res.sock;
    res.sock_is_extra = false;
  }
  /* The punch budget does not cover the wait for the peer. */
  int64_t elapsed_ms = (int64_t)((clock_now_ns() - start) / CLOCK_NS_PER_MS) - res.waited_ms;
  int64_t left = o->punch_timeout_ms - elapsed_ms;
  portal_handoff_t h;
  fill_handoff(&h, o, is_server, &sock, &res);
  rc = portal_start_on_socket(p, &h, left > MIN_HANDSHAKE_MS ? (int)left : MIN_HANDSHAKE_MS);
  if (rc == 0) /* keep what traversal needs to find a new path later */
    portal_attach_recovery(p, recover_create(o, is_server, res.peer_fingerprint));
  trav_result_cleanup(&res);
  if (rc != 0)
    goto fail_kept;
  *out = p;
  return 0;
fail:
  trav_result_cleanup(&res);
fail_kept:
  qp_portal_destroy(p);
  return rc;
}

int qp_create_server(const qp_traverse_options *o, qp_portal_t **out) {
  qp_traverse_options own;
  qp_transport_options transport;
  int rc = options_traverse_copy(o, &own, &transport);
  return rc != 0 ? rc : create(&own, true, out);
}

int qp_create_client(const qp_traverse_options *o, qp_portal_t **out) {
  qp_traverse_options own;
  qp_transport_options transport;
  int rc = options_traverse_copy(o, &own, &transport);
  return rc != 0 ? rc : create(&own, false, out);
}

int create_traverse(const qp_traverse_options *o, bool is_server, qp_portal_t *p,
                    udp_socket_t *sock, trav_result_t *res) {
  return traverse(o, is_server, p, sock, res);
}
