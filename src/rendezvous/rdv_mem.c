/*
 * rdv_mem.c: the in-process backend, "mem:NAME".
 *
 * Process-wide state (documented, as DESIGN asks): a registry of named
 * tables, so that handles opened with the same NAME from different threads
 * share one table. The registry is a list guarded by registry_lock; each
 * table counts the handles open on it and is freed, values and all, when
 * the last one closes. Each table has its own lock for its entries, so
 * traffic on one table never waits for another. No code holds both locks:
 * a table is unlinked from the registry before it is freed, and only
 * handles that hold a reference touch its entries.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "rendezvous/rdv_backend.h"

/* Longest table name. */
#define MEM_NAME_MAX 64
/* Most tables open at once in one process, and most keys in one table:
 * a session uses a handful of keys, so these only stop runaway callers. */
#define MEM_MAX_TABLES 1024
#define MEM_MAX_KEYS 4096

typedef struct mem_entry {
  struct mem_entry *next;
  char *key;
  char *value;
  size_t len;
} mem_entry;

typedef struct mem_table {
  struct mem_table *next;
  char name[MEM_NAME_MAX + 1];
  int refs; /* handles open on it; guarded by registry_lock */
  pthread_mutex_t lock;
  mem_entry *entries; /* guarded by lock */
  size_t count;
} mem_table;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_table *registry; /* guarded by registry_lock */
static size_t registry_count;

static mem_entry **find_slot(mem_table *t, const char *key) {
  mem_entry **slot = &t->entries;
  while (*slot != NULL && strcmp((*slot)->key, key) != 0)
    slot = &(*slot)->next;
  return slot;
}

static void entry_free(mem_entry *e) {
  free(e->key);
  free(e->value);
  free(e);
}

/* Insert a new entry for key at *slot (which is the list's tail). */
static int insert_entry(mem_table *t, mem_entry **slot, const char *key,
                        char *value, size_t len) {
  if (t->count >= MEM_MAX_KEYS)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous mem:%s holds %d keys already; refusing more",
                   t->name, MEM_MAX_KEYS);
  mem_entry *e = calloc(1, sizeof(*e));
  char *key_copy = strdup(key);
  if (e == NULL || key_copy == NULL) {
    free(e);
    free(key_copy);
    return err_fail(QP_ERR_NOMEM, "out of memory storing rendezvous key %s",
                   key);
  }
  e->key = key_copy;
  e->value = value;
  e->len = len;
  *slot = e;
  t->count++;
  return 0;
}

static int mem_put(void *state, const char *key, const void *value,
                   size_t len) {
  mem_table *t = state;
  char *copy = rdv_copy_value(value, len);
  if (copy == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory storing rendezvous key %s",
                   key);
  int rc = 0;
  pthread_mutex_lock(&t->lock);
  mem_entry **slot = find_slot(t, key);
  if (*slot != NULL) {
    free((*slot)->value);
    (*slot)->value = copy;
    (*slot)->len = len;
  } else {
    rc = insert_entry(t, slot, key, copy, len);
  }
  pthread_mutex_unlock(&t->lock);
  if (rc < 0)
    free(copy);
  return rc;
}

static int mem_get(void *state, const char *key, char **value, size_t *len) {
  mem_table *t = state;
  int rc = 0;
  pthread_mutex_lock(&t->lock);
  mem_entry *e = *find_slot(t, key);
  if (e != NULL) {
    *value = rdv_copy_value(e->value, e->len);
    *len = e->len;
    rc = 1;
  }
  pthread_mutex_unlock(&t->lock);
  if (rc == 1 && *value == NULL) {
    *len = 0;
    return err_fail(QP_ERR_NOMEM, "out of memory reading rendezvous key %s",
                   key);
  }
  return rc;
}

static int mem_del(void *state, const char *key) {
  mem_table *t = state;
  pthread_mutex_lock(&t->lock);
  mem_entry **slot = find_slot(t, key);
  mem_entry *e = *slot;
  if (e != NULL) {
    *slot = e->next;
    t->count--;
  }
  pthread_mutex_unlock(&t->lock);
  if (e != NULL)
    entry_free(e);
  return 0;
}

static void table_free(mem_table *t) {
  mem_entry *e = t->entries;
  while (e != NULL) {
    mem_entry *next = e->next;
    entry_free(e);
    e = next;
  }
  pthread_mutex_destroy(&t->lock);
  free(t);
}

static void mem_close(void *state) {
  mem_table *t = state;
  if (t == NULL)
    return;
  pthread_mutex_lock(&registry_lock);
  bool last = --t->refs == 0;
  if (last) {
    mem_table **slot = &registry;
    while (*slot != t)
      slot = &(*slot)->next;
    *slot = t->next;
    registry_count--;
  }
  pthread_mutex_unlock(&registry_lock);
  if (last)
    table_free(t);
}

static const rdv_ops mem_ops = {
    .put = mem_put, .get = mem_get, .del = mem_del, .close = mem_close};

static mem_table *find_table(const char *name) {
  mem_table *t = registry;
  while (t != NULL && strcmp(t->name, name) != 0)
    t = t->next;
  return t;
}

/* Called with registry_lock held. */
static int new_table(const char *name, size_t len, mem_table **out) {
  if (registry_count >= MEM_MAX_TABLES)
    return err_fail(QP_ERR_RENDEZVOUS,
                   "rendezvous mem:%s: %d tables are open already", name,
                   MEM_MAX_TABLES);
  mem_table *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return err_fail(QP_ERR_NOMEM, "out of memory opening rendezvous mem:%s",
                   name);
  if (pthread_mutex_init(&t->lock, NULL) != 0) {
    free(t);
    return err_fail(QP_ERR_RENDEZVOUS, "rendezvous mem:%s: no mutex", name);
  }
  memcpy(t->name, name, len + 1); /* len checked by the caller */
  t->next = registry;
  registry = t;
  registry_count++;
  *out = t;
  return 0;
}

int rdv_mem_open(const char *name, void **state, const rdv_ops **ops) {
  size_t len = strnlen(name, MEM_NAME_MAX + 1);
  if (len == 0 || len > MEM_NAME_MAX)
    return err_fail(QP_ERR_INVALID,
                   "rendezvous URL \"mem:%.80s\": NAME must be 1 to %d bytes",
                   name, MEM_NAME_MAX);
  pthread_mutex_lock(&registry_lock);
  mem_table *t = find_table(name);
  int rc = 0;
  if (t == NULL)
    rc = new_table(name, len, &t);
  if (rc == 0)
    t->refs++;
  pthread_mutex_unlock(&registry_lock);
  if (rc < 0)
    return rc;
  *state = t;
  *ops = &mem_ops;
  return 0;
}
