#include "tls/tls_identity.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "common/error.h"
#include "common/log.h"
#include "common/secret.h"

/* The certificate lives as long as the process that made it; one day of
 * clock skew is tolerated on either side. */
#define CERT_BACKDATE_SECS (24 * 3600)
#define CERT_LIFETIME_SECS (365 * 24 * 3600)

const char tls_quic_priority[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:+AES-128-CCM:-GROUP-ALL:+GROUP-X25519:"
    "+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"
    "%DISABLE_TLS13_COMPAT_MODE";

struct tls_identity {
  gnutls_x509_privkey_t key;
  gnutls_x509_crt_t crt;
  gnutls_certificate_credentials_t cred;
  uint8_t fingerprint[TLS_FINGERPRINT_LEN];
};

static int tls_error(const char *what, int rv) {
  return err_fail(rv == GNUTLS_E_MEMORY_ERROR ? QP_ERR_NOMEM : QP_ERR_TLS,
                 "GnuTLS %s failed: %s", what, gnutls_strerror(rv));
}

static int fill_certificate(tls_identity_t *id) {
  gnutls_x509_crt_t crt = id->crt;
  uint8_t serial[16];
  int rv = gnutls_rnd(GNUTLS_RND_NONCE, serial, sizeof(serial));
  if (rv < 0)
    return tls_error("random serial", rv);
  serial[0] &= 0x7f; /* a positive DER integer */
  time_t now = time(NULL);
  if ((rv = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
      (rv = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
      (rv = gnutls_x509_crt_set_activation_time(crt, now - CERT_BACKDATE_SECS)) < 0 ||
      (rv = gnutls_x509_crt_set_expiration_time(crt, now + CERT_LIFETIME_SECS)) < 0 ||
      (rv = gnutls_x509_crt_set_dn(crt, "CN=quic-portal", NULL)) < 0 ||
      (rv = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "quic-portal",
                                                 strlen("quic-portal"),
                                                 GNUTLS_FSAN_SET)) < 0 ||
      (rv = gnutls_x509_crt_set_key(crt, id->key)) < 0 ||
      (rv = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
      (rv = gnutls_x509_crt_sign2(crt, crt, id->key, GNUTLS_DIG_SHA256, 0)) < 0)
    return tls_error("self-signed certificate", rv);
  size_t fp_size = sizeof(id->fingerprint);
  rv = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, id->fingerprint,
                                       &fp_size);
  if (rv < 0)
    return tls_error("certificate fingerprint", rv);
  return 0;
}

/* Documented process-wide state: the key log warning is logged once. */
static atomic_bool keylog_warned;

/* SSLKEYLOGFILE names a file where GnuTLS appends every session's keys,
 * opened with fopen("a"): the umask's mode, often 0644, so any local user
 * could decrypt a capture. Create it 0600 before the first handshake; an
 * existing file others can read, or that cannot be opened, is reported
 * once. O_NONBLOCK: a FIFO there must not hang us. */
static void keylog_prepare(void) {
  const char *path = getenv("SSLKEYLOGFILE");
  if (path == NULL || *path == '\0')
    return;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
                          O_NONBLOCK, 0600);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && (st.st_mode & 077) == 0) {
    close(fd);
    return;
  }
  if (!atomic_exchange(&keylog_warned, true)) {
    if (fd < 0)
      QP_LOG_WARN("SSLKEYLOGFILE %s cannot be opened safely (%s); GnuTLS may "
                  "still write TLS keys there", path, strerror(errno));
    else
      QP_LOG_WARN("SSLKEYLOGFILE %s is open to other users (mode %03o): "
                  "whoever reads it can decrypt captured traffic",
                  path, (unsigned)(st.st_mode & 0777));
  }
  if (fd >= 0)
    close(fd);
}

