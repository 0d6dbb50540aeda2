/* ctest: labels=unit */
/*
 * test_trav_upgrade.c: the direct-pair checks that run under a relayed
 * connection (trav_upgrade.h), sans-I/O, two sides wired by hand with the
 * real responders: a pair validates only when its check is answered from
 * where it went with the peer's integrity; checks are paced (Ta), retried
 * with a doubling gap up to 4 s for 30 s and every 15 s after; the peer's
 * authenticated check triggers one back and teaches a peer-reflexive pair;
 * forged, foreign, asymmetric, error and junk answers validate nothing;
 * argument and capacity errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "test_trav_tu.h"
#include "traversal/trav_upgrade.h"

/* Two sides: a (the client, controlled) at addr_a and b (the server,
 * controlling) at addr_b, each with its upgrader and its responder. */
typedef struct side {
  trav_creds_t creds;
  trav_role_t role;
  trav_upgrade_t *u;
  trav_responder_t *r;
  udp_addr_t addr;
} side_t;

typedef struct fixture {
  side_t a, b;
} fixture_t;

static void side_init(side_t *s, side_t *peer, const char *ip, uint16_t port) {
  assert_int_equal(udp_addr_from_ip(ip, port, &s->addr), 0);
  assert_int_equal(trav_upgrade_create(&s->creds, &peer->creds, &s->role, &s->u), 0);
  assert_int_equal(trav_responder_create(&s->creds, &peer->creds, &s->role, &s->r), 0);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  tt_creds(&f->a.creds, "clientside");
  tt_creds(&f->b.creds, "serverside");
  f->a.role = (trav_role_t){false, 11};
  f->b.role = (trav_role_t){true, 22};
  side_init(&f->a, &f->b, "198.51.100.2", 40000);
  side_init(&f->b, &f->a, "192.0.2.2", 50000);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  trav_upgrade_destroy(f->a.u);
  trav_upgrade_destroy(f->b.u);
  trav_responder_destroy(f->a.r);
  trav_responder_destroy(f->b.r);
  free(f);
  return 0;
}

/* from's next due check at now_ms: delivered to `to` (upgrader first, then
 * its responder, as the portal does); the answer goes back to from's
 * upgrader from `answer_from`. Returns the check's destination. */
static udp_addr_t exchange(side_t *from, side_t *to, int64_t now_ms,
                           const udp_addr_t *answer_from) {
  uint8_t check[TRAV_UPGRADE_CHECK_MAX], resp[TRAV_RESPONSE_MAX];
  udp_addr_t dest;
  size_t n = trav_upgrade_poll(from->u, now_ms, check, sizeof(check), &dest);
  assert_true(n > 0);
  assert_int_equal(trav_upgrade_on_datagram(to->u, check, n, &from->addr, now_ms),
                   TRAV_UPGRADE_REQUEST);
  size_t rn = trav_responder_handle(to->r, check, n, &from->addr, resp, sizeof(resp));
  assert_true(rn > 0);
  assert_int_equal(trav_upgrade_on_datagram(from->u, resp, rn, answer_from, now_ms),
                   TRAV_UPGRADE_RESPONSE);
  return dest;
}

