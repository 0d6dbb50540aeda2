/*
 * cli_xfer.c: `serve|connect ... send FILE...` and `... receive [DIR]`.
 *
 * A small framing on top of whole messages; the first byte of each message
 * says what it is (integers are big-endian):
 *
 *   both sides, first
 *     "QPXF" version(1)=2 role(1)  's' send, 'r' receive (two of a kind
 *                                  fail at once, each with a hint)
 *   sender -> receiver
 *     'L' count(4) {size(8) name_len(1) name}...   the files, in order
 *     'D' bytes (at most XFER_CHUNK)              content of the current file
 *     'E' sha256(32) of the bytes sent            the current file ends
 *     'Z' count(4)                                no more files
 *   receiver -> sender
 *     'R'                      after 'L': every name accepted, send
 *     'X' reason               after 'L': refused (the receiver exits 1)
 *     'A' ok(1) reason         after 'E': verified and renamed, or not;
 *                              'A' 0 may also come during a file (a write
 *                              failed, e.g. the disk is full)
 *
 * The sender streams from the first byte and hashes as it reads (no pass
 * over the file before); the receiver hashes what it writes and compares
 * with 'E'. Every refusal that depends on names (an existing file or
 * .part file, a name twice, a folder this user cannot write) is decided on
 * 'L', before any content moves. The receiver writes DIR/.NAME.part and
 * names it DIR/NAME only after size and SHA-256 matched.
 */
#include "cli_xfer.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wchar.h>

#define PROGRESS_INTERVAL_S 0.1
#define PROGRESS_NAME_COLS 24 /* columns of the name in the bar */

/* ---- shared with the receiver ----------------------------------------------
 */

int xfer_error(const char *what, int rc) {
  if (rc == QP_ERR_INTERRUPTED && cli_signal()) {
    return cli_signal_exit();
  }
  if (rc == QP_ERR_CLOSED) {
    cli_errorf("%s: the peer closed the connection", what);
    return CLI_EXIT_FAIL;
  }
  return cli_qp_error(what, rc);
}

static const char *role_word(char role) {
  return role == 's' ? "send FILE..." : "receive [DIR]";
}

int xfer_hello(qp_portal_t *p, char role) {
  uint8_t h[XFER_HELLO_SIZE] = {'Q', 'P',          'X',
                                'F', XFER_VERSION, (uint8_t)role};
  int rc = cli_send(p, h, sizeof h);
  if (rc != QP_OK) {
    return xfer_error("greeting the peer", rc);
  }
  void *m = NULL;
  size_t len = 0;
  rc = cli_recv(p, &m, &len, XFER_HELLO_MS);
  if (rc == QP_ERR_TIMEOUT) {
    cli_errorf("the peer sent no file-transfer greeting within %d s: it must "
               "run `quic-portal serve|connect ... %s` (this version), not "
               "the pipe",
               XFER_HELLO_MS / 1000, role_word(role == 's' ? 'r' : 's'));
    return CLI_EXIT_FAIL;
  }
  if (rc != QP_OK) {
    return xfer_error("waiting for the peer's greeting", rc);
  }
  const uint8_t *b = m;
  int code = 0;
  if (len != XFER_HELLO_SIZE || memcmp(b, "QPXF", 4) != 0 ||
      b[4] != XFER_VERSION) {
    cli_errorf("the peer is not a file transfer of this version (its first "
               "message has %zu bytes): it must run `quic-portal "
               "serve|connect ... %s`",
               len, role_word(role == 's' ? 'r' : 's'));
    code = CLI_EXIT_FAIL;
  } else if (b[5] == (uint8_t)role) {
    cli_errorf("the peer also runs `%s`: one side must run `send FILE...`, "
               "the other `receive [DIR]`",
               role_word(role));
    code = CLI_EXIT_FAIL;
  }
  qp_free(m);
  return code;
}

/* Write name into out so that it fills exactly cols terminal columns
 * (wide characters count 2), cut or padded with spaces. */
