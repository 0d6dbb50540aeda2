/*
 * qp_bench.c: qp-bench, the benchmark tool of quic-portal.
 *
 *   qp-bench server --port P --mode echo|pingpong|sink [...]
 *   qp-bench client --host H --port P --bench pingpong|throughput|rtt [...]
 *   qp-bench idle   --host H --port P --seconds S [...]
 *
 * Every client run prints exactly one JSON object on stdout; progress and
 * errors go to stderr. The same framing runs over QUIC (libquicportal) or,
 * with --tcp, over one plain TCP connection as the baseline, so figures
 * compare across transports, runs and implementations of the wire protocol.
 * The full interface is in --help and bench/README.md.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each send and each awaited answer of a client must finish within this
 * long; a server's send too. Servers wait for the next message without a
 * limit: a QUIC peer that vanishes ends the connection by idle timeout, and
 * a TCP peer's kernel closes its socket. */
#define BENCH_IO_TIMEOUT_MS 120000
/* Default connect timeout of clients and listen timeout of servers. */
#define CLIENT_CONNECT_TIMEOUT_S 10
#define SERVER_LISTEN_TIMEOUT_S 60

static const char HELP[] =
    "qp-bench " QP_VERSION
    ": benchmark of libquicportal (QUIC) against plain TCP\n"
    "\n"
    "Usage:\n"
    "  qp-bench server --port P [--bind ADDR] --mode echo|pingpong|sink\n"
    "                  [--pong-size N] [--tcp] [--cc NAME] [--timeout S]\n"
    "  qp-bench client --host H --port P --bench pingpong|throughput|rtt\n"
    "                  [--ping-size N] [--pong-size N] [--iters N]\n"
    "                  [--msg-size N] [--total-mb N] [--tcp] [--cc NAME]\n"
    "                  [--timeout S]\n"
    "  qp-bench idle   --host H --port P --seconds S [--tcp] [--cc NAME]\n"
    "                  [--timeout S]\n"
    "  qp-bench --help | --version\n"
    "\n"
    "Server (serves one connection, exits 0 when the client closes, then\n"
    "prints one JSON object with its own counts and statistics on stdout):\n"
    "  --port P        UDP port (TCP with --tcp) to listen on, 1-65535\n"
    "  --bind ADDR     local address, IPv4 or IPv6 literal (default 0.0.0.0)\n"
    "  --mode echo     answer every message with the same bytes\n"
    "  --mode pingpong answer every message with --pong-size bytes\n"
    "  --mode sink     count payload bytes and messages; answer a 0-byte\n"
    "                  message with 16 bytes: the byte count, then the\n"
    "                  message count since the last answer (each unsigned\n"
    "                  64-bit big-endian), then reset both counts\n"
    "  --pong-size N   size of the pong in pingpong mode (default 5120)\n"
    "\n"
    "Client (prints one JSON object on stdout):\n"
    "  --bench pingpong    --iters rounds (default 50) of a --ping-size ping\n"
    "                      (default 614400) answered by a pong that must be\n"
    "                      --pong-size bytes (default 5120); needs a pingpong\n"
    "                      server. Reports avg/p50/p75/p90/p99/min/max ms.\n"
    "  --bench throughput  sends --total-mb MiB (default 1024) in --msg-size\n"
    "                      messages (default 1048576), then a 0-byte message;\n"
    "                      the clock stops at the sink server's 16-byte answer,\n"
    "                      whose counts must match. Reports Gbit/s (10^9).\n"
    "  --bench rtt         --iters (default 10000) 1-byte round trips to an\n"
    "                      echo server. Reports p50/p90/p99 microseconds.\n"
    "  Percentiles are sorted[int(n*q)]. Extra keys: transport, connect_ms,\n"
    "  lost_packets, cwnd, srtt_us (QUIC: qp_portal_get_stats; TCP:\n"
    "  TCP_INFO retransmits, cwnd*mss, rtt), rss_kb, rss_peak_kb.\n"
    "\n"
    "Idle (needs an echo server):\n"
    "  connects, stays idle --seconds S (0-86400), then checks the connection\n"
    "  with one 1-byte round trip. Reports rss_delta_kb: VmRSS after the idle\n"
    "  period minus VmRSS before the portal was created.\n"
    "\n"
    "Common:\n"
    "  --tcp           the same framing (4-byte big-endian length + payload)\n"
    "                  over one TCP connection with TCP_NODELAY (baseline)\n"
    "  --cc NAME       QUIC congestion controller: cubic (library default),\n"
    "                  bbr, bbr2, reno, fixed; applies to this side's sending\n"
    "  --max-udp-payload N  QUIC max_udp_payload, 1200-65527 (default 1200)\n"
    "  --mtu-discovery, --no-mtu-discovery  QUIC path MTU discovery on (the\n"
    "                  library default) or off (packets of max-udp-payload)\n"
    "  --timeout S     connect timeout of client and idle (default 10 s),\n"
    "                  wait for the client of a server (default 60 s)\n"
    "  Options also accept --name=value. Sizes are bytes.\n"
    "\n"
    "Exit status: 0 success; 1 a library or network error (the library's\n"
    "message is printed) or a wrong answer; 2 a bad command line.\n"
    "The library logs to stderr; set QUIC_PORTAL_LOG=debug|info|warn|...\n";

