#include "stun/stun_server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "stun/stun_msg.h"

#define SERVER_SOFTWARE "quic-portal " QP_VERSION
/* Datagrams read from one socket per wake-up before the others get a turn
 * (fairness between the four sockets). */
#define MAX_READS_PER_SOCKET 64
/* With port 0, binding the alternate IP on the ports the kernel picked for
 * the primary IP can collide with another program; retry this many times
 * with fresh ports (each attempt is four bind calls). */
#define MAX_BIND_ATTEMPTS 16
/* Largest request we read: a Binding request with STUN_SERVER_MAX_PADDING
 * of PADDING and a few other attributes. */
#define MAX_REQUEST_SIZE (512 + STUN_SERVER_MAX_PADDING)
/* What an answer may add to the request it answers is what RFC 8489 and
 * RFC 5780 require (required_growth): XOR-MAPPED-ADDRESS, RESPONSE-ORIGIN,
 * OTHER-ADDRESS on a four-socket server (4 + 8 bytes each for IPv4, 4 + 20
 * for IPv6) and FINGERPRINT (8), plus an error's ERROR-CODE and
 * UNKNOWN-ATTRIBUTES. The optional MAPPED-ADDRESS (RFC 3489 clients) and
 * SOFTWARE go in only when the request was large enough to pay for them,
 * so the server is no amplifier for spoofed sources. */
#define FINGERPRINT_SIZE 8
/* ERROR-CODE with our longest reason ("Unknown Attribute") and
 * UNKNOWN-ATTRIBUTES of STUN_MAX_UNKNOWN_ATTRS types. */
#define ERROR_GROWTH (4 + 4 + 20 + 4 + 2 * STUN_MAX_UNKNOWN_ATTRS)
/* Per-source rate limit (a token bucket per source IP, any port): a NAT
 * behavior discovery sends a few dozen requests, retransmissions included;
 * a flood from one address is cut to RATE_PER_SOURCE answers a second. */
#define RATE_PER_SOURCE 50
#define RATE_BURST 100
/* Buckets, indexed by a keyed hash of the source IP; two sources sharing
 * one share its budget (fails safe). */
#define RATE_BUCKETS 1024

typedef struct rate_bucket {
  double tokens;
  uint64_t last_ns;
} rate_bucket;

struct stun_server {
  stun_server_addrs addrs;
  udp_socket_t socks[STUN_SERVER_MAX_SLOTS];
  int wake_read;
  int wake_write;
  pthread_t thread;
  bool thread_started;
  atomic_uint_least64_t requests_answered;
  atomic_uint_least64_t requests_limited;
  uint64_t hash_key; /* random: sources cannot aim at another's bucket */
  rate_bucket buckets[RATE_BUCKETS];
};

/* ---- sans-I/O handler -------------------------------------------------- */

static int begin_response(stun_msg_writer *w, const stun_msg *req,
                          stun_class cls, uint8_t *out, size_t cap) {
  return stun_msg_write_header(w, out, cap, req->method, cls, req->txid);
}

/* Bytes an attribute of len value bytes takes (header and padding). */
static size_t attr_size(size_t len) { return 4 + ((len + 3) & ~(size_t)3); }

static size_t addr_attr_size(const udp_addr_t *a) {
  return attr_size(a->ss.ss_family == AF_INET6 ? 20 : 8);
}

static size_t required_growth(const stun_server_addrs *addrs,
                              const udp_addr_t *from) {
  size_t n = addrs->count == STUN_SERVER_MAX_SLOTS ? 3 : 2;
  return n * addr_attr_size(from) + FINGERPRINT_SIZE;
}

/* SOFTWARE if it fits in budget bytes with FINGERPRINT, then FINGERPRINT. */
static int finish(stun_msg_writer *w, size_t budget) {
  int rc = 0;
  if (w->len + attr_size(strlen(SERVER_SOFTWARE)) + FINGERPRINT_SIZE <= budget)
    rc = stun_msg_write_attr(w, STUN_ATTR_SOFTWARE, SERVER_SOFTWARE,
                             strlen(SERVER_SOFTWARE));
  if (rc == 0)
    rc = stun_msg_write_fingerprint(w);
  return rc < 0 ? rc : (int)w->len;
}

