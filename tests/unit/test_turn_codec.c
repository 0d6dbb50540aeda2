/* ctest: labels=unit */
/* TURN pieces without a server: ChannelData framing (RFC 8656 section
 * 12.4-12.5), the demultiplexing test, coturn REST credentials and the
 * "USER:PASS@HOST:PORT" / "SECRET@HOST:PORT" spec parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "common/error.h"
#include "tu.h"
#include "turn/turn_proto.h"

static void channel_data_round_trip(void **state) {
  (void)state;
  static const uint8_t payload[] = "relayed bytes"; /* 14 with the NUL */
  uint8_t out[64];
  size_t len;
  assert_int_equal(turn_channel_wrap(0x4001, payload, sizeof(payload), out,
                                     sizeof(out), &len),
                   0);
  /* Header: channel 0x4001, length 14; no padding over UDP. */
  static const uint8_t header[] = {0x40, 0x01, 0x00, 0x0E};
  tu_assert_same_bytes("header", out, 4, header, 4);
  assert_int_equal(len, 4 + sizeof(payload));
  uint16_t channel;
  const uint8_t *data;
  size_t data_len;
  assert_int_equal(turn_channel_unwrap(out, len, &channel, &data, &data_len),
                   0);
  assert_int_equal(channel, 0x4001);
  tu_assert_same_bytes("payload", data, data_len, payload, sizeof(payload));
  assert_ptr_equal(data, out + 4);
  /* Padding to 4 (16 + 2 bytes) is accepted and not part of the data. */
  memset(out + len, 0, 2);
  assert_int_equal(
      turn_channel_unwrap(out, len + 2, &channel, &data, &data_len), 0);
  assert_int_equal(data_len, sizeof(payload));
}

static void channel_data_in_place(void **state) {
  (void)state;
  /* The QUIC path reserves 4 bytes in front of its packet. */
  uint8_t buf[4 + 5] = {0, 0, 0, 0, 'q', 'u', 'i', 'c', '!'};
  turn_channel_header(buf, 0x4FFF, 5);
  uint16_t channel;
  const uint8_t *data;
  size_t n;
  assert_int_equal(turn_channel_unwrap(buf, sizeof(buf), &channel, &data, &n),
                   0);
  assert_int_equal(channel, 0x4FFF);
  tu_assert_same_bytes("in place", data, n, "quic!", 5);
  /* turn_channel_wrap may take its data from where the header goes. */
  uint8_t shifted[16] = {'a', 'b', 'c'};
  size_t len;
  assert_int_equal(
      turn_channel_wrap(0x4000, shifted, 3, shifted, sizeof(shifted), &len), 0);
  tu_assert_same_bytes("moved", shifted + 4, 3, "abc", 3);
}

static void channel_data_rejects_bad_frames(void **state) {
  (void)state;
  uint16_t channel;
  const uint8_t *data;
  size_t n;
  uint8_t buf[32] = {0x40, 0x00, 0x00, 0x08};
  /* Shorter than the claimed 8 bytes. */
  assert_int_equal(turn_channel_unwrap(buf, 4 + 7, &channel, &data, &n),
                   QP_ERR_PROTOCOL);
  assert_int_equal(turn_channel_unwrap(buf, 3, &channel, &data, &n),
                   QP_ERR_PROTOCOL);
  /* More than 3 bytes of padding after the data. */
  assert_int_equal(turn_channel_unwrap(buf, 4 + 8 + 4, &channel, &data, &n),
                   QP_ERR_PROTOCOL);
  assert_int_equal(turn_channel_unwrap(buf, 4 + 8, &channel, &data, &n), 0);
  /* Channel numbers outside 0x4000-0x4FFF. */
  buf[0] = 0x50;
  assert_int_equal(turn_channel_unwrap(buf, 4 + 8, &channel, &data, &n),
                   QP_ERR_PROTOCOL);
  uint8_t out[16];
  size_t len;
  assert_int_equal(turn_channel_wrap(0x3FFF, buf, 1, out, sizeof(out), &len),
                   QP_ERR_INVALID);
  assert_int_equal(turn_channel_wrap(0x5000, buf, 1, out, sizeof(out), &len),
                   QP_ERR_INVALID);
  /* A buffer that cannot hold header + data. */
  assert_int_equal(turn_channel_wrap(0x4000, buf, 13, out, sizeof(out), &len),
                   QP_ERR_TOO_LARGE);
}

static void demultiplexing_by_first_byte(void **state) {
  (void)state;
  uint8_t d[4] = {0};
  for (int b = 0; b < 256; b++) {
    d[0] = (uint8_t)b;
    assert_int_equal(turn_is_channel_data(d, sizeof(d)),
                     b >= 0x40 && b <= 0x4F);
  }
  d[0] = 0x40;
  assert_false(turn_is_channel_data(d, 3));
  assert_false(turn_is_channel_data(NULL, 4));
}

/* Known values computed with another implementation:
 *   printf '1700000000:quic-portal' | openssl dgst -sha1 -hmac S3cr3t \
 *     -binary | base64 */
