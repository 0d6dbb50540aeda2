/*
 * cli_util.c: errors, JSON strings, the clock, and the signal thread of the
 * quic-portal tool.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked in every thread (the
 * library's threads inherit the mask) and one thread waits for them with
 * sigwait(), so the handler may take locks and call the library: it
 * interrupts the portal in use, whose blocked calls then return
 * QP_ERR_INTERRUPTED and the subcommand cleans up and exits 128 + signal.
 */
#include "cli.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_bool g_line_open;

void cli_line_open(bool open) { atomic_store(&g_line_open, open); }

void cli_errorf(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  bool nl = atomic_exchange(&g_line_open, false);
  fprintf(stderr, "%squic-portal: %s\n", nl ? "\n" : "", msg);
}

int cli_qp_error(const char *what, int err) {
  const char *detail = qp_last_error();
  cli_errorf("%s failed: %s (%s)%s%s", what, qp_err_name(err), qp_strerror(err),
             detail[0] ? ": " : "", detail);
  return CLI_EXIT_FAIL;
}

void cli_json_str(char *out, size_t outlen, const char *s) {
  size_t n = strlen(out);
  if (n + 1 >= outlen) {
    return;
  }
  out[n++] = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    char esc[8];
    if (*p == '"' || *p == '\\') {
      snprintf(esc, sizeof esc, "\\%c", *p);
    } else if (*p < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *p);
    } else {
      esc[0] = (char)*p;
      esc[1] = '\0';
    }
    size_t el = strlen(esc);
    if (n + el + 2 >= outlen) {
      break;
    }
    memcpy(out + n, esc, el);
    n += el;
  }
  out[n++] = '"';
  out[n] = '\0';
}

double cli_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_hex(const uint8_t *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

void cli_put_be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) {
    p[i] = (uint8_t)(v >> (56 - 8 * i));
  }
}

uint64_t cli_get_be64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) {
    v = v << 8 | p[i];
  }
  return v;
}

/* ---- signals ------------------------------------------------------------ */

static atomic_int g_signal;
static pthread_mutex_t g_sig_lock = PTHREAD_MUTEX_INITIALIZER;
static qp_portal_t *g_watched;    /* guarded by g_sig_lock */
static char g_part_file[4096];    /* guarded by g_sig_lock */

static void signal_set(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGHUP);
}

static void *signal_thread(void *unused) {
  (void)unused;
  sigset_t set;
  signal_set(&set);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) {
      continue;
    }
    int expected = 0;
    bool first = atomic_compare_exchange_strong(&g_signal, &expected, sig);
    pthread_mutex_lock(&g_sig_lock);
    if (!first) {
      /* A second signal: the person wants out now. */
      if (g_part_file[0]) {
        unlink(g_part_file);
      }
      _exit(128 + expected);
    }
    if (g_watched) {
      qp_portal_interrupt(g_watched);
    }
    pthread_mutex_unlock(&g_sig_lock);
  }
  return NULL;
}

void cli_signals_start(void) {
  sigset_t set;
  signal_set(&set);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  /* A vanished reader of stdout must be an error of write(), not death. */
  signal(SIGPIPE, SIG_IGN);
  pthread_t t;
  if (pthread_create(&t, NULL, signal_thread, NULL) == 0) {
    pthread_detach(t);
  }
}

int cli_signal(void) { return atomic_load(&g_signal); }

int cli_signal_exit(void) {
  static atomic_bool said;
  int sig = cli_signal();
  if (sig && !atomic_exchange(&said, true)) {
    cli_errorf("interrupted by signal %d", sig); /* once, on every path */
  }
  return sig ? 128 + sig : CLI_EXIT_FAIL;
}

void cli_signals_watch(qp_portal_t *portal) {
  pthread_mutex_lock(&g_sig_lock);
  g_watched = portal;
  pthread_mutex_unlock(&g_sig_lock);
  /* A signal that came before registration must still stop the work. */
  if (portal && cli_signal()) {
    qp_portal_interrupt(portal);
  }
}

void cli_signals_part_file(const char *path) {
  pthread_mutex_lock(&g_sig_lock);
  snprintf(g_part_file, sizeof g_part_file, "%s", path ? path : "");
  pthread_mutex_unlock(&g_sig_lock);
}

bool cli_cancel_cb(void *user) {
  (void)user;
  return cli_signal() != 0;
}
