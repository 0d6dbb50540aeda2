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

/* Largest datagram accepted: the max_udp_payload_size we advertise, so a
 * peer never sends us more; it is large because loopback paths (MTU 65536)
 * use 16 KiB packets (see transport.c). Larger ones are dropped. */
#define UDP_RECV_DATAGRAM_MAX 16384

/* Receive: UDP_RECV_BATCH messages per recvmmsg call, each into a buffer of
 * UDP_RECV_BUFFER_BYTES. With UDP GRO (Linux) one message can be a train of
 * up to UDP_GRO_MAX_SEGMENTS equal-sized datagrams of one sender (the
 * kernel's UDP_GRO_CNT_MAX) in at most 64 KiB, split here, so one system
 * call brings up to 64 packets of a bulk flow instead of one. */
#define UDP_RECV_BATCH 16
#define UDP_RECV_BUFFER_BYTES 65536
#define UDP_GRO_MAX_SEGMENTS 64
#define UDP_RECV_MAX_DGRAMS (UDP_RECV_BATCH * UDP_GRO_MAX_SEGMENTS)

/* Kernel socket buffers asked for: a 1 MiB QUIC window must fit, with room
 * for a burst, or the tail of a flight is dropped on loopback. */
#define UDP_SOCKET_BUFFER_BYTES (8 * 1024 * 1024)

/* UDP GSO: at most 64 segments and 64 KiB per send (Linux udp_send_skb). */
/* Segment size the run-time GSO probe asks for: any valid size would do;
 * this is QUIC's minimum datagram (RFC 9000 section 14). */
#define UDP_GSO_PROBE_SEGMENT 1200
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
  bool gro; /* the kernel may hand us trains of datagrams (UDP_GRO) */
  udp_addr_t local;
  uint32_t rx_dropped; /* datagrams the kernel dropped for lack of receive
                          buffer (SO_RXQ_OVFL, Linux); 0 elsewhere */
} udp_socket_t;

typedef struct udp_datagram {
  uint8_t *data;
  size_t len;
  udp_addr_t from;
} udp_datagram_t;

/* Preallocated receive batch: no allocation per packet. Control room for
 * SO_RXQ_OVFL (uint32_t) and UDP_GRO (int). */
