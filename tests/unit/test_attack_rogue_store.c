/* ctest: labels=unit,traversal,security */
/*
 * Attack: someone who can write the rendezvous store replaces the peer's
 * record with one of their own (their address, their ICE credentials,
 * their certificate fingerprint).
 * - Without a secret (the documented outcome, docs/security.md): the
 *   client believes the store, so the writer chooses its peer: the client
 *   runs authenticated checks with the writer and would pin the writer's
 *   certificate.
 * - With a secret (sealed rendezvous): a record that does not open is
 *   refused and counted; each side fails with QP_ERR_RENDEZVOUS naming it,
 *   and sends nothing to the writer. The store shows neither the session
 *   name nor candidates nor credentials.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tu.h"
#include "test_trav_tu.h"
#include "rendezvous/rdv_seal.h"

#define URL "mem:attack-rogue"
#define SECRET "correct horse battery staple"
#define WRONG_SECRET "incorrect horse battery staple"

typedef struct sealed_side {
  tt_side_t side;
  rdv_seal_t seal;
} sealed_side_t;

/* A side whose records are sealed with secret: its store handle is opened
 * on the derived label instead of the session. */
static void sealed_init(sealed_side_t *s, const char *session, bool server,
                        int timeout_ms, const char *secret) {
  tt_side_init(&s->side, URL, session, server, timeout_ms);
  assert_int_equal(rdv_seal_init(&s->seal, secret, session), 0);
  rdv_close(s->side.rdv);
  assert_int_equal(rdv_open(URL, s->seal.label, &s->side.rdv), 0);
  s->side.cfg.seal = &s->seal;
}

/* The writer's record under key, plain (seal NULL) or sealed with seal. */
static void rogue_put(rdv_t *rdv, const char *key, const char *session,
                      const trav_creds_t *c, uint16_t port,
                      const rdv_seal_t *seal) {
  rdv_record rec;
  rdv_record_init(&rec, strcmp(key, "server") == 0 ? RDV_ROLE_SERVER
                                                   : RDV_ROLE_CLIENT,
                  session);
  snprintf(rec.ufrag, sizeof(rec.ufrag), "%s", c->ufrag);
  snprintf(rec.pwd, sizeof(rec.pwd), "%s", c->pwd);
  memset(rec.fingerprint, 'e', 64);
  assert_int_equal(rdv_record_add_candidate(&rec, RDV_CAND_HOST, "127.0.0.1",
                                            port, 2130706431), 0);
  rec.time_ms = rdv_record_now_unix_ms();
  char text[RDV_RECORD_MAX_SIZE + 1], sealed[RDV_SEALED_MAX + 1];
  size_t len, slen;
  assert_int_equal(rdv_record_encode(&rec, text, sizeof(text), &len), 0);
  if (seal == NULL) {
    assert_int_equal(rdv_put(rdv, key, text, len), 0);
    return;
  }
  assert_int_equal(rdv_seal_record(seal, key, text, len, sealed, sizeof(sealed),
                                   &slen), 0);
  assert_int_equal(rdv_put(rdv, key, sealed, slen), 0);
}

/* Authenticated checks for the writer's credentials seen on sock. */
static int checks_for(udp_socket_t *sock, const trav_creds_t *c, int ms) {
  int n = 0;
  int64_t end = tu_now_ms() + ms;
  while (tu_now_ms() < end) {
    uint8_t buf[2048];
    udp_addr_t from;
    size_t len = tt_recv(sock, buf, sizeof(buf), &from, 10);
    stun_msg msg;
    if (len == 0 || stun_msg_parse(buf, len, &msg) != 0 ||
        msg.cls != STUN_CLASS_REQUEST)
      continue;
    n += stun_msg_check_integrity(&msg, (const uint8_t *)c->pwd,
                                  strlen(c->pwd)) == 0;
  }
  return n;
}

static void without_secret_the_writer_chooses_the_peer(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open(URL, "plain", &rdv), 0);
  udp_socket_t rogue;
  tt_open(&rogue);
  trav_creds_t rc;
  tt_creds(&rc, "roguesrv");
  rogue_put(rdv, "server", "plain", &rc, udp_addr_port(&rogue.local), NULL);
  tt_side_t client;
  tt_side_init(&client, URL, "plain", false, 3000);
  tt_side_start(&client);
  int checks = checks_for(&rogue, &rc, 500);
  atomic_store(&client.cancel, true);
  tt_side_join(&client);
  print_message("the client sent %d authenticated checks to the writer\n",
                checks);
  assert_true(checks > 0); /* documented: no secret, no protection */
  tt_side_cleanup(&client);
  udp_socket_close(&rogue);
  rdv_close(rdv);
}

