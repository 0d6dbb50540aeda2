/* The allocation: Allocate, Refresh, Deallocate, and the transaction
 * machinery they share with permissions and channels (turn_peer.c). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"
#include "stun/stun_client.h"
#include "turn/turn_internal.h"
#include "udp/udp.h"

/* ---- transactions (RFC 8489 section 6.2.1) ------------------------------ */

int turn_txn_start(turn_txn *t, uint16_t method, uint64_t now_ns) {
  uint32_t retries = t->active && t->method == method ? t->auth_retries : 0;
  memset(t, 0, sizeof(*t));
  int rc = stun_msg_new_txid(t->txid);
  if (rc)
    return rc;
  t->active = true;
  t->method = method;
  t->started_ns = now_ns;
  t->next_ns = now_ns;
  t->auth_retries = retries;
  return 0;
}

static uint64_t txn_limit_ns(const turn_client *c, const turn_txn *t) {
  uint32_t ms = c->cfg.timeout_ms ? c->cfg.timeout_ms : TURN_TXN_TIMEOUT_MS;
  return t->started_ns + (uint64_t)ms * CLOCK_NS_PER_MS;
}

turn_txn_due turn_txn_check(const turn_client *c, const turn_txn *t,
                            uint64_t now_ns) {
  if (!t->active || now_ns < t->next_ns)
    return TURN_TXN_WAIT;
  if (t->sent >= STUN_CLIENT_MAX_SENDS || now_ns >= txn_limit_ns(c, t))
    return TURN_TXN_EXPIRED;
  return TURN_TXN_SEND;
}

/* The wait after transmission number `sent` (1-based): RTO doubling, and
 * Rm * RTO after the last of Rc. */
static uint64_t txn_wait_ns(uint32_t sent) {
  uint64_t ms = sent >= STUN_CLIENT_MAX_SENDS
                    ? (uint64_t)STUN_CLIENT_LAST_WAIT_RTOS * STUN_CLIENT_RTO_MS
                    : (uint64_t)STUN_CLIENT_RTO_MS << (sent - 1);
  return ms * CLOCK_NS_PER_MS;
}

uint64_t turn_txn_elapsed_ms(const turn_txn *t, uint64_t now_ns) {
  return now_ns > t->started_ns ? (now_ns - t->started_ns) / CLOCK_NS_PER_MS
                                : 0;
}

/* The lifetime we ask for in Allocate and in every Refresh. */
static uint32_t wanted_lifetime(const turn_client *c) {
  return c->cfg.lifetime_s ? c->cfg.lifetime_s : TURN_DEFAULT_LIFETIME_S;
}

/* The LIFETIME an answer grants, if it carries a usable one: 0 would make
 * us refresh in a loop, so it leaves the current value. */
static void take_lifetime(turn_client *c, const stun_msg *msg) {
  stun_bytes v;
  if (!stun_msg_find_attr(msg, TURN_ATTR_LIFETIME, &v) || v.len != 4)
    return;
  uint32_t s = (uint32_t)v.data[0] << 24 | (uint32_t)v.data[1] << 16 |
               (uint32_t)v.data[2] << 8 | v.data[3];
  if (s > 0)
    c->lifetime_s = s;
}

static int write_allocate_attrs(stun_msg_writer *w, const turn_client *c) {
  int rc = stun_msg_write_u32(w, TURN_ATTR_REQUESTED_TRANSPORT,
                              TURN_TRANSPORT_UDP << 24);
  if (rc == 0)
    rc = stun_msg_write_u32(w, TURN_ATTR_LIFETIME, wanted_lifetime(c));
  if (rc == 0 && c->cfg.relay_family)
    rc = stun_msg_write_u32(
        w, TURN_ATTR_REQUESTED_ADDRESS_FAMILY,
        (c->cfg.relay_family == AF_INET6 ? TURN_FAMILY_IPV6 : TURN_FAMILY_IPV4)
            << 24);
  return rc;
}

