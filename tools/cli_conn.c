/*
 * cli_conn.c: the connection options shared by serve, connect and bench,
 * and opening a connection either directly (qp_portal_listen/connect) or
 * through NAT traversal (qp_create_server/client).
 */
#include "cli.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Defaults of the tool (the library's transport defaults are its own). */
#define CONNECT_TIMEOUT_S 10.0

const cli_opt CLI_CONN_OPTS[CLI_CONN_OPTS_N] = {
    {"listen", "[ADDR:]PORT", false},
    {"to", "HOST:PORT", false},
    {"pin", "FINGERPRINT", false},
    {"timeout", "SECS", false},
    {"rendezvous", "URL", false},
    {"session", "NAME", false},
    {"stun", "HOST:PORT", true},
    {"port", "PORT", false},
    {"punch-timeout", "SECS", false},
    {"no-pin", NULL, false},
    {"wait-timeout", "SECS", false},
    {"bind", "ADDR", false},
    {"cc", "NAME", false},
    {"idle-timeout", "SECS", false},
    {"keep-alive", "SECS", false},
    {"max-udp-payload", "BYTES", false},
    {"mtu-discovery", NULL, false},
    {"no-mtu-discovery", NULL, false},
    {"quiet", NULL, false},
    {"secret", "SECRET", false},
    {"no-secret", NULL, false},
    {"max-message-size", "BYTES", false},
    {"turn", "USER:PASS@HOST:PORT", true},
    {"turn-secret", "SECRET@HOST:PORT", true},
    {"relay", "POLICY", false},
    {"reconnect-timeout", "SECS", false},
    {"no-portmap", NULL, false},
    {"no-upnp", NULL, false},
    {"no-natpmp", NULL, false},
    {"no-pcp", NULL, false},
};

