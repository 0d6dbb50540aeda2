/*
 * portmap.c: one worker thread per protocol, the first grant kept, the
 * gathering deadline, renewals and deletes (see portmap.h and
 * docs/internals/portmap.md).
 *
 * The portmap_t is reference-counted: its owner holds one reference and
 * each worker one, so that portmap_stop can return while a worker is still
 * blocked in libminiupnpc; that worker deletes what it got and frees the
 * object when it ends.
 */
#include "portmap/portmap.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/error.h"
#include "portmap/pm_internal.h"

/* portmap_stop waits this long for the deletes: a LAN gateway answers in
 * milliseconds; a dead one must not hold up closing the portal longer. */
#define PORTMAP_STOP_WAIT_MS 600
/* Time allowed for one delete exchange (NAT-PMP, PCP): under the wait
 * above, with room for a few resends. */
#define PM_DELETE_MS 500
/* Renew at half the granted lifetime (RFC 6886 section 3.3: the client
 * SHOULD renew at half; RFC 6887 section 11.2.1: between 1/2 and 5/8). */
#define PM_RENEW_DIVISOR 2
#define PM_MAX_WORKERS 3
#define MS_PER_S 1000

typedef enum worker_state {
  WORKER_ASKING,  /* waiting for the gateway's first answer */
  WORKER_FAILED,  /* answered without a mapping: reason set */
  WORKER_HOLDING, /* holds the reported mapping (or shares its port) */
  WORKER_DONE,    /* answered, mapping not used (deleted or shared) */
} worker_state_t;

typedef struct worker {
  struct portmap *pm;
  const pm_proto_ops_t *ops;
  pm_job_t job;
  worker_state_t state;
  int code;
  char reason[PM_REASON_MAX];
} worker_t;

struct portmap {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* CLOCK_MONOTONIC */
  int refs;
  bool stopping;
  bool closed; /* gathering is over: portmap_wait gave its final answer */
  int64_t start_ms;
  int64_t deadline_ms;
  udp_addr_t gateway;
  udp_addr_t internal;
  int nworkers;
  worker_t workers[PM_MAX_WORKERS];
  int holder; /* index of the worker holding the mapping, or -1 */
  portmap_result_t result;
  int final_code;
  char final_msg[512];
};

const char *portmap_proto_name(portmap_proto_t proto) {
  switch (proto) {
  case PORTMAP_UPNP:
    return "UPnP";
  case PORTMAP_NATPMP:
    return "NAT-PMP";
  case PORTMAP_PCP:
    return "PCP";
  }
  return "?";
}

const char *portmap_proto_token(portmap_proto_t proto) {
  switch (proto) {
  case PORTMAP_UPNP:
    return "upnp";
  case PORTMAP_NATPMP:
    return "natpmp";
  case PORTMAP_PCP:
    return "pcp";
  }
  return "?";
}

static void unref_locked(portmap_t *pm) {
  if (--pm->refs > 0) {
    pthread_mutex_unlock(&pm->lock);
    return;
  }
  pthread_mutex_unlock(&pm->lock);
  pthread_cond_destroy(&pm->cond);
  pthread_mutex_destroy(&pm->lock);
  free(pm);
}

static void timed_wait(portmap_t *pm, int64_t until_ms) {
  struct timespec ts = {.tv_sec = (time_t)(until_ms / MS_PER_S),
                        .tv_nsec = (long)(until_ms % MS_PER_S) * 1000000L};
  pthread_cond_timedwait(&pm->cond, &pm->lock, &ts);
}

static void copy_reason(worker_t *w, int code) {
  w->code = code;
  snprintf(w->reason, sizeof(w->reason), "%s", qp_last_error());
}

typedef enum grant_use {
  GRANT_HOLD,  /* the mapping reported: renewed, deleted on stop */
  GRANT_SHARE, /* the same public port as the held one: kept, deleted on
                  stop */
  GRANT_DROP,  /* another port, or too late: deleted now */
} grant_use_t;

/* What to do with a grant. A gateway that speaks several of the protocols
 * (miniupnpd) gives them all the same port and one rule, owned by whichever
 * wrote it last: deleting a shared grant now would delete the held
 * mapping, and leaving it would leave the rule behind when the holder's
 * delete is refused as not its own. So a shared grant is deleted on stop,
 * after the holder's. */
