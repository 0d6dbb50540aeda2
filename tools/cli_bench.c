/*
 * cli_bench.c: `quic-portal bench serve|connect`: the ping-pong and rtt
 * benchmarks of qp-bench (bench/README.md) over any connection the tool can
 * make, direct or through NAT traversal, with the same JSON keys.
 *
 * Protocol: the client's first message is "QPB1" kind(1: 'p' pingpong,
 * 'r' rtt) pong_size(8, big-endian); the server answers "QPB1ok". Then
 * every client message gets one answer: pong_size bytes (pingpong) or the
 * same bytes (rtt), until the client closes.
 */
#include "cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_IO_TIMEOUT_MS 120000 /* each send and each awaited answer */
#define BENCH_HELLO_SIZE 13

static const char BENCH_USAGE_HEAD[] =
    "Usage: quic-portal bench serve   (--listen [ADDR:]PORT | --rendezvous "
    "URL) [OPTIONS]\n"
    "       quic-portal bench connect (--to HOST:PORT | --rendezvous URL) "
    "[OPTIONS]\n"
    "                                 [--bench pingpong|rtt] [--iters N]\n"
    "                                 [--ping-size N] [--pong-size N]\n"
    "\n"
    "Measure a connection as qp-bench does (bench/README.md): `serve` answers,\n"
    "`connect` measures and prints the figures.\n"
    "\n"
    "  --bench pingpong  --iters rounds (default 50) of a --ping-size message\n"
    "                    (default 614400) answered by --pong-size bytes\n"
    "                    (default 5120): avg/p50/p75/p90/p99/min/max ms\n"
    "  --bench rtt       --iters (default 10000) 1-byte messages echoed:\n"
    "                    p50/p90/p99/avg/min/max us\n"
    "  --json            one JSON object on stdout with qp-bench's keys\n"
    "                    (bench, iterations, p50_ms..., transport,\n"
    "                    connect_ms, lost_packets, cwnd, srtt_us, pto_count,\n"
    "                    packets_sent, packets_received, handshake_us, rss_kb,\n"
    "                    rss_peak_kb); the server prints its own object\n"
    "                    (handshake_us null on a direct server: there it\n"
    "                    would count the wait for the client)\n"
    "\n";

static const char BENCH_EXIT[] =
    "\nExit status: 0 done; 1 connection or library error, or a wrong answer;\n"
    "2 bad command line; 128+N killed by signal N.\n";

static int bench_err(const char *what, int rc) {
  if (rc == QP_ERR_INTERRUPTED && cli_signal()) {
    return cli_signal_exit();
  }
  return cli_qp_error(what, rc);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentiles as qp-bench computes them: sorted[int(n*q)]. */
static void fill_result(double *v, size_t n, cli_pingpong_result *r) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += v[i];
  }
  qsort(v, n, sizeof *v, cmp_double);
  static const double q[] = {0.5, 0.75, 0.9, 0.99};
  double *dst[] = {&r->p50, &r->p75, &r->p90, &r->p99};
  for (size_t k = 0; k < 4; k++) {
    size_t i = (size_t)((double)n * q[k]);
    *dst[k] = v[i < n ? i : n - 1];
  }
  r->iterations = n;
  r->avg = sum / (double)n;
  r->min = v[0];
  r->max = v[n - 1];
}

