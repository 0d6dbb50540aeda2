/* ctest: labels=loopback,iothread */
/*
 * Backpressure: when the peer does not read, send blocks once the send
 * window is full and times out with nothing of the message queued; a send
 * blocked that way returns QP_ERR_CLOSED when the portal is closed; reading
 * releases it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quic_portal.h"
#include "tu.h"

#define KIB 1024u
#define MSG_LEN (64 * KIB)
/* Upper bound on what a non-reading peer may absorb before the sender must
 * block: far above the small windows below, far below memory limits. */
#define MAX_ACCEPTED_BYTES (100u * 1024 * 1024)

/* Small windows so the sender fills them quickly. */
static void small_windows(qp_transport_options *server,
                          qp_transport_options *client) {
  *server = tu_default_options();
  *client = tu_default_options();
  server->stream_receive_window = 256 * KIB;
  server->conn_receive_window = 512 * KIB;
  client->send_window = 1024 * KIB;
}

/* Send MSG_LEN tu_msgs (stream 4) with a 300 ms timeout until one times
 * out; returns how many were accepted. */
static uint32_t fill_until_send_times_out(qp_portal_t *client) {
  for (uint32_t i = 0;; i++) {
    if ((uint64_t)i * MSG_LEN > MAX_ACCEPTED_BYTES)
      fail_msg("no backpressure: %u messages (%u bytes) accepted while the "
               "peer reads nothing (receive windows 256/512 KiB, send window "
               "1 MiB)",
               i, i * MSG_LEN);
    void *m = tu_msg_make(4, i, MSG_LEN);
    int64_t start = tu_now_ms();
    int rc = qp_portal_send(client, m, MSG_LEN, 300);
    int64_t elapsed = tu_now_ms() - start;
    free(m);
    if (rc == QP_OK)
      continue;
    if (rc != QP_ERR_TIMEOUT)
      fail_msg("send %u returned %s, expected QP_OK or QP_ERR_TIMEOUT: "
               "\"%s\"",
               i, qp_err_name(rc), qp_last_error());
    if (elapsed < 250 || elapsed > 2000)
      fail_msg("send with a 300 ms timeout returned QP_ERR_TIMEOUT after %lld "
               "ms",
               (long long)elapsed);
    if (qp_last_error()[0] == '\0')
      fail_msg("send timed out with an empty qp_last_error()");
    print_message("send %u timed out after %lld ms: \"%s\"\n", i,
                  (long long)elapsed, qp_last_error());
    return i;
  }
}

static void expect_msg(qp_portal_t *p, uint32_t index, int timeout_ms) {
  void *msg = NULL;
  size_t len = 0;
  int rc = qp_portal_recv(p, &msg, &len, timeout_ms);
  if (rc != QP_OK)
    fail_msg("recv of message %u returned %s: \"%s\"", index, qp_err_name(rc),
             qp_last_error());
  uint32_t stream = 0, got = 0;
  char why[256];
  bool ok = tu_msg_check(msg, len, &stream, &got, why, sizeof(why));
  qp_free(msg);
  if (!ok)
    fail_msg("message %u is damaged: %s", index, why);
  if (stream != 4 || got != index || len != MSG_LEN)
    fail_msg("expected message %u (stream 4, %u bytes), got index %u stream "
             "%u, %zu bytes",
             index, MSG_LEN, got, stream, len);
}

static void send_times_out_when_peer_does_not_read_and_queues_nothing(
    void **state) {
  (void)state;
  qp_transport_options so, co;
  small_windows(&so, &co);
  tu_pair_t pair;
  tu_pair_connect(&pair, &so, &co);
  uint32_t accepted = fill_until_send_times_out(pair.client);
  assert_true(accepted > 0);
  /* A poll with a full window returns at once. */
  void *m = tu_msg_make(4, accepted, MSG_LEN);
  int64_t start = tu_now_ms();
  TU_QP_ERR(qp_portal_send(pair.client, m, MSG_LEN, 0), QP_ERR_TIMEOUT);
  assert_in_range(tu_now_ms() - start, 0, 200);
  assert_true(qp_portal_is_connected(pair.client));

  /* The peer reads: exactly the accepted messages, whole and in order. */
  for (uint32_t i = 0; i < accepted; i++)
    expect_msg(pair.server, i, 10000);
  /* The refused message (same index) never went out, not even partly. */
  void *msg = NULL;
  size_t len = 0;
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 300), QP_ERR_TIMEOUT);
  /* Sent again, it arrives as the next message. */
  tu_send_ok(pair.client, m, MSG_LEN, 10000);
  expect_msg(pair.server, accepted, 10000);
  free(m);
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 200), QP_ERR_TIMEOUT);
  tu_pair_destroy(&pair);
}

typedef struct blocked_send {
  qp_portal_t *portal;
  uint32_t index;
  atomic_int entered;
  int rc;
  int64_t returned_at_ms;
  char error[512];
} blocked_send_t;

