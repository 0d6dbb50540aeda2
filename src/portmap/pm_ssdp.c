/*
 * SSDP search for the UPnP Internet Gateway Device, written here on the
 * udp layer instead of libminiupnpc's upnpDiscoverDevice.
 *
 * Why: libminiupnpc (2.2) keeps listening after the first answer until
 * its whole wait (at least 1000 ms) has passed without another one, to
 * collect every device on the LAN. We need one device, the gateway, and
 * it answers in milliseconds: miniupnpd answered in the lab's netns after
 * 54-62 ms (unicast or multicast, MX 0 or 1, no random delay), and
 * libminiupnpc returned after 1070-1123 ms. So the M-SEARCH goes to the
 * gateway itself (unicast to port 1900: UPnP Device Architecture 1.1
 * section 1.3.2 says a device answers a unicast search without delay) and
 * to the SSDP multicast group at once (a gateway whose IGD sits on another
 * address), and the search ends at the first answer whose description
 * URL the caller accepts.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/error.h"
#include "portmap/pm_internal.h"

/* The SSDP port and IPv4 multicast group (UDA 1.1 section 1.1.2). */
#define SSDP_PORT 1900
#define SSDP_MCAST_IP "239.255.255.250"
/* Multicast TTL: the gateway is on our link (UDA 1.1: TTL 2 by default). */
#define SSDP_TTL 2
/* MX of the multicast search: 1 s, the smallest UDA 1.1 allows; the
 * unicast search carries none (section 1.3.2). */
#define SSDP_MX_S 1
/* Resend the searches after this, doubling (UDP may lose them): 4 sends
 * in the first 1.5 s. */
#define SSDP_RESEND_FIRST_MS 100
/* Longest answer read (an answer is a few hundred bytes of headers). */
#define SSDP_ANSWER_MAX 1536
/* Description URLs tried per search: each costs one HTTP fetch, and one
 * LAN rarely has more IGDs than this. */
#define SSDP_MAX_TRIED 4

/* The value of header name (case-insensitive) in an HTTP-like answer, as
 * a NUL-terminated copy in out; false when absent or too long. */
static bool header_value(const char *msg, const char *name, char *out,
                         size_t size) {
  size_t nlen = strlen(name);
  for (const char *line = strstr(msg, "\r\n"); line != NULL;
       line = strstr(line, "\r\n")) {
    line += 2;
    if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
      continue;
    const char *v = line + nlen + 1;
    while (*v == ' ' || *v == '\t')
      v++;
    size_t vlen = strcspn(v, "\r\n");
    while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
      vlen--;
    if (vlen == 0 || vlen >= size)
      return false;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
    return true;
  }
  return false;
}

int pm_ssdp_location(const uint8_t *buf, size_t len, char *url, size_t size) {
  char msg[SSDP_ANSWER_MAX + 1];
  if (len > SSDP_ANSWER_MAX)
    len = SSDP_ANSWER_MAX;
  memcpy(msg, buf, len);
  msg[len] = '\0';
  if (strncmp(msg, "HTTP/1.1 200", 12) != 0 && strncmp(msg, "HTTP/1.0 200", 12) != 0)
    return QP_ERR_PROTOCOL;
  if (!header_value(msg, "LOCATION", url, size) ||
      strncasecmp(url, "http://", 7) != 0)
    return QP_ERR_PROTOCOL;
  return QP_OK;
}

/* The unicast search on uni (connected to the gateway's port 1900), the
 * multicast one on multi. */
static int send_searches(udp_socket_t *uni, udp_socket_t *multi,
                         const udp_addr_t *gw) {
  char gw_text[UDP_ADDRSTRLEN];
  udp_addr_t group;
  udp_addr_from_ip(SSDP_MCAST_IP, SSDP_PORT, &group);
  udp_addr_to_string(gw, gw_text, sizeof(gw_text));
  char msg[256];
  int n = snprintf(msg, sizeof(msg),
                   "M-SEARCH * HTTP/1.1\r\nHOST: %s\r\nMAN: \"ssdp:discover\"\r\n"
                   "ST: %s\r\n\r\n",
                   gw_text, PM_UPNP_IGD_TYPE);
  int rc = udp_send(uni, gw, (const uint8_t *)msg, (size_t)n, 0);
  n = snprintf(msg, sizeof(msg),
               "M-SEARCH * HTTP/1.1\r\nHOST: %s:%d\r\nMAN: \"ssdp:discover\"\r\n"
               "MX: %d\r\nST: %s\r\n\r\n",
               SSDP_MCAST_IP, SSDP_PORT, SSDP_MX_S, PM_UPNP_IGD_TYPE);
  /* The multicast one may fail where no multicast route exists: the
   * unicast search alone is enough then. */
  if (udp_send(multi, &group, (const uint8_t *)msg, (size_t)n, 0) != QP_OK &&
      rc != QP_OK)
    return rc;
  return QP_OK;
}

