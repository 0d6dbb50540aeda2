/*
 * bench_conn.c: one message channel for qp-bench, over QUIC through the
 * public libquicportal API, or over one plain TCP connection with the same
 * framing (4-byte big-endian length, then the payload) as the baseline.
 *
 * The TCP side is written to be a fair, fast baseline: TCP_NODELAY, a
 * non-blocking socket (poll only when the kernel says EAGAIN), a whole frame
 * in one writev, and a buffered reader that copies each byte once from the
 * kernel and hands out pointers into its buffer.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* Initial size of the TCP read buffer; it grows to the largest frame. */
#define TCP_RBUF_INITIAL (256 * 1024)
/* Pause between two TCP connect attempts while the server is not yet
 * listening (ECONNREFUSED); the whole wait is bounded by the timeout. */
#define TCP_RETRY_PAUSE_S 0.05

const char *bench_transport_name(bench_transport t) {
  return t == BENCH_TCP ? "tcp" : "quic";
}

/* ------------------------------------------------------------------------ */
/* QUIC                                                                      */
/* ------------------------------------------------------------------------ */

static const qp_transport_options *quic_opts(const bench_net_opts *opts,
                                             qp_transport_options *buf) {
  if (!opts || (!opts->cc_set && !opts->max_udp_payload &&
                !opts->mtu_discovery_set)) {
    return NULL; /* library defaults */
  }
  qp_transport_options_init(buf);
  if (opts->cc_set) {
    buf->congestion_controller = opts->cc;
  }
  if (opts->max_udp_payload) {
    buf->max_udp_payload = opts->max_udp_payload;
  }
  if (opts->mtu_discovery_set) {
    buf->mtu_discovery = opts->mtu_discovery;
  }
  return buf;
}

static int quic_create(bench_conn *c) {
  int rc = qp_portal_create(&c->portal);
  if (rc != QP_OK) {
    c->portal = NULL;
    bench_qp_error("qp_portal_create", rc);
    return BENCH_ERR;
  }
  return BENCH_OK;
}

static int quic_listen(bench_conn *c, const char *ip, uint16_t port,
                       const bench_net_opts *opts, int timeout_ms) {
  if (quic_create(c) != BENCH_OK) {
    return BENCH_ERR;
  }
  qp_transport_options o;
  double t0 = bench_now();
  int rc = qp_portal_listen(c->portal, ip, port, quic_opts(opts, &o),
                            timeout_ms);
  c->connect_ms = (bench_now() - t0) * 1e3;
  if (rc != QP_OK) {
    bench_qp_error("qp_portal_listen", rc);
    return BENCH_ERR;
  }
  return BENCH_OK;
}

static int quic_connect(bench_conn *c, const char *host, uint16_t port,
                        const bench_net_opts *opts, int timeout_ms) {
  if (quic_create(c) != BENCH_OK) {
    return BENCH_ERR;
  }
  qp_transport_options o;
  double t0 = bench_now();
  int rc = qp_portal_connect(c->portal, host, port, 0, quic_opts(opts, &o),
                             timeout_ms);
  c->connect_ms = (bench_now() - t0) * 1e3;
  if (rc != QP_OK) {
    bench_qp_error("qp_portal_connect", rc);
    return BENCH_ERR;
  }
  return BENCH_OK;
}

/* ------------------------------------------------------------------------ */
/* TCP                                                                       */
/* ------------------------------------------------------------------------ */

static int remaining_ms(double deadline) {
  if (deadline < 0) {
    return -1;
  }
  double left = (deadline - bench_now()) * 1e3;
  return left <= 0 ? 0 : (int)left + 1;
}

static double deadline_of(int timeout_ms) {
  return timeout_ms < 0 ? -1.0 : bench_now() + timeout_ms / 1e3;
}

static int tcp_setup_fd(int fd) {
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    bench_errorf("setsockopt(TCP_NODELAY) failed: %s", strerror(errno));
    return BENCH_ERR;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    bench_errorf("fcntl(O_NONBLOCK) failed: %s", strerror(errno));
    return BENCH_ERR;
  }
  return BENCH_OK;
}

