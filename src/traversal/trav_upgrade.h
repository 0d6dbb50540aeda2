/*
 * trav_upgrade.h: relay first, direct when possible (issue 10,
 * docs/internals/turn.md "Relay then direct"). Sans-I/O.
 *
 * When traversal nominated a relayed pair, the peers keep checking the
 * direct pairs (socket 0, peer candidates that are not relayed) while QUIC
 * runs through the relay: the same connectivity checks as the traversal
 * (Binding requests with USERNAME, PRIORITY, the ICE role, MESSAGE-INTEGRITY
 * keyed with the peer's pwd, FINGERPRINT; trav_check.c) and the same
 * credentials, so the peer's responder (trav_responder.c) answers them.
 * Feed it the STUN datagrams that arrived directly (never those unwrapped
 * from the relay) and the time; it gives back checks to send directly and,
 * once a check was answered from the address it went to, the validated
 * direct pair.
 *
 * Timers (RFC reasons in turn.md):
 *   - one check at most every TRAV_UPGRADE_TA_MS (RFC 8445 section 14.2,
 *     Ta default 50 ms), next to live traffic;
 *   - per pair, retransmissions after TRAV_UPGRADE_RTO_MS doubling up to
 *     TRAV_UPGRADE_RTO_MAX_MS (RFC 8489 section 6.2.1) during the first
 *     TRAV_UPGRADE_FAST_MS;
 *   - then a slow retry: one check per pair every TRAV_UPGRADE_SLOW_MS
 *     (RFC 8445 section 11, Tr = 15 s), for as long as the connection runs
 *     on the relay: a direct path that opens minutes later is still found,
 *     for at most TRAV_UPGRADE_MAX_PAIRS checks of ~100 bytes per 15 s;
 *   - an authenticated check from the peer triggers an immediate check back
 *     on that pair (RFC 8445 section 7.3.1.4), learning a peer-reflexive
 *     pair when the address is new, and restarts its fast retransmissions.
 *
 * Not thread-safe: the portal calls it under its lock, on its I/O thread.
 */
#ifndef QP_TRAV_UPGRADE_H
#define QP_TRAV_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "udp/udp.h"

/* RFC 8445 section 14.2: Ta default 50 ms ("MUST NOT be sent more often
 * than once every 5 ms" in total): checks share the path with live data. */
#define TRAV_UPGRADE_TA_MS 50
/* RFC 8489 section 6.2.1: "RTO SHOULD be greater than 500 ms", doubled on
 * each retransmission. */
#define TRAV_UPGRADE_RTO_MS 500
/* The doubling stops here, so that a path that opens during the fast phase
 * is found within 4 s (RFC 8489 would wait up to 16 s). */
#define TRAV_UPGRADE_RTO_MAX_MS 4000
/* Fast phase: about one STUN transaction's life (RFC 8489: 39.5 s with
 * Rc = 7); our checks stop doubling, so 30 s covers 11 checks per pair. */
#define TRAV_UPGRADE_FAST_MS 30000
/* Slow phase: RFC 8445 section 11's keepalive interval Tr (15 s), also
 * below the 30 s that NATs commonly keep an idle UDP mapping. */
#define TRAV_UPGRADE_SLOW_MS 15000
/* Direct pairs checked at most: the traversal's direct pairs on the
 * portal's socket plus peer-reflexive ones learned from the peer's checks. */
#define TRAV_UPGRADE_MAX_PAIRS 24
/* Relay IPs remembered at most (trav_upgrade_exclude_ip): the TURN
 * servers (QP_MAX_TURN_SERVERS = 8) and relayed addresses of both sides. */
#define TRAV_UPGRADE_MAX_EXCLUDED 24
/* Room for one check (USERNAME of two ufrags, PRIORITY, role, integrity,
 * fingerprint: about 100 bytes). */
#define TRAV_UPGRADE_CHECK_MAX 256

typedef struct trav_upgrade trav_upgrade_t;

