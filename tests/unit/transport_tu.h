/*
 * transport_tu.h: two sans-I/O transports exchanging datagrams in memory
 * under a fake clock, with no socket and no thread. Loss is a seeded
 * generator, so every run replays the same drops. Shared by
 * test_transport_memory.c and the transport attack tests; include after
 * cmocka.h.
 */
#ifndef QP_TRANSPORT_TU_H
#define QP_TRANSPORT_TU_H

#include <stdlib.h>
#include <string.h>

#include "portal/options.h"
#include "tls/tls_identity.h"
#include "transport/transport.h"

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

static inline bool drop(wire_t *w) {
  w->rng ^= w->rng << 13;
  w->rng ^= w->rng >> 17;
  w->rng ^= w->rng << 5;
  return w->rng % 100 < w->drop_pct;
}

static inline int capture(void *ctx, const udp_addr_t *to, const uint8_t *buf, size_t len,
                   size_t seg) {
  (void)to;
  wire_t *w = ctx;
  if (seg == 0)
    seg = len; /* one datagram (a path MTU probe goes out alone) */
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

static inline void deliver(pair_t *p, wire_t *w, bool to_server) {
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

static inline void expire(transport_t *t, uint64_t now) {
  if (t && transport_expiry(t) <= now)
    transport_handle_expiry(t, now);
}

/* One step: flush both ends, deliver, run timers, advance the clock. */
static inline void step(pair_t *p) {
  transport_flush(p->client, p->now, capture, &p->to_server);
  if (p->server)
    transport_flush(p->server, p->now, capture, &p->to_client);
  deliver(p, &p->to_server, true);
  deliver(p, &p->to_client, false);
  p->now += 100 * 1000; /* 100 us: a LAN-like one-way delay */
  expire(p->client, p->now);
  expire(p->server, p->now);
}

static inline void addr(udp_addr_t *a, uint16_t port) {
  assert_int_equal(udp_addr_from_ip("10.0.0.1", port, a), 0);
}

static inline void pair_init(pair_t *p, unsigned drop_pct) {
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

static inline void pair_start(pair_t *p) {
  assert_int_equal(transport_create_client(&p->cfg_client, p->now, &p->client), 0);
}

static inline bool established(pair_t *p) {
  return p->server && transport_state(p->client) == TRANSPORT_ESTABLISHED &&
         transport_state(p->server) == TRANSPORT_ESTABLISHED;
}

static inline void pair_free(pair_t *p) {
  transport_destroy(p->client);
  transport_destroy(p->server);
  tls_identity_destroy(p->id_client);
  tls_identity_destroy(p->id_server);
  for (size_t i = 0; i < p->to_server.count; i++)
    free(p->to_server.data[i]);
  for (size_t i = 0; i < p->to_client.count; i++)
    free(p->to_client.data[i]);
}

static inline void run_until_established(pair_t *p) {
  for (int i = 0; i < MAX_STEPS && !established(p); i++)
    step(p);
  assert_true(established(p));
}

#endif
