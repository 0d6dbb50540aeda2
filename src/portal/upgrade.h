/*
 * upgrade.h: relay first, direct when possible, on the portal's I/O thread
 * (issue 10, docs/internals/turn.md "Relay then direct").
 *
 * While QUIC runs through a TURN relay, the direct-pair checks of
 * trav_upgrade.h go out on the portal's one socket (never lent away: the
 * relay carries live traffic meanwhile). When a direct pair validates:
 *   - client: the relay stops carrying to that address if it did, and QUIC
 *     migrates onto it (transport_migrate, as a recovery does: PATH_CHALLENGE
 *     with a fresh connection ID, moved once answered);
 *   - server: follows. Either ngtcp2 moved the path after validating the
 *     client's new address, or (when our own allocation carried to the
 *     client's address, which does not change) a QUIC packet came from
 *     that address directly, not through the relay: the relay stops
 *     carrying at once.
 * Then the path is reported (kind, description, time), the checks stop and
 * the allocation is released UPGRADE_RELEASE_MS later (Deallocate): packets
 * the peer sent through it before it followed still arrive meanwhile. A
 * later failure of the direct path is a recovery's business (recover.h).
 *
 * Not thread-safe: portal lock held for every call.
 */
#ifndef QP_PORTAL_UPGRADE_H
#define QP_PORTAL_UPGRADE_H

#include <stdbool.h>
#include <stdint.h>

#include "portal/relay.h"
#include "quic_portal.h"
#include "transport/transport.h"
#include "udp/udp.h"

/* The allocation outlives the move by this much: the peer may still send
 * through it until its QUIC followed (a path validation: one round trip,
 * a few if PATH_CHALLENGEs are lost; ngtcp2 gives a validation 3 PTOs). */
#define UPGRADE_RELEASE_MS 5000
/* The client gives QUIC this long to validate the direct path it migrated
 * to; then the connection stays on the relay (and the checks stop). */
#define UPGRADE_FOLLOW_MS 10000
/* A refused migration (no spare connection ID yet) is tried again after
 * this long, at most UPGRADE_MIGRATE_TRIES times. */
#define UPGRADE_MIGRATE_RETRY_MS 1000
#define UPGRADE_MIGRATE_TRIES 5
/* Acknowledgements stalled this long on the relayed path: every direct
 * pair is checked at once again (the relay may be dying; the transport
 * declares the path dead at 2 s and a recovery then takes the socket). */
#define UPGRADE_HURRY_STALL_MS 500

struct trav_upgrade;
typedef struct portal_upgrade portal_upgrade_t;

/* Take u (NULL: returns NULL) for a connection relayed to relayed_peer
 * (the address QUIC sends to now). NULL when out of memory (u freed). */
portal_upgrade_t *portal_upgrade_create(struct trav_upgrade *u,
                                        const udp_addr_t *relayed_peer,
                                        bool is_server);
/* Accepts NULL. */
void portal_upgrade_destroy(portal_upgrade_t *g);

/* A STUN datagram that arrived directly (not through the relay): true when
 * it was the answer to one of our checks (consumed), false when it is for
 * the responder as before (a check from the peer is noted first). */
bool portal_upgrade_on_stun(portal_upgrade_t *g, const udp_datagram_t *d,
                            uint64_t now_ns);
/* A QUIC packet that arrived directly from `from` (server side: the client
 * moved, see above). */
void portal_upgrade_on_quic(portal_upgrade_t *g, portal_relay_t *relay,
                            const udp_addr_t *from);

/* The path after a move. */
typedef struct portal_path_change {
  udp_addr_t peer;
  int kind; /* qp_path_kind, direct */
  char desc[QP_PATH_DESC_SIZE];
} portal_path_change_t;

/* Due work at now_ns: checks sent on sock, the client's migration, the
 * move noticed (true, *chg set: once), the relay released (*relay becomes
 * NULL after its Deallocate). */
bool portal_upgrade_poll(portal_upgrade_t *g, udp_socket_t *sock,
                         transport_t *tr, portal_relay_t **relay,
                         uint64_t now_ns, portal_path_change_t *chg);
/* When portal_upgrade_poll must run next (UINT64_MAX: never). */
uint64_t portal_upgrade_deadline(const portal_upgrade_t *g);

/* The relay failed (allocation lost): true when that no longer matters
 * (it carried nothing any more: *relay is freed and NULL), false when the
 * connection depended on it. */
bool portal_upgrade_relay_lost(portal_upgrade_t *g, portal_relay_t **relay);

#endif