const char CLI_CONN_USAGE[] =
    "Direct connection (no NAT traversal; the server's port must be open):\n"
    "  --listen [ADDR:]PORT   serve: listen on UDP PORT (ADDR default 0.0.0.0)\n"
    "  --to HOST:PORT         connect: connect to the server at HOST:PORT\n"
    "  --pin FINGERPRINT      only accept a peer with this certificate\n"
    "                         fingerprint (64 hex digits, as printed by the\n"
    "                         peer); on serve it also requires a client\n"
    "                         certificate\n"
    "  --timeout SECS         connect: give up after SECS (default 10);\n"
    "                         serve: wait at most SECS for the client\n"
    "                         (default: forever)\n"
    "  --port PORT            connect: local UDP port (default: any)\n"
    "\n"
    "Through NAT traversal (both peers reach the same rendezvous):\n"
    "  --rendezvous URL       mem:NAME (one process), dir:PATH (a shared\n"
    "                         folder), redis://HOST[:PORT][/DB]\n"
    "  --session NAME         namespace inside the store (default: default)\n"
    "  --stun HOST:PORT       STUN server, repeatable (up to 8); none: host\n"
    "                         candidates only (peers on one network)\n"
    "  --port PORT            local UDP port (default: any)\n"
    "  --wait-timeout SECS    give up when the peer has not published its\n"
    "                         record after SECS (default: wait until Ctrl-C;\n"
    "                         0: --punch-timeout covers the wait too)\n"
    "  --punch-timeout SECS   give up without a path after SECS (default 15,\n"
    "                         counted from the peer's record)\n"
    "  --bind ADDR            bind the local socket to this address of this\n"
    "                         machine only (e.g. 127.0.0.1: only loopback\n"
    "                         candidates); default: every address\n"
    "  --no-pin               legacy: do not pin the peer's fingerprint from\n"
    "                         the rendezvous (quic-portal 0.1.x peers)\n"
    "  --secret SECRET        seal the rendezvous with a secret both sides\n"
    "                         give (8-256 bytes): the store then shows\n"
    "                         neither session, addresses nor credentials,\n"
    "                         and a store writer cannot redirect either side.\n"
    "                         serve makes up one (160 bits) when none is\n"
    "                         given and prints the connect command with it\n"
    "  --no-secret            serve: an unsealed rendezvous (as 0.1.x)\n"
    "  --turn USER:PASS@HOST:PORT\n"
    "                         TURN relay (e.g. coturn) for when no direct\n"
    "                         path exists, repeatable (8 relays in all);\n"
    "                         port 3478 when omitted\n"
    "  --turn-secret SECRET@HOST:PORT\n"
    "                         TURN relay with coturn's REST shared secret\n"
    "                         (use-auth-secret), repeatable\n"
    "  --relay POLICY         auto (default: direct when possible, else the\n"
    "                         relay), never, only (every packet through\n"
    "                         this side's relay; needs --turn)\n"
    "  --reconnect-timeout SECS\n"
    "                         when the path dies (NAT rebinding, network\n"
    "                         change), find a new one through the store for\n"
    "                         up to SECS (default 30; 0: off, the connection\n"
    "                         ends at the idle timeout)\n"
    "  --no-portmap           do not ask the gateway for a port mapping\n"
    "                         (by default UPnP IGD, NAT-PMP and PCP are\n"
    "                         tried when a --stun server beyond this\n"
    "                         machine is given; a late mapping is\n"
    "                         published late)\n"
    "  --no-upnp, --no-natpmp, --no-pcp\n"
    "                         skip one of the three port-mapping protocols\n"
    "\n"
    "Transport:\n"
    "  --cc NAME              congestion controller: bbr (default), cubic,\n"
    "                         bbr2, reno, fixed\n"
    "  --idle-timeout SECS    close after SECS without a packet (default 10)\n"
    "  --keep-alive SECS      PING when idle this long, 0 = never (default 2,\n"
    "                         or a third of a shorter --idle-timeout); must\n"
    "                         be below --idle-timeout\n"
    "  --max-udp-payload N    1200-65527 (default 1200)\n"
    "  --mtu-discovery        path MTU discovery, up to 1452-byte packets\n"
    "                         (the default)\n"
    "  --no-mtu-discovery     packets of --max-udp-payload only (as 0.1.x)\n"
    "  --max-message-size BYTES\n"
    "                         the longest message accepted from the peer\n"
    "                         (default 1073741824 = 1 GiB); a longer one\n"
    "                         closes the connection (QP_ERR_PROTOCOL)\n"
    "  --quiet                no connection progress on stderr\n"
    "  --log-level LEVEL      library log: debug, info, warn (default),\n"
    "                         error, none (or QUIC_PORTAL_LOG=LEVEL)\n"
    "  --qlog DIR             write a qlog trace of the connection into DIR\n"
    "                         (an existing folder; QUIC_PORTAL_QLOG_DIR)\n";

static int transport_from_args(const cli_args *a, qp_transport_options *t) {
  const cli_cmd *cmd = a->cmd;
  qp_transport_options_init(t);
  const char *v;
  int rc = 0;
  if ((v = cli_get(a, "cc")) && qp_cc_from_string(v, &t->congestion_controller)) {
    return cli_usage_error(cmd, "invalid value '%s' for --cc: %s", v,
                           qp_last_error());
  }
  if ((v = cli_get(a, "idle-timeout"))) {
    rc = cli_parse_secs(cmd, "--idle-timeout", v, 0.1, 86400,
                        &t->max_idle_timeout_secs);
  }
  if (rc == 0 && (v = cli_get(a, "keep-alive"))) {
    rc = cli_parse_secs(cmd, "--keep-alive", v, 0, 3600,
                        &t->keep_alive_interval_secs);
  } else if (t->keep_alive_interval_secs > t->max_idle_timeout_secs / 3) {
    /* A short --idle-timeout alone: keep-alives at a third of it, as the
     * header advises, instead of refusing the default of 2 s. */
    t->keep_alive_interval_secs = t->max_idle_timeout_secs / 3;
  }
  uint64_t n;
  /* 1200: the QUIC minimum (RFC 9000, 14.1); 65527: largest IPv4 UDP
   * payload. */
  if (rc == 0 && (v = cli_get(a, "max-udp-payload")) &&
      (rc = cli_parse_u64(cmd, "--max-udp-payload", v, 1200, 65527, &n)) == 0) {
    t->max_udp_payload = (uint32_t)n;
  }
  if (rc == 0 && (v = cli_get(a, "max-message-size")) &&
      (rc = cli_parse_u64(cmd, "--max-message-size", v, 1,
                          QP_MAX_MESSAGE_SIZE, &n)) == 0) {
    t->max_message_size = n;
  }
  if (rc == 0 && cli_has(a, "mtu-discovery") && cli_has(a, "no-mtu-discovery"))
    rc = cli_usage_error(cmd, "--mtu-discovery and --no-mtu-discovery "
                              "contradict each other");
  if (cli_has(a, "no-mtu-discovery"))
    t->mtu_discovery = false;
  else if (cli_has(a, "mtu-discovery"))
    t->mtu_discovery = true;
  /* The library would refuse it when connecting; say it before anything
   * is printed or bound. */
  if (rc == 0 && t->keep_alive_interval_secs > 0 &&
      t->keep_alive_interval_secs >= t->max_idle_timeout_secs) {
    rc = cli_usage_error(cmd,
                         "--keep-alive %g must be below --idle-timeout %g "
                         "(or 0 for none): a PING after the connection "
                         "timed out is useless",
                         t->keep_alive_interval_secs, t->max_idle_timeout_secs);
  }
  return rc;
}

