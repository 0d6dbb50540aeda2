/*
 * quic_portal._core: the CPython binding of libquicportal.
 *
 * Uses the public header only. The Python package (quic_portal/__init__.py)
 * re-exports what is defined here and adds what is pure Python (argument
 * checks of Portal.create_server / create_client, which call _create()
 * below, and the rendezvous mappings).
 *
 * Threads and the GIL
 * - Every call into a portal runs with the GIL released, so that other
 *   Python threads run meanwhile, and so that the library's log handler
 *   (log_to_python, which takes the GIL) can run on any thread. The library
 *   never calls the handler while it holds a portal's lock (lines written
 *   under a lock are queued and handed over on release), so taking the GIL
 *   there cannot deadlock against a thread that waits for that lock.
 * - Blocking calls stay interruptible. recv() and send() of small messages
 *   call the library in slices of at most SLICE_MS and run
 *   PyErr_CheckSignals() between slices; a timed-out slice loses nothing
 *   (recv keeps partial data buffered, send queues nothing). listen(),
 *   connect() and send() of large messages cannot be sliced (a timed-out
 *   listen unbinds its socket; a send copies the message on every attempt),
 *   so they run on a helper thread while the calling thread waits in slices;
 *   on a Python exception from a signal handler it calls
 *   qp_portal_interrupt() until the helper returns. qp_create_* runs the
 *   same way and is stopped through its cancel callback instead.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quic_portal.h"

#if PY_VERSION_HEX < 0x030A0000 /* Python 3.9 lacks these two */
static inline PyObject *Py_NewRef(PyObject *o) {
  Py_INCREF(o);
  return o;
}
static int PyModule_AddObjectRef(PyObject *m, const char *name, PyObject *v) {
  Py_INCREF(v);
  if (PyModule_AddObject(m, name, v) < 0) {
    Py_DECREF(v);
    return -1;
  }
  return 0;
}
#endif

/* Longest wait between two checks for Python signal handlers (Ctrl-C). */
#define SLICE_MS 50
/* Messages at least this large are sent from a helper thread, so that a
 * send blocked on the send window does not copy them once per slice. */
#define SEND_HELPER_MIN (8u * 1024u * 1024u)
/* Copies of at least this many bytes run with the GIL released. */
#define COPY_NOGIL_MIN (1u * 1024u * 1024u)
/* Size of a copied library error message. */
#define MSG_MAX 600

/* ------------------------------------------------------------------------ */
/* Module state (single-phase init: one interpreter, as the library's log    */
/* handler is process-wide anyway)                                           */
/* ------------------------------------------------------------------------ */

static PyObject *PortalError;   /* quic_portal.PortalError(RuntimeError) */
static PyObject *ConnectionErr; /* quic_portal.ConnectionError(PortalError) */
static PyObject *ArgumentErr;   /* quic_portal.ArgumentError(PortalError, ValueError) */
static PyObject *g_logger;        /* logging.getLogger("quic_portal") */
static atomic_bool g_log_to_python;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *type_name(PyObject *o) { return Py_TYPE(o)->tp_name; }

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Raise the Python exception for library error rc with message msg (the
 * copy of qp_last_error() taken on the thread that failed). Out of memory
 * is MemoryError; invalid arguments and oversized messages are
 * ArgumentError (a PortalError and a ValueError); everything else is
 * ConnectionError. Both derive from PortalError, a RuntimeError, as
 * quic-portal 0.1.x raised RuntimeError from every call into its core.
 * The exception carries .code (the qp_err number: compare it with
 * quic_portal.ErrorCode) and .error_name ("QP_ERR_TIMEOUT", for display).
 * Nothing here looks at the message text: the wording is decided by the
 * code and by whether this side closed the portal.
 */
static PyObject *exc_text(int rc, const char *msg, bool closed_here) {
  if (rc == QP_ERR_CLOSED && closed_here)
    return PyUnicode_FromFormat("Not connected: %s", msg);
  if (rc == QP_ERR_NOT_CONNECTED && msg[0] >= 'a' && msg[0] <= 'z')
    /* 0.1.x's wording starts "Not connected"; the library's sentence for
     * this code is "not connected: ...". */
    return PyUnicode_FromFormat("%c%s", msg[0] - 'a' + 'A', msg + 1);
  return PyUnicode_FromString(msg);
}

static int set_code_attrs(PyObject *exc, int rc) {
  PyObject *code = PyLong_FromLong(rc);
  PyObject *name = PyUnicode_FromString(qp_err_name(rc));
  int r = -1;
  if (code != NULL && name != NULL &&
      PyObject_SetAttrString(exc, "code", code) == 0 &&
      PyObject_SetAttrString(exc, "error_name", name) == 0)
    r = 0;
  Py_XDECREF(code);
  Py_XDECREF(name);
  return r;
}

static PyObject *raise_qp(int rc, const char *msg, bool closed_here) {
  if (rc == QP_ERR_NOMEM)
    return PyErr_NoMemory();
  if (msg == NULL || msg[0] == '\0')
    msg = qp_strerror(rc);
  PyObject *type = ConnectionErr;
  if (rc == QP_ERR_INVALID || rc == QP_ERR_TOO_LARGE)
    type = ArgumentErr;
  PyObject *text = exc_text(rc, msg, closed_here);
  if (text == NULL)
    return NULL;
  PyObject *exc = PyObject_CallOneArg(type, text);
  Py_DECREF(text);
  if (exc == NULL)
    return NULL;
  if (set_code_attrs(exc, rc) < 0) {
    Py_DECREF(exc);
    return NULL;
  }
  PyErr_SetObject(type, exc);
  Py_DECREF(exc);
  return NULL;
}

/* ------------------------------------------------------------------------ */
/* Logging: the library's lines go to logging.getLogger("quic_portal")       */
/* ------------------------------------------------------------------------ */

static int py_level_of(qp_log_level level) {
  switch (level) {
  case QP_LOG_LEVEL_DEBUG:
    return 10;
  case QP_LOG_LEVEL_INFO:
    return 20;
  case QP_LOG_LEVEL_WARN:
    return 30;
  default:
    return 40;
  }
}

static bool interpreter_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

/*
 * Called by the library from any thread: the I/O thread (no Python thread
 * state), or an application thread inside a library call (GIL released by
 * us). Both may take the GIL. Never called while the interpreter shuts down:
 * the package's atexit hook restores the library's default handler first.
 */
static void log_to_python(qp_log_level level, const char *message, void *user) {
  (void)user;
  if (!atomic_load(&g_log_to_python) || !Py_IsInitialized() ||
      interpreter_finalizing())
    return;
  PyGILState_STATE st = PyGILState_Ensure();
  PyObject *etype, *evalue, *etb;
  PyErr_Fetch(&etype, &evalue, &etb);
  if (g_logger != NULL) {
    PyObject *r = PyObject_CallMethod(g_logger, "log", "is", py_level_of(level),
                                      message);
    if (r == NULL)
      PyErr_Clear(); /* a broken logging handler must not kill the I/O thread */
    Py_XDECREF(r);
  }
  PyErr_Restore(etype, evalue, etb);
  PyGILState_Release(st);
}

/* The library filters before formatting: follow the logger's effective
 * level, unless QUIC_PORTAL_LOG says otherwise. GIL held. */
static void sync_log_level(void) {
  if (g_logger == NULL || getenv("QUIC_PORTAL_LOG") != NULL)
    return;
  PyObject *r = PyObject_CallMethod(g_logger, "getEffectiveLevel", NULL);
  if (r == NULL) {
    PyErr_Clear();
    return;
  }
  long lvl = PyLong_AsLong(r);
  Py_DECREF(r);
  if (lvl == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return;
  }
  qp_log_level q;
  if (lvl <= 10)
    q = QP_LOG_LEVEL_DEBUG;
  else if (lvl <= 20)
    q = QP_LOG_LEVEL_INFO;
  else if (lvl <= 30)
    q = QP_LOG_LEVEL_WARN;
  else if (lvl <= 40)
    q = QP_LOG_LEVEL_ERROR;
  else
    q = QP_LOG_LEVEL_NONE;
  qp_log_set_level(q);
}

static PyObject *mod_sync_log_level(PyObject *m, PyObject *noargs) {
  (void)m;
  (void)noargs;
  sync_log_level();
  Py_RETURN_NONE;
}

