/* upgrade.c: relay first, direct when possible (upgrade.h). */
#include "portal/upgrade.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "traversal/trav_upgrade.h"

/* Checks sent per poll at most (pacing leaves one due anyway). */
#define UPGRADE_CHECKS_PER_POLL 4

typedef enum upgrade_state {
  UG_CHECKING,  /* direct pairs are checked; QUIC on the relay */
  UG_MIGRATING, /* client: QUIC validates the direct path */
  UG_MOVED,     /* QUIC left the relay; the allocation waits to go */
  UG_GAVE_UP,   /* QUIC did not move: stays on the relay */
} upgrade_state;

struct portal_upgrade {
  trav_upgrade_t *u;
  bool is_server;
  upgrade_state state;
  udp_addr_t relayed_peer; /* where QUIC sent through the relay */
  udp_addr_t target;       /* client: the validated direct pair */
  int kind;
  uint64_t start_ns;
  uint64_t follow_until_ns; /* client: the migration's deadline */
  uint64_t retry_ns;        /* client: a refused migration's next try */
  int tries;
  uint64_t release_ns;      /* Deallocate then (UINT64_MAX: not yet) */
  bool direct_seen;         /* server: the client's QUIC came directly */
  bool hurried;             /* this stall of the relayed path hurried */
};

portal_upgrade_t *portal_upgrade_create(trav_upgrade_t *u,
                                        const udp_addr_t *relayed_peer,
                                        bool is_server) {
  if (u == NULL)
    return NULL;
  portal_upgrade_t *g = calloc(1, sizeof(*g));
  if (g == NULL) {
    QP_LOG_WARN("out of memory: the connection stays on the relay");
    trav_upgrade_destroy(u);
    return NULL;
  }
  g->u = u;
  g->is_server = is_server;
  g->relayed_peer = *relayed_peer;
  g->start_ns = clock_now_ns();
  g->release_ns = UINT64_MAX;
  char d[160];
  trav_upgrade_describe(u, d, sizeof(d));
  QP_LOG_INFO("relayed: still checking direct pairs (%s)", d);
  return g;
}

void portal_upgrade_destroy(portal_upgrade_t *g) {
  if (g == NULL)
    return;
  trav_upgrade_destroy(g->u);
  free(g);
}

static bool checking(const portal_upgrade_t *g) {
  return g != NULL && (g->state == UG_CHECKING || g->state == UG_MIGRATING);
}

bool portal_upgrade_on_stun(portal_upgrade_t *g, const udp_datagram_t *d,
                            uint64_t now_ns) {
  if (!checking(g))
    return false;
  return trav_upgrade_on_datagram(g->u, d->data, d->len, &d->from,
                                  (int64_t)(now_ns / CLOCK_NS_PER_MS)) ==
         TRAV_UPGRADE_RESPONSE;
}

void portal_upgrade_on_quic(portal_upgrade_t *g, portal_relay_t *relay,
                            const udp_addr_t *from) {
  /* Our allocation carries to the client's address, and the client's QUIC
   * now comes from there directly (it migrated to our direct address):
   * answer directly from now on, within this very round (its
   * PATH_CHALLENGE waits for our PATH_RESPONSE). Only after the client's
   * authenticated checks came directly from there: a forged packet alone
   * does not move us off the relay. */
  if (!checking(g) || !g->is_server || !portal_relay_carries(relay, from) ||
      !trav_upgrade_heard_from(g->u, from))
    return;
  portal_relay_release(relay);
  g->direct_seen = true;
}

static void send_checks(portal_upgrade_t *g, udp_socket_t *sock, uint64_t now_ns) {
  uint8_t buf[TRAV_UPGRADE_CHECK_MAX];
  udp_addr_t to;
  size_t n;
  int64_t now_ms = (int64_t)(now_ns / CLOCK_NS_PER_MS);
  for (int k = 0; k < UPGRADE_CHECKS_PER_POLL &&
                  (n = trav_upgrade_poll(g->u, now_ms, buf, sizeof(buf), &to)) > 0;
       k++)
    if (udp_send(sock, &to, buf, n, 0) != 0) /* unreachable now: retried */
      QP_LOG_DEBUG("direct-path check not sent: %s", qp_last_error());
}

/* The relayed path stalls: look at the direct pairs now, once per stall. */
static void hurry_on_stall(portal_upgrade_t *g, transport_t *tr, uint64_t now_ns) {
  uint64_t stalled = transport_stalled_ns(tr, now_ns);
  if (stalled == 0)
    g->hurried = false;
  if (g->hurried || stalled < (uint64_t)UPGRADE_HURRY_STALL_MS * CLOCK_NS_PER_MS)
    return;
  g->hurried = true;
  trav_upgrade_hurry(g->u);
}

static void describe(const portal_upgrade_t *g, const udp_addr_t *peer, int kind,
                     uint64_t now_ns, portal_path_change_t *chg) {
  char who[UDP_ADDRSTRLEN];
  chg->peer = *peer;
  chg->kind = kind;
  snprintf(chg->desc, sizeof(chg->desc),
           "direct (%s, %s) to %s, after %.1f s through the relay",
           trav_upgrade_kind_name(kind),
           udp_addr_family(peer) == AF_INET6 ? "IPv6" : "IPv4",
           udp_addr_to_string(peer, who, sizeof(who)),
           (double)(now_ns - g->start_ns) / 1e9);
}

static void give_up(portal_upgrade_t *g, const char *why) {
  QP_LOG_INFO("staying on the relay: %s", why);
  g->state = UG_GAVE_UP;
  trav_upgrade_stop(g->u);
}

