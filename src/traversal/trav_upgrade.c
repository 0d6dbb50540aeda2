/*
 * trav_upgrade.c: direct pairs checked under a relayed connection
 * (trav_upgrade.h, docs/internals/turn.md "Relay then direct").
 */
#include "traversal/trav_upgrade.h"

#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "traversal/trav_internal.h"
#include "turn/turn_client.h"

typedef enum up_state {
  UP_CHECKING = 0, /* checks go out on its schedule */
  UP_SUCCEEDED,    /* answered from the address the check went to */
} up_state;

typedef struct up_pair {
  udp_addr_t remote;
  int kind;          /* qp_path_kind */
  uint8_t rank;      /* lower is better: host, srflx, predicted, prflx */
  up_state state;
  uint8_t txid[STUN_TXID_SIZE];
  bool has_txid;
  int64_t next_ms;   /* next check due (0: at once) */
  int64_t gap_ms;    /* the retransmission gap that follows it */
  uint32_t checks;
  uint32_t requests; /* authenticated checks of the peer from there */
  uint32_t error_code; /* of an authenticated error answer, else 0 */
} up_pair;

struct trav_upgrade {
  trav_creds_t local, remote;
  trav_role_t role;
  int64_t start_ms;     /* first poll; -1 before */
  int64_t next_send_ms; /* pacing (Ta) */
  bool stopped;
  up_pair pairs[TRAV_UPGRADE_MAX_PAIRS];
  size_t count;
  udp_addr_t excluded[TRAV_UPGRADE_MAX_EXCLUDED]; /* relay IPs */
  size_t excluded_count;
  uint64_t sent, answered, requests, unauthenticated;
};

