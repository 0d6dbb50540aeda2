/* ctest: labels=external,process */
/* The TURN client (src/turn) against a real coturn on 127.0.0.1: allocate
 * with long-term credentials, permission and Send/Data indications,
 * ChannelBind and ChannelData both ways with a plain UDP peer, refreshes,
 * Deallocate; wrong password, dead server, REST shared secret, quota (486),
 * stale nonce (438) and Try Alternate (300); and two portals
 * (qp_create_server/client on 127.0.0.1) whose path runs through the relay
 * (relay "only"), or stays direct (relay "auto"). The client is sans-I/O; this
 * file drives it on one UDP socket, with a clock offset so a test can jump
 * to the refresh times without waiting minutes. Every coturn started here
 * is killed at the end and every wait is bounded. Skipped, with the reason
 * printed, when coturn is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common/clock.h"
#include "common/error.h"
#include "stun/stun_msg.h"
#include "tu.h"
#include "turn/turn_check.h"
#include "turn/turn_client.h"
#include "turn/turn_proto.h"
#include "udp/udp.h"

/* turnserver starts in well under a second; give it 10 s on a busy box. */
#define COTURN_READY_TIMEOUT_MS 10000
#define COTURN_STOP_TIMEOUT_MS 3000
#define COTURN_MAX_ARGS 48
/* Relay ports of one coturn: a small range of its own. */
#define COTURN_RELAY_PORTS 64
/* Every exchange with coturn on loopback takes a few ms; 5 s is plenty. */
#define STEP_TIMEOUT_MS 5000
/* The dead-server test's transaction limit, and how late it may end. */
#define DEAD_TIMEOUT_MS 1500
#define DEAD_SLACK_MS 1500
#define DGRAM_MAX 65536
/* coturn deletes a deallocated session at its next cleanup tick (~1 s). */
#define REALLOCATE_TIMEOUT_MS 5000
#define MAX_RECEIVED 8

typedef struct coturn {
  bool loopback_peers; /* --allow-loopback-peers: our peers are 127.0.0.1 */
  pid_t pid;
  uint16_t port;
  char base[64]; /* /tmp/qp-turn-<pid>-<n>: log, pid and db files */
} coturn;

static int coturn_count;

/* A UDP socket bound to ip (127.0.0.1 or ::1), port chosen by the kernel. */
static int udp_socket_at(const char *ip, udp_addr_t *local) {
  udp_addr_t any;
  assert_int_equal(udp_addr_from_ip(ip, 0, &any), 0);
  int fd = socket(any.ss.ss_family, SOCK_DGRAM, 0);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&any.ss, any.len), 0);
  local->len = sizeof(local->ss);
  getsockname(fd, (struct sockaddr *)&local->ss, &local->len);
  return fd;
}

static int udp_socket_on_loopback(udp_addr_t *local) {
  return udp_socket_at("127.0.0.1", local);
}

static udp_addr_t loopback(uint16_t port) {
  udp_addr_t a;
  udp_addr_from_ip("127.0.0.1", port, &a);
  return a;
}

/* Wait up to timeout_ms for a datagram on fd. */
static ssize_t recv_within(int fd, uint8_t *buf, size_t cap, udp_addr_t *from,
                           int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) != 1)
    return -1;
  from->len = sizeof(from->ss);
  return recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from->ss, &from->len);
}

/* Ready when it answers a STUN Binding request (coturn answers those
 * without credentials). */
static bool coturn_answers(const coturn *c) {
  udp_addr_t local, server = loopback(c->port);
  int fd = udp_socket_on_loopback(&local);
  uint8_t req[64], txid[STUN_TXID_SIZE], buf[1024];
  stun_msg_writer w;
  stun_msg_new_txid(txid);
  stun_msg_write_header(&w, req, sizeof(req), STUN_METHOD_BINDING,
                        STUN_CLASS_REQUEST, txid);
  bool ok = false;
  int64_t deadline = tu_now_ms() + COTURN_READY_TIMEOUT_MS;
  while (!ok && tu_now_ms() < deadline && waitpid(c->pid, NULL, WNOHANG) == 0) {
    sendto(fd, req, w.len, 0, (struct sockaddr *)&server.ss, server.len);
    udp_addr_t from;
    ok = recv_within(fd, buf, sizeof(buf), &from, 100) > 0;
  }
  close(fd);
  return ok;
}

