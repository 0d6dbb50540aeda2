/*
 * rdv_redis.c: the Redis backend, "redis://HOST[:PORT][/DB]" (hiredis 0.14).
 *
 * Keys are stored as they come ("qp/<session>/<key>") with SET ... PX, so
 * every write renews a one-hour expiry and abandoned sessions vanish. The
 * connection is made at open (so a wrong address fails early) with a
 * timeout, and every command has a timeout too. After an I/O error hiredis
 * marks the context unusable; the next call then reconnects once.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "common/error.h"
#include "common/log.h"
#include "rendezvous/rdv_backend.h"

#define REDIS_DEFAULT_PORT 6379
#define REDIS_HOST_MAX 255
/* Redis's default configuration has 16 databases; some servers have more. */
#define REDIS_DB_MAX 99999
/* A rendezvous is on the connection set-up path: a server that takes
 * longer than this to accept or to answer is as good as down. Connecting
 * allows two lost SYNs (or SYN-ACKs): Linux sends the SYN at 0, 1 and 3 s
 * (RFC 6298 initial RTO of 1 s, doubled); at 2 s a path with 5% loss failed
 * the lab's lossy traversal case about once in fifty runs. */
#define REDIS_CONNECT_TIMEOUT_MS 3500
#define REDIS_COMMAND_TIMEOUT_MS 2000

#define REDIS_URL_FORMS                                                        \
  "redis://HOST[:PORT][/DB], e.g. redis://127.0.0.1:6379/0"

typedef struct redis_store {
  char host[REDIS_HOST_MAX + 1];
  int port;
  int db;
  redisContext *ctx; /* NULL after an I/O error, until the next reconnect */
} redis_store;

