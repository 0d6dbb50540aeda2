/* ctest: labels=loopback */
/* The embedded STUN server: the sans-I/O handler (RFC 5780 slots, error
 * answers) and the four-socket runner on 127.0.0.1 + 127.0.0.2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "udp/udp.h"
#include "stun/stun_client.h"
#include "stun/stun_msg.h"
#include "stun/stun_server.h"
#include "tu.h"

static udp_addr_t addr_of(const char *text) {
  udp_addr_t a;
  assert_int_equal(udp_addr_parse(text, 0, &a), 0);
  return a;
}

static void assert_addr_text(const udp_addr_t *a,
                             const char *text) {
  char buf[UDP_ADDRSTRLEN];
  assert_string_equal(udp_addr_to_string(a, buf, sizeof(buf)), text);
}

static stun_server_addrs four_slots(void) {
  stun_server_addrs addrs = {.count = 4};
  addrs.slot[0] = addr_of("192.0.2.1:3478");
  addrs.slot[1] = addr_of("192.0.2.1:3479");
  addrs.slot[2] = addr_of("192.0.2.2:3478");
  addrs.slot[3] = addr_of("192.0.2.2:3479");
  return addrs;
}

static size_t request(uint8_t *buf, size_t cap, uint16_t method,
                      int change_flags, uint16_t extra_attr) {
  stun_msg_writer w;
  uint8_t txid[STUN_TXID_SIZE] = {9, 8, 7};
  assert_int_equal(
      stun_msg_write_header(&w, buf, cap, method, STUN_CLASS_REQUEST, txid), 0);
  if (change_flags >= 0)
    assert_int_equal(stun_msg_write_u32(&w, STUN_ATTR_CHANGE_REQUEST,
                                        (uint32_t)change_flags),
                     0);
  if (extra_attr)
    assert_int_equal(stun_msg_write_u32(&w, extra_attr, 0), 0);
  return w.len;
}

/* Handle req on slot `local`, parse the answer, return where it goes. */
static stun_server_reply answer(const stun_server_addrs *addrs, int local,
                                const uint8_t *req, size_t len, stun_msg *m,
                                uint8_t *resp) {
  udp_addr_t client = addr_of("198.51.100.9:40001");
  stun_server_reply reply;
  int n = stun_server_handle(addrs, local, req, len, &client, resp,
                             STUN_SERVER_RESPONSE_MAX, &reply);
  assert_true(n > 0);
  assert_int_equal(stun_msg_parse(resp, (size_t)n, m), 0);
  assert_true(m->has_fingerprint);
  /* SOFTWARE and MAPPED-ADDRESS only when the request pays for them: an
   * answer adds at most what the RFCs require (test_attack_stun_flood). */
  return reply;
}

static void change_request_selects_reply_slot(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t req[64], resp[STUN_SERVER_RESPONSE_MAX];
  stun_msg m;
  const struct {
    int local, flags, reply;
  } cases[] = {
      {0, -1, 0},
      {0, 0, 0},
      {0, STUN_CHANGE_PORT, 1},
      {0, STUN_CHANGE_IP, 2},
      {0, STUN_CHANGE_IP | STUN_CHANGE_PORT, 3},
      {3, STUN_CHANGE_IP | STUN_CHANGE_PORT, 0},
      {2, STUN_CHANGE_PORT, 3},
      {1, STUN_CHANGE_IP, 3},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    size_t len =
        request(req, sizeof(req), STUN_METHOD_BINDING, cases[i].flags, 0);
    stun_server_reply r = answer(&addrs, cases[i].local, req, len, &m, resp);
    int reply = r.slot;
    assert_int_equal(reply, cases[i].reply);
    assert_true(udp_addr_equal(&r.to, &m.xor_mapped_address));
    assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
    assert_true(m.has_xor_mapped_address);
    assert_true(udp_addr_equal(&m.response_origin, &addrs.slot[reply]));
    /* OTHER-ADDRESS differs in IP and port from the receiving slot. */
    assert_true(
        udp_addr_equal(&m.other_address, &addrs.slot[cases[i].local ^ 3]));
  }
}

static void unknown_required_attribute_gets_420(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t req[64], resp[STUN_SERVER_RESPONSE_MAX];
  stun_msg m;
  /* 0x0030 is comprehension-required and unassigned here. */
  size_t len = request(req, sizeof(req), STUN_METHOD_BINDING, -1, 0x0030);
  answer(&addrs, 0, req, len, &m, resp);
  assert_int_equal(m.cls, STUN_CLASS_ERROR);
  assert_int_equal(m.error_code, 420);
  /* UNKNOWN-ATTRIBUTES lists it. */
  assert_int_equal(m.unknown_attributes.len, 2);
  assert_memory_equal(m.unknown_attributes.data, "\x00\x30", 2);
  assert_int_equal(m.unknown_required_count, 0);
}

/* RFC 5780 section 7.5: the answer goes to the source IP at RESPONSE-PORT,
 * while XOR-MAPPED-ADDRESS still reports the real source. */
