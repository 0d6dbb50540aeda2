/*
 * test_trav_tu.h: helpers for the traversal tests (test_trav_*.c): sockets
 * on 127.0.0.1 port 0, trav_run on a thread, and a scripted peer whose
 * credentials the test knows. Include after cmocka.h and tu.h.
 */
#ifndef QP_TEST_TRAV_TU_H
#define QP_TEST_TRAV_TU_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "rendezvous/rdv.h"
#include "rendezvous/rdv_record.h"
#include "stun/stun_msg.h"
#include "traversal/trav_internal.h"
#include "traversal/traversal.h"
#include "udp/udp.h"

/* Bind ip port 0; false if the address cannot be bound (no IPv6). */
static inline bool tt_open_at(udp_socket_t *s, const char *ip) {
  udp_addr_t a;
  assert_int_equal(udp_addr_from_ip(ip, 0, &a), 0);
  if (udp_socket_open(&a, s) != 0)
    return false;
  assert_true(udp_addr_port(&s->local) != 0);
  return true;
}

static inline void tt_open(udp_socket_t *s) {
  assert_true(tt_open_at(s, "127.0.0.1"));
}

/* One side: its socket, store handle, config and what trav_run returned. */
typedef struct tt_side {
  udp_socket_t sock;
  rdv_t *rdv;
  trav_config_t cfg;
  const char *stun[2];
  trav_result_t res;
  int rc;
  char err[512];
  int64_t started_ms, elapsed_ms;
  atomic_bool cancel;
  atomic_bool finished;
  pthread_t thread;
  bool running;
} tt_side_t;

static inline void tt_side_init(tt_side_t *s, const char *url,
                                const char *session, bool server,
                                int timeout_ms) {
  memset(s, 0, sizeof(*s));
  tt_open(&s->sock);
  assert_int_equal(rdv_open(url, session, &s->rdv), 0);
  s->cfg.is_server = server;
  s->cfg.session = session;
  s->cfg.punch_timeout_ms = timeout_ms;
  s->cfg.stun_servers = s->stun;
  memset(s->cfg.fingerprint, server ? 0x5e : 0xc1, TLS_FINGERPRINT_LEN);
}

static inline bool tt_cancel_cb(void *arg) {
  return atomic_load(&((tt_side_t *)arg)->cancel);
}

static inline void *tt_side_main(void *arg) {
  tt_side_t *s = arg;
  s->started_ms = tu_now_ms();
  s->rc = trav_run(&s->sock, s->rdv, &s->cfg, tt_cancel_cb, s, &s->res);
  s->elapsed_ms = tu_now_ms() - s->started_ms;
  snprintf(s->err, sizeof(s->err), "%s", s->rc ? qp_last_error() : "");
  atomic_store(&s->finished, true);
  return NULL;
}

static inline void tt_side_start(tt_side_t *s) {
  assert_int_equal(pthread_create(&s->thread, NULL, tt_side_main, s), 0);
  s->running = true;
}

static inline int tt_side_join(tt_side_t *s) {
  if (s->running)
    pthread_join(s->thread, NULL);
  s->running = false;
  return s->rc;
}

static inline void tt_side_cleanup(tt_side_t *s) {
  tt_side_join(s);
  trav_result_cleanup(&s->res);
  udp_socket_close(&s->sock);
  rdv_close(s->rdv);
}

/* Both returned 0 and each one's peer is the other's socket. */
static inline void tt_assert_agree(tt_side_t *server, tt_side_t *client) {
  TU_RC_EQ(server->rc, 0, server->err);
  TU_RC_EQ(client->rc, 0, client->err);
  assert_int_equal(udp_addr_port(&server->res.peer),
                   udp_addr_port(&client->sock.local));
  assert_int_equal(udp_addr_port(&client->res.peer),
                   udp_addr_port(&server->sock.local));
  assert_true(udp_addr_equal(&server->res.peer, &client->sock.local));
  assert_true(udp_addr_equal(&client->res.peer, &server->sock.local));
  assert_memory_equal(server->res.peer_fingerprint, client->cfg.fingerprint,
                      TLS_FINGERPRINT_LEN);
  assert_memory_equal(client->res.peer_fingerprint, server->cfg.fingerprint,
                      TLS_FINGERPRINT_LEN);
  assert_non_null(server->res.responder);
  assert_non_null(client->res.responder);
  TU_ASSERT_CONTAINS(server->res.summary, "winner");
  TU_ASSERT_CONTAINS(client->res.summary, "winner");
}

