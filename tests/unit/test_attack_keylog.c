/* ctest: labels=loopback,security */
/*
 * Secrets on disk: with SSLKEYLOGFILE set, GnuTLS appends every session's
 * keys to that file. Whoever reads it decrypts a capture, so the library
 * creates it 0600 (whatever the umask) before the first handshake, and the
 * keys do land there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tu.h"

static void key_log_is_created_private(void **state) {
  (void)state;
  char dir[] = "/tmp/qp-keylog-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[64];
  snprintf(path, sizeof(path), "%s/keys.log", dir);
  assert_int_equal(setenv("SSLKEYLOGFILE", path, 1), 0);
  mode_t old = umask(022); /* would give 0644 to a plain fopen */
  tu_pair_t pair;
  tu_pair_connect(&pair, NULL, NULL);
  tu_send_ok(pair.client, "k", 1, 2000);
  tu_recv_expect(pair.server, "k", 1, 2000);
  tu_pair_destroy(&pair);
  umask(old);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  print_message("%s: mode %03o, %lld bytes\n", path, (unsigned)(st.st_mode & 0777),
                (long long)st.st_size);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_true(st.st_size > 0); /* GnuTLS wrote the keys into our file */
  unlink(path);
  rmdir(dir);
  unsetenv("SSLKEYLOGFILE");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(key_log_is_created_private),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
