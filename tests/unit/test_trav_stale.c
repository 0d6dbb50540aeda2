/* ctest: labels=loopback */
/*
 * test_trav_stale.c: a record left in the store by a process that is gone
 * never makes the next peer fail. Waiting for its peer, a side that
 * adopted a record showing no sign of life (no heartbeat, no check) drops
 * it after TRAV_STALE_MS and goes on waiting; a peer that comes later
 * meets it. A live peer refreshes its record (the heartbeat).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <cmocka.h>

#include "tu.h"

#include "test_trav_tu.h"

#define URL "mem:trav-stale"

static void test_dead_server_record_does_not_fail_the_client(void **state) {
  (void)state;
  udp_socket_t dead; /* bound, never read: a server process that is gone */
  tt_open(&dead);
  tt_side_t client, server;
  tt_side_init(&client, URL, "stale", false, 1000);
  client.cfg.wait_timeout_ms = -1;
  trav_creds_t gone;
  tt_creds(&gone, "deadsrv");
  tt_put_record(client.rdv, "server", "stale", &gone,
                udp_addr_port(&dead.local), 0);
  tt_side_start(&client);
  /* The delay is the behavior under test: past the client's punch timeout
   * (1 s) and TRAV_STALE_MS, so that it must have dropped the record. */
  struct timespec delay = {.tv_sec = TRAV_STALE_MS / 1000 + 1, .tv_nsec = 0};
  nanosleep(&delay, NULL);
  assert_false(atomic_load(&client.finished));
  tt_side_init(&server, URL, "stale", true, 3000);
  server.cfg.wait_timeout_ms = -1;
  tt_side_start(&server);
  tt_side_join(&server);
  tt_side_join(&client);
  tt_assert_agree(&server, &client);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
  udp_socket_close(&dead);
}

/* A server waiting for its client rewrites its record every
 * TRAV_REFRESH_MS: the time_ms a reader sees changes. */
static void test_waiting_server_refreshes_its_record(void **state) {
  (void)state;
  tt_side_t server;
  tt_side_init(&server, URL, "heartbeat", true, 1000);
  server.cfg.wait_timeout_ms = 3 * TRAV_REFRESH_MS;
  tt_side_start(&server);
  rdv_record first, later;
  assert_true(tt_wait_record(server.rdv, "server", 2000, &first));
  uint64_t seen = first.time_ms;
  int64_t deadline = tu_now_ms() + 2 * TRAV_REFRESH_MS + 500;
  bool changed = false;
  while (!changed && tu_now_ms() < deadline) {
    assert_true(tt_wait_record(server.rdv, "server", 500, &later));
    changed = later.time_ms != seen && strcmp(later.ufrag, first.ufrag) == 0;
    struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  assert_true(changed);
  TU_RC_EQ(tt_side_join(&server), QP_ERR_TIMEOUT, server.err);
  tt_side_cleanup(&server);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dead_server_record_does_not_fail_the_client),
      cmocka_unit_test(test_waiting_server_refreshes_its_record),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
