/*
 * cli_hash.h: SHA-256 of a stream on a thread of its own (cli_hash.c).
 * One owner thread pushes chunks in order and finishes; the chunks must
 * stay valid until hashed (their release function is called then, or
 * cli_hasher_wait says so).
 */
#ifndef QP_CLI_HASH_H
#define QP_CLI_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_SHA256_SIZE 32
/* Chunks waiting to be hashed before a push blocks: with the transfer's
 * 256 KiB chunks, 2 MiB of memory and about 2 ms of hashing. */
#define CLI_HASH_QUEUE 8

typedef struct cli_hasher cli_hasher;

/* A new hasher and its thread; NULL when out of memory or threads. */
cli_hasher *cli_hasher_start(void);
/* Queue len bytes at data (after everything pushed before);
 * release(owner) runs on the hasher's thread once hashed (release may be
 * NULL). Blocks while CLI_HASH_QUEUE chunks wait. */
void cli_hasher_push(cli_hasher *h, const void *data, size_t len,
                     void (*release)(void *), void *owner);
/* Wait until the first n chunks pushed have been hashed. */
void cli_hasher_wait(cli_hasher *h, uint64_t n);
/* Hash what is queued, write the digest (32 bytes, unless digest is NULL),
 * stop the thread and free h. Accepts NULL. */
void cli_hasher_finish(cli_hasher *h, uint8_t *digest);

#endif /* QP_CLI_HASH_H */