static int open_search_sockets(const pm_job_t *job, udp_socket_t *uni,
                               udp_socket_t *multi, udp_addr_t *gw) {
  udp_addr_t bind_addr = job->internal;
  udp_addr_set_port(&bind_addr, 0);
  *gw = job->gateway;
  udp_addr_set_port(gw, SSDP_PORT);
  uni->fd = multi->fd = -1;
  int rc = udp_socket_open(&bind_addr, uni);
  if (rc == QP_OK)
    rc = pm_connect(uni, gw); /* hears "port unreachable": no UPnP there */
  if (rc == QP_OK)
    rc = udp_socket_open(&bind_addr, multi);
  if (rc != QP_OK)
    return rc;
  unsigned char ttl = SSDP_TTL;
  struct in_addr ifaddr =
      ((const struct sockaddr_in *)&job->internal.ss)->sin_addr;
  /* Best effort: without them the kernel's defaults (TTL 1, the route's
   * interface) still reach a gateway on our link. */
  (void)setsockopt(multi->fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof(ttl));
  (void)setsockopt(multi->fd, IPPROTO_IP, IP_MULTICAST_IF, &ifaddr,
                   sizeof(ifaddr));
  return QP_OK;
}

/* Wait for one answer until until_ms: 1 with its URL, 0 at until_ms, or
 * an error code (QP_ERR_NOT_SUPPORTED: the gateway's port 1900 is closed). */
static int next_answer(udp_socket_t *const *socks, int64_t until_ms,
                       char *url, size_t size) {
  for (;;) {
    uint8_t buf[SSDP_ANSWER_MAX];
    size_t len = 0;
    udp_addr_t from;
    int got = pm_recv_until(socks, 2, until_ms, buf, sizeof(buf), &len,
                            &from, "UPnP: SSDP to the gateway");
    if (got <= 0)
      return got;
    if (pm_ssdp_location(buf, len, url, size) == QP_OK)
      return 1;
  }
}

static bool tried_before(char tried[][PM_UPNP_URL_MAX], int n,
                         const char *url) {
  for (int i = 0; i < n; i++)
    if (strcmp(tried[i], url) == 0)
      return true;
  return false;
}

int pm_ssdp_search(pm_job_t *job, int64_t until_ms, pm_ssdp_accept_fn accept,
                   void *ctx) {
  udp_socket_t uni, multi;
  udp_addr_t gw;
  int rc = open_search_sockets(job, &uni, &multi, &gw);
  udp_socket_t *const socks[2] = {&uni, &multi};
  char tried[SSDP_MAX_TRIED][PM_UPNP_URL_MAX];
  int ntried = 0, found = 0;
  int64_t wait = SSDP_RESEND_FIRST_MS;
  while (found == 0 && rc == QP_OK && clock_now_ms() < until_ms &&
         !atomic_load(&job->stopping)) {
    rc = send_searches(&uni, &multi, &gw);
    int64_t resend = clock_now_ms() + wait;
    wait *= 2;
    char url[PM_UPNP_URL_MAX];
    int got;
    while (rc == QP_OK && found == 0 && !atomic_load(&job->stopping) &&
           (got = next_answer(socks, resend < until_ms ? resend : until_ms,
                              url, sizeof(url))) != 0) {
      if (got < 0) {
        rc = got;
      } else if (ntried < SSDP_MAX_TRIED && !tried_before(tried, ntried, url)) {
        snprintf(tried[ntried++], PM_UPNP_URL_MAX, "%s", url);
        found = accept(url, ctx) ? 1 : 0;
      }
    }
  }
  udp_socket_close(&uni);
  udp_socket_close(&multi);
  if (rc != QP_OK)
    return rc;
  return found ? QP_OK : QP_ERR_TIMEOUT;
}
