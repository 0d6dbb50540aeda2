/* Bounded, cancellable resolution of "host:port" STUN server names. */
#ifndef QP_PORTAL_RESOLVE_H
#define QP_PORTAL_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#define RESOLVE_MAX_NAMES 16
#define RESOLVE_NAME_MAX 280

/*
 * Write into out[i] "ip:port" for every names[i] whose IPv4 address arrived
 * within timeout_ms (or until cancel returned true); names that are already
 * literals, or that did not resolve in time, are copied unchanged (the STUN
 * layer then reports them). Returns how many entries were written (at most
 * RESOLVE_MAX_NAMES).
 */
size_t resolve_stun_names(const char *const *names, size_t n, int timeout_ms,
                          bool (*cancel)(void *), void *cancel_user,
                          char out[][RESOLVE_NAME_MAX]);

#endif
