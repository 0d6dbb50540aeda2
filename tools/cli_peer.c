/*
 * cli_peer.c: `quic-portal serve` and `quic-portal connect`: open a
 * connection (direct or through NAT traversal) and run one mode on it: the
 * pipe (default), `send FILE...` or `receive [DIR]`.
 */
#include "cli.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Linger of the final close: long enough for the last messages (256 KiB
 * each) on a slow path to be acknowledged. */
#define PEER_LINGER_MS 30000
/* Linger after a failure: only to deliver the reason to the peer. */
#define PEER_FAIL_LINGER_MS 2000

#define PEER_MODES                                                            \
  "Modes (after the options, or mixed with them):\n"                         \
  "  (none)             pipe: each chunk read from stdin is one message to\n" \
  "                     the peer; the peer's messages go to stdout. End of\n" \
  "                     input ends only this direction; the command exits\n" \
  "                     when both have ended, 0 only if the peer's program\n" \
  "                     wrote out every byte sent and every byte received\n" \
  "                     was written to stdout\n"                            \
  "  send FILE...       send files; the peer must run `receive`\n"           \
  "  receive [DIR]      receive files into DIR (default: the current\n"      \
  "                     folder); each one is written to DIR/.NAME.part and\n" \
  "                     renamed to DIR/NAME only after its size and SHA-256\n" \
  "                     matched; an existing file is never replaced\n"       \
  "  --force            receive: replace existing files\n"                   \
  "  --json             send/receive: one JSON summary line per file on\n"   \
  "                     stdout: event, name, bytes, sha256, seconds,\n"      \
  "                     mib_per_s, verified\n"                               \
  "  A progress bar (bytes, rate, ETA) is drawn on stderr when it is a\n"    \
  "  terminal.\n"                                                            \
  "\n"

#define PEER_EXIT                                                             \
  "\nExit status: 0 done; 1 connection, library, file or verification\n"     \
  "error (the message says which); 2 bad command line; 128+N killed by\n"    \
  "signal N (130: Ctrl-C), which removes any partial file.\n"

static char serve_usage[8192]; /* 5.8 KB used: room to grow */
static char connect_usage[8192];

static const char *build_usage(bool server) {
  char *u = server ? serve_usage : connect_usage;
  snprintf(u, sizeof serve_usage,
           "Usage: quic-portal %s (%s | --rendezvous URL) [OPTIONS] [MODE]\n"
           "\n"
           "%s\n"
           "\n" PEER_MODES "%s" PEER_EXIT,
           server ? "serve" : "connect",
           server ? "--listen [ADDR:]PORT" : "--to HOST:PORT",
           server ? "Be the server side of one connection: wait for one "
                    "client directly,\nor meet it through a rendezvous "
                    "(the QUIC server role)."
                  : "Be the client side of one connection: connect to a "
                    "server directly,\nor meet it through a rendezvous "
                    "(the QUIC client role).",
           CLI_CONN_USAGE);
  return u;
}

typedef enum { MODE_PIPE, MODE_SEND, MODE_RECEIVE } peer_mode;

static int check_files(const cli_cmd *cmd, const char *const *files,
                       size_t n) {
  for (size_t i = 0; i < n; i++) {
    struct stat st;
    const char *name = cli_xfer_base_name(files[i]);
    if (stat(files[i], &st) != 0 || !S_ISREG(st.st_mode) ||
        access(files[i], R_OK) != 0) {
      cli_errorf("%s is not a readable regular file", files[i]);
      return CLI_EXIT_FAIL;
    }
    if (!cli_xfer_name_ok(name, strlen(name))) {
      return cli_usage_error(cmd, "cannot send '%s': its name must be 1-249 "
                                  "printable bytes",
                             files[i]);
    }
    for (size_t j = 0; j < i; j++) {
      if (strcmp(cli_xfer_base_name(files[j]), name) == 0) {
        return cli_usage_error(cmd, "cannot send '%s' and '%s' together: the "
                                    "receiver would get two files named %s",
                               files[j], files[i], name);
      }
    }
  }
  return 0;
}