static int write_method_attrs(stun_msg_writer *w, const turn_client *c,
                              const turn_txn *t, const turn_peer *p) {
  switch (t->method) {
  case TURN_METHOD_ALLOCATE:
    return write_allocate_attrs(w, c);
  case TURN_METHOD_REFRESH:
    return stun_msg_write_u32(w, TURN_ATTR_LIFETIME, c->refresh_lifetime_s);
  case TURN_METHOD_CHANNEL_BIND: {
    /* RFC 8656 section 14.1: the number, then 16 bits "RFFU = 0". */
    int rc = stun_msg_write_u32(w, TURN_ATTR_CHANNEL_NUMBER,
                                (uint32_t)p->channel << 16);
    return rc ? rc
              : stun_msg_write_xor_address(w, TURN_ATTR_XOR_PEER_ADDRESS,
                                           &p->addr);
  }
  case TURN_METHOD_CREATE_PERMISSION:
    return stun_msg_write_xor_address(w, TURN_ATTR_XOR_PEER_ADDRESS, &p->addr);
  default:
    return err_fail(QP_ERR_INTERNAL, "TURN: no request for method 0x%03x",
                    t->method);
  }
}

/* RFC 8489 section 9.2.4: USERNAME, REALM, NONCE, then MESSAGE-INTEGRITY
 * keyed with the long-term key. */
static int write_credentials(stun_msg_writer *w, const turn_client *c) {
  int rc = stun_msg_write_attr(w, STUN_ATTR_USERNAME, c->cfg.username,
                               strlen(c->cfg.username));
  if (rc == 0)
    rc = stun_msg_write_attr(w, STUN_ATTR_REALM, c->realm, strlen(c->realm));
  if (rc == 0)
    rc = stun_msg_write_attr(w, STUN_ATTR_NONCE, c->nonce, c->nonce_len);
  if (rc == 0)
    rc = stun_msg_write_integrity(w, c->key, sizeof(c->key));
  return rc;
}

int turn_txn_send(turn_client *c, turn_txn *t, const turn_peer *p,
                  uint64_t now_ns, uint8_t *out, size_t cap, size_t *out_len) {
  stun_msg_writer w;
  int rc = stun_msg_write_header(&w, out, cap, t->method, STUN_CLASS_REQUEST,
                                 t->txid);
  if (rc == 0)
    rc = write_method_attrs(&w, c, t, p);
  if (rc == 0 && c->have_key)
    rc = write_credentials(&w, c);
  if (rc == 0)
    rc = stun_msg_write_fingerprint(&w);
  if (rc)
    return rc;
  t->authenticated = c->have_key;
  t->sent++;
  t->next_ns = now_ns + txn_wait_ns(t->sent);
  if (t->next_ns > txn_limit_ns(c, t))
    t->next_ns = txn_limit_ns(c, t);
  *out_len = w.len;
  return 0;
}

/* ---- credentials ------------------------------------------------------- */

static void copy_text(char *dst, size_t cap, stun_bytes src) {
  size_t n = src.len < cap - 1 ? src.len : cap - 1;
  memcpy(dst, src.data, n);
  dst[n] = '\0';
}

/* Take REALM (if sent) and NONCE from a 401/438 answer; derive the key. */
static bool learn_challenge(turn_client *c, const stun_msg *msg) {
  if (!msg->nonce.data || msg->nonce.len >= sizeof(c->nonce) ||
      (!msg->realm.data && !c->realm[0]))
    return false;
  if (msg->realm.data)
    copy_text(c->realm, sizeof(c->realm), msg->realm);
  memcpy(c->nonce, msg->nonce.data, msg->nonce.len);
  c->nonce_len = msg->nonce.len;
  c->have_key = stun_msg_long_term_key(c->cfg.username, c->realm,
                                       c->cfg.password, c->key) == 0;
  return c->have_key;
}

turn_challenge turn_txn_challenge(turn_client *c, turn_txn *t,
                                  const stun_msg *msg, uint64_t now_ns) {
  int code = msg->error_code;
  /* RFC 8489 section 9.2.5: a 401 to a request without credentials is the
   * challenge; a 401 to one with credentials means they are wrong. 438:
   * "the client SHOULD retry the request with the new NONCE". */
  bool challenge = (code == TURN_ERROR_UNAUTHORIZED && !t->authenticated) ||
                   code == TURN_ERROR_STALE_NONCE;
  if (!challenge)
    return code == TURN_ERROR_UNAUTHORIZED ||
                   code == TURN_ERROR_WRONG_CREDENTIALS
               ? TURN_CHALLENGE_REJECTED
               : TURN_CHALLENGE_NONE;
  if (t->auth_retries >= TURN_MAX_AUTH_RETRIES || !learn_challenge(c, msg))
    return TURN_CHALLENGE_REJECTED;
  t->auth_retries++;
  if (turn_txn_start(t, t->method, now_ns) != 0)
    return TURN_CHALLENGE_REJECTED;
  return TURN_CHALLENGE_RETRY;
}

