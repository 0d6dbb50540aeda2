/*
 * trav_relay.c: TURN relays in traversal (issue 10, docs/internals/turn.md).
 *
 * One sans-I/O turn_client per configured server, all on socket 0 (the
 * portal's one socket). Gathering allocates on every server at once; each
 * allocation that succeeds becomes a relayed candidate (type preference 0,
 * the lowest) and a virtual socket of the check machinery, index
 * TRAV_RELAY_SOCK_BASE + k: a check "sent on" it is wrapped for the TURN
 * server (Send indication, or ChannelData once a channel is bound), and
 * relayed data coming back (Data indication, ChannelData) is dispatched as
 * if it had arrived on that socket from the peer. Pairs through a relay
 * are checked like any other; every remote candidate's IP gets a
 * permission on every allocation, so the peer's checks to our relayed
 * address pass, from whatever port its NAT picks.
 *
 * When only a relayed pair validated, the controlling side waits
 * QP_RELAY_GRACE_MS for a direct one before nominating it (four times that
 * while the birthday technique runs; no wait when both NATs map per
 * destination, where no direct pair can validate).
 */
#include "traversal/trav_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "turn/turn_client.h"

/* The birthday technique (one side random, the other not) takes a few
 * hundred ms (median about 230 ms in the lab, docs/internals/hard-nat.md):
 * a relayed pair waits this many graces for it. */
#define TRAV_RELAY_BIRTHDAY_GRACE_FACTOR 4

/* The peer's candidates remembered for an allocation that completes late
 * (after gathering): as many as one record holds. */
#define TRAV_RELAY_MAX_REMOTES RDV_RECORD_MAX_CANDIDATES

/* A remote candidate, as the record gave it. */
typedef struct trav_relay_remote {
  udp_addr_t addr;
  rdv_cand_type type;
  uint32_t priority;
} trav_relay_remote_t;

typedef struct trav_relay trav_relay_t;

typedef struct trav_relay_slot {
  turn_client c;
  udp_socket_t vsock; /* fd -1; local = relayed address once allocated */
  bool published;     /* its relayed candidate is in our record */
  bool noted;         /* its outcome is in the note */
  bool late;          /* allocated after gathering (publish_late ran) */
} trav_relay_slot_t;

struct trav_relay {
  size_t count;
  trav_relay_slot_t slot[TRAV_MAX_RELAYS];
  int64_t first_alloc_ms; /* first allocation done, or -1 */
  int64_t grace_until_ms; /* a relayed pair waits for a direct one; -1 */
  int grace_pair;         /* the best validated relayed pair, or -1 */
  char note[512];         /* what the TURN servers said */
  bool gathered;          /* gathering is over: new allocations are late */
  uint64_t start_ns;      /* when the Allocates went out */
  /* The peer's candidates so far (the oldest replaced when full), for the
   * permissions and pairs of a late allocation. */
  trav_relay_remote_t remote[TRAV_RELAY_MAX_REMOTES];
  size_t remote_count, remote_next;
};

static uint64_t ms_to_ns_from(int64_t now_ms, int64_t when_ms) {
  uint64_t now = clock_now_ns();
  return when_ms <= now_ms ? now
                           : now + (uint64_t)(when_ms - now_ms) * CLOCK_NS_PER_MS;
}

bool trav_sock_is_relay(size_t s) { return s >= TRAV_RELAY_SOCK_BASE; }

static trav_relay_slot_t *slot_of(const trav_agent_t *a, size_t s) {
  if (!trav_sock_is_relay(s) || a->relay == NULL ||
      s - TRAV_RELAY_SOCK_BASE >= a->relay->count)
    return NULL;
  return &a->relay->slot[s - TRAV_RELAY_SOCK_BASE];
}

udp_socket_t *trav_sock(const trav_agent_t *a, size_t s) {
  trav_relay_slot_t *r = slot_of(a, s);
  return r ? &r->vsock : a->socks[trav_sock_is_relay(s) ? 0 : s];
}

static void append(char *buf, size_t size, const char *text) {
  size_t used = strlen(buf);
  if (used + 1 < size)
    snprintf(buf + used, size - used, "%s", text);
}

static const char *server_text(const turn_client *c, char *buf, size_t size) {
  return udp_addr_to_string(turn_client_server(c), buf, size);
}

