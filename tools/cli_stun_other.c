/*
 * cli_stun_other.c: the alternate address of the tool's own STUN server.
 * With --alt ADDR:0 the kernel picks the alternate port and the public API
 * reports only the primary one, so stun-server asks itself: one RFC 8489
 * Binding request to the primary address, whose answer carries the
 * alternate address in OTHER-ADDRESS (RFC 5780, section 7.4).
 */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define STUN_HDR 20
#define STUN_BINDING_REQUEST 0x0001
#define STUN_BINDING_SUCCESS 0x0101
#define STUN_OTHER_ADDRESS 0x802C
/* Loopback answers in microseconds; a second covers a loaded machine. */
#define OTHER_WAIT_MS 1000
#define OTHER_ANSWER_MAX 1500

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Format the OTHER-ADDRESS value v (len bytes) as ip:port or [ip]:port. */
static bool format_address(const uint8_t *v, size_t len, char *out,
                           size_t outlen) {
  char ip[INET6_ADDRSTRLEN];
  int fam = len >= 4 ? v[1] : 0;
  if (!((fam == 1 && len >= 8 &&
         inet_ntop(AF_INET, v + 4, ip, sizeof ip) != NULL) ||
        (fam == 2 && len >= 20 &&
         inet_ntop(AF_INET6, v + 4, ip, sizeof ip) != NULL))) {
    return false;
  }
  snprintf(out, outlen, fam == 2 ? "[%s]:%u" : "%s:%u", ip,
           (unsigned)be16(v + 2));
  return true;
}

/* Find OTHER-ADDRESS in a Binding success answer to transaction tx. */
static bool parse_answer(const uint8_t *m, size_t n, const uint8_t *tx,
                         char *out, size_t outlen) {
  if (n < STUN_HDR || be16(m) != STUN_BINDING_SUCCESS ||
      memcmp(m + 8, tx, 12) != 0) {
    return false;
  }
  size_t end = STUN_HDR + be16(m + 2);
  for (size_t o = STUN_HDR; o + 4 <= end && end <= n;) {
    uint16_t type = be16(m + o), len = be16(m + o + 2);
    if (o + 4 + len > end) {
      break;
    }
    if (type == STUN_OTHER_ADDRESS) {
      return format_address(m + o + 4, len, out, outlen);
    }
    o += 4 + (size_t)((len + 3) & ~3u); /* values are padded to 4 bytes */
  }
  return false;
}

bool cli_stun_other_address(const char *host, uint16_t port, char *out,
                            size_t outlen) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  bool v6 = strchr(host, ':') != NULL;
  /* A server on every address answers on loopback too. */
  const char *to = strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1"
                   : strcmp(host, "::") == 0    ? "::1"
                                                : host;
  if (v6 ? inet_pton(AF_INET6, to, &a6->sin6_addr) != 1
         : inet_pton(AF_INET, to, &a4->sin_addr) != 1) {
    return false;
  }
  ss.ss_family = v6 ? AF_INET6 : AF_INET;
  if (v6) {
    a6->sin6_port = htons(port);
  } else {
    a4->sin_port = htons(port);
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return false;
  }
  uint8_t req[STUN_HDR] = {0,   STUN_BINDING_REQUEST, 0, 0, 0x21, 0x12, 0xA4,
                           0x42};
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  for (int i = 0; i < 12; i++) { /* unique enough for one local query */
    req[8 + i] = (uint8_t)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> i));
  }
  uint8_t ans[OTHER_ANSWER_MAX];
  ssize_t n = -1;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  if (sendto(fd, req, sizeof req, 0, (struct sockaddr *)&ss,
             v6 ? sizeof *a6 : sizeof *a4) == (ssize_t)sizeof req &&
      poll(&pfd, 1, OTHER_WAIT_MS) == 1) {
    n = recv(fd, ans, sizeof ans, 0);
  }
  close(fd);
  return n > 0 && parse_answer(ans, (size_t)n, req + 8, out, outlen);
}
