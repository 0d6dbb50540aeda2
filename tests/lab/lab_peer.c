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
 * TURN (issue 10) from the environment: QP_LAB_TURN="U:P@HOST:PORT",
 * QP_LAB_TURN_SECRET="SECRET@HOST:PORT", QP_LAB_RELAY=auto|never|only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quic_portal.h"

#define BIG_MESSAGE (10u * 1024 * 1024)

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

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[1], "server") && strcmp(argv[1], "client"))) {
    fprintf(stderr, "usage: lab_peer server|client URL SESSION STUN TIMEOUT_MS\n");
    return 2;
  }
  bool server = strcmp(argv[1], "server") == 0;
  const char *stun[1] = {argv[4]};
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  o.rendezvous = argv[2];
  o.session = argv[3];
  o.stun_servers = stun;
  o.stun_server_count = strcmp(argv[4], "-") ? 1 : 0;
  o.punch_timeout_ms = atoi(argv[5]);
  /* Sealed rendezvous in the lab (QP_LAB_SECRET="" turns it off): the
   * birthday technique probes only a peer whose record opened with it or
   * who already sent an authenticated check from the probed IP. */
  o.no_portmap = getenv("QP_LAB_NO_PORTMAP") != NULL;
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
  if (server)
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