int trav_upgrade_create(const trav_creds_t *local, const trav_creds_t *remote,
                        const trav_role_t *role, trav_upgrade_t **out) {
  *out = NULL;
  if (local->ufrag[0] == '\0' || local->pwd[0] == '\0' ||
      remote->ufrag[0] == '\0' || remote->pwd[0] == '\0')
    return err_fail(QP_ERR_INVALID, "direct-path checks need both sides' "
                                    "ICE credentials");
  trav_upgrade_t *u = calloc(1, sizeof(*u));
  if (u == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for the direct-path checks");
  u->local = *local;
  u->remote = *remote;
  u->role = *role;
  u->start_ms = -1;
  *out = u;
  return 0;
}

void trav_upgrade_destroy(trav_upgrade_t *u) {
  if (u == NULL)
    return;
  gnutls_memset(u, 0, sizeof(*u)); /* both pwds */
  free(u);
}

/* Preference among direct pairs when several validate: the order of RFC
 * 8445's type preferences (host, then the public ones). */
static int rank_of(int kind) {
  switch (kind) {
  case QP_PATH_HOST:
    return 0;
  case QP_PATH_MAPPED:
    return 1;
  case QP_PATH_SRFLX:
    return 2;
  case QP_PATH_PREDICTED:
    return 3;
  case QP_PATH_PRFLX:
    return 4;
  default:
    return -1;
  }
}

const char *trav_upgrade_kind_name(int kind) {
  static const char *const names[] = {"host", "port mapping", "server-reflexive",
                                      "predicted", "peer-reflexive"};
  int r = rank_of(kind);
  return r < 0 ? "?" : names[r];
}

static int find(const trav_upgrade_t *u, const udp_addr_t *remote) {
  for (size_t i = 0; i < u->count; i++)
    if (udp_addr_equal(&u->pairs[i].remote, remote))
      return (int)i;
  return -1;
}

static bool excluded(const trav_upgrade_t *u, const udp_addr_t *addr) {
  for (size_t i = 0; i < u->excluded_count; i++)
    if (udp_addr_same_ip(&u->excluded[i], addr))
      return true;
  return false;
}

int trav_upgrade_exclude_ip(trav_upgrade_t *u, const udp_addr_t *addr) {
  if (excluded(u, addr))
    return 0;
  if (u->excluded_count >= TRAV_UPGRADE_MAX_EXCLUDED)
    return err_fail(QP_ERR_TOO_LARGE, "more than %d relay addresses",
                    TRAV_UPGRADE_MAX_EXCLUDED);
  u->excluded[u->excluded_count++] = *addr;
  return 0;
}

int trav_upgrade_add_pair(trav_upgrade_t *u, const udp_addr_t *remote,
                          int kind) {
  char who[UDP_ADDRSTRLEN];
  if (rank_of(kind) < 0 || !trav_addr_usable(remote) || excluded(u, remote))
    return err_fail(QP_ERR_INVALID, "direct pair to %s (kind %d) refused: not "
                                    "a usable direct candidate (or a relay's)",
                    udp_addr_to_string(remote, who, sizeof(who)), kind);
  if (find(u, remote) >= 0)
    return 0;
  if (u->count >= TRAV_UPGRADE_MAX_PAIRS)
    return err_fail(QP_ERR_TOO_LARGE, "direct pair to %s not checked: %d "
                                      "pairs already",
                    udp_addr_to_string(remote, who, sizeof(who)),
                    TRAV_UPGRADE_MAX_PAIRS);
  u->pairs[u->count++] = (up_pair){.remote = *remote,
                                   .kind = kind,
                                   .rank = (uint8_t)rank_of(kind),
                                   .gap_ms = TRAV_UPGRADE_RTO_MS};
  return 0;
}

/* ---- incoming ------------------------------------------------------------ */

/* An authenticated check from the peer at `from`: check back at once, and
 * retransmit quickly again: the peer is evidently sending from there now. */
static void triggered(trav_upgrade_t *u, const udp_addr_t *from) {
  int i = find(u, from);
  if (i < 0 && trav_upgrade_add_pair(u, from, QP_PATH_PRFLX) == 0)
    i = find(u, from);
  if (i < 0)
    return;
  u->pairs[i].requests++;
  if (u->pairs[i].state == UP_SUCCEEDED)
    return;
  u->pairs[i].next_ms = 0;
  u->pairs[i].gap_ms = TRAV_UPGRADE_RTO_MS;
}

static trav_upgrade_rx on_request(trav_upgrade_t *u, const stun_msg *msg,
                                  const udp_addr_t *from) {
  uint8_t resp[TRAV_RESPONSE_MAX];
  size_t len;
  /* Judged as the responder will (our ufrag and pwd, this peer's ufrag);
   * the answer itself is the responder's to send. */
  if (trav_check_answer(u->local.ufrag, u->local.pwd, u->remote.ufrag,
                        &u->role, msg, from, resp, sizeof(resp),
                        &len) != TRAV_REQ_ANSWERED) {
    u->unauthenticated++;
    return TRAV_UPGRADE_NOT_OURS;
  }
  u->requests++;
  if (!u->stopped)
    triggered(u, from);
  return TRAV_UPGRADE_REQUEST;
}

static int pair_by_txid(const trav_upgrade_t *u, const uint8_t *txid) {
  for (size_t i = 0; i < u->count; i++)
    if (u->pairs[i].has_txid &&
        memcmp(u->pairs[i].txid, txid, STUN_TXID_SIZE) == 0)
      return (int)i;
  return -1;
}

static trav_upgrade_rx on_response(trav_upgrade_t *u, const stun_msg *msg,
                                   const udp_addr_t *from) {
  int i = pair_by_txid(u, msg->txid);
  if (i < 0)
    return TRAV_UPGRADE_NOT_OURS; /* a late answer to the traversal's checks */
  up_pair *p = &u->pairs[i];
  if (!msg->has_fingerprint ||
      stun_msg_check_integrity(msg, (const uint8_t *)u->remote.pwd,
                               strlen(u->remote.pwd)) != 0) {
    u->unauthenticated++;
    return TRAV_UPGRADE_RESPONSE;
  }
  /* RFC 8445 section 7.2.5.2.1: the answer must come from where the check
   * went, or the pair is not what was validated. */
  if (!udp_addr_equal(from, &p->remote))
    return TRAV_UPGRADE_RESPONSE;
  if (msg->cls == STUN_CLASS_ERROR) {
    p->error_code = (uint32_t)msg->error_code;
    return TRAV_UPGRADE_RESPONSE;
  }
  if (p->state != UP_SUCCEEDED) {
    char who[UDP_ADDRSTRLEN];
    QP_LOG_INFO("direct path to %s (%s) answers our check", 
                udp_addr_to_string(&p->remote, who, sizeof(who)),
                trav_upgrade_kind_name(p->kind));
  }
  p->state = UP_SUCCEEDED;
  u->answered++;
  return TRAV_UPGRADE_RESPONSE;
}

trav_upgrade_rx trav_upgrade_on_datagram(trav_upgrade_t *u, const uint8_t *pkt,
                                         size_t len, const udp_addr_t *from,
                                         int64_t now_ms) {
  (void)now_ms;
  stun_msg msg;
  if (u == NULL || pkt == NULL || from == NULL ||
      udp_classify(pkt, len) != UDP_KIND_STUN ||
      stun_msg_parse(pkt, len, &msg) != 0 || msg.method != STUN_METHOD_BINDING)
    return TRAV_UPGRADE_NOT_OURS;
  if (msg.cls == STUN_CLASS_REQUEST)
    return on_request(u, &msg, from);
  if (msg.cls == STUN_CLASS_SUCCESS || msg.cls == STUN_CLASS_ERROR)
    return on_response(u, &msg, from);
  return TRAV_UPGRADE_NOT_OURS;
}

/* ---- outgoing ------------------------------------------------------------ */

/* The due pair checked longest ago (earliest due, then the better kind). */
static int next_due(const trav_upgrade_t *u, int64_t now_ms) {
  int best = -1;
  for (size_t i = 0; i < u->count; i++) {
    const up_pair *p = &u->pairs[i];
    if (p->state != UP_CHECKING || p->next_ms > now_ms)
      continue;
    const up_pair *b = best >= 0 ? &u->pairs[best] : NULL;
    if (b == NULL || p->next_ms < b->next_ms ||
        (p->next_ms == b->next_ms && p->rank < b->rank))
      best = (int)i;
  }
  return best;
}

/* After a check: the next one follows the doubling gap in the fast phase,
 * Tr in the slow one (a new transaction each time). */
static void schedule(trav_upgrade_t *u, up_pair *p, int64_t now_ms) {
  bool fast = now_ms - u->start_ms < TRAV_UPGRADE_FAST_MS;
  p->next_ms = now_ms + (fast ? p->gap_ms : TRAV_UPGRADE_SLOW_MS);
  if (fast && p->gap_ms < TRAV_UPGRADE_RTO_MAX_MS)
    p->gap_ms = p->gap_ms * 2 > TRAV_UPGRADE_RTO_MAX_MS ? TRAV_UPGRADE_RTO_MAX_MS
                                                        : p->gap_ms * 2;
  if (!fast)
    p->has_txid = false;
}

size_t trav_upgrade_poll(trav_upgrade_t *u, int64_t now_ms, uint8_t *buf,
                         size_t cap, udp_addr_t *to) {
  if (u == NULL || u->stopped)
    return 0;
  if (cap < TRAV_UPGRADE_CHECK_MAX) {
    err_fail(QP_ERR_INVALID, "trav_upgrade_poll: %zu-byte buffer, a check "
                             "needs %d", cap, TRAV_UPGRADE_CHECK_MAX);
    return 0;
  }
  if (u->start_ms < 0)
    u->start_ms = now_ms;
  if (now_ms < u->next_send_ms)
    return 0;
  int i = next_due(u, now_ms);
  if (i < 0)
    return 0;
  up_pair *p = &u->pairs[i];
  if (!p->has_txid && stun_msg_new_txid(p->txid) != 0)
    return 0; /* no random bytes: tried again on the next poll */
  p->has_txid = true;
  size_t len = trav_check_write(&u->local, &u->remote, p->txid,
                                u->role.controlling, u->role.tiebreaker,
                                trav_cand_priority(RDV_CAND_PRFLX, 65535),
                                false, buf, cap);
  if (len == 0)
    return 0;
  p->checks++;
  u->sent++;
  u->next_send_ms = now_ms + TRAV_UPGRADE_TA_MS;
  schedule(u, p, now_ms);
  *to = p->remote;
  return len;
}

int64_t trav_upgrade_next_ms(const trav_upgrade_t *u) {
  if (u == NULL || u->stopped)
    return INT64_MAX;
  int64_t t = INT64_MAX;
  for (size_t i = 0; i < u->count; i++)
    if (u->pairs[i].state == UP_CHECKING && u->pairs[i].next_ms < t)
      t = u->pairs[i].next_ms;
  return t == INT64_MAX || t >= u->next_send_ms ? t : u->next_send_ms;
}

bool trav_upgrade_validated(const trav_upgrade_t *u, udp_addr_t *addr,
                            int *kind) {
  const up_pair *best = NULL;
  for (size_t i = 0; u != NULL && i < u->count; i++) {
    const up_pair *p = &u->pairs[i];
    if (p->state == UP_SUCCEEDED && (best == NULL || p->rank < best->rank))
      best = p;
  }
  if (best == NULL)
    return false;
  *addr = best->remote;
  *kind = best->kind;
  return true;
}

int trav_upgrade_kind_of(const trav_upgrade_t *u, const udp_addr_t *addr) {
  int i = u ? find(u, addr) : -1;
  return i < 0 ? QP_PATH_PRFLX : u->pairs[i].kind;
}

bool trav_upgrade_heard_from(const trav_upgrade_t *u, const udp_addr_t *addr) {
  int i = u ? find(u, addr) : -1;
  return i >= 0 && (u->pairs[i].requests > 0 || u->pairs[i].state == UP_SUCCEEDED);
}

void trav_upgrade_hurry(trav_upgrade_t *u) {
  for (size_t i = 0; u != NULL && i < u->count; i++) {
    up_pair *p = &u->pairs[i];
    if (p->state == UP_CHECKING) {
      p->next_ms = 0;
      p->gap_ms = TRAV_UPGRADE_RTO_MS;
    }
  }
}

void trav_upgrade_stop(trav_upgrade_t *u) {
  if (u != NULL)
    u->stopped = true;
}

void trav_upgrade_describe(const trav_upgrade_t *u, char *buf, size_t size) {
  if (size == 0)
    return;
  snprintf(buf, size, "%zu direct pair%s, %llu checks sent, %llu answered, "
                      "%llu checks from the peer",
           u->count, u->count == 1 ? "" : "s", (unsigned long long)u->sent,
           (unsigned long long)u->answered, (unsigned long long)u->requests);
}

size_t trav_upgrade_pair_count(const trav_upgrade_t *u) { return u ? u->count : 0; }
uint64_t trav_upgrade_checks_sent(const trav_upgrade_t *u) { return u ? u->sent : 0; }

/* ---- from the traversal --------------------------------------------------- */

int trav_direct_kind(rdv_cand_type type) {
  switch (type) {
  case RDV_CAND_HOST:
    return QP_PATH_HOST;
  case RDV_CAND_SRFLX:
    return QP_PATH_SRFLX;
  case RDV_CAND_PREDICTED:
    return QP_PATH_PREDICTED;
  case RDV_CAND_MAPPED:
    return QP_PATH_MAPPED;
  default:
    return QP_PATH_PRFLX;
  }
}

trav_upgrade_t *trav_upgrade_from_agent(const trav_agent_t *a) {
  trav_role_t role = {a->controlling, a->tiebreaker};
  trav_upgrade_t *u;
  if (trav_upgrade_create(&a->local, &a->remote, &role, &u) != 0) {
    QP_LOG_WARN("the connection stays on the relay: %s", qp_last_error());
    return NULL;
  }
  /* Relays are not direct, whatever a pair's type says: the TURN servers,
   * our relayed addresses, the peer's (a check it sent through its
   * allocation made a "peer-reflexive" pair from there). */
  udp_addr_t ip;
  for (size_t k = 0; k < a->cfg->turn_count; k++)
    if (trav_addr_for_family(&a->cfg->turn[k].server, a->socks[0]->family, &ip))
      (void)trav_upgrade_exclude_ip(u, &ip);
  for (size_t i = 0; i < a->cand_count; i++)
    if (a->cands[i].type == RDV_CAND_RELAY &&
        trav_addr_for_family(&a->cands[i].addr, a->socks[0]->family, &ip))
      (void)trav_upgrade_exclude_ip(u, &ip);
  for (size_t i = 0; i < a->pair_count; i++)
    if (a->pairs[i].remote_type == RDV_CAND_RELAY)
      (void)trav_upgrade_exclude_ip(u, &a->pairs[i].remote);
  /* The traversal's direct pairs on the portal's socket (socket 0), best
   * first; the birthday technique's extra sockets are closed by now. */
  for (size_t i = 0; i < a->pair_count; i++) {
    const trav_pair_t *p = &a->pairs[i];
    if (p->sock_index == 0 && p->remote_type != RDV_CAND_RELAY)
      (void)trav_upgrade_add_pair(u, &p->remote, trav_direct_kind(p->remote_type));
  }
  return u;
}
