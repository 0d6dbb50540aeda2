/*
 * cli_xfer.h: what the sending (cli_xfer.c) and receiving
 * (cli_xfer_recv.c) sides of the file framing share. The framing itself is
 * described at the top of cli_xfer.c.
 */
#ifndef QP_CLI_XFER_H
#define QP_CLI_XFER_H

#include "cli.h"
#include "sha256.h"

#define XFER_CHUNK (1024 * 1024) /* content bytes per 'D' message */
#define XFER_VERSION 1
#define XFER_HDR_FIXED 42 /* 'H' + version + size(8) + sha256(32) */
/* ".NAME.part" must fit NAME_MAX (255). */
#define XFER_NAME_MAX 249
/* After 'Z' the receiver waits this long for the sender to close. */
#define XFER_FINAL_CLOSE_MS 10000

/* The exit status for a failed library call during a transfer (prints it). */
int xfer_error(const char *what, int rc);

/* A progress line on stderr (only when on): name, bytes, %, rate, ETA. */
typedef struct xfer_progress {
  const char *name;
  uint64_t total, done;
  double t0, last;
  bool on;
} xfer_progress;

void xfer_progress_start(xfer_progress *pr, const char *name, uint64_t total,
                         bool on);
/* Redraw at most every 100 ms, or now and end the line when final. */
void xfer_progress_show(xfer_progress *pr, bool final);

/* One summary: a JSON line on stdout with --json, else a line on stderr.
 * path: where the file was written (receiver), or NULL. */
void xfer_summary(const cli_xfer_cfg *cfg, const char *event, const char *name,
                  const char *path, uint64_t bytes, const uint8_t *digest,
                  double secs);

#endif /* QP_CLI_XFER_H */
