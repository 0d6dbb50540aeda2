/* ctest: labels=loopback,iothread */
/*
 * A receive that times out while a message is half-arrived returns
 * QP_ERR_TIMEOUT and hands out nothing; the half stays buffered and a later
 * receive returns the whole message, intact and in order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic_portal.h"
#include "tu.h"

#define MIB (1024u * 1024u)
#define BIG (64 * (size_t)MIB)

typedef struct sender {
  qp_portal_t *portal;
  size_t len;
  uint32_t seed;
  int count; /* messages of len bytes, seeds seed, seed+1, ... */
  bool trailer; /* then one small tu_msg (stream 9, index 1) */
  int rc;
  char error[512];
} sender_t;

static void *sender_main(void *arg) {
  sender_t *s = arg;
  s->rc = QP_OK;
  uint8_t *buf = malloc(s->len > 0 ? s->len : 1);
  if (buf == NULL) {
    s->rc = QP_ERR_NOMEM;
    snprintf(s->error, sizeof(s->error), "test could not allocate %zu bytes",
             s->len);
    return NULL;
  }
  for (int i = 0; i < s->count && s->rc == QP_OK; i++) {
    tu_fill_pattern(buf, s->len, s->seed + (uint32_t)i);
    s->rc = qp_portal_send(s->portal, buf, s->len, 60000);
    if (s->rc != QP_OK)
      snprintf(s->error, sizeof(s->error), "send of message %d: %s", i,
               qp_last_error());
  }
  free(buf);
  if (s->rc == QP_OK && s->trailer) {
    void *m = tu_msg_make(9, 1, 100);
    s->rc = qp_portal_send(s->portal, m, 100, 10000);
    if (s->rc != QP_OK)
      snprintf(s->error, sizeof(s->error), "send of the trailer: %s",
               qp_last_error());
    free(m);
  }
  return NULL;
}

static uint64_t packets_received(qp_portal_t *p) {
  qp_portal_stats st;
  memset(&st, 0, sizeof(st));
  TU_QP_OK(qp_portal_get_stats(p, &st));
  return st.packets_received;
}

/*
 * One attempt: the client sends a BIG message (then a small trailer); the
 * server polls with recv(timeout_ms) until the big message is returned.
 * Returns how many timeouts happened while the message was arriving (packets
 * of it had been received, but recv still had nothing whole to return).
 */
static int receive_big_with_short_timeouts(tu_pair_t *pair, int timeout_ms,
                                           uint32_t seed) {
  uint64_t baseline = packets_received(pair->server);
  sender_t s = {.portal = pair->client, .len = BIG, .seed = seed, .count = 1,
                .trailer = true};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);

  int in_flight_timeouts = 0, timeouts = 0;
  int64_t start = tu_now_ms(), deadline = start + 60000;
  void *msg = NULL;
  size_t len = 0;
  for (;;) {
    msg = NULL;
    len = 0;
    int rc = qp_portal_recv(pair->server, &msg, &len, timeout_ms);
    if (rc == QP_OK)
      break;
    if (rc != QP_ERR_TIMEOUT)
      fail_msg("recv(timeout %d ms) while a %zu-byte message arrives returned "
               "%s after %d timeouts: \"%s\"",
               timeout_ms, BIG, qp_err_name(rc), timeouts, qp_last_error());
    if (msg != NULL)
      fail_msg("recv returned QP_ERR_TIMEOUT but handed out a buffer (%p, "
               "%zu bytes)",
               msg, len);
    timeouts++;
    /* 100 packets of the message are in: it is partly received. */
    if (packets_received(pair->server) >= baseline + 100)
      in_flight_timeouts++;
    if (tu_now_ms() > deadline)
      fail_msg("the %zu-byte message did not arrive within 60 s (%d timeouts, "
               "%llu packets received)",
               BIG, timeouts,
               (unsigned long long)(packets_received(pair->server) - baseline));
  }
  print_message("%zu bytes arrived after %lld ms; recv(%d ms) timed out %d "
                "times, %d of them with the message partly received\n",
                BIG, (long long)(tu_now_ms() - start), timeout_ms, timeouts,
                in_flight_timeouts);
  if (len != BIG) {
    qp_free(msg);
    fail_msg("the message came back with %zu bytes, expected %zu", len, BIG);
  }
  size_t off = tu_pattern_mismatch(msg, len, seed);
  qp_free(msg);
  if (off != len)
    fail_msg("the %zu-byte message differs from what was sent at offset %zu",
             len, off);

  /* The message sent after it comes next, whole. */
  msg = NULL;
  int rc = qp_portal_recv(pair->server, &msg, &len, 10000);
  if (rc != QP_OK)
    fail_msg("recv of the message sent after the big one returned %s: \"%s\"",
             qp_err_name(rc), qp_last_error());
  uint32_t stream = 0, index = 0;
  char why[256];
  bool ok = tu_msg_check(msg, len, &stream, &index, why, sizeof(why));
  qp_free(msg);
  if (!ok)
    fail_msg("the message after the big one is damaged: %s", why);
  assert_int_equal(stream, 9);
  assert_int_equal(index, 1);

  pthread_join(th, NULL);
  TU_RC_EQ(s.rc, QP_OK, s.error);
  return in_flight_timeouts;
}

