/* relay.c: QUIC through our TURN allocation (relay.h). */
#include "portal/relay.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/log.h"

struct portal_relay {
  turn_client *c;
  udp_addr_t peer;
  bool released; /* the path moved off the relay (upgrade.c) */
  uint8_t *buf; /* framed packets: segments of header + packet */
  size_t cap;
};

portal_relay_t *portal_relay_create(turn_client *c, const udp_addr_t *peer) {
  portal_relay_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    free(c);
    return NULL;
  }
  r->c = c;
  r->peer = *peer;
  return r;
}

void portal_relay_destroy(portal_relay_t *r) {
  if (r == NULL)
    return;
  free(r->c);
  free(r->buf);
  free(r);
}

bool portal_relay_carries(const portal_relay_t *r, const udp_addr_t *to) {
  return r != NULL && !r->released && udp_addr_equal(to, &r->peer);
}

void portal_relay_release(portal_relay_t *r) {
  if (r != NULL)
    r->released = true;
}

bool portal_relay_released(const portal_relay_t *r) {
  return r != NULL && r->released;
}

static int grow(portal_relay_t *r, size_t need) {
  if (need <= r->cap)
    return 0;
  uint8_t *b = realloc(r->buf, need);
  if (b == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory framing packets for the "
                                  "TURN relay");
  r->buf = b;
  r->cap = need;
  return 0;
}

/* Before the channel is bound: one Send indication per packet. */
static int send_indications(portal_relay_t *r, udp_socket_t *sock,
                            const uint8_t *buf, size_t len, size_t seg) {
  if (grow(r, seg + TURN_SEND_OVERHEAD) != 0)
    return QP_ERR_NOMEM;
  for (size_t off = 0; off < len; off += seg) {
    size_t n = len - off < seg ? len - off : seg, out = 0;
    int rc = turn_client_wrap(r->c, &r->peer, buf + off, n, r->buf, r->cap,
                              &out);
    if (rc == 0)
      rc = udp_send(sock, turn_client_server(r->c), r->buf, out, out);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int portal_relay_send(portal_relay_t *r, udp_socket_t *sock,
                      const udp_addr_t *to, const uint8_t *buf, size_t len,
                      size_t segment_size) {
  (void)to; /* portal_relay_carries said it is the peer */
  size_t seg = segment_size == 0 || segment_size > len ? len : segment_size;
  if (seg == 0)
    return 0;
  uint16_t ch = turn_client_channel(r->c, &r->peer);
  if (ch == 0)
    return send_indications(r, sock, buf, len, seg);
  size_t count = (len + seg - 1) / seg;
  if (grow(r, len + count * TURN_CHANNEL_HEADER_SIZE) != 0)
    return QP_ERR_NOMEM;
  size_t used = 0;
  for (size_t off = 0; off < len; off += seg) {
    size_t n = len - off < seg ? len - off : seg;
    turn_channel_header(r->buf + used, ch, (uint16_t)n);
    memcpy(r->buf + used + TURN_CHANNEL_HEADER_SIZE, buf + off, n);
    used += TURN_CHANNEL_HEADER_SIZE + n;
  }
  return udp_send(sock, turn_client_server(r->c), r->buf, used,
                  count > 1 ? seg + TURN_CHANNEL_HEADER_SIZE : used);
}

bool portal_relay_owns(const portal_relay_t *r, const udp_addr_t *from) {
  return r != NULL && turn_client_owns(r->c, from);
}

int portal_relay_receive(portal_relay_t *r, const udp_datagram_t *d,
                         udp_datagram_t *inner, uint64_t now_ns) {
  turn_rx rx;
  int kind = turn_client_handle(r->c, d->data, d->len, &d->from, now_ns, &rx);
  if (kind < 0)
    return kind;
  if (kind != TURN_RX_DATA)
    return 0;
  *inner = (udp_datagram_t){.data = (uint8_t *)rx.data, .len = rx.len,
                            .from = rx.peer};
  return 1;
}

int portal_relay_timer(portal_relay_t *r, udp_socket_t *sock, uint64_t now_ns) {
  uint8_t out[TURN_REQUEST_MAX];
  size_t len;
  udp_addr_t to;
  int rc;
  while ((rc = turn_client_poll(r->c, now_ns, out, sizeof(out), &len, &to)) ==
         1)
    udp_send(sock, &to, out, len, 0); /* a lost one is retransmitted */
  return rc < 0 ? rc : 0;
}

uint64_t portal_relay_deadline(const portal_relay_t *r) {
  return r == NULL ? UINT64_MAX : turn_client_deadline(r->c);
}

void portal_relay_close(portal_relay_t *r, udp_socket_t *sock, uint64_t now_ns) {
  if (r == NULL || turn_client_state(r->c) != TURN_STATE_ALLOCATED)
    return;
  turn_client_close(r->c, now_ns);
  portal_relay_timer(r, sock, now_ns);
}

const char *portal_relay_server(const portal_relay_t *r, char *buf,
                                size_t size) {
  return udp_addr_to_string(turn_client_server(r->c), buf, size);
}
