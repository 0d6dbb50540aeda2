/*
 * rdv.c: the rendezvous facade. Picks the backend from the URL, checks
 * arguments, namespaces keys by session, and polls for keys.
 */
#include "rendezvous/rdv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"
#include "rendezvous/rdv_backend.h"

#define ACCEPTED_URLS "mem:NAME, dir:PATH or redis://HOST[:PORT][/DB]"

/* "redis://" + host + port + db + "(session ...)": room for messages. */
#define RDV_DESCRIBE_MAX (RDV_URL_MAX + RDV_SESSION_MAX + 32)

struct rdv {
  const rdv_ops *ops;
  void *state;
  char session[3 * RDV_SESSION_MAX + 1]; /* escaped */
  char describe[RDV_DESCRIBE_MAX];
};

char *rdv_copy_value(const void *value, size_t len) {
  char *copy = malloc(len + 1);
  if (copy == NULL)
    return NULL;
  if (len > 0)
    memcpy(copy, value, len);
  copy[len] = '\0';
  return copy;
}

static bool is_plain_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/*
 * Escape one key component: bytes outside [A-Za-z0-9_.-] become %XX, and a
 * leading '.' too, so no component is "", "." or "..", names a hidden or
 * temporary file of the dir backend, or contains a '/'. Distinct inputs give
 * distinct outputs, so sessions cannot collide.
 */
static void escape_component(const char *in, char *out) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  for (size_t i = 0; in[i] != '\0'; i++) {
    unsigned char c = (unsigned char)in[i];
    if (is_plain_byte(c) && !(i == 0 && c == '.')) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = hex[c >> 4];
      out[o++] = hex[c & 15];
    }
  }
  out[o] = '\0';
}

static int check_name(const char *what, const char *name, size_t max) {
  if (name == NULL || name[0] == '\0')
    return err_fail(QP_ERR_INVALID, "rendezvous %s must not be empty", what);
  size_t len = strnlen(name, max + 1);
  if (len > max)
    return err_fail(QP_ERR_INVALID,
                   "rendezvous %s \"%.40s...\" is longer than %zu bytes", what,
                   name, max);
  return 0;
}

static int full_key(const rdv_t *rdv, const char *key, char *out) {
  int rc = check_name("key", key, RDV_KEY_MAX);
  if (rc < 0)
    return rc;
  char escaped[3 * RDV_KEY_MAX + 1];
  escape_component(key, escaped);
  /* Cannot truncate: RDV_FULL_KEY_MAX counts the worst case. */
  snprintf(out, RDV_FULL_KEY_MAX, "qp/%s/%s", rdv->session, escaped);
  return 0;
}