typedef struct udp_recv_batch {
  uint8_t buffers[UDP_RECV_BATCH][UDP_RECV_BUFFER_BYTES];
  udp_datagram_t dgrams[UDP_RECV_MAX_DGRAMS];
  struct sockaddr_storage froms[UDP_RECV_BATCH];
  struct mmsghdr msgs[UDP_RECV_BATCH];
  struct iovec iovs[UDP_RECV_BATCH];
  union {
    char buf[CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } control[UDP_RECV_BATCH];
} udp_recv_batch_t;

/* What udp_classify needs of STUN (RFC 7983 section 7, RFC 8489 section
 * 5): the highest first byte of a STUN message, its header size and where
 * the magic cookie sits. */
#define UDP_STUN_FIRST_BYTE_MAX 3
#define UDP_STUN_HEADER_SIZE 20
#define UDP_STUN_COOKIE_OFFSET 4

typedef enum udp_kind {
  UDP_KIND_STUN,
  UDP_KIND_QUIC,
  UDP_KIND_OTHER,
} udp_kind_t;

/* Longest host name in "host:port" text (a DNS name is at most 253
 * characters) plus the NUL. */
#define UDP_HOST_MAX 256

/* Numeric IPv4/IPv6 literal (NULL or "" = 0.0.0.0). QP_ERR_INVALID. */
int udp_addr_from_ip(const char *ip, uint16_t port, udp_addr_t *out);
/* Literal or host name, first address of family (AF_INET, AF_INET6 or
 * AF_UNSPEC). Blocks for as long as getaddrinfo takes: never on an I/O
 * thread; udp_resolve_names bounds and cancels it. QP_ERR_RESOLVE naming
 * the host and the resolver's reason, or QP_ERR_INVALID. */
int udp_addr_lookup(const char *host, uint16_t port, int family,
                    udp_addr_t *out);
/* udp_addr_lookup with AF_UNSPEC. */
int udp_addr_resolve(const char *host, uint16_t port, udp_addr_t *out);

/*
 * The one "host:port" parser. Accepts "host:port", "1.2.3.4:port",
 * "[v6]:port", "[v6]", a bare IPv6 literal ("::1", never with a port) and a
 * bare host or IPv4 address; a missing port is default_port (callers name
 * theirs, e.g. STUN_DEFAULT_PORT). The port is decimal 0-65535 (0: any, for
 * binding). host gets the host without brackets (host_size >= UDP_HOST_MAX
 * is always enough). QP_ERR_INVALID quoting the text and saying what is
 * wrong (empty, no host, unbalanced brackets, bad port, host too long).
 */
int udp_hostport_split(const char *text, uint16_t default_port, char *host,
                       size_t host_size, uint16_t *port);
/* udp_hostport_split with a numeric host (no lookup). QP_ERR_INVALID. */
int udp_addr_parse(const char *text, uint16_t default_port, udp_addr_t *out);

/* "1.2.3.4:5" or "[::1]:5"; an IPv4-mapped IPv6 address (a dual-stack
 * socket's IPv4 peer) is written as IPv4. */
const char *udp_addr_to_string(const udp_addr_t *addr, char *buf, size_t size);
/*
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d): a dual-stack socket (bound
 * to "::" with IPV6_V6ONLY off, udp_socket_open_any) sends to IPv4 peers
 * and hears from them in this form. Every comparison below treats an IPv4
 * address and its mapped form as the same address; what leaves the library
 * as text or on the wire (records, STUN attributes, logs) is plain IPv4.
 */
bool udp_addr_is_v4mapped(const udp_addr_t *addr);
/* AF_INET for IPv4 and IPv4-mapped addresses, AF_INET6 for other IPv6. */
int udp_addr_family(const udp_addr_t *addr);
/* An IPv4-mapped address as plain IPv4; anything else copied (in may be
 * out). */
void udp_addr_unmap(const udp_addr_t *in, udp_addr_t *out);
/* The address as a socket of `family` must be given it: IPv4 mapped for an
 * AF_INET6 (dual-stack) socket, IPv4-mapped unmapped for an AF_INET one.
 * False when it cannot be (an IPv6 address for an IPv4 socket). */
bool udp_addr_to_family(const udp_addr_t *in, int family, udp_addr_t *out);
uint16_t udp_addr_port(const udp_addr_t *addr);
/* Nothing happens for a family other than AF_INET/AF_INET6. */
void udp_addr_set_port(udp_addr_t *addr, uint16_t port);
/* Same IP and port (IPv4 equals its IPv4-mapped form). */
bool udp_addr_equal(const udp_addr_t *a, const udp_addr_t *b);
/* Same IP (IPv4 equals its IPv4-mapped form); the ports may differ. */
bool udp_addr_same_ip(const udp_addr_t *a, const udp_addr_t *b);
/* 127.0.0.0/8, ::1 or ::ffff:127.x.y.z. */
bool udp_addr_is_loopback(const udp_addr_t *addr);
/* 0.0.0.0 or ::. */
bool udp_addr_is_unspecified(const udp_addr_t *addr);

/* The local address the kernel would send from towards `to` (routing
 * only: a connected probe socket, nothing is sent), with port `port`.
 * QP_ERR_SOCKET when there is no route. */
int udp_route_source(const udp_addr_t *to, uint16_t port, udp_addr_t *out);

/* The one classification of socket errors that count as a lost datagram,
 * for sending and receiving alike: a full queue (EAGAIN, ENOBUFS), an ICMP
 * error of some earlier datagram (ECONNREFUSED, EHOSTUNREACH, ENETUNREACH),
 * a firewall drop (EPERM) or a datagram too big for the path (EMSGSIZE).
 * QUIC and STUN both recover from these by retransmitting; any other errno
 * is the socket's fault. */
bool udp_errno_is_loss(int err);

/* Open a non-blocking socket bound to bind_addr (family taken from it).
 * QP_ERR_SOCKET with a message naming the address and errno; errno then
 * still holds the reason (EADDRINUSE: the port is taken). */
int udp_socket_open(const udp_addr_t *bind_addr, udp_socket_t *out);
/* Open a socket on every address of both families, port `port` (0: any):
 * one dual-stack IPv6 socket bound to "::" with IPV6_V6ONLY off, which
 * also carries IPv4 (peers as IPv4-mapped addresses). Where the host has
 * no IPv6 (no AF_INET6 sockets, IPv6 disabled, IPV6_V6ONLY forced on) an
 * IPv4 socket on "0.0.0.0" instead. A taken port is not a reason to fall
 * back: QP_ERR_SOCKET with errno EADDRINUSE as udp_socket_open. */
int udp_socket_open_any(uint16_t port, udp_socket_t *out);
void udp_socket_close(udp_socket_t *sock);

/*
 * Send len bytes to to. When segment_size < len the buffer holds several
 * packets of segment_size bytes (the last may be shorter) sent with one GSO
 * call if the kernel allows, else one by one. segment_size 0 sends one
 * datagram. Returns 0, or QP_ERR_SOCKET for a hard error (errno then holds
 * it). Errors udp_errno_is_loss() names count as sent-and-lost.
 */
int udp_send(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
             size_t len, size_t segment_size);

/* Read up to UDP_RECV_BATCH messages without blocking, each a datagram or
 * (UDP GRO) a train of them, into batch->dgrams. Returns how many datagrams
 * (0 when none are waiting, or on an error udp_errno_is_loss() names) or
 * QP_ERR_SOCKET. The batch is large (about 1.2 MB): keep it on the heap. */
int udp_recv(udp_socket_t *sock, udp_recv_batch_t *batch);

/* Read one datagram of at most cap bytes without blocking (for the small
 * STUN exchanges that need no batch; a longer one is truncated to cap).
 * Returns 1 with *len and *from set, 0 when none is waiting (or on an
 * error udp_errno_is_loss() names), or QP_ERR_SOCKET. */
int udp_recv_one(udp_socket_t *sock, uint8_t *buf, size_t cap, size_t *len,
                 udp_addr_t *from);

/* STUN (first byte 0-3 and the magic cookie, RFC 7983 / RFC 8489) or QUIC
 * (everything else; the engine drops what is not QUIC). */
udp_kind_t udp_classify(const uint8_t *data, size_t len);
/* True when four bytes equal the STUN magic cookie 0x2112A442. */
bool udp_has_stun_cookie(const uint8_t *four);

#endif