/* atexit: stop calling into Python; the default handler (stderr) takes over. */
static PyObject *mod_shutdown_logging(PyObject *m, PyObject *noargs) {
  (void)m;
  (void)noargs;
  atomic_store(&g_log_to_python, false);
  Py_BEGIN_ALLOW_THREADS
  qp_log_set_handler(NULL, NULL);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------ */
/* Argument helpers                                                          */
/* ------------------------------------------------------------------------ */

/* An int (not bool) in [lo, hi]; name is the parameter's name. */
static int parse_int_range(PyObject *o, const char *name, long long lo,
                           long long hi, long long *out) {
  if (PyBool_Check(o) || !PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "%s must be an int, not %s", name,
                 type_name(o));
    return -1;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (overflow != 0 || v < lo || v > hi) {
    PyErr_Format(PyExc_ValueError, "%s must be between %lld and %lld, got %R",
                 name, lo, hi, o);
    return -1;
  }
  *out = v;
  return 0;
}

static int parse_port(PyObject *o, const char *name, long long lo,
                      uint16_t *out) {
  long long v;
  if (parse_int_range(o, name, lo, 65535, &v) < 0)
    return -1;
  *out = (uint16_t)v;
  return 0;
}

/* timeout_ms: None (forever: -1) or an int >= 0. */
static int parse_timeout_ms(PyObject *o, long long *out) {
  if (o == NULL || o == Py_None) {
    *out = -1;
    return 0;
  }
  if (PyBool_Check(o) || !PyLong_Check(o)) {
    PyErr_Format(PyExc_TypeError, "timeout_ms must be an int or None, not %s",
                 type_name(o));
    return -1;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (v == -1 && PyErr_Occurred())
    return -1;
  if (overflow < 0 || (overflow == 0 && v < 0)) {
    PyErr_Format(PyExc_ValueError,
                 "timeout_ms must be >= 0 (or None to wait forever), got %R", o);
    return -1;
  }
  if (overflow > 0 || v > (long long)(INT64_MAX / 1000000))
    v = -1; /* beyond any deadline the clock can express: forever */
  *out = v;
  return 0;
}

/* ------------------------------------------------------------------------ */
/* QuicTransportOptions                                                      */
/* ------------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  PyObject *idle;       /* int or float, > 0 */
  PyObject *keep_alive;          /* int or float, >= 0 */
  PyObject *cc_name;             /* str as given */
  qp_cc cc;
  unsigned long long initial_window;
  unsigned long long max_message_size; /* 1 .. QP_MAX_MESSAGE_SIZE */
} OptionsObject;

static PyTypeObject OptionsType;

/* Check one field the way listen/connect will, with the library's own
 * qp_transport_options_check: set names the field in a struct of defaults
 * where the keep-alive rule (below the idle timeout, a rule between two
 * fields) cannot fail, so that fields may be set in any order; the pair is
 * checked when the options are used (options_to_c). */
typedef void (*field_set)(qp_transport_options *, double);

static void set_idle(qp_transport_options *o, double v) {
  o->max_idle_timeout_secs = v;
  o->keep_alive_interval_secs = 0;
}

static void set_keep_alive(qp_transport_options *o, double v) {
  o->keep_alive_interval_secs = v;
  if (v >= 0) /* an idle timeout it lies below */
    o->max_idle_timeout_secs = v + 1;
}

static int parse_seconds(PyObject *o, const char *name, field_set set, double *out) {
  if (PyBool_Check(o) || !(PyLong_Check(o) || PyFloat_Check(o))) {
    PyErr_Format(PyExc_TypeError, "%s must be an int or a float, not %s", name,
                 type_name(o));
    return -1;
  }
  double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred())
    return -1;
  qp_transport_options t;
  qp_transport_options_init(&t);
  set(&t, v);
  if (qp_transport_options_check(&t) != 0) {
    raise_qp(QP_ERR_INVALID, qp_last_error(), false);
    return -1;
  }
  *out = v;
  return 0;
}

static int opt_set_idle(OptionsObject *self, PyObject *v, void *c) {
  (void)c;
  double d;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete max_idle_timeout_secs");
    return -1;
  }
  if (parse_seconds(v, "max_idle_timeout_secs", set_idle, &d) < 0)
    return -1;
  Py_INCREF(v);
  Py_XSETREF(self->idle, v);
  return 0;
}

static int opt_set_keep_alive(OptionsObject *self, PyObject *v, void *c) {
  (void)c;
  double d;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError,
                    "cannot delete keep_alive_interval_secs");
    return -1;
  }
  if (parse_seconds(v, "keep_alive_interval_secs", set_keep_alive, &d) < 0)
    return -1;
  Py_INCREF(v);
  Py_XSETREF(self->keep_alive, v);
  return 0;
}

static int opt_set_cc(OptionsObject *self, PyObject *v, void *c) {
  (void)c;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError,
                    "cannot delete congestion_controller_type");
    return -1;
  }
  if (!PyUnicode_Check(v)) {
    PyErr_Format(PyExc_TypeError, "congestion_controller_type must be a str, not %s",
                 type_name(v));
    return -1;
  }
  const char *s = PyUnicode_AsUTF8(v);
  if (s == NULL)
    return -1;
  qp_cc cc;
  if (strlen(s) != (size_t)PyUnicode_GET_LENGTH(v) || qp_cc_from_string(s, &cc) != 0) {
    PyErr_Format(PyExc_ValueError,
                 "unknown congestion_controller_type %R: use \"cubic\", \"bbr\", "
                 "\"bbr2\", \"reno\" or \"fixed\"",
                 v);
    return -1;
  }
  Py_INCREF(v);
  Py_XSETREF(self->cc_name, v);
  self->cc = cc;
  return 0;
}

static int opt_set_window(OptionsObject *self, PyObject *v, void *c) {
  (void)c;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete initial_window");
    return -1;
  }
  long long w;
  if (parse_int_range(v, "initial_window", 1, LLONG_MAX, &w) < 0)
    return -1;
  self->initial_window = (unsigned long long)w;
  return 0;
}

static int opt_set_max_message(OptionsObject *self, PyObject *v, void *c) {
  (void)c;
  if (v == NULL) {
    PyErr_SetString(PyExc_AttributeError, "cannot delete max_message_size");
    return -1;
  }
  long long n;
  if (parse_int_range(v, "max_message_size", 1, (long long)QP_MAX_MESSAGE_SIZE,
                      &n) < 0)
    return -1;
  self->max_message_size = (unsigned long long)n;
  return 0;
}

static PyObject *opt_get_max_message(OptionsObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->max_message_size);
}

static PyObject *opt_get_idle(OptionsObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->idle);
}
static PyObject *opt_get_keep_alive(OptionsObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->keep_alive);
}
static PyObject *opt_get_cc(OptionsObject *self, void *c) {
  (void)c;
  return Py_NewRef(self->cc_name);
}
static PyObject *opt_get_window(OptionsObject *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(self->initial_window);
}

static PyGetSetDef opt_getset[] = {
    {"max_idle_timeout_secs", (getter)opt_get_idle, (setter)opt_set_idle,
     "Seconds without a packet from the peer after which the connection ends "
     "(default 10).",
     NULL},
    {"congestion_controller_type", (getter)opt_get_cc, (setter)opt_set_cc,
     "\"bbr\" (default; 0.1.x: \"cubic\"), \"cubic\", \"bbr2\", \"reno\" "
     "or \"fixed\".", NULL},
    {"initial_window", (getter)opt_get_window, (setter)opt_set_window,
     "Initial congestion window in bytes (default 1048576; see the README: "
     "the QUIC engine cannot honor it).",
     NULL},
    {"keep_alive_interval_secs", (getter)opt_get_keep_alive,
     (setter)opt_set_keep_alive,
     "Send a PING after this many idle seconds (default 2; 0 disables). Must "
     "stay below max_idle_timeout_secs.",
     NULL},
    {"max_message_size", (getter)opt_get_max_message,
     (setter)opt_set_max_message,
     "The longest message accepted from the peer, in bytes (default "
     "1073741824 = 1 GiB; not in 0.1.x). A longer one closes the connection: "
     "recv() raises ConnectionError with ErrorCode.PROTOCOL.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* A number of seconds as 0.1.x showed it: 10, not 10.0. */
static PyObject *seconds_obj(double v) {
  if (v == floor(v) && fabs(v) < 1e15)
    return PyLong_FromLongLong((long long)v);
  return PyFloat_FromDouble(v);
}

/* Defaults from the library (qp_transport_options_init). */
static PyObject *opt_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  OptionsObject *self = (OptionsObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  qp_transport_options d;
  qp_transport_options_init(&d);
  self->idle = seconds_obj(d.max_idle_timeout_secs);
  self->keep_alive = seconds_obj(d.keep_alive_interval_secs);
  self->cc_name = PyUnicode_FromString(qp_cc_to_string(d.congestion_controller));
  self->cc = d.congestion_controller;
  self->initial_window = d.initial_window;
  self->max_message_size = d.max_message_size;
  if (!self->idle || !self->keep_alive || !self->cc_name) {
    Py_DECREF(self);
    return NULL;
  }
  return (PyObject *)self;
}

static int opt_init(OptionsObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"max_idle_timeout_secs", "congestion_controller_type",
                           "initial_window", "keep_alive_interval_secs",
                           "max_message_size", NULL};
  PyObject *idle = NULL, *cc = NULL, *win = NULL, *ka = NULL, *mms = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOOOO:QuicTransportOptions", kwlist,
                                   &idle, &cc, &win, &ka, &mms))
    return -1;
  if (mms && opt_set_max_message(self, mms, NULL) < 0)
    return -1;
  if (idle && opt_set_idle(self, idle, NULL) < 0)
    return -1;
  if (cc && opt_set_cc(self, cc, NULL) < 0)
    return -1;
  if (win && opt_set_window(self, win, NULL) < 0)
    return -1;
  if (ka && opt_set_keep_alive(self, ka, NULL) < 0)
    return -1;
  return 0;
}

