/* ctest: labels=unit */
/* The sans-I/O TURN client with a fake clock and a server scripted here:
 * the long-term credential exchange (the MESSAGE-INTEGRITY checked with a
 * key computed here with GnuTLS), 438, 300, refusals, the RFC 8489
 * retransmission schedule, refresh times, permissions, channels and the
 * data framing. No sockets: every datagram goes through memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "stun/stun_msg.h"
#include "tu.h"
#include "turn/turn_client.h"
#include "turn/turn_proto.h"
#include "udp/udp.h"

#define MS 1000000ull
#define S 1000000000ull
#define T0 (1000 * S) /* the fake clock starts here */

typedef struct script {
  turn_client c;
  udp_addr_t server, relayed, mapped, peer;
  uint64_t now;
  uint8_t key[16]; /* MD5("u:r:p"), computed here */
  uint8_t req[TURN_REQUEST_MAX];
  size_t req_len;
  stun_msg msg; /* the last request, parsed */
  udp_addr_t to;
} script;

static void script_init(script *s) {
  memset(s, 0, sizeof(*s));
  udp_addr_from_ip("192.0.2.1", 3478, &s->server);
  udp_addr_from_ip("192.0.2.1", 50000, &s->relayed);
  udp_addr_from_ip("198.51.100.7", 40000, &s->mapped);
  udp_addr_from_ip("203.0.113.9", 6000, &s->peer);
  s->now = T0;
  turn_config cfg = {.server = s->server};
  snprintf(cfg.username, sizeof(cfg.username), "u");
  snprintf(cfg.password, sizeof(cfg.password), "p");
  assert_int_equal(turn_client_init(&s->c, &cfg), 0);
  assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_MD5, "u:r:p", 5, s->key), 0);
}

/* The client must have a request due now; parse it into s->msg. */
static void expect_request(script *s, uint16_t method) {
  int rc = turn_client_poll(&s->c, s->now, s->req, sizeof(s->req), &s->req_len,
                            &s->to);
  if (rc != 1)
    fail_msg("expected a request, poll returned %d (%s)", rc,
             turn_client_error(&s->c));
  assert_int_equal(stun_msg_parse(s->req, s->req_len, &s->msg), 0);
  assert_int_equal(s->msg.method, method);
  assert_int_equal(s->msg.cls, STUN_CLASS_REQUEST);
  assert_true(s->msg.has_fingerprint);
}

static void expect_nothing_due(script *s) {
  size_t len;
  udp_addr_t to;
  uint8_t out[TURN_REQUEST_MAX];
  assert_int_equal(turn_client_poll(&s->c, s->now, out, sizeof(out), &len, &to),
                   0);
}

static uint32_t attr_u32(const stun_msg *m, uint16_t type) {
  stun_bytes v;
  assert_true(stun_msg_find_attr(m, type, &v));
  assert_int_equal(v.len, 4);
  return (uint32_t)v.data[0] << 24 | (uint32_t)v.data[1] << 16 |
         (uint32_t)v.data[2] << 8 | v.data[3];
}

/* A response to the last request, finished (integrity when key is not
 * NULL, FINGERPRINT) and fed to the client. */
typedef struct answer {
  stun_msg_writer w;
  uint8_t buf[1024];
} answer;

static stun_msg_writer *answer_begin(answer *a, const script *s,
                                     stun_class cls) {
  assert_int_equal(stun_msg_write_header(&a->w, a->buf, sizeof(a->buf),
                                         s->msg.method, cls, s->msg.txid),
                   0);
  return &a->w;
}

static int answer_send(answer *a, script *s, const uint8_t *key) {
  if (key)
    assert_int_equal(stun_msg_write_integrity(&a->w, key, 16), 0);
  assert_int_equal(stun_msg_write_fingerprint(&a->w), 0);
  turn_rx rx;
  return turn_client_handle(&s->c, a->buf, a->w.len, &s->server, s->now, &rx);
}

