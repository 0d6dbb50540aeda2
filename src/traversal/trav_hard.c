/*
 * trav_hard.c: NATs that map every destination to its own port
 * ("symmetric"), docs/internals/hard-nat.md.
 *
 * - Behavior: the mapped ports of our STUN requests, sent back to back to
 *   different destinations, tell endpoint-independent mapping (one port),
 *   sequential allocation (small steps of one sign) and random allocation.
 *   Both records carry it (nat.mapping, nat.port_delta), so both sides pick
 *   the same strategy.
 * - Sequential: we publish predicted candidates (last port + k * step) and
 *   send our first checks to the peer's predicted and srflx candidates, so
 *   that our k-th new mapping is the one the peer aims at.
 * - Random against an endpoint-independent peer: the birthday technique.
 *   The hard side opens extra sockets that each send checks to the peer's
 *   public address (one mapping each); the easy side probes random ports
 *   of the hard side's public IP. A probe that lands in one of the mappings
 *   is answered from that socket, and the path is checked and nominated on
 *   it like any other pair.
 * Probes and openings are ordinary authenticated checks whose transaction
 * id carries a per-run prefix, the kind and the port or socket index, so
 * their answers need no table.
 */
#include "traversal/trav_internal.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "stun/stun_nat.h"

/* Transaction id layout of probes and openings: prefix[8], kind, 0, index
 * (big-endian 16 bits). */
#define SPRAY_KIND_PROBE 'P'
#define SPRAY_KIND_OPENING 'O'

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- behavior ---------------------------------------------------------- */

void trav_behavior_classify(const uint16_t *ports, size_t n,
                            trav_behavior_t *out) {
  memset(out, 0, sizeof(*out));
  if (n < 2)
    return; /* one answer says nothing about mapping */
  out->last_port = ports[n - 1];
  bool same = true, sequential = true;
  int step = 0, sign = 0;
  for (size_t i = 1; i < n; i++) {
    int d = (int)ports[i] - (int)ports[i - 1];
    int mag = d < 0 ? -d : d;
    if (d != 0)
      same = false;
    if (d == 0 || mag > STUN_NAT_SEQUENTIAL_MAX_DELTA ||
        (sign != 0 && (d > 0 ? 1 : -1) != sign))
      sequential = false;
    sign = d > 0 ? 1 : -1;
    if (d != 0 && (step == 0 || mag < (step < 0 ? -step : step)))
      step = d; /* the smallest step: predictions then cover the range */
  }
  if (same)
    out->ports = TRAV_PORTS_SAME;
  else if (sequential) {
    out->ports = TRAV_PORTS_SEQUENTIAL;
    out->delta = step;
  } else
    out->ports = TRAV_PORTS_RANDOM;
}

/* Record form: "endpoint-independent" (port_delta 0), or
 * "destination-dependent" with port_delta the step of a sequential NAT and
 * 0 for random ports. "unknown" when we could not tell. */
void trav_behavior_to_record(const trav_behavior_t *b, rdv_nat *nat) {
  const char *mapping = "unknown";
  nat->port_delta = 0;
  if (b->ports == TRAV_PORTS_SAME)
    mapping = "endpoint-independent";
  else if (b->ports == TRAV_PORTS_SEQUENTIAL || b->ports == TRAV_PORTS_RANDOM) {
    mapping = "destination-dependent";
    nat->port_delta = b->ports == TRAV_PORTS_SEQUENTIAL ? b->delta : 0;
  }
  snprintf(nat->mapping, sizeof(nat->mapping), "%s", mapping);
}

