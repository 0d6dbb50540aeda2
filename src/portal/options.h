/* Internal checks on qp_transport_options (public parts in quic_portal.h). */
#ifndef QP_PORTAL_OPTIONS_H
#define QP_PORTAL_OPTIONS_H

#include "quic_portal.h"

/* 0, or QP_ERR_INVALID naming the field and its allowed range. */
int options_validate(const qp_transport_options *opts);

/* Log, once per process each, the options the engine cannot honor. */
void options_warn_unhonored(const qp_transport_options *opts);

#endif