static grant_use_t decide_locked(portmap_t *pm, worker_t *w) {
  if (pm->stopping)
    return GRANT_DROP;
  if (pm->holder < 0) {
    pm->holder = (int)(w - pm->workers);
    pm->result = (portmap_result_t){
        .proto = w->ops->proto,
        .external = w->job.external,
        .internal = w->job.internal,
        .gateway = pm->gateway,
        .lifetime_s = w->job.granted_s,
        .elapsed_ms = clock_now_ms() - pm->start_ms,
    };
    return GRANT_HOLD;
  }
  if (udp_addr_equal(&w->job.external, &pm->result.external))
    return GRANT_SHARE;
  return GRANT_DROP;
}

/* Renew at half the lifetime until portmap_stop, or until a renewal fails
 * (the mapping is then reported lost, and deleted like on stop). */
static void hold_locked(portmap_t *pm, worker_t *w) {
  int64_t granted_at = clock_now_ms();
  while (!pm->stopping) {
    if (w->job.granted_s == 0) { /* permanent UPnP lease: nothing to renew */
      pthread_cond_wait(&pm->cond, &pm->lock);
      continue;
    }
    int64_t due = granted_at +
                  (int64_t)w->job.granted_s * MS_PER_S / PM_RENEW_DIVISOR;
    if (clock_now_ms() < due) {
      timed_wait(pm, due);
      continue;
    }
    pthread_mutex_unlock(&pm->lock);
    int rc = w->ops->map(&w->job, clock_now_ms() + PM_EXCHANGE_MS);
    pthread_mutex_lock(&pm->lock);
    if (rc != QP_OK) {
      copy_reason(w, rc);
      pm->result.lost = true;
      return;
    }
    granted_at = clock_now_ms();
    pm->result.external = w->job.external;
    pm->result.lifetime_s = w->job.granted_s;
    pm->result.refreshes++;
  }
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  portmap_t *pm = w->pm;
  int rc = w->ops->map(&w->job, pm->deadline_ms);
  pthread_mutex_lock(&pm->lock);
  bool delete_it = rc == QP_OK;
  grant_use_t use = rc == QP_OK ? decide_locked(pm, w) : GRANT_DROP;
  if (rc != QP_OK) {
    copy_reason(w, rc);
    w->state = WORKER_FAILED;
  } else if (use == GRANT_HOLD) {
    w->state = WORKER_HOLDING;
    pm->result.late = pm->closed;
    pthread_cond_broadcast(&pm->cond);
    hold_locked(pm, w); /* until stop, or a failed renewal */
  } else if (use == GRANT_SHARE) {
    w->state = WORKER_HOLDING;
    while (!pm->stopping)
      pthread_cond_wait(&pm->cond, &pm->lock);
  } else {
    w->state = WORKER_DONE;
  }
  pthread_cond_broadcast(&pm->cond);
  pthread_mutex_unlock(&pm->lock);
  if (delete_it)
    w->ops->unmap(&w->job, clock_now_ms() + PM_DELETE_MS);
  w->ops->release(&w->job);
  pthread_mutex_lock(&pm->lock);
  if (w->state == WORKER_HOLDING)
    w->state = WORKER_DONE;
  pthread_cond_broadcast(&pm->cond);
  unref_locked(pm);
  return NULL;
}

static int resolve_addresses(const portmap_config_t *cfg, portmap_t *pm) {
  int rc = cfg->gateway
               ? udp_addr_parse(cfg->gateway, PM_SERVER_PORT, &pm->gateway)
               : pm_default_gateway(&pm->gateway);
  if (rc != QP_OK)
    return rc;
  if (!cfg->gateway)
    udp_addr_set_port(&pm->gateway, PM_SERVER_PORT);
  if (pm->gateway.ss.ss_family != AF_INET)
    return err_fail(QP_ERR_INVALID, "port mapping: the gateway must be an "
                                    "IPv4 address");
  pm->internal = cfg->local;
  if (udp_addr_is_unspecified(&cfg->local))
    rc = udp_route_source(&pm->gateway, udp_addr_port(&cfg->local),
                          &pm->internal);
  return rc;
}

static int start_workers(const portmap_config_t *cfg, portmap_t *pm) {
  static const pm_proto_ops_t *const all[PM_MAX_WORKERS] = {
      &pm_upnp_ops, &pm_natpmp_ops, &pm_pcp_ops};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = QP_OK;
  for (int i = 0; i < PM_MAX_WORKERS && rc == QP_OK; i++) {
    if (!(cfg->protocols & all[i]->proto))
      continue;
    worker_t *w = &pm->workers[pm->nworkers];
    *w = (worker_t){.pm = pm, .ops = all[i], .state = WORKER_ASKING};
    w->job = (pm_job_t){
        .proto = all[i]->proto,
        .gateway = pm->gateway,
        .internal = pm->internal,
        .lifetime_s = cfg->lifetime_s ? cfg->lifetime_s : PORTMAP_LIFETIME_S,
    };
    atomic_init(&w->job.stopping, false);
    pthread_mutex_lock(&pm->lock);
    pm->refs++;
    pm->nworkers++;
    pthread_t t;
    int e = pthread_create(&t, &attr, worker_main, w);
    if (e != 0) {
      pm->refs--;
      pm->nworkers--;
      rc = err_fail(QP_ERR_NOMEM, "port mapping: no thread for %s: %s",
                    portmap_proto_name(all[i]->proto), strerror(e));
    }
    pthread_mutex_unlock(&pm->lock);
  }
  pthread_attr_destroy(&attr);
  return rc;
}

