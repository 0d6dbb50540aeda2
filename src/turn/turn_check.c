/* The blocking TURN check (turn_check.h): the sans-I/O client driven on a
 * socket of its own. */
#include "turn/turn_check.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"
#include "turn/turn_client.h"

/* REST credentials made for the check are valid this long. */
#define TURN_CHECK_REST_TTL_S 3600
/* What the probe datagrams carry, so a stray datagram is not mistaken. */
#define TURN_CHECK_PROBE_OUT "quic-portal turn-check: out"
#define TURN_CHECK_PROBE_BACK "quic-portal turn-check: back"
/* The Deallocate is a courtesy: wait for its answer at most this long. */
#define TURN_CHECK_CLOSE_MS 1000
/* The largest datagram the check reads (answers and probes are small). */
#define TURN_CHECK_DGRAM_MAX 2048
/* Datagrams read per wake-up before the timers get a turn. */
#define TURN_CHECK_READS_PER_WAKEUP 64

typedef struct check_io {
  udp_socket_t sock;
  turn_client c;
  bool got_data;   /* a Data indication carrying TURN_CHECK_PROBE_OUT */
  bool got_direct; /* TURN_CHECK_PROBE_BACK straight from the relay */
  uint8_t out[TURN_REQUEST_MAX];
} check_io;

typedef bool (*check_done_fn)(const check_io *io);

static bool probe_is(const uint8_t *data, size_t len, const char *text) {
  return len == strlen(text) && memcmp(data, text, len) == 0;
}

static void take(check_io *io, const uint8_t *buf, size_t len,
                 const udp_addr_t *from) {
  if (turn_client_owns(&io->c, from)) {
    turn_rx rx;
    if (turn_client_handle(&io->c, buf, len, from, clock_now_ns(), &rx) ==
            TURN_RX_DATA &&
        udp_addr_same_ip(&rx.peer, &io->c.mapped) &&
        probe_is(rx.data, rx.len, TURN_CHECK_PROBE_OUT))
      io->got_data = true;
  } else if (udp_addr_equal(from, &io->c.relayed) &&
             probe_is(buf, len, TURN_CHECK_PROBE_BACK)) {
    io->got_direct = true;
  }
}

static int send_due(check_io *io) {
  size_t len;
  udp_addr_t to;
  int rc;
  while ((rc = turn_client_poll(&io->c, clock_now_ns(), io->out,
                                sizeof(io->out), &len, &to)) == 1) {
    int sent = udp_send(&io->sock, &to, io->out, len, 0);
    if (sent)
      return sent;
  }
  return rc;
}

static int read_ready(check_io *io) {
  uint8_t buf[TURN_CHECK_DGRAM_MAX];
  for (int i = 0; i < TURN_CHECK_READS_PER_WAKEUP; i++) {
    size_t len;
    udp_addr_t from;
    int rc = udp_recv_one(&io->sock, buf, sizeof(buf), &len, &from);
    if (rc <= 0)
      return rc;
    take(io, buf, len, &from);
  }
  return 0;
}

/* Drive the client until done(io), its failure (QP_ERR_RELAY), or
 * deadline_ns (returns 1: not done in time). */
static int pump(check_io *io, uint64_t deadline_ns, check_done_fn done) {
  for (;;) {
    int rc = send_due(io);
    if (rc < 0)
      return rc;
    if (done(io))
      return 0;
    if (turn_client_state(&io->c) == TURN_STATE_FAILED)
      return QP_ERR_RELAY;
    uint64_t now = clock_now_ns();
    if (now >= deadline_ns)
      return 1;
    uint64_t wake = turn_client_deadline(&io->c);
    wake = wake < deadline_ns ? wake : deadline_ns;
    int wait_ms = wake > now ? (int)((wake - now) / CLOCK_NS_PER_MS) + 1 : 0;
    struct pollfd p = {.fd = io->sock.fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) < 0 && errno != EINTR)
      return err_fail(QP_ERR_SOCKET, "turn-check: poll failed: %s",
                      strerror(errno));
    rc = read_ready(io);
    if (rc < 0)
      return rc;
  }
}

static bool settled(const check_io *io) {
  turn_state s = turn_client_state(&io->c);
  return s == TURN_STATE_ALLOCATED || s == TURN_STATE_CLOSED;
}

static bool permission_settled(const check_io *io) {
  return turn_client_permission(&io->c, &io->c.mapped) != TURN_PEER_PENDING;
}

static bool data_back(const check_io *io) { return io->got_data; }
static bool direct_back(const check_io *io) { return io->got_direct; }