static void response_port_redirects_the_answer(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t req[64], resp[STUN_SERVER_RESPONSE_MAX];
  stun_msg_writer w;
  uint8_t txid[STUN_TXID_SIZE] = {5};
  stun_msg_write_header(&w, req, sizeof(req), STUN_METHOD_BINDING,
                        STUN_CLASS_REQUEST, txid);
  stun_msg_write_u32(&w, STUN_ATTR_CHANGE_REQUEST, STUN_CHANGE_IP);
  assert_int_equal(
      stun_msg_write_u32(&w, STUN_ATTR_RESPONSE_PORT, 40999u << 16), 0);
  stun_msg m;
  stun_server_reply r = answer(&addrs, 0, req, w.len, &m, resp);
  assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
  assert_int_equal(r.slot, 2);
  assert_addr_text(&r.to, "198.51.100.9:40999");
  assert_addr_text(&m.xor_mapped_address, "198.51.100.9:40001");
}

static void padding_is_echoed(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t req[1600], resp[STUN_SERVER_RESPONSE_MAX];
  stun_msg_writer w;
  uint8_t txid[STUN_TXID_SIZE] = {6};
  stun_msg_write_header(&w, req, sizeof(req), STUN_METHOD_BINDING,
                        STUN_CLASS_REQUEST, txid);
  assert_int_equal(stun_msg_write_padding(&w, 1500), 0);
  stun_msg m;
  answer(&addrs, 0, req, w.len, &m, resp);
  assert_int_equal(m.cls, STUN_CLASS_SUCCESS);
  assert_int_equal(m.padding_len, 1500);
}

static void other_method_gets_400(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t req[64], resp[STUN_SERVER_RESPONSE_MAX];
  stun_msg m;
  size_t len = request(req, sizeof(req), 0x003 /* TURN Allocate */, -1, 0);
  answer(&addrs, 0, req, len, &m, resp);
  assert_int_equal(m.cls, STUN_CLASS_ERROR);
  assert_int_equal(m.method, 0x003);
  assert_int_equal(m.error_code, 400);
}

static void garbage_and_responses_get_no_answer(void **state) {
  (void)state;
  stun_server_addrs addrs = four_slots();
  uint8_t resp[STUN_SERVER_RESPONSE_MAX];
  udp_addr_t client = addr_of("198.51.100.9:40001");
  stun_server_reply reply;
  const uint8_t quic[] = {0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6,
                          7,    8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  assert_int_equal(stun_server_handle(&addrs, 0, quic, sizeof(quic), &client,
                                      resp, sizeof(resp), &reply),
                   0);
  uint8_t msg[64];
  stun_msg_writer w;
  uint8_t txid[STUN_TXID_SIZE] = {1};
  stun_msg_write_header(&w, msg, sizeof(msg), STUN_METHOD_BINDING,
                        STUN_CLASS_INDICATION, txid);
  assert_int_equal(stun_server_handle(&addrs, 0, msg, w.len, &client, resp,
                                      sizeof(resp), &reply),
                   0);
  assert_int_equal(stun_server_handle(&addrs, 7, msg, w.len, &client, resp,
                                      sizeof(resp), &reply),
                   QP_ERR_INVALID);
}

static void four_socket_runner_answers_change_requests(void **state) {
  (void)state;
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", "127.0.0.2:0", &server), 0);
  assert_int_equal(stun_server_slot_count(server), 4);
  udp_addr_t slot[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(stun_server_address(server, i, &slot[i]), 0);
  assert_int_equal(udp_addr_port(&slot[0]), udp_addr_port(&slot[2]));
  assert_int_equal(udp_addr_port(&slot[1]), udp_addr_port(&slot[3]));

  udp_addr_t any = addr_of("127.0.0.1:0");
  udp_socket_t sock;
  assert_int_equal(udp_socket_open(&any, &sock), 0);
  stun_client_request reqs[4];
  for (int i = 0; i < 4; i++)
    reqs[i] = (stun_client_request){
        .sock = &sock,
        .server = slot[0],
        .change_flags = (uint32_t)((i & 1 ? STUN_CHANGE_PORT : 0) |
                                   (i & 2 ? STUN_CHANGE_IP : 0))};
  stun_client_result res[4];
  assert_int_equal(stun_client_run(reqs, 4, 3000, res), 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(res[i].state, STUN_TXN_SUCCEEDED);
    assert_true(udp_addr_equal(&res[i].from, &slot[i]));
    assert_true(udp_addr_equal(&res[i].response_origin, &slot[i]));
    assert_true(udp_addr_equal(&res[i].other_address, &slot[3]));
  }
  udp_socket_close(&sock);
  stun_server_stop(server);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(change_request_selects_reply_slot),
      cmocka_unit_test(unknown_required_attribute_gets_420),
      cmocka_unit_test(response_port_redirects_the_answer),
      cmocka_unit_test(padding_is_echoed),
      cmocka_unit_test(other_method_gets_400),
      cmocka_unit_test(garbage_and_responses_get_no_answer),
      cmocka_unit_test(four_socket_runner_answers_change_requests),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
