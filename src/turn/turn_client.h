/*
 * turn_client.h: one TURN allocation (RFC 8656) over UDP, sans-I/O.
 *
 * The client never touches a socket or the clock, like the transport: the
 * caller (the traversal layer, on the portal's one socket) feeds it every
 * datagram that came from the TURN server, asks it for datagrams to send
 * and for its next deadline, and passes the time in:
 *
 *   turn_client_init(&c, &cfg);
 *   turn_client_allocate(&c, now);
 *   loop:
 *     while (turn_client_poll(&c, now, buf, sizeof buf, &len, &to) == 1)
 *       sendto(fd, buf, len, to);              // requests, retransmissions
 *     wait for a datagram or turn_client_deadline(&c);
 *     if it came from turn_client_server(&c):
 *       turn_client_handle(&c, dgram, n, &from, now, &rx);
 *       if rx.kind == TURN_RX_DATA: rx.peer sent rx.data[0..rx.len)
 *
 * What it does:
 * - Allocate with the long-term credential mechanism (RFC 8489 section
 *   9.2): the first request goes without credentials; the 401 answer
 *   brings REALM and NONCE; the request is sent again with USERNAME,
 *   REALM, NONCE and MESSAGE-INTEGRITY keyed with MD5(user:realm:pass).
 *   438 (Stale Nonce) takes the new nonce and resends; 300 (Try Alternate)
 *   moves to the ALTERNATE-SERVER; a second 401, 441, 486 (quota) and the
 *   rest fail with QP_ERR_RELAY and a message naming server, user and code.
 * - Every request is retransmitted per RFC 8489 section 6.2.1 (the
 *   constants of stun/stun_client.h), capped by turn_config.timeout_ms.
 * - Refresh before the allocation's lifetime ends; Deallocate (Refresh
 *   with LIFETIME 0) on turn_client_close().
 * - Per peer: CreatePermission (refreshed before its 300 s end), ChannelBind
 *   (refreshed before its 600 s end), and turn_client_wrap() that frames
 *   data for the peer as ChannelData once the channel is bound, as a Send
 *   indication before. Received Data indications and ChannelData come out
 *   of turn_client_handle() as TURN_RX_DATA.
 *
 * Memory: everything lives in struct turn_client (fixed arrays, about
 * 11 KiB); nothing is allocated. Not thread-safe: one thread (the I/O
 * thread) owns a client.
 */
#ifndef QP_TURN_CLIENT_H
#define QP_TURN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "stun/stun_msg.h"
#include "turn/turn_proto.h"
#include "udp/udp.h"

/* RFC 8656 section 7.2 (the server side of Allocate): the default
 * allocation lifetime is "10 minutes"; we ask for that. */
#define TURN_DEFAULT_LIFETIME_S 600
/* Refresh the allocation this long before it would end (RFC 8656 section
 * 8 leaves the moment to the client; a minute covers a full RFC 8489
 * retransmission schedule of 39.5 s). When the lifetime is shorter than
 * twice this, refresh at half of it. */
#define TURN_REFRESH_MARGIN_S 60
/* RFC 8656 section 9: "The Permission Lifetime MUST be 300 seconds (= 5
 * minutes)." Refreshed TURN_REFRESH_MARGIN_S before its end. */
#define TURN_PERMISSION_LIFETIME_S 300
/* RFC 8656 section 12: a channel binding lasts "10 minutes" unless
 * refreshed. Refreshed TURN_REFRESH_MARGIN_S before its end. */
#define TURN_CHANNEL_LIFETIME_S 600
/* Whole-transaction limit when turn_config.timeout_ms is 0: the RFC 8489
 * schedule, 500 ms * (1+2+4+8+16+32) + 16 * 500 ms = 39.5 s. */
#define TURN_TXN_TIMEOUT_MS 39500
/* Peers (permissions with their channel) one allocation serves: the few
 * candidate addresses of one remote portal, with room to spare. */
#define TURN_MAX_PEERS 16
/* Re-sends of one request after 401/438 answers: one 401 to learn the
 * realm and nonce, then stale nonces; more means the server is broken. */
#define TURN_MAX_AUTH_RETRIES 3
/* 300 (Try Alternate) redirects followed per allocation (RFC 8489 section
 * 10: a client must not loop between servers). */
#define TURN_MAX_REDIRECTS 2
/* REALM and NONCE values we keep (RFC 8489 sections 14.9-14.10: up to
 * 763 bytes), with a NUL. */
