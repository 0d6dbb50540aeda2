#include "transport/transport.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "common/error.h"
#include "common/log.h"
#include "transport/framing.h"

/* 0.1.x's client sends this server name; a server ignores it. */
#define TRANSPORT_SERVER_NAME "quic-portal"

/* Length prefix of every message on the wire (framing.h). */
#define MSG_HEADER_LEN FRAMING_HEADER_LEN

/* Connection IDs we issue: 16 random bytes (RFC 9000 allows up to 20). */
#define TRANSPORT_CID_LEN 16

/* Stream data vectors handed to ngtcp2 per packet: several small messages
 * can share one packet. */
#define TRANSPORT_MAX_VECS 16

/* One flush writes at most this many GSO batches before returning, so the
 * I/O thread also reads acknowledgements between bursts. */
#define TRANSPORT_MAX_BATCHES_PER_FLUSH 16

/* Send buffer: one GSO batch of up to 64 segments (Linux limit). */
#define TRANSPORT_SEND_BUF (UDP_GSO_MAX_BYTES)

/* How far ngtcp2 may grow the receive windows past stream_receive_window and
 * conn_receive_window. With random loss a lost packet holds up the credit for
 * everything after it for about two RTTs (detection, then the retransmission):
 * at 1% loss each way on a 20 ms, 1 Gbit/s path the default 5 MB window
 * stalled the sender (bytes in flight half the congestion window; bulk
 * 0.36 -> 0.48 Gbit/s, medians of 5, with this). It also bounds what a peer
 * can make us buffer out of order: 4 x 5 MB by default. */
#define TRANSPORT_WINDOW_GROWTH 4

/* Packet size towards a loopback peer; equals what we advertise as
 * max_udp_payload_size, so two quic-portal peers can both use it. */
#define TRANSPORT_LOOPBACK_PAYLOAD UDP_RECV_DATAGRAM_MAX
#define TRANSPORT_LOOPBACK_INITIAL_RTT (1 * NGTCP2_MILLISECONDS)

/* Largest packet path MTU discovery may find: the UDP payload of a
 * 1500-byte Ethernet MTU over IPv6 (1500 - 40 - 8). ngtcp2 0.12 probes at
 * most 1444 bytes (a PPPoE path), so this admits all its probes. */
#define TRANSPORT_PMTUD_CEILING 1452

/* RFC 9000 section 18.2: active_connection_id_limit must be at least 2. */
#define TRANSPORT_ACTIVE_CID_LIMIT 7

/* A server's handshake must complete within this long after the client's
 * first Initial: a silent half-open attempt (a stranger that sent one
 * packet) then frees listen's only slot for the right client, whose
 * Initials are retransmitted meanwhile. 5 s covers many RTTs and losses. */
#define TRANSPORT_SERVER_HANDSHAKE_TIMEOUT (5 * NGTCP2_SECONDS)

/* Copies of the CONNECTION_CLOSE packet sent when this side closes. */
#define TRANSPORT_CLOSE_COPIES 3

/* The application error code sent with a graceful close. */
#define TRANSPORT_APP_NO_ERROR 0
/* The application error code sent when the peer broke the framing (a
 * message longer than our max_message_size). */
#define TRANSPORT_APP_PROTOCOL_ERROR 1

struct transport_msg {
  struct transport_msg *next;
  uint64_t end_offset; /* stream offset just past this message */
  size_t len;          /* MSG_HEADER_LEN + payload */
  uint8_t data[];
};

typedef struct in_msg {
  struct in_msg *next;
  uint8_t *data;
  size_t len;
} in_msg_t;

struct transport {
  ngtcp2_crypto_conn_ref conn_ref; /* gnutls session ptr points here */
  ngtcp2_conn *conn;
  gnutls_session_t session;
  transport_config_t cfg;
  transport_state_t state;

  int64_t stream_id; /* -1 until the message stream exists */
  bool stream_announce; /* client: send an empty STREAM frame to open it */
  bool handshake_done;
  bool peer_finished;

  /* Ending: error code + message, and whether a CONNECTION_CLOSE is due. */
  int err_code;
  char err_msg[384];
  bool close_pending;
  ngtcp2_connection_close_error ccerr;
  bool verify_failed;
  char verify_msg[256];

  /* Outgoing: head (oldest unacknowledged) .. cur (next unsent) .. tail. */
  transport_msg_t *out_head, *out_tail, *out_cur;
  size_t out_cur_off;
  uint64_t out_enqueued; /* stream bytes ever queued */
  uint64_t out_acked;    /* stream bytes acknowledged */

  /* Incoming: the message being assembled, then the queue of whole ones. */
  framing_parser_t parser;
  bool in_failed; /* out of memory queueing a message */
  in_msg_t *in_head, *in_tail;
  uint64_t in_queued_bytes;
  uint64_t credit_deferred;

  uint64_t packets_sent, packets_received;
  /* Dead-path detection (transport_path_dead): since when ack-eliciting
   * bytes have been in flight without an acknowledgement making progress
   * (0: nothing in flight, or progress on the last read). */
  uint64_t stall_since;
  /* When the last packet from the peer was processed: the idle timeout
   * counts from it (see transport_handle_expiry). */
  uint64_t last_rx_ns;
  /* A PING was forced after the peer fell quiet (see quiet_deadline); the
   * keep-alive timeout goes back to the configured one after the flush. */
  bool quiet_probe_sent, quiet_probe_pending;
  /* Recovery (transport_hold_timers, transport_migrate). */
  bool timers_held;
  uint64_t held_at_rx; /* packets_received when the hold began */
  bool migrated;       /* client: the path's local side is `alias` */
  udp_addr_t alias, migrate_remote;
  uint8_t alias_gen;
  FILE *qlog; /* QUIC_PORTAL_QLOG_DIR set: this connection's qlog trace */
  /* Loopback peer: nothing between us and the peer's socket buffer can
   * queue, so send what the window allows at once, as TCP does on lo. */
  bool no_pacing;
  uint8_t sendbuf[TRANSPORT_SEND_BUF];
};

/* ---- error bookkeeping ------------------------------------------------- */

static void end_with(transport_t *t, int code, bool send_close,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void end_with(transport_t *t, int code, bool send_close,
                     const char *fmt, ...) {
  if (t->state == TRANSPORT_CLOSED)
    return;
  t->state = TRANSPORT_CLOSED;
  t->err_code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->err_msg, sizeof(t->err_msg), fmt, ap);
  va_end(ap);
  t->close_pending = send_close;
  QP_LOG_INFO("connection ended: %s", t->err_msg);
}

static const char *peer_name(const transport_t *t, char *buf, size_t size) {
  return udp_addr_to_string(&t->cfg.remote, buf, size);
}

