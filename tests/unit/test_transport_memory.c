/* ctest: labels=unit,iothread */
/*
 * The sans-I/O transport on its own: two transports exchange datagrams in
 * memory under a fake clock, with no socket and no thread. Loss is a seeded
 * generator, so every run replays the same drops.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "portal/options.h"
#include "tls/tls_identity.h"
#include "transport/transport.h"
#include "tu.h"

/* Datagrams in flight between the two ends, per direction. */
#define WIRE_SLOTS 4096
/* Steps of the fake clock before a test gives up: bounds every loop. */
#define MAX_STEPS 200000

typedef struct wire {
  uint8_t *data[WIRE_SLOTS];
  size_t len[WIRE_SLOTS];
  size_t count;
  uint32_t rng;       /* xorshift state */
  unsigned drop_pct;  /* 0-100 */
  size_t dropped;
} wire_t;

typedef struct pair {
  tls_identity_t *id_client, *id_server;
  transport_config_t cfg_client, cfg_server;
  transport_t *client, *server;
  wire_t to_server, to_client;
  uint64_t now;
} pair_t;

static bool drop(wire_t *w) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 17;
  w->rng ^= w->rng << 5;
  return w->rng % 100 < w->drop_pct;
}

static int capture(void *ctx, const udp_addr_t *to, const uint8_t *buf, size_t len,
                   size_t seg) {
  (void)to;
  wire_t *w = ctx;
  for (size_t off = 0; off < len; off += seg) {
    size_t n = len - off < seg ? len - off : seg;
    if (drop(w)) {
      w->dropped++;
      continue;
    }
    assert_true(w->count < WIRE_SLOTS);
    w->data[w->count] = malloc(n);
    memcpy(w->data[w->count], buf + off, n);
    w->len[w->count++] = n;
  }
  return 0;
}

static void deliver(pair_t *p, wire_t *w, bool to_server) {
  const udp_addr_t *from = to_server ? &p->cfg_client.local : &p->cfg_server.local;
  for (size_t i = 0; i < w->count; i++) {
    if (to_server && p->server == NULL) {
      transport_config_t cfg = p->cfg_server;
      cfg.remote = *from;
      assert_int_equal(transport_create_server(&cfg, w->data[i], w->len[i], p->now,
                                               &p->server), 0);
    }
    transport_read(to_server ? p->server : p->client, from, w->data[i], w->len[i],
                   p->now);
    free(w->data[i]);
  }
  w->count = 0;
}

static void expire(transport_t *t, uint64_t now) {
  if (t && transport_expiry(t) <= now)
    transport_handle_expiry(t, now);
}

/* One step: flush both ends, deliver, run timers, advance the clock. */
static void step(pair_t *p) {
  transport_flush(p->client, p->now, capture, &p->to_server);
  if (p->server)
    transport_flush(p->server, p->now, capture, &p->to_client);
  deliver(p, &p->to_server, true);
  deliver(p, &p->to_client, false);
  p->now += 100 * 1000; /* 100 us: a LAN-like one-way delay */
  expire(p->client, p->now);
  expire(p->server, p->now);
}

static void addr(udp_addr_t *a, uint16_t port) {
  assert_int_equal(udp_addr_from_ip("10.0.0.1", port, a), 0);
}

static void pair_init(pair_t *p, unsigned drop_pct) {
  memset(p, 0, sizeof(*p));
  assert_int_equal(tls_identity_create(&p->id_client), 0);
  assert_int_equal(tls_identity_create(&p->id_server), 0);
  p->now = 1000000000ull;
  for (int i = 0; i < 2; i++) {
    transport_config_t *c = i ? &p->cfg_server : &p->cfg_client;
    qp_transport_options_init(&c->opts);
    c->is_server = i == 1;
    c->identity = i ? p->id_server : p->id_client;
    addr(&c->local, i ? 4433 : 5555);
  }
  p->cfg_client.remote = p->cfg_server.local;
  p->to_server = (wire_t){.rng = 12345, .drop_pct = drop_pct};
  p->to_client = (wire_t){.rng = 67890, .drop_pct = drop_pct};
}

static void pair_start(pair_t *p) {
  assert_int_equal(transport_create_client(&p->cfg_client, p->now, &p->client), 0);
}

