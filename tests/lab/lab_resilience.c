/*
 * lab_resilience: one side of a resilience test in the NAT lab
 * (tests/lab/test_resilience.sh), through the public API only. The two sides
 * meet with qp_create_server / qp_create_client, then run one workload while
 * the test script breaks the path under them:
 *
 *   transfer MIB   the client sends MIB messages of 1 MiB (a pattern from the
 *                  message index); the server checks each and prints the
 *                  SHA-256 of all it received, the client of all it sent.
 *                  The server prints "HALF" when half has arrived.
 *   pingpong SECS  the client sends numbered messages for SECS seconds, one
 *                  at a time; the server echoes; both check that every number
 *                  arrives exactly once and in order. The client prints the
 *                  longest wait for an echo (the pause a path change caused).
 *   idle SECS      a round trip, SECS seconds of silence, a round trip.
 *
 *   lab_resilience server|client URL SESSION STUN MODE ARG
 * Environment: LAB_IDLE_S (idle timeout, default 10), LAB_RECONNECT_MS
 * (reconnect_timeout_ms, default: the library's), LAB_RATE_MIBPS (transfer:
 * at most this many MiB/s).
 * Prints "READY" once connected and "RESULT ok|fail ... recoveries=N".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>

#include "quic_portal.h"

#define MIB (1024u * 1024u)
#define PING_LEN 64
#define IO_TIMEOUT_MS 60000

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void fill(unsigned char *buf, size_t len, uint32_t seed) {
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void hex(const unsigned char *d, size_t n, char *out) {
  for (size_t i = 0; i < n; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static char detail[512];

static int fail(int rc, const char *what) {
  snprintf(detail, sizeof(detail), "%s: %s: %s", what, qp_err_name(rc), qp_last_error());
  return rc ? rc : QP_ERR_PROTOCOL;
}

/* ---- transfer ---- */

static int transfer_send(qp_portal_t *p, unsigned mib) {
  unsigned char *buf = malloc(MIB);
  gnutls_hash_hd_t h;
  gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
  int rc = 0;
  /* LAB_RATE_MIBPS caps the rate (a WAN-like transfer that lasts long
   * enough for the path to change under it). */
  double rate = getenv("LAB_RATE_MIBPS") ? atof(getenv("LAB_RATE_MIBPS")) : 0;
  double t0 = now_ms();
  for (unsigned i = 0; i < mib && rc == 0; i++) {
    double due = rate > 0 ? t0 + i * 1e3 / rate : 0;
    while (now_ms() < due) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
    fill(buf, MIB, i);
    gnutls_hash(h, buf, MIB);
    if ((rc = qp_portal_send(p, buf, MIB, IO_TIMEOUT_MS)) != 0)
      fail(rc, "send");
  }
  unsigned char d[32];
  char x[65];
  gnutls_hash_deinit(h, d);
  hex(d, 32, x);
  if (rc == 0) { /* the server's one-byte answer: it has everything */
    void *m;
    size_t n;
    if ((rc = qp_portal_recv(p, &m, &n, IO_TIMEOUT_MS)) != 0)
      fail(rc, "recv of the receipt");
    else
      qp_free(m);
  }
  if (rc == 0)
    snprintf(detail, sizeof(detail), "sent %u MiB sha256=%s", mib, x);
  free(buf);
  return rc;
}

static int transfer_recv(qp_portal_t *p, unsigned mib) {
  unsigned char *want = malloc(MIB);
  gnutls_hash_hd_t h;
  gnutls_hash_init(&h, GNUTLS_DIG_SHA256);
  int rc = 0;
  for (unsigned i = 0; i < mib && rc == 0; i++) {
    void *m;
    size_t n;
    if ((rc = qp_portal_recv(p, &m, &n, IO_TIMEOUT_MS)) != 0) {
      fail(rc, "recv");
      break;
    }
    fill(want, MIB, i);
    if (n != MIB || memcmp(m, want, MIB) != 0) {
      snprintf(detail, sizeof(detail), "message %u: %zu bytes, not the %u sent", i, n, MIB);
      rc = QP_ERR_PROTOCOL;
    }
    gnutls_hash(h, m, n);
    qp_free(m);
    if (i + 1 == mib / 2) {
      printf("HALF\n");
      fflush(stdout);
    }
  }
  unsigned char d[32];
  char x[65];
  gnutls_hash_deinit(h, d);
  hex(d, 32, x);
  if (rc == 0 && (rc = qp_portal_send(p, "k", 1, IO_TIMEOUT_MS)) != 0)
    fail(rc, "send of the receipt");
  if (rc == 0)
    snprintf(detail, sizeof(detail), "received %u MiB sha256=%s", mib, x);
  free(want);
  return rc;
}

/* ---- ping-pong ---- */