/* ------------------------------------------------------------------------ */
/* Command line                                                              */
/* ------------------------------------------------------------------------ */

enum { CMD_SERVER = 1u, CMD_CLIENT = 2u, CMD_IDLE = 4u };

enum opt_id {
  O_PORT,
  O_BIND,
  O_MODE,
  O_PONG_SIZE,
  O_HOST,
  O_BENCH,
  O_PING_SIZE,
  O_ITERS,
  O_MSG_SIZE,
  O_TOTAL_MB,
  O_SECONDS,
  O_TCP,
  O_CC,
  O_MAX_UDP_PAYLOAD,
  O_MTU_DISCOVERY,
  O_NO_MTU_DISCOVERY,
  O_TIMEOUT,
  O_COUNT
};

static const struct opt_def {
  const char *name;
  bool has_arg;
  unsigned cmds;
} OPTS[O_COUNT] = {
    [O_PORT] = {"port", true, CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_BIND] = {"bind", true, CMD_SERVER},
    [O_MODE] = {"mode", true, CMD_SERVER},
    [O_PONG_SIZE] = {"pong-size", true, CMD_SERVER | CMD_CLIENT},
    [O_HOST] = {"host", true, CMD_CLIENT | CMD_IDLE},
    [O_BENCH] = {"bench", true, CMD_CLIENT},
    [O_PING_SIZE] = {"ping-size", true, CMD_CLIENT},
    [O_ITERS] = {"iters", true, CMD_CLIENT},
    [O_MSG_SIZE] = {"msg-size", true, CMD_CLIENT},
    [O_TOTAL_MB] = {"total-mb", true, CMD_CLIENT},
    [O_SECONDS] = {"seconds", true, CMD_IDLE},
    [O_TCP] = {"tcp", false, CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_CC] = {"cc", true, CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_MAX_UDP_PAYLOAD] = {"max-udp-payload", true,
                           CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_NO_MTU_DISCOVERY] = {"no-mtu-discovery", false,
                            CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_MTU_DISCOVERY] = {"mtu-discovery", false,
                         CMD_SERVER | CMD_CLIENT | CMD_IDLE},
    [O_TIMEOUT] = {"timeout", true, CMD_SERVER | CMD_CLIENT | CMD_IDLE},
};

typedef enum { MODE_ECHO, MODE_PINGPONG, MODE_SINK } server_mode;
typedef enum { B_PINGPONG, B_THROUGHPUT, B_RTT } bench_kind;

typedef struct config {
  unsigned cmd;
  const char *cmd_name;
  bench_transport transport;
  const char *host;
  const char *bind;
  uint16_t port;
  server_mode mode;
  bench_kind bench;
  uint64_t ping_size;
  uint64_t pong_size;
  uint64_t iters;
  uint64_t msg_size;
  uint64_t total_mb;
  uint64_t seconds;
  int timeout_ms;
  bench_net_opts net;
} config;

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "qp-bench: %s\nTry 'qp-bench --help'.\n", msg);
  return BENCH_EXIT_USAGE;
}

/* A decimal integer in [min, max]; no sign, no spaces, no suffix. */
static int parse_u64(const char *opt, const char *s, uint64_t min,
                     uint64_t max, uint64_t *out) {
  uint64_t v = 0;
  bool ok = s[0] != '\0';
  for (const char *p = s; ok && *p; p++) {
    if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) {
      ok = false;
      break;
    }
    v = v * 10 + (uint64_t)(*p - '0');
  }
  if (!ok || v < min || v > max) {
    return usage_error("invalid value '%s' for --%s: expected an integer from "
                       "%" PRIu64 " to %" PRIu64,
                       s, opt, min, max);
  }
  *out = v;
  return 0;
}

