/*
 * sha256.h: SHA-256 (FIPS 180-4) for the quic-portal tool, which may use
 * only the library's public header and so brings its own hash to verify
 * transferred files.
 */
#ifndef QP_CLI_SHA256_H
#define QP_CLI_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32

typedef struct sha256_ctx {
  uint32_t h[8];
  uint64_t total; /* bytes hashed so far */
  uint8_t block[64];
  size_t used; /* bytes waiting in block */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_SIZE]);

#endif /* QP_CLI_SHA256_H */
