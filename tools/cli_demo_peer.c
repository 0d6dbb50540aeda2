/*
 * cli_demo_peer.c: one peer of `quic-portal demo` (run as `quic-portal demo
 * --role server|client ...` by the demo itself): traverse, show the
 * connection, swap fingerprints, exchange greetings, run the ping-pong.
 */
#include "cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEMO_GREETINGS 3
#define DEMO_PINGPONG_ITERS 20
#define DEMO_PING_SIZE (600 * 1024)
#define DEMO_PONG_SIZE (5 * 1024)
#define DEMO_PUNCH_TIMEOUT_MS 15000
#define DEMO_IO_TIMEOUT_MS 20000
#define DEMO_LINGER_MS 5000

static const char *g_role = "peer"; /* the prefix of every line */

/* The integer just before word in m (as in "3 candidates"), or -1. */
static int number_before(const char *m, const char *word) {
  const char *w = strstr(m, word);
  if (!w || w == m || w[-1] != ' ') {
    return -1;
  }
  const char *d = w - 1;
  while (d > m && isdigit((unsigned char)d[-1])) {
    d--;
  }
  return d < w - 1 ? atoi(d) : -1;
}

/* The kind of address in the library's "(host)", "(srflx)", ... */
static const char *plain_kind(const char *m) {
  static const char *const kinds[][2] = {
      {"(host)", "a local address of the peer"},
      {"(srflx)", "the peer's public address, as STUN reported it"},
      {"(prflx)", "an address of the peer seen during the checks"},
      {"(relay)", "a TURN relay"}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    if (strstr(m, kinds[i][0])) {
      return kinds[i][1];
    }
  }
  return "an address of the peer";
}

/* The library's info milestones in plain words (no ICE vocabulary): true
 * with the sentence in out, false for a line the demo leaves out. */
static bool plain_words(const char *m, char *out, size_t len) {
  const char *other = strstr(m, "client") ? "client" : "server";
  const char *p;
  if ((p = strstr(m, "traversal: waiting for the "))) {
    other = strncmp(p + 27, "client", 6) == 0 ? "client" : "server";
    snprintf(out, len,
             "waiting for the %s to publish its addresses in the "
             "rendezvous",
             other);
    return true;
  }
  if (strstr(m, "traversal: adopted ")) {
    int cands = number_before(m, "candidates");
    int pairs = number_before(m, "pairs");
    snprintf(out, len,
             "the %s published %d address%s; trying %d possible "
             "path%s to it",
             other, cands, cands == 1 ? "" : "es", pairs,
             pairs == 1 ? "" : "s");
    return true;
  }
  if ((p = strstr(m, "validated a path in "))) {
    const char *to = strstr(p, " to ");
    snprintf(out, len, "a path works after %d ms: straight to %s, %s",
             atoi(p + 20), to ? to + 4 : "the peer", plain_kind(p));
    return true;
  }
  return false;
}

static void print_lines(const char *what, const char *message) {
  /* One prefixed line per line of a multi-line message. */
  for (const char *line = message; line;) {
    const char *nl = strchr(line, '\n');
    int len = nl ? (int)(nl - line) : (int)strlen(line);
    printf("[%s]    %s%.*s\n", g_role, what, len, line);
    line = nl ? nl + 1 : NULL;
    what = "";
  }
}

/* Library lines: with --log-level given, all of them as they are; else
 * the milestones in plain words, and warnings and errors as they are. */
static void demo_log(qp_log_level level, const char *message, void *user) {
  (void)user;
  static const char *const names[] = {"debug", "info", "warn", "error"};
  char plain[512];
  if (cli_log_level_given() >= 0 || level >= QP_LOG_LEVEL_WARN) {
    char what[32];
    snprintf(what, sizeof what,
             "library %s: ", level <= QP_LOG_LEVEL_ERROR ? names[level] : "?");
    print_lines(what, message);
  } else if (plain_words(message, plain, sizeof plain)) {
    print_lines("", plain);
  }
  fflush(stdout);
}

static int demo_fail(const char *what, int rc) {
  printf("[%s] FAILED: %s: %s: %s\n", g_role, what, qp_err_name(rc),
         qp_last_error());
  return CLI_EXIT_FAIL;
}

static int demo_connect(bool server, const char *stun, const char *rdv,
                        const char *session, qp_portal_t **p) {
  const char *servers[1] = {stun};
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  o.rendezvous = rdv;
  o.session = session;
  o.stun_servers = servers;
  o.stun_server_count = 1;
  o.punch_timeout_ms = DEMO_PUNCH_TIMEOUT_MS;
  /* Both sides run on this machine: keep every packet on loopback. */
  o.local_ip = "127.0.0.1";
  o.cancel = cli_cancel_cb;
  printf("[%s] publishing my addresses in the rendezvous and opening a "
         "path to the other side (STUN %s, up to %d s)\n",
         g_role, stun, DEMO_PUNCH_TIMEOUT_MS / 1000);
  double t0 = cli_now();
  int rc = server ? qp_create_server(&o, p) : qp_create_client(&o, p);
  if (rc != QP_OK) {
    return demo_fail(server ? "qp_create_server" : "qp_create_client", rc);
  }
  cli_signals_watch(*p);
  qp_portal_stats st;
  memset(&st, 0, sizeof st);
  qp_portal_get_stats(*p, &st);
  char fp[QP_FINGERPRINT_SIZE];
  qp_portal_fingerprint(*p, fp, sizeof(fp));
  printf("[%s] connected %.1f ms after start on local UDP port %u; QUIC "
         "handshake %.2f ms, smoothed RTT %.3f ms\n"
         "[%s] my certificate fingerprint: %s\n",
         g_role, (cli_now() - t0) * 1e3, (unsigned)qp_portal_local_port(*p),
         (double)st.handshake_us / 1e3, (double)st.smoothed_rtt_us / 1e3,
         g_role, fp);
  return 0;
}

