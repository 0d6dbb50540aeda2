/*
 * tls layer: this portal's identity (key pair + self-signed certificate made
 * at start with GnuTLS), certificate fingerprints, and pin checks.
 *
 * A fingerprint is the SHA-256 of the certificate's DER encoding. Peers learn
 * each other's fingerprint out of band (the rendezvous record, or the user)
 * and pin it: that replaces a CA for two programs that share a secret store.
 */
#ifndef QP_TLS_IDENTITY_H
#define QP_TLS_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

#define TLS_FINGERPRINT_LEN 32 /* SHA-256 */

typedef struct tls_identity tls_identity_t;

/* Make a fresh ECDSA P-256 key and a self-signed certificate for
 * "quic-portal". Returns 0 or QP_ERR_TLS / QP_ERR_NOMEM with a message. */
int tls_identity_create(tls_identity_t **out);
void tls_identity_destroy(tls_identity_t *id);

/* Credentials holding the key and certificate, for gnutls_credentials_set.
 * Owned by the identity. */
gnutls_certificate_credentials_t tls_identity_credentials(const tls_identity_t *id);

const uint8_t *tls_identity_fingerprint(const tls_identity_t *id);

/* Hex form: 64 lowercase digits + NUL into out[65]. */
void tls_fingerprint_to_hex(const uint8_t fp[TLS_FINGERPRINT_LEN], char *out);

/* Parse 64 hex digits, optionally ':'-separated, optionally "sha256:"-
 * prefixed, any case. Returns 0 or QP_ERR_INVALID with a message. */
int tls_fingerprint_parse(const char *text, uint8_t fp[TLS_FINGERPRINT_LEN]);

/*
 * Compare the certificate the peer presented in session with pin, in
 * constant time. Returns 0 on a match, or QP_ERR_PEER_VERIFY and writes a
 * sentence naming both fingerprints into why (why_size bytes).
 */
int tls_check_peer_pin(gnutls_session_t session,
                       const uint8_t pin[TLS_FINGERPRINT_LEN], char *why,
                       size_t why_size);

/* The TLS 1.3-only priority string QUIC needs (no middlebox compat mode). */
extern const char tls_quic_priority[];

#endif
