/* ctest: labels=loopback,iothread */
/*
 * Certificate pinning: fingerprints look as documented, a correct pin on
 * either or both sides connects, a wrong pin makes both sides fail, and
 * qp_portal_pin_peer accepts the documented spellings and nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic_portal.h"
#include "tu.h"

/* listen's timeout where the client is refused: listen keeps waiting for
 * another client until then. */
#define FAILING_LISTEN_MS 1500

static void get_fingerprint(qp_portal_t *p, char out[QP_FINGERPRINT_SIZE]) {
  memset(out, 'X', QP_FINGERPRINT_SIZE);
  TU_QP_OK(qp_portal_fingerprint(p, out, QP_FINGERPRINT_SIZE));
}

static void assert_fingerprint_format(const char *fp) {
  size_t len = strnlen(fp, QP_FINGERPRINT_SIZE);
  if (len != 64)
    fail_msg("fingerprint \"%.*s\" has %zu characters (or no NUL), expected "
             "64",
             QP_FINGERPRINT_SIZE, fp, len);
  for (size_t i = 0; i < 64; i++)
    if (!((fp[i] >= '0' && fp[i] <= '9') || (fp[i] >= 'a' && fp[i] <= 'f')))
      fail_msg("fingerprint \"%s\" has '%c' at %zu: expected lowercase hex",
               fp, fp[i], i);
}

/* A fingerprint that is well formed but belongs to no portal of the test. */
static void wrong_fingerprint(const char *right, char out[QP_FINGERPRINT_SIZE]) {
  memcpy(out, right, QP_FINGERPRINT_SIZE);
  out[10] = out[10] == '0' ? '1' : '0';
}

static void fingerprints_are_64_lowercase_hex_and_differ(void **state) {
  (void)state;
  qp_portal_t *a = NULL, *b = NULL;
  TU_QP_OK(qp_portal_create(&a));
  TU_QP_OK(qp_portal_create(&b));
  char fa[QP_FINGERPRINT_SIZE], fb[QP_FINGERPRINT_SIZE],
      fa2[QP_FINGERPRINT_SIZE];
  get_fingerprint(a, fa);
  get_fingerprint(b, fb);
  get_fingerprint(a, fa2);
  assert_fingerprint_format(fa);
  assert_fingerprint_format(fb);
  assert_string_equal(fa, fa2); /* stable for one portal */
  assert_string_not_equal(fa, fb);
  qp_portal_destroy(a);
  qp_portal_destroy(b);
}

/* Pin as requested, then handshake; returns the pair with results. */
static void pinned_handshake(tu_pair_t *pair, bool client_pins,
                             bool client_pin_right, bool server_pins,
                             bool server_pin_right) {
  tu_pair_create(pair);
  char fs[QP_FINGERPRINT_SIZE], fc[QP_FINGERPRINT_SIZE],
      wrong[QP_FINGERPRINT_SIZE];
  get_fingerprint(pair->server, fs);
  get_fingerprint(pair->client, fc);
  if (client_pins) {
    if (client_pin_right) {
      TU_QP_OK(qp_portal_pin_peer(pair->client, fs));
    } else {
      wrong_fingerprint(fs, wrong);
      TU_QP_OK(qp_portal_pin_peer(pair->client, wrong));
    }
  }
  if (server_pins) {
    if (server_pin_right) {
      TU_QP_OK(qp_portal_pin_peer(pair->server, fc));
    } else {
      wrong_fingerprint(fc, wrong);
      TU_QP_OK(qp_portal_pin_peer(pair->server, wrong));
    }
  }
  /* A refused client does not end listen (it waits for the right one until
   * its timeout), so a handshake meant to fail gets a short listen. */
  bool fails = (client_pins && !client_pin_right) || (server_pins && !server_pin_right);
  tu_pair_handshake(pair, NULL, NULL, fails ? FAILING_LISTEN_MS : 10000, 10000);
  print_message("listen: %s after %lld ms (\"%s\"); connect: %s after %lld ms "
                "(\"%s\")\n",
                qp_err_name(pair->server_rc), (long long)pair->server_ms,
                pair->server_error, qp_err_name(pair->client_rc),
                (long long)pair->client_ms, pair->client_error);
}

static void expect_connected_and_working(tu_pair_t *pair) {
  TU_RC_EQ(pair->server_rc, QP_OK, pair->server_error);
  TU_RC_EQ(pair->client_rc, QP_OK, pair->client_error);
  void *m = tu_msg_make(1, 2, 3000);
  tu_send_ok(pair->client, m, 3000, 5000);
  tu_recv_expect(pair->server, m, 3000, 5000);
  tu_send_ok(pair->server, m, 3000, 5000);
  tu_recv_expect(pair->client, m, 3000, 5000);
  free(m);
}

