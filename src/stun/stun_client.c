#include "stun/stun_client.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

/* Longest error message listing several servers: stays under the
 * thread-local message buffer of src/common/error.c (512 bytes). */
#define SUMMARY_MAX 400

void stun_client_init(stun_client *c) { memset(c, 0, sizeof(*c)); }

static int free_slot(const stun_client *c) {
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++)
    if (c->txns[i].result.state == STUN_TXN_FREE)
      return i;
  return -1;
}

static int build_request(stun_client_txn *t, uint32_t change_flags) {
  stun_msg_writer w;
  int rc = stun_msg_new_txid(t->txid);
  if (rc == 0)
    rc =
        stun_msg_write_header(&w, t->request, sizeof(t->request),
                              STUN_METHOD_BINDING, STUN_CLASS_REQUEST, t->txid);
  if (rc == 0 && change_flags)
    rc = stun_msg_write_u32(&w, STUN_ATTR_CHANGE_REQUEST, change_flags);
  /* FINGERPRINT lets a peer sharing the socket with QUIC tell our requests
   * apart with certainty (RFC 8489 section 7). */
  if (rc == 0)
    rc = stun_msg_write_fingerprint(&w);
  t->request_len = w.len;
  return rc;
}

int stun_client_start(stun_client *c, const udp_addr_t *server,
                      uint32_t change_flags, int64_t now_ms,
                      int64_t deadline_ms) {
  if (!c || !server ||
      (server->ss.ss_family != AF_INET && server->ss.ss_family != AF_INET6))
    return err_fail(QP_ERR_INVALID, "STUN transaction needs an IPv4 or IPv6 "
                                    "server address");
  int i = free_slot(c);
  if (i < 0)
    return err_fail(QP_ERR_NOMEM, "all %d STUN transaction slots are in use",
                    STUN_CLIENT_MAX_TRANSACTIONS);
  stun_client_txn *t = &c->txns[i];
  memset(t, 0, sizeof(*t));
  int rc = build_request(t, change_flags);
  if (rc)
    return rc;
  t->result.state = STUN_TXN_PENDING;
  t->result.server = *server;
  t->result.change_request = change_flags;
  t->next_event_ms = now_ms;
  t->deadline_ms = deadline_ms;
  t->rto_ms = STUN_CLIENT_RTO_MS;
  return i;
}

int64_t stun_client_next_timeout(const stun_client *c) {
  int64_t next = -1;
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++) {
    const stun_client_txn *t = &c->txns[i];
    if (t->result.state != STUN_TXN_PENDING)
      continue;
    int64_t due =
        t->next_event_ms < t->deadline_ms ? t->next_event_ms : t->deadline_ms;
    if (next < 0 || due < next)
      next = due;
  }
  return next;
}

void stun_client_fail(stun_client *c, int txn, int error, int sys_errno) {
  if (txn < 0 || txn >= STUN_CLIENT_MAX_TRANSACTIONS)
    return;
  stun_client_result *r = &c->txns[txn].result;
  if (r->state != STUN_TXN_PENDING)
    return;
  r->state = STUN_TXN_FAILED;
  r->error = error;
  r->sys_errno = sys_errno;
}

/* Record one (re)send and schedule the next event: another send one RTO
 * later, or after the last send the final wait of Rm initial RTOs. */
static void note_sent(stun_client_txn *t, int64_t now_ms) {
  t->result.requests_sent++;
  t->last_sent_ms = now_ms;
  if (t->result.requests_sent < STUN_CLIENT_MAX_SENDS) {
    t->next_event_ms = now_ms + t->rto_ms;
    t->rto_ms *= 2;
  } else {
    t->next_event_ms =
        now_ms + (int64_t)STUN_CLIENT_LAST_WAIT_RTOS * STUN_CLIENT_RTO_MS;
  }
}

