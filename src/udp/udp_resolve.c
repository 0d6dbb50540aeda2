/*
 * Bounded, cancellable name lookup (see udp_resolve.h): a slow resolver
 * must not eat the punch budget. Each job is reference counted (caller and
 * thread), so a lookup that outlives its caller frees itself.
 */
#include "udp/udp_resolve.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"

typedef struct job {
  pthread_mutex_t lock;
  int refs;  /* caller + thread */
  bool done; /* the thread finished */
  char host[UDP_HOST_MAX];
  uint16_t port;
  int family;
  int rc;
  udp_addr_t addr;
  char message[sizeof(((udp_resolved_t *)0)->message)];
} job_t;

static void job_release(job_t *j) {
  pthread_mutex_lock(&j->lock);
  bool last = --j->refs == 0;
  pthread_mutex_unlock(&j->lock);
  if (last) {
    pthread_mutex_destroy(&j->lock);
    free(j);
  }
}

static void *lookup(void *arg) {
  job_t *j = arg;
  udp_addr_t addr;
  int rc = udp_addr_lookup(j->host, j->port, j->family, &addr);
  pthread_mutex_lock(&j->lock);
  j->rc = rc;
  j->addr = addr;
  if (rc != 0)
    snprintf(j->message, sizeof(j->message), "%s", qp_last_error());
  j->done = true;
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  return NULL;
}

static void set_error(udp_resolved_t *r, int rc, const char *message) {
  r->rc = rc;
  snprintf(r->message, sizeof(r->message), "%s", message);
}

/* Parse; a literal is done at once (strict: only one of `family`), a name
 * gets a lookup thread. */
static job_t *start_one(const char *name, uint16_t default_port, int family,
                        bool strict, udp_resolved_t *r) {
  char host[UDP_HOST_MAX];
  uint16_t port = 0;
  memset(r, 0, sizeof(*r));
  snprintf(r->text, sizeof(r->text), "%s", name ? name : "");
  if (udp_hostport_split(name, default_port, host, sizeof(host), &port) != 0) {
    set_error(r, QP_ERR_INVALID, qp_last_error());
    return NULL;
  }
  if (udp_addr_from_ip(host, port, &r->addr) == 0) {
    if (strict && family != AF_UNSPEC && r->addr.ss.ss_family != family)
      set_error(r, QP_ERR_RESOLVE, family == AF_INET6 ? "not an IPv6 address"
                                                      : "not an IPv4 address");
    return NULL; /* a literal: rc 0 unless of the other family */
  }
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    set_error(r, QP_ERR_NOMEM, "out of memory for a name lookup");
    return NULL;
  }
  pthread_mutex_init(&j->lock, NULL);
  j->refs = 2;
  snprintf(j->host, sizeof(j->host), "%s", host);
  j->port = port;
  j->family = family;
  pthread_t th;
  if (pthread_create(&th, NULL, lookup, j) != 0) {
    pthread_mutex_destroy(&j->lock);
    free(j);
    set_error(r, QP_ERR_INTERNAL, "could not start a name lookup thread");
    return NULL;
  }
  pthread_detach(th);
  return j;
}

static bool all_done(job_t **jobs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (jobs[i] == NULL)
      continue;
    pthread_mutex_lock(&jobs[i]->lock);
    bool done = jobs[i]->done;
    pthread_mutex_unlock(&jobs[i]->lock);
    if (!done)
      return false;
  }
  return true;
}

/* Returns true when cancel ended the wait. */
static bool wait_jobs(job_t **jobs, size_t n, int timeout_ms,
                      bool (*cancel)(void *), void *cancel_user) {
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  while (!all_done(jobs, n) && clock_now_ns() < deadline) {
    if (cancel && cancel(cancel_user))
      return true;
    struct timespec ts = {.tv_nsec =
                              UDP_RESOLVE_POLL_MS * (long)CLOCK_NS_PER_MS};
    nanosleep(&ts, NULL);
  }
  return false;
}

/* Take a job's outcome into r and drop the caller's reference. */
static void finish_one(job_t *j, const char *name, bool cancelled,
                       int timeout_ms, udp_resolved_t *r) {
  pthread_mutex_lock(&j->lock);
  if (j->done && j->rc == 0) {
    r->addr = j->addr;
    udp_addr_to_string(&r->addr, r->text, sizeof(r->text));
  } else if (j->done) {
    set_error(r, j->rc, j->message);
  } else if (cancelled) {
    set_error(r, QP_ERR_INTERRUPTED, "name lookup cancelled");
  } else {
    r->rc = QP_ERR_TIMEOUT;
    snprintf(r->message, sizeof(r->message),
             "lookup of \"%.100s\" still running after %d ms", name,
             timeout_ms);
  }
  pthread_mutex_unlock(&j->lock);
  job_release(j);
}

/* families NULL: every name in `family`, literals of any family. */
static size_t resolve(const char *const *names, const int *families, size_t n,
                      uint16_t default_port, int family, int timeout_ms,
                      bool (*cancel)(void *), void *cancel_user,
                      udp_resolved_t *out) {
  job_t *jobs[UDP_RESOLVE_MAX_NAMES] = {0};
  if (n > UDP_RESOLVE_MAX_NAMES)
    n = UDP_RESOLVE_MAX_NAMES;
  for (size_t i = 0; i < n; i++)
    jobs[i] = start_one(names[i], default_port, families ? families[i] : family,
                        families != NULL, &out[i]);
  bool cancelled = wait_jobs(jobs, n, timeout_ms, cancel, cancel_user);
  for (size_t i = 0; i < n; i++)
    if (jobs[i] != NULL)
      finish_one(jobs[i], names[i], cancelled, timeout_ms, &out[i]);
  return n;
}

size_t udp_resolve_names(const char *const *names, size_t n,
                         uint16_t default_port, int family, int timeout_ms,
                         bool (*cancel)(void *), void *cancel_user,
                         udp_resolved_t *out) {
  return resolve(names, NULL, n, default_port, family, timeout_ms, cancel,
                 cancel_user, out);
}

size_t udp_resolve_names_in(const char *const *names, const int *families,
                            size_t n, uint16_t default_port, int timeout_ms,
                            bool (*cancel)(void *), void *cancel_user,
                            udp_resolved_t *out) {
  return resolve(names, families, n, default_port, AF_UNSPEC, timeout_ms,
                 cancel, cancel_user, out);
}
