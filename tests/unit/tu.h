/*
 * Helpers shared by the C tests (cmocka). Included after cmocka's headers.
 */
#ifndef QP_TU_H
#define QP_TU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "quic_portal.h"

/* Monotonic clock in milliseconds. */
int64_t tu_now_ms(void);

/* Fill buf with a deterministic pattern derived from seed. */
void tu_fill_pattern(void *buf, size_t len, uint32_t seed);

/* Returns true if a UDP/TCP port on 127.0.0.1 was free a moment ago:
 * a port obtained by binding port 0 and closing the socket. */
uint16_t tu_free_udp_port(void);

/* True when running as root with network-namespace rights. */
bool tu_have_netns_rights(void);

/* True when an executable `name` is in a $PATH directory (for tests that
 * skip when a third-party program, e.g. coturn's turnserver, is missing). */
bool tu_on_path(const char *name);

/* Print "SKIP: reason" and return cmocka's skip. */
#define TU_SKIP(reason)                                                        \
  do {                                                                         \
    print_message("SKIP: %s\n", reason);                                       \
    skip();                                                                    \
  } while (0)

/* ------------------------------------------------------------------------ */
/* Portal helpers: public API only (quic_portal.h)                           */
/* ------------------------------------------------------------------------ */

/* Assert that a qp_* call returned QP_OK; on failure print the call, the code
 * and qp_last_error() of this thread. */
