/*
 * udp_resolve.h: the library's one bounded, cancellable name lookup.
 *
 * getaddrinfo() cannot be cancelled or given a deadline, so each name is
 * looked up (udp_addr_lookup) on a detached thread of its own and the
 * caller waits at most a deadline, polling a cancel callback. A lookup
 * still running when the caller gives up finishes on its own and frees its
 * job. Used for STUN server names before traversal and by NAT discovery.
 */
#ifndef QP_UDP_RESOLVE_H
#define QP_UDP_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "udp/udp.h"

/* Names one call resolves at once (one thread each): as many STUN servers
 * as traversal takes. */
#define UDP_RESOLVE_MAX_NAMES 16
/* Room for the text of one entry: a name of UDP_HOST_MAX, ":" and a port. */
#define UDP_RESOLVE_TEXT_MAX (UDP_HOST_MAX + 24)
/* How often the waiting caller checks cancel and the lookups (ms): what a
 * cancel may take to be noticed. */
#define UDP_RESOLVE_POLL_MS 20

typedef struct udp_resolved {
  /* 0: addr holds the address. Otherwise QP_ERR_INVALID (not host:port),
   * QP_ERR_RESOLVE (the lookup failed), QP_ERR_TIMEOUT (still running at
   * the deadline), QP_ERR_INTERRUPTED (cancelled), QP_ERR_NOMEM/INTERNAL
   * (no job or thread); message says which name and why. */
  int rc;
  udp_addr_t addr;
  /* "ip:port" ("[v6]:port") when rc is 0, else the name as given. */
  char text[UDP_RESOLVE_TEXT_MAX];
  char message[160];
} udp_resolved_t;

/*
 * Parse every names[i] with udp_hostport_split (default_port when a name
 * has none) and look up the names among them (literals need no lookup),
 * all at once, addresses of family (AF_INET, AF_INET6 or AF_UNSPEC) only.
 * Waits at most timeout_ms (negative: no limit) or until cancel returns
 * true. Fills out[i] for each of the first min(n, UDP_RESOLVE_MAX_NAMES)
 * names and returns that count. Thread-safe (no shared state).
 */
size_t udp_resolve_names(const char *const *names, size_t n,
                         uint16_t default_port, int family, int timeout_ms,
                         bool (*cancel)(void *), void *cancel_user,
                         udp_resolved_t *out);

/*
 * As udp_resolve_names, each names[i] in families[i] (AF_INET or AF_INET6)
 * strictly: a literal of the other family, like a name without an address
 * of that family, is QP_ERR_RESOLVE. The same name may come twice, once
 * per family: a dual-stack socket asks a STUN server over both.
 */
size_t udp_resolve_names_in(const char *const *names, const int *families,
                            size_t n, uint16_t default_port, int timeout_ms,
                            bool (*cancel)(void *), void *cancel_user,
                            udp_resolved_t *out);

#endif