static void coturn_exec(const coturn *c, const char *const *extra) {
  static char port[8], minp[8], maxp[8], db[96], pidfile[96], log[96];
  snprintf(port, sizeof(port), "%u", c->port);
  /* Relay ports in a range of their own, away from ephemeral ports. */
  unsigned first =
      20000 + (unsigned)((getpid() * 7 + coturn_count * 131) % 400) *
                  COTURN_RELAY_PORTS;
  snprintf(minp, sizeof(minp), "%u", first);
  snprintf(maxp, sizeof(maxp), "%u", first + COTURN_RELAY_PORTS - 1);
  snprintf(db, sizeof(db), "%s.db", c->base);
  snprintf(pidfile, sizeof(pidfile), "%s.pid", c->base);
  snprintf(log, sizeof(log), "%s.log", c->base);
  const char *args[COTURN_MAX_ARGS] = {"turnserver",
                                       "-n",
                                       "--listening-ip",
                                       "127.0.0.1",
                                       "--relay-ip",
                                       "127.0.0.1",
                                       "--listening-port",
                                       port,
                                       "--min-port",
                                       minp,
                                       "--max-port",
                                       maxp,
                                       "--no-tls",
                                       "--no-dtls",
                                       "--no-cli",
                                       "--no-tcp",
                                       "--no-tcp-relay",
                                       "--userdb",
                                       db,
                                       "--pidfile",
                                       pidfile,
                                       "--log-file",
                                       "stdout",
                                       "--simple-log"};
  size_t n = 0;
  while (args[n])
    n++;
  if (c->loopback_peers)
    args[n++] = "--allow-loopback-peers";
  for (size_t i = 0; extra[i] && n < COTURN_MAX_ARGS - 1; i++)
    args[n++] = extra[i];
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
  }
#ifdef __linux__
  prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
#endif
  execvp("turnserver", (char *const *)args);
  _exit(127);
}

static void coturn_stop(coturn *c) {
  if (c->pid <= 0)
    return;
  kill(c->pid, SIGTERM);
  tu_wait_child(c->pid, COTURN_STOP_TIMEOUT_MS); /* SIGKILL after that */
  c->pid = 0;
  const char *ext[] = {".db", ".pid", ".log"};
  for (size_t i = 0; i < 3; i++) {
    char path[96];
    snprintf(path, sizeof(path), "%s%s", c->base, ext[i]);
    unlink(path);
  }
}

/* Start turnserver with the common options plus extra (NULL-terminated);
 * loopback_peers false leaves out --allow-loopback-peers. */
static void coturn_start_with(coturn *c, const char *const *extra,
                              bool loopback_peers) {
  memset(c, 0, sizeof(*c));
  c->loopback_peers = loopback_peers;
  snprintf(c->base, sizeof(c->base), "/tmp/qp-turn-%d-%d", (int)getpid(),
           coturn_count++);
  c->port = tu_free_udp_port();
  assert_true(c->port != 0);
  c->pid = fork();
  assert_true(c->pid >= 0);
  if (c->pid == 0)
    coturn_exec(c, extra);
  if (!coturn_answers(c)) {
    coturn_stop(c);
    fail_msg("turnserver on port %u did not come up (log %s.log)", c->port,
             c->base);
  }
}

static void coturn_start(coturn *c, const char *const *extra) {
  coturn_start_with(c, extra, true);
}

static const char *const lt_cred[] = {"--lt-cred-mech", "--user", "u:p",
                                      "--realm",        "r",      NULL};

/* ---- driving the sans-I/O client on one socket ------------------------- */

typedef struct received {
  udp_addr_t peer;
  uint8_t data[256];
  size_t len;
  bool channel; /* came as ChannelData (else a Data indication) */
} received;

typedef struct turn_io {
  turn_client c;
  int fd;
  udp_addr_t local;
  uint64_t offset_ns; /* added to the clock: jump to refresh times */
  received got[MAX_RECEIVED];
  size_t got_count;
  size_t sent; /* datagrams the client produced */
} turn_io;

static uint64_t io_now(const turn_io *io) {
  return clock_now_ns() + io->offset_ns;
}

static void io_flush(turn_io *io) {
  static uint8_t out[TURN_REQUEST_MAX];
  size_t len;
  udp_addr_t to;
  while (turn_client_poll(&io->c, io_now(io), out, sizeof(out), &len, &to) ==
         1) {
    sendto(io->fd, out, len, 0, (struct sockaddr *)&to.ss, to.len);
    io->sent++;
  }
}

static void io_take(turn_io *io, const uint8_t *buf, size_t n,
                    const udp_addr_t *from) {
  turn_rx rx;
  int kind = turn_client_handle(&io->c, buf, n, from, io_now(io), &rx);
  if (kind != TURN_RX_DATA || io->got_count >= MAX_RECEIVED)
    return;
  received *r = &io->got[io->got_count++];
  r->peer = rx.peer;
  r->len = rx.len < sizeof(r->data) ? rx.len : sizeof(r->data);
  memcpy(r->data, rx.data, r->len);
  r->channel = turn_is_channel_data(buf, n);
}

/* One round: send what is due, wait for a datagram or the next deadline
 * (at most max_wait_ms), feed it in. */