/* Note a slot's outcome once: its relayed address, or why it failed. */
static void note(trav_relay_t *r, trav_relay_slot_t *s) {
  if (s->noted)
    return;
  char srv[UDP_ADDRSTRLEN], rel[UDP_ADDRSTRLEN];
  if (turn_client_state(&s->c) == TURN_STATE_FAILED) {
    QP_LOG_INFO("traversal: TURN server skipped: %s", turn_client_error(&s->c));
    append(r->note, sizeof(r->note), r->note[0] ? "; " : "");
    append(r->note, sizeof(r->note), turn_client_error(&s->c));
  } else if (turn_client_state(&s->c) == TURN_STATE_ALLOCATED) {
    /* Outside the log call: its arguments are not evaluated when the level
     * is off, and the note needs both strings. */
    server_text(&s->c, srv, sizeof(srv));
    udp_addr_to_string(&s->c.relayed, rel, sizeof(rel));
    QP_LOG_INFO("traversal: TURN server %s relays for us at %s", srv, rel);
    append(r->note, sizeof(r->note), r->note[0] ? "; " : "");
    append(r->note, sizeof(r->note), server_text(&s->c, srv, sizeof(srv)));
    append(r->note, sizeof(r->note), " relays at ");
    append(r->note, sizeof(r->note), rel);
  } else {
    return;
  }
  s->noted = true;
}

/* At the end of gathering: the servers whose Allocate is still unanswered
 * (dead, or slow: they may still be published late). */
static void note_unanswered(trav_relay_t *r) {
  long long ms = (long long)((clock_now_ns() - r->start_ns) / CLOCK_NS_PER_MS);
  for (size_t k = 0; k < r->count; k++) {
    const trav_relay_slot_t *s = &r->slot[k];
    if (s->noted || turn_client_state(&s->c) != TURN_STATE_ALLOCATING)
      continue;
    char srv[UDP_ADDRSTRLEN], text[UDP_ADDRSTRLEN + TURN_USERNAME_MAX + 96];
    snprintf(text, sizeof(text), "%sTURN server %s had not answered the "
             "Allocate request of user '%s' after %lld ms",
             r->note[0] ? "; " : "", server_text(&s->c, srv, sizeof(srv)),
             s->c.cfg.username, ms);
    append(r->note, sizeof(r->note), text);
  }
}

int trav_send(trav_agent_t *a, size_t s, const udp_addr_t *to,
              const uint8_t *buf, size_t len) {
  trav_relay_slot_t *r = slot_of(a, s);
  if (r == NULL)
    return udp_send(trav_sock(a, s), to, buf, len, len);
  uint8_t out[TRAV_RESPONSE_MAX + 256 + TURN_SEND_OVERHEAD];
  size_t n = 0;
  int rc = turn_client_wrap(&r->c, to, buf, len, out, sizeof(out), &n);
  if (rc != 0) {
    char srv[UDP_ADDRSTRLEN];
    return err_fail(rc, "TURN relay %s cannot carry the check (%s)",
                    server_text(&r->c, srv, sizeof(srv)),
                    turn_state_name(turn_client_state(&r->c)));
  }
  return udp_send(a->socks[0], turn_client_server(&r->c), out, n, n);
}

int trav_relay_start(trav_agent_t *a, int64_t now_ms, int64_t until_ms) {
  const trav_config_t *cfg = a->cfg;
  if (cfg->turn_count == 0 || cfg->relay_policy == QP_RELAY_NEVER)
    return 0;
  if (cfg->turn_count > TRAV_MAX_RELAYS)
    return err_fail(QP_ERR_INVALID, "%zu TURN servers: at most %d",
                    cfg->turn_count, TRAV_MAX_RELAYS);
  trav_relay_t *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for the TURN clients");
  a->relay = r;
  r->first_alloc_ms = -1;
  r->grace_until_ms = -1;
  r->grace_pair = -1;
  uint64_t now = clock_now_ns();
  r->start_ns = now;
  for (size_t k = 0; k < cfg->turn_count; k++) {
    trav_relay_slot_t *s = &r->slot[r->count];
    turn_config tc = cfg->turn[k];
    /* The server as socket 0 sees it (IPv4-mapped on a dual-stack one). */
    if (!trav_addr_for_family(&cfg->turn[k].server, a->socks[0]->family,
                              &tc.server)) {
      char srv[UDP_ADDRSTRLEN];
      QP_LOG_INFO("traversal: TURN server %s skipped: not reachable from "
                  "the socket's address family",
                  udp_addr_to_string(&cfg->turn[k].server, srv, sizeof(srv)));
      continue;
    }
    /* A dead server must not outlast gathering: its Allocate gets what
     * gathering has left. */
    if (tc.timeout_ms == 0 && until_ms > now_ms)
      tc.timeout_ms = (uint32_t)(until_ms - now_ms);
    s->vsock.fd = -1;
    int rc = turn_client_init(&s->c, &tc);
    if (rc == 0)
      rc = turn_client_allocate(&s->c, now);
    if (rc != 0)
      return rc;
    r->count++;
  }
  return 0;
}

