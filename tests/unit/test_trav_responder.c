/* ctest: labels=loopback */
/*
 * test_trav_responder.c: the responder kept after the handoff answers an
 * authenticated late check (from any address) with a response the peer can
 * verify, and ignores wrong passwords, other peers, non-STUN and truncated
 * datagrams. Also: checks on the wire carry what RFC 8445 asks for.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "udp/udp.h"
#include "test_trav_tu.h"

typedef struct fixture {
  trav_creds_t ours, peer;
  trav_responder_t *r;
  udp_addr_t from;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof(*f));
  tt_creds(&f->ours, "ourside");
  tt_creds(&f->peer, "peerside");
  trav_role_t role = {false, 7}; /* the peer's checks claim controlling */
  assert_int_equal(trav_responder_create(&f->ours, &f->peer, &role, &f->r), 0);
  assert_int_equal(udp_addr_from_ip("198.51.100.7", 40000, &f->from), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  trav_responder_destroy(f->r);
  free(f);
  return 0;
}

/* The peer's check to us: USERNAME "<our ufrag>:<peer ufrag>", keyed with
 * key_pwd (ours when honest). */
static size_t peer_check(const fixture_t *f, const char *key_pwd,
                         const char *peer_ufrag, bool use_candidate,
                         uint8_t txid[STUN_TXID_SIZE], uint8_t *buf,
                         size_t cap) {
  trav_creds_t to = f->ours, me = f->peer;
  snprintf(to.pwd, sizeof(to.pwd), "%s", key_pwd);
  snprintf(me.ufrag, sizeof(me.ufrag), "%s", peer_ufrag);
  assert_int_equal(stun_msg_new_txid(txid), 0);
  return trav_check_write(&me, &to, txid, true, 7, 1234, use_candidate, buf,
                          cap);
}

static void test_answers_late_check(void **state) {
  fixture_t *f = *state;
  uint8_t check[256], resp[TRAV_RESPONSE_MAX], txid[STUN_TXID_SIZE];
  size_t len = peer_check(f, f->ours.pwd, f->peer.ufrag, true, txid, check,
                          sizeof(check));
  size_t n = trav_responder_handle(f->r, check, len, &f->from, resp,
                                   sizeof(resp));
  assert_true(n > 0);
  stun_msg msg;
  assert_int_equal(stun_msg_parse(resp, n, &msg), 0);
  assert_int_equal(msg.cls, STUN_CLASS_SUCCESS);
  assert_int_equal(msg.method, STUN_METHOD_BINDING);
  assert_memory_equal(msg.txid, txid, STUN_TXID_SIZE);
  assert_true(msg.has_fingerprint);
  assert_int_equal(stun_msg_check_integrity(&msg, (const uint8_t *)f->ours.pwd,
                                            strlen(f->ours.pwd)),
                   0);
  assert_true(msg.has_xor_mapped_address);
  assert_true(udp_addr_equal(&msg.xor_mapped_address, &f->from));
  assert_int_equal(trav_responder_answered(f->r), 1);
  assert_int_equal(trav_responder_ignored(f->r), 0);
}

static void expect_ignored(fixture_t *f, const uint8_t *pkt, size_t len) {
  uint8_t resp[TRAV_RESPONSE_MAX];
  uint64_t before = trav_responder_ignored(f->r);
  assert_int_equal(trav_responder_handle(f->r, pkt, len, &f->from, resp,
                                         sizeof(resp)),
                   0);
  assert_int_equal(trav_responder_ignored(f->r), before + 1);
}

static void test_ignores_wrong_password(void **state) {
  fixture_t *f = *state;
  uint8_t check[256], txid[STUN_TXID_SIZE];
  size_t len = peer_check(f, "wrongPassword0123456789xyz", f->peer.ufrag, false,
                          txid, check, sizeof(check));
  expect_ignored(f, check, len);
  /* keyed with the peer's own pwd instead of ours: also wrong */
  len = peer_check(f, f->peer.pwd, f->peer.ufrag, false, txid, check,
                   sizeof(check));
  expect_ignored(f, check, len);
  assert_int_equal(trav_responder_answered(f->r), 0);
}

