/*
 * rdv_cb.c: the callback backend, a store the caller implements (the
 * Python package plugs any mapping in through it).
 *
 * The contract (quic_portal.h, qp_rendezvous_callbacks): a callback fails
 * by returning any negative number, and the call then fails with
 * QP_ERR_RENDEZVOUS and a message naming the operation, the key and that
 * number. Nothing here depends on the number's value or on any message
 * text: user code cannot describe its failures in the library's terms (the
 * Python package keeps the store's exception itself).
 */
#include <stdlib.h>

#include "common/error.h"
#include "rendezvous/rdv_backend.h"

typedef struct cb_store {
  rdv_callbacks cb;
  void *user;
} cb_store;

/* A failed callback: always QP_ERR_RENDEZVOUS, whatever it returned. */
static int callback_failed(int rc, const char *op, const char *key) {
  return err_fail(QP_ERR_RENDEZVOUS,
                  "rendezvous callback %s(\"%s\") failed with %d", op, key, rc);
}

static int cb_put(void *state, const char *key, const void *value, size_t len) {
  cb_store *s = state;
  int rc = s->cb.put(s->user, key, value, len);
  return rc < 0 ? callback_failed(rc, "put", key) : 0;
}

static int cb_get(void *state, const char *key, char **value, size_t *len) {
  cb_store *s = state;
  char *raw = NULL;
  size_t raw_len = 0;
  int rc = s->cb.get(s->user, key, &raw, &raw_len);
  if (rc < 0) {
    free(raw);
    return callback_failed(rc, "get", key);
  }
  if (rc == 0) {
    free(raw);
    return 0;
  }
  if (raw == NULL && raw_len > 0)
    return err_fail(QP_ERR_RENDEZVOUS,
                    "rendezvous callback get(\"%s\") found the key but "
                    "returned no value",
                    key);
  if (raw_len > RDV_VALUE_MAX) {
    free(raw);
    return err_fail(QP_ERR_RENDEZVOUS,
                    "rendezvous callback get(\"%s\") returned %zu bytes; the "
                    "limit is %u",
                    key, raw_len, RDV_VALUE_MAX);
  }
  /* Copy so that the value the caller gets is always NUL-terminated,
   * whatever the callback allocated. */
  *value = rdv_copy_value(raw, raw_len);
  free(raw);
  if (*value == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory reading rendezvous key %s",
                    key);
  *len = raw_len;
  return 1;
}

static int cb_del(void *state, const char *key) {
  cb_store *s = state;
  int rc = s->cb.del(s->user, key);
  return rc < 0 ? callback_failed(rc, "delete", key) : 0;
}

static void cb_close(void *state) {
  cb_store *s = state;
  if (s == NULL)
    return;
  if (s->cb.close != NULL)
    s->cb.close(s->user);
  free(s);
}

static const rdv_ops cb_ops = {
    .put = cb_put, .get = cb_get, .del = cb_del, .close = cb_close};

int rdv_cb_open(const rdv_callbacks *cb, void *user, void **state,
                const rdv_ops **ops) {
  if (cb->put == NULL || cb->get == NULL || cb->del == NULL)
    return err_fail(QP_ERR_INVALID,
                    "rendezvous callbacks: put, get and del are all required");
  cb_store *s = calloc(1, sizeof(*s));
  if (s == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory opening the rendezvous");
  s->cb = *cb;
  s->user = user;
  *state = s;
  *ops = &cb_ops;
  return 0;
}