/* UNKNOWN-ATTRIBUTES (RFC 8489 section 14.13): a list of 16-bit types. */
static int write_unknown(stun_msg_writer *w, const uint16_t *types, size_t n) {
  uint8_t v[2 * STUN_MAX_UNKNOWN_ATTRS];
  for (size_t i = 0; i < n; i++) {
    v[2 * i] = (uint8_t)(types[i] >> 8);
    v[2 * i + 1] = (uint8_t)types[i];
  }
  return stun_msg_write_attr(w, STUN_ATTR_UNKNOWN_ATTRIBUTES, v, 2 * n);
}

static int error_response(const stun_msg *req, int code, const char *reason,
                          const uint16_t *unknown, size_t n_unknown,
                          size_t budget, uint8_t *out, size_t cap) {
  stun_msg_writer w;
  int rc = begin_response(&w, req, STUN_CLASS_ERROR, out, cap);
  if (rc == 0)
    rc = stun_msg_write_error_code(&w, code, reason);
  if (rc == 0 && n_unknown)
    rc = write_unknown(&w, unknown, n_unknown);
  return rc < 0 ? rc : finish(&w, budget);
}

/* RFC 5780 section 6.1: the response goes out from the slot the
 * CHANGE-REQUEST flags select, relative to the slot the request came in. */
static int reply_slot_for(int local, uint32_t change) {
  int slot = local;
  if (change & STUN_CHANGE_IP)
    slot ^= STUN_SERVER_SLOT_IP_BIT;
  if (change & STUN_CHANGE_PORT)
    slot ^= STUN_SERVER_SLOT_PORT_BIT;
  return slot;
}

static int binding_success(const stun_server_addrs *addrs, int local, int reply,
                           const stun_msg *req, size_t budget,
                           const udp_addr_t *from, uint8_t *out,
                           size_t cap) {
  stun_msg_writer w;
  int rc = begin_response(&w, req, STUN_CLASS_SUCCESS, out, cap);
  if (rc == 0)
    rc = stun_msg_write_xor_address(&w, STUN_ATTR_XOR_MAPPED_ADDRESS, from);
  /* MAPPED-ADDRESS too, for RFC 3489 clients and for ALG detection, when
   * the request was large enough to pay for it. */
  size_t addr = addr_attr_size(from);
  size_t rest = (addrs->count == STUN_SERVER_MAX_SLOTS ? 2 : 1) * addr +
                FINGERPRINT_SIZE +
                (req->padding_len ? attr_size(req->padding_len) : 0);
  if (rc == 0 && w.len + addr + rest <= budget)
    rc = stun_msg_write_address(&w, STUN_ATTR_MAPPED_ADDRESS, from);
  if (rc == 0)
    rc = stun_msg_write_address(&w, STUN_ATTR_RESPONSE_ORIGIN,
                                &addrs->slot[reply]);
  /* RFC 5780 section 6.1: OTHER-ADDRESS is the address that differs in
   * both IP and port from the one the request arrived on. */
  if (rc == 0 && addrs->count == STUN_SERVER_MAX_SLOTS)
    rc = stun_msg_write_address(&w, STUN_ATTR_OTHER_ADDRESS,
                                &addrs->slot[local ^ (STUN_SERVER_SLOT_IP_BIT |
                                                      STUN_SERVER_SLOT_PORT_BIT)]);
  /* PADDING is there to make the datagrams fragment; echoing the same
   * amount lets the client see whether fragments cross its NAT. */
  if (rc == 0 && req->padding_len &&
      req->padding_len <= STUN_SERVER_MAX_PADDING)
    rc = stun_msg_write_padding(&w, req->padding_len);
  return rc < 0 ? rc : finish(&w, budget);
}

