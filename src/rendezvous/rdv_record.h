/*
 * rdv_record.h: the record each peer publishes in the rendezvous store.
 *
 * A record is one JSON object (docs/internals/rendezvous.md has an example):
 *   {"v":1,"software":"quic-portal/0.3.0","role":"server","session":"s",
 *    "ufrag":"...","pwd":"...","fingerprint":"<64 lowercase hex>",
 *    "nat":{"mapping":"endpoint-independent","filtering":"...",
 *           "port_delta":0},
 *    "candidates":[{"type":"srflx","addr":"203.0.113.7","port":4242,
 *                   "priority":1694498815}],
 *    "time_ms":1700000000000,"answers":"<server ufrag>"}
 * A port mapping's candidate (RDV_CAND_MAPPED) is written as
 *   {"type":"srflx",...,"mapped":"upnp"}: readers before it take it for the
 * srflx candidate it also is (they skip the unknown member).
 * All members but "answers" (client records only) are required; members
 * this version does not know are skipped,
 * so version 1 can grow optional members; a member twice is an error.
 * Decoding is bounded (RDV_RECORD_MAX_SIZE bytes, RDV_RECORD_MAX_CANDIDATES
 * candidates, every string length) and never allocates.
 *
 * The rendezvous layer knows nothing of sockets: addresses are kept as
 * numeric text (IPv4 or IPv6, canonical form), validated with inet_pton.
 */
#ifndef QP_RDV_RECORD_H
#define QP_RDV_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "quic_portal.h"
#include "rendezvous/rdv.h"

/* The version this code writes and the only one it reads. */
#define RDV_RECORD_VERSION 1
/* Largest encoded record; the limits below keep every valid record (with
 * every string at its longest and escaped) well under it. */
#define RDV_RECORD_MAX_SIZE 8192
#define RDV_RECORD_MAX_CANDIDATES 32
#define RDV_RECORD_SOFTWARE_MAX 64
/* ICE credentials (RFC 8445 section 5.3: ufrag at least 4 characters, pwd
 * at least 22, from ALPHA / DIGIT / "+" / "/"). The maxima are ours. */
#define RDV_RECORD_UFRAG_MIN 4
#define RDV_RECORD_UFRAG_MAX 64
#define RDV_RECORD_PWD_MIN 22
#define RDV_RECORD_PWD_MAX 128
/* NAT behavior names: [a-z0-9-], e.g. "endpoint-independent",
 * "address-dependent", "address-and-port-dependent", "unknown". */
#define RDV_RECORD_NAT_MAX 32
/* A port difference between two mappings; 0 when unknown. */
#define RDV_RECORD_PORT_DELTA_MAX 65535
/* Room for a numeric IPv6 address (INET6_ADDRSTRLEN). */
#define RDV_RECORD_ADDR_MAX 46
/* A sensible default for rdv_record_check()'s max_age_ms: a record older
 * than this was left over by an earlier run. */
#define RDV_RECORD_DEFAULT_MAX_AGE_MS (2 * 60 * 1000)

typedef enum rdv_role { RDV_ROLE_SERVER = 0, RDV_ROLE_CLIENT = 1 } rdv_role;

typedef enum rdv_cand_type {
  RDV_CAND_HOST = 0,
  RDV_CAND_SRFLX = 1,
  RDV_CAND_PRFLX = 2,
  RDV_CAND_PREDICTED = 3,
  RDV_CAND_RELAY = 4, /* a TURN relayed address (RFC 8445 "relay") */
  /* A public port the gateway forwards to the peer's socket (UPnP IGD,
   * NAT-PMP, PCP; src/portmap), ranked between host and srflx. On the wire
   * "type":"srflx" plus "mapped":"<via>", so that readers that do not know
   * this type still parse the record; "type":"mapped" is read too. */
  RDV_CAND_MAPPED = 5,
} rdv_cand_type;

/* "upnp", "natpmp", "pcp": 1 to 16 of a-z 0-9 -. */
#define RDV_RECORD_VIA_MAX 16

