/* iotimer.c: the I/O thread's alarm clock (see iotimer.h). */
#include "portal/iotimer.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/error.h"
#include "common/log.h"

int portal_iotimer_open(portal_iotimer_t *t) {
  t->at = UINT64_MAX;
  t->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (t->fd < 0)
    return err_fail(QP_ERR_SOCKET, "cannot create a timerfd: %s", strerror(errno));
  return 0;
}

void portal_iotimer_close(portal_iotimer_t *t) {
  if (t->fd >= 0)
    close(t->fd);
  t->fd = -1;
}

void portal_iotimer_set(portal_iotimer_t *t, uint64_t at) {
  if (t->fd < 0 || at == t->at)
    return;
  /* An all-zero it_value disarms; time 0 never occurs on this clock after
   * boot, so "already due" is written as 1 ns (in the past: fires at once). */
  struct itimerspec its = {0};
  if (at != UINT64_MAX) {
    uint64_t when = at == 0 ? 1 : at;
    its.it_value.tv_sec = (time_t)(when / CLOCK_NS_PER_S);
    its.it_value.tv_nsec = (long)(when % CLOCK_NS_PER_S);
  }
  if (timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
    QP_LOG_WARN("timerfd_settime failed: %s", strerror(errno));
    return;
  }
  t->at = at;
}

void portal_iotimer_advance(portal_iotimer_t *t, uint64_t at) {
  if (at < t->at)
    portal_iotimer_set(t, at);
}

void portal_iotimer_drain(portal_iotimer_t *t) {
  uint64_t expirations;
  if (t->fd >= 0 && read(t->fd, &expirations, sizeof(expirations)) < 0 &&
      errno != EAGAIN)
    QP_LOG_WARN("timerfd read failed: %s", strerror(errno));
  if (t->at <= clock_now_ns())
    t->at = UINT64_MAX; /* fired: a one-shot timer is disarmed now */
}