/* The options that apply only to one way of connecting. */
static int check_exclusive(const cli_args *a, bool server, bool direct) {
  static const char *const traversal_only[] = {
      "session", "stun",        "punch-timeout", "no-pin",
      "wait-timeout", "bind",   "secret",        "no-secret",
      "turn",    "turn-secret", "relay",         "reconnect-timeout",
      "no-portmap", "no-upnp",  "no-natpmp",     "no-pcp"};
  static const char *const direct_only[] = {"pin", "timeout"};
  size_t ntrav = sizeof traversal_only / sizeof traversal_only[0];
  for (size_t i = 0; direct && i < ntrav; i++) {
    if (cli_has(a, traversal_only[i])) {
      return cli_usage_error(a->cmd, "--%s applies only with --rendezvous",
                             traversal_only[i]);
    }
  }
  for (size_t i = 0; !direct && i < 2; i++) {
    if (cli_has(a, direct_only[i])) {
      return cli_usage_error(a->cmd,
                             "--%s applies only to a direct connection "
                             "(--listen or --to)",
                             direct_only[i]);
    }
  }
  if (server && direct && cli_has(a, "port")) {
    return cli_usage_error(a->cmd, "--port conflicts with --listen: give the "
                                   "port in --listen [ADDR:]PORT");
  }
  return 0;
}

static int direct_from_args(const cli_args *a, cli_conn_cfg *cfg) {
  const cli_cmd *cmd = a->cmd;
  const char *v;
  int rc = 0;
  if (cfg->server) {
    v = cli_get(a, "listen");
    if (strchr(v, ':')) {
      rc = cli_parse_hostport(cmd, "--listen", v, false, cfg->listen_ip,
                              sizeof cfg->listen_ip, &cfg->listen_port);
      if (rc == 0) {
        rc = cli_check_ip(cmd, "--listen", cfg->listen_ip, true);
      }
    } else {
      uint64_t n;
      rc = cli_parse_u64(cmd, "--listen", v, 1, 65535, &n);
      cfg->listen_port = (uint16_t)n;
    }
  } else {
    rc = cli_parse_hostport(cmd, "--to", cli_get(a, "to"), false, cfg->to_host,
                            sizeof cfg->to_host, &cfg->to_port);
  }
  double secs = cfg->server ? -1 : CONNECT_TIMEOUT_S;
  if (rc == 0 && (v = cli_get(a, "timeout"))) {
    rc = cli_parse_secs(cmd, "--timeout", v, 0.001, 86400, &secs);
  }
  cfg->wait_ms = secs < 0 ? -1 : (int)(secs * 1000);
  cfg->pin = cli_get(a, "pin");
  if (rc == 0 && cfg->pin && strlen(cfg->pin) < 64) {
    rc = cli_usage_error(cmd,
                         "invalid value '%s' for --pin: expected the peer's "
                         "64-hex-digit SHA-256 certificate fingerprint",
                         cfg->pin);
  }
  return rc;
}

