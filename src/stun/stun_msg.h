/*
 * stun_msg.h: the STUN message codec (RFC 8489, which obsoletes RFC 5389),
 * with the attributes of RFC 5780 (NAT behavior discovery) and RFC 8445
 * (ICE). Sans-I/O: bytes in, struct out, and a writer that builds a message
 * in the caller's buffer. Nothing here allocates.
 *
 * Every message (RFC 8489 section 5):
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |0 0|     STUN Message Type     |         Message Length        |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Magic Cookie                          |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                                                               |
 *   |                     Transaction ID (96 bits)                  |
 *   |                                                               |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The Message Length counts the attributes only (not the 20-byte header)
 * and is a multiple of 4. Each attribute (section 14) is a TLV padded to 4
 * bytes; the Length field does not count the padding:
 *
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Type                  |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                         Value (variable)                ....
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
#ifndef QP_STUN_MSG_H
#define QP_STUN_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "udp/udp.h"

/* RFC 8489 section 18.4: the default port of STUN over UDP, used when a
 * STUN server is given as a host without a port. */
#define STUN_DEFAULT_PORT 3478

#define STUN_HEADER_SIZE 20
#define STUN_ATTR_HEADER_SIZE 4
#define STUN_TXID_SIZE 12
/* RFC 8489 section 5: "The magic cookie field MUST contain the fixed value
 * 0x2112A442 in network byte order." */
#define STUN_MAGIC_COOKIE 0x2112A442u
/* RFC 8489 section 14.7: the FINGERPRINT value is "the CRC-32 of the STUN
 * message up to (but excluding) the FINGERPRINT attribute itself, XOR'ed
 * with the 32-bit value 0x5354554e". */
#define STUN_FINGERPRINT_XOR 0x5354554Eu
#define STUN_HMAC_SHA1_SIZE 20
#define STUN_HMAC_SHA256_SIZE 32
/* The long-term credential key is MD5(username ":" realm ":" password). */
#define STUN_LONG_TERM_KEY_SIZE 16
/* Largest STUN message: the 16-bit Message Length plus the header. */
#define STUN_MAX_MESSAGE_SIZE (STUN_HEADER_SIZE + 65535)
/* RFC 8489 section 14.9 (ERROR-CODE): "The reason phrase MUST be a UTF-8
 * encoded sequence of fewer than 128 characters (which can be as long as
 * 509 bytes when encoding them or 763 bytes when decoding them)." */
#define STUN_MAX_REASON_BYTES 763
/* Comprehension-required attributes we did not understand that a parse
 * remembers, enough for one 420 (Unknown Attribute) answer. */
#define STUN_MAX_UNKNOWN_ATTRS 8

enum stun_method {
  STUN_METHOD_BINDING = 0x001,
};

/* The two class bits C1 C0 of the message type (RFC 8489 section 5). */
typedef enum stun_class {
  STUN_CLASS_REQUEST = 0,
  STUN_CLASS_INDICATION = 1,
  STUN_CLASS_SUCCESS = 2,
  STUN_CLASS_ERROR = 3,
} stun_class;

/* Attribute types (IANA "STUN Attributes" registry). 0x0000-0x7FFF are
 * comprehension-required, 0x8000-0xFFFF comprehension-optional. */
enum stun_attr {
  STUN_ATTR_MAPPED_ADDRESS = 0x0001,
  STUN_ATTR_CHANGE_REQUEST = 0x0003, /* RFC 5780 */
  STUN_ATTR_USERNAME = 0x0006,
  STUN_ATTR_MESSAGE_INTEGRITY = 0x0008,
  STUN_ATTR_ERROR_CODE = 0x0009,
  STUN_ATTR_UNKNOWN_ATTRIBUTES = 0x000A,
  STUN_ATTR_REALM = 0x0014,
  STUN_ATTR_NONCE = 0x0015,
  STUN_ATTR_MESSAGE_INTEGRITY_SHA256 = 0x001C,
  STUN_ATTR_XOR_MAPPED_ADDRESS = 0x0020,
  STUN_ATTR_PRIORITY = 0x0024,      /* RFC 8445 */
  STUN_ATTR_USE_CANDIDATE = 0x0025, /* RFC 8445 */
  STUN_ATTR_PADDING = 0x0026,       /* RFC 5780 */
  STUN_ATTR_RESPONSE_PORT = 0x0027, /* RFC 5780 */
  STUN_ATTR_SOFTWARE = 0x8022,
  STUN_ATTR_FINGERPRINT = 0x8028,
  STUN_ATTR_ICE_CONTROLLED = 0x8029,  /* RFC 8445 */
  STUN_ATTR_ICE_CONTROLLING = 0x802A, /* RFC 8445 */
  STUN_ATTR_RESPONSE_ORIGIN = 0x802B, /* RFC 5780 */
  STUN_ATTR_OTHER_ADDRESS = 0x802C,   /* RFC 5780 */
};

