#include "stun/stun_msg.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <string.h>

#include "common/error.h"
#include "common/secret.h"

/* RFC 8489 section 14.3: USERNAME "MUST contain a UTF-8-encoded sequence
 * of fewer than 509 bytes"; RFC 5389 section 15.3 allowed "less than 513
 * bytes", so accept the older, larger bound. */
#define MAX_USERNAME_BYTES 512
/* RFC 8489 sections 14.9 (REALM), 14.10 (NONCE) and 14.14 (SOFTWARE):
 * "fewer than 128 characters (which can be as long as 509 bytes when
 * encoding them and as long as 763 bytes when decoding them)". */
#define MAX_TEXT_BYTES 763
#define MAX_REASON_ENCODE_BYTES 509
/* RFC 8489 section 14.6: MESSAGE-INTEGRITY-SHA256 "MAY be truncated ...
 * the value will be at least 16 bytes, and MUST be a multiple of 4". */
#define MIN_HMAC_SHA256_BYTES 16

/* Address attribute value (RFC 8489 sections 14.1 and 14.2):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |0 0 0 0 0 0 0 0|    Family     |         Port (or X-Port)      |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |        Address (or X-Address): 32 bits or 128 bits           |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * In the XOR form the port is XORed with the cookie's top 16 bits and the
 * address with the cookie (IPv4) or the cookie followed by the txid (IPv6).
 */
#define ADDR_FAMILY_IPV4 0x01
#define ADDR_FAMILY_IPV6 0x02
#define ADDR_IPV4_VALUE_SIZE 8
#define ADDR_IPV6_VALUE_SIZE 20

/* ERROR-CODE value (RFC 8489 section 14.8):
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |           Reserved, should be 0         |Class|     Number    |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |      Reason Phrase (variable)                                ..
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
#define ERROR_CODE_HEADER_SIZE 4

static uint16_t get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
         ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get64(const uint8_t *p) {
  return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

static void put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  put16(p, (uint16_t)(v >> 16));
  put16(p + 2, (uint16_t)v);
}

static size_t padded(size_t len) { return (len + 3) & ~(size_t)3; }

/* The message type interleaves method and class bits (section 5):
 *   bit 13..0 = M11 M10 M9 M8 M7 C1 M6 M5 M4 C0 M3 M2 M1 M0 */
static uint16_t encode_type(uint16_t method, stun_class cls) {
  return (uint16_t)((method & 0x000F) | ((method & 0x0070) << 1) |
                    ((method & 0x0F80) << 2) | ((cls & 1) << 4) |
                    ((cls & 2) << 7));
}

static uint16_t decode_method(uint16_t type) {
  return (uint16_t)((type & 0x000F) | ((type & 0x00E0) >> 1) |
                    ((type & 0x3E00) >> 2));
}

static stun_class decode_class(uint16_t type) {
  return (stun_class)(((type >> 4) & 1) | ((type >> 7) & 2));
}

uint32_t stun_msg_crc32(const uint8_t *data, size_t len) {
  /* Bitwise, reflected polynomial 0xEDB88320: no table, so no global
   * state; STUN messages are small enough that speed does not matter. */
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; i++) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; bit++)
      crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return crc ^ 0xFFFFFFFFu;
}

bool stun_msg_is_stun(const uint8_t *buf, size_t len) {
  if (!buf || len < STUN_HEADER_SIZE)
    return false;
  size_t msg_len = get16(buf + 2);
  return (buf[0] & 0xC0) == 0 && get32(buf + 4) == STUN_MAGIC_COOKIE &&
         msg_len % 4 == 0 && STUN_HEADER_SIZE + msg_len == len;
}

const char *stun_msg_type_name(uint16_t method, stun_class cls) {
  static const char *const binding[] = {"Binding request", "Binding indication",
                                        "Binding success response",
                                        "Binding error response"};
  if (method == STUN_METHOD_BINDING && (unsigned)cls < 4)
    return binding[cls];
  return "non-Binding STUN message";
}

