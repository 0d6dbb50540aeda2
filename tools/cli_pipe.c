/*
 * cli_pipe.c: the default mode of serve/connect, a netcat-like pipe with
 * half-close (like `nc -N` or socat): each direction ends on its own, and
 * the exit status says whether every byte reached the other program.
 *
 * Framing (docs/cli.md, "Pipe protocol"). Each stdin chunk read is one
 * message (never empty). End of input sends an empty message: the
 * end-of-stream marker. After its marker a side sends only control
 * messages (integers big-endian):
 *   'A' consumed(8)          every byte of your stream up to your marker
 *                            was written to my stdout (consumed of them)
 *   'S' consumed(8) reason   my stdout failed after consumed bytes of your
 *                            stream (reason: errno text); I read no more
 * A side sends 'A' once it has both sent its own marker and written the
 * peer's stream up to the peer's marker, and exits 0 when the peer's 'A'
 * counts every byte it read from stdin.
 *
 * Threads: one reads stdin and sends; the main thread receives and writes
 * stdout. Whichever of them completes the second half of "own marker sent,
 * peer's marker received" sends the 'A' (under the lock).
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIPE_CHUNK (256 * 1024) /* largest stdin read = largest message */
#define PIPE_CTRL_FIXED 9       /* type(1) + consumed(8) */
#define PIPE_REASON_MAX 200     /* bytes of errno text in an 'S' message */
/* After a stdin read error: long enough to deliver what was queued. */
#define PIPE_ABORT_LINGER_MS 2000

typedef struct pipe_state {
  qp_portal_t *p;
  atomic_bool stop;      /* the main thread asks the reader to end */
  atomic_int in_status;  /* exit status of the stdin side */
  _Atomic uint64_t sent; /* bytes read from stdin and sent */
  pthread_mutex_t lock;  /* guards the three flags and the 'A' send */
  bool own_eos;          /* our end-of-stream marker was sent */
  bool peer_eos;         /* the peer's marker arrived, all before written */
  bool ack_sent;
  int ack_rc;        /* result of sending the 'A' */
  uint64_t consumed; /* bytes of the peer's stream written to stdout */
} pipe_state;

/* Send one message, waiting in slices so that a stop request or a signal
 * ends the wait. */
static int pipe_send(pipe_state *s, const void *buf, size_t len) {
  for (;;) {
    if (cli_signal()) {
      return QP_ERR_INTERRUPTED;
    }
    int rc = qp_portal_send(s->p, buf, len, CLI_SLICE_MS);
    if (rc != QP_ERR_TIMEOUT) {
      return rc;
    }
    if (atomic_load(&s->stop)) {
      return QP_ERR_INTERRUPTED;
    }
  }
}

static int send_ctrl(pipe_state *s, char type, uint64_t consumed,
                     const char *reason) {
  uint8_t m[PIPE_CTRL_FIXED + PIPE_REASON_MAX];
  size_t rl = reason ? strlen(reason) : 0;
  rl = rl > PIPE_REASON_MAX ? PIPE_REASON_MAX : rl;
  m[0] = (uint8_t)type;
  cli_put_be64(m + 1, consumed);
  memcpy(m + PIPE_CTRL_FIXED, reason ? reason : "", rl);
  return pipe_send(s, m, PIPE_CTRL_FIXED + rl);
}

/* With s->lock held: send 'A' once both markers are through. */
static int maybe_ack(pipe_state *s) {
  if (!s->own_eos || !s->peer_eos || s->ack_sent) {
    return QP_OK;
  }
  s->ack_sent = true;
  s->ack_rc = send_ctrl(s, 'A', s->consumed, NULL);
  return s->ack_rc;
}

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

/* End of input: the marker, then the 'A' if the peer's stream is done. */
static int send_eos(pipe_state *s) {
  int rc = pipe_send(s, "", 0);
  pthread_mutex_lock(&s->lock);
  if (rc == QP_OK) {
    s->own_eos = true;
    rc = maybe_ack(s);
  }
  pthread_mutex_unlock(&s->lock);
  return rc;
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
      /* The peer must not take a cut stream for a whole one: close
       * without the marker, so that it fails too. */
      cli_errorf("reading stdin: %s", strerror(errno));
      status = CLI_EXIT_FAIL;
      qp_portal_close(s->p, PIPE_ABORT_LINGER_MS);
      break;
    }
    int rc = n == 0 ? send_eos(s) : pipe_send(s, buf, (size_t)n);
    /* A failed send is reported by the main thread, which sees the
     * connection end too. */
    if (rc != QP_OK || n == 0) {
      break;
    }
    atomic_fetch_add(&s->sent, (uint64_t)n);
  }
  free(buf);
  atomic_store(&s->in_status, status);
  return NULL;
}

/* Write to stdout; 0, or the errno of the failed write. */
static int write_all(const void *data, size_t len, uint64_t *written) {
  const char *p = data;
  while (len > 0) {
    ssize_t w = write(STDOUT_FILENO, p, len);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0) {
      return errno;
    }
    p += w;
    len -= (size_t)w;
    *written += (uint64_t)w;
  }
  return 0;
}

/* Stop the stdin thread and wait for it. */
static void stop_reader(pipe_state *s, pthread_t t, bool *joined) {
  if (!*joined) {
    atomic_store(&s->stop, true);
    pthread_join(t, NULL);
    *joined = true;
  }
}

