/* Internal checks on qp_transport_options (public parts in quic_portal.h). */
#ifndef QP_PORTAL_OPTIONS_H
#define QP_PORTAL_OPTIONS_H

#include "quic_portal.h"

/* 0, or QP_ERR_INVALID naming the field and its allowed range. */
int options_validate(const qp_transport_options *opts);

/* The two moves of the ABI rule (quic_portal.h) for an options struct
 * whose first field is size_t struct_size. write: fill the caller's struct
 * of caller_size bytes from defaults (this library's size bytes), set its
 * struct_size. read: overwrite own (this library's struct of size bytes,
 * already holding the defaults) with the first struct_size bytes of the
 * caller's, then set own's struct_size; QP_ERR_INVALID for struct_size 0,
 * naming qp_<what>_options_init. */
void options_write_sized(void *caller, size_t caller_size, const void *defaults,
                         size_t size);
int options_read_sized(void *own, size_t size, const void *caller,
                       const char *what);

/* The caller's options as this library's struct (the ABI rule in
 * quic_portal.h): defaults, overwritten by the first in->struct_size bytes
 * of *in. NULL in = defaults. QP_ERR_INVALID for struct_size 0. */
int options_transport_copy(const qp_transport_options *in,
                           qp_transport_options *out);

/* Log, once per process each, the options the engine cannot honor. */
void options_warn_unhonored(const qp_transport_options *opts);

#endif
