/* ctest: labels=loopback,iothread */
/*
 * Whole messages through a portal pair in one process: sizes from 0 bytes to
 * 100 MiB come back byte for byte, many small messages keep their order, and
 * both sides can send at the same time.
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

/* Connect a pair, start an echo peer on the server, round-trip one message
 * of len pattern bytes from the client, then close and check that the echo
 * peer saw exactly one message and then QP_ERR_CLOSED. */
static void echo_one(size_t len, uint32_t seed, int timeout_ms) {
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, timeout_ms);

  uint8_t *want = tu_pattern(len, seed);
  int64_t start = tu_now_ms();
  tu_send_ok(pair.client, want, len, timeout_ms);
  void *got = NULL;
  size_t got_len = 12345;
  int rc = qp_portal_recv(pair.client, &got, &got_len, timeout_ms);
  if (rc != QP_OK)
    fail_msg("recv of the %zu-byte echo returned %s after %lld ms: \"%s\"",
             len, qp_err_name(rc), (long long)(tu_now_ms() - start),
             qp_last_error());
  print_message("echo of %zu bytes took %lld ms\n", len,
                (long long)(tu_now_ms() - start));
  /* For a 0-byte message *msg is still a valid pointer (header). */
  assert_non_null(got);
  assert_int_equal(got_len, len);
  size_t off = tu_pattern_mismatch(got, got_len, seed);
  if (off != len)
    fail_msg("echo of %zu bytes differs from what was sent at offset %zu",
             len, off);
  qp_free(got);
  free(want);

  TU_QP_OK(qp_portal_close(pair.client, 5000));
  rc = tu_echo_join(&echo);
  TU_RC_EQ(rc, QP_ERR_CLOSED, echo.error);
  assert_string_equal(echo.failed_call, "recv");
  assert_int_equal(echo.messages, 1);
  assert_int_equal(echo.bytes, len);
  tu_pair_destroy(&pair);
}

static void echo_zero_bytes(void **state) {
  (void)state;
  echo_one(0, 1, 10000);
}

static void echo_one_byte(void **state) {
  (void)state;
  echo_one(1, 2, 10000);
}

static void echo_one_mib(void **state) {
  (void)state;
  echo_one(MIB, 3, 20000);
}

static void echo_hundred_mib(void **state) {
  (void)state;
  echo_one(100 * (size_t)MIB, 4, 60000);
}

/* 10 000 small messages, each carrying its index, come back in order. */
static void ten_thousand_small_messages_arrive_in_order(void **state) {
  (void)state;
  enum { N = 10000 };
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, 20000);

  int64_t start = tu_now_ms();
  for (uint32_t i = 0; i < N; i++) {
    size_t len = TU_MSG_HEADER + i % 113; /* 16..128 bytes */
    void *m = tu_msg_make(7, i, len);
    int rc = qp_portal_send(pair.client, m, len, 10000);
    free(m);
    if (rc != QP_OK)
      fail_msg("send of message %u of %d returned %s: \"%s\"", i, N,
               qp_err_name(rc), qp_last_error());
  }
  for (uint32_t i = 0; i < N; i++) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(pair.client, &msg, &len, 20000);
    if (rc != QP_OK)
      fail_msg("recv of echo %u of %d returned %s: \"%s\" (echo peer echoed "
               "%llu so far)",
               i, N, qp_err_name(rc), qp_last_error(),
               (unsigned long long)echo.messages);
    uint32_t stream = 0, index = 0;
    char why[256];
    bool ok = tu_msg_check(msg, len, &stream, &index, why, sizeof(why));
    qp_free(msg);
    if (!ok)
      fail_msg("echo %u is not the message sent: %s", i, why);
    if (stream != 7 || index != i)
      fail_msg("echo %u out of order: got stream %u index %u, expected "
               "stream 7 index %u",
               i, stream, index, i);
    if (len != TU_MSG_HEADER + i % 113)
      fail_msg("echo %u has %zu bytes, expected %u", i, len,
               TU_MSG_HEADER + i % 113);
  }
  print_message("%d messages echoed in order in %lld ms\n", N,
                (long long)(tu_now_ms() - start));
  TU_QP_OK(qp_portal_close(pair.client, 5000));
  int rc = tu_echo_join(&echo);
  TU_RC_EQ(rc, QP_ERR_CLOSED, echo.error);
  assert_int_equal(echo.messages, N);
  tu_pair_destroy(&pair);
}

/* Both directions at once: each side has a sender thread and a receiver
 * thread; every message is checked whole and in order. */
enum { DUPLEX_N = 300 };