static void io_step(turn_io *io, int max_wait_ms) {
  static uint8_t buf[DGRAM_MAX];
  io_flush(io);
  uint64_t now = io_now(io), deadline = turn_client_deadline(&io->c);
  int wait = max_wait_ms;
  if (deadline != UINT64_MAX) {
    uint64_t ms = deadline > now ? (deadline - now) / 1000000 + 1 : 0;
    wait = ms < (uint64_t)max_wait_ms ? (int)ms : max_wait_ms;
  }
  udp_addr_t from;
  ssize_t n = recv_within(io->fd, buf, sizeof(buf), &from, wait);
  if (n > 0)
    io_take(io, buf, (size_t)n, &from);
  io_flush(io);
}

#define IO_UNTIL(io, cond, timeout_ms)                                         \
  do {                                                                         \
    int64_t io_deadline_ = tu_now_ms() + (timeout_ms);                         \
    while (!(cond) && tu_now_ms() < io_deadline_)                              \
      io_step((io), 20);                                                       \
  } while (0)

/* A client on a socket of its own at ip, for the server at ip:port. */
static void io_open_at(turn_io *io, const char *ip, uint16_t port,
                       const char *user, const char *pass) {
  memset(io, 0, sizeof(*io));
  io->fd = udp_socket_at(ip, &io->local);
  turn_config cfg = {.timeout_ms = STEP_TIMEOUT_MS};
  assert_int_equal(udp_addr_from_ip(ip, port, &cfg.server), 0);
  snprintf(cfg.username, sizeof(cfg.username), "%s", user);
  snprintf(cfg.password, sizeof(cfg.password), "%s", pass);
  assert_int_equal(turn_client_init(&io->c, &cfg), 0);
}

static void io_open(turn_io *io, uint16_t port, const char *user,
                    const char *pass) {
  io_open_at(io, "127.0.0.1", port, user, pass);
}

static bool settled(const turn_io *io) {
  turn_state s = turn_client_state(&io->c);
  return s != TURN_STATE_ALLOCATING && s != TURN_STATE_IDLE &&
         s != TURN_STATE_CLOSING;
}

static void io_allocate(turn_io *io) {
  assert_int_equal(turn_client_allocate(&io->c, io_now(io)), 0);
  IO_UNTIL(io, settled(io), STEP_TIMEOUT_MS);
}

static void expect_allocated(const turn_io *io) {
  if (turn_client_state(&io->c) != TURN_STATE_ALLOCATED)
    fail_msg("TURN client is %s, not allocated: %s",
             turn_state_name(turn_client_state(&io->c)),
             turn_client_error(&io->c));
}

static void io_close(turn_io *io) {
  if (turn_client_state(&io->c) == TURN_STATE_ALLOCATED) {
    turn_client_close(&io->c, io_now(io));
    IO_UNTIL(io, settled(io), STEP_TIMEOUT_MS);
  }
  close(io->fd);
}

static void expect_at_peer(int peer_fd, const turn_io *io, const char *want) {
  uint8_t buf[512];
  udp_addr_t from;
  ssize_t n = recv_within(peer_fd, buf, sizeof(buf), &from, STEP_TIMEOUT_MS);
  assert_true(n >= 0);
  tu_assert_same_bytes("data at the peer", buf, (size_t)n, want, strlen(want));
  /* The peer sees the relayed address, never the client's socket. */
  assert_true(udp_addr_equal(&from, &io->c.relayed));
}

static void send_via_relay(turn_io *io, const udp_addr_t *peer,
                           const char *text, bool expect_channel) {
  uint8_t out[512];
  size_t len;
  assert_int_equal(turn_client_wrap(&io->c, peer, (const uint8_t *)text,
                                    strlen(text), out, sizeof(out), &len),
                   0);
  assert_int_equal(turn_is_channel_data(out, len), expect_channel);
  const udp_addr_t *server = turn_client_server(&io->c);
  assert_int_equal(
      sendto(io->fd, out, len, 0, (struct sockaddr *)&server->ss, server->len),
      (ssize_t)len);
}

static void peer_answers(turn_io *io, int peer_fd, const udp_addr_t *peer,
                         const char *text, bool expect_channel) {
  size_t before = io->got_count;
  assert_int_equal(sendto(peer_fd, text, strlen(text), 0,
                          (struct sockaddr *)&io->c.relayed.ss,
                          io->c.relayed.len),
                   (ssize_t)strlen(text));
  IO_UNTIL(io, io->got_count > before, STEP_TIMEOUT_MS);
  assert_true(io->got_count > before);
  const received *r = &io->got[before];
  tu_assert_same_bytes("data from the peer", r->data, r->len, text,
                       strlen(text));
  assert_true(udp_addr_equal(&r->peer, peer));
  assert_int_equal(r->channel, expect_channel);
}

/* ---- tests -------------------------------------------------------------- */

typedef struct fixture {
  bool available;
  const char *skip_reason;
  coturn server; /* long-term credentials u:p, realm r */
} fixture;

