/*
 * quic-portal.c: the command-line tool of libquicportal. main() starts the
 * signal thread and hands argv to one subcommand (cli_<name>.c). It uses
 * only the public header and links the shared library. docs/cli.md
 * describes every subcommand and option.
 */
#include "cli.h"

#include <nettle/sha2.h>

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_argv0 = "quic-portal";

static const char MAIN_USAGE[] =
    "Usage: quic-portal COMMAND [OPTIONS]\n"
    "\n"
    "Connect two programs, possibly both behind NATs, with an encrypted QUIC\n"
    "channel that carries whole messages.\n"
    "\n"
    "Commands:\n"
    "  demo          the whole product on this machine, step by step\n"
    "  serve         the server side of one connection: a pipe (stdin to the\n"
    "                peer, the peer to stdout), `send FILE...` or\n"
    "                `receive [DIR]`\n"
    "  connect       the client side of one connection (same modes)\n"
    "  stun          this machine's public address and NAT behavior\n"
    "  stun-server   run a STUN server\n"
    "  bench         ping-pong or rtt benchmark over a connection\n"
    "  turn-check    check a TURN relay: allocate, relay both ways\n"
    "  sha256        print the SHA-256 of files (as sha256sum does)\n"
    "\n"
    "`quic-portal COMMAND --help` describes a command. Every command accepts\n"
    "--log-level debug|info|warn|error|none (the library also reads\n"
    "QUIC_PORTAL_LOG) and --qlog DIR (a qlog trace per connection in DIR).\n"
    "\n"
    "Exit status: 0 success; 1 failure (the message says what failed);\n"
    "2 bad command line; 128+N interrupted by signal N (130: Ctrl-C).\n";

#define MAIN_HINT "Run 'quic-portal --help' for the usage.\n"

static const char SHA_USAGE[] =
    "Usage: quic-portal sha256 FILE...\n"
    "\n"
    "Print the SHA-256 of each FILE (\"-\" is stdin) as sha256sum does: the\n"
    "hash the file transfer verifies.\n"
    "\n"
    "Exit status: 0 all files read; 1 a file could not be read (the others\n"
    "are still hashed, as with sha256sum); 2 no FILE.\n";

static int hash_file(const char *path) {
  int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY);
  if (fd < 0) {
    cli_errorf("cannot open %s: %s", path, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  static uint8_t buf[1 << 16];
  struct sha256_ctx h;
  sha256_init(&h);
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    sha256_update(&h, n > 0 ? (size_t)n : 0, buf);
  }
  int err = errno;
  if (fd != STDIN_FILENO) {
    close(fd);
  }
  if (n < 0) {
    cli_errorf("reading %s: %s", path, strerror(err));
    return CLI_EXIT_FAIL;
  }
  uint8_t d[SHA256_DIGEST_SIZE];
  char hex[2 * SHA256_DIGEST_SIZE + 1];
  sha256_digest(&h, sizeof d, d);
  cli_hex(d, sizeof d, hex);
  printf("%s  %s\n", hex, path);
  return 0;
}

int cli_main_sha256(int argc, char **argv) {
  cli_cmd cmd = {"quic-portal sha256", SHA_USAGE, NULL, 0};
  cli_args a;
  int rc = cli_parse(&cmd, argc, argv, &a);
  if (rc == 0 && a.npos == 0) {
    rc = cli_usage_error(&cmd, "missing FILE");
  }
  /* Like sha256sum: a file that cannot be read does not stop the others. */
  bool failed = false;
  for (size_t i = 0; rc == 0 && i < a.npos; i++) {
    failed |= hash_file(a.pos[i]) != 0;
  }
  if (rc == 0 && failed) {
    rc = CLI_EXIT_FAIL;
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}

static int dispatch(int argc, char **argv) {
  const char *c = argv[0];
  if (strcmp(c, "serve") == 0 || strcmp(c, "connect") == 0) {
    return cli_main_peer(argc, argv, c[0] == 's');
  }
  static const struct {
    const char *name;
    int (*fn)(int, char **);
  } cmds[] = {{"demo", cli_main_demo},
              {"stun", cli_main_stun},
              {"stun-server", cli_main_stun_server},
              {"bench", cli_main_bench},
              {"sha256", cli_main_sha256},
              {"turn-check", cli_main_turn_check}};
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
    if (strcmp(c, cmds[i].name) == 0) {
      return cmds[i].fn(argc, argv);
    }
  }
  fprintf(stderr,
          "quic-portal: unknown command '%s': expected demo, serve, connect, "
          "stun, stun-server, bench, turn-check or sha256\n" MAIN_HINT,
          c);
  return CLI_EXIT_USAGE;
}

int main(int argc, char **argv) {
  cli_argv0 = argv[0];
  /* Character classes only (display width of file names in the progress
   * bar); messages and numbers stay in the C locale. */
  setlocale(LC_CTYPE, "");
  if (argc < 2) {
    fprintf(stderr, "quic-portal: missing command\n" MAIN_HINT);
    return CLI_EXIT_USAGE;
  }
  const char *c = argv[1];
  if (strcmp(c, "--help") == 0 || strcmp(c, "-h") == 0 ||
      strcmp(c, "help") == 0) {
    if (strcmp(c, "help") == 0 && argc > 2) {
      char *help_argv[] = {argv[2], "--help", NULL};
      return dispatch(2, help_argv);
    }
    fputs(MAIN_USAGE, stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(c, "--version") == 0) {
    printf("quic-portal %s\n", QP_VERSION);
    return CLI_EXIT_OK;
  }
  cli_signals_start();
  return dispatch(argc - 1, argv + 1);
}