static int open_client(check_io *io, const turn_server_spec *spec,
                       int timeout_ms, turn_check_result *out) {
  turn_config cfg = {.timeout_ms = (uint32_t)timeout_ms};
  int rc = udp_addr_resolve(spec->host, spec->port, &out->server);
  if (rc == 0)
    rc = turn_spec_credentials(spec, (int64_t)time(NULL), TURN_CHECK_REST_TTL_S,
                               cfg.username, cfg.password);
  udp_addr_t any;
  if (rc == 0)
    rc = udp_addr_from_ip(
        out->server.ss.ss_family == AF_INET6 ? "::" : "0.0.0.0", 0, &any);
  if (rc == 0)
    rc = udp_socket_open(&any, &io->sock);
  cfg.server = out->server;
  return rc ? rc : turn_client_init(&io->c, &cfg);
}

/* Both loops through the relay, each with its own message on failure. */
static int loop_through_relay(check_io *io, uint64_t deadline_ns) {
  char server[UDP_ADDRSTRLEN], relayed[UDP_ADDRSTRLEN], mapped[UDP_ADDRSTRLEN];
  udp_addr_to_string(turn_client_server(&io->c), server, sizeof(server));
  udp_addr_to_string(&io->c.relayed, relayed, sizeof(relayed));
  udp_addr_to_string(&io->c.mapped, mapped, sizeof(mapped));
  int rc = turn_client_permit(&io->c, &io->c.mapped, clock_now_ns());
  if (rc == 0)
    rc = pump(io, deadline_ns, permission_settled);
  if (rc == 0 &&
      turn_client_permission(&io->c, &io->c.mapped) != TURN_PEER_READY)
    return err_fail(QP_ERR_RELAY, "%s",
                    turn_client_peer_error(&io->c, &io->c.mapped));
  const char *probe = TURN_CHECK_PROBE_OUT;
  if (rc == 0)
    rc = udp_send(&io->sock, &io->c.relayed, (const uint8_t *)probe,
                  strlen(probe), 0);
  if (rc == 0)
    rc = pump(io, deadline_ns, data_back);
  if (rc == 1)
    return err_fail(QP_ERR_RELAY,
                    "TURN server %s allocated %s, but a datagram sent to it "
                    "from %s never came back as a Data indication (a server "
                    "refusing peers on private or loopback addresses does "
                    "this: coturn needs --allow-loopback-peers for 127.x)",
                    server, relayed, mapped);
  probe = TURN_CHECK_PROBE_BACK;
  size_t len;
  if (rc == 0)
    rc = turn_client_wrap(&io->c, &io->c.mapped, (const uint8_t *)probe,
                          strlen(probe), io->out, sizeof(io->out), &len);
  if (rc == 0)
    rc = udp_send(&io->sock, turn_client_server(&io->c), io->out, len, 0);
  if (rc == 0)
    rc = pump(io, deadline_ns, direct_back);
  if (rc == 1)
    return err_fail(QP_ERR_RELAY,
                    "TURN server %s relays towards us but not from us: a Send "
                    "indication to %s never arrived from %s",
                    server, mapped, relayed);
  return rc;
}

int turn_check(const turn_server_spec *spec, int timeout_ms,
               turn_check_result *out) {
  if (!spec || !out || timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID,
                    "turn_check: a spec, a result and a timeout > 0 needed");
  memset(out, 0, sizeof(*out));
  check_io *io = calloc(1, sizeof(*io)); /* 13 KiB: off the stack */
  if (!io)
    return err_fail(QP_ERR_NOMEM, "turn_check: out of memory");
  io->sock.fd = -1;
  uint64_t start = clock_now_ns();
  uint64_t deadline = start + (uint64_t)timeout_ms * CLOCK_NS_PER_MS;
  int rc = open_client(io, spec, timeout_ms, out);
  if (rc == 0)
    rc = turn_client_allocate(&io->c, start);
  if (rc == 0)
    rc = pump(io, deadline, settled);
  if (rc == 1)
    rc = err_fail(QP_ERR_RELAY, "TURN server: no allocation within %d ms",
                  timeout_ms);
  if (rc == 0) {
    uint64_t allocated = clock_now_ns();
    out->allocate_ms = (int64_t)((allocated - start) / CLOCK_NS_PER_MS);
    out->relayed = io->c.relayed;
    out->mapped = io->c.mapped;
    out->lifetime_s = io->c.lifetime_s;
    rc = loop_through_relay(io, deadline);
    out->relay_ms = (int64_t)((clock_now_ns() - allocated) / CLOCK_NS_PER_MS);
  }
  if (turn_client_state(&io->c) == TURN_STATE_ALLOCATED &&
      turn_client_close(&io->c, clock_now_ns()) == 0)
    pump(io, clock_now_ns() + TURN_CHECK_CLOSE_MS * CLOCK_NS_PER_MS, settled);
  if (io->sock.fd >= 0)
    udp_socket_close(&io->sock);
  free(io);
  return rc;
}
