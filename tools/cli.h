/*
 * cli.h: what the files of the quic-portal command-line tool share.
 *
 * The tool is a front end: it includes only the public header and links the
 * shared library. Each subcommand lives in its own cli_<name>.c file.
 */
#ifndef QP_CLI_H
#define QP_CLI_H

#include "quic_portal.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit status of every subcommand (docs/cli.md). An interrupted run exits
 * 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
/* A parser's "help was printed, exit 0". */
#define CLI_EXIT_HELP (-1)

/* Every wait of the tool on the network is cut into slices of this long so
 * that a signal is noticed even if it arrives between two library calls. */
#define CLI_SLICE_MS 250

/* ---- command line ------------------------------------------------------ */

#define CLI_MAX_REPEAT 8 /* values of one repeatable option (--stun) */
#define CLI_MAX_OPTS 40  /* options of one subcommand (bench has the most) */

typedef struct cli_opt {
  const char *name; /* without the leading "--" */
  const char *arg;  /* NULL: a flag; else the value's name for the usage */
  bool repeatable;
} cli_opt;

typedef struct cli_cmd {
  const char *name;  /* "quic-portal serve" */
  const char *usage; /* full --help text */
  const cli_opt *opts;
  size_t nopts;
} cli_cmd;

typedef struct cli_args {
  const cli_cmd *cmd;
  const char *val[CLI_MAX_OPTS][CLI_MAX_REPEAT]; /* indexed like cmd->opts */
  size_t count[CLI_MAX_OPTS];                    /* times each was given */
  const char **pos;                    /* positional arguments */
  size_t npos;
} cli_args;

/* Parse argv (argv[0] is the subcommand) against cmd. Returns 0,
 * CLI_EXIT_USAGE after printing the error, or CLI_EXIT_HELP
 * after printing cmd->usage. Handles --help, --log-level and "--". */
int cli_parse(const cli_cmd *cmd, int argc, char **argv, cli_args *out);
/* The level given with --log-level, or -1 when none was given. */
int cli_log_level_given(void);
/* argv[0] of main, for the demo to run itself as its two peers. */
extern const char *cli_argv0;
/* The (last) value of option name, or NULL when it was not given. */
const char *cli_get(const cli_args *a, const char *name);
bool cli_has(const cli_args *a, const char *name);
size_t cli_count(const cli_args *a, const char *name);
const char *cli_get_nth(const cli_args *a, const char *name, size_t i);
/* Free what cli_parse allocated (also after it failed). */
void cli_args_free(cli_args *a);

/* Print "quic-portal CMD: <message>" and a line pointing at
 * "quic-portal CMD --help" to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_cmd *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Strict number parsers; on error they call cli_usage_error. */
int cli_parse_u64(const cli_cmd *cmd, const char *opt, const char *s,
                  uint64_t min, uint64_t max, uint64_t *out);
int cli_parse_secs(const cli_cmd *cmd, const char *opt, const char *s,
                   double min, double max, double *out);
/* "HOST:PORT" or "[V6]:PORT" with port 0-65535 (1-65535 unless allow_zero);
 * host copied into host (size hostlen). A host that looks like an address
 * (digits and dots, or a ':') must be a valid one. */
int cli_parse_hostport(const cli_cmd *cmd, const char *opt, const char *s,
                       bool allow_zero, char *host, size_t hostlen,
                       uint16_t *port);

/* host must be an IP address literal (required), or may also be a host
 * name (then only what looks like an address is checked); usage error
 * naming opt otherwise. */
int cli_check_ip(const cli_cmd *cmd, const char *opt, const char *host,
                 bool required);

/* ---- errors and output ------------------------------------------------- */

/* "quic-portal: <message>" on stderr, on a line of its own. */
void cli_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "quic-portal: WHAT failed: QP_ERR_X (text): qp_last_error()"; returns
 * CLI_EXIT_FAIL. */
int cli_qp_error(const char *what, int err);
/* Append s to out as a JSON string literal (with quotes). */
void cli_json_str(char *out, size_t outlen, const char *s);
/* A progress line without its newline is on stderr (true) or not: the
 * next cli_errorf starts a new line first. */
