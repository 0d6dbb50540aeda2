/* ctest: labels=loopback */
/*
 * test_trav_portmap_late.c: gathering does not wait for the gateway. A real
 * trav_run server asks a PCP gateway played by this test on 127.0.0.1,
 * which holds its answer until the server's first record is in the store:
 * that record has no mapped candidate; once the gateway answers, the
 * mapping becomes a candidate of type mapped ("pcp") and the record is
 * published again; a failed run (cancelled) deletes the mapping (PCP MAP
 * with lifetime 0). Then the peer's side: a real trav_run client whose
 * server (scripted here) publishes its record again with a mapped
 * candidate adds the pair (trav_pairs_trickle) and connects through it,
 * reporting QP_PATH_MAPPED. The real gateway (miniupnpd) and both real
 * peers are in the lab: tests/lab/test_portmap.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "tu.h"

#include "test_trav_tu.h"

#include <arpa/inet.h>

#include "portmap/pm_internal.h"
#include "portmap/portmap.h"

#define URL "mem:trav-portmap-late"
#define SESSION "late"
#define SESSION_PEER "late-peer"
/* The public address the gateway grants (RFC 5737), port = internal + 7. */
#define GW_EXT_IP "192.0.2.99"
#define GW_EXT_PORT_STEP 7
#define WAIT_MS 3000 /* bound on every wait in this test */

/* A PCP gateway that answers the first MAP request only once released. */
typedef struct held_gw {
  udp_socket_t sock;
  atomic_bool release; /* the test lets the held answer go */
  atomic_bool stop;
  atomic_int maps, deletes, answered;
  bool have_held;
  pm_pcp_map_t held;
  udp_addr_t held_from;
  pthread_t thread;
} held_gw_t;

static void gw_answer(held_gw_t *g, const pm_pcp_map_t *req,
                      const udp_addr_t *to) {
  pm_pcp_map_t resp = *req;
  resp.result = PM_PCP_SUCCESS;
  resp.external_port = (uint16_t)(req->internal_port + GW_EXT_PORT_STEP);
  inet_pton(AF_INET, GW_EXT_IP, &resp.external_ip);
  uint8_t out[PM_PCP_MAP_MSG_LEN];
  int n = pm_pcp_encode_response(&resp, out, sizeof(out));
  if (n > 0 && udp_send(&g->sock, to, out, (size_t)n, 0) == 0)
    atomic_fetch_add(&g->answered, 1);
}

/* One request: a delete is answered at once; the first map is held (its
 * resends carry the same nonce and come from the same socket, so the one
 * late answer ends them all). */
static void gw_on_request(held_gw_t *g, const pm_pcp_map_t *req,
                          const udp_addr_t *from) {
  if (req->lifetime_s == 0) {
    atomic_fetch_add(&g->deletes, 1);
    gw_answer(g, req, from);
    return;
  }
  atomic_fetch_add(&g->maps, 1);
  if (!g->have_held) {
    g->held = *req;
    g->held_from = *from;
    g->have_held = true;
  }
}

static void *gw_main(void *arg) {
  held_gw_t *g = arg;
  bool sent = false;
  while (!atomic_load(&g->stop)) {
    if (!sent && g->have_held && atomic_load(&g->release)) {
      gw_answer(g, &g->held, &g->held_from);
      sent = true;
    }
    struct pollfd pfd = {.fd = g->sock.fd, .events = POLLIN};
    if (poll(&pfd, 1, 2) <= 0)
      continue;
    uint8_t buf[1100];
    size_t len = 0;
    udp_addr_t from;
    pm_pcp_map_t req;
    if (udp_recv_one(&g->sock, buf, sizeof(buf), &len, &from) == 1 &&
        pm_pcp_decode_request(buf, len, &req) == QP_OK)
      gw_on_request(g, &req, &from);
  }
  return NULL;
}

static void gw_start(held_gw_t *g) {
  memset(g, 0, sizeof(*g));
  tt_open(&g->sock);
  assert_int_equal(pthread_create(&g->thread, NULL, gw_main, g), 0);
}

static void gw_stop(held_gw_t *g) {
  atomic_store(&g->stop, true);
  pthread_join(g->thread, NULL);
  udp_socket_close(&g->sock);
}