static void test_ignores_other_peer_and_junk(void **state) {
  fixture_t *f = *state;
  uint8_t check[256], txid[STUN_TXID_SIZE];
  /* valid integrity, but a peer ufrag of another run */
  size_t len = peer_check(f, f->ours.pwd, "someoneelse", false, txid, check,
                          sizeof(check));
  expect_ignored(f, check, len);
  len = peer_check(f, f->ours.pwd, f->peer.ufrag, false, txid, check,
                   sizeof(check));
  expect_ignored(f, check, len - 8); /* truncated */
  const uint8_t quic[] = {0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8};
  expect_ignored(f, quic, sizeof(quic));
  /* a success response is not a request */
  uint8_t resp[TRAV_RESPONSE_MAX];
  size_t n = trav_responder_handle(f->r, check, len, &f->from, resp,
                                   sizeof(resp));
  assert_true(n > 0);
  expect_ignored(f, resp, n);
  assert_int_equal(trav_responder_answered(f->r), 1);
  trav_responder_destroy(NULL);
  assert_int_equal(trav_responder_handle(NULL, check, len, &f->from, resp,
                                         sizeof(resp)),
                   0);
}

/* A check on the wire: USERNAME, PRIORITY, ICE-CONTROLLED + tie-breaker,
 * USE-CANDIDATE only when asked, integrity with the receiver's pwd. */
static void test_check_format(void **state) {
  fixture_t *f = *state;
  uint8_t buf[256], txid[STUN_TXID_SIZE] = {1, 2, 3};
  size_t len = trav_check_write(&f->peer, &f->ours, txid, false, 0x1122334455,
                                777, false, buf, sizeof(buf));
  stun_msg msg;
  assert_int_equal(stun_msg_parse(buf, len, &msg), 0);
  assert_int_equal(msg.cls, STUN_CLASS_REQUEST);
  assert_int_equal(msg.username.len, strlen("ourside:peerside"));
  assert_memory_equal(msg.username.data, "ourside:peerside", msg.username.len);
  assert_true(msg.has_priority);
  assert_int_equal(msg.priority, 777);
  assert_true(msg.has_ice_controlled);
  assert_false(msg.has_ice_controlling);
  assert_int_equal(msg.ice_tiebreaker, 0x1122334455);
  assert_false(msg.use_candidate);
  assert_true(msg.has_fingerprint);
  assert_int_equal(stun_msg_check_integrity(&msg, (const uint8_t *)f->ours.pwd,
                                            strlen(f->ours.pwd)),
                   0);
}

static void test_credentials_random(void **state) {
  (void)state;
  trav_creds_t a, b;
  assert_int_equal(trav_creds_generate(&a), 0);
  assert_int_equal(trav_creds_generate(&b), 0);
  assert_true(strlen(a.ufrag) >= RDV_RECORD_UFRAG_MIN);
  assert_true(strlen(a.pwd) >= RDV_RECORD_PWD_MIN);
  assert_string_not_equal(a.ufrag, b.ufrag);
  assert_string_not_equal(a.pwd, b.pwd);
}

/* RFC 8445 section 7.3.1.1: a check claiming our own role (controlling)
 * gets 487 when our tie-breaker is larger or equal, no answer otherwise;
 * never a success. */
static void test_role_conflict(void **state) {
  fixture_t *f = *state;
  for (int k = 0; k < 2; k++) {
    trav_role_t role = {true, k == 0 ? 7 : 6}; /* the peer's is 7 */
    trav_responder_t *r;
    assert_int_equal(trav_responder_create(&f->ours, &f->peer, &role, &r), 0);
    uint8_t check[256], resp[TRAV_RESPONSE_MAX], txid[STUN_TXID_SIZE];
    size_t len = peer_check(f, f->ours.pwd, f->peer.ufrag, true, txid, check,
                            sizeof(check));
    size_t n = trav_responder_handle(r, check, len, &f->from, resp, sizeof(resp));
    assert_int_equal(trav_responder_answered(r), 0);
    trav_responder_destroy(r);
    if (k == 1) {
      assert_int_equal(n, 0);
      continue;
    }
    /* trav_check_answer wrote the 487; the responder drops it with the rest
     * of what is not a success, so check the verdict directly. */
    stun_msg msg;
    assert_int_equal(stun_msg_parse(check, len, &msg), 0);
    assert_int_equal(trav_check_answer(f->ours.ufrag, f->ours.pwd, f->peer.ufrag,
                                       &role, &msg, &f->from, resp, sizeof(resp),
                                       &n),
                     TRAV_REQ_ROLE_CONFLICT);
    assert_true(n > 0);
    stun_msg got;
    assert_int_equal(stun_msg_parse(resp, n, &got), 0);
    assert_int_equal(got.cls, STUN_CLASS_ERROR);
    assert_int_equal(got.error_code, STUN_ERROR_ROLE_CONFLICT);
    assert_int_equal(stun_msg_check_integrity(&got, (const uint8_t *)f->ours.pwd,
                                              strlen(f->ours.pwd)),
                     0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_answers_late_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ignores_wrong_password, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_role_conflict, setup, teardown),
      cmocka_unit_test_setup_teardown(test_ignores_other_peer_and_junk, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_check_format, setup, teardown),
      cmocka_unit_test(test_credentials_random),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