/* "redis://HOST[:PORT][/DB]" as the library reads it: HOST a name, an
 * IPv4 address or [IPv6]; PORT 1-65535; DB a number. */
static bool redis_url_ok(const char *u) {
  const char *p = u + strlen("redis://");
  size_t hlen = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, ":/");
  if (hlen == 0 || (*p == '[' && (hlen < 3 || p[hlen - 1] != ']')) ||
      memchr(p, '@', hlen)) {
    return false;
  }
  p += hlen;
  if (*p == ':') {
    size_t n = strspn(++p, "0123456789");
    long port = n > 0 && n <= 5 ? strtol(p, NULL, 10) : 0;
    if (port < 1 || port > 65535) {
      return false;
    }
    p += n;
  }
  if (*p == '/') {
    p++;
    p += strspn(p, "0123456789");
  }
  return *p == '\0';
}

/* Every mistake in --rendezvous that the text shows: exit 2 before
 * anything is printed or bound. */
static int check_rendezvous_url(const cli_cmd *cmd, const char *u) {
  bool ok = (strncmp(u, "mem:", 4) == 0 && u[4]) ||
            (strncmp(u, "dir:", 4) == 0 && u[4]) ||
            (strncmp(u, "redis://", 8) == 0 && redis_url_ok(u));
  if (!ok) {
    return cli_usage_error(cmd,
                           "invalid value '%s' for --rendezvous: expected "
                           "mem:NAME, dir:PATH (an existing folder) or "
                           "redis://HOST[:PORT][/DB]",
                           u);
  }
  return 0;
}

/* A dir: store must be a folder this user can write now: the library
 * would only fail when it first writes. */
static int check_rendezvous_dir(const char *u) {
  struct stat st;
  const char *path = u + 4;
  if (strncmp(u, "dir:", 4) != 0) {
    return 0;
  }
  int err = stat(path, &st) == 0 ? 0 : errno;
  if (err != 0 && err != ENOENT) {
    cli_errorf("the rendezvous folder %s cannot be reached: %s", path,
               strerror(err));
    return CLI_EXIT_FAIL;
  }
  if (err == ENOENT || !S_ISDIR(st.st_mode)) {
    cli_errorf("the rendezvous folder %s %s: create it (both sides must "
               "reach the same folder)",
               path, err == ENOENT ? "does not exist" : "is not a folder");
    return CLI_EXIT_FAIL;
  }
  if (access(path, W_OK | X_OK) != 0) {
    cli_errorf("the rendezvous folder %s is not writable by this user: %s "
               "(a folder shared by several users must be writable by their "
               "group, e.g. chmod 2775 and a common group)",
               path, strerror(errno));
    return CLI_EXIT_FAIL;
  }
  return 0;
}

/* --secret, --no-secret, or (serve) a secret made up now. */
static int secret_from_args(const cli_args *a, cli_conn_cfg *cfg) {
  const char *v = cli_get(a, "secret");
  if (v && cli_has(a, "no-secret")) {
    return cli_usage_error(a->cmd, "--secret and --no-secret contradict each "
                                   "other");
  }
  /* The library's bounds (8-256 bytes): at 8, a passphrase can still be
   * guessed offline against a stored record; a generated one has 160 bits. */
  if (v && (strlen(v) < 8 || strlen(v) > 256)) {
    return cli_usage_error(a->cmd, "--secret must be 8 to 256 bytes, got %zu "
                                   "(omit it on serve to get a generated one)",
                           strlen(v));
  }
  cfg->secret = v;
  if (!v && cfg->server && !cli_has(a, "no-secret")) {
    int rc = cli_secret_generate(cfg->secret_buf, sizeof cfg->secret_buf);
    if (rc != 0) {
      return rc;
    }
    cfg->secret = cfg->secret_buf;
    cfg->secret_generated = true;
  }
  return 0;
}

