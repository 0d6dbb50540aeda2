/*
 * libFuzzer target for the message framing parser. The first input byte
 * picks a chunk size; the rest is stream data fed in chunks of that size.
 * Invariant: the messages handed out, re-framed, are a prefix of the input
 * stream, and what is left is at most one partial message.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/framing.h"

typedef struct replay {
  const uint8_t *stream;
  size_t len, off;
} replay_t;

static void check_message(void *ctx, uint8_t *data, size_t len) {
  replay_t *r = ctx;
  uint8_t hdr[FRAMING_HEADER_LEN];
  framing_header_write(hdr, (uint32_t)len);
  if (r->off + FRAMING_HEADER_LEN + len > r->len ||
      memcmp(r->stream + r->off, hdr, FRAMING_HEADER_LEN) != 0 ||
      memcmp(r->stream + r->off + FRAMING_HEADER_LEN, data, len) != 0)
    abort();
  r->off += FRAMING_HEADER_LEN + len;
  free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t chunk = (size_t)data[0] + 1;
  replay_t r = {.stream = data + 1, .len = size - 1};
  framing_parser_t p = {0};
  /* Cap announced lengths the fuzzer could make us allocate: the parser
   * allocates up front, so skip inputs announcing more than 1 MiB. */
  for (size_t off = 0; off + FRAMING_HEADER_LEN <= r.len;) {
    uint32_t n = (uint32_t)r.stream[off] << 24 | (uint32_t)r.stream[off + 1] << 16 |
                 (uint32_t)r.stream[off + 2] << 8 | r.stream[off + 3];
    if (n > (1u << 20))
      return 0;
    off += FRAMING_HEADER_LEN + n;
  }
  for (size_t off = 0; off < r.len; off += chunk) {
    size_t n = r.len - off < chunk ? r.len - off : chunk;
    if (framing_consume(&p, r.stream + off, n, check_message, &r) != 0)
      abort();
  }
  if (framing_partial(&p) == (r.off == r.len))
    abort();
  framing_parser_cleanup(&p);
  return 0;
}
