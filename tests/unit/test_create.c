/* ctest: labels=loopback,iothread */
/*
 * qp_create_server / qp_create_client end to end in one process: two threads
 * meet through a mem: rendezvous with host candidates on loopback, verify
 * each other's pinned certificate and exchange messages; a second server on
 * the same store serves a new client; errors are clear.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quic_portal.h"
#include "tu.h"

typedef struct side {
  qp_traverse_options opts;
  qp_portal_t *portal;
  int rc;
  char err[512];
  bool server;
} side_t;

static void *run_side(void *arg) {
  side_t *s = arg;
  s->rc = s->server ? qp_create_server(&s->opts, &s->portal)
                    : qp_create_client(&s->opts, &s->portal);
  snprintf(s->err, sizeof(s->err), "%s", qp_last_error());
  return NULL;
}

static void side_init(side_t *s, bool server, const char *url, const char *session) {
  memset(s, 0, sizeof(*s));
  qp_traverse_options_init(&s->opts);
  s->opts.rendezvous = url;
  s->opts.session = session;
  s->opts.punch_timeout_ms = 5000;
  s->opts.local_ip = "127.0.0.1"; /* traffic stays on loopback */
  s->server = server;
}

static void meet(side_t *srv, side_t *cli) {
  pthread_t t1, t2;
  pthread_create(&t1, NULL, run_side, srv);
  pthread_create(&t2, NULL, run_side, cli);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  if (srv->rc != QP_OK || cli->rc != QP_OK)
    print_error("server %s (%s) / client %s (%s)\n", qp_err_name(srv->rc), srv->err,
                qp_err_name(cli->rc), cli->err);
  assert_int_equal(srv->rc, QP_OK);
  assert_int_equal(cli->rc, QP_OK);
}

static void exchange(qp_portal_t *from, qp_portal_t *to, size_t len) {
  static uint8_t buf[1 << 20];
  tu_fill_pattern(buf, len, (uint32_t)len);
  TU_QP_OK(qp_portal_send(from, buf, len, 5000));
  void *m;
  size_t n;
  TU_QP_OK(qp_portal_recv(to, &m, &n, 5000));
  assert_int_equal(n, len);
  assert_memory_equal(m, buf, len);
  qp_free(m);
}

static void peers_meet_pin_and_talk(void **state) {
  (void)state;
  side_t srv, cli;
  side_init(&srv, true, "mem:create1", "s1");
  side_init(&cli, false, "mem:create1", "s1");
  meet(&srv, &cli);
  assert_true(qp_portal_is_connected(srv.portal));
  assert_true(qp_portal_is_connected(cli.portal));
  exchange(cli.portal, srv.portal, 1 << 20);
  exchange(srv.portal, cli.portal, 1000);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
}

/* The server side keeps serving: a second create_server on the same store
 * meets a new client and ignores the first session's records. */
static void second_server_on_same_store(void **state) {
  (void)state;
  for (int round = 0; round < 2; round++) {
    side_t srv, cli;
    side_init(&srv, true, "mem:create2", "shared");
    side_init(&cli, false, "mem:create2", "shared");
    meet(&srv, &cli);
    exchange(cli.portal, srv.portal, 100);
    TU_QP_OK(qp_portal_close(cli.portal, 2000));
    qp_portal_destroy(cli.portal);
    qp_portal_destroy(srv.portal);
  }
}

/* wait_timeout_ms bounds the wait for a peer that never comes. */
static void lonely_client_fails_within_timeout(void **state) {
  (void)state;
  side_t cli;
  side_init(&cli, false, "mem:create3", "nobody-home");
  cli.opts.wait_timeout_ms = 800;
  int64_t t0 = tu_now_ms();
  run_side(&cli);
  int64_t elapsed = tu_now_ms() - t0;
  print_message("lonely client: %s: %s\n", qp_err_name(cli.rc), cli.err);
  assert_int_equal(cli.rc, QP_ERR_TIMEOUT);
  assert_true(elapsed >= 700 && elapsed < 2500);
  assert_non_null(strstr(cli.err, "wait timeout of 800 ms"));
  assert_non_null(strstr(cli.err, "\"server\""));
}

