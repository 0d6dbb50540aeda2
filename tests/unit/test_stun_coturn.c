/* ctest: labels=external,process */
/* Interoperability with coturn (a real third-party STUN server and client):
 * our client and NAT discovery against turnserver, and coturn's
 * turnutils_stunclient / turnutils_natdiscovery against our server. Every
 * process started here is killed at the end, and every wait is bounded.
 * Skipped, with the reason printed, when coturn is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common/error.h"
#include "udp/udp.h"
#include "stun/stun_client.h"
#include "stun/stun_nat.h"
#include "stun/stun_server.h"
#include "tu.h"

/* turnserver starts in well under a second; give it 10 s on a busy box. */
#define COTURN_READY_TIMEOUT_MS 10000
#define COTURN_STOP_TIMEOUT_MS 3000
/* turnutils_* retry for a few seconds when nobody answers; cap them. */
#define TOOL_TIMEOUT "15"
#define PORT_ATTEMPTS 32
#define OUTPUT_MAX 16384

typedef struct coturn {
  bool available;
  const char *skip_reason;
  pid_t pid;
  uint16_t port; /* primary; the alternate port is port + 1 */
  char log_path[64];
} coturn;

static bool udp_port_free(const char *ip, uint16_t port) {
  udp_addr_t a;
  if (udp_addr_parse(ip, port, &a) != 0)
    return false;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a.ss, a.len) == 0;
  if (fd >= 0)
    close(fd);
  return ok;
}

/* A port P with P and P+1 free on both loopback addresses. */
static uint16_t free_port_pair(void) {
  for (int i = 0; i < PORT_ATTEMPTS; i++) {
    uint16_t p = tu_free_udp_port();
    if (p == 0 || p == 65535)
      continue;
    if (udp_port_free("127.0.0.1", p) && udp_port_free("127.0.0.1", p + 1) &&
        udp_port_free("127.0.0.2", p) && udp_port_free("127.0.0.2", p + 1))
      return p;
  }
  return 0;
}

static void exec_turnserver(const coturn *c) {
  char port[8], alt[8], pidfile[80];
  snprintf(port, sizeof(port), "%u", c->port);
  snprintf(alt, sizeof(alt), "%u", c->port + 1);
  snprintf(pidfile, sizeof(pidfile), "%s.pid", c->log_path);
  int log = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (log >= 0) {
    dup2(log, STDOUT_FILENO);
    dup2(log, STDERR_FILENO);
  }
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
#endif
  execlp("turnserver", "turnserver", "-n", "--stun-only", "--no-auth",
         "--listening-ip", "127.0.0.1", "--listening-ip", "127.0.0.2",
         "--listening-port", port, "--alt-listening-port", alt, "--no-cli",
         "--no-tcp", "--no-tls", "--no-dtls", "--pidfile", pidfile,
         "--log-file", "stdout", "--simple-log", (char *)NULL);
  _exit(127);
}

static bool child_exited(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) == pid;
}

/* Ready when it answers a Binding request on the primary address. */
static bool wait_ready(coturn *c) {
  udp_addr_t server;
  udp_addr_t local;
  udp_addr_parse("127.0.0.1", c->port, &server);
  udp_addr_parse("127.0.0.1:0", 0, &local);
  udp_socket_t sock;
  if (udp_socket_open(&local, &sock) != 0)
    return false;
  int64_t deadline = tu_now_ms() + COTURN_READY_TIMEOUT_MS;
  bool ready = false;
  while (!ready && tu_now_ms() < deadline && !child_exited(c->pid)) {
    stun_client_result r;
    ready = stun_client_query(&sock, &server, 1, 200, &r) == 1;
  }
  udp_socket_close(&sock);
  return ready;
}

static void stop_coturn(coturn *c) {
  if (c->pid <= 0)
    return;
  kill(c->pid, SIGTERM);
  int64_t deadline = tu_now_ms() + COTURN_STOP_TIMEOUT_MS;
  while (!child_exited(c->pid)) {
    if (tu_now_ms() > deadline) {
      kill(c->pid, SIGKILL);
      waitpid(c->pid, NULL, 0);
      break;
    }
    usleep(20 * 1000);
  }
  c->pid = 0;
  char pidfile[80];
  snprintf(pidfile, sizeof(pidfile), "%s.pid", c->log_path);
  unlink(pidfile);
  unlink(c->log_path);
}

static int setup(void **state) {
  static coturn c;
  memset(&c, 0, sizeof(c));
  *state = &c;
  if (!tu_on_path("turnserver") || !tu_on_path("turnutils_stunclient") ||
      !tu_on_path("turnutils_natdiscovery")) {
    c.skip_reason = "coturn (turnserver, turnutils_*) is not installed";
    return 0;
  }
  c.port = free_port_pair();
  if (c.port == 0) {
    c.skip_reason = "no free UDP port pair on 127.0.0.1 and 127.0.0.2";
    return 0;
  }
  snprintf(c.log_path, sizeof(c.log_path), "/tmp/qp-coturn-%d.log",
           (int)getpid());
  c.pid = fork();
  if (c.pid == 0)
    exec_turnserver(&c);
  if (c.pid < 0 || !wait_ready(&c)) {
    print_message("turnserver did not come up; its log is %s\n", c.log_path);
    c.pid = c.pid < 0 ? 0 : c.pid;
    stop_coturn(&c);
    return -1;
  }
  c.available = true;
  return 0;
}

