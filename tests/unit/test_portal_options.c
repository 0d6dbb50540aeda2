/* ctest: labels=loopback,process,iothread */
/*
 * Transport options: the defaults of quic-portal 0.1.x, controller names,
 * every controller moving data, options copied by the call that takes them,
 * keep-alive keeping a quiet connection up, and the idle timeout ending a
 * connection whose peer process was killed.
 *
 * Child usage: test_portal_options hold-listen IDLE_SECS KEEPALIVE_SECS
 *              test_portal_options hold-connect PORT IDLE_SECS KEEPALIVE_SECS
 * The child prints "PORT n" (hold-listen), then "READY" once connected, and
 * echoes messages until it is killed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

#define MIB (1024u * 1024u)

/* ---- defaults and names ---- */

static void defaults_match_quic_portal_0_1(void **state) {
  (void)state;
  qp_transport_options o;
  memset(&o, 0xA5, sizeof(o)); /* every field must be written */
  qp_transport_options_init(&o);
  assert_true(o.max_idle_timeout_secs == 10.0);
  assert_true(o.keep_alive_interval_secs == 2.0);
  assert_int_equal(o.congestion_controller, QP_CC_BBR);
  assert_int_equal(o.initial_window, 1048576);
  /* 0.1.x (quinn): receive_window 10_000_000, stream_receive_window
   * 5_000_000, send_window 10_000_000 */
  assert_int_equal(o.conn_receive_window, 10000000);
  assert_int_equal(o.stream_receive_window, 5000000);
  assert_int_equal(o.send_window, 10000000);
  assert_int_equal(o.initial_rtt_ms, 20);
  assert_int_equal(o.max_concurrent_streams, 100);
  assert_int_equal(o.max_udp_payload, 1200);
  assert_true(o.mtu_discovery);
}

static void controller_names_parse_case_insensitively_and_roundtrip(
    void **state) {
  (void)state;
  static const struct {
    const char *name;
    qp_cc cc;
  } names[] = {{"cubic", QP_CC_CUBIC}, {"bbr", QP_CC_BBR},
               {"bbr2", QP_CC_BBR2},   {"reno", QP_CC_RENO},
               {"fixed", QP_CC_FIXED}, {"CUBIC", QP_CC_CUBIC},
               {"Bbr", QP_CC_BBR},     {"BBR2", QP_CC_BBR2},
               {"ReNo", QP_CC_RENO},   {"FIXED", QP_CC_FIXED}};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    qp_cc cc = (qp_cc)-1;
    int rc = qp_cc_from_string(names[i].name, &cc);
    if (rc != QP_OK)
      fail_msg("qp_cc_from_string(\"%s\") returned %s: \"%s\"", names[i].name,
               qp_err_name(rc), qp_last_error());
    if (cc != names[i].cc)
      fail_msg("qp_cc_from_string(\"%s\") gave %d, expected %d", names[i].name,
               (int)cc, (int)names[i].cc);
  }
  const qp_cc all[] = {QP_CC_CUBIC, QP_CC_BBR, QP_CC_BBR2, QP_CC_RENO,
                       QP_CC_FIXED};
  const char *want[] = {"cubic", "bbr", "bbr2", "reno", "fixed"};
  for (size_t i = 0; i < 5; i++) {
    assert_string_equal(qp_cc_to_string(all[i]), want[i]);
    qp_cc back = (qp_cc)-1;
    TU_QP_OK(qp_cc_from_string(qp_cc_to_string(all[i]), &back));
    assert_int_equal(back, all[i]);
  }
  assert_string_equal(qp_cc_to_string((qp_cc)99), "unknown");
  assert_string_equal(qp_cc_to_string((qp_cc)-1), "unknown");
}

/* ---- every controller moves data ---- */

