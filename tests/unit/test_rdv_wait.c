/* ctest: labels=unit */
/* Polling with rdv_wait_get, and the mem backend shared by threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rdv_tu.h"
#include "tu.h"

/* Keys each thread of the sharing test writes and then waits for. */
#define SHARED_KEYS 200
#define WAIT_LIMIT_MS 10000

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void schedule_backs_off_to_the_maximum(void **state) {
  (void)state;
  static const int want[] = {10, 15, 22, 33, 49, 73, 100, 100};
  int pause = 0;
  for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
    pause = rdv_wait_next_pause_ms(pause);
    assert_int_equal(pause, want[i]);
  }
}

typedef struct publisher {
  const char *url;
  int delay_ms;
  int64_t put_at;
} publisher;

static void *publish_later(void *p) {
  publisher *pub = p;
  rdv_t *rdv;
  if (rdv_open(pub->url, "wait", &rdv) != 0)
    return NULL;
  sleep_ms(pub->delay_ms);
  pub->put_at = rdv_now_ms();
  rdv_put(rdv, "peer", "here", 4);
  rdv_close(rdv);
  return NULL;
}

static void a_late_key_is_seen_within_tens_of_ms(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open("mem:wait", "wait", &rdv), 0);
  publisher pub = {.url = "mem:wait", .delay_ms = 300};
  pthread_t thread;
  assert_int_equal(pthread_create(&thread, NULL, publish_later, &pub), 0);
  char *value;
  size_t len;
  int rc = rdv_wait_get(rdv, "peer", rdv_now_ms() + WAIT_LIMIT_MS, NULL, NULL,
                        &value, &len);
  int64_t seen_at = rdv_now_ms();
  pthread_join(thread, NULL);
  assert_int_equal(rc, 1);
  assert_string_equal(value, "here");
  free(value);
  int64_t lag = seen_at - pub.put_at;
  print_message("key seen %lld ms after it was put\n", (long long)lag);
  /* One pause at most (100 ms) plus scheduling slack. */
  assert_true(lag <= RDV_WAIT_MAX_MS + 100);
  rdv_close(rdv);
}

/* Counts gets, so the test can see how hard the store is polled. */
static int counting_get(void *user, const char *key, char **value,
                        size_t *len) {
  (void)key, (void)value, (void)len;
  ++*(int *)user;
  return 0;
}
static int ignore_put(void *user, const char *key, const void *v, size_t n) {
  (void)user, (void)key, (void)v, (void)n;
  return 0;
}
static int ignore_del(void *user, const char *key) {
  (void)user, (void)key;
  return 0;
}

static void a_missing_key_times_out_without_hammering(void **state) {
  (void)state;
  int gets = 0;
  rdv_callbacks cb = {
      .put = ignore_put, .get = counting_get, .del = ignore_del};
  rdv_t *rdv;
  assert_int_equal(rdv_open_callbacks(&cb, &gets, "wait", &rdv), 0);
  char *value;
  size_t len;
  int64_t start = rdv_now_ms();
  int rc = rdv_wait_get(rdv, "peer", start + 1000, NULL, NULL, &value, &len);
  int64_t took = rdv_now_ms() - start;
  assert_int_equal(rc, QP_ERR_TIMEOUT);
  assert_non_null(strstr(qp_last_error(), "\"peer\" did not appear"));
  print_message("timed out after %lld ms and %d gets\n", (long long)took, gets);
  assert_true(took >= 1000 && took < 1500);
  /* 7 looks in the first 200 ms, then about 10 per second: 15 or 16 on an
   * idle machine, fewer on a loaded one; never a busy loop. */
  assert_true(gets >= 8 && gets <= 20);
  rdv_close(rdv);
}

static bool cancel_after_three(void *arg) { return ++*(int *)arg > 3; }

static void a_wait_can_be_cancelled(void **state) {
  (void)state;
  rdv_t *rdv;
  assert_int_equal(rdv_open("mem:cancel", "wait", &rdv), 0);
  int calls = 0;
  char *value;
  size_t len;
  int64_t start = rdv_now_ms();
  int rc = rdv_wait_get(rdv, "peer", start + WAIT_LIMIT_MS, cancel_after_three,
                        &calls, &value, &len);
  assert_int_equal(rc, QP_ERR_INTERRUPTED);
  assert_true(rdv_now_ms() - start < 500);
  /* A deadline already past still looks once. */
  assert_int_equal(rdv_put(rdv, "peer", "x", 1), 0);
  assert_int_equal(rdv_wait_get(rdv, "peer", 0, NULL, NULL, &value, &len), 1);
  free(value);
  rdv_close(rdv);
}

typedef struct sharer {
  const char *me, *other;
  int failures;
} sharer;

/* Each thread publishes its keys, then waits for every key of the other. */
static void *share_main(void *p) {
  sharer *s = p;
  rdv_t *rdv;
  if (rdv_open("mem:shared", "threads", &rdv) != 0) {
    s->failures++;
    return NULL;
  }
  char key[32], want[32];
  for (int i = 0; i < SHARED_KEYS; i++) {
    snprintf(key, sizeof(key), "%s-%d", s->me, i);
    s->failures += rdv_put(rdv, key, key, strlen(key)) != 0;
  }
  for (int i = 0; i < SHARED_KEYS; i++) {
    snprintf(want, sizeof(want), "%s-%d", s->other, i);
    char *value;
    size_t len;
    int rc = rdv_wait_get(rdv, want, rdv_now_ms() + WAIT_LIMIT_MS, NULL, NULL,
                          &value, &len);
    s->failures += rc != 1 || strcmp(value, want) != 0;
    free(value);
  }
  rdv_close(rdv);
  return NULL;
}

static void two_threads_share_a_mem_table(void **state) {
  (void)state;
  sharer a = {.me = "a", .other = "b"}, b = {.me = "b", .other = "a"};
  pthread_t ta, tb;
  assert_int_equal(pthread_create(&ta, NULL, share_main, &a), 0);
  assert_int_equal(pthread_create(&tb, NULL, share_main, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  assert_int_equal(a.failures, 0);
  assert_int_equal(b.failures, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(schedule_backs_off_to_the_maximum),
      cmocka_unit_test(a_late_key_is_seen_within_tens_of_ms),
      cmocka_unit_test(a_missing_key_times_out_without_hammering),
      cmocka_unit_test(a_wait_can_be_cancelled),
      cmocka_unit_test(two_threads_share_a_mem_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