/* The peer's CONNECTION_CLOSE, in words. */
static void end_by_peer(transport_t *t) {
  ngtcp2_connection_close_error cc;
  ngtcp2_conn_get_connection_close_error(t->conn, &cc);
  char who[UDP_ADDRSTRLEN];
  peer_name(t, who, sizeof(who));
  int reason_len = (int)(cc.reasonlen > 100 ? 100 : cc.reasonlen);
  const char *reason = cc.reason ? (const char *)cc.reason : "";
  bool tls_alert = cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT &&
                   cc.error_code >= NGTCP2_CRYPTO_ERROR &&
                   cc.error_code < NGTCP2_CRYPTO_ERROR + 0x100;
  if (tls_alert && !t->handshake_done) {
    end_with(t, QP_ERR_HANDSHAKE, false,
             "peer %s aborted the handshake with TLS alert %u (%s): it may "
             "have pinned a different certificate fingerprint",
             who, (unsigned)(cc.error_code - NGTCP2_CRYPTO_ERROR),
             gnutls_alert_get_strname(
                 (gnutls_alert_description_t)(cc.error_code - NGTCP2_CRYPTO_ERROR)));
    return;
  }
  bool graceful = cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
                      ? cc.error_code == TRANSPORT_APP_NO_ERROR
                      : cc.error_code == NGTCP2_NO_ERROR;
  if (graceful)
    end_with(t, QP_ERR_CLOSED, false, "peer %s closed the connection", who);
  else
    end_with(t, t->handshake_done ? QP_ERR_TRANSPORT : QP_ERR_HANDSHAKE, false,
             "peer %s closed the connection with %s error 0x%llx \"%.*s\"", who,
             cc.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION
                 ? "application"
                 : "transport",
             (unsigned long long)cc.error_code, reason_len, reason);
}

/* A fatal ngtcp2 error from read, write or expiry handling. */
static void end_by_liberr(transport_t *t, int liberr, const char *during) {
  char who[UDP_ADDRSTRLEN];
  peer_name(t, who, sizeof(who));
  switch (liberr) {
  case NGTCP2_ERR_DRAINING:
    end_by_peer(t);
    return;
  case NGTCP2_ERR_IDLE_CLOSE:
    end_with(t, QP_ERR_IDLE_TIMEOUT, false,
             "no packet from %s for %.1f s (idle timeout): the peer is gone "
             "or the path is broken",
             who, t->cfg.opts.max_idle_timeout_secs);
    return;
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    end_with(t, QP_ERR_HANDSHAKE, false,
             "QUIC handshake with %s did not complete within %llu s of its "
             "first packet (a half-open attempt): dropped",
             who, (unsigned long long)(TRANSPORT_SERVER_HANDSHAKE_TIMEOUT /
                                       NGTCP2_SECONDS));
    return;
  case NGTCP2_ERR_DROP_CONN:
    end_with(t, QP_ERR_TRANSPORT, false, "connection to %s dropped (%s)", who,
             during);
    return;
  case NGTCP2_ERR_CRYPTO: {
    uint8_t alert = ngtcp2_conn_get_tls_alert(t->conn);
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&t->ccerr, alert,
                                                                NULL, 0);
    if (t->verify_failed)
      end_with(t, QP_ERR_PEER_VERIFY, true, "%s: %s", who, t->verify_msg);
    else
      end_with(t, QP_ERR_HANDSHAKE, true,
               "TLS handshake with %s failed (alert %u %s) during %s", who,
               alert, gnutls_alert_get_strname((gnutls_alert_description_t)alert),
               during);
    return;
  }
  default:
    ngtcp2_connection_close_error_set_transport_error_liberr(&t->ccerr, liberr,
                                                             NULL, 0);
    end_with(t, t->handshake_done ? QP_ERR_TRANSPORT : QP_ERR_HANDSHAKE, true,
             "QUIC error with %s during %s: %s", who, during,
             ngtcp2_strerror(liberr));
  }
}

/* ---- incoming messages -------------------------------------------------- */

/* framing_msg_cb: queue a whole message for transport_pop. */
static void in_complete(void *ctx, uint8_t *data, size_t len) {
  transport_t *t = ctx;
  in_msg_t *m = malloc(sizeof(*m));
  if (m == NULL) {
    free(data);
    t->in_failed = true;
    return;
  }
  *m = (in_msg_t){.data = data, .len = len};
  if (t->in_tail)
    t->in_tail->next = m;
  else
    t->in_head = m;
  t->in_tail = m;
  t->in_queued_bytes += len + MSG_HEADER_LEN;
}

/* Return flow-control credit for n consumed bytes now, or later when the
 * application has taken enough whole messages: this is the backpressure
 * that bounds memory when the application does not read. */
static void give_credit(transport_t *t, int64_t stream_id, uint64_t n) {
  if (stream_id == t->stream_id &&
      t->in_queued_bytes >= t->cfg.opts.stream_receive_window) {
    t->credit_deferred += n;
    return;
  }
  ngtcp2_conn_extend_max_stream_offset(t->conn, stream_id, n);
  ngtcp2_conn_extend_max_offset(t->conn, n);
}

bool transport_has_message(const transport_t *t) { return t->in_head != NULL; }

bool transport_pop(transport_t *t, uint8_t **data, size_t *len,
                   bool *credit_returned) {
  *credit_returned = false;
  in_msg_t *m = t->in_head;
  if (m == NULL)
    return false;
  t->in_head = m->next;
  if (t->in_head == NULL)
    t->in_tail = NULL;
  t->in_queued_bytes -= m->len + MSG_HEADER_LEN;
  *data = m->data;
  *len = m->len;
  free(m);
  if (t->credit_deferred > 0 &&
      t->in_queued_bytes < t->cfg.opts.stream_receive_window &&
      t->state != TRANSPORT_CLOSED) {
    ngtcp2_conn_extend_max_stream_offset(t->conn, t->stream_id, t->credit_deferred);
    ngtcp2_conn_extend_max_offset(t->conn, t->credit_deferred);
    t->credit_deferred = 0;
    *credit_returned = true;
  }
  return true;
}

/* ---- outgoing messages -------------------------------------------------- */

transport_msg_t *transport_msg_new(const void *payload, size_t len) {
  transport_msg_t *m = malloc(sizeof(*m) + MSG_HEADER_LEN + len);
  if (m == NULL)
    return NULL;
  m->next = NULL;
  m->end_offset = 0;
  m->len = MSG_HEADER_LEN + len;
  framing_header_write(m->data, (uint32_t)len);
  if (len)
    memcpy(m->data + MSG_HEADER_LEN, payload, len);
  return m;
}

transport_msg_t *transport_msg_new_raw(const void *bytes, size_t len) {
  transport_msg_t *m = malloc(sizeof(*m) + len);
  if (m == NULL)
    return NULL;
  *m = (transport_msg_t){.len = len};
  if (len)
    memcpy(m->data, bytes, len);
  return m;
}

void transport_msg_free(transport_msg_t *m) { free(m); }

int transport_queue(transport_t *t, transport_msg_t *m) {
  if (t->state == TRANSPORT_CLOSED) {
    free(m);
    return err_fail(t->err_code ? t->err_code : QP_ERR_CLOSED, "%s", t->err_msg);
  }
  t->out_enqueued += m->len;
  m->end_offset = t->out_enqueued;
  m->next = NULL;
  if (t->out_tail)
    t->out_tail->next = m;
  else
    t->out_head = m;
  t->out_tail = m;
  if (t->out_cur == NULL) {
    t->out_cur = m;
    t->out_cur_off = 0;
  }
  return 0;
}