static int demo_recv(qp_portal_t *p, char *out, size_t outlen) {
  void *m = NULL;
  size_t len = 0;
  int rc = cli_recv(p, &m, &len, DEMO_IO_TIMEOUT_MS);
  if (rc != QP_OK) {
    return demo_fail("receiving", rc);
  }
  size_t n = len < outlen - 1 ? len : outlen - 1;
  memcpy(out, m, n);
  out[n] = '\0';
  qp_free(m);
  return 0;
}

static int demo_send(qp_portal_t *p, const char *text) {
  int rc = cli_send(p, text, strlen(text));
  return rc == QP_OK ? 0 : demo_fail("sending", rc);
}

/* Each side tells the other its fingerprint over the verified channel. */
static int swap_fingerprints(qp_portal_t *p, bool server) {
  char mine[QP_FINGERPRINT_SIZE], msg[128], theirs[128];
  qp_portal_fingerprint(p, mine, sizeof(mine));
  snprintf(msg, sizeof msg, "fingerprint %s", mine);
  int rc = server ? demo_recv(p, theirs, sizeof theirs) : demo_send(p, msg);
  if (rc == 0) {
    rc = server ? demo_send(p, msg) : demo_recv(p, theirs, sizeof theirs);
  }
  if (rc == 0) {
    printf("[%s] the %s says its fingerprint is %s\n"
           "[%s]   the library pinned that fingerprint from the %s's "
           "rendezvous record, and the TLS handshake proved the %s holds "
           "the matching key: verified\n",
           g_role, server ? "client" : "server", theirs + 12, g_role,
           server ? "client" : "server", server ? "client" : "server");
  }
  return rc;
}

static int greetings(qp_portal_t *p, bool server) {
  for (int i = 1; i <= DEMO_GREETINGS; i++) {
    char msg[64], got[64];
    if (server) {
      int rc = demo_recv(p, got, sizeof got);
      for (char *c = got; rc == 0 && *c; c++) {
        *c = (char)toupper((unsigned char)*c);
      }
      if (rc != 0 || (rc = demo_send(p, got)) != 0) {
        return rc;
      }
      continue;
    }
    snprintf(msg, sizeof msg, "hello #%d from the client", i);
    int rc = demo_send(p, msg);
    if (rc == 0) {
      rc = demo_recv(p, got, sizeof got);
    }
    if (rc != 0) {
      return rc;
    }
    printf("[client] sent \"%s\", the server answered \"%s\"\n", msg, got);
  }
  return 0;
}

static int bench(qp_portal_t *p, bool server) {
  if (server) {
    uint64_t msgs = 0, bytes = 0;
    int rc = cli_bench_server(p, &msgs, &bytes);
    if (rc == 0) {
      printf("[server] the client closed; answered %llu benchmark messages "
             "(%.1f MiB)\n",
             (unsigned long long)msgs, (double)bytes / 1048576.0);
    }
    return rc;
  }
  printf("[client] ping-pong: %d rounds of %d KiB answered by %d KiB\n",
         DEMO_PINGPONG_ITERS, DEMO_PING_SIZE / 1024, DEMO_PONG_SIZE / 1024);
  cli_pingpong_result r;
  int rc = cli_bench_client(p, false, DEMO_PINGPONG_ITERS, DEMO_PING_SIZE,
                            DEMO_PONG_SIZE, &r);
  if (rc == 0) {
    printf("[client]   p50 %.3f ms, p90 %.3f ms, avg %.3f ms, min %.3f ms, "
           "max %.3f ms\n",
           r.p50, r.p90, r.avg, r.min, r.max);
  }
  return rc;
}

int cli_demo_peer(const char *role, const char *stun, const char *rdv,
                  const char *session) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  g_role = role;
  bool server = strcmp(role, "server") == 0;
  qp_log_set_handler(demo_log, NULL);
  if (cli_log_level_given() < 0) {
    qp_log_set_level(QP_LOG_LEVEL_INFO); /* the milestones, in plain words */
  }
  qp_portal_t *p = NULL;
  int rc = demo_connect(server, stun, rdv, session, &p);
  if (rc == 0) {
    rc = swap_fingerprints(p, server);
  }
  if (rc == 0) {
    rc = greetings(p, server);
  }
  if (rc == 0) {
    rc = bench(p, server);
  }
  if (p) {
    int crc = cli_conn_close(p, DEMO_LINGER_MS);
    if (rc == 0 && crc != QP_OK && crc != QP_ERR_CLOSED) {
      rc = demo_fail("closing", crc);
    }
  }
  if (rc == 0) {
    printf("[%s] closed cleanly\n", g_role);
  }
  return rc;
}