/* ---- parsing ----------------------------------------------------------- */

static int parse_address(const stun_msg *msg, uint16_t type, const uint8_t *v,
                         size_t len, bool xored, udp_addr_t *out) {
  if (len < 4)
    return err_fail(QP_ERR_STUN,
                    "STUN address attribute 0x%04x is %zu bytes, "
                    "too short",
                    type, len);
  uint8_t family = v[1];
  uint16_t port = get16(v + 2);
  uint8_t mask[16];
  put32(mask, STUN_MAGIC_COOKIE);
  memcpy(mask + 4, msg->txid, STUN_TXID_SIZE);
  if (xored)
    port ^= (uint16_t)(STUN_MAGIC_COOKIE >> 16);
  memset(out, 0, sizeof(*out));
  if (family == ADDR_FAMILY_IPV4 && len == ADDR_IPV4_VALUE_SIZE) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
    uint8_t *ip = (uint8_t *)&sin->sin_addr;
    for (int i = 0; i < 4; i++)
      ip[i] = (uint8_t)(v[4 + i] ^ (xored ? mask[i] : 0));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    out->len = sizeof(*sin);
    return 0;
  }
  if (family == ADDR_FAMILY_IPV6 && len == ADDR_IPV6_VALUE_SIZE) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
    uint8_t *ip = (uint8_t *)&sin6->sin6_addr;
    for (int i = 0; i < 16; i++)
      ip[i] = (uint8_t)(v[4 + i] ^ (xored ? mask[i] : 0));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    out->len = sizeof(*sin6);
    return 0;
  }
  return err_fail(QP_ERR_STUN,
                  "STUN address attribute 0x%04x has family %u with %zu bytes; "
                  "expected IPv4 (1) in 8 or IPv6 (2) in 20",
                  type, family, len);
}

static int expect_len(uint16_t type, size_t len, size_t want) {
  if (len == want)
    return 0;
  return err_fail(QP_ERR_STUN,
                  "STUN attribute 0x%04x is %zu bytes long; it must be %zu",
                  type, len, want);
}

static int parse_text(uint16_t type, const uint8_t *v, size_t len, size_t max,
                      stun_bytes *out) {
  if (len > max)
    return err_fail(QP_ERR_STUN,
                    "STUN attribute 0x%04x is %zu bytes; at most %zu allowed",
                    type, len, max);
  if (!out->data) {
    out->data = v;
    out->len = len;
  }
  return 0;
}

static int parse_type_list(uint16_t type, const uint8_t *v, size_t len,
                           stun_bytes *out) {
  if (len % 2 != 0)
    return err_fail(QP_ERR_STUN, "STUN UNKNOWN-ATTRIBUTES of odd length %zu",
                    len);
  return parse_text(type, v, len, len, out);
}

static int parse_error_code(stun_msg *msg, const uint8_t *v, size_t len) {
  if (len < ERROR_CODE_HEADER_SIZE ||
      len > ERROR_CODE_HEADER_SIZE + STUN_MAX_REASON_BYTES)
    return err_fail(QP_ERR_STUN, "STUN ERROR-CODE attribute of %zu bytes", len);
  int cls = v[2] & 0x07;
  int number = v[3];
  if (cls < 3 || cls > 6 || number > 99)
    return err_fail(QP_ERR_STUN,
                    "STUN ERROR-CODE has class %d number %d; expected 3..6 "
                    "and 0..99",
                    cls, number);
  if (!msg->has_error_code) {
    msg->has_error_code = true;
    msg->error_code = cls * 100 + number;
    msg->error_reason.data = v + ERROR_CODE_HEADER_SIZE;
    msg->error_reason.len = len - ERROR_CODE_HEADER_SIZE;
  }
  return 0;
}