int stun_server_handle(const stun_server_addrs *addrs, int local,
                       const uint8_t *req, size_t len,
                       const udp_addr_t *from, uint8_t *out,
                       size_t cap, stun_server_reply *reply) {
  if (!addrs || !req || !from || !out || !reply || local < 0 ||
      (size_t)local >= addrs->count ||
      (addrs->count != 1 && addrs->count != STUN_SERVER_MAX_SLOTS))
    return err_fail(QP_ERR_INVALID, "stun_server_handle: bad argument");
  stun_msg m;
  if (!stun_msg_is_stun(req, len) || stun_msg_parse(req, len, &m) != 0 ||
      m.cls != STUN_CLASS_REQUEST)
    return 0;
  reply->slot = local;
  reply->to = *from;
  size_t budget = len + required_growth(addrs, from);
  size_t err_budget = len + ERROR_GROWTH + FINGERPRINT_SIZE;
  if (m.method != STUN_METHOD_BINDING)
    return error_response(&m, STUN_ERROR_BAD_REQUEST, "Bad Request", NULL, 0,
                          err_budget, out, cap);
  if (m.unknown_required_count)
    return error_response(&m, STUN_ERROR_UNKNOWN_ATTRIBUTE, "Unknown Attribute",
                          m.unknown_required, m.unknown_required_count,
                          err_budget, out, cap);
  uint32_t change = m.has_change_request
                        ? m.change_request & (STUN_CHANGE_IP | STUN_CHANGE_PORT)
                        : 0;
  if (change && addrs->count != STUN_SERVER_MAX_SLOTS) {
    const uint16_t type = STUN_ATTR_CHANGE_REQUEST;
    return error_response(&m, STUN_ERROR_UNKNOWN_ATTRIBUTE, "Unknown Attribute",
                          &type, 1, err_budget, out, cap);
  }
  /* RFC 5780 section 6.1: with RESPONSE-PORT, the response goes to the
   * request's source IP at that port, never to another host. Port 0
   * cannot be a destination. */
  if (m.has_response_port && m.response_port == 0)
    return 0;
  if (m.has_response_port)
    udp_addr_set_port(&reply->to, m.response_port);
  reply->slot = reply_slot_for(local, change);
  int n = binding_success(addrs, local, reply->slot, &m, budget, from, out, cap);
  /* The bound holds by construction; a response that broke it is dropped. */
  return n > 0 && (size_t)n > budget ? 0 : n;
}

/* ---- runner ------------------------------------------------------------ */

static void close_fd(int *fd) {
  if (*fd >= 0)
    close(*fd);
  *fd = -1;
}

static void close_sockets(stun_server_t *s) {
  for (int i = 0; i < STUN_SERVER_MAX_SLOTS; i++)
    udp_socket_close(&s->socks[i]);
}

/* Bind one slot; *sys_err gets the bind errno (0 on success) so the
 * caller can tell a port collision from other failures. */
static int bind_slot(stun_server_t *s, int slot, const udp_addr_t *want,
                     int *sys_err) {
  *sys_err = 0;
  int rc = udp_socket_open(want, &s->socks[slot]);
  if (rc != 0) {
    *sys_err = errno;
    s->socks[slot].fd = -1;
    return rc;
  }
  s->addrs.slot[slot] = s->socks[slot].local;
  return 0;
}

/* Bind the four RFC 5780 slots; slots 2 and 3 reuse the ports the kernel
 * gave slots 0 and 1. */
static int bind_four(stun_server_t *s, const udp_addr_t *primary,
                     const udp_addr_t *alternate, int *sys_err) {
  udp_addr_t want[STUN_SERVER_MAX_SLOTS] = {
      *primary, *primary, *alternate, *alternate};
  udp_addr_set_port(&want[1], udp_addr_port(alternate));
  int rc = 0;
  for (int slot = 0; slot < STUN_SERVER_MAX_SLOTS && rc == 0; slot++) {
    if (slot >= 2)
      udp_addr_set_port(&want[slot], udp_addr_port(&s->addrs.slot[slot - 2]));
    rc = bind_slot(s, slot, &want[slot], sys_err);
  }
  if (rc)
    close_sockets(s);
  return rc;
}