/* One refused record: the side times out with QP_ERR_RENDEZVOUS naming
 * why, and the writer's socket hears nothing. */
static void expect_refused(bool server, const rdv_seal_t *rogue_seal,
                           const char *why) {
  const char *session = server ? "sealed-s" : "sealed-c";
  sealed_side_t s;
  sealed_init(&s, session, server, 800, SECRET);
  udp_socket_t rogue;
  tt_open(&rogue);
  trav_creds_t rc;
  tt_creds(&rc, "roguepeer");
  /* The writer even knows the label (it can watch the store). */
  rogue_put(s.side.rdv, server ? "client" : "server", session, &rc,
            udp_addr_port(&rogue.local), rogue_seal);
  tt_side_start(&s.side);
  int checks = checks_for(&rogue, &rc, 300);
  tt_side_join(&s.side);
  print_message("%s: %s\n", server ? "server" : "client", s.side.err);
  TU_RC_EQ(s.side.rc, QP_ERR_RENDEZVOUS, s.side.err);
  TU_ASSERT_CONTAINS(s.side.err, why);
  assert_int_equal(checks, 0);
  tt_side_cleanup(&s.side);
  rdv_seal_wipe(&s.seal);
  udp_socket_close(&rogue);
}

static void with_secret_both_sides_refuse_the_writer(void **state) {
  (void)state;
  rdv_seal_t wrong;
  /* another secret, same session: the writer's sealed record */
  assert_int_equal(rdv_seal_init(&wrong, WRONG_SECRET, "sealed-c"), 0);
  expect_refused(false, &wrong, "does not open with our secret");
  assert_int_equal(rdv_seal_init(&wrong, WRONG_SECRET, "sealed-s"), 0);
  expect_refused(true, &wrong, "does not open with our secret");
  /* a plain record where a sealed one belongs */
  expect_refused(false, NULL, "is not sealed");
  expect_refused(true, NULL, "is not sealed");
}

typedef struct observer {
  rdv_t *rdv;
  char seen[2][RDV_SEALED_MAX + 1];
} observer_t;

/* What a reader of the store sees while a sealed pair meets. */
static void observe(observer_t *o, tt_side_t *client) {
  const char *keys[2] = {"server", "client"};
  for (int i = 0; i < 5000 && !atomic_load(&client->finished); i++) {
    for (int k = 0; k < 2; k++) {
      char *text = NULL;
      size_t len = 0;
      if (o->seen[k][0] == '\0' && rdv_get(o->rdv, keys[k], &text, &len) == 1)
        snprintf(o->seen[k], sizeof(o->seen[k]), "%.*s", (int)len, text);
      free(text);
    }
    usleep(1000);
  }
}

static void sealed_pair_meets_and_the_store_shows_nothing(void **state) {
  (void)state;
  sealed_side_t server, client;
  sealed_init(&server, "secret-meeting", true, 5000, SECRET);
  sealed_init(&client, "secret-meeting", false, 5000, SECRET);
  observer_t o = {0};
  assert_int_equal(rdv_open(URL, server.seal.label, &o.rdv), 0);
  rdv_t *plain;
  assert_int_equal(rdv_open(URL, "secret-meeting", &plain), 0);
  tt_side_start(&server.side);
  tt_side_start(&client.side);
  observe(&o, &client.side);
  tt_side_join(&server.side);
  tt_side_join(&client.side);
  tt_assert_agree(&server.side, &client.side);
  for (int k = 0; k < 2; k++) {
    print_message("store value %d: %.60s...\n", k, o.seen[k]);
    assert_true(rdv_seal_is_sealed(o.seen[k], strlen(o.seen[k])));
    assert_null(strstr(o.seen[k], "secret-meeting"));
    assert_null(strstr(o.seen[k], "127.0.0.1"));
    assert_null(strstr(o.seen[k], "candidates"));
  }
  assert_null(strstr(server.seal.label, "secret"));
  char *text = NULL;
  size_t len = 0;
  assert_int_equal(rdv_get(plain, "server", &text, &len), 0);
  tt_side_cleanup(&server.side);
  tt_side_cleanup(&client.side);
  rdv_seal_wipe(&server.seal);
  rdv_seal_wipe(&client.seal);
  rdv_close(o.rdv);
  rdv_close(plain);
}