size_t stun_client_on_timer(stun_client *c, int64_t now_ms,
                            stun_client_datagram *out, size_t max) {
  size_t n = 0;
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++) {
    stun_client_txn *t = &c->txns[i];
    if (t->result.state != STUN_TXN_PENDING)
      continue;
    if (now_ms >= t->deadline_ms) {
      stun_client_fail(c, i, QP_ERR_TIMEOUT, 0);
      continue;
    }
    if (now_ms < t->next_event_ms)
      continue;
    if (t->result.requests_sent >= STUN_CLIENT_MAX_SENDS) {
      stun_client_fail(c, i, QP_ERR_TIMEOUT, 0); /* final wait is over */
      continue;
    }
    if (n == max)
      continue;
    out[n++] = (stun_client_datagram){.data = t->request,
                                      .len = t->request_len,
                                      .to = &t->result.server,
                                      .txn = i};
    note_sent(t, now_ms);
  }
  return n;
}

static int find_pending(const stun_client *c, const uint8_t *txid) {
  for (int i = 0; i < STUN_CLIENT_MAX_TRANSACTIONS; i++)
    if (c->txns[i].result.state == STUN_TXN_PENDING &&
        memcmp(c->txns[i].txid, txid, STUN_TXID_SIZE) == 0)
      return i;
  return -1;
}

static void take_error_response(stun_client_result *r, const stun_msg *m) {
  r->state = STUN_TXN_FAILED;
  r->error = QP_ERR_STUN;
  r->error_code = m->has_error_code ? m->error_code : 0;
  size_t n = m->error_reason.len < sizeof(r->error_reason) - 1
                 ? m->error_reason.len
                 : sizeof(r->error_reason) - 1;
  if (n)
    memcpy(r->error_reason, m->error_reason.data, n);
  r->error_reason[n] = '\0';
}

static void take_success_response(stun_client_result *r, const stun_msg *m) {
  /* RFC 8489 section 6.3.3: unknown comprehension-required attributes in a
   * success response make the transaction fail. */
  if (m->unknown_required_count > 0 ||
      (!m->has_xor_mapped_address && !m->has_mapped_address)) {
    r->state = STUN_TXN_FAILED;
    r->error = QP_ERR_STUN;
    snprintf(r->error_reason, sizeof(r->error_reason), "%s",
             m->unknown_required_count ? "unknown comprehension-required "
                                         "attribute in the response"
                                       : "response has no mapped address");
    return;
  }
  r->state = STUN_TXN_SUCCEEDED;
  /* XOR-MAPPED-ADDRESS survives NATs that rewrite addresses in payloads;
   * MAPPED-ADDRESS is only for RFC 3489 servers. */
  r->mapped =
      m->has_xor_mapped_address ? m->xor_mapped_address : m->mapped_address;
  r->has_other_address = m->has_other_address;
  r->other_address = m->other_address;
  r->has_response_origin = m->has_response_origin;
  r->response_origin = m->response_origin;
}

int stun_client_on_response(stun_client *c, const uint8_t *buf, size_t len,
                            const udp_addr_t *from, int64_t now_ms) {
  stun_msg m;
  if (!c || !from || !stun_msg_is_stun(buf, len) ||
      stun_msg_parse(buf, len, &m) != 0)
    return QP_ERR_STUN;
  if (m.method != STUN_METHOD_BINDING ||
      (m.cls != STUN_CLASS_SUCCESS && m.cls != STUN_CLASS_ERROR))
    return QP_ERR_STUN;
  int i = find_pending(c, m.txid);
  if (i < 0)
    return QP_ERR_STUN;
  stun_client_txn *t = &c->txns[i];
  t->result.from = *from;
  t->result.rtt_ms = now_ms - t->last_sent_ms;
  if (m.cls == STUN_CLASS_ERROR)
    take_error_response(&t->result, &m);
  else
    take_success_response(&t->result, &m);
  if (log_enabled(QP_LOG_LEVEL_DEBUG)) {
    char a[UDP_ADDRSTRLEN], b[UDP_ADDRSTRLEN];
    QP_LOG_DEBUG("STUN %s from %s: mapped %s, rtt %lld ms",
                 stun_msg_type_name(m.method, m.cls),
                 udp_addr_to_string(from, a, sizeof(a)),
                 udp_addr_to_string(&t->result.mapped, b, sizeof(b)),
                 (long long)t->result.rtt_ms);
  }
  return i;
}