static void test_both_sides_validate(void **state) {
  fixture_t *f = *state;
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_SRFLX), 0);
  assert_int_equal(trav_upgrade_add_pair(f->b.u, &f->a.addr, QP_PATH_SRFLX), 0);
  udp_addr_t got;
  int kind = 0;
  assert_false(trav_upgrade_validated(f->a.u, &got, &kind));
  udp_addr_t dest = exchange(&f->a, &f->b, 1000, &f->b.addr);
  assert_true(udp_addr_equal(&dest, &f->b.addr));
  assert_true(trav_upgrade_validated(f->a.u, &got, &kind));
  assert_true(udp_addr_equal(&got, &f->b.addr));
  assert_int_equal(kind, QP_PATH_SRFLX);
  /* b heard a's check from a's address: evidence, and a triggered check
   * back, due at once. */
  assert_true(trav_upgrade_heard_from(f->b.u, &f->a.addr));
  assert_int_equal(trav_upgrade_next_ms(f->b.u), 0);
  exchange(&f->b, &f->a, 1000, &f->a.addr);
  assert_true(trav_upgrade_validated(f->b.u, &got, &kind));
  assert_true(udp_addr_equal(&got, &f->a.addr));
  /* Validated pairs are not checked again. */
  uint8_t buf[TRAV_UPGRADE_CHECK_MAX];
  assert_int_equal(trav_upgrade_poll(f->a.u, 100000, buf, sizeof(buf), &got), 0);
  assert_int_equal(trav_upgrade_next_ms(f->a.u), INT64_MAX);
  char d[160];
  trav_upgrade_describe(f->a.u, d, sizeof(d));
  assert_string_equal(d, "1 direct pair, 1 checks sent, 1 answered, 1 checks from the peer");
}

/* Send times of every check over `until_ms`, stepping 1 ms, no answers. */
static size_t record(trav_upgrade_t *u, int64_t until_ms, int64_t *when,
                     udp_addr_t *dest, size_t cap) {
  uint8_t buf[TRAV_UPGRADE_CHECK_MAX];
  size_t n = 0;
  for (int64_t t = 0; t <= until_ms && n < cap; t++) {
    int64_t next = trav_upgrade_next_ms(u);
    assert_true(next != INT64_MAX); /* it never runs dry: slow phase */
    if (next > t) {
      t = next - 1; /* nothing before next_ms: jump there */
      continue;
    }
    size_t len = trav_upgrade_poll(u, t, buf, sizeof(buf), &dest[n]);
    if (len > 0)
      when[n++] = t;
  }
  return n;
}

static void test_pacing_backoff_slow_phase(void **state) {
  fixture_t *f = *state;
  udp_addr_t p[3];
  for (int i = 0; i < 3; i++) {
    assert_int_equal(udp_addr_from_ip("203.0.113.50", (uint16_t)(1000 + i), &p[i]), 0);
    assert_int_equal(trav_upgrade_add_pair(f->a.u, &p[i], QP_PATH_SRFLX), 0);
  }
  int64_t when[200];
  udp_addr_t dest[200];
  size_t n = record(f->a.u, 100000, when, dest, 200);
  for (size_t k = 1; k < n; k++) /* Ta between any two checks */
    assert_true(when[k] - when[k - 1] >= TRAV_UPGRADE_TA_MS);
  /* Per pair: gaps 500, 1000, 2000, 4000, 4000, ... (each late by at most
   * the pacing of the other two) while under 30 s, then 15 s. */
  for (int i = 0; i < 3; i++) {
    int64_t last = -1, gap = TRAV_UPGRADE_RTO_MS;
    int checks = 0;
    for (size_t k = 0; k < n; k++) {
      if (!udp_addr_equal(&dest[k], &p[i]))
        continue;
      checks++;
      if (last >= 0) {
        int64_t want = last < TRAV_UPGRADE_FAST_MS ? gap : TRAV_UPGRADE_SLOW_MS;
        assert_in_range(when[k] - last, want, want + 2 * TRAV_UPGRADE_TA_MS);
        if (last < TRAV_UPGRADE_FAST_MS && gap < TRAV_UPGRADE_RTO_MAX_MS)
          gap *= 2;
      }
      last = when[k];
    }
    /* 0, .5, 1.5, 3.5, 7.5, 11.5 ... 27.5, 31.5 s: 10 in the fast phase,
     * then every 15 s to 100 s: 4 more (46.5, 61.5, 76.5, 91.5). */
    assert_in_range(checks, 13, 15);
  }
  assert_int_equal(trav_upgrade_checks_sent(f->a.u), n);
}