static int parse_hmac_sha256(stun_msg *msg, size_t offset, size_t len) {
  if (len < MIN_HMAC_SHA256_BYTES || len > STUN_HMAC_SHA256_SIZE ||
      len % 4 != 0)
    return err_fail(QP_ERR_STUN,
                    "STUN MESSAGE-INTEGRITY-SHA256 of %zu bytes; expected "
                    "16..32 in steps of 4",
                    len);
  msg->integrity_sha256_offset = offset;
  return 0;
}

static int check_fingerprint(stun_msg *msg, size_t offset, const uint8_t *v,
                             size_t len) {
  int rc = expect_len(STUN_ATTR_FINGERPRINT, len, 4);
  if (rc)
    return rc;
  uint32_t want = stun_msg_crc32(msg->raw, offset) ^ STUN_FINGERPRINT_XOR;
  if (get32(v) != want)
    return err_fail(QP_ERR_STUN,
                    "STUN FINGERPRINT mismatch: message says 0x%08x, content "
                    "gives 0x%08x",
                    get32(v), want);
  msg->has_fingerprint = true;
  return 0;
}

static void note_unknown(stun_msg *msg, uint16_t type) {
  if (type >= 0x8000 || msg->unknown_required_count >= STUN_MAX_UNKNOWN_ATTRS)
    return;
  msg->unknown_required[msg->unknown_required_count++] = type;
}

/* An address attribute: parsed once, the first occurrence wins. */
static int parse_address_once(stun_msg *msg, uint16_t type, const uint8_t *v,
                              size_t len, bool xored, bool *has,
                              udp_addr_t *out) {
  if (*has)
    return 0;
  int rc = parse_address(msg, type, v, len, xored, out);
  if (rc == 0)
    *has = true;
  return rc;
}

static int parse_u32(uint16_t type, const uint8_t *v, size_t len, bool *has,
                     uint32_t *out) {
  int rc = expect_len(type, len, 4);
  if (rc == 0 && !*has) {
    *has = true;
    *out = get32(v);
  }
  return rc;
}

/* RESPONSE-PORT (RFC 5780 section 7.5): a 16-bit port, then 16 bits of
 * padding that "MUST be ignored". */
static int parse_response_port(stun_msg *msg, const uint8_t *v, size_t len) {
  int rc = expect_len(STUN_ATTR_RESPONSE_PORT, len, 4);
  if (rc == 0 && !msg->has_response_port) {
    msg->has_response_port = true;
    msg->response_port = get16(v);
  }
  return rc;
}

static int parse_tiebreaker(stun_msg *msg, uint16_t type, const uint8_t *v,
                            size_t len, bool *has) {
  int rc = expect_len(type, len, 8);
  if (rc == 0 && !msg->has_ice_controlling && !msg->has_ice_controlled)
    msg->ice_tiebreaker = get64(v);
  if (rc == 0)
    *has = true;
  return rc;
}