static void name_cols(const char *name, char *out, size_t outlen, int cols) {
  mbstate_t st;
  memset(&st, 0, sizeof st);
  size_t o = 0;
  int used = 0;
  const char *p = name;
  while (*p && o + MB_CUR_MAX + (size_t)cols < outlen) {
    wchar_t wc;
    size_t n = mbrtowc(&wc, p, strlen(p), &st);
    int w = 1;
    if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
      memset(&st, 0, sizeof st);
      n = 1;
      wc = L'?'; /* not text in this locale: one column per byte */
    } else {
      w = wcwidth(wc);
      w = w < 0 ? 1 : w;
    }
    if (used + w > cols) {
      break;
    }
    if (wc == L'?' && (unsigned char)*p >= 0x80) {
      out[o++] = '?';
    } else {
      memcpy(out + o, p, n);
      o += n;
    }
    used += w;
    p += n;
  }
  while (used < cols && o + 1 < outlen) {
    out[o++] = ' ';
    used++;
  }
  out[o] = '\0';
}

void xfer_progress_start(xfer_progress *pr, const char *name, uint64_t total,
                         bool on) {
  *pr =
      (xfer_progress){.name = name, .total = total, .t0 = cli_now(), .on = on};
  xfer_progress_show(pr, false);
}

void xfer_progress_show(xfer_progress *pr, bool final) {
  double now = cli_now();
  if (!pr->on ||
      (!final && pr->last > 0 && now - pr->last < PROGRESS_INTERVAL_S)) {
    return;
  }
  pr->last = now;
  double el = now - pr->t0;
  double rate = el > 0 ? (double)pr->done / el : 0;
  double left = rate > 0 ? (double)(pr->total - pr->done) / rate : 0;
  int pct = pr->total ? (int)(pr->done * 100 / pr->total) : 100;
  char name[PROGRESS_NAME_COLS * 4 + 8];
  name_cols(pr->name, name, sizeof name, PROGRESS_NAME_COLS);
  fprintf(stderr, "\r%s %9.1f / %.1f MiB %3d%% %8.1f MiB/s ETA %d:%02d ", name,
          (double)pr->done / 1048576.0, (double)pr->total / 1048576.0, pct,
          rate / 1048576.0, (int)left / 60, (int)left % 60);
  if (final) {
    fputc('\n', stderr);
  }
  fflush(stderr);
  cli_line_open(!final); /* an error now starts on a new line */
}

void xfer_summary(const cli_xfer_cfg *cfg, const char *event, const char *name,
                  const char *path, uint64_t bytes, const uint8_t *digest,
                  double secs) {
  char hex[2 * CLI_SHA256_SIZE + 1];
  cli_hex(digest, CLI_SHA256_SIZE, hex);
  double mibs = secs > 0 ? (double)bytes / 1048576.0 / secs : 0;
  if (cfg->json) {
    char jname[1024] = "", jpath[4200] = "null";
    cli_json_str(jname, sizeof jname, name);
    if (path) {
      jpath[0] = '\0';
      cli_json_str(jpath, sizeof jpath, path);
    }
    printf("{\"event\":\"%s\",\"name\":%s,\"path\":%s,\"bytes\":%" PRIu64
           ",\"sha256\":\"%s\",\"seconds\":%.3f,\"mib_per_s\":%.1f,"
           "\"verified\":true}\n",
           event, jname, jpath, bytes, hex, secs, mibs);
    fflush(stdout);
  } else {
    fprintf(stderr,
            "quic-portal: %s %s: %" PRIu64 " bytes in %.2f s (%.1f MiB/s), "
            "SHA-256 %s verified\n",
            event, path ? path : name, bytes, secs, mibs, hex);
  }
}

bool cli_xfer_name_ok(const char *name, size_t len) {
  if (len == 0 || len > XFER_NAME_MAX) {
    return false;
  }
  if ((len == 1 && name[0] == '.') ||
      (len == 2 && name[0] == '.' && name[1] == '.')) {
    return false;
  }
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '/' || c < 0x20 || c == 0x7f) {
      return false;
    }
  }
  return true;
}

const char *cli_xfer_base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* ---- sender
 * ------------------------------------------------------------------ */

typedef struct tx_file {
  const char *path;
  const char *name;
  int fd;
  uint64_t size;
} tx_file;

/* Print what a receiver's 'X' or 'A' says; other messages are a protocol
 * error. Returns 0 for 'R' (want 'R') or 'A' ok (want 'A'). */
