/*
 * libFuzzer target for what the TURN client (src/turn) reads from the
 * network and from users: ChannelData framing, the spec strings, and any
 * datagram from the TURN server fed to a client that waits for an answer
 * (allocating, or allocated with a bound channel and a pending
 * CreatePermission). The input's own txid is given to the pending
 * transaction, so answers get past the txid match; after the datagram the
 * client's next request must still be a well-formed STUN message (a
 * fuzzed REALM or NONCE ends up in it).
 * Build and run: see fuzz/CMakeLists.txt (target fuzz_turn, seeds in
 * fuzz/corpus/turn).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stun/stun_msg.h"
#include "turn/turn_client.h"
#include "turn/turn_proto.h"
#include "udp/udp.h"

#define NOW_NS 1000000000000ull

static void fuzz_codec(const uint8_t *data, size_t size) {
  uint16_t channel;
  const uint8_t *payload;
  size_t len;
  if (turn_channel_unwrap(data, size, &channel, &payload, &len) == 0 &&
      (payload < data || payload + len > data + size))
    __builtin_trap();
  char text[512];
  size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
  memcpy(text, data, n);
  text[n] = '\0';
  turn_server_spec spec;
  (void)turn_spec_parse(text, false, &spec);
  (void)turn_spec_parse(text, true, &spec);
}

/* A client waiting for an answer whose txid is the input's. */
static void make_client(turn_client *c, const uint8_t *data, size_t size,
                        const udp_addr_t *server) {
  turn_config cfg = {.server = *server};
  memcpy(cfg.username, "u", 2);
  memcpy(cfg.password, "p", 2);
  turn_client_init(c, &cfg);
  const uint8_t *txid = data + 8;
  if (size % 2 == 0) {
    turn_client_allocate(c, NOW_NS);
    memcpy(c->alloc_txn.txid, txid, STUN_TXID_SIZE);
    return;
  }
  /* Allocated, as after a 401 exchange, with one channel bound. */
  c->state = TURN_STATE_ALLOCATED;
  memcpy(c->realm, "r", 2);
  memcpy(c->nonce, "n", 1);
  c->nonce_len = 1;
  c->have_key = stun_msg_long_term_key("u", "r", "p", c->key) == 0;
  udp_addr_from_ip("192.0.2.1", 50000, &c->relayed);
  c->lifetime_s = 600;
  c->refresh_ns = NOW_NS + 540 * 1000000000ull;
  udp_addr_t peer;
  udp_addr_from_ip("203.0.113.9", 6000, &peer);
  turn_client_bind(c, &peer, NOW_NS);
  c->peers[0].binding = TURN_PEER_READY;
  turn_client_permit(c, &peer, NOW_NS);
  c->peers[0].permission_txn.active = true;
  c->peers[0].permission_txn.method = TURN_METHOD_CREATE_PERMISSION;
  c->peers[0].permission_txn.authenticated = true;
  memcpy(c->peers[0].permission_txn.txid, txid, STUN_TXID_SIZE);
}

static void fuzz_client(const uint8_t *data, size_t size) {
  if (size < STUN_HEADER_SIZE)
    return;
  static turn_client c;
  udp_addr_t server;
  udp_addr_from_ip("192.0.2.1", 3478, &server);
  make_client(&c, data, size, &server);
  turn_rx rx;
  int kind = turn_client_handle(&c, data, size, &server, NOW_NS, &rx);
  if (kind == TURN_RX_DATA &&
      (rx.data < data || rx.data + rx.len > data + size))
    __builtin_trap();
  static uint8_t out[TURN_REQUEST_MAX];
  size_t len;
  udp_addr_t to;
  stun_msg m;
  for (int i = 0; i < 4; i++) {
    if (turn_client_poll(&c, NOW_NS + (uint64_t)i * 600000000000ull, out,
                         sizeof(out), &len, &to) != 1)
      break;
    if (stun_msg_parse(out, len, &m) != 0)
      __builtin_trap();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_codec(data, size);
  fuzz_client(data, size);
  return 0;
}
