#include "udp/udp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "common/log.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

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
  return qp_fail(QP_ERR_INVALID, "\"%.100s\" is not an IPv4 or IPv6 address", ip);
}

int udp_addr_resolve(const char *host, uint16_t port, udp_addr_t *out) {
  if (host == NULL || *host == '\0')
    return qp_fail(QP_ERR_INVALID, "host name is empty");
  if (udp_addr_from_ip(host, port, out) == 0)
    return 0;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  int rv = getaddrinfo(host, NULL, &hints, &res);
  if (rv != 0 || res == NULL)
    return qp_fail(QP_ERR_RESOLVE, "cannot resolve host \"%.100s\": %s", host,
                   gai_strerror(rv));
  memset(out, 0, sizeof(*out));
  memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  if (out->ss.ss_family == AF_INET)
    ((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
  else
    ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
  freeaddrinfo(res);
  return 0;
}

const char *udp_addr_to_string(const udp_addr_t *addr, char *buf, size_t size) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (addr->ss.ss_family == AF_INET) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)&addr->ss;
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
    snprintf(buf, size, "%s:%u", ip, ntohs(v4->sin_port));
  } else if (addr->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&addr->ss;
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
    snprintf(buf, size, "[%s]:%u", ip, ntohs(v6->sin6_port));
  } else {
    snprintf(buf, size, "(no address)");
  }
  return buf;
}

uint16_t udp_addr_port(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return ntohs(((const struct sockaddr_in *)&addr->ss)->sin_port);
  if (addr->ss.ss_family == AF_INET6)
    return ntohs(((const struct sockaddr_in6 *)&addr->ss)->sin6_port);
  return 0;
}

bool udp_addr_equal(const udp_addr_t *a, const udp_addr_t *b) {
  if (a->ss.ss_family != b->ss.ss_family)
    return false;
  if (a->ss.ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
    const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->ss.ss_family == AF_INET6) {
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
  }
  return false;
}

bool udp_addr_is_loopback(const udp_addr_t *addr) {
  if (addr->ss.ss_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)&addr->ss)->sin_addr.s_addr) >> 24) == 127;
  if (addr->ss.ss_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)&addr->ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* Ask for big buffers; as root, SO_*BUFFORCE passes net.core.*mem_max. */
static void set_buffer(int fd, int force_opt, int opt, const char *name) {
  int size = UDP_SOCKET_BUFFER_BYTES;
  if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof(size)) == 0)
    return;
  if (setsockopt(fd, SOL_SOCKET, opt, &size, sizeof(size)) != 0)
    QP_LOG_WARN("setsockopt(%s, %d): %s", name, size, strerror(errno));
}

static bool probe_gso(int fd) {
#ifdef __linux__
  int seg = 1200;
  if (setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg)) != 0)
    return false;
  seg = 0; /* per-call segment sizes come in a control message */
  setsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, sizeof(seg));
  return true;
#else
  (void)fd;
  return false;
#endif
}

int udp_socket_open(const udp_addr_t *bind_addr, udp_socket_t *out) {
  char where[UDP_ADDRSTRLEN];
  udp_addr_to_string(bind_addr, where, sizeof(where));
  int family = bind_addr->ss.ss_family;
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return qp_fail(QP_ERR_SOCKET, "cannot create a UDP socket for %s: %s", where,
                   strerror(errno));
  if (family == AF_INET6) {
    int off = 0; /* also accept IPv4-mapped peers on "::" */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(fd, (const struct sockaddr *)&bind_addr->ss, bind_addr->len) != 0) {
    int err = errno;
    close(fd);
    return qp_fail(QP_ERR_SOCKET, "cannot bind UDP %s: %s%s", where, strerror(err),
                   err == EADDRINUSE ? " (another socket holds this port)" : "");
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
  memset(out, 0, sizeof(*out));
  out->fd = fd;
  out->family = family;
  out->gso = probe_gso(fd);
#ifdef SO_RXQ_OVFL
  int on = 1; /* count drops: the only packet loss on loopback */
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
#endif
  out->local.len = sizeof(out->local.ss);
  getsockname(fd, (struct sockaddr *)&out->local.ss, &out->local.len);
  return 0;
}

void udp_socket_close(udp_socket_t *sock) {
  if (sock->fd >= 0)
    close(sock->fd);
  sock->fd = -1;
}

static bool send_error_is_loss(int err) {
  /* A full queue or an unreachable peer on this datagram is packet loss,
   * which QUIC recovers from; only other errors are the socket's fault. */
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS ||
         err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
         err == EPERM || err == EMSGSIZE;
}

static int send_one(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
                    size_t len) {
  ssize_t n;
  do {
    n = sendto(sock->fd, buf, len, 0, (const struct sockaddr *)&to->ss, to->len);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && !send_error_is_loss(errno)) {
    char where[UDP_ADDRSTRLEN];
    return qp_fail(QP_ERR_SOCKET, "UDP send to %s failed: %s",
                   udp_addr_to_string(to, where, sizeof(where)), strerror(errno));
  }
  return 0;
}

#ifdef __linux__
static int send_gso(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
                    size_t len, size_t segment_size, bool *refused) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } control;
  memset(&control, 0, sizeof(control));
  struct msghdr msg = {.msg_name = (void *)&to->ss,
                       .msg_namelen = to->len,
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = control.buf,
                       .msg_controllen = sizeof(control.buf)};
  struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
  cm->cmsg_level = SOL_UDP;
  cm->cmsg_type = UDP_SEGMENT;
  cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
  uint16_t seg = (uint16_t)segment_size;
  memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
  ssize_t n;
  do {
    n = sendmsg(sock->fd, &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n >= 0)
    return 0;
  /* EIO: the device cannot segment (e.g. checksum offload off). */
  if (errno == EIO || errno == EINVAL || errno == ENOPROTOOPT ||
      errno == EOPNOTSUPP) {
    *refused = true;
    return 0;
  }
  if (send_error_is_loss(errno))
    return 0;
  char where[UDP_ADDRSTRLEN];
  return qp_fail(QP_ERR_SOCKET, "UDP GSO send to %s failed: %s",
                 udp_addr_to_string(to, where, sizeof(where)), strerror(errno));
}
#endif