static void client_pins_right_server_fingerprint_connects(void **state) {
  (void)state;
  tu_pair_t pair;
  pinned_handshake(&pair, true, true, false, false);
  expect_connected_and_working(&pair);
  tu_pair_destroy(&pair);
}

static void server_pins_right_client_fingerprint_connects(void **state) {
  (void)state;
  tu_pair_t pair;
  pinned_handshake(&pair, false, false, true, true);
  expect_connected_and_working(&pair);
  tu_pair_destroy(&pair);
}

static void both_pin_right_fingerprints_connect(void **state) {
  (void)state;
  tu_pair_t pair;
  pinned_handshake(&pair, true, true, true, true);
  expect_connected_and_working(&pair);
  tu_pair_destroy(&pair);
}

/* connect fails promptly (well before its 10 s timeout); listen refuses
 * that client but keeps waiting for another until its own timeout, then
 * reports the refusal. Neither is connected. The side whose pin did not
 * match says PEER_VERIFY and mentions the fingerprint; the other side sees
 * a failed handshake. */
static void expect_both_fail(tu_pair_t *pair, bool client_mismatched) {
  int mismatched_rc = client_mismatched ? pair->client_rc : pair->server_rc;
  const char *mismatched_err =
      client_mismatched ? pair->client_error : pair->server_error;
  int rejected_rc = client_mismatched ? pair->server_rc : pair->client_rc;
  const char *rejected_err =
      client_mismatched ? pair->server_error : pair->client_error;
  const char *mismatched_call = client_mismatched ? "connect" : "listen";
  const char *rejected_call = client_mismatched ? "listen" : "connect";

  if (mismatched_rc != QP_ERR_PEER_VERIFY)
    fail_msg("%s with a wrong pin returned %s, expected QP_ERR_PEER_VERIFY: "
             "\"%s\"",
             mismatched_call, qp_err_name(mismatched_rc), mismatched_err);
  TU_ASSERT_CONTAINS(mismatched_err, "fingerprint");
  /* The header lists QP_ERR_HANDSHAKE (and PEER_VERIFY) for listen and
   * connect; a peer that rejected us is a failed handshake. */
  if (rejected_rc != QP_ERR_HANDSHAKE && rejected_rc != QP_ERR_PEER_VERIFY)
    fail_msg("%s whose peer rejected the handshake returned %s, expected "
             "QP_ERR_HANDSHAKE (or QP_ERR_PEER_VERIFY): \"%s\"",
             rejected_call, qp_err_name(rejected_rc), rejected_err);
  if (rejected_err[0] == '\0')
    fail_msg("%s failed with an empty message", rejected_call);
  if (pair->client_ms > 5000)
    fail_msg("the failed handshake took %lld ms (connect): it should fail at "
             "once, not run into the timeout", (long long)pair->client_ms);
  if (pair->server_ms < FAILING_LISTEN_MS - 100)
    fail_msg("listen returned after %lld ms: a refused client must not end "
             "it before its %d ms timeout", (long long)pair->server_ms,
             FAILING_LISTEN_MS);
  TU_ASSERT_CONTAINS(pair->server_error, "1 refused");
  assert_false(qp_portal_is_connected(pair->server));
  assert_false(qp_portal_is_connected(pair->client));
}

static void client_pins_wrong_fingerprint_both_sides_fail(void **state) {
  (void)state;
  tu_pair_t pair;
  pinned_handshake(&pair, true, false, false, false);
  expect_both_fail(&pair, true);
  tu_pair_destroy(&pair);
}

static void server_pins_wrong_fingerprint_both_sides_fail(void **state) {
  (void)state;
  tu_pair_t pair;
  pinned_handshake(&pair, false, false, true, false);
  expect_both_fail(&pair, false);
  tu_pair_destroy(&pair);
}