static bool established(pair_t *p) {
  return p->server && transport_state(p->client) == TRANSPORT_ESTABLISHED &&
         transport_state(p->server) == TRANSPORT_ESTABLISHED;
}

static void pair_free(pair_t *p) {
  transport_destroy(p->client);
  transport_destroy(p->server);
  tls_identity_destroy(p->id_client);
  tls_identity_destroy(p->id_server);
  for (size_t i = 0; i < p->to_server.count; i++)
    free(p->to_server.data[i]);
  for (size_t i = 0; i < p->to_client.count; i++)
    free(p->to_client.data[i]);
}

static void run_until_established(pair_t *p) {
  for (int i = 0; i < MAX_STEPS && !established(p); i++)
    step(p);
  assert_true(established(p));
}

/* Send one message of len bytes client->server and wait for it whole. */
static void transfer(pair_t *p, size_t len) {
  uint8_t *buf = malloc(len ? len : 1);
  tu_fill_pattern(buf, len, (uint32_t)len);
  assert_int_equal(transport_queue(p->client, transport_msg_new(buf, len)), 0);
  uint8_t *got = NULL;
  size_t got_len = 0;
  bool credit;
  for (int i = 0; i < MAX_STEPS && got == NULL; i++) {
    step(p);
    if (!transport_pop(p->server, &got, &got_len, &credit))
      got = NULL;
  }
  assert_non_null(got);
  assert_int_equal(got_len, len);
  assert_memory_equal(got, buf, len);
  free(got);
  free(buf);
}

static void handshake_and_message_in_memory(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  pair_start(&p);
  run_until_established(&p);
  transfer(&p, 0);
  transfer(&p, 1);
  transfer(&p, 100000);
  pair_free(&p);
}

static void one_mebibyte_survives_ten_percent_loss(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 10);
  pair_start(&p);
  run_until_established(&p);
  transfer(&p, 1 << 20);
  assert_true(p.to_server.dropped > 50); /* the loss was real */
  pair_free(&p);
}

static void wrong_pin_fails_in_memory(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  p.cfg_client.has_pin = true;
  memset(p.cfg_client.pin, 0xab, sizeof(p.cfg_client.pin));
  pair_start(&p);
  for (int i = 0; i < 2000 && transport_state(p.client) != TRANSPORT_CLOSED; i++)
    step(&p);
  const char *msg;
  assert_int_equal(transport_error(p.client, &msg), QP_ERR_PEER_VERIFY);
  assert_non_null(strstr(msg, "does not match the pinned fingerprint"));
  for (int i = 0; i < 2000 && transport_state(p.server) != TRANSPORT_CLOSED; i++)
    step(&p);
  assert_int_equal(transport_state(p.server), TRANSPORT_CLOSED);
  assert_int_equal(transport_error(p.server, &msg), QP_ERR_HANDSHAKE);
  pair_free(&p);
}

static void reader_backpressure_withholds_credit(void **state) {
  (void)state;
  pair_t p;
  pair_init(&p, 0);
  p.cfg_server.opts.stream_receive_window = 64 * 1024;
  p.cfg_server.opts.conn_receive_window = 128 * 1024;
  pair_start(&p);
  run_until_established(&p);
  /* 40 messages of 16 KiB = 640 KiB, ten times what the server buffers. */
  static uint8_t chunk[16384];
  for (int i = 0; i < 40; i++)
    assert_int_equal(transport_queue(p.client, transport_msg_new(chunk, sizeof(chunk))), 0);
  for (int i = 0; i < 20000; i++)
    step(&p);
  /* Nobody read: the sender must be held back, not the receiver's memory. */
  assert_true(transport_unacked_bytes(p.client) > 300 * 1024);
  int taken = 0;
  uint8_t *m;
  size_t n;
  bool credit;
  for (int i = 0; i < MAX_STEPS && taken < 40; i++) {
    while (transport_pop(p.server, &m, &n, &credit)) {
      assert_int_equal(n, sizeof(chunk));
      free(m);
      taken++;
    }
    step(&p);
  }
  assert_int_equal(taken, 40);
  pair_free(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(handshake_and_message_in_memory),
      cmocka_unit_test(one_mebibyte_survives_ten_percent_loss),
      cmocka_unit_test(wrong_pin_fails_in_memory),
      cmocka_unit_test(reader_backpressure_withholds_credit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