static int parse_choice(const char *opt, const char *s,
                        const char *const *names, int count, int *out) {
  for (int i = 0; i < count; i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = i;
      return 0;
    }
  }
  char list[128] = "";
  for (int i = 0; i < count; i++) {
    strncat(list, names[i], sizeof list - strlen(list) - 1);
    if (i + 1 < count) {
      strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
  }
  return usage_error("invalid value '%s' for --%s: expected one of %s", s, opt,
                     list);
}

/* What the command line gave: the value of each option (NULL for a flag or
 * an option not given) and whether it was given. */
typedef struct opt_vals {
  const char *val[O_COUNT];
  bool seen[O_COUNT];
} opt_vals;

/* A numeric option: where it goes, its default and its range. */
typedef struct num_opt {
  int opt;
  uint64_t *dst;
  uint64_t def, min, max;
} num_opt;

/* Sets every field of the table to its default or to its parsed value. */
static int apply_numbers(const opt_vals *ov, const num_opt *t, size_t n) {
  for (size_t k = 0; k < n; k++) {
    *t[k].dst = t[k].def;
    int rc;
    if (ov->seen[t[k].opt] &&
        (rc = parse_u64(OPTS[t[k].opt].name, ov->val[t[k].opt], t[k].min,
                        t[k].max, t[k].dst)) != 0) {
      return rc;
    }
  }
  return 0;
}

static bool is_help(const char *a) {
  return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* argv[1]: help, version or the command. Returns 0, BENCH_EXIT_USAGE, or
 * -1 when help or the version was printed. */
static int parse_command(int argc, char **argv, config *cfg) {
  static const struct {
    const char *name;
    unsigned cmd;
  } cmds[] = {{"server", CMD_SERVER}, {"client", CMD_CLIENT}, {"idle", CMD_IDLE}};
  if (argc < 2) {
    return usage_error("missing command: server, client or idle");
  }
  const char *cmd = argv[1];
  if (is_help(cmd) || strcmp(cmd, "help") == 0) {
    fputs(HELP, stdout);
    return -1;
  }
  if (strcmp(cmd, "--version") == 0) {
    printf("qp-bench %s\n", QP_VERSION);
    return -1;
  }
  memset(cfg, 0, sizeof *cfg);
  cfg->cmd_name = cmd;
  for (size_t k = 0; k < sizeof cmds / sizeof cmds[0]; k++) {
    if (strcmp(cmd, cmds[k].name) == 0) {
      cfg->cmd = cmds[k].cmd;
      return 0;
    }
  }
  return usage_error("unknown command '%s': expected server, client or idle",
                     cmd);
}

static int find_opt(const char *name, size_t nlen) {
  for (int o = 0; o < O_COUNT; o++) {
    if (strlen(OPTS[o].name) == nlen && strncmp(OPTS[o].name, name, nlen) == 0) {
      return o;
    }
  }
  return -1;
}

/* argv[i] is "--name" or "--name=value"; takes the value (from argv[i+1]
 * when needed, advancing *i) into ov. */
static int take_option(int argc, char **argv, int *i, const config *cfg,
                       opt_vals *ov) {
  const char *a = argv[*i];
  if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
    return usage_error("unexpected argument '%s' (options start with --)", a);
  }
  const char *name = a + 2;
  const char *eq = strchr(name, '=');
  size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
  int id = find_opt(name, nlen);
  if (id < 0) {
    return usage_error("unknown option '%.*s'", (int)nlen + 2, a);
  }
  if (!(OPTS[id].cmds & cfg->cmd)) {
    return usage_error("option --%s is not valid for '%s'", OPTS[id].name,
                       cfg->cmd_name);
  }
  if (ov->seen[id]) {
    return usage_error("option --%s given twice", OPTS[id].name);
  }
  ov->seen[id] = true;
  if (!OPTS[id].has_arg) {
    return eq ? usage_error("option --%s takes no value", OPTS[id].name) : 0;
  }
  if (eq) {
    ov->val[id] = eq + 1;
  } else if (*i + 1 < argc) {
    ov->val[id] = argv[++*i];
  } else {
    return usage_error("option --%s needs a value", OPTS[id].name);
  }
  return 0;
}