static int pingpong_client(qp_portal_t *p, double secs) {
  unsigned char buf[PING_LEN];
  double t0 = now_ms(), max_gap = 0;
  uint32_t seq = 0;
  int rc = 0;
  while (rc == 0 && now_ms() - t0 < secs * 1e3) {
    memset(buf, 0, sizeof(buf));
    put32(buf, seq);
    double sent = now_ms();
    if ((rc = qp_portal_send(p, buf, sizeof(buf), IO_TIMEOUT_MS)) != 0)
      return fail(rc, "send");
    void *m;
    size_t n;
    if ((rc = qp_portal_recv(p, &m, &n, IO_TIMEOUT_MS)) != 0)
      return fail(rc, "recv");
    uint32_t got = n == PING_LEN ? get32(m) : UINT32_MAX;
    qp_free(m);
    if (got != seq) {
      snprintf(detail, sizeof(detail), "echo %u came back as %u (%zu bytes)", seq, got, n);
      return QP_ERR_PROTOCOL;
    }
    double gap = now_ms() - sent;
    if (gap > max_gap)
      max_gap = gap;
    seq++;
  }
  put32(buf, UINT32_MAX); /* end */
  if ((rc = qp_portal_send(p, buf, sizeof(buf), IO_TIMEOUT_MS)) != 0)
    return fail(rc, "send of the end");
  snprintf(detail, sizeof(detail), "%u messages echoed once each, in order; max_gap_ms=%.0f",
           seq, max_gap);
  return 0;
}

static int pingpong_server(qp_portal_t *p) {
  uint32_t want = 0;
  for (;;) {
    void *m;
    size_t n;
    int rc = qp_portal_recv(p, &m, &n, IO_TIMEOUT_MS);
    if (rc != 0)
      return fail(rc, "recv");
    uint32_t got = n == PING_LEN ? get32(m) : UINT32_MAX - 1;
    if (got == UINT32_MAX) {
      qp_free(m);
      snprintf(detail, sizeof(detail), "%u messages received once each, in order", want);
      return 0;
    }
    if (got != want) {
      qp_free(m);
      snprintf(detail, sizeof(detail), "message %u arrived where %u was due", got, want);
      return QP_ERR_PROTOCOL;
    }
    rc = qp_portal_send(p, m, n, IO_TIMEOUT_MS);
    qp_free(m);
    if (rc != 0)
      return fail(rc, "send");
    want++;
  }
}

/* ---- idle ---- */

static int roundtrip(qp_portal_t *p, bool client, uint32_t seed) {
  unsigned char buf[PING_LEN];
  fill(buf, sizeof(buf), seed);
  void *m;
  size_t n;
  int rc;
  if (client && (rc = qp_portal_send(p, buf, sizeof(buf), IO_TIMEOUT_MS)) != 0)
    return fail(rc, "send");
  if ((rc = qp_portal_recv(p, &m, &n, IO_TIMEOUT_MS * 20)) != 0)
    return fail(rc, "recv");
  bool same = n == sizeof(buf) && memcmp(m, buf, n) == 0;
  if (!client)
    rc = qp_portal_send(p, m, n, IO_TIMEOUT_MS);
  qp_free(m);
  if (rc != 0)
    return fail(rc, "send");
  if (!same) {
    snprintf(detail, sizeof(detail), "round trip %u: wrong bytes", seed);
    return QP_ERR_PROTOCOL;
  }
  return 0;
}

static int idle(qp_portal_t *p, bool client, double secs) {
  int rc = roundtrip(p, client, 1);
  if (rc == 0 && client) {
    struct timespec ts = {.tv_sec = (time_t)secs, .tv_nsec = 0};
    nanosleep(&ts, NULL);
  }
  if (rc == 0)
    rc = roundtrip(p, client, 2);
  if (rc == 0)
    snprintf(detail, sizeof(detail), "round trip, %.0f s idle, round trip", secs);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 7 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: lab_resilience server|client URL SESSION STUN "
                    "transfer|pingpong|idle ARG\n");
    return 2;
  }
  bool server = strcmp(argv[1], "server") == 0;
  const char *mode = argv[5];
  double arg = atof(argv[6]);
  const char *stun[1] = {argv[4]};
  qp_transport_options t;
  qp_transport_options_init(&t);
  if (getenv("LAB_IDLE_S"))
    t.max_idle_timeout_secs = atof(getenv("LAB_IDLE_S"));
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  o.rendezvous = argv[2];
  o.session = argv[3];
  o.stun_servers = stun;
  o.stun_server_count = 1;
  o.punch_timeout_ms = 10000;
  o.transport = &t;
  if (getenv("LAB_RECONNECT_MS"))
    o.reconnect_timeout_ms = atoi(getenv("LAB_RECONNECT_MS"));
  qp_log_set_level(QP_LOG_LEVEL_INFO);
  qp_portal_t *p = NULL;
  int rc = server ? qp_create_server(&o, &p) : qp_create_client(&o, &p);
  if (rc != QP_OK) {
    printf("RESULT fail connect %s: %s recoveries=0\n", qp_err_name(rc), qp_last_error());
    return 1;
  }
  printf("READY\n");
  fflush(stdout);
  if (strcmp(mode, "transfer") == 0)
    rc = server ? transfer_recv(p, (unsigned)arg) : transfer_send(p, (unsigned)arg);
  else if (strcmp(mode, "pingpong") == 0)
    rc = server ? pingpong_server(p) : pingpong_client(p, arg);
  else
    rc = idle(p, !server, arg);
  qp_portal_stats st = {0};
  qp_portal_get_stats(p, &st);
  if (rc == QP_OK)
    rc = qp_portal_close(p, 10000);
  printf("RESULT %s %s recoveries=%llu\n", rc == QP_OK ? "ok" : "fail", detail,
         (unsigned long long)st.recoveries);
  qp_portal_destroy(p);
  return rc == QP_OK ? 0 : 1;
}