void trav_behavior_from_record(const rdv_nat *nat, trav_behavior_t *out) {
  memset(out, 0, sizeof(*out));
  const char *m = nat->mapping;
  int d = nat->port_delta, mag = d < 0 ? -d : d;
  if (strcmp(m, "endpoint-independent") == 0) {
    out->ports = TRAV_PORTS_SAME;
  } else if (strcmp(m, "destination-dependent") == 0 ||
             strcmp(m, "address-dependent") == 0 ||
             strcmp(m, "address-and-port-dependent") == 0) {
    bool seq = d != 0 && mag <= STUN_NAT_SEQUENTIAL_MAX_DELTA;
    out->ports = seq ? TRAV_PORTS_SEQUENTIAL : TRAV_PORTS_RANDOM;
    out->delta = seq ? d : 0;
  }
}

const char *trav_ports_name(trav_ports p) {
  switch (p) {
  case TRAV_PORTS_SAME:
    return "endpoint-independent";
  case TRAV_PORTS_SEQUENTIAL:
    return "sequential per destination";
  case TRAV_PORTS_RANDOM:
    return "random per destination";
  case TRAV_PORTS_UNKNOWN:
    break;
  }
  return "unknown";
}

static bool per_destination(const trav_behavior_t *b) {
  return b->ports == TRAV_PORTS_SEQUENTIAL || b->ports == TRAV_PORTS_RANDOM;
}

trav_strategy trav_strategy_choose(const trav_behavior_t *self,
                                   const trav_behavior_t *peer) {
  if (self->ports == TRAV_PORTS_RANDOM && peer->ports == TRAV_PORTS_SAME)
    return TRAV_STRATEGY_BIRTHDAY_HARD;
  if (peer->ports == TRAV_PORTS_RANDOM && self->ports == TRAV_PORTS_SAME)
    return TRAV_STRATEGY_BIRTHDAY_PROBE;
  /* Two sequential NATs meet through each other's predictions; with one
   * random side the predictions are still checked, but nothing more can
   * be done without a relay. */
  if (per_destination(self) && per_destination(peer) &&
      !(self->ports == TRAV_PORTS_SEQUENTIAL &&
        peer->ports == TRAV_PORTS_SEQUENTIAL))
    return TRAV_STRATEGY_BOTH_HARD;
  return TRAV_STRATEGY_DIRECT;
}

/* ---- sequential: prediction ------------------------------------------- */

void trav_hard_predict(trav_agent_t *a) {
  if (a->self.ports != TRAV_PORTS_SEQUENTIAL)
    return;
  const trav_cand_t *srflx = NULL;
  /* The NAT learned is the IPv4 one: predict from its srflx, not from an
   * IPv6 one (trav_cand.c, behavior_family). */
  for (size_t i = 0; i < a->cand_count && srflx == NULL; i++)
    if (a->cands[i].type == RDV_CAND_SRFLX &&
        udp_addr_family(&a->cands[i].addr) == AF_INET)
      srflx = &a->cands[i];
  if (srflx == NULL)
    return;
  udp_addr_t base = srflx->addr;
  for (int k = 1; k <= TRAV_PREDICT_COUNT; k++) {
    long port = (long)a->self.last_port + (long)k * a->self.delta;
    if (port < 1 || port > 65535)
      break;
    udp_addr_t p = base;
    udp_addr_set_port(&p, (uint16_t)port);
    /* Ranked by k: the peer checks the likeliest port first. */
    if (trav_cand_add(a, RDV_CAND_PREDICTED, &p, (uint16_t)(65535 - k), 0) != 0)
      break;
  }
}

/* A sequential NAT hands our next new mapping to whatever destination we
 * send to next: send to the peer's predictions (in order) and srflx first,
 * so that our k-th mapping is the port the peer predicted. */
static void order_first_checks(trav_agent_t *a, int64_t now_ms) {
  if (a->self.ports != TRAV_PORTS_SEQUENTIAL)
    return;
  for (size_t i = 0; i < a->pair_count; i++) {
    trav_pair_t *p = &a->pairs[i];
    if (p->checks_sent > 0)
      continue;
    p->next_send_ms = now_ms + (p->remote_type == RDV_CAND_PREDICTED ? 0
                                : p->remote_type == RDV_CAND_SRFLX   ? 1
                                                                     : 2);
  }
}