int tls_identity_create(tls_identity_t **out) {
  keylog_prepare();
  tls_identity_t *id = calloc(1, sizeof(*id));
  if (id == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory creating a TLS identity");
  int rv, rc;
  if ((rv = gnutls_x509_privkey_init(&id->key)) < 0 ||
      (rv = gnutls_x509_crt_init(&id->crt)) < 0 ||
      (rv = gnutls_certificate_allocate_credentials(&id->cred)) < 0) {
    rc = tls_error("init", rv);
    goto fail;
  }
  rv = gnutls_x509_privkey_generate(
      id->key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
  if (rv < 0) {
    rc = tls_error("ECDSA P-256 key generation", rv);
    goto fail;
  }
  if ((rc = fill_certificate(id)) != 0)
    goto fail;
  rv = gnutls_certificate_set_x509_key(id->cred, &id->crt, 1, id->key);
  if (rv < 0) {
    rc = tls_error("loading the certificate into credentials", rv);
    goto fail;
  }
  *out = id;
  return 0;
fail:
  tls_identity_destroy(id);
  return rc;
}

void tls_identity_destroy(tls_identity_t *id) {
  if (id == NULL)
    return;
  if (id->cred)
    gnutls_certificate_free_credentials(id->cred);
  if (id->crt)
    gnutls_x509_crt_deinit(id->crt);
  if (id->key)
    gnutls_x509_privkey_deinit(id->key);
  free(id);
}

gnutls_certificate_credentials_t tls_identity_credentials(const tls_identity_t *id) {
  return id->cred;
}

const uint8_t *tls_identity_fingerprint(const tls_identity_t *id) {
  return id->fingerprint;
}

void tls_fingerprint_to_hex(const uint8_t fp[TLS_FINGERPRINT_LEN], char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < TLS_FINGERPRINT_LEN; i++) {
    out[2 * i] = digits[fp[i] >> 4];
    out[2 * i + 1] = digits[fp[i] & 15];
  }
  out[2 * TLS_FINGERPRINT_LEN] = '\0';
}

static int hex_value(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

int tls_fingerprint_parse(const char *text, uint8_t fp[TLS_FINGERPRINT_LEN]) {
  if (text == NULL)
    return err_fail(QP_ERR_INVALID, "fingerprint is NULL");
  const char *p = text;
  if (strncasecmp(p, "sha256:", 7) == 0)
    p += 7;
  size_t digits = 0;
  uint8_t out[TLS_FINGERPRINT_LEN];
  for (; *p; p++) {
    if (*p == ':')
      continue;
    int v = hex_value((unsigned char)*p);
    if (v < 0 || digits >= 2 * TLS_FINGERPRINT_LEN)
      return err_fail(QP_ERR_INVALID,
                     "fingerprint \"%.80s\" is not 64 hex digits of a SHA-256 "
                     "(colons and a \"sha256:\" prefix are allowed)",
                     text);
    if (digits % 2 == 0)
      out[digits / 2] = (uint8_t)(v << 4);
    else
      out[digits / 2] |= (uint8_t)v;
    digits++;
  }
  if (digits != 2 * TLS_FINGERPRINT_LEN)
    return err_fail(QP_ERR_INVALID,
                   "fingerprint \"%.80s\" has %zu hex digits; a SHA-256 "
                   "fingerprint has 64",
                   text, digits);
  memcpy(fp, out, sizeof(out));
  return 0;
}

int tls_check_peer_pin(gnutls_session_t session,
                       const uint8_t pin[TLS_FINGERPRINT_LEN], char *why,
                       size_t why_size) {
  char want[2 * TLS_FINGERPRINT_LEN + 1];
  tls_fingerprint_to_hex(pin, want);
  unsigned int count = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &count);
  if (certs == NULL || count == 0) {
    snprintf(why, why_size,
             "peer presented no certificate, but fingerprint %s is pinned", want);
    return QP_ERR_PEER_VERIFY;
  }
  uint8_t got[TLS_FINGERPRINT_LEN];
  size_t got_size = sizeof(got);
  int rv = gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], got, &got_size);
  if (rv < 0 || got_size != sizeof(got)) {
    snprintf(why, why_size, "cannot hash the peer certificate: %s",
             gnutls_strerror(rv));
    return QP_ERR_PEER_VERIFY;
  }
  if (!secret_equal(got, pin, sizeof(got))) {
    char have[2 * TLS_FINGERPRINT_LEN + 1];
    tls_fingerprint_to_hex(got, have);
    snprintf(why, why_size,
             "peer certificate fingerprint %s does not match the pinned "
             "fingerprint %s",
             have, want);
    return QP_ERR_PEER_VERIFY;
  }
  return 0;
}
