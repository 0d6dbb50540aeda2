#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tu.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_fill_pattern(void *buf, size_t len, uint32_t seed) {
  uint8_t *p = buf;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

uint16_t tu_free_udp_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0)
    return 0;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sa);
  uint16_t port = 0;
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

bool tu_have_netns_rights(void) { return geteuid() == 0; }

bool tu_on_path(const char *name) {
  const char *path = getenv("PATH");
  char candidate[512];
  while (path && *path) {
    size_t n = strcspn(path, ":");
    snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)n, path, name);
    if (access(candidate, X_OK) == 0)
      return true;
    path += n + (path[n] == ':');
  }
  return false;
}

/* ------------------------------------------------------------------------ */
/* Bytes and messages                                                        */
/* ------------------------------------------------------------------------ */

bool tu_contains(const char *haystack, const char *needle) {
  if (haystack == NULL || needle == NULL || needle[0] == '\0')
    return false;
  size_t n = strlen(needle);
  for (const char *h = haystack; *h != '\0'; h++) {
    size_t i = 0;
    while (i < n && h[i] != '\0' &&
           tolower((unsigned char)h[i]) == tolower((unsigned char)needle[i]))
      i++;
    if (i == n)
      return true;
  }
  return false;
}

void *tu_xmalloc(size_t len) {
  void *p = malloc(len > 0 ? len : 1);
  if (p == NULL)
    fail_msg("out of memory allocating %zu bytes for the test", len);
  return p;
}

void *tu_pattern(size_t len, uint32_t seed) {
  void *p = tu_xmalloc(len);
  tu_fill_pattern(p, len, seed);
  return p;
}

size_t tu_pattern_mismatch(const void *buf, size_t len, uint32_t seed) {
  const uint8_t *p = buf;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    if (p[i] != (uint8_t)x)
      return i;
  }
  return len;
}

size_t tu_first_difference(const void *a, const void *b, size_t n) {
  const uint8_t *x = a, *y = b;
  if (memcmp(x, y, n) == 0)
    return n;
  for (size_t i = 0; i < n; i++)
    if (x[i] != y[i])
      return i;
  return n;
}

void tu_assert_same_bytes(const char *what, const void *got, size_t got_len,
                          const void *want, size_t want_len) {
  if (got_len != want_len)
    fail_msg("%s: got %zu bytes, expected %zu bytes", what, got_len, want_len);
  if (want_len == 0)
    return;
  if (got == NULL)
    fail_msg("%s: got a NULL buffer for %zu bytes", what, want_len);
  size_t off = tu_first_difference(got, want, want_len);
  if (off != want_len)
    fail_msg("%s: %zu bytes, first difference at offset %zu: got 0x%02x, "
             "expected 0x%02x",
             what, want_len, off, ((const uint8_t *)got)[off],
             ((const uint8_t *)want)[off]);
}

#define TU_MSG_MAGIC 0x51504d31u /* "QPM1" */

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static uint32_t msg_seed(uint32_t stream, uint32_t index) {
  return stream * 1000003u + index;
}

void *tu_msg_make(uint32_t stream, uint32_t index, size_t len) {
  if (len < TU_MSG_HEADER)
    len = TU_MSG_HEADER;
  uint8_t *m = tu_xmalloc(len);
  put_u32(m, TU_MSG_MAGIC);
  put_u32(m + 4, stream);
  put_u32(m + 8, index);
  put_u32(m + 12, (uint32_t)len);
  tu_fill_pattern(m + TU_MSG_HEADER, len - TU_MSG_HEADER,
                  msg_seed(stream, index));
  return m;
}

bool tu_msg_check(const void *msg, size_t len, uint32_t *stream,
                  uint32_t *index, char *why, size_t why_size) {
  const uint8_t *m = msg;
  if (len < TU_MSG_HEADER) {
    snprintf(why, why_size, "message of %zu bytes is shorter than a header",
             len);
    return false;
  }
  if (get_u32(m) != TU_MSG_MAGIC) {
    snprintf(why, why_size, "bad magic 0x%08x (expected 0x%08x), length %zu",
             get_u32(m), TU_MSG_MAGIC, len);
    return false;
  }
  uint32_t s = get_u32(m + 4), i = get_u32(m + 8), l = get_u32(m + 12);
  if (l != len) {
    snprintf(why, why_size,
             "message stream %u index %u says %u bytes but %zu arrived", s, i,
             l, len);
    return false;
  }
  size_t off = tu_pattern_mismatch(m + TU_MSG_HEADER, len - TU_MSG_HEADER,
                                   msg_seed(s, i));
  if (off != len - TU_MSG_HEADER) {
    snprintf(why, why_size,
             "message stream %u index %u (%zu bytes): payload differs at "
             "offset %zu",
             s, i, len, off + TU_MSG_HEADER);
    return false;
  }
  *stream = s;
  *index = i;
  return true;
}

