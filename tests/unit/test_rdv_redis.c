/* ctest: labels=external,process */
/* The Redis backend against a real redis-server that the test starts on a
 * free port of 127.0.0.1 (skipped with a reason if none is installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rdv_tu.h"
#include "tu.h"

extern char **environ;

/* How long a fresh redis-server may take to answer PING. */
#define REDIS_START_TIMEOUT_MS 5000
#define REDIS_START_POLL_MS 20

typedef struct redis_server {
  pid_t pid;
  uint16_t port;
  char url[64];
  char skip_reason[128];
} redis_server;

/* shared serves most tests; dying is stopped or frozen by the test that
 * starts it (and killed by the group teardown, should that test fail
 * halfway). */
static redis_server shared, dying;

static uint16_t free_tcp_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  uint16_t port = 0;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

static bool answers_ping(uint16_t port) {
  struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
  bool ok = false;
  if (c != NULL && !c->err) {
    redisReply *r = redisCommand(c, "PING");
    ok = r != NULL && r->type == REDIS_REPLY_STATUS &&
         strcmp(r->str, "PONG") == 0;
    if (r != NULL)
      freeReplyObject(r);
  }
  if (c != NULL)
    redisFree(c);
  return ok;
}

static void stop_redis(redis_server *s) {
  if (s->pid <= 0)
    return;
  kill(s->pid, SIGTERM);
  kill(s->pid, SIGCONT); /* a frozen server must wake to die */
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000L};
  nanosleep(&ts, NULL);
}

/* Start redis-server and wait (bounded) until it answers; on failure the
 * reason is in s->skip_reason. */
static bool start_redis(redis_server *s) {
  s->port = free_tcp_port();
  char port[8];
  snprintf(port, sizeof(port), "%u", s->port);
  snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%u/0", s->port);
  char *argv[] = {"redis-server", "--port", port, "--bind",
                  "127.0.0.1",    "--save", "",   "--appendonly",
                  "no",           NULL};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  int rc = posix_spawnp(&s->pid, "redis-server", &actions, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    s->pid = 0;
    snprintf(s->skip_reason, sizeof(s->skip_reason),
             "redis-server could not be started (%s): install redis-server",
             strerror(rc));
    return false;
  }
  for (int waited = 0; waited < REDIS_START_TIMEOUT_MS;
       waited += REDIS_START_POLL_MS) {
    if (answers_ping(s->port))
      return true;
    if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
      s->pid = 0;
      break;
    }
    sleep_ms(REDIS_START_POLL_MS);
  }
  stop_redis(s);
  snprintf(s->skip_reason, sizeof(s->skip_reason),
           "redis-server on port %u did not answer PING within %d ms", s->port,
           REDIS_START_TIMEOUT_MS);
  return false;
}

static int group_setup(void **state) {
  (void)state;
  start_redis(&shared);
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  stop_redis(&shared);
  stop_redis(&dying);
  return 0;
}

#define NEED_REDIS()                                                           \
  do {                                                                         \
    if (shared.pid <= 0)                                                       \
      TU_SKIP(shared.skip_reason);                                             \
  } while (0)

static void redis_backend_basics(void **state) {
  (void)state;
  NEED_REDIS();
  rdv_t *rdv;
  assert_int_equal(rdv_open(shared.url, "s1", &rdv), 0);
  rdv_tu_exercise(rdv);
  rdv_close(rdv);
  rdv_tu_sessions(shared.url);
}

static void redis_keys_expire_within_an_hour(void **state) {
  (void)state;
  NEED_REDIS();
  rdv_t *rdv;
  assert_int_equal(rdv_open(shared.url, "ttl", &rdv), 0);
  assert_int_equal(rdv_put(rdv, "server", "v", 1), 0);
  struct timeval tv = {.tv_sec = 2};
  redisContext *c = redisConnectWithTimeout("127.0.0.1", shared.port, tv);
  assert_non_null(c);
  assert_int_equal(c->err, 0);
  redisReply *r = redisCommand(c, "PTTL %s", "qp/ttl/server");
  assert_non_null(r);
  assert_int_equal(r->type, REDIS_REPLY_INTEGER);
  assert_true(r->integer > RDV_REDIS_TTL_MS - 60000);
  assert_true(r->integer <= RDV_REDIS_TTL_MS);
  freeReplyObject(r);
  redisFree(c);
  rdv_close(rdv);
}

