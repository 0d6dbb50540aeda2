/*
 * cli_xfer.c: `serve|connect ... send FILE...` and `... receive [DIR]`.
 *
 * A small framing on top of whole messages; the first byte of each message
 * says what it is (integers are big-endian):
 *
 *   sender -> receiver
 *     'H' version(1)=1 size(8) sha256(32) name(1-249 bytes)  a file begins
 *     'D' bytes (at most XFER_CHUNK)                          its content
 *     'E' sha256(32) of the bytes actually sent               it ends
 *     'Z' files(4)                                            no more files
 *   receiver -> sender
 *     'R'                      after 'H': ready, send the content
 *     'X' reason               after 'H': refused (the receiver exits 1)
 *     'A' ok(1) reason         after 'E': verified and renamed, or not
 *
 * The receiver writes DIR/.NAME.part, checks size and SHA-256 against the
 * header and the end marker, and only then links it to DIR/NAME (never
 * replacing an existing file unless --force). Any failure or interruption
 * removes the .part file, so no partial file ever carries the final name.
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

#define PROGRESS_INTERVAL_S 0.1

/* ---- shared with the receiver ---------------------------------------------- */

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

void xfer_progress_start(xfer_progress *pr, const char *name, uint64_t total,
                         bool on) {
  *pr = (xfer_progress){.name = name, .total = total, .t0 = cli_now(), .on = on};
}

void xfer_progress_show(xfer_progress *pr, bool final) {
  double now = cli_now();
  if (!pr->on || (!final && now - pr->last < PROGRESS_INTERVAL_S)) {
    return;
  }
  pr->last = now;
  double el = now - pr->t0;
  double rate = el > 0 ? (double)pr->done / el : 0;
  double left = rate > 0 ? (double)(pr->total - pr->done) / rate : 0;
  int pct = pr->total ? (int)(pr->done * 100 / pr->total) : 100;
  fprintf(stderr, "\r%-24.24s %9.1f / %.1f MiB %3d%% %8.1f MiB/s ETA %d:%02d ",
          pr->name, (double)pr->done / 1048576.0, (double)pr->total / 1048576.0,
          pct, rate / 1048576.0, (int)left / 60, (int)left % 60);
  if (final) {
    fputc('\n', stderr);
  }
  fflush(stderr);
}

