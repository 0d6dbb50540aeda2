/* Monotonic time in nanoseconds, the unit ngtcp2 uses. */
#ifndef QP_COMMON_CLOCK_H
#define QP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t qp_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Deadline timeout_ms from now; UINT64_MAX for a negative timeout. */
static inline uint64_t qp_deadline_ns(int timeout_ms) {
  if (timeout_ms < 0)
    return UINT64_MAX;
  return qp_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

#endif
