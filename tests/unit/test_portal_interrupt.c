/* ctest: labels=loopback,iothread */
/*
 * qp_portal_interrupt: every call blocked on the portal right now (listen,
 * connect, send, recv) returns QP_ERR_INTERRUPTED promptly; send queues
 * nothing, recv loses nothing (not even a half-arrived message); calls made
 * afterwards are not affected.
 *
 * "Blocked right now" is a race with the thread entering the call, so the
 * tests interrupt every 10 ms until the blocked call returns (bounded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

#define MIB (1024u * 1024u)

typedef enum call_kind { CALL_RECV, CALL_SEND, CALL_LISTEN, CALL_CONNECT } call_kind_t;

typedef struct blocked_call {
  call_kind_t kind;
  qp_portal_t *portal;
  int timeout_ms;
  const void *buf; /* send */
  size_t len;
  uint16_t port; /* connect */
  atomic_int returned;
  int rc;
  void *msg; /* recv */
  size_t msg_len;
  int64_t elapsed_ms;
  char error[512];
} blocked_call_t;

static void *blocked_main(void *arg) {
  blocked_call_t *b = arg;
  int64_t start = tu_now_ms();
  switch (b->kind) {
  case CALL_RECV:
    b->rc = qp_portal_recv(b->portal, &b->msg, &b->msg_len, b->timeout_ms);
    break;
  case CALL_SEND:
    b->rc = qp_portal_send(b->portal, b->buf, b->len, b->timeout_ms);
    break;
  case CALL_LISTEN:
    b->rc = qp_portal_listen(b->portal, "127.0.0.1", 0, NULL, b->timeout_ms);
    break;
  case CALL_CONNECT:
    b->rc = qp_portal_connect(b->portal, "127.0.0.1", b->port, 0, NULL,
                              b->timeout_ms);
    break;
  }
  b->elapsed_ms = tu_now_ms() - start;
  snprintf(b->error, sizeof(b->error), "%s", qp_last_error());
  atomic_store(&b->returned, 1);
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Run the call on a thread and interrupt it until it returns (up to 3 s);
 * the call's own timeout is 10 s. */
static void run_and_interrupt(blocked_call_t *b, int first_delay_ms,
                              bool quiet) {
  atomic_store(&b->returned, 0);
  b->rc = QP_ERR_INTERNAL;
  b->timeout_ms = 10000;
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, blocked_main, b), 0);
  if (first_delay_ms > 0)
    sleep_ms(first_delay_ms);
  int64_t deadline = tu_now_ms() + 3000;
  while (!atomic_load(&b->returned) && tu_now_ms() < deadline) {
    TU_QP_OK(qp_portal_interrupt(b->portal));
    sleep_ms(10);
  }
  pthread_join(th, NULL);
  if (!quiet)
    print_message("interrupted call returned %s after %lld ms: \"%s\"\n",
                  qp_err_name(b->rc), (long long)b->elapsed_ms, b->error);
  if (b->elapsed_ms > 4000)
    fail_msg("the call returned after %lld ms although it was interrupted "
             "every 10 ms for 3 s",
             (long long)b->elapsed_ms);
}

static void interrupt_on_idle_portals_is_ok(void **state) {
  (void)state;
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  TU_QP_OK(qp_portal_interrupt(p)); /* never connected, nothing blocked */
  qp_portal_destroy(p);
}

static void blocked_recv_is_interrupted_and_later_calls_are_not(
    void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  blocked_call_t b = {.kind = CALL_RECV, .portal = pair.server};
  run_and_interrupt(&b, 50, false);
  TU_RC_EQ(b.rc, QP_ERR_INTERRUPTED, b.error);
  assert_null(b.msg);
  /* Interrupting nothing does not poison the next call. */
  TU_QP_OK(qp_portal_interrupt(pair.server));
  void *msg = NULL;
  size_t len = 0;
  int64_t start = tu_now_ms();
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &len, 200), QP_ERR_TIMEOUT);
  assert_true(tu_now_ms() - start >= 190);
  /* and the connection still carries messages */
  assert_true(qp_portal_is_connected(pair.server));
  void *m = tu_msg_make(1, 1, 1000);
  tu_send_ok(pair.client, m, 1000, 5000);
  tu_recv_expect(pair.server, m, 1000, 5000);
  free(m);
  tu_pair_destroy(&pair);
}

typedef struct big_sender {
  qp_portal_t *portal;
  int rc;
  char error[512];
} big_sender_t;

static void *big_sender_main(void *arg) {
  big_sender_t *s = arg;
  uint8_t *buf = tu_pattern(64 * (size_t)MIB, 77);
  s->rc = qp_portal_send(s->portal, buf, 64 * (size_t)MIB, 60000);
  snprintf(s->error, sizeof(s->error), "%s", qp_last_error());
  free(buf);
  return NULL;
}

/* recv interrupted while a 64 MiB message is half-arrived loses nothing:
 * the next recv returns it whole. */
