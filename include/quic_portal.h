/*
 * quic_portal.h: the public API of libquicportal.
 *
 * libquicportal connects two programs, possibly both behind NATs, and gives
 * them an encrypted QUIC channel that carries whole messages. This header is
 * the only public one; everything else in the library is internal.
 *
 * Conventions
 * - Functions that can fail return 0 (QP_OK) or a negative qp_err code from
 *   QP_ERR_MAP below. After a failure, qp_last_error() returns one sentence a
 *   person can act on, written by the layer that knew the facts.
 * - Objects are opaque and heap-allocated: *_create / *_destroy.
 * - Timeouts are in milliseconds; a negative timeout waits forever, 0 polls.
 * - Thread safety is stated per function. Unless stated, a call on one
 *   object must not race with qp_portal_destroy() of that object. Calls on
 *   different objects never need the caller's locking.
 * - Strings passed in (arguments and fields of options structs) are
 *   borrowed for the call only: the library copies what it keeps, so the
 *   caller may free them when the call returns (exceptions say so, e.g. the
 *   rendezvous callbacks of a portal that recovers its path).
 * - Platform: Linux only. The portal relies on eventfd, ppoll, recvmmsg and
 *   (when available) UDP GSO and SO_RXQ_OVFL; other systems do not build.
 *
 * Compatibility of options structs (the ABI rule)
 * - Every options struct (qp_transport_options, qp_traverse_options)
 *   begins with size_t struct_size, which its *_init macro sets to the size
 *   of the struct as the caller's header declares it. Always fill a struct
 *   with its *_init first, then set fields; struct_size 0 (a struct never
 *   passed to *_init) is refused with QP_ERR_INVALID.
 * - A release only ever appends fields at the end of an options struct: it
 *   never removes, reorders or retypes one. The library reads only the first
 *   struct_size bytes of the caller's struct and gives every later field its
 *   default, so a program built against an older header keeps working with
 *   a newer library (it gets the defaults of the fields it does not know);
 *   fields a newer header added are ignored by an older library.
 * - Other changes to the interface before 1.0 come with a new minor version
 *   (QP_VERSION_MINOR) and a new library SONAME.
 *
 * Environment: QUIC_PORTAL_LOG (log level), QUIC_PORTAL_QLOG_DIR (write one
 * qlog trace per connection there), SSLKEYLOGFILE (GnuTLS logs TLS secrets
 * for Wireshark), QUIC_PORTAL_NGTCP2_LOG (ngtcp2's own debug log).
 *
 * Global state (documented, as promised): the log level and log handler
 * (qp_log_set_level / qp_log_set_handler, read atomically), one flag per
 * process per transport option that could not be honored (so the warning is
 * logged once), and the thread-local last-error message.
 */
#ifndef QUIC_PORTAL_H
#define QUIC_PORTAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define QP_EXPORT __attribute__((visibility("default")))
#else
#define QP_EXPORT
#endif

/* The version of this header: numbers for #if, and as text. qp_version()
 * gives the version of the library actually loaded. */
#define QP_VERSION_MAJOR 0
#define QP_VERSION_MINOR 3
#define QP_VERSION_PATCH 0
#define QP_VERSION "0.3.0"

/* "MAJOR.MINOR.PATCH" of the library (its QP_VERSION). Thread-safe. */
QP_EXPORT const char *qp_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * One table generates the enum, qp_err_name() and qp_strerror(). A number,
 * once released, is never renumbered or reused.
 */
#define QP_ERR_MAP(XX)                                                         \
  XX(INVALID, -1, "invalid argument")                                          \
  XX(NOMEM, -2, "out of memory")                                               \
  XX(TIMEOUT, -3, "timed out")                                                 \
  XX(NOT_CONNECTED, -4, "not connected")                                       \
  XX(CLOSED, -5, "connection closed")                                          \
  XX(TOO_LARGE, -6, "message too large")                                       \
  XX(SOCKET, -7, "socket error")                                               \
  XX(HANDSHAKE, -8, "QUIC handshake failed")                                   \
  XX(PEER_VERIFY, -9, "peer certificate did not match the pinned fingerprint") \
  XX(TLS, -10, "TLS error")                                                    \
  XX(TRANSPORT, -11, "QUIC transport error")                                   \
  XX(IDLE_TIMEOUT, -12, "connection timed out (peer silent)")                  \
  XX(STATE, -13, "operation not valid in the portal's current state")          \
  XX(RESOLVE, -14, "host name could not be resolved")                          \
  XX(INTERRUPTED, -15, "interrupted")                                          \
  XX(STUN, -16, "STUN failure")                                                \
  XX(RENDEZVOUS, -17, "rendezvous store failure")                              \
  XX(PUNCH, -18, "NAT traversal failed")                                       \
  XX(PROTOCOL, -19, "peer violated the protocol")                              \
  XX(NOT_SUPPORTED, -20, "not supported")                                      \
  XX(INTERNAL, -21, "internal error")                                          \
  XX(RELAY, -22, "TURN relay failure")

