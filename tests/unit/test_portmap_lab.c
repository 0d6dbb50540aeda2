/* ctest: labels=lab,slow timeout=240 */
/*
 * test_portmap_lab: UPnP IGD, NAT-PMP and PCP against a real miniupnpd on a
 * NAT router namespace (tests/lab/test_portmap.sh does the lab and the
 * checks; see docs/internals/portmap.md).
 *
 * Run by ctest, this binary runs that script (as root, under the lab lock)
 * and passes when it does. Run with "client", it is the host behind the
 * router: it opens a UDP socket (the portal's) and obeys one command per
 * line on stdin, answering one line each on stdout:
 *   map PROTOS DEADLINE_MS LIFETIME_S  -> MAPPED proto ext ms late | NOMAP code ms msg
 *   recv TIMEOUT_MS                   -> GOT text from | NOTHING
 *   status                            -> STATUS rc refreshes lost ext
 *   stop                              -> STOPPED ms
 * PROTOS is a comma list of upnp, natpmp, pcp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "tu.h"

#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "portmap/portmap.h"

#define LINE_MAX_LEN 256

static unsigned parse_protos(const char *text) {
  unsigned p = 0;
  if (strstr(text, "upnp"))
    p |= PORTMAP_UPNP;
  if (strstr(text, "natpmp"))
    p |= PORTMAP_NATPMP;
  if (strstr(text, "pcp"))
    p |= PORTMAP_PCP;
  return p;
}

static void print_result(const char *tag, int rc, const portmap_result_t *r,
                         int64_t ms) {
  char ext[UDP_ADDRSTRLEN];
  if (rc == QP_OK)
    printf("%s %s %s %lld %d refreshes=%u lost=%d\n", tag,
           portmap_proto_name(r->proto),
           udp_addr_to_string(&r->external, ext, sizeof(ext)), (long long)ms,
           r->late, r->refreshes, r->lost);
  else
    printf("NO%s %s %lld %s\n", tag, qp_err_name(rc), (long long)ms,
           qp_last_error());
}

static void cmd_map(portmap_t **pm, udp_socket_t *sock, const char *args) {
  char protos[64];
  int deadline = 0;
  unsigned lifetime = 0;
  if (sscanf(args, "%63s %d %u", protos, &deadline, &lifetime) != 3) {
    printf("ERROR bad map arguments\n");
    return;
  }
  portmap_config_t cfg = {.local = sock->local,
                          .protocols = parse_protos(protos),
                          .deadline_ms = deadline,
                          .lifetime_s = lifetime};
  portmap_stop(*pm); /* one mapping at a time */
  *pm = NULL;
  int64_t t0 = tu_now_ms();
  int rc = portmap_start(&cfg, pm);
  portmap_result_t r;
  if (rc == QP_OK)
    rc = portmap_wait(*pm, -1, &r);
  print_result("MAPPED", rc, &r, tu_now_ms() - t0);
}

static void cmd_recv(udp_socket_t *sock, int timeout_ms) {
  int64_t until = tu_now_ms() + timeout_ms;
  while (tu_now_ms() < until) {
    struct pollfd pfd = {.fd = sock->fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(until - tu_now_ms())) <= 0)
      continue;
    uint8_t buf[512];
    size_t len = 0;
    udp_addr_t from;
    if (udp_recv_one(sock, buf, sizeof(buf) - 1, &len, &from) == 1) {
      char who[UDP_ADDRSTRLEN];
      buf[len] = 0;
      printf("GOT %s %s\n", (char *)buf,
             udp_addr_to_string(&from, who, sizeof(who)));
      return;
    }
  }
  printf("NOTHING\n");
}

static int client_main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  udp_addr_t any;
  udp_socket_t sock;
  if (udp_addr_from_ip("0.0.0.0", 0, &any) != QP_OK ||
      udp_socket_open(&any, &sock) != QP_OK) {
    printf("ERROR socket: %s\n", qp_last_error());
    return 1;
  }
  printf("LOCAL %u\n", udp_addr_port(&sock.local));
  portmap_t *pm = NULL;
  char line[LINE_MAX_LEN];
  while (fgets(line, sizeof(line), stdin)) {
    if (strncmp(line, "map ", 4) == 0) {
      cmd_map(&pm, &sock, line + 4);
    } else if (strncmp(line, "recv ", 5) == 0) {
      cmd_recv(&sock, atoi(line + 5));
    } else if (strncmp(line, "status", 6) == 0) {
      portmap_result_t r;
      int rc = portmap_status(pm, &r);
      print_result("STATUS", rc, &r, 0);
    } else if (strncmp(line, "stop", 4) == 0) {
      int64_t t0 = tu_now_ms();
      portmap_stop(pm);
      pm = NULL;
      printf("STOPPED %lld\n", (long long)(tu_now_ms() - t0));
    } else {
      printf("ERROR unknown command\n");
    }
  }
  portmap_stop(pm);
  udp_socket_close(&sock);
  return 0;
}

/* ctest: the whole lab scenario, run by the script next to the lab. */
static void test_portmap_lab(void **state) {
  (void)state;
  if (!tu_have_netns_rights())
    TU_SKIP("the port-mapping lab needs root (network namespaces, nftables, "
            "miniupnpd)");
  char src[] = __FILE__;
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  assert_true(n > 0);
  self[n] = 0;
  /* lab_peer (tests/CMakeLists.txt) sits next to this binary: with it the
   * script also checks traversal through the mapping. */
  char peer[4096] = "";
  const char *dir = getenv("QP_TEST_BINARY_DIR");
  if (dir && snprintf(peer, sizeof(peer), "%s/lab_peer", dir) > 0 &&
      access(peer, X_OK) != 0)
    peer[0] = '\0';
  char cmd[16384];
  snprintf(cmd, sizeof(cmd),
           "flock /tmp/qp-lab.lock %s/../lab/test_portmap.sh %s %s",
           dirname(src), self, peer);
  int st = system(cmd);
  assert_true(WIFEXITED(st));
  if (WEXITSTATUS(st) == 77)
    TU_SKIP("tests/lab/test_portmap.sh skipped (see its output)");
  assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "client") == 0)
    return client_main();
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_portmap_lab)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