uint64_t transport_unacked_bytes(const transport_t *t) {
  return t->out_enqueued - t->out_acked;
}

bool transport_has_unsent(const transport_t *t) { return t->out_cur != NULL; }

/* The queued bytes that may go into one packet of at most size bytes: no
 * more messages than fill it (walking all of a 10 MB window of 1 MiB messages
 * for every packet touched ten cold pages per packet). */
static size_t collect_vecs(transport_t *t, ngtcp2_vec *v, size_t size) {
  size_t n = 0, total = 0;
  size_t off = t->out_cur_off;
  for (transport_msg_t *m = t->out_cur; m && n < TRANSPORT_MAX_VECS && total < size;
       m = m->next) {
    v[n].base = m->data + off;
    v[n].len = m->len - off;
    total += v[n].len;
    n++;
    off = 0;
  }
  return n;
}

static void advance_sent(transport_t *t, size_t written) {
  while (written > 0 && t->out_cur) {
    size_t left = t->out_cur->len - t->out_cur_off;
    if (written < left) {
      t->out_cur_off += written;
      return;
    }
    written -= left;
    t->out_cur = t->out_cur->next;
    t->out_cur_off = 0;
  }
}

/* ---- ngtcp2 callbacks --------------------------------------------------- */

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref) {
  return ((transport_t *)ref->user_data)->conn;
}

static void cb_rand(uint8_t *dest, size_t destlen, const ngtcp2_rand_ctx *ctx) {
  (void)ctx;
  (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, destlen);
}

/* A random connection ID whose bytes 3..6 (bytes 4..7 of a short-header
 * packet) never equal the STUN magic cookie, so that a packet addressed to
 * us is never taken for STUN even when the peer greases the QUIC bit. */
static int fill_cid(uint8_t *data, size_t len) {
  for (int tries = 0; tries < 8; tries++) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, data, len) != 0)
      return -1;
    if (len < 7 || !udp_has_stun_cookie(data + 3))
      return 0;
  }
  return -1;
}

static int cb_new_cid(ngtcp2_conn *conn, ngtcp2_cid *cid, uint8_t *token,
                      size_t cidlen, void *user) {
  (void)conn;
  (void)user;
  if (fill_cid(cid->data, cidlen) != 0 ||
      gnutls_rnd(GNUTLS_RND_RANDOM, token, NGTCP2_STATELESS_RESET_TOKENLEN) != 0)
    return NGTCP2_ERR_CALLBACK_FAILURE;
  cid->datalen = cidlen;
  return 0;
}

static void open_message_stream(transport_t *t) {
  int64_t id;
  if (t->cfg.is_server || t->stream_id >= 0 ||
      ngtcp2_conn_open_bidi_stream(t->conn, &id, NULL) != 0)
    return;
  t->stream_id = id;
  t->stream_announce = true; /* the server learns of it from a STREAM frame */
}

static void maybe_established(transport_t *t) {
  if (t->state == TRANSPORT_HANDSHAKING && t->handshake_done && t->stream_id >= 0)
    t->state = TRANSPORT_ESTABLISHED;
}

static int cb_handshake_completed(ngtcp2_conn *conn, void *user) {
  transport_t *t = user;
  double ka = t->cfg.opts.keep_alive_interval_secs;
  if (ka > 0)
    ngtcp2_conn_set_keep_alive_timeout(conn, (ngtcp2_duration)(ka * NGTCP2_SECONDS));
  if (t->cfg.is_server) {
    t->handshake_done = true;
    maybe_established(t);
  }
  return 0;
}

/* The client waits for HANDSHAKE_DONE: only then has the server checked our
 * certificate, so connect() never reports success to a peer that refuses. */
static int cb_handshake_confirmed(ngtcp2_conn *conn, void *user) {
  (void)conn;
  transport_t *t = user;
  if (!t->cfg.is_server) {
    t->handshake_done = true;
    open_message_stream(t);
    maybe_established(t);
  }
  return 0;
}

static int cb_extend_max_local_streams_bidi(ngtcp2_conn *conn, uint64_t max,
                                            void *user) {
  (void)conn;
  (void)max;
  transport_t *t = user;
  if (t->handshake_done) {
    open_message_stream(t);
    maybe_established(t);
  }
  return 0;
}

static int cb_stream_open(ngtcp2_conn *conn, int64_t stream_id, void *user) {
  transport_t *t = user;
  /* The first client-initiated bidirectional stream carries the messages;
   * other streams are tolerated and ignored. */
  if (t->cfg.is_server && t->stream_id < 0 &&
      ngtcp2_is_bidi_stream(stream_id) && !ngtcp2_conn_is_local_stream(conn, stream_id)) {
    t->stream_id = stream_id;
    maybe_established(t);
  }
  return 0;
}

/* The message stream cannot go on: a length prefix above max_message_size
 * (rc QP_ERR_PROTOCOL) or no memory. Close with an application error whose
 * reason tells the peer why. */
static void end_receiving(transport_t *t, int rc) {
  char who[UDP_ADDRSTRLEN];
  peer_name(t, who, sizeof(who));
  if (rc != QP_ERR_PROTOCOL) {
    end_with(t, QP_ERR_NOMEM, true, "out of memory receiving a message from %s",
             who);
    return;
  }
  static const char reason[] = "message longer than the receiver's max_message_size";
  ngtcp2_connection_close_error_set_application_error(
      &t->ccerr, TRANSPORT_APP_PROTOCOL_ERROR, (const uint8_t *)reason,
      sizeof(reason) - 1);
  end_with(t, QP_ERR_PROTOCOL, true, "%s: %s", who, qp_last_error());
}

static int cb_recv_stream_data(ngtcp2_conn *conn, uint32_t flags,
                               int64_t stream_id, uint64_t offset,
                               const uint8_t *data, size_t datalen, void *user,
                               void *stream_user) {
  (void)conn;
  (void)offset;
  (void)stream_user;
  transport_t *t = user;
  if (stream_id == t->stream_id) {
    int rc = framing_consume(&t->parser, data, datalen, in_complete, t);
    if (rc != 0 || t->in_failed) {
      end_receiving(t, rc);
      return NGTCP2_ERR_CALLBACK_FAILURE;
    }
    if (flags & NGTCP2_STREAM_DATA_FLAG_FIN)
      t->peer_finished = true;
  }
  give_credit(t, stream_id, datalen);
  return 0;
}

static int cb_acked_stream_data_offset(ngtcp2_conn *conn, int64_t stream_id,
                                       uint64_t offset, uint64_t datalen,
                                       void *user, void *stream_user) {
  (void)conn;
  (void)stream_user;
  transport_t *t = user;
  if (stream_id != t->stream_id)
    return 0;
  uint64_t acked = offset + datalen;
  if (acked > t->out_acked)
    t->out_acked = acked;
  while (t->out_head && t->out_head->end_offset <= t->out_acked &&
         t->out_head != t->out_cur) {
    transport_msg_t *m = t->out_head;
    t->out_head = m->next;
    if (t->out_head == NULL)
      t->out_tail = NULL;
    free(m);
  }
  return 0;
}

