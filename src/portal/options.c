/* Transport options: defaults of quic-portal 0.1.x, parsing, validation. */
#include "portal/options.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>

#include "common/error.h"
#include "common/log.h"

static const char *const cc_names[] = {
    [QP_CC_CUBIC] = "cubic", [QP_CC_BBR] = "bbr",     [QP_CC_BBR2] = "bbr2",
    [QP_CC_RENO] = "reno",   [QP_CC_FIXED] = "fixed",
};
#define CC_COUNT (sizeof(cc_names) / sizeof(cc_names[0]))

/* Default receive limit: 1 GiB, far above what a message-per-call API is
 * used for, far below the 4 GiB the wire format lets a peer announce. */
#define OPTIONS_DEFAULT_MAX_MESSAGE (UINT64_C(1) << 30)

/* Documented process-wide state: each "cannot honor" warning logs once. */
static atomic_bool warned_initial_window;
static atomic_bool warned_fixed;
static atomic_bool warned_nat;

/* Many NATs forget a UDP mapping after 30 s without traffic (RFC 4787 asks
 * at least 2 minutes, but 30 s is common in home routers and carrier NATs).
 * A keep-alive at least this long cannot be trusted to refresh it in time. */
#define NAT_MAPPING_SECS 30.0
#define NAT_SAFE_KEEPALIVE_SECS 25.0

/* Warn (once per process) about settings under which an idle connection
 * silently loses its NAT mapping before its idle timeout ends it. */
static void warn_nat_timeout(const qp_transport_options *o) {
  double ka = o->keep_alive_interval_secs;
  if (o->max_idle_timeout_secs <= NAT_MAPPING_SECS ||
      (ka > 0 && ka < NAT_SAFE_KEEPALIVE_SECS))
    return;
  if (atomic_exchange(&warned_nat, true))
    return;
  QP_LOG_WARN("keep_alive_interval_secs=%g%s with max_idle_timeout_secs=%g: "
              "NATs commonly forget a UDP mapping after %.0f s without "
              "traffic, so an idle connection can lose its path silently "
              "long before its idle timeout (the peer's packets stop "
              "arriving). Keep the keep-alive below %.0f s (default 2) or "
              "the idle timeout at most %.0f s",
              ka, ka == 0 ? " (off)" : "", o->max_idle_timeout_secs,
              NAT_MAPPING_SECS, NAT_SAFE_KEEPALIVE_SECS, NAT_MAPPING_SECS);
}

static void transport_defaults(qp_transport_options *o) {
  *o = (qp_transport_options){
      .struct_size = sizeof(qp_transport_options),
      .max_idle_timeout_secs = 10,
      .keep_alive_interval_secs = 2,
      /* BBR, not 0.1.x's cubic: with random loss (Wi-Fi, long paths) a
       * loss-based controller keeps ngtcp2's window near 1.2/sqrt(loss)
       * packets (17 at 1% on a 20 ms path: under 13 Mbit/s), BBR follows
       * the measured bandwidth (bench/README.md, "Lossy paths"). */
      .congestion_controller = QP_CC_BBR,
      .initial_window = 1048576,
      .conn_receive_window = 10 * 1000 * 1000,
      .stream_receive_window = 5 * 1000 * 1000,
      .send_window = 10 * 1000 * 1000,
      .initial_rtt_ms = 20,
      .max_concurrent_streams = 100,
      .max_udp_payload = 1200,
      /* On, unlike 0.1.x: ngtcp2 probes up to 1452-byte packets (the
       * 1500-byte Ethernet MTU), 20% fewer packets per byte than 1200;
       * probes are padded PINGs, so a peer that drops them costs nothing. */
      .mtu_discovery = true,
      .max_message_size = OPTIONS_DEFAULT_MAX_MESSAGE,
  };
}

void options_write_sized(void *caller, size_t caller_size, const void *defaults,
                         size_t size) {
  /* Exactly the caller's size: an older caller's struct is smaller, a
   * newer one's tail (fields this library does not know) is zeroed. */
  memset(caller, 0, caller_size);
  memcpy(caller, defaults, caller_size < size ? caller_size : size);
  memcpy(caller, &caller_size, sizeof(caller_size)); /* struct_size */
}

int options_read_sized(void *own, size_t size, const void *caller,
                       const char *what) {
  size_t caller_size;
  memcpy(&caller_size, caller, sizeof(caller_size));
  if (caller_size == 0)
    return err_fail(QP_ERR_INVALID, "%s options have struct_size 0: fill them with "
                                    "qp_%s_options_init() first", what, what);
  memcpy(own, caller, caller_size < size ? caller_size : size);
  memcpy(own, &size, sizeof(size));
  return 0;
}

void qp_transport_options_init_size(qp_transport_options *o, size_t size) {
  if (o == NULL || size < sizeof(o->struct_size))
    return;
  qp_transport_options d;
  transport_defaults(&d);
  options_write_sized(o, size, &d, sizeof(d));
}