/* The record's mapped candidate, or NULL. */
static const rdv_candidate *mapped_of(const rdv_record *rec) {
  for (size_t i = 0; i < rec->candidate_count; i++)
    if (rec->candidates[i].type == RDV_CAND_MAPPED)
      return &rec->candidates[i];
  return NULL;
}

/* Wait (bounded) for a server record with a mapped candidate. */
static bool wait_mapped_record(rdv_t *rdv, rdv_record *rec) {
  int64_t end = tu_now_ms() + WAIT_MS;
  while (tu_now_ms() < end) {
    char *text = NULL;
    size_t len = 0;
    if (rdv_get(rdv, "server", &text, &len) == 1) {
      int rc = rdv_record_decode(text, len, rec);
      free(text);
      if (rc == 0 && mapped_of(rec) != NULL)
        return true;
    }
    poll(NULL, 0, 5); /* the mem store has no change notification */
  }
  return false;
}

static void test_mapping_after_gathering_is_published(void **state) {
  (void)state;
  held_gw_t gw;
  gw_start(&gw);
  char gw_text[UDP_ADDRSTRLEN];
  udp_addr_to_string(&gw.sock.local, gw_text, sizeof(gw_text));
  tt_side_t server;
  tt_side_init(&server, URL, SESSION, true, 10000);
  server.cfg.portmap_protocols = PORTMAP_PCP;
  server.cfg.portmap_gateway = gw_text;
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, SESSION, &rdv), 0);
  tt_side_start(&server);

  /* Published while the gateway still holds its answer. */
  rdv_record first;
  assert_true(tt_wait_record(rdv, "server", WAIT_MS, &first));
  int64_t first_ms = tu_now_ms() - server.started_ms;
  int maps_before = atomic_load(&gw.maps);
  atomic_store(&gw.release, true);
  print_message("first record after %lld ms (%zu candidates), %d MAP "
                "requests held\n", (long long)first_ms, first.candidate_count,
                maps_before);
  assert_true(maps_before >= 1); /* the gateway was asked before that */
  assert_null(mapped_of(&first));

  /* The late mapping, in the record published again. */
  rdv_record second;
  assert_true(wait_mapped_record(rdv, &second));
  print_message("mapped record after %lld ms\n",
                (long long)(tu_now_ms() - server.started_ms));
  const rdv_candidate *m = mapped_of(&second);
  assert_string_equal(m->addr, GW_EXT_IP);
  assert_int_equal(m->port,
                   udp_addr_port(&server.sock.local) + GW_EXT_PORT_STEP);
  assert_string_equal(m->via, "pcp");
  assert_string_equal(second.ufrag, first.ufrag); /* the same run */
  assert_int_equal(second.candidate_count, first.candidate_count + 1);
  assert_int_equal(atomic_load(&gw.answered), 1);
  assert_int_equal(atomic_load(&gw.deletes), 0);

  /* A failed run deletes the mapping (portmap_stop waits for it). */
  atomic_store(&server.cancel, true);
  tt_side_join(&server);
  TU_RC_EQ(server.rc, QP_ERR_INTERRUPTED, server.err);
  int64_t end = tu_now_ms() + WAIT_MS;
  while (atomic_load(&gw.deletes) == 0 && tu_now_ms() < end)
    poll(NULL, 0, 5); /* the delete comes from the PCP worker */
  assert_int_equal(atomic_load(&gw.deletes), 1);
  tt_side_cleanup(&server);
  rdv_close(rdv);
  gw_stop(&gw);
}

/* A server record with a host candidate at host_port and, if mapped_port
 * is not 0, a mapped one ("upnp") at 127.0.0.1:mapped_port. */
