/* ctest: labels=loopback,portal,security */
/*
 * Attack on a direct listen: strangers reach the port before the right
 * client. One whose certificate does not match the server's pin, one that
 * sends a garbage Initial, one that starts a handshake and falls silent.
 * None of them ends listen: it keeps waiting and accepts the right client,
 * and a listen that sees only strangers reports the last refusal at its
 * timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "tls/tls_identity.h"
#include "transport/transport.h"
#include "tu.h"
#include "udp/udp.h"

#define LISTEN_MS 15000
#define CONNECT_MS 10000

typedef struct scene {
  qp_portal_t *server, *right;
  tu_listener_t l;
  uint16_t port;
  int right_connect_ms; /* 0: CONNECT_MS */
} scene_t;

/* The server pins the right client's certificate and listens. */
static void scene_start(scene_t *s, int listen_ms) {
  memset(s, 0, sizeof(*s));
  TU_QP_OK(qp_portal_create(&s->server));
  TU_QP_OK(qp_portal_create(&s->right));
  char fp[QP_FINGERPRINT_SIZE];
  TU_QP_OK(qp_portal_fingerprint(s->right, fp, sizeof(fp)));
  TU_QP_OK(qp_portal_pin_peer(s->server, fp));
  s->port = tu_listen_start(&s->l, s->server, "127.0.0.1", 0, NULL, listen_ms);
  assert_true(s->port != 0);
}

/* Then the right client connects, and messages flow. */
static void scene_right_client_connects(scene_t *s) {
  TU_QP_OK(qp_portal_connect(s->right, "127.0.0.1", s->port, 0, NULL,
                             s->right_connect_ms ? s->right_connect_ms : CONNECT_MS));
  TU_RC_EQ(tu_listen_join(&s->l), QP_OK, s->l.error);
  tu_send_ok(s->right, "right", 5, 2000);
  tu_recv_expect(s->server, "right", 5, 2000);
  qp_portal_destroy(s->server);
  qp_portal_destroy(s->right);
}

static void stranger_with_wrong_certificate_first(void **state) {
  (void)state;
  scene_t s;
  scene_start(&s, LISTEN_MS);
  qp_portal_t *stranger;
  TU_QP_OK(qp_portal_create(&stranger));
  int rc = qp_portal_connect(stranger, "127.0.0.1", s.port, 0, NULL, CONNECT_MS);
  print_message("stranger: %s: %s\n", qp_err_name(rc), qp_last_error());
  assert_true(rc == QP_ERR_HANDSHAKE || rc == QP_ERR_PEER_VERIFY);
  qp_portal_destroy(stranger);
  assert_false(qp_portal_is_connected(s.server));
  scene_right_client_connects(&s);
}

static void garbage_initial_first(void **state) {
  (void)state;
  scene_t s;
  scene_start(&s, LISTEN_MS);
  udp_socket_t raw;
  udp_addr_t any, to;
  assert_int_equal(udp_addr_from_ip("127.0.0.1", 0, &any), 0);
  assert_int_equal(udp_addr_from_ip("127.0.0.1", s.port, &to), 0);
  assert_int_equal(udp_socket_open(&any, &raw), 0);
  /* A long-header Initial (version 1, 8-byte connection IDs) whose
   * protected payload is noise: the ClientHello cannot be read. */
  uint8_t pkt[1200];
  tu_fill_pattern(pkt, sizeof(pkt), 99);
  const uint8_t head[] = {0xc3, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8,
                          8, 9, 9, 9, 9, 9, 9, 9, 9, 0, 0x44, 0x00};
  memcpy(pkt, head, sizeof(head));
  for (int i = 0; i < 3; i++)
    assert_int_equal(udp_send(&raw, &to, pkt, sizeof(pkt), sizeof(pkt)), 0);
  udp_socket_close(&raw);
  scene_right_client_connects(&s);
}

static int send_raw(void *ctx, const udp_addr_t *to, const uint8_t *buf,
                    size_t len, size_t seg) {
  return udp_send(ctx, to, buf, len, seg);
}

/* A stranger that sends one real client Initial (the library's own QUIC
 * client) and then nothing holds the server's only slot until the
 * server-side handshake timeout (5 s); the right client, retransmitting its
 * Initials meanwhile, gets in after it. */
static void silent_half_open_first(void **state) {
  (void)state;
  scene_t s;
  scene_start(&s, LISTEN_MS);
  udp_socket_t raw;
  tls_identity_t *id;
  assert_int_equal(tls_identity_create(&id), 0);
  transport_config_t cfg = {.identity = id};
  qp_transport_options_init(&cfg.opts);
  assert_int_equal(udp_addr_from_ip("127.0.0.1", 0, &cfg.local), 0);
  assert_int_equal(udp_socket_open(&cfg.local, &raw), 0);
  cfg.local = raw.local;
  assert_int_equal(udp_addr_from_ip("127.0.0.1", s.port, &cfg.remote), 0);
  transport_t *t;
  uint64_t now = clock_now_ns();
  assert_int_equal(transport_create_client(&cfg, now, &t), 0);
  assert_int_equal(transport_flush(t, now, send_raw, &raw), 0);
  transport_destroy(t); /* and never a word more */
  int64_t t0 = tu_now_ms();
  s.right_connect_ms = 12000; /* past the 5 s slot timeout and a PTO */
  scene_right_client_connects(&s);
  int64_t waited = tu_now_ms() - t0;
  print_message("the right client connected %lld ms after the half-open "
                "Initial\n", (long long)waited);
  assert_true(waited >= 4500); /* it really waited for the slot */
  udp_socket_close(&raw);
  tls_identity_destroy(id);
}

/* Only strangers: listen runs to its timeout and says why it accepted none. */
static void only_strangers_listen_reports_the_last(void **state) {
  (void)state;
  scene_t s;
  scene_start(&s, 1500);
  qp_portal_t *stranger;
  TU_QP_OK(qp_portal_create(&stranger));
  int rc = qp_portal_connect(stranger, "127.0.0.1", s.port, 0, NULL, CONNECT_MS);
  assert_int_not_equal(rc, QP_OK);
  qp_portal_destroy(stranger);
  rc = tu_listen_join(&s.l);
  print_message("listen after %lld ms: %s\n", (long long)s.l.elapsed_ms, s.l.error);
  TU_RC_EQ(rc, QP_ERR_PEER_VERIFY, s.l.error);
  TU_ASSERT_CONTAINS(s.l.error, "1 refused");
  assert_true(s.l.elapsed_ms >= 1400);
  qp_portal_destroy(s.server);
  qp_portal_destroy(s.right);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stranger_with_wrong_certificate_first),
      cmocka_unit_test(garbage_initial_first),
      cmocka_unit_test(silent_half_open_first),
      cmocka_unit_test(only_strangers_listen_reports_the_last),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
