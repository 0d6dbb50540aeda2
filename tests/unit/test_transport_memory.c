/* ctest: labels=unit,iothread */
/*
 * The sans-I/O transport on its own: two transports exchange datagrams in
 * memory under a fake clock, with no socket and no thread. Loss is a seeded
 * generator, so every run replays the same drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "transport_tu.h"
#include "tu.h"

/* Send one message of len bytes client->server and wait for it whole. */
static void transfer(pair_t *p, size_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  tu_fill_pattern(buf, len, (uint32_t)len);
  assert_int_equal(transport_queue(p->client, transport_msg_new(buf, len)), 0);
  uint8_t *got = NULL;
  size_t got_len = 0;
  bool credit;
  for (int i = 0; i < MAX_STEPS && got == NULL; i++) {
    step(p);
    if (!transport_pop(p->server, &got, &got_len, &credit))
      got = NULL;
  }
  assert_non_null(got);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, buf, len);
  free(got);
  free(buf);
}

static void handshake_and_message_in_memory(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  pair_start(&p);
  run_until_established(&p);
  transfer(&p, 0);
  transfer(&p, 1);
  transfer(&p, 100000);
  pair_free(&p);
}

static void one_mebibyte_survives_ten_percent_loss(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 10);
  pair_start(&p);
  run_until_established(&p);
  transfer(&p, 1 << 20);
  assert_true(p.to_server.dropped > 50); /* the loss was real */
  pair_free(&p);
}

static void wrong_pin_fails_in_memory(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  p.cfg_client.has_pin = true;
  memset(p.cfg_client.pin, 0xab, sizeof(p.cfg_client.pin));
  pair_start(&p);
  for (int i = 0; i < 2000 && transport_state(p.client) != TRANSPORT_CLOSED; i++)
    step(&p);
  const char *msg;
  assert_int_equal(transport_error(p.client, &msg), QP_ERR_PEER_VERIFY);
  assert_non_null(strstr(msg, "does not match the pinned fingerprint"));
  for (int i = 0; i < 2000 && transport_state(p.server) != TRANSPORT_CLOSED; i++)
    step(&p);
  assert_int_equal(transport_state(p.server), TRANSPORT_CLOSED);
  assert_int_equal(transport_error(p.server, &msg), QP_ERR_HANDSHAKE);
  pair_free(&p);
}

static void reader_backpressure_withholds_credit(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  p.cfg_server.opts.stream_receive_window = 64 * 1024;
  p.cfg_server.opts.conn_receive_window = 128 * 1024;
  pair_start(&p);
  run_until_established(&p);
  /* 40 messages of 16 KiB = 640 KiB, ten times what the server buffers. */
  static uint8_t chunk[16384];
  for (int i = 0; i < 40; i++)
    assert_int_equal(transport_queue(p.client, transport_msg_new(chunk, sizeof(chunk))), 0);
  for (int i = 0; i < 20000; i++)
    step(&p);
  /* Nobody read: the sender must be held back, not the receiver's memory. */
  assert_true(transport_unacked_bytes(p.client) > 300 * 1024);
  int taken = 0;
  uint8_t *m;
  size_t n;
  bool credit;
  for (int i = 0; i < MAX_STEPS && taken < 40; i++) {
    while (transport_pop(p.server, &m, &n, &credit)) {
      assert_int_equal(n, sizeof(chunk));
      free(m);
      taken++;
    }
    step(&p);
  }
  assert_int_equal(taken, 40);
  pair_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(handshake_and_message_in_memory),
      cmocka_unit_test(one_mebibyte_survives_ten_percent_loss),
      cmocka_unit_test(wrong_pin_fails_in_memory),
      cmocka_unit_test(reader_backpressure_withholds_credit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
