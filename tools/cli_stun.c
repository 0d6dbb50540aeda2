/*
 * cli_stun.c: `quic-portal stun` (public address and NAT behavior, as
 * stunclient or pynat report them) and `quic-portal stun-server` (the
 * library's embedded STUN server, until SIGINT or SIGTERM).
 */
#include "cli.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define STUN_DEFAULT_TIMEOUT_S 5.0
/* Used when no --server is given: well-known public servers. */
#define STUN_DEFAULT_1 "stun.l.google.com:19302"
#define STUN_DEFAULT_2 "stun1.l.google.com:19302"

static const char STUN_USAGE[] =
    "Usage: quic-portal stun [--server HOST:PORT]... [--json] [--timeout "
    "SECS]\n"
    "\n"
    "Learn this machine's public address and its NAT's behavior (RFC 5780\n"
    "mapping and filtering, port allocation) from STUN servers.\n"
    "\n"
    "  --server HOST:PORT  STUN server, at most twice: the first one is asked\n"
    "                      everything (RFC 5780 when it supports it); the\n"
    "                      second one, if given, to compare mappings when the\n"
    "                      first one lacks RFC 5780. Default: " STUN_DEFAULT_1
    "\n"
    "                      and " STUN_DEFAULT_2 "\n"
    "  --json              one JSON object on stdout: server, second_server,\n"
    "                      local, mapped, type, mapping, filtering,\n"
    "                      port_allocation, rfc5780, port_delta, summary\n"
    "  --timeout SECS      give up after SECS (default 5)\n"
    "  --log-level LEVEL   library log: debug, info, warn, error, none\n"
    "\n"
    "Exit status: 0 a server answered; 1 no answer (\"UDP blocked\") or an\n"
    "error (bad name, socket); 2 bad command line.\n";

static const cli_opt STUN_OPTS[] = {
    {"server", "HOST:PORT", true},
    {"json", NULL, false},
    {"timeout", "SECS", false},
};

static void print_json(const qp_nat_report *r, const char *server,
                       const char *second) {
  char j[2048] = "{\"server\":";
  cli_json_str(j, sizeof j, server);
  strncat(j, ",\"second_server\":", sizeof j - strlen(j) - 1);
  if (second) {
    cli_json_str(j, sizeof j, second);
  } else {
    strncat(j, "null", sizeof j - strlen(j) - 1);
  }
  static const char *const keys[] = {"local", "mapped", "type", "mapping",
                                     "filtering", "port_allocation"};
  const char *vals[] = {r->local,   r->mapped,    r->type,
                        r->mapping, r->filtering, r->port_allocation};
  for (size_t i = 0; i < 6; i++) {
    size_t n = strlen(j);
    snprintf(j + n, sizeof j - n, ",\"%s\":", keys[i]);
    cli_json_str(j, sizeof j, vals[i]);
  }
  size_t n = strlen(j);
  if (r->has_port_delta) {
    snprintf(j + n, sizeof j - n, ",\"rfc5780\":%s,\"port_delta\":%d,",
             r->rfc5780 ? "true" : "false", r->port_delta);
  } else {
    snprintf(j + n, sizeof j - n, ",\"rfc5780\":%s,\"port_delta\":null,",
             r->rfc5780 ? "true" : "false");
  }
  strncat(j, "\"summary\":", sizeof j - strlen(j) - 1);
  cli_json_str(j, sizeof j, r->summary);
  printf("%s}\n", j);
}

static void print_human(const qp_nat_report *r, const char *server) {
  printf("STUN server:      %s (RFC 5780 behavior discovery: %s)\n", server,
         r->rfc5780 ? "yes" : "no");
  printf("local address:    %s\n", r->local);
  printf("public address:   %s\n", r->mapped[0] ? r->mapped : "(none)");
  printf("NAT type:         %s\n", r->type);
  printf("mapping:          %s\n", r->mapping);
  printf("filtering:        %s\n", r->filtering);
  printf("port allocation:  %s\n", r->port_allocation);
  if (r->has_port_delta) {
    printf("port delta:       %d\n", r->port_delta);
  }
}

