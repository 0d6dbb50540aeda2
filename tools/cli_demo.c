/*
 * cli_demo.c: `quic-portal demo`, the whole product on one machine: an
 * embedded STUN server, a rendezvous folder in /tmp, and two processes (this
 * program run again as `demo --role server|client`, see cli_demo_peer.c)
 * that meet, traverse, verify each other, exchange messages and run a short
 * ping-pong benchmark, each printing its steps.
 *
 * The peers are separate programs (posix_spawn of this executable), not
 * forks: this process already runs threads (signals, the STUN server), and
 * a forked child of a threaded process may only call async-signal-safe
 * functions.
 */
#define _XOPEN_SOURCE 700
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The two peers must be done within this long; then they are killed. */
#define DEMO_DEADLINE_S 60.0
#define DEMO_STUN_TIMEOUT_MS 3000
/* How often the wait for the peers looks at the clock and for signals. */
#define DEMO_POLL_MS 50
/* Output kept per peer: the demo prints a few KiB; debug logs may be long. */
#define DEMO_OUTPUT_MAX (4u * 1024 * 1024)

extern char **environ;

static const char DEMO_USAGE[] =
    "Usage: quic-portal demo [--log-level LEVEL]\n"
    "\n"
    "Show the whole product on this machine alone: start an embedded STUN\n"
    "server (127.0.0.1, with 127.0.0.2 as the RFC 5780 alternate), discover\n"
    "the addresses and the NAT behavior, make a rendezvous folder in /tmp,\n"
    "then run a server and a client as two processes that meet there, punch a\n"
    "path, verify each other's certificate fingerprints, exchange messages\n"
    "and run a ping-pong benchmark (20 x 600 KiB answered by 5 KiB). Every\n"
    "step is printed, each side's lines together; the library's milestones\n"
    "(the addresses each side published, the path that works) in plain\n"
    "words. With --log-level info or debug, the library's own lines instead.\n"
    "\n"
    "Everything is removed at the end; the peers are killed if they are not\n"
    "done within 60 s.\n"
    "\n"
    "Exit status: 0 both peers succeeded; 1 something failed (the step and\n"
    "the library's message are printed); 2 bad command line; 128+N killed by\n"
    "signal N.\n";

static const cli_opt DEMO_OPTS[] = {
    /* Internal: how the demo runs itself as each peer. */
    {"role", "server|client", false},
    {"stun-server", "HOST:PORT", false},
    {"rendezvous", "URL", false},
    {"session", "NAME", false},
};

/* Start the STUN server; with the alternate address when it can be bound
 * (127.0.0.2 is on the loopback interface on Linux, not on macOS). */
static int demo_stun_start(qp_stun_server_t **srv, char *addr, size_t len) {
  int rc = qp_stun_server_start("127.0.0.1:0", "127.0.0.2:0", srv);
  bool alt = rc == QP_OK;
  if (!alt) {
    rc = qp_stun_server_start("127.0.0.1:0", NULL, srv);
  }
  if (rc != QP_OK) {
    return cli_qp_error("starting the embedded STUN server", rc);
  }
  snprintf(addr, len, "127.0.0.1:%u", (unsigned)qp_stun_server_port(*srv));
  printf("[demo] 1. embedded STUN server on %s%s\n", addr,
         alt ? ", alternate address 127.0.0.2 (RFC 5780 behavior discovery)"
             : " (127.0.0.2 unavailable: no RFC 5780 alternate)");
  return 0;
}

static int demo_discover(const char *stun) {
  qp_nat_report r;
  int rc = qp_nat_discover(stun, NULL, DEMO_STUN_TIMEOUT_MS, &r);
  if (rc != QP_OK) {
    return cli_qp_error("NAT discovery", rc);
  }
  printf("[demo] 2. NAT discovery against it: local %s, public (mapped) %s\n"
         "          NAT type \"%s\": mapping %s, filtering %s, ports %s\n"
         "          (on one machine there is no NAT between the peers; "
         "`make demo-nat` puts two NATs in between)\n",
         r.local, r.mapped[0] ? r.mapped : "(none)", r.type, r.mapping,
         r.filtering, r.port_allocation);
  return 0;
}

