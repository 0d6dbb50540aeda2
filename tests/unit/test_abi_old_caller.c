/* ctest: labels=loopback,iothread */
/*
 * test_abi_old_caller.c: the ABI rule of quic_portal.h. A program built
 * against an older header has smaller options structs (fields are only
 * appended); the library must write and read only struct_size bytes of
 * them and give the fields it appended their defaults. The "old" structs
 * below are the layouts before the newest fields; the static asserts keep
 * them in step with the header (a field moved or retyped breaks the rule
 * and the build). They live on the heap at their exact size, so a read past
 * their end shows under AddressSanitizer.
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

/* qp_transport_options before max_message_size was appended. */
typedef struct old_transport_options {
  size_t struct_size;
  double max_idle_timeout_secs;
  double keep_alive_interval_secs;
  qp_cc congestion_controller;
  uint64_t initial_window;
  uint64_t conn_receive_window;
  uint64_t stream_receive_window;
  uint64_t send_window;
  uint32_t initial_rtt_ms;
  uint32_t max_concurrent_streams;
  uint32_t max_udp_payload;
  bool mtu_discovery;
} old_transport_options;

/* qp_traverse_options before the fields after hard_nat_max_probes. */
typedef struct old_traverse_options {
  size_t struct_size;
  const char *rendezvous;
  const qp_rendezvous_callbacks *callbacks;
  void *callbacks_user;
  const char *session;
  uint16_t local_port;
  const char *const *stun_servers;
  size_t stun_server_count;
  int punch_timeout_ms;
  bool no_pin;
  const qp_transport_options *transport;
  bool (*cancel)(void *user);
  void *cancel_user;
  int hard_nat_sockets;
  int hard_nat_probe_rate;
  int hard_nat_max_probes;
} old_traverse_options;

#define SAME_FIELD(old, cur, f)                                                \
  _Static_assert(offsetof(old, f) == offsetof(cur, f), #f " moved")
SAME_FIELD(old_transport_options, qp_transport_options, struct_size);
SAME_FIELD(old_transport_options, qp_transport_options, keep_alive_interval_secs);
SAME_FIELD(old_transport_options, qp_transport_options, congestion_controller);
SAME_FIELD(old_transport_options, qp_transport_options, send_window);
SAME_FIELD(old_transport_options, qp_transport_options, max_udp_payload);
SAME_FIELD(old_transport_options, qp_transport_options, mtu_discovery);
SAME_FIELD(old_traverse_options, qp_traverse_options, rendezvous);
SAME_FIELD(old_traverse_options, qp_traverse_options, session);
SAME_FIELD(old_traverse_options, qp_traverse_options, local_port);
SAME_FIELD(old_traverse_options, qp_traverse_options, stun_server_count);
SAME_FIELD(old_traverse_options, qp_traverse_options, transport);
SAME_FIELD(old_traverse_options, qp_traverse_options, cancel_user);
SAME_FIELD(old_traverse_options, qp_traverse_options, hard_nat_max_probes);
_Static_assert(sizeof(old_transport_options) < sizeof(qp_transport_options),
               "the current struct has appended fields");
_Static_assert(sizeof(old_traverse_options) < sizeof(qp_traverse_options),
               "the current struct has appended fields");

#define CANARY 0xA5
#define CANARY_BYTES 64

static bool canary_intact(const uint8_t *p) {
  for (size_t i = 0; i < CANARY_BYTES; i++)
    if (p[i] != CANARY)
      return false;
  return true;
}

static void init_writes_only_the_callers_size(void **state) {
  (void)state;
  uint8_t buf[sizeof(qp_traverse_options) + CANARY_BYTES];
  memset(buf, CANARY, sizeof(buf));
  old_transport_options *t = (old_transport_options *)buf;
  qp_transport_options_init_size((qp_transport_options *)t, sizeof(*t));
  assert_true(canary_intact(buf + sizeof(*t)));
  assert_int_equal(t->struct_size, sizeof(*t));
  assert_true(t->max_idle_timeout_secs == 10.0);
  assert_int_equal(t->max_udp_payload, 1200);

  memset(buf, CANARY, sizeof(buf));
  old_traverse_options *o = (old_traverse_options *)buf;
  qp_traverse_options_init_size((qp_traverse_options *)o, sizeof(*o));
  assert_true(canary_intact(buf + sizeof(*o)));
  assert_int_equal(o->struct_size, sizeof(*o));
  assert_int_equal(o->punch_timeout_ms, 15000);
  assert_string_equal(o->session, "default");

  /* The macro passes this header's size. */
  qp_transport_options cur;
  qp_transport_options_init(&cur);
  assert_int_equal(cur.struct_size, sizeof(cur));
}

/* listen on a thread with the old struct, connect with it, one message. */
typedef struct listen_arg {
  qp_portal_t *portal;
  const qp_transport_options *opts;
  int rc;
} listen_arg_t;

static void *listen_main(void *arg) {
  listen_arg_t *l = arg;
  l->rc = qp_portal_listen(l->portal, "127.0.0.1", 0, l->opts, 5000);
  return NULL;
}

static void old_transport_caller_connects(void **state) {
  (void)state;
  old_transport_options *t = malloc(sizeof(*t)); /* exact size: ASan sees over-reads */
  assert_non_null(t);
  qp_transport_options_init_size((qp_transport_options *)t, sizeof(*t));
  t->max_idle_timeout_secs = 5;
  const qp_transport_options *opts = (const qp_transport_options *)t;
  TU_QP_OK(qp_transport_options_check(opts));

  qp_portal_t *server = NULL, *client = NULL;
  TU_QP_OK(qp_portal_create(&server));
  TU_QP_OK(qp_portal_create(&client));
  listen_arg_t l = {.portal = server, .opts = opts};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, listen_main, &l), 0);
  uint16_t port = 0;
  for (int64_t end = tu_now_ms() + 5000; port == 0 && tu_now_ms() < end;) {
    port = qp_portal_local_port(server);
    if (port == 0)
      nanosleep(&(struct timespec){.tv_nsec = 5 * 1000000L}, NULL);
  }
  assert_true(port != 0);
  TU_QP_OK(qp_portal_connect(client, "127.0.0.1", port, 0, opts, 5000));
  pthread_join(th, NULL);
  TU_RC_EQ(l.rc, QP_OK, qp_last_error());
  tu_send_ok(client, "old", 3, 5000);
  tu_recv_expect(server, "old", 3, 5000);
  qp_portal_destroy(client);
  qp_portal_destroy(server);
  free(t);
}