static void malformed_fingerprints_are_invalid_and_change_nothing(
    void **state) {
  (void)state;
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  char good[QP_FINGERPRINT_SIZE];
  get_fingerprint(p, good);
  char longer[80], shorter[80], nonhex[80], sha1[96], colons_bad[160],
      spaced[80], two_prefixes[96];
  snprintf(longer, sizeof(longer), "%sa", good);
  snprintf(shorter, sizeof(shorter), "%.63s", good);
  snprintf(nonhex, sizeof(nonhex), "%s", good);
  nonhex[17] = 'g';
  snprintf(sha1, sizeof(sha1), "sha1:%s", good);
  snprintf(spaced, sizeof(spaced), " %s", good);
  snprintf(two_prefixes, sizeof(two_prefixes), "sha256:sha256:%s", good);
  /* 33 groups: one hex digit too many once colons are removed */
  size_t k = 0;
  for (int i = 0; i < 32; i++) {
    colons_bad[k++] = good[2 * i];
    colons_bad[k++] = good[2 * i + 1];
    colons_bad[k++] = ':';
  }
  colons_bad[k++] = 'a';
  colons_bad[k] = '\0';
  const char *bad[] = {"", "abc", "sha256:", shorter, longer, nonhex,
                       sha1, spaced, two_prefixes, colons_bad};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    int rc = qp_portal_pin_peer(p, bad[i]);
    if (rc != QP_ERR_INVALID)
      fail_msg("qp_portal_pin_peer(\"%s\") returned %s, expected "
               "QP_ERR_INVALID",
               bad[i], qp_err_name(rc));
    if (qp_last_error()[0] == '\0')
      fail_msg("qp_portal_pin_peer(\"%s\") failed with an empty message",
               bad[i]);
  }
  qp_portal_destroy(p);

  /* A rejected pin leaves the previous one in force: pin a wrong
   * fingerprint, try malformed ones, and the handshake still fails on the
   * wrong pin. */
  tu_pair_t pair;
  tu_pair_create(&pair);
  char fs[QP_FINGERPRINT_SIZE], wrong[QP_FINGERPRINT_SIZE];
  get_fingerprint(pair.server, fs);
  wrong_fingerprint(fs, wrong);
  TU_QP_OK(qp_portal_pin_peer(pair.client, wrong));
  TU_QP_ERR(qp_portal_pin_peer(pair.client, "abc"), QP_ERR_INVALID);
  tu_pair_handshake(&pair, NULL, NULL, FAILING_LISTEN_MS, 10000);
  TU_RC_EQ(pair.client_rc, QP_ERR_PEER_VERIFY, pair.client_error);
  tu_pair_destroy(&pair);
}

/* Each accepted spelling of the server's fingerprint really pins it: the
 * client connects with it. */
static void pin_accepts_colons_uppercase_and_sha256_prefix(void **state) {
  (void)state;
  for (int form = 0; form < 4; form++) {
    tu_pair_t pair;
    tu_pair_create(&pair);
    char fs[QP_FINGERPRINT_SIZE];
    get_fingerprint(pair.server, fs);
    char pin[256];
    size_t k = 0;
    if (form >= 2)
      k += (size_t)snprintf(pin, sizeof(pin), "sha256:");
    for (int i = 0; i < 64; i++) {
      char c = fs[i];
      if (form == 1 || form == 3)
        c = (char)toupper((unsigned char)c);
      pin[k++] = c;
      if ((form == 0 || form == 3) && i % 2 == 1 && i < 63)
        pin[k++] = ':';
    }
    pin[k] = '\0';
    int rc = qp_portal_pin_peer(pair.client, pin);
    if (rc != QP_OK)
      fail_msg("qp_portal_pin_peer(\"%s\") returned %s: \"%s\"", pin,
               qp_err_name(rc), qp_last_error());
    tu_pair_handshake(&pair, NULL, NULL, 10000, 10000);
    if (pair.client_rc != QP_OK || pair.server_rc != QP_OK)
      fail_msg("pinned as \"%s\", the handshake failed: connect %s (\"%s\"), "
               "listen %s (\"%s\")",
               pin, qp_err_name(pair.client_rc), pair.client_error,
               qp_err_name(pair.server_rc), pair.server_error);
    tu_pair_destroy(&pair);
  }
}

static void null_pin_removes_the_pin(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_create(&pair);
  char fs[QP_FINGERPRINT_SIZE], wrong[QP_FINGERPRINT_SIZE];
  get_fingerprint(pair.server, fs);
  wrong_fingerprint(fs, wrong);
  TU_QP_OK(qp_portal_pin_peer(pair.client, wrong));
  TU_QP_OK(qp_portal_pin_peer(pair.client, NULL));
  tu_pair_handshake(&pair, NULL, NULL, 10000, 10000);
  expect_connected_and_working(&pair);
  /* Pinning after connect is a state error. */
  TU_QP_ERR(qp_portal_pin_peer(pair.client, fs), QP_ERR_STATE);
  TU_QP_ERR(qp_portal_pin_peer(pair.server, NULL), QP_ERR_STATE);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(fingerprints_are_64_lowercase_hex_and_differ),
      cmocka_unit_test(client_pins_right_server_fingerprint_connects),
      cmocka_unit_test(server_pins_right_client_fingerprint_connects),
      cmocka_unit_test(both_pin_right_fingerprints_connect),
      cmocka_unit_test(client_pins_wrong_fingerprint_both_sides_fail),
      cmocka_unit_test(server_pins_wrong_fingerprint_both_sides_fail),
      cmocka_unit_test(malformed_fingerprints_are_invalid_and_change_nothing),
      cmocka_unit_test(pin_accepts_colons_uppercase_and_sha256_prefix),
      cmocka_unit_test(null_pin_removes_the_pin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