const stun_client_result *stun_client_result_of(const stun_client *c, int txn) {
  if (!c || txn < 0 || txn >= STUN_CLIENT_MAX_TRANSACTIONS)
    return NULL;
  return &c->txns[txn].result;
}

/* ---- blocking driver --------------------------------------------------- */

/* The distinct sockets of a run, for poll(). */
typedef struct run_fds {
  struct pollfd pfd[STUN_CLIENT_MAX_TRANSACTIONS];
  udp_socket_t *sock[STUN_CLIENT_MAX_TRANSACTIONS];
  size_t count;
} run_fds;

static void collect_fds(const stun_client_request *reqs, size_t n,
                        run_fds *fds) {
  fds->count = 0;
  for (size_t i = 0; i < n; i++) {
    size_t j = 0;
    while (j < fds->count && fds->sock[j] != reqs[i].sock)
      j++;
    if (j == fds->count) {
      fds->sock[fds->count] = reqs[i].sock;
      fds->pfd[fds->count++] =
          (struct pollfd){.fd = reqs[i].sock->fd, .events = POLLIN};
    }
  }
}

static void send_due(stun_client *c, const stun_client_request *reqs,
                     int64_t now_ms) {
  stun_client_datagram out[STUN_CLIENT_MAX_TRANSACTIONS];
  size_t n = stun_client_on_timer(c, now_ms, out, STUN_CLIENT_MAX_TRANSACTIONS);
  for (size_t i = 0; i < n; i++) {
    /* A lost send (udp_errno_is_loss) is like a lost packet: the RTO
     * resends it. */
    if (udp_send(reqs[out[i].txn].sock, out[i].to, out[i].data, out[i].len,
                 0) != 0)
      stun_client_fail(c, out[i].txn, QP_ERR_SOCKET, errno);
  }
}

static void read_responses(stun_client *c, udp_socket_t *sock) {
  uint8_t buf[STUN_CLIENT_RESPONSE_MAX];
  for (int i = 0; i < STUN_CLIENT_MAX_READS_PER_WAKEUP; i++) {
    udp_addr_t from;
    size_t n;
    if (udp_recv_one(sock, buf, sizeof(buf), &n, &from) != 1)
      return; /* nothing left, or an ICMP error of some server: keep waiting */
    (void)stun_client_on_response(c, buf, n, &from, clock_now_ms());
  }
}

static int check_run_args(const stun_client_request *reqs, size_t n,
                          const stun_client_result *results) {
  if (!reqs || !results || n == 0 || n > STUN_CLIENT_MAX_TRANSACTIONS)
    return err_fail(QP_ERR_INVALID,
                    "STUN query needs 1 to %d servers (got %zu)",
                    STUN_CLIENT_MAX_TRANSACTIONS, n);
  for (size_t i = 0; i < n; i++)
    if (reqs[i].sock == NULL || reqs[i].sock->fd < 0)
      return err_fail(QP_ERR_INVALID, "STUN query: request %zu has no socket",
                      i);
  return 0;
}

/* Wait for input on any socket; read what came. */
static int wait_and_read(stun_client *c, run_fds *fds, int64_t wait_ms) {
  int rc =
      poll(fds->pfd, fds->count, wait_ms > INT_MAX ? INT_MAX : (int)wait_ms);
  if (rc < 0 && errno == EINTR)
    return err_fail(QP_ERR_INTERRUPTED, "STUN query interrupted by a signal");
  if (rc < 0)
    return err_fail(QP_ERR_SOCKET, "poll on the STUN sockets failed: %s",
                    strerror(errno));
  for (size_t i = 0; rc > 0 && i < fds->count; i++)
    if (fds->pfd[i].revents)
      read_responses(c, fds->sock[i]);
  return 0;
}

