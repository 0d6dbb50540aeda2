/* ctest: labels=loopback,iothread */
/*
 * test_create_local_ip.c: qp_traverse_options.local_ip binds traversal to
 * one address and limits host candidates to it. Two peers with
 * local_ip = "127.0.0.1" publish only 127.0.0.1 candidates and connect over
 * loopback; a local_ip that is not a numeric address is refused, one that
 * is not this machine's cannot be bound.
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
#include "rendezvous/rdv.h"
#include "rendezvous/rdv_record.h"
#include "tu.h"

#define URL "mem:create-local-ip"
#define SESSION "local-ip"
#define TIMEOUT_MS 5000

static void side_init(tu_create_side_t *s, bool server) {
  tu_create_side_init(s, server);
  s->opts.rendezvous = URL;
  s->opts.session = SESSION;
  s->opts.punch_timeout_ms = TIMEOUT_MS;
  s->opts.local_ip = "127.0.0.1";
}

/* The server's record, read as the client would (before it starts). */
static void assert_only_loopback_candidates(void) {
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, SESSION, &rdv), 0);
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(rdv_wait_get(rdv, "server", rdv_now_ms() + TIMEOUT_MS, NULL, NULL,
                                &text, &len),
                   1);
  rdv_record rec;
  assert_int_equal(rdv_record_decode(text, len, &rec), 0);
  free(text);
  assert_true(rec.candidate_count >= 1);
  for (size_t i = 0; i < rec.candidate_count; i++) {
    print_message("server candidate %s:%u\n", rec.candidates[i].addr,
                  (unsigned)rec.candidates[i].port);
    assert_string_equal(rec.candidates[i].addr, "127.0.0.1");
  }
  rdv_close(rdv);
}

static void pair_on_loopback_only(void **state) {
  (void)state;
  tu_create_side_t srv, cli;
  side_init(&srv, true);
  side_init(&cli, false);
  tu_create_side_start(&srv);
  assert_only_loopback_candidates();
  tu_create_side_start(&cli);
  tu_create_side_join(&srv);
  tu_create_side_join(&cli);
  TU_RC_EQ(srv.rc, QP_OK, srv.err);
  TU_RC_EQ(cli.rc, QP_OK, cli.err);
  tu_send_ok(cli.portal, "loop", 4, TIMEOUT_MS);
  tu_recv_expect(srv.portal, "loop", 4, TIMEOUT_MS);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
}

static void bad_local_ip(void **state) {
  (void)state;
  tu_create_side_t s;
  side_init(&s, true);
  s.opts.local_ip = "localhost";
  assert_int_equal(qp_create_server(&s.opts, &s.portal), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "local_ip \"localhost\"");
  assert_null(s.portal);
  /* TEST-NET-1 (RFC 5737) is no address of this machine: bind fails at
   * once, before anything is sent. */
  s.opts.local_ip = "192.0.2.1";
  assert_int_equal(qp_create_server(&s.opts, &s.portal), QP_ERR_SOCKET);
  TU_ASSERT_CONTAINS(qp_last_error(), "192.0.2.1");
  assert_null(s.portal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(pair_on_loopback_only),
      cmocka_unit_test(bad_local_ip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
