/*
 * Internal logging. QP_LOG_DEBUG(...) and friends check the level before
 * formatting, so a disabled level costs one atomic load.
 */
#ifndef QP_COMMON_LOG_H
#define QP_COMMON_LOG_H

#include <stdbool.h>

#include "quic_portal.h"

bool log_enabled(qp_log_level level);
void log_write(qp_log_level level, const char *file, int line, const char *fmt,
               ...) __attribute__((format(printf, 4, 5)));

/*
 * Deferral: between log_defer_begin() and the matching _end(), this
 * thread's lines are queued (at most QP_LOG_DEFER_MAX; later ones are
 * counted and reported as dropped) and handed to the handler at _end().
 * The portal brackets its lock with these, so the user's handler never
 * runs while the library holds a lock.
 */
void log_defer_begin(void);
void log_defer_end(void);

#define QP_LOG_AT_(level, ...)                                                 \
  do {                                                                         \
    if (log_enabled(level))                                                    \
      log_write(level, __FILE__, __LINE__, __VA_ARGS__);                       \
  } while (0)

#define QP_LOG_DEBUG(...) QP_LOG_AT_(QP_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define QP_LOG_INFO(...) QP_LOG_AT_(QP_LOG_LEVEL_INFO, __VA_ARGS__)
#define QP_LOG_WARN(...) QP_LOG_AT_(QP_LOG_LEVEL_WARN, __VA_ARGS__)
#define QP_LOG_ERROR(...) QP_LOG_AT_(QP_LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