static void redis_databases_are_separate(void **state) {
  (void)state;
  NEED_REDIS();
  char url1[80], url2[80];
  snprintf(url1, sizeof(url1), "redis://127.0.0.1:%u/1", shared.port);
  snprintf(url2, sizeof(url2), "redis://127.0.0.1:%u/2", shared.port);
  rdv_t *a, *b;
  assert_int_equal(rdv_open(url1, "db", &a), 0);
  assert_int_equal(rdv_open(url2, "db", &b), 0);
  assert_int_equal(rdv_put(a, "k", "one", 3), 0);
  rdv_tu_expect(b, "k", NULL, 0);
  rdv_tu_expect(a, "k", "one", 3);
  rdv_close(a);
  rdv_close(b);

  char bad[80];
  snprintf(bad, sizeof(bad), "redis://127.0.0.1:%u/999", shared.port);
  rdv_t *rdv = NULL;
  assert_int_equal(rdv_open(bad, "db", &rdv), QP_ERR_RENDEZVOUS);
  assert_null(rdv);
  print_message("%s\n", qp_last_error());
  assert_non_null(strstr(qp_last_error(), "SELECT"));
}

static void redis_down_gives_a_clear_message(void **state) {
  (void)state;
  uint16_t port = free_tcp_port(); /* nobody listens there */
  char url[80], want[96];
  snprintf(url, sizeof(url), "redis://127.0.0.1:%u", port);
  rdv_t *rdv = NULL;
  assert_int_equal(rdv_open(url, "s", &rdv), QP_ERR_RENDEZVOUS);
  assert_null(rdv);
  snprintf(want, sizeof(want),
           "Redis 127.0.0.1:%u: cannot connect: Connection refused", port);
  assert_string_equal(qp_last_error(), want);
}

/* Start a server of the test's own (it will be stopped or frozen) and open
 * a handle on it. */
static rdv_t *open_own_server(redis_server *own) {
  assert_true(start_redis(own));
  rdv_t *rdv;
  assert_int_equal(rdv_open(own->url, "s", &rdv), 0);
  return rdv;
}

/* A server that dies under an open handle: the next call fails with the
 * address and reason, the one after that tries to reconnect. */
static void redis_dying_midway_is_reported(void **state) {
  (void)state;
  NEED_REDIS();
  redis_server *own = &dying;
  rdv_t *rdv = open_own_server(own);
  assert_int_equal(rdv_put(rdv, "k", "v", 1), 0);
  stop_redis(own);
  char prefix[64];
  snprintf(prefix, sizeof(prefix), "Redis 127.0.0.1:%u: SET: ", own->port);
  assert_int_equal(rdv_put(rdv, "k", "v", 1), QP_ERR_RENDEZVOUS);
  print_message("%s\n", qp_last_error());
  assert_memory_equal(qp_last_error(), prefix, strlen(prefix));
  char *value;
  size_t len;
  assert_int_equal(rdv_get(rdv, "k", &value, &len), QP_ERR_RENDEZVOUS);
  assert_non_null(
      strstr(qp_last_error(), "cannot connect: Connection refused"));
  rdv_close(rdv);
}

/* A server that accepts but never answers (frozen with SIGSTOP): the call
 * ends after the command timeout and says so, not with the bare EAGAIN
 * text "Resource temporarily unavailable". */
static void redis_frozen_server_times_out(void **state) {
  (void)state;
  NEED_REDIS();
  redis_server *own = &dying;
  rdv_t *rdv = open_own_server(own);
  assert_int_equal(kill(own->pid, SIGSTOP), 0);
  int64_t t0 = tu_now_ms();
  char *value;
  size_t len;
  assert_int_equal(rdv_get(rdv, "k", &value, &len), QP_ERR_RENDEZVOUS);
  int64_t waited = tu_now_ms() - t0;
  print_message("%s (after %lld ms)\n", qp_last_error(), (long long)waited);
  char want[96];
  snprintf(want, sizeof(want), "Redis 127.0.0.1:%u: GET: no answer within ",
           own->port);
  assert_memory_equal(qp_last_error(), want, strlen(want));
  assert_true(waited >= 1900 && waited < 4000); /* the 2000 ms timeout */
  rdv_close(rdv);
  stop_redis(own);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(redis_backend_basics),
      cmocka_unit_test(redis_keys_expire_within_an_hour),
      cmocka_unit_test(redis_databases_are_separate),
      cmocka_unit_test(redis_down_gives_a_clear_message),
      cmocka_unit_test(redis_dying_midway_is_reported),
      cmocka_unit_test(redis_frozen_server_times_out),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