int stun_client_run(const stun_client_request *reqs, size_t n, int timeout_ms,
                    stun_client_result *results) {
  int rc = check_run_args(reqs, n, results);
  if (rc)
    return rc;
  stun_client c;
  stun_client_init(&c);
  run_fds fds;
  collect_fds(reqs, n, &fds);
  int64_t start = clock_now_ms();
  int64_t deadline = start + (timeout_ms < 0 ? 0 : timeout_ms);
  /* Slots are handed out in order, so transaction i is request i. */
  for (size_t i = 0; i < n && rc >= 0; i++)
    rc = stun_client_start(&c, &reqs[i].server, reqs[i].change_flags, start,
                           deadline);
  for (int64_t next; rc >= 0 && (next = stun_client_next_timeout(&c)) >= 0;) {
    int64_t now = clock_now_ms();
    if (now >= next)
      send_due(&c, reqs, now);
    else
      rc = wait_and_read(&c, &fds, next - now);
  }
  for (size_t i = 0; i < n; i++)
    results[i] = c.txns[i].result;
  return rc < 0 ? rc : 0;
}

/* "a: no answer; b: error 420 (Unknown Attribute); ..." */
static void summarize(const stun_client_result *results, size_t n, char *buf,
                      size_t len) {
  size_t used = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && used < len; i++) {
    const stun_client_result *r = &results[i];
    char addr[UDP_ADDRSTRLEN];
    udp_addr_to_string(&r->server, addr, sizeof(addr));
    int w;
    if (r->error == QP_ERR_STUN && r->error_code)
      w = snprintf(buf + used, len - used, "%s%s: error %d (%s)", i ? "; " : "",
                   addr, r->error_code, r->error_reason);
    else if (r->error == QP_ERR_STUN)
      w = snprintf(buf + used, len - used, "%s%s: %s", i ? "; " : "", addr,
                   r->error_reason);
    else if (r->error == QP_ERR_SOCKET)
      w = snprintf(buf + used, len - used, "%s%s: send failed (%s)",
                   i ? "; " : "", addr, strerror(r->sys_errno));
    else
      w = snprintf(buf + used, len - used, "%s%s: no answer", i ? "; " : "",
                   addr);
    used += w > 0 ? (size_t)w : 0;
  }
}

static int worst_error(const stun_client_result *results, size_t n) {
  int err = QP_ERR_TIMEOUT;
  for (size_t i = 0; i < n; i++)
    if (results[i].error == QP_ERR_STUN || results[i].error == QP_ERR_SOCKET)
      err = results[i].error;
  return err;
}

int stun_client_query(udp_socket_t *sock, const udp_addr_t *servers, size_t n,
                      int timeout_ms, stun_client_result *results) {
  stun_client_request reqs[STUN_CLIENT_MAX_TRANSACTIONS];
  if (!servers || n == 0 || n > STUN_CLIENT_MAX_TRANSACTIONS)
    return err_fail(QP_ERR_INVALID,
                    "STUN query needs 1 to %d servers (got %zu)",
                    STUN_CLIENT_MAX_TRANSACTIONS, n);
  for (size_t i = 0; i < n; i++)
    reqs[i] = (stun_client_request){.sock = sock, .server = servers[i]};
  int rc = stun_client_run(reqs, n, timeout_ms, results);
  if (rc < 0)
    return rc;
  int answered = 0;
  for (size_t i = 0; i < n; i++)
    answered += results[i].state == STUN_TXN_SUCCEEDED;
  if (answered > 0)
    return answered;
  char summary[SUMMARY_MAX];
  char addr[UDP_ADDRSTRLEN];
  if (n == 1 && results[0].error == QP_ERR_TIMEOUT)
    return err_fail(QP_ERR_TIMEOUT, "STUN server %s did not answer in %d ms",
                    udp_addr_to_string(&servers[0], addr, sizeof(addr)),
                    timeout_ms);
  summarize(results, n, summary, sizeof(summary));
  return err_fail(worst_error(results, n),
                  "no STUN server gave a mapped address within %d ms: %s",
                  timeout_ms, summary);
}