static int answer_error(script *s, int code, const char *realm,
                        const char *nonce, const uint8_t *key) {
  answer a;
  stun_msg_writer *w = answer_begin(&a, s, STUN_CLASS_ERROR);
  assert_int_equal(stun_msg_write_error_code(w, code, "scripted"), 0);
  if (realm)
    stun_msg_write_attr(w, STUN_ATTR_REALM, realm, strlen(realm));
  if (nonce)
    stun_msg_write_attr(w, STUN_ATTR_NONCE, nonce, strlen(nonce));
  return answer_send(&a, s, key);
}

static int answer_ok(script *s, uint32_t lifetime, const uint8_t *key) {
  answer a;
  stun_msg_writer *w = answer_begin(&a, s, STUN_CLASS_SUCCESS);
  if (s->msg.method == TURN_METHOD_ALLOCATE) {
    stun_msg_write_xor_address(w, TURN_ATTR_XOR_RELAYED_ADDRESS, &s->relayed);
    stun_msg_write_xor_address(w, STUN_ATTR_XOR_MAPPED_ADDRESS, &s->mapped);
  }
  if (lifetime)
    stun_msg_write_u32(w, TURN_ATTR_LIFETIME, lifetime);
  return answer_send(&a, s, key);
}

/* Allocate through the 401 challenge; ends ALLOCATED at s->now. */
static void allocate(script *s, uint32_t lifetime) {
  assert_int_equal(turn_client_allocate(&s->c, s->now), 0);
  expect_request(s, TURN_METHOD_ALLOCATE);
  assert_int_equal(answer_error(s, 401, "r", "n1", NULL), TURN_RX_CONTROL);
  expect_request(s, TURN_METHOD_ALLOCATE);
  assert_int_equal(answer_ok(s, lifetime, s->key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_state(&s->c), TURN_STATE_ALLOCATED);
}

static void long_term_credentials(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  /* MD5("u:r:p") as printed by md5sum. */
  static const uint8_t md5sum[16] = {0x44, 0xad, 0xd2, 0x2b, 0x6f, 0x31,
                                     0x79, 0xb7, 0x51, 0xea, 0xfd, 0x68,
                                     0xee, 0x37, 0x0f, 0x7d};
  tu_assert_same_bytes("MD5(u:r:p)", s.key, 16, md5sum, 16);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  assert_true(udp_addr_equal(&s.to, &s.server));
  /* The first request goes without credentials (RFC 8489 section 9.2.3). */
  assert_null(s.msg.username.data);
  assert_int_equal(s.msg.integrity_offset, 0);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_REQUESTED_TRANSPORT), 17u << 24);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_LIFETIME),
                   TURN_DEFAULT_LIFETIME_S);
  uint8_t first_txid[STUN_TXID_SIZE];
  memcpy(first_txid, s.msg.txid, sizeof(first_txid));

  assert_int_equal(answer_error(&s, 401, "r", "n1", NULL), TURN_RX_CONTROL);
  assert_true(s.c.have_key);
  tu_assert_same_bytes("client key", s.c.key, 16, s.key, 16);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  assert_memory_not_equal(s.msg.txid, first_txid, STUN_TXID_SIZE);
  tu_assert_same_bytes("USERNAME", s.msg.username.data, s.msg.username.len, "u",
                       1);
  tu_assert_same_bytes("REALM", s.msg.realm.data, s.msg.realm.len, "r", 1);
  tu_assert_same_bytes("NONCE", s.msg.nonce.data, s.msg.nonce.len, "n1", 2);
  assert_int_equal(stun_msg_check_integrity(&s.msg, s.key, 16), 0);

  /* A success whose integrity does not verify is not believed. */
  uint8_t wrong[16] = {1};
  assert_int_equal(answer_ok(&s, 600, wrong), TURN_RX_IGNORED);
  assert_int_equal(answer_ok(&s, 600, NULL), TURN_RX_IGNORED);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_ALLOCATING);
  assert_int_equal(answer_ok(&s, 600, s.key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_ALLOCATED);
  assert_true(udp_addr_equal(&s.c.relayed, &s.relayed));
  assert_true(udp_addr_equal(&s.c.mapped, &s.mapped));
  /* A late duplicate answer changes nothing. */
  assert_int_equal(answer_ok(&s, 600, s.key), TURN_RX_IGNORED);
}

