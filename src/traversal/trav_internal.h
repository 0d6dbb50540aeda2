/*
 * trav_internal.h: the traversal agent's state, shared by the files of
 * src/traversal/. Not for other layers: they use traversal.h.
 *
 * Candidates and pairs carry a socket index: socket 0 is the caller's, the
 * others are the extra sockets of the birthday technique (trav_hard.c,
 * docs/internals/hard-nat.md), which the check machinery treats like any
 * other socket.
 */
#ifndef QP_TRAV_INTERNAL_H
#define QP_TRAV_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <poll.h>
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
/* Candidate gathering (STUN) gets min(TRAV_GATHER_MAX_MS, timeout / 3):
 * what a list of only dead (or unreachable) STUN servers costs. */
#define TRAV_GATHER_MAX_MS 2000
/* Once one STUN server answered, the others get this much longer (ms): a
 * server slower or dead next to a live one costs at most this, not
 * TRAV_GATHER_MAX_MS. 80 ms covers servers a few tens of ms further away
 * than the first without holding up a traversal noticeably. */
#define TRAV_STUN_GRACE_MS 80
/* Behavior-learning requests (below), started on the first RFC 5780
 * answer, are waited for this many round trips of that answer plus
 * TRAV_STUN_GRACE_MS, so a distant server's follow-ups are not cut off. */
#define TRAV_STUN_FOLLOWUP_RTTS 2
/* The cancel callback is polled at least this often. */
#define TRAV_CANCEL_POLL_MS 50
/* Our own candidates: host addresses, one srflx per STUN server, and the
 * predicted ones of a sequential NAT (TRAV_PREDICT_COUNT). */
#define TRAV_MAX_HOST_CANDIDATES 8
/* Behavior learning (trav_cand.c): when a STUN server's answer names its
 * RFC 5780 OTHER-ADDRESS, two more Binding requests go out back to back,
 * to (primary IP, other port) and to OTHER-ADDRESS, so that three
 * destinations give two port steps (RFC 5780 section 4.3 tests II and
 * III, run from our own socket). */
#define TRAV_BEHAVIOR_FOLLOWUPS 2
#define TRAV_MAX_STUN_TXNS (TRAV_MAX_STUN_SERVERS + TRAV_BEHAVIOR_FOLLOWUPS)
/* Port prediction for a sequential NAT: we publish the next
 * TRAV_PREDICT_COUNT ports, last mapped port + k * delta (k = 1..8). The
 * hard side's own checks go to predicted and srflx candidates first, so its
 * first new mapping is k = 1; the slack covers a few flows of other hosts
 * behind the same NAT. */
#define TRAV_PREDICT_COUNT 8
#define TRAV_MAX_LOCAL_CANDIDATES                                              \
  (TRAV_MAX_HOST_CANDIDATES + TRAV_MAX_STUN_SERVERS + TRAV_PREDICT_COUNT)
/* Peer-reflexive pairs learned from incoming checks. */
#define TRAV_MAX_PRFLX 8
#define TRAV_MAX_PAIRS (RDV_RECORD_MAX_CANDIDATES + TRAV_MAX_PRFLX)
/* The birthday technique (docs/internals/hard-nat.md). The side whose NAT
 * maps every destination to a random port opens this many extra sockets,
 * each sending checks to the peer's one public address; the peer probes
 * random ports of our public IP. P(no hit) ~ exp(-sockets * probes /
 * 64512): 256 x 2048 misses 0.03% of rounds, 256 x 1024 1.7%. Sockets
 * count against RLIMIT_NOFILE: at most TRAV_BIRTHDAY_MAX_SOCKETS. */
#define TRAV_BIRTHDAY_SOCKETS_DEFAULT 256
#define TRAV_BIRTHDAY_MAX_SOCKETS 1024
/* Probes sent per second by the easy side (and checks per second from the
 * extra sockets): a round of 2048 takes 0.5 s, about 1 Mbit/s of checks. */
#define TRAV_PROBE_RATE_DEFAULT 4000
#define TRAV_PROBE_RATE_MAX 100000
/* A round probes this many distinct ports; the total per run is bounded by
 * TRAV_PROBES_MAX_DEFAULT (4 rounds, 2 s at the default rate). */