static void *blocked_send_main(void *arg) {
  blocked_send_t *b = arg;
  void *m = tu_msg_make(4, b->index, MSG_LEN);
  atomic_store(&b->entered, 1);
  b->rc = qp_portal_send(b->portal, m, MSG_LEN, 15000);
  b->returned_at_ms = tu_now_ms();
  snprintf(b->error, sizeof(b->error), "%s", qp_last_error());
  free(m);
  return NULL;
}

static void blocked_send_returns_closed_when_portal_is_closed(void **state) {
  (void)state;
  qp_transport_options so, co;
  small_windows(&so, &co);
  tu_pair_t pair;
  tu_pair_connect(&pair, &so, &co);
  uint32_t accepted = fill_until_send_times_out(pair.client);
  blocked_send_t b = {.portal = pair.client, .index = accepted};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, blocked_send_main, &b), 0);
  while (!atomic_load(&b.entered))
    ;
  int64_t start = tu_now_ms();
  /* linger 0 with data unacknowledged: QP_ERR_TIMEOUT, closed anyway. */
  int close_rc = qp_portal_close(pair.client, 0);
  const char *close_err = qp_last_error();
  int64_t close_ms = tu_now_ms() - start;
  pthread_join(th, NULL);
  print_message("close(linger 0) returned %s after %lld ms; the blocked send "
                "returned %s after %lld ms\n",
                qp_err_name(close_rc), (long long)close_ms, qp_err_name(b.rc),
                (long long)(b.returned_at_ms - start));
  TU_RC_EQ(close_rc, QP_ERR_TIMEOUT, close_err);
  assert_in_range(close_ms, 0, 1000);
  TU_RC_EQ(b.rc, QP_ERR_CLOSED, b.error);
  if (b.returned_at_ms - start > 2000)
    fail_msg("the blocked send returned %lld ms after close (its timeout was "
             "15 s)",
             (long long)(b.returned_at_ms - start));
  assert_false(qp_portal_is_connected(pair.client));
  tu_pair_destroy(&pair);
}

typedef struct reader {
  qp_portal_t *portal;
  uint32_t count;
  int rc;
  uint32_t received;
  char error[512];
} reader_t;

static void *reader_main(void *arg) {
  reader_t *r = arg;
  r->rc = QP_OK;
  for (uint32_t i = 0; i < r->count; i++) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(r->portal, &msg, &len, 15000);
    if (rc != QP_OK) {
      r->rc = rc;
      snprintf(r->error, sizeof(r->error), "recv %u: %s", i, qp_last_error());
      return NULL;
    }
    uint32_t stream = 0, index = 0;
    char why[256];
    bool ok = tu_msg_check(msg, len, &stream, &index, why, sizeof(why));
    qp_free(msg);
    if (!ok || index != i) {
      r->rc = QP_ERR_PROTOCOL;
      snprintf(r->error, sizeof(r->error), "message %u: %s (index %u)", i,
               ok ? "out of order" : why, index);
      return NULL;
    }
    r->received++;
  }
  return NULL;
}

/* With the same small windows, 32 MiB pass once the peer reads: blocked
 * sends resume as the reader frees the windows. */
static void reading_releases_a_blocked_sender(void **state) {
  (void)state;
  enum { COUNT = 512 }; /* 512 x 64 KiB = 32 MiB */
  qp_transport_options so, co;
  small_windows(&so, &co);
  tu_pair_t pair;
  tu_pair_connect(&pair, &so, &co);
  uint32_t accepted = fill_until_send_times_out(pair.client);
  reader_t r = {.portal = pair.server, .count = COUNT};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
  int64_t start = tu_now_ms();
  for (uint32_t i = accepted; i < COUNT; i++) {
    void *m = tu_msg_make(4, i, MSG_LEN);
    int rc = qp_portal_send(pair.client, m, MSG_LEN, 15000);
    free(m);
    if (rc != QP_OK)
      fail_msg("send %u (reader running) returned %s: \"%s\"", i,
               qp_err_name(rc), qp_last_error());
  }
  pthread_join(th, NULL);
  int64_t elapsed = tu_now_ms() - start;
  print_message("32 MiB through 256 KiB/512 KiB/1 MiB windows in %lld ms\n",
                (long long)elapsed);
  TU_RC_EQ(r.rc, QP_OK, r.error);
  assert_int_equal(r.received, COUNT);
  /* 64 refills of a 512 KiB window on loopback take well under a second;
   * 10 s (3.3 MB/s) means the sender or the reader stalls on timers. */
  if (elapsed > 10000)
    fail_msg("32 MiB took %lld ms through small windows (limit 10 s): the "
             "blocked sender or the reader is woken late",
             (long long)elapsed);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(
          send_times_out_when_peer_does_not_read_and_queues_nothing),
      cmocka_unit_test(blocked_send_returns_closed_when_portal_is_closed),
      cmocka_unit_test(reading_releases_a_blocked_sender),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
