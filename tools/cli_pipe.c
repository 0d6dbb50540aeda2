/*
 * cli_pipe.c: the default mode of serve/connect, a netcat-like pipe. A
 * thread reads stdin and sends each chunk read as one message; the main
 * thread writes every message from the peer to stdout. End of file on stdin
 * closes the connection gracefully (everything sent is delivered first);
 * the peer closing ends this side after the messages that arrived before.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIPE_CHUNK (256 * 1024) /* largest stdin read = largest message */
/* How long close waits for the peer to acknowledge what we sent. */
#define PIPE_LINGER_MS 30000

typedef struct pipe_state {
  qp_portal_t *p;
  atomic_bool stop;   /* the main thread asks the reader to end */
  atomic_int result;  /* exit status of the stdin side */
} pipe_state;

/* Wait until stdin is readable or stop is set; true when readable. */
static bool stdin_ready(pipe_state *s) {
  struct pollfd pfd = {.fd = STDIN_FILENO, .events = POLLIN};
  while (!atomic_load(&s->stop) && !cli_signal()) {
    int n = poll(&pfd, 1, CLI_SLICE_MS);
    if (n > 0 || (n < 0 && errno != EINTR)) {
      return true; /* readable, hung up, or an error for read() to report */
    }
  }
  return false;
}

static void *stdin_thread(void *arg) {
  pipe_state *s = arg;
  char *buf = malloc(PIPE_CHUNK);
  int status = buf ? CLI_EXIT_OK : CLI_EXIT_FAIL;
  while (buf && stdin_ready(s)) {
    ssize_t n = read(STDIN_FILENO, buf, PIPE_CHUNK);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      cli_errorf("reading stdin: %s", strerror(errno));
      status = CLI_EXIT_FAIL;
      break;
    }
    if (n == 0) {
      /* End of input: deliver everything, then close. */
      int rc = qp_portal_close(s->p, PIPE_LINGER_MS);
      if (rc != QP_OK) {
        status = cli_qp_error("closing after end of input", rc);
      }
      break;
    }
    int rc = cli_send(s->p, buf, (size_t)n);
    if (rc != QP_OK) {
      /* The receiving side reports a closed or broken connection. */
      if (rc != QP_ERR_CLOSED && rc != QP_ERR_INTERRUPTED) {
        status = cli_qp_error("sending", rc);
      }
      break;
    }
  }
  free(buf);
  atomic_store(&s->result, status);
  return NULL;
}

static int write_all(const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(STDOUT_FILENO, p, len);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0) {
      cli_errorf("writing stdout: %s", strerror(errno));
      return CLI_EXIT_FAIL;
    }
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* Peer messages to stdout until the connection ends. */
static int receive_loop(pipe_state *s) {
  for (;;) {
    void *m = NULL;
    size_t len = 0;
    int rc = cli_recv(s->p, &m, &len, -1);
    if (rc == QP_ERR_CLOSED) {
      return 0;
    }
    if (rc == QP_ERR_INTERRUPTED && cli_signal()) {
      return cli_signal_exit();
    }
    if (rc != QP_OK) {
      return cli_qp_error("receiving", rc);
    }
    int wrc = write_all(m, len);
    qp_free(m);
    if (wrc != 0) {
      return wrc;
    }
  }
}

int cli_run_pipe(qp_portal_t *p) {
  pipe_state s = {.p = p};
  atomic_init(&s.stop, false);
  atomic_init(&s.result, 0);
  pthread_t t;
  if (pthread_create(&t, NULL, stdin_thread, &s) != 0) {
    cli_errorf("cannot start the stdin thread");
    return CLI_EXIT_FAIL;
  }
  int rc = receive_loop(&s);
  atomic_store(&s.stop, true);
  pthread_join(t, NULL);
  int in_rc = atomic_load(&s.result);
  if (cli_signal()) {
    return cli_signal_exit();
  }
  return rc != 0 ? rc : in_rc;
}
