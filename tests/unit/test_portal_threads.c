/* ctest: labels=loopback,iothread */
/*
 * Threads on one portal: a send is not held up by a receive blocked on
 * another thread, a blocked receive wakes promptly for a message and on
 * close, concurrent senders each deliver whole messages, and concurrent
 * receivers each get whole, different messages.
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

typedef struct blocked_recv {
  qp_portal_t *portal;
  int timeout_ms;
  atomic_int entered;  /* set just before qp_portal_recv is called */
  atomic_int returned; /* set when it returned */
  int rc;
  void *msg;
  size_t len;
  int64_t returned_at_ms;
  char error[512];
} blocked_recv_t;

static void *blocked_recv_main(void *arg) {
  blocked_recv_t *b = arg;
  atomic_store(&b->entered, 1);
  b->rc = qp_portal_recv(b->portal, &b->msg, &b->len, b->timeout_ms);
  b->returned_at_ms = tu_now_ms();
  snprintf(b->error, sizeof(b->error), "%s", qp_last_error());
  atomic_store(&b->returned, 1);
  return NULL;
}

static void start_blocked_recv(blocked_recv_t *b, pthread_t *th,
                               qp_portal_t *p, int timeout_ms) {
  memset(b, 0, sizeof(*b));
  b->portal = p;
  b->timeout_ms = timeout_ms;
  assert_int_equal(pthread_create(th, NULL, blocked_recv_main, b), 0);
  int64_t deadline = tu_now_ms() + 5000;
  while (!atomic_load(&b->entered))
    if (tu_now_ms() > deadline)
      fail_msg("the receiver thread did not start within 5 s");
}

/*
 * The client's receiver thread blocks in recv; the client's main thread
 * sends on the same portal, and the server receives that message while the
 * receiver thread is still waiting (nothing was sent to the client yet).
 * Then the server answers, and the blocked recv returns it promptly.
 */
static void send_proceeds_while_another_thread_blocks_in_recv(void **state) {
  (void)state;
  enum { ROUNDS = 30 };
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  int64_t worst_wake = 0;
  for (uint32_t round = 0; round < ROUNDS; round++) {
    blocked_recv_t b;
    pthread_t th;
    start_blocked_recv(&b, &th, pair.client, 10000);

    void *ping = tu_msg_make(1, round, 64);
    int64_t start = tu_now_ms();
    tu_send_ok(pair.client, ping, 64, 5000);
    int64_t send_ms = tu_now_ms() - start;
    if (send_ms > 1000)
      fail_msg("round %u: send took %lld ms while another thread was blocked "
               "in recv",
               round, (long long)send_ms);
    tu_recv_expect(pair.server, ping, 64, 5000);
    free(ping);
    /* Nothing was sent to the client: its receiver must still wait. */
    if (atomic_load(&b.returned))
      fail_msg("round %u: the blocked recv returned %s before anything was "
               "sent to it: \"%s\"",
               round, qp_err_name(b.rc), b.error);

    void *pong = tu_msg_make(2, round, 64);
    int64_t sent_at = tu_now_ms();
    tu_send_ok(pair.server, pong, 64, 5000);
    pthread_join(th, NULL);
    TU_RC_EQ(b.rc, QP_OK, b.error);
    tu_assert_same_bytes("the answer received by the blocked thread", b.msg,
                         b.len, pong, 64);
    qp_free(b.msg);
    free(pong);
    int64_t wake = b.returned_at_ms - sent_at;
    if (wake > worst_wake)
      worst_wake = wake;
  }
  print_message("%d rounds; slowest wake-up of the blocked recv: %lld ms\n",
                ROUNDS, (long long)worst_wake);
  /* Loopback delivers in well under a millisecond; 500 ms means a
   * wake-up was lost and a timer rescued it. */
  if (worst_wake > 500)
    fail_msg("a recv blocked on another thread returned %lld ms after the "
             "peer sent its message (limit 500 ms on loopback)",
             (long long)worst_wake);
  tu_pair_destroy(&pair);
}

/* A reply reaches an echo requester promptly: the requester blocks in recv
 * before the echo peer (on its own thread) answers. */
static void echo_replies_arrive_promptly(void **state) {
  (void)state;
  enum { ROUNDS = 30 };
  int64_t worst = 0;
  for (uint32_t round = 0; round < ROUNDS; round++) {
    /* A fresh connection each round: the first messages of a connection
     * are the ones most exposed to start-up races. */
    tu_pair_t pair;
    tu_pair_connect(&pair, NULL, NULL);
    tu_echo_t echo;
    tu_echo_start(&echo, pair.server, 10000);
    int64_t start = tu_now_ms();
    tu_echo_roundtrip(pair.client, 1 + round, round, 5000);
    int64_t rtt = tu_now_ms() - start;
    if (rtt > worst)
      worst = rtt;
    TU_QP_OK(qp_portal_close(pair.client, 2000));
    TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
    tu_pair_destroy(&pair);
  }
  print_message("slowest of %d first round trips: %lld ms\n", ROUNDS,
                (long long)worst);
  if (worst > 500)
    fail_msg("a small echo round trip on loopback took %lld ms (limit "
             "500 ms)",
             (long long)worst);
}

