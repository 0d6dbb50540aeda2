/*
 * cli_hash.c: SHA-256 (nettle) on a thread of its own, so that a file
 * transfer hashes while it reads, sends, receives and writes: the sender
 * and the receiver hand each chunk over and go on; the digest is ready
 * when the last chunk has been hashed.
 */
#include "cli_hash.h"

#include <nettle/sha2.h>
#include <pthread.h>
#include <stdlib.h>

typedef struct hash_item {
  const void *data;
  size_t len;
  void (*release)(void *);
  void *owner;
} hash_item;

struct cli_hasher {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t changed; /* an item was queued, hashed, or the end came */
  hash_item queue[CLI_HASH_QUEUE];
  size_t head, count;    /* guarded by lock */
  uint64_t hashed;       /* chunks hashed so far; guarded by lock */
  bool ending;           /* no more items will come; guarded by lock */
  struct sha256_ctx ctx; /* only the thread touches it until joined */
};

static void *hash_thread(void *arg) {
  cli_hasher *h = arg;
  pthread_mutex_lock(&h->lock);
  for (;;) {
    while (h->count == 0 && !h->ending) {
      pthread_cond_wait(&h->changed, &h->lock);
    }
    if (h->count == 0) {
      break; /* ending and drained */
    }
    hash_item it = h->queue[h->head];
    pthread_mutex_unlock(&h->lock);
    sha256_update(&h->ctx, it.len, it.data);
    if (it.release) {
      it.release(it.owner);
    }
    pthread_mutex_lock(&h->lock);
    h->head = (h->head + 1) % CLI_HASH_QUEUE;
    h->count--;
    h->hashed++;
    pthread_cond_broadcast(&h->changed);
  }
  pthread_mutex_unlock(&h->lock);
  return NULL;
}

cli_hasher *cli_hasher_start(void) {
  cli_hasher *h = calloc(1, sizeof *h);
  if (!h) {
    return NULL;
  }
  sha256_init(&h->ctx);
  pthread_mutex_init(&h->lock, NULL);
  pthread_cond_init(&h->changed, NULL);
  if (pthread_create(&h->thread, NULL, hash_thread, h) != 0) {
    pthread_cond_destroy(&h->changed);
    pthread_mutex_destroy(&h->lock);
    free(h);
    return NULL;
  }
  return h;
}

void cli_hasher_push(cli_hasher *h, const void *data, size_t len,
                     void (*release)(void *), void *owner) {
  pthread_mutex_lock(&h->lock);
  while (h->count == CLI_HASH_QUEUE) {
    pthread_cond_wait(&h->changed, &h->lock); /* the thread always drains */
  }
  h->queue[(h->head + h->count) % CLI_HASH_QUEUE] =
      (hash_item){.data = data, .len = len, .release = release, .owner = owner};
  h->count++;
  pthread_cond_broadcast(&h->changed);
  pthread_mutex_unlock(&h->lock);
}

void cli_hasher_wait(cli_hasher *h, uint64_t n) {
  pthread_mutex_lock(&h->lock);
  while (h->hashed < n) {
    pthread_cond_wait(&h->changed, &h->lock);
  }
  pthread_mutex_unlock(&h->lock);
}

void cli_hasher_finish(cli_hasher *h, uint8_t *digest) {
  if (!h) {
    return;
  }
  pthread_mutex_lock(&h->lock);
  h->ending = true;
  pthread_cond_broadcast(&h->changed);
  pthread_mutex_unlock(&h->lock);
  pthread_join(h->thread, NULL);
  if (digest) {
    sha256_digest(&h->ctx, CLI_SHA256_SIZE, digest);
  }
  pthread_cond_destroy(&h->changed);
  pthread_mutex_destroy(&h->lock);
  free(h);
}