static int setup(void **state) {
  static fixture f;
  memset(&f, 0, sizeof(f));
  *state = &f;
  if (!tu_on_path("turnserver")) {
    f.skip_reason = "coturn (turnserver) is not installed";
    return 0;
  }
  coturn_start(&f.server, lt_cred);
  f.available = true;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  coturn_stop(&f->server);
  return 0;
}

#define REQUIRE_COTURN(f)                                                      \
  do {                                                                         \
    if (!(f)->available)                                                       \
      TU_SKIP((f)->skip_reason);                                               \
  } while (0)

/* Allocate, relay both ways (indications, then a channel), refresh
 * everything, deallocate. */
static void relay_both_ways(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static turn_io io;
  io_open(&io, f->server.port, "u", "p");
  io_allocate(&io);
  expect_allocated(&io);
  assert_int_equal(udp_addr_port(&io.c.relayed) != 0, true);
  /* XOR-MAPPED-ADDRESS: coturn saw our socket as it is (no NAT here). */
  assert_true(udp_addr_equal(&io.c.mapped, &io.local));
  assert_int_equal(io.c.lifetime_s, TURN_DEFAULT_LIFETIME_S);

  udp_addr_t peer;
  int peer_fd = udp_socket_on_loopback(&peer);
  assert_int_equal(turn_client_permit(&io.c, &peer, io_now(&io)), 0);
  IO_UNTIL(&io, turn_client_permission(&io.c, &peer) != TURN_PEER_PENDING,
           STEP_TIMEOUT_MS);
  assert_int_equal(turn_client_permission(&io.c, &peer), TURN_PEER_READY);

  /* Before a channel: Send indication out, Data indication back. */
  send_via_relay(&io, &peer, "via send indication", false);
  expect_at_peer(peer_fd, &io, "via send indication");
  peer_answers(&io, peer_fd, &peer, "back as data indication", false);

  /* With a channel: ChannelData both ways. */
  assert_int_equal(turn_client_bind(&io.c, &peer, io_now(&io)), 0);
  IO_UNTIL(&io, turn_client_binding(&io.c, &peer) != TURN_PEER_PENDING,
           STEP_TIMEOUT_MS);
  assert_int_equal(turn_client_binding(&io.c, &peer), TURN_PEER_READY);
  assert_int_equal(turn_client_channel(&io.c, &peer), TURN_CHANNEL_MIN);
  send_via_relay(&io, &peer, "via channel", true);
  expect_at_peer(peer_fd, &io, "via channel");
  peer_answers(&io, peer_fd, &peer, "back on the channel", true);

  /* Jump past every refresh time (allocation 540 s, permission 240 s,
   * channel 540 s): all three go out, coturn accepts them. */
  uint64_t before = io_now(&io);
  io.offset_ns += (uint64_t)(TURN_DEFAULT_LIFETIME_S - 55) * 1000000000ull;
  uint64_t jumped = io_now(&io);
  IO_UNTIL(&io,
           io.c.refresh_ns > jumped &&
               io.c.peers[0].permission_refresh_ns > jumped &&
               io.c.peers[0].binding_refresh_ns > jumped,
           STEP_TIMEOUT_MS);
  expect_allocated(&io);
  assert_true(io.c.refresh_ns > jumped);
  assert_true(io.c.peers[0].permission_refresh_ns > jumped);
  assert_true(io.c.peers[0].binding_refresh_ns > jumped);
  assert_true(jumped > before);
  assert_int_equal(turn_client_binding(&io.c, &peer), TURN_PEER_READY);
  send_via_relay(&io, &peer, "after the refreshes", true);
  expect_at_peer(peer_fd, &io, "after the refreshes");

  /* Deallocate. The same 5-tuple can allocate again only once the first
   * allocation is gone: coturn answers 437 (Allocation Mismatch) until its
   * next cleanup tick, about a second later; without the Deallocate that
   * would last the whole 600 s lifetime. */
  turn_client_close(&io.c, io_now(&io));
  IO_UNTIL(&io, settled(&io), STEP_TIMEOUT_MS);
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_CLOSED);
  turn_config cfg = io.c.cfg;
  int64_t closed = tu_now_ms();
  int attempts = 0;
  do {
    io_step(&io, 100); /* paces the attempts; nothing is pending */
    assert_int_equal(turn_client_init(&io.c, &cfg), 0);
    io_allocate(&io);
    attempts++;
  } while (turn_client_state(&io.c) != TURN_STATE_ALLOCATED &&
           tu_now_ms() - closed < REALLOCATE_TIMEOUT_MS);
  print_message("same 5-tuple allocated again %lld ms after the Deallocate "
                "(%d attempts)\n",
                (long long)(tu_now_ms() - closed), attempts);
  expect_allocated(&io);
  io_close(&io);
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_CLOSED);
  close(peer_fd);
}