/* Every option after the command, then the ones the command requires. */
static int collect_options(int argc, char **argv, const config *cfg,
                           opt_vals *ov) {
  static const struct {
    unsigned cmd;
    int opts[3];
    size_t n;
  } required[] = {{CMD_SERVER, {O_PORT, O_MODE, 0}, 2},
                  {CMD_CLIENT, {O_HOST, O_PORT, O_BENCH}, 3},
                  {CMD_IDLE, {O_HOST, O_PORT, O_SECONDS}, 3}};
  memset(ov, 0, sizeof *ov);
  for (int i = 2; i < argc; i++) {
    if (is_help(argv[i])) {
      fputs(HELP, stdout);
      return -1;
    }
    int rc = take_option(argc, argv, &i, cfg, ov);
    if (rc != 0) {
      return rc;
    }
  }
  for (size_t k = 0; k < sizeof required / sizeof required[0]; k++) {
    for (size_t r = 0; required[k].cmd == cfg->cmd && r < required[k].n; r++) {
      if (!ov->seen[required[k].opts[r]]) {
        return usage_error("'%s' needs --%s", cfg->cmd_name,
                           OPTS[required[k].opts[r]].name);
      }
    }
  }
  return 0;
}

/* --cc, --max-udp-payload, --[no-]mtu-discovery: QUIC only. */
static int apply_quic_options(const opt_vals *ov, config *cfg) {
  static const int quic_only[] = {O_CC, O_MAX_UDP_PAYLOAD, O_MTU_DISCOVERY,
                                  O_NO_MTU_DISCOVERY};
  for (size_t k = 0; k < sizeof quic_only / sizeof quic_only[0]; k++) {
    if (ov->seen[quic_only[k]] && cfg->transport == BENCH_TCP) {
      return usage_error("--%s applies to QUIC only, not with --tcp",
                         OPTS[quic_only[k]].name);
    }
  }
  if (ov->seen[O_MTU_DISCOVERY] && ov->seen[O_NO_MTU_DISCOVERY]) {
    return usage_error("--mtu-discovery and --no-mtu-discovery contradict "
                       "each other");
  }
  cfg->net.mtu_discovery_set =
      ov->seen[O_MTU_DISCOVERY] || ov->seen[O_NO_MTU_DISCOVERY];
  cfg->net.mtu_discovery = ov->seen[O_MTU_DISCOVERY];
  if (ov->seen[O_MAX_UDP_PAYLOAD]) {
    /* 1200: the QUIC minimum (RFC 9000, 14.1); 65527: the largest UDP
     * payload over IPv4. */
    uint64_t v;
    int rc = parse_u64("max-udp-payload", ov->val[O_MAX_UDP_PAYLOAD], 1200,
                       65527, &v);
    if (rc != 0) {
      return rc;
    }
    cfg->net.max_udp_payload = (uint32_t)v;
  }
  if (ov->seen[O_CC]) {
    if (qp_cc_from_string(ov->val[O_CC], &cfg->net.cc) != QP_OK) {
      return usage_error("invalid value '%s' for --cc: %s", ov->val[O_CC],
                         qp_last_error());
    }
    cfg->net.cc_set = true;
  }
  return 0;
}

/* Options of every command: address, transport, timeout, pong size. */
static int apply_common(const opt_vals *ov, config *cfg) {
  uint64_t port, timeout_s;
  const num_opt nums[] = {
      {O_PORT, &port, 0, 1, 65535},
      {O_TIMEOUT, &timeout_s,
       cfg->cmd == CMD_SERVER ? SERVER_LISTEN_TIMEOUT_S : CLIENT_CONNECT_TIMEOUT_S,
       1, 86400},
      {O_PONG_SIZE, &cfg->pong_size, 5120, 0, QP_MAX_MESSAGE_SIZE},
  };
  int rc = apply_numbers(ov, nums, sizeof nums / sizeof nums[0]);
  if (rc != 0) {
    return rc;
  }
  cfg->port = (uint16_t)port;
  cfg->timeout_ms = (int)(timeout_s * 1000);
  cfg->transport = ov->seen[O_TCP] ? BENCH_TCP : BENCH_QUIC;
  cfg->host = ov->val[O_HOST];
  cfg->bind = ov->val[O_BIND];
  if (cfg->host && cfg->host[0] == '\0') {
    return usage_error("--host must not be empty");
  }
  return apply_quic_options(ov, cfg);
}

static int apply_server(const opt_vals *ov, config *cfg) {
  static const char *const modes[] = {"echo", "pingpong", "sink"};
  int m;
  int rc = parse_choice("mode", ov->val[O_MODE], modes, 3, &m);
  if (rc != 0) {
    return rc;
  }
  cfg->mode = (server_mode)m;
  if (ov->seen[O_PONG_SIZE] && cfg->mode != MODE_PINGPONG) {
    return usage_error("--pong-size applies only to --mode pingpong");
  }
  return 0;
}