/* A TURN spec as the library reads it: "USER:PASS@HOST[:PORT]" (user
 * true) or "SECRET@HOST[:PORT]"; the library checks the rest. */
static bool turn_spec_ok(const char *s, bool user) {
  const char *at = strrchr(s, '@');
  const char *colon = strchr(s, ':');
  return at && at > s && at[1] != '\0' && (!user || (colon && colon < at &&
                                                      colon > s));
}

static int relay_from_args(const cli_args *a, cli_conn_cfg *cfg) {
  static const char *const names[] = {"turn", "turn-secret"};
  for (int k = 0; k < 2; k++) {
    size_t n = cli_count(a, names[k]);
    const char **list = k == 0 ? cfg->turn : cfg->turn_secret;
    for (size_t i = 0; i < n; i++) {
      list[i] = cli_get_nth(a, names[k], i);
      if (!turn_spec_ok(list[i], k == 0)) {
        return cli_usage_error(a->cmd, "invalid value for --%s: expected %s",
                               names[k], k == 0 ? "USER:PASS@HOST[:PORT]"
                                                : "SECRET@HOST[:PORT]");
      }
    }
    *(k == 0 ? &cfg->nturn : &cfg->nturn_secret) = n;
  }
  if (cfg->nturn + cfg->nturn_secret > QP_MAX_TURN_SERVERS) {
    return cli_usage_error(a->cmd, "at most %d TURN servers in all",
                           QP_MAX_TURN_SERVERS);
  }
  const char *v = cli_get(a, "relay");
  cfg->relay = QP_RELAY_AUTO;
  if (v && strcmp(v, "never") == 0) {
    cfg->relay = QP_RELAY_NEVER;
  } else if (v && strcmp(v, "only") == 0) {
    cfg->relay = QP_RELAY_ONLY;
  } else if (v && strcmp(v, "auto") != 0) {
    return cli_usage_error(a->cmd, "invalid value '%s' for --relay: expected "
                                   "auto, never or only",
                           v);
  }
  if (cfg->relay == QP_RELAY_ONLY && cfg->nturn + cfg->nturn_secret == 0) {
    return cli_usage_error(a->cmd, "--relay only needs a relay: give --turn "
                                   "or --turn-secret");
  }
  return 0;
}

static int traversal_from_args(const cli_args *a, cli_conn_cfg *cfg) {
  const cli_cmd *cmd = a->cmd;
  cfg->rendezvous = cli_get(a, "rendezvous");
  int urc = check_rendezvous_url(cmd, cfg->rendezvous);
  if (urc != 0) {
    return urc;
  }
  cfg->session = cli_get(a, "session");
  cfg->nstun = cli_count(a, "stun");
  int rc = urc;
  for (size_t i = 0; rc == 0 && i < cfg->nstun; i++) {
    char host[256];
    uint16_t port;
    cfg->stun[i] = cli_get_nth(a, "stun", i);
    rc = cli_parse_hostport(cmd, "--stun", cfg->stun[i], false, host,
                            sizeof host, &port);
  }
  const char *v;
  double secs = 15;
  if (rc == 0 && (v = cli_get(a, "punch-timeout"))) {
    rc = cli_parse_secs(cmd, "--punch-timeout", v, 0.1, 3600, &secs);
  }
  cfg->punch_timeout_ms = (int)(secs * 1000);
  cfg->wait_timeout_ms = -1; /* the library's default: without limit */
  if (rc == 0 && (v = cli_get(a, "wait-timeout"))) {
    rc = cli_parse_secs(cmd, "--wait-timeout", v, 0, 86400, &secs);
    cfg->wait_timeout_ms = (int)(secs * 1000);
  }
  cfg->bind_ip = cli_get(a, "bind");
  if (rc == 0 && cfg->bind_ip) {
    rc = cli_check_ip(cmd, "--bind", cfg->bind_ip, true);
  }
  cfg->no_pin = cli_has(a, "no-pin");
  cfg->no_portmap = cli_has(a, "no-portmap");
  cfg->no_upnp = cli_has(a, "no-upnp");
  cfg->no_natpmp = cli_has(a, "no-natpmp");
  cfg->no_pcp = cli_has(a, "no-pcp");
  if (rc == 0) {
    rc = secret_from_args(a, cfg);
  }
  if (rc == 0) {
    rc = relay_from_args(a, cfg);
  }
  cfg->reconnect_timeout_ms = -1; /* the library's default */
  if (rc == 0 && (v = cli_get(a, "reconnect-timeout"))) {
    rc = cli_parse_secs(cmd, "--reconnect-timeout", v, 0, 86400, &secs);
    cfg->reconnect_timeout_ms = (int)(secs * 1000);
  }
  return rc == 0 ? check_rendezvous_dir(cfg->rendezvous) : rc;
}

