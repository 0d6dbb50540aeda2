/*
 * trav_pairs.c: the check list. One pair per (our socket, peer address),
 * scheduled by time then priority, paced by the caller (Ta).
 */
#include "traversal/trav_internal.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

/* RFC 8445 section 6.1.2.3: "pair priority = 2^32*MIN(G,D) + 2*MAX(G,D) +
 * (G>D?1:0)" where G is the controlling agent's candidate priority and D
 * the controlled agent's. */
uint64_t trav_pair_priority(uint32_t g, uint32_t d) {
  uint64_t lo = g < d ? g : d, hi = g < d ? d : g;
  return (lo << 32) + 2 * hi + (g > d ? 1 : 0);
}

int trav_pair_find(const trav_agent_t *a, size_t sock_index,
                   const udp_addr_t *remote) {
  for (size_t i = 0; i < a->pair_count; i++)
    if (a->pairs[i].sock_index == sock_index &&
        udp_addr_equal(&a->pairs[i].remote, remote))
      return (int)i;
  return -1;
}

int trav_pair_add(trav_agent_t *a, size_t sock_index, const udp_addr_t *remote,
                  rdv_cand_type type, uint32_t remote_priority,
                  int64_t now_ms) {
  udp_addr_t to;
  if ((sock_index >= a->sock_count && !trav_sock_is_relay(sock_index)) ||
      !trav_addr_for_family(remote, trav_sock(a, sock_index)->family, &to))
    return -1;
  int found = trav_pair_find(a, sock_index, &to);
  if (found >= 0)
    return found;
  if (a->pair_count >= TRAV_MAX_PAIRS)
    return -1;
  uint32_t local = trav_cand_priority(
      trav_sock_is_relay(sock_index) ? RDV_CAND_RELAY : RDV_CAND_HOST, 65535);
  trav_pair_t *p = &a->pairs[a->pair_count];
  *p = (trav_pair_t){
      .sock_index = sock_index,
      .remote = to,
      .remote_type = type,
      .remote_priority = remote_priority,
      .priority = a->controlling ? trav_pair_priority(local, remote_priority)
                                 : trav_pair_priority(remote_priority, local),
      .state = TRAV_PAIR_WAITING,
      .next_send_ms = now_ms,
  };
  return (int)a->pair_count++;
}

static bool sendable(const trav_agent_t *a, const trav_pair_t *p) {
  if (p->nominate)
    return true;
  if (a->controlling && a->winner_pair >= 0)
    return false; /* nominated: only that pair is checked */
  return p->state == TRAV_PAIR_WAITING || p->state == TRAV_PAIR_IN_PROGRESS;
}

int trav_pair_next_due(const trav_agent_t *a, int64_t now_ms) {
  int best = -1;
  for (size_t i = 0; i < a->pair_count; i++) {
    const trav_pair_t *p = &a->pairs[i];
    if (!sendable(a, p) || p->next_send_ms > now_ms)
      continue;
    const trav_pair_t *b = best >= 0 ? &a->pairs[best] : NULL;
    if (b == NULL || p->next_send_ms < b->next_send_ms ||
        (p->next_send_ms == b->next_send_ms && p->priority > b->priority))
      best = (int)i;
  }
  return best;
}

int64_t trav_pair_next_time(const trav_agent_t *a) {
  int64_t t = INT64_MAX;
  for (size_t i = 0; i < a->pair_count; i++)
    if (sendable(a, &a->pairs[i]) && a->pairs[i].next_send_ms < t)
      t = a->pairs[i].next_send_ms;
  return t;
}

