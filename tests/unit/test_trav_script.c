/* ctest: labels=loopback */
/*
 * test_trav_script.c: a real trav_run server against a scripted client
 * whose credentials the test holds: forged checks and forged answers
 * (wrong password) never validate a pair nor get answered; an authenticated
 * check from an address missing from the record becomes a peer-reflexive
 * pair that the server validates and nominates; a QUIC datagram that
 * arrives before the nomination's answer is kept for QUIC.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "test_trav_tu.h"

#define URL "mem:trav-script"
#define WRONG_PWD "notTheRightPassword0123456789"

typedef struct script {
  udp_socket_t sock;           /* the scripted client's socket */
  trav_creds_t me;             /* its credentials, published */
  trav_creds_t server;         /* the server's, from its record */
  bool forge;                  /* use WRONG_PWD for checks and answers */
  bool send_quic_early;        /* a fake QUIC Initial before the answer */
  int answered_by_server;      /* success responses we received */
  int answered_authentic;      /* ... that verify with the server's pwd */
  int checks_from_server;
  bool nominated;              /* a USE-CANDIDATE check arrived */
} script_t;

static void script_answer(script_t *sc, const stun_msg *msg,
                          const udp_addr_t *from) {
  uint8_t resp[TRAV_RESPONSE_MAX];
  size_t len = 0;
  sc->checks_from_server++;
  if (sc->forge) {
    /* An answer an attacker without our pwd could make. */
    stun_msg_writer w;
    assert_int_equal(stun_msg_write_header(&w, resp, sizeof(resp),
                                           STUN_METHOD_BINDING,
                                           STUN_CLASS_SUCCESS, msg->txid), 0);
    assert_int_equal(stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS,
                                                from), 0);
    assert_int_equal(stun_msg_write_integrity(&w, (const uint8_t *)WRONG_PWD,
                                              strlen(WRONG_PWD)), 0);
    assert_int_equal(stun_msg_write_fingerprint(&w), 0);
    len = w.len;
  } else {
    trav_role_t role = {false, 42};
    assert_int_equal(trav_check_answer(sc->me.ufrag, sc->me.pwd,
                                       sc->server.ufrag, &role, msg, from,
                                       resp, sizeof(resp), &len),
                     TRAV_REQ_ANSWERED);
  }
  if (msg->use_candidate && sc->send_quic_early && !sc->nominated) {
    /* A fast client's QUIC Initial overtaking the answer: the server is
     * still in trav_run when it arrives. */
    uint8_t initial[1200] = {0xc3, 0, 0, 0, 1};
    tt_send(&sc->sock, from, initial, sizeof(initial));
  }
  sc->nominated |= msg->use_candidate;
  tt_send(&sc->sock, from, resp, len);
}

static void script_on_datagram(script_t *sc, const uint8_t *buf, size_t len,
                               const udp_addr_t *from) {
  stun_msg msg;
  if (stun_msg_parse(buf, len, &msg) != 0)
    return;
  if (msg.cls == STUN_CLASS_REQUEST) {
    script_answer(sc, &msg, from);
  } else if (msg.cls == STUN_CLASS_SUCCESS) {
    sc->answered_by_server++;
    sc->answered_authentic +=
        stun_msg_check_integrity(&msg, (const uint8_t *)sc->server.pwd,
                                 strlen(sc->server.pwd)) == 0;
  }
}

/* Our own check to the server, every 50 ms, from sc->sock. */
static void script_check(script_t *sc, const udp_addr_t *server) {
  trav_creds_t remote = sc->server;
  if (sc->forge)
    snprintf(remote.pwd, sizeof(remote.pwd), "%s", WRONG_PWD);
  uint8_t txid[STUN_TXID_SIZE], buf[256];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  size_t len = trav_check_write(&sc->me, &remote, txid, false, 42,
                                trav_cand_priority(RDV_CAND_PRFLX, 65535),
                                false, buf, sizeof(buf));
  assert_true(len > 0);
  tt_send(&sc->sock, server, buf, len);
}

/* Start the server, read its record, publish ours with candidate port
 * record_port, then play until the server returns (or 3 s). */
static void script_run(tt_side_t *server, script_t *sc, uint16_t record_port,
                       const char *session) {
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, session, &rdv), 0);
  tt_side_start(server);
  rdv_record srec;
  assert_true(tt_wait_record(rdv, "server", 2000, &srec));
  tt_creds(&sc->me, "scripted");
  snprintf(sc->server.ufrag, sizeof(sc->server.ufrag), "%s", srec.ufrag);
  snprintf(sc->server.pwd, sizeof(sc->server.pwd), "%s", srec.pwd);
  tt_put_record(rdv, "client", session, &sc->me, record_port, 0);
  int64_t end = tu_now_ms() + 3000, next_check = 0;
  while (!atomic_load(&server->finished) && tu_now_ms() < end) {
    if (tu_now_ms() >= next_check) {
      script_check(sc, &server->sock.local);
      next_check = tu_now_ms() + 50;
    }
    uint8_t buf[2048];
    udp_addr_t from;
    size_t n = tt_recv(&sc->sock, buf, sizeof(buf), &from, 10);
    if (n > 0)
      script_on_datagram(sc, buf, n, &from);
  }
  tt_side_join(server);
  rdv_close(rdv);
}

/* Forged checks are not answered and forged answers validate nothing. */
static void test_forged_never_validates(void **state) {
  (void)state;
  tt_side_t server;
  tt_side_init(&server, URL, "forged", true, 800);
  script_t sc = {.forge = true};
  tt_open(&sc.sock);
  script_run(&server, &sc, udp_addr_port(&sc.sock.local), "forged");
  TU_RC_EQ(server.rc, QP_ERR_PUNCH, server.err);
  assert_true(sc.checks_from_server > 0); /* the server did try us */
  assert_int_equal(sc.answered_by_server, 0);
  assert_false(sc.nominated);
  TU_ASSERT_CONTAINS(server.err, "no response");
  TU_ASSERT_CONTAINS(server.err, "unauthenticated");
  print_message("error: %s\n", server.err);
  tt_side_cleanup(&server);
  udp_socket_close(&sc.sock);
}

/* Our record names a dead port; our checks come from another socket. The
 * server answers them, adds that address as peer-reflexive, validates it
 * and nominates it. A QUIC packet sent before the nomination's answer is
 * handed over in the result, not lost. */
static void test_peer_reflexive_nominated(void **state) {
  (void)state;
  tt_side_t server;
  tt_side_init(&server, URL, "prflx", true, 3000);
  script_t sc = {.send_quic_early = true};
  tt_open(&sc.sock);
  script_run(&server, &sc, tu_free_udp_port(), "prflx");
  TU_RC_EQ(server.rc, 0, server.err);
  assert_true(udp_addr_equal(&server.res.peer, &sc.sock.local));
  assert_true(sc.nominated);
  assert_true(sc.answered_authentic > 0);
  assert_int_equal(sc.answered_authentic, sc.answered_by_server);
  TU_ASSERT_CONTAINS(server.res.summary, "prflx (nominated; succeeded");
  print_message("summary:\n%s\nearly datagrams: %zu\n", server.res.summary,
                server.res.early_count);
  assert_int_equal(server.res.early_count, 1);
  assert_int_equal(server.res.early_len[0], 1200);
  assert_int_equal(server.res.early[0][0], 0xc3);
  assert_true(udp_addr_equal(&server.res.early_from[0], &sc.sock.local));
  tt_side_cleanup(&server);
  udp_socket_close(&sc.sock);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_forged_never_validates),
      cmocka_unit_test(test_peer_reflexive_nominated),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