bool trav_relay_gathering(const trav_agent_t *a, int64_t now_ms) {
  const trav_relay_t *r = a->relay;
  if (r == NULL)
    return false;
  if (r->first_alloc_ms >= 0 &&
      now_ms >= r->first_alloc_ms + TRAV_RELAY_GATHER_GRACE_MS)
    return false;
  for (size_t k = 0; k < r->count; k++)
    if (turn_client_state(&r->slot[k].c) == TURN_STATE_ALLOCATING)
      return true;
  return false;
}

static void publish_late(trav_agent_t *a, size_t k, int64_t now_ms);

/* Gathering's budget capped the Allocate (a dead server must not outlast
 * gathering), but turn_config.timeout_ms caps every transaction of the
 * client: once allocated, CreatePermission, ChannelBind and the Refreshes
 * of a long connection get the full RFC 8489 schedule (39.5 s), not 3
 * transmissions in 2 s, which a loaded host or a lossy path can miss. */
static void uncap(turn_client *c) { c->cfg.timeout_ms = 0; }

int64_t trav_relay_poll(trav_agent_t *a, int64_t now_ms) {
  trav_relay_t *r = a->relay;
  if (r == NULL)
    return INT64_MAX;
  uint64_t now = clock_now_ns();
  int64_t next = INT64_MAX;
  for (size_t k = 0; k < r->count; k++) {
    trav_relay_slot_t *s = &r->slot[k];
    uint8_t out[TURN_REQUEST_MAX];
    size_t len;
    udp_addr_t to;
    while (turn_client_poll(&s->c, now, out, sizeof(out), &len, &to) == 1)
      udp_send(a->socks[0], &to, out, len, 0); /* lost: retransmitted */
    if (turn_client_state(&s->c) == TURN_STATE_ALLOCATED) {
      if (r->first_alloc_ms < 0)
        r->first_alloc_ms = now_ms;
      uncap(&s->c);
    }
    if (r->gathered && !s->published && !s->late &&
        turn_client_state(&s->c) == TURN_STATE_ALLOCATED) {
      s->late = true;
      publish_late(a, k, now_ms);
      next = now_ms; /* the loop publishes at once */
    }
    note(r, s);
    uint64_t d = turn_client_deadline(&s->c);
    if (d == UINT64_MAX)
      continue;
    int64_t ms = now_ms + (d > now ? (int64_t)((d - now) / CLOCK_NS_PER_MS) : 0);
    if (ms < next)
      next = ms;
  }
  return next;
}

/* Slot k's relayed address becomes a candidate and its virtual socket's
 * address. false when the candidate list is full. */
static bool add_candidate(trav_agent_t *a, trav_relay_slot_t *s, size_t k) {
  s->vsock.local = s->c.relayed;
  s->vsock.family = s->c.relayed.ss.ss_family;
  if (trav_cand_add(a, RDV_CAND_RELAY, &s->c.relayed,
                    (uint16_t)(TRAV_MAX_RELAYS - k),
                    TRAV_RELAY_SOCK_BASE + k) != 0)
    return false;
  s->published = true;
  return true;
}

