/*
 * delayfw: a userspace stand-in for netem (this kernel has none). It
 * bridges Ethernet frames between two interfaces with AF_PACKET sockets and,
 * in each direction separately, adds a one-way delay, a bottleneck of a given
 * rate with a drop-tail queue, and seeded random loss.
 *
 *   delayfw --if0 NAME --if1 NAME [--delay-ms D] [--rate-mbit R]
 *           [--loss PCT] [--queue-ms Q] [--seed S]
 *
 * Per direction, a frame arriving at time t is (in this order): dropped with
 * probability PCT/100 (IPv4 and IPv6 frames only, so ARP always passes);
 * dropped when the bottleneck queue already holds more than Q ms of
 * transmission (drop-tail); otherwise sent on the other interface at
 * max(t, previous frame done) + len*8/R + D. R = 0 means no bottleneck.
 *
 * The frames must be at most one MTU: turn off TSO/GSO on the senders' veths
 * and GRO on the forwarder's (tests/lab/pathlab.sh does). Checksums the
 * sender left to offload (TP_STATUS_CSUMNOTREADY) are completed here.
 *
 * Prints "delayfw: ready" on stderr once both sockets are bound, and the
 * counters of both directions on SIGINT/SIGTERM. Exit 0 on a signal, 1 on a
 * socket error, 2 on a bad command line. Needs CAP_NET_RAW.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest frame kept: a 1500-byte MTU plus the Ethernet header and a VLAN
 * tag. Anything bigger is a GSO/GRO super-frame (offloads left on). */
#define FW_FRAME_MAX 1536
/* Frames waiting per direction: 1 Gbit/s x (10 ms delay + 25 ms queue) is
 * about 2900 full frames; small ACK frames need more slots than bytes. */
#define FW_SLOTS 16384
/* Frames read per recvmmsg call. */
#define FW_RECV_BATCH 64
/* Socket buffers: absorb bursts while the loop is sending. */
#define FW_SOCKBUF_BYTES (16 * 1024 * 1024)
/* Default drop-tail queue: a bit more than one 20 ms BDP. */
#define FW_DEFAULT_QUEUE_MS 25.0
/* Linux's internal "restart the call" code, which ppoll can leak. */
#define FW_ERESTARTNOHAND 514
/* Timer slack: the default 50 us would blur the delay of every frame. */
#define FW_TIMER_SLACK_NS 1000

typedef struct slot {
  uint64_t due_ns;
  uint16_t len;
  uint8_t data[FW_FRAME_MAX];
} slot_t;

typedef struct dir {
  const char *from_name, *to_name;
  int in_fd, out_fd;
  slot_t *ring; /* FIFO: due times never decrease */
  size_t head, count;
  uint64_t link_free_ns; /* when the bottleneck finishes its last frame */
  uint64_t rng;
  uint64_t fwd, lost, queue_drops, ring_drops, oversize, send_errs;
} dir_t;

typedef struct cfg {
  const char *if0, *if1;
  double delay_ms, rate_mbit, loss_pct, queue_ms;
  uint64_t seed;
} cfg_t;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
  (void)sig;
  stop_flag = 1;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: reproducible loss patterns for a given --seed. */
static double rng_unit(uint64_t *s) {
  uint64_t x = *s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *s = x;
  return (double)((x * 0x2545F4914F6CDD1DULL) >> 11) / 9007199254740992.0;
}

static int usage(const char *msg) {
  fprintf(stderr,
          "delayfw: %s\nusage: delayfw --if0 NAME --if1 NAME [--delay-ms D] "
          "[--rate-mbit R] [--loss PCT] [--queue-ms Q] [--seed S]\n",
          msg);
  return 2;
}

static bool parse_num(const char *s, double min, double max, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < min || v > max)
    return false;
  *out = v;
  return true;
}

