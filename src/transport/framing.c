#include "transport/framing.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"

void framing_header_write(uint8_t out[FRAMING_HEADER_LEN], uint32_t len) {
  out[0] = (uint8_t)(len >> 24);
  out[1] = (uint8_t)(len >> 16);
  out[2] = (uint8_t)(len >> 8);
  out[3] = (uint8_t)len;
}

void framing_parser_init(framing_parser_t *p, uint64_t max_len) {
  memset(p, 0, sizeof(*p));
  p->max_len = max_len;
}

static void deliver(framing_parser_t *p, framing_msg_cb on_message, void *ctx) {
  uint8_t *data = p->data;
  size_t len = p->len;
  p->data = NULL;
  p->cap = 0;
  p->active = false;
  p->hdr_have = 0;
  on_message(ctx, data, len);
}

/* Make room for at least `need` bytes (need <= p->len), doubling so that a
 * message of n bytes costs O(log n) reallocations. */
static int grow(framing_parser_t *p, size_t need) {
  if (need <= p->cap)
    return 0;
  size_t cap = p->cap ? p->cap : FRAMING_FIRST_CHUNK;
  while (cap < need)
    cap = cap > p->len / 2 ? p->len : cap * 2;
  if (cap > p->len)
    cap = p->len;
  uint8_t *data = realloc(p->data, cap);
  if (data == NULL)
    return err_fail(QP_ERR_NOMEM,
                   "out of memory growing a %zu-byte message to %zu bytes",
                   p->len, cap);
  p->data = data;
  p->cap = cap;
  return 0;
}

static int start_message(framing_parser_t *p, framing_msg_cb on_message, void *ctx) {
  uint32_t len = (uint32_t)p->hdr[0] << 24 | (uint32_t)p->hdr[1] << 16 |
                 (uint32_t)p->hdr[2] << 8 | p->hdr[3];
  if (len > p->max_len)
    return err_fail(QP_ERR_PROTOCOL,
                   "peer announced a message of %u bytes, more than this "
                   "side's max_message_size of %llu bytes",
                   len, (unsigned long long)p->max_len);
  p->len = len;
  p->have = 0;
  p->cap = 0;
  p->active = true;
  if (len > 0)
    return 0;
  /* malloc(0) may return NULL; a 0-byte message still gets a pointer. */
  p->data = malloc(1);
  if (p->data == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for a 0-byte message");
  deliver(p, on_message, ctx);
  return 0;
}

int framing_consume(framing_parser_t *p, const uint8_t *data, size_t len,
                    framing_msg_cb on_message, void *ctx) {
  while (len > 0) {
    size_t want = p->active ? p->len - p->have : FRAMING_HEADER_LEN - p->hdr_have;
    size_t n = want < len ? want : len;
    if (p->active) {
      int rc = grow(p, p->have + n);
      if (rc != 0)
        return rc;
      memcpy(p->data + p->have, data, n);
      p->have += n;
    } else {
      memcpy(p->hdr + p->hdr_have, data, n);
      p->hdr_have += n;
    }
    data += n;
    len -= n;
    if (p->active && p->have == p->len) {
      deliver(p, on_message, ctx);
    } else if (!p->active && p->hdr_have == FRAMING_HEADER_LEN) {
      int rc = start_message(p, on_message, ctx);
      if (rc != 0)
        return rc;
    }
  }
  return 0;
}

bool framing_partial(const framing_parser_t *p) {
  return p->active || p->hdr_have > 0;
}

size_t framing_held(const framing_parser_t *p) { return p->cap; }

void framing_parser_cleanup(framing_parser_t *p) {
  free(p->data);
  framing_parser_init(p, p->max_len);
}