static int bind_all(stun_server_t *s, const udp_addr_t *primary,
                    const udp_addr_t *alternate) {
  int sys_err = 0;
  if (!alternate) {
    s->addrs.count = 1;
    return bind_slot(s, 0, primary, &sys_err);
  }
  s->addrs.count = STUN_SERVER_MAX_SLOTS;
  bool any_port =
      udp_addr_port(primary) == 0 || udp_addr_port(alternate) == 0;
  int rc = QP_ERR_SOCKET;
  for (int attempt = 0; attempt < MAX_BIND_ATTEMPTS; attempt++) {
    rc = bind_four(s, primary, alternate, &sys_err);
    if (rc == 0 || !any_port || sys_err != EADDRINUSE)
      break;
  }
  return rc;
}

/* FNV-1a over the source IP (not the port), keyed. */
static size_t bucket_of(const stun_server_t *s, const udp_addr_t *from) {
  const uint8_t *ip;
  size_t n;
  if (from->ss.ss_family == AF_INET6) {
    ip = (const uint8_t *)&((const struct sockaddr_in6 *)&from->ss)->sin6_addr;
    n = 16;
  } else {
    ip = (const uint8_t *)&((const struct sockaddr_in *)&from->ss)->sin_addr;
    n = 4;
  }
  uint64_t h = 1469598103934665603ull ^ s->hash_key;
  for (size_t i = 0; i < n; i++)
    h = (h ^ ip[i]) * 1099511628211ull;
  return (size_t)(h % RATE_BUCKETS);
}

/* Token bucket of the source: true when it may have one more answer. */
static bool rate_allows(stun_server_t *s, const udp_addr_t *from) {
  rate_bucket *b = &s->buckets[bucket_of(s, from)];
  uint64_t now = clock_now_ns();
  if (b->last_ns == 0)
    b->tokens = RATE_BURST;
  else
    b->tokens += (double)(now - b->last_ns) * RATE_PER_SOURCE / 1e9;
  if (b->tokens > RATE_BURST)
    b->tokens = RATE_BURST;
  b->last_ns = now;
  if (b->tokens < 1)
    return false;
  b->tokens -= 1;
  return true;
}

static bool answer_one(stun_server_t *s, int slot) {
  uint8_t req[MAX_REQUEST_SIZE];
  uint8_t resp[STUN_SERVER_RESPONSE_MAX];
  udp_addr_t from;
  size_t n;
  if (udp_recv_one(&s->socks[slot], req, sizeof(req), &n, &from) != 1)
    return false;
  stun_server_reply reply;
  int len = stun_server_handle(&s->addrs, slot, req, n, &from, resp,
                               sizeof(resp), &reply);
  if (len <= 0)
    return true;
  if (!rate_allows(s, &from)) {
    atomic_fetch_add(&s->requests_limited, 1);
    return true;
  }
  /* Counted before sending, so a client that got the answer sees it. */
  atomic_fetch_add(&s->requests_answered, 1);
  /* A lost send (full buffer, ICMP error) is dropped: the client
   * retransmits. */
  if (udp_send(&s->socks[reply.slot], &reply.to, resp, (size_t)len, 0) != 0)
    QP_LOG_DEBUG("STUN server: %s", qp_last_error());
  return true;
}

static void drain(stun_server_t *s, int slot) {
  for (int i = 0; i < MAX_READS_PER_SOCKET && answer_one(s, slot); i++)
    ;
}

static void *server_thread(void *arg) {
  stun_server_t *s = arg;
  struct pollfd pfds[STUN_SERVER_MAX_SLOTS + 1];
  size_t n = s->addrs.count;
  for (size_t i = 0; i < n; i++)
    pfds[i] = (struct pollfd){.fd = s->socks[i].fd, .events = POLLIN};
  pfds[n] = (struct pollfd){.fd = s->wake_read, .events = POLLIN};
  for (;;) {
    if (poll(pfds, n + 1, -1) < 0) {
      if (errno == EINTR)
        continue;
      QP_LOG_WARN("STUN server stops: poll failed: %s", strerror(errno));
      return NULL;
    }
    if (pfds[n].revents)
      return NULL;
    for (size_t i = 0; i < n; i++)
      if (pfds[i].revents & POLLIN)
        drain(s, (int)i);
  }
}

