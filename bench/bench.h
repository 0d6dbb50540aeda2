/*
 * bench.h: internals of qp-bench, shared by its three files.
 *
 * qp_bench.c    command line, the server modes and the benchmarks
 * bench_conn.c  one message channel over QUIC (the public libquicportal API)
 *               or over plain TCP with the same framing (the baseline)
 * bench_stats.c clock, percentiles, /proc/self/status, error output
 *
 * qp-bench uses only the public header, like any other program would.
 */
#ifndef QP_BENCH_H
#define QP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "quic_portal.h"

/* Exit codes: 0 success, 1 a run-time failure (library error, wrong answer
 * from the peer), 2 a bad command line. */
#define BENCH_EXIT_FAIL 1
#define BENCH_EXIT_USAGE 2

/* Results of bench_conn_recv. Errors are printed where they happen. */
#define BENCH_OK 0
#define BENCH_CLOSED 1 /* the peer closed cleanly between two messages */
#define BENCH_ERR (-1)

typedef enum bench_transport {
  BENCH_QUIC = 0,
  BENCH_TCP = 1,
} bench_transport;

/* One connected message channel. Fields are private to bench_conn.c,
 * except connect_ms, which the caller reads. */
typedef struct bench_conn {
  bench_transport transport;
  double connect_ms; /* listen: handshake of the client; connect: the call */
  /* QUIC */
  qp_portal_t *portal;
  void *qmsg; /* last message of qp_portal_recv; freed on the next recv */
  /* TCP */
  int fd;
  uint8_t *rbuf; /* buffered reader: bytes [rstart, rend) are unread */
  size_t rcap, rstart, rend;
} bench_conn;

/* What bench_conn_stats_get reports. QUIC: qp_portal_get_stats(). TCP
 * (TCP_INFO): retransmitted segments as lost_packets, snd_cwnd * snd_mss and
 * the kernel's smoothed RTT; the QUIC-only fields stay 0 (quic false). */
typedef struct bench_conn_stats {
  uint64_t lost_packets;
  uint64_t cwnd;
  uint64_t srtt_us;
  bool quic;
  uint64_t packets_sent;
  uint64_t packets_received;
  uint64_t pto_count;
  uint64_t handshake_us;
} bench_conn_stats;

/* QUIC transport options changed from the library defaults on the command
 * line (all false/0: pass NULL, the defaults). */
typedef struct bench_net_opts {
  bool cc_set; /* --cc */
  qp_cc cc;
  uint32_t max_udp_payload; /* --max-udp-payload; 0 = default */
  bool mtu_discovery_set;   /* --mtu-discovery or --no-mtu-discovery */
  bool mtu_discovery;
} bench_net_opts;

const char *bench_transport_name(bench_transport t);

/* Server: bind ip:port (ip NULL = 0.0.0.0) and wait up to timeout_ms for
 * one client. Client: connect to host:port within timeout_ms (TCP retries
 * a refused connection until then, as a QUIC client resends its Initial).
 * Both print the reason and return BENCH_ERR on failure. */
int bench_conn_listen(bench_conn *c, bench_transport t, const char *ip,
                      uint16_t port, const bench_net_opts *opts,
                      int timeout_ms);
int bench_conn_connect(bench_conn *c, bench_transport t, const char *host,
                       uint16_t port, const bench_net_opts *opts,
                       int timeout_ms);

/* Send one whole message; BENCH_OK or BENCH_ERR. */
int bench_conn_send(bench_conn *c, const void *buf, size_t len,
                    int timeout_ms);

/* Receive one whole message. *data stays valid until the next recv or
 * destroy. BENCH_OK, BENCH_CLOSED or BENCH_ERR (a timeout is an error). */
int bench_conn_recv(bench_conn *c, const uint8_t **data, size_t *len,
                    int timeout_ms);

/* Statistics of the live connection; BENCH_OK or BENCH_ERR. */
int bench_conn_stats_get(bench_conn *c, bench_conn_stats *out);

/* Client side graceful close: QUIC waits (default linger) until every
 * message is acknowledged; TCP shuts down its sending side and waits for the
 * server to close. BENCH_OK or BENCH_ERR. */
int bench_conn_close(bench_conn *c, int timeout_ms);

/* Free everything; accepts any conn that went through bench_conn_listen or
 * bench_conn_connect, including one whose listen/connect failed. */
void bench_conn_destroy(bench_conn *c);

/* ---- bench_stats.c ---- */

/* Monotonic clock in seconds. */
double bench_now(void);
/* Sleep for seconds (restarts after signals). */
void bench_sleep(double seconds);
/* sorted[int(n * q)], the definition every qp-bench figure uses; sorts v. */
void bench_sort(double *v, size_t n);
double bench_pct(const double *sorted, size_t n, double q);
double bench_mean(const double *v, size_t n);
/* A "kB" field of /proc/self/status ("VmRSS", "VmHWM"); -1 if unknown. */
long bench_status_kb(const char *field);

/* "qp-bench: " + message + newline on stderr. */
void bench_errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Report a failed libquicportal call: what, the code and qp_last_error(). */
void bench_qp_error(const char *what, int err);

/* Big-endian helpers. */
void bench_put_be32(uint8_t *p, uint32_t v);
uint32_t bench_get_be32(const uint8_t *p);
void bench_put_be64(uint8_t *p, uint64_t v);
uint64_t bench_get_be64(const uint8_t *p);

#endif /* QP_BENCH_H */