static void wrong_password_is_a_401_error(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static turn_io io;
  io_open(&io, f->server.port, "u", "not-p");
  io_allocate(&io);
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_FAILED);
  assert_int_equal(io.c.error, QP_ERR_RELAY);
  char want[128];
  snprintf(want, sizeof(want),
           "TURN server 127.0.0.1:%u answered 401 to user 'u': wrong "
           "credentials",
           f->server.port);
  TU_ASSERT_CONTAINS(turn_client_error(&io.c), want);
  io_close(&io);
}

static void dead_server_times_out(void **state) {
  (void)state;
  static turn_io io;
  uint16_t port = tu_free_udp_port(); /* nobody listens there */
  io_open(&io, port, "u", "p");
  io.c.cfg.timeout_ms = DEAD_TIMEOUT_MS;
  int64_t start = tu_now_ms();
  io_allocate(&io);
  IO_UNTIL(&io, settled(&io), DEAD_TIMEOUT_MS + DEAD_SLACK_MS);
  int64_t elapsed = tu_now_ms() - start;
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_FAILED);
  print_message("dead server: failed after %lld ms, %zu requests: %s\n",
                (long long)elapsed, io.sent, turn_client_error(&io.c));
  assert_true(elapsed >= DEAD_TIMEOUT_MS - 50);
  assert_true(elapsed <= DEAD_TIMEOUT_MS + DEAD_SLACK_MS);
  /* RFC 8489 schedule: sent at 0 and 500 ms; the third, due at 1500 ms,
   * meets the limit instead. */
  assert_int_equal(io.sent, 2);
  char want[96];
  snprintf(want, sizeof(want), "TURN server 127.0.0.1:%u did not answer", port);
  TU_ASSERT_CONTAINS(turn_client_error(&io.c), want);
  /* The message gives the time actually waited: the limit, or a little
   * more when the client was polled late. */
  const char *in = strstr(turn_client_error(&io.c), "no response in ");
  long waited = 0;
  assert_non_null(in);
  assert_int_equal(sscanf(in, "no response in %ld ms", &waited), 1);
  assert_in_range(waited, DEAD_TIMEOUT_MS, DEAD_TIMEOUT_MS + DEAD_SLACK_MS);
  io_close(&io);
}

static void rest_secret_allocates(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static const char *const rest[] = {"--use-auth-secret",
                                     "--static-auth-secret",
                                     "S3cr3t",
                                     "--realm",
                                     "r",
                                     NULL};
  coturn server;
  coturn_start(&server, rest);
  char text[64];
  turn_server_spec spec;
  static turn_io io;
  /* The right secret allocates; a wrong one is a 401. */
  const char *secrets[] = {"S3cr3t", "wrong"};
  for (size_t i = 0; i < 2; i++) {
    snprintf(text, sizeof(text), "%s@127.0.0.1:%u", secrets[i], server.port);
    assert_int_equal(turn_spec_parse(text, true, &spec), 0);
    char user[TURN_USERNAME_MAX], pass[TURN_PASSWORD_MAX];
    assert_int_equal(
        turn_spec_credentials(&spec, (int64_t)time(NULL), 3600, user, pass), 0);
    io_open(&io, spec.port, user, pass);
    io_allocate(&io);
    if (i == 0) {
      expect_allocated(&io);
    } else {
      assert_int_equal(turn_client_state(&io.c), TURN_STATE_FAILED);
      TU_ASSERT_CONTAINS(turn_client_error(&io.c), "answered 401");
    }
    io_close(&io);
  }
  coturn_stop(&server);
}

static void quota_exceeded_is_486(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static const char *const quota[] = {
      "--lt-cred-mech", "--user", "u:p", "--realm", "r",
      "--user-quota",   "1",      NULL};
  coturn server;
  coturn_start(&server, quota);
  static turn_io first, second;
  io_open(&first, server.port, "u", "p");
  io_allocate(&first);
  expect_allocated(&first);
  io_open(&second, server.port, "u", "p");
  io_allocate(&second);
  assert_int_equal(turn_client_state(&second.c), TURN_STATE_FAILED);
  TU_ASSERT_CONTAINS(turn_client_error(&second.c),
                     "answered 486 to user 'u': allocation quota exceeded");
  io_close(&second);
  io_close(&first);
  coturn_stop(&server);
}

/* coturn with --stale-nonce=1 answers 438 once a nonce is older than 1 s;
 * the client takes the new nonce and the Refresh goes through. */
