/* ctest: labels=unit */
/*
 * Dead-path detection and migration in the sans-I/O transport, in memory
 * under a fake clock (transport_tu.h): a path that drops everything is
 * declared dead after max(2 s, 3 PTOs) and not before; 10 % loss never
 * declares it; after an outage the client migrates to the server's new
 * address, or from its own new address, and the message queued before the
 * outage arrives once and whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "transport_tu.h"
#include "tu.h"

#define NS_PER_MS 1000000ull

/* Datagrams towards the server count only when sent to where it is now
 * (its "public address" may change under the client). */
static udp_addr_t server_now;

static int capture_addressed(void *ctx, const udp_addr_t *to, const uint8_t *buf,
                             size_t len, size_t seg) {
  if (!udp_addr_equal(to, &server_now))
    return 0; /* to an address nobody answers at any more */
  return capture(ctx, to, buf, len, seg);
}

static void step_addressed(pair_t *p) {
  transport_flush(p->client, p->now, capture_addressed, &p->to_server);
  transport_flush(p->server, p->now, capture, &p->to_client);
  deliver(p, &p->to_server, true);
  deliver(p, &p->to_client, false);
  p->now += 100 * 1000;
  expire(p->client, p->now);
  expire(p->server, p->now);
}

static void start(pair_t *p, unsigned drop_pct) {
  pair_init(p, drop_pct);
  server_now = p->cfg_server.local;
  pair_start(p);
  run_until_established(p);
}

/* Queue one message client -> server. */
static uint8_t *queue_message(pair_t *p, size_t len, uint32_t seed) {
  uint8_t *buf = malloc(len);
  tu_fill_pattern(buf, len, seed);
  assert_int_equal(transport_queue(p->client, transport_msg_new(buf, len)), 0);
  return buf;
}

/* Step until the server holds one whole message; check it, and that no
 * second one follows. */
static void expect_delivered_once(pair_t *p, const uint8_t *want, size_t len) {
  uint8_t *got = NULL;
  size_t got_len = 0;
  bool credit;
  for (int i = 0; i < MAX_STEPS && got == NULL; i++) {
    step_addressed(p);
    if (!transport_pop(p->server, &got, &got_len, &credit))
      got = NULL;
  }
  assert_non_null(got);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, want, len);
  free(got);
  for (int i = 0; i < 2000; i++)
    step_addressed(p);
  assert_false(transport_pop(p->server, &got, &got_len, &credit));
}

/* Black out both directions with data in flight: how long until the
 * client declares the path dead (ns of fake time), bounded by 10 s. */
static uint64_t blackout_until_dead(pair_t *p) {
  p->to_server.drop_pct = 100;
  p->to_client.drop_pct = 100;
  uint64_t t0 = p->now;
  while (!transport_path_dead(p->client, p->now) && p->now - t0 < 10000 * NS_PER_MS)
    step_addressed(p);
  return p->now - t0;
}

static void dead_path_after_two_seconds_without_acks(void **state) {
  (void)state;
  pair_t p;
  start(&p, 0);
  uint8_t *buf = queue_message(&p, 20000, 1);
  uint64_t took = blackout_until_dead(&p);
  print_message("path declared dead after %.0f ms of blackout\n",
                (double)took / NS_PER_MS);
  assert_true(transport_path_dead(p.client, p.now));
  /* The stall counts from the oldest unacknowledged send, which may be a
   * step before the blackout began. */
  assert_true(transport_stalled_ns(p.client, p.now) >= 2000 * NS_PER_MS);
  assert_true(took >= 1990 * NS_PER_MS);
  assert_true(took <= 2100 * NS_PER_MS); /* RTT 200 us: 3 PTOs << 2 s */
  assert_int_equal(transport_state(p.client), TRANSPORT_ESTABLISHED);
  free(buf);
  pair_free(&p);
}

static void ten_percent_loss_is_not_a_dead_path(void **state) {
  (void)state;
  pair_t p;
  start(&p, 10);
  uint8_t *buf = queue_message(&p, 1 << 20, 2);
  uint8_t *got = NULL;
  size_t got_len = 0;
  bool credit;
  for (int i = 0; i < MAX_STEPS && got == NULL; i++) {
    step_addressed(&p);
    assert_false(transport_path_dead(p.client, p.now));
    assert_false(transport_path_dead(p.server, p.now));
    if (!transport_pop(p.server, &got, &got_len, &credit))
      got = NULL;
  }
  assert_non_null(got);
  assert_true(p.to_server.dropped > 50); /* the loss was real */
  free(got);
  free(buf);
  pair_free(&p);
}

/* The recovery sequence of the portal, in memory: timers held during the
 * outage (no idle close even far past the idle timeout), then the client
 * migrates and the held message arrives once. */
static void recover(pair_t *p, const udp_addr_t *new_server) {
  transport_hold_timers(p->client, true);
  transport_hold_timers(p->server, true);
  p->now += 20000 * NS_PER_MS; /* twice the idle timeout: nothing may end */
  expire(p->client, p->now);
  expire(p->server, p->now);
  assert_int_equal(transport_state(p->client), TRANSPORT_ESTABLISHED);
  assert_int_equal(transport_state(p->server), TRANSPORT_ESTABLISHED);
  p->to_server.drop_pct = 0;
  p->to_client.drop_pct = 0;
  assert_int_equal(transport_migrate(p->client, new_server, p->now), 0);
}

static void client_follows_server_to_a_new_address(void **state) {
  (void)state;
  pair_t p;
  start(&p, 0);
  uint8_t *buf = queue_message(&p, 300000, 3);
  blackout_until_dead(&p);
  /* The server's NAT rebinds: it is reachable at another port now, and its
   * packets come from there. */
  addr(&server_now, 4444);
  p.cfg_server.local = server_now;
  recover(&p, &server_now);
  expect_delivered_once(&p, buf, 300000);
  assert_false(transport_timers_held(p.client));
  assert_false(transport_path_dead(p.client, p.now));
  free(buf);
  pair_free(&p);
}

static void server_follows_client_from_a_new_address(void **state) {
  (void)state;
  pair_t p;
  start(&p, 0);
  uint8_t *buf = queue_message(&p, 300000, 4);
  blackout_until_dead(&p);
  /* The client's NAT rebinds: same server, new source port. */
  addr(&p.cfg_client.local, 6666);
  recover(&p, &server_now);
  expect_delivered_once(&p, buf, 300000);
  /* The server answers the new address: a reply reaches the client. */
  static const uint8_t reply[] = "pong";
  assert_int_equal(transport_queue(p.server, transport_msg_new(reply, 4)), 0);
  uint8_t *got = NULL;
  size_t n = 0;
  bool credit;
  for (int i = 0; i < 20000 && got == NULL; i++) {
    step_addressed(&p);
    if (!transport_pop(p.client, &got, &n, &credit))
      got = NULL;
  }
  assert_non_null(got);
  assert_int_equal(n, 4);
  free(got);
  free(buf);
  pair_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(dead_path_after_two_seconds_without_acks),
      cmocka_unit_test(ten_percent_loss_is_not_a_dead_path),
      cmocka_unit_test(client_follows_server_to_a_new_address),
      cmocka_unit_test(server_follows_client_from_a_new_address),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
