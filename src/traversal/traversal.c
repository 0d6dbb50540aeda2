/*
 * traversal.c: trav_run, the agent's loop. Gather candidates, publish and
 * read records, send paced checks, answer the peer's checks, nominate, and
 * hand the validated peer over. One thread, one poll() loop that wakes at
 * least every TRAV_CANCEL_POLL_MS.
 */
#include "traversal/trav_internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "portmap/portmap.h"
#include "traversal/trav_upgrade.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- incoming datagrams ------------------------------------------------ */

static void stash(trav_agent_t *a, const udp_datagram_t *d) {
  trav_result_t *out = a->out;
  uint8_t *copy = out->early_count < TRAV_EARLY_MAX ? malloc(d->len) : NULL;
  if (copy == NULL) {
    a->n.early_dropped++;
    return;
  }
  memcpy(copy, d->data, d->len);
  out->early[out->early_count] = copy;
  out->early_len[out->early_count] = d->len;
  out->early_from[out->early_count] = d->from;
  out->early_count++;
}

/* A valid check came from `from`: make sure a pair exists (peer-reflexive
 * when the address is new) and check it back at once (triggered check). */
static int learn_pair(trav_agent_t *a, size_t s, const stun_msg *msg,
                      const udp_addr_t *from, int64_t now_ms) {
  int i = trav_pair_find(a, s, from);
  if (i < 0 && a->prflx_count < TRAV_MAX_PRFLX) {
    uint32_t prio = msg->has_priority
                        ? msg->priority
                        : trav_cand_priority(RDV_CAND_PRFLX, 65535);
    i = trav_pair_add(a, s, from, RDV_CAND_PRFLX, prio, now_ms);
    if (i >= 0)
      a->prflx_count++;
  }
  if (i < 0)
    return -1;
  trav_pair_t *p = &a->pairs[i];
  p->requests_in++;
  if ((p->state == TRAV_PAIR_WAITING || p->state == TRAV_PAIR_IN_PROGRESS) &&
      p->next_send_ms > now_ms + TRAV_TA_MS)
    p->next_send_ms = TRAV_TRIGGERED_MS;
  return i;
}

static void on_request(trav_agent_t *a, size_t s, const stun_msg *msg,
                       const udp_addr_t *from, int64_t now_ms) {
  uint8_t resp[TRAV_RESPONSE_MAX];
  size_t len = 0;
  /* "" never matches: before we know the peer, every check is foreign. */
  const char *peer = a->have_remote ? a->remote.ufrag : "";
  trav_role_t role = {a->controlling, a->tiebreaker};
  switch (trav_check_answer(a->local.ufrag, a->local.pwd, peer, &role, msg,
                            from, resp, sizeof(resp), &len)) {
  case TRAV_REQ_NOT_REQUEST:
    return;
  case TRAV_REQ_UNAUTHENTICATED:
    a->n.unauthenticated++;
    return;
  case TRAV_REQ_FOREIGN_PEER:
    /* Our credentials, another peer ufrag: the peer may have published a
     * newer record than the one we hold. Look again soon. */
    a->n.foreign++;
    a->next_poll_ms = min64(a->next_poll_ms, now_ms + RDV_WAIT_FIRST_MS);
    return;
  case TRAV_REQ_ROLE_CONFLICT:
    a->n.role_conflicts++;
    if (len > 0)
      trav_send(a, s, from, resp, len);
    return;
  case TRAV_REQ_ANSWERED:
    break;
  }
  int i = learn_pair(a, s, msg, from, now_ms);
  /* A nomination counts only for a pair we validated ourselves (RFC 8445
   * section 7.3.1.5): one that knows our credentials (from the store) but
   * cannot answer our checks at its address cannot become the winner. */
  if (!a->controlling && msg->use_candidate && msg->has_ice_controlling &&
      trav_pair_nominated_by_peer(a, i, resp, len, now_ms))
    return;
  trav_send(a, s, from, resp, len);
  a->n.answered++;
  a->peer_alive_ms = now_ms; /* an authenticated check: the peer runs */
}