static int hello(qp_portal_t *p, bool rtt, uint64_t pong_size) {
  uint8_t h[BENCH_HELLO_SIZE] = {'Q', 'P', 'B', '1', rtt ? 'r' : 'p'};
  cli_put_be64(h + 5, pong_size);
  int rc = cli_send(p, h, sizeof h);
  void *m = NULL;
  size_t len = 0;
  if (rc == QP_OK) {
    rc = cli_recv(p, &m, &len, BENCH_IO_TIMEOUT_MS);
  }
  if (rc != QP_OK) {
    return bench_err("starting the benchmark", rc);
  }
  bool ok = len == 6 && memcmp(m, "QPB1ok", 6) == 0;
  qp_free(m);
  if (!ok) {
    cli_errorf("the peer is not `quic-portal bench serve`");
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* One round: send ping, expect an answer of want bytes (rtt: the same
 * byte). Returns the duration in seconds, or a negative exit status. */
static double round_trip(qp_portal_t *p, const uint8_t *ping, size_t ping_len,
                         size_t want, bool rtt, int *err) {
  double t0 = cli_now();
  void *m = NULL;
  size_t len = 0;
  int rc = cli_send(p, ping, ping_len);
  if (rc == QP_OK) {
    rc = cli_recv(p, &m, &len, BENCH_IO_TIMEOUT_MS);
  }
  double dt = cli_now() - t0;
  if (rc != QP_OK) {
    *err = bench_err("a benchmark round", rc);
    return -1;
  }
  bool ok = len == want && (!rtt || ((uint8_t *)m)[0] == ping[0]);
  qp_free(m);
  if (!ok) {
    cli_errorf("wrong answer: %zu bytes, expected %zu", len, want);
    *err = CLI_EXIT_FAIL;
    return -1;
  }
  return dt;
}

int cli_bench_client(qp_portal_t *p, bool rtt, uint64_t iters,
                     uint64_t ping_size, uint64_t pong_size,
                     cli_pingpong_result *r) {
  size_t plen = rtt ? 1 : (size_t)ping_size;
  size_t want = rtt ? 1 : (size_t)pong_size;
  uint8_t *ping = calloc(plen ? plen : 1, 1);
  double *v = malloc((size_t)iters * sizeof *v);
  int rc = ping && v ? hello(p, rtt, pong_size) : CLI_EXIT_FAIL;
  for (uint64_t i = 0; rc == 0 && i < iters; i++) {
    ping[0] = (uint8_t)i;
    double dt = round_trip(p, ping, plen, want, rtt, &rc);
    v[i] = dt * (rtt ? 1e6 : 1e3);
  }
  if (rc == 0) {
    fill_result(v, (size_t)iters, r);
  }
  free(ping);
  free(v);
  return rc;
}

/* Read the client's hello; sets *rtt and *pong_size. */
static int server_hello(qp_portal_t *p, bool *rtt, uint64_t *pong_size) {
  void *m = NULL;
  size_t len = 0;
  int rc = cli_recv(p, &m, &len, -1);
  if (rc != QP_OK) {
    return bench_err("waiting for the benchmark client", rc);
  }
  const uint8_t *b = m;
  bool ok = len == BENCH_HELLO_SIZE && memcmp(b, "QPB1", 4) == 0 &&
            (b[4] == 'p' || b[4] == 'r') &&
            cli_get_be64(b + 5) <= (1u << 30);
  if (ok) {
    *rtt = b[4] == 'r';
    *pong_size = cli_get_be64(b + 5);
  }
  qp_free(m);
  if (!ok) {
    cli_errorf("the peer is not `quic-portal bench connect`");
    return CLI_EXIT_FAIL;
  }
  rc = cli_send(p, "QPB1ok", 6);
  return rc == QP_OK ? 0 : bench_err("answering the benchmark client", rc);
}

int cli_bench_server(qp_portal_t *p, uint64_t *messages, uint64_t *bytes) {
  bool rtt = false;
  uint64_t pong_size = 0;
  int rc = server_hello(p, &rtt, &pong_size);
  uint8_t *pong = rc == 0 ? calloc(pong_size ? pong_size : 1, 1) : NULL;
  if (rc == 0 && !pong) {
    cli_errorf("out of memory");
    rc = CLI_EXIT_FAIL;
  }
  while (rc == 0) {
    void *m = NULL;
    size_t len = 0;
    int qrc = cli_recv(p, &m, &len, -1);
    if (qrc == QP_ERR_CLOSED) {
      break;
    }
    if (qrc == QP_OK) {
      (*messages)++;
      *bytes += len;
      qrc = rtt ? cli_send(p, m, len) : cli_send(p, pong, (size_t)pong_size);
      qp_free(m);
    }
    if (qrc != QP_OK) {
      rc = bench_err("serving the benchmark", qrc);
    }
  }
  free(pong);
  return rc;
}

/* ---- the subcommand ----------------------------------------------------------- */

static long status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kb = -1;
  size_t flen = strlen(field);
  while (f && fgets(line, sizeof line, f)) {
    if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
      kb = strtol(line + flen + 1, NULL, 10);
      break;
    }
  }
  if (f) {
    fclose(f);
  }
  return kb;
}

