/*
 * trav_internal.h: the traversal agent's state, shared by the files of
 * src/traversal/. Not for other layers: they use traversal.h.
 *
 * Candidates and pairs carry a socket index, so that predicted candidates
 * (port prediction) and the birthday technique (many sockets) can add
 * sockets and candidates later without changing the check machinery.
 * trav_run uses socket 0, the caller's.
 */
#ifndef QP_TRAV_INTERNAL_H
#define QP_TRAV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rendezvous/rdv_record.h"
#include "stun/stun_client.h"
#include "stun/stun_msg.h"
#include "traversal/traversal.h"

/* ---- limits and timers ------------------------------------------------- */

/* RFC 8445 section 14.2: "Regardless of the Ta value chosen for each agent,
 * the combination of all transactions from all agents (if a given
 * implementation runs several concurrent agents) MUST NOT be sent more
 * often than once every 5 ms." We send one check every TRAV_TA_MS (RFC
 * default 50 ms; hole punching wants the first round out quickly, and a
 * round of 8 pairs then takes 80 ms). */
#define TRAV_TA_MS 10
/* RFC 8445 section 14.3: "RTO = MAX (500ms, Ta * N * (Num-Waiting +
 * Num-In-Progress))". We retransmit a pair's check every TRAV_CHECK_RTO_MS
 * instead (still paced by Ta): a punched path opens only after both sides'
 * packets crossed, and each loss would cost a whole RTO. */
#define TRAV_CHECK_RTO_MS 100
/* Checks sent on one pair at most: 60 s of retransmissions at
 * TRAV_CHECK_RTO_MS, so a long punch timeout stays bounded. */
#define TRAV_MAX_CHECKS_PER_PAIR 600
/* Candidate gathering (STUN) gets min(TRAV_GATHER_MAX_MS, timeout / 3). */
#define TRAV_GATHER_MAX_MS 2000
/* The cancel callback is polled at least this often. */
#define TRAV_CANCEL_POLL_MS 50
/* Our own candidates: host addresses plus one srflx per STUN server. */
#define TRAV_MAX_HOST_CANDIDATES 8
#define TRAV_MAX_STUN_SERVERS 8
#define TRAV_MAX_LOCAL_CANDIDATES                                              \
  (TRAV_MAX_HOST_CANDIDATES + TRAV_MAX_STUN_SERVERS)
/* Peer-reflexive pairs learned from incoming checks. */
#define TRAV_MAX_PRFLX 8
#define TRAV_MAX_PAIRS (RDV_RECORD_MAX_CANDIDATES + TRAV_MAX_PRFLX)
/* Sockets of one agent (1 today: the caller's). */
#define TRAV_MAX_SOCKETS 1
/* Receive batches drained per wake-up before timers get a turn. */
#define TRAV_MAX_BATCHES_PER_WAKEUP 4
/* Our ufrag and pwd lengths (RFC 8445 section 5.3: "The ufrag and password
 * attributes MUST contain at least 24 bits of randomness, and the password
 * MUST contain at least 128 bits"; 6 bits per character). */
#define TRAV_UFRAG_LEN 8
#define TRAV_PWD_LEN 24
/* The peer record key is re-read at least this often while checks run,
 * so a peer that restarted (new ufrag) is adopted. */
#define TRAV_RECORD_REPOLL_MS 100

/* RFC 8445 section 5.1.2.2: "The RECOMMENDED values for type preferences
 * are 126 for host candidates, 110 for peer-reflexive candidates, 100 for
 * server-reflexive candidates, and 0 for relayed candidates." Predicted
 * candidates (ours) rank below server-reflexive ones. */
#define TRAV_PREF_HOST 126
#define TRAV_PREF_PRFLX 110
#define TRAV_PREF_SRFLX 100
#define TRAV_PREF_PREDICTED 90

/* ---- state ------------------------------------------------------------- */

typedef struct trav_creds {
  char ufrag[RDV_RECORD_UFRAG_MAX + 1];
  char pwd[RDV_RECORD_PWD_MAX + 1];
} trav_creds_t;

typedef struct trav_cand {
  rdv_cand_type type;
  udp_addr_t addr;
  uint32_t priority;
  size_t sock_index; /* the agent socket it belongs to */
} trav_cand_t;

typedef enum trav_pair_state {
  TRAV_PAIR_WAITING = 0, /* nothing sent yet */
  TRAV_PAIR_IN_PROGRESS, /* checks sent, no success yet */
  TRAV_PAIR_SUCCEEDED,   /* a success response validated it */
  TRAV_PAIR_FAILED,      /* send error or check budget spent */
} trav_pair_state;