#define TRAV_PROBES_PER_ROUND 2048
#define TRAV_PROBES_MAX_DEFAULT (4 * TRAV_PROBES_PER_ROUND)
#define TRAV_PROBES_MAX_LIMIT (64 * TRAV_PROBES_PER_ROUND)
/* Ports probed: Linux and most NATs allocate from 1024-65535. */
#define TRAV_PROBE_PORT_MIN 1024
/* Each extra socket re-sends its check this often (keeps its mapping and
 * covers a lost first check), at most TRAV_BIRTHDAY_MAX_REOPENS times. */
#define TRAV_BIRTHDAY_REOPEN_MS 1000
#define TRAV_BIRTHDAY_MAX_REOPENS 60
/* The prober starts this long after adopting the hard side's record: the
 * hard side reads our record within TRAV_RECORD_REPOLL_MS, then opens its
 * 256 mappings at the probe rate (64 ms at 4000/s). */
#define TRAV_PROBE_START_DELAY_MS 150
/* Probes or openings sent per wake-up at most, so that receiving and timers
 * keep their turn (at 4000/s a wake-up is due every 0.25 ms anyway). */
#define TRAV_SPRAY_BURST 16
/* Sockets of one agent: the caller's plus the extra ones. */
#define TRAV_MAX_SOCKETS (1 + TRAV_BIRTHDAY_MAX_SOCKETS)
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
/* next_send_ms of a triggered check (RFC 8445 section 7.3.1.4: served
 * before the ordinary checks): the earliest time there is. When the pairs
 * outnumber TRAV_CHECK_RTO_MS / TRAV_TA_MS, every ordinary check is
 * overdue, and a triggered one scheduled "now" would wait behind them all
 * (earliest due goes first), possibly until the punch timeout. */
#define TRAV_TRIGGERED_MS 0
/* While it runs, each side rewrites its record this often (a new time_ms:
 * a heartbeat the peer sees without trusting clocks). */
#define TRAV_REFRESH_MS 1000
/* A peer record that has not changed for this long (three heartbeats),
 * while nothing authenticated came from the peer, was left by a process
 * that is gone: when waiting for the peer (wait_timeout_ms != 0) it is
 * dropped and the wait goes on, instead of failing the punch. */
#define TRAV_STALE_MS 3000

/* RFC 8445 section 5.1.2.2: "The RECOMMENDED values for type preferences
 * are 126 for host candidates, 110 for peer-reflexive candidates, 100 for
 * server-reflexive candidates, and 0 for relayed candidates." Predicted
 * candidates (ours) rank below server-reflexive ones. */
#define TRAV_PREF_HOST 126
#define TRAV_PREF_PRFLX 110
/* A gateway's port mapping (src/portmap): a candidate of its own type
 * (RDV_CAND_MAPPED), ranked between host and STUN's srflx (issue 11). */
#define TRAV_PREF_MAPPED 115
#define TRAV_PREF_SRFLX 100
#define TRAV_PREF_PREDICTED 90
#define TRAV_PREF_RELAY 0

/* TURN (trav_relay.c). Allocations of one agent: the configured servers
 * (QP_MAX_TURN_SERVERS). Each is a virtual socket for the check machinery:
 * index TRAV_RELAY_SOCK_BASE + k, sending through socket 0 to the TURN
 * server. */
#define TRAV_MAX_RELAYS 8
#define TRAV_RELAY_SOCK_BASE 4096
/* Once one allocation succeeded, the others get this much longer during
 * gathering (as TRAV_STUN_GRACE_MS for STUN): a dead TURN server next to a
 * live one costs at most this. Late ones go on in the background. */
#define TRAV_RELAY_GATHER_GRACE_MS 100
/* Once STUN gathering is over, allocations still running get this much
 * longer, no more: a dead TURN server must not hold up the pairs that need
 * no relay by the whole gathering budget. 500 ms covers an Allocate's two
 * round trips (401, then with credentials) to a server 200 ms away. */
#define TRAV_RELAY_AFTER_STUN_MS 500
/* Once STUN gathering is over, gathering waits at most this much longer
 * for the gateway's port mapping (src/portmap); a mapping granted later is
 * published late (trav_portmap_late) instead. What no gateway costs: at
 * most this, not PORTMAP_DEADLINE_MS (250). In the lab, miniupnpd answers
 * NAT-PMP in 3-21 ms and PCP in 2-13 ms from the start, before STUN is
 * done; a fresh process's UPnP (SSDP search, description, SOAP) takes
 * 55-65 ms and usually comes late (docs/internals/portmap.md). */
