/* Shared between turn_client.c (allocation, transactions) and turn_peer.c
 * (permissions, channels, data). Not for other layers: see turn_client.h. */
#ifndef QP_TURN_INTERNAL_H
#define QP_TURN_INTERNAL_H

#include "common/clock.h"
#include "turn/turn_client.h"

/* What a transaction wants at now (RFC 8489 section 6.2.1 schedule). */
typedef enum turn_txn_due {
  TURN_TXN_WAIT = 0, /* inactive, or nothing due yet */
  TURN_TXN_SEND,     /* (re)transmit now */
  TURN_TXN_EXPIRED,  /* no answer in time: the transaction failed */
} turn_txn_due;

/* Start t with a fresh txid; it is due at once. QP_ERR_INTERNAL if no
 * random txid could be drawn. */
int turn_txn_start(turn_txn *t, uint16_t method, uint64_t now_ns);
turn_txn_due turn_txn_check(const turn_client *c, const turn_txn *t,
                            uint64_t now_ns);
/* Encode t (for peer p, NULL for Allocate/Refresh) into out and schedule
 * its next transmission. */
int turn_txn_send(turn_client *c, turn_txn *t, const turn_peer *p,
                  uint64_t now_ns, uint8_t *out, size_t cap, size_t *out_len);
/* ms since t's first transmission. */
uint64_t turn_txn_elapsed_ms(const turn_txn *t, uint64_t now_ns);

/* What an error answer to t means for the credentials. */
typedef enum turn_challenge {
  TURN_CHALLENGE_NONE = 0, /* not 401/438: the caller handles the code */
  TURN_CHALLENGE_RETRY,    /* realm/nonce learnt, t restarted */
  TURN_CHALLENGE_REJECTED, /* credentials refused, or retries used up */
} turn_challenge;
turn_challenge turn_txn_challenge(turn_client *c, turn_txn *t,
                                  const stun_msg *msg, uint64_t now_ns);

/* True when msg may be acted on: authenticated requests need an answer
 * with a valid MESSAGE-INTEGRITY, except error answers that carry none. */
bool turn_response_trusted(const turn_client *c, const turn_txn *t,
                           const stun_msg *msg);

/* An IPv4 or IPv6 address (the only families TURN carries). */
static inline bool turn_addr_usable(const udp_addr_t *a) {
  return a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6;
}

/* When to refresh something granted for lifetime_s at now_ns. */
uint64_t turn_refresh_time(uint64_t now_ns, uint32_t lifetime_s);

/* "127.0.0.1:3478" of the current server (buf of UDP_ADDRSTRLEN). */
const char *turn_server_text(const turn_client *c, char *buf);
/* "401 Unauthorized" from msg's ERROR-CODE into buf. */
const char *turn_error_text(const stun_msg *msg, char *buf, size_t cap);

/* Peers (turn_peer.c). */
turn_peer *turn_peer_find(turn_client *c, const udp_addr_t *addr);
/* Handle an answer whose txid matched a peer's transaction; false if none
 * matched. */
bool turn_peer_on_response(turn_client *c, const stun_msg *msg,
                           uint64_t now_ns);
/* The next peer datagram due (1), or 0. */
int turn_peer_poll(turn_client *c, uint64_t now_ns, uint8_t *out, size_t cap,
                   size_t *out_len);
uint64_t turn_peer_deadline(const turn_client *c);
/* A ChannelData datagram from the server, unwrapped into rx. */
turn_rx_kind turn_peer_channel_data(turn_client *c, const uint8_t *buf,
                                    size_t len, turn_rx *rx);
/* A Data indication, unwrapped into rx. */
turn_rx_kind turn_peer_data_indication(const stun_msg *msg, turn_rx *rx);
/* Stop every peer transaction and refresh (close). */
void turn_peer_stop_all(turn_client *c);

#endif
