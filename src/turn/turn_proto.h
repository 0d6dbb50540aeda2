/*
 * turn_proto.h: what TURN (RFC 8656) adds to STUN on the wire, and the
 * pieces a user hands us to reach a TURN server.
 *
 * - The TURN methods, attributes and error codes. Messages themselves are
 *   built and parsed with the STUN codec (stun/stun_msg.h).
 * - ChannelData framing (RFC 8656 section 12.4), the 4-byte header that
 *   carries a peer's datagrams once a channel is bound:
 *
 *    0                   1                   2                   3
 *    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |         Channel Number        |            Length             |
 *   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *   |                                                               |
 *   /                       Application Data                        /
 *   /                                                               /
 *   |                                                               |
 *   |                               +-------------------------------+
 *   |                               |
 *   +-------------------------------+
 *
 * - Credentials: a static user and password, or coturn's "TURN REST API"
 *   shared secret (user "expiry:name", password
 *   base64(HMAC-SHA1(secret, user))), and the spec strings of the CLI and
 *   the Python API: "USER:PASS@HOST[:PORT]" and "SECRET@HOST[:PORT]".
 *
 * Nothing here does I/O or allocates.
 */
#ifndef QP_TURN_PROTO_H
#define QP_TURN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "udp/udp.h"

/* RFC 8656 section 18 (IANA): STUN methods TURN registers. */
enum turn_method {
  TURN_METHOD_ALLOCATE = 0x003,
  TURN_METHOD_REFRESH = 0x004,
  TURN_METHOD_SEND = 0x006,
  TURN_METHOD_DATA = 0x007,
  TURN_METHOD_CREATE_PERMISSION = 0x008,
  TURN_METHOD_CHANNEL_BIND = 0x009,
};

/* RFC 8656 section 18: STUN attributes TURN registers (plus RFC 8489's
 * ALTERNATE-SERVER, which the 300 answer carries). */
enum turn_attr {
  TURN_ATTR_CHANNEL_NUMBER = 0x000C,
  TURN_ATTR_LIFETIME = 0x000D,
  TURN_ATTR_XOR_PEER_ADDRESS = 0x0012,
  TURN_ATTR_DATA = 0x0013,
  TURN_ATTR_XOR_RELAYED_ADDRESS = 0x0016,
  TURN_ATTR_REQUESTED_ADDRESS_FAMILY = 0x0017,
  TURN_ATTR_REQUESTED_TRANSPORT = 0x0019,
  TURN_ATTR_DONT_FRAGMENT = 0x001A,
  TURN_ATTR_ALTERNATE_SERVER = 0x8023,
};

/* ERROR-CODE values a TURN client acts on (RFC 8656 section 18, RFC 8489
 * section 14.8). */
enum turn_error_code {
  TURN_ERROR_TRY_ALTERNATE = 300,
  TURN_ERROR_UNAUTHORIZED = 401,
  TURN_ERROR_FORBIDDEN = 403,
  TURN_ERROR_ALLOCATION_MISMATCH = 437,
  TURN_ERROR_STALE_NONCE = 438,
  TURN_ERROR_WRONG_CREDENTIALS = 441,
  TURN_ERROR_UNSUPPORTED_TRANSPORT = 442,
  TURN_ERROR_ADDRESS_FAMILY = 440, /* Address Family not Supported */
  TURN_ERROR_QUOTA_REACHED = 486,
  TURN_ERROR_INSUFFICIENT_CAPACITY = 508,
};

/* RFC 8656 section 7.2: REQUESTED-TRANSPORT "contains the transport
 * protocol ... in the protocol field (IANA protocol number)"; 17 is UDP,
 * the only one RFC 8656 defines. Encoded in the top byte of 32 bits. */
#define TURN_TRANSPORT_UDP 17u

/* RFC 8656 section 14.6: REQUESTED-ADDRESS-FAMILY holds the family
 * (0x01 IPv4, 0x02 IPv6) followed by 24 bits of RFFU (reserved, 0). */
#define TURN_FAMILY_IPV4 0x01u
#define TURN_FAMILY_IPV6 0x02u

/* RFC 8656 section 4: "the default port for TURN over UDP ... is 3478". */
#define TURN_DEFAULT_PORT 3478

#define TURN_CHANNEL_HEADER_SIZE 4
/* RFC 8656 section 12: "The channel number ... in the range 0x4000 through
 * 0x4FFF (inclusive)". So the first byte of ChannelData is 0x40..0x4F,
 * the range RFC 9443 reserves for TURN channels next to QUIC. */