/* The relayed path stalls: every pair still checking is due at once, and
 * its retries start again at 0.5 s; a validated pair stays quiet. */
static void test_hurry(void **state) {
  fixture_t *f = *state;
  udp_addr_t other, dest;
  assert_int_equal(udp_addr_from_ip("203.0.113.50", 1000, &other), 0);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &other, QP_PATH_SRFLX), 0);
  int64_t when[20];
  udp_addr_t to[20];
  size_t n = record(f->a.u, 10000, when, to, 20); /* 0, .5, 1.5, 3.5, 7.5 */
  assert_int_equal(n, 5);
  assert_int_equal(trav_upgrade_next_ms(f->a.u), 11500);
  trav_upgrade_hurry(f->a.u);
  assert_int_equal(trav_upgrade_next_ms(f->a.u), when[n - 1] + TRAV_UPGRADE_TA_MS);
  uint8_t buf[TRAV_UPGRADE_CHECK_MAX];
  assert_true(trav_upgrade_poll(f->a.u, 10000, buf, sizeof(buf), &dest) > 0);
  assert_int_equal(trav_upgrade_next_ms(f->a.u), 10000 + TRAV_UPGRADE_RTO_MS);
  trav_upgrade_hurry(NULL);
}

static void test_triggered_peer_reflexive(void **state) {
  fixture_t *f = *state;
  uint8_t check[TRAV_UPGRADE_CHECK_MAX], mine[TRAV_UPGRADE_CHECK_MAX];
  udp_addr_t nat_port, dest;
  /* b's check reaches a from a port a never heard of (b's NAT mapped it
   * per destination): a learns it as peer-reflexive and checks it. */
  assert_int_equal(udp_addr_from_ip("192.0.2.2", 50123, &nat_port), 0);
  assert_int_equal(trav_upgrade_add_pair(f->b.u, &f->a.addr, QP_PATH_HOST), 0);
  size_t n = trav_upgrade_poll(f->b.u, 0, check, sizeof(check), &dest);
  assert_true(n > 0);
  assert_int_equal(trav_upgrade_pair_count(f->a.u), 0);
  assert_false(trav_upgrade_heard_from(f->a.u, &nat_port));
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, check, n, &nat_port, 0),
                   TRAV_UPGRADE_REQUEST);
  assert_int_equal(trav_upgrade_pair_count(f->a.u), 1);
  assert_true(trav_upgrade_heard_from(f->a.u, &nat_port));
  assert_int_equal(trav_upgrade_kind_of(f->a.u, &nat_port), QP_PATH_PRFLX);
  assert_true(trav_upgrade_poll(f->a.u, 0, mine, sizeof(mine), &dest) > 0);
  assert_true(udp_addr_equal(&dest, &nat_port));
  /* A check keyed with the wrong pwd, or from another run's ufrag, is not
   * the peer's: no pair, no trigger. */
  trav_creds_t wrong = f->a.creds;
  snprintf(wrong.pwd, sizeof(wrong.pwd), "%s", "notTheRightPassword0123456789");
  uint8_t txid[STUN_TXID_SIZE];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  n = trav_check_write(&f->b.creds, &wrong, txid, true, 22, 1, false, check, sizeof(check));
  udp_addr_t stranger;
  assert_int_equal(udp_addr_from_ip("203.0.113.99", 7, &stranger), 0);
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, check, n, &stranger, 0),
                   TRAV_UPGRADE_NOT_OURS);
  trav_creds_t other = f->b.creds;
  snprintf(other.ufrag, sizeof(other.ufrag), "%s", "otherrun");
  n = trav_check_write(&other, &f->a.creds, txid, true, 22, 1, false, check, sizeof(check));
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, check, n, &stranger, 0),
                   TRAV_UPGRADE_NOT_OURS);
  assert_int_equal(trav_upgrade_pair_count(f->a.u), 1);
}