static int cb_stream_close(ngtcp2_conn *conn, uint32_t flags, int64_t stream_id,
                           uint64_t app_error_code, void *user, void *stream_user) {
  (void)conn;
  (void)flags;
  (void)app_error_code;
  (void)stream_user;
  transport_t *t = user;
  if (stream_id == t->stream_id)
    t->peer_finished = true;
  return 0;
}

static int cb_stream_reset(ngtcp2_conn *conn, int64_t stream_id,
                           uint64_t final_size, uint64_t app_error_code,
                           void *user, void *stream_user) {
  (void)conn;
  (void)final_size;
  (void)stream_user;
  transport_t *t = user;
  if (stream_id == t->stream_id) {
    char who[UDP_ADDRSTRLEN];
    end_with(t, QP_ERR_CLOSED, true,
             "peer %s reset the message stream (application error 0x%llx)",
             peer_name(t, who, sizeof(who)), (unsigned long long)app_error_code);
  }
  return 0;
}

static const ngtcp2_callbacks callbacks_common = {
    .recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb,
    .encrypt = ngtcp2_crypto_encrypt_cb,
    .decrypt = ngtcp2_crypto_decrypt_cb,
    .hp_mask = ngtcp2_crypto_hp_mask_cb,
    .update_key = ngtcp2_crypto_update_key_cb,
    .delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb,
    .delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb,
    .get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb,
    .version_negotiation = ngtcp2_crypto_version_negotiation_cb,
    .rand = cb_rand,
    .get_new_connection_id = cb_new_cid,
    .handshake_completed = cb_handshake_completed,
    .handshake_confirmed = cb_handshake_confirmed,
    .extend_max_local_streams_bidi = cb_extend_max_local_streams_bidi,
    .stream_open = cb_stream_open,
    .recv_stream_data = cb_recv_stream_data,
    .acked_stream_data_offset = cb_acked_stream_data_offset,
    .stream_close = cb_stream_close,
    .stream_reset = cb_stream_reset,
};

/* ---- TLS ---------------------------------------------------------------- */

static int verify_peer(gnutls_session_t session) {
  ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
  transport_t *t = ref->user_data;
  if (!t->cfg.has_pin)
    return 0;
  if (tls_check_peer_pin(session, t->cfg.pin, t->verify_msg,
                         sizeof(t->verify_msg)) != 0) {
    t->verify_failed = true;
    QP_LOG_WARN("%s", t->verify_msg);
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  return 0;
}

static int setup_tls(transport_t *t) {
  bool server = t->cfg.is_server;
  int rv = gnutls_init(&t->session, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
                                        GNUTLS_ENABLE_EARLY_DATA |
                                        GNUTLS_NO_END_OF_EARLY_DATA);
  if (rv < 0)
    return err_fail(QP_ERR_TLS, "gnutls_init: %s", gnutls_strerror(rv));
  rv = server ? ngtcp2_crypto_gnutls_configure_server_session(t->session)
              : ngtcp2_crypto_gnutls_configure_client_session(t->session);
  if (rv != 0)
    return err_fail(QP_ERR_TLS, "ngtcp2_crypto_gnutls could not configure the "
                               "TLS session for QUIC");
  if ((rv = gnutls_priority_set_direct(t->session, tls_quic_priority, NULL)) < 0 ||
      (rv = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE,
                                   tls_identity_credentials(t->cfg.identity))) < 0)
    return err_fail(QP_ERR_TLS, "GnuTLS session setup: %s", gnutls_strerror(rv));
  if (!server)
    gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, TRANSPORT_SERVER_NAME,
                           strlen(TRANSPORT_SERVER_NAME));
  if (server && t->cfg.has_pin)
    gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_REQUIRE);
  gnutls_session_set_verify_function(t->session, verify_peer);
  gnutls_session_set_ptr(t->session, &t->conn_ref);
  return 0;
}

/* ---- construction ------------------------------------------------------- */

static ngtcp2_cc_algo cc_algo_of(qp_cc cc) {
  switch (cc) {
  case QP_CC_RENO:
    return NGTCP2_CC_ALGO_RENO;
  case QP_CC_BBR:
  case QP_CC_FIXED: /* see quic_portal.h: the closest the engine offers */
    return NGTCP2_CC_ALGO_BBR;
  case QP_CC_BBR2:
    return NGTCP2_CC_ALGO_BBR2;
  case QP_CC_CUBIC:
  default:
    return NGTCP2_CC_ALGO_CUBIC;
  }
}

static void log_ngtcp2(void *user, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_ngtcp2(void *user, const char *fmt, ...) {
  (void)user;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  QP_LOG_DEBUG("ngtcp2: %s", line);
}

/* qlog (draft-ietf-quic-qlog) written by ngtcp2, one file per connection,
 * when the environment names a folder: QUIC_PORTAL_QLOG_DIR=/tmp/q. */
static void qlog_write(void *user, uint32_t flags, const void *data, size_t len) {
  transport_t *t = user;
  if (t->qlog == NULL)
    return;
  if (len > 0 && fwrite(data, 1, len, t->qlog) != len)
    QP_LOG_WARN("qlog write failed: %s", strerror(errno));
  if (flags & NGTCP2_QLOG_WRITE_FLAG_FIN) {
    fclose(t->qlog);
    t->qlog = NULL;
  }
}

static void open_qlog(transport_t *t, const ngtcp2_cid *scid) {
  const char *dir = getenv("QUIC_PORTAL_QLOG_DIR");
  if (dir == NULL || *dir == '\0')
    return;
  char hex[2 * NGTCP2_MAX_CIDLEN + 1];
  for (size_t i = 0; i < scid->datalen; i++)
    snprintf(hex + 2 * i, 3, "%02x", scid->data[i]);
  hex[2 * scid->datalen] = '\0';
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s-%s.sqlog", dir,
           t->cfg.is_server ? "server" : "client", hex);
  t->qlog = fopen(path, "w");
  if (t->qlog == NULL)
    QP_LOG_WARN("cannot write qlog %s: %s", path, strerror(errno));
}