int cli_conn_cfg_from_args(const cli_args *a, bool server, cli_conn_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->server = server;
  cfg->quiet = cli_has(a, "quiet");
  const char *own = server ? "listen" : "to";
  const char *other = server ? "to" : "listen";
  if (cli_has(a, other)) {
    return cli_usage_error(a->cmd, "--%s is for %s; this side uses --%s", other,
                           server ? "connect" : "serve", own);
  }
  bool direct = cli_has(a, own);
  if (direct == cli_has(a, "rendezvous")) {
    return cli_usage_error(a->cmd, "give exactly one of --%s (direct) and "
                                   "--rendezvous URL (NAT traversal)",
                           own);
  }
  cfg->direct = direct;
  int rc = check_exclusive(a, server, direct);
  if (rc == 0) {
    rc = transport_from_args(a, &cfg->transport);
  }
  const char *v;
  uint64_t n;
  if (rc == 0 && (v = cli_get(a, "port")) &&
      (rc = cli_parse_u64(a->cmd, "--port", v, 1, 65535, &n)) == 0) {
    cfg->local_port = (uint16_t)n;
  }
  if (rc == 0) {
    rc = direct ? direct_from_args(a, cfg) : traversal_from_args(a, cfg);
  }
  return rc;
}

/* ---- opening --------------------------------------------------------------- */

/* What cli_conn_watch last saw of the one open connection. */
typedef struct path_watch {
  bool quiet;
  bool primed;
  double last_s;
  uint64_t changed_ns;
  uint64_t recoveries;
} path_watch;
static path_watch g_watch = {.quiet = true};
/* The pipe sends and receives on two threads: one looks at a time. */
static pthread_mutex_t g_watch_lock = PTHREAD_MUTEX_INITIALIZER;
static void watch_locked(qp_portal_t *p);

static void say(const cli_conn_cfg *cfg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void say(const cli_conn_cfg *cfg, const char *fmt, ...) {
  if (cfg->quiet) {
    return;
  }
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "quic-portal: %s\n", msg);
}

static int open_direct(const cli_conn_cfg *cfg, qp_portal_t **out) {
  qp_portal_t *p = NULL;
  int rc = qp_portal_create(&p);
  if (rc != QP_OK) {
    return cli_qp_error("creating the portal", rc);
  }
  char fp[QP_FINGERPRINT_SIZE];
  qp_portal_fingerprint(p, fp, sizeof(fp));
  say(cfg, "this side's certificate fingerprint: %s", fp);
  if (cfg->pin && (rc = qp_portal_pin_peer(p, cfg->pin)) != QP_OK) {
    qp_portal_destroy(p);
    return cli_qp_error("pinning --pin", rc);
  }
  cli_signals_watch(p);
  if (cfg->server) {
    cli_say_peer_command(cfg, fp);
    say(cfg, "waiting for a client on UDP %s:%u",
        cfg->listen_ip[0] ? cfg->listen_ip : "0.0.0.0",
        (unsigned)cfg->listen_port);
    rc = cli_signal() ? QP_ERR_INTERRUPTED
                      : qp_portal_listen(p, cfg->listen_ip, cfg->listen_port,
                                         &cfg->transport, cfg->wait_ms);
  } else {
    say(cfg, "connecting to %s:%u", cfg->to_host, (unsigned)cfg->to_port);
    rc = cli_signal() ? QP_ERR_INTERRUPTED
                      : qp_portal_connect(p, cfg->to_host, cfg->to_port,
                                          cfg->local_port, &cfg->transport,
                                          cfg->wait_ms);
  }
  if (rc != QP_OK) {
    cli_signals_watch(NULL);
    int code = rc == QP_ERR_INTERRUPTED && cli_signal()
                   ? cli_signal_exit()
                   : cli_qp_error(cfg->server ? "listen" : "connect", rc);
    qp_portal_destroy(p);
    return code;
  }
  *out = p;
  return 0;
}