/* RFC 8489 section 6.2.1: sends at 0, 500, 1500, 3500, 7500, 15500 and
 * 31500 ms, failure at 39500 ms; every retransmission is the same bytes. */
static void retransmission_schedule(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  static const uint64_t at_ms[] = {0, 500, 1500, 3500, 7500, 15500, 31500};
  uint8_t first[TURN_REQUEST_MAX];
  size_t first_len = 0;
  for (size_t i = 0; i < sizeof(at_ms) / sizeof(at_ms[0]); i++) {
    assert_int_equal(turn_client_deadline(&s.c), T0 + at_ms[i] * MS);
    s.now = T0 + at_ms[i] * MS - 1;
    expect_nothing_due(&s);
    s.now = T0 + at_ms[i] * MS;
    expect_request(&s, TURN_METHOD_ALLOCATE);
    if (i == 0) {
      memcpy(first, s.req, s.req_len);
      first_len = s.req_len;
    }
    tu_assert_same_bytes("retransmission", s.req, s.req_len, first, first_len);
    expect_nothing_due(&s);
  }
  assert_int_equal(turn_client_deadline(&s.c), T0 + 39500 * MS);
  s.now = T0 + 39500 * MS;
  uint8_t out[TURN_REQUEST_MAX];
  size_t len;
  udp_addr_t to;
  assert_int_equal(turn_client_poll(&s.c, s.now, out, sizeof(out), &len, &to),
                   QP_ERR_RELAY);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_FAILED);
  TU_ASSERT_CONTAINS(turn_client_error(&s.c),
                     "TURN server 192.0.2.1:3478 did not answer the Allocate "
                     "request of user 'u': unreachable, no response in "
                     "39500 ms (7 transmissions)");
  TU_ASSERT_CONTAINS(qp_last_error(), "no response in 39500 ms");
  assert_int_equal(turn_client_deadline(&s.c), UINT64_MAX);
}

static void stale_nonce_then_give_up(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  answer_error(&s, 401, "r", "n1", NULL);
  /* Each 438 brings a nonce the next request carries. */
  const char *nonces[] = {"n2", "n3"};
  for (size_t i = 0; i < 2; i++) {
    expect_request(&s, TURN_METHOD_ALLOCATE);
    assert_int_equal(answer_error(&s, 438, NULL, nonces[i], NULL),
                     TURN_RX_CONTROL);
    expect_request(&s, TURN_METHOD_ALLOCATE);
    tu_assert_same_bytes("NONCE", s.msg.nonce.data, s.msg.nonce.len, nonces[i],
                         2);
    assert_int_equal(stun_msg_check_integrity(&s.msg, s.key, 16), 0);
    if (i == 0)
      s.c.alloc_txn.next_ns = s.now; /* resend the same request at once */
  }
  /* TURN_MAX_AUTH_RETRIES (401 + two 438) used up: the next 438 ends it. */
  assert_int_equal(answer_error(&s, 438, NULL, "n4", NULL), QP_ERR_RELAY);
  TU_ASSERT_CONTAINS(turn_client_error(&s.c), "438 scripted");
}

