/*
 * stun_addr.h: socket addresses as the STUN layer uses them.
 *
 * Every address is a struct sockaddr_storage holding an AF_INET or AF_INET6
 * address with its port. These helpers parse, print, compare and resolve
 * them; the codec, the client, NAT discovery and the server share them.
 */
#ifndef QP_STUN_ADDR_H
#define QP_STUN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Room for "[" INET6_ADDRSTRLEN "]:65535" plus the NUL. */
#define STUN_ADDR_STRLEN 64

/* The length to pass to sendto()/bind() for this address (0 if the family
 * is neither AF_INET nor AF_INET6). */
socklen_t stun_addr_len(const struct sockaddr_storage *addr);

/* The port in host byte order, 0 for an unknown family. */
uint16_t stun_addr_port(const struct sockaddr_storage *addr);
void stun_addr_set_port(struct sockaddr_storage *addr, uint16_t port);

/* "192.0.2.1:3478" or "[2001:db8::1]:3478" into buf (STUN_ADDR_STRLEN bytes
 * is always enough). Returns buf, so it can sit inside a printf call. */
const char *stun_addr_format(const struct sockaddr_storage *addr, char *buf,
                             size_t len);

/* Same family, IP and port. */
bool stun_addr_equal(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b);
/* Same family and IP; the ports may differ. */
bool stun_addr_same_ip(const struct sockaddr_storage *a,
                       const struct sockaddr_storage *b);

/*
 * Parse a numeric address: "192.0.2.1:3478", "192.0.2.1", "[::1]:3478",
 * "::1". A missing port means default_port. No DNS.
 * Returns 0, or QP_ERR_INVALID with a message quoting the text.
 */
int stun_addr_parse(const char *text, uint16_t default_port,
                    struct sockaddr_storage *out);

/*
 * Resolve host (a name or an IPv4/IPv6 literal) with getaddrinfo() into at
 * most max addresses, IPv4 and IPv6 (family AF_UNSPEC) or one family only.
 * Blocks for as long as the system resolver takes: never call it on an I/O
 * thread. Returns the number of addresses (>= 1), or QP_ERR_RESOLVE with a
 * message naming the host and the resolver's reason, or QP_ERR_INVALID.
 */
int stun_addr_resolve(const char *host, uint16_t port, int family,
                      struct sockaddr_storage *out, size_t max);

#endif