static void stale_nonce_is_renewed(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static const char *const stale[] = {
      "--lt-cred-mech",  "--user", "u:p", "--realm", "r",
      "--stale-nonce=1", NULL};
  coturn server;
  coturn_start(&server, stale);
  static turn_io io;
  io_open(&io, server.port, "u", "p");
  io_allocate(&io);
  expect_allocated(&io);
  uint8_t old_nonce[TURN_TEXT_MAX];
  size_t old_len = io.c.nonce_len;
  memcpy(old_nonce, io.c.nonce, old_len);
  /* Let the nonce go stale in real time (coturn's clock), then jump our
   * clock to the refresh. */
  int64_t until = tu_now_ms() + 2100;
  while (tu_now_ms() < until)
    io_step(&io, 50);
  io.offset_ns += (uint64_t)(TURN_DEFAULT_LIFETIME_S - 55) * 1000000000ull;
  uint64_t jumped = io_now(&io);
  IO_UNTIL(&io, io.c.refresh_ns > jumped || !settled(&io), STEP_TIMEOUT_MS);
  expect_allocated(&io);
  assert_true(io.c.refresh_ns > jumped);
  assert_true(io.c.nonce_len != old_len ||
              memcmp(io.c.nonce, old_nonce, old_len) != 0);
  io_close(&io);
  coturn_stop(&server);
}

/* A coturn with --alternate-server answers 300; the client allocates on
 * the alternate. */
static void try_alternate_moves_to_the_other_server(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  char alt[32];
  snprintf(alt, sizeof(alt), "127.0.0.1:%u", f->server.port);
  const char *const redirect[] = {
      "--lt-cred-mech",     "--user", "u:p", "--realm", "r",
      "--alternate-server", alt,      NULL};
  coturn server;
  coturn_start(&server, redirect);
  static turn_io io;
  io_open(&io, server.port, "u", "p");
  io_allocate(&io);
  expect_allocated(&io);
  assert_int_equal(io.c.redirects, 1);
  assert_int_equal(udp_addr_port(turn_client_server(&io.c)), f->server.port);
  io_close(&io);
  coturn_stop(&server);
}

/* Everything over IPv6: client to server on ::1, an IPv6 relayed address
 * (REQUESTED-ADDRESS-FAMILY), a peer on ::1; the XOR addresses then mix
 * in the transaction id (RFC 8489 section 14.2). */
static void ipv6_relay_both_ways(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  static const char *const v6[] = {
      "--lt-cred-mech", "--user", "u:p",        "--realm", "r",
      "--listening-ip", "::1",    "--relay-ip", "::1",     NULL};
  coturn server;
  coturn_start(&server, v6);
  static turn_io io;
  io_open_at(&io, "::1", server.port, "u", "p");
  io.c.cfg.relay_family = AF_INET6;
  io_allocate(&io);
  expect_allocated(&io);
  assert_int_equal(io.c.relayed.ss.ss_family, AF_INET6);
  assert_true(udp_addr_equal(&io.c.mapped, &io.local));
  udp_addr_t peer;
  int peer_fd = udp_socket_at("::1", &peer);
  turn_client_permit(&io.c, &peer, io_now(&io));
  IO_UNTIL(&io, turn_client_permission(&io.c, &peer) != TURN_PEER_PENDING,
           STEP_TIMEOUT_MS);
  assert_int_equal(turn_client_permission(&io.c, &peer), TURN_PEER_READY);
  send_via_relay(&io, &peer, "v6 send indication", false);
  expect_at_peer(peer_fd, &io, "v6 send indication");
  peer_answers(&io, peer_fd, &peer, "v6 data indication", false);
  turn_client_bind(&io.c, &peer, io_now(&io));
  IO_UNTIL(&io, turn_client_binding(&io.c, &peer) != TURN_PEER_PENDING,
           STEP_TIMEOUT_MS);
  assert_int_equal(turn_client_binding(&io.c, &peer), TURN_PEER_READY);
  send_via_relay(&io, &peer, "v6 channel", true);
  expect_at_peer(peer_fd, &io, "v6 channel");
  peer_answers(&io, peer_fd, &peer, "v6 channel back", true);
  io_close(&io);
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_CLOSED);
  close(peer_fd);
  coturn_stop(&server);
}

/* The server dies under a live allocation: the next Refresh goes
 * unanswered and the client reports the relay lost. */
static void killed_server_is_relay_lost(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  coturn server;
  coturn_start(&server, lt_cred);
  static turn_io io;
  io_open(&io, server.port, "u", "p");
  io_allocate(&io);
  expect_allocated(&io);
  coturn_stop(&server);
  io.c.cfg.timeout_ms = DEAD_TIMEOUT_MS;
  io.offset_ns += (uint64_t)(TURN_DEFAULT_LIFETIME_S - 55) * 1000000000ull;
  IO_UNTIL(&io, turn_client_state(&io.c) != TURN_STATE_ALLOCATED,
           DEAD_TIMEOUT_MS + DEAD_SLACK_MS);
  assert_int_equal(turn_client_state(&io.c), TURN_STATE_FAILED);
  char want[96];
  snprintf(want, sizeof(want),
           "TURN relay lost: server 127.0.0.1:%u did not answer a Refresh",
           server.port);
  TU_ASSERT_CONTAINS(turn_client_error(&io.c), want);
  io_close(&io);
}

