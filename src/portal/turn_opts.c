/*
 * turn_opts.c: qp_traverse_options' TURN servers as traversal's
 * turn_config list: parse the spec strings, resolve the hosts (off the I/O
 * thread, bounded like the STUN servers'), fill the credentials (static, or
 * coturn REST ones from the shared secret).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/error.h"
#include "common/log.h"
#include "portal/relay.h"
#include "udp/udp_resolve.h"

/* REST credentials made from a shared secret are valid this long: a whole
 * connection lives on one allocation, refreshed with the same user. */
#define TURN_REST_TTL_S (24 * 3600)

int turn_opts_validate(const qp_traverse_options *o) {
  if (o->relay != QP_RELAY_AUTO && o->relay != QP_RELAY_NEVER &&
      o->relay != QP_RELAY_ONLY)
    return err_fail(QP_ERR_INVALID, "relay=%d: must be QP_RELAY_AUTO (0), "
                    "QP_RELAY_NEVER (1) or QP_RELAY_ONLY (2)", o->relay);
  if ((o->turn_server_count > 0 && o->turn_servers == NULL) ||
      (o->turn_secret_server_count > 0 && o->turn_secret_servers == NULL))
    return err_fail(QP_ERR_INVALID, "a TURN server count is given but its "
                    "list is NULL");
  if (o->turn_server_count + o->turn_secret_server_count > QP_MAX_TURN_SERVERS)
    return err_fail(QP_ERR_INVALID, "%zu TURN servers: at most %d",
                    o->turn_server_count + o->turn_secret_server_count,
                    QP_MAX_TURN_SERVERS);
  if (o->relay == QP_RELAY_ONLY &&
      o->turn_server_count + o->turn_secret_server_count == 0)
    return err_fail(QP_ERR_INVALID, "relay only, but no TURN server is given "
                    "(turn_servers or turn_secret_servers)");
  return 0;
}

static int parse_all(const qp_traverse_options *o, turn_server_spec *specs,
                     size_t *n) {
  *n = 0;
  for (size_t i = 0; i < o->turn_server_count + o->turn_secret_server_count;
       i++) {
    bool secret = i >= o->turn_server_count;
    const char *text = secret ? o->turn_secret_servers[i - o->turn_server_count]
                              : o->turn_servers[i];
    int rc = turn_spec_parse(text, secret, &specs[(*n)++]);
    if (rc != 0)
      return rc;
  }
  return 0;
}

int turn_opts_build(const qp_traverse_options *o, int family, int budget_ms,
                    turn_config *out, size_t *count) {
  turn_server_spec specs[QP_MAX_TURN_SERVERS];
  char hostport[QP_MAX_TURN_SERVERS][UDP_RESOLVE_TEXT_MAX];
  const char *names[QP_MAX_TURN_SERVERS];
  udp_resolved_t res[QP_MAX_TURN_SERVERS];
  size_t n = 0;
  *count = 0;
  if (o->relay == QP_RELAY_NEVER)
    return 0;
  int rc = parse_all(o, specs, &n);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    bool v6 = strchr(specs[i].host, ':') != NULL;
    snprintf(hostport[i], sizeof(hostport[i]), v6 ? "[%s]:%u" : "%s:%u",
             specs[i].host, (unsigned)specs[i].port);
    names[i] = hostport[i];
  }
  if (rc != 0 || n == 0)
    goto done;
  udp_resolve_names(names, n, TURN_DEFAULT_PORT, family, budget_ms, o->cancel,
                    o->cancel_user, res);
  for (size_t i = 0; i < n; i++) {
    if (res[i].rc != 0) {
      QP_LOG_INFO("TURN server %s skipped: %s", names[i], res[i].message);
      continue;
    }
    turn_config *c = &out[*count];
    memset(c, 0, sizeof(*c));
    c->server = res[i].addr;
    if ((rc = turn_spec_credentials(&specs[i], (int64_t)time(NULL),
                                    TURN_REST_TTL_S, c->username,
                                    c->password)) != 0)
      goto done;
    (*count)++;
  }
done:
  memset(specs, 0, sizeof(specs)); /* passwords and secrets */
  return rc;
}
