#include "common/error.h"

#include <stdarg.h>
#include <stdio.h>

/* Long enough for an address, a path and an underlying library message. */
#define QP_ERROR_MESSAGE_MAX 512

static _Thread_local char last_error[QP_ERROR_MESSAGE_MAX];

const char *qp_err_name(int err) {
  switch (err) {
  case QP_OK:
    return "QP_OK";
#define QP_ERR_NAME_(name, code, text)                                         \
  case code:                                                                   \
    return "QP_ERR_" #name;
    QP_ERR_MAP(QP_ERR_NAME_)
#undef QP_ERR_NAME_
  default:
    return "QP_ERR_UNKNOWN";
  }
}

const char *qp_strerror(int err) {
  switch (err) {
  case QP_OK:
    return "success";
#define QP_ERR_TEXT_(name, code, text)                                         \
  case code:                                                                   \
    return text;
    QP_ERR_MAP(QP_ERR_TEXT_)
#undef QP_ERR_TEXT_
  default:
    return "unknown error";
  }
}

const char *qp_last_error(void) { return last_error; }

void err_clear(void) { last_error[0] = '\0'; }

int err_fail(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_error, sizeof(last_error), fmt, ap);
  va_end(ap);
  return code;
}