/* By default a side waits for its peer without limit, and punch_timeout_ms
 * counts only from when the peer's record appears: a server that started
 * well over a punch timeout before its client still meets it. */
static void server_waits_longer_than_punch_timeout(void **state) {
  (void)state;
  side_t srv, cli;
  side_init(&srv, true, "mem:create-wait", "early-server");
  side_init(&cli, false, "mem:create-wait", "early-server");
  srv.opts.punch_timeout_ms = cli.opts.punch_timeout_ms = 1000;
  pthread_t ts, tc;
  int64_t t0 = tu_now_ms();
  pthread_create(&ts, NULL, run_side, &srv);
  /* The delay is the behavior under test: 2.5 punch timeouts. */
  struct timespec delay = {.tv_sec = 2, .tv_nsec = 500 * 1000 * 1000};
  nanosleep(&delay, NULL);
  pthread_create(&tc, NULL, run_side, &cli);
  pthread_join(ts, NULL);
  pthread_join(tc, NULL);
  print_message("server waited %lld ms: %s / %s\n", (long long)(tu_now_ms() - t0),
                srv.err, cli.err);
  assert_int_equal(srv.rc, QP_OK);
  assert_int_equal(cli.rc, QP_OK);
  exchange(cli.portal, srv.portal, 1000);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
}

static void bad_options_rejected(void **state) {
  (void)state;
  qp_portal_t *p = NULL;
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  TU_QP_ERR(qp_create_server(&o, &p), QP_ERR_INVALID); /* no rendezvous */
  assert_non_null(strstr(qp_last_error(), "rendezvous"));
  o.rendezvous = "ftp://nowhere";
  o.punch_timeout_ms = 500;
  assert_int_not_equal(qp_create_server(&o, &p), QP_OK);
  assert_null(p);
  o.rendezvous = "mem:x";
  o.punch_timeout_ms = 0;
  TU_QP_ERR(qp_create_client(&o, &p), QP_ERR_INVALID);
  TU_QP_ERR(qp_create_client(NULL, &p), QP_ERR_INVALID);
}

/* A caller-supplied store (the path the Python package takes) that can
 * tamper with the server's published fingerprint on the way to the client. */
#define STORE_SLOTS 16
typedef struct store {
  pthread_mutex_t lock;
  char *keys[STORE_SLOTS];
  char *values[STORE_SLOTS];
  size_t lens[STORE_SLOTS];
  bool tamper;
  int tampered;
} store_t;

static int slot_of(store_t *st, const char *key, bool create) {
  for (int i = 0; i < STORE_SLOTS; i++)
    if (st->keys[i] && strcmp(st->keys[i], key) == 0)
      return i;
  for (int i = 0; create && i < STORE_SLOTS; i++)
    if (st->keys[i] == NULL) {
      st->keys[i] = strdup(key);
      return i;
    }
  return -1;
}

static int st_put(void *user, const char *key, const void *value, size_t len) {
  store_t *st = user;
  pthread_mutex_lock(&st->lock);
  int i = slot_of(st, key, true);
  if (i >= 0) {
    free(st->values[i]);
    st->values[i] = malloc(len + 1);
    memcpy(st->values[i], value, len);
    st->values[i][len] = '\0';
    st->lens[i] = len;
  }
  pthread_mutex_unlock(&st->lock);
  return i >= 0 ? 0 : -1;
}

