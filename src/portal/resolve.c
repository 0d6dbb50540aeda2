/*
 * Resolve STUN server names without letting a slow resolver eat the punch
 * budget: getaddrinfo() cannot be cancelled or given a deadline, so each
 * name is looked up on a detached thread and the caller waits at most a
 * deadline (polling cancel). A lookup that is still running when the caller
 * gives up finishes on its own and frees its job (reference counted).
 */
#include "portal/resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

/* How often the waiting caller checks cancel (ms). */
#define RESOLVE_POLL_MS 20

typedef struct job {
  pthread_mutex_t lock;
  int refs;  /* caller + thread */
  bool done; /* the thread finished */
  char host[256];
  char port[8];
  char result[RESOLVE_NAME_MAX]; /* "ip:port" or "" */
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
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM};
  struct addrinfo *res = NULL;
  char text[RESOLVE_NAME_MAX] = "";
  if (getaddrinfo(j->host, NULL, &hints, &res) == 0 && res) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof(ip));
    snprintf(text, sizeof(text), "%s:%s", ip, j->port);
  }
  if (res)
    freeaddrinfo(res);
  pthread_mutex_lock(&j->lock);
  memcpy(j->result, text, sizeof(text));
  j->done = true;
  pthread_mutex_unlock(&j->lock);
  job_release(j);
  return NULL;
}

/* Split "host:port" (port required for names; literals are kept as is). */
static bool split_name(const char *name, job_t *j) {
  const char *colon = strrchr(name, ':');
  size_t hlen = colon ? (size_t)(colon - name) : strlen(name);
  if (hlen == 0 || hlen >= sizeof(j->host) || strchr(name, ']'))
    return false;
  memcpy(j->host, name, hlen);
  j->host[hlen] = '\0';
  snprintf(j->port, sizeof(j->port), "%s", colon ? colon + 1 : "3478");
  struct in_addr v4;
  return inet_pton(AF_INET, j->host, &v4) != 1; /* literals need no lookup */
}

static job_t *start_job(const char *name) {
  job_t *j = calloc(1, sizeof(*j));
  if (j == NULL)
    return NULL;
  pthread_mutex_init(&j->lock, NULL);
  j->refs = 2;
  pthread_t th;
  if (!split_name(name, j) || pthread_create(&th, NULL, lookup, j) != 0) {
    pthread_mutex_destroy(&j->lock);
    free(j);
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

static void wait_jobs(job_t **jobs, size_t n, int timeout_ms, bool (*cancel)(void *),
                      void *cancel_user) {
  uint64_t deadline = qp_deadline_ns(timeout_ms);
  while (!all_done(jobs, n) && qp_now_ns() < deadline &&
         !(cancel && cancel(cancel_user))) {
    struct timespec ts = {.tv_nsec = RESOLVE_POLL_MS * 1000000L};
    nanosleep(&ts, NULL);
  }
}

size_t resolve_stun_names(const char *const *names, size_t n, int timeout_ms,
                          bool (*cancel)(void *), void *cancel_user,
                          char out[][RESOLVE_NAME_MAX]) {
  job_t *jobs[RESOLVE_MAX_NAMES] = {0};
  if (n > RESOLVE_MAX_NAMES)
    n = RESOLVE_MAX_NAMES;
  for (size_t i = 0; i < n; i++) {
    snprintf(out[i], RESOLVE_NAME_MAX, "%s", names[i]);
    jobs[i] = start_job(names[i]); /* NULL: a literal, or no thread */
  }
  wait_jobs(jobs, n, timeout_ms, cancel, cancel_user);
  for (size_t i = 0; i < n; i++) {
    if (jobs[i] == NULL)
      continue;
    pthread_mutex_lock(&jobs[i]->lock);
    if (jobs[i]->result[0])
      snprintf(out[i], RESOLVE_NAME_MAX, "%s", jobs[i]->result);
    else
      QP_LOG_INFO("STUN server %s: %s; skipped", names[i],
                  jobs[i]->done ? "name did not resolve" : "lookup still running");
    pthread_mutex_unlock(&jobs[i]->lock);
    job_release(jobs[i]);
  }
  return n;
}