/* Options that would silently not apply to the chosen bench are refused. */
static int check_applies(const opt_vals *ov, bench_kind bench) {
  static const struct {
    int opt;
    unsigned benches; /* bit per bench_kind */
    const char *which;
  } applies[] = {
      {O_PING_SIZE, 1u << B_PINGPONG, "pingpong"},
      {O_PONG_SIZE, 1u << B_PINGPONG, "pingpong"},
      {O_ITERS, 1u << B_PINGPONG | 1u << B_RTT, "pingpong and rtt"},
      {O_MSG_SIZE, 1u << B_THROUGHPUT, "throughput"},
      {O_TOTAL_MB, 1u << B_THROUGHPUT, "throughput"},
  };
  for (size_t k = 0; k < sizeof applies / sizeof applies[0]; k++) {
    if (ov->seen[applies[k].opt] && !(applies[k].benches & (1u << bench))) {
      return usage_error("--%s applies only to --bench %s",
                         OPTS[applies[k].opt].name, applies[k].which);
    }
  }
  return 0;
}

static int apply_client(const opt_vals *ov, config *cfg) {
  static const char *const benches[] = {"pingpong", "throughput", "rtt"};
  int b;
  int rc = parse_choice("bench", ov->val[O_BENCH], benches, 3, &b);
  if (rc != 0 || (rc = check_applies(ov, (bench_kind)b)) != 0) {
    return rc;
  }
  cfg->bench = (bench_kind)b;
  const num_opt nums[] = {
      {O_PING_SIZE, &cfg->ping_size, 614400, 0, QP_MAX_MESSAGE_SIZE},
      {O_ITERS, &cfg->iters, cfg->bench == B_RTT ? 10000 : 50, 1, 100000000},
      /* 0-byte messages are the throughput terminator: at least 1 byte. */
      {O_MSG_SIZE, &cfg->msg_size, 1048576, 1, QP_MAX_MESSAGE_SIZE},
      {O_TOTAL_MB, &cfg->total_mb, 1024, 1, UINT64_C(1) << 24},
  };
  return apply_numbers(ov, nums, sizeof nums / sizeof nums[0]);
}

/* Parses argv into *cfg. Returns 0, BENCH_EXIT_USAGE, or -1 when help or
 * the version was printed (exit 0). */
static int parse_args(int argc, char **argv, config *cfg) {
  opt_vals ov;
  int rc = parse_command(argc, argv, cfg);
  if (rc != 0 || (rc = collect_options(argc, argv, cfg, &ov)) != 0 ||
      (rc = apply_common(&ov, cfg)) != 0) {
    return rc;
  }
  if (cfg->cmd == CMD_SERVER) {
    return apply_server(&ov, cfg);
  }
  if (cfg->cmd == CMD_IDLE) {
    const num_opt secs = {O_SECONDS, &cfg->seconds, 0, 0, 86400};
    return apply_numbers(&ov, &secs, 1);
  }
  return apply_client(&ov, cfg);
}

/* ------------------------------------------------------------------------ */
/* JSON output                                                               */
/* ------------------------------------------------------------------------ */

typedef struct jbuf {
  char s[2048];
  size_t n;
} jbuf;