int portmap_start(const portmap_config_t *cfg, portmap_t **out) {
  if (!cfg || !out || !(cfg->protocols & PORTMAP_ALL) ||
      cfg->local.ss.ss_family != AF_INET || !udp_addr_port(&cfg->local) ||
      cfg->deadline_ms < 0)
    return err_fail(QP_ERR_INVALID, "port mapping needs a protocol, an IPv4 "
                                    "socket address with its port, and a "
                                    "deadline >= 0");
  portmap_t *pm = calloc(1, sizeof(*pm));
  if (!pm)
    return err_fail(QP_ERR_NOMEM, "port mapping: out of memory");
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&pm->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&pm->lock, NULL);
  pm->refs = 1;
  pm->holder = -1;
  pm->start_ms = clock_now_ms();
  pm->deadline_ms =
      pm->start_ms + (cfg->deadline_ms ? cfg->deadline_ms : PORTMAP_DEADLINE_MS);
  int rc = resolve_addresses(cfg, pm);
  if (rc == QP_OK)
    rc = start_workers(cfg, pm);
  if (rc != QP_OK) {
    portmap_stop(pm);
    return rc;
  }
  *out = pm;
  return QP_OK;
}

/* The final answer when nothing was granted in time, naming each
 * protocol's reason. */
static void conclude_locked(portmap_t *pm) {
  char gw[UDP_ADDRSTRLEN], in[UDP_ADDRSTRLEN];
  udp_addr_to_string(&pm->gateway, gw, sizeof(gw));
  udp_addr_to_string(&pm->internal, in, sizeof(in));
  int n = snprintf(pm->final_msg, sizeof(pm->final_msg),
                   "no port mapping for %s from gateway %s in %lld ms", in,
                   gw, (long long)(clock_now_ms() - pm->start_ms));
  bool all_refused = true;
  for (int i = 0; i < pm->nworkers && n < (int)sizeof(pm->final_msg); i++) {
    worker_t *w = &pm->workers[i];
    if (w->state != WORKER_FAILED || w->code != QP_ERR_NOT_SUPPORTED)
      all_refused = false;
    if (w->state == WORKER_FAILED)
      n += snprintf(pm->final_msg + n, sizeof(pm->final_msg) - (size_t)n,
                    "; %s", w->reason);
    else
      n += snprintf(pm->final_msg + n, sizeof(pm->final_msg) - (size_t)n,
                    "; %s: no answer yet", portmap_proto_name(w->ops->proto));
  }
  pm->final_code = all_refused ? QP_ERR_NOT_SUPPORTED : QP_ERR_TIMEOUT;
  pm->closed = true;
}

static bool all_answered_locked(const portmap_t *pm) {
  for (int i = 0; i < pm->nworkers; i++)
    if (pm->workers[i].state == WORKER_ASKING)
      return false;
  return true;
}

static int answer_locked(portmap_t *pm, portmap_result_t *out) {
  if (pm->holder >= 0) {
    if (out)
      *out = pm->result;
    return QP_OK;
  }
  if (!pm->closed &&
      (all_answered_locked(pm) || clock_now_ms() >= pm->deadline_ms))
    conclude_locked(pm);
  if (pm->closed)
    return err_fail(pm->final_code, "%s", pm->final_msg);
  return PORTMAP_PENDING;
}

int portmap_wait(portmap_t *pm, int wait_ms, portmap_result_t *out) {
  if (!pm)
    return err_fail(QP_ERR_INVALID, "portmap_wait: NULL portmap");
  int64_t until = wait_ms < 0 ? pm->deadline_ms : clock_now_ms() + wait_ms;
  if (until > pm->deadline_ms)
    until = pm->deadline_ms;
  pthread_mutex_lock(&pm->lock);
  int rc;
  while ((rc = answer_locked(pm, out)) == PORTMAP_PENDING &&
         clock_now_ms() < until)
    timed_wait(pm, until);
  if (rc != PORTMAP_PENDING && !pm->closed) {
    /* Gathering took its answer: later grants are late. */
    pm->closed = true;
    pm->final_code = QP_OK;
  }
  pthread_mutex_unlock(&pm->lock);
  return rc;
}