/* ------------------------------------------------------------------------ */
/* Portals                                                                   */
/* ------------------------------------------------------------------------ */

qp_transport_options tu_default_options(void) {
  qp_transport_options o;
  memset(&o, 0, sizeof(o));
  qp_transport_options_init(&o);
  return o;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

uint16_t tu_wait_local_port(const qp_portal_t *p, int timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  for (;;) {
    uint16_t port = qp_portal_local_port(p);
    if (port != 0 || tu_now_ms() >= deadline)
      return port;
    sleep_ms(1);
  }
}

int64_t tu_wait_connected(const qp_portal_t *p, bool want, int timeout_ms) {
  int64_t start = tu_now_ms();
  for (;;) {
    if (qp_portal_is_connected(p) == want)
      return tu_now_ms() - start;
    if (tu_now_ms() - start >= timeout_ms)
      return -1;
    sleep_ms(5);
  }
}

static void *listen_main(void *arg) {
  tu_listener_t *l = arg;
  int64_t start = tu_now_ms();
  l->rc = qp_portal_listen(l->portal, l->ip, l->port,
                           l->has_opts ? &l->opts : NULL, l->timeout_ms);
  l->elapsed_ms = tu_now_ms() - start;
  snprintf(l->error, sizeof(l->error), "%s", qp_last_error());
  atomic_store(&l->done, 1);
  return NULL;
}

uint16_t tu_listen_start(tu_listener_t *l, qp_portal_t *portal, const char *ip,
                         uint16_t port, const qp_transport_options *opts,
                         int timeout_ms) {
  memset(l, 0, sizeof(*l));
  l->portal = portal;
  snprintf(l->ip, sizeof(l->ip), "%s", ip ? ip : "127.0.0.1");
  l->port = port;
  if (opts != NULL) {
    l->opts = *opts;
    l->has_opts = true;
  }
  l->timeout_ms = timeout_ms;
  l->rc = QP_ERR_INTERNAL;
  atomic_store(&l->done, 0);
  if (pthread_create(&l->thread, NULL, listen_main, l) != 0)
    fail_msg("pthread_create for the listener failed");
  l->running = true;
  int64_t deadline = tu_now_ms() + 5000;
  for (;;) {
    uint16_t bound = qp_portal_local_port(portal);
    if (bound != 0)
      return bound;
    if (atomic_load(&l->done) || tu_now_ms() >= deadline)
      return 0;
    sleep_ms(1);
  }
}

int tu_listen_join(tu_listener_t *l) {
  if (l->running) {
    pthread_join(l->thread, NULL);
    l->running = false;
  }
  return l->rc;
}

void tu_pair_create(tu_pair_t *pair) {
  memset(pair, 0, sizeof(*pair));
  TU_QP_OK(qp_portal_create(&pair->server));
  TU_QP_OK(qp_portal_create(&pair->client));
  assert_non_null(pair->server);
  assert_non_null(pair->client);
}

bool tu_pair_handshake(tu_pair_t *pair, const qp_transport_options *server_opts,
                       const qp_transport_options *client_opts,
                       int listen_timeout_ms, int connect_timeout_ms) {
  tu_listener_t l;
  pair->port = tu_listen_start(&l, pair->server, "127.0.0.1", 0, server_opts,
                               listen_timeout_ms);
  if (pair->port == 0) {
    tu_listen_join(&l);
    pair->server_rc = l.rc;
    pair->server_ms = l.elapsed_ms;
    snprintf(pair->server_error, sizeof(pair->server_error),
             "listen never bound a port: %.400s", l.error);
    pair->client_rc = QP_ERR_INTERNAL;
    snprintf(pair->client_error, sizeof(pair->client_error),
             "connect not attempted: the server has no port");
    return false;
  }
  int64_t start = tu_now_ms();
  pair->client_rc = qp_portal_connect(pair->client, "127.0.0.1", pair->port, 0,
                                      client_opts, connect_timeout_ms);
  pair->client_ms = tu_now_ms() - start;
  snprintf(pair->client_error, sizeof(pair->client_error), "%s",
           qp_last_error());
  pair->server_rc = tu_listen_join(&l);
  pair->server_ms = l.elapsed_ms;
  snprintf(pair->server_error, sizeof(pair->server_error), "%s", l.error);
  return pair->server_rc == QP_OK && pair->client_rc == QP_OK;
}

void tu_pair_connect(tu_pair_t *pair, const qp_transport_options *server_opts,
                     const qp_transport_options *client_opts) {
  tu_pair_create(pair);
  if (!tu_pair_handshake(pair, server_opts, client_opts, 10000, 5000))
    fail_msg("connecting two portals over 127.0.0.1 failed: listen returned "
             "%s (\"%s\") after %lld ms, connect returned %s (\"%s\") after "
             "%lld ms",
             qp_err_name(pair->server_rc), pair->server_error,
             (long long)pair->server_ms, qp_err_name(pair->client_rc),
             pair->client_error, (long long)pair->client_ms);
  assert_true(qp_portal_is_connected(pair->server));
  assert_true(qp_portal_is_connected(pair->client));
}

void tu_pair_destroy(tu_pair_t *pair) {
  qp_portal_destroy(pair->client);
  qp_portal_destroy(pair->server);
  pair->client = NULL;
  pair->server = NULL;
}

void tu_send_ok(qp_portal_t *p, const void *buf, size_t len, int timeout_ms) {
  int rc = qp_portal_send(p, buf, len, timeout_ms);
  if (rc != QP_OK)
    fail_msg("qp_portal_send of %zu bytes returned %s (%d); qp_last_error: "
             "\"%s\"",
             len, qp_err_name(rc), rc, qp_last_error());
}

void tu_recv_expect(qp_portal_t *p, const void *want, size_t want_len,
                    int timeout_ms) {
  void *msg = NULL;
  size_t len = 0;
  int64_t start = tu_now_ms();
  int rc = qp_portal_recv(p, &msg, &len, timeout_ms);
  if (rc != QP_OK)
    fail_msg("qp_portal_recv (waiting for %zu bytes, timeout %d ms) returned "
             "%s (%d) after %lld ms; qp_last_error: \"%s\"",
             want_len, timeout_ms, qp_err_name(rc), rc,
             (long long)(tu_now_ms() - start), qp_last_error());
  if (msg == NULL)
    fail_msg("qp_portal_recv returned QP_OK with a NULL message (%zu bytes)",
             len);
  bool same = len == want_len &&
              tu_first_difference(msg, want, want_len) == want_len;
  if (!same) {
    char what[64];
    snprintf(what, sizeof(what), "received message");
    /* copy out the facts, free, then fail */
    size_t off = len == want_len ? tu_first_difference(msg, want, want_len)
                                 : 0;
    unsigned got_b = len > off ? ((uint8_t *)msg)[off] : 0;
    qp_free(msg);
    if (len != want_len)
      fail_msg("%s: got %zu bytes, expected %zu bytes", what, len, want_len);
    fail_msg("%s: %zu bytes, first difference at offset %zu: got 0x%02x, "
             "expected 0x%02x",
             what, want_len, off, got_b, ((const uint8_t *)want)[off]);
  }
  qp_free(msg);
}

void tu_echo_roundtrip(qp_portal_t *p, size_t len, uint32_t seed,
                       int timeout_ms) {
  uint8_t *buf = tu_pattern(len, seed);
  tu_send_ok(p, buf, len, timeout_ms);
  tu_recv_expect(p, buf, len, timeout_ms);
  free(buf);
}

static void *echo_main(void *arg) {
  tu_echo_t *e = arg;
  for (;;) {
    void *msg = NULL;
    size_t len = 0;
    int rc = qp_portal_recv(e->portal, &msg, &len, e->recv_timeout_ms);
    if (rc != QP_OK) {
      e->rc = rc;
      e->failed_call = "recv";
      snprintf(e->error, sizeof(e->error), "%s", qp_last_error());
      return NULL;
    }
    rc = qp_portal_send(e->portal, msg, len, 60000);
    qp_free(msg);
    if (rc != QP_OK) {
      e->rc = rc;
      e->failed_call = "send";
      snprintf(e->error, sizeof(e->error), "%s", qp_last_error());
      return NULL;
    }
    e->messages++;
    e->bytes += len;
  }
}

void tu_echo_start(tu_echo_t *e, qp_portal_t *portal, int recv_timeout_ms) {
  memset(e, 0, sizeof(*e));
  e->portal = portal;
  e->recv_timeout_ms = recv_timeout_ms;
  e->rc = QP_ERR_INTERNAL;
  e->failed_call = "";
  if (pthread_create(&e->thread, NULL, echo_main, e) != 0)
    fail_msg("pthread_create for the echo peer failed");
  e->running = true;
}

int tu_echo_join(tu_echo_t *e) {
  if (e->running) {
    pthread_join(e->thread, NULL);
    e->running = false;
  }
  return e->rc;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                           */
/* ------------------------------------------------------------------------ */

pid_t tu_spawn_self(char *const args[], char *const extra_env[], int *out_fd,
                    int *err_fd) {
  /* Everything the child needs is prepared before fork: between fork and
   * exec only async-signal-safe calls. */
  size_t n_env = 0, n_extra = 0;
  while (environ[n_env] != NULL)
    n_env++;
  while (extra_env != NULL && extra_env[n_extra] != NULL)
    n_extra++;
  char **env = calloc(n_env + n_extra + 1, sizeof(char *));
  if (env == NULL)
    return -1;
  size_t k = 0;
  for (size_t i = 0; i < n_env; i++) {
    bool overridden = false;
    for (size_t j = 0; j < n_extra; j++) {
      const char *eq = strchr(extra_env[j], '=');
      size_t name_len = eq ? (size_t)(eq - extra_env[j]) : strlen(extra_env[j]);
      if (strncmp(environ[i], extra_env[j], name_len) == 0 &&
          environ[i][name_len] == '=')
        overridden = true;
    }
    if (!overridden)
      env[k++] = environ[i];
  }
  for (size_t j = 0; j < n_extra; j++)
    env[k++] = extra_env[j];
  env[k] = NULL;

  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if ((out_fd != NULL && pipe2(out_pipe, O_CLOEXEC) != 0) ||
      (err_fd != NULL && pipe2(err_pipe, O_CLOEXEC) != 0)) {
    free(env);
    return -1;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    if (out_pipe[1] >= 0)
      dup2(out_pipe[1], STDOUT_FILENO);
    if (err_pipe[1] >= 0)
      dup2(err_pipe[1], STDERR_FILENO);
    execve("/proc/self/exe", args, env);
    _exit(127);
  }
  free(env);
  if (out_pipe[1] >= 0)
    close(out_pipe[1]);
  if (err_pipe[1] >= 0)
    close(err_pipe[1]);
  if (pid < 0) {
    if (out_pipe[0] >= 0)
      close(out_pipe[0]);
    if (err_pipe[0] >= 0)
      close(err_pipe[0]);
    return -1;
  }
  if (out_fd != NULL)
    *out_fd = out_pipe[0];
  if (err_fd != NULL)
    *err_fd = err_pipe[0];
  return pid;
}

int tu_wait_child(pid_t pid, int timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status))
        return WEXITSTATUS(status);
      if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
      return -1;
    }
    if (r < 0 && errno != EINTR)
      return -1;
    if (tu_now_ms() >= deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    sleep_ms(5);
  }
}

