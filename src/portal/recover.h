/*
 * recover.h: keeping a traversed connection alive across path changes
 * (docs/internals/resilience.md). A portal made by qp_create_* keeps what it
 * needs to run traversal again (store, session, STUN servers, the pinned
 * fingerprint). When the transport reports a dead path, a recovery thread
 * runs traversal again on the portal's own socket through the same store
 * (fresh credentials and candidates: a new record generation, the same
 * fingerprints), hands the validated path to QUIC (the client migrates onto
 * it, the server follows after path validation), and fails the portal with
 * a message saying what was tried when no path works within
 * reconnect_timeout_ms.
 */
#ifndef QP_PORTAL_RECOVER_H
#define QP_PORTAL_RECOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "quic_portal.h"
#include "tls/tls_identity.h"
#include "transport/transport.h"

typedef struct portal_recovery portal_recovery_t;

/* Default of qp_traverse_options.reconnect_timeout_ms: 30 s, a router
 * reboot or a Wi-Fi to LTE hand-over. */
#define RECOVER_DEFAULT_TIMEOUT_MS 30000

/* Copy what traversal needs from o (strings included; rendezvous callbacks
 * and callbacks_user are borrowed: they must outlive the portal). NULL when
 * o->reconnect_timeout_ms is 0 (recovery off) or out of memory (logged). */
portal_recovery_t *recover_create(const qp_traverse_options *o, bool is_server,
                                  const uint8_t peer_fingerprint[TLS_FINGERPRINT_LEN]);

/* I/O thread, portal lock held: start a recovery if tr reports a dead path
 * and none runs. */
void recover_poll(portal_recovery_t *r, qp_portal_t *p, transport_t *tr, uint64_t now);

/* When recover_poll must run next to notice a dead path in time: the
 * earlier of `deadline` and the instant tr's stall turns into a dead path. */
uint64_t recover_wake_at(portal_recovery_t *r, transport_t *tr, uint64_t deadline);

/* Portal lock held: true while traversal owns the socket's reads. */
bool recover_owns_socket(const portal_recovery_t *r);

/* Recoveries that found a new path so far (portal lock held). */
uint64_t recover_count(const portal_recovery_t *r);

/* Stop a running recovery and wait for its thread. Call WITHOUT the portal
 * lock, before the socket is closed. */
void recover_stop(portal_recovery_t *r);

/* Accepts NULL. recover_stop first. */
void recover_destroy(portal_recovery_t *r);

#endif
