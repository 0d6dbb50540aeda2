#include "stun/stun_addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

socklen_t stun_addr_len(const struct sockaddr_storage *addr) {
  switch (addr->ss_family) {
  case AF_INET:
    return sizeof(struct sockaddr_in);
  case AF_INET6:
    return sizeof(struct sockaddr_in6);
  default:
    return 0;
  }
}

uint16_t stun_addr_port(const struct sockaddr_storage *addr) {
  if (addr->ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)addr)->sin_port);
  if (addr->ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)addr)->sin6_port);
  return 0;
}

void stun_addr_set_port(struct sockaddr_storage *addr, uint16_t port) {
  if (addr->ss_family == AF_INET)
    ((struct sockaddr_in *)addr)->sin_port = htons(port);
  else if (addr->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
}

const char *stun_addr_format(const struct sockaddr_storage *addr, char *buf,
                             size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr->ss_family == AF_INET) {
    inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip,
              sizeof(ip));
    snprintf(buf, len, "%s:%u", ip, stun_addr_port(addr));
  } else if (addr->ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, ip,
              sizeof(ip));
    snprintf(buf, len, "[%s]:%u", ip, stun_addr_port(addr));
  } else {
    snprintf(buf, len, "(no address)");
  }
  return buf;
}

bool stun_addr_same_ip(const struct sockaddr_storage *a,
                       const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET)
    return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
           ((const struct sockaddr_in *)b)->sin_addr.s_addr;
  if (a->ss_family == AF_INET6)
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
  return false;
}

bool stun_addr_equal(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b) {
  return stun_addr_same_ip(a, b) && stun_addr_port(a) == stun_addr_port(b);
}

/* Split "host:port", "[v6]:port", "v6" or "host" into host and port text. */
static int split_host_port(const char *text, char *host, size_t host_len,
                           const char **port) {
  const char *end;
  *port = NULL;
  if (text[0] == '[') {
    end = strchr(text, ']');
    if (!end || (end[1] != '\0' && end[1] != ':'))
      return -1;
    if (end[1] == ':')
      *port = end + 2;
    text++;
  } else {
    const char *colon = strchr(text, ':');
    bool one_colon = colon && !strchr(colon + 1, ':');
    end = one_colon ? colon : text + strlen(text);
    if (one_colon)
      *port = colon + 1;
  }
  size_t n = (size_t)(end - text);
  if (n == 0 || n >= host_len)
    return -1;
  memcpy(host, text, n);
  host[n] = '\0';
  return 0;
}

static int parse_port(const char *text, uint16_t *port) {
  char *end;
  if (!text || !*text)
    return -1;
  long value = strtol(text, &end, 10);
  if (*end != '\0' || value < 0 || value > 65535)
    return -1;
  *port = (uint16_t)value;
  return 0;
}

int stun_addr_parse(const char *text, uint16_t default_port,
                    struct sockaddr_storage *out) {
  char host[INET6_ADDRSTRLEN];
  const char *port_text;
  uint16_t port = default_port;
  if (!text || split_host_port(text, host, sizeof(host), &port_text) != 0 ||
      (port_text && parse_port(port_text, &port) != 0))
    return qp_fail(QP_ERR_INVALID,
                   "\"%s\" is not an address: expected ip:port, [ipv6]:port "
                   "or an IP literal",
                   text ? text : "(null)");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1)
    ss.ss_family = AF_INET;
  else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1)
    ss.ss_family = AF_INET6;
  else
    return qp_fail(QP_ERR_INVALID,
                   "\"%s\" is not a numeric IPv4 or IPv6 "
                   "address",
                   host);
  stun_addr_set_port(&ss, port);
  *out = ss;
  return 0;
}

int stun_addr_resolve(const char *host, uint16_t port, int family,
                      struct sockaddr_storage *out, size_t max) {
  if (!host || !*host || max == 0)
    return qp_fail(QP_ERR_INVALID, "STUN server host name is empty");
  struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *list = NULL;
  int rc = getaddrinfo(host, NULL, &hints, &list);
  if (rc != 0)
    return qp_fail(QP_ERR_RESOLVE,
                   "could not resolve STUN server host \"%s\": %s", host,
                   gai_strerror(rc));
  size_t count = 0;
  for (struct addrinfo *ai = list; ai && count < max; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    memset(&out[count], 0, sizeof(out[count]));
    memcpy(&out[count], ai->ai_addr, ai->ai_addrlen);
    stun_addr_set_port(&out[count], port);
    count++;
  }
  freeaddrinfo(list);
  if (count == 0)
    return qp_fail(QP_ERR_RESOLVE,
                   "STUN server host \"%s\" has no IPv4 or IPv6 address", host);
  return (int)count;
}