static void refusals_have_clear_messages(void **state) {
  (void)state;
  static const struct {
    int code;
    const char *want;
  } cases[] = {
      {401, "TURN server 192.0.2.1:3478 answered 401 to user 'u': wrong "
            "credentials (realm 'r')"},
      {441, "answered 441 to user 'u': wrong credentials"},
      {486, "answered 486 to user 'u': allocation quota exceeded"},
      {508, "answered 508 to user 'u': the server has no relay port left"},
      {442, "refused the Allocate of user 'u': 442 scripted"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    static script s;
    script_init(&s);
    assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
    expect_request(&s, TURN_METHOD_ALLOCATE);
    answer_error(&s, 401, "r", "n1", NULL);
    expect_request(&s, TURN_METHOD_ALLOCATE);
    assert_int_equal(answer_error(&s, cases[i].code, NULL, NULL, NULL),
                     QP_ERR_RELAY);
    assert_int_equal(turn_client_state(&s.c), TURN_STATE_FAILED);
    TU_ASSERT_CONTAINS(turn_client_error(&s.c), cases[i].want);
    expect_nothing_due(&s);
  }
}

/* REQUESTED-ADDRESS-FAMILY only when a family is asked for; 440 names it. */
static void relay_family_is_requested(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  stun_bytes v;
  assert_false(
      stun_msg_find_attr(&s.msg, TURN_ATTR_REQUESTED_ADDRESS_FAMILY, &v));
  script_init(&s);
  s.c.cfg.relay_family = AF_INET6;
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_REQUESTED_ADDRESS_FAMILY),
                   0x02000000u);
  answer_error(&s, 401, "r", "n1", NULL);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_REQUESTED_ADDRESS_FAMILY),
                   0x02000000u);
  assert_int_equal(answer_error(&s, 440, NULL, NULL, NULL), QP_ERR_RELAY);
  TU_ASSERT_CONTAINS(turn_client_error(&s.c),
                     "answered 440 to user 'u': it cannot relay over IPv6");
  turn_config bad = s.c.cfg;
  bad.relay_family = 12345;
  assert_int_equal(turn_client_init(&s.c, &bad), QP_ERR_INVALID);
}

static int answer_300(script *s, const udp_addr_t *alt) {
  answer a;
  stun_msg_writer *w = answer_begin(&a, s, STUN_CLASS_ERROR);
  stun_msg_write_error_code(w, 300, "Try Alternate");
  if (alt)
    stun_msg_write_address(w, TURN_ATTR_ALTERNATE_SERVER, alt);
  return answer_send(&a, s, NULL);
}

static void try_alternate_is_bounded(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  udp_addr_t alt[3];
  for (int i = 0; i < 3; i++)
    udp_addr_from_ip("192.0.2.50", (uint16_t)(4000 + i), &alt[i]);
  for (int i = 0; i < TURN_MAX_REDIRECTS; i++) {
    expect_request(&s, TURN_METHOD_ALLOCATE);
    assert_int_equal(answer_300(&s, &alt[i]), TURN_RX_CONTROL);
    /* Answers now come from, and requests go to, the alternate. */
    s.server = alt[i];
    expect_request(&s, TURN_METHOD_ALLOCATE);
    assert_true(udp_addr_equal(&s.to, &alt[i]));
    assert_null(s.msg.username.data);
    s.c.alloc_txn.next_ns = s.now;
  }
  expect_request(&s, TURN_METHOD_ALLOCATE);
  assert_int_equal(answer_300(&s, &alt[2]), QP_ERR_RELAY);
  TU_ASSERT_CONTAINS(turn_client_error(&s.c), "after 2 redirects");
}

static void refresh_times_and_deallocate(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  allocate(&s, 600);
  /* Refreshed a minute before the 600 s end. */
  assert_int_equal(turn_client_deadline(&s.c), T0 + 540 * S);
  s.now = T0 + 540 * S - 1;
  expect_nothing_due(&s);
  s.now = T0 + 540 * S;
  expect_request(&s, TURN_METHOD_REFRESH);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_LIFETIME), 600);
  assert_int_equal(stun_msg_check_integrity(&s.msg, s.key, 16), 0);
  /* The server grants less: 100 s, refreshed at half of it. */
  assert_int_equal(answer_ok(&s, 100, s.key), TURN_RX_CONTROL);
  assert_int_equal(s.c.lifetime_s, 100);
  assert_int_equal(turn_client_deadline(&s.c), s.now + 50 * S);

  assert_int_equal(turn_client_close(&s.c, s.now), 0);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_CLOSING);
  expect_request(&s, TURN_METHOD_REFRESH);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_LIFETIME), 0);
  assert_int_equal(answer_ok(&s, 0, s.key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_CLOSED);
  assert_int_equal(turn_client_deadline(&s.c), UINT64_MAX);
}