int trav_relay_gather_finish(trav_agent_t *a) {
  trav_relay_t *r = a->relay;
  size_t relayed = 0;
  for (size_t k = 0; r != NULL && k < r->count; k++) {
    trav_relay_slot_t *s = &r->slot[k];
    if (turn_client_state(&s->c) == TURN_STATE_ALLOCATED &&
        add_candidate(a, s, k))
      relayed++;
  }
  if (r != NULL) {
    r->gathered = true;
    note_unanswered(r);
  }
  if (a->cfg->relay_policy != QP_RELAY_ONLY || a->cfg->turn_count == 0)
    return 0;
  if (relayed == 0)
    return err_fail(QP_ERR_RELAY, "relay only, but no TURN server gave an "
                    "allocation: %s", r && r->note[0] ? r->note
                                                      : "none answered in time");
  /* Only the relayed candidates are published. */
  size_t n = 0;
  for (size_t i = 0; i < a->cand_count; i++)
    if (a->cands[i].type == RDV_CAND_RELAY)
      a->cands[n++] = a->cands[i];
  a->cand_count = n;
  return 0;
}

bool trav_relay_on_datagram(trav_agent_t *a, size_t s, const udp_datagram_t *d,
                            void (*dispatch)(trav_agent_t *, size_t,
                                             const udp_datagram_t *)) {
  trav_relay_t *r = a->relay;
  if (r == NULL || s != 0)
    return false;
  for (size_t k = 0; k < r->count; k++) {
    trav_relay_slot_t *sl = &r->slot[k];
    if (!turn_client_owns(&sl->c, &d->from))
      continue;
    turn_rx rx;
    int kind = turn_client_handle(&sl->c, d->data, d->len, &d->from,
                                  clock_now_ns(), &rx);
    if (kind == TURN_RX_IGNORED)
      return false; /* maybe the answer to a STUN Binding of gathering */
    note(r, sl);
    if (kind != TURN_RX_DATA)
      return true;
    /* A channel for whoever reaches us through the relay: QUIC will need
     * it (4 bytes per packet instead of a Send indication's 60). */
    if (turn_client_binding(&sl->c, &rx.peer) == TURN_PEER_NONE)
      turn_client_bind(&sl->c, &rx.peer, clock_now_ns());
    udp_datagram_t inner = {.data = (uint8_t *)rx.data, .len = rx.len,
                            .from = rx.peer};
    dispatch(a, TRAV_RELAY_SOCK_BASE + k, &inner);
    return true;
  }
  return false;
}

/* The permission and the pair for one remote candidate on slot k. */
static void slot_on_remote(trav_agent_t *a, size_t k,
                           const trav_relay_remote_t *c, int64_t now_ms) {
  trav_relay_slot_t *s = &a->relay->slot[k];
  /* A TURN server elsewhere relays to nobody's loopback (coturn
   * answers 403); one on loopback may (--allow-loopback-peers). */
  if (!s->published || c->addr.ss.ss_family != s->vsock.family ||
      (udp_addr_is_loopback(&c->addr) &&
       !udp_addr_is_loopback(turn_client_server(&s->c))))
    return;
  /* Permission by IP (any port): the peer's checks to our relayed
   * address come from whatever port its NAT gives that destination. */
  turn_client_permit(&s->c, &c->addr, ms_to_ns_from(now_ms, now_ms));
  /* A pair through our relay only to the peer's relayed address: its
   * other candidates reach our relay themselves (checks to our relayed
   * address, learned as peer-reflexive pairs on it), and pairs that cannot
   * work would slow every check down (one per TRAV_TA_MS). With relay
   * "only", every candidate gets one, as no direct pair is checked. */
  if (c->type == RDV_CAND_RELAY || !trav_relay_direct_allowed(a, c->type))
    trav_pair_add(a, TRAV_RELAY_SOCK_BASE + k, &c->addr, c->type, c->priority,
                  now_ms);
}

/* Keep c for an allocation that may complete later (once per address). */
static void remember(trav_relay_t *r, const trav_relay_remote_t *c) {
  for (size_t i = 0; i < r->remote_count; i++)
    if (udp_addr_equal(&r->remote[i].addr, &c->addr)) {
      r->remote[i] = *c;
      return;
    }
  r->remote[r->remote_next] = *c;
  r->remote_next = (r->remote_next + 1) % TRAV_RELAY_MAX_REMOTES;
  if (r->remote_count < TRAV_RELAY_MAX_REMOTES)
    r->remote_count++;
}