static void jadd(jbuf *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void jadd(jbuf *j, const char *fmt, ...) {
  if (j->n >= sizeof j->s) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(j->s + j->n, sizeof j->s - j->n, fmt, ap);
  va_end(ap);
  if (w > 0) {
    j->n += (size_t)w;
  }
}

/* The connection statistics and memory keys of every result. */
static void jadd_stats(jbuf *j, const bench_conn_stats *st) {
  jadd(j, ",\"lost_packets\":%" PRIu64 ",\"cwnd\":%" PRIu64
          ",\"srtt_us\":%" PRIu64,
       st->lost_packets, st->cwnd, st->srtt_us);
  if (st->quic) {
    jadd(j, ",\"pto_count\":%" PRIu64 ",\"packets_sent\":%" PRIu64
            ",\"packets_received\":%" PRIu64 ",\"handshake_us\":%" PRIu64,
         st->pto_count, st->packets_sent, st->packets_received,
         st->handshake_us);
  }
  jadd(j, ",\"rss_kb\":%ld,\"rss_peak_kb\":%ld", bench_status_kb("VmRSS"),
       bench_status_kb("VmHWM"));
}

/* The keys every client result carries after its own figures. */
static void jadd_common(jbuf *j, const bench_conn *c,
                        const bench_conn_stats *st) {
  jadd(j, ",\"transport\":\"%s\",\"connect_ms\":%.3f",
       bench_transport_name(c->transport), c->connect_ms);
  jadd_stats(j, st);
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

static void fill_pattern(uint8_t *buf, size_t len) {
  for (size_t i = 0; i < len; i++) {
    buf[i] = (uint8_t)(i * 131u + 7u);
  }
}

static int run_server(const config *cfg) {
  static const char *const mode_names[] = {"echo", "pingpong", "sink"};
  fprintf(stderr, "qp-bench: %s %s server waiting on %s port %u\n",
          bench_transport_name(cfg->transport), mode_names[cfg->mode],
          cfg->bind ? cfg->bind : "0.0.0.0", (unsigned)cfg->port);
  uint8_t *pong = NULL;
  if (cfg->mode == MODE_PINGPONG) {
    pong = malloc(cfg->pong_size ? (size_t)cfg->pong_size : 1);
    if (!pong) {
      bench_errorf("out of memory for a %" PRIu64 "-byte pong",
                   cfg->pong_size);
      return BENCH_EXIT_FAIL;
    }
    fill_pattern(pong, (size_t)cfg->pong_size);
  }
  bench_conn conn;
  int exit_code = BENCH_EXIT_FAIL;
  if (bench_conn_listen(&conn, cfg->transport, cfg->bind, cfg->port,
                        &cfg->net, cfg->timeout_ms) != BENCH_OK) {
    goto out;
  }
  fprintf(stderr, "qp-bench: client connected (waited %.1f ms)\n",
          conn.connect_ms);
  uint64_t msgs = 0, bytes = 0, sink_msgs = 0, sink_bytes = 0;
  for (;;) {
    const uint8_t *data;
    size_t len;
    int rc = bench_conn_recv(&conn, &data, &len, -1);
    if (rc == BENCH_CLOSED) {
      break;
    }
    if (rc != BENCH_OK) {
      goto out;
    }
    msgs++;
    bytes += len;
    switch (cfg->mode) {
    case MODE_ECHO:
      rc = bench_conn_send(&conn, data, len, BENCH_IO_TIMEOUT_MS);
      break;
    case MODE_PINGPONG:
      rc = bench_conn_send(&conn, pong, (size_t)cfg->pong_size,
                           BENCH_IO_TIMEOUT_MS);
      break;
    case MODE_SINK:
      if (len > 0) {
        sink_msgs++;
        sink_bytes += len;
      } else {
        uint8_t answer[16];
        bench_put_be64(answer, sink_bytes);
        bench_put_be64(answer + 8, sink_msgs);
        sink_bytes = sink_msgs = 0;
        rc = bench_conn_send(&conn, answer, sizeof answer,
                             BENCH_IO_TIMEOUT_MS);
      }
      break;
    }
    if (rc != BENCH_OK) {
      goto out;
    }
  }
  fprintf(stderr,
          "qp-bench: client closed; served %" PRIu64 " messages, %" PRIu64
          " payload bytes; VmRSS %ld kB, VmHWM %ld kB\n",
          msgs, bytes, bench_status_kb("VmRSS"), bench_status_kb("VmHWM"));
  /* The server's own view (for throughput it is the receiver, whose socket
   * is where datagrams would be dropped): one JSON object on stdout. */
  bench_conn_stats st;
  if (bench_conn_stats_get(&conn, &st) != BENCH_OK) {
    goto out;
  }
  jbuf j = {.n = 0};
  jadd(&j,
       "{\"role\":\"server\",\"mode\":\"%s\",\"transport\":\"%s\","
       "\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64,
       mode_names[cfg->mode], bench_transport_name(cfg->transport), msgs,
       bytes);
  jadd_stats(&j, &st);
  printf("%s}\n", j.s);
  fflush(stdout);
  exit_code = 0;
out:
  bench_conn_destroy(&conn);
  free(pong);
  return exit_code;
}

/* ------------------------------------------------------------------------ */
/* Client benchmarks: each fills j with its own figures or returns false     */
/* ------------------------------------------------------------------------ */

static bool bench_pingpong(const config *cfg, bench_conn *c, jbuf *j) {
  size_t n = (size_t)cfg->iters;
  uint8_t *ping = malloc(cfg->ping_size ? (size_t)cfg->ping_size : 1);
  double *ms = malloc(n * sizeof *ms);
  bool ok = false;
  if (!ping || !ms) {
    bench_errorf("out of memory");
    goto out;
  }
  fill_pattern(ping, (size_t)cfg->ping_size);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *d;
    size_t len;
    double t0 = bench_now();
    if (bench_conn_send(c, ping, (size_t)cfg->ping_size,
                        BENCH_IO_TIMEOUT_MS) != BENCH_OK) {
      goto out;
    }
    int rc = bench_conn_recv(c, &d, &len, BENCH_IO_TIMEOUT_MS);
    ms[i] = (bench_now() - t0) * 1e3;
    if (rc == BENCH_CLOSED) {
      bench_errorf("server closed the connection before pong %zu", i + 1);
    }
    if (rc != BENCH_OK) {
      goto out;
    }
    if (len != cfg->pong_size) {
      bench_errorf("pong %zu has %zu bytes, expected %" PRIu64
                   " (is the server in --mode pingpong with the same "
                   "--pong-size?)",
                   i + 1, len, cfg->pong_size);
      goto out;
    }
  }
  double avg = bench_mean(ms, n);
  bench_sort(ms, n);
  jadd(j,
       "{\"bench\":\"pingpong\",\"iterations\":%zu,\"avg_ms\":%.3f,"
       "\"p50_ms\":%.3f,\"p75_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
       "\"min_ms\":%.3f,\"max_ms\":%.3f,\"ping_size\":%" PRIu64
       ",\"pong_size\":%" PRIu64,
       n, avg, bench_pct(ms, n, 0.5), bench_pct(ms, n, 0.75),
       bench_pct(ms, n, 0.9), bench_pct(ms, n, 0.99), ms[0], ms[n - 1],
       cfg->ping_size, cfg->pong_size);
  ok = true;
out:
  free(ping);
  free(ms);
  return ok;
}

static bool bench_throughput(const config *cfg, bench_conn *c, jbuf *j) {
  uint64_t total = cfg->total_mb * UINT64_C(1048576);
  size_t chunk = (size_t)(cfg->msg_size < total ? cfg->msg_size : total);
  uint8_t *buf = malloc(chunk);
  if (!buf) {
    bench_errorf("out of memory for a %zu-byte message", chunk);
    return false;
  }
  fill_pattern(buf, chunk);
  bool ok = false;
  uint64_t sent = 0, msgs = 0;
  double t0 = bench_now();
  while (sent < total) {
    size_t n = total - sent < chunk ? (size_t)(total - sent) : chunk;
    if (bench_conn_send(c, buf, n, BENCH_IO_TIMEOUT_MS) != BENCH_OK) {
      goto out;
    }
    sent += n;
    msgs++;
  }
  if (bench_conn_send(c, buf, 0, BENCH_IO_TIMEOUT_MS) != BENCH_OK) {
    goto out;
  }
  const uint8_t *d;
  size_t len;
  int rc = bench_conn_recv(c, &d, &len, BENCH_IO_TIMEOUT_MS);
  double secs = bench_now() - t0;
  if (rc == BENCH_CLOSED) {
    bench_errorf("server closed the connection instead of answering");
  }
  if (rc != BENCH_OK) {
    goto out;
  }
  if (len != 16) {
    bench_errorf("the answer has %zu bytes, expected 16 (is the server in "
                 "--mode sink?)",
                 len);
    goto out;
  }
  uint64_t got_bytes = bench_get_be64(d), got_msgs = bench_get_be64(d + 8);
  if (got_bytes != sent || got_msgs != msgs) {
    bench_errorf("the server counted %" PRIu64 " bytes in %" PRIu64
                 " messages, but %" PRIu64 " bytes in %" PRIu64
                 " messages were sent",
                 got_bytes, got_msgs, sent, msgs);
    goto out;
  }
  jadd(j,
       "{\"bench\":\"throughput\",\"bytes\":%" PRIu64
       ",\"seconds\":%.6f,\"gbit_per_s\":%.4f,\"messages\":%" PRIu64
       ",\"msg_size\":%zu",
       sent, secs, (double)sent * 8.0 / secs / 1e9, msgs, chunk);
  ok = true;
out:
  free(buf);
  return ok;
}

/* One 1-byte round trip carrying tag; returns its duration in seconds, or a
 * negative value after printing the error. */
static double round_trip_1(bench_conn *c, uint8_t tag, int timeout_ms) {
  const uint8_t *d;
  size_t len;
  double t0 = bench_now();
  if (bench_conn_send(c, &tag, 1, timeout_ms) != BENCH_OK) {
    return -1;
  }
  int rc = bench_conn_recv(c, &d, &len, timeout_ms);
  double dt = bench_now() - t0;
  if (rc == BENCH_CLOSED) {
    bench_errorf("server closed the connection instead of echoing");
  }
  if (rc != BENCH_OK) {
    return -1;
  }
  if (len != 1 || d[0] != tag) {
    bench_errorf("the echo has %zu bytes%s, expected the 1 byte sent (is the "
                 "server in --mode echo?)",
                 len, len == 1 ? " of another value" : "");
    return -1;
  }
  return dt;
}

static bool bench_rtt(const config *cfg, bench_conn *c, jbuf *j) {
  size_t n = (size_t)cfg->iters;
  double *us = malloc(n * sizeof *us);
  if (!us) {
    bench_errorf("out of memory");
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    double dt = round_trip_1(c, (uint8_t)i, BENCH_IO_TIMEOUT_MS);
    if (dt < 0) {
      free(us);
      return false;
    }
    us[i] = dt * 1e6;
  }
  double avg = bench_mean(us, n);
  bench_sort(us, n);
  jadd(j,
       "{\"bench\":\"rtt\",\"iterations\":%zu,\"p50_us\":%.1f,"
       "\"p90_us\":%.1f,\"p99_us\":%.1f,\"avg_us\":%.1f,\"min_us\":%.1f,"
       "\"max_us\":%.1f",
       n, bench_pct(us, n, 0.5), bench_pct(us, n, 0.9),
       bench_pct(us, n, 0.99), avg, us[0], us[n - 1]);
  free(us);
  return true;
}

/* Connects, runs the benchmark of cfg (or the idle measurement), closes,
 * and prints the JSON object. */
static int run_client(const config *cfg) {
  long rss_before = bench_status_kb("VmRSS");
  bench_conn conn;
  int exit_code = BENCH_EXIT_FAIL;
  if (bench_conn_connect(&conn, cfg->transport, cfg->host, cfg->port,
                         &cfg->net, cfg->timeout_ms) != BENCH_OK) {
    goto out;
  }
  fprintf(stderr, "qp-bench: connected to %s port %u over %s in %.3f ms\n",
          cfg->host, (unsigned)cfg->port, bench_transport_name(cfg->transport),
          conn.connect_ms);
  jbuf j = {.n = 0};
  bool ok;
  if (cfg->cmd == CMD_IDLE) {
    long rss_connected = bench_status_kb("VmRSS");
    bench_sleep((double)cfg->seconds);
    long rss_after = bench_status_kb("VmRSS");
    /* The connection must have survived the idle period. */
    ok = round_trip_1(&conn, 0x5a, BENCH_IO_TIMEOUT_MS) >= 0;
    jadd(&j,
         "{\"bench\":\"idle\",\"seconds\":%" PRIu64
         ",\"rss_delta_kb\":%ld,\"rss_before_kb\":%ld,"
         "\"rss_connected_kb\":%ld,\"rss_after_kb\":%ld,\"alive\":true",
         cfg->seconds, rss_after - rss_before, rss_before, rss_connected,
         rss_after);
  } else if (cfg->bench == B_PINGPONG) {
    ok = bench_pingpong(cfg, &conn, &j);
  } else if (cfg->bench == B_THROUGHPUT) {
    ok = bench_throughput(cfg, &conn, &j);
  } else {
    ok = bench_rtt(cfg, &conn, &j);
  }
  if (!ok) {
    goto out;
  }
  bench_conn_stats st;
  if (bench_conn_stats_get(&conn, &st) != BENCH_OK) {
    goto out;
  }
  jadd_common(&j, &conn, &st);
  jadd(&j, "}");
  if (bench_conn_close(&conn, BENCH_IO_TIMEOUT_MS) != BENCH_OK) {
    goto out;
  }
  printf("%s\n", j.s);
  fflush(stdout);
  exit_code = 0;
out:
  bench_conn_destroy(&conn);
  return exit_code;
}

int main(int argc, char **argv) {
  config cfg;
  int rc = parse_args(argc, argv, &cfg);
  if (rc < 0) {
    return 0;
  }
  if (rc > 0) {
    return rc;
  }
  return cfg.cmd == CMD_SERVER ? run_server(&cfg) : run_client(&cfg);
}
