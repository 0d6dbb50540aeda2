/*
 * recover.c: a new path under a live connection (recover.h,
 * docs/internals/resilience.md).
 *
 * Threads: recover_poll runs on the portal's I/O thread under the portal
 * lock and starts one recovery thread per dead path. That thread runs
 * traversal on the portal's socket WITHOUT the portal lock (the I/O thread
 * and receivers stop reading the socket meanwhile: recover_owns_socket), and
 * takes the lock only to hand the result to the transport. r->mu guards the
 * thread's lifecycle (started, stop, joined) against recover_stop, which
 * runs without the portal lock.
 */
#include "portal/recover.h"

#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "portal/portal_internal.h"
#include "traversal/traversal.h"

/* Pause between two traversal attempts that failed fast (the store was
 * unreachable during an outage): retry soon, without hammering it. */
#define RECOVER_RETRY_PAUSE_MS 300
/* How often the thread looks whether QUIC moved onto the new path. */
#define RECOVER_POLL_MS 20
/* The error message keeps this much of the attempts' story. */
#define RECOVER_STORY_MAX 768

struct portal_recovery {
  /* What traversal needs again: a deep copy of the creation options. */
  qp_traverse_options opts;
  char *rendezvous, *session;
  char **stun;
  /* Lent by the caller only for the qp_create_* call: copied. */
  char *secret, *local_ip;
  char **turn, **turn_secret;
  bool is_server;
  bool pin;
  uint8_t peer_fp[TLS_FINGERPRINT_LEN];
  int timeout_ms;
  double idle_secs; /* the transport's idle timeout: the peer's deadline to
                       show up in the store */

  pthread_mutex_t mu; /* lifecycle below */
  pthread_t thread;
  bool started, joined, stop;

  /* Portal lock held: */
  bool running;        /* a recovery thread works */
  bool lent;           /* traversal owns the socket's reads */
  uint64_t recoveries; /* paths found */
  qp_portal_t *portal;
  /* The attempt in progress (read by the cancel callback on the thread). */
  trav_result_t res;
  udp_addr_t old_peer;
};

/* ---- creation ------------------------------------------------------------ */

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* A copy of n strings (NULL for none); *ok turns false when memory ran out. */
static char **dup_list(const char *const *v, size_t n, bool *ok) {
  if (n == 0 || v == NULL)
    return NULL;
  char **out = calloc(n, sizeof(*out));
  *ok = *ok && out != NULL;
  for (size_t i = 0; *ok && i < n; i++)
    *ok = (out[i] = strdup(v[i])) != NULL;
  return out;
}

/* Secrets and TURN credentials are wiped before their memory is freed. */
static void wipe_free(char *p) {
  if (p != NULL)
    gnutls_memset(p, 0, strlen(p));
  free(p);
}

static void free_list(char **v, size_t n) {
  for (size_t i = 0; v != NULL && i < n; i++)
    wipe_free(v[i]);
  free(v);
}

