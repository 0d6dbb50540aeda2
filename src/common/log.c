#include "common/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>

/* Longest line handed to a log handler; longer lines are truncated. */
#define QP_LOG_LINE_MAX 1024

/* -1 until the first read, which consults QUIC_PORTAL_LOG. */
static atomic_int log_level = -1;

static pthread_mutex_t handler_lock = PTHREAD_MUTEX_INITIALIZER;
static qp_log_cb log_handler;
static void *log_handler_user;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "none"};

static int level_from_env(void) {
  const char *env = getenv("QUIC_PORTAL_LOG");
  if (env != NULL) {
    for (int i = 0; i <= QP_LOG_LEVEL_NONE; i++)
      if (strcasecmp(env, level_names[i]) == 0)
        return i;
    if (strcasecmp(env, "warning") == 0)
      return QP_LOG_LEVEL_WARN;
  }
  return QP_LOG_LEVEL_WARN;
}

qp_log_level qp_log_get_level(void) {
  int level = atomic_load(&log_level);
  if (level < 0) {
    int expected = -1;
    atomic_compare_exchange_strong(&log_level, &expected, level_from_env());
    level = atomic_load(&log_level);
  }
  return (qp_log_level)level;
}

void qp_log_set_level(qp_log_level level) {
  if ((int)level < QP_LOG_LEVEL_DEBUG || level > QP_LOG_LEVEL_NONE)
    return;
  atomic_store(&log_level, (int)level);
}

void qp_log_set_handler(qp_log_cb handler, void *user) {
  pthread_mutex_lock(&handler_lock);
  log_handler = handler;
  log_handler_user = user;
  pthread_mutex_unlock(&handler_lock);
}

bool qp_log_enabled(qp_log_level level) {
  return level >= qp_log_get_level() && level < QP_LOG_LEVEL_NONE;
}

void qp_log_write(qp_log_level level, const char *file, int line,
                  const char *fmt, ...) {
  char text[QP_LOG_LINE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);

  pthread_mutex_lock(&handler_lock);
  qp_log_cb handler = log_handler;
  void *user = log_handler_user;
  pthread_mutex_unlock(&handler_lock);

  if (handler != NULL) {
    handler(level, text, user);
    return;
  }
  const char *base = strrchr(file, '/');
  fprintf(stderr, "quic-portal %s %s:%d: %s\n", level_names[level],
          base ? base + 1 : file, line, text);
}