static int parse_attr(stun_msg *msg, uint16_t type, size_t offset,
                      const uint8_t *v, size_t len) {
  switch (type) {
  case STUN_ATTR_MAPPED_ADDRESS:
    return parse_address_once(msg, type, v, len, false,
                              &msg->has_mapped_address, &msg->mapped_address);
  case STUN_ATTR_XOR_MAPPED_ADDRESS:
    return parse_address_once(msg, type, v, len, true,
                              &msg->has_xor_mapped_address,
                              &msg->xor_mapped_address);
  case STUN_ATTR_RESPONSE_ORIGIN:
    return parse_address_once(msg, type, v, len, false,
                              &msg->has_response_origin, &msg->response_origin);
  case STUN_ATTR_OTHER_ADDRESS:
    return parse_address_once(msg, type, v, len, false, &msg->has_other_address,
                              &msg->other_address);
  case STUN_ATTR_CHANGE_REQUEST:
    return parse_u32(type, v, len, &msg->has_change_request,
                     &msg->change_request);
  case STUN_ATTR_PADDING:
    if (msg->padding_len == 0)
      msg->padding_len = len;
    return 0;
  case STUN_ATTR_RESPONSE_PORT:
    return parse_response_port(msg, v, len);
  case STUN_ATTR_PRIORITY:
    return parse_u32(type, v, len, &msg->has_priority, &msg->priority);
  case STUN_ATTR_USE_CANDIDATE:
    msg->use_candidate = true;
    return expect_len(type, len, 0);
  case STUN_ATTR_ICE_CONTROLLING:
    return parse_tiebreaker(msg, type, v, len, &msg->has_ice_controlling);
  case STUN_ATTR_ICE_CONTROLLED:
    return parse_tiebreaker(msg, type, v, len, &msg->has_ice_controlled);
  case STUN_ATTR_ERROR_CODE:
    return parse_error_code(msg, v, len);
  case STUN_ATTR_UNKNOWN_ATTRIBUTES:
    return parse_type_list(type, v, len, &msg->unknown_attributes);
  case STUN_ATTR_USERNAME:
    return parse_text(type, v, len, MAX_USERNAME_BYTES, &msg->username);
  case STUN_ATTR_SOFTWARE:
    return parse_text(type, v, len, MAX_TEXT_BYTES, &msg->software);
  case STUN_ATTR_REALM:
    return parse_text(type, v, len, MAX_TEXT_BYTES, &msg->realm);
  case STUN_ATTR_NONCE:
    return parse_text(type, v, len, MAX_TEXT_BYTES, &msg->nonce);
  case STUN_ATTR_MESSAGE_INTEGRITY:
    msg->integrity_offset = offset;
    return expect_len(type, len, STUN_HMAC_SHA1_SIZE);
  case STUN_ATTR_MESSAGE_INTEGRITY_SHA256:
    return parse_hmac_sha256(msg, offset, len);
  case STUN_ATTR_FINGERPRINT:
    return check_fingerprint(msg, offset, v, len);
  default:
    note_unknown(msg, type);
    return 0;
  }
}

static int parse_header(const uint8_t *buf, size_t len, stun_msg *out) {
  if (len < STUN_HEADER_SIZE)
    return err_fail(QP_ERR_STUN,
                    "STUN message of %zu bytes is shorter than the 20-byte "
                    "header",
                    len);
  if (buf[0] & 0xC0)
    return err_fail(QP_ERR_STUN, "not STUN: the first two bits are not zero");
  if (get32(buf + 4) != STUN_MAGIC_COOKIE)
    return err_fail(QP_ERR_STUN,
                    "not STUN (RFC 5389+): magic cookie is 0x%08x, not "
                    "0x2112a442",
                    get32(buf + 4));
  size_t msg_len = get16(buf + 2);
  if (msg_len % 4 != 0 || STUN_HEADER_SIZE + msg_len != len)
    return err_fail(QP_ERR_STUN,
                    "STUN Message Length %zu does not fit a %zu-byte datagram "
                    "(must be a multiple of 4 equal to the bytes after the "
                    "header)",
                    msg_len, len);
  memset(out, 0, sizeof(*out));
  out->raw = buf;
  out->raw_len = len;
  uint16_t type = get16(buf);
  out->method = decode_method(type);
  out->cls = decode_class(type);
  memcpy(out->txid, buf + 8, STUN_TXID_SIZE);
  return 0;
}

/* Only these may follow MESSAGE-INTEGRITY (RFC 8489 section 14.5); only
 * FINGERPRINT may follow MESSAGE-INTEGRITY-SHA256 (section 14.6). */
static bool ignored_after_integrity(const stun_msg *msg, uint16_t type) {
  if (type == STUN_ATTR_FINGERPRINT)
    return false;
  if (msg->integrity_sha256_offset)
    return true;
  return msg->integrity_offset && type != STUN_ATTR_MESSAGE_INTEGRITY_SHA256;
}

