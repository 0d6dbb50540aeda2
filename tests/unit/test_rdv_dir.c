/* ctest: labels=process */
/* The dir backend across threads and processes: atomic replacement of
 * large values, two processes meeting through a folder, bad files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rdv_tu.h"
#include "tu.h"

#define BIG_VALUE (1024 * 1024)
/* Rewrites of the big value; each is a 1 MiB write plus fsync. */
#define BIG_REWRITES 40
/* How long the two processes may take to meet. */
#define MEET_TIMEOUT_MS 10000

typedef rdv_tu_dir fixture;
#define setup rdv_tu_dir_setup
#define teardown rdv_tu_dir_teardown

/* A value that proves its own integrity: 4 bytes of seed, then the
 * pattern of that seed. */
static void make_value(char *buf, uint32_t seed) {
  tu_fill_pattern(buf, BIG_VALUE, seed);
  memcpy(buf, &seed, sizeof(seed));
}

static bool value_intact(const char *value, size_t len, char *scratch) {
  uint32_t seed;
  if (len != BIG_VALUE)
    return false;
  memcpy(&seed, value, sizeof(seed));
  make_value(scratch, seed);
  return memcmp(value, scratch, BIG_VALUE) == 0;
}

typedef struct writer_arg {
  const char *url;
  atomic_bool done;
  int failures;
} writer_arg;

static void *writer_main(void *p) {
  writer_arg *w = p;
  rdv_t *rdv;
  char *buf = malloc(BIG_VALUE);
  if (rdv_open(w->url, "atomic", &rdv) != 0) {
    w->failures++;
  } else {
    for (uint32_t i = 1; i <= BIG_REWRITES; i++) {
      make_value(buf, i);
      w->failures += rdv_put(rdv, "big", buf, BIG_VALUE) != 0;
    }
    rdv_close(rdv);
  }
  free(buf);
  atomic_store(&w->done, true);
  return NULL;
}

static void readers_never_see_a_partial_value(void **state) {
  fixture *f = *state;
  rdv_t *rdv;
  assert_int_equal(rdv_open(f->url, "atomic", &rdv), 0);
  char *first = malloc(BIG_VALUE);
  make_value(first, 0);
  assert_int_equal(rdv_put(rdv, "big", first, BIG_VALUE), 0);
  free(first);

  writer_arg w = {.url = f->url};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, writer_main, &w), 0);
  char *scratch = malloc(BIG_VALUE);
  int reads = 0, torn = 0;
  uint32_t seeds_seen = 0, last_seed = UINT32_MAX;
  while (!atomic_load(&w.done)) {
    char *value;
    size_t len;
    assert_int_equal(rdv_get(rdv, "big", &value, &len), 1);
    reads++;
    torn += !value_intact(value, len, scratch);
    uint32_t seed;
    memcpy(&seed, value, sizeof(seed));
    seeds_seen += seed != last_seed;
    last_seed = seed;
    free(value);
  }
  pthread_join(thread, NULL);
  free(scratch);
  print_message("%d reads saw %u different values, %d torn\n", reads,
                seeds_seen, torn);
  assert_int_equal(w.failures, 0);
  assert_int_equal(torn, 0);
  assert_true(reads > 0);
  rdv_close(rdv);

  /* No temporary file is left behind. */
  char path[128];
  snprintf(path, sizeof(path), "%s/qp/atomic", f->root);
  DIR *d = opendir(path);
  assert_non_null(d);
  int entries = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    entries += e->d_name[0] != '.' || strlen(e->d_name) > 2;
  closedir(d);
  assert_int_equal(entries, 1);
}

/* The child: wait for "ping", answer "pong" + its text. Exit code says
 * which step failed. */
static int child_main(const char *url) {
  rdv_t *rdv;
  if (rdv_open(url, "fork", &rdv) != 0)
    return 10;
  char *value, reply[64];
  size_t len;
  int rc = rdv_wait_get(rdv, "ping", rdv_now_ms() + MEET_TIMEOUT_MS, NULL, NULL,
                        &value, &len);
  if (rc != 1)
    return 11;
  int n = snprintf(reply, sizeof(reply), "pong %.*s", (int)len, value);
  free(value);
  rc = rdv_put(rdv, "pong", reply, (size_t)n);
  rdv_close(rdv);
  return rc == 0 ? 0 : 12;
}

static void two_processes_meet_through_a_folder(void **state) {
  fixture *f = *state;
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0)
    _exit(child_main(f->url));

  rdv_t *rdv;
  assert_int_equal(rdv_open(f->url, "fork", &rdv), 0);
  char ping[32];
  int n = snprintf(ping, sizeof(ping), "from %d", (int)getpid());
  assert_int_equal(rdv_put(rdv, "ping", ping, (size_t)n), 0);
  char *value;
  size_t len;
  int rc = rdv_wait_get(rdv, "pong", rdv_now_ms() + MEET_TIMEOUT_MS, NULL, NULL,
                        &value, &len);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  assert_int_equal(rc, 1);
  char want[64];
  snprintf(want, sizeof(want), "pong %s", ping);
  assert_string_equal(value, want);
  free(value);
  rdv_close(rdv);
}

static void oversized_and_odd_files_are_reported(void **state) {
  fixture *f = *state;
  rdv_t *rdv;
  assert_int_equal(rdv_open(f->url, "odd", &rdv), 0);
  assert_int_equal(rdv_put(rdv, "k", "v", 1), 0);

  char path[160];
  snprintf(path, sizeof(path), "%s/qp/odd/huge", f->root);
  FILE *file = fopen(path, "w");
  assert_non_null(file);
  assert_int_equal(fseek(file, RDV_VALUE_MAX, SEEK_SET), 0);
  fputc('x', file);
  fclose(file);
  char *value;
  size_t len;
  assert_int_equal(rdv_get(rdv, "huge", &value, &len), QP_ERR_RENDEZVOUS);
  assert_non_null(strstr(qp_last_error(), "the limit is"));
  assert_null(value);

  snprintf(path, sizeof(path), "%s/qp/odd/folder", f->root);
  assert_int_equal(mkdir(path, 0700), 0);
  assert_int_equal(rdv_get(rdv, "folder", &value, &len), QP_ERR_RENDEZVOUS);
  assert_non_null(strstr(qp_last_error(), "is not a regular file"));
  rdv_close(rdv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(readers_never_see_a_partial_value, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(two_processes_meet_through_a_folder,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(oversized_and_odd_files_are_reported,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
