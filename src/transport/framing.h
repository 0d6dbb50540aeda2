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
 * The parser takes stream bytes in any split and hands out whole messages.
 * The announced length is checked against the receiver's limit before
 * anything is allocated, and a message's buffer grows as its bytes arrive
 * (doubling from FRAMING_FIRST_CHUNK), never from the announced length
 * alone: a peer that announces 4 GiB and sends 10 bytes costs one
 * FRAMING_FIRST_CHUNK (address space; the kernel backs only the pages
 * written).
 */
#ifndef QP_TRANSPORT_FRAMING_H
#define QP_TRANSPORT_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAMING_HEADER_LEN 4

/* First buffer of a message (or its whole length if shorter). 1 MiB, so a
 * message up to 1 MiB takes one allocation and no copy: from 64 KiB, the
 * doublings copied a 600 KiB message three more times and the loopback
 * ping-pong p50 rose from 0.49-0.56 ms to 0.80 ms (make bench, same run). */
#define FRAMING_FIRST_CHUNK (1024 * 1024)

/* Receives a whole message; owns data (free() it). data is never NULL, also
 * for a 0-byte message. */
typedef void (*framing_msg_cb)(void *ctx, uint8_t *data, size_t len);

typedef struct framing_parser {
  uint8_t hdr[FRAMING_HEADER_LEN];
  size_t hdr_have;
  uint8_t *data; /* the message being assembled */
  size_t len, have, cap; /* announced, received, allocated (have <= cap <= len) */
  uint64_t max_len;      /* longest payload accepted (framing_parser_init) */
  bool active;
} framing_parser_t;

/* Start an empty parser that accepts payloads of at most max_len bytes. */
void framing_parser_init(framing_parser_t *p, uint64_t max_len);

/* Consume len stream bytes. Returns 0, QP_ERR_PROTOCOL (with a message naming
 * both numbers) when a length prefix exceeds max_len, or QP_ERR_NOMEM if a
 * message buffer cannot grow; after an error the parser is unusable. */
int framing_consume(framing_parser_t *p, const uint8_t *data, size_t len,
                    framing_msg_cb on_message, void *ctx);

/* True while part of a message (header or payload) is buffered. */
bool framing_partial(const framing_parser_t *p);

/* Bytes the parser holds: the allocated buffer of a partial message. */
size_t framing_held(const framing_parser_t *p);

/* Free a half-assembled message. The parser may be reused afterwards (with
 * the same max_len). */
void framing_parser_cleanup(framing_parser_t *p);

/* Write the header for a payload of len bytes (len <= UINT32_MAX). */
void framing_header_write(uint8_t out[FRAMING_HEADER_LEN], uint32_t len);

#endif