#define TURN_CHANNEL_MIN 0x4000u
#define TURN_CHANNEL_MAX 0x4FFFu
/* Data one ChannelData message carries: its Length field is 16 bits. */
#define TURN_CHANNEL_DATA_MAX 65535u

/* Names and passwords we store, with their NUL. RFC 8489 section 14.3
 * allows USERNAME up to 508 bytes; real TURN users (REST "expiry:name",
 * static ones) are far shorter. */
#define TURN_USERNAME_MAX 256
#define TURN_PASSWORD_MAX 256
/* base64 of a 20-byte HMAC-SHA1 is 28 characters. */
#define TURN_REST_PASSWORD_LEN 28

/* True when buf may be ChannelData: the first byte is 0x40..0x4F and the
 * datagram holds at least the header. The byte range is shared with QUIC
 * short headers (RFC 9443 section 3): only a datagram from the TURN server's
 * address is ChannelData, the udp layer must check that too. */
bool turn_is_channel_data(const uint8_t *buf, size_t len);

/* Write the 4-byte header for len bytes of data on channel. For a caller
 * that reserved TURN_CHANNEL_HEADER_SIZE bytes in front of its payload
 * (the QUIC path) and wants no copy. */
void turn_channel_header(uint8_t hdr[TURN_CHANNEL_HEADER_SIZE],
                         uint16_t channel, uint16_t len);

/*
 * Frame len bytes of data as ChannelData for UDP into out: header plus
 * data, no padding (RFC 8656 section 12.5: over UDP the padding "is not
 * required"). Returns 0 and sets *out_len, or QP_ERR_INVALID (channel out
 * of range, NULL) or QP_ERR_TOO_LARGE (len over 65535 or cap too small).
 */
int turn_channel_wrap(uint16_t channel, const uint8_t *data, size_t len,
                      uint8_t *out, size_t cap, size_t *out_len);

/*
 * Parse a ChannelData datagram: channel and data point into buf. Up to 3
 * bytes after the data are padding and ignored (a sender may pad over
 * UDP too); a datagram shorter than the header plus Length, a longer one,
 * or a channel outside 0x4000..0x4FFF is QP_ERR_PROTOCOL (RFC 8656 section
 * 12.5: such a message "is silently discarded" by the caller).
 */
int turn_channel_unwrap(const uint8_t *buf, size_t len, uint16_t *channel,
                        const uint8_t **data, size_t *data_len);

/*
 * coturn's TURN REST API credentials (use-auth-secret): user =
 * "<expiry unix time>:<name>" (just the time when name is NULL or ""),
 * password = base64(HMAC-SHA1(secret, user)). Returns 0, or QP_ERR_INVALID
 * (NULL, or a name that does not fit TURN_USERNAME_MAX) or QP_ERR_INTERNAL
 * (GnuTLS failed).
 */
int turn_rest_credentials(const char *secret, const char *name,
                          int64_t expiry_unix, char user[TURN_USERNAME_MAX],
                          char password[TURN_PASSWORD_MAX]);

/* One TURN server as the user wrote it. host is not resolved. */
typedef struct turn_server_spec {
  char host[UDP_HOST_MAX]; /* name or IP literal, without [] */
  uint16_t port;           /* TURN_DEFAULT_PORT when not given */
  bool uses_secret;        /* REST shared secret instead of user/pass */
  char username[TURN_USERNAME_MAX];
  char password[TURN_PASSWORD_MAX]; /* or the shared secret */
} turn_server_spec;

/*
 * Parse "USER:PASS@HOST[:PORT]" (uses_secret false) or
 * "SECRET@HOST[:PORT]" (true). HOST[:PORT] is read by the library's one
 * parser, udp_hostport_split ("[::1]:3478" for IPv6; the port defaults to
 * 3478 and must not be 0). The password or secret runs to
 * the LAST '@', so it may contain '@' and ':'; the user runs to the first
 * ':', so it may not contain ':'. Returns 0, or QP_ERR_INVALID with a
 * message that quotes the spec without its password.
 */
int turn_spec_parse(const char *text, bool uses_secret, turn_server_spec *out);

/*
 * The username and password to use with spec: its own, or REST
 * credentials valid until now_unix + ttl_s (name "quic-portal").
 */
int turn_spec_credentials(const turn_server_spec *spec, int64_t now_unix,
                          uint32_t ttl_s, char user[TURN_USERNAME_MAX],
                          char password[TURN_PASSWORD_MAX]);

#endif