static void blocked_recv_returns_closed_when_portal_is_closed(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  blocked_recv_t b;
  pthread_t th;
  start_blocked_recv(&b, &th, pair.server, 10000);
  int64_t start = tu_now_ms();
  TU_QP_OK(qp_portal_close(pair.server, 1000));
  pthread_join(th, NULL);
  int64_t elapsed = b.returned_at_ms - start;
  print_message("blocked recv returned %s %lld ms after close\n",
                qp_err_name(b.rc), (long long)elapsed);
  TU_RC_EQ(b.rc, QP_ERR_CLOSED, b.error);
  assert_null(b.msg);
  if (elapsed > 2000)
    fail_msg("the blocked recv returned %lld ms after close (its timeout "
             "was 10 s)",
             (long long)elapsed);
  tu_pair_destroy(&pair);
}

/* ---- four senders on one portal ---- */

enum { SENDERS = 4, PER_SENDER = 400 };

typedef struct sender_arg {
  qp_portal_t *portal;
  uint32_t stream;
  atomic_int *go;
  int rc;
  uint32_t sent;
  char error[512];
} sender_arg_t;

static size_t sender_len(uint32_t stream, uint32_t index) {
  /* 16 B .. 96 KiB, every 50th message 512 KiB so that sends block on the
   * window and interleave. */
  if (index % 50 == 49)
    return 512 * 1024;
  return TU_MSG_HEADER + ((size_t)(index * 7 + stream) * 2897u) % (96 * 1024);
}

static void *sender_main(void *arg) {
  sender_arg_t *s = arg;
  while (!atomic_load(s->go))
    ;
  s->rc = QP_OK;
  for (uint32_t i = 0; i < PER_SENDER; i++) {
    size_t len = sender_len(s->stream, i);
    void *m = tu_msg_make(s->stream, i, len);
    int rc = qp_portal_send(s->portal, m, len, 30000);
    free(m);
    if (rc != QP_OK) {
      s->rc = rc;
      snprintf(s->error, sizeof(s->error), "stream %u send %u: %s", s->stream,
               i, qp_last_error());
      return NULL;
    }
    s->sent++;
  }
  return NULL;
}

static void four_threads_send_on_one_portal_each_message_whole(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  atomic_int go = 0;
  sender_arg_t args[SENDERS];
  pthread_t th[SENDERS];
  for (uint32_t i = 0; i < SENDERS; i++) {
    args[i] = (sender_arg_t){.portal = pair.client, .stream = 10 + i,
                             .go = &go};
    assert_int_equal(pthread_create(&th[i], NULL, sender_main, &args[i]), 0);
  }
  atomic_store(&go, 1);
  uint32_t next[SENDERS] = {0};
  uint64_t bytes = 0;
  int64_t start = tu_now_ms();
  for (uint32_t n = 0; n < SENDERS * PER_SENDER; n++) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(pair.server, &msg, &len, 30000);
    if (rc != QP_OK)
      fail_msg("recv of message %u of %d returned %s: \"%s\"", n,
               SENDERS * PER_SENDER, qp_err_name(rc), qp_last_error());
    uint32_t stream = 0, index = 0;
    char why[256];
    bool ok = tu_msg_check(msg, len, &stream, &index, why, sizeof(why));
    qp_free(msg);
    if (!ok)
      fail_msg("message %u received is not whole: %s (messages of concurrent "
               "senders interleaved?)",
               n, why);
    if (stream < 10 || stream >= 10 + SENDERS)
      fail_msg("message %u from unknown stream %u", n, stream);
    /* One thread's messages keep their order. */
    if (index != next[stream - 10])
      fail_msg("stream %u: got index %u, expected %u", stream, index,
               next[stream - 10]);
    next[stream - 10]++;
    bytes += len;
  }
  for (int i = 0; i < SENDERS; i++) {
    pthread_join(th[i], NULL);
    TU_RC_EQ(args[i].rc, QP_OK, args[i].error);
    assert_int_equal(args[i].sent, PER_SENDER);
    assert_int_equal(next[i], PER_SENDER);
  }
  print_message("%d senders x %d messages (%llu bytes) in %lld ms\n", SENDERS,
                PER_SENDER, (unsigned long long)bytes,
                (long long)(tu_now_ms() - start));
  void *msg = NULL;
  size_t len = 0;
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 200), QP_ERR_TIMEOUT);
  tu_pair_destroy(&pair);
}

/* ---- two receivers on one portal ---- */

enum { RECV_TOTAL = 2000, RECEIVERS = 2 };

typedef struct shared_recv {
  qp_portal_t *portal;
  pthread_mutex_t lock;
  uint8_t seen[RECV_TOTAL];
  int received;
  int duplicates;
  int rc;
  char error[512];
} shared_recv_t;

