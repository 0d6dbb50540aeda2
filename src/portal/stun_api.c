/* Public wrappers over the stun layer: the embedded server and discovery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/clock.h"
#include "common/error.h"
#include "stun/stun_msg.h"
#include "stun/stun_nat.h"
#include "stun/stun_server.h"
#include "udp/udp_resolve.h"

struct qp_stun_server {
  stun_server_t *server;
};

int qp_stun_server_start(const char *primary, const char *alternate,
                         qp_stun_server_t **out) {
  if (primary == NULL || out == NULL)
    return err_fail(QP_ERR_INVALID, "qp_stun_server_start: primary and out are required");
  qp_stun_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory starting a STUN server");
  int rc = stun_server_start(primary, alternate, &s->server);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

uint16_t qp_stun_server_port(const qp_stun_server_t *s) {
  udp_addr_t a;
  if (s == NULL || stun_server_address(s->server, 0, &a) != 0)
    return 0;
  return udp_addr_port(&a);
}

void qp_stun_server_stop(qp_stun_server_t *s) {
  if (s == NULL)
    return;
  stun_server_stop(s->server);
  free(s);
}

/* Resolve the one or two servers of a discovery at once, within the
 * discovery's own timeout, IPv4 preferred as before. */
static int resolve_servers(const char *const *names, size_t n, int timeout_ms,
                           udp_addr_t *out) {
  udp_resolved_t r[2];
  uint64_t deadline = clock_deadline_ns(timeout_ms);
  udp_resolve_names(names, n, STUN_DEFAULT_PORT, AF_INET, timeout_ms, NULL, NULL, r);
  for (size_t i = 0; i < n; i++) {
    uint64_t now = clock_now_ns();
    int left_ms = now < deadline ? (int)((deadline - now) / CLOCK_NS_PER_MS) : 0;
    if (r[i].rc == QP_ERR_RESOLVE) /* no IPv4 address: take any */
      udp_resolve_names(&names[i], 1, STUN_DEFAULT_PORT, AF_UNSPEC, left_ms, NULL,
                        NULL, &r[i]);
    if (r[i].rc != 0)
      return err_fail(r[i].rc == QP_ERR_TIMEOUT ? QP_ERR_RESOLVE : r[i].rc,
                     "STUN server %s: %s", names[i], r[i].message);
    out[i] = r[i].addr;
  }
  return 0;
}

static void fill_report(const stun_nat_result *r, qp_nat_report *out) {
  memset(out, 0, sizeof(*out));
  snprintf(out->type, sizeof(out->type), "%s", stun_nat_type_name(r->type));
  snprintf(out->mapping, sizeof(out->mapping), "%s", stun_nat_mapping_name(r->mapping));
  snprintf(out->filtering, sizeof(out->filtering), "%s",
           stun_nat_filtering_name(r->filtering));
  snprintf(out->port_allocation, sizeof(out->port_allocation), "%s",
           stun_nat_port_allocation_name(r->port_allocation));
  udp_addr_to_string(&r->local, out->local, sizeof(out->local));
  udp_addr_to_string(&r->mapped, out->mapped, sizeof(out->mapped));
  out->rfc5780 = r->rfc5780;
  out->has_port_delta = r->has_port_delta;
  out->port_delta = r->port_delta;
  stun_nat_to_string(r, out->summary, sizeof(out->summary));
}

int qp_nat_discover(const char *server, const char *second_server, int timeout_ms,
                    qp_nat_report *out) {
  if (server == NULL || out == NULL || timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID,
                   "qp_nat_discover: a server, a report and a positive timeout are required");
  stun_nat_config cfg = {0};
  const char *names[2] = {server, second_server};
  udp_addr_t addrs[2];
  uint64_t start = clock_now_ns();
  int rc = resolve_servers(names, second_server != NULL ? 2 : 1, timeout_ms, addrs);
  if (rc != 0)
    return rc;
  cfg.server = addrs[0];
  cfg.has_second_server = second_server != NULL;
  if (cfg.has_second_server)
    cfg.second_server = addrs[1];
  /* The lookups count against the caller's timeout: at least 1 ms is left
   * for the discovery itself, which reports a silent server. */
  int spent_ms = (int)((clock_now_ns() - start) / CLOCK_NS_PER_MS);
  cfg.timeout_ms = timeout_ms - spent_ms > 0 ? timeout_ms - spent_ms : 1;
  stun_nat_result r;
  rc = stun_nat_discover(&cfg, &r);
  if (rc == 0)
    fill_report(&r, out);
  return rc;
}