static int parse_args(int argc, char **argv, cfg_t *c) {
  *c = (cfg_t){.queue_ms = FW_DEFAULT_QUEUE_MS, .seed = 1};
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (i + 1 >= argc)
      return usage("every option takes a value");
    const char *v = argv[++i];
    double seed = 1;
    bool ok = true;
    if (!strcmp(o, "--if0"))
      c->if0 = v;
    else if (!strcmp(o, "--if1"))
      c->if1 = v;
    else if (!strcmp(o, "--delay-ms"))
      ok = parse_num(v, 0, 10000, &c->delay_ms);
    else if (!strcmp(o, "--rate-mbit"))
      ok = parse_num(v, 0, 1000000, &c->rate_mbit);
    else if (!strcmp(o, "--loss"))
      ok = parse_num(v, 0, 100, &c->loss_pct);
    else if (!strcmp(o, "--queue-ms"))
      ok = parse_num(v, 0, 10000, &c->queue_ms);
    else if (!strcmp(o, "--seed")) {
      ok = parse_num(v, 1, 4294967295.0, &seed);
      c->seed = (uint64_t)seed;
    } else
      return usage("unknown option");
    if (!ok)
      return usage("value out of range");
  }
  if (!c->if0 || !c->if1)
    return usage("--if0 and --if1 are required");
  return 0;
}

static int open_if(const char *name) {
  unsigned idx = if_nametoindex(name);
  if (idx == 0) {
    fprintf(stderr, "delayfw: no interface %s: %s\n", name, strerror(errno));
    return -1;
  }
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
  if (fd < 0) {
    fprintf(stderr, "delayfw: AF_PACKET socket: %s\n", strerror(errno));
    return -1;
  }
  struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                            .sll_protocol = htons(ETH_P_ALL),
                            .sll_ifindex = (int)idx};
  int one = 1, size = FW_SOCKBUF_BYTES;
  /* Frames we send must not come back to us as input. */
  if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0 ||
      setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) ||
      setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one))) {
    fprintf(stderr, "delayfw: bind/setsockopt on %s: %s\n", name,
            strerror(errno));
    close(fd);
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size));
  return fd;
}

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t acc) {
  for (; n > 1; p += 2, n -= 2)
    acc += (uint32_t)p[0] << 8 | p[1];
  if (n)
    acc += (uint32_t)p[0] << 8;
  return acc;
}

static uint16_t fold(uint32_t acc) {
  while (acc >> 16)
    acc = (acc & 0xffff) + (acc >> 16);
  return (uint16_t)~acc;
}

/* Complete the TCP/UDP checksum of an IPv4 or IPv6 frame whose sender left
 * it to an offload that a raw socket does not perform. */
static void fix_checksum(uint8_t *f, size_t len) {
  if (len < 14)
    return;
  uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
  uint8_t *ip = f + 14, proto;
  size_t l4off, l4len;
  uint32_t acc;
  if (et == ETH_P_IP && len >= 34) {
    size_t ihl = (size_t)(ip[0] & 15) * 4, tot = (size_t)(ip[2] << 8 | ip[3]);
    if (tot > len - 14 || tot < ihl)
      return;
    proto = ip[9];
    l4off = 14 + ihl;
    l4len = tot - ihl;
    acc = sum16(ip + 12, 8, 0);
  } else if (et == ETH_P_IPV6 && len >= 54) {
    proto = ip[6]; /* no extension headers on this lab's paths */
    l4off = 54;
    l4len = (size_t)(ip[4] << 8 | ip[5]);
    if (l4len > len - 54)
      return;
    acc = sum16(ip + 8, 32, 0);
  } else {
    return;
  }
  size_t coff = proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : 0;
  if (coff == 0 || l4len < coff + 2)
    return;
  uint8_t *l4 = f + l4off;
  acc += proto + (uint32_t)l4len;
  l4[coff] = l4[coff + 1] = 0;
  uint16_t c = fold(sum16(l4, l4len, acc));
  if (proto == IPPROTO_UDP && c == 0)
    c = 0xffff;
  l4[coff] = (uint8_t)(c >> 8);
  l4[coff + 1] = (uint8_t)c;
}

static bool csum_not_ready(struct msghdr *mh) {
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
    if (cm->cmsg_level == SOL_PACKET && cm->cmsg_type == PACKET_AUXDATA) {
      struct tpacket_auxdata aux;
      memcpy(&aux, CMSG_DATA(cm), sizeof(aux));
      return (aux.tp_status & TP_STATUS_CSUMNOTREADY) != 0;
    }
  }
  return false;
}

