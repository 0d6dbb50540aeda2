/*
 * clock.h: the library's one clock. Monotonic time (CLOCK_MONOTONIC): in
 * nanoseconds, the unit ngtcp2 uses, and in milliseconds, the unit of
 * every timeout in the API, of STUN timers and of traversal. Every layer
 * reads time here (the rendezvous layer's rdv_now_ms is this clock too).
 */
#ifndef QP_COMMON_CLOCK_H
#define QP_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

#define CLOCK_NS_PER_MS 1000000u
#define CLOCK_NS_PER_S 1000000000u

static inline uint64_t clock_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * CLOCK_NS_PER_S + (uint64_t)ts.tv_nsec;
}

static inline int64_t clock_now_ms(void) {
  return (int64_t)(clock_now_ns() / CLOCK_NS_PER_MS);
}

/* Deadline timeout_ms from now; UINT64_MAX for a negative timeout. */
static inline uint64_t clock_deadline_ns(int timeout_ms) {
  if (timeout_ms < 0)
    return UINT64_MAX;
  return clock_now_ns() + (uint64_t)timeout_ms * CLOCK_NS_PER_MS;
}

#endif
