/*
 * traversal.h: NAT traversal on one UDP socket, ICE-like (RFC 8445 ideas,
 * simplified): gather candidates, exchange records through the rendezvous
 * store, run authenticated STUN connectivity checks, nominate one pair, and
 * hand the socket's validated peer address to QUIC.
 *
 * The protocol (keys, freshness rules, timers, limits, message formats) is
 * in docs/internals/traversal.md.
 *
 * Roles are fixed: the server is ICE controlling and nominates, the client
 * is controlled. The server publishes under key "server", the client under
 * key "client", in the rendezvous session cfg->session (the rdv handle must
 * be opened on that session).
 */
#ifndef QP_TRAVERSAL_H
#define QP_TRAVERSAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rendezvous/rdv.h"
#include "rendezvous/rdv_seal.h"
#include "tls/tls_identity.h"
#include "udp/udp.h"

/* Non-STUN datagrams (an early QUIC Initial) kept by trav_run for the
 * caller; later ones are dropped (QUIC retransmits them). */
#define TRAV_EARLY_MAX 8

/* STUN servers one run asks at most (trav_config.stun_servers; a name may
 * come twice, once per family, on a dual-stack socket). */
#define TRAV_MAX_STUN_SERVERS 8

typedef struct trav_config {
  bool is_server;      /* server side = ICE controlling */
  const char *session; /* rendezvous session (records under "server"/"client") */
  const char *const *stun_servers; /* "host:port" strings (port defaults to
                                      3478); may be 0 of them (then host
                                      candidates only) */
  size_t stun_server_count;
  int punch_timeout_ms; /* budget to a validated pair: from the start when
                           wait_timeout_ms is 0, else from the adoption of
                           the peer's record */
  /* Waiting for the peer's record: negative = without limit (cancel stops
   * it), positive = at most this long from the start (then QP_ERR_TIMEOUT),
   * 0 = no separate wait (punch_timeout_ms covers it). */
  int wait_timeout_ms;
  uint8_t fingerprint[TLS_FINGERPRINT_LEN]; /* ours, published in the record */
  /* Sealed rendezvous (rdv_seal.h): records are sealed and must open with
   * these keys; the rdv handle must then be opened on seal->label. NULL =
   * plain records. Borrowed for the run. */
  const rdv_seal_t *seal;
  /* Hard NATs (docs/internals/hard-nat.md); 0 = the default of each. */
  int hard_nat_sockets;    /* extra sockets when our NAT maps per destination
                              at random: default 256, at most 1024, -1 none */
  int hard_nat_probe_rate; /* probes (and extra-socket checks) per second:
                              default 4000, at most 100000 */
  int hard_nat_max_probes; /* probes per run at most: default 8192 (4 rounds
                              of 2048), at most 131072 */
  /* TURN relays (trav_relay.c, docs/internals/turn.md): one allocation per
   * entry, resolved and with credentials filled by the caller (server in
   * any family: it is mapped to the socket's). At most TRAV_MAX_RELAYS. */
  const struct turn_config *turn;
  size_t turn_count;
  int relay_policy; /* QP_RELAY_AUTO / _NEVER / _ONLY */
  /* Port mapping while gathering (src/portmap): PORTMAP_* bits, 0 = none. */
  unsigned portmap_protocols;
  /* "ip[:port]" of the gateway to ask (tests: a fake one on loopback);
   * NULL = the default route's, and only with a STUN server beyond this
   * machine. */
  const char *portmap_gateway;
} trav_config_t;

/* Our ufrag/pwd and the peer's ufrag, to keep answering checks after QUIC
 * starts. */
typedef struct trav_responder trav_responder_t;

