/*
 * cli_turn.c: `quic-portal turn-check`: does this TURN server work for us?
 * It allocates, gives itself a permission, loops a datagram through the
 * relay both ways and prints the relayed address (qp_turn_check).
 */
#include "cli.h"

#include <stdio.h>
#include <string.h>

#define TURN_CHECK_DEFAULT_TIMEOUT_S 5.0

static const char TURN_USAGE[] =
    "Usage: quic-portal turn-check [--shared-secret] [--timeout SECS]\n"
    "                              USER:PASS@HOST[:PORT]\n"
    "\n"
    "Check a TURN server (RFC 8656, e.g. coturn) end to end: allocate a\n"
    "relayed address with these credentials, give it a permission for this\n"
    "machine's public address, send a datagram through the relay in each\n"
    "direction, deallocate. Prints the relayed and public addresses and the\n"
    "times. The port is 3478 when omitted; IPv6 hosts in brackets.\n"
    "\n"
    "  --shared-secret     the argument is SECRET@HOST[:PORT]: coturn's REST\n"
    "                      shared secret (use-auth-secret), as --turn-secret\n"
    "                      of serve and connect\n"
    "  --timeout SECS      give up after SECS (default 5)\n"
    "  --log-level LEVEL   library log: debug, info, warn, error, none\n"
    "\n"
    "Exit status: 0 the relay works; 1 it does not (the message says why:\n"
    "401 wrong credentials, 486 quota, no answer, one direction lost);\n"
    "2 bad command line.\n";

static const cli_opt TURN_OPTS[] = {
    {"shared-secret", NULL, false},
    {"timeout", "SECS", false},
};

int cli_main_turn_check(int argc, char **argv) {
  cli_cmd cmd = {"quic-portal turn-check", TURN_USAGE, TURN_OPTS, 2};
  cli_args a;
  int rc = cli_parse(&cmd, argc, argv, &a);
  double secs = TURN_CHECK_DEFAULT_TIMEOUT_S;
  const char *v;
  if (rc == 0 && a.npos != 1) {
    rc = cli_usage_error(&cmd, a.npos == 0 ? "missing USER:PASS@HOST[:PORT]"
                                           : "expected one TURN server");
  }
  if (rc == 0 && (v = cli_get(&a, "timeout"))) {
    rc = cli_parse_secs(&cmd, "--timeout", v, 0.001, 3600, &secs);
  }
  qp_turn_check_result r;
  if (rc == 0) {
    int qrc = qp_turn_check(a.pos[0], cli_has(&a, "shared-secret"),
                            (int)(secs * 1000), &r);
    if (qrc == QP_ERR_INVALID) {
      rc = cli_usage_error(&cmd, "%s", qp_last_error());
    } else if (qrc != QP_OK) {
      rc = cli_qp_error("the TURN check", qrc);
    } else {
      printf("TURN server %s works\n"
             "relayed address: %s\n"
             "public address:  %s\n"
             "allocation lifetime %u s; allocated in %lld ms; permission and "
             "a datagram through the relay both ways in %lld ms\n",
             r.server, r.relayed, r.mapped, (unsigned)r.lifetime_s,
             (long long)r.allocate_ms, (long long)r.relay_ms);
    }
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}