typedef struct duplex_side {
  qp_portal_t *portal;
  uint32_t my_stream, peer_stream;
  /* results */
  int send_rc, recv_rc;
  uint32_t sent, received;
  uint64_t bytes_received;
  char send_error[512], recv_error[512];
} duplex_side_t;

static size_t duplex_len(uint32_t index) {
  /* 16 B .. ~128 KiB, with a few exact boundaries mixed in. */
  static const size_t fixed[] = {TU_MSG_HEADER, 1200, 1452, 65536, 131072};
  if (index % 10 == 0)
    return fixed[(index / 10) % 5];
  return TU_MSG_HEADER + ((size_t)index * 7919u) % (128u * 1024u);
}

static void *duplex_sender(void *arg) {
  duplex_side_t *s = arg;
  s->send_rc = QP_OK;
  for (uint32_t i = 0; i < DUPLEX_N; i++) {
    size_t len = duplex_len(i);
    void *m = tu_msg_make(s->my_stream, i, len);
    int rc = qp_portal_send(s->portal, m, len, 30000);
    free(m);
    if (rc != QP_OK) {
      s->send_rc = rc;
      snprintf(s->send_error, sizeof(s->send_error),
               "send of message %u: %s", i, qp_last_error());
      return NULL;
    }
    s->sent++;
  }
  return NULL;
}

static void *duplex_receiver(void *arg) {
  duplex_side_t *s = arg;
  s->recv_rc = QP_OK;
  for (uint32_t i = 0; i < DUPLEX_N; i++) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(s->portal, &msg, &len, 30000);
    if (rc != QP_OK) {
      s->recv_rc = rc;
      snprintf(s->recv_error, sizeof(s->recv_error), "recv of message %u: %s",
               i, qp_last_error());
      return NULL;
    }
    uint32_t stream = 0, index = 0;
    char why[256];
    bool ok = tu_msg_check(msg, len, &stream, &index, why, sizeof(why));
    qp_free(msg);
    if (!ok || stream != s->peer_stream || index != i ||
        len != duplex_len(i)) {
      s->recv_rc = QP_ERR_PROTOCOL;
      snprintf(s->recv_error, sizeof(s->recv_error),
               "message %u: %s (got stream %u index %u, %zu bytes; expected "
               "stream %u index %u, %zu bytes)",
               i, ok ? "wrong message" : why, stream, index, len,
               s->peer_stream, i, duplex_len(i));
      return NULL;
    }
    s->received++;
    s->bytes_received += len;
  }
  return NULL;
}

static void both_sides_send_at_once(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  duplex_side_t server = {.portal = pair.server, .my_stream = 1,
                          .peer_stream = 2};
  duplex_side_t client = {.portal = pair.client, .my_stream = 2,
                          .peer_stream = 1};
  pthread_t th[4];
  int64_t start = tu_now_ms();
  assert_int_equal(pthread_create(&th[0], NULL, duplex_receiver, &server), 0);
  assert_int_equal(pthread_create(&th[1], NULL, duplex_receiver, &client), 0);
  assert_int_equal(pthread_create(&th[2], NULL, duplex_sender, &server), 0);
  assert_int_equal(pthread_create(&th[3], NULL, duplex_sender, &client), 0);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  print_message("%d messages each way (%llu and %llu bytes) in %lld ms\n",
                DUPLEX_N, (unsigned long long)server.bytes_received,
                (unsigned long long)client.bytes_received,
                (long long)(tu_now_ms() - start));
  TU_RC_EQ(server.send_rc, QP_OK, server.send_error);
  TU_RC_EQ(client.send_rc, QP_OK, client.send_error);
  TU_RC_EQ(server.recv_rc, QP_OK, server.recv_error);
  TU_RC_EQ(client.recv_rc, QP_OK, client.recv_error);
  assert_int_equal(server.sent, DUPLEX_N);
  assert_int_equal(client.sent, DUPLEX_N);
  assert_int_equal(server.received, DUPLEX_N);
  assert_int_equal(client.received, DUPLEX_N);
  /* Nothing extra arrived on either side. */
  void *msg = NULL;
  size_t len = 0;
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 100), QP_ERR_TIMEOUT);
  TU_QP_ERR(qp_portal_recv(pair.client, &msg, &len, 100), QP_ERR_TIMEOUT);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(echo_zero_bytes),
      cmocka_unit_test(echo_one_byte),
      cmocka_unit_test(echo_one_mib),
      cmocka_unit_test(echo_hundred_mib),
      cmocka_unit_test(ten_thousand_small_messages_arrive_in_order),
      cmocka_unit_test(both_sides_send_at_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
