/* ctest: labels=unit */
/* The STUN codec: RFC 5769 test vectors, malformed input, a mutation fuzz
 * loop with a fixed seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "udp/udp.h"
#include "stun/stun_msg.h"
#include "tu.h"

/* RFC 5769 section 2: "The password ... is VOkJxbRl1RmTxUk/WvJxBt". */
static const char rfc5769_password[] = "VOkJxbRl1RmTxUk/WvJxBt";
static const uint8_t rfc5769_txid[STUN_TXID_SIZE] = {
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae};

/* The vectors keep the RFC's layout. */
// clang-format off
/* RFC 5769 section 2.1: sample request. */
static const uint8_t sample_request[] = {
    0x00, 0x01, 0x00, 0x58, /* Binding request, length 88 */
    0x21, 0x12, 0xa4, 0x42, /* magic cookie */
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    0x80, 0x22, 0x00, 0x10, /* SOFTWARE, 16 bytes */
    0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c,
    0x69, 0x65, 0x6e, 0x74, /* "STUN test client" */
    0x00, 0x24, 0x00, 0x04, /* PRIORITY */
    0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, /* ICE-CONTROLLED */
    0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36,
    0x00, 0x06, 0x00, 0x09, /* USERNAME, 9 bytes + 3 bytes of padding */
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20,
    0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY */
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5,
    0xb2, 0xd3, 0xf2, 0x49, 0xc1, 0xb5, 0x71, 0xa2,
    0x80, 0x28, 0x00, 0x04, /* FINGERPRINT */
    0xe5, 0x7a, 0x3b, 0xcf};

/* RFC 5769 section 2.2: sample IPv4 response. */
static const uint8_t sample_ipv4_response[] = {
    0x01, 0x01, 0x00, 0x3c, /* Binding success response, length 60 */
    0x21, 0x12, 0xa4, 0x42,
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    0x80, 0x22, 0x00, 0x0b, /* SOFTWARE "test vector" + 1 byte padding */
    0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
    0x00, 0x20, 0x00, 0x08, /* XOR-MAPPED-ADDRESS */
    0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY */
    0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7,
    0x80, 0x28, 0x00, 0x04, /* FINGERPRINT */
    0xc0, 0x7d, 0x4c, 0x96};

/* RFC 5769 section 2.3: sample IPv6 response. */
static const uint8_t sample_ipv6_response[] = {
    0x01, 0x01, 0x00, 0x48, /* Binding success response, length 72 */
    0x21, 0x12, 0xa4, 0x42,
    0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    0x80, 0x22, 0x00, 0x0b, /* SOFTWARE "test vector" + 1 byte padding */
    0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20,
    0x00, 0x20, 0x00, 0x14, /* XOR-MAPPED-ADDRESS */
    0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79,
    0xbc, 0x25, 0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9,
    0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY */
    0xa3, 0x82, 0x95, 0x4e, 0x4b, 0xe6, 0x7b, 0xf1, 0x17, 0x84, 0xc9, 0x7c,
    0x82, 0x92, 0xc2, 0x75, 0xbf, 0xe3, 0xed, 0x41,
    0x80, 0x28, 0x00, 0x04, /* FINGERPRINT */
    0xc8, 0xfb, 0x0b, 0x4c};