/* The statistics keys of qp-bench. waited: a direct server, whose
 * handshake_us would count from the start of listen, i.e. mostly the wait
 * for the client: it is null there (the client reports the handshake). */
static void print_stats_json(qp_portal_t *p, bool waited) {
  qp_portal_stats st;
  memset(&st, 0, sizeof st);
  qp_portal_get_stats(p, &st);
  char hs[24] = "null";
  if (!waited) {
    snprintf(hs, sizeof hs, "%" PRIu64, st.handshake_us);
  }
  printf(",\"lost_packets\":%" PRIu64 ",\"cwnd\":%" PRIu64 ",\"srtt_us\":%" PRIu64
         ",\"pto_count\":%" PRIu64 ",\"packets_sent\":%" PRIu64
         ",\"packets_received\":%" PRIu64 ",\"handshake_us\":%s"
         ",\"rss_kb\":%ld,\"rss_peak_kb\":%ld}\n",
         st.packets_lost, st.cwnd, st.smoothed_rtt_us, st.pto_count,
         st.packets_sent, st.packets_received, hs, status_kb("VmRSS"),
         status_kb("VmHWM"));
}

typedef struct bench_cfg {
  bool rtt, json;
  uint64_t iters, ping_size, pong_size;
} bench_cfg;

static void print_client(qp_portal_t *p, const bench_cfg *b,
                         const cli_pingpong_result *r, double connect_ms,
                         bool direct) {
  if (!b->json && !b->rtt) {
    printf("pingpong: %zu rounds of %" PRIu64 " B answered by %" PRIu64
           " B: p50 %.3f ms, p75 %.3f ms, p90 %.3f ms, p99 %.3f ms, avg %.3f "
           "ms, min %.3f ms, max %.3f ms\n",
           r->iterations, b->ping_size, b->pong_size, r->p50, r->p75, r->p90,
           r->p99, r->avg, r->min, r->max);
  } else if (!b->json) {
    printf("rtt: %zu 1-byte round trips: p50 %.1f us, p90 %.1f us, p99 %.1f "
           "us, avg %.1f us, min %.1f us, max %.1f us\n",
           r->iterations, r->p50, r->p90, r->p99, r->avg, r->min, r->max);
  } else if (!b->rtt) {
    printf("{\"bench\":\"pingpong\",\"iterations\":%zu,\"avg_ms\":%.3f,"
           "\"p50_ms\":%.3f,\"p75_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"min_ms\":%.3f,\"max_ms\":%.3f,\"ping_size\":%" PRIu64
           ",\"pong_size\":%" PRIu64,
           r->iterations, r->avg, r->p50, r->p75, r->p90, r->p99, r->min,
           r->max, b->ping_size, b->pong_size);
  } else {
    printf("{\"bench\":\"rtt\",\"iterations\":%zu,\"p50_us\":%.1f,"
           "\"p90_us\":%.1f,\"p99_us\":%.1f,\"avg_us\":%.1f,\"min_us\":%.1f,"
           "\"max_us\":%.1f",
           r->iterations, r->p50, r->p90, r->p99, r->avg, r->min, r->max);
  }
  if (b->json) {
    printf(",\"transport\":\"quic\",\"path\":\"%s\",\"connect_ms\":%.3f",
           direct ? "direct" : "traversed", connect_ms);
    print_stats_json(p, false);
  }
  fflush(stdout);
}