static int tcp_listen(bench_conn *c, const char *ip, uint16_t port,
                      int timeout_ms) {
  const char *host = (ip && ip[0]) ? ip : "0.0.0.0";
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_PASSIVE | AI_NUMERICHOST};
  struct addrinfo *res = NULL;
  int g = getaddrinfo(host, portstr, &hints, &res);
  if (g != 0) {
    bench_errorf("--bind '%s' is not an IPv4 or IPv6 address: %s", host,
                 gai_strerror(g));
    return BENCH_ERR;
  }
  int lfd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) {
    bench_errorf("socket() failed: %s", strerror(errno));
    freeaddrinfo(res);
    return BENCH_ERR;
  }
  int one = 1;
  (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(lfd, res->ai_addr, res->ai_addrlen) != 0 || listen(lfd, 1) != 0) {
    bench_errorf("cannot listen on TCP %s port %u: %s", host, (unsigned)port,
                 strerror(errno));
    freeaddrinfo(res);
    close(lfd);
    return BENCH_ERR;
  }
  freeaddrinfo(res);
  double t0 = bench_now();
  struct pollfd pfd = {.fd = lfd, .events = POLLIN};
  int pr;
  do {
    pr = poll(&pfd, 1, remaining_ms(deadline_of(timeout_ms)));
  } while (pr < 0 && errno == EINTR);
  if (pr <= 0) {
    if (pr == 0) {
      bench_errorf("no TCP client connected to %s port %u within %d ms", host,
                   (unsigned)port, timeout_ms);
    } else {
      bench_errorf("poll() failed: %s", strerror(errno));
    }
    close(lfd);
    return BENCH_ERR;
  }
  c->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  int saved = errno;
  close(lfd);
  if (c->fd < 0) {
    bench_errorf("accept() failed: %s", strerror(saved));
    return BENCH_ERR;
  }
  c->connect_ms = (bench_now() - t0) * 1e3;
  return tcp_setup_fd(c->fd);
}

/* One non-blocking connect attempt to ai, bounded by deadline. Returns the
 * connected fd or -1 with *err set. */
static int tcp_try_connect(const struct addrinfo *ai, double deadline,
                           int *err) {
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  0);
  if (fd < 0) {
    *err = errno;
    return -1;
  }
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
    return fd;
  }
  if (errno != EINPROGRESS) {
    *err = errno;
    close(fd);
    return -1;
  }
  struct pollfd pfd = {.fd = fd, .events = POLLOUT};
  int pr;
  do {
    pr = poll(&pfd, 1, remaining_ms(deadline));
  } while (pr < 0 && errno == EINTR);
  if (pr <= 0) {
    *err = pr == 0 ? ETIMEDOUT : errno;
    close(fd);
    return -1;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
    soerr = errno;
  }
  if (soerr != 0) {
    *err = soerr;
    close(fd);
    return -1;
  }
  return fd;
}

static int tcp_connect(bench_conn *c, const char *host, uint16_t port,
                       int timeout_ms) {
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  double t0 = bench_now();
  int g = getaddrinfo(host, portstr, &hints, &res);
  if (g != 0) {
    bench_errorf("cannot resolve host '%s': %s", host, gai_strerror(g));
    return BENCH_ERR;
  }
  double deadline = deadline_of(timeout_ms);
  int err = 0;
  for (;;) {
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      c->fd = tcp_try_connect(ai, deadline, &err);
      if (c->fd >= 0) {
        break;
      }
    }
    /* Retry only while the server is not listening yet. */
    if (c->fd >= 0 || err != ECONNREFUSED || remaining_ms(deadline) == 0) {
      break;
    }
    bench_sleep(TCP_RETRY_PAUSE_S);
  }
  freeaddrinfo(res);
  c->connect_ms = (bench_now() - t0) * 1e3;
  if (c->fd < 0) {
    bench_errorf("TCP connect to %s port %u failed after %.0f ms: %s", host,
                 (unsigned)port, c->connect_ms, strerror(err));
    return BENCH_ERR;
  }
  return tcp_setup_fd(c->fd);
}

/* Wait until fd is ready for events or the deadline passes. */
static int tcp_wait(int fd, short events, double deadline, const char *what) {
  struct pollfd pfd = {.fd = fd, .events = events};
  for (;;) {
    int pr = poll(&pfd, 1, remaining_ms(deadline));
    if (pr > 0) {
      return BENCH_OK;
    }
    if (pr == 0) {
      bench_errorf("TCP %s timed out", what);
      return BENCH_ERR;
    }
    if (errno != EINTR) {
      bench_errorf("poll() failed: %s", strerror(errno));
      return BENCH_ERR;
    }
  }
}

