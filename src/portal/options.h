/* Internal checks on qp_transport_options (public parts in quic_portal.h). */
#ifndef QP_PORTAL_OPTIONS_H
#define QP_PORTAL_OPTIONS_H

#include "quic_portal.h"

/* 0, or QP_ERR_INVALID naming the field and its allowed range. */
int options_validate(const qp_transport_options *opts);

/* The caller's options as this library's struct (the ABI rule in
 * quic_portal.h): defaults, overwritten by the first in->struct_size bytes
 * of *in. NULL in = defaults. QP_ERR_INVALID for struct_size 0. */
int options_transport_copy(const qp_transport_options *in,
                           qp_transport_options *out);

/* Log, once per process each, the options the engine cannot honor. */
void options_warn_unhonored(const qp_transport_options *opts);

#endif