static void random_session(char *out, size_t len) {
  unsigned v = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) {
      v ^= (unsigned)clock();
    }
    close(fd);
  }
  snprintf(out, len, "demo-%08x", v);
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static const char *self_path(char *buf, size_t len) {
  ssize_t n = readlink("/proc/self/exe", buf, len - 1);
  if (n > 0) {
    buf[n] = '\0';
    return buf;
  }
  return cli_argv0;
}

/* Start this program as one peer, its stdout and stderr into a pipe whose
 * read end goes to *out (the demo prints each side's lines together). */
static pid_t spawn_peer(const char *role, const char *stun, const char *rdv,
                        const char *session, int *out) {
  char self[4096];
  const char *exe = self_path(self, sizeof self);
  int lvl = cli_log_level_given();
  static const char *const levels[] = {"debug", "info", "warn", "error",
                                       "none"};
  /* --log-level only when the person gave one: without it the peer puts
   * the library's milestones in plain words. */
  char *argv[] = {(char *)exe,
                  "demo",
                  "--role",
                  (char *)role,
                  "--stun-server",
                  (char *)stun,
                  "--rendezvous",
                  (char *)rdv,
                  "--session",
                  (char *)session,
                  lvl < 0 ? NULL : "--log-level",
                  lvl < 0 ? NULL : (char *)levels[lvl],
                  NULL};
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    cli_errorf("cannot make a pipe for the %s: %s", role, strerror(errno));
    return -1;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&fa, pfd[1], STDERR_FILENO);
  posix_spawnattr_t attr;
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_init(&attr);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  pid_t pid = -1;
  fflush(stdout);
  int err = posix_spawn(&pid, exe, &fa, &attr, argv, environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  close(pfd[1]);
  if (err != 0) {
    close(pfd[0]);
    cli_errorf("cannot start %s as the %s: %s", exe, role, strerror(err));
    return -1;
  }
  *out = pfd[0];
  return pid;
}

/* What one peer printed, kept until the demo shows it. */
typedef struct peer_output {
  int fd; /* -1 at end of file */
  char *text;
  size_t len;
} peer_output;

/* Read what is there (the fd is readable); false at end of file. */
static bool collect(peer_output *o) {
  char buf[4096];
  ssize_t n = read(o->fd, buf, sizeof buf);
  if (n <= 0) {
    return n < 0 && errno == EINTR;
  }
  char *t = o->len + (size_t)n <= DEMO_OUTPUT_MAX
                ? realloc(o->text, o->len + (size_t)n + 1)
                : NULL;
  if (t) { /* beyond DEMO_OUTPUT_MAX the rest is dropped */
    memcpy(t + o->len, buf, (size_t)n);
    o->len += (size_t)n;
    t[o->len] = '\0';
    o->text = t;
  }
  return true;
}

/* Read both peers' output until both pipes end, at most until deadline. */
static void collect_until(peer_output out[2], double deadline) {
  while ((out[0].fd >= 0 || out[1].fd >= 0) && cli_now() < deadline &&
         !cli_signal()) {
    struct pollfd pfd[2] = {{.fd = out[0].fd, .events = POLLIN},
                            {.fd = out[1].fd, .events = POLLIN}};
    if (poll(pfd, 2, DEMO_POLL_MS) <= 0) {
      continue;
    }
    for (int i = 0; i < 2; i++) {
      if (pfd[i].revents && !collect(&out[i])) {
        close(out[i].fd);
        out[i].fd = -1;
      }
    }
  }
}

/* Wait for both peers, at most DEMO_DEADLINE_S; kill what is left. Their
 * lines are shown side by side: all of the server's, then the client's,
 * so that each side's story reads in order. */
static int wait_peers(pid_t pids[2], int fds[2]) {
  static const char *const names[2] = {"server", "client"};
  peer_output out[2] = {{.fd = fds[0]}, {.fd = fds[1]}};
  collect_until(out, cli_now() + DEMO_DEADLINE_S);
  int rc = 0;
  for (int i = 0; i < 2; i++) {
    int st = 0;
    if (out[i].fd >= 0) { /* not done in time, or interrupted */
      kill(pids[i], SIGKILL);
      close(out[i].fd);
    }
    waitpid(pids[i], &st, 0);
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    fputs(out[i].text ? out[i].text : "", stdout);
    free(out[i].text);
    if (out[i].fd >= 0 && !cli_signal()) {
      cli_errorf("the %s was not done in time and was stopped", names[i]);
      rc = CLI_EXIT_FAIL;
    } else if (status != 0 && !cli_signal()) {
      cli_errorf("the %s failed (exit status %d)", names[i], status);
      rc = CLI_EXIT_FAIL;
    }
  }
  return cli_signal() ? cli_signal_exit() : rc;
}