/* turn_check (the CLI's turn-check): the whole loop through the relay on
 * a socket of its own; then the two ways it fails. */
static void turn_check_loops_through_the_relay(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  char text[64];
  turn_server_spec spec;
  snprintf(text, sizeof(text), "u:p@127.0.0.1:%u", f->server.port);
  assert_int_equal(turn_spec_parse(text, false, &spec), 0);
  turn_check_result r;
  TU_QP_OK(turn_check(&spec, STEP_TIMEOUT_MS, &r));
  char relayed[UDP_ADDRSTRLEN];
  print_message("turn-check: relayed %s, allocated in %lld ms, relay loop "
                "%lld ms\n",
                udp_addr_to_string(&r.relayed, relayed, sizeof(relayed)),
                (long long)r.allocate_ms, (long long)r.relay_ms);
  assert_true(udp_addr_port(&r.relayed) != 0);
  assert_true(udp_addr_is_loopback(&r.mapped));
  assert_int_equal(r.lifetime_s, TURN_DEFAULT_LIFETIME_S);

  snprintf(text, sizeof(text), "u:bad@127.0.0.1:%u", f->server.port);
  assert_int_equal(turn_spec_parse(text, false, &spec), 0);
  TU_QP_ERR(turn_check(&spec, STEP_TIMEOUT_MS, &r), QP_ERR_RELAY);
  TU_ASSERT_CONTAINS(qp_last_error(), "answered 401 to user 'u'");

  /* A coturn that refuses loopback peers allocates but relays nothing. */
  coturn strict;
  coturn_start_with(&strict, lt_cred, false);
  snprintf(text, sizeof(text), "u:p@127.0.0.1:%u", strict.port);
  assert_int_equal(turn_spec_parse(text, false, &spec), 0);
  TU_QP_ERR(turn_check(&spec, STEP_TIMEOUT_MS, &r), QP_ERR_RELAY);
  print_message("strict coturn: %s\n", qp_last_error());
  TU_ASSERT_CONTAINS(qp_last_error(), "CreatePermission");
  coturn_stop(&strict);
}

/* ---- two portals through the relay (traversal + portal, issue 10) ------- */

#define PORTAL_TIMEOUT_MS 10000

typedef struct relay_side {
  qp_traverse_options opts;
  const char *turn[1];
  bool server;
  qp_portal_t *portal;
  int rc;
  char err[512];
} relay_side;

static void *relay_side_main(void *arg) {
  relay_side *s = arg;
  s->rc = s->server ? qp_create_server(&s->opts, &s->portal)
                    : qp_create_client(&s->opts, &s->portal);
  snprintf(s->err, sizeof(s->err), "%s", qp_last_error());
  return NULL;
}

/* Both sides on 127.0.0.1 through mem:, TURN server `turn`, policy relay;
 * runs both and leaves the results in srv and cli. */
static void relay_pair_run(relay_side *srv, relay_side *cli, const char *url,
                           const char *turn, int relay) {
  relay_side *sides[2] = {srv, cli};
  for (int i = 0; i < 2; i++) {
    relay_side *s = sides[i];
    memset(s, 0, sizeof(*s));
    qp_traverse_options_init(&s->opts);
    s->opts.rendezvous = url;
    s->opts.session = "relay";
    s->opts.punch_timeout_ms = PORTAL_TIMEOUT_MS;
    s->opts.local_ip = "127.0.0.1";
    s->turn[0] = turn;
    s->opts.turn_servers = s->turn;
    s->opts.turn_server_count = 1;
    s->opts.relay = relay;
    s->server = i == 0;
  }
  pthread_t a, b;
  assert_int_equal(pthread_create(&a, NULL, relay_side_main, srv), 0);
  assert_int_equal(pthread_create(&b, NULL, relay_side_main, cli), 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
}

static void relay_pair_close(relay_side *srv, relay_side *cli) {
  qp_portal_destroy(cli->portal);
  qp_portal_destroy(srv->portal);
}

/* relay "only": no direct candidate is published, QUIC runs through
 * coturn (ChannelData), and 1 KiB and 1 MiB echo intact. */
static void portals_echo_through_the_relay(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  char turn[64];
  snprintf(turn, sizeof(turn), "u:p@127.0.0.1:%u", f->server.port);
  relay_side srv, cli;
  relay_pair_run(&srv, &cli, "mem:turn-portal-only", turn, QP_RELAY_ONLY);
  if (srv.rc != 0 || cli.rc != 0)
    fail_msg("server %s: %s / client %s: %s", qp_err_name(srv.rc), srv.err,
             qp_err_name(cli.rc), cli.err);
  char path[QP_PATH_DESC_SIZE];
  uint64_t when = 0;
  relay_side *sides[2] = {&srv, &cli};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(qp_portal_path(sides[i]->portal, path, sizeof(path), &when),
                     QP_PATH_RELAYED);
    print_message("%s path: %s\n", i == 0 ? "server" : "client", path);
    TU_ASSERT_CONTAINS(path, "relayed via our TURN server 127.0.0.1:");
    assert_true(when > 0);
  }
  tu_echo_t echo;
  tu_echo_start(&echo, srv.portal, PORTAL_TIMEOUT_MS);
  tu_echo_roundtrip(cli.portal, 1024, 1, PORTAL_TIMEOUT_MS);
  tu_echo_roundtrip(cli.portal, 1024 * 1024, 2, PORTAL_TIMEOUT_MS);
  assert_int_equal(qp_portal_close(cli.portal, PORTAL_TIMEOUT_MS), QP_OK);
  assert_int_equal(tu_echo_join(&echo), QP_ERR_CLOSED);
  relay_pair_close(&srv, &cli);
}

