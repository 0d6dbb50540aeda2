/*
 * Internal error reporting: a code from QP_ERR_MAP plus one sentence.
 *
 * The layer that knows the facts (address, errno, elapsed time) calls
 * err_fail() once and returns its code; layers above only pass the code up,
 * so the most specific message is the one the user sees.
 */
#ifndef QP_COMMON_ERROR_H
#define QP_COMMON_ERROR_H

#include "quic_portal.h"

/* Record the thread's last-error message and return code (negative). */
int err_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear the thread's last-error message. */
void err_clear(void);

#endif