static void nominate(trav_agent_t *a, int i, int64_t now_ms) {
  trav_pair_t *p = &a->pairs[i];
  a->winner_pair = i;
  a->winner_sock = p->sock_index;
  /* Only the nominated pair is checked from now on: the birthday
   * technique's other sockets go at once. */
  trav_hard_keep_only(a, p->sock_index);
  if (stun_msg_new_txid(p->txid) != 0)
    return; /* retried by the next success response */
  p->nominate = true;
  p->next_send_ms = TRAV_TRIGGERED_MS;
  a->next_send_ms = now_ms;
}

static void on_response(trav_agent_t *a, size_t s, const stun_msg *msg,
                        const udp_addr_t *from, int64_t now_ms) {
  if (trav_hard_is_spray(a, msg->txid)) {
    /* A probe or an extra socket's check answered: a new valid pair. */
    int i = trav_hard_on_response(a, s, msg, from, now_ms);
    if (i >= 0 && a->controlling && a->winner_pair < 0)
      nominate(a, i, now_ms);
    else if (i >= 0 && !a->controlling)
      trav_pair_maybe_selected(a, i);
    return;
  }
  int i = trav_pair_by_txid(a, msg->txid);
  if (i < 0) {
    a->n.unmatched++;
    return;
  }
  trav_pair_t *p = &a->pairs[i];
  if (!msg->has_fingerprint ||
      stun_msg_check_integrity(msg, (const uint8_t *)a->remote.pwd,
                               strlen(a->remote.pwd)) != 0) {
    a->n.unauthenticated++;
    return;
  }
  /* RFC 8445 section 7.2.5.2.1: "The ICE agent MUST check that the source
   * and destination transport addresses in the Binding request and
   * response are symmetric." */
  if (!udp_addr_equal(from, &p->remote)) {
    p->asymmetric = true;
    return;
  }
  if (msg->cls == STUN_CLASS_ERROR) {
    p->error_code = (uint32_t)msg->error_code;
    return;
  }
  if (p->state != TRAV_PAIR_SUCCEEDED) {
    p->state = TRAV_PAIR_SUCCEEDED;
    p->rtt_ms = now_ms - p->last_sent_ms;
  }
  if (!a->controlling) {
    trav_pair_maybe_selected(a, i);
    return;
  }
  if (p->nominate) { /* the answer to our USE-CANDIDATE check */
    a->done = true;
    a->winner = p->remote;
  } else if (a->winner_pair < 0 && !trav_relay_hold(a, i, now_ms)) {
    nominate(a, i, now_ms);
  }
}

static void dispatch(trav_agent_t *a, size_t s, const udp_datagram_t *d) {
  int64_t now_ms = rdv_now_ms();
  /* TURN answers and relayed data (RFC 9443: by the source address first) */
  if (trav_relay_on_datagram(a, s, d, dispatch))
    return;
  if (udp_classify(d->data, d->len) != UDP_KIND_STUN) {
    stash(a, d);
    return;
  }
  stun_msg msg;
  if (stun_msg_parse(d->data, d->len, &msg) != 0) {
    a->n.malformed++;
    return;
  }
  if (trav_gather_on_datagram(a, d->data, d->len, &d->from, now_ms))
    return;
  if (msg.method != STUN_METHOD_BINDING)
    a->n.unmatched++;
  else if (msg.cls == STUN_CLASS_REQUEST)
    on_request(a, s, &msg, &d->from, now_ms);
  else if (msg.cls == STUN_CLASS_SUCCESS || msg.cls == STUN_CLASS_ERROR)
    on_response(a, s, &msg, &d->from, now_ms);
}

static int drain(trav_agent_t *a, size_t s) {
  for (int b = 0; b < TRAV_MAX_BATCHES_PER_WAKEUP; b++) {
    int got = udp_recv(a->socks[s], a->batch);
    if (got < 0)
      return got;
    for (int i = 0; i < got; i++)
      dispatch(a, s, &a->batch->dgrams[i]);
    if (got < UDP_RECV_BATCH)
      break;
  }
  return 0;
}