#define TURN_TEXT_MAX (STUN_MAX_REASON_BYTES + 1)
/* Largest request we build: header, REQUESTED-TRANSPORT, LIFETIME,
 * CHANNEL-NUMBER, XOR-PEER-ADDRESS, USERNAME, REALM, NONCE,
 * MESSAGE-INTEGRITY and FINGERPRINT at their maximum sizes. Give
 * turn_client_poll() a buffer at least this large. */
#define TURN_REQUEST_MAX 2048
/* What a Send indication adds to the data: header 20, XOR-PEER-ADDRESS
 * 24 (IPv6), DATA header 4 + padding 3, FINGERPRINT 8. */
#define TURN_SEND_OVERHEAD 60
#define TURN_ERROR_MAX 256

typedef struct turn_config {
  udp_addr_t server; /* IPv4 or IPv6, resolved by the caller */
  char username[TURN_USERNAME_MAX];
  char password[TURN_PASSWORD_MAX];
  uint32_t lifetime_s; /* asked for; 0 = TURN_DEFAULT_LIFETIME_S */
  uint32_t timeout_ms; /* one transaction, all retransmissions; 0 = RFC */
  /* The relayed address's family: 0 leaves it to the server (IPv4, RFC
   * 8656 section 7.2), AF_INET or AF_INET6 asks with
   * REQUESTED-ADDRESS-FAMILY. Independent of the server's own family. */
  int relay_family;
} turn_config;

typedef enum turn_state {
  TURN_STATE_IDLE = 0,
  TURN_STATE_ALLOCATING,
  TURN_STATE_ALLOCATED,
  TURN_STATE_CLOSING, /* Deallocate sent */
  TURN_STATE_CLOSED,
  TURN_STATE_FAILED, /* see turn_client_error() */
} turn_state;

/* A permission's or a channel's state. */
typedef enum turn_peer_state {
  TURN_PEER_NONE = 0,
  TURN_PEER_PENDING, /* first request in flight */
  TURN_PEER_READY,   /* installed (refreshes run in the background) */
  TURN_PEER_FAILED,  /* refused or unanswered: see the peer's error */
} turn_peer_state;

/* One request in flight (RFC 8489 section 6.2.1). */
typedef struct turn_txn {
  bool active;
  uint16_t method;
  uint8_t txid[STUN_TXID_SIZE];
  uint64_t started_ns; /* first transmission of this txid */
  uint64_t next_ns;    /* next transmission, or the give-up time */
  uint32_t sent;       /* transmissions of this txid */
  uint32_t auth_retries;
  bool authenticated; /* carried MESSAGE-INTEGRITY */
} turn_txn;

typedef struct turn_peer {
  bool used;
  udp_addr_t addr;
  turn_peer_state permission;
  uint64_t permission_refresh_ns;
  turn_txn permission_txn;
  uint16_t channel; /* assigned at the first turn_client_bind, else 0 */
  turn_peer_state binding;
  uint64_t binding_refresh_ns;
  turn_txn binding_txn;
  char error[TURN_ERROR_MAX];
} turn_peer;

typedef struct turn_client {
  turn_config cfg;
  turn_state state;
  udp_addr_t server; /* cfg.server, or where 300 sent us */
  uint32_t redirects;
  /* Long-term credentials, once the server named its realm. */
  char realm[TURN_TEXT_MAX];
  uint8_t nonce[TURN_TEXT_MAX];
  size_t nonce_len;
  bool have_key;
  uint8_t key[STUN_LONG_TERM_KEY_SIZE];
  /* The allocation. */
  udp_addr_t relayed;  /* XOR-RELAYED-ADDRESS */
  udp_addr_t mapped;   /* XOR-MAPPED-ADDRESS: our public side */
  uint32_t lifetime_s; /* as granted */
  uint64_t refresh_ns;
  turn_txn alloc_txn; /* Allocate, Refresh or Deallocate */
  uint32_t refresh_lifetime_s;
  turn_peer peers[TURN_MAX_PEERS];
  uint16_t next_channel;
  int error; /* QP_ERR_* once FAILED */
  char error_msg[TURN_ERROR_MAX];
} turn_client;

/* What turn_client_handle() made of a datagram. */
typedef enum turn_rx_kind {
  TURN_RX_IGNORED = 0, /* not ours, stale or malformed: drop it */
  TURN_RX_CONTROL,     /* a TURN answer; state may have changed */
  TURN_RX_DATA,        /* a peer's datagram, relayed */
} turn_rx_kind;

