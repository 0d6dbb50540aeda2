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
} portal_handoff_t;

/* Start QUIC on h->sock: as client towards h->peer, or as a server that
 * accepts only h->peer. Waits up to timeout_ms for the handshake. */
int portal_start_on_socket(qp_portal_t *p, portal_handoff_t *h, int timeout_ms);

/* This portal's certificate fingerprint (32 bytes). */
const uint8_t *portal_fingerprint(const qp_portal_t *p);

#endif
