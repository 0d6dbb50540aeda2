/*
 * transport layer: one QUIC connection (ngtcp2 0.12 + GnuTLS) carrying whole
 * messages on the first client-opened bidirectional stream, each framed as a
 * 4-byte big-endian length and the payload (wire-compatible with
 * quic-portal 0.1.x).
 *
 * Sans-I/O: the caller feeds datagrams and the time, and sends what
 * transport_flush hands to its callback. Nothing here touches a socket, a
 * clock or a lock; the portal layer serializes every call on one object.
 */
#ifndef QP_TRANSPORT_H
#define QP_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quic_portal.h"
#include "tls/tls_identity.h"
#include "udp/udp.h"

typedef struct transport transport_t;

typedef struct transport_config {
  bool is_server;
  qp_transport_options opts;
  const tls_identity_t *identity; /* borrowed: must outlive the transport */
  bool has_pin;
  uint8_t pin[TLS_FINGERPRINT_LEN];
  udp_addr_t local;
  udp_addr_t remote; /* client: the server; server: taken from the Initial */
  /* The path runs through a TURN relay (portal/relay.h): never the
   * loopback packet size, even when the relayed address is on loopback. */
  bool relayed;
} transport_config_t;

/* An outgoing message: the 4-byte length prefix and the payload in one
 * buffer, filled by the caller without holding any lock. */
typedef struct transport_msg transport_msg_t;

typedef enum transport_state {
  TRANSPORT_HANDSHAKING,
  TRANSPORT_ESTABLISHED, /* handshake confirmed and message stream open */
  TRANSPORT_CLOSED,      /* ended: see transport_error() */
} transport_state_t;

/* Called by transport_flush for each batch: len bytes holding packets of
 * segment_size bytes (the last may be shorter), all for `to`. */
typedef int (*transport_send_cb)(void *ctx, const udp_addr_t *to,
                                 const uint8_t *buf, size_t len,
                                 size_t segment_size);

/* now: nanoseconds on a monotonic clock. */
int transport_create_client(const transport_config_t *cfg, uint64_t now,
                            transport_t **out);
/* Accept the connection whose first datagram is pkt (from cfg->remote).
 * QP_ERR_PROTOCOL when pkt is not a client Initial: ignore it. */
int transport_create_server(const transport_config_t *cfg, const uint8_t *pkt,
                            size_t len, uint64_t now, transport_t **out);
void transport_destroy(transport_t *t);

/* Process one datagram. Errors end the connection (see transport_state);
 * the return value is 0 unless the call itself was misused. */
int transport_read(transport_t *t, const udp_addr_t *from, const uint8_t *pkt,
                   size_t len, uint64_t now);
/* Write everything that is ready (bounded per call), including a pending
 * CONNECTION_CLOSE, through send. Returns 0 or the error of send. */
int transport_flush(transport_t *t, uint64_t now, transport_send_cb send,
                    void *ctx);
/* When transport_handle_expiry must run next (UINT64_MAX: never). */
uint64_t transport_expiry(transport_t *t);
void transport_handle_expiry(transport_t *t, uint64_t now);
/* Begin a graceful close: the next flush sends CONNECTION_CLOSE (no error). */
void transport_close(transport_t *t);

transport_state_t transport_state(const transport_t *t);
/* Why the connection ended: a QP_ERR code and its message. */
int transport_error(const transport_t *t, const char **message);
/* True when the peer finished its side of the message stream or closed
 * the connection. */
bool transport_peer_finished(const transport_t *t);

/* Allocate a message and copy payload into it (len <= QP_MAX_MESSAGE_SIZE,
 * checked by the caller). NULL when out of memory. */
transport_msg_t *transport_msg_new(const void *payload, size_t len);
/* A message whose len bytes go on the stream exactly as given, with no
 * length prefix added: for tests and fuzzers that play a peer breaking the
 * framing (a lying length prefix). NULL when out of memory. */
transport_msg_t *transport_msg_new_raw(const void *bytes, size_t len);
void transport_msg_free(transport_msg_t *m);
/* Queue m (ownership passes to t). QP_ERR_CLOSED when the connection ended
 * (m is freed). */
int transport_queue(transport_t *t, transport_msg_t *m);
/* Bytes queued but not yet acknowledged by the peer. */
uint64_t transport_unacked_bytes(const transport_t *t);
/* True when queued bytes are waiting for the network (not yet written). */
bool transport_has_unsent(const transport_t *t);

/* True when a whole received message waits for transport_pop. */
bool transport_has_message(const transport_t *t);
/* Take the next whole received message (caller frees *data with free()).
 * Returns false when none is complete. *credit_returned is set when taking it
 * gave flow-control credit back to the peer: flush soon. */
bool transport_pop(transport_t *t, uint8_t **data, size_t *len,
                   bool *credit_returned);

/* Bytes of received messages this side holds: whole messages not yet
 * popped plus the buffer of the one being assembled. */
uint64_t transport_held_bytes(const transport_t *t);

/* Dead-path signal: ack-eliciting bytes have been in flight without any
 * acknowledgement making progress for max(2 s, 3 PTOs). Normal loss does not
 * fire it (acks keep coming); a path that drops everything does, on the side
 * with something in flight (keep-alive PINGs count, so an idle connection
 * with keep-alive on notices within keep-alive + 2 s). */
bool transport_path_dead(transport_t *t, uint64_t now);
/* When the current stall becomes a dead path (UINT64_MAX: no stall). */
uint64_t transport_path_dead_at(transport_t *t);
/* The idle timeout's end: the peer's last packet + max_idle_timeout_secs
 * (UINT64_MAX before the connection is established). */
uint64_t transport_idle_deadline(const transport_t *t);
/* How long acknowledgements have stalled (0: nothing waits for one). */
uint64_t transport_stalled_ns(const transport_t *t, uint64_t now);

/* Recovery. hold=true freezes the timers (no probes, no idle close) until the
 * next packet from the peer is read or hold=false; transport_expiry returns
 * UINT64_MAX meanwhile. */
void transport_hold_timers(transport_t *t, bool hold);
/* The peer address packets go to now (it follows a migration). */
const udp_addr_t *transport_peer(const transport_t *t);
bool transport_timers_held(transport_t *t);
/* Client: validate the path to remote (PATH_CHALLENGE with a fresh
 * connection ID, sent by the next flush) and move the connection onto it
 * once answered. remote may be the current peer address: the packets then
 * reach the server from our new public address, and it follows. Errors:
 * QP_ERR_STATE (server, or not established), QP_ERR_TRANSPORT (no spare
 * connection ID from the peer). */
int transport_migrate(transport_t *t, const udp_addr_t *remote, uint64_t now);

typedef struct transport_stats {
  uint64_t packets_sent;
  uint64_t packets_received;
  uint64_t bytes_in_flight;
  uint64_t cwnd;
  uint64_t smoothed_rtt_ns;
  uint64_t pto_count;
} transport_stats_t;
void transport_get_stats(transport_t *t, transport_stats_t *out);

#endif
