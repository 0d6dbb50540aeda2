/* ctest: labels=loopback,process,iothread */
/*
 * Logging: a handler receives the library's lines at the level asked for
 * and nothing below it; NONE silences everything; a replaced handler gets
 * nothing more; QUIC_PORTAL_LOG sets the level of a fresh process; options
 * that cannot be honored are logged once per process.
 *
 * Child usage: test_portal_log env-level VALUE   (VALUE "-" = unset)
 *              test_portal_log env-run VALUE     (connect, echo, close)
 * env-level prints the level qp_log_get_level() reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quic_portal.h"
#include "tu.h"

/* ---- a collecting handler (called from any thread) ---- */

typedef struct collector {
  pthread_mutex_t lock;
  int count[5];
  int total;
  int empty;         /* lines with no text */
  int newline;       /* lines ending in '\n' */
  int bad_level;
  int matches;       /* lines containing `needle` (and `needle2`) */
  const char *needle, *needle2;
  char last[512];
} collector_t;

static collector_t col_a = {.lock = PTHREAD_MUTEX_INITIALIZER};
static collector_t col_b = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void collect(qp_log_level level, const char *message, void *user) {
  collector_t *c = user;
  pthread_mutex_lock(&c->lock);
  c->total++;
  if ((int)level >= 0 && level <= QP_LOG_LEVEL_NONE)
    c->count[level]++;
  if ((int)level < 0 || level >= QP_LOG_LEVEL_NONE)
    c->bad_level++;
  size_t n = message ? strlen(message) : 0;
  if (n == 0)
    c->empty++;
  else if (message[n - 1] == '\n')
    c->newline++;
  if (message != NULL && c->needle != NULL && tu_contains(message, c->needle) &&
      (c->needle2 == NULL || tu_contains(message, c->needle2)))
    c->matches++;
  snprintf(c->last, sizeof(c->last), "%s", message ? message : "(null)");
  pthread_mutex_unlock(&c->lock);
}

static void collector_reset(collector_t *c, const char *needle,
                            const char *needle2) {
  pthread_mutex_lock(&c->lock);
  memset(c->count, 0, sizeof(c->count));
  c->total = c->empty = c->newline = c->bad_level = c->matches = 0;
  c->needle = needle;
  c->needle2 = needle2;
  c->last[0] = '\0';
  pthread_mutex_unlock(&c->lock);
}

static collector_t collector_get(collector_t *c) {
  pthread_mutex_lock(&c->lock);
  collector_t copy;
  memcpy(copy.count, c->count, sizeof(c->count));
  copy.total = c->total;
  copy.empty = c->empty;
  copy.newline = c->newline;
  copy.bad_level = c->bad_level;
  copy.matches = c->matches;
  memcpy(copy.last, c->last, sizeof(c->last));
  pthread_mutex_unlock(&c->lock);
  return copy;
}

/* Some activity that logs: connect, echo, close; then a failed connect. */
static void activity(const qp_transport_options *opts) {
  tu_pair_t pair;
  tu_pair_connect(&pair, opts, opts);
  tu_echo_t echo;
  tu_echo_start(&echo, pair.server, 10000);
  tu_echo_roundtrip(pair.client, 100 * 1024, 1, 5000);
  TU_QP_OK(qp_portal_close(pair.client, 2000));
  TU_RC_EQ(tu_echo_join(&echo), QP_ERR_CLOSED, echo.error);
  tu_pair_destroy(&pair);
}

static void failed_connect(void) {
  qp_portal_t *p = NULL;
  TU_QP_OK(qp_portal_create(&p));
  TU_QP_ERR(qp_portal_connect(p, "127.0.0.1", tu_free_udp_port(), 0, NULL,
                              300),
            QP_ERR_TIMEOUT);
  qp_portal_destroy(p);
}

static int teardown_logging(void **state) {
  (void)state;
  qp_log_set_handler(NULL, NULL);
  qp_log_set_level(QP_LOG_LEVEL_WARN);
  return 0;
}

static void set_and_get_level_roundtrip(void **state) {
  (void)state;
  for (int l = QP_LOG_LEVEL_DEBUG; l <= QP_LOG_LEVEL_NONE; l++) {
    qp_log_set_level((qp_log_level)l);
    assert_int_equal(qp_log_get_level(), l);
  }
}