static int st_get(void *user, const char *key, char **value, size_t *len) {
  store_t *st = user;
  pthread_mutex_lock(&st->lock);
  int i = slot_of(st, key, false);
  int found = i >= 0 && st->values[i] != NULL;
  if (found) {
    *value = malloc(st->lens[i] + 1);
    memcpy(*value, st->values[i], st->lens[i] + 1);
    *len = st->lens[i];
    char *fp = strstr(*value, "\"fingerprint\":\"");
    size_t klen = strlen(key);
    if (st->tamper && fp && klen >= 7 && strcmp(key + klen - 7, "/server") == 0) {
      char *digit = fp + strlen("\"fingerprint\":\"");
      *digit = *digit == '0' ? '1' : '0';
      st->tampered++;
    }
  }
  pthread_mutex_unlock(&st->lock);
  return found;
}

static int st_del(void *user, const char *key) {
  store_t *st = user;
  pthread_mutex_lock(&st->lock);
  int i = slot_of(st, key, false);
  if (i >= 0) {
    free(st->values[i]);
    st->values[i] = NULL;
  }
  pthread_mutex_unlock(&st->lock);
  return 0;
}

static void store_free(store_t *st) {
  for (int i = 0; i < STORE_SLOTS; i++) {
    free(st->keys[i]);
    free(st->values[i]);
  }
}

static const qp_rendezvous_callbacks store_callbacks = {st_put, st_get, st_del};

static void use_store(side_t *s, store_t *st) {
  s->opts.rendezvous = NULL;
  s->opts.callbacks = &store_callbacks;
  s->opts.callbacks_user = st;
}

static void callbacks_store_works(void **state) {
  (void)state;
  store_t st = {.lock = PTHREAD_MUTEX_INITIALIZER};
  side_t srv, cli;
  side_init(&srv, true, NULL, "cb");
  side_init(&cli, false, NULL, "cb");
  use_store(&srv, &st);
  use_store(&cli, &st);
  meet(&srv, &cli);
  exchange(cli.portal, srv.portal, 5000);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
  store_free(&st);
}

/* A store that lies about the server's fingerprint: the pinned handshake
 * must fail on both sides. */
static void tampered_fingerprint_is_refused(void **state) {
  (void)state;
  store_t st = {.lock = PTHREAD_MUTEX_INITIALIZER, .tamper = true};
  side_t srv, cli;
  side_init(&srv, true, NULL, "tamper");
  side_init(&cli, false, NULL, "tamper");
  srv.opts.punch_timeout_ms = cli.opts.punch_timeout_ms = 3000;
  use_store(&srv, &st);
  use_store(&cli, &st);
  pthread_t t1, t2;
  pthread_create(&t1, NULL, run_side, &srv);
  pthread_create(&t2, NULL, run_side, &cli);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  assert_true(st.tampered > 0);
  print_message("client: %s: %s\nserver: %s: %s\n", qp_err_name(cli.rc), cli.err,
                qp_err_name(srv.rc), srv.err);
  assert_int_equal(cli.rc, QP_ERR_PEER_VERIFY);
  assert_non_null(strstr(cli.err, "does not match the pinned fingerprint"));
  assert_int_not_equal(srv.rc, QP_OK);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
  store_free(&st);
}

static bool cancel_now(void *user) { return *(volatile bool *)user; }

static void cancel_interrupts(void **state) {
  (void)state;
  side_t cli;
  side_init(&cli, false, "mem:create4", "cancelled");
  volatile bool flag = true;
  cli.opts.cancel = cancel_now;
  cli.opts.cancel_user = (void *)&flag;
  int64_t t0 = tu_now_ms();
  run_side(&cli);
  assert_int_equal(cli.rc, QP_ERR_INTERRUPTED);
  assert_true(tu_now_ms() - t0 < 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(peers_meet_pin_and_talk),
      cmocka_unit_test(second_server_on_same_store),
      cmocka_unit_test(lonely_client_fails_within_timeout),
      cmocka_unit_test(server_waits_longer_than_punch_timeout),
      cmocka_unit_test(bad_options_rejected),
      cmocka_unit_test(cancel_interrupts),
      cmocka_unit_test(callbacks_store_works),
      cmocka_unit_test(tampered_fingerprint_is_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