bool turn_response_trusted(const turn_client *c, const turn_txn *t,
                           const stun_msg *msg) {
  if (!t->authenticated)
    return true;
  if (!msg->integrity_offset && !msg->integrity_sha256_offset)
    return msg->cls == STUN_CLASS_ERROR;
  return stun_msg_check_integrity(msg, c->key, sizeof(c->key)) == 0;
}

uint64_t turn_refresh_time(uint64_t now_ns, uint32_t lifetime_s) {
  uint32_t wait = lifetime_s >= 2 * TURN_REFRESH_MARGIN_S
                      ? lifetime_s - TURN_REFRESH_MARGIN_S
                      : lifetime_s / 2;
  return now_ns + (uint64_t)wait * CLOCK_NS_PER_S;
}

const char *turn_server_text(const turn_client *c, char *buf) {
  return udp_addr_to_string(&c->server, buf, UDP_ADDRSTRLEN);
}

const char *turn_error_text(const stun_msg *msg, char *buf, size_t cap) {
  if (!msg->has_error_code) {
    snprintf(buf, cap, "an error without ERROR-CODE");
    return buf;
  }
  int reason_len =
      (int)(msg->error_reason.len < 100 ? msg->error_reason.len : 100);
  snprintf(buf, cap, "%d %.*s", msg->error_code, reason_len,
           msg->error_reason.data ? (const char *)msg->error_reason.data : "");
  return buf;
}

/* ---- the client -------------------------------------------------------- */

static int fail(turn_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int fail(turn_client *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->error_msg, sizeof(c->error_msg), fmt, ap);
  va_end(ap);
  c->state = TURN_STATE_FAILED;
  c->error = QP_ERR_RELAY;
  c->alloc_txn.active = false;
  turn_peer_stop_all(c);
  QP_LOG_WARN("%s", c->error_msg);
  return err_fail(QP_ERR_RELAY, "%s", c->error_msg);
}

int turn_client_init(turn_client *c, const turn_config *cfg) {
  if (!c || !cfg || !turn_addr_usable(&cfg->server) || !cfg->username[0] ||
      (cfg->relay_family && cfg->relay_family != AF_INET &&
       cfg->relay_family != AF_INET6))
    return err_fail(QP_ERR_INVALID,
                    "TURN client: a server address (IPv4 or IPv6) and a "
                    "user name are required; the relay family is 0, AF_INET "
                    "or AF_INET6");
  memset(c, 0, sizeof(*c));
  c->cfg = *cfg;
  c->cfg.username[TURN_USERNAME_MAX - 1] = '\0';
  c->cfg.password[TURN_PASSWORD_MAX - 1] = '\0';
  c->server = cfg->server;
  c->next_channel = TURN_CHANNEL_MIN;
  return 0;
}

int turn_client_allocate(turn_client *c, uint64_t now_ns) {
  if (!c || c->state != TURN_STATE_IDLE)
    return err_fail(QP_ERR_STATE, "TURN client: Allocate only once, when idle");
  int rc = turn_txn_start(&c->alloc_txn, TURN_METHOD_ALLOCATE, now_ns);
  if (rc == 0)
    c->state = TURN_STATE_ALLOCATING;
  return rc;
}

static int start_refresh(turn_client *c, uint32_t lifetime_s, uint64_t now_ns) {
  c->refresh_lifetime_s = lifetime_s;
  c->alloc_txn.active = false;
  return turn_txn_start(&c->alloc_txn, TURN_METHOD_REFRESH, now_ns);
}

