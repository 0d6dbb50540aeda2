/*
 * libFuzzer target for the message framing parser. The first input byte
 * picks a chunk size; the rest is stream data fed in chunks of that size.
 * Invariant: the messages handed out, re-framed, are a prefix of the input
 * stream, and what is left is at most one partial message.
 */
#include <stdlib.h>
#include <string.h>

#include "transport/framing.h"

/* Longest message the fuzzed parser accepts (64 KiB). */
#define FUZZ_MAX_MESSAGE (64u * 1024)

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

/* The parser refused: the next header in the stream must announce more than
 * the limit. */
static void check_refused(const replay_t *r) {
  const uint8_t *h = r->stream + r->off;
  if (r->off + FRAMING_HEADER_LEN > r->len)
    abort();
  uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
  if (n <= FUZZ_MAX_MESSAGE)
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t chunk = (size_t)data[0] + 1;
  replay_t r = {.stream = data + 1, .len = size - 1};
  framing_parser_t p;
  /* A limit the fuzzer can reach: longer prefixes must be refused. */
  framing_parser_init(&p, FUZZ_MAX_MESSAGE);
  for (size_t off = 0; off < r.len; off += chunk) {
    size_t n = r.len - off < chunk ? r.len - off : chunk;
    if (framing_consume(&p, r.stream + off, n, check_message, &r) != 0) {
      check_refused(&r);
      framing_parser_cleanup(&p);
      return 0;
    }
  }
  if (framing_partial(&p) == (r.off == r.len))
    abort();
  framing_parser_cleanup(&p);
  return 0;
}
