/*
 * udp_addr.c: socket addresses, and the one "host:port" parser and the one
 * name lookup (getaddrinfo) of the library. Every layer that takes an
 * address as text (STUN servers, the embedded STUN server, NAT discovery,
 * traversal) goes through udp_hostport_split.
 */
#include "udp/udp.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* Longest text quoted back in an error message. */
#define UDP_QUOTE_MAX 100

int udp_addr_from_ip(const char *ip, uint16_t port, udp_addr_t *out) {
  memset(out, 0, sizeof(*out));
  if (ip == NULL || *ip == '\0')
    ip = "0.0.0.0";
  struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
  if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof(*v4);
    return 0;
  }
  if (inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof(*v6);
    return 0;
  }
  return err_fail(QP_ERR_INVALID, "\"%.100s\" is not an IPv4 or IPv6 address",
                  ip);
}

int udp_addr_lookup(const char *host, uint16_t port, int family,
                    udp_addr_t *out) {
  if (host == NULL || *host == '\0')
    return err_fail(QP_ERR_INVALID, "host name is empty");
  if (udp_addr_from_ip(host, port, out) == 0)
    return 0;
  struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *list = NULL;
  int rv = getaddrinfo(host, NULL, &hints, &list);
  if (rv != 0 || list == NULL)
    return err_fail(QP_ERR_RESOLVE, "cannot resolve host \"%.100s\": %s", host,
                    rv != 0 ? gai_strerror(rv) : "no address");
  int rc = err_fail(QP_ERR_RESOLVE,
                    "host \"%.100s\" has no IPv4 or IPv6 address", host);
  for (struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, ai->ai_addr, ai->ai_addrlen);
    out->len = ai->ai_addrlen;
    udp_addr_set_port(out, port);
    rc = 0;
    break;
  }
  freeaddrinfo(list);
  return rc;
}

int udp_addr_resolve(const char *host, uint16_t port, udp_addr_t *out) {
  return udp_addr_lookup(host, port, AF_UNSPEC, out);
}

const char *udp_addr_to_string(const udp_addr_t *addr, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  udp_addr_t plain;
  udp_addr_unmap(addr, &plain); /* a dual-stack socket's IPv4 peer as IPv4 */
  if (plain.ss.ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&plain.ss;
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
    snprintf(buf, size, "%s:%u", ip, ntohs(v4->sin_port));
  } else if (plain.ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&plain.ss;
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
    snprintf(buf, size, "[%s]:%u", ip, ntohs(v6->sin6_port));
  } else {
    snprintf(buf, size, "(no address)");
  }
  return buf;
}

/* The four bytes of an IPv4 address, plain or IPv4-mapped; NULL for
 * anything else. */
static const uint8_t *ipv4_bytes(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return (const uint8_t *)&((const struct sockaddr_in *)&addr->ss)->sin_addr;
  if (addr->ss.ss_family != AF_INET6)
    return NULL;
  const struct in6_addr *a6 = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
  return IN6_IS_ADDR_V4MAPPED(a6) ? &a6->s6_addr[12] : NULL;
}

bool udp_addr_is_v4mapped(const udp_addr_t *addr) {
  return addr->ss.ss_family == AF_INET6 && ipv4_bytes(addr) != NULL;
}

int udp_addr_family(const udp_addr_t *addr) {
  return ipv4_bytes(addr) != NULL ? AF_INET : addr->ss.ss_family;
}

void udp_addr_unmap(const udp_addr_t *in, udp_addr_t *out) {
  if (!udp_addr_is_v4mapped(in)) {
    if (out != in)
      *out = *in;
    return;
  }
  struct sockaddr_in v4 = {.sin_family = AF_INET,
                           .sin_port = ((const struct sockaddr_in6 *)&in->ss)->sin6_port};
  memcpy(&v4.sin_addr, ipv4_bytes(in), sizeof(v4.sin_addr));
  memset(out, 0, sizeof(*out));
  memcpy(&out->ss, &v4, sizeof(v4));
  out->len = sizeof(v4);
}

bool udp_addr_to_family(const udp_addr_t *in, int family, udp_addr_t *out) {
  if (family == AF_INET6 && in->ss.ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&in->ss;
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = v4->sin_port};
    v6.sin6_addr.s6_addr[10] = 0xff;
    v6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&v6.sin6_addr.s6_addr[12], &v4->sin_addr, 4);
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, &v6, sizeof(v6));
    out->len = sizeof(v6);
    return true;
  }
  if (family == AF_INET && udp_addr_is_v4mapped(in)) {
    udp_addr_unmap(in, out);
    return true;
  }
  if (in->ss.ss_family != family)
    return false; /* an IPv4 socket cannot reach an IPv6 address */
  *out = *in;
  return true;
}