static int receiver_said(const uint8_t *b, size_t len, char want,
                         const char *name) {
  if (len >= 1 && b[0] == 'R' && want == 'R') {
    return 0;
  }
  if (len >= 2 && b[0] == 'A' && b[1] == 1 && want == 'A') {
    return 0;
  }
  if (len >= 1 && (b[0] == 'X' || (b[0] == 'A' && len >= 2 && b[1] == 0))) {
    size_t skip = b[0] == 'X' ? 1 : 2;
    cli_errorf("the receiver refused %s: %.*s", name, (int)(len - skip),
               (const char *)b + skip);
  } else {
    cli_errorf("the receiver answered %s with an unexpected %zu-byte message",
               name, len);
  }
  return CLI_EXIT_FAIL;
}

/* Wait for the receiver's answer of type want ('R' or 'A'). */
static int await_answer(qp_portal_t *p, char want, const char *name) {
  void *m = NULL;
  size_t len = 0;
  int rc = cli_recv(p, &m, &len, -1);
  if (rc != QP_OK) {
    return xfer_error("waiting for the receiver", rc);
  }
  int code = receiver_said(m, len, want, name);
  qp_free(m);
  return code;
}

/* During the content: the receiver only speaks to stop us (a write failed
 * there, e.g. its disk is full). 0: nothing said. wait_ms > 0 after a
 * failed send, for its reason that may still be on its way. */
static int receiver_stopped(qp_portal_t *p, const char *name, int wait_ms) {
  void *m = NULL;
  size_t len = 0;
  if (qp_portal_recv(p, &m, &len, wait_ms) != QP_OK) {
    return 0;
  }
  int code = receiver_said(m, len, '-', name);
  qp_free(m);
  return code;
}

static int send_list(qp_portal_t *p, const tx_file *f, size_t n) {
  size_t total = XFER_LIST_FIXED;
  for (size_t i = 0; i < n; i++) {
    total += XFER_ENTRY_FIXED + strlen(f[i].name);
  }
  uint8_t *m = malloc(total);
  if (!m) {
    cli_errorf("out of memory");
    return CLI_EXIT_FAIL;
  }
  size_t o = 0;
  m[o++] = 'L';
  for (int s = 24; s >= 0; s -= 8) {
    m[o++] = (uint8_t)(n >> s);
  }
  for (size_t i = 0; i < n; i++) {
    size_t nlen = strlen(f[i].name);
    cli_put_be64(m + o, f[i].size);
    m[o + 8] = (uint8_t)nlen;
    memcpy(m + o + XFER_ENTRY_FIXED, f[i].name, nlen);
    o += XFER_ENTRY_FIXED + nlen;
  }
  int rc = cli_send(p, m, total);
  free(m);
  return rc == QP_OK ? 0 : xfer_error("sending the list of files", rc);
}

/* A failed send of the content: the receiver's reason if it gave one. */
static int content_send_failed(qp_portal_t *p, const char *name, int rc) {
  if (rc == QP_ERR_CLOSED && receiver_stopped(p, name, CLI_SLICE_MS) != 0) {
    return CLI_EXIT_FAIL;
  }
  return xfer_error("sending", rc);
}

/* Stream the content of f; the hasher hashes each chunk while the next
 * is read and sent. bufs: XFER_BUFS buffers of 1 + XFER_CHUNK bytes, each
 * reused only once the hasher is done with it. */
