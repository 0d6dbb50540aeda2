#include "rendezvous/rdv_seal.h"

#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "common/error.h"

#define SEAL_SALT "quic-portal rendezvous 1"
#define SEAL_INFO_KEY "record key"
#define SEAL_INFO_LABEL "store label"
#define SEAL_AAD_PREFIX "quic-portal sealed record 1"
#define SEAL_LABEL_BYTES (RDV_SEAL_LABEL_LEN / 2)
#define PREFIX_LEN (sizeof(RDV_SEAL_PREFIX) - 1)

/* info = what 0x00 session: the session binds every derived value. */
static int expand(const gnutls_datum_t *prk, const char *what,
                  const char *session, void *out, size_t len) {
  uint8_t info[sizeof(SEAL_INFO_LABEL) + RDV_SESSION_MAX + 1];
  size_t wl = strlen(what) + 1, sl = strnlen(session, RDV_SESSION_MAX);
  memcpy(info, what, wl);
  memcpy(info + wl, session, sl);
  gnutls_datum_t d = {.data = info, .size = (unsigned)(wl + sl)};
  return gnutls_hkdf_expand(GNUTLS_MAC_SHA256, prk, &d, out, len);
}

int rdv_seal_init(rdv_seal_t *s, const char *secret, const char *session) {
  memset(s, 0, sizeof(*s));
  size_t n = secret ? strnlen(secret, RDV_SECRET_MAX + 1) : 0;
  if (n < RDV_SECRET_MIN || n > RDV_SECRET_MAX)
    return err_fail(QP_ERR_INVALID,
                   "the rendezvous secret is %zu bytes%s: it must be %d to %d "
                   "bytes (a generated code, or a long passphrase)",
                   n, n > RDV_SECRET_MAX ? " or more" : "", RDV_SECRET_MIN,
                   RDV_SECRET_MAX);
  uint8_t prk[32], label[SEAL_LABEL_BYTES];
  gnutls_datum_t ikm = {.data = (void *)secret, .size = (unsigned)n};
  gnutls_datum_t salt = {.data = (void *)SEAL_SALT, .size = sizeof(SEAL_SALT) - 1};
  gnutls_datum_t prk_d = {.data = prk, .size = sizeof(prk)};
  int rv = gnutls_hkdf_extract(GNUTLS_MAC_SHA256, &ikm, &salt, prk);
  if (rv == 0)
    rv = expand(&prk_d, SEAL_INFO_KEY, session, s->key, sizeof(s->key));
  if (rv == 0)
    rv = expand(&prk_d, SEAL_INFO_LABEL, session, label, sizeof(label));
  gnutls_memset(prk, 0, sizeof(prk));
  if (rv != 0) {
    rdv_seal_wipe(s);
    return err_fail(QP_ERR_TLS, "HKDF-SHA256 (GnuTLS) failed: %s",
                   gnutls_strerror(rv));
  }
  for (size_t i = 0; i < sizeof(label); i++)
    snprintf(s->label + 2 * i, 3, "%02x", label[i]);
  return 0;
}

void rdv_seal_wipe(rdv_seal_t *s) {
  if (s != NULL)
    gnutls_memset(s, 0, sizeof(*s));
}

bool rdv_seal_is_sealed(const char *text, size_t len) {
  return text != NULL && len >= PREFIX_LEN &&
         memcmp(text, RDV_SEAL_PREFIX, PREFIX_LEN) == 0;
}