typedef struct trav_pair {
  size_t sock_index;
  udp_addr_t remote;
  rdv_cand_type remote_type;
  uint32_t remote_priority;
  uint64_t priority; /* RFC 8445 section 6.1.2.3 */
  trav_pair_state state;
  bool nominate; /* our checks carry USE-CANDIDATE (controlling side) */
  uint8_t txid[STUN_TXID_SIZE]; /* same for every retransmission */
  int checks_sent;
  int64_t next_send_ms;
  int64_t first_sent_ms;
  int64_t last_sent_ms;
  int64_t rtt_ms;
  uint32_t requests_in;  /* authenticated checks the peer sent from there */
  uint32_t error_code;   /* of an authenticated error response, else 0 */
  bool asymmetric;       /* a success came from another address */
  char send_error[96];   /* why sending failed */
} trav_pair_t;

typedef struct trav_counters {
  uint32_t unauthenticated; /* wrong USERNAME or MESSAGE-INTEGRITY */
  uint32_t foreign;         /* our ufrag, another peer's (stale run) */
  uint32_t malformed;       /* STUN-looking but unparsable */
  uint32_t unmatched;       /* responses to no pending check */
  uint32_t answered;        /* checks we answered */
  uint32_t early_dropped;   /* non-STUN beyond TRAV_EARLY_MAX */
} trav_counters_t;

typedef struct trav_agent {
  udp_socket_t *socks[TRAV_MAX_SOCKETS];
  size_t sock_count;
  rdv_t *rdv;
  const trav_config_t *cfg;
  bool (*cancel)(void *);
  void *cancel_arg;
  trav_result_t *out;
  udp_recv_batch_t *batch;

  bool controlling;
  uint64_t tiebreaker;
  trav_creds_t local;
  trav_creds_t remote;
  bool have_remote;
  bool published;
  uint8_t peer_fp[TLS_FINGERPRINT_LEN];
  char nat_mapping[RDV_RECORD_NAT_MAX + 1];

  trav_cand_t cands[TRAV_MAX_LOCAL_CANDIDATES];
  size_t cand_count;
  trav_pair_t pairs[TRAV_MAX_PAIRS];
  size_t pair_count;
  size_t prflx_count;

  /* STUN gathering (sans-I/O client driven by our loop) */
  stun_client *stun;
  bool gathering;
  int stun_txn[TRAV_MAX_STUN_SERVERS];
  size_t stun_count;
  char stun_note[256]; /* what the STUN servers said, for the summary */

  int64_t start_ms, deadline_ms; /* rdv_now_ms clock */
  int64_t next_send_ms;          /* pacing (Ta) */
  int64_t next_poll_ms;          /* next look at the peer record */
  int poll_pause_ms;

  bool done;
  udp_addr_t winner;
  int winner_pair; /* index into pairs, -1 if none */

  int rec_err;        /* why the last peer record was refused, or 0 */
  char rec_why[256];
  uint32_t records_refused;
  trav_counters_t n;
} trav_agent_t;

/* ---- trav_cand.c ------------------------------------------------------- */

/* RFC 8445 section 5.1.2.1 priority for component 1. */
uint32_t trav_cand_priority(rdv_cand_type type, uint16_t local_pref);
/* Add a candidate unless one with that address and type is there.
 * Returns 0, or QP_ERR_TOO_LARGE when the table is full. */
int trav_cand_add(trav_agent_t *a, rdv_cand_type type, const udp_addr_t *addr,
                  uint16_t local_pref, size_t sock_index);
/* Host candidates of socket sock_index (getifaddrs or its bound address). */
int trav_gather_host(trav_agent_t *a, size_t sock_index);
/* Start STUN transactions to every configured server (gathering). */
int trav_gather_start(trav_agent_t *a, int64_t now_ms, int64_t deadline_ms);
/* Feed a datagram to the STUN client; true when it was a STUN server's
 * answer (the srflx candidate is then added). */
bool trav_gather_on_datagram(trav_agent_t *a, const uint8_t *buf, size_t len,
                             const udp_addr_t *from, int64_t now_ms);
/* Send due STUN requests; returns the next STUN timer or -1 when done. */
int64_t trav_gather_on_timer(trav_agent_t *a, int64_t now_ms);
/* Stop gathering; summarize what the servers said into a->stun_note. */
void trav_gather_finish(trav_agent_t *a);
/* The IP of addr as text, without port ("192.0.2.1", "2001:db8::1"); an
 * IPv4-mapped IPv6 address is written as IPv4. */