void trav_relay_on_remote(trav_agent_t *a, const udp_addr_t *addr,
                          rdv_cand_type type, uint32_t priority,
                          int64_t now_ms) {
  trav_relay_t *r = a->relay;
  if (r == NULL)
    return;
  trav_relay_remote_t c = {.addr = *addr, .type = type, .priority = priority};
  remember(r, &c);
  for (size_t k = 0; k < r->count; k++)
    slot_on_remote(a, k, &c, now_ms);
}

/* An allocation that completed after gathering (a slow TURN server): its
 * relayed candidate joins our candidates, gets permissions and pairs for
 * the peer's candidates known so far, and our record is published again at
 * once (its heartbeat made due), so the peer learns the candidate (it adds
 * the pairs of candidates new in a record it already uses). Without it, a
 * pair that only this relay can join would never connect. */
static void publish_late(trav_agent_t *a, size_t k, int64_t now_ms) {
  trav_relay_t *r = a->relay;
  trav_relay_slot_t *s = &r->slot[k];
  char srv[UDP_ADDRSTRLEN], rel[UDP_ADDRSTRLEN];
  if (!add_candidate(a, s, k))
    return;
  QP_LOG_INFO("traversal: TURN server %s allocated after gathering: relayed "
              "candidate %s published late",
              server_text(&s->c, srv, sizeof(srv)),
              udp_addr_to_string(&s->c.relayed, rel, sizeof(rel)));
  for (size_t i = 0; i < r->remote_count; i++)
    slot_on_remote(a, k, &r->remote[i], now_ms);
  if (a->published)
    a->next_refresh_ms = now_ms;
}

bool trav_relay_direct_allowed(const trav_agent_t *a, rdv_cand_type type) {
  int policy = a->cfg->relay_policy;
  if (policy == QP_RELAY_ONLY && a->cfg->turn_count > 0)
    return false;
  return !(type == RDV_CAND_RELAY && policy == QP_RELAY_NEVER);
}

static bool relayed(const trav_pair_t *p) {
  return trav_sock_is_relay(p->sock_index) || p->remote_type == RDV_CAND_RELAY;
}

bool trav_relay_hold(trav_agent_t *a, int i, int64_t now_ms) {
  trav_relay_t *r = a->relay;
  const trav_pair_t *p = &a->pairs[i];
  if (!relayed(p))
    return false;
  /* No direct pair can validate between two per-destination NATs, and
   * relay-only wants none. */
  if (a->strategy == TRAV_STRATEGY_BOTH_HARD ||
      (a->cfg->relay_policy == QP_RELAY_ONLY && a->cfg->turn_count > 0))
    return false;
  if (r == NULL) /* a pair to the peer's relay, without one of ours */
    return false;
  if (r->grace_until_ms < 0)
    r->grace_until_ms = now_ms + QP_RELAY_GRACE_MS *
                                     (a->strategy == TRAV_STRATEGY_DIRECT
                                          ? 1
                                          : TRAV_RELAY_BIRTHDAY_GRACE_FACTOR);
  if (r->grace_pair < 0 || p->priority > a->pairs[r->grace_pair].priority)
    r->grace_pair = i;
  return now_ms < r->grace_until_ms;
}

int trav_relay_grace_due(trav_agent_t *a, int64_t now_ms, int64_t *due_ms) {
  trav_relay_t *r = a->relay;
  *due_ms = INT64_MAX;
  if (r == NULL || r->grace_until_ms < 0 || r->grace_pair < 0 ||
      a->winner_pair >= 0 || !a->controlling)
    return -1;
  if (now_ms < r->grace_until_ms) {
    *due_ms = r->grace_until_ms;
    return -1;
  }
  int i = r->grace_pair;
  r->grace_pair = -1;
  QP_LOG_INFO("traversal: no direct pair within %d ms: the relay it is",
              QP_RELAY_GRACE_MS);
  return i;
}

static const char *kind_text(const trav_pair_t *p) {
  if (p->birthday)
    return "birthday";
  switch (p->remote_type) {
  case RDV_CAND_HOST:
    return "host";
  case RDV_CAND_SRFLX:
    return "server-reflexive";
  case RDV_CAND_PRFLX:
    return "peer-reflexive";
  case RDV_CAND_PREDICTED:
    return "predicted";
  case RDV_CAND_RELAY:
    return "relay";
  case RDV_CAND_MAPPED:
    return trav_mapped_text(p->remote_via);
  }
  return "?";
}