static void fill_settings(const transport_t *t, uint64_t now, ngtcp2_settings *s) {
  const qp_transport_options *o = &t->cfg.opts;
  ngtcp2_settings_default(s);
  s->initial_ts = now;
  s->initial_rtt = (uint64_t)o->initial_rtt_ms * NGTCP2_MILLISECONDS;
  s->cc_algo = cc_algo_of(o->congestion_controller);
  s->max_tx_udp_payload_size = o->max_udp_payload;
  s->no_pmtud = !o->mtu_discovery;
  /* Every ack-eliciting packet makes an ACK due at once (ngtcp2's default 2
   * waits RTT/8 for a lone packet). ngtcp2 0.12 puts an ACK into a packet
   * only when it is due, so without this a quick reply (the portal leaves
   * the ACK for it, PORTAL_ACK_HOLD_NS) went out bare and an ACK-only packet
   * followed RTT/8 later: two packets and two wake-ups per message. Bulk
   * flows are unchanged: ACKs go out once per read batch either way. */
  s->ack_thresh = 1;
  /* ngtcp2's flow-control auto-tuning: a window the peer fills within two
   * RTTs doubles, up to this many times the configured one. */
  s->max_stream_window = TRANSPORT_WINDOW_GROWTH * o->stream_receive_window;
  s->max_window = TRANSPORT_WINDOW_GROWTH * o->conn_receive_window;
  /* ngtcp2 probes only up to max_tx_udp_payload_size: raise it to what
   * discovery may find. Packets still start at max_udp_payload and grow
   * only once a probe of the larger size was acknowledged. */
  if (o->mtu_discovery && s->max_tx_udp_payload_size < TRANSPORT_PMTUD_CEILING)
    s->max_tx_udp_payload_size = TRANSPORT_PMTUD_CEILING;
  if (udp_addr_is_loopback(&t->cfg.remote) && !t->cfg.relayed) {
    /* The loopback MTU is 65536 and nothing on the path can fragment or
     * drop big datagrams, so use packets of 16 KiB, as TCP uses a 64 KiB
     * MSS there: fewer packets, fewer syscalls, less per-packet work. */
    s->max_tx_udp_payload_size = TRANSPORT_LOOPBACK_PAYLOAD;
    s->no_tx_udp_payload_size_shaping = 1;
    s->no_pmtud = 1; /* packets are already the largest a peer accepts */
    /* Pacing divides the window by the RTT estimate; with 16 KiB packets a
     * WAN-sized first estimate would space the handshake's packets by
     * milliseconds on a path whose RTT is microseconds. */
    if (s->initial_rtt > TRANSPORT_LOOPBACK_INITIAL_RTT)
      s->initial_rtt = TRANSPORT_LOOPBACK_INITIAL_RTT;
  }
  /* A client's caller enforces its connect deadline; a server frees its
   * slot from a half-open attempt. */
  s->handshake_timeout =
      t->cfg.is_server ? TRANSPORT_SERVER_HANDSHAKE_TIMEOUT : UINT64_MAX;
  if (getenv("QUIC_PORTAL_NGTCP2_LOG") != NULL)
    s->log_printf = log_ngtcp2;
  if (t->qlog)
    s->qlog.write = qlog_write;
}

static void fill_params(const transport_t *t, ngtcp2_transport_params *p) {
  const qp_transport_options *o = &t->cfg.opts;
  ngtcp2_transport_params_default(p);
  p->initial_max_stream_data_bidi_local = o->stream_receive_window;
  p->initial_max_stream_data_bidi_remote = o->stream_receive_window;
  p->initial_max_stream_data_uni = o->stream_receive_window;
  p->initial_max_data = o->conn_receive_window;
  p->initial_max_streams_bidi = o->max_concurrent_streams;
  p->initial_max_streams_uni = o->max_concurrent_streams;
  /* 0 = no idle timeout in ngtcp2: this side enforces its own from the
   * peer's last packet (idle_deadline), which may pause while a recovery
   * looks for a new path (transport_hold_timers) for longer than the idle
   * timeout. A peer that advertises one (quic-portal 0.1.x: 10 s) still
   * gets it: RFC 9000 section 10.1 takes the smaller non-zero value. */
  p->max_idle_timeout = 0;
  p->max_udp_payload_size = UDP_RECV_DATAGRAM_MAX;
  p->active_connection_id_limit = TRANSPORT_ACTIVE_CID_LIMIT;
  /* ngtcp2 0.12 always advertises grease_quic_bit (RFC 9287), so peers may
   * clear the QUIC bit and the first byte alone cannot tell QUIC from STUN
   * (RFC 9443 section 5); udp_classify also checks the STUN magic cookie, and
   * fill_cid keeps the cookie out of our connection IDs. */
}

static transport_t *transport_alloc(const transport_config_t *cfg) {
  transport_t *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return NULL;
  t->cfg = *cfg;
  t->stream_id = -1;
  t->state = TRANSPORT_HANDSHAKING;
  t->conn_ref.get_conn = get_conn;
  t->conn_ref.user_data = t;
  t->no_pacing = udp_addr_is_loopback(&cfg->remote);
  framing_parser_init(&t->parser, cfg->opts.max_message_size);
  ngtcp2_connection_close_error_default(&t->ccerr);
  return t;
}

static ngtcp2_path path_of(transport_t *t) {
  return (ngtcp2_path){
      .local = {.addr = (ngtcp2_sockaddr *)&t->cfg.local.ss,
                .addrlen = t->cfg.local.len},
      .remote = {.addr = (ngtcp2_sockaddr *)&t->cfg.remote.ss,
                 .addrlen = t->cfg.remote.len},
  };
}

static int random_cid(ngtcp2_cid *cid) {
  cid->datalen = TRANSPORT_CID_LEN;
  if (fill_cid(cid->data, cid->datalen) != 0)
    return err_fail(QP_ERR_TLS, "gnutls_rnd failed to make a connection ID");
  return 0;
}

/* The common end of both constructors: TLS on the new ngtcp2 connection.
 * Takes over t: on failure it is destroyed. */
static int finish_create(transport_t *t, int rv, const char *what,
                         transport_t **out) {
  int rc;
  if (rv != 0) {
    rc = err_fail(QP_ERR_TRANSPORT, "%s: %s", what, ngtcp2_strerror(rv));
  } else if ((rc = setup_tls(t)) == 0) {
    ngtcp2_conn_set_tls_native_handle(t->conn, t->session);
    *out = t;
    return 0;
  }
  transport_destroy(t);
  return rc;
}

int transport_create_client(const transport_config_t *cfg, uint64_t now,
                            transport_t **out) {
  transport_t *t = transport_alloc(cfg);
  if (t == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory creating a QUIC connection");
  ngtcp2_cid dcid, scid;
  int rc;
  if ((rc = random_cid(&dcid)) != 0 || (rc = random_cid(&scid)) != 0)
    goto fail;
  open_qlog(t, &scid);
  ngtcp2_callbacks cb = callbacks_common;
  cb.client_initial = ngtcp2_crypto_client_initial_cb;
  cb.recv_retry = ngtcp2_crypto_recv_retry_cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  fill_settings(t, now, &settings);
  fill_params(t, &params);
  ngtcp2_path path = path_of(t);
  int rv = ngtcp2_conn_client_new(&t->conn, &dcid, &scid, &path,
                                  NGTCP2_PROTO_VER_V1, &cb, &settings, &params,
                                  NULL, t);
  return finish_create(t, rv, "ngtcp2_conn_client_new", out);
fail:
  transport_destroy(t);
  return rc;
}

int transport_create_server(const transport_config_t *cfg, const uint8_t *pkt,
                            size_t len, uint64_t now, transport_t **out) {
  ngtcp2_pkt_hd hd;
  if (ngtcp2_accept(&hd, pkt, len) != 0)
    return err_fail(QP_ERR_PROTOCOL, "datagram is not a QUIC client Initial");
  transport_t *t = transport_alloc(cfg);
  if (t == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory creating a QUIC connection");
  ngtcp2_cid scid;
  int rc = random_cid(&scid);
  if (rc != 0)
    goto fail;
  open_qlog(t, &scid);
  ngtcp2_callbacks cb = callbacks_common;
  cb.recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  ngtcp2_settings settings;
  ngtcp2_transport_params params;
  fill_settings(t, now, &settings);
  settings.qlog.odcid = hd.dcid;
  fill_params(t, &params);
  params.original_dcid = hd.dcid;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, params.stateless_reset_token,
                 sizeof(params.stateless_reset_token)) != 0) {
    rc = err_fail(QP_ERR_TLS, "gnutls_rnd failed to make a reset token");
    goto fail;
  }
  params.stateless_reset_token_present = 1;
  ngtcp2_path path = path_of(t);
  int rv = ngtcp2_conn_server_new(&t->conn, &hd.scid, &scid, &path, hd.version,
                                  &cb, &settings, &params, NULL, t);
  return finish_create(t, rv, "ngtcp2_conn_server_new", out);
fail:
  transport_destroy(t);
  return rc;
}

