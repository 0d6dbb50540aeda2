/* ChannelData framing (RFC 8656 section 12.4 and 12.5). */
#include <string.h>

#include "common/error.h"
#include "turn/turn_proto.h"

static size_t padded4(size_t len) { return (len + 3) & ~(size_t)3; }

bool turn_is_channel_data(const uint8_t *buf, size_t len) {
  return buf && len >= TURN_CHANNEL_HEADER_SIZE && buf[0] >= 0x40 &&
         buf[0] <= 0x4F;
}

void turn_channel_header(uint8_t hdr[TURN_CHANNEL_HEADER_SIZE],
                         uint16_t channel, uint16_t len) {
  hdr[0] = (uint8_t)(channel >> 8);
  hdr[1] = (uint8_t)channel;
  hdr[2] = (uint8_t)(len >> 8);
  hdr[3] = (uint8_t)len;
}

int turn_channel_wrap(uint16_t channel, const uint8_t *data, size_t len,
                      uint8_t *out, size_t cap, size_t *out_len) {
  if (!out || !out_len || (!data && len) || channel < TURN_CHANNEL_MIN ||
      channel > TURN_CHANNEL_MAX)
    return err_fail(QP_ERR_INVALID,
                    "ChannelData: channel 0x%04x is outside 0x4000-0x4FFF or "
                    "an argument is NULL",
                    channel);
  if (len > TURN_CHANNEL_DATA_MAX || cap < TURN_CHANNEL_HEADER_SIZE + len)
    return err_fail(QP_ERR_TOO_LARGE,
                    "ChannelData: %zu bytes of data do not fit (at most %u, "
                    "buffer of %zu bytes with a %d-byte header)",
                    len, TURN_CHANNEL_DATA_MAX, cap, TURN_CHANNEL_HEADER_SIZE);
  /* Data first: it may sit where the header goes (memmove allows it). */
  if (len)
    memmove(out + TURN_CHANNEL_HEADER_SIZE, data, len);
  turn_channel_header(out, channel, (uint16_t)len);
  *out_len = TURN_CHANNEL_HEADER_SIZE + len;
  return 0;
}

int turn_channel_unwrap(const uint8_t *buf, size_t len, uint16_t *channel,
                        const uint8_t **data, size_t *data_len) {
  if (!buf || !channel || !data || !data_len)
    return err_fail(QP_ERR_INVALID, "turn_channel_unwrap: NULL argument");
  if (len < TURN_CHANNEL_HEADER_SIZE)
    return err_fail(QP_ERR_PROTOCOL,
                    "ChannelData of %zu bytes is shorter than its header", len);
  uint16_t number = (uint16_t)((buf[0] << 8) | buf[1]);
  size_t length = (size_t)((buf[2] << 8) | buf[3]);
  if (number < TURN_CHANNEL_MIN || number > TURN_CHANNEL_MAX)
    return err_fail(QP_ERR_PROTOCOL,
                    "ChannelData on channel 0x%04x, outside 0x4000-0x4FFF",
                    number);
  size_t body = len - TURN_CHANNEL_HEADER_SIZE;
  /* RFC 8656 section 12.5: a datagram "too short to contain the claimed
   * length" is discarded; padding up to 4 bytes "MAY be included". */
  if (body < length || body > padded4(length))
    return err_fail(QP_ERR_PROTOCOL,
                    "ChannelData says %zu bytes but the datagram carries %zu",
                    length, body);
  *channel = number;
  *data = buf + TURN_CHANNEL_HEADER_SIZE;
  *data_len = length;
  return 0;
}