static int open_traversal(const cli_conn_cfg *cfg, qp_portal_t **out) {
  qp_traverse_options o;
  qp_traverse_options_init(&o);
  o.rendezvous = cfg->rendezvous;
  if (cfg->session) {
    o.session = cfg->session;
  }
  o.local_port = cfg->local_port;
  o.stun_servers = cfg->stun;
  o.stun_server_count = cfg->nstun;
  o.punch_timeout_ms = cfg->punch_timeout_ms;
  o.wait_timeout_ms = cfg->wait_timeout_ms;
  o.local_ip = cfg->bind_ip;
  o.no_pin = cfg->no_pin;
  o.secret = cfg->secret;
  o.turn_servers = cfg->turn;
  o.turn_server_count = cfg->nturn;
  o.turn_secret_servers = cfg->turn_secret;
  o.turn_secret_server_count = cfg->nturn_secret;
  o.relay = cfg->relay;
  o.reconnect_timeout_ms = cfg->reconnect_timeout_ms;
  o.no_portmap = cfg->no_portmap;
  o.no_upnp = cfg->no_upnp;
  o.no_natpmp = cfg->no_natpmp;
  o.no_pcp = cfg->no_pcp;
  o.transport = &cfg->transport;
  o.cancel = cli_cancel_cb;
  say(cfg, "meeting the peer through %s (session %s%s) as the %s, %zu STUN "
           "server(s), %zu TURN server(s)",
      cfg->rendezvous, cfg->session ? cfg->session : "default",
      cfg->secret ? ", sealed with a secret" : "",
      cfg->server ? "server" : "client", cfg->nstun,
      cfg->nturn + cfg->nturn_secret);
  cli_say_peer_command(cfg, NULL);
  qp_portal_t *p = NULL;
  int rc = cfg->server ? qp_create_server(&o, &p) : qp_create_client(&o, &p);
  if (rc != QP_OK) {
    if (rc == QP_ERR_INTERRUPTED && cli_signal()) {
      return cli_signal_exit();
    }
    int code = cli_qp_error("NAT traversal", rc);
    /* Sides with different secrets (or one without) use different store
     * keys: to each, the other looks absent. */
    if (rc == QP_ERR_TIMEOUT || rc == QP_ERR_RENDEZVOUS) {
      cli_errorf("%s", cfg->secret
                           ? "this side sealed the rendezvous with a secret: "
                             "the peer must give the same --secret (a "
                             "different one looks like an absent peer)"
                           : "this side used no secret: if the peer's serve "
                             "printed a command with --secret, give that "
                             "secret here");
    }
    return code;
  }
  cli_signals_watch(p);
  char fp[QP_FINGERPRINT_SIZE];
  qp_portal_fingerprint(p, fp, sizeof(fp));
  say(cfg, "this side's certificate fingerprint: %s", fp);
  *out = p;
  return 0;
}