void xfer_summary(const cli_xfer_cfg *cfg, const char *event, const char *name,
                  const char *path, uint64_t bytes, const uint8_t *digest,
                  double secs) {
  char hex[2 * SHA256_DIGEST_SIZE + 1];
  cli_hex(digest, SHA256_DIGEST_SIZE, hex);
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

/* ---- sender ------------------------------------------------------------------ */

static int hash_fd(int fd, const char *path, uint8_t *buf, uint8_t *digest) {
  sha256_ctx h;
  sha256_init(&h);
  ssize_t n;
  while ((n = read(fd, buf, XFER_CHUNK)) > 0) {
    sha256_update(&h, buf, (size_t)n);
  }
  if (n < 0 || lseek(fd, 0, SEEK_SET) != 0) {
    cli_errorf("reading %s: %s", path, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  sha256_final(&h, digest);
  return 0;
}

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

/* Wait for the receiver's answer of type want ('R' or 'A'). */
static int await_answer(qp_portal_t *p, char want, const char *name) {
  void *m = NULL;
  size_t len = 0;
  int rc = cli_recv(p, &m, &len, -1);
  if (rc != QP_OK) {
    return xfer_error("waiting for the receiver", rc);
  }
  const char *b = m;
  int code = CLI_EXIT_FAIL;
  if (len >= 1 && b[0] == 'R' && want == 'R') {
    code = 0;
  } else if (len >= 2 && b[0] == 'A' && want == 'A' && b[1] == 1) {
    code = 0;
  } else if (len >= 1 && (b[0] == 'X' || (b[0] == 'A' && len >= 2))) {
    size_t skip = b[0] == 'X' ? 1 : 2;
    cli_errorf("the receiver refused %s: %.*s", name, (int)(len - skip),
               b + skip);
  } else {
    cli_errorf("the receiver answered %s with an unexpected %zu-byte message "
               "(is it `quic-portal ... receive`?)",
               name, len);
  }
  qp_free(m);
  return code;
}

static int send_header(qp_portal_t *p, const char *name, uint64_t size,
                       const uint8_t *digest) {
  uint8_t hdr[XFER_HDR_FIXED + XFER_NAME_MAX];
  size_t nlen = strlen(name);
  hdr[0] = 'H';
  hdr[1] = XFER_VERSION;
  cli_put_be64(hdr + 2, size);
  memcpy(hdr + 10, digest, SHA256_DIGEST_SIZE);
  memcpy(hdr + XFER_HDR_FIXED, name, nlen);
  int rc = cli_send(p, hdr, XFER_HDR_FIXED + nlen);
  return rc == QP_OK ? 0 : xfer_error("sending the file header", rc);
}

/* Stream the content of fd; buf has room for 1 + XFER_CHUNK bytes. */
static int send_content(qp_portal_t *p, int fd, const char *path,
                        uint8_t *buf, xfer_progress *pr, uint8_t *sent_digest) {
  sha256_ctx h;
  sha256_init(&h);
  buf[0] = 'D';
  for (;;) {
    ssize_t n = read(fd, buf + 1, XFER_CHUNK);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      cli_errorf("reading %s: %s", path, strerror(errno));
      return CLI_EXIT_FAIL;
    }
    if (n == 0) {
      break;
    }
    int rc = cli_send(p, buf, (size_t)n + 1);
    if (rc != QP_OK) {
      return xfer_error("sending", rc);
    }
    sha256_update(&h, buf + 1, (size_t)n);
    pr->done += (uint64_t)n;
    xfer_progress_show(pr, false);
  }
  sha256_final(&h, sent_digest);
  return 0;
}

static int send_end(qp_portal_t *p, const char *path, const uint8_t *digest,
                    const uint8_t *sent_digest, uint64_t size, uint64_t sent) {
  uint8_t end[1 + SHA256_DIGEST_SIZE] = {'E'};
  memcpy(end + 1, sent_digest, SHA256_DIGEST_SIZE);
  int rc = cli_send(p, end, sizeof end);
  if (rc != QP_OK) {
    return xfer_error("sending the end marker", rc);
  }
  if (sent != size || memcmp(digest, sent_digest, SHA256_DIGEST_SIZE) != 0) {
    cli_errorf("%s changed while it was being sent (%" PRIu64 " bytes "
               "announced, %" PRIu64 " sent)",
               path, size, sent);
    return CLI_EXIT_FAIL;
  }
  return 0;
}

static int send_one(qp_portal_t *p, const char *path, int fd, uint8_t *buf,
                    const cli_xfer_cfg *cfg) {
  struct stat st;
  uint8_t digest[SHA256_DIGEST_SIZE], sent_digest[SHA256_DIGEST_SIZE];
  const char *name = base_name(path);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cli_errorf("%s is not a regular file", path);
    return CLI_EXIT_FAIL;
  }
  int rc = hash_fd(fd, path, buf, digest);
  if (rc == 0) {
    rc = send_header(p, name, (uint64_t)st.st_size, digest);
  }
  if (rc == 0) {
    rc = await_answer(p, 'R', name);
  }
  xfer_progress pr;
  xfer_progress_start(&pr, name, (uint64_t)st.st_size, cfg->progress);
  if (rc == 0) {
    rc = send_content(p, fd, path, buf, &pr, sent_digest);
  }
  if (rc == 0) {
    xfer_progress_show(&pr, true);
    rc = send_end(p, path, digest, sent_digest, (uint64_t)st.st_size, pr.done);
  }
  if (rc == 0) {
    rc = await_answer(p, 'A', name);
  }
  if (rc == 0) {
    xfer_summary(cfg, "sent", name, NULL, pr.done, digest, cli_now() - pr.t0);
  }
  return rc;
}

int cli_run_send(qp_portal_t *p, const char *const *files, size_t n,
                 const cli_xfer_cfg *cfg) {
  uint8_t *buf = malloc(XFER_CHUNK + 1);
  if (!buf) {
    cli_errorf("out of memory");
    return CLI_EXIT_FAIL;
  }
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int fd = open(files[i], O_RDONLY);
    if (fd < 0) {
      cli_errorf("cannot open %s: %s", files[i], strerror(errno));
      rc = CLI_EXIT_FAIL;
      break;
    }
    rc = send_one(p, files[i], fd, buf, cfg);
    close(fd);
  }
  free(buf);
  if (rc == 0) {
    uint8_t z[5] = {'Z', (uint8_t)(n >> 24), (uint8_t)(n >> 16),
                    (uint8_t)(n >> 8), (uint8_t)n};
    int qrc = cli_send(p, z, sizeof z);
    rc = qrc == QP_OK ? 0 : xfer_error("sending the final marker", qrc);
  }
  return rc;
}
