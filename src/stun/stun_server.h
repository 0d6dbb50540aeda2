/*
 * stun_server.h: an embedded STUN server (RFC 8489 Binding, RFC 5780 NAT
 * behavior discovery).
 *
 * Two levels:
 * - stun_server_handle(): sans-I/O; one request in, at most one response
 *   out, plus the local address slot it must be sent from.
 * - stun_server_start()/stop(): a runner with its own thread that owns one
 *   UDP socket per address slot and a pipe to wake it up for stopping.
 *
 * RFC 5780 needs two IP addresses and two ports, four sockets in all
 * (section 6). Slot numbers encode them, so that a CHANGE-REQUEST is an XOR:
 *
 *                 primary port   alternate port
 *   primary IP      slot 0          slot 1
 *   alternate IP    slot 2          slot 3
 *
 * With only a primary address there is one slot, and a CHANGE-REQUEST is
 * answered with 420 (Unknown Attribute), as RFC 5780 section 6.1 requires.
 */
#ifndef QP_STUN_SERVER_H
#define QP_STUN_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "udp/udp.h"

#define STUN_SERVER_MAX_SLOTS 4
#define STUN_SERVER_SLOT_PORT_BIT 1 /* set: alternate port */
#define STUN_SERVER_SLOT_IP_BIT 2   /* set: alternate IP */
/* Largest PADDING we echo (RFC 5780 section 7.6): an Ethernet MTU, the
 * size clients use to provoke IP fragmentation. Longer ones are not echoed. */
#define STUN_SERVER_MAX_PADDING 1500
/* Largest response: header, four addresses of at most 24 bytes, SOFTWARE
 * and FINGERPRINT (under 256 bytes), plus an echoed PADDING. */
#define STUN_SERVER_RESPONSE_MAX (256 + STUN_SERVER_MAX_PADDING)

typedef struct stun_server_addrs {
  udp_addr_t slot[STUN_SERVER_MAX_SLOTS];
  size_t count; /* 1 (plain server) or 4 (RFC 5780) */
} stun_server_addrs;

/* Where a response goes. */
typedef struct stun_server_reply {
  int slot;      /* send it from this address slot */
  udp_addr_t to; /* the request's source, or that IP with the
                    port of RESPONSE-PORT (RFC 5780) */
} stun_server_reply;

/*
 * Answer one datagram that arrived on slot `local` from `from`. Writes the
 * response into out (cap >= STUN_SERVER_RESPONSE_MAX is always enough) and
 * where to send it into *reply. Returns the response length, 0 when the
 * datagram deserves no answer (not STUN, malformed, not a request, an
 * indication), or QP_ERR_INVALID for bad arguments.
 * Answers: Binding success with XOR-MAPPED-ADDRESS, MAPPED-ADDRESS,
 * RESPONSE-ORIGIN, OTHER-ADDRESS (4 slots only), SOFTWARE, FINGERPRINT;
 * honors CHANGE-REQUEST and RESPONSE-PORT, echoes PADDING of up to
 * STUN_SERVER_MAX_PADDING bytes; 400 for other methods; 420 with
 * UNKNOWN-ATTRIBUTES for unknown comprehension-required attributes and for
 * CHANGE-REQUEST on a one-slot server.
 */
int stun_server_handle(const stun_server_addrs *addrs, int local,
                       const uint8_t *req, size_t len, const udp_addr_t *from,
                       uint8_t *out, size_t cap, stun_server_reply *reply);

typedef struct stun_server stun_server_t;

/*
 * Bind and start answering on a thread of its own.
 * primary: "ip:port" (port 0 = any free port).
 * alternate: NULL for a plain one-socket server, or "ip:port" for RFC 5780:
 * the alternate IP and the alternate port (0 = any free port); the four
 * sockets are then primary/alternate IP x primary/alternate port. With
 * port 0 the server retries a few times until both IPs get the same ports.
 * Returns 0 and sets *out, or QP_ERR_INVALID (bad address text or mixed
 * families), QP_ERR_SOCKET (bind failed: the message names the address
 * and the reason), QP_ERR_NOMEM, QP_ERR_INTERNAL (no thread).
 */
int stun_server_start(const char *primary, const char *alternate,
                      stun_server_t **out);

/* Stop the thread, close the sockets, free. Accepts NULL. Returns after at
 * most one batch of datagrams has been answered. */
void stun_server_stop(stun_server_t *server);

/* The bound address of a slot (0..count-1), ports resolved. Returns 0 or
 * QP_ERR_INVALID. */
int stun_server_address(const stun_server_t *server, int slot, udp_addr_t *out);

/* 1 or 4. */
size_t stun_server_slot_count(const stun_server_t *server);

/* Requests answered so far, counted just before each response is sent
 * (for tests and diagnostics). Thread-safe. */
uint64_t stun_server_requests_answered(const stun_server_t *server);
/* Requests not answered because their source IP exceeded its rate (a token
 * bucket per source IP: 50 answers a second, bursts of 100). */
uint64_t stun_server_requests_limited(const stun_server_t *server);

#endif