int cli_conn_open(const cli_conn_cfg *cfg, qp_portal_t **out) {
  double t0 = cli_now();
  int rc = cfg->direct ? open_direct(cfg, out) : open_traversal(cfg, out);
  if (rc != 0) {
    return rc;
  }
  qp_portal_stats st;
  memset(&st, 0, sizeof st);
  qp_portal_get_stats(*out, &st);
  const char *pin = cfg->direct ? (cfg->pin ? "pinned with --pin and verified"
                                            : "not pinned")
                                : (cfg->no_pin ? "not pinned (--no-pin)"
                                               : "pinned from the rendezvous "
                                                 "and verified");
  if (cfg->direct && cfg->server) {
    /* handshake_us counts from the start of listen: it is the wait. */
    say(cfg, "a client connected after %.1f ms; peer certificate %s",
        (cli_now() - t0) * 1e3, pin);
  } else {
    say(cfg, "connected in %.1f ms (QUIC handshake %.1f ms); peer "
             "certificate %s",
        (cli_now() - t0) * 1e3, (double)st.handshake_us / 1e3, pin);
  }
  if (!cfg->direct) {
    char desc[QP_PATH_DESC_SIZE];
    qp_portal_path(*out, desc, sizeof desc, NULL);
    say(cfg, "path: %s", desc);
  }
  pthread_mutex_lock(&g_watch_lock);
  g_watch = (path_watch){.quiet = cfg->quiet || cfg->direct};
  watch_locked(*out); /* takes the current path as known */
  pthread_mutex_unlock(&g_watch_lock);
  return 0;
}

void cli_conn_watch(qp_portal_t *p) {
  if (pthread_mutex_trylock(&g_watch_lock) == 0) {
    watch_locked(p);
    pthread_mutex_unlock(&g_watch_lock);
  }
}

static void watch_locked(qp_portal_t *p) {
  double now = cli_now();
  if (g_watch.quiet || (g_watch.primed && now - g_watch.last_s <
                                              CLI_SLICE_MS / 1e3)) {
    return;
  }
  g_watch.last_s = now;
  char desc[QP_PATH_DESC_SIZE];
  uint64_t changed_ns = 0;
  qp_portal_stats st;
  memset(&st, 0, sizeof st);
  if (qp_portal_path(p, desc, sizeof desc, &changed_ns) < 0) {
    return;
  }
  qp_portal_get_stats(p, &st);
  bool changed = changed_ns != g_watch.changed_ns ||
                 st.recoveries != g_watch.recoveries;
  if (g_watch.primed && changed) {
    if (st.recoveries != g_watch.recoveries) {
      cli_errorf("path changed after recovery %llu: %s",
                 (unsigned long long)st.recoveries, desc);
    } else {
      cli_errorf("path changed: %s", desc);
    }
  }
  g_watch.changed_ns = changed_ns;
  g_watch.recoveries = st.recoveries;
  g_watch.primed = true;
}

int cli_conn_close(qp_portal_t *p, int linger_ms) {
  if (!p) {
    return QP_OK;
  }
  /* Interrupted: the person wants out now, not after the queued data
   * (the peer learns of the close at once either way). */
  int rc = qp_portal_close(p, cli_signal() ? 0 : linger_ms);
  cli_signals_watch(NULL);
  qp_portal_destroy(p);
  return rc;
}

int cli_recv(qp_portal_t *p, void **msg, size_t *len, int timeout_ms) {
  double deadline = timeout_ms < 0 ? -1 : cli_now() + timeout_ms / 1e3;
  for (;;) {
    if (cli_signal()) {
      return QP_ERR_INTERRUPTED;
    }
    int slice = CLI_SLICE_MS;
    if (deadline >= 0) {
      double left_ms = (deadline - cli_now()) * 1e3;
      if (left_ms <= 0) {
        return QP_ERR_TIMEOUT;
      }
      slice = left_ms < slice ? (int)left_ms + 1 : slice;
    }
    int rc = qp_portal_recv(p, msg, len, slice);
    if (rc == QP_OK || rc == QP_ERR_TIMEOUT) {
      cli_conn_watch(p); /* after a failure, qp_last_error() must stay */
    }
    if (rc != QP_ERR_TIMEOUT) {
      return rc;
    }
  }
}

int cli_send(qp_portal_t *p, const void *buf, size_t len) {
  for (;;) {
    if (cli_signal()) {
      return QP_ERR_INTERRUPTED;
    }
    int rc = qp_portal_send(p, buf, len, CLI_SLICE_MS);
    if (rc == QP_OK || rc == QP_ERR_TIMEOUT) {
      cli_conn_watch(p); /* after a failure, qp_last_error() must stay */
    }
    if (rc != QP_ERR_TIMEOUT) {
      return rc;
    }
  }
}