/* Associated data: a fixed prefix, 0x00, the key name. */
static size_t make_aad(const char *name, uint8_t *aad, size_t cap) {
  int n = snprintf((char *)aad, cap, "%s%c%s", SEAL_AAD_PREFIX, 0, name);
  return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

static int cipher_open(const rdv_seal_t *s, gnutls_aead_cipher_hd_t *h) {
  gnutls_datum_t key = {.data = (void *)s->key, .size = sizeof(s->key)};
  int rv = gnutls_aead_cipher_init(h, GNUTLS_CIPHER_AES_256_GCM, &key);
  if (rv != 0)
    return err_fail(QP_ERR_TLS, "AES-256-GCM (GnuTLS) unavailable: %s",
                   gnutls_strerror(rv));
  return 0;
}

int rdv_seal_record(const rdv_seal_t *s, const char *name, const char *text,
                    size_t len, char *out, size_t cap, size_t *out_len) {
  uint8_t raw[RDV_SEAL_NONCE_LEN + RDV_RECORD_MAX_SIZE + RDV_SEAL_TAG_LEN];
  uint8_t aad[sizeof(SEAL_AAD_PREFIX) + RDV_KEY_MAX + 1];
  size_t aad_len = make_aad(name, aad, sizeof(aad));
  if (len > RDV_RECORD_MAX_SIZE || aad_len == 0)
    return err_fail(QP_ERR_TOO_LARGE, "record of %zu bytes is too large to seal",
                   len);
  if (gnutls_rnd(GNUTLS_RND_NONCE, raw, RDV_SEAL_NONCE_LEN) != 0)
    return err_fail(QP_ERR_TLS, "gnutls_rnd failed to make a nonce");
  gnutls_aead_cipher_hd_t h;
  int rc = cipher_open(s, &h);
  if (rc != 0)
    return rc;
  size_t clen = sizeof(raw) - RDV_SEAL_NONCE_LEN;
  int rv = gnutls_aead_cipher_encrypt(h, raw, RDV_SEAL_NONCE_LEN, aad, aad_len,
                                      RDV_SEAL_TAG_LEN, text, len,
                                      raw + RDV_SEAL_NONCE_LEN, &clen);
  gnutls_aead_cipher_deinit(h);
  if (rv != 0)
    return err_fail(QP_ERR_TLS, "AES-256-GCM sealing failed: %s",
                   gnutls_strerror(rv));
  gnutls_datum_t in = {.data = raw, .size = (unsigned)(RDV_SEAL_NONCE_LEN + clen)};
  gnutls_datum_t b64 = {NULL, 0};
  if ((rv = gnutls_base64_encode2(&in, &b64)) != 0)
    return err_fail(QP_ERR_TLS, "base64 encoding failed: %s", gnutls_strerror(rv));
  rc = 0;
  if (PREFIX_LEN + b64.size + 1 > cap)
    rc = err_fail(QP_ERR_TOO_LARGE, "sealed record of %zu bytes does not fit",
                 PREFIX_LEN + b64.size);
  else {
    memcpy(out, RDV_SEAL_PREFIX, PREFIX_LEN);
    memcpy(out + PREFIX_LEN, b64.data, b64.size);
    out[PREFIX_LEN + b64.size] = '\0';
    *out_len = PREFIX_LEN + b64.size;
  }
  gnutls_free(b64.data);
  return rc;
}

/* Base64 body of a sealed record into raw; its length, or 0. */
static size_t decode_body(const char *sealed, size_t len, uint8_t *raw,
                          size_t cap) {
  gnutls_datum_t in = {.data = (void *)(sealed + PREFIX_LEN),
                       .size = (unsigned)(len - PREFIX_LEN)};
  gnutls_datum_t bin = {NULL, 0};
  if (gnutls_base64_decode2(&in, &bin) != 0)
    return 0;
  size_t n = bin.size <= cap ? bin.size : 0;
  if (n)
    memcpy(raw, bin.data, n);
  gnutls_free(bin.data);
  return n;
}

int rdv_seal_open(const rdv_seal_t *s, const char *name, const char *sealed,
                  size_t len, char *out, size_t cap, size_t *out_len) {
  if (!rdv_seal_is_sealed(sealed, len))
    return err_fail(QP_ERR_RENDEZVOUS,
                   "the %s record is not sealed: the peer runs without the "
                   "secret, or someone without it wrote there",
                   name);
  uint8_t raw[RDV_SEAL_NONCE_LEN + RDV_RECORD_MAX_SIZE + RDV_SEAL_TAG_LEN];
  uint8_t aad[sizeof(SEAL_AAD_PREFIX) + RDV_KEY_MAX + 1];
  size_t aad_len = make_aad(name, aad, sizeof(aad));
  size_t n = len <= RDV_SEALED_MAX ? decode_body(sealed, len, raw, sizeof(raw)) : 0;
  if (n < RDV_SEAL_NONCE_LEN + RDV_SEAL_TAG_LEN || aad_len == 0)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "the sealed %s record is malformed (%zu bytes)", name, len);
  gnutls_aead_cipher_hd_t h;
  int rc = cipher_open(s, &h);
  if (rc != 0)
    return rc;
  size_t plen = cap - 1;
  int rv = gnutls_aead_cipher_decrypt(h, raw, RDV_SEAL_NONCE_LEN, aad, aad_len,
                                      RDV_SEAL_TAG_LEN, raw + RDV_SEAL_NONCE_LEN,
                                      n - RDV_SEAL_NONCE_LEN, out, &plen);
  gnutls_aead_cipher_deinit(h);
  if (rv != 0)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "the sealed %s record does not open with our secret: the "
                   "peer uses another secret, or someone without it wrote "
                   "there",
                   name);
  out[plen] = '\0';
  *out_len = plen;
  return 0;
}