static int parse_bench(const cli_args *a, bool server, bench_cfg *b) {
  static const char *const client_only[] = {"bench", "iters", "ping-size",
                                            "pong-size"};
  for (size_t i = 0; server && i < 4; i++) {
    if (cli_has(a, client_only[i])) {
      return cli_usage_error(a->cmd, "--%s applies only to bench connect",
                             client_only[i]);
    }
  }
  const char *v = cli_get(a, "bench");
  if (v && strcmp(v, "pingpong") != 0 && strcmp(v, "rtt") != 0) {
    return cli_usage_error(a->cmd, "invalid value '%s' for --bench: expected "
                                   "pingpong or rtt",
                           v);
  }
  *b = (bench_cfg){.rtt = v && strcmp(v, "rtt") == 0,
                   .json = cli_has(a, "json"),
                   .ping_size = 614400,
                   .pong_size = 5120};
  b->iters = b->rtt ? 10000 : 50;
  if (b->rtt && (cli_has(a, "ping-size") || cli_has(a, "pong-size"))) {
    return cli_usage_error(a->cmd, "--ping-size and --pong-size apply only to "
                                   "--bench pingpong");
  }
  int rc = 0;
  if ((v = cli_get(a, "iters"))) {
    rc = cli_parse_u64(a->cmd, "--iters", v, 1, 100000000, &b->iters);
  }
  if (rc == 0 && (v = cli_get(a, "ping-size"))) {
    rc = cli_parse_u64(a->cmd, "--ping-size", v, 1, 1u << 30, &b->ping_size);
  }
  if (rc == 0 && (v = cli_get(a, "pong-size"))) {
    rc = cli_parse_u64(a->cmd, "--pong-size", v, 1, 1u << 30, &b->pong_size);
  }
  return rc;
}

static int run_bench(const cli_conn_cfg *cfg, const bench_cfg *b) {
  qp_portal_t *p = NULL;
  double t0 = cli_now();
  int rc = cli_conn_open(cfg, &p);
  double connect_ms = (cli_now() - t0) * 1e3;
  if (rc != 0) {
    return rc;
  }
  if (cfg->server) {
    uint64_t msgs = 0, bytes = 0;
    rc = cli_bench_server(p, &msgs, &bytes);
    if (rc == 0 && b->json) {
      printf("{\"role\":\"server\",\"transport\":\"quic\",\"messages\":%" PRIu64
             ",\"bytes\":%" PRIu64,
             msgs, bytes);
      print_stats_json(p, cfg->direct);
    } else if (rc == 0) {
      printf("served %" PRIu64 " messages, %" PRIu64 " bytes\n", msgs, bytes);
    }
  } else {
    cli_pingpong_result r;
    rc = cli_bench_client(p, b->rtt, b->iters, b->ping_size, b->pong_size, &r);
    if (rc == 0) {
      print_client(p, b, &r, connect_ms, cfg->direct);
    }
  }
  int crc = cli_conn_close(p, BENCH_IO_TIMEOUT_MS);
  if (rc == 0 && crc != QP_OK && crc != QP_ERR_CLOSED) {
    rc = cli_qp_error("closing the connection", crc);
  }
  return rc;
}

int cli_main_bench(int argc, char **argv) {
  static char usage[8192];
  snprintf(usage, sizeof usage, "%s%s%s", BENCH_USAGE_HEAD, CLI_CONN_USAGE,
           BENCH_EXIT);
  cli_opt opts[CLI_CONN_OPTS_N + 5];
  memcpy(opts, CLI_CONN_OPTS, sizeof CLI_CONN_OPTS);
  static const cli_opt extra[5] = {{"bench", "NAME", false},
                                   {"iters", "N", false},
                                   {"ping-size", "BYTES", false},
                                   {"pong-size", "BYTES", false},
                                   {"json", NULL, false}};
  memcpy(opts + CLI_CONN_OPTS_N, extra, sizeof extra);
  cli_cmd cmd = {"quic-portal bench", usage, opts, CLI_CONN_OPTS_N + 5};
  cli_args a;
  int rc = cli_parse(&cmd, argc, argv, &a);
  bool server = false;
  if (rc == 0 && (a.npos != 1 || (strcmp(a.pos[0], "serve") != 0 &&
                                  strcmp(a.pos[0], "connect") != 0))) {
    rc = cli_usage_error(&cmd, a.npos == 0 ? "missing role: serve or connect"
                                           : "expected one role, serve or "
                                             "connect");
  }
  server = rc == 0 && strcmp(a.pos[0], "serve") == 0;
  cli_conn_cfg cfg;
  bench_cfg b;
  if (rc == 0) {
    rc = cli_conn_cfg_from_args(&a, server, &cfg);
    cfg.peer_cmd = server ? "quic-portal bench connect"
                          : "quic-portal bench serve";
  }
  if (rc == 0) {
    rc = parse_bench(&a, server, &b);
  }
  if (rc == 0) {
    rc = run_bench(&cfg, &b);
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}
