/*
 * rdv.h: the rendezvous store, a small key-value interface the two peers
 * share to exchange their records (see rdv_record.h).
 *
 * A handle is opened for one session; every key is stored as
 * "qp/<session>/<key>", each component escaped (docs/internals/rendezvous.md),
 * so sessions never collide and no key can name a path outside its folder.
 *
 * Backends, chosen by URL in rdv_open():
 *   mem:NAME                 threads of one process share table NAME
 *   dir:PATH                 one file per key under PATH (atomic writes)
 *   redis://HOST[:PORT][/DB] a Redis server; keys expire after an hour
 * and rdv_open_callbacks() for a store the caller implements.
 *
 * Thread safety: one handle is used by one thread at a time. Separate
 * handles, even on the same store, may be used concurrently. None of these
 * calls may run on the portal's I/O thread: they block on disk or network.
 */
#ifndef QP_RDV_H
#define QP_RDV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rdv rdv_t;

/* Longest session name and key the caller may pass, in bytes (before
 * escaping). Neither may be empty. */
#define RDV_SESSION_MAX 128
#define RDV_KEY_MAX 128
/* Longest value: records are a few KiB; the rest is headroom for callers
 * that store bigger blobs. Larger puts fail with QP_ERR_TOO_LARGE. */
#define RDV_VALUE_MAX (4u * 1024u * 1024u)
/* Longest URL rdv_open() accepts. */
#define RDV_URL_MAX 2048
/* Redis keys expire this long after their last write, so the records of an
 * abandoned session vanish by themselves. */
#define RDV_REDIS_TTL_MS (60 * 60 * 1000)

/*
 * Open the store named by url for the given session.
 * Returns 0 and sets *out, or: QP_ERR_INVALID (bad URL or session: the
 * message names it and lists the accepted forms), QP_ERR_RENDEZVOUS (the
 * store could not be reached: Redis down, folder not writable),
 * QP_ERR_NOMEM. The strings are copied.
 */
int rdv_open(const char *url, const char *session, rdv_t **out);

/*
 * The caller's own store. Keys passed to the callbacks are the full,
 * namespaced keys ("qp/<session>/<key>"), NUL-terminated.
 * - put: store len bytes (copy them); 0 or a negative error.
 * - get: 1 and a malloc()ed copy in *value (the library free()s it) with
 *   its length in *len; 0 when the key is absent; negative on error.
 * - del: remove the key; absent keys are not an error. 0 or negative.
 * - close: optional; called once by rdv_close() to release user.
 * A callback that fails may call err_fail() with its own message; otherwise
 * the library writes one naming the operation and key. Callbacks are never
 * called with a library lock held, so they may block.
 */
typedef struct rdv_callbacks {
  int (*put)(void *user, const char *key, const void *value, size_t len);
  int (*get)(void *user, const char *key, char **value, size_t *len);
  int (*del)(void *user, const char *key);
  void (*close)(void *user);
} rdv_callbacks;

/* Open a handle on caller-supplied callbacks (put, get and del required).
 * *cb is copied; user must stay valid until rdv_close(). */
int rdv_open_callbacks(const rdv_callbacks *cb, void *user, const char *session,
                       rdv_t **out);

/* Close the handle and free it. Accepts NULL. Values already stored stay
 * in the store (a mem: table lives while any handle on it is open). */
void rdv_close(rdv_t *rdv);

/* Store value under key, replacing any previous value. value may hold any
 * bytes. Errors: QP_ERR_INVALID, QP_ERR_TOO_LARGE, QP_ERR_RENDEZVOUS,
 * QP_ERR_NOMEM. */
int rdv_put(rdv_t *rdv, const char *key, const void *value, size_t len);

/*
 * Look key up. Returns 1 when found: *value is a malloc()ed copy that the
 * caller frees with free(), NUL-terminated for convenience (the NUL is not
 * counted in *len). Returns 0 when the key is absent (*value NULL, *len 0).
 * Negative on error (QP_ERR_INVALID, QP_ERR_RENDEZVOUS, QP_ERR_NOMEM).
 */
int rdv_get(rdv_t *rdv, const char *key, char **value, size_t *len);

/* Remove key. Removing an absent key succeeds. */
int rdv_delete(rdv_t *rdv, const char *key);

/* Stops rdv_wait_get() early when it returns true (e.g. Ctrl-C seen). */
typedef bool (*rdv_cancel_cb)(void *arg);

/*
 * Poll until key exists or the monotonic clock (rdv_now_ms) reaches
 * deadline_ms. The first look is immediate; then the pause between looks
 * starts at RDV_WAIT_FIRST_MS and grows by half each time up to
 * RDV_WAIT_MAX_MS (10, 15, 22, 33, 49, 73, 100, 100, ... ms), never sleeping
 * past the deadline, and a last look is made at the deadline. So a peer that
 * publishes early is seen within tens of ms, and a long wait costs about ten
 * requests a second. cancel may be NULL; it is checked before every look.
 * Returns 1 and the value as rdv_get() does, or QP_ERR_TIMEOUT,
 * QP_ERR_INTERRUPTED, or an error of rdv_get().
 */
#define RDV_WAIT_FIRST_MS 10
#define RDV_WAIT_MAX_MS 100
int rdv_wait_get(rdv_t *rdv, const char *key, int64_t deadline_ms,
                 rdv_cancel_cb cancel, void *cancel_arg, char **value,
                 size_t *len);

/* The schedule of rdv_wait_get(): the pause that follows a pause of
 * prev_ms (pass 0 to get the first pause). */
int rdv_wait_next_pause_ms(int prev_ms);

/* The clock of rdv_wait_get deadlines: clock_now_ms() of common/clock.h,
 * which traversal also reads through this function. */
int64_t rdv_now_ms(void);

/* The URL (or "callbacks") and session of the handle, for messages. */
const char *rdv_describe(const rdv_t *rdv);

#endif
