/*
 * portal layer: the public qp_portal_* API. Checks arguments, owns the socket,
 * the clock, the lock and the I/O thread, and drives one sans-I/O transport.
 *
 * Threads: one I/O thread per portal polls the socket, a wake-up eventfd and
 * a timerfd (its next deadline), feeds datagrams and timer expiries to the
 * transport and flushes it. Every transport call happens under p->lock.
 * send() flushes from the calling thread itself (no hand-off latency) and
 * only moves the timerfd sooner if it must; a recv() with nothing ready
 * drives the socket itself, and leaves the ACK for the caller's reply. It
 * also wakes at the idle deadline and ends the connection itself if the
 * I/O thread has not (that thread may be late: held in a log handler,
 * starved of CPU), so recv's idle timeout never waits for it.
 */
#include <errno.h>
#include <stdarg.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "portal/iotimer.h"
#include "portal/options.h"
#include "portal/portal_internal.h"
#include "portal/recover.h"
#include "portal/relay.h"
#include "portal/upgrade.h"
#include "portmap/portmap.h"
#include "tls/tls_identity.h"
#include "transport/transport.h"
#include "traversal/trav_upgrade.h"
#include "traversal/traversal.h"
#include "udp/udp.h"

/* Default linger of close(): long enough for a 10 MB send window to drain
 * over a slow path, short enough that a dead peer does not hang the caller. */
#define PORTAL_DEFAULT_LINGER_MS 5000
/* A relayed path lowers the QUIC datagram size by the ChannelData header,
 * but never below QUIC's 1200 (RFC 9000 section 14). */
#define MIN_RELAYED_PAYLOAD (1200 + TURN_CHANNEL_HEADER_SIZE)

/* The I/O thread re-checks its state at least this often (ns). */
#define PORTAL_MAX_SLEEP_NS CLOCK_NS_PER_S

/* Receive batches read per wake-up before timers and writes get a turn
 * (UDP_RECV_BATCH = 32 datagrams each: at most 512 datagrams, about 0.6 MB
 * of 1200-byte packets or 8 MiB of 16 KiB loopback ones). */
#define PORTAL_MAX_READ_BATCHES 16

/* A receiver that gets its message from the packets it just read leaves the
 * acknowledgement for them unsent this long at most, so that the caller's
 * reply carries it (one packet each way per round trip, not two: ngtcp2
 * acknowledges after RTT/8, i.e. at once on a LAN). The next send or a recv
 * that must wait sends it sooner; the I/O thread sends it at this deadline.
 * The peer's RTT estimate is unharmed: the ACK reports its delay, and 1 ms
 * is far below the 25 ms max_ack_delay we advertise. */
#define PORTAL_ACK_HOLD_NS (1u * CLOCK_NS_PER_MS)
/* With bytes in flight and no thread polling the socket (the application
 * sent from its own thread while the I/O thread slept without the socket,
 * because a receiver was driving it), the I/O thread takes the socket over
 * after this long: long enough for the usual recv that follows a send to
 * drive it instead (no wake-up), short enough that an acknowledgement read
 * late distorts at most one RTT sample by this much. */
#define PORTAL_UNWATCHED_NS (500u * 1000u)

typedef enum phase {
  PHASE_NEW,       /* never listened or connected (or a failed attempt) */
  PHASE_LISTENING, /* socket bound, waiting for a client */
  PHASE_CONNECTING,
  PHASE_CONNECTED, /* handshake done; the transport may end on its own */
  PHASE_CLOSED,    /* closed by this side */
} phase_t;

struct qp_portal {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* broadcast on every change a caller may wait for */
  tls_identity_t *identity;
  bool has_pin;
  uint8_t pin[TLS_FINGERPRINT_LEN];

  phase_t phase;
  udp_socket_t sock;
  int wake_fd;        /* wakes the I/O thread */
  int driver_wake_fd; /* wakes the receiver that drives the socket */
  bool recv_driver;   /* a qp_portal_recv caller is polling the socket */
  int recv_waiting;   /* qp_portal_recv callers waiting for a message */
  bool io_polls_socket; /* the I/O thread's current sleep includes it */
  pthread_t thread;
  bool thread_running;
  bool stop;
  bool io_asleep;       /* the I/O thread is in ppoll (io_wait) */
  portal_iotimer_t timer; /* the I/O thread's next wake-up, any thread moves it */
  bool ack_held;          /* a receiver left an ACK for the caller's reply */
  uint64_t ack_held_until;
  uint64_t unwatched_since; /* bytes in flight and nobody polls the socket */
  int io_err;           /* socket error that ended the I/O thread */
  char io_msg[1024]; /* a failed recovery tells its attempts */

  transport_config_t cfg;
  transport_t *tr;
  udp_recv_batch_t *batch; /* I/O thread only */
  uint64_t start_ns, handshake_ns;
  uint64_t datagrams_in;
  uint64_t interrupts; /* bumped by qp_portal_interrupt */

  /* Set by traversal: only this peer may connect, and STUN is answered. */
  bool accept_only_peer;
  udp_addr_t peer;
  /* listen: clients refused so far (wrong certificate, broken or half-open
   * handshake) and the last one's reason, told if nobody else comes. */
  uint32_t refused;
  int refused_code;
  char refused_msg[256];

  portal_stun_cb stun_cb;
  void *stun_ctx;
  void (*stun_ctx_free)(void *ctx);

  /* qp_create_* portals: a new path when this one dies (recover.c). */
  portal_recovery_t *recovery;

  /* The path traversal found (qp_portal_path) and, when it runs through
   * our TURN allocation, the wrapper that carries it (relay.h). */
  int path_kind;
  char path_desc[QP_PATH_DESC_SIZE];
  uint64_t path_ns;
  portal_relay_t *relay;
  struct portmap *portmap; /* the gateway's mapping (src/portmap) or NULL */
  /* Relayed: the checks that move QUIC onto a direct path (upgrade.h). */
  portal_upgrade_t *upgrade;
  bool rx_relayed; /* on_datagram: this datagram came through the relay */
};

/* The portal's lock. Log lines written while holding it reach the user's
 * handler only after it is released (see log_defer_begin). */
static void portal_lock(qp_portal_t *p) {
  pthread_mutex_lock(&p->lock);
  log_defer_begin();
}

static void portal_unlock(qp_portal_t *p) {
  pthread_mutex_unlock(&p->lock);
  log_defer_end();
}

/* ---- creation ----------------------------------------------------------- */