/* RFC 5769 section 2.4: sample request with long-term authentication. */
static const uint8_t sample_long_term_request[] = {
    0x00, 0x01, 0x00, 0x60, /* Binding request, length 96 */
    0x21, 0x12, 0xa4, 0x42,
    0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
    0x00, 0x06, 0x00, 0x12, /* USERNAME, 18 bytes + 2 bytes of padding */
    0xe3, 0x83, 0x9e, 0xe3, 0x83, 0x88, 0xe3, 0x83, 0xaa, 0xe3, 0x83, 0x83,
    0xe3, 0x82, 0xaf, 0xe3, 0x82, 0xb9, 0x00, 0x00,
    0x00, 0x15, 0x00, 0x1c, /* NONCE */
    0x66, 0x2f, 0x2f, 0x34, 0x39, 0x39, 0x6b, 0x39, 0x35, 0x34, 0x64, 0x36,
    0x4f, 0x4c, 0x33, 0x34, 0x6f, 0x4c, 0x39, 0x46, 0x53, 0x54, 0x76, 0x79,
    0x36, 0x34, 0x73, 0x41,
    0x00, 0x14, 0x00, 0x0b, /* REALM "example.org" + 1 byte padding */
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6f, 0x72, 0x67, 0x00,
    0x00, 0x08, 0x00, 0x14, /* MESSAGE-INTEGRITY */
    0xf6, 0x70, 0x24, 0x65, 0x6d, 0xd6, 0x4a, 0x3e, 0x02, 0xb8, 0xe0, 0x71,
    0x2e, 0x85, 0xc9, 0xa2, 0x8c, 0xa8, 0x96, 0x66};

// clang-format on

static const uint8_t *password_key(void) {
  return (const uint8_t *)rfc5769_password;
}

static void assert_bytes(stun_bytes b, const char *text) {
  assert_non_null(b.data);
  assert_int_equal(b.len, strlen(text));
  assert_memory_equal(b.data, text, b.len);
}

static void assert_addr(const udp_addr_t *addr, const char *text) {
  char buf[UDP_ADDRSTRLEN];
  assert_string_equal(udp_addr_to_string(addr, buf, sizeof(buf)), text);
}

static void rfc5769_sample_request_decodes(void **state) {
  (void)state;
  stun_msg m;
  assert_true(stun_msg_is_stun(sample_request, sizeof(sample_request)));
  assert_int_equal(stun_msg_parse(sample_request, sizeof(sample_request), &m),
                   0);
  assert_int_equal(m.method, STUN_METHOD_BINDING);
  assert_int_equal(m.cls, STUN_CLASS_REQUEST);
  assert_memory_equal(m.txid, rfc5769_txid, STUN_TXID_SIZE);
  assert_bytes(m.software, "STUN test client");
  assert_true(m.has_priority);
  assert_int_equal(m.priority, 0x6e0001ff);
  assert_true(m.has_ice_controlled);
  assert_false(m.has_ice_controlling);
  assert_true(m.ice_tiebreaker == UINT64_C(0x932ff9b151263b36));
  assert_bytes(m.username, "evtj:h6vY");
  assert_int_equal(m.integrity_offset, 76);
  assert_true(m.has_fingerprint);
  assert_int_equal(m.unknown_required_count, 0);
  assert_int_equal(
      stun_msg_check_integrity(&m, password_key(), strlen(rfc5769_password)),
      0);
}

static void rfc5769_sample_request_reencodes(void **state) {
  (void)state;
  uint8_t buf[256];
  stun_msg_writer w;
  assert_int_equal(stun_msg_write_header(&w, buf, sizeof(buf),
                                         STUN_METHOD_BINDING,
                                         STUN_CLASS_REQUEST, rfc5769_txid),
                   0);
  w.pad_byte = ' '; /* RFC 5769 pads with spaces */
  assert_int_equal(
      stun_msg_write_attr(&w, STUN_ATTR_SOFTWARE, "STUN test client", 16), 0);
  assert_int_equal(stun_msg_write_u32(&w, STUN_ATTR_PRIORITY, 0x6e0001ff), 0);
  assert_int_equal(stun_msg_write_u64(&w, STUN_ATTR_ICE_CONTROLLED,
                                      UINT64_C(0x932ff9b151263b36)),
                   0);
  assert_int_equal(stun_msg_write_attr(&w, STUN_ATTR_USERNAME, "evtj:h6vY", 9),
                   0);
  assert_int_equal(
      stun_msg_write_integrity(&w, password_key(), strlen(rfc5769_password)),
      0);
  assert_int_equal(stun_msg_write_fingerprint(&w), 0);
  assert_int_equal(w.len, sizeof(sample_request));
  assert_memory_equal(buf, sample_request, sizeof(sample_request));
}

