/* Public wrappers over the stun layer: the embedded server and discovery. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/error.h"
#include "stun/stun_addr.h"
#include "stun/stun_nat.h"
#include "stun/stun_server.h"

struct qp_stun_server {
  stun_server_t *server;
};

int qp_stun_server_start(const char *primary, const char *alternate,
                         qp_stun_server_t **out) {
  if (primary == NULL || out == NULL)
    return qp_fail(QP_ERR_INVALID, "qp_stun_server_start: primary and out are required");
  qp_stun_server_t *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return qp_fail(QP_ERR_NOMEM, "out of memory starting a STUN server");
  int rc = stun_server_start(primary, alternate, &s->server);
  if (rc != 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

uint16_t qp_stun_server_port(const qp_stun_server_t *s) {
  struct sockaddr_storage a;
  if (s == NULL || stun_server_address(s->server, 0, &a) != 0)
    return 0;
  return stun_addr_port(&a);
}

void qp_stun_server_stop(qp_stun_server_t *s) {
  if (s == NULL)
    return;
  stun_server_stop(s->server);
  free(s);
}

/* "host:port", "[v6]:port" or "v6literal" with the default STUN port. */
static int resolve_host_port(const char *text, struct sockaddr_storage *out) {
  if (text == NULL || *text == '\0')
    return qp_fail(QP_ERR_INVALID, "empty STUN server address");
  if (stun_addr_parse(text, 3478, out) == 0)
    return 0;
  char host[256];
  const char *colon = strrchr(text, ':');
  size_t hlen = colon ? (size_t)(colon - text) : strlen(text);
  if (hlen == 0 || hlen >= sizeof(host))
    return qp_fail(QP_ERR_INVALID, "\"%.100s\" is not host:port", text);
  memcpy(host, text, hlen);
  host[hlen] = '\0';
  long port = 3478;
  if (colon) {
    char *end;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
      return qp_fail(QP_ERR_INVALID, "\"%.100s\": port must be 1-65535", text);
  }
  int n = stun_addr_resolve(host, (uint16_t)port, AF_INET, out, 1);
  if (n < 0)
    n = stun_addr_resolve(host, (uint16_t)port, AF_UNSPEC, out, 1);
  return n < 0 ? n : 0;
}

static void fill_report(const stun_nat_result *r, qp_nat_report *out) {
  memset(out, 0, sizeof(*out));
  snprintf(out->type, sizeof(out->type), "%s", stun_nat_type_name(r->type));
  snprintf(out->mapping, sizeof(out->mapping), "%s", stun_nat_mapping_name(r->mapping));
  snprintf(out->filtering, sizeof(out->filtering), "%s",
           stun_nat_filtering_name(r->filtering));
  snprintf(out->port_allocation, sizeof(out->port_allocation), "%s",
           stun_nat_port_allocation_name(r->port_allocation));
  stun_addr_format(&r->local, out->local, sizeof(out->local));
  stun_addr_format(&r->mapped, out->mapped, sizeof(out->mapped));
  out->rfc5780 = r->rfc5780;
  out->has_port_delta = r->has_port_delta;
  out->port_delta = r->port_delta;
  stun_nat_to_string(r, out->summary, sizeof(out->summary));
}

int qp_nat_discover(const char *server, const char *second_server, int timeout_ms,
                    qp_nat_report *out) {
  if (server == NULL || out == NULL || timeout_ms <= 0)
    return qp_fail(QP_ERR_INVALID,
                   "qp_nat_discover: a server, a report and a positive timeout are required");
  stun_nat_config cfg = {.timeout_ms = timeout_ms};
  int rc = resolve_host_port(server, &cfg.server);
  if (rc == 0 && second_server != NULL) {
    rc = resolve_host_port(second_server, &cfg.second_server);
    cfg.has_second_server = rc == 0;
  }
  if (rc != 0)
    return rc;
  stun_nat_result r;
  rc = stun_nat_discover(&cfg, &r);
  if (rc == 0)
    fill_report(&r, out);
  return rc;
}