void transport_destroy(transport_t *t) {
  if (t == NULL)
    return;
  if (t->conn)
    ngtcp2_conn_del(t->conn);
  if (t->session)
    gnutls_deinit(t->session);
  for (transport_msg_t *m = t->out_head; m;) {
    transport_msg_t *next = m->next;
    free(m);
    m = next;
  }
  for (in_msg_t *m = t->in_head; m;) {
    in_msg_t *next = m->next;
    free(m->data);
    free(m);
    m = next;
  }
  framing_parser_cleanup(&t->parser);
  if (t->qlog)
    fclose(t->qlog);
  free(t);
}

/* ---- path health and recovery (docs/internals/resilience.md) ------------ */

/* A path is dead when acknowledgements stopped for this long at least ... */
#define TRANSPORT_DEAD_MIN_NS (2 * NGTCP2_SECONDS)
/* ... and for this many probe timeouts (RFC 9002 PTO), whichever is later:
 * 2 s covers a lossy WAN path (acks come every RTT, well under a second),
 * 3 PTOs covers a path whose RTT is itself seconds long. */
#define TRANSPORT_DEAD_PTOS 3
/* RFC 9002's default max_ack_delay and timer granularity, for the PTO. */
#define TRANSPORT_PTO_ACK_DELAY (25 * NGTCP2_MILLISECONDS)
#define TRANSPORT_PTO_GRANULARITY (1 * NGTCP2_MILLISECONDS)

static uint64_t bytes_in_flight(transport_t *t) {
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(t->conn, &cs);
  return cs.bytes_in_flight;
}

/* Called after a read (in_flight_before: bytes in flight before it) or a
 * flush (UINT64_MAX): an acknowledgement that took bytes out of flight is
 * progress; bytes in flight without progress are a stall. */
static void track_acks(transport_t *t, uint64_t now, uint64_t in_flight_before) {
  uint64_t in_flight = bytes_in_flight(t);
  if (in_flight == 0)
    t->stall_since = 0;
  else if (in_flight_before != UINT64_MAX && in_flight < in_flight_before)
    t->stall_since = now;
  else if (t->stall_since == 0)
    t->stall_since = now;
}

uint64_t transport_path_dead_at(transport_t *t) {
  if (t->state != TRANSPORT_ESTABLISHED || t->stall_since == 0)
    return UINT64_MAX;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(t->conn, &cs);
  uint64_t var4 = 4 * cs.rttvar;
  uint64_t pto = cs.smoothed_rtt +
                 (var4 > TRANSPORT_PTO_GRANULARITY ? var4 : TRANSPORT_PTO_GRANULARITY) +
                 TRANSPORT_PTO_ACK_DELAY;
  uint64_t limit = TRANSPORT_DEAD_PTOS * pto;
  if (limit < TRANSPORT_DEAD_MIN_NS)
    limit = TRANSPORT_DEAD_MIN_NS;
  return t->stall_since + limit;
}

bool transport_path_dead(transport_t *t, uint64_t now) {
  return now >= transport_path_dead_at(t);
}

uint64_t transport_stalled_ns(const transport_t *t, uint64_t now) {
  return t->stall_since == 0 || now < t->stall_since ? 0 : now - t->stall_since;
}

/* While the portal looks for a new path the timers stand still: no probes
 * into a dead path, and no idle close while traversal runs (it may take
 * longer than the idle timeout; the portal bounds it). The first packet
 * read from the peer starts them again. */
static bool timers_frozen(transport_t *t) {
  if (t->timers_held && t->packets_received != t->held_at_rx) {
    t->timers_held = false;
    t->stall_since = 0; /* the new path's stall is measured afresh */
  }
  return t->timers_held;
}

void transport_hold_timers(transport_t *t, bool hold) {
  t->timers_held = hold;
  t->held_at_rx = t->packets_received;
  if (!hold)
    t->stall_since = 0;
}

const udp_addr_t *transport_peer(const transport_t *t) { return &t->cfg.remote; }

bool transport_timers_held(transport_t *t) { return timers_frozen(t); }

/* The local address ngtcp2 knows a datagram's path by: after a migration,
 * packets from the peer's new address belong to the path made with the
 * alias (our socket did not change, only ngtcp2's name for it). */
static const udp_addr_t *local_for(transport_t *t, const udp_addr_t *from) {
  if (t->migrated && udp_addr_equal(from, &t->migrate_remote))
    return &t->alias;
  return &t->cfg.local;
}

/* ngtcp2 keeps the bytes of the address we gave it: equal bytes are the
 * common case, checked without copying a sockaddr_storage per packet. */
static bool path_is_remote(const transport_t *t, const ngtcp2_path *path) {
  return path->remote.addrlen == t->cfg.remote.len &&
         memcmp(path->remote.addr, &t->cfg.remote.ss, path->remote.addrlen) == 0;
}

static bool packet_to_remote(transport_t *t, const ngtcp2_path *path) {
  if (path_is_remote(t, path))
    return true;
  udp_addr_t to = {.len = path->remote.addrlen};
  if (path->remote.addrlen == 0 || path->remote.addrlen > sizeof(to.ss))
    return true;
  memcpy(&to.ss, path->remote.addr, path->remote.addrlen);
  return udp_addr_equal(&to, &t->cfg.remote);
}

static int send_probe(transport_t *t, const ngtcp2_path *path, const uint8_t *pkt,
                      size_t len, transport_send_cb send, void *ctx) {
  udp_addr_t to = {.len = path->remote.addrlen};
  memcpy(&to.ss, path->remote.addr, path->remote.addrlen);
  (void)t;
  return send(ctx, &to, pkt, len, len);
}

/* ngtcp2 0.12 migrates only to a path with another local address, but our
 * socket stays the same (the NAT in front of it or the peer's moved). The
 * path gets a new name for our side instead: the bound address with its
 * last byte set to a generation number. ngtcp2 uses it only to tell paths
 * apart; datagrams still leave through the one socket. */
static void next_alias(transport_t *t) {
  t->alias = t->cfg.local;
  uint8_t gen = (uint8_t)(++t->alias_gen == 0 ? ++t->alias_gen : t->alias_gen);
  if (t->alias.ss.ss_family == AF_INET)
    ((uint8_t *)&((struct sockaddr_in *)&t->alias.ss)->sin_addr)[3] ^= gen;
  else
    ((struct sockaddr_in6 *)&t->alias.ss)->sin6_addr.s6_addr[15] ^= gen;
}

