/*
 * lab_peer: one side of a traversal test in the NAT lab, through the public
 * API only. The server echoes every message until the client closes; the
 * client sends 1 KiB and 10 MiB messages, checks the echoes byte for byte,
 * and closes. Both print one line "RESULT ok|fail <ms-to-connect> <detail>",
 * and once connected a line "PATH <kind> <description>" (qp_portal_path);
 * the client also "BULK <ms>" for the 10 MiB echo and a "STATS" line.
 *
 *   lab_peer server|client RENDEZVOUS_URL SESSION STUN_HOST:PORT TIMEOUT_MS
 *
 * QP_LAB_STUN2="HOST:PORT" adds a second STUN server (test_ipv6.sh).
 * QP_LAB_RECONNECT_MS sets reconnect_timeout_ms (recovery's budget).
 * TURN (issue 10) from the environment: QP_LAB_TURN="U:P@HOST:PORT",
 * QP_LAB_TURN_SECRET="SECRET@HOST:PORT", QP_LAB_RELAY=auto|never|only.
 * Port mapping: QP_LAB_NO_PORTMAP (none), QP_LAB_PORTMAP=upnp|natpmp|pcp.
 *
 * QP_LAB_STREAM="COUNT:SIZE:GAP_MS" replaces the two echoes with a stream
 * (test_relay_upgrade.sh): the client sends COUNT numbered messages of SIZE
 * bytes, one every GAP_MS, at most STREAM_WINDOW echoes outstanding; the
 * server checks each one's number and bytes and echoes it; the client
 * checks the echoes. Each side prints "STREAMING" once the first echo is
 * back (client) or the first message came (server), "PATHCHANGE <kind>
 * <desc>" whenever qp_portal_path changes, "PATHEND <kind> <desc>" and
 * "STREAM ok|fail <messages> <bytes> <detail>" at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quic_portal.h"

#define BIG_MESSAGE (10u * 1024 * 1024)
/* Stream mode: echoes outstanding at most (the pipe stays full). */
#define STREAM_WINDOW 16

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void fill(unsigned char *buf, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++)
    buf[i] = (unsigned char)((i * 131u + seed * 7u) >> 3);
}

static int echo_loop(qp_portal_t *p) {
  for (;;) {
    void *m;
    size_t n;
    int rc = qp_portal_recv(p, &m, &n, 30000);
    if (rc == QP_ERR_CLOSED)
      return 0;
    if (rc != QP_OK)
      return rc;
    rc = qp_portal_send(p, m, n, 30000);
    qp_free(m);
    if (rc != QP_OK)
      return rc;
  }
}

static int check_echo(qp_portal_t *p, size_t len, unsigned seed) {
  unsigned char *buf = malloc(len);
  if (buf == NULL)
    return QP_ERR_NOMEM;
  fill(buf, len, seed);
  int rc = qp_portal_send(p, buf, len, 30000);
  void *m = NULL;
  size_t n = 0;
  if (rc == QP_OK)
    rc = qp_portal_recv(p, &m, &n, 30000);
  if (rc == QP_OK && (n != len || memcmp(m, buf, len) != 0)) {
    fprintf(stderr, "echo of %zu bytes came back as %zu different bytes\n", len, n);
    rc = QP_ERR_PROTOCOL;
  }
  qp_free(m);
  free(buf);
  return rc;
}

/* ---- stream mode (QP_LAB_STREAM) ---------------------------------------- */

typedef struct stream {
  unsigned count, size, gap_ms;
  uint64_t path_ns; /* qp_portal_path's changed_ns last seen */
  unsigned got;     /* messages checked so far */
  unsigned long long bytes;
} stream_t;

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* Message i: its number (4 bytes, big endian), then a pattern of i. */
static void stream_message(unsigned char *buf, size_t len, uint32_t i) {
  fill(buf, len, i);
  put_be32(buf, i);
}

/* Print a PATHCHANGE line when the path changed since last look. */
static void watch_path(qp_portal_t *p, stream_t *s, const char *tag) {
  char desc[QP_PATH_DESC_SIZE];
  uint64_t ns = 0;
  int kind = qp_portal_path(p, desc, sizeof(desc), &ns);
  if (tag == NULL && ns == s->path_ns)
    return;
  s->path_ns = ns;
  printf("%s %d %s\n", tag ? tag : "PATHCHANGE", kind, desc);
  fflush(stdout);
}