static void check_response(const uint8_t *vec, size_t len, const char *mapped) {
  stun_msg m;
  assert_true(stun_msg_is_stun(vec, len));
  assert_int_equal(stun_msg_parse(vec, len, &m), 0);
  assert_int_equal(m.method, STUN_METHOD_BINDING);
  assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
  assert_memory_equal(m.txid, rfc5769_txid, STUN_TXID_SIZE);
  assert_bytes(m.software, "test vector");
  assert_true(m.has_xor_mapped_address);
  assert_false(m.has_mapped_address);
  assert_addr(&m.xor_mapped_address, mapped);
  assert_true(m.integrity_offset > 0);
  assert_true(m.has_fingerprint);
  assert_int_equal(
      stun_msg_check_integrity(&m, password_key(), strlen(rfc5769_password)),
      0);
}

/* Rebuild a response from its decoded fields; the RFC pads SOFTWARE with a
 * space, so the bytes come out identical. */
static void reencode_response(const uint8_t *vec, size_t len) {
  stun_msg m;
  assert_int_equal(stun_msg_parse(vec, len, &m), 0);
  uint8_t buf[256];
  stun_msg_writer w;
  assert_int_equal(
      stun_msg_write_header(&w, buf, sizeof(buf), m.method, m.cls, m.txid), 0);
  w.pad_byte = ' ';
  assert_int_equal(stun_msg_write_attr(&w, STUN_ATTR_SOFTWARE, m.software.data,
                                       m.software.len),
                   0);
  assert_int_equal(stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS,
                                              &m.xor_mapped_address),
                   0);
  assert_int_equal(
      stun_msg_write_integrity(&w, password_key(), strlen(rfc5769_password)),
      0);
  assert_int_equal(stun_msg_write_fingerprint(&w), 0);
  assert_int_equal(w.len, len);
  assert_memory_equal(buf, vec, len);
}

static void rfc5769_ipv4_response(void **state) {
  (void)state;
  check_response(sample_ipv4_response, sizeof(sample_ipv4_response),
                 "192.0.2.1:32853");
  reencode_response(sample_ipv4_response, sizeof(sample_ipv4_response));
}

static void rfc5769_ipv6_response(void **state) {
  (void)state;
  check_response(sample_ipv6_response, sizeof(sample_ipv6_response),
                 "[2001:db8:1234:5678:11:2233:4455:6677]:32853");
  reencode_response(sample_ipv6_response, sizeof(sample_ipv6_response));
}

static void rfc5769_long_term_request(void **state) {
  (void)state;
  stun_msg m;
  assert_int_equal(stun_msg_parse(sample_long_term_request,
                                  sizeof(sample_long_term_request), &m),
                   0);
  assert_int_equal(m.cls, STUN_CLASS_REQUEST);
  /* U+30DE U+30C8 U+30EA U+30C3 U+30AF U+30B9 in UTF-8. */
  assert_bytes(m.username, "\xe3\x83\x9e\xe3\x83\x88\xe3\x83\xaa\xe3\x83\x83"
                           "\xe3\x82\xaf\xe3\x82\xb9");
  assert_bytes(m.nonce, "f//499k954d6OL34oL9FSTvy64sA");
  assert_bytes(m.realm, "example.org");
  assert_false(m.has_fingerprint);
  /* "TheMatrIX" is the password after SASLprep, which the RFC gives. */
  uint8_t key[STUN_LONG_TERM_KEY_SIZE];
  char username[32];
  memcpy(username, m.username.data, m.username.len);
  username[m.username.len] = '\0';
  assert_int_equal(
      stun_msg_long_term_key(username, "example.org", "TheMatrIX", key), 0);
  assert_int_equal(stun_msg_check_integrity(&m, key, sizeof(key)), 0);
}

static void wrong_password_is_rejected(void **state) {
  (void)state;
  stun_msg m;
  assert_int_equal(stun_msg_parse(sample_request, sizeof(sample_request), &m),
                   0);
  err_clear();
  assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)"wrong", 5),
                   QP_ERR_STUN);
  assert_non_null(strstr(qp_last_error(), "MESSAGE-INTEGRITY does not match"));
}