static bool is_ip(const uint8_t *f, size_t len) {
  if (len < 14)
    return false;
  uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
  return et == ETH_P_IP || et == ETH_P_IPV6;
}

/* Decide the fate of one arrived frame: queue it with its due time or
 * count why it was dropped. The frame is already in the tail slot. */
static void admit(dir_t *d, const cfg_t *c, uint64_t now, slot_t *s) {
  if (c->loss_pct > 0 && is_ip(s->data, s->len) &&
      rng_unit(&d->rng) * 100.0 < c->loss_pct) {
    d->lost++;
    return;
  }
  uint64_t start = d->link_free_ns > now ? d->link_free_ns : now;
  if (c->rate_mbit > 0) {
    if ((double)(start - now) > c->queue_ms * 1e6) {
      d->queue_drops++;
      return;
    }
    /* Bits on the wire: the frame plus its 4-byte FCS. */
    d->link_free_ns = start + (uint64_t)((s->len + 4) * 8e3 / c->rate_mbit);
    start = d->link_free_ns;
  }
  s->due_ns = start + (uint64_t)(c->delay_ms * 1e6);
  d->count++;
}

/* Read every frame waiting on d's input. Returns -1 on a socket error. */
static int pull(dir_t *d, const cfg_t *c) {
  static struct mmsghdr mm[FW_RECV_BATCH];
  static struct iovec iov[FW_RECV_BATCH];
  static union {
    char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    struct cmsghdr align;
  } ctl[FW_RECV_BATCH];
  static uint8_t buf[FW_RECV_BATCH][FW_FRAME_MAX + 64];
  for (;;) {
    for (int i = 0; i < FW_RECV_BATCH; i++) {
      iov[i] = (struct iovec){buf[i], sizeof(buf[i])};
      mm[i].msg_hdr = (struct msghdr){.msg_iov = &iov[i], .msg_iovlen = 1,
                                      .msg_control = ctl[i].buf,
                                      .msg_controllen = sizeof(ctl[i].buf)};
    }
    int n = recvmmsg(d->in_fd, mm, FW_RECV_BATCH, MSG_TRUNC, NULL);
    if (n < 0)
      return errno == EAGAIN || errno == EINTR ? 0 : -1;
    uint64_t now = now_ns();
    for (int i = 0; i < n; i++) {
      size_t len = mm[i].msg_len;
      if (len > FW_FRAME_MAX) {
        if (d->oversize++ == 0)
          fprintf(stderr, "delayfw: %zu-byte frame on %s dropped: turn off "
                          "TSO/GSO/GRO on the veth ends\n", len, d->from_name);
        continue;
      }
      if (d->count == FW_SLOTS) {
        d->ring_drops++;
        continue;
      }
      slot_t *s = &d->ring[(d->head + d->count) % FW_SLOTS];
      memcpy(s->data, buf[i], len);
      s->len = (uint16_t)len;
      if (csum_not_ready(&mm[i].msg_hdr))
        fix_checksum(s->data, len);
      admit(d, c, now, s);
    }
    if (n < FW_RECV_BATCH)
      return 0;
  }
}

/* Send every frame that is due, up to FW_RECV_BATCH per sendmmsg call;
 * returns the due time of the next one (UINT64_MAX: none waiting). */
static uint64_t push(dir_t *d, uint64_t now) {
  static struct mmsghdr mm[FW_RECV_BATCH];
  static struct iovec iov[FW_RECV_BATCH];
  while (d->count > 0) {
    int n = 0;
    for (size_t i = 0; i < d->count && n < FW_RECV_BATCH; i++) {
      slot_t *s = &d->ring[(d->head + i) % FW_SLOTS];
      if (s->due_ns > now)
        break;
      iov[n] = (struct iovec){s->data, s->len};
      mm[n].msg_hdr = (struct msghdr){.msg_iov = &iov[n], .msg_iovlen = 1};
      n++;
    }
    if (n == 0)
      return d->ring[d->head].due_ns;
    int sent = sendmmsg(d->out_fd, mm, (unsigned)n, 0);
    if (sent < 0) {
      if (errno == EAGAIN || errno == ENOBUFS) {
        struct pollfd p = {.fd = d->out_fd, .events = POLLOUT};
        poll(&p, 1, 1); /* the veth is busy: wait for room, then retry */
        continue;
      }
      d->send_errs++;
      sent = 1; /* skip the frame the kernel refused */
    } else {
      d->fwd += (uint64_t)sent;
    }
    d->head = (d->head + (size_t)sent) % FW_SLOTS;
    d->count -= (size_t)sent;
  }
  return UINT64_MAX;
}