/* a's check to b, and b's honest answer (from b's address). */
static size_t check_and_answer(fixture_t *f, uint8_t *resp, size_t cap) {
  uint8_t check[TRAV_UPGRADE_CHECK_MAX];
  udp_addr_t dest;
  size_t n = trav_upgrade_poll(f->a.u, 0, check, sizeof(check), &dest);
  assert_true(n > 0);
  size_t rn = trav_responder_handle(f->b.r, check, n, &f->a.addr, resp, cap);
  assert_true(rn > 0);
  return rn;
}

static void test_bad_answers_validate_nothing(void **state) {
  fixture_t *f = *state;
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_SRFLX), 0);
  uint8_t resp[TRAV_RESPONSE_MAX];
  size_t rn = check_and_answer(f, resp, sizeof(resp));
  udp_addr_t elsewhere, got;
  int kind;
  /* From another address than the check went to (RFC 8445 7.2.5.2.1). */
  assert_int_equal(udp_addr_from_ip("192.0.2.2", 50001, &elsewhere), 0);
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, resp, rn, &elsewhere, 0),
                   TRAV_UPGRADE_RESPONSE);
  assert_false(trav_upgrade_validated(f->a.u, &got, &kind));
  /* One byte of the integrity flipped. */
  uint8_t forged[TRAV_RESPONSE_MAX];
  memcpy(forged, resp, rn);
  forged[rn - 12] ^= 1; /* in MESSAGE-INTEGRITY, before FINGERPRINT */
  assert_int_not_equal(trav_upgrade_on_datagram(f->a.u, forged, rn, &f->b.addr, 0),
                       TRAV_UPGRADE_REQUEST);
  assert_false(trav_upgrade_validated(f->a.u, &got, &kind));
  /* Truncated, QUIC, not ours at all. */
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, resp, rn - 8, &f->b.addr, 0),
                   TRAV_UPGRADE_NOT_OURS);
  const uint8_t quic[] = {0x43, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, quic, sizeof(quic), &f->b.addr, 0),
                   TRAV_UPGRADE_NOT_OURS);
  assert_int_equal(trav_upgrade_on_datagram(NULL, resp, rn, &f->b.addr, 0),
                   TRAV_UPGRADE_NOT_OURS);
  /* An unknown transaction (a late answer to the traversal's checks). */
  uint8_t other[TRAV_RESPONSE_MAX];
  memcpy(other, resp, rn);
  other[8] ^= 0xff;
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, other, rn, &f->b.addr, 0),
                   TRAV_UPGRADE_NOT_OURS);
  assert_false(trav_upgrade_validated(f->a.u, &got, &kind));
  /* The honest answer from the right address still validates it. */
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, resp, rn, &f->b.addr, 0),
                   TRAV_UPGRADE_RESPONSE);
  assert_true(trav_upgrade_validated(f->a.u, &got, &kind));
}

static void test_error_answer_validates_nothing(void **state) {
  fixture_t *f = *state;
  /* b's responder claims a's role with a larger tie-breaker: it answers
   * 487 Role Conflict, authenticated, which validates nothing. */
  trav_responder_destroy(f->b.r);
  trav_role_t clash = {false, UINT64_MAX};
  assert_int_equal(trav_responder_create(&f->b.creds, &f->a.creds, &clash, &f->b.r), 0);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_HOST), 0);
  uint8_t resp[TRAV_RESPONSE_MAX];
  uint8_t check[TRAV_UPGRADE_CHECK_MAX];
  udp_addr_t dest, got;
  size_t n = trav_upgrade_poll(f->a.u, 0, check, sizeof(check), &dest);
  stun_msg msg;
  assert_int_equal(stun_msg_parse(check, n, &msg), 0);
  uint8_t err[TRAV_RESPONSE_MAX];
  size_t en = 0;
  assert_int_equal(trav_check_answer(f->b.creds.ufrag, f->b.creds.pwd, f->a.creds.ufrag,
                                     &clash, &msg, &f->a.addr, err, sizeof(err), &en),
                   TRAV_REQ_ROLE_CONFLICT);
  assert_true(en > 0);
  (void)resp;
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, err, en, &f->b.addr, 0),
                   TRAV_UPGRADE_RESPONSE);
  int kind;
  assert_false(trav_upgrade_validated(f->a.u, &got, &kind));
}