int udp_send(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
             size_t len, size_t segment_size) {
  if (segment_size == 0 || segment_size >= len)
    return send_one(sock, to, buf, len);
#ifdef __linux__
  if (sock->gso) {
    bool refused = false;
    int rc = send_gso(sock, to, buf, len, segment_size, &refused);
    if (!refused)
      return rc;
    sock->gso = false;
    QP_LOG_INFO("UDP GSO refused by the kernel: sending packets one by one");
  }
#endif
  for (size_t off = 0; off < len; off += segment_size) {
    size_t n = len - off < segment_size ? len - off : segment_size;
    int rc = send_one(sock, to, buf + off, n);
    if (rc != 0)
      return rc;
  }
  return 0;
}

static void note_drops(udp_socket_t *sock, struct msghdr *mh) {
#ifdef SO_RXQ_OVFL
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
      uint32_t dropped;
      memcpy(&dropped, CMSG_DATA(cm), sizeof(dropped));
      sock->rx_dropped = dropped;
    }
  }
#else
  (void)sock;
  (void)mh;
#endif
}

int udp_recv(udp_socket_t *sock, udp_recv_batch_t *batch) {
  for (int i = 0; i < UDP_RECV_BATCH; i++) {
    batch->iovs[i].iov_base = batch->buffers[i];
    batch->iovs[i].iov_len = UDP_RECV_DATAGRAM_MAX;
    batch->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &batch->dgrams[i].from.ss,
        .msg_namelen = sizeof(batch->dgrams[i].from.ss),
        .msg_iov = &batch->iovs[i],
        .msg_iovlen = 1,
        .msg_control = batch->control[i].buf,
        .msg_controllen = sizeof(batch->control[i].buf),
    };
    batch->msgs[i].msg_len = 0;
  }
  int n;
  do {
    n = recvmmsg(sock->fd, batch->msgs, UDP_RECV_BATCH, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    /* ICMP errors surface here as ECONNREFUSED and the like: not fatal. */
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNREFUSED ||
        errno == EHOSTUNREACH || errno == ENETUNREACH)
      return 0;
    return qp_fail(QP_ERR_SOCKET, "UDP receive failed: %s", strerror(errno));
  }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    note_drops(sock, &batch->msgs[i].msg_hdr);
    if (batch->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
      continue; /* larger than any packet we accept: drop */
    udp_datagram_t *d = &batch->dgrams[kept];
    if (kept != i)
      d->from = batch->dgrams[i].from;
    d->data = batch->buffers[i];
    d->len = batch->msgs[i].msg_len;
    d->from.len = batch->msgs[i].msg_hdr.msg_namelen;
    kept++;
  }
  return kept;
}

bool udp_has_stun_cookie(const uint8_t *four) {
  return four[0] == 0x21 && four[1] == 0x12 && four[2] == 0xa4 && four[3] == 0x42;
}

udp_kind_t udp_classify(const uint8_t *data, size_t len) {
  if (len == 0)
    return UDP_KIND_OTHER;
  /* STUN: first byte 0-3 (RFC 7983), a 20-byte header and the magic cookie
   * (RFC 8489 section 5); QUIC with a greased QUIC bit can also start with
   * 0-3, but our connection IDs never hold the cookie at that place. */
  if (data[0] <= 3 && len >= 20 && udp_has_stun_cookie(data + 4))
    return UDP_KIND_STUN;
  return UDP_KIND_QUIC;
}