uint16_t udp_addr_port(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
  if (addr->ss.ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
  return 0;
}

void udp_addr_set_port(udp_addr_t *addr, uint16_t port) {
  if (addr->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&addr->ss)->sin_port = htons(port);
  else if (addr->ss.ss_family == AF_INET6)
    ((struct sockaddr_in6 *)&addr->ss)->sin6_port = htons(port);
}

bool udp_addr_same_ip(const udp_addr_t *a, const udp_addr_t *b) {
  const uint8_t *a4 = ipv4_bytes(a), *b4 = ipv4_bytes(b);
  if (a4 != NULL || b4 != NULL) /* IPv4 equals its IPv4-mapped form */
    return a4 != NULL && b4 != NULL && memcmp(a4, b4, 4) == 0;
  if (a->ss.ss_family != AF_INET6 || b->ss.ss_family != AF_INET6)
    return false;
  return memcmp(&((const struct sockaddr_in6 *)&a->ss)->sin6_addr,
                &((const struct sockaddr_in6 *)&b->ss)->sin6_addr,
                sizeof(struct in6_addr)) == 0;
}

bool udp_addr_equal(const udp_addr_t *a, const udp_addr_t *b) {
  return udp_addr_same_ip(a, b) && udp_addr_port(a) == udp_addr_port(b);
}

bool udp_addr_is_loopback(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)&addr->ss)->sin_addr.s_addr) >>
            24) == 127;
  if (addr->ss.ss_family == AF_INET6) {
    const struct in6_addr *a =
        &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) ||
           (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

bool udp_addr_is_unspecified(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return ((const struct sockaddr_in *)&addr->ss)->sin_addr.s_addr ==
           htonl(INADDR_ANY);
  if (addr->ss.ss_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr);
  return false;
}

/* ---- "host:port" ------------------------------------------------------- */

static int bad_hostport(const char *text, const char *why) {
  return err_fail(
      QP_ERR_INVALID,
      "\"%.*s\" is not an address (%s): expected host:port, ip:port, "
      "[ipv6]:port, or a host or IP alone",
      UDP_QUOTE_MAX, text, why);
}

/* Decimal 0-65535, nothing else. */
static bool parse_port(const char *text, uint16_t *port) {
  if (*text < '0' || *text > '9')
    return false;
  char *end = NULL;
  long value = strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > UINT16_MAX)
    return false;
  *port = (uint16_t)value;
  return true;
}

int udp_hostport_split(const char *text, uint16_t default_port, char *host,
                       size_t host_size, uint16_t *port) {
  if (text == NULL || *text == '\0')
    return err_fail(QP_ERR_INVALID, "address is empty: expected host:port");
  const char *begin = text, *end, *port_text = NULL;
  if (text[0] == '[') {
    begin = text + 1;
    end = strchr(begin, ']');
    if (end == NULL || (end[1] != '\0' && end[1] != ':'))
      return bad_hostport(text, "unbalanced [ ]");
    if (end[1] == ':')
      port_text = end + 2;
  } else {
    const char *colon = strchr(text, ':');
    bool one_colon = colon != NULL && strchr(colon + 1, ':') == NULL;
    /* Two or more colons without brackets: a bare IPv6 literal. */
    end = one_colon ? colon : text + strlen(text);
    if (one_colon)
      port_text = colon + 1;
  }
  size_t n = (size_t)(end - begin);
  if (n == 0)
    return bad_hostport(text, "no host");
  if (n >= host_size)
    return bad_hostport(text, "host too long");
  if (port_text != NULL && !parse_port(port_text, port))
    return bad_hostport(text, "port must be 0-65535");
  if (port_text == NULL)
    *port = default_port;
  memcpy(host, begin, n);
  host[n] = '\0';
  return 0;
}

int udp_addr_parse(const char *text, uint16_t default_port, udp_addr_t *out) {
  char host[UDP_HOST_MAX];
  uint16_t port = 0;
  int rc = udp_hostport_split(text, default_port, host, sizeof(host), &port);
  if (rc != 0)
    return rc;
  return udp_addr_from_ip(host, port, out);
}