#define TRAV_PORTMAP_AFTER_STUN_MS 20

/* ---- state ------------------------------------------------------------- */

typedef struct trav_creds {
  char ufrag[RDV_RECORD_UFRAG_MAX + 1];
  char pwd[RDV_RECORD_PWD_MAX + 1];
} trav_creds_t;

/* What a NAT does with ports, learned from our STUN answers or read from
 * the peer's record (nat.mapping + nat.port_delta). */
typedef enum trav_ports {
  TRAV_PORTS_UNKNOWN = 0, /* fewer than two answers: assume easy */
  TRAV_PORTS_SAME,        /* endpoint-independent mapping (or no NAT) */
  TRAV_PORTS_SEQUENTIAL,  /* per destination, step `delta` */
  TRAV_PORTS_RANDOM,      /* per destination, at random */
} trav_ports;

typedef struct trav_behavior {
  trav_ports ports;
  int delta;          /* sequential: the port step (never 0) */
  uint16_t last_port; /* our last mapped port (the newest mapping) */
} trav_behavior_t;

/* The plan both sides derive from the two records. */
typedef enum trav_strategy {
  TRAV_STRATEGY_DIRECT = 0, /* checks on the candidates, as ICE */
  TRAV_STRATEGY_BIRTHDAY_HARD,  /* we are random: extra sockets */
  TRAV_STRATEGY_BIRTHDAY_PROBE, /* the peer is random: probe its ports */
  TRAV_STRATEGY_BOTH_HARD,  /* both per destination, neither predictable */
} trav_strategy;

typedef struct trav_cand {
  rdv_cand_type type;
  udp_addr_t addr;
  uint32_t priority;
  size_t sock_index; /* the agent socket it belongs to */
  char via[RDV_RECORD_VIA_MAX + 1]; /* RDV_CAND_MAPPED: "upnp", ... */
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
  char remote_via[RDV_RECORD_VIA_MAX + 1]; /* RDV_CAND_MAPPED: its protocol */
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
  bool peer_nominated;   /* controlled side: the peer sent USE-CANDIDATE on
                            it; it wins once our own check validated it */
  /* ... and our answer to that nomination, held until then (per pair, so
   * nominations forged on other pairs cannot displace it). */
  uint8_t held_answer[TRAV_RESPONSE_MAX];
  size_t held_len;
  uint32_t error_code;   /* of an authenticated error response, else 0 */
  bool asymmetric;       /* a success came from another address */
  bool birthday;         /* found by the birthday technique */
  char send_error[96];   /* why sending failed */
} trav_pair_t;

typedef struct trav_counters {
  uint32_t unauthenticated; /* wrong USERNAME or MESSAGE-INTEGRITY */
  uint32_t foreign;         /* our ufrag, another peer's (stale run) */
  uint32_t malformed;       /* STUN-looking but unparsable */
  uint32_t unmatched;       /* responses to no pending check */
  uint32_t answered;        /* checks we answered */
  uint32_t early_dropped;   /* non-STUN beyond TRAV_EARLY_MAX */
  uint32_t role_conflicts;  /* checks claiming our own ICE role */
  uint32_t nominations_held; /* USE-CANDIDATE on a pair not yet validated */
  uint32_t bad_candidates;  /* record candidates refused (trav_pairs.c) */
} trav_counters_t;

/* The birthday technique's state (trav_hard.c). */
typedef struct trav_spray {
  /* Transaction ids of probes and openings: this prefix, then a kind
   * byte, then the port (probe) or socket index (opening). */
  uint8_t prefix[8];
  /* hard side */
  udp_socket_t *extra; /* malloc'ed, extra_count sockets; fd -1 = closed */
  size_t extra_count;
  udp_addr_t target;   /* the peer's public address (srflx) */
  uint64_t openings;   /* checks sent from extra sockets */
  size_t sockets_opened;
  /* prober */
  bool probing;
  /* Probing waits until the peer proved it holds the record's credentials
   * (trav_hard.c: a sealed record, or an authenticated check from the
   * probed IP), so a forged record cannot aim the probes at a bystander. */
  bool proven;
  udp_addr_t probe_ip; /* the peer's public IP (port set per probe) */
  uint64_t probes;     /* sent this run */
  uint64_t probes_base; /* probes when the prober was last armed */
  uint32_t round_sent;
  uint8_t probed[65536 / 8]; /* ports probed this round */
  uint32_t hits;       /* probes answered */
  /* pacing, both sides */
  int64_t start_ms;
  int rate;            /* per second */
  uint64_t max_probes;
} trav_spray_t;