void cli_line_open(bool open);
double cli_now(void); /* monotonic seconds */
void cli_hex(const uint8_t *in, size_t n, char *out); /* out: 2n+1 bytes */
/* Big-endian integers of the tool's framings (pipe, bench, files). */
void cli_put_be64(uint8_t *p, uint64_t v);
uint64_t cli_get_be64(const uint8_t *p);

/* ---- signals ----------------------------------------------------------- */

/* Block SIGINT, SIGTERM and SIGHUP in every thread (call first in main,
 * before any thread exists) and start the thread that waits for them. The
 * first signal sets cli_signal(), interrupts the registered portal and runs
 * nothing else; a second one removes the registered partial file and exits
 * at once. */
void cli_signals_start(void);
/* 0, or the number of the first signal received. */
int cli_signal(void);
/* The exit status for an interrupted run: 128 + signal; prints
 * "interrupted by signal N" the first time. */
int cli_signal_exit(void);
/* The portal that a signal interrupts (NULL: none). */
void cli_signals_watch(qp_portal_t *portal);
/* A file to unlink when a second signal ends the process (NULL: none). */
void cli_signals_part_file(const char *path);
/* A traversal cancel callback: true once a signal arrived. */
bool cli_cancel_cb(void *user);

/* ---- connections -------------------------------------------------------- */

typedef struct cli_conn_cfg {
  bool server;
  /* Direct mode (no traversal): listen on listen_ip:listen_port, or
   * connect to to_host:to_port. */
  bool direct;
  char listen_ip[64];
  uint16_t listen_port;
  char to_host[256];
  uint16_t to_port;
  const char *pin;    /* --pin (direct mode) */
  int wait_ms;        /* --timeout: listen/connect wait, negative = forever */
  /* Traversal. */
  const char *rendezvous;
  const char *session;
  const char *stun[CLI_MAX_REPEAT];
  size_t nstun;
  uint16_t local_port;
  int punch_timeout_ms;
  int wait_timeout_ms; /* --wait-timeout; negative: without limit */
  const char *bind_ip; /* --bind, or NULL */
  bool no_pin;
  /* Sealed rendezvous: --secret, or the code serve generated (then
   * secret_generated, and secret points at secret_buf). */
  const char *secret;
  bool secret_generated;
  char secret_buf[64];
  const char *turn[CLI_MAX_REPEAT]; /* --turn USER:PASS@HOST:PORT */
  size_t nturn;
  const char *turn_secret[CLI_MAX_REPEAT]; /* --turn-secret SECRET@HOST:PORT */
  size_t nturn_secret;
  int relay;                /* QP_RELAY_AUTO, _NEVER or _ONLY */
  int reconnect_timeout_ms; /* --reconnect-timeout; negative: the default */
  /* --no-portmap, --no-upnp, --no-natpmp, --no-pcp
   * (qp_traverse_options.no_portmap ...) */
  bool no_portmap, no_upnp, no_natpmp, no_pcp;
  qp_transport_options transport;
  bool quiet; /* no progress lines on stderr */
  /* What the peer must type (cli_hint.c): its command (NULL: "quic-portal
   * connect" or "quic-portal serve") and its mode words (NULL: none). */
  const char *peer_cmd;
  const char *peer_mode;
} cli_conn_cfg;

/* The options every connecting subcommand accepts; CLI_CONN_OPTS_N of them,
 * to be copied first into a command's option table. */
#define CLI_CONN_OPTS_N 30
extern const cli_opt CLI_CONN_OPTS[CLI_CONN_OPTS_N];
/* Usage text of those options. */
extern const char CLI_CONN_USAGE[];

/* Fill cfg from the parsed options (server: serve side). */
int cli_conn_cfg_from_args(const cli_args *a, bool server, cli_conn_cfg *cfg);
/* Connect as cfg says; on success *out is connected and registered with the
 * signal thread. Prints what it does on stderr unless cfg->quiet. */