static void every_controller_connects_and_moves_8_mib(void **state) {
  (void)state;
  const qp_cc all[] = {QP_CC_CUBIC, QP_CC_BBR, QP_CC_BBR2, QP_CC_RENO,
                       QP_CC_FIXED};
  for (size_t c = 0; c < 5; c++) {
    qp_transport_options o = tu_default_options();
    o.congestion_controller = all[c];
    tu_pair_t pair;
    tu_pair_connect(&pair, &o, &o);
    int64_t start = tu_now_ms();
    uint8_t *buf = tu_xmalloc(MIB);
    for (uint32_t i = 0; i < 8; i++) {
      tu_fill_pattern(buf, MIB, 40 + i);
      tu_send_ok(pair.client, buf, MIB, 20000);
    }
    for (uint32_t i = 0; i < 8; i++) {
      tu_fill_pattern(buf, MIB, 40 + i);
      tu_recv_expect(pair.server, buf, MIB, 20000);
    }
    /* and one back */
    tu_send_ok(pair.server, buf, MIB, 20000);
    tu_recv_expect(pair.client, buf, MIB, 20000);
    free(buf);
    qp_portal_stats st;
    TU_QP_OK(qp_portal_get_stats(pair.client, &st));
    print_message("%s: 8 MiB + 1 MiB in %lld ms, cwnd %llu, lost %llu\n",
                  qp_cc_to_string(all[c]), (long long)(tu_now_ms() - start),
                  (unsigned long long)st.cwnd,
                  (unsigned long long)st.packets_lost);
    assert_true(st.cwnd > 0);
    tu_pair_destroy(&pair);
  }
}

/* The library copies the struct: the caller may scribble over and free it
 * right after the call (ASan catches a later read). */
