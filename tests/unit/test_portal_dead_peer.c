/* ctest: labels=loopback,process,iothread timeout=120 */
/*
 * A peer that crashed (kill -9 of a child process: no CONNECTION_CLOSE ever
 * leaves it) is detected within the idle timeout plus one second: recv, sent
 * in before the kill and waiting with a long timeout, returns
 * QP_ERR_IDLE_TIMEOUT, and send afterwards reports the same. Both roles.
 *
 * Child usage: test_portal_dead_peer listen IDLE_S
 *              test_portal_dead_peer connect PORT IDLE_S
 * The child echoes every message until it is killed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

/* Short, so the test is quick; the margin under test is the same 1 s. */
#define IDLE_S 3
#define MARGIN_MS 1000

static qp_transport_options options(double idle_s) {
  qp_transport_options o = tu_default_options();
  o.max_idle_timeout_secs = idle_s;
  o.keep_alive_interval_secs = idle_s / 3;
  return o;
}

static int child_main(int argc, char **argv) {
  qp_portal_t *p = NULL;
  if (qp_portal_create(&p) != QP_OK)
    return 2;
  int rc;
  if (strcmp(argv[1], "listen") == 0 && argc == 3) {
    qp_transport_options o = options(atof(argv[2]));
    tu_listener_t l;
    uint16_t port = tu_listen_start(&l, p, "127.0.0.1", 0, &o, 20000);
    printf("PORT %u\n", port);
    fflush(stdout);
    rc = tu_listen_join(&l);
  } else if (strcmp(argv[1], "connect") == 0 && argc == 4) {
    qp_transport_options o = options(atof(argv[3]));
    rc = qp_portal_connect(p, "127.0.0.1", (uint16_t)atoi(argv[2]), 0, &o, 10000);
  } else {
    return 2;
  }
  while (rc == QP_OK) {
    void *m;
    size_t n;
    if ((rc = qp_portal_recv(p, &m, &n, 60000)) == QP_OK) {
      rc = qp_portal_send(p, m, n, 10000);
      qp_free(m);
    }
  }
  qp_portal_destroy(p);
  return 3;
}

/* One echo through the child, then kill -9 it while this side's recv waits:
 * recv must come back with QP_ERR_IDLE_TIMEOUT in time. */
static void kill_and_expect_idle_timeout(qp_portal_t *p, pid_t pid) {
  tu_echo_roundtrip(p, 1000, 7, 5000);
  tu_send_ok(p, "x", 1, 1000); /* echoed back, taken by the recv below */
  void *m;
  size_t n;
  TU_QP_OK(qp_portal_recv(p, &m, &n, 5000));
  qp_free(m);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int64_t killed = tu_now_ms();
  int rc = qp_portal_recv(p, &m, &n, 60000);
  int64_t took = tu_now_ms() - killed;
  print_message("recv returned %s after %lld ms: %s\n", qp_err_name(rc),
                (long long)took, qp_last_error());
  TU_RC_EQ(rc, QP_ERR_IDLE_TIMEOUT, qp_last_error());
  assert_true(tu_contains(qp_last_error(), "idle timeout"));
  if (took > IDLE_S * 1000 + MARGIN_MS)
    fail_msg("recv took %lld ms, more than the idle timeout %d s + %d ms",
             (long long)took, IDLE_S, MARGIN_MS);
  TU_RC_EQ(qp_portal_send(p, "y", 1, 1000), QP_ERR_IDLE_TIMEOUT, qp_last_error());
  tu_wait_child(pid, 5000);
}

static void killed_server_is_detected_by_the_client(void **state) {
  (void)state;
  char idle[16];
  snprintf(idle, sizeof(idle), "%d", IDLE_S);
  char *args[] = {"test_portal_dead_peer", "listen", idle, NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  char line[256] = "";
  unsigned port = 0;
  if (!tu_read_line(out_fd, line, sizeof(line), 10000) ||
      sscanf(line, "PORT %u", &port) != 1 || port == 0) {
    tu_wait_child(pid, 1000);
    fail_msg("child did not report its port: \"%s\"", line);
  }
  qp_portal_t *client = NULL;
  TU_QP_OK(qp_portal_create(&client));
  qp_transport_options o = options(IDLE_S);
  TU_QP_OK(qp_portal_connect(client, "127.0.0.1", (uint16_t)port, 0, &o, 5000));
  kill_and_expect_idle_timeout(client, pid);
  close(out_fd);
  qp_portal_destroy(client);
}

static void killed_client_is_detected_by_the_server(void **state) {
  (void)state;
  qp_portal_t *server = NULL;
  TU_QP_OK(qp_portal_create(&server));
  qp_transport_options o = options(IDLE_S);
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, &o, 10000);
  assert_true(port != 0);
  char port_text[16], idle[16];
  snprintf(port_text, sizeof(port_text), "%u", port);
  snprintf(idle, sizeof(idle), "%d", IDLE_S);
  char *args[] = {"test_portal_dead_peer", "connect", port_text, idle, NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  TU_QP_OK(tu_listen_join(&l));
  kill_and_expect_idle_timeout(server, pid);
  close(out_fd);
  qp_portal_destroy(server);
}

int main(int argc, char **argv) {
  if (argc >= 2)
    return child_main(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(killed_server_is_detected_by_the_client),
      cmocka_unit_test(killed_client_is_detected_by_the_server),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
