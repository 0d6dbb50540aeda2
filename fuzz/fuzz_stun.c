/*
 * libFuzzer target for everything that reads STUN bytes from the network:
 * the codec (stun_msg_is_stun, stun_msg_parse, stun_msg_check_integrity),
 * the server's request handler and the client's response matching.
 * Build and run: see fuzz/CMakeLists.txt or docs/internals/stun.md.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stun/stun_client.h"
#include "stun/stun_msg.h"
#include "stun/stun_server.h"
#include "udp/udp.h"

/* The RFC 5769 password: inputs mutated from the seed corpus keep valid
 * integrity often enough to reach the comparison. */
static const char key[] = "VOkJxbRl1RmTxUk/WvJxBt";

static void fuzz_codec(const uint8_t *data, size_t size) {
  stun_msg m;
  (void)stun_msg_is_stun(data, size);
  if (stun_msg_parse(data, size, &m) == 0)
    (void)stun_msg_check_integrity(&m, (const uint8_t *)key, strlen(key));
}

static void fuzz_server(const uint8_t *data, size_t size) {
  stun_server_addrs addrs = {.count = STUN_SERVER_MAX_SLOTS};
  udp_addr_parse("192.0.2.1:3478", 0, &addrs.slot[0]);
  udp_addr_parse("192.0.2.1:3479", 0, &addrs.slot[1]);
  udp_addr_parse("192.0.2.2:3478", 0, &addrs.slot[2]);
  udp_addr_parse("192.0.2.2:3479", 0, &addrs.slot[3]);
  udp_addr_t from;
  udp_addr_parse("[2001:db8::1]:40000", 0, &from);
  uint8_t resp[STUN_SERVER_RESPONSE_MAX];
  stun_server_reply reply;
  int len = stun_server_handle(&addrs, size % 4, data, size, &from, resp,
                               sizeof(resp), &reply);
  /* Whatever the server answers must itself parse, go back to the
   * request's host, and be no larger than the request plus what the RFCs
   * require (three IPv6 addresses, FINGERPRINT) or an error's ERROR-CODE
   * and UNKNOWN-ATTRIBUTES. */
  stun_msg m;
  if (len > 0 && stun_msg_parse(resp, (size_t)len, &m) != 0)
    __builtin_trap();
  if (len > 0 && !udp_addr_same_ip(&reply.to, &from))
    __builtin_trap();
  if (len > 0 && (size_t)len > size + 3 * 24 + 8 + 48)
    __builtin_trap();
}

/* Feed the input as the answer to a pending transaction whose txid is the
 * input's own, so the response paths past the txid match are reached. */
static void fuzz_client(const uint8_t *data, size_t size) {
  stun_client c;
  stun_client_init(&c);
  udp_addr_t server;
  udp_addr_parse("192.0.2.1:3478", 0, &server);
  int txn = stun_client_start(&c, &server, 0, 0, 1000);
  if (txn < 0)
    return;
  if (size >= STUN_HEADER_SIZE)
    memcpy(c.txns[txn].txid, data + 8, STUN_TXID_SIZE);
  (void)stun_client_on_response(&c, data, size, &server, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_codec(data, size);
  fuzz_server(data, size);
  fuzz_client(data, size);
  return 0;
}