typedef struct trav_result {
  udp_addr_t peer; /* the validated peer address QUIC must use */
  /* The socket QUIC must use. Usually a copy of the caller's socket
   * (sock_is_extra false). When the birthday technique won on one of
   * trav_run's extra sockets, sock is that socket, owned by the result
   * (trav_result_cleanup closes it; take it by clearing sock_is_extra),
   * and the caller's own socket is no longer needed. */
  udp_socket_t sock;
  bool sock_is_extra;
  uint8_t peer_fingerprint[TLS_FINGERPRINT_LEN];
  /* One line per candidate pair tried and its outcome, then the winner;
   * for logs and errors. Truncated with "..." when longer. */
  char summary[1024];
  trav_responder_t *responder; /* owned: trav_result_cleanup */
  /* Non-STUN datagrams that arrived while trav_run ran (malloc'ed copies,
   * in arrival order; owned: trav_result_cleanup). */
  uint8_t *early[TRAV_EARLY_MAX];
  size_t early_len[TRAV_EARLY_MAX];
  udp_addr_t early_from[TRAV_EARLY_MAX];
  size_t early_count;
  /* ms from the start until the peer's record was (last) adopted: the time
   * spent waiting for the peer, which punch_timeout_ms does not cover. */
  int64_t waited_ms;
  /* The path: a qp_path_kind and its description (qp_portal_path). */
  int path_kind;
  char path_desc[160];
  /* When the path runs through our own TURN allocation: its client
   * (malloc'ed, owned: take it by setting this to NULL; trav_result_cleanup
   * frees it without a Deallocate), with a channel bound to peer. QUIC must
   * then send every packet for peer through it. NULL otherwise. */
  struct turn_client *turn;
  /* The gateway's port mapping for the socket (src/portmap), or NULL. It
   * must live as long as the portal: take it by setting this to NULL;
   * trav_result_cleanup stops it (deleting the mapping). */
  struct portmap *portmap;
  /* When the path is relayed (and the policy is not "only"): the checks
   * that keep looking for a direct pair under the relayed connection
   * (trav_upgrade.h). Owned: take it by setting this to NULL. */
  struct trav_upgrade *upgrade;
} trav_result_t;

/*
 * Blocking. Uses sock (already bound by the caller, non-blocking) for
 * everything: STUN to the servers, checks, answers. Never closes or
 * rebinds it. When our NAT maps per destination at random and the peer's
 * does not, it also opens extra sockets (the birthday technique), closes
 * all but the winner's, and may return the winner's in out->sock. rdv is used from this thread only while trav_run runs.
 * cfg and its strings are read during the call only.
 * Returns 0 with *out filled (the caller then owns out->responder and the
 * early datagrams: trav_result_cleanup), or:
 * - QP_ERR_PUNCH when no pair validated within cfg->punch_timeout_ms (the
 *   message lists the pairs tried and why each failed, or says that the
 *   peer never published a record);
 * - QP_ERR_RENDEZVOUS / QP_ERR_PROTOCOL when the only peer records seen
 *   within the timeout were stale or foreign / malformed (message says why),
 *   or QP_ERR_RENDEZVOUS etc. when the store itself fails;
 * - QP_ERR_INTERRUPTED when cancel (may be NULL, polled at least every
 *   50 ms) returned true;
 * - QP_ERR_INVALID (bad arguments or STUN server text), QP_ERR_SOCKET,
 *   QP_ERR_NOMEM, QP_ERR_INTERNAL.
 * On error *out holds nothing to free: it is zeroed except for summary,
 * which describes what was tried (pairs, STUN answers, ignored datagrams).
 */
int trav_run(udp_socket_t *sock, rdv_t *rdv, const trav_config_t *cfg,
             bool (*cancel)(void *), void *cancel_arg, trav_result_t *out);

/* Free the responder and the early datagrams; zeroes *r. Accepts NULL and
 * a zeroed result. */
void trav_result_cleanup(trav_result_t *r);

/*
 * After the handoff the portal's I/O thread passes every STUN datagram
 * here: answer authenticated Binding requests from the peer (USERNAME
 * "<our ufrag>:<peer ufrag>", MESSAGE-INTEGRITY with our pwd, FINGERPRINT)
 * from any source address (a late check must still succeed), ignore
 * everything else. Writes the response into resp and returns its length
 * (0 = nothing to send; send it to *from). resp_cap >= TRAV_RESPONSE_MAX
 * always suffices. Thread-compatible (the caller serializes calls).
 */
#define TRAV_RESPONSE_MAX 128
size_t trav_responder_handle(trav_responder_t *r, const uint8_t *pkt,
                             size_t len, const udp_addr_t *from, uint8_t *resp,
                             size_t resp_cap);

/* Requests answered / ignored so far (diagnostics and tests). */
uint64_t trav_responder_answered(const trav_responder_t *r);
uint64_t trav_responder_ignored(const trav_responder_t *r);

/* Accepts NULL. */
void trav_responder_destroy(trav_responder_t *r);

#endif