static void timeout_mid_message(int timeout_ms) {
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  int in_flight = 0;
  for (int attempt = 0; attempt < 3 && in_flight == 0; attempt++)
    in_flight += receive_big_with_short_timeouts(&pair, timeout_ms,
                                                 1000 + (uint32_t)attempt);
  if (in_flight == 0)
    fail_msg("in 3 attempts no recv(%d ms) timed out while a %zu-byte message "
             "was partly received: the case under test never happened",
             timeout_ms, BIG);
  tu_pair_destroy(&pair);
}

static void recv_with_1ms_timeout_mid_message_times_out_then_returns_it_whole(
    void **state) {
  (void)state;
  timeout_mid_message(1);
}

static void recv_polling_with_0ms_mid_message_then_returns_it_whole(
    void **state) {
  (void)state;
  timeout_mid_message(0);
}

/* Eight 8 MiB messages received with 1..5 ms timeouts: every one whole, in
 * order, none lost or split however the timeouts fall. */
static void many_timeouts_never_lose_or_split_messages(void **state) {
  (void)state;
  enum { COUNT = 8 };
  const size_t len = 8 * (size_t)MIB;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  sender_t s = {.portal = pair.client, .len = len, .seed = 500,
                .count = COUNT, .trailer = false};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, sender_main, &s), 0);
  int timeouts = 0;
  int64_t deadline = tu_now_ms() + 60000;
  for (int i = 0; i < COUNT;) {
    void *msg = NULL;
    size_t got = 0;
    int rc = qp_portal_recv(pair.server, &msg, &got, 1 + (i + timeouts) % 5);
    if (rc == QP_ERR_TIMEOUT) {
      assert_null(msg);
      timeouts++;
      if (tu_now_ms() > deadline)
        fail_msg("only %d of %d messages arrived within 60 s", i, COUNT);
      continue;
    }
    if (rc != QP_OK)
      fail_msg("recv of message %d returned %s: \"%s\"", i, qp_err_name(rc),
               qp_last_error());
    if (got != len) {
      qp_free(msg);
      fail_msg("message %d has %zu bytes, expected %zu", i, got, len);
    }
    size_t off = tu_pattern_mismatch(msg, got, 500 + (uint32_t)i);
    qp_free(msg);
    if (off != got)
      fail_msg("message %d differs at offset %zu (split, lost or reordered "
               "data)",
               i, off);
    i++;
  }
  print_message("%d messages of %zu bytes, %d timeouts in between\n", COUNT,
                len, timeouts);
  assert_true(timeouts > 0);
  pthread_join(th, NULL);
  TU_RC_EQ(s.rc, QP_OK, s.error);
  tu_pair_destroy(&pair);
}

/* With nothing on the way, recv(200 ms) waits about 200 ms. */
static void recv_timeout_waits_about_timeout_ms(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  void *msg = NULL;
  size_t len = 0;
  int64_t start = tu_now_ms();
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 200), QP_ERR_TIMEOUT);
  int64_t elapsed = tu_now_ms() - start;
  assert_null(msg);
  print_message("recv(200 ms) returned after %lld ms\n", (long long)elapsed);
  assert_in_range(elapsed, 190, 1000);
  /* A poll returns at once. */
  start = tu_now_ms();
  TU_QP_ERR(qp_portal_recv(pair.client, &msg, &len, 0), QP_ERR_TIMEOUT);
  elapsed = tu_now_ms() - start;
  assert_in_range(elapsed, 0, 100);
  assert_null(msg);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          recv_with_1ms_timeout_mid_message_times_out_then_returns_it_whole),
      cmocka_unit_test(recv_polling_with_0ms_mid_message_then_returns_it_whole),
      cmocka_unit_test(many_timeouts_never_lose_or_split_messages),
      cmocka_unit_test(recv_timeout_waits_about_timeout_ms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
