/* ctest: labels=loopback,process,iothread */
/*
 * A portal pair across two processes: the test binary re-executes itself as
 * the peer (server or client) which echoes every message; the parent checks
 * 1 MiB messages byte for byte.
 *
 * Child usage: test_portal_process echo-listen
 *              test_portal_process echo-connect PORT
 * The child prints "PORT n" once it listens (echo-listen) and, when its
 * peer has closed, "DONE <messages> <code that ended the loop>".
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

#define MIB (1024u * 1024u)
enum { MESSAGES = 16, IN_FLIGHT = 4 };

/* ---- child ---- */

static int child_echo(qp_portal_t *p) {
  unsigned long long messages = 0;
  for (;;) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(p, &msg, &len, 30000);
    if (rc == QP_OK) {
      rc = qp_portal_send(p, msg, len, 30000);
      qp_free(msg);
      if (rc == QP_OK) {
        messages++;
        continue;
      }
    }
    printf("DONE %llu %s %s\n", messages, qp_err_name(rc), qp_last_error());
    fflush(stdout);
    qp_portal_destroy(p);
    return rc == QP_ERR_CLOSED ? 0 : 3;
  }
}

static int child_main(int argc, char **argv) {
  qp_portal_t *p = NULL;
  if (qp_portal_create(&p) != QP_OK) {
    printf("ERROR create: %s\n", qp_last_error());
    return 2;
  }
  if (strcmp(argv[1], "echo-listen") == 0) {
    tu_listener_t l;
    uint16_t port = tu_listen_start(&l, p, "127.0.0.1", 0, NULL, 20000);
    if (port != 0) {
      printf("PORT %u\n", port);
      fflush(stdout);
    }
    int rc = tu_listen_join(&l);
    if (rc != QP_OK) {
      printf("ERROR listen: %s: %s\n", qp_err_name(rc), l.error);
      return 2;
    }
    return child_echo(p);
  }
  if (strcmp(argv[1], "echo-connect") == 0 && argc >= 3) {
    int rc = qp_portal_connect(p, "127.0.0.1", (uint16_t)atoi(argv[2]), 0,
                               NULL, 10000);
    if (rc != QP_OK) {
      printf("ERROR connect: %s: %s\n", qp_err_name(rc), qp_last_error());
      return 2;
    }
    return child_echo(p);
  }
  printf("ERROR unknown child mode %s\n", argv[1]);
  return 2;
}

/* ---- parent ---- */

/* Send MESSAGES messages of 1 MiB with up to IN_FLIGHT unanswered, and
 * check every echo byte for byte. */
static void exchange_one_mib_messages(qp_portal_t *p) {
  uint32_t sent = 0, received = 0;
  int64_t start = tu_now_ms();
  uint8_t *buf = tu_xmalloc(MIB);
  while (received < MESSAGES) {
    while (sent < MESSAGES && sent - received < IN_FLIGHT) {
      tu_fill_pattern(buf, MIB, 100 + sent);
      int rc = qp_portal_send(p, buf, MIB, 20000);
      if (rc != QP_OK)
        fail_msg("send of 1 MiB message %u returned %s: \"%s\"", sent,
                 qp_err_name(rc), qp_last_error());
      sent++;
    }
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(p, &msg, &len, 20000);
    if (rc != QP_OK)
      fail_msg("recv of echo %u returned %s: \"%s\"", received,
               qp_err_name(rc), qp_last_error());
    if (len != MIB) {
      qp_free(msg);
      fail_msg("echo %u has %zu bytes, expected %u", received, len, MIB);
    }
    size_t off = tu_pattern_mismatch(msg, len, 100 + received);
    qp_free(msg);
    if (off != len)
      fail_msg("echo %u differs from message %u at offset %zu", received,
               received, off);
    received++;
  }
  free(buf);
  print_message("%d x 1 MiB echoed across processes in %lld ms\n", MESSAGES,
                (long long)(tu_now_ms() - start));
}

static void expect_child_done(pid_t pid, int out_fd) {
  char line[1024];
  if (!tu_read_line(out_fd, line, sizeof(line), 15000)) {
    int status = tu_wait_child(pid, 1000);
    fail_msg("child printed no DONE line within 15 s (exit status %d); got "
             "\"%s\"",
             status, line);
  }
  char want[64];
  snprintf(want, sizeof(want), "DONE %d QP_ERR_CLOSED", MESSAGES);
  if (strncmp(line, want, strlen(want)) != 0)
    fail_msg("child ended with \"%s\", expected \"%s ...\"", line, want);
  int status = tu_wait_child(pid, 10000);
  assert_int_equal(status, 0);
}

static void child_process_server_echoes_one_mib_messages(void **state) {
  (void)state;
  char *args[] = {"test_portal_process", "echo-listen", NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  char line[1024];
  unsigned port = 0;
  if (!tu_read_line(out_fd, line, sizeof(line), 10000) ||
      sscanf(line, "PORT %u", &port) != 1 || port == 0 || port > 65535) {
    int status = tu_wait_child(pid, 1000);
    fail_msg("child server did not report a port within 10 s: \"%s\" (exit "
             "status %d)",
             line, status);
  }

  qp_portal_t *client = NULL;
  TU_QP_OK(qp_portal_create(&client));
  TU_QP_OK(qp_portal_connect(client, "127.0.0.1", (uint16_t)port, 0, NULL,
                             5000));
  exchange_one_mib_messages(client);
  TU_QP_OK(qp_portal_close(client, 5000));
  expect_child_done(pid, out_fd);
  close(out_fd);
  qp_portal_destroy(client);
}

static void child_process_client_echoes_one_mib_messages(void **state) {
  (void)state;
  qp_portal_t *server = NULL;
  TU_QP_OK(qp_portal_create(&server));
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, NULL, 15000);
  if (port == 0) {
    tu_listen_join(&l);
    fail_msg("listen did not bind: %s: %s", qp_err_name(l.rc), l.error);
  }
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%u", port);
  char *args[] = {"test_portal_process", "echo-connect", port_text, NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  int rc = tu_listen_join(&l);
  if (rc != QP_OK) {
    char line[1024];
    tu_read_line(out_fd, line, sizeof(line), 2000);
    tu_wait_child(pid, 5000);
    fail_msg("listen returned %s: \"%s\"; child said \"%s\"", qp_err_name(rc),
             l.error, line);
  }
  exchange_one_mib_messages(server);
  TU_QP_OK(qp_portal_close(server, 5000));
  expect_child_done(pid, out_fd);
  close(out_fd);
  qp_portal_destroy(server);
}

int main(int argc, char **argv) {
  if (argc >= 2)
    return child_main(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(child_process_server_echoes_one_mib_messages),
      cmocka_unit_test(child_process_client_echoes_one_mib_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
