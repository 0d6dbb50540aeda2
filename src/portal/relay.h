/*
 * relay.h: QUIC through our TURN allocation (issue 10). The portal's path
 * is still (local socket, peer address); this wrapper only changes how a
 * datagram for the peer leaves (ChannelData to the TURN server, 4 bytes in
 * front of each QUIC packet, or a Send indication until the channel is
 * bound) and how relayed datagrams come in (unwrapped, with the peer as
 * their source, before the RFC 9443 classification). The transport never
 * sees TURN. It also drives the allocation's refreshes (on the I/O
 * thread) and sends the Deallocate on close.
 *
 * Not thread-safe: the portal calls it under its lock.
 */
#ifndef QP_PORTAL_RELAY_H
#define QP_PORTAL_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quic_portal.h"
#include "turn/turn_client.h"
#include "udp/udp.h"

typedef struct portal_relay portal_relay_t;

/* Take c (malloc'ed; freed by portal_relay_destroy) for the path to peer.
 * NULL when out of memory (c is then freed). */
portal_relay_t *portal_relay_create(turn_client *c, const udp_addr_t *peer);
/* Free everything; no Deallocate (portal_relay_close does that). NULL ok. */
void portal_relay_destroy(portal_relay_t *r);

/* Does a datagram for `to` go through the relay? */
bool portal_relay_carries(const portal_relay_t *r, const udp_addr_t *to);
/* The path moved off the relay (upgrade.h): it carries nothing from now on
 * but still unwraps what comes through it (the peer's packets in flight),
 * until portal_relay_close. NULL ok. */
void portal_relay_release(portal_relay_t *r);
bool portal_relay_released(const portal_relay_t *r);
/* Send len bytes of packets of segment_size bytes (0 or >= len: one) to the
 * peer through the relay, each with its own ChannelData header (GSO stays
 * usable: every segment is header + packet, the last may be shorter). */
int portal_relay_send(portal_relay_t *r, udp_socket_t *sock,
                      const udp_addr_t *to, const uint8_t *buf, size_t len,
                      size_t segment_size);

/* Did d come from the TURN server? */
bool portal_relay_owns(const portal_relay_t *r, const udp_addr_t *from);
/* Handle a datagram from the TURN server: 1 with *inner set (pointing into
 * d) when it carried the peer's data, 0 for TURN's own traffic, or
 * QP_ERR_RELAY when the allocation failed (relay lost: message set). */
int portal_relay_receive(portal_relay_t *r, const udp_datagram_t *d,
                         udp_datagram_t *inner, uint64_t now_ns);

/* Refreshes due at now_ns: sent on sock. QP_ERR_RELAY when the allocation
 * was lost (message set), else 0. */
int portal_relay_timer(portal_relay_t *r, udp_socket_t *sock, uint64_t now_ns);
/* When portal_relay_timer must run next (UINT64_MAX: never). */
uint64_t portal_relay_deadline(const portal_relay_t *r);
/* Deallocate (sent once; the answer is not awaited). */
void portal_relay_close(portal_relay_t *r, udp_socket_t *sock, uint64_t now_ns);

/* turn_opts.c: check qp_traverse_options' relay fields (QP_ERR_INVALID). */
int turn_opts_validate(const qp_traverse_options *o);
/* Parse, resolve (at most budget_ms, family as for the STUN servers) and
 * fill credentials: out gets up to QP_MAX_TURN_SERVERS entries, *count how
 * many. A server whose name does not resolve is logged and skipped; a
 * malformed spec is QP_ERR_INVALID (the message hides the password). */
int turn_opts_build(const qp_traverse_options *o, int family, int budget_ms,
                    turn_config *out, size_t *count);

/* "203.0.113.10:3478" */
const char *portal_relay_server(const portal_relay_t *r, char *buf,
                                size_t size);

#endif