static void handler_gets_lines_below_warn_only_when_the_level_allows(
    void **state) {
  (void)state;
  qp_log_set_handler(collect, &col_a);

  qp_log_set_level(QP_LOG_LEVEL_WARN);
  collector_reset(&col_a, NULL, NULL);
  activity(NULL);
  collector_t at_warn = collector_get(&col_a);
  print_message("at WARN: %d lines (debug %d, info %d)\n", at_warn.total,
                at_warn.count[QP_LOG_LEVEL_DEBUG],
                at_warn.count[QP_LOG_LEVEL_INFO]);
  assert_int_equal(at_warn.count[QP_LOG_LEVEL_DEBUG], 0);
  assert_int_equal(at_warn.count[QP_LOG_LEVEL_INFO], 0);

  qp_log_set_level(QP_LOG_LEVEL_DEBUG);
  collector_reset(&col_a, NULL, NULL);
  activity(NULL);
  collector_t at_debug = collector_get(&col_a);
  print_message("at DEBUG: %d lines (debug %d, info %d, warn %d, error %d); "
                "last: \"%s\"\n",
                at_debug.total, at_debug.count[0], at_debug.count[1],
                at_debug.count[2], at_debug.count[3], at_debug.last);
  /* The same activity logs below WARN once the level allows it: the filter
   * above had something to filter. */
  if (at_debug.count[QP_LOG_LEVEL_DEBUG] + at_debug.count[QP_LOG_LEVEL_INFO] ==
      0)
    fail_msg("no DEBUG or INFO line during connect, echo and close at level "
             "DEBUG");
  assert_int_equal(at_debug.bad_level, 0);
  assert_int_equal(at_debug.empty, 0);
  /* "one formatted line (no trailing newline)" */
  assert_int_equal(at_debug.newline, 0);
}

static void level_none_silences_everything(void **state) {
  (void)state;
  qp_log_set_handler(collect, &col_a);
  qp_log_set_level(QP_LOG_LEVEL_NONE);
  collector_reset(&col_a, NULL, NULL);
  activity(NULL);
  failed_connect();
  collector_t got = collector_get(&col_a);
  if (got.total != 0)
    fail_msg("level NONE, yet the handler got %d lines, the last: \"%s\"",
             got.total, got.last);
}

static void replaced_handler_gets_nothing_more(void **state) {
  (void)state;
  qp_log_set_level(QP_LOG_LEVEL_DEBUG);
  qp_log_set_handler(collect, &col_a);
  collector_reset(&col_a, NULL, NULL);
  activity(NULL);
  assert_true(collector_get(&col_a).total > 0);
  /* No portal exists now, so no I/O thread can be inside the handler. */
  qp_log_set_handler(collect, &col_b);
  collector_reset(&col_a, NULL, NULL);
  collector_reset(&col_b, NULL, NULL);
  activity(NULL);
  assert_int_equal(collector_get(&col_a).total, 0);
  assert_true(collector_get(&col_b).total > 0);
}

/* "one flag per process per transport option that could not be honored (so
 * the warning is logged once)": two connections with an initial_window that
 * ngtcp2 cannot honor and two with the "fixed" controller. */
static void options_not_honored_are_logged_once_per_process(void **state) {
  (void)state;
  qp_log_set_level(QP_LOG_LEVEL_DEBUG);
  qp_log_set_handler(collect, &col_a);

  qp_transport_options o = tu_default_options();
  o.initial_window = 2 * 1048576;
  collector_reset(&col_a, "initial", "window");
  activity(&o);
  activity(&o);
  collector_t got = collector_get(&col_a);
  if (got.matches != 1)
    fail_msg("a non-default initial_window (cubic) was logged %d times in "
             "two connections (4 portals), expected once",
             got.matches);

  o = tu_default_options();
  o.congestion_controller = QP_CC_FIXED;
  collector_reset(&col_a, "fixed", NULL);
  activity(&o);
  activity(&o);
  got = collector_get(&col_a);
  if (got.matches != 1)
    fail_msg("the \"fixed\" controller was logged %d times in two "
             "connections (4 portals), expected once",
             got.matches);
}

/* ---- QUIC_PORTAL_LOG in a fresh process ---- */