static void test_prefers_host(void **state) {
  fixture_t *f = *state;
  udp_addr_t host, got;
  assert_int_equal(udp_addr_from_ip("10.0.1.2", 50000, &host), 0);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_SRFLX), 0);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &host, QP_PATH_HOST), 0);
  /* host goes first (same due time, better kind), srflx next. */
  uint8_t check[TRAV_UPGRADE_CHECK_MAX], resp[TRAV_RESPONSE_MAX];
  udp_addr_t dest[2];
  size_t len[2];
  uint8_t checks[2][TRAV_UPGRADE_CHECK_MAX];
  len[0] = trav_upgrade_poll(f->a.u, 0, checks[0], sizeof(check), &dest[0]);
  assert_int_equal(trav_upgrade_poll(f->a.u, 10, check, sizeof(check), &dest[1]), 0);
  len[1] = trav_upgrade_poll(f->a.u, TRAV_UPGRADE_TA_MS, checks[1], sizeof(check), &dest[1]);
  assert_true(len[0] > 0 && len[1] > 0);
  assert_true(udp_addr_equal(&dest[0], &host));
  assert_true(udp_addr_equal(&dest[1], &f->b.addr));
  /* srflx answers first, then host: host wins. */
  for (int k = 1; k >= 0; k--) {
    size_t rn = trav_responder_handle(f->b.r, checks[k], len[k], &f->a.addr, resp,
                                      sizeof(resp));
    assert_int_equal(trav_upgrade_on_datagram(f->a.u, resp, rn, &dest[k], 100),
                     TRAV_UPGRADE_RESPONSE);
  }
  int kind;
  assert_true(trav_upgrade_validated(f->a.u, &got, &kind));
  assert_int_equal(kind, QP_PATH_HOST);
  assert_true(udp_addr_equal(&got, &host));
  assert_string_equal(trav_upgrade_kind_name(kind), "host");
  assert_string_equal(trav_upgrade_kind_name(QP_PATH_RELAYED), "?");
  assert_string_equal(trav_upgrade_kind_name(QP_PATH_MAPPED), "port mapping");
}