typedef struct side {
  old_traverse_options *opts;
  bool server;
  qp_portal_t *portal;
  int rc;
  char err[512];
} side_t;

static void *side_main(void *arg) {
  side_t *s = arg;
  const qp_traverse_options *o = (const qp_traverse_options *)s->opts;
  s->rc = s->server ? qp_create_server(o, &s->portal) : qp_create_client(o, &s->portal);
  snprintf(s->err, sizeof(s->err), "%s", qp_last_error());
  return NULL;
}

static old_traverse_options *old_traverse(const char *session) {
  old_traverse_options *o = malloc(sizeof(*o)); /* exact size */
  assert_non_null(o);
  qp_traverse_options_init_size((qp_traverse_options *)o, sizeof(*o));
  o->rendezvous = "mem:abi-old-caller";
  o->session = session;
  o->punch_timeout_ms = 5000;
  return o;
}

static void old_traverse_caller_meets(void **state) {
  (void)state;
  side_t srv = {.opts = old_traverse("old"), .server = true};
  side_t cli = {.opts = old_traverse("old"), .server = false};
  pthread_t a, b;
  assert_int_equal(pthread_create(&a, NULL, side_main, &srv), 0);
  assert_int_equal(pthread_create(&b, NULL, side_main, &cli), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  TU_RC_EQ(srv.rc, QP_OK, srv.err);
  TU_RC_EQ(cli.rc, QP_OK, cli.err);
  tu_send_ok(cli.portal, "hello", 5, 5000);
  tu_recv_expect(srv.portal, "hello", 5, 5000);
  qp_portal_destroy(cli.portal);
  qp_portal_destroy(srv.portal);
  free(srv.opts);
  free(cli.opts);
}

/* A newer caller: its struct has a field this library does not know. */
typedef struct newer_transport_options {
  qp_transport_options known;
  uint64_t future_field;
} newer_transport_options;

static void newer_caller_and_uninitialized_struct(void **state) {
  (void)state;
  newer_transport_options *n = malloc(sizeof(*n));
  assert_non_null(n);
  memset(n, CANARY, sizeof(*n));
  qp_transport_options_init_size(&n->known, sizeof(*n));
  assert_int_equal(n->future_field, 0); /* the unknown tail is zeroed */
  n->future_field = UINT64_C(0xdeadbeef);
  TU_QP_OK(qp_transport_options_check(&n->known));
  free(n);

  qp_transport_options zero;
  memset(&zero, 0, sizeof(zero));
  zero.max_idle_timeout_secs = 10;
  assert_int_equal(qp_transport_options_check(&zero), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "qp_transport_options_init");
  qp_traverse_options tzero;
  memset(&tzero, 0, sizeof(tzero));
  tzero.rendezvous = "mem:abi-zero";
  qp_portal_t *p = NULL;
  assert_int_equal(qp_create_server(&tzero, &p), QP_ERR_INVALID);
  TU_ASSERT_CONTAINS(qp_last_error(), "qp_traverse_options_init");
  assert_null(p);
}

static void version_numbers(void **state) {
  (void)state;
  char want[32];
  snprintf(want, sizeof(want), "%d.%d.%d", QP_VERSION_MAJOR, QP_VERSION_MINOR,
           QP_VERSION_PATCH);
  assert_string_equal(QP_VERSION, want);
  assert_string_equal(qp_version(), QP_VERSION);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(init_writes_only_the_callers_size),
      cmocka_unit_test(old_transport_caller_connects),
      cmocka_unit_test(old_traverse_caller_meets),
      cmocka_unit_test(newer_caller_and_uninitialized_struct),
      cmocka_unit_test(version_numbers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