portal_recovery_t *recover_create(const qp_traverse_options *o, bool is_server,
                                  const uint8_t peer_fp[TLS_FINGERPRINT_LEN]) {
  if (o->reconnect_timeout_ms == 0)
    return NULL;
  portal_recovery_t *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    QP_LOG_WARN("out of memory: this portal will not recover from a path change");
    return NULL;
  }
  r->opts = *o;
  r->is_server = is_server;
  r->pin = !o->no_pin;
  memcpy(r->peer_fp, peer_fp, sizeof(r->peer_fp));
  r->timeout_ms = o->reconnect_timeout_ms > 0 ? o->reconnect_timeout_ms
                                              : RECOVER_DEFAULT_TIMEOUT_MS;
  qp_transport_options t;
  qp_transport_options_init(&t);
  r->idle_secs = o->transport ? o->transport->max_idle_timeout_secs : t.max_idle_timeout_secs;
  r->opts.transport = NULL; /* the portal has its copy; not needed here */
  r->rendezvous = dup_or_null(o->rendezvous);
  r->session = dup_or_null(o->session);
  r->opts.rendezvous = r->rendezvous;
  r->opts.session = r->session;
  bool ok = (o->rendezvous == NULL || r->rendezvous) && (o->session == NULL || r->session);
  if (o->stun_server_count > 0) {
    r->stun = calloc(o->stun_server_count, sizeof(*r->stun));
    ok = ok && r->stun != NULL;
    for (size_t i = 0; ok && i < o->stun_server_count; i++)
      ok = (r->stun[i] = strdup(o->stun_servers[i])) != NULL;
    r->opts.stun_servers = (const char *const *)r->stun;
  }
  r->secret = dup_or_null(o->secret);
  r->local_ip = dup_or_null(o->local_ip);
  ok = ok && (o->secret == NULL || r->secret) && (o->local_ip == NULL || r->local_ip);
  r->opts.secret = r->secret;
  r->opts.local_ip = r->local_ip;
  r->turn = dup_list(o->turn_servers, o->turn_server_count, &ok);
  r->turn_secret = dup_list(o->turn_secret_servers, o->turn_secret_server_count, &ok);
  r->opts.turn_servers = (const char *const *)r->turn;
  r->opts.turn_secret_servers = (const char *const *)r->turn_secret;
  /* Recovery cannot move QUIC to another socket: no birthday sockets. */
  r->opts.hard_nat_sockets = -1;
  pthread_mutex_init(&r->mu, NULL);
  if (!ok) {
    QP_LOG_WARN("out of memory: this portal will not recover from a path change");
    recover_destroy(r);
    return NULL;
  }
  return r;
}

