/* ctest: labels=unit */
/* The error table: names, texts, and the thread-local message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <string.h>

#include "common/error.h"
#include "tu.h"

static void every_code_has_name_and_text(void **state) {
  (void)state;
#define CHECK_(name, code, text)                                               \
  assert_string_equal(qp_err_name(code), "QP_ERR_" #name);                     \
  assert_string_equal(qp_strerror(code), text);
  QP_ERR_MAP(CHECK_)
#undef CHECK_
  assert_string_equal(qp_err_name(0), "QP_OK");
  assert_string_equal(qp_err_name(-9999), "QP_ERR_UNKNOWN");
  assert_string_equal(qp_strerror(-9999), "unknown error");
}

static void fail_sets_message_and_returns_code(void **state) {
  (void)state;
  err_clear();
  assert_string_equal(qp_last_error(), "");
  int rc = err_fail(QP_ERR_TIMEOUT, "peer %s did not answer in %d ms",
                   "127.0.0.1:9", 1500);
  assert_int_equal(rc, QP_ERR_TIMEOUT);
  assert_string_equal(qp_last_error(),
                      "peer 127.0.0.1:9 did not answer in 1500 ms");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_code_has_name_and_text),
      cmocka_unit_test(fail_sets_message_and_returns_code),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
