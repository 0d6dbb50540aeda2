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
  int seg = UDP_GSO_PROBE_SEGMENT;
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
    return err_fail(QP_ERR_SOCKET, "cannot create a UDP socket for %s: %s", where,
                   strerror(errno));
  if (family == AF_INET6) {
    int off = 0; /* also accept IPv4-mapped peers on "::" */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  if (bind(fd, (const struct sockaddr *)&bind_addr->ss, bind_addr->len) != 0) {
    int err = errno;
    close(fd);
    int rc = err_fail(QP_ERR_SOCKET, "cannot bind UDP %s: %s%s", where, strerror(err),
                     err == EADDRINUSE ? " (another socket holds this port)" : "");
    errno = err; /* callers tell a taken port from other failures */
    return rc;
  }
  set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
  set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
  memset(out, 0, sizeof(*out));
  out->fd = fd;
  out->family = family;
  out->gso = probe_gso(fd);
#if defined(__linux__) && defined(UDP_GRO)
  int gro = 1; /* trains of datagrams per receive call (Linux 5.0+) */
  out->gro = setsockopt(fd, SOL_UDP, UDP_GRO, &gro, sizeof(gro)) == 0;
#endif
#ifdef SO_RXQ_OVFL
  int on = 1; /* count drops: the only packet loss on loopback */
  setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof(on));
#endif
  out->local.len = sizeof(out->local.ss);
  getsockname(fd, (struct sockaddr *)&out->local.ss, &out->local.len);
  return 0;
}

/* Does this IPv6 socket carry IPv4 too (IPV6_V6ONLY off)? */
static bool is_dual_stack(int fd) {
  int only = 1;
  socklen_t len = sizeof(only);
  return getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &only, &len) == 0 && only == 0;
}

int udp_socket_open_any(uint16_t port, udp_socket_t *out) {
  udp_addr_t any;
  udp_addr_from_ip("::", port, &any);
  int rc = udp_socket_open(&any, out);
  if (rc == 0 && is_dual_stack(out->fd))
    return 0;
  if (rc == 0) {
    udp_socket_close(out);
    QP_LOG_INFO("IPv6 socket on port %u cannot carry IPv4 (IPV6_V6ONLY "
                "forced): IPv4 only", (unsigned)port);
  } else if (errno == EADDRINUSE) {
    return rc; /* the port is taken in IPv4 or IPv6: the caller's problem */
  } else {
    QP_LOG_INFO("no IPv6 socket (%s): IPv4 only", qp_last_error());
  }
  udp_addr_from_ip("0.0.0.0", port, &any);
  return udp_socket_open(&any, out);
}

void udp_socket_close(udp_socket_t *sock) {
  if (sock->fd >= 0)
    close(sock->fd);
  sock->fd = -1;
}

bool udp_errno_is_loss(int err) {
  /* A full queue or an unreachable peer is packet loss, which QUIC and STUN
   * recover from; only other errors are the socket's fault. */
  return err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS ||
         err == ECONNREFUSED || err == EHOSTUNREACH || err == ENETUNREACH ||
         err == EPERM || err == EMSGSIZE;
}

