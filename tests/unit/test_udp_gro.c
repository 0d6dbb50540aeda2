/* ctest: labels=unit */
/* udp_recv with UDP GRO: a GSO batch sent over loopback reaches a GRO
 * socket as one train and comes out as the datagrams that were sent, each
 * with its bytes, its length (the last one shorter) and its sender, also
 * when trains of two senders and single datagrams share one receive call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "tu.h"
#include "udp/udp.h"

/* Bounded wait for the datagrams of one test to arrive on loopback. */
#define GRO_TEST_WAIT_MS 2000
#define SEG 1200

typedef struct pair {
  udp_socket_t rx, tx, tx2;
  udp_recv_batch_t *batch;
} pair_t;

static void open_sock(udp_socket_t *s) {
  udp_addr_t any;
  TU_RC_EQ(udp_addr_from_ip("127.0.0.1", 0, &any), 0, qp_last_error());
  TU_RC_EQ(udp_socket_open(&any, s), 0, qp_last_error());
}

static int setup(void **state) {
  pair_t *p = calloc(1, sizeof(*p));
  p->batch = malloc(sizeof(*p->batch));
  open_sock(&p->rx);
  open_sock(&p->tx);
  open_sock(&p->tx2);
  *state = p;
  return 0;
}

static int teardown(void **state) {
  pair_t *p = *state;
  udp_socket_close(&p->rx);
  udp_socket_close(&p->tx);
  udp_socket_close(&p->tx2);
  free(p->batch);
  free(p);
  return 0;
}

/* Datagram k of sender tag: its first byte says who and which. */
static void fill(uint8_t *d, size_t len, uint8_t tag, size_t k) {
  tu_fill_pattern(d, len, (uint32_t)(tag * 1000 + k));
  d[0] = (uint8_t)(tag << 5 | (k & 31));
}

/* Receives until `want` datagrams came or the wait ends; copies lengths,
 * first bytes and senders' ports, checks every datagram's bytes. */
static size_t receive(pair_t *p, size_t want, size_t *lens, uint8_t *firsts,
                      uint16_t *ports) {
  size_t got = 0;
  int64_t end = tu_now_ms() + GRO_TEST_WAIT_MS;
  while (got < want && tu_now_ms() < end) {
    struct pollfd pf = {.fd = p->rx.fd, .events = POLLIN};
    poll(&pf, 1, 50);
    int n = udp_recv(&p->rx, p->batch);
    assert_true(n >= 0);
    for (int i = 0; i < n && got < want; i++, got++) {
      udp_datagram_t *d = &p->batch->dgrams[i];
      uint8_t tag = d->data[0] >> 5, k = d->data[0] & 31;
      uint8_t expect[SEG];
      fill(expect, d->len, tag, k);
      assert_memory_equal(d->data, expect, d->len);
      lens[got] = d->len;
      firsts[got] = d->data[0];
      ports[got] = udp_addr_port(&d->from);
    }
  }
  return got;
}

/* One GSO batch of `count` segments, the last `last` bytes long. */
static void send_batch(udp_socket_t *s, const udp_socket_t *to, uint8_t tag,
                       size_t count, size_t last) {
  static uint8_t buf[UDP_GSO_MAX_BYTES];
  size_t len = 0;
  for (size_t k = 0; k < count; k++) {
    size_t n = k + 1 == count ? last : SEG;
    fill(buf + len, n, tag, k);
    len += n;
  }
  TU_RC_EQ(udp_send(s, &to->local, buf, len, SEG), 0, qp_last_error());
}

static void one_train_split(void **state) {
  pair_t *p = *state;
  if (!p->tx.gso)
    TU_SKIP("this kernel refuses UDP GSO: no trains to split");
  print_message("receiver UDP_GRO %s\n", p->rx.gro ? "on" : "off (plain datagrams)");
  size_t lens[16];
  uint8_t firsts[16];
  uint16_t ports[16];
  send_batch(&p->tx, &p->rx, 1, 11, 500);
  assert_int_equal(receive(p, 11, lens, firsts, ports), 11);
  for (size_t k = 0; k < 11; k++) {
    assert_int_equal(lens[k], k == 10 ? 500 : SEG);
    assert_int_equal(firsts[k], 1 << 5 | k);
    assert_int_equal(ports[k], udp_addr_port(&p->tx.local));
  }
}

/* Trains and a single datagram of two senders in one receive: every
 * datagram keeps its own sender (a train's split must not overwrite the
 * address of a later message). */
static void senders_kept_apart(void **state) {
  pair_t *p = *state;
  if (!p->tx.gso)
    TU_SKIP("this kernel refuses UDP GSO: no trains to split");
  size_t lens[32];
  uint8_t firsts[32];
  uint16_t ports[32];
  send_batch(&p->tx, &p->rx, 1, 20, SEG);
  uint8_t one[300];
  fill(one, sizeof(one), 2, 0);
  TU_RC_EQ(udp_send(&p->tx2, &p->rx.local, one, sizeof(one), 0), 0,
           qp_last_error());
  send_batch(&p->tx2, &p->rx, 3, 4, 100);
  assert_int_equal(receive(p, 25, lens, firsts, ports), 25);
  for (size_t i = 0; i < 25; i++) {
    uint8_t tag = firsts[i] >> 5;
    uint16_t want = tag == 1 ? udp_addr_port(&p->tx.local)
                             : udp_addr_port(&p->tx2.local);
    assert_int_equal(ports[i], want);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(one_train_split, setup, teardown),
      cmocka_unit_test_setup_teardown(senders_kept_apart, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
