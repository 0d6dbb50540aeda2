/* ctest: labels=loopback,process,iothread timeout=60 */
/*
 * recv's idle timeout does not hang on the I/O thread. A recv with nothing
 * to take drives the socket itself, and the I/O thread (polling only its
 * timer and wake-ups meanwhile) ends the connection at the idle deadline and
 * wakes it. When that thread is held up past the deadline (here: in the
 * user's log handler, standing in for a thread the scheduler leaves behind
 * on a loaded machine; a CI run saw recv return 1039 ms late), recv must
 * still return QP_ERR_IDLE_TIMEOUT at the idle timeout, not when the I/O
 * thread comes back.
 *
 * The peer is a child process killed with -9 (no CONNECTION_CLOSE).
 * Child usage: test_portal_idle_driver connect PORT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

#define IDLE_S 2
#define MARGIN_MS 500
/* The I/O thread is held from its first log line after the kill until this
 * long after the idle deadline: far beyond the margin. */
#define HOLD_PAST_IDLE_MS 2500

static qp_transport_options options(void) {
  qp_transport_options o = tu_default_options();
  o.max_idle_timeout_secs = IDLE_S;
  o.keep_alive_interval_secs = 1;
  return o;
}

static int child_main(char **argv) {
  qp_portal_t *p = NULL;
  qp_transport_options o = options();
  if (qp_portal_create(&p) != QP_OK ||
      qp_portal_connect(p, "127.0.0.1", (uint16_t)atoi(argv[2]), 0, &o, 10000) != QP_OK)
    return 2;
  tu_echo_t e; /* echoes until killed */
  tu_echo_start(&e, p, 60000);
  return tu_echo_join(&e) == QP_OK ? 0 : 3;
}

static pthread_t receiver;
static atomic_llong hold_until_ms; /* 0: do not hold */
static atomic_bool held;

/* Holds the first other thread (the I/O thread) that logs while armed. */
static void holding_handler(qp_log_level level, const char *message, void *user) {
  (void)level;
  (void)message;
  (void)user;
  long long until = atomic_load(&hold_until_ms);
  if (until == 0 || pthread_equal(pthread_self(), receiver) ||
      atomic_exchange(&held, true))
    return;
  for (int64_t now = tu_now_ms(); now < until; now = tu_now_ms()) {
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(until - now) * 1000000L};
    if (until - now >= 1000)
      ts = (struct timespec){.tv_sec = 1, .tv_nsec = 0};
    nanosleep(&ts, NULL);
  }
}

static void idle_timeout_does_not_wait_for_a_held_io_thread(void **state) {
  (void)state;
  receiver = pthread_self();
  qp_portal_t *server = NULL;
  TU_QP_OK(qp_portal_create(&server));
  qp_transport_options o = options();
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, &o, 10000);
  assert_true(port != 0);
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%u", port);
  char *args[] = {"test_portal_idle_driver", "connect", port_text, NULL};
  pid_t pid = tu_spawn_self(args, NULL, NULL, NULL);
  assert_true(pid > 0);
  TU_QP_OK(tu_listen_join(&l));
  tu_echo_roundtrip(server, 100, 5, 5000);

  /* ngtcp2's debug lines: the I/O thread logs when it sends the quiet
   * probe one second after the peer's last packet. */
  qp_log_set_handler(holding_handler, NULL);
  qp_log_set_level(QP_LOG_LEVEL_DEBUG);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int64_t killed = tu_now_ms();
  atomic_store(&hold_until_ms, (long long)(killed + IDLE_S * 1000 + HOLD_PAST_IDLE_MS));
  void *m;
  size_t n;
  int rc = qp_portal_recv(server, &m, &n, 30000);
  int64_t took = tu_now_ms() - killed;
  char msg[512];
  snprintf(msg, sizeof(msg), "%s", qp_last_error());
  print_message("recv returned %s after %lld ms (I/O thread held: %s): %s\n",
                qp_err_name(rc), (long long)took, atomic_load(&held) ? "yes" : "no",
                msg);
  qp_portal_destroy(server); /* waits for the held I/O thread */
  qp_log_set_level(QP_LOG_LEVEL_WARN);
  qp_log_set_handler(NULL, NULL);
  tu_wait_child(pid, 5000);
  TU_RC_EQ(rc, QP_ERR_IDLE_TIMEOUT, msg);
  assert_true(atomic_load(&held)); /* else the test tested nothing */
  if (took > IDLE_S * 1000 + MARGIN_MS)
    fail_msg("recv took %lld ms, more than the idle timeout %d s + %d ms: it "
             "waited for the I/O thread",
             (long long)took, IDLE_S, MARGIN_MS);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "connect") == 0)
    return child_main(argv);
  signal(SIGPIPE, SIG_IGN);
  setenv("QUIC_PORTAL_NGTCP2_LOG", "1", 1); /* before any transport exists */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(idle_timeout_does_not_wait_for_a_held_io_thread),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