const char *trav_addr_ip(const udp_addr_t *addr, char *buf, size_t size);
/* Address usable on a socket of family `family` (maps IPv4 to
 * IPv4-mapped IPv6 for AF_INET6 sockets). False if it cannot be. */
bool trav_addr_for_family(const udp_addr_t *in, int family, udp_addr_t *out);

/* ---- trav_check.c ------------------------------------------------------ */

typedef enum trav_req_verdict {
  TRAV_REQ_ANSWERED = 0,
  TRAV_REQ_NOT_REQUEST,     /* not a Binding request: not for us */
  TRAV_REQ_UNAUTHENTICATED, /* USERNAME not ours or integrity fails */
  TRAV_REQ_FOREIGN_PEER,    /* ours and valid, but another peer's ufrag */
} trav_req_verdict;

/* Write a check: Binding request from `local` to the peer `remote`. */
size_t trav_check_write(const trav_creds_t *local, const trav_creds_t *remote,
                        const uint8_t txid[STUN_TXID_SIZE], bool controlling,
                        uint64_t tiebreaker, uint32_t priority,
                        bool use_candidate, uint8_t *buf, size_t cap);

/* Judge a parsed message that arrived from `from`: when it is a check
 * authenticated for us (and, if remote_ufrag is not NULL, from that peer),
 * write the success response into resp and set *resp_len. */
trav_req_verdict trav_check_answer(const char *local_ufrag,
                                   const char *local_pwd,
                                   const char *remote_ufrag,
                                   const stun_msg *msg, const udp_addr_t *from,
                                   uint8_t *resp, size_t cap,
                                   size_t *resp_len);

/* Random credentials (ALPHA / DIGIT / "+" / "/"). 0 or QP_ERR_INTERNAL. */
int trav_creds_generate(trav_creds_t *c);
/* Random 64-bit value. 0 or QP_ERR_INTERNAL. */
int trav_random_u64(uint64_t *v);

/* ---- trav_pairs.c ------------------------------------------------------ */

/* RFC 8445 section 6.1.2.3 pair priority. */
uint64_t trav_pair_priority(uint32_t controlling_prio,
                            uint32_t controlled_prio);
/* Find the pair on socket sock_index to remote; -1 if none. */
int trav_pair_find(const trav_agent_t *a, size_t sock_index,
                   const udp_addr_t *remote);
/* Add a pair, keeping the list sorted by priority. Returns its index, or
 * -1 when the list is full or the address is unusable on that socket. */
int trav_pair_add(trav_agent_t *a, size_t sock_index, const udp_addr_t *remote,
                  rdv_cand_type type, uint32_t remote_priority, int64_t now_ms);
/* The due pair to check next (earliest due, then highest priority) or -1. */
int trav_pair_next_due(const trav_agent_t *a, int64_t now_ms);
/* Earliest time a check is due, or INT64_MAX. */
int64_t trav_pair_next_time(const trav_agent_t *a);
/* Send pair i's check now and schedule its retransmission. */
int trav_pair_send(trav_agent_t *a, int i, int64_t now_ms);
/* Rebuild the pair list from the peer record's candidates. */
void trav_pairs_from_record(trav_agent_t *a, const rdv_record *rec,
                            int64_t now_ms);
/* The pair whose pending check has this txid, or -1. */
int trav_pair_by_txid(const trav_agent_t *a, const uint8_t *txid);
/* Append one line per pair to buf (never past size). */
void trav_pairs_describe(const trav_agent_t *a, char *buf, size_t size,
                         const char *sep);
/* "succeeded after 2 checks, rtt 1 ms", "no response, 150 checks", ... */
const char *trav_pair_outcome(const trav_pair_t *p, char *buf, size_t size);

/* ---- trav_peer.c ------------------------------------------------------- */

/* Publish our record under our role's key. */
int trav_peer_publish(trav_agent_t *a);
/* Look at the peer's key once; adopt a new valid record. Returns 0, or an
 * error of the store (fatal). Refused records are noted in a->rec_*. */
int trav_peer_poll(trav_agent_t *a, int64_t now_ms);
/* Best-effort cleanup of our key after success. */
void trav_peer_unpublish(trav_agent_t *a);
const char *trav_peer_key(const trav_agent_t *a);
const char *trav_own_key(const trav_agent_t *a);

/* ---- trav_responder.c -------------------------------------------------- */

int trav_responder_create(const trav_creds_t *local, const trav_creds_t *remote,
                          trav_responder_t **out);

#endif