static int check_dir(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) ||
      access(dir, W_OK | X_OK) != 0) {
    cli_errorf("%s is not a folder this user can write to", dir);
    return CLI_EXIT_FAIL;
  }
  return 0;
}

static int parse_mode(const cli_args *a, peer_mode *mode) {
  const cli_cmd *cmd = a->cmd;
  *mode = MODE_PIPE;
  if (a->npos > 0 && strcmp(a->pos[0], "send") == 0) {
    *mode = MODE_SEND;
    if (a->npos < 2) {
      return cli_usage_error(cmd, "send needs at least one FILE");
    }
  } else if (a->npos > 0 && strcmp(a->pos[0], "receive") == 0) {
    *mode = MODE_RECEIVE;
    if (a->npos > 2) {
      return cli_usage_error(cmd, "receive takes at most one DIR, got '%s' "
                                  "too",
                             a->pos[2]);
    }
  } else if (a->npos > 0) {
    return cli_usage_error(cmd, "unknown mode '%s': expected send FILE..., "
                                "receive [DIR], or nothing for the pipe",
                           a->pos[0]);
  }
  if (cli_has(a, "force") && *mode != MODE_RECEIVE) {
    return cli_usage_error(cmd, "--force applies only to receive");
  }
  if (cli_has(a, "json") && *mode == MODE_PIPE) {
    return cli_usage_error(cmd, "--json applies only to send and receive");
  }
  if (*mode == MODE_SEND) {
    return check_files(cmd, a->pos + 1, a->npos - 1);
  }
  if (*mode == MODE_RECEIVE) {
    return check_dir(a->npos == 2 ? a->pos[1] : ".");
  }
  return 0;
}

static int run_mode(qp_portal_t *p, const cli_args *a, peer_mode mode) {
  cli_xfer_cfg x = {.json = cli_has(a, "json"),
                    .force = cli_has(a, "force"),
                    .progress = isatty(STDERR_FILENO) != 0};
  switch (mode) {
  case MODE_SEND:
    return cli_run_send(p, a->pos + 1, a->npos - 1, &x);
  case MODE_RECEIVE:
    return cli_run_receive(p, a->npos == 2 ? a->pos[1] : ".", &x);
  default:
    return cli_run_pipe(p);
  }
}

int cli_main_peer(int argc, char **argv, bool server) {
  cli_opt opts[CLI_CONN_OPTS_N + 2];
  memcpy(opts, CLI_CONN_OPTS, sizeof CLI_CONN_OPTS);
  opts[CLI_CONN_OPTS_N] = (cli_opt){"json", NULL, false};
  opts[CLI_CONN_OPTS_N + 1] = (cli_opt){"force", NULL, false};
  cli_cmd cmd = {server ? "quic-portal serve" : "quic-portal connect",
                 build_usage(server), opts, CLI_CONN_OPTS_N + 2};
  cli_args a;
  cli_conn_cfg cfg;
  peer_mode mode;
  int rc = cli_parse(&cmd, argc, argv, &a);
  if (rc == 0) {
    rc = cli_conn_cfg_from_args(&a, server, &cfg);
  }
  if (rc == 0) {
    rc = parse_mode(&a, &mode);
    cfg.peer_mode = mode == MODE_SEND      ? "receive"
                    : mode == MODE_RECEIVE ? "send FILE..."
                                           : NULL;
  }
  qp_portal_t *p = NULL;
  if (rc == 0) {
    rc = cli_conn_open(&cfg, &p);
  }
  if (rc == 0) {
    rc = run_mode(p, &a, mode);
    int crc = cli_conn_close(p, rc == 0 ? PEER_LINGER_MS : PEER_FAIL_LINGER_MS);
    if (rc == 0 && crc != QP_OK && crc != QP_ERR_CLOSED) {
      rc = cli_qp_error("closing the connection", crc);
    }
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}