static int child_main(int argc, char **argv) {
  if (argc < 3)
    return 2;
  /* Before the library's first log use. */
  if (strcmp(argv[2], "-") == 0)
    unsetenv("QUIC_PORTAL_LOG");
  else
    setenv("QUIC_PORTAL_LOG", argv[2], 1);
  if (strcmp(argv[1], "env-level") == 0) {
    printf("LEVEL %d\n", (int)qp_log_get_level());
    return 0;
  }
  if (strcmp(argv[1], "env-run") == 0) {
    qp_portal_t *s = NULL, *c = NULL;
    if (qp_portal_create(&s) != QP_OK || qp_portal_create(&c) != QP_OK)
      return 2;
    tu_listener_t l;
    uint16_t port = tu_listen_start(&l, s, "127.0.0.1", 0, NULL, 10000);
    int rc = qp_portal_connect(c, "127.0.0.1", port, 0, NULL, 5000);
    if (tu_listen_join(&l) != QP_OK || rc != QP_OK)
      return 3;
    char msg[100] = {0};
    void *got = NULL;
    size_t len = 0;
    if (qp_portal_send(c, msg, sizeof(msg), 5000) != QP_OK ||
        qp_portal_recv(s, &got, &len, 5000) != QP_OK)
      return 4;
    qp_free(got);
    qp_portal_close(c, 2000);
    qp_portal_destroy(c);
    qp_portal_destroy(s);
    return 0;
  }
  return 2;
}

static int child_level(const char *value) {
  char *args[] = {"test_portal_log", "env-level", (char *)value, NULL};
  int out_fd = -1;
  pid_t pid = tu_spawn_self(args, NULL, &out_fd, NULL);
  assert_true(pid > 0);
  char line[128];
  bool ok = tu_read_line(out_fd, line, sizeof(line), 5000);
  close(out_fd);
  assert_int_equal(tu_wait_child(pid, 5000), 0);
  int level = -1;
  if (!ok || sscanf(line, "LEVEL %d", &level) != 1)
    fail_msg("child for QUIC_PORTAL_LOG=%s printed \"%s\"", value, line);
  return level;
}

static void quic_portal_log_sets_the_level_of_a_fresh_process(void **state) {
  (void)state;
  static const struct {
    const char *value;
    int level;
  } cases[] = {{"debug", QP_LOG_LEVEL_DEBUG}, {"info", QP_LOG_LEVEL_INFO},
               {"warn", QP_LOG_LEVEL_WARN},   {"error", QP_LOG_LEVEL_ERROR},
               {"none", QP_LOG_LEVEL_NONE},   {"-", QP_LOG_LEVEL_WARN},
               {"bogus", QP_LOG_LEVEL_WARN}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int level = child_level(cases[i].value);
    if (level != cases[i].level)
      fail_msg("QUIC_PORTAL_LOG=%s gave level %d, expected %d",
               cases[i].value, level, cases[i].level);
  }
}

static int count_lines(const char *s) {
  int n = 0;
  for (; *s; s++)
    if (*s == '\n')
      n++;
  return n;
}

/* The default handler writes lines to stderr: many with debug, none with
 * "none". */
static void quic_portal_log_debug_makes_the_default_handler_write(
    void **state) {
  (void)state;
  const char *values[] = {"debug", "none"};
  int lines[2];
  for (int i = 0; i < 2; i++) {
    char *args[] = {"test_portal_log", "env-run", (char *)values[i], NULL};
    int err_fd = -1;
    pid_t pid = tu_spawn_self(args, NULL, NULL, &err_fd);
    assert_true(pid > 0);
    char *text = tu_read_all(err_fd, 15000);
    close(err_fd);
    int status = tu_wait_child(pid, 5000);
    assert_non_null(text);
    lines[i] = count_lines(text);
    print_message("QUIC_PORTAL_LOG=%s: child exit %d, %d stderr lines; first "
                  "200 bytes: \"%.200s\"\n",
                  values[i], status, lines[i], text);
    free(text);
    assert_int_equal(status, 0);
  }
  if (lines[0] == 0)
    fail_msg("QUIC_PORTAL_LOG=debug: the default handler wrote nothing to "
             "stderr during connect, echo and close");
  assert_int_equal(lines[1], 0);
}

int main(int argc, char **argv) {
  if (argc >= 2)
    return child_main(argc, argv);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(set_and_get_level_roundtrip, teardown_logging),
      cmocka_unit_test_teardown(
          handler_gets_lines_below_warn_only_when_the_level_allows,
          teardown_logging),
      cmocka_unit_test_teardown(level_none_silences_everything,
                                teardown_logging),
      cmocka_unit_test_teardown(replaced_handler_gets_nothing_more,
                                teardown_logging),
      cmocka_unit_test_teardown(options_not_honored_are_logged_once_per_process,
                                teardown_logging),
      cmocka_unit_test(quic_portal_log_sets_the_level_of_a_fresh_process),
      cmocka_unit_test(quic_portal_log_debug_makes_the_default_handler_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