int cli_main_stun(int argc, char **argv) {
  cli_cmd cmd = {"quic-portal stun", STUN_USAGE, STUN_OPTS, 3};
  cli_args a;
  int rc = cli_parse(&cmd, argc, argv, &a);
  size_t ns = cli_count(&a, "server");
  double secs = STUN_DEFAULT_TIMEOUT_S;
  const char *v;
  if (rc == 0 && a.npos > 0) {
    rc = cli_usage_error(&cmd, "unexpected argument '%s'", a.pos[0]);
  }
  if (rc == 0 && ns > 2) {
    rc = cli_usage_error(&cmd, "--server given %zu times: at most 2", ns);
  }
  for (size_t i = 0; rc == 0 && i < ns; i++) {
    char host[256];
    uint16_t port;
    rc = cli_parse_hostport(&cmd, "--server", cli_get_nth(&a, "server", i),
                            false, host, sizeof host, &port);
  }
  if (rc == 0 && (v = cli_get(&a, "timeout"))) {
    rc = cli_parse_secs(&cmd, "--timeout", v, 0.1, 600, &secs);
  }
  if (rc == 0) {
    const char *s1 = ns ? cli_get_nth(&a, "server", 0) : STUN_DEFAULT_1;
    const char *s2 = ns ? cli_get_nth(&a, "server", 1) : STUN_DEFAULT_2;
    qp_nat_report r;
    int qrc = qp_nat_discover(s1, s2, (int)(secs * 1000), &r);
    if (qrc != QP_OK) {
      rc = cli_qp_error("NAT discovery", qrc);
    } else {
      cli_has(&a, "json") ? print_json(&r, s1, s2) : print_human(&r, s1);
      rc = strcmp(r.type, "UDP blocked") == 0 ? CLI_EXIT_FAIL : 0;
    }
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}

/* ---- stun-server ------------------------------------------------------------ */

static const char STUN_SERVER_USAGE[] =
    "Usage: quic-portal stun-server --listen [ADDR:]PORT [--alt ADDR:PORT]\n"
    "\n"
    "Run the embedded STUN server (RFC 8489 Binding) until SIGINT or SIGTERM.\n"
    "\n"
    "  --listen [ADDR:]PORT primary address (ADDR default 0.0.0.0); PORT 0\n"
    "                      picks a free port. The first line on stdout is\n"
    "                      \"listening on ADDR:PORT\" with the port bound.\n"
    "  --alt ADDR:PORT     a second IP address (same family, another IP) to\n"
    "                      answer RFC 5780 behavior discovery (OTHER-ADDRESS,\n"
    "                      CHANGE-REQUEST) on 2 IPs x 2 ports; the second\n"
    "                      line on stdout is \"alternate address ADDR:PORT\"\n"
    "                      as bound\n"
    "  --log-level LEVEL   library log: debug, info, warn, error, none\n"
    "\n"
    "Exit status: 0 stopped by SIGINT or SIGTERM; 1 could not start (the\n"
    "message names the address); 2 bad command line.\n";

static const cli_opt STUN_SERVER_OPTS[] = {
    {"listen", "[ADDR:]PORT", false},
    {"alt", "ADDR:PORT", false},
};

static int serve_stun(const char *listen, const char *alt, const char *host) {
  qp_stun_server_t *srv = NULL;
  int qrc = qp_stun_server_start(listen, alt, &srv);
  if (qrc != QP_OK) {
    return cli_qp_error("starting the STUN server", qrc);
  }
  bool v6 = strchr(host, ':') != NULL;
  uint16_t port = qp_stun_server_port(srv);
  printf("listening on %s%s%s:%u\n", v6 ? "[" : "", host, v6 ? "]" : "",
         (unsigned)port);
  char other[INET6_ADDRSTRLEN + 16];
  if (alt && cli_stun_other_address(host, port, other, sizeof other)) {
    printf("alternate address %s\n", other);
  } else if (alt) {
    cli_errorf("the server does not tell its alternate address (%s asked)",
               alt);
  }
  fflush(stdout);
  struct timespec slice = {0, CLI_SLICE_MS * 1000000L};
  while (!cli_signal()) {
    nanosleep(&slice, NULL);
  }
  qp_stun_server_stop(srv);
  fprintf(stderr, "quic-portal: STUN server stopped by signal %d\n",
          cli_signal());
  return 0;
}

/* --listen [ADDR:]PORT into "ADDR:PORT" for the library (ADDR 0.0.0.0
 * when only a port is given). */
static int listen_address(const cli_cmd *cmd, const char *v, char *host,
                          size_t hostlen, char *addr, size_t addrlen) {
  uint16_t port;
  int rc;
  if (strchr(v, ':') == NULL) {
    uint64_t n = 0;
    rc = cli_parse_u64(cmd, "--listen", v, 0, 65535, &n);
    snprintf(host, hostlen, "0.0.0.0");
    snprintf(addr, addrlen, "0.0.0.0:%u", (unsigned)n);
    return rc;
  }
  rc = cli_parse_hostport(cmd, "--listen", v, true, host, hostlen, &port);
  if (rc == 0) {
    rc = cli_check_ip(cmd, "--listen", host, true);
  }
  snprintf(addr, addrlen, "%s", v);
  return rc;
}

int cli_main_stun_server(int argc, char **argv) {
  cli_cmd cmd = {"quic-portal stun-server", STUN_SERVER_USAGE,
                 STUN_SERVER_OPTS, 2};
  cli_args a;
  char host[256], alt_host[256], addr[300];
  uint16_t port;
  int rc = cli_parse(&cmd, argc, argv, &a);
  if (rc == 0 && a.npos > 0) {
    rc = cli_usage_error(&cmd, "unexpected argument '%s'", a.pos[0]);
  }
  if (rc == 0 && !cli_has(&a, "listen")) {
    rc = cli_usage_error(&cmd, "--listen [ADDR:]PORT is required");
  }
  if (rc == 0) {
    rc = listen_address(&cmd, cli_get(&a, "listen"), host, sizeof host, addr,
                        sizeof addr);
  }
  if (rc == 0 && cli_has(&a, "alt")) {
    rc = cli_parse_hostport(&cmd, "--alt", cli_get(&a, "alt"), true, alt_host,
                            sizeof alt_host, &port);
    if (rc == 0) {
      rc = cli_check_ip(&cmd, "--alt", alt_host, true);
    }
  }
  if (rc == 0) {
    rc = serve_stun(addr, cli_get(&a, "alt"), host);
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}