/* CHANGE-REQUEST flags (RFC 5780 section 7.2). */
#define STUN_CHANGE_IP 0x4u
#define STUN_CHANGE_PORT 0x2u

/* ERROR-CODE values we produce or act on (RFC 8489 section 14.8). */
enum stun_error_code {
  STUN_ERROR_BAD_REQUEST = 400,
  STUN_ERROR_UNAUTHORIZED = 401,
  STUN_ERROR_UNKNOWN_ATTRIBUTE = 420,
  STUN_ERROR_ROLE_CONFLICT = 487, /* RFC 8445 */
  STUN_ERROR_SERVER_ERROR = 500,
};

/* Bytes inside the parsed buffer; data is NULL when the attribute is
 * absent. Not NUL-terminated. */
typedef struct stun_bytes {
  const uint8_t *data;
  size_t len;
} stun_bytes;

/*
 * A parsed message. Byte fields point into the buffer given to
 * stun_msg_parse(): keep that buffer alive and unchanged while using them.
 * When an attribute appears twice, the first one counts (RFC 8489 section
 * 14: "only the first occurrence needs to be processed").
 */
typedef struct stun_msg {
  const uint8_t *raw; /* the parsed buffer */
  size_t raw_len;     /* header + attributes */
  uint16_t method;
  stun_class cls;
  uint8_t txid[STUN_TXID_SIZE];

  bool has_mapped_address;
  bool has_xor_mapped_address;
  bool has_response_origin;
  bool has_other_address;
  udp_addr_t mapped_address;
  udp_addr_t xor_mapped_address; /* already un-XORed */
  udp_addr_t response_origin;
  udp_addr_t other_address;

  bool has_change_request;
  uint32_t change_request; /* STUN_CHANGE_IP | STUN_CHANGE_PORT */
  bool has_response_port;
  uint16_t response_port; /* RFC 5780 RESPONSE-PORT */
  size_t padding_len;     /* RFC 5780 PADDING value length, 0 if absent */
  bool has_priority;
  uint32_t priority;
  bool use_candidate;
  bool has_ice_controlling;
  bool has_ice_controlled;
  uint64_t ice_tiebreaker; /* of ICE-CONTROLLING or ICE-CONTROLLED */

  bool has_error_code;
  int error_code; /* 300..699 */
  stun_bytes error_reason;

  stun_bytes unknown_attributes; /* UNKNOWN-ATTRIBUTES: 16-bit types */
  stun_bytes username;
  stun_bytes software;
  stun_bytes realm;
  stun_bytes nonce;

  /* Offsets of the integrity attributes' headers in raw; 0 when absent
   * (no attribute can start at offset 0). */
  size_t integrity_offset;
  size_t integrity_sha256_offset;
  /* True when a FINGERPRINT was present; the parse already checked it. */
  bool has_fingerprint;

  /* Comprehension-required attributes (type < 0x8000) we do not know. */
  uint16_t unknown_required[STUN_MAX_UNKNOWN_ATTRS];
  size_t unknown_required_count;
} stun_msg;

/*
 * Quick test for demultiplexing a datagram that may be STUN or QUIC
 * (RFC 7983 section 7: STUN's first byte is 0..3; here also the magic
 * cookie and a Message Length that matches the datagram). Never reads
 * beyond len.
 */
bool stun_msg_is_stun(const uint8_t *buf, size_t len);

/*
 * Parse one whole message of exactly len bytes (one UDP datagram). Checks
 * every length, the attribute padding, the address families and the
 * FINGERPRINT if present. Attributes after MESSAGE-INTEGRITY other than
 * MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are ignored (RFC 8489 section
 * 14.5); anything after FINGERPRINT makes the message malformed.
 * Returns 0, or QP_ERR_STUN with a message saying what is wrong and where
 * (out is then unspecified), or QP_ERR_INVALID for NULL arguments.
 */
int stun_msg_parse(const uint8_t *buf, size_t len, stun_msg *out);