typedef struct trav_agent {
  udp_socket_t *socks[TRAV_MAX_SOCKETS];
  size_t sock_count;
  struct pollfd pfd[TRAV_MAX_SOCKETS];
  size_t pfd_sock[TRAV_MAX_SOCKETS]; /* socket index of each pfd */
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
  trav_behavior_t self;      /* our NAT, from gathering */
  trav_behavior_t peer_nat;  /* the peer's, from its record */
  trav_strategy strategy;
  trav_spray_t spray;

  trav_cand_t cands[TRAV_MAX_LOCAL_CANDIDATES];
  size_t cand_count;
  trav_pair_t pairs[TRAV_MAX_PAIRS];
  size_t pair_count;
  size_t prflx_count;

  /* STUN gathering (sans-I/O client driven by our loop) */
  stun_client *stun;
  bool gathering;
  int stun_txn[TRAV_MAX_STUN_TXNS]; /* in the order they were sent */
  size_t stun_count;
  bool stun_followup[TRAV_MAX_STUN_TXNS]; /* behavior learning, not srflx */
  size_t stun_followups;
  int64_t gather_until_ms;
  int64_t gather_stop_ms; /* stop after answers (grace); -1 before one */
  char stun_note[256]; /* what the STUN servers said, for the summary */

  int64_t start_ms, deadline_ms; /* rdv_now_ms clock */
  int64_t adopted_ms;            /* last adoption of a peer record, or 0 */
  int64_t peer_alive_ms;  /* last sign of life: adoption, a heartbeat (a new
                             time_ms in its record), an authenticated check */
  uint64_t peer_time_ms;  /* time_ms of the adopted record as last read */
  int64_t next_refresh_ms; /* our next heartbeat */
  uint64_t own_time_ms;    /* time_ms of our last published record */
  /* A record dropped as stale: ignored until it changes. */
  char stale_ufrag[sizeof(((trav_creds_t *)0)->ufrag)];
  uint64_t stale_time_ms;
  int64_t next_send_ms;          /* pacing (Ta) */
  int64_t next_poll_ms;          /* next look at the peer record */
  int poll_pause_ms;

  bool done;
  udp_addr_t winner;
  int winner_pair;   /* index into pairs, -1 if none */
  size_t winner_sock; /* the socket the winner runs on */

  int rec_err;        /* why the last peer record was refused, or 0 */
  char rec_why[256];
  uint32_t records_refused;
  uint32_t records_unopened; /* sealed records that did not open */
  struct trav_relay *relay; /* TURN allocations (trav_relay.c), or NULL */
  trav_counters_t n;
  struct portmap *portmap; /* asking the gateway (trav_cand.c) */
  bool portmap_pending;     /* its answer not taken yet */
  int64_t portmap_look_ms;  /* next look after gathering (trav_portmap_late) */
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
/* The gateway's port mapping while gathering: -1 when gathering need not
 * wait for it (answered, a candidate added if granted; or
 * TRAV_PORTMAP_AFTER_STUN_MS passed since STUN was done at stun_done_ms,
 * -1 while STUN runs), else when to look again. */
int64_t trav_gather_portmap(trav_agent_t *a, int64_t now_ms,
                            int64_t stun_done_ms);
/* After gathering: a mapping granted since becomes a candidate and our
 * record is made due for publishing. Returns when to call it again (now_ms
 * when it took one, INT64_MAX when nothing is pending any more). */
int64_t trav_portmap_late(trav_agent_t *a, int64_t now_ms);
/* "port mapping, UPnP" (NAT-PMP, PCP) for a mapped candidate's via, for
 * the path text. */
const char *trav_mapped_text(const char *via);
int trav_gather_start(trav_agent_t *a, int64_t now_ms, int64_t deadline_ms);
/* Feed a datagram to the STUN client; true when it was a STUN server's
 * answer (the srflx candidate is then added). */
bool trav_gather_on_datagram(trav_agent_t *a, const uint8_t *buf, size_t len,
                             const udp_addr_t *from, int64_t now_ms);
/* Send due STUN requests; returns the next STUN timer or -1 when done. */
int64_t trav_gather_on_timer(trav_agent_t *a, int64_t now_ms);
/* Stop gathering; summarize what the servers said into a->stun_note,
 * learn our NAT's behavior (a->self) and add predicted candidates. */
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
  TRAV_REQ_ROLE_CONFLICT,   /* the sender claims our role; resp holds a 487
                               when our tie-breaker wins, else it is empty
                               (our role is fixed by the QUIC role) */
} trav_req_verdict;

