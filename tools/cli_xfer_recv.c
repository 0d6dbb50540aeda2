/*
 * cli_xfer_recv.c: the receiving side of the file framing described in
 * cli_xfer.c: write DIR/.NAME.part, verify size and SHA-256, then give it
 * its final name; remove the .part file on any failure.
 */
#include "cli_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct rx_file {
  int fd; /* -1: no file open */
  char name[XFER_NAME_MAX + 1];
  char part[PATH_MAX];
  char final[PATH_MAX];
  uint64_t size;
  uint8_t want[SHA256_DIGEST_SIZE];
  sha256_ctx hash;
  xfer_progress pr;
} rx_file;

typedef struct rx_state {
  qp_portal_t *p;
  const char *dir;
  const cli_xfer_cfg *cfg;
  rx_file f;
  bool done; /* 'Z' received */
} rx_state;

/* Remove the partial file of an unfinished transfer. */
static void rx_abort(rx_file *f) {
  if (f->fd < 0) {
    return;
  }
  close(f->fd);
  f->fd = -1;
  unlink(f->part);
  cli_signals_part_file(NULL);
  cli_errorf("removed the partial file %s (%" PRIu64 " of %" PRIu64
             " bytes received)",
             f->part, f->pr.done, f->size);
}

/* Answer the sender: type, a status byte unless negative, a reason. */
static int answer(rx_state *s, char type, int status, const char *reason) {
  char m[600];
  size_t n = 0;
  m[n++] = type;
  if (status >= 0) {
    m[n++] = (char)status;
  }
  size_t rl = strlen(reason);
  rl = rl > sizeof m - n ? sizeof m - n : rl;
  memcpy(m + n, reason, rl);
  int rc = cli_send(s->p, m, n + rl);
  return rc == QP_OK ? 0 : xfer_error("answering the sender", rc);
}

/* Tell the sender why (type 'X', or 'A' with status 0) and fail. */
static int refuse(rx_state *s, char type, const char *reason) {
  cli_errorf("%s", reason);
  answer(s, type, type == 'A' ? 0 : -1, reason);
  return CLI_EXIT_FAIL;
}

static int rx_open(rx_state *s) {
  rx_file *f = &s->f;
  char why[PATH_MAX + 128];
  snprintf(f->final, sizeof f->final, "%s/%s", s->dir, f->name);
  snprintf(f->part, sizeof f->part, "%s/.%s.part", s->dir, f->name);
  if (!s->cfg->force && access(f->final, F_OK) == 0) {
    snprintf(why, sizeof why,
             "%s already exists (the receiver may use --force to replace it)",
             f->final);
    return refuse(s, 'X', why);
  }
  f->fd = open(f->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd < 0) {
    snprintf(why, sizeof why, "cannot create %s: %s", f->part,
             strerror(errno));
    return refuse(s, 'X', why);
  }
  cli_signals_part_file(f->part);
  return 0;
}

static int rx_header(rx_state *s, const uint8_t *m, size_t len) {
  rx_file *f = &s->f;
  size_t nlen = len > XFER_HDR_FIXED ? len - XFER_HDR_FIXED : 0;
  if (nlen == 0 || m[1] != XFER_VERSION ||
      !cli_xfer_name_ok((const char *)m + XFER_HDR_FIXED, nlen)) {
    return refuse(s, 'X', "malformed file header (another version of "
                          "quic-portal, or a name that is not one path "
                          "component)");
  }
  memcpy(f->name, m + XFER_HDR_FIXED, nlen);
  f->name[nlen] = '\0';
  f->size = cli_get_be64(m + 2);
  memcpy(f->want, m + 10, SHA256_DIGEST_SIZE);
  int rc = rx_open(s);
  if (rc != 0) {
    return rc;
  }
  sha256_init(&f->hash);
  xfer_progress_start(&f->pr, f->name, f->size, s->cfg->progress);
  return answer(s, 'R', -1, "");
}