/*
 * Check the message's integrity with a key: for the short-term credential
 * mechanism the key is the password itself; for the long-term one, see
 * stun_msg_long_term_key(). Uses MESSAGE-INTEGRITY-SHA256 when present,
 * else MESSAGE-INTEGRITY, and compares in constant time.
 * Returns 0, or QP_ERR_STUN (no integrity attribute, or mismatch).
 */
int stun_msg_check_integrity(const stun_msg *msg, const uint8_t *key,
                             size_t key_len);

/*
 * The value of the first attribute of `type` that the parse looked at (none
 * after MESSAGE-INTEGRITY but the integrity ones and FINGERPRINT), for
 * attributes stun_msg has no field for, e.g. TURN's (RFC 8656). Returns
 * true and sets *out (pointing into msg->raw) when present.
 */
bool stun_msg_find_attr(const stun_msg *msg, uint16_t type, stun_bytes *out);

/* Decode an address attribute value found in msg: the plain form (RFC 8489
 * section 14.1) or the XOR form (section 14.2, using msg's txid), e.g.
 * XOR-RELAYED-ADDRESS. Returns 0, or QP_ERR_STUN naming the attribute. */
int stun_msg_decode_address(const stun_msg *msg, uint16_t type,
                            stun_bytes value, bool xored, udp_addr_t *out);

/* key = MD5(username ":" realm ":" password) (RFC 8489 section 9.2.2),
 * for strings already processed by OpaqueString/SASLprep: this function
 * does no Unicode processing. Returns 0 or QP_ERR_INVALID/QP_ERR_INTERNAL. */
int stun_msg_long_term_key(const char *username, const char *realm,
                           const char *password,
                           uint8_t key[STUN_LONG_TERM_KEY_SIZE]);

/* CRC-32 (ISO-HDLC, the one of zlib and Ethernet) of len bytes. */
uint32_t stun_msg_crc32(const uint8_t *data, size_t len);

/* Fill txid with 96 random bits (GnuTLS nonce generator). Returns 0 or
 * QP_ERR_INTERNAL. */
int stun_msg_new_txid(uint8_t txid[STUN_TXID_SIZE]);

/* "Binding request", "Binding success response", ... for logs. */
const char *stun_msg_type_name(uint16_t method, stun_class cls);

/*
 * The writer builds a message in a caller-owned buffer. After each
 * successful call, buf[0..len) is a complete message whose header length is
 * already up to date. A call that fails (QP_ERR_INVALID: the buffer is too
 * small or an argument is wrong) leaves the message as it was.
 * MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT must be
 * written last, in that order.
 */
typedef struct stun_msg_writer {
  uint8_t *buf;
  size_t cap;
  size_t len;
  /* Padding byte after values whose length is not a multiple of 4. RFC
   * 8489 says padding "MUST be ignored by the receiver" and may be any
   * value; 0 by default, ' ' reproduces the RFC 5769 test vectors. */
  uint8_t pad_byte;
} stun_msg_writer;

int stun_msg_write_header(stun_msg_writer *w, uint8_t *buf, size_t cap,
                          uint16_t method, stun_class cls,
                          const uint8_t txid[STUN_TXID_SIZE]);
int stun_msg_write_attr(stun_msg_writer *w, uint16_t type, const void *value,
                        size_t len);
int stun_msg_write_u32(stun_msg_writer *w, uint16_t type, uint32_t value);
int stun_msg_write_u64(stun_msg_writer *w, uint16_t type, uint64_t value);
/* MAPPED-ADDRESS, RESPONSE-ORIGIN, OTHER-ADDRESS: the plain encoding. */
int stun_msg_write_address(stun_msg_writer *w, uint16_t type,
                           const udp_addr_t *addr);
/* XOR-MAPPED-ADDRESS: the XOR encoding (uses the header's txid). */
int stun_msg_write_xor_address(stun_msg_writer *w, uint16_t type,
                               const udp_addr_t *addr);
/* PADDING (RFC 5780 section 7.6) of len zero bytes. */
int stun_msg_write_padding(stun_msg_writer *w, size_t len);
int stun_msg_write_error_code(stun_msg_writer *w, int code, const char *reason);
int stun_msg_write_integrity(stun_msg_writer *w, const uint8_t *key,
                             size_t key_len);
int stun_msg_write_integrity_sha256(stun_msg_writer *w, const uint8_t *key,
                                    size_t key_len);
int stun_msg_write_fingerprint(stun_msg_writer *w);

#endif
