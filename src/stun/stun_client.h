/*
 * stun_client.h: STUN Binding transactions (RFC 8489 section 6.2.1).
 *
 * Two levels:
 * - A sans-I/O core, stun_client: a fixed table of transactions. The
 *   caller starts transactions, asks when the next timer is due, calls
 *   stun_client_on_timer() then (which hands back the datagrams to send or
 *   resend), and feeds every received STUN datagram to
 *   stun_client_on_response(). It never touches a socket or the clock.
 * - Blocking helpers, stun_client_run() and stun_client_query(), that drive
 *   the core on UDP sockets of the udp layer the caller owns (poll +
 *   udp_send/udp_recv_one), so several servers are asked at once and a dead
 *   one costs at most the deadline.
 *
 * Retransmission (RFC 8489 section 6.2.1): the request goes out at 0, RTO,
 * 3 RTO, 7 RTO, ... (doubling), Rc = 7 times in all; after the last one the
 * client waits Rm * RTO more. With RTO = 500 ms a silent server is given up
 * after 39.5 s, unless the caller's deadline comes first, which it usually
 * does.
 */
#ifndef QP_STUN_CLIENT_H
#define QP_STUN_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "stun/stun_msg.h"

/* RFC 8489 section 6.2.1: "In fixed-line access links, a value of 500 ms
 * is RECOMMENDED" for the initial RTO. */
#define STUN_CLIENT_RTO_MS 500
/* RFC 8489 section 6.2.1: "Retransmissions continue until a response is
 * received or until a total of Rc requests have been sent. Rc SHOULD be
 * configurable and SHOULD have a default of 7." */
#define STUN_CLIENT_MAX_SENDS 7
/* RFC 8489 section 6.2.1: "If, after the last request, a duration equal to
 * Rm times the RTO has passed without a response ... the client SHOULD
 * consider the transaction to have failed. Rm SHOULD be configurable and
 * SHOULD have a default of 16." */
#define STUN_CLIENT_LAST_WAIT_RTOS 16
/* Transactions one stun_client runs at once: enough for every server of a
 * query plus the five requests of NAT behavior discovery. */
#define STUN_CLIENT_MAX_TRANSACTIONS 16
/* Our Binding request: header 20 + CHANGE-REQUEST 8 + FINGERPRINT 8 = 36
 * bytes; keep room for more attributes. */
#define STUN_CLIENT_REQUEST_MAX 96
/* Datagrams read per wake-up of stun_client_run() before the timers get a
 * turn, so a flood cannot starve retransmissions. */
#define STUN_CLIENT_MAX_READS_PER_WAKEUP 64
/* Largest response read by stun_client_run(): an Ethernet MTU, more than
 * any Binding response without PADDING needs. */
#define STUN_CLIENT_RESPONSE_MAX 1500
#define STUN_CLIENT_REASON_MAX 128

typedef enum stun_txn_state {
  STUN_TXN_FREE = 0,
  STUN_TXN_PENDING,
  STUN_TXN_SUCCEEDED,
  STUN_TXN_FAILED,
} stun_txn_state;

/* What one transaction learned. Addresses are valid when the flag (or the
 * state, for mapped) says so. */
typedef struct stun_client_result {
  stun_txn_state state;
  /* When FAILED: QP_ERR_TIMEOUT (no answer before the deadline or after
   * Rc sends), QP_ERR_STUN (error response or unusable response) or
   * QP_ERR_SOCKET (the send failed for a reason udp_errno_is_loss() does
   * not count as a lost packet; sys_errno says why). */
  int error;
  int sys_errno;
  int error_code; /* ERROR-CODE of an error response */
  char error_reason[STUN_CLIENT_REASON_MAX]; /* its reason phrase */
  udp_addr_t server;                         /* where the request went */
  uint32_t change_request;                   /* CHANGE-REQUEST flags sent */
  udp_addr_t mapped;      /* XOR-MAPPED-ADDRESS, else MAPPED- */
  udp_addr_t from;        /* source address of the response */
  bool has_other_address; /* RFC 5780 OTHER-ADDRESS */
  udp_addr_t other_address;
  bool has_response_origin; /* RFC 5780 RESPONSE-ORIGIN */
  udp_addr_t response_origin;
  int requests_sent;
  int64_t rtt_ms; /* from the last send to the response */
} stun_client_result;

