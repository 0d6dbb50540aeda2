/* TURN credentials: coturn's REST API secret and the user's spec strings. */
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "stun/stun_msg.h"
#include "turn/turn_proto.h"

/* The name part of the REST user (coturn ignores it; it shows in its
 * logs, which helps whoever runs the server). */
#define TURN_REST_NAME "quic-portal"

int turn_rest_credentials(const char *secret, const char *name,
                          int64_t expiry_unix, char user[TURN_USERNAME_MAX],
                          char password[TURN_PASSWORD_MAX]) {
  if (!secret || !user || !password)
    return err_fail(QP_ERR_INVALID, "turn_rest_credentials: NULL argument");
  int n = (name && *name)
              ? snprintf(user, TURN_USERNAME_MAX, "%" PRId64 ":%s", expiry_unix,
                         name)
              : snprintf(user, TURN_USERNAME_MAX, "%" PRId64, expiry_unix);
  if (n < 0 || n >= TURN_USERNAME_MAX)
    return err_fail(QP_ERR_INVALID,
                    "TURN REST user name \"%.40s...\" is longer than %d bytes",
                    name, TURN_USERNAME_MAX - 1);
  uint8_t mac[STUN_HMAC_SHA1_SIZE];
  int rc = gnutls_hmac_fast(GNUTLS_MAC_SHA1, secret, strlen(secret), user,
                            (size_t)n, mac);
  gnutls_datum_t raw = {mac, sizeof(mac)}, b64 = {NULL, 0};
  if (rc == 0)
    rc = gnutls_base64_encode2(&raw, &b64);
  if (rc < 0)
    return err_fail(QP_ERR_INTERNAL, "TURN REST password: GnuTLS failed: %s",
                    gnutls_strerror(rc));
  snprintf(password, TURN_PASSWORD_MAX, "%.*s", (int)b64.size,
           (const char *)b64.data);
  gnutls_free(b64.data);
  return 0;
}

/* Copy [start, end) into out (size cap) as a string; false if empty or too
 * long. */
static bool copy_part(const char *start, const char *end, char *out,
                      size_t cap) {
  size_t n = (size_t)(end - start);
  if (n == 0 || n >= cap)
    return false;
  memcpy(out, start, n);
  out[n] = '\0';
  return true;
}

static bool parse_host_port(const char *text, turn_server_spec *out) {
  return udp_hostport_split(text, TURN_DEFAULT_PORT, out->host,
                            sizeof(out->host), &out->port) == 0 &&
         out->port != 0;
}

int turn_spec_parse(const char *text, bool uses_secret, turn_server_spec *out) {
  const char *form =
      uses_secret ? "SECRET@HOST[:PORT]" : "USER:PASS@HOST[:PORT]";
  if (!text || !out)
    return err_fail(QP_ERR_INVALID, "TURN server: NULL spec");
  memset(out, 0, sizeof(*out));
  out->uses_secret = uses_secret;
  const char *at = strrchr(text, '@');
  if (!at) /* never quote it: it may be a password */
    return err_fail(QP_ERR_INVALID, "TURN server spec has no '@': expected %s",
                    form);
  const char *host = at + 1;
  bool ok = parse_host_port(host, out);
  if (ok && uses_secret) {
    ok = copy_part(text, at, out->password, sizeof(out->password));
  } else if (ok) {
    const char *colon = memchr(text, ':', (size_t)(at - text));
    ok = colon &&
         copy_part(text, colon, out->username, sizeof(out->username)) &&
         copy_part(colon + 1, at, out->password, sizeof(out->password));
  }
  if (!ok) {
    memset(out, 0, sizeof(*out));
    /* Quote only what follows '@': the rest holds a password. */
    return err_fail(QP_ERR_INVALID,
                    "TURN server \"...@%.100s\" is not %s (a non-empty %s, "
                    "a host, an optional port 1-65535; IPv6 in brackets)",
                    host, form, uses_secret ? "secret" : "user and password");
  }
  return 0;
}

int turn_spec_credentials(const turn_server_spec *spec, int64_t now_unix,
                          uint32_t ttl_s, char user[TURN_USERNAME_MAX],
                          char password[TURN_PASSWORD_MAX]) {
  if (!spec || !user || !password)
    return err_fail(QP_ERR_INVALID, "turn_spec_credentials: NULL argument");
  if (spec->uses_secret)
    return turn_rest_credentials(spec->password, TURN_REST_NAME,
                                 now_unix + (int64_t)ttl_s, user, password);
  snprintf(user, TURN_USERNAME_MAX, "%s", spec->username);
  snprintf(password, TURN_PASSWORD_MAX, "%s", spec->password);
  return 0;
}