bool tu_read_line(int fd, char *buf, size_t size, int timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  size_t n = 0;
  while (n + 1 < size) {
    int64_t left = deadline - tu_now_ms();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    char c;
    ssize_t got = read(fd, &c, 1);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    if (c == '\n') {
      buf[n] = '\0';
      return true;
    }
    buf[n++] = c;
  }
  buf[n] = '\0';
  return false;
}

char *tu_read_all(int fd, int timeout_ms) {
  int64_t deadline = tu_now_ms() + timeout_ms;
  size_t cap = 4096, n = 0;
  char *s = malloc(cap);
  if (s == NULL)
    return NULL;
  for (;;) {
    int64_t left = deadline - tu_now_ms();
    if (left <= 0)
      break;
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    if (cap - n < 1025) {
      char *bigger = realloc(s, cap * 2);
      if (bigger == NULL)
        break;
      s = bigger;
      cap *= 2;
    }
    ssize_t got = read(fd, s + n, 1024);
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    n += (size_t)got;
  }
  s[n] = '\0';
  return s;
}

static void *create_side_main(void *arg) {
  tu_create_side_t *s = arg;
  s->rc = s->server ? qp_create_server(&s->opts, &s->portal)
                    : qp_create_client(&s->opts, &s->portal);
  snprintf(s->err, sizeof(s->err), "%s", qp_last_error());
  return NULL;
}

void tu_create_side_init(tu_create_side_t *s, bool server) {
  memset(s, 0, sizeof(*s));
  qp_traverse_options_init(&s->opts);
  s->server = server;
}

void tu_create_side_start(tu_create_side_t *s) {
  assert_int_equal(pthread_create(&s->thread, NULL, create_side_main, s), 0);
}

int tu_create_side_join(tu_create_side_t *s) {
  pthread_join(s->thread, NULL);
  return s->rc;
}