int stun_msg_parse(const uint8_t *buf, size_t len, stun_msg *out) {
  if (!buf || !out)
    return err_fail(QP_ERR_INVALID, "stun_msg_parse: NULL argument");
  int rc = parse_header(buf, len, out);
  size_t offset = STUN_HEADER_SIZE;
  while (rc == 0 && offset < len) {
    if (len - offset < STUN_ATTR_HEADER_SIZE)
      return err_fail(QP_ERR_STUN,
                      "STUN attribute header truncated at "
                      "offset %zu",
                      offset);
    uint16_t type = get16(buf + offset);
    size_t attr_len = get16(buf + offset + 2);
    size_t room = len - offset - STUN_ATTR_HEADER_SIZE;
    if (padded(attr_len) > room)
      return err_fail(QP_ERR_STUN,
                      "STUN attribute 0x%04x at offset %zu claims %zu bytes "
                      "(padded %zu) but only %zu remain",
                      type, offset, attr_len, padded(attr_len), room);
    if (out->has_fingerprint)
      return err_fail(QP_ERR_STUN,
                      "STUN attribute 0x%04x follows FINGERPRINT, which must "
                      "be last",
                      type);
    if (!ignored_after_integrity(out, type))
      rc = parse_attr(out, type, offset, buf + offset + STUN_ATTR_HEADER_SIZE,
                      attr_len);
    offset += STUN_ATTR_HEADER_SIZE + padded(attr_len);
  }
  return rc;
}

bool stun_msg_find_attr(const stun_msg *msg, uint16_t type, stun_bytes *out) {
  if (!msg || !msg->raw || !out)
    return false;
  /* The parse ignored what follows the first integrity attribute. */
  size_t end = msg->raw_len;
  if (msg->integrity_offset && msg->integrity_offset < end)
    end = msg->integrity_offset;
  if (msg->integrity_sha256_offset && msg->integrity_sha256_offset < end)
    end = msg->integrity_sha256_offset;
  size_t offset = STUN_HEADER_SIZE;
  while (end - offset >= STUN_ATTR_HEADER_SIZE) {
    size_t len = get16(msg->raw + offset + 2);
    if (padded(len) > end - offset - STUN_ATTR_HEADER_SIZE)
      return false;
    if (get16(msg->raw + offset) == type) {
      *out = (stun_bytes){msg->raw + offset + STUN_ATTR_HEADER_SIZE, len};
      return true;
    }
    offset += STUN_ATTR_HEADER_SIZE + padded(len);
  }
  return false;
}

int stun_msg_decode_address(const stun_msg *msg, uint16_t type,
                            stun_bytes value, bool xored, udp_addr_t *out) {
  if (!msg || !value.data || !out)
    return err_fail(QP_ERR_INVALID, "stun_msg_decode_address: NULL argument");
  return parse_address(msg, type, value.data, value.len, xored, out);
}

/* ---- integrity --------------------------------------------------------- */

/* HMAC over the message up to the integrity attribute at `offset`, with the
 * header's length rewritten to end just after that attribute (RFC 8489
 * section 14.5). Streams the three pieces so the input is never copied. */
static int hmac_prefix(gnutls_mac_algorithm_t alg, const uint8_t *msg,
                       size_t offset, size_t attr_len, const uint8_t *key,
                       size_t key_len, uint8_t *digest) {
  uint8_t length_field[2];
  put16(length_field, (uint16_t)(offset + STUN_ATTR_HEADER_SIZE + attr_len -
                                 STUN_HEADER_SIZE));
  gnutls_hmac_hd_t h;
  int rc = gnutls_hmac_init(&h, alg, key_len ? (const void *)key : "", key_len);
  if (rc < 0)
    return err_fail(QP_ERR_INTERNAL, "GnuTLS HMAC init failed: %s",
                    gnutls_strerror(rc));
  if (gnutls_hmac(h, msg, 2) < 0 || gnutls_hmac(h, length_field, 2) < 0 ||
      gnutls_hmac(h, msg + 4, offset - 4) < 0) {
    gnutls_hmac_deinit(h, NULL);
    return err_fail(QP_ERR_INTERNAL, "GnuTLS HMAC computation failed");
  }
  gnutls_hmac_deinit(h, digest);
  return 0;
}