int udp_route_source(const udp_addr_t *to, uint16_t port, udp_addr_t *out) {
  char where[UDP_ADDRSTRLEN];
  int probe = socket(to->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  udp_addr_t src = {.len = sizeof(src.ss)};
  bool ok = probe >= 0 && connect(probe, (const struct sockaddr *)&to->ss, to->len) == 0 &&
            getsockname(probe, (struct sockaddr *)&src.ss, &src.len) == 0;
  int err = errno;
  if (probe >= 0)
    close(probe);
  if (!ok)
    return err_fail(QP_ERR_SOCKET, "no route to %s: %s",
                   udp_addr_to_string(to, where, sizeof(where)), strerror(err));
  *out = src;
  udp_addr_set_port(out, port);
  return 0;
}

static int send_one(udp_socket_t *sock, const udp_addr_t *to, const uint8_t *buf,
                    size_t len) {
  ssize_t n;
  do {
    n = sendto(sock->fd, buf, len, 0, (const struct sockaddr *)&to->ss, to->len);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && !udp_errno_is_loss(errno)) {
    int err = errno;
    char where[UDP_ADDRSTRLEN];
    int rc = err_fail(QP_ERR_SOCKET, "UDP send to %s failed: %s",
                     udp_addr_to_string(to, where, sizeof(where)), strerror(err));
    errno = err;
    return rc;
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
  if (udp_errno_is_loss(errno))
    return 0;
  int err = errno;
  char where[UDP_ADDRSTRLEN];
  int rc = err_fail(QP_ERR_SOCKET, "UDP GSO send to %s failed: %s",
                   udp_addr_to_string(to, where, sizeof(where)), strerror(err));
  errno = err;
  return rc;
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

/* Reads the control messages of one received message: the drop counter
 * (SO_RXQ_OVFL) and, for a UDP GRO train, its segment size (0: one
 * datagram). */
static size_t read_control(udp_socket_t *sock, struct msghdr *mh) {
  size_t segment = 0;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
#ifdef SO_RXQ_OVFL
    if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
      uint32_t dropped;
      memcpy(&dropped, CMSG_DATA(cm), sizeof(dropped));
      sock->rx_dropped = dropped;
    }
#endif
#ifdef UDP_GRO
    if (cm->cmsg_level == SOL_UDP && cm->cmsg_type == UDP_GRO) {
      int size;
      memcpy(&size, CMSG_DATA(cm), sizeof(size));
      segment = size > 0 ? (size_t)size : 0;
    }
#endif
  }
  (void)sock;
  return segment;
}

/* Appends the datagrams of received message i (one, or a GRO train cut
 * into segments) to batch->dgrams from index kept; returns the new count. */
static int split_message(udp_socket_t *sock, udp_recv_batch_t *batch, int i,
                         int kept) {
  struct msghdr *mh = &batch->msgs[i].msg_hdr;
  size_t len = batch->msgs[i].msg_len;
  size_t seg = read_control(sock, mh);
  if (mh->msg_flags & MSG_TRUNC)
    return kept; /* larger than any packet we accept: drop */
  if (seg == 0 || seg > len)
    seg = len;
  if (seg > UDP_RECV_DATAGRAM_MAX)
    return kept;
  udp_addr_t from = {.ss = batch->froms[i], .len = mh->msg_namelen};
  for (size_t off = 0; off < len && kept < UDP_RECV_MAX_DGRAMS; off += seg) {
    udp_datagram_t *d = &batch->dgrams[kept++];
    d->data = batch->buffers[i] + off;
    d->len = len - off < seg ? len - off : seg;
    d->from = from;
  }
  return kept;
}

int udp_recv(udp_socket_t *sock, udp_recv_batch_t *batch) {
  for (int i = 0; i < UDP_RECV_BATCH; i++) {
    batch->iovs[i].iov_base = batch->buffers[i];
    batch->iovs[i].iov_len = UDP_RECV_BUFFER_BYTES;
    batch->msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &batch->froms[i],
        .msg_namelen = sizeof(batch->froms[i]),
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
    if (udp_errno_is_loss(errno))
      return 0;
    return err_fail(QP_ERR_SOCKET, "UDP receive failed: %s", strerror(errno));
  }
  int kept = 0;
  for (int i = 0; i < n; i++)
    kept = split_message(sock, batch, i, kept);
  return kept;
}

int udp_recv_one(udp_socket_t *sock, uint8_t *buf, size_t cap, size_t *len,
                 udp_addr_t *from) {
  ssize_t n;
  do {
    from->len = sizeof(from->ss);
    n = recvfrom(sock->fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&from->ss,
                 &from->len);
  } while (n < 0 && errno == EINTR);
  if (n >= 0) {
    *len = (size_t)n;
    return 1;
  }
  if (udp_errno_is_loss(errno))
    return 0;
  return err_fail(QP_ERR_SOCKET, "UDP receive failed: %s", strerror(errno));
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
  if (data[0] <= UDP_STUN_FIRST_BYTE_MAX && len >= UDP_STUN_HEADER_SIZE &&
      udp_has_stun_cookie(data + UDP_STUN_COOKIE_OFFSET))
    return UDP_KIND_STUN;
  return UDP_KIND_QUIC;
}