static int tcp_send(bench_conn *c, const void *buf, size_t len,
                    int timeout_ms) {
  if ((uint64_t)len > QP_MAX_MESSAGE_SIZE) {
    bench_errorf("message of %zu bytes does not fit the 4-byte length", len);
    return BENCH_ERR;
  }
  uint8_t hdr[4];
  bench_put_be32(hdr, (uint32_t)len);
  struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof hdr},
                         {.iov_base = (void *)buf, .iov_len = len}};
  struct iovec *v = iov;
  int cnt = len ? 2 : 1;
  double deadline = -2; /* computed only if we ever have to wait */
  while (cnt > 0) {
    ssize_t n = writev(c->fd, v, cnt);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (deadline == -2) {
          deadline = deadline_of(timeout_ms);
        }
        if (tcp_wait(c->fd, POLLOUT, deadline, "send") != BENCH_OK) {
          return BENCH_ERR;
        }
        continue;
      }
      bench_errorf("TCP send failed: %s", strerror(errno));
      return BENCH_ERR;
    }
    size_t done = (size_t)n;
    while (cnt > 0 && done >= v->iov_len) {
      done -= v->iov_len;
      v++;
      cnt--;
    }
    if (cnt > 0) {
      v->iov_base = (uint8_t *)v->iov_base + done;
      v->iov_len -= done;
    }
  }
  return BENCH_OK;
}

/* Make [rstart, rend) hold at least need bytes. BENCH_CLOSED on EOF. */
static int tcp_fill(bench_conn *c, size_t need, double *deadline,
                    int timeout_ms) {
  while (c->rend - c->rstart < need) {
    if (c->rcap - c->rstart < need) {
      size_t have = c->rend - c->rstart;
      memmove(c->rbuf, c->rbuf + c->rstart, have);
      c->rstart = 0;
      c->rend = have;
      if (c->rcap < need) {
        size_t ncap = c->rcap * 2 > need ? c->rcap * 2 : need;
        uint8_t *nb = realloc(c->rbuf, ncap);
        if (!nb) {
          bench_errorf("out of memory for a %zu-byte TCP read buffer", ncap);
          return BENCH_ERR;
        }
        c->rbuf = nb;
        c->rcap = ncap;
      }
    }
    ssize_t n = read(c->fd, c->rbuf + c->rend, c->rcap - c->rend);
    if (n > 0) {
      c->rend += (size_t)n;
      continue;
    }
    if (n == 0) {
      return BENCH_CLOSED;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (*deadline == -2) {
        *deadline = deadline_of(timeout_ms);
      }
      if (tcp_wait(c->fd, POLLIN, *deadline, "receive") != BENCH_OK) {
        return BENCH_ERR;
      }
      continue;
    }
    bench_errorf("TCP receive failed: %s", strerror(errno));
    return BENCH_ERR;
  }
  return BENCH_OK;
}

static int tcp_recv(bench_conn *c, const uint8_t **data, size_t *len,
                    int timeout_ms) {
  if (!c->rbuf) {
    c->rbuf = malloc(TCP_RBUF_INITIAL);
    if (!c->rbuf) {
      bench_errorf("out of memory for the TCP read buffer");
      return BENCH_ERR;
    }
    c->rcap = TCP_RBUF_INITIAL;
  }
  if (c->rstart == c->rend) {
    c->rstart = c->rend = 0;
  }
  double deadline = -2;
  int rc = tcp_fill(c, 4, &deadline, timeout_ms);
  if (rc == BENCH_CLOSED && c->rend != c->rstart) {
    bench_errorf("TCP peer closed inside a length prefix");
    return BENCH_ERR;
  }
  if (rc != BENCH_OK) {
    return rc;
  }
  size_t n = bench_get_be32(c->rbuf + c->rstart);
  rc = tcp_fill(c, 4 + n, &deadline, timeout_ms);
  if (rc == BENCH_CLOSED) {
    bench_errorf("TCP peer closed inside a %zu-byte message", n);
    return BENCH_ERR;
  }
  if (rc != BENCH_OK) {
    return rc;
  }
  *data = c->rbuf + c->rstart + 4;
  *len = n;
  c->rstart += 4 + n;
  return BENCH_OK;
}

static int tcp_stats(bench_conn *c, bench_conn_stats *out) {
  struct tcp_info ti;
  socklen_t sl = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &sl) != 0) {
    bench_errorf("getsockopt(TCP_INFO) failed: %s", strerror(errno));
    return BENCH_ERR;
  }
  out->lost_packets = ti.tcpi_total_retrans;
  out->cwnd = (uint64_t)ti.tcpi_snd_cwnd * ti.tcpi_snd_mss;
  out->srtt_us = ti.tcpi_rtt;
  return BENCH_OK;
}