static void opt_dealloc(OptionsObject *self) {
  Py_XDECREF(self->idle);
  Py_XDECREF(self->keep_alive);
  Py_XDECREF(self->cc_name);
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *opt_repr(OptionsObject *self) {
  return PyUnicode_FromFormat(
      "QuicTransportOptions(max_idle_timeout_secs=%R, "
      "congestion_controller_type=%R, initial_window=%llu, "
      "keep_alive_interval_secs=%R, max_message_size=%llu)",
      self->idle, self->cc_name, self->initial_window, self->keep_alive,
      self->max_message_size);
}

static PyObject *opt_args_tuple(OptionsObject *self) {
  return Py_BuildValue("(OOKOK)", self->idle, self->cc_name, self->initial_window,
                       self->keep_alive, self->max_message_size);
}

static PyObject *opt_reduce(OptionsObject *self, PyObject *noargs) {
  (void)noargs;
  PyObject *t = opt_args_tuple(self);
  if (t == NULL)
    return NULL;
  return Py_BuildValue("(ON)", (PyObject *)Py_TYPE(self), t);
}

static PyObject *opt_richcompare(PyObject *a, PyObject *b, int op) {
  if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, &OptionsType))
    Py_RETURN_NOTIMPLEMENTED;
  PyObject *ta = opt_args_tuple((OptionsObject *)a);
  PyObject *tb = opt_args_tuple((OptionsObject *)b);
  PyObject *r = NULL;
  if (ta && tb)
    r = PyObject_RichCompare(ta, tb, op);
  Py_XDECREF(ta);
  Py_XDECREF(tb);
  return r;
}

static PyMethodDef opt_methods[] = {
    {"__reduce__", (PyCFunction)opt_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject OptionsType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "quic_portal.QuicTransportOptions",
    .tp_basicsize = sizeof(OptionsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "QuicTransportOptions(max_idle_timeout_secs=10, "
              "congestion_controller_type='bbr', initial_window=1048576, "
              "keep_alive_interval_secs=2, max_message_size=1073741824)\n--\n\n"
              "QUIC transport settings for "
              "Portal.listen/connect/create_server/create_client.",
    .tp_new = opt_new,
    .tp_init = (initproc)opt_init,
    .tp_dealloc = (destructor)opt_dealloc,
    .tp_repr = (reprfunc)opt_repr,
    .tp_richcompare = opt_richcompare,
    .tp_getset = opt_getset,
    .tp_methods = opt_methods,
};

/* None or a QuicTransportOptions -> the library's struct. */
static int options_to_c(PyObject *o, qp_transport_options *out, bool *given) {
  qp_transport_options_init(out);
  *given = false;
  if (o == NULL || o == Py_None)
    return 0;
  if (!PyObject_TypeCheck(o, &OptionsType)) {
    PyErr_Format(PyExc_TypeError,
                 "transport_options must be a QuicTransportOptions or None, not %s",
                 type_name(o));
    return -1;
  }
  OptionsObject *opt = (OptionsObject *)o;
  out->max_idle_timeout_secs = PyFloat_AsDouble(opt->idle);
  out->keep_alive_interval_secs = PyFloat_AsDouble(opt->keep_alive);
  if (PyErr_Occurred())
    return -1;
  out->congestion_controller = opt->cc;
  out->initial_window = opt->initial_window;
  out->max_message_size = opt->max_message_size;
  *given = true;
  /* The pair rule (keep-alive below the idle timeout) is checked here, by
   * the library, with the library's message. */
  if (qp_transport_options_check(out) != 0) {
    raise_qp(QP_ERR_INVALID, qp_last_error(), false);
    return -1;
  }
  return 0;
}

/* ------------------------------------------------------------------------ */
/* Blocking calls on a helper thread                                         */
/* ------------------------------------------------------------------------ */

typedef enum { CALL_LISTEN, CALL_CONNECT, CALL_SEND, CALL_CREATE } call_kind;

typedef struct create_args create_args; /* create_server / create_client */
static void create_args_free(create_args *a);
static int create_run(create_args *a, qp_portal_t **out);
static void create_cancel(create_args *a);

/*
 * One call handed to a helper thread. Heap-allocated and shared by two
 * references (caller and helper): the caller's thread may vanish while the
 * helper still runs (a daemon thread at interpreter exit), so whoever
 * finishes last frees it.
 */
typedef struct {
  atomic_int refs;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  call_kind kind;
  qp_portal_t *portal;
  char host[256];
  uint16_t port, local_port;
  qp_transport_options opts;
  const void *buf;
  size_t len;
  int timeout_ms;
  int rc;
  char msg[MSG_MAX];
  create_args *create;  /* CALL_CREATE: owned, freed with the call */
  qp_portal_t *created; /* CALL_CREATE: the connected portal on success */
} bg_call;

static void bg_unref(bg_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) {
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    if (c->create != NULL)
      create_args_free(c->create);
    if (c->created != NULL)
      qp_portal_destroy(c->created); /* nobody took it (the caller vanished) */
    free(c);
  }
}

static void *bg_main(void *arg) {
  bg_call *c = arg;
  int rc;
  switch (c->kind) {
  case CALL_LISTEN:
    rc = qp_portal_listen(c->portal, c->host, c->port, &c->opts, c->timeout_ms);
    break;
  case CALL_CONNECT:
    rc = qp_portal_connect(c->portal, c->host, c->port, c->local_port, &c->opts,
                           c->timeout_ms);
    break;
  case CALL_CREATE: {
    qp_portal_t *p = NULL;
    rc = create_run(c->create, &p);
    pthread_mutex_lock(&c->mu);
    c->created = rc == 0 ? p : NULL;
    pthread_mutex_unlock(&c->mu);
    if (rc != 0)
      qp_portal_destroy(p);
    break;
  }
  default:
    rc = qp_portal_send(c->portal, c->buf, c->len, c->timeout_ms);
    break;
  }
  pthread_mutex_lock(&c->mu);
  c->rc = rc;
  if (rc != 0)
    snprintf(c->msg, sizeof(c->msg), "%s", qp_last_error());
  c->done = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  bg_unref(c);
  return NULL;
}

static bg_call *bg_new(call_kind kind, qp_portal_t *portal) {
  bg_call *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&c->refs, 1);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cv, &ca);
  pthread_condattr_destroy(&ca);
  c->kind = kind;
  c->portal = portal;
  return c;
}

/* Wait up to ms for the helper; true once it is done. Lock not held. */
static bool bg_wait(bg_call *c, int ms) {
  uint64_t deadline = now_ns() + (uint64_t)ms * 1000000u;
  struct timespec ts = {.tv_sec = (time_t)(deadline / 1000000000u),
                        .tv_nsec = (long)(deadline % 1000000000u)};
  pthread_mutex_lock(&c->mu);
  while (!c->done) {
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
      break;
  }
  bool done = c->done;
  pthread_mutex_unlock(&c->mu);
  return done;
}

/*
 * Run c on a helper thread; GIL held on entry and exit. Returns 0 with
 * c->rc / c->msg set, or -1 with a Python exception set (a signal handler
 * raised, e.g. KeyboardInterrupt, and the call was interrupted; or the
 * thread could not start). The caller keeps its reference to c and drops
 * it with bg_unref() afterwards.
 */
static int bg_run(bg_call *c) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  atomic_fetch_add(&c->refs, 1);
  int err = pthread_create(&(pthread_t){0}, &attr, bg_main, c);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    atomic_fetch_sub(&c->refs, 1);
    errno = err;
    PyErr_SetFromErrno(PyExc_OSError);
    return -1;
  }
  for (;;) {
    bool done;
    Py_BEGIN_ALLOW_THREADS
    done = bg_wait(c, SLICE_MS);
    Py_END_ALLOW_THREADS
    if (done)
      return 0;
    if (PyErr_CheckSignals() < 0)
      break;
  }
  /* A signal handler raised: make the call give up, then report that. An
   * interrupt only reaches calls already blocked, so repeat it until the
   * helper returns. */
  Py_BEGIN_ALLOW_THREADS
  if (c->kind == CALL_CREATE) {
    /* qp_create_* polls its cancel callback at least every 50 ms (and the
     * store's callbacks, which need the GIL, can run meanwhile). */
    create_cancel(c->create);
    while (!bg_wait(c, 10))
      ;
  } else {
    do {
      qp_portal_interrupt(c->portal);
    } while (!bg_wait(c, 10));
  }
  Py_END_ALLOW_THREADS
  return -1;
}

/* ------------------------------------------------------------------------ */
/* Portal                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  qp_portal_t *portal;
  pid_t owner_pid; /* a forked child must not join the parent's threads */
  atomic_bool closed;
  PyObject *server_ip;
  PyObject *server_port;
  PyObject *weakrefs;
} PortalObject;

static PyObject *portal_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  PortalObject *self = (PortalObject *)type->tp_alloc(type, 0);
  if (self == NULL)
    return NULL;
  self->server_ip = Py_NewRef(Py_None);
  self->server_port = Py_NewRef(Py_None);
  self->owner_pid = getpid();
  atomic_init(&self->closed, false);
  int rc;
  char msg[MSG_MAX] = "";
  qp_portal_t *p = NULL;
  Py_BEGIN_ALLOW_THREADS
  rc = qp_portal_create(&p);
  if (rc != 0)
    snprintf(msg, sizeof(msg), "%s", qp_last_error());
  Py_END_ALLOW_THREADS
  if (rc != 0) {
    Py_DECREF(self);
    return raise_qp(rc, msg, false);
  }
  self->portal = p;
  return (PyObject *)self;
}

static int portal_init(PyObject *self, PyObject *args, PyObject *kw) {
  (void)self;
  if (PyTuple_GET_SIZE(args) != 0 || (kw != NULL && PyDict_GET_SIZE(kw) != 0)) {
    PyErr_SetString(PyExc_TypeError, "Portal() takes no arguments");
    return -1;
  }
  return 0;
}

