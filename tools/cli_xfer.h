/*
 * cli_xfer.h: what the sending (cli_xfer.c) and receiving
 * (cli_xfer_recv.c) sides of the file framing share. The framing itself is
 * described at the top of cli_xfer.c.
 */
#ifndef QP_CLI_XFER_H
#define QP_CLI_XFER_H

#include "cli.h"
#include "cli_hash.h"

/* Content bytes per 'D' message: the pipe's chunk size; 1 MiB messages
 * measured about 10% slower on loopback (the receiver's buffer grows as a
 * message arrives). */
#define XFER_CHUNK (256 * 1024)
/* Sender buffers in turn: one is read into and sent while the hasher
 * works on the others (at most CLI_HASH_QUEUE). */
#define XFER_BUFS 4
/* The receiver starts the disk writing every this many bytes, so that the
 * final fsync has little left to do (16 MiB: a fraction of a second of
 * disk). */
#define XFER_WRITEBACK (16u * 1024 * 1024)
#define XFER_VERSION 2
/* The greeting: "QPXF" version(1) role(1), role 's' (send) or 'r'. */
#define XFER_HELLO_SIZE 6
/* How long a side waits for the peer's greeting, which a peer of this
 * version sends as soon as it is connected: a longer silence means the
 * peer runs the pipe or another version. */
#define XFER_HELLO_MS 10000
/* The list: 'L' count(4), then per file size(8) name_len(1) name. */
#define XFER_LIST_FIXED 5
#define XFER_ENTRY_FIXED 9
/* Files in one run: each is one argument, so a shell limit comes first;
 * this bounds the list message to about 66 MB of names at worst. */
#define XFER_MAX_FILES 262144
/* ".NAME.part" must fit NAME_MAX (255). */
#define XFER_NAME_MAX 249
/* After 'Z' the receiver waits this long for the sender to close. */
#define XFER_FINAL_CLOSE_MS 10000

/* The exit status for a failed library call during a transfer (prints it). */
int xfer_error(const char *what, int rc);

/* Send our greeting (role 's' or 'r') and check the peer's: both sides
 * running the same role fail at once with a hint. */
int xfer_hello(qp_portal_t *p, char role);

/* A progress line on stderr (only when on): name, bytes, %, rate, ETA. */
typedef struct xfer_progress {
  const char *name;
  uint64_t total, done;
  double t0, last;
  bool on;
} xfer_progress;

/* Start the bar and draw it at once (0 bytes). */
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
