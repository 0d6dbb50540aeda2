/* ctest: labels=loopback,iothread */
/*
 * test_trav_gather.c: STUN servers are queried in parallel from the
 * traversal socket, and a silent one does not hold up gathering once
 * another answered (issue 14): a bound-but-silent UDP port (no ICMP error,
 * the worst case) next to the embedded STUN server on 127.0.0.1 costs at
 * most TRAV_STUN_GRACE_MS, and a list of only silent servers costs
 * TRAV_GATHER_MAX_MS. Gathering ends when the server publishes its record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tu.h"
#include "udp/udp.h"
#include "stun/stun_server.h"
#include "test_trav_tu.h"

#define URL "mem:trav-gather"
/* Long enough that the gathering budget is TRAV_GATHER_MAX_MS (2 s), so
 * the old wait for every server would show. */
#define PUNCH_TIMEOUT_MS 9000
/* Scheduling slack for a loaded machine or a sanitizer build: well under
 * the 2 s a silent server used to cost. */
#define SLACK_MS 700

/* Start a server side with these STUN servers; return the ms until its
 * record (published right after gathering) appears, and the record. */
static int64_t time_to_record(tt_side_t *s, const char *session, const char *a,
                              const char *b, rdv_record *rec) {
  tt_side_init(s, URL, session, true, PUNCH_TIMEOUT_MS);
  s->stun[0] = a;
  s->stun[1] = b;
  s->cfg.stun_server_count = b ? 2 : 1;
  rdv_t *reader;
  assert_int_equal(rdv_open(URL, session, &reader), 0);
  int64_t t0 = tu_now_ms();
  tt_side_start(s);
  assert_true(tt_wait_record(reader, "server", PUNCH_TIMEOUT_MS, rec));
  int64_t elapsed = tu_now_ms() - t0;
  atomic_store(&s->cancel, true);
  TU_RC_EQ(tt_side_join(s), QP_ERR_INTERRUPTED, s->err);
  rdv_close(reader);
  return elapsed;
}

static bool has_srflx(const rdv_record *rec, uint16_t port) {
  for (size_t i = 0; i < rec->candidate_count; i++)
    if (rec->candidates[i].type == RDV_CAND_SRFLX && rec->candidates[i].port == port)
      return true;
  return false;
}

static void silent_server_next_to_live_one_costs_the_grace(void **state) {
  (void)state;
  stun_server_t *stun;
  assert_int_equal(stun_server_start("127.0.0.1:0", NULL, &stun), 0);
  udp_addr_t sa;
  assert_int_equal(stun_server_address(stun, 0, &sa), 0);
  udp_socket_t silent; /* bound, never read: no answer, no ICMP error */
  tt_open(&silent);
  char live[UDP_ADDRSTRLEN], dead[UDP_ADDRSTRLEN];
  udp_addr_to_string(&sa, live, sizeof(live));
  udp_addr_to_string(&silent.local, dead, sizeof(dead));

  tt_side_t s;
  rdv_record rec;
  /* The silent one first, so nothing depends on the order of the list. */
  int64_t ms = time_to_record(&s, "one-silent", dead, live, &rec);
  print_message("gathering with a silent server next to a live one: %lld ms\n",
                (long long)ms);
  assert_true(has_srflx(&rec, udp_addr_port(&s.sock.local)));
  assert_true(ms < TRAV_STUN_GRACE_MS + SLACK_MS);
  assert_true(ms < TRAV_GATHER_MAX_MS / 2);
  tt_side_cleanup(&s);
  udp_socket_close(&silent);
  stun_server_stop(stun);
}

static void only_silent_servers_cost_the_gathering_bound(void **state) {
  (void)state;
  udp_socket_t silent[2];
  char dead[2][UDP_ADDRSTRLEN];
  for (int i = 0; i < 2; i++) {
    tt_open(&silent[i]);
    udp_addr_to_string(&silent[i].local, dead[i], sizeof(dead[i]));
  }
  tt_side_t s;
  rdv_record rec;
  int64_t ms = time_to_record(&s, "all-silent", dead[0], dead[1], &rec);
  print_message("gathering with two silent servers: %lld ms\n", (long long)ms);
  assert_false(has_srflx(&rec, udp_addr_port(&s.sock.local)));
  /* Both asked at once: the bound, not twice the bound. */
  assert_true(ms >= TRAV_GATHER_MAX_MS - 50);
  assert_true(ms < TRAV_GATHER_MAX_MS + SLACK_MS);
  tt_side_cleanup(&s);
  for (int i = 0; i < 2; i++)
    udp_socket_close(&silent[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(silent_server_next_to_live_one_costs_the_grace),
      cmocka_unit_test(only_silent_servers_cost_the_gathering_bound),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