static int portal_traverse(PortalObject *self, visitproc visit, void *arg) {
  Py_VISIT(self->server_ip);
  Py_VISIT(self->server_port);
  return 0;
}

static int portal_clear(PortalObject *self) {
  Py_CLEAR(self->server_ip);
  Py_CLEAR(self->server_port);
  return 0;
}

static void portal_dealloc(PortalObject *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->weakrefs != NULL)
    PyObject_ClearWeakRefs((PyObject *)self);
  portal_clear(self);
  qp_portal_t *p = self->portal;
  self->portal = NULL;
  if (p != NULL && self->owner_pid == getpid()) {
    /* Closes with the default linger; the I/O thread may need the GIL to
     * log meanwhile. */
    Py_BEGIN_ALLOW_THREADS
    qp_portal_destroy(p);
    Py_END_ALLOW_THREADS
  }
  /* In a forked child the parent's I/O thread does not exist: leak it.
   * A heap subclass's type reference is dropped by subtype_dealloc. */
  tp->tp_free((PyObject *)self);
}

static qp_portal_t *portal_of(PortalObject *self) {
  if (self->portal == NULL) {
    PyErr_SetString(PortalError, "Portal object is not initialized");
    return NULL;
  }
  return self->portal;
}

/* Blocking setup calls (listen/connect) on the helper thread. */
static PyObject *portal_finish_setup(PortalObject *self, bg_call *c) {
  sync_log_level();
  if (bg_run(c) < 0) {
    bg_unref(c);
    return NULL;
  }
  int rc = c->rc;
  char msg[MSG_MAX];
  memcpy(msg, c->msg, sizeof(msg));
  bg_unref(c);
  if (rc != 0)
    return raise_qp(rc, msg, atomic_load(&self->closed));
  Py_RETURN_NONE;
}

/* pin= of listen/connect: None (no pin, as 0.1.x) or the peer's
 * fingerprint as Portal.fingerprint() gives it. Before the call starts. */
static int apply_pin(qp_portal_t *p, PyObject *pin_o) {
  if (pin_o == Py_None)
    return 0;
  if (!PyUnicode_Check(pin_o)) {
    PyErr_Format(PyExc_TypeError, "pin must be a str (the peer's fingerprint) "
                 "or None, not %s", type_name(pin_o));
    return -1;
  }
  const char *fp = PyUnicode_AsUTF8(pin_o);
  if (fp == NULL)
    return -1;
  int rc = qp_portal_pin_peer(p, fp);
  if (rc == QP_ERR_INVALID) {
    PyErr_Format(PyExc_ValueError, "pin: %s", qp_last_error());
    return -1;
  }
  if (rc != 0) {
    raise_qp(rc, qp_last_error(), false);
    return -1;
  }
  return 0;
}

static PyObject *portal_listen(PortalObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"local_port", "transport_options", "pin", NULL};
  PyObject *port_o = Py_None, *opts_o = Py_None, *pin_o = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:listen", kwlist, &port_o,
                                   &opts_o, &pin_o))
    return NULL;
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;
  if (port_o == Py_None) {
    PyErr_SetString(PyExc_ValueError, "local_port is required for listen()");
    return NULL;
  }
  uint16_t port;
  if (parse_port(port_o, "local_port", 0, &port) < 0)
    return NULL;
  qp_transport_options opts;
  bool given;
  if (options_to_c(opts_o, &opts, &given) < 0 || apply_pin(p, pin_o) < 0)
    return NULL;
  bg_call *c = bg_new(CALL_LISTEN, p);
  if (c == NULL)
    return NULL;
  snprintf(c->host, sizeof(c->host), "0.0.0.0");
  c->port = port;
  c->opts = opts;
  c->timeout_ms = -1; /* as 0.1.x: wait for a client however long it takes */
  PyObject *r = portal_finish_setup(self, c);
  if (r != NULL) {
    Py_XSETREF(self->server_ip, Py_NewRef(Py_None));
    Py_XSETREF(self->server_port, Py_NewRef(Py_None));
  }
  return r;
}

static PyObject *portal_connect(PortalObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"server_ip", "server_port", "local_port",
                           "transport_options", "pin", NULL};
  PyObject *ip_o, *sport_o, *lport_o = Py_None, *opts_o = Py_None,
           *pin_o = Py_None;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOO:connect", kwlist, &ip_o,
                                   &sport_o, &lport_o, &opts_o, &pin_o))
    return NULL;
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;
  if (!PyUnicode_Check(ip_o)) {
    PyErr_Format(PyExc_TypeError, "server_ip must be a str, not %s",
                 type_name(ip_o));
    return NULL;
  }
  Py_ssize_t iplen;
  const char *ip = PyUnicode_AsUTF8AndSize(ip_o, &iplen);
  if (ip == NULL)
    return NULL;
  if (iplen == 0 || (size_t)iplen >= 256 || strlen(ip) != (size_t)iplen) {
    PyErr_Format(PyExc_ValueError,
                 "server_ip must be an IP address or host name, got %R", ip_o);
    return NULL;
  }
  uint16_t sport, lport;
  if (parse_port(sport_o, "server_port", 1, &sport) < 0)
    return NULL;
  if (lport_o == Py_None) {
    PyErr_SetString(PyExc_ValueError, "local_port is required for connect()");
    return NULL;
  }
  if (parse_port(lport_o, "local_port", 0, &lport) < 0)
    return NULL;
  qp_transport_options opts;
  bool given;
  if (options_to_c(opts_o, &opts, &given) < 0 || apply_pin(p, pin_o) < 0)
    return NULL;
  bg_call *c = bg_new(CALL_CONNECT, p);
  if (c == NULL)
    return NULL;
  memcpy(c->host, ip, (size_t)iplen + 1);
  c->port = sport;
  c->local_port = lport;
  c->opts = opts;
  /* As 0.1.x (quinn): a handshake nobody answers fails after the idle
   * timeout. */
  double t = opts.max_idle_timeout_secs * 1000.0;
  c->timeout_ms = t >= (double)INT_MAX ? INT_MAX : (int)ceil(t);
  PyObject *r = portal_finish_setup(self, c);
  if (r != NULL) {
    Py_XSETREF(self->server_ip, Py_NewRef(ip_o));
    Py_XSETREF(self->server_port, PyLong_FromLong(sport));
    if (self->server_port == NULL) {
      Py_DECREF(r);
      return NULL;
    }
  }
  return r;
}

static PyObject *portal_send(PortalObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
  if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
    /* Only "data" may be a keyword. */
    if (nargs != 0 || PyTuple_GET_SIZE(kwnames) != 1 ||
        !PyUnicode_Check(PyTuple_GET_ITEM(kwnames, 0)) ||
        PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "data") !=
            0) {
      PyErr_SetString(PyExc_TypeError, "send() takes exactly one argument (data)");
      return NULL;
    }
  } else if (nargs != 1) {
    PyErr_Format(PyExc_TypeError,
                 "send() takes exactly one argument (data) (%zd given)", nargs);
    return NULL;
  }
  PyObject *data = args[0];
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;
  Py_buffer view = {0};
  const void *buf;
  size_t len;
  if (PyUnicode_Check(data)) {
    Py_ssize_t n;
    buf = PyUnicode_AsUTF8AndSize(data, &n);
    if (buf == NULL)
      return NULL;
    len = (size_t)n;
  } else if (PyObject_CheckBuffer(data)) {
    if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) < 0) {
      PyErr_Clear();
      PyErr_Format(PyExc_TypeError,
                   "data must be a C-contiguous bytes-like object or a str; "
                   "this %s is not contiguous (copy it with bytes())",
                   type_name(data));
      return NULL;
    }
    buf = view.buf;
    len = (size_t)view.len;
  } else {
    PyErr_Format(PyExc_TypeError,
                 "data must be bytes, bytearray, memoryview or str, not %s",
                 type_name(data));
    return NULL;
  }

  int rc;
  char msg[MSG_MAX] = "";
  if (len >= SEND_HELPER_MIN) {
    bg_call *c = bg_new(CALL_SEND, p);
    if (c == NULL) {
      PyBuffer_Release(&view);
      return NULL;
    }
    c->buf = buf;
    c->len = len;
    c->timeout_ms = -1;
    if (bg_run(c) < 0) {
      bg_unref(c);
      PyBuffer_Release(&view);
      return NULL;
    }
    rc = c->rc;
    memcpy(msg, c->msg, sizeof(msg));
    bg_unref(c);
  } else {
    for (;;) {
      Py_BEGIN_ALLOW_THREADS
      rc = qp_portal_send(p, buf, len, SLICE_MS);
      if (rc != 0)
        snprintf(msg, sizeof(msg), "%s", qp_last_error());
      Py_END_ALLOW_THREADS
      /* Timed out or interrupted by someone else's qp_portal_interrupt:
       * nothing was queued, so trying again is safe. */
      if (rc != QP_ERR_TIMEOUT && rc != QP_ERR_INTERRUPTED)
        break;
      if (PyErr_CheckSignals() < 0) {
        PyBuffer_Release(&view);
        return NULL;
      }
    }
  }
  PyBuffer_Release(&view);
  if (rc != 0)
    return raise_qp(rc, msg, atomic_load(&self->closed));
  Py_RETURN_NONE;
}

