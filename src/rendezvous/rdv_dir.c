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
 *
 * The folder is trusted only as ssh's StrictModes trusts a home folder
 * (docs/security.md): PATH, PATH/qp and PATH/qp/<session> must be owned by
 * us (or root) and writable by nobody else, or be a setgid folder shared
 * by a group we belong to (then files are created 0640 and folders 02770,
 * so the group's members meet there). Records are opened with O_NOFOLLOW |
 * O_NONBLOCK and must be regular files: a symlink or a FIFO planted there
 * is an error, never a write elsewhere or a reader that blocks.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "rendezvous/rdv_backend.h"

/* Longest PATH; with the key it must fit a path name (PATH_MAX 4096). */
#define DIR_PATH_MAX 3000
#define DIR_FILE_MAX (DIR_PATH_MAX + 1 + RDV_FULL_KEY_MAX + 16)
/* Retries of a read or write interrupted by a signal before giving up. */
#define DIR_EINTR_RETRIES 100

/* Supplementary groups checked for a shared folder's group. */
#define DIR_MAX_GROUPS 256

typedef struct dir_store {
  char root[DIR_PATH_MAX + 1];
  bool shared; /* a group's setgid folder: group-readable files */
} dir_store;

static int fail_errno(const char *what, const char *path) {
  return err_fail(QP_ERR_RENDEZVOUS, "rendezvous folder: cannot %s %s: %s", what,
                 path, strerror(errno));
}

static void file_path(const dir_store *d, const char *key, char *out) {
  snprintf(out, DIR_FILE_MAX, "%s/%s", d->root, key);
}

static bool in_group(gid_t gid) {
  if (gid == getegid())
    return true;
  gid_t groups[DIR_MAX_GROUPS];
  int n = getgroups(DIR_MAX_GROUPS, groups);
  for (int i = 0; i < n; i++)
    if (groups[i] == gid)
      return true;
  return false;
}

/* Why the folder cannot be trusted, or NULL; *shared set for a group's
 * setgid folder. */
static const char *untrusted(const struct stat *st, bool *shared) {
  *shared = false;
  if (!S_ISDIR(st->st_mode))
    return "it is not a folder (a symbolic link or a file)";
  if (st->st_mode & S_IWOTH)
    return "every user can write it (mode o+w)";
  if ((st->st_mode & S_IWGRP) && (st->st_mode & S_ISGID) && in_group(st->st_gid)) {
    *shared = true; /* a group's meeting place, as intended */
    return NULL;
  }
  if (st->st_uid != geteuid() && st->st_uid != 0)
    return "another user owns it";
  if (st->st_mode & S_IWGRP)
    return "its group can write it but it is not a setgid folder shared by "
           "a group of ours (chmod g-w, or chmod g+s for a shared folder)";
  return NULL;
}

/* Check one folder of the store; follow_link: PATH itself may be a link. */
static int check_folder(dir_store *d, const char *path, bool follow_link) {
  struct stat st;
  if ((follow_link ? stat(path, &st) : lstat(path, &st)) < 0)
    return errno == ENOENT ? 0 : fail_errno("inspect folder", path);
  bool shared;
  const char *why = untrusted(&st, &shared);
  if (why != NULL)
    return err_fail(QP_ERR_RENDEZVOUS,
                    "rendezvous folder %s is refused: %s; records there could "
                    "be read or replaced by others",
                    path, why);
  d->shared |= shared;
  return 0;
}

/* PATH/qp and PATH/qp/<session> of key "qp/<session>/<key>". */
static int check_tree(dir_store *d, const char *key) {
  char path[DIR_FILE_MAX];
  file_path(d, key, path);
  char *first = path + strlen(d->root) + 1 + strlen("qp");
  *first = '\0';
  int rc = check_folder(d, path, false);
  *first = '/';
  *strrchr(path, '/') = '\0';
  return rc < 0 ? rc : check_folder(d, path, false);
}

static int make_dir(const dir_store *d, const char *path) {
  if (mkdir(path, 0700) == 0) {
    /* A shared folder's subfolders let the group in (setgid keeps the
     * group for what they hold). */
    if (d != NULL && d->shared && chmod(path, 02770) < 0)
      return fail_errno("share folder", path);
    return 0;
  }
  if (errno == EEXIST)
    return 0;
  return fail_errno("create folder", path);
}

/* Create PATH/qp and PATH/qp/<session> for key "qp/<session>/<key>". */
static int make_parents(const dir_store *d, const char *key) {
  char path[DIR_FILE_MAX];
  file_path(d, key, path);
  char *first = path + strlen(d->root) + 1 + strlen("qp");
  *first = '\0';
  int rc = make_dir(d, path);
  if (rc < 0)
    return rc;
  *first = '/';
  *strrchr(path, '/') = '\0';
  return make_dir(d, path);
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
  if (d->shared && fchmod(fd, 0640) < 0) {
    int rc = fail_errno("share file", tmp);
    close(fd);
    unlink(tmp);
    return rc;
  }
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
  int rc0 = check_tree(d, key);
  if (rc0 < 0)
    return rc0;
  int fd = open_temp(d, key, tmp);
  if (fd < 0)
    return fd;
  int rc = 0;
  if (write_all(fd, value, len) < 0 || fsync(fd) < 0)
    rc = fail_errno("write", tmp);
  if (close(fd) < 0 && rc == 0)
    rc = fail_errno("write", tmp);
  file_path(d, key, path);
  /* The folders may have been made by this put: check them before the
   * record becomes visible. */
  if (rc == 0)
    rc = check_tree(d, key);
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
  int rc = check_tree(d, key);
  if (rc < 0)
    return rc;
  file_path(d, key, path);
  /* O_NONBLOCK: a FIFO planted there opens at once (and is refused below)
   * instead of blocking until someone writes into it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0 && errno == ELOOP)
    return err_fail(QP_ERR_RENDEZVOUS,
                    "rendezvous file %s is a symbolic link: refused (someone "
                    "else may be redirecting the store)",
                    path);
  if (fd < 0)
    return errno == ENOENT ? 0 : fail_errno("open", path);
  struct stat st;
  if (fstat(fd, &st) < 0)
    rc = fail_errno("stat", path);
  else if (!S_ISREG(st.st_mode))
    rc = err_fail(QP_ERR_RENDEZVOUS,
                  "rendezvous file %s is not a regular file (%s): refused",
                  path, S_ISFIFO(st.st_mode) ? "a FIFO" : "a folder or device");
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
  int rc = check_tree(d, key);
  if (rc < 0)
    return rc;
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
  int rc = make_dir(NULL, path);
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
  if ((rc = check_folder(d, d->root, true)) < 0) {
    free(d);
    return rc;
  }
  *state = d;
  *ops = &dir_ops;
  return 0;
}