/* Wait up to wait_ms for datagrams on every open socket and handle them. */
static int service(trav_agent_t *a, int64_t wait_ms) {
  nfds_t count = 0;
  for (size_t s = 0; s < a->sock_count; s++) {
    if (a->socks[s]->fd < 0)
      continue; /* an extra socket closed after the nomination */
    a->pfd[count] = (struct pollfd){.fd = a->socks[s]->fd, .events = POLLIN};
    a->pfd_sock[count++] = s;
  }
  if (wait_ms < 0)
    wait_ms = 0;
  if (wait_ms > TRAV_CANCEL_POLL_MS)
    wait_ms = TRAV_CANCEL_POLL_MS;
  int n = poll(a->pfd, count, (int)wait_ms);
  if (n < 0 && errno != EINTR)
    return err_fail(QP_ERR_SOCKET, "poll on the traversal socket failed: %s",
                   strerror(errno));
  for (nfds_t k = 0; n > 0 && k < count && !a->done; k++) {
    size_t s = a->pfd_sock[k];
    /* A nomination while draining may have closed this socket. */
    if (a->pfd[k].revents == 0 || a->socks[s]->fd < 0)
      continue;
    int rc = drain(a, s);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static bool cancelled(const trav_agent_t *a) {
  return a->cancel != NULL && a->cancel(a->cancel_arg);
}

static int interrupted(void) {
  return err_fail(QP_ERR_INTERRUPTED, "NAT traversal interrupted");
}

/* ---- phases ------------------------------------------------------------ */

static int gather(trav_agent_t *a) {
  int rc = trav_gather_host(a, 0);
  if (rc != 0)
    return rc;
  int64_t now = rdv_now_ms();
  int budget = a->cfg->punch_timeout_ms / 3;
  int64_t until = now + (budget < TRAV_GATHER_MAX_MS ? budget : TRAV_GATHER_MAX_MS);
  if ((rc = trav_gather_start(a, now, until)) != 0 ||
      (rc = trav_relay_start(a, now, until)) != 0)
    return rc;
  int64_t stun_done = -1;
  while (rc == 0) {
    now = rdv_now_ms();
    if (cancelled(a))
      return interrupted();
    int64_t next = a->gathering ? trav_gather_on_timer(a, now) : -1;
    if (next < 0 && stun_done < 0)
      stun_done = now;
    int64_t relay_next = trav_relay_poll(a, now);
    bool relay = trav_relay_gathering(a, now) &&
                 (stun_done < 0 || now < stun_done + TRAV_RELAY_AFTER_STUN_MS);
    /* The gateway gets a short grace after STUN; later, trav_portmap_late. */
    int64_t pm_next = trav_gather_portmap(a, now, stun_done);
    if ((next < 0 && !relay && pm_next < 0) || now >= until)
      break;
    if (pm_next >= 0 && (next < 0 || pm_next < next))
      next = pm_next;
    if (relay && stun_done >= 0)
      relay_next = min64(relay_next, stun_done + TRAV_RELAY_AFTER_STUN_MS);
    if (next < 0 || (relay && relay_next < next))
      next = relay ? relay_next : next;
    rc = service(a, min64(next, until) - now);
  }
  trav_gather_finish(a);
  return rc != 0 ? rc : trav_relay_gather_finish(a);
}

static void schedule_poll(trav_agent_t *a, int64_t now_ms) {
  a->poll_pause_ms = rdv_wait_next_pause_ms(a->poll_pause_ms);
  if (a->poll_pause_ms > TRAV_RECORD_REPOLL_MS)
    a->poll_pause_ms = TRAV_RECORD_REPOLL_MS;
  a->next_poll_ms = now_ms + a->poll_pause_ms;
}

static void send_due(trav_agent_t *a, int64_t now_ms) {
  if (!a->have_remote || now_ms < a->next_send_ms)
    return;
  int i = trav_pair_next_due(a, now_ms);
  if (i < 0)
    return;
  trav_pair_send(a, i, now_ms);
  a->next_send_ms = now_ms + TRAV_TA_MS;
}

static int64_t next_wake(const trav_agent_t *a, int64_t spray_due) {
  int64_t t = min64(min64(a->next_poll_ms, a->deadline_ms), spray_due);
  if (a->have_remote) {
    int64_t due = trav_pair_next_time(a);
    t = min64(t, due < a->next_send_ms ? a->next_send_ms : due);
  }
  return t;
}

static int timed_out(trav_agent_t *a);

static int meet(trav_agent_t *a) {
  int rc = 0;
  /* The "client" key is left alone: a client record that does not answer
   * this server's record is ignored (trav_peer.c), so a second server of
   * the same session cannot take the first one's client away. */
  if (a->controlling && (rc = trav_peer_publish(a)) != 0)
    return rc;
  a->next_poll_ms = rdv_now_ms();
  if (a->cfg->wait_timeout_ms != 0)
    QP_LOG_INFO("traversal: waiting for the %s's record in %s (%s)",
                trav_peer_key(a), rdv_describe(a->rdv),
                a->cfg->wait_timeout_ms < 0 ? "no time limit"
                                            : "within the wait timeout");
  while (!a->done) {
    int64_t now = rdv_now_ms();
    if (cancelled(a))
      return interrupted();
    if (now - a->peer_alive_ms >= TRAV_STALE_MS && trav_peer_drop_stale(a, now))
      continue;
    if (now >= a->deadline_ms && !trav_peer_drop_stale(a, now))
      return timed_out(a);
    if (a->published && now >= a->next_refresh_ms &&
        (rc = trav_peer_publish(a)) != 0)
      return rc;
    if (now >= a->next_poll_ms) {
      if ((rc = trav_peer_poll(a, now)) != 0)
        return rc;
      schedule_poll(a, now);
    }
    send_due(a, now);
    int64_t spray_due = trav_hard_send(a, now);
    int64_t relay_due, grace_due;
    int held = trav_relay_grace_due(a, now, &grace_due);
    if (held >= 0)
      nominate(a, held, now);
    relay_due = min64(trav_relay_poll(a, now), grace_due);
    relay_due = min64(relay_due, trav_portmap_late(a, now));
    spray_due = min64(spray_due, relay_due);
    if ((rc = service(a, next_wake(a, spray_due) - now)) != 0)
      return rc;
  }
  return 0;
}

/* ---- results and errors ------------------------------------------------ */

static void append(char *buf, size_t size, const char *s) {
  size_t used = strlen(buf);
  if (used + 1 < size)
    snprintf(buf + used, size - used, "%s", s);
}

static void count(char *buf, size_t size, uint32_t n, const char *what,
                  bool *first) {
  size_t used = strlen(buf);
  if (n == 0 || used + 1 >= size)
    return;
  snprintf(buf + used, size - used, "%s%u %s", *first ? "; ignored " : ", ",
           n, what);
  *first = false;
}

/* "; answered 3 checks; ignored 2 unauthenticated, 1 of another peer". */
static void describe_ignored(const trav_agent_t *a, char *buf, size_t size) {
  const trav_counters_t *n = &a->n;
  size_t used = strlen(buf);
  if (n->answered && used + 1 < size)
    snprintf(buf + used, size - used, "; answered %u checks", n->answered);
  bool first = true;
  count(buf, size, n->unauthenticated, "unauthenticated", &first);
  count(buf, size, n->foreign, "of another peer", &first);
  count(buf, size, n->malformed, "malformed", &first);
  count(buf, size, n->unmatched, "unmatched", &first);
  count(buf, size, n->early_dropped, "early non-STUN beyond the stash",
        &first);
  count(buf, size, n->role_conflicts, "claiming our ICE role", &first);
  count(buf, size, n->nominations_held,
        "nominations before we validated the pair (held)",
        &first);
  count(buf, size, n->bad_candidates,
        "record candidates (unspecified, multicast or broadcast)", &first);
}

static void ellipsize(char *buf, size_t size) {
  if (strlen(buf) + 1 >= size && size > 4)
    memcpy(buf + size - 4, "...", 4);
}

static void build_summary(const trav_agent_t *a, char *buf, size_t size) {
  buf[0] = '\0';
  trav_pairs_describe(a, buf, size, "\n");
  if (a->done) {
    char l[UDP_ADDRSTRLEN], r[UDP_ADDRSTRLEN], line[2 * UDP_ADDRSTRLEN + 16];
    snprintf(line, sizeof(line), "%s -> %s",
             udp_addr_to_string(&trav_sock(a, a->winner_sock)->local, l, sizeof(l)),
             udp_addr_to_string(&a->winner, r, sizeof(r)));
    append(buf, size, buf[0] ? "\nwinner: " : "winner: ");
    append(buf, size, line);
  }
  if (a->stun_note[0]) {
    append(buf, size, buf[0] ? "\n" : "");
    append(buf, size, a->stun_note);
  }
  trav_hard_describe(a, buf, size);
  trav_relay_describe(a, buf, size);
  describe_ignored(a, buf, size);
  ellipsize(buf, size);
}

/* The peer never showed up within wait_timeout_ms. */
static int wait_timed_out(trav_agent_t *a) {
  int ms = a->cfg->wait_timeout_ms;
  if (a->rec_err != 0)
    return err_fail(a->rec_err, "no usable %s record in %s within the wait "
                   "timeout of %d ms: %s", trav_peer_key(a),
                   rdv_describe(a->rdv), ms, a->rec_why);
  return err_fail(QP_ERR_TIMEOUT, "the %s did not publish its record within "
                 "the wait timeout of %d ms (key \"%s\" in %s): is it running, "
                 "with the same store and session?", trav_peer_key(a), ms,
                 trav_peer_key(a), rdv_describe(a->rdv));
}

static int timed_out(trav_agent_t *a) {
  int ms = a->cfg->punch_timeout_ms;
  build_summary(a, a->out->summary, sizeof(a->out->summary));
  for (size_t i = 0; i < a->pair_count; i++) { /* all of them, untruncated */
    char r[UDP_ADDRSTRLEN], what[160];
    QP_LOG_DEBUG("traversal: timed out: pair %zu on socket %zu -> %s %s: %s", i,
                 a->pairs[i].sock_index,
                 udp_addr_to_string(&a->pairs[i].remote, r, sizeof(r)),
                 rdv_cand_type_to_string(a->pairs[i].remote_type),
                 trav_pair_outcome(&a->pairs[i], what, sizeof(what)));
  }
  if (!a->have_remote && a->cfg->wait_timeout_ms > 0)
    return wait_timed_out(a);
  if (!a->have_remote && a->rec_err != 0)
    return err_fail(a->rec_err, "no usable %s record in %s within %d ms: %s",
                   trav_peer_key(a), rdv_describe(a->rdv), ms, a->rec_why);
  if (!a->have_remote)
    return err_fail(QP_ERR_PUNCH,
                   "Failed to punch NAT within %d ms: the %s never published "
                   "its record (key \"%s\" in %s)", ms, trav_peer_key(a),
                   trav_peer_key(a), rdv_describe(a->rdv));
  char pairs[400] = "";
  trav_pairs_describe(a, pairs, sizeof(pairs), ", ");
  ellipsize(pairs, sizeof(pairs));
  char more[240] = "";
  trav_hard_describe(a, more, sizeof(more));
  describe_ignored(a, more, sizeof(more));
  char hard[320] = "";
  if (a->strategy == TRAV_STRATEGY_BOTH_HARD)
    snprintf(hard, sizeof(hard),
             " both NATs map each destination to its own port (ours: %s, "
             "the peer's: %s), so neither side can know the port the other "
             "will use%s; a relay (TURN) is needed between these two "
             "networks.", trav_ports_name(a->self.ports),
             trav_ports_name(a->peer_nat.ports),
             a->self.ports == TRAV_PORTS_SEQUENTIAL ||
                     a->peer_nat.ports == TRAV_PORTS_SEQUENTIAL
                 ? " and port prediction found no path"
                 : "");
  /* Why no relay helped comes first: the message is bounded. */
  const char *turn = trav_relay_failure(a);
  return err_fail(QP_ERR_PUNCH, "Failed to punch NAT within %d ms:%s%s%s%s %s "
                 "%zu pair%s: %s%s", ms, turn ? " no TURN relay (" : "",
                 turn ? turn : "", turn ? ")." : "", hard,
                 hard[0] ? "Tried" : "tried",
                 a->pair_count,
                 a->pair_count == 1 ? "" : "s",
                 a->pair_count ? pairs : "(the peer's record had no usable "
                                         "candidate)", more);
}

static int finish(trav_agent_t *a, trav_result_t *out) {
  trav_role_t role = {a->controlling, a->tiebreaker};
  int rc = trav_responder_create(&a->local, &a->remote, &role, &out->responder);
  if (rc != 0)
    return rc;
  out->peer = a->winner;
  out->waited_ms = a->adopted_ms - a->start_ms;
  memcpy(out->peer_fingerprint, a->peer_fp, sizeof(out->peer_fingerprint));
  build_summary(a, out->summary, sizeof(out->summary));
  trav_relay_finish(a, out);
  if (out->path_kind == QP_PATH_NONE)
    return err_fail(QP_ERR_NOMEM, "out of memory for the TURN client");
  /* Relay first, direct when possible (trav_upgrade.h). */
  if (out->path_kind == QP_PATH_RELAYED && a->cfg->relay_policy != QP_RELAY_ONLY)
    out->upgrade = trav_upgrade_from_agent(a);
  /* The winner's socket goes to the caller; an extra one changes hands. A
   * relay's runs on socket 0. */
  size_t ws = trav_sock_is_relay(a->winner_sock) ? 0 : a->winner_sock;
  udp_socket_t *won = a->socks[ws];
  out->sock = *won;
  out->sock_is_extra = ws != 0;
  if (out->sock_is_extra)
    won->fd = -1;
  trav_peer_unpublish(a);
  QP_LOG_INFO("traversal: %s validated a path in %lld ms: %s",
              trav_own_key(a), (long long)(rdv_now_ms() - a->start_ms),
              out->path_desc);
  return 0;
}

/* ---- entry points ------------------------------------------------------ */

static int check_args(const udp_socket_t *sock, const rdv_t *rdv,
                      const trav_config_t *cfg, const trav_result_t *out) {
  if (sock == NULL || rdv == NULL || cfg == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "trav_run: sock, rdv, cfg and out are "
                                   "required");
  if (cfg->session == NULL || cfg->session[0] == '\0')
    return err_fail(QP_ERR_INVALID, "trav_run: a rendezvous session is required");
  if (cfg->punch_timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID, "punch timeout must be positive (got %d ms)",
                   cfg->punch_timeout_ms);
  if (cfg->stun_server_count > 0 && cfg->stun_servers == NULL)
    return err_fail(QP_ERR_INVALID, "trav_run: stun_servers is NULL");
  if (cfg->hard_nat_sockets > TRAV_BIRTHDAY_MAX_SOCKETS)
    return err_fail(QP_ERR_INVALID, "hard_nat_sockets=%d: at most %d (-1 = "
                   "none, 0 = %d)", cfg->hard_nat_sockets,
                   TRAV_BIRTHDAY_MAX_SOCKETS, TRAV_BIRTHDAY_SOCKETS_DEFAULT);
  if (cfg->hard_nat_probe_rate < 0 ||
      cfg->hard_nat_probe_rate > TRAV_PROBE_RATE_MAX)
    return err_fail(QP_ERR_INVALID, "hard_nat_probe_rate=%d: must be 1 to %d "
                   "per second (0 = %d)", cfg->hard_nat_probe_rate,
                   TRAV_PROBE_RATE_MAX, TRAV_PROBE_RATE_DEFAULT);
  if (cfg->hard_nat_max_probes < 0 ||
      cfg->hard_nat_max_probes > TRAV_PROBES_MAX_LIMIT)
    return err_fail(QP_ERR_INVALID, "hard_nat_max_probes=%d: must be 1 to %d "
                   "(0 = %d)", cfg->hard_nat_max_probes, TRAV_PROBES_MAX_LIMIT,
                   TRAV_PROBES_MAX_DEFAULT);
  return 0;
}

static int agent_init(trav_agent_t *a, udp_socket_t *sock, rdv_t *rdv,
                      const trav_config_t *cfg, trav_result_t *out) {
  a->socks[0] = sock;
  a->sock_count = 1;
  a->rdv = rdv;
  a->cfg = cfg;
  a->out = out;
  a->controlling = cfg->is_server;
  a->winner_pair = -1;
  a->start_ms = rdv_now_ms();
  /* Until the peer's record is adopted (trav_peer.c restarts the clock). */
  if (cfg->wait_timeout_ms == 0)
    a->deadline_ms = a->start_ms + cfg->punch_timeout_ms;
  else if (cfg->wait_timeout_ms < 0)
    a->deadline_ms = INT64_MAX;
  else
    a->deadline_ms = a->start_ms + cfg->wait_timeout_ms;
  a->batch = malloc(sizeof(*a->batch));
  if (a->batch == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for the receive batch");
  int rc = trav_creds_generate(&a->local);
  if (rc == 0)
    rc = trav_random_u64(&a->tiebreaker);
  return rc;
}

int trav_run(udp_socket_t *sock, rdv_t *rdv, const trav_config_t *cfg,
             bool (*cancel)(void *), void *cancel_arg, trav_result_t *out) {
  int rc = check_args(sock, rdv, cfg, out);
  if (rc != 0)
    return rc;
  memset(out, 0, sizeof(*out));
  out->sock.fd = -1;
  trav_agent_t *a = calloc(1, sizeof(*a));
  if (a == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for NAT traversal");
  a->cancel = cancel;
  a->cancel_arg = cancel_arg;
  rc = agent_init(a, sock, rdv, cfg, out);
  if (rc == 0)
    rc = gather(a);
  if (rc == 0)
    rc = meet(a);
  if (rc == 0)
    rc = finish(a, out);
  if (rc == 0) { /* the mapping lives as long as the portal */
    out->portmap = a->portmap;
    a->portmap = NULL;
  }
  portmap_stop(a->portmap); /* a failed run deletes its mapping */
  if (rc != 0) {
    trav_peer_unpublish(a); /* records never outlive a run */
    char summary[sizeof(out->summary)];
    memcpy(summary, out->summary, sizeof(summary));
    trav_result_cleanup(out);
    memcpy(out->summary, summary, sizeof(summary));
  }
  trav_hard_cleanup(a);
  trav_relay_cleanup(a);
  free(a->stun);
  free(a->batch);
  gnutls_memset(a, 0, sizeof(*a)); /* holds both pwds */
  free(a);
  return rc;
}

void trav_result_cleanup(trav_result_t *r) {
  if (r == NULL)
    return;
  trav_responder_destroy(r->responder);
  trav_upgrade_destroy(r->upgrade);
  free(r->turn);
  portmap_stop(r->portmap);
  for (size_t i = 0; i < r->early_count && i < TRAV_EARLY_MAX; i++)
    free(r->early[i]);
  if (r->sock_is_extra)
    udp_socket_close(&r->sock);
  memset(r, 0, sizeof(*r));
  r->sock.fd = -1;
}