int trav_pair_send(trav_agent_t *a, int i, int64_t now_ms) {
  trav_pair_t *p = &a->pairs[i];
  if (p->checks_sent == 0 && stun_msg_new_txid(p->txid) != 0)
    return QP_ERR_INTERNAL;
  uint8_t buf[256];
  size_t len = trav_check_write(&a->local, &a->remote, p->txid, a->controlling,
                                a->tiebreaker,
                                trav_cand_priority(RDV_CAND_PRFLX, 65535),
                                p->nominate, buf, sizeof(buf));
  if (len == 0)
    return err_fail(QP_ERR_INTERNAL, "could not build a connectivity check");
  if (p->checks_sent == 0)
    p->first_sent_ms = now_ms;
  p->checks_sent++;
  p->last_sent_ms = now_ms;
  p->next_send_ms = now_ms + TRAV_CHECK_RTO_MS;
  if (p->state == TRAV_PAIR_WAITING)
    p->state = TRAV_PAIR_IN_PROGRESS;
  if (trav_send(a, p->sock_index, &p->remote, buf, len) != 0) {
    snprintf(p->send_error, sizeof(p->send_error), "%s", qp_last_error());
    p->state = TRAV_PAIR_FAILED;
  } else if (p->checks_sent >= TRAV_MAX_CHECKS_PER_PAIR &&
             p->state != TRAV_PAIR_SUCCEEDED) {
    p->state = TRAV_PAIR_FAILED; /* budget spent; a late answer still counts */
  }
  return 0;
}

bool trav_pair_nominated_by_peer(trav_agent_t *a, int i, const uint8_t *answer,
                                 size_t len, int64_t now_ms) {
  if (i < 0)
    return true; /* no pair for that address: nothing we can validate */
  trav_pair_t *p = &a->pairs[i];
  p->peer_nominated = true;
  if (p->state == TRAV_PAIR_SUCCEEDED) {
    trav_pair_maybe_selected(a, i);
    return false;
  }
  a->n.nominations_held++;
  if (len <= sizeof(p->held_answer)) {
    memcpy(p->held_answer, answer, len);
    p->held_len = len;
  }
  /* Our own check on it, now: the answer decides. */
  if (p->state != TRAV_PAIR_FAILED)
    p->next_send_ms = TRAV_TRIGGERED_MS;
  a->next_send_ms = now_ms;
  return true;
}

void trav_pair_maybe_selected(trav_agent_t *a, int i) {
  trav_pair_t *p = &a->pairs[i];
  if (a->controlling || a->done || !p->peer_nominated ||
      p->state != TRAV_PAIR_SUCCEEDED)
    return;
  if (p->held_len > 0) {
    trav_send(a, p->sock_index, &p->remote, p->held_answer, p->held_len);
    a->n.answered++;
    p->held_len = 0;
  }
  a->done = true;
  a->winner = p->remote;
  a->winner_pair = i;
  a->winner_sock = p->sock_index;
}

/* 0.0.0.0/8, 224.0.0.0/4 (multicast) and 240.0.0.0/4 (reserved, with
 * 255.255.255.255): nobody's unicast address. */
static bool ipv4_usable(const uint8_t *b) {
  return b[0] != 0 && b[0] < 224;
}

bool trav_addr_usable(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)&addr->ss;
    return ipv4_usable((const uint8_t *)&in->sin_addr);
  }
  if (addr->ss.ss_family != AF_INET6)
    return false;
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(a6))
    return ipv4_usable(a6->s6_addr + 12);
  return !IN6_IS_ADDR_UNSPECIFIED(a6) && !IN6_IS_ADDR_MULTICAST(a6);
}

/* Pairs stay within a family (RFC 8445 section 6.1.2.2). IPv4: whenever
 * socket 0 carries IPv4 (not bound to one IPv6 address), as before IPv6.
 * IPv6: when one of our candidates on socket 0 is IPv6, and our loopback
 * (::1, on every host) reaches only the peer's loopback: a host without a
 * global IPv6 address does not check the peer's (the sends would fail). */
static bool family_reachable(const trav_agent_t *a, const udp_addr_t *remote) {
  const udp_socket_t *s = a->socks[0];
  int family = udp_addr_family(remote);
  if (family == AF_INET)
    return s->family == AF_INET || udp_addr_is_unspecified(&s->local) ||
           udp_addr_is_v4mapped(&s->local);
  bool any_ok = udp_addr_is_loopback(remote);
  for (size_t i = 0; i < a->cand_count; i++) {
    const trav_cand_t *c = &a->cands[i];
    if (c->sock_index == 0 && udp_addr_family(&c->addr) == family &&
        (any_ok || !udp_addr_is_loopback(&c->addr)))
      return true;
  }
  return false;
}

/* The pairs of one remote candidate (existing ones are kept); false when
 * its address is unusable. */
