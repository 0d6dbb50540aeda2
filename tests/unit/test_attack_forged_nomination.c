/* ctest: labels=unit,traversal,security */
/*
 * Attack: someone who can READ the rendezvous store (not write it) learns
 * both records, hence both ICE passwords, and sends the client a perfectly
 * authenticated USE-CANDIDATE check from its own address, hoping to become
 * the client's peer. RFC 8445 section 7.3.1.5: a nomination counts only for
 * a pair the client validated itself, so the forger must also answer the
 * client's check at its address. One that does not is refused (the client
 * never selects it), and a real server meets the client while the forger
 * keeps trying.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tu.h"
#include "test_trav_tu.h"

#define URL "mem:attack-nomination"
/* How often the forger sends its nomination. */
#define FORGE_EVERY_MS 20

typedef struct forger {
  udp_socket_t sock;
  trav_creds_t client, server; /* read from the store */
  udp_addr_t client_addr;
  int sent, answered, checks_from_client;
} forger_t;

/* Poll key every millisecond (faster than the peers poll each other), so
 * the forger strikes before the real server can nominate. */
static bool poll_record(rdv_t *rdv, const char *key, rdv_record *rec) {
  for (int i = 0; i < 3000; i++) {
    char *text = NULL;
    size_t len = 0;
    if (rdv_get(rdv, key, &text, &len) == 1) {
      int rc = rdv_record_decode(text, len, rec);
      free(text);
      if (rc == 0)
        return true;
    }
    usleep(1000);
  }
  return false;
}

/* Read both records: what a read-only attacker of the store sees. False
 * when the client's was gone first (the pair met within a millisecond). */
static bool forger_read_store(forger_t *fg, rdv_t *rdv) {
  rdv_record srec, crec;
  assert_true(poll_record(rdv, "server", &srec));
  if (!poll_record(rdv, "client", &crec))
    return false;
  snprintf(fg->server.ufrag, sizeof(fg->server.ufrag), "%s", srec.ufrag);
  snprintf(fg->server.pwd, sizeof(fg->server.pwd), "%s", srec.pwd);
  snprintf(fg->client.ufrag, sizeof(fg->client.ufrag), "%s", crec.ufrag);
  snprintf(fg->client.pwd, sizeof(fg->client.pwd), "%s", crec.pwd);
  assert_true(crec.candidate_count > 0);
  assert_int_equal(udp_addr_from_ip(crec.candidates[0].addr,
                                    crec.candidates[0].port, &fg->client_addr),
                   0);
  return true;
}

/* A nomination in the server's name, as the server would write it. */
static void forger_nominate(forger_t *fg) {
  uint8_t txid[STUN_TXID_SIZE], buf[256];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  size_t len = trav_check_write(&fg->server, &fg->client, txid, true,
                                UINT64_MAX, trav_cand_priority(RDV_CAND_PRFLX, 65535),
                                true, buf, sizeof(buf));
  assert_true(len > 0);
  tt_send(&fg->sock, &fg->client_addr, buf, len);
  fg->sent++;
}

/* Nominate every FORGE_EVERY_MS until the client returned; never answer. */
static void forger_play(forger_t *fg, tt_side_t *client) {
  int64_t end = tu_now_ms() + 10000, next = 0;
  while (!atomic_load(&client->finished) && tu_now_ms() < end) {
    if (tu_now_ms() >= next) {
      forger_nominate(fg);
      next = tu_now_ms() + FORGE_EVERY_MS;
    }
    uint8_t buf[2048];
    udp_addr_t from;
    size_t n = tt_recv(&fg->sock, buf, sizeof(buf), &from, 5);
    stun_msg msg;
    if (n == 0 || stun_msg_parse(buf, n, &msg) != 0)
      continue;
    fg->answered += msg.cls == STUN_CLASS_SUCCESS;
    fg->checks_from_client += msg.cls == STUN_CLASS_REQUEST;
  }
}