#define TU_QP_OK(expr)                                                         \
  do {                                                                         \
    int tu_rc_ = (expr);                                                       \
    if (tu_rc_ != QP_OK)                                                       \
      fail_msg("%s returned %s (%d), expected QP_OK; qp_last_error: \"%s\"",   \
               #expr, qp_err_name(tu_rc_), tu_rc_, qp_last_error());           \
  } while (0)

/* Assert that a qp_* call returned exactly `want`. */
#define TU_QP_ERR(expr, want)                                                  \
  do {                                                                         \
    int tu_rc_ = (expr);                                                       \
    int tu_want_ = (want);                                                     \
    if (tu_rc_ != tu_want_)                                                    \
      fail_msg("%s returned %s (%d), expected %s (%d); qp_last_error: \"%s\"", \
               #expr, qp_err_name(tu_rc_), tu_rc_, qp_err_name(tu_want_),      \
               tu_want_, qp_last_error());                                     \
  } while (0)

/* Assert that a code held in a variable equals `want`; `why` is the error
 * text captured where the call was made (e.g. on another thread). */
#define TU_RC_EQ(rc, want, why)                                                \
  do {                                                                         \
    int tu_rc_ = (rc);                                                         \
    int tu_want_ = (want);                                                     \
    if (tu_rc_ != tu_want_)                                                    \
      fail_msg("%s is %s (%d), expected %s (%d); error text: \"%s\"", #rc,     \
               qp_err_name(tu_rc_), tu_rc_, qp_err_name(tu_want_), tu_want_,   \
               (why));                                                         \
  } while (0)

/* Case-insensitive substring test; needle NULL or "" is never found. */
bool tu_contains(const char *haystack, const char *needle);

/* Assert that text contains needle (case-insensitive), printing both. */
#define TU_ASSERT_CONTAINS(text, needle)                                       \
  do {                                                                         \
    const char *tu_text_ = (text);                                             \
    const char *tu_needle_ = (needle);                                         \
    if (!tu_contains(tu_text_, tu_needle_))                                    \
      fail_msg("expected \"%s\" to contain \"%s\"", tu_text_ ? tu_text_ : "(null)", \
               tu_needle_);                                                    \
  } while (0)

/* malloc that fails the test (from the main thread) when out of memory. */
void *tu_xmalloc(size_t len);

/* A fresh buffer of len bytes filled by tu_fill_pattern(seed). */
void *tu_pattern(size_t len, uint32_t seed);

/* Compare buf with tu_fill_pattern(len, seed) without allocating. Returns
 * len when equal, else the offset of the first differing byte. */
size_t tu_pattern_mismatch(const void *buf, size_t len, uint32_t seed);

/* Offset of the first byte where a and b differ (n when equal). */
size_t tu_first_difference(const void *a, const void *b, size_t n);

/* Fail unless got/got_len equals want/want_len, printing the lengths and the
 * first differing offset with both bytes. */
void tu_assert_same_bytes(const char *what, const void *got, size_t got_len,
                          const void *want, size_t want_len);

/*
 * Self-describing message: a 16-byte header {magic, stream, index, length}
 * followed by pattern bytes seeded by (stream, index). A receiver can check
 * that a message is whole and tell where it came from. len >= TU_MSG_HEADER.
 */
#define TU_MSG_HEADER 16
void *tu_msg_make(uint32_t stream, uint32_t index, size_t len);
/* True when msg is a whole, intact tu_msg; sets *stream and *index.
 * Otherwise writes the reason into why. */
bool tu_msg_check(const void *msg, size_t len, uint32_t *stream,
                  uint32_t *index, char *why, size_t why_size);

/* Options whose fields are the library defaults (qp_transport_options_init). */
qp_transport_options tu_default_options(void);

/* Poll until qp_portal_local_port(p) is non-zero or timeout_ms passes. */
uint16_t tu_wait_local_port(const qp_portal_t *p, int timeout_ms);

/* Poll until qp_portal_is_connected(p) == want or timeout_ms passes.
 * Returns the elapsed ms, or -1 on timeout. */
int64_t tu_wait_connected(const qp_portal_t *p, bool want, int timeout_ms);

/*
 * qp_create_server / qp_create_client on a thread of its own: the two
 * sides of a traversal run at the same time. Fill opts after
 * tu_create_side_init, then start; join returns the call's code and keeps
 * its error text in err.
 */
typedef struct tu_create_side {
  qp_traverse_options opts;
  bool server;
  qp_portal_t *portal;
  int rc;
  char err[512];
  pthread_t thread;
} tu_create_side_t;
void tu_create_side_init(tu_create_side_t *s, bool server);
void tu_create_side_start(tu_create_side_t *s);
int tu_create_side_join(tu_create_side_t *s);

/*
 * qp_portal_listen on a thread of its own, so that the test can read the
 * port (qp_portal_local_port) and connect from another thread.
 */
typedef struct tu_listener {
  qp_portal_t *portal;
  char ip[64];
  uint16_t port;
  qp_transport_options opts;
  bool has_opts;
  int timeout_ms;
  /* results, valid after tu_listen_join */
  int rc;
  int64_t elapsed_ms;
  char error[512];
  /* internal */
  atomic_int done;
  bool running;
  pthread_t thread;
} tu_listener_t;

/* Start listen(ip, port, opts, timeout_ms) on a thread. ip NULL = 127.0.0.1.
 * Returns the bound port once the portal has one (waits up to 5 s), or 0 if
 * listen ended first or never bound (then tu_listen_join tells why). */
uint16_t tu_listen_start(tu_listener_t *l, qp_portal_t *portal, const char *ip,
                         uint16_t port, const qp_transport_options *opts,
                         int timeout_ms);
/* Join the listen thread; returns its rc (message in l->error). */
int tu_listen_join(tu_listener_t *l);

/* Two portals on 127.0.0.1: the server listens, the client connects. */
typedef struct tu_pair {
  qp_portal_t *server;
  qp_portal_t *client;
  uint16_t port; /* the server's port */
  int server_rc, client_rc;
  int64_t server_ms, client_ms; /* how long listen / connect took */
  char server_error[512], client_error[512];
} tu_pair_t;

/* Create both portals (asserts). */
void tu_pair_create(tu_pair_t *pair);
/* Listen (on a thread) and connect; records both results, asserts nothing.
 * Returns true when both returned QP_OK. */
bool tu_pair_handshake(tu_pair_t *pair, const qp_transport_options *server_opts,
                       const qp_transport_options *client_opts,
                       int listen_timeout_ms, int connect_timeout_ms);
/* Create + handshake, asserting that both sides connected. */
void tu_pair_connect(tu_pair_t *pair, const qp_transport_options *server_opts,
                     const qp_transport_options *client_opts);
/* Destroy both portals (NULL-safe). */
void tu_pair_destroy(tu_pair_t *pair);

/* Send a message and expect QP_OK (asserting, main thread only). */
void tu_send_ok(qp_portal_t *p, const void *buf, size_t len, int timeout_ms);
/* Receive one message, assert QP_OK and that it equals want/want_len. */
void tu_recv_expect(qp_portal_t *p, const void *want, size_t want_len,
                    int timeout_ms);
/* Round trip through an echoing peer: send len pattern bytes, expect them
 * back intact. */
void tu_echo_roundtrip(qp_portal_t *p, size_t len, uint32_t seed,
                       int timeout_ms);

/*
 * An echo peer on a thread: receive a message, send it back, until recv
 * fails. Records why it stopped (QP_ERR_CLOSED after the peer closed).
 */
typedef struct tu_echo {
  qp_portal_t *portal;
  int recv_timeout_ms;
  /* results, valid after tu_echo_join */
  int rc; /* the code that ended the loop */
  const char *failed_call; /* "recv" or "send" */
  char error[512];
  uint64_t messages;
  uint64_t bytes;
  /* internal */
  bool running;
  pthread_t thread;
} tu_echo_t;

void tu_echo_start(tu_echo_t *e, qp_portal_t *portal, int recv_timeout_ms);
int tu_echo_join(tu_echo_t *e);

/* ------------------------------------------------------------------------ */
/* Child processes: the test binary re-executes itself with arguments       */
/* ------------------------------------------------------------------------ */

/* Start /proc/self/exe with args (args[0] is the program name, NULL
 * terminated) and extra environment entries ("K=V", NULL terminated, may be
 * NULL). *out_fd / *err_fd (if not NULL) receive read ends of pipes on the
 * child's stdout / stderr. Returns the pid or -1. */
pid_t tu_spawn_self(char *const args[], char *const extra_env[], int *out_fd,
                    int *err_fd);
/* Wait for pid up to timeout_ms. Returns the exit status (0-255), 128+signal
 * if it was killed by a signal, or -1 if it did not end in time (then it is
 * killed with SIGKILL and reaped). */
int tu_wait_child(pid_t pid, int timeout_ms);
/* Read one '\n'-terminated line from fd into buf (without the newline).
 * False on EOF, error or timeout. */
bool tu_read_line(int fd, char *buf, size_t size, int timeout_ms);
/* Read everything from fd until EOF or timeout into a malloc'ed, NUL
 * terminated string (caller frees). */
char *tu_read_all(int fd, int timeout_ms);

#endif