/* Our ICE role, judged against the role a check claims (RFC 8445 section
 * 7.3.1.1). */
typedef struct trav_role {
  bool controlling;
  uint64_t tiebreaker;
} trav_role_t;

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
                                   const trav_role_t *role,
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
/* The record we already use, published again: pairs for candidates it
 * gained (a relayed one allocated late), the others kept as they are. */
void trav_pairs_trickle(trav_agent_t *a, const rdv_record *rec,
                        int64_t now_ms);
/* Controlled side: the peer nominated pair i (USE-CANDIDATE from that
 * pair's address; i < 0: an address we have no pair for) and answer (len
 * bytes) is our success response. RFC 8445 section 7.3.1.5: the pair is
 * selected once our own check on it succeeded. Returns true when the
 * answer is held (or dropped) instead of sent now: the pair is not
 * validated yet, so its check is sent at once and the answer goes out when
 * it succeeds (trav_pair_maybe_selected). */
bool trav_pair_nominated_by_peer(trav_agent_t *a, int i, const uint8_t *answer,
                                 size_t len, int64_t now_ms);
/* Controlled side: pair i is nominated and validated: it wins. */
void trav_pair_maybe_selected(trav_agent_t *a, int i);
/* Is this a usable peer address (not unspecified, multicast, broadcast or
 * reserved)? */
bool trav_addr_usable(const udp_addr_t *addr);
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
/* Waiting for the peer: drop an adopted record that shows no sign of life
 * (TRAV_STALE_MS), or move the deadline to when that will be known; true
 * when the deadline was dealt with this way. */
bool trav_peer_drop_stale(trav_agent_t *a, int64_t now_ms);
/* Best-effort cleanup of our key after success. */
void trav_peer_unpublish(trav_agent_t *a);
const char *trav_peer_key(const trav_agent_t *a);
const char *trav_own_key(const trav_agent_t *a);

/* ---- trav_hard.c ------------------------------------------------------- */

/* Classify mapped ports taken back to back, in the order the requests
 * were sent (pure; unit-tested). */
void trav_behavior_classify(const uint16_t *ports, size_t n,
                            trav_behavior_t *out);
/* Record form: nat.mapping and nat.port_delta. */
void trav_behavior_to_record(const trav_behavior_t *b, rdv_nat *nat);
void trav_behavior_from_record(const rdv_nat *nat, trav_behavior_t *out);
const char *trav_ports_name(trav_ports p);
/* What to do given our NAT and the peer's (pure; unit-tested). */
trav_strategy trav_strategy_choose(const trav_behavior_t *self,
                                   const trav_behavior_t *peer);
/* Predicted candidates of a sequential NAT, after the srflx ones. */
void trav_hard_predict(trav_agent_t *a);
/* A peer record was adopted (pairs already rebuilt): pick the strategy,
 * order the first checks, open extra sockets or arm the prober. */
int trav_hard_on_adopt(trav_agent_t *a, const rdv_record *rec,
                       int64_t now_ms);
/* Send due probes / openings; returns the next time one is due or
 * INT64_MAX. */
int64_t trav_hard_send(trav_agent_t *a, int64_t now_ms);
/* Does this txid carry our spray prefix (a probe's or an opening's)? */
bool trav_hard_is_spray(const trav_agent_t *a, const uint8_t *txid);
/* The answer to a probe or opening: authenticate it, make or find its pair
 * (marked succeeded, birthday) and return the pair index, or -1 when it is
 * not valid. */
int trav_hard_on_response(trav_agent_t *a, size_t s, const stun_msg *msg,
                          const udp_addr_t *from, int64_t now_ms);
/* Close every extra socket but `keep` (0 = close them all). */
void trav_hard_keep_only(trav_agent_t *a, size_t keep);
/* Close every extra socket except the one handed to the result. */
void trav_hard_cleanup(trav_agent_t *a);
/* "; birthday: 256 sockets, 731 probes, 1 hit" for the summary. */
void trav_hard_describe(const trav_agent_t *a, char *buf, size_t size);