static void recv_interrupted_mid_message_loses_nothing(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  qp_portal_stats st;
  TU_QP_OK(qp_portal_get_stats(pair.server, &st));
  uint64_t baseline = st.packets_received;
  int in_flight = 0;
  big_sender_t s = {.portal = pair.client};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, big_sender_main, &s), 0);
  int interrupted = 0;
  void *msg = NULL;
  size_t len = 0;
  int64_t deadline = tu_now_ms() + 60000;
  for (;;) {
    blocked_call_t b = {.kind = CALL_RECV, .portal = pair.server};
    run_and_interrupt(&b, 1, true);
    if (b.rc == QP_OK) {
      msg = b.msg;
      len = b.msg_len;
      break;
    }
    TU_RC_EQ(b.rc, QP_ERR_INTERRUPTED, b.error);
    assert_null(b.msg);
    interrupted++;
    /* 100 packets of the message are in: it was partly received. */
    TU_QP_OK(qp_portal_get_stats(pair.server, &st));
    if (st.packets_received >= baseline + 100)
      in_flight++;
    if (tu_now_ms() > deadline)
      fail_msg("the 64 MiB message did not arrive within 60 s");
  }
  pthread_join(th, NULL);
  TU_RC_EQ(s.rc, QP_OK, s.error);
  print_message("recv interrupted %d times before the 64 MiB message was "
                "returned, %d of them with the message partly received\n",
                interrupted, in_flight);
  assert_int_equal(len, 64 * (size_t)MIB);
  size_t off = tu_pattern_mismatch(msg, len, 77);
  qp_free(msg);
  if (off != len)
    fail_msg("the message returned after %d interrupts differs at offset "
             "%zu",
             interrupted, off);
  if (in_flight == 0)
    fail_msg("no interrupt landed while the message was partly received: "
             "the case under test never happened");
  tu_pair_destroy(&pair);
}

/* A send blocked on a full window is interrupted and queues nothing. */
static void blocked_send_is_interrupted_and_queues_nothing(void **state) {
  (void)state;
  qp_transport_options so = tu_default_options(), co = tu_default_options();
  so.stream_receive_window = 256 * 1024;
  so.conn_receive_window = 512 * 1024;
  co.send_window = 1024 * 1024;
  tu_pair_t pair;
  tu_pair_connect(&pair, &so, &co);
  const size_t len = 64 * 1024;
  uint32_t accepted = 0;
  for (;; accepted++) {
    if (accepted > 1600)
      fail_msg("no backpressure: 100 MiB accepted while the peer reads "
               "nothing");
    void *m = tu_msg_make(6, accepted, len);
    int rc = qp_portal_send(pair.client, m, len, 300);
    free(m);
    if (rc == QP_ERR_TIMEOUT)
      break;
    TU_RC_EQ(rc, QP_OK, qp_last_error());
  }
  void *m = tu_msg_make(6, accepted, len);
  blocked_call_t b = {.kind = CALL_SEND, .portal = pair.client, .buf = m,
                      .len = len};
  run_and_interrupt(&b, 50, false);
  TU_RC_EQ(b.rc, QP_ERR_INTERRUPTED, b.error);
  assert_true(qp_portal_is_connected(pair.client));
  /* The peer gets exactly the accepted messages, then nothing. */
  for (uint32_t i = 0; i < accepted; i++) {
    void *msg = NULL;
    size_t got = 0;
    TU_QP_OK(qp_portal_recv(pair.server, &msg, &got, 10000));
    uint32_t stream = 0, index = 0;
    char why[256];
    bool ok = tu_msg_check(msg, got, &stream, &index, why, sizeof(why));
    qp_free(msg);
    if (!ok || index != i)
      fail_msg("message %u: %s (index %u)", i, ok ? "out of order" : why,
               index);
  }
  void *msg = NULL;
  size_t got = 0;
  TU_QP_ERR(qp_portal_recv(pair.server, &msg, &got, 300), QP_ERR_TIMEOUT);
  /* Sent again, it is the next message. */
  tu_send_ok(pair.client, m, len, 10000);
  tu_recv_expect(pair.server, m, len, 10000);
  free(m);
  tu_pair_destroy(&pair);
}

static void blocked_listen_is_interrupted(void **state) {
  (void)state;
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  blocked_call_t b = {.kind = CALL_LISTEN, .portal = p};
  run_and_interrupt(&b, 50, false);
  TU_RC_EQ(b.rc, QP_ERR_INTERRUPTED, b.error);
  assert_false(qp_portal_is_connected(p));
  qp_portal_destroy(p);
}

static void blocked_connect_is_interrupted(void **state) {
  (void)state;
  /* A bound socket that never answers: connect would wait 10 s. */
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sa);
  assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  blocked_call_t b = {.kind = CALL_CONNECT, .portal = p,
                      .port = ntohs(sa.sin_port)};
  run_and_interrupt(&b, 50, false);
  TU_RC_EQ(b.rc, QP_ERR_INTERRUPTED, b.error);
  assert_false(qp_portal_is_connected(p));
  qp_portal_destroy(p);
  close(fd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(interrupt_on_idle_portals_is_ok),
      cmocka_unit_test(blocked_recv_is_interrupted_and_later_calls_are_not),
      cmocka_unit_test(recv_interrupted_mid_message_loses_nothing),
      cmocka_unit_test(blocked_send_is_interrupted_and_queues_nothing),
      cmocka_unit_test(blocked_listen_is_interrupted),
      cmocka_unit_test(blocked_connect_is_interrupted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