typedef struct turn_rx {
  turn_rx_kind kind;
  udp_addr_t peer;     /* TURN_RX_DATA: who sent it */
  const uint8_t *data; /* TURN_RX_DATA: points into the datagram */
  size_t len;
} turn_rx;

/* Copy cfg (the caller may drop it). QP_ERR_INVALID for a missing server
 * or user. */
int turn_client_init(turn_client *c, const turn_config *cfg);

/* Start the Allocate transaction. QP_ERR_STATE unless IDLE. */
int turn_client_allocate(turn_client *c, uint64_t now_ns);

/*
 * Produce the next datagram that is due at now_ns (first transmissions,
 * retransmissions, refreshes) into out (cap >= TURN_REQUEST_MAX), with its
 * destination in *to (always the TURN server). Returns 1 when one was
 * written, 0 when nothing is due, or a negative QP_ERR_* when the
 * allocation just failed (a transaction ran out of time: QP_ERR_RELAY,
 * message naming the server and the elapsed ms); later calls return 0.
 * A permission or channel that fails only marks its peer FAILED.
 */
int turn_client_poll(turn_client *c, uint64_t now_ns, uint8_t *out, size_t cap,
                     size_t *out_len, udp_addr_t *to);

/* When turn_client_poll() has something to do next; UINT64_MAX if never. */
uint64_t turn_client_deadline(const turn_client *c);

/*
 * Feed one datagram received from `from` at now_ns. Only datagrams from
 * the TURN server are looked at: STUN answers to our requests (their
 * integrity is checked once we have a key), Data indications and
 * ChannelData. Returns the kind (>= 0; *rx filled), or a negative
 * QP_ERR_* when this answer made the allocation fail (QP_ERR_RELAY:
 * wrong credentials, quota, refused, relay lost), message set.
 */
int turn_client_handle(turn_client *c, const uint8_t *buf, size_t len,
                       const udp_addr_t *from, uint64_t now_ns, turn_rx *rx);

/* Ask for a permission for peer's IP (CreatePermission), kept fresh until
 * close. The allocation need not be ready yet: the request waits for it.
 * Returns 0, QP_ERR_NOMEM (TURN_MAX_PEERS in use) or QP_ERR_STATE. */
int turn_client_permit(turn_client *c, const udp_addr_t *peer, uint64_t now_ns);

/* Bind a channel to peer (ChannelBind; it installs the permission too),
 * kept fresh until close. Same returns as turn_client_permit(). */
int turn_client_bind(turn_client *c, const udp_addr_t *peer, uint64_t now_ns);

/* The state of peer's permission / channel; NONE for an unknown peer. */
turn_peer_state turn_client_permission(const turn_client *c,
                                       const udp_addr_t *peer);
turn_peer_state turn_client_binding(const turn_client *c,
                                    const udp_addr_t *peer);
/* The channel bound to peer, 0 unless its binding is READY. The QUIC path
 * uses it with turn_channel_header() to frame without a copy. */
uint16_t turn_client_channel(const turn_client *c, const udp_addr_t *peer);
/* Why peer's permission or channel failed ("" if it did not). */
const char *turn_client_peer_error(const turn_client *c,
                                   const udp_addr_t *peer);

/*
 * Frame len bytes for peer into out, to be sent to the TURN server:
 * ChannelData when a channel is bound, else a Send indication (the server
 * drops it unless peer's permission is installed). Returns 0 and sets
 * *out_len, QP_ERR_STATE (not ALLOCATED), QP_ERR_TOO_LARGE (out too small:
 * len + TURN_SEND_OVERHEAD is always enough) or QP_ERR_INVALID.
 */
int turn_client_wrap(turn_client *c, const udp_addr_t *peer,
                     const uint8_t *data, size_t len, uint8_t *out, size_t cap,
                     size_t *out_len);

/* Start the Deallocate (Refresh, LIFETIME 0); the state is CLOSED once the
 * server answers or the transaction gives up, and at once if nothing was
 * allocated. Permissions and channels stop being refreshed. */
int turn_client_close(turn_client *c, uint64_t now_ns);

turn_state turn_client_state(const turn_client *c);
const char *turn_state_name(turn_state state);
/* Where to send: the configured server, or the alternate a 300 named. */
const udp_addr_t *turn_client_server(const turn_client *c);
/* True when a datagram from `from` belongs to this client (the udp layer's
 * demultiplexing: ChannelData and TURN answers come from the server). */
bool turn_client_owns(const turn_client *c, const udp_addr_t *from);
/* The message that ended a FAILED client ("" otherwise). */
const char *turn_client_error(const turn_client *c);

#endif