static int teardown(void **state) {
  stop_coturn(*state);
  return 0;
}

#define REQUIRE_COTURN(c)                                                      \
  do {                                                                         \
    if (!(c)->available)                                                       \
      TU_SKIP((c)->skip_reason);                                               \
  } while (0)

static void our_client_against_coturn(void **state) {
  coturn *c = *state;
  REQUIRE_COTURN(c);
  udp_addr_t server, local;
  udp_addr_parse("127.0.0.1", c->port, &server);
  udp_addr_parse("127.0.0.1:0", 0, &local);
  udp_socket_t sock;
  assert_int_equal(udp_socket_open(&local, &sock), 0);
  local = sock.local;
  stun_client_result r;
  assert_int_equal(stun_client_query(&sock, &server, 1, 2000, &r), 1);
  assert_true(udp_addr_equal(&r.mapped, &local));
  udp_socket_close(&sock);
}

static void our_discovery_against_coturn(void **state) {
  coturn *c = *state;
  REQUIRE_COTURN(c);
  stun_nat_config cfg = {.timeout_ms = 4000, .has_local = true};
  udp_addr_parse("127.0.0.1", c->port, &cfg.server);
  udp_addr_parse("127.0.0.1:0", 0, &cfg.local);
  stun_nat_result r;
  assert_int_equal(stun_nat_discover(&cfg, &r), 0);
  char text[256];
  print_message("discovery vs coturn: %s\n",
                stun_nat_to_string(&r, text, sizeof(text)));
  assert_true(r.rfc5780);
  assert_int_equal(r.type, STUN_NAT_TYPE_OPEN);
  assert_int_equal(r.mapping, STUN_NAT_MAPPING_ENDPOINT_INDEPENDENT);
  assert_int_equal(r.filtering, STUN_NAT_FILTERING_ENDPOINT_INDEPENDENT);
  char want[UDP_ADDRSTRLEN];
  snprintf(want, sizeof(want), "127.0.0.2:%u", c->port + 1);
  assert_string_equal(udp_addr_to_string(&r.other_address, text, sizeof(text)),
                      want);
}

/* Run a shell command with a time cap and collect its output. */
static void run_tool(const char *cmd, char *out, size_t cap) {
  char full[512];
  snprintf(full, sizeof(full), "timeout " TOOL_TIMEOUT " %s 2>&1", cmd);
  FILE *p = popen(full, "r");
  assert_non_null(p);
  size_t n = fread(out, 1, cap - 1, p);
  out[n] = '\0';
  pclose(p);
}

static void expect_in(const char *output, const char *needle) {
  if (!strstr(output, needle))
    fail_msg("expected \"%s\" in the tool's output:\n%s", needle, output);
}

static void coturn_stunclient_against_our_server(void **state) {
  coturn *c = *state;
  REQUIRE_COTURN(c);
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", "127.0.0.2:0", &server), 0);
  udp_addr_t primary, other;
  stun_server_address(server, 0, &primary);
  stun_server_address(server, 3, &other);
  char cmd[256], want[128], text[UDP_ADDRSTRLEN];
  static char output[OUTPUT_MAX];
  snprintf(cmd, sizeof(cmd), "turnutils_stunclient -f -p %u 127.0.0.1",
           udp_addr_port(&primary));
  run_tool(cmd, output, sizeof(output));
  stun_server_stop(server);
  expect_in(output, "UDP reflexive addr: 127.0.0.1:");
  snprintf(want, sizeof(want), "Other addr: : %s",
           udp_addr_to_string(&other, text, sizeof(text)));
  expect_in(output, want);
  snprintf(want, sizeof(want), "Response origin: : %s",
           udp_addr_to_string(&primary, text, sizeof(text)));
  expect_in(output, want);
}

static void coturn_natdiscovery_against_our_server(void **state) {
  coturn *c = *state;
  REQUIRE_COTURN(c);
  stun_server_t *server = NULL;
  assert_int_equal(stun_server_start("127.0.0.1:0", "127.0.0.2:0", &server), 0);
  udp_addr_t primary;
  stun_server_address(server, 0, &primary);
  uint16_t local_port = tu_free_udp_port();
  char cmd[256], want[64];
  static char output[OUTPUT_MAX];
  snprintf(cmd, sizeof(cmd),
           "turnutils_natdiscovery -m -f -L 127.0.0.1 -l %u -p %u 127.0.0.1",
           local_port, udp_addr_port(&primary));
  run_tool(cmd, output, sizeof(output));
  stun_server_stop(server);
  /* The mapped address it reports is exactly the socket it used. */
  snprintf(want, sizeof(want), "UDP reflexive addr: 127.0.0.1:%u", local_port);
  expect_in(output, want);
  expect_in(output, "NAT with Endpoint Independent Mapping!");
  expect_in(output, "NAT with Endpoint Independent Filtering!");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(our_client_against_coturn),
      cmocka_unit_test(our_discovery_against_coturn),
      cmocka_unit_test(coturn_stunclient_against_our_server),
      cmocka_unit_test(coturn_natdiscovery_against_our_server),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
