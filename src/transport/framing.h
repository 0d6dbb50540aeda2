/*
 * Message framing on the stream, wire-compatible with quic-portal 0.1.x:
 *
 *   0                   1                   2                   3
 *   0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                 payload length (big-endian)                   |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *  |                 payload (length bytes) ...                    |
 *  +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The parser takes stream bytes in any split and hands out whole messages,
 * copying each payload byte once into a buffer of the announced length.
 */
#ifndef QP_TRANSPORT_FRAMING_H
#define QP_TRANSPORT_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAMING_HEADER_LEN 4

/* Receives a whole message; owns data (free() it). data is never NULL, also
 * for a 0-byte message. */
typedef void (*framing_msg_cb)(void *ctx, uint8_t *data, size_t len);

typedef struct framing_parser {
  uint8_t hdr[FRAMING_HEADER_LEN];
  size_t hdr_have;
  uint8_t *data; /* the message being assembled */
  size_t len, have;
  bool active;
} framing_parser_t;

/* Consume len stream bytes. Returns 0, or QP_ERR_NOMEM (with a message) if
 * a message buffer cannot be allocated; the parser is then unusable. */
int framing_consume(framing_parser_t *p, const uint8_t *data, size_t len,
                    framing_msg_cb on_message, void *ctx);

/* True while part of a message (header or payload) is buffered. */
bool framing_partial(const framing_parser_t *p);

/* Free a half-assembled message. The parser may be reused afterwards. */
void framing_parser_cleanup(framing_parser_t *p);

/* Write the header for a payload of len bytes (len <= UINT32_MAX). */
void framing_header_write(uint8_t out[FRAMING_HEADER_LEN], uint32_t len);

#endif
