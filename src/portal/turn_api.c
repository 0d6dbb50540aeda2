/*
 * turn_api.c: the public wrapper over the turn layer's end-to-end check
 * (turn/turn_check.h), for `quic-portal turn-check` and the Python package:
 * front ends use only the public header.
 */
#include <gnutls/gnutls.h>
#include <string.h>

#include "common/error.h"
#include "turn/turn_check.h"
#include "udp/udp.h"

int qp_turn_check(const char *server, bool shared_secret, int timeout_ms,
                  qp_turn_check_result *out) {
  if (server == NULL || out == NULL || timeout_ms <= 0)
    return err_fail(QP_ERR_INVALID, "qp_turn_check: a server, a result and a "
                    "positive timeout are required");
  memset(out, 0, sizeof(*out));
  turn_server_spec spec;
  int rc = turn_spec_parse(server, shared_secret, &spec);
  turn_check_result r;
  memset(&r, 0, sizeof(r));
  if (rc == 0)
    rc = turn_check(&spec, timeout_ms, &r);
  /* The password (or shared secret) is not needed any more. */
  gnutls_memset(&spec, 0, sizeof(spec));
  if (r.server.len > 0)
    udp_addr_to_string(&r.server, out->server, sizeof(out->server));
  if (r.relayed.len > 0)
    udp_addr_to_string(&r.relayed, out->relayed, sizeof(out->relayed));
  if (r.mapped.len > 0)
    udp_addr_to_string(&r.mapped, out->mapped, sizeof(out->mapped));
  out->lifetime_s = r.lifetime_s;
  out->allocate_ms = r.allocate_ms;
  out->relay_ms = r.relay_ms;
  return rc;
}
