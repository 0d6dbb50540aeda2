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

bool log_enabled(qp_log_level level) {
  return level >= qp_log_get_level() && level < QP_LOG_LEVEL_NONE;
}

/* Lines a thread may queue while it holds a library lock; each up to
 * QP_LOG_DEFER_LINE bytes (4 KiB of thread-local storage per thread). */
#define QP_LOG_DEFER_MAX 8
#define QP_LOG_DEFER_LINE 480

typedef struct deferred_line {
  qp_log_level level;
  char where[48]; /* "file.c:123" */
  char text[QP_LOG_DEFER_LINE];
} deferred_line_t;

static _Thread_local int defer_depth;
static _Thread_local int deferred_count;
static _Thread_local int deferred_dropped;
static _Thread_local deferred_line_t deferred[QP_LOG_DEFER_MAX];

static void emit(qp_log_level level, const char *where, const char *text);

void log_defer_begin(void) { defer_depth++; }

void log_defer_end(void) {
  if (defer_depth == 0 || --defer_depth > 0)
    return;
  int n = deferred_count, dropped = deferred_dropped;
  deferred_count = deferred_dropped = 0;
  for (int i = 0; i < n; i++)
    emit(deferred[i].level, deferred[i].where, deferred[i].text);
  if (dropped > 0) {
    char text[64];
    snprintf(text, sizeof(text), "%d more log lines dropped", dropped);
    emit(QP_LOG_LEVEL_WARN, "log.c", text);
  }
}

void log_write(qp_log_level level, const char *file, int line,
                  const char *fmt, ...) {
  char text[QP_LOG_LINE_MAX];
  char where[48];
  const char *base = strrchr(file, '/');
  snprintf(where, sizeof(where), "%.40s:%d", base ? base + 1 : file, line);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (defer_depth > 0) {
    if (deferred_count < QP_LOG_DEFER_MAX) {
      deferred_line_t *d = &deferred[deferred_count++];
      size_t len = strnlen(text, QP_LOG_DEFER_LINE - 1); /* long lines cut */
      memcpy(d->text, text, len);
      d->text[len] = '\0';
      memcpy(d->where, where, sizeof(where));
      d->level = level;
    } else {
      deferred_dropped++;
    }
    return;
  }
  emit(level, where, text);
}

/* The handler gets the message; the default stderr line also says where. */
static void emit(qp_log_level level, const char *where, const char *text) {
  pthread_mutex_lock(&handler_lock);
  qp_log_cb handler = log_handler;
  void *user = log_handler_user;
  pthread_mutex_unlock(&handler_lock);

  if (handler != NULL) {
    handler(level, text, user);
    return;
  }
  fprintf(stderr, "quic-portal %s %s: %s\n", level_names[level], where, text);
}