typedef struct rdv_candidate {
  rdv_cand_type type;
  char addr[RDV_RECORD_ADDR_MAX]; /* numeric, canonical */
  uint16_t port;                  /* 1 to 65535 */
  uint32_t priority;              /* ICE priority */
  /* RDV_CAND_MAPPED only (else ""): the protocol that made the mapping. */
  char via[RDV_RECORD_VIA_MAX + 1];
} rdv_candidate;

typedef struct rdv_nat {
  char mapping[RDV_RECORD_NAT_MAX + 1];
  char filtering[RDV_RECORD_NAT_MAX + 1];
  int32_t port_delta;
} rdv_nat;

typedef struct rdv_record {
  int version;
  char software[RDV_RECORD_SOFTWARE_MAX + 1];
  rdv_role role;
  char session[RDV_SESSION_MAX + 1];
  char ufrag[RDV_RECORD_UFRAG_MAX + 1];
  char pwd[RDV_RECORD_PWD_MAX + 1];
  char fingerprint[QP_FINGERPRINT_SIZE];
  rdv_nat nat;
  size_t candidate_count;
  rdv_candidate candidates[RDV_RECORD_MAX_CANDIDATES];
  uint64_t time_ms; /* Unix time in ms when published */
  /* Optional member "answers": in a client record, the ufrag of the server
   * record it answers, so that a server adopts only client records written
   * for it (no need to delete the key at start). "" = absent. */
  char answers[RDV_RECORD_UFRAG_MAX + 1];
} rdv_record;

/* Zero *rec and fill version, software ("quic-portal/" QP_VERSION), role,
 * session (truncated to RDV_SESSION_MAX; encode then rejects it) and NAT
 * names "unknown". The caller fills the rest. */
void rdv_record_init(rdv_record *rec, rdv_role role, const char *session);

/* Append a candidate; addr is a numeric IPv4 or IPv6 address, stored in
 * canonical form. QP_ERR_INVALID (bad address or port), QP_ERR_TOO_LARGE
 * (already RDV_RECORD_MAX_CANDIDATES). */
int rdv_record_add_candidate(rdv_record *rec, rdv_cand_type type,
                             const char *addr, uint16_t port,
                             uint32_t priority);

/*
 * Check every field and write the JSON into buf (cap bytes; cap of
 * RDV_RECORD_MAX_SIZE + 1 always suffices), NUL-terminated; *len excludes
 * the NUL. time_ms is written as it is: set it just before publishing.
 * Errors: QP_ERR_INVALID (a field is out of bounds: the message says which),
 * QP_ERR_TOO_LARGE (buf too small).
 */
int rdv_record_encode(const rdv_record *rec, char *buf, size_t cap,
                      size_t *len);

/*
 * Parse and check a record of len bytes (need not be NUL-terminated).
 * Errors, all QP_ERR_PROTOCOL with a message naming the problem: larger
 * than RDV_RECORD_MAX_SIZE, not JSON, a version other than
 * RDV_RECORD_VERSION, a missing, repeated or out-of-bounds member. *out is
 * written only on success.
 */
int rdv_record_decode(const char *text, size_t len, rdv_record *out);

/*
 * Is this the record we are waiting for? QP_ERR_RENDEZVOUS when it belongs
 * to another session or role, or its time_ms is more than max_age_ms away
 * from now_unix_ms (older: left over from an earlier run; newer: the two
 * clocks disagree).
 */
int rdv_record_check(const rdv_record *rec, const char *session, rdv_role role,
                     uint64_t now_unix_ms, uint64_t max_age_ms);

/* CLOCK_REALTIME in ms, for time_ms. */
uint64_t rdv_record_now_unix_ms(void);

/* "server"/"client"; "host"/"srflx"/"prflx"/"predicted"/"relay"/"mapped";
 * "?" if invalid. */
const char *rdv_role_to_string(rdv_role role);
const char *rdv_cand_type_to_string(rdv_cand_type type);

#endif