static void rest_credentials_match_openssl(void **state) {
  (void)state;
  char user[TURN_USERNAME_MAX], pass[TURN_PASSWORD_MAX];
  assert_int_equal(
      turn_rest_credentials("S3cr3t", "quic-portal", 1700000000, user, pass),
      0);
  assert_string_equal(user, "1700000000:quic-portal");
  assert_string_equal(pass, "lFTvc65xXgupi3nkQKBUvE9iXuw=");
  assert_int_equal(strlen(pass), TURN_REST_PASSWORD_LEN);
  assert_int_equal(
      turn_rest_credentials("S3cr3t", NULL, 1700000000, user, pass), 0);
  assert_string_equal(user, "1700000000");
  assert_string_equal(pass, "WPRGbEcY4l71+YrvzomlgMtYW/M=");
}

/* The same formula computed here with GnuTLS directly, for a time and a
 * secret the vectors above do not cover. */
static void rest_credentials_match_gnutls(void **state) {
  (void)state;
  turn_server_spec spec;
  assert_int_equal(
      turn_spec_parse("an@other:secret@turn.example:3478", true, &spec), 0);
  char user[TURN_USERNAME_MAX], pass[TURN_PASSWORD_MAX];
  assert_int_equal(turn_spec_credentials(&spec, 1800000000, 86400, user, pass),
                   0);
  assert_string_equal(user, "1800086400:quic-portal");
  uint8_t mac[20];
  assert_int_equal(gnutls_hmac_fast(GNUTLS_MAC_SHA1, "an@other:secret", 15,
                                    user, strlen(user), mac),
                   0);
  gnutls_datum_t raw = {mac, sizeof(mac)}, b64;
  assert_int_equal(gnutls_base64_encode2(&raw, &b64), 0);
  tu_assert_same_bytes("REST password", pass, strlen(pass), b64.data, b64.size);
  gnutls_free(b64.data);
}

static void spec_parser_accepts(void **state) {
  (void)state;
  turn_server_spec s;
  assert_int_equal(turn_spec_parse("u:p@127.0.0.1:3479", false, &s), 0);
  assert_string_equal(s.username, "u");
  assert_string_equal(s.password, "p");
  assert_string_equal(s.host, "127.0.0.1");
  assert_int_equal(s.port, 3479);
  assert_false(s.uses_secret);
  /* The password runs to the last '@' and may hold ':' and '@'. */
  assert_int_equal(turn_spec_parse("alice:pa:ss@word@turn.example", false, &s),
                   0);
  assert_string_equal(s.username, "alice");
  assert_string_equal(s.password, "pa:ss@word");
  assert_string_equal(s.host, "turn.example");
  assert_int_equal(s.port, TURN_DEFAULT_PORT);
  assert_int_equal(turn_spec_parse("u:p@[::1]:5000", false, &s), 0);
  assert_string_equal(s.host, "::1");
  assert_int_equal(s.port, 5000);
  assert_int_equal(turn_spec_parse("S3cr3t@turn.example:443", true, &s), 0);
  assert_true(s.uses_secret);
  assert_string_equal(s.password, "S3cr3t");
  assert_string_equal(s.username, "");
  assert_int_equal(s.port, 443);
}

static void spec_parser_rejects_without_leaking(void **state) {
  (void)state;
  static const char *const bad_user[] = {
      "u:p",              /* no host */
      "up@host",          /* no ':' between user and password */
      ":p@host",          /* empty user */
      "u:@host",          /* empty password */
      "u:hunter2@",       /* empty host */
      "u:hunter2@host:0", /* port 0 */
      "u:hunter2@host:99999",
      "u:hunter2@host:x",
      "u:hunter2@[::1",
  };
  turn_server_spec s;
  for (size_t i = 0; i < sizeof(bad_user) / sizeof(bad_user[0]); i++) {
    err_clear();
    if (turn_spec_parse(bad_user[i], false, &s) != QP_ERR_INVALID)
      fail_msg("\"%s\" was accepted", bad_user[i]);
    TU_ASSERT_CONTAINS(qp_last_error(), "USER:PASS@HOST[:PORT]");
    if (strstr(qp_last_error(), "hunter2"))
      fail_msg("the message shows the password: %s", qp_last_error());
  }
  assert_int_equal(turn_spec_parse("@host", true, &s), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "SECRET@HOST[:PORT]");
  assert_int_equal(turn_spec_parse(NULL, true, &s), QP_ERR_INVALID);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(channel_data_round_trip),
      cmocka_unit_test(channel_data_in_place),
      cmocka_unit_test(channel_data_rejects_bad_frames),
      cmocka_unit_test(demultiplexing_by_first_byte),
      cmocka_unit_test(rest_credentials_match_openssl),
      cmocka_unit_test(rest_credentials_match_gnutls),
      cmocka_unit_test(spec_parser_accepts),
      cmocka_unit_test(spec_parser_rejects_without_leaking),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
