/*
 * cli_xfer_recv.c: the receiving side of the file framing described in
 * cli_xfer.c: check every name of the list before any content moves, write
 * DIR/.NAME.part (created exclusively, mode 0600, never through a symlink),
 * verify size and SHA-256, then give it its final name; remove the .part
 * file on any failure.
 */
#include "cli_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A received file keeps mode 0600 while it is a .part file; when it gets
 * its name it takes the mode a new file of this user would have. */
#define XFER_PART_MODE 0600
#define XFER_FINAL_MODE 0666 /* before the umask, like open(2) */

typedef struct rx_entry {
  char name[XFER_NAME_MAX + 1];
  uint64_t size;
} rx_entry;

typedef struct rx_file {
  int fd; /* -1: no file open */
  const rx_entry *e;
  char part[PATH_MAX];
  char final[PATH_MAX];
  cli_hasher *hash;
  uint64_t synced; /* bytes whose writing to disk was started */
  xfer_progress pr;
} rx_file;

typedef struct rx_state {
  qp_portal_t *p;
  const char *dir;
  const cli_xfer_cfg *cfg;
  rx_entry *list;
  size_t count; /* files in the list */
  size_t next;  /* index of the next file to start */
  rx_file f;
  double t0; /* start of the current file (summary time) */
  bool done; /* 'Z' received */
} rx_state;

/* Remove the partial file of an unfinished transfer. */
static void rx_abort(rx_file *f) {
  if (f->fd < 0) {
    return;
  }
  close(f->fd);
  f->fd = -1;
  cli_hasher_finish(f->hash, NULL);
  f->hash = NULL;
  unlink(f->part);
  cli_signals_part_file(NULL);
  cli_errorf("removed the partial file %s (%" PRIu64 " of %" PRIu64
             " bytes received)",
             f->part, f->pr.done, f->e->size);
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

static void paths_of(const rx_state *s, const char *name, char *final,
                     char *part) {
  snprintf(final, PATH_MAX, "%s/%s", s->dir, name);
  snprintf(part, PATH_MAX, "%s/.%s.part", s->dir, name);
}

/* Parse the 'L' message into s->list. */
static int rx_parse_list(rx_state *s, const uint8_t *m, size_t len) {
  size_t n = len >= XFER_LIST_FIXED ? (size_t)m[1] << 24 | (size_t)m[2] << 16 |
                                          (size_t)m[3] << 8 | m[4]
                                    : 0;
  s->list = n > 0 && n <= XFER_MAX_FILES ? calloc(n, sizeof *s->list) : NULL;
  size_t o = XFER_LIST_FIXED;
  for (size_t i = 0; s->list && i < n; i++) {
    size_t nlen = o + XFER_ENTRY_FIXED <= len ? m[o + 8] : 0;
    if (nlen == 0 || o + XFER_ENTRY_FIXED + nlen > len ||
        !cli_xfer_name_ok((const char *)m + o + XFER_ENTRY_FIXED, nlen)) {
      break;
    }
    s->list[i].size = cli_get_be64(m + o);
    memcpy(s->list[i].name, m + o + XFER_ENTRY_FIXED, nlen);
    o += XFER_ENTRY_FIXED + nlen;
    s->count = i + 1;
  }
  if (!s->list || s->count != n || o != len) {
    return refuse(s, 'X',
                  "malformed list of files (another version of "
                  "quic-portal, or a name that is not one path "
                  "component)");
  }
  return 0;
}

/* Every refusal that names can cause, before any content moves. */
static int rx_check_names(rx_state *s) {
  char why[PATH_MAX + 160], final[PATH_MAX], part[PATH_MAX];
  struct stat st;
  if (access(s->dir, W_OK | X_OK) != 0) {
    snprintf(why, sizeof why, "cannot write to the folder %s: %s", s->dir,
             strerror(errno));
    return refuse(s, 'X', why);
  }
  for (size_t i = 0; i < s->count; i++) {
    const char *name = s->list[i].name;
    for (size_t j = 0; j < i; j++) {
      if (strcmp(s->list[j].name, name) == 0) {
        snprintf(why, sizeof why, "the name %s comes twice in the files sent",
                 name);
        return refuse(s, 'X', why);
      }
    }
    paths_of(s, name, final, part);
    if (!s->cfg->force && lstat(final, &st) == 0) {
      snprintf(why, sizeof why,
               "%s already exists (the receiver may use "
               "--force to replace it)",
               final);
      return refuse(s, 'X', why);
    }
    if (!s->cfg->force && lstat(part, &st) == 0) {
      snprintf(why, sizeof why,
               "%s already exists (left by an earlier "
               "transfer? the receiver may remove it or use "
               "--force)",
               part);
      return refuse(s, 'X', why);
    }
  }
  return answer(s, 'R', -1, "");
}

/* Start the next file of the list: create its .part file. */
static int rx_start(rx_state *s) {
  rx_file *f = &s->f;
  char why[PATH_MAX + 128];
  f->e = &s->list[s->next++];
  paths_of(s, f->e->name, f->final, f->part);
  if (s->cfg->force) {
    unlink(f->part); /* a symlink is removed, never followed */
  }
  f->fd = open(f->part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
               XFER_PART_MODE);
  if (f->fd < 0) {
    snprintf(why, sizeof why, "cannot create %s: %s", f->part, strerror(errno));
    return refuse(s, 'A', why);
  }
  cli_signals_part_file(f->part);
  f->synced = 0;
  if (!(f->hash = cli_hasher_start())) {
    return refuse(s, 'A', "the receiver cannot start its hashing thread");
  }
  xfer_progress_start(&f->pr, f->e->name, f->e->size, s->cfg->progress);
  return 0;
}

/* A 'D' message m (the receiver takes it: the hasher frees it). */
static int rx_data(rx_state *s, uint8_t *m, size_t len) {
  rx_file *f = &s->f;
  const uint8_t *p = m + 1;
  size_t left = len - 1;
  if (f->pr.done + left > f->e->size) {
    qp_free(m);
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
      qp_free(m);
      return refuse(s, 'A', why);
    }
    p += w;
    left -= (size_t)w;
  }
  cli_hasher_push(f->hash, m + 1, len - 1, qp_free, m);
  f->pr.done += len - 1;
  if (f->pr.done - f->synced >= XFER_WRITEBACK) {
    /* Start writing this range to disk now, without waiting for it. */
    sync_file_range(f->fd, (off_t)f->synced, (off_t)(f->pr.done - f->synced),
                    SYNC_FILE_RANGE_WRITE);
    f->synced = f->pr.done;
  }
  xfer_progress_show(&f->pr, false);
  return 0;
}