static void report(const dir_t *d) {
  fprintf(stderr,
          "delayfw: %s -> %s: forwarded %" PRIu64 ", random loss %" PRIu64
          ", queue full %" PRIu64 ", slots full %" PRIu64 ", oversize %" PRIu64
          ", send errors %" PRIu64 "\n",
          d->from_name, d->to_name, d->fwd, d->lost, d->queue_drops,
          d->ring_drops, d->oversize, d->send_errs);
}

static int run(const cfg_t *c, dir_t dirs[2]) {
  struct pollfd pf[2] = {{.fd = dirs[0].in_fd, .events = POLLIN},
                         {.fd = dirs[1].in_fd, .events = POLLIN}};
  while (!stop_flag) {
    for (int k = 0; k < 2; k++) {
      if (pull(&dirs[k], c) != 0) {
        fprintf(stderr, "delayfw: receive on %s: %s\n", dirs[k].from_name,
                strerror(errno));
        return 1;
      }
    }
    uint64_t now = now_ns(), next = UINT64_MAX;
    for (int k = 0; k < 2; k++) {
      uint64_t due = push(&dirs[k], now);
      next = due < next ? due : next;
    }
    now = now_ns();
    struct timespec ts = {0, 0}, *tp = NULL;
    if (next != UINT64_MAX) {
      uint64_t wait = next > now ? next - now : 0;
      ts = (struct timespec){(time_t)(wait / 1000000000u),
                             (long)(wait % 1000000000u)};
      tp = &ts;
    }
    /* A signal can surface as EINTR or, seen here under ip netns exec, as
     * the kernel-internal ERESTARTNOHAND (514): both mean "poll again". */
    if (ppoll(pf, 2, tp, NULL) < 0 && errno != EINTR &&
        errno != FW_ERESTARTNOHAND) {
      fprintf(stderr, "delayfw: ppoll: %s\n", strerror(errno));
      return 1;
    }
  }
  return 0;
}

int main(int argc, char **argv) {
  cfg_t c;
  int rc = parse_args(argc, argv, &c);
  if (rc)
    return rc;
  int fd0 = open_if(c.if0), fd1 = fd0 < 0 ? -1 : open_if(c.if1);
  dir_t dirs[2] = {
      {.from_name = c.if0, .to_name = c.if1, .in_fd = fd0, .out_fd = fd1,
       .rng = c.seed * 0x9E3779B97F4A7C15ULL},
      {.from_name = c.if1, .to_name = c.if0, .in_fd = fd1, .out_fd = fd0,
       .rng = (c.seed + 1) * 0x9E3779B97F4A7C15ULL},
  };
  dirs[0].ring = calloc(FW_SLOTS, sizeof(slot_t));
  dirs[1].ring = calloc(FW_SLOTS, sizeof(slot_t));
  if (fd1 < 0 || !dirs[0].ring || !dirs[1].ring)
    return 1;
  prctl(PR_SET_TIMERSLACK, FW_TIMER_SLACK_NS, 0, 0, 0);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGHUP, SIG_IGN); /* outlive the shell that started us */
  fprintf(stderr, "delayfw: ready: %s <-> %s, delay %.3f ms each way, rate "
                  "%.0f Mbit/s, loss %.2f%% each way, queue %.1f ms, seed %"
                  PRIu64 "\n",
          c.if0, c.if1, c.delay_ms, c.rate_mbit, c.loss_pct, c.queue_ms, c.seed);
  rc = run(&c, dirs);
  report(&dirs[0]);
  report(&dirs[1]);
  return rc;
}