const char *qp_version(void) { return QP_VERSION; }

int options_transport_copy(const qp_transport_options *in,
                           qp_transport_options *out) {
  transport_defaults(out);
  return in == NULL ? 0 : options_read_sized(out, sizeof(*out), in, "transport");
}

int qp_cc_from_string(const char *name, qp_cc *out) {
  if (name == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "congestion controller name is NULL");
  for (size_t i = 0; i < CC_COUNT; i++) {
    if (strcasecmp(name, cc_names[i]) == 0) {
      *out = (qp_cc)i;
      return 0;
    }
  }
  return err_fail(QP_ERR_INVALID,
                 "unknown congestion controller \"%.40s\": use cubic, bbr, "
                 "bbr2, reno or fixed",
                 name);
}

const char *qp_cc_to_string(qp_cc cc) {
  if ((unsigned)cc >= CC_COUNT)
    return "unknown";
  return cc_names[cc];
}

/* RFC 9000 section 18.2: max_udp_payload_size below 1200 is invalid;
 * 65527 is the largest UDP payload. */
#define MIN_UDP_PAYLOAD 1200
#define MAX_UDP_PAYLOAD 65527
/* Largest idle timeout we accept: one day, far beyond any NAT mapping. */
#define MAX_IDLE_SECS 86400.0

int options_validate(const qp_transport_options *o) {
  if (!(o->max_idle_timeout_secs > 0 && o->max_idle_timeout_secs <= MAX_IDLE_SECS))
    return err_fail(QP_ERR_INVALID,
                   "max_idle_timeout_secs=%g: must be > 0 and <= %g",
                   o->max_idle_timeout_secs, MAX_IDLE_SECS);
  if (!(o->keep_alive_interval_secs >= 0 &&
        o->keep_alive_interval_secs < o->max_idle_timeout_secs))
    return err_fail(QP_ERR_INVALID,
                   "keep_alive_interval_secs=%g: must be >= 0 (0 = off) and "
                   "below max_idle_timeout_secs=%g",
                   o->keep_alive_interval_secs, o->max_idle_timeout_secs);
  if ((unsigned)o->congestion_controller >= CC_COUNT)
    return err_fail(QP_ERR_INVALID, "congestion_controller=%d is not a qp_cc value",
                   (int)o->congestion_controller);
  if (o->conn_receive_window < o->stream_receive_window ||
      o->stream_receive_window < MIN_UDP_PAYLOAD)
    return err_fail(QP_ERR_INVALID,
                   "windows: stream_receive_window=%llu must be >= %d and <= "
                   "conn_receive_window=%llu",
                   (unsigned long long)o->stream_receive_window, MIN_UDP_PAYLOAD,
                   (unsigned long long)o->conn_receive_window);
  if (o->send_window == 0)
    return err_fail(QP_ERR_INVALID, "send_window must be > 0");
  if (o->max_udp_payload < MIN_UDP_PAYLOAD || o->max_udp_payload > MAX_UDP_PAYLOAD)
    return err_fail(QP_ERR_INVALID, "max_udp_payload=%u: must be in [%d, %d]",
                   o->max_udp_payload, MIN_UDP_PAYLOAD, MAX_UDP_PAYLOAD);
  if (o->max_message_size > QP_MAX_MESSAGE_SIZE)
    return err_fail(QP_ERR_INVALID,
                   "max_message_size=%llu: must be <= %llu (the 4-byte length "
                   "prefix)",
                   (unsigned long long)o->max_message_size,
                   (unsigned long long)QP_MAX_MESSAGE_SIZE);
  if (o->initial_rtt_ms == 0 || o->max_concurrent_streams == 0)
    return err_fail(QP_ERR_INVALID,
                   "initial_rtt_ms and max_concurrent_streams must be > 0");
  return 0;
}

int qp_transport_options_check(const qp_transport_options *o) {
  if (o == NULL)
    return err_fail(QP_ERR_INVALID, "transport options are NULL");
  qp_transport_options own;
  int rc = options_transport_copy(o, &own);
  if (rc == 0)
    rc = options_validate(&own);
  if (rc == 0)
    warn_nat_timeout(&own);
  return rc;
}

void options_warn_unhonored(const qp_transport_options *o) {
  warn_nat_timeout(o);
  qp_transport_options d;
  qp_transport_options_init(&d);
  if (o->initial_window != d.initial_window &&
      !atomic_exchange(&warned_initial_window, true))
    QP_LOG_WARN("initial_window=%llu cannot be honored: ngtcp2 0.12 has no "
                "initial congestion window setting and starts at 10 packets "
                "(RFC 9002); the value is ignored",
                (unsigned long long)o->initial_window);
  if (o->congestion_controller == QP_CC_FIXED &&
      !atomic_exchange(&warned_fixed, true))
    QP_LOG_WARN("congestion controller \"fixed\" cannot be honored: ngtcp2 "
                "0.12 has no constant-window controller; using BBR, which "
                "does not treat loss as congestion");
}
