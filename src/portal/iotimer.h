/*
 * iotimer.h: the I/O thread's alarm clock. A timerfd that holds the I/O
 * thread's next wake-up, so that any thread holding the portal lock can move
 * it (one timerfd_settime) without waking the I/O thread through its
 * eventfd: a send that makes a retransmission timer due sooner, or a receiver
 * that leaves an acknowledgement for the caller's reply to carry, costs the
 * I/O thread no wake-up, no lock hand-off, and the application no futex.
 */
#ifndef QP_PORTAL_IOTIMER_H
#define QP_PORTAL_IOTIMER_H

#include <stdint.h>

typedef struct portal_iotimer {
  int fd;      /* timerfd on CLOCK_MONOTONIC, or -1 */
  uint64_t at; /* when it fires (clock_now_ns time); UINT64_MAX: disarmed */
} portal_iotimer_t;

/* Open the timerfd (disarmed). 0, or QP_ERR_SOCKET with the errno text. */
int portal_iotimer_open(portal_iotimer_t *t);
void portal_iotimer_close(portal_iotimer_t *t);
/* Fire at `at` (UINT64_MAX: never; a time already past fires at once).
 * Makes a system call only when `at` differs from the armed time. */
void portal_iotimer_set(portal_iotimer_t *t, uint64_t at);
/* Fire at `at` if that is sooner than the armed time, else leave it: a
 * wake-up that comes too early costs the I/O thread one look at the clock,
 * and moving the timer later on every message would cost a system call. */
void portal_iotimer_advance(portal_iotimer_t *t, uint64_t at);
/* Consume an expiry the I/O thread woke up for (the fd polls readable until
 * read). The timer stays armed at `at` if that is still in the future. */
void portal_iotimer_drain(portal_iotimer_t *t);

#endif
