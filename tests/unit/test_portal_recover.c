/* ctest: labels=loopback,process,iothread timeout=120 */
/*
 * Recovery of qp_create_* portals when the peer crashed (the NAT lab tests
 * the paths that recover: tests/lab/test_resilience.sh). The peer is a child
 * process meeting us through a dir: store with host candidates on this
 * machine; kill -9 leaves no CONNECTION_CLOSE. With recovery on (the
 * default) the dead path starts a traversal that waits for the peer's new
 * record only until the idle timeout of its last packet: recv returns
 * QP_ERR_IDLE_TIMEOUT within the idle timeout + 1 s and says the peer
 * published nothing. With reconnect_timeout_ms = 0 the plain idle timeout
 * ends it, as before.
 *
 * Child usage: test_portal_recover client STORE_DIR SESSION
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

#define IDLE_S 6 /* keep-alive 1 s: a dead path (stall 2 s) shows well before */
#define MARGIN_MS 1000

static void options(qp_traverse_options *o, qp_transport_options *t,
                    const char *url, const char *session) {
  qp_transport_options_init(t);
  t->max_idle_timeout_secs = IDLE_S;
  t->keep_alive_interval_secs = 1;
  qp_traverse_options_init(o);
  o->rendezvous = url;
  o->session = session;
  o->transport = t;
  o->punch_timeout_ms = 10000;
  o->wait_timeout_ms = 20000;
  o->local_ip = "127.0.0.1"; /* traffic stays on loopback */
}

static int child_main(char **argv) {
  qp_traverse_options o;
  qp_transport_options t;
  options(&o, &t, argv[2], argv[3]);
  qp_portal_t *p = NULL;
  if (qp_create_client(&o, &p) != QP_OK)
    return 2;
  for (;;) { /* echo until killed */
    void *m;
    size_t n;
    if (qp_portal_recv(p, &m, &n, 60000) != QP_OK)
      return 3;
    qp_portal_send(p, m, n, 10000);
    qp_free(m);
  }
}

/* Server here, client in a child; one echo; kill -9; wait in recv. Returns
 * how long recv took after the kill; *rc and msg what it returned. */
static int64_t kill_peer_during_recv(int reconnect_ms, int *rc, char *msg, size_t size,
                                     qp_portal_stats *st) {
  char dir[] = "/tmp/qp-recover-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char url[64], session[32];
  snprintf(url, sizeof(url), "dir:%s", dir);
  snprintf(session, sizeof(session), "s%d", (int)getpid());
  char *args[] = {"test_portal_recover", "client", url, session, NULL};
  pid_t pid = tu_spawn_self(args, NULL, NULL, NULL);
  assert_true(pid > 0);
  qp_traverse_options o;
  qp_transport_options t;
  options(&o, &t, url, session);
  o.reconnect_timeout_ms = reconnect_ms;
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_create_server(&o, &p));
  tu_echo_roundtrip(p, 1000, 3, 5000);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int64_t killed = tu_now_ms();
  void *m;
  size_t n;
  *rc = qp_portal_recv(p, &m, &n, 60000);
  int64_t took = tu_now_ms() - killed;
  snprintf(msg, size, "%s", qp_last_error());
  print_message("recv returned %s after %lld ms: %s\n", qp_err_name(*rc),
                (long long)took, msg);
  TU_QP_OK(qp_portal_get_stats(p, st));
  qp_portal_destroy(p);
  tu_wait_child(pid, 5000);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  assert_int_equal(system(cmd), 0);
  return took;
}

static void crashed_peer_ends_recovery_at_the_idle_timeout(void **state) {
  (void)state;
  int rc;
  char msg[1024];
  qp_portal_stats st;
  int64_t took = kill_peer_during_recv(-1, &rc, msg, sizeof(msg), &st);
  TU_RC_EQ(rc, QP_ERR_IDLE_TIMEOUT, msg);
  assert_true(tu_contains(msg, "published no new record"));
  assert_true(tu_contains(msg, "the peer is gone"));
  if (took > IDLE_S * 1000 + MARGIN_MS)
    fail_msg("recv took %lld ms, more than the idle timeout %d s + %d ms",
             (long long)took, IDLE_S, MARGIN_MS);
  assert_int_equal(st.recoveries, 0);
}

static void without_recovery_the_idle_timeout_ends_it(void **state) {
  (void)state;
  int rc;
  char msg[1024];
  qp_portal_stats st;
  int64_t took = kill_peer_during_recv(0, &rc, msg, sizeof(msg), &st);
  TU_RC_EQ(rc, QP_ERR_IDLE_TIMEOUT, msg);
  assert_true(tu_contains(msg, "idle timeout"));
  assert_false(tu_contains(msg, "Recovery tried"));
  if (took > IDLE_S * 1000 + MARGIN_MS)
    fail_msg("recv took %lld ms, more than the idle timeout %d s + %d ms",
             (long long)took, IDLE_S, MARGIN_MS);
  assert_int_equal(st.recoveries, 0);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "client") == 0)
    return child_main(argv);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(crashed_peer_ends_recovery_at_the_idle_timeout),
      cmocka_unit_test(without_recovery_the_idle_timeout_ends_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
