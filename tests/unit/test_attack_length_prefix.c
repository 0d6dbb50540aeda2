/* ctest: labels=unit */
/*
 * Attack: a peer that lies in the 4-byte length prefix. It announces 4 GiB,
 * sends junk as fast as flow control lets it and nobody reads on our side.
 * The receiver must close the connection with QP_ERR_PROTOCOL at the prefix,
 * before holding the junk; a prefix within the limit costs only the bytes
 * that really arrived; whole messages nobody reads are bounded by the
 * receive window. Both ends are the library's own transport, in memory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/framing.h"
#include "transport_tu.h"
#include "tu.h"

/* Junk the attacker keeps queued: refilled when the sender drained it, so
 * the attacker's own memory stays small and RSS growth is the receiver's. */
#define JUNK_CHUNK (256 * 1024)
/* Junk the attacker tries to push in total. */
#define JUNK_TOTAL (64u << 20)
/* Fake-clock steps of one attack: bounds the loop. */
#define ATTACK_STEPS 60000

static long rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static void queue_raw(transport_t *t, const void *bytes, size_t len) {
  assert_int_equal(transport_queue(t, transport_msg_new_raw(bytes, len)), 0);
}

/* Announce `announced` bytes, then stream junk until JUNK_TOTAL was queued
 * or the server closed. Returns the junk bytes queued. */
static size_t lying_peer(pair_t *p, uint32_t announced) {
  uint8_t hdr[FRAMING_HEADER_LEN];
  framing_header_write(hdr, announced);
  queue_raw(p->client, hdr, sizeof(hdr));
  static uint8_t junk[JUNK_CHUNK];
  memset(junk, 0x5a, sizeof(junk));
  size_t queued = 0;
  for (int i = 0; i < ATTACK_STEPS && transport_state(p->server) != TRANSPORT_CLOSED &&
                  transport_state(p->client) != TRANSPORT_CLOSED;
       i++) {
    if (queued < JUNK_TOTAL && transport_unacked_bytes(p->client) < JUNK_CHUNK) {
      queue_raw(p->client, junk, sizeof(junk));
      queued += sizeof(junk);
    }
    if (queued >= JUNK_TOTAL && transport_unacked_bytes(p->client) == 0)
      break;
    step(p);
  }
  return queued;
}

static void four_gib_prefix_closes_with_protocol_error(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  pair_start(&p);
  run_until_established(&p);
  long rss0 = rss_bytes();
  lying_peer(&p, 0xFFFFFFFFu);
  long grown = rss_bytes() - rss0;

  assert_int_equal(transport_state(p.server), TRANSPORT_CLOSED);
  const char *msg;
  assert_int_equal(transport_error(p.server, &msg), QP_ERR_PROTOCOL);
  TU_ASSERT_CONTAINS(msg, "4294967295");
  TU_ASSERT_CONTAINS(msg, "1073741824");
  assert_int_equal(transport_held_bytes(p.server), 0);
  print_message("receiver RSS grew by %ld bytes (window %llu)\n", grown,
                (unsigned long long)p.cfg_server.opts.stream_receive_window);
  assert_true(grown < (long)p.cfg_server.opts.stream_receive_window);

  /* The liar learns why (its CONNECTION_CLOSE carries the reason). */
  for (int i = 0; i < 1000 && transport_state(p.client) != TRANSPORT_CLOSED; i++)
    step(&p);
  assert_int_equal(transport_error(p.client, &msg), QP_ERR_TRANSPORT);
  TU_ASSERT_CONTAINS(msg, "max_message_size");
  pair_free(&p);
}

/* With the limit at the wire maximum, a 4 GiB prefix is legal; the buffer
 * then holds what arrived (at most twice it), not what was announced. */
static void allowed_prefix_costs_only_what_arrived(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  p.cfg_server.opts.max_message_size = QP_MAX_MESSAGE_SIZE;
  pair_start(&p);
  run_until_established(&p);
  size_t queued = lying_peer(&p, 0xFFFFFFFFu);
  assert_int_equal(transport_state(p.server), TRANSPORT_ESTABLISHED);
  uint64_t held = transport_held_bytes(p.server);
  print_message("junk queued %zu, receiver holds %llu of 4294967295 announced\n",
                queued, (unsigned long long)held);
  assert_true(held >= queued / 2);
  assert_true(held <= 2 * (uint64_t)queued + FRAMING_FIRST_CHUNK);
  pair_free(&p);
}

/* Whole messages that nobody takes: credit is withheld, so what the peer
 * makes us hold stays near the stream window however much it queues. */
static void unread_messages_stay_within_the_window(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  const uint64_t window = 256 * 1024;
  p.cfg_server.opts.stream_receive_window = window;
  p.cfg_server.opts.conn_receive_window = 2 * window;
  pair_start(&p);
  run_until_established(&p);
  static uint8_t msg[16 * 1024];
  uint64_t most = 0;
  for (int i = 0; i < ATTACK_STEPS / 4; i++) {
    if (transport_unacked_bytes(p.client) < JUNK_CHUNK)
      assert_int_equal(transport_queue(p.client, transport_msg_new(msg, sizeof(msg))), 0);
    step(&p);
    uint64_t held = transport_held_bytes(p.server);
    most = held > most ? held : most;
  }
  print_message("most held: %llu bytes (window %llu)\n", (unsigned long long)most,
                (unsigned long long)window);
  assert_true(most >= window); /* the attacker did fill it */
  assert_true(most <= 2 * window + sizeof(msg) + FRAMING_FIRST_CHUNK);
  assert_int_equal(transport_state(p.server), TRANSPORT_ESTABLISHED);
  pair_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(four_gib_prefix_closes_with_protocol_error),
      cmocka_unit_test(allowed_prefix_costs_only_what_arrived),
      cmocka_unit_test(unread_messages_stay_within_the_window),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
