/* ctest: labels=external */
/* The rendezvous facade and the mem, dir and callback backends: put, get,
 * delete, overwrite, missing keys, sessions, bad URLs and arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rdv_tu.h"
#include "tu.h"

/* A fresh folder under /tmp, removed by rm_tree at the end. */
static void make_temp_dir(char *path, size_t cap) {
  snprintf(path, cap, "/tmp/qp-rdv-test-XXXXXX");
  assert_non_null(mkdtemp(path));
}

static void rm_tree(const char *path) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
  assert_int_equal(system(cmd), 0);
}

static void mem_backend_basics(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open("mem:basics", "s1", &rdv), 0);
  rdv_tu_exercise(rdv);
  rdv_close(rdv);
  rdv_tu_sessions("mem:sessions");
}

static void mem_table_lives_while_a_handle_is_open(void **state) {
  (void)state;
  rdv_t *a, *b, *c;
  assert_int_equal(rdv_open("mem:life", "s", &a), 0);
  assert_int_equal(rdv_open("mem:life", "s", &b), 0);
  assert_int_equal(rdv_put(a, "k", "v", 1), 0);
  rdv_close(a);
  rdv_tu_expect(b, "k", "v", 1);
  rdv_close(b);
  /* The last handle closed: the table and its values are gone. */
  assert_int_equal(rdv_open("mem:life", "s", &c), 0);
  rdv_tu_expect(c, "k", NULL, 0);
  rdv_close(c);
  rdv_close(NULL);
}

static void mem_tables_are_separate(void **state) {
  (void)state;
  rdv_t *a, *b;
  assert_int_equal(rdv_open("mem:one", "s", &a), 0);
  assert_int_equal(rdv_open("mem:two", "s", &b), 0);
  assert_int_equal(rdv_put(a, "k", "v", 1), 0);
  rdv_tu_expect(b, "k", NULL, 0);
  rdv_close(a);
  rdv_close(b);
}

static void dir_backend_basics(void **state) {
  (void)state;
  char root[64], url[80];
  make_temp_dir(root, sizeof(root));
  snprintf(url, sizeof(url), "dir:%s", root);
  rdv_t *rdv;
  assert_int_equal(rdv_open(url, "s1", &rdv), 0);
  rdv_tu_exercise(rdv);
  rdv_close(rdv);
  rdv_tu_sessions(url);
  rm_tree(root);
}

/* Count entries of a folder other than "." and "..". */
static int count_entries(const char *path) {
  DIR *d = opendir(path);
  assert_non_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n;
}

static void dir_keys_stay_inside_the_folder(void **state) {
  (void)state;
  char root[64], url[80], path[256];
  make_temp_dir(root, sizeof(root));
  snprintf(url, sizeof(url), "dir:%s/store", root);
  rdv_t *rdv;
  assert_int_equal(rdv_open(url, "../..", &rdv), 0);
  assert_int_equal(rdv_put(rdv, "../../../escape", "x", 1), 0);
  assert_int_equal(rdv_put(rdv, "/etc/passwd", "y", 1), 0);
  /* Only "store" in the root, one session folder, two files, no temps. */
  assert_int_equal(count_entries(root), 1);
  snprintf(path, sizeof(path), "%s/store/qp", root);
  assert_int_equal(count_entries(path), 1);
  snprintf(path, sizeof(path), "%s/store/qp/%%2E.%%2F..", root);
  assert_int_equal(count_entries(path), 2);
  snprintf(path, sizeof(path),
           "%s/store/qp/%%2E.%%2F../%%2E.%%2F..%%2F..%%2Fescape", root);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  rdv_close(rdv);
  rm_tree(root);
}

static void dir_rejects_a_file_and_a_missing_parent(void **state) {
  (void)state;
  char root[64], url[160];
  make_temp_dir(root, sizeof(root));
  snprintf(url, sizeof(url), "dir:%s/no/such/parent", root);
  rdv_t *rdv = NULL;
  assert_int_equal(rdv_open(url, "s", &rdv), QP_ERR_RENDEZVOUS);
  assert_null(rdv);
  assert_non_null(strstr(qp_last_error(), "No such file or directory"));
  assert_non_null(strstr(qp_last_error(), "/no/such/parent"));

  char file[128];
  snprintf(file, sizeof(file), "%s/file", root);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fclose(f);
  snprintf(url, sizeof(url), "dir:%s", file);
  assert_int_equal(rdv_open(url, "s", &rdv), QP_ERR_RENDEZVOUS);
  assert_non_null(strstr(qp_last_error(), "is not a folder"));
  rm_tree(root);
}