typedef struct stun_client_txn {
  stun_client_result result;
  uint8_t txid[STUN_TXID_SIZE];
  uint8_t request[STUN_CLIENT_REQUEST_MAX];
  size_t request_len;
  int64_t next_event_ms; /* next send, or the final give-up time */
  int64_t deadline_ms;
  int64_t last_sent_ms;
  int64_t rto_ms;
} stun_client_txn;

/* The transaction table. Embed it or put it on the stack (about 16 KB);
 * it owns no resources, so there is nothing to clean up. Not thread-safe. */
typedef struct stun_client {
  stun_client_txn txns[STUN_CLIENT_MAX_TRANSACTIONS];
} stun_client;

/* A datagram to send; data and to point into the client and stay valid
 * until the next call on it. */
typedef struct stun_client_datagram {
  const uint8_t *data;
  size_t len;
  const udp_addr_t *to;
  int txn;
} stun_client_datagram;

void stun_client_init(stun_client *c);

/*
 * Start a Binding transaction to server, with a CHANGE-REQUEST attribute
 * when change_flags is not 0 (STUN_CHANGE_IP | STUN_CHANGE_PORT). The first
 * send is due at now_ms; the transaction fails at deadline_ms at the latest.
 * Returns the transaction index (>= 0), or QP_ERR_NOMEM (table full),
 * QP_ERR_INVALID or QP_ERR_INTERNAL (no random txid).
 */
int stun_client_start(stun_client *c, const udp_addr_t *server,
                      uint32_t change_flags, int64_t now_ms,
                      int64_t deadline_ms);

/* When stun_client_on_timer() should next be called (absolute ms, same
 * clock as now_ms), or -1 when no transaction is pending. */
int64_t stun_client_next_timeout(const stun_client *c);

/*
 * Advance the timers to now_ms: fail transactions whose deadline or final
 * wait has passed, and write into out (at most max entries) the requests
 * due to be sent or resent. Returns how many datagrams were written. A
 * send that did not fit in out stays due.
 */
size_t stun_client_on_timer(stun_client *c, int64_t now_ms,
                            stun_client_datagram *out, size_t max);

/*
 * Offer a received datagram. If it is a Binding response to a pending
 * transaction, complete that transaction and return its index. Otherwise
 * return QP_ERR_STUN (not STUN, malformed, or not ours: ignore it). The
 * source address is recorded, not checked: RFC 5780 answers arrive from
 * the server's other addresses.
 */
int stun_client_on_response(stun_client *c, const uint8_t *buf, size_t len,
                            const udp_addr_t *from, int64_t now_ms);

/* Mark a pending transaction failed (e.g. its send failed). */
void stun_client_fail(stun_client *c, int txn, int error, int sys_errno);

/* The result of transaction txn (NULL for an index out of range). */
const stun_client_result *stun_client_result_of(const stun_client *c, int txn);

/* One request of stun_client_run(). */
typedef struct stun_client_request {
  udp_socket_t *sock; /* the UDP socket to send it from (the caller's) */
  udp_addr_t server;
  uint32_t change_flags; /* 0, or STUN_CHANGE_IP | STUN_CHANGE_PORT */
} stun_client_request;

/*
 * Run n (1..STUN_CLIENT_MAX_TRANSACTIONS) Binding transactions at once,
 * each on its own request's UDP socket (the caller owns the sockets and
 * keeps them; several requests may share one). Returns when every
 * transaction has succeeded or failed, or after timeout_ms, whichever is
 * first; results[i] then holds request i's outcome (state SUCCEEDED or
 * FAILED). Datagrams that answer none of the requests (a peer's QUIC
 * packets, say) are read and dropped.
 * Returns 0 (even if every transaction failed: see results), or
 * QP_ERR_INVALID, QP_ERR_SOCKET (poll failed), QP_ERR_INTERRUPTED (a
 * signal arrived; results hold what was known then).
 */
int stun_client_run(const stun_client_request *reqs, size_t n, int timeout_ms,
                    stun_client_result *results);

/*
 * Ask n servers for this socket's mapped address, all at once, waiting at
 * most timeout_ms. results[i] belongs to servers[i].
 * Returns how many servers answered with a mapped address (>= 1), or
 * QP_ERR_TIMEOUT ("STUN server 192.0.2.1:3478 did not answer in 1500 ms"),
 * QP_ERR_STUN (servers answered with errors), QP_ERR_SOCKET,
 * QP_ERR_INVALID, QP_ERR_INTERRUPTED, each with a message naming servers.
 */
int stun_client_query(udp_socket_t *sock, const udp_addr_t *servers, size_t n,
                      int timeout_ms, stun_client_result *results);

#endif
