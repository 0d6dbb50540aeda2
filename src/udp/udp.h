/*
 * udp layer: one UDP socket, from the first STUN request to the last QUIC
 * packet. Binding, large buffers, batched send (UDP GSO on Linux, with a
 * plain fallback decided at run time) and batched receive (recvmmsg), and
 * telling STUN from QUIC by the first byte (RFC 7983, RFC 9443).
 * Knows nothing of STUN or QUIC beyond that first byte.
 */
#ifndef QP_UDP_H
#define QP_UDP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "[ffff:...]:65535" plus NUL. */
#define UDP_ADDRSTRLEN (INET6_ADDRSTRLEN + 8)

/* Datagrams read per recvmmsg call, and their buffer size. The size is the
 * max_udp_payload_size we advertise, so a peer never sends us more; it is
 * large because loopback paths (MTU 65536) use 16 KiB packets (see
 * transport.c). Datagrams larger than this are truncated and dropped. */
#define UDP_RECV_BATCH 32
#define UDP_RECV_DATAGRAM_MAX 16384

/* Kernel socket buffers asked for: a 1 MiB QUIC window must fit, with room
 * for a burst, or the tail of a flight is dropped on loopback. */
#define UDP_SOCKET_BUFFER_BYTES (8 * 1024 * 1024)

/* UDP GSO: at most 64 segments and 64 KiB per send (Linux udp_send_skb). */
#define UDP_GSO_MAX_SEGMENTS 64
#define UDP_GSO_MAX_BYTES 65000

typedef struct udp_addr {
  struct sockaddr_storage ss;
  socklen_t len;
} udp_addr_t;

typedef struct udp_socket {
  int fd;
  int family;
  bool gso; /* cleared at run time if the kernel refuses UDP_SEGMENT */
  udp_addr_t local;
  uint32_t rx_dropped; /* datagrams the kernel dropped for lack of receive
                          buffer (SO_RXQ_OVFL, Linux); 0 elsewhere */
} udp_socket_t;

typedef struct udp_datagram {
  uint8_t *data;
  size_t len;
  udp_addr_t from;
} udp_datagram_t;

/* Preallocated receive batch: no allocation per packet. */
typedef struct udp_recv_batch {
  uint8_t buffers[UDP_RECV_BATCH][UDP_RECV_DATAGRAM_MAX];
  udp_datagram_t dgrams[UDP_RECV_BATCH];
  struct mmsghdr msgs[UDP_RECV_BATCH];
  struct iovec iovs[UDP_RECV_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(uint32_t))];
    struct cmsghdr align;
  } control[UDP_RECV_BATCH];
} udp_recv_batch_t;

typedef enum udp_kind {
  UDP_KIND_STUN,
  UDP_KIND_QUIC,
  UDP_KIND_OTHER,
} udp_kind_t;

/* Numeric IPv4/IPv6 literal (NULL or "" = 0.0.0.0). QP_ERR_INVALID. */
int udp_addr_from_ip(const char *ip, uint16_t port, udp_addr_t *out);
/* Literal or host name (getaddrinfo; blocks). QP_ERR_RESOLVE. */
int udp_addr_resolve(const char *host, uint16_t port, udp_addr_t *out);
/* "1.2.3.4:5" or "[::1]:5". */
const char *udp_addr_to_string(const udp_addr_t *addr, char *buf, size_t size);
uint16_t udp_addr_port(const udp_addr_t *addr);
bool udp_addr_equal(const udp_addr_t *a, const udp_addr_t *b);
/* 127.0.0.0/8, ::1 or ::ffff:127.x.y.z. */
bool udp_addr_is_loopback(const udp_addr_t *addr);

/* Open a non-blocking socket bound to bind_addr (family taken from it).
 * QP_ERR_SOCKET with a message naming the address and errno. */
int udp_socket_open(const udp_addr_t *bind_addr, udp_socket_t *out);
void udp_socket_close(udp_socket_t *sock);

/*
 * Send len bytes to to. When segment_size < len the buffer holds several
 * packets of segment_size bytes (the last may be shorter) sent with one GSO
 * call if the kernel allows, else one by one. Returns 0, or QP_ERR_SOCKET
 * for a hard error. EAGAIN/ENOBUFS count as sent-and-lost: QUIC recovers.
 */
int udp_send(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
             size_t len, size_t segment_size);

/* Read up to UDP_RECV_BATCH datagrams without blocking. Returns how many
 * (0 when none are waiting) or QP_ERR_SOCKET. */
int udp_recv(udp_socket_t *sock, udp_recv_batch_t *batch);

/* STUN (first byte 0-3 and the magic cookie, RFC 7983 / RFC 8489) or QUIC
 * (everything else; the engine drops what is not QUIC). */
udp_kind_t udp_classify(const uint8_t *data, size_t len);
/* True when four bytes equal the STUN magic cookie 0x2112A442. */
bool udp_has_stun_cookie(const uint8_t *four);

#endif