int transport_migrate(transport_t *t, const udp_addr_t *remote, uint64_t now) {
  if (t->cfg.is_server || t->state != TRANSPORT_ESTABLISHED)
    return err_fail(QP_ERR_STATE, "only an established client connection migrates");
  udp_addr_t old_alias = t->alias;
  next_alias(t);
  ngtcp2_path path = {
      .local = {.addr = (ngtcp2_sockaddr *)&t->alias.ss, .addrlen = t->alias.len},
      .remote = {.addr = (ngtcp2_sockaddr *)&remote->ss, .addrlen = remote->len},
  };
  int rv = ngtcp2_conn_initiate_migration(t->conn, &path, now);
  if (rv != 0) {
    t->alias = old_alias;
    char who[UDP_ADDRSTRLEN];
    return err_fail(rv == NGTCP2_ERR_CONN_ID_BLOCKED ? QP_ERR_TRANSPORT : QP_ERR_STATE,
                   "QUIC migration to %s refused: %s",
                   udp_addr_to_string(remote, who, sizeof(who)), ngtcp2_strerror(rv));
  }
  t->migrated = true;
  t->migrate_remote = *remote;
  t->stall_since = 0;
  /* Traversal just heard from the peer: a fresh idle period, and the timers
   * run again. The probe timeout expired long ago; handling it now grants
   * the probe packets that let PATH_CHALLENGE (and the retransmissions that
   * make the server follow) out even though the congestion window is full
   * of data lost with the old path. */
  t->last_rx_ns = now;
  t->timers_held = false;
  transport_handle_expiry(t, now);
  return 0;
}

/* ---- driving ------------------------------------------------------------ */

int transport_read(transport_t *t, const udp_addr_t *from, const uint8_t *pkt,
                   size_t len, uint64_t now) {
  if (t->state == TRANSPORT_CLOSED)
    return 0;
  const udp_addr_t *local = local_for(t, from);
  ngtcp2_path path = {
      .local = {.addr = (ngtcp2_sockaddr *)&local->ss, .addrlen = local->len},
      .remote = {.addr = (ngtcp2_sockaddr *)&from->ss, .addrlen = from->len},
  };
  ngtcp2_pkt_info pi = {0};
  uint64_t in_flight = bytes_in_flight(t);
  int rv = ngtcp2_conn_read_pkt(t->conn, &path, &pi, pkt, len, now);
  t->packets_received++;
  if (rv != 0 && t->state != TRANSPORT_CLOSED)
    end_by_liberr(t, rv, "packet processing");
  else if (rv == 0) {
    t->last_rx_ns = now;
    t->quiet_probe_sent = false;
    track_acks(t, now, in_flight);
  }
  return 0;
}

/* RFC 9000 restarts the idle timer on the first ack-eliciting packet sent
 * after a receipt, so ngtcp2 alone ends a connection to a crashed peer only
 * after the idle timeout plus up to one keep-alive interval. We promise the
 * idle timeout counted from the peer's last packet: the earlier deadline. */
static uint64_t idle_deadline(const transport_t *t) {
  if (t->state != TRANSPORT_ESTABLISHED || t->last_rx_ns == 0)
    return UINT64_MAX;
  return t->last_rx_ns + (uint64_t)(t->cfg.opts.max_idle_timeout_secs * NGTCP2_SECONDS);
}

uint64_t transport_idle_deadline(const transport_t *t) { return idle_deadline(t); }

/* A peer quiet for this long gets a PING (when keep-alive is on), so a side
 * with nothing in flight notices a dead path within this + 2 s instead of a
 * keep-alive interval + 2 s after its last write. An idle healthy
 * connection sends no more than before: one PING and one ACK a second. */
#define TRANSPORT_QUIET_PROBE_NS (1 * NGTCP2_SECONDS)

static uint64_t quiet_deadline(const transport_t *t) {
  if (t->state != TRANSPORT_ESTABLISHED || t->last_rx_ns == 0 || t->quiet_probe_sent ||
      t->stall_since != 0 || !(t->cfg.opts.keep_alive_interval_secs > 0))
    return UINT64_MAX;
  return t->last_rx_ns + TRANSPORT_QUIET_PROBE_NS;
}

uint64_t transport_expiry(transport_t *t) {
  if (t->state == TRANSPORT_CLOSED || timers_frozen(t))
    return UINT64_MAX;
  uint64_t e = ngtcp2_conn_get_expiry(t->conn);
  uint64_t idle = idle_deadline(t), quiet = quiet_deadline(t);
  if (quiet < e)
    e = quiet;
  return idle < e ? idle : e;
}

void transport_handle_expiry(transport_t *t, uint64_t now) {
  if (t->state == TRANSPORT_CLOSED || timers_frozen(t))
    return;
  if (now >= idle_deadline(t)) {
    end_by_liberr(t, NGTCP2_ERR_IDLE_CLOSE, "timer handling");
    return;
  }
  if (now >= quiet_deadline(t)) {
    /* ngtcp2 0.12 has no "send a PING" call: a keep-alive timeout of 1 ns
     * is due at once, and the next flush writes the PING. */
    ngtcp2_conn_set_keep_alive_timeout(t->conn, 1);
    t->quiet_probe_sent = t->quiet_probe_pending = true;
  }
  int rv = ngtcp2_conn_handle_expiry(t->conn, now);
  if (rv != 0)
    end_by_liberr(t, rv, "timer handling");
}

void transport_close(transport_t *t) {
  if (t->state == TRANSPORT_CLOSED)
    return;
  ngtcp2_connection_close_error_set_application_error(
      &t->ccerr, TRANSPORT_APP_NO_ERROR, NULL, 0);
  end_with(t, QP_ERR_CLOSED, true, "connection closed by this side");
}

static int flush_close(transport_t *t, uint64_t now, transport_send_cb send,
                       void *ctx) {
  t->close_pending = false;
  if (ngtcp2_conn_is_in_closing_period(t->conn) ||
      ngtcp2_conn_is_in_draining_period(t->conn))
    return 0;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
      t->conn, &ps.path, &pi, t->sendbuf, sizeof(t->sendbuf), &t->ccerr, now);
  if (n <= 0)
    return 0;
  /* We stop listening right after closing, so a lost CONNECTION_CLOSE would
   * leave the peer waiting for its idle timeout. RFC 9000 section 10.2.1
   * lets an endpoint send the same close packet again; a few copies make a
   * loss of all of them unlikely (5% loss: 1 in 8000 for three). */
  int rc = 0;
  for (int i = 0; i < TRANSPORT_CLOSE_COPIES && rc == 0; i++) {
    t->packets_sent++;
    rc = send(ctx, &t->cfg.remote, t->sendbuf, (size_t)n, (size_t)n);
  }
  return rc;
}

/* ngtcp2 moves to a new peer address once it validated it (a NAT rebinding
 * on the client side, or our own migration): send there from now on. A path
 * probe (PATH_CHALLENGE on a path under validation) goes where its packet
 * says, in a batch of its own (see transport_flush). */