static struct timeval ms_to_timeval(int ms) {
  return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static int fail_bad_url(const char *url, const char *why) {
  return err_fail(QP_ERR_INVALID,
                 "rendezvous URL \"%.200s\": %s; use " REDIS_URL_FORMS, url,
                 why);
}

/* Parse 1 to max_digits decimal digits at *p into *out, advancing *p. */
static bool parse_number(const char **p, int max_digits, long *out) {
  long v = 0;
  int n = 0;
  while (**p >= '0' && **p <= '9' && n < max_digits) {
    v = v * 10 + (**p - '0');
    (*p)++;
    n++;
  }
  *out = v;
  return n > 0 && !(**p >= '0' && **p <= '9');
}

/* Host: "[v6]" or everything up to ':', '/' or the end. */
static const char *parse_host(const char *p, redis_store *r) {
  const char *end;
  if (*p == '[') {
    p++;
    end = strchr(p, ']');
    if (end == NULL)
      return NULL;
  } else {
    end = p + strcspn(p, ":/");
  }
  size_t len = (size_t)(end - p);
  if (len == 0 || len > REDIS_HOST_MAX || memchr(p, '@', len) != NULL)
    return NULL;
  memcpy(r->host, p, len);
  r->host[len] = '\0';
  return *end == ']' ? end + 1 : end;
}

static int parse_url(const char *url, redis_store *r) {
  const char *p = parse_host(url + strlen("redis://"), r);
  if (p == NULL)
    return fail_bad_url(url, "missing or bad host (passwords are not "
                             "supported)");
  long port = REDIS_DEFAULT_PORT;
  if (*p == ':') {
    p++;
    if (!parse_number(&p, 5, &port) || port < 1 || port > 65535)
      return fail_bad_url(url, "port must be 1 to 65535");
  }
  long db = 0;
  if (*p == '/' && p[1] != '\0') {
    p++;
    if (!parse_number(&p, 5, &db) || db > REDIS_DB_MAX)
      return fail_bad_url(url, "DB must be a database number");
  } else if (*p == '/') {
    p++;
  }
  r->port = (int)port;
  r->db = (int)db;
  if (*p != '\0')
    return fail_bad_url(url, "unexpected text after the address");
  return 0;
}

/* Fail with the context's error and drop the context, which hiredis has
 * marked unusable. */
static int fail_io(redis_store *r, const char *what) {
  /* hiredis 0.14 reports a socket timeout as the bare EAGAIN text
   * ("Resource temporarily unavailable"), which reads like a local fault. */
  bool timed_out = r->ctx->err == REDIS_ERR_IO &&
                   strcmp(r->ctx->errstr, strerror(EAGAIN)) == 0;
  int rc = timed_out
               ? err_fail(QP_ERR_RENDEZVOUS,
                          "Redis %s:%d: %s: no answer within %d ms", r->host,
                          r->port, what, REDIS_COMMAND_TIMEOUT_MS)
               : err_fail(QP_ERR_RENDEZVOUS, "Redis %s:%d: %s: %s", r->host,
                          r->port, what, r->ctx->errstr);
  redisFree(r->ctx);
  r->ctx = NULL;
  return rc;
}

/* Run one command; the reply is the caller's, or NULL after a failure. */
static int run(redis_store *r, const char *what, int argc, const char **argv,
               const size_t *argvlen, redisReply **out) {
  redisReply *reply = redisCommandArgv(r->ctx, argc, argv, argvlen);
  if (reply == NULL)
    return fail_io(r, what);
  if (reply->type == REDIS_REPLY_ERROR) {
    int rc = err_fail(QP_ERR_RENDEZVOUS, "Redis %s:%d: %s: %s", r->host, r->port,
                     what, reply->str);
    freeReplyObject(reply);
    return rc;
  }
  *out = reply;
  return 0;
}

static int select_db(redis_store *r) {
  char db[16];
  snprintf(db, sizeof(db), "%d", r->db);
  const char *argv[] = {"SELECT", db};
  size_t lens[] = {6, strlen(db)};
  redisReply *reply = NULL;
  int rc = run(r, "SELECT", 2, argv, lens, &reply);
  if (rc == 0)
    freeReplyObject(reply);
  return rc;
}

static int connect_store(redis_store *r) {
  r->ctx = redisConnectWithTimeout(r->host, r->port,
                                   ms_to_timeval(REDIS_CONNECT_TIMEOUT_MS));
  if (r->ctx == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory connecting to Redis %s:%d",
                   r->host, r->port);
  if (r->ctx->err)
    return fail_io(r, "cannot connect");
  if (redisSetTimeout(r->ctx, ms_to_timeval(REDIS_COMMAND_TIMEOUT_MS)) !=
      REDIS_OK)
    return fail_io(r, "cannot set the timeout");
  int rc = r->db != 0 ? select_db(r) : 0;
  if (rc < 0) {
    redisFree(r->ctx);
    r->ctx = NULL;
    return rc;
  }
  QP_LOG_DEBUG("Redis %s:%d/%d connected", r->host, r->port, r->db);
  return 0;
}

/* Run a command, reconnecting first if an earlier error dropped the link. */
static int command(redis_store *r, const char *what, int argc,
                   const char **argv, const size_t *argvlen, redisReply **out) {
  if (r->ctx == NULL) {
    int rc = connect_store(r);
    if (rc < 0)
      return rc;
  }
  return run(r, what, argc, argv, argvlen, out);
}

static int redis_put(void *state, const char *key, const void *value,
                     size_t len) {
  char ttl[24];
  snprintf(ttl, sizeof(ttl), "%d", RDV_REDIS_TTL_MS);
  const char *argv[] = {"SET", key, value, "PX", ttl};
  size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
  redisReply *reply = NULL;
  int rc = command(state, "SET", 5, argv, lens, &reply);
  if (rc == 0)
    freeReplyObject(reply);
  return rc;
}

static int take_string(redis_store *r, redisReply *reply, char **value,
                       size_t *len) {
  if (reply->type == REDIS_REPLY_NIL)
    return 0;
  if (reply->type != REDIS_REPLY_STRING)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "Redis %s:%d: GET answered with reply type %d, not a string",
                   r->host, r->port, reply->type);
  if (reply->len > RDV_VALUE_MAX)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "Redis %s:%d: value is %zu bytes; the limit is %u", r->host,
                   r->port, reply->len, RDV_VALUE_MAX);
  *value = rdv_copy_value(reply->str, reply->len);
  if (*value == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory reading a Redis value");
  *len = reply->len;
  return 1;
}

static int redis_get(void *state, const char *key, char **value, size_t *len) {
  const char *argv[] = {"GET", key};
  size_t lens[] = {3, strlen(key)};
  redisReply *reply = NULL;
  int rc = command(state, "GET", 2, argv, lens, &reply);
  if (rc < 0)
    return rc;
  rc = take_string(state, reply, value, len);
  freeReplyObject(reply);
  return rc;
}

static int redis_del(void *state, const char *key) {
  const char *argv[] = {"DEL", key};
  size_t lens[] = {3, strlen(key)};
  redisReply *reply = NULL;
  int rc = command(state, "DEL", 2, argv, lens, &reply);
  if (rc == 0)
    freeReplyObject(reply);
  return rc;
}

static void redis_close(void *state) {
  redis_store *r = state;
  if (r == NULL)
    return;
  if (r->ctx != NULL)
    redisFree(r->ctx);
  free(r);
}

static const rdv_ops redis_ops = {
    .put = redis_put, .get = redis_get, .del = redis_del, .close = redis_close};

int rdv_redis_open(const char *url, void **state, const rdv_ops **ops) {
  redis_store *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory opening %s", url);
  int rc = parse_url(url, r);
  if (rc == 0)
    rc = connect_store(r);
  if (rc < 0) {
    redis_close(r);
    return rc;
  }
  *state = r;
  *ops = &redis_ops;
  return 0;
}