static void refresh_refused_is_relay_lost(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  allocate(&s, 600);
  s.now = T0 + 540 * S;
  expect_request(&s, TURN_METHOD_REFRESH);
  assert_int_equal(answer_error(&s, 437, NULL, NULL, s.key), QP_ERR_RELAY);
  TU_ASSERT_CONTAINS(turn_client_error(&s.c),
                     "TURN relay lost: server 192.0.2.1:3478 refused the "
                     "Refresh: 437");
}

static void permissions_and_channels(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  /* Asked for before the allocation: waits for it. */
  assert_int_equal(turn_client_permit(&s.c, &s.peer, s.now), 0);
  assert_int_equal(turn_client_permission(&s.c, &s.peer), TURN_PEER_PENDING);
  allocate(&s, 600);
  expect_request(&s, TURN_METHOD_CREATE_PERMISSION);
  stun_bytes v;
  udp_addr_t got;
  assert_true(stun_msg_find_attr(&s.msg, TURN_ATTR_XOR_PEER_ADDRESS, &v));
  assert_int_equal(stun_msg_decode_address(&s.msg, TURN_ATTR_XOR_PEER_ADDRESS,
                                           v, true, &got),
                   0);
  assert_true(udp_addr_equal(&got, &s.peer));
  assert_int_equal(stun_msg_check_integrity(&s.msg, s.key, 16), 0);
  assert_int_equal(answer_ok(&s, 0, s.key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_permission(&s.c, &s.peer), TURN_PEER_READY);
  /* Refreshed a minute before its 300 s end. */
  assert_int_equal(s.c.peers[0].permission_refresh_ns, s.now + 240 * S);

  /* Before a channel, data goes as a Send indication. */
  uint8_t out[128];
  size_t len;
  assert_int_equal(turn_client_wrap(&s.c, &s.peer, (const uint8_t *)"hi", 2,
                                    out, sizeof(out), &len),
                   0);
  stun_msg ind;
  assert_int_equal(stun_msg_parse(out, len, &ind), 0);
  assert_int_equal(ind.method, TURN_METHOD_SEND);
  assert_int_equal(ind.cls, STUN_CLASS_INDICATION);
  assert_true(stun_msg_find_attr(&ind, TURN_ATTR_DATA, &v));
  tu_assert_same_bytes("DATA", v.data, v.len, "hi", 2);
  assert_true(len <= 2 + TURN_SEND_OVERHEAD);

  assert_int_equal(turn_client_bind(&s.c, &s.peer, s.now), 0);
  expect_request(&s, TURN_METHOD_CHANNEL_BIND);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_CHANNEL_NUMBER),
                   TURN_CHANNEL_MIN << 16);
  assert_int_equal(turn_client_channel(&s.c, &s.peer), 0); /* not yet */
  assert_int_equal(answer_ok(&s, 0, s.key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_channel(&s.c, &s.peer), TURN_CHANNEL_MIN);
  assert_int_equal(s.c.peers[0].binding_refresh_ns, s.now + 540 * S);
  assert_int_equal(turn_client_wrap(&s.c, &s.peer, (const uint8_t *)"hi", 2,
                                    out, sizeof(out), &len),
                   0);
  static const uint8_t framed[] = {0x40, 0x00, 0x00, 0x02, 'h', 'i'};
  tu_assert_same_bytes("ChannelData", out, len, framed, sizeof(framed));

  /* At 240 s the permission is refreshed, the channel is not yet. */
  s.now += 240 * S;
  expect_request(&s, TURN_METHOD_CREATE_PERMISSION);
  assert_int_equal(answer_ok(&s, 0, s.key), TURN_RX_CONTROL);
  expect_nothing_due(&s);
  /* 540 s after the bind and the allocation: both are refreshed, and the
   * permission again (its refresh came due at 480 s). */
  s.now += 300 * S;
  expect_request(&s, TURN_METHOD_REFRESH);
  answer_ok(&s, 600, s.key);
  expect_request(&s, TURN_METHOD_CREATE_PERMISSION);
  answer_ok(&s, 0, s.key);
  expect_request(&s, TURN_METHOD_CHANNEL_BIND);
  assert_int_equal(attr_u32(&s.msg, TURN_ATTR_CHANNEL_NUMBER),
                   TURN_CHANNEL_MIN << 16);
  answer_ok(&s, 0, s.key);

  /* A refused permission fails that peer only. */
  udp_addr_t other;
  udp_addr_from_ip("203.0.113.10", 7000, &other);
  assert_int_equal(turn_client_permit(&s.c, &other, s.now), 0);
  expect_request(&s, TURN_METHOD_CREATE_PERMISSION);
  assert_int_equal(answer_error(&s, 403, NULL, NULL, s.key), TURN_RX_CONTROL);
  assert_int_equal(turn_client_permission(&s.c, &other), TURN_PEER_FAILED);
  TU_ASSERT_CONTAINS(turn_client_peer_error(&s.c, &other),
                     "CreatePermission for peer 203.0.113.10:7000 was "
                     "refused: 403");
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_ALLOCATED);
  assert_int_equal(turn_client_channel(&s.c, &s.peer), TURN_CHANNEL_MIN);
}