/* Our stdout failed: tell the peer how much of its stream got out, so
 * that it fails naming the rest, then fail. */
static int output_failed(pipe_state *s, int err) {
  cli_errorf("writing stdout: %s after %" PRIu64 " bytes from the peer; "
             "telling the peer",
             strerror(err), s->consumed);
  int rc = QP_OK;
  if (!s->own_eos) {
    rc = pipe_send(s, "", 0);
    s->own_eos = rc == QP_OK;
  }
  if (rc == QP_OK) {
    rc = send_ctrl(s, 'S', s->consumed, strerror(err));
  }
  if (rc != QP_OK && rc != QP_ERR_INTERRUPTED) {
    cli_qp_error("telling the peer", rc);
  }
  return CLI_EXIT_FAIL;
}

/* A control message of the peer (after its marker). 0: its 'A' counted
 * every byte we sent; else an exit status. */
static int peer_ctrl(pipe_state *s, const uint8_t *m, size_t len) {
  uint64_t sent = atomic_load(&s->sent);
  if (len < PIPE_CTRL_FIXED || (m[0] != 'A' && m[0] != 'S')) {
    cli_errorf("unexpected %zu-byte message after the peer's end of stream "
               "(is the peer `quic-portal serve|connect` in pipe mode?)",
               len);
    return CLI_EXIT_FAIL;
  }
  uint64_t n = cli_get_be64(m + 1);
  if (m[0] == 'S') {
    cli_errorf("the peer's output failed (%.*s): it consumed %" PRIu64
               " of the %" PRIu64 " bytes sent, %" PRIu64 " not consumed",
               (int)(len - PIPE_CTRL_FIXED), (const char *)m + PIPE_CTRL_FIXED,
               n, sent, sent > n ? sent - n : 0);
    return CLI_EXIT_FAIL;
  }
  if (n != sent) {
    cli_errorf("the peer consumed %" PRIu64 " of the %" PRIu64 " bytes sent", n,
               sent);
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* The connection ended (or failed) before the exchange was complete. */
static int ended_early(const pipe_state *s, int rc) {
  if (rc == QP_ERR_INTERRUPTED && cli_signal()) {
    return cli_signal_exit();
  }
  const char *what = qp_err_name(rc);
  uint64_t sent = atomic_load(&s->sent);
  /* The failed call ran on this thread: its reason (e.g. a message over
   * --max-message-size, with both numbers) is the last error. */
  const char *why = qp_last_error();
  if (!s->peer_eos) {
    cli_errorf("the connection ended (%s) before the peer's end of stream: "
               "%" PRIu64 " bytes from the peer written, maybe not all; "
               "%" PRIu64 " bytes sent, not acknowledged%s%s",
               what, s->consumed, sent, why[0] ? ": " : "", why);
  } else {
    cli_errorf("the connection ended (%s) before the peer acknowledged the "
               "%" PRIu64 " bytes sent%s%s",
               what, sent, why[0] ? ": " : "", why);
  }
  return CLI_EXIT_FAIL;
}

/* Peer messages to stdout until the peer's 'A' or 'S', or the end. */
static int receive_loop(pipe_state *s, pthread_t t, bool *joined) {
  for (;;) {
    void *m = NULL;
    size_t len = 0;
    int rc = cli_recv(s->p, &m, &len, -1);
    if (rc != QP_OK) {
      return ended_early(s, rc);
    }
    int code = -1;
    if (s->peer_eos) {
      /* The stdin thread sets own_eos after its marker went out; the peer
       * may answer it before: join so that our 'A' is surely sent. */
      if (len >= 1 && ((const uint8_t *)m)[0] == 'A') {
        stop_reader(s, t, joined);
      }
      code = peer_ctrl(s, m, len);
    } else if (len == 0) {
      pthread_mutex_lock(&s->lock);
      s->peer_eos = true;
      rc = maybe_ack(s);
      pthread_mutex_unlock(&s->lock);
      code = rc == QP_OK ? -1 : ended_early(s, rc);
    } else {
      int err = write_all(m, len, &s->consumed);
      if (err != 0) {
        stop_reader(s, t, joined);
        code = output_failed(s, err);
      }
    }
    qp_free(m);
    if (code >= 0) {
      return code;
    }
  }
}

int cli_run_pipe(qp_portal_t *p) {
  pipe_state s = {.p = p};
  atomic_init(&s.stop, false);
  atomic_init(&s.in_status, 0);
  atomic_init(&s.sent, 0);
  pthread_mutex_init(&s.lock, NULL);
  pthread_t t;
  if (pthread_create(&t, NULL, stdin_thread, &s) != 0) {
    cli_errorf("cannot start the stdin thread");
    return CLI_EXIT_FAIL;
  }
  bool joined = false;
  int rc = receive_loop(&s, t, &joined);
  stop_reader(&s, t, &joined);
  pthread_mutex_destroy(&s.lock);
  if (cli_signal()) {
    return cli_signal_exit();
  }
  int in_rc = atomic_load(&s.in_status);
  if (rc == 0 && in_rc == 0 && (!s.ack_sent || s.ack_rc != QP_OK)) {
    cli_errorf("the acknowledgment of the peer's stream could not be sent");
    rc = CLI_EXIT_FAIL;
  }
  return rc != 0 ? rc : in_rc;
}