static int run_peers(const char *stun, const char *dir) {
  char rdv[4200], session[32];
  snprintf(rdv, sizeof rdv, "dir:%s", dir);
  random_session(session, sizeof session);
  printf("[demo] 3. rendezvous: the folder %s (URL %s), session %s\n"
         "[demo] 4. starting the server and the client as two processes\n",
         dir, rdv, session);
  pid_t pids[2];
  int fds[2] = {-1, -1};
  pids[0] = spawn_peer("server", stun, rdv, session, &fds[0]);
  pids[1] =
      pids[0] > 0 ? spawn_peer("client", stun, rdv, session, &fds[1]) : -1;
  if (pids[1] < 0) {
    if (pids[0] > 0) {
      kill(pids[0], SIGKILL);
      waitpid(pids[0], NULL, 0);
      close(fds[0]);
    }
    return CLI_EXIT_FAIL;
  }
  return wait_peers(pids, fds);
}

static void print_next_steps(void) {
  printf("[demo] done: both peers verified each other and talked over QUIC.\n"
         "\n"
         "Between two machines (both reach a Redis server; STUN on a public "
         "server):\n"
         "  A$ quic-portal serve   --rendezvous redis://HOST --session s1 "
         "--stun stun.l.google.com:19302 receive\n"
         "  B$ quic-portal connect --rendezvous redis://HOST --session s1 "
         "--stun stun.l.google.com:19302 send FILE\n"
         "See docs/cli.md.\n");
}

static int run_demo(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("[demo] quic-portal %s: two programs meet through a rendezvous, "
         "punch a path and talk over QUIC\n",
         QP_VERSION);
  qp_stun_server_t *srv = NULL;
  char stun[64];
  int rc = demo_stun_start(&srv, stun, sizeof stun);
  if (rc == 0) {
    rc = demo_discover(stun);
  }
  char dir[] = "/tmp/quic-portal-demo.XXXXXX";
  if (rc == 0 && !mkdtemp(dir)) {
    cli_errorf("cannot make a folder in /tmp: %s", strerror(errno));
    rc = CLI_EXIT_FAIL;
  } else if (rc == 0) {
    rc = run_peers(stun, dir);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("[demo] 5. removed %s%s\n", dir,
           access(dir, F_OK) == 0 ? " (FAILED: it is still there)" : "");
  }
  qp_stun_server_stop(srv);
  if (rc == 0) {
    print_next_steps();
  } else {
    printf("[demo] FAILED (exit status %d): see the messages above\n", rc);
  }
  return rc;
}

int cli_demo_peer(const char *role, const char *stun, const char *rdv,
                  const char *session);

int cli_main_demo(int argc, char **argv) {
  cli_cmd cmd = {"quic-portal demo", DEMO_USAGE, DEMO_OPTS, 4};
  cli_args a;
  int rc = cli_parse(&cmd, argc, argv, &a);
  const char *role = rc == 0 ? cli_get(&a, "role") : NULL;
  if (rc == 0 && a.npos > 0) {
    rc = cli_usage_error(&cmd, "unexpected argument '%s'", a.pos[0]);
  }
  if (rc == 0 && role &&
      (strcmp(role, "server") != 0 && strcmp(role, "client") != 0)) {
    rc = cli_usage_error(&cmd, "--role must be server or client");
  }
  if (rc == 0 && role &&
      (!cli_has(&a, "stun-server") || !cli_has(&a, "rendezvous") ||
       !cli_has(&a, "session"))) {
    rc = cli_usage_error(&cmd, "--role needs --stun-server, --rendezvous and "
                               "--session");
  }
  if (rc == 0) {
    rc = role ? cli_demo_peer(role, cli_get(&a, "stun-server"),
                              cli_get(&a, "rendezvous"), cli_get(&a, "session"))
              : run_demo();
  }
  cli_args_free(&a);
  return rc == CLI_EXIT_HELP ? CLI_EXIT_OK : rc;
}