/* Publish a hand-made record under key (role from the key) with one host
 * candidate at port; time_ms = now + age_offset_ms. */
static inline void tt_put_record(rdv_t *rdv, const char *key,
                                 const char *session, const trav_creds_t *c,
                                 uint16_t port, int64_t age_offset_ms) {
  rdv_record rec;
  rdv_record_init(&rec, strcmp(key, "server") == 0 ? RDV_ROLE_SERVER
                                                   : RDV_ROLE_CLIENT,
                  session);
  snprintf(rec.ufrag, sizeof(rec.ufrag), "%s", c->ufrag);
  snprintf(rec.pwd, sizeof(rec.pwd), "%s", c->pwd);
  memset(rec.fingerprint, 'a', 64);
  rec.fingerprint[64] = '\0';
  assert_int_equal(rdv_record_add_candidate(&rec, RDV_CAND_HOST, "127.0.0.1",
                                            port, trav_cand_priority(
                                                RDV_CAND_HOST, 65535)),
                   0);
  rec.time_ms = (uint64_t)((int64_t)rdv_record_now_unix_ms() + age_offset_ms);
  char text[RDV_RECORD_MAX_SIZE + 1];
  size_t len;
  /* A client record answers the server record in the store, if any. */
  char *srv = NULL;
  rdv_record srec;
  if (rec.role == RDV_ROLE_CLIENT && rdv_get(rdv, "server", &srv, &len) == 1 &&
      rdv_record_decode(srv, len, &srec) == 0)
    snprintf(rec.answers, sizeof(rec.answers), "%s", srec.ufrag);
  free(srv);
  assert_int_equal(rdv_record_encode(&rec, text, sizeof(text), &len), 0);
  assert_int_equal(rdv_put(rdv, key, text, len), 0);
}

/* Wait until key holds a record that decodes; returns it in *rec. */
static inline bool tt_wait_record(rdv_t *rdv, const char *key, int timeout_ms,
                                  rdv_record *rec) {
  char *text = NULL;
  size_t len = 0;
  int rc = rdv_wait_get(rdv, key, rdv_now_ms() + timeout_ms, NULL, NULL,
                        &text, &len);
  if (rc != 1)
    return false;
  rc = rdv_record_decode(text, len, rec);
  free(text);
  return rc == 0;
}

static inline void tt_creds(trav_creds_t *c, const char *ufrag) {
  memset(c, 0, sizeof(*c));
  snprintf(c->ufrag, sizeof(c->ufrag), "%s", ufrag);
  snprintf(c->pwd, sizeof(c->pwd), "%sPassword0123456789abcdef", ufrag);
}

/* Receive one datagram on s within timeout_ms. Returns its length or 0. */
static inline size_t tt_recv(udp_socket_t *s, uint8_t *buf, size_t cap,
                             udp_addr_t *from, int timeout_ms) {
  struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
  if (poll(&pfd, 1, timeout_ms) <= 0)
    return 0;
  from->len = sizeof(from->ss);
  ssize_t n = recvfrom(s->fd, buf, cap, 0, (struct sockaddr *)&from->ss,
                       &from->len);
  return n > 0 ? (size_t)n : 0;
}

static inline void tt_send(udp_socket_t *s, const udp_addr_t *to,
                           const uint8_t *buf, size_t len) {
  assert_int_equal(udp_send(s, to, buf, len, len), 0);
}

#endif