static void put_server_record(rdv_t *rdv, const trav_creds_t *c,
                              uint16_t host_port, uint16_t mapped_port) {
  rdv_record rec;
  rdv_record_init(&rec, RDV_ROLE_SERVER, SESSION_PEER);
  snprintf(rec.ufrag, sizeof(rec.ufrag), "%s", c->ufrag);
  snprintf(rec.pwd, sizeof(rec.pwd), "%s", c->pwd);
  memset(rec.fingerprint, 'a', 64);
  rec.fingerprint[64] = '\0';
  assert_int_equal(rdv_record_add_candidate(
                       &rec, RDV_CAND_HOST, "127.0.0.1", host_port,
                       trav_cand_priority(RDV_CAND_HOST, 65535)), 0);
  if (mapped_port != 0) {
    assert_int_equal(rdv_record_add_candidate(
                         &rec, RDV_CAND_MAPPED, "127.0.0.1", mapped_port,
                         trav_cand_priority(RDV_CAND_MAPPED, 65535)), 0);
    snprintf(rec.candidates[1].via, sizeof(rec.candidates[1].via), "upnp");
  }
  /* A new time_ms, also within the same millisecond: the client looks
   * for new candidates only in a record whose time changed. */
  static uint64_t last;
  rec.time_ms = rdv_record_now_unix_ms();
  if (rec.time_ms <= last)
    rec.time_ms = last + 1;
  last = rec.time_ms;
  char text[RDV_RECORD_MAX_SIZE + 1];
  size_t len;
  assert_int_equal(rdv_record_encode(&rec, text, sizeof(text), &len), 0);
  assert_int_equal(rdv_put(rdv, "server", text, len), 0);
}

/* The scripted server on its mapped socket: answer the client's check,
 * then nominate that pair with a USE-CANDIDATE check of our own. */
static void serve_mapped(udp_socket_t *ms, const trav_creds_t *me,
                         const trav_creds_t *client, int *checks_in) {
  uint8_t buf[2048], out[TRAV_RESPONSE_MAX];
  udp_addr_t from;
  size_t n = tt_recv(ms, buf, sizeof(buf), &from, 10);
  stun_msg msg;
  if (n == 0 || stun_msg_parse(buf, n, &msg) != 0 ||
      msg.cls != STUN_CLASS_REQUEST)
    return;
  trav_role_t role = {true, 7};
  size_t len = 0;
  if (trav_check_answer(me->ufrag, me->pwd, client->ufrag, &role, &msg, &from,
                        out, sizeof(out), &len) != TRAV_REQ_ANSWERED)
    return;
  (*checks_in)++;
  tt_send(ms, &from, out, len);
  uint8_t txid[STUN_TXID_SIZE];
  assert_int_equal(stun_msg_new_txid(txid), 0);
  len = trav_check_write(me, client, txid, true, 7,
                         trav_cand_priority(RDV_CAND_MAPPED, 65535), true,
                         out, sizeof(out));
  assert_true(len > 0);
  tt_send(ms, &from, out, len);
}

static void test_peer_pairs_with_late_mapping(void **state) {
  (void)state;
  tt_side_t client;
  tt_side_init(&client, URL, SESSION_PEER, false, 5000);
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, SESSION_PEER, &rdv), 0);
  trav_creds_t me;
  tt_creds(&me, "lateserv");
  uint16_t dead = tu_free_udp_port(); /* a host candidate nobody answers */
  put_server_record(rdv, &me, dead, 0);
  tt_side_start(&client);
  rdv_record crec;
  assert_true(tt_wait_record(rdv, "client", WAIT_MS, &crec));
  trav_creds_t peer;
  memset(&peer, 0, sizeof(peer));
  snprintf(peer.ufrag, sizeof(peer.ufrag), "%s", crec.ufrag);
  snprintf(peer.pwd, sizeof(peer.pwd), "%s", crec.pwd);
  /* The client adopted the record without a mapping; now it has one. */
  udp_socket_t ms;
  tt_open(&ms);
  put_server_record(rdv, &me, dead, udp_addr_port(&ms.local));
  int checks_in = 0;
  int64_t end = tu_now_ms() + WAIT_MS;
  while (!atomic_load(&client.finished) && tu_now_ms() < end)
    serve_mapped(&ms, &me, &peer, &checks_in);
  tt_side_join(&client);
  TU_RC_EQ(client.rc, 0, client.err);
  print_message("path: %s\nsummary:\n%s\n", client.res.path_desc,
                client.res.summary);
  assert_true(checks_in > 0);
  assert_true(udp_addr_equal(&client.res.peer, &ms.local));
  assert_int_equal(client.res.path_kind, QP_PATH_MAPPED);
  TU_ASSERT_CONTAINS(client.res.path_desc, "port mapping, UPnP");
  tt_side_cleanup(&client);
  udp_socket_close(&ms);
  rdv_close(rdv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mapping_after_gathering_is_published),
      cmocka_unit_test(test_peer_pairs_with_late_mapping),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