/* Client, a direct pair validated: move QUIC onto it. */
static void migrate(portal_upgrade_t *g, transport_t *tr, portal_relay_t *relay,
                    uint64_t now_ns) {
  udp_addr_t to;
  int kind;
  if (now_ns < g->retry_ns || !trav_upgrade_validated(g->u, &to, &kind))
    return;
  /* Our allocation carried to this very address (the server's): the
   * address stays, only the way changes: directly from now on. */
  bool same = portal_relay_carries(relay, &to);
  if (same)
    portal_relay_release(relay);
  int rc = transport_migrate(tr, &to, now_ns);
  char who[UDP_ADDRSTRLEN];
  udp_addr_to_string(&to, who, sizeof(who));
  if (rc != 0 && !same) {
    if (++g->tries >= UPGRADE_MIGRATE_TRIES)
      give_up(g, qp_last_error());
    g->retry_ns = now_ns + (uint64_t)UPGRADE_MIGRATE_RETRY_MS * CLOCK_NS_PER_MS;
    return;
  }
  /* Same address, migration refused: the server still follows our packets
   * from their new source (as after a NAT rebinding). */
  QP_LOG_INFO("direct path to %s (%s) validated: QUIC moves off the relay",
              who, trav_upgrade_kind_name(kind));
  g->state = UG_MIGRATING;
  g->target = to;
  g->kind = kind;
  g->follow_until_ns = now_ns + (uint64_t)UPGRADE_FOLLOW_MS * CLOCK_NS_PER_MS;
}

/* Has QUIC left the relay? */
static bool moved(portal_upgrade_t *g, transport_t *tr, portal_relay_t *relay,
                  uint64_t now_ns, portal_path_change_t *chg) {
  const udp_addr_t *cur = transport_peer(tr);
  if (g->is_server) {
    /* ngtcp2 followed the client to a new address after validating it, or
     * the client's packets come directly from the address we relayed to. */
    bool followed = !udp_addr_equal(cur, &g->relayed_peer) &&
                    !portal_relay_carries(relay, cur);
    if (!followed && !g->direct_seen)
      return false;
    describe(g, cur, trav_upgrade_kind_of(g->u, cur), now_ns, chg);
    return true;
  }
  if (g->state != UG_MIGRATING)
    return false;
  if (udp_addr_equal(cur, &g->target) && !portal_relay_carries(relay, cur)) {
    describe(g, cur, g->kind, now_ns, chg);
    return true;
  }
  if (now_ns >= g->follow_until_ns)
    give_up(g, "QUIC did not validate the direct path in time");
  return false;
}

/* The allocation goes UPGRADE_RELEASE_MS after the move (Deallocate). */
static void release(portal_upgrade_t *g, udp_socket_t *sock,
                    portal_relay_t **relay, uint64_t now_ns) {
  if (now_ns < g->release_ns)
    return;
  g->release_ns = UINT64_MAX;
  if (*relay == NULL)
    return;
  char srv[UDP_ADDRSTRLEN];
  QP_LOG_INFO("TURN allocation on %s released (the path is direct)",
              portal_relay_server(*relay, srv, sizeof(srv)));
  portal_relay_close(*relay, sock, now_ns);
  portal_relay_destroy(*relay);
  *relay = NULL;
}

bool portal_upgrade_poll(portal_upgrade_t *g, udp_socket_t *sock,
                         transport_t *tr, portal_relay_t **relay,
                         uint64_t now_ns, portal_path_change_t *chg) {
  if (g == NULL)
    return false;
  bool now_moved = false;
  if (checking(g) && tr != NULL &&
      transport_state(tr) == TRANSPORT_ESTABLISHED) {
    hurry_on_stall(g, tr, now_ns);
    send_checks(g, sock, now_ns);
    if (!g->is_server && g->state == UG_CHECKING)
      migrate(g, tr, *relay, now_ns);
    now_moved = checking(g) && moved(g, tr, *relay, now_ns, chg);
  }
  if (now_moved) {
    g->state = UG_MOVED;
    trav_upgrade_stop(g->u);
    portal_relay_release(*relay);
    if (*relay != NULL)
      g->release_ns = now_ns + (uint64_t)UPGRADE_RELEASE_MS * CLOCK_NS_PER_MS;
    char d[160];
    trav_upgrade_describe(g->u, d, sizeof(d));
    QP_LOG_INFO("path: %s (%s)", chg->desc, d);
  }
  release(g, sock, relay, now_ns);
  return now_moved;
}

static uint64_t ms_to_ns(int64_t ms) {
  return ms == INT64_MAX ? UINT64_MAX : (uint64_t)ms * CLOCK_NS_PER_MS;
}

uint64_t portal_upgrade_deadline(const portal_upgrade_t *g) {
  if (g == NULL)
    return UINT64_MAX;
  uint64_t t = g->release_ns;
  if (checking(g)) {
    uint64_t c = ms_to_ns(trav_upgrade_next_ms(g->u));
    t = c < t ? c : t;
  }
  if (g->state == UG_MIGRATING && g->follow_until_ns < t)
    t = g->follow_until_ns;
  if (g->state == UG_CHECKING && g->retry_ns > 0 && g->retry_ns < t)
    t = g->retry_ns;
  return t;
}

bool portal_upgrade_relay_lost(portal_upgrade_t *g, portal_relay_t **relay) {
  if (g == NULL || !portal_relay_released(*relay))
    return false;
  QP_LOG_INFO("TURN allocation lost after the path moved off it: nothing "
              "depended on it (%s)", qp_last_error());
  portal_relay_destroy(*relay);
  *relay = NULL;
  g->release_ns = UINT64_MAX;
  return true;
}