void recover_destroy(portal_recovery_t *r) {
  if (r == NULL)
    return;
  free(r->rendezvous);
  free(r->session);
  for (size_t i = 0; r->stun && i < r->opts.stun_server_count; i++)
    free(r->stun[i]);
  free(r->stun);
  wipe_free(r->secret);
  free(r->local_ip);
  free_list(r->turn, r->opts.turn_server_count);
  free_list(r->turn_secret, r->opts.turn_secret_server_count);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* ---- the recovery thread ------------------------------------------------- */

static bool stopping(portal_recovery_t *r) {
  pthread_mutex_lock(&r->mu);
  bool stop = r->stop;
  pthread_mutex_unlock(&r->mu);
  return stop;
}

/* Traversal's cancel callback (polled every 50 ms at least): the portal is
 * closing, or a QUIC packet from the peer's old address arrived, which
 * means the old path works again (a false alarm, or an outage that ended):
 * QUIC goes on there. The early datagrams are read while trav_run writes
 * them, on this same thread. */
static bool cancel_attempt(void *arg) {
  portal_recovery_t *r = arg;
  for (size_t i = 0; i < r->res.early_count && i < TRAV_EARLY_MAX; i++)
    if (udp_addr_equal(&r->res.early_from[i], &r->old_peer))
      return true;
  return stopping(r);
}

static int64_t ms_left(uint64_t deadline) {
  uint64_t now = clock_now_ns();
  return now >= deadline ? 0 : (int64_t)((deadline - now) / CLOCK_NS_PER_MS);
}

static void note(char *story, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append one attempt's outcome to the story the final error tells. */
static void note(char *story, const char *fmt, ...) {
  size_t used = strlen(story);
  if (used + 1 >= RECOVER_STORY_MAX)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(story + used, RECOVER_STORY_MAX - used, fmt, ap);
  va_end(ap);
}

static void pause_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One traversal attempt on the portal's socket. Portal lock NOT held. */
static int attempt(portal_recovery_t *r, uint64_t deadline, uint64_t peer_deadline) {
  qp_traverse_options o = r->opts;
  int64_t left = ms_left(deadline);
  int64_t wait = ms_left(peer_deadline);
  if (left <= 0)
    return err_fail(QP_ERR_TIMEOUT, "no time left");
  o.punch_timeout_ms = (int)left;
  /* The peer must show up in the store before its idle deadline: a peer
   * that crashed never will (then the idle timeout ends the portal, as
   * without recovery). Once it has, the punch gets what is left. */
  o.wait_timeout_ms = (int)(wait > 0 ? (wait < left ? wait : left) : 1);
  o.cancel = cancel_attempt;
  o.cancel_user = r;
  memset(&r->res, 0, sizeof(r->res));
  portal_recovery_lock(r->portal);
  r->lent = true;
  portal_recovery_lend_socket(r->portal, true);
  udp_socket_t sock = *portal_recovery_socket(r->portal);
  portal_recovery_unlock(r->portal);
  return create_traverse(&o, r->is_server, r->portal, &sock, &r->res);
}

/* Hand a validated path to QUIC, then wait until a packet from the peer
 * proves the connection moved (the transport's timers start again).
 * Portal lock NOT held on entry or exit. */
static int follow(portal_recovery_t *r, uint64_t deadline, char *story) {
  char was[UDP_ADDRSTRLEN], now_at[UDP_ADDRSTRLEN];
  udp_addr_to_string(&r->old_peer, was, sizeof(was));
  udp_addr_to_string(&r->res.peer, now_at, sizeof(now_at));
  if (r->pin && memcmp(r->res.peer_fingerprint, r->peer_fp, sizeof(r->peer_fp)) != 0) {
    note(story, "the peer at %s published a new certificate: it restarted, "
                "and this connection cannot continue; ",
         now_at);
    return err_fail(QP_ERR_PEER_VERIFY, "peer restarted");
  }
  portal_recovery_lock(r->portal);
  r->lent = false; /* QUIC reads the socket again: its packets come now */
  portal_recovery_lend_socket(r->portal, false);
  int rc = portal_recovery_adopt(r->portal, &r->res);
  portal_recovery_unlock(r->portal);
  if (rc != 0) {
    note(story, "path to %s found, QUIC could not move onto it: %s; ", now_at,
         qp_last_error());
    return rc;
  }
  QP_LOG_INFO("path change: traversal found %s (was %s); QUIC %s", now_at, was,
              r->is_server ? "follows the client's next packet"
                           : "migrates after path validation");
  while (!stopping(r)) {
    portal_recovery_lock(r->portal);
    transport_t *tr = portal_recovery_transport(r->portal);
    bool moved = tr && !transport_timers_held(tr);
    bool ended = tr == NULL || transport_state(tr) == TRANSPORT_CLOSED;
    portal_recovery_unlock(r->portal);
    if (moved || ended)
      return 0;
    if (ms_left(deadline) <= 0) {
      note(story, "path to %s validated by traversal, but no QUIC packet "
                  "came over it; ",
           now_at);
      return err_fail(QP_ERR_TIMEOUT, "QUIC did not follow");
    }
    pause_ms(RECOVER_POLL_MS);
  }
  return err_fail(QP_ERR_INTERRUPTED, "portal closing");
}

static void finish(portal_recovery_t *r, int rc, uint64_t t0, const char *story,
                   bool peer_gone, bool new_path) {
  portal_recovery_lock(r->portal);
  transport_t *tr = portal_recovery_transport(r->portal);
  char who[UDP_ADDRSTRLEN];
  udp_addr_to_string(&r->old_peer, who, sizeof(who));
  double took = (double)(clock_now_ns() - t0) / 1e9;
  if (rc == 0 && new_path) {
    r->recoveries++;
    QP_LOG_INFO("recovered: traffic flows again %.2f s after the path to %s "
                "was declared dead (recovery %llu)",
                took, who, (unsigned long long)r->recoveries);
  } else if (rc != 0 && tr && transport_state(tr) != TRANSPORT_CLOSED && !stopping(r)) {
    if (peer_gone)
      portal_recovery_fail(r->portal, QP_ERR_IDLE_TIMEOUT,
                           "no packet from %s for %.1f s (idle timeout), and it "
                           "published no new record in the store meanwhile: "
                           "the peer is gone. Recovery tried: %s",
                           who, r->idle_secs, story);
    else
      portal_recovery_fail(r->portal, rc == QP_ERR_PEER_VERIFY ? rc : QP_ERR_PUNCH,
                           "the path to %s died and no new path was found "
                           "within reconnect_timeout_ms=%d (%.1f s spent). "
                           "Recovery tried: %s",
                           who, r->timeout_ms, took, story);
  }
  r->running = false;
  r->lent = false;
  if (tr)
    transport_hold_timers(tr, false);
  portal_recovery_lend_socket(r->portal, false);
  portal_recovery_unlock(r->portal);
}

static void *recover_main(void *arg) {
  portal_recovery_t *r = arg;
  uint64_t t0 = clock_now_ns();
  uint64_t deadline = t0 + (uint64_t)r->timeout_ms * CLOCK_NS_PER_MS;
  /* The peer must publish a new record before the idle timeout of its
   * last packet ends: one that crashed never will. */
  portal_recovery_lock(r->portal);
  transport_t *tr = portal_recovery_transport(r->portal);
  uint64_t peer_deadline = tr ? transport_idle_deadline(tr) : t0;
  portal_recovery_unlock(r->portal);
  char story[RECOVER_STORY_MAX] = "";
  int rc = QP_ERR_TIMEOUT;
  bool peer_gone = false, new_path = false;
  for (int n = 1; !stopping(r) && ms_left(deadline) > 0; n++) {
    rc = attempt(r, deadline, peer_deadline);
    if (rc == 0) {
      rc = follow(r, deadline, story);
      new_path = rc == 0;
      trav_result_cleanup(&r->res);
      if (rc == 0 || rc == QP_ERR_PEER_VERIFY)
        break;
      continue;
    }
    if (rc == QP_ERR_INTERRUPTED && !stopping(r)) {
      QP_LOG_INFO("path change: a packet came over the old path to the peer "
                  "again: staying on it");
      rc = 0;
      break;
    }
    note(story, "attempt %d: %s; ", n, qp_last_error());
    if (rc == QP_ERR_PUNCH) /* the peer published: alive, give it all the time */
      peer_deadline = deadline;
    if (rc == QP_ERR_TIMEOUT && ms_left(peer_deadline) <= 0) {
      peer_gone = true;
      break;
    }
    if (rc != QP_ERR_PUNCH)
      pause_ms(RECOVER_RETRY_PAUSE_MS);
  }
  finish(r, rc, t0, story, peer_gone, new_path);
  return NULL;
}

/* ---- the portal's side ---------------------------------------------------- */

void recover_poll(portal_recovery_t *r, qp_portal_t *p, transport_t *tr, uint64_t now) {
  if (r->running || transport_state(tr) != TRANSPORT_ESTABLISHED ||
      !transport_path_dead(tr, now))
    return;
  pthread_mutex_lock(&r->mu);
  if (r->stop) {
    pthread_mutex_unlock(&r->mu);
    return;
  }
  if (r->started && !r->joined) /* the last recovery's thread has ended */
    pthread_join(r->thread, NULL);
  r->portal = p;
  r->old_peer = *transport_peer(tr);
  char who[UDP_ADDRSTRLEN];
  QP_LOG_INFO("path to %s is dead (no acknowledgement for %.1f s): running "
              "traversal again through the store",
              udp_addr_to_string(&r->old_peer, who, sizeof(who)),
              (double)transport_stalled_ns(tr, now) / 1e9);
  r->running = true;
  r->lent = true;
  transport_hold_timers(tr, true);
  portal_recovery_lend_socket(p, true);
  int rv = pthread_create(&r->thread, NULL, recover_main, r);
  r->started = rv == 0;
  r->joined = rv != 0;
  pthread_mutex_unlock(&r->mu);
  if (rv != 0) {
    r->running = false;
    r->lent = false;
    transport_hold_timers(tr, false);
    portal_recovery_lend_socket(p, false);
    QP_LOG_WARN("cannot start the recovery thread: %s", strerror(rv));
  }
}

uint64_t recover_wake_at(portal_recovery_t *r, transport_t *tr, uint64_t deadline) {
  if (r->running)
    return deadline;
  uint64_t at = transport_path_dead_at(tr);
  return at < deadline ? at : deadline;
}

bool recover_owns_socket(const portal_recovery_t *r) { return r->lent; }

uint64_t recover_count(const portal_recovery_t *r) { return r->recoveries; }

void recover_stop(portal_recovery_t *r) {
  if (r == NULL)
    return;
  pthread_mutex_lock(&r->mu);
  r->stop = true;
  bool join = r->started && !r->joined;
  r->joined = true;
  pthread_mutex_unlock(&r->mu);
  if (join)
    pthread_join(r->thread, NULL);
}