/* ---- trav_relay.c ------------------------------------------------------ */

/* The socket of index s: a real one, or a relay's virtual socket (fd -1,
 * local = the relayed address). */
udp_socket_t *trav_sock(const trav_agent_t *a, size_t s);
/* Is s a relay's virtual socket? */
bool trav_sock_is_relay(size_t s);
/* Send len bytes to `to` from socket s: directly, or wrapped for the TURN
 * server when s is a relay's (Send indication or ChannelData). */
int trav_send(trav_agent_t *a, size_t s, const udp_addr_t *to,
              const uint8_t *buf, size_t len);
/* Start an allocation on every configured TURN server (policy allowing). */
int trav_relay_start(trav_agent_t *a, int64_t now_ms, int64_t until_ms);
/* Gathering: true while an allocation is still worth waiting for. */
bool trav_relay_gathering(const trav_agent_t *a, int64_t now_ms);
/* Send what the TURN clients have due; returns the next time (ms) they
 * need a call, or INT64_MAX. */
int64_t trav_relay_poll(trav_agent_t *a, int64_t now_ms);
/* After gathering: relayed candidates into the table; with the "only"
 * policy the others go, and no allocation at all is QP_ERR_RELAY. */
int trav_relay_gather_finish(trav_agent_t *a);
/* A datagram on socket s: when it came from a TURN server, handle it
 * (relayed data goes to dispatch with the peer as its source, on the
 * relay's virtual socket) and return true. */
bool trav_relay_on_datagram(trav_agent_t *a, size_t s, const udp_datagram_t *d,
                            void (*dispatch)(trav_agent_t *, size_t,
                                             const udp_datagram_t *));
/* A remote candidate: permission on every allocation and a pair through
 * each. */
void trav_relay_on_remote(trav_agent_t *a, const udp_addr_t *addr,
                          rdv_cand_type type, uint32_t priority,
                          int64_t now_ms);
/* May a direct pair (socket 0) to a candidate of this type be checked? */
bool trav_relay_direct_allowed(const trav_agent_t *a, rdv_cand_type type);
/* Controlling side: pair i validated. True when it is relayed and its
 * nomination waits for the grace (QP_RELAY_GRACE_MS) of a direct pair. */
bool trav_relay_hold(trav_agent_t *a, int i, int64_t now_ms);
/* The held relayed pair to nominate now (grace over), or -1; *due_ms gets
 * the end of a running grace (else INT64_MAX). */
int trav_relay_grace_due(trav_agent_t *a, int64_t now_ms, int64_t *due_ms);
/* Success: the path's kind and description into out, the winner's
 * allocation handed over (channel bound), the others deallocated. */
void trav_relay_finish(trav_agent_t *a, trav_result_t *out);
/* Why no TURN server gave an allocation (their messages), or NULL when one
 * did or none was configured. */
const char *trav_relay_failure(const trav_agent_t *a);
/* "; TURN: ..." (allocations and failures) for the summary and errors. */
void trav_relay_describe(const trav_agent_t *a, char *buf, size_t size);
/* Deallocate what is left and free everything. */
void trav_relay_cleanup(trav_agent_t *a);

/* ---- trav_responder.c -------------------------------------------------- */

int trav_responder_create(const trav_creds_t *local, const trav_creds_t *remote,
                          const trav_role_t *role, trav_responder_t **out);

/* ---- trav_upgrade.c (trav_upgrade.h) ----------------------------------- */

struct trav_upgrade;
/* Checks of direct pairs with these credentials (both needed:
 * QP_ERR_INVALID), in this role. 0, QP_ERR_INVALID or QP_ERR_NOMEM. */
int trav_upgrade_create(const trav_creds_t *local, const trav_creds_t *remote,
                        const trav_role_t *role, struct trav_upgrade **out);
/* A relayed pair won: the agent's direct pairs on socket 0 into a new
 * upgrader, or NULL (out of memory: logged, the path stays relayed). */
struct trav_upgrade *trav_upgrade_from_agent(const trav_agent_t *a);
/* The qp_path_kind of a direct pair to a candidate of this type (anything
 * but host, mapped, srflx and predicted is peer-reflexive). */
int trav_direct_kind(rdv_cand_type type);

#endif