static int alloc_expired(turn_client *c, uint64_t now_ns) {
  char server[UDP_ADDRSTRLEN];
  uint64_t ms = turn_txn_elapsed_ms(&c->alloc_txn, now_ns);
  uint32_t sent = c->alloc_txn.sent;
  if (c->state == TURN_STATE_CLOSING) {
    c->alloc_txn.active = false;
    c->state = TURN_STATE_CLOSED;
    QP_LOG_DEBUG("TURN server %s did not confirm the Deallocate in %llu ms",
                 turn_server_text(c, server), (unsigned long long)ms);
    return 0;
  }
  if (c->state == TURN_STATE_ALLOCATING)
    return fail(c,
                "TURN server %s did not answer the Allocate request of user "
                "'%s': unreachable, no response in %llu ms (%u "
                "transmissions)",
                turn_server_text(c, server), c->cfg.username,
                (unsigned long long)ms, sent);
  return fail(c,
              "TURN relay lost: server %s did not answer a Refresh in %llu "
              "ms (%u transmissions)",
              turn_server_text(c, server), (unsigned long long)ms, sent);
}

int turn_client_poll(turn_client *c, uint64_t now_ns, uint8_t *out, size_t cap,
                     size_t *out_len, udp_addr_t *to) {
  if (!c || !out || !out_len || !to)
    return err_fail(QP_ERR_INVALID, "turn_client_poll: NULL argument");
  if (c->state == TURN_STATE_ALLOCATED && !c->alloc_txn.active &&
      now_ns >= c->refresh_ns) {
    int rc = start_refresh(c, wanted_lifetime(c), now_ns);
    if (rc)
      return rc;
  }
  *to = c->server;
  switch (turn_txn_check(c, &c->alloc_txn, now_ns)) {
  case TURN_TXN_EXPIRED:
    return alloc_expired(c, now_ns);
  case TURN_TXN_SEND: {
    int rc = turn_txn_send(c, &c->alloc_txn, NULL, now_ns, out, cap, out_len);
    return rc ? rc : 1;
  }
  case TURN_TXN_WAIT:
    break;
  }
  if (c->state != TURN_STATE_ALLOCATED)
    return 0;
  return turn_peer_poll(c, now_ns, out, cap, out_len);
}

uint64_t turn_client_deadline(const turn_client *c) {
  if (!c)
    return UINT64_MAX;
  uint64_t d = UINT64_MAX;
  if (c->alloc_txn.active)
    d = c->alloc_txn.next_ns;
  if (c->state != TURN_STATE_ALLOCATED)
    return d;
  if (!c->alloc_txn.active && c->refresh_ns < d)
    d = c->refresh_ns;
  uint64_t peers = turn_peer_deadline(c);
  return peers < d ? peers : d;
}

static int on_allocated(turn_client *c, const stun_msg *msg, uint64_t now_ns) {
  char server[UDP_ADDRSTRLEN], relayed[UDP_ADDRSTRLEN];
  stun_bytes v;
  if (!stun_msg_find_attr(msg, TURN_ATTR_XOR_RELAYED_ADDRESS, &v) ||
      stun_msg_decode_address(msg, TURN_ATTR_XOR_RELAYED_ADDRESS, v, true,
                              &c->relayed) != 0)
    return fail(c,
                "TURN server %s accepted the Allocate but sent no usable "
                "XOR-RELAYED-ADDRESS",
                turn_server_text(c, server));
  if (stun_msg_find_attr(msg, STUN_ATTR_XOR_MAPPED_ADDRESS, &v))
    stun_msg_decode_address(msg, STUN_ATTR_XOR_MAPPED_ADDRESS, v, true,
                            &c->mapped);
  c->lifetime_s = wanted_lifetime(c);
  take_lifetime(c, msg);
  c->refresh_ns = turn_refresh_time(now_ns, c->lifetime_s);
  c->alloc_txn.active = false;
  c->state = TURN_STATE_ALLOCATED;
  QP_LOG_INFO("TURN allocation on %s: relayed address %s, lifetime %u s",
              turn_server_text(c, server),
              udp_addr_to_string(&c->relayed, relayed, sizeof(relayed)),
              c->lifetime_s);
  return TURN_RX_CONTROL;
}