static void altered_message_fails_fingerprint(void **state) {
  (void)state;
  uint8_t copy[sizeof(sample_request)];
  memcpy(copy, sample_request, sizeof(copy));
  copy[64] ^= 0x01; /* a byte of USERNAME's value */
  stun_msg m;
  assert_int_equal(stun_msg_parse(copy, sizeof(copy), &m), QP_ERR_STUN);
  assert_non_null(strstr(qp_last_error(), "FINGERPRINT mismatch"));
}

static void altered_message_without_fingerprint_fails_integrity(void **st) {
  (void)st;
  /* Drop FINGERPRINT (8 bytes) and fix the length, then alter USERNAME. */
  uint8_t copy[sizeof(sample_request) - 8];
  memcpy(copy, sample_request, sizeof(copy));
  copy[3] = 0x58 - 8;
  stun_msg m;
  assert_int_equal(stun_msg_parse(copy, sizeof(copy), &m), 0);
  assert_int_equal(
      stun_msg_check_integrity(&m, password_key(), strlen(rfc5769_password)),
      0);
  copy[64] ^= 0x01;
  assert_int_equal(stun_msg_parse(copy, sizeof(copy), &m), 0);
  assert_int_equal(
      stun_msg_check_integrity(&m, password_key(), strlen(rfc5769_password)),
      QP_ERR_STUN);
}

static void bad_cookie_is_rejected(void **state) {
  (void)state;
  uint8_t copy[sizeof(sample_request)];
  memcpy(copy, sample_request, sizeof(copy));
  copy[4] = 0x22;
  stun_msg m;
  assert_false(stun_msg_is_stun(copy, sizeof(copy)));
  assert_int_equal(stun_msg_parse(copy, sizeof(copy), &m), QP_ERR_STUN);
  assert_non_null(strstr(qp_last_error(), "magic cookie"));
}

static void first_bits_and_length_are_checked(void **state) {
  (void)state;
  uint8_t copy[sizeof(sample_request)];
  stun_msg m;
  memcpy(copy, sample_request, sizeof(copy));
  copy[0] = 0x40; /* a QUIC long header starts with 0b11, RTP with 0b10 */
  assert_false(stun_msg_is_stun(copy, sizeof(copy)));
  assert_int_equal(stun_msg_parse(copy, sizeof(copy), &m), QP_ERR_STUN);
  /* One byte short, one byte long, shorter than a header. */
  assert_false(stun_msg_is_stun(sample_request, sizeof(sample_request) - 1));
  assert_int_equal(
      stun_msg_parse(sample_request, sizeof(sample_request) - 4, &m),
      QP_ERR_STUN);
  assert_int_equal(stun_msg_parse(sample_request, 19, &m), QP_ERR_STUN);
  assert_false(stun_msg_is_stun(NULL, 0));
  assert_int_equal(stun_msg_parse(NULL, 0, &m), QP_ERR_INVALID);
}

static void truncated_attribute_is_rejected(void **state) {
  (void)state;
  /* Header claiming 8 bytes of attributes: one attribute of length 8
   * that has only 4 bytes of value. */
  uint8_t msg[] = {0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1,  2,
                   3,    4,    5,    6,    7,    8,    9,    10,   11, 12,
                   0x00, 0x24, 0x00, 0x08, 0,    0,    0,    1};
  stun_msg m;
  assert_int_equal(stun_msg_parse(msg, sizeof(msg), &m), QP_ERR_STUN);
  assert_non_null(strstr(qp_last_error(), "claims 8 bytes"));
  /* Padding missing: USERNAME of 1 byte needs 3 bytes of padding. */
  uint8_t nopad[] = {0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42, 1,  2,
                     3,    4,    5,    6,    7,    8,    9,    10,   11, 12,
                     0x00, 0x06, 0x00, 0x05, 'a',  'b',  'c',  'd'};
  assert_int_equal(stun_msg_parse(nopad, sizeof(nopad), &m), QP_ERR_STUN);
}