/* bytes from a library message; frees it. */
static PyObject *take_message(void *data, size_t len) {
  if (len > (size_t)PY_SSIZE_T_MAX) {
    qp_free(data);
    return PyErr_NoMemory();
  }
  PyObject *b;
  if (len < COPY_NOGIL_MIN) {
    b = PyBytes_FromStringAndSize(data, (Py_ssize_t)len);
  } else {
    b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (b != NULL) {
      char *dst = PyBytes_AS_STRING(b);
      Py_BEGIN_ALLOW_THREADS
      memcpy(dst, data, len);
      Py_END_ALLOW_THREADS
    }
  }
  qp_free(data);
  return b;
}

static PyObject *portal_recv(PortalObject *self, PyObject *const *args,
                             Py_ssize_t nargs, PyObject *kwnames) {
  PyObject *timeout_o = Py_None;
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  if (nargs + nkw > 1) {
    PyErr_SetString(PyExc_TypeError, "recv() takes at most one argument (timeout_ms)");
    return NULL;
  }
  if (nkw == 1) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, 0);
    if (!PyUnicode_Check(k) || PyUnicode_CompareWithASCIIString(k, "timeout_ms") != 0) {
      PyErr_Format(PyExc_TypeError, "recv() got an unexpected keyword argument %R", k);
      return NULL;
    }
    timeout_o = args[0];
  } else if (nargs == 1) {
    timeout_o = args[0];
  }
  long long timeout_ms;
  if (parse_timeout_ms(timeout_o, &timeout_ms) < 0)
    return NULL;
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;

  uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                     : now_ns() + (uint64_t)timeout_ms * 1000000u;
  for (;;) {
    int slice = SLICE_MS;
    if (deadline != UINT64_MAX) {
      uint64_t now = now_ns();
      uint64_t left_ms = deadline > now ? (deadline - now + 999999u) / 1000000u : 0;
      if (left_ms < (uint64_t)slice)
        slice = (int)left_ms;
    }
    void *data = NULL;
    size_t len = 0;
    int rc;
    char msg[MSG_MAX] = "";
    Py_BEGIN_ALLOW_THREADS
    rc = qp_portal_recv(p, &data, &len, slice);
    if (rc != 0)
      snprintf(msg, sizeof(msg), "%s", qp_last_error());
    Py_END_ALLOW_THREADS
    if (rc == 0)
      return take_message(data, len);
    if (rc != QP_ERR_TIMEOUT && rc != QP_ERR_INTERRUPTED)
      return raise_qp(rc, msg, atomic_load(&self->closed));
    if (deadline != UINT64_MAX && now_ns() >= deadline)
      Py_RETURN_NONE;
    if (PyErr_CheckSignals() < 0)
      return NULL;
  }
}

static PyObject *portal_is_connected(PortalObject *self, PyObject *noargs) {
  (void)noargs;
  if (self->portal == NULL)
    Py_RETURN_FALSE;
  bool up;
  Py_BEGIN_ALLOW_THREADS
  up = qp_portal_is_connected(self->portal);
  Py_END_ALLOW_THREADS
  return PyBool_FromLong(up);
}