/* What trav_upgrade_on_datagram made of a datagram. */
typedef enum trav_upgrade_rx {
  TRAV_UPGRADE_NOT_OURS = 0, /* not STUN, or not for us: handle it as before */
  TRAV_UPGRADE_REQUEST,      /* an authenticated check from the peer: noted
                                (triggered check); the responder answers it */
  TRAV_UPGRADE_RESPONSE,     /* the answer to one of our checks: consumed */
} trav_upgrade_rx;

/* A pair to check: the peer's address as the portal's socket sends to it
 * (family already matched) and its qp_path_kind (QP_PATH_HOST, _MAPPED,
 * _SRFLX, _PRFLX, _PREDICTED). 0, QP_ERR_INVALID (unusable address or kind, or a
 * relay's IP) or
 * QP_ERR_TOO_LARGE (TRAV_UPGRADE_MAX_PAIRS reached). A pair already there
 * is not added twice (0). */
int trav_upgrade_add_pair(trav_upgrade_t *u, const udp_addr_t *remote,
                          int kind);

/* A relay's IP (a TURN server, or a relayed address of either side): no
 * pair to it is direct, whatever its type (a check of the peer sent
 * through its allocation reaches us from there, and would teach a
 * "peer-reflexive" pair through the relay). 0, or QP_ERR_TOO_LARGE beyond
 * TRAV_UPGRADE_MAX_EXCLUDED. Before trav_upgrade_add_pair. */
int trav_upgrade_exclude_ip(trav_upgrade_t *u, const udp_addr_t *addr);

/* A datagram that arrived on the portal's socket DIRECTLY (not through the
 * relay) from `from`, at now_ms (any monotonic ms clock, the same for
 * every call). */
trav_upgrade_rx trav_upgrade_on_datagram(trav_upgrade_t *u, const uint8_t *pkt,
                                         size_t len, const udp_addr_t *from,
                                         int64_t now_ms);

/* The next check due at now_ms: written into buf (cap >=
 * TRAV_UPGRADE_CHECK_MAX), *to set, its length returned; 0 when none is
 * due (or cap is too small: QP_ERR_INVALID is then set as last error).
 * Call until 0. */
size_t trav_upgrade_poll(trav_upgrade_t *u, int64_t now_ms, uint8_t *buf,
                         size_t cap, udp_addr_t *to);

/* When trav_upgrade_poll has something next (INT64_MAX: never). */
int64_t trav_upgrade_next_ms(const trav_upgrade_t *u);

/* The best validated direct pair (host, port mapping, server-reflexive,
 * predicted, then peer-reflexive; the first validated of a kind): true with *addr and
 * *kind set, else false. */
bool trav_upgrade_validated(const trav_upgrade_t *u, udp_addr_t *addr,
                            int *kind);

/* The kind of the pair to addr (QP_PATH_PRFLX when there is none: an
 * address QUIC found by itself). */
int trav_upgrade_kind_of(const trav_upgrade_t *u, const udp_addr_t *addr);

/* Did an authenticated check of the peer come directly from addr, or did
 * our check to addr validate? (Evidence that the peer can reach us from
 * there without the relay.) */
bool trav_upgrade_heard_from(const trav_upgrade_t *u, const udp_addr_t *addr);

/* Every pair still checking is due at once and retried fast again (the
 * relayed path stalls: maybe the relay is going away). */
void trav_upgrade_hurry(trav_upgrade_t *u);

/* Stop checking: nothing is due any more (the path moved, or gave up). */
void trav_upgrade_stop(trav_upgrade_t *u);

/* Diagnostics: "3 direct pairs, 12 checks sent, 1 answered, 4 checks from
 * the peer" (never past size). */
void trav_upgrade_describe(const trav_upgrade_t *u, char *buf, size_t size);
size_t trav_upgrade_pair_count(const trav_upgrade_t *u);
uint64_t trav_upgrade_checks_sent(const trav_upgrade_t *u);

/* "host", "port mapping", "server-reflexive", "peer-reflexive",
 * "predicted". */
const char *trav_upgrade_kind_name(int kind);

/* Accepts NULL. Wipes the credentials. */
void trav_upgrade_destroy(trav_upgrade_t *u);

#endif