static int rdv_new(const char *session, rdv_t **out) {
  int rc = check_name("session", session, RDV_SESSION_MAX);
  if (rc < 0)
    return rc;
  rdv_t *rdv = calloc(1, sizeof(*rdv));
  if (rdv == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory opening the rendezvous");
  escape_component(session, rdv->session);
  *out = rdv;
  return 0;
}

/* The scheme's remainder of url, or NULL if url does not start with it. */
static const char *after_prefix(const char *url, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(url, prefix, n) == 0 ? url + n : NULL;
}

static int open_backend(const char *url, void **state, const rdv_ops **ops) {
  const char *rest;
  if ((rest = after_prefix(url, "mem:")) != NULL)
    return rdv_mem_open(rest, state, ops);
  if ((rest = after_prefix(url, "dir:")) != NULL)
    return rdv_dir_open(rest, state, ops);
  if (after_prefix(url, "redis://") != NULL)
    return rdv_redis_open(url, state, ops);
  return err_fail(
      QP_ERR_INVALID,
      "rendezvous URL \"%.200s\" is not understood; use " ACCEPTED_URLS, url);
}

int rdv_open(const char *url, const char *session, rdv_t **out) {
  if (url == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID,
                   "rendezvous URL missing; use " ACCEPTED_URLS);
  if (strnlen(url, RDV_URL_MAX + 1) > RDV_URL_MAX)
    return err_fail(QP_ERR_INVALID,
                   "rendezvous URL \"%.40s...\" is longer than %d bytes", url,
                   RDV_URL_MAX);
  rdv_t *rdv = NULL;
  int rc = rdv_new(session, &rdv);
  if (rc < 0)
    return rc;
  rc = open_backend(url, &rdv->state, &rdv->ops);
  if (rc < 0) {
    free(rdv);
    return rc;
  }
  snprintf(rdv->describe, sizeof(rdv->describe), "%s (session %s)", url,
           rdv->session);
  QP_LOG_DEBUG("rendezvous opened: %s", rdv->describe);
  *out = rdv;
  return 0;
}

int rdv_open_callbacks(const rdv_callbacks *cb, void *user, const char *session,
                       rdv_t **out) {
  if (cb == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "rendezvous callbacks missing");
  rdv_t *rdv = NULL;
  int rc = rdv_new(session, &rdv);
  if (rc < 0)
    return rc;
  rc = rdv_cb_open(cb, user, &rdv->state, &rdv->ops);
  if (rc < 0) {
    free(rdv);
    return rc;
  }
  snprintf(rdv->describe, sizeof(rdv->describe), "callbacks (session %s)",
           rdv->session);
  *out = rdv;
  return 0;
}

void rdv_close(rdv_t *rdv) {
  if (rdv == NULL)
    return;
  rdv->ops->close(rdv->state);
  free(rdv);
}

const char *rdv_describe(const rdv_t *rdv) { return rdv->describe; }

int rdv_put(rdv_t *rdv, const char *key, const void *value, size_t len) {
  if (rdv == NULL || (value == NULL && len > 0))
    return err_fail(QP_ERR_INVALID, "rdv_put: missing handle or value");
  if (len > RDV_VALUE_MAX)
    return err_fail(
        QP_ERR_TOO_LARGE,
        "rendezvous value for \"%.40s\" is %zu bytes; the limit is %u",
        key ? key : "", len, RDV_VALUE_MAX);
  char full[RDV_FULL_KEY_MAX];
  int rc = full_key(rdv, key, full);
  if (rc < 0)
    return rc;
  /* Backends never see a NULL value, even for an empty one. */
  return rdv->ops->put(rdv->state, full, len > 0 ? value : "", len);
}

int rdv_get(rdv_t *rdv, const char *key, char **value, size_t *len) {
  if (rdv == NULL || value == NULL || len == NULL)
    return err_fail(QP_ERR_INVALID, "rdv_get: missing handle or output");
  *value = NULL;
  *len = 0;
  char full[RDV_FULL_KEY_MAX];
  int rc = full_key(rdv, key, full);
  if (rc < 0)
    return rc;
  return rdv->ops->get(rdv->state, full, value, len);
}

int rdv_delete(rdv_t *rdv, const char *key) {
  if (rdv == NULL)
    return err_fail(QP_ERR_INVALID, "rdv_delete: missing handle");
  char full[RDV_FULL_KEY_MAX];
  int rc = full_key(rdv, key, full);
  if (rc < 0)
    return rc;
  return rdv->ops->del(rdv->state, full);
}

int64_t rdv_now_ms(void) { return clock_now_ms(); }

int rdv_wait_next_pause_ms(int prev_ms) {
  if (prev_ms <= 0)
    return RDV_WAIT_FIRST_MS;
  int next = prev_ms + prev_ms / 2;
  return next < RDV_WAIT_MAX_MS ? next : RDV_WAIT_MAX_MS;
}

static void sleep_ms(int64_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  /* An early wake-up (signal) only makes the next look come sooner. */
  nanosleep(&ts, NULL);
}

int rdv_wait_get(rdv_t *rdv, const char *key, int64_t deadline_ms,
                 rdv_cancel_cb cancel, void *cancel_arg, char **value,
                 size_t *len) {
  int64_t start = rdv_now_ms();
  int pause = 0;
  /* Bounded by the deadline: every pass sleeps at least until the next
   * pause or returns, and the pass that starts at the deadline returns. */
  for (;;) {
    if (cancel != NULL && cancel(cancel_arg))
      return err_fail(QP_ERR_INTERRUPTED,
                     "waiting for rendezvous key \"%.40s\" was interrupted",
                     key ? key : "");
    int rc = rdv_get(rdv, key, value, len);
    if (rc != 0)
      return rc;
    int64_t now = rdv_now_ms();
    if (now >= deadline_ms)
      return err_fail(QP_ERR_TIMEOUT,
                     "rendezvous key \"%s\" did not appear in %s within "
                     "%lld ms",
                     key, rdv->describe, (long long)(now - start));
    pause = rdv_wait_next_pause_ms(pause);
    int64_t left = deadline_ms - now;
    sleep_ms(left < pause ? left : pause);
  }
}