/* ---- callback backend: a small table in the test ---- */

#define CB_SLOTS 16

typedef struct cb_table {
  char *keys[CB_SLOTS];
  char *values[CB_SLOTS];
  size_t lens[CB_SLOTS];
  int fail_with; /* nonzero: every call fails with this */
  bool write_message;
  bool closed;
} cb_table;

static int cb_slot(cb_table *t, const char *key, bool create) {
  for (int i = 0; i < CB_SLOTS; i++)
    if (t->keys[i] != NULL && strcmp(t->keys[i], key) == 0)
      return i;
  for (int i = 0; create && i < CB_SLOTS; i++)
    if (t->keys[i] == NULL) {
      t->keys[i] = strdup(key);
      return i;
    }
  return -1;
}

static int cb_fail(cb_table *t) {
  if (t->write_message)
    return err_fail(t->fail_with, "the mapping said no");
  return t->fail_with;
}

static int test_put(void *user, const char *key, const void *value,
                    size_t len) {
  cb_table *t = user;
  if (t->fail_with)
    return cb_fail(t);
  int i = cb_slot(t, key, true);
  assert_true(i >= 0);
  free(t->values[i]);
  t->values[i] = malloc(len + 1);
  memcpy(t->values[i], value, len);
  t->lens[i] = len;
  return 0;
}

static int test_get(void *user, const char *key, char **value, size_t *len) {
  cb_table *t = user;
  if (t->fail_with)
    return cb_fail(t);
  int i = cb_slot(t, key, false);
  if (i < 0)
    return 0;
  /* Not NUL-terminated on purpose: the library must terminate it. */
  *value = malloc(t->lens[i] + 1);
  memcpy(*value, t->values[i], t->lens[i]);
  *len = t->lens[i];
  return 1;
}

static int test_del(void *user, const char *key) {
  cb_table *t = user;
  if (t->fail_with)
    return cb_fail(t);
  int i = cb_slot(t, key, false);
  if (i >= 0) {
    free(t->keys[i]);
    free(t->values[i]);
    t->keys[i] = t->values[i] = NULL;
  }
  return 0;
}

static void test_close(void *user) {
  cb_table *t = user;
  for (int i = 0; i < CB_SLOTS; i++) {
    free(t->keys[i]);
    free(t->values[i]);
  }
  t->closed = true;
}

static const rdv_callbacks test_callbacks = {
    .put = test_put, .get = test_get, .del = test_del, .close = test_close};

static void callback_backend_basics(void **state) {
  (void)state;
  cb_table table = {0};
  rdv_t *rdv;
  assert_int_equal(rdv_open_callbacks(&test_callbacks, &table, "s/1", &rdv), 0);
  rdv_tu_exercise(rdv);
  /* The callbacks see the full, namespaced key. */
  assert_int_equal(rdv_put(rdv, "server", "v", 1), 0);
  assert_string_equal(table.keys[0], "qp/s%2F1/server");
  rdv_close(rdv);
  assert_true(table.closed);
}

static void callback_failures_get_a_message(void **state) {
  (void)state;
  cb_table table = {.fail_with = -12345};
  rdv_t *rdv;
  assert_int_equal(rdv_open_callbacks(&test_callbacks, &table, "s", &rdv), 0);
  char *value;
  size_t len;
  /* Any negative number is QP_ERR_RENDEZVOUS with the library's message. */
  assert_int_equal(rdv_get(rdv, "k", &value, &len), QP_ERR_RENDEZVOUS);
  assert_string_equal(qp_last_error(),
                      "rendezvous callback get(\"qp/s/k\") failed with -12345");
  /* Also a number from the library's own table, and whatever message the
   * callback left: the contract decides by neither. */
  table.fail_with = QP_ERR_TIMEOUT;
  table.write_message = true;
  assert_int_equal(rdv_put(rdv, "k", "v", 1), QP_ERR_RENDEZVOUS);
  assert_string_equal(qp_last_error(),
                      "rendezvous callback put(\"qp/s/k\") failed with -3");
  table.fail_with = -1;
  assert_int_equal(rdv_delete(rdv, "k"), QP_ERR_RENDEZVOUS);
  assert_string_equal(qp_last_error(),
                      "rendezvous callback delete(\"qp/s/k\") failed with -1");
  rdv_close(rdv);

  rdv_callbacks missing = {.put = test_put, .get = test_get};
  assert_int_equal(rdv_open_callbacks(&missing, &table, "s", &rdv),
                   QP_ERR_INVALID);
  assert_non_null(strstr(qp_last_error(), "required"));
}