static void *receiver_main(void *arg) {
  shared_recv_t *s = arg;
  int64_t deadline = tu_now_ms() + 30000;
  for (;;) {
    pthread_mutex_lock(&s->lock);
    bool done = s->received + s->duplicates >= RECV_TOTAL || s->rc != QP_OK;
    pthread_mutex_unlock(&s->lock);
    if (done || tu_now_ms() > deadline)
      return NULL;
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(s->portal, &msg, &len, 100);
    if (rc == QP_ERR_TIMEOUT)
      continue;
    pthread_mutex_lock(&s->lock);
    if (rc != QP_OK) {
      s->rc = rc;
      snprintf(s->error, sizeof(s->error), "recv: %s", qp_last_error());
    } else {
      uint32_t stream = 0, index = 0;
      char why[256];
      if (!tu_msg_check(msg, len, &stream, &index, why, sizeof(why)) ||
          stream != 20 || index >= RECV_TOTAL) {
        s->rc = QP_ERR_PROTOCOL;
        snprintf(s->error, sizeof(s->error), "bad message: %s", why);
      } else if (s->seen[index]) {
        s->duplicates++;
      } else {
        s->seen[index] = 1;
        s->received++;
      }
    }
    pthread_mutex_unlock(&s->lock);
    qp_free(msg);
  }
}

static void two_receivers_get_whole_different_messages(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  shared_recv_t *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  s->portal = pair.server;
  s->rc = QP_OK;
  pthread_mutex_init(&s->lock, NULL);
  pthread_t th[RECEIVERS];
  for (int i = 0; i < RECEIVERS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, receiver_main, s), 0);
  for (uint32_t i = 0; i < RECV_TOTAL; i++) {
    size_t len = TU_MSG_HEADER + (i * 131u) % 20000;
    void *m = tu_msg_make(20, i, len);
    int rc = qp_portal_send(pair.client, m, len, 10000);
    free(m);
    if (rc != QP_OK)
      fail_msg("send %u returned %s: \"%s\"", i, qp_err_name(rc),
               qp_last_error());
  }
  for (int i = 0; i < RECEIVERS; i++)
    pthread_join(th[i], NULL);
  TU_RC_EQ(s->rc, QP_OK, s->error);
  assert_int_equal(s->duplicates, 0);
  assert_int_equal(s->received, RECV_TOTAL);
  pthread_mutex_destroy(&s->lock);
  free(s);
  tu_pair_destroy(&pair);
}

/* ---- observers while busy ---- */

typedef struct observer {
  qp_portal_t *portal;
  atomic_int stop;
  int polls;
  int not_connected;
  int stats_failures;
  uint16_t port_seen;
} observer_t;

static void *observer_main(void *arg) {
  observer_t *o = arg;
  while (!atomic_load(&o->stop)) {
    qp_portal_stats st;
    if (qp_portal_get_stats(o->portal, &st) != QP_OK)
      o->stats_failures++;
    if (!qp_portal_is_connected(o->portal))
      o->not_connected++;
    o->port_seen = qp_portal_local_port(o->portal);
    char fp[QP_FINGERPRINT_SIZE];
    qp_portal_fingerprint(o->portal, fp, sizeof(fp));
    o->polls++;
  }
  return NULL;
}

/* get_stats, is_connected, local_port and fingerprint are thread-safe: a
 * thread calls them in a loop during a 32 MiB transfer. */
static void stats_and_state_readable_from_another_thread_during_transfer(
    void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  observer_t obs[2] = {{.portal = pair.client}, {.portal = pair.server}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, observer_main, &obs[i]), 0);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, 10000);
  for (uint32_t i = 0; i < 16; i++)
    tu_echo_roundtrip(pair.client, 1024 * 1024, i, 10000);
  qp_portal_stats st;
  TU_QP_OK(qp_portal_get_stats(pair.client, &st));
  for (int i = 0; i < 2; i++) {
    atomic_store(&obs[i].stop, 1);
    pthread_join(th[i], NULL);
    assert_true(obs[i].polls > 0);
    assert_int_equal(obs[i].stats_failures, 0);
    assert_int_equal(obs[i].not_connected, 0);
  }
  assert_int_equal(obs[1].port_seen, pair.port);
  print_message("client stats: %llu packets sent, %llu received, srtt %llu "
                "us, cwnd %llu\n",
                (unsigned long long)st.packets_sent,
                (unsigned long long)st.packets_received,
                (unsigned long long)st.smoothed_rtt_us,
                (unsigned long long)st.cwnd);
  /* 16 MiB went out; no UDP datagram carries more than 65507 bytes. */
  assert_true(st.packets_sent >= 16u * 1024 * 1024 / 65507);
  assert_true(st.packets_received > 0);
  assert_true(st.cwnd > 0);
  TU_QP_OK(qp_portal_close(pair.client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(send_proceeds_while_another_thread_blocks_in_recv),
      cmocka_unit_test(echo_replies_arrive_promptly),
      cmocka_unit_test(blocked_recv_returns_closed_when_portal_is_closed),
      cmocka_unit_test(four_threads_send_on_one_portal_each_message_whole),
      cmocka_unit_test(two_receivers_get_whole_different_messages),
      cmocka_unit_test(
          stats_and_state_readable_from_another_thread_during_transfer),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