static void bad_address_family_is_rejected(void **state) {
  (void)state;
  uint8_t msg[] = {0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42,
                   1,    2,    3,    4,    5,    6,    7,    8,
                   9,    10,   11,   12,   0x00, 0x20, 0x00, 0x08,
                   0x00, 0x03, 0x12, 0x34, 1,    2,    3,    4};
  stun_msg m;
  assert_int_equal(stun_msg_parse(msg, sizeof(msg), &m), QP_ERR_STUN);
  msg[25] = 0x02; /* IPv6 family with an IPv4-sized value */
  assert_int_equal(stun_msg_parse(msg, sizeof(msg), &m), QP_ERR_STUN);
  msg[25] = 0x01;
  assert_int_equal(stun_msg_parse(msg, sizeof(msg), &m), 0);
  assert_true(m.has_xor_mapped_address);
}

static void unknown_attributes(void **state) {
  (void)state;
  uint8_t buf[128];
  uint8_t txid[STUN_TXID_SIZE] = {0};
  stun_msg_writer w;
  assert_int_equal(stun_msg_write_header(&w, buf, sizeof(buf),
                                         STUN_METHOD_BINDING,
                                         STUN_CLASS_REQUEST, txid),
                   0);
  assert_int_equal(stun_msg_write_attr(&w, 0x7777, "abc", 3), 0);
  assert_int_equal(stun_msg_write_attr(&w, 0xC001, "x", 1), 0);
  assert_int_equal(stun_msg_write_fingerprint(&w), 0);
  stun_msg m;
  assert_int_equal(stun_msg_parse(buf, w.len, &m), 0);
  assert_int_equal(m.unknown_required_count, 1);
  assert_int_equal(m.unknown_required[0], 0x7777);
}

static void attribute_after_fingerprint_is_rejected(void **state) {
  (void)state;
  uint8_t buf[128];
  uint8_t txid[STUN_TXID_SIZE] = {0};
  stun_msg_writer w;
  stun_msg_write_header(&w, buf, sizeof(buf), STUN_METHOD_BINDING,
                        STUN_CLASS_REQUEST, txid);
  assert_int_equal(stun_msg_write_fingerprint(&w), 0);
  assert_int_equal(stun_msg_write_u32(&w, STUN_ATTR_PRIORITY, 1), 0);
  /* Make the FINGERPRINT (at offset 20) right for the final length. */
  uint32_t crc = stun_msg_crc32(buf, STUN_HEADER_SIZE) ^ STUN_FINGERPRINT_XOR;
  buf[24] = (uint8_t)(crc >> 24), buf[25] = (uint8_t)(crc >> 16);
  buf[26] = (uint8_t)(crc >> 8), buf[27] = (uint8_t)crc;
  stun_msg m;
  assert_int_equal(stun_msg_parse(buf, w.len, &m), QP_ERR_STUN);
  assert_non_null(strstr(qp_last_error(), "follows FINGERPRINT"));
}

static void attributes_after_integrity_are_ignored(void **state) {
  (void)state;
  uint8_t buf[128];
  uint8_t txid[STUN_TXID_SIZE] = {1};
  stun_msg_writer w;
  stun_msg_write_header(&w, buf, sizeof(buf), STUN_METHOD_BINDING,
                        STUN_CLASS_REQUEST, txid);
  assert_int_equal(stun_msg_write_integrity(&w, (const uint8_t *)"k", 1), 0);
  assert_int_equal(stun_msg_write_u32(&w, STUN_ATTR_PRIORITY, 7), 0);
  stun_msg m;
  assert_int_equal(stun_msg_parse(buf, w.len, &m), 0);
  assert_false(m.has_priority);
  assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)"k", 1), 0);
}