static int check_hmac(const stun_msg *msg, gnutls_mac_algorithm_t alg,
                      size_t offset, const uint8_t *key, size_t key_len) {
  size_t attr_len = get16(msg->raw + offset + 2);
  uint8_t digest[STUN_HMAC_SHA256_SIZE];
  int rc = hmac_prefix(alg, msg->raw, offset, attr_len, key, key_len, digest);
  if (rc)
    return rc;
  const uint8_t *got = msg->raw + offset + STUN_ATTR_HEADER_SIZE;
  if (!secret_equal(got, digest, attr_len))
    return err_fail(QP_ERR_STUN,
                    "STUN %s does not match: wrong password or altered "
                    "message",
                    alg == GNUTLS_MAC_SHA1 ? "MESSAGE-INTEGRITY"
                                           : "MESSAGE-INTEGRITY-SHA256");
  return 0;
}

int stun_msg_check_integrity(const stun_msg *msg, const uint8_t *key,
                             size_t key_len) {
  if (!msg || !msg->raw || (!key && key_len))
    return err_fail(QP_ERR_INVALID, "stun_msg_check_integrity: NULL argument");
  if (msg->integrity_sha256_offset)
    return check_hmac(msg, GNUTLS_MAC_SHA256, msg->integrity_sha256_offset, key,
                      key_len);
  if (msg->integrity_offset)
    return check_hmac(msg, GNUTLS_MAC_SHA1, msg->integrity_offset, key,
                      key_len);
  return err_fail(QP_ERR_STUN, "STUN message has no MESSAGE-INTEGRITY");
}

int stun_msg_long_term_key(const char *username, const char *realm,
                           const char *password,
                           uint8_t key[STUN_LONG_TERM_KEY_SIZE]) {
  if (!username || !realm || !password || !key)
    return err_fail(QP_ERR_INVALID, "stun_msg_long_term_key: NULL argument");
  gnutls_hash_hd_t h;
  int rc = gnutls_hash_init(&h, GNUTLS_DIG_MD5);
  if (rc < 0)
    return err_fail(QP_ERR_INTERNAL, "GnuTLS MD5 unavailable: %s",
                    gnutls_strerror(rc));
  gnutls_hash(h, username, strlen(username));
  gnutls_hash(h, ":", 1);
  gnutls_hash(h, realm, strlen(realm));
  gnutls_hash(h, ":", 1);
  gnutls_hash(h, password, strlen(password));
  gnutls_hash_deinit(h, key);
  return 0;
}

int stun_msg_new_txid(uint8_t txid[STUN_TXID_SIZE]) {
  int rc = gnutls_rnd(GNUTLS_RND_NONCE, txid, STUN_TXID_SIZE);
  if (rc < 0)
    return err_fail(QP_ERR_INTERNAL, "no random transaction id: %s",
                    gnutls_strerror(rc));
  return 0;
}

/* ---- writing ----------------------------------------------------------- */

static void set_length(stun_msg_writer *w, size_t total) {
  put16(w->buf + 2, (uint16_t)(total - STUN_HEADER_SIZE));
}

static int check_room(const stun_msg_writer *w, size_t value_len) {
  size_t need = STUN_ATTR_HEADER_SIZE + padded(value_len);
  if (!w || !w->buf)
    return err_fail(QP_ERR_INVALID, "STUN writer used before its header");
  if (value_len > 0xFFFF || need > w->cap - w->len ||
      w->len + need > STUN_MAX_MESSAGE_SIZE)
    return err_fail(QP_ERR_INVALID,
                    "STUN attribute of %zu bytes does not fit: %zu of %zu "
                    "bytes used",
                    value_len, w->len, w->cap);
  return 0;
}