static void follow_path(transport_t *t) {
  const ngtcp2_path *path = ngtcp2_conn_get_path(t->conn);
  if (path_is_remote(t, path) || path->remote.addrlen == 0 ||
      path->remote.addrlen > sizeof(t->cfg.remote.ss))
    return;
  udp_addr_t now_remote = {.len = path->remote.addrlen};
  memcpy(&now_remote.ss, path->remote.addr, path->remote.addrlen);
  if (!udp_addr_equal(&now_remote, &t->cfg.remote)) {
    char a[UDP_ADDRSTRLEN], b[UDP_ADDRSTRLEN];
    QP_LOG_INFO("peer moved from %s to %s",
                udp_addr_to_string(&t->cfg.remote, a, sizeof(a)),
                udp_addr_to_string(&now_remote, b, sizeof(b)));
    t->cfg.remote = now_remote;
  }
}

/* Write one packet into buf. Returns its length (0: nothing more to send)
 * or a negative ngtcp2 error. */
static ngtcp2_ssize write_packet(transport_t *t, uint64_t now, ngtcp2_path *path,
                                 uint8_t *buf, size_t size) {
  ngtcp2_vec vecs[TRANSPORT_MAX_VECS];
  bool blocked = false;
  for (;;) {
    size_t nv = 0;
    int64_t sid = -1;
    if (t->stream_id >= 0 && !blocked) {
      nv = collect_vecs(t, vecs, size);
      if (nv > 0 || t->stream_announce)
        sid = t->stream_id;
    }
    ngtcp2_ssize ndatalen = -1;
    ngtcp2_pkt_info pi;
    ngtcp2_ssize n = ngtcp2_conn_writev_stream(
        t->conn, path, &pi, buf, size, &ndatalen, NGTCP2_WRITE_STREAM_FLAG_MORE,
        sid, vecs, nv, now);
    if (ndatalen >= 0 && sid >= 0) {
      advance_sent(t, (size_t)ndatalen);
      t->stream_announce = false;
    }
    if (n == NGTCP2_ERR_WRITE_MORE)
      continue;
    if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED || n == NGTCP2_ERR_STREAM_SHUT_WR ||
        n == NGTCP2_ERR_STREAM_NOT_FOUND) {
      blocked = true;
      continue;
    }
    return n;
  }
}

int transport_flush(transport_t *t, uint64_t now, transport_send_cb send,
                    void *ctx) {
  if (t->close_pending)
    return flush_close(t, now, send, ctx);
  if (t->state == TRANSPORT_CLOSED)
    return 0;
  /* Packets are the size discovered for this path; room is left for the
   * ceiling, which path MTU probes use. */
  size_t pkt_max = ngtcp2_conn_get_max_tx_udp_payload_size(t->conn);
  size_t path_max = ngtcp2_conn_get_path_max_tx_udp_payload_size(t->conn);
  for (int batch = 0; batch < TRANSPORT_MAX_BATCHES_PER_FLUSH; batch++) {
    size_t quantum = ngtcp2_conn_get_send_quantum(t->conn);
    size_t max_pkts = quantum / path_max;
    if (max_pkts == 0)
      max_pkts = 1;
    if (max_pkts > UDP_GSO_MAX_SEGMENTS)
      max_pkts = UDP_GSO_MAX_SEGMENTS;
    if (max_pkts > sizeof(t->sendbuf) / pkt_max)
      max_pkts = sizeof(t->sendbuf) / pkt_max;
    size_t used = 0, seg = 0, npkts = 0;
    bool more = true;
    ngtcp2_path_storage ps; /* ngtcp2 writes each packet's path into it */
    ngtcp2_path_storage_zero(&ps);
    while (npkts < max_pkts) {
      ngtcp2_ssize n = write_packet(t, now, &ps.path, t->sendbuf + used, pkt_max);
      if (n < 0) {
        end_by_liberr(t, (int)n, "packet writing");
        if (used > 0)
          send(ctx, &t->cfg.remote, t->sendbuf, used, seg);
        return t->close_pending ? flush_close(t, now, send, ctx) : 0;
      }
      if (n == 0) {
        more = false;
        break;
      }
      t->packets_sent++;
      follow_path(t);
      if (!packet_to_remote(t, &ps.path)) {
        /* A probe on another path: send what came before, then it alone. */
        int rc = used > 0 ? send(ctx, &t->cfg.remote, t->sendbuf, used, seg) : 0;
        if (rc == 0)
          rc = send_probe(t, &ps.path, t->sendbuf + used, (size_t)n, send, ctx);
        if (rc != 0)
          return rc;
        used = seg = npkts = 0;
        continue;
      }
      if (npkts > 0 && (size_t)n > seg) {
        /* A path MTU probe, larger than the batch's segments: send the
         * batch, then the probe alone. */
        int rc = send(ctx, &t->cfg.remote, t->sendbuf, used, seg);
        if (rc == 0)
          rc = send(ctx, &t->cfg.remote, t->sendbuf + used, (size_t)n, 0);
        if (rc != 0)
          return rc;
        used = seg = npkts = 0;
        continue;
      }
      if (npkts == 0)
        seg = (size_t)n;
      used += (size_t)n;
      npkts++;
      if ((size_t)n < seg)
        break; /* a short packet ends a GSO batch */
    }
    if (used > 0) {
      int rc = send(ctx, &t->cfg.remote, t->sendbuf, used, seg);
      if (rc != 0)
        return rc;
    }
    /* The pacing timer matters only while data waits: after the last of
     * a message it would be the transport's next deadline, a wake-up of
     * the I/O thread for nothing after every small message. */
    if (!t->no_pacing && (more || transport_has_unsent(t)))
      ngtcp2_conn_update_pkt_tx_time(t->conn, now);
    if (!more)
      break;
  }
  track_acks(t, now, UINT64_MAX);
  if (t->quiet_probe_pending) {
    t->quiet_probe_pending = false;
    ngtcp2_conn_set_keep_alive_timeout(
        t->conn, (ngtcp2_duration)(t->cfg.opts.keep_alive_interval_secs * NGTCP2_SECONDS));
  }
  return 0;
}

/* ---- queries ------------------------------------------------------------ */

transport_state_t transport_state(const transport_t *t) { return t->state; }

int transport_error(const transport_t *t, const char **message) {
  *message = t->err_msg;
  return t->err_code;
}

bool transport_peer_finished(const transport_t *t) {
  return t->peer_finished ||
         (t->state == TRANSPORT_CLOSED && t->err_code != 0);
}

uint64_t transport_held_bytes(const transport_t *t) {
  return t->in_queued_bytes + framing_held(&t->parser);
}

void transport_get_stats(transport_t *t, transport_stats_t *out) {
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(t->conn, &cs);
  *out = (transport_stats_t){
      .packets_sent = t->packets_sent,
      .packets_received = t->packets_received,
      .bytes_in_flight = cs.bytes_in_flight,
      .cwnd = cs.cwnd,
      .smoothed_rtt_ns = cs.smoothed_rtt,
      .pto_count = cs.pto_count,
  };
}
