/* ctest: labels=loopback,iothread */
/*
 * Garbage datagrams from a stranger's socket: random bytes of many sizes,
 * truncated QUIC long headers, Initial-looking packets with a corrupted
 * payload, short headers with random connection IDs, STUN-looking packets.
 * Sent to a listening portal, a real client still connects; sent to either
 * end of a connection, the connection keeps working.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

enum { BURST = 2000 };

/* Deterministic generator: a failure replays the same datagrams. */
typedef struct rng {
  uint64_t s;
} rng_t;

static uint32_t rng_next(rng_t *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (uint32_t)(r->s >> 11);
}

static void rng_fill(rng_t *r, uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)rng_next(r);
}

/* QUIC variable-length integer (RFC 9000 section 16), 1/2/4 bytes. */
static size_t put_varint(uint8_t *p, uint32_t v) {
  if (v < 64) {
    p[0] = (uint8_t)v;
    return 1;
  }
  if (v < 16384) {
    p[0] = (uint8_t)(0x40 | v >> 8);
    p[1] = (uint8_t)v;
    return 2;
  }
  p[0] = (uint8_t)(0x80 | v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
  return 4;
}

/* A long header (RFC 9000 section 17.2): type bits, version, CIDs, and for
 * Initial a token length; returns the header length. */
static size_t long_header(rng_t *r, uint8_t *p, uint8_t type,
                          uint32_t version) {
  size_t k = 0;
  p[k++] = (uint8_t)(0xC0 | type << 4 | (rng_next(r) & 0x0F));
  p[k++] = (uint8_t)(version >> 24);
  p[k++] = (uint8_t)(version >> 16);
  p[k++] = (uint8_t)(version >> 8);
  p[k++] = (uint8_t)version;
  uint8_t dcid_len = (uint8_t)(8 + rng_next(r) % 13); /* 8..20 */
  p[k++] = dcid_len;
  rng_fill(r, p + k, dcid_len);
  k += dcid_len;
  uint8_t scid_len = (uint8_t)(rng_next(r) % 21);
  p[k++] = scid_len;
  rng_fill(r, p + k, scid_len);
  k += scid_len;
  if (type == 0) /* Initial: token length 0 */
    p[k++] = 0;
  return k;
}

static const size_t random_sizes[] = {0,    1,    2,     3,     4,    5,
                                      7,    8,    16,    20,    21,   40,
                                      64,   100,  500,   1199,  1200, 1201,
                                      1252, 1350, 1452,  1472,  1500, 2048,
                                      4096, 9000, 16384, 16385, 65000, 65507};

/* Build garbage datagram number i into buf (65536 bytes); returns its size. */
static size_t make_garbage(rng_t *r, uint32_t i, uint8_t *buf) {
  size_t n, k;
  switch (i % 9) {
  case 0: /* random bytes, many sizes */
  default:
    n = random_sizes[(i / 9) % (sizeof(random_sizes) / sizeof(size_t))];
    rng_fill(r, buf, n);
    return n;
  case 1: /* truncated long header of any type */
    k = long_header(r, buf, (uint8_t)(rng_next(r) % 4), 0x00000001);
    return 1 + rng_next(r) % k;
  case 2: /* Initial-looking: valid header, length, corrupted payload */
  case 3:
    k = long_header(r, buf, 0, 0x00000001);
    n = 1200;
    k += put_varint(buf + k, (uint32_t)(n - k - 2));
    rng_fill(r, buf + k, n - k);
    return n;
  case 4: /* short header (fixed bit set), random DCID and payload */
  case 5:
    n = 21 + rng_next(r) % 1400;
    rng_fill(r, buf, n);
    buf[0] = (uint8_t)(0x40 | (buf[0] & 0x3F));
    return n;
  case 6: /* Handshake / 0-RTT / Retry types, random body, 1200 bytes */
    k = long_header(r, buf, (uint8_t)(1 + rng_next(r) % 3), 0x00000001);
    n = 1200;
    rng_fill(r, buf + k, n - k);
    return n;
  case 7: /* version negotiation or an unknown version */
    k = long_header(r, buf, 0, (rng_next(r) & 1) ? 0 : 0x1a2a3a4a);
    n = k + rng_next(r) % 1200;
    rng_fill(r, buf + k, n - k);
    return n < 1200 && buf[1] != 0 ? 1200 : n;
  case 8: /* STUN-looking: Binding request header with the magic cookie */
    n = 20 + 4 * (rng_next(r) % 50);
    rng_fill(r, buf, n);
    buf[0] = 0x00;
    buf[1] = 0x01;
    buf[2] = (uint8_t)((n - 20) >> 8);
    buf[3] = (uint8_t)(n - 20);
    buf[4] = 0x21;
    buf[5] = 0x12;
    buf[6] = 0xA4;
    buf[7] = 0x42;
    if (rng_next(r) & 1)
      n = 1 + rng_next(r) % n; /* truncated */
    return n;
  }
}

typedef struct sprayer {
  uint16_t port;
  uint64_t seed;
  uint32_t max_datagrams;
  atomic_int *stop; /* NULL: send max_datagrams and return */
  uint32_t sent;
  uint32_t send_errors;
} sprayer_t;

static void *spray_main(void *arg) {
  sprayer_t *s = arg;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    return NULL;
  int sndbuf = 4 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  struct sockaddr_in to = {.sin_family = AF_INET,
                           .sin_port = htons(s->port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  uint8_t *buf = malloc(65536);
  rng_t r = {.s = s->seed};
  for (uint32_t i = 0; buf != NULL && i < s->max_datagrams; i++) {
    if (s->stop != NULL && atomic_load(s->stop))
      break;
    size_t n = make_garbage(&r, i, buf);
    if (sendto(fd, buf, n, 0, (struct sockaddr *)&to, sizeof(to)) < 0)
      s->send_errors++; /* e.g. ECONNREFUSED from an earlier ICMP */
    else
      s->sent++;
  }
  free(buf);
  close(fd);
  return NULL;
}

static void spray(uint16_t port, uint64_t seed) {
  sprayer_t s = {.port = port, .seed = seed, .max_datagrams = BURST};
  spray_main(&s);
  if (s.sent < BURST / 2)
    fail_msg("only %u of %d garbage datagrams could be sent to port %u", s.sent,
             BURST, port);
}

static void echo_check(qp_portal_t *client, uint32_t seed, const char *when) {
  print_message("echo check %s\n", when);
  tu_echo_roundtrip(client, 64 * 1024, seed, 10000);
}

static void garbage_to_listening_port_then_real_client_connects(void **state) {
  (void)state;
  qp_portal_t *server = NULL, *client = NULL;
  TU_QP_OK(qp_portal_create(&server));
  TU_QP_OK(qp_portal_create(&client));
  tu_listener_t l;
  uint16_t port = tu_listen_start(&l, server, "127.0.0.1", 0, NULL, 20000);
  if (port == 0) {
    tu_listen_join(&l);
    fail_msg("listen did not bind: %s: %s", qp_err_name(l.rc), l.error);
  }
  for (uint64_t burst = 1; burst <= 2; burst++)
    spray(port, 0x9E3779B97F4A7C15ull * burst);
  /* The listener is still waiting for its one real client. */
  assert_int_equal(atomic_load(&l.done), 0);
  assert_false(qp_portal_is_connected(server));
  int rc = qp_portal_connect(client, "127.0.0.1", port, 0, NULL, 5000);
  const char *err = qp_last_error();
  tu_listen_join(&l);
  TU_RC_EQ(l.rc, QP_OK, l.error);
  TU_RC_EQ(rc, QP_OK, err);
  tu_echo_t echo;
  tu_echo_start(&echo, server, 10000);
  echo_check(client, 1, "after garbage to the listening port");
  TU_QP_OK(qp_portal_close(client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  qp_portal_destroy(client);
  qp_portal_destroy(server);
}

static void garbage_to_both_ends_of_a_connection_changes_nothing(
    void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, 20000);
  uint16_t client_port = qp_portal_local_port(pair.client);
  assert_true(client_port != 0);
  echo_check(pair.client, 10, "before garbage");
  for (uint32_t burst = 0; burst < 3; burst++) {
    spray(pair.port, 1000 + burst);
    assert_true(qp_portal_is_connected(pair.server));
    echo_check(pair.client, 20 + burst, "after a burst to the server");
    spray(client_port, 2000 + burst);
    assert_true(qp_portal_is_connected(pair.client));
    echo_check(pair.client, 30 + burst, "after a burst to the client");
  }
  TU_QP_OK(qp_portal_close(pair.client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  assert_int_equal(echo.messages, 7);
  tu_pair_destroy(&pair);
}

/* Garbage keeps coming to both ends while 16 MiB are echoed. */
static void garbage_during_transfer_changes_nothing(void **state) {
  (void)state;
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, 20000);
  atomic_int stop = 0;
  sprayer_t s[2] = {
      {.port = pair.port, .seed = 77, .max_datagrams = 50000, .stop = &stop},
      {.port = qp_portal_local_port(pair.client), .seed = 78,
       .max_datagrams = 50000, .stop = &stop}};
  pthread_t th[2];
  for (int i = 0; i < 2; i++)
    assert_int_equal(pthread_create(&th[i], NULL, spray_main, &s[i]), 0);
  int64_t start = tu_now_ms();
  for (uint32_t i = 0; i < 16; i++)
    tu_echo_roundtrip(pair.client, 1024 * 1024, 300 + i, 20000);
  atomic_store(&stop, 1);
  for (int i = 0; i < 2; i++)
    pthread_join(th[i], NULL);
  print_message("16 x 1 MiB echoed in %lld ms while %u + %u garbage "
                "datagrams arrived\n",
                (long long)(tu_now_ms() - start), s[0].sent, s[1].sent);
  assert_true(s[0].sent > 0 && s[1].sent > 0);
  TU_QP_OK(qp_portal_close(pair.client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  tu_pair_destroy(&pair);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(garbage_to_listening_port_then_real_client_connects),
      cmocka_unit_test(garbage_to_both_ends_of_a_connection_changes_nothing),
      cmocka_unit_test(garbage_during_transfer_changes_nothing),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