static void options_are_copied_by_listen_and_connect(void **state) {
  (void)state;
  qp_portal_t *server = NULL, *client = NULL;
  TU_QP_OK(qp_portal_create(&server));
  TU_QP_OK(qp_portal_create(&client));
  qp_transport_options *so = tu_xmalloc(sizeof(*so));
  qp_transport_options *co = tu_xmalloc(sizeof(*co));
  qp_transport_options_init(so);
  qp_transport_options_init(co);
  so->congestion_controller = QP_CC_BBR;
  co->congestion_controller = QP_CC_RENO;
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, so, 10000);
  /* tu_listen_start passed its own copy; scribble over ours anyway */
  memset(so, 0xFF, sizeof(*so));
  free(so);
  assert_true(port != 0);
  int rc = qp_portal_connect(client, "127.0.0.1", port, 0, co, 5000);
  const char *err = qp_last_error();
  memset(co, 0xFF, sizeof(*co));
  free(co);
  tu_listen_join(&l);
  memset(&l.opts, 0xFF, sizeof(l.opts)); /* what listen was given */
  TU_RC_EQ(rc, QP_OK, err);
  TU_RC_EQ(l.rc, QP_OK, l.error);
  tu_echo_t echo;
  tu_echo_start(&echo, server, 10000);
  for (uint32_t i = 0; i < 4; i++)
    tu_echo_roundtrip(client, MIB, 60 + i, 10000);
  TU_QP_OK(qp_portal_close(client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  qp_portal_destroy(client);
  qp_portal_destroy(server);
}

static void out_of_range_controller_is_invalid(void **state) {
  (void)state;
  qp_transport_options o = tu_default_options();
  o.congestion_controller = (qp_cc)99;
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  TU_QP_ERR(qp_portal_listen(p, "127.0.0.1", 0, &o, 300), QP_ERR_INVALID);
  TU_QP_ERR(qp_portal_connect(p, "127.0.0.1", 9, 0, &o, 300), QP_ERR_INVALID);
  qp_portal_destroy(p);
}

/* ---- keep-alive and idle timeout ---- */

static qp_transport_options idle_options(double idle, double keep_alive) {
  qp_transport_options o = tu_default_options();
  o.max_idle_timeout_secs = idle;
  o.keep_alive_interval_secs = keep_alive;
  return o;
}

/* With idle 1 s and keep-alive 0.25 s, 3 s of silence from both
 * applications leave the connection up. */
static void keep_alive_keeps_a_quiet_connection_up(void **state) {
  (void)state;
  qp_transport_options o = idle_options(1.0, 0.25);
  tu_pair_t pair;
  tu_pair_connect(&pair, &o, &o);
  void *msg = NULL;
  size_t len = 0;
  /* The 3 s wait is the behavior under test; recv is the clock. */
  int64_t start = tu_now_ms();
  TU_QP_ERR(qp_portal_recv(pair.client, &msg, &len, 3000), QP_ERR_TIMEOUT);
  assert_true(tu_now_ms() - start >= 2900);
  assert_true(qp_portal_is_connected(pair.client));
  assert_true(qp_portal_is_connected(pair.server));
  void *m = tu_msg_make(1, 1, 500);
  tu_send_ok(pair.client, m, 500, 3000);
  tu_recv_expect(pair.server, m, 500, 3000);
  tu_send_ok(pair.server, m, 500, 3000);
  tu_recv_expect(pair.client, m, 500, 3000);
  free(m);
  tu_pair_destroy(&pair);
}

/* With idle 1 s and no keep-alive, a silent connection ends by itself. */
static void idle_timeout_ends_a_silent_connection(void **state) {
  (void)state;
  qp_transport_options o = idle_options(1.0, 0);
  tu_pair_t pair;
  tu_pair_connect(&pair, &o, &o);
  void *msg = NULL;
  size_t len = 0;
  int64_t start = tu_now_ms();
  int rc = qp_portal_recv(pair.client, &msg, &len, 5000);
  int64_t elapsed = tu_now_ms() - start;
  print_message("silent connection: recv returned %s after %lld ms: \"%s\"\n",
                qp_err_name(rc), (long long)elapsed, qp_last_error());
  TU_RC_EQ(rc, QP_ERR_IDLE_TIMEOUT, qp_last_error());
  assert_in_range(elapsed, 500, 3000);
  assert_false(qp_portal_is_connected(pair.client));
  if (tu_wait_connected(pair.server, false, 2000) < 0)
    fail_msg("the server is still connected 2 s after the client timed out");
  tu_pair_destroy(&pair);
}

static int child_main(int argc, char **argv) {
  qp_portal_t *p = NULL;
  if (qp_portal_create(&p) != QP_OK)
    return 2;
  int rc;
  if (strcmp(argv[1], "hold-listen") == 0 && argc >= 4) {
    qp_transport_options o = idle_options(atof(argv[2]), atof(argv[3]));
    tu_listener_t l;
    uint16_t port = tu_listen_start(&l, p, "127.0.0.1", 0, &o, 20000);
    if (port != 0) {
      printf("PORT %u\n", port);
      fflush(stdout);
    }
    rc = tu_listen_join(&l);
  } else if (strcmp(argv[1], "hold-connect") == 0 && argc >= 5) {
    qp_transport_options o = idle_options(atof(argv[3]), atof(argv[4]));
    rc = qp_portal_connect(p, "127.0.0.1", (uint16_t)atoi(argv[2]), 0, &o,
                           10000);
  } else {
    printf("ERROR unknown child mode %s\n", argv[1]);
    return 2;
  }
  if (rc != QP_OK) {
    printf("ERROR %s: %s\n", qp_err_name(rc), qp_last_error());
    return 2;
  }
  printf("READY\n");
  fflush(stdout);
  for (;;) { /* echo until killed */
    void *msg = NULL;
    size_t len = 0;
    rc = qp_portal_recv(p, &msg, &len, -1);
    if (rc != QP_OK)
      return 3;
    qp_portal_send(p, msg, len, 10000);
    qp_free(msg);
  }
}

/* The peer process dies (SIGKILL: no CONNECTION_CLOSE); the survivor's
 * recv ends within ~3 s with IDLE_TIMEOUT (or CLOSED) and it reports not
 * connected. */
static void survivor_sees_killed_peer(qp_portal_t *survivor, pid_t child) {
  /* One echo proves the connection works; with a 1 s idle timeout and no
   * keep-alive it must be quick, or the connection dies before the kill. */
  int64_t echo_start = tu_now_ms();
  tu_echo_roundtrip(survivor, 1000, 5, 5000);
  int64_t echo_ms = tu_now_ms() - echo_start;
  print_message("echo before the kill took %lld ms\n", (long long)echo_ms);
  if (echo_ms > 500)
    fail_msg("one 1000-byte echo on loopback took %lld ms (limit 500 ms): "
             "with a 1 s idle timeout the test cannot tell a dead peer from "
             "a slow library",
             (long long)echo_ms);
  if (!qp_portal_is_connected(survivor))
    fail_msg("the connection ended before the peer was killed (the echo took "
             "%lld ms)",
             (long long)echo_ms);
  assert_int_equal(kill(child, SIGKILL), 0);
  assert_int_equal(tu_wait_child(child, 5000), 128 + SIGKILL);
  void *msg = NULL;
  size_t len = 0;
  int64_t start = tu_now_ms();
  int rc = qp_portal_recv(survivor, &msg, &len, 10000);
  int64_t elapsed = tu_now_ms() - start;
  const char *err = qp_last_error();
  print_message("after the peer was killed, recv returned %s after %lld ms: "
                "\"%s\"\n",
                qp_err_name(rc), (long long)elapsed, err);
  if (rc != QP_ERR_IDLE_TIMEOUT && rc != QP_ERR_CLOSED)
    fail_msg("recv returned %s, expected QP_ERR_IDLE_TIMEOUT or "
             "QP_ERR_CLOSED: \"%s\"",
             qp_err_name(rc), err);
  if (elapsed > 3000)
    fail_msg("recv noticed the dead peer only after %lld ms (idle timeout "
             "1 s)",
             (long long)elapsed);
  if (tu_wait_connected(survivor, false, 500) < 0)
    fail_msg("is_connected still true after recv returned %s",
             qp_err_name(rc));
}

static void peer_killed_client_survivor_times_out(void **state) {
  (void)state;
  char *args[] = {"test_portal_options", "hold-listen", "1", "0", NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  char line[512];
  unsigned port = 0;
  if (!tu_read_line(out_fd, line, sizeof(line), 10000) ||
      sscanf(line, "PORT %u", &port) != 1) {
    tu_wait_child(pid, 1000);
    fail_msg("child did not report its port: \"%s\"", line);
  }
  qp_transport_options o = idle_options(1.0, 0);
  qp_portal_t *client = NULL;
  TU_QP_OK(qp_portal_create(&client));
  TU_QP_OK(qp_portal_connect(client, "127.0.0.1", (uint16_t)port, 0, &o,
                             5000));
  if (!tu_read_line(out_fd, line, sizeof(line), 5000) ||
      strcmp(line, "READY") != 0) {
    tu_wait_child(pid, 1000);
    fail_msg("child server did not get ready: \"%s\"", line);
  }
  survivor_sees_killed_peer(client, pid);
  close(out_fd);
  qp_portal_destroy(client);
}

static void peer_killed_server_survivor_times_out(void **state) {
  (void)state;
  qp_transport_options o = idle_options(1.0, 0);
  qp_portal_t *server = NULL;
  TU_QP_OK(qp_portal_create(&server));
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, &o, 10000);
  assert_true(port != 0);
  char port_text[16];
  snprintf(port_text, sizeof(port_text), "%u", port);
  char *args[] = {"test_portal_options", "hold-connect", port_text, "1", "0",
                  NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  int rc = tu_listen_join(&l);
  char line[512];
  if (rc != QP_OK || !tu_read_line(out_fd, line, sizeof(line), 5000) ||
      strcmp(line, "READY") != 0) {
    tu_wait_child(pid, 1000);
    fail_msg("listen returned %s (\"%s\"); child said \"%s\"",
             qp_err_name(rc), l.error, line);
  }
  survivor_sees_killed_peer(server, pid);
  close(out_fd);
  qp_portal_destroy(server);
}

int main(int argc, char **argv) {
  if (argc >= 2)
    return child_main(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(defaults_match_quic_portal_0_1),
      cmocka_unit_test(controller_names_parse_case_insensitively_and_roundtrip),
      cmocka_unit_test(every_controller_connects_and_moves_8_mib),
      cmocka_unit_test(options_are_copied_by_listen_and_connect),
      cmocka_unit_test(out_of_range_controller_is_invalid),
      cmocka_unit_test(keep_alive_keeps_a_quiet_connection_up),
      cmocka_unit_test(idle_timeout_ends_a_silent_connection),
      cmocka_unit_test(peer_killed_client_survivor_times_out),
      cmocka_unit_test(peer_killed_server_survivor_times_out),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
