/* ctest: labels=unit,rendezvous,security */
/*
 * Attack: a hostile shared folder for a "dir:" store. Another user plants
 * a symbolic link or a FIFO where a record belongs, makes the folder
 * world-writable, or owns it. Each gives a clear error naming the folder
 * or file and why, within the deadline; nothing blocks and no file outside
 * the store is touched. A setgid folder shared by one of our groups is
 * accepted, with group-readable records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "rdv_tu.h"
#include "tu.h"
#include "test_trav_tu.h"

/* What a refusal may take: no wait at all is expected; this only bounds a
 * regression to a blocking open. */
#define QUICK_MS 500

typedef rdv_tu_dir fixture;
#define setup rdv_tu_dir_setup
#define teardown rdv_tu_dir_teardown

/* PATH/qp/<session>, made by a first put of the session. */
static void session_dir(const fixture *f, const char *session, char *out,
                        size_t size) {
  rdv_t *rdv;
  assert_int_equal(rdv_open(f->url, session, &rdv), 0);
  assert_int_equal(rdv_put(rdv, "probe", "x", 1), 0);
  assert_int_equal(rdv_delete(rdv, "probe"), 0);
  rdv_close(rdv);
  snprintf(out, size, "%s/qp/%s", f->root, session);
  struct stat st;
  assert_int_equal(stat(out, &st), 0); /* the escaping kept the name */
}

static void world_writable_folder_is_refused(void **state) {
  fixture *f = *state;
  assert_int_equal(chmod(f->root, 0777), 0);
  rdv_t *rdv;
  int64_t t0 = tu_now_ms();
  assert_int_equal(rdv_open(f->url, "s", &rdv), QP_ERR_RENDEZVOUS);
  assert_true(tu_now_ms() - t0 < QUICK_MS);
  TU_ASSERT_CONTAINS(qp_last_error(), f->root);
  TU_ASSERT_CONTAINS(qp_last_error(), "every user can write it");
  assert_int_equal(chmod(f->root, 0775), 0); /* group-writable, no setgid */
  assert_int_equal(rdv_open(f->url, "s", &rdv), QP_ERR_RENDEZVOUS);
  TU_ASSERT_CONTAINS(qp_last_error(), "not a setgid folder");
}

static void folder_of_another_user_is_refused(void **state) {
  fixture *f = *state;
  if (geteuid() != 0)
    TU_SKIP("needs root to give the folder to another user");
  assert_int_equal(chown(f->root, 65534, 65534), 0);
  rdv_t *rdv;
  assert_int_equal(rdv_open(f->url, "s", &rdv), QP_ERR_RENDEZVOUS);
  TU_ASSERT_CONTAINS(qp_last_error(), "another user owns it");
}

static void group_setgid_folder_is_shared(void **state) {
  fixture *f = *state;
  assert_int_equal(chown(f->root, geteuid(), getegid()), 0);
  assert_int_equal(chmod(f->root, 02770), 0);
  rdv_t *rdv;
  TU_QP_OK(rdv_open(f->url, "grp", &rdv));
  TU_QP_OK(rdv_put(rdv, "server", "rec", 3));
  char path[256];
  struct stat st;
  snprintf(path, sizeof(path), "%s/qp/grp/server", f->root);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0640); /* the group reads records */
  snprintf(path, sizeof(path), "%s/qp/grp", f->root);
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 02770); /* and writes its own */
  rdv_close(rdv);
}

static void symlink_record_is_refused_and_target_untouched(void **state) {
  fixture *f = *state;
  char sdir[200], link[256], target[128];
  session_dir(f, "sym", sdir, sizeof(sdir));
  snprintf(target, sizeof(target), "%s-target", f->root);
  FILE *t = fopen(target, "w");
  assert_non_null(t);
  fputs("precious", t);
  fclose(t);
  snprintf(link, sizeof(link), "%s/server", sdir);
  assert_int_equal(symlink(target, link), 0);
  rdv_t *rdv;
  TU_QP_OK(rdv_open(f->url, "sym", &rdv));
  char *value = NULL;
  size_t len;
  assert_int_equal(rdv_get(rdv, "server", &value, &len), QP_ERR_RENDEZVOUS);
  TU_ASSERT_CONTAINS(qp_last_error(), "symbolic link");
  TU_ASSERT_CONTAINS(qp_last_error(), link);
  /* A put replaces the link itself (rename), never writes through it. */
  TU_QP_OK(rdv_put(rdv, "server", "mine", 4));
  char buf[32] = "";
  t = fopen(target, "r");
  assert_non_null(t);
  assert_non_null(fgets(buf, sizeof(buf), t));
  fclose(t);
  assert_string_equal(buf, "precious");
  unlink(target);
  rdv_close(rdv);
}

static void symlinked_session_folder_is_refused(void **state) {
  fixture *f = *state;
  char sdir[200], elsewhere[128];
  session_dir(f, "moved", sdir, sizeof(sdir));
  assert_int_equal(rmdir(sdir), 0);
  snprintf(elsewhere, sizeof(elsewhere), "%s-elsewhere", f->root);
  assert_int_equal(mkdir(elsewhere, 0700), 0);
  assert_int_equal(symlink(elsewhere, sdir), 0);
  rdv_t *rdv;
  TU_QP_OK(rdv_open(f->url, "moved", &rdv));
  assert_int_equal(rdv_put(rdv, "server", "x", 1), QP_ERR_RENDEZVOUS);
  TU_ASSERT_CONTAINS(qp_last_error(), "symbolic link");
  rmdir(elsewhere);
  rdv_close(rdv);
}

/* A FIFO where the server's record belongs: the client's traversal fails
 * at once, naming it, instead of blocking in open(). */
static void fifo_record_fails_fast(void **state) {
  fixture *f = *state;
  char sdir[200], fifo[256];
  session_dir(f, "fifo", sdir, sizeof(sdir));
  snprintf(fifo, sizeof(fifo), "%s/server", sdir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  tt_side_t client;
  tt_side_init(&client, f->url, "fifo", false, 2000);
  tt_side_start(&client);
  tt_side_join(&client);
  print_message("client after %lld ms: %s\n", (long long)client.elapsed_ms,
                client.err);
  TU_RC_EQ(client.rc, QP_ERR_RENDEZVOUS, client.err);
  TU_ASSERT_CONTAINS(client.err, "a FIFO");
  assert_true(client.elapsed_ms < 2000);
  tt_side_cleanup(&client);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(world_writable_folder_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(folder_of_another_user_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(group_setgid_folder_is_shared, setup, teardown),
      cmocka_unit_test_setup_teardown(symlink_record_is_refused_and_target_untouched,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(symlinked_session_folder_is_refused, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(fifo_record_fails_fast, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
