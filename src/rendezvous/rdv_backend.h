/*
 * rdv_backend.h: what a rendezvous backend implements. Only rdv.c and the
 * backends include this; callers use rdv.h.
 *
 * rdv.c validates arguments and builds the full key ("qp/<session>/<key>",
 * components escaped to [A-Za-z0-9_.%-], never starting with '.'), so a
 * backend receives keys that are safe as file names and bounded by
 * RDV_FULL_KEY_MAX, and values of at most RDV_VALUE_MAX bytes (never NULL).
 * Each backend writes its own failure messages with err_fail().
 */
#ifndef QP_RDV_BACKEND_H
#define QP_RDV_BACKEND_H

#include <stddef.h>

#include "rendezvous/rdv.h"

/* "qp/" + escaped session + "/" + escaped key + NUL; escaping triples. */
#define RDV_FULL_KEY_MAX (3 + 3 * RDV_SESSION_MAX + 1 + 3 * RDV_KEY_MAX + 1)

typedef struct rdv_ops {
  /* 0 or negative. */
  int (*put)(void *state, const char *key, const void *value, size_t len);
  /* 1 and a malloc()ed, NUL-terminated copy; 0 when absent; negative. */
  int (*get)(void *state, const char *key, char **value, size_t *len);
  /* 0 (also when absent) or negative. */
  int (*del)(void *state, const char *key);
  /* Free the state. Accepts NULL. */
  void (*close)(void *state);
} rdv_ops;

/* Each opener parses the part of the URL after its scheme, sets *state and
 * *ops on success, and fails with a message naming the URL. */
int rdv_mem_open(const char *name, void **state, const rdv_ops **ops);
int rdv_dir_open(const char *path, void **state, const rdv_ops **ops);
int rdv_redis_open(const char *url, void **state, const rdv_ops **ops);
int rdv_cb_open(const rdv_callbacks *cb, void *user, void **state,
                const rdv_ops **ops);

/* malloc(len + 1) holding value and a NUL: the copy every get returns.
 * NULL when out of memory. */
char *rdv_copy_value(const void *value, size_t len);

#endif