int stun_msg_write_header(stun_msg_writer *w, uint8_t *buf, size_t cap,
                          uint16_t method, stun_class cls,
                          const uint8_t txid[STUN_TXID_SIZE]) {
  if (!w || !buf || !txid || cap < STUN_HEADER_SIZE || method > 0xFFF)
    return err_fail(QP_ERR_INVALID,
                    "stun_msg_write_header: bad argument (buffer of %zu "
                    "bytes, method 0x%x)",
                    cap, method);
  *w = (stun_msg_writer){.buf = buf, .cap = cap, .len = STUN_HEADER_SIZE};
  put16(buf, encode_type(method, cls));
  put16(buf + 2, 0);
  put32(buf + 4, STUN_MAGIC_COOKIE);
  memcpy(buf + 8, txid, STUN_TXID_SIZE);
  return 0;
}

int stun_msg_write_attr(stun_msg_writer *w, uint16_t type, const void *value,
                        size_t len) {
  int rc = check_room(w, len);
  if (rc)
    return rc;
  uint8_t *p = w->buf + w->len;
  put16(p, type);
  put16(p + 2, (uint16_t)len);
  if (len)
    memcpy(p + STUN_ATTR_HEADER_SIZE, value, len);
  memset(p + STUN_ATTR_HEADER_SIZE + len, w->pad_byte, padded(len) - len);
  w->len += STUN_ATTR_HEADER_SIZE + padded(len);
  set_length(w, w->len);
  return 0;
}

int stun_msg_write_u32(stun_msg_writer *w, uint16_t type, uint32_t value) {
  uint8_t v[4];
  put32(v, value);
  return stun_msg_write_attr(w, type, v, sizeof(v));
}

int stun_msg_write_u64(stun_msg_writer *w, uint16_t type, uint64_t value) {
  uint8_t v[8];
  put32(v, (uint32_t)(value >> 32));
  put32(v + 4, (uint32_t)value);
  return stun_msg_write_attr(w, type, v, sizeof(v));
}