typedef enum qp_err {
  QP_OK = 0,
#define QP_ERR_ENUM_(name, code, text) QP_ERR_##name = code,
  QP_ERR_MAP(QP_ERR_ENUM_)
#undef QP_ERR_ENUM_
} qp_err;

/* Short symbolic name of an error code ("QP_ERR_TIMEOUT"), never NULL. */
QP_EXPORT const char *qp_err_name(int err);
/* Generic description of an error code, never NULL. */
QP_EXPORT const char *qp_strerror(int err);
/*
 * The message of the last call that failed on this thread: one sentence with
 * the facts (addresses, elapsed time, the underlying errno or library error).
 * Thread-local; valid until the next failing call on the same thread. Never
 * NULL ("" when nothing failed yet).
 */
QP_EXPORT const char *qp_last_error(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

typedef enum qp_log_level {
  QP_LOG_LEVEL_DEBUG = 0,
  QP_LOG_LEVEL_INFO = 1,
  QP_LOG_LEVEL_WARN = 2,
  QP_LOG_LEVEL_ERROR = 3,
  QP_LOG_LEVEL_NONE = 4,
} qp_log_level;

/* Receives one formatted line (no trailing newline). Called from any thread,
 * including the portal's I/O thread, never while a portal's lock is held
 * (lines written under it are queued, at most 8 per lock hold, and handed
 * over when it is released). It should not block for long and must not
 * call back into the library. */
typedef void (*qp_log_cb)(qp_log_level level, const char *message, void *user);

/*
 * Default level: QP_LOG_LEVEL_WARN, or what the environment variable
 * QUIC_PORTAL_LOG says ("debug", "info", "warn", "error", "none"), read
 * the first time the library logs. Default handler: one line to stderr.
 * Thread-safe.
 */
QP_EXPORT void qp_log_set_level(qp_log_level level);
QP_EXPORT qp_log_level qp_log_get_level(void);
/* handler NULL restores the default. Thread-safe. */
QP_EXPORT void qp_log_set_handler(qp_log_cb handler, void *user);

/* ------------------------------------------------------------------------ */
/* Transport options                                                         */
/* ------------------------------------------------------------------------ */

typedef enum qp_cc {
  QP_CC_CUBIC = 0,
  QP_CC_BBR = 1,
  QP_CC_BBR2 = 2,
  QP_CC_RENO = 3,
  /*
   * quic-portal 0.1.x's "fixed": a constant window that ignores loss. The
   * QUIC engine (ngtcp2 0.12) has no hook for a custom controller, so this
   * runs BBR, the engine's controller that does not treat loss as a
   * congestion signal, and logs once that the window is not constant.
   */
  QP_CC_FIXED = 4,
} qp_cc;

/*
 * Transport options. Names and defaults follow quic-portal 0.1.x. Fill with
 * qp_transport_options_init() and then change fields; the library copies the
 * struct, so the caller may free it after the call that takes it. New fields
 * are only appended (the ABI rule at the top of this file).
 */
typedef struct qp_transport_options {
  size_t struct_size; /* set by qp_transport_options_init: do not change */
  double max_idle_timeout_secs;    /* default 10: connection ends after this
                                      long without a packet from the peer */
  double keep_alive_interval_secs; /* default 2: PING when idle this long;
                                      0 disables. Keep it at most a third of
                                      the idle timeout. */
  qp_cc congestion_controller;     /* default QP_CC_BBR (0.1.x: cubic,
                                      which stalls on paths with random
                                      loss; QP_CC_CUBIC keeps it) */
  /* default 1048576. ngtcp2 0.12 has no initial congestion window setting:
   * its initial window is the RFC 9002 one (10 packets). The value is
   * honored only as the constant-window hint of QP_CC_FIXED (not possible
   * in this engine either) and otherwise logged once as not honored. */
  uint64_t initial_window;
  uint64_t conn_receive_window;   /* default 10 MB: connection flow control */
  uint64_t stream_receive_window; /* default 5 MB: stream flow control */
  uint64_t send_window; /* default 10 MB: bytes sent but not yet acknowledged
                           that qp_portal_send() buffers before it blocks */
  uint32_t initial_rtt_ms;          /* default 20 */
  uint32_t max_concurrent_streams;  /* default 100, bidi and uni each */
  uint32_t max_udp_payload;         /* default 1200: minimum MTU of 0.1.x.
                                      Towards a loopback peer (127/8, ::1)
                                      packets are 16 KiB whatever this says,
                                      and the first RTT estimate is 1 ms. */
  bool mtu_discovery;               /* default true (0.1.x: false): probe
                                      for packets up to 1452 bytes; false
                                      keeps max_udp_payload */
  /* default 1 GiB (1073741824), at most QP_MAX_MESSAGE_SIZE: the longest
   * message this side accepts. A peer announcing more has the connection
   * closed (QP_ERR_PROTOCOL, the message names both numbers) before anything
   * is allocated; a message's buffer grows only as its bytes arrive. What one
   * peer can make us hold is about this plus twice stream_receive_window
   * (whole messages not yet taken by qp_portal_recv withhold credit). */
  uint64_t max_message_size;
} qp_transport_options;

/* Fill *opts with the defaults above and set struct_size. A macro, so that
 * it passes the size of the struct this header declares; the function
 * writes exactly struct_size bytes. Thread-safe. */
#define qp_transport_options_init(opts)                                        \
  qp_transport_options_init_size((opts), sizeof(qp_transport_options))
QP_EXPORT void qp_transport_options_init_size(qp_transport_options *opts,
                                              size_t struct_size);

/* Check every field: QP_OK, or QP_ERR_INVALID naming the field and its
 * allowed range (what listen/connect would refuse). Settings that let an
 * idle connection outlive a NAT's UDP mapping (keep-alive off or >= 25 s
 * with an idle timeout above 30 s; mappings commonly expire after 30 s) are
 * accepted but logged as a warning, once per process (listen/connect and
 * qp_create_* log it too). Thread-safe. */
QP_EXPORT int qp_transport_options_check(const qp_transport_options *opts);

/* Parse "cubic", "bbr", "bbr2", "reno" or "fixed" (case-insensitive).
 * Returns QP_ERR_INVALID with a message listing the accepted names. */
QP_EXPORT int qp_cc_from_string(const char *name, qp_cc *out);
/* "cubic", "bbr", ...; "unknown" for an out-of-range value. */
QP_EXPORT const char *qp_cc_to_string(qp_cc cc);

/* ------------------------------------------------------------------------ */
/* Portal: one QUIC connection carrying whole messages                       */
/* ------------------------------------------------------------------------ */

typedef struct qp_portal qp_portal_t;

/* Largest message: the wire format's 4-byte length prefix. */
#define QP_MAX_MESSAGE_SIZE UINT64_C(0xFFFFFFFF)

/* "ab12...": 64 lowercase hex digits of the SHA-256 of the certificate (DER)
 * plus the terminating NUL. */
#define QP_FINGERPRINT_SIZE 65

/*
 * Create a portal: generates a fresh ECDSA P-256 key pair and a self-signed
 * certificate (GnuTLS). No socket and no thread yet.
 * Returns QP_OK and sets *out, or QP_ERR_NOMEM / QP_ERR_TLS. Thread-safe.
 */
QP_EXPORT int qp_portal_create(qp_portal_t **out);

/*
 * Close (as qp_portal_close with its default linger) and free everything.
 * Accepts NULL. Must not race with other calls on the same portal.
 */
QP_EXPORT void qp_portal_destroy(qp_portal_t *portal);

/* Copy this portal's certificate fingerprint, NUL-terminated, into out of
 * out_size bytes (QP_FINGERPRINT_SIZE is enough). QP_ERR_INVALID for a NULL
 * argument, QP_ERR_TOO_LARGE when out_size is smaller (out is then ""). Thread-safe. */
QP_EXPORT int qp_portal_fingerprint(const qp_portal_t *portal, char *out,
                                    size_t out_size);

/*
 * Pin the peer's certificate: the handshake then fails unless the peer
 * presents a certificate whose SHA-256 fingerprint equals this one. On a
 * server, pinning also makes the server require a client certificate.
 * Accepts 64 hex digits, optionally with ':' separators and a "sha256:"
 * prefix. NULL removes the pin (then a client accepts any server
 * certificate, as quic-portal 0.1.x does). Call before listen/connect;
 * QP_ERR_STATE afterwards. The text is copied. Thread-safe (takes the
 * portal's lock), but a pin racing listen/connect may come too late:
 * pin first, then listen or connect.
 */
QP_EXPORT int qp_portal_pin_peer(qp_portal_t *portal, const char *fingerprint);

/*
 * Bind ip:port (ip NULL or "" = "0.0.0.0"; port 0 = any) and wait until one
 * client has completed the QUIC handshake, or timeout_ms passes.
 * opts NULL = defaults. The portal serves exactly one client. A client that
 * fails (its certificate does not match the pin, a broken handshake, or one
 * silent for 5 s after its first packet) is refused and logged, and listen
 * keeps waiting for another until timeout_ms. Without a pin any client is
 * accepted, unauthenticated (logged once it connects).
 * Errors: QP_ERR_SOCKET (bind failed: the message names the address and the
 * reason), QP_ERR_TIMEOUT (nobody came), QP_ERR_PEER_VERIFY or
 * QP_ERR_HANDSHAKE (nobody but refused clients came by the timeout: the
 * code and reason of the last, and how many), QP_ERR_STATE (already used),
 * QP_ERR_INVALID.
 */
QP_EXPORT int qp_portal_listen(qp_portal_t *portal, const char *ip,
                               uint16_t port, const qp_transport_options *opts,
                               int timeout_ms);

/*
 * Connect from local_port (0 = any) to host:port and wait until the
 * handshake completes or timeout_ms passes. host is an IPv4/IPv6 literal or
 * a name. Errors: QP_ERR_TIMEOUT (nobody answered: the message says where
 * and how long), QP_ERR_RESOLVE, QP_ERR_SOCKET, QP_ERR_PEER_VERIFY,
 * QP_ERR_HANDSHAKE, QP_ERR_STATE, QP_ERR_INVALID.
 */
QP_EXPORT int qp_portal_connect(qp_portal_t *portal, const char *host,
                                uint16_t port, uint16_t local_port,
                                const qp_transport_options *opts,
                                int timeout_ms);

/*
 * Queue one whole message of len bytes (0 to QP_MAX_MESSAGE_SIZE). The bytes
 * are copied once; the caller may reuse buf on return. Blocks while the
 * bytes sent but not yet acknowledged exceed the send window, for at most
 * timeout_ms. A message never goes out partly: on any error nothing of it
 * was queued.
 * Errors: QP_ERR_TOO_LARGE (refused before anything is sent),
 * QP_ERR_NOT_CONNECTED (never connected), QP_ERR_CLOSED (closed by either
 * side, also for calls made after qp_portal_close), QP_ERR_TIMEOUT,
 * QP_ERR_INTERRUPTED, QP_ERR_NOMEM, QP_ERR_INVALID (NULL portal, or NULL
 * buf with len > 0).
 * Thread-safe: may run while another thread blocks in qp_portal_recv.
 */
QP_EXPORT int qp_portal_send(qp_portal_t *portal, const void *buf, size_t len,
                             int timeout_ms);

/*
 * Wait up to timeout_ms for the next whole message. On QP_OK, *msg points to
 * a buffer of *len bytes that the caller owns and frees with qp_free() (for
 * a 0-byte message, *msg is a valid pointer to 0 bytes). A timeout returns
 * QP_ERR_TIMEOUT and keeps any partly received message buffered for the next
 * call: nothing is ever lost or split. Messages that arrived before the peer
 * closed are still returned; after them, QP_ERR_CLOSED.
 * Errors: QP_ERR_TIMEOUT, QP_ERR_NOT_CONNECTED (never connected),
 * QP_ERR_CLOSED (closed by either side, also after qp_portal_close),
 * QP_ERR_IDLE_TIMEOUT, QP_ERR_TRANSPORT (also when this side sent a message
 * longer than the peer's max_message_size: the peer closed the connection),
 * QP_ERR_PROTOCOL (the peer announced a message longer than this side's
 * max_message_size: the connection is closed), QP_ERR_INTERRUPTED,
 * QP_ERR_INVALID (a NULL argument).
 * Thread-safe; concurrent receivers each get whole, different messages.
 */
QP_EXPORT int qp_portal_recv(qp_portal_t *portal, void **msg, size_t *len,
                             int timeout_ms);

/* Free a message returned by qp_portal_recv. Accepts NULL. */
QP_EXPORT void qp_free(void *msg);

/* True while the handshake is complete and the connection is open.
 * Thread-safe. */
QP_EXPORT bool qp_portal_is_connected(const qp_portal_t *portal);

/*
 * Close gracefully: wait up to linger_ms (negative: the default, 5000 ms)
 * -- or until qp_portal_interrupt --
 * until every queued message is acknowledged by the peer, then send a QUIC
 * CONNECTION_CLOSE and stop the I/O thread. Idempotent: closing a closed or
 * never-connected portal returns QP_OK. Returns QP_ERR_TIMEOUT if the linger
 * expired with data unacknowledged (the connection is closed anyway).
 * Blocked qp_portal_send/recv calls in other threads return QP_ERR_CLOSED.
 * QP_ERR_INVALID for a NULL portal.
 */
QP_EXPORT int qp_portal_close(qp_portal_t *portal, int linger_ms);

/*
 * Make every call blocked on this portal right now (listen, connect, send,
 * recv) return QP_ERR_INTERRUPTED: listen/connect give up their attempt,
 * send queues nothing, recv loses nothing. Calls made afterwards are not
 * affected. Thread-safe (not async-signal-safe: call it from a thread, e.g.
 * one that watches for Ctrl-C).
 */
QP_EXPORT int qp_portal_interrupt(qp_portal_t *portal);

/* Connection statistics, for benchmarks and diagnostics. */
typedef struct qp_portal_stats {
  uint64_t packets_sent;
  uint64_t packets_received;
  /* Datagrams the kernel dropped at this portal's socket because its receive
   * buffer was full (SO_RXQ_OVFL; Linux, else 0): on loopback the only way a
   * packet is lost. */
  uint64_t packets_lost;
  uint64_t pto_count;       /* current consecutive probe timeouts (RFC 9002) */
  uint64_t bytes_in_flight; /* current */
  uint64_t cwnd;            /* current congestion window, bytes */
  uint64_t smoothed_rtt_us;
  uint64_t handshake_us;    /* from listen/connect start to handshake done */
  /* Paths found after the previous one died (qp_create_* portals with
   * reconnect_timeout_ms; each is logged at info level). */
  uint64_t recoveries;
} qp_portal_stats;

/* Thread-safe. QP_ERR_NOT_CONNECTED if the connection was never made. */
QP_EXPORT int qp_portal_get_stats(qp_portal_t *portal, qp_portal_stats *out);

/* The local UDP port the portal is bound to, or 0 before listen/connect.
 * Thread-safe. */
QP_EXPORT uint16_t qp_portal_local_port(const qp_portal_t *portal);

/* The connected peer's address: its numeric IP in ip (NUL-terminated;
 * QP_PEER_IP_SIZE bytes always suffice) and its UDP port in *port. For a
 * portal from qp_create_client this is the server's address on the path
 * traversal validated. QP_ERR_NOT_CONNECTED before a connection was made,
 * QP_ERR_INVALID for a NULL argument or a too small buffer. Thread-safe. */
#define QP_PEER_IP_SIZE 64
QP_EXPORT int qp_portal_peer_address(const qp_portal_t *portal, char *ip,
                                     size_t ip_size, uint16_t *port);

/* The kind of path a connected portal uses (qp_portal_path). */
typedef enum qp_path_kind {
  QP_PATH_NONE = 0,      /* not connected through traversal (listen/connect) */
  QP_PATH_HOST = 1,      /* direct, to the peer's own (host) address */
  QP_PATH_SRFLX = 2,     /* direct, to its public address from STUN */
  QP_PATH_PRFLX = 3,     /* direct, to an address learned from its checks */
  QP_PATH_PREDICTED = 4, /* direct, to a predicted port (sequential NAT) */
  QP_PATH_BIRTHDAY = 5,  /* direct, found by the birthday technique */
  QP_PATH_RELAYED = 6,   /* through a TURN relay */
  QP_PATH_MAPPED = 7,    /* direct, to a public port the peer's gateway
                            forwards to it (UPnP IGD, NAT-PMP or PCP) */
} qp_path_kind;

/*
 * The path in use. Returns its kind (>= 0) and writes a description into
 * desc (NUL-terminated; may be NULL when desc_size is 0), e.g.
 * "direct (server-reflexive, IPv4) to 198.51.100.7:4242",
 * "direct (port mapping, UPnP, IPv4) to 203.0.113.7:4242" (the peer's
 * gateway forwards that port: QP_PATH_MAPPED) or
 * "direct (host, IPv6) to [2001:db8:1::2]:4242" (a direct path names its
 * address family; an IPv4 peer is written as IPv4 on the dual-stack
 * socket too) or "relayed via our TURN
 * server 203.0.113.10:3478 (relayed address 203.0.113.10:40123)" or
 * "relayed via the peer's TURN allocation 203.0.113.10:40555".
 * *changed_ns (may be NULL) gets when it took effect (CLOCK_MONOTONIC ns):
 * it changes after a recovery, and when a relayed connection moved to a
 * direct path ("direct (server-reflexive, IPv4) to ..., after 3.7 s through
 * the relay"). QP_ERR_INVALID for a NULL portal. Thread-safe.
 */
#define QP_PATH_DESC_SIZE 160
QP_EXPORT int qp_portal_path(const qp_portal_t *portal, char *desc,
                             size_t desc_size, uint64_t *changed_ns);

/* ------------------------------------------------------------------------ */
/* NAT traversal: two peers that share only a key-value store                */
/* ------------------------------------------------------------------------ */

/*
 * A key-value store supplied by the caller (the Python package passes any
 * mapping through these). Keys are NUL-terminated strings; values are bytes.
 * - put: store a copy of len bytes; 0, or negative on failure.
 * - get: 1 and a malloc()ed copy in *value (the library free()s it) with its
 *   length in *len; 0 when the key is absent; negative on failure.
 * - del: remove the key (absent is fine); 0, or negative on failure.
 * Called from the thread that called qp_create_*, never with a lock held.
 * A failure is any negative number: the library call then fails with
 * QP_ERR_RENDEZVOUS and a message naming the operation, the key and the
 * number, whatever the number is (codes of this library's table included).
 */
typedef struct qp_rendezvous_callbacks {
  int (*put)(void *user, const char *key, const void *value, size_t len);
  int (*get)(void *user, const char *key, char **value, size_t *len);
  int (*del)(void *user, const char *key);
} qp_rendezvous_callbacks;

typedef struct qp_traverse_options {
  size_t struct_size; /* set by qp_traverse_options_init: do not change */
  /* Where the peers meet: "mem:NAME" (threads of one process), "dir:PATH"
   * (processes sharing a folder), "redis://HOST[:PORT][/DB]". Ignored when
   * callbacks is set. */
  const char *rendezvous;
  const qp_rendezvous_callbacks *callbacks;
  void *callbacks_user;
  const char *session;   /* namespace inside the store; default "default" */
  uint16_t local_port;   /* UDP port to bind (0 = any); default 0 */
  /* "host:port" STUN servers, queried at once from the portal's socket;
   * none = host candidates only (peers on one network). */
  const char *const *stun_servers;
  size_t stun_server_count;
  int punch_timeout_ms;  /* from start to a validated path; default 15000 */
  /* Legacy mode: do not pin the peer's certificate fingerprint from the
   * rendezvous record. Off by default: both sides verify each other. */
  bool no_pin;
  const qp_transport_options *transport; /* NULL = defaults */
  /* Polled at least every 50 ms while traversing; returning true makes
   * qp_create_* return QP_ERR_INTERRUPTED (e.g. on Ctrl-C). May be NULL. */
  bool (*cancel)(void *user);
  void *cancel_user;
  /* NATs that map each destination to its own port (docs/internals/
   * hard-nat.md); 0 = default. When this side's NAT does so at random and
   * the peer's does not: extra UDP sockets to open (default 256, at most
   * 1024, -1 = none). When the peer's does: probes per second (default
   * 4000) and at most this many per attempt (default 8192). */
  int hard_nat_sockets;
  int hard_nat_probe_rate;
  int hard_nat_max_probes;
  /* Sealed rendezvous: a secret both sides were given out of band (8 to
   * 256 bytes; NULL or "" = none, as 0.1.x). Records are then encrypted and
   * authenticated (AES-256-GCM under keys derived by HKDF-SHA256 from the
   * secret and the session) and stored under a name derived from them, so
   * the store shows neither the session name nor candidates nor ICE
   * credentials, and one who can write it but lacks the secret cannot
   * redirect either side. A peer record that does not open is ignored and
   * counted; if only such records were seen, qp_create_* fails with
   * QP_ERR_RENDEZVOUS saying so (another secret on the other side, or a
   * writer without it). Both sides must give the same secret. Read during
   * the call only; the keys derived from it are wiped before it returns.
   * docs/security.md has the threat model. */
  const char *secret;
  /* Resilience (docs/internals/resilience.md): when the path dies (no
   * acknowledgement for max(2 s, 3 PTOs): a NAT rebinding, an address
   * change, an outage), both sides run traversal again through the same
   * store on the same socket and QUIC moves onto the new path; send and
   * recv just pause, nothing is lost, duplicated or reordered. A peer that
   * publishes no new record within the idle timeout of its last packet is
   * gone (QP_ERR_IDLE_TIMEOUT, as without recovery); otherwise, when no new
   * path works within this many ms, send/recv fail with QP_ERR_PUNCH and a
   * message listing what was tried. Default 30000; 0 = off (the 0.2
   * behavior: the connection ends at the idle timeout); negative = the
   * default. The rendezvous callbacks, if used, must outlive the portal. */
  int reconnect_timeout_ms;
  /* How long to wait for the peer's record to appear, as quic-portal 0.1.x
   * did: negative = without limit (the default, -1; stop it with cancel),
   * positive = at most this many ms (then QP_ERR_TIMEOUT naming the key
   * and store), 0 = no separate wait (punch_timeout_ms counts from the
   * start and covers the wait too, as before 0.2). With a wait,
   * punch_timeout_ms counts from when the peer's record was adopted (again
   * from each newer record of a restarted peer). */
  int wait_timeout_ms;
  /* Local address to bind the traversal (and then QUIC) socket to: a
   * numeric IPv4 or IPv6 address; NULL or "" = every address (the default).
   * Host candidates are then this address only, so "127.0.0.1" keeps two
   * peers on one machine on loopback (and its fast path). Borrowed for the
   * call. QP_ERR_INVALID when it is not a numeric address, QP_ERR_SOCKET
   * when it cannot be bound (not an address of this machine). */
  const char *local_ip;
  /* TURN relays (RFC 8656, e.g. coturn) for the pairs no direct path joins
   * (both NATs map each destination to its own port at random). Each
   * string is "USER:PASS@HOST[:PORT]" (a static user) or, for servers that
   * hand out coturn REST credentials (use-auth-secret),
   * "SECRET@HOST[:PORT]" listed in turn_secret_servers; port 3478 by
   * default, IPv6 hosts in brackets. Traversal allocates on every server
   * at once (UDP, on the portal's one socket), publishes the relayed
   * addresses as the lowest-priority candidates and checks them like any
   * pair; when a relayed pair validates first, the server side waits
   * QP_RELAY_GRACE_MS for a direct pair before it nominates the relay.
   * QUIC then runs through the relay (ChannelData, 4 bytes per packet),
   * while both sides keep checking the direct pairs: when one opens, QUIC
   * migrates onto it (qp_portal_path changes) and the allocation goes.
   * A server that fails is logged and skipped; with relay = QP_RELAY_ONLY
   * and no allocation, qp_create_* fails with QP_ERR_RELAY and the
   * server's message ("TURN server 203.0.113.10:3478 answered 401 to user
   * 'u': wrong credentials ..."). Borrowed for the call; at most
   * QP_MAX_TURN_SERVERS in all. */
  const char *const *turn_servers;
  size_t turn_server_count;
  const char *const *turn_secret_servers;
  size_t turn_secret_server_count;
  /* QP_RELAY_AUTO (0, the default): direct when possible, else the relay.
   * QP_RELAY_NEVER: no allocation even when TURN servers are given.
   * QP_RELAY_ONLY: only relayed paths (no host or server-reflexive
   * candidate is published; every packet goes through our own relay). */
  int relay;
  /* Port mapping (docs/internals/portmap.md): while gathering, traversal
   * asks the gateway for a public UDP port for the portal's socket by UPnP
   * IGD, NAT-PMP and PCP at once; gathering waits for the gateway at most
   * 20 ms after STUN is done (so a gateway that answers none of them adds
   * at most that), and a mapping granted later is published as soon as it
   * comes. The mapped address is published as a candidate ranked
   * between host and server-reflexive; the mapping is renewed while the
   * portal lives and deleted when it is destroyed. Only asked when a STUN
   * server beyond this machine is given (no STUN server: peers on one
   * network). false (the default) = ask; no_portmap skips all three,
   * no_upnp / no_natpmp / no_pcp skip one. */
  bool no_portmap;
  bool no_upnp;
  bool no_natpmp;
  bool no_pcp;
} qp_traverse_options;

/* Relay policies (qp_traverse_options.relay). */
#define QP_RELAY_AUTO 0
#define QP_RELAY_NEVER 1
#define QP_RELAY_ONLY 2
/* TURN servers one traversal allocates on at most (both lists together). */
#define QP_MAX_TURN_SERVERS 8
/* How long the controlling (server) side waits for a direct pair once only
 * a relayed pair validated, when the NATs leave a direct path possible
 * (four times this while the birthday technique runs: its median is about
 * 230 ms in the NAT lab). */
#define QP_RELAY_GRACE_MS 250

/* Fill *opts with the defaults above and set struct_size (a macro, as
 * qp_transport_options_init). Strings in the struct are borrowed for the
 * qp_create_* call (see the conventions at the top). Thread-safe. */
#define qp_traverse_options_init(opts)                                         \
  qp_traverse_options_init_size((opts), sizeof(qp_traverse_options))
QP_EXPORT void qp_traverse_options_init_size(qp_traverse_options *opts,
                                             size_t struct_size);

/*
 * Meet the peer through the rendezvous, punch through both NATs with
 * authenticated STUN checks on one UDP socket, then run QUIC on that same
 * socket with each side's certificate pinned to the fingerprint the other
 * published. On success *out is a connected portal (free it with
 * qp_portal_destroy). The server side is the QUIC server; run one of each.
 * Errors: QP_ERR_PUNCH (no path within punch_timeout_ms: the message lists
 * the candidate pairs tried and why each failed), QP_ERR_RENDEZVOUS,
 * QP_ERR_STUN, QP_ERR_PROTOCOL (a malformed peer record), QP_ERR_PEER_VERIFY,
 * QP_ERR_HANDSHAKE, QP_ERR_SOCKET, QP_ERR_INTERRUPTED, QP_ERR_INVALID.
 * Blocks the calling thread (the rendezvous callbacks and cancel run on
 * it). Thread-safe: any number of calls may run at once, each with its own
 * options (one server and one client per session and store at a time).
 */
QP_EXPORT int qp_create_server(const qp_traverse_options *opts, qp_portal_t **out);
QP_EXPORT int qp_create_client(const qp_traverse_options *opts, qp_portal_t **out);

/* ------------------------------------------------------------------------ */
/* STUN: an embedded server, and NAT behavior discovery                      */
/* ------------------------------------------------------------------------ */

typedef struct qp_stun_server qp_stun_server_t;

/*
 * Start a STUN server on its own thread. primary: "ip:port" (port 0 = any).
 * alternate: NULL for one socket, or "ip:port" of a second address to answer
 * RFC 5780 behavior discovery (OTHER-ADDRESS, CHANGE-REQUEST) on 2 IPs x 2
 * ports. Errors: QP_ERR_INVALID, QP_ERR_SOCKET (names the address),
 * QP_ERR_NOMEM, QP_ERR_INTERNAL (no thread). The address texts are copied.
 * Thread-safe: servers are independent of each other and of portals.
 */
QP_EXPORT int qp_stun_server_start(const char *primary, const char *alternate,
                                   qp_stun_server_t **out);
/* The primary port actually bound (0 for NULL). Thread-safe. */
QP_EXPORT uint16_t qp_stun_server_port(const qp_stun_server_t *server);
/* Stop the thread, close the sockets and free. Accepts NULL. Must not race
 * with another call on the same server. */
QP_EXPORT void qp_stun_server_stop(qp_stun_server_t *server);

typedef struct qp_nat_report {
  char type[40];            /* "open", "full cone", "restricted cone",
                               "port-restricted cone", "symmetric",
                               "UDP blocked", "unknown" */
  char mapping[48];         /* "endpoint-independent", ... */
  char filtering[48];
  char port_allocation[24]; /* "preserved", "sequential", "random", ... */
  char local[64];           /* "ip:port" of the probing socket */
  char mapped[64];          /* public "ip:port" seen by the server */
  bool rfc5780;             /* the server supports behavior discovery */
  bool has_port_delta;
  int port_delta;
  char summary[256];        /* one line with all of the above */
} qp_nat_report;

/*
 * Learn the public address and the NAT's behavior (RFC 5780) from server
 * ("host:port"); second_server (may be NULL) is used to compare mappings
 * when the first lacks RFC 5780. Blocks at most timeout_ms.
 * Errors: QP_ERR_INVALID, QP_ERR_RESOLVE, QP_ERR_SOCKET, QP_ERR_STUN.
 * A server that never answers gives QP_OK with type "UDP blocked".
 * Names are looked up within timeout_ms too. Opens two UDP sockets of its
 * own for the call. Thread-safe.
 */
QP_EXPORT int qp_nat_discover(const char *server, const char *second_server,
                              int timeout_ms, qp_nat_report *out);

/* ------------------------------------------------------------------------ */
/* TURN: checking a relay before relying on it                               */
/* ------------------------------------------------------------------------ */

typedef struct qp_turn_check_result {
  char server[QP_PEER_IP_SIZE + 8];  /* the server, resolved: "ip:port" */
  char relayed[QP_PEER_IP_SIZE + 8]; /* the relayed address it allocated */
  char mapped[QP_PEER_IP_SIZE + 8];  /* this side's public address */
  uint32_t lifetime_s;               /* of the allocation */
  int64_t allocate_ms;               /* first Allocate to the allocation */
  int64_t relay_ms; /* permission plus a datagram through the relay, both
                       ways */
} qp_turn_check_result;

/*
 * Check one TURN server end to end on a UDP socket of its own: allocate,
 * give itself a permission for its own public address, loop a datagram
 * through the relay in both directions, deallocate. server is
 * "USER:PASS@HOST[:PORT]", or with shared_secret "SECRET@HOST[:PORT]"
 * (coturn REST credentials), as in qp_traverse_options.turn_servers.
 * Blocks for the name lookup and at most timeout_ms (> 0) more.
 * Returns QP_OK with *out filled, or QP_ERR_INVALID (the spec, quoted
 * without its password), QP_ERR_RESOLVE, QP_ERR_SOCKET, QP_ERR_RELAY (wrong
 * credentials: "answered 401"; quota: 486; no answer; or the relay did not
 * carry a datagram one way: the message says which). *out holds what was
 * learnt before a failure (empty strings otherwise). The password is
 * wiped before it returns. Thread-safe.
 */
QP_EXPORT int qp_turn_check(const char *server, bool shared_secret,
                            int timeout_ms, qp_turn_check_result *out);

#ifdef __cplusplus
}
#endif

#endif /* QUIC_PORTAL_H */