static int rx_data(rx_state *s, const uint8_t *m, size_t len) {
  rx_file *f = &s->f;
  const uint8_t *p = m + 1;
  size_t left = len - 1;
  if (f->pr.done + left > f->size) {
    return refuse(s, 'A', "the sender sent more bytes than it announced");
  }
  while (left > 0) {
    ssize_t w = write(f->fd, p, left);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w < 0) {
      char why[PATH_MAX + 64];
      snprintf(why, sizeof why, "writing %s: %s", f->part, strerror(errno));
      return refuse(s, 'A', why);
    }
    p += w;
    left -= (size_t)w;
  }
  sha256_update(&f->hash, m + 1, len - 1);
  f->pr.done += len - 1;
  xfer_progress_show(&f->pr, false);
  return 0;
}

/* Give the verified .part file its final name: link() never replaces an
 * existing file; --force replaces it with rename(). */
static int rx_commit(rx_state *s) {
  rx_file *f = &s->f;
  int rc = s->cfg->force ? rename(f->part, f->final)
                         : link(f->part, f->final);
  if (rc == 0 && !s->cfg->force) {
    unlink(f->part);
  }
  if (rc != 0) {
    char why[2 * PATH_MAX + 64];
    snprintf(why, sizeof why, "cannot name %s %s: %s", f->part, f->final,
             strerror(errno));
    return refuse(s, 'A', why);
  }
  return 0;
}

static int rx_end(rx_state *s, const uint8_t *m, size_t len) {
  rx_file *f = &s->f;
  uint8_t got[SHA256_DIGEST_SIZE];
  sha256_final(&f->hash, got);
  xfer_progress_show(&f->pr, true);
  if (len != 1 + SHA256_DIGEST_SIZE || f->pr.done != f->size) {
    return refuse(s, 'A', "the file ended early (size differs from the "
                          "header)");
  }
  if (memcmp(got, f->want, SHA256_DIGEST_SIZE) != 0 ||
      memcmp(got, m + 1, SHA256_DIGEST_SIZE) != 0) {
    return refuse(s, 'A', "SHA-256 mismatch: the received bytes differ from "
                          "the file the sender hashed");
  }
  bool synced = fsync(f->fd) == 0;
  bool closed = close(f->fd) == 0;
  if (!synced || !closed) {
    f->fd = -1;
    unlink(f->part);
    cli_signals_part_file(NULL);
    return refuse(s, 'A', "cannot write the received file to disk");
  }
  f->fd = -1;
  int rc = rx_commit(s);
  unlink(f->part); /* after a failed commit: the partial name goes too */
  cli_signals_part_file(NULL);
  if (rc == 0 && (rc = answer(s, 'A', 1, "")) == 0) {
    xfer_summary(s->cfg, "received", f->name, f->final, f->size, got,
                 cli_now() - f->pr.t0);
  }
  return rc;
}

/* One message from the sender; sets s->done at 'Z'. */
static int rx_message(rx_state *s, const uint8_t *m, size_t len) {
  bool in_file = s->f.fd >= 0;
  char type = len ? (char)m[0] : '\0';
  if (type == 'H' && !in_file) {
    return rx_header(s, m, len);
  }
  if (type == 'D' && in_file) {
    return rx_data(s, m, len);
  }
  if (type == 'E' && in_file) {
    return rx_end(s, m, len);
  }
  if (type == 'Z' && !in_file) {
    s->done = true;
    return 0;
  }
  cli_errorf("unexpected %zu-byte message from the sender (is it "
             "`quic-portal ... send`?)",
             len);
  return CLI_EXIT_FAIL;
}

/* After 'Z': wait (bounded) for the sender to close, so that our answers
 * were all delivered before this side closes. */
static void await_sender_close(qp_portal_t *p) {
  void *m = NULL;
  size_t len;
  while (cli_recv(p, &m, &len, XFER_FINAL_CLOSE_MS) == QP_OK) {
    qp_free(m);
  }
}

int cli_run_receive(qp_portal_t *p, const char *dir, const cli_xfer_cfg *cfg) {
  rx_state s = {.p = p, .dir = dir, .cfg = cfg, .f = {.fd = -1}};
  int rc = 0;
  while (rc == 0 && !s.done) {
    void *m = NULL;
    size_t len = 0;
    int qrc = cli_recv(p, &m, &len, -1);
    if (qrc != QP_OK) {
      rc = xfer_error(s.f.fd >= 0 ? "receiving a file" : "receiving", qrc);
      break;
    }
    rc = rx_message(&s, m, len);
    qp_free(m);
  }
  rx_abort(&s.f);
  if (rc == 0) {
    await_sender_close(p);
  }
  return rc;
}
