/*
 * rdv_tu.h: checks every rendezvous backend must pass, shared by the
 * test_rdv_*.c files. Include after cmocka.h.
 */
#ifndef QP_RDV_TU_H
#define QP_RDV_TU_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "rendezvous/rdv.h"

static inline void rdv_tu_expect(rdv_t *rdv, const char *key, const void *want,
                                 size_t want_len) {
  char *value = (char *)"sentinel";
  size_t len = 99;
  int rc = rdv_get(rdv, key, &value, &len);
  if (want == NULL) {
    assert_int_equal(rc, 0);
    assert_null(value);
    assert_int_equal(len, 0);
    return;
  }
  assert_int_equal(rc, 1);
  assert_int_equal(len, want_len);
  assert_memory_equal(value, want, want_len);
  assert_int_equal(value[len], '\0');
  free(value);
}

/* put, get, overwrite, binary and empty values, missing keys, delete,
 * deleting an absent key, keys needing escapes. */
static inline void rdv_tu_exercise(rdv_t *rdv) {
  rdv_tu_expect(rdv, "server", NULL, 0);
  assert_int_equal(rdv_put(rdv, "server", "first", 5), 0);
  rdv_tu_expect(rdv, "server", "first", 5);
  assert_int_equal(rdv_put(rdv, "server", "second value", 12), 0);
  rdv_tu_expect(rdv, "server", "second value", 12);

  const char binary[] = {0, 1, 2, '\n', (char)0xff, 0};
  assert_int_equal(rdv_put(rdv, "bin", binary, sizeof(binary)), 0);
  rdv_tu_expect(rdv, "bin", binary, sizeof(binary));
  assert_int_equal(rdv_put(rdv, "empty", NULL, 0), 0);
  rdv_tu_expect(rdv, "empty", "", 0);

  const char *odd = "../../a b/%2F/.hidden";
  assert_int_equal(rdv_put(rdv, odd, "odd", 3), 0);
  rdv_tu_expect(rdv, odd, "odd", 3);
  rdv_tu_expect(rdv, "a b", NULL, 0);

  assert_int_equal(rdv_delete(rdv, "server"), 0);
  rdv_tu_expect(rdv, "server", NULL, 0);
  assert_int_equal(rdv_delete(rdv, "server"), 0);
  assert_int_equal(rdv_delete(rdv, "never-there"), 0);
  for (const char *const *k = (const char *const[]){"bin", "empty", odd, NULL};
       *k != NULL; k++)
    assert_int_equal(rdv_delete(rdv, *k), 0);
}

/* Two handles on one store with different sessions do not see each
 * other's keys; two handles with the same session do. */
static inline void rdv_tu_sessions(const char *url) {
  rdv_t *a, *b, *a2;
  assert_int_equal(rdv_open(url, "session-a", &a), 0);
  assert_int_equal(rdv_open(url, "session-b", &b), 0);
  assert_int_equal(rdv_open(url, "session-a", &a2), 0);
  assert_int_equal(rdv_put(a, "k", "from a", 6), 0);
  rdv_tu_expect(b, "k", NULL, 0);
  rdv_tu_expect(a2, "k", "from a", 6);
  assert_int_equal(rdv_put(b, "k", "from b", 6), 0);
  rdv_tu_expect(a, "k", "from a", 6);
  assert_int_equal(rdv_delete(a, "k"), 0);
  assert_int_equal(rdv_delete(b, "k"), 0);
  rdv_close(a);
  rdv_close(b);
  rdv_close(a2);
}

/* A fresh folder under /tmp for a "dir:" store, removed with its content:
 * cmocka setup/teardown, *state is an rdv_tu_dir. */
typedef struct rdv_tu_dir {
  char root[64];
  char url[80];
} rdv_tu_dir;

static inline int rdv_tu_dir_setup(void **state) {
  rdv_tu_dir *f = calloc(1, sizeof(*f));
  if (f == NULL)
    return -1;
  snprintf(f->root, sizeof(f->root), "/tmp/qp-rdv-dir-XXXXXX");
  if (mkdtemp(f->root) == NULL) {
    free(f);
    return -1;
  }
  snprintf(f->url, sizeof(f->url), "dir:%s", f->root);
  *state = f;
  return 0;
}

static inline int rdv_tu_dir_teardown(void **state) {
  rdv_tu_dir *f = *state;
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
  int rc = system(cmd);
  free(f);
  return rc == 0 ? 0 : -1;
}

#endif