/* RFC 8489 section 10: 300 with ALTERNATE-SERVER: start over there. */
static int try_alternate(turn_client *c, const stun_msg *msg, uint64_t now_ns) {
  char server[UDP_ADDRSTRLEN];
  stun_bytes v;
  udp_addr_t alt;
  if (c->redirects >= TURN_MAX_REDIRECTS ||
      !stun_msg_find_attr(msg, TURN_ATTR_ALTERNATE_SERVER, &v) ||
      stun_msg_decode_address(msg, TURN_ATTR_ALTERNATE_SERVER, v, false,
                              &alt) != 0)
    return fail(c,
                "TURN server %s answered 300 (Try Alternate) without a "
                "usable ALTERNATE-SERVER, or after %u redirects",
                turn_server_text(c, server), c->redirects);
  QP_LOG_INFO("TURN server %s redirects us (300) to %s",
              turn_server_text(c, server),
              udp_addr_to_string(&alt, server, sizeof(server)));
  c->redirects++;
  c->server = alt;
  c->realm[0] = '\0';
  c->nonce_len = 0;
  c->have_key = false;
  c->alloc_txn.active = false;
  int rc = turn_txn_start(&c->alloc_txn, TURN_METHOD_ALLOCATE, now_ns);
  return rc ? rc : TURN_RX_CONTROL;
}

static int alloc_refused(turn_client *c, const stun_msg *msg) {
  char server[UDP_ADDRSTRLEN], why[128];
  turn_server_text(c, server);
  turn_error_text(msg, why, sizeof(why));
  const char *user = c->cfg.username;
  switch (msg->error_code) {
  case TURN_ERROR_UNAUTHORIZED:
  case TURN_ERROR_WRONG_CREDENTIALS:
    return fail(c,
                "TURN server %s answered %d to user '%s': wrong credentials "
                "(realm '%s')",
                server, msg->error_code, user, c->realm);
  case TURN_ERROR_QUOTA_REACHED:
    return fail(c,
                "TURN server %s answered 486 to user '%s': allocation quota "
                "exceeded (the user already has as many relays as the "
                "server allows)",
                server, user);
  case TURN_ERROR_ADDRESS_FAMILY:
    return fail(c,
                "TURN server %s answered 440 to user '%s': it cannot relay "
                "over %s",
                server, user,
                c->cfg.relay_family == AF_INET6 ? "IPv6" : "IPv4");
  case TURN_ERROR_INSUFFICIENT_CAPACITY:
    return fail(c,
                "TURN server %s answered 508 to user '%s': the server has "
                "no relay port left",
                server, user);
  default:
    return fail(c, "TURN server %s refused the Allocate of user '%s': %s",
                server, user, why);
  }
}

static int on_alloc_error(turn_client *c, const stun_msg *msg,
                          uint64_t now_ns) {
  switch (turn_txn_challenge(c, &c->alloc_txn, msg, now_ns)) {
  case TURN_CHALLENGE_RETRY:
    return TURN_RX_CONTROL;
  case TURN_CHALLENGE_REJECTED:
    if (msg->error_code == TURN_ERROR_STALE_NONCE)
      break; /* retries used up: report the code as it is */
    return alloc_refused(c, msg);
  case TURN_CHALLENGE_NONE:
    if (msg->error_code == TURN_ERROR_TRY_ALTERNATE)
      return try_alternate(c, msg, now_ns);
    break;
  }
  return alloc_refused(c, msg);
}

static int on_refresh_answer(turn_client *c, const stun_msg *msg,
                             uint64_t now_ns) {
  char server[UDP_ADDRSTRLEN], why[128];
  if (msg->cls == STUN_CLASS_ERROR &&
      turn_txn_challenge(c, &c->alloc_txn, msg, now_ns) == TURN_CHALLENGE_RETRY)
    return TURN_RX_CONTROL;
  if (c->state == TURN_STATE_CLOSING) {
    /* Success, or 437: either way the allocation is gone. */
    c->alloc_txn.active = false;
    c->state = TURN_STATE_CLOSED;
    QP_LOG_DEBUG("TURN allocation on %s deallocated",
                 turn_server_text(c, server));
    return TURN_RX_CONTROL;
  }
  if (msg->cls == STUN_CLASS_ERROR)
    return fail(c, "TURN relay lost: server %s refused the Refresh: %s",
                turn_server_text(c, server),
                turn_error_text(msg, why, sizeof(why)));
  take_lifetime(c, msg);
  c->alloc_txn.active = false;
  c->refresh_ns = turn_refresh_time(now_ns, c->lifetime_s);
  QP_LOG_DEBUG("TURN allocation on %s refreshed for %u s",
               turn_server_text(c, server), c->lifetime_s);
  return TURN_RX_CONTROL;
}

