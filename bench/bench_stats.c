/*
 * bench_stats.c: clock, percentiles, memory figures and error output of
 * qp-bench.
 */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_sleep(double seconds) {
  if (seconds <= 0) {
    return;
  }
  struct timespec ts = {
      .tv_sec = (time_t)seconds,
      .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9),
  };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a;
  double y = *(const double *)b;
  return (x > y) - (x < y);
}

void bench_sort(double *v, size_t n) {
  if (n > 1) {
    qsort(v, n, sizeof *v, cmp_double);
  }
}

double bench_pct(const double *sorted, size_t n, double q) {
  if (n == 0) {
    return 0;
  }
  size_t i = (size_t)((double)n * q);
  return sorted[i < n ? i : n - 1];
}

double bench_mean(const double *v, size_t n) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    sum += v[i];
  }
  return n ? sum / (double)n : 0;
}

long bench_status_kb(const char *field) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) {
    return -1;
  }
  char line[256];
  size_t flen = strlen(field);
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
      kb = strtol(line + flen + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

void bench_errorf(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "qp-bench: %s\n", msg);
}

void bench_qp_error(const char *what, int err) {
  const char *detail = qp_last_error();
  bench_errorf("%s failed: %s (%s)%s%s", what, qp_err_name(err),
               qp_strerror(err), detail[0] ? ": " : "", detail);
}

void bench_put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

uint32_t bench_get_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

void bench_put_be64(uint8_t *p, uint64_t v) {
  bench_put_be32(p, (uint32_t)(v >> 32));
  bench_put_be32(p + 4, (uint32_t)v);
}

uint64_t bench_get_be64(const uint8_t *p) {
  return (uint64_t)bench_get_be32(p) << 32 | bench_get_be32(p + 4);
}