/* ---- birthday: common ------------------------------------------------- */

/* The peer's first srflx candidate, IPv4 first (its NAT behavior is the
 * IPv4 one; records hold canonical numeric text: IPv6 has a ':'). */
static const rdv_candidate *first_srflx(const rdv_record *rec) {
  const rdv_candidate *any = NULL;
  for (size_t i = 0; i < rec->candidate_count; i++) {
    const rdv_candidate *c = &rec->candidates[i];
    if (c->type != RDV_CAND_SRFLX)
      continue;
    if (strchr(c->addr, ':') == NULL)
      return c;
    if (any == NULL)
      any = c;
  }
  return any;
}

static int new_prefix(trav_spray_t *sp) {
  if (gnutls_rnd(GNUTLS_RND_NONCE, sp->prefix, sizeof(sp->prefix)) != 0)
    return err_fail(QP_ERR_INTERNAL, "no random bytes for probe ids");
  return 0;
}

static void spray_txid(const trav_spray_t *sp, uint8_t kind, uint16_t index,
                       uint8_t txid[STUN_TXID_SIZE]) {
  memcpy(txid, sp->prefix, sizeof(sp->prefix));
  txid[8] = kind;
  txid[9] = 0;
  txid[10] = (uint8_t)(index >> 8);
  txid[11] = (uint8_t)index;
}

bool trav_hard_is_spray(const trav_agent_t *a, const uint8_t *txid) {
  const trav_spray_t *sp = &a->spray;
  return (sp->extra_count > 0 || sp->probes > 0) &&
         memcmp(txid, sp->prefix, sizeof(sp->prefix)) == 0;
}

static int send_spray_check(trav_agent_t *a, udp_socket_t *sock,
                            const udp_addr_t *to, uint8_t kind,
                            uint16_t index) {
  uint8_t txid[STUN_TXID_SIZE], buf[256];
  spray_txid(&a->spray, kind, index, txid);
  size_t len = trav_check_write(
      &a->local, &a->remote, txid, a->controlling, a->tiebreaker,
      trav_cand_priority(RDV_CAND_PRFLX, 65535), false, buf, sizeof(buf));
  if (len == 0)
    return QP_ERR_INTERNAL;
  return udp_send(sock, to, buf, len, len);
}

/* When the n-th paced datagram is due (n counts from 0). */
static int64_t paced_at(const trav_spray_t *sp, uint64_t n) {
  return sp->start_ms + (int64_t)(n * 1000u / (uint64_t)sp->rate);
}

static bool path_found(const trav_agent_t *a) {
  if (a->done || a->winner_pair >= 0)
    return true;
  for (size_t i = 0; i < a->pair_count; i++)
    if (a->pairs[i].state == TRAV_PAIR_SUCCEEDED)
      return true;
  return false;
}

/* ---- birthday: the hard side's extra sockets --------------------------- */

void trav_hard_keep_only(trav_agent_t *a, size_t keep) {
  trav_spray_t *sp = &a->spray;
  for (size_t i = 0; i < sp->extra_count; i++)
    if (1 + i != keep)
      udp_socket_close(&sp->extra[i]);
}

void trav_hard_cleanup(trav_agent_t *a) {
  trav_spray_t *sp = &a->spray;
  trav_hard_keep_only(a, 0);
  free(sp->extra);
  sp->extra = NULL;
  sp->extra_count = 0;
  a->sock_count = 1;
}

static int sockets_wanted(const trav_config_t *cfg) {
  if (cfg->hard_nat_sockets < 0)
    return 0;
  return cfg->hard_nat_sockets ? cfg->hard_nat_sockets
                               : TRAV_BIRTHDAY_SOCKETS_DEFAULT;
}