int qp_portal_create(qp_portal_t **out) {
  if (out == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_create: out is NULL");
  qp_portal_t *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory creating a portal");
  p->sock.fd = -1;
  p->wake_fd = -1;
  p->driver_wake_fd = -1;
  p->timer.fd = -1;
  pthread_mutex_init(&p->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cond, &ca);
  pthread_condattr_destroy(&ca);
  int rc = tls_identity_create(&p->identity);
  if (rc == 0) {
    p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->driver_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->wake_fd < 0 || p->driver_wake_fd < 0)
      rc = err_fail(QP_ERR_SOCKET, "cannot create an eventfd: %s", strerror(errno));
  }
  if (rc == 0)
    rc = portal_iotimer_open(&p->timer);
  if (rc != 0) {
    qp_portal_destroy(p);
    return rc;
  }
  *out = p;
  return 0;
}

void qp_portal_destroy(qp_portal_t *p) {
  if (p == NULL)
    return;
  qp_portal_close(p, -1);
  transport_destroy(p->tr);
  if (p->wake_fd >= 0)
    close(p->wake_fd);
  if (p->driver_wake_fd >= 0)
    close(p->driver_wake_fd);
  portal_iotimer_close(&p->timer);
  if (p->stun_ctx_free)
    p->stun_ctx_free(p->stun_ctx);
  recover_destroy(p->recovery);
  portal_relay_destroy(p->relay);
  portal_upgrade_destroy(p->upgrade);
  portmap_stop(p->portmap); /* a portal never closed: delete it now */
  tls_identity_destroy(p->identity);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

int qp_portal_fingerprint(const qp_portal_t *p, char *out, size_t out_size) {
  if (p == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_fingerprint: NULL argument");
  if (out_size < QP_FINGERPRINT_SIZE) {
    if (out_size > 0)
      out[0] = '\0';
    return err_fail(QP_ERR_TOO_LARGE,
                    "qp_portal_fingerprint: %zu-byte buffer, the fingerprint needs %d",
                    out_size, QP_FINGERPRINT_SIZE);
  }
  tls_fingerprint_to_hex(tls_identity_fingerprint(p->identity), out);
  return 0;
}

int qp_portal_pin_peer(qp_portal_t *p, const char *fingerprint) {
  if (p == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_pin_peer: portal is NULL");
  uint8_t fp[TLS_FINGERPRINT_LEN];
  if (fingerprint != NULL) {
    int rc = tls_fingerprint_parse(fingerprint, fp);
    if (rc != 0)
      return rc;
  }
  portal_lock(p);
  int rc = 0;
  if (p->phase != PHASE_NEW) {
    rc = err_fail(QP_ERR_STATE, "pin the peer before listen/connect");
  } else {
    p->has_pin = fingerprint != NULL;
    if (p->has_pin)
      memcpy(p->pin, fp, sizeof(fp));
  }
  portal_unlock(p);
  return rc;
}

/* ---- waiting ------------------------------------------------------------ */

/* Wait on p->cond until deadline_ns; false once the deadline has passed. */
static bool wait_until(qp_portal_t *p, uint64_t deadline_ns) {
  if (deadline_ns == UINT64_MAX) {
    pthread_cond_wait(&p->cond, &p->lock);
    return true;
  }
  if (clock_now_ns() >= deadline_ns)
    return false;
  struct timespec ts = {.tv_sec = (time_t)(deadline_ns / CLOCK_NS_PER_S),
                        .tv_nsec = (long)(deadline_ns % CLOCK_NS_PER_S)};
  pthread_cond_timedwait(&p->cond, &p->lock, &ts);
  return true;
}

static void wake_fd(int fd) {
  uint64_t one = 1;
  if (fd >= 0 && write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
    QP_LOG_WARN("wake-up write failed: %s", strerror(errno));
}

static void drain_fd(int fd) {
  uint64_t drained;
  if (read(fd, &drained, sizeof(drained)) < 0 && errno != EAGAIN)
    QP_LOG_WARN("wake-up read failed: %s", strerror(errno));
}

/* Wake every thread that may sleep outside the condition variable. */
static void wake_all(qp_portal_t *p) {
  wake_fd(p->wake_fd);
  wake_fd(p->driver_wake_fd);
  pthread_cond_broadcast(&p->cond);
}

/* ---- the I/O thread ------------------------------------------------------ */

static int send_datagrams(void *ctx, const udp_addr_t *to, const uint8_t *buf,
                          size_t len, size_t segment_size) {
  qp_portal_t *p = ctx;
  if (portal_relay_carries(p->relay, to))
    return portal_relay_send(p->relay, &p->sock, to, buf, len, segment_size);
  return udp_send(&p->sock, to, buf, len, segment_size);
}

static bool socket_lent(const qp_portal_t *p);

/* When the I/O thread must wake up next: the transport's timers (or a held
 * ACK's deadline instead), recovery's and the relay's, and the moment it
 * must take over a socket nobody polls. */
static uint64_t io_next_wake(qp_portal_t *p) {
  uint64_t deadline = p->tr ? transport_expiry(p->tr) : UINT64_MAX;
  if (p->ack_held)
    deadline = p->ack_held_until; /* the transport's timers wait that long */
  if (p->recovery && p->tr)
    deadline = recover_wake_at(p->recovery, p->tr, deadline);
  if (portal_relay_deadline(p->relay) < deadline)
    deadline = portal_relay_deadline(p->relay);
  if (portal_upgrade_deadline(p->upgrade) < deadline)
    deadline = portal_upgrade_deadline(p->upgrade);
  if (p->unwatched_since != 0 && p->unwatched_since + PORTAL_UNWATCHED_NS < deadline)
    deadline = p->unwatched_since + PORTAL_UNWATCHED_NS;
  return deadline;
}

/* After a thread other than the I/O thread changed what the I/O thread
 * waits for: move its timer (no wake-up through the eventfd). Awake, it
 * recomputes everything before it sleeps again. */
static void io_schedule(qp_portal_t *p) {
  if (!p->io_asleep)
    return;
  if (!p->recv_driver && !p->io_polls_socket && !socket_lent(p) && p->tr &&
      transport_unacked_bytes(p->tr) > 0) {
    if (p->unwatched_since == 0)
      p->unwatched_since = clock_now_ns();
  } else {
    p->unwatched_since = 0;
  }
  portal_iotimer_advance(&p->timer, io_next_wake(p));
}

/* Flush the transport from whichever thread holds the lock. */
static void flush_locked(qp_portal_t *p) {
  if (p->tr == NULL)
    return;
  int rc = transport_flush(p->tr, clock_now_ns(), send_datagrams, p);
  if (rc != 0 && p->io_err == 0) {
    p->io_err = rc;
    snprintf(p->io_msg, sizeof(p->io_msg), "%s", qp_last_error());
  }
  p->ack_held = false;
  io_schedule(p);
}

static void accept_client(qp_portal_t *p, const udp_datagram_t *d) {
  transport_config_t cfg = p->cfg;
  cfg.remote = d->from;
  if (transport_create_server(&cfg, d->data, d->len, clock_now_ns(), &p->tr) != 0)
    p->tr = NULL; /* not an Initial, or no memory: keep listening */
  else
    p->cfg.remote = d->from; /* for messages about this client */
}

static void answer_stun(qp_portal_t *p, const udp_datagram_t *d) {
  uint8_t resp[512];
  size_t n = p->stun_cb ? p->stun_cb(p->stun_ctx, d->data, d->len, &d->from, resp,
                                     sizeof(resp))
                        : 0;
  /* Back the way the check came: a direct check is answered directly
   * even when the relay carries to that address (RFC 8445 section 7.2.5.2.1:
   * the answer must come from where the check went). */
  if (n > 0 && !p->rx_relayed)
    udp_send(&p->sock, &d->from, resp, n, 0);
  else if (n > 0)
    send_datagrams(p, &d->from, resp, n, 0);
}

/* A TURN allocation that failed (relay lost) ends the portal as a socket
 * error would. */
static void relay_failed(qp_portal_t *p, int rc) {
  if (p->io_err != 0 || portal_upgrade_relay_lost(p->upgrade, &p->relay))
    return; /* ... or the path moved off the relay already */
  p->io_err = rc;
  snprintf(p->io_msg, sizeof(p->io_msg), "%s", qp_last_error());
}

static void on_datagram(qp_portal_t *p, const udp_datagram_t *d) {
  if (portal_relay_owns(p->relay, &d->from)) {
    /* From the TURN server (RFC 9443: by the source address first): its
     * answers, or the peer's datagrams (ChannelData 0x40-0x4F, or a Data
     * indication), which go on with the peer as their source. */
    udp_datagram_t inner;
    int rc = portal_relay_receive(p->relay, d, &inner, clock_now_ns());
    if (rc < 0)
      relay_failed(p, rc);
    else if (rc == 1) {
      p->rx_relayed = true;
      on_datagram(p, &inner);
      p->rx_relayed = false;
    }
    return;
  }
  p->datagrams_in++;
  if (udp_classify(d->data, d->len) != UDP_KIND_QUIC) {
    /* Answers to the direct-path checks (upgrade.h) come directly. */
    if (p->rx_relayed || !portal_upgrade_on_stun(p->upgrade, d, clock_now_ns()))
      answer_stun(p, d);
    return;
  }
  if (!p->rx_relayed)
    portal_upgrade_on_quic(p->upgrade, p->relay, &d->from);
  if (p->tr == NULL && p->phase == PHASE_LISTENING &&
      (!p->accept_only_peer || udp_addr_equal(&d->from, &p->peer)))
    accept_client(p, d);
  if (p->tr != NULL)
    transport_read(p->tr, &d->from, d->data, d->len, clock_now_ns());
}

static bool socket_lent(const qp_portal_t *p) {
  return p->recovery && recover_owns_socket(p->recovery);
}

/* Returns how many datagrams were handled (0 also on a socket error). */
static int read_socket(qp_portal_t *p) {
  if (socket_lent(p))
    return 0; /* traversal reads it while it looks for a new path */
  int total = 0;
  for (int i = 0; i < PORTAL_MAX_READ_BATCHES; i++) {
    int n = udp_recv(&p->sock, p->batch);
    if (n < 0) {
      p->io_err = n;
      snprintf(p->io_msg, sizeof(p->io_msg), "%s", qp_last_error());
      return total;
    }
    for (int k = 0; k < n; k++)
      on_datagram(p, &p->batch->dgrams[k]);
    total += n;
    if (n < UDP_RECV_BATCH)
      return total;
  }
  return total;
}

/* A server transport that failed (a forged Initial, a stranger whose
 * certificate does not match the pin, a garbage or half-open handshake)
 * must not end listen(): its CONNECTION_CLOSE went out in this round's
 * flush; forget it and keep waiting for the right client until the
 * deadline, which then tells the last refusal. */
static void forget_failed_attempt(qp_portal_t *p) {
  if (p->phase != PHASE_LISTENING || p->tr == NULL ||
      transport_state(p->tr) != TRANSPORT_CLOSED)
    return;
  const char *msg;
  int code = transport_error(p->tr, &msg);
  if (code == QP_ERR_PEER_VERIFY || code == QP_ERR_HANDSHAKE) {
    p->refused++;
    p->refused_code = code;
    snprintf(p->refused_msg, sizeof(p->refused_msg), "%s", msg);
    QP_LOG_INFO("listen: refused a client (%s); still waiting", msg);
  }
  QP_LOG_DEBUG("dropping a failed connection attempt: %s", msg);
  transport_destroy(p->tr);
  p->tr = NULL;
}

static void update_phase(qp_portal_t *p) {
  forget_failed_attempt(p);
  if ((p->phase == PHASE_LISTENING || p->phase == PHASE_CONNECTING) && p->tr &&
      transport_state(p->tr) == TRANSPORT_ESTABLISHED) {
    p->phase = PHASE_CONNECTED;
    p->handshake_ns = clock_now_ns() - p->start_ns;
    char who[UDP_ADDRSTRLEN];
    QP_LOG_INFO("connected to %s in %.1f ms (%s, peer certificate %s)",
                udp_addr_to_string(&p->cfg.remote, who, sizeof(who)),
                (double)p->handshake_ns / 1e6,
                p->cfg.is_server ? "server" : "client",
                p->cfg.has_pin ? "pinned and verified" : "not pinned");
    if (p->cfg.is_server && !p->cfg.has_pin)
      QP_LOG_INFO("client %s is not authenticated: this server pins no client "
                  "certificate (qp_portal_pin_peer), so whoever reached the "
                  "port first was accepted", who);
  }
}

/* Sleep until a datagram, a wake-up or the timer (p->timer holds the next
 * deadline; other threads move it while we sleep). True when only the
 * timer (or the re-check period) ended the sleep. */
static bool io_wait(qp_portal_t *p, bool with_socket) {
  struct timespec ts = {.tv_sec = (time_t)(PORTAL_MAX_SLEEP_NS / CLOCK_NS_PER_S),
                        .tv_nsec = (long)(PORTAL_MAX_SLEEP_NS % CLOCK_NS_PER_S)};
  /* While a receiver drives the socket, poll only the wake-ups, so a
   * datagram wakes one thread, not two. */
  struct pollfd fds[3] = {{.fd = p->wake_fd, .events = POLLIN},
                          {.fd = p->timer.fd, .events = POLLIN},
                          {.fd = p->sock.fd, .events = POLLIN}};
  if (ppoll(fds, with_socket ? 3 : 2, &ts, NULL) <= 0)
    return true;
  if (fds[0].revents & POLLIN)
    drain_fd(p->wake_fd);
  return !(fds[0].revents || (with_socket && fds[2].revents));
}

/* Relayed: direct-path checks, the move onto a direct path (upgrade.h). */
static void upgrade_round(qp_portal_t *p) {
  portal_path_change_t chg;
  if (p->upgrade == NULL || p->phase != PHASE_CONNECTED || socket_lent(p) ||
      !portal_upgrade_poll(p->upgrade, &p->sock, p->tr, &p->relay,
                           clock_now_ns(), &chg))
    return;
  p->peer = chg.peer;
  p->cfg.remote = chg.peer;
  p->path_kind = chg.kind;
  snprintf(p->path_desc, sizeof(p->path_desc), "%s", chg.desc);
  p->path_ns = clock_now_ns();
  flush_locked(p); /* the relay carries no more: what waits goes directly */
}

/* The receiver driving the socket got its message: leave the write (the
 * ACK) to the caller's next send or recv, or to the I/O thread at the
 * deadline (PORTAL_ACK_HOLD_NS). */
static void hold_ack(qp_portal_t *p) {
  uint64_t now = clock_now_ns();
  if (p->ack_held && now >= p->ack_held_until) {
    /* The receiver has not taken its message yet (starved of CPU): send
     * now, or the I/O thread would wake for the past deadline at once. */
    flush_locked(p);
    return;
  }
  if (!p->ack_held) {
    p->ack_held = true;
    p->ack_held_until = now + PORTAL_ACK_HOLD_NS;
  }
  io_schedule(p);
}

/* One round of I/O after the socket became readable: read, run due timers,
 * write, and tell waiters. Called with the lock held, by the I/O thread or by
 * the receiver driving the socket (driver). When a message is ready for a
 * waiting receiver, the ACK is left for that caller's reply. */
static void io_round(qp_portal_t *p, bool driver) {
  int got = read_socket(p);
  if (p->relay && clock_now_ns() >= portal_relay_deadline(p->relay)) {
    int rc = portal_relay_timer(p->relay, &p->sock, clock_now_ns());
    if (rc != 0)
      relay_failed(p, rc);
  }
  if (p->tr && clock_now_ns() >= transport_expiry(p->tr))
    transport_handle_expiry(p->tr, clock_now_ns());
  if (p->phase == PHASE_CONNECTED && transport_has_message(p->tr) &&
      (driver || p->recv_waiting > 0))
    hold_ack(p);
  else
    flush_locked(p);
  update_phase(p);
  if (p->recovery && p->tr && p->phase == PHASE_CONNECTED)
    recover_poll(p->recovery, p, p->tr, clock_now_ns());
  upgrade_round(p);
  pthread_cond_broadcast(&p->cond);
  /* The driver may sleep on a socket this round just drained, or miss the
   * end of the connection. Only then wake it: a wake-up for nothing makes
   * it wake this thread in turn (unacknowledged data), and the two would
   * hand the lock back and forth for a whole round trip, starving both. */
  if (p->recv_driver &&
      (got > 0 || p->io_err != 0 || p->tr == NULL ||
       transport_state(p->tr) == TRANSPORT_CLOSED))
    wake_fd(p->driver_wake_fd);
}

static void *io_thread(void *arg) {
  qp_portal_t *p = arg;
  portal_lock(p);
  while (!p->stop) {
    bool with_socket = !p->recv_driver && !socket_lent(p);
    p->io_polls_socket = with_socket;
    p->unwatched_since = 0;
    portal_iotimer_set(&p->timer, io_next_wake(p));
    p->io_asleep = true;
    portal_unlock(p);
    bool timer_only = io_wait(p, with_socket);
    portal_lock(p);
    p->io_asleep = false;
    if (p->stop)
      break;
    portal_iotimer_drain(&p->timer);
    /* Others only move the timer sooner (portal_iotimer_advance): what it
     * was set for may be gone (a reply carried the held ACK). */
    if (timer_only && clock_now_ns() < io_next_wake(p))
      continue;
    io_round(p, false);
  }
  portal_unlock(p);
  return NULL;
}

/* ---- starting and stopping ---------------------------------------------- */

static int start_io(qp_portal_t *p) {
  p->batch = malloc(sizeof(*p->batch));
  if (p->batch == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory for the receive batch");
  p->stop = false;
  int rv = pthread_create(&p->thread, NULL, io_thread, p);
  if (rv != 0)
    return err_fail(QP_ERR_INTERNAL, "cannot start the I/O thread: %s", strerror(rv));
  p->thread_running = true;
  return 0;
}

/* Stop the thread and release the socket. Called without the lock held. */
static void stop_io(qp_portal_t *p) {
  portal_lock(p);
  p->stop = true;
  wake_all(p);
  bool joinable = p->thread_running;
  p->thread_running = false;
  portal_unlock(p);
  if (joinable)
    pthread_join(p->thread, NULL);
  recover_stop(p->recovery); /* it may be reading the socket */
  portal_lock(p);
  udp_socket_close(&p->sock);
  /* The eventfds live as long as the portal: a receiver still on its way
   * into ppoll must find its wake-up pending, never a recycled fd. */
  drain_fd(p->wake_fd);
  drain_fd(p->driver_wake_fd);
  free(p->batch);
  p->batch = NULL;
  portal_unlock(p);
}

/* Delete the gateway's port mapping now (close, a failed attempt): no
 * peer may reach this side through it any more, and one left behind stays
 * on the gateway until its lease ends (2 h). portmap_stop waits up to
 * 600 ms for the delete, so it runs without the lock. */
static void release_portmap(qp_portal_t *p) {
  portal_lock(p);
  struct portmap *pm = p->portmap;
  p->portmap = NULL;
  portal_unlock(p);
  portmap_stop(pm);
}

/* Undo a failed listen/connect so the portal can be used again. */
static int abandon_attempt(qp_portal_t *p, int code) {
  char saved[512];
  snprintf(saved, sizeof(saved), "%s", qp_last_error());
  stop_io(p);
  release_portmap(p);
  portal_lock(p);
  transport_destroy(p->tr);
  p->tr = NULL;
  if (p->phase != PHASE_CLOSED)
    p->phase = PHASE_NEW;
  p->io_err = 0;
  portal_unlock(p);
  return err_fail(code, "%s", saved);
}

static int prepare(qp_portal_t *p, const qp_transport_options *opts,
                   bool is_server) {
  qp_transport_options o;
  int rc = options_transport_copy(opts, &o);
  if (rc == 0)
    rc = options_validate(&o);
  if (rc != 0)
    return rc;
  options_warn_unhonored(&o);
  memset(&p->cfg, 0, sizeof(p->cfg));
  p->cfg.is_server = is_server;
  p->cfg.opts = o;
  p->cfg.identity = p->identity;
  p->cfg.has_pin = p->has_pin;
  memcpy(p->cfg.pin, p->pin, sizeof(p->pin));
  return 0;
}

static uint64_t interrupt_gen(qp_portal_t *p) {
  portal_lock(p);
  uint64_t gen = p->interrupts;
  portal_unlock(p);
  return gen;
}

/* Claim the portal for listen/connect: QP_ERR_STATE if already used. */
static int claim(qp_portal_t *p, phase_t phase, const char *what) {
  portal_lock(p);
  int rc = 0;
  if (p->phase != PHASE_NEW)
    rc = err_fail(QP_ERR_STATE,
                 "%s: this portal is already %s; create a new portal", what,
                 p->phase == PHASE_CLOSED ? "closed" : "in use");
  else
    p->phase = phase;
  portal_unlock(p);
  return rc;
}

static void unclaim(qp_portal_t *p) {
  portal_lock(p);
  p->phase = PHASE_NEW;
  portal_unlock(p);
}

/* Wait for the handshake; on failure the message says what happened. */
static int wait_connected(qp_portal_t *p, uint64_t deadline, const char *what,
                          int timeout_ms, uint64_t gen) {
  portal_lock(p);
  int rc = 0;
  for (;;) {
    if (p->phase == PHASE_CONNECTED)
      break;
    if (p->interrupts != gen) {
      rc = err_fail(QP_ERR_INTERRUPTED, "%s: interrupted", what);
      break;
    }
    if (p->phase == PHASE_CLOSED) {
      rc = err_fail(QP_ERR_CLOSED, "%s: the portal was closed while waiting", what);
      break;
    }
    if (p->io_err) {
      rc = err_fail(p->io_err, "%s", p->io_msg);
      break;
    }
    if (p->tr && transport_state(p->tr) == TRANSPORT_CLOSED) {
      const char *msg;
      int code = transport_error(p->tr, &msg);
      rc = err_fail(code, "%s", msg);
      break;
    }
    if (!wait_until(p, deadline)) {
      char who[UDP_ADDRSTRLEN];
      if (p->phase == PHASE_LISTENING && p->tr == NULL && p->refused > 0)
        rc = err_fail(p->refused_code,
                      "%s: no client completed the handshake within %d ms; "
                      "%u refused, the last: %s",
                      what, timeout_ms, p->refused, p->refused_msg);
      else if (p->phase == PHASE_LISTENING && p->tr == NULL)
        rc = err_fail(QP_ERR_TIMEOUT, "%s: no client connected to %s within %d ms",
                     what, udp_addr_to_string(&p->sock.local, who, sizeof(who)),
                     timeout_ms);
      else if (p->datagrams_in == 0)
        rc = err_fail(QP_ERR_TIMEOUT,
                     "%s: no answer from %s within %d ms (is a quic-portal "
                     "server listening there, and is UDP open?)",
                     what, udp_addr_to_string(&p->cfg.remote, who, sizeof(who)),
                     timeout_ms);
      else
        rc = err_fail(QP_ERR_TIMEOUT,
                     "%s: QUIC handshake with %s did not complete within %d ms",
                     what, udp_addr_to_string(&p->cfg.remote, who, sizeof(who)),
                     timeout_ms);
      break;
    }
  }
  portal_unlock(p);
  return rc;
}

/* ---- listen / connect ---------------------------------------------------- */

/* Other threads read p->sock (qp_portal_local_port) under the lock. */
static void install_socket(qp_portal_t *p, const udp_socket_t *sock) {
  portal_lock(p);
  p->sock = *sock;
  p->cfg.local = sock->local;
  portal_unlock(p);
}

int qp_portal_listen(qp_portal_t *p, const char *ip, uint16_t port,
                     const qp_transport_options *opts, int timeout_ms) {
  if (p == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_listen: portal is NULL");
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  udp_addr_t bind_addr;
  int rc = udp_addr_from_ip(ip, port, &bind_addr);
  if (rc != 0)
    return rc;
  uint64_t gen = interrupt_gen(p);
  if ((rc = claim(p, PHASE_LISTENING, "listen")) != 0)
    return rc;
  udp_socket_t sock;
  if ((rc = prepare(p, opts, true)) != 0 ||
      (rc = udp_socket_open(&bind_addr, &sock)) != 0) {
    unclaim(p);
    return rc;
  }
  install_socket(p, &sock);
  p->start_ns = clock_now_ns();
  if ((rc = start_io(p)) != 0)
    return abandon_attempt(p, rc);
  if ((rc = wait_connected(p, deadline, "listen", timeout_ms, gen)) != 0)
    return abandon_attempt(p, rc);
  return 0;
}

static int connect_socket(qp_portal_t *p, uint16_t local_port) {
  udp_addr_t bind_addr;
  const char *any = p->cfg.remote.ss.ss_family == AF_INET6 ? "::" : "0.0.0.0";
  udp_socket_t sock;
  int rc = udp_addr_from_ip(any, local_port, &bind_addr);
  if (rc == 0)
    rc = udp_socket_open(&bind_addr, &sock);
  if (rc == 0)
    install_socket(p, &sock);
  return rc;
}

int qp_portal_connect(qp_portal_t *p, const char *host, uint16_t port,
                      uint16_t local_port, const qp_transport_options *opts,
                      int timeout_ms) {
  if (p == NULL || host == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_connect: %s is NULL",
                   p ? "host" : "portal");
  if (port == 0)
    return err_fail(QP_ERR_INVALID, "qp_portal_connect: port 0 is not a server port");
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  udp_addr_t remote;
  int rc = udp_addr_resolve(host, port, &remote);
  if (rc != 0)
    return rc;
  uint64_t gen = interrupt_gen(p);
  if ((rc = claim(p, PHASE_CONNECTING, "connect")) != 0)
    return rc;
  if ((rc = prepare(p, opts, false)) != 0) {
    unclaim(p);
    return rc;
  }
  p->cfg.remote = remote;
  if ((rc = connect_socket(p, local_port)) != 0) {
    unclaim(p);
    return rc;
  }
  p->start_ns = clock_now_ns();
  /* A client connected to itself-from-a-different-family never happens:
   * the local address follows the remote family. */
  rc = transport_create_client(&p->cfg, p->start_ns, &p->tr);
  if (rc == 0)
    rc = start_io(p);
  if (rc != 0)
    return abandon_attempt(p, rc);
  portal_lock(p);
  flush_locked(p);
  portal_unlock(p);
  if ((rc = wait_connected(p, deadline, "connect", timeout_ms, gen)) != 0)
    return abandon_attempt(p, rc);
  return 0;
}

/* ---- after traversal ------------------------------------------------------ */

const uint8_t *portal_fingerprint(const qp_portal_t *p) {
  return tls_identity_fingerprint(p->identity);
}

static void adopt_handoff(qp_portal_t *p, portal_handoff_t *h) {
  install_socket(p, &h->sock);
  p->cfg.has_pin = h->pin;
  memcpy(p->cfg.pin, h->peer_fingerprint, sizeof(p->cfg.pin));
  p->accept_only_peer = true;
  p->peer = h->peer;
  p->stun_cb = h->stun_cb;
  p->stun_ctx = h->stun_ctx;
  p->stun_ctx_free = h->stun_ctx_free;
  h->stun_ctx_free = NULL;
  p->path_kind = h->path_kind;
  snprintf(p->path_desc, sizeof(p->path_desc), "%s", h->path_desc);
  p->path_ns = clock_now_ns();
  portal_relay_destroy(p->relay);
  p->relay = NULL;
  p->portmap = h->portmap;
  h->portmap = NULL;
  if (h->turn != NULL) {
    p->relay = portal_relay_create(h->turn, &h->peer);
    h->turn = NULL;
    /* The ChannelData header rides in front of each packet: keep the
     * datagram at the configured size (not below QUIC's 1200). */
    if (p->cfg.opts.max_udp_payload >= MIN_RELAYED_PAYLOAD)
      p->cfg.opts.max_udp_payload -= TURN_CHANNEL_HEADER_SIZE;
    p->cfg.relayed = true;
  }
  portal_upgrade_destroy(p->upgrade);
  p->upgrade = portal_upgrade_create(h->upgrade, &h->peer, h->is_server);
  h->upgrade = NULL;
}

/* QUIC datagrams that arrived while traversal still owned the socket. */
static void replay_early(qp_portal_t *p, const portal_handoff_t *h) {
  portal_lock(p);
  for (size_t i = 0; i < h->early_count && i < 8; i++) {
    udp_datagram_t d = {.data = (uint8_t *)h->early[i], .len = h->early_len[i],
                        .from = h->early_from[i]};
    on_datagram(p, &d);
  }
  update_phase(p);
  flush_locked(p);
  portal_unlock(p);
}

int portal_start_on_socket(qp_portal_t *p, portal_handoff_t *h, int timeout_ms) {
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  uint64_t gen = interrupt_gen(p);
  const char *what = h->is_server ? "create_server" : "create_client";
  int rc = claim(p, h->is_server ? PHASE_LISTENING : PHASE_CONNECTING, what);
  if (rc == 0)
    rc = prepare(p, h->opts, h->is_server);
  if (rc != 0) {
    udp_socket_close(&h->sock);
    if (h->stun_ctx_free)
      h->stun_ctx_free(h->stun_ctx);
    h->stun_ctx_free = NULL;
    free(h->turn);
    h->turn = NULL;
    trav_upgrade_destroy(h->upgrade);
    h->upgrade = NULL;
    portmap_stop(h->portmap);
    h->portmap = NULL;
    unclaim(p);
    return rc;
  }
  adopt_handoff(p, h);
  p->cfg.remote = h->peer;
  p->start_ns = clock_now_ns();
  if (!h->is_server)
    rc = transport_create_client(&p->cfg, p->start_ns, &p->tr);
  if (rc == 0)
    rc = start_io(p);
  if (rc != 0)
    return abandon_attempt(p, rc);
  replay_early(p, h);
  if ((rc = wait_connected(p, deadline, what, timeout_ms, gen)) != 0)
    return abandon_attempt(p, rc);
  return 0;
}

/* ---- messages ------------------------------------------------------------ */

/* Why send/recv cannot proceed, or 0 if the connection is usable. */
static int usable(qp_portal_t *p) {
  switch (p->phase) {
  case PHASE_NEW:
  case PHASE_LISTENING:
  case PHASE_CONNECTING:
    return err_fail(QP_ERR_NOT_CONNECTED,
                   "not connected: call listen or connect first and wait for "
                   "it to succeed");
  case PHASE_CLOSED:
    return err_fail(QP_ERR_CLOSED, "the portal was closed by this side");
  case PHASE_CONNECTED:
    break;
  }
  if (p->io_err)
    return err_fail(p->io_err, "%s", p->io_msg);
  if (transport_state(p->tr) == TRANSPORT_CLOSED) {
    const char *msg;
    int code = transport_error(p->tr, &msg);
    return err_fail(code, "%s", msg);
  }
  return 0;
}

/* Wait until the send window has room (or nothing is unacknowledged).
 * Called with the lock held. */
static int wait_send_room(qp_portal_t *p, uint64_t deadline, int timeout_ms,
                          uint64_t gen) {
  for (;;) {
    int rc = usable(p);
    if (rc != 0)
      return rc;
    uint64_t unacked = transport_unacked_bytes(p->tr);
    if (unacked == 0 || unacked < p->cfg.opts.send_window)
      return 0;
    if (p->interrupts != gen)
      return err_fail(QP_ERR_INTERRUPTED, "send: interrupted; nothing was queued");
    if (!wait_until(p, deadline))
      return err_fail(QP_ERR_TIMEOUT,
                     "send: %llu bytes still unacknowledged by the peer after "
                     "%d ms (send window %llu bytes); nothing was queued",
                     (unsigned long long)unacked, timeout_ms,
                     (unsigned long long)p->cfg.opts.send_window);
  }
}

int qp_portal_send(qp_portal_t *p, const void *buf, size_t len, int timeout_ms) {
  if (p == NULL || (buf == NULL && len > 0))
    return err_fail(QP_ERR_INVALID, "qp_portal_send: %s is NULL",
                   p ? "buffer" : "portal");
  if ((uint64_t)len > QP_MAX_MESSAGE_SIZE)
    return err_fail(QP_ERR_TOO_LARGE,
                   "message of %zu bytes refused: the wire format's 4-byte "
                   "length allows at most %llu bytes",
                   len, (unsigned long long)QP_MAX_MESSAGE_SIZE);
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  portal_lock(p);
  uint64_t gen = p->interrupts;
  /* Wait for room first, so a send that times out has copied nothing. */
  int rc = wait_send_room(p, deadline, timeout_ms, gen);
  portal_unlock(p);
  if (rc != 0)
    return rc;
  /* Copy outside the lock: the I/O thread keeps running meanwhile. Other
   * senders may queue in between, so the window is a soft bound: exceeded
   * by at most one message per sending thread. */
  transport_msg_t *m = transport_msg_new(buf, len);
  if (m == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory queueing a %zu-byte message", len);
  portal_lock(p);
  rc = usable(p);
  if (rc == 0) {
    rc = transport_queue(p->tr, m);
    m = NULL;
    if (rc == 0)
      flush_locked(p);
  }
  portal_unlock(p);
  transport_msg_free(m);
  return rc;
}

/* When the driver ends the connection itself if the I/O thread has not:
 * the idle timeout recv promises, while the transport's timers run. */
static uint64_t driver_idle_deadline(qp_portal_t *p) {
  if (p->tr == NULL || transport_expiry(p->tr) == UINT64_MAX)
    return UINT64_MAX; /* closed, or timers held during a recovery */
  return transport_idle_deadline(p->tr);
}

/*
 * Wait for a message as the socket's driver when no other receiver is: poll
 * the socket from this thread and process what arrives here, so a message
 * reaches the caller without a hand-off from the I/O thread (one wake-up per
 * message, as with a blocking TCP recv). Other receivers wait on the
 * condition variable. False once the deadline has passed.
 */
static bool wait_for_message(qp_portal_t *p, uint64_t deadline) {
  if (p->recv_driver || p->sock.fd < 0 || socket_lent(p))
    return wait_until(p, deadline);
  uint64_t now = clock_now_ns();
  if (now >= deadline)
    return false;
  uint64_t wait_ns = deadline - now;
  if (wait_ns > PORTAL_MAX_SLEEP_NS)
    wait_ns = PORTAL_MAX_SLEEP_NS;
  /* The I/O thread handles the idle timeout, but it may come late (busy in
   * the user's log handler, starved of CPU): the driver wakes for it too,
   * once per idle period (no wake-up per message or per timer). */
  uint64_t idle = driver_idle_deadline(p);
  if (idle <= now)
    wait_ns = 0;
  else if (idle - now < wait_ns)
    wait_ns = idle - now;
  struct timespec ts = {.tv_sec = (time_t)(wait_ns / CLOCK_NS_PER_S),
                        .tv_nsec = (long)(wait_ns % CLOCK_NS_PER_S)};
  struct pollfd fds[2] = {{.fd = p->sock.fd, .events = POLLIN},
                          {.fd = p->driver_wake_fd, .events = POLLIN}};
  if (p->ack_held)
    flush_locked(p); /* no reply came: acknowledge before sleeping */
  p->recv_driver = true;
  io_schedule(p); /* the socket is watched now */
  portal_unlock(p);
  int n = ppoll(fds, 2, &ts, NULL);
  portal_lock(p);
  p->recv_driver = false;
  if (n > 0 && (fds[1].revents & POLLIN))
    drain_fd(p->driver_wake_fd);
  bool readable = n > 0 && (fds[0].revents & POLLIN);
  if ((readable || clock_now_ns() >= driver_idle_deadline(p)) && !p->stop)
    io_round(p, true);
  else
    pthread_cond_broadcast(&p->cond); /* another receiver may drive now */
  /* Acknowledgements for our data may arrive after we stop driving: the
   * I/O thread takes the socket over unless a recv drives it again soon. */
  io_schedule(p);
  return true;
}

int qp_portal_recv(qp_portal_t *p, void **msg, size_t *len, int timeout_ms) {
  if (p == NULL || msg == NULL || len == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_recv: NULL argument");
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  portal_lock(p);
  uint64_t gen = p->interrupts;
  int rc;
  for (;;) {
    bool credit = false;
    uint8_t *data;
    size_t n;
    if (p->phase == PHASE_CONNECTED && transport_pop(p->tr, &data, &n, &credit)) {
      if (credit)
        flush_locked(p);
      *msg = data;
      *len = n;
      rc = 0;
      break;
    }
    if ((rc = usable(p)) != 0)
      break;
    if (transport_peer_finished(p->tr)) {
      char who[UDP_ADDRSTRLEN];
      rc = err_fail(QP_ERR_CLOSED, "peer %s finished sending",
                   udp_addr_to_string(&p->cfg.remote, who, sizeof(who)));
      break;
    }
    if (p->interrupts != gen) {
      rc = err_fail(QP_ERR_INTERRUPTED, "recv: interrupted; no data was lost");
      break;
    }
    p->recv_waiting++;
    bool waited = wait_for_message(p, deadline);
    p->recv_waiting--;
    if (!waited) {
      rc = err_fail(QP_ERR_TIMEOUT, "recv: no whole message within %d ms",
                   timeout_ms);
      break;
    }
  }
  portal_unlock(p);
  return rc;
}

void qp_free(void *msg) { free(msg); }

bool qp_portal_is_connected(const qp_portal_t *cp) {
  if (cp == NULL)
    return false;
  qp_portal_t *p = (qp_portal_t *)cp; /* the lock is not logical state */
  portal_lock(p);
  bool up = p->phase == PHASE_CONNECTED && p->io_err == 0 &&
            transport_state(p->tr) == TRANSPORT_ESTABLISHED;
  portal_unlock(p);
  return up;
}

/* ---- close --------------------------------------------------------------- */

/* Wait until the peer acknowledged everything queued, or the linger ends. */
static int drain(qp_portal_t *p, int linger_ms) {
  uint64_t deadline = clock_deadline_ns(linger_ms);
  uint64_t gen = p->interrupts;
  while (p->phase == PHASE_CONNECTED && p->io_err == 0 &&
         transport_state(p->tr) != TRANSPORT_CLOSED &&
         transport_unacked_bytes(p->tr) > 0) {
    if (p->interrupts != gen)
      return err_fail(QP_ERR_INTERRUPTED,
                     "close: interrupted with %llu bytes unacknowledged; closed anyway",
                     (unsigned long long)transport_unacked_bytes(p->tr));
    if (!wait_until(p, deadline))
      return err_fail(QP_ERR_TIMEOUT,
                     "close: %llu bytes were not acknowledged within %d ms; "
                     "closed anyway",
                     (unsigned long long)transport_unacked_bytes(p->tr), linger_ms);
  }
  return 0;
}

int qp_portal_close(qp_portal_t *p, int linger_ms) {
  if (p == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_close: portal is NULL");
  if (linger_ms < 0)
    linger_ms = PORTAL_DEFAULT_LINGER_MS;
  portal_lock(p);
  if (p->phase == PHASE_NEW || p->phase == PHASE_CLOSED) {
    portal_unlock(p);
    return 0;
  }
  int rc = drain(p, linger_ms);
  if (p->tr) {
    transport_close(p->tr);
    flush_locked(p);
  }
  /* After the CONNECTION_CLOSE, which went through the relay. */
  portal_relay_close(p->relay, &p->sock, clock_now_ns());
  p->phase = PHASE_CLOSED;
  wake_all(p);
  portal_unlock(p);
  stop_io(p);          /* recovery too: no new mapping comes after this */
  release_portmap(p);
  return rc;
}

int qp_portal_interrupt(qp_portal_t *p) {
  if (p == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_interrupt: portal is NULL");
  portal_lock(p);
  p->interrupts++;
  wake_all(p);
  portal_unlock(p);
  return 0;
}

/* ---- introspection ------------------------------------------------------- */

int qp_portal_get_stats(qp_portal_t *p, qp_portal_stats *out) {
  if (p == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "qp_portal_get_stats: NULL argument");
  portal_lock(p);
  int rc = 0;
  if (p->tr == NULL || p->handshake_ns == 0) {
    rc = err_fail(QP_ERR_NOT_CONNECTED, "no connection was made yet");
  } else {
    transport_stats_t s;
    transport_get_stats(p->tr, &s);
    *out = (qp_portal_stats){
        .packets_sent = s.packets_sent,
        .packets_received = s.packets_received,
        .packets_lost = p->sock.rx_dropped,
        .pto_count = s.pto_count,
        .bytes_in_flight = s.bytes_in_flight,
        .cwnd = s.cwnd,
        .smoothed_rtt_us = s.smoothed_rtt_ns / 1000,
        .handshake_us = p->handshake_ns / 1000,
    };
    out->recoveries = p->recovery ? recover_count(p->recovery) : 0;
  }
  portal_unlock(p);
  return rc;
}

int qp_portal_peer_address(const qp_portal_t *cp, char *ip, size_t ip_size,
                           uint16_t *port) {
  if (cp == NULL || ip == NULL || port == NULL || ip_size == 0)
    return err_fail(QP_ERR_INVALID, "qp_portal_peer_address: NULL argument");
  qp_portal_t *p = (qp_portal_t *)cp;
  portal_lock(p);
  udp_addr_t peer;
  udp_addr_unmap(&p->cfg.remote, &peer); /* a dual-stack socket's IPv4 peer */
  bool made = p->tr != NULL && p->handshake_ns != 0;
  portal_unlock(p);
  if (!made)
    return err_fail(QP_ERR_NOT_CONNECTED, "no connection was made yet");
  int rc = getnameinfo((const struct sockaddr *)&peer.ss, peer.len, ip,
                       (socklen_t)ip_size, NULL, 0, NI_NUMERICHOST);
  if (rc != 0)
    return err_fail(QP_ERR_INVALID, "qp_portal_peer_address: %s", gai_strerror(rc));
  *port = udp_addr_port(&peer);
  return 0;
}

int qp_portal_path(const qp_portal_t *cp, char *desc, size_t desc_size,
                   uint64_t *changed_ns) {
  if (cp == NULL || (desc == NULL && desc_size > 0))
    return err_fail(QP_ERR_INVALID, "qp_portal_path: NULL argument");
  qp_portal_t *p = (qp_portal_t *)cp;
  portal_lock(p);
  int kind = p->path_kind;
  if (desc_size > 0)
    snprintf(desc, desc_size, "%s", kind ? p->path_desc : "none");
  if (changed_ns != NULL)
    *changed_ns = p->path_ns;
  portal_unlock(p);
  return kind;
}

uint16_t qp_portal_local_port(const qp_portal_t *cp) {
  if (cp == NULL)
    return 0;
  qp_portal_t *p = (qp_portal_t *)cp;
  portal_lock(p);
  uint16_t port = p->sock.fd >= 0 ? udp_addr_port(&p->sock.local) : 0;
  portal_unlock(p);
  return port;
}

/* ---- recovery hooks (portal_internal.h, recover.c) ------------------------ */

void portal_attach_recovery(qp_portal_t *p, portal_recovery_t *r) {
  portal_lock(p);
  p->recovery = r;
  portal_unlock(p);
}

void portal_recovery_lock(qp_portal_t *p) { portal_lock(p); }
void portal_recovery_unlock(qp_portal_t *p) { portal_unlock(p); }
transport_t *portal_recovery_transport(qp_portal_t *p) { return p->tr; }
const udp_socket_t *portal_recovery_socket(qp_portal_t *p) { return &p->sock; }

void portal_recovery_lend_socket(qp_portal_t *p, bool lent) {
  (void)lent; /* recover_owns_socket says which; wake everyone to re-poll */
  wake_all(p);
}

static void free_responder(void *ctx) { trav_responder_destroy(ctx); }

int portal_recovery_adopt(qp_portal_t *p, trav_result_t *res) {
  if (p->stun_ctx_free)
    p->stun_ctx_free(p->stun_ctx);
  p->stun_ctx = res->responder;
  p->stun_ctx_free = res->responder ? free_responder : NULL;
  res->responder = NULL;
  p->peer = res->peer;
  p->cfg.remote = res->peer; /* what qp_portal_peer_address reports */
  p->path_kind = res->path_kind;
  snprintf(p->path_desc, sizeof(p->path_desc), "%s", res->path_desc);
  p->path_ns = clock_now_ns();
  QP_LOG_INFO("path: %s", p->path_desc);
  if (res->portmap != NULL) { /* a new traversal made a new mapping */
    portmap_stop(p->portmap);
    p->portmap = res->portmap;
    res->portmap = NULL;
  }
  /* The old allocation is not on the new path (that has its own, or none):
   * left in place it would still carry to the peer's address, through a
   * relay that may be what died (a direct path to the same address). */
  portal_relay_close(p->relay, &p->sock, clock_now_ns());
  portal_relay_destroy(p->relay);
  p->relay = NULL;
  if (res->turn != NULL) { /* the new path runs through a new allocation */
    p->relay = portal_relay_create(res->turn, &res->peer);
    res->turn = NULL;
  }
  /* The old path's direct-path checks are moot; a relayed new one has its
   * own (upgrade.h). */
  portal_upgrade_destroy(p->upgrade);
  p->upgrade = portal_upgrade_create(res->upgrade, &res->peer, p->cfg.is_server);
  res->upgrade = NULL;
  int rc = 0;
  if (p->tr && !p->cfg.is_server)
    rc = transport_migrate(p->tr, &res->peer, clock_now_ns());
  for (size_t i = 0; i < res->early_count && i < TRAV_EARLY_MAX; i++) {
    udp_datagram_t d = {.data = res->early[i], .len = res->early_len[i],
                        .from = res->early_from[i]};
    on_datagram(p, &d);
  }
  flush_locked(p);
  wake_all(p);
  return rc;
}

void portal_recovery_fail(qp_portal_t *p, int code, const char *fmt, ...) {
  /* Leaves room for the relayed path's description in front. */
  char why[sizeof(p->io_msg) - QP_PATH_DESC_SIZE - 32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof(why), fmt, ap);
  va_end(ap);
  /* A relayed path dies with its TURN server: name it first (the message
   * may be cut at the end). */
  if (p->path_kind == QP_PATH_RELAYED)
    snprintf(p->io_msg, sizeof(p->io_msg), "path lost (%s): %s",
             p->path_desc, why);
  else
    snprintf(p->io_msg, sizeof(p->io_msg), "%s", why);
  p->io_err = code;
  QP_LOG_WARN("%s", p->io_msg);
  wake_all(p);
}
