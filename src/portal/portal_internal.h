/*
 * Internal entry points of the portal layer for the traversal front door
 * (create.c): run QUIC on a socket that traversal already punched.
 */
#ifndef QP_PORTAL_INTERNAL_H
#define QP_PORTAL_INTERNAL_H

#include "quic_portal.h"
#include "tls/tls_identity.h"
#include "udp/udp.h"

/* Answers STUN datagrams that reach the portal after the handoff (a peer's
 * late connectivity checks). Writes a response into resp and returns its
 * length, or 0 for none. Called by the I/O thread under the portal lock. */
typedef size_t (*portal_stun_cb)(void *ctx, const uint8_t *pkt, size_t len,
                                 const udp_addr_t *from, uint8_t *resp,
                                 size_t resp_cap);

typedef struct portal_handoff {
  udp_socket_t sock;      /* ownership passes to the portal, even on error */
  bool is_server;
  udp_addr_t peer;        /* the path traversal validated */
  bool pin;
  uint8_t peer_fingerprint[TLS_FINGERPRINT_LEN];
  const qp_transport_options *opts; /* NULL = defaults */
  portal_stun_cb stun_cb; /* may be NULL */
  void *stun_ctx;
  void (*stun_ctx_free)(void *ctx); /* called when the portal is done */
  /* Datagrams that arrived during traversal but belong to QUIC. */
  size_t early_count;
  const uint8_t *early[8];
  size_t early_len[8];
  udp_addr_t early_from[8];
  /* The path traversal found (qp_portal_path), and when it runs through
   * our TURN allocation, its client (malloc'ed; the portal takes it, even
   * on error): every datagram for peer then goes through it (relay.h). */
  int path_kind;
  char path_desc[QP_PATH_DESC_SIZE];
  struct turn_client *turn;
  struct portmap *portmap; /* the gateway's mapping: the portal takes it */
  /* Relayed: the direct-path checks (trav_upgrade.h); the portal takes it,
   * even on error. */
  struct trav_upgrade *upgrade;
} portal_handoff_t;

/* Start QUIC on h->sock: as client towards h->peer, or as a server that
 * accepts only h->peer. Waits up to timeout_ms for the handshake. */
int portal_start_on_socket(qp_portal_t *p, portal_handoff_t *h, int timeout_ms);

/* This portal's certificate fingerprint (32 bytes). */
const uint8_t *portal_fingerprint(const qp_portal_t *p);

/* ---- recovery (recover.c; docs/internals/resilience.md) ------------------ */

typedef struct portal_recovery portal_recovery_t;
struct trav_result;

/* create.c, after portal_start_on_socket succeeded: p owns r from now on. */
void portal_attach_recovery(qp_portal_t *p, portal_recovery_t *r);

/* For the recovery thread: the portal's lock, and under it the transport. */
void portal_recovery_lock(qp_portal_t *p);
void portal_recovery_unlock(qp_portal_t *p);
struct transport *portal_recovery_transport(qp_portal_t *p);
/* The socket. Valid until recover_stop returned (the portal stops the
 * recovery before closing it); reads belong to the recovery while lent. */
const udp_socket_t *portal_recovery_socket(qp_portal_t *p);
/* Lock held: lend the socket's reads to traversal, or take them back. */
void portal_recovery_lend_socket(qp_portal_t *p, bool lent);
/* Lock held: a new path: answer the peer's checks with res's responder
 * (taken), feed the QUIC datagrams traversal kept, and, on a client, move
 * the connection onto res->peer. 0 or the error of the migration. */
int portal_recovery_adopt(qp_portal_t *p, struct trav_result *res);
/* Lock held: end the portal: send/recv return code with this message. */
void portal_recovery_fail(qp_portal_t *p, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* create.c: the traversal run of qp_create_*, on sock, with o's store,
 * session, STUN servers and timeouts (used again by a recovery). */
int create_traverse(const qp_traverse_options *o, bool is_server, qp_portal_t *p,
                    udp_socket_t *sock, struct trav_result *res);

#endif