/* The mode of a new file of this user: 0666 without the umask (read from
 * /proc, since umask(2) cannot read it without changing it). */
static mode_t final_mode(void) {
  unsigned mask = 022;
  FILE *st = fopen("/proc/self/status", "r");
  char line[128];
  while (st && fgets(line, sizeof line, st)) {
    if (sscanf(line, "Umask: %o", &mask) == 1) {
      break;
    }
  }
  if (st) {
    fclose(st);
  }
  return (mode_t)(XFER_FINAL_MODE & ~mask);
}

/* Give the verified .part file its final name: link() never replaces an
 * existing file; --force replaces it with rename(). */
static int rx_commit(rx_state *s) {
  rx_file *f = &s->f;
  int rc = s->cfg->force ? rename(f->part, f->final) : link(f->part, f->final);
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
  uint8_t got[CLI_SHA256_SIZE];
  cli_hasher_finish(f->hash, got);
  f->hash = NULL;
  xfer_progress_show(&f->pr, true);
  if (len != 1 + CLI_SHA256_SIZE || f->pr.done != f->e->size) {
    return refuse(s, 'A',
                  "the file ended early (size differs from the "
                  "list)");
  }
  if (memcmp(got, m + 1, CLI_SHA256_SIZE) != 0) {
    return refuse(s, 'A',
                  "SHA-256 mismatch: the received bytes differ from "
                  "the bytes the sender read");
  }
  bool written = fchmod(f->fd, final_mode()) == 0 && fsync(f->fd) == 0;
  written = close(f->fd) == 0 && written;
  f->fd = -1;
  int rc = written ? rx_commit(s)
                   : refuse(s, 'A', "cannot write the received file to disk");
  unlink(f->part); /* after link, or a failure: the partial name goes */
  cli_signals_part_file(NULL);
  if (rc == 0 && (rc = answer(s, 'A', 1, "")) == 0) {
    xfer_summary(s->cfg, "received", f->e->name, f->final, f->e->size, got,
                 cli_now() - s->t0);
    s->t0 = cli_now();
  }
  return rc;
}

/* One message from the sender after the list; sets s->done at 'Z'. Takes
 * m: frees it, or hands a 'D' to the hasher. */
static int rx_message(rx_state *s, uint8_t *m, size_t len) {
  bool in_file = s->f.fd >= 0;
  char type = len ? (char)m[0] : '\0';
  int rc = 0;
  if ((type == 'D' || type == 'E') && !in_file && s->next < s->count) {
    rc = rx_start(s); /* the first content of the next file */
    in_file = rc == 0;
  }
  if (rc == 0 && type == 'D' && in_file) {
    return rx_data(s, m, len);
  }
  if (rc == 0 && type == 'E' && in_file) {
    rc = rx_end(s, m, len);
  } else if (rc == 0 && type == 'Z' && !in_file && s->next == s->count) {
    s->done = true;
  } else if (rc == 0) {
    cli_errorf("unexpected %zu-byte message from the sender (is it "
               "`quic-portal ... send` of this version?)",
               len);
    rc = CLI_EXIT_FAIL;
  }
  qp_free(m);
  return rc;
}

static int rx_list(rx_state *s) {
  void *m = NULL;
  size_t len = 0;
  int qrc = cli_recv(s->p, &m, &len, -1);
  if (qrc != QP_OK) {
    return xfer_error("waiting for the list of files", qrc);
  }
  const uint8_t *b = m;
  int rc = len >= 1 && b[0] == 'L' ? rx_parse_list(s, b, len)
                                   : refuse(s, 'X',
                                            "expected the list of "
                                            "files first");
  qp_free(m);
  return rc == 0 ? rx_check_names(s) : rc;
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
  int rc = xfer_hello(p, 'r');
  s.t0 = cli_now();
  if (rc == 0) {
    rc = rx_list(&s);
  }
  while (rc == 0 && !s.done) {
    void *m = NULL;
    size_t len = 0;
    int qrc = cli_recv(p, &m, &len, -1);
    if (qrc != QP_OK) {
      rc = xfer_error(s.f.fd >= 0 ? "receiving a file" : "receiving", qrc);
      break;
    }
    rc = rx_message(&s, m, len);
  }
  rx_abort(&s.f);
  free(s.list);
  if (rc == 0) {
    await_sender_close(p);
  }
  return rc;
}