static void test_argument_errors(void **state) {
  fixture_t *f = *state;
  trav_upgrade_t *u = (trav_upgrade_t *)1;
  trav_creds_t empty = {{0}, {0}};
  assert_int_equal(trav_upgrade_create(&empty, &f->b.creds, &f->a.role, &u), QP_ERR_INVALID);
  assert_null(u);
  assert_int_equal(trav_upgrade_create(&f->a.creds, &empty, &f->a.role, &u), QP_ERR_INVALID);
  udp_addr_t any, mcast, a;
  assert_int_equal(udp_addr_from_ip("0.0.0.0", 9, &any), 0);
  assert_int_equal(udp_addr_from_ip("224.0.0.1", 9, &mcast), 0);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &any, QP_PATH_HOST), QP_ERR_INVALID);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &mcast, QP_PATH_SRFLX), QP_ERR_INVALID);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_RELAYED), QP_ERR_INVALID);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_NONE), QP_ERR_INVALID);
  assert_int_equal(trav_upgrade_pair_count(f->a.u), 0);
  /* A relay's IP is never direct: not as a pair, nor learned from a check
   * of the peer that came through its allocation. */
  udp_addr_t turn, relayed;
  assert_int_equal(udp_addr_from_ip("203.0.113.10", 3478, &turn), 0);
  assert_int_equal(udp_addr_from_ip("203.0.113.10", 41000, &relayed), 0);
  assert_int_equal(trav_upgrade_exclude_ip(f->a.u, &turn), 0);
  assert_int_equal(trav_upgrade_exclude_ip(f->a.u, &turn), 0); /* once */
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &relayed, QP_PATH_PRFLX), QP_ERR_INVALID);
  assert_non_null(strstr(qp_last_error(), "relay"));
  uint8_t check[TRAV_UPGRADE_CHECK_MAX];
  assert_int_equal(trav_upgrade_add_pair(f->b.u, &f->a.addr, QP_PATH_SRFLX), 0);
  size_t cn = trav_upgrade_poll(f->b.u, 0, check, sizeof(check), &a);
  assert_int_equal(trav_upgrade_on_datagram(f->a.u, check, cn, &relayed, 0),
                   TRAV_UPGRADE_REQUEST); /* authenticated: the responder answers */
  assert_int_equal(trav_upgrade_pair_count(f->a.u), 0);
  for (int i = 0; i < TRAV_UPGRADE_MAX_EXCLUDED; i++) {
    assert_int_equal(udp_addr_from_ip("198.18.0.0", 1, &a), 0); /* none excluded */
    ((uint8_t *)&((struct sockaddr_in *)&a.ss)->sin_addr)[3] = (uint8_t)i;
    int rc = trav_upgrade_exclude_ip(f->a.u, &a);
    assert_int_equal(rc, i < TRAV_UPGRADE_MAX_EXCLUDED - 1 ? 0 : QP_ERR_TOO_LARGE);
  }
  for (int i = 0; i < TRAV_UPGRADE_MAX_PAIRS; i++) {
    assert_int_equal(udp_addr_from_ip("203.0.113.7", (uint16_t)(2000 + i), &a), 0);
    assert_int_equal(trav_upgrade_add_pair(f->a.u, &a, QP_PATH_SRFLX), 0);
    assert_int_equal(trav_upgrade_add_pair(f->a.u, &a, QP_PATH_SRFLX), 0); /* again: once */
  }
  assert_int_equal(trav_upgrade_pair_count(f->a.u), TRAV_UPGRADE_MAX_PAIRS);
  assert_int_equal(trav_upgrade_add_pair(f->a.u, &f->b.addr, QP_PATH_SRFLX), QP_ERR_TOO_LARGE);
  assert_non_null(strstr(qp_last_error(), "192.0.2.2:50000"));
  /* A buffer too small for a check: nothing, and why. */
  uint8_t small[64];
  assert_int_equal(trav_upgrade_poll(f->a.u, 0, small, sizeof(small), &a), 0);
  assert_non_null(strstr(qp_last_error(), "64-byte buffer"));
  /* Stopped: nothing due, nothing noted. */
  trav_upgrade_stop(f->a.u);
  uint8_t buf[TRAV_UPGRADE_CHECK_MAX];
  assert_int_equal(trav_upgrade_poll(f->a.u, 0, buf, sizeof(buf), &a), 0);
  assert_int_equal(trav_upgrade_next_ms(f->a.u), INT64_MAX);
  /* NULL is harmless everywhere it may come. */
  int kind;
  assert_int_equal(trav_upgrade_poll(NULL, 0, buf, sizeof(buf), &a), 0);
  assert_int_equal(trav_upgrade_next_ms(NULL), INT64_MAX);
  assert_false(trav_upgrade_validated(NULL, &a, &kind));
  assert_false(trav_upgrade_heard_from(NULL, &a));
  assert_int_equal(trav_upgrade_kind_of(NULL, &a), QP_PATH_PRFLX);
  trav_upgrade_stop(NULL);
  trav_upgrade_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_both_sides_validate, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pacing_backoff_slow_phase, setup, teardown),
      cmocka_unit_test_setup_teardown(test_hurry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_triggered_peer_reflexive, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_answers_validate_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_answer_validates_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prefers_host, setup, teardown),
      cmocka_unit_test_setup_teardown(test_argument_errors, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