static int kind_of(const trav_pair_t *p) {
  if (relayed(p))
    return QP_PATH_RELAYED;
  if (p->birthday)
    return QP_PATH_BIRTHDAY;
  return trav_direct_kind(p->remote_type);
}

static void close_slot(trav_agent_t *a, trav_relay_slot_t *s) {
  if (turn_client_state(&s->c) != TURN_STATE_ALLOCATED)
    return;
  /* Deallocate, sent once: nobody waits for its answer (a lost one leaves
   * the allocation to its lifetime). */
  uint64_t now = clock_now_ns();
  uint8_t out[TURN_REQUEST_MAX];
  size_t len;
  udp_addr_t to;
  turn_client_close(&s->c, now);
  while (turn_client_poll(&s->c, now, out, sizeof(out), &len, &to) == 1)
    udp_send(a->socks[0], &to, out, len, 0);
}

void trav_relay_finish(trav_agent_t *a, trav_result_t *out) {
  char peer[UDP_ADDRSTRLEN], srv[UDP_ADDRSTRLEN], rel[UDP_ADDRSTRLEN];
  const trav_pair_t *p = a->winner_pair >= 0 ? &a->pairs[a->winner_pair] : NULL;
  trav_relay_slot_t *won = slot_of(a, a->winner_sock);
  udp_addr_to_string(&a->winner, peer, sizeof(peer));
  out->path_kind = p ? kind_of(p) : QP_PATH_PRFLX;
  if (won != NULL) {
    snprintf(out->path_desc, sizeof(out->path_desc),
             "relayed via our TURN server %s (relayed address %s) to %s",
             server_text(&won->c, srv, sizeof(srv)),
             udp_addr_to_string(&won->c.relayed, rel, sizeof(rel)), peer);
  } else if (p != NULL && p->remote_type == RDV_CAND_RELAY) {
    snprintf(out->path_desc, sizeof(out->path_desc),
             "relayed via the peer's TURN allocation %s", peer);
  } else {
    snprintf(out->path_desc, sizeof(out->path_desc), "direct (%s, %s) to %s",
             p ? kind_text(p) : "peer-reflexive",
             udp_addr_family(&a->winner) == AF_INET6 ? "IPv6" : "IPv4", peer);
  }
  trav_relay_t *r = a->relay;
  for (size_t k = 0; r != NULL && k < r->count; k++) {
    trav_relay_slot_t *s = &r->slot[k];
    if (s != won) {
      close_slot(a, s);
      continue;
    }
    turn_client *c = malloc(sizeof(*c));
    if (c == NULL) {
      out->path_kind = QP_PATH_NONE; /* the caller fails on it */
      continue;
    }
    if (turn_client_binding(&s->c, &a->winner) == TURN_PEER_NONE)
      turn_client_bind(&s->c, &a->winner, clock_now_ns());
    uncap(&s->c);
    *c = s->c;
    memset(&s->c, 0, sizeof(s->c)); /* moved (state IDLE: nothing to close) */
    out->turn = c;
  }
}

const char *trav_relay_failure(const trav_agent_t *a) {
  const trav_relay_t *r = a->relay;
  if (r == NULL)
    return NULL;
  for (size_t k = 0; k < r->count; k++)
    if (r->slot[k].published)
      return NULL;
  return r->note[0] ? r->note : "no TURN server answered in time";
}

void trav_relay_describe(const trav_agent_t *a, char *buf, size_t size) {
  if (a->relay != NULL && a->relay->note[0])
  {
    append(buf, size, "; TURN: ");
    append(buf, size, a->relay->note);
  }
}

void trav_relay_cleanup(trav_agent_t *a) {
  trav_relay_t *r = a->relay;
  if (r == NULL)
    return;
  for (size_t k = 0; k < r->count; k++)
    close_slot(a, &r->slot[k]);
  gnutls_memset(r, 0, sizeof(*r)); /* holds the long-term keys */
  free(r);
  a->relay = NULL;
}