int cli_conn_open(const cli_conn_cfg *cfg, qp_portal_t **out);
/* Print, unless cfg->quiet, the command line the peer must type; fp:
 * this side's certificate fingerprint (direct mode, pinned by the peer). */
void cli_say_peer_command(const cli_conn_cfg *cfg, const char *fp);
/* Generate a rendezvous secret of CLI_SECRET_BITS random bits (gnutls_rnd)
 * as a code of lowercase base32 groups, "abcd-efgh-...", into out
 * (CLI_SECRET_CODE_LEN + 1 bytes). Returns 0, or CLI_EXIT_FAIL after
 * printing why. */
#define CLI_SECRET_BITS 160
#define CLI_SECRET_CODE_LEN (CLI_SECRET_BITS / 5 + CLI_SECRET_BITS / 20 - 1)
int cli_secret_generate(char *out, size_t outlen);
/* Print, unless quiet, a line when the connection's path or its count of
 * recoveries changed since the last call (at most every CLI_SLICE_MS);
 * cli_recv and cli_send call it. The first call after cli_conn_open
 * prints nothing: cli_conn_open said the path already. */
void cli_conn_watch(qp_portal_t *p);
/* Close with linger_ms (negative: the library's default; 0 once a signal
 * came), unregister and destroy. Returns the result of qp_portal_close. */
int cli_conn_close(qp_portal_t *p, int linger_ms);
/* Receive one message waiting at most timeout_ms (negative: forever), in
 * slices so that a signal ends the wait with QP_ERR_INTERRUPTED. */
int cli_recv(qp_portal_t *p, void **msg, size_t *len, int timeout_ms);
/* Send one message, waiting for send-window room as long as needed, in
 * slices so that a signal ends the wait with QP_ERR_INTERRUPTED. */
int cli_send(qp_portal_t *p, const void *buf, size_t len);

/* ---- subcommands --------------------------------------------------------- */

int cli_main_peer(int argc, char **argv, bool server); /* serve / connect */
int cli_main_stun(int argc, char **argv);
int cli_main_stun_server(int argc, char **argv);
/* The alternate address (OTHER-ADDRESS) of the STUN server at host:port,
 * asked with one Binding request (cli_stun_other.c); false if none came. */
bool cli_stun_other_address(const char *host, uint16_t port, char *out,
                            size_t outlen);
int cli_main_bench(int argc, char **argv);
int cli_main_demo(int argc, char **argv);
int cli_main_sha256(int argc, char **argv);
int cli_main_turn_check(int argc, char **argv);

/* Modes of serve/connect (cli_pipe.c, cli_xfer.c). */
int cli_run_pipe(qp_portal_t *p);
typedef struct cli_xfer_cfg {
  bool json;
  bool force;
  bool progress; /* stderr is a terminal */
} cli_xfer_cfg;
int cli_run_send(qp_portal_t *p, const char *const *files, size_t n,
                 const cli_xfer_cfg *cfg);
/* A file name a sender may send: one path component, printable, at most
 * 249 bytes (so that ".NAME.part" fits). */
bool cli_xfer_name_ok(const char *name, size_t len);
/* The last path component of path: the name a file is sent under. */
const char *cli_xfer_base_name(const char *path);
int cli_run_receive(qp_portal_t *p, const char *dir, const cli_xfer_cfg *cfg);

/* Bench protocol, shared with the demo (cli_bench.c). */
typedef struct cli_pingpong_result {
  size_t iterations;
  double avg, p50, p75, p90, p99, min, max; /* ms (pingpong) or us (rtt) */
} cli_pingpong_result;
/* Client side: tell the server what to answer, then run iters rounds of a
 * ping_size message answered by pong_size bytes (rtt: 1 byte echoed). */
int cli_bench_client(qp_portal_t *p, bool rtt, uint64_t iters,
                     uint64_t ping_size, uint64_t pong_size,
                     cli_pingpong_result *r);
/* Server side: answer as the client asks until it closes. */
int cli_bench_server(qp_portal_t *p, uint64_t *messages, uint64_t *bytes);

#endif /* QP_CLI_H */