/* relay "auto" with a working TURN server: loopback peers meet directly. */
static void portals_stay_direct_when_they_can(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  char turn[64];
  snprintf(turn, sizeof(turn), "u:p@127.0.0.1:%u", f->server.port);
  relay_side srv, cli;
  relay_pair_run(&srv, &cli, "mem:turn-portal-auto", turn, QP_RELAY_AUTO);
  if (srv.rc != 0 || cli.rc != 0)
    fail_msg("server %s: %s / client %s: %s", qp_err_name(srv.rc), srv.err,
             qp_err_name(cli.rc), cli.err);
  char path[QP_PATH_DESC_SIZE];
  int kind = qp_portal_path(cli.portal, path, sizeof(path), NULL);
  print_message("client path: %s\n", path);
  assert_true(kind >= QP_PATH_HOST && kind <= QP_PATH_BIRTHDAY);
  TU_ASSERT_CONTAINS(path, "direct");
  relay_pair_close(&srv, &cli);
}

/* relay "auto" with a TURN server that never answers: the pair that needs
 * no relay still connects, directly (the dead server is only logged). */
static void portals_connect_past_a_dead_turn_server(void **state) {
  (void)state;
  char turn[64];
  uint16_t dead = tu_free_udp_port();
  assert_true(dead != 0);
  snprintf(turn, sizeof(turn), "u:p@127.0.0.1:%u", dead);
  relay_side srv, cli;
  int64_t t0 = tu_now_ms();
  relay_pair_run(&srv, &cli, "mem:turn-portal-dead", turn, QP_RELAY_AUTO);
  if (srv.rc != 0 || cli.rc != 0)
    fail_msg("server %s: %s / client %s: %s", qp_err_name(srv.rc), srv.err,
             qp_err_name(cli.rc), cli.err);
  char path[QP_PATH_DESC_SIZE];
  assert_int_equal(qp_portal_path(cli.portal, path, sizeof(path), NULL),
                   QP_PATH_HOST);
  print_message("client path past a dead TURN server: %s (%lld ms)\n", path,
                (long long)(tu_now_ms() - t0));
  relay_pair_close(&srv, &cli);
}

/* relay "only" with a wrong password: QP_ERR_RELAY naming the 401 and the
 * server, on both sides, before any QUIC. */
static void portal_wrong_password_is_a_relay_error(void **state) {
  fixture *f = *state;
  REQUIRE_COTURN(f);
  char turn[64], server[32];
  snprintf(turn, sizeof(turn), "u:wrong@127.0.0.1:%u", f->server.port);
  snprintf(server, sizeof(server), "127.0.0.1:%u", f->server.port);
  relay_side srv, cli;
  relay_pair_run(&srv, &cli, "mem:turn-portal-401", turn, QP_RELAY_ONLY);
  relay_side *sides[2] = {&srv, &cli};
  for (int i = 0; i < 2; i++) {
    assert_int_equal(sides[i]->rc, QP_ERR_RELAY);
    print_message("%s\n", sides[i]->err);
    TU_ASSERT_CONTAINS(sides[i]->err, "401");
    TU_ASSERT_CONTAINS(sides[i]->err, server);
    TU_ASSERT_CONTAINS(sides[i]->err, "wrong credentials");
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(relay_both_ways),
      cmocka_unit_test(wrong_password_is_a_401_error),
      cmocka_unit_test(dead_server_times_out),
      cmocka_unit_test(rest_secret_allocates),
      cmocka_unit_test(quota_exceeded_is_486),
      cmocka_unit_test(stale_nonce_is_renewed),
      cmocka_unit_test(try_alternate_moves_to_the_other_server),
      cmocka_unit_test(ipv6_relay_both_ways),
      cmocka_unit_test(killed_server_is_relay_lost),
      cmocka_unit_test(turn_check_loops_through_the_relay),
      cmocka_unit_test(portals_echo_through_the_relay),
      cmocka_unit_test(portals_stay_direct_when_they_can),
      cmocka_unit_test(portal_wrong_password_is_a_relay_error),
      cmocka_unit_test(portals_connect_past_a_dead_turn_server),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