static void incoming_data(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  allocate(&s, 600);
  turn_client_bind(&s.c, &s.peer, s.now);
  expect_request(&s, TURN_METHOD_CHANNEL_BIND);
  answer_ok(&s, 0, s.key);

  /* A Data indication (RFC 8656 section 11.4). */
  uint8_t buf[128], txid[STUN_TXID_SIZE] = {7};
  stun_msg_writer w;
  stun_msg_write_header(&w, buf, sizeof(buf), TURN_METHOD_DATA,
                        STUN_CLASS_INDICATION, txid);
  stun_msg_write_xor_address(&w, TURN_ATTR_XOR_PEER_ADDRESS, &s.peer);
  stun_msg_write_attr(&w, TURN_ATTR_DATA, "from peer", 9);
  turn_rx rx;
  assert_int_equal(turn_client_handle(&s.c, buf, w.len, &s.server, s.now, &rx),
                   TURN_RX_DATA);
  assert_int_equal(rx.kind, TURN_RX_DATA);
  assert_true(udp_addr_equal(&rx.peer, &s.peer));
  tu_assert_same_bytes("indication data", rx.data, rx.len, "from peer", 9);

  /* ChannelData on our channel, then on one we never bound. */
  uint8_t cd[16] = {0x40, 0x00, 0x00, 0x03, 'a', 'b', 'c'};
  assert_int_equal(turn_client_handle(&s.c, cd, 7, &s.server, s.now, &rx),
                   TURN_RX_DATA);
  assert_true(udp_addr_equal(&rx.peer, &s.peer));
  tu_assert_same_bytes("channel data", rx.data, rx.len, "abc", 3);
  cd[1] = 0x01;
  assert_int_equal(turn_client_handle(&s.c, cd, 7, &s.server, s.now, &rx),
                   TURN_RX_IGNORED);
  /* Anything from another address is not the relay's. */
  cd[1] = 0x00;
  assert_int_equal(turn_client_handle(&s.c, cd, 7, &s.peer, s.now, &rx),
                   TURN_RX_IGNORED);
  assert_false(turn_client_owns(&s.c, &s.peer));
  assert_true(turn_client_owns(&s.c, &s.server));
}