static int write_address(stun_msg_writer *w, uint16_t type,
                         const udp_addr_t *addr, bool xored) {
  if (!w || !w->buf || !addr)
    return err_fail(QP_ERR_INVALID, "STUN address attribute: NULL argument");
  /* A dual-stack socket's IPv4 peer (IPv4-mapped) is an IPv4 address on
   * the wire: the peer or TURN server only knows it as that. */
  udp_addr_t plain;
  udp_addr_unmap(addr, &plain);
  addr = &plain;
  uint8_t v[ADDR_IPV6_VALUE_SIZE] = {0};
  uint8_t mask[16];
  put32(mask, STUN_MAGIC_COOKIE);
  memcpy(mask + 4, w->buf + 8, STUN_TXID_SIZE);
  size_t ip_len;
  const uint8_t *ip;
  if (addr->ss.ss_family == AF_INET) {
    v[1] = ADDR_FAMILY_IPV4;
    ip = (const uint8_t *)&((const struct sockaddr_in *)&addr->ss)->sin_addr;
    ip_len = 4;
  } else if (addr->ss.ss_family == AF_INET6) {
    v[1] = ADDR_FAMILY_IPV6;
    ip = (const uint8_t *)&((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
    ip_len = 16;
  } else {
    return err_fail(QP_ERR_INVALID,
                    "STUN address attribute 0x%04x: address "
                    "family %d is neither IPv4 nor IPv6",
                    type, addr->ss.ss_family);
  }
  uint16_t port = udp_addr_port(addr);
  put16(v + 2, xored ? (uint16_t)(port ^ (STUN_MAGIC_COOKIE >> 16)) : port);
  for (size_t i = 0; i < ip_len; i++)
    v[4 + i] = (uint8_t)(ip[i] ^ (xored ? mask[i] : 0));
  return stun_msg_write_attr(w, type, v, 4 + ip_len);
}

int stun_msg_write_address(stun_msg_writer *w, uint16_t type,
                           const udp_addr_t *addr) {
  return write_address(w, type, addr, false);
}

int stun_msg_write_xor_address(stun_msg_writer *w, uint16_t type,
                               const udp_addr_t *addr) {
  return write_address(w, type, addr, true);
}

int stun_msg_write_padding(stun_msg_writer *w, size_t len) {
  int rc = check_room(w, len);
  if (rc)
    return rc;
  uint8_t *p = w->buf + w->len;
  put16(p, STUN_ATTR_PADDING);
  put16(p + 2, (uint16_t)len);
  memset(p + STUN_ATTR_HEADER_SIZE, 0, padded(len));
  w->len += STUN_ATTR_HEADER_SIZE + padded(len);
  set_length(w, w->len);
  return 0;
}

int stun_msg_write_error_code(stun_msg_writer *w, int code,
                              const char *reason) {
  size_t reason_len = reason ? strlen(reason) : 0;
  if (code < 300 || code > 699 || reason_len > MAX_REASON_ENCODE_BYTES)
    return err_fail(QP_ERR_INVALID,
                    "STUN ERROR-CODE %d with a %zu-byte reason is not "
                    "encodable",
                    code, reason_len);
  uint8_t v[ERROR_CODE_HEADER_SIZE + MAX_REASON_ENCODE_BYTES] = {0};
  v[2] = (uint8_t)(code / 100);
  v[3] = (uint8_t)(code % 100);
  if (reason_len)
    memcpy(v + ERROR_CODE_HEADER_SIZE, reason, reason_len);
  return stun_msg_write_attr(w, STUN_ATTR_ERROR_CODE, v,
                             ERROR_CODE_HEADER_SIZE + reason_len);
}

static int write_hmac(stun_msg_writer *w, uint16_t type,
                      gnutls_mac_algorithm_t alg, size_t digest_len,
                      const uint8_t *key, size_t key_len) {
  int rc = check_room(w, digest_len);
  if (rc)
    return rc;
  if (!key && key_len)
    return err_fail(QP_ERR_INVALID, "STUN integrity: NULL key");
  /* The HMAC covers a header whose length already counts this attribute. */
  set_length(w, w->len + STUN_ATTR_HEADER_SIZE + digest_len);
  uint8_t digest[STUN_HMAC_SHA256_SIZE];
  rc = gnutls_hmac_fast(alg, key_len ? (const void *)key : "", key_len, w->buf,
                        w->len, digest);
  if (rc < 0) {
    set_length(w, w->len);
    return err_fail(QP_ERR_INTERNAL, "GnuTLS HMAC failed: %s",
                    gnutls_strerror(rc));
  }
  return stun_msg_write_attr(w, type, digest, digest_len);
}

int stun_msg_write_integrity(stun_msg_writer *w, const uint8_t *key,
                             size_t key_len) {
  return write_hmac(w, STUN_ATTR_MESSAGE_INTEGRITY, GNUTLS_MAC_SHA1,
                    STUN_HMAC_SHA1_SIZE, key, key_len);
}

int stun_msg_write_integrity_sha256(stun_msg_writer *w, const uint8_t *key,
                                    size_t key_len) {
  return write_hmac(w, STUN_ATTR_MESSAGE_INTEGRITY_SHA256, GNUTLS_MAC_SHA256,
                    STUN_HMAC_SHA256_SIZE, key, key_len);
}

int stun_msg_write_fingerprint(stun_msg_writer *w) {
  int rc = check_room(w, 4);
  if (rc)
    return rc;
  set_length(w, w->len + STUN_ATTR_HEADER_SIZE + 4);
  uint32_t crc = stun_msg_crc32(w->buf, w->len) ^ STUN_FINGERPRINT_XOR;
  return stun_msg_write_u32(w, STUN_ATTR_FINGERPRINT, crc);
}