static int open_extras(trav_agent_t *a, const rdv_record *rec, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  const rdv_candidate *c = first_srflx(rec);
  udp_addr_t target;
  int want = sockets_wanted(a->cfg);
  if (want == 0 || c == NULL ||
      udp_addr_from_ip(c->addr, c->port, &target) != 0 ||
      !trav_addr_for_family(&target, a->socks[0]->family, &sp->target))
    return 0;
  sp->extra = calloc((size_t)want, sizeof(*sp->extra));
  if (sp->extra == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for %d extra sockets", want);
  udp_addr_t bind_addr = a->socks[0]->local;
  udp_addr_set_port(&bind_addr, 0);
  size_t n = 0;
  for (; n < (size_t)want; n++) {
    if (udp_socket_open(&bind_addr, &sp->extra[n]) != 0)
      break; /* out of descriptors: go on with what we have */
    a->socks[1 + n] = &sp->extra[n];
  }
  if (n < (size_t)want)
    QP_LOG_INFO("traversal: birthday technique: opened %zu of %d sockets: %s",
                n, want, qp_last_error());
  sp->extra_count = n;
  sp->sockets_opened += n;
  a->sock_count = 1 + n;
  sp->start_ms = now_ms;
  sp->openings = 0;
  char t[UDP_ADDRSTRLEN];
  QP_LOG_INFO("traversal: our NAT maps per destination at random, the peer's "
              "does not: %zu extra sockets check %s (birthday technique)",
              n, udp_addr_to_string(&sp->target, t, sizeof(t)));
  return 0;
}

/* Every extra socket sends a check to the peer at once (paced), then again
 * every TRAV_BIRTHDAY_REOPEN_MS, until a path is found. */
static int64_t send_openings(trav_agent_t *a, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  size_t n = sp->extra_count;
  if (n == 0 || path_found(a))
    return INT64_MAX;
  for (int burst = 0; burst < TRAV_SPRAY_BURST; burst++) {
    uint64_t cycle = sp->openings / n, idx = sp->openings % n;
    if (cycle >= TRAV_BIRTHDAY_MAX_REOPENS)
      return INT64_MAX;
    int64_t due = paced_at(sp, idx) + (int64_t)cycle * TRAV_BIRTHDAY_REOPEN_MS;
    if (due > now_ms)
      return due;
    udp_socket_t *s = &sp->extra[idx];
    if (s->fd >= 0 && send_spray_check(a, s, &sp->target, SPRAY_KIND_OPENING,
                                       (uint16_t)idx) != 0)
      udp_socket_close(s); /* a hard error: this socket is out */
    sp->openings++;
  }
  return now_ms;
}

/* ---- birthday: the easy side's probes ---------------------------------- */

static void arm_prober(trav_agent_t *a, const rdv_record *rec, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  const rdv_candidate *c = first_srflx(rec);
  udp_addr_t ip;
  if (c == NULL || udp_addr_from_ip(c->addr, c->port, &ip) != 0 ||
      !trav_addr_for_family(&ip, a->socks[0]->family, &sp->probe_ip))
    return;
  sp->probing = true;
  sp->proven = false;
  sp->probes_base = sp->probes;
  sp->round_sent = 0;
  memset(sp->probed, 0, sizeof(sp->probed));
  sp->start_ms = now_ms + TRAV_PROBE_START_DELAY_MS;
  char t[UDP_ADDRSTRLEN];
  QP_LOG_INFO("traversal: the peer's NAT maps per destination at random: "
              "probing random ports of %s at %d/s, at most %llu (birthday "
              "technique)",
              trav_addr_ip(&sp->probe_ip, t, sizeof(t)), sp->rate,
              (unsigned long long)sp->max_probes);
}

/* A port of TRAV_PROBE_PORT_MIN..65535 not yet probed this round. */
static uint16_t pick_port(trav_spray_t *sp, uint16_t r) {
  uint32_t span = 65536u - TRAV_PROBE_PORT_MIN;
  uint32_t port = TRAV_PROBE_PORT_MIN + r % span;
  /* Bounded: a round probes at most TRAV_PROBES_PER_ROUND < span ports. */
  for (uint32_t i = 0; i < span; i++) {
    if (!(sp->probed[port >> 3] & (1u << (port & 7))))
      break;
    port = port == 65535 ? TRAV_PROBE_PORT_MIN : port + 1;
  }
  sp->probed[port >> 3] |= (uint8_t)(1u << (port & 7));
  return (uint16_t)port;
}

/* The record's author proved it holds the credentials: the record opened
 * with the shared secret, or an authenticated check of the peer arrived
 * from the IP we would probe. */
static bool peer_proven(trav_agent_t *a, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  if (sp->proven)
    return true;
  bool proof = a->cfg->seal != NULL;
  for (size_t i = 0; i < a->pair_count && !proof; i++)
    proof = a->pairs[i].requests_in > 0 &&
            udp_addr_same_ip(&a->pairs[i].remote, &sp->probe_ip);
  if (!proof)
    return false;
  sp->proven = true;
  if (sp->start_ms < now_ms)
    sp->start_ms = now_ms; /* pace from now, no catch-up burst */
  return true;
}

static int64_t send_probes(trav_agent_t *a, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  if (!sp->probing)
    return INT64_MAX;
  if (!peer_proven(a, now_ms))
    return now_ms + TRAV_CANCEL_POLL_MS; /* look again */
  if (path_found(a) || sp->probes >= sp->max_probes) {
    sp->probing = false;
    return INT64_MAX;
  }
  uint16_t rnd[TRAV_SPRAY_BURST];
  if (gnutls_rnd(GNUTLS_RND_NONCE, rnd, sizeof(rnd)) != 0)
    return INT64_MAX;
  for (int burst = 0; burst < TRAV_SPRAY_BURST; burst++) {
    if (sp->probes >= sp->max_probes)
      return INT64_MAX;
    int64_t due = paced_at(sp, sp->probes - sp->probes_base);
    if (due > now_ms)
      return due;
    if (sp->round_sent >= TRAV_PROBES_PER_ROUND) {
      sp->round_sent = 0; /* a new round: every port may come again */
      memset(sp->probed, 0, sizeof(sp->probed));
    }
    uint16_t port = pick_port(sp, rnd[burst]);
    udp_addr_t to = sp->probe_ip;
    udp_addr_set_port(&to, port);
    if (send_spray_check(a, a->socks[0], &to, SPRAY_KIND_PROBE, port) != 0) {
      sp->probing = false; /* the socket failed: the pairs will say so */
      return INT64_MAX;
    }
    sp->probes++;
    sp->round_sent++;
  }
  return now_ms;
}

int64_t trav_hard_send(trav_agent_t *a, int64_t now_ms) {
  if (!a->have_remote)
    return INT64_MAX;
  return min64(send_openings(a, now_ms), send_probes(a, now_ms));
}

/* ---- adopting a record, answers --------------------------------------- */

int trav_hard_on_adopt(trav_agent_t *a, const rdv_record *rec, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  trav_hard_cleanup(a); /* sockets of an earlier peer record */
  sp->probing = false;
  trav_behavior_from_record(&rec->nat, &a->peer_nat);
  a->strategy = trav_strategy_choose(&a->self, &a->peer_nat);
  order_first_checks(a, now_ms);
  sp->rate = a->cfg->hard_nat_probe_rate > 0 ? a->cfg->hard_nat_probe_rate
                                             : TRAV_PROBE_RATE_DEFAULT;
  sp->max_probes = a->cfg->hard_nat_max_probes > 0
                       ? (uint64_t)a->cfg->hard_nat_max_probes
                       : TRAV_PROBES_MAX_DEFAULT;
  if (a->strategy != TRAV_STRATEGY_BIRTHDAY_HARD &&
      a->strategy != TRAV_STRATEGY_BIRTHDAY_PROBE)
    return 0;
  int rc = new_prefix(sp);
  if (rc != 0)
    return rc;
  if (a->strategy == TRAV_STRATEGY_BIRTHDAY_HARD)
    return open_extras(a, rec, now_ms);
  arm_prober(a, rec, now_ms);
  return 0;
}

int trav_hard_on_response(trav_agent_t *a, size_t s, const stun_msg *msg,
                          const udp_addr_t *from, int64_t now_ms) {
  trav_spray_t *sp = &a->spray;
  const uint8_t *t = msg->txid;
  uint16_t index = (uint16_t)(t[10] << 8 | t[11]);
  udp_addr_t expect;
  if (t[8] == SPRAY_KIND_PROBE && s == 0 && sp->probes > 0) {
    expect = sp->probe_ip;
    udp_addr_set_port(&expect, index);
  } else if (t[8] == SPRAY_KIND_OPENING && s == 1u + index &&
             index < sp->extra_count) {
    expect = sp->target;
  } else {
    a->n.unmatched++;
    return -1;
  }
  if (!msg->has_fingerprint ||
      stun_msg_check_integrity(msg, (const uint8_t *)a->remote.pwd,
                               strlen(a->remote.pwd)) != 0) {
    a->n.unauthenticated++;
    return -1;
  }
  /* Symmetric (RFC 8445 section 7.2.5.2.1): from where the check went. */
  if (!udp_addr_equal(from, &expect) || msg->cls != STUN_CLASS_SUCCESS)
    return -1;
  int i = trav_pair_find(a, s, from);
  if (i < 0 && a->prflx_count < TRAV_MAX_PRFLX) {
    i = trav_pair_add(a, s, from, RDV_CAND_PRFLX,
                      trav_cand_priority(RDV_CAND_PRFLX, 65535), now_ms);
    if (i >= 0)
      a->prflx_count++;
  }
  if (i < 0)
    return -1;
  trav_pair_t *p = &a->pairs[i];
  p->birthday = true;
  if (p->state != TRAV_PAIR_SUCCEEDED) {
    p->state = TRAV_PAIR_SUCCEEDED;
    sp->hits++;
    char f[UDP_ADDRSTRLEN];
    if (s == 0)
      QP_LOG_INFO("traversal: birthday technique: %s answered probe %llu",
                  udp_addr_to_string(from, f, sizeof(f)),
                  (unsigned long long)sp->probes);
    else
      QP_LOG_INFO("traversal: birthday technique: %s answered extra socket "
                  "%zu of %zu",
                  udp_addr_to_string(from, f, sizeof(f)), s, sp->extra_count);
  }
  return i;
}

void trav_hard_describe(const trav_agent_t *a, char *buf, size_t size) {
  const trav_spray_t *sp = &a->spray;
  size_t used = strlen(buf);
  if (sp->sockets_opened > 0 && used + 1 < size) {
    snprintf(buf + used, size - used,
             "%sbirthday: %zu extra sockets opened, %llu checks sent from "
             "them",
             used ? "; " : "", sp->sockets_opened,
             (unsigned long long)sp->openings);
    used = strlen(buf);
  }
  if (sp->probes > 0 && used + 1 < size) {
    char ip[RDV_RECORD_ADDR_MAX];
    snprintf(buf + used, size - used,
             "%sbirthday: %llu probes to random ports of %s, %u answered",
             used ? "; " : "", (unsigned long long)sp->probes,
             trav_addr_ip(&sp->probe_ip, ip, sizeof(ip)), sp->hits);
  } else if (sp->probing && !sp->proven && used + 1 < size) {
    char ip[RDV_RECORD_ADDR_MAX];
    snprintf(buf + used, size - used,
             "%sbirthday: no probes to %s, because no authenticated check "
             "came from that IP and the record was not sealed (give both "
             "sides a secret)",
             used ? "; " : "", trav_addr_ip(&sp->probe_ip, ip, sizeof(ip)));
  }
}