static int tcp_close(bench_conn *c, int timeout_ms) {
  if (shutdown(c->fd, SHUT_WR) != 0) {
    bench_errorf("TCP shutdown failed: %s", strerror(errno));
    return BENCH_ERR;
  }
  /* Wait for the server's close, so it has read everything we sent. */
  double deadline = deadline_of(timeout_ms);
  char sink[4096];
  for (;;) {
    ssize_t n = read(c->fd, sink, sizeof sink);
    if (n == 0) {
      return BENCH_OK;
    }
    if (n > 0 || errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      bench_errorf("TCP close failed: %s", strerror(errno));
      return BENCH_ERR;
    }
    if (tcp_wait(c->fd, POLLIN, deadline, "close") != BENCH_OK) {
      return BENCH_ERR;
    }
  }
}

/* ------------------------------------------------------------------------ */
/* Dispatch                                                                  */
/* ------------------------------------------------------------------------ */

static void conn_init(bench_conn *c, bench_transport t) {
  memset(c, 0, sizeof *c);
  c->transport = t;
  c->fd = -1;
}

int bench_conn_listen(bench_conn *c, bench_transport t, const char *ip,
                      uint16_t port, const bench_net_opts *opts,
                      int timeout_ms) {
  conn_init(c, t);
  return t == BENCH_TCP ? tcp_listen(c, ip, port, timeout_ms)
                        : quic_listen(c, ip, port, opts, timeout_ms);
}

int bench_conn_connect(bench_conn *c, bench_transport t, const char *host,
                       uint16_t port, const bench_net_opts *opts,
                       int timeout_ms) {
  conn_init(c, t);
  return t == BENCH_TCP ? tcp_connect(c, host, port, timeout_ms)
                        : quic_connect(c, host, port, opts, timeout_ms);
}

int bench_conn_send(bench_conn *c, const void *buf, size_t len,
                    int timeout_ms) {
  if (c->transport == BENCH_TCP) {
    return tcp_send(c, buf, len, timeout_ms);
  }
  int rc = qp_portal_send(c->portal, buf, len, timeout_ms);
  if (rc != QP_OK) {
    char what[64];
    snprintf(what, sizeof what, "qp_portal_send(%zu bytes)", len);
    bench_qp_error(what, rc);
    return BENCH_ERR;
  }
  return BENCH_OK;
}

int bench_conn_recv(bench_conn *c, const uint8_t **data, size_t *len,
                    int timeout_ms) {
  if (c->transport == BENCH_TCP) {
    return tcp_recv(c, data, len, timeout_ms);
  }
  qp_free(c->qmsg);
  c->qmsg = NULL;
  void *msg = NULL;
  size_t n = 0;
  int rc = qp_portal_recv(c->portal, &msg, &n, timeout_ms);
  if (rc == QP_ERR_CLOSED) {
    return BENCH_CLOSED;
  }
  if (rc != QP_OK) {
    bench_qp_error("qp_portal_recv", rc);
    return BENCH_ERR;
  }
  c->qmsg = msg;
  *data = msg;
  *len = n;
  return BENCH_OK;
}

int bench_conn_stats_get(bench_conn *c, bench_conn_stats *out) {
  memset(out, 0, sizeof *out);
  if (c->transport == BENCH_TCP) {
    return tcp_stats(c, out);
  }
  qp_portal_stats st;
  int rc = qp_portal_get_stats(c->portal, &st);
  if (rc != QP_OK) {
    bench_qp_error("qp_portal_get_stats", rc);
    return BENCH_ERR;
  }
  out->lost_packets = st.packets_lost;
  out->cwnd = st.cwnd;
  out->srtt_us = st.smoothed_rtt_us;
  out->quic = true;
  out->packets_sent = st.packets_sent;
  out->packets_received = st.packets_received;
  out->pto_count = st.pto_count;
  out->handshake_us = st.handshake_us;
  return BENCH_OK;
}

int bench_conn_close(bench_conn *c, int timeout_ms) {
  if (c->transport == BENCH_TCP) {
    return tcp_close(c, timeout_ms);
  }
  /* Default linger: returns once the peer acknowledged every message. */
  int rc = qp_portal_close(c->portal, -1);
  if (rc != QP_OK) {
    bench_qp_error("qp_portal_close", rc);
    return BENCH_ERR;
  }
  return BENCH_OK;
}

void bench_conn_destroy(bench_conn *c) {
  qp_free(c->qmsg);
  c->qmsg = NULL;
  qp_portal_destroy(c->portal);
  c->portal = NULL;
  if (c->fd >= 0) {
    close(c->fd);
    c->fd = -1;
  }
  free(c->rbuf);
  c->rbuf = NULL;
  c->rcap = c->rstart = c->rend = 0;
}