/* The server is silent (its record names a dead port): only the forger
 * talks to the client. Before the fix the client returned at the first
 * forged nomination with the forger as its peer. */
static void forged_nomination_alone_is_refused(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, "alone", &rdv), 0);
  trav_creds_t silent;
  tt_creds(&silent, "silentsrv");
  tt_put_record(rdv, "server", "alone", &silent, tu_free_udp_port(), 0);
  tt_side_t client;
  tt_side_init(&client, URL, "alone", false, 1500);
  forger_t fg = {0};
  tt_open(&fg.sock);
  tt_side_start(&client);
  assert_true(forger_read_store(&fg, rdv)); /* the server is silent */
  forger_play(&fg, &client);
  tt_side_join(&client);
  print_message("client: %s\nforger: %d nominations sent, %d answered, %d "
                "checks from the client\n",
                client.err, fg.sent, fg.answered, fg.checks_from_client);
  TU_RC_EQ(client.rc, QP_ERR_PUNCH, client.err);
  assert_true(fg.sent > 10);
  assert_int_equal(fg.answered, 0);          /* no success for a forgery */
  assert_true(fg.checks_from_client > 0);    /* it was asked to prove itself */
  TU_ASSERT_CONTAINS(client.err, "nominations before we validated the pair");
  tt_side_cleanup(&client);
  udp_socket_close(&fg.sock);
  rdv_close(rdv);
}

/* A real server and the forger race: the client ends with the server. */
static void real_server_wins_over_the_forger(void **state) {
  (void)state;
  tt_side_t server, client;
  tt_side_init(&server, URL, "race", true, 5000);
  tt_side_init(&client, URL, "race", false, 5000);
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, "race", &rdv), 0);
  forger_t fg = {0};
  tt_open(&fg.sock);
  tt_side_start(&server);
  tt_side_start(&client);
  /* The forger polls every millisecond, the peers every 10 ms and more:
   * it nearly always strikes first; when the pair was quicker still, there
   * was nothing left to attack. */
  if (forger_read_store(&fg, rdv))
    forger_play(&fg, &client);
  else
    print_message("the pair met before the forger read the client record\n");
  tt_side_join(&server);
  tt_side_join(&client);
  print_message("forger: %d nominations sent, %d answered\n", fg.sent,
                fg.answered);
  tt_assert_agree(&server, &client);
  assert_int_equal(fg.answered, 0);
  tt_side_cleanup(&server);
  tt_side_cleanup(&client);
  udp_socket_close(&fg.sock);
  rdv_close(rdv);
}

/* Addresses a record may not make us send to. */
static void record_addresses_are_bounded(void **state) {
  (void)state;
  const char *refused[] = {"0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250",
                           "255.255.255.255", "240.0.0.1", "::", "ff02::1",
                           "::ffff:224.0.0.1", "::ffff:0.0.0.0"};
  const char *usable[] = {"127.0.0.1", "192.0.2.1", "10.1.2.3", "2001:db8::1",
                          "::1", "::ffff:198.51.100.7"};
  udp_addr_t a;
  for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
    assert_int_equal(udp_addr_from_ip(refused[i], 4242, &a), 0);
    if (trav_addr_usable(&a))
      fail_msg("%s was accepted as a peer address", refused[i]);
  }
  for (size_t i = 0; i < sizeof(usable) / sizeof(usable[0]); i++) {
    assert_int_equal(udp_addr_from_ip(usable[i], 4242, &a), 0);
    if (!trav_addr_usable(&a))
      fail_msg("%s was refused as a peer address", usable[i]);
  }
  /* The record's decoder bounds how many candidates there are. */
  assert_true(RDV_RECORD_MAX_CANDIDATES + TRAV_MAX_PRFLX <= TRAV_MAX_PAIRS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(forged_nomination_alone_is_refused),
      cmocka_unit_test(real_server_wins_over_the_forger),
      cmocka_unit_test(record_addresses_are_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
