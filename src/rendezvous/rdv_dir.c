/*
 * rdv_dir.c: the folder backend, "dir:PATH".
 *
 * Key "qp/<session>/<key>" is the file PATH/qp/<session>/<key>. Processes on
 * one machine, or on machines sharing the folder, see each other's keys.
 * A write goes to a temporary file in the same folder (".<key>.XXXXXX";
 * escaped keys never start with '.', so it cannot be mistaken for a key),
 * is fsync()ed and then rename()d over the key: rename is atomic, so a
 * reader sees the old value or the new one, never a mix. Files are created
 * 0600 and folders 0700, because records carry the session's credentials.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "rendezvous/rdv_backend.h"

/* Longest PATH; with the key it must fit a path name (PATH_MAX 4096). */
#define DIR_PATH_MAX 3000
#define DIR_FILE_MAX (DIR_PATH_MAX + 1 + RDV_FULL_KEY_MAX + 16)
/* Retries of a read or write interrupted by a signal before giving up. */
#define DIR_EINTR_RETRIES 100

typedef struct dir_store {
  char root[DIR_PATH_MAX + 1];
} dir_store;

static int fail_errno(const char *what, const char *path) {
  return err_fail(QP_ERR_RENDEZVOUS, "rendezvous folder: cannot %s %s: %s", what,
                 path, strerror(errno));
}

static void file_path(const dir_store *d, const char *key, char *out) {
  snprintf(out, DIR_FILE_MAX, "%s/%s", d->root, key);
}

static int make_dir(const char *path) {
  if (mkdir(path, 0700) == 0 || errno == EEXIST)
    return 0;
  return fail_errno("create folder", path);
}

/* Create PATH/qp and PATH/qp/<session> for key "qp/<session>/<key>". */
static int make_parents(const dir_store *d, const char *key) {
  char path[DIR_FILE_MAX];
  file_path(d, key, path);
  char *first = path + strlen(d->root) + 1 + strlen("qp");
  *first = '\0';
  int rc = make_dir(path);
  if (rc < 0)
    return rc;
  *first = '/';
  *strrchr(path, '/') = '\0';
  return make_dir(path);
}

static int write_all(int fd, const char *buf, size_t len) {
  size_t done = 0;
  int interrupts = 0;
  while (done < len) {
    ssize_t n = write(fd, buf + done, len - done);
    if (n < 0 && errno == EINTR && interrupts++ < DIR_EINTR_RETRIES)
      continue;
    if (n <= 0)
      return -1;
    done += (size_t)n;
  }
  return 0;
}

/* Open a fresh temporary file beside the key's file; name it in tmp. */
static int open_temp(const dir_store *d, const char *key, char *tmp) {
  const char *base = strrchr(key, '/') + 1;
  snprintf(tmp, DIR_FILE_MAX, "%s/%.*s.%s.XXXXXX", d->root, (int)(base - key),
           key, base);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0 && errno == ENOENT) {
    /* The session's folder does not exist yet: the first put makes it. */
    int rc = make_parents(d, key);
    if (rc < 0)
      return rc;
    snprintf(tmp, DIR_FILE_MAX, "%s/%.*s.%s.XXXXXX", d->root, (int)(base - key),
             key, base);
    fd = mkostemp(tmp, O_CLOEXEC);
  }
  if (fd < 0)
    return fail_errno("create a file in", d->root);
  return fd;
}

/* Make the rename itself durable; a failure here loses nothing visible. */
static void sync_parent(const char *path) {
  char parent[DIR_FILE_MAX];
  snprintf(parent, sizeof(parent), "%s", path);
  *strrchr(parent, '/') = '\0';
  int fd = open(parent, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

static int dir_put(void *state, const char *key, const void *value,
                   size_t len) {
  dir_store *d = state;
  char tmp[DIR_FILE_MAX], path[DIR_FILE_MAX];
  int fd = open_temp(d, key, tmp);
  if (fd < 0)
    return fd;
  int rc = 0;
  if (write_all(fd, value, len) < 0 || fsync(fd) < 0)
    rc = fail_errno("write", tmp);
  if (close(fd) < 0 && rc == 0)
    rc = fail_errno("write", tmp);
  file_path(d, key, path);
  if (rc == 0 && rename(tmp, path) < 0)
    rc = fail_errno("rename a temporary file to", path);
  if (rc < 0) {
    unlink(tmp);
    return rc;
  }
  sync_parent(path);
  return 0;
}

/* Read the whole file behind fd (size bytes, as fstat said) into *value. */
static int read_file(int fd, const char *path, size_t size, char **value,
                     size_t *len) {
  char *buf = malloc(size + 1);
  if (buf == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory reading %s", path);
  size_t done = 0;
  int interrupts = 0;
  /* Reads size + 1 bytes at most, so a file that grew is noticed. */
  while (done <= size) {
    ssize_t n = read(fd, buf + done, size + 1 - done);
    if (n < 0 && errno == EINTR && interrupts++ < DIR_EINTR_RETRIES)
      continue;
    if (n < 0) {
      free(buf);
      return fail_errno("read", path);
    }
    if (n == 0)
      break;
    done += (size_t)n;
  }
  if (done != size) {
    /* Files are replaced by rename, never rewritten, so this means someone
     * else writes into the folder. */
    free(buf);
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous file %s changed size while being read", path);
  }
  buf[done] = '\0';
  *value = buf;
  *len = done;
  return 1;
}

static int dir_get(void *state, const char *key, char **value, size_t *len) {
  dir_store *d = state;
  char path[DIR_FILE_MAX];
  file_path(d, key, path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : fail_errno("open", path);
  struct stat st;
  int rc;
  if (fstat(fd, &st) < 0)
    rc = fail_errno("stat", path);
  else if (!S_ISREG(st.st_mode))
    rc = err_fail(QP_ERR_RENDEZVOUS, "rendezvous file %s is not a file", path);
  else if ((uint64_t)st.st_size > RDV_VALUE_MAX)
    rc = err_fail(QP_ERR_RENDEZVOUS,
                 "rendezvous file %s is %lld bytes; the limit is %u", path,
                 (long long)st.st_size, RDV_VALUE_MAX);
  else
    rc = read_file(fd, path, (size_t)st.st_size, value, len);
  close(fd);
  return rc;
}

static int dir_del(void *state, const char *key) {
  dir_store *d = state;
  char path[DIR_FILE_MAX];
  file_path(d, key, path);
  if (unlink(path) < 0 && errno != ENOENT)
    return fail_errno("delete", path);
  return 0;
}

static void dir_close(void *state) { free(state); }

static const rdv_ops dir_ops = {
    .put = dir_put, .get = dir_get, .del = dir_del, .close = dir_close};

int rdv_dir_open(const char *path, void **state, const rdv_ops **ops) {
  size_t len = strnlen(path, DIR_PATH_MAX + 1);
  if (len == 0 || len > DIR_PATH_MAX)
    return err_fail(QP_ERR_INVALID,
                   "rendezvous URL \"dir:%.80s\": PATH must be 1 to %d bytes",
                   path, DIR_PATH_MAX);
  int rc = make_dir(path);
  if (rc < 0)
    return rc;
  struct stat st;
  if (stat(path, &st) < 0)
    return fail_errno("open folder", path);
  if (!S_ISDIR(st.st_mode))
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous URL \"dir:%s\": %s is not a folder", path, path);
  if (access(path, W_OK | X_OK) < 0)
    return fail_errno("write into folder", path);
  dir_store *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory opening dir:%s", path);
  memcpy(d->root, path, len + 1);
  *state = d;
  *ops = &dir_ops;
  return 0;
}
