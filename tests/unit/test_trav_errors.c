/* ctest: labels=loopback */
/*
 * test_trav_errors.c: trav_run's failures and refusals: no peer (bounded
 * timeout naming what was tried), pairs that never answer, a record of
 * another session, a stale record waited past, cancellation within 100 ms,
 * bad arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "test_trav_tu.h"

#define URL "mem:trav-errors"

static void test_no_peer_times_out(void **state) {
  (void)state;
  tt_side_t server;
  tt_side_init(&server, URL, "lonely", true, 500);
  tt_side_start(&server);
  TU_RC_EQ(tt_side_join(&server), QP_ERR_PUNCH, server.err);
  assert_true(server.elapsed_ms >= 480);
  assert_true(server.elapsed_ms < 800);
  TU_ASSERT_CONTAINS(server.err, "within 500 ms");
  TU_ASSERT_CONTAINS(server.err, "never published");
  TU_ASSERT_CONTAINS(server.err, "\"client\"");
  assert_null(server.res.responder);
  assert_int_equal(server.res.early_count, 0);
  tt_side_cleanup(&server);
}

/* A server record whose only candidate never answers: the error lists the
 * pair with its address and the number of checks sent. */
static void test_silent_pair_is_named(void **state) {
  (void)state;
  udp_socket_t silent; /* bound, never read: no ICMP, no answer */
  tt_open(&silent);
  tt_side_t client;
  tt_side_init(&client, URL, "silent", false, 700);
  trav_creds_t fake;
  tt_creds(&fake, "silentsrv");
  tt_put_record(client.rdv, "server", "silent", &fake,
                udp_addr_port(&silent.local), 0);
  tt_side_start(&client);
  TU_RC_EQ(tt_side_join(&client), QP_ERR_PUNCH, client.err);
  assert_true(client.elapsed_ms < 1000);
  char want[64];
  snprintf(want, sizeof(want), "-> 127.0.0.1:%u host (no response",
           udp_addr_port(&silent.local));
  TU_ASSERT_CONTAINS(client.err, "Failed to punch NAT within 700 ms");
  TU_ASSERT_CONTAINS(client.err, "tried 1 pair:");
  TU_ASSERT_CONTAINS(client.err, want);
  TU_ASSERT_CONTAINS(client.res.summary, want);
  print_message("error: %s\n", client.err);
  tt_side_cleanup(&client);
  udp_socket_close(&silent);
}

/* A record of another session stored under our key is refused with a
 * message naming both sessions. */
static void test_foreign_session_record(void **state) {
  (void)state;
  tt_side_t client;
  tt_side_init(&client, URL, "mine", false, 600);
  trav_creds_t other;
  tt_creds(&other, "othersrv");
  rdv_record rec;
  rdv_record_init(&rec, RDV_ROLE_SERVER, "theirs");
  snprintf(rec.ufrag, sizeof(rec.ufrag), "%s", other.ufrag);
  snprintf(rec.pwd, sizeof(rec.pwd), "%s", other.pwd);
  memset(rec.fingerprint, 'b', 64);
  assert_int_equal(rdv_record_add_candidate(&rec, RDV_CAND_HOST, "127.0.0.1",
                                            9, 1),
                   0);
  rec.time_ms = rdv_record_now_unix_ms();
  char text[RDV_RECORD_MAX_SIZE + 1];
  size_t len;
  assert_int_equal(rdv_record_encode(&rec, text, sizeof(text), &len), 0);
  assert_int_equal(rdv_put(client.rdv, "server", text, len), 0);
  tt_side_start(&client);
  TU_RC_EQ(tt_side_join(&client), QP_ERR_RENDEZVOUS, client.err);
  TU_ASSERT_CONTAINS(client.err, "theirs");
  TU_ASSERT_CONTAINS(client.err, "mine");
  assert_true(client.elapsed_ms < 900);
  tt_side_cleanup(&client);
}

/* A malformed record is refused as a protocol error. */
static void test_malformed_record(void **state) {
  (void)state;
  tt_side_t client;
  tt_side_init(&client, URL, "garbled", false, 400);
  assert_int_equal(rdv_put(client.rdv, "server", "{\"v\":1,", 7), 0);
  tt_side_start(&client);
  TU_RC_EQ(tt_side_join(&client), QP_ERR_PROTOCOL, client.err);
  TU_ASSERT_CONTAINS(client.err, "no usable server record");
  tt_side_cleanup(&client);
}

/* A record left over long ago is waited past: the real server that starts
 * later is met. */
static void test_stale_record_waited_past(void **state) {
  (void)state;
  tt_side_t server, client;
  tt_side_init(&client, URL, "stale", false, 4000);
  tt_side_init(&server, URL, "stale", true, 4000);
  trav_creds_t old;
  tt_creds(&old, "oldserver");
  tt_put_record(client.rdv, "server", "stale", &old,
                udp_addr_port(&server.sock.local), -10 * 60 * 1000);
  tt_side_start(&client);
  usleep(300 * 1000); /* the client sees only the stale record meanwhile */
  tt_side_start(&server);
  tt_side_join(&client);
  tt_side_join(&server);
  tt_assert_agree(&server, &client);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
}

static void cancel_after(tt_side_t *s, int after_ms) {
  tt_side_start(s);
  usleep((useconds_t)after_ms * 1000);
  int64_t t0 = tu_now_ms();
  atomic_store(&s->cancel, true);
  TU_RC_EQ(tt_side_join(s), QP_ERR_INTERRUPTED, s->err);
  int64_t took = tu_now_ms() - t0;
  print_message("cancel took %lld ms\n", (long long)took);
  assert_true(took < 100);
}

static void test_cancel_while_waiting(void **state) {
  (void)state;
  tt_side_t server;
  tt_side_init(&server, URL, "cancel", true, 10000);
  cancel_after(&server, 200);
  tt_side_cleanup(&server);
}

/* Cancel while a dead STUN server is being asked (gathering phase). */
static void test_cancel_while_gathering(void **state) {
  (void)state;
  char dead[32];
  snprintf(dead, sizeof(dead), "127.0.0.1:%u", tu_free_udp_port());
  tt_side_t client;
  tt_side_init(&client, URL, "cancel-gather", false, 10000);
  client.stun[0] = dead;
  client.cfg.stun_server_count = 1;
  cancel_after(&client, 150);
  tt_side_cleanup(&client);
}

static void test_bad_arguments(void **state) {
  (void)state;
  tt_side_t s;
  tt_side_init(&s, URL, "args", true, 0);
  assert_int_equal(trav_run(&s.sock, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "timeout");
  s.cfg.punch_timeout_ms = 100;
  const char *bad[] = {"127.0.0.1:99999"};
  s.cfg.stun_servers = bad;
  s.cfg.stun_server_count = 1;
  assert_int_equal(trav_run(&s.sock, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "127.0.0.1:99999");
  assert_int_equal(trav_run(NULL, s.rdv, &s.cfg, NULL, NULL, &s.res),
                   QP_ERR_INVALID);
  tt_side_cleanup(&s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_no_peer_times_out),
      cmocka_unit_test(test_silent_pair_is_named),
      cmocka_unit_test(test_foreign_session_record),
      cmocka_unit_test(test_malformed_record),
      cmocka_unit_test(test_stale_record_waited_past),
      cmocka_unit_test(test_cancel_while_waiting),
      cmocka_unit_test(test_cancel_while_gathering),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