static PyObject *portal_close(PortalObject *self, PyObject *noargs) {
  (void)noargs;
  if (self->portal == NULL)
    Py_RETURN_NONE;
  atomic_store(&self->closed, true);
  /* Waits (default linger, 5 s at most) until the peer acknowledged what
   * was sent; the result (a linger that expired) is not an error in 0.1.x. */
  Py_BEGIN_ALLOW_THREADS
  qp_portal_close(self->portal, -1);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static PyObject *portal_stats(PortalObject *self, PyObject *noargs) {
  (void)noargs;
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;
  qp_portal_stats s;
  int rc;
  char msg[MSG_MAX] = "";
  Py_BEGIN_ALLOW_THREADS
  rc = qp_portal_get_stats(p, &s);
  if (rc != 0)
    snprintf(msg, sizeof(msg), "%s", qp_last_error());
  Py_END_ALLOW_THREADS
  if (rc != 0)
    return raise_qp(rc, msg, false);
  return Py_BuildValue("{sKsKsKsKsKsKsKsK}", "packets_sent", s.packets_sent,
                       "packets_received", s.packets_received, "packets_lost",
                       s.packets_lost, "bytes_in_flight", s.bytes_in_flight,
                       "cwnd", s.cwnd, "smoothed_rtt_us", s.smoothed_rtt_us,
                       "handshake_us", s.handshake_us, "recoveries",
                       s.recoveries);
}

static PyObject *portal_local_port(PortalObject *self, PyObject *noargs) {
  (void)noargs;
  if (self->portal == NULL)
    return PyLong_FromLong(0);
  uint16_t port;
  Py_BEGIN_ALLOW_THREADS
  port = qp_portal_local_port(self->portal);
  Py_END_ALLOW_THREADS
  return PyLong_FromLong(port);
}

static PyObject *portal_fingerprint(PortalObject *self, PyObject *noargs) {
  (void)noargs;
  qp_portal_t *p = portal_of(self);
  if (p == NULL)
    return NULL;
  char fp[QP_FINGERPRINT_SIZE];
  if (qp_portal_fingerprint(p, fp, sizeof(fp)) != 0)
    return raise_qp(QP_ERR_INVALID, qp_last_error(), false);
  return PyUnicode_FromString(fp);
}

/* Portal.path: the library's description of the path in use, or None
 * (listen/connect, or not connected). */
static PyObject *portal_get_path(PortalObject *self, void *c) {
  (void)c;
  if (self->portal == NULL)
    Py_RETURN_NONE;
  char desc[QP_PATH_DESC_SIZE] = "";
  int kind;
  Py_BEGIN_ALLOW_THREADS
  kind = qp_portal_path(self->portal, desc, sizeof(desc), NULL);
  Py_END_ALLOW_THREADS
  if (kind <= QP_PATH_NONE || desc[0] == '\0')
    Py_RETURN_NONE;
  return PyUnicode_FromString(desc);
}

static PyGetSetDef portal_getset[] = {
    {"path", (getter)portal_get_path, NULL,
     "The path in use, as the library describes it (e.g. \"direct (host, IPv4) "
     "to 192.0.2.7:4242\" or \"relayed via our TURN server ...\"); None for a "
     "portal made by listen/connect or not connected (not in 0.1.x). It "
     "changes when the connection recovers onto a new path.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef portal_methods[] = {
    {"listen", (PyCFunction)(void (*)(void))portal_listen,
     METH_VARARGS | METH_KEYWORDS,
     "listen($self, /, local_port=None, transport_options=None, pin=None)\n--\n\n"
     "Bind 0.0.0.0:local_port and block until one client has connected. "
     "pin (not in 0.1.x): the client's fingerprint; then only that client is "
     "accepted (others are refused and listen keeps waiting)."},
    {"connect", (PyCFunction)(void (*)(void))portal_connect,
     METH_VARARGS | METH_KEYWORDS,
     "connect($self, /, server_ip, server_port, local_port=None, "
     "transport_options=None, pin=None)\n--\n\nConnect from local_port to server_ip:server_port and block "
     "until the QUIC handshake completes (at most max_idle_timeout_secs). "
     "pin (not in 0.1.x): the server's fingerprint; another certificate "
     "fails with ErrorCode.PEER_VERIFY."},
    {"send", (PyCFunction)(void (*)(void))portal_send,
     METH_FASTCALL | METH_KEYWORDS,
     "send($self, /, data)\n--\n\nSend one whole message: bytes-like, or str "
     "(sent as UTF-8)."},
    {"recv", (PyCFunction)(void (*)(void))portal_recv,
     METH_FASTCALL | METH_KEYWORDS,
     "recv($self, /, timeout_ms=None)\n--\n\nWait for the next whole "
     "message; None when timeout_ms passes first (nothing is lost). "
     "timeout_ms None waits forever."},
    {"is_connected", (PyCFunction)portal_is_connected, METH_NOARGS,
     "is_connected($self, /)\n--\n\nTrue while the connection is up."},
    {"close", (PyCFunction)portal_close, METH_NOARGS,
     "close($self, /)\n--\n\nClose the connection (waits up to 5 s for the peer "
     "to acknowledge what was sent). Safe to call repeatedly."},
    {"stats", (PyCFunction)portal_stats, METH_NOARGS,
     "stats($self, /)\n--\n\nConnection statistics (not in 0.1.x)."},
    {"local_port", (PyCFunction)portal_local_port, METH_NOARGS,
     "local_port($self, /)\n--\n\nThe bound UDP port, 0 before listen/connect "
     "(not in 0.1.x)."},
    {"fingerprint", (PyCFunction)portal_fingerprint, METH_NOARGS,
     "fingerprint($self, /)\n--\n\nSHA-256 of this portal's certificate, 64 hex "
     "digits (not in 0.1.x)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef portal_members[] = {
    {"server_ip", T_OBJECT, offsetof(PortalObject, server_ip), READONLY,
     "The server's address: as given to connect(), or the one traversal "
     "reached for create_client(); None before, and on a server."},
    {"server_port", T_OBJECT, offsetof(PortalObject, server_port), READONLY,
     "The server's port (see server_ip); None before, and on a server."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject PortalType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "quic_portal._core.Portal",
    .tp_basicsize = sizeof(PortalObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Portal()\n--\n\nOne QUIC connection carrying whole messages.",
    .tp_new = portal_new,
    .tp_init = portal_init,
    .tp_dealloc = (destructor)portal_dealloc,
    .tp_traverse = (traverseproc)portal_traverse,
    .tp_clear = (inquiry)portal_clear,
    .tp_weaklistoffset = offsetof(PortalObject, weakrefs),
    .tp_methods = portal_methods,
    .tp_members = portal_members,
    .tp_getset = portal_getset,
};

/* ------------------------------------------------------------------------ */
/* create_server / create_client: rendezvous + NAT traversal                */
/* ------------------------------------------------------------------------ */

/*
 * qp_create_* runs on a helper thread (bg_run) so that the calling thread
 * can run Python's signal handlers; on KeyboardInterrupt it sets `cancelled`,
 * which the library polls through create_cancelled() at least every 50 ms.
 *
 * The store is any Python object with put(key: str, value: bytes),
 * get(key) -> bytes | str | None and delete(key) (quic_portal._mapping's
 * MappingStore over the user's mapping). The library calls the three C
 * callbacks below from the helper thread, never with a lock held; each takes
 * the GIL. An exception in the store becomes QP_ERR_RENDEZVOUS for the
 * library, and the first one is kept to be named in the ConnectionError
 * (and chained as its __cause__).
 *
 * Everything the helper reads lives in this heap block, which the helper
 * thread may outlive the caller with (a daemon thread at interpreter exit).
 * The store itself is borrowed: the caller holds a reference and waits for
 * the helper to return, whatever happens.
 */

/* At most this many STUN servers. */
#define MAX_STUN_SERVERS 16

struct create_args {
  bool is_server;
  qp_traverse_options o;
  qp_transport_options transport;
  qp_rendezvous_callbacks cb;
  char *rendezvous; /* NULL: the store's callbacks */
  char *session;
  char *stun[MAX_STUN_SERVERS];
  size_t stun_count;
  char *secret; /* NULL: none; wiped before it is freed */
  char *local_ip; /* NULL: every address */
  char *turn[QP_MAX_TURN_SERVERS];
  size_t turn_count;
  char *turn_secret[QP_MAX_TURN_SERVERS];
  size_t turn_secret_count;
  PyObject *store; /* borrowed (see above); NULL with a rendezvous URL */
  atomic_bool cancelled;
  /* The first exception the store raised (a strong reference taken and
   * dropped with the GIL) and where. */
  PyObject *exc;
  char exc_where[200];
};

/* Secrets and TURN passwords do not outlive the call in freed memory. */
static void wipe_free(char *p) {
  if (p == NULL)
    return;
  volatile char *v = p;
  for (size_t i = 0; p[i] != '\0'; i++)
    v[i] = 0;
  free(p);
}

static void create_args_free(create_args *a) {
  free(a->rendezvous);
  free(a->session);
  for (size_t i = 0; i < a->stun_count; i++)
    free(a->stun[i]);
  wipe_free(a->secret);
  free(a->local_ip);
  for (size_t i = 0; i < a->turn_count; i++)
    wipe_free(a->turn[i]);
  for (size_t i = 0; i < a->turn_secret_count; i++)
    wipe_free(a->turn_secret[i]);
  /* a->exc is taken by the caller; if the caller vanished, it is leaked
   * rather than released without the GIL. */
  free(a);
}

static bool create_cancelled(void *user) {
  create_args *a = user;
  return atomic_load(&a->cancelled);
}

static void create_cancel(create_args *a) { atomic_store(&a->cancelled, true); }

static bool python_usable(void);

/* On the helper thread. With a Python store, the thread gets one Python
 * thread state for the whole call (released while in the library), so that
 * every callback into the store runs as the same Python thread
 * (threading.local, logging's thread name) instead of a fresh one each. */
static int create_run(create_args *a, qp_portal_t **out) {
  PyGILState_STATE st = PyGILState_UNLOCKED;
  PyThreadState *ts = NULL;
  if (a->store != NULL && python_usable()) {
    st = PyGILState_Ensure();
    ts = PyEval_SaveThread();
  }
  int rc = a->is_server ? qp_create_server(&a->o, out) : qp_create_client(&a->o, out);
  if (ts != NULL) { /* no library call here: qp_last_error() stays */
    PyEval_RestoreThread(ts);
    PyGILState_Release(st);
  }
  return rc;
}

/* Keep the first exception the store raised (GIL held, exception set). */
static void store_failed(create_args *a, const char *op, const char *key) {
  PyObject *etype, *evalue, *etb;
  PyErr_Fetch(&etype, &evalue, &etb);
  PyErr_NormalizeException(&etype, &evalue, &etb);
  if (a->exc == NULL && evalue != NULL) {
    if (etb != NULL)
      PyException_SetTraceback(evalue, etb);
    a->exc = Py_NewRef(evalue);
    snprintf(a->exc_where, sizeof(a->exc_where), "%s(\"%.150s\")", op, key);
  }
  Py_XDECREF(etype);
  Py_XDECREF(evalue);
  Py_XDECREF(etb);
}

/* The store's method `name`, called with a key and maybe a value. Returns a
 * new reference, or NULL with the exception recorded. GIL held. */
static PyObject *store_call(create_args *a, const char *name, const char *key,
                            const void *value, size_t len) {
  PyObject *r;
  if (value != NULL)
    r = PyObject_CallMethod(a->store, name, "sy#", key, (const char *)value,
                            (Py_ssize_t)len);
  else
    r = PyObject_CallMethod(a->store, name, "s", key);
  if (r == NULL)
    store_failed(a, name, key);
  return r;
}

static bool python_usable(void) {
  return Py_IsInitialized() && !interpreter_finalizing();
}

static int cb_put(void *user, const char *key, const void *value, size_t len) {
  create_args *a = user;
  if (!python_usable())
    return QP_ERR_RENDEZVOUS;
  PyGILState_STATE st = PyGILState_Ensure();
  PyObject *r = store_call(a, "put", key, value == NULL ? "" : value, len);
  int rc = r == NULL ? QP_ERR_RENDEZVOUS : 0;
  Py_XDECREF(r);
  PyGILState_Release(st);
  return rc;
}

static int cb_get(void *user, const char *key, char **value, size_t *len) {
  create_args *a = user;
  if (!python_usable())
    return QP_ERR_RENDEZVOUS;
  PyGILState_STATE st = PyGILState_Ensure();
  int rc = QP_ERR_RENDEZVOUS;
  PyObject *r = store_call(a, "get", key, NULL, 0);
  if (r == Py_None) {
    rc = 0;
  } else if (r != NULL) {
    const char *data = NULL;
    Py_ssize_t n = 0;
    if (PyBytes_Check(r)) {
      data = PyBytes_AS_STRING(r);
      n = PyBytes_GET_SIZE(r);
    } else if (PyByteArray_Check(r)) {
      data = PyByteArray_AS_STRING(r);
      n = PyByteArray_GET_SIZE(r);
    } else if (PyUnicode_Check(r)) {
      data = PyUnicode_AsUTF8AndSize(r, &n);
    } else {
      PyErr_Format(PyExc_TypeError,
                   "the store's get() must return bytes, str or None, not %s",
                   type_name(r));
    }
    if (data != NULL) {
      char *copy = malloc((size_t)n + 1);
      if (copy == NULL) {
        PyErr_NoMemory();
      } else {
        memcpy(copy, data, (size_t)n);
        copy[n] = '\0';
        *value = copy;
        *len = (size_t)n;
        rc = 1;
      }
    }
    if (rc < 0)
      store_failed(a, "get", key);
  }
  Py_XDECREF(r);
  PyGILState_Release(st);
  return rc;
}

static int cb_del(void *user, const char *key) {
  create_args *a = user;
  if (!python_usable())
    return QP_ERR_RENDEZVOUS;
  PyGILState_STATE st = PyGILState_Ensure();
  PyObject *r = store_call(a, "delete", key, NULL, 0);
  int rc = r == NULL ? QP_ERR_RENDEZVOUS : 0;
  Py_XDECREF(r);
  PyGILState_Release(st);
  return rc;
}

/* create_client: server_ip/server_port are the server's address on the
 * path traversal validated. */
static int portal_set_peer(PortalObject *self) {
  char ip[QP_PEER_IP_SIZE];
  uint16_t port = 0;
  int rc = qp_portal_peer_address(self->portal, ip, sizeof(ip), &port);
  if (rc != 0) {
    raise_qp(rc, qp_last_error(), false);
    return -1;
  }
  PyObject *ip_o = PyUnicode_FromString(ip);
  PyObject *port_o = PyLong_FromLong(port);
  if (ip_o == NULL || port_o == NULL) {
    Py_XDECREF(ip_o);
    Py_XDECREF(port_o);
    return -1;
  }
  Py_XSETREF(self->server_ip, ip_o);
  Py_XSETREF(self->server_port, port_o);
  return 0;
}

/* A Portal (or subclass) instance around an already connected portal. */
static PyObject *portal_wrap(PyTypeObject *type, qp_portal_t *p) {
  PortalObject *self = (PortalObject *)type->tp_alloc(type, 0);
  if (self == NULL) {
    Py_BEGIN_ALLOW_THREADS
    qp_portal_destroy(p);
    Py_END_ALLOW_THREADS
    return NULL;
  }
  self->server_ip = Py_NewRef(Py_None);
  self->server_port = Py_NewRef(Py_None);
  self->owner_pid = getpid();
  atomic_init(&self->closed, false);
  self->portal = p;
  return (PyObject *)self;
}

static char *dup_str(PyObject *o, const char *name) {
  Py_ssize_t n;
  const char *s = PyUnicode_AsUTF8AndSize(o, &n);
  if (s == NULL)
    return NULL;
  if ((size_t)n != strlen(s)) {
    PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", name);
    return NULL;
  }
  char *d = strdup(s);
  if (d == NULL)
    PyErr_NoMemory();
  return d;
}

/* Raise the ConnectionError (or ValueError) for a failed create, naming the
 * store's exception if it raised one. */
static PyObject *raise_create(int rc, const char *msg, create_args *a) {
  if (a->exc == NULL)
    return raise_qp(rc, msg, false);
  PyObject *desc = PyObject_Str(a->exc);
  if (desc == NULL)
    PyErr_Clear();
  char full[MSG_MAX + 400];
  const char *d = desc != NULL ? PyUnicode_AsUTF8(desc) : NULL;
  if (d == NULL) {
    PyErr_Clear();
    d = "";
  }
  if (msg == NULL || msg[0] == '\0')
    msg = qp_strerror(rc);
  snprintf(full, sizeof(full), "%s (the rendezvous store's %s raised %s%s%.300s)",
           msg, a->exc_where, Py_TYPE(a->exc)->tp_name, d[0] ? ": " : "", d);
  Py_XDECREF(desc);
  raise_qp(rc == QP_ERR_INVALID ? QP_ERR_RENDEZVOUS : rc, full, false);
  PyObject *etype, *evalue, *etb;
  PyErr_Fetch(&etype, &evalue, &etb);
  PyErr_NormalizeException(&etype, &evalue, &etb);
  if (evalue != NULL)
    PyException_SetCause(evalue, Py_NewRef(a->exc));
  PyErr_Restore(etype, evalue, etb);
  return NULL;
}

/* The arguments of _create() after PyArg_ParseTuple. */
typedef struct {
  PyObject *cls, *store, *url, *session, *stun, *opts;
  int is_server, local_port, punch_ms, wait_ms, no_pin;
  PyObject *secret, *turn, *turn_secret; /* str or None, list, list */
  int relay, reconnect_ms;
  PyObject *local_ip; /* str or None */
  int portmap; /* protocol bits: 1 UPnP, 2 NAT-PMP, 4 PCP; 0 = none */
} create_req;

static int check_create_types(const create_req *r) {
  if (!PyType_Check(r->cls) ||
      !PyType_IsSubtype((PyTypeObject *)r->cls, &PortalType)) {
    PyErr_SetString(PyExc_TypeError, "_create: cls must be a Portal subclass");
    return -1;
  }
  if ((r->store == Py_None) == (r->url == Py_None)) {
    PyErr_SetString(PyExc_TypeError, "_create: give a store or a rendezvous URL");
    return -1;
  }
  if ((r->url != Py_None && !PyUnicode_Check(r->url)) ||
      !PyUnicode_Check(r->session) || !PyList_Check(r->stun) ||
      (r->secret != Py_None && !PyUnicode_Check(r->secret)) ||
      (r->local_ip != Py_None && !PyUnicode_Check(r->local_ip)) ||
      !PyList_Check(r->turn) || !PyList_Check(r->turn_secret)) {
    PyErr_SetString(PyExc_TypeError,
                    "_create: rendezvous, session, secret and local_ip must be str, "
                    "stun_servers and the TURN servers lists");
    return -1;
  }
  return 0;
}

static int check_create_values(const create_req *r) {
  if (r->local_port < 0 || r->local_port > 65535 || r->punch_ms <= 0) {
    PyErr_Format(PyExc_ValueError, "_create: local_port %d or punch_timeout %d ms "
                 "out of range", r->local_port, r->punch_ms);
    return -1;
  }
  if (PyList_GET_SIZE(r->turn) + PyList_GET_SIZE(r->turn_secret) >
      QP_MAX_TURN_SERVERS) {
    PyErr_Format(PyExc_ValueError, "at most %d TURN servers, got %zd",
                 QP_MAX_TURN_SERVERS,
                 PyList_GET_SIZE(r->turn) + PyList_GET_SIZE(r->turn_secret));
    return -1;
  }
  if (r->portmap < 0 || r->portmap > 7) {
    PyErr_Format(PyExc_ValueError, "_create: portmap bits %d out of range 0-7",
                 r->portmap);
    return -1;
  }
  if (PyList_GET_SIZE(r->stun) > MAX_STUN_SERVERS) {
    PyErr_Format(PyExc_ValueError, "at most %d STUN servers, got %zd",
                 MAX_STUN_SERVERS, PyList_GET_SIZE(r->stun));
    return -1;
  }
  return 0;
}

/* Copy a list of str (checked for size by the caller) into out. */
static int dup_list(PyObject *list, const char *what, char **out, size_t *n) {
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
    PyObject *e = PyList_GET_ITEM(list, i);
    if (!PyUnicode_Check(e)) {
      PyErr_Format(PyExc_TypeError, "%s[%zd] must be a str, not %s", what, i,
                   type_name(e));
      return -1;
    }
    if ((out[i] = dup_str(e, what)) == NULL)
      return -1;
    *n = (size_t)i + 1;
  }
  return 0;
}

/* Copy the strings the helper thread reads into a. */
static int create_args_strings(create_args *a, const create_req *r) {
  if ((a->session = dup_str(r->session, "session")) == NULL)
    return -1;
  if (r->url != Py_None && (a->rendezvous = dup_str(r->url, "rendezvous URL")) == NULL)
    return -1;
  for (Py_ssize_t i = 0; i < PyList_GET_SIZE(r->stun); i++) {
    PyObject *e = PyList_GET_ITEM(r->stun, i);
    if (!PyUnicode_Check(e)) {
      PyErr_Format(PyExc_TypeError, "stun_servers[%zd] must be a str, not %s", i,
                   type_name(e));
      return -1;
    }
    if ((a->stun[i] = dup_str(e, "stun_servers")) == NULL)
      return -1;
    a->stun_count = (size_t)i + 1;
  }
  if (r->secret != Py_None && (a->secret = dup_str(r->secret, "secret")) == NULL)
    return -1;
  if (r->local_ip != Py_None &&
      (a->local_ip = dup_str(r->local_ip, "local_ip")) == NULL)
    return -1;
  if (dup_list(r->turn, "turn_servers", a->turn, &a->turn_count) < 0)
    return -1;
  return dup_list(r->turn_secret, "turn_secret_servers", a->turn_secret,
                  &a->turn_secret_count);
}

static void create_args_options(create_args *a, const create_req *r) {
  qp_traverse_options_init(&a->o);
  a->o.rendezvous = a->rendezvous;
  if (a->rendezvous == NULL) {
    a->store = r->store;
    a->cb = (qp_rendezvous_callbacks){cb_put, cb_get, cb_del};
    a->o.callbacks = &a->cb;
    a->o.callbacks_user = a;
  }
  a->o.session = a->session;
  a->o.local_port = (uint16_t)r->local_port;
  a->o.stun_servers = (const char *const *)a->stun;
  a->o.stun_server_count = a->stun_count;
  a->o.punch_timeout_ms = r->punch_ms;
  a->o.wait_timeout_ms = r->wait_ms;
  a->o.no_pin = r->no_pin != 0;
  a->o.secret = a->secret;
  a->o.turn_servers = (const char *const *)a->turn;
  a->o.turn_server_count = a->turn_count;
  a->o.turn_secret_servers = (const char *const *)a->turn_secret;
  a->o.turn_secret_server_count = a->turn_secret_count;
  a->o.relay = r->relay;
  /* Recovery meets the peer again long after this call, through the store:
   * the callbacks below live only as long as this call (a is freed when it
   * returns), so only stores the library opens itself (DirDict, RedisDict,
   * URLs) recover. */
  a->o.reconnect_timeout_ms = a->rendezvous != NULL ? r->reconnect_ms : 0;
  a->o.local_ip = a->local_ip;
  a->o.no_portmap = r->portmap == 0;
  a->o.no_upnp = !(r->portmap & 1);
  a->o.no_natpmp = !(r->portmap & 2);
  a->o.no_pcp = !(r->portmap & 4);
  a->o.transport = &a->transport;
  a->o.cancel = create_cancelled;
  a->o.cancel_user = a;
}

/* A heap block with everything qp_create_* reads, or NULL with an
 * exception set. */
static create_args *create_args_new(const create_req *r) {
  create_args *a = calloc(1, sizeof(*a));
  if (a == NULL) {
    PyErr_NoMemory();
    return NULL;
  }
  atomic_init(&a->cancelled, false);
  a->is_server = r->is_server != 0;
  bool given;
  if (options_to_c(r->opts, &a->transport, &given) < 0 ||
      create_args_strings(a, r) < 0) {
    create_args_free(a);
    return NULL;
  }
  create_args_options(a, r);
  return a;
}

/* The helper returned: the Portal, or the exception. GIL held. */
static PyObject *create_result(bg_call *c, create_args *a, PyObject *cls) {
  int rc = c->rc;
  char msg[MSG_MAX];
  memcpy(msg, c->msg, sizeof(msg));
  qp_portal_t *p = c->created;
  c->created = NULL;
  PyObject *result = rc != 0 ? raise_create(rc, msg, a)
                             : portal_wrap((PyTypeObject *)cls, p);
  if (result != NULL && !a->is_server && portal_set_peer((PortalObject *)result) < 0)
    Py_CLEAR(result);
  return result;
}

/*
 * _create(cls, is_server, store, rendezvous, session, local_port,
 *         stun_servers, punch_timeout_ms, wait_timeout_ms, no_pin,
 *         transport_options, secret, turn_servers, turn_secret_servers,
 *         relay, reconnect_timeout_ms, local_ip, portmap)
 * The package (quic_portal.Portal.create_server/create_client) checks the
 * arguments and calls this; it is not a public API.
 */
static PyObject *mod_create(PyObject *m, PyObject *args) {
  (void)m;
  create_req r;
  if (!PyArg_ParseTuple(args, "OpOOOiOiipOOOOiiOi:_create", &r.cls, &r.is_server,
                        &r.store, &r.url, &r.session, &r.local_port, &r.stun,
                        &r.punch_ms, &r.wait_ms, &r.no_pin, &r.opts, &r.secret,
                        &r.turn, &r.turn_secret, &r.relay, &r.reconnect_ms,
                        &r.local_ip, &r.portmap))
    return NULL;
  if (check_create_types(&r) < 0 || check_create_values(&r) < 0)
    return NULL;
  create_args *a = create_args_new(&r);
  if (a == NULL)
    return NULL;
  bg_call *c = bg_new(CALL_CREATE, NULL);
  if (c == NULL) {
    create_args_free(a);
    return NULL;
  }
  c->create = a; /* freed with c */
  sync_log_level();
  PyObject *result = bg_run(c) < 0 ? NULL : create_result(c, a, r.cls);
  Py_CLEAR(a->exc);
  /* Destroys a portal made despite an interrupt: its close may log, which
   * needs the GIL. */
  Py_BEGIN_ALLOW_THREADS
  bg_unref(c);
  Py_END_ALLOW_THREADS
  return result;
}

/* ------------------------------------------------------------------------ */
/* StunServer: the library's embedded STUN server (tests, local setups)      */
/* ------------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  qp_stun_server_t *srv;
} StunObject;

static int stun_init(StunObject *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"primary", "alternate", NULL};
  const char *primary = "127.0.0.1:0", *alternate = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "|sz:StunServer", kwlist, &primary,
                                   &alternate))
    return -1;
  if (self->srv != NULL) {
    PyErr_SetString(PyExc_TypeError, "StunServer is already started");
    return -1;
  }
  int rc;
  char msg[MSG_MAX] = "";
  Py_BEGIN_ALLOW_THREADS
  rc = qp_stun_server_start(primary, alternate, &self->srv);
  if (rc != 0)
    snprintf(msg, sizeof(msg), "%s", qp_last_error());
  Py_END_ALLOW_THREADS
  if (rc != 0) {
    raise_qp(rc, msg, false);
    return -1;
  }
  return 0;
}

static PyObject *stun_stop(StunObject *self, PyObject *noargs) {
  (void)noargs;
  qp_stun_server_t *srv = self->srv;
  self->srv = NULL;
  Py_BEGIN_ALLOW_THREADS
  qp_stun_server_stop(srv);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

static void stun_dealloc(StunObject *self) {
  Py_XDECREF(stun_stop(self, NULL));
  Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *stun_get_port(StunObject *self, void *c) {
  (void)c;
  return PyLong_FromLong(self->srv ? qp_stun_server_port(self->srv) : 0);
}

static PyMethodDef stun_methods[] = {
    {"stop", (PyCFunction)stun_stop, METH_NOARGS,
     "stop($self, /)\n--\n\nStop answering and free the socket; idempotent."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef stun_getset[] = {
    {"port", (getter)stun_get_port, NULL, "The primary UDP port (0 once stopped).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject StunType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "quic_portal.StunServer",
    .tp_basicsize = sizeof(StunObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "StunServer(primary='127.0.0.1:0', alternate=None)\n--\n\n"
              "The library's STUN server (qp_stun_server_start) on its own "
              "thread: answers Binding requests on primary (\"ip:port\", port "
              "0 = any); alternate \"ip:port\" adds RFC 5780 behavior "
              "discovery. For tests and local setups (not in 0.1.x).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)stun_init,
    .tp_dealloc = (destructor)stun_dealloc,
    .tp_methods = stun_methods,
    .tp_getset = stun_getset,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                    */
/* ------------------------------------------------------------------------ */

static PyMethodDef module_methods[] = {
    {"_sync_log_level", mod_sync_log_level, METH_NOARGS,
     "_sync_log_level($module, /)\n--\n\n"
     "Make the library's log level follow the 'quic_portal' logger."},
    {"_shutdown_logging", mod_shutdown_logging, METH_NOARGS,
     "_shutdown_logging($module, /)\n--\n\n"
     "Stop forwarding the library's log to Python (atexit)."},
    {"_create", mod_create, METH_VARARGS,
     "_create($module, cls, is_server, store, rendezvous, session, "
     "local_port, stun_servers, punch_timeout_ms, wait_timeout_ms, no_pin, "
     "transport_options, secret, turn_servers, turn_secret_servers, relay, "
     "reconnect_timeout_ms, local_ip, portmap, /)\n--\n\n"
     "Rendezvous and NAT traversal (used by Portal.create_server/create_client)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, .m_name = "quic_portal._core",
    .m_doc = "C binding of libquicportal; use the quic_portal package.",
    .m_size = -1, .m_methods = module_methods,
};

/* {"TIMEOUT": -3, ...}: the package builds quic_portal.ErrorCode from it. */
static PyObject *error_codes(void) {
  PyObject *d = PyDict_New();
  if (d == NULL)
    return NULL;
#define QP_ADD_CODE_(name, code, text)                                         \
  if (d != NULL) {                                                             \
    PyObject *v = PyLong_FromLong(code);                                       \
    if (v == NULL || PyDict_SetItemString(d, #name, v) < 0)                    \
      Py_CLEAR(d);                                                             \
    Py_XDECREF(v);                                                             \
  }
  QP_ERR_MAP(QP_ADD_CODE_)
#undef QP_ADD_CODE_
  return d;
}

static int add_exceptions(PyObject *m) {
  PortalError = PyErr_NewExceptionWithDoc(
      "quic_portal.PortalError",
      "Base class of quic_portal's errors; a RuntimeError, as everything "
      "quic-portal 0.1.x raised from its core. .code (compare with "
      "quic_portal.ErrorCode) and .error_name name the library's error.",
      PyExc_RuntimeError, NULL);
  if (PortalError == NULL)
    return -1;
  ConnectionErr = PyErr_NewExceptionWithDoc(
      "quic_portal.ConnectionError",
      "A connection could not be made, or failed, or the peer closed it.",
      PortalError, NULL);
  if (ConnectionErr == NULL)
    return -1;
  PyObject *bases = PyTuple_Pack(2, PortalError, PyExc_ValueError);
  if (bases == NULL)
    return -1;
  ArgumentErr = PyErr_NewExceptionWithDoc(
      "quic_portal.ArgumentError",
      "The library refused an argument (e.g. a message larger than "
      "MAX_MESSAGE_SIZE); also a ValueError.",
      bases, NULL);
  Py_DECREF(bases);
  if (ArgumentErr == NULL)
    return -1;
  PyObject *codes = error_codes();
  if (codes == NULL)
    return -1;
  int rc = PyModule_AddObjectRef(m, "_ERROR_CODES", codes);
  Py_DECREF(codes);
  if (rc < 0 || PyModule_AddObjectRef(m, "PortalError", PortalError) < 0 ||
      PyModule_AddObjectRef(m, "ConnectionError", ConnectionErr) < 0 ||
      PyModule_AddObjectRef(m, "ArgumentError", ArgumentErr) < 0)
    return -1;
  return 0;
}

PyMODINIT_FUNC PyInit__core(void) {
  PyObject *m = PyModule_Create(&core_module);
  if (m == NULL)
    return NULL;
  if (PyType_Ready(&OptionsType) < 0 || PyType_Ready(&PortalType) < 0 ||
      PyType_Ready(&StunType) < 0)
    goto fail;
  if (PyModule_AddObjectRef(m, "StunServer", (PyObject *)&StunType) < 0)
    goto fail;
  if (PyModule_AddObjectRef(m, "QuicTransportOptions", (PyObject *)&OptionsType) < 0 ||
      PyModule_AddObjectRef(m, "Portal", (PyObject *)&PortalType) < 0)
    goto fail;
  if (add_exceptions(m) < 0)
    goto fail;
  if (PyModule_AddStringConstant(m, "__version__", QP_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "MAX_MESSAGE_SIZE",
                              (long)(QP_MAX_MESSAGE_SIZE > (uint64_t)LONG_MAX
                                         ? LONG_MAX
                                         : (long)QP_MAX_MESSAGE_SIZE)) < 0)
    goto fail;

  PyObject *logging = PyImport_ImportModule("logging");
  if (logging == NULL)
    goto fail;
  g_logger = PyObject_CallMethod(logging, "getLogger", "s", "quic_portal");
  Py_DECREF(logging);
  if (g_logger == NULL)
    goto fail;
  sync_log_level();
  atomic_store(&g_log_to_python, true);
  qp_log_set_handler(log_to_python, NULL);
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