static int parse_config(const char *primary, const char *alternate,
                        udp_addr_t *p,
                        udp_addr_t *a) {
  /* Port 0 = any free port. */
  int rc = udp_addr_parse(primary, 0, p);
  if (rc == 0 && alternate)
    rc = udp_addr_parse(alternate, 0, a);
  if (rc == 0 && alternate && a->ss.ss_family != p->ss.ss_family)
    rc = err_fail(QP_ERR_INVALID,
                 "STUN server addresses %s and %s must both be IPv4 or both "
                 "IPv6",
                 primary, alternate);
  if (rc == 0 && alternate && udp_addr_same_ip(p, a))
    rc = err_fail(QP_ERR_INVALID,
                 "STUN server alternate address %s must have another IP than "
                 "the primary %s (RFC 5780)",
                 alternate, primary);
  return rc;
}

static int start_thread(stun_server_t *s) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0)
    return err_fail(QP_ERR_SOCKET, "STUN server could not make a pipe: %s",
                   strerror(errno));
  s->wake_read = pipe_fds[0];
  s->wake_write = pipe_fds[1];
  int rc = pthread_create(&s->thread, NULL, server_thread, s);
  if (rc != 0)
    return err_fail(QP_ERR_INTERNAL, "STUN server could not start a thread: %s",
                   strerror(rc));
  s->thread_started = true;
  return 0;
}

int stun_server_start(const char *primary, const char *alternate,
                      stun_server_t **out) {
  udp_addr_t p, a;
  if (!out)
    return err_fail(QP_ERR_INVALID, "stun_server_start: out is NULL");
  int rc = parse_config(primary, alternate, &p, &a);
  if (rc)
    return rc;
  stun_server_t *s = calloc(1, sizeof(*s));
  if (!s)
    return err_fail(QP_ERR_NOMEM, "no memory for the STUN server");
  for (int i = 0; i < STUN_SERVER_MAX_SLOTS; i++)
    s->socks[i].fd = -1;
  s->wake_read = s->wake_write = -1;
  if (getrandom(&s->hash_key, sizeof(s->hash_key), 0) != sizeof(s->hash_key))
    s->hash_key = (uint64_t)clock_now_ns(); /* still unknown to a remote sender */
  rc = bind_all(s, &p, alternate ? &a : NULL);
  if (rc == 0)
    rc = start_thread(s);
  if (rc) {
    stun_server_stop(s);
    return rc;
  }
  char text[UDP_ADDRSTRLEN];
  QP_LOG_INFO("STUN server on %s (%zu sockets)",
              udp_addr_to_string(&s->addrs.slot[0], text, sizeof(text)),
              s->addrs.count);
  *out = s;
  return 0;
}

void stun_server_stop(stun_server_t *s) {
  if (!s)
    return;
  if (s->thread_started) {
    ssize_t w;
    do
      w = write(s->wake_write, "x", 1);
    while (w < 0 && errno == EINTR);
    pthread_join(s->thread, NULL);
  }
  close_sockets(s);
  close_fd(&s->wake_read);
  close_fd(&s->wake_write);
  free(s);
}

int stun_server_address(const stun_server_t *s, int slot,
                        udp_addr_t *out) {
  if (!s || !out || slot < 0 || (size_t)slot >= s->addrs.count)
    return err_fail(QP_ERR_INVALID, "STUN server has no address slot %d", slot);
  *out = s->addrs.slot[slot];
  return 0;
}

size_t stun_server_slot_count(const stun_server_t *s) {
  return s ? s->addrs.count : 0;
}

uint64_t stun_server_requests_answered(const stun_server_t *s) {
  return s ? atomic_load(&s->requests_answered) : 0;
}

uint64_t stun_server_requests_limited(const stun_server_t *s) {
  return s ? atomic_load(&s->requests_limited) : 0;
}
