/*
 * rdv_seal.h: sealed rendezvous records (an optional shared secret).
 *
 * Both peers derive, with HKDF-SHA256 (RFC 5869, GnuTLS), from the secret
 * and the session name:
 *   PRK   = HKDF-Extract(salt "quic-portal rendezvous 1", IKM secret)
 *   key   = HKDF-Expand(PRK, "record key" 0x00 session, 32)   AES-256-GCM
 *   label = HKDF-Expand(PRK, "store label" 0x00 session, 16)  as 32 hex
 * The label replaces the session name in the store, so the store shows
 * neither the session nor, records being encrypted, candidates or ICE
 * credentials. A sealed record is
 *   "qp-sealed-1." base64(nonce[12] || AES-256-GCM(record JSON) || tag[16])
 * with a random nonce and the key name ("server"/"client") as associated
 * data, so one role's record cannot be replayed as the other's. Anyone
 * without the secret can neither read nor forge one; a record that does
 * not open is refused.
 */
#ifndef QP_RDV_SEAL_H
#define QP_RDV_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rendezvous/rdv_record.h"

/* Secrets: at least 8 bytes (a generated code has 128 bits or more; a
 * shorter passphrase could be guessed offline against a stored record), at
 * most 256. */
#define RDV_SECRET_MIN 8
#define RDV_SECRET_MAX 256
#define RDV_SEAL_KEY_LEN 32
#define RDV_SEAL_NONCE_LEN 12
#define RDV_SEAL_TAG_LEN 16
/* The store's session name: 16 derived bytes as lowercase hex. */
#define RDV_SEAL_LABEL_LEN 32
#define RDV_SEAL_PREFIX "qp-sealed-1."
/* Largest sealed record: base64 of nonce + the largest record + tag. */
#define RDV_SEALED_MAX                                                         \
  (sizeof(RDV_SEAL_PREFIX) - 1 +                                               \
   4 * ((RDV_SEAL_NONCE_LEN + RDV_RECORD_MAX_SIZE + RDV_SEAL_TAG_LEN + 2) / 3))

typedef struct rdv_seal {
  uint8_t key[RDV_SEAL_KEY_LEN];
  char label[RDV_SEAL_LABEL_LEN + 1];
} rdv_seal_t;

/* Derive the keys of secret (RDV_SECRET_MIN..MAX bytes) for session.
 * QP_ERR_INVALID (secret length), QP_ERR_TLS (GnuTLS failed). */
int rdv_seal_init(rdv_seal_t *s, const char *secret, const char *session);
/* Wipe the keys (gnutls_memset). */
void rdv_seal_wipe(rdv_seal_t *s);

/* Seal len bytes of record text for key `name` into out (cap bytes,
 * RDV_SEALED_MAX + 1 suffice), NUL-terminated. QP_ERR_TLS or
 * QP_ERR_TOO_LARGE. */
int rdv_seal_record(const rdv_seal_t *s, const char *name, const char *text,
                    size_t len, char *out, size_t cap, size_t *out_len);
/* Open a sealed record of key `name` into out (cap >= RDV_RECORD_MAX_SIZE
 * + 1), NUL-terminated. QP_ERR_RENDEZVOUS when it does not open (another
 * secret, altered, or not sealed at all), with a message saying which. */
int rdv_seal_open(const rdv_seal_t *s, const char *name, const char *sealed,
                  size_t len, char *out, size_t cap, size_t *out_len);
/* Does the text look like a sealed record (its prefix)? */
bool rdv_seal_is_sealed(const char *text, size_t len);

#endif