static int stream_check(const void *m, size_t n, uint32_t want, size_t size,
                        unsigned char *expect) {
  stream_message(expect, size, want);
  if (n != size || memcmp(m, expect, size) != 0) {
    fprintf(stderr, "message %u: %zu bytes, not the %zu expected (first bytes "
            "say %u)\n", want, n, size,
            n >= 4 ? (unsigned)((const unsigned char *)m)[3] |
                         (unsigned)((const unsigned char *)m)[2] << 8 : 0u);
    return QP_ERR_PROTOCOL;
  }
  return QP_OK;
}

/* A message of n bytes checked (rc QP_OK): count it, say when the stream
 * runs, and look at the path. */
static void stream_counted(qp_portal_t *p, stream_t *s, int rc, size_t n) {
  if (rc != QP_OK)
    return;
  if (s->got++ == 0) {
    printf("STREAMING\n");
    fflush(stdout);
  }
  s->bytes += n;
  watch_path(p, s, NULL);
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* Client: send all, check every echo in order. */
static int stream_client(qp_portal_t *p, stream_t *s) {
  unsigned char *buf = malloc(s->size), *expect = malloc(s->size);
  int rc = buf && expect ? QP_OK : QP_ERR_NOMEM;
  unsigned sent = 0;
  while (rc == QP_OK && s->got < s->count) {
    if (sent < s->count && sent - s->got < STREAM_WINDOW) {
      stream_message(buf, s->size, sent);
      if ((rc = qp_portal_send(p, buf, s->size, 30000)) == QP_OK)
        sent++;
      if (s->gap_ms)
        sleep_ms(s->gap_ms);
      continue;
    }
    void *m = NULL;
    size_t n = 0;
    if ((rc = qp_portal_recv(p, &m, &n, 30000)) == QP_OK)
      rc = stream_check(m, n, s->got, s->size, expect);
    qp_free(m);
    stream_counted(p, s, rc, n);
  }
  free(buf);
  free(expect);
  return rc;
}

/* Server: check each message's number and bytes, echo it. */
static int stream_server(qp_portal_t *p, stream_t *s) {
  unsigned char *expect = malloc(s->size);
  int rc = expect ? QP_OK : QP_ERR_NOMEM;
  while (rc == QP_OK) {
    void *m = NULL;
    size_t n = 0;
    rc = qp_portal_recv(p, &m, &n, 30000);
    if (rc == QP_ERR_CLOSED && s->got == s->count) {
      rc = QP_OK;
      break;
    }
    if (rc == QP_OK && (rc = stream_check(m, n, s->got, s->size, expect)) == QP_OK)
      rc = qp_portal_send(p, m, n, 30000);
    qp_free(m);
    stream_counted(p, s, rc, n);
  }
  free(expect);
  return rc;
}

static int run_stream(qp_portal_t *p, bool server, const char *spec) {
  stream_t s = {0};
  if (sscanf(spec, "%u:%u:%u", &s.count, &s.size, &s.gap_ms) != 3 || s.size < 4) {
    fprintf(stderr, "QP_LAB_STREAM=%s: want COUNT:SIZE:GAP_MS, SIZE >= 4\n", spec);
    return QP_ERR_INVALID;
  }
  qp_portal_path(p, NULL, 0, &s.path_ns);
  int rc = server ? stream_server(p, &s) : stream_client(p, &s);
  printf("STREAM %s %u %llu\n", rc == QP_OK ? "ok" : "fail", s.got, s.bytes);
  watch_path(p, &s, "PATHEND");
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: lab_peer server|client URL SESSION STUN TIMEOUT_MS\n");
    return 2;
  }
  bool server = strcmp(argv[1], "server") == 0;
  /* QP_LAB_STUN2: a second STUN server (test_ipv6.sh: one on IPv6). */
  const char *stun2 = getenv("QP_LAB_STUN2");
  const char *stun[2] = {argv[4], stun2};
  bool first = strcmp(argv[4], "-") != 0;
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  o.rendezvous = argv[2];
  o.session = argv[3];
  o.stun_servers = first ? stun : stun + 1;
  o.stun_server_count = (first ? 1u : 0u) + (stun2 && *stun2 ? 1u : 0u);
  o.punch_timeout_ms = atoi(argv[5]);
  /* Sealed rendezvous in the lab (QP_LAB_SECRET="" turns it off): the
   * birthday technique probes only a peer whose record opened with it or
   * who already sent an authenticated check from the probed IP. */
  o.no_portmap = getenv("QP_LAB_NO_PORTMAP") != NULL;
  /* QP_LAB_PORTMAP=upnp|natpmp|pcp: that protocol only (nat_matrix.sh). */
  const char *only = getenv("QP_LAB_PORTMAP");
  if (only != NULL) {
    o.no_upnp = strcmp(only, "upnp") != 0;
    o.no_natpmp = strcmp(only, "natpmp") != 0;
    o.no_pcp = strcmp(only, "pcp") != 0;
  }
  /* QP_LAB_RECONNECT_MS: recovery's budget (test_relay.sh, relay killed). */
  const char *reconnect = getenv("QP_LAB_RECONNECT_MS");
  if (reconnect != NULL && *reconnect)
    o.reconnect_timeout_ms = atoi(reconnect);
  const char *secret = getenv("QP_LAB_SECRET");
  o.secret = secret == NULL ? "quic-portal lab secret" : *secret ? secret : NULL;
  const char *turn[1] = {getenv("QP_LAB_TURN")};
  const char *turn_secret[1] = {getenv("QP_LAB_TURN_SECRET")};
  const char *relay = getenv("QP_LAB_RELAY");
  o.turn_servers = turn;
  o.turn_server_count = turn[0] && turn[0][0] ? 1 : 0;
  o.turn_secret_servers = turn_secret;
  o.turn_secret_server_count = turn_secret[0] && turn_secret[0][0] ? 1 : 0;
  o.relay = relay == NULL || !strcmp(relay, "auto") ? QP_RELAY_AUTO
            : !strcmp(relay, "never")               ? QP_RELAY_NEVER
                                                    : QP_RELAY_ONLY;
  double t0 = now_ms();
  qp_portal_t *p = NULL;
  int rc = server ? qp_create_server(&o, &p) : qp_create_client(&o, &p);
  double connect_ms = now_ms() - t0;
  if (rc != QP_OK) {
    printf("RESULT fail %.0f %s: %s\n", connect_ms, qp_err_name(rc), qp_last_error());
    return 1;
  }
  char path[QP_PATH_DESC_SIZE];
  int kind = qp_portal_path(p, path, sizeof(path), NULL);
  printf("PATH %d %s\n", kind, path);
  fflush(stdout);
  double t1 = 0;
  const char *stream = getenv("QP_LAB_STREAM");
  if (stream != NULL && *stream)
    rc = run_stream(p, server, stream);
  else if (server)
    rc = echo_loop(p);
  else if ((rc = check_echo(p, 1024, 1)) == QP_OK) {
    t1 = now_ms();
    rc = check_echo(p, BIG_MESSAGE, 2);
    printf("BULK %.0f\n", now_ms() - t1);
    qp_portal_stats st;
    if (qp_portal_get_stats(p, &st) == QP_OK)
      printf("STATS packets_sent %llu received %llu pto %llu rtt_us %llu "
             "socket_drops %llu\n",
             (unsigned long long)st.packets_sent,
             (unsigned long long)st.packets_received,
             (unsigned long long)st.pto_count,
             (unsigned long long)st.smoothed_rtt_us,
             (unsigned long long)st.packets_lost);
  }
  if (rc == QP_OK)
    rc = qp_portal_close(p, 10000);
  if (rc == QP_OK)
    printf("RESULT ok %.0f %s\n", connect_ms,
           server ? "echoed until the client closed" : "1 KiB and 10 MiB echoed intact");
  else
    printf("RESULT fail %.0f after connecting, %s: %s\n", connect_ms, qp_err_name(rc),
           qp_last_error());
  qp_portal_destroy(p);
  return rc == QP_OK ? 0 : 1;
}