static int on_alloc_answer(turn_client *c, const stun_msg *msg,
                           uint64_t now_ns) {
  if (!turn_response_trusted(c, &c->alloc_txn, msg))
    return TURN_RX_IGNORED;
  if (c->alloc_txn.method == TURN_METHOD_REFRESH)
    return on_refresh_answer(c, msg, now_ns);
  if (msg->cls == STUN_CLASS_SUCCESS)
    return on_allocated(c, msg, now_ns);
  return on_alloc_error(c, msg, now_ns);
}

static int on_stun(turn_client *c, const uint8_t *buf, size_t len,
                   uint64_t now_ns, turn_rx *rx) {
  stun_msg msg;
  if (!stun_msg_is_stun(buf, len) || stun_msg_parse(buf, len, &msg) != 0)
    return TURN_RX_IGNORED;
  if (msg.cls == STUN_CLASS_INDICATION && msg.method == TURN_METHOD_DATA)
    return c->state == TURN_STATE_ALLOCATED
               ? turn_peer_data_indication(&msg, rx)
               : TURN_RX_IGNORED;
  /* An error answer without ERROR-CODE is malformed: as if lost. */
  if ((msg.cls != STUN_CLASS_SUCCESS && msg.cls != STUN_CLASS_ERROR) ||
      (msg.cls == STUN_CLASS_ERROR && !msg.has_error_code))
    return TURN_RX_IGNORED;
  if (c->alloc_txn.active &&
      memcmp(msg.txid, c->alloc_txn.txid, STUN_TXID_SIZE) == 0 &&
      msg.method == c->alloc_txn.method)
    return on_alloc_answer(c, &msg, now_ns);
  return turn_peer_on_response(c, &msg, now_ns) ? TURN_RX_CONTROL
                                                : TURN_RX_IGNORED;
}

int turn_client_handle(turn_client *c, const uint8_t *buf, size_t len,
                       const udp_addr_t *from, uint64_t now_ns, turn_rx *rx) {
  if (!c || !buf || !from || !rx)
    return err_fail(QP_ERR_INVALID, "turn_client_handle: NULL argument");
  memset(rx, 0, sizeof(*rx));
  if (!turn_client_owns(c, from) || c->state == TURN_STATE_IDLE ||
      c->state == TURN_STATE_FAILED || c->state == TURN_STATE_CLOSED)
    return TURN_RX_IGNORED;
  int kind;
  if (turn_is_channel_data(buf, len))
    kind = c->state == TURN_STATE_ALLOCATED
               ? (int)turn_peer_channel_data(c, buf, len, rx)
               : TURN_RX_IGNORED;
  else
    kind = on_stun(c, buf, len, now_ns, rx);
  if (kind >= 0)
    rx->kind = (turn_rx_kind)kind;
  return kind;
}

int turn_client_close(turn_client *c, uint64_t now_ns) {
  if (!c)
    return err_fail(QP_ERR_INVALID, "turn_client_close: NULL client");
  turn_peer_stop_all(c);
  if (c->state != TURN_STATE_ALLOCATED) {
    c->alloc_txn.active = false;
    if (c->state != TURN_STATE_FAILED)
      c->state = TURN_STATE_CLOSED;
    return 0;
  }
  /* RFC 8656 section 7: "a client ... deletes the allocation by sending a
   * Refresh request with a LIFETIME of 0". */
  int rc = start_refresh(c, 0, now_ns);
  if (rc == 0)
    c->state = TURN_STATE_CLOSING;
  return rc;
}

turn_state turn_client_state(const turn_client *c) {
  return c ? c->state : TURN_STATE_IDLE;
}

const char *turn_state_name(turn_state state) {
  static const char *const names[] = {"idle",    "allocating", "allocated",
                                      "closing", "closed",     "failed"};
  return (unsigned)state < sizeof(names) / sizeof(names[0]) ? names[state]
                                                            : "?";
}

const udp_addr_t *turn_client_server(const turn_client *c) {
  return &c->server;
}

bool turn_client_owns(const turn_client *c, const udp_addr_t *from) {
  return c && from && udp_addr_equal(from, &c->server);
}

const char *turn_client_error(const turn_client *c) {
  return c ? c->error_msg : "";
}