/* Keys: a short secret is refused; the label and key depend on both the
 * secret and the session. */
static void keys_are_derived_from_secret_and_session(void **state) {
  (void)state;
  rdv_seal_t a, b, c;
  assert_int_equal(rdv_seal_init(&a, "short", "s"), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "8 to 256 bytes");
  assert_int_equal(rdv_seal_init(&a, SECRET, "one"), 0);
  assert_int_equal(rdv_seal_init(&b, SECRET, "two"), 0);
  assert_int_equal(rdv_seal_init(&c, WRONG_SECRET, "one"), 0);
  assert_int_equal(strlen(a.label), RDV_SEAL_LABEL_LEN);
  assert_string_not_equal(a.label, b.label);
  assert_string_not_equal(a.label, c.label);
  assert_memory_not_equal(a.key, c.key, sizeof(a.key));
  /* A server record does not open as a client record (associated data). */
  char sealed[RDV_SEALED_MAX + 1], plain[RDV_RECORD_MAX_SIZE + 1];
  size_t n, m;
  assert_int_equal(rdv_seal_record(&a, "server", "{}", 2, sealed, sizeof(sealed), &n), 0);
  assert_int_equal(rdv_seal_open(&a, "server", sealed, n, plain, sizeof(plain), &m), 0);
  assert_int_equal(m, 2);
  assert_int_equal(rdv_seal_open(&a, "client", sealed, n, plain, sizeof(plain), &m),
                   QP_ERR_RENDEZVOUS);
  sealed[n / 2] ^= 1; /* one altered character */
  assert_int_equal(rdv_seal_open(&a, "server", sealed, n, plain, sizeof(plain), &m),
                   QP_ERR_RENDEZVOUS);
  rdv_seal_wipe(&a);
  static const uint8_t zero[RDV_SEAL_KEY_LEN];
  assert_memory_equal(a.key, zero, sizeof(zero));
}

typedef struct create_side {
  qp_traverse_options opts;
  bool server;
  qp_portal_t *portal;
  int rc;
  char err[512];
} create_side_t;

static void *create_main(void *arg) {
  create_side_t *c = arg;
  c->rc = c->server ? qp_create_server(&c->opts, &c->portal)
                    : qp_create_client(&c->opts, &c->portal);
  snprintf(c->err, sizeof(c->err), "%s", c->rc ? qp_last_error() : "");
  return NULL;
}

/* The public API: qp_traverse_options.secret on both sides, a message. */
static void create_with_secret_connects(void **state) {
  (void)state;
  create_side_t side[2];
  pthread_t th[2];
  for (int i = 0; i < 2; i++) {
    memset(&side[i], 0, sizeof(side[i]));
    qp_traverse_options_init(&side[i].opts);
    side[i].opts.rendezvous = "mem:attack-rogue-create";
    side[i].opts.session = "create";
    side[i].opts.local_ip = "127.0.0.1"; /* traffic stays on loopback */
    side[i].opts.secret = SECRET;
    side[i].opts.punch_timeout_ms = 8000;
    side[i].server = i == 0;
    assert_int_equal(pthread_create(&th[i], NULL, create_main, &side[i]), 0);
  }
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  TU_RC_EQ(side[0].rc, QP_OK, side[0].err);
  TU_RC_EQ(side[1].rc, QP_OK, side[1].err);
  TU_QP_OK(qp_portal_send(side[1].portal, "sealed", 6, 2000));
  void *msg;
  size_t len;
  TU_QP_OK(qp_portal_recv(side[0].portal, &msg, &len, 2000));
  assert_int_equal(len, 6);
  assert_memory_equal(msg, "sealed", 6);
  qp_free(msg);
  qp_portal_destroy(side[0].portal);
  qp_portal_destroy(side[1].portal);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(keys_are_derived_from_secret_and_session),
      cmocka_unit_test(without_secret_the_writer_chooses_the_peer),
      cmocka_unit_test(with_secret_both_sides_refuse_the_writer),
      cmocka_unit_test(sealed_pair_meets_and_the_store_shows_nothing),
      cmocka_unit_test(create_with_secret_connects),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