static void misuse_is_reported(void **state) {
  (void)state;
  static script s;
  script_init(&s);
  uint8_t out[64];
  size_t len;
  assert_int_equal(turn_client_wrap(&s.c, &s.peer, (const uint8_t *)"x", 1, out,
                                    sizeof(out), &len),
                   QP_ERR_STATE);
  turn_config empty = {0};
  assert_int_equal(turn_client_init(&s.c, &empty), QP_ERR_INVALID);
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  assert_int_equal(turn_client_allocate(&s.c, s.now), QP_ERR_STATE);
  for (int i = 0; i < TURN_MAX_PEERS; i++) {
    udp_addr_t p;
    udp_addr_from_ip("203.0.113.1", (uint16_t)(1000 + i), &p);
    assert_int_equal(turn_client_permit(&s.c, &p, s.now), 0);
  }
  udp_addr_t extra;
  udp_addr_from_ip("203.0.113.2", 1, &extra);
  assert_int_equal(turn_client_permit(&s.c, &extra, s.now), QP_ERR_NOMEM);
  /* Closing before the allocation answered ends at once. */
  assert_int_equal(turn_client_close(&s.c, s.now), 0);
  assert_int_equal(turn_client_state(&s.c), TURN_STATE_CLOSED);
  expect_nothing_due(&s);
}

/* Mutation fuzz: valid answers, indications and ChannelData with a few
 * bytes changed (FINGERPRINT recomputed so the mutation reaches the TURN
 * logic), fed to clients in every state. Nothing may crash (run under
 * ASan in the sanitizer pass), data must point inside the datagram, and
 * the only error is QP_ERR_RELAY. */
#define FUZZ_ROUNDS 20000
#define FUZZ_SEED 0x7452u

static uint32_t fuzz_rand(uint32_t *x) {
  *x ^= *x << 13; /* xorshift32: deterministic, so a failure replays */
  *x ^= *x >> 17;
  *x ^= *x << 5;
  return *x;
}

static void refingerprint(uint8_t *buf, size_t len) {
  if (len < STUN_HEADER_SIZE + 8 || buf[len - 8] != 0x80 ||
      buf[len - 7] != 0x28)
    return;
  uint32_t crc = stun_msg_crc32(buf, len - 8) ^ STUN_FINGERPRINT_XOR;
  for (int i = 0; i < 4; i++)
    buf[len - 4 + i] = (uint8_t)(crc >> (24 - 8 * i));
}

typedef struct sample {
  uint8_t buf[256];
  size_t len;
} sample;

static void take_sample(sample *out, const answer *a) {
  memcpy(out->buf, a->buf, a->w.len);
  out->len = a->w.len;
}