static bool pairs_of(trav_agent_t *a, const rdv_candidate *c, int64_t now_ms) {
  udp_addr_t addr;
  if (udp_addr_from_ip(c->addr, c->port, &addr) != 0)
    return true;
  if (!trav_addr_usable(&addr))
    return false;
  /* Socket 0 and the relays: the birthday technique's extra sockets get
   * a pair when a probe of the peer reaches them (trav_hard.c). */
  if (trav_relay_direct_allowed(a, c->type) && family_reachable(a, &addr)) {
    int i = trav_pair_add(a, 0, &addr, c->type, c->priority, now_ms);
    if (i >= 0 && c->type == RDV_CAND_MAPPED) { /* for the path text */
      /* also a pair made before: a srflx address that a late mapping
       * turned into the mapped one (trav_portmap_late) */
      a->pairs[i].remote_type = RDV_CAND_MAPPED;
      snprintf(a->pairs[i].remote_via, sizeof(a->pairs[i].remote_via), "%s",
               c->via);
    }
  }
  trav_relay_on_remote(a, &addr, c->type, c->priority, now_ms);
  return true;
}

void trav_pairs_from_record(trav_agent_t *a, const rdv_record *rec,
                            int64_t now_ms) {
  a->pair_count = 0;
  a->prflx_count = 0;
  a->winner_pair = -1;
  a->n.bad_candidates = 0;
  /* The record's decoder already bounds the count (RDV_RECORD_MAX_CANDIDATES,
   * which TRAV_MAX_PAIRS covers); the addresses are checked here. */
  for (size_t i = 0; i < rec->candidate_count; i++)
    if (!pairs_of(a, &rec->candidates[i], now_ms))
      a->n.bad_candidates++;
}

void trav_pairs_trickle(trav_agent_t *a, const rdv_record *rec,
                        int64_t now_ms) {
  size_t before = a->pair_count;
  for (size_t i = 0; i < rec->candidate_count; i++)
    pairs_of(a, &rec->candidates[i], now_ms);
  if (a->pair_count > before)
    QP_LOG_INFO("traversal: the %s record has new candidates: %zu more "
                "pairs", trav_peer_key(a), a->pair_count - before);
}

int trav_pair_by_txid(const trav_agent_t *a, const uint8_t *txid) {
  for (size_t i = 0; i < a->pair_count; i++)
    if (a->pairs[i].checks_sent > 0 &&
        memcmp(a->pairs[i].txid, txid, STUN_TXID_SIZE) == 0)
      return (int)i;
  return -1;
}

const char *trav_pair_outcome(const trav_pair_t *p, char *buf, size_t size) {
  if (p->state == TRAV_PAIR_SUCCEEDED)
    snprintf(buf, size, "succeeded after %d checks, rtt %lld ms",
             p->checks_sent, (long long)p->rtt_ms);
  else if (p->send_error[0])
    snprintf(buf, size, "send failed: %s", p->send_error);
  else if (p->error_code)
    snprintf(buf, size, "error response %u, %d checks", p->error_code,
             p->checks_sent);
  else if (p->asymmetric)
    snprintf(buf, size, "answered from another address, %d checks",
             p->checks_sent);
  else if (p->checks_sent == 0)
    snprintf(buf, size, "not tried");
  else if (p->requests_in > 0)
    snprintf(buf, size, "peer's checks arrived (%u) but ours got no answer, "
             "%d checks", p->requests_in, p->checks_sent);
  else
    snprintf(buf, size, "no response, %d checks", p->checks_sent);
  return buf;
}

void trav_pairs_describe(const trav_agent_t *a, char *buf, size_t size,
                         const char *sep) {
  for (size_t i = 0; i < a->pair_count; i++) {
    const trav_pair_t *p = &a->pairs[i];
    char l[UDP_ADDRSTRLEN], r[UDP_ADDRSTRLEN], what[160];
    size_t used = strlen(buf);
    if (used + 1 >= size)
      return;
    bool won = a->done && (int)i == a->winner_pair;
    snprintf(buf + used, size - used, "%s%s -> %s %s (%s%s%s)",
             used ? sep : "",
             udp_addr_to_string(&trav_sock(a, p->sock_index)->local, l, sizeof(l)),
             udp_addr_to_string(&p->remote, r, sizeof(r)),
             rdv_cand_type_to_string(p->remote_type), won ? "nominated; " : "",
             p->birthday ? "birthday; " : "",
             trav_pair_outcome(p, what, sizeof(what)));
  }
}