static int send_content(qp_portal_t *p, const tx_file *f, uint8_t *const *bufs,
                        xfer_progress *pr, uint8_t *digest) {
  cli_hasher *h = cli_hasher_start();
  if (!h) {
    cli_errorf("cannot start the hashing thread");
    return CLI_EXIT_FAIL;
  }
  int rc = 0;
  for (uint64_t k = 0; rc == 0 && pr->done < f->size;) {
    uint8_t *buf = bufs[k % XFER_BUFS];
    if (k >= XFER_BUFS) {
      cli_hasher_wait(h, k - XFER_BUFS + 1);
    }
    uint64_t want = f->size - pr->done;
    ssize_t n = read(f->fd, buf + 1, want < XFER_CHUNK ? want : XFER_CHUNK);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      cli_errorf("%s %s after %" PRIu64 " of its %" PRIu64 " bytes%s%s",
                 n < 0 ? "reading" : "unexpected end of", f->path, pr->done,
                 f->size, n < 0 ? ": " : " (it shrank while being sent)",
                 n < 0 ? strerror(errno) : "");
      rc = CLI_EXIT_FAIL; /* the receiver sees the size differ */
      break;
    }
    cli_hasher_push(h, buf + 1, (size_t)n, NULL, NULL);
    k++;
    buf[0] = 'D';
    int qrc = cli_send(p, buf, (size_t)n + 1);
    if (qrc != QP_OK) {
      rc = content_send_failed(p, f->name, qrc);
      break;
    }
    pr->done += (uint64_t)n;
    xfer_progress_show(pr, false);
    rc = receiver_stopped(p, f->name, 0);
  }
  cli_hasher_finish(h, rc == 0 ? digest : NULL);
  return rc;
}

static int send_one(qp_portal_t *p, const tx_file *f, uint8_t *const *bufs,
                    const cli_xfer_cfg *cfg, double t0) {
  uint8_t end[1 + CLI_SHA256_SIZE] = {'E'};
  xfer_progress pr;
  xfer_progress_start(&pr, f->name, f->size, cfg->progress);
  pr.t0 = t0;
  int rc = send_content(p, f, bufs, &pr, end + 1);
  if (rc != 0) {
    return rc;
  }
  xfer_progress_show(&pr, true);
  int qrc = cli_send(p, end, sizeof end);
  if (qrc != QP_OK) {
    return content_send_failed(p, f->name, qrc);
  }
  rc = await_answer(p, 'A', f->name);
  if (rc == 0) {
    xfer_summary(cfg, "sent", f->name, NULL, pr.done, end + 1, cli_now() - t0);
  }
  return rc;
}

/* Open every file before anything is sent: a file that vanished since
 * the command line was checked fails here. */
static int open_all(tx_file *f, const char *const *files, size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    f[i].path = files[i];
    f[i].name = cli_xfer_base_name(files[i]);
    f[i].fd = open(files[i], O_RDONLY | O_CLOEXEC);
    if (f[i].fd < 0 || fstat(f[i].fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      cli_errorf("cannot read %s: %s", files[i],
                 f[i].fd < 0 ? strerror(errno) : "not a regular file");
      return CLI_EXIT_FAIL;
    }
    f[i].size = (uint64_t)st.st_size;
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(f[i].fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
  }
  return 0;
}

int cli_run_send(qp_portal_t *p, const char *const *files, size_t n,
                 const cli_xfer_cfg *cfg) {
  uint8_t *mem = malloc(XFER_BUFS * (XFER_CHUNK + 1));
  uint8_t *bufs[XFER_BUFS];
  for (size_t i = 0; mem && i < XFER_BUFS; i++) {
    bufs[i] = mem + i * (XFER_CHUNK + 1);
  }
  tx_file *f = calloc(n, sizeof *f);
  int rc = mem && f ? 0 : CLI_EXIT_FAIL;
  for (size_t i = 0; f && i < n; i++) {
    f[i].fd = -1;
  }
  if (rc != 0) {
    cli_errorf("out of memory");
  }
  if (rc == 0) {
    rc = open_all(f, files, n);
  }
  double t0 = cli_now(); /* each summary: from its start to verified */
  if (rc == 0) {
    rc = xfer_hello(p, 's');
  }
  if (rc == 0) {
    rc = send_list(p, f, n);
  }
  if (rc == 0) {
    rc = await_answer(p, 'R', n == 1 ? f[0].name : "the files");
  }
  for (size_t i = 0; rc == 0 && i < n; i++) {
    rc = send_one(p, &f[i], bufs, cfg, t0);
    t0 = cli_now();
  }
  if (rc == 0) {
    uint8_t z[5] = {'Z', (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                    (uint8_t)(n >> 8), (uint8_t)n};
    int qrc = cli_send(p, z, sizeof z);
    rc = qrc == QP_OK ? 0 : xfer_error("sending the final marker", qrc);
  }
  for (size_t i = 0; f && i < n; i++) {
    if (f[i].fd >= 0) {
      close(f[i].fd);
    }
  }
  free(f);
  free(mem);
  return rc;
}