static void garbage_never_breaks_the_client(void **state) {
  (void)state;
  static script s;
  static sample samples[5];
  script_init(&s);
  assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
  expect_request(&s, TURN_METHOD_ALLOCATE);
  answer a;
  stun_msg_writer *w = answer_begin(&a, &s, STUN_CLASS_ERROR);
  stun_msg_write_error_code(w, 401, "Unauthorized");
  stun_msg_write_attr(w, STUN_ATTR_REALM, "r", 1);
  stun_msg_write_attr(w, STUN_ATTR_NONCE, "n1", 2);
  stun_msg_write_fingerprint(w);
  take_sample(&samples[0], &a);
  w = answer_begin(&a, &s, STUN_CLASS_ERROR);
  stun_msg_write_error_code(w, 300, "Try Alternate");
  stun_msg_write_address(w, TURN_ATTR_ALTERNATE_SERVER, &s.relayed);
  stun_msg_write_fingerprint(w);
  take_sample(&samples[1], &a);
  w = answer_begin(&a, &s, STUN_CLASS_SUCCESS);
  stun_msg_write_xor_address(w, TURN_ATTR_XOR_RELAYED_ADDRESS, &s.relayed);
  stun_msg_write_u32(w, TURN_ATTR_LIFETIME, 600);
  stun_msg_write_fingerprint(w);
  take_sample(&samples[2], &a);
  uint8_t txid[STUN_TXID_SIZE] = {9};
  stun_msg_write_header(&a.w, a.buf, sizeof(a.buf), TURN_METHOD_DATA,
                        STUN_CLASS_INDICATION, txid);
  stun_msg_write_xor_address(&a.w, TURN_ATTR_XOR_PEER_ADDRESS, &s.peer);
  stun_msg_write_attr(&a.w, TURN_ATTR_DATA, "payload", 7);
  stun_msg_write_fingerprint(&a.w);
  take_sample(&samples[3], &a);
  static const uint8_t cd[] = {0x40, 0x00, 0x00, 0x04, 'd', 'a', 't', 'a'};
  memcpy(samples[4].buf, cd, sizeof(cd));
  samples[4].len = sizeof(cd);

  uint32_t rng = FUZZ_SEED;
  size_t data_seen = 0, errors = 0;
  for (int round = 0; round < FUZZ_ROUNDS; round++) {
    if (round % 500 == 0) { /* a fresh client, in a state of its own */
      script_init(&s);
      if ((round / 500) % 2) {
        allocate(&s, 600);
        turn_client_bind(&s.c, &s.peer, s.now);
        expect_request(&s, TURN_METHOD_CHANNEL_BIND);
      } else {
        assert_int_equal(turn_client_allocate(&s.c, s.now), 0);
        expect_request(&s, TURN_METHOD_ALLOCATE);
      }
    }
    const sample *from = &samples[fuzz_rand(&rng) % 5];
    uint8_t buf[sizeof(from->buf)];
    size_t len = from->len;
    memcpy(buf, from->buf, len);
    /* Answers get the method and txid of the request in flight (keeping
     * their class bits, 0x0110 of the type). */
    if (from != &samples[3] && from != &samples[4]) {
      uint16_t type = (uint16_t)((s.req[0] << 8 | s.req[1]) & ~0x0110) |
                      (uint16_t)((buf[0] << 8 | buf[1]) & 0x0110);
      buf[0] = (uint8_t)(type >> 8);
      buf[1] = (uint8_t)type;
      memcpy(buf + 8, s.msg.txid, STUN_TXID_SIZE);
    }
    for (uint32_t k = fuzz_rand(&rng) % 4 + 1; k > 0; k--)
      buf[fuzz_rand(&rng) % len] ^= (uint8_t)(1u << (fuzz_rand(&rng) % 8));
    if (fuzz_rand(&rng) % 8 == 0)
      len = fuzz_rand(&rng) % len;
    refingerprint(buf, len);
    turn_rx rx;
    int kind = turn_client_handle(&s.c, buf, len, &s.server, s.now, &rx);
    if (kind == TURN_RX_DATA) {
      assert_true(rx.data >= buf && rx.data + rx.len <= buf + len);
      data_seen++;
    } else if (kind < 0) {
      assert_int_equal(kind, QP_ERR_RELAY);
      errors++;
    } else {
      assert_true(kind == TURN_RX_IGNORED || kind == TURN_RX_CONTROL);
    }
    assert_true(turn_client_state(&s.c) <= TURN_STATE_FAILED);
  }
  print_message("%d mutated datagrams: %zu delivered data, %zu ended an "
                "allocation\n",
                FUZZ_ROUNDS, data_seen, errors);
  assert_true(data_seen > 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(long_term_credentials),
      cmocka_unit_test(retransmission_schedule),
      cmocka_unit_test(stale_nonce_then_give_up),
      cmocka_unit_test(refusals_have_clear_messages),
      cmocka_unit_test(relay_family_is_requested),
      cmocka_unit_test(try_alternate_is_bounded),
      cmocka_unit_test(refresh_times_and_deallocate),
      cmocka_unit_test(refresh_refused_is_relay_lost),
      cmocka_unit_test(permissions_and_channels),
      cmocka_unit_test(incoming_data),
      cmocka_unit_test(misuse_is_reported),
      cmocka_unit_test(garbage_never_breaks_the_client),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