/* ---- arguments ---- */

static void bad_urls_name_the_url_and_the_forms(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",
      "mem",
      "memory:x",
      "http://x",
      "redis:/",
      "redis://",
      "redis://:6379",
      "redis://h:0",
      "redis://h:65536",
      "redis://h:12x",
      "redis://h:1/db",
      "redis://u:p@h",
      "redis://[::1",
      "mem:",
      "dir:",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    rdv_t *rdv = NULL;
    int rc = rdv_open(bad[i], "s", &rdv);
    if (rc != QP_ERR_INVALID)
      fail_msg("URL \"%s\" gave %d (%s)", bad[i], rc, qp_last_error());
    assert_null(rdv);
    if (strstr(qp_last_error(), bad[i]) == NULL)
      fail_msg("message for \"%s\" does not name it: %s", bad[i],
               qp_last_error());
  }
  rdv_t *rdv;
  rdv_open("ftp://x", "s", &rdv);
  assert_string_equal(qp_last_error(),
                      "rendezvous URL \"ftp://x\" is not understood; use "
                      "mem:NAME, dir:PATH or redis://HOST[:PORT][/DB]");
  assert_int_equal(rdv_open(NULL, "s", &rdv), QP_ERR_INVALID);
}

static void bad_keys_sessions_and_values(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open("mem:args", "", &rdv), QP_ERR_INVALID);
  assert_int_equal(rdv_open("mem:args", NULL, &rdv), QP_ERR_INVALID);
  char longest[RDV_KEY_MAX + 2];
  memset(longest, 'k', sizeof(longest));
  longest[RDV_KEY_MAX + 1] = '\0';
  assert_int_equal(rdv_open("mem:args", longest, &rdv), QP_ERR_INVALID);
  assert_non_null(strstr(qp_last_error(), "longer than 128 bytes"));

  assert_int_equal(rdv_open("mem:args", "s", &rdv), 0);
  assert_int_equal(rdv_put(rdv, "", "v", 1), QP_ERR_INVALID);
  assert_int_equal(rdv_put(rdv, NULL, "v", 1), QP_ERR_INVALID);
  assert_int_equal(rdv_put(rdv, longest, "v", 1), QP_ERR_INVALID);
  longest[RDV_KEY_MAX] = '\0'; /* exactly the limit: fine */
  assert_int_equal(rdv_put(rdv, longest, "v", 1), 0);
  rdv_tu_expect(rdv, longest, "v", 1);
  assert_int_equal(rdv_put(rdv, "k", "v", (size_t)RDV_VALUE_MAX + 1),
                   QP_ERR_TOO_LARGE);
  assert_int_equal(rdv_put(rdv, "k", NULL, 1), QP_ERR_INVALID);
  char *value;
  size_t len;
  assert_int_equal(rdv_get(rdv, "k", NULL, &len), QP_ERR_INVALID);
  assert_int_equal(rdv_get(rdv, "", &value, &len), QP_ERR_INVALID);
  assert_int_equal(rdv_delete(rdv, ""), QP_ERR_INVALID);
  rdv_close(rdv);
}

/* Session "x/y" with key "z" must not be session "x" with key "y/z". */
static void escaped_names_do_not_collide(void **state) {
  (void)state;
  rdv_t *a, *b;
  assert_int_equal(rdv_open("mem:collide", "x/y", &a), 0);
  assert_int_equal(rdv_open("mem:collide", "x", &b), 0);
  assert_int_equal(rdv_put(a, "z", "a", 1), 0);
  rdv_tu_expect(b, "y/z", NULL, 0);
  assert_int_equal(rdv_put(b, "y/z", "b", 1), 0);
  rdv_tu_expect(a, "z", "a", 1);
  assert_string_equal(rdv_describe(a), "mem:collide (session x%2Fy)");
  rdv_close(a);
  rdv_close(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(mem_backend_basics),
      cmocka_unit_test(mem_table_lives_while_a_handle_is_open),
      cmocka_unit_test(mem_tables_are_separate),
      cmocka_unit_test(dir_backend_basics),
      cmocka_unit_test(dir_keys_stay_inside_the_folder),
      cmocka_unit_test(dir_rejects_a_file_and_a_missing_parent),
      cmocka_unit_test(callback_backend_basics),
      cmocka_unit_test(callback_failures_get_a_message),
      cmocka_unit_test(bad_urls_name_the_url_and_the_forms),
      cmocka_unit_test(bad_keys_sessions_and_values),
      cmocka_unit_test(escaped_names_do_not_collide),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