static void roundtrip_every_attribute(void **state) {
  (void)state;
  uint8_t buf[512];
  uint8_t txid[STUN_TXID_SIZE];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  udp_addr_t v4, v6, other;
  assert_int_equal(udp_addr_parse("198.51.100.7:40000", 0, &v4), 0);
  assert_int_equal(udp_addr_parse("[2001:db8::42]:3478", 0, &v6), 0);
  assert_int_equal(udp_addr_parse("203.0.113.9:3479", 0, &other), 0);
  stun_msg_writer w;
  assert_int_equal(stun_msg_write_header(&w, buf, sizeof(buf),
                                         STUN_METHOD_BINDING, STUN_CLASS_ERROR,
                                         txid),
                   0);
  assert_int_equal(stun_msg_write_address(&w, STUN_ATTR_MAPPED_ADDRESS, &v4),
                   0);
  assert_int_equal(
      stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, &v6), 0);
  assert_int_equal(stun_msg_write_address(&w, STUN_ATTR_OTHER_ADDRESS, &other),
                   0);
  assert_int_equal(stun_msg_write_address(&w, STUN_ATTR_RESPONSE_ORIGIN, &v6),
                   0);
  assert_int_equal(stun_msg_write_u32(&w, STUN_ATTR_CHANGE_REQUEST,
                                      STUN_CHANGE_IP | STUN_CHANGE_PORT),
                   0);
  assert_int_equal(stun_msg_write_attr(&w, STUN_ATTR_USE_CANDIDATE, NULL, 0),
                   0);
  assert_int_equal(stun_msg_write_u64(&w, STUN_ATTR_ICE_CONTROLLING, 42), 0);
  assert_int_equal(stun_msg_write_error_code(&w, 487, "Role Conflict"), 0);
  assert_int_equal(stun_msg_write_integrity(&w, (const uint8_t *)"pw", 2), 0);
  assert_int_equal(
      stun_msg_write_integrity_sha256(&w, (const uint8_t *)"pw", 2), 0);
  assert_int_equal(stun_msg_write_fingerprint(&w), 0);

  stun_msg m;
  assert_int_equal(stun_msg_parse(buf, w.len, &m), 0);
  assert_int_equal(m.cls, STUN_CLASS_ERROR);
  assert_addr(&m.mapped_address, "198.51.100.7:40000");
  assert_addr(&m.xor_mapped_address, "[2001:db8::42]:3478");
  assert_addr(&m.other_address, "203.0.113.9:3479");
  assert_addr(&m.response_origin, "[2001:db8::42]:3478");
  assert_int_equal(m.change_request, STUN_CHANGE_IP | STUN_CHANGE_PORT);
  assert_true(m.use_candidate);
  assert_true(m.has_ice_controlling);
  assert_true(m.ice_tiebreaker == 42);
  assert_int_equal(m.error_code, 487);
  assert_bytes(m.error_reason, "Role Conflict");
  assert_true(m.integrity_offset > 0);
  assert_true(m.integrity_sha256_offset > m.integrity_offset);
  assert_true(m.has_fingerprint);
  assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)"pw", 2), 0);
  assert_int_equal(stun_msg_check_integrity(&m, (const uint8_t *)"pX", 2),
                   QP_ERR_STUN);
}

static void writer_refuses_overflow(void **state) {
  (void)state;
  uint8_t buf[32];
  uint8_t txid[STUN_TXID_SIZE] = {0};
  stun_msg_writer w;
  assert_int_equal(stun_msg_write_header(&w, buf, 19, STUN_METHOD_BINDING,
                                         STUN_CLASS_REQUEST, txid),
                   QP_ERR_INVALID);
  assert_int_equal(stun_msg_write_header(&w, buf, sizeof(buf),
                                         STUN_METHOD_BINDING,
                                         STUN_CLASS_REQUEST, txid),
                   0);
  assert_int_equal(stun_msg_write_attr(&w, STUN_ATTR_SOFTWARE, "12345678", 8),
                   0);
  assert_int_equal(stun_msg_write_fingerprint(&w), QP_ERR_INVALID);
  assert_int_equal(stun_msg_write_integrity(&w, (const uint8_t *)"k", 1),
                   QP_ERR_INVALID);
  /* Unchanged: still a valid 32-byte message. */
  stun_msg m;
  assert_int_equal(w.len, 32);
  assert_int_equal(stun_msg_parse(buf, w.len, &m), 0);
  assert_int_equal(stun_msg_write_error_code(&w, 200, "no"), QP_ERR_INVALID);
}