int portmap_status(portmap_t *pm, portmap_result_t *out) {
  if (!pm)
    return err_fail(QP_ERR_INVALID, "portmap_status: NULL portmap");
  pthread_mutex_lock(&pm->lock);
  int rc = answer_locked(pm, out);
  pthread_mutex_unlock(&pm->lock);
  return rc;
}

static bool holding_locked(const portmap_t *pm) {
  for (int i = 0; i < pm->nworkers; i++)
    if (pm->workers[i].state == WORKER_HOLDING)
      return true;
  return false;
}

void portmap_stop(portmap_t *pm) {
  if (!pm)
    return;
  pthread_mutex_lock(&pm->lock);
  pm->stopping = true;
  for (int i = 0; i < pm->nworkers; i++)
    atomic_store(&pm->workers[i].job.stopping, true);
  pthread_cond_broadcast(&pm->cond);
  /* Wait for the holder's delete only: a worker still asking (UPnP's SSDP
   * takes 1 s) deletes whatever it gets by itself when it returns. */
  int64_t until = clock_now_ms() + PORTMAP_STOP_WAIT_MS;
  while (holding_locked(pm) && clock_now_ms() < until)
    timed_wait(pm, until);
  unref_locked(pm);
}

/* Linux: the default route with the lowest metric in /proc/net/route,
 * whose addresses are the kernel's 32-bit values in hex (network order
 * in memory). */
int pm_default_gateway(udp_addr_t *out) {
  FILE *f = fopen("/proc/net/route", "r");
  if (!f)
    return err_fail(QP_ERR_SOCKET, "port mapping: cannot read "
                                   "/proc/net/route: %s",
                    strerror(errno));
  char line[256];
  unsigned best_metric = UINT32_MAX;
  uint32_t best_gw = 0;
  while (fgets(line, sizeof(line), f)) {
    char ifname[64];
    unsigned dest, gw, flags, refcnt, use, metric;
    if (sscanf(line, "%63s %x %x %x %u %u %u", ifname, &dest, &gw, &flags,
               &refcnt, &use, &metric) != 7)
      continue; /* the header line */
    /* RTF_UP (1) and RTF_GATEWAY (2) on a 0.0.0.0 destination. */
    if (dest == 0 && (flags & 3u) == 3u && metric < best_metric) {
      best_metric = metric;
      best_gw = gw;
    }
  }
  fclose(f);
  if (!best_gw)
    return err_fail(QP_ERR_SOCKET, "port mapping: no default gateway "
                                   "(no IPv4 default route in "
                                   "/proc/net/route)");
  struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
  memset(out, 0, sizeof(*out));
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = best_gw;
  out->len = sizeof(*sin);
  return QP_OK;
}

int pm_recv_until(udp_socket_t *const *socks, int n, int64_t until_ms,
                  uint8_t *buf, size_t cap, size_t *len, udp_addr_t *from,
                  const char *who) {
  for (;;) {
    int64_t left = until_ms - clock_now_ms();
    if (left <= 0)
      return 0;
    struct pollfd pfd[PM_RECV_MAX_SOCKS];
    for (int i = 0; i < n && i < PM_RECV_MAX_SOCKS; i++)
      pfd[i] = (struct pollfd){.fd = socks[i]->fd, .events = POLLIN};
    int ready = poll(pfd, (nfds_t)n, (int)left);
    if (ready < 0 && errno != EINTR)
      return err_fail(QP_ERR_SOCKET, "%s: poll failed: %s", who,
                      strerror(errno));
    for (int i = 0; ready > 0 && i < n; i++) {
      if (!(pfd[i].revents & (POLLIN | POLLERR)))
        continue;
      int got = udp_recv_one(socks[i], buf, cap, len, from);
      if (got != 0)
        return got;
      /* A connected socket hears the gateway's ICMP port unreachable:
       * nothing listens there, no need to wait for the deadline. */
      if (errno == ECONNREFUSED)
        return err_fail(QP_ERR_NOT_SUPPORTED, "%s: the gateway refused "
                                              "(ICMP port unreachable)",
                        who);
    }
  }
}

int pm_connect(udp_socket_t *sock, const udp_addr_t *to) {
  if (connect(sock->fd, (const struct sockaddr *)&to->ss, to->len) != 0) {
    char where[UDP_ADDRSTRLEN];
    return err_fail(QP_ERR_SOCKET, "port mapping: connect to %s failed: %s",
                    udp_addr_to_string(to, where, sizeof(where)),
                    strerror(errno));
  }
  return QP_OK;
}