static void crc32_check_value(void **state) {
  (void)state;
  /* The standard check value of CRC-32/ISO-HDLC. */
  assert_int_equal(stun_msg_crc32((const uint8_t *)"123456789", 9),
                   0xCBF43926u);
}

/* xorshift32: a fixed-seed generator so the fuzz loop is reproducible. */
static uint32_t next_random(uint32_t *s) {
  uint32_t x = *s;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *s = x;
}

/* Mutate a copy of a vector: overwrite bytes, truncate, and sometimes make
 * the length field agree with the truncation so the attribute walk runs.
 * The copy is a heap block of exactly the parsed size, so ASan catches any
 * read past the end. Every parse result is acceptable; a crash is not. */
static void mutate_and_parse(const uint8_t *vec, size_t len, uint32_t *seed) {
  uint32_t r = next_random(seed);
  size_t cut = (r & 0x100) ? next_random(seed) % (len + 1) : len;
  uint8_t *copy = malloc(cut ? cut : 1);
  assert_non_null(copy);
  memcpy(copy, vec, cut);
  int writes = (int)(r % 4);
  for (int i = 0; i < writes && cut > 0; i++) {
    uint32_t x = next_random(seed);
    copy[x % cut] = (uint8_t)(x >> 16);
  }
  if ((r & 0x200) && cut >= STUN_HEADER_SIZE) {
    copy[2] = 0;
    copy[3] = (uint8_t)((cut - STUN_HEADER_SIZE) & 0xFC);
  }
  stun_msg m;
  (void)stun_msg_is_stun(copy, cut);
  if (stun_msg_parse(copy, cut, &m) == 0)
    (void)stun_msg_check_integrity(&m, password_key(),
                                   strlen(rfc5769_password));
  free(copy);
}

static void mutation_fuzz_never_crashes(void **state) {
  (void)state;
  /* 200000 mutated copies: a few seconds under ASan. */
  const struct {
    const uint8_t *data;
    size_t len;
  } vectors[] = {
      {sample_request, sizeof(sample_request)},
      {sample_ipv4_response, sizeof(sample_ipv4_response)},
      {sample_ipv6_response, sizeof(sample_ipv6_response)},
      {sample_long_term_request, sizeof(sample_long_term_request)},
  };
  uint32_t seed = 0x5354554E;
  for (int i = 0; i < 200000; i++)
    mutate_and_parse(vectors[i % 4].data, vectors[i % 4].len, &seed);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(rfc5769_sample_request_decodes),
      cmocka_unit_test(rfc5769_sample_request_reencodes),
      cmocka_unit_test(rfc5769_ipv4_response),
      cmocka_unit_test(rfc5769_ipv6_response),
      cmocka_unit_test(rfc5769_long_term_request),
      cmocka_unit_test(wrong_password_is_rejected),
      cmocka_unit_test(altered_message_fails_fingerprint),
      cmocka_unit_test(altered_message_without_fingerprint_fails_integrity),
      cmocka_unit_test(bad_cookie_is_rejected),
      cmocka_unit_test(first_bits_and_length_are_checked),
      cmocka_unit_test(truncated_attribute_is_rejected),
      cmocka_unit_test(bad_address_family_is_rejected),
      cmocka_unit_test(unknown_attributes),
      cmocka_unit_test(attribute_after_fingerprint_is_rejected),
      cmocka_unit_test(attributes_after_integrity_are_ignored),
      cmocka_unit_test(roundtrip_every_attribute),
      cmocka_unit_test(writer_refuses_overflow),
      cmocka_unit_test(crc32_check_value),
      cmocka_unit_test(mutation_fuzz_never_crashes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
